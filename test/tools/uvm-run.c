/* uvm-run: drives the uvm/ layer (uvm/uvm.h) end to end against a real
 * QEMU utility VM and our guest agent. For test/integration/shim_uvm_layer.sh.
 *
 *   uvm-run SCENARIO BOOT_DIR ROOTFS SPEC_JSON WORK_DIR
 *
 * Scenarios:
 *   boot         boot -> agent ready, printed as "agent-ready S" (measurements)
 *   run          boot from a sandbox spec with io.microsoft.virtualmachine.*
 *                annotations, rootfs image on SCSI (reference counted), a busybox
 *                container: stdout byte-exact, exit code, boot_id differs from
 *                the host's; pause/resume (a bridge call stalls while paused);
 *                delete; disk detached in the guest; VM ends, nothing left.
 *   boot-timeout boot timeout 300 ms: start fails with a clear error.
 *   garbage      the "agent" is /bin/yes: start fails (bridge lost).
 *   kill-qemu    QEMU killed with a container running: `lost` runs, the
 *                container's wait fails, nothing left.
 *   kill-agent   the guest agent is killed: `lost` runs, nothing left.
 * Prints "ok - ..." / "FAIL - ..." lines and timings; exit 0 = all ok. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "common/log.h"
#include "gcs/bridge_msg.h"
#include "gcs/guest_connection.h"
#include "uvm/uvm.h"

struct t {
    uv_loop_t *loop;
    struct uvm *u;
    int failures;
    bool lost;
    char lost_msg[512];
    int notifications;
    uint64_t t0;
};

static void check(struct t *t, bool ok, const char *fmt, ...)
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

static double since(struct t *t)
{
    return (double)(uv_hrtime() - t->t0) / 1e9;
}

static void expired_cb(uv_timer_t *tm)
{
    *(bool *)tm->data = true;
}

static bool await(struct t *t, const bool *flag, double seconds)
{
    bool expired = false;
    uv_timer_t tm;
    uv_timer_init(t->loop, &tm);
    tm.data = &expired;
    uv_timer_start(&tm, expired_cb, (uint64_t)(seconds * 1000), 0);
    while (!*flag && !expired)
        uv_run(t->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&tm, NULL);
    uv_run(t->loop, UV_RUN_NOWAIT);
    return *flag;
}

/* ---- results ------------------------------------------------------------------------- */

struct res {
    bool done;
    int code;
    int32_t hr;
    char msg[1024];
    char path[256];
    uint32_t exit_code;
    struct gcs_process_io io;
};

static void res_err(struct res *r, const shim_error_t *err)
{
    r->code = err ? err->code : 0;
    snprintf(r->msg, sizeof(r->msg), "%s", err ? err->msg : "");
    r->done = true;
}

static void on_uvm_done(void *opaque, const shim_error_t *err)
{
    res_err(opaque, err);
}

static void on_disk(void *opaque, const shim_error_t *err, const char *path)
{
    struct res *r = opaque;
    snprintf(r->path, sizeof(r->path), "%s", path ? path : "");
    res_err(r, err);
}

static void on_gcs_done(void *opaque, int32_t hr, const shim_error_t *err)
{
    struct res *r = opaque;
    r->hr = hr;
    res_err(r, err);
}

static void on_exec(void *opaque, int32_t hr, const shim_error_t *err, struct gcs_process_io *io)
{
    struct res *r = opaque;
    r->hr = hr;
    if (io)
        r->io = *io;
    res_err(r, err);
}

static void on_wait(void *opaque, int32_t hr, const shim_error_t *err, uint32_t exit_code)
{
    struct res *r = opaque;
    r->hr = hr;
    r->exit_code = exit_code;
    res_err(r, err);
}

static void on_stacks(void *opaque, int32_t hr, const shim_error_t *err, const char *stacks)
{
    (void)stacks;
    on_gcs_done(opaque, hr, err);
}

struct output {
    bool eof;
    char data[8192];
    size_t len;
};

