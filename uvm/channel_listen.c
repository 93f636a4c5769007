/* The "host listens, guest dials" channel (uvm/channel.h): gcs-bridge.md
 * §1.1. Listeners exist before the VM starts; the bridge connection may
 * arrive before or after the start completes and is handed over once both
 * happened. Everything here is closed synchronously: listeners and streams
 * never call back after their close, so the channel is freed at once. */
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "gcs/bridge_msg.h"
#include "uvm/channel.h"

#define ENTROPY_BYTES 512 /* hcsshim's LinuxEntropyBytes */
#define LOG_LINE_MAX 4096

struct listen_channel {
    struct uvm_channel base;
    uv_loop_t *loop;
    struct gcs_transport *t;
    struct uvm_channel_listen_options opts;
    struct gcs_listener *bridge_l, *entropy_l, *log_l;
    uv_stream_t *bridge; /* accepted, not handed over yet */
    uvm_channel_ready_cb cb;
    void *opaque;
    uv_timer_t *defer; /* hands over a bridge that came before connect */
    uv_stream_t *log_stream;
    char line[LOG_LINE_MAX];
    size_t line_len;
};

static void close_listener(struct gcs_listener **l)
{
    if (*l) {
        gcs_listener_close(*l);
        *l = NULL;
    }
}

static void hand_over(struct listen_channel *ch)
{
    uvm_channel_ready_cb cb = ch->cb;
    uv_stream_t *bridge = ch->bridge;
    ch->cb = NULL;
    ch->bridge = NULL;
    cb(ch->opaque, bridge, ch->t, NULL);
}

/* ---- bridge ---------------------------------------------------------------------------------- */

static void on_bridge_accept(struct gcs_listener *l, uv_stream_t *stream, int status, void *opaque)
{
    struct listen_channel *ch = opaque;
    (void)l;
    if (status < 0) {
        log_warn("uvm: accepting the gcs bridge: %s", uv_strerror(status));
        return;
    }
    /* One bridge per VM (hcsshim closes the listener after the accept). */
    close_listener(&ch->bridge_l);
    ch->bridge = stream;
    if (ch->cb && !ch->defer)
        hand_over(ch);
}

static void defer_closed(uv_handle_t *h)
{
    free(h);
}

static void on_defer(uv_timer_t *t)
{
    struct listen_channel *ch = t->data;
    uv_close((uv_handle_t *)t, defer_closed);
    ch->defer = NULL;
    if (ch->cb && ch->bridge)
        hand_over(ch);
}

/* ---- entropy and log ports ---------------------------------------------------------------------
 */

struct entropy_write {
    uv_write_t req;
    char bytes[ENTROPY_BYTES];
};

static void on_entropy_written(uv_write_t *req, int status)
{
    if (status < 0 && status != UV_ECANCELED)
        log_warn("uvm: writing entropy to the guest: %s", uv_strerror(status));
    gcs_stream_close(req->handle);
    free(req);
}

static void on_entropy_accept(struct gcs_listener *l, uv_stream_t *stream, int status, void *opaque)
{
    struct listen_channel *ch = opaque;
    (void)l;
    if (status < 0)
        return;
    close_listener(&ch->entropy_l);
    struct entropy_write *w = malloc(sizeof(*w));
    if (!w || uv_random(NULL, NULL, w->bytes, sizeof(w->bytes), 0, NULL) < 0) {
        free(w);
        gcs_stream_close(stream);
        return;
    }
    uv_buf_t buf = uv_buf_init(w->bytes, sizeof(w->bytes));
    if (uv_write(&w->req, stream, &buf, 1, on_entropy_written) < 0) {
        free(w);
        gcs_stream_close(stream);
    }
}

static void log_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct listen_channel *ch = h->data;
    (void)hint;
    if (ch->line_len >= sizeof(ch->line) - 1) { /* an overlong line: log what we have */
        ch->line[ch->line_len] = '\0';
        log_fields(LOG_LEVEL_DEBUG, "guest log", "line", ch->line, NULL);
        ch->line_len = 0;
    }
    buf->base = ch->line + ch->line_len;
    buf->len = sizeof(ch->line) - 1 - ch->line_len;
}

