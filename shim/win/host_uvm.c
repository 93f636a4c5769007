/* Windows: utility VMs are HCS's job (hcs/win), not the QEMU backend's; the
 * hypervisor host of shim/host.h is not built there yet. */
#include "shim/host.h"

int shim_host_uvm_new(uv_loop_t *loop, const struct shim_host_uvm_config *cfg,
                      const struct shim_host_callbacks *cbs, void *opaque, struct shim_host **out,
                      shim_error_t **err)
{
    (void)loop;
    (void)cbs;
    (void)opaque;
    (void)out;
    return error_set(err, RPC_UNIMPLEMENTED,
                     "task %s: hypervisor isolation is not available in this Windows build",
                     cfg->owner_id);
}
