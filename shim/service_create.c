/* Create and Delete of tasks and execs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "containerd/events/task.pb-c.h"
#include "containerd/task/v2/shim.pb-c.h"
#include "shim/options.h"
#include "shim/service_internal.h"

#define UPSTREAM_READY_TIMEOUT_MS 10000

struct create_ctx {
    ttrpc_call_t *call;
    struct shim_service *s;
    Containerd__Task__V2__CreateTaskRequest *req;
    struct shim_task *t;
    struct shim_options opts;
};

static struct bundle_mount *rootfs_mounts(const Containerd__Task__V2__CreateTaskRequest *req)
{
    struct bundle_mount *mounts = calloc(req->n_rootfs ? req->n_rootfs : 1, sizeof(*mounts));
    for (size_t i = 0; mounts != NULL && i < req->n_rootfs; i++) {
        mounts[i].type = req->rootfs[i]->type;
        mounts[i].source = req->rootfs[i]->source;
        mounts[i].options = (const char *const *)req->rootfs[i]->options;
        mounts[i].n_options = req->rootfs[i]->n_options;
    }
    return mounts;
}

static void task_unlink(struct shim_service *s, struct shim_task *t)
{
    for (struct shim_task **pp = &s->tasks; *pp; pp = &(*pp)->next) {
        if (*pp == t) {
            *pp = t->next;
            return;
        }
    }
}

static void process_release(struct shim_process *p)
{
    if (p->io) {
        shim_upstream_io_close(p->io, NULL, NULL);
        p->io = NULL;
    }
    if (p->relay) {
        shim_relay_close(p->relay, NULL, NULL);
        p->relay = NULL;
    }
    shim_process_free_fields(p);
}

static void task_free(struct shim_task *t)
{
    while (t->execs) {
        struct shim_process *p = t->execs;
        t->execs = p->next;
        process_release(p);
        free(p);
    }
    process_release(&t->init);
    bundle_spec_free(&t->spec);
    free(t->id);
    free(t->bundle);
    free(t->rootfs_dir);
    free(t);
}

static void on_released_quietly(void *arg, const shim_error_t *err)
{
    (void)arg;
    if (err != NULL)
        log_fields(LOG_LEVEL_WARN, "releasing a failed container's rootfs failed", "error",
                   err->msg, NULL);
}

/* The host side of the rootfs: the mount at <bundle>/rootfs. */
static void task_unmount_bundle(struct shim_task *t)
{
    if (!t->rootfs_mounted)
        return;
    shim_error_t *err = NULL;
    if (bundle_unmount_rootfs(t->bundle, &err) < 0) {
        log_fields(LOG_LEVEL_WARN, "unmounting rootfs failed", "id", t->id, "error", err->msg,
                   NULL);
        error_free(err);
    }
    t->rootfs_mounted = false;
}

/* Create failed: undo what the host prepared (in the background), unmount. */
static void task_unmount(struct shim_task *t)
{
    struct shim_host *h = t->service->host;
    shim_error_t *err = NULL;
    if (h != NULL && t->host_prepared &&
        shim_host_release(h, t->id, t->bundle, on_released_quietly, NULL, &err) < 0) {
        log_fields(LOG_LEVEL_WARN, "releasing the container's rootfs failed", "id", t->id, "error",
                   err->msg, NULL);
        error_free(err);
    }
    t->host_prepared = false;
    task_unmount_bundle(t);
}

/* Last use of x->s: it may free the service (see service_create_ended). */
static void create_ctx_free(struct create_ctx *x)
{
    struct shim_service *s = x->s;
    if (x->req)
        containerd__task__v2__create_task_request__free_unpacked(x->req, NULL);
    shim_options_free(&x->opts);
    free(x);
    service_create_ended(s);
}

static void create_fail(struct create_ctx *x, shim_error_t *err)
{
    log_fields(LOG_LEVEL_ERROR, "create failed", "id", x->req->id, "error", err->msg, NULL);
    if (x->t) {
        task_unmount(x->t);
        task_unlink(x->s, x->t);
        task_free(x->t);
        x->t = NULL;
    }
    fail_and_free(x->call, err);
    service_maybe_exit(x->s);
    create_ctx_free(x);
}

