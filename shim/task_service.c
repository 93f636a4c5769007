#include "shim/task_service.h"

#include "shim/service.h"

/* The daemon is stopping (Shutdown, SIGTERM/SIGINT): release the tasks, the
 * guest agent and the event publisher so the loop can end. */
static void on_daemon_shutdown(struct shim_daemon *daemon)
{
    if (daemon->task_service != NULL)
        shim_service_close(daemon->task_service, NULL, NULL);
}

int shim_task_service_register(ttrpc_server_t *server, struct shim_daemon *daemon,
                               shim_error_t **err)
{
    if (shim_service_new(daemon, err) < 0)
        return -1;
    daemon->on_shutdown = on_daemon_shutdown;
    /* Lives in the daemon, which outlives the server. */
    struct ttrpc_service *service = &daemon->task_service_desc;
    service->name = SHIM_TASK_SERVICE_NAME;
    service->methods = shim_task_methods(&service->n_methods);
    service->user_data = daemon;
    return ttrpc_server_register(server, service, err);
}
