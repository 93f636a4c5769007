/* Host side of the GCS bridge (spec gcs-bridge.md): one connection to the
 * guest agent, on the libuv loop.
 *
 * Every RPC is asynchronous. A call that returns 0 runs its callback exactly
 * once, later, from the loop (never from inside the call). A call that returns
 * -1 (bad arguments, connection already broken) never runs it.
 *
 * Callback arguments: `hresult` is the guest's Result (0 on success, and 0
 * when the failure is local: timeout, bridge lost, malformed response);
 * `err` is NULL on success, otherwise describes the failure and is freed by
 * the connection after the callback returns. Guest failures carry the guest's
 * ErrorMessage and the HRESULT in the text, and a code from
 * gcs_hresult_to_rpc_code (e.g. 0xC037010E -> RPC_NOT_FOUND).
 *
 * Requests use IDs from 0 upwards; responses are matched by ID in any order.
 * Each RPC except WaitForProcess has a timer (rpc_timeout_ms): when it fires
 * only that call fails (RPC_DEADLINE_EXCEEDED); a late response is then
 * logged and dropped, like any response with an unknown ID. When the bridge
 * dies (EOF, read error, Size < 16 or > max, invalid JSON) every outstanding
 * call fails with RPC_UNAVAILABLE and callbacks.bridge_closed runs once. */
#ifndef GCS_GUEST_CONNECTION_H
#define GCS_GUEST_CONNECTION_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "common/error.h"
#include "gcs/bridge_msg.h"
#include "gcs/transport.h"

struct gcs_guest_connection;

struct gcs_guest_connection_config {
    uint32_t max_message_size; /* incoming limit; 0 -> GCS_HOST_MAX_MESSAGE_SIZE (8 MiB) */
    uint64_t rpc_timeout_ms;   /* 0 -> 5 minutes; UINT64_MAX -> no timer */
    uint32_t first_stdio_port; /* 0 -> GCS_FIRST_STDIO_PORT (0x40000001) */
};

struct gcs_guest_callbacks {
    /* A container notification (§6.14). n and its strings live for the call. */
    void (*container_exit)(void *opaque, const struct gcs_container_notification *n);
    /* The bridge failed (not called after gcs_guest_connection_close). Runs
     * after every outstanding call has been failed. */
    void (*bridge_closed)(void *opaque, const shim_error_t *err);
};

/* Takes ownership of `bridge` (a connected stream, e.g. from a transport) and
 * starts reading. `stdio` (borrowed, must outlive the connection) is where
 * the host listens for process stdio connections; NULL = no stdio. */
int gcs_guest_connection_new(uv_loop_t *loop, uv_stream_t *bridge, struct gcs_transport *stdio,
                             const struct gcs_guest_connection_config *config,
                             const struct gcs_guest_callbacks *callbacks, void *opaque,
                             struct gcs_guest_connection **out, shim_error_t **err);
/* Fails every outstanding call (RPC_CANCELED), closes the bridge and frees the
 * connection once its handles are closed. Safe inside any callback. */
void gcs_guest_connection_close(struct gcs_guest_connection *c);
/* False once the bridge failed or close was called. */
bool gcs_guest_connection_alive(const struct gcs_guest_connection *c);
/* Capabilities from a successful negotiation, NULL before. */
const struct gcs_capabilities *
gcs_guest_connection_capabilities(const struct gcs_guest_connection *c);
/* Number of calls waiting for a response (for tests). */
size_t gcs_guest_connection_outstanding(const struct gcs_guest_connection *c);

typedef void (*gcs_done_cb)(void *opaque, int32_t hresult, const shim_error_t *err);
typedef void (*gcs_negotiate_cb)(void *opaque, int32_t hresult, const shim_error_t *err,
                                 const struct gcs_capabilities *caps);
typedef void (*gcs_wait_cb)(void *opaque, int32_t hresult, const shim_error_t *err,
                            uint32_t exit_code);
/* properties: the decoded Properties object (borrowed for the call). */
typedef void (*gcs_properties_cb)(void *opaque, int32_t hresult, const shim_error_t *err,
                                  const json_t *properties);
typedef void (*gcs_stacks_cb)(void *opaque, int32_t hresult, const shim_error_t *err,
                              const char *stacks);
/* Generic: the whole response body (borrowed; NULL on local failure). */
typedef void (*gcs_raw_cb)(void *opaque, int32_t hresult, const shim_error_t *err,
                           const json_t *response);

/* The new process. Streams are owned by the callee of gcs_exec_cb (NULL when
 * not requested). stdout/stderr MUST be closed after reading EOF, or the
 * guest never answers WaitForProcess (§8.4): gcs_output_start does that. */
struct gcs_process_io {
    uint32_t pid;
    uv_stream_t *stdin_stream, *stdout_stream, *stderr_stream;
};
typedef void (*gcs_exec_cb)(void *opaque, int32_t hresult, const shim_error_t *err,
                            struct gcs_process_io *io);

#define GCS_STDIO_IN 0x1u
#define GCS_STDIO_OUT 0x2u
#define GCS_STDIO_ERR 0x4u

/* NegotiateProtocol {4,4} to the null ID; checks Version == 4 and records the
 * capabilities. Must be the first call. */
