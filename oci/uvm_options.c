#include "oci/uvm_options.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hcs/schema.h"
#include "oci/spec.h"

static int read_string(const json_t *spec, const char *key, char **slot, shim_error_t **err)
{
    json_t *v = json_object_get(json_object_get(spec, "annotations"), key);
    if (v == NULL)
        return 0;
    if (!json_is_string(v))
        return error_set(err, RPC_INVALID_ARGUMENT, "annotation %s: value must be a string", key);
    return uvm_set_string(slot, json_string_value(v), err);
}

/* Annotations where 0 means "not set, keep the default" (hcsshim parses
 * these and only uses a positive result). */
static int read_positive_u64(const json_t *spec, const char *key, uint64_t *slot,
                             shim_error_t **err)
{
    uint64_t v = 0;
    if (oci_annotation_uint64(spec, key, 0, &v, err) < 0)
        return -1;
    if (v != 0)
        *slot = v;
    return 0;
}

static int read_processor_count(const json_t *spec, int32_t *slot, shim_error_t **err)
{
    int32_t v = 0;
    if (oci_annotation_int32(spec, ANN_PROCESSOR_COUNT, 0, &v, err) < 0)
        return -1;
    if (v < 0)
        return error_set(err, RPC_INVALID_ARGUMENT,
                         "annotation %s: processor count must not be negative (%d)",
                         ANN_PROCESSOR_COUNT, (int)v);
    if (v > 0)
        *slot = v;
    return 0;
}

static int read_common(const json_t *spec, struct uvm_common_options *c, shim_error_t **err)
{
    bool physical = false;
    if (read_positive_u64(spec, ANN_MEMORY_SIZE_MB, &c->memory_size_mb, err) < 0 ||
        oci_annotation_uint64(spec, ANN_LOW_MMIO_GAP_MB, c->low_mmio_gap_mb, &c->low_mmio_gap_mb,
                              err) < 0 ||
        oci_annotation_uint64(spec, ANN_HIGH_MMIO_BASE_MB, c->high_mmio_base_mb,
                              &c->high_mmio_base_mb, err) < 0 ||
        oci_annotation_uint64(spec, ANN_HIGH_MMIO_GAP_MB, c->high_mmio_gap_mb, &c->high_mmio_gap_mb,
                              err) < 0 ||
        oci_annotation_bool(spec, ANN_ALLOW_OVERCOMMIT, c->allow_overcommit, &c->allow_overcommit,
                            err) < 0 ||
        oci_annotation_bool(spec, ANN_DEFERRED_COMMIT, c->enable_deferred_commit,
                            &c->enable_deferred_commit, err) < 0 ||
        read_processor_count(spec, &c->processor_count, err) < 0 ||
        oci_annotation_int32(spec, ANN_PROCESSOR_LIMIT, c->processor_limit, &c->processor_limit,
                             err) < 0 ||
        oci_annotation_int32(spec, ANN_PROCESSOR_WEIGHT, c->processor_weight, &c->processor_weight,
                             err) < 0 ||
        oci_annotation_int32(spec, ANN_STORAGE_QOS_IOPS, c->storage_qos_iops_max,
                             &c->storage_qos_iops_max, err) < 0 ||
        oci_annotation_int32(spec, ANN_STORAGE_QOS_BANDWIDTH, c->storage_qos_bandwidth_max,
                             &c->storage_qos_bandwidth_max, err) < 0 ||
        read_string(spec, ANN_CPU_GROUP_ID, &c->cpu_group_id, err) < 0 ||
        read_string(spec, ANN_RESOURCE_PARTITION_ID, &c->resource_partition_id, err) < 0 ||
        read_string(spec, ANN_CONSOLE_PIPE, &c->console_pipe, err) < 0 ||
        read_string(spec, ANN_PROCESS_DUMP_LOCATION, &c->process_dump_location, err) < 0 ||
        oci_annotation_bool(spec, ANN_DISABLE_WRITABLE_SHARES, c->disable_writable_file_shares,
                            &c->disable_writable_file_shares, err) < 0 ||
        oci_annotation_bool(spec, ANN_FULLY_PHYSICALLY_BACKED, false, &physical, err) < 0)
        return -1;
    if (physical) {
        c->fully_physically_backed = true;
        c->allow_overcommit = false;
    }
    return 0;
}

/* A canonical lower-case GUID from "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx",
 * optionally in braces. */
static int normalize_guid(const char *in, char out[37])
{
    size_t n = strlen(in);
    if (n == 38 && in[0] == '{' && in[37] == '}') {
        in++;
        n = 36;
    }
    if (n != 36)
        return -1;
    for (size_t i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? in[i] != '-' : !isxdigit((unsigned char)in[i]))
            return -1;
        out[i] = (char)tolower((unsigned char)in[i]);
    }
    out[36] = '\0';
    return 0;
}

