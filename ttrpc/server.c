/* ttrpc server: accepts connections, reads Request frames, dispatches them to
 * registered handlers and writes one Response per request (spec §1.4).
 *
 * Ownership: the server owns listeners and connections. A connection is
 * freed when its handle is closed and no call refers to it any more (each
 * unfinished call holds a reference). A call is owned by its handler until
 * the handler finishes it. */
#include "ttrpc/ttrpc.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "ttrpc/frame.h"
#include "ttrpc/platform.h"

#define READ_BUFFER_SIZE (64 * 1024)
/* Stop reading requests while this much response data waits to be written;
 * resume below the low mark. Nothing is dropped, the peer just waits. */
#define WRITE_QUEUE_HIGH (16u << 20)
#define WRITE_QUEUE_LOW (4u << 20)

struct listener {
    uv_pipe_t pipe;
    ttrpc_server_t *server;
    struct listener *next;
};

struct conn {
    uv_pipe_t pipe;
    uv_shutdown_t shutdown_req;
    ttrpc_server_t *server; /* NULL once the handle is closed */
    struct conn *prev, *next;
    uint64_t id;
    struct ttrpc_frame_reader reader;
    ttrpc_call_t *calls; /* unanswered calls */
    size_t n_unanswered;
    int refs; /* 1 for the open handle + 1 per unfinished call */
    bool closing;
    bool read_paused;
    uint8_t read_buf[READ_BUFFER_SIZE]; /* keep last: not cleared at allocation */
};

struct ttrpc_call {
    struct conn *conn;
    ttrpc_call_t *prev, *next; /* in conn->calls while unanswered */
    uint32_t stream_id;
    Ttrpc__Request *req;
    const struct ttrpc_service *service;
    uv_timer_t *deadline;
    bool answered;
    bool cancelled;
    ttrpc_cancel_fn cancel_cb;
    void *cancel_arg;
    void *context;
};

struct ttrpc_server {
    uv_loop_t *loop;
    struct ttrpc_server_options options;
    const struct ttrpc_service **services;
    size_t n_services;
    struct listener *listeners;
    struct conn *conns;
    uint64_t next_conn_id;
    size_t open_handles; /* listeners and connections not yet closed */
    bool shutting_down;
    uv_timer_t shutdown_timer;
    ttrpc_server_done_fn done;
    void *done_arg;
};

struct write_req {
    uv_write_t req;
    struct conn *conn;
    uint8_t *frame;
};

static void conn_abort(struct conn *conn);
static void conn_resume_reading(struct conn *conn);
static void server_check_shutdown(ttrpc_server_t *server);

int ttrpc_server_new(uv_loop_t *loop, const struct ttrpc_server_options *options,
                     ttrpc_server_t **out, shim_error_t **err)
{
    ttrpc_platform_init();
    ttrpc_server_t *server = calloc(1, sizeof(*server));
    if (server == NULL)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "ttrpc server: out of memory");
    server->loop = loop;
    if (options != NULL)
        server->options = *options;
    uv_timer_init(loop, &server->shutdown_timer);
    server->shutdown_timer.data = server;
    *out = server;
    return 0;
}

int ttrpc_server_register(ttrpc_server_t *server, const struct ttrpc_service *service,
                          shim_error_t **err)
{
    for (size_t i = 0; i < server->n_services; i++) {
        if (strcmp(server->services[i]->name, service->name) == 0)
            return error_set(err, RPC_ALREADY_EXISTS, "service %s already registered",
                             service->name);
    }
    const struct ttrpc_service **grown =
        realloc(server->services, (server->n_services + 1) * sizeof(*grown));
    if (grown == NULL)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "ttrpc server: out of memory");
    grown[server->n_services++] = service;
    server->services = grown;
    return 0;
}

/* ---- writing ------------------------------------------------------------ */

static void on_write(uv_write_t *req, int status)
{
    struct write_req *wr = (struct write_req *)req;
    struct conn *conn = wr->conn;
    free(wr->frame);
    free(wr);
    if (status < 0 && !conn->closing) {
        log_debug("ttrpc: write on connection %" PRIu64 " failed: %s", conn->id,
                  uv_strerror(status));
        conn_abort(conn);
        return;
    }
    if (conn->read_paused && !conn->closing && conn->pipe.write_queue_size < WRITE_QUEUE_LOW) {
        conn->read_paused = false;
        conn_resume_reading(conn);
    }
}

/* Takes ownership of frame. */
static void conn_write(struct conn *conn, uint8_t *frame, size_t len);

