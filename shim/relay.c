#include "shim/stdio.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "shim/stdio_internal.h"

/* ---- relay -------------------------------------------------------------------------- */

/* Spare read buffers a copier keeps: never more than it can have in flight. */
/* After the last byte went into the upstream FIFO, wait for the reader to
 * take it (bounded) before reporting drained: containerd 1.6's client closes
 * its FIFO readers as soon as Wait returns, and bytes still sitting in the
 * pipe would be lost. The wait ends early once the reader stops making
 * progress for RELAY_SETTLE_IDLE_MS. */
#define RELAY_SETTLE_POLL_MS 5
#define RELAY_SETTLE_IDLE_MS 1000
#define RELAY_SPARE_MAX (SHIM_RELAY_HIGH_WATER / SHIM_RELAY_BUFFER_SIZE + 1)

struct copier {
    shim_relay_t *relay;
    const char *name;
    uv_stream_t *src;  /* owned by the relay unless src_borrowed */
    bool src_borrowed; /* upstream stdin pipe: the io owns it */
    uv_stream_t *dst_stream;
    int dst_fd;
    bool dst_owned; /* process stdin: closed by the relay at EOF */
    bool dst_broken;
    bool reading;
    bool eof;
    bool finished;
    size_t in_flight; /* bytes handed to the writer, not yet written */
    size_t max_in_flight;
    uint64_t written;
    /* Written buffers are reused rather than freed: glibc returns the heap
     * top to the kernel whenever the queue drains, and fresh buffers would
     * fault their pages in again for every chunk. */
    char *spare[RELAY_SPARE_MAX];
    unsigned n_spare;
    /* File sinks: one uv_fs_write at a time (the thread pool would run
     * several appends in any order); the rest wait here, in order. */
    bool fs_busy;
    struct write_op *fs_head, *fs_tail;
};

struct write_op {
    union {
        uv_write_t write;
        uv_fs_t fs;
        uv_shutdown_t shutdown;
    } req;
    struct copier *c;
    char *buf;
    size_t len;
    size_t off;            /* bytes of buf already written (try_write, partial fs writes) */
    size_t queued;         /* bytes counted in in_flight */
    struct write_op *next; /* in the copier's file-write queue */
};

struct shim_relay {
    uv_loop_t *loop;
    shim_upstream_io_t *io;
    struct copier in, out, err;
    uv_timer_t *drain_timer;  /* defers the "nothing to drain" callback */
    uv_timer_t *settle_timer; /* polls the upstream FIFOs until the reader emptied them */
    int settle_unread;        /* bytes still unread at the last poll */
    uint64_t settle_idle_ms;  /* time without reader progress */
    shim_relay_drained_cb drained_cb;
    void *drained_data;
    bool drained;
    bool starting; /* no callbacks from inside shim_relay_start */
    bool closing;
    int pending; /* open process handles, requests in flight, timer */
    shim_io_closed_cb closed_cb;
    void *closed_data;
};

static void copier_free_spares(struct copier *c)
{
    while (c->n_spare > 0)
        free(c->spare[--c->n_spare]);
}

/* Takes buf (or NULL) back for the next read while the copier still reads. */
static void copier_release_buf(struct copier *c, char *buf)
{
    if (buf != NULL && !c->finished && !c->relay->closing && c->n_spare < RELAY_SPARE_MAX)
        c->spare[c->n_spare++] = buf;
    else
        free(buf);
}

static void relay_io_closed(void *data)
{
    shim_relay_t *relay = data;
    copier_free_spares(&relay->in);
    copier_free_spares(&relay->out);
    copier_free_spares(&relay->err);
    shim_io_closed_cb cb = relay->closed_cb;
    void *cb_data = relay->closed_data;
    free(relay);
    if (cb)
        cb(cb_data);
}

static void relay_maybe_finish(shim_relay_t *relay)
{
    if (!relay->closing || relay->pending > 0)
        return;
    relay->pending = -1; /* finish once */
    shim_upstream_io_close(relay->io, relay_io_closed, relay);
}

static void relay_handle_closed(uv_handle_t *h)
{
    shim_relay_t *relay = h->data;
    free(h);
    relay->pending--;
    relay_maybe_finish(relay);
}

