/* Process stdio (gcs-bridge.md §8.3-8.4): dialling the host's ports and
 * relaying them to the process's pipes or pty.
 *
 * Output relay: process fd -> host connection. At EOF of the process side the
 * queued data is flushed, the connection is shut down for writing and the
 * relay then waits for the host to close its end (the host reads EOF and
 * closes); only then is the relay finished, which lets WaitForProcess answer.
 * Input relay: host connection -> process stdin. Host EOF closes the process's
 * stdin (a pty is left open); process exit closes the connection. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cmd/gcs/agent.h"
#include "common/log.h"

#define RELAY_CHUNK 65536
#define RELAY_HIGH_WATER (1u << 20)
/* Spare chunks a relay keeps: never more than it can have queued at once. */
#define RELAY_POOL_MAX (RELAY_HIGH_WATER / RELAY_CHUNK + 1)
#define DIAL_ATTEMPTS 10
#define DIAL_RETRY_MS 100

static const char *const stream_names[3] = {"stdin", "stdout", "stderr"};

/* ---- process-side fds ------------------------------------------------------------------ */

void stdio_fds_init(struct stdio_fds *s)
{
    for (int i = 0; i < 3; i++)
        s->child[i] = s->agent[i] = -1;
}

int stdio_fds_pipes(struct stdio_fds *s, shim_error_t **err)
{
    for (int i = 0; i < 3; i++) {
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0)
            return error_set_errno(err, RPC_INTERNAL, errno, "pipe");
        /* stdin: the child reads p[0]; stdout/stderr: the child writes p[1]. */
        s->child[i] = i == 0 ? p[0] : p[1];
        s->agent[i] = i == 0 ? p[1] : p[0];
    }
    return 0;
}

void stdio_fds_close_child(struct stdio_fds *s)
{
    for (int i = 0; i < 3; i++) {
        if (s->child[i] >= 0)
            close(s->child[i]);
        s->child[i] = -1;
    }
}

void stdio_fds_close_all(struct stdio_fds *s)
{
    stdio_fds_close_child(s);
    for (int i = 0; i < 3; i++) {
        if (s->agent[i] >= 0)
            close(s->agent[i]);
        s->agent[i] = -1;
    }
}

/* ---- dialling ------------------------------------------------------------------------------ */

struct dial {
    struct agent *a;
    uint32_t ports[3];
    bool want[3];
    struct stdio_conns conns;
    int idx;
    int attempts;
    uv_timer_t retry;
    stdio_dial_cb cb;
    void *data;
    shim_error_t *err;
};

void stdio_conns_close(struct stdio_conns *c)
{
    for (int i = 0; i < 3; i++) {
        gcs_stream_close(c->conn[i]);
        c->conn[i] = NULL;
    }
}

static void on_dial_timer_closed(uv_handle_t *h)
{
    struct dial *d = h->data;
    if (d->err)
        stdio_conns_close(&d->conns);
    d->cb(d->data, d->err ? NULL : &d->conns, d->err);
    free(d);
}

static void dial_finish(struct dial *d)
{
    uv_close((uv_handle_t *)&d->retry, on_dial_timer_closed);
}

static void dial_next(struct dial *d);

static void on_retry(uv_timer_t *t)
{
    dial_next(t->data);
}

static void on_connected(uv_stream_t *stream, int status, void *opaque)
{
    struct dial *d = opaque;
    int i = d->idx;
    if (status == 0) {
        d->conns.conn[i] = stream;
        d->idx++;
        d->attempts = 0;
        dial_next(d);
        return;
    }
    if (status == UV_ETIMEDOUT && ++d->attempts < DIAL_ATTEMPTS && !d->a->shutting_down) {
        uv_timer_start(&d->retry, on_retry, DIAL_RETRY_MS, 0);
        return;
    }
    error_set_uv(&d->err, RPC_UNAVAILABLE, status,
                 "failed creating %s Connection: Dial port (%u) failed", stream_names[i],
                 d->ports[i]);
    dial_finish(d);
}

static void dial_next(struct dial *d)
{
    while (d->idx < 3 && !d->want[d->idx])
        d->idx++;
    if (d->idx >= 3 || d->a->shutting_down) {
        if (d->idx < 3)
            error_set(&d->err, RPC_UNAVAILABLE, "agent shutting down");
        dial_finish(d);
        return;
    }
    shim_error_t *err = NULL;
    if (!d->a->stdio_transport) {
        error_set(&d->err, RPC_UNAVAILABLE, "failed creating %s Connection: no stdio transport",
                  stream_names[d->idx]);
        dial_finish(d);
        return;
    }
    if (gcs_transport_connect(d->a->stdio_transport, d->ports[d->idx], on_connected, d, &err) < 0) {
        error_set(&d->err, RPC_UNAVAILABLE, "failed creating %s Connection: %s",
                  stream_names[d->idx], err ? err->msg : "?");
        error_free(err);
        dial_finish(d);
    }
}

