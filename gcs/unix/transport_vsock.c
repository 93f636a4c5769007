/* vsock ports over AF_VSOCK. libuv has no vsock handle type: the sockets are
 * made here and wrapped with uv_pipe_open, which works for any stream socket. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

#include "gcs/transport_impl.h"

struct vsock_transport {
    struct gcs_transport base;
    uint32_t connect_cid;
};

struct vsock_listener {
    struct gcs_listener base;
    uv_pipe_t server;
};

struct vsock_connect {
    uv_poll_t poll;
    int fd;
    gcs_connect_cb cb;
    void *opaque;
};

static void listener_closed(uv_handle_t *h)
{
    free(h->data);
}

static void listener_close(struct gcs_listener *base)
{
    struct vsock_listener *l = (struct vsock_listener *)base;
    if (!uv_is_closing((uv_handle_t *)&l->server))
        uv_close((uv_handle_t *)&l->server, listener_closed);
}

static void on_connection(uv_stream_t *server, int status)
{
    struct vsock_listener *l = server->data;
    gcs_listener_deliver_accept(&l->base, server, status);
}

static int vsock_socket(void)
{
    return socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
}

static int vsock_listen(struct gcs_transport *t, uint32_t port, gcs_accept_cb cb, void *opaque,
                        struct gcs_listener **out, shim_error_t **err)
{
    int fd = vsock_socket();
    if (fd < 0)
        return error_set_errno(err, RPC_UNAVAILABLE, errno, "vsock socket");
    struct sockaddr_vm addr = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = port};
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, 16) < 0) {
        int e = errno;
        close(fd);
        return error_set_errno(err, RPC_UNAVAILABLE, e, "vsock listen on port %u", port);
    }
    struct vsock_listener *l = calloc(1, sizeof(*l));
    if (l == NULL) {
        close(fd);
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    }
    l->base.close = listener_close;
    l->base.port = port;
    l->base.cb = cb;
    l->base.opaque = opaque;
    uv_pipe_init(t->loop, &l->server, 0);
    l->server.data = l;
    int rc = uv_pipe_open(&l->server, fd);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&l->server, 16, on_connection);
    if (rc < 0) {
        error_set_uv(err, RPC_UNAVAILABLE, rc, "vsock listen on port %u", port);
        if (uv_fileno((uv_handle_t *)&l->server, &(uv_os_fd_t){0}) != 0)
            close(fd);
        uv_close((uv_handle_t *)&l->server, listener_closed);
        return -1;
    }
    *out = &l->base;
    return 0;
}

static void connect_done(uv_handle_t *h)
{
    free(h->data);
}

static void on_writable(uv_poll_t *poll, int status, int events)
{
    struct vsock_connect *c = poll->data;
    (void)events;
    int so_error = 0;
    socklen_t len = sizeof(so_error);
    if (status == 0 && getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &so_error, &len) < 0)
        so_error = errno;
    /* Close the poll handle before a stream takes over the fd's watcher. */
    uv_poll_stop(poll);
    uv_close((uv_handle_t *)poll, connect_done);
    uv_stream_t *stream = NULL;
    int rc = status < 0 ? status : -so_error;
    if (rc == 0 && gcs_stream_from_fd(poll->loop, c->fd, &stream, NULL) < 0)
        rc = UV_EIO;
    if (rc < 0)
        close(c->fd);
    c->cb(rc == 0 ? stream : NULL, rc, c->opaque);
}

static int vsock_connect(struct gcs_transport *t, uint32_t port, gcs_connect_cb cb, void *opaque,
                         shim_error_t **err)
{
    struct vsock_transport *vt = (struct vsock_transport *)t;
    int fd = vsock_socket();
    if (fd < 0)
        return error_set_errno(err, RPC_UNAVAILABLE, errno, "vsock socket");
    struct sockaddr_vm addr = {
        .svm_family = AF_VSOCK, .svm_cid = vt->connect_cid, .svm_port = port};
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        return error_set_errno(err, RPC_UNAVAILABLE, e, "vsock connect to %u:%u", vt->connect_cid,
                               port);
    }
    struct vsock_connect *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        close(fd);
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    }
    c->fd = fd;
    c->cb = cb;
    c->opaque = opaque;
    int rc = uv_poll_init_socket(t->loop, &c->poll, fd);
    if (rc < 0) {
        close(fd);
        free(c);
        return error_set_uv(err, RPC_INTERNAL, rc, "uv_poll_init_socket");
    }
    c->poll.data = c;
    uv_poll_start(&c->poll, UV_WRITABLE, on_writable);
    return 0;
}

static void vsock_destroy(struct gcs_transport *t)
{
    free(t);
}

static const struct gcs_transport_ops vsock_ops = {
    .name = "vsock",
    .listen = vsock_listen,
    .connect = vsock_connect,
    .destroy = vsock_destroy,
};

int gcs_transport_vsock_new(uv_loop_t *loop, uint32_t connect_cid, struct gcs_transport **out,
                            shim_error_t **err)
{
    struct vsock_transport *vt = calloc(1, sizeof(*vt));
    if (vt == NULL)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    vt->base.ops = &vsock_ops;
    vt->base.loop = loop;
    vt->connect_cid = connect_cid;
    *out = &vt->base;
    return 0;
}
