/* QMP client against a scripted fake QEMU on the other end of a socketpair:
 * greeting and capabilities, replies matched by id in any order, events in
 * between, QMP errors, garbage, oversized lines and a server that dies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "hcs/qmp.h"
#include "test/support/stream_pair.h"

#define GREETING                                                                                   \
    "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 22, \"minor\": 2, \"major\": 7}}, "            \
    "\"capabilities\": [\"oob\"]}}\r\n"

struct fixture {
    uv_loop_t loop;
    int server; /* the fake QEMU's end */
    struct qmp_client *client;
    int ready_calls, closed_calls, events;
    int ready_code, closed_code;
    char last_event[64];
    char closed_msg[256];
};

struct reply {
    int calls;
    bool ok;
    int code;
    char text[256]; /* return value (JSON) or error message */
};

static void on_ready(struct qmp_client *c, const shim_error_t *err, void *opaque)
{
    struct fixture *f = opaque;
    (void)c;
    f->ready_calls++;
    f->ready_code = err ? err->code : 0;
}

static void on_event(struct qmp_client *c, const char *event, json_t *data, void *opaque)
{
    struct fixture *f = opaque;
    (void)c;
    (void)data;
    f->events++;
    snprintf(f->last_event, sizeof(f->last_event), "%s", event);
}

static void on_closed(struct qmp_client *c, const shim_error_t *err, void *opaque)
{
    struct fixture *f = opaque;
    (void)c;
    f->closed_calls++;
    f->closed_code = err ? err->code : 0;
    snprintf(f->closed_msg, sizeof(f->closed_msg), "%s", err ? err->msg : "");
}

static void on_reply(struct qmp_client *c, json_t *ret, const shim_error_t *err, void *opaque)
{
    struct reply *r = opaque;
    (void)c;
    r->calls++;
    r->ok = err == NULL;
    r->code = err ? err->code : 0;
    if (err) {
        snprintf(r->text, sizeof(r->text), "%s", err->msg);
    } else {
        char *s = json_dumps(ret, JSON_COMPACT | JSON_ENCODE_ANY);
        snprintf(r->text, sizeof(r->text), "%s", s ? s : "null");
        free(s);
    }
}

/* Runs the loop until *flag becomes nonzero (or 5 s pass). */
static void run_until(struct fixture *f, const int *flag)
{
    for (int i = 0; i < 5000 && !*flag; i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        if (!*flag)
            usleep(1000);
    }
}

static void server_send(struct fixture *f, const char *text)
{
    size_t n = strlen(text);
    assert_int_equal(write(f->server, text, n), (ssize_t)n);
}

/* Reads one command line the client sent; returns its "id" and checks the
 * command name. */
static json_int_t server_expect(struct fixture *f, const char *command)
{
    char line[4096];
    size_t len = 0;
    while (len < sizeof(line) - 1) {
        struct pollfd p = {.fd = f->server, .events = POLLIN};
        if (poll(&p, 1, 0) <= 0) {
            uv_run(&f->loop, UV_RUN_NOWAIT);
            assert_true(poll(&p, 1, 5000) > 0);
        }
        assert_int_equal(read(f->server, line + len, 1), 1);
        if (line[len++] == '\n')
            break;
    }
    line[len] = '\0';
    json_error_t jerr;
    json_t *msg = json_loads(line, 0, &jerr);
    assert_non_null(msg);
    assert_string_equal(json_string_value(json_object_get(msg, "execute")), command);
    json_t *id = json_object_get(msg, "id");
    assert_true(json_is_integer(id));
    json_int_t v = json_integer_value(id);
    json_decref(msg);
    return v;
}

