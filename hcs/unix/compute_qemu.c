/* The compute service on Linux: one QEMU process per compute system.
 *
 * Lifecycle: create parses the document (nothing runs). start spawns qemu
 * paused (-S) with its QMP monitor on an inherited socketpair, negotiates
 * QMP capabilities and sends "cont". The process exit is the single source
 * of truth for "stopped"; QMP SHUTDOWN events only say why. */
#include "hcs/compute.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "hcs/qemu_config.h"
#include "hcs/qemu_host.h"
#include "hcs/qmp.h"

#define QMP_CHILD_FD 3
#define KILL_GRACE_MS 5000
#define DEVICE_DELETE_TIMEOUT_MS 10000
#define GCS_BRIDGE_PORT_NAME "1073741824" /* 0x40000000, gcs unix-dir naming */
#define E_FAIL_HR ((int32_t)0x80004005)

enum op_kind { OP_START, OP_SHUTDOWN, OP_TERMINATE, OP_MODIFY, OP_PAUSE };

struct op {
    struct op *next;
    hcs_system_t *sys;
    enum op_kind kind;
    hcs_done_cb cb;
    void *opaque;
    /* modify */
    struct qemu_modify mod;
    struct qemu_qmp_step steps[2];
    int nsteps, step;
    bool waiting_deleted;
    uv_timer_t *timer; /* DEVICE_DELETED timeout */
    char *port_path;
};

struct port {
    struct port *next;
    char *name, *path;
};

struct deleted {
    struct deleted *next;
    char id[64];
};

struct hcs_system {
    uv_loop_t *loop;
    char *id;
    struct qemu_vm_config cfg;
    struct qemu_launch launch;
    char *qemu_binary, *run_dir, *log_path, *port_dir, *gcs_path, *stdio_path, *extra_args;
    bool own_run_dir;
    enum hcs_state state;
    uv_process_t proc;
    bool proc_spawned, proc_exited;
    bool exit_final; /* process exit seen and QMP drained: the exit is reported */
    struct qmp_client *qmp;
    bool qmp_gone; /* the monitor connection ended (EOF or error) */
    hcs_exit_cb exit_cb;
    void *exit_opaque;
    bool closed;
    bool terminate_requested, shutdown_requested;
    char *shutdown_reason;
    uv_timer_t kill_timer;
    int open_handles; /* kill_timer, proc, op timers */
    struct op *ops;
    struct port *ports;
    struct deleted *deleted;
    int64_t exit_code;
    int term_signal;
};

static void system_maybe_free(hcs_system_t *s);

static bool running(const hcs_system_t *s)
{
    return s->proc_spawned && !s->proc_exited;
}
static void on_kill_timer(uv_timer_t *t);
static void op_run_step(struct op *op);

/* ---- small helpers --------------------------------------------------------------- */

static char *join(const char *a, const char *b)
{
    char *s = NULL;
    return asprintf(&s, "%s/%s", a, b) < 0 ? NULL : s;
}

static void handle_closed(uv_handle_t *h)
{
    hcs_system_t *s = h->data;
    if ((void *)h != (void *)&s->kill_timer && (void *)h != (void *)&s->proc)
        free(h);
    s->open_handles--;
    system_maybe_free(s);
}

static void close_handle(hcs_system_t *s, uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, handle_closed);
    (void)s;
}

static void remove_run_dir(hcs_system_t *s)
{
    if (!s->own_run_dir || !s->run_dir)
        return;
    for (struct port *p = s->ports; p; p = p->next)
        unlink(p->path);
    unlink(s->gcs_path);
    unlink(s->stdio_path);
    unlink(s->log_path);
    rmdir(s->port_dir);
    rmdir(s->run_dir);
}

static void system_free(hcs_system_t *s)
{
    remove_run_dir(s);
    while (s->ports) {
        struct port *p = s->ports;
        s->ports = p->next;
        free(p->name);
        free(p->path);
        free(p);
    }
    while (s->deleted) {
        struct deleted *d = s->deleted;
        s->deleted = d->next;
        free(d);
    }
    qemu_vm_config_clear(&s->cfg);
    free(s->id);
    free(s->qemu_binary);
    free(s->run_dir);
    free(s->log_path);
    free(s->port_dir);
    free(s->gcs_path);
    free(s->stdio_path);
    free(s->extra_args);
    free(s->shutdown_reason);
    free(s);
}

