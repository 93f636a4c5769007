/* The platform-neutral part of the hypervisor host; see shim/host_uvm_common.h. */
#include "shim/host_uvm_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "gcs/bridge_msg.h"
#include "uvm/channel.h"

#define UVM_BOOT_TIMEOUT_ENV "SHIM_UVM_BOOT_TIMEOUT_MS"
/* Our extension (not hcsshim's): the boot timeout of the pod's UVM. */
#define UVM_BOOT_TIMEOUT_ANNOTATION "io.runhcs.uvm.boot-timeout-ms"

struct shim_uvm_waiter {
    struct shim_uvm_waiter *next;
    struct shim_uvm_host *h;
    shim_host_ready_fn cb;
    void *arg;
    uv_timer_t timer; /* an answer when the VM was already up */
};

static struct shim_uvm_host *host_of(struct shim_host *h)
{
    return (struct shim_uvm_host *)h;
}

/* ---- boot ------------------------------------------------------------------------------------ */

static void answer_waiters(struct shim_uvm_host *h, const shim_error_t *err)
{
    struct shim_uvm_waiter *w = h->waiters;
    h->waiters = NULL;
    while (w) {
        struct shim_uvm_waiter *next = w->next;
        w->cb(w->arg, err ? NULL : uvm_guest(h->uvm), err);
        free(w);
        w = next;
    }
}

static void on_uvm_started(void *opaque, const shim_error_t *err)
{
    struct shim_uvm_host *h = opaque;
    if (err) {
        h->failed = true;
        free(h->failure);
        h->failure = strdup(err->msg);
        log_fields(LOG_LEVEL_ERROR, "utility VM failed to start", "id", h->owner_id, "error",
                   err->msg, "vm_log", uvm_log_path(h->uvm), NULL);
    } else {
        log_fields(LOG_LEVEL_INFO, "utility VM ready", "id", h->owner_id, NULL);
    }
    if (h->hooks->started)
        h->hooks->started(h, err);
    answer_waiters(h, err);
}

static void on_uvm_lost(void *opaque, const shim_error_t *err)
{
    struct shim_uvm_host *h = opaque;
    h->failed = true;
    free(h->failure);
    h->failure = strdup(err ? err->msg : "utility VM lost");
    log_fields(LOG_LEVEL_ERROR, "utility VM lost", "id", h->owner_id, "error", h->failure, "vm_log",
               uvm_log_path(h->uvm), NULL);
    if (h->hooks->lost)
        h->hooks->lost(h);
    if (h->cbs.lost && !h->closing)
        h->cbs.lost(h->opaque, h->failure);
}

static void on_container_exit(void *opaque, const struct gcs_container_notification *n)
{
    struct shim_uvm_host *h = opaque;
    if (h->cbs.container_exit && !h->closing)
        h->cbs.container_exit(h->opaque, n->base.container_id);
}

/* Annotation, else environment, else the default. */
static uint64_t boot_timeout_ms(const json_t *spec)
{
    const char *v = json_string_value(
        json_object_get(json_object_get(spec, "annotations"), UVM_BOOT_TIMEOUT_ANNOTATION));
    if (!v)
        v = getenv(UVM_BOOT_TIMEOUT_ENV);
    unsigned long long ms = v ? strtoull(v, NULL, 10) : 0;
    return ms ? ms : UVM_DEFAULT_BOOT_TIMEOUT_MS;
}

static int boot(struct shim_uvm_host *h, shim_error_t **err)
{
    char id[300];
    snprintf(id, sizeof(id), "%s@vm", h->owner_id);
    struct uvm_config cfg = {
        .id = id, .document = h->document, .boot_timeout_ms = h->boot_timeout_ms};
    if (h->hooks->configure && h->hooks->configure(h, &cfg, err) < 0)
        return -1;
    cfg.system = h->inject_system;
    cfg.channel = h->inject_channel;
    h->inject_system = NULL; /* uvm_create takes them, also on error */
    h->inject_channel = NULL;
    struct uvm_callbacks cbs = {.lost = on_uvm_lost, .container_exit = on_container_exit};
    if (uvm_create(h->loop, &cfg, &cbs, h, &h->uvm, err) < 0)
        return -1;
    const char *run_dir = h->hooks->run_dir ? h->hooks->run_dir(h) : NULL;
    log_fields(LOG_LEVEL_INFO, "starting utility VM", "id", id, run_dir ? "run_dir" : NULL, run_dir,
               NULL);
    return uvm_start(h->uvm, on_uvm_started, h, err);
}

static void ready_timer_closed(uv_handle_t *handle)
{
    struct shim_uvm_waiter *w = handle->data;
    struct shim_uvm_host *h = w->h;
    free(w);
    h->pending--;
    shim_uvm_host_maybe_free(h);
}

static void on_ready_timer(uv_timer_t *t)
{
    struct shim_uvm_waiter *w = t->data;
    struct shim_uvm_host *h = w->h;
    struct gcs_guest_connection *c = h->uvm && !h->closing ? uvm_guest(h->uvm) : NULL;
    shim_error_t *e = NULL;
    if (!c)
        error_set(&e, RPC_UNAVAILABLE, "utility VM: %s",
                  h->closing   ? "shutting down"
                  : h->failure ? h->failure
                               : "gone");
    w->cb(w->arg, c, e);
    error_free(e);
    uv_close((uv_handle_t *)&w->timer, ready_timer_closed);
}

