/* The serving shim process (no action word; shim-contract.md §3.6, §3.7):
 * logging to <bundle>/log, child subreaper, signals, and the ttrpc server on
 * the socket `start` bound (fd 3) or on -socket. One uv loop. */
#ifndef SHIM_DAEMON_H
#define SHIM_DAEMON_H

#include <stdbool.h>
#include <sys/types.h>
#include <uv.h>

#include "common/error.h"
#include "shim/cli.h"
#include "shim/options.h"
#include "ttrpc/ttrpc.h"

#define SHIM_SHUTDOWN_GRACE_MS 3000

struct shim_daemon;
/* Runs for every child reaped by the daemon's SIGCHLD handler (the daemon is
 * a subreaper, so orphaned grandchildren arrive here too). */
typedef void (*shim_child_exit_fn)(struct shim_daemon *daemon, pid_t pid, int wait_status);

struct shim_daemon {
    uv_loop_t *loop;
    const struct shim_cli_args *args;
    char *bundle;                /* absolute bundle directory (cwd or -bundle) */
    char *socket_addr;           /* unix://... we serve on; removed at shutdown */
    struct shim_options options; /* from start's stdin (fd 4), may be empty */
    ttrpc_server_t *server;
    struct ttrpc_service task_service_desc; /* registered with server */
    uv_signal_t sigterm;
    uv_signal_t sigint;
    uv_signal_t sigchld;
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
