/* The serving shim process (no action word; shim-contract.md §3.6, §3.7):
 * logging to containerd, process-exit hooks, shutdown requests, and the
 * ttrpc server on the address `start` chose. One uv loop.
 *
 *   Linux    shim/unix/daemon.c: the socket start bound (fd 3) or -socket,
 *            options from a memfd (fd 4), <bundle>/log FIFO, child
 *            subreaper + SIGCHLD, SIGTERM/SIGINT.
 *   Windows  shim/win/daemon*.c: listens on the -socket pipe itself, options
 *            from stdin, the \\.\pipe\containerd-shim-<ns>-<id>-log pipe,
 *            console ctrl events; closes stdout once serving (start waits
 *            for that). No subreaper: child_exited never fires. */
#ifndef SHIM_DAEMON_H
#define SHIM_DAEMON_H

#include <stdbool.h>
#include <sys/types.h>
#include <uv.h>

#include "common/error.h"
#include "common/log.h"
#include "shim/cli.h"
#include "shim/options.h"
#include "ttrpc/ttrpc.h"

#define SHIM_SHUTDOWN_GRACE_MS 3000
#define SHIM_DAEMON_SIGNALS 3

struct shim_daemon;
struct shim_daemon_platform;
/* Runs for every child reaped by the daemon's SIGCHLD handler (the daemon is
 * a subreaper, so orphaned grandchildren arrive here too). Linux only. */
typedef void (*shim_child_exit_fn)(struct shim_daemon *daemon, pid_t pid, int wait_status);

struct shim_daemon {
    uv_loop_t *loop;
    const struct shim_cli_args *args;
    char *bundle;                /* absolute bundle directory (-bundle or cwd) */
    char *socket_addr;           /* the address we serve on; removed at shutdown */
    struct shim_options options; /* from start (may be empty) */
    enum log_level log_level;
    ttrpc_server_t *server;
    struct ttrpc_service task_service_desc; /* registered with server */
    /* Shutdown requests (Linux: SIGTERM, SIGINT, SIGCHLD for reaping;
     * Windows: console ctrl events SIGINT, SIGBREAK, SIGHUP). */
    uv_signal_t signals[SHIM_DAEMON_SIGNALS];
    struct shim_daemon_platform *platform; /* platform state, may be NULL */
    bool shutting_down;
    shim_child_exit_fn child_exited; /* set by the task service; may be NULL */
    void *task_service;              /* the task service's state */
    /* Runs once when shim_daemon_shutdown starts (set by the task service). */
    void (*on_shutdown)(struct shim_daemon *daemon);
};

/* Runs the daemon until shutdown; returns the process exit code. */
int shim_daemon_run(const struct shim_cli_args *args);
/* Stops serving (graceful: answer calls in flight for up to
 * SHIM_SHUTDOWN_GRACE_MS; now: drop them), removes the socket, ends the loop. */
void shim_daemon_shutdown(struct shim_daemon *daemon, bool now);

#endif