static void send_status(struct conn *conn, uint32_t stream_id, int code, const char *message)
{
    uint8_t *frame;
    size_t len;
    if (ttrpc_response_frame(stream_id, code, message, NULL, 0, &frame, &len) < 0) {
        conn_abort(conn);
        return;
    }
    conn_write(conn, frame, len);
}

/* ---- connections -------------------------------------------------------- */

static void conn_unref(struct conn *conn)
{
    if (--conn->refs == 0) {
        ttrpc_frame_reader_reset(&conn->reader);
        free(conn);
    }
}

static void on_conn_closed(uv_handle_t *handle)
{
    struct conn *conn = handle->data;
    ttrpc_server_t *server = conn->server;
    if (conn->prev)
        conn->prev->next = conn->next;
    else
        server->conns = conn->next;
    if (conn->next)
        conn->next->prev = conn->prev;
    conn->server = NULL;
    server->open_handles--;
    log_debug("ttrpc: connection %" PRIu64 " closed", conn->id);
    conn_unref(conn);
    server_check_shutdown(server);
}

static void call_close_deadline(ttrpc_call_t *call);

/* Marks an unanswered call answered: no response may follow any more. */
static void call_unlink(ttrpc_call_t *call)
{
    struct conn *conn = call->conn;
    call->answered = true;
    if (call->prev)
        call->prev->next = call->next;
    else
        conn->calls = call->next;
    if (call->next)
        call->next->prev = call->prev;
    call->prev = call->next = NULL;
    conn->n_unanswered--;
}

static void call_cancel(ttrpc_call_t *call)
{
    call->cancelled = true;
    call_close_deadline(call);
    if (call->cancel_cb) {
        ttrpc_cancel_fn cb = call->cancel_cb;
        call->cancel_cb = NULL;
        cb(call, call->cancel_arg); /* may finish (free) the call */
    }
}

/* Drops the connection now; unanswered calls are cancelled. */
static void conn_abort(struct conn *conn)
{
    if (!uv_is_closing((uv_handle_t *)&conn->pipe))
        uv_close((uv_handle_t *)&conn->pipe, on_conn_closed);
    conn->closing = true;
    while (conn->calls != NULL) {
        ttrpc_call_t *call = conn->calls;
        call_unlink(call);
        call_cancel(call);
    }
}

static void on_conn_shutdown(uv_shutdown_t *req, int status)
{
    (void)status;
    uv_handle_t *handle = (uv_handle_t *)req->handle;
    if (!uv_is_closing(handle))
        uv_close(handle, on_conn_closed);
}

