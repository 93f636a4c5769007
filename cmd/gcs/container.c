/* Containers: bundle, OCI runtime calls (create/start/exec/kill/ps/delete),
 * and the exit notification (gcs-bridge.md §6.1-6.14, §7, §8.2). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd/gcs/agent.h"
#include "common/log.h"
#include "gcs/guest/procparams.h"

/* ---- table ------------------------------------------------------------------------------ */

struct container *container_find(struct agent *a, const char *id)
{
    for (struct container *c = a->containers; c; c = c->next) {
        if (strcmp(c->id, id) == 0)
            return c;
    }
    return NULL;
}

void container_ref(struct container *c)
{
    c->refs++;
}

void container_unref(struct container *c)
{
    if (--c->refs > 0)
        return;
    struct agent *a = c->a;
    free(c->id);
    free(c->create_activity_id);
    free(c->bundle);
    gcs_cgroup_paths_free(&c->cgroup);
    free(c);
    a->live_objects--;
    agent_maybe_finish_shutdown(a);
}

void container_unlist(struct container *c)
{
    if (!c->listed)
        return;
    c->listed = false;
    for (struct container **pp = &c->a->containers; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    c->next = NULL;
    container_unref(c);
}

/* Drops the table references of every process (they live on while a wait,
 * relay or watch still holds them). */
static void unlist_processes(struct container *c)
{
    while (c->execs)
        process_unlist(c->execs);
    if (c->init)
        process_unlist(c->init);
}

/* ---- helpers ------------------------------------------------------------------------------ */

static bool valid_id(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > 128 || id[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = id[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_' || ch == '.'))
            return false;
    }
    return true;
}

static int read_pid_file(const char *path, int *pid)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    int rc = fscanf(f, "%d", pid) == 1 && *pid > 0 ? 0 : -1;
    fclose(f);
    return rc;
}

/* The spec written to config.json: the host's spec minus what only HCS uses. */
static json_t *prepare_spec(json_t *spec, shim_error_t **err)
{
    if (!json_is_object(json_object_get(spec, "root")) ||
        !json_is_string(json_object_get(json_object_get(spec, "root"), "path"))) {
        error_set(err, RPC_INVALID_ARGUMENT, "OciSpecification.root.path is required");
        return NULL;
    }
    if (!json_is_object(json_object_get(spec, "process"))) {
        error_set(err, RPC_INVALID_ARGUMENT, "OciSpecification.process is required");
        return NULL;
    }
    if (!json_is_object(json_object_get(spec, "linux"))) {
        error_set(err, RPC_INVALID_ARGUMENT, "OciSpecification.linux is required");
        return NULL;
    }
    json_t *copy = json_deep_copy(spec);
    if (!copy) {
        error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
        return NULL;
    }
    json_object_del(copy, "windows");
    json_object_del(copy, "hooks");
    return copy;
}

static void send_notification(struct container *c)
{
    struct gcs_container_notification n = {0};
    n.base.container_id = c->id;
    n.base.activity_id = c->create_activity_id;
    n.type = c->exit_type ? c->exit_type : GCS_NOTIFY_UNEXPECTED_EXIT;
    log_info("container %s exited (%s)", c->id, n.type);
    agent_send(c->a, GCS_TYPE_CONTAINER_NOTIFICATION, 0, gcs_container_notification_build(&n));
}

void container_init_waited(struct container *c)
{
    if (c->notified || c->deleted)
        return;
    c->notified = true;
    send_notification(c);
}

/* Fire and forget: `runtime delete --force`, then remove the bundle. Never
 * blocks: the runtime may wait for the killed init, which only we can reap. */
static void on_background_deleted(void *data, const struct gcs_runtime_result *res)
{
    struct container *c = data;
    if (res->exit_code != 0)
        log_warn("runtime delete %s: %s", c->id, res->error);
    remove_tree(c->bundle);
    container_unref(c);
}

static void delete_in_background(struct container *c)
{
    const char *args[] = {"delete", "--force", c->id, NULL};
    shim_error_t *err = NULL;
    container_ref(c);
    if (gcs_runtime_run(&c->a->runtime, args, NULL, on_background_deleted, c, &err) < 0) {
        struct gcs_runtime_result res = {.exit_code = 1, .error = err->msg};
        on_background_deleted(c, &res);
        error_free(err);
    }
}

/* ---- Create ------------------------------------------------------------------------------- */

struct create_ctx {
    struct request *req;
    struct container *c; /* reference */
    struct stdio_fds fds;
    struct console_socket cs;
    char *pid_file;
};

static void create_ctx_free(struct create_ctx *x)
{
    stdio_fds_close_all(&x->fds);
    console_socket_close(&x->cs);
    if (x->pid_file)
        unlink(x->pid_file);
    free(x->pid_file);
    container_unref(x->c);
    free(x);
}

static void create_failed(struct create_ctx *x, const char *fmt, const char *msg)
{
    struct container *c = x->c;
    request_reply_error(x->req, GCS_HR_E_FAIL, fmt, msg);
    x->req = NULL;
    unlist_processes(c);
    container_unlist(c);
    remove_tree(c->bundle);
    create_ctx_free(x);
}

/* Hands the agent's ends of a started process's stdio (pipes, or the pty
 * master crun sent over the console socket) to the process record. */
static int take_process_stdio(struct stdio_fds *fds, struct console_socket *cs, bool terminal,
                              struct process *p, shim_error_t **err)
{
    stdio_fds_close_child(fds);
    if (!terminal) {
        for (int i = 0; i < 3; i++) {
            p->fd[i] = fds->agent[i];
            fds->agent[i] = -1;
        }
        return 0;
    }
    int master = -1;
    if (console_socket_receive(cs, &master, err) < 0)
        return -1;
    p->pty_fd = master;
    p->fd[0] = fcntl(master, F_DUPFD_CLOEXEC, 3);
    p->fd[1] = fcntl(master, F_DUPFD_CLOEXEC, 3);
    return 0;
}

static void resolve_cgroup(struct container *c, int pid)
{
    struct agent *a = c->a;
    if (a->runtime.cgroup_manager && strcmp(a->runtime.cgroup_manager, "disabled") == 0)
        return;
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/cgroup", pid);
    shim_error_t *err = NULL;
    if (gcs_cgroup_paths_resolve(path, "/sys/fs/cgroup", a->cgroup_unified, &c->cgroup, &err) < 0) {
        log_warn("container %s: no cgroup for statistics: %s", c->id, err->msg);
        error_free(err);
        return;
    }
    c->cgroup_known = true;
}

static void on_created(void *data, const struct gcs_runtime_result *res)
{
    struct create_ctx *x = data;
    struct container *c = x->c;
    if (res->exit_code != 0) {
        create_failed(x, "runtime create failed: %s", res->error);
        return;
    }
    int pid = 0;
    if (read_pid_file(x->pid_file, &pid) < 0) {
        create_failed(x, "runtime create: %s", "no pid file written");
        return;
    }
    if (c->deleted || c->a->shutting_down) {
        /* Deleted (or the agent is exiting) while crun create ran. */
        kill(pid, SIGKILL);
        if (c->init)
            process_watch(c->init, pid); /* else the reaper reaps it unclaimed */
        delete_in_background(c);
        request_reply_error(x->req, GCS_HR_E_FAIL, "container %s deleted while being created",
                            c->id);
        x->req = NULL;
        unlist_processes(c);
        container_unlist(c);
        create_ctx_free(x);
        return;
    }
    shim_error_t *err = NULL;
    if (take_process_stdio(&x->fds, &x->cs, x->c->terminal, c->init, &err) < 0) {
        kill(pid, SIGKILL);
        create_failed(x, "container console: %s", err->msg);
        error_free(err);
        return;
    }
    process_watch(c->init, pid);
    resolve_cgroup(c, pid);
    if (c->state == CONTAINER_CREATING)
        c->state = CONTAINER_CREATED;
    log_info("created container %s (init pid %d)", c->id, pid);
    struct gcs_create_response resp = {0};
    resp.base.activity_id = x->req->activity_id;
    request_reply(x->req, gcs_create_response_build(&resp));
    x->req = NULL;
    create_ctx_free(x);
}

static int write_config(struct container *c, json_t *spec, shim_error_t **err)
{
    if (mkdir_p(c->bundle, 0700) < 0)
        return error_set_errno(err, RPC_INTERNAL, errno, "creating bundle %s", c->bundle);
    char *path = xasprintf("%s/config.json", c->bundle);
    int rc = path ? json_dump_file(spec, path, JSON_COMPACT) : -1;
    free(path);
    if (rc < 0)
        return error_set(err, RPC_INTERNAL, "writing %s/config.json", c->bundle);
    return 0;
}

static struct container *container_new(struct agent *a, const char *id, const char *activity_id)
{
    struct container *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->a = a;
    c->refs = 1;
    c->listed = true;
    c->id = strdup(id);
    c->create_activity_id = strdup(activity_id ? activity_id : GCS_ZERO_ACTIVITY_ID);
    c->bundle = xasprintf("%s/%s", a->bundles_dir, id);
    a->live_objects++;
    c->next = a->containers;
    a->containers = c;
    if (!c->id || !c->create_activity_id || !c->bundle || !process_new(a, c, true)) {
        container_unlist(c);
        return NULL;
    }
    return c;
}

static int start_create(struct create_ctx *x, shim_error_t **err)
{
    struct container *c = x->c;
    struct agent *a = c->a;
    x->pid_file = xasprintf("%s/init.pid", c->bundle);
    if (!x->pid_file)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    const char *args[12] = {"create", "--bundle", c->bundle, "--pid-file", x->pid_file};
    size_t n = 5;
    if (a->cfg->no_pivot)
        args[n++] = "--no-pivot";
    if (c->terminal) {
        if (console_socket_open(a, &x->cs, err) < 0)
            return -1;
        args[n++] = "--console-socket";
        args[n++] = x->cs.path;
    } else if (stdio_fds_pipes(&x->fds, err) < 0) {
        return -1;
    }
    args[n++] = c->id;
    args[n] = NULL;
    struct gcs_runtime_stdio st = {.fd = {x->fds.child[0], x->fds.child[1], x->fds.child[2]}};
    return gcs_runtime_run(&a->runtime, args, &st, on_created, x, err);
}

void container_create(struct request *req, json_t *config)
{
    struct agent *a = req->a;
    struct gcs_container_config cc;
    shim_error_t *err = NULL;
    if (gcs_container_config_parse(config, &cc, &err) < 0) {
        request_reply_error(req, GCS_HR_INVALID_JSON, "ContainerConfig: %s", err->msg);
        error_free(err);
        return;
    }
    if (cc.schema_major < 2 || (cc.schema_major == 2 && cc.schema_minor < 1)) {
        request_reply_error(req, GCS_HR_INVALID_JSON,
                            "HRESULT: 0xc037010d: unsupported schema version %d.%d",
                            cc.schema_major, cc.schema_minor);
        return;
    }
    if (!valid_id(req->container_id)) {
        request_reply_error(req, GCS_HR_E_INVALIDARG, "invalid container id \"%s\"",
                            req->container_id);
        return;
    }
    if (container_find(a, req->container_id)) {
        request_reply_error(req, GCS_HR_ALREADY_EXISTS,
                            "HRESULT: 0xc037010f: container %s already exists", req->container_id);
        return;
    }
    json_t *spec = prepare_spec(cc.oci_specification, &err);
    if (!spec) {
        request_reply_error(req, GCS_HR_E_FAIL, "%s", err->msg);
        error_free(err);
        return;
    }
    struct create_ctx *x = calloc(1, sizeof(*x));
    struct container *c = x ? container_new(a, req->container_id, req->activity_id) : NULL;
    if (!c) {
        free(x);
        json_decref(spec);
        request_reply_error(req, GCS_HR_E_FAIL, "out of memory");
        return;
    }
    if (cc.oci_bundle_path && strcmp(cc.oci_bundle_path, c->bundle) != 0)
        log_debug("container %s: bundle at %s (host asked for %s)", c->id, c->bundle,
                  cc.oci_bundle_path);
    container_ref(c);
    x->c = c;
    x->req = req;
    x->cs.listen_fd = -1;
    stdio_fds_init(&x->fds);
    c->terminal = gcs_guest_oci_process_terminal(json_object_get(spec, "process"));
    c->init->terminal = c->terminal;
    int rc = write_config(c, spec, &err);
    json_decref(spec);
    if (rc == 0)
        rc = start_create(x, &err);
    if (rc < 0) {
        create_failed(x, "%s", err->msg);
        error_free(err);
    }
}

/* ---- init "exec" = start -------------------------------------------------------------------- */

struct start_ctx {
    struct request *req;
    struct container *c; /* reference */
};

static void start_ctx_free(struct start_ctx *x)
{
    container_unref(x->c);
    free(x);
}

static void on_started(void *data, const struct gcs_runtime_result *res)
{
    struct start_ctx *x = data;
    struct container *c = x->c;
    if (res->exit_code != 0) {
        request_reply_error(x->req, GCS_HR_E_FAIL, "runtime start failed: %s", res->error);
    } else if (!c->init) {
        request_reply_error(x->req, GCS_HR_E_FAIL, "container %s was deleted", c->id);
    } else {
        if (c->state == CONTAINER_CREATED)
            c->state = CONTAINER_RUNNING;
        log_info("started container %s", c->id);
        struct gcs_execute_process_response resp = {0};
        resp.base.activity_id = x->req->activity_id;
        resp.process_id = (uint32_t)c->init->pid;
        request_reply(x->req, gcs_execute_process_response_build(&resp));
    }
    start_ctx_free(x);
}

static void on_init_dialled(void *data, struct stdio_conns *conns, shim_error_t *err)
{
    struct start_ctx *x = data;
    struct container *c = x->c;
    if (err || !c->init || c->deleted) {
        request_reply_error(x->req, GCS_HR_E_FAIL, "%s",
                            err ? err->msg : "container deleted while starting");
        error_free(err);
        if (conns)
            stdio_conns_close(conns);
        start_ctx_free(x);
        return;
    }
    stdio_attach(c->init, conns);
    const char *args[] = {"start", c->id, NULL};
    shim_error_t *rerr = NULL;
    if (gcs_runtime_run(&c->a->runtime, args, NULL, on_started, x, &rerr) < 0) {
        request_reply_error(x->req, GCS_HR_E_FAIL, "runtime start: %s", rerr->msg);
        error_free(rerr);
        start_ctx_free(x);
    }
}

static uint32_t *ports_array(const struct gcs_stdio_ports *ports, uint32_t out[3])
{
    out[0] = ports->stdin_port;
    out[1] = ports->stdout_port;
    out[2] = ports->stderr_port;
    return out;
}

static void wanted(const struct gcs_process_parameters *params, const uint32_t port[3],
                   bool want[3])
{
    want[0] = params->create_stdin_pipe && port[0];
    want[1] = params->create_stdout_pipe && port[1];
    want[2] = params->create_stderr_pipe && port[2];
}

void container_exec_init(struct request *req, struct container *c,
                         const struct gcs_process_parameters *params,
                         const struct gcs_stdio_ports *ports)
{
    if (c->state != CONTAINER_CREATED || !c->init) {
        request_reply_error(req, GCS_HR_E_FAIL, "container %s is already started", c->id);
        return;
    }
    struct start_ctx *x = calloc(1, sizeof(*x));
    if (!x) {
        request_reply_error(req, GCS_HR_E_FAIL, "out of memory");
        return;
    }
    container_ref(c);
    x->c = c;
    x->req = req;
    uint32_t port[3];
    bool want[3];
    wanted(params, ports_array(ports, port), want);
    stdio_dial(c->a, port, want, on_init_dialled, x);
}

/* ---- exec -------------------------------------------------------------------------------------
 */

struct exec_ctx {
    struct request *req;
    struct container *c; /* reference */
    struct process *p;   /* reference */
    struct stdio_fds fds;
    struct console_socket cs;
    struct stdio_conns conns;
    char *process_file, *pid_file;
};

static void exec_ctx_free(struct exec_ctx *x)
{
    stdio_fds_close_all(&x->fds);
    console_socket_close(&x->cs);
    stdio_conns_close(&x->conns);
    if (x->process_file)
        unlink(x->process_file);
    if (x->pid_file)
        unlink(x->pid_file);
    free(x->process_file);
    free(x->pid_file);
    if (x->p) {
        process_unlist(x->p);
        process_unref(x->p);
    }
    container_unref(x->c);
    free(x);
}

static void on_exec_done(void *data, const struct gcs_runtime_result *res)
{
    struct exec_ctx *x = data;
    int pid = 0;
    shim_error_t *err = NULL;
    if (res->exit_code != 0) {
        request_reply_error(x->req, GCS_HR_E_FAIL, "runtime exec failed: %s", res->error);
    } else if (read_pid_file(x->pid_file, &pid) < 0) {
        request_reply_error(x->req, GCS_HR_E_FAIL, "runtime exec: no pid file written");
    } else if (take_process_stdio(&x->fds, &x->cs, x->p->terminal, x->p, &err) < 0) {
        kill(pid, SIGKILL);
        request_reply_error(x->req, GCS_HR_E_FAIL, "exec console: %s", err->msg);
        error_free(err);
    } else {
        if (x->c->deleted) /* deleted or agent exiting meanwhile: do not leave it behind */
            kill(pid, SIGKILL);
        process_watch(x->p, pid);
        stdio_attach(x->p, &x->conns);
        log_info("exec'd pid %d in container %s", pid, x->c->id);
        struct gcs_execute_process_response resp = {0};
        resp.base.activity_id = x->req->activity_id;
        resp.process_id = (uint32_t)pid;
        request_reply(x->req, gcs_execute_process_response_build(&resp));
        process_unref(x->p); /* the container's list keeps it */
        x->p = NULL;
    }
    x->req = NULL;
    exec_ctx_free(x);
}

static int start_exec(struct exec_ctx *x, shim_error_t **err)
{
    struct agent *a = x->c->a;
    const char *args[12] = {"exec",      "--detach",  "--pid-file",
                            x->pid_file, "--process", x->process_file};
    size_t n = 6;
    if (x->p->terminal) {
        if (console_socket_open(a, &x->cs, err) < 0)
            return -1;
        args[n++] = "--console-socket";
        args[n++] = x->cs.path;
    } else if (stdio_fds_pipes(&x->fds, err) < 0) {
        return -1;
    }
    args[n++] = x->c->id;
    args[n] = NULL;
    struct gcs_runtime_stdio st = {.fd = {x->fds.child[0], x->fds.child[1], x->fds.child[2]}};
    return gcs_runtime_run(&a->runtime, args, &st, on_exec_done, x, err);
}

static void on_exec_dialled(void *data, struct stdio_conns *conns, shim_error_t *err)
{
    struct exec_ctx *x = data;
    if (err || x->c->deleted) {
        request_reply_error(x->req, GCS_HR_E_FAIL, "%s",
                            err ? err->msg : "container deleted during exec");
        x->req = NULL;
        error_free(err);
        if (conns)
            stdio_conns_close(conns);
        exec_ctx_free(x);
        return;
    }
    x->conns = *conns;
    memset(conns, 0, sizeof(*conns));
    shim_error_t *rerr = NULL;
    if (start_exec(x, &rerr) < 0) {
        request_reply_error(x->req, GCS_HR_E_FAIL, "runtime exec: %s", rerr->msg);
        x->req = NULL;
        error_free(rerr);
        exec_ctx_free(x);
    }
}

static int write_process_file(struct exec_ctx *x, const json_t *oci_process, shim_error_t **err)
{
    json_t *doc = NULL;
    if (gcs_guest_oci_process(oci_process, &doc, err) < 0)
        return -1;
    x->p->terminal = gcs_guest_oci_process_terminal(doc);
    int rc = json_dump_file(doc, x->process_file, JSON_COMPACT);
    json_decref(doc);
    if (rc < 0)
        return error_set(err, RPC_INTERNAL, "writing %s", x->process_file);
    return 0;
}

void container_exec(struct request *req, struct container *c,
                    const struct gcs_process_parameters *params,
                    const struct gcs_stdio_ports *ports)
{
    if (c->state != CONTAINER_RUNNING) {
        request_reply_error(req, GCS_HR_E_FAIL, "container %s is not running", c->id);
        return;
    }
    struct exec_ctx *x = calloc(1, sizeof(*x));
    if (!x) {
        request_reply_error(req, GCS_HR_E_FAIL, "out of memory");
        return;
    }
    container_ref(c);
    x->c = c;
    x->req = req;
    x->cs.listen_fd = -1;
    stdio_fds_init(&x->fds);
    unsigned long seq = ++c->a->seq;
    x->process_file = xasprintf("%s/exec-%lu.json", c->bundle, seq);
    x->pid_file = xasprintf("%s/exec-%lu.pid", c->bundle, seq);
    x->p = process_new(c->a, c, false);
    if (x->p)
        process_ref(x->p); /* the context's own reference */
    shim_error_t *err = NULL;
    if (!x->process_file || !x->pid_file || !x->p) {
        request_reply_error(req, GCS_HR_E_FAIL, "out of memory");
        x->req = NULL;
        exec_ctx_free(x);
        return;
    }
    if (write_process_file(x, params->oci_process, &err) < 0) {
        request_reply_error(req, GCS_HR_E_INVALIDARG, "%s", err->msg);
        x->req = NULL;
        error_free(err);
        exec_ctx_free(x);
        return;
    }
    uint32_t port[3];
    bool want[3];
    wanted(params, ports_array(ports, port), want);
    stdio_dial(c->a, port, want, on_exec_dialled, x);
}

/* ---- signals and shutdown -------------------------------------------------------------------- */

struct kill_ctx {
    struct request *req;
    struct container *c; /* reference */
    bool forced;         /* shutdown: fall back to kill(2) of init */
    bool is_shutdown;
};

static void on_killed(void *data, const struct gcs_runtime_result *res)
{
    struct kill_ctx *x = data;
    struct container *c = x->c;
    struct process *init = c->init;
    bool init_gone = !init || init->exited;
    if (res->exit_code == 0) {
        request_reply(x->req, NULL);
    } else if (x->is_shutdown && x->forced && init && !init->exited && init->started) {
        log_warn("runtime kill failed (%s); killing init pid %d", res->error, init->pid);
        kill(init->pid, SIGKILL);
        request_reply(x->req, NULL);
    } else if (x->is_shutdown && init_gone) {
        request_reply(x->req, NULL);
    } else if (init_gone) {
        request_reply_error(x->req, GCS_HR_NOT_FOUND, "HRESULT: 0x80070490: process exited");
    } else {
        request_reply_error(x->req, GCS_HR_E_FAIL, "runtime kill failed: %s", res->error);
    }
    container_unref(c);
    free(x);
}

static void runtime_kill(struct request *req, struct container *c, int sig, bool all,
                         bool is_shutdown)
{
    struct kill_ctx *x = calloc(1, sizeof(*x));
    if (!x) {
        request_reply_error(req, GCS_HR_E_FAIL, "out of memory");
        return;
    }
    container_ref(c);
    x->c = c;
    x->req = req;
    x->forced = sig == SIGKILL;
    x->is_shutdown = is_shutdown;
    char signo[16];
    snprintf(signo, sizeof(signo), "%d", sig);
    const char *args[6];
    size_t n = 0;
    args[n++] = "kill";
    if (all)
        args[n++] = "--all";
    args[n++] = c->id;
    args[n++] = signo;
    args[n] = NULL;
    shim_error_t *err = NULL;
    if (gcs_runtime_run(&c->a->runtime, args, NULL, on_killed, x, &err) < 0) {
        request_reply_error(req, GCS_HR_E_FAIL, "runtime kill: %s", err->msg);
        error_free(err);
        container_unref(c);
        free(x);
    }
}

static void note_exit_type(struct container *c, int sig)
{
    if (sig == SIGTERM)
        c->exit_type = GCS_NOTIFY_GRACEFUL_EXIT;
    else if (sig == SIGKILL)
        c->exit_type = GCS_NOTIFY_FORCED_EXIT;
}

void container_signal(struct request *req, struct container *c, uint32_t pid, int sig)
{
    struct process *p = process_find_in_container(c, pid);
    if (!p || p->exited) {
        request_reply_error(req, GCS_HR_NOT_FOUND,
                            "HRESULT: 0x80070490: process %u not found or exited", pid);
        return;
    }
    if (sig <= 0 || sig >= 65) {
        request_reply_error(req, GCS_HR_E_INVALIDARG, "invalid signal %d", sig);
        return;
    }
    if (p->is_init) {
        note_exit_type(c, sig);
        runtime_kill(req, c, sig, false, false);
        return;
    }
    if (kill(p->pid, sig) < 0) {
        if (errno == ESRCH)
            request_reply_error(req, GCS_HR_NOT_FOUND, "HRESULT: 0x80070490: process %u exited",
                                pid);
        else
            request_reply_error(req, GCS_HR_E_FAIL, "kill %u: %s", pid, strerror(errno));
        return;
    }
    request_reply(req, NULL);
}

void container_shutdown(struct request *req, struct container *c, bool forced)
{
    int sig = forced ? SIGKILL : SIGTERM;
    note_exit_type(c, sig);
    if (!c->init || !c->init->started || c->init->exited) {
        request_reply(req, NULL); /* nothing left to stop */
        return;
    }
    runtime_kill(req, c, sig, forced, true);
}

/* ---- GetProperties -------------------------------------------------------------------------- */

struct props_ctx {
    struct request *req;
    struct container *c; /* reference */
    json_t *props;
};

static json_t *known_pids(struct container *c)
{
    uint32_t pids[64];
    size_t n = 0;
    if (c->init && c->init->started && !c->init->exited)
        pids[n++] = (uint32_t)c->init->pid;
    for (struct process *p = c->execs; p && n < 64; p = p->next) {
        if (p->started && !p->exited)
            pids[n++] = (uint32_t)p->pid;
    }
    return gcs_properties_process_list_build(pids, n);
}

static json_t *pids_from_ps(const char *output)
{
    json_t *arr = json_loads(output ? output : "", JSON_DECODE_ANY, NULL);
    if (!json_is_array(arr)) {
        json_decref(arr);
        return NULL;
    }
    size_t n = json_array_size(arr);
    uint32_t *pids = calloc(n + 1, sizeof(*pids));
    size_t k = 0;
    for (size_t i = 0; pids && i < n; i++) {
        json_t *v = json_array_get(arr, i);
        if (json_is_integer(v) && json_integer_value(v) > 0)
            pids[k++] = (uint32_t)json_integer_value(v);
    }
    json_t *list = pids ? gcs_properties_process_list_build(pids, k) : NULL;
    free(pids);
    json_decref(arr);
    return list;
}

static void props_reply(struct props_ctx *x)
{
    struct gcs_get_properties_response resp = {0};
    resp.base.activity_id = x->req->activity_id;
    resp.properties = x->props;
    request_reply(x->req, gcs_get_properties_response_build(&resp));
    json_decref(x->props);
    container_unref(x->c);
    free(x);
}

static void on_ps(void *data, const struct gcs_runtime_result *res)
{
    struct props_ctx *x = data;
    json_t *list = res->exit_code == 0 ? pids_from_ps(res->output) : NULL;
    if (!list) {
        log_debug("runtime ps failed (%s); reporting the known pids",
                  res->error ? res->error : "bad output");
        list = known_pids(x->c);
    }
    json_object_update(x->props, list);
    json_decref(list);
    props_reply(x);
}

void container_get_properties(struct request *req, struct container *c, unsigned types)
{
    struct props_ctx *x = calloc(1, sizeof(*x));
    if (!x || !(x->props = json_object())) {
        free(x);
        request_reply_error(req, GCS_HR_E_FAIL, "out of memory");
        return;
    }
    container_ref(c);
    x->c = c;
    x->req = req;
    if (types & GCS_PROPERTY_STATISTICS) {
        json_t *metrics = c->cgroup_known ? gcs_stats_read(&c->cgroup) : json_object();
        json_object_set_new(x->props, "LCOWMetrics", metrics ? metrics : json_object());
    }
    if (!(types & GCS_PROPERTY_PROCESS_LIST)) {
        props_reply(x);
        return;
    }
    if (!c->init || !c->init->started || c->init->exited) {
        json_t *list = known_pids(c);
        json_object_update(x->props, list);
        json_decref(list);
        props_reply(x);
        return;
    }
    const char *args[] = {"ps", "--format", "json", c->id, NULL};
    struct gcs_runtime_stdio st = {.fd = {-1, -1, -1}, .capture_stdout = true};
    shim_error_t *err = NULL;
    if (gcs_runtime_run(&c->a->runtime, args, &st, on_ps, x, &err) < 0) {
        error_free(err);
        json_t *list = known_pids(c);
        json_object_update(x->props, list);
        json_decref(list);
        props_reply(x);
    }
}

/* ---- delete ---------------------------------------------------------------------------------- */

struct delete_ctx {
    struct request *req;
    struct container *c; /* reference */
};

static void on_deleted(void *data, const struct gcs_runtime_result *res)
{
    struct delete_ctx *x = data;
    struct container *c = x->c;
    bool alive = c->init && c->init->started && !c->init->exited;
    if (remove_tree(c->bundle) < 0)
        log_warn("removing bundle %s: %s", c->bundle, strerror(errno));
    unlist_processes(c);
    if (res->exit_code != 0 && alive) {
        log_warn("runtime delete %s: %s", c->id, res->error);
        request_reply_error(x->req, GCS_HR_E_FAIL, "runtime delete failed: %s", res->error);
    } else {
        log_info("deleted container %s", c->id);
        request_reply(x->req, NULL);
    }
    container_unref(c);
    free(x);
}

void container_delete(struct request *req, struct container *c)
{
    struct delete_ctx *x = calloc(1, sizeof(*x));
    if (!x) {
        request_reply_error(req, GCS_HR_E_FAIL, "out of memory");
        return;
    }
    container_ref(c);
    x->c = c;
    x->req = req;
    c->deleted = true;
    container_unlist(c); /* whatever happens, later requests get "not found" */
    const char *args[] = {"delete", "--force", c->id, NULL};
    shim_error_t *err = NULL;
    if (gcs_runtime_run(&c->a->runtime, args, NULL, on_deleted, x, &err) < 0) {
        struct gcs_runtime_result res = {.exit_code = 1, .error = err->msg};
        on_deleted(x, &res);
        error_free(err);
    }
}

void container_destroy(struct container *c)
{
    container_ref(c);
    c->deleted = true;
    container_unlist(c);
    for (struct process *p = c->execs; p; p = p->next) {
        if (p->started && !p->exited)
            kill(p->pid, SIGKILL);
        process_abort(p);
    }
    if (c->init && c->init->started && !c->init->exited)
        kill(c->init->pid, SIGKILL);
    if (c->init)
        process_abort(c->init);
    /* A container still being created is cleaned up when its create returns. */
    if (c->state != CONTAINER_CREATING)
        delete_in_background(c);
    unlist_processes(c);
    container_unref(c);
}

/* ---- ContainerConstraints (ModifySettings to a container, §9.8) ------------------------------ */

struct update_ctx {
    struct request *req;
    struct container *c; /* reference */
    char *file;
};

static void on_updated(void *data, const struct gcs_runtime_result *res)
{
    struct update_ctx *x = data;
    if (res->exit_code != 0)
        request_reply_error(x->req, GCS_HR_E_FAIL, "runtime update failed: %s", res->error);
    else
        request_reply(x->req, NULL);
    unlink(x->file);
    free(x->file);
    container_unref(x->c);
    free(x);
}

void container_update(struct request *req, struct container *c, json_t *resources)
{
    if (!json_is_object(resources)) {
        request_reply(req, NULL); /* nothing for Linux */
        return;
    }
    struct update_ctx *x = calloc(1, sizeof(*x));
    if (x)
        x->file = xasprintf("%s/update-%lu.json", c->bundle, ++c->a->seq);
    if (!x || !x->file || json_dump_file(resources, x->file, JSON_COMPACT) < 0) {
        request_reply_error(req, GCS_HR_E_FAIL, "writing the resources file failed");
        if (x)
            free(x->file);
        free(x);
        return;
    }
    container_ref(c);
    x->c = c;
    x->req = req;
    const char *args[] = {"update", "--resources", x->file, c->id, NULL};
    shim_error_t *err = NULL;
    if (gcs_runtime_run(&c->a->runtime, args, NULL, on_updated, x, &err) < 0) {
        struct gcs_runtime_result res = {.exit_code = 1, .error = err->msg};
        on_updated(x, &res);
        error_free(err);
    }
}