static void on_output(void *opaque, const char *data, ssize_t len)
{
    struct output *o = opaque;
    if (len <= 0) {
        o->eof = true;
        return;
    }
    size_t n =
        (size_t)len < sizeof(o->data) - 1 - o->len ? (size_t)len : sizeof(o->data) - 1 - o->len;
    memcpy(o->data + o->len, data, n);
    o->len += n;
}

/* ---- callbacks of the uvm ------------------------------------------------------------ */

static void on_lost(void *opaque, const shim_error_t *err)
{
    struct t *t = opaque;
    t->lost = true;
    snprintf(t->lost_msg, sizeof(t->lost_msg), "%s", err ? err->msg : "?");
    printf("lost: %s (%.3f s)\n", t->lost_msg, since(t));
}

static void on_notification(void *opaque, const struct gcs_container_notification *n)
{
    struct t *t = opaque;
    (void)n;
    t->notifications++;
}

/* ---- helpers ------------------------------------------------------------------------- */

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *buf = calloc(1, 1 << 20);
    size_t n = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
    (void)n;
    fclose(f);
    return buf;
}

static bool pid_alive(int pid)
{
    return pid > 0 && (kill(pid, 0) == 0 || errno != ESRCH);
}

/* Waits (up to 15 s) for the VM process to be gone. */
static bool vm_gone(struct t *t, int pid)
{
    for (int i = 0; i < 300 && pid_alive(pid); i++) {
        uv_run(t->loop, UV_RUN_NOWAIT);
        usleep(50000);
    }
    return !pid_alive(pid);
}

static struct uvm *boot(struct t *t, const char *boot_dir, const char *work, const char *extra,
                        uint64_t boot_timeout_ms, struct res *r)
{
    json_t *spec = json_pack("{s:{},s:{s:s,s:s}}", "linux", "annotations",
                             "io.microsoft.virtualmachine.computetopology.memory.sizeinmb", "512",
                             "io.microsoft.virtualmachine.computetopology.processor.count", "1");
    shim_error_t *err = NULL;
    char *doc = uvm_document_for_spec(spec, NULL, "uvm-run@vm", "uvm-run", "info", boot_dir, &err);
    json_decref(spec);
    check(t, doc != NULL, "UVM document from annotations%s%s", err ? ": " : "",
          err ? err->msg : "");
    if (!doc) {
        error_free(err);
        return NULL;
    }
    json_t *parsed = json_loads(doc, 0, NULL);
    json_int_t mem = json_integer_value(
        json_object_get(json_object_get(json_object_get(json_object_get(parsed, "VirtualMachine"),
                                                        "ComputeTopology"),
                                        "Memory"),
                        "SizeInMB"));
    json_decref(parsed);
    check(t, mem == 512, "memory annotation reaches the document (SizeInMB %lld)", (long long)mem);
    char run_dir[512];
    snprintf(run_dir, sizeof(run_dir), "%s/vm", work);
    mkdir(run_dir, 0700);
    struct uvm_config cfg = {
        .id = "uvm-run@vm", .document = doc, .boot_timeout_ms = boot_timeout_ms};
    cfg.backend.run_dir = run_dir;
    cfg.backend.extra_kernel_args = extra;
    struct uvm_callbacks cbs = {.lost = on_lost, .container_exit = on_notification};
    struct uvm *u = NULL;
    t->t0 = uv_hrtime();
    if (uvm_create(t->loop, &cfg, &cbs, t, &u, &err) < 0 ||
        uvm_start(u, on_uvm_done, r, &err) < 0) {
        check(t, false, "uvm create/start: %s", err->msg);
        error_free(err);
        if (u)
            uvm_close(u);
        free(doc);
        return NULL;
    }
    free(doc);
    memset(r, 0, sizeof(*r));
    await(t, &r->done, 120);
    if (r->done && r->code == 0)
        printf("agent-ready %.3f\n", since(t));
    return u;
}

