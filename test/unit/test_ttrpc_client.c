/* ttrpc client against our server and against a raw socket peer, all on
 * one real uv loop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "test/support/ttrpc_peer.h"
#include "ttrpc/frame.h"
#include "ttrpc/ttrpc.h"

#define SVC "test.v1.Svc"
#define MAX_RESULTS 256

struct result {
    bool done;
    int code;
    char message[256];
    uint8_t payload[256];
    size_t len;
};

struct fixture {
    uv_loop_t loop;
    char *dir;
    char path[256];
    ttrpc_server_t *server;
    ttrpc_client_t *client;
    ttrpc_call_t *held[MAX_RESULTS];
    int n_held;
    int64_t last_timeout;
    struct result results[MAX_RESULTS];
    int completed;
    bool shutdown_done;
};

static struct fixture *current;

static void handle_echo(ttrpc_call_t *call)
{
    size_t len;
    const uint8_t *p = ttrpc_call_payload(call, &len);
    ttrpc_call_reply(call, p, len);
}

static void handle_hold(ttrpc_call_t *call)
{
    struct fixture *f = ttrpc_call_user_data(call);
    f->last_timeout = ttrpc_call_timeout_nano(call);
    f->held[f->n_held++] = call;
}

static void handle_fail(ttrpc_call_t *call)
{
    ttrpc_call_fail(call, 9, "wrong state");
}

static const struct ttrpc_method methods[] = {
    {"Echo", handle_echo}, {"Hold", handle_hold}, {"Fail", handle_fail}};
static struct ttrpc_service service = {.name = SVC, .methods = methods, .n_methods = 3};

static void start_server(struct fixture *f)
{
    service.user_data = f;
    assert_int_equal(ttrpc_server_new(&f->loop, NULL, &f->server, NULL), 0);
    assert_int_equal(ttrpc_server_register(f->server, &service, NULL), 0);
    assert_int_equal(ttrpc_server_listen(f->server, f->path, NULL), 0);
}

static void on_shutdown_done(void *arg)
{
    ((struct fixture *)arg)->shutdown_done = true;
}

static void finish_held(struct fixture *f)
{
    for (int i = 0; i < f->n_held; i++)
        ttrpc_call_reply(f->held[i], NULL, 0);
    f->n_held = 0;
}

/* Stops the server (answering held calls after it dropped them). */
static void stop_server(struct fixture *f, uint64_t timeout_ms)
{
    f->shutdown_done = false;
    ttrpc_server_shutdown(f->server, timeout_ms, on_shutdown_done, f);
    f->server = NULL;
    assert_true(tpeer_pump_until(&f->loop, &f->shutdown_done, TPEER_TIMEOUT_MS));
    finish_held(f);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    uv_loop_init(&f->loop);
    f->dir = tpeer_tmpdir();
    assert_non_null(f->dir);
    snprintf(f->path, sizeof(f->path), "%s/s.sock", f->dir);
    start_server(f);
    assert_int_equal(ttrpc_client_new(&f->loop, f->path, &f->client, NULL), 0);
    current = f;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    if (f->client)
        ttrpc_client_close(f->client);
    if (f->server)
        stop_server(f, 100);
    finish_held(f);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    tpeer_rmdir(f->dir);
    free(f);
    return 0;
}

static void on_result(int code, const char *message, const uint8_t *payload, size_t len, void *arg)
{
    struct result *r = arg;
    assert_false(r->done); /* exactly once */
    r->done = true;
    r->code = code;
    snprintf(r->message, sizeof(r->message), "%s", message);
    r->len = len < sizeof(r->payload) ? len : sizeof(r->payload);
    if (len > 0)
        memcpy(r->payload, payload, r->len);
    current->completed++;
}

static void call(struct fixture *f, int slot, const char *method, const char *payload,
                 uint64_t timeout_ms)
{
    struct ttrpc_call_args args = {.service = SVC,
                                   .method = method,
                                   .payload = (const uint8_t *)payload,
                                   .len = payload ? strlen(payload) : 0,
                                   .timeout_ms = timeout_ms};
    assert_int_equal(ttrpc_client_call(f->client, &args, on_result, &f->results[slot], NULL), 0);
    assert_false(f->results[slot].done); /* never completes synchronously */
}

