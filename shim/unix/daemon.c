/* shim/daemon_platform.h on Linux (the runc model, shim-contract.md §3.7):
 * the socket start bound arrives as fd 3, the options as a memfd on fd 4;
 * the log is containerd's <bundle>/log FIFO on stderr; the daemon is a child
 * subreaper and reaps on SIGCHLD; SIGTERM/SIGINT shut it down. */
#include "shim/daemon_platform.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "shim/socket.h"
#include "shim/start.h"

enum { SIG_TERM_IDX, SIG_INT_IDX, SIG_CHLD_IDX };

void daemon_platform_init(struct shim_daemon *d)
{
    for (int i = 0; i < SHIM_DAEMON_SIGNALS; i++) {
        uv_signal_init(d->loop, &d->signals[i]);
        d->signals[i].data = d;
    }
}

/* Options `start` passed in a memfd on fd 4 (absent when run by hand). */
void daemon_platform_load_options(struct shim_daemon *d)
{
    struct stat st;
    if (fstat(SHIM_OPTIONS_FD, &st) < 0 || !S_ISREG(st.st_mode))
        return;
    size_t len = st.st_size > 0 ? (size_t)st.st_size : 0;
    uint8_t *buf = len <= SHIM_OPTIONS_MAX ? malloc(len ? len : 1) : NULL;
    ssize_t got = buf ? pread(SHIM_OPTIONS_FD, buf, len, 0) : -1;
    close(SHIM_OPTIONS_FD);
    shim_error_t *err = NULL;
    if (got == (ssize_t)len && shim_options_decode(buf, len, &d->options, &err) < 0) {
        log_fields(LOG_LEVEL_ERROR, "ignoring runtime options", "error", err->msg, NULL);
        error_free(err);
    }
    free(buf);
}

/* containerd reads <bundle>/log (a FIFO it holds open O_RDWR). O_NONBLOCK:
 * no reader must never block the shim; lines are dropped instead. */
int daemon_platform_open_log(struct shim_daemon *d)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/log", d->bundle);
    int fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return STDERR_FILENO; /* stderr stays /dev/null */
    if (fd != STDERR_FILENO) {
        dup2(fd, STDERR_FILENO);
        close(fd);
    }
    return STDERR_FILENO;
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct shim_daemon *d = h->data;
    log_fields(LOG_LEVEL_INFO, "signal received; shutting down", "signal", strsignal(signum), NULL);
    shim_daemon_shutdown(d, false);
}

static void on_sigchld(uv_signal_t *h, int signum)
{
    (void)signum;
    struct shim_daemon *d = h->data;
    for (;;) {
        int status = 0;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0)
            break;
        if (d->child_exited)
            d->child_exited(d, pid, status);
        else
            log_debug("reaped child %d (status %d)", (int)pid, status);
    }
}

int daemon_platform_start(struct shim_daemon *d, shim_error_t **err)
{
    if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
        log_fields(LOG_LEVEL_WARN, "cannot become a child subreaper", "error", strerror(errno),
                   NULL);
    signal(SIGPIPE, SIG_IGN);
    static const int signums[SHIM_DAEMON_SIGNALS] = {
        [SIG_TERM_IDX] = SIGTERM, [SIG_INT_IDX] = SIGINT, [SIG_CHLD_IDX] = SIGCHLD};
    for (int i = 0; i < SHIM_DAEMON_SIGNALS; i++) {
        int rc = uv_signal_start(&d->signals[i], signums[i] == SIGCHLD ? on_sigchld : on_signal,
                                 signums[i]);
        if (rc < 0)
            return error_set_uv(err, RPC_INTERNAL, rc, "install signal handlers");
    }
    return 0;
}

static bool is_listening_socket(int fd)
{
    struct stat st;
    int accepting = 0;
    socklen_t len = sizeof(accepting);
    return fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode) &&
           getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) == 0 && accepting;
}

static char *socket_name(int fd)
{
    struct sockaddr_un sa;
    socklen_t len = sizeof(sa);
    memset(&sa, 0, sizeof(sa));
    char *addr = NULL;
    if (getsockname(fd, (struct sockaddr *)&sa, &len) == 0 && sa.sun_path[0] == '/' &&
        asprintf(&addr, "%s%s", SHIM_UNIX_PREFIX, sa.sun_path) < 0)
        addr = NULL;
    return addr;
}

int daemon_platform_listen(struct shim_daemon *d, shim_error_t **err)
{
    if (is_listening_socket(SHIM_LISTEN_FD)) {
        fcntl(SHIM_LISTEN_FD, F_SETFD, FD_CLOEXEC); /* not for container processes */
        d->socket_addr = d->args->socket[0] ? strdup(d->args->socket) : socket_name(SHIM_LISTEN_FD);
        return ttrpc_server_adopt(d->server, SHIM_LISTEN_FD, err);
    }
    const char *path = d->args->socket[0] ? shim_socket_path(d->args->socket) : NULL;
    if (path == NULL)
        return error_set(err, RPC_INVALID_ARGUMENT,
                         "serve: no listening socket on fd %d and no -socket unix:///path",
                         SHIM_LISTEN_FD);
    d->socket_addr = strdup(d->args->socket);
    return ttrpc_server_listen(d->server, path, err);
}

void daemon_platform_serving(struct shim_daemon *d)
{
    (void)d; /* start returned as soon as it bound the socket */
}

void daemon_platform_failed(struct shim_daemon *d, const char *msg)
{
    (void)d; /* logged; start has already returned */
    (void)msg;
}

void daemon_platform_close(struct shim_daemon *d)
{
    for (int i = 0; i < SHIM_DAEMON_SIGNALS; i++) {
        uv_handle_t *h = (uv_handle_t *)&d->signals[i];
        if (!uv_is_closing(h))
            uv_close(h, NULL);
    }
}
