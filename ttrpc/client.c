/* ttrpc client: unary calls over one connection at a time (spec §1.8).
 *
 * A connection is created by the first call after the previous one was lost.
 * Calls wait in the connection's list until connected, get odd stream ids
 * (1, 3, 5, ... per connection) when written, and leave the list when their
 * response, deadline or the connection's end completes them. Connection loss
 * is handled in the handle's close callback so that user callbacks never run
 * inside ttrpc_client_call. */
#include "ttrpc/ttrpc.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "ttrpc/frame.h"
#include "ttrpc/platform.h"

#define READ_BUFFER_SIZE (64 * 1024)

struct client_call;

struct client_conn {
    uv_pipe_t pipe;
    uv_connect_t connect_req;
    ttrpc_client_t *client; /* the client is current while client->conn == this */
    struct ttrpc_frame_reader reader;
    struct client_call *calls; /* oldest first */
    struct client_call *calls_tail;
    uint32_t next_stream_id;
    bool connected;
    bool closing;
    int fail_code; /* how calls still in the list end */
    char fail_message[256];
    uint8_t read_buf[READ_BUFFER_SIZE]; /* keep last: not cleared at allocation */
};

struct client_call {
    struct client_conn *conn;
    struct client_call *prev, *next;
    uint32_t stream_id; /* 0 until written */
    uint8_t *frame;     /* request frame until written */
    size_t frame_len;
    uv_timer_t *deadline;
    ttrpc_client_cb cb;
    void *arg;
};

struct ttrpc_client {
    uv_loop_t *loop;
    char *path;
    struct client_conn *conn; /* the current connection, NULL when none */
    int n_conns;              /* connections not yet freed (current or closing) */
    bool closed;
    uv_timer_t anchor; /* never started: its close callback frees the client */
};

struct client_write {
    uv_write_t req;
    struct client_conn *conn;
    uint8_t *frame;
};

static void conn_lost(struct client_conn *conn, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

int ttrpc_client_new(uv_loop_t *loop, const char *address, ttrpc_client_t **out, shim_error_t **err)
{
    if (strncmp(address, "unix://", 7) == 0)
        address += 7;
    if (*address == '\0')
        return error_set(err, RPC_INVALID_ARGUMENT, "ttrpc client: empty address");
    if (ttrpc_platform_check_address(address, err) < 0)
        return -1;
    ttrpc_platform_init();
    ttrpc_client_t *client = calloc(1, sizeof(*client));
    if (client == NULL || (client->path = strdup(address)) == NULL) {
        free(client);
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "ttrpc client: out of memory");
    }
    client->loop = loop;
    uv_timer_init(loop, &client->anchor);
    client->anchor.data = client;
    *out = client;
    return 0;
}

/* ---- calls -------------------------------------------------------------- */

static void on_timer_closed(uv_handle_t *handle)
{
    free(handle);
}

static void call_unlink(struct client_call *call)
{
    struct client_conn *conn = call->conn;
    if (call->prev)
        call->prev->next = call->next;
    else
        conn->calls = call->next;
    if (call->next)
        call->next->prev = call->prev;
    else
        conn->calls_tail = call->prev;
    call->prev = call->next = NULL;
}

/* Unlinks, runs the callback once and frees the call. */
static void call_complete(struct client_call *call, int code, const char *message,
                          const uint8_t *payload, size_t len)
{
    call_unlink(call);
    if (call->deadline != NULL)
        uv_close((uv_handle_t *)call->deadline, on_timer_closed);
    free(call->frame);
    ttrpc_client_cb cb = call->cb;
    void *arg = call->arg;
    free(call);
    cb(code, message ? message : "", payload, len, arg);
}

static void on_call_deadline(uv_timer_t *timer)
{
    struct client_call *call = timer->data;
    call_complete(call, RPC_DEADLINE_EXCEEDED, "context deadline exceeded", NULL, 0);
}

static struct client_call *find_call(struct client_conn *conn, uint32_t stream_id)
{
    for (struct client_call *c = conn->calls; c != NULL; c = c->next) {
        if (c->stream_id == stream_id && stream_id != 0)
            return c;
    }
    return NULL;
}

/* ---- connection ----------------------------------------------------------- */

static void on_write(uv_write_t *req, int status)
{
    struct client_write *wr = (struct client_write *)req;
    struct client_conn *conn = wr->conn;
    free(wr->frame);
    free(wr);
    if (status < 0 && !conn->closing)
        conn_lost(conn, RPC_UNAVAILABLE, "ttrpc: write: %s", uv_strerror(status));
}

