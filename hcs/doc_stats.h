/* The VM half of Stats(): HCS Properties -> VirtualMachineStatistics values
 * (hcs-documents.md 7). */
#ifndef HCS_DOC_STATS_H
#define HCS_DOC_STATS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"

struct hcs_vm_stats {
    uint64_t total_runtime_ns; /* Statistics.Processor.TotalRuntime100ns * 100 */
    /* AssignedMemory * 4096 for a physically backed UVM; otherwise the
     * vmmem process working set, which the caller measures on the host. */
    uint64_t working_set_bytes;
    bool working_set_known;
    uint32_t virtual_node_count;
    bool has_vm_memory;
    int32_t available_memory, available_memory_buffer;
    uint64_t reserved_memory, assigned_memory; /* 4 KiB pages */
    bool slp_active, balancing_enabled, dm_operation_in_progress;
};

/* {"PropertyTypes":["Statistics","Memory"]} */
json_t *hcs_vm_stats_query(void);

/* Parses a Properties document. Missing members read as zero; members of the
 * wrong type are an error. */
int hcs_vm_stats_from_properties(const json_t *props, bool physically_backed,
                                 struct hcs_vm_stats *out, shim_error_t **err);

#endif
