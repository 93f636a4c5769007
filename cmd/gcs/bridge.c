/* The bridge connection: one reader that decodes frames and dispatches each
 * request, and a writer that sends responses as soon as handlers finish. */
#include <malloc.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/gcs/agent.h"
#include "common/log.h"
#include "gcs/bridge_json.h"

#define BRIDGE_READ_CHUNK 65536

struct bridge_write {
    uv_write_t req;
    uint8_t *frame;
};

static void on_written(uv_write_t *req, int status)
{
    struct bridge_write *w = (struct bridge_write *)req;
    if (status < 0)
        log_warn("bridge write failed: %s", uv_strerror(status));
    free(w->frame);
    free(w);
}

void agent_send(struct agent *a, uint32_t type, uint64_t id, json_t *body)
{
    if (!body) {
        log_error("out of memory building a 0x%08x message", type);
        return;
    }
    if (!a->bridge) {
        json_decref(body);
        return;
    }
    shim_error_t *err = NULL;
    struct bridge_write *w = calloc(1, sizeof(*w));
    size_t len = 0;
    if (!w || gcs_frame_encode(type, id, body, &w->frame, &len, &err) < 0) {
        log_error("encoding a 0x%08x message: %s", type, err ? err->msg : "out of memory");
        error_free(err);
        free(w);
        json_decref(body);
        return;
    }
    if (log_enabled(LOG_LEVEL_DEBUG)) {
        char *text = json_dumps(body, JSON_COMPACT);
        log_debug("send %s 0x%08x id=%llu %s", gcs_type_name(type), type, (unsigned long long)id,
                  text ? text : "");
        free(text);
    }
    json_decref(body);
    uv_buf_t buf = uv_buf_init((char *)w->frame, (unsigned)len);
    int rc = uv_write(&w->req, a->bridge, &buf, 1, on_written);
    if (rc < 0) {
        log_warn("bridge write failed: %s", uv_strerror(rc));
        free(w->frame);
        free(w);
    }
}

struct request *request_new(struct agent *a, const struct gcs_message *m,
                            const struct gcs_request_base *base)
{
    struct request *req = calloc(1, sizeof(*req));
    if (!req)
        return NULL;
    req->a = a;
    req->type = m->type;
    req->id = m->id;
    if (base && base->activity_id && !(req->activity_id = strdup(base->activity_id)))
        goto oom;
    if (base && base->container_id && !(req->container_id = strdup(base->container_id)))
        goto oom;
    return req;
oom:
    request_free(req);
    return NULL;
}

void request_free(struct request *req)
{
    if (!req)
        return;
    free(req->activity_id);
    free(req->container_id);
    free(req);
}

void request_reply(struct request *req, json_t *body)
{
    if (!body) {
        struct gcs_response_base base = {.activity_id = req->activity_id};
        body = gcs_response_base_build(&base);
    }
    agent_send(req->a, gcs_type_response_for(req->type), req->id, body);
    request_free(req);
    /* A request's transient memory is free now but would stay resident below
     * glibc's 128 KiB trim threshold: an idle agent gives it back. */
    malloc_trim(0);
}

static void send_error(struct agent *a, uint32_t type, uint64_t id, const char *activity_id,
                       int32_t hr, const char *msg)
{
    log_fields(LOG_LEVEL_DEBUG, "request failed", "type", gcs_type_name(type), "error", msg, NULL);
    agent_send(a, gcs_type_response_for(type), id, gcs_error_response_build(hr, activity_id, msg));
}

void request_reply_error(struct request *req, int32_t hresult, const char *fmt, ...)
{
    char *msg = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) < 0)
        msg = NULL;
    va_end(ap);
    send_error(req->a, req->type, req->id, req->activity_id, hresult, msg ? msg : "error");
    free(msg);
    request_free(req);
}

static void not_supported(struct agent *a, const struct gcs_message *m, const char *activity_id)
{
    char msg[160];
    snprintf(msg, sizeof(msg),
             "HRESULT 0x80004001: bridge: function not supported, header type: %s (0x%08x)",
             gcs_type_name(m->type), m->type);
    send_error(a, m->type, m->id, activity_id, GCS_HR_E_NOTIMPL, msg);
}

static void negotiate(struct agent *a, struct gcs_message *m)
{
    struct gcs_negotiate_request nr;
    shim_error_t *err = NULL;
    if (gcs_negotiate_request_parse(m->body, &nr, &err) < 0) {
        send_error(a, m->type, m->id, NULL, GCS_HR_INVALID_JSON, err->msg);
        error_free(err);
        return;
    }
    if (nr.maximum_version < GCS_PROTOCOL_VERSION || nr.minimum_version > GCS_PROTOCOL_VERSION) {
        char msg[128];
        snprintf(msg, sizeof(msg), "HRESULT: 0xc037010c: unsupported protocol version %u..%u",
                 nr.minimum_version, nr.maximum_version);
        send_error(a, m->type, m->id, nr.base.activity_id, GCS_HR_UNSUPPORTED_PROTOCOL, msg);
        return;
    }
    struct gcs_negotiate_response resp = {0};
    resp.base.activity_id = nr.base.activity_id;
    resp.version = GCS_PROTOCOL_VERSION;
    gcs_capabilities_lcow_default(&resp.capabilities);
    a->negotiated = true;
    log_info("negotiated protocol version %u", GCS_PROTOCOL_VERSION);
    agent_send(a, gcs_type_response_for(m->type), m->id, gcs_negotiate_response_build(&resp));
}

