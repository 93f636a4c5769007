/* The hypervisor host (shim/host.h) on Windows: one LCOW utility VM per shim
 * under HCS (uvm/ over hcs/win + hvsock); the common part is
 * shim/host_uvm_common.c.
 *
 * Rootfs (hcs-documents.md §4.2-4.3): containerd's lcow-layer mount (or the
 * legacy spec.windows.layerFolders) names read-only parent layers, each
 * <folder>\layer.vhd, top-most first, and the scratch folder holding
 * sandbox.vhdx. Prepare attaches every layer read-only and the scratch
 * read-write on SCSI (uvm_disk_add: host attach + guest MappedVirtualDisk,
 * reference counted, so layers shared by a pod's containers are attached
 * once), then sends CombinedLayers (the overlay at /run/gcs/c/<id>/rootfs)
 * and builds the ContainerConfig. Release undoes it in reverse order. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "gcs/bridge_msg.h"
#include "hcs/doc_modify.h"
#include "shim/bundle.h"
#include "shim/host_uvm_common.h"
#include "uvm/channel.h"

#define DEFAULT_BOOT_FILES "C:\\Program Files\\Linux Containers"

struct wctr {
    struct wctr *next;
    struct win_host *h;
    char *id;
    char **disks;    /* host paths: the layers' layer.vhd (top-most first), then sandbox.vhdx */
    char **guest;    /* where each attached disk is mounted in the UVM */
    size_t n_layers; /* disks = n_layers + 1 (the scratch) */
    size_t attached; /* disks[0 .. attached) are attached */
    bool adding, combining, combined, undoing, released;
    json_t *spec; /* the OCI spec (copy) until the config is built */
    shim_host_config_fn cb;
    void *arg;
    shim_error_t *prepare_err; /* a failed prepare, answered after the undo */
    shim_host_done_fn release_cb;
    void *release_arg;
};

struct win_host {
    struct shim_uvm_host common; /* first: the shim_host */
    struct wctr *ctrs;
};

static void undo(struct wctr *c);

static struct win_host *host_of(struct shim_host *h)
{
    return (struct win_host *)h;
}

/* ---- containers ------------------------------------------------------------------------------ */

static struct wctr *ctr_find(struct win_host *h, const char *id)
{
    for (struct wctr *c = h->ctrs; c; c = c->next)
        if (strcmp(c->id, id) == 0)
            return c;
    return NULL;
}

