/* Processes: exit observation, WaitForProcess, and processes in the UVM. */
#include <errno.h>
#include <fcntl.h>
#include <pty.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd/gcs/agent.h"
#include "common/log.h"
#include "gcs/guest/exitcode.h"
#include "gcs/guest/procparams.h"

struct waiter {
    struct waiter *next;
    struct process *p; /* reference */
    struct request *req;
    uv_timer_t timer;
};

struct process *process_new(struct agent *a, struct container *c, bool is_init)
{
    struct process *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->a = a;
    p->refs = 1; /* the list (or c->init) */
    p->listed = true;
    p->is_init = is_init;
    p->pty_fd = -1;
    p->fd[0] = p->fd[1] = p->fd[2] = -1;
    a->live_objects++;
    if (c) {
        container_ref(c);
        p->c = c;
        if (is_init) {
            c->init = p;
        } else {
            p->next = c->execs;
            c->execs = p;
        }
    } else {
        p->next = a->uvm_processes;
        a->uvm_processes = p;
    }
    return p;
}

void process_ref(struct process *p)
{
    p->refs++;
}

static void process_free(struct process *p)
{
    struct agent *a = p->a;
    for (int i = 0; i < 3; i++) {
        if (p->fd[i] >= 0)
            close(p->fd[i]);
    }
    if (p->pty_fd >= 0)
        close(p->pty_fd);
    if (p->c)
        container_unref(p->c);
    free(p);
    a->live_objects--;
    agent_maybe_finish_shutdown(a);
}

void process_unref(struct process *p)
{
    if (--p->refs == 0)
        process_free(p);
}

void process_unlist(struct process *p)
{
    if (!p->listed)
        return;
    p->listed = false;
    struct process **head = NULL;
    if (p->c && p->is_init) {
        if (p->c->init == p)
            p->c->init = NULL;
    } else {
        head = p->c ? &p->c->execs : &p->a->uvm_processes;
    }
    for (struct process **pp = head; pp && *pp; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    }
    p->next = NULL;
    process_unref(p);
}

struct process *process_find_uvm(struct agent *a, uint32_t pid)
{
    for (struct process *p = a->uvm_processes; p; p = p->next) {
        if (p->started && (uint32_t)p->pid == pid)
            return p;
    }
    return NULL;
}

struct process *process_find_in_container(struct container *c, uint32_t pid)
{
    if (c->init && c->init->started && (uint32_t)c->init->pid == pid)
        return c->init;
    for (struct process *p = c->execs; p; p = p->next) {
        if (p->started && (uint32_t)p->pid == pid)
            return p;
    }
    return NULL;
}

uint32_t process_exit_code(const struct process *p)
{
    return p->c ? gcs_exit_code_container(p->wait_status) : gcs_exit_code_uvm(p->wait_status);
}

/* ---- waits ---------------------------------------------------------------------------- */

static void on_waiter_closed(uv_handle_t *h)
{
    struct waiter *w = h->data;
    process_unref(w->p);
    free(w);
}

static void waiter_remove(struct waiter *w)
{
    for (struct waiter **pp = &w->p->waiters; *pp; pp = &(*pp)->next) {
        if (*pp == w) {
            *pp = w->next;
            break;
        }
    }
    uv_timer_stop(&w->timer);
    uv_close((uv_handle_t *)&w->timer, on_waiter_closed);
}

static void reply_exit_code(struct request *req, struct process *p)
{
    struct gcs_wait_process_response resp = {0};
    resp.base.activity_id = req->activity_id;
    resp.exit_code = process_exit_code(p);
    request_reply(req, gcs_wait_process_response_build(&resp));
}

/* After the first answered wait an exec'd or UVM process is forgotten; the
 * init process stays until the container is deleted and triggers the exit
 * notification. */
static void after_answered(struct process *p)
{
    bool first = !p->wait_answered;
    p->wait_answered = true;
    if (p->is_init) {
        if (first && p->c)
            container_init_waited(p->c);
    } else {
        process_unlist(p);
    }
}

static void answer_waiters(struct process *p)
{
    if (!p->waiters)
        return;
    process_ref(p);
    while (p->waiters) {
        struct waiter *w = p->waiters;
        struct request *req = w->req;
        w->req = NULL;
        waiter_remove(w);
        reply_exit_code(req, p);
    }
    after_answered(p);
    process_unref(p);
}

static void check_complete(struct process *p)
{
    if (p->complete || !p->exited || p->outputs_open > 0)
        return;
    p->complete = true;
    log_debug("process %d complete (exit code %u)", p->pid, process_exit_code(p));
    answer_waiters(p);
}

