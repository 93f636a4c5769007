/* ttrpc server over real Unix sockets and a real uv loop, driven by a raw
 * socket peer that writes and reads frames byte by byte when asked to. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifndef _WIN32
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#else
#include <io.h> /* close() for the raw peer's CRT descriptors */
#endif

#include <cmocka.h>

#include "test/support/ttrpc_peer.h"
#include "ttrpc/frame.h"
#include "ttrpc/ttrpc.h"

#define SVC "test.v1.Svc"
#define MAX_HELD 64

struct fixture {
    uv_loop_t loop;
    char *dir;
    char path[256];
    ttrpc_server_t *server;
    int fd; /* raw client */
    ttrpc_call_t *held[MAX_HELD];
    int n_held;
    int cancelled;
    bool shutdown_done;
    int64_t last_timeout;
    uint64_t conn_ids[MAX_HELD];
};

/* Echo: replies with the request payload. */
static void handle_echo(ttrpc_call_t *call)
{
    size_t len;
    const uint8_t *p = ttrpc_call_payload(call, &len);
    ttrpc_call_reply(call, p, len);
}

/* Hold: kept until the test finishes it. */
static void on_held_cancel(ttrpc_call_t *call, void *arg)
{
    (void)call;
    struct fixture *f = arg;
    f->cancelled++;
}

static void handle_hold(ttrpc_call_t *call)
{
    struct fixture *f = ttrpc_call_user_data(call);
    assert_true(f->n_held < MAX_HELD);
    f->last_timeout = ttrpc_call_timeout_nano(call);
    f->conn_ids[f->n_held] = ttrpc_call_connection_id(call);
    f->held[f->n_held++] = call;
    ttrpc_call_on_cancel(call, on_held_cancel, f);
}

/* Meta: replies "k=v;" for every metadata pair, in order. */
static void handle_meta(ttrpc_call_t *call)
{
    char out[256] = "";
    const char *k, *v;
    for (size_t i = 0; ttrpc_call_metadata_at(call, i, &k, &v); i++) {
        strcat(out, k);
        strcat(out, "=");
        strcat(out, v);
        strcat(out, ";");
    }
    const char *ns = ttrpc_call_metadata_get(call, "containerd-namespace-ttrpc");
    strcat(out, ns ? ns : "-");
    ttrpc_call_reply(call, (const uint8_t *)out, strlen(out));
}

/* Big: replies with a payload of the size given as decimal text. */
static void handle_big(ttrpc_call_t *call)
{
    size_t len;
    const uint8_t *p = ttrpc_call_payload(call, &len);
    char num[32] = "";
    memcpy(num, p, len < sizeof(num) - 1 ? len : sizeof(num) - 1);
    size_t n = strtoul(num, NULL, 10);
    uint8_t *buf = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        buf[i] = (uint8_t)(i * 7 + n);
    ttrpc_call_reply(call, buf, n);
    free(buf);
}

static void handle_fail(ttrpc_call_t *call)
{
    ttrpc_call_fail(call, 5, "thing %s not found", "x");
}

/* Finish: like the test server's Sleep, its cancel callback finishes it. */
static void on_finish_cancel(ttrpc_call_t *call, void *arg)
{
    struct fixture *f = arg;
    f->cancelled++;
    ttrpc_call_reply(call, (const uint8_t *)"dropped", 7);
}

static void handle_finish_on_cancel(ttrpc_call_t *call)
{
    ttrpc_call_on_cancel(call, on_finish_cancel, ttrpc_call_user_data(call));
}

static const struct ttrpc_method methods[] = {
    {"FinishOnCancel", handle_finish_on_cancel},
    {"Echo", handle_echo},
    {"Hold", handle_hold},
    {"Meta", handle_meta},
    {"Big", handle_big},
    {"Fail", handle_fail},
};

