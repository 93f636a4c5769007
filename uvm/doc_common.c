#include "uvm/doc_uvm.h"

#include "hcs/schema.h"

uint64_t uvm_normalize_memory_mb(uint64_t mb)
{
    return (mb + 1) & ~(uint64_t)1;
}

int32_t uvm_normalize_processor_count(int32_t requested, uint32_t host_lps)
{
    if (host_lps > 0 && requested > 0 && (uint32_t)requested > host_lps)
        return (int32_t)host_lps;
    return requested;
}

static json_t *memory_doc(const struct uvm_common_options *c, bool hot_hint, bool cold_discard)
{
    json_t *m = json_object();
    if (m == NULL)
        return NULL;
    int rc = json_put_u64(m, "SizeInMB", uvm_normalize_memory_mb(c->memory_size_mb));
    rc |= json_put_true(m, "AllowOvercommit", c->allow_overcommit);
    rc |= json_put_true(m, "EnableHotHint", hot_hint && c->allow_overcommit);
    rc |= json_put_true(m, "EnableDeferredCommit", c->enable_deferred_commit);
    rc |= json_put_true(m, "EnableColdDiscardHint", cold_discard);
    rc |= json_put_u64(m, "LowMmioGapInMB", c->low_mmio_gap_mb);
    rc |= json_put_u64(m, "HighMmioBaseInMB", c->high_mmio_base_mb);
    rc |= json_put_u64(m, "HighMmioGapInMB", c->high_mmio_gap_mb);
    if (rc != 0) {
        json_decref(m);
        return NULL;
    }
    return m;
}

static json_t *processor_doc(const struct uvm_common_options *c)
{
    json_t *p = json_object();
    if (p == NULL)
        return NULL;
    int32_t count = uvm_normalize_processor_count(c->processor_count, c->host.logical_processors);
    int rc = json_put_i64(p, "Count", count);
    rc |= json_put_i64(p, "Limit", c->processor_limit);
    rc |= json_put_i64(p, "Weight", c->processor_weight);
    if (c->cpu_group_id != NULL && c->cpu_group_id[0] != '\0')
        rc |= json_put_new(p, "CpuGroup", json_pack("{s:s}", "Id", c->cpu_group_id));
    if (rc != 0) {
        json_decref(p);
        return NULL;
    }
    return p;
}

json_t *uvm_doc_compute_topology(const struct uvm_common_options *c, bool hot_hint,
                                 bool cold_discard_hint)
{
    json_t *t = json_object();
    if (t == NULL)
        return NULL;
    int rc = json_put_new(t, "Memory", memory_doc(c, hot_hint, cold_discard_hint));
    rc |= json_put_new(t, "Processor", processor_doc(c));
    if (rc != 0) {
        json_decref(t);
        return NULL;
    }
    return t;
}

json_t *uvm_doc_storage_qos(const struct uvm_common_options *c)
{
    if (c->storage_qos_iops_max <= 0 && c->storage_qos_bandwidth_max <= 0)
        return NULL;
    json_t *q = json_object();
    if (q == NULL)
        return NULL;
    int rc = json_put_i64(q, "IopsMaximum", c->storage_qos_iops_max);
    rc |= json_put_i64(q, "BandwidthMaximum", c->storage_qos_bandwidth_max);
    if (rc != 0) {
        json_decref(q);
        return NULL;
    }
    return q;
}

int uvm_doc_console_devices(json_t *devices, const struct uvm_common_options *c)
{
    int rc = 0;
    if (c->console_pipe != NULL && c->console_pipe[0] != '\0')
        rc |= json_put_new(devices, "ComPorts",
                           json_pack("{s:{s:s}}", "0", "NamedPipe", c->console_pipe));
    if (c->enable_graphics_console) {
        rc |= json_put_new(devices, "VideoMonitor", json_object());
        rc |= json_put_new(devices, "Keyboard", json_object());
        rc |= json_put_new(devices, "EnhancedModeVideo", json_object());
    }
    return rc;
}

int uvm_verify_common(const struct uvm_common_options *c, shim_error_t **err)
{
    const char *why = NULL;
    if (c->enable_deferred_commit && !c->allow_overcommit)
        why = "EnableDeferredCommit is not supported on physically backed VMs";
    else if (c->memory_size_mb == 0)
        why = "MemorySizeInMB must be greater than 0";
    else if (c->memory_size_mb > (uint64_t)INT64_MAX - 1)
        why = "MemorySizeInMB is too large";
    else if (c->processor_count <= 0)
        why = "ProcessorCount must be greater than 0";
    else if (c->processor_limit < 0 || c->processor_limit > 100000)
        why = "ProcessorLimit must be between 0 and 100000";
    else if (c->processor_weight < 0 || c->processor_weight > 10000)
        why = "ProcessorWeight must be between 0 and 10000";
    else if (c->storage_qos_iops_max < 0 || c->storage_qos_bandwidth_max < 0)
        why = "StorageQoS maximums must not be negative";
    else if (c->resource_partition_id != NULL && c->resource_partition_id[0] != '\0' &&
             c->cpu_group_id != NULL && c->cpu_group_id[0] != '\0')
        why = "resource partition ID and processor group ID cannot be set at the same time";
    if (why != NULL)
        return error_set(err, RPC_INVALID_ARGUMENT, "UVM options incorrect: %s", why);
    return 0;
}
