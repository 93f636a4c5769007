#include "shim/service.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "containerd/events/task.pb-c.h"
#include "containerd/task/v2/shim.pb-c.h"
#include "gcs/guest_connection.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "shim/host.h"
#include "shim/events.h"
#include "shim/options.h"
#include "shim/service_internal.h"
#include "shim/task.h"

#define EVENTS_FLUSH_TIMEOUT_MS 5000
/* How long output may make no progress after the exit before it is dropped. */
#define SHIM_OUTPUT_STALL_MS 10000
/* Go's zero time.Time, what containerd 1.6 sends for "not exited" (§2.2). */
#define GO_ZERO_TIME_SECONDS (-62135596800LL)

/* ---- helpers ------------------------------------------------------------------------------ */

struct shim_service *service_of(ttrpc_call_t *call)
{
    struct shim_daemon *d = ttrpc_call_user_data(call);
    return d->task_service;
}

void fail_and_free(ttrpc_call_t *call, shim_error_t *err)
{
    log_fields(LOG_LEVEL_DEBUG, "task call failed", "method", ttrpc_call_method(call), "error",
               err->msg, NULL);
    ttrpc_call_fail_error(call, err);
    error_free(err);
}

ProtobufCMessage *unpack_or_fail(ttrpc_call_t *call, const ProtobufCMessageDescriptor *desc)
{
    shim_error_t *err = NULL;
    ProtobufCMessage *msg = ttrpc_call_unpack(call, desc, &err);
    if (msg == NULL)
        fail_and_free(call, err);
    return msg;
}

void timestamp_fill(Google__Protobuf__Timestamp *ts, const struct shim_process *p)
{
    google__protobuf__timestamp__init(ts);
    if (p->state == SHIM_PROC_EXITED) {
        ts->seconds = p->exited_at.tv_sec;
        ts->nanos = (int32_t)p->exited_at.tv_nsec;
    } else {
        ts->seconds = GO_ZERO_TIME_SECONDS;
    }
}

struct shim_task *service_find_task(struct shim_service *s, const char *id)
{
    for (struct shim_task *t = s->tasks; t; t = t->next)
        if (!t->creating && strcmp(t->id, id) == 0)
            return t;
    return NULL;
}

int lookup_process(struct shim_service *s, const char *id, const char *exec_id,
                   struct shim_task **task, struct shim_process **proc, shim_error_t **err)
{
    struct shim_task *t = service_find_task(s, id);
    if (t == NULL)
        return error_set(err, RPC_NOT_FOUND, "task %s not found", id);
    struct shim_process *p = shim_task_process(t, exec_id);
    if (p == NULL)
        return error_set(err, RPC_NOT_FOUND, "exec %s not found in task %s", exec_id, id);
    *task = t;
    if (proc)
        *proc = p;
    return 0;
}

const char *process_event_id(const struct shim_process *p)
{
    return p->exec_id[0] ? p->exec_id : p->task->id;
}

/* ---- exit handling (§5.4: output first, then the event, then Wait) ------------------------ */

static void answer_waiters(struct shim_process *p)
{
    struct shim_wait_call *w = p->waiters;
    p->waiters = NULL;
    while (w) {
        struct shim_wait_call *next = w->next;
        Containerd__Task__V2__WaitResponse resp = CONTAINERD__TASK__V2__WAIT_RESPONSE__INIT;
        Google__Protobuf__Timestamp ts;
        timestamp_fill(&ts, p);
        resp.exit_status = p->exit_status;
        resp.exited_at = &ts;
        ttrpc_call_set_context(w->call, NULL);
        ttrpc_call_reply_message(w->call, &resp.base);
        free(w);
        w = next;
    }
}

static void publish_exit(struct shim_process *p)
{
    struct shim_service *s = p->task->service;
    Containerd__Events__TaskExit ev = CONTAINERD__EVENTS__TASK_EXIT__INIT;
    Google__Protobuf__Timestamp ts;
    timestamp_fill(&ts, p);
    ev.container_id = p->task->id;
    ev.id = (char *)process_event_id(p);
    ev.pid = p->pid;
    ev.exit_status = p->exit_status;
    ev.exited_at = &ts;
    shim_events_publish(s->events, "/tasks/exit", &ev.base);
}

