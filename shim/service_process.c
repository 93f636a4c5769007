/* Start, Kill, Exec, ResizePty and CloseIO. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "containerd/events/task.pb-c.h"
#include "containerd/task/v2/shim.pb-c.h"
#include "shim/service_internal.h"

#define EXEC_IO_READY_TIMEOUT_MS 10000

static bool task_usable(const struct shim_task *t, shim_error_t **err)
{
    if (t->deleting) {
        error_set(err, RPC_NOT_FOUND, "task %s is being deleted", t->id);
        return false;
    }
    return true;
}

/* ---- signals ------------------------------------------------------------------------------ */

struct kill_ctx {
    ttrpc_call_t *call; /* NULL for the extra signals of `all` and deferred ones */
};

static int signal_process(struct gcs_guest_connection *c, struct shim_process *p, int sig,
                          ttrpc_call_t *call, shim_error_t **err);

static void deliver_pending_signal(struct shim_service *s, struct shim_process *p)
{
    int sig = p->pending_signal;
    p->pending_signal = 0;
    struct gcs_guest_connection *c = shim_host_connection(s->host);
    shim_error_t *err = NULL;
    if (c != NULL && signal_process(c, p, sig, NULL, &err) < 0) {
        log_fields(LOG_LEVEL_WARN, "deferred signal failed", "id", p->task->id, "error", err->msg,
                   NULL);
        error_free(err);
    }
}

/* ---- Start -------------------------------------------------------------------------------- */

struct start_ctx {
    ttrpc_call_t *call;
    struct shim_service *s;
    struct shim_process *p;
};

static void start_fail(struct start_ctx *x, shim_error_t *err)
{
    x->p->starting = false;
    x->p->pending_signal = 0;
    /* Nothing will ever be written: the client gets EOF now (ctr waits for
     * it before it sends Delete). */
    if (x->p->io != NULL) {
        shim_upstream_io_close(x->p->io, NULL, NULL);
        x->p->io = NULL;
    }
    log_fields(LOG_LEVEL_ERROR, "start failed", "id", x->p->task->id, "exec_id", x->p->exec_id,
               "error", err->msg, NULL);
    fail_and_free(x->call, err);
    free(x);
}

static void publish_started(struct shim_service *s, struct shim_process *p)
{
    if (p->exec_id[0] == '\0') {
        Containerd__Events__TaskStart ev = CONTAINERD__EVENTS__TASK_START__INIT;
        ev.container_id = p->task->id;
        ev.pid = p->pid;
        shim_events_publish(s->events, "/tasks/start", &ev.base);
    } else {
        Containerd__Events__TaskExecStarted ev = CONTAINERD__EVENTS__TASK_EXEC_STARTED__INIT;
        ev.container_id = p->task->id;
        ev.exec_id = p->exec_id;
        ev.pid = p->pid;
        shim_events_publish(s->events, "/tasks/exec-started", &ev.base);
    }
}

static void on_process_started(void *opaque, int32_t hresult, const shim_error_t *err,
                               struct gcs_process_io *io)
{
    (void)hresult;
    struct start_ctx *x = opaque;
    struct shim_process *p = x->p;
    shim_error_t *e = NULL;
    if (err != NULL) {
        error_set(&e, err->code == RPC_OK ? RPC_UNKNOWN : err->code, "failed to start %s%s%s: %s",
                  p->task->id, p->exec_id[0] ? " exec " : "", p->exec_id, err->msg);
        start_fail(x, e);
        return;
    }
    p->pid = io->pid;
    if (process_start_relay(p, io, &e) < 0) {
        /* The process runs without IO: still track it so it can be killed. */
        log_fields(LOG_LEVEL_ERROR, "stdio relay failed", "id", p->task->id, "error", e->msg, NULL);
        error_free(e);
        e = NULL;
    }
    p->starting = false;
    p->state = SHIM_PROC_RUNNING;
    char pid[16];
    snprintf(pid, sizeof(pid), "%u", p->pid);
    log_fields(LOG_LEVEL_INFO, "process started", "id", p->task->id, "exec_id", p->exec_id, "pid",
               pid, NULL);
    /* The start event is queued before the exit watcher exists (§4.1). */
    publish_started(x->s, p);
    Containerd__Task__V2__StartResponse resp = CONTAINERD__TASK__V2__START_RESPONSE__INIT;
    resp.pid = p->pid;
    ttrpc_call_reply_message(x->call, &resp.base);
    if (p->relay == NULL) /* nothing to drain */
        p->output_drained = true;
    if (p->pending_signal != 0)
        deliver_pending_signal(x->s, p);
    if (process_watch_exit(x->s, p, &e) < 0) {
        log_fields(LOG_LEVEL_ERROR, "cannot watch process exit", "id", p->task->id, "error", e->msg,
                   NULL);
        error_free(e);
        process_record_exit(p, 255);
    }
    free(x);
}

