/* Implementation of containerd.task.v2.Task (shim-contract.md §2) for
 * process isolation: the task model (shim/task.h) driven through the guest
 * agent (shim/agent.h), events through shim/events.h.
 *
 * Handlers find their state through ttrpc_call_user_data(call), which must be
 * the struct shim_daemon whose task_service is the shim_service. */
#ifndef SHIM_SERVICE_H
#define SHIM_SERVICE_H

#include <stddef.h>

#include "common/error.h"
#include "shim/daemon.h"
#include "ttrpc/ttrpc.h"

#define SHIM_HYPERVISOR_UNAVAILABLE                                                                \
    "hypervisor isolation is not available yet on this host; run the container with process "      \
    "isolation: annotation io.runhcs.isolation=process (ctr run --annotation "                     \
    "io.runhcs.isolation=process) or runhcs option sandbox_isolation=PROCESS with a "              \
    "non-Linux spec"

struct shim_service;

/* Creates the service state for the daemon (d->task_service) and hooks the
 * daemon's SIGCHLD callback. Reads TTRPC_ADDRESS for events. */
int shim_service_new(struct shim_daemon *d, shim_error_t **err);
/* The method table for containerd.task.v2.Task (all 17 methods). */
const struct ttrpc_method *shim_task_methods(size_t *n);

typedef void (*shim_service_closed_fn)(void *arg);
/* Flushes events (bounded), stops the agent, frees the service. */
void shim_service_close(struct shim_service *s, shim_service_closed_fn done, void *arg);

#endif