/* Frees once closed, the process is gone and every handle is closed. */
static void system_maybe_free(hcs_system_t *s)
{
    if (!s->closed || s->ops || (s->proc_spawned && !s->exit_final))
        return;
    if (s->qmp) {
        qmp_client_close(s->qmp);
        s->qmp = NULL;
    }
    if (s->open_handles > 0) {
        close_handle(s, (uv_handle_t *)&s->kill_timer);
        if (s->proc_spawned)
            close_handle(s, (uv_handle_t *)&s->proc);
        return;
    }
    system_free(s);
}

/* ---- operations ------------------------------------------------------------------- */

static struct op *op_new(hcs_system_t *s, enum op_kind kind, hcs_done_cb cb, void *opaque)
{
    struct op *op = calloc(1, sizeof(*op));
    if (!op)
        return NULL;
    op->sys = s;
    op->kind = kind;
    op->cb = cb;
    op->opaque = opaque;
    op->next = s->ops;
    s->ops = op;
    return op;
}

static void op_timer_closed(uv_handle_t *h)
{
    hcs_system_t *s = h->data;
    free(h);
    s->open_handles--;
    system_maybe_free(s);
}

/* Completes op (err NULL = success) and frees it. */
static void op_finish(struct op *op, const shim_error_t *err)
{
    hcs_system_t *s = op->sys;
    for (struct op **pp = &s->ops; *pp; pp = &(*pp)->next) {
        if (*pp == op) {
            *pp = op->next;
            break;
        }
    }
    if (op->timer) {
        op->timer->data = s;
        uv_close((uv_handle_t *)op->timer, op_timer_closed);
    }
    qemu_steps_clear(op->steps, op->nsteps);
    qemu_modify_clear(&op->mod);
    free(op->port_path);
    if (op->cb && !s->closed)
        op->cb(s, err, op->opaque);
    free(op);
    system_maybe_free(s);
}

static void op_fail(struct op *op, int code, const char *fmt, const char *detail)
{
    shim_error_t *e = NULL;
    error_set(&e, code, fmt, detail);
    op_finish(op, e);
    error_free(e);
}

/* The VM is gone: a pending shutdown or terminate got what it asked for;
 * everything else failed. */
static void fail_all_ops(hcs_system_t *s, const char *why)
{
    while (s->ops) {
        if (s->ops->kind == OP_TERMINATE || s->ops->kind == OP_SHUTDOWN)
            op_finish(s->ops, NULL);
        else
            op_fail(s->ops, RPC_UNAVAILABLE, "%s", why);
    }
}

/* ---- exit ---------------------------------------------------------------------------- */

static char *log_tail(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    char buf[512];
    off_t end = lseek(fd, 0, SEEK_END);
    off_t from = end > (off_t)sizeof(buf) - 1 ? end - (off_t)sizeof(buf) + 1 : 0;
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, from);
    close(fd);
    if (n <= 0)
        return NULL;
    buf[n] = '\0';
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    char *last = strrchr(buf, '\n');
    return strdup(last ? last + 1 : buf);
}

static void exit_status_of(hcs_system_t *s, struct hcs_exit_status *st)
{
    memset(st, 0, sizeof(*st));
    st->exit_code = s->exit_code;
    st->term_signal = s->term_signal;
    st->reason = s->shutdown_reason;
    const char *r = s->shutdown_reason ? s->shutdown_reason : "";
    if (s->terminate_requested) {
        st->type = HCS_EXIT_TERMINATE;
    } else if (s->term_signal == 0 && s->exit_code == 0 &&
               (strcmp(r, "guest-shutdown") == 0 || strcmp(r, "host-qmp-quit") == 0)) {
        st->type = HCS_EXIT_SHUTDOWN;
    } else {
        st->type = HCS_EXIT_UNEXPECTED;
        st->status = E_FAIL_HR;
    }
}

/* Reports the exit once the process is gone and QMP said all it had to say
 * (its SHUTDOWN event tells shutdown from crash). */
static void finalize_exit(hcs_system_t *s)
{
    if (s->exit_final)
        return;
    s->exit_final = true;
    s->state = HCS_STATE_STOPPED;
    uv_timer_stop(&s->kill_timer);
    if (s->qmp) {
        qmp_client_close(s->qmp);
        s->qmp = NULL;
    }
    log_info("compute system %s: qemu exited: code %lld signal %d reason %s", s->id,
             (long long)s->exit_code, s->term_signal,
             s->shutdown_reason ? s->shutdown_reason : "-");
    /* A start still in flight failed: say why, from the VM's log. */
    char *tail = log_tail(s->log_path);
    char why[768];
    snprintf(why, sizeof(why), "the VM exited%s%s", tail ? ": " : "", tail ? tail : "");
    free(tail);
    fail_all_ops(s, why);
    struct hcs_exit_status st;
    exit_status_of(s, &st);
    if (s->exit_cb && !s->closed)
        s->exit_cb(s, &st, s->exit_opaque);
    system_maybe_free(s);
}