static struct ttrpc_service service = {
    .name = SVC, .methods = methods, .n_methods = sizeof(methods) / sizeof(methods[0])};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    uv_loop_init(&f->loop);
    f->dir = tpeer_tmpdir();
    assert_non_null(f->dir);
    snprintf(f->path, sizeof(f->path), "%s/s.sock", f->dir);
    service.user_data = f;
    struct ttrpc_server_options opts = {.require_same_uid = true};
    assert_int_equal(ttrpc_server_new(&f->loop, &opts, &f->server, NULL), 0);
    assert_int_equal(ttrpc_server_register(f->server, &service, NULL), 0);
    assert_int_equal(ttrpc_server_listen(f->server, f->path, NULL), 0);
    f->fd = tpeer_connect(f->path);
    assert_true(f->fd >= 0);
    *state = f;
    return 0;
}

static void on_shutdown_done(void *arg)
{
    struct fixture *f = arg;
    f->shutdown_done = true;
}

static void finish_held(struct fixture *f)
{
    for (int i = 0; i < f->n_held; i++)
        ttrpc_call_reply(f->held[i], NULL, 0);
    f->n_held = 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    if (f->fd >= 0)
        close(f->fd);
    if (f->server != NULL) {
        ttrpc_server_shutdown(f->server, 2000, on_shutdown_done, f);
        assert_true(tpeer_pump_until(&f->loop, &f->shutdown_done, TPEER_TIMEOUT_MS));
    }
    finish_held(f);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    tpeer_rmdir(f->dir);
    free(f);
    return 0;
}

static void send_req(struct fixture *f, uint32_t id, const char *svc, const char *method,
                     const char *payload, int64_t timeout_nano)
{
    assert_true(tpeer_send_request(&f->loop, f->fd, id, svc, method, payload,
                                   payload ? strlen(payload) : 0, timeout_nano));
}

/* Reads one response and checks stream, code, message and payload. */
static void expect_resp(struct fixture *f, uint32_t id, int code, const char *message,
                        const char *payload)
{
    int got_code = -1;
    char *got_msg = NULL;
    uint8_t *got_payload = NULL;
    size_t len = 0;
    uint32_t got_id = tpeer_read_response(&f->loop, f->fd, &got_code, &got_msg, &got_payload, &len);
    assert_int_equal(got_id, id);
    assert_int_equal(got_code, code);
    if (message)
        assert_string_equal(got_msg, message);
    if (payload) {
        assert_int_equal(len, strlen(payload));
        assert_memory_equal(got_payload, payload, len);
    }
    free(got_msg);
    free(got_payload);
}

static void test_echo(void **state)
{
    struct fixture *f = *state;
    send_req(f, 1, SVC, "Echo", "hello", 0);
    expect_resp(f, 1, 0, "", "hello");
}

/* Empty success: a zero-length Response frame, byte-exact. */
static void test_empty_success_is_zero_length(void **state)
{
    struct fixture *f = *state;
    send_req(f, 5, SVC, "Echo", NULL, 0);
    struct tpeer_frame fr;
    assert_true(tpeer_read_frame(&f->loop, f->fd, &fr));
    assert_int_equal(fr.length, 0);
    assert_int_equal(fr.stream_id, 5);
    assert_int_equal(fr.type, 2);
    assert_int_equal(fr.flags, 0);
}

static void test_error_status(void **state)
{
    struct fixture *f = *state;
    send_req(f, 1, SVC, "Fail", NULL, 0);
    expect_resp(f, 1, 5, "thing x not found", "");
}

/* A request written one byte at a time, the loop running in between. */
static void test_partial_reads(void **state)
{
    struct fixture *f = *state;
    uint8_t *frame;
    size_t len;
    assert_int_equal(ttrpc_request_frame(3, SVC, "Echo", (const uint8_t *)"abc", 3, 0, NULL, 0,
                                         &frame, &len, NULL),
                     0);
    for (size_t i = 0; i < len; i++) {
        assert_true(tpeer_write(&f->loop, f->fd, frame + i, 1));
        tpeer_pump(&f->loop);
    }
    free(frame);
    expect_resp(f, 3, 0, "", "abc");
}

