/* "vsock ports" over one multiplexed byte stream (gcs/mux.h), and virtio-serial
 * char devices as links (linux-uvm.md §4): the bridge directly over a device,
 * or the mux over a device.
 *
 * A device is driven with uv_poll and plain read/write, not as a libuv
 * stream: a virtio-serial port whose host side is not connected reports
 * POLLHUP and read() == 0 all the time, which a stream would take for EOF and
 * epoll would report in a busy loop. Until the first byte arrives such a
 * hang-up means "host not connected yet": we stop polling for 50 ms and try
 * the same fd again. After bytes arrived it means the host went away: the
 * user sees EOF. The user always gets one end of a socketpair; two pumps copy
 * between the device and the other end. */
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "gcs/mux.h"
#include "gcs/transport_impl.h"

#define DEV_READ_CHUNK 65536
#define DEV_HIGH_WATER (1u << 20)
#define DEV_LOW_WATER (256u << 10)
#define DEV_RETRY_MS 50
#define BRIDGE_PORT 0x40000000u

int gcs_mux_socketpair(uv_loop_t *loop, uv_stream_t **engine_end, uv_stream_t **user_end,
                       shim_error_t **err)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return error_set_errno(err, RPC_RESOURCE_EXHAUSTED, errno, "mux: socketpair");
    if (gcs_stream_from_fd(loop, sv[0], engine_end, err) < 0) {
        close(sv[0]);
        close(sv[1]);
        return -1;
    }
    if (gcs_stream_from_fd(loop, sv[1], user_end, err) < 0) {
        gcs_stream_close(*engine_end); /* closes sv[0] */
        close(sv[1]);
        return -1;
    }
    return 0;
}

/* ---- device link ------------------------------------------------------------------------- */

struct dev_chunk {
    struct dev_chunk *next;
    size_t len, off;
    char data[];
};

struct dev_end {
    uv_poll_t poll;
    int fd;
    int events; /* currently polled */
    bool poll_inited;
    struct device_link *link;
};

struct device_link {
    uv_loop_t *loop;
    struct dev_end ends[2];
    struct dev_end *in, *out; /* may be the same end */
    uv_timer_t retry;
    uv_pipe_t *inner; /* our end of the socketpair */
    int user_fd;      /* the other end until handed out */
    bool saw_data;    /* the host has been connected */
    bool paused;      /* host not connected: waiting DEV_RETRY_MS */
    bool lost;        /* host went away or an I/O error: no more device I/O */
    bool inner_eof;   /* the user will send nothing more */
    bool inner_reading;
    bool dev_reading; /* inner not backed up */
    size_t inner_queued;
    struct dev_chunk *out_head, *out_tail;
    size_t out_queued;
    int handles; /* open handles before free */
    bool destroyed;
    uv_shutdown_t shutdown_req;
};

struct inner_write {
    uv_write_t req;
    struct device_link *link;
    size_t len;
    char *data;
};

static void dev_update_polls(struct device_link *d);

static void dev_unref(struct device_link *d)
{
    if (--d->handles > 0)
        return;
    while (d->out_head) {
        struct dev_chunk *c = d->out_head;
        d->out_head = c->next;
        free(c);
    }
    free(d);
}

static void dev_handle_closed(uv_handle_t *h)
{
    dev_unref(h->data);
}

static void inner_closed(uv_handle_t *h)
{
    struct device_link *d = h->data;
    free(h);
    dev_unref(d);
}

static void shutdown_done(uv_shutdown_t *req, int status)
{
    (void)req;
    (void)status;
}

/* The host is gone for good (or the device failed): the user reads EOF after
 * everything already received. */
static void dev_lost(struct device_link *d, const char *why, int errnum)
{
    if (d->lost)
        return;
    d->lost = true;
    if (errnum)
        log_info("device link: %s: %s", why, strerror(errnum));
    else
        log_info("device link: %s", why);
    dev_update_polls(d);
    if (d->inner && uv_shutdown(&d->shutdown_req, (uv_stream_t *)d->inner, shutdown_done) < 0)
        d->shutdown_req.data = NULL;
}

static void retry_fired(uv_timer_t *t)
{
    struct device_link *d = t->data;
    d->paused = false;
    dev_update_polls(d);
}

/* Hang-up before the host ever connected: wait and poll the same fd again. */
static void dev_hangup(struct device_link *d, int errnum)
{
    if (d->saw_data) {
        dev_lost(d, "the host disconnected", errnum);
        return;
    }
    if (d->paused)
        return;
    d->paused = true;
    dev_update_polls(d);
    uv_timer_start(&d->retry, retry_fired, DEV_RETRY_MS, 0);
}