static unsigned stdio_bits(const struct shim_process *p)
{
    unsigned bits = 0;
    if (p->stdin_path[0])
        bits |= GCS_STDIO_IN;
    if (p->stdout_path[0])
        bits |= GCS_STDIO_OUT;
    if (p->stderr_path[0] && !p->terminal)
        bits |= GCS_STDIO_ERR;
    return bits;
}

static void execute(struct start_ctx *x, struct gcs_guest_connection *c)
{
    struct shim_process *p = x->p;
    struct gcs_process_parameters params = {.oci_process = p->oci_process};
    json_t *pp = gcs_process_parameters_build(&params);
    shim_error_t *err = NULL;
    if (pp == NULL) {
        error_set(&err, RPC_RESOURCE_EXHAUSTED, "out of memory");
        start_fail(x, err);
        return;
    }
    int rc =
        gcs_guest_execute_process(c, p->task->id, pp, stdio_bits(p), on_process_started, x, &err);
    json_decref(pp);
    if (rc < 0)
        start_fail(x, err);
}

static void on_container_started(void *opaque, int32_t hresult, const shim_error_t *err)
{
    (void)hresult;
    struct start_ctx *x = opaque;
    shim_error_t *e = NULL;
    struct gcs_guest_connection *c = shim_host_connection(x->s->host);
    if (err != NULL || c == NULL) {
        error_set(&e, err && err->code ? err->code : RPC_UNAVAILABLE, "failed to start %s: %s",
                  x->p->task->id, err ? err->msg : "the guest agent is gone");
        start_fail(x, e);
        return;
    }
    execute(x, c);
}

static void on_exec_io_ready(shim_upstream_io_t *io, int status, void *data)
{
    (void)io;
    struct start_ctx *x = data;
    shim_error_t *err = NULL;
    struct gcs_guest_connection *c = shim_host_connection(x->s->host);
    if (status < 0) {
        error_set_uv(&err, RPC_FAILED_PRECONDITION, status, "stdio logger not ready");
        start_fail(x, err);
    } else if (c == NULL) {
        error_set(&err, RPC_UNAVAILABLE, "the guest agent is not running");
        start_fail(x, err);
    } else {
        execute(x, c);
    }
}

static int open_exec_io(struct shim_service *s, struct start_ctx *x, shim_error_t **err)
{
    struct shim_process *p = x->p;
    if (p->io == NULL) {
        struct shim_stdio_config cfg = {
            .stdin_path = p->stdin_path,
            .stdout_path = p->stdout_path,
            .stderr_path = p->stderr_path,
            .terminal = p->terminal,
            .container_id = p->task->id,
            .namespace_name = s->daemon->args->namespace_name,
        };
        if (shim_upstream_io_open(s->loop, &cfg, &p->io, err) < 0)
            return -1;
        if (p->stdin_closed)
            shim_upstream_io_close_stdin(p->io);
    }
    return shim_upstream_io_wait_ready(p->io, EXEC_IO_READY_TIMEOUT_MS, on_exec_io_ready, x, err);
}

