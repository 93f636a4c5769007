#include "oci/annotations.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct typed_key {
    const char *key;
    enum oci_annotation_type type;
};

/* Keys with a non-string type; everything else is read as a string. */
static const struct typed_key typed_keys[] = {
    {ANN_MEMORY_SIZE_MB, OCI_ANN_UINT64},
    {ANN_ALLOW_OVERCOMMIT, OCI_ANN_BOOL},
    {ANN_DEFERRED_COMMIT, OCI_ANN_BOOL},
    {ANN_COLD_DISCARD_HINT, OCI_ANN_BOOL},
    {ANN_LOW_MMIO_GAP_MB, OCI_ANN_UINT64},
    {ANN_HIGH_MMIO_BASE_MB, OCI_ANN_UINT64},
    {ANN_HIGH_MMIO_GAP_MB, OCI_ANN_UINT64},
    {ANN_PROCESSOR_COUNT, OCI_ANN_INT32},
    {ANN_PROCESSOR_LIMIT, OCI_ANN_INT32},
    {ANN_PROCESSOR_WEIGHT, OCI_ANN_INT32},
    {ANN_STORAGE_QOS_IOPS, OCI_ANN_INT32},
    {ANN_STORAGE_QOS_BANDWIDTH, OCI_ANN_INT32},
    {ANN_FULLY_PHYSICALLY_BACKED, OCI_ANN_BOOL},
    {ANN_VPMEM_COUNT, OCI_ANN_UINT32},
    {ANN_VPMEM_SIZE, OCI_ANN_UINT64},
    {ANN_VPMEM_NO_MULTI_MAPPING, OCI_ANN_BOOL},
    {ANN_KERNEL_DIRECT_BOOT, OCI_ANN_BOOL},
    {ANN_VPCI_ENABLED, OCI_ANN_BOOL},
    {ANN_TIMESYNC_DISABLE, OCI_ANN_BOOL},
    {ANN_WRITABLE_OVERLAY_DIRS, OCI_ANN_BOOL},
    {ANN_ENCRYPTED_SCRATCH, OCI_ANN_BOOL},
    {ANN_DISABLE_WRITABLE_SHARES, OCI_ANN_BOOL},
    {ANN_LCOW_PRIVILEGED, OCI_ANN_BOOL},
    {ANN_DISABLE_COMPARTMENT_NS, OCI_ANN_BOOL},
    {ANN_VSMB_NO_DIRECT_MAP, OCI_ANN_BOOL},
    {ANN_NO_INHERIT_TIMEZONE, OCI_ANN_BOOL},
    {ANN_CONTAINER_MEMORY_MB, OCI_ANN_UINT64},
    {ANN_CONTAINER_CPU_COUNT, OCI_ANN_INT32},
    {ANN_CONTAINER_CPU_LIMIT, OCI_ANN_INT32},
    {ANN_CONTAINER_CPU_WEIGHT, OCI_ANN_INT32},
    {ANN_CONTAINER_QOS_IOPS, OCI_ANN_INT32},
    {ANN_CONTAINER_QOS_BANDWIDTH, OCI_ANN_INT32},
    {ANN_WCOW_DUMP_COUNT, OCI_ANN_INT32},
    {ANN_WCOW_DISABLE_GMSA, OCI_ANN_BOOL},
    {ANN_DISABLE_HOST_PROCESS, OCI_ANN_BOOL},
    {ANN_HOST_PROCESS_INHERIT_USER, OCI_ANN_BOOL},
};

enum oci_annotation_type oci_annotation_type_of(const char *key)
{
    for (size_t i = 0; i < sizeof(typed_keys) / sizeof(typed_keys[0]); i++) {
        if (strcmp(typed_keys[i].key, key) == 0)
            return typed_keys[i].type;
    }
    return OCI_ANN_STRING;
}

static const char *const true_words[] = {"1", "t", "T", "TRUE", "true", "True"};
static const char *const false_words[] = {"0", "f", "F", "FALSE", "false", "False"};

