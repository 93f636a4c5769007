/* OCI spec annotations understood by runhcs (`io.microsoft.*` and friends).
 *
 * Values are strings in spec.annotations. Typed readers follow hcsshim's
 * parsers (bool = Go strconv.ParseBool, integers base 10) except for one
 * deliberate difference: where hcsshim logs a malformed value and falls back
 * to the default, these return an RPC_INVALID_ARGUMENT error that names the
 * key. An absent key yields the caller's default. */
#ifndef OCI_ANNOTATIONS_H
#define OCI_ANNOTATIONS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"
#include "runhcs/options.pb-c.h"

typedef Containerd__Runhcs__V1__Options runhcs_options;

/* Pod model (CRI). */
#define ANN_K8S_CONTAINER_TYPE "io.kubernetes.cri.container-type"
#define ANN_K8S_SANDBOX_ID "io.kubernetes.cri.sandbox-id"

/* UVM scope (read from the sandbox spec). */
#define ANN_VM_PREFIX "io.microsoft.virtualmachine."
#define ANN_MEMORY_SIZE_MB ANN_VM_PREFIX "computetopology.memory.sizeinmb"
#define ANN_ALLOW_OVERCOMMIT ANN_VM_PREFIX "computetopology.memory.allowovercommit"
#define ANN_DEFERRED_COMMIT ANN_VM_PREFIX "computetopology.memory.enabledeferredcommit"
#define ANN_COLD_DISCARD_HINT ANN_VM_PREFIX "computetopology.memory.enablecolddiscardhint"
#define ANN_LOW_MMIO_GAP_MB ANN_VM_PREFIX "computetopology.memory.lowmmiogapinmb"
#define ANN_HIGH_MMIO_BASE_MB ANN_VM_PREFIX "computetopology.memory.highmmiobaseinmb"
#define ANN_HIGH_MMIO_GAP_MB ANN_VM_PREFIX "computetopology.memory.highmmiogapinmb"
#define ANN_PROCESSOR_COUNT ANN_VM_PREFIX "computetopology.processor.count"
#define ANN_PROCESSOR_LIMIT ANN_VM_PREFIX "computetopology.processor.limit"
#define ANN_PROCESSOR_WEIGHT ANN_VM_PREFIX "computetopology.processor.weight"
#define ANN_CPU_GROUP_ID ANN_VM_PREFIX "cpugroup.id"
#define ANN_RESOURCE_PARTITION_ID ANN_VM_PREFIX "resource-partition-id"
#define ANN_STORAGE_QOS_IOPS ANN_VM_PREFIX "storageqos.iopsmaximum"
#define ANN_STORAGE_QOS_BANDWIDTH ANN_VM_PREFIX "storageqos.bandwidthmaximum"
#define ANN_FULLY_PHYSICALLY_BACKED ANN_VM_PREFIX "fullyphysicallybacked"
#define ANN_VPMEM_COUNT ANN_VM_PREFIX "devices.virtualpmem.maximumcount"
#define ANN_VPMEM_SIZE ANN_VM_PREFIX "devices.virtualpmem.maximumsizebytes"
#define ANN_VPMEM_NO_MULTI_MAPPING ANN_VM_PREFIX "lcow.vpmem.nomultimapping"
#define ANN_PREFERRED_ROOTFS_TYPE ANN_VM_PREFIX "lcow.preferredrootfstype"
#define ANN_KERNEL_DIRECT_BOOT ANN_VM_PREFIX "lcow.kerneldirectboot"
#define ANN_BOOT_FILES_ROOT_PATH ANN_VM_PREFIX "bootfilesrootpath"
#define ANN_KERNEL_BOOT_OPTIONS ANN_VM_PREFIX "lcow.kernelbootoptions"
#define ANN_VPCI_ENABLED ANN_VM_PREFIX "lcow.vpcienabled"
#define ANN_TIMESYNC_DISABLE ANN_VM_PREFIX "lcow.timesync.disable"
#define ANN_WRITABLE_OVERLAY_DIRS ANN_VM_PREFIX "lcow.writable-overlay-directories"
#define ANN_EXTRA_EXEC_ARGS ANN_VM_PREFIX "lcow.extra-exec-command-args"
#define ANN_HVSOCKET_SERVICE_TABLE_PREFIX ANN_VM_PREFIX "hv-socket.service-table."
#define ANN_CONSOLE_PIPE ANN_VM_PREFIX "console.pipe"
#define ANN_ENCRYPTED_SCRATCH ANN_VM_PREFIX "storage.scratch.encrypted"
#define ANN_DISABLE_WRITABLE_SHARES ANN_VM_PREFIX "fileshares.disablewritable"
#define ANN_LCOW_PRIVILEGED ANN_VM_PREFIX "lcow.privileged"
#define ANN_DISABLE_COMPARTMENT_NS ANN_VM_PREFIX "disablecompartmentnamespace"
#define ANN_VSMB_NO_DIRECT_MAP ANN_VM_PREFIX "wcow.virtualSMB.nodirectmap"
#define ANN_NO_INHERIT_TIMEZONE ANN_VM_PREFIX "wcow.timezone.noinherit"
#define ANN_SECURITY_POLICY ANN_VM_PREFIX "lcow.securitypolicy"

