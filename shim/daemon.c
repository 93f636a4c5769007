/* The serving shim, portable part: setup order, ttrpc server, shutdown.
 * The platform's part is behind shim/daemon_platform.h. */
#include "shim/daemon.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "shim/daemon_platform.h"
#include "shim/socket.h"
#include "shim/task_service.h"

static int start_server(struct shim_daemon *d, shim_error_t **err)
{
    struct ttrpc_server_options opts = {.require_same_uid = true};
    if (ttrpc_server_new(d->loop, &opts, &d->server, err) < 0)
        return -1;
    if (shim_task_service_register(d->server, d, err) < 0)
        return -1;
    return daemon_platform_listen(d, err);
}

static void server_stopped(void *arg)
{
    struct shim_daemon *d = arg;
    d->server = NULL;
    daemon_platform_close(d);
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
    int log_fd = daemon_platform_open_log(d);
    daemon_platform_load_options(d);
    d->log_level = shim_options_log_level(&d->options, d->args->debug);
    log_configure(log_fd, d->log_level, LOG_FORMAT_TEXT);
    log_fields(LOG_LEVEL_DEBUG, "runtime options", "type_url",
               d->options.type_url ? d->options.type_url : "", "log_level",
               log_level_name(d->log_level), NULL);
    if (daemon_platform_start(d, err) < 0)
        return -1;
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
    daemon_platform_init(d);
    shim_error_t *err = NULL;
    int code = 0;
    if (daemon_setup(d, &err) < 0) {
        log_fields(LOG_LEVEL_ERROR, "shim failed to start", "id", args->id, "error", err->msg,
                   NULL);
        daemon_platform_failed(d, err->msg);
        error_free(err);
        code = 1;
        shim_daemon_shutdown(d, true);
    } else {
        char pid[16];
        snprintf(pid, sizeof(pid), "%d", (int)uv_os_getpid());
        log_fields(LOG_LEVEL_INFO, "shim serving", "id", args->id, "namespace",
                   args->namespace_name, "pid", pid, "address",
                   d->socket_addr ? d->socket_addr : "", NULL);
        daemon_platform_serving(d);
    }
    uv_run(d->loop, UV_RUN_DEFAULT);
    uv_loop_close(d->loop);
    shim_options_free(&d->options);
    free(d->socket_addr);
    free(d->bundle);
    free(d);
    return code;
}