static void on_process_exit(uv_process_t *proc, int64_t exit_status, int term_signal)
{
    hcs_system_t *s = proc->data;
    s->proc_exited = true;
    s->exit_code = term_signal ? -1 : exit_status;
    s->term_signal = term_signal;
    if (s->qmp && !s->qmp_gone) {
        /* EOF on QMP follows once its last events are read; bounded wait. */
        uv_timer_start(&s->kill_timer, on_kill_timer, 1000, 0);
        return;
    }
    finalize_exit(s);
}

int hcs_system_reaped(hcs_system_t *s, int pid, int wait_status)
{
    if (!s || !s->proc_spawned || s->proc_exited || s->proc.pid != pid)
        return 0;
    /* libuv's own waitpid(pid) now gets ECHILD and stays silent: report here. */
    on_process_exit(&s->proc, WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : 0,
                    WIFSIGNALED(wait_status) ? WTERMSIG(wait_status) : 0);
    return 1;
}

static void on_kill_timer(uv_timer_t *t)
{
    hcs_system_t *s = t->data;
    if (s->proc_exited) {
        finalize_exit(s); /* QMP never closed: do not wait for it */
        return;
    }
    if (s->proc_spawned) {
        log_warn("compute system %s: qemu did not exit, killing it", s->id);
        uv_process_kill(&s->proc, SIGKILL);
    }
}

/* ---- QMP ------------------------------------------------------------------------------ */

static void note_device_deleted(hcs_system_t *s, const char *id)
{
    for (struct op *op = s->ops; op; op = op->next) {
        if (op->waiting_deleted && strcmp(op->steps[op->step].wait_deleted, id) == 0) {
            op->waiting_deleted = false;
            uv_timer_stop(op->timer);
            op->step++;
            op_run_step(op);
            return;
        }
    }
    struct deleted *d = calloc(1, sizeof(*d));
    if (!d)
        return;
    snprintf(d->id, sizeof(d->id), "%s", id);
    d->next = s->deleted;
    s->deleted = d;
}

static bool take_deleted(hcs_system_t *s, const char *id)
{
    for (struct deleted **pp = &s->deleted; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->id, id) == 0) {
            struct deleted *d = *pp;
            *pp = d->next;
            free(d);
            return true;
        }
    }
    return false;
}

static void on_qmp_event(struct qmp_client *c, const char *event, json_t *data, void *opaque)
{
    hcs_system_t *s = opaque;
    (void)c;
    if (strcmp(event, "SHUTDOWN") == 0) {
        const char *reason = json_string_value(json_object_get(data, "reason"));
        free(s->shutdown_reason);
        s->shutdown_reason = reason ? strdup(reason) : NULL;
        log_debug("compute system %s: QMP SHUTDOWN (%s)", s->id, reason ? reason : "?");
    } else if (strcmp(event, "DEVICE_DELETED") == 0) {
        const char *dev = json_string_value(json_object_get(data, "device"));
        if (dev)
            note_device_deleted(s, dev);
    } else {
        log_debug("compute system %s: QMP event %s", s->id, event);
    }
}

static void finalize_exit(hcs_system_t *s);

static void on_qmp_closed(struct qmp_client *c, const shim_error_t *err, void *opaque)
{
    hcs_system_t *s = opaque;
    (void)c;
    /* Normal while qemu exits; the process exit reports the end. */
    log_debug("compute system %s: %s", s->id, err ? err->msg : "QMP closed");
    s->qmp_gone = true;
    if (s->proc_exited)
        finalize_exit(s);
}

static struct op *find_op(hcs_system_t *s, enum op_kind kind)
{
    for (struct op *op = s->ops; op; op = op->next) {
        if (op->kind == kind)
            return op;
    }
    return NULL;
}

static void on_cont(struct qmp_client *c, json_t *ret, const shim_error_t *err, void *opaque)
{
    hcs_system_t *s = opaque;
    (void)c;
    (void)ret;
    struct op *op = find_op(s, OP_START);
    if (err) {
        if (op)
            op_fail(op, RPC_INTERNAL, "starting the VM: %s", err->msg);
        return;
    }
    if (s->state == HCS_STATE_STARTING)
        s->state = HCS_STATE_RUNNING;
    if (op)
        op_finish(op, NULL);
}

