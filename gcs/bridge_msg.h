/* GCS bridge message bodies (protocol v4, spec gcs-bridge.md §4-§9).
 *
 * For every message there is a builder (struct -> new JSON object, exact key
 * casing) and a parser (JSON object -> struct, keys case-insensitive, unknown
 * keys ignored, missing required keys -> RPC_INVALID_ARGUMENT). The host
 * builds requests and parses responses; the guest agent does the opposite.
 *
 * Ownership: `const char *` and borrowed `json_t *` members of a parsed struct
 * point into the body it was parsed from and are valid while that body lives.
 * Members marked "owned" (decoded JSON-in-string values) are released by the
 * struct's _clear function. Builders never take ownership of their inputs
 * (they incref/copy), and return NULL only on out-of-memory or bad input. */
#ifndef GCS_BRIDGE_MSG_H
#define GCS_BRIDGE_MSG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

#define GCS_NULL_CONTAINER_ID "00000000-0000-0000-0000-000000000000"
#define GCS_ZERO_ACTIVITY_ID "00000000-0000-0000-0000-000000000000"
#define GCS_PROTOCOL_VERSION 4u

/* vsock ports (§1.1) */
#define GCS_BRIDGE_PORT 0x40000000u
#define GCS_FIRST_STDIO_PORT 0x40000001u
#define GCS_ENTROPY_PORT 1u
#define GCS_LOG_PORT 109u
#define GCS_PLAN9_PORT 564u

/* HRESULTs (§10), as the signed 32-bit values carried in "Result". */
#define GCS_HR_OK ((int32_t)0)
#define GCS_HR_E_NOTIMPL ((int32_t)0x80004001u)
#define GCS_HR_E_FAIL ((int32_t)0x80004005u)
#define GCS_HR_NOT_FOUND ((int32_t)0x80070490u) /* process not found / exited */
#define GCS_HR_E_INVALIDARG ((int32_t)0x80070057u)
#define GCS_HR_TIMEOUT ((int32_t)0xC0370109u)
#define GCS_HR_UNKNOWN_MESSAGE ((int32_t)0xC037010Bu)
#define GCS_HR_UNSUPPORTED_PROTOCOL ((int32_t)0xC037010Cu)
#define GCS_HR_INVALID_JSON ((int32_t)0xC037010Du)
#define GCS_HR_SYSTEM_NOT_FOUND ((int32_t)0xC037010Eu) /* container not found */
#define GCS_HR_ALREADY_EXISTS ((int32_t)0xC037010Fu)
#define GCS_HR_INVALID_STATE ((int32_t)0x80370105u)
#define GCS_HR_ALREADY_STOPPED ((int32_t)0xC0370110u)

/* Short symbolic name ("E_NOTIMPL", ...) or NULL. */
const char *gcs_hresult_name(int32_t hr);
/* The gRPC code (common/error.h) a host reports for a guest HRESULT. */
int gcs_hresult_to_rpc_code(int32_t hr);

/* ---- envelope (§4) ------------------------------------------------------- */

struct gcs_request_base {
    const char *container_id; /* required */
    const char *activity_id;  /* builder: NULL -> zero GUID */
    json_t *otsc;             /* optional object of string -> string (borrowed) */
};

struct gcs_error_record {
    int32_t result;
    const char *message;
    const char *stack_trace;   /* may be NULL */
    const char *module_name;   /* "gcs" */
    const char *file_name;     /* may be "" */
    uint32_t line;             /* 4294967295 when unknown */
    const char *function_name; /* may be NULL */
};

struct gcs_response_base {
    int32_t result;            /* HRESULT, 0 = success */
    const char *activity_id;   /* left out when NULL/"" */
    const char *error_message; /* only on error */
    /* Parsed: borrowed array of records (json). Built: when result != 0 the
     * builder adds exactly one record {result, error_message, "gcs", "", -1}. */
    json_t *error_records;
};

/* Adds ContainerId, ActivityId (and otsc) to obj. */
int gcs_request_base_put(json_t *obj, const struct gcs_request_base *b);
int gcs_request_base_parse(const json_t *obj, struct gcs_request_base *b, shim_error_t **err);
json_t *gcs_request_base_build(const struct gcs_request_base *b);
/* Result, ActivityId, ErrorMessage, ErrorRecords in that order. */
int gcs_response_base_put(json_t *obj, const struct gcs_response_base *b);
json_t *gcs_response_base_build(const struct gcs_response_base *b);
int gcs_response_base_parse(const json_t *obj, struct gcs_response_base *b, shim_error_t **err);
/* Builds an error response body for any request (Result, ActivityId when
 * known, ErrorMessage, one ErrorRecord). */
