/* Internals shared by shim/stdio.c (upstream io), shim/stdio_logger.c
 * (binary:// loggers) and shim/relay.c. Not for other modules. */
#ifndef SHIM_STDIO_INTERNAL_H
#define SHIM_STDIO_INTERNAL_H

#include <sys/types.h>

#include "shim/stdio.h"

/* Where one process output goes upstream. */
struct sink {
    uv_pipe_t *pipe; /* FIFO or logger pipe: a pollable stream */
    int fd;          /* regular file / device: written with uv_fs_write; -1 if none */
};

struct shim_upstream_io {
    uv_loop_t *loop;
    struct sink out;
    struct sink err;
    uv_pipe_t *stdin_pipe;  /* read end of the stdin FIFO */
    int stdin_keepalive_fd; /* our extra writer, -1 once CloseIO dropped it */

    /* binary:// logger */
    pid_t logger_pid;
    int logger_pidfd;
    unsigned logger_kill_timeout_ms;
    uv_poll_t *logger_poll;
    uv_timer_t *logger_kill_timer;
    uv_pipe_t *ready_pipe;
    uv_timer_t *ready_timer;
    shim_io_ready_cb ready_cb;
    void *ready_data;
    bool ready_done;

    bool closing;
    int pending; /* handles being closed + logger not yet gone */
    shim_io_closed_cb closed_cb;
    void *closed_data;
};

/* Counts h as pending on io and closes it; io is freed once nothing is
 * pending after shim_upstream_io_close. */
void stdio_io_close_handle(shim_upstream_io_t *io, uv_handle_t *h);
void stdio_io_maybe_finish(shim_upstream_io_t *io);
/* Closes the FIFO/logger pipes (cancels queued writes); idempotent. */
void stdio_io_close_pipes(shim_upstream_io_t *io);
/* A malloc'd uv_pipe_t watching fd (which it then owns). */
int stdio_wrap_pipe(uv_loop_t *loop, int fd, uv_pipe_t **out, shim_error_t **err);
void stdio_close_fd(int *fd);
int stdio_make_pipe(int fds[2], shim_error_t **err);

/* Starts the binary:// logger of uri and sets io's stdout (and, with
 * want_stderr, stderr) sinks to its pipes and io->ready_pipe. */
int stdio_logger_start(shim_upstream_io_t *io, const struct shim_stdio_uri *uri,
                       const struct shim_stdio_config *cfg, bool want_stderr, shim_error_t **err);
/* SIGTERM, SIGKILL after io->logger_kill_timeout_ms; io stays pending until
 * the logger has exited. */
void stdio_logger_stop(shim_upstream_io_t *io);

#endif
