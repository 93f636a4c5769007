#include "gcs/guest_connection.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/log.h"
#include "gcs/bridge_frame.h"
#include "gcs/bridge_json.h"

#define DEFAULT_RPC_TIMEOUT_MS (5 * 60 * 1000)
#define DEFAULT_ACCEPT_TIMEOUT_MS (2 * 60 * 1000)
#define READ_BUFFER_SIZE (64 * 1024)

enum call_kind {
    CALL_DONE,
    CALL_RAW,
    CALL_NEGOTIATE,
    CALL_WAIT,
    CALL_PROPS,
    CALL_STACKS,
    CALL_EXEC
};

struct exec_stdio;

union call_cb {
    gcs_done_cb done;
    gcs_raw_cb raw;
    gcs_negotiate_cb negotiate;
    gcs_wait_cb wait;
    gcs_properties_cb props;
    gcs_stacks_cb stacks;
    gcs_exec_cb exec;
};

struct call {
    struct call *next;
    struct gcs_guest_connection *conn;
    uint64_t id;
    uint32_t type;
    uint64_t deadline; /* uv_now() ms; 0 = no timer */
    bool responded;    /* exec: response in, still waiting for stdio connections */
    enum call_kind kind;
    union call_cb cb;
    void *opaque;
    struct exec_stdio *exec;
};

/* stdin, stdout, stderr */
struct exec_stdio {
    struct call *call;
    struct gcs_listener *listener[3];
    uv_stream_t *stream[3];
    bool want[3];
    uint32_t pid;
};

struct gcs_guest_connection {
    uv_loop_t *loop;
    uv_stream_t *bridge;
    uv_timer_t timer;
    struct gcs_transport *stdio;
    struct gcs_guest_connection_config config;
    struct gcs_guest_callbacks callbacks;
    void *opaque;
    struct gcs_frame_decoder decoder;
    struct call *calls; /* outstanding, in send order */
    uint64_t next_id;
    uint32_t next_port;
    int open_handles;
    bool broken;  /* the bridge failed or was closed */
    bool closing; /* the owner called close: free once handles are closed */
    bool negotiated;
    struct gcs_capabilities caps;
    char *runtime_os_type;
    char read_buffer[READ_BUFFER_SIZE]; /* keep last: not cleared at allocation */
};

struct write_req {
    uv_write_t req;
    struct gcs_guest_connection *conn;
    uint8_t *data;
};

static void bridge_fail(struct gcs_guest_connection *c, shim_error_t *why);
static void timer_fired(uv_timer_t *t);

/* ---- lifetime ------------------------------------------------------------------ */

static void maybe_free(struct gcs_guest_connection *c)
{
    if (!c->closing || c->open_handles > 0)
        return;
    gcs_frame_decoder_free(&c->decoder);
    free(c->runtime_os_type);
    free(c);
}

static void handle_closed(uv_handle_t *h)
{
    struct gcs_guest_connection *c = h->data;
    if (h != (uv_handle_t *)&c->timer)
        free(h);
    c->open_handles--;
    maybe_free(c);
}

static void close_bridge(struct gcs_guest_connection *c)
{
    if (c->bridge != NULL) {
        uv_close((uv_handle_t *)c->bridge, handle_closed);
        c->bridge = NULL;
    }
}

bool gcs_guest_connection_alive(const struct gcs_guest_connection *c)
{
    return !c->broken && !c->closing;
}

const struct gcs_capabilities *
gcs_guest_connection_capabilities(const struct gcs_guest_connection *c)
{
    return c->negotiated ? &c->caps : NULL;
}

size_t gcs_guest_connection_outstanding(const struct gcs_guest_connection *c)
{
    size_t n = 0;
    for (struct call *k = c->calls; k != NULL; k = k->next)
        n++;
    return n;
}

/* ---- calls ---------------------------------------------------------------------- */

static void unlink_call(struct gcs_guest_connection *c, struct call *call)
{
    for (struct call **p = &c->calls; *p != NULL; p = &(*p)->next) {
        if (*p == call) {
            *p = call->next;
            call->next = NULL;
            return;
        }
    }
}

static void exec_release(struct exec_stdio *x)
{
    for (int i = 0; i < 3; i++) {
        gcs_listener_close(x->listener[i]);
        gcs_stream_close(x->stream[i]);
    }
    free(x);
}

/* Runs the callback with a failure and frees the call (already unlinked). */
static void call_fail(struct call *call, int32_t hr, const shim_error_t *err)
{
    switch (call->kind) {
    case CALL_DONE:
        call->cb.done(call->opaque, hr, err);
        break;
    case CALL_RAW:
        call->cb.raw(call->opaque, hr, err, NULL);
        break;
    case CALL_NEGOTIATE:
        call->cb.negotiate(call->opaque, hr, err, NULL);
        break;
    case CALL_WAIT:
        call->cb.wait(call->opaque, hr, err, 0);
        break;
    case CALL_PROPS:
        call->cb.props(call->opaque, hr, err, NULL);
        break;
    case CALL_STACKS:
        call->cb.stacks(call->opaque, hr, err, NULL);
        break;
    case CALL_EXEC:
        exec_release(call->exec);
        call->cb.exec(call->opaque, hr, err, NULL);
        break;
    }
    free(call);
}

