#include "hcs/qmp.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

struct qmp_pending {
    struct qmp_pending *next;
    uint64_t id;
    qmp_reply_cb cb;
    void *opaque;
};

enum qmp_phase { QMP_GREETING, QMP_NEGOTIATING, QMP_READY, QMP_DEAD };

struct qmp_client {
    uv_pipe_t pipe;
    uv_loop_t *loop;
    struct qmp_callbacks cbs;
    void *opaque;
    enum qmp_phase phase;
    bool closing;     /* qmp_client_close called: no callbacks any more */
    bool in_callback; /* dispatching: defer the free */
    uint64_t next_id;
    struct qmp_pending *pending;
    /* Unconsumed input: line[0, line_len) is one partial line plus whatever
     * the last read appended; line[0, line_scanned) holds no '\n'. */
    char *line;
    size_t line_len, line_cap, line_scanned;
};

struct qmp_write {
    uv_write_t req;
    char *data;
};

static void client_fail(struct qmp_client *c, int code, const char *fmt, const char *detail);

static void on_closed(uv_handle_t *h)
{
    struct qmp_client *c = h->data;
    free(c->line);
    free(c);
}

static void fail_pending(struct qmp_client *c, int code, const char *why)
{
    while (c->pending) {
        struct qmp_pending *p = c->pending;
        c->pending = p->next;
        if (!c->closing && p->cb) {
            shim_error_t e = {.code = code, .msg = (char *)why};
            p->cb(c, NULL, &e, p->opaque);
        }
        free(p);
    }
}

static void on_written(uv_write_t *req, int status)
{
    struct qmp_write *w = (struct qmp_write *)req;
    (void)status; /* a failed write shows up as a read error / EOF too */
    free(w->data);
    free(w);
}

static int send_json(struct qmp_client *c, json_t *msg, shim_error_t **err)
{
    char *text = json_dumps(msg, JSON_COMPACT);
    if (!text)
        return error_set(err, RPC_INTERNAL, "qmp: cannot encode command");
    size_t n = strlen(text);
    char *data = realloc(text, n + 2);
    struct qmp_write *w = data ? calloc(1, sizeof(*w)) : NULL;
    if (!w) {
        free(data ? data : text);
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "qmp: out of memory");
    }
    memcpy(data + n, "\r\n", 2);
    w->data = data;
    uv_buf_t buf = uv_buf_init(data, (unsigned)(n + 2));
    int rc = uv_write(&w->req, (uv_stream_t *)&c->pipe, &buf, 1, on_written);
    if (rc < 0) {
        free(data);
        free(w);
        return error_set_uv(err, RPC_UNAVAILABLE, rc, "qmp: write");
    }
    return 0;
}

static int queue_command(struct qmp_client *c, const char *command, json_t *args, qmp_reply_cb cb,
                         void *opaque, shim_error_t **err)
{
    struct qmp_pending *p = calloc(1, sizeof(*p));
    json_t *msg = json_pack("{s:s}", "execute", command);
    if (!p || !msg) {
        free(p);
        json_decref(msg);
        json_decref(args);
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "qmp: out of memory");
    }
    if (args)
        json_object_set_new(msg, "arguments", args);
    p->id = c->next_id++;
    json_object_set_new(msg, "id", json_integer((json_int_t)p->id));
    int rc = send_json(c, msg, err);
    json_decref(msg);
    if (rc < 0) {
        free(p);
        return -1;
    }
    p->cb = cb;
    p->opaque = opaque;
    /* Append: keeps the list in send order (cheap lookups for in-order replies). */
    struct qmp_pending **tail = &c->pending;
    while (*tail)
        tail = &(*tail)->next;
    *tail = p;
    return 0;
}

static void on_capabilities(struct qmp_client *c, json_t *ret, const shim_error_t *err,
                            void *opaque)
{
    (void)ret;
    (void)opaque;
    if (err) {
        /* Nothing else is allowed before qmp_capabilities succeeded: the
         * connection is useless. (When the connection ended first,
         * client_fail is already running and this is a no-op.) */
        client_fail(c, err->code, "qmp: capabilities negotiation failed: %s", err->msg);
        return;
    }
    c->phase = QMP_READY;
    if (c->cbs.ready)
        c->cbs.ready(c, NULL, c->opaque);
}

