/* Host guest connection against a fake guest over a stream pair
 * (test/support/stream_pair.h), on one loop: ID allocation, out-of-order
 * responses, unknown IDs, notifications, bridge death, per-RPC timeouts,
 * tolerant/strict JSON, garbage frames, exec stdio through the unix-dir
 * transport (on Windows, where gcs/unix/ is not built, through the mux engine
 * instead: see "stdio transport" below). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifndef _WIN32
#include <unistd.h>
#endif

#include <cmocka.h>

#include "common/log.h"
#include "gcs/bridge_frame.h"
#include "gcs/bridge_json.h"
#include "gcs/bridge_msg.h"
#include "gcs/guest_connection.h"
#include "gcs/mux.h"
#include "gcs/transport.h"
#include "gcs/transport_impl.h"
#include "test/support/stream_pair.h"

#define MAX_REQUESTS 32

struct fake_guest {
    uv_stream_t *stream;
    struct gcs_frame_decoder dec;
    struct gcs_message req[MAX_REQUESTS];
    int n_req;
    bool eof; /* the host closed its end */
};

struct result {
    bool done;
    int calls;
    int32_t hr;
    int code; /* RPC_OK when err == NULL */
    char msg[512];
    uint32_t value;
    json_t *json;
    struct gcs_process_io io;
};

struct env {
    uv_loop_t loop;
    struct fake_guest guest;
    struct gcs_guest_connection *conn;
    struct gcs_transport *stdio;       /* the host's stdio ports */
    struct gcs_transport *guest_stdio; /* the fake guest dials here */
    char dir[64];                      /* unix-dir */
    int bridge_closed;
    char bridge_closed_msg[512];
    int notifications;
    char notified_id[128];
    char notified_type[64];
};

static struct env *E;

/* ---- fake guest ------------------------------------------------------------ */

static void guest_alloc(uv_handle_t *h, size_t s, uv_buf_t *b)
{
    (void)h;
    b->base = malloc(s);
    b->len = s;
}

static void guest_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct fake_guest *g = s->data;
    if (n < 0) {
        g->eof = true;
        uv_read_stop(s);
    } else if (n > 0) {
        assert_int_equal(gcs_frame_decoder_push(&g->dec, b->base, (size_t)n, NULL), 0);
        struct gcs_message m;
        while (gcs_frame_decoder_next(&g->dec, &m, NULL) == GCS_DECODE_MESSAGE) {
            assert_true(g->n_req < MAX_REQUESTS);
            g->req[g->n_req++] = m;
        }
    }
    free(b->base);
}

static void guest_send_bytes(const void *data, size_t len)
{
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    /* small writes on a fresh stream pair complete synchronously */
    assert_int_equal(uv_try_write(E->guest.stream, &b, 1), (int)len);
}

static void guest_send(uint32_t type, uint64_t id, const char *body)
{
    uint8_t *buf;
    size_t len;
    assert_int_equal(gcs_frame_encode_raw(type, id, body, strlen(body), &buf, &len, NULL), 0);
    guest_send_bytes(buf, len);
    free(buf);
}

static void guest_kill(void)
{
    gcs_stream_close(E->guest.stream);
    E->guest.stream = NULL;
}

/* ---- loop helpers --------------------------------------------------------------- */

struct count_goal {
    const int *counter;
    int want;
};

static bool count_reached(void *arg)
{
    const struct count_goal *g = arg;
    return *g->counter >= g->want;
}

/* Runs the loop until *cond is true (or *counter >= want); fails after ms. */
static void run_until_flag(const bool *cond, const int *counter, int want, unsigned ms)
{
    struct count_goal goal = {counter, want};
    bool ok = cond ? loop_run_until_flag(&E->loop, cond, ms)
                   : loop_run_until(&E->loop, count_reached, &goal, ms);
    if (!ok)
        fail_msg("timed out waiting for a condition");
}

#define RUN_UNTIL(flag) run_until_flag(&(flag), NULL, 0, 5000)
#define RUN_UNTIL_COUNT(ctr, n) run_until_flag(NULL, &(ctr), (n), 5000)

static void run_for(unsigned ms)
{
    loop_run_for(&E->loop, ms);
}

/* ---- callbacks -------------------------------------------------------------------- */

static void record(struct result *r, int32_t hr, const shim_error_t *err)
{
    r->done = true;
    r->calls++;
    r->hr = hr;
    r->code = err ? err->code : RPC_OK;
    snprintf(r->msg, sizeof(r->msg), "%s", err ? err->msg : "");
}

static void done_cb(void *opaque, int32_t hr, const shim_error_t *err)
{
    record(opaque, hr, err);
}

static void wait_cb(void *opaque, int32_t hr, const shim_error_t *err, uint32_t code)
{
    record(opaque, hr, err);
    ((struct result *)opaque)->value = code;
}

static void negotiate_cb(void *opaque, int32_t hr, const shim_error_t *err,
                         const struct gcs_capabilities *caps)
{
    record(opaque, hr, err);
    ((struct result *)opaque)->value = caps ? caps->signal_process_supported : 0xdead;
}

static void props_cb(void *opaque, int32_t hr, const shim_error_t *err, const json_t *props)
{
    record(opaque, hr, err);
    ((struct result *)opaque)->json = props ? json_deep_copy(props) : NULL;
}

