/* The hypervisor host (shim/host.h): one Linux utility VM per shim.
 *
 * Rootfs: containerd's rootfs is mounted on the host at <bundle>/rootfs (as
 * for process isolation); at Create it is copied into an ext4 image
 * (mkfs.ext4 -d, ~15-60 ms for busybox), hot-added on SCSI and mounted in
 * the guest; the container's root.path points there and its writes stay in
 * the image, which is detached and deleted with the container. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "gcs/bridge_msg.h"
#include "shim/host.h"
#include "uvm/uvm.h"

#define UVM_RUN_ROOT "/run/runhcs-uvm"
#define UVM_BOOT_TIMEOUT_ENV "SHIM_UVM_BOOT_TIMEOUT_MS"
/* Our extension (not hcsshim's): the boot timeout of the pod's UVM. */
#define UVM_BOOT_TIMEOUT_ANNOTATION "io.runhcs.uvm.boot-timeout-ms"

struct waiter {
    struct waiter *next;
    struct uvm_host *h;
    shim_host_ready_fn cb;
    void *arg;
    uv_timer_t timer; /* an answer when the VM was already up */
};

struct ctr {
    struct ctr *next;
    struct uvm_host *h;
    char *id;
    char *image;
    bool disk_added;   /* uvm_disk_add succeeded */
    bool disk_pending; /* uvm_disk_add in flight */
    bool released;     /* release came while the add was in flight */
    char *guest_spec_root;
    json_t *spec; /* the OCI spec (copy) until the disk is there */
    shim_host_config_fn cb;
    void *arg;
    shim_host_done_fn release_cb;
    void *release_arg;
};

struct uvm_host {
    struct shim_host base;
    uv_loop_t *loop;
    struct shim_host_callbacks cbs;
    void *opaque;
    char *owner_id;
    char *run_dir; /* UVM_RUN_ROOT/uvm-XXXXXX: owner pid, VM sockets, rootfs images */
    char *document;
    struct uvm *uvm;
    bool started, failed, closing;
    char *failure;
    uint64_t boot_timeout_ms;
    struct waiter *waiters;
    struct ctr *ctrs;
    shim_host_closed_fn closed_cb;
    void *closed_arg;
    int pending; /* our timers and the terminate callback; uvm operation callbacks
                    never run after uvm_close, which comes before the free */
};

static void host_maybe_free(struct uvm_host *h);

static struct uvm_host *host_of(struct shim_host *h)
{
    return (struct uvm_host *)h;
}

/* ---- boot ------------------------------------------------------------------------------------ */

static void answer_waiters(struct uvm_host *h, const shim_error_t *err)
{
    struct waiter *w = h->waiters;
    h->waiters = NULL;
    while (w) {
        struct waiter *next = w->next;
        w->cb(w->arg, err ? NULL : uvm_guest(h->uvm), err);
        free(w);
        w = next;
    }
}

/* The VM's console tail into the shim's log: the run directory (and the log
 * in it) goes away with the host. */
static void log_vm_console(struct uvm_host *h)
{
    const char *path = h->uvm ? uvm_log_path(h->uvm) : NULL;
    FILE *f = path ? fopen(path, "r") : NULL;
    if (!f)
        return;
    char lines[20][256];
    size_t n = 0;
    while (fgets(lines[n % 20], sizeof(lines[0]), f))
        n++;
    fclose(f);
    for (size_t i = n > 20 ? n - 20 : 0; i < n; i++) {
        char *l = lines[i % 20];
        l[strcspn(l, "\r\n")] = '\0';
        log_fields(LOG_LEVEL_WARN, "utility VM console", "id", h->owner_id, "line", l, NULL);
    }
}