/* Several requests in one write produce all their responses. */
static void test_coalesced_requests(void **state)
{
    struct fixture *f = *state;
    uint8_t buf[1024];
    size_t n = 0;
    for (uint32_t id = 1; id <= 7; id += 2) {
        uint8_t *frame;
        size_t len;
        char payload[8];
        snprintf(payload, sizeof(payload), "p%u", id);
        assert_int_equal(ttrpc_request_frame(id, SVC, "Echo", (const uint8_t *)payload,
                                             strlen(payload), 0, NULL, 0, &frame, &len, NULL),
                         0);
        memcpy(buf + n, frame, len);
        n += len;
        free(frame);
    }
    assert_true(tpeer_write(&f->loop, f->fd, buf, n));
    expect_resp(f, 1, 0, "", "p1");
    expect_resp(f, 3, 0, "", "p3");
    expect_resp(f, 5, 0, "", "p5");
    expect_resp(f, 7, 0, "", "p7");
}

static void test_even_stream_id(void **state)
{
    struct fixture *f = *state;
    send_req(f, 2, SVC, "Echo", "x", 0);
    struct tpeer_frame fr;
    assert_true(tpeer_read_frame(&f->loop, f->fd, &fr));
    assert_int_equal(fr.stream_id, 2);
    const char *msg = "StreamID must be odd for client initiated streams";
    const uint8_t prefix[] = {0x0a, 0x35, 0x08, 0x03, 0x12, 0x31};
    assert_int_equal(fr.length, sizeof(prefix) + strlen(msg));
    assert_memory_equal(fr.body, prefix, sizeof(prefix));
    assert_memory_equal(fr.body + sizeof(prefix), msg, strlen(msg));
    free(fr.body);
    /* Connection kept. */
    send_req(f, 3, SVC, "Echo", "ok", 0);
    expect_resp(f, 3, 0, "", "ok");
}

static void test_unknown_service_and_method(void **state)
{
    struct fixture *f = *state;
    send_req(f, 1, "no.such.Service", "Echo", NULL, 0);
    expect_resp(f, 1, 12, "service no.such.Service", "");
    send_req(f, 3, SVC, "Nope", NULL, 0);
    struct tpeer_frame fr;
    assert_true(tpeer_read_frame(&f->loop, f->fd, &fr));
    const uint8_t body[] = {0x0a, 0x0f, 0x08, 0x0c, 0x12, 0x0b, 'm', 'e', 't',
                            'h',  'o',  'd',  ' ',  'N',  'o',  'p', 'e'};
    assert_int_equal(fr.stream_id, 3);
    assert_int_equal(fr.length, sizeof(body));
    assert_memory_equal(fr.body, body, sizeof(body));
    free(fr.body);
}

static void test_undecodable_request(void **state)
{
    struct fixture *f = *state;
    const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x01, 0x02};
    assert_true(tpeer_write_frame(&f->loop, f->fd, 9, 1, garbage, sizeof(garbage)));
    int code = -1;
    char *msg = NULL;
    assert_int_equal(tpeer_read_response(&f->loop, f->fd, &code, &msg, NULL, NULL), 9);
    assert_int_equal(code, 3);
    assert_true(strncmp(msg, "unmarshal request error: ", 25) == 0);
    free(msg);
    send_req(f, 11, SVC, "Echo", "still", 0);
    expect_resp(f, 11, 0, "", "still");
}

/* Non-Request frame types are ignored; the connection goes on. */
static void test_other_frame_types_ignored(void **state)
{
    struct fixture *f = *state;
    assert_true(tpeer_write_frame(&f->loop, f->fd, 1, 2, "xyz", 3));
    assert_true(tpeer_write_frame(&f->loop, f->fd, 3, 3, NULL, 0));
    assert_true(tpeer_write_frame(&f->loop, f->fd, 5, 0x7f, "\x01", 1));
    send_req(f, 7, SVC, "Echo", "after", 0);
    expect_resp(f, 7, 0, "", "after");
}

/* Garbage bytes that happen to form a small frame do not kill the server. */
static void test_garbage_bytes(void **state)
{
    struct fixture *f = *state;
    const uint8_t junk[] = {0, 0, 0, 4, 0, 0, 0, 13, 1, 0xff, 0xde, 0xad, 0xbe, 0xef};
    assert_true(tpeer_write(&f->loop, f->fd, junk, sizeof(junk)));
    int code = -1;
    assert_int_equal(tpeer_read_response(&f->loop, f->fd, &code, NULL, NULL, NULL), 13);
    assert_int_equal(code, 3);
    send_req(f, 15, SVC, "Echo", "alive", 0);
    expect_resp(f, 15, 0, "", "alive");
}