static void raw_cb(void *opaque, int32_t hr, const shim_error_t *err, const json_t *body)
{
    record(opaque, hr, err);
    ((struct result *)opaque)->json = body ? json_deep_copy(body) : NULL;
}

static void exec_cb(void *opaque, int32_t hr, const shim_error_t *err, struct gcs_process_io *io)
{
    struct result *r = opaque;
    record(r, hr, err);
    if (io != NULL)
        r->io = *io;
}

static void stacks_cb(void *opaque, int32_t hr, const shim_error_t *err, const char *stacks)
{
    record(opaque, hr, err);
    ((struct result *)opaque)->value = stacks ? (uint32_t)strlen(stacks) : 0;
}

static void on_bridge_closed(void *opaque, const shim_error_t *err)
{
    struct env *e = opaque;
    e->bridge_closed++;
    snprintf(e->bridge_closed_msg, sizeof(e->bridge_closed_msg), "%s", err ? err->msg : "");
}

static void on_container_exit(void *opaque, const struct gcs_container_notification *n)
{
    struct env *e = opaque;
    e->notifications++;
    snprintf(e->notified_id, sizeof(e->notified_id), "%s", n->base.container_id);
    snprintf(e->notified_type, sizeof(e->notified_type), "%s", n->type ? n->type : "");
}

/* ---- stdio transport ------------------------------------------------------------------- */

#ifndef _WIN32
/* A unix-dir: the host listens on <dir>/<port>, the guest dials the path. */
static void stdio_open(void)
{
    snprintf(E->dir, sizeof(E->dir), "/tmp/gcs-unit-XXXXXX");
    assert_non_null(mkdtemp(E->dir));
    assert_int_equal(gcs_transport_unix_dir_new(&E->loop, E->dir, &E->stdio, NULL), 0);
    assert_int_equal(gcs_transport_unix_dir_new(&E->loop, E->dir, &E->guest_stdio, NULL), 0);
}

/* The host listens on port: its socket file exists. */
static bool stdio_listening(uint32_t port)
{
    char *path = gcs_transport_unix_dir_path(E->dir, port);
    bool found = access(path, F_OK) == 0;
    free(path);
    return found;
}

static void stdio_close(void)
{
    gcs_transport_destroy(E->guest_stdio);
    gcs_transport_destroy(E->stdio);
    rmdir(E->dir);
}
#else
/* gcs/unix/ (unix-dir, gcs_transport_mux_new) is not built for Windows: a
 * minimal gcs_transport over the portable mux engine instead, a host mux and
 * a guest mux joined by a stream pair. It remembers which ports listen, in
 * place of the unix-dir's socket files. */
#define MUX_MAX_PORTS 16

struct mux_transport {
    struct gcs_transport base;
    struct gcs_mux *mux;
    uint32_t listening[MUX_MAX_PORTS];
    int n_listening;
};

struct mux_listener {
    struct gcs_listener base;
    struct mux_transport *t;
};

static void mux_accepted(void *opaque, uint32_t port, uv_stream_t *stream)
{
    struct mux_listener *l = opaque;
    (void)port;
    l->base.cb(&l->base, stream, 0, l->base.opaque); /* may close l */
}

static void mux_listener_close(struct gcs_listener *base)
{
    struct mux_listener *l = (struct mux_listener *)base;
    struct mux_transport *t = l->t;
    gcs_mux_unlisten(t->mux, base->port);
    for (int i = 0; i < t->n_listening; i++)
        if (t->listening[i] == base->port)
            t->listening[i] = t->listening[--t->n_listening];
    free(l);
}

static int mux_listen(struct gcs_transport *base, uint32_t port, gcs_accept_cb cb, void *opaque,
                      struct gcs_listener **out, shim_error_t **err)
{
    struct mux_transport *t = (struct mux_transport *)base;
    assert_true(t->n_listening < MUX_MAX_PORTS);
    struct mux_listener *l = calloc(1, sizeof(*l));
    assert_non_null(l);
    l->base = (struct gcs_listener){
        .close = mux_listener_close, .port = port, .cb = cb, .opaque = opaque};
    l->t = t;
    if (gcs_mux_listen(t->mux, port, mux_accepted, l, err) < 0) {
        free(l);
        return -1;
    }
    t->listening[t->n_listening++] = port;
    *out = &l->base;
    return 0;
}

static int mux_connect(struct gcs_transport *base, uint32_t port, gcs_connect_cb cb, void *opaque,
                       shim_error_t **err)
{
    return gcs_mux_connect(((struct mux_transport *)base)->mux, port, cb, opaque, err);
}

static void mux_destroy(struct gcs_transport *base)
{
    struct mux_transport *t = (struct mux_transport *)base;
    gcs_mux_close(t->mux);
    free(t);
}

static const struct gcs_transport_ops mux_ops = {
    .name = "test-mux", .listen = mux_listen, .connect = mux_connect, .destroy = mux_destroy};

static struct gcs_transport *mux_transport_new(uv_stream_t *link, enum gcs_mux_role role)
{
    struct mux_transport *t = calloc(1, sizeof(*t));
    assert_non_null(t);
    t->base = (struct gcs_transport){.ops = &mux_ops, .loop = &E->loop};
    struct gcs_mux_config cfg = {.role = role, .make_pair = stream_pair_new};
    assert_int_equal(gcs_mux_new(&E->loop, link, &cfg, &t->mux, NULL), 0);
    return &t->base;
}