void service_handle_start(ttrpc_call_t *call)
{
    struct shim_service *s = service_of(call);
    Containerd__Task__V2__StartRequest *req = (Containerd__Task__V2__StartRequest *)unpack_or_fail(
        call, &containerd__task__v2__start_request__descriptor);
    if (req == NULL)
        return;
    struct shim_task *t;
    struct shim_process *p;
    shim_error_t *err = NULL;
    struct start_ctx *x = NULL;
    struct gcs_guest_connection *c = shim_host_connection(s->host);
    if (lookup_process(s, req->id, req->exec_id, &t, &p, &err) < 0 || !task_usable(t, &err))
        goto fail;
    if (p->state != SHIM_PROC_CREATED || p->starting) {
        error_set(&err, RPC_FAILED_PRECONDITION, "process %s of task %s is %s, not created",
                  p->exec_id[0] ? p->exec_id : "init", t->id,
                  p->starting ? "starting" : shim_proc_state_name(p->state));
        goto fail;
    }
    if (p != &t->init && t->init.state != SHIM_PROC_RUNNING) {
        error_set(&err, RPC_FAILED_PRECONDITION, "task %s is not running", t->id);
        goto fail;
    }
    if (c == NULL) {
        error_set(&err, RPC_UNAVAILABLE, "the guest agent is not running");
        goto fail;
    }
    x = calloc(1, sizeof(*x));
    if (x == NULL) {
        error_set(&err, RPC_RESOURCE_EXHAUSTED, "out of memory");
        goto fail;
    }
    x->call = call;
    x->s = s;
    x->p = p;
    p->starting = true;
    if (p == &t->init) {
        if (gcs_guest_start_container(c, t->id, on_container_started, x, &err) < 0)
            start_fail(x, err);
    } else if (open_exec_io(s, x, &err) < 0) {
        start_fail(x, err);
    }
    containerd__task__v2__start_request__free_unpacked(req, NULL);
    return;
fail:
    fail_and_free(call, err);
    containerd__task__v2__start_request__free_unpacked(req, NULL);
}

static void on_signalled(void *opaque, int32_t hresult, const shim_error_t *err)
{
    struct kill_ctx *x = opaque;
    if (x->call != NULL) {
        if (hresult == GCS_HR_NOT_FOUND)
            ttrpc_call_fail(x->call, RPC_NOT_FOUND, "process already finished");
        else if (err != NULL)
            ttrpc_call_fail(x->call, err->code ? err->code : RPC_UNKNOWN, "%s", err->msg);
        else
            ttrpc_call_reply(x->call, NULL, 0);
    }
    free(x);
}

static int signal_process(struct gcs_guest_connection *c, struct shim_process *p, int sig,
                          ttrpc_call_t *call, shim_error_t **err)
{
    struct kill_ctx *x = calloc(1, sizeof(*x));
    if (x == NULL)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    x->call = call;
    if (gcs_guest_signal_process(c, p->task->id, p->pid, sig, on_signalled, x, err) < 0) {
        free(x);
        return -1;
    }
    if (sig == SIGKILL)
        process_watch_output_stall(p);
    return 0;
}

static int kill_process(ttrpc_call_t *call, struct shim_service *s, struct shim_task *t,
                        struct shim_process *p, const Containerd__Task__V2__KillRequest *req,
                        shim_error_t **err)
{
    if (req->all && p != &t->init)
        return error_set(err, RPC_FAILED_PRECONDITION, "cannot signal all processes of an exec");
    if (req->signal > 64)
        return error_set(err, RPC_INVALID_ARGUMENT, "invalid signal %u", req->signal);
    if (p->state == SHIM_PROC_EXITED || p->exit_known)
        return error_set(err, RPC_NOT_FOUND, "process already finished");
    if (p->starting && req->signal != 0) {
        /* Delivered as soon as the pid is known (see on_process_started). */
        p->pending_signal = (int)req->signal;
        ttrpc_call_reply(call, NULL, 0);
        return 0;
    }
    if (p->state == SHIM_PROC_CREATED) {
        /* Never ran: it simply exits (hcsshim: status 1; TaskExit for the init only). */
        if (p == &t->init) {
            for (struct shim_process *e = t->execs; e; e = e->next)
                if (e->state == SHIM_PROC_CREATED)
                    process_exit_from_created(e, 1, false);
        }
        process_exit_from_created(p, 1, p == &t->init);
        ttrpc_call_reply(call, NULL, 0);
        return 0;
    }
    struct gcs_guest_connection *c = shim_host_connection(s->host);
    if (c == NULL)
        return error_set(err, RPC_UNAVAILABLE, "the guest agent is not running");
    if (req->signal == 0) { /* liveness probe: the guest would turn 0 into SIGKILL */
        ttrpc_call_reply(call, NULL, 0);
        return 0;
    }
    if (req->all) {
        for (struct shim_process *e = t->execs; e; e = e->next) {
            shim_error_t *ignored = NULL;
            if (e->state == SHIM_PROC_RUNNING && !e->exit_known &&
                signal_process(c, e, (int)req->signal, NULL, &ignored) < 0)
                error_free(ignored);
        }
    }
    return signal_process(c, p, (int)req->signal, call, err);
}