static void test_oversized_request(void **state)
{
    struct fixture *f = *state;
    size_t big = TTRPC_MAX_MESSAGE + 100;
    uint8_t *body = malloc(big);
    memset(body, 0x0a, big);
    assert_true(tpeer_write_frame(&f->loop, f->fd, 17, 1, body, big));
    free(body);
    int code = -1;
    char *msg = NULL;
    assert_int_equal(tpeer_read_response(&f->loop, f->fd, &code, &msg, NULL, NULL), 17);
    assert_int_equal(code, 8);
    assert_non_null(strstr(msg, "exceed maximum message size"));
    free(msg);
    send_req(f, 19, SVC, "Echo", "next", 0);
    expect_resp(f, 19, 0, "", "next");
}

/* A reply bigger than 4 MiB becomes ResourceExhausted, not a huge frame. */
static void test_oversized_reply(void **state)
{
    struct fixture *f = *state;
    char n[32];
    snprintf(n, sizeof(n), "%u", TTRPC_MAX_MESSAGE);
    send_req(f, 1, SVC, "Big", n, 0);
    struct tpeer_frame fr;
    assert_true(tpeer_read_frame(&f->loop, f->fd, &fr));
    assert_int_equal(fr.stream_id, 1);
    assert_true(fr.length < 200);
    free(fr.body);
    snprintf(n, sizeof(n), "%u", TTRPC_MAX_MESSAGE - 16);
    send_req(f, 3, SVC, "Big", n, 0);
    int code = -1;
    uint8_t *payload = NULL;
    size_t len = 0;
    assert_int_equal(tpeer_read_response(&f->loop, f->fd, &code, NULL, &payload, &len), 3);
    assert_int_equal(code, 0);
    assert_int_equal(len, TTRPC_MAX_MESSAGE - 16);
    assert_int_equal(payload[len - 1], (uint8_t)((len - 1) * 7 + len));
    free(payload);
}

/* A pending call never delays later ones; completion order is free. */
static void test_out_of_order_completion(void **state)
{
    struct fixture *f = *state;
    send_req(f, 1, SVC, "Hold", NULL, 0);
    send_req(f, 3, SVC, "Hold", NULL, 0);
    send_req(f, 5, SVC, "Echo", "fast", 0);
    expect_resp(f, 5, 0, "", "fast");
    assert_true(tpeer_pump_until_count(&f->loop, &f->n_held, 2, TPEER_TIMEOUT_MS));
    ttrpc_call_reply(f->held[1], (const uint8_t *)"second", 6);
    expect_resp(f, 3, 0, "", "second");
    ttrpc_call_fail(f->held[0], 9, "first failed");
    expect_resp(f, 1, 9, "first failed", "");
    f->n_held = 0;
    assert_int_equal(f->cancelled, 0);
}

static void test_metadata_and_timeout(void **state)
{
    struct fixture *f = *state;
    const struct ttrpc_metadata md[] = {{"containerd-namespace-ttrpc", "ns1"}, {"a", "b"}};
    uint8_t *frame;
    size_t len;
    assert_int_equal(ttrpc_request_frame(1, SVC, "Meta", NULL, 0, 0, md, 2, &frame, &len, NULL), 0);
    assert_true(tpeer_write(&f->loop, f->fd, frame, len));
    free(frame);
    expect_resp(f, 1, 0, "", "containerd-namespace-ttrpc=ns1;a=b;ns1");
    send_req(f, 3, SVC, "Hold", NULL, 123456789012LL);
    assert_true(tpeer_pump_until_count(&f->loop, &f->n_held, 1, TPEER_TIMEOUT_MS));
    assert_int_equal(f->last_timeout, 123456789012LL);
    finish_held(f);
    expect_resp(f, 3, 0, "", "");
}