static void on_uvm_started(void *opaque, const shim_error_t *err)
{
    struct uvm_host *h = opaque;
    if (err) {
        h->failed = true;
        free(h->failure);
        h->failure = strdup(err->msg);
        log_fields(LOG_LEVEL_ERROR, "utility VM failed to start", "id", h->owner_id, "error",
                   err->msg, "vm_log", uvm_log_path(h->uvm), NULL);
        log_vm_console(h);
    } else {
        log_fields(LOG_LEVEL_INFO, "utility VM ready", "id", h->owner_id, NULL);
    }
    if (h->uvm && uvm_vm_pid(h->uvm) > 0) {
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/vm.pid", h->run_dir);
        FILE *f = fopen(path, "w");
        if (f) {
            fprintf(f, "%d\n", uvm_vm_pid(h->uvm));
            fclose(f);
        }
    }
    answer_waiters(h, err);
}

static void on_uvm_lost(void *opaque, const shim_error_t *err)
{
    struct uvm_host *h = opaque;
    h->failed = true;
    free(h->failure);
    h->failure = strdup(err ? err->msg : "utility VM lost");
    log_fields(LOG_LEVEL_ERROR, "utility VM lost", "id", h->owner_id, "error", h->failure, "vm_log",
               uvm_log_path(h->uvm), NULL);
    log_vm_console(h);
    if (h->cbs.lost && !h->closing)
        h->cbs.lost(h->opaque, h->failure);
}

static void on_container_exit(void *opaque, const struct gcs_container_notification *n)
{
    struct uvm_host *h = opaque;
    if (h->cbs.container_exit && !h->closing)
        h->cbs.container_exit(h->opaque, n->base.container_id);
}

static int write_owner(const char *dir)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/owner", dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fprintf(f, "%d\n", (int)getpid());
    return fclose(f);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw);

static int read_pid(const char *dir, const char *name)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    int pid = 0;
    if (!f)
        return 0;
    if (fscanf(f, "%d", &pid) != 1)
        pid = 0;
    fclose(f);
    return pid;
}

/* True when pid's command line mentions dir (it is that VM's QEMU). */
static bool pid_uses_dir(int pid, const char *dir)
{
    char path[64], buf[8192];
    snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    for (size_t i = 0; i < n; i++)
        if (buf[i] == '\0')
            buf[i] = ' ';
    buf[n] = '\0';
    return strstr(buf, dir) != NULL;
}

/* A shim that was SIGKILLed leaves its VM running: the next shim ends it
 * (QEMU's pid is in <dir>/vm.pid, checked against its command line) and
 * removes the directory. */
static void sweep_stale_run_dirs(void)
{
    DIR *d = opendir(UVM_RUN_ROOT);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strncmp(de->d_name, "uvm-", 4) != 0)
            continue;
        char dir[PATH_MAX];
        snprintf(dir, sizeof(dir), "%s/%s", UVM_RUN_ROOT, de->d_name);
        int owner = read_pid(dir, "owner");
        if (owner <= 0 || kill(owner, 0) == 0 || errno != ESRCH)
            continue;
        int vm = read_pid(dir, "vm.pid");
        if (vm > 0 && pid_uses_dir(vm, dir)) {
            log_fields(LOG_LEVEL_WARN, "ending the utility VM of a dead shim", "dir", dir, NULL);
            kill(vm, SIGKILL);
        }
        nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
    closedir(d);
}

