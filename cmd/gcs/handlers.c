/* Request handlers for a negotiated bridge (gcs-bridge.md §6). Each handler
 * parses its body, looks up its target and either replies at once or hands
 * the request to an asynchronous operation that replies later. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd/gcs/agent.h"
#include "common/log.h"
#include "gcs/bridge_json.h"

static bool is_null_id(const char *id)
{
    return strcmp(id, GCS_NULL_CONTAINER_ID) == 0;
}

static void bad_body(struct agent *a, const struct gcs_message *m, shim_error_t *err)
{
    char *msg = xasprintf("HRESULT: 0xc037010d: invalid request body: %s",
                          err ? err->msg : "unknown error");
    agent_send(a, gcs_type_response_for(m->type), m->id,
               gcs_error_response_build(GCS_HR_INVALID_JSON, NULL, msg ? msg : "invalid JSON"));
    free(msg);
    error_free(err);
}

/* Parses the request base and creates the request; NULL when already answered. */
static struct request *begin(struct agent *a, const struct gcs_message *m)
{
    struct gcs_request_base base;
    shim_error_t *err = NULL;
    if (gcs_request_base_parse(m->body, &base, &err) < 0) {
        bad_body(a, m, err);
        return NULL;
    }
    struct request *req = request_new(a, m, &base);
    if (!req)
        agent_send(a, gcs_type_response_for(m->type), m->id,
                   gcs_error_response_build(GCS_HR_E_FAIL, base.activity_id, "out of memory"));
    return req;
}

/* The container a request names, or NULL after replying with the right error. */
static struct container *target(struct request *req)
{
    struct container *c = container_find(req->a, req->container_id);
    if (!c) {
        request_reply_error(req, GCS_HR_SYSTEM_NOT_FOUND,
                            "HRESULT: 0xc037010e: container %s not found", req->container_id);
        return NULL;
    }
    if (c->state == CONTAINER_CREATING) {
        request_reply_error(req, GCS_HR_INVALID_STATE,
                            "HRESULT: 0x80370105: container %s is still being created", c->id);
        return NULL;
    }
    return c;
}

static void handle_create(struct agent *a, const struct gcs_message *m)
{
    struct gcs_create_request r;
    shim_error_t *err = NULL;
    if (gcs_create_request_parse(m->body, &r, &err) < 0) {
        bad_body(a, m, err);
        return;
    }
    struct request *req = request_new(a, m, &r.base);
    if (req)
        container_create(req, r.container_config);
    gcs_create_request_clear(&r);
}

static void handle_shutdown(struct agent *a, const struct gcs_message *m, bool forced)
{
    struct request *req = begin(a, m);
    if (!req)
        return;
    if (is_null_id(req->container_id)) {
        /* The UVM powers off: no response (§6.3). Here: stop everything and exit. */
        log_info("shutdown of the UVM requested");
        request_free(req);
        agent_shutdown(a, 0);
        return;
    }
    struct container *c = target(req);
    if (c)
        container_shutdown(req, c, forced);
}

static void handle_exec(struct agent *a, const struct gcs_message *m)
{
    struct gcs_execute_process_request r;
    struct gcs_process_parameters params;
    shim_error_t *err = NULL;
    if (gcs_execute_process_request_parse(m->body, &r, &err) < 0) {
        bad_body(a, m, err);
        return;
    }
    if (gcs_process_parameters_parse(r.process_parameters, &params, &err) < 0) {
        bad_body(a, m, err);
        gcs_execute_process_request_clear(&r);
        return;
    }
    struct request *req = request_new(a, m, &r.base);
    if (!req) {
        gcs_execute_process_request_clear(&r);
        return;
    }
    if (is_null_id(req->container_id) || params.create_in_utility_vm) {
        uvm_exec(req, &params, &r.ports);
    } else {
        struct container *c = target(req);
        if (c && params.oci_process)
            container_exec(req, c, &params, &r.ports);
        else if (c)
            container_exec_init(req, c, &params, &r.ports);
    }
    gcs_execute_process_request_clear(&r);
}

static void process_not_found(struct request *req, uint32_t pid)
{
    request_reply_error(req, GCS_HR_NOT_FOUND,
                        "HRESULT: 0x80070490: process %u not found or already waited for", pid);
}

static void handle_wait(struct agent *a, const struct gcs_message *m)
{
    struct gcs_wait_process_request r;
    shim_error_t *err = NULL;
    if (gcs_wait_process_request_parse(m->body, &r, &err) < 0) {
        bad_body(a, m, err);
        return;
    }
    struct request *req = request_new(a, m, &r.base);
    if (!req)
        return;
    struct process *p = NULL;
    if (is_null_id(req->container_id)) {
        p = process_find_uvm(a, r.process_id);
    } else {
        struct container *c = target(req);
        if (!c)
            return;
        p = process_find_in_container(c, r.process_id);
    }
    if (!p)
        process_not_found(req, r.process_id);
    else
        process_wait(req, p, r.timeout_ms);
}