/* Container scope. */
#define ANN_CONTAINER_MEMORY_MB "io.microsoft.container.memory.sizeinmb"
#define ANN_CONTAINER_CPU_COUNT "io.microsoft.container.processor.count"
#define ANN_CONTAINER_CPU_LIMIT "io.microsoft.container.processor.limit"
#define ANN_CONTAINER_CPU_WEIGHT "io.microsoft.container.processor.weight"
#define ANN_CONTAINER_QOS_IOPS "io.microsoft.container.storage.qos.iopsmaximum"
#define ANN_CONTAINER_QOS_BANDWIDTH "io.microsoft.container.storage.qos.bandwidthmaximum"
#define ANN_PROCESS_DUMP_LOCATION "io.microsoft.container.processdumplocation"
#define ANN_WCOW_DUMP_TYPE "io.microsoft.wcow.processdumptype"
#define ANN_WCOW_DUMP_COUNT "io.microsoft.wcow.processdumpcount"
#define ANN_WCOW_DISABLE_GMSA "io.microsoft.container.wcow.gmsa.disable"
#define ANN_LCOW_RLIMIT_CORE "io.microsoft.lcow.rlimitcore"
#define ANN_LCOW_SHM_SIZE_KB "io.microsoft.lcow.shm.size-kb"
#define ANN_GPU_VHD_PATH "io.microsoft.lcow.gpuvhdpath"
#define ANN_NCPROXY "io.microsoft.network.ncproxy"
#define ANN_HOST_PROCESS "microsoft.com/hostprocess-container"
#define ANN_HOST_PROCESS_INHERIT_USER "microsoft.com/hostprocess-inherit-user"
#define ANN_DISABLE_HOST_PROCESS "microsoft.com/disable-hostprocess-container"
#define ANN_DISABLE_UNSAFE_OPERATIONS "io.microsoft.disable-unsafe-operations"

enum oci_annotation_type {
    OCI_ANN_STRING,
    OCI_ANN_BOOL,
    OCI_ANN_INT32,
    OCI_ANN_UINT32,
    OCI_ANN_UINT64,
};

/* Type of a known annotation key; OCI_ANN_STRING for unknown keys. */
enum oci_annotation_type oci_annotation_type_of(const char *key);

/* Parsers for a single value (Go semantics). Return 0 or -1. */
int oci_parse_bool(const char *s, bool *out);
int oci_parse_int32(const char *s, int32_t *out);
int oci_parse_uint32(const char *s, uint32_t *out);
/* uint64 limited to INT64_MAX: every value ends up in a JSON number. */
int oci_parse_uint64(const char *s, uint64_t *out);

/* spec.annotations[key] as a string; NULL when absent. */
const char *oci_annotation(const json_t *spec, const char *key);

/* Typed readers: absent key -> *out = def, 0. Present but malformed (or
 * spec.annotations[key] not a string) -> -1 with an error naming the key. */
int oci_annotation_bool(const json_t *spec, const char *key, bool def, bool *out,
                        shim_error_t **err);
int oci_annotation_int32(const json_t *spec, const char *key, int32_t def, int32_t *out,
                         shim_error_t **err);
int oci_annotation_uint32(const json_t *spec, const char *key, uint32_t def, uint32_t *out,
                          shim_error_t **err);
int oci_annotation_uint64(const json_t *spec, const char *key, uint64_t def, uint64_t *out,
                          shim_error_t **err);

/* Checks that spec.annotations, if present, is an object of strings and that
 * every known typed key parses. */
int oci_annotations_validate(const json_t *spec, shim_error_t **err);

/* Sets spec.annotations[key] = value, creating the object if needed. */
int oci_annotation_set(json_t *spec, const char *key, const char *value, shim_error_t **err);

/* hcsshim UpdateSpecFromOptions: copies runhcs options into annotations only
 * where the spec does not already set the key (pod annotations win). Covers
 * boot_files_root_path, vm_processor_count (> 0), vm_memory_size_in_mb (> 0),
 * NCProxyAddr and default_container_annotations. `opts` may be NULL. */
int oci_update_spec_from_options(json_t *spec, const runhcs_options *opts, shim_error_t **err);

/* hcsshim ProcessAnnotations: expands io.microsoft.disable-unsafe-operations
 * into its member keys (an explicit member with a different value is an
 * error) and rejects a host-process container when host-process containers
 * are disabled. */
int oci_process_annotations(json_t *spec, shim_error_t **err);

#endif