static void call_fail_local(struct call *call, int code, const char *fmt, const char *why)
{
    shim_error_t *err = NULL;
    error_set(&err, code, fmt, gcs_type_name(call->type), why);
    call_fail(call, 0, err);
    error_free(err);
}

static void fail_all(struct gcs_guest_connection *c, int code, const char *why)
{
    while (c->calls != NULL) {
        struct call *call = c->calls;
        c->calls = call->next;
        call->next = NULL;
        call_fail_local(call, code, "gcs %s: %s", why);
    }
}

static void arm_timer(struct gcs_guest_connection *c)
{
    if (c->closing || uv_is_closing((uv_handle_t *)&c->timer))
        return;
    uint64_t next = 0;
    for (struct call *k = c->calls; k != NULL; k = k->next) {
        if (k->deadline != 0 && (next == 0 || k->deadline < next))
            next = k->deadline;
    }
    if (next == 0) {
        uv_timer_stop(&c->timer);
        return;
    }
    uint64_t now = uv_now(c->loop);
    uv_timer_start(&c->timer, timer_fired, next > now ? next - now : 0, 0);
}

static void timer_fired(uv_timer_t *t)
{
    struct gcs_guest_connection *c = t->data;
    uint64_t now = uv_now(c->loop);
    /* Unlink the expired calls first: their callbacks may add or close. */
    struct call *expired = NULL, **tail = &expired;
    for (struct call **p = &c->calls; *p != NULL;) {
        struct call *k = *p;
        if (k->deadline != 0 && k->deadline <= now) {
            *p = k->next;
            k->next = NULL;
            *tail = k;
            tail = &k->next;
        } else {
            p = &k->next;
        }
    }
    while (expired != NULL) {
        struct call *k = expired;
        expired = k->next;
        k->next = NULL;
        log_warn("gcs %s (id %llu) timed out after %llu ms", gcs_type_name(k->type),
                 (unsigned long long)k->id, (unsigned long long)c->config.rpc_timeout_ms);
        call_fail_local(k, RPC_DEADLINE_EXCEEDED, "gcs %s: %s",
                        "no response from the guest in time");
    }
    arm_timer(c);
}

/* ---- responses ------------------------------------------------------------------ */

/* The error for a guest Result != 0: its ErrorMessage plus the HRESULT. */
static void guest_error(uint32_t type, const struct gcs_response_base *b, shim_error_t **err)
{
    const char *name = gcs_hresult_name(b->result);
    const char *msg = b->error_message && b->error_message[0] ? b->error_message : "(no message)";
    error_set(err, gcs_hresult_to_rpc_code(b->result), "guest %s failed: %s (HRESULT 0x%08x%s%s)",
              gcs_type_name(type), msg, (uint32_t)b->result, name ? " " : "", name ? name : "");
    size_t i;
    json_t *rec;
    json_array_foreach(b->error_records, i, rec)
    {
        struct gcs_error_record r;
        if (gcs_error_record_parse(rec, &r, NULL) == 0)
            log_debug("gcs error record: result=0x%08x message=%s module=%s file=%s line=%u",
                      (uint32_t)r.result, r.message ? r.message : "",
                      r.module_name ? r.module_name : "", r.file_name ? r.file_name : "", r.line);
    }
}

static void store_capabilities(struct gcs_guest_connection *c, const struct gcs_capabilities *caps)
{
    free(c->runtime_os_type);
    c->runtime_os_type = caps->runtime_os_type ? strdup(caps->runtime_os_type) : NULL;
    c->caps = *caps;
    c->caps.runtime_os_type = c->runtime_os_type;
    c->caps.supported_schema_versions = NULL;
    c->negotiated = true;
}

static void exec_maybe_ready(struct call *call);

/* Parses the kind-specific part of a successful response and runs the
 * callback; `fail` receives a malformed-response error instead. */
