#include "uvm/doc_uvm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/strbuf.h"
#include "hcs/schema.h"

static bool nonempty(const char *s)
{
    return s != NULL && s[0] != '\0';
}

int uvm_lcow_verify_options(const struct uvm_lcow_options *o, shim_error_t **err)
{
    if (uvm_verify_common(&o->common, err) < 0)
        return -1;
    const struct uvm_host *h = &o->common.host;
    const char *why = NULL;
    if (o->scsi_controller_count > HCS_SCSI_CONTROLLER_MAX)
        why = "SCSI controller count can't be more than 4";
    else if (o->vpmem_device_count > UVM_MAX_VPMEM_COUNT)
        why = "VPMem device count cannot be greater than 128";
    else if (o->vpmem_device_count > 0 && o->vpmem_size_bytes % 4096 != 0)
        why = "VPMemSizeBytes must be a multiple of 4096";
    else if (o->vpmem_size_bytes > (uint64_t)INT64_MAX)
        why = "VPMemSizeBytes is too large";
    else if (o->kernel_direct && h->build < UVM_BUILD_KERNEL_DIRECT)
        why = "KernelDirectBoot is not supported on builds older than 18286";
    else if (o->enable_cold_discard_hint && h->build < UVM_BUILD_COLD_DISCARD)
        why = "EnableColdDiscardHint is not supported on builds older than 18967";
    else if (!nonempty(o->boot_files_path) || !nonempty(o->kernel_file) ||
             !nonempty(o->rootfs_file) || !nonempty(o->exec_command_line))
        why = "boot files path, kernel, rootfs and exec command line must be set";
    if (why != NULL)
        return error_set(err, RPC_INVALID_ARGUMENT, "UVM options incorrect: %s", why);
    return 0;
}

/* The rootfs part of the command line (step 1); may be empty. */
static const char *rootfs_args(const struct uvm_lcow_options *o, char *buf, size_t size)
{
    if (o->rootfs_type == UVM_ROOTFS_VHD)
        return o->vpmem_device_count > 0 ? "root=/dev/pmem0 ro rootwait init=/init"
                                         : "root=/dev/sda ro rootwait init=/init";
    if (o->kernel_direct)
        return "";
    snprintf(buf, size, "initrd=/%s", o->rootfs_file);
    return buf;
}

static void write_exec_part(struct strbuf *sb, const struct uvm_lcow_options *o)
{
    strbuf_adds(sb, "/bin/vsockexec");
    if (o->forward_stdout)
        strbuf_adds(sb, " -o 109");
    if (o->forward_stderr)
        strbuf_adds(sb, " -e 109");
    strbuf_addf(sb, " %s", o->exec_command_line);
    if (o->disable_time_sync)
        strbuf_adds(sb, " -disable-time-sync");
    if (o->disable_log_scrubbing)
        strbuf_adds(sb, " -scrub-logs=false");
    if (nonempty(o->common.process_dump_location))
        strbuf_addf(sb, " -core-dump-location %s", o->common.process_dump_location);
}

static void write_init_args(struct strbuf *sb, const struct uvm_lcow_options *o)
{
    strbuf_adds(sb, "-e 1");
    if (o->writable_overlay_dirs && o->rootfs_type == UVM_ROOTFS_VHD)
        strbuf_adds(sb, " -w");
    bool console = nonempty(o->common.console_pipe);
    strbuf_adds(sb, console ? " sh -c \"" : " ");
    write_exec_part(sb, o);
    if (console)
        strbuf_adds(sb, " & exec sh\"");
}