void process_output_finished(struct process *p)
{
    p->outputs_open--;
    check_complete(p);
}

static void on_wait_timeout(uv_timer_t *t)
{
    struct waiter *w = t->data;
    struct request *req = w->req;
    w->req = NULL;
    waiter_remove(w);
    request_reply_error(req, GCS_HR_TIMEOUT, "HRESULT: 0xc0370109: timed out waiting for process");
}

void process_wait(struct request *req, struct process *p, uint32_t timeout_ms)
{
    if (p->complete) {
        process_ref(p);
        reply_exit_code(req, p);
        after_answered(p);
        process_unref(p);
        return;
    }
    struct waiter *w = calloc(1, sizeof(*w));
    if (!w) {
        request_reply_error(req, GCS_HR_E_FAIL, "out of memory");
        return;
    }
    process_ref(p);
    w->p = p;
    w->req = req;
    uv_timer_init(p->a->loop, &w->timer);
    w->timer.data = w;
    w->next = p->waiters;
    p->waiters = w;
    if (timeout_ms != GCS_WAIT_INFINITE)
        uv_timer_start(&w->timer, on_wait_timeout, timeout_ms, 0);
}

void process_abort(struct process *p)
{
    process_ref(p);
    while (p->waiters) {
        struct waiter *w = p->waiters;
        request_free(w->req);
        w->req = NULL;
        waiter_remove(w);
    }
    stdio_abort(p);
    process_unref(p);
}

/* ---- exits ------------------------------------------------------------------------------ */

void process_exited(struct process *p, int wait_status)
{
    if (p->exited)
        return;
    p->exited = true;
    p->wait_status = wait_status;
    log_info("%s pid %d exited: status 0x%x, exit code %u",
             p->c ? (p->is_init ? "container init" : "container exec") : "UVM process", p->pid,
             wait_status, process_exit_code(p));
    if (p->is_init && p->c)
        p->c->state = CONTAINER_STOPPED;
    process_ref(p);
    stdio_process_exited(p);
    check_complete(p);
    process_unref(p);
}

static void on_reaped(void *data, int pid, int wait_status)
{
    (void)pid;
    struct process *p = data;
    process_exited(p, wait_status);
    process_unref(p);
}

void process_watch(struct process *p, int pid)
{
    p->pid = pid;
    p->started = true;
    process_ref(p); /* for the watch */
    int status = 0;
    int rc = gcs_reaper_watch(p->a->reaper, pid, on_reaped, p, &status);
    if (rc == 1) {
        on_reaped(p, pid, status);
    } else if (rc < 0) {
        log_error("cannot watch pid %d: out of memory", pid);
        process_unref(p);
    }
}

/* ---- processes in the UVM -------------------------------------------------------------- */

struct uvm_exec_ctx {
    struct request *req;
    struct process *p;
    struct gcs_guest_command cmd;
    struct stdio_fds fds;
};

static void uvm_exec_ctx_free(struct uvm_exec_ctx *x)
{
    gcs_guest_command_free(&x->cmd);
    stdio_fds_close_all(&x->fds);
    if (x->p) {
        process_unlist(x->p);
        process_unref(x->p);
    }
    free(x);
}

static void on_uvm_exit(void *data, int pid, int wait_status)
{
    (void)pid;
    struct process *p = data;
    process_exited(p, wait_status);
    process_unref(p);
}

static int uvm_spawn(struct uvm_exec_ctx *x, shim_error_t **err)
{
    uv_stdio_container_t sc[3];
    for (int i = 0; i < 3; i++) {
        sc[i].flags = x->fds.child[i] >= 0 ? UV_INHERIT_FD : UV_IGNORE;
        sc[i].data.fd = x->fds.child[i];
    }
    uv_process_options_t o = {0};
    o.file = x->cmd.argv[0];
    o.args = x->cmd.argv;
    o.env = x->cmd.env;
    o.cwd = x->cmd.working_dir;
    o.stdio = sc;
    o.stdio_count = 3;
    /* A console process leads its own session, like a login. */
    o.flags = x->p->terminal ? UV_PROCESS_DETACHED : 0;
    process_ref(x->p); /* for the exit callback */
    int pid = gcs_reaper_spawn(x->p->a->reaper, &o, on_uvm_exit, x->p, err);
    if (pid < 0) {
        process_unref(x->p);
        return -1;
    }
    x->p->pid = pid;
    x->p->started = true;
    return 0;
}

