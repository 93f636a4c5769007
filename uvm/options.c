#include "uvm/options.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int uvm_set_string(char **slot, const char *value, shim_error_t **err)
{
    char *copy = NULL;
    if (value != NULL && (copy = strdup(value)) == NULL)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    free(*slot);
    *slot = copy;
    return 0;
}

char *uvm_join_path(const char *dir, const char *name)
{
    char *out = NULL;
    size_t n = strlen(dir);
    const char *sep = (n > 0 && dir[n - 1] == '\\') ? "" : "\\";
    if (asprintf(&out, "%s%s%s", dir, sep, name) < 0)
        return NULL;
    return out;
}

static bool host_file_exists(const struct uvm_host *host, const char *dir, const char *name)
{
    if (host->file_exists == NULL)
        return false;
    char *path = uvm_join_path(dir, name);
    bool found = path != NULL && host->file_exists(host->ctx, path);
    free(path);
    return found;
}

static int common_init(struct uvm_common_options *c, const char *id, const char *owner,
                       const struct uvm_host *host, shim_error_t **err)
{
    memset(c, 0, sizeof(*c));
    if (host != NULL)
        c->host = *host;
    if (id == NULL || id[0] == '\0')
        return error_set(err, RPC_INVALID_ARGUMENT, "UVM id must not be empty");
    if (uvm_set_string(&c->id, id, err) < 0 ||
        uvm_set_string(&c->owner, owner ? owner : "containerd-shim-runhcs-v1.exe", err) < 0)
        return -1;
    c->memory_size_mb = UVM_DEFAULT_MEMORY_MB;
    c->allow_overcommit = true;
    c->processor_count = c->host.logical_processors == 1 ? 1 : 2;
    return 0;
}

static void common_free(struct uvm_common_options *c)
{
    free(c->id);
    free(c->owner);
    free(c->cpu_group_id);
    free(c->resource_partition_id);
    free(c->console_pipe);
    free(c->process_dump_location);
    memset(c, 0, sizeof(*c));
}

int uvm_lcow_set_boot_files_path(struct uvm_lcow_options *o, const char *path, shim_error_t **err)
{
    if (uvm_set_string(&o->boot_files_path, path, err) < 0)
        return -1;
    const struct uvm_host *host = &o->common.host;
    if (o->kernel_direct && host_file_exists(host, path, UVM_UNCOMPRESSED_KERNEL_FILE) &&
        uvm_set_string(&o->kernel_file, UVM_UNCOMPRESSED_KERNEL_FILE, err) < 0)
        return -1;
    if (host_file_exists(host, path, UVM_VHD_FILE)) {
        if (uvm_set_string(&o->rootfs_file, UVM_VHD_FILE, err) < 0)
            return -1;
        o->rootfs_type = UVM_ROOTFS_VHD;
    }
    return 0;
}

int uvm_lcow_options_init(struct uvm_lcow_options *o, const char *id, const char *owner,
                          const char *gcs_log_level, const char *boot_files_path,
                          const struct uvm_host *host, shim_error_t **err)
{
    memset(o, 0, sizeof(*o));
    if (common_init(&o->common, id, owner, host, err) < 0)
        goto fail;
    const struct uvm_host *h = &o->common.host;
    o->scsi_controller_count = 1;
    o->kernel_direct = h->build >= UVM_BUILD_KERNEL_DIRECT && !h->arm64;
    o->rootfs_type = UVM_ROOTFS_INITRD;
    o->forward_stderr = true;
    o->vpmem_device_count = h->arm64 ? 0 : UVM_DEFAULT_VPMEM_COUNT;
    o->vpmem_size_bytes = UVM_DEFAULT_VPMEM_SIZE;
    o->vpmem_no_multi_mapping = h->build < UVM_BUILD_19H1;
    char *exec = NULL;
    if (asprintf(&exec, "/bin/gcs -v4 -log-format json -loglevel %s",
                 gcs_log_level ? gcs_log_level : "info") < 0) {
        error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
        goto fail;
    }
    o->exec_command_line = exec;
    if (uvm_set_string(&o->kernel_file, UVM_KERNEL_FILE, err) < 0 ||
        uvm_set_string(&o->rootfs_file, UVM_INITRD_FILE, err) < 0 ||
        uvm_lcow_set_boot_files_path(o, boot_files_path ? boot_files_path : UVM_DEFAULT_BOOT_PATH,
                                     err) < 0)
        goto fail;
    return 0;
fail:
    uvm_lcow_options_free(o);
    return -1;
}

void uvm_lcow_options_free(struct uvm_lcow_options *o)
{
    common_free(&o->common);
    free(o->boot_files_path);
    free(o->kernel_file);
    free(o->rootfs_file);
    free(o->kernel_boot_options);
    free(o->exec_command_line);
    json_decref(o->hvsocket_service_table);
    memset(o, 0, sizeof(*o));
}

int uvm_wcow_options_init(struct uvm_wcow_options *o, const char *id, const char *owner,
                          const struct uvm_host *host, shim_error_t **err)
{
    memset(o, 0, sizeof(*o));
    if (common_init(&o->common, id, owner, host, err) < 0) {
        uvm_wcow_options_free(o);
        return -1;
    }
    o->forward_logs = true;
    return 0;
}

void uvm_wcow_options_free(struct uvm_wcow_options *o)
{
    common_free(&o->common);
    free(o->uvm_image_path);
    free(o->scratch_path);
    memset(o, 0, sizeof(*o));
}
