/* The guest agent: answers the GCS bridge protocol v4 as the guest and runs
 * containers with an OCI runtime (crun). Everything runs on one libuv loop;
 * each request is handled asynchronously and answered when ready.
 *
 * Object lifetimes: containers and processes are reference counted. A table
 * (the agent's container list, a container's process list) holds one
 * reference while the object can be looked up; every asynchronous operation,
 * reaper watch, stdio relay and pending wait holds its own. */
#ifndef CMD_GCS_AGENT_H
#define CMD_GCS_AGENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "common/error.h"
#include "gcs/bridge_frame.h"
#include "gcs/bridge_msg.h"
#include "gcs/guest/flags.h"
#include "gcs/guest/reaper.h"
#include "gcs/guest/runtime.h"
#include "gcs/guest/stats.h"
#include "gcs/transport.h"

struct container;
struct process;

struct agent {
    uv_loop_t *loop;
    const struct gcs_agent_config *cfg;
    struct gcs_reaper *reaper;
    struct gcs_runtime runtime;
    char *runtime_root; /* <state>/crun */
    char *log_dir;      /* <state>/log: per-call runtime logs */
    char *bundles_dir;  /* <state>/c */
    bool cgroup_unified;
    struct gcs_transport *bridge_transport;
    struct gcs_transport *stdio_transport; /* may equal bridge_transport */
    uv_stream_t *bridge;
    struct gcs_frame_decoder decoder;
    bool negotiated;
    bool shutting_down;
    struct container *containers;
    struct process *uvm_processes;
    int live_objects; /* containers + processes not yet freed */
    char **mounts;    /* CombinedLayers roots we mounted (unmounted at exit) */
    size_t n_mounts;
    unsigned long seq;
    uv_signal_t sig_term, sig_int;
    uv_timer_t shutdown_timer;
    int exit_code;
};

/* An in-flight request: what a late reply needs. */
struct request {
    struct agent *a;
    uint32_t type;
    uint64_t id;
    char *activity_id;
    char *container_id;
};

