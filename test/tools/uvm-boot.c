/* uvm-boot: boots a utility VM through the hcs compute service (QEMU
 * backend), connects to the agent's bridge and negotiates the protocol, then
 * optionally exercises modify and ends the VM. For test/integration/uvm_*.sh.
 *
 *   uvm-boot [options] BOOT_DIR RUN_DIR
 *     --end shutdown|terminate|kill   how the VM ends (default shutdown)
 *     --disk IMAGE                    hot-add IMAGE as SCSI LUN 1, then remove it
 *     --port                          hot-add a virtio-serial port, then remove it
 *                                     (both checked inside the guest through the agent:
 *                                     ExecuteProcess in the UVM + WaitForProcess)
 *     --machine microvm|q35           (default microvm)
 *     --kernel-args ARGS              extra kernel arguments (e.g. uvm.switchroot=0)
 *     --timeout SECONDS               overall bound (default 90)
 *
 * Prints "agent-ready <seconds>" (start -> NegotiateProtocol answered),
 * "exit <ExitType> code=<n> signal=<n>" and "qemu-pid <pid>"; exits 0 when
 * everything behaved as expected. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include "common/log.h"
#include "gcs/guest_connection.h"
#include "gcs/transport.h"
#include "hcs/compute.h"

enum end_mode { END_SHUTDOWN, END_TERMINATE, END_KILL };

struct ctx {
    uv_loop_t *loop;
    hcs_system_t *sys;
    struct gcs_transport *transport;
    struct gcs_guest_connection *conn;
    uv_timer_t deadline;
    enum end_mode end;
    const char *disk;
    bool port;
    int step;
    uint64_t t_start;
    int failed;
    bool exited;
    int pid;
    char *doc;
};

static void next_step(struct ctx *c);

static void fail(struct ctx *c, const char *what, const char *detail)
{
    fprintf(stderr, "uvm-boot: FAIL: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    c->failed = 1;
    if (c->sys && hcs_system_state(c->sys) != HCS_STATE_STOPPED &&
        hcs_system_state(c->sys) != HCS_STATE_STOPPING)
        hcs_system_terminate(c->sys, NULL, NULL, NULL);
}

static double since(struct ctx *c)
{
    return (double)(uv_hrtime() - c->t_start) / 1e9;
}

static void finish(struct ctx *c)
{
    uv_timer_stop(&c->deadline);
    uv_close((uv_handle_t *)&c->deadline, NULL);
    if (c->conn) {
        gcs_guest_connection_close(c->conn);
        c->conn = NULL;
    }
}

static void on_exit_cb(hcs_system_t *sys, const struct hcs_exit_status *st, void *opaque)
{
    struct ctx *c = opaque;
    (void)sys;
    c->exited = true;
    printf("exit %s code=%lld signal=%d reason=%s status=0x%08x (%.3f s)\n",
           hcs_exit_type_name(st->type), (long long)st->exit_code, st->term_signal,
           st->reason ? st->reason : "-", (unsigned)st->status, since(c));
    enum hcs_exit_type want = c->end == END_SHUTDOWN    ? HCS_EXIT_SHUTDOWN
                              : c->end == END_TERMINATE ? HCS_EXIT_TERMINATE
                                                        : HCS_EXIT_UNEXPECTED;
    if (!c->failed && st->type != want)
        fail(c, "unexpected exit type", hcs_exit_type_name(st->type));
    if (kill(c->pid, 0) == 0 || errno != ESRCH)
        fail(c, "qemu still exists after the exit notification", NULL);
    finish(c);
}

static void on_deadline(uv_timer_t *t)
{
    struct ctx *c = t->data;
    fail(c, "timed out", NULL);
    if (c->sys && hcs_system_state(c->sys) == HCS_STATE_STOPPING && c->pid > 0)
        kill(c->pid, SIGKILL);
    uv_timer_start(t, on_deadline, 10000, 0); /* the exit must still come */
}

static void on_done(hcs_system_t *sys, const shim_error_t *err, void *opaque)
{
    struct ctx *c = opaque;
    (void)sys;
    if (err) {
        fail(c, "operation failed", err->msg);
        return;
    }
    printf("step %d done (%.3f s)\n", c->step, since(c));
    c->step++;
    next_step(c);
}

