/* The QEMU backend's channel (uvm/channel.h): after the start the host
 * connects the "stdio" virtio-serial port (the mux link, gcs/mux.h), then the
 * bridge through the unix-dir transport over the port directory (the "gcs"
 * port is <dir>/1073741824). */
#include <stdlib.h>

#include "gcs/bridge_msg.h"
#include "gcs/mux.h"
#include "gcs/transport.h"
#include "uvm/channel.h"

struct qemu_channel {
    struct uvm_channel base;
    uv_loop_t *loop;
    hcs_system_t *sys;
    uvm_channel_ready_cb cb;
    void *opaque;
    uv_pipe_t *stdio_pipe; /* until the mux owns it */
    uv_connect_t stdio_connect;
    struct gcs_transport *bridge_transport; /* unix-dir: connects the "gcs" port */
    struct gcs_transport *stdio_transport;  /* mux over the "stdio" port */
    bool closed;
    int pending; /* the stdio pipe (until the mux owns it) and the bridge connect */
};

static void channel_maybe_free(struct qemu_channel *ch)
{
    if (ch->closed && ch->pending == 0)
        free(ch);
}

static void fail(struct qemu_channel *ch, int code, const char *fmt, const char *detail)
{
    shim_error_t *e = NULL;
    error_set(&e, code, fmt, detail);
    uvm_channel_ready_cb cb = ch->cb;
    ch->cb = NULL;
    cb(ch->opaque, NULL, NULL, e);
    error_free(e);
}

static void on_bridge_connected(uv_stream_t *stream, int status, void *opaque)
{
    struct qemu_channel *ch = opaque;
    ch->pending--;
    if (ch->closed) {
        if (stream)
            gcs_stream_close(stream);
        channel_maybe_free(ch);
        return;
    }
    if (status < 0) {
        fail(ch, RPC_UNAVAILABLE, "connecting to the gcs port: %s", uv_strerror(status));
        return;
    }
    uvm_channel_ready_cb cb = ch->cb;
    ch->cb = NULL;
    cb(ch->opaque, stream, ch->stdio_transport, NULL);
}

static void stdio_pipe_closed(uv_handle_t *h)
{
    struct qemu_channel *ch = h->data;
    free(h);
    ch->pending--;
    channel_maybe_free(ch);
}

/* A connect in flight completes with UV_ECANCELED first. */
static void close_stdio_pipe(struct qemu_channel *ch)
{
    ch->stdio_pipe->data = ch;
    uv_close((uv_handle_t *)ch->stdio_pipe, stdio_pipe_closed);
    ch->stdio_pipe = NULL;
}

static void on_stdio_connected(uv_connect_t *req, int status)
{
    struct qemu_channel *ch = req->data;
    shim_error_t *e = NULL;
    if (ch->closed) /* the close callback of the pipe releases the channel */
        return;
    if (status < 0) {
        close_stdio_pipe(ch);
        fail(ch, RPC_UNAVAILABLE, "connecting to the stdio port: %s", uv_strerror(status));
        return;
    }
    uv_stream_t *link = (uv_stream_t *)ch->stdio_pipe;
    ch->stdio_pipe = NULL; /* the mux owns it now */
    ch->pending--;
    if (gcs_transport_mux_new(ch->loop, link, GCS_MUX_ROLE_HOST, &ch->stdio_transport, &e) < 0 ||
        gcs_transport_unix_dir_new(ch->loop, hcs_system_port_dir(ch->sys), &ch->bridge_transport,
                                   &e) < 0 ||
        gcs_transport_connect(ch->bridge_transport, GCS_BRIDGE_PORT, on_bridge_connected, ch, &e) <
            0) {
        fail(ch, RPC_INTERNAL, "%s", e->msg);
        error_free(e);
        return;
    }
    ch->pending++;
}

static int qemu_prepare(struct uvm_channel *base, hcs_system_t *sys, shim_error_t **err)
{
    (void)base;
    (void)sys;
    (void)err;
    return 0; /* the ports are part of the VM's command line */
}

static int qemu_connect(struct uvm_channel *base, hcs_system_t *sys, uvm_channel_ready_cb cb,
                        void *opaque, shim_error_t **err)
{
    struct qemu_channel *ch = (struct qemu_channel *)base;
    const char *stdio_path = hcs_system_port_path(sys, "stdio");
    if (!stdio_path)
        return error_set(err, RPC_INTERNAL, "the utility VM has no stdio port");
    ch->stdio_pipe = calloc(1, sizeof(*ch->stdio_pipe));
    if (!ch->stdio_pipe || uv_pipe_init(ch->loop, ch->stdio_pipe, 0) < 0) {
        free(ch->stdio_pipe);
        ch->stdio_pipe = NULL;
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    }
    ch->sys = sys;
    ch->cb = cb;
    ch->opaque = opaque;
    ch->stdio_connect.data = ch;
    uv_pipe_connect(&ch->stdio_connect, ch->stdio_pipe, stdio_path, on_stdio_connected);
    ch->pending++;
    return 0;
}

static void qemu_close(struct uvm_channel *base)
{
    struct qemu_channel *ch = (struct qemu_channel *)base;
    ch->closed = true;
    /* The guest connection (closed first) may still use the mux until its
     * handles close; the mux fails its streams once the link closes. */
    if (ch->stdio_transport)
        gcs_transport_destroy(ch->stdio_transport);
    if (ch->bridge_transport)
        gcs_transport_destroy(ch->bridge_transport);
    ch->stdio_transport = ch->bridge_transport = NULL;
    if (ch->stdio_pipe)
        close_stdio_pipe(ch); /* its close callback frees the channel */
    else
        channel_maybe_free(ch);
}

static const struct uvm_channel_ops qemu_ops = {
    .name = "qemu-ports",
    .prepare = qemu_prepare,
    .connect = qemu_connect,
    .close = qemu_close,
};

int uvm_channel_platform_new(uv_loop_t *loop, struct uvm_channel **out, shim_error_t **err)
{
    struct qemu_channel *ch = calloc(1, sizeof(*ch));
    if (!ch)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    ch->base.ops = &qemu_ops;
    ch->loop = loop;
    *out = &ch->base;
    return 0;
}
