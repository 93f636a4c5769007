#include "shim/win/daemon_log.h"

#include <fcntl.h>
#include <io.h>
#include <stdlib.h>
#include <windows.h>

#include "shim/socket.h"

struct shim_daemon_platform {
    uv_timer_t timer;
    char *name;
    HANDLE listening; /* the instance waiting for the next client */
    int fd;           /* CRT fd of the connected instance the log writes to */
    const enum log_level *level;
};

static HANDLE new_instance(const char *name)
{
    return CreateNamedPipeA(name, PIPE_ACCESS_OUTBOUND,
                            PIPE_TYPE_BYTE | PIPE_NOWAIT | PIPE_REJECT_REMOTE_CLIENTS,
                            PIPE_UNLIMITED_INSTANCES, 64 * 1024, 0, 0, NULL);
}

/* With PIPE_NOWAIT, ConnectNamedPipe does not wait: it reports whether a
 * client is there (ERROR_PIPE_CONNECTED, or ERROR_NO_DATA when it already
 * left) or not yet (ERROR_PIPE_LISTENING). */
static void poll_connection(uv_timer_t *timer)
{
    struct shim_daemon_platform *lp = timer->data;
    if (lp->listening == INVALID_HANDLE_VALUE)
        lp->listening = new_instance(lp->name);
    if (lp->listening == INVALID_HANDLE_VALUE)
        return;
    if (!ConnectNamedPipe(lp->listening, NULL) && GetLastError() != ERROR_PIPE_CONNECTED)
        return;
    int fd = _open_osfhandle((intptr_t)lp->listening, _O_WRONLY | _O_BINARY);
    if (fd < 0) {
        CloseHandle(lp->listening);
    } else {
        log_configure(fd, *lp->level, LOG_FORMAT_TEXT);
        if (lp->fd >= 0)
            _close(lp->fd);
        lp->fd = fd;
    }
    lp->listening = new_instance(lp->name);
}

int shim_log_pipe_open(uv_loop_t *loop, const char *ns, const char *id, const enum log_level *level,
                       struct shim_daemon_platform **out, shim_error_t **err)
{
    *out = NULL;
    struct shim_daemon_platform *lp = calloc(1, sizeof(*lp));
    if (lp == NULL)
        return error_set(err, RPC_INTERNAL, "out of memory");
    lp->fd = -1;
    lp->level = level;
    lp->name = shim_log_pipe_address(ns, id, err);
    if (lp->name == NULL) {
        free(lp);
        return -1;
    }
    lp->listening = new_instance(lp->name);
    if (lp->listening == INVALID_HANDLE_VALUE) {
        int rc = error_set(err, RPC_INTERNAL, "create log pipe %s (Windows error %lu)", lp->name,
                           (unsigned long)GetLastError());
        free(lp->name);
        free(lp);
        return rc;
    }
    uv_timer_init(loop, &lp->timer);
    lp->timer.data = lp;
    uv_timer_start(&lp->timer, poll_connection, 0, SHIM_LOG_PIPE_POLL_MS);
    uv_unref((uv_handle_t *)&lp->timer);
    *out = lp;
    return 0;
}

static void on_timer_closed(uv_handle_t *h)
{
    struct shim_daemon_platform *lp = h->data;
    if (lp->listening != INVALID_HANDLE_VALUE)
        CloseHandle(lp->listening);
    if (lp->fd >= 0) {
        log_configure(-1, *lp->level, LOG_FORMAT_TEXT); /* no writes to a closed fd */
        _close(lp->fd);
    }
    free(lp->name);
    free(lp);
}

void shim_log_pipe_close(struct shim_daemon_platform *lp)
{
    if (lp == NULL)
        return;
    /* The log keeps its pipe until the timer is closed: the last lines of
     * the shutdown still reach containerd. */
    uv_close((uv_handle_t *)&lp->timer, on_timer_closed);
}
