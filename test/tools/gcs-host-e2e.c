/* End-to-end test of the host GCS bridge (gcs/guest_connection.h) against the
 * real guest agent ($BIN_DIR/gcs) running real crun containers, plus fault
 * cases against a tiny fake guest (this binary, "peer" mode).
 *
 *   gcs-host-e2e agent  --agent BIN --rootfs DIR --work DIR   all container checks
 *   gcs-host-e2e kill   --agent BIN --rootfs DIR --work DIR   agent killed mid-request
 *   gcs-host-e2e fake MODE                                   fault: a peer sending MODE
 *   gcs-host-e2e peer MODE                                   (internal) the fake guest
 *
 * The bridge runs over the child's stdin+stdout (one socketpair end) and
 * stdio over Unix sockets in <work>/ports. Prints "ok - ..." per check and
 * exits 0 only if every check passed. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "gcs/bridge_frame.h"
#include "gcs/bridge_json.h"
#include "gcs/bridge_msg.h"
#include "gcs/guest_connection.h"
#include "gcs/transport.h"

#define BIG_SIZE (64u * 1024 * 1024)
#define BIG_LINE "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ\n"
#define MAX_PIDS 64

struct e2e {
    uv_loop_t *loop;
    const char *agent, *rootfs, *work, *tag;
    char ports[512], state[512], log_path[512];
    uv_process_t child;
    bool child_running;
    int64_t child_exit;
    int child_signal;
    struct gcs_transport *bridge_transport, *stdio;
    struct gcs_guest_connection *conn;
    bool bridge_closed;
    char bridge_closed_msg[512];
    int notifications;
    char last_notified[128], last_notify_type[64];
    int kill_pids[MAX_PIDS]; /* container inits to kill if the agent cannot */
    int n_kill_pids;
    int failures;
    uint64_t rpc_timeout_ms;
};

/* ---- reporting ----------------------------------------------------------------- */

/* True if pid still runs one of our long sleeps (pids may be reused). */
static bool is_our_sleeper(int pid)
{
    char path[64], cmd[256] = {0};
    snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, cmd, sizeof(cmd) - 1);
    close(fd);
    for (ssize_t i = 0; i < n; i++)
        cmd[i] = cmd[i] ? cmd[i] : ' ';
    return n > 0 && strstr(cmd, "sleep 100000") != NULL;
}

static void cleanup(struct e2e *t)
{
    if (t->child_running)
        uv_process_kill(&t->child, SIGKILL);
    for (int i = 0; i < t->n_kill_pids; i++) {
        if (is_our_sleeper(t->kill_pids[i]))
            kill(t->kill_pids[i], SIGKILL);
    }
}