static void on_qmp_ready(struct qmp_client *c, const shim_error_t *err, void *opaque)
{
    hcs_system_t *s = opaque;
    shim_error_t *e = NULL;
    if (err) {
        /* Connection lost: qemu is exiting; its exit reports why (log tail). */
        if (err->code == RPC_UNAVAILABLE)
            return;
        /* A monitor we cannot use means a VM we cannot control. */
        struct op *op = find_op(s, OP_START);
        if (op)
            op_fail(op, RPC_INTERNAL, "QMP negotiation: %s", err->msg);
        uv_process_kill(&s->proc, SIGKILL);
        return;
    }
    if (s->terminate_requested) {
        if (qmp_client_execute(c, "quit", NULL, NULL, NULL, NULL) < 0)
            uv_process_kill(&s->proc, SIGKILL);
        return;
    }
    if (qmp_client_execute(c, "cont", NULL, on_cont, s, &e) < 0) {
        struct op *op = find_op(s, OP_START);
        if (op)
            op_fail(op, RPC_INTERNAL, "%s", e->msg);
        error_free(e);
    }
}

/* ---- create / start ---------------------------------------------------------------------- */

static int resolve_machine(const char *name, enum qemu_machine *out, shim_error_t **err)
{
    if (!name || !name[0] || strcmp(name, "microvm") == 0)
        *out = QEMU_MACHINE_MICROVM;
    else if (strcmp(name, "q35") == 0)
        *out = QEMU_MACHINE_Q35;
    else
        return error_set(err, RPC_INVALID_ARGUMENT, "unknown machine type '%s'", name);
    return 0;
}

static int resolve_accel(const char *name, enum qemu_accel *out, shim_error_t **err)
{
    if (!name || !name[0] || strcmp(name, "auto") == 0)
        *out = qemu_host_kvm_usable() ? QEMU_ACCEL_KVM : QEMU_ACCEL_TCG;
    else if (strcmp(name, "kvm") == 0)
        *out = QEMU_ACCEL_KVM;
    else if (strcmp(name, "tcg") == 0)
        *out = QEMU_ACCEL_TCG;
    else
        return error_set(err, RPC_INVALID_ARGUMENT, "unknown accelerator '%s'", name);
    return 0;
}

static int check_file(const char *what, const char *path, shim_error_t **err)
{
    if (path && access(path, R_OK) != 0)
        return error_set(err, RPC_NOT_FOUND, "%s: '%s' not found", what, path);
    return 0;
}

static int setup_paths(hcs_system_t *s, const struct hcs_backend_options *o, shim_error_t **err)
{
    if (o && o->run_dir && o->run_dir[0]) {
        s->run_dir = strdup(o->run_dir);
        if (s->run_dir && mkdir(s->run_dir, 0700) < 0 && errno != EEXIST)
            return error_set_errno(err, RPC_INTERNAL, errno, "creating %s", s->run_dir);
    } else {
        char tmpl[] = "/tmp/hcs-XXXXXX";
        if (!mkdtemp(tmpl))
            return error_set_errno(err, RPC_INTERNAL, errno, "creating a run directory");
        s->run_dir = strdup(tmpl);
        s->own_run_dir = true;
    }
    if (!s->run_dir)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    s->port_dir = join(s->run_dir, "ports");
    s->log_path = o && o->log_path ? strdup(o->log_path) : join(s->run_dir, "vm.log");
    s->gcs_path = s->port_dir ? join(s->port_dir, GCS_BRIDGE_PORT_NAME) : NULL;
    s->stdio_path = s->port_dir ? join(s->port_dir, QEMU_STDIO_PORT_NAME) : NULL;
    if (!s->port_dir || !s->log_path || !s->gcs_path || !s->stdio_path)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    if (strlen(s->gcs_path) >= 100)
        return error_set(err, RPC_INVALID_ARGUMENT, "run directory path too long for sockets");
    return 0;
}

