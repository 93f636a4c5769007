/* The Windows realization of hcs/compute.h over computecore.dll, plus what
 * only exists there.
 *
 * Threads: HCS completes operations and raises events on its own thread
 * pool. Waited operations (create, start, modify, properties) block in
 * HcsWaitForOperationResult on a libuv thread-pool thread (uv_queue_work,
 * hcsshim's one-operation-per-call pattern), so their results arrive on the
 * loop through after_work. Events (SystemExited, ServiceDisconnect) are
 * queued under a mutex by the HCS callback and handed to the loop with a
 * uv_async_t. No loop state is touched outside the loop thread.
 *
 * Differences from the QEMU backend: shutdown and terminate are submit and
 * forget (hcsshim HEAD): their done callback reports that HCS accepted the
 * request; the end comes as the exit callback. hcs_system_create and
 * hcs_system_properties block the loop for the HCS call (bounded by
 * HCS_WIN_SYNC_TIMEOUT_MS). There are no port sockets: port_path, port_dir
 * and log_path return NULL; the GCS is reached over hvsock
 * (gcs/win/transport_hvsock.c) with the VM's RuntimeId from the properties. */
#ifndef HCS_WIN_COMPUTE_HCS_H
#define HCS_WIN_COMPUTE_HCS_H

#include "hcs/compute.h"
#include "hcs/win/hcs_api.h"

/* hcsshim's defaults: create/start 4 minutes. */
#define HCS_WIN_OP_TIMEOUT_MS (4u * 60u * 1000u)
#define HCS_WIN_SYNC_TIMEOUT_MS (4u * 60u * 1000u)

/* hcs_system_create with a given function table (copied; module NULL means
 * nothing to unload). hcs_system_create loads computecore.dll itself. */
int hcs_system_create_with_api(uv_loop_t *loop, const struct hcs_api *api, const char *id,
                               const char *document, hcs_system_t **out, shim_error_t **err);
/* Opens an existing compute system by id (HcsOpenComputeSystem; e.g. for
 * `delete` after a shim restart). Its state is taken as running. */
int hcs_system_open_with_api(uv_loop_t *loop, const struct hcs_api *api, const char *id,
                             hcs_system_t **out, shim_error_t **err);
int hcs_system_open(uv_loop_t *loop, const char *id, hcs_system_t **out, shim_error_t **err);

#endif