static void process_exited(struct shim_process *p, bool publish)
{
    p->state = SHIM_PROC_EXITED;
    p->finishing = false;
    char status[16];
    snprintf(status, sizeof(status), "%u", p->exit_status);
    log_fields(LOG_LEVEL_INFO, "process exited", "id", p->task->id, "exec_id", p->exec_id,
               "exit_status", status, NULL);
    if (publish)
        publish_exit(p);
    answer_waiters(p);
    service_maybe_exit(p->task->service);
}

/* The relay's close callback may outlive the process (service_drop_tasks
 * clears token->process), so it gets a token, not the process. */
struct shim_finish_token {
    struct shim_process *process;
};

static void on_upstream_closed(void *data)
{
    struct shim_finish_token *token = data;
    struct shim_process *p = token->process;
    free(token);
    if (p == NULL)
        return;
    p->finish_token = NULL;
    process_exited(p, true);
}

static void free_timer(uv_handle_t *h)
{
    free(h);
}

static void stop_stall_timer(struct shim_process *p)
{
    if (p->stall_timer == NULL)
        return;
    uv_close((uv_handle_t *)p->stall_timer, free_timer);
    p->stall_timer = NULL;
}

void process_forget_finish(struct shim_process *p)
{
    if (p->finish_token != NULL) {
        p->finish_token->process = NULL;
        p->finish_token = NULL;
    }
}

static void maybe_finish(struct shim_process *p)
{
    if (p->task->service->closing)
        return; /* service_drop_tasks releases everything */
    if (!p->exit_known || !p->output_drained || p->finishing || p->state == SHIM_PROC_EXITED)
        return;
    stop_stall_timer(p);
    p->finishing = true;
    shim_relay_t *relay = p->relay;
    p->relay = NULL;
    struct shim_finish_token *token = relay ? calloc(1, sizeof(*token)) : NULL;
    if (token != NULL) {
        token->process = p;
        p->finish_token = token;
        shim_relay_close(relay, on_upstream_closed, token);
        return;
    }
    if (relay)
        shim_relay_close(relay, NULL, NULL);
    process_exited(p, true);
}

static uint64_t relayed_bytes(const struct shim_process *p)
{
    struct shim_relay_stats st = {0};
    if (p->relay)
        shim_relay_get_stats(p->relay, &st);
    return st.stdout_bytes + st.stderr_bytes;
}

/* Output is relayed as long as it moves, however slowly; only a relay that
 * made no progress for a whole period (the client stopped reading and went
 * away) is abandoned so that Wait and Delete still complete. */
static void on_stall_check(uv_timer_t *t)
{
    struct shim_process *p = t->data;
    uint64_t now = relayed_bytes(p);
    if (now != p->stall_bytes) {
        p->stall_bytes = now;
        return;
    }
    log_fields(LOG_LEVEL_WARN, "output relay stalled (nobody reads it); dropping it", "id",
               p->task->id, "exec_id", p->exec_id, NULL);
    stop_stall_timer(p);
    p->output_drained = true;
    if (p->relay != NULL && !p->exit_known) {
        /* The agent only answers the wait once our side took all output:
         * closing the streams lets it finish. */
        shim_relay_close(p->relay, NULL, NULL);
        p->relay = NULL;
    }
    maybe_finish(p);
}

void process_watch_output_stall(struct shim_process *p)
{
    if (p->stall_timer != NULL || p->output_drained || p->task->service->closing)
        return;
    p->stall_timer = malloc(sizeof(*p->stall_timer));
    if (p->stall_timer == NULL)
        return;
    uv_timer_init(p->task->service->loop, p->stall_timer);
    p->stall_timer->data = p;
    p->stall_bytes = relayed_bytes(p);
    uv_timer_start(p->stall_timer, on_stall_check, SHIM_OUTPUT_STALL_MS, SHIM_OUTPUT_STALL_MS);
}

void process_record_exit(struct shim_process *p, uint32_t status)
{
    if (p->exit_known)
        return;
    p->exit_known = true;
    p->exit_status = status;
    clock_gettime(CLOCK_REALTIME, &p->exited_at);
    process_watch_output_stall(p);
    maybe_finish(p);
}

static void on_relay_drained(shim_relay_t *relay, void *data)
{
    (void)relay;
    struct shim_process *p = data;
    p->output_drained = true;
    maybe_finish(p);
}

/* A process that never ran (Kill/Delete of a created process): no output to
 * wait for; execs get no TaskExit (hcsshim). */