static void modify(struct ctx *c, const char *request)
{
    shim_error_t *err = NULL;
    printf("modify %s\n", request);
    if (hcs_system_modify(c->sys, request, on_done, c, &err) < 0) {
        fail(c, "modify", err->msg);
        error_free(err);
    }
}

static int port_connectable(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
    int rc = connect(fd, (struct sockaddr *)&a, sizeof(a));
    close(fd);
    return rc;
}

static void end_vm(struct ctx *c)
{
    shim_error_t *err = NULL;
    json_t *props = NULL;
    if (hcs_system_properties(c->sys, &props, NULL) == 0) {
        char *s = json_dumps(props, JSON_COMPACT);
        printf("properties %s\n", s ? s : "?");
        free(s);
        json_decref(props);
    }
    if (c->end == END_KILL) {
        printf("killing qemu pid %d\n", c->pid);
        kill(c->pid, SIGKILL);
        return;
    }
    int rc = c->end == END_SHUTDOWN ? hcs_system_shutdown(c->sys, NULL, NULL, &err)
                                    : hcs_system_terminate(c->sys, NULL, NULL, &err);
    if (rc < 0) {
        fail(c, "ending the VM", err->msg);
        error_free(err);
    }
}

struct guest_check {
    struct ctx *c;
    const char *what;
};

static void on_check_waited(void *opaque, int32_t hresult, const shim_error_t *err,
                            uint32_t exit_code)
{
    struct guest_check *g = opaque;
    struct ctx *c = g->c;
    if (err || hresult != 0 || exit_code != 0) {
        char detail[512];
        snprintf(detail, sizeof(detail), "exit code %u, %s", exit_code, err ? err->msg : "-");
        fail(c, g->what, detail);
        free(g);
        return;
    }
    printf("guest: %s (%.3f s)\n", g->what, since(c));
    free(g);
    c->step++;
    next_step(c);
}

static void on_check_started(void *opaque, int32_t hresult, const shim_error_t *err,
                             struct gcs_process_io *io)
{
    struct guest_check *g = opaque;
    shim_error_t *e = NULL;
    if (err || hresult != 0) {
        fail(g->c, g->what, err ? err->msg : "ExecuteProcess failed");
        free(g);
        return;
    }
    if (gcs_guest_wait_process(g->c->conn, NULL, io->pid, GCS_WAIT_INFINITE, on_check_waited, g,
                               &e) < 0) {
        fail(g->c, g->what, e->msg);
        error_free(e);
        free(g);
    }
}

/* Runs `script` (busy-waits up to ~15 s for its condition) in the UVM via the
 * agent: what the guest really sees after a hot-add/remove. */
static void guest_check(struct ctx *c, const char *what, const char *condition)
{
    char script[512];
    snprintf(script, sizeof(script),
             "i=0; until %s; do [ $i -ge 300 ] && exit 1; i=$((i+1)); sleep 0.05; done", condition);
    json_t *params = json_pack("{s:[s,s,s],s:s}", "CommandArgs", "/bin/sh", "-c", script,
                               "WorkingDirectory", "/");
    struct guest_check *g = calloc(1, sizeof(*g));
    shim_error_t *e = NULL;
    if (!params || !g) {
        fail(c, what, "out of memory");
        json_decref(params);
        free(g);
        return;
    }
    g->c = c;
    g->what = what;
    if (gcs_guest_execute_process(c->conn, NULL, params, 0, on_check_started, g, &e) < 0) {
        fail(c, what, e->msg);
        error_free(e);
        free(g);
    }
    json_decref(params);
}

#define SCSI_LUN1 "VirtualMachine/Devices/Scsi/df6d0690-79e5-55b6-a5ec-c1e2f77f580a/Attachments/1"
#define PORT_PATH "VirtualMachine/Devices/VirtioSerial/Ports/1073741825"

/* After negotiation: optional modify steps (each checked in the guest), then
 * the end. */
