/* Compute service: HCS-style compute systems (hcs-documents.md §1), kept
 * small and platform-neutral. A compute system is created from a JSON
 * ComputeSystem document, started, modified (device add/remove), queried and
 * stopped; its exit is reported once through a callback.
 *
 * HCS model -> this API:
 *   HcsCreateComputeSystem      hcs_system_create (synchronous: validates the
 *                               document; nothing runs yet)
 *   HcsSetComputeSystemCallback hcs_system_set_exit_callback (SystemExited)
 *   HcsStartComputeSystem       hcs_system_start
 *   HcsShutDownComputeSystem    hcs_system_shutdown (graceful: ACPI power button)
 *   HcsTerminateComputeSystem   hcs_system_terminate
 *   HcsModifyComputeSystem      hcs_system_modify (ModifySettingRequest, §6)
 *   HcsGetComputeSystemProperties hcs_system_properties
 *   HcsCloseComputeSystem       hcs_system_close (terminates a running system:
 *                               ShouldTerminateOnLastHandleClosed)
 *
 * Operations are asynchronous: a 0 return means "accepted", the done callback
 * gives the result later (never synchronously). Shutdown and terminate only
 * ask: the end is reported by the exit callback, exactly once, for every
 * system whose start got as far as launching it.
 *
 * Linux realization (hcs/unix/compute_qemu.c): one QEMU process per system
 * (microvm by default, TCG unless KVM works), QMP for control, the GCS bridge
 * on a virtio-serial port named "gcs" whose host end is a Unix socket. All
 * callbacks run on the given libuv loop. */
#ifndef HCS_COMPUTE_H
#define HCS_COMPUTE_H

#include <jansson.h>
#include <stdint.h>
#include <uv.h>

#include "common/error.h"

typedef struct hcs_system hcs_system_t;

enum hcs_state {
    HCS_STATE_CREATED,  /* created, not started */
    HCS_STATE_STARTING, /* start in progress */
    HCS_STATE_RUNNING,
    HCS_STATE_STOPPING, /* shutdown or terminate requested */
    HCS_STATE_STOPPED,  /* exited (the exit callback has run or is due) */
};

/* SystemExitStatus.ExitType */
enum hcs_exit_type {
    HCS_EXIT_SHUTDOWN,   /* the guest powered off (asked or by itself) */
    HCS_EXIT_TERMINATE,  /* terminated by the host */
    HCS_EXIT_UNEXPECTED, /* crashed, killed by someone else, failed to start */
};

struct hcs_exit_status {
    enum hcs_exit_type type;
    int32_t status;     /* HRESULT: 0, or E_FAIL (0x80004005) for an unexpected exit */
    int64_t exit_code;  /* of the VM process; -1 if killed by a signal */
    int term_signal;    /* signal that ended the VM process, 0 if none */
    const char *reason; /* backend detail (e.g. QMP SHUTDOWN reason) or NULL */
};

const char *hcs_state_name(enum hcs_state s);
const char *hcs_exit_type_name(enum hcs_exit_type t);

/* Host-side knobs of a backend; every field optional (NULL / 0 = default). */
struct hcs_backend_options {
    const char *run_dir;           /* where sockets and the log go; default: a new /tmp/hcs-XXXXXX,
                                      removed on close */
    const char *log_path;          /* VM process stdout/stderr (the serial console);
                                      default <run_dir>/vm.log */
    const char *qemu_binary;       /* default qemu-system-x86_64 (env HCS_QEMU_BINARY) */
    const char *machine;           /* "microvm" (default) or "q35" (env HCS_QEMU_MACHINE) */
    const char *accel;             /* "auto" (default: kvm if usable, else tcg), "kvm", "tcg" */
    const char *extra_kernel_args; /* appended before the document's command line */
    uint64_t tsc_khz;              /* microvm+tcg tsc_early_khz; 0 = measure the host TSC */
};

typedef void (*hcs_exit_cb)(hcs_system_t *sys, const struct hcs_exit_status *status, void *opaque);
/* err NULL = success (borrowed for the call). */
typedef void (*hcs_done_cb)(hcs_system_t *sys, const shim_error_t *err, void *opaque);

int hcs_system_create(uv_loop_t *loop, const char *id, const char *document,
                      const struct hcs_backend_options *options, hcs_system_t **out,
                      shim_error_t **err);
void hcs_system_set_exit_callback(hcs_system_t *sys, hcs_exit_cb cb, void *opaque);

int hcs_system_start(hcs_system_t *sys, hcs_done_cb cb, void *opaque, shim_error_t **err);
/* Graceful: presses the ACPI power button; the guest decides. */
int hcs_system_shutdown(hcs_system_t *sys, hcs_done_cb cb, void *opaque, shim_error_t **err);
/* Ends the VM now (QMP quit, SIGKILL if that does not work within 5 s). */
int hcs_system_terminate(hcs_system_t *sys, hcs_done_cb cb, void *opaque, shim_error_t **err);
/* Freezes / thaws the running VM (HcsPauseComputeSystem / HcsResumeComputeSystem).
 * The state stays Running; a paused VM can still be terminated. */
int hcs_system_pause(hcs_system_t *sys, hcs_done_cb cb, void *opaque, shim_error_t **err);
int hcs_system_resume(hcs_system_t *sys, hcs_done_cb cb, void *opaque, shim_error_t **err);
/* request: ModifySettingRequest JSON (see hcs/qemu_config.h for the paths). */
int hcs_system_modify(hcs_system_t *sys, const char *request, hcs_done_cb cb, void *opaque,
                      shim_error_t **err);
/* Synchronous: {"Id","SystemType","RuntimeOsType","State","Stopped",
 * "ProcessId","Memory":{"SizeInMB","WorkingSetBytes"},"Backend"...}. */
int hcs_system_properties(hcs_system_t *sys, json_t **out, shim_error_t **err);

const char *hcs_system_id(const hcs_system_t *sys);
enum hcs_state hcs_system_state(const hcs_system_t *sys);
/* Host socket path of a virtio-serial port: "gcs" (the bridge), "stdio"
 * (process stdio multiplexed, gcs/mux.h) or one added by modify; NULL if
 * there is none. Connect to it (stream socket) to talk to the guest. */
const char *hcs_system_port_path(const hcs_system_t *sys, const char *name);
/* Directory of port sockets named by vsock port number: the "gcs" port is
 * <dir>/1073741824 (0x40000000), so the GCS unix-dir transport
 * (gcs/transport.h) connects to the bridge with GCS_BRIDGE_PORT. */
const char *hcs_system_port_dir(const hcs_system_t *sys);
/* The VM process's log (serial console + QEMU messages). */
const char *hcs_system_log_path(const hcs_system_t *sys);

/* For hosts whose own SIGCHLD handler reaps every child (waitpid(-1)): hand
 * over a reaped pid; returns 1 when it was this system's VM process (its exit
 * is then reported as usual), else 0. POSIX backends only. */
int hcs_system_reaped(hcs_system_t *sys, int pid, int wait_status);

/* Terminates the VM if it runs, drops pending operations (their callbacks
 * and the exit callback no longer run), frees the system once the process is
 * gone. Safe inside any callback of this system. */
void hcs_system_close(hcs_system_t *sys);

#endif
