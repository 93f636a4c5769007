/* A Linux utility VM: a compute system (hcs/compute.h) running our guest
 * agent, with the GCS bridge connected and negotiated, process stdio on the
 * channel's transport, and SCSI disks attached and mounted in the guest with
 * reference counts.
 *
 * How the host reaches the agent is platform code behind uvm/channel.h: on
 * Linux (QEMU) the "gcs" and "stdio" virtio-serial ports (stdio multiplexed,
 * gcs/mux.h); on Windows (HCS) hvsock listeners made before the start, the
 * guest dialing in. Everything else here is shared (uvm/uvm.c).
 *
 * Lifecycle: uvm_create (nothing runs) -> uvm_start (VM boots; the callback
 * runs once the agent answered NegotiateProtocol, or with an error after the
 * boot timeout / a VM or bridge failure; a failed start leaves nothing
 * running) -> use uvm_guest() for container RPCs -> uvm_close (terminates the
 * VM; no callbacks afterwards). After a successful start, losing the VM or
 * the bridge (QEMU death, agent crash, garbage on the bridge) terminates the
 * VM and runs `lost` exactly once.
 *
 * Every asynchronous call returning 0 runs its callback exactly once, later
 * (never synchronously); -1 = no callback, *err set. */
#ifndef UVM_UVM_H
#define UVM_UVM_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "common/error.h"
#include "gcs/guest_connection.h"
#include "hcs/compute.h"
#include "oci/annotations.h"

struct uvm;
struct uvm_channel;

#define UVM_DEFAULT_BOOT_TIMEOUT_MS 60000u

struct uvm_callbacks {
    /* The UVM is gone after a successful start (err says why). Once. */
    void (*lost)(void *opaque, const shim_error_t *err);
    /* A container notification from the agent (gcs-bridge.md §6.14). */
    void (*container_exit)(void *opaque, const struct gcs_container_notification *n);
};

struct uvm_config {
    const char *id;       /* compute-system id, "<pod>@vm" */
    const char *document; /* LCOW UVM ComputeSystem document (JSON) */
    struct hcs_backend_options backend;
    uint64_t boot_timeout_ms; /* start -> agent ready; 0 = UVM_DEFAULT_BOOT_TIMEOUT_MS */
    uint64_t rpc_timeout_ms;  /* bridge calls; 0 = the connection's default */
    /* Optional (tests, special hosts); both are taken over, also on error:
     * an already created compute system (document and backend are then
     * ignored; e.g. hcs_system_create_with_api with a fake table) and the
     * channel to the agent (NULL = uvm_channel_platform_new). */
    hcs_system_t *system;
    struct uvm_channel *channel;
};

typedef void (*uvm_done_cb)(void *opaque, const shim_error_t *err);
/* guest_path: where the disk is mounted in the UVM (borrowed for the call). */
typedef void (*uvm_disk_cb)(void *opaque, const shim_error_t *err, const char *guest_path);

int uvm_create(uv_loop_t *loop, const struct uvm_config *cfg, const struct uvm_callbacks *cbs,
               void *opaque, struct uvm **out, shim_error_t **err);
int uvm_start(struct uvm *u, uvm_done_cb cb, void *opaque, shim_error_t **err);

/* The bridge connection; NULL before the start finished or after a loss. */
struct gcs_guest_connection *uvm_guest(struct uvm *u);
const char *uvm_id(const struct uvm *u);
/* PID of the VM process (QEMU), 0 if none (HCS reports none). */
int uvm_vm_pid(struct uvm *u);
bool uvm_running(const struct uvm *u);
bool uvm_paused(const struct uvm *u);
const char *uvm_log_path(const struct uvm *u);

/* Attaches host file `host_path` (ext4 image) on SCSI and mounts it in the
 * guest (MappedVirtualDisk). Reference counted by host path: a second add of
 * the same path only takes a reference (the callback still runs later). */
int uvm_disk_add(struct uvm *u, const char *host_path, bool read_only, uvm_disk_cb cb, void *opaque,
                 shim_error_t **err);
/* Drops a reference; the last one unmounts in the guest, unplugs and detaches
 * (hcsshim order: guest first, then host). */
int uvm_disk_remove(struct uvm *u, const char *host_path, uvm_done_cb cb, void *opaque,
                    shim_error_t **err);
/* Number of references on a disk (0 = not attached). */
int uvm_disk_refs(const struct uvm *u, const char *host_path);

/* Freezes / thaws the whole VM (QMP stop / cont; Unimplemented on HCS so far). */
int uvm_pause(struct uvm *u, uvm_done_cb cb, void *opaque, shim_error_t **err);
int uvm_resume(struct uvm *u, uvm_done_cb cb, void *opaque, shim_error_t **err);

/* Ends the VM and runs cb once its process is gone (or at once, later, when
 * nothing runs); `lost` is not reported for it. uvm_close afterwards. */
int uvm_terminate(struct uvm *u, uvm_done_cb cb, void *opaque, shim_error_t **err);

/* For a host whose SIGCHLD handler reaps every child: 1 when pid was the VM. */
int uvm_reaped(struct uvm *u, int pid, int wait_status);

/* Terminates the VM if it runs and frees everything once its handles are
 * closed; pending callbacks are dropped. Safe inside any callback. */
void uvm_close(struct uvm *u);

/* ---- helpers (uvm/unix/setup.c, uvm/win/setup.c) ---------------------------------------- */

/* Default LinuxBootFiles directory: <dir of our binary>/LinuxBootFiles, else
 * <dir of our binary>/../LinuxBootFiles; NULL if neither has a `kernel`.
 * Windows: <dir of our binary>\LinuxBootFiles, else <dir of our binary>,
 * else %ProgramFiles%\Linux Containers (hcsshim's default); NULL if none
 * has a `kernel` (or `vmlinux`). */
char *uvm_default_boot_files_path(void);

/* The LCOW UVM document for a sandbox spec (io.microsoft.virtualmachine.*
 * annotations) and runhcs options (may be NULL): hcsshim's option defaults,
 * boot files from the options/annotation or `default_boot_path`. */
char *uvm_document_for_spec(const json_t *spec, const runhcs_options *opts, const char *id,
                            const char *owner, const char *log_level, const char *default_boot_path,
                            shim_error_t **err);

/* Builds an ext4 image at `image` holding a copy of directory `rootfs`
 * (mkfs.ext4 -d; sparse, sized from the tree plus headroom). Synchronous.
 * Windows: RPC_UNIMPLEMENTED (layers come as VHDs there). */
int uvm_rootfs_image_build(const char *rootfs, const char *image, shim_error_t **err);

/* The OCI spec a container gets in the UVM (oci_lcow_container_spec) with
 * root.path = `guest_root` and host bind mounts dropped (no shares on the
 * QEMU backend). New reference. */
json_t *uvm_container_spec(const json_t *spec, const char *id, const char *guest_root,
                           shim_error_t **err);

#endif