static void inner_written(uv_write_t *req, int status)
{
    struct inner_write *w = (struct inner_write *)req;
    struct device_link *d = w->link;
    d->inner_queued -= w->len;
    free(w->data);
    free(w);
    if (d->destroyed)
        return;
    if (status < 0) { /* the user closed its end: drop what the host sends */
        d->dev_reading = true;
        return;
    }
    if (!d->dev_reading && d->inner_queued < DEV_LOW_WATER) {
        d->dev_reading = true;
        dev_update_polls(d);
    }
}

static void dev_do_read(struct device_link *d)
{
    char *buf = malloc(DEV_READ_CHUNK);
    if (buf == NULL)
        return;
    ssize_t n = read(d->in->fd, buf, DEV_READ_CHUNK);
    if (n > 0) {
        d->saw_data = true;
        struct inner_write *w = malloc(sizeof(*w));
        uv_buf_t b = uv_buf_init(buf, (unsigned)n);
        if (w == NULL || d->inner == NULL) {
            free(w);
            free(buf);
            return;
        }
        w->link = d;
        w->len = (size_t)n;
        w->data = buf;
        if (uv_write(&w->req, (uv_stream_t *)d->inner, &b, 1, inner_written) < 0) {
            free(buf);
            free(w);
            return;
        }
        d->inner_queued += (size_t)n;
        if (d->inner_queued >= DEV_HIGH_WATER)
            d->dev_reading = false;
        return;
    }
    free(buf);
    int e = n < 0 ? errno : 0;
    if (n < 0 && (e == EAGAIN || e == EINTR))
        return;
    if (n == 0 || e == EIO || e == EPIPE || e == ECONNRESET)
        dev_hangup(d, e);
    else
        dev_lost(d, "reading the device failed", e);
}

static void inner_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void inner_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void dev_do_write(struct device_link *d)
{
    while (d->out_head) {
        struct dev_chunk *c = d->out_head;
        ssize_t n = write(d->out->fd, c->data + c->off, c->len - c->off);
        if (n < 0) {
            int e = errno;
            if (e == EAGAIN || e == EINTR)
                break;
            if (e == EIO || e == EPIPE || e == ECONNRESET)
                dev_hangup(d, e);
            else
                dev_lost(d, "writing the device failed", e);
            return;
        }
        c->off += (size_t)n;
        d->out_queued -= (size_t)n;
        if (c->off < c->len)
            break;
        d->out_head = c->next;
        if (!d->out_head)
            d->out_tail = NULL;
        free(c);
    }
    if (!d->inner_reading && !d->inner_eof && d->inner && d->out_queued < DEV_LOW_WATER)
        d->inner_reading = uv_read_start((uv_stream_t *)d->inner, inner_alloc, inner_read) == 0;
}

static void dev_poll_cb(uv_poll_t *h, int status, int events)
{
    struct dev_end *e = h->data;
    struct device_link *d = e->link;
    /* POLLHUP/POLLERR alone come as status < 0 or no READABLE/WRITABLE. */
    bool hup = status < 0 || (events & (UV_READABLE | UV_WRITABLE)) == 0;
    if (e == d->in && (events & UV_READABLE || hup) && d->dev_reading && !d->lost)
        dev_do_read(d);
    if (e == d->out && (events & UV_WRITABLE) && d->out_head && !d->lost && !d->paused)
        dev_do_write(d);
    if (hup && !d->lost)
        dev_hangup(d, 0);
    dev_update_polls(d);
}

static void poll_set(struct dev_end *e, int events)
{
    if (events == e->events)
        return;
    e->events = events;
    if (events)
        uv_poll_start(&e->poll, events, dev_poll_cb);
    else
        uv_poll_stop(&e->poll);
}

static void dev_update_polls(struct device_link *d)
{
    if (d->destroyed)
        return;
    bool active = !d->lost && !d->paused;
    int in_ev = active && d->dev_reading ? UV_READABLE : 0;
    int out_ev = active && d->out_head ? UV_WRITABLE : 0;
    if (d->in == d->out) {
        poll_set(d->in, in_ev | out_ev);
    } else {
        poll_set(d->in, in_ev);
        poll_set(d->out, out_ev);
    }
}

static void inner_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    struct dev_chunk *c = malloc(sizeof(*c) + DEV_READ_CHUNK);
    buf->base = c ? c->data : NULL;
    buf->len = c ? DEV_READ_CHUNK : 0;
}

