/* Process isolation on Windows would be an Argon container on the host
 * (HcsCreateComputeSystem without a UVM). The Linux realization runs our gcs
 * agent as a child (shim/unix/host_process.c), which has no Windows
 * counterpart, so a Windows shim offers hypervisor isolation only. */
#include "shim/host.h"

int shim_host_process_new(uv_loop_t *loop, bool debug, const struct shim_host_callbacks *cbs,
                          void *opaque, struct shim_host **out, shim_error_t **err)
{
    (void)loop;
    (void)debug;
    (void)cbs;
    (void)opaque;
    *out = NULL;
    return error_set(err, RPC_UNIMPLEMENTED,
                     "process isolation on Windows (Argon) is not implemented; use hypervisor "
                     "isolation");
}