static void complete_success(struct call *call, const json_t *body)
{
    struct gcs_guest_connection *c = call->conn;
    shim_error_t *err = NULL;
    switch (call->kind) {
    case CALL_DONE:
        call->cb.done(call->opaque, 0, NULL);
        break;
    case CALL_RAW:
        call->cb.raw(call->opaque, 0, NULL, body);
        break;
    case CALL_NEGOTIATE: {
        struct gcs_negotiate_response r;
        if (gcs_negotiate_response_parse(body, &r, &err) < 0)
            goto malformed;
        if (r.version != GCS_PROTOCOL_VERSION) {
            error_set(&err, RPC_FAILED_PRECONDITION,
                      "guest negotiated protocol version %u, want %u", r.version,
                      GCS_PROTOCOL_VERSION);
            call_fail(call, 0, err);
            error_free(err);
            return;
        }
        if (r.capabilities.runtime_os_type == NULL ||
            strcasecmp(r.capabilities.runtime_os_type, "linux") != 0)
            log_warn("gcs: guest runtime OS is '%s', not Linux",
                     r.capabilities.runtime_os_type ? r.capabilities.runtime_os_type : "");
        store_capabilities(c, &r.capabilities);
        call->cb.negotiate(call->opaque, 0, NULL, &c->caps);
        break;
    }
    case CALL_WAIT: {
        struct gcs_wait_process_response r;
        if (gcs_wait_process_response_parse(body, &r, &err) < 0)
            goto malformed;
        call->cb.wait(call->opaque, 0, NULL, r.exit_code);
        break;
    }
    case CALL_PROPS: {
        struct gcs_get_properties_response r;
        if (gcs_get_properties_response_parse(body, &r, &err) < 0)
            goto malformed;
        json_t *empty = r.properties ? NULL : json_object();
        call->cb.props(call->opaque, 0, NULL, r.properties ? r.properties : empty);
        json_decref(empty);
        gcs_get_properties_response_clear(&r);
        break;
    }
    case CALL_STACKS: {
        struct gcs_dump_stacks_response r;
        if (gcs_dump_stacks_response_parse(body, &r, &err) < 0)
            goto malformed;
        call->cb.stacks(call->opaque, 0, NULL, r.guest_stacks ? r.guest_stacks : "");
        break;
    }
    case CALL_EXEC: {
        struct gcs_execute_process_response r;
        if (gcs_execute_process_response_parse(body, &r, &err) < 0)
            goto malformed;
        call->exec->pid = r.process_id;
        call->responded = true;
        call->next = c->calls; /* back in the list until the stdio connections arrive */
        c->calls = call;
        exec_maybe_ready(call);
        return;
    }
    }
    free(call);
    return;
malformed:
    error_wrap(&err, "malformed %s response from the guest", gcs_type_name(call->type));
    if (err != NULL)
        err->code = RPC_DATA_LOSS;
    call_fail(call, 0, err);
    error_free(err);
}

static void handle_response(struct gcs_guest_connection *c, const struct gcs_message *m)
{
    struct call *call = NULL;
    for (struct call *k = c->calls; k != NULL; k = k->next) {
        if (k->id == m->id && !k->responded) {
            call = k;
            break;
        }
    }
    if (call == NULL) {
        log_warn("gcs: dropping %s response with unknown id %llu", gcs_type_name(m->type),
                 (unsigned long long)m->id);
        return;
    }
    unlink_call(c, call);
    if (gcs_type_request_for(m->type) != call->type)
        log_debug("gcs: response type 0x%08x for %s request id %llu", m->type,
                  gcs_type_name(call->type), (unsigned long long)m->id);
    struct gcs_response_base base;
    shim_error_t *err = NULL;
    if (gcs_response_base_parse(m->body, &base, &err) < 0) {
        error_wrap(&err, "malformed %s response from the guest", gcs_type_name(call->type));
        if (err != NULL)
            if (err != NULL)
                err->code = RPC_DATA_LOSS;
        call_fail(call, 0, err);
    } else if (base.result != 0) {
        guest_error(call->type, &base, &err);
        if (call->kind == CALL_RAW)
            call->cb.raw(call->opaque, base.result, err, m->body);
        else if (call->kind == CALL_WAIT) {
            /* hcsshim still reads ExitCode when the process is gone */
            uint32_t code = 0;
            gcs_json_u32(m->body, "ExitCode", false, &code, NULL);
            call->cb.wait(call->opaque, base.result, err, code);
        }
        if (call->kind == CALL_RAW || call->kind == CALL_WAIT)
            free(call);
        else
            call_fail(call, base.result, err);
    } else {
        complete_success(call, m->body);
    }
    error_free(err);
    arm_timer(c);
}

static void handle_notification(struct gcs_guest_connection *c, const struct gcs_message *m)
{
    if (m->type != GCS_TYPE_CONTAINER_NOTIFICATION) {
        log_warn("gcs: ignoring unexpected notification type 0x%08x", m->type);
        return;
    }
    struct gcs_container_notification n;
    shim_error_t *err = NULL;
    if (gcs_container_notification_parse(m->body, &n, &err) < 0) {
        log_warn("gcs: ignoring malformed container notification: %s", err->msg);
        error_free(err);
        return;
    }
    log_debug("gcs: container %s notification type=%s operation=%s", n.base.container_id,
              n.type ? n.type : "", n.operation ? n.operation : "");
    if (c->callbacks.container_exit != NULL)
        c->callbacks.container_exit(c->opaque, &n);
    gcs_container_notification_clear(&n);
}