/* Closes an idle connection after the responses already queued are sent. */
static void conn_close_gracefully(struct conn *conn)
{
    if (conn->closing)
        return;
    conn->closing = true;
    uv_read_stop((uv_stream_t *)&conn->pipe);
    if (uv_shutdown(&conn->shutdown_req, (uv_stream_t *)&conn->pipe, on_conn_shutdown) < 0)
        uv_close((uv_handle_t *)&conn->pipe, on_conn_closed);
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct conn *conn = handle->data;
    *buf = uv_buf_init((char *)conn->read_buf, sizeof(conn->read_buf));
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

static void conn_write(struct conn *conn, uint8_t *frame, size_t len)
{
    if (conn->closing) {
        free(frame);
        return;
    }
    /* Write at once what the socket takes: a uv_write that completes at once
     * still costs a request, a loop turn and an epoll_ctl. uv_try_write writes
     * nothing (UV_EAGAIN) while earlier frames are queued, so order is kept.
     * Its errors are left to uv_write, which reports them from on_write: an
     * abort here would cancel other calls inside the caller's finish. */
    uv_buf_t buf = uv_buf_init((char *)frame, (unsigned int)len);
    int done = uv_try_write((uv_stream_t *)&conn->pipe, &buf, 1);
    if (done < 0)
        done = 0;
    if ((size_t)done == len) {
        free(frame);
        return;
    }
    struct write_req *wr = malloc(sizeof(*wr));
    if (wr == NULL) {
        free(frame);
        conn_abort(conn);
        return;
    }
    wr->conn = conn;
    wr->frame = frame; /* freed in on_write: the rest is written from it */
    buf = uv_buf_init((char *)frame + done, (unsigned int)(len - (size_t)done));
    int rc = uv_write(&wr->req, (uv_stream_t *)&conn->pipe, &buf, 1, on_write);
    if (rc < 0) {
        free(frame);
        free(wr);
        conn_abort(conn);
        return;
    }
    if (!conn->read_paused && conn->pipe.write_queue_size > WRITE_QUEUE_HIGH) {
        conn->read_paused = true;
        uv_read_stop((uv_stream_t *)&conn->pipe);
    }
}

/* ---- calls -------------------------------------------------------------- */

static void on_timer_closed(uv_handle_t *handle)
{
    free(handle);
}

static void call_close_deadline(ttrpc_call_t *call)
{
    if (call->deadline != NULL) {
        uv_close((uv_handle_t *)call->deadline, on_timer_closed);
        call->deadline = NULL;
    }
}

static void call_free(ttrpc_call_t *call)
{
    struct conn *conn = call->conn;
    call_close_deadline(call);
    ttrpc__request__free_unpacked(call->req, NULL);
    free(call);
    conn_unref(conn);
}

/* A connection with nothing left to answer closes during shutdown. */
static void conn_check_idle(struct conn *conn)
{
    if (conn->server != NULL && conn->server->shutting_down && conn->n_unanswered == 0)
        conn_close_gracefully(conn);
}

static void call_answer(ttrpc_call_t *call, int code, const char *message, const uint8_t *payload,
                        size_t len)
{
    struct conn *conn = call->conn;
    call_unlink(call);
    if (!conn->closing) {
        uint8_t *frame;
        size_t frame_len;
        if (ttrpc_response_frame(call->stream_id, code, message, payload, len, &frame, &frame_len) <
            0)
            conn_abort(conn);
        else
            conn_write(conn, frame, frame_len);
    }
    conn_check_idle(conn);
}

static void call_finish(ttrpc_call_t *call, int code, const char *message, const uint8_t *payload,
                        size_t len)
{
    if (!call->answered)
        call_answer(call, code, message, payload, len);
    call_free(call);
}

static void on_deadline(uv_timer_t *timer)
{
    ttrpc_call_t *call = timer->data;
    if (call->answered)
        return;
    log_debug("ttrpc: %s/%s on stream %u passed its deadline", call->req->service,
              call->req->method, call->stream_id);
    call_answer(call, RPC_DEADLINE_EXCEEDED, "context deadline exceeded", NULL, 0);
    call_cancel(call);
}

static int call_start_deadline(ttrpc_call_t *call, uv_loop_t *loop)
{
    int64_t ns = call->req->timeout_nano;
    if (ns <= 0)
        return 0;
    call->deadline = malloc(sizeof(*call->deadline));
    if (call->deadline == NULL)
        return -1;
    uv_timer_init(loop, call->deadline);
    call->deadline->data = call;
    uint64_t ms = (uint64_t)ns / 1000000u + ((uint64_t)ns % 1000000u != 0);
    uv_timer_start(call->deadline, on_deadline, ms, 0);
    return 0;
}

static const struct ttrpc_service *find_service(ttrpc_server_t *server, const char *name)
{
    for (size_t i = 0; i < server->n_services; i++) {
        if (strcmp(server->services[i]->name, name) == 0)
            return server->services[i];
    }
    return NULL;
}

static ttrpc_handler_fn find_method(const struct ttrpc_service *service, const char *name)
{
    for (size_t i = 0; i < service->n_methods; i++) {
        if (strcmp(service->methods[i].name, name) == 0)
            return service->methods[i].handler;
    }
    return NULL;
}

/* Takes ownership of req. */
static void dispatch(struct conn *conn, uint32_t stream_id, Ttrpc__Request *req)
{
    char message[512];
    const struct ttrpc_service *service = find_service(conn->server, req->service);
    ttrpc_handler_fn handler = service ? find_method(service, req->method) : NULL;
    if (handler == NULL) {
        snprintf(message, sizeof(message), "%s %s", service ? "method" : "service",
                 service ? req->method : req->service);
        ttrpc__request__free_unpacked(req, NULL);
        send_status(conn, stream_id, RPC_UNIMPLEMENTED, message);
        return;
    }
    ttrpc_call_t *call = calloc(1, sizeof(*call));
    if (call == NULL) {
        ttrpc__request__free_unpacked(req, NULL);
        send_status(conn, stream_id, RPC_RESOURCE_EXHAUSTED, "ttrpc server: out of memory");
        return;
    }
    call->conn = conn;
    call->stream_id = stream_id;
    call->req = req;
    call->service = service;
    call->next = conn->calls;
    if (conn->calls)
        conn->calls->prev = call;
    conn->calls = call;
    conn->n_unanswered++;
    conn->refs++;
    if (call_start_deadline(call, conn->server->loop) < 0) {
        call_finish(call, RPC_RESOURCE_EXHAUSTED, "ttrpc server: out of memory", NULL, 0);
        return;
    }
    log_trace("ttrpc: %s/%s stream %u", req->service, req->method, stream_id);
    handler(call);
}

/* Takes ownership of frame->body. */
static void handle_frame(struct conn *conn, struct ttrpc_frame *frame)
{
    const struct ttrpc_frame_header *hdr = &frame->header;
    shim_error_t *err = NULL;
    Ttrpc__Request *req = NULL;
    if (hdr->type != TTRPC_TYPE_REQUEST) {
        /* Ignored for compatibility with later protocol versions. */
        free(frame->body);
        return;
    }
    if (hdr->stream_id % 2 != 1) {
        free(frame->body);
        send_status(conn, hdr->stream_id, RPC_INVALID_ARGUMENT,
                    "StreamID must be odd for client initiated streams");
        return;
    }
    int rc = ttrpc_request_decode(frame->body, hdr->length, &req, &err);
    free(frame->body);
    if (rc < 0) {
        send_status(conn, hdr->stream_id, err->code, err->msg);
        error_free(err);
        return;
    }
    dispatch(conn, hdr->stream_id, req);
}

static void conn_process(struct conn *conn, const uint8_t *data, size_t len)
{
    size_t off = 0;
    while (off < len && !conn->closing) {
        struct ttrpc_frame frame;
        size_t used = 0;
        shim_error_t *err = NULL;
        int rc = ttrpc_frame_reader_feed(&conn->reader, data + off, len - off, &used, &frame, &err);
        off += used;
        if (rc < 0) {
            log_warn("ttrpc: connection %" PRIu64 ": %s", conn->id, err->msg);
            error_free(err);
            conn_abort(conn);
        } else if (rc == TTRPC_FRAME_READY) {
            handle_frame(conn, &frame);
        } else if (rc == TTRPC_FRAME_OVERSIZED) {
            char message[128];
            snprintf(message, sizeof(message),
                     "message length %" PRIu32 " exceed maximum message size of %u",
                     frame.header.length, TTRPC_MESSAGE_LENGTH_MAX);
            send_status(conn, frame.header.stream_id, RPC_RESOURCE_EXHAUSTED, message);
        }
    }
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *conn = stream->data;
    if (nread < 0) {
        if (nread != UV_EOF)
            log_debug("ttrpc: connection %" PRIu64 " read: %s", conn->id, uv_strerror((int)nread));
        conn_abort(conn);
        return;
    }
    conn_process(conn, (const uint8_t *)buf->base, (size_t)nread);
}

static void conn_resume_reading(struct conn *conn)
{
    uv_read_start((uv_stream_t *)&conn->pipe, on_alloc, on_read);
}

/* Zeroes everything but the read buffer: calloc would clear (and so make
 * resident) all 64 KiB of it, where a read of a small request touches one page. */
static struct conn *conn_alloc(void)
{
    struct conn *conn = malloc(sizeof(*conn));
    if (conn != NULL)
        memset(conn, 0, offsetof(struct conn, read_buf));
    return conn;
}

static void on_connection(uv_stream_t *listener_stream, int status)
{
    struct listener *listener = listener_stream->data;
    ttrpc_server_t *server = listener->server;
    shim_error_t *err = NULL;
    if (status < 0) {
        log_warn("ttrpc: accept: %s", uv_strerror(status));
        return;
    }
    struct conn *conn = conn_alloc();
    if (conn == NULL)
        return; /* the pending connection stays in the backlog */
    uv_pipe_init(server->loop, &conn->pipe, 0);
    conn->pipe.data = conn;
    conn->server = server;
    conn->refs = 1;
    conn->id = ++server->next_conn_id;
    ttrpc_frame_reader_init(&conn->reader);
    conn->next = server->conns;
    if (server->conns)
        server->conns->prev = conn;
    server->conns = conn;
    server->open_handles++;
    int rc = uv_accept(listener_stream, (uv_stream_t *)&conn->pipe);
    if (rc < 0) {
        log_warn("ttrpc: accept: %s", uv_strerror(rc));
        conn_abort(conn);
        return;
    }
    if (server->options.require_same_uid && ttrpc_platform_check_peer(&conn->pipe, &err) < 0) {
        log_warn("ttrpc: rejecting connection: %s", err->msg);
        error_free(err);
        conn_abort(conn);
        return;
    }
    log_debug("ttrpc: connection %" PRIu64 " accepted", conn->id);
    conn_resume_reading(conn);
}

/* ---- listening ---------------------------------------------------------- */

static void on_listener_closed(uv_handle_t *handle)
{
    struct listener *listener = handle->data;
    ttrpc_server_t *server = listener->server;
    free(listener);
    server->open_handles--;
    server_check_shutdown(server);
}

static struct listener *listener_new(ttrpc_server_t *server)
{
    struct listener *listener = calloc(1, sizeof(*listener));
    if (listener == NULL)
        return NULL;
    uv_pipe_init(server->loop, &listener->pipe, 0);
    listener->pipe.data = listener;
    listener->server = server;
    server->open_handles++;
    return listener;
}

static int listener_start(ttrpc_server_t *server, struct listener *listener, shim_error_t **err)
{
    int rc = uv_listen((uv_stream_t *)&listener->pipe, 128, on_connection);
    if (rc < 0) {
        uv_close((uv_handle_t *)&listener->pipe, on_listener_closed);
        return error_set_uv(err, RPC_INTERNAL, rc, "listen");
    }
    listener->next = server->listeners;
    server->listeners = listener;
    return 0;
}

int ttrpc_server_listen(ttrpc_server_t *server, const char *path, shim_error_t **err)
{
    if (server->shutting_down)
        return error_set(err, RPC_FAILED_PRECONDITION, "ttrpc server is shutting down");
    if (ttrpc_platform_prepare_path(path, err) < 0)
        return -1;
    struct listener *listener = listener_new(server);
    if (listener == NULL)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "ttrpc server: out of memory");
    int rc = uv_pipe_bind(&listener->pipe, path);
    if (rc < 0) {
        uv_close((uv_handle_t *)&listener->pipe, on_listener_closed);
        return error_set_uv(err, RPC_INTERNAL, rc, "bind %s", path);
    }
    if (ttrpc_platform_restrict_path(path, err) < 0) {
        uv_close((uv_handle_t *)&listener->pipe, on_listener_closed);
        return -1;
    }
    if (listener_start(server, listener, err) < 0)
        return error_wrap(err, "%s", path);
    log_debug("ttrpc: listening on %s", path);
    return 0;
}