int gcs_guest_negotiate(struct gcs_guest_connection *c, gcs_negotiate_cb cb, void *opaque,
                        shim_error_t **err);
/* Create with ContainerConfig = container_config (VMHostedContainerSettingsV2,
 * see gcs_container_config_build) encoded as a JSON string. */
int gcs_guest_create_container(struct gcs_guest_connection *c, const char *container_id,
                               const json_t *container_config, gcs_done_cb cb, void *opaque,
                               shim_error_t **err);
int gcs_guest_start_container(struct gcs_guest_connection *c, const char *container_id,
                              gcs_done_cb cb, void *opaque, shim_error_t **err);
/* ShutdownGraceful (SIGTERM) or ShutdownForced (SIGKILL). The guest answers
 * 0xC037010E for an unknown container; hcsshim treats that as success. */
int gcs_guest_shutdown_container(struct gcs_guest_connection *c, const char *container_id,
                                 bool forced, gcs_done_cb cb, void *opaque, shim_error_t **err);
int gcs_guest_delete_container_state(struct gcs_guest_connection *c, const char *container_id,
                                     gcs_done_cb cb, void *opaque, shim_error_t **err);
/* ExecuteProcess. process_parameters is the ProcessParameters object (e.g.
 * from gcs_process_parameters_build): nothing for a container init, OciProcess
 * for an exec, CommandArgs... for a UVM process (container_id NULL = null ID).
 * The CreateStd*Pipe keys are set from `stdio` (GCS_STDIO_* bits); for each
 * one the host listens on a fresh port (from 0x40000001 up) before sending and
 * the callback runs once the response and every requested connection arrived. */
int gcs_guest_execute_process(struct gcs_guest_connection *c, const char *container_id,
                              const json_t *process_parameters, unsigned stdio, gcs_exec_cb cb,
                              void *opaque, shim_error_t **err);
/* WaitForProcess (no RPC timer). timeout_ms GCS_WAIT_INFINITE = forever. */
int gcs_guest_wait_process(struct gcs_guest_connection *c, const char *container_id, uint32_t pid,
                           uint32_t timeout_ms, gcs_wait_cb cb, void *opaque, shim_error_t **err);
/* SignalProcess; signal 0 sends no Options (the guest then uses SIGKILL). If
 * the guest lacks SignalProcessSupported, 9/15 become a plain kill and other
 * signals are refused (RPC_UNIMPLEMENTED), as hcsshim does.
 * 0x80070490 means the process already exited. */
int gcs_guest_signal_process(struct gcs_guest_connection *c, const char *container_id, uint32_t pid,
                             int signal, gcs_done_cb cb, void *opaque, shim_error_t **err);
int gcs_guest_resize_console(struct gcs_guest_connection *c, const char *container_id, uint32_t pid,
                             uint16_t height, uint16_t width, gcs_done_cb cb, void *opaque,
                             shim_error_t **err);
/* GetProperties with GCS_PROPERTY_* bits. */
int gcs_guest_get_properties(struct gcs_guest_connection *c, const char *container_id,
                             unsigned property_types, gcs_properties_cb cb, void *opaque,
                             shim_error_t **err);
/* ModifySettings {ResourceType, RequestType, Settings}; container_id NULL =
 * null ID (UVM devices); settings may be NULL. */
int gcs_guest_modify_settings(struct gcs_guest_connection *c, const char *container_id,
                              const char *resource_type, const char *request_type,
                              const json_t *settings, gcs_done_cb cb, void *opaque,
                              shim_error_t **err);
int gcs_guest_dump_stacks(struct gcs_guest_connection *c, gcs_stacks_cb cb, void *opaque,
                          shim_error_t **err);
/* Any message type with any body (tests, future RPCs). timed: use the RPC
 * timer. */
int gcs_guest_call_raw(struct gcs_guest_connection *c, uint32_t type, const json_t *body,
                       bool timed, gcs_raw_cb cb, void *opaque, shim_error_t **err);

/* ---- stdio helpers ----------------------------------------------------------- */

/* Reads a process's stdout/stderr stream (taking ownership): cb(data, len)
 * for each chunk; at EOF the stream is closed (the §8.4 handshake) and then
 * cb(NULL, 0); on a read error it is closed and cb(NULL, status < 0). */
typedef void (*gcs_output_cb)(void *opaque, const char *data, ssize_t len);
int gcs_output_start(uv_stream_t *stream, gcs_output_cb cb, void *opaque, shim_error_t **err);
/* Half-closes a stdin stream once queued writes are out, then closes and
 * frees it (takes ownership). */
void gcs_input_close(uv_stream_t *stream);

/* ---- bridge accept ---------------------------------------------------------------- */

/* Listens on GCS_BRIDGE_PORT, accepts one connection within timeout_ms
 * (0 -> 2 minutes) and closes the listener. cb gets the stream (owned) or an
 * error (RPC_DEADLINE_EXCEEDED / RPC_UNAVAILABLE). */
typedef void (*gcs_bridge_accept_cb)(void *opaque, uv_stream_t *bridge, const shim_error_t *err);
int gcs_bridge_accept(struct gcs_transport *t, uint64_t timeout_ms, gcs_bridge_accept_cb cb,
                      void *opaque, shim_error_t **err);

#endif
