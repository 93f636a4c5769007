/* The bundle on Windows: files through the wide-character CRT (paths are
 * UTF-8 in the protocol), no mounts: containerd's windows-layer/lcow-layer
 * rootfs is validated here and attached by the UVM host (bundle_layers_*). */
#include "shim/bundle.h"

#include <errno.h>
#include <fcntl.h>
#include <io.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <uv.h>
#include <windows.h>

#include "hcs/win/utf16.h"

/* ---- files ------------------------------------------------------------------ */

/* -1 with errno (EILSEQ: path is not valid UTF-8). */
static int open_utf8(const char *path, int flags, int mode)
{
    shim_error_t *conv = NULL;
    wchar_t *wpath = hcs_utf8_to_utf16(path, &conv);
    if (wpath == NULL) {
        error_free(conv);
        errno = EILSEQ;
        return -1;
    }
    int fd = _wopen(wpath, flags | _O_BINARY | _O_NOINHERIT, mode);
    int e = errno;
    free(wpath);
    errno = e;
    return fd;
}

int bundle_read_file(const char *path, char **text, size_t *len, shim_error_t **err)
{
    int fd = open_utf8(path, _O_RDONLY, 0);
    if (fd < 0)
        return error_set_errno(err, errno == ENOENT ? RPC_NOT_FOUND : RPC_INTERNAL, errno,
                               "open %s", path);
    struct _stat64 st;
    if (_fstat64(fd, &st) < 0 || !(st.st_mode & _S_IFREG) ||
        (unsigned long long)st.st_size > BUNDLE_CONFIG_MAX) {
        _close(fd);
        return error_set(err, RPC_INVALID_ARGUMENT, "%s is not a regular file of at most %u bytes",
                         path, BUNDLE_CONFIG_MAX);
    }
    size_t size = (size_t)st.st_size;
    char *buf = malloc(size + 1);
    size_t got = 0;
    while (buf != NULL && got < size) {
        int n = _read(fd, buf + got, (unsigned)(size - got));
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    _close(fd);
    if (buf == NULL)
        return error_set(err, RPC_INTERNAL, "out of memory reading %s", path);
    buf[got] = '\0';
    *text = buf;
    *len = got;
    return 0;
}

static int write_all_fd(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        unsigned chunk = len > (1u << 30) ? (1u << 30) : (unsigned)len;
        int n = _write(fd, p, chunk);
        if (n < 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* A fresh temp file next to final (O_EXCL, a few random names). */
static int create_temp(const char *dir, const char *name, char **tmp, shim_error_t **err)
{
    for (int attempt = 0; attempt < 16; attempt++) {
        unsigned char rnd[6];
        if (uv_random(NULL, NULL, rnd, sizeof(rnd), 0, NULL) != 0)
            memset(rnd, attempt, sizeof(rnd));
        if (asprintf(tmp, "%s/.%s.%02x%02x%02x%02x%02x%02x", dir, name, rnd[0], rnd[1], rnd[2],
                     rnd[3], rnd[4], rnd[5]) < 0) {
            *tmp = NULL;
            return error_set(err, RPC_INTERNAL, "out of memory");
        }
        int fd = open_utf8(*tmp, _O_WRONLY | _O_CREAT | _O_EXCL, _S_IREAD | _S_IWRITE);
        if (fd >= 0 || errno != EEXIST)
            return fd < 0 ? error_set_errno(err, RPC_INTERNAL, errno, "create %s", *tmp) : fd;
        free(*tmp);
        *tmp = NULL;
    }
    return error_set(err, RPC_INTERNAL, "create a temp file for %s/%s: names exhausted", dir, name);
}

/* mode is ignored: Windows files get the directory's ACL. */
int bundle_write_file_atomic(const char *dir, const char *name, const void *data, size_t len,
                             unsigned mode, shim_error_t **err)
{
    (void)mode;
    char *tmp = NULL, *final = NULL;
    wchar_t *wtmp = NULL, *wfinal = NULL;
    int ret = 0;
    if (asprintf(&final, "%s/%s", dir, name) < 0) {
        final = NULL;
        return error_set(err, RPC_INTERNAL, "out of memory");
    }
    int fd = create_temp(dir, name, &tmp, err);
    if (fd < 0) {
        ret = -1;
        goto out;
    }
    if (write_all_fd(fd, data, len) < 0 || _commit(fd) < 0) {
        ret = error_set_errno(err, RPC_INTERNAL, errno, "write %s", tmp);
        _close(fd);
        goto unlink;
    }
    _close(fd);
    wtmp = hcs_utf8_to_utf16(tmp, err);
    wfinal = wtmp ? hcs_utf8_to_utf16(final, err) : NULL;
    if (wfinal == NULL) {
        ret = -1;
        goto unlink;
    }
    /* rename(3) of the CRT refuses an existing target. */
    if (!MoveFileExW(wtmp, wfinal, MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH)) {
        ret = error_set(err, RPC_INTERNAL, "rename %s to %s (Windows error %lu)", tmp, final,
                        (unsigned long)GetLastError());
        goto unlink;
    }
    goto out;
unlink:
    if (wtmp != NULL)
        DeleteFileW(wtmp);
    else if (tmp != NULL)
        remove(tmp);
out:
    free(wtmp);
    free(wfinal);
    free(tmp);
    free(final);
    return ret;
}

/* ---- rootfs: nothing to mount --------------------------------------------------- */

int bundle_mount_all(const char *target, const struct bundle_mount *mounts, size_t n,
                     shim_error_t **err)
{
    (void)target;
    struct bundle_layers layers;
    if (bundle_layers_from_rootfs(mounts, n, &layers, err) < 0)
        return -1;
    bundle_layers_free(&layers);
    return 0;
}

int bundle_mount_rootfs(const char *bundle_dir, const struct bundle_mount *mounts, size_t n,
                        shim_error_t **err)
{
    return bundle_mount_all(bundle_dir, mounts, n, err);
}

int bundle_unmount_all(const char *target, shim_error_t **err)
{
    (void)target;
    (void)err;
    return 0;
}

int bundle_unmount_rootfs(const char *bundle_dir, shim_error_t **err)
{
    (void)bundle_dir;
    (void)err;
    return 0;
}
