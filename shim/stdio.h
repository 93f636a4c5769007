/* Upstream stdio of a process (shim-contract.md §5) and the relay between it
 * and the process side.
 *
 * Upstream is what containerd's client gave in Create/Exec:
 *   ""                      no stream
 *   /path or fifo:///path   FIFO: stdout/stderr opened O_RDWR (never blocks,
 *                           never ENXIO); stdin O_RDONLY|O_NONBLOCK plus a
 *                           keep-alive O_WRONLY end dropped on CloseIO
 *   file:///path            append (0644, parent dirs created)
 *   binary:///path?k=v      logger process (§5.1): fd 3/4 = stdout/stderr
 *                           pipes, fd 5 = ready pipe, env CONTAINER_ID and
 *                           CONTAINER_NAMESPACE only; SIGTERM, then SIGKILL
 *                           after 12 s on close. Windows: hcsshim's protocol,
 *                           pipe servers named in CONTAINER_STDOUT/_STDERR/
 *                           _WAIT; ready when the wait pipe is closed
 *   \\.\pipe\name           Windows only: a named pipe served by the client
 *                           (ctr/CRI); the shim dials it (shim-contract.md §5.2)
 * For file:// and binary:// the stdout string decides and stderr follows it.
 * With terminal=true only stdout is used.
 *
 * Platform code: shim/unix/stdio.c (FIFOs, files), shim/unix/stdio_logger.c
 * (binary:// loggers); shim/win/stdio.c (named pipes, files),
 * shim/win/stdio_logger.c. Parsing, lifecycle and the relay are portable.
 * Windows has no keep-alive writer: stdin ends when the client closes its
 * pipe server (ctr does so at EOF), so CloseIO changes nothing there.
 *
 * The relay copies process stdout/stderr (uv streams supplied by the caller,
 * e.g. GCS stdio connections) to upstream and upstream stdin to the process.
 * It never drops or reorders bytes and buffers at most SHIM_RELAY_HIGH_WATER
 * bytes per stream: reading stops while the writer is behind. */
#ifndef SHIM_STDIO_H
#define SHIM_STDIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/error.h"

#define SHIM_RELAY_BUFFER_SIZE (64u << 10)
#define SHIM_RELAY_HIGH_WATER (256u << 10)
#ifdef _WIN32
#define SHIM_LOGGER_KILL_TIMEOUT_MS 10000 /* hcsshim: the logger gets 10 s to exit */
#else
#define SHIM_LOGGER_KILL_TIMEOUT_MS 12000 /* containerd: SIGTERM, 12 s, SIGKILL */
#endif

enum shim_stdio_kind {
    SHIM_STDIO_NONE = 0,
    SHIM_STDIO_FIFO,
    SHIM_STDIO_FILE,
    SHIM_STDIO_BINARY,
    SHIM_STDIO_NPIPE, /* Windows: \\.\pipe\... (never produced on Linux) */
};

/* A parsed stdio string. Strings are owned. */
struct shim_stdio_uri {
    enum shim_stdio_kind kind;
    char *path;
    char **args; /* binary: query keys and their first values, in order; NULL-terminated */
    size_t n_args;
};

int shim_stdio_uri_parse(const char *s, struct shim_stdio_uri *out, shim_error_t **err);
/* True for a Windows named-pipe path (\\.\pipe\name); always false on Linux. */
bool shim_stdio_is_npipe_path(const char *s);
void shim_stdio_uri_free(struct shim_stdio_uri *uri);

struct shim_stdio_config {
    const char *stdin_path;
    const char *stdout_path;
    const char *stderr_path;
    bool terminal;
    const char *container_id;        /* binary:// env CONTAINER_ID */
    const char *namespace_name;      /* binary:// env CONTAINER_NAMESPACE */
    unsigned logger_kill_timeout_ms; /* SIGTERM -> SIGKILL; 0 = SHIM_LOGGER_KILL_TIMEOUT_MS */
};

typedef struct shim_upstream_io shim_upstream_io_t;

/* Opens every upstream stream (and starts a binary:// logger). */
int shim_upstream_io_open(uv_loop_t *loop, const struct shim_stdio_config *cfg,
                          shim_upstream_io_t **out, shim_error_t **err);
bool shim_upstream_io_has_stdin(const shim_upstream_io_t *io);
bool shim_upstream_io_has_stdout(const shim_upstream_io_t *io);
bool shim_upstream_io_has_stderr(const shim_upstream_io_t *io);
/* Pid of the binary:// logger, 0 if none. */
int shim_upstream_io_logger_pid(const shim_upstream_io_t *io);

/* status 0 when ready (immediately for anything but binary://), else a
 * negative libuv code (UV_ETIMEDOUT, ...). Runs on a later loop turn, and
 * not at all if io is closed first. timeout_ms 0 = wait forever. */
typedef void (*shim_io_ready_cb)(shim_upstream_io_t *io, int status, void *data);
int shim_upstream_io_wait_ready(shim_upstream_io_t *io, uint64_t timeout_ms, shim_io_ready_cb cb,
                                void *data, shim_error_t **err);
/* CloseIO{stdin}: drop the keep-alive writer; EOF follows once the client's
 * writer is gone too. Idempotent. */
void shim_upstream_io_close_stdin(shim_upstream_io_t *io);

typedef void (*shim_io_closed_cb)(void *data);
/* Closes everything (stops the logger) and frees io; cb (may be NULL) runs
 * when all of it is done. Not for an io handed to a relay. */
void shim_upstream_io_close(shim_upstream_io_t *io, shim_io_closed_cb cb, void *data);

/* ---- relay ----------------------------------------------------------------- */

typedef struct shim_relay shim_relay_t;

/* Process side. The relay takes ownership of every non-NULL stream: it uses
 * handle->data, closes the stream when done with it (stdin after upstream EOF,
 * outputs after their EOF or on shim_relay_close) and free()s it in the close
 * callback, so allocate them with malloc. */
struct shim_relay_streams {
    uv_stream_t *stdin_stream;
    uv_stream_t *stdout_stream;
    uv_stream_t *stderr_stream;
};

/* Called once when every process output reached EOF and its last byte was
 * written upstream (right away, on a later loop turn, if there are none). */
typedef void (*shim_relay_drained_cb)(shim_relay_t *relay, void *data);

/* Starts relaying; takes ownership of io (also on failure). */
int shim_relay_start(shim_upstream_io_t *io, const struct shim_relay_streams *streams,
                     shim_relay_drained_cb drained, void *data, shim_relay_t **out,
                     shim_error_t **err);
/* CloseIO{stdin} on a running relay. */
void shim_relay_close_stdin(shim_relay_t *relay);
bool shim_relay_drained(const shim_relay_t *relay);

struct shim_relay_stats {
    uint64_t stdin_bytes;  /* written to the process */
    uint64_t stdout_bytes; /* written upstream */
    uint64_t stderr_bytes;
    size_t max_buffered; /* largest per-stream backlog seen (bounded by the high water) */
};
void shim_relay_get_stats(const shim_relay_t *relay, struct shim_relay_stats *out);
/* Stops relaying, closes process streams and upstream io, frees the relay;
 * cb (may be NULL) runs when everything is closed. */
void shim_relay_close(shim_relay_t *relay, shim_io_closed_cb cb, void *data);

#endif
