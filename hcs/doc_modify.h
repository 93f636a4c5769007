/* Modify requests (hcs-documents.md 6): the host ModifySettingRequest sent
 * with HcsModifyComputeSystem and the guest ModificationRequest sent over the
 * GCS bridge (ModifySettings). Every builder returns a new reference or NULL
 * on allocation failure / invalid argument; zero-valued settings are omitted
 * as hcsshim does (so LUN 0, controller 0, device 0 and offset 0 never appear
 * in guest settings). */
#ifndef HCS_DOC_MODIFY_H
#define HCS_DOC_MODIFY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HCS_REQUEST_ADD "Add"
#define HCS_REQUEST_REMOVE "Remove"
#define HCS_REQUEST_UPDATE "Update"

/* {"ResourcePath","RequestType","Settings","GuestRequest"}; settings and
 * guest_request are stolen and may be NULL (then omitted). */
json_t *hcs_modify_request(const char *resource_path, const char *request_type, json_t *settings,
                           json_t *guest_request);
/* {"ResourceType","RequestType","Settings"}; settings stolen, may be NULL. */
json_t *hcs_guest_request(const char *resource_type, const char *request_type, json_t *settings);
/* Guest-only wrapper {"GuestRequest":<guest>} (guest stolen). */
json_t *hcs_guest_only_request(json_t *guest_request);

/* ---- SCSI (6.2) ---- */
struct hcs_scsi_attachment {
    unsigned controller, lun;
    const char *path;
    const char *type;     /* "VirtualDisk" (NULL), "PassThru" or "ExtensibleVirtualDisk" */
    const char *evd_type; /* ExtensibleVirtualDiskType for EVD */
    bool read_only;
};
json_t *hcs_scsi_attach_request(const struct hcs_scsi_attachment *a);
json_t *hcs_scsi_detach_request(unsigned controller, unsigned lun);

struct hcs_lcow_mapped_disk {
    const char *mount_path;
    unsigned lun, controller;
    uint64_t partition;
    bool read_only, encrypted;
    const char *const *options; /* mount options, e.g. {"ro"} */
    size_t n_options;
    bool block_dev;
    bool ensure_filesystem;
    const char *filesystem;
};
/* MappedVirtualDisk Add (all fields) or Remove (MountPath, Lun, Controller,
 * Partition, ReadOnly, BlockDev). */
json_t *hcs_guest_lcow_mapped_disk(const char *request_type, const struct hcs_lcow_mapped_disk *d);
/* SCSIDevice Remove {"Controller","Lun"} (guest unplug before detach). */
json_t *hcs_guest_scsi_unplug(unsigned controller, unsigned lun);
/* WCOW MappedVirtualDisk {"ContainerPath","Lun"}. */
json_t *hcs_guest_wcow_mapped_disk(const char *request_type, const char *container_path,
                                   unsigned lun);

/* ---- VPMem (6.3) ---- */
json_t *hcs_vpmem_device_add(unsigned device, const char *host_path, bool read_only);
json_t *hcs_vpmem_device_remove(unsigned device);
json_t *hcs_vpmem_mapping_add(unsigned device, uint64_t offset, const char *host_path);
json_t *hcs_vpmem_mapping_remove(unsigned device, uint64_t offset);
/* VPMemDevice guest request; mapping_size 0 means a whole-device layer (no
 * MappingInfo). */
json_t *hcs_guest_vpmem_device(const char *request_type, unsigned device, const char *mount_path,
                               uint64_t mapping_offset, uint64_t mapping_size);
/* /run/layers/p<dev> or /run/layers/p<dev>-<off>-<size>; heap string. */
char *hcs_lcow_vpmem_mount_path(unsigned device, bool mapped, uint64_t offset, uint64_t size);
/* Rounds a file size up to the 4 KiB page. */
uint64_t hcs_page_align(uint64_t size);

/* ---- Plan 9 (6.4) ---- */
#define HCS_PLAN9_PORT 564
#define HCS_PLAN9_READ_ONLY 0x1
#define HCS_PLAN9_LINUX_METADATA 0x4
#define HCS_PLAN9_CASE_SENSITIVE 0x8
#define HCS_PLAN9_USE_SHARE_ROOT_IDENTITY 0x10
#define HCS_PLAN9_RESTRICT_FILE_ACCESS 0x80
#define HCS_PLAN9_UNLIMITED_CONNECTIONS 0x100
/* Flags for a share: LinuxMetadata, + ReadOnly, + RestrictFileAccess. */
uint32_t hcs_plan9_flags(bool read_only, bool single_file);
/* `allowed_file` NULL for a directory share. */
json_t *hcs_plan9_share_add(const char *name, const char *host_dir, bool read_only,
                            const char *allowed_file);