static void __attribute__((format(printf, 2, 3), noreturn))
fatal(struct e2e *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("FAIL - ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    fflush(stdout);
    cleanup(t);
    exit(1);
}

static void __attribute__((format(printf, 3, 4)))
check(struct e2e *t, bool ok, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("%s - ", ok ? "ok" : "FAIL");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    fflush(stdout);
    if (!ok)
        t->failures++;
}

/* ---- loop helpers ------------------------------------------------------------------ */

static void deadline_fired(uv_timer_t *tm)
{
    *(bool *)tm->data = true;
}

/* Runs the loop until *flag; false on timeout. */
static bool await(struct e2e *t, const bool *flag, double seconds)
{
    bool expired = false;
    uv_timer_t tm;
    uv_timer_init(t->loop, &tm);
    tm.data = &expired;
    uv_timer_start(&tm, deadline_fired, (uint64_t)(seconds * 1000), 0);
    while (!*flag && !expired)
        uv_run(t->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&tm, NULL);
    uv_run(t->loop, UV_RUN_NOWAIT);
    return *flag;
}

static void must_await(struct e2e *t, const bool *flag, double seconds, const char *what)
{
    if (!await(t, flag, seconds))
        fatal(t, "timed out after %.0f s waiting for %s", seconds, what);
}

/* ---- call results --------------------------------------------------------------------- */

struct res {
    bool done;
    int32_t hr;
    int code;
    char msg[1024];
    uint32_t value;
    json_t *json;
    struct gcs_process_io io;
    uint64_t finished_ms;
};

static void res_record(struct res *r, int32_t hr, const shim_error_t *err)
{
    r->done = true;
    r->hr = hr;
    r->code = err ? err->code : RPC_OK;
    snprintf(r->msg, sizeof(r->msg), "%s", err ? err->msg : "");
}

static void on_done(void *o, int32_t hr, const shim_error_t *err)
{
    res_record(o, hr, err);
}

static void on_wait(void *o, int32_t hr, const shim_error_t *err, uint32_t code)
{
    res_record(o, hr, err);
    ((struct res *)o)->value = code;
}

static void on_negotiate(void *o, int32_t hr, const shim_error_t *err,
                         const struct gcs_capabilities *caps)
{
    struct res *r = o;
    res_record(r, hr, err);
    if (caps != NULL)
        r->value = (caps->signal_process_supported ? 1 : 0) |
                   (caps->dump_stacks_supported ? 2 : 0) |
                   (caps->delete_container_state_supported ? 4 : 0) |
                   (caps->runtime_os_type && strcmp(caps->runtime_os_type, "Linux") == 0 ? 8 : 0);
}

static void on_props(void *o, int32_t hr, const shim_error_t *err, const json_t *props)
{
    struct res *r = o;
    res_record(r, hr, err);
    r->json = props ? json_deep_copy(props) : NULL;
}

static void on_raw(void *o, int32_t hr, const shim_error_t *err, const json_t *body)
{
    struct res *r = o;
    res_record(r, hr, err);
    r->json = body ? json_deep_copy(body) : NULL;
}

static void on_stacks(void *o, int32_t hr, const shim_error_t *err, const char *stacks)
{
    res_record(o, hr, err);
    ((struct res *)o)->value = stacks ? (uint32_t)strlen(stacks) : 0;
}

static void on_exec(void *o, int32_t hr, const shim_error_t *err, struct gcs_process_io *io)
{
    struct res *r = o;
    res_record(r, hr, err);
    if (io != NULL)
        r->io = *io;
}

static void on_bridge_closed(void *opaque, const shim_error_t *err)
{
    struct e2e *t = opaque;
    t->bridge_closed = true;
    snprintf(t->bridge_closed_msg, sizeof(t->bridge_closed_msg), "%s", err ? err->msg : "");
}

static void on_container_exit(void *opaque, const struct gcs_container_notification *n)
{
    struct e2e *t = opaque;
    t->notifications++;
    snprintf(t->last_notified, sizeof(t->last_notified), "%s", n->base.container_id);
    snprintf(t->last_notify_type, sizeof(t->last_notify_type), "%s", n->type ? n->type : "");
}

/* Issues a call (the expression must return 0) and waits for its result. */
#define CALL(t, r, seconds, expr)                                                                  \
    do {                                                                                           \
        shim_error_t *call_err_ = NULL;                                                            \
        memset(&(r), 0, sizeof(r));                                                                \
        if ((expr) < 0)                                                                            \
            fatal(t, "%s: %s", #expr, call_err_ ? call_err_->msg : "?");                           \
        must_await(t, &(r).done, seconds, #expr);                                                  \
    } while (0)
#define E_ &call_err_

/* ---- child process ------------------------------------------------------------------------ */

static void child_exited(uv_process_t *p, int64_t status, int sig)
{
    struct e2e *t = p->data;
    t->child_running = false;
    t->child_exit = status;
    t->child_signal = sig;
    uv_close((uv_handle_t *)p, NULL);
}

static void bridge_accepted(void *opaque, uv_stream_t *bridge, const shim_error_t *err)
{
    struct e2e *t = opaque;
    if (err != NULL)
        fatal(t, "bridge accept: %s", err->msg);
    struct gcs_guest_connection_config cfg = {.rpc_timeout_ms = t->rpc_timeout_ms};
    struct gcs_guest_callbacks cbs = {.container_exit = on_container_exit,
                                      .bridge_closed = on_bridge_closed};
    shim_error_t *e = NULL;
    if (gcs_guest_connection_new(t->loop, bridge, t->stdio, &cfg, &cbs, t, &t->conn, &e) < 0)
        fatal(t, "connection: %s", e->msg);
}

/* Starts `argv` with the bridge on its stdin+stdout and connects to it. */
static void session_start(struct e2e *t, char **argv)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        fatal(t, "socketpair: %s", strerror(errno));
    int log_fd = open(t->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0)
        fatal(t, "open %s: %s", t->log_path, strerror(errno));
    uv_stdio_container_t stdio[3] = {
        {.flags = UV_INHERIT_FD, .data.fd = sv[1]},
        {.flags = UV_INHERIT_FD, .data.fd = sv[1]},
        {.flags = UV_INHERIT_FD, .data.fd = log_fd},
    };
    uv_process_options_t opts = {
        .exit_cb = child_exited, .file = argv[0], .args = argv, .stdio = stdio, .stdio_count = 3};
    t->child.data = t;
    int rc = uv_spawn(t->loop, &t->child, &opts);
    close(sv[1]);
    close(log_fd);
    if (rc < 0)
        fatal(t, "spawn %s: %s", argv[0], uv_strerror(rc));
    t->child_running = true;
    shim_error_t *err = NULL;
    if (gcs_transport_fdpair_new(t->loop, sv[0], sv[0], &t->bridge_transport, &err) < 0 ||
        gcs_bridge_accept(t->bridge_transport, 10000, bridge_accepted, t, &err) < 0)
        fatal(t, "bridge: %s", err->msg);
    while (t->conn == NULL)
        uv_run(t->loop, UV_RUN_ONCE);
}

static bool child_gone(struct e2e *t)
{
    return !t->child_running;
}

/* Closes the bridge; the child must exit on its own (agent: on EOF). */
static void session_stop(struct e2e *t, double seconds)
{
    gcs_guest_connection_close(t->conn);
    t->conn = NULL;
    bool gone = false;
    uv_timer_t tm;
    bool expired = false;
    uv_timer_init(t->loop, &tm);
    tm.data = &expired;
    uv_timer_start(&tm, deadline_fired, (uint64_t)(seconds * 1000), 0);
    while (!(gone = child_gone(t)) && !expired)
        uv_run(t->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&tm, NULL);
    if (!gone) {
        check(t, false, "child exits within %.0f s after the bridge closed", seconds);
        uv_process_kill(&t->child, SIGKILL);
        while (t->child_running)
            uv_run(t->loop, UV_RUN_ONCE);
    }
    for (int i = 0; i < 5; i++)
        uv_run(t->loop, UV_RUN_NOWAIT);
    gcs_transport_destroy(t->bridge_transport);
    t->bridge_transport = NULL;
}

/* Container ids carry the run's tag so runs never collide and leftovers
 * (cgroups of a killed agent's container) can be found: e2e-<tag>-<x>. */
static void container_id(struct e2e *t, char *out, size_t size, const char *x)
{
    snprintf(out, size, "e2e-%s-%s", t->tag ? t->tag : "0", x);
}

/* ---- specs and processes --------------------------------------------------------------------- */

static json_t *load_json(struct e2e *t, const char *text)
{
    json_error_t e;
    json_t *v = json_loads(text, 0, &e);
    if (v == NULL)
        fatal(t, "bad JSON in the test: %s", e.text);
    return v;
}

static json_t *oci_process(struct e2e *t, const char *script, bool terminal)
{
    json_t *p = load_json(t, "{\"user\":{\"uid\":0,\"gid\":0},\"cwd\":\"/\","
                             "\"env\":[\"PATH=/usr/sbin:/usr/bin:/sbin:/bin\",\"TERM=xterm\"],"
                             "\"capabilities\":{\"bounding\":[\"CAP_KILL\",\"CAP_CHOWN\"],"
                             "\"effective\":[\"CAP_KILL\",\"CAP_CHOWN\"],"
                             "\"permitted\":[\"CAP_KILL\",\"CAP_CHOWN\"]},"
                             "\"noNewPrivileges\":true}");
    json_object_set_new(p, "args", json_pack("[s,s,s]", "/bin/sh", "-c", script));
    json_object_set_new(p, "terminal", json_boolean(terminal));
    return p;
}

static json_t *oci_spec(struct e2e *t, const char *root, bool readonly, const char *script)
{
    json_t *spec = load_json(
        t, "{\"ociVersion\":\"1.0.2\",\"hostname\":\"e2e\","
           "\"mounts\":["
           "{\"destination\":\"/proc\",\"type\":\"proc\",\"source\":\"proc\"},"
           "{\"destination\":\"/dev\",\"type\":\"tmpfs\",\"source\":\"tmpfs\",\"options\":"
           "[\"nosuid\",\"strictatime\",\"mode=755\",\"size=65536k\"]},"
           "{\"destination\":\"/dev/pts\",\"type\":\"devpts\",\"source\":\"devpts\",\"options\":"
           "[\"nosuid\",\"noexec\",\"newinstance\",\"ptmxmode=0666\",\"mode=0620\"]},"
           "{\"destination\":\"/dev/shm\",\"type\":\"tmpfs\",\"source\":\"shm\",\"options\":"
           "[\"nosuid\",\"noexec\",\"nodev\",\"mode=1777\",\"size=65536k\"]},"
           "{\"destination\":\"/tmp\",\"type\":\"tmpfs\",\"source\":\"tmpfs\",\"options\":"
           "[\"nosuid\",\"nodev\",\"mode=1777\"]},"
           "{\"destination\":\"/sys\",\"type\":\"sysfs\",\"source\":\"sysfs\",\"options\":"
           "[\"nosuid\",\"noexec\",\"nodev\",\"ro\"]}],"
           "\"linux\":{\"namespaces\":[{\"type\":\"pid\"},{\"type\":\"ipc\"},{\"type\":\"uts\"},"
           "{\"type\":\"mount\"},{\"type\":\"network\"}],"
           "\"maskedPaths\":[\"/proc/kcore\",\"/proc/keys\",\"/sys/firmware\"],"
           "\"readonlyPaths\":[\"/proc/sys\",\"/proc/sysrq-trigger\"]}}");
    json_object_set_new(spec, "process", oci_process(t, script, false));
    json_object_set_new(spec, "root", json_pack("{s:s,s:b}", "path", root, "readonly", readonly));
    return spec;
}

struct output {
    char *data; /* first bytes (up to cap) */
    size_t len, cap;
    uint64_t total;
    bool eof;
    int status;
    bool check_pattern; /* compare against BIG_LINE repeated */
    bool pattern_ok;
};

static void output_cb(void *o, const char *data, ssize_t len)
{
    struct output *out = o;
    if (data == NULL) {
        out->eof = true;
        out->status = (int)len;
        return;
    }
    if (out->check_pattern) {
        static const char line[] = BIG_LINE;
        const size_t ll = sizeof(line) - 1;
        for (ssize_t i = 0; i < len && out->pattern_ok; i++)
            out->pattern_ok = data[i] == line[(out->total + (uint64_t)i) % ll];
    }
    size_t room = out->cap - out->len;
    size_t n = (size_t)len < room ? (size_t)len : room;
    memcpy(out->data + out->len, data, n);
    out->len += n;
    out->total += (uint64_t)len;
}

static void output_init(struct output *o)
{
    memset(o, 0, sizeof(*o));
    o->cap = 64 * 1024;
    o->data = calloc(1, o->cap + 1);
    o->pattern_ok = true;
}

static void output_start(struct e2e *t, uv_stream_t *s, struct output *o)
{
    shim_error_t *err = NULL;
    if (s == NULL) {
        o->eof = true;
        return;
    }
    if (gcs_output_start(s, output_cb, o, &err) < 0)
        fatal(t, "output: %s", err->msg);
}

struct proc {
    uint32_t pid;
    struct output out, err;
    uv_stream_t *in;
    struct res wait;
};

/* Exec (init when params is NULL-process) + start readers + send the wait. */
static void proc_start(struct e2e *t, struct proc *p, const char *cid, json_t *params,
                       unsigned stdio, bool record_kill)
{
    struct res r;
    memset(p, 0, sizeof(*p));
    output_init(&p->out);
    output_init(&p->err);
    CALL(t, r, 60, gcs_guest_execute_process(t->conn, cid, params, stdio, on_exec, &r, E_));
    json_decref(params);
    if (r.code != RPC_OK)
        fatal(t, "exec in %s: %s", cid ? cid : "uvm", r.msg);
    p->pid = r.io.pid;
    if (record_kill && t->n_kill_pids < MAX_PIDS)
        t->kill_pids[t->n_kill_pids++] = (int)p->pid;
    p->in = r.io.stdin_stream;
    output_start(t, r.io.stdout_stream, &p->out);
    output_start(t, r.io.stderr_stream, &p->err);
    shim_error_t *err = NULL;
    if (gcs_guest_wait_process(t->conn, cid, p->pid, GCS_WAIT_INFINITE, on_wait, &p->wait, &err) <
        0)
        fatal(t, "wait: %s", err->msg);
}

static void proc_finish(struct e2e *t, struct proc *p, double seconds)
{
    must_await(t, &p->out.eof, seconds, "stdout EOF");
    must_await(t, &p->err.eof, seconds, "stderr EOF");
    must_await(t, &p->wait.done, seconds, "process exit");
}

static void proc_free(struct proc *p)
{
    free(p->out.data);
    free(p->err.data);
}

static json_t *exec_params(struct e2e *t, const char *script, bool terminal)
{
    struct gcs_process_parameters pp = {.oci_process = oci_process(t, script, terminal)};
    json_t *params = gcs_process_parameters_build(&pp);
    json_decref(pp.oci_process);
    return params;
}

static void create_container(struct e2e *t, const char *cid, json_t *spec)
{
    char bundle[600];
    snprintf(bundle, sizeof(bundle), "/run/gcs/c/%s", cid);
    struct gcs_container_config cc = {.oci_bundle_path = bundle, .oci_specification = spec};
    json_t *cfg = gcs_container_config_build(&cc);
    struct res r;
    CALL(t, r, 60, gcs_guest_create_container(t->conn, cid, cfg, on_done, &r, E_));
    json_decref(cfg);
    json_decref(spec);
    if (r.code != RPC_OK)
        fatal(t, "create %s: %s", cid, r.msg);
    CALL(t, r, 60, gcs_guest_start_container(t->conn, cid, on_done, &r, E_));
    check(t, r.code == RPC_OK, "Start %s", cid);
}

static void write_all(struct e2e *t, uv_stream_t *s, const char *data)
{
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)strlen(data));
    int rc = uv_try_write(s, &b, 1);
    if (rc != (int)strlen(data))
        fatal(t, "stdin write: %s", rc < 0 ? uv_strerror(rc) : "short");
}

