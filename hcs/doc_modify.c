#include "hcs/doc_modify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hcs/schema.h"

#define VSMB_GUEST_PREFIX "\\\\?\\VMSMB\\VSMB-{dcc079ae-60ba-4d07-847c-3493609c0870}\\"

/* Returns obj, or NULL (releasing obj) when any put failed. */
static json_t *checked(json_t *obj, int rc)
{
    if (rc != 0) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

json_t *hcs_modify_request(const char *resource_path, const char *request_type, json_t *settings,
                           json_t *guest_request)
{
    json_t *r = json_object();
    if (r == NULL) {
        json_decref(settings);
        json_decref(guest_request);
        return NULL;
    }
    int rc = json_put_str(r, "ResourcePath", resource_path);
    rc |= json_put_str(r, "RequestType", request_type);
    if (settings != NULL)
        rc |= json_object_set_new(r, "Settings", settings);
    if (guest_request != NULL)
        rc |= json_object_set_new(r, "GuestRequest", guest_request);
    return checked(r, rc);
}

json_t *hcs_guest_request(const char *resource_type, const char *request_type, json_t *settings)
{
    json_t *r = json_object();
    if (r == NULL) {
        json_decref(settings);
        return NULL;
    }
    int rc = json_put_str(r, "ResourceType", resource_type);
    rc |= json_put_str(r, "RequestType", request_type);
    if (settings != NULL)
        rc |= json_object_set_new(r, "Settings", settings);
    return checked(r, rc);
}

json_t *hcs_guest_only_request(json_t *guest_request)
{
    if (guest_request == NULL)
        return NULL;
    return json_pack("{s:o}", "GuestRequest", guest_request);
}

/* Host request at a path produced by a hcs_path_* helper (freed here). */
static json_t *at_path(char *path, const char *request_type, json_t *settings)
{
    if (path == NULL) {
        json_decref(settings);
        return NULL;
    }
    json_t *r = hcs_modify_request(path, request_type, settings, NULL);
    free(path);
    return r;
}

/* ---- SCSI ---- */

json_t *hcs_scsi_attach_request(const struct hcs_scsi_attachment *a)
{
    if (a->path == NULL || a->controller >= HCS_SCSI_CONTROLLER_MAX ||
        a->lun >= HCS_SCSI_LUNS_PER_CONTROLLER)
        return NULL;
    json_t *s = json_object();
    if (s == NULL)
        return NULL;
    int rc = json_put_str(s, "Type", a->type ? a->type : "VirtualDisk");
    rc |= json_put_str(s, "Path", a->path);
    rc |= json_put_true(s, "ReadOnly", a->read_only);
    rc |= json_put_str(s, "ExtensibleVirtualDiskType", a->evd_type);
    if ((s = checked(s, rc)) == NULL)
        return NULL;
    return at_path(hcs_path_scsi(a->controller, a->lun), HCS_REQUEST_ADD, s);
}

json_t *hcs_scsi_detach_request(unsigned controller, unsigned lun)
{
    if (lun >= HCS_SCSI_LUNS_PER_CONTROLLER)
        return NULL;
    return at_path(hcs_path_scsi(controller, lun), HCS_REQUEST_REMOVE, NULL);
}

json_t *hcs_guest_lcow_mapped_disk(const char *request_type, const struct hcs_lcow_mapped_disk *d)
{
    bool add = request_type != NULL && strcmp(request_type, HCS_REQUEST_ADD) == 0;
    json_t *s = json_object();
    if (s == NULL || d->mount_path == NULL) {
        json_decref(s);
        return NULL;
    }
    int rc = json_put_str(s, "MountPath", d->mount_path);
    rc |= json_put_u64(s, "Lun", d->lun);
    rc |= json_put_u64(s, "Controller", d->controller);
    rc |= json_put_u64(s, "Partition", d->partition);
    rc |= json_put_true(s, "ReadOnly", d->read_only);
    if (add) {
        rc |= json_put_true(s, "Encrypted", d->encrypted);
        if (d->n_options > 0) {
            json_t *opts = json_array();
            for (size_t i = 0; opts != NULL && i < d->n_options; i++)
                rc |= json_array_append_new(opts, json_string(d->options[i]));
            rc |= json_put_new(s, "Options", opts);
        }
    }
    rc |= json_put_true(s, "BlockDev", d->block_dev);
    if (add) {
        rc |= json_put_true(s, "EnsureFilesystem", d->ensure_filesystem);
        rc |= json_put_str(s, "Filesystem", d->filesystem);
    }
    if ((s = checked(s, rc)) == NULL)
        return NULL;
    return hcs_guest_request("MappedVirtualDisk", request_type, s);
}

json_t *hcs_guest_scsi_unplug(unsigned controller, unsigned lun)
{
    json_t *s = json_object();
    if (s == NULL)
        return NULL;
    int rc = json_put_u64(s, "Controller", controller);
    rc |= json_put_u64(s, "Lun", lun);
    if ((s = checked(s, rc)) == NULL)
        return NULL;
    return hcs_guest_request("SCSIDevice", HCS_REQUEST_REMOVE, s);
}

json_t *hcs_guest_wcow_mapped_disk(const char *request_type, const char *container_path,
                                   unsigned lun)
{
    json_t *s = json_object();
    if (s == NULL || container_path == NULL) {
        json_decref(s);
        return NULL;
    }
    int rc = json_put_str(s, "ContainerPath", container_path);
    rc |= json_put_u64(s, "Lun", lun);
    if ((s = checked(s, rc)) == NULL)
        return NULL;
    return hcs_guest_request("MappedVirtualDisk", request_type, s);
}

/* ---- VPMem ---- */

json_t *hcs_vpmem_device_add(unsigned device, const char *host_path, bool read_only)
{
    if (host_path == NULL)
        return NULL;
    json_t *s = json_pack("{s:s}", "HostPath", host_path);
    if (s == NULL)
        return NULL;
    int rc = json_put_true(s, "ReadOnly", read_only);
    rc |= json_put_str(s, "ImageFormat", "Vhd1");
    if ((s = checked(s, rc)) == NULL)
        return NULL;
    return at_path(hcs_path_vpmem_device(device), HCS_REQUEST_ADD, s);
}

json_t *hcs_vpmem_device_remove(unsigned device)
{
    return at_path(hcs_path_vpmem_device(device), HCS_REQUEST_REMOVE, NULL);
}

json_t *hcs_vpmem_mapping_add(unsigned device, uint64_t offset, const char *host_path)
{
    if (host_path == NULL)
        return NULL;
    json_t *s = json_pack("{s:s,s:s}", "HostPath", host_path, "ImageFormat", "Vhd1");
    if (s == NULL)
        return NULL;
    return at_path(hcs_path_vpmem_mapping(device, offset), HCS_REQUEST_ADD, s);
}

json_t *hcs_vpmem_mapping_remove(unsigned device, uint64_t offset)
{
    return at_path(hcs_path_vpmem_mapping(device, offset), HCS_REQUEST_REMOVE, NULL);
}

json_t *hcs_guest_vpmem_device(const char *request_type, unsigned device, const char *mount_path,
                               uint64_t mapping_offset, uint64_t mapping_size)
{
    json_t *s = json_object();
    if (s == NULL || mount_path == NULL) {
        json_decref(s);
        return NULL;
    }
    int rc = json_put_u64(s, "DeviceNumber", device);
    rc |= json_put_str(s, "MountPath", mount_path);
    if (mapping_size > 0) {
        json_t *m = json_object();
        if (m != NULL) {
            rc |= json_put_u64(m, "DeviceOffsetInBytes", mapping_offset);
            rc |= json_put_u64(m, "DeviceSizeInBytes", mapping_size);
        }
        rc |= json_put_new(s, "MappingInfo", m);
    }
    if ((s = checked(s, rc)) == NULL)
        return NULL;
    return hcs_guest_request("VPMemDevice", request_type, s);
}

char *hcs_lcow_vpmem_mount_path(unsigned device, bool mapped, uint64_t offset, uint64_t size)
{
    char *out = NULL;
    int n = mapped ? asprintf(&out, "/run/layers/p%u-%llu-%llu", device, (unsigned long long)offset,
                              (unsigned long long)size)
                   : asprintf(&out, "/run/layers/p%u", device);
    return n < 0 ? NULL : out;
}

uint64_t hcs_page_align(uint64_t size)
{
    return (size + 4095) & ~(uint64_t)4095;
}

/* ---- Plan 9 ---- */

uint32_t hcs_plan9_flags(bool read_only, bool single_file)
{
    uint32_t flags = HCS_PLAN9_LINUX_METADATA;
    if (read_only)
        flags |= HCS_PLAN9_READ_ONLY;
    if (single_file)
        flags |= HCS_PLAN9_RESTRICT_FILE_ACCESS;
    return flags;
}

json_t *hcs_plan9_share_add(const char *name, const char *host_dir, bool read_only,
                            const char *allowed_file)
{
    if (name == NULL || host_dir == NULL)
        return NULL;
    json_t *s = json_pack("{s:s,s:s,s:s,s:i,s:i}", "Name", name, "AccessName", name, "Path",
                          host_dir, "Port", HCS_PLAN9_PORT, "Flags",
                          (int)hcs_plan9_flags(read_only, allowed_file != NULL));
    if (s == NULL)
        return NULL;
    if (allowed_file != NULL &&
        json_object_set_new(s, "AllowedFiles", json_pack("[s]", allowed_file)) < 0) {
        json_decref(s);
        return NULL;
    }
    return hcs_modify_request(HCS_PATH_PLAN9_SHARES, HCS_REQUEST_ADD, s, NULL);
}

json_t *hcs_plan9_share_remove(const char *name)
{
    if (name == NULL)
        return NULL;
    json_t *s =
        json_pack("{s:s,s:s,s:i}", "Name", name, "AccessName", name, "Port", HCS_PLAN9_PORT);
    return s ? hcs_modify_request(HCS_PATH_PLAN9_SHARES, HCS_REQUEST_REMOVE, s, NULL) : NULL;
}

json_t *hcs_guest_mapped_directory_add(const char *mount_path, const char *share_name,
                                       bool read_only)
{
    if (mount_path == NULL || share_name == NULL)
        return NULL;
    json_t *s = json_pack("{s:s,s:i,s:s}", "MountPath", mount_path, "Port", HCS_PLAN9_PORT,
                          "ShareName", share_name);
    if (s == NULL || (s = checked(s, json_put_true(s, "ReadOnly", read_only))) == NULL)
        return NULL;
    return hcs_guest_request("MappedDirectory", HCS_REQUEST_ADD, s);
}

json_t *hcs_guest_mapped_directory_remove(const char *mount_path, const char *share_name)
{
    if (mount_path == NULL || share_name == NULL)
        return NULL;
    json_t *s = json_pack("{s:s,s:s,s:i}", "MountPath", mount_path, "ShareName", share_name, "Port",
                          HCS_PLAN9_PORT);
    return s ? hcs_guest_request("MappedDirectory", HCS_REQUEST_REMOVE, s) : NULL;
}

/* ---- VSMB ---- */

struct hcs_vsmb_options hcs_vsmb_read_only_layer_options(bool no_direct_map)
{
    struct hcs_vsmb_options o = {
        .read_only = true,
        .share_read = true,
        .cache_io = true,
        .pseudo_oplocks = true,
        .take_backup_privilege = true,
        .no_directmap = no_direct_map,
    };
    return o;
}

static json_t *vsmb_options_doc(const struct hcs_vsmb_options *o)
{
    json_t *j = json_object();
    if (j == NULL)
        return NULL;
    int rc = json_put_true(j, "ReadOnly", o->read_only);
    rc |= json_put_true(j, "ShareRead", o->share_read);
    rc |= json_put_true(j, "CacheIo", o->cache_io);
    rc |= json_put_true(j, "NoOplocks", o->no_oplocks);
    rc |= json_put_true(j, "TakeBackupPrivilege", o->take_backup_privilege);
    rc |= json_put_true(j, "NoDirectmap", o->no_directmap);
    rc |= json_put_true(j, "NoLocks", o->no_locks);
    rc |= json_put_true(j, "PseudoOplocks", o->pseudo_oplocks);
    rc |= json_put_true(j, "PseudoDirnotify", o->pseudo_dir_notify);
    rc |= json_put_true(j, "RestrictFileAccess", o->restrict_file_access);
    rc |= json_put_true(j, "SingleFileMapping", o->single_file_mapping);
    return checked(j, rc);
}

json_t *hcs_vsmb_share_request(const char *request_type, const char *name, const char *path,
                               const struct hcs_vsmb_options *opts,
                               const char *const *allowed_files, size_t n_allowed)
{
    if (name == NULL || path == NULL || opts == NULL)
        return NULL;
    json_t *s = json_pack("{s:s,s:s}", "Name", name, "Path", path);
    if (s == NULL)
        return NULL;
    int rc = 0;
    if (n_allowed > 0) {
        json_t *files = json_array();
        for (size_t i = 0; files != NULL && i < n_allowed; i++)
            rc |= json_array_append_new(files, json_string(allowed_files[i]));
        rc |= json_put_new(s, "AllowedFiles", files);
    }
    rc |= json_put_nonempty(s, "Options", vsmb_options_doc(opts));
    if ((s = checked(s, rc)) == NULL)
        return NULL;
    return hcs_modify_request(HCS_PATH_VSMB_SHARES, request_type, s, NULL);
}

json_t *hcs_vsmb_share_remove(const char *name)
{
    if (name == NULL)
        return NULL;
    json_t *s = json_pack("{s:s}", "Name", name);
    return s ? hcs_modify_request(HCS_PATH_VSMB_SHARES, HCS_REQUEST_REMOVE, s, NULL) : NULL;
}

char *hcs_vsmb_guest_path(const char *name)
{
    char *out = NULL;
    return asprintf(&out, VSMB_GUEST_PREFIX "%s", name) < 0 ? NULL : out;
}

/* ---- Network ---- */

json_t *hcs_network_adapter_request(const char *request_type, const char *nic_id,
                                    const char *endpoint_id, const char *mac, json_t *guest)
{
    json_t *s = json_object();
    if (s == NULL || nic_id == NULL) {
        json_decref(s);
        json_decref(guest);
        return NULL;
    }
    int rc = json_put_str(s, "EndpointId", endpoint_id);
    rc |= json_put_str(s, "MacAddress", mac);
    if ((s = checked(s, rc)) == NULL) {
        json_decref(guest);
        return NULL;
    }
    char *path = hcs_path_network_adapter(nic_id);
    if (path == NULL) {
        json_decref(s);
        json_decref(guest);
        return NULL;
    }
    json_t *r = hcs_modify_request(path, request_type, s, guest);
    free(path);
    return r;
}

static json_t *ip_configs_doc(const struct hcs_lcow_network_adapter *a)
{
    json_t *arr = json_array();
    int rc = arr == NULL ? -1 : 0;
    for (size_t i = 0; rc == 0 && i < a->n_ip_configs; i++) {
        json_t *c = json_object();
        rc |= c == NULL ? -1 : 0;
        if (c != NULL) {
            rc |= json_put_str(c, "IPAddress", a->ip_configs[i].address);
            rc |= json_put_u64(c, "PrefixLength", a->ip_configs[i].prefix_length);
        }
        rc |= json_array_append_new(arr, c);
    }
    return checked(arr, rc);
}

static json_t *routes_doc(const struct hcs_lcow_network_adapter *a)
{
    json_t *arr = json_array();
    int rc = arr == NULL ? -1 : 0;
    for (size_t i = 0; rc == 0 && i < a->n_routes; i++) {
        json_t *r = json_object();
        rc |= r == NULL ? -1 : 0;
        if (r != NULL) {
            rc |= json_put_str(r, "NextHop", a->routes[i].next_hop);
            rc |= json_put_str(r, "DestinationPrefix", a->routes[i].destination_prefix);
            rc |= json_put_u64(r, "Metric", a->routes[i].metric);
        }
        rc |= json_array_append_new(arr, r);
    }
    return checked(arr, rc);
}

json_t *hcs_guest_lcow_network_add(const struct hcs_lcow_network_adapter *a)
{
    json_t *s = json_object();
    if (s == NULL)
        return NULL;
    int rc = json_put_str(s, "NamespaceID", a->namespace_id);
    rc |= json_put_str(s, "ID", a->nic_id);
    rc |= json_put_str(s, "MacAddress", a->mac);
    rc |= json_put_str(s, "DNSSuffix", a->dns_suffix);
    rc |= json_put_str(s, "DNSServerList", a->dns_servers);
    rc |= json_put_u64(s, "EncapOverhead", a->encap_overhead);
    rc |= json_put_true(s, "VPCIAssigned", a->vpci_assigned);
    rc |= json_put_nonempty(s, "IPConfigs", ip_configs_doc(a));
    rc |= json_put_nonempty(s, "Routes", routes_doc(a));
    rc |= json_put_true(s, "PolicyBasedRouting", a->policy_based_routing);
    rc |= json_put_true(s, "EnableLowMetric", a->enable_low_metric);
    if ((s = checked(s, rc)) == NULL)
        return NULL;
    return hcs_guest_request("Network", HCS_REQUEST_ADD, s);
}

json_t *hcs_guest_lcow_network_remove(const char *namespace_id, const char *nic_id)
{
    json_t *s = json_object();
    if (s == NULL)
        return NULL;
    int rc = json_put_str(s, "NamespaceID", namespace_id);
    rc |= json_put_str(s, "ID", nic_id);
    if ((s = checked(s, rc)) == NULL)
        return NULL;
    return hcs_guest_request("Network", HCS_REQUEST_REMOVE, s);
}

json_t *hcs_guest_wcow_namespace_add(json_t *hcn_namespace)
{
    if (hcn_namespace == NULL)
        return NULL;
    json_incref(hcn_namespace);
    return hcs_guest_request("NetworkNamespace", HCS_REQUEST_ADD, hcn_namespace);
}

json_t *hcs_guest_wcow_nic_preadd(const char *nic_id, json_t *hns_endpoint)
{
    if (nic_id == NULL || hns_endpoint == NULL)
        return NULL;
    json_t *s = json_pack("{s:s,s:s,s:O}", "AdapterId", nic_id, "RequestType", "PreAdd", "Settings",
                          hns_endpoint);
    return s ? hcs_guest_request("Network", HCS_REQUEST_ADD, s) : NULL;
}

json_t *hcs_wcow_nic_add(const char *nic_id, const char *endpoint_id, const char *mac)
{
    if (nic_id == NULL)
        return NULL;
    json_t *guest = hcs_guest_request(
        "Network", HCS_REQUEST_ADD,
        json_pack("{s:s,s:s}", "AdapterId", nic_id, "RequestType", HCS_REQUEST_ADD));
    if (guest == NULL)
        return NULL;
    return hcs_network_adapter_request(HCS_REQUEST_ADD, nic_id, endpoint_id, mac, guest);
}

json_t *hcs_wcow_nic_remove(const char *nic_id, const char *endpoint_id, const char *mac)
{
    if (nic_id == NULL)
        return NULL;
    /* hcsshim's quirk: no ResourceType in this guest request. */
    json_t *guest = json_pack("{s:s,s:{s:s,s:s}}", "RequestType", HCS_REQUEST_REMOVE, "Settings",
                              "AdapterId", nic_id, "RequestType", HCS_REQUEST_REMOVE);
    if (guest == NULL)
        return NULL;
    return hcs_network_adapter_request(HCS_REQUEST_REMOVE, nic_id, endpoint_id, mac, guest);
}

/* ---- Combined layers ---- */

json_t *hcs_guest_lcow_combined_layers_add(const char *container_id, const char *root_path,
                                           const char *const *layer_paths, size_t n_layers,
                                           const char *scratch_path)
{
    json_t *layers = json_array();
    if (layers == NULL || root_path == NULL) {
        json_decref(layers);
        return NULL;
    }
    int rc = 0;
    for (size_t i = 0; i < n_layers; i++)
        rc |= json_array_append_new(layers, json_pack("{s:s}", "Path", layer_paths[i]));
    json_t *s = json_object();
    if (s == NULL || rc != 0) {
        json_decref(s);
        json_decref(layers);
        return NULL;
    }
    rc |= json_put_str(s, "ContainerID", container_id);
    rc |= json_put_str(s, "ContainerRootPath", root_path);
    rc |= json_put_nonempty(s, "Layers", layers);
    rc |= json_put_str(s, "ScratchPath", scratch_path);
    if ((s = checked(s, rc)) == NULL)
        return NULL;
    return hcs_guest_request("CombinedLayers", HCS_REQUEST_ADD, s);
}

json_t *hcs_guest_lcow_combined_layers_remove(const char *root_path)
{
    if (root_path == NULL)
        return NULL;
    json_t *s = json_pack("{s:s}", "ContainerRootPath", root_path);
    return s ? hcs_guest_request("CombinedLayers", HCS_REQUEST_REMOVE, s) : NULL;
}

json_t *hcs_guest_wcow_combined_layers_add(const char *root_path, const char *const *layer_ids,
                                           const char *const *layer_paths, size_t n_layers,
                                           const char *scratch_path)
{
    if (root_path == NULL)
        return NULL;
    json_t *layers = json_array();
    int rc = layers == NULL ? -1 : 0;
    for (size_t i = 0; rc == 0 && i < n_layers; i++)
        rc |= json_array_append_new(
            layers, json_pack("{s:s,s:s}", "Id", layer_ids[i], "Path", layer_paths[i]));
    json_t *s = json_object();
    if (s == NULL || rc != 0) {
        json_decref(s);
        json_decref(layers);
        return NULL;
    }
    rc |= json_put_str(s, "ContainerRootPath", root_path);
    rc |= json_put_nonempty(s, "Layers", layers);
    rc |= json_put_str(s, "ScratchPath", scratch_path);
    if ((s = checked(s, rc)) == NULL)
        return NULL;
    return hcs_guest_request("CombinedLayers", HCS_REQUEST_ADD, s);
}

json_t *hcs_guest_wcow_hvsocket_update(const char *runtime_id)
{
    if (runtime_id == NULL)
        return NULL;
    json_t *s = json_pack("{s:s,s:s}", "LocalAddress", runtime_id, "ParentAddress",
                          "894cc2d6-9d79-424f-93fe-42969ae6d8d1");
    return s ? hcs_guest_request("HvSocket", HCS_REQUEST_UPDATE, s) : NULL;
}

json_t *hcs_guest_container_constraints(bool linux_resources, json_t *resources)
{
    if (resources == NULL)
        return NULL;
    json_t *s = json_pack("{s:O}", linux_resources ? "Linux" : "Windows", resources);
    return s ? hcs_guest_request("ContainerConstraints", HCS_REQUEST_UPDATE, s) : NULL;
}

json_t *hcs_memory_size_update(uint64_t size_mb)
{
    if (size_mb == 0 || size_mb > (uint64_t)INT64_MAX)
        return NULL;
    return hcs_modify_request(HCS_PATH_MEMORY_SIZE, NULL, json_integer((json_int_t)size_mb), NULL);
}

json_t *hcs_processor_limits_update(uint64_t limit, uint64_t weight, uint64_t reservation,
                                    uint64_t max_frequency_mhz)
{
    json_t *s = json_object();
    if (s == NULL)
        return NULL;
    int rc = json_put_u64(s, "Limit", limit);
    rc |= json_put_u64(s, "Weight", weight);
    rc |= json_put_u64(s, "Reservation", reservation);
    rc |= json_put_u64(s, "MaximumFrequencyMHz", max_frequency_mhz);
    if ((s = checked(s, rc)) == NULL)
        return NULL;
    return hcs_modify_request(HCS_PATH_CPU_LIMITS, HCS_REQUEST_UPDATE, s, NULL);
}
