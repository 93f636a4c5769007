/* The Windows shim's log pipe (shim-contract.md §3.6): the shim is the
 * server of \\.\pipe\containerd-shim-<ns>-<id>-log; containerd dials it and
 * copies what it reads into its own log. A new connection (containerd
 * restarted) takes over the output. Writes never block: the pipe is in
 * PIPE_NOWAIT mode, so with nobody reading, lines are dropped (like the
 * O_NONBLOCK log FIFO on Linux). */
#ifndef SHIM_WIN_DAEMON_LOG_H
#define SHIM_WIN_DAEMON_LOG_H

#include <uv.h>

#include "common/error.h"
#include "common/log.h"

#define SHIM_LOG_PIPE_POLL_MS 200

struct shim_daemon_platform;

/* Creates the first pipe instance and polls for connections on loop (an
 * unreferenced timer: it does not keep the loop alive). On a connection,
 * log_configure(<pipe fd>, *level, text). */
int shim_log_pipe_open(uv_loop_t *loop, const char *ns, const char *id, const enum log_level *level,
                       struct shim_daemon_platform **out, shim_error_t **err);
/* Stops polling, detaches the log from the pipe and frees it (NULL: no-op). */
void shim_log_pipe_close(struct shim_daemon_platform *lp);

#endif
