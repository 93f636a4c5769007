/* Internals shared by shim/stdio.c (upstream io), shim/relay.c and the
 * platform parts: shim/unix/stdio.c + shim/unix/stdio_logger.c (FIFOs, files,
 * binary:// loggers) and shim/win/stdio.c (named pipes, files). Not for other
 * modules. */
#ifndef SHIM_STDIO_INTERNAL_H
#define SHIM_STDIO_INTERNAL_H

#include <sys/types.h>

#include "shim/stdio.h"

/* Where one process output goes upstream. */
struct sink {
    uv_pipe_t *pipe; /* FIFO, named pipe or logger pipe: a pollable stream */
    int fd;          /* regular file / device (a CRT fd on Windows): written with
                        uv_fs_write; -1 if none */
};

struct shim_upstream_io {
    uv_loop_t *loop;
    struct sink out;
    struct sink err;
    uv_pipe_t *stdin_pipe;  /* read end of the stdin FIFO / named pipe */
    int stdin_keepalive_fd; /* our extra writer, -1 once CloseIO dropped it
                               (Linux; none on Windows, where the client's
                               close of its pipe server is the EOF) */

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
#ifdef _WIN32
    /* binary:// on Windows (hcsshim's protocol): pipe servers the logger dials;
     * ready_pipe is the listening wait pipe. */
    uv_pipe_t *logger_out_server;
    uv_pipe_t *logger_err_server;
    uv_pipe_t *logger_wait_conn;
    uv_pipe_t *logger_unused_err; /* its stderr connection when stderr is not wanted */
    uv_process_t *logger_process;
    bool logger_want_err;
    bool logger_wait_closed; /* the logger closed the wait pipe: ready */
    bool logger_watching;
    bool logger_stopping; /* io holds a pending count until the exit */
#endif

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

/* ---- platform (shim/unix/stdio.c, shim/win/stdio.c) ---- */

/* Opens one output sink for uri (FIFO / named pipe / file://). */
int stdio_open_output(shim_upstream_io_t *io, const struct shim_stdio_uri *uri, struct sink *sink,
                      shim_error_t **err);
/* Opens upstream stdin (the raw Create/Exec string) into io->stdin_pipe. */
int stdio_open_stdin(shim_upstream_io_t *io, const char *path, shim_error_t **err);
/* Closes *fd if open and sets it to -1. */
void stdio_close_fd(int *fd);
/* Bytes written into an upstream pipe that its reader has not taken yet
 * (0 when unknown). */
int stdio_sink_unread(const struct sink *sink);
#ifndef _WIN32
int stdio_make_pipe(int fds[2], shim_error_t **err);
#endif

/* Starts the binary:// logger of uri (Windows: Unimplemented) and sets io's stdout (and, with
 * want_stderr, stderr) sinks to its pipes and io->ready_pipe. */
int stdio_logger_start(shim_upstream_io_t *io, const struct shim_stdio_uri *uri,
                       const struct shim_stdio_config *cfg, bool want_stderr, shim_error_t **err);
/* Starts watching for the logger's readiness (io->ready_pipe is set), which
 * ends in stdio_ready_finish; < 0 when it cannot be watched. */
int stdio_logger_watch_ready(shim_upstream_io_t *io);
/* Linux: SIGTERM, SIGKILL after io->logger_kill_timeout_ms. Windows: its
 * pipes closed, TerminateProcess after the same time. io stays pending until
 * the logger has exited. */
void stdio_logger_stop(shim_upstream_io_t *io);
/* Ends the readiness wait once (status 0 = ready); runs the ready callback. */
void stdio_ready_finish(shim_upstream_io_t *io, int status);

#endif