/* The deadline answers DeadlineExceeded; the late reply is dropped. */
static void test_deadline(void **state)
{
    struct fixture *f = *state;
    send_req(f, 1, SVC, "Hold", NULL, 30 * 1000000LL);
    expect_resp(f, 1, 4, "context deadline exceeded", "");
    assert_int_equal(f->n_held, 1);
    assert_int_equal(f->cancelled, 1);
    assert_true(ttrpc_call_cancelled(f->held[0]));
    ttrpc_call_reply(f->held[0], (const uint8_t *)"late", 4);
    f->n_held = 0;
    send_req(f, 3, SVC, "Echo", "next", 0);
    expect_resp(f, 3, 0, "", "next");
}

/* Connection loss cancels calls in flight; late replies are safe no-ops and
 * the server keeps serving new connections. */
static void test_connection_loss(void **state)
{
    struct fixture *f = *state;
    send_req(f, 1, SVC, "Hold", NULL, 0);
    send_req(f, 3, SVC, "Hold", NULL, 5000 * 1000000LL);
    assert_true(tpeer_pump_until_count(&f->loop, &f->n_held, 2, TPEER_TIMEOUT_MS));
    close(f->fd);
    f->fd = -1;
    assert_true(tpeer_pump_until_count(&f->loop, &f->cancelled, 2, TPEER_TIMEOUT_MS));
    assert_true(ttrpc_call_cancelled(f->held[0]));
    assert_true(ttrpc_call_cancelled(f->held[1]));
    ttrpc_call_reply(f->held[0], (const uint8_t *)"late", 4);
    ttrpc_call_fail(f->held[1], 13, "late failure");
    f->n_held = 0;
    f->fd = tpeer_connect(f->path);
    assert_true(f->fd >= 0);
    send_req(f, 1, SVC, "Echo", "reconnected", 0);
    expect_resp(f, 1, 0, "", "reconnected");
}

/* Cancel callbacks that finish their call at once, from a deadline and from
 * connection loss (ASan checks nothing is used after free or leaked). */
static void test_cancel_callback_finishes_call(void **state)
{
    struct fixture *f = *state;
    send_req(f, 1, SVC, "FinishOnCancel", NULL, 20 * 1000000LL);
    expect_resp(f, 1, 4, "context deadline exceeded", "");
    assert_int_equal(f->cancelled, 1);
    send_req(f, 3, SVC, "FinishOnCancel", NULL, 0);
    send_req(f, 5, SVC, "FinishOnCancel", NULL, 60000 * 1000000LL);
    send_req(f, 7, SVC, "Echo", "sync", 0);
    expect_resp(f, 7, 0, "", "sync");
    close(f->fd);
    f->fd = -1;
    assert_true(tpeer_pump_until_count(&f->loop, &f->cancelled, 3, TPEER_TIMEOUT_MS));
}

/* Many connections at once, each with its own identity. */
static void test_many_connections(void **state)
{
    struct fixture *f = *state;
    int fds[8];
    for (int i = 0; i < 8; i++) {
        /* Retry while the server has no free instance yet (Windows named
         * pipes keep only a few pending accepts). */
        fds[i] = -1;
        for (int tries = 0; fds[i] < 0 && tries < 1000; tries++) {
            fds[i] = tpeer_connect(f->path);
            if (fds[i] < 0)
                tpeer_pump(&f->loop);
        }
        assert_true(fds[i] >= 0);
        assert_true(tpeer_send_request(&f->loop, fds[i], 1, SVC, "Hold", NULL, 0, 0));
    }
    assert_true(tpeer_pump_until_count(&f->loop, &f->n_held, 8, TPEER_TIMEOUT_MS));
    for (int i = 0; i < 8; i++) {
        for (int j = i + 1; j < 8; j++)
            assert_true(f->conn_ids[i] != f->conn_ids[j]);
    }
    for (int i = 7; i >= 0; i--)
        ttrpc_call_reply(f->held[i], (const uint8_t *)"z", 1);
    f->n_held = 0;
    for (int i = 0; i < 8; i++) {
        int code = -1;
        assert_int_equal(tpeer_read_response(&f->loop, fds[i], &code, NULL, NULL, NULL), 1);
        assert_int_equal(code, 0);
        close(fds[i]);
    }
}