static void log_flush_lines(struct listen_channel *ch)
{
    char *start = ch->line, *end = ch->line + ch->line_len, *nl;
    while ((nl = memchr(start, '\n', (size_t)(end - start)))) {
        *nl = '\0';
        if (nl > start && nl[-1] == '\r')
            nl[-1] = '\0';
        if (*start)
            log_fields(LOG_LEVEL_DEBUG, "guest log", "line", start, NULL);
        start = nl + 1;
    }
    ch->line_len = (size_t)(end - start);
    memmove(ch->line, start, ch->line_len);
}

static void on_log_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct listen_channel *ch = s->data;
    (void)buf;
    if (n > 0) {
        ch->line_len += (size_t)n;
        log_flush_lines(ch);
        return;
    }
    if (n < 0) {
        gcs_stream_close(s);
        ch->log_stream = NULL;
    }
}

static void on_log_accept(struct gcs_listener *l, uv_stream_t *stream, int status, void *opaque)
{
    struct listen_channel *ch = opaque;
    (void)l;
    if (status < 0)
        return;
    close_listener(&ch->log_l);
    ch->log_stream = stream;
    stream->data = ch;
    if (uv_read_start(stream, log_alloc, on_log_read) < 0) {
        gcs_stream_close(stream);
        ch->log_stream = NULL;
    }
}

/* ---- ops ------------------------------------------------------------------------------------ */

static int listen_prepare(struct uvm_channel *base, hcs_system_t *sys, shim_error_t **err)
{
    struct listen_channel *ch = (struct listen_channel *)base;
    (void)sys;
    if (ch->opts.entropy_port &&
        gcs_transport_listen(ch->t, ch->opts.entropy_port, on_entropy_accept, ch, &ch->entropy_l,
                             err) < 0)
        return error_wrap(err, "listening on the entropy port");
    if (ch->opts.log_port &&
        gcs_transport_listen(ch->t, ch->opts.log_port, on_log_accept, ch, &ch->log_l, err) < 0)
        return error_wrap(err, "listening on the guest log port");
    if (gcs_transport_listen(ch->t, GCS_BRIDGE_PORT, on_bridge_accept, ch, &ch->bridge_l, err) < 0)
        return error_wrap(err, "listening on the gcs bridge port");
    return 0;
}

static int listen_connect(struct uvm_channel *base, hcs_system_t *sys, uvm_channel_ready_cb cb,
                          void *opaque, shim_error_t **err)
{
    struct listen_channel *ch = (struct listen_channel *)base;
    (void)sys;
    if (!ch->bridge_l && !ch->bridge)
        return error_set(err, RPC_FAILED_PRECONDITION, "uvm: the bridge port is not listening");
    ch->cb = cb;
    ch->opaque = opaque;
    if (!ch->bridge)
        return 0; /* on_bridge_accept hands it over */
    ch->defer = malloc(sizeof(*ch->defer));
    if (!ch->defer) {
        ch->cb = NULL;
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    }
    uv_timer_init(ch->loop, ch->defer);
    ch->defer->data = ch;
    uv_timer_start(ch->defer, on_defer, 0, 0);
    return 0;
}

static void listen_close(struct uvm_channel *base)
{
    struct listen_channel *ch = (struct listen_channel *)base;
    close_listener(&ch->bridge_l);
    close_listener(&ch->entropy_l);
    close_listener(&ch->log_l);
    gcs_stream_close(ch->bridge);
    gcs_stream_close(ch->log_stream);
    if (ch->defer)
        uv_close((uv_handle_t *)ch->defer, defer_closed);
    gcs_transport_destroy(ch->t);
    free(ch);
}

static const struct uvm_channel_ops listen_ops = {
    .name = "listen",
    .prepare = listen_prepare,
    .connect = listen_connect,
    .close = listen_close,
};

int uvm_channel_listen_new(uv_loop_t *loop, struct gcs_transport *transport,
                           const struct uvm_channel_listen_options *opts, struct uvm_channel **out,
                           shim_error_t **err)
{
    struct listen_channel *ch = calloc(1, sizeof(*ch));
    if (!ch) {
        gcs_transport_destroy(transport);
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    }
    ch->base.ops = &listen_ops;
    ch->loop = loop;
    ch->t = transport;
    if (opts)
        ch->opts = *opts;
    *out = &ch->base;
    return 0;
}