static void next_step(struct ctx *c)
{
    char req[1024];
    for (;;) {
        bool disk = c->disk != NULL, port = c->port;
        switch (c->step) {
        case 0:
            if (!disk)
                break;
            snprintf(req, sizeof(req),
                     "{\"ResourcePath\":\"" SCSI_LUN1 "\",\"RequestType\":\"Add\","
                     "\"Settings\":{\"Type\":\"VirtualDisk\",\"Path\":\"%s\",\"ReadOnly\":true}}",
                     c->disk);
            modify(c, req);
            return;
        case 1:
            if (!disk)
                break;
            guest_check(c, "hot-added disk visible", "[ -b /dev/sda ]");
            return;
        case 2:
            if (!disk)
                break;
            modify(c, "{\"ResourcePath\":\"" SCSI_LUN1 "\",\"RequestType\":\"Remove\"}");
            return;
        case 3:
            if (!disk)
                break;
            guest_check(c, "removed disk gone", "[ ! -e /dev/sda ]");
            return;
        case 4:
            if (!port)
                break;
            modify(c, "{\"ResourcePath\":\"" PORT_PATH "\",\"RequestType\":\"Add\"}");
            return;
        case 5: {
            if (!port)
                break;
            const char *path = hcs_system_port_path(c->sys, "1073741825");
            if (!path || port_connectable(path) < 0) {
                fail(c, "added port not connectable", path);
                return;
            }
            printf("port socket %s ok\n", path);
            guest_check(c, "hot-added port visible",
                        "grep -qx 1073741825 /sys/class/virtio-ports/*/name");
            return;
        }
        case 6:
            if (!port)
                break;
            modify(c, "{\"ResourcePath\":\"" PORT_PATH "\",\"RequestType\":\"Remove\"}");
            return;
        case 7:
            if (port && hcs_system_port_path(c->sys, "1073741825")) {
                fail(c, "port still listed after remove", NULL);
                return;
            }
            break;
        case 8:
            c->step++;
            end_vm(c);
            return;
        default:
            return;
        }
        c->step++;
    }
}

static void on_negotiated(void *opaque, int32_t hresult, const shim_error_t *err,
                          const struct gcs_capabilities *caps)
{
    struct ctx *c = opaque;
    (void)caps;
    if (err || hresult != 0) {
        fail(c, "NegotiateProtocol", err ? err->msg : "bad HRESULT");
        return;
    }
    printf("agent-ready %.3f\n", since(c));
    fflush(stdout);
    next_step(c);
}

static void on_bridge_closed(void *opaque, const shim_error_t *err)
{
    struct ctx *c = opaque;
    /* Expected once the VM powers off; only a failure before that matters. */
    if (c->step < 9)
        fail(c, "bridge closed early", err ? err->msg : NULL);
}

static void on_bridge(uv_stream_t *stream, int status, void *opaque)
{
    struct ctx *c = opaque;
    shim_error_t *err = NULL;
    if (status < 0) {
        fail(c, "connecting to the gcs port", uv_strerror(status));
        return;
    }
    struct gcs_guest_connection_config cfg = {.rpc_timeout_ms = 60000};
    struct gcs_guest_callbacks cbs = {.bridge_closed = on_bridge_closed};
    if (gcs_guest_connection_new(c->loop, stream, NULL, &cfg, &cbs, c, &c->conn, &err) < 0 ||
        gcs_guest_negotiate(c->conn, on_negotiated, c, &err) < 0) {
        fail(c, "bridge", err->msg);
        error_free(err);
    }
}

static void on_started(hcs_system_t *sys, const shim_error_t *err, void *opaque)
{
    struct ctx *c = opaque;
    shim_error_t *e = NULL;
    if (err) {
        fail(c, "start", err->msg);
        return;
    }
    json_t *props = NULL;
    if (hcs_system_properties(sys, &props, NULL) == 0) {
        c->pid = (int)json_integer_value(json_object_get(props, "ProcessId"));
        json_decref(props);
    }
    printf("qemu-pid %d\nstarted %.3f\n", c->pid, since(c));
    fflush(stdout);
    if (gcs_transport_unix_dir_new(c->loop, hcs_system_port_dir(sys), &c->transport, &e) < 0 ||
        gcs_transport_connect(c->transport, GCS_BRIDGE_PORT, on_bridge, c, &e) < 0) {
        fail(c, "gcs transport", e->msg);
        error_free(e);
    }
}