/* Assigns the next stream id and sends the request: at once as far as the
 * socket takes it (uv_try_write writes nothing while earlier requests are
 * queued, so order is kept), the rest queued. */
static void call_send(struct client_call *call)
{
    struct client_conn *conn = call->conn;
    call->stream_id = conn->next_stream_id;
    conn->next_stream_id += 2;
    uint8_t *frame = call->frame;
    size_t len = call->frame_len;
    call->frame = NULL;
    frame[4] = (uint8_t)(call->stream_id >> 24);
    frame[5] = (uint8_t)(call->stream_id >> 16);
    frame[6] = (uint8_t)(call->stream_id >> 8);
    frame[7] = (uint8_t)call->stream_id;
    uv_buf_t buf = uv_buf_init((char *)frame, (unsigned int)len);
    int done = uv_try_write((uv_stream_t *)&conn->pipe, &buf, 1);
    if (done < 0)
        done = 0; /* queued instead; uv_write reports a broken connection */
    if ((size_t)done == len) {
        free(frame);
        return;
    }
    struct client_write *wr = malloc(sizeof(*wr));
    if (wr == NULL) {
        free(frame);
        conn_lost(conn, RPC_RESOURCE_EXHAUSTED, "ttrpc client: out of memory");
        return;
    }
    wr->conn = conn;
    wr->frame = frame; /* freed in on_write: the rest is written from it */
    buf = uv_buf_init((char *)frame + done, (unsigned int)(len - (size_t)done));
    int rc = uv_write(&wr->req, (uv_stream_t *)&conn->pipe, &buf, 1, on_write);
    if (rc < 0) {
        free(frame);
        free(wr);
        conn_lost(conn, RPC_UNAVAILABLE, "ttrpc: write: %s", uv_strerror(rc));
    }
}

static void on_client_closed(uv_handle_t *handle)
{
    free(((ttrpc_client_t *)handle->data)->path);
    free(handle->data);
}

/* The client goes once it is closed and no connection refers to it. */
static void client_maybe_free(ttrpc_client_t *client)
{
    if (client->closed && client->n_conns == 0)
        uv_close((uv_handle_t *)&client->anchor, on_client_closed);
}

static void on_conn_closed(uv_handle_t *handle)
{
    struct client_conn *conn = handle->data;
    ttrpc_client_t *client = conn->client;
    while (conn->calls != NULL)
        call_complete(conn->calls, conn->fail_code, conn->fail_message, NULL, 0);
    ttrpc_frame_reader_reset(&conn->reader);
    free(conn);
    client->n_conns--;
    client_maybe_free(client);
}

static void conn_lost(struct client_conn *conn, int code, const char *fmt, ...)
{
    if (conn->closing)
        return;
    conn->closing = true;
    conn->fail_code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(conn->fail_message, sizeof(conn->fail_message), fmt, ap);
    va_end(ap);
    if (conn->client->conn == conn)
        conn->client->conn = NULL;
    uv_close((uv_handle_t *)&conn->pipe, on_conn_closed);
}

static void handle_response(struct client_conn *conn, struct ttrpc_frame *frame)
{
    struct client_call *call = find_call(conn, frame->header.stream_id);
    Ttrpc__Response *resp = NULL;
    shim_error_t *err = NULL;
    if (frame->header.type != TTRPC_TYPE_RESPONSE || call == NULL) {
        free(frame->body); /* late (deadline passed) or not ours */
        return;
    }
    if (ttrpc_response_decode(frame->body, frame->header.length, &resp, &err) < 0) {
        call_complete(call, err->code, err->msg, NULL, 0);
        error_free(err);
    } else {
        int code = ttrpc_response_code(resp);
        call_complete(call, code, ttrpc_response_message(resp), code ? NULL : resp->payload.data,
                      code ? 0 : resp->payload.len);
        ttrpc__response__free_unpacked(resp, NULL);
    }
    free(frame->body);
}