/* ---- bridge.c ---------------------------------------------------------------------- */
int agent_bridge_start(struct agent *a, uv_stream_t *bridge, shim_error_t **err);
/* Sends a message (body is consumed). Dropped silently after the bridge closed. */
void agent_send(struct agent *a, uint32_t type, uint64_t id, json_t *body);
/* Replies and frees req. body NULL = the plain response base. */
void request_reply(struct request *req, json_t *body);
void request_reply_error(struct request *req, int32_t hresult, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
struct request *request_new(struct agent *a, const struct gcs_message *m,
                            const struct gcs_request_base *base);
void request_free(struct request *req);
/* Starts the orderly exit: kill every container and process, close the bridge. */
void agent_shutdown(struct agent *a, int exit_code);
/* Called whenever an object is freed: finishes the shutdown when nothing is left. */
void agent_maybe_finish_shutdown(struct agent *a);

/* ---- handlers.c -------------------------------------------------------------------- */
/* Dispatches one negotiated request; the handler owns the reply. */
void agent_dispatch(struct agent *a, struct gcs_message *m);

/* Records (add) or forgets a mount the agent made; unmounted at exit. */
void agent_track_mount(struct agent *a, const char *path, bool add);

/* ---- scsi.c ------------------------------------------------------------------------ */
/* ModifySettings MappedVirtualDisk Add/Remove and SCSIDevice Remove (§9.2). */
void agent_modify_mapped_virtual_disk(struct request *req, const char *request_type,
                                      const json_t *settings);
void agent_modify_scsi_device(struct request *req, const char *request_type,
                              const json_t *settings);

/* ---- container.c ------------------------------------------------------------------- */
enum container_state {
    CONTAINER_CREATING,
    CONTAINER_CREATED,
    CONTAINER_RUNNING,
    CONTAINER_STOPPED,
};

struct container {
    struct agent *a;
    struct container *next;
    int refs;
    bool listed;
    char *id;
    char *create_activity_id;
    char *bundle;
    enum container_state state;
    bool terminal;
    struct process *init;  /* reference; NULL until created */
    struct process *execs; /* exec'd processes that can still be looked up */
    const char *exit_type; /* for the notification */
    bool notified;
    bool deleted;
    struct gcs_cgroup_paths cgroup;
    bool cgroup_known;
};

struct container *container_find(struct agent *a, const char *id);
void container_ref(struct container *c);
void container_unref(struct container *c);
/* Removes it from the table (lookups fail from now on). */
void container_unlist(struct container *c);

void container_create(struct request *req, json_t *config);
void container_exec_init(struct request *req, struct container *c,
                         const struct gcs_process_parameters *params,
                         const struct gcs_stdio_ports *ports);
void container_exec(struct request *req, struct container *c,
                    const struct gcs_process_parameters *params,
                    const struct gcs_stdio_ports *ports);
void container_signal(struct request *req, struct container *c, uint32_t pid, int sig);
void container_shutdown(struct request *req, struct container *c, bool forced);
void container_get_properties(struct request *req, struct container *c, unsigned types);
void container_delete(struct request *req, struct container *c);
/* Applies OCI LinuxResources with the runtime's update command. */
void container_update(struct request *req, struct container *c, json_t *resources);
/* Called by process.c when the init process's first wait was answered. */
void container_init_waited(struct container *c);
/* Agent exit: unlist, SIGKILL every process, drop waits, then runtime delete
 * and bundle removal in the background. */
void container_destroy(struct container *c);

/* ---- process.c --------------------------------------------------------------------- */
struct waiter;
struct relay_out;
struct relay_in;

struct process {
    struct agent *a;
    struct container *c; /* reference; NULL for a process in the UVM */
    struct process *next;
    int refs;
    bool listed;
    bool is_init;
    bool started; /* pid valid and its exit is being watched */
    int pid;
    bool exited;
    int wait_status;
    bool complete; /* exited and its output relays finished */
    bool wait_answered;
    bool terminal;
    int pty_fd; /* pty master kept for resizing; -1 */
    /* Agent-side ends before relays take them: stdin write end, stdout and
     * stderr read ends (or dups of the pty master). -1 when none. */
    int fd[3];
    struct relay_in *relay_in;
    struct relay_out *relay_out[3]; /* [1] stdout, [2] stderr */
    int outputs_open;               /* output relays not finished */
    struct waiter *waiters;
};

struct process *process_new(struct agent *a, struct container *c, bool is_init);
void process_ref(struct process *p);
void process_unref(struct process *p);
void process_unlist(struct process *p);
struct process *process_find_uvm(struct agent *a, uint32_t pid);
struct process *process_find_in_container(struct container *c, uint32_t pid);
/* Marks it started and watches pid through the reaper (not libuv children). */
void process_watch(struct process *p, int pid);
/* Exit notification for libuv-spawned processes (UVM processes). */
void process_exited(struct process *p, int wait_status);
/* An output relay of p finished (its host connection is closed). */
void process_output_finished(struct process *p);
uint32_t process_exit_code(const struct process *p);
void process_wait(struct request *req, struct process *p, uint32_t timeout_ms);
/* Closes stdin and drops waits without replying (agent exit). */
void process_abort(struct process *p);
void uvm_exec(struct request *req, const struct gcs_process_parameters *params,
              const struct gcs_stdio_ports *ports);

/* ---- stdio.c ----------------------------------------------------------------------- */
/* Process-side stdio before the process starts. */
struct stdio_fds {
    int child[3]; /* handed to the child as 0,1,2 (-1 = /dev/null) */
    int agent[3]; /* our ends: stdin write, stdout read, stderr read (-1 = none) */
};
void stdio_fds_init(struct stdio_fds *s);
/* Pipes for all three streams (O_CLOEXEC). */
int stdio_fds_pipes(struct stdio_fds *s, shim_error_t **err);
void stdio_fds_close_child(struct stdio_fds *s);
void stdio_fds_close_all(struct stdio_fds *s);

/* Connections to the host's stdio ports, dialled stdin, stdout, stderr. */
struct stdio_conns {
    uv_stream_t *conn[3];
};
typedef void (*stdio_dial_cb)(void *data, struct stdio_conns *conns, shim_error_t *err);
/* want[i]: whether stream i is requested (ports[i] != 0 and the Create*Pipe
 * flag). cb gets ownership of the connections, or an error. */
void stdio_dial(struct agent *a, const uint32_t ports[3], const bool want[3], stdio_dial_cb cb,
                void *data);
void stdio_conns_close(struct stdio_conns *c);

/* Wires a started process's stdio: p->fd[] ends to the connections (owned
 * afterwards). Missing connections: stdin closed, output discarded. */
void stdio_attach(struct process *p, struct stdio_conns *conns);
/* Closes stdin relays when the process exits. */
void stdio_process_exited(struct process *p);
/* Forces all relays of p closed (agent exit). */
void stdio_abort(struct process *p);

/* A console socket for --console-socket: listen, then take the pty master. */
struct console_socket {
    int listen_fd;
    char *path;
};
int console_socket_open(struct agent *a, struct console_socket *cs, shim_error_t **err);
/* After the runtime exited: accept and receive the pty master fd. */
int console_socket_receive(struct console_socket *cs, int *master, shim_error_t **err);
void console_socket_close(struct console_socket *cs);

/* ---- cgroup.c ---------------------------------------------------------------------- */
/* Makes the runtime work with this machine's cgroups; sets a->cgroup_unified
 * and a->runtime.cgroup_manager. Must run before any thread exists. */
int agent_cgroup_prepare(struct agent *a, shim_error_t **err);

/* ---- handlers.c: mounts ---------------------------------------------------------------- */
/* Unmounts every CombinedLayers root still mounted (agent exit). */
void agent_unmount_all(struct agent *a);

/* ---- util -------------------------------------------------------------------------- */
int mkdir_p(const char *path, int mode);
int remove_tree(const char *path);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