static void handle_greeting(struct qmp_client *c, json_t *msg)
{
    if (!json_is_object(json_object_get(msg, "QMP"))) {
        client_fail(c, RPC_INTERNAL, "qmp: expected the greeting, got %s", "another message");
        return;
    }
    shim_error_t *err = NULL;
    c->phase = QMP_NEGOTIATING;
    if (queue_command(c, "qmp_capabilities", NULL, on_capabilities, NULL, &err) < 0) {
        client_fail(c, err->code, "%s", err->msg);
        error_free(err);
    }
}

static struct qmp_pending *take_pending(struct qmp_client *c, json_t *id)
{
    if (!json_is_integer(id))
        return NULL;
    uint64_t want = (uint64_t)json_integer_value(id);
    for (struct qmp_pending **pp = &c->pending; *pp; pp = &(*pp)->next) {
        if ((*pp)->id == want) {
            struct qmp_pending *p = *pp;
            *pp = p->next;
            return p;
        }
    }
    return NULL;
}

static void handle_reply(struct qmp_client *c, json_t *msg)
{
    struct qmp_pending *p = take_pending(c, json_object_get(msg, "id"));
    json_t *error = json_object_get(msg, "error");
    if (!p) {
        /* A reply without (our) id: QEMU answers a command it could not parse
         * that way. Nothing waits for it. */
        const char *desc = json_string_value(json_object_get(error, "desc"));
        log_warn("qmp: unmatched reply%s%s", desc ? ": " : "", desc ? desc : "");
        return;
    }
    if (p->cb) {
        if (error) {
            const char *cls = json_string_value(json_object_get(error, "class"));
            const char *desc = json_string_value(json_object_get(error, "desc"));
            shim_error_t *e = NULL;
            error_set(&e, RPC_UNKNOWN, "qmp: %s: %s", cls ? cls : "Error", desc ? desc : "?");
            p->cb(c, NULL, e, p->opaque);
            error_free(e);
        } else {
            p->cb(c, json_object_get(msg, "return"), NULL, p->opaque);
        }
    }
    free(p);
}

static void handle_line(struct qmp_client *c, const char *line, size_t len)
{
    while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
        len--;
    if (len == 0)
        return;
    json_error_t jerr;
    json_t *msg = json_loadb(line, len, 0, &jerr);
    if (!json_is_object(msg)) {
        json_decref(msg);
        client_fail(c, RPC_INTERNAL, "qmp: malformed message from QEMU: %s",
                    msg ? "not an object" : jerr.text);
        return;
    }
    if (c->phase == QMP_GREETING) {
        handle_greeting(c, msg);
    } else if (json_is_string(json_object_get(msg, "event"))) {
        if (c->cbs.event && !c->closing)
            c->cbs.event(c, json_string_value(json_object_get(msg, "event")),
                         json_object_get(msg, "data"), c->opaque);
    } else if (json_object_get(msg, "return") || json_object_get(msg, "error")) {
        handle_reply(c, msg);
    } else {
        log_warn("qmp: ignoring a message that is neither a reply nor an event");
    }
    json_decref(msg);
}

#define QMP_READ_SIZE (64u * 1024)

/* Doubles (so a long line costs linear copying), but never beyond what the
 * longest allowed line plus one read needs. */
static size_t grown_capacity(size_t cap, size_t needed)
{
    size_t limit = QMP_MAX_LINE + QMP_READ_SIZE;
    size_t grown = cap < limit / 2 ? cap * 2 : limit;
    return grown > needed ? grown : needed;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    static char dummy;
    struct qmp_client *c = h->data;
    if (c->line_cap - c->line_len < QMP_READ_SIZE) {
        size_t cap = grown_capacity(c->line_cap, c->line_len + QMP_READ_SIZE);
        char *p = realloc(c->line, cap);
        if (!p) {
            *buf = uv_buf_init(&dummy, 0); /* libuv reports UV_ENOBUFS */
            return;
        }
        c->line = p;
        c->line_cap = cap;
    }
    *buf = uv_buf_init(c->line + c->line_len, (unsigned)(c->line_cap - c->line_len));
}

/* After a long line: give the memory back once the buffer is nearly empty. */
static void shrink_buffer(struct qmp_client *c)
{
    if (c->line_cap <= 4 * QMP_READ_SIZE || c->line_len > QMP_READ_SIZE)
        return;
    char *p = realloc(c->line, QMP_READ_SIZE);
    if (p) {
        c->line = p;
        c->line_cap = QMP_READ_SIZE;
    }
}

/* Splits the buffer into lines; keeps an incomplete tail. Only the bytes the
 * last read added are searched, and the tail moves only when a line was
 * consumed (then it is at most one read long), so a long line arriving in
 * small reads costs linear, not quadratic, time. */