static void delete_container(struct e2e *t, const char *cid)
{
    struct res r;
    CALL(t, r, 60, gcs_guest_delete_container_state(t->conn, cid, on_done, &r, E_));
    check(t, r.code == RPC_OK, "DeleteContainerState %s (%s)", cid, r.msg);
    CALL(t, r, 60, gcs_guest_delete_container_state(t->conn, cid, on_done, &r, E_));
    check(t, r.hr == GCS_HR_SYSTEM_NOT_FOUND, "second delete of %s: 0xC037010E (got 0x%08x)", cid,
          (uint32_t)r.hr);
}

/* ---- scenario: everything against the real agent --------------------------------------------- */

static void negotiate(struct e2e *t)
{
    struct res r;
    CALL(t, r, 30, gcs_guest_negotiate(t->conn, on_negotiate, &r, E_));
    check(t, r.code == RPC_OK, "NegotiateProtocol v4 (%s)", r.msg);
    check(t, r.value == 15, "capabilities: Linux + signal/dumpstacks/delete (0x%x)", r.value);
}

static void scenario_uvm_process(struct e2e *t)
{
    struct gcs_process_parameters pp = {.working_directory = "/"};
    pp.command_args =
        json_pack("[s,s,s]", "/bin/sh", "-c", "echo uvm-out; echo uvm-err >&2; exit 5");
    pp.environment = json_pack("{s:s}", "PATH", "/usr/bin:/bin");
    json_t *params = gcs_process_parameters_build(&pp);
    json_decref(pp.command_args);
    json_decref(pp.environment);
    struct proc p;
    proc_start(t, &p, NULL, params, GCS_STDIO_OUT | GCS_STDIO_ERR, false);
    proc_finish(t, &p, 60);
    check(t, p.wait.code == RPC_OK && p.wait.value == 5, "UVM process exit code 5 (got %u %s)",
          p.wait.value, p.wait.msg);
    check(t, p.out.len == 8 && memcmp(p.out.data, "uvm-out\n", 8) == 0, "UVM process stdout");
    check(t, p.err.len == 8 && memcmp(p.err.data, "uvm-err\n", 8) == 0, "UVM process stderr");
    /* a second wait on the same UVM process: not found */
    struct res r;
    CALL(t, r, 30,
         gcs_guest_wait_process(t->conn, NULL, p.pid, GCS_WAIT_INFINITE, on_wait, &r, E_));
    check(t, r.hr == GCS_HR_NOT_FOUND, "second wait on a UVM process: 0x80070490 (0x%08x)",
          (uint32_t)r.hr);
    proc_free(&p);
}