static void stdio_open(void)
{
    uv_stream_t *host_link, *guest_link;
    assert_int_equal(stream_pair_new(&E->loop, &host_link, &guest_link, NULL), 0);
    E->stdio = mux_transport_new(host_link, GCS_MUX_ROLE_HOST);
    E->guest_stdio = mux_transport_new(guest_link, GCS_MUX_ROLE_GUEST);
}

static bool stdio_listening(uint32_t port)
{
    struct mux_transport *t = (struct mux_transport *)E->stdio;
    for (int i = 0; i < t->n_listening; i++)
        if (t->listening[i] == port)
            return true;
    return false;
}

static void stdio_close(void)
{
    gcs_transport_destroy(E->guest_stdio);
    gcs_transport_destroy(E->stdio);
}
#endif

/* ---- setup ----------------------------------------------------------------------------- */

static int setup_with(uint64_t rpc_timeout_ms)
{
    E = calloc(1, sizeof(*E));
    uv_loop_init(&E->loop);
    uv_stream_t *host_end, *guest_end;
    assert_int_equal(stream_pair_new(&E->loop, &host_end, &guest_end, NULL), 0);
    E->guest.stream = guest_end;
    guest_end->data = &E->guest;
    gcs_frame_decoder_init(&E->guest.dec, GCS_GUEST_MAX_MESSAGE_SIZE);
    uv_read_start(guest_end, guest_alloc, guest_read);

    stdio_open();

    struct gcs_guest_connection_config cfg = {.rpc_timeout_ms = rpc_timeout_ms};
    struct gcs_guest_callbacks cbs = {.container_exit = on_container_exit,
                                      .bridge_closed = on_bridge_closed};
    shim_error_t *err = NULL;
    int rc = gcs_guest_connection_new(&E->loop, host_end, E->stdio, &cfg, &cbs, E, &E->conn, &err);
    if (rc < 0)
        fail_msg("connection: %s", err->msg);
    return 0;
}

static int setup(void **state)
{
    (void)state;
    log_configure(2, LOG_LEVEL_ERROR, LOG_FORMAT_TEXT);
    return setup_with(0);
}

static int teardown(void **state)
{
    (void)state;
    gcs_guest_connection_close(E->conn);
    gcs_stream_close(E->guest.stream);
    loop_drain(&E->loop, 10);
    stdio_close();
    loop_drain(&E->loop, 10);
    for (int i = 0; i < E->guest.n_req; i++)
        gcs_message_clear(&E->guest.req[i]);
    gcs_frame_decoder_free(&E->guest.dec);
    assert_int_equal(uv_loop_close(&E->loop), 0);
    free(E);
    E = NULL;
    return 0;
}

static const char *req_str(int i, const char *key)
{
    return json_string_value(gcs_json_get(E->guest.req[i].body, key));
}

/* ---- tests ----------------------------------------------------------------------------------- */

static void test_negotiate_then_out_of_order(void **state)
{
    (void)state;
    struct result neg = {0}, r1 = {0}, r2 = {0}, r3 = {0};
    assert_int_equal(gcs_guest_negotiate(E->conn, negotiate_cb, &neg, NULL), 0);
    assert_false(neg.done); /* never synchronous */
    RUN_UNTIL_COUNT(E->guest.n_req, 1);
    assert_int_equal(E->guest.req[0].type, GCS_TYPE_NEGOTIATE_PROTOCOL);
    assert_true(E->guest.req[0].id == 0);
    assert_string_equal(req_str(0, "ContainerId"), GCS_NULL_CONTAINER_ID);
    assert_string_equal(req_str(0, "ActivityId"), GCS_ZERO_ACTIVITY_ID);
    assert_null(gcs_guest_connection_capabilities(E->conn));
    guest_send(0x20100b01, 0,
               "{\"Result\":0,\"ActivityId\":\"" GCS_ZERO_ACTIVITY_ID "\",\"Version\":4,"
               "\"Capabilities\":{\"RuntimeOsType\":\"Linux\",\"GuestDefinedCapabilities\":{"
               "\"SignalProcessSupported\":true,\"DumpStacksSupported\":true}}}");
    RUN_UNTIL(neg.done);
    assert_int_equal(neg.code, RPC_OK);
    assert_int_equal(neg.value, 1);
    const struct gcs_capabilities *caps = gcs_guest_connection_capabilities(E->conn);
    assert_non_null(caps);
    assert_string_equal(caps->runtime_os_type, "Linux");
    assert_true(caps->dump_stacks_supported);
    assert_false(caps->delete_container_state_supported);

    assert_int_equal(gcs_guest_start_container(E->conn, "c1", done_cb, &r1, NULL), 0);
    assert_int_equal(
        gcs_guest_wait_process(E->conn, "c1", 7, GCS_WAIT_INFINITE, wait_cb, &r2, NULL), 0);
    assert_int_equal(gcs_guest_resize_console(E->conn, "c1", 7, 24, 80, done_cb, &r3, NULL), 0);
    RUN_UNTIL_COUNT(E->guest.n_req, 4);
    for (int i = 1; i < 4; i++)
        assert_true(E->guest.req[i].id == (uint64_t)i);
    assert_int_equal(E->guest.req[1].type, GCS_TYPE_START);
    assert_int_equal(E->guest.req[2].type, GCS_TYPE_WAIT_FOR_PROCESS);
    assert_int_equal(json_integer_value(gcs_json_get(E->guest.req[2].body, "TimeoutInMs")),
                     4294967295LL);
    assert_int_equal(E->guest.req[3].type, GCS_TYPE_RESIZE_CONSOLE);
    assert_int_equal(gcs_guest_connection_outstanding(E->conn), 3);
    /* answer in reverse order, and in one write */
    uint8_t *a, *b, *c;
    size_t la, lb, lc;
    const char *ok = "{\"Result\":0}";
    gcs_frame_encode_raw(0x20100801, 3, ok, strlen(ok), &a, &la, NULL);
    const char *exited = "{\"Result\":0,\"ExitCode\":42}";
    gcs_frame_encode_raw(0x20100601, 2, exited, strlen(exited), &b, &lb, NULL);
    gcs_frame_encode_raw(0x20100201, 1, ok, strlen(ok), &c, &lc, NULL);
    uint8_t all[512];
    memcpy(all, a, la);
    memcpy(all + la, b, lb);
    memcpy(all + la + lb, c, lc);
    guest_send_bytes(all, la + lb + lc);
    free(a);
    free(b);
    free(c);
    RUN_UNTIL(r1.done);
    assert_true(r2.done && r3.done);
    assert_int_equal(r1.code, RPC_OK);
    assert_int_equal(r2.code, RPC_OK);
    assert_int_equal(r2.value, 42);
    assert_int_equal(r3.code, RPC_OK);
    assert_int_equal(r1.calls + r2.calls + r3.calls, 3);
    assert_int_equal(gcs_guest_connection_outstanding(E->conn), 0);
}