void stdio_dial(struct agent *a, const uint32_t ports[3], const bool want[3], stdio_dial_cb cb,
                void *data)
{
    struct dial *d = calloc(1, sizeof(*d));
    if (!d) {
        shim_error_t *err = NULL;
        error_set(&err, RPC_RESOURCE_EXHAUSTED, "out of memory");
        cb(data, NULL, err);
        return;
    }
    d->a = a;
    memcpy(d->ports, ports, sizeof(d->ports));
    memcpy(d->want, want, sizeof(d->want));
    d->cb = cb;
    d->data = data;
    uv_timer_init(a->loop, &d->retry);
    d->retry.data = d;
    dial_next(d);
}

/* ---- chunk pool ------------------------------------------------------------------------------ */

/* Finished chunks are kept for the next read instead of freed: glibc would hand
 * the heap top back to the kernel whenever a relay's queue drains, and every
 * fresh chunk would then fault its pages in again. */
struct chunk_pool {
    char *spare[RELAY_POOL_MAX];
    unsigned n;
    bool disabled; /* the relay's reading is over: chunks are freed */
};

static void chunk_alloc(struct chunk_pool *pool, uv_buf_t *buf)
{
    char *c = pool->n > 0 ? pool->spare[--pool->n] : malloc(RELAY_CHUNK);
    *buf = uv_buf_init(c, c ? RELAY_CHUNK : 0);
}

static void chunk_release(struct chunk_pool *pool, char *c)
{
    if (c && !pool->disabled && pool->n < RELAY_POOL_MAX)
        pool->spare[pool->n++] = c;
    else
        free(c);
}

static void chunk_pool_drain(struct chunk_pool *pool)
{
    pool->disabled = true;
    while (pool->n > 0)
        free(pool->spare[--pool->n]);
}

/* Writes what the stream takes right now (nothing while earlier writes are
 * queued, which keeps the order); returns the bytes written or a uv error. */
static int try_write_now(uv_stream_t *dst, const char *data, size_t len)
{
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    int n = uv_try_write(dst, &b, 1);
    return n == UV_EAGAIN || n == UV_ENOSYS ? 0 : n;
}

/* ---- output relays ------------------------------------------------------------------------- */

struct relay_out {
    struct process *p; /* reference */
    int stream;        /* 1 stdout, 2 stderr */
    uv_pipe_t src;
    bool src_open;
    uv_stream_t *dst; /* host connection or NULL (discard) */
    bool dst_failed;
    bool shutting_down; /* waiting for the host's EOF */
    bool finished;
    uv_shutdown_t shutdown_req;
    int handles; /* open handles we still wait for */
    struct chunk_pool pool;
};

struct relay_write {
    uv_write_t req;
    struct relay_out *r;
    char *data;
};

static void relay_out_release(struct relay_out *r)
{
    if (--r->handles > 0)
        return;
    struct process *p = r->p;
    if (p->relay_out[r->stream] == r)
        p->relay_out[r->stream] = NULL;
    if (!r->finished) {
        r->finished = true;
        process_output_finished(p);
    }
    chunk_pool_drain(&r->pool);
    free(r);
    process_unref(p);
}

static void on_relay_src_closed(uv_handle_t *h)
{
    relay_out_release(h->data);
}

static void on_relay_dst_closed(uv_handle_t *h)
{
    struct relay_out *r = h->data;
    free(h);
    relay_out_release(r);
}

static void relay_close_dst(struct relay_out *r)
{
    if (!r->dst)
        return;
    uv_stream_t *dst = r->dst;
    r->dst = NULL;
    if (!uv_is_closing((uv_handle_t *)dst)) {
        dst->data = r;
        uv_close((uv_handle_t *)dst, on_relay_dst_closed);
    } else {
        relay_out_release(r);
    }
}

static void relay_close_src(struct relay_out *r)
{
    if (!r->src_open)
        return;
    r->src_open = false;
    uv_close((uv_handle_t *)&r->src, on_relay_src_closed);
}

static void on_host_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    static char scratch[256]; /* data after our shutdown is discarded */
    *buf = uv_buf_init(scratch, sizeof(scratch));
}

/* After our half-close: anything but data means the host closed its end. */
static void on_host_read_after_shutdown(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    (void)buf;
    if (n >= 0)
        return;
    struct relay_out *r = s->data;
    relay_close_dst(r);
}