static void consume_lines(struct qmp_client *c)
{
    size_t start = 0, from = c->line_scanned;
    c->in_callback = true;
    while (c->phase != QMP_DEAD && !c->closing) {
        char *nl = memchr(c->line + from, '\n', c->line_len - from);
        if (!nl)
            break;
        size_t end = (size_t)(nl - c->line);
        handle_line(c, c->line + start, end - start);
        start = from = end + 1;
    }
    c->in_callback = false;
    if (c->phase == QMP_DEAD || c->closing) {
        c->line_len = c->line_scanned = 0;
        return;
    }
    if (start > 0) {
        memmove(c->line, c->line + start, c->line_len - start);
        c->line_len -= start;
        shrink_buffer(c);
    }
    c->line_scanned = c->line_len;
    if (c->line_len > QMP_MAX_LINE)
        client_fail(c, RPC_RESOURCE_EXHAUSTED, "qmp: message longer than %s", "16 MiB");
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct qmp_client *c = s->data;
    (void)buf;
    if (nread == 0)
        return;
    if (nread < 0) {
        client_fail(c, RPC_UNAVAILABLE, "qmp: connection to QEMU lost: %s",
                    nread == UV_EOF ? "end of stream" : uv_strerror((int)nread));
        return;
    }
    c->line_len += (size_t)nread;
    consume_lines(c);
    if (c->closing && !uv_is_closing((uv_handle_t *)&c->pipe))
        uv_close((uv_handle_t *)&c->pipe, on_closed);
}

/* The connection is unusable: stop reading, fail everything, tell the owner. */
static void client_fail(struct qmp_client *c, int code, const char *fmt, const char *detail)
{
    if (c->phase == QMP_DEAD)
        return;
    enum qmp_phase was = c->phase;
    c->phase = QMP_DEAD;
    uv_read_stop((uv_stream_t *)&c->pipe);
    shim_error_t *e = NULL;
    error_set(&e, code, fmt, detail);
    log_debug("%s", e->msg);
    fail_pending(c, code, e->msg);
    if (!c->closing) {
        if (was != QMP_READY && c->cbs.ready)
            c->cbs.ready(c, e, c->opaque); /* never got ready: say so first */
        if (c->cbs.closed && !c->closing)
            c->cbs.closed(c, e, c->opaque);
    }
    error_free(e);
}

int qmp_client_open(uv_loop_t *loop, int fd, const struct qmp_callbacks *cbs, void *opaque,
                    struct qmp_client **out, shim_error_t **err)
{
    struct qmp_client *c = calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "qmp: out of memory");
    }
    c->loop = loop;
    c->cbs = *cbs;
    c->opaque = opaque;
    c->next_id = 1;
    uv_pipe_init(loop, &c->pipe, 0);
    c->pipe.data = c;
    int rc = uv_pipe_open(&c->pipe, fd);
    if (rc == 0)
        rc = uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
    if (rc < 0) {
        close(fd);
        uv_close((uv_handle_t *)&c->pipe, on_closed);
        return error_set_uv(err, RPC_INTERNAL, rc, "qmp: opening the monitor socket");
    }
    *out = c;
    return 0;
}

int qmp_client_execute(struct qmp_client *c, const char *command, json_t *args, qmp_reply_cb cb,
                       void *opaque, shim_error_t **err)
{
    if (c->closing || c->phase != QMP_READY) {
        json_decref(args);
        return error_set(err, RPC_UNAVAILABLE, "qmp: %s: monitor not connected", command);
    }
    return queue_command(c, command, args, cb, opaque, err);
}

bool qmp_client_ready(const struct qmp_client *c)
{
    return c && c->phase == QMP_READY && !c->closing;
}

size_t qmp_client_pending(const struct qmp_client *c)
{
    size_t n = 0;
    for (const struct qmp_pending *p = c->pending; p; p = p->next)
        n++;
    return n;
}

void qmp_client_close(struct qmp_client *c)
{
    if (!c || c->closing)
        return;
    c->closing = true;
    fail_pending(c, RPC_CANCELED, "qmp: client closed");
    if (c->phase != QMP_DEAD)
        uv_read_stop((uv_stream_t *)&c->pipe);
    c->phase = QMP_DEAD;
    /* Inside on_read's dispatch the handle is closed when it returns. */
    if (!c->in_callback && !uv_is_closing((uv_handle_t *)&c->pipe))
        uv_close((uv_handle_t *)&c->pipe, on_closed);
}