static void test_negotiate_wrong_version(void **state)
{
    (void)state;
    struct result neg = {0};
    assert_int_equal(gcs_guest_negotiate(E->conn, negotiate_cb, &neg, NULL), 0);
    RUN_UNTIL_COUNT(E->guest.n_req, 1);
    guest_send(0x20100b01, 0, "{\"Result\":0,\"Version\":3}");
    RUN_UNTIL(neg.done);
    assert_int_equal(neg.code, RPC_FAILED_PRECONDITION);
    assert_non_null(strstr(neg.msg, "version 3"));
    assert_null(gcs_guest_connection_capabilities(E->conn));
    /* and the guest refusing: 0xC037010C */
    struct result n2 = {0};
    assert_int_equal(gcs_guest_negotiate(E->conn, negotiate_cb, &n2, NULL), 0);
    RUN_UNTIL_COUNT(E->guest.n_req, 2);
    guest_send(0x20100b01, 1,
               "{\"Result\":-1070137076,\"ErrorMessage\":\"HRESULT: 0xc037010c\",\"ErrorRecords\":"
               "[{\"Result\":-1070137076,\"Message\":\"HRESULT: 0xc037010c\",\"ModuleName\":"
               "\"gcs\",\"FileName\":\"\",\"Line\":4294967295}]}");
    RUN_UNTIL(n2.done);
    assert_int_equal(n2.hr, GCS_HR_UNSUPPORTED_PROTOCOL);
    assert_int_equal(n2.code, RPC_FAILED_PRECONDITION);
    assert_non_null(strstr(n2.msg, "HRESULT: 0xc037010c"));
    assert_non_null(strstr(n2.msg, "0xc037010c"));
}

static void test_guest_error_hresult(void **state)
{
    (void)state;
    struct result r = {0};
    assert_int_equal(gcs_guest_signal_process(E->conn, "abc", 1, 15, done_cb, &r, NULL), 0);
    RUN_UNTIL_COUNT(E->guest.n_req, 1);
    json_t *opts = gcs_json_get(E->guest.req[0].body, "Options");
    assert_int_equal(json_integer_value(gcs_json_get(opts, "Signal")), 15);
    guest_send(0x20100701, 0,
               "{\"Result\":-1070137074,\"ActivityId\":\"" GCS_ZERO_ACTIVITY_ID
               "\",\"ErrorMessage\":\"HRESULT: 0xc037010e\"}");
    RUN_UNTIL(r.done);
    assert_int_equal(r.hr, GCS_HR_SYSTEM_NOT_FOUND);
    assert_int_equal(r.code, RPC_NOT_FOUND);
    assert_non_null(strstr(r.msg, "SignalProcess"));
    assert_non_null(strstr(r.msg, "HRESULT: 0xc037010e"));
    /* the wait still reports ExitCode on 0x80070490 */
    struct result w = {0};
    assert_int_equal(gcs_guest_wait_process(E->conn, "abc", 9, 10, wait_cb, &w, NULL), 0);
    RUN_UNTIL_COUNT(E->guest.n_req, 2);
    guest_send(0x20100601, 1, "{\"Result\":-2147023728,\"ExitCode\":0}");
    RUN_UNTIL(w.done);
    assert_int_equal(w.hr, GCS_HR_NOT_FOUND);
    assert_int_equal(w.code, RPC_NOT_FOUND);
    assert_non_null(strstr(w.msg, "no message"));
}