static void relay_close_handle(shim_relay_t *relay, uv_handle_t *h)
{
    if (h == NULL || uv_is_closing(h))
        return;
    uv_handle_type type = uv_handle_get_type(h);
    if (type == UV_NAMED_PIPE || type == UV_TCP || type == UV_TTY)
        uv_read_stop((uv_stream_t *)h);
    h->data = relay;
    uv_close(h, relay_handle_closed);
}

static void relay_report_drained(shim_relay_t *relay)
{
    relay->drained = true;
    if (relay->drained_cb)
        relay->drained_cb(relay, relay->drained_data);
}

static void settle_timer_cb(uv_timer_t *t);

/* Reports drained once the readers emptied the FIFOs, or stopped reading. */
static void relay_settle(shim_relay_t *relay)
{
    int unread = stdio_sink_unread(&relay->io->out) + stdio_sink_unread(&relay->io->err);
    if (unread == 0 || relay->settle_idle_ms >= RELAY_SETTLE_IDLE_MS) {
        if (unread > 0)
            log_fields(LOG_LEVEL_WARN, "stdio relay: reader stopped taking output; going on", NULL);
        if (relay->settle_timer != NULL) {
            relay_close_handle(relay, (uv_handle_t *)relay->settle_timer);
            relay->settle_timer = NULL;
        }
        relay_report_drained(relay);
        return;
    }
    if (relay->settle_timer == NULL) {
        uv_timer_t *timer = malloc(sizeof(*timer));
        if (timer == NULL) {
            relay_report_drained(relay);
            return;
        }
        uv_timer_init(relay->loop, timer);
        timer->data = relay;
        relay->settle_timer = timer;
        relay->pending++;
        relay->settle_unread = unread;
    }
    if (unread < relay->settle_unread)
        relay->settle_idle_ms = 0;
    relay->settle_unread = unread;
    uv_timer_start(relay->settle_timer, settle_timer_cb, RELAY_SETTLE_POLL_MS, 0);
}

static void settle_timer_cb(uv_timer_t *t)
{
    shim_relay_t *relay = t->data;
    if (relay->drained || relay->closing)
        return;
    relay->settle_idle_ms += RELAY_SETTLE_POLL_MS;
    relay_settle(relay);
}

static void relay_check_drained(shim_relay_t *relay)
{
    if (relay->drained || relay->closing || relay->starting || relay->settle_timer != NULL)
        return;
    if (!relay->out.finished || !relay->err.finished)
        return;
    relay_settle(relay);
}

static void copier_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void copier_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void copier_resume(struct copier *c)
{
    if (c->reading || c->eof || c->src == NULL || c->relay->closing)
        return;
    if (c->in_flight >= SHIM_RELAY_HIGH_WATER)
        return;
    c->src->data = c;
    if (uv_read_start(c->src, copier_alloc, copier_read) == 0)
        c->reading = true;
}

static void stdin_shutdown_done(uv_shutdown_t *req, int status)
{
    (void)status; /* a plain pipe cannot half-close (ENOTSOCK): closing ends it */
    struct write_op *op = (struct write_op *)req;
    shim_relay_t *relay = op->c->relay;
    relay_close_handle(relay, (uv_handle_t *)op->c->dst_stream);
    op->c->dst_stream = NULL;
    free(op);
    relay->pending--;
    relay_maybe_finish(relay);
}

/* The process's stdin ends: half-close if the stream can, then close. */
static void close_process_stdin(struct copier *c)
{
    shim_relay_t *relay = c->relay;
    if (c->dst_stream == NULL || uv_is_closing((uv_handle_t *)c->dst_stream))
        return;
    struct write_op *op = calloc(1, sizeof(*op));
    if (op != NULL) {
        op->c = c;
        if (uv_shutdown(&op->req.shutdown, c->dst_stream, stdin_shutdown_done) == 0) {
            relay->pending++;
            return;
        }
        free(op);
    }
    relay_close_handle(relay, (uv_handle_t *)c->dst_stream);
    c->dst_stream = NULL;
}

/* The source hit EOF (or failed) and every byte read has been written. */
static void copier_maybe_finish(struct copier *c)
{
    if (!c->eof || c->in_flight > 0 || c->finished)
        return;
    c->finished = true;
    copier_free_spares(c);
    shim_relay_t *relay = c->relay;
    if (c->dst_owned)
        close_process_stdin(c);
    if (!c->src_borrowed) {
        relay_close_handle(relay, (uv_handle_t *)c->src);
        c->src = NULL;
    }
    relay_check_drained(relay);
}