/* Responses pile up while the peer does not read: nothing is lost. */
static void test_write_backpressure(void **state)
{
    struct fixture *f = *state;
    const int calls = 24;
    char n[32];
    snprintf(n, sizeof(n), "%u", 1u << 20);
    /* One request per read, so the server must pause and later resume. */
    for (int i = 0; i < calls; i++) {
        send_req(f, (uint32_t)(2 * i + 1), SVC, "Big", n, 0);
        tpeer_pump_for(&f->loop, 5);
    }
    for (int i = 0; i < calls; i++) {
        int code = -1;
        uint8_t *payload = NULL;
        size_t len = 0;
        uint32_t id = tpeer_read_response(&f->loop, f->fd, &code, NULL, &payload, &len);
        assert_int_equal(id, (uint32_t)(2 * i + 1));
        assert_int_equal(code, 0);
        assert_int_equal(len, 1u << 20);
        assert_int_equal(payload[12345], (uint8_t)(12345 * 7 + len));
        free(payload);
    }
    send_req(f, 999, SVC, "Echo", "drained", 0);
    expect_resp(f, 999, 0, "", "drained");
}

/* Shutdown waits for calls in flight, answers them, then closes. */
static void test_graceful_shutdown(void **state)
{
    struct fixture *f = *state;
    send_req(f, 1, SVC, "Hold", NULL, 0);
    assert_true(tpeer_pump_until_count(&f->loop, &f->n_held, 1, TPEER_TIMEOUT_MS));
    ttrpc_server_shutdown(f->server, 10000, on_shutdown_done, f);
    f->server = NULL;
    tpeer_pump_for(&f->loop, 50);
    assert_false(f->shutdown_done);
    /* No longer accepting: the listener is closed and its socket removed. */
    int late = tpeer_connect(f->path);
    if (late >= 0)
        close(late);
    assert_true(late < 0);
#ifndef _WIN32
    assert_int_equal(access(f->path, F_OK), -1);
#endif
    ttrpc_call_reply(f->held[0], (const uint8_t *)"done", 4);
    f->n_held = 0;
    expect_resp(f, 1, 0, "", "done");
    assert_true(tpeer_wait_eof(&f->loop, f->fd, TPEER_TIMEOUT_MS));
    assert_true(tpeer_pump_until(&f->loop, &f->shutdown_done, TPEER_TIMEOUT_MS));
    assert_int_equal(f->cancelled, 0);
}

/* A call never answered is cancelled when the shutdown bound passes. */
static void test_shutdown_timeout(void **state)
{
    struct fixture *f = *state;
    send_req(f, 1, SVC, "Hold", NULL, 0);
    assert_true(tpeer_pump_until_count(&f->loop, &f->n_held, 1, TPEER_TIMEOUT_MS));
    ttrpc_server_shutdown(f->server, 100, on_shutdown_done, f);
    f->server = NULL;
    assert_true(tpeer_pump_until(&f->loop, &f->shutdown_done, TPEER_TIMEOUT_MS));
    assert_int_equal(f->cancelled, 1);
    assert_true(tpeer_wait_eof(&f->loop, f->fd, TPEER_TIMEOUT_MS));
    ttrpc_call_reply(f->held[0], NULL, 0); /* after the server is gone: safe */
    f->n_held = 0;
}

#ifndef _WIN32
/* Unix-only cases: adopting a listening fd, socket file rules, SO_PEERCRED. */

/* Adopting an already listening socket (as `start` passes fd 3). */
static void test_adopt_listening_fd(void **state)
{
    struct fixture *f = *state;
    char path[300];
    snprintf(path, sizeof(path), "%s/adopt.sock", f->dir);
    int lfd = tpeer_listen(path);
    assert_true(lfd >= 0);
    assert_int_equal(ttrpc_server_adopt(f->server, lfd, NULL), 0);
    int fd = tpeer_connect(path);
    assert_true(fd >= 0);
    assert_true(tpeer_send_request(&f->loop, fd, 1, SVC, "Echo", "adopted", 7, 0));
    int code = -1;
    uint8_t *payload = NULL;
    size_t len = 0;
    assert_int_equal(tpeer_read_response(&f->loop, fd, &code, NULL, &payload, &len), 1);
    assert_int_equal(code, 0);
    assert_memory_equal(payload, "adopted", 7);
    free(payload);
    close(fd);
}

