/* The "vsock port" abstraction: the host listens on port N, the guest connects
 * to port N; a connection is a libuv stream.
 *
 * Realizations (gcs/unix/):
 *   unix-dir  a directory of Unix stream sockets, one per port, named
 *             <dir>/<port in decimal> (e.g. <dir>/1073741824 for the bridge).
 *             For a guest agent running on the host ("process isolation").
 *   vsock     AF_VSOCK: listen on (VMADDR_CID_ANY, N); connect to (cid, N),
 *             cid 2 (VMADDR_CID_HOST) for a guest.
 *   fdpair    one already-connected byte stream made of an input fd and an
 *             output fd (the GCS's stdin/stdout with -use-inouterr). Only the
 *             bridge port works; listen or connect delivers that one stream.
 *   mux       every port multiplexed over one byte stream (gcs/mux.h), e.g. a
 *             QEMU virtio-serial port; also directly over a char device.
 *   device    the bridge port only, over a virtio-serial char device.
 *
 * Every stream handed out is a heap-allocated uv_pipe_t (usable as
 * uv_stream_t*) owned by the receiver, who closes it with gcs_stream_close()
 * (or uv_close + free in the close callback). */
#ifndef GCS_TRANSPORT_H
#define GCS_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/error.h"

struct gcs_transport;
struct gcs_listener;

/* status 0: `stream` is a new connection (receiver owns it). status < 0 (a
 * libuv error): accepting failed; the listener stays open. */
typedef void (*gcs_accept_cb)(struct gcs_listener *listener, uv_stream_t *stream, int status,
                              void *opaque);
/* status 0: connected, `stream` is owned by the receiver. status < 0: failed
 * (e.g. UV_ENOENT / UV_ECONNREFUSED when nobody listens), stream NULL. */
typedef void (*gcs_connect_cb)(uv_stream_t *stream, int status, void *opaque);

struct gcs_transport_ops {
    const char *name;
    int (*listen)(struct gcs_transport *t, uint32_t port, gcs_accept_cb cb, void *opaque,
                  struct gcs_listener **out, shim_error_t **err);
    int (*connect)(struct gcs_transport *t, uint32_t port, gcs_connect_cb cb, void *opaque,
                   shim_error_t **err);
    void (*destroy)(struct gcs_transport *t);
};

struct gcs_transport {
    const struct gcs_transport_ops *ops;
    uv_loop_t *loop;
};

/* Starts listening on `port`; cb runs for every accepted connection until
 * gcs_listener_close. Returns -1 with *err (e.g. the port is taken). */
int gcs_transport_listen(struct gcs_transport *t, uint32_t port, gcs_accept_cb cb, void *opaque,
                         struct gcs_listener **out, shim_error_t **err);
/* Connects to `port` asynchronously; on 0, cb runs exactly once later. */
int gcs_transport_connect(struct gcs_transport *t, uint32_t port, gcs_connect_cb cb, void *opaque,
                          shim_error_t **err);
/* Frees the transport. Listeners and streams it handed out must be closed first
 * (the fdpair transport's pumps are closed here). */
void gcs_transport_destroy(struct gcs_transport *t);

/* Stops listening (the callback never runs again) and frees the listener
 * asynchronously. Safe to call from inside the accept callback. */
void gcs_listener_close(struct gcs_listener *l);
uint32_t gcs_listener_port(const struct gcs_listener *l);

/* Closes a stream handed out by a transport and frees it. NULL is fine. */
void gcs_stream_close(uv_stream_t *stream);
/* Wraps a connected stream socket fd (any family) as a heap uv_pipe_t. */
int gcs_stream_from_fd(uv_loop_t *loop, int fd, uv_stream_t **out, shim_error_t **err);

/* Constructors (gcs/unix/). */
int gcs_transport_unix_dir_new(uv_loop_t *loop, const char *dir, struct gcs_transport **out,
                               shim_error_t **err);
/* Path of port's socket in a unix-dir transport (malloc'd). */
char *gcs_transport_unix_dir_path(const char *dir, uint32_t port);

#define GCS_VSOCK_CID_ANY 0xFFFFFFFFu
#define GCS_VSOCK_CID_HOST 2u
#define GCS_VSOCK_CID_LOCAL 1u
/* connect() dials (connect_cid, port); listen() binds (VMADDR_CID_ANY, port). */
int gcs_transport_vsock_new(uv_loop_t *loop, uint32_t connect_cid, struct gcs_transport **out,
                            shim_error_t **err);

/* The bridge over an fd pair: bytes read from in_fd arrive on the stream,
 * bytes written to the stream go to out_fd (in_fd == out_fd is fine). The
 * transport takes ownership of the fds. EOF on in_fd becomes EOF on the
 * stream; closing the stream closes out_fd's direction. */
int gcs_transport_fdpair_new(uv_loop_t *loop, int in_fd, int out_fd, struct gcs_transport **out,
                             shim_error_t **err);

/* ---- multiplexed ports and virtio-serial devices (gcs/unix/transport_mux.c) ----------------
 * Protocol and behaviour: gcs/mux.h and /work/notes/mux.md. */

/* Every port multiplexed over one connected byte stream `link` (owned, also
 * on error). role: GCS_MUX_ROLE_HOST (0, listens: the shim, over the UVM's
 * "stdio" chardev socket) or GCS_MUX_ROLE_GUEST (1, connects: the agent).
 * Streams handed out are heap uv_pipe_t's (socketpair ends), as usual. */
int gcs_transport_mux_new(uv_loop_t *loop, uv_stream_t *link, int role, struct gcs_transport **out,
                          shim_error_t **err);
/* The same over a virtio-serial char device (in_fd == out_fd for a real port;
 * a FIFO pair works too). Takes the fds. Hang-ups before the first byte from
 * the host mean "not connected yet" and are retried every 50 ms on the same
 * fd; a hang-up after that is link loss. */
int gcs_transport_mux_device_new(uv_loop_t *loop, int in_fd, int out_fd, int role,
                                 struct gcs_transport **out, shim_error_t **err);
/* The bridge port (0x40000000) only, over a char device, with the same
 * hang-up rules (after the host was connected, a hang-up is EOF on the
 * stream). Takes the fds. */
int gcs_transport_device_new(uv_loop_t *loop, int in_fd, int out_fd, struct gcs_transport **out,
                             shim_error_t **err);
/* Opens a char device O_RDWR|O_NONBLOCK|O_NOCTTY|O_CLOEXEC (raw mode when it
 * is a tty). A value without '/' is a virtio-serial port name looked up with
 * gcs_virtio_port_find (waits up to 10 s). */
int gcs_device_open(const char *path_or_name, int *fd, shim_error_t **err);
/* /dev/vportNpM of the port whose /sys/class/virtio-ports/<x>/name is `name`
 * ($GCS_VIRTIO_PORTS_DIR overrides the directory). Blocks, polling every
 * 20 ms up to timeout_ms: start-up only. */
int gcs_virtio_port_find(const char *name, unsigned timeout_ms, char *out, size_t outlen,
                         shim_error_t **err);

#endif