static void ctr_free(struct win_host *h, struct wctr *c)
{
    for (struct wctr **pp = &h->ctrs; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    for (size_t i = 0; c->disks && i <= c->n_layers; i++)
        free(c->disks[i]);
    for (size_t i = 0; c->guest && i <= c->n_layers; i++)
        free(c->guest[i]);
    free(c->disks);
    free(c->guest);
    json_decref(c->spec);
    error_free(c->prepare_err);
    free(c->id);
    free(c);
}

static size_t scratch_index(const struct wctr *c)
{
    return c->n_layers;
}

static bool closing(const struct wctr *c)
{
    return c->h->common.closing || !c->h->common.uvm;
}

/* Answers a pending prepare (err, else prepare_err, else "released") and
 * then a pending release (also one made from inside the prepare callback). */
static void answer(struct wctr *c, const shim_error_t *err)
{
    shim_host_config_fn cb = c->cb;
    c->cb = NULL;
    if (cb) {
        shim_error_t *canceled = NULL;
        if (!err && !c->prepare_err)
            error_set(&canceled, RPC_CANCELED, "container %s was released while being prepared",
                      c->id);
        cb(c->arg, NULL, err ? err : c->prepare_err ? c->prepare_err : canceled);
        error_free(canceled);
    }
    shim_host_done_fn release_cb = c->release_cb;
    c->release_cb = NULL;
    if (release_cb)
        release_cb(c->release_arg, NULL);
}

/* The VM is being terminated: answer what waits; close frees c. */
static void abandon(struct wctr *c)
{
    shim_error_t *e = NULL;
    error_set(&e, RPC_UNAVAILABLE, "the utility VM is shutting down");
    answer(c, e);
    error_free(e);
}

static void finish_undo(struct wctr *c)
{
    struct win_host *h = c->h;
    answer(c, NULL);
    ctr_free(h, c);
    shim_uvm_host_maybe_free(&h->common);
}

static void fail_prepare(struct wctr *c, int code, const char *what, const shim_error_t *err)
{
    error_set(&c->prepare_err, err && err->code ? err->code : code, "container %s: %s: %s", c->id,
              what, err ? err->msg : "failed");
    log_warn("%s", c->prepare_err->msg);
    undo(c);
}

/* ---- undo (release, failed prepare): CombinedLayers Remove, then the disks in reverse ----------
 */

static void on_disk_removed(void *opaque, const shim_error_t *err)
{
    struct wctr *c = opaque;
    if (err)
        log_fields(LOG_LEVEL_WARN, "detaching a layer disk failed", "id", c->id, "path",
                   c->disks[c->attached - 1], "error", err->msg, NULL);
    c->attached--;
    if (closing(c)) {
        abandon(c);
        return;
    }
    undo(c);
}

static void on_uncombined(void *opaque, int32_t hresult, const shim_error_t *err)
{
    struct wctr *c = opaque;
    (void)hresult;
    c->combined = false;
    if (err)
        log_fields(LOG_LEVEL_WARN, "removing the combined layers failed", "id", c->id, "error",
                   err->msg, NULL);
    if (closing(c)) {
        abandon(c);
        return;
    }
    undo(c);
}

static int send_uncombine(struct wctr *c)
{
    char root[300];
    snprintf(root, sizeof(root), "/run/gcs/c/%s/rootfs", c->id);
    struct gcs_guest_connection *conn = uvm_guest(c->h->common.uvm);
    json_t *req = hcs_guest_lcow_combined_layers_remove(root);
    shim_error_t *e = NULL;
    int rc = conn && req
                 ? gcs_guest_modify_settings(conn, NULL, "CombinedLayers", "Remove",
                                             json_object_get(req, "Settings"), on_uncombined, c, &e)
                 : -1;
    json_decref(req);
    error_free(e);
    return rc;
}

static void undo(struct wctr *c)
{
    c->undoing = true;
    while (!closing(c)) {
        if (c->combined) {
            if (send_uncombine(c) == 0)
                return;
            c->combined = false; /* the guest is gone: nothing to unmount there */
            continue;
        }
        if (c->attached == 0)
            break;
        shim_error_t *e = NULL;
        if (uvm_disk_remove(c->h->common.uvm, c->disks[c->attached - 1], on_disk_removed, c, &e) ==
            0)
            return;
        log_fields(LOG_LEVEL_WARN, "detaching a layer disk failed", "id", c->id, "path",
                   c->disks[c->attached - 1], "error", e ? e->msg : "?", NULL);
        error_free(e);
        c->attached--;
    }
    if (closing(c)) {
        abandon(c);
        return;
    }
    finish_undo(c);
}

/* ---- prepare: attach, combine, config ----------------------------------------------------------
 */

static void build_config(struct wctr *c)
{
    char bundle[300], root[320], scratch[600];
    snprintf(bundle, sizeof(bundle), "/run/gcs/c/%s", c->id);
    snprintf(root, sizeof(root), "%s/rootfs", bundle);
    snprintf(scratch, sizeof(scratch), "%s/scratch/%s", c->guest[scratch_index(c)], c->id);
    shim_error_t *e = NULL;
    json_t *spec = uvm_container_spec(c->spec, c->id, root, &e);
    struct gcs_container_config cc = {.schema_major = 2,
                                      .schema_minor = 1,
                                      .oci_bundle_path = bundle,
                                      .oci_specification = spec,
                                      .scratch_dir_path = scratch};
    json_t *config = spec ? gcs_container_config_build(&cc) : NULL;
    json_decref(spec);
    json_decref(c->spec);
    c->spec = NULL;
    if (!config) {
        if (!e)
            error_set(&e, RPC_RESOURCE_EXHAUSTED, "out of memory");
        fail_prepare(c, RPC_INTERNAL, "container config", e);
        error_free(e);
        return;
    }
    shim_host_config_fn cb = c->cb;
    c->cb = NULL;
    cb(c->arg, config, NULL);
}

static void on_combined(void *opaque, int32_t hresult, const shim_error_t *err)
{
    struct wctr *c = opaque;
    (void)hresult;
    c->combining = false;
    if (closing(c)) {
        abandon(c);
        return;
    }
    if (err) {
        fail_prepare(c, RPC_INTERNAL, "combining the layers", err);
        return;
    }
    c->combined = true;
    if (c->released) { /* Delete came first */
        undo(c);
        return;
    }
    build_config(c);
}

static void combine(struct wctr *c)
{
    char root[300], scratch[600];
    snprintf(root, sizeof(root), "/run/gcs/c/%s/rootfs", c->id);
    snprintf(scratch, sizeof(scratch), "%s/scratch/%s", c->guest[scratch_index(c)], c->id);
    json_t *req = hcs_guest_lcow_combined_layers_add(c->id, root, (const char *const *)c->guest,
                                                     c->n_layers, scratch);
    struct gcs_guest_connection *conn = uvm_guest(c->h->common.uvm);
    shim_error_t *e = NULL;
    if (!req)
        error_set(&e, RPC_RESOURCE_EXHAUSTED, "out of memory");
    else if (!conn)
        error_set(&e, RPC_UNAVAILABLE, "the utility VM is not running");
    if (e || gcs_guest_modify_settings(conn, NULL, "CombinedLayers", "Add",
                                       json_object_get(req, "Settings"), on_combined, c, &e) < 0) {
        json_decref(req);
        fail_prepare(c, RPC_INTERNAL, "combining the layers", e);
        error_free(e);
        return;
    }
    json_decref(req);
    c->combining = true;
}

static void attach_next(struct wctr *c);

static void on_disk_added(void *opaque, const shim_error_t *err, const char *guest_path)
{
    struct wctr *c = opaque;
    c->adding = false;
    if (closing(c)) {
        abandon(c);
        return;
    }
    if (err) {
        char what[600];
        snprintf(what, sizeof(what), "attaching %s", c->disks[c->attached]);
        fail_prepare(c, RPC_INTERNAL, what, err);
        return;
    }
    if (!(c->guest[c->attached] = strdup(guest_path))) {
        /* Attached: count it so the undo detaches it. */
        c->attached++;
        shim_error_t *e = NULL;
        error_set(&e, RPC_RESOURCE_EXHAUSTED, "out of memory");
        fail_prepare(c, RPC_RESOURCE_EXHAUSTED, "attaching the layers", e);
        error_free(e);
        return;
    }
    c->attached++;
    if (c->released) {
        undo(c);
        return;
    }
    attach_next(c);
}

static void attach_next(struct wctr *c)
{
    if (c->attached > scratch_index(c)) {
        combine(c);
        return;
    }
    bool read_only = c->attached < c->n_layers;
    shim_error_t *e = NULL;
    if (uvm_disk_add(c->h->common.uvm, c->disks[c->attached], read_only, on_disk_added, c, &e) <
        0) {
        char what[600];
        snprintf(what, sizeof(what), "attaching %s", c->disks[c->attached]);
        fail_prepare(c, RPC_INTERNAL, what, e);
        error_free(e);
        return;
    }
    c->adding = true;
}

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir);
    bool sep = n > 0 && (dir[n - 1] == '\\' || dir[n - 1] == '/');
    char *out = malloc(n + strlen(name) + 2);
    if (out)
        sprintf(out, "%s%s%s", dir, sep ? "" : "\\", name);
    return out;
}