/* Runs a process (in container cid, or in the UVM when cid is NULL) and collects it. */
static int run_process(struct t *t, const char *cid, json_t *params, struct output *out,
                       uint32_t *exit_code, double seconds)
{
    struct res r = {0}, w = {0};
    struct output err_out = {0};
    shim_error_t *e = NULL;
    memset(out, 0, sizeof(*out));
    if (gcs_guest_execute_process(uvm_guest(t->u), cid, params, GCS_STDIO_OUT | GCS_STDIO_ERR,
                                  on_exec, &r, &e) < 0) {
        printf("exec: %s\n", e->msg);
        error_free(e);
        return -1;
    }
    if (!await(t, &r.done, seconds) || r.code != 0) {
        printf("exec failed: %s\n", r.msg);
        return -1;
    }
    if (r.io.stdout_stream)
        gcs_output_start(r.io.stdout_stream, on_output, out, NULL);
    else
        out->eof = true;
    if (r.io.stderr_stream)
        gcs_output_start(r.io.stderr_stream, on_output, &err_out, NULL);
    else
        err_out.eof = true;
    if (gcs_guest_wait_process(uvm_guest(t->u), cid, r.io.pid, GCS_WAIT_INFINITE, on_wait, &w, &e) <
        0) {
        error_free(e);
        return -1;
    }
    if (!await(t, &out->eof, seconds) || !await(t, &err_out.eof, seconds) ||
        !await(t, &w.done, seconds) || w.code != 0) {
        printf("wait failed: %s\n", w.msg);
        return -1;
    }
    if (err_out.len)
        printf("stderr: %.*s\n", (int)err_out.len, err_out.data);
    *exit_code = w.exit_code;
    return 0;
}