static void publish_create(struct shim_service *s,
                           const Containerd__Task__V2__CreateTaskRequest *req)
{
    Containerd__Events__TaskIO io = CONTAINERD__EVENTS__TASK_IO__INIT;
    io.stdin_path = req->stdin_path;
    io.stdout_path = req->stdout_path;
    io.stderr_path = req->stderr_path;
    io.terminal = req->terminal;
    Containerd__Events__TaskCreate ev = CONTAINERD__EVENTS__TASK_CREATE__INIT;
    ev.container_id = req->id;
    ev.bundle = req->bundle;
    ev.n_rootfs = req->n_rootfs;
    ev.rootfs = req->rootfs;
    ev.io = &io;
    ev.checkpoint = req->checkpoint;
    ev.pid = 0;
    shim_events_publish(s->events, "/tasks/create", &ev.base);
}

static void on_agent_created(void *opaque, int32_t hresult, const shim_error_t *err)
{
    (void)hresult;
    struct create_ctx *x = opaque;
    if (err != NULL) {
        shim_error_t *copy = NULL;
        error_set(&copy, err->code == RPC_OK ? RPC_UNKNOWN : err->code,
                  "failed to create container %s: %s", x->req->id, err->msg);
        create_fail(x, copy);
        return;
    }
    struct shim_task *t = x->t;
    t->created_in_agent = true;
    t->creating = false;
    log_fields(LOG_LEVEL_INFO, "task created", "id", t->id, "bundle", t->bundle, NULL);
    publish_create(x->s, x->req);
    Containerd__Task__V2__CreateTaskResponse resp =
        CONTAINERD__TASK__V2__CREATE_TASK_RESPONSE__INIT;
    ttrpc_call_reply_message(x->call, &resp.base);
    create_ctx_free(x);
}

static void on_container_config(void *arg, json_t *config, const shim_error_t *err)
{
    struct create_ctx *x = arg;
    shim_error_t *e = NULL;
    if (err != NULL) {
        error_set(&e, err->code == RPC_OK ? RPC_UNKNOWN : err->code, "%s", err->msg);
        json_decref(config);
        create_fail(x, e);
        return;
    }
    struct gcs_guest_connection *conn = shim_host_connection(x->s->host);
    if (conn == NULL) {
        json_decref(config);
        error_set(&e, RPC_UNAVAILABLE, "the guest agent is gone");
        create_fail(x, e);
        return;
    }
    int rc = gcs_guest_create_container(conn, x->t->id, config, on_agent_created, x, &e);
    json_decref(config);
    if (rc < 0)
        create_fail(x, e);
}

static void on_agent_ready(void *arg, struct gcs_guest_connection *conn, const shim_error_t *err)
{
    struct create_ctx *x = arg;
    shim_error_t *e = NULL;
    (void)conn;
    if (err != NULL) {
        error_set(&e, RPC_UNAVAILABLE, "%s", err->msg);
        create_fail(x, e);
        return;
    }
    struct bundle_mount *mounts = rootfs_mounts(x->req);
    if (mounts == NULL) {
        error_set(&e, RPC_RESOURCE_EXHAUSTED, "out of memory");
        create_fail(x, e);
        return;
    }
    struct shim_host_container c = {
        .id = x->t->id,
        .bundle = x->t->bundle,
        .rootfs_dir = x->t->rootfs_dir,
        .rootfs_mounted = x->t->rootfs_mounted,
        .spec = x->t->spec.root,
        .mounts = mounts,
        .n_mounts = x->req->n_rootfs,
    };
    x->t->host_prepared = true;
    /* on_container_config may run (and free x) before this returns. */
    int rc = shim_host_prepare(x->s->host, &c, on_container_config, x, &e);
    free(mounts);
    if (rc < 0) {
        x->t->host_prepared = false;
        create_fail(x, e);
    }
}

static void on_upstream_ready(shim_upstream_io_t *io, int status, void *data)
{
    (void)io;
    struct create_ctx *x = data;
    shim_error_t *err = NULL;
    if (status < 0) {
        error_set_uv(&err, RPC_FAILED_PRECONDITION, status, "stdio logger not ready");
        create_fail(x, err);
        return;
    }
    if (shim_host_get(x->s->host, on_agent_ready, x, &err) < 0)
        create_fail(x, err);
}