int hcs_system_create(uv_loop_t *loop, const char *id, const char *document,
                      const struct hcs_backend_options *o, hcs_system_t **out, shim_error_t **err)
{
    hcs_system_t *s = calloc(1, sizeof(*s));
    if (!s)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    s->loop = loop;
    s->id = strdup(id && id[0] ? id : "uvm");
    const char *bin = o && o->qemu_binary ? o->qemu_binary : getenv("HCS_QEMU_BINARY");
    s->qemu_binary = strdup(bin && bin[0] ? bin : "qemu-system-x86_64");
    const char *machine = o && o->machine ? o->machine : getenv("HCS_QEMU_MACHINE");
    /* HCS_QEMU_KERNEL_ARGS: extra guest kernel arguments for debugging and
     * profiling (e.g. "initcall_debug uvm.dmesg=1"), after the options' own. */
    const char *env_args = getenv("HCS_QEMU_KERNEL_ARGS");
    const char *opt_args = o && o->extra_kernel_args ? o->extra_kernel_args : NULL;
    if (opt_args && env_args && env_args[0]) {
        if (asprintf(&s->extra_args, "%s %s", opt_args, env_args) < 0)
            s->extra_args = NULL;
    } else if (opt_args || (env_args && env_args[0])) {
        s->extra_args = strdup(opt_args ? opt_args : env_args);
    }
    if (!s->id || !s->qemu_binary || ((opt_args || (env_args && env_args[0])) && !s->extra_args)) {
        system_free(s);
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    }
    if (qemu_vm_config_parse(document, &s->cfg, err) < 0 ||
        check_file("kernel", s->cfg.kernel, err) < 0 ||
        check_file("boot file", s->cfg.initrd, err) < 0 ||
        resolve_machine(machine, &s->launch.machine, err) < 0 ||
        resolve_accel(o ? o->accel : NULL, &s->launch.accel, err) < 0 ||
        setup_paths(s, o, err) < 0) {
        system_free(s);
        return -1;
    }
    s->launch.qmp_fd = QMP_CHILD_FD;
    s->launch.gcs_socket = s->gcs_path;
    s->launch.stdio_socket = s->stdio_path;
    s->launch.extra_kernel_args = s->extra_args;
    if (s->launch.machine == QEMU_MACHINE_MICROVM && s->launch.accel == QEMU_ACCEL_TCG)
        s->launch.tsc_khz = o && o->tsc_khz ? o->tsc_khz : qemu_host_tsc_khz();
    uv_timer_init(loop, &s->kill_timer);
    s->kill_timer.data = s;
    s->open_handles = 1;
    s->state = HCS_STATE_CREATED;
    *out = s;
    return 0;
}

void hcs_system_set_exit_callback(hcs_system_t *s, hcs_exit_cb cb, void *opaque)
{
    s->exit_cb = cb;
    s->exit_opaque = opaque;
}