/* Layers from the rootfs mount, else spec.windows.layerFolders ([layers..., scratch]). */
static int layer_disks(struct wctr *c, const struct shim_host_container *ci, shim_error_t **err)
{
    struct bundle_layers layers;
    if (bundle_layers_from_rootfs(ci->mounts, ci->n_mounts, &layers, err) < 0)
        return -1;
    const char *scratch = layers.scratch;
    const char *const *parents = (const char *const *)layers.parents;
    size_t n = layers.n_parents;
    const char *legacy[130];
    if (ci->n_mounts == 0) {
        json_t *folders = json_object_get(json_object_get(ci->spec, "windows"), "layerFolders");
        size_t nf = json_array_size(folders);
        if (nf < 2 || nf > sizeof(legacy) / sizeof(legacy[0])) {
            bundle_layers_free(&layers);
            return error_set(err, RPC_INVALID_ARGUMENT,
                             "container %s: no lcow-layer rootfs mount and no "
                             "windows.layerFolders (at least a layer and the scratch)",
                             ci->id);
        }
        for (size_t i = 0; i < nf; i++)
            legacy[i] = json_string_value(json_array_get(folders, i));
        for (size_t i = 0; i < nf; i++)
            if (!legacy[i] || !legacy[i][0]) {
                bundle_layers_free(&layers);
                return error_set(err, RPC_INVALID_ARGUMENT,
                                 "container %s: windows.layerFolders[%zu] is not a path", ci->id,
                                 i);
            }
        scratch = legacy[nf - 1];
        parents = legacy;
        n = nf - 1;
    } else if (layers.type != BUNDLE_LAYER_LCOW) {
        bundle_layers_free(&layers);
        return error_set(err, RPC_INVALID_ARGUMENT,
                         "container %s: a windows-layer rootfs cannot run in a Linux utility VM",
                         ci->id);
    }
    c->n_layers = n;
    c->disks = calloc(n + 1, sizeof(char *));
    c->guest = calloc(n + 1, sizeof(char *));
    int rc = c->disks && c->guest ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (!(c->disks[i] = join(parents[i], "layer.vhd")))
            rc = -1;
    if (rc == 0 && !(c->disks[n] = join(scratch, "sandbox.vhdx")))
        rc = -1;
    bundle_layers_free(&layers);
    return rc < 0 ? error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory") : 0;
}

