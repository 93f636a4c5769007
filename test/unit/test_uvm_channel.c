/* uvm/channel_listen.c (the "host listens, guest dials" channel that the
 * Windows hvsock channel is made of) over a real transport: the unix-dir
 * transport (one Unix socket per port). Checks the bridge hand-over in both
 * orders (guest first / connect first), the entropy and log ports, and close
 * with a hand-over pending. Linux only (the unix-dir transport); the Windows
 * path is test_win_uvm. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#ifndef _WIN32

#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "gcs/bridge_msg.h"
#include "gcs/transport.h"
#include "uvm/channel.h"

#define WAIT_MS 10000

struct env {
    uv_loop_t loop;
    char dir[64];
    struct uvm_channel *ch;
    int ready;
    uv_stream_t *bridge;
    struct gcs_transport *stdio;
    int ready_code;
    /* guest side */
    uv_pipe_t bridge_pipe, entropy_pipe, log_pipe;
    uv_connect_t bridge_req, entropy_req, log_req;
    int connected;
    size_t entropy_bytes;
    int entropy_eof;
};

static struct env *E;

static int setup(void **state)
{
    E = calloc(1, sizeof(*E));
    if (!E || uv_loop_init(&E->loop) != 0)
        return -1;
    snprintf(E->dir, sizeof(E->dir), "/tmp/uvm-chan-XXXXXX");
    if (!mkdtemp(E->dir))
        return -1;
    *state = E;
    return 0;
}

static void walk_close(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static int teardown(void **state)
{
    (void)state;
    if (E->ch)
        E->ch->ops->close(E->ch);
    if (E->bridge)
        gcs_stream_close(E->bridge);
    uv_walk(&E->loop, walk_close, NULL);
    uv_run(&E->loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&E->loop);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", E->dir);
    if (system(cmd) != 0)
        rc = -1;
    free(E);
    return rc;
}

static void run_until(const int *counter, int want)
{
    uint64_t deadline = uv_now(&E->loop) + WAIT_MS;
    while (*counter < want && uv_now(&E->loop) < deadline) {
        uv_run(&E->loop, UV_RUN_NOWAIT);
        usleep(1000);
        uv_update_time(&E->loop);
    }
    assert_int_equal(*counter, want);
}

static void on_ready(void *opaque, uv_stream_t *bridge, struct gcs_transport *stdio,
                     const shim_error_t *err)
{
    assert_ptr_equal(opaque, E);
    E->ready++;
    E->bridge = bridge;
    E->stdio = stdio;
    E->ready_code = err ? err->code : RPC_OK;
}

static void on_guest_connected(uv_connect_t *req, int status)
{
    (void)req;
    assert_int_equal(status, 0);
    E->connected++;
}

static void guest_dial(uv_pipe_t *p, uv_connect_t *req, uint32_t port)
{
    char *path = gcs_transport_unix_dir_path(E->dir, port);
    uv_pipe_init(&E->loop, p, 0);
    uv_pipe_connect(req, p, path, on_guest_connected);
    free(path);
}

static void make_channel(void)
{
    struct gcs_transport *t = NULL;
    assert_int_equal(gcs_transport_unix_dir_new(&E->loop, E->dir, &t, NULL), 0);
    struct uvm_channel_listen_options o = {.entropy_port = 1, .log_port = 109};
    assert_int_equal(uvm_channel_listen_new(&E->loop, t, &o, &E->ch, NULL), 0);
    assert_int_equal(E->ch->ops->prepare(E->ch, NULL, NULL), 0);
}

static void alloc_buf(uv_handle_t *h, size_t s, uv_buf_t *b)
{
    (void)h;
    b->base = malloc(s);
    b->len = s;
}

static void entropy_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    if (n > 0)
        E->entropy_bytes += (size_t)n;
    if (n < 0) {
        E->entropy_eof = 1;
        uv_read_stop(s);
    }
    free(b->base);
}