json_t *gcs_error_response_build(int32_t hr, const char *activity_id, const char *message);
int gcs_error_record_parse(const json_t *rec, struct gcs_error_record *r, shim_error_t **err);

/* ---- NegotiateProtocol (§5) ----------------------------------------------- */

struct gcs_negotiate_request {
    struct gcs_request_base base;
    uint32_t minimum_version;
    uint32_t maximum_version;
};

struct gcs_capabilities {
    bool send_host_create_message;
    bool send_host_start_message;
    bool hv_socket_config_on_startup;
    bool send_lifecycle_notifications;
    bool modify_service_settings_supported;
    const char *runtime_os_type;       /* "Linux"; NULL if absent */
    json_t *supported_schema_versions; /* borrowed array of {Major,Minor}; builder: NULL -> [2.1] */
    /* GuestDefinedCapabilities (LCOW) */
    bool namespace_add_request_supported;
    bool signal_process_supported;
    bool dump_stacks_supported;
    bool delete_container_state_supported;
};

struct gcs_negotiate_response {
    struct gcs_response_base base;
    uint32_t version;
    struct gcs_capabilities capabilities;
};

json_t *gcs_negotiate_request_build(const struct gcs_negotiate_request *r);
int gcs_negotiate_request_parse(const json_t *obj, struct gcs_negotiate_request *r,
                                shim_error_t **err);
json_t *gcs_negotiate_response_build(const struct gcs_negotiate_response *r);
int gcs_negotiate_response_parse(const json_t *obj, struct gcs_negotiate_response *r,
                                 shim_error_t **err);
/* Fills the LCOW guest's capability set (all four guest-defined flags true). */
void gcs_capabilities_lcow_default(struct gcs_capabilities *c);

/* ---- Create (§6.1, §7.2) -------------------------------------------------- */

/* VMHostedContainerSettingsV2 */
struct gcs_container_config {
    int schema_major, schema_minor; /* builder: 0.0 -> 2.1 */
    const char *oci_bundle_path;
    json_t *oci_specification;    /* object (borrowed) */
    const char *scratch_dir_path; /* omitted when empty */
};

struct gcs_create_request {
    struct gcs_request_base base;
    json_t *container_config; /* decoded JSON-in-string; parse: owned */
};

struct gcs_create_response {
    struct gcs_response_base base;
    uint32_t selected_protocol_version; /* always 0 */
};

json_t *gcs_container_config_build(const struct gcs_container_config *c);
/* Requires SchemaVersion, OciBundlePath, OciSpecification (object). */
int gcs_container_config_parse(const json_t *obj, struct gcs_container_config *c,
                               shim_error_t **err);
json_t *gcs_create_request_build(const struct gcs_create_request *r);
int gcs_create_request_parse(const json_t *obj, struct gcs_create_request *r, shim_error_t **err);
void gcs_create_request_clear(struct gcs_create_request *r);
json_t *gcs_create_response_build(const struct gcs_create_response *r);
int gcs_create_response_parse(const json_t *obj, struct gcs_create_response *r, shim_error_t **err);

/* ---- ExecuteProcess (§6.4, §8) -------------------------------------------- */

/* ProcessParameters (JSON-in-string). All members optional; the builder
 * leaves out zero/empty ones. */
struct gcs_process_parameters {
    const char *command_line;
    json_t *command_args; /* array of strings (borrowed) */
    const char *working_directory;
    json_t *environment; /* object string -> string (borrowed) */
    bool emulate_console;
    bool create_stdin_pipe, create_stdout_pipe, create_stderr_pipe;
    bool create_in_utility_vm;
    json_t *oci_process;                    /* OCI "process" object (borrowed) */
    uint16_t console_height, console_width; /* ConsoleSize [h, w] when non-zero */
};

struct gcs_stdio_ports {
    uint32_t stdin_port, stdout_port, stderr_port; /* 0 = no pipe */
};

struct gcs_execute_process_request {
    struct gcs_request_base base;
    json_t *process_parameters;   /* decoded JSON-in-string object; parse: owned */
    struct gcs_stdio_ports ports; /* Settings.VsockStdioRelaySettings */
};

struct gcs_execute_process_response {
    struct gcs_response_base base;
    uint32_t process_id;
};

json_t *gcs_process_parameters_build(const struct gcs_process_parameters *p);
int gcs_process_parameters_parse(const json_t *obj, struct gcs_process_parameters *p,
                                 shim_error_t **err);
