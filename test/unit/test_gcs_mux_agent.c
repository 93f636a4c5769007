/* The guest agent (build/bin/gcs) with -bridge-device and -stdio-device, two
 * ptys standing in for the UVM's virtio-serial ports "gcs" and "stdio". This
 * test plays the host: the bridge over one pty master (gcs_transport_device +
 * gcs_guest_connection), the stdio multiplexer over the other
 * (gcs_transport_mux_device_new, role host). It negotiates, runs a UVM
 * process with stdin/stdout/stderr over the mux (1 MiB echoed byte-exact),
 * then disconnects the "host" and expects the agent to exit 0 by itself.
 *
 * Stand-in limits (see test_gcs_mux_device.c): a pty master cannot be absent
 * before the guest opens the slave (so "host not yet connected" is covered by
 * the FIFO test there, not here); the test holds the slaves open until the
 * agent has them (a pty master reads EIO while no slave is open); raw mode
 * makes the line discipline byte-clean. Also the flag parsing of the new
 * options. Skipped (not failed) when not root or the agent is not built. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/log.h"
#include "gcs/bridge_msg.h"
#include "gcs/guest/flags.h"
#include "gcs/guest_connection.h"
#include "gcs/mux.h"
#include "gcs/transport.h"
#include "test/support/stream_pair.h"

static uv_loop_t loop;

static bool run_until(const bool *flag, unsigned timeout_ms)
{
    return loop_run_until_flag(&loop, flag, timeout_ms);
}

static void drain_loop(void)
{
    loop_drain(&loop, 20);
}

/* ---- flags ------------------------------------------------------------------------------- */

static void test_flags(void **state)
{
    (void)state;
    struct gcs_agent_config cfg;
    gcs_agent_config_defaults(&cfg);
    char *a1[] = {"gcs", "-v4", "-bridge-device", "gcs", "-stdio-device=/dev/vport0p2", NULL};
    assert_int_equal(gcs_agent_flags_parse(5, a1, &cfg, NULL), 0);
    assert_string_equal(cfg.bridge_device, "gcs");
    assert_string_equal(cfg.stdio_device, "/dev/vport0p2");
    assert_int_equal(cfg.transport, GCS_AGENT_TRANSPORT_MUX);
    gcs_agent_config_defaults(&cfg);
    char *a2[] = {"gcs", "-transport", "mux:stdio", NULL};
    assert_int_equal(gcs_agent_flags_parse(3, a2, &cfg, NULL), 0);
    assert_int_equal(cfg.transport, GCS_AGENT_TRANSPORT_MUX);
    assert_string_equal(cfg.stdio_device, "stdio");
    assert_null(cfg.bridge_device);
    shim_error_t *err = NULL;
    const char *bad[][4] = {
        {"gcs", "-transport", "mux", NULL},                   /* no device */
        {"gcs", "-bridge-device", "gcs", "-use-inouterr"},    /* two bridges */
        {"gcs", "-bridge-device", "", NULL},                  /* empty */
        {"gcs", "-bridge-device=x", "-stdio-device=x", NULL}, /* same port */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        gcs_agent_config_defaults(&cfg);
        int argc = bad[i][3] ? 4 : 3;
        err = NULL;
        assert_int_equal(gcs_agent_flags_parse(argc, (char **)bad[i], &cfg, &err), -1);
        assert_non_null(err);
        error_free(err);
    }
    assert_non_null(strstr(gcs_agent_usage(), "-bridge-device"));
    assert_non_null(strstr(gcs_agent_usage(), "-stdio-device"));
}

/* ---- agent over ptys ------------------------------------------------------------------------ */

struct host {
    struct gcs_transport *bridge_t, *stdio_t;
    struct gcs_guest_connection *conn;
    bool accepted, negotiated, exec_done, out_eof, err_eof, waited, exited, closed;
    int32_t hr;
    char msg[256];
    uint32_t exit_code;
    int64_t agent_status;
    struct gcs_process_io io;
    char *out;
    size_t out_len, out_cap;
    char errbuf[256];
    size_t err_len;
    uv_stream_t *bridge;
};

static void on_bridge(void *opaque, uv_stream_t *bridge, const shim_error_t *err)
{
    struct host *h = opaque;
    h->bridge = bridge;
    if (err)
        snprintf(h->msg, sizeof(h->msg), "%s", err->msg);
    h->accepted = true;
}

static void on_negotiated(void *opaque, int32_t hr, const shim_error_t *err,
                          const struct gcs_capabilities *caps)
{
    struct host *h = opaque;
    (void)caps;
    h->hr = hr;
    if (err)
        snprintf(h->msg, sizeof(h->msg), "%s", err->msg);
    h->negotiated = true;
}

static void on_output(void *opaque, const char *data, ssize_t len)
{
    struct host *h = opaque;
    if (len <= 0) {
        h->out_eof = true;
        return;
    }
    if (h->out_len + (size_t)len > h->out_cap) {
        h->out_cap = (h->out_len + (size_t)len) * 2;
        h->out = realloc(h->out, h->out_cap);
    }
    memcpy(h->out + h->out_len, data, (size_t)len);
    h->out_len += (size_t)len;
}

