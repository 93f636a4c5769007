/* The process host (shim/host.h): the gcs agent as the shim's child
 * (shim/agent.h). The container's rootfs is the host directory the shim
 * mounted at <bundle>/rootfs; when the agent lives in its own mount
 * namespace the rootfs is mounted there too (shim_agent_in_mount_ns). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "gcs/bridge_msg.h"
#include "shim/agent.h"
#include "shim/host.h"

struct process_host {
    struct shim_host base;
    struct shim_agent *agent;
    struct shim_host_callbacks cbs;
    void *opaque;
};

static struct process_host *host_of(struct shim_host *h)
{
    return (struct process_host *)h;
}

static void on_agent_lost(void *opaque, const char *reason)
{
    struct process_host *h = opaque;
    if (h->cbs.lost)
        h->cbs.lost(h->opaque, reason);
}

static void on_agent_container_exit(void *opaque, const char *id)
{
    struct process_host *h = opaque;
    if (h->cbs.container_exit)
        h->cbs.container_exit(h->opaque, id);
}

static int host_get(struct shim_host *base, shim_host_ready_fn cb, void *arg, shim_error_t **err)
{
    return shim_agent_get(host_of(base)->agent, cb, arg, err);
}

static struct gcs_guest_connection *host_connection(const struct shim_host *base)
{
    return shim_agent_connection(((const struct process_host *)base)->agent);
}

/* ---- rootfs in the agent's mount namespace ------------------------------------------------ */

struct ns_mount {
    const char *bundle;
    const struct bundle_mount *mounts;
    size_t n;
};

static int mount_in_agent_ns(void *arg)
{
    const struct ns_mount *m = arg;
    shim_error_t *err = NULL;
    if (bundle_unmount_rootfs(m->bundle, NULL) < 0 ||
        bundle_mount_rootfs(m->bundle, m->mounts, m->n, &err) < 0) {
        log_fields(LOG_LEVEL_ERROR, "mounting the rootfs for the agent failed", "error",
                   err ? err->msg : "unmount failed", NULL);
        error_free(err);
        return -1;
    }
    return 0;
}

static int unmount_in_agent_ns(void *arg)
{
    const struct ns_mount *m = arg;
    return bundle_unmount_rootfs(m->bundle, NULL);
}

/* The spec as the agent gets it: root.path is the host path of the rootfs
 * (the agent uses it as given). */
static json_t *agent_spec(const struct shim_host_container *c, shim_error_t **err)
{
    json_t *spec = json_deep_copy(c->spec);
    json_t *root = spec ? json_object_get(spec, "root") : NULL;
    if (spec != NULL && !json_is_object(root)) {
        root = json_object();
        json_object_set_new(spec, "root", root);
    }
    if (spec == NULL || root == NULL) {
        json_decref(spec);
        error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
        return NULL;
    }
    const char *path = json_string_value(json_object_get(root, "path"));
    if (path != NULL && path[0] == '/') {
        /* already absolute */
    } else if (path == NULL || strcmp(path, "rootfs") == 0) {
        json_object_set_new(root, "path", json_string(c->rootfs_dir));
    } else {
        char *abs = NULL;
        if (asprintf(&abs, "%s/%s", c->bundle, path) < 0) {
            json_decref(spec);
            error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
            return NULL;
        }
        json_object_set_new(root, "path", json_string(abs));
        free(abs);
    }
    return spec;
}

static int host_prepare(struct shim_host *base, const struct shim_host_container *c,
                        shim_host_config_fn cb, void *arg, shim_error_t **err)
{
    struct process_host *h = host_of(base);
    if (c->rootfs_mounted) {
        struct ns_mount m = {.bundle = c->bundle, .mounts = c->mounts, .n = c->n_mounts};
        if (shim_agent_in_mount_ns(h->agent, mount_in_agent_ns, &m, err) < 0)
            return -1;
    }
    json_t *spec = agent_spec(c, err);
    if (spec == NULL)
        return -1;
    char *bundle = NULL;
    if (asprintf(&bundle, "%s/c/%s", shim_agent_state_dir(h->agent), c->id) < 0)
        bundle = NULL;
    struct gcs_container_config cc = {
        .schema_major = 2, .schema_minor = 1, .oci_bundle_path = bundle, .oci_specification = spec};
    json_t *config = bundle ? gcs_container_config_build(&cc) : NULL;
    free(bundle);
    json_decref(spec);
    if (config == NULL)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    cb(arg, config, NULL);
    return 0;
}

static int host_release(struct shim_host *base, const char *id, const char *bundle,
                        shim_host_done_fn cb, void *arg, shim_error_t **err)
{
    struct process_host *h = host_of(base);
    (void)err;
    shim_error_t *e = NULL;
    struct ns_mount m = {.bundle = bundle};
    if (shim_agent_in_mount_ns(h->agent, unmount_in_agent_ns, &m, &e) < 0) {
        log_fields(LOG_LEVEL_WARN, "unmounting rootfs in the agent failed", "id", id, "error",
                   e->msg, NULL);
        error_free(e);
    }
    cb(arg, NULL);
    return 0;
}

static int host_pause(struct shim_host *base, const char *id, bool pause, shim_host_done_fn cb,
                      void *arg, shim_error_t **err)
{
    (void)base;
    (void)cb;
    (void)arg;
    return error_set(err, RPC_UNIMPLEMENTED, "%s is not supported for process-isolated task %s",
                     pause ? "Pause" : "Resume", id);
}

static bool host_child_exited(struct shim_host *base, pid_t pid, int wait_status)
{
    return shim_agent_child_exited(host_of(base)->agent, pid, wait_status);
}

struct close_ctx {
    struct process_host *h;
    shim_host_closed_fn done;
    void *arg;
};

static void after_agent_closed(void *arg)
{
    struct close_ctx *x = arg;
    shim_host_closed_fn done = x->done;
    void *darg = x->arg;
    free(x->h);
    free(x);
    if (done)
        done(darg);
}

static void host_close(struct shim_host *base, shim_host_closed_fn done, void *arg)
{
    struct process_host *h = host_of(base);
    struct close_ctx *x = calloc(1, sizeof(*x));
    if (x == NULL)
        abort(); /* cannot shut down cleanly without a few bytes */
    x->h = h;
    x->done = done;
    x->arg = arg;
    h->cbs = (struct shim_host_callbacks){0}; /* nothing is reported while closing */
    shim_agent_close(h->agent, after_agent_closed, x);
}

static const struct shim_host_ops process_host_ops = {
    .get = host_get,
    .connection = host_connection,
    .prepare = host_prepare,
    .release = host_release,
    .pause = host_pause,
    .child_exited = host_child_exited,
    .close = host_close,
};

int shim_host_process_new(uv_loop_t *loop, bool debug, const struct shim_host_callbacks *cbs,
                          void *opaque, struct shim_host **out, shim_error_t **err)
{
    struct process_host *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    h->base.ops = &process_host_ops;
    h->base.kind = SHIM_HOST_PROCESS;
    if (cbs)
        h->cbs = *cbs;
    h->opaque = opaque;
    struct shim_agent_callbacks acbs = {.lost = on_agent_lost,
                                        .container_exit = on_agent_container_exit};
    if (shim_agent_new(loop, debug, &acbs, h, &h->agent, err) < 0) {
        free(h);
        return -1;
    }
    *out = &h->base;
    return 0;
}