static void wait_done(struct fixture *f, int slot)
{
    assert_true(tpeer_pump_until(&f->loop, &f->results[slot].done, TPEER_TIMEOUT_MS));
}

static void expect_ok(struct fixture *f, int slot, const char *payload)
{
    wait_done(f, slot);
    assert_int_equal(f->results[slot].code, 0);
    assert_string_equal(f->results[slot].message, "");
    assert_int_equal(f->results[slot].len, strlen(payload));
    assert_memory_equal(f->results[slot].payload, payload, strlen(payload));
}

static void test_call_ok_and_error(void **state)
{
    struct fixture *f = *state;
    call(f, 0, "Echo", "hello", 0);
    expect_ok(f, 0, "hello");
    call(f, 1, "Fail", NULL, 0);
    wait_done(f, 1);
    assert_int_equal(f->results[1].code, 9);
    assert_string_equal(f->results[1].message, "wrong state");
    call(f, 2, "Nope", NULL, 0);
    wait_done(f, 2);
    assert_int_equal(f->results[2].code, 12);
    assert_string_equal(f->results[2].message, "method Nope");
    call(f, 3, "Echo", NULL, 0);
    expect_ok(f, 3, "");
}

/* Many calls in flight at once, answered in reverse order. */
static void test_many_in_flight(void **state)
{
    struct fixture *f = *state;
    const int n = 100;
    for (int i = 0; i < n; i++)
        call(f, i, "Hold", NULL, 0);
    assert_true(tpeer_pump_until_count(&f->loop, &f->n_held, n, TPEER_TIMEOUT_MS));
    for (int i = n - 1; i >= 0; i--) {
        char reply[16];
        snprintf(reply, sizeof(reply), "r%d", i);
        ttrpc_call_reply(f->held[i], (const uint8_t *)reply, strlen(reply));
    }
    f->n_held = 0;
    assert_true(tpeer_pump_until_count(&f->loop, &f->completed, n, TPEER_TIMEOUT_MS));
    for (int i = 0; i < n; i++) {
        char reply[16];
        snprintf(reply, sizeof(reply), "r%d", i);
        expect_ok(f, i, reply);
    }
}

/* The deadline is sent as timeout_nano and enforced locally. */
static void test_client_deadline(void **state)
{
    struct fixture *f = *state;
    call(f, 0, "Hold", NULL, 50);
    wait_done(f, 0);
    assert_int_equal(f->results[0].code, 4);
    assert_int_equal(f->last_timeout, 50 * 1000000LL);
    /* The server answered DeadlineExceeded too; a later reply is ignored. */
    finish_held(f);
    call(f, 1, "Echo", "after", 5000);
    expect_ok(f, 1, "after");
}

/* Connection loss fails every call in flight with Unavailable. */
static void test_connection_loss(void **state)
{
    struct fixture *f = *state;
    call(f, 0, "Hold", NULL, 0);
    call(f, 1, "Hold", NULL, 0);
    assert_true(tpeer_pump_until_count(&f->loop, &f->n_held, 2, TPEER_TIMEOUT_MS));
    stop_server(f, 10);
    assert_true(tpeer_pump_until_count(&f->loop, &f->completed, 2, TPEER_TIMEOUT_MS));
    assert_int_equal(f->results[0].code, 14);
    assert_int_equal(f->results[1].code, 14);
    /* No server: the next call fails to connect, also Unavailable. */
    call(f, 2, "Echo", "x", 0);
    wait_done(f, 2);
    assert_int_equal(f->results[2].code, 14);
}

/* After the server restarts, the next call reconnects. */
static void test_reconnect_after_restart(void **state)
{
    struct fixture *f = *state;
    call(f, 0, "Echo", "one", 0);
    expect_ok(f, 0, "one");
    stop_server(f, 100);
    tpeer_pump_for(&f->loop, 20);
    start_server(f);
    call(f, 1, "Echo", "two", 0);
    expect_ok(f, 1, "two");
    call(f, 2, "Echo", "three", 0);
    expect_ok(f, 2, "three");
}

/* Against a raw peer: odd stream ids from 1 step 2 per connection, responses
 * matched by id in any order, unknown ids ignored, oversized responses and
 * undecodable ones fail only their own call. */