void service_handle_kill(ttrpc_call_t *call)
{
    struct shim_service *s = service_of(call);
    Containerd__Task__V2__KillRequest *req = (Containerd__Task__V2__KillRequest *)unpack_or_fail(
        call, &containerd__task__v2__kill_request__descriptor);
    if (req == NULL)
        return;
    struct shim_task *t;
    struct shim_process *p;
    shim_error_t *err = NULL;
    if (lookup_process(s, req->id, req->exec_id, &t, &p, &err) < 0 || !task_usable(t, &err) ||
        kill_process(call, s, t, p, req, &err) < 0)
        fail_and_free(call, err);
    containerd__task__v2__kill_request__free_unpacked(req, NULL);
}

/* ---- Exec --------------------------------------------------------------------------------- */

static json_t *parse_process_spec(const Google__Protobuf__Any *spec, shim_error_t **err)
{
    if (spec == NULL || spec->value.len == 0) {
        error_set(err, RPC_INVALID_ARGUMENT, "exec: process spec is required");
        return NULL;
    }
    json_error_t jerr;
    json_t *proc = json_loadb((const char *)spec->value.data, spec->value.len, 0, &jerr);
    if (!json_is_object(proc)) {
        json_decref(proc);
        error_set(err, RPC_INVALID_ARGUMENT, "exec: process spec (%s) is not a JSON object: %s",
                  spec->type_url, jerr.text);
        return NULL;
    }
    if (!json_is_array(json_object_get(proc, "args")) ||
        json_array_size(json_object_get(proc, "args")) == 0) {
        json_decref(proc);
        error_set(err, RPC_INVALID_ARGUMENT, "exec: process spec has no args");
        return NULL;
    }
    return proc;
}

static int add_exec(struct shim_service *s, struct shim_task *t,
                    const Containerd__Task__V2__ExecProcessRequest *req, shim_error_t **err)
{
    if (req->exec_id[0] == '\0' || shim_task_find_exec(t, req->exec_id) != NULL)
        return error_set(err, RPC_ALREADY_EXISTS, "exec %s already exists in task %s", req->exec_id,
                         t->id);
    if (t->init.state != SHIM_PROC_RUNNING || t->init.exit_known)
        return error_set(err, RPC_FAILED_PRECONDITION, "task %s is not running", t->id);
    json_t *proc = parse_process_spec(req->spec, err);
    if (proc == NULL)
        return -1;
    struct shim_process *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        json_decref(proc);
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    }
    p->task = t;
    p->oci_process = proc;
    p->terminal = req->terminal;
    p->exec_id = strdup(req->exec_id);
    p->stdin_path = strdup(req->stdin_path);
    p->stdout_path = strdup(req->stdout_path);
    p->stderr_path = strdup(req->terminal ? "" : req->stderr_path);
    if (!p->exec_id || !p->stdin_path || !p->stdout_path || !p->stderr_path) {
        shim_process_free_fields(p);
        free(p);
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    }
    /* The OCI process decides the console; keep both views consistent. */
    json_object_set_new(proc, "terminal", json_boolean(req->terminal));
    /* Opened at Start, like runc: ctr only sends CloseIO for stdin that hits
     * EOF after Exec returned, so the FIFO must not be readable before. */
    const char *paths[] = {p->stdin_path, p->stdout_path, p->stderr_path};
    for (int i = 0; i < 3; i++) {
        struct shim_stdio_uri uri;
        if (paths[i][0] == '\0')
            continue;
        if (shim_stdio_uri_parse(paths[i], &uri, err) < 0) {
            shim_process_free_fields(p);
            free(p);
            return -1;
        }
        shim_stdio_uri_free(&uri);
    }
    p->next = t->execs;
    t->execs = p;
    Containerd__Events__TaskExecAdded ev = CONTAINERD__EVENTS__TASK_EXEC_ADDED__INIT;
    ev.container_id = t->id;
    ev.exec_id = p->exec_id;
    shim_events_publish(s->events, "/tasks/exec-added", &ev.base);
    return 0;
}