static void test_unknown_id_and_unknown_fields(void **state)
{
    (void)state;
    struct result r = {0};
    assert_int_equal(
        gcs_guest_get_properties(E->conn, "c1", GCS_PROPERTY_PROCESS_LIST, props_cb, &r, NULL), 0);
    RUN_UNTIL_COUNT(E->guest.n_req, 1);
    assert_string_equal(req_str(0, "Query"), "{\"PropertyTypes\":[\"ProcessList\"]}");
    /* unknown id, id 0 as a notification type that is not the container one,
     * a request-kind message: all logged and ignored */
    guest_send(0x20100901, 999, "{\"Result\":0}");
    guest_send(0x30100201, 0, "{\"ContainerId\":\"c1\"}");
    guest_send(0x10100101, 0, "{\"ContainerId\":\"c1\"}");
    /* the real answer: lower-case keys and extra fields */
    guest_send(0x20100901, 0,
               "{\"result\":0,\"NewField\":{\"x\":[1,2]},\"properties\":\"{\\\"ProcessList\\\":"
               "[{\\\"ProcessId\\\":1,\\\"Extra\\\":true},{\\\"processid\\\":7}]}\"}");
    RUN_UNTIL(r.done);
    assert_int_equal(r.code, RPC_OK);
    uint32_t *pids;
    size_t n;
    assert_int_equal(gcs_properties_process_list(r.json, &pids, &n, NULL), 0);
    assert_int_equal(n, 2);
    assert_int_equal(pids[1], 7);
    free(pids);
    json_decref(r.json);
    assert_true(gcs_guest_connection_alive(E->conn));
    assert_int_equal(E->bridge_closed, 0);
    assert_int_equal(E->notifications, 0);
}

static void test_missing_required_fields(void **state)
{
    (void)state;
    struct result w = {0}, s = {0}, d = {0};
    assert_int_equal(gcs_guest_wait_process(E->conn, "c", 1, GCS_WAIT_INFINITE, wait_cb, &w, NULL),
                     0);
    assert_int_equal(gcs_guest_start_container(E->conn, "c", done_cb, &s, NULL), 0);
    assert_int_equal(gcs_guest_dump_stacks(E->conn, stacks_cb, &d, NULL), 0);
    RUN_UNTIL_COUNT(E->guest.n_req, 3);
    guest_send(0x20100601, 0, "{\"Result\":0}");                          /* no ExitCode */
    guest_send(0x20100201, 1, "{\"ActivityId\":\"x\"}");                  /* no Result */
    guest_send(0x20100c01, 2, "{\"Result\":\"0\",\"GuestStacks\":\"\"}"); /* wrong type */
    RUN_UNTIL(d.done);
    assert_true(w.done && s.done);
    assert_int_equal(w.code, RPC_DATA_LOSS);
    assert_non_null(strstr(w.msg, "ExitCode"));
    assert_int_equal(s.code, RPC_DATA_LOSS);
    assert_non_null(strstr(s.msg, "Result"));
    assert_int_equal(d.code, RPC_DATA_LOSS);
    assert_true(gcs_guest_connection_alive(E->conn));
}

static void test_notification_routing(void **state)
{
    (void)state;
    guest_send(GCS_TYPE_CONTAINER_NOTIFICATION, 0,
               "{\"ContainerId\":\"c-one\",\"ActivityId\":\"" GCS_ZERO_ACTIVITY_ID
               "\",\"Type\":\"GracefulExit\",\"Operation\":\"None\",\"Result\":0}");
    RUN_UNTIL_COUNT(E->notifications, 1);
    assert_string_equal(E->notified_id, "c-one");
    assert_string_equal(E->notified_type, "GracefulExit");
    /* a notification never completes a call with ID 0 */
    struct result r = {0};
    assert_int_equal(gcs_guest_start_container(E->conn, "c2", done_cb, &r, NULL), 0);
    RUN_UNTIL_COUNT(E->guest.n_req, 1);
    guest_send(GCS_TYPE_CONTAINER_NOTIFICATION, 0,
               "{\"containerid\":\"c2\",\"type\":\"ForcedExit\",\"ExtraKey\":1}");
    guest_send(GCS_TYPE_CONTAINER_NOTIFICATION, 0, "{\"Type\":\"ForcedExit\"}"); /* malformed */
    RUN_UNTIL_COUNT(E->notifications, 2);
    assert_false(r.done);
    assert_string_equal(E->notified_id, "c2");
    guest_send(0x20100201, 0, "{\"Result\":0}");
    RUN_UNTIL(r.done);
    assert_int_equal(r.code, RPC_OK);
    run_for(20);
    assert_int_equal(E->notifications, 2);
}

