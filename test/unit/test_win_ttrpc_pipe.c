/* ttrpc server and client talking over the platform's own transport on one
 * real uv loop: a named pipe (\\.\pipe\...) on Windows, where this runs
 * under wine via `make test-windows`, and a Unix socket on Linux. Needs no
 * test/support code, so it links on both. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#ifndef _WIN32
#include <unistd.h>
#endif

#include "ttrpc/ttrpc.h"

#define SVC "test.v1.Pipe"
#define WAIT_MS 20000
#define PIPELINED 64
#define BIG_PAYLOAD (1u << 20)

struct result {
    bool done;
    int code;
    char message[128];
    uint8_t *payload;
    size_t len;
};

struct fixture {
    uv_loop_t loop;
    char dir[128]; /* Unix only: holds the socket */
    char path[256];
    ttrpc_server_t *server;
    ttrpc_client_t *client;
    bool shutdown_done;
};

static void handle_echo(ttrpc_call_t *call)
{
    size_t len;
    const uint8_t *p = ttrpc_call_payload(call, &len);
    ttrpc_call_reply(call, p, len);
}

static void handle_fail(ttrpc_call_t *call)
{
    ttrpc_call_fail(call, 9, "failed %s", "on purpose");
}

static const struct ttrpc_method methods[] = {{"Echo", handle_echo}, {"Fail", handle_fail}};
static const struct ttrpc_service service = {.name = SVC, .methods = methods, .n_methods = 2};

static void on_timeout(uv_timer_t *timer)
{
    *(bool *)timer->data = true;
}

/* Runs the loop until *flag or *counter >= target, bounded by WAIT_MS. */
static bool pump_until(uv_loop_t *loop, const bool *flag, const int *counter, int target)
{
    bool timed_out = false;
    uv_timer_t timer;
    uv_timer_init(loop, &timer);
    timer.data = &timed_out;
    uv_timer_start(&timer, on_timeout, WAIT_MS, 0);
    while (!timed_out && !(flag && *flag) && !(counter && *counter >= target))
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&timer, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return !timed_out;
}

/* A fresh address nobody else uses: a pipe name (Windows) or a socket in a
 * private temp dir (Unix). */
static void make_address(struct fixture *f, const char *name)
{
    static int seq;
#ifdef _WIN32
    snprintf(f->path, sizeof(f->path), "\\\\.\\pipe\\ttrpc-test-%d-%d-%s", (int)uv_os_getpid(),
             ++seq, name);
#else
    snprintf(f->dir, sizeof(f->dir), "/tmp/ttrpc-pipe-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/%d-%s.sock", f->dir, ++seq, name);
#endif
}

static void remove_address(struct fixture *f)
{
#ifndef _WIN32
    unlink(f->path);
    rmdir(f->dir);
#else
    (void)f;
#endif
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    make_address(f, "main");
    assert_int_equal(ttrpc_server_new(&f->loop, NULL, &f->server, NULL), 0);
    assert_int_equal(ttrpc_server_register(f->server, &service, NULL), 0);
    assert_int_equal(ttrpc_server_listen(f->server, f->path, NULL), 0);
    assert_int_equal(ttrpc_client_new(&f->loop, f->path, &f->client, NULL), 0);
    *state = f;
    return 0;
}

static void on_shutdown(void *arg)
{
    ((struct fixture *)arg)->shutdown_done = true;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    if (f->client != NULL)
        ttrpc_client_close(f->client);
    if (f->server != NULL) {
        ttrpc_server_shutdown(f->server, 1000, on_shutdown, f);
        assert_true(pump_until(&f->loop, &f->shutdown_done, NULL, 0));
    }
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    remove_address(f);
    free(f);
    return 0;
}

static void on_result(int code, const char *message, const uint8_t *payload, size_t len, void *arg)
{
    struct result *r = arg;
    assert_false(r->done);
    r->done = true;
    r->code = code;
    snprintf(r->message, sizeof(r->message), "%s", message);
    r->len = len;
    if (len > 0) {
        r->payload = malloc(len);
        assert_non_null(r->payload);
        memcpy(r->payload, payload, len);
    }
}

static void call(struct fixture *f, const char *method, const uint8_t *payload, size_t len,
                 struct result *r)
{
    struct ttrpc_call_args args = {
        .service = SVC, .method = method, .payload = payload, .len = len, .timeout_ms = WAIT_MS};
    assert_int_equal(ttrpc_client_call(f->client, &args, on_result, r, NULL), 0);
}

static void test_echo_round_trip(void **state)
{
    struct fixture *f = *state;
    struct result r = {0};
    call(f, "Echo", (const uint8_t *)"hello pipe", 10, &r);
    assert_true(pump_until(&f->loop, &r.done, NULL, 0));
    assert_int_equal(r.code, 0);
    assert_int_equal(r.len, 10);
    assert_memory_equal(r.payload, "hello pipe", 10);
    free(r.payload);
}

static void test_error_status(void **state)
{
    struct fixture *f = *state;
    struct result r = {0};
    call(f, "Fail", NULL, 0, &r);
    assert_true(pump_until(&f->loop, &r.done, NULL, 0));
    assert_int_equal(r.code, 9);
    assert_string_equal(r.message, "failed on purpose");
}

struct counted {
    struct result r;
    int *completed;
};

static void on_counted(int code, const char *message, const uint8_t *payload, size_t len, void *arg)
{
    struct counted *c = arg;
    on_result(code, message, payload, len, &c->r);
    (*c->completed)++;
}