static void await_notification(struct e2e *t, int before)
{
    bool got = false;
    for (int i = 0; i < 300 && !got; i++) {
        got = t->notifications > before;
        if (!got)
            await(t, &got, 0.1);
    }
}

static void scenario_run_to_exit(struct e2e *t)
{
    char cid[96];
    container_id(t, cid, sizeof(cid), "a");
    create_container(
        t, cid,
        oci_spec(t, t->rootfs, true, "printf 'hello\\nworld\\n'; printf 'oops\\n' >&2; exit 3"));
    int before = t->notifications;
    struct proc p;
    proc_start(t, &p, cid, json_object(), GCS_STDIO_OUT | GCS_STDIO_ERR, true);
    proc_finish(t, &p, 60);
    check(t, p.wait.code == RPC_OK && p.wait.value == 3, "container init exit code 3 (got %u %s)",
          p.wait.value, p.wait.msg);
    check(t, p.out.len == 12 && memcmp(p.out.data, "hello\nworld\n", 12) == 0,
          "container stdout byte-exact (%zu bytes)", p.out.len);
    check(t, p.err.len == 5 && memcmp(p.err.data, "oops\n", 5) == 0, "container stderr byte-exact");
    await_notification(t, before);
    bool notified = t->notifications > before;
    check(t,
          notified && strcmp(t->last_notified, cid) == 0 &&
              strcmp(t->last_notify_type, GCS_NOTIFY_UNEXPECTED_EXIT) == 0,
          "exit notification for %s (%s %s)", cid, t->last_notified, t->last_notify_type);
    delete_container(t, cid);
    proc_free(&p);
}