static int uvm_sh(struct t *t, const char *script, struct output *out, uint32_t *code)
{
    struct gcs_process_parameters pp = {.working_directory = "/"};
    pp.command_args = json_pack("[s,s,s]", "/bin/sh", "-c", script);
    pp.environment = json_pack("{s:s}", "PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    json_t *params = gcs_process_parameters_build(&pp);
    json_decref(pp.command_args);
    json_decref(pp.environment);
    int rc = run_process(t, NULL, params, out, code, 60);
    json_decref(params);
    return rc;
}

static int create_container(struct t *t, const char *cid, const char *spec_path,
                            const char *guest_root, const char *script)
{
    char *text = read_file(spec_path);
    json_t *spec = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    if (!spec)
        return -1;
    json_t *process = json_object_get(spec, "process");
    json_object_set_new(process, "args", json_pack("[s,s,s]", "/bin/sh", "-c", script));
    json_object_set_new(process, "terminal", json_false());
    shim_error_t *err = NULL;
    json_t *guest_spec = uvm_container_spec(spec, cid, guest_root, &err);
    json_decref(spec);
    if (!guest_spec) {
        printf("container spec: %s\n", err->msg);
        error_free(err);
        return -1;
    }
    char bundle[300];
    snprintf(bundle, sizeof(bundle), "/run/gcs/c/%s", cid);
    struct gcs_container_config cc = {.oci_bundle_path = bundle, .oci_specification = guest_spec};
    json_t *cfg = gcs_container_config_build(&cc);
    json_decref(guest_spec);
    struct res r = {0};
    int rc = gcs_guest_create_container(uvm_guest(t->u), cid, cfg, on_gcs_done, &r, &err);
    json_decref(cfg);
    if (rc < 0) {
        error_free(err);
        return -1;
    }
    if (!await(t, &r.done, 60) || r.code != 0) {
        printf("create: %s\n", r.msg);
        return -1;
    }
    memset(&r, 0, sizeof(r));
    if (gcs_guest_start_container(uvm_guest(t->u), cid, on_gcs_done, &r, &err) < 0) {
        error_free(err);
        return -1;
    }
    return await(t, &r.done, 60) && r.code == 0 ? 0 : -1;
}

static int delete_container(struct t *t, const char *cid)
{
    struct res r = {0};
    shim_error_t *err = NULL;
    if (gcs_guest_delete_container_state(uvm_guest(t->u), cid, on_gcs_done, &r, &err) < 0) {
        error_free(err);
        return -1;
    }
    return await(t, &r.done, 60) && r.code == 0 ? 0 : -1;
}

static void host_boot_id(char *out, size_t size)
{
    char *s = read_file("/proc/sys/kernel/random/boot_id");
    snprintf(out, size, "%s", s ? s : "");
    free(s);
}

/* ---- scenarios ------------------------------------------------------------------------ */

static int attach_rootfs(struct t *t, const char *rootfs, const char *work, char *image,
                         size_t image_size, char *guest_root, size_t root_size)
{
    snprintf(image, image_size, "%s/rootfs.img", work);
    shim_error_t *err = NULL;
    uint64_t t1 = uv_hrtime();
    if (uvm_rootfs_image_build(rootfs, image, &err) < 0) {
        check(t, false, "rootfs image: %s", err->msg);
        error_free(err);
        return -1;
    }
    printf("rootfs-image %.3f\n", (double)(uv_hrtime() - t1) / 1e9);
    struct res r = {0}, r2 = {0};
    t1 = uv_hrtime();
    if (uvm_disk_add(t->u, image, false, on_disk, &r, &err) < 0 ||
        uvm_disk_add(t->u, image, false, on_disk, &r2, &err) < 0) {
        check(t, false, "disk add: %s", err->msg);
        error_free(err);
        return -1;
    }
    await(t, &r.done, 30);
    await(t, &r2.done, 30);
    printf("disk-add %.3f\n", (double)(uv_hrtime() - t1) / 1e9);
    check(t, r.done && r.code == 0, "rootfs disk attached and mounted at %s %s", r.path, r.msg);
    check(t,
          r2.done && r2.code == 0 && strcmp(r.path, r2.path) == 0 &&
              uvm_disk_refs(t->u, image) == 2,
          "second add of the same disk takes a reference (refs %d)", uvm_disk_refs(t->u, image));
    snprintf(guest_root, root_size, "%s", r.path);
    return r.code == 0 ? 0 : -1;
}

static void check_pause(struct t *t)
{
    struct res r = {0}, s = {0};
    shim_error_t *err = NULL;
    if (uvm_pause(t->u, on_uvm_done, &r, &err) < 0) {
        check(t, false, "pause: %s", err->msg);
        error_free(err);
        return;
    }
    await(t, &r.done, 10);
    check(t, r.done && r.code == 0 && uvm_paused(t->u), "UVM paused %s", r.msg);
    /* A frozen guest cannot answer. */
    gcs_guest_dump_stacks(uvm_guest(t->u), on_stacks, &s, NULL);
    await(t, &s.done, 1.0);
    check(t, !s.done, "no bridge answer while paused");
    memset(&r, 0, sizeof(r));
    if (uvm_resume(t->u, on_uvm_done, &r, &err) < 0) {
        check(t, false, "resume: %s", err->msg);
        error_free(err);
        return;
    }
    await(t, &r.done, 10);
    check(t, r.done && r.code == 0 && !uvm_paused(t->u), "UVM resumed %s", r.msg);
    await(t, &s.done, 30);
    check(t, s.done && s.code == 0, "the stalled call completes after resume");
}

static int scenario_run(struct t *t, const char *boot_dir, const char *rootfs, const char *spec,
                        const char *work)
{
    struct res r = {0};
    t->u = boot(t, boot_dir, work, NULL, 0, &r);
    check(t, t->u && r.done && r.code == 0, "UVM booted, agent ready %s", r.msg);
    if (!t->u || r.code != 0)
        goto out;
    int vm_pid = uvm_vm_pid(t->u);
    char image[600], guest_root[256];
    if (attach_rootfs(t, rootfs, work, image, sizeof(image), guest_root, sizeof(guest_root)) < 0)
        goto end;
    const char *cid = "uvmrun1";
    uint64_t t1 = uv_hrtime();
    int rc = create_container(t, cid, spec, guest_root,
                              "cat /proc/sys/kernel/random/boot_id; printf 'hello\\tfrom uvm\\n'; "
                              "exit 7");
    check(t, rc == 0, "container created in the UVM");
    struct output out;
    uint32_t code = 0;
    if (rc == 0) {
        json_t *init = json_object();
        rc = run_process(t, cid, init, &out, &code, 60);
        json_decref(init);
        printf("container-run %.3f\n", (double)(uv_hrtime() - t1) / 1e9);
        check(t, rc == 0 && code == 7, "container init exit code 7 (got %u)", code);
        char host_id[64];
        host_boot_id(host_id, sizeof(host_id));
        const char *nl = memchr(out.data, '\n', out.len);
        size_t id_len = nl ? (size_t)(nl - out.data) : 0;
        check(t, id_len == 36 && strncmp(out.data, host_id, 36) != 0,
              "container boot_id %.*s differs from the host's %.36s", (int)id_len, out.data,
              host_id);
        check(t, nl && strcmp(nl + 1, "hello\tfrom uvm\n") == 0, "stdout byte-exact");
        check(t, delete_container(t, cid) == 0, "container state deleted");
    }
    check_pause(t);
    /* Two references: the first remove keeps the disk, the second detaches it. */
    for (int i = 0; i < 2; i++) {
        struct res d = {0};
        shim_error_t *err = NULL;
        if (uvm_disk_remove(t->u, image, on_uvm_done, &d, &err) < 0) {
            check(t, false, "disk remove: %s", err->msg);
            error_free(err);
            break;
        }
        await(t, &d.done, 30);
        check(t, d.done && d.code == 0 && uvm_disk_refs(t->u, image) == 1 - i,
              "disk remove %d (refs now %d) %s", i + 1, uvm_disk_refs(t->u, image), d.msg);
    }
    rc = uvm_sh(t,
                "grep -q ' /run/mounts/scsi/m0 ' /proc/mounts && exit 1; "
                "i=0; while [ -e /dev/sda ]; do [ $i -ge 100 ] && exit 2; i=$((i+1)); "
                "sleep 0.05; done; exit 0",
                &out, &code);
    check(t, rc == 0 && code == 0, "disk unmounted and gone in the guest (code %u)", code);
end:
    uvm_close(t->u);
    t->u = NULL;
    check(t, vm_gone(t, vm_pid), "QEMU (pid %d) gone after close", vm_pid);
out:
    return t->failures;
}

/* Boot -> agent ready (printed as "agent-ready S"), then close: for measurements. */
static int scenario_boot(struct t *t, const char *boot_dir, const char *work)
{
    struct res r = {0};
    t->u = boot(t, boot_dir, work, NULL, 0, &r);
    check(t, t->u && r.done && r.code == 0, "UVM booted %s", r.msg);
    if (t->u) {
        int pid = uvm_vm_pid(t->u);
        uvm_close(t->u);
        t->u = NULL;
        check(t, vm_gone(t, pid), "QEMU (pid %d) gone", pid);
    }
    return t->failures;
}

static int scenario_start_fails(struct t *t, const char *boot_dir, const char *work,
                                const char *extra, uint64_t timeout_ms, const char *want)
{
    struct res r = {0};
    t->u = boot(t, boot_dir, work, extra, timeout_ms, &r);
    check(t, r.done && r.code != 0 && strstr(r.msg, want) != NULL,
          "start fails with a clear error: %s", r.msg);
    if (t->u) {
        int pid = uvm_vm_pid(t->u);
        check(t, !t->lost, "no `lost` callback for a failed start");
        uvm_close(t->u);
        t->u = NULL;
        check(t, vm_gone(t, pid), "QEMU (pid %d) gone", pid);
    }
    return t->failures;
}

static int scenario_fault(struct t *t, const char *boot_dir, const char *rootfs, const char *spec,
                          const char *work, bool kill_qemu)
{
    struct res r = {0};
    t->u = boot(t, boot_dir, work, NULL, 0, &r);
    check(t, t->u && r.done && r.code == 0, "UVM booted %s", r.msg);
    if (!t->u || r.code != 0)
        return t->failures;
    int vm_pid = uvm_vm_pid(t->u);
    char image[600], guest_root[256];
    struct res w = {0}, killer = {0};
    if (attach_rootfs(t, rootfs, work, image, sizeof(image), guest_root, sizeof(guest_root)) == 0 &&
        create_container(t, "fault1", spec, guest_root, "sleep 1000") == 0) {
        struct res e = {0};
        json_t *init = json_object();
        gcs_guest_execute_process(uvm_guest(t->u), "fault1", init, 0, on_exec, &e, NULL);
        json_decref(init);
        await(t, &e.done, 60);
        check(t, e.code == 0, "long-running container started");
        gcs_guest_wait_process(uvm_guest(t->u), "fault1", e.io.pid, GCS_WAIT_INFINITE, on_wait, &w,
                               NULL);
    }
    t->t0 = uv_hrtime();
    if (kill_qemu) {
        kill(vm_pid, SIGKILL);
    } else {
        struct gcs_process_parameters pp = {.working_directory = "/"};
        pp.command_args = json_pack("[s,s,s]", "/bin/sh", "-c", "kill -9 $(pidof gcs)");
        pp.environment = json_pack("{s:s}", "PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
        json_t *params = gcs_process_parameters_build(&pp);
        gcs_guest_execute_process(uvm_guest(t->u), NULL, params, 0, on_exec, &killer, NULL);
        json_decref(params);
        json_decref(pp.command_args);
        json_decref(pp.environment);
    }
    await(t, &t->lost, 30);
    check(t, t->lost, "`lost` reported: %s", t->lost_msg);
    await(t, &w.done, 10);
    check(t, w.done && w.code != 0, "the container's pending wait failed: %s", w.msg);
    check(t, uvm_guest(t->u) == NULL, "no bridge after the loss");
    check(t, vm_gone(t, vm_pid), "QEMU (pid %d) gone without close", vm_pid);
    uvm_close(t->u);
    t->u = NULL;
    return t->failures;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr,
                "usage: uvm-run run|boot|boot-timeout|garbage|kill-qemu|kill-agent BOOT_DIR "
                "ROOTFS SPEC_JSON WORK_DIR\n");
        return 2;
    }
    const char *scenario = argv[1], *boot_dir = argv[2], *rootfs = argv[3], *spec = argv[4],
               *work = argv[5];
    log_configure(2, getenv("UVM_RUN_DEBUG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO, LOG_FORMAT_TEXT);
    signal(SIGPIPE, SIG_IGN);
    struct t t = {.loop = uv_default_loop()};
    int rc;
    if (strcmp(scenario, "run") == 0)
        rc = scenario_run(&t, boot_dir, rootfs, spec, work);
    else if (strcmp(scenario, "boot") == 0)
        rc = scenario_boot(&t, boot_dir, work);
    else if (strcmp(scenario, "boot-timeout") == 0)
        rc = scenario_start_fails(&t, boot_dir, work, NULL, 300, "boot timeout");
    else if (strcmp(scenario, "garbage") == 0)
        rc = scenario_start_fails(&t, boot_dir, work, "uvm.agent=/bin/yes", 0, "bridge lost");
    else if (strcmp(scenario, "kill-qemu") == 0)
        rc = scenario_fault(&t, boot_dir, rootfs, spec, work, true);
    else if (strcmp(scenario, "kill-agent") == 0)
        rc = scenario_fault(&t, boot_dir, rootfs, spec, work, false);
    else
        return 2;
    /* Drain: every handle must close (sanitizer builds report leaks). */
    for (int i = 0; i < 200 && uv_run(t.loop, UV_RUN_NOWAIT); i++)
        usleep(10000);
    uv_loop_close(t.loop);
    printf("result %s\n", rc ? "FAIL" : "PASS");
    return rc ? 1 : 0;
}