static void op_done(struct write_op *op, int status)
{
    struct copier *c = op->c;
    shim_relay_t *relay = c->relay;
    if (status < 0 && status != UV_ECANCELED && !c->dst_broken) {
        log_fields(LOG_LEVEL_WARN, "stdio relay: writer failed; discarding further output",
                   "stream", c->name, "error", uv_strerror(status), NULL);
    }
    if (status < 0)
        c->dst_broken = true;
    else
        c->written += op->queued;
    c->in_flight -= op->queued;
    copier_release_buf(c, op->buf);
    free(op);
    relay->pending--;
    copier_resume(c);
    copier_maybe_finish(c);
    relay_maybe_finish(relay);
}

static void stream_write_done(uv_write_t *req, int status)
{
    op_done((struct write_op *)req, status);
}

static int submit_fs_write(struct write_op *op);

static struct write_op *fs_queue_pop(struct copier *c)
{
    struct write_op *op = c->fs_head;
    if (op != NULL) {
        c->fs_head = op->next;
        if (c->fs_head == NULL)
            c->fs_tail = NULL;
    } else {
        c->fs_busy = false;
    }
    return op;
}

/* Submits queued file writes in order until one is in flight. A queued op
 * keeps relay->pending above zero, so the relay outlives every op_done here
 * but the last. */
static void fs_queue_run(struct copier *c, struct write_op *op)
{
    for (;;) {
        int rc = c->dst_broken || c->relay->closing ? UV_ECANCELED : submit_fs_write(op);
        if (rc == 0)
            return;
        struct write_op *next = fs_queue_pop(c);
        op_done(op, rc);
        if (next == NULL)
            return;
        op = next;
    }
}

static void fs_write_done(uv_fs_t *req)
{
    struct write_op *op = (struct write_op *)req;
    ssize_t result = req->result;
    uv_fs_req_cleanup(req);
    if (result > 0 && op->off + (size_t)result < op->len && !op->c->relay->closing) {
        op->off += (size_t)result;
        if (submit_fs_write(op) == 0)
            return;
        result = UV_EIO;
    }
    struct copier *c = op->c;
    struct write_op *next = fs_queue_pop(c);
    op_done(op, result < 0 ? (int)result : 0);
    if (next != NULL)
        fs_queue_run(c, next);
}

/* Starts op now, or after the file writes before it. */
static int fs_write(struct copier *c, struct write_op *op)
{
    if (c->fs_busy) {
        if (c->fs_tail != NULL)
            c->fs_tail->next = op;
        else
            c->fs_head = op;
        c->fs_tail = op;
        return 0;
    }
    int rc = submit_fs_write(op);
    c->fs_busy = rc == 0;
    return rc;
}

static int submit_fs_write(struct write_op *op)
{
    uv_buf_t b = uv_buf_init(op->buf + op->off, (unsigned)(op->len - op->off));
    return uv_fs_write(op->c->relay->loop, &op->req.fs, op->c->dst_fd, &b, 1, -1, fs_write_done);
}

static void copier_write_failed(struct copier *c, char *buf, int rc)
{
    log_fields(LOG_LEVEL_WARN, "stdio relay: cannot write; discarding further output", "stream",
               c->name, "error", uv_strerror(rc), NULL);
    c->dst_broken = true;
    copier_release_buf(c, buf);
}

/* Writes to a stream what it takes right now, without a request or a loop
 * turn; nothing while earlier writes are queued, which keeps the order.
 * Returns the bytes written or a uv error. */
static int copier_try_write(struct copier *c, char *buf, size_t len)
{
    if (c->dst_stream == NULL)
        return 0;
    uv_buf_t b = uv_buf_init(buf, (unsigned)len);
    int n = uv_try_write(c->dst_stream, &b, 1);
    if (n == UV_EAGAIN || n == UV_ENOSYS)
        return 0;
    if (n > 0)
        c->written += (uint64_t)n;
    return n;
}