void process_exit_from_created(struct shim_process *p, uint32_t status, bool publish)
{
    p->exit_known = true;
    p->output_drained = true;
    p->exit_status = status;
    clock_gettime(CLOCK_REALTIME, &p->exited_at);
    if (p->io) {
        shim_upstream_io_close(p->io, NULL, NULL);
        p->io = NULL;
    }
    process_exited(p, publish);
}

int process_start_relay(struct shim_process *p, struct gcs_process_io *io, shim_error_t **err)
{
    struct shim_relay_streams streams = {
        .stdin_stream = io->stdin_stream,
        .stdout_stream = io->stdout_stream,
        .stderr_stream = io->stderr_stream,
    };
    io->stdin_stream = io->stdout_stream = io->stderr_stream = NULL;
    shim_upstream_io_t *upstream = p->io;
    p->io = NULL;
    if (shim_relay_start(upstream, &streams, on_relay_drained, p, &p->relay, err) < 0)
        return -1;
    if (p->stdin_closed)
        shim_relay_close_stdin(p->relay);
    return 0;
}

static void on_process_waited(void *opaque, int32_t hresult, const shim_error_t *err,
                              uint32_t exit_code)
{
    struct shim_process *p = opaque;
    if (err != NULL && hresult != GCS_HR_NOT_FOUND) {
        log_fields(LOG_LEVEL_ERROR, "waiting for process failed", "id", p->task->id, "exec_id",
                   p->exec_id, "error", err->msg, NULL);
        /* The agent is gone: with process isolation the process is a host
         * process nobody manages any more (reparented to us, the subreaper).
         * In a UVM it went with the VM (and its pid is not ours). */
        if (p->pid > 0 && shim_host_pids_are_local(p->task->service->host))
            uv_kill((int)p->pid, SIGKILL);
        exit_code = 255;
    }
    process_record_exit(p, exit_code);
}

int process_watch_exit(struct shim_service *s, struct shim_process *p, shim_error_t **err)
{
    struct gcs_guest_connection *c = shim_host_connection(s->host);
    if (c == NULL)
        return error_set(err, RPC_UNAVAILABLE, "the guest agent is gone");
    return gcs_guest_wait_process(c, p->task->id, p->pid, GCS_WAIT_INFINITE, on_process_waited, p,
                                  err);
}

/* ---- service lifecycle -------------------------------------------------------------------- */

static void on_host_lost(void *opaque, const char *reason)
{
    struct shim_service *s = opaque;
    bool local = shim_host_pids_are_local(s->host);
    log_fields(LOG_LEVEL_ERROR, "the container host is gone; every process in it exited", "reason",
               reason ? reason : "-", NULL);
    /* Every process that was running is gone with it (hcsshim: the UVM died).
     * With process isolation they are host processes (reparented to us, the
     * subreaper): make that true instead of leaving them unmanaged. */
    for (struct shim_task *t = s->tasks; t; t = t->next) {
        if (t->init.state == SHIM_PROC_RUNNING) {
            if (local && t->init.pid > 0 && !t->init.exit_known)
                uv_kill((int)t->init.pid, SIGKILL);
            process_record_exit(&t->init, 255);
        }
        for (struct shim_process *p = t->execs; p; p = p->next) {
            if (p->state != SHIM_PROC_RUNNING)
                continue;
            if (local && p->pid > 0 && !p->exit_known)
                uv_kill((int)p->pid, SIGKILL);
            process_record_exit(p, 255);
        }
    }
}

static void on_host_container_exit(void *opaque, const char *container_id)
{
    (void)opaque;
    log_fields(LOG_LEVEL_DEBUG, "container notification", "id", container_id, NULL);
}

int service_ensure_host(struct shim_service *s, enum shim_host_kind kind, const char *task_id,
                        const json_t *spec, const runhcs_options *options, shim_error_t **err)
{
    static const char *const names[] = {"process", "hypervisor"};
    if (s->host != NULL) {
        if (s->host->kind != kind)
            return error_set(err, RPC_FAILED_PRECONDITION,
                             "task %s wants %s isolation but this shim runs %s containers", task_id,
                             names[kind], names[s->host->kind]);
        return 0;
    }
    struct shim_host_callbacks cbs = {.lost = on_host_lost,
                                      .container_exit = on_host_container_exit};
    int rc;
    if (kind == SHIM_HOST_PROCESS) {
        rc = shim_host_process_new(s->loop, s->daemon->args->debug, &cbs, s, &s->host, err);
    } else {
        struct shim_host_uvm_config cfg = {
            .owner_id = task_id, .spec = spec, .options = options, .debug = s->daemon->args->debug};
        rc = shim_host_uvm_new(s->loop, &cfg, &cbs, s, &s->host, err);
    }
    if (rc < 0)
        return -1;
    free(s->host_owner);
    s->host_owner = strdup(task_id);
    return 0;
}

