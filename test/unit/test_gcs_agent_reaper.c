/* Guest agent child reaping: libuv children and foreign children (forked
 * directly, or orphans adopted as a subreaper) are each reaped by the right
 * party with the right status; runtime invocations report exit code, captured
 * output and the runtime's logged error (with a fake runtime script). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "gcs/guest/exitcode.h"
#include "gcs/guest/reaper.h"
#include "gcs/guest/runtime.h"

struct exit_record {
    int calls;
    int pid;
    int status;
};

static void on_exit_record(void *data, int pid, int status)
{
    struct exit_record *r = data;
    r->calls++;
    r->pid = pid;
    r->status = status;
}

static void on_timeout(uv_timer_t *t)
{
    (void)t;
    fail_msg("timed out waiting for children");
}

/* Runs the loop until all records have been called (bounded by a timer). */
static void run_until(uv_loop_t *loop, struct exit_record *recs, int n)
{
    uv_timer_t timer;
    uv_timer_init(loop, &timer);
    uv_timer_start(&timer, on_timeout, 20000, 0);
    for (;;) {
        int done = 0;
        for (int i = 0; i < n; i++)
            done += recs[i].calls > 0;
        if (done == n)
            break;
        uv_run(loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&timer, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
}

static int spawn_sh(struct gcs_reaper *r, const char *script, struct exit_record *rec)
{
    char *args[] = {"/bin/sh", "-c", (char *)script, NULL};
    uv_process_options_t o = {0};
    o.file = args[0];
    o.args = args;
    return gcs_reaper_spawn(r, &o, on_exit_record, rec, NULL);
}

static void test_mixed_children(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct gcs_reaper *r = NULL;
    assert_int_equal(gcs_reaper_new(&loop, &r, NULL), 0);
    struct exit_record recs[4] = {0};

    /* A libuv child exiting at about the same time as a foreign one. */
    int uv_pid = spawn_sh(r, "exit 3", &recs[0]);
    assert_true(uv_pid > 0);
    pid_t foreign = fork();
    if (foreign == 0)
        _exit(5);
    /* It may already be gone: then the status comes back at once. */
    if (gcs_reaper_watch(r, foreign, on_exit_record, &recs[1], &recs[1].status) == 1) {
        recs[1].calls = 1;
        recs[1].pid = foreign;
    }
    int uv_pid2 = spawn_sh(r, "kill -TERM $$", &recs[2]);
    assert_true(uv_pid2 > 0);

    /* An orphan: its parent exits at once, we adopt it as subreaper. */
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t parent = fork();
    if (parent == 0) {
        pid_t orphan = fork();
        if (orphan == 0) {
            usleep(200000);
            _exit(9);
        }
        (void)!write(fds[1], &orphan, sizeof(orphan));
        _exit(0);
    }
    pid_t orphan = 0;
    assert_int_equal(read(fds[0], &orphan, sizeof(orphan)), sizeof(orphan));
    close(fds[0]);
    close(fds[1]);
    assert_int_equal(gcs_reaper_watch(r, orphan, on_exit_record, &recs[3], &recs[3].status), 0);

    run_until(&loop, recs, 4);
    assert_int_equal(recs[0].pid, uv_pid);
    assert_int_equal(gcs_exit_code_container(recs[0].status), 3);
    assert_int_equal(gcs_exit_code_container(recs[1].status), 5);
    assert_int_equal(gcs_exit_code_container(recs[2].status), 128 + 15);
    assert_int_equal(recs[3].pid, orphan);
    assert_int_equal(gcs_exit_code_container(recs[3].status), 9);
    for (int i = 0; i < 4; i++)
        assert_int_equal(recs[i].calls, 1);
    /* The intermediate parent was reaped as an unwatched child. */
    assert_int_equal(waitpid(parent, NULL, WNOHANG), -1);
    assert_int_equal(gcs_reaper_live_count(r), 0);
    gcs_reaper_close(r);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* A child that dies before anyone watches it is remembered. */
static void test_watch_after_exit(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct gcs_reaper *r = NULL;
    assert_int_equal(gcs_reaper_new(&loop, &r, NULL), 0);
    pid_t early = fork();
    if (early == 0)
        _exit(4);
    /* Let it die and be reaped by a scan as "unclaimed" (a libuv child's exit
     * drives the loop meanwhile). */
    struct exit_record rec = {0};
    assert_true(spawn_sh(r, "sleep 0.3", &rec) > 0);
    run_until(&loop, &rec, 1);
    gcs_reaper_scan(r);
    struct exit_record late = {0};
    int status = -1;
    assert_int_equal(gcs_reaper_watch(r, early, on_exit_record, &late, &status), 1);
    assert_int_equal(gcs_exit_code_container(status), 4);
    assert_int_equal(late.calls, 0);
    gcs_reaper_close(r);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_spawn_failure(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct gcs_reaper *r = NULL;
    assert_int_equal(gcs_reaper_new(&loop, &r, NULL), 0);
    char *args[] = {"/nonexistent/binary", NULL};
    uv_process_options_t o = {.file = args[0], .args = args};
    shim_error_t *err = NULL;
    assert_int_equal(gcs_reaper_spawn(r, &o, on_exit_record, NULL, &err), -1);
    assert_non_null(strstr(err->msg, "/nonexistent/binary"));
    error_free(err);
    gcs_reaper_close(r);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* ---- runtime invocations with a fake runtime ------------------------------------------ */

struct rt_result {
    int calls;
    int exit_code;
    char error[256];
    char output[256];
};

static void on_rt(void *data, const struct gcs_runtime_result *res)
{
    struct rt_result *r = data;
    r->calls++;
    r->exit_code = res->exit_code;
    snprintf(r->error, sizeof(r->error), "%s", res->error ? res->error : "");
    snprintf(r->output, sizeof(r->output), "%s", res->output ? res->output : "(null)");
}

static void run_rt(uv_loop_t *loop, struct rt_result *r)
{
    while (r->calls == 0)
        uv_run(loop, UV_RUN_ONCE);
}

static void test_runtime_calls(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_gcs_agent_rt.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char script[256];
    snprintf(script, sizeof(script), "%s/fake-runtime", dir);
    FILE *f = fopen(script, "w");
    assert_non_null(f);
    /* Echo the arguments; "fail" logs two JSON records and exits 1. */
    fputs("#!/bin/sh\n"
          "log=$4\n"
          "echo \"$@\"\n"
          "case \"$*\" in *fail*)\n"
          "  echo '{\"level\":\"warning\",\"msg\":\"warned\",\"time\":\"t\"}' >>\"$log\"\n"
          "  echo '{\"level\":\"error\",\"msg\":\"it broke\",\"time\":\"t\"}' >>\"$log\"\n"
          "  exit 1;; esac\n"
          "exit 0\n",
          f);
    fclose(f);
    chmod(script, 0755);

    uv_loop_t loop;
    uv_loop_init(&loop);
    struct gcs_reaper *reaper = NULL;
    assert_int_equal(gcs_reaper_new(&loop, &reaper, NULL), 0);
    struct gcs_runtime rt = {.loop = &loop,
                             .reaper = reaper,
                             .path = script,
                             .root = "/R",
                             .log_dir = dir,
                             .cgroup_manager = "disabled"};
    struct gcs_runtime_stdio capture = {.fd = {-1, -1, -1}, .capture_stdout = true};

    struct rt_result ok = {0};
    const char *a1[] = {"state", "c1", NULL};
    assert_int_equal(gcs_runtime_run(&rt, a1, &capture, on_rt, &ok, NULL), 0);
    run_rt(&loop, &ok);
    assert_int_equal(ok.exit_code, 0);
    assert_string_equal(ok.error, "");
    assert_non_null(strstr(ok.output, "--root /R --log "));
    assert_non_null(strstr(ok.output, "--log-format json --cgroup-manager disabled state c1"));

    struct rt_result bad = {0};
    const char *a2[] = {"fail", NULL};
    assert_int_equal(gcs_runtime_run(&rt, a2, NULL, on_rt, &bad, NULL), 0);
    run_rt(&loop, &bad);
    assert_int_equal(bad.exit_code, 1);
    assert_string_equal(bad.error, "it broke");
    assert_string_equal(bad.output, "(null)");

    gcs_reaper_close(reaper);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    /* Per-call logs are removed. */
    unlink(script);
    assert_int_equal(rmdir(dir), 0);
}

static void test_log_error(void **state)
{
    (void)state;
    char *m = gcs_runtime_log_error("{\"level\":\"error\",\"msg\":\"first\"}\n"
                                    "{\"level\":\"info\",\"msg\":\"later\"}\n");
    assert_string_equal(m, "first");
    free(m);
    m = gcs_runtime_log_error("plain text failure\n");
    assert_string_equal(m, "plain text failure");
    free(m);
    m = gcs_runtime_log_error("{\"level\":\"info\",\"msg\":\"only info\"}");
    assert_string_equal(m, "only info");
    free(m);
    assert_null(gcs_runtime_log_error(""));
    assert_null(gcs_runtime_log_error(NULL));
}

int main(void)
{
    /* Orphans come to us, as they do to the agent. */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mixed_children), cmocka_unit_test(test_watch_after_exit),
        cmocka_unit_test(test_spawn_failure),  cmocka_unit_test(test_runtime_calls),
        cmocka_unit_test(test_log_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