/* Hands buf (ownership) to the writer. */
static void copier_write(struct copier *c, char *buf, size_t len)
{
    shim_relay_t *relay = c->relay;
    bool has_dst = c->dst_stream != NULL || c->dst_fd >= 0;
    if (c->dst_broken || !has_dst || relay->closing) {
        copier_release_buf(c, buf); /* no reader upstream (or it died): output is dropped */
        return;
    }
    int done = copier_try_write(c, buf, len);
    if (done < 0 || (size_t)done == len) {
        if (done < 0)
            copier_write_failed(c, buf, done);
        else
            copier_release_buf(c, buf);
        return;
    }
    struct write_op *op = calloc(1, sizeof(*op));
    if (op == NULL) {
        copier_release_buf(c, buf);
        return;
    }
    op->c = c;
    op->buf = buf;
    op->len = len;
    op->off = (size_t)done;
    op->queued = len - (size_t)done;
    int rc;
    if (c->dst_stream != NULL) {
        uv_buf_t b = uv_buf_init(buf + op->off, (unsigned)op->queued);
        rc = uv_write(&op->req.write, c->dst_stream, &b, 1, stream_write_done);
    } else {
        rc = fs_write(c, op);
    }
    if (rc < 0) {
        free(op);
        copier_write_failed(c, buf, rc);
        return;
    }
    c->in_flight += op->queued;
    if (c->in_flight > c->max_in_flight)
        c->max_in_flight = c->in_flight;
    relay->pending++;
    if (c->in_flight >= SHIM_RELAY_HIGH_WATER && c->reading) {
        uv_read_stop(c->src); /* backpressure: resume from op_done */
        c->reading = false;
    }
}

static void copier_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct copier *c = h->data;
    char *p = c->n_spare > 0 ? c->spare[--c->n_spare] : malloc(SHIM_RELAY_BUFFER_SIZE);
    *buf = uv_buf_init(p, p ? SHIM_RELAY_BUFFER_SIZE : 0);
}

static void copier_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct copier *c = s->data;
    if (nread > 0) {
        copier_write(c, buf->base, (size_t)nread);
        return;
    }
    copier_release_buf(c, buf->base);
    if (nread == 0 || nread == UV_ENOBUFS)
        return;
    if (nread != UV_EOF)
        log_fields(LOG_LEVEL_WARN, "stdio relay: read failed", "stream", c->name, "error",
                   uv_strerror((int)nread), NULL);
    uv_read_stop(s);
    c->reading = false;
    c->eof = true;
    copier_maybe_finish(c);
}

static void drain_timer_cb(uv_timer_t *t)
{
    shim_relay_t *relay = t->data;
    relay->drain_timer = NULL;
    relay_close_handle(relay, (uv_handle_t *)t);
    relay_check_drained(relay);
}

static void copier_init(shim_relay_t *relay, struct copier *c, const char *name, uv_stream_t *src)
{
    c->relay = relay;
    c->name = name;
    c->src = src;
    c->dst_fd = -1;
    if (src != NULL)
        relay->pending++; /* released when the handle is closed */
    else
        c->eof = c->finished = true;
}

static void relay_setup(shim_relay_t *relay, shim_upstream_io_t *io,
                        const struct shim_relay_streams *s)
{
    copier_init(relay, &relay->out, "stdout", s->stdout_stream);
    relay->out.dst_stream = (uv_stream_t *)io->out.pipe;
    relay->out.dst_fd = io->out.fd;
    copier_init(relay, &relay->err, "stderr", s->stderr_stream);
    relay->err.dst_stream = (uv_stream_t *)io->err.pipe;
    relay->err.dst_fd = io->err.fd;

    /* stdin flows the other way: upstream FIFO -> process stream. */
    struct copier *in = &relay->in;
    in->relay = relay;
    in->name = "stdin";
    in->dst_fd = -1;
    in->dst_owned = true;
    in->src_borrowed = true;
    in->dst_stream = s->stdin_stream;
    if (s->stdin_stream != NULL)
        relay->pending++;
    in->src = (uv_stream_t *)io->stdin_pipe;
    if (in->src == NULL)
        in->eof = true; /* no upstream stdin: the process sees EOF at once */
}

static void free_handle(uv_handle_t *h)
{
    free(h);
}