static void test_stream_ids_and_matching(void **state)
{
    struct fixture *f = *state;
    char raw_path[300];
    snprintf(raw_path, sizeof(raw_path), "%s/raw.sock", f->dir);
    int lfd = tpeer_listen(raw_path);
    assert_true(lfd >= 0);
    ttrpc_client_t *client;
    assert_int_equal(ttrpc_client_new(&f->loop, raw_path, &client, NULL), 0);
    struct ttrpc_call_args args = {.service = "s", .method = "m"};
    for (int i = 0; i < 4; i++)
        assert_int_equal(ttrpc_client_call(client, &args, on_result, &f->results[i], NULL), 0);
    int fd = tpeer_accept(&f->loop, lfd);
    assert_true(fd >= 0);
    for (uint32_t i = 0; i < 4; i++) {
        struct tpeer_frame fr;
        assert_true(tpeer_read_frame(&f->loop, fd, &fr));
        assert_int_equal(fr.stream_id, 2 * i + 1);
        assert_int_equal(fr.type, 1);
        assert_int_equal(fr.flags, 0);
        free(fr.body);
    }
    uint8_t *frame;
    size_t len;
    /* Unknown stream first: ignored. */
    assert_int_equal(ttrpc_response_frame(99, 0, NULL, NULL, 0, &frame, &len), 0);
    assert_true(tpeer_write(&f->loop, fd, frame, len));
    free(frame);
    assert_int_equal(ttrpc_response_frame(3, 0, NULL, (const uint8_t *)"B", 1, &frame, &len), 0);
    assert_true(tpeer_write(&f->loop, fd, frame, len));
    free(frame);
    expect_ok(f, 1, "B");
    assert_false(f->results[0].done);
    /* Oversized response on stream 1. */
    uint8_t hdr[10];
    struct ttrpc_frame_header h = {.length = TTRPC_MAX_MESSAGE + 1, .stream_id = 1, .type = 2};
    ttrpc_header_encode(hdr, &h);
    assert_true(tpeer_write(&f->loop, fd, hdr, sizeof(hdr)));
    wait_done(f, 0);
    assert_int_equal(f->results[0].code, 8);
    uint8_t *junk = calloc(1, TTRPC_MAX_MESSAGE + 1);
    assert_true(tpeer_write(&f->loop, fd, junk, TTRPC_MAX_MESSAGE + 1));
    free(junk);
    /* Undecodable response on stream 5, then a good one on 7. */
    assert_true(tpeer_write_frame(&f->loop, fd, 5, 2, "\xff\xff\xff", 3));
    wait_done(f, 2);
    assert_true(f->results[2].code != 0);
    assert_int_equal(ttrpc_response_frame(7, 0, NULL, (const uint8_t *)"D", 1, &frame, &len), 0);
    assert_true(tpeer_write(&f->loop, fd, frame, len));
    free(frame);
    expect_ok(f, 3, "D");
    /* Peer goes away; a new connection starts again at stream 1. */
    close(fd);
    assert_int_equal(ttrpc_client_call(client, &args, on_result, &f->results[4], NULL), 0);
    wait_done(f, 4); /* fails: first write on the dead connection or EOF */
    assert_int_equal(f->results[4].code, 14);
    assert_int_equal(ttrpc_client_call(client, &args, on_result, &f->results[5], NULL), 0);
    fd = tpeer_accept(&f->loop, lfd);
    assert_true(fd >= 0);
    struct tpeer_frame fr;
    assert_true(tpeer_read_frame(&f->loop, fd, &fr));
    assert_int_equal(fr.stream_id, 1);
    free(fr.body);
    ttrpc_client_close(client);
    wait_done(f, 5);
    assert_int_equal(f->results[5].code, 1);
    close(fd);
    close(lfd);
}

