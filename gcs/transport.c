#include "gcs/transport.h"

#include "gcs/transport_impl.h"

#include <stdlib.h>
#include <unistd.h>

int gcs_transport_listen(struct gcs_transport *t, uint32_t port, gcs_accept_cb cb, void *opaque,
                         struct gcs_listener **out, shim_error_t **err)
{
    if (t->ops->listen == NULL)
        return error_set(err, RPC_UNIMPLEMENTED, "%s transport cannot listen", t->ops->name);
    return t->ops->listen(t, port, cb, opaque, out, err);
}

int gcs_transport_connect(struct gcs_transport *t, uint32_t port, gcs_connect_cb cb, void *opaque,
                          shim_error_t **err)
{
    if (t->ops->connect == NULL)
        return error_set(err, RPC_UNIMPLEMENTED, "%s transport cannot connect", t->ops->name);
    return t->ops->connect(t, port, cb, opaque, err);
}

void gcs_transport_destroy(struct gcs_transport *t)
{
    if (t != NULL)
        t->ops->destroy(t);
}

static void free_on_close(uv_handle_t *h)
{
    free(h);
}

void gcs_stream_close(uv_stream_t *stream)
{
    if (stream != NULL && !uv_is_closing((uv_handle_t *)stream))
        uv_close((uv_handle_t *)stream, free_on_close);
}

int gcs_stream_from_fd(uv_loop_t *loop, int fd, uv_stream_t **out, shim_error_t **err)
{
    uv_pipe_t *p = malloc(sizeof(*p));
    if (p == NULL)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    int rc = uv_pipe_init(loop, p, 0);
    if (rc < 0) {
        free(p);
        return error_set_uv(err, RPC_INTERNAL, rc, "uv_pipe_init");
    }
    rc = uv_pipe_open(p, fd);
    if (rc < 0) {
        /* The fd stays the caller's on failure. */
        uv_close((uv_handle_t *)p, free_on_close);
        return error_set_uv(err, RPC_INTERNAL, rc, "uv_pipe_open(%d)", fd);
    }
    *out = (uv_stream_t *)p;
    return 0;
}

void gcs_listener_close(struct gcs_listener *l)
{
    if (l != NULL)
        l->close(l);
}

uint32_t gcs_listener_port(const struct gcs_listener *l)
{
    return l->port;
}

void gcs_listener_deliver_accept(struct gcs_listener *l, uv_stream_t *server, int status)
{
    if (status < 0) {
        l->cb(l, NULL, status, l->opaque);
        return;
    }
    uv_pipe_t *client = malloc(sizeof(*client));
    if (client == NULL) {
        l->cb(l, NULL, UV_ENOMEM, l->opaque);
        return;
    }
    uv_pipe_init(server->loop, client, 0);
    int rc = uv_accept(server, (uv_stream_t *)client);
    if (rc < 0) {
        uv_close((uv_handle_t *)client, free_on_close);
        l->cb(l, NULL, rc, l->opaque);
        return;
    }
    l->cb(l, (uv_stream_t *)client, 0, l->opaque);
}