int shim_uvm_host_get(struct shim_host *base, shim_host_ready_fn cb, void *arg, shim_error_t **err)
{
    struct shim_uvm_host *h = host_of(base);
    if (h->closing)
        return error_set(err, RPC_FAILED_PRECONDITION, "the utility VM is shutting down");
    if (h->failed)
        return error_set(err, RPC_UNAVAILABLE, "utility VM: %s", h->failure);
    struct shim_uvm_waiter *w = calloc(1, sizeof(*w));
    if (!w)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    w->h = h;
    w->cb = cb;
    w->arg = arg;
    if (!h->started) {
        if (boot(h, err) < 0) {
            free(w);
            h->failed = true;
            free(h->failure);
            h->failure = strdup(*err ? (*err)->msg : "cannot start the utility VM");
            return -1;
        }
        h->started = true;
    }
    if (uvm_guest(h->uvm)) {
        uv_timer_init(h->loop, &w->timer);
        w->timer.data = w;
        uv_timer_start(&w->timer, on_ready_timer, 0, 0);
        h->pending++;
        return 0;
    }
    w->next = h->waiters;
    h->waiters = w;
    return 0;
}

struct gcs_guest_connection *shim_uvm_host_connection(const struct shim_host *base)
{
    const struct shim_uvm_host *h = (const struct shim_uvm_host *)base;
    return h->uvm ? uvm_guest(h->uvm) : NULL;
}

/* ---- pause --------------------------------------------------------------------------------- */

struct pause_ctx {
    struct shim_uvm_host *h;
    shim_host_done_fn cb;
    void *arg;
};

static void on_paused(void *opaque, const shim_error_t *err)
{
    struct pause_ctx *x = opaque;
    x->cb(x->arg, err);
    free(x);
}

int shim_uvm_host_pause(struct shim_host *base, const char *id, bool pause, shim_host_done_fn cb,
                        void *arg, shim_error_t **err)
{
    struct shim_uvm_host *h = host_of(base);
    if (!h->uvm || !uvm_guest(h->uvm))
        return error_set(err, RPC_FAILED_PRECONDITION, "the utility VM is not running");
    if (h->hooks->containers && h->hooks->containers(h) > 1)
        return error_set(err, RPC_UNIMPLEMENTED,
                         "%s: pausing one container of a shared utility VM is not supported", id);
    struct pause_ctx *x = calloc(1, sizeof(*x));
    if (!x)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    *x = (struct pause_ctx){.h = h, .cb = cb, .arg = arg};
    int rc = pause ? uvm_pause(h->uvm, on_paused, x, err) : uvm_resume(h->uvm, on_paused, x, err);
    if (rc < 0) {
        free(x);
        return -1;
    }
    return 0;
}

bool shim_uvm_host_child_exited(struct shim_host *base, pid_t pid, int wait_status)
{
    struct shim_uvm_host *h = host_of(base);
    return h->uvm && uvm_reaped(h->uvm, (int)pid, wait_status) == 1;
}

/* ---- close --------------------------------------------------------------------------------- */

void shim_uvm_host_maybe_free(struct shim_uvm_host *h)
{
    if (!h->closing || h->pending > 0 || h->uvm)
        return;
    if (h->hooks->destroy)
        h->hooks->destroy(h);
    if (h->inject_system)
        hcs_system_close(h->inject_system);
    if (h->inject_channel)
        h->inject_channel->ops->close(h->inject_channel);
    shim_host_closed_fn done = h->closed_cb;
    void *arg = h->closed_arg;
    free(h->document);
    free(h->owner_id);
    free(h->failure);
    free(h);
    if (done)
        done(arg);
}

static void on_terminated(void *opaque, const shim_error_t *err)
{
    struct shim_uvm_host *h = opaque;
    (void)err;
    h->pending--;
    log_fields(LOG_LEVEL_INFO, "utility VM stopped", "id", h->owner_id, NULL);
    uvm_close(h->uvm);
    h->uvm = NULL;
    shim_uvm_host_maybe_free(h);
}

void shim_uvm_host_close(struct shim_host *base, shim_host_closed_fn done, void *arg)
{
    struct shim_uvm_host *h = host_of(base);
    if (h->closing)
        return;
    h->closing = true;
    h->closed_cb = done;
    h->closed_arg = arg;
    shim_error_t *e = NULL;
    shim_error_t *gone = NULL;
    error_set(&gone, RPC_UNAVAILABLE, "the shim is shutting down");
    struct shim_uvm_waiter *w = h->waiters;
    h->waiters = NULL;
    while (w) {
        struct shim_uvm_waiter *next = w->next;
        w->cb(w->arg, NULL, gone);
        free(w);
        w = next;
    }
    error_free(gone);
    if (h->uvm) {
        if (uvm_terminate(h->uvm, on_terminated, h, &e) == 0) {
            h->pending++;
            return;
        }
        error_free(e);
        uvm_close(h->uvm);
        h->uvm = NULL;
    }
    shim_uvm_host_maybe_free(h);
}

/* ---- construction ---------------------------------------------------------------------------- */

int shim_uvm_host_init(struct shim_uvm_host *h, uv_loop_t *loop,
                       const struct shim_host_uvm_config *cfg, const char *default_boot_path,
                       const struct shim_uvm_host_hooks *hooks,
                       const struct shim_host_callbacks *cbs, void *opaque, shim_error_t **err)
{
    char *doc =
        uvm_document_for_spec(cfg->spec, cfg->options, cfg->owner_id, "containerd-shim-runhcs-v1",
                              cfg->debug ? "debug" : "info", default_boot_path, err);
    if (!doc)
        return -1;
    if (!(h->owner_id = strdup(cfg->owner_id))) {
        free(doc);
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    }
    h->base.kind = SHIM_HOST_HYPERVISOR;
    h->hooks = hooks;
    h->loop = loop;
    h->document = doc;
    h->boot_timeout_ms = boot_timeout_ms(cfg->spec);
    if (cbs)
        h->cbs = *cbs;
    h->opaque = opaque;
    return 0;
}