static void test_connect_failure(void **state)
{
    struct fixture *f = *state;
    ttrpc_client_t *client;
    char missing[300];
    snprintf(missing, sizeof(missing), "unix://%s/missing.sock", f->dir);
    assert_int_equal(ttrpc_client_new(&f->loop, missing, &client, NULL), 0);
    struct ttrpc_call_args args = {.service = SVC, .method = "Echo"};
    assert_int_equal(ttrpc_client_call(client, &args, on_result, &f->results[0], NULL), 0);
    wait_done(f, 0);
    assert_int_equal(f->results[0].code, 14);
    assert_non_null(strstr(f->results[0].message, "missing.sock"));
    ttrpc_client_close(client);

    char longpath[200];
    memset(longpath, 'a', sizeof(longpath) - 1);
    longpath[0] = '/';
    longpath[sizeof(longpath) - 1] = '\0';
    shim_error_t *err = NULL;
    assert_int_equal(ttrpc_client_new(&f->loop, longpath, &client, &err), -1);
    assert_int_equal(err->code, 3);
    error_free(err);
}

/* Closing the client cancels what is in flight; calls after close fail. */
static void test_close_cancels(void **state)
{
    struct fixture *f = *state;
    call(f, 0, "Hold", NULL, 0);
    call(f, 1, "Hold", NULL, 1000);
    assert_true(tpeer_pump_until_count(&f->loop, &f->n_held, 2, TPEER_TIMEOUT_MS));
    ttrpc_client_close(f->client);
    assert_true(tpeer_pump_until_count(&f->loop, &f->completed, 2, TPEER_TIMEOUT_MS));
    assert_int_equal(f->results[0].code, 1);
    assert_int_equal(f->results[1].code, 1);
    f->client = NULL;
}

/* A callback may start the next call (sequential publishing). */
struct chain {
    struct fixture *f;
    int remaining;
    int ok;
};

static void on_chain(int code, const char *message, const uint8_t *payload, size_t len, void *arg)
{
    (void)message;
    (void)payload;
    (void)len;
    struct chain *c = arg;
    if (code == 0)
        c->ok++;
    if (--c->remaining > 0) {
        struct ttrpc_call_args args = {.service = SVC, .method = "Echo", .timeout_ms = 5000};
        assert_int_equal(ttrpc_client_call(c->f->client, &args, on_chain, c, NULL), 0);
    }
}

static void test_call_from_callback(void **state)
{
    struct fixture *f = *state;
    struct chain c = {.f = f, .remaining = 20};
    struct ttrpc_call_args args = {.service = SVC, .method = "Echo"};
    assert_int_equal(ttrpc_client_call(f->client, &args, on_chain, &c, NULL), 0);
    assert_true(tpeer_pump_until_count(&f->loop, &c.ok, 20, TPEER_TIMEOUT_MS));
}

static void test_metadata_sent(void **state)
{
    struct fixture *f = *state;
    char raw_path[300];
    snprintf(raw_path, sizeof(raw_path), "%s/md.sock", f->dir);
    int lfd = tpeer_listen(raw_path);
    ttrpc_client_t *client;
    assert_int_equal(ttrpc_client_new(&f->loop, raw_path, &client, NULL), 0);
    const struct ttrpc_metadata md[] = {{"containerd-namespace-ttrpc", "ns9"}};
    struct ttrpc_call_args args = {.service = "a.B",
                                   .method = "C",
                                   .payload = (const uint8_t *)"pp",
                                   .len = 2,
                                   .metadata = md,
                                   .n_metadata = 1,
                                   .timeout_ms = 7000};
    assert_int_equal(ttrpc_client_call(client, &args, on_result, &f->results[0], NULL), 0);
    int fd = tpeer_accept(&f->loop, lfd);
    struct tpeer_frame fr;
    assert_true(tpeer_read_frame(&f->loop, fd, &fr));
    Ttrpc__Request *req = NULL;
    assert_int_equal(ttrpc_request_decode(fr.body, fr.length, &req, NULL), 0);
    assert_string_equal(req->service, "a.B");
    assert_string_equal(req->method, "C");
    assert_int_equal(req->timeout_nano, 7000 * 1000000LL);
    assert_int_equal(req->n_metadata, 1);
    assert_string_equal(req->metadata[0]->value, "ns9");
    assert_memory_equal(req->payload.data, "pp", 2);
    ttrpc__request__free_unpacked(req, NULL);
    free(fr.body);
    ttrpc_client_close(client);
    wait_done(f, 0);
    close(fd);
    close(lfd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_call_ok_and_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_loss, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reconnect_after_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_ids_and_matching, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_cancels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_from_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metadata_sent, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
