/* shim/daemon_platform.h on Windows (the hcsshim model, shim-contract.md
 * §3.6, §3.7): start spawned us with the options on stdin, a pipe on stdout
 * that we close once the ttrpc pipe listens ("ready"), and stderr on
 * <bundle>/panic.log. The log goes to \\.\pipe\containerd-shim-<ns>-<id>-log
 * (shim/win/daemon_log.c). No subreaper, no SIGCHLD: process exits come from
 * HCS, so child_exited never fires. Console ctrl events (libuv maps them to
 * SIGINT, SIGBREAK and SIGHUP) shut the daemon down. */
#include "shim/daemon_platform.h"

#include <io.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <windows.h>

#include "common/log.h"
#include "shim/socket.h"
#include "shim/win/daemon_log.h"

void daemon_platform_init(struct shim_daemon *d)
{
    for (int i = 0; i < SHIM_DAEMON_SIGNALS; i++) {
        uv_signal_init(d->loop, &d->signals[i]);
        d->signals[i].data = d;
    }
}

int daemon_platform_open_log(struct shim_daemon *d)
{
    shim_error_t *err = NULL;
    if (shim_log_pipe_open(d->loop, d->args->namespace_name, d->args->id, &d->log_level,
                           &d->platform, &err) < 0) {
        /* Not fatal: the shim serves without a log (hcsshim would too). */
        fprintf(stderr, "log pipe: %s\n", err->msg);
        error_free(err);
    }
    return -1; /* until containerd connects to the log pipe */
}

/* Reads stdin to EOF: start writes the options there and closes it. A
 * console (run by hand) has no options. */
void daemon_platform_load_options(struct shim_daemon *d)
{
    HANDLE in = GetStdHandle(STD_INPUT_HANDLE);
    DWORD type = in && in != INVALID_HANDLE_VALUE ? GetFileType(in) : FILE_TYPE_UNKNOWN;
    if (type != FILE_TYPE_PIPE && type != FILE_TYPE_DISK)
        return;
    size_t cap = 4096, len = 0;
    uint8_t *buf = malloc(cap);
    bool ok = buf != NULL;
    while (ok) {
        if (len == cap) {
            uint8_t *grown = cap <= SHIM_OPTIONS_MAX ? realloc(buf, cap *= 2) : NULL;
            if (grown == NULL) {
                ok = false;
                break;
            }
            buf = grown;
        }
        DWORD got = 0;
        if (!ReadFile(in, buf + len, (DWORD)(cap - len), &got, NULL) || got == 0)
            break; /* EOF (ERROR_BROKEN_PIPE) */
        len += got;
    }
    _close(0); /* start's pipe: nothing of it may stay open */
    shim_error_t *err = NULL;
    if (ok && shim_options_decode(buf, len, &d->options, &err) < 0) {
        log_fields(LOG_LEVEL_ERROR, "ignoring runtime options", "error", err->msg, NULL);
        error_free(err);
    }
    free(buf);
}

static void on_ctrl_event(uv_signal_t *h, int signum)
{
    struct shim_daemon *d = h->data;
    char num[16];
    snprintf(num, sizeof(num), "%d", signum);
    log_fields(LOG_LEVEL_INFO, "console control event; shutting down", "signal", num, NULL);
    shim_daemon_shutdown(d, false);
}

int daemon_platform_start(struct shim_daemon *d, shim_error_t **err)
{
    static const int signums[SHIM_DAEMON_SIGNALS] = {SIGINT, SIGBREAK, SIGHUP};
    for (int i = 0; i < SHIM_DAEMON_SIGNALS; i++) {
        int rc = uv_signal_start(&d->signals[i], on_ctrl_event, signums[i]);
        if (rc < 0)
            return error_set_uv(err, RPC_INTERNAL, rc, "install console control handlers");
    }
    return 0;
}

int daemon_platform_listen(struct shim_daemon *d, shim_error_t **err)
{
    d->socket_addr =
        d->args->socket[0]
            ? strdup(d->args->socket)
            : shim_serve_address(d->args->address, d->args->namespace_name, d->args->id, err);
    if (d->socket_addr == NULL)
        return err && *err ? -1 : error_set(err, RPC_INTERNAL, "out of memory");
    return ttrpc_server_listen(d->server, d->socket_addr, err);
}

/* Closing stdout is the readiness signal start waits for; nothing may use
 * the std handles afterwards. */
static void close_stdout(void)
{
    fflush(stdout);
    HANDLE out = GetStdHandle(STD_OUTPUT_HANDLE);
    if (_close(1) < 0 && out != NULL && out != INVALID_HANDLE_VALUE)
        CloseHandle(out);
    SetStdHandle(STD_OUTPUT_HANDLE, NULL);
}

void daemon_platform_serving(struct shim_daemon *d)
{
    (void)d;
    close_stdout();
}

/* Before readiness, stdout is start's: whatever is written there becomes
 * the start failure message. */
void daemon_platform_failed(struct shim_daemon *d, const char *msg)
{
    (void)d;
    HANDLE out = GetStdHandle(STD_OUTPUT_HANDLE);
    DWORD written = 0;
    if (out != NULL && out != INVALID_HANDLE_VALUE)
        WriteFile(out, msg, (DWORD)strlen(msg), &written, NULL);
    close_stdout();
}

void daemon_platform_close(struct shim_daemon *d)
{
    for (int i = 0; i < SHIM_DAEMON_SIGNALS; i++) {
        uv_handle_t *h = (uv_handle_t *)&d->signals[i];
        if (!uv_is_closing(h))
            uv_close(h, NULL);
    }
    shim_log_pipe_close(d->platform);
    d->platform = NULL;
}