static void inner_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct device_link *d = s->data;
    struct dev_chunk *c =
        buf->base ? (struct dev_chunk *)(buf->base - offsetof(struct dev_chunk, data)) : NULL;
    if (nread <= 0) {
        free(c);
        if (nread < 0) { /* the user will send nothing more */
            d->inner_eof = true;
            d->inner_reading = false;
            uv_read_stop(s);
        }
        return;
    }
    if (d->lost) { /* nowhere to send it */
        free(c);
        return;
    }
    c->len = (size_t)nread;
    c->off = 0;
    c->next = NULL;
    if (d->out_tail)
        d->out_tail->next = c;
    else
        d->out_head = c;
    d->out_tail = c;
    d->out_queued += (size_t)nread;
    if (d->out_queued >= DEV_HIGH_WATER) {
        uv_read_stop(s);
        d->inner_reading = false;
    }
    dev_update_polls(d);
}

static void device_link_destroy(struct device_link *d)
{
    if (d == NULL)
        return;
    d->destroyed = true;
    d->handles = 1; /* held while the closes below are issued */
    for (int i = 0; i < 2; i++) {
        struct dev_end *e = &d->ends[i];
        if (i == 1 && d->out == d->in)
            break;
        if (e->poll_inited) {
            d->handles++;
            e->poll.data = d;
            uv_close((uv_handle_t *)&e->poll, dev_handle_closed);
        }
        close(e->fd);
    }
    d->handles++;
    uv_close((uv_handle_t *)&d->retry, dev_handle_closed);
    if (d->inner) {
        d->handles++;
        uv_close((uv_handle_t *)d->inner, inner_closed);
    }
    if (d->user_fd >= 0)
        close(d->user_fd);
    dev_unref(d);
}

/* Takes in_fd/out_fd (the same fd for a real port). On success *user_fd is the
 * socket end for the user (owned by the link until taken: set d->user_fd = -1). */
static int device_link_new(uv_loop_t *loop, int in_fd, int out_fd, struct device_link **out,
                           shim_error_t **err)
{
    struct device_link *d = calloc(1, sizeof(*d));
    int sv[2] = {-1, -1};
    if (d == NULL || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        int e = errno;
        free(d);
        close(in_fd);
        if (out_fd != in_fd)
            close(out_fd);
        return error_set_errno(err, RPC_RESOURCE_EXHAUSTED, d ? e : ENOMEM, "device link");
    }
    d->loop = loop;
    d->user_fd = sv[1];
    d->dev_reading = true;
    d->in = &d->ends[0];
    d->out = out_fd == in_fd ? d->in : &d->ends[1];
    d->in->fd = in_fd;
    d->out->fd = out_fd;
    uv_timer_init(loop, &d->retry);
    d->retry.data = d;
    int rc = 0;
    for (int i = 0; i < 2 && rc == 0; i++) {
        struct dev_end *e = &d->ends[i];
        if (i == 1 && d->out == d->in)
            break;
        e->link = d;
        int fl = fcntl(e->fd, F_GETFL);
        if (fl >= 0)
            fcntl(e->fd, F_SETFL, fl | O_NONBLOCK);
        rc = uv_poll_init(loop, &e->poll, e->fd); /* fails for regular files */
        e->poll_inited = rc == 0;
        e->poll.data = e;
    }
    uv_stream_t *inner = NULL;
    if (rc == 0 && gcs_stream_from_fd(loop, sv[0], &inner, NULL) < 0)
        rc = UV_EIO;
    if (rc < 0) {
        if (inner == NULL)
            close(sv[0]);
        device_link_destroy(d);
        return error_set_uv(err, RPC_INTERNAL, rc, "device link: fds %d/%d", in_fd, out_fd);
    }
    d->inner = (uv_pipe_t *)inner;
    d->inner->data = d;
    d->inner_reading = uv_read_start(inner, inner_alloc, inner_read) == 0;
    dev_update_polls(d);
    *out = d;
    return 0;
}

