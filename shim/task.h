/* Task and process model of the shim (shim-contract.md §2.3, hcsshim §7.4).
 *
 * A task is a container: its init process (exec_id "") and its execs. Every
 * process goes created -> running -> exited (or created -> exited). "Exited"
 * is only entered once the exit code is known AND all of its output was
 * relayed and the upstream IO closed (§5.4): only then is TaskExit published
 * and are Wait callers answered. The exit state is kept until Delete. */
#ifndef SHIM_TASK_H
#define SHIM_TASK_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <uv.h>

#include "shim/bundle.h"
#include "shim/stdio.h"
#include "ttrpc/ttrpc.h"

enum shim_proc_state {
    SHIM_PROC_CREATED = 0,
    SHIM_PROC_RUNNING,
    SHIM_PROC_EXITED,
};

struct shim_task;
struct shim_finish_token;

struct shim_wait_call {
    struct shim_wait_call *next;
    ttrpc_call_t *call;
};

struct shim_process {
    struct shim_process *next; /* in task->execs */
    struct shim_task *task;
    char *exec_id; /* "" for init */
    enum shim_proc_state state;
    uint32_t pid;
    bool terminal;
    char *stdin_path, *stdout_path, *stderr_path;
    json_t *oci_process;    /* exec's OCI Process (owned); NULL for init */
    shim_upstream_io_t *io; /* upstream IO until the relay takes it */
    shim_relay_t *relay;
    bool starting;       /* Start in progress */
    bool exit_known;     /* WaitForProcess answered */
    bool output_drained; /* relay drained */
    bool finishing;      /* closing upstream IO before publishing the exit */
    uint32_t exit_status;
    struct timespec exited_at;
    struct shim_wait_call *waiters;
    bool stdin_closed;                      /* CloseIO before the relay existed */
    int pending_signal;                     /* Kill that arrived while starting */
    struct shim_finish_token *finish_token; /* pending relay close (service.c) */
    uv_timer_t *stall_timer; /* after the exit: gives up on a stuck upstream reader */
    uint64_t stall_bytes;    /* output relayed at the last stall check */
};

struct shim_task {
    struct shim_task *next;
    struct shim_service *service;
    char *id;
    char *bundle;
    char *rootfs_dir; /* <bundle>/rootfs */
    bool rootfs_mounted;
    struct bundle_spec spec;
    bool creating;         /* Create in progress: invisible to other calls */
    bool created_in_agent; /* gcs Create succeeded: DeleteContainerState owed */
    bool host_prepared;    /* shim_host_prepare ran: shim_host_release owed */
    bool paused;           /* Pause succeeded (hypervisor: the UVM is frozen) */
    bool deleting;
    struct shim_process init;
    struct shim_process *execs;
};

const char *shim_proc_state_name(enum shim_proc_state s);

struct shim_process *shim_task_find_exec(struct shim_task *t, const char *exec_id);
/* exec_id NULL or "" = init. */
struct shim_process *shim_task_process(struct shim_task *t, const char *exec_id);
void shim_process_free_fields(struct shim_process *p);
/* Status for StateResponse (containerd.v1.types.Status numbers). */
int shim_process_status(const struct shim_process *p);
/* True while a process is running (or its exit is still being finished). */
bool shim_process_alive(const struct shim_process *p);

#endif