static char *make_document(const char *boot_dir)
{
    char *doc = NULL;
    int n = asprintf(&doc,
                     "{\"Owner\":\"uvm-boot\",\"SchemaVersion\":{\"Major\":2,\"Minor\":1},"
                     "\"VirtualMachine\":{\"StopOnReset\":true,\"Chipset\":{\"LinuxKernelDirect\":{"
                     "\"KernelFilePath\":\"%s/kernel\",\"InitRdPath\":\"%s/initrd.img\","
                     "\"KernelCmdLine\":\" panic=-1 quiet nr_cpus=1 brd.rd_nr=0 pmtmr=0 -- -e 1 "
                     "/bin/vsockexec -e 109 /bin/gcs -v4 -log-format text -loglevel info\"}},"
                     "\"ComputeTopology\":{\"Memory\":{\"SizeInMB\":512,\"AllowOvercommit\":true},"
                     "\"Processor\":{\"Count\":1}},"
                     "\"Devices\":{\"Scsi\":{\"df6d0690-79e5-55b6-a5ec-c1e2f77f580a\":{}},"
                     "\"HvSocket\":{\"HvSocketConfig\":{\"DefaultBindSecurityDescriptor\":"
                     "\"D:P(A;;FA;;;SY)(A;;FA;;;BA)\"}},\"Plan9\":{}}},"
                     "\"ShouldTerminateOnLastHandleClosed\":true}",
                     boot_dir, boot_dir);
    return n < 0 ? NULL : doc;
}

static int usage(void)
{
    fprintf(stderr, "usage: uvm-boot [--end shutdown|terminate|kill] [--disk IMG] [--port] "
                    "[--machine M] [--kernel-args A] [--timeout S] BOOT_DIR RUN_DIR\n");
    return 2;
}

int main(int argc, char **argv)
{
    struct ctx c = {0};
    struct hcs_backend_options opts = {0};
    int timeout = 90, i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--end") == 0 && i + 1 < argc) {
            const char *m = argv[++i];
            c.end = strcmp(m, "kill") == 0        ? END_KILL
                    : strcmp(m, "terminate") == 0 ? END_TERMINATE
                                                  : END_SHUTDOWN;
        } else if (strcmp(argv[i], "--disk") == 0 && i + 1 < argc) {
            c.disk = argv[++i];
        } else if (strcmp(argv[i], "--port") == 0) {
            c.port = true;
        } else if (strcmp(argv[i], "--machine") == 0 && i + 1 < argc) {
            opts.machine = argv[++i];
        } else if (strcmp(argv[i], "--kernel-args") == 0 && i + 1 < argc) {
            opts.extra_kernel_args = argv[++i];
        } else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
            timeout = atoi(argv[++i]);
        } else {
            return usage();
        }
    }
    if (argc - i != 2)
        return usage();
    log_configure(2, getenv("UVM_BOOT_DEBUG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO, LOG_FORMAT_TEXT);
    signal(SIGPIPE, SIG_IGN);
    opts.run_dir = argv[i + 1];
    c.loop = uv_default_loop();
    c.doc = make_document(argv[i]);
    shim_error_t *err = NULL;
    uv_timer_init(c.loop, &c.deadline);
    c.deadline.data = &c;
    uv_timer_start(&c.deadline, on_deadline, (uint64_t)timeout * 1000, 0);
    if (!c.doc || hcs_system_create(c.loop, "uvm-boot@vm", c.doc, &opts, &c.sys, &err) < 0) {
        fprintf(stderr, "uvm-boot: create: %s\n", err ? err->msg : "out of memory");
        return 1;
    }
    hcs_system_set_exit_callback(c.sys, on_exit_cb, &c);
    c.t_start = uv_hrtime();
    if (hcs_system_start(c.sys, on_started, &c, &err) < 0) {
        fprintf(stderr, "uvm-boot: start: %s\n", err->msg);
        error_free(err);
        c.failed = 1;
        finish(&c);
    }
    uv_run(c.loop, UV_RUN_DEFAULT);
    if (!c.exited)
        c.failed = 1;
    hcs_system_close(c.sys);
    if (c.transport)
        gcs_transport_destroy(c.transport);
    uv_run(c.loop, UV_RUN_DEFAULT);
    uv_loop_close(c.loop);
    free(c.doc);
    printf("result %s\n", c.failed ? "FAIL" : "PASS");
    return c.failed;
}