static void test_guest_dies_mid_request(void **state)
{
    (void)state;
    struct result r[4] = {{0}};
    assert_int_equal(gcs_guest_start_container(E->conn, "c", done_cb, &r[0], NULL), 0);
    assert_int_equal(
        gcs_guest_wait_process(E->conn, "c", 1, GCS_WAIT_INFINITE, wait_cb, &r[1], NULL), 0);
    json_t *params = json_object();
    assert_int_equal(gcs_guest_execute_process(E->conn, "c", params,
                                               GCS_STDIO_IN | GCS_STDIO_OUT | GCS_STDIO_ERR,
                                               exec_cb, &r[2], NULL),
                     0);
    json_decref(params);
    assert_int_equal(gcs_guest_dump_stacks(E->conn, stacks_cb, &r[3], NULL), 0);
    RUN_UNTIL_COUNT(E->guest.n_req, 4);
    /* half a response, then death */
    guest_send_bytes("\x01\x02\x10\x20\x40\x00\x00", 7);
    guest_kill();
    RUN_UNTIL(r[3].done);
    for (int i = 0; i < 4; i++) {
        assert_true(r[i].done);
        assert_int_equal(r[i].calls, 1);
        assert_int_equal(r[i].code, RPC_UNAVAILABLE);
        assert_non_null(strstr(r[i].msg, "bridge lost"));
    }
    assert_null(r[2].io.stdout_stream);
    assert_int_equal(E->bridge_closed, 1);
    assert_non_null(strstr(E->bridge_closed_msg, "truncated"));
    assert_false(gcs_guest_connection_alive(E->conn));
    /* new calls are refused at once, without a callback */
    struct result late = {0};
    shim_error_t *err = NULL;
    assert_int_equal(gcs_guest_start_container(E->conn, "c", done_cb, &late, &err), -1);
    assert_int_equal(err->code, RPC_UNAVAILABLE);
    error_free(err);
    run_for(20);
    assert_false(late.done);
    /* the stdio listeners were removed */
    assert_false(stdio_listening(GCS_FIRST_STDIO_PORT));
}

static void garbage_case(const void *bytes, size_t len, const char *want)
{
    struct result r = {0};
    assert_int_equal(gcs_guest_start_container(E->conn, "c", done_cb, &r, NULL), 0);
    RUN_UNTIL_COUNT(E->guest.n_req, 1);
    guest_send_bytes(bytes, len);
    RUN_UNTIL(r.done);
    assert_int_equal(r.code, RPC_UNAVAILABLE);
    assert_int_equal(E->bridge_closed, 1);
    if (strstr(E->bridge_closed_msg, want) == NULL)
        fail_msg("bridge error '%s' lacks '%s'", E->bridge_closed_msg, want);
    RUN_UNTIL(E->guest.eof); /* the host closed its end */
}

static void test_garbage_size_below_header(void **state)
{
    (void)state;
    const uint8_t hdr[16] = {0x01, 0x02, 0x10, 0x20, 8, 0, 0, 0};
    garbage_case(hdr, sizeof(hdr), "below the header size");
}

static void test_garbage_1gib_claim(void **state)
{
    (void)state;
    const uint8_t hdr[16] = {0x01, 0x02, 0x10, 0x20, 0x00, 0x00, 0x00, 0x40};
    garbage_case(hdr, sizeof(hdr), "exceeds the limit");
}

static void test_garbage_invalid_json(void **state)
{
    (void)state;
    uint8_t *buf;
    size_t len;
    gcs_frame_encode_raw(0x20100201, 0, "{\"Result\":0", 11, &buf, &len, NULL);
    garbage_case(buf, len, "invalid JSON");
    free(buf);
}

static void test_garbage_text(void **state)
{
    (void)state;
    const char *junk = "HTTP/1.1 400 Bad Request\r\n\r\n";
    garbage_case(junk, strlen(junk), "exceeds the limit");
}

static void test_rpc_timeout(void **state)
{
    (void)state;
    teardown(NULL);
    setup_with(150);
    struct result s = {0}, w = {0};
    assert_int_equal(gcs_guest_start_container(E->conn, "c", done_cb, &s, NULL), 0);
    assert_int_equal(gcs_guest_wait_process(E->conn, "c", 1, GCS_WAIT_INFINITE, wait_cb, &w, NULL),
                     0);
    RUN_UNTIL(s.done);
    assert_int_equal(s.code, RPC_DEADLINE_EXCEEDED);
    assert_int_equal(s.hr, 0);
    assert_false(w.done); /* WaitForProcess has no timer */
    run_for(300);
    assert_false(w.done);
    assert_true(gcs_guest_connection_alive(E->conn));
    /* the late response is dropped; the wait answer still lands */
    guest_send(0x20100201, 0, "{\"Result\":0}");
    guest_send(0x20100601, 1, "{\"Result\":0,\"ExitCode\":3}");
    RUN_UNTIL(w.done);
    assert_int_equal(w.value, 3);
    assert_int_equal(s.calls, 1);
}

static void test_close_cancels(void **state)
{
    (void)state;
    struct result s = {0}, w = {0};
    assert_int_equal(gcs_guest_start_container(E->conn, "c", done_cb, &s, NULL), 0);
    assert_int_equal(gcs_guest_wait_process(E->conn, "c", 1, GCS_WAIT_INFINITE, wait_cb, &w, NULL),
                     0);
    gcs_guest_connection_close(E->conn);
    assert_true(s.done && w.done);
    assert_int_equal(s.code, RPC_CANCELED);
    assert_int_equal(w.code, RPC_CANCELED);
    assert_int_equal(E->bridge_closed, 0);
    E->conn = NULL;
}

/* exec with stdio through the stdio transport */

struct guest_conn {
    uv_stream_t *stream;
    bool done;
    int status;
};

static void guest_connected(uv_stream_t *s, int status, void *opaque)
{
    struct guest_conn *g = opaque;
    g->stream = s;
    g->status = status;
    g->done = true;
}

struct output {
    char data[256];
    size_t len;
    bool eof;
};

static void output_cb(void *opaque, const char *data, ssize_t len)
{
    struct output *o = opaque;
    if (data == NULL) {
        o->eof = true;
        return;
    }
    memcpy(o->data + o->len, data, (size_t)len);
    o->len += (size_t)len;
}