static int host_prepare(struct shim_host *base, const struct shim_host_container *ci,
                        shim_host_config_fn cb, void *arg, shim_error_t **err)
{
    struct win_host *h = host_of(base);
    if (!h->common.uvm || !uvm_guest(h->common.uvm))
        return error_set(err, RPC_UNAVAILABLE, "the utility VM is not running");
    if (ctr_find(h, ci->id))
        return error_set(err, RPC_ALREADY_EXISTS, "container %s already has a rootfs", ci->id);
    struct wctr *c = calloc(1, sizeof(*c));
    if (!c || !(c->id = strdup(ci->id)) || !(c->spec = json_deep_copy(ci->spec))) {
        if (c) {
            free(c->id);
            free(c);
        }
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    }
    c->h = h;
    c->next = h->ctrs;
    h->ctrs = c;
    if (layer_disks(c, ci, err) < 0) {
        ctr_free(h, c);
        return -1;
    }
    bool read_only = c->n_layers > 0;
    if (uvm_disk_add(h->common.uvm, c->disks[0], read_only, on_disk_added, c, err) < 0) {
        ctr_free(h, c);
        return -1;
    }
    c->adding = true;
    c->cb = cb;
    c->arg = arg;
    log_fields(LOG_LEVEL_DEBUG, "attaching container layers", "id", ci->id, "scratch",
               c->disks[scratch_index(c)], NULL);
    return 0;
}

static int host_release(struct shim_host *base, const char *id, const char *bundle,
                        shim_host_done_fn cb, void *arg, shim_error_t **err)
{
    struct win_host *h = host_of(base);
    (void)bundle;
    (void)err;
    struct wctr *c = ctr_find(h, id);
    if (!c || c->released) {
        cb(arg, NULL);
        return 0;
    }
    c->released = true;
    c->release_cb = cb;
    c->release_arg = arg;
    if (c->adding || c->combining || c->undoing)
        return 0; /* the step in flight goes on to the undo */
    undo(c);
    return 0;
}

/* ---- hooks ----------------------------------------------------------------------------------- */

static size_t containers(const struct shim_uvm_host *common)
{
    size_t n = 0;
    for (const struct wctr *c = ((const struct win_host *)common)->ctrs; c; c = c->next)
        n++;
    return n;
}

static void destroy(struct shim_uvm_host *common)
{
    struct win_host *h = (struct win_host *)common;
    while (h->ctrs)
        ctr_free(h, h->ctrs);
}

static const struct shim_uvm_host_hooks hcs_hooks = {
    .containers = containers,
    .destroy = destroy,
};

static const struct shim_host_ops uvm_host_ops = {
    .get = shim_uvm_host_get,
    .connection = shim_uvm_host_connection,
    .prepare = host_prepare,
    .release = host_release,
    .pause = shim_uvm_host_pause,
    .child_exited = shim_uvm_host_child_exited,
    .close = shim_uvm_host_close,
};

int shim_host_uvm_new_injected(uv_loop_t *loop, const struct shim_host_uvm_config *cfg,
                               const struct shim_host_callbacks *cbs, void *opaque,
                               hcs_system_t *sys, struct uvm_channel *channel,
                               struct shim_host **out, shim_error_t **err)
{
    struct win_host *h = calloc(1, sizeof(*h));
    char *boot_path = h ? uvm_default_boot_files_path() : NULL;
    int rc =
        h ? shim_uvm_host_init(&h->common, loop, cfg, boot_path ? boot_path : DEFAULT_BOOT_FILES,
                               &hcs_hooks, cbs, opaque, err)
          : error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    free(boot_path);
    if (rc < 0) {
        free(h);
        if (sys)
            hcs_system_close(sys);
        if (channel)
            channel->ops->close(channel);
        return -1;
    }
    h->common.base.ops = &uvm_host_ops;
    h->common.inject_system = sys;
    h->common.inject_channel = channel;
    *out = &h->common.base;
    return 0;
}

int shim_host_uvm_new(uv_loop_t *loop, const struct shim_host_uvm_config *cfg,
                      const struct shim_host_callbacks *cbs, void *opaque, struct shim_host **out,
                      shim_error_t **err)
{
    return shim_host_uvm_new_injected(loop, cfg, cbs, opaque, NULL, NULL, out, err);
}