static void dispatch(struct gcs_guest_connection *c, const struct gcs_message *m)
{
    if (log_enabled(LOG_LEVEL_TRACE)) {
        char *text = json_dumps(m->body, JSON_COMPACT);
        log_trace("gcs recv type=0x%08x id=%llu %s", m->type, (unsigned long long)m->id,
                  text ? text : "");
        free(text);
    }
    switch (gcs_type_kind(m->type)) {
    case GCS_KIND_RESPONSE:
        handle_response(c, m);
        break;
    case GCS_KIND_NOTIFICATION:
        handle_notification(c, m);
        break;
    default:
        log_warn("gcs: ignoring message type 0x%08x id %llu from the guest", m->type,
                 (unsigned long long)m->id);
    }
}

/* ---- bridge I/O ------------------------------------------------------------------ */

static void bridge_fail(struct gcs_guest_connection *c, shim_error_t *why)
{
    if (c->broken) {
        error_free(why);
        return;
    }
    c->broken = true;
    log_error("gcs bridge failed: %s", why ? why->msg : "unknown error");
    close_bridge(c);
    char *reason = NULL;
    if (asprintf(&reason, "bridge lost: %s", why ? why->msg : "unknown error") < 0)
        reason = NULL;
    fail_all(c, RPC_UNAVAILABLE, reason ? reason : "bridge lost");
    free(reason);
    arm_timer(c);
    if (!c->closing && c->callbacks.bridge_closed != NULL)
        c->callbacks.bridge_closed(c->opaque, why);
    error_free(why);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct gcs_guest_connection *c = h->data;
    (void)suggested;
    buf->base = c->read_buffer;
    buf->len = sizeof(c->read_buffer);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct gcs_guest_connection *c = s->data;
    shim_error_t *err = NULL;
    if (nread == 0 || c->broken)
        return;
    if (nread < 0) {
        size_t pending = gcs_frame_decoder_pending(&c->decoder);
        if (nread == UV_EOF && pending > 0)
            error_set(&err, RPC_UNAVAILABLE,
                      "guest closed the bridge in the middle of a message "
                      "(%zu bytes of a truncated message)",
                      pending);
        else if (nread == UV_EOF)
            error_set(&err, RPC_UNAVAILABLE, "guest closed the bridge (EOF)");
        else
            error_set_uv(&err, RPC_UNAVAILABLE, (int)nread, "reading the bridge");
        bridge_fail(c, err);
        return;
    }
    if (gcs_frame_decoder_push(&c->decoder, buf->base, (size_t)nread, &err) < 0) {
        bridge_fail(c, err);
        return;
    }
    while (!c->broken) {
        struct gcs_message m;
        int rc = gcs_frame_decoder_next(&c->decoder, &m, &err);
        if (rc == GCS_DECODE_NEED_MORE)
            break;
        if (rc != GCS_DECODE_MESSAGE) {
            gcs_message_clear(&m);
            bridge_fail(c, err);
            return;
        }
        dispatch(c, &m);
        gcs_message_clear(&m);
    }
}

static void on_written(uv_write_t *req, int status)
{
    struct write_req *w = (struct write_req *)req;
    struct gcs_guest_connection *c = w->conn;
    free(w->data);
    free(w);
    if (status < 0 && status != UV_ECANCELED && !c->broken) {
        shim_error_t *err = NULL;
        error_set_uv(&err, RPC_UNAVAILABLE, status, "writing the bridge");
        bridge_fail(c, err);
    }
}

static int write_frame(struct gcs_guest_connection *c, uint32_t type, uint64_t id,
                       const json_t *body, shim_error_t **err)
{
    struct write_req *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    size_t len;
    if (gcs_frame_encode(type, id, body, &w->data, &len, err) < 0) {
        free(w);
        return -1;
    }
    w->conn = c;
    uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)len);
    int rc = uv_write(&w->req, c->bridge, &b, 1, on_written);
    if (rc < 0) {
        free(w->data);
        free(w);
        return error_set_uv(err, RPC_UNAVAILABLE, rc, "writing the bridge");
    }
    if (log_enabled(LOG_LEVEL_TRACE)) {
        char *text = json_dumps(body, JSON_COMPACT);
        log_trace("gcs send %s id=%llu %s", gcs_type_name(type), (unsigned long long)id,
                  text ? text : "");
        free(text);
    }
    return 0;
}

static int check_alive(struct gcs_guest_connection *c, shim_error_t **err)
{
    if (c->closing)
        return error_set(err, RPC_CANCELED, "gcs connection closed");
    if (c->broken)
        return error_set(err, RPC_UNAVAILABLE, "gcs bridge lost");
    return 0;
}