struct side_read {
    char data[64];
    size_t len;
    bool eof;
};

static void side_alloc(uv_handle_t *h, size_t s, uv_buf_t *b)
{
    (void)h;
    b->base = malloc(s);
    b->len = s;
}

static void side_read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct side_read *r = s->data;
    if (n > 0) {
        memcpy(r->data + r->len, b->base, (size_t)n);
        r->len += (size_t)n;
    } else if (n < 0) {
        r->eof = true;
    }
    free(b->base);
}

static void test_exec_with_stdio(void **state)
{
    (void)state;
    json_t *args = json_pack("[s]", "/bin/cat");
    struct gcs_process_parameters pp = {.command_args = args, .working_directory = "/"};
    json_t *params = gcs_process_parameters_build(&pp);
    struct result r = {0};
    assert_int_equal(gcs_guest_execute_process(E->conn, NULL, params, GCS_STDIO_IN | GCS_STDIO_OUT,
                                               exec_cb, &r, NULL),
                     0);
    json_decref(params);
    json_decref(args);
    RUN_UNTIL_COUNT(E->guest.n_req, 1);
    struct gcs_execute_process_request req;
    assert_int_equal(gcs_execute_process_request_parse(E->guest.req[0].body, &req, NULL), 0);
    assert_string_equal(req.base.container_id, GCS_NULL_CONTAINER_ID);
    assert_int_equal(req.ports.stdin_port, 0x40000001);
    assert_int_equal(req.ports.stdout_port, 0x40000002);
    assert_int_equal(req.ports.stderr_port, 0);
    struct gcs_process_parameters got;
    assert_int_equal(gcs_process_parameters_parse(req.process_parameters, &got, NULL), 0);
    assert_true(got.create_stdin_pipe && got.create_stdout_pipe && !got.create_stderr_pipe);
    /* the guest dials stdin then stdout, then answers */
    struct guest_conn gin = {0}, gout = {0};
    struct gcs_transport *gt = E->guest_stdio;
    assert_int_equal(gcs_transport_connect(gt, req.ports.stdin_port, guest_connected, &gin, NULL),
                     0);
    assert_int_equal(gcs_transport_connect(gt, req.ports.stdout_port, guest_connected, &gout, NULL),
                     0);
    gcs_execute_process_request_clear(&req);
    RUN_UNTIL(gout.done);
    RUN_UNTIL(gin.done);
    assert_int_equal(gin.status, 0);
    assert_int_equal(gout.status, 0);
    /* a third dial to a port nobody listens on fails cleanly */
    struct guest_conn gbad = {0};
    assert_int_equal(gcs_transport_connect(gt, 0x40000003, guest_connected, &gbad, NULL), 0);
    RUN_UNTIL(gbad.done);
    assert_true(gbad.status < 0);
    assert_false(r.done);
    guest_send(0x20100501, 0, "{\"Result\":0,\"ProcessId\":321}");
    RUN_UNTIL(r.done);
    assert_int_equal(r.code, RPC_OK);
    assert_int_equal(r.io.pid, 321);
    assert_non_null(r.io.stdin_stream);
    assert_non_null(r.io.stdout_stream);
    assert_null(r.io.stderr_stream);
    /* stdin: host writes then half-closes; guest sees data + EOF */
    struct side_read sin = {0};
    gin.stream->data = &sin;
    uv_read_start(gin.stream, side_alloc, side_read_cb);
    uv_buf_t b = uv_buf_init("ping", 4);
    assert_int_equal(uv_try_write(r.io.stdin_stream, &b, 1), 4);
    gcs_input_close(r.io.stdin_stream);
    RUN_UNTIL(sin.eof);
    assert_int_equal(sin.len, 4);
    assert_memory_equal(sin.data, "ping", 4);
    /* stdout: guest writes, shuts down, then waits for the host's close */
    struct output out = {0};
    assert_int_equal(gcs_output_start(r.io.stdout_stream, output_cb, &out, NULL), 0);
    b = uv_buf_init("pong\n", 5);
    assert_int_equal(uv_try_write(gout.stream, &b, 1), 5);
    assert_int_equal(stream_pair_shutdown(gout.stream, STREAM_SHUT_WRITE), 0);
    struct side_read sout = {0};
    gout.stream->data = &sout;
    uv_read_start(gout.stream, side_alloc, side_read_cb);
    RUN_UNTIL(out.eof);
    assert_int_equal(out.len, 5);
    assert_memory_equal(out.data, "pong\n", 5);
    RUN_UNTIL(sout.eof); /* the host closed its end after EOF (§8.4) */
    assert_int_equal(sout.len, 0);
    gcs_stream_close(gin.stream);
    gcs_stream_close(gout.stream);
    /* the next exec gets fresh ports (never reused); an error reply frees them */
    struct result r2 = {0};
    params = json_object();
    assert_int_equal(
        gcs_guest_execute_process(E->conn, "c", params, GCS_STDIO_ERR, exec_cb, &r2, NULL), 0);
    json_decref(params);
    RUN_UNTIL_COUNT(E->guest.n_req, 2);
    json_t *relay =
        gcs_json_get(gcs_json_get(E->guest.req[1].body, "Settings"), "VsockStdioRelaySettings");
    assert_int_equal(json_integer_value(gcs_json_get(relay, "StdErr")), 0x40000003);
    assert_true(stdio_listening(0x40000003));
    guest_send(0x20100501, 1,
               "{\"Result\":-2147467259,\"ErrorMessage\":\"failed creating stderr Connection\"}");
    RUN_UNTIL(r2.done);
    assert_int_equal(r2.hr, GCS_HR_E_FAIL);
    assert_non_null(strstr(r2.msg, "failed creating stderr"));
    run_for(10);
    assert_false(stdio_listening(0x40000003));
}