static int create_check(struct create_ctx *x, shim_error_t **err)
{
    Containerd__Task__V2__CreateTaskRequest *req = x->req;
    if (req->id[0] == '\0')
        return error_set(err, RPC_INVALID_ARGUMENT, "task id must not be empty");
    for (struct shim_task *t = x->s->tasks; t; t = t->next)
        if (strcmp(t->id, req->id) == 0)
            return error_set(err, RPC_ALREADY_EXISTS, "task %s already exists", req->id);
    if (req->checkpoint[0] != '\0')
        return error_set(err, RPC_UNIMPLEMENTED, "restoring from a checkpoint is not supported");
    if (req->bundle[0] == '\0')
        return error_set(err, RPC_INVALID_ARGUMENT, "bundle must not be empty");
    return shim_options_from_any(req->options, &x->opts, err);
}

static int create_task(struct create_ctx *x, shim_error_t **err)
{
    Containerd__Task__V2__CreateTaskRequest *req = x->req;
    struct shim_task *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    t->service = x->s;
    t->creating = true;
    t->init.task = t;
    x->t = t;
    t->next = x->s->tasks;
    x->s->tasks = t;
    t->id = strdup(req->id);
    t->bundle = strdup(req->bundle);
    t->init.exec_id = strdup("");
    t->init.terminal = req->terminal;
    t->init.stdin_path = strdup(req->stdin_path);
    t->init.stdout_path = strdup(req->stdout_path);
    t->init.stderr_path = strdup(req->terminal ? "" : req->stderr_path);
    if (!t->id || !t->bundle || !t->init.exec_id || !t->init.stdin_path || !t->init.stdout_path ||
        !t->init.stderr_path || asprintf(&t->rootfs_dir, "%s/rootfs", req->bundle) < 0)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    if (bundle_spec_load(req->bundle, &t->spec, err) < 0)
        return -1;
    /* A pod member follows its sandbox's annotation unless it has its own. */
    const char *sandbox_id = bundle_spec_annotation(&t->spec, "io.kubernetes.cri.sandbox-id");
    struct shim_task *pod = sandbox_id ? service_find_task(x->s, sandbox_id) : NULL;
    enum shim_isolation iso;
    if (shim_resolve_isolation(&t->spec, pod ? &pod->spec : NULL, &x->opts, &iso, err) < 0)
        return -1;
    char n_mounts[16];
    snprintf(n_mounts, sizeof(n_mounts), "%zu", req->n_rootfs);
    log_fields(LOG_LEVEL_INFO, "creating task", "id", t->id, "isolation", shim_isolation_name(iso),
               "rootfs_mounts", n_mounts, NULL);
    /* The first task (a pod's sandbox, or a standalone task) makes the host:
     * its spec carries the UVM's options; pod members join it. */
    if (service_ensure_host(
            x->s, iso == SHIM_ISOLATION_HYPERVISOR ? SHIM_HOST_HYPERVISOR : SHIM_HOST_PROCESS,
            t->id, t->spec.root, x->opts.runhcs, err) < 0)
        return -1;
    if (req->n_rootfs > 0) {
        struct bundle_mount *mounts = rootfs_mounts(req);
        if (mounts == NULL)
            return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
        int rc = bundle_mount_rootfs(req->bundle, mounts, req->n_rootfs, err);
        free(mounts);
        if (rc < 0)
            return -1;
        t->rootfs_mounted = true;
    }
    struct shim_stdio_config cfg = {
        .stdin_path = req->stdin_path,
        .stdout_path = req->stdout_path,
        .stderr_path = req->terminal ? "" : req->stderr_path,
        .terminal = req->terminal,
        .container_id = req->id,
        .namespace_name = x->s->daemon->args->namespace_name,
    };
    if (shim_upstream_io_open(x->s->loop, &cfg, &t->init.io, err) < 0)
        return -1;
    return shim_upstream_io_wait_ready(t->init.io, UPSTREAM_READY_TIMEOUT_MS, on_upstream_ready, x,
                                       err);
}