static void on_child_exited(struct shim_daemon *d, pid_t pid, int wait_status)
{
    struct shim_service *s = d->task_service;
    if (s && (shim_host_child_exited(s->host, pid, wait_status) ||
              shim_host_child_exited(s->closing_host, pid, wait_status)))
        return;
    log_debug("reaped child %d (status %d)", (int)pid, wait_status);
}

int shim_service_new(struct shim_daemon *d, shim_error_t **err)
{
    struct shim_service *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    s->daemon = d;
    s->loop = d->loop;
    const char *address = getenv("TTRPC_ADDRESS");
    if (address == NULL || address[0] == '\0')
        log_fields(LOG_LEVEL_WARN, "TTRPC_ADDRESS not set: events will not be published", NULL);
    if (shim_events_new(d->loop, address, d->args->namespace_name, &s->events, err) < 0) {
        free(s);
        return -1;
    }
    d->task_service = s;
    d->child_exited = on_child_exited;
    return 0;
}

struct close_ctx {
    struct shim_service *s;
    int pending;
    shim_service_closed_fn done;
    void *arg;
};

static void close_step_done(void *arg)
{
    struct close_ctx *x = arg;
    if (--x->pending > 0)
        return;
    if (x->s->creates_in_flight > 0) {
        /* A Create still runs (e.g. waiting for a binary:// logger): it
         * fails on its own shortly; the service must outlive it. */
        x->pending = 1;
        x->s->close_waiting = x;
        return;
    }
    x->s->daemon->task_service = NULL;
    shim_service_closed_fn done = x->done;
    void *darg = x->arg;
    free(x->s->host_owner);
    free(x->s);
    free(x);
    if (done)
        done(darg);
}

static void after_agent_closed(void *arg)
{
    struct close_ctx *x = arg;
    x->s->closing_host = NULL;
    shim_events_close(x->s->events, EVENTS_FLUSH_TIMEOUT_MS, close_step_done, x);
}

void service_create_ended(struct shim_service *s)
{
    if (--s->creates_in_flight > 0 || s->close_waiting == NULL)
        return;
    struct close_ctx *x = s->close_waiting;
    s->close_waiting = NULL;
    close_step_done(x);
}

/* Order matters: closing the agent first fails its outstanding calls while
 * every task still exists; then nothing refers to the tasks any more. */
void shim_service_close(struct shim_service *s, shim_service_closed_fn done, void *arg)
{
    if (s->closing)
        return;
    s->closing = true;
    struct close_ctx *x = calloc(1, sizeof(*x));
    if (x == NULL)
        abort(); /* cannot shut down cleanly without a few bytes */
    x->s = s;
    x->done = done;
    x->arg = arg;
    x->pending = 1;
    struct shim_host *host = s->host;
    s->host = NULL;
    if (host) {
        s->closing_host = host;
        shim_host_close(host, after_agent_closed, x);
    } else
        after_agent_closed(x);
    service_drop_tasks(s);
}

static void on_service_closed(void *arg)
{
    shim_daemon_shutdown(arg, false);
}

static void on_service_closed_now(void *arg)
{
    shim_daemon_shutdown(arg, true);
}

/* Exit once Shutdown for our own id arrived and nothing is left. */
void service_maybe_exit(struct shim_service *s)
{
    if (!s->shutdown_requested || s->tasks != NULL || s->closing)
        return;
    log_fields(LOG_LEVEL_INFO, "no tasks left; shim exiting", NULL);
    shim_service_close(s, s->shutdown_now ? on_service_closed_now : on_service_closed, s->daemon);
}

/* ---- Connect / Shutdown / State / Wait ---------------------------------------------------- */

static void handle_connect(ttrpc_call_t *call)
{
    struct shim_service *s = service_of(call);
    Containerd__Task__V2__ConnectRequest *req =
        (Containerd__Task__V2__ConnectRequest *)unpack_or_fail(
            call, &containerd__task__v2__connect_request__descriptor);
    if (req == NULL)
        return;
    Containerd__Task__V2__ConnectResponse resp = CONTAINERD__TASK__V2__CONNECT_RESPONSE__INIT;
    resp.shim_pid = (uint32_t)uv_os_getpid();
    struct shim_task *t = service_find_task(s, req->id);
    /* The real init pid, like runc: Linux tooling (ctr task ls/ps) stays sensible. */
    resp.task_pid = t ? t->init.pid : 0;
    resp.version = "2";
    ttrpc_call_reply_message(call, &resp.base);
    containerd__task__v2__connect_request__free_unpacked(req, NULL);
}