static void server_reply(struct fixture *f, json_int_t id, const char *ret_json)
{
    char buf[512];
    snprintf(buf, sizeof(buf), "{\"return\": %s, \"id\": %lld}\r\n", ret_json, (long long)id);
    server_send(f, buf);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    int sv[2];
    assert_int_equal(stream_pair_fds(sv), 0);
    uv_loop_init(&f->loop);
    f->server = sv[1];
    struct qmp_callbacks cbs = {on_ready, on_event, on_closed};
    assert_int_equal(qmp_client_open(&f->loop, sv[0], &cbs, f, &f->client, NULL), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    qmp_client_close(f->client);
    if (f->server >= 0)
        close(f->server);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
    return 0;
}

/* Greeting, qmp_capabilities, ready. */
static void handshake(struct fixture *f)
{
    server_send(f, GREETING);
    json_int_t id = server_expect(f, "qmp_capabilities");
    assert_int_equal(f->ready_calls, 0);
    server_reply(f, id, "{}");
    run_until(f, &f->ready_calls);
    assert_int_equal(f->ready_calls, 1);
    assert_int_equal(f->ready_code, 0);
    assert_true(qmp_client_ready(f->client));
}

static void test_handshake_and_command(void **state)
{
    struct fixture *f = *state;
    struct reply r = {0};
    assert_int_equal(qmp_client_execute(f->client, "cont", NULL, on_reply, &r, NULL), -1);
    handshake(f);
    assert_int_equal(qmp_client_execute(f->client, "query-status", NULL, on_reply, &r, NULL), 0);
    json_int_t id = server_expect(f, "query-status");
    server_reply(f, id, "{\"status\": \"running\", \"running\": true}");
    run_until(f, &r.calls);
    assert_int_equal(r.calls, 1);
    assert_true(r.ok);
    assert_string_equal(r.text, "{\"status\":\"running\",\"running\":true}");
    assert_int_equal(qmp_client_pending(f->client), 0);
}

static void test_out_of_order_and_events(void **state)
{
    struct fixture *f = *state;
    handshake(f);
    struct reply a = {0}, b = {0};
    assert_int_equal(qmp_client_execute(f->client, "device_del", json_pack("{s:s}", "id", "x"),
                                        on_reply, &a, NULL),
                     0);
    assert_int_equal(qmp_client_execute(f->client, "query-status", NULL, on_reply, &b, NULL), 0);
    json_int_t ida = server_expect(f, "device_del");
    json_int_t idb = server_expect(f, "query-status");
    assert_int_not_equal(ida, idb);
    assert_int_equal(qmp_client_pending(f->client), 2);
    /* Event, then the second reply, another event split over two writes,
     * then the first reply. */
    server_send(f, "{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, \"event\": "
                   "\"VSERPORT_CHANGE\", \"data\": {\"open\": true, \"id\": \"p\"}}\r\n");
    server_reply(f, idb, "{\"status\": \"paused\"}");
    server_send(f, "{\"event\": \"DEVICE_DEL");
    run_until(f, &b.calls);
    assert_int_equal(b.calls, 1);
    assert_int_equal(a.calls, 0);
    assert_int_equal(f->events, 1);
    assert_string_equal(f->last_event, "VSERPORT_CHANGE");
    server_send(f, "ETED\", \"data\": {\"device\": \"x\"}}\r\n");
    server_reply(f, ida, "{}");
    run_until(f, &a.calls);
    assert_int_equal(a.calls, 1);
    assert_true(a.ok);
    assert_int_equal(f->events, 2);
    assert_string_equal(f->last_event, "DEVICE_DELETED");
    assert_int_equal(qmp_client_pending(f->client), 0);
}

static void test_error_reply_and_unmatched(void **state)
{
    struct fixture *f = *state;
    handshake(f);
    struct reply r = {0}, r2 = {0};
    assert_int_equal(qmp_client_execute(f->client, "blockdev-del", NULL, on_reply, &r, NULL), 0);
    json_int_t id = server_expect(f, "blockdev-del");
    /* A reply nobody waits for and one without id: ignored. */
    server_send(f, "{\"return\": {}, \"id\": 999}\r\n");
    server_send(f,
                "{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error\"}}\r\n");
    char buf[256];
    snprintf(buf, sizeof(buf),
             "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Node 'disk-0-1' not "
             "found\"}, \"id\": %lld}\r\n",
             (long long)id);
    server_send(f, buf);
    run_until(f, &r.calls);
    assert_int_equal(r.calls, 1);
    assert_false(r.ok);
    assert_int_equal(r.code, RPC_UNKNOWN);
    assert_non_null(strstr(r.text, "GenericError"));
    assert_non_null(strstr(r.text, "Node 'disk-0-1' not found"));
    /* Still usable. */
    assert_int_equal(qmp_client_execute(f->client, "query-status", NULL, on_reply, &r2, NULL), 0);
    server_reply(f, server_expect(f, "query-status"), "{}");
    run_until(f, &r2.calls);
    assert_true(r2.ok);
    assert_int_equal(f->closed_calls, 0);
}

static void test_garbage_fails_pending(void **state)
{
    struct fixture *f = *state;
    handshake(f);
    struct reply r = {0};
    assert_int_equal(qmp_client_execute(f->client, "cont", NULL, on_reply, &r, NULL), 0);
    server_expect(f, "cont");
    server_send(f, "this is not json\r\n");
    run_until(f, &f->closed_calls);
    assert_int_equal(f->closed_calls, 1);
    assert_int_equal(f->closed_code, RPC_INTERNAL);
    assert_non_null(strstr(f->closed_msg, "malformed"));
    assert_int_equal(r.calls, 1);
    assert_false(r.ok);
    assert_false(qmp_client_ready(f->client));
    /* A non-object JSON value is garbage too (on a fresh client). */
    struct reply r2 = {0};
    assert_int_equal(qmp_client_execute(f->client, "cont", NULL, on_reply, &r2, NULL), -1);
    assert_int_equal(r2.calls, 0);
}

static void test_server_dies(void **state)
{
    struct fixture *f = *state;
    handshake(f);
    struct reply a = {0}, b = {0};
    assert_int_equal(qmp_client_execute(f->client, "system_powerdown", NULL, on_reply, &a, NULL),
                     0);
    assert_int_equal(qmp_client_execute(f->client, "quit", NULL, on_reply, &b, NULL), 0);
    close(f->server);
    f->server = -1;
    run_until(f, &f->closed_calls);
    assert_int_equal(f->closed_calls, 1);
    assert_int_equal(f->closed_code, RPC_UNAVAILABLE);
    assert_int_equal(a.calls, 1);
    assert_int_equal(b.calls, 1);
    assert_int_equal(a.code, RPC_UNAVAILABLE);
    assert_int_equal(qmp_client_pending(f->client), 0);
}

static void test_death_before_greeting(void **state)
{
    struct fixture *f = *state;
    server_send(f, "{\"QMP\"");
    close(f->server);
    f->server = -1;
    run_until(f, &f->ready_calls);
    assert_int_equal(f->ready_calls, 1);
    assert_int_equal(f->ready_code, RPC_UNAVAILABLE);
    assert_int_equal(f->closed_calls, 1);
}

static void test_bad_greeting(void **state)
{
    struct fixture *f = *state;
    server_send(f, "{\"return\": {}}\r\n");
    run_until(f, &f->ready_calls);
    assert_int_equal(f->ready_calls, 1);
    assert_int_equal(f->ready_code, RPC_INTERNAL);
}

static void test_capabilities_refused(void **state)
{
    struct fixture *f = *state;
    server_send(f, GREETING);
    json_int_t id = server_expect(f, "qmp_capabilities");
    char buf[256];
    snprintf(buf, sizeof(buf),
             "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"nope\"}, \"id\": %lld}\r\n",
             (long long)id);
    server_send(f, buf);
    run_until(f, &f->closed_calls);
    assert_int_equal(f->ready_calls, 1);
    assert_int_equal(f->ready_code, RPC_UNKNOWN);
    assert_false(qmp_client_ready(f->client));
    /* The connection is useless now: closed runs, with the reason. */
    assert_int_equal(f->closed_calls, 1);
    assert_int_equal(f->closed_code, RPC_UNKNOWN);
    assert_non_null(strstr(f->closed_msg, "CommandNotFound"));
    struct reply r = {0};
    assert_int_equal(qmp_client_execute(f->client, "cont", NULL, on_reply, &r, NULL), -1);
    /* A later EOF does not run ready or closed a second time. */
    close(f->server);
    f->server = -1;
    for (int i = 0; i < 20; i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    assert_int_equal(f->ready_calls, 1);
    assert_int_equal(f->closed_calls, 1);
    assert_int_equal(r.calls, 0);
}

struct flood {
    int fd;
    size_t bytes;
};

static void *flood_thread(void *arg)
{
    struct flood *fl = arg;
    char *chunk = malloc(65536);
    memset(chunk, 'x', 65536);
    size_t sent = 0;
    while (sent < fl->bytes) {
        ssize_t n = write(fl->fd, chunk, 65536);
        if (n <= 0)
            break; /* the client gave up: EPIPE */
        sent += (size_t)n;
    }
    free(chunk);
    return NULL;
}

static void test_oversized_line(void **state)
{
    struct fixture *f = *state;
    handshake(f);
    struct reply r = {0};
    assert_int_equal(qmp_client_execute(f->client, "cont", NULL, on_reply, &r, NULL), 0);
    server_expect(f, "cont");
    server_send(f, "{\"return\": \"");
    signal(SIGPIPE, SIG_IGN);
    struct flood fl = {f->server, QMP_MAX_LINE + (1u << 20)};
    pthread_t t;
    pthread_create(&t, NULL, flood_thread, &fl);
    run_until(f, &f->closed_calls);
    assert_int_equal(f->closed_calls, 1);
    assert_int_equal(f->closed_code, RPC_RESOURCE_EXHAUSTED);
    assert_int_equal(r.calls, 1);
    qmp_client_close(f->client); /* stop reading; the writer gets EPIPE */
    f->client = NULL;
    uv_run(&f->loop, UV_RUN_NOWAIT);
    shutdown(f->server, SHUT_RDWR);
    pthread_join(t, NULL);
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs the loop until *flag becomes nonzero or `seconds` pass; wakes as soon
 * as the loop has work (no fixed sleeps, so timings mean something). */
static void run_until_for(struct fixture *f, const int *flag, double seconds)
{
    double deadline = now_seconds() + seconds;
    while (!*flag && now_seconds() < deadline) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        struct pollfd p = {.fd = uv_backend_fd(&f->loop), .events = POLLIN};
        if (!*flag)
            poll(&p, 1, 10);
    }
}

#define LONG_LINE_BYTES (4u << 20)
#define LONG_LINE_CHUNK 1024u
#define LONG_LINE_SECONDS 2.0

/* Writes one chunk without blocking, then lets the client read it: every
 * read sees only the newest bytes of the line, as with a slow writer. */
static size_t feed_chunk(struct fixture *f, const char *data, size_t len)
{
    ssize_t w = send(f->server, data, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    return w > 0 ? (size_t)w : 0;
}

/* A long (but allowed) reply arriving in small reads costs time linear in
 * its length: the reader must not rescan or move the partial line on every
 * read (before the fix this line took ~5 s, and 16 MiB took minutes). */
static void test_long_line_in_small_writes(void **state)
{
    struct fixture *f = *state;
    handshake(f);
    struct reply r = {0};
    assert_int_equal(qmp_client_execute(f->client, "query-x", NULL, on_reply, &r, NULL), 0);
    json_int_t id = server_expect(f, "query-x");
    char head[64];
    int head_len = snprintf(head, sizeof(head), "{\"id\": %lld, \"return\": \"", (long long)id);
    size_t len = LONG_LINE_BYTES;
    char *line = malloc(len);
    assert_non_null(line);
    memcpy(line, head, (size_t)head_len);
    memset(line + head_len, 'x', len - (size_t)head_len - 4);
    memcpy(line + len - 4, "\"}\r\n", 4);

    double t0 = now_seconds(), took = 0;
    size_t off = 0;
    /* Bounded: gives up well after the limit instead of running for minutes. */
    while (off < len && (took = now_seconds() - t0) < 5 * LONG_LINE_SECONDS) {
        size_t n = len - off < LONG_LINE_CHUNK ? len - off : LONG_LINE_CHUNK;
        off += feed_chunk(f, line + off, n);
    }
    run_until_for(f, &r.calls, 5 * LONG_LINE_SECONDS);
    took = now_seconds() - t0;
    free(line);
    print_message("%zu of %u bytes of one line in %u-byte writes: %.3f s\n", off, LONG_LINE_BYTES,
                  LONG_LINE_CHUNK, took);
    assert_int_equal(off, len);
    assert_int_equal(r.calls, 1);
    assert_true(r.ok);
    assert_int_equal(strlen(r.text), sizeof(r.text) - 1); /* the long string, truncated */
    assert_true(took < LONG_LINE_SECONDS);
    assert_int_equal(f->closed_calls, 0);
}

/* Two lines (an event and a reply) cut into two writes at every byte
 * position, then the same bytes one write per byte: each message arrives
 * exactly once and intact. */
static void test_lines_split_at_every_byte(void **state)
{
    struct fixture *f = *state;
    handshake(f);
    for (size_t cut = 0;; cut++) {
        struct reply r = {0};
        assert_int_equal(qmp_client_execute(f->client, "query-status", NULL, on_reply, &r, NULL),
                         0);
        json_int_t id = server_expect(f, "query-status");
        char text[256];
        int n = snprintf(text, sizeof(text),
                         "{\"event\": \"STOP\", \"data\": {}}\r\n"
                         "{\"return\": {\"status\": \"paused\", \"cut\": %zu}, \"id\": %lld}\r\n",
                         cut, (long long)id);
        int events = f->events;
        bool bytewise = cut >= (size_t)n;
        if (bytewise) {
            for (int i = 0; i < n; i++) {
                assert_int_equal(write(f->server, text + i, 1), 1);
                uv_run(&f->loop, UV_RUN_NOWAIT);
            }
        } else {
            assert_int_equal(write(f->server, text, cut), (ssize_t)cut);
            uv_run(&f->loop, UV_RUN_NOWAIT);
            server_send(f, text + cut);
        }
        run_until(f, &r.calls);
        assert_int_equal(r.calls, 1);
        assert_true(r.ok);
        char want[128];
        snprintf(want, sizeof(want), "{\"status\":\"paused\",\"cut\":%zu}", cut);
        assert_string_equal(r.text, want);
        assert_int_equal(f->events, events + 1);
        assert_string_equal(f->last_event, "STOP");
        if (bytewise)
            break;
    }
    assert_int_equal(qmp_client_pending(f->client), 0);
    assert_int_equal(f->closed_calls, 0);
}

/* Closing from inside a reply callback, with another command pending. */
static void close_in_reply(struct qmp_client *c, json_t *ret, const shim_error_t *err, void *opaque)
{
    struct reply *r = opaque;
    on_reply(c, ret, err, opaque);
    qmp_client_close(c);
    (void)r;
}

static void test_close_inside_callback(void **state)
{
    struct fixture *f = *state;
    handshake(f);
    struct reply a = {0}, b = {0};
    assert_int_equal(qmp_client_execute(f->client, "x", NULL, close_in_reply, &a, NULL), 0);
    assert_int_equal(qmp_client_execute(f->client, "y", NULL, on_reply, &b, NULL), 0);
    json_int_t id = server_expect(f, "x");
    server_expect(f, "y");
    server_reply(f, id, "{}");
    run_until(f, &a.calls);
    assert_int_equal(a.calls, 1);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(b.calls, 0); /* dropped silently after close */
    assert_int_equal(f->closed_calls, 0);
    f->client = NULL; /* already closed */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_handshake_and_command, setup, teardown),
        cmocka_unit_test_setup_teardown(test_out_of_order_and_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_reply_and_unmatched, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_fails_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_dies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_death_before_greeting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_greeting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_capabilities_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversized_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_inside_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_line_in_small_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lines_split_at_every_byte, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