static int spawn_qemu(hcs_system_t *s, int qmp_child, shim_error_t **err)
{
    char **argv = NULL;
    if (qemu_build_argv(s->qemu_binary, &s->cfg, &s->launch, &argv, err) < 0)
        return -1;
    int log_fd = open(s->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (log_fd < 0) {
        qemu_argv_free(argv);
        return error_set_errno(err, RPC_INTERNAL, errno, "opening %s", s->log_path);
    }
    uv_stdio_container_t stdio[4] = {
        {.flags = UV_IGNORE},
        {.flags = UV_INHERIT_FD, .data.fd = log_fd},
        {.flags = UV_INHERIT_FD, .data.fd = log_fd},
        {.flags = UV_INHERIT_FD, .data.fd = qmp_child},
    };
    uv_process_options_t opts = {
        .exit_cb = on_process_exit,
        .file = argv[0],
        .args = argv,
        .stdio = stdio,
        .stdio_count = 4,
    };
    if (log_enabled(LOG_LEVEL_DEBUG)) {
        for (size_t i = 0; argv[i]; i++)
            log_debug("qemu argv[%zu] = %s", i, argv[i]);
    }
    s->proc.data = s;
    int rc = uv_spawn(s->loop, &s->proc, &opts);
    close(log_fd);
    qemu_argv_free(argv);
    if (rc < 0) {
        /* libuv leaves the handle initialised: it must still be closed. */
        s->proc_spawned = true;
        s->proc_exited = true;
        s->exit_final = true; /* nothing ran: no exit to report */
        s->open_handles++;
        return error_set_uv(err, RPC_FAILED_PRECONDITION, rc, "starting %s", s->qemu_binary);
    }
    s->proc_spawned = true;
    s->open_handles++;
    log_info("compute system %s: qemu pid %d (%s, %s), log %s", s->id, s->proc.pid,
             s->launch.machine == QEMU_MACHINE_MICROVM ? "microvm" : "q35",
             s->launch.accel == QEMU_ACCEL_KVM ? "kvm" : "tcg", s->log_path);
    return 0;
}

int hcs_system_start(hcs_system_t *s, hcs_done_cb cb, void *opaque, shim_error_t **err)
{
    if (s->closed || s->state != HCS_STATE_CREATED)
        return error_set(err, RPC_FAILED_PRECONDITION, "compute system %s is %s, not Created",
                         s->id, hcs_state_name(s->state));
    if (mkdir(s->port_dir, 0700) < 0 && errno != EEXIST)
        return error_set_errno(err, RPC_INTERNAL, errno, "creating %s", s->port_dir);
    unlink(s->gcs_path); /* stale sockets from an earlier run */
    unlink(s->stdio_path);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return error_set_errno(err, RPC_INTERNAL, errno, "socketpair");
    struct op *op = op_new(s, OP_START, cb, opaque);
    if (!op) {
        close(sv[0]);
        close(sv[1]);
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    }
    int rc = spawn_qemu(s, sv[1], err);
    close(sv[1]);
    struct qmp_callbacks cbs = {on_qmp_ready, on_qmp_event, on_qmp_closed};
    if (rc == 0)
        rc = qmp_client_open(s->loop, sv[0], &cbs, s, &s->qmp, err);
    else
        close(sv[0]);
    if (rc < 0) {
        s->ops = op->next;
        free(op);
        if (s->proc_spawned && !s->proc_exited) {
            s->terminate_requested = true;
            s->state = HCS_STATE_STOPPING;
            uv_process_kill(&s->proc, SIGKILL); /* exit callback follows */
        } else {
            s->state = HCS_STATE_STOPPED;
        }
        return -1;
    }
    s->state = HCS_STATE_STARTING;
    return 0;
}

/* ---- shutdown / terminate ------------------------------------------------------------------ */

static void on_simple_reply(struct qmp_client *c, json_t *ret, const shim_error_t *err,
                            void *opaque)
{
    struct op *op = opaque;
    (void)c;
    (void)ret;
    /* Monitor gone: for a terminate the exit completes the op (the kill timer
     * guarantees one); a shutdown succeeded if qemu already exited. */
    if (err && err->code == RPC_UNAVAILABLE) {
        if (op->kind == OP_TERMINATE && !op->sys->exit_final)
            return;
        if (op->sys->proc_exited)
            err = NULL;
    }
    op_finish(op, err);
}

int hcs_system_shutdown(hcs_system_t *s, hcs_done_cb cb, void *opaque, shim_error_t **err)
{
    if (s->closed || s->state != HCS_STATE_RUNNING || !qmp_client_ready(s->qmp))
        return error_set(err, RPC_FAILED_PRECONDITION, "compute system %s is %s, not Running",
                         s->id, hcs_state_name(s->state));
    struct op *op = op_new(s, OP_SHUTDOWN, cb, opaque);
    if (!op)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    if (qmp_client_execute(s->qmp, "system_powerdown", NULL, on_simple_reply, op, err) < 0) {
        s->ops = op->next;
        free(op);
        return -1;
    }
    s->shutdown_requested = true;
    return 0;
}

/* Pause / resume: QMP stop / cont freeze and thaw every vCPU; devices and
 * the chardev sockets stay up, so the host side keeps its connections. */
static int run_state_change(hcs_system_t *s, const char *command, hcs_done_cb cb, void *opaque,
                            shim_error_t **err)
{
    if (s->closed || s->state != HCS_STATE_RUNNING || !qmp_client_ready(s->qmp))
        return error_set(err, RPC_FAILED_PRECONDITION, "compute system %s is %s, not Running",
                         s->id, hcs_state_name(s->state));
    struct op *op = op_new(s, OP_PAUSE, cb, opaque);
    if (!op)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    if (qmp_client_execute(s->qmp, command, NULL, on_simple_reply, op, err) < 0) {
        s->ops = op->next;
        free(op);
        return -1;
    }
    return 0;
}

int hcs_system_pause(hcs_system_t *s, hcs_done_cb cb, void *opaque, shim_error_t **err)
{
    return run_state_change(s, "stop", cb, opaque, err);
}

int hcs_system_resume(hcs_system_t *s, hcs_done_cb cb, void *opaque, shim_error_t **err)
{
    return run_state_change(s, "cont", cb, opaque, err);
}

/* Asks qemu to quit (or kills it); a timer makes sure it ends. */
static void terminate_now(hcs_system_t *s, struct op *op)
{
    s->terminate_requested = true;
    if (s->state != HCS_STATE_STOPPED)
        s->state = HCS_STATE_STOPPING;
    if (!running(s)) {
        if (op)
            op_finish(op, NULL);
        return;
    }
    uv_timer_start(&s->kill_timer, on_kill_timer, KILL_GRACE_MS, 0);
    if (qmp_client_ready(s->qmp) &&
        qmp_client_execute(s->qmp, "quit", NULL, op ? on_simple_reply : NULL, op, NULL) == 0)
        return;
    uv_process_kill(&s->proc, SIGKILL);
    if (op)
        op_finish(op, NULL);
}

static void on_deferred_done(uv_timer_t *t)
{
    struct op *op = t->data;
    op_finish(op, NULL);
}

int hcs_system_terminate(hcs_system_t *s, hcs_done_cb cb, void *opaque, shim_error_t **err)
{
    if (s->closed)
        return error_set(err, RPC_FAILED_PRECONDITION, "compute system %s is closed", s->id);
    if (s->state == HCS_STATE_CREATED || s->state == HCS_STATE_STOPPED)
        return error_set(err, RPC_FAILED_PRECONDITION, "compute system %s is %s", s->id,
                         hcs_state_name(s->state));
    struct op *op = op_new(s, OP_TERMINATE, cb, opaque);
    if (!op)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    if (!qmp_client_ready(s->qmp)) {
        /* No QMP round trip will complete the op: finish it from the loop. */
        op->timer = malloc(sizeof(*op->timer));
        if (!op->timer) {
            s->ops = op->next;
            free(op);
            return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
        }
        uv_timer_init(s->loop, op->timer);
        op->timer->data = op;
        s->open_handles++;
        uv_timer_start(op->timer, on_deferred_done, 0, 0);
        op->timer->data = op;
        terminate_now(s, NULL);
        return 0;
    }
    terminate_now(s, op);
    return 0;
}

/* ---- modify ---------------------------------------------------------------------------------- */

static void on_step_reply(struct qmp_client *c, json_t *ret, const shim_error_t *err, void *opaque);

static void on_delete_timeout(uv_timer_t *t)
{
    struct op *op = t->data;
    op->waiting_deleted = false;
    op_fail(op, RPC_DEADLINE_EXCEEDED, "device %s was not removed in time (guest busy?)",
            op->steps[op->step].wait_deleted);
}

static void record_port(hcs_system_t *s, const struct op *op)
{
    if (op->mod.add) {
        struct port *p = calloc(1, sizeof(*p));
        if (!p)
            return;
        p->name = strdup(op->mod.port_name);
        p->path = strdup(op->port_path);
        p->next = s->ports;
        s->ports = p;
        return;
    }
    for (struct port **pp = &s->ports; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->name, op->mod.port_name) == 0) {
            struct port *p = *pp;
            *pp = p->next;
            unlink(p->path);
            free(p->name);
            free(p->path);
            free(p);
            return;
        }
    }
}

