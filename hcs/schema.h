/* HCS schema v2 building blocks shared by the document builders.
 *
 * hcsshim serializes Go structs with `omitempty`, so zero, false, empty and
 * nil members never reach HCS or the guest. The json_put_* helpers below
 * follow that rule: each one adds its key only for a non-zero value. They
 * return 0 on success and -1 on allocation failure so builders can OR the
 * results together and fail once at the end. */
#ifndef HCS_SCHEMA_H
#define HCS_SCHEMA_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#define HCS_SCHEMA_MAJOR 2
#define HCS_SCHEMA_MINOR 1

/* The four LCOW SCSI controller keys (v5 GUIDs of "0".."3", HEAD). */
#define HCS_SCSI_CONTROLLER_MAX 4
#define HCS_SCSI_LUNS_PER_CONTROLLER 64
extern const char *const hcs_scsi_controller_guids[HCS_SCSI_CONTROLLER_MAX];

/* Security descriptor allowing SYSTEM and Administrators to bind hvsockets. */
#define HCS_HVSOCKET_DEFAULT_SDDL "D:P(A;;FA;;;SY)(A;;FA;;;BA)"

/* Adds `key` only when `s` is non-NULL and non-empty. */
int json_put_str(json_t *obj, const char *key, const char *s);
/* Adds `key` only when `v` is non-zero (numbers above INT64_MAX fail). */
int json_put_u64(json_t *obj, const char *key, uint64_t v);
int json_put_i64(json_t *obj, const char *key, int64_t v);
/* Adds `key: true` only when `b` is true. */
int json_put_true(json_t *obj, const char *key, bool b);
/* Adds `child` (reference stolen) unless it is NULL; a NULL child is an
 * allocation failure of the caller's constructor and returns -1. */
int json_put_new(json_t *obj, const char *key, json_t *child);
/* Adds `child` (stolen) only when it is a non-empty object or array; an empty
 * one is released. NULL returns -1. */
int json_put_nonempty(json_t *obj, const char *key, json_t *child);
/* Gets obj[key] as a string or NULL. */
const char *json_get_str(const json_t *obj, const char *key);

/* {"Major":2,"Minor":1} */
json_t *hcs_schema_version(void);

/* Resource paths (hcsshim internal/hcs/resourcepaths). Returned strings are
 * heap-allocated; NULL on allocation failure. */
char *hcs_path_scsi(unsigned controller, unsigned lun);
char *hcs_path_vpmem_device(unsigned device);
char *hcs_path_vpmem_mapping(unsigned device, uint64_t offset);
char *hcs_path_network_adapter(const char *nic_id);
#define HCS_PATH_PLAN9_SHARES "VirtualMachine/Devices/Plan9/Shares"
#define HCS_PATH_VSMB_SHARES "VirtualMachine/Devices/VirtualSmb/Shares"
#define HCS_PATH_MEMORY_SIZE "VirtualMachine/ComputeTopology/Memory/SizeInMB"
#define HCS_PATH_CPU_LIMITS "VirtualMachine/ComputeTopology/Processor/Limits"
#define HCS_PATH_CPU_GROUP "VirtualMachine/ComputeTopology/Processor/CpuGroup"

#endif
