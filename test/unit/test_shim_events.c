/* The event publisher against a real ttrpc server on one uv loop: bare type
 * names, namespace, order, queueing while containerd is away, delivery after
 * it comes back, the bounded queue, and close with a flush. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "containerd/events/task.pb-c.h"
#include "containerd/services/events/ttrpc/v1/events.pb-c.h"
#include "shim/events.h"
#include "ttrpc/ttrpc.h"

#define MAX_SEEN 64

struct fixture {
    uv_loop_t loop;
    char dir[64];
    char path[128];
    ttrpc_server_t *server;
    struct shim_events *ev;
    char topics[MAX_SEEN][32];
    char ids[MAX_SEEN][32];
    char ns[32];
    char type_url[64];
    int seen;
    bool closed;
};

static void handle_forward(ttrpc_call_t *call)
{
    struct fixture *f = ttrpc_call_user_data(call);
    Containerd__Services__Events__Ttrpc__V1__ForwardRequest *req =
        (Containerd__Services__Events__Ttrpc__V1__ForwardRequest *)ttrpc_call_unpack(
            call, &containerd__services__events__ttrpc__v1__forward_request__descriptor, NULL);
    assert_non_null(req);
    assert_non_null(req->envelope);
    assert_non_null(req->envelope->timestamp);
    assert_true(req->envelope->timestamp->seconds > 0);
    Containerd__Events__TaskExit *exit = containerd__events__task_exit__unpack(
        NULL, req->envelope->event->value.len, req->envelope->event->value.data);
    assert_non_null(exit);
    if (f->seen < MAX_SEEN) {
        snprintf(f->topics[f->seen], sizeof(f->topics[0]), "%s", req->envelope->topic);
        snprintf(f->ids[f->seen], sizeof(f->ids[0]), "%s", exit->id);
    }
    snprintf(f->ns, sizeof(f->ns), "%s", req->envelope->namespace_);
    snprintf(f->type_url, sizeof(f->type_url), "%s", req->envelope->event->type_url);
    f->seen++;
    containerd__events__task_exit__free_unpacked(exit, NULL);
    containerd__services__events__ttrpc__v1__forward_request__free_unpacked(req, NULL);
    ttrpc_call_reply(call, NULL, 0);
}

static const struct ttrpc_method methods[] = {{"Forward", handle_forward}};

static void start_server(struct fixture *f)
{
    static struct ttrpc_service svc; /* must outlive the server; one at a time */
    svc.name = "containerd.services.events.ttrpc.v1.Events";
    svc.methods = methods;
    svc.n_methods = 1;
    svc.user_data = f;
    assert_int_equal(ttrpc_server_new(&f->loop, NULL, &f->server, NULL), 0);
    assert_int_equal(ttrpc_server_register(f->server, &svc, NULL), 0);
    assert_int_equal(ttrpc_server_listen(f->server, f->path, NULL), 0);
}

static void server_done(void *arg)
{
    *(bool *)arg = true;
}

static void stop_server(struct fixture *f)
{
    bool done = false;
    ttrpc_server_shutdown(f->server, 0, server_done, &done);
    while (!done)
        uv_run(&f->loop, UV_RUN_ONCE);
    f->server = NULL;
}

static void publish_exit(struct fixture *f, const char *id)
{
    Containerd__Events__TaskExit ev = CONTAINERD__EVENTS__TASK_EXIT__INIT;
    ev.container_id = "c1";
    ev.id = (char *)id;
    ev.exit_status = 3;
    shim_events_publish(f->ev, "/tasks/exit", &ev.base);
}

static void run_until_seen(struct fixture *f, int n, int max_ms)
{
    uint64_t deadline = uv_now(&f->loop) + (uint64_t)max_ms;
    while (f->seen < n && uv_now(&f->loop) < deadline) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(1000);
        uv_update_time(&f->loop);
    }
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    uv_loop_init(&f->loop);
#ifdef _WIN32
    /* containerd's ttrpc address is a named pipe on Windows. */
    static int n;
    snprintf(f->path, sizeof(f->path), "\\\\.\\pipe\\test_events-%d-%d", (int)uv_os_getpid(), n++);
#else
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_events.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/ttrpc.sock", f->dir);
#endif
    assert_int_equal(shim_events_new(&f->loop, f->path, "ns1", &f->ev, NULL), 0);
    *state = f;
    return 0;
}

static void closed(void *arg)
{
    ((struct fixture *)arg)->closed = true;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    if (f->ev)
        shim_events_close(f->ev, 100, closed, f);
    while (f->ev && !f->closed)
        uv_run(&f->loop, UV_RUN_ONCE);
    if (f->server)
        stop_server(f);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
#ifndef _WIN32
    unlink(f->path);
    rmdir(f->dir);
#endif
    free(f);
    return 0;
}

static void test_delivers_in_order(void **state)
{
    struct fixture *f = *state;
    start_server(f);
    publish_exit(f, "a");
    publish_exit(f, "b");
    publish_exit(f, "c");
    run_until_seen(f, 3, 5000);
    assert_int_equal(f->seen, 3);
    assert_string_equal(f->ids[0], "a");
    assert_string_equal(f->ids[1], "b");
    assert_string_equal(f->ids[2], "c");
    assert_string_equal(f->topics[0], "/tasks/exit");
    assert_string_equal(f->ns, "ns1");
    assert_string_equal(f->type_url, "containerd.events.TaskExit"); /* bare name */
}

static void test_kept_while_away(void **state)
{
    struct fixture *f = *state;
    publish_exit(f, "early1"); /* nobody listens yet */
    publish_exit(f, "early2");
    for (int i = 0; i < 50; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(shim_events_pending(f->ev), 2);
    start_server(f);
    run_until_seen(f, 2, 10000);
    assert_int_equal(f->seen, 2);
    assert_string_equal(f->ids[0], "early1");
    assert_string_equal(f->ids[1], "early2");
    /* containerd restarts: the next event goes over a new connection */
    stop_server(f);
    publish_exit(f, "late");
    start_server(f);
    run_until_seen(f, 3, 10000);
    assert_int_equal(f->seen, 3);
    assert_string_equal(f->ids[2], "late");
}

static void test_bounded_queue(void **state)
{
    struct fixture *f = *state;
    for (int i = 0; i < SHIM_EVENTS_QUEUE_MAX + 10; i++)
        publish_exit(f, "x");
    assert_true(shim_events_pending(f->ev) <= SHIM_EVENTS_QUEUE_MAX);
}

static void test_close_flushes(void **state)
{
    struct fixture *f = *state;
    start_server(f);
    publish_exit(f, "last");
    shim_events_close(f->ev, 5000, closed, f);
    while (!f->closed)
        uv_run(&f->loop, UV_RUN_ONCE);
    f->ev = NULL;
    assert_int_equal(f->seen, 1);
}

static void test_no_address_drops(void **state)
{
    struct fixture *f = *state;
    struct shim_events *none = NULL;
    assert_int_equal(shim_events_new(&f->loop, NULL, "ns1", &none, NULL), 0);
    publish_exit(f, "ignored");
    Containerd__Events__TaskOOM oom = CONTAINERD__EVENTS__TASK_OOM__INIT;
    shim_events_publish(none, "/tasks/oom", &oom.base);
    assert_int_equal(shim_events_pending(none), 0);
    bool done = false;
    shim_events_close(none, 0, server_done, &done);
    while (!done)
        uv_run(&f->loop, UV_RUN_ONCE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_delivers_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kept_while_away, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bounded_queue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_flushes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_address_drops, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