/* Sends a request and registers its call. `body` is borrowed. */
static int send_call(struct gcs_guest_connection *c, uint32_t type, const json_t *body, bool timed,
                     enum call_kind kind, union call_cb cb, void *opaque, struct call **out,
                     shim_error_t **err)
{
    if (check_alive(c, err) < 0)
        return -1;
    if (body == NULL)
        return error_set(err, RPC_INVALID_ARGUMENT, "cannot build the %s request",
                         gcs_type_name(type));
    struct call *call = calloc(1, sizeof(*call));
    if (call == NULL)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    call->conn = c;
    call->id = c->next_id;
    call->type = type;
    call->kind = kind;
    call->opaque = opaque;
    call->cb = cb;
    if (write_frame(c, type, call->id, body, err) < 0) {
        free(call);
        return -1;
    }
    c->next_id++;
    if (timed && c->config.rpc_timeout_ms != UINT64_MAX)
        call->deadline = uv_now(c->loop) + c->config.rpc_timeout_ms;
    struct call **tail = &c->calls;
    while (*tail != NULL)
        tail = &(*tail)->next;
    *tail = call;
    arm_timer(c);
    if (out != NULL)
        *out = call;
    return 0;
}

/* ---- construction --------------------------------------------------------------- */

int gcs_guest_connection_new(uv_loop_t *loop, uv_stream_t *bridge, struct gcs_transport *stdio,
                             const struct gcs_guest_connection_config *config,
                             const struct gcs_guest_callbacks *callbacks, void *opaque,
                             struct gcs_guest_connection **out, shim_error_t **err)
{
    struct gcs_guest_connection *c = malloc(sizeof(*c));
    if (c == NULL)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    /* calloc would make the whole 64 KiB read buffer resident at idle */
    memset(c, 0, offsetof(struct gcs_guest_connection, read_buffer));
    c->loop = loop;
    c->stdio = stdio;
    if (config != NULL)
        c->config = *config;
    if (c->config.max_message_size == 0)
        c->config.max_message_size = GCS_HOST_MAX_MESSAGE_SIZE;
    if (c->config.rpc_timeout_ms == 0)
        c->config.rpc_timeout_ms = DEFAULT_RPC_TIMEOUT_MS;
    if (c->config.first_stdio_port == 0)
        c->config.first_stdio_port = GCS_FIRST_STDIO_PORT;
    c->next_port = c->config.first_stdio_port;
    if (callbacks != NULL)
        c->callbacks = *callbacks;
    c->opaque = opaque;
    gcs_frame_decoder_init(&c->decoder, c->config.max_message_size);
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    c->open_handles = 2; /* timer + bridge */
    c->bridge = bridge;
    bridge->data = c;
    int rc = uv_read_start(bridge, on_alloc, on_read);
    if (rc < 0) {
        error_set_uv(err, RPC_UNAVAILABLE, rc, "reading the gcs bridge");
        c->broken = true;
        gcs_guest_connection_close(c);
        return -1;
    }
    *out = c;
    return 0;
}

void gcs_guest_connection_close(struct gcs_guest_connection *c)
{
    if (c == NULL || c->closing)
        return;
    c->closing = true;
    c->broken = true;
    close_bridge(c);
    fail_all(c, RPC_CANCELED, "connection closed");
    uv_close((uv_handle_t *)&c->timer, handle_closed);
}

/* ---- exec and its stdio -------------------------------------------------------- */

static void exec_maybe_ready(struct call *call)
{
    struct exec_stdio *x = call->exec;
    if (!call->responded)
        return;
    for (int i = 0; i < 3; i++) {
        if (x->want[i] && x->stream[i] == NULL)
            return;
    }
    unlink_call(call->conn, call);
    struct gcs_process_io io = {.pid = x->pid,
                                .stdin_stream = x->stream[0],
                                .stdout_stream = x->stream[1],
                                .stderr_stream = x->stream[2]};
    memset(x->stream, 0, sizeof(x->stream)); /* the callee owns them now */
    exec_release(x);
    call->cb.exec(call->opaque, 0, NULL, &io);
    free(call);
}

static void exec_accept(struct gcs_listener *l, uv_stream_t *stream, int status, void *opaque)
{
    struct exec_stdio *x = opaque;
    int i = 0;
    while (i < 3 && x->listener[i] != l)
        i++;
    if (i == 3) {
        gcs_stream_close(stream);
        return;
    }
    if (status < 0) {
        log_warn("gcs: accepting stdio on port %u: %s", gcs_listener_port(l), uv_strerror(status));
        return;
    }
    /* Each stdio listener takes exactly one connection. */
    gcs_listener_close(l);
    x->listener[i] = NULL;
    x->stream[i] = stream;
    exec_maybe_ready(x->call);
}

