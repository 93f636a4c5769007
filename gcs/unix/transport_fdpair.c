/* The bridge over an fd pair (-use-inouterr). When both fds are the same
 * stream socket it is handed out directly; otherwise a socketpair stands in
 * for the pair and two pumps copy in_fd -> socket and socket -> out_fd, so
 * users still see one full-duplex uv_stream_t. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gcs/transport_impl.h"

#define PUMP_HIGH_WATER (1u << 20)

struct pump {
    uv_stream_t *src, *dst;
    bool reading;
    bool done;
    uv_shutdown_t shutdown;
};

struct fdpair_transport {
    struct gcs_transport base;
    int in_fd, out_fd;
    bool handed_out;
    /* Only when in_fd != out_fd: */
    uv_pipe_t *in, *out, *inner; /* inner = our end of the socketpair */
    struct pump in_pump;         /* in -> inner */
    struct pump out_pump;        /* inner -> out */
    int user_fd;                 /* the other end, handed out */
    int open_handles;            /* wrapped pipes still closing (destroy) */
};

struct fdpair_listener {
    struct gcs_listener base;
    uv_idle_t idle; /* delivers the stream from the loop, never synchronously */
    struct fdpair_transport *t;
    bool is_connect;
    gcs_connect_cb connect_cb;
};

struct pump_write {
    uv_write_t req;
    struct pump *pump;
    char *data;
};

static void pump_read(uv_stream_t *src, ssize_t nread, const uv_buf_t *buf);

static void pump_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    buf->base = malloc(suggested);
    buf->len = buf->base ? suggested : 0;
}

static void pump_shutdown_done(uv_shutdown_t *req, int status)
{
    (void)req;
    (void)status; /* ENOTSOCK for a pipe destination: nothing more to do */
}

/* Source ended or failed: stop reading and half-close the destination once
 * its queued writes are out (uv_shutdown waits for them). */
static void pump_finish(struct pump *p)
{
    if (p->done)
        return;
    p->done = true;
    uv_read_stop(p->src);
    p->reading = false;
    if (uv_shutdown(&p->shutdown, p->dst, pump_shutdown_done) < 0)
        p->shutdown.data = NULL;
}

static void pump_written(uv_write_t *req, int status)
{
    struct pump_write *w = (struct pump_write *)req;
    struct pump *p = w->pump;
    free(w->data);
    free(w);
    if (status < 0) {
        pump_finish(p);
        return;
    }
    if (!p->reading && !p->done && p->dst->write_queue_size < PUMP_HIGH_WATER / 2)
        p->reading = uv_read_start(p->src, pump_alloc, pump_read) == 0;
}

static void pump_read(uv_stream_t *src, ssize_t nread, const uv_buf_t *buf)
{
    struct pump *p = src->data;
    if (nread == 0) {
        free(buf->base);
        return;
    }
    if (nread < 0) {
        free(buf->base);
        pump_finish(p);
        return;
    }
    struct pump_write *w = calloc(1, sizeof(*w));
    if (w == NULL) {
        free(buf->base);
        pump_finish(p);
        return;
    }
    w->pump = p;
    w->data = buf->base;
    uv_buf_t out = uv_buf_init(buf->base, (unsigned)nread);
    if (uv_write(&w->req, p->dst, &out, 1, pump_written) < 0) {
        free(w->data);
        free(w);
        pump_finish(p);
        return;
    }
    if (p->dst->write_queue_size >= PUMP_HIGH_WATER) {
        uv_read_stop(src);
        p->reading = false;
    }
}

static int pump_begin(struct pump *p)
{
    p->src->data = p;
    int rc = uv_read_start(p->src, pump_alloc, pump_read);
    p->reading = rc == 0;
    return rc;
}

static int open_pipe(uv_loop_t *loop, int fd, uv_pipe_t **out)
{
    uv_stream_t *s = NULL;
    if (gcs_stream_from_fd(loop, fd, &s, NULL) < 0)
        return -1;
    *out = (uv_pipe_t *)s;
    return 0;
}

static int setup_pumps(struct fdpair_transport *t, shim_error_t **err)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return error_set_errno(err, RPC_INTERNAL, errno, "socketpair");
    t->user_fd = sv[0];
    if (open_pipe(t->base.loop, sv[1], &t->inner) < 0) {
        close(sv[0]);
        close(sv[1]);
        t->user_fd = -1;
        return error_set(err, RPC_INTERNAL, "cannot wrap the bridge socketpair");
    }
    if (open_pipe(t->base.loop, t->in_fd, &t->in) < 0 ||
        open_pipe(t->base.loop, t->out_fd, &t->out) < 0)
        return error_set(err, RPC_INTERNAL, "cannot wrap bridge fds %d/%d", t->in_fd, t->out_fd);
    t->in_pump = (struct pump){.src = (uv_stream_t *)t->in, .dst = (uv_stream_t *)t->inner};
    t->out_pump = (struct pump){.src = (uv_stream_t *)t->inner, .dst = (uv_stream_t *)t->out};
    if (pump_begin(&t->in_pump) < 0 || pump_begin(&t->out_pump) < 0)
        return error_set(err, RPC_INTERNAL, "cannot start the bridge pumps");
    return 0;
}