static void scenario_long_running(struct e2e *t)
{
    char cid[96];
    container_id(t, cid, sizeof(cid), "b");
    create_container(t, cid, oci_spec(t, t->rootfs, true, "exec sleep 100000"));
    struct proc init;
    proc_start(t, &init, cid, json_object(), GCS_STDIO_OUT, true);

    /* an extra process */
    struct proc x;
    proc_start(t, &x, cid, exec_params(t, "echo from-exec; echo e >&2; exit 4", false),
               GCS_STDIO_OUT | GCS_STDIO_ERR, false);
    proc_finish(t, &x, 60);
    check(t,
          x.wait.value == 4 && x.out.len == 10 && memcmp(x.out.data, "from-exec\n", 10) == 0 &&
              x.err.len == 2,
          "exec: output and exit code 4 (got %u)", x.wait.value);
    proc_free(&x);

    /* stdin: cat echoes, then exits at EOF */
    struct proc c;
    proc_start(t, &c, cid, exec_params(t, "cat", false), GCS_STDIO_IN | GCS_STDIO_OUT, false);
    write_all(t, c.in, "line one\nline two\n");
    gcs_input_close(c.in);
    proc_finish(t, &c, 60);
    check(t,
          c.wait.value == 0 && c.out.len == 18 &&
              memcmp(c.out.data, "line one\nline two\n", 18) == 0,
          "stdin: cat echoes and exits 0 after the half-close (%zu bytes, exit %u)", c.out.len,
          c.wait.value);
    proc_free(&c);

    /* tty + resize */
    struct proc tty;
    proc_start(t, &tty, cid, exec_params(t, "read x; stty size; exit 0", true),
               GCS_STDIO_IN | GCS_STDIO_OUT, false);
    struct res r;
    CALL(t, r, 30, gcs_guest_resize_console(t->conn, cid, tty.pid, 37, 111, on_done, &r, E_));
    check(t, r.code == RPC_OK, "ResizeConsole (%s)", r.msg);
    write_all(t, tty.in, "go\n");
    proc_finish(t, &tty, 60);
    tty.out.data[tty.out.len] = 0;
    check(t, strstr(tty.out.data, "37 111") != NULL, "tty: stty size after resize says 37 111");
    gcs_input_close(tty.in);
    /* resize of a non-tty process fails */
    CALL(t, r, 30, gcs_guest_resize_console(t->conn, cid, init.pid, 10, 10, on_done, &r, E_));
    check(t, r.code != RPC_OK, "ResizeConsole on a pipe process fails (%s)", r.msg);
    proc_free(&tty);

    /* 64 MiB through stdout */
    struct proc big;
    char script[200];
    snprintf(script, sizeof(script), "yes '%.*s' | head -c %u", (int)strlen(BIG_LINE) - 1, BIG_LINE,
             BIG_SIZE);
    proc_start(t, &big, cid, exec_params(t, script, false), GCS_STDIO_OUT, false);
    big.out.check_pattern = true;
    proc_finish(t, &big, 600);
    check(t, big.out.total == BIG_SIZE && big.out.pattern_ok && big.wait.value == 0,
          "64 MiB through stdout byte-exact (%llu bytes, pattern %s)",
          (unsigned long long)big.out.total, big.out.pattern_ok ? "ok" : "MISMATCH");
    proc_free(&big);

    /* signals to exec processes: TERM -> 143, KILL -> 137 */
    int sigs[2] = {15, 9};
    uint32_t want[2] = {143, 137};
    for (int i = 0; i < 2; i++) {
        struct proc s;
        proc_start(t, &s, cid, exec_params(t, "exec sleep 100000", false), GCS_STDIO_OUT, false);
        CALL(t, r, 30, gcs_guest_signal_process(t->conn, cid, s.pid, sigs[i], on_done, &r, E_));
        check(t, r.code == RPC_OK, "SignalProcess %d (%s)", sigs[i], r.msg);
        proc_finish(t, &s, 60);
        check(t, s.wait.value == want[i], "signal %d -> exit %u (got %u)", sigs[i], want[i],
              s.wait.value);
        CALL(t, r, 30, gcs_guest_signal_process(t->conn, cid, s.pid, 15, on_done, &r, E_));
        check(t, r.hr == GCS_HR_NOT_FOUND, "signal after exit: 0x80070490 (0x%08x)",
              (uint32_t)r.hr);
        proc_free(&s);
    }

    /* properties */
    CALL(t, r, 30,
         gcs_guest_get_properties(t->conn, cid, GCS_PROPERTY_PROCESS_LIST, on_props, &r, E_));
    uint32_t *pids = NULL;
    size_t n = 0;
    bool has_init = false;
    if (r.code == RPC_OK && gcs_properties_process_list(r.json, &pids, &n, NULL) == 0) {
        for (size_t i = 0; i < n; i++)
            has_init |= pids[i] == init.pid;
    }
    check(t, has_init, "ProcessList holds the init pid %u (%zu pids; %s)", init.pid, n, r.msg);
    free(pids);
    json_decref(r.json);
    CALL(t, r, 30,
         gcs_guest_get_properties(t->conn, cid, GCS_PROPERTY_STATISTICS, on_props, &r, E_));
    check(t, r.code == RPC_OK && json_is_object(r.json), "Statistics (%s)", r.msg);
    json_decref(r.json);

    /* errors */
    CALL(t, r, 30, gcs_guest_signal_process(t->conn, "no-such-container", 1, 15, on_done, &r, E_));
    check(t, r.hr == GCS_HR_SYSTEM_NOT_FOUND && r.code == RPC_NOT_FOUND,
          "unknown container: 0xC037010E (0x%08x: %s)", (uint32_t)r.hr, r.msg);
    CALL(t, r, 30, gcs_guest_wait_process(t->conn, cid, 999999, 1000, on_wait, &r, E_));
    check(t, r.hr == GCS_HR_NOT_FOUND, "wait on an unknown pid: 0x80070490 (0x%08x)",
          (uint32_t)r.hr);
    json_t *body = json_pack("{s:s,s:s}", "ContainerId", cid, "ActivityId", GCS_ZERO_ACTIVITY_ID);
    CALL(t, r, 30,
         gcs_guest_call_raw(t->conn, GCS_TYPE_UPDATE_CONTAINER, body, true, on_raw, &r, E_));
    check(t, r.hr == GCS_HR_E_NOTIMPL, "unknown message type: E_NOTIMPL (0x%08x)", (uint32_t)r.hr);
    json_decref(r.json);
    CALL(t, r, 30, gcs_guest_call_raw(t->conn, 0x10101101, body, true, on_raw, &r, E_));
    check(t, r.hr == GCS_HR_E_NOTIMPL, "undefined message 0x10101101: E_NOTIMPL (0x%08x)",
          (uint32_t)r.hr);
    json_decref(r.json);
    json_decref(body);
    CALL(t, r, 30, gcs_guest_dump_stacks(t->conn, on_stacks, &r, E_));
    check(t, r.code == RPC_OK && r.value > 0, "DumpStacks (%u bytes)", r.value);
    CALL(t, r, 30, gcs_guest_negotiate(t->conn, on_negotiate, &r, E_));
    check(t, r.hr == GCS_HR_E_NOTIMPL, "second NegotiateProtocol: E_NOTIMPL (0x%08x)",
          (uint32_t)r.hr);

    /* forced shutdown: init killed -> 137, ForcedExit notification */
    int before = t->notifications;
    CALL(t, r, 60, gcs_guest_shutdown_container(t->conn, cid, true, on_done, &r, E_));
    check(t, r.code == RPC_OK, "ShutdownForced (%s)", r.msg);
    proc_finish(t, &init, 60);
    check(t, init.wait.value == 137, "init exit after ShutdownForced: 137 (got %u)",
          init.wait.value);
    await_notification(t, before);
    check(t, t->notifications > before && strcmp(t->last_notify_type, "ForcedExit") == 0,
          "ForcedExit notification (%s)", t->last_notify_type);
    CALL(t, r, 60, gcs_guest_shutdown_container(t->conn, cid, false, on_done, &r, E_));
    check(t, r.code == RPC_OK, "ShutdownGraceful after exit succeeds (%s)", r.msg);
    delete_container(t, cid);
    proc_free(&init);
}