json_t *gcs_execute_process_request_build(const struct gcs_execute_process_request *r);
int gcs_execute_process_request_parse(const json_t *obj, struct gcs_execute_process_request *r,
                                      shim_error_t **err);
void gcs_execute_process_request_clear(struct gcs_execute_process_request *r);
json_t *gcs_execute_process_response_build(const struct gcs_execute_process_response *r);
int gcs_execute_process_response_parse(const json_t *obj, struct gcs_execute_process_response *r,
                                       shim_error_t **err);

/* ---- WaitForProcess (§6.5) ------------------------------------------------ */

#define GCS_WAIT_INFINITE 0xFFFFFFFFu

struct gcs_wait_process_request {
    struct gcs_request_base base;
    uint32_t process_id;
    uint32_t timeout_ms; /* GCS_WAIT_INFINITE = forever */
};

struct gcs_wait_process_response {
    struct gcs_response_base base;
    uint32_t exit_code; /* always sent, even 0; 4294967295 = UVM process killed */
};

json_t *gcs_wait_process_request_build(const struct gcs_wait_process_request *r);
int gcs_wait_process_request_parse(const json_t *obj, struct gcs_wait_process_request *r,
                                   shim_error_t **err);
json_t *gcs_wait_process_response_build(const struct gcs_wait_process_response *r);
int gcs_wait_process_response_parse(const json_t *obj, struct gcs_wait_process_response *r,
                                    shim_error_t **err);

/* ---- SignalProcess (§6.6) ------------------------------------------------- */

struct gcs_signal_process_request {
    struct gcs_request_base base;
    uint32_t process_id;
    bool has_options; /* Options present */
    int signal;       /* Options.Signal; 0 / no options = SIGKILL in the guest */
};

json_t *gcs_signal_process_request_build(const struct gcs_signal_process_request *r);
int gcs_signal_process_request_parse(const json_t *obj, struct gcs_signal_process_request *r,
                                     shim_error_t **err);

/* ---- ResizeConsole (§6.7) ------------------------------------------------- */

struct gcs_resize_console_request {
    struct gcs_request_base base;
    uint32_t process_id;
    uint16_t height, width;
};

json_t *gcs_resize_console_request_build(const struct gcs_resize_console_request *r);
int gcs_resize_console_request_parse(const json_t *obj, struct gcs_resize_console_request *r,
                                     shim_error_t **err);

/* ---- GetProperties (§6.8) ------------------------------------------------- */

#define GCS_PROPERTY_PROCESS_LIST 0x1u
#define GCS_PROPERTY_STATISTICS 0x2u

struct gcs_get_properties_request {
    struct gcs_request_base base;
    unsigned property_types; /* GCS_PROPERTY_* bits (unknown strings are ignored) */
    json_t *query;           /* parse: owned decoded Query (NULL if absent) */
};

struct gcs_get_properties_response {
    struct gcs_response_base base;
    json_t *properties; /* decoded JSON-in-string; parse: owned; build: NULL -> "{}" */
};

json_t *gcs_get_properties_request_build(const struct gcs_get_properties_request *r);
int gcs_get_properties_request_parse(const json_t *obj, struct gcs_get_properties_request *r,
                                     shim_error_t **err);
void gcs_get_properties_request_clear(struct gcs_get_properties_request *r);
json_t *gcs_get_properties_response_build(const struct gcs_get_properties_response *r);
int gcs_get_properties_response_parse(const json_t *obj, struct gcs_get_properties_response *r,
                                      shim_error_t **err);
void gcs_get_properties_response_clear(struct gcs_get_properties_response *r);
/* {"ProcessList":[{"ProcessId":N},...]} -> malloc'd pid array (caller frees). */
int gcs_properties_process_list(const json_t *properties, uint32_t **pids, size_t *count,
                                shim_error_t **err);
json_t *gcs_properties_process_list_build(const uint32_t *pids, size_t count);

/* ---- ModifySettings (§6.9, §9) -------------------------------------------- */

#define GCS_RESOURCE_MAPPED_VIRTUAL_DISK "MappedVirtualDisk"
#define GCS_RESOURCE_SCSI_DEVICE "SCSIDevice"
#define GCS_RESOURCE_MAPPED_DIRECTORY "MappedDirectory"
#define GCS_RESOURCE_VPMEM_DEVICE "VPMemDevice"
#define GCS_RESOURCE_COMBINED_LAYERS "CombinedLayers"
#define GCS_RESOURCE_NETWORK "Network"
#define GCS_RESOURCE_VPCI_DEVICE "VPCIDevice"
#define GCS_RESOURCE_CONTAINER_CONSTRAINTS "ContainerConstraints"
#define GCS_RESOURCE_SECURITY_POLICY "SecurityPolicy"
#define GCS_REQUEST_ADD "Add"
#define GCS_REQUEST_REMOVE "Remove"
#define GCS_REQUEST_UPDATE "Update"

