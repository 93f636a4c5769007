#include "shim/task_service.h"

#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "containerd/task/v2/shim.pb-c.h"

static void not_implemented(ttrpc_call_t *call)
{
    log_fields(LOG_LEVEL_DEBUG, "task method not implemented yet", "method",
               ttrpc_call_method(call), NULL);
    ttrpc_call_fail(call, RPC_UNIMPLEMENTED, "not implemented yet");
}

static void handle_connect(ttrpc_call_t *call)
{
    shim_error_t *err = NULL;
    ProtobufCMessage *msg =
        ttrpc_call_unpack(call, &containerd__task__v2__connect_request__descriptor, &err);
    if (msg == NULL) {
        ttrpc_call_fail_error(call, err);
        error_free(err);
        return;
    }
    protobuf_c_message_free_unpacked(msg, NULL);
    Containerd__Task__V2__ConnectResponse resp = CONTAINERD__TASK__V2__CONNECT_RESPONSE__INIT;
    resp.shim_pid = (uint32_t)getpid();
    resp.task_pid = 0; /* no task yet: the task service fills this in */
    resp.version = "2";
    ttrpc_call_reply_message(call, &resp.base);
}

/* hcsshim semantics: only a Shutdown for the id the shim was started for
 * ends it (a pod member's Shutdown must not stop the pod's shim). */
static void handle_shutdown(ttrpc_call_t *call)
{
    struct shim_daemon *daemon = ttrpc_call_user_data(call);
    shim_error_t *err = NULL;
    Containerd__Task__V2__ShutdownRequest *req =
        (Containerd__Task__V2__ShutdownRequest *)ttrpc_call_unpack(
            call, &containerd__task__v2__shutdown_request__descriptor, &err);
    if (req == NULL) {
        ttrpc_call_fail_error(call, err);
        error_free(err);
        return;
    }
    bool ours = strcmp(req->id, daemon->args->id) == 0;
    bool now = req->now;
    log_fields(LOG_LEVEL_INFO, "shutdown requested", "id", req->id, "accepted",
               ours ? "true" : "false", NULL);
    containerd__task__v2__shutdown_request__free_unpacked(req, NULL);
    ttrpc_call_reply(call, NULL, 0); /* reply first, then stop */
    if (ours)
        shim_daemon_shutdown(daemon, now);
}

/* Every method of containerd.task.v2.Task (§2.1). */
static const struct ttrpc_method task_methods[] = {
    {"State", not_implemented},  {"Create", not_implemented},     {"Start", not_implemented},
    {"Delete", not_implemented}, {"Pids", not_implemented},       {"Pause", not_implemented},
    {"Resume", not_implemented}, {"Checkpoint", not_implemented}, {"Kill", not_implemented},
    {"Exec", not_implemented},   {"ResizePty", not_implemented},  {"CloseIO", not_implemented},
    {"Update", not_implemented}, {"Wait", not_implemented},       {"Stats", not_implemented},
    {"Connect", handle_connect}, {"Shutdown", handle_shutdown},
};

int shim_task_service_register(ttrpc_server_t *server, struct shim_daemon *daemon,
                               shim_error_t **err)
{
    /* Lives in the daemon, which outlives the server. */
    struct ttrpc_service *service = &daemon->task_service_desc;
    service->name = SHIM_TASK_SERVICE_NAME;
    service->methods = task_methods;
    service->n_methods = sizeof(task_methods) / sizeof(task_methods[0]);
    service->user_data = daemon;
    return ttrpc_server_register(server, service, err);
}