static int read_service_table(const json_t *spec, json_t **slot, shim_error_t **err)
{
    json_t *anns = json_object_get(spec, "annotations");
    const size_t plen = strlen(ANN_HVSOCKET_SERVICE_TABLE_PREFIX);
    const char *key;
    json_t *value;
    json_object_foreach(anns, key, value)
    {
        if (strncmp(key, ANN_HVSOCKET_SERVICE_TABLE_PREFIX, plen) != 0)
            continue;
        char guid[37];
        if (normalize_guid(key + plen, guid) < 0)
            return error_set(err, RPC_INVALID_ARGUMENT, "annotation %s: invalid service GUID", key);
        json_t *cfg = json_loads(json_string_value(value), JSON_REJECT_DUPLICATES, NULL);
        if (!json_is_object(cfg)) {
            json_decref(cfg);
            return error_set(err, RPC_INVALID_ARGUMENT, "annotation %s: value is not a JSON object",
                             key);
        }
        if (*slot == NULL && (*slot = json_object()) == NULL) {
            json_decref(cfg);
            return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
        }
        /* A later spelling of the same GUID overrides an earlier one. */
        if (json_object_set_new(*slot, guid, cfg) < 0)
            return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    }
    return 0;
}

static int read_rootfs_type(const json_t *spec, struct uvm_lcow_options *o, shim_error_t **err)
{
    const char *t = oci_annotation(spec, ANN_PREFERRED_ROOTFS_TYPE);
    if (t == NULL)
        return 0;
    if (strcmp(t, "initrd") == 0) {
        o->rootfs_type = UVM_ROOTFS_INITRD;
        return uvm_set_string(&o->rootfs_file, UVM_INITRD_FILE, err);
    }
    if (strcmp(t, "vhd") == 0) {
        o->rootfs_type = UVM_ROOTFS_VHD;
        return uvm_set_string(&o->rootfs_file, UVM_VHD_FILE, err);
    }
    return error_set(err, RPC_INVALID_ARGUMENT,
                     "annotation %s: invalid value '%s' (want initrd or vhd)",
                     ANN_PREFERRED_ROOTFS_TYPE, t);
}

static int read_boot(const json_t *spec, struct uvm_lcow_options *o, shim_error_t **err)
{
    json_t *boot = json_object_get(json_object_get(spec, "annotations"), ANN_BOOT_FILES_ROOT_PATH);
    if (boot != NULL && uvm_lcow_set_boot_files_path(o, json_string_value(boot), err) < 0)
        return -1;
    if (oci_annotation_bool(spec, ANN_KERNEL_DIRECT_BOOT, o->kernel_direct, &o->kernel_direct,
                            err) < 0)
        return -1;
    if (!o->kernel_direct && uvm_set_string(&o->kernel_file, UVM_KERNEL_FILE, err) < 0)
        return -1;
    return read_rootfs_type(spec, o, err);
}

static int append_exec_args(struct uvm_lcow_options *o, const char *extra, shim_error_t **err)
{
    if (extra == NULL || extra[0] == '\0')
        return 0;
    char *joined = NULL;
    if (asprintf(&joined, "%s %s", o->exec_command_line, extra) < 0)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    free(o->exec_command_line);
    o->exec_command_line = joined;
    return 0;
}

static int read_lcow(const json_t *spec, struct uvm_lcow_options *o, shim_error_t **err)
{
    if (read_common(spec, &o->common, err) < 0 || read_boot(spec, o, err) < 0 ||
        oci_annotation_bool(spec, ANN_COLD_DISCARD_HINT, o->enable_cold_discard_hint,
                            &o->enable_cold_discard_hint, err) < 0 ||
        oci_annotation_uint32(spec, ANN_VPMEM_COUNT, o->vpmem_device_count, &o->vpmem_device_count,
                              err) < 0 ||
        oci_annotation_uint64(spec, ANN_VPMEM_SIZE, o->vpmem_size_bytes, &o->vpmem_size_bytes,
                              err) < 0 ||
        oci_annotation_bool(spec, ANN_VPMEM_NO_MULTI_MAPPING, o->vpmem_no_multi_mapping,
                            &o->vpmem_no_multi_mapping, err) < 0 ||
        oci_annotation_bool(spec, ANN_VPCI_ENABLED, o->vpci_enabled, &o->vpci_enabled, err) < 0 ||
        oci_annotation_bool(spec, ANN_TIMESYNC_DISABLE, o->disable_time_sync, &o->disable_time_sync,
                            err) < 0 ||
        oci_annotation_bool(spec, ANN_WRITABLE_OVERLAY_DIRS, o->writable_overlay_dirs,
                            &o->writable_overlay_dirs, err) < 0 ||
        oci_annotation_bool(spec, ANN_ENCRYPTED_SCRATCH, o->enable_scratch_encryption,
                            &o->enable_scratch_encryption, err) < 0 ||
        read_string(spec, ANN_KERNEL_BOOT_OPTIONS, &o->kernel_boot_options, err) < 0 ||
        append_exec_args(o, oci_annotation(spec, ANN_EXTRA_EXEC_ARGS), err) < 0 ||
        read_service_table(spec, &o->hvsocket_service_table, err) < 0)
        return -1;
    if (oci_annotation(spec, ANN_SECURITY_POLICY) != NULL)
        return error_set(err, RPC_UNIMPLEMENTED,
                         "annotation %s: confidential (SNP) UVMs are not supported",
                         ANN_SECURITY_POLICY);
    if (o->common.fully_physically_backed)
        o->vpmem_device_count = 0;
    if (o->vpmem_device_count == 0 && o->common.host.build >= UVM_BUILD_RS5)
        o->scsi_controller_count = HCS_SCSI_CONTROLLER_MAX;
    return 0;
}