static void op_run_step(struct op *op)
{
    hcs_system_t *s = op->sys;
    if (op->step >= op->nsteps) {
        if (op->mod.kind == QEMU_MODIFY_SERIAL_PORT)
            record_port(s, op);
        op_finish(op, NULL);
        return;
    }
    struct qemu_qmp_step *st = &op->steps[op->step];
    json_t *args = st->args;
    st->args = NULL; /* stolen by execute */
    shim_error_t *e = NULL;
    if (qmp_client_execute(s->qmp, st->command, args, on_step_reply, op, &e) < 0) {
        op_finish(op, e);
        error_free(e);
    }
}

/* Undoes step 0 of an add whose step 1 failed (best effort). */
static void rollback_add(struct op *op)
{
    hcs_system_t *s = op->sys;
    char dev[64], other[64];
    json_t *args;
    const char *cmd;
    if (op->mod.kind == QEMU_MODIFY_SCSI_DISK) {
        qemu_disk_ids(op->mod.disk.controller, op->mod.disk.lun, dev, other, sizeof(dev));
        cmd = "blockdev-del";
        args = json_pack("{s:s}", "node-name", other);
    } else {
        qemu_port_ids(op->mod.port_name, dev, other, sizeof(dev));
        cmd = "chardev-remove";
        args = json_pack("{s:s}", "id", other);
    }
    if (args)
        qmp_client_execute(s->qmp, cmd, args, NULL, NULL, NULL);
}

static void on_step_reply(struct qmp_client *c, json_t *ret, const shim_error_t *err, void *opaque)
{
    struct op *op = opaque;
    (void)c;
    (void)ret;
    if (err) {
        if (op->mod.add && op->step == 1 && qmp_client_ready(op->sys->qmp))
            rollback_add(op);
        op_finish(op, err);
        return;
    }
    struct qemu_qmp_step *st = &op->steps[op->step];
    if (st->wait_deleted[0] && !take_deleted(op->sys, st->wait_deleted)) {
        op->waiting_deleted = true;
        uv_timer_start(op->timer, on_delete_timeout, DEVICE_DELETE_TIMEOUT_MS, 0);
        return;
    }
    op->step++;
    op_run_step(op);
}

