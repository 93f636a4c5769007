#include "shim/stdio_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "shim/unix/fork_exec.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

/* ---- binary:// logger ------------------------------------------------------------ */

struct logger_launch {
    char **argv;
    char *envp[3];
    int out_r, err_r, ready_w; /* child ends */
    int null_fd;
};

/* Async-signal-safe only: runs between fork and exec. */
static void logger_child(const void *ctx, int exec_err_w)
{
    const struct logger_launch *l = ctx;
    int fds[3] = {l->out_r, l->err_r, l->ready_w};
    int high[3];
    int err_fd = fcntl(exec_err_w, F_DUPFD_CLOEXEC, 10);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    if (err_fd < 0)
        _exit(127);
    for (int i = 0; i < 3; i++) {
        high[i] = fcntl(fds[i], F_DUPFD, 10);
        if (high[i] < 0)
            goto fail;
    }
    if (dup2(l->null_fd, 0) < 0 || dup2(l->null_fd, 1) < 0 || dup2(l->null_fd, 2) < 0)
        goto fail;
    for (int i = 0; i < 3; i++) {
        if (dup2(high[i], 3 + i) < 0)
            goto fail;
    }
    /* Everything else goes, except the error pipe (CLOEXEC) until exec. */
    syscall(SYS_close_range, 6, (unsigned)err_fd - 1, 0);
    syscall(SYS_close_range, (unsigned)err_fd + 1, ~0U, 0);
    setsid();
    execve(l->argv[0], l->argv, l->envp);
fail:;
    int e = errno;
    ssize_t ignored = write(err_fd, &e, sizeof(e));
    (void)ignored;
    _exit(127);
}

static int logger_build_launch(const struct shim_stdio_uri *uri,
                               const struct shim_stdio_config *cfg, struct logger_launch *l,
                               shim_error_t **err)
{
    l->argv = calloc(uri->n_args + 2, sizeof(char *));
    if (l->argv == NULL)
        return error_set(err, RPC_INTERNAL, "out of memory");
    l->argv[0] = uri->path;
    for (size_t i = 0; i < uri->n_args; i++)
        l->argv[i + 1] = uri->args[i];
    if (asprintf(&l->envp[0], "CONTAINER_ID=%s", cfg->container_id ? cfg->container_id : "") < 0)
        l->envp[0] = NULL;
    if (asprintf(&l->envp[1], "CONTAINER_NAMESPACE=%s",
                 cfg->namespace_name ? cfg->namespace_name : "") < 0)
        l->envp[1] = NULL;
    if (l->envp[0] == NULL || l->envp[1] == NULL)
        return error_set(err, RPC_INTERNAL, "out of memory");
    return 0;
}

static void logger_launch_free(struct logger_launch *l)
{
    free(l->argv);
    free(l->envp[0]);
    free(l->envp[1]);
}

static int logger_fork(shim_upstream_io_t *io, struct logger_launch *l, shim_error_t **err)
{
    pid_t pid = shim_fork_exec(logger_child, l, "logger", l->argv[0], err);
    if (pid < 0)
        return -1;
    io->logger_pid = pid;
    io->logger_pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    return 0;
}

int stdio_logger_start(shim_upstream_io_t *io, const struct shim_stdio_uri *uri,
                       const struct shim_stdio_config *cfg, bool want_stderr, shim_error_t **err)
{
    struct logger_launch l = {.out_r = -1, .err_r = -1, .ready_w = -1, .null_fd = -1};
    int out[2] = {-1, -1}, errp[2] = {-1, -1}, ready[2] = {-1, -1};
    int ret = logger_build_launch(uri, cfg, &l, err);
    if (ret == 0)
        ret = stdio_make_pipe(out, err);
    if (ret == 0)
        ret = stdio_make_pipe(errp, err);
    if (ret == 0)
        ret = stdio_make_pipe(ready, err);
    if (ret == 0 && (l.null_fd = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0)
        ret = error_set_errno(err, RPC_INTERNAL, errno, "open /dev/null");
    if (ret < 0)
        goto out;
    l.out_r = out[0];
    l.err_r = errp[0];
    l.ready_w = ready[1];
    ret = logger_fork(io, &l, err);
    if (ret < 0)
        goto out;
    /* Our ends: write ends of the output pipes, read end of the ready pipe. */
    ret = stdio_wrap_pipe(io->loop, out[1], &io->out.pipe, err);
    out[1] = -1;
    if (ret == 0 && want_stderr) {
        ret = stdio_wrap_pipe(io->loop, errp[1], &io->err.pipe, err);
        errp[1] = -1;
    }
    if (ret == 0) {
        ret = stdio_wrap_pipe(io->loop, ready[0], &io->ready_pipe, err);
        ready[0] = -1;
    }
out:;
    int *fds[] = {&out[0], &out[1], &errp[0], &errp[1], &ready[0], &ready[1], &l.null_fd};
    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
        stdio_close_fd(fds[i]);
    logger_launch_free(&l);
    return ret;
}

static void ready_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    static char scratch[64]; /* contents are discarded */
    *buf = uv_buf_init(scratch, sizeof(scratch));
}