int oci_parse_bool(const char *s, bool *out)
{
    for (size_t i = 0; i < sizeof(true_words) / sizeof(true_words[0]); i++) {
        if (strcmp(s, true_words[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcmp(s, false_words[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

/* Go's ParseInt/ParseUint base 10: optional sign (signed only), digits only,
 * no spaces, range-checked. */
static int parse_signed(const char *s, long long min, long long max, long long *out)
{
    const char *p = (*s == '+' || *s == '-') ? s + 1 : s;
    if (*p == '\0')
        return -1;
    for (const char *q = p; *q; q++) {
        if (*q < '0' || *q > '9')
            return -1;
    }
    errno = 0;
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int parse_unsigned(const char *s, unsigned long long max, unsigned long long *out)
{
    if (*s == '\0')
        return -1;
    for (const char *q = s; *q; q++) {
        if (*q < '0' || *q > '9')
            return -1;
    }
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > max)
        return -1;
    *out = v;
    return 0;
}

int oci_parse_int32(const char *s, int32_t *out)
{
    long long v;
    if (parse_signed(s, INT32_MIN, INT32_MAX, &v) < 0)
        return -1;
    *out = (int32_t)v;
    return 0;
}

int oci_parse_uint32(const char *s, uint32_t *out)
{
    unsigned long long v;
    if (parse_unsigned(s, UINT32_MAX, &v) < 0)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

int oci_parse_uint64(const char *s, uint64_t *out)
{
    unsigned long long v;
    if (parse_unsigned(s, (unsigned long long)INT64_MAX, &v) < 0)
        return -1;
    *out = (uint64_t)v;
    return 0;
}

const char *oci_annotation(const json_t *spec, const char *key)
{
    return json_string_value(json_object_get(json_object_get(spec, "annotations"), key));
}

/* Fetches the raw value: 1 present (string in *value), 0 absent, -1 error. */
static int raw_value(const json_t *spec, const char *key, const char **value, shim_error_t **err)
{
    json_t *v = json_object_get(json_object_get(spec, "annotations"), key);
    if (v == NULL)
        return 0;
    if (!json_is_string(v))
        return error_set(err, RPC_INVALID_ARGUMENT, "annotation %s: value must be a string", key);
    *value = json_string_value(v);
    return 1;
}

static int malformed(shim_error_t **err, const char *key, const char *value, const char *what)
{
    return error_set(err, RPC_INVALID_ARGUMENT, "annotation %s: invalid %s value '%s'", key, what,
                     value);
}

int oci_annotation_bool(const json_t *spec, const char *key, bool def, bool *out,
                        shim_error_t **err)
{
    const char *value = NULL;
    int rc = raw_value(spec, key, &value, err);
    if (rc <= 0) {
        *out = def;
        return rc;
    }
    if (oci_parse_bool(value, out) < 0)
        return malformed(err, key, value, "bool");
    return 0;
}

int oci_annotation_int32(const json_t *spec, const char *key, int32_t def, int32_t *out,
                         shim_error_t **err)
{
    const char *value = NULL;
    int rc = raw_value(spec, key, &value, err);
    if (rc <= 0) {
        *out = def;
        return rc;
    }
    if (oci_parse_int32(value, out) < 0)
        return malformed(err, key, value, "int32");
    return 0;
}

int oci_annotation_uint32(const json_t *spec, const char *key, uint32_t def, uint32_t *out,
                          shim_error_t **err)
{
    const char *value = NULL;
    int rc = raw_value(spec, key, &value, err);
    if (rc <= 0) {
        *out = def;
        return rc;
    }
    if (oci_parse_uint32(value, out) < 0)
        return malformed(err, key, value, "uint32");
    return 0;
}

int oci_annotation_uint64(const json_t *spec, const char *key, uint64_t def, uint64_t *out,
                          shim_error_t **err)
{
    const char *value = NULL;
    int rc = raw_value(spec, key, &value, err);
    if (rc <= 0) {
        *out = def;
        return rc;
    }
    if (oci_parse_uint64(value, out) < 0)
        return malformed(err, key, value, "uint64");
    return 0;
}

static int validate_one(const char *key, const json_t *value, shim_error_t **err)
{
    if (!json_is_string(value))
        return error_set(err, RPC_INVALID_ARGUMENT, "annotation %s: value must be a string", key);
    const char *s = json_string_value(value);
    bool b;
    int32_t i32;
    uint32_t u32;
    uint64_t u64;
    switch (oci_annotation_type_of(key)) {
    case OCI_ANN_BOOL:
        return oci_parse_bool(s, &b) < 0 ? malformed(err, key, s, "bool") : 0;
    case OCI_ANN_INT32:
        return oci_parse_int32(s, &i32) < 0 ? malformed(err, key, s, "int32") : 0;
    case OCI_ANN_UINT32:
        return oci_parse_uint32(s, &u32) < 0 ? malformed(err, key, s, "uint32") : 0;
    case OCI_ANN_UINT64:
        return oci_parse_uint64(s, &u64) < 0 ? malformed(err, key, s, "uint64") : 0;
    case OCI_ANN_STRING:
        break;
    }
    return 0;
}

int oci_annotations_validate(const json_t *spec, shim_error_t **err)
{
    json_t *anns = json_object_get(spec, "annotations");
    if (anns == NULL || json_is_null(anns))
        return 0;
    if (!json_is_object(anns))
        return error_set(err, RPC_INVALID_ARGUMENT, "spec annotations must be an object");
    const char *key;
    json_t *value;
    json_object_foreach(anns, key, value)
    {
        if (validate_one(key, value, err) < 0)
            return -1;
    }
    return 0;
}

int oci_annotation_set(json_t *spec, const char *key, const char *value, shim_error_t **err)
{
    if (!json_is_object(spec))
        return error_set(err, RPC_INVALID_ARGUMENT, "spec must be a JSON object");
    json_t *anns = json_object_get(spec, "annotations");
    if (anns == NULL || json_is_null(anns)) {
        anns = json_object();
        if (json_object_set_new(spec, "annotations", anns) < 0)
            return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    } else if (!json_is_object(anns)) {
        return error_set(err, RPC_INVALID_ARGUMENT, "spec annotations must be an object");
    }
    if (json_object_set_new(anns, key, json_string(value)) < 0)
        return error_set(err, RPC_INVALID_ARGUMENT, "annotation %s: cannot set value", key);
    return 0;
}

static bool annotation_present(const json_t *spec, const char *key)
{
    return json_object_get(json_object_get(spec, "annotations"), key) != NULL;
}

static int set_if_unset(json_t *spec, const char *key, const char *value, shim_error_t **err)
{
    if (value == NULL || value[0] == '\0' || annotation_present(spec, key))
        return 0;
    return oci_annotation_set(spec, key, value, err);
}

static int set_int_if_unset(json_t *spec, const char *key, int32_t value, shim_error_t **err)
{
    char buf[16];
    if (value <= 0)
        return 0;
    snprintf(buf, sizeof(buf), "%d", (int)value);
    return set_if_unset(spec, key, buf, err);
}

int oci_update_spec_from_options(json_t *spec, const runhcs_options *opts, shim_error_t **err)
{
    if (!json_is_object(spec))
        return error_set(err, RPC_INVALID_ARGUMENT, "spec must be a JSON object");
    if (opts == NULL)
        return 0;
    if (set_if_unset(spec, ANN_BOOT_FILES_ROOT_PATH, opts->boot_files_root_path, err) < 0 ||
        set_int_if_unset(spec, ANN_PROCESSOR_COUNT, opts->vm_processor_count, err) < 0 ||
        set_int_if_unset(spec, ANN_MEMORY_SIZE_MB, opts->vm_memory_size_in_mb, err) < 0 ||
        set_if_unset(spec, ANN_NCPROXY, opts->ncproxyaddr, err) < 0)
        return -1;
    for (size_t i = 0; i < opts->n_default_container_annotations; i++) {
        const Containerd__Runhcs__V1__Options__DefaultContainerAnnotationsEntry *e =
            opts->default_container_annotations[i];
        if (e == NULL || e->key == NULL || e->key[0] == '\0' || e->value == NULL)
            continue;
        /* An empty default value still counts as "set" in hcsshim's map. */
        if (!annotation_present(spec, e->key) &&
            oci_annotation_set(spec, e->key, e->value, err) < 0)
            return -1;
    }
    return 0;
}

static const char *const unsafe_operation_members[] = {
    ANN_WCOW_DISABLE_GMSA,
    ANN_DISABLE_WRITABLE_SHARES,
    ANN_VSMB_NO_DIRECT_MAP,
    ANN_DISABLE_HOST_PROCESS,
};

static int expand_disable_unsafe(json_t *spec, shim_error_t **err)
{
    const char *value = oci_annotation(spec, ANN_DISABLE_UNSAFE_OPERATIONS);
    if (value == NULL)
        return 0;
    char *copy = strdup(value);
    if (copy == NULL)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    int rc = 0;
    for (size_t i = 0; i < sizeof(unsafe_operation_members) / sizeof(char *); i++) {
        const char *key = unsafe_operation_members[i];
        const char *have = oci_annotation(spec, key);
        /* hcsshim compares the raw strings: "True" conflicts with "true". */
        if (have != NULL && strcmp(have, copy) != 0) {
            rc = error_set(err, RPC_INVALID_ARGUMENT,
                           "annotation %s: expansion of %s conflicts with explicit value '%s'", key,
                           ANN_DISABLE_UNSAFE_OPERATIONS, have);
            break;
        }
        if ((rc = oci_annotation_set(spec, key, copy, err)) < 0)
            break;
    }
    free(copy);
    return rc;
}

int oci_process_annotations(json_t *spec, shim_error_t **err)
{
    if (oci_annotations_validate(spec, err) < 0 || expand_disable_unsafe(spec, err) < 0)
        return -1;
    bool disabled = false;
    if (oci_annotation_bool(spec, ANN_DISABLE_HOST_PROCESS, false, &disabled, err) < 0)
        return -1;
    const char *hpc = oci_annotation(spec, ANN_HOST_PROCESS);
    if (disabled && hpc != NULL && strcmp(hpc, "true") == 0)
        return error_set(err, RPC_INVALID_ARGUMENT,
                         "annotation %s: host process containers are disabled by %s",
                         ANN_HOST_PROCESS, ANN_DISABLE_HOST_PROCESS);
    return 0;
}
