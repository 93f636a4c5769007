#include "uvm/doc_uvm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hcs/schema.h"

/* Log-forwarding hvsocket service in the WCOW UVM (HEAD). */
#define WCOW_LOG_FORWARD_SERVICE "172dad59-976d-45f2-8b6c-6d1b13f2ac4d"

int uvm_wcow_verify_options(const struct uvm_wcow_options *o, shim_error_t **err)
{
    if (uvm_verify_common(&o->common, err) < 0)
        return -1;
    if (o->uvm_image_path == NULL || o->uvm_image_path[0] == '\0')
        return error_set(err, RPC_INVALID_ARGUMENT,
                         "UVM options incorrect: the UVM image path must be set");
    if (o->scratch_path == NULL || o->scratch_path[0] == '\0')
        return error_set(err, RPC_INVALID_ARGUMENT,
                         "UVM options incorrect: the UVM scratch path must be set");
    return 0;
}

static json_t *reg_dword(const char *hive, const char *key, const char *name, int value)
{
    return json_pack("{s:{s:s,s:s},s:s,s:s,s:i}", "Key", "Hive", hive, "Name", key, "Name", name,
                     "Type", "DWord", "DWordValue", value);
}

static json_t *registry_changes(const struct uvm_wcow_options *o)
{
    json_t *values = json_array();
    if (values == NULL)
        return NULL;
    int rc = 0;
    if (!o->disable_compartment_namespace)
        rc |= json_array_append_new(values, reg_dword("System", "CurrentControlSet\\Services\\gns",
                                                      "EnableCompartmentNamespace", 1));
    const char *dump = o->common.process_dump_location;
    if (dump != NULL && dump[0] != '\0') {
        rc |= json_array_append_new(
            values, reg_dword("System", "ControlSet001\\Services\\WerSvc", "Start", 2));
        rc |= json_array_append_new(
            values,
            reg_dword("Software", "Microsoft\\Windows\\Windows Error Reporting", "Disabled", 1));
    }
    if (rc != 0) {
        json_decref(values);
        return NULL;
    }
    if (json_array_size(values) == 0) {
        json_decref(values);
        return json_object();
    }
    return json_pack("{s:o}", "AddValues", values);
}

static json_t *hvsocket_doc(const struct uvm_wcow_options *o)
{
    json_t *cfg = json_pack("{s:s}", "DefaultBindSecurityDescriptor", HCS_HVSOCKET_DEFAULT_SDDL);
    if (cfg == NULL || !o->forward_logs)
        return cfg ? json_pack("{s:o}", "HvSocketConfig", cfg) : NULL;
    json_t *table =
        json_pack("{s:{s:s,s:s,s:b}}", WCOW_LOG_FORWARD_SERVICE, "BindSecurityDescriptor",
                  HCS_HVSOCKET_DEFAULT_SDDL, "ConnectSecurityDescriptor", HCS_HVSOCKET_DEFAULT_SDDL,
                  "AllowWildcardBinds", 1);
    if (json_put_new(cfg, "ServiceTable", table) < 0) {
        json_decref(cfg);
        return NULL;
    }
    return json_pack("{s:o}", "HvSocketConfig", cfg);
}

static json_t *vsmb_doc(const struct uvm_wcow_options *o)
{
    char *files = uvm_join_path(o->uvm_image_path, "UtilityVM\\Files");
    if (files == NULL)
        return NULL;
    json_t *options = json_pack("{s:b,s:b,s:b,s:b,s:b}", "ReadOnly", 1, "ShareRead", 1, "CacheIo",
                                1, "PseudoOplocks", 1, "TakeBackupPrivilege", 1);
    if (options != NULL && (o->common.fully_physically_backed || o->no_direct_map))
        json_object_set_new(options, "NoDirectmap", json_true());
    json_t *vsmb = json_pack("{s:i,s:[{s:s,s:s,s:o}]}", "DirectFileMappingInMB", 1024, "Shares",
                             "Name", "os", "Path", files, "Options", options);
    free(files);
    return vsmb;
}

static json_t *devices_doc(const struct uvm_wcow_options *o)
{
    json_t *d = json_object();
    if (d == NULL)
        return NULL;
    int rc = uvm_doc_console_devices(d, &o->common);
    rc |=
        json_put_new(d, "Scsi",
                     json_pack("{s:{s:{s:{s:s,s:s}}}}", hcs_scsi_controller_guids[0], "Attachments",
                               "0", "Type", "VirtualDisk", "Path", o->scratch_path));
    rc |= json_put_new(d, "HvSocket", hvsocket_doc(o));
    rc |= json_put_new(d, "VirtualSmb", vsmb_doc(o));
    if (rc != 0) {
        json_decref(d);
        return NULL;
    }
    return d;
}

static json_t *virtual_machine_doc(const struct uvm_wcow_options *o)
{
    json_t *vm = json_object();
    if (vm == NULL)
        return NULL;
    int rc = json_put_true(vm, "StopOnReset", true);
    rc |= json_put_new(vm, "Chipset",
                       json_pack("{s:{s:{s:s,s:s}}}", "Uefi", "BootThis", "DevicePath",
                                 "\\EFI\\Microsoft\\Boot\\bootmgfw.efi", "DeviceType", "VmbFs"));
    rc |= json_put_new(vm, "ComputeTopology", uvm_doc_compute_topology(&o->common, true, false));
    rc |= json_put_new(vm, "Devices", devices_doc(o));
    rc |= json_put_nonempty(vm, "RegistryChanges", registry_changes(o));
    json_t *qos = uvm_doc_storage_qos(&o->common);
    if (qos != NULL)
        rc |= json_put_new(vm, "StorageQoS", qos);
    rc |= json_put_str(vm, "ResourcePartitionId", o->common.resource_partition_id);
    if (rc != 0) {
        json_decref(vm);
        return NULL;
    }
    return vm;
}

json_t *uvm_wcow_document(const struct uvm_wcow_options *o, shim_error_t **err)
{
    if (uvm_wcow_verify_options(o, err) < 0)
        return NULL;
    json_t *doc = json_object();
    int rc = doc == NULL ? -1 : 0;
    if (rc == 0) {
        rc |= json_put_str(doc, "Owner", o->common.owner);
        rc |= json_put_new(doc, "SchemaVersion", hcs_schema_version());
        rc |= json_put_new(doc, "VirtualMachine", virtual_machine_doc(o));
        rc |= json_put_true(doc, "ShouldTerminateOnLastHandleClosed", true);
    }
    if (rc != 0) {
        json_decref(doc);
        error_set(err, RPC_RESOURCE_EXHAUSTED, "building the WCOW UVM document failed");
        return NULL;
    }
    return doc;
}