static void test_exec_timeout_waiting_for_stdio(void **state)
{
    (void)state;
    teardown(NULL);
    setup_with(200);
    struct result r = {0};
    json_t *params = json_object();
    assert_int_equal(
        gcs_guest_execute_process(E->conn, "c", params, GCS_STDIO_OUT, exec_cb, &r, NULL), 0);
    json_decref(params);
    RUN_UNTIL_COUNT(E->guest.n_req, 1);
    /* a success reply, but the guest never dials */
    guest_send(0x20100501, 0, "{\"Result\":0,\"ProcessId\":5}");
    RUN_UNTIL(r.done);
    assert_int_equal(r.code, RPC_DEADLINE_EXCEEDED);
    assert_null(r.io.stdout_stream);
}

static void test_raw_unknown_type_and_modify(void **state)
{
    (void)state;
    struct result r = {0}, m = {0};
    json_t *body = json_pack("{s:s,s:s}", "ContainerId", GCS_NULL_CONTAINER_ID, "ActivityId",
                             GCS_ZERO_ACTIVITY_ID);
    assert_int_equal(
        gcs_guest_call_raw(E->conn, GCS_TYPE_UPDATE_CONTAINER, body, true, raw_cb, &r, NULL), 0);
    json_decref(body);
    struct gcs_mapped_directory md = {.mount_path = "/m", .port = 564, .share_name = "0"};
    json_t *settings = gcs_mapped_directory_build(&md);
    assert_int_equal(gcs_guest_modify_settings(E->conn, NULL, GCS_RESOURCE_MAPPED_DIRECTORY,
                                               GCS_REQUEST_ADD, settings, done_cb, &m, NULL),
                     0);
    json_decref(settings);
    RUN_UNTIL_COUNT(E->guest.n_req, 2);
    assert_int_equal(E->guest.req[0].type, 0x10100e01);
    json_t *req = gcs_json_get(E->guest.req[1].body, "Request");
    assert_string_equal(json_string_value(gcs_json_get(req, "ResourceType")), "MappedDirectory");
    assert_int_equal(json_integer_value(gcs_json_get(gcs_json_get(req, "Settings"), "Port")), 564);
    guest_send(0x20100e01, 0,
               "{\"Result\":-2147467263,\"ErrorMessage\":\"bridge: function not supported\"}");
    guest_send(0x20100a01, 1, "{\"Result\":0}");
    RUN_UNTIL(m.done);
    RUN_UNTIL(r.done);
    assert_int_equal(r.hr, GCS_HR_E_NOTIMPL);
    assert_int_equal(r.code, RPC_UNIMPLEMENTED);
    assert_non_null(r.json);
    json_decref(r.json);
    assert_int_equal(m.code, RPC_OK);
    /* argument checks */
    shim_error_t *err = NULL;
    assert_int_equal(gcs_guest_shutdown_container(E->conn, NULL, false, done_cb, &m, &err), -1);
    error_free(err);
    err = NULL;
    assert_int_equal(
        gcs_guest_shutdown_container(E->conn, GCS_NULL_CONTAINER_ID, true, done_cb, &m, &err), -1);
    error_free(err);
}

static void test_signal_without_capability(void **state)
{
    (void)state;
    struct result neg = {0}, r = {0};
    assert_int_equal(gcs_guest_negotiate(E->conn, negotiate_cb, &neg, NULL), 0);
    RUN_UNTIL_COUNT(E->guest.n_req, 1);
    guest_send(0x20100b01, 0, "{\"Result\":0,\"Version\":4,\"Capabilities\":{}}");
    RUN_UNTIL(neg.done);
    assert_int_equal(neg.code, RPC_OK);
    shim_error_t *err = NULL;
    assert_int_equal(gcs_guest_signal_process(E->conn, "c", 3, 2, done_cb, &r, &err), -1);
    assert_int_equal(err->code, RPC_UNIMPLEMENTED);
    error_free(err);
    assert_int_equal(gcs_guest_signal_process(E->conn, "c", 3, 15, done_cb, &r, NULL), 0);
    RUN_UNTIL_COUNT(E->guest.n_req, 2);
    assert_null(gcs_json_get(E->guest.req[1].body, "Options")); /* a plain kill */
    guest_send(0x20100701, 1, "{\"Result\":0}");
    RUN_UNTIL(r.done);
    assert_int_equal(r.code, RPC_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_negotiate_then_out_of_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_negotiate_wrong_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_guest_error_hresult, setup, teardown),
        cmocka_unit_test_setup_teardown(test_signal_without_capability, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_id_and_unknown_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_required_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_notification_routing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_guest_dies_mid_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_size_below_header, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_1gib_claim, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_invalid_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_text, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rpc_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_cancels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exec_with_stdio, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exec_timeout_waiting_for_stdio, setup, teardown),
        cmocka_unit_test_setup_teardown(test_raw_unknown_type_and_modify, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
