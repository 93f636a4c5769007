/* uvm/setup_platform.h on Linux (the QEMU backend): boot files next to our
 * binary, host probing, '/' paths in the document, and the container rootfs
 * as an ext4 image. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "uvm/setup_platform.h"
#include "uvm/uvm.h"

extern char **environ;

static bool has_kernel(const char *dir)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/kernel", dir);
    return access(path, R_OK) == 0;
}

char *uvm_default_boot_files_path(void)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0)
        return NULL;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash)
        return NULL;
    *slash = '\0';
    static const char *const candidates[] = {"%s/LinuxBootFiles", "%s/../LinuxBootFiles"};
    for (size_t i = 0; i < 2; i++) {
        char dir[PATH_MAX + 32], real[PATH_MAX];
        snprintf(dir, sizeof(dir), candidates[i], exe);
        if (has_kernel(dir) && realpath(dir, real))
            return strdup(real);
    }
    return NULL;
}

/* The option code joins paths Windows-style ("dir\file"); on this host the
 * separator is '/'. */
static char *host_path(const char *p)
{
    char *s = strdup(p);
    if (s) {
        for (char *c = s; *c; c++)
            if (*c == '\\')
                *c = '/';
    }
    return s;
}

static bool host_file_exists(void *ctx, const char *path)
{
    (void)ctx;
    char *p = host_path(path);
    bool ok = p && access(p, R_OK) == 0;
    free(p);
    return ok;
}

int uvm_platform_fix_document(json_t *doc, shim_error_t **err)
{
    json_t *lkd = json_object_get(
        json_object_get(json_object_get(doc, "VirtualMachine"), "Chipset"), "LinuxKernelDirect");
    if (!json_is_object(lkd))
        return error_set(err, RPC_UNIMPLEMENTED,
                         "the QEMU backend boots only with LinuxKernelDirect (kerneldirectboot)");
    static const char *const keys[] = {"KernelFilePath", "InitRdPath"};
    for (size_t i = 0; i < 2; i++) {
        const char *v = json_string_value(json_object_get(lkd, keys[i]));
        if (!v)
            continue;
        char *p = host_path(v);
        if (!p || json_object_set_new(lkd, keys[i], json_string(p)) < 0) {
            free(p);
            return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
        }
        free(p);
    }
    return 0;
}

void uvm_platform_host(struct uvm_host *host)
{
    host->build = 20348; /* a modern host: every LCOW feature gate is open */
    host->logical_processors = (uint32_t)sysconf(_SC_NPROCESSORS_ONLN);
    host->file_exists = host_file_exists;
}

const char uvm_platform_no_shares_reason[] = "in a QEMU UVM";

/* ---- rootfs image ---------------------------------------------------------------------- */

static uint64_t tree_bytes;
static uint64_t tree_files;

static int count_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)path;
    (void)flag;
    (void)ftw;
    tree_bytes += (uint64_t)st->st_blocks * 512u + 4096u;
    tree_files++;
    return 0;
}

static int run_mkfs(const char *rootfs, const char *image, shim_error_t **err)
{
    char *argv[] = {"mkfs.ext4",    "-q",          "-F",        "-O",
                    "^has_journal", "-E",          "nodiscard", "-d",
                    (char *)rootfs, (char *)image, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    int rc = posix_spawnp(&pid, "mkfs.ext4", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
        return error_set_errno(err, RPC_INTERNAL, rc, "running mkfs.ext4");
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return error_set_errno(err, RPC_INTERNAL, errno, "waiting for mkfs.ext4");
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return error_set(err, RPC_INTERNAL, "mkfs.ext4 -d %s %s failed (status %d)", rootfs, image,
                         status);
    return 0;
}

int uvm_rootfs_image_build(const char *rootfs, const char *image, shim_error_t **err)
{
    /* nftw has no context argument; the shim runs one loop thread. */
    tree_bytes = 0;
    tree_files = 0;
    if (nftw(rootfs, count_entry, 32, FTW_PHYS) < 0)
        return error_set_errno(err, RPC_FAILED_PRECONDITION, errno, "reading rootfs %s", rootfs);
    /* Data + inode tables + room to write; the file is sparse, so headroom is
     * free until used. */
    uint64_t size = tree_bytes * 2 + tree_files * 512 + (256ull << 20);
    size = (size + (1 << 20) - 1) & ~((uint64_t)(1 << 20) - 1);
    int fd = open(image, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return error_set_errno(err, RPC_INTERNAL, errno, "creating %s", image);
    int rc = ftruncate(fd, (off_t)size);
    int saved = errno;
    close(fd);
    if (rc < 0) {
        unlink(image);
        return error_set_errno(err, RPC_INTERNAL, saved, "sizing %s", image);
    }
    if (run_mkfs(rootfs, image, err) < 0) {
        unlink(image);
        return -1;
    }
    return 0;
}
