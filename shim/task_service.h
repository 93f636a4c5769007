/* containerd.task.v2.Task on the shim's ttrpc server (shim-contract.md §2).
 * The one place that maps method names to handlers. */
#ifndef SHIM_TASK_SERVICE_H
#define SHIM_TASK_SERVICE_H

#include "common/error.h"
#include "shim/daemon.h"
#include "ttrpc/ttrpc.h"

#define SHIM_TASK_SERVICE_NAME "containerd.task.v2.Task"

int shim_task_service_register(ttrpc_server_t *server, struct shim_daemon *daemon,
                               shim_error_t **err);

#endif