/* The logger closes its end of the ready pipe (fd 5) when it is ready. */
static void ready_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    if (nread < 0)
        stdio_ready_finish(s->data, nread == UV_EOF ? 0 : (int)nread);
}

int stdio_logger_watch_ready(shim_upstream_io_t *io)
{
    io->ready_pipe->data = io;
    return uv_read_start((uv_stream_t *)io->ready_pipe, ready_alloc, ready_read);
}

static void logger_exited(shim_upstream_io_t *io)
{
    siginfo_t info;
    /* Reap unless the daemon's SIGCHLD reaper got there first (ECHILD). */
    memset(&info, 0, sizeof(info));
    if (io->logger_pidfd >= 0)
        waitid((idtype_t)P_PIDFD, (id_t)io->logger_pidfd, &info, WEXITED | WNOHANG);
    io->logger_pid = 0;
    if (io->logger_poll) {
        uv_poll_stop(io->logger_poll);
        stdio_io_close_handle(io, (uv_handle_t *)io->logger_poll);
        io->logger_poll = NULL;
    }
    if (io->logger_kill_timer) {
        uv_timer_stop(io->logger_kill_timer);
        stdio_io_close_handle(io, (uv_handle_t *)io->logger_kill_timer);
        io->logger_kill_timer = NULL;
    }
    stdio_close_fd(&io->logger_pidfd);
    io->pending--; /* the logger itself */
    stdio_io_maybe_finish(io);
}

static void logger_poll_cb(uv_poll_t *poll, int status, int events)
{
    (void)status;
    (void)events;
    logger_exited(poll->data);
}

/* Through the pidfd when there is one: a plain pid may have been reused once
 * the logger was reaped by the daemon's SIGCHLD handler. */
static void signal_logger(shim_upstream_io_t *io, int sig)
{
    if (io->logger_pidfd >= 0)
        syscall(SYS_pidfd_send_signal, io->logger_pidfd, sig, NULL, 0);
    else
        kill(io->logger_pid, sig);
}

static void logger_kill_cb(uv_timer_t *timer)
{
    shim_upstream_io_t *io = timer->data;
    if (io->logger_pid > 0) {
        log_fields(LOG_LEVEL_WARN, "stdio logger did not exit after SIGTERM; killing it", NULL);
        signal_logger(io, SIGKILL);
    }
}

/* SIGTERM now, SIGKILL after SHIM_LOGGER_KILL_TIMEOUT_MS; done when it exited. */
void stdio_logger_stop(shim_upstream_io_t *io)
{
    if (io->logger_pid <= 0)
        return;
    signal_logger(io, SIGTERM);
    if (io->logger_pidfd < 0) {
        io->logger_pid = 0; /* no pidfd: cannot wait without racing the reaper */
        return;
    }
    io->pending++; /* released by logger_exited */
    io->logger_poll = malloc(sizeof(*io->logger_poll));
    io->logger_kill_timer = malloc(sizeof(*io->logger_kill_timer));
    if (io->logger_poll == NULL || io->logger_kill_timer == NULL ||
        uv_poll_init(io->loop, io->logger_poll, io->logger_pidfd) < 0) {
        free(io->logger_poll);
        free(io->logger_kill_timer);
        io->logger_poll = NULL;
        io->logger_kill_timer = NULL;
        signal_logger(io, SIGKILL);
        logger_exited(io);
        return;
    }
    io->logger_poll->data = io;
    uv_poll_start(io->logger_poll, UV_READABLE, logger_poll_cb);
    uv_timer_init(io->loop, io->logger_kill_timer);
    io->logger_kill_timer->data = io;
    uv_update_time(io->loop); /* the loop's cached time may be stale here */
    uv_timer_start(io->logger_kill_timer, logger_kill_cb, io->logger_kill_timeout_ms, 0);
}