static void scenario_graceful(struct e2e *t)
{
    char cid[96];
    container_id(t, cid, sizeof(cid), "c");
    create_container(t, cid,
                     oci_spec(t, t->rootfs, true,
                              "trap 'exit 143' TERM; echo ready; while :; do sleep 0.1; done"));
    struct proc init;
    proc_start(t, &init, cid, json_object(), GCS_STDIO_OUT, true);
    struct res r;
    int before = t->notifications;
    /* the trap is installed before "ready" is printed */
    for (int i = 0; i < 600 && init.out.len < 6; i++) {
        bool never = false;
        await(t, &never, 0.05);
    }
    check(t, init.out.len == 6 && memcmp(init.out.data, "ready\n", 6) == 0, "init is ready");
    CALL(t, r, 60, gcs_guest_shutdown_container(t->conn, cid, false, on_done, &r, E_));
    check(t, r.code == RPC_OK, "ShutdownGraceful (%s)", r.msg);
    proc_finish(t, &init, 60);
    check(t, init.wait.value == 143, "init exit after ShutdownGraceful: 143 (got %u)",
          init.wait.value);
    await_notification(t, before);
    check(t, strcmp(t->last_notify_type, "GracefulExit") == 0, "GracefulExit notification (%s)",
          t->last_notify_type);
    delete_container(t, cid);
    proc_free(&init);
}

static void scenario_layers(struct e2e *t)
{
    char cid[96];
    container_id(t, cid, sizeof(cid), "d");
    char root[600], scratch[600];
    snprintf(root, sizeof(root), "%s/ov/rootfs", t->work);
    snprintf(scratch, sizeof(scratch), "%s/ov/scratch", t->work);
    const char *layers[] = {t->rootfs};
    struct gcs_combined_layers cl = {.container_id = cid,
                                     .container_root_path = root,
                                     .layers = layers,
                                     .n_layers = 1,
                                     .scratch_path = scratch};
    json_t *settings = gcs_combined_layers_build(&cl);
    struct res r;
    CALL(t, r, 60,
         gcs_guest_modify_settings(t->conn, NULL, GCS_RESOURCE_COMBINED_LAYERS, GCS_REQUEST_ADD,
                                   settings, on_done, &r, E_));
    check(t, r.code == RPC_OK, "ModifySettings CombinedLayers Add (%s)", r.msg);
    if (r.code == RPC_OK) {
        create_container(t, cid,
                         oci_spec(t, root, false, "echo data >/new; cat /new; ls /bin/busybox"));
        struct proc p;
        proc_start(t, &p, cid, json_object(), GCS_STDIO_OUT | GCS_STDIO_ERR, true);
        proc_finish(t, &p, 60);
        check(t,
              p.wait.value == 0 && p.out.len == 18 &&
                  memcmp(p.out.data, "data\n/bin/busybox\n", 18) == 0,
              "container on the overlay writes its scratch (exit %u, %zu bytes)", p.wait.value,
              p.out.len);
        delete_container(t, cid);
        proc_free(&p);
        CALL(t, r, 60,
             gcs_guest_modify_settings(t->conn, NULL, GCS_RESOURCE_COMBINED_LAYERS,
                                       GCS_REQUEST_REMOVE, settings, on_done, &r, E_));
        check(t, r.code == RPC_OK, "ModifySettings CombinedLayers Remove (%s)", r.msg);
    }
    json_decref(settings);
    struct gcs_mapped_directory md = {.mount_path = "/mnt/x", .port = 564, .share_name = "0"};
    settings = gcs_mapped_directory_build(&md);
    CALL(t, r, 60,
         gcs_guest_modify_settings(t->conn, NULL, GCS_RESOURCE_MAPPED_DIRECTORY, GCS_REQUEST_ADD,
                                   settings, on_done, &r, E_));
    check(t, r.code != RPC_OK && r.hr != 0, "MappedDirectory: an HRESULT error without 9p (0x%08x)",
          (uint32_t)r.hr);
    json_decref(settings);
    settings = json_object();
    CALL(t, r, 60,
         gcs_guest_modify_settings(t->conn, NULL, "NoSuchResource", GCS_REQUEST_ADD, settings,
                                   on_done, &r, E_));
    check(t, r.hr == GCS_HR_E_FAIL && strstr(r.msg, "invalid ResourceType") != NULL,
          "unknown ResourceType: E_FAIL (%s)", r.msg);
    json_decref(settings);
}

static char *agent_argv_storage[32];

static char **agent_argv(struct e2e *t)
{
    int n = 0;
    char **a = agent_argv_storage;
    a[n++] = (char *)t->agent;
    a[n++] = "-v4";
    a[n++] = "-use-inouterr";
    a[n++] = "-loglevel";
    a[n++] = "debug";
    a[n++] = "-log-format";
    a[n++] = "text";
    a[n++] = "-port-dir";
    a[n++] = t->ports;
    a[n++] = "-state-dir";
    a[n++] = t->state;
    a[n] = NULL;
    return a;
}

