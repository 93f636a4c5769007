/* Shared between shim/service*.c only. */
#ifndef SHIM_SERVICE_INTERNAL_H
#define SHIM_SERVICE_INTERNAL_H

#include "gcs/guest_connection.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "shim/host.h"
#include "shim/events.h"
#include "shim/service.h"
#include "shim/task.h"

struct shim_service {
    uv_loop_t *loop;
    struct shim_daemon *daemon;
    struct shim_events *events;
    struct shim_host *host;         /* where containers run; NULL until the first Create */
    char *host_owner;               /* the task whose Create made the host */
    struct shim_host *closing_host; /* being closed: still gets its children's exits */
    struct shim_task *tasks;
    bool shutdown_requested;
    bool shutdown_now;
    bool closing;
    int creates_in_flight; /* Create calls still running (they hold the service) */
    void *close_waiting;   /* a finished close waiting for them (service.c) */
};

struct shim_service *service_of(ttrpc_call_t *call);
void fail_and_free(ttrpc_call_t *call, shim_error_t *err);
ProtobufCMessage *unpack_or_fail(ttrpc_call_t *call, const ProtobufCMessageDescriptor *desc);
void timestamp_fill(Google__Protobuf__Timestamp *ts, const struct shim_process *p);
struct shim_task *service_find_task(struct shim_service *s, const char *id);
int lookup_process(struct shim_service *s, const char *id, const char *exec_id,
                   struct shim_task **task, struct shim_process **proc, shim_error_t **err);
const char *process_event_id(const struct shim_process *p);

void process_record_exit(struct shim_process *p, uint32_t status);
/* From the exit or a SIGKILL on: output that makes no progress for a whole
 * period (its reader went away) is dropped so the exit can complete. */
void process_watch_output_stall(struct shim_process *p);
void process_exit_from_created(struct shim_process *p, uint32_t status, bool publish);
int process_start_relay(struct shim_process *p, struct gcs_process_io *io, shim_error_t **err);
int process_watch_exit(struct shim_service *s, struct shim_process *p, shim_error_t **err);
void service_maybe_exit(struct shim_service *s);
/* A Create call ended (successfully or not). */
void service_create_ended(struct shim_service *s);

/* Detaches a pending relay-close callback from a process about to be freed. */
void process_forget_finish(struct shim_process *p);

/* Creates the shim's host on first use; a second kind is refused. */
int service_ensure_host(struct shim_service *s, enum shim_host_kind kind, const char *task_id,
                        const json_t *spec, const runhcs_options *options, shim_error_t **err);

/* service_create.c */
void service_handle_create(ttrpc_call_t *call);
void service_handle_delete(ttrpc_call_t *call);
/* Shutdown with tasks left (SIGTERM): fail their waiters, close their IO. */
void service_drop_tasks(struct shim_service *s);
/* service_process.c */
void service_handle_start(ttrpc_call_t *call);
void service_handle_kill(ttrpc_call_t *call);
void service_handle_exec(ttrpc_call_t *call);
void service_handle_resize_pty(ttrpc_call_t *call);
void service_handle_close_io(ttrpc_call_t *call);
/* service_info.c */
void service_handle_pids(ttrpc_call_t *call);
void service_handle_stats(ttrpc_call_t *call);
void service_handle_update(ttrpc_call_t *call);

#endif