/* Socket mode 0600; a stale socket is replaced, a live one is refused. */
static void test_listen_path_rules(void **state)
{
    struct fixture *f = *state;
    struct stat st;
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    char stale[300];
    snprintf(stale, sizeof(stale), "%s/stale.sock", f->dir);
    int lfd = tpeer_listen(stale);
    assert_true(lfd >= 0);
    close(lfd); /* leaves the socket file behind, nobody listening */
    assert_int_equal(ttrpc_server_listen(f->server, stale, NULL), 0);
    int fd = tpeer_connect(stale);
    assert_true(fd >= 0);
    close(fd);

    shim_error_t *err = NULL;
    assert_int_equal(ttrpc_server_listen(f->server, f->path, &err), -1);
    assert_non_null(err);
    assert_non_null(strstr(err->msg, "in use"));
    error_free(err);

    char regular[300];
    snprintf(regular, sizeof(regular), "%s/file", f->dir);
    FILE *fp = fopen(regular, "w");
    fclose(fp);
    err = NULL;
    assert_int_equal(ttrpc_server_listen(f->server, regular, &err), -1);
    error_free(err);

    char longpath[200];
    memset(longpath, 'a', sizeof(longpath) - 1);
    longpath[0] = '/';
    longpath[sizeof(longpath) - 1] = '\0';
    err = NULL;
    assert_int_equal(ttrpc_server_listen(f->server, longpath, &err), -1);
    assert_int_equal(err->code, 3);
    error_free(err);
}

/* A child under another uid/gid connects and sends a request; the server
 * (require_same_uid) drops the connection unanswered. Needs root. */
static void test_peer_credentials_checked(void **state)
{
    struct fixture *f = *state;
    if (geteuid() != 0)
        skip();
    assert_int_equal(chmod(f->dir, 0711), 0);
    assert_int_equal(chmod(f->path, 0666), 0);
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(ready[0]);
        if (setgid(65534) < 0 || setuid(65534) < 0)
            _exit(3);
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un addr = {.sun_family = AF_UNIX};
        strcpy(addr.sun_path, f->path);
        if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
            _exit(4);
        uint8_t *frame;
        size_t len;
        if (ttrpc_request_frame(1, SVC, "Echo", (const uint8_t *)"x", 1, 0, NULL, 0, &frame, &len,
                                NULL) < 0)
            _exit(5);
        /* The server may already have dropped us: that is a rejection too. */
        if (send(fd, frame, len, MSG_NOSIGNAL) != (ssize_t)len)
            _exit(errno == EPIPE || errno == ECONNRESET ? 0 : 5);
        struct timeval tv = {.tv_sec = 10};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        uint8_t byte;
        ssize_t n = read(fd, &byte, 1);
        _exit(n == 0 || (n < 0 && errno == ECONNRESET) ? 0 : 6); /* EOF, no response */
    }
    close(ready[1]);
    int status = -1;
    for (int i = 0; i < TPEER_TIMEOUT_MS && waitpid(pid, &status, WNOHANG) == 0; i++)
        tpeer_pump(&f->loop);
    close(ready[0]);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    /* Our own uid is still served. */
    send_req(f, 1, SVC, "Echo", "same user", 0);
    expect_resp(f, 1, 0, "", "same user");
}
#endif /* !_WIN32 */

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_echo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_success_is_zero_length, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_status, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partial_reads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_coalesced_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_even_stream_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_service_and_method, setup, teardown),
        cmocka_unit_test_setup_teardown(test_undecodable_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_frame_types_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversized_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversized_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_out_of_order_completion, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metadata_and_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_loss, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_callback_finishes_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_connections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_backpressure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_graceful_shutdown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shutdown_timeout, setup, teardown),
#ifndef _WIN32
        cmocka_unit_test_setup_teardown(test_adopt_listening_fd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_listen_path_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peer_credentials_checked, setup, teardown),
#endif
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