static int exec_listen(struct gcs_guest_connection *c, struct exec_stdio *x, unsigned stdio,
                       struct gcs_stdio_ports *ports, shim_error_t **err)
{
    uint32_t *port_slot[3] = {&ports->stdin_port, &ports->stdout_port, &ports->stderr_port};
    for (int i = 0; i < 3; i++) {
        x->want[i] = (stdio & (1u << i)) != 0;
        if (!x->want[i])
            continue;
        if (c->stdio == NULL)
            return error_set(err, RPC_FAILED_PRECONDITION, "no stdio transport for process pipes");
        uint32_t port = c->next_port++; /* never reused, even on failure */
        if (gcs_transport_listen(c->stdio, port, exec_accept, x, &x->listener[i], err) < 0)
            return error_wrap(err, "listening for process stdio");
        *port_slot[i] = port;
    }
    return 0;
}

int gcs_guest_execute_process(struct gcs_guest_connection *c, const char *container_id,
                              const json_t *process_parameters, unsigned stdio, gcs_exec_cb cb,
                              void *opaque, shim_error_t **err)
{
    if (check_alive(c, err) < 0)
        return -1;
    if (!json_is_object(process_parameters))
        return error_set(err, RPC_INVALID_ARGUMENT, "process parameters must be a JSON object");
    struct exec_stdio *x = calloc(1, sizeof(*x));
    json_t *params = json_deep_copy(process_parameters);
    json_t *body = NULL;
    int rc = -1;
    if (x == NULL || params == NULL) {
        error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    const char *keys[3] = {"CreateStdInPipe", "CreateStdOutPipe", "CreateStdErrPipe"};
    for (int i = 0; i < 3; i++) {
        json_object_del(params, keys[i]);
        if (stdio & (1u << i))
            gcs_json_set_bool(params, keys[i], true);
    }
    struct gcs_execute_process_request req = {
        .base = {.container_id = container_id ? container_id : GCS_NULL_CONTAINER_ID},
        .process_parameters = params};
    if (exec_listen(c, x, stdio, &req.ports, err) < 0)
        goto out;
    body = gcs_execute_process_request_build(&req);
    struct call *call = NULL;
    if (send_call(c, GCS_TYPE_EXECUTE_PROCESS, body, true, CALL_EXEC, (union call_cb){.exec = cb},
                  opaque, &call, err) < 0)
        goto out;
    call->exec = x;
    x->call = call;
    x = NULL;
    rc = 0;
out:
    if (x != NULL)
        exec_release(x);
    json_decref(params);
    json_decref(body);
    return rc;
}

/* ---- the other RPCs ------------------------------------------------------------------ */

static int send_built(struct gcs_guest_connection *c, uint32_t type, json_t *body, bool timed,
                      enum call_kind kind, union call_cb cb, void *opaque, shim_error_t **err)
{
    int rc = send_call(c, type, body, timed, kind, cb, opaque, NULL, err);
    json_decref(body);
    return rc;
}

static json_t *base_only(const char *container_id)
{
    struct gcs_request_base b = {.container_id =
                                     container_id ? container_id : GCS_NULL_CONTAINER_ID};
    return gcs_request_base_build(&b);
}

int gcs_guest_negotiate(struct gcs_guest_connection *c, gcs_negotiate_cb cb, void *opaque,
                        shim_error_t **err)
{
    struct gcs_negotiate_request r = {.base = {.container_id = GCS_NULL_CONTAINER_ID},
                                      .minimum_version = GCS_PROTOCOL_VERSION,
                                      .maximum_version = GCS_PROTOCOL_VERSION};
    return send_built(c, GCS_TYPE_NEGOTIATE_PROTOCOL, gcs_negotiate_request_build(&r), true,
                      CALL_NEGOTIATE, (union call_cb){.negotiate = cb}, opaque, err);
}

int gcs_guest_create_container(struct gcs_guest_connection *c, const char *container_id,
                               const json_t *container_config, gcs_done_cb cb, void *opaque,
                               shim_error_t **err)
{
    if (container_id == NULL || !json_is_object(container_config))
        return error_set(err, RPC_INVALID_ARGUMENT, "create needs a container id and config");
    struct gcs_create_request r = {.base = {.container_id = container_id},
                                   .container_config = (json_t *)container_config};
    return send_built(c, GCS_TYPE_CREATE, gcs_create_request_build(&r), true, CALL_DONE,
                      (union call_cb){.done = cb}, opaque, err);
}

int gcs_guest_start_container(struct gcs_guest_connection *c, const char *container_id,
                              gcs_done_cb cb, void *opaque, shim_error_t **err)
{
    return send_built(c, GCS_TYPE_START, base_only(container_id), true, CALL_DONE,
                      (union call_cb){.done = cb}, opaque, err);
}

int gcs_guest_shutdown_container(struct gcs_guest_connection *c, const char *container_id,
                                 bool forced, gcs_done_cb cb, void *opaque, shim_error_t **err)
{
    /* Never to the null ID: that powers the VM off and gets no answer. */
    if (container_id == NULL || strcmp(container_id, GCS_NULL_CONTAINER_ID) == 0)
        return error_set(err, RPC_INVALID_ARGUMENT, "shutdown needs a container id");
    uint32_t type = forced ? GCS_TYPE_SHUTDOWN_FORCED : GCS_TYPE_SHUTDOWN_GRACEFUL;
    return send_built(c, type, base_only(container_id), true, CALL_DONE,
                      (union call_cb){.done = cb}, opaque, err);
}

int gcs_guest_delete_container_state(struct gcs_guest_connection *c, const char *container_id,
                                     gcs_done_cb cb, void *opaque, shim_error_t **err)
{
    return send_built(c, GCS_TYPE_DELETE_CONTAINER_STATE, base_only(container_id), true, CALL_DONE,
                      (union call_cb){.done = cb}, opaque, err);
}

int gcs_guest_wait_process(struct gcs_guest_connection *c, const char *container_id, uint32_t pid,
                           uint32_t timeout_ms, gcs_wait_cb cb, void *opaque, shim_error_t **err)
{
    struct gcs_wait_process_request r = {
        .base = {.container_id = container_id ? container_id : GCS_NULL_CONTAINER_ID},
        .process_id = pid,
        .timeout_ms = timeout_ms};
    return send_built(c, GCS_TYPE_WAIT_FOR_PROCESS, gcs_wait_process_request_build(&r), false,
                      CALL_WAIT, (union call_cb){.wait = cb}, opaque, err);
}

int gcs_guest_signal_process(struct gcs_guest_connection *c, const char *container_id, uint32_t pid,
                             int signal, gcs_done_cb cb, void *opaque, shim_error_t **err)
{
    bool options = signal != 0;
    /* A guest without SignalProcessSupported only knows a plain kill (§6.6). */
    if (c->negotiated && !c->caps.signal_process_supported) {
        if (signal != 0 && signal != 9 && signal != 15)
            return error_set(err, RPC_UNIMPLEMENTED,
                             "the guest cannot deliver signal %d (no SignalProcessSupported)",
                             signal);
        options = false;
    }
    struct gcs_signal_process_request r = {
        .base = {.container_id = container_id ? container_id : GCS_NULL_CONTAINER_ID},
        .process_id = pid,
        .has_options = options,
        .signal = signal};
    return send_built(c, GCS_TYPE_SIGNAL_PROCESS, gcs_signal_process_request_build(&r), true,
                      CALL_DONE, (union call_cb){.done = cb}, opaque, err);
}

int gcs_guest_resize_console(struct gcs_guest_connection *c, const char *container_id, uint32_t pid,
                             uint16_t height, uint16_t width, gcs_done_cb cb, void *opaque,
                             shim_error_t **err)
{
    struct gcs_resize_console_request r = {
        .base = {.container_id = container_id ? container_id : GCS_NULL_CONTAINER_ID},
        .process_id = pid,
        .height = height,
        .width = width};
    return send_built(c, GCS_TYPE_RESIZE_CONSOLE, gcs_resize_console_request_build(&r), true,
                      CALL_DONE, (union call_cb){.done = cb}, opaque, err);
}

int gcs_guest_get_properties(struct gcs_guest_connection *c, const char *container_id,
                             unsigned property_types, gcs_properties_cb cb, void *opaque,
                             shim_error_t **err)
{
    struct gcs_get_properties_request r = {
        .base = {.container_id = container_id ? container_id : GCS_NULL_CONTAINER_ID},
        .property_types = property_types};
    return send_built(c, GCS_TYPE_GET_PROPERTIES, gcs_get_properties_request_build(&r), true,
                      CALL_PROPS, (union call_cb){.props = cb}, opaque, err);
}

int gcs_guest_modify_settings(struct gcs_guest_connection *c, const char *container_id,
                              const char *resource_type, const char *request_type,
                              const json_t *settings, gcs_done_cb cb, void *opaque,
                              shim_error_t **err)
{
    if (resource_type == NULL)
        return error_set(err, RPC_INVALID_ARGUMENT, "modify settings needs a resource type");
    struct gcs_modify_settings_request r = {
        .base = {.container_id = container_id ? container_id : GCS_NULL_CONTAINER_ID},
        .resource_type = resource_type,
        .request_type = request_type,
        .settings = (json_t *)settings};
    return send_built(c, GCS_TYPE_MODIFY_SETTINGS, gcs_modify_settings_request_build(&r), true,
                      CALL_DONE, (union call_cb){.done = cb}, opaque, err);
}

int gcs_guest_dump_stacks(struct gcs_guest_connection *c, gcs_stacks_cb cb, void *opaque,
                          shim_error_t **err)
{
    return send_built(c, GCS_TYPE_DUMP_STACKS, base_only(NULL), true, CALL_STACKS,
                      (union call_cb){.stacks = cb}, opaque, err);
}

int gcs_guest_call_raw(struct gcs_guest_connection *c, uint32_t type, const json_t *body,
                       bool timed, gcs_raw_cb cb, void *opaque, shim_error_t **err)
{
    if (!json_is_object(body))
        return error_set(err, RPC_INVALID_ARGUMENT, "body must be a JSON object");
    return send_call(c, type, body, timed, CALL_RAW, (union call_cb){.raw = cb}, opaque, NULL, err);
}

/* ---- stdio helpers ------------------------------------------------------------------- */

struct output_reader {
    gcs_output_cb cb;
    void *opaque;
    char buf[64 * 1024]; /* keep last: not cleared at allocation */
};

static void output_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct output_reader *r = h->data;
    (void)suggested;
    buf->base = r->buf;
    buf->len = sizeof(r->buf);
}