int gcs_device_open(const char *path_or_name, int *fd_out, shim_error_t **err)
{
    char path[512];
    if (strchr(path_or_name, '/') != NULL) {
        snprintf(path, sizeof(path), "%s", path_or_name);
    } else if (gcs_virtio_port_find(path_or_name, 10000, path, sizeof(path), err) < 0) {
        return -1;
    }
    int fd = open(path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return error_set_errno(err, RPC_UNAVAILABLE, errno, "opening %s", path);
    struct termios tio;
    if (isatty(fd) && tcgetattr(fd, &tio) == 0) { /* a pty standing in: make it byte-clean */
        cfmakeraw(&tio);
        tcsetattr(fd, TCSANOW, &tio);
    }
    *fd_out = fd;
    return 0;
}

static int find_port_once(const char *dir, const char *name, char *out, size_t outlen)
{
    DIR *dp = opendir(dir);
    if (dp == NULL)
        return -1;
    struct dirent *e;
    int found = -1;
    while (found < 0 && (e = readdir(dp)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char p[512], buf[256];
        snprintf(p, sizeof(p), "%s/%s/name", dir, e->d_name);
        FILE *f = fopen(p, "re");
        if (f == NULL)
            continue;
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\0'))
            n--;
        buf[n] = '\0';
        if (strcmp(buf, name) == 0) {
            snprintf(out, outlen, "/dev/%s", e->d_name);
            found = 0;
        }
    }
    closedir(dp);
    return found;
}

int gcs_virtio_port_find(const char *name, unsigned timeout_ms, char *out, size_t outlen,
                         shim_error_t **err)
{
    const char *dir = getenv("GCS_VIRTIO_PORTS_DIR"); /* tests */
    if (dir == NULL || dir[0] == '\0')
        dir = "/sys/class/virtio-ports";
    for (unsigned waited = 0;; waited += 20) {
        if (find_port_once(dir, name, out, outlen) == 0)
            return 0;
        if (waited >= timeout_ms)
            break;
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL); /* start-up only, before the loop runs */
    }
    return error_set(err, RPC_NOT_FOUND, "no virtio-serial port named \"%s\" in %s", name, dir);
}

/* ---- bridge over a device ------------------------------------------------------------------ */

struct device_transport {
    struct gcs_transport base;
    struct device_link *link;
    bool handed_out;
};

struct device_delivery {
    struct gcs_listener base;
    uv_timer_t timer;
    struct device_transport *t;
    bool is_connect;
    gcs_connect_cb connect_cb;
};

static void delivery_closed(uv_handle_t *h)
{
    free(h->data);
}

static void delivery_close(struct gcs_listener *base)
{
    struct device_delivery *l = (struct device_delivery *)base;
    if (!uv_is_closing((uv_handle_t *)&l->timer))
        uv_close((uv_handle_t *)&l->timer, delivery_closed);
}

static void deliver(uv_timer_t *timer)
{
    struct device_delivery *l = timer->data;
    struct device_transport *t = l->t;
    uv_stream_t *stream = NULL;
    int rc = 0;
    if (t->handed_out || t->link->user_fd < 0)
        rc = UV_EBUSY;
    else if (gcs_stream_from_fd(t->base.loop, t->link->user_fd, &stream, NULL) < 0)
        rc = UV_EIO;
    else {
        t->link->user_fd = -1;
        t->handed_out = true;
    }
    if (l->is_connect) {
        uv_close((uv_handle_t *)timer, delivery_closed);
        l->connect_cb(stream, rc, l->base.opaque);
    } else {
        l->base.cb(&l->base, stream, rc, l->base.opaque);
    }
}

static int start_delivery(struct gcs_transport *base, uint32_t port, bool is_connect,
                          struct device_delivery **out, shim_error_t **err)
{
    struct device_transport *t = (struct device_transport *)base;
    if (port != BRIDGE_PORT)
        return error_set(err, RPC_UNIMPLEMENTED,
                         "device transport carries only the bridge port, not %u", port);
    if (t->handed_out)
        return error_set(err, RPC_FAILED_PRECONDITION, "the bridge device is already in use");
    struct device_delivery *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    l->t = t;
    l->is_connect = is_connect;
    l->base.close = delivery_close;
    l->base.port = port;
    uv_timer_init(base->loop, &l->timer);
    l->timer.data = l;
    uv_timer_start(&l->timer, deliver, 0, 0);
    *out = l;
    return 0;
}

static int device_listen(struct gcs_transport *base, uint32_t port, gcs_accept_cb cb, void *opaque,
                         struct gcs_listener **out, shim_error_t **err)
{
    struct device_delivery *l = NULL;
    if (start_delivery(base, port, false, &l, err) < 0)
        return -1;
    l->base.cb = cb;
    l->base.opaque = opaque;
    *out = &l->base;
    return 0;
}

static int device_connect(struct gcs_transport *base, uint32_t port, gcs_connect_cb cb,
                          void *opaque, shim_error_t **err)
{
    struct device_delivery *l = NULL;
    if (start_delivery(base, port, true, &l, err) < 0)
        return -1;
    l->connect_cb = cb;
    l->base.opaque = opaque;
    return 0;
}

static void device_destroy(struct gcs_transport *base)
{
    struct device_transport *t = (struct device_transport *)base;
    device_link_destroy(t->link);
    free(t);
}

static const struct gcs_transport_ops device_ops = {
    .name = "device",
    .listen = device_listen,
    .connect = device_connect,
    .destroy = device_destroy,
};

int gcs_transport_device_new(uv_loop_t *loop, int in_fd, int out_fd, struct gcs_transport **out,
                             shim_error_t **err)
{
    struct device_transport *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        close(in_fd);
        if (out_fd != in_fd)
            close(out_fd);
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    }
    if (device_link_new(loop, in_fd, out_fd, &t->link, err) < 0) {
        free(t);
        return -1;
    }
    t->base.ops = &device_ops;
    t->base.loop = loop;
    *out = &t->base;
    return 0;
}