static void handle_shutdown(ttrpc_call_t *call)
{
    struct shim_service *s = service_of(call);
    Containerd__Task__V2__ShutdownRequest *req =
        (Containerd__Task__V2__ShutdownRequest *)unpack_or_fail(
            call, &containerd__task__v2__shutdown_request__descriptor);
    if (req == NULL)
        return;
    bool ours = strcmp(req->id, s->daemon->args->id) == 0;
    log_fields(LOG_LEVEL_INFO, "shutdown requested", "id", req->id, "accepted",
               ours ? "true" : "false", "tasks_left", s->tasks ? "true" : "false", NULL);
    if (ours) {
        s->shutdown_requested = true;
        s->shutdown_now = req->now;
    }
    containerd__task__v2__shutdown_request__free_unpacked(req, NULL);
    ttrpc_call_reply(call, NULL, 0); /* reply first, then stop */
    service_maybe_exit(s);
}

static void handle_state(ttrpc_call_t *call)
{
    struct shim_service *s = service_of(call);
    Containerd__Task__V2__StateRequest *req = (Containerd__Task__V2__StateRequest *)unpack_or_fail(
        call, &containerd__task__v2__state_request__descriptor);
    if (req == NULL)
        return;
    struct shim_task *t;
    struct shim_process *p;
    shim_error_t *err = NULL;
    if (lookup_process(s, req->id, req->exec_id, &t, &p, &err) < 0) {
        fail_and_free(call, err);
    } else {
        Containerd__Task__V2__StateResponse resp = CONTAINERD__TASK__V2__STATE_RESPONSE__INIT;
        Google__Protobuf__Timestamp ts;
        timestamp_fill(&ts, p);
        resp.id = t->id;
        resp.bundle = t->bundle;
        resp.pid = p->pid;
        resp.status = (Containerd__V1__Types__Status)shim_process_status(p);
        resp.stdin_path = p->stdin_path;
        resp.stdout_path = p->stdout_path;
        resp.stderr_path = p->stderr_path;
        resp.terminal = p->terminal;
        resp.exit_status = p->exit_status;
        resp.exited_at = &ts;
        resp.exec_id = p->exec_id;
        ttrpc_call_reply_message(call, &resp.base);
    }
    containerd__task__v2__state_request__free_unpacked(req, NULL);
}

static void on_wait_cancelled(ttrpc_call_t *call, void *arg)
{
    struct shim_process *p = arg;
    for (struct shim_wait_call **w = &p->waiters; *w; w = &(*w)->next) {
        if ((*w)->call == call) {
            struct shim_wait_call *dead = *w;
            *w = dead->next;
            free(dead);
            ttrpc_call_fail(call, RPC_CANCELED, "wait cancelled");
            return;
        }
    }
}

static void handle_wait(ttrpc_call_t *call)
{
    struct shim_service *s = service_of(call);
    Containerd__Task__V2__WaitRequest *req = (Containerd__Task__V2__WaitRequest *)unpack_or_fail(
        call, &containerd__task__v2__wait_request__descriptor);
    if (req == NULL)
        return;
    struct shim_task *t;
    struct shim_process *p;
    shim_error_t *err = NULL;
    if (lookup_process(s, req->id, req->exec_id, &t, &p, &err) < 0) {
        fail_and_free(call, err);
    } else {
        struct shim_wait_call *w = calloc(1, sizeof(*w));
        if (w == NULL) {
            ttrpc_call_fail(call, RPC_RESOURCE_EXHAUSTED, "out of memory");
        } else {
            w->call = call;
            w->next = p->waiters;
            p->waiters = w;
            if (p->state == SHIM_PROC_EXITED)
                answer_waiters(p);
            else
                ttrpc_call_on_cancel(call, on_wait_cancelled, p);
        }
    }
    containerd__task__v2__wait_request__free_unpacked(req, NULL);
}

/* ---- Pause / Resume (hypervisor: the UVM is frozen with QMP stop) ------------------------ */

struct pause_ctx {
    ttrpc_call_t *call;
    struct shim_service *s;
    char *id;
    bool pause;
};