static void test_guest_first(void **state)
{
    (void)state;
    make_channel();
    /* Listening before the start: the guest may dial at once. */
    guest_dial(&E->bridge_pipe, &E->bridge_req, GCS_BRIDGE_PORT);
    guest_dial(&E->entropy_pipe, &E->entropy_req, 1);
    guest_dial(&E->log_pipe, &E->log_req, 109);
    run_until(&E->connected, 3);
    uv_run(&E->loop, UV_RUN_NOWAIT); /* the accepts */
    assert_int_equal(E->ch->ops->connect(E->ch, NULL, on_ready, E, NULL), 0);
    assert_int_equal(E->ready, 0); /* never synchronous */
    run_until(&E->ready, 1);
    assert_int_equal(E->ready_code, RPC_OK);
    assert_non_null(E->bridge);
    assert_non_null(E->stdio);
    /* The bridge stream works both ways. */
    uv_buf_t b = uv_buf_init("ping", 4);
    assert_int_equal(uv_try_write((uv_stream_t *)&E->bridge_pipe, &b, 1), 4);
    /* Entropy: 512 random bytes, then EOF. */
    assert_int_equal(uv_read_start((uv_stream_t *)&E->entropy_pipe, alloc_buf, entropy_read), 0);
    run_until(&E->entropy_eof, 1);
    assert_int_equal(E->entropy_bytes, 512);
    /* Guest log lines are read (and logged) without trouble, partial lines too. */
    uv_buf_t l = uv_buf_init("line one\nline two\r\npartial", 26);
    assert_int_equal(uv_try_write((uv_stream_t *)&E->log_pipe, &l, 1), 26);
    for (int i = 0; i < 20; i++)
        uv_run(&E->loop, UV_RUN_NOWAIT);
    /* Stdio listens on the same transport. */
    struct gcs_listener *sl = NULL;
    shim_error_t *err = NULL;
    assert_int_equal(gcs_transport_listen(E->stdio, 0x40000001u, NULL, NULL, &sl, &err), 0);
    gcs_listener_close(sl);
}

static void test_connect_first(void **state)
{
    (void)state;
    make_channel();
    assert_int_equal(E->ch->ops->connect(E->ch, NULL, on_ready, E, NULL), 0);
    for (int i = 0; i < 10; i++)
        uv_run(&E->loop, UV_RUN_NOWAIT);
    assert_int_equal(E->ready, 0);
    guest_dial(&E->bridge_pipe, &E->bridge_req, GCS_BRIDGE_PORT);
    run_until(&E->ready, 1);
    assert_int_equal(E->ready_code, RPC_OK);
    /* A second guest connection on the bridge port finds nobody listening. */
    char *path = gcs_transport_unix_dir_path(E->dir, GCS_BRIDGE_PORT);
    struct stat st;
    bool gone = stat(path, &st) != 0;
    free(path);
    assert_true(gone);
}

static void test_close_with_bridge_pending(void **state)
{
    (void)state;
    make_channel();
    guest_dial(&E->bridge_pipe, &E->bridge_req, GCS_BRIDGE_PORT);
    run_until(&E->connected, 1);
    uv_run(&E->loop, UV_RUN_NOWAIT);
    assert_int_equal(E->ch->ops->connect(E->ch, NULL, on_ready, E, NULL), 0);
    E->ch->ops->close(E->ch); /* before the deferred hand-over ran */
    E->ch = NULL;
    for (int i = 0; i < 20; i++)
        uv_run(&E->loop, UV_RUN_NOWAIT);
    assert_int_equal(E->ready, 0);
}

static void test_connect_without_prepare(void **state)
{
    (void)state;
    struct gcs_transport *t = NULL;
    assert_int_equal(gcs_transport_unix_dir_new(&E->loop, E->dir, &t, NULL), 0);
    assert_int_equal(uvm_channel_listen_new(&E->loop, t, NULL, &E->ch, NULL), 0);
    shim_error_t *err = NULL;
    assert_int_equal(E->ch->ops->connect(E->ch, NULL, on_ready, E, &err), -1);
    assert_int_equal(err->code, RPC_FAILED_PRECONDITION);
    error_free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_guest_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_with_bridge_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_without_prepare, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#else

static void test_unix_only(void **state)
{
    (void)state;
    skip(); /* the unix-dir transport; the Windows path is test_win_uvm */
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_unix_only)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#endif
