/* vsock ports as Unix stream sockets in one directory: <dir>/<port>. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gcs/transport_impl.h"

struct unix_dir_transport {
    struct gcs_transport base;
    char *dir;
};

struct unix_dir_listener {
    struct gcs_listener base;
    uv_pipe_t server;
    char *path;
};

struct unix_dir_connect {
    uv_connect_t req;
    uv_pipe_t *pipe;
    gcs_connect_cb cb;
    void *opaque;
};

char *gcs_transport_unix_dir_path(const char *dir, uint32_t port)
{
    char *path = NULL;
    if (asprintf(&path, "%s/%u", dir, port) < 0)
        return NULL;
    return path;
}

static void listener_closed(uv_handle_t *h)
{
    struct unix_dir_listener *l = h->data;
    free(l->path);
    free(l);
}

static void listener_close(struct gcs_listener *base)
{
    struct unix_dir_listener *l = (struct unix_dir_listener *)base;
    if (uv_is_closing((uv_handle_t *)&l->server))
        return;
    unlink(l->path);
    uv_close((uv_handle_t *)&l->server, listener_closed);
}

static void on_connection(uv_stream_t *server, int status)
{
    struct unix_dir_listener *l = server->data;
    gcs_listener_deliver_accept(&l->base, server, status);
}

static int unix_dir_listen(struct gcs_transport *t, uint32_t port, gcs_accept_cb cb, void *opaque,
                           struct gcs_listener **out, shim_error_t **err)
{
    struct unix_dir_transport *ut = (struct unix_dir_transport *)t;
    struct unix_dir_listener *l = calloc(1, sizeof(*l));
    if (l == NULL || (l->path = gcs_transport_unix_dir_path(ut->dir, port)) == NULL) {
        free(l);
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    }
    l->base.close = listener_close;
    l->base.port = port;
    l->base.cb = cb;
    l->base.opaque = opaque;
    uv_pipe_init(t->loop, &l->server, 0);
    l->server.data = l;
    unlink(l->path); /* a stale socket from an earlier run */
    int rc = uv_pipe_bind(&l->server, l->path);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&l->server, 16, on_connection);
    if (rc < 0) {
        error_set_uv(err, RPC_UNAVAILABLE, rc, "listen on %s", l->path);
        uv_close((uv_handle_t *)&l->server, listener_closed);
        return -1;
    }
    *out = &l->base;
    return 0;
}

static void free_pipe(uv_handle_t *h)
{
    free(h);
}

static void on_connected(uv_connect_t *req, int status)
{
    struct unix_dir_connect *c = req->data;
    if (status < 0) {
        uv_close((uv_handle_t *)c->pipe, free_pipe);
        c->cb(NULL, status, c->opaque);
    } else {
        c->cb((uv_stream_t *)c->pipe, 0, c->opaque);
    }
    free(c);
}

static int unix_dir_connect(struct gcs_transport *t, uint32_t port, gcs_connect_cb cb, void *opaque,
                            shim_error_t **err)
{
    struct unix_dir_transport *ut = (struct unix_dir_transport *)t;
    char *path = gcs_transport_unix_dir_path(ut->dir, port);
    struct unix_dir_connect *c = calloc(1, sizeof(*c));
    uv_pipe_t *pipe = malloc(sizeof(*pipe));
    if (path == NULL || c == NULL || pipe == NULL) {
        free(path);
        free(c);
        free(pipe);
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    }
    uv_pipe_init(t->loop, pipe, 0);
    c->pipe = pipe;
    c->cb = cb;
    c->opaque = opaque;
    c->req.data = c;
    /* Failures (ENOENT, ECONNREFUSED) arrive through on_connected. */
    uv_pipe_connect(&c->req, pipe, path, on_connected);
    free(path);
    return 0;
}

static void unix_dir_destroy(struct gcs_transport *t)
{
    struct unix_dir_transport *ut = (struct unix_dir_transport *)t;
    free(ut->dir);
    free(ut);
}

static const struct gcs_transport_ops unix_dir_ops = {
    .name = "unix-dir",
    .listen = unix_dir_listen,
    .connect = unix_dir_connect,
    .destroy = unix_dir_destroy,
};

int gcs_transport_unix_dir_new(uv_loop_t *loop, const char *dir, struct gcs_transport **out,
                               shim_error_t **err)
{
    struct unix_dir_transport *ut = calloc(1, sizeof(*ut));
    if (ut == NULL || (ut->dir = strdup(dir)) == NULL) {
        free(ut);
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    }
    /* sun_path holds 108 bytes; "/<10 digits>" must still fit. */
    if (strlen(dir) + 12 > 107) {
        unix_dir_destroy(&ut->base);
        return error_set(err, RPC_INVALID_ARGUMENT, "socket directory path too long: %s", dir);
    }
    ut->base.ops = &unix_dir_ops;
    ut->base.loop = loop;
    *out = &ut->base;
    return 0;
}
