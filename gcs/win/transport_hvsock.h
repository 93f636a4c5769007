/* The "vsock port" transport (gcs/transport.h) over Hyper-V sockets
 * (AF_HYPERV), the host side of an LCOW UVM on Windows (gcs-bridge.md §1.1).
 *
 * Port P is the service GUID P-facb-11e6-bd58-64006a7986d3 (the Linux guest
 * dials vsock (CID 2, P) and Hyper-V maps it to that service on the host).
 * The host listens on (VM runtime id, service GUID); the VM's document must
 * allow the bind (DefaultBindSecurityDescriptor / ServiceTable), and the
 * listener must exist before the VM starts.
 *
 * Streams handed out are heap uv_tcp_t's (uv_tcp_open on the SOCKET), not
 * uv_pipe_t's: use them as uv_stream_t* and close them with
 * gcs_stream_close. Caveats:
 *  - libuv's own listen/accept on a uv_tcp_t creates AF_INET/AF_INET6 accept
 *    sockets (AcceptEx), so accepting is done here by a thread per listener
 *    in a blocking accept(); accepted sockets reach the loop via uv_async_t.
 *  - uv_tcp_* calls that assume IP (keepalive, nodelay, getpeername into a
 *    sockaddr_in) fail or return nonsense on these handles: read, write,
 *    shutdown and close only.
 *  - connect (host dials the guest) is not implemented: LCOW guests dial
 *    the host. It fails with RPC_UNIMPLEMENTED.
 *  - Only tested for "fails cleanly" under wine (no AF_HYPERV there). */
#ifndef GCS_WIN_TRANSPORT_HVSOCK_H
#define GCS_WIN_TRANSPORT_HVSOCK_H

#include <winsock2.h>
#include <windows.h>

#include "gcs/transport.h"

#define GCS_GUID_STRING_LEN 36 /* xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx */

/* The hvsock service GUID of vsock port `port`. */
void gcs_hvsock_service_id(uint32_t port, GUID *out);
/* Lower-case canonical form into buf (at least GCS_GUID_STRING_LEN + 1). */
void gcs_guid_format(const GUID *g, char *buf);
/* Parses the canonical form (optionally in braces, any case); -1 if bad. */
int gcs_guid_parse(const char *s, GUID *out);

/* A transport that listens on (vm_id, service GUID of the port). */
int gcs_transport_hvsock_new(uv_loop_t *loop, const GUID *vm_id, struct gcs_transport **out,
                             shim_error_t **err);

#endif
