#include "hcs/doc_stats.h"

#include <string.h>

json_t *hcs_vm_stats_query(void)
{
    return json_pack("{s:[s,s]}", "PropertyTypes", "Statistics", "Memory");
}

/* Reads an optional non-negative integer no larger than max. */
static int get_uint(const json_t *obj, const char *key, uint64_t max, uint64_t *out,
                    shim_error_t **err)
{
    json_t *v = json_object_get(obj, key);
    *out = 0;
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0 || (uint64_t)json_integer_value(v) > max)
        return error_set(err, RPC_INVALID_ARGUMENT, "properties: %s is not a valid count", key);
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

static int get_int32(const json_t *obj, const char *key, int32_t *out, shim_error_t **err)
{
    json_t *v = json_object_get(obj, key);
    *out = 0;
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < INT32_MIN ||
        json_integer_value(v) > INT32_MAX)
        return error_set(err, RPC_INVALID_ARGUMENT, "properties: %s is not an int32", key);
    *out = (int32_t)json_integer_value(v);
    return 0;
}

static int object_or_absent(const json_t *v, const char *what, shim_error_t **err)
{
    if (v != NULL && !json_is_null(v) && !json_is_object(v))
        return error_set(err, RPC_INVALID_ARGUMENT, "properties: %s must be an object", what);
    return 0;
}

static int read_vm_memory(const json_t *vmm, struct hcs_vm_stats *out, shim_error_t **err)
{
    uint64_t u = 0;
    out->has_vm_memory = json_is_object(vmm);
    if (get_int32(vmm, "AvailableMemory", &out->available_memory, err) < 0 ||
        get_int32(vmm, "AvailableMemoryBuffer", &out->available_memory_buffer, err) < 0 ||
        get_uint(vmm, "ReservedMemory", UINT64_MAX, &out->reserved_memory, err) < 0 ||
        get_uint(vmm, "AssignedMemory", UINT64_MAX / 4096, &u, err) < 0)
        return -1;
    out->assigned_memory = u;
    out->slp_active = json_is_true(json_object_get(vmm, "SlpActive"));
    out->balancing_enabled = json_is_true(json_object_get(vmm, "BalancingEnabled"));
    out->dm_operation_in_progress = json_is_true(json_object_get(vmm, "DmOperationInProgress"));
    return 0;
}

int hcs_vm_stats_from_properties(const json_t *props, bool physically_backed,
                                 struct hcs_vm_stats *out, shim_error_t **err)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(props))
        return error_set(err, RPC_INVALID_ARGUMENT, "properties must be a JSON object");
    json_t *stats = json_object_get(props, "Statistics");
    json_t *proc = json_object_get(stats, "Processor");
    json_t *mem = json_object_get(props, "Memory");
    json_t *vmm = json_object_get(mem, "VirtualMachineMemory");
    uint64_t runtime = 0, nodes = 0;
    if (object_or_absent(stats, "Statistics", err) < 0 ||
        object_or_absent(proc, "Statistics.Processor", err) < 0 ||
        object_or_absent(mem, "Memory", err) < 0 ||
        object_or_absent(vmm, "Memory.VirtualMachineMemory", err) < 0 ||
        get_uint(proc, "TotalRuntime100ns", UINT64_MAX / 100, &runtime, err) < 0 ||
        get_uint(mem, "VirtualNodeCount", UINT32_MAX, &nodes, err) < 0 ||
        read_vm_memory(vmm, out, err) < 0)
        return -1;
    out->total_runtime_ns = runtime * 100;
    out->virtual_node_count = (uint32_t)nodes;
    if (physically_backed) {
        out->working_set_bytes = out->assigned_memory * 4096;
        out->working_set_known = true;
    }
    return 0;
}