static void on_uvm_dialled(void *data, struct stdio_conns *conns, shim_error_t *err)
{
    struct uvm_exec_ctx *x = data;
    struct request *req = x->req;
    if (err) {
        request_reply_error(req, GCS_HR_E_FAIL, "%s", err->msg);
        error_free(err);
        uvm_exec_ctx_free(x);
        return;
    }
    shim_error_t *serr = NULL;
    if (req->a->shutting_down) {
        stdio_conns_close(conns);
        request_reply_error(req, GCS_HR_E_FAIL, "agent shutting down");
        uvm_exec_ctx_free(x);
        return;
    }
    if (uvm_spawn(x, &serr) < 0) {
        stdio_conns_close(conns);
        request_reply_error(req, GCS_HR_E_FAIL, "starting %s: %s", x->cmd.argv[0], serr->msg);
        error_free(serr);
        uvm_exec_ctx_free(x);
        return;
    }
    stdio_fds_close_child(&x->fds);
    for (int i = 0; i < 3; i++) {
        x->p->fd[i] = x->fds.agent[i];
        x->fds.agent[i] = -1;
    }
    stdio_attach(x->p, conns);
    log_info("started %s in the UVM as pid %d", x->cmd.argv[0], x->p->pid);
    struct gcs_execute_process_response resp = {0};
    resp.base.activity_id = req->activity_id;
    resp.process_id = (uint32_t)x->p->pid;
    request_reply(req, gcs_execute_process_response_build(&resp));
    process_unref(x->p); /* the list keeps it */
    x->p = NULL;
    uvm_exec_ctx_free(x);
}

static int open_console(struct uvm_exec_ctx *x, shim_error_t **err)
{
    int master = -1, slave = -1;
    if (openpty(&master, &slave, NULL, NULL, NULL) < 0)
        return error_set_errno(err, RPC_INTERNAL, errno, "openpty");
    fcntl(master, F_SETFD, FD_CLOEXEC);
    fcntl(slave, F_SETFD, FD_CLOEXEC);
    int fds[4] = {fcntl(master, F_DUPFD_CLOEXEC, 3), fcntl(master, F_DUPFD_CLOEXEC, 3),
                  fcntl(slave, F_DUPFD_CLOEXEC, 3), fcntl(slave, F_DUPFD_CLOEXEC, 3)};
    for (int i = 0; i < 4; i++) {
        if (fds[i] < 0) {
            for (int k = 0; k < 4; k++)
                if (fds[k] >= 0)
                    close(fds[k]);
            close(master);
            close(slave);
            return error_set_errno(err, RPC_INTERNAL, errno, "fcntl(F_DUPFD_CLOEXEC)");
        }
    }
    x->p->pty_fd = master;
    x->fds.agent[0] = fds[0];
    x->fds.agent[1] = fds[1];
    x->fds.child[0] = slave;
    x->fds.child[1] = fds[2];
    x->fds.child[2] = fds[3];
    return 0;
}

void uvm_exec(struct request *req, const struct gcs_process_parameters *params,
              const struct gcs_stdio_ports *ports)
{
    struct agent *a = req->a;
    shim_error_t *err = NULL;
    struct uvm_exec_ctx *x = calloc(1, sizeof(*x));
    if (!x) {
        request_reply_error(req, GCS_HR_E_FAIL, "out of memory");
        return;
    }
    x->req = req;
    stdio_fds_init(&x->fds);
    if (gcs_guest_command_from_params(params, &x->cmd, &err) < 0) {
        request_reply_error(req, GCS_HR_E_INVALIDARG, "%s", err->msg);
        goto fail;
    }
    x->p = process_new(a, NULL, false);
    if (!x->p) {
        request_reply_error(req, GCS_HR_E_FAIL, "out of memory");
        goto fail;
    }
    process_ref(x->p); /* the context's own reference */
    x->p->terminal = params->emulate_console;
    int rc = params->emulate_console ? open_console(x, &err) : stdio_fds_pipes(&x->fds, &err);
    if (rc < 0) {
        request_reply_error(req, GCS_HR_E_FAIL, "%s", err->msg);
        goto fail;
    }
    uint32_t port[3] = {ports->stdin_port, ports->stdout_port, ports->stderr_port};
    bool want[3] = {params->create_stdin_pipe && port[0], params->create_stdout_pipe && port[1],
                    params->create_stderr_pipe && port[2]};
    stdio_dial(a, port, want, on_uvm_dialled, x);
    return;
fail:
    error_free(err);
    uvm_exec_ctx_free(x);
}