static void output_closed(uv_handle_t *h)
{
    free(h->data);
    free(h);
}

static void output_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct output_reader *r = s->data;
    if (nread > 0) {
        r->cb(r->opaque, buf->base, nread);
        return;
    }
    if (nread == 0)
        return;
    /* EOF or error: close our end so the guest's relay can finish (§8.4). */
    uv_read_stop(s);
    gcs_output_cb cb = r->cb;
    void *opaque = r->opaque;
    uv_close((uv_handle_t *)s, output_closed);
    cb(opaque, NULL, nread == UV_EOF ? 0 : nread);
}

int gcs_output_start(uv_stream_t *stream, gcs_output_cb cb, void *opaque, shim_error_t **err)
{
    struct output_reader *r = malloc(sizeof(*r));
    if (r != NULL)
        memset(r, 0, offsetof(struct output_reader, buf));
    if (r == NULL) {
        gcs_stream_close(stream);
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    }
    r->cb = cb;
    r->opaque = opaque;
    stream->data = r;
    int rc = uv_read_start(stream, output_alloc, output_read);
    if (rc < 0) {
        uv_close((uv_handle_t *)stream, output_closed);
        return error_set_uv(err, RPC_INTERNAL, rc, "reading process output");
    }
    return 0;
}

static void input_shutdown_done(uv_shutdown_t *req, int status)
{
    (void)status;
    gcs_stream_close(req->handle);
    free(req);
}