json_t *hcs_plan9_share_remove(const char *name);
json_t *hcs_guest_mapped_directory_add(const char *mount_path, const char *share_name,
                                       bool read_only);
json_t *hcs_guest_mapped_directory_remove(const char *mount_path, const char *share_name);

/* ---- VSMB (6.5, WCOW) ---- */
struct hcs_vsmb_options {
    bool read_only, share_read, cache_io, pseudo_oplocks, take_backup_privilege;
    bool no_directmap, restrict_file_access, single_file_mapping;
    bool no_oplocks, no_locks, pseudo_dir_notify;
};
/* Read-only layer options, plus NoDirectmap when requested. */
struct hcs_vsmb_options hcs_vsmb_read_only_layer_options(bool no_direct_map);
/* Add or Update of a share; allowed_files may be NULL/0. */
json_t *hcs_vsmb_share_request(const char *request_type, const char *name, const char *path,
                               const struct hcs_vsmb_options *opts,
                               const char *const *allowed_files, size_t n_allowed);
json_t *hcs_vsmb_share_remove(const char *name);
/* \\?\VMSMB\VSMB-{dcc079ae-60ba-4d07-847c-3493609c0870}\<name>; heap. */
char *hcs_vsmb_guest_path(const char *name);

/* ---- Network (6.6) ---- */
json_t *hcs_network_adapter_request(const char *request_type, const char *nic_id,
                                    const char *endpoint_id, const char *mac, json_t *guest);

struct hcs_ip_config {
    const char *address;
    uint8_t prefix_length;
};
struct hcs_route {
    const char *next_hop, *destination_prefix;
    uint16_t metric;
};
struct hcs_lcow_network_adapter {
    const char *namespace_id, *nic_id, *mac;
    const char *dns_suffix, *dns_servers; /* comma-joined */
    uint32_t encap_overhead;
    bool vpci_assigned;
    const struct hcs_ip_config *ip_configs;
    size_t n_ip_configs;
    const struct hcs_route *routes;
    size_t n_routes;
    bool policy_based_routing, enable_low_metric;
};
/* Network Add with the full LCOWNetworkAdapter. */
json_t *hcs_guest_lcow_network_add(const struct hcs_lcow_network_adapter *a);
/* Network Remove {"NamespaceID","ID"}. */
json_t *hcs_guest_lcow_network_remove(const char *namespace_id, const char *nic_id);
/* WCOW: NetworkNamespace Add (namespace JSON borrowed). */
json_t *hcs_guest_wcow_namespace_add(json_t *hcn_namespace);
/* WCOW: Network Add {"AdapterId","RequestType":"PreAdd","Settings":<endpoint>}. */
json_t *hcs_guest_wcow_nic_preadd(const char *nic_id, json_t *hns_endpoint);
/* WCOW host NIC add/remove with the embedded guest request (6.6 quirks). */
json_t *hcs_wcow_nic_add(const char *nic_id, const char *endpoint_id, const char *mac);
json_t *hcs_wcow_nic_remove(const char *nic_id, const char *endpoint_id, const char *mac);

/* ---- Combined layers (4.3) ---- */
/* LCOW CombinedLayers Add; layer_paths are guest paths, top-most first. */
json_t *hcs_guest_lcow_combined_layers_add(const char *container_id, const char *root_path,
                                           const char *const *layer_paths, size_t n_layers,
                                           const char *scratch_path);
json_t *hcs_guest_lcow_combined_layers_remove(const char *root_path);

/* WCOW CombinedLayers Add {ContainerRootPath, Layers:[{Id,Path}], ScratchPath}. */
json_t *hcs_guest_wcow_combined_layers_add(const char *root_path, const char *const *layer_ids,
                                           const char *const *layer_paths, size_t n_layers,
                                           const char *scratch_path);

/* ---- Other requests (6.1, 6.7) ---- */
/* WCOW bridge setup: HvSocket Update {"LocalAddress":<RuntimeId>,
 * "ParentAddress":"894cc2d6-9d79-424f-93fe-42969ae6d8d1"}. */
json_t *hcs_guest_wcow_hvsocket_update(const char *runtime_id);
/* ContainerConstraints Update {"Linux":<LinuxResources>} or {"Windows":...};
 * `resources` borrowed. Sent with the container's id, not the null id. */
json_t *hcs_guest_container_constraints(bool linux_resources, json_t *resources);
/* Memory resize: Settings is a bare number and there is no RequestType. */
json_t *hcs_memory_size_update(uint64_t size_mb);
/* CPU limits Update {"Limit","Weight","Reservation","MaximumFrequencyMHz"}. */
json_t *hcs_processor_limits_update(uint64_t limit, uint64_t weight, uint64_t reservation,
                                    uint64_t max_frequency_mhz);

#endif