static void handle_oversized(struct client_conn *conn, const struct ttrpc_frame_header *hdr)
{
    struct client_call *call = find_call(conn, hdr->stream_id);
    if (call == NULL || hdr->type != TTRPC_TYPE_RESPONSE)
        return;
    char message[128];
    snprintf(message, sizeof(message), "message length %u exceed maximum message size of %u",
             hdr->length, TTRPC_MESSAGE_LENGTH_MAX);
    call_complete(call, RPC_RESOURCE_EXHAUSTED, message, NULL, 0);
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct client_conn *conn = handle->data;
    *buf = uv_buf_init((char *)conn->read_buf, sizeof(conn->read_buf));
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct client_conn *conn = stream->data;
    if (nread < 0) {
        conn_lost(conn, RPC_UNAVAILABLE, "ttrpc: connection closed: %s", uv_strerror((int)nread));
        return;
    }
    const uint8_t *data = (const uint8_t *)buf->base;
    size_t off = 0;
    while (off < (size_t)nread && !conn->closing) {
        struct ttrpc_frame frame;
        size_t used = 0;
        shim_error_t *err = NULL;
        int rc = ttrpc_frame_reader_feed(&conn->reader, data + off, (size_t)nread - off, &used,
                                         &frame, &err);
        off += used;
        if (rc < 0) {
            conn_lost(conn, RPC_UNAVAILABLE, "ttrpc: %s", err->msg);
            error_free(err);
        } else if (rc == TTRPC_FRAME_READY) {
            handle_response(conn, &frame);
        } else if (rc == TTRPC_FRAME_OVERSIZED) {
            handle_oversized(conn, &frame.header);
        }
    }
}

static void on_connect(uv_connect_t *req, int status)
{
    struct client_conn *conn = req->data;
    if (conn->closing)
        return;
    if (status < 0) {
        conn_lost(conn, RPC_UNAVAILABLE, "ttrpc: connect %s: %s", conn->client->path,
                  uv_strerror(status));
        return;
    }
    conn->connected = true;
    int rc = uv_read_start((uv_stream_t *)&conn->pipe, on_alloc, on_read);
    if (rc < 0) {
        conn_lost(conn, RPC_UNAVAILABLE, "ttrpc: read: %s", uv_strerror(rc));
        return;
    }
    for (struct client_call *c = conn->calls; c != NULL && !conn->closing; c = c->next)
        call_send(c);
}

static struct client_conn *client_connection(ttrpc_client_t *client)
{
    if (client->conn != NULL)
        return client->conn;
    /* Zeroes everything but the read buffer: calloc would clear (and so make
     * resident) all 64 KiB of it, where a read of a small response touches one page. */
    struct client_conn *conn = malloc(sizeof(*conn));
    if (conn == NULL)
        return NULL;
    memset(conn, 0, offsetof(struct client_conn, read_buf));
    uv_pipe_init(client->loop, &conn->pipe, 0);
    conn->pipe.data = conn;
    conn->client = client;
    conn->next_stream_id = 1;
    ttrpc_frame_reader_init(&conn->reader);
    conn->connect_req.data = conn;
    uv_pipe_connect(&conn->connect_req, &conn->pipe, client->path, on_connect);
    client->conn = conn;
    client->n_conns++;
    return conn;
}

int ttrpc_client_call(ttrpc_client_t *client, const struct ttrpc_call_args *args,
                      ttrpc_client_cb cb, void *arg, shim_error_t **err)
{
    if (client->closed)
        return error_set(err, RPC_CANCELED, "ttrpc client is closed");
    struct client_call *call = calloc(1, sizeof(*call));
    if (call == NULL)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "ttrpc client: out of memory");
    int64_t timeout_nano = (int64_t)args->timeout_ms * 1000000;
    if (ttrpc_request_frame(0, args->service, args->method, args->payload, args->len, timeout_nano,
                            args->metadata, args->n_metadata, &call->frame, &call->frame_len,
                            err) < 0) {
        free(call);
        return -1;
    }
    if (args->timeout_ms > 0)
        call->deadline = malloc(sizeof(*call->deadline));
    struct client_conn *conn = client_connection(client);
    if (conn == NULL || (args->timeout_ms > 0 && call->deadline == NULL)) {
        free(call->deadline);
        free(call->frame);
        free(call);
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "ttrpc client: out of memory");
    }
    if (call->deadline != NULL) {
        uv_timer_init(client->loop, call->deadline);
        call->deadline->data = call;
        uv_timer_start(call->deadline, on_call_deadline, args->timeout_ms, 0);
    }
    call->cb = cb;
    call->arg = arg;
    call->conn = conn;
    call->prev = conn->calls_tail;
    if (conn->calls_tail)
        conn->calls_tail->next = call;
    else
        conn->calls = call;
    conn->calls_tail = call;
    if (conn->connected)
        call_send(call);
    return 0;
}

void ttrpc_client_close(ttrpc_client_t *client)
{
    if (client->closed)
        return;
    client->closed = true;
    if (client->conn != NULL)
        conn_lost(client->conn, RPC_CANCELED, "ttrpc client closed");
    client_maybe_free(client);
}