static void on_shutdown_done(uv_shutdown_t *req, int status)
{
    struct relay_out *r = req->data;
    if (!r->dst) {
        relay_out_release(r); /* the shutdown's own hold */
        return;
    }
    if (status < 0 || r->p->a->shutting_down ||
        uv_read_start(r->dst, on_host_alloc, on_host_read_after_shutdown) < 0)
        relay_close_dst(r);
    relay_out_release(r);
}

/* The process side ended: half-close towards the host, then wait for its EOF. */
static void relay_src_done(struct relay_out *r)
{
    relay_close_src(r);
    chunk_pool_drain(&r->pool);
    if (!r->dst)
        return;
    if (r->dst_failed || r->p->a->shutting_down) {
        relay_close_dst(r);
        return;
    }
    r->shutting_down = true;
    r->shutdown_req.data = r;
    r->handles++; /* held by the shutdown request */
    if (uv_shutdown(&r->shutdown_req, r->dst, on_shutdown_done) < 0) {
        r->handles--;
        relay_close_dst(r);
    }
}

static void on_src_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_src_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

static void relay_dst_failed(struct relay_out *r, int status)
{
    log_debug("%s relay to host failed: %s; discarding further output", stream_names[r->stream],
              uv_strerror(status));
    r->dst_failed = true;
}

static void on_relay_written(uv_write_t *req, int status)
{
    struct relay_write *w = (struct relay_write *)req;
    struct relay_out *r = w->r;
    chunk_release(&r->pool, w->data);
    free(w);
    if (status < 0 && status != UV_ECANCELED && !r->dst_failed)
        relay_dst_failed(r, status);
    /* Resume reading once the host drained the backlog. */
    if (r->src_open && r->dst && uv_stream_get_write_queue_size(r->dst) < RELAY_HIGH_WATER / 2 &&
        !uv_is_active((uv_handle_t *)&r->src))
        uv_read_start((uv_stream_t *)&r->src, on_src_alloc, on_src_read);
    if (!r->src_open && r->dst_failed && !r->shutting_down)
        relay_close_dst(r);
}

static void on_src_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct relay_out *r = h->data;
    chunk_alloc(&r->pool, buf);
}

/* Takes data (a pool chunk) back into the pool once written. */
static void forward(struct relay_out *r, char *data, size_t len)
{
    if (!r->dst || r->dst_failed) {
        chunk_release(&r->pool, data);
        return;
    }
    int done = try_write_now(r->dst, data, len);
    if (done < 0 || (size_t)done == len) {
        if (done < 0)
            relay_dst_failed(r, done);
        chunk_release(&r->pool, data);
        return;
    }
    struct relay_write *w = calloc(1, sizeof(*w));
    if (!w) {
        chunk_release(&r->pool, data);
        return;
    }
    w->r = r;
    w->data = data;
    uv_buf_t b = uv_buf_init(data + done, (unsigned)(len - (size_t)done));
    if (uv_write(&w->req, r->dst, &b, 1, on_relay_written) < 0) {
        r->dst_failed = true;
        chunk_release(&r->pool, data);
        free(w);
        return;
    }
    if (uv_stream_get_write_queue_size(r->dst) >= RELAY_HIGH_WATER)
        uv_read_stop((uv_stream_t *)&r->src);
}

static void on_src_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct relay_out *r = s->data;
    if (n > 0) {
        forward(r, buf->base, (size_t)n);
        return;
    }
    chunk_release(&r->pool, buf->base);
    if (n == 0)
        return;
    /* EOF, or EIO from a pty master once every slave is closed. */
    if (n != UV_EOF && n != UV_EIO)
        log_debug("%s read: %s", stream_names[r->stream], uv_strerror((int)n));
    relay_src_done(r);
}

static void relay_out_start(struct process *p, int stream, int fd, uv_stream_t *conn)
{
    struct relay_out *r = calloc(1, sizeof(*r));
    if (!r) {
        if (fd >= 0)
            close(fd);
        gcs_stream_close(conn);
        return;
    }
    process_ref(p);
    r->p = p;
    r->stream = stream;
    p->relay_out[stream] = r;
    r->dst = conn;
    r->handles = conn ? 1 : 0;
    p->outputs_open++;
    if (conn)
        conn->data = r;
    if (fd >= 0 && uv_pipe_init(p->a->loop, &r->src, 0) == 0) {
        r->src.data = r;
        r->src_open = true;
        r->handles++;
        if (uv_pipe_open(&r->src, fd) < 0) {
            close(fd); /* still ours: the handle did not take it */
            relay_src_done(r);
        } else if (uv_read_start((uv_stream_t *)&r->src, on_src_alloc, on_src_read) < 0) {
            relay_src_done(r); /* closing the handle closes fd */
        }
    } else {
        if (fd >= 0)
            close(fd);
        r->handles++; /* balanced below: no source at all */
        relay_src_done(r);
        relay_out_release(r);
    }
}