/* Many calls in flight on one connection, each answered with its own bytes. */
static void test_pipelined_calls(void **state)
{
    struct fixture *f = *state;
    static struct counted calls[PIPELINED];
    char bodies[PIPELINED][16];
    int completed = 0;
    memset(calls, 0, sizeof(calls));
    for (int i = 0; i < PIPELINED; i++) {
        calls[i].completed = &completed;
        int n = snprintf(bodies[i], sizeof(bodies[i]), "call-%d", i);
        struct ttrpc_call_args args = {.service = SVC,
                                       .method = "Echo",
                                       .payload = (const uint8_t *)bodies[i],
                                       .len = (size_t)n,
                                       .timeout_ms = WAIT_MS};
        assert_int_equal(ttrpc_client_call(f->client, &args, on_counted, &calls[i], NULL), 0);
    }
    assert_true(pump_until(&f->loop, NULL, &completed, PIPELINED));
    for (int i = 0; i < PIPELINED; i++) {
        assert_int_equal(calls[i].r.code, 0);
        assert_int_equal(calls[i].r.len, strlen(bodies[i]));
        assert_memory_equal(calls[i].r.payload, bodies[i], calls[i].r.len);
        free(calls[i].r.payload);
    }
}

/* A payload far larger than the pipe buffer arrives whole, in order. */
static void test_large_payload(void **state)
{
    struct fixture *f = *state;
    uint8_t *big = malloc(BIG_PAYLOAD);
    assert_non_null(big);
    for (size_t i = 0; i < BIG_PAYLOAD; i++)
        big[i] = (uint8_t)(i * 7 + (i >> 9));
    struct result r = {0};
    call(f, "Echo", big, BIG_PAYLOAD, &r);
    assert_true(pump_until(&f->loop, &r.done, NULL, 0));
    assert_int_equal(r.code, 0);
    assert_int_equal(r.len, BIG_PAYLOAD);
    assert_memory_equal(r.payload, big, BIG_PAYLOAD);
    free(r.payload);
    free(big);
}

/* A second server cannot take over an address a live server owns. */
static void test_address_in_use(void **state)
{
    struct fixture *f = *state;
    ttrpc_server_t *second = NULL;
    shim_error_t *err = NULL;
    assert_int_equal(ttrpc_server_new(&f->loop, NULL, &second, NULL), 0);
    int rc = ttrpc_server_listen(second, f->path, &err);
    /* Shut the second server down first, so a failure cannot hang teardown. */
    f->shutdown_done = false;
    ttrpc_server_shutdown(second, 0, on_shutdown, f);
    assert_true(pump_until(&f->loop, &f->shutdown_done, NULL, 0));
    assert_int_equal(rc, -1);
    assert_non_null(err);
    assert_int_equal(err->code, RPC_ALREADY_EXISTS);
    error_free(err);
    /* The first server still answers. */
    struct result r = {0};
    call(f, "Echo", (const uint8_t *)"x", 1, &r);
    assert_true(pump_until(&f->loop, &r.done, NULL, 0));
    assert_int_equal(r.code, 0);
    free(r.payload);
}

/* Nobody serves the address: the call fails as Unavailable, no hang. */
static void test_no_server(void **state)
{
    struct fixture *f = *state;
    struct fixture other = {0};
    make_address(&other, "nobody");
    ttrpc_client_t *client = NULL;
    assert_int_equal(ttrpc_client_new(&f->loop, other.path, &client, NULL), 0);
    struct result r = {0};
    struct ttrpc_call_args args = {.service = SVC, .method = "Echo", .timeout_ms = WAIT_MS};
    assert_int_equal(ttrpc_client_call(client, &args, on_result, &r, NULL), 0);
    assert_true(pump_until(&f->loop, &r.done, NULL, 0));
    assert_int_equal(r.code, RPC_UNAVAILABLE);
    ttrpc_client_close(client);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    remove_address(&other);
}

/* The server going away fails the calls in flight instead of hanging them. */
static void test_server_shutdown_fails_client(void **state)
{
    struct fixture *f = *state;
    struct result first = {0};
    call(f, "Echo", (const uint8_t *)"a", 1, &first);
    assert_true(pump_until(&f->loop, &first.done, NULL, 0));
    free(first.payload);
    f->shutdown_done = false;
    ttrpc_server_shutdown(f->server, 1000, on_shutdown, f);
    f->server = NULL;
    assert_true(pump_until(&f->loop, &f->shutdown_done, NULL, 0));
    struct result r = {0};
    call(f, "Echo", (const uint8_t *)"b", 1, &r);
    assert_true(pump_until(&f->loop, &r.done, NULL, 0));
    assert_int_equal(r.code, RPC_UNAVAILABLE);
}

#ifdef _WIN32
/* Only \\.\pipe\ names are transport addresses on Windows. */
static void test_rejects_non_pipe_address(void **state)
{
    struct fixture *f = *state;
    ttrpc_client_t *client = NULL;
    shim_error_t *err = NULL;
    assert_int_equal(ttrpc_client_new(&f->loop, "C:\\shim.sock", &client, &err), -1);
    assert_non_null(err);
    assert_int_equal(err->code, RPC_INVALID_ARGUMENT);
    error_free(err);
}
#endif

int main(void)
{
    /* Progress stays visible even if a test is killed (wine pipes stdout). */
    setvbuf(stdout, NULL, _IONBF, 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_echo_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_status, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipelined_calls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_payload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_address_in_use, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_server, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_shutdown_fails_client, setup, teardown),
#ifdef _WIN32
        cmocka_unit_test_setup_teardown(test_rejects_non_pipe_address, setup, teardown),
#endif
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