/* Keeps the ownership promise on failure: streams and io are closed. */
static int relay_start_failed(shim_upstream_io_t *io, const struct shim_relay_streams *streams,
                              shim_error_t **err)
{
    uv_stream_t *owned[] = {streams->stdin_stream, streams->stdout_stream, streams->stderr_stream};
    for (int i = 0; i < 3; i++) {
        if (owned[i] != NULL && !uv_is_closing((uv_handle_t *)owned[i]))
            uv_close((uv_handle_t *)owned[i], free_handle);
    }
    if (io == NULL)
        return error_set(err, RPC_INVALID_ARGUMENT, "relay without upstream io");
    shim_upstream_io_close(io, NULL, NULL);
    return error_set(err, RPC_INTERNAL, "out of memory");
}

int shim_relay_start(shim_upstream_io_t *io, const struct shim_relay_streams *streams,
                     shim_relay_drained_cb drained, void *data, shim_relay_t **out,
                     shim_error_t **err)
{
    shim_relay_t *relay = calloc(1, sizeof(*relay));
    uv_timer_t *timer = malloc(sizeof(*timer));
    if (relay == NULL || timer == NULL || io == NULL) {
        free(relay);
        free(timer);
        return relay_start_failed(io, streams, err);
    }
    relay->loop = io->loop;
    relay->io = io;
    relay->drained_cb = drained;
    relay->drained_data = data;
    relay->starting = true;
    relay_setup(relay, io, streams);
    if (streams->stdin_stream != NULL)
        streams->stdin_stream->data = &relay->in;

    copier_resume(&relay->out);
    copier_resume(&relay->err);
    if (relay->in.dst_stream != NULL)
        copier_resume(&relay->in);
    copier_maybe_finish(&relay->in);

    /* A relay with nothing to drain reports it on the next loop turn. */
    uv_timer_init(relay->loop, timer);
    timer->data = relay;
    relay->drain_timer = timer;
    relay->pending++;
    uv_timer_start(timer, drain_timer_cb, 0, 0);
    relay->starting = false;
    *out = relay;
    return 0;
}

void shim_relay_close_stdin(shim_relay_t *relay)
{
    shim_upstream_io_close_stdin(relay->io);
}

bool shim_relay_drained(const shim_relay_t *relay)
{
    return relay->drained;
}

void shim_relay_get_stats(const shim_relay_t *relay, struct shim_relay_stats *out)
{
    out->stdin_bytes = relay->in.written;
    out->stdout_bytes = relay->out.written;
    out->stderr_bytes = relay->err.written;
    out->max_buffered = relay->in.max_in_flight;
    if (relay->out.max_in_flight > out->max_buffered)
        out->max_buffered = relay->out.max_in_flight;
    if (relay->err.max_in_flight > out->max_buffered)
        out->max_buffered = relay->err.max_in_flight;
}

void shim_relay_close(shim_relay_t *relay, shim_io_closed_cb cb, void *data)
{
    relay->closing = true;
    relay->closed_cb = cb;
    relay->closed_data = data;
    relay->pending++; /* hold the relay until this function returns */
    struct copier *copiers[] = {&relay->in, &relay->out, &relay->err};
    for (int i = 0; i < 3; i++) {
        struct copier *c = copiers[i];
        if (c->src != NULL && c->reading)
            uv_read_stop(c->src);
        c->reading = false;
        if (!c->src_borrowed && c->src != NULL) {
            relay_close_handle(relay, (uv_handle_t *)c->src);
            c->src = NULL;
        }
    }
    if (relay->in.dst_stream != NULL) {
        relay_close_handle(relay, (uv_handle_t *)relay->in.dst_stream);
        relay->in.dst_stream = NULL;
    }
    if (relay->drain_timer != NULL) {
        uv_timer_stop(relay->drain_timer);
        relay_close_handle(relay, (uv_handle_t *)relay->drain_timer);
        relay->drain_timer = NULL;
    }
    if (relay->settle_timer != NULL) {
        uv_timer_stop(relay->settle_timer);
        relay_close_handle(relay, (uv_handle_t *)relay->settle_timer);
        relay->settle_timer = NULL;
    }
    /* Stream writes still queued upstream are cancelled by closing the pipes;
     * file writes finish on their own. */
    stdio_io_close_pipes(relay->io);
    relay->pending--;
    relay_maybe_finish(relay);
}