static void on_errput(void *opaque, const char *data, ssize_t len)
{
    struct host *h = opaque;
    if (len <= 0) {
        h->err_eof = true;
        return;
    }
    size_t n =
        (size_t)len < sizeof(h->errbuf) - h->err_len ? (size_t)len : sizeof(h->errbuf) - h->err_len;
    memcpy(h->errbuf + h->err_len, data, n);
    h->err_len += n;
}

static void on_exec(void *opaque, int32_t hr, const shim_error_t *err, struct gcs_process_io *io)
{
    struct host *h = opaque;
    h->hr = hr;
    if (err)
        snprintf(h->msg, sizeof(h->msg), "%s", err->msg);
    else
        h->io = *io;
    h->exec_done = true;
}

static void on_wait(void *opaque, int32_t hr, const shim_error_t *err, uint32_t exit_code)
{
    struct host *h = opaque;
    h->hr = hr;
    if (err)
        snprintf(h->msg, sizeof(h->msg), "%s", err->msg);
    h->exit_code = exit_code;
    h->waited = true;
}

static void on_agent_exit(uv_process_t *p, int64_t status, int signo)
{
    struct host *h = p->data;
    h->agent_status = signo ? -signo : status;
    h->exited = true;
    uv_close((uv_handle_t *)p, NULL);
}

static void on_bridge_closed(void *opaque, const shim_error_t *err)
{
    struct host *h = opaque;
    (void)err;
    h->closed = true;
}

static void stdin_written(uv_write_t *req, int status)
{
    (void)status;
    free(req->data);
    free(req);
}

/* A pty pair with the slave in raw mode; *hold keeps the slave open. */
static void make_pty(int *master, char *slave_path, size_t n, int *hold)
{
    *master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    assert_true(*master >= 0);
    assert_int_equal(grantpt(*master), 0);
    assert_int_equal(unlockpt(*master), 0);
    snprintf(slave_path, n, "%s", ptsname(*master));
    *hold = open(slave_path, O_RDWR | O_NOCTTY | O_CLOEXEC);
    assert_true(*hold >= 0);
    struct termios tio;
    assert_int_equal(tcgetattr(*hold, &tio), 0);
    cfmakeraw(&tio);
    assert_int_equal(tcsetattr(*hold, TCSANOW, &tio), 0);
}

static void dump_log(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof(line), f) && n++ < 200)
        fprintf(stderr, "  agent: %s", line);
    fclose(f);
}

static uint8_t pattern_byte(size_t i)
{
    return (uint8_t)('a' + (i * 7 + (i >> 10)) % 26);
}

