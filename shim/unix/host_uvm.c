/* The hypervisor host (shim/host.h): one Linux utility VM per shim.
 *
 * Rootfs: containerd's rootfs is mounted on the host at <bundle>/rootfs (as
 * for process isolation); at Create it is copied into an ext4 image
 * (mkfs.ext4 -d, ~15-60 ms for busybox), hot-added on SCSI and mounted in
 * the guest; the container's root.path points there and its writes stay in
 * the image, which is detached and deleted with the container. Booting,
 * waiters, loss, pause and close are shared with Windows
 * (shim/host_uvm_common.c). */
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
#include "shim/host_uvm_common.h"

#define UVM_RUN_ROOT "/run/runhcs-uvm"

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
    struct shim_uvm_host common; /* first: the shim_host */
    char *run_dir;               /* UVM_RUN_ROOT/uvm-XXXXXX: owner pid, VM sockets, rootfs images */
    char vm_dir[PATH_MAX];
    struct ctr *ctrs;
};

static struct uvm_host *host_of(struct shim_host *h)
{
    return (struct uvm_host *)h;
}

static void host_maybe_free(struct uvm_host *h)
{
    shim_uvm_host_maybe_free(&h->common);
}

/* ---- boot ------------------------------------------------------------------------------------ */

/* The VM's console tail into the shim's log: the run directory (and the log
 * in it) goes away with the host. */
static void log_vm_console(struct uvm_host *h)
{
    const char *path = h->common.uvm ? uvm_log_path(h->common.uvm) : NULL;
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
        log_fields(LOG_LEVEL_WARN, "utility VM console", "id", h->common.owner_id, "line", l, NULL);
    }
}

static void on_uvm_started(struct shim_uvm_host *common, const shim_error_t *err)
{
    struct uvm_host *h = (struct uvm_host *)common;
    if (err)
        log_vm_console(h);
    if (common->uvm && uvm_vm_pid(common->uvm) > 0) {
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/vm.pid", h->run_dir);
        FILE *f = fopen(path, "w");
        if (f) {
            fprintf(f, "%d\n", uvm_vm_pid(common->uvm));
            fclose(f);
        }
    }
}

static void on_uvm_lost(struct shim_uvm_host *common)
{
    log_vm_console((struct uvm_host *)common);
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

static int configure(struct shim_uvm_host *common, struct uvm_config *cfg, shim_error_t **err)
{
    struct uvm_host *h = (struct uvm_host *)common;
    if (!h->run_dir && make_run_dir(h, err) < 0)
        return -1;
    snprintf(h->vm_dir, sizeof(h->vm_dir), "%s/vm", h->run_dir);
    if (mkdir(h->vm_dir, 0700) < 0 && errno != EEXIST)
        return error_set_errno(err, RPC_INTERNAL, errno, "mkdir %s", h->vm_dir);
    cfg->backend.run_dir = h->vm_dir;
    cfg->backend.extra_kernel_args = getenv("SHIM_UVM_KERNEL_ARGS"); /* debugging, fault tests */
    return 0;
}

static const char *run_dir_of(const struct shim_uvm_host *common)
{
    return ((const struct uvm_host *)common)->run_dir;
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
    if (!h->common.closing && h->common.uvm && uvm_guest(h->common.uvm) &&
        uvm_disk_remove(h->common.uvm, c->image, on_disk_removed, c, &e) == 0)
        return 0;
    error_free(e);
    return -1;
}

static void on_disk_added(void *opaque, const shim_error_t *err, const char *guest_path)
{
    struct ctr *c = opaque;
    struct uvm_host *h = c->h;
    c->disk_pending = false;
    if (h->common.closing) { /* the VM is being terminated; close frees c */
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
    if (!h->common.uvm || !uvm_guest(h->common.uvm))
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
        uvm_disk_add(h->common.uvm, c->image, false, on_disk_added, c, err) < 0) {
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

/* ---- close --------------------------------------------------------------------------------- */

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path) < 0 ? 0 : 0;
}

static size_t containers(const struct shim_uvm_host *common)
{
    return ctr_count((const struct uvm_host *)common);
}

static void destroy(struct shim_uvm_host *common)
{
    struct uvm_host *h = (struct uvm_host *)common;
    while (h->ctrs)
        ctr_free(h, h->ctrs);
    if (h->run_dir)
        nftw(h->run_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(h->run_dir);
}

static const struct shim_uvm_host_hooks qemu_hooks = {
    .configure = configure,
    .run_dir = run_dir_of,
    .started = on_uvm_started,
    .lost = on_uvm_lost,
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

int shim_host_uvm_new(uv_loop_t *loop, const struct shim_host_uvm_config *cfg,
                      const struct shim_host_callbacks *cbs, void *opaque, struct shim_host **out,
                      shim_error_t **err)
{
    struct uvm_host *h = calloc(1, sizeof(*h));
    if (!h)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    char *boot_path = uvm_default_boot_files_path();
    int rc = shim_uvm_host_init(&h->common, loop, cfg,
                                boot_path ? boot_path : "/usr/share/runhcs/LinuxBootFiles",
                                &qemu_hooks, cbs, opaque, err);
    free(boot_path);
    if (rc < 0) {
        free(h);
        return -1;
    }
    h->common.base.ops = &uvm_host_ops;
    *out = &h->common.base;
    return 0;
}