/* ---- input relay --------------------------------------------------------------------------- */

struct relay_in {
    struct process *p; /* reference */
    uv_stream_t *src;  /* host connection */
    uv_pipe_t dst;     /* process stdin */
    bool dst_open;
    bool is_pty;
    int handles;
    uv_shutdown_t shutdown_req;
    struct chunk_pool pool;
};

struct in_write {
    uv_write_t req;
    struct relay_in *r;
    char *data;
};

static void relay_in_release(struct relay_in *r)
{
    if (--r->handles > 0)
        return;
    struct process *p = r->p;
    if (p->relay_in == r)
        p->relay_in = NULL;
    chunk_pool_drain(&r->pool);
    free(r);
    process_unref(p);
}

static void on_in_src_closed(uv_handle_t *h)
{
    struct relay_in *r = h->data;
    free(h);
    relay_in_release(r);
}

static void on_in_dst_closed(uv_handle_t *h)
{
    relay_in_release(h->data);
}

static void relay_in_close_src(struct relay_in *r)
{
    chunk_pool_drain(&r->pool);
    if (!r->src)
        return;
    uv_stream_t *s = r->src;
    r->src = NULL;
    s->data = r;
    uv_close((uv_handle_t *)s, on_in_src_closed);
}

static void relay_in_close_dst(struct relay_in *r)
{
    if (!r->dst_open)
        return;
    r->dst_open = false;
    uv_close((uv_handle_t *)&r->dst, on_in_dst_closed);
}

static void on_in_shutdown(uv_shutdown_t *req, int status)
{
    (void)status; /* ENOTSOCK for a pipe: the writes are out, that is all we need */
    struct relay_in *r = req->data;
    relay_in_close_dst(r);
    relay_in_release(r);
}

static void on_in_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

static void on_in_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct relay_in *r = h->data;
    chunk_alloc(&r->pool, buf);
}

static void in_stop(struct relay_in *r)
{
    /* The process closed its stdin: stop relaying. */
    relay_in_close_src(r);
    relay_in_close_dst(r);
}

static void on_in_written(uv_write_t *req, int status)
{
    struct in_write *w = (struct in_write *)req;
    struct relay_in *r = w->r;
    chunk_release(&r->pool, w->data);
    free(w);
    if (status < 0 && status != UV_ECANCELED) {
        in_stop(r);
        return;
    }
    if (r->src && r->dst_open &&
        uv_stream_get_write_queue_size((uv_stream_t *)&r->dst) < RELAY_HIGH_WATER / 2)
        uv_read_start(r->src, on_in_alloc, on_in_read);
}

static void in_host_eof(struct relay_in *r)
{
    relay_in_close_src(r);
    if (!r->dst_open)
        return;
    if (r->is_pty) {
        relay_in_close_dst(r); /* closes only our dup; the terminal stays */
        return;
    }
    r->shutdown_req.data = r;
    r->handles++;
    if (uv_shutdown(&r->shutdown_req, (uv_stream_t *)&r->dst, on_in_shutdown) < 0) {
        r->handles--;
        relay_in_close_dst(r);
    }
}

static void on_in_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct relay_in *r = s->data;
    if (n <= 0 || !r->dst_open) {
        chunk_release(&r->pool, buf->base);
        if (n < 0)
            in_host_eof(r);
        return;
    }
    int done = try_write_now((uv_stream_t *)&r->dst, buf->base, (size_t)n);
    if (done < 0 || done == n) {
        chunk_release(&r->pool, buf->base);
        if (done < 0)
            in_stop(r);
        return;
    }
    struct in_write *w = calloc(1, sizeof(*w));
    if (!w) {
        chunk_release(&r->pool, buf->base);
        return;
    }
    w->r = r;
    w->data = buf->base;
    uv_buf_t b = uv_buf_init(buf->base + done, (unsigned)(n - done));
    if (uv_write(&w->req, (uv_stream_t *)&r->dst, &b, 1, on_in_written) < 0) {
        chunk_release(&r->pool, w->data);
        free(w);
        relay_in_close_src(r);
        relay_in_close_dst(r);
        return;
    }
    if (uv_stream_get_write_queue_size((uv_stream_t *)&r->dst) >= RELAY_HIGH_WATER)
        uv_read_stop(s);
}