static void handle_signal(struct agent *a, const struct gcs_message *m)
{
    struct gcs_signal_process_request r;
    shim_error_t *err = NULL;
    if (gcs_signal_process_request_parse(m->body, &r, &err) < 0) {
        bad_body(a, m, err);
        return;
    }
    struct request *req = request_new(a, m, &r.base);
    if (!req)
        return;
    struct container *c = target(req); /* the null ID is "not found" too (§6.6) */
    if (!c)
        return;
    int sig = r.has_options && r.signal != 0 ? r.signal : SIGKILL;
    container_signal(req, c, r.process_id, sig);
}

static void handle_resize(struct agent *a, const struct gcs_message *m)
{
    struct gcs_resize_console_request r;
    shim_error_t *err = NULL;
    if (gcs_resize_console_request_parse(m->body, &r, &err) < 0) {
        bad_body(a, m, err);
        return;
    }
    struct request *req = request_new(a, m, &r.base);
    if (!req)
        return;
    struct container *c = target(req);
    if (!c)
        return;
    struct process *p = process_find_in_container(c, r.process_id);
    if (!p || p->exited) {
        process_not_found(req, r.process_id);
        return;
    }
    if (!p->terminal || p->pty_fd < 0) {
        request_reply_error(req, GCS_HR_E_FAIL, "pid: %u, is not a tty and cannot be resized",
                            r.process_id);
        return;
    }
    struct winsize ws = {.ws_row = r.height, .ws_col = r.width};
    if (ioctl(p->pty_fd, TIOCSWINSZ, &ws) < 0) {
        request_reply_error(req, GCS_HR_E_FAIL, "resizing pid %u: %s", r.process_id,
                            strerror(errno));
        return;
    }
    request_reply(req, NULL);
}

static void handle_properties(struct agent *a, const struct gcs_message *m)
{
    struct gcs_get_properties_request r;
    shim_error_t *err = NULL;
    if (gcs_get_properties_request_parse(m->body, &r, &err) < 0) {
        bad_body(a, m, err);
        return;
    }
    struct request *req = request_new(a, m, &r.base);
    unsigned types = r.property_types;
    gcs_get_properties_request_clear(&r);
    if (!req)
        return;
    if (is_null_id(req->container_id)) {
        request_reply_error(req, GCS_HR_E_FAIL, "getPropertiesV2 is not supported against the UVM");
        return;
    }
    struct container *c = target(req);
    if (c)
        container_get_properties(req, c, types);
}

/* ---- ModifySettings -------------------------------------------------------------------------- */

static int combined_layers_add(const struct gcs_combined_layers *cl, shim_error_t **err)
{
    if (cl->n_layers == 0)
        return error_set(err, RPC_INVALID_ARGUMENT, "CombinedLayers: no layers");
    if (mkdir_p(cl->container_root_path, 0755) < 0)
        return error_set_errno(err, RPC_INTERNAL, errno, "mkdir %s", cl->container_root_path);
    if (cl->n_layers == 1 && (!cl->scratch_path || !cl->scratch_path[0])) {
        /* overlayfs wants two lower layers without an upper: a read-only bind. */
        const char *src = gcs_combined_layers_path(cl, 0);
        if (mount(src, cl->container_root_path, NULL, MS_BIND, NULL) < 0 ||
            mount(NULL, cl->container_root_path, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL) < 0)
            return error_set_errno(err, RPC_INTERNAL, errno, "bind %s", src);
        return 0;
    }
    size_t len = 64;
    for (size_t i = 0; i < cl->n_layers; i++)
        len += strlen(gcs_combined_layers_path(cl, i)) + 1;
    if (cl->scratch_path)
        len += 2 * strlen(cl->scratch_path) + 32;
    char *opts = calloc(1, len);
    if (!opts)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    strcat(opts, "lowerdir=");
    for (size_t i = 0; i < cl->n_layers; i++) {
        if (i)
            strcat(opts, ":");
        strcat(opts, gcs_combined_layers_path(cl, i));
    }
    int rc = 0;
    if (cl->scratch_path && cl->scratch_path[0]) {
        char *upper = xasprintf("%s/upper", cl->scratch_path);
        char *work = xasprintf("%s/work", cl->scratch_path);
        if (!upper || !work || mkdir_p(upper, 0755) < 0 || mkdir_p(work, 0755) < 0)
            rc = error_set_errno(err, RPC_INTERNAL, errno, "creating %s/{upper,work}",
                                 cl->scratch_path);
        else
            snprintf(opts + strlen(opts), len - strlen(opts), ",upperdir=%s,workdir=%s", upper,
                     work);
        free(upper);
        free(work);
    }
    if (rc == 0 && mount("overlay", cl->container_root_path, "overlay", 0, opts) < 0)
        rc = error_set_errno(err, RPC_INTERNAL, errno, "mount overlay %s (%s)",
                             cl->container_root_path, opts);
    free(opts);
    return rc;
}