char *uvm_lcow_kernel_cmdline(const struct uvm_lcow_options *o)
{
    struct strbuf buffer = STRBUF_INIT;
    struct strbuf *sb = &buffer;
    char buf[512];
    const struct uvm_common_options *c = &o->common;
    bool console = nonempty(c->console_pipe);
    strbuf_adds(sb, rootfs_args(o, buf, sizeof(buf)));
    strbuf_adds(sb, " initcall_blacklist=virtio_vsock_init");
    if (console)
        strbuf_addf(sb, " 8250_core.nr_uarts=1 8250_core.skip_txen_test=1 console=%s,115200",
                    c->host.arm64 ? "ttyAMA0" : "ttyS0");
    else if (!c->host.arm64)
        strbuf_adds(sb, " 8250_core.nr_uarts=0");
    if (c->enable_graphics_console)
        strbuf_adds(sb, " console=tty");
    if (!console && !c->enable_graphics_console)
        strbuf_adds(sb, " panic=-1 quiet");
    if (nonempty(o->kernel_boot_options))
        strbuf_addf(sb, " %s", o->kernel_boot_options);
    if (!o->vpci_enabled)
        strbuf_adds(sb, " pci=off");
    strbuf_addf(sb, " nr_cpus=%d brd.rd_nr=0 pmtmr=0 -- ", (int)c->processor_count);
    write_init_args(sb, o);
    return strbuf_detach(sb);
}

static json_t *chipset_doc(const struct uvm_lcow_options *o, const char *cmdline)
{
    if (o->kernel_direct) {
        char *kernel = uvm_join_path(o->boot_files_path, o->kernel_file);
        char *initrd = o->rootfs_type == UVM_ROOTFS_INITRD
                           ? uvm_join_path(o->boot_files_path, o->rootfs_file)
                           : NULL;
        json_t *lkd = json_object();
        int rc = lkd == NULL || kernel == NULL ? -1 : 0;
        if (rc == 0) {
            rc |= json_put_str(lkd, "KernelFilePath", kernel);
            rc |= json_put_str(lkd, "InitRdPath", initrd);
            rc |= json_put_str(lkd, "KernelCmdLine", cmdline);
        }
        free(kernel);
        free(initrd);
        if (rc != 0) {
            json_decref(lkd);
            return NULL;
        }
        return json_pack("{s:o}", "LinuxKernelDirect", lkd);
    }
    char *device_path = uvm_join_path("", o->kernel_file);
    if (device_path == NULL)
        return NULL;
    json_t *uefi = json_pack("{s:{s:{s:s,s:s,s:s,s:s}}}", "Uefi", "BootThis", "DeviceType", "VmbFs",
                             "DevicePath", device_path, "VmbFsRootPath", o->boot_files_path,
                             "OptionalData", cmdline);
    free(device_path);
    return uefi;
}

static json_t *rootfs_vhd_attachment(const struct uvm_lcow_options *o, bool scsi)
{
    char *path = uvm_join_path(o->boot_files_path, o->rootfs_file);
    if (path == NULL)
        return NULL;
    json_t *a =
        scsi ? json_pack("{s:s,s:s,s:b}", "Type", "VirtualDisk", "Path", path, "ReadOnly", 1)
             : json_pack("{s:s,s:b,s:s}", "HostPath", path, "ReadOnly", 1, "ImageFormat", "Vhd1");
    free(path);
    return a;
}

static json_t *scsi_doc(const struct uvm_lcow_options *o)
{
    json_t *scsi = json_object();
    int rc = scsi == NULL ? -1 : 0;
    bool vhd_on_scsi = o->rootfs_type == UVM_ROOTFS_VHD && o->vpmem_device_count == 0;
    for (uint32_t i = 0; rc == 0 && i < o->scsi_controller_count; i++) {
        json_t *ctrl = json_object();
        if (i == 0 && vhd_on_scsi && ctrl != NULL)
            rc |= json_put_new(ctrl, "Attachments",
                               json_pack("{s:o}", "0", rootfs_vhd_attachment(o, true)));
        rc |= json_put_new(scsi, hcs_scsi_controller_guids[i], ctrl);
    }
    if (rc != 0) {
        json_decref(scsi);
        return NULL;
    }
    return scsi;
}