static void on_paused(void *arg, const shim_error_t *err)
{
    struct pause_ctx *x = arg;
    struct shim_task *t = service_find_task(x->s, x->id);
    if (err != NULL) {
        ttrpc_call_fail_error(x->call, err);
    } else {
        if (t != NULL)
            t->paused = x->pause;
        if (x->pause) {
            Containerd__Events__TaskPaused ev = CONTAINERD__EVENTS__TASK_PAUSED__INIT;
            ev.container_id = x->id;
            shim_events_publish(x->s->events, "/tasks/paused", &ev.base);
        } else {
            Containerd__Events__TaskResumed ev = CONTAINERD__EVENTS__TASK_RESUMED__INIT;
            ev.container_id = x->id;
            shim_events_publish(x->s->events, "/tasks/resumed", &ev.base);
        }
        log_fields(LOG_LEVEL_INFO, x->pause ? "task paused" : "task resumed", "id", x->id, NULL);
        ttrpc_call_reply(x->call, NULL, 0);
    }
    free(x->id);
    free(x);
}

static void handle_pause_resume(ttrpc_call_t *call, bool pause)
{
    struct shim_service *s = service_of(call);
    /* PauseRequest and ResumeRequest are both {id}. */
    Containerd__Task__V2__PauseRequest *req = (Containerd__Task__V2__PauseRequest *)unpack_or_fail(
        call, pause ? &containerd__task__v2__pause_request__descriptor
                    : &containerd__task__v2__resume_request__descriptor);
    if (req == NULL)
        return;
    shim_error_t *err = NULL;
    struct shim_task *t = service_find_task(s, req->id);
    struct pause_ctx *x = NULL;
    if (t == NULL) {
        error_set(&err, RPC_NOT_FOUND, "task %s not found", req->id);
    } else if (s->host == NULL || s->host->kind != SHIM_HOST_HYPERVISOR) {
        error_set(&err, RPC_UNIMPLEMENTED, "%s is not supported for process-isolated task %s",
                  pause ? "Pause" : "Resume", req->id);
    } else if (t->init.state != SHIM_PROC_RUNNING) {
        error_set(&err, RPC_FAILED_PRECONDITION, "task %s is not running", req->id);
    } else if (t->paused == pause) {
        error_set(&err, RPC_FAILED_PRECONDITION, "task %s is %s", req->id,
                  pause ? "already paused" : "not paused");
    } else if ((x = calloc(1, sizeof(*x))) == NULL || (x->id = strdup(req->id)) == NULL) {
        error_set(&err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    } else {
        x->call = call;
        x->s = s;
        x->pause = pause;
        if (shim_host_pause(s->host, req->id, pause, on_paused, x, &err) == 0) {
            protobuf_c_message_free_unpacked(&req->base, NULL);
            return;
        }
    }
    if (x != NULL) {
        free(x->id);
        free(x);
    }
    fail_and_free(call, err);
    protobuf_c_message_free_unpacked(&req->base, NULL);
}

static void handle_pause(ttrpc_call_t *call)
{
    handle_pause_resume(call, true);
}

static void handle_resume(ttrpc_call_t *call)
{
    handle_pause_resume(call, false);
}

/* ---- Checkpoint: not supported ----------------------------------------------------------------
 */

static void handle_unimplemented(ttrpc_call_t *call)
{
    ttrpc_call_fail(call, RPC_UNIMPLEMENTED, "%s is not supported by containerd-shim-runhcs-v1",
                    ttrpc_call_method(call));
}

/* Every method of containerd.task.v2.Task (§2.1). */
static const struct ttrpc_method task_methods[] = {
    {"State", handle_state},
    {"Create", service_handle_create},
    {"Start", service_handle_start},
    {"Delete", service_handle_delete},
    {"Pids", service_handle_pids},
    {"Pause", handle_pause},
    {"Resume", handle_resume},
    {"Checkpoint", handle_unimplemented},
    {"Kill", service_handle_kill},
    {"Exec", service_handle_exec},
    {"ResizePty", service_handle_resize_pty},
    {"CloseIO", service_handle_close_io},
    {"Update", service_handle_update},
    {"Wait", handle_wait},
    {"Stats", service_handle_stats},
    {"Connect", handle_connect},
    {"Shutdown", handle_shutdown},
};

const struct ttrpc_method *shim_task_methods(size_t *n)
{
    *n = sizeof(task_methods) / sizeof(task_methods[0]);
    return task_methods;
}
