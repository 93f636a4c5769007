/* Host-side preparation for a Linux UVM under HCS: boot files, the UVM
 * document from a sandbox spec, the container's guest spec. HCS takes the
 * document's Windows paths as they are (no QEMU path rewriting). */
#include "uvm/uvm.h" /* first: uv.h brings winsock2.h before windows.h */

#include <windows.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "hcs/win/utf16.h"
#include "oci/lcow_spec.h"
#include "oci/uvm_options.h"
#include "uvm/doc_uvm.h"
#include "uvm/options.h"

#define PROGRAM_FILES_BOOT_DIR "Linux Containers" /* hcsshim's default */

static bool file_exists(const char *path)
{
    wchar_t *w = hcs_utf8_to_utf16(path, NULL);
    DWORD attrs = w ? GetFileAttributesW(w) : INVALID_FILE_ATTRIBUTES;
    free(w);
    return attrs != INVALID_FILE_ATTRIBUTES;
}

static bool host_file_exists(void *ctx, const char *path)
{
    (void)ctx;
    return file_exists(path);
}

static bool has_kernel(const char *dir)
{
    char path[MAX_PATH + 32];
    static const char *const names[] = {"kernel", "vmlinux"};
    for (size_t i = 0; i < 2; i++) {
        snprintf(path, sizeof(path), "%s\\%s", dir, names[i]);
        if (file_exists(path))
            return true;
    }
    return false;
}

char *uvm_default_boot_files_path(void)
{
    char exe[MAX_PATH * 2];
    size_t n = sizeof(exe);
    if (uv_exepath(exe, &n) == 0) {
        char *sep = strrchr(exe, '\\');
        char *slash = strrchr(exe, '/');
        if (slash > sep)
            sep = slash;
        if (sep) {
            *sep = '\0';
            char dir[sizeof(exe) + 32];
            snprintf(dir, sizeof(dir), "%s\\LinuxBootFiles", exe);
            if (has_kernel(dir))
                return strdup(dir);
            if (has_kernel(exe))
                return strdup(exe);
        }
    }
    char pf[MAX_PATH];
    size_t pn = sizeof(pf);
    if (uv_os_getenv("ProgramFiles", pf, &pn) != 0)
        snprintf(pf, sizeof(pf), "C:\\Program Files");
    char dir[MAX_PATH + 32];
    snprintf(dir, sizeof(dir), "%s\\" PROGRAM_FILES_BOOT_DIR, pf);
    return has_kernel(dir) ? strdup(dir) : NULL;
}

char *uvm_document_for_spec(const json_t *spec, const runhcs_options *opts, const char *id,
                            const char *owner, const char *log_level, const char *default_boot_path,
                            shim_error_t **err)
{
    struct uvm_lcow_options o;
    memset(&o, 0, sizeof(o));
    struct uvm_host host = {
        .build = 20348, /* Server 2022 gates; the document is what hcsshim HEAD makes there */
        .logical_processors = (uint32_t)GetActiveProcessorCount(ALL_PROCESSOR_GROUPS),
        .file_exists = host_file_exists,
    };
    char *doc_text = NULL;
    json_t *doc = NULL;
    if (uvm_lcow_options_init(&o, id, owner, log_level, default_boot_path, &host, err) < 0 ||
        oci_lcow_uvm_options(spec, opts, &o, err) < 0)
        goto out;
    doc = uvm_lcow_document(&o, err);
    if (!doc)
        goto out;
    doc_text = json_dumps(doc, JSON_COMPACT);
    if (!doc_text)
        error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
out:
    json_decref(doc);
    uvm_lcow_options_free(&o);
    return doc_text;
}

int uvm_rootfs_image_build(const char *rootfs, const char *image, shim_error_t **err)
{
    (void)image;
    return error_set(err, RPC_UNIMPLEMENTED,
                     "building an ext4 image of %s is not supported on Windows (LCOW layers are "
                     "VHDs)",
                     rootfs);
}

/* Host bind mounts need Plan 9 shares (hcs-documents.md §6.4), not wired yet. */
static void drop_host_mounts(json_t *spec, const char *id)
{
    json_t *mounts = json_object_get(spec, "mounts");
    size_t i = 0;
    while (i < json_array_size(mounts)) {
        json_t *m = json_array_get(mounts, i);
        enum oci_lcow_mount_kind kind = OCI_LCOW_MOUNT_OTHER;
        shim_error_t *e = NULL;
        if (oci_lcow_mount_kind(m, &kind, &e) < 0)
            error_free(e);
        if (kind != OCI_LCOW_MOUNT_OTHER && kind != OCI_LCOW_MOUNT_SPECIAL) {
            log_warn("container %s: mount of host %s at %s is not supported yet (no Plan 9 "
                     "shares); dropped",
                     id, json_string_value(json_object_get(m, "source")),
                     json_string_value(json_object_get(m, "destination")));
            json_array_remove(mounts, i);
            continue;
        }
        i++;
    }
}

json_t *uvm_container_spec(const json_t *spec, const char *id, const char *guest_root,
                           shim_error_t **err)
{
    json_t *out = oci_lcow_container_spec(spec, id, err);
    if (!out)
        return NULL;
    json_t *root = json_object_get(out, "root");
    if (!json_is_object(root)) {
        root = json_object();
        json_object_set_new(out, "root", root);
    }
    if (!root || json_object_set_new(root, "path", json_string(guest_root)) < 0) {
        json_decref(out);
        error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
        return NULL;
    }
    drop_host_mounts(out, id);
    return out;
}
