/* The part of the hypervisor host (shim/host.h) that is the same on every
 * platform: the UVM document from the first task's spec, booting on first
 * get, waiters, lost/exit reporting, pause, child reaping and close. The
 * platform files (shim/unix/host_uvm.c: QEMU + ext4 rootfs images,
 * shim/win/host_uvm.c: HCS + VHD layers) add prepare/release and a few hooks.
 * Internal to shim/. */
#ifndef SHIM_HOST_UVM_COMMON_H
#define SHIM_HOST_UVM_COMMON_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "shim/host.h"
#include "uvm/uvm.h"

struct shim_uvm_host;
struct shim_uvm_waiter;

struct shim_uvm_host_hooks {
    /* First boot, before uvm_create: platform fields of cfg (backend, run
     * directory), kept valid until uvm_create returns. May be NULL. */
    int (*configure)(struct shim_uvm_host *h, struct uvm_config *cfg, shim_error_t **err);
    /* For the "starting utility VM" log line; may be NULL or return NULL. */
    const char *(*run_dir)(const struct shim_uvm_host *h);
    /* The start finished (err NULL = ready), after the common log line. */
    void (*started)(struct shim_uvm_host *h, const shim_error_t *err);
    /* The VM was lost (after the common log line, before cbs.lost). */
    void (*lost)(struct shim_uvm_host *h);
    /* Number of containers the host holds (pause refuses more than one). */
    size_t (*containers)(const struct shim_uvm_host *h);
    /* Frees the platform's containers and files; the host itself is freed
     * by the caller afterwards. */
    void (*destroy)(struct shim_uvm_host *h);
};

struct shim_uvm_host {
    struct shim_host base;
    const struct shim_uvm_host_hooks *hooks;
    uv_loop_t *loop;
    struct shim_host_callbacks cbs;
    void *opaque;
    char *owner_id;
    char *document;
    struct uvm *uvm;
    bool started, failed, closing;
    char *failure;
    uint64_t boot_timeout_ms;
    struct shim_uvm_waiter *waiters;
    shim_host_closed_fn closed_cb;
    void *closed_arg;
    int pending; /* our timers and the terminate callback; uvm operation callbacks
                    never run after uvm_close, which comes before the free */
    /* Tests: what the first boot hands to uvm_create (owned until then). */
    hcs_system_t *inject_system;
    struct uvm_channel *inject_channel;
};

/* Fills the common part of h (allocated by the platform, zeroed): the LCOW
 * document from cfg (boot files in default_boot_path unless the options or
 * annotations say otherwise) and the boot timeout (annotation
 * io.runhcs.uvm.boot-timeout-ms, else env SHIM_UVM_BOOT_TIMEOUT_MS, else
 * UVM_DEFAULT_BOOT_TIMEOUT_MS). On error nothing is left to free in h. */
int shim_uvm_host_init(struct shim_uvm_host *h, uv_loop_t *loop,
                       const struct shim_host_uvm_config *cfg, const char *default_boot_path,
                       const struct shim_uvm_host_hooks *hooks,
                       const struct shim_host_callbacks *cbs, void *opaque, shim_error_t **err);

/* shim_host_ops members shared by the platforms. */
int shim_uvm_host_get(struct shim_host *base, shim_host_ready_fn cb, void *arg, shim_error_t **err);
struct gcs_guest_connection *shim_uvm_host_connection(const struct shim_host *base);
int shim_uvm_host_pause(struct shim_host *base, const char *id, bool pause, shim_host_done_fn cb,
                        void *arg, shim_error_t **err);
bool shim_uvm_host_child_exited(struct shim_host *base, pid_t pid, int wait_status);
void shim_uvm_host_close(struct shim_host *base, shim_host_closed_fn done, void *arg);

/* Windows, for tests: shim_host_uvm_new whose UVM uses an already created
 * compute system (e.g. over a fake HCS table) and channel (e.g. over a fake
 * transport); both are taken over, also on error. */
int shim_host_uvm_new_injected(uv_loop_t *loop, const struct shim_host_uvm_config *cfg,
                               const struct shim_host_callbacks *cbs, void *opaque,
                               hcs_system_t *sys, struct uvm_channel *channel,
                               struct shim_host **out, shim_error_t **err);

/* Frees the host once it is closing and nothing is pending (platform
 * callbacks call it after finishing work that may have held it). */
void shim_uvm_host_maybe_free(struct shim_uvm_host *h);

#endif