static int combined_layers_remove(const struct gcs_combined_layers *cl, shim_error_t **err)
{
    if (umount2(cl->container_root_path, 0) < 0 && errno != EINVAL && errno != ENOENT &&
        umount2(cl->container_root_path, MNT_DETACH) < 0)
        return error_set_errno(err, RPC_INTERNAL, errno, "unmount %s", cl->container_root_path);
    return 0;
}

void agent_track_mount(struct agent *a, const char *path, bool add)
{
    for (size_t i = 0; i < a->n_mounts; i++) {
        if (strcmp(a->mounts[i], path) == 0) {
            if (!add) {
                free(a->mounts[i]);
                a->mounts[i] = a->mounts[--a->n_mounts];
            }
            return;
        }
    }
    if (!add)
        return;
    char **grown = realloc(a->mounts, (a->n_mounts + 1) * sizeof(*grown));
    if (!grown)
        return;
    a->mounts = grown;
    if ((a->mounts[a->n_mounts] = strdup(path)))
        a->n_mounts++;
}

void agent_unmount_all(struct agent *a)
{
    for (size_t i = 0; i < a->n_mounts; i++) {
        if (umount2(a->mounts[i], MNT_DETACH) < 0)
            log_warn("unmounting %s: %s", a->mounts[i], strerror(errno));
        free(a->mounts[i]);
    }
    free(a->mounts);
    a->mounts = NULL;
    a->n_mounts = 0;
}

static void modify_combined_layers(struct request *req, const struct gcs_modify_settings_request *r)
{
    struct gcs_combined_layers cl;
    shim_error_t *err = NULL;
    bool add = strcmp(r->request_type, GCS_REQUEST_ADD) == 0;
    bool remove = strcmp(r->request_type, GCS_REQUEST_REMOVE) == 0;
    if (!add && !remove) {
        request_reply_error(req, GCS_HR_E_FAIL, "the RequestType \"%s\" is not supported",
                            r->request_type);
        return;
    }
    int rc = gcs_combined_layers_parse(r->settings, &cl, &err);
    if (rc == 0 && !cl.container_root_path)
        rc = error_set(&err, RPC_INVALID_ARGUMENT, "CombinedLayers: ContainerRootPath missing");
    if (rc == 0)
        rc = add ? combined_layers_add(&cl, &err) : combined_layers_remove(&cl, &err);
    if (rc < 0) {
        request_reply_error(req, GCS_HR_E_FAIL, "%s", err->msg);
        error_free(err);
        return;
    }
    agent_track_mount(req->a, cl.container_root_path, add);
    log_info("CombinedLayers %s %s", r->request_type, cl.container_root_path);
    request_reply(req, NULL);
}

static bool known_lcow_resource(const char *type)
{
    static const char *const known[] = {
        GCS_RESOURCE_MAPPED_VIRTUAL_DISK, GCS_RESOURCE_SCSI_DEVICE, GCS_RESOURCE_MAPPED_DIRECTORY,
        GCS_RESOURCE_VPMEM_DEVICE,        GCS_RESOURCE_NETWORK,     GCS_RESOURCE_VPCI_DEVICE,
        GCS_RESOURCE_SECURITY_POLICY,     "SecurityPolicyFragment", "PodCgroupMemoryLimit",
    };
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        if (strcmp(known[i], type) == 0)
            return true;
    }
    return false;
}

static void handle_modify(struct agent *a, const struct gcs_message *m)
{
    struct gcs_modify_settings_request r;
    shim_error_t *err = NULL;
    if (gcs_modify_settings_request_parse(m->body, &r, &err) < 0) {
        bad_body(a, m, err);
        return;
    }
    struct request *req = request_new(a, m, &r.base);
    if (!req)
        return;
    if (!is_null_id(req->container_id)) {
        struct container *c = target(req);
        if (!c)
            return;
        if (strcmp(r.resource_type, GCS_RESOURCE_CONTAINER_CONSTRAINTS) != 0)
            request_reply_error(req, GCS_HR_E_FAIL, "invalid ResourceType '%s'", r.resource_type);
        else
            container_update(req, c, gcs_json_get(r.settings, "Linux"));
        return;
    }
    if (strcmp(r.resource_type, GCS_RESOURCE_COMBINED_LAYERS) == 0)
        modify_combined_layers(req, &r);
    else if (strcmp(r.resource_type, GCS_RESOURCE_MAPPED_VIRTUAL_DISK) == 0)
        agent_modify_mapped_virtual_disk(req, r.request_type, r.settings);
    else if (strcmp(r.resource_type, GCS_RESOURCE_SCSI_DEVICE) == 0)
        agent_modify_scsi_device(req, r.request_type, r.settings);
    else if (known_lcow_resource(r.resource_type))
        request_reply_error(req, GCS_HR_E_NOTIMPL, "%s is not supported by this agent",
                            r.resource_type);
    else
        request_reply_error(req, GCS_HR_E_FAIL, "invalid ResourceType '%s'", r.resource_type);
}