void service_handle_create(ttrpc_call_t *call)
{
    struct create_ctx *x = calloc(1, sizeof(*x));
    if (x == NULL) {
        ttrpc_call_fail(call, RPC_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    x->call = call;
    x->s = service_of(call);
    x->s->creates_in_flight++;
    x->req = (Containerd__Task__V2__CreateTaskRequest *)unpack_or_fail(
        call, &containerd__task__v2__create_task_request__descriptor);
    if (x->req == NULL) {
        create_ctx_free(x);
        return;
    }
    shim_error_t *err = NULL;
    if (x->s->closing) {
        error_set(&err, RPC_FAILED_PRECONDITION, "the shim is shutting down");
        create_fail(x, err);
        return;
    }
    if (create_check(x, &err) < 0 || create_task(x, &err) < 0)
        create_fail(x, err);
}

/* ---- Delete ------------------------------------------------------------------------------- */

struct delete_ctx {
    ttrpc_call_t *call;
    struct shim_service *s;
    struct shim_task *t;
};

static void publish_delete(struct shim_service *s, struct shim_task *t, struct shim_process *p)
{
    Containerd__Events__TaskDelete ev = CONTAINERD__EVENTS__TASK_DELETE__INIT;
    Google__Protobuf__Timestamp ts;
    timestamp_fill(&ts, p);
    ev.container_id = t->id;
    ev.pid = p->pid;
    ev.exit_status = p->exit_status;
    ev.exited_at = &ts;
    ev.id = p->exec_id;
    shim_events_publish(s->events, "/tasks/delete", &ev.base);
}

static void reply_delete(ttrpc_call_t *call, const struct shim_process *p)
{
    Containerd__Task__V2__DeleteResponse resp = CONTAINERD__TASK__V2__DELETE_RESPONSE__INIT;
    Google__Protobuf__Timestamp ts;
    timestamp_fill(&ts, p);
    resp.pid = p->pid;
    resp.exit_status = p->exit_status;
    resp.exited_at = &ts;
    ttrpc_call_reply_message(call, &resp.base);
}

static void delete_task_reply(struct delete_ctx *x)
{
    struct shim_task *t = x->t;
    task_unmount_bundle(t);
    publish_delete(x->s, t, &t->init);
    reply_delete(x->call, &t->init);
    log_fields(LOG_LEVEL_INFO, "task deleted", "id", t->id, NULL);
    task_unlink(x->s, t);
    task_free(t);
    struct shim_service *s = x->s;
    free(x);
    service_maybe_exit(s);
}

static void on_host_closed_after_delete(void *arg)
{
    struct delete_ctx *x = arg;
    x->s->closing_host = NULL;
    delete_task_reply(x);
}

/* hcsshim: a task that owns its UVM (standalone, or the pod's sandbox) takes
 * it down when it is deleted, once no other task lives in it. */
static void after_release(struct delete_ctx *x)
{
    struct shim_service *s = x->s;
    bool others = false;
    for (struct shim_task *o = s->tasks; o; o = o->next)
        if (o != x->t)
            others = true;
    if (s->host != NULL && s->host->kind == SHIM_HOST_HYPERVISOR && !others &&
        s->host_owner != NULL && strcmp(s->host_owner, x->t->id) == 0) {
        struct shim_host *h = s->host;
        s->host = NULL;
        log_fields(LOG_LEVEL_INFO, "stopping the utility VM with its owner", "id", x->t->id, NULL);
        s->closing_host = h;
        shim_host_close(h, on_host_closed_after_delete, x);
        return;
    }
    delete_task_reply(x);
}

static void on_rootfs_released(void *arg, const shim_error_t *err)
{
    struct delete_ctx *x = arg;
    if (err != NULL)
        log_fields(LOG_LEVEL_WARN, "releasing the container's rootfs failed", "id", x->t->id,
                   "error", err->msg, NULL);
    after_release(x);
}

static void delete_task_finish(struct delete_ctx *x)
{
    struct shim_task *t = x->t;
    struct shim_host *h = x->s->host;
    shim_error_t *err = NULL;
    if (h == NULL || !t->host_prepared) {
        after_release(x);
        return;
    }
    t->host_prepared = false;
    /* on_rootfs_released may run before this returns (process host). */
    if (shim_host_release(h, t->id, t->bundle, on_rootfs_released, x, &err) < 0) {
        on_rootfs_released(x, err);
        error_free(err);
    }
}

static void on_state_deleted(void *opaque, int32_t hresult, const shim_error_t *err)
{
    (void)hresult;
    struct delete_ctx *x = opaque;
    if (err != NULL && err->code != RPC_NOT_FOUND)
        log_fields(LOG_LEVEL_WARN, "deleting container state failed", "id", x->t->id, "error",
                   err->msg, NULL);
    delete_task_finish(x);
}

static void delete_container_state(struct delete_ctx *x)
{
    struct gcs_guest_connection *c = shim_host_connection(x->s->host);
    shim_error_t *err = NULL;
    if (c == NULL || !x->t->created_in_agent) {
        delete_task_finish(x);
        return;
    }
    if (gcs_guest_delete_container_state(c, x->t->id, on_state_deleted, x, &err) < 0) {
        log_fields(LOG_LEVEL_WARN, "deleting container state failed", "id", x->t->id, "error",
                   err->msg, NULL);
        error_free(err);
        delete_task_finish(x);
    }
}

static void on_never_started_killed(void *opaque, int32_t hresult, const shim_error_t *err)
{
    (void)hresult;
    (void)err; /* a created container that is already gone is fine */
    delete_container_state(opaque);
}

static int delete_task(ttrpc_call_t *call, struct shim_service *s, struct shim_task *t,
                       shim_error_t **err)
{
    if (t->deleting)
        return error_set(err, RPC_FAILED_PRECONDITION, "task %s is being deleted", t->id);
    if (shim_process_alive(&t->init) || t->init.finishing)
        return error_set(err, RPC_FAILED_PRECONDITION, "task %s is still running", t->id);
    for (struct shim_process *p = t->execs; p; p = p->next)
        if (shim_process_alive(p) || p->finishing)
            return error_set(err, RPC_FAILED_PRECONDITION, "exec %s of task %s is still running",
                             p->exec_id, t->id);
    struct delete_ctx *x = calloc(1, sizeof(*x));
    if (x == NULL)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    x->call = call;
    x->s = s;
    x->t = t;
    t->deleting = true;
    bool never_started = t->init.state == SHIM_PROC_CREATED;
    for (struct shim_process *p = t->execs; p; p = p->next)
        if (p->state == SHIM_PROC_CREATED)
            process_exit_from_created(p, 0, false);
    if (never_started)
        process_exit_from_created(&t->init, 0, false);
    struct gcs_guest_connection *c = shim_host_connection(s->host);
    shim_error_t *e = NULL;
    if (never_started && c != NULL && t->created_in_agent) {
        /* The init exists in crun's "created" state: stop it first. */
        if (gcs_guest_shutdown_container(c, t->id, true, on_never_started_killed, x, &e) == 0)
            return 0;
        error_free(e);
    }
    delete_container_state(x);
    return 0;
}

static int delete_exec(ttrpc_call_t *call, struct shim_service *s, struct shim_task *t,
                       struct shim_process *p, shim_error_t **err)
{
    if (shim_process_alive(p) || p->finishing)
        return error_set(err, RPC_FAILED_PRECONDITION, "exec %s of task %s is still running",
                         p->exec_id, t->id);
    if (p->state == SHIM_PROC_CREATED)
        process_exit_from_created(p, 0, false);
    publish_delete(s, t, p);
    reply_delete(call, p);
    for (struct shim_process **pp = &t->execs; *pp; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    }
    process_release(p);
    free(p);
    return 0;
}

void service_handle_delete(ttrpc_call_t *call)
{
    struct shim_service *s = service_of(call);
    Containerd__Task__V2__DeleteRequest *req =
        (Containerd__Task__V2__DeleteRequest *)unpack_or_fail(
            call, &containerd__task__v2__delete_request__descriptor);
    if (req == NULL)
        return;
    struct shim_task *t;
    struct shim_process *p;
    shim_error_t *err = NULL;
    int rc = lookup_process(s, req->id, req->exec_id, &t, &p, &err);
    if (rc == 0)
        rc = p == &t->init ? delete_task(call, s, t, &err) : delete_exec(call, s, t, p, &err);
    if (rc < 0)
        fail_and_free(call, err);
    containerd__task__v2__delete_request__free_unpacked(req, NULL);
}

static void free_handle(uv_handle_t *h)
{
    free(h);
}

static void drop_process(struct shim_process *p)
{
    for (struct shim_wait_call *w = p->waiters; w;) {
        struct shim_wait_call *next = w->next;
        ttrpc_call_fail(w->call, RPC_UNAVAILABLE, "the shim is shutting down");
        free(w);
        w = next;
    }
    p->waiters = NULL;
    process_forget_finish(p);
    if (p->stall_timer) {
        uv_close((uv_handle_t *)p->stall_timer, free_handle);
        p->stall_timer = NULL;
    }
}

void service_drop_tasks(struct shim_service *s)
{
    struct shim_task **pp = &s->tasks;
    while (*pp) {
        struct shim_task *t = *pp;
        if (t->creating) { /* its Create owns it and fails it shortly */
            pp = &t->next;
            continue;
        }
        *pp = t->next;
        log_fields(LOG_LEVEL_WARN, "shim exiting with a task left", "id", t->id, NULL);
        drop_process(&t->init);
        for (struct shim_process *p = t->execs; p; p = p->next)
            drop_process(p);
        task_free(t);
    }
}