void gcs_input_close(uv_stream_t *stream)
{
    if (stream == NULL)
        return;
    uv_shutdown_t *req = malloc(sizeof(*req));
    if (req == NULL || uv_shutdown(req, stream, input_shutdown_done) < 0) {
        free(req);
        gcs_stream_close(stream);
    }
}

/* ---- bridge accept ---------------------------------------------------------------------- */

struct bridge_acceptor {
    uv_timer_t timer;
    struct gcs_listener *listener;
    gcs_bridge_accept_cb cb;
    void *opaque;
};

static void acceptor_closed(uv_handle_t *h)
{
    free(h->data);
}

static void acceptor_finish(struct bridge_acceptor *a, uv_stream_t *stream, shim_error_t *err)
{
    gcs_listener_close(a->listener);
    a->listener = NULL;
    uv_close((uv_handle_t *)&a->timer, acceptor_closed);
    a->cb(a->opaque, stream, err);
    error_free(err);
}

static void acceptor_timeout(uv_timer_t *t)
{
    struct bridge_acceptor *a = t->data;
    shim_error_t *err = NULL;
    error_set(&err, RPC_DEADLINE_EXCEEDED, "the guest did not connect to the gcs bridge in time");
    acceptor_finish(a, NULL, err);
}

static void acceptor_accept(struct gcs_listener *l, uv_stream_t *stream, int status, void *opaque)
{
    struct bridge_acceptor *a = opaque;
    (void)l;
    if (status < 0) {
        log_warn("gcs: accepting the bridge: %s", uv_strerror(status));
        return;
    }
    if (a->listener == NULL) { /* already finished */
        gcs_stream_close(stream);
        return;
    }
    uv_timer_stop(&a->timer);
    acceptor_finish(a, stream, NULL);
}

int gcs_bridge_accept(struct gcs_transport *t, uint64_t timeout_ms, gcs_bridge_accept_cb cb,
                      void *opaque, shim_error_t **err)
{
    struct bridge_acceptor *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    a->cb = cb;
    a->opaque = opaque;
    if (gcs_transport_listen(t, GCS_BRIDGE_PORT, acceptor_accept, a, &a->listener, err) < 0) {
        free(a);
        return error_wrap(err, "listening for the gcs bridge");
    }
    uv_timer_init(t->loop, &a->timer);
    a->timer.data = a;
    uv_timer_start(&a->timer, acceptor_timeout, timeout_ms ? timeout_ms : DEFAULT_ACCEPT_TIMEOUT_MS,
                   0);
    return 0;
}