struct gcs_modify_settings_request {
    struct gcs_request_base base;
    const char *resource_type;
    const char *request_type; /* parse: "Add" when absent */
    json_t *settings;         /* object (borrowed), may be NULL */
};

json_t *gcs_modify_settings_request_build(const struct gcs_modify_settings_request *r);
int gcs_modify_settings_request_parse(const json_t *obj, struct gcs_modify_settings_request *r,
                                      shim_error_t **err);

struct gcs_mapped_virtual_disk {
    const char *mount_path;
    uint8_t controller, lun;
    uint64_t partition;
    bool read_only, encrypted, block_dev, ensure_filesystem;
    json_t *options; /* array of strings (borrowed) */
    const char *filesystem;
};
json_t *gcs_mapped_virtual_disk_build(const struct gcs_mapped_virtual_disk *d);
int gcs_mapped_virtual_disk_parse(const json_t *obj, struct gcs_mapped_virtual_disk *d,
                                  shim_error_t **err);

struct gcs_scsi_device {
    uint8_t controller, lun;
};
json_t *gcs_scsi_device_build(const struct gcs_scsi_device *d);
int gcs_scsi_device_parse(const json_t *obj, struct gcs_scsi_device *d, shim_error_t **err);

struct gcs_mapped_directory {
    const char *mount_path;
    int32_t port;
    const char *share_name;
    bool read_only;
};
json_t *gcs_mapped_directory_build(const struct gcs_mapped_directory *d);
int gcs_mapped_directory_parse(const json_t *obj, struct gcs_mapped_directory *d,
                               shim_error_t **err);

struct gcs_vpmem_device {
    uint32_t device_number;
    const char *mount_path;
    bool has_mapping;
    uint64_t device_offset_in_bytes, device_size_in_bytes;
};
json_t *gcs_vpmem_device_build(const struct gcs_vpmem_device *d);
int gcs_vpmem_device_parse(const json_t *obj, struct gcs_vpmem_device *d, shim_error_t **err);

struct gcs_combined_layers {
    const char *container_id;
    const char *container_root_path;
    const char *const *layers; /* builder: layer paths, top-most first */
    size_t n_layers;
    json_t *layers_json; /* parse: borrowed array of {"Path":...} */
    const char *scratch_path;
};
json_t *gcs_combined_layers_build(const struct gcs_combined_layers *c);
/* Validates every layer has a string Path; use gcs_combined_layers_path(). */
int gcs_combined_layers_parse(const json_t *obj, struct gcs_combined_layers *c, shim_error_t **err);
const char *gcs_combined_layers_path(const struct gcs_combined_layers *c, size_t i);

/* ---- DumpStacks (§6.10) --------------------------------------------------- */

struct gcs_dump_stacks_response {
    struct gcs_response_base base;
    const char *guest_stacks;
};
json_t *gcs_dump_stacks_response_build(const struct gcs_dump_stacks_response *r);
int gcs_dump_stacks_response_parse(const json_t *obj, struct gcs_dump_stacks_response *r,
                                   shim_error_t **err);

/* Start, ShutdownGraceful/Forced, DeleteContainerState, DumpStacks requests
 * are the request base alone (gcs_request_base_build/parse); their responses
 * (except DumpStacks) the response base alone. */

/* ---- container notification (§6.14), type 0x30100101, ID 0 --------------- */

#define GCS_NOTIFY_UNEXPECTED_EXIT "UnexpectedExit"
#define GCS_NOTIFY_GRACEFUL_EXIT "GracefulExit"
#define GCS_NOTIFY_FORCED_EXIT "ForcedExit"

struct gcs_container_notification {
    struct gcs_request_base base; /* ContainerId, ActivityId (of the Create) */
    const char *type;             /* "UnexpectedExit" / "GracefulExit" / "ForcedExit" */
    const char *operation;        /* builder: NULL -> "None" */
    int32_t result;
    json_t *result_info; /* parse: owned decoded JSON-in-string, usually NULL */
};

json_t *gcs_container_notification_build(const struct gcs_container_notification *n);
int gcs_container_notification_parse(const json_t *obj, struct gcs_container_notification *n,
                                     shim_error_t **err);
void gcs_container_notification_clear(struct gcs_container_notification *n);

#endif