static void relay_in_start(struct process *p, int fd, uv_stream_t *conn)
{
    if (!conn || fd < 0) {
        /* Nothing to relay: the process reads EOF at once. */
        if (fd >= 0)
            close(fd);
        gcs_stream_close(conn);
        return;
    }
    struct relay_in *r = calloc(1, sizeof(*r));
    if (!r || uv_pipe_init(p->a->loop, &r->dst, 0) < 0) {
        free(r);
        close(fd);
        gcs_stream_close(conn);
        return;
    }
    process_ref(p);
    r->p = p;
    r->is_pty = p->terminal;
    r->dst.data = r;
    r->dst_open = true;
    r->src = conn;
    conn->data = r;
    r->handles = 2;
    p->relay_in = r;
    if (uv_pipe_open(&r->dst, fd) < 0) {
        close(fd);
        relay_in_close_dst(r);
        relay_in_close_src(r);
        return;
    }
    if (uv_read_start(conn, on_in_alloc, on_in_read) < 0)
        in_host_eof(r);
}

/* ---- wiring ---------------------------------------------------------------------------------- */

void stdio_attach(struct process *p, struct stdio_conns *conns)
{
    relay_in_start(p, p->fd[0], conns ? conns->conn[0] : NULL);
    p->fd[0] = -1;
    for (int i = 1; i < 3; i++) {
        uv_stream_t *conn = conns ? conns->conn[i] : NULL;
        /* A terminal has no stderr of its own: a requested stderr just ends. */
        if (p->fd[i] >= 0 || conn)
            relay_out_start(p, i, p->fd[i], conn);
        p->fd[i] = -1;
    }
    if (conns)
        memset(conns, 0, sizeof(*conns));
}

void stdio_process_exited(struct process *p)
{
    struct relay_in *r = p->relay_in;
    if (!r)
        return;
    relay_in_close_src(r);
    relay_in_close_dst(r);
}

void stdio_abort(struct process *p)
{
    stdio_process_exited(p);
    /* The agent is exiting: drop output without waiting for EOF or the host. */
    for (int i = 1; i < 3; i++) {
        struct relay_out *r = p->relay_out[i];
        if (!r)
            continue;
        r->handles++;
        relay_close_src(r);
        relay_close_dst(r);
        relay_out_release(r);
    }
}

/* ---- console socket ------------------------------------------------------------------------ */

int console_socket_open(struct agent *a, struct console_socket *cs, shim_error_t **err)
{
    cs->listen_fd = -1;
    cs->path = xasprintf("%s/console-%d-%lu.sock", a->cfg->state_dir, (int)getpid(), ++a->seq);
    if (!cs->path)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strlen(cs->path) >= sizeof(addr.sun_path)) {
        error_set(err, RPC_INVALID_ARGUMENT, "console socket path too long: %s", cs->path);
        goto fail;
    }
    strcpy(addr.sun_path, cs->path);
    unlink(cs->path);
    cs->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (cs->listen_fd < 0 || bind(cs->listen_fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
        listen(cs->listen_fd, 4) < 0) {
        error_set_errno(err, RPC_INTERNAL, errno, "console socket %s", cs->path);
        goto fail;
    }
    return 0;
fail:
    console_socket_close(cs);
    return -1;
}

static int receive_fd(int conn, int *out, shim_error_t **err)
{
    char data[64];
    char control[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {.iov_base = data, .iov_len = sizeof(data)};
    struct msghdr msg = {.msg_iov = &iov,
                         .msg_iovlen = 1,
                         .msg_control = control,
                         .msg_controllen = sizeof(control)};
    ssize_t n;
    do {
        n = recvmsg(conn, &msg, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return error_set_errno(err, RPC_INTERNAL, errno, "receiving the pty master");
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            memcpy(out, CMSG_DATA(c), sizeof(int));
            return 0;
        }
    }
    return error_set(err, RPC_INTERNAL, "the runtime sent no pty master");
}

int console_socket_receive(struct console_socket *cs, int *master, shim_error_t **err)
{
    /* The runtime has exited: its connection and message sit in the backlog. */
    int conn = accept4(cs->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (conn < 0)
        return error_set_errno(err, RPC_INTERNAL, errno, "the runtime never sent a console");
    int rc = receive_fd(conn, master, err);
    close(conn);
    return rc;
}

void console_socket_close(struct console_socket *cs)
{
    if (cs->listen_fd >= 0)
        close(cs->listen_fd);
    cs->listen_fd = -1;
    if (cs->path) {
        unlink(cs->path);
        free(cs->path);
    }
    cs->path = NULL;
}
