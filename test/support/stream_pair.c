/* test/support/stream_pair.h: the loop helpers (portable), and the pair over
 * an AF_UNIX socketpair (POSIX; test/support/win/stream_pair.c is the
 * Windows pair). */
#include "test/support/stream_pair.h"

#include "gcs/transport.h"

static void on_deadline(uv_timer_t *t)
{
    *(bool *)t->data = true;
}

bool loop_run_until(uv_loop_t *loop, loop_cond_fn cond, void *arg, unsigned timeout_ms)
{
    bool expired = false;
    uv_timer_t t;
    uv_timer_init(loop, &t);
    t.data = &expired;
    uv_timer_start(&t, on_deadline, timeout_ms, 0);
    while (!cond(arg) && !expired)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT); /* completes the close: t lives on this stack */
    return cond(arg);
}

static bool flag_is_set(void *arg)
{
    return *(const bool *)arg;
}

bool loop_run_until_flag(uv_loop_t *loop, const bool *flag, unsigned timeout_ms)
{
    return loop_run_until(loop, flag_is_set, (void *)flag, timeout_ms);
}

static bool never(void *arg)
{
    (void)arg;
    return false;
}

void loop_run_for(uv_loop_t *loop, unsigned ms)
{
    loop_run_until(loop, never, NULL, ms);
}

void loop_drain(uv_loop_t *loop, int rounds)
{
    for (int i = 0; i < rounds; i++)
        uv_run(loop, UV_RUN_NOWAIT);
}

int stream_pair_new_raw(uv_loop_t *loop, uv_stream_t **s, stream_raw_t *raw, shim_error_t **err)
{
    stream_raw_t p[2];
    if (stream_raw_pair(p, err) < 0)
        return -1;
    if (stream_raw_wrap(loop, p[0], s, err) < 0) {
        stream_raw_close(p[0]);
        stream_raw_close(p[1]);
        return -1;
    }
    *raw = p[1];
    return 0;
}

int stream_pair_new(uv_loop_t *loop, uv_stream_t **a, uv_stream_t **b, shim_error_t **err)
{
    stream_raw_t raw;
    if (stream_pair_new_raw(loop, a, &raw, err) < 0)
        return -1;
    if (stream_raw_wrap(loop, raw, b, err) < 0) {
        gcs_stream_close(*a);
        stream_raw_close(raw);
        return -1;
    }
    return 0;
}

bool stream_raw_write(stream_raw_t raw, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        long n = stream_raw_send(raw, p, len, true);
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

int stream_pair_shutdown(uv_stream_t *s, enum stream_shut how)
{
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)s, &fd) < 0)
        return -1;
    return stream_raw_shutdown((stream_raw_t)(intptr_t)fd, how);
}

/* ---- POSIX: AF_UNIX socketpair ---------------------------------------------------------- */

#ifndef _WIN32
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

int stream_pair_fds(int sv[2])
{
    return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
}

int stream_raw_pair(stream_raw_t out[2], shim_error_t **err)
{
    if (stream_pair_fds(out) < 0)
        return error_set_errno(err, RPC_RESOURCE_EXHAUSTED, errno, "socketpair");
    return 0;
}

int stream_raw_wrap(uv_loop_t *loop, stream_raw_t raw, uv_stream_t **out, shim_error_t **err)
{
    return gcs_stream_from_fd(loop, raw, out, err);
}

long stream_raw_send(stream_raw_t raw, const void *data, size_t len, bool wait)
{
    for (;;) {
        ssize_t n = send(raw, data, len, (wait ? 0 : MSG_DONTWAIT) | MSG_NOSIGNAL);
        if (n >= 0)
            return (long)n;
        if (errno == EINTR && wait)
            continue;
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
    }
}

int stream_raw_shutdown(stream_raw_t raw, enum stream_shut how)
{
    return shutdown(raw, how == STREAM_SHUT_WRITE ? SHUT_WR : SHUT_RDWR);
}

void stream_raw_close(stream_raw_t raw)
{
    if (raw != STREAM_RAW_NONE)
        close(raw);
}
#endif /* !_WIN32 */