static json_t *vpmem_doc(const struct uvm_lcow_options *o)
{
    json_t *v = json_object();
    if (v == NULL)
        return NULL;
    int rc = 0;
    if (o->rootfs_type == UVM_ROOTFS_VHD)
        rc |= json_put_new(v, "Devices", json_pack("{s:o}", "0", rootfs_vhd_attachment(o, false)));
    rc |= json_put_u64(v, "MaximumCount", o->vpmem_device_count);
    rc |= json_put_u64(v, "MaximumSizeBytes", o->vpmem_size_bytes);
    if (rc != 0) {
        json_decref(v);
        return NULL;
    }
    return v;
}

static json_t *hvsocket_doc(const json_t *service_table)
{
    json_t *cfg = json_pack("{s:s}", "DefaultBindSecurityDescriptor", HCS_HVSOCKET_DEFAULT_SDDL);
    if (cfg == NULL)
        return NULL;
    if (service_table != NULL && json_object_size(service_table) > 0 &&
        json_object_set_new(cfg, "ServiceTable", json_deep_copy(service_table)) < 0) {
        json_decref(cfg);
        return NULL;
    }
    return json_pack("{s:o}", "HvSocketConfig", cfg);
}

static json_t *devices_doc(const struct uvm_lcow_options *o)
{
    json_t *d = json_object();
    if (d == NULL)
        return NULL;
    int rc = uvm_doc_console_devices(d, &o->common);
    if (o->scsi_controller_count > 0)
        rc |= json_put_new(d, "Scsi", scsi_doc(o));
    if (o->vpmem_device_count > 0)
        rc |= json_put_new(d, "VirtualPMem", vpmem_doc(o));
    rc |= json_put_new(d, "HvSocket", hvsocket_doc(o->hvsocket_service_table));
    rc |= json_put_new(d, "Plan9", json_object());
    if (rc != 0) {
        json_decref(d);
        return NULL;
    }
    return d;
}

static int check_boot_file(const struct uvm_lcow_options *o, const char *what, const char *file,
                           shim_error_t **err)
{
    const struct uvm_host *h = &o->common.host;
    if (h->file_exists == NULL)
        return 0;
    char *path = uvm_join_path(o->boot_files_path, file);
    if (path == NULL)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    int rc = 0;
    if (!h->file_exists(h->ctx, path))
        rc = error_set(err, RPC_NOT_FOUND, "%s: '%s' not found", what, path);
    free(path);
    return rc;
}

static json_t *virtual_machine_doc(const struct uvm_lcow_options *o, const char *cmdline)
{
    json_t *vm = json_object();
    if (vm == NULL)
        return NULL;
    int rc = json_put_true(vm, "StopOnReset", true);
    rc |= json_put_new(vm, "Chipset", chipset_doc(o, cmdline));
    rc |= json_put_new(vm, "ComputeTopology",
                       uvm_doc_compute_topology(&o->common, false, o->enable_cold_discard_hint));
    rc |= json_put_new(vm, "Devices", devices_doc(o));
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

json_t *uvm_lcow_document(const struct uvm_lcow_options *o, shim_error_t **err)
{
    if (uvm_lcow_verify_options(o, err) < 0 ||
        check_boot_file(o, "kernel", o->kernel_file, err) < 0 ||
        check_boot_file(o, "boot file", o->rootfs_file, err) < 0)
        return NULL;
    char *cmdline = uvm_lcow_kernel_cmdline(o);
    if (cmdline == NULL) {
        error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
        return NULL;
    }
    json_t *doc = json_object();
    int rc = doc == NULL ? -1 : 0;
    if (rc == 0) {
        rc |= json_put_str(doc, "Owner", o->common.owner);
        rc |= json_put_new(doc, "SchemaVersion", hcs_schema_version());
        rc |= json_put_new(doc, "VirtualMachine", virtual_machine_doc(o, cmdline));
        rc |= json_put_true(doc, "ShouldTerminateOnLastHandleClosed", true);
    }
    free(cmdline);
    if (rc != 0) {
        json_decref(doc);
        error_set(err, RPC_RESOURCE_EXHAUSTED, "building the LCOW UVM document failed");
        return NULL;
    }
    return doc;
}
