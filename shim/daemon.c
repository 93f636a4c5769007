#include "shim/daemon.h"

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
#include "shim/task_service.h"

/* Options `start` passed in a memfd on fd 4 (absent when run by hand). */
static void load_options(struct shim_daemon *d)
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
static void open_log(struct shim_daemon *d)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/log", d->bundle);
    int fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return; /* stderr stays /dev/null */
    if (fd != STDERR_FILENO) {
        dup2(fd, STDERR_FILENO);
        close(fd);
    }
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

static int start_signals(struct shim_daemon *d)
{
    signal(SIGPIPE, SIG_IGN);
    uv_signal_t *handles[] = {&d->sigterm, &d->sigint, &d->sigchld};
    int signums[] = {SIGTERM, SIGINT, SIGCHLD};
    for (int i = 0; i < 3; i++) {
        int rc =
            uv_signal_start(handles[i], signums[i] == SIGCHLD ? on_sigchld : on_signal, signums[i]);
        if (rc < 0)
            return rc;
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

static int start_server(struct shim_daemon *d, shim_error_t **err)
{
    struct ttrpc_server_options opts = {.require_same_uid = true};
    if (ttrpc_server_new(d->loop, &opts, &d->server, err) < 0)
        return -1;
    if (shim_task_service_register(d->server, d, err) < 0)
        return -1;
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

static void close_handle(uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void server_stopped(void *arg)
{
    struct shim_daemon *d = arg;
    d->server = NULL;
    close_handle((uv_handle_t *)&d->sigterm);
    close_handle((uv_handle_t *)&d->sigint);
    close_handle((uv_handle_t *)&d->sigchld);
    log_fields(LOG_LEVEL_INFO, "shim exiting", "id", d->args->id, NULL);
}

void shim_daemon_shutdown(struct shim_daemon *d, bool now)
{
    if (d->shutting_down)
        return;
    d->shutting_down = true;
    if (d->on_shutdown != NULL)
        d->on_shutdown(d);
    if (d->socket_addr != NULL)
        shim_socket_remove(d->socket_addr, NULL);
    if (d->server != NULL)
        ttrpc_server_shutdown(d->server, now ? 0 : SHIM_SHUTDOWN_GRACE_MS, server_stopped, d);
    else
        server_stopped(d);
}

static int daemon_setup(struct shim_daemon *d, shim_error_t **err)
{
    d->bundle = d->args->bundle[0] ? strdup(d->args->bundle) : getcwd(NULL, 0);
    if (d->bundle == NULL)
        return error_set_errno(err, RPC_INTERNAL, errno, "cannot determine the bundle");
    open_log(d);
    load_options(d);
    enum log_level level = shim_options_log_level(&d->options, d->args->debug);
    log_configure(STDERR_FILENO, level, LOG_FORMAT_TEXT);
    log_fields(LOG_LEVEL_DEBUG, "runtime options", "type_url",
               d->options.type_url ? d->options.type_url : "", "log_level", log_level_name(level),
               NULL);
    if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
        log_fields(LOG_LEVEL_WARN, "cannot become a child subreaper", "error", strerror(errno),
                   NULL);
    int rc = start_signals(d);
    if (rc < 0)
        return error_set_uv(err, RPC_INTERNAL, rc, "install signal handlers");
    return start_server(d, err);
}

int shim_daemon_run(const struct shim_cli_args *args)
{
    struct shim_daemon *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return 1;
    d->loop = uv_default_loop();
    d->args = args;
    /* Initialised up front so shutdown can always close them. */
    uv_signal_t *handles[] = {&d->sigterm, &d->sigint, &d->sigchld};
    for (int i = 0; i < 3; i++) {
        uv_signal_init(d->loop, handles[i]);
        handles[i]->data = d;
    }
    shim_error_t *err = NULL;
    int code = 0;
    if (daemon_setup(d, &err) < 0) {
        log_fields(LOG_LEVEL_ERROR, "shim failed to start", "id", args->id, "error", err->msg,
                   NULL);
        error_free(err);
        code = 1;
        shim_daemon_shutdown(d, true);
    } else {
        char pid[16];
        snprintf(pid, sizeof(pid), "%d", (int)getpid());
        log_fields(LOG_LEVEL_INFO, "shim serving", "id", args->id, "namespace",
                   args->namespace_name, "pid", pid, "address",
                   d->socket_addr ? d->socket_addr : "", NULL);
    }
    uv_run(d->loop, UV_RUN_DEFAULT);
    uv_loop_close(d->loop);
    shim_options_free(&d->options);
    free(d->socket_addr);
    free(d->bundle);
    free(d);
    return code;
}