static int run_agent(struct e2e *t)
{
    session_start(t, agent_argv(t));
    negotiate(t);
    scenario_uvm_process(t);
    scenario_run_to_exit(t);
    scenario_long_running(t);
    scenario_graceful(t);
    scenario_layers(t);
    session_stop(t, 30);
    check(t, t->child_exit == 0 && t->child_signal == 0,
          "agent exits cleanly when the bridge closes (status %lld signal %d)",
          (long long)t->child_exit, t->child_signal);
    return t->failures ? 1 : 0;
}

/* ---- scenario: the agent is killed with calls outstanding ---------------------------------------
 */

static int run_kill(struct e2e *t)
{
    session_start(t, agent_argv(t));
    negotiate(t);
    char cid[96];
    container_id(t, cid, sizeof(cid), "k");
    create_container(t, cid, oci_spec(t, t->rootfs, true, "exec sleep 100000"));
    struct proc init;
    proc_start(t, &init, cid, json_object(), GCS_STDIO_OUT, true);
    struct res r[4];
    memset(r, 0, sizeof(r));
    shim_error_t *err = NULL;
    int rc = 0;
    rc |= gcs_guest_wait_process(t->conn, cid, 999999, GCS_WAIT_INFINITE, on_wait, &r[0], &err);
    rc |= gcs_guest_get_properties(t->conn, cid, GCS_PROPERTY_PROCESS_LIST, on_props, &r[1], &err);
    json_t *params = exec_params(t, "exec sleep 100000", false);
    rc |= gcs_guest_execute_process(t->conn, cid, params, GCS_STDIO_OUT, on_exec, &r[2], &err);
    json_decref(params);
    rc |= gcs_guest_dump_stacks(t->conn, on_stacks, &r[3], &err);
    if (rc != 0)
        fatal(t, "sending: %s", err ? err->msg : "?");
    uint64_t start = uv_now(t->loop);
    uv_process_kill(&t->child, SIGKILL);
    must_await(t, &init.wait.done, 20, "the init wait to fail");
    bool all = true;
    for (int i = 0; i < 4; i++)
        all &= await(t, &r[i].done, 20);
    uint64_t took = uv_now(t->loop) - start;
    /* Some calls may have been answered before the kill landed; every call must end and
     * the ones still open must fail with UNAVAILABLE. */
    check(t, all, "every outstanding call completed after the kill (%llu ms)",
          (unsigned long long)took);
    check(t, init.wait.code == RPC_UNAVAILABLE, "init wait fails: %s", init.wait.msg);
    for (int i = 0; i < 4; i++)
        check(t, r[i].code == RPC_UNAVAILABLE || r[i].code == RPC_OK || i == 0, "call %d ended: %s",
              i, r[i].msg[0] ? r[i].msg : "ok");
    check(t, r[0].code == RPC_UNAVAILABLE || r[0].hr == GCS_HR_NOT_FOUND, "wait ended (%s)",
          r[0].msg);
    check(t, took < 10000, "calls failed promptly (%llu ms)", (unsigned long long)took);
    must_await(t, &t->bridge_closed, 10, "bridge_closed");
    check(t, strstr(t->bridge_closed_msg, "EOF") != NULL || strstr(t->bridge_closed_msg, "reset"),
          "bridge_closed: %s", t->bridge_closed_msg);
    shim_error_t *e2 = NULL;
    struct res late;
    memset(&late, 0, sizeof(late));
    check(t, gcs_guest_dump_stacks(t->conn, on_stacks, &late, &e2) == -1,
          "calls after the loss are refused at once");
    error_free(e2);
    if (r[2].code == RPC_OK) {
        gcs_stream_close(r[2].io.stdout_stream);
        if (is_our_sleeper((int)r[2].io.pid))
            kill((int)r[2].io.pid, SIGKILL);
    }
    json_decref(r[1].json);
    /* The container outlives the killed agent: take it down, then its output ends. */
    cleanup(t);
    if (await(t, &init.out.eof, 20))
        proc_free(&init);
    else
        check(t, false, "init stdout ends once the container is killed");
    session_stop(t, 10);
    return t->failures ? 1 : 0;
}

/* ---- fault scenarios against the fake peer
 * --------------------------------------------------------- */

static int run_fake(struct e2e *t, const char *self, const char *mode)
{
    char *argv[] = {(char *)self, "peer", (char *)mode, NULL};
    if (strcmp(mode, "silent") == 0)
        t->rpc_timeout_ms = 1500;
    session_start(t, argv);
    struct res r;
    uint64_t start = uv_now(t->loop);
    CALL(t, r, 20, gcs_guest_negotiate(t->conn, on_negotiate, &r, E_));
    uint64_t took = uv_now(t->loop) - start;
    if (strcmp(mode, "silent") == 0) {
        check(t, r.code == RPC_DEADLINE_EXCEEDED, "no answer: the call times out (%s)", r.msg);
        check(t, gcs_guest_connection_alive(t->conn), "the bridge survives a timeout");
    } else if (strcmp(mode, "noise") == 0) {
        check(t, r.code == RPC_OK, "unknown ids and notifications are ignored (%s)", r.msg);
        struct res s;
        CALL(t, s, 20, gcs_guest_start_container(t->conn, "c1", on_done, &s, E_));
        check(t, s.code == RPC_OK, "the bridge still works afterwards (%s)", s.msg);
        check(t, t->notifications == 1 && strcmp(t->last_notified, "ghost") == 0,
              "a notification for an unknown container is delivered, not fatal");
    } else {
        check(t, r.code == RPC_UNAVAILABLE, "%s: the call fails (%s)", mode, r.msg);
        check(t, took < 5000, "%s: promptly (%llu ms)", mode, (unsigned long long)took);
        must_await(t, &t->bridge_closed, 5, "bridge_closed");
        printf("# bridge error: %s\n", t->bridge_closed_msg);
    }
    session_stop(t, 10);
    return t->failures ? 1 : 0;
}