int hcs_system_modify(hcs_system_t *s, const char *request, hcs_done_cb cb, void *opaque,
                      shim_error_t **err)
{
    if (s->closed || s->state != HCS_STATE_RUNNING || !qmp_client_ready(s->qmp))
        return error_set(err, RPC_FAILED_PRECONDITION, "compute system %s is %s, not Running",
                         s->id, hcs_state_name(s->state));
    struct qemu_modify mod;
    if (qemu_modify_parse(&s->cfg, request, &mod, err) < 0)
        return -1;
    if (mod.kind == QEMU_MODIFY_SERIAL_PORT && mod.add && hcs_system_port_path(s, mod.port_name)) {
        error_set(err, RPC_ALREADY_EXISTS, "port %s already exists", mod.port_name);
        qemu_modify_clear(&mod);
        return -1;
    }
    struct op *op = op_new(s, OP_MODIFY, cb, opaque);
    if (!op) {
        qemu_modify_clear(&mod);
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    }
    op->mod = mod;
    if (mod.kind == QEMU_MODIFY_SERIAL_PORT && mod.add)
        op->port_path =
            mod.socket_path ? strdup(mod.socket_path) : join(s->port_dir, mod.port_name);
    op->timer = malloc(sizeof(*op->timer));
    if (!op->timer || (mod.kind == QEMU_MODIFY_SERIAL_PORT && mod.add && !op->port_path)) {
        s->ops = op->next;
        free(op->timer);
        op->timer = NULL;
        free(op->port_path);
        qemu_modify_clear(&op->mod);
        free(op);
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    }
    uv_timer_init(s->loop, op->timer);
    op->timer->data = op;
    s->open_handles++;
    if (op->port_path)
        unlink(op->port_path);
    op->nsteps = qemu_modify_commands(&op->mod, op->port_path, op->steps, err);
    if (op->nsteps < 0) {
        op->nsteps = 0;
        op->cb = NULL; /* the caller gets the error from the return value */
        op_finish(op, NULL);
        return -1;
    }
    op_run_step(op);
    return 0;
}

/* ---- properties / accessors / close ---------------------------------------------------------- */

static long long rss_bytes(int pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    long long kb = -1;
    while (fgets(line, sizeof(line), f)) {
        if (sscanf(line, "VmRSS: %lld kB", &kb) == 1)
            break;
    }
    fclose(f);
    return kb < 0 ? -1 : kb * 1024;
}

int hcs_system_properties(hcs_system_t *s, json_t **out, shim_error_t **err)
{
    bool alive = running(s);
    json_t *mem = json_pack("{s:I}", "SizeInMB", (json_int_t)s->cfg.memory_mb);
    json_t *p =
        json_pack("{s:s,s:s,s:s,s:s,s:b,s:s,s:s,s:s}", "Id", s->id, "SystemType", "VirtualMachine",
                  "RuntimeOsType", "Linux", "State", hcs_state_name(s->state), "Stopped",
                  s->state == HCS_STATE_STOPPED, "Backend", "qemu", "Machine",
                  s->launch.machine == QEMU_MACHINE_MICROVM ? "microvm" : "q35", "Accelerator",
                  s->launch.accel == QEMU_ACCEL_KVM ? "kvm" : "tcg");
    if (!p || !mem) {
        json_decref(p);
        json_decref(mem);
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    }
    if (alive) {
        json_object_set_new(p, "ProcessId", json_integer(s->proc.pid));
        long long rss = rss_bytes(s->proc.pid);
        if (rss >= 0)
            json_object_set_new(mem, "WorkingSetBytes", json_integer(rss));
    }
    json_object_set_new(p, "Memory", mem);
    *out = p;
    return 0;
}

const char *hcs_system_id(const hcs_system_t *s)
{
    return s->id;
}

enum hcs_state hcs_system_state(const hcs_system_t *s)
{
    return s->state;
}

const char *hcs_system_port_path(const hcs_system_t *s, const char *name)
{
    if (strcmp(name, QEMU_GCS_PORT_NAME) == 0)
        return s->gcs_path;
    if (strcmp(name, QEMU_STDIO_PORT_NAME) == 0)
        return s->stdio_path;
    for (const struct port *p = s->ports; p; p = p->next) {
        if (strcmp(p->name, name) == 0)
            return p->path;
    }
    return NULL;
}

const char *hcs_system_port_dir(const hcs_system_t *s)
{
    return s->port_dir;
}

const char *hcs_system_log_path(const hcs_system_t *s)
{
    return s->log_path;
}

void hcs_system_close(hcs_system_t *s)
{
    if (!s || s->closed)
        return;
    s->closed = true;
    /* Operations still run to completion (their handles), silently. */
    if (running(s) && !s->terminate_requested)
        terminate_now(s, NULL);
    system_maybe_free(s);
}