static void idle_closed(uv_handle_t *h)
{
    free(h->data);
}

static void listener_close(struct gcs_listener *base)
{
    struct fdpair_listener *l = (struct fdpair_listener *)base;
    if (!uv_is_closing((uv_handle_t *)&l->idle))
        uv_close((uv_handle_t *)&l->idle, idle_closed);
}

static void deliver(uv_idle_t *idle)
{
    struct fdpair_listener *l = idle->data;
    struct fdpair_transport *t = l->t;
    uv_idle_stop(idle);
    uv_stream_t *stream = NULL;
    int fd = t->in_fd == t->out_fd ? t->in_fd : t->user_fd;
    int rc = 0;
    if (t->handed_out)
        rc = UV_EBUSY;
    else if (gcs_stream_from_fd(t->base.loop, fd, &stream, NULL) < 0)
        rc = UV_EIO;
    else
        t->handed_out = true;
    if (l->is_connect) {
        uv_close((uv_handle_t *)idle, idle_closed);
        l->connect_cb(stream, rc, l->base.opaque);
    } else {
        l->base.cb(&l->base, stream, rc, l->base.opaque);
    }
}

static int start_delivery(struct gcs_transport *base, uint32_t port, struct fdpair_listener **out,
                          shim_error_t **err)
{
    struct fdpair_transport *t = (struct fdpair_transport *)base;
    if (port != 0x40000000u)
        return error_set(err, RPC_UNIMPLEMENTED,
                         "fdpair transport carries only the bridge port, not %u", port);
    if (t->handed_out)
        return error_set(err, RPC_FAILED_PRECONDITION, "the bridge fd pair is already in use");
    struct fdpair_listener *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    l->t = t;
    l->base.close = listener_close;
    l->base.port = port;
    uv_idle_init(base->loop, &l->idle);
    l->idle.data = l;
    uv_idle_start(&l->idle, deliver);
    *out = l;
    return 0;
}

static int fdpair_listen(struct gcs_transport *base, uint32_t port, gcs_accept_cb cb, void *opaque,
                         struct gcs_listener **out, shim_error_t **err)
{
    struct fdpair_listener *l = NULL;
    if (start_delivery(base, port, &l, err) < 0)
        return -1;
    l->base.cb = cb;
    l->base.opaque = opaque;
    *out = &l->base;
    return 0;
}

static int fdpair_connect(struct gcs_transport *base, uint32_t port, gcs_connect_cb cb,
                          void *opaque, shim_error_t **err)
{
    struct fdpair_listener *l = NULL;
    if (start_delivery(base, port, &l, err) < 0)
        return -1;
    l->is_connect = true;
    l->connect_cb = cb;
    l->base.opaque = opaque;
    return 0;
}

static void pipe_closed(uv_handle_t *h)
{
    struct fdpair_transport *t = h->data;
    free(h);
    if (--t->open_handles == 0)
        free(t);
}

/* The transport is freed once every wrapped pipe has finished closing: libuv
 * still touches pending shutdown requests (inside t) while closing them. */
static void close_pipe(struct fdpair_transport *t, uv_pipe_t *p)
{
    if (p == NULL)
        return;
    p->data = t;
    t->open_handles++;
    uv_close((uv_handle_t *)p, pipe_closed);
}

static void fdpair_destroy(struct gcs_transport *base)
{
    struct fdpair_transport *t = (struct fdpair_transport *)base;
    if (t->in_fd == t->out_fd) {
        if (!t->handed_out)
            close(t->in_fd);
        free(t);
        return;
    }
    if (!t->handed_out && t->user_fd >= 0)
        close(t->user_fd);
    /* Fds never wrapped (setup failed half-way) are closed here. */
    if (t->in == NULL)
        close(t->in_fd);
    if (t->out == NULL)
        close(t->out_fd);
    t->open_handles = 1; /* held until every close below is issued */
    close_pipe(t, t->in);
    close_pipe(t, t->out);
    close_pipe(t, t->inner);
    if (--t->open_handles == 0)
        free(t);
}

static const struct gcs_transport_ops fdpair_ops = {
    .name = "fdpair",
    .listen = fdpair_listen,
    .connect = fdpair_connect,
    .destroy = fdpair_destroy,
};

int gcs_transport_fdpair_new(uv_loop_t *loop, int in_fd, int out_fd, struct gcs_transport **out,
                             shim_error_t **err)
{
    struct fdpair_transport *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    t->base.ops = &fdpair_ops;
    t->base.loop = loop;
    t->in_fd = in_fd;
    t->out_fd = out_fd;
    t->user_fd = -1;
    if (in_fd != out_fd && setup_pumps(t, err) < 0) {
        fdpair_destroy(&t->base);
        return -1;
    }
    *out = &t->base;
    return 0;
}