/* ---- DumpStacks, Delete ------------------------------------------------------------------------
 */

static const char *state_name(enum container_state s)
{
    static const char *const names[] = {"creating", "created", "running", "stopped"};
    return names[s];
}

static void dump_process(FILE *f, const struct process *p)
{
    fprintf(f, "    pid %d%s%s%s%s\n", p->pid, p->is_init ? " init" : "", p->terminal ? " tty" : "",
            p->exited ? " exited" : "", p->waiters ? " (waited on)" : "");
}

static void handle_dump_stacks(struct agent *a, const struct gcs_message *m)
{
    struct request *req = begin(a, m);
    if (!req)
        return;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) {
        request_reply_error(req, GCS_HR_E_FAIL, "out of memory");
        return;
    }
    fprintf(f, "gcs agent pid %d, runtime %s, state %s, live objects %d\n", (int)getpid(),
            a->runtime.path, a->cfg->state_dir, a->live_objects);
    for (const struct container *c = a->containers; c; c = c->next) {
        fprintf(f, "container %s: %s\n", c->id, state_name(c->state));
        if (c->init)
            dump_process(f, c->init);
        for (const struct process *p = c->execs; p; p = p->next)
            dump_process(f, p);
    }
    fprintf(f, "uvm processes:\n");
    for (const struct process *p = a->uvm_processes; p; p = p->next)
        dump_process(f, p);
    fclose(f);
    struct gcs_dump_stacks_response resp = {0};
    resp.base.activity_id = req->activity_id;
    resp.guest_stacks = text;
    request_reply(req, gcs_dump_stacks_response_build(&resp));
    free(text);
}

static void handle_delete(struct agent *a, const struct gcs_message *m)
{
    struct request *req = begin(a, m);
    if (!req)
        return;
    struct container *c = target(req);
    if (c)
        container_delete(req, c);
}

static void handle_start(struct agent *a, const struct gcs_message *m)
{
    struct request *req = begin(a, m);
    if (req)
        request_reply(req, NULL); /* the container starts with its init exec (§6.2) */
}

void agent_dispatch(struct agent *a, struct gcs_message *m)
{
    switch (m->type) {
    case GCS_TYPE_CREATE:
        handle_create(a, m);
        break;
    case GCS_TYPE_START:
        handle_start(a, m);
        break;
    case GCS_TYPE_SHUTDOWN_GRACEFUL:
        handle_shutdown(a, m, false);
        break;
    case GCS_TYPE_SHUTDOWN_FORCED:
        handle_shutdown(a, m, true);
        break;
    case GCS_TYPE_EXECUTE_PROCESS:
        handle_exec(a, m);
        break;
    case GCS_TYPE_WAIT_FOR_PROCESS:
        handle_wait(a, m);
        break;
    case GCS_TYPE_SIGNAL_PROCESS:
        handle_signal(a, m);
        break;
    case GCS_TYPE_RESIZE_CONSOLE:
        handle_resize(a, m);
        break;
    case GCS_TYPE_GET_PROPERTIES:
        handle_properties(a, m);
        break;
    case GCS_TYPE_MODIFY_SETTINGS:
        handle_modify(a, m);
        break;
    case GCS_TYPE_DUMP_STACKS:
        handle_dump_stacks(a, m);
        break;
    case GCS_TYPE_DELETE_CONTAINER_STATE:
        handle_delete(a, m);
        break;
    default: {
        const char *activity_id = NULL;
        gcs_json_string(m->body, "ActivityId", false, &activity_id, NULL);
        char msg[160];
        snprintf(msg, sizeof(msg),
                 "HRESULT 0x80004001: bridge: function not supported, header type: %s (0x%08x)",
                 gcs_type_name(m->type), m->type);
        agent_send(a, gcs_type_response_for(m->type), m->id,
                   gcs_error_response_build(GCS_HR_E_NOTIMPL, activity_id, msg));
    }
    }
}