static int make_run_dir(struct uvm_host *h, shim_error_t **err)
{
    if (mkdir(UVM_RUN_ROOT, 0711) < 0 && errno != EEXIST)
        return error_set_errno(err, RPC_INTERNAL, errno, "mkdir %s", UVM_RUN_ROOT);
    sweep_stale_run_dirs();
    char tmpl[] = UVM_RUN_ROOT "/uvm-XXXXXX";
    if (!mkdtemp(tmpl))
        return error_set_errno(err, RPC_INTERNAL, errno, "mkdtemp %s", tmpl);
    h->run_dir = strdup(tmpl);
    if (!h->run_dir || write_owner(tmpl) < 0)
        return error_set(err, RPC_INTERNAL, "setting up %s", tmpl);
    return 0;
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

static int boot(struct uvm_host *h, shim_error_t **err)
{
    char vm_dir[PATH_MAX];
    snprintf(vm_dir, sizeof(vm_dir), "%s/vm", h->run_dir);
    if (mkdir(vm_dir, 0700) < 0 && errno != EEXIST)
        return error_set_errno(err, RPC_INTERNAL, errno, "mkdir %s", vm_dir);
    char id[300];
    snprintf(id, sizeof(id), "%s@vm", h->owner_id);
    struct uvm_config cfg = {
        .id = id, .document = h->document, .boot_timeout_ms = h->boot_timeout_ms};
    cfg.backend.run_dir = vm_dir;
    cfg.backend.extra_kernel_args = getenv("SHIM_UVM_KERNEL_ARGS"); /* debugging, fault tests */
    struct uvm_callbacks cbs = {.lost = on_uvm_lost, .container_exit = on_container_exit};
    if (uvm_create(h->loop, &cfg, &cbs, h, &h->uvm, err) < 0)
        return -1;
    log_fields(LOG_LEVEL_INFO, "starting utility VM", "id", id, "run_dir", h->run_dir, NULL);
    return uvm_start(h->uvm, on_uvm_started, h, err);
}

static void ready_timer_closed(uv_handle_t *handle)
{
    struct waiter *w = handle->data;
    struct uvm_host *h = w->h;
    free(w);
    h->pending--;
    host_maybe_free(h);
}

static void on_ready_timer(uv_timer_t *t)
{
    struct waiter *w = t->data;
    struct uvm_host *h = w->h;
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

static int host_get(struct shim_host *base, shim_host_ready_fn cb, void *arg, shim_error_t **err)
{
    struct uvm_host *h = host_of(base);
    if (h->closing)
        return error_set(err, RPC_FAILED_PRECONDITION, "the utility VM is shutting down");
    if (h->failed)
        return error_set(err, RPC_UNAVAILABLE, "utility VM: %s", h->failure);
    struct waiter *w = calloc(1, sizeof(*w));
    if (!w)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    w->h = h;
    w->cb = cb;
    w->arg = arg;
    if (!h->started) {
        if ((!h->run_dir && make_run_dir(h, err) < 0) || boot(h, err) < 0) {
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

static struct gcs_guest_connection *host_connection(const struct shim_host *base)
{
    const struct uvm_host *h = (const struct uvm_host *)base;
    return h->uvm ? uvm_guest(h->uvm) : NULL;
}

/* ---- containers -------------------------------------------------------------------------- */

static struct ctr *ctr_find(struct uvm_host *h, const char *id)
{
    for (struct ctr *c = h->ctrs; c; c = c->next)
        if (strcmp(c->id, id) == 0)
            return c;
    return NULL;
}

static size_t ctr_count(const struct uvm_host *h)
{
    size_t n = 0;
    for (const struct ctr *c = h->ctrs; c; c = c->next)
        n++;
    return n;
}

static void ctr_free(struct uvm_host *h, struct ctr *c)
{
    for (struct ctr **pp = &h->ctrs; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    if (c->image && unlink(c->image) < 0 && errno != ENOENT)
        log_fields(LOG_LEVEL_WARN, "removing rootfs image failed", "path", c->image, NULL);
    json_decref(c->spec);
    free(c->image);
    free(c->id);
    free(c->guest_spec_root);
    free(c);
}

static void finish_release(struct ctr *c, const shim_error_t *err)
{
    struct uvm_host *h = c->h;
    shim_host_done_fn cb = c->release_cb;
    void *arg = c->release_arg;
    ctr_free(h, c);
    if (cb)
        cb(arg, err);
}

static void on_disk_removed(void *opaque, const shim_error_t *err)
{
    struct ctr *c = opaque;
    struct uvm_host *h = c->h;
    if (err)
        log_fields(LOG_LEVEL_WARN, "removing the rootfs disk failed", "id", c->id, "error",
                   err->msg, NULL);
    finish_release(c, NULL); /* the image goes either way; the VM may be gone */
    host_maybe_free(h);
}

static int remove_disk(struct ctr *c)
{
    struct uvm_host *h = c->h;
    shim_error_t *e = NULL;
    if (!h->closing && h->uvm && uvm_guest(h->uvm) &&
        uvm_disk_remove(h->uvm, c->image, on_disk_removed, c, &e) == 0)
        return 0;
    error_free(e);
    return -1;
}

static void on_disk_added(void *opaque, const shim_error_t *err, const char *guest_path)
{
    struct ctr *c = opaque;
    struct uvm_host *h = c->h;
    c->disk_pending = false;
    if (h->closing) { /* the VM is being terminated; close frees c */
        shim_error_t *e = NULL;
        error_set(&e, RPC_UNAVAILABLE, "the utility VM is shutting down");
        if (c->cb)
            c->cb(c->arg, NULL, e);
        c->cb = NULL;
        error_free(e);
        return;
    }
    if (!err)
        c->disk_added = true;
    if (c->released) { /* Delete came first: undo */
        if (!c->disk_added || remove_disk(c) < 0)
            finish_release(c, NULL);
        return;
    }
    shim_host_config_fn cb = c->cb;
    c->cb = NULL;
    shim_error_t *e = NULL;
    json_t *config = NULL;
    if (err) {
        error_set(&e, err->code ? err->code : RPC_INTERNAL, "rootfs disk for %s: %s", c->id,
                  err->msg);
    } else {
        json_t *spec = uvm_container_spec(c->spec, c->id, guest_path, &e);
        char bundle[300];
        snprintf(bundle, sizeof(bundle), "/run/gcs/c/%s", c->id);
        struct gcs_container_config cc = {.schema_major = 2,
                                          .schema_minor = 1,
                                          .oci_bundle_path = bundle,
                                          .oci_specification = spec};
        config = spec ? gcs_container_config_build(&cc) : NULL;
        json_decref(spec);
        if (spec && !config)
            error_set(&e, RPC_RESOURCE_EXHAUSTED, "out of memory");
    }
    json_decref(c->spec);
    c->spec = NULL;
    cb(c->arg, config, e);
    error_free(e);
}

static int host_prepare(struct shim_host *base, const struct shim_host_container *ci,
                        shim_host_config_fn cb, void *arg, shim_error_t **err)
{
    struct uvm_host *h = host_of(base);
    if (!h->uvm || !uvm_guest(h->uvm))
        return error_set(err, RPC_UNAVAILABLE, "the utility VM is not running");
    if (ctr_find(h, ci->id))
        return error_set(err, RPC_ALREADY_EXISTS, "container %s already has a rootfs", ci->id);
    struct ctr *c = calloc(1, sizeof(*c));
    if (!c || !(c->id = strdup(ci->id)) ||
        asprintf(&c->image, "%s/%s.img", h->run_dir, ci->id) < 0 ||
        !(c->spec = json_deep_copy(ci->spec))) {
        if (c) {
            free(c->id);
            free(c);
        }
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    }
    c->h = h;
    c->cb = cb;
    c->arg = arg;
    c->next = h->ctrs;
    h->ctrs = c;
    uint64_t t0 = uv_hrtime();
    if (uvm_rootfs_image_build(ci->rootfs_dir, c->image, err) < 0 ||
        uvm_disk_add(h->uvm, c->image, false, on_disk_added, c, err) < 0) {
        c->cb = NULL;
        ctr_free(h, c);
        return -1;
    }
    char ms[32];
    snprintf(ms, sizeof(ms), "%.1f", (double)(uv_hrtime() - t0) / 1e6);
    log_fields(LOG_LEVEL_DEBUG, "rootfs image built", "id", ci->id, "ms", ms, NULL);
    c->disk_pending = true;
    return 0;
}

static int host_release(struct shim_host *base, const char *id, const char *bundle,
                        shim_host_done_fn cb, void *arg, shim_error_t **err)
{
    struct uvm_host *h = host_of(base);
    (void)bundle;
    (void)err;
    struct ctr *c = ctr_find(h, id);
    if (!c || c->released) {
        cb(arg, NULL);
        return 0;
    }
    c->released = true;
    c->release_cb = cb;
    c->release_arg = arg;
    if (c->disk_pending)
        return 0; /* on_disk_added undoes it */
    if (c->disk_added && remove_disk(c) == 0)
        return 0;
    finish_release(c, NULL);
    return 0;
}

/* ---- pause --------------------------------------------------------------------------------- */

struct pause_ctx {
    struct uvm_host *h;
    shim_host_done_fn cb;
    void *arg;
};

static void on_paused(void *opaque, const shim_error_t *err)
{
    struct pause_ctx *x = opaque;
    x->cb(x->arg, err);
    free(x);
}

static int host_pause(struct shim_host *base, const char *id, bool pause, shim_host_done_fn cb,
                      void *arg, shim_error_t **err)
{
    struct uvm_host *h = host_of(base);
    if (!h->uvm || !uvm_guest(h->uvm))
        return error_set(err, RPC_FAILED_PRECONDITION, "the utility VM is not running");
    if (ctr_count(h) > 1)
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

static bool host_child_exited(struct shim_host *base, pid_t pid, int wait_status)
{
    struct uvm_host *h = host_of(base);
    return h->uvm && uvm_reaped(h->uvm, (int)pid, wait_status) == 1;
}

/* ---- close --------------------------------------------------------------------------------- */

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path) < 0 ? 0 : 0;
}

static void host_maybe_free(struct uvm_host *h)
{
    if (!h->closing || h->pending > 0 || h->uvm)
        return;
    while (h->ctrs)
        ctr_free(h, h->ctrs);
    if (h->run_dir)
        nftw(h->run_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    shim_host_closed_fn done = h->closed_cb;
    void *arg = h->closed_arg;
    free(h->run_dir);
    free(h->document);
    free(h->owner_id);
    free(h->failure);
    free(h);
    if (done)
        done(arg);
}

static void on_terminated(void *opaque, const shim_error_t *err)
{
    struct uvm_host *h = opaque;
    (void)err;
    h->pending--;
    log_fields(LOG_LEVEL_INFO, "utility VM stopped", "id", h->owner_id, NULL);
    uvm_close(h->uvm);
    h->uvm = NULL;
    host_maybe_free(h);
}

static void host_close(struct shim_host *base, shim_host_closed_fn done, void *arg)
{
    struct uvm_host *h = host_of(base);
    if (h->closing)
        return;
    h->closing = true;
    h->closed_cb = done;
    h->closed_arg = arg;
    shim_error_t *e = NULL;
    shim_error_t *gone = NULL;
    error_set(&gone, RPC_UNAVAILABLE, "the shim is shutting down");
    struct waiter *w = h->waiters;
    h->waiters = NULL;
    while (w) {
        struct waiter *next = w->next;
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
    host_maybe_free(h);
}

static const struct shim_host_ops uvm_host_ops = {
    .get = host_get,
    .connection = host_connection,
    .prepare = host_prepare,
    .release = host_release,
    .pause = host_pause,
    .child_exited = host_child_exited,
    .close = host_close,
};

int shim_host_uvm_new(uv_loop_t *loop, const struct shim_host_uvm_config *cfg,
                      const struct shim_host_callbacks *cbs, void *opaque, struct shim_host **out,
                      shim_error_t **err)
{
    char *boot_path = uvm_default_boot_files_path();
    char *doc =
        uvm_document_for_spec(cfg->spec, cfg->options, cfg->owner_id, "containerd-shim-runhcs-v1",
                              cfg->debug ? "debug" : "info",
                              boot_path ? boot_path : "/usr/share/runhcs/LinuxBootFiles", err);
    free(boot_path);
    if (!doc)
        return -1;
    struct uvm_host *h = calloc(1, sizeof(*h));
    if (!h || !(h->owner_id = strdup(cfg->owner_id))) {
        free(h);
        free(doc);
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    }
    h->base.ops = &uvm_host_ops;
    h->base.kind = SHIM_HOST_HYPERVISOR;
    h->loop = loop;
    h->document = doc;
    h->boot_timeout_ms = boot_timeout_ms(cfg->spec);
    if (cbs)
        h->cbs = *cbs;
    h->opaque = opaque;
    *out = &h->base;
    return 0;
}