/* The fake guest: blocking I/O on stdin/stdout. */
static bool peer_read_frame(struct gcs_header *h)
{
    uint8_t hdr[16];
    size_t got = 0;
    while (got < 16) {
        ssize_t n = read(0, hdr + got, 16 - got);
        if (n <= 0)
            return false;
        got += (size_t)n;
    }
    gcs_header_decode(hdr, h);
    size_t left = h->size - 16;
    char buf[4096];
    while (left > 0) {
        ssize_t n = read(0, buf, left < sizeof(buf) ? left : sizeof(buf));
        if (n <= 0)
            return false;
        left -= (size_t)n;
    }
    return true;
}

static void peer_write(const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(1, p, len);
        if (n <= 0)
            _exit(3);
        p += n;
        len -= (size_t)n;
    }
}

static void peer_send(uint32_t type, uint64_t id, const char *body)
{
    uint8_t *buf;
    size_t len;
    if (gcs_frame_encode_raw(type, id, body, strlen(body), &buf, &len, NULL) < 0)
        _exit(3);
    peer_write(buf, len);
    free(buf);
}

static void peer_header(uint32_t size)
{
    uint8_t hdr[16];
    struct gcs_header h = {.type = 0x20100b01, .size = size, .id = 0};
    gcs_header_encode(hdr, &h);
    peer_write(hdr, sizeof(hdr));
}

static void peer_drain(void)
{
    struct gcs_header h;
    while (peer_read_frame(&h)) {
    }
}

static int run_peer(const char *mode)
{
    signal(SIGPIPE, SIG_IGN);
    struct gcs_header h;
    if (!peer_read_frame(&h))
        return 2;
    if (strcmp(mode, "garbage") == 0)
        peer_write("this is not a gcs frame at all, just text\n", 42);
    else if (strcmp(mode, "short-header") == 0) {
        peer_write("\x01\x0b\x10\x20\x40\x00\x00", 7);
        return 0;
    } else if (strcmp(mode, "size-small") == 0)
        peer_header(8);
    else if (strcmp(mode, "huge") == 0)
        peer_header(1u << 30);
    else if (strcmp(mode, "bad-json") == 0)
        peer_send(0x20100b01, h.id, "{\"Result\":0,");
    else if (strcmp(mode, "die") == 0)
        return 0;
    else if (strcmp(mode, "noise") == 0) {
        peer_send(0x20100b01, 999, "{\"Result\":0}");
        peer_send(0x30100201, 0, "{\"ContainerId\":\"x\"}");
        peer_send(0x10100101, 5, "{\"ContainerId\":\"x\"}");
        peer_send(GCS_TYPE_CONTAINER_NOTIFICATION, 0,
                  "{\"ContainerId\":\"ghost\",\"Type\":\"UnexpectedExit\",\"Operation\":\"None\","
                  "\"Result\":0,\"Future\":{}}");
        peer_send(0x20100b01, h.id,
                  "{\"Result\":0,\"Version\":4,\"Capabilities\":{\"RuntimeOsType\":\"Linux\"},"
                  "\"NewTopLevelField\":[1,2,3]}");
        if (!peer_read_frame(&h))
            return 2;
        peer_send(gcs_type_response_for(h.type), h.id, "{\"Result\":0,\"ActivityId\":\"x\"}");
    } else if (strcmp(mode, "silent") != 0)
        return 2;
    peer_drain(); /* until the host closes the bridge */
    return 0;
}

/* ---- main
 * ------------------------------------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr, "usage: gcs-host-e2e agent|kill --agent BIN --rootfs DIR --work DIR [--tag T]\n"
                    "       gcs-host-e2e fake MODE [--work DIR] | peer MODE\n");
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        usage();
    if (strcmp(argv[1], "peer") == 0 && argc == 3)
        return run_peer(argv[2]);
    signal(SIGPIPE, SIG_IGN);
    log_configure(2, LOG_LEVEL_WARN, LOG_FORMAT_TEXT);
    struct e2e *t = calloc(1, sizeof(*t));
    t->loop = uv_default_loop();
    bool fake = strcmp(argv[1], "fake") == 0 && argc >= 3;
    for (int i = fake ? 3 : 2; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--agent") == 0)
            t->agent = argv[i + 1];
        else if (strcmp(argv[i], "--rootfs") == 0)
            t->rootfs = argv[i + 1];
        else if (strcmp(argv[i], "--work") == 0)
            t->work = argv[i + 1];
        else if (strcmp(argv[i], "--tag") == 0)
            t->tag = argv[i + 1];
    }
    const char *work = t->work ? t->work : "/tmp";
    snprintf(t->ports, sizeof(t->ports), "%s/ports", work);
    snprintf(t->state, sizeof(t->state), "%s/state", work);
    snprintf(t->log_path, sizeof(t->log_path), "%s/agent.log", work);
    mkdir(t->ports, 0700);
    shim_error_t *err = NULL;
    if (gcs_transport_unix_dir_new(t->loop, t->ports, &t->stdio, &err) < 0)
        fatal(t, "stdio transport: %s", err->msg);
    int rc;
    if (fake) {
        char self[4096];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n <= 0)
            fatal(t, "readlink /proc/self/exe");
        self[n] = 0;
        rc = run_fake(t, self, argv[2]);
    } else if (t->agent == NULL || t->rootfs == NULL || t->work == NULL) {
        usage();
    } else if (strcmp(argv[1], "agent") == 0) {
        rc = run_agent(t);
    } else if (strcmp(argv[1], "kill") == 0) {
        rc = run_kill(t);
    } else {
        usage();
    }
    cleanup(t); /* container inits the agent did not take down */
    gcs_transport_destroy(t->stdio);
    for (int i = 0; i < 5; i++)
        uv_run(t->loop, UV_RUN_NOWAIT);
    int leftover = uv_loop_close(t->loop);
    if (leftover != 0) {
        printf("FAIL - handles left open on the loop\n");
        rc = 1;
    }
    free(t);
    printf("%s\n", rc == 0 ? "# all checks passed" : "# some checks FAILED");
    return rc;
}