int ttrpc_server_adopt(ttrpc_server_t *server, uv_file fd, shim_error_t **err)
{
    if (server->shutting_down)
        return error_set(err, RPC_FAILED_PRECONDITION, "ttrpc server is shutting down");
    struct listener *listener = listener_new(server);
    if (listener == NULL)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "ttrpc server: out of memory");
    int rc = uv_pipe_open(&listener->pipe, fd);
    if (rc < 0) {
        uv_close((uv_handle_t *)&listener->pipe, on_listener_closed);
        return error_set_uv(err, RPC_INTERNAL, rc, "adopt listening socket %d", (int)fd);
    }
    if (listener_start(server, listener, err) < 0)
        return error_wrap(err, "adopted socket %d", (int)fd);
    return 0;
}

/* ---- shutdown ----------------------------------------------------------- */

static void on_server_freed(uv_handle_t *handle)
{
    ttrpc_server_t *server = handle->data;
    ttrpc_server_done_fn done = server->done;
    void *arg = server->done_arg;
    free(server->services);
    free(server);
    if (done)
        done(arg);
}

static void server_check_shutdown(ttrpc_server_t *server)
{
    if (!server->shutting_down || server->open_handles > 0)
        return;
    if (!uv_is_closing((uv_handle_t *)&server->shutdown_timer))
        uv_close((uv_handle_t *)&server->shutdown_timer, on_server_freed);
}

