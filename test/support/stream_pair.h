/* Test helpers: a connected, full-duplex byte-stream pair on a uv loop, for
 * fakes that sit on the other end of a stream under test (a fake guest, a
 * mux link, a hand-driven raw peer).
 *
 * Realizations:
 *   POSIX    (test/support/stream_pair.c): an AF_UNIX socketpair, the ends
 *            wrapped as heap uv_pipe_t's (gcs_stream_from_fd).
 *   Windows  (test/support/win/stream_pair.c): a loopback TCP connection,
 *            the ends wrapped as heap uv_tcp_t's. Named pipes have no
 *            half-close (uv_shutdown never shows the peer EOF), which the mux
 *            and the stdio streams rely on; TCP has it. Its socket buffers are
 *            set small (like a socketpair's) so backpressure shows early.
 *
 * Use the uv streams only as uv_stream_t* and close them with
 * gcs_stream_close (uv_close + free). */
#ifndef TEST_SUPPORT_STREAM_PAIR_H
#define TEST_SUPPORT_STREAM_PAIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/error.h"

/* A raw end: a file descriptor on POSIX, a SOCKET on Windows. */
#ifdef _WIN32
typedef uintptr_t stream_raw_t;
#else
typedef int stream_raw_t;
#endif
#define STREAM_RAW_NONE ((stream_raw_t)-1)

/* Two connected heap streams on loop. The signature is gcs_mux_pair_fn's, so
 * it also serves as a mux's make_pair. Returns -1 with *err on failure. */
int stream_pair_new(uv_loop_t *loop, uv_stream_t **a, uv_stream_t **b, shim_error_t **err);

/* One end as a heap uv stream, the other as a raw (blocking) end for a peer
 * driven by hand with stream_raw_*; the caller closes it (stream_raw_close). */
int stream_pair_new_raw(uv_loop_t *loop, uv_stream_t **s, stream_raw_t *raw, shim_error_t **err);

enum stream_shut { STREAM_SHUT_WRITE, STREAM_SHUT_BOTH };

/* shutdown(2) on the socket under a stream of this pair (or any uv stream
 * over a socket), now rather than after queued writes like uv_shutdown: the
 * peer sees EOF (WRITE), or both directions die at once (BOTH, a lost link).
 * 0 or -1. */
int stream_pair_shutdown(uv_stream_t *s, enum stream_shut how);

/* Sends all of data, blocking; false on error. */
bool stream_raw_write(stream_raw_t raw, const void *data, size_t len);

/* ---- raw ends: the platform half (stream_pair.c under #ifndef _WIN32, and
 * win/stream_pair.c); everything above is built on these. */

/* Two connected raw ends. */
int stream_raw_pair(stream_raw_t out[2], shim_error_t **err);
/* A raw end as a heap uv stream; on failure the raw end stays the caller's. */
int stream_raw_wrap(uv_loop_t *loop, stream_raw_t raw, uv_stream_t **out, shim_error_t **err);
/* One send of up to len bytes (blocking when wait): bytes sent, 0 when it
 * would block (only without wait), -1 on error. */
long stream_raw_send(stream_raw_t raw, const void *data, size_t len, bool wait);
int stream_raw_shutdown(stream_raw_t raw, enum stream_shut how);
/* STREAM_RAW_NONE is fine. */
void stream_raw_close(stream_raw_t raw);

/* ---- running the loop until something happens (portable) ----
 * Each runs uv_run(UV_RUN_ONCE) under a deadline timer, so a test blocks in
 * the loop instead of spinning, and is bounded in time. */

typedef bool (*loop_cond_fn)(void *arg);

/* Until cond(arg) holds or timeout_ms pass; returns cond(arg). */
bool loop_run_until(uv_loop_t *loop, loop_cond_fn cond, void *arg, unsigned timeout_ms);
/* Until *flag is true or timeout_ms pass; returns *flag. */
bool loop_run_until_flag(uv_loop_t *loop, const bool *flag, unsigned timeout_ms);
/* For about ms milliseconds. */
void loop_run_for(uv_loop_t *loop, unsigned ms);
/* rounds of UV_RUN_NOWAIT: close callbacks and ready I/O, never blocking. */
void loop_drain(uv_loop_t *loop, int rounds);

#ifndef _WIN32
/* A raw AF_UNIX stream socketpair (close-on-exec), for code under test that
 * takes fds. 0 or -1 with errno. */
int stream_pair_fds(int sv[2]);
#endif

#endif