/* ---- mux transport ------------------------------------------------------------------------- */

struct mux_transport {
    struct gcs_transport base;
    struct gcs_mux *mux;
    struct device_link *link; /* NULL unless over a device */
};

struct mux_listener {
    struct gcs_listener base;
    struct mux_transport *t;
};

static void mux_accepted(void *opaque, uint32_t port, uv_stream_t *stream)
{
    struct mux_listener *l = opaque;
    (void)port;
    l->base.cb(&l->base, stream, 0, l->base.opaque);
}

static void mux_listener_close(struct gcs_listener *base)
{
    struct mux_listener *l = (struct mux_listener *)base;
    gcs_mux_unlisten(l->t->mux, l->base.port);
    free(l);
}

static int mux_listen(struct gcs_transport *base, uint32_t port, gcs_accept_cb cb, void *opaque,
                      struct gcs_listener **out, shim_error_t **err)
{
    struct mux_transport *t = (struct mux_transport *)base;
    struct mux_listener *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    l->t = t;
    l->base.close = mux_listener_close;
    l->base.port = port;
    l->base.cb = cb;
    l->base.opaque = opaque;
    if (gcs_mux_listen(t->mux, port, mux_accepted, l, err) < 0) {
        free(l);
        return -1;
    }
    *out = &l->base;
    return 0;
}

static int mux_connect(struct gcs_transport *base, uint32_t port, gcs_connect_cb cb, void *opaque,
                       shim_error_t **err)
{
    struct mux_transport *t = (struct mux_transport *)base;
    return gcs_mux_connect(t->mux, port, cb, opaque, err);
}

static void mux_destroy(struct gcs_transport *base)
{
    struct mux_transport *t = (struct mux_transport *)base;
    gcs_mux_close(t->mux);
    device_link_destroy(t->link);
    free(t);
}

static const struct gcs_transport_ops mux_ops = {
    .name = "mux",
    .listen = mux_listen,
    .connect = mux_connect,
    .destroy = mux_destroy,
};

static void mux_link_down(void *opaque, const shim_error_t *why)
{
    (void)opaque;
    log_warn("stdio multiplexer down: %s", why->msg);
}

int gcs_transport_mux_new(uv_loop_t *loop, uv_stream_t *link, int role, struct gcs_transport **out,
                          shim_error_t **err)
{
    struct mux_transport *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        gcs_stream_close(link);
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    }
    struct gcs_mux_config cfg = {
        .role = role == GCS_MUX_ROLE_GUEST ? GCS_MUX_ROLE_GUEST : GCS_MUX_ROLE_HOST,
        .make_pair = gcs_mux_socketpair,
        .link_down = mux_link_down,
        .opaque = t,
    };
    if (gcs_mux_new(loop, link, &cfg, &t->mux, err) < 0) {
        free(t);
        return -1;
    }
    t->base.ops = &mux_ops;
    t->base.loop = loop;
    *out = &t->base;
    return 0;
}

int gcs_transport_mux_device_new(uv_loop_t *loop, int in_fd, int out_fd, int role,
                                 struct gcs_transport **out, shim_error_t **err)
{
    struct device_link *d = NULL;
    if (device_link_new(loop, in_fd, out_fd, &d, err) < 0)
        return -1;
    uv_stream_t *link = NULL;
    if (gcs_stream_from_fd(loop, d->user_fd, &link, err) < 0) {
        device_link_destroy(d);
        return -1;
    }
    d->user_fd = -1;
    if (gcs_transport_mux_new(loop, link, role, out, err) < 0) {
        device_link_destroy(d);
        return -1;
    }
    ((struct mux_transport *)*out)->link = d;
    return 0;
}