static void on_shutdown_timeout(uv_timer_t *timer)
{
    ttrpc_server_t *server = timer->data;
    log_warn("ttrpc: shutdown timed out; dropping connections with calls in flight");
    for (struct conn *conn = server->conns; conn != NULL; conn = conn->next)
        conn_abort(conn);
}

void ttrpc_server_shutdown(ttrpc_server_t *server, uint64_t timeout_ms, ttrpc_server_done_fn done,
                           void *arg)
{
    if (server->shutting_down)
        return;
    server->shutting_down = true;
    server->done = done;
    server->done_arg = arg;
    for (struct listener *l = server->listeners; l != NULL; l = l->next)
        uv_close((uv_handle_t *)&l->pipe, on_listener_closed);
    server->listeners = NULL;
    for (struct conn *conn = server->conns; conn != NULL; conn = conn->next)
        conn_check_idle(conn);
    uv_timer_start(&server->shutdown_timer, on_shutdown_timeout, timeout_ms, 0);
    server_check_shutdown(server);
}

/* ---- call API ------------------------------------------------------------ */

const char *ttrpc_call_service(const ttrpc_call_t *call)
{
    return call->req->service;
}

const char *ttrpc_call_method(const ttrpc_call_t *call)
{
    return call->req->method;
}

const uint8_t *ttrpc_call_payload(const ttrpc_call_t *call, size_t *len)
{
    *len = call->req->payload.len;
    return call->req->payload.data;
}

