/* uvm/setup_platform.h under HCS: boot files (next to the exe, else
 * %ProgramFiles%\Linux Containers), host probing; HCS takes the document's
 * Windows paths as they are. No rootfs images: LCOW layers are VHDs. */
#include "uvm/uvm.h" /* first: uv.h brings winsock2.h before windows.h */

#include <windows.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "hcs/win/utf16.h"
#include "uvm/setup_platform.h"

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

void uvm_platform_host(struct uvm_host *host)
{
    host->build = 20348; /* Server 2022 gates; the document is what hcsshim HEAD makes there */
    host->logical_processors = (uint32_t)GetActiveProcessorCount(ALL_PROCESSOR_GROUPS);
    host->file_exists = host_file_exists;
}

int uvm_platform_fix_document(json_t *doc, shim_error_t **err)
{
    (void)doc; /* HCS takes the document's Windows paths as they are */
    (void)err;
    return 0;
}

const char uvm_platform_no_shares_reason[] = "yet (no Plan 9 shares)";

int uvm_rootfs_image_build(const char *rootfs, const char *image, shim_error_t **err)
{
    (void)image;
    return error_set(err, RPC_UNIMPLEMENTED,
                     "building an ext4 image of %s is not supported on Windows (LCOW layers are "
                     "VHDs)",
                     rootfs);
}