/* Private copy of the spec with options merged and annotations expanded. */
static json_t *merged_spec(const json_t *spec, const runhcs_options *opts, shim_error_t **err)
{
    if (!json_is_object(spec)) {
        error_set(err, RPC_INVALID_ARGUMENT, "spec must be a JSON object");
        return NULL;
    }
    json_t *copy = json_deep_copy(spec);
    if (copy == NULL) {
        error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
        return NULL;
    }
    if (oci_update_spec_from_options(copy, opts, err) < 0 ||
        oci_process_annotations(copy, err) < 0) {
        json_decref(copy);
        return NULL;
    }
    return copy;
}

int oci_lcow_uvm_options(const json_t *spec, const runhcs_options *opts,
                         struct uvm_lcow_options *out, shim_error_t **err)
{
    if (!oci_is_lcow(spec))
        return error_set(err, RPC_INVALID_ARGUMENT, "LCOW UVM options need a spec with linux");
    json_t *s = merged_spec(spec, opts, err);
    if (s == NULL)
        return -1;
    int rc = read_lcow(s, out, err);
    json_decref(s);
    return rc;
}

static bool host_has(const struct uvm_host *host, const char *dir, const char *name)
{
    char *path = uvm_join_path(dir, name);
    bool found = path != NULL && host->file_exists(host->ctx, path);
    free(path);
    return found;
}

static int wcow_paths_from_layers(const json_t *spec, struct uvm_wcow_options *o,
                                  shim_error_t **err)
{
    json_t *layers = json_object_get(json_object_get(spec, "windows"), "layerFolders");
    if (layers == NULL || json_is_null(layers))
        return 0;
    size_t n = json_array_size(layers);
    if (!json_is_array(layers) || n < 2)
        return error_set(err, RPC_INVALID_ARGUMENT,
                         "spec.windows.layerFolders must have at least 2 entries for a WCOW UVM");
    for (size_t i = 0; i < n; i++) {
        if (!json_is_string(json_array_get(layers, i)))
            return error_set(err, RPC_INVALID_ARGUMENT,
                             "spec.windows.layerFolders[%zu] must be a string", i);
    }
    const struct uvm_host *h = &o->common.host;
    const char *image = NULL;
    for (size_t i = 0; i + 1 < n && image == NULL && h->file_exists != NULL; i++) {
        const char *layer = json_string_value(json_array_get(layers, i));
        if (host_has(h, layer, "UtilityVM"))
            image = layer;
    }
    if (image == NULL && h->file_exists != NULL)
        return error_set(err, RPC_NOT_FOUND, "no layer folder contains a UtilityVM folder");
    if (image == NULL)
        image = json_string_value(json_array_get(layers, n - 2));
    char *scratch =
        uvm_join_path(json_string_value(json_array_get(layers, n - 1)), "vm\\sandbox.vhdx");
    if (scratch == NULL || uvm_set_string(&o->uvm_image_path, image, err) < 0) {
        free(scratch);
        return scratch ? -1 : error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    }
    free(o->scratch_path);
    o->scratch_path = scratch;
    return 0;
}

static int read_wcow(const json_t *spec, const runhcs_options *opts, struct uvm_wcow_options *o,
                     shim_error_t **err)
{
    bool no_tz = opts != NULL && opts->no_inherit_host_timezone;
    if (read_common(spec, &o->common, err) < 0 ||
        oci_annotation_bool(spec, ANN_DISABLE_COMPARTMENT_NS, o->disable_compartment_namespace,
                            &o->disable_compartment_namespace, err) < 0 ||
        oci_annotation_bool(spec, ANN_VSMB_NO_DIRECT_MAP, o->no_direct_map, &o->no_direct_map,
                            err) < 0 ||
        oci_annotation_bool(spec, ANN_NO_INHERIT_TIMEZONE, no_tz, &o->no_inherit_host_timezone,
                            err) < 0)
        return -1;
    return wcow_paths_from_layers(spec, o, err);
}

int oci_wcow_uvm_options(const json_t *spec, const runhcs_options *opts,
                         struct uvm_wcow_options *out, shim_error_t **err)
{
    if (!oci_is_wcow(spec))
        return error_set(err, RPC_INVALID_ARGUMENT, "WCOW UVM options need a Windows spec");
    json_t *s = merged_spec(spec, opts, err);
    if (s == NULL)
        return -1;
    int rc = read_wcow(s, opts, out, err);
    json_decref(s);
    return rc;
}
