/* QMP (QEMU Machine Protocol) client on the libuv loop.
 *
 * QMP is JSON objects, one per line ("\r\n"), over a stream socket. The
 * server greets with {"QMP":{...}}; the client must send qmp_capabilities
 * before any other command. Replies carry the "id" of their command
 * ({"return":...} or {"error":{"class","desc"}}); events ({"event",...}) can
 * arrive at any time, between or before replies.
 *
 * Usage: qmp_client_open() on a connected fd; the ready callback runs once
 * the greeting and the capabilities negotiation are done (or failed). Then
 * qmp_client_execute() any number of commands; replies are matched by id, so
 * they may come back in any order. When the peer dies, sends something that
 * is not a JSON object or a line longer than QMP_MAX_LINE, or refuses
 * qmp_capabilities, every pending command fails (reply callback with an
 * error) and the closed callback runs (after ready(err) if not yet ready).
 * All callbacks run on the loop, never synchronously from an API call. */
#ifndef HCS_QMP_H
#define HCS_QMP_H

#include <jansson.h>
#include <stdbool.h>
#include <uv.h>

#include "common/error.h"

#define QMP_MAX_LINE (16u << 20)

struct qmp_client;

/* err NULL on success; err->code RPC_UNAVAILABLE when the connection ended. */
typedef void (*qmp_ready_cb)(struct qmp_client *c, const shim_error_t *err, void *opaque);
/* An event; data may be NULL. Both are borrowed for the call. */
typedef void (*qmp_event_cb)(struct qmp_client *c, const char *event, json_t *data, void *opaque);
/* The connection is gone (err says why; NULL after qmp_client_close). Runs
 * once; the client is still valid until qmp_client_close(). */
typedef void (*qmp_closed_cb)(struct qmp_client *c, const shim_error_t *err, void *opaque);
/* A command's outcome: `ret` (borrowed) on success, else err (borrowed; the
 * QMP error class is in the message, code RPC_UNKNOWN for a QMP error,
 * RPC_UNAVAILABLE when the connection ended first). */
typedef void (*qmp_reply_cb)(struct qmp_client *c, json_t *ret, const shim_error_t *err,
                             void *opaque);

struct qmp_callbacks {
    qmp_ready_cb ready;
    qmp_event_cb event;   /* optional */
    qmp_closed_cb closed; /* optional */
};

/* Takes ownership of fd (a connected stream socket). */
int qmp_client_open(uv_loop_t *loop, int fd, const struct qmp_callbacks *cbs, void *opaque,
                    struct qmp_client **out, shim_error_t **err);
/* Sends {"execute":command,"arguments":args,"id":N}; args is stolen (may be
 * NULL). Fails (-1) when the client is closed or not yet ready. */
int qmp_client_execute(struct qmp_client *c, const char *command, json_t *args, qmp_reply_cb cb,
                       void *opaque, shim_error_t **err);
bool qmp_client_ready(const struct qmp_client *c);
size_t qmp_client_pending(const struct qmp_client *c);
/* Drops pending commands, closes the socket and frees the client once libuv
 * is done with it. No callback of any kind runs afterwards. Safe inside any
 * of the client's callbacks. */
void qmp_client_close(struct qmp_client *c);

#endif