ProtobufCMessage *ttrpc_call_unpack(const ttrpc_call_t *call,
                                    const ProtobufCMessageDescriptor *descriptor,
                                    shim_error_t **err)
{
    ProtobufCMessage *msg = protobuf_c_message_unpack(descriptor, NULL, call->req->payload.len,
                                                      call->req->payload.data);
    if (msg == NULL)
        error_set(err, RPC_INVALID_ARGUMENT, "unmarshal %s request: invalid %s", call->req->method,
                  descriptor->name);
    return msg;
}

int64_t ttrpc_call_timeout_nano(const ttrpc_call_t *call)
{
    return call->req->timeout_nano;
}

size_t ttrpc_call_metadata_count(const ttrpc_call_t *call)
{
    return call->req->n_metadata;
}

bool ttrpc_call_metadata_at(const ttrpc_call_t *call, size_t i, const char **key,
                            const char **value)
{
    if (i >= call->req->n_metadata)
        return false;
    *key = call->req->metadata[i]->key;
    *value = call->req->metadata[i]->value;
    return true;
}

const char *ttrpc_call_metadata_get(const ttrpc_call_t *call, const char *key)
{
    for (size_t i = 0; i < call->req->n_metadata; i++) {
        if (strcmp(call->req->metadata[i]->key, key) == 0)
            return call->req->metadata[i]->value;
    }
    return NULL;
}

uint64_t ttrpc_call_connection_id(const ttrpc_call_t *call)
{
    return call->conn->id;
}

void *ttrpc_call_user_data(const ttrpc_call_t *call)
{
    return call->service->user_data;
}

bool ttrpc_call_cancelled(const ttrpc_call_t *call)
{
    return call->cancelled;
}

void ttrpc_call_on_cancel(ttrpc_call_t *call, ttrpc_cancel_fn cancel, void *arg)
{
    call->cancel_cb = cancel;
    call->cancel_arg = arg;
}

void ttrpc_call_set_context(ttrpc_call_t *call, void *context)
{
    call->context = context;
}

void *ttrpc_call_context(const ttrpc_call_t *call)
{
    return call->context;
}

void ttrpc_call_reply(ttrpc_call_t *call, const uint8_t *payload, size_t len)
{
    call_finish(call, RPC_OK, NULL, payload, len);
}

void ttrpc_call_reply_message(ttrpc_call_t *call, const ProtobufCMessage *message)
{
    if (message == NULL) {
        call_finish(call, RPC_OK, NULL, NULL, 0);
        return;
    }
    size_t len = protobuf_c_message_get_packed_size(message);
    uint8_t *buf = malloc(len ? len : 1);
    if (buf == NULL) {
        call_finish(call, RPC_RESOURCE_EXHAUSTED, "ttrpc server: out of memory", NULL, 0);
        return;
    }
    protobuf_c_message_pack(message, buf);
    call_finish(call, RPC_OK, NULL, buf, len);
    free(buf);
}

void ttrpc_call_fail(ttrpc_call_t *call, int code, const char *fmt, ...)
{
    /* Plain C (no vasprintf) so the same file builds for Windows. */
    va_list ap, again;
    va_start(ap, fmt);
    va_copy(again, ap);
    int len = vsnprintf(NULL, 0, fmt, ap);
    char *message = len >= 0 ? malloc((size_t)len + 1) : NULL;
    if (message != NULL)
        vsnprintf(message, (size_t)len + 1, fmt, again);
    va_end(again);
    va_end(ap);
    if (code == RPC_OK)
        code = RPC_UNKNOWN; /* a failure must never read as success */
    call_finish(call, code, message ? message : "out of memory", NULL, 0);
    free(message);
}

void ttrpc_call_fail_error(ttrpc_call_t *call, const shim_error_t *err)
{
    ttrpc_call_fail(call, err ? err->code : RPC_UNKNOWN, "%s",
                    err && err->msg ? err->msg : "unknown error");
}
