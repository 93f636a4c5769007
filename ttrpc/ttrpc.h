/* ttrpc (containerd's RPC over a byte stream) on libuv: a server and a
 * client for unary calls. Wire format: shared/spec/shim-contract.md §1.
 *
 * Everything runs on one uv loop; no function here is thread-safe.
 *
 * Server
 *   Register services as tables of {method name, handler}. A handler gets a
 *   call and must finish it exactly once, now or later, with
 *   ttrpc_call_reply*() or ttrpc_call_fail(); that also frees the call.
 *   Calls complete in any order. If the call's deadline (timeout_nano) passes
 *   or its connection is lost first, the server marks it cancelled (answering
 *   DeadlineExceeded in the first case) and runs the optional cancel
 *   callback; the handler must still finish it, and that late reply is
 *   dropped safely.
 *
 * Client
 *   Connects lazily on the first call, pipelines any number of calls, and
 *   reconnects on the next call after the connection was lost. Every call's
 *   callback runs exactly once. */
#ifndef TTRPC_TTRPC_H
#define TTRPC_TTRPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include <protobuf-c/protobuf-c.h>

#include "common/error.h"

/* Largest frame body either side sends or accepts (4 MiB). */
#define TTRPC_MAX_MESSAGE (4u << 20)

/* ---- server ------------------------------------------------------------- */

typedef struct ttrpc_server ttrpc_server_t;
typedef struct ttrpc_call ttrpc_call_t;

typedef void (*ttrpc_handler_fn)(ttrpc_call_t *call);

struct ttrpc_method {
    const char *name; /* e.g. "State" */
    ttrpc_handler_fn handler;
};

/* The table (and the strings in it) must outlive the server. */
struct ttrpc_service {
    const char *name; /* e.g. "containerd.task.v2.Task" */
    const struct ttrpc_method *methods;
    size_t n_methods;
    void *user_data; /* handed to every call of this service */
};

struct ttrpc_server_options {
    /* Reject peers whose uid or gid (Unix: SO_PEERCRED) differs from ours,
     * as containerd does for its own socket. */
    bool require_same_uid;
};

int ttrpc_server_new(uv_loop_t *loop, const struct ttrpc_server_options *options,
                     ttrpc_server_t **out, shim_error_t **err);
int ttrpc_server_register(ttrpc_server_t *server, const struct ttrpc_service *service,
                          shim_error_t **err);
/* Binds a socket at `path` (Unix: a stale socket file is removed, mode 0600)
 * and starts accepting. */
int ttrpc_server_listen(ttrpc_server_t *server, const char *path, shim_error_t **err);
/* Accepts on an already bound and listening socket (e.g. fd 3 from `start`). */
int ttrpc_server_adopt(ttrpc_server_t *server, uv_file fd, shim_error_t **err);

typedef void (*ttrpc_server_done_fn)(void *arg);
/* Graceful shutdown: stops accepting (removing a socket file it bound), closes
 * each connection once it has nothing left to answer and its responses are
 * flushed; after timeout_ms the rest is dropped (calls cancelled; 0 = at
 * once). Then frees the server and calls done(arg). Call once. */
void ttrpc_server_shutdown(ttrpc_server_t *server, uint64_t timeout_ms, ttrpc_server_done_fn done,
                           void *arg);

/* ---- a call on the server ------------------------------------------------ */

const char *ttrpc_call_service(const ttrpc_call_t *call);
const char *ttrpc_call_method(const ttrpc_call_t *call);
/* The serialized request message. */
const uint8_t *ttrpc_call_payload(const ttrpc_call_t *call, size_t *len);
/* Unpacks the payload; NULL (with an InvalidArgument error) if it does not decode. */
ProtobufCMessage *ttrpc_call_unpack(const ttrpc_call_t *call,
                                    const ProtobufCMessageDescriptor *descriptor,
                                    shim_error_t **err);
/* The relative deadline the client sent in ns, 0 = none. */
int64_t ttrpc_call_timeout_nano(const ttrpc_call_t *call);
size_t ttrpc_call_metadata_count(const ttrpc_call_t *call);
/* The i-th metadata pair; returns false when i is out of range. */
bool ttrpc_call_metadata_at(const ttrpc_call_t *call, size_t i, const char **key,
                            const char **value);
/* The first value for `key`, or NULL. */
const char *ttrpc_call_metadata_get(const ttrpc_call_t *call, const char *key);
/* Identifies the connection the call arrived on (unique per server). */
uint64_t ttrpc_call_connection_id(const ttrpc_call_t *call);
void *ttrpc_call_user_data(const ttrpc_call_t *call);
/* True once the deadline passed or the connection was lost. */
bool ttrpc_call_cancelled(const ttrpc_call_t *call);

typedef void (*ttrpc_cancel_fn)(ttrpc_call_t *call, void *arg);
/* Runs once when the call is cancelled (not when it is finished normally);
 * register it before returning from the handler (cancellation is always
 * reported later, from the loop). The callback may finish the call. */
void ttrpc_call_on_cancel(ttrpc_call_t *call, ttrpc_cancel_fn cancel, void *arg);
/* Per-call storage for the handler. */
void ttrpc_call_set_context(ttrpc_call_t *call, void *context);
void *ttrpc_call_context(const ttrpc_call_t *call);

/* Finish the call successfully with raw payload bytes (copied; may be empty). */
void ttrpc_call_reply(ttrpc_call_t *call, const uint8_t *payload, size_t len);
/* Finish the call successfully with a packed message (NULL = empty payload). */
void ttrpc_call_reply_message(ttrpc_call_t *call, const ProtobufCMessage *message);
/* Finish the call with an error status. */
void ttrpc_call_fail(ttrpc_call_t *call, int code, const char *fmt, ...) SHIM_PRINTF(3, 4);
/* Finish the call with err's code and message (err stays the caller's). */
void ttrpc_call_fail_error(ttrpc_call_t *call, const shim_error_t *err);

/* ---- client ------------------------------------------------------------- */

typedef struct ttrpc_client ttrpc_client_t;

struct ttrpc_metadata {
    const char *key;
    const char *value;
};

/* code is a gRPC code (0 = OK), message "" on success; payload is only valid
 * during the callback. Connection problems are reported as Unavailable, a
 * passed deadline as DeadlineExceeded, ttrpc_client_close as Canceled. */
typedef void (*ttrpc_client_cb)(int code, const char *message, const uint8_t *payload, size_t len,
                                void *arg);

/* `address` is a socket path, optionally prefixed "unix://". Nothing is
 * connected until the first call. */
int ttrpc_client_new(uv_loop_t *loop, const char *address, ttrpc_client_t **out,
                     shim_error_t **err);

struct ttrpc_call_args {
    const char *service;
    const char *method;
    const uint8_t *payload;
    size_t len;
    const struct ttrpc_metadata *metadata;
    size_t n_metadata;
    uint64_t timeout_ms; /* 0 = none; else sent as timeout_nano and enforced here */
};

/* Starts a call; cb runs exactly once, never from inside this function. */
int ttrpc_client_call(ttrpc_client_t *client, const struct ttrpc_call_args *args,
                      ttrpc_client_cb cb, void *arg, shim_error_t **err);
/* Fails every outstanding call with Canceled, closes the connection and
 * frees the client (after the callbacks ran). */
void ttrpc_client_close(ttrpc_client_t *client);

#endif