static void test_agent_over_ptys(void **state)
{
    (void)state;
    char self[PATH_MAX];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof(self) - 1);
    assert_true(sl > 0);
    self[sl] = '\0';
    char agent[PATH_MAX + 16];
    snprintf(agent, sizeof(agent), "%s/../bin/gcs", dirname(self));
    if (access(agent, X_OK) != 0 || geteuid() != 0 || access("/bin/sh", X_OK) != 0) {
        print_message("skipped: needs root and %s\n", agent);
        skip();
    }
    char dir[] = "/tmp/mux-agent-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char state_dir[64], log_path[64];
    snprintf(state_dir, sizeof(state_dir), "%s/state", dir);
    snprintf(log_path, sizeof(log_path), "%s/agent.log", dir);
    int mb, hold_b, ms, hold_s;
    char sb[64], ss[64];
    make_pty(&mb, sb, sizeof(sb), &hold_b);
    make_pty(&ms, ss, sizeof(ss), &hold_s);

    struct host h = {0};
    /* host side first: like the shim connecting to QEMU's chardev sockets */
    assert_int_equal(gcs_transport_device_new(&loop, mb, mb, &h.bridge_t, NULL), 0);
    assert_int_equal(
        gcs_transport_mux_device_new(&loop, ms, ms, GCS_MUX_ROLE_HOST, &h.stdio_t, NULL), 0);
    assert_int_equal(gcs_bridge_accept(h.bridge_t, 30000, on_bridge, &h, NULL), 0);

    int log_fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(log_fd >= 0);
    char *args[] = {agent, "-v4",           "-loglevel", "debug",      "-bridge-device",
                    sb,    "-stdio-device", ss,          "-state-dir", state_dir,
                    NULL};
    uv_stdio_container_t stdio[3] = {
        {.flags = UV_IGNORE}, {.flags = UV_IGNORE}, {.flags = UV_INHERIT_FD, .data.fd = log_fd}};
    uv_process_options_t opts = {
        .file = agent, .args = args, .stdio = stdio, .stdio_count = 3, .exit_cb = on_agent_exit};
    uv_process_t proc;
    proc.data = &h;
    int rc = uv_spawn(&loop, &proc, &opts);
    close(log_fd);
    assert_int_equal(rc, 0);

    bool ok = run_until(&h.accepted, 30000) && h.bridge != NULL;
    struct gcs_guest_callbacks cbs = {.bridge_closed = on_bridge_closed};
    struct gcs_guest_connection_config cfg = {0};
    ok = ok &&
         gcs_guest_connection_new(&loop, h.bridge, h.stdio_t, &cfg, &cbs, &h, &h.conn, NULL) == 0;
    ok = ok && gcs_guest_negotiate(h.conn, on_negotiated, &h, NULL) == 0;
    ok = ok && run_until(&h.negotiated, 60000) && h.hr == 0 && h.msg[0] == '\0';
    if (!ok) {
        dump_log(log_path);
        uv_process_kill(&proc, SIGKILL);
        fail_msg("negotiation over the bridge device failed: %s", h.msg);
    }
    /* the agent has both devices open now: let go of ours, so that closing
     * the masters later is a real hang-up for the agent */
    close(hold_b);
    close(hold_s);

    /* a UVM process: stdin echoed to stdout, a line on stderr, exit 3 */
    struct gcs_process_parameters pp = {.working_directory = "/"};
    pp.command_args = json_pack("[s,s,s]", "/bin/sh", "-c", "cat; echo err-line >&2; exit 3");
    pp.environment = json_pack("{s:s}", "PATH", "/usr/bin:/bin");
    json_t *params = gcs_process_parameters_build(&pp);
    json_decref(pp.command_args);
    json_decref(pp.environment);
    assert_int_equal(gcs_guest_execute_process(h.conn, NULL, params,
                                               GCS_STDIO_IN | GCS_STDIO_OUT | GCS_STDIO_ERR,
                                               on_exec, &h, NULL),
                     0);
    json_decref(params);
    ok = run_until(&h.exec_done, 60000) && h.hr == 0 && h.io.stdin_stream && h.io.stdout_stream &&
         h.io.stderr_stream;
    if (!ok) {
        dump_log(log_path);
        uv_process_kill(&proc, SIGKILL);
        fail_msg("ExecuteProcess over the mux failed: 0x%08x %s", (uint32_t)h.hr, h.msg);
    }
    assert_int_equal(gcs_output_start(h.io.stdout_stream, on_output, &h, NULL), 0);
    assert_int_equal(gcs_output_start(h.io.stderr_stream, on_errput, &h, NULL), 0);
    const size_t total = 1u << 20;
    for (size_t off = 0; off < total; off += 65536) {
        uv_write_t *req = malloc(sizeof(*req));
        char *chunk = malloc(65536);
        for (size_t i = 0; i < 65536; i++)
            chunk[i] = (char)pattern_byte(off + i);
        req->data = chunk;
        uv_buf_t b = uv_buf_init(chunk, 65536);
        assert_int_equal(uv_write(req, h.io.stdin_stream, &b, 1, stdin_written), 0);
    }
    gcs_input_close(h.io.stdin_stream);
    ok = run_until(&h.out_eof, 120000) && run_until(&h.err_eof, 30000);
    ok = ok &&
         gcs_guest_wait_process(h.conn, NULL, h.io.pid, GCS_WAIT_INFINITE, on_wait, &h, NULL) == 0;
    ok = ok && run_until(&h.waited, 60000);
    if (!ok)
        dump_log(log_path);
    assert_true(ok);
    assert_int_equal(h.exit_code, 3);
    assert_int_equal(h.out_len, total);
    for (size_t i = 0; i < total; i++)
        if ((uint8_t)h.out[i] != pattern_byte(i))
            fail_msg("stdout differs at byte %zu", i);
    assert_int_equal(h.err_len, 9);
    assert_memory_equal(h.errbuf, "err-line\n", 9);

    /* the host goes away: the agent sees the hang-up as bridge EOF and exits 0 */
    gcs_guest_connection_close(h.conn);
    drain_loop();
    gcs_transport_destroy(h.bridge_t);
    ok = run_until(&h.exited, 30000);
    if (!ok) {
        dump_log(log_path);
        uv_process_kill(&proc, SIGKILL);
        run_until(&h.exited, 10000);
    }
    gcs_transport_destroy(h.stdio_t);
    drain_loop();
    assert_true(ok);
    if (h.agent_status != 0)
        dump_log(log_path);
    assert_int_equal(h.agent_status, 0);
    free(h.out);
    unlink(log_path);
    rmdir(state_dir);
    char sub[96];
    const char *subs[] = {"crun", "log", "c"};
    for (int i = 0; i < 3; i++) {
        snprintf(sub, sizeof(sub), "%s/%s", state_dir, subs[i]);
        rmdir(sub);
    }
    rmdir(state_dir);
    rmdir(dir);
}

static int setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    log_configure(2, getenv("MUX_TEST_DEBUG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR, LOG_FORMAT_TEXT);
    return uv_loop_init(&loop);
}

static int teardown(void **state)
{
    (void)state;
    drain_loop();
    return uv_loop_close(&loop) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flags),
        cmocka_unit_test_setup_teardown(test_agent_over_ptys, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