void service_handle_exec(ttrpc_call_t *call)
{
    struct shim_service *s = service_of(call);
    Containerd__Task__V2__ExecProcessRequest *req =
        (Containerd__Task__V2__ExecProcessRequest *)unpack_or_fail(
            call, &containerd__task__v2__exec_process_request__descriptor);
    if (req == NULL)
        return;
    struct shim_task *t;
    shim_error_t *err = NULL;
    if (lookup_process(s, req->id, NULL, &t, NULL, &err) < 0 || !task_usable(t, &err) ||
        add_exec(s, t, req, &err) < 0)
        fail_and_free(call, err);
    else
        ttrpc_call_reply(call, NULL, 0);
    containerd__task__v2__exec_process_request__free_unpacked(req, NULL);
}

/* ---- ResizePty / CloseIO ------------------------------------------------------------------ */

static void on_resized(void *opaque, int32_t hresult, const shim_error_t *err)
{
    (void)hresult;
    ttrpc_call_t *call = opaque;
    if (err != NULL)
        ttrpc_call_fail(call, err->code ? err->code : RPC_UNKNOWN, "%s", err->msg);
    else
        ttrpc_call_reply(call, NULL, 0);
}

static int resize(ttrpc_call_t *call, struct shim_service *s, struct shim_process *p,
                  const Containerd__Task__V2__ResizePtyRequest *req, shim_error_t **err)
{
    if (!p->terminal)
        return error_set(err, RPC_FAILED_PRECONDITION, "process %s is not a terminal",
                         process_event_id(p));
    struct gcs_guest_connection *c = shim_host_connection(s->host);
    /* Not running (yet or any more), or a 0x0 size ctr sends right after Start. */
    if (p->state != SHIM_PROC_RUNNING || p->exit_known || c == NULL || req->width == 0 ||
        req->height == 0) {
        ttrpc_call_reply(call, NULL, 0);
        return 0;
    }
    uint16_t w = req->width > UINT16_MAX ? UINT16_MAX : (uint16_t)req->width;
    uint16_t h = req->height > UINT16_MAX ? UINT16_MAX : (uint16_t)req->height;
    return gcs_guest_resize_console(c, p->task->id, p->pid, h, w, on_resized, call, err);
}

void service_handle_resize_pty(ttrpc_call_t *call)
{
    struct shim_service *s = service_of(call);
    Containerd__Task__V2__ResizePtyRequest *req =
        (Containerd__Task__V2__ResizePtyRequest *)unpack_or_fail(
            call, &containerd__task__v2__resize_pty_request__descriptor);
    if (req == NULL)
        return;
    struct shim_task *t;
    struct shim_process *p;
    shim_error_t *err = NULL;
    if (lookup_process(s, req->id, req->exec_id, &t, &p, &err) < 0 ||
        resize(call, s, p, req, &err) < 0)
        fail_and_free(call, err);
    containerd__task__v2__resize_pty_request__free_unpacked(req, NULL);
}

void service_handle_close_io(ttrpc_call_t *call)
{
    struct shim_service *s = service_of(call);
    Containerd__Task__V2__CloseIORequest *req =
        (Containerd__Task__V2__CloseIORequest *)unpack_or_fail(
            call, &containerd__task__v2__close_iorequest__descriptor);
    if (req == NULL)
        return;
    struct shim_task *t;
    struct shim_process *p;
    shim_error_t *err = NULL;
    if (lookup_process(s, req->id, req->exec_id, &t, &p, &err) < 0) {
        fail_and_free(call, err);
    } else {
        log_fields(LOG_LEVEL_DEBUG, "close io", "id", t->id, "exec_id", p->exec_id, "stdin",
                   req->close_stdin ? "true" : "false", "relay", p->relay ? "true" : "false", NULL);
        if (req->close_stdin) {
            p->stdin_closed = true;
            if (p->relay)
                shim_relay_close_stdin(p->relay);
            else if (p->io)
                shim_upstream_io_close_stdin(p->io);
        }
        ttrpc_call_reply(call, NULL, 0);
    }
    containerd__task__v2__close_iorequest__free_unpacked(req, NULL);
}