static void handle_message(struct agent *a, struct gcs_message *m)
{
    if (log_enabled(LOG_LEVEL_DEBUG)) {
        char *text = m->body ? json_dumps(m->body, JSON_COMPACT) : NULL;
        log_debug("recv %s 0x%08x id=%llu %s", gcs_type_name(m->type), m->type,
                  (unsigned long long)m->id, text ? text : "");
        free(text);
    }
    const char *activity_id = NULL;
    if (m->body)
        gcs_json_string(m->body, "ActivityId", false, &activity_id, NULL);
    bool is_negotiate = m->type == GCS_TYPE_NEGOTIATE_PROTOCOL;
    /* Without -v4 nothing is registered; negotiation happens once. */
    if (!a->cfg->v4 || gcs_type_kind(m->type) != GCS_KIND_REQUEST ||
        is_negotiate == a->negotiated) {
        not_supported(a, m, activity_id);
        return;
    }
    if (is_negotiate)
        negotiate(a, m);
    else
        agent_dispatch(a, m);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    buf->base = malloc(BRIDGE_READ_CHUNK);
    buf->len = buf->base ? BRIDGE_READ_CHUNK : 0;
}

static void drain_decoder(struct agent *a)
{
    for (;;) {
        struct gcs_message m = {0};
        shim_error_t *err = NULL;
        int rc = gcs_frame_decoder_next(&a->decoder, &m, &err);
        if (rc == GCS_DECODE_NEED_MORE)
            return;
        if (rc == GCS_DECODE_FATAL) {
            log_error("bridge framing broken: %s", err ? err->msg : "?");
            error_free(err);
            gcs_message_clear(&m);
            agent_shutdown(a, 1);
            return;
        }
        if (rc == GCS_DECODE_BAD_BODY) {
            /* The stream stays in sync: answer invalid JSON without ActivityId. */
            send_error(a, m.type, m.id, NULL, GCS_HR_INVALID_JSON, err ? err->msg : "invalid JSON");
            error_free(err);
        } else {
            handle_message(a, &m);
        }
        gcs_message_clear(&m);
        if (a->shutting_down)
            return;
    }
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct agent *a = s->data;
    if (n > 0) {
        shim_error_t *err = NULL;
        if (gcs_frame_decoder_push(&a->decoder, buf->base, (size_t)n, &err) < 0) {
            log_error("bridge: %s", err ? err->msg : "decoder failed");
            error_free(err);
            free(buf->base);
            agent_shutdown(a, 1);
            return;
        }
        free(buf->base);
        drain_decoder(a);
        return;
    }
    free(buf->base);
    if (n == 0)
        return;
    /* A host that closes with data still queued makes a reset: also a close. */
    bool closed = n == UV_EOF || n == UV_ECONNRESET;
    if (closed)
        log_info("bridge closed by the host (%s)", uv_err_name((int)n));
    else
        log_error("bridge read failed: %s", uv_strerror((int)n));
    if (gcs_frame_decoder_pending(&a->decoder) > 0)
        log_warn("bridge: %zu bytes of a truncated message dropped",
                 gcs_frame_decoder_pending(&a->decoder));
    agent_shutdown(a, closed ? 0 : 1);
}

int agent_bridge_start(struct agent *a, uv_stream_t *bridge, shim_error_t **err)
{
    a->bridge = bridge;
    bridge->data = a;
    int rc = uv_read_start(bridge, on_alloc, on_read);
    if (rc < 0)
        return error_set_uv(err, RPC_INTERNAL, rc, "bridge read");
    return 0;
}

/* ---- orderly exit ------------------------------------------------------------------ */

static void on_handle_closed_noop(uv_handle_t *h)
{
    (void)h;
}

static void on_shutdown_timeout(uv_timer_t *t)
{
    struct agent *a = t->data;
    log_error("shutdown: %d objects still alive after the grace period; exiting", a->live_objects);
    exit(a->exit_code ? a->exit_code : 1);
}

void agent_maybe_finish_shutdown(struct agent *a)
{
    if (!a->shutting_down || a->live_objects > 0 || !a->reaper)
        return;
    if (gcs_reaper_live_count(a->reaper) > 0)
        return;
    log_debug("shutdown complete");
    gcs_reaper_close(a->reaper);
    a->reaper = NULL;
    uv_timer_stop(&a->shutdown_timer);
    uv_close((uv_handle_t *)&a->shutdown_timer, on_handle_closed_noop);
    if (a->stdio_transport && a->stdio_transport != a->bridge_transport)
        gcs_transport_destroy(a->stdio_transport);
    gcs_transport_destroy(a->bridge_transport);
    a->stdio_transport = a->bridge_transport = NULL;
}

void agent_shutdown(struct agent *a, int exit_code)
{
    if (a->shutting_down)
        return;
    a->shutting_down = true;
    a->exit_code = exit_code;
    log_info("shutting down: killing every container and process");
    if (a->bridge) {
        uv_read_stop(a->bridge);
        gcs_stream_close(a->bridge);
        a->bridge = NULL;
    }
    uv_close((uv_handle_t *)&a->sig_term, on_handle_closed_noop);
    uv_close((uv_handle_t *)&a->sig_int, on_handle_closed_noop);
    while (a->containers)
        container_destroy(a->containers); /* unlists it */
    while (a->uvm_processes) {
        struct process *p = a->uvm_processes;
        process_ref(p);
        if (p->started && !p->exited)
            kill(p->pid, SIGKILL);
        process_abort(p);
        process_unlist(p);
        process_unref(p);
    }
    agent_unmount_all(a);
    /* Runtime invocations still running finish by themselves (bounded); their
     * callbacks see shutting_down and clean up what they created. */
    uv_timer_start(&a->shutdown_timer, on_shutdown_timeout, 10000, 0);
    agent_maybe_finish_shutdown(a);
}
