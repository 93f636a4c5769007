/* Where a shim's containers run: one "host" per shim, behind one interface
 * so the task service is the same for both isolation modes.
 *
 *   process     the gcs guest agent as a child of the shim (shim/agent.h);
 *               the container rootfs is the host directory <bundle>/rootfs.
 *   hypervisor  a Linux utility VM (uvm/uvm.h) booted from the first task's
 *               spec (a pod's sandbox, or a standalone task); each container's
 *               rootfs becomes an ext4 image on a SCSI disk mounted in the guest.
 *
 * Both speak the same GCS bridge (gcs/guest_connection.h): the service sends
 * Create/Start/ExecuteProcess/... to shim_host_connection().
 *
 * The service chooses the kind (service_ensure_host); each platform provides
 * both constructors: Linux shim/unix/host_process.c and shim/unix/host_uvm.c;
 * Windows shim/win/host_uvm.c (a UVM under HCS) and shim/win/host_process.c,
 * which answers RPC_UNIMPLEMENTED (Argon, process isolation on Windows, is
 * not implemented). child_exited only fires on Linux (the daemon's SIGCHLD). */
#ifndef SHIM_HOST_H
#define SHIM_HOST_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <uv.h>

#include "common/error.h"
#include "gcs/guest_connection.h"
#include "oci/annotations.h"
#include "shim/bundle.h"

enum shim_host_kind {
    SHIM_HOST_PROCESS,
    SHIM_HOST_HYPERVISOR,
};

struct shim_host;

struct shim_host_callbacks {
    /* The container notification (gcs-bridge.md §6.14); may be NULL. */
    void (*container_exit)(void *opaque, const char *container_id);
    /* The host died after it was up (agent crash, VM death, broken bridge):
     * every process in it is gone. */
    void (*lost)(void *opaque, const char *reason);
};

/* What a container brings to its host at Create. */
struct shim_host_container {
    const char *id;
    const char *bundle;
    const char *rootfs_dir; /* <bundle>/rootfs on the host */
    bool rootfs_mounted;    /* the shim mounted containerd's rootfs there */
    const json_t *spec;     /* the task's OCI spec */
    const struct bundle_mount *mounts;
    size_t n_mounts;
};

typedef void (*shim_host_ready_fn)(void *arg, struct gcs_guest_connection *conn,
                                   const shim_error_t *err);
/* config: the ContainerConfig for the GCS Create (owned by the callee), or
 * NULL with err. */
typedef void (*shim_host_config_fn)(void *arg, json_t *config, const shim_error_t *err);
typedef void (*shim_host_done_fn)(void *arg, const shim_error_t *err);
typedef void (*shim_host_closed_fn)(void *arg);

struct shim_host_ops {
    int (*get)(struct shim_host *h, shim_host_ready_fn cb, void *arg, shim_error_t **err);
    struct gcs_guest_connection *(*connection)(const struct shim_host *h);
    int (*prepare)(struct shim_host *h, const struct shim_host_container *c, shim_host_config_fn cb,
                   void *arg, shim_error_t **err);
    int (*release)(struct shim_host *h, const char *id, const char *bundle, shim_host_done_fn cb,
                   void *arg, shim_error_t **err);
    int (*pause)(struct shim_host *h, const char *id, bool pause, shim_host_done_fn cb, void *arg,
                 shim_error_t **err);
    bool (*child_exited)(struct shim_host *h, pid_t pid, int wait_status);
    void (*close)(struct shim_host *h, shim_host_closed_fn done, void *arg);
};

struct shim_host {
    const struct shim_host_ops *ops;
    enum shim_host_kind kind;
};

/* process: the gcs child agent (started on first get). */
int shim_host_process_new(uv_loop_t *loop, bool debug, const struct shim_host_callbacks *cbs,
                          void *opaque, struct shim_host **out, shim_error_t **err);

/* hypervisor: a UVM whose options come from `spec` (io.microsoft.virtualmachine.*
 * annotations) and the runhcs options (may be NULL); booted on first get. */
struct shim_host_uvm_config {
    const char *owner_id; /* the task that creates the UVM (pod sandbox or standalone) */
    const json_t *spec;
    const runhcs_options *options;
    bool debug;
};
int shim_host_uvm_new(uv_loop_t *loop, const struct shim_host_uvm_config *cfg,
                      const struct shim_host_callbacks *cbs, void *opaque, struct shim_host **out,
                      shim_error_t **err);

/* Starts the host if needed; cb runs once, later, when it is usable. */
static inline int shim_host_get(struct shim_host *h, shim_host_ready_fn cb, void *arg,
                                shim_error_t **err)
{
    return h->ops->get(h, cb, arg, err);
}
/* The connection when the host is up, else NULL. */
static inline struct gcs_guest_connection *shim_host_connection(const struct shim_host *h)
{
    return h ? h->ops->connection(h) : NULL;
}
/* Makes the rootfs available where the agent runs and builds the Create
 * ContainerConfig; cb may run before this returns (process host). */
static inline int shim_host_prepare(struct shim_host *h, const struct shim_host_container *c,
                                    shim_host_config_fn cb, void *arg, shim_error_t **err)
{
    return h->ops->prepare(h, c, cb, arg, err);
}
/* Undoes prepare (also a partial one) after the container is gone; cb may
 * run before this returns. */
static inline int shim_host_release(struct shim_host *h, const char *id, const char *bundle,
                                    shim_host_done_fn cb, void *arg, shim_error_t **err)
{
    return h->ops->release(h, id, bundle, cb, arg, err);
}
/* Freezes/thaws task `id` (hypervisor: the whole UVM, when it runs only that
 * task); RPC_UNIMPLEMENTED where it cannot. cb runs later. */
static inline int shim_host_pause(struct shim_host *h, const char *id, bool pause,
                                  shim_host_done_fn cb, void *arg, shim_error_t **err)
{
    return h->ops->pause(h, id, pause, cb, arg, err);
}
/* For the daemon's SIGCHLD hook (Linux): true when pid belonged to the host. */
static inline bool shim_host_child_exited(struct shim_host *h, pid_t pid, int wait_status)
{
    return h ? h->ops->child_exited(h, pid, wait_status) : false;
}
/* Stops everything the host runs, then frees it and runs done. */
static inline void shim_host_close(struct shim_host *h, shim_host_closed_fn done, void *arg)
{
    h->ops->close(h, done, arg);
}
/* Guest pids are not host pids: only a process host may signal them. */
static inline bool shim_host_pids_are_local(const struct shim_host *h)
{
    return h && h->kind == SHIM_HOST_PROCESS;
}

#endif
