/* The bundle on Linux: files with POSIX I/O, containerd's rootfs mounts
 * with mount(2). */
#include "shim/bundle.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- files ------------------------------------------------------------------ */

int bundle_read_file(const char *path, char **text, size_t *len, shim_error_t **err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return error_set_errno(err, errno == ENOENT ? RPC_NOT_FOUND : RPC_INTERNAL, errno,
                               "open %s", path);
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size > BUNDLE_CONFIG_MAX) {
        close(fd);
        return error_set(err, RPC_INVALID_ARGUMENT, "%s is not a regular file of at most %u bytes",
                         path, BUNDLE_CONFIG_MAX);
    }
    char *buf = malloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (buf != NULL && got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
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
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int bundle_write_file_atomic(const char *dir, const char *name, const void *data, size_t len,
                             unsigned mode, shim_error_t **err)
{
    char *tmp = NULL;
    char *final = NULL;
    int ret = 0;
    if (asprintf(&tmp, "%s/.%s.XXXXXX", dir, name) < 0) {
        tmp = NULL;
        goto oom;
    }
    if (asprintf(&final, "%s/%s", dir, name) < 0) {
        final = NULL;
        goto oom;
    }
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        ret = error_set_errno(err, RPC_INTERNAL, errno, "create %s", tmp);
        goto out;
    }
    if (fchmod(fd, mode) < 0 || write_all_fd(fd, data, len) < 0 || fsync(fd) < 0) {
        ret = error_set_errno(err, RPC_INTERNAL, errno, "write %s", tmp);
        close(fd);
        unlink(tmp);
        goto out;
    }
    close(fd);
    if (rename(tmp, final) < 0) {
        ret = error_set_errno(err, RPC_INTERNAL, errno, "rename %s to %s", tmp, final);
        unlink(tmp);
    }
out:
    free(tmp);
    free(final);
    return ret;
oom:
    free(tmp);
    return error_set(err, RPC_INTERNAL, "out of memory");
}

/* ---- mounts ----------------------------------------------------------------- */

struct mount_flag {
    const char *name;
    bool clear; /* the option clears the flag instead of setting it */
    unsigned long flag;
};

static const struct mount_flag mount_flags[] = {
    {"async", true, MS_SYNCHRONOUS},
    {"atime", true, MS_NOATIME},
    {"bind", false, MS_BIND},
    {"defaults", false, 0},
    {"dev", true, MS_NODEV},
    {"diratime", true, MS_NODIRATIME},
    {"dirsync", false, MS_DIRSYNC},
    {"exec", true, MS_NOEXEC},
    {"mand", false, MS_MANDLOCK},
    {"noatime", false, MS_NOATIME},
    {"nodev", false, MS_NODEV},
    {"nodiratime", false, MS_NODIRATIME},
    {"noexec", false, MS_NOEXEC},
    {"nomand", true, MS_MANDLOCK},
    {"norelatime", true, MS_RELATIME},
    {"nostrictatime", true, MS_STRICTATIME},
    {"nosuid", false, MS_NOSUID},
    {"rbind", false, MS_BIND | MS_REC},
    {"relatime", false, MS_RELATIME},
    {"remount", false, MS_REMOUNT},
    {"ro", false, MS_RDONLY},
    {"rw", true, MS_RDONLY},
    {"strictatime", false, MS_STRICTATIME},
    {"suid", true, MS_NOSUID},
    {"sync", false, MS_SYNCHRONOUS},
};

static const struct mount_flag propagation_flags[] = {
    {"private", false, MS_PRIVATE},       {"rprivate", false, MS_PRIVATE | MS_REC},
    {"shared", false, MS_SHARED},         {"rshared", false, MS_SHARED | MS_REC},
    {"slave", false, MS_SLAVE},           {"rslave", false, MS_SLAVE | MS_REC},
    {"unbindable", false, MS_UNBINDABLE}, {"runbindable", false, MS_UNBINDABLE | MS_REC},
};

static const struct mount_flag *lookup_flag(const struct mount_flag *table, size_t n,
                                            const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(table[i].name, name) == 0)
            return &table[i];
    }
    return NULL;
}

static int append_data(char **data, const char *opt)
{
    char *joined = NULL;
    int rc = *data ? asprintf(&joined, "%s,%s", *data, opt) : asprintf(&joined, "%s", opt);
    if (rc < 0)
        return -1;
    free(*data);
    *data = joined;
    return 0;
}

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

int bundle_mount_args_parse(const struct bundle_mount *m, struct bundle_mount_args *out,
                            shim_error_t **err)
{
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < m->n_options; i++) {
        const char *opt = m->options[i];
        if (opt == NULL || opt[0] == '\0')
            continue;
        const struct mount_flag *f = lookup_flag(mount_flags, ARRAY_LEN(mount_flags), opt);
        if (f != NULL) {
            if (f->clear)
                out->flags &= ~f->flag;
            else
                out->flags |= f->flag;
            continue;
        }
        f = lookup_flag(propagation_flags, ARRAY_LEN(propagation_flags), opt);
        if (f != NULL) {
            out->propagation = f->flag;
            continue;
        }
        /* Filesystem specific (lowerdir=..., index=off, ...): passed as data. */
        if (append_data(&out->data, opt) < 0) {
            bundle_mount_args_free(out);
            return error_set(err, RPC_INTERNAL, "out of memory");
        }
    }
    return 0;
}

void bundle_mount_args_free(struct bundle_mount_args *args)
{
    free(args->data);
    args->data = NULL;
}

static int mount_one(const char *target, const struct bundle_mount *m, shim_error_t **err)
{
    struct bundle_mount_args args;
    if (m->type == NULL || m->type[0] == '\0')
        return error_set(err, RPC_INVALID_ARGUMENT, "mount of %s onto %s has no type",
                         m->source ? m->source : "", target);
    if (bundle_mount_args_parse(m, &args, err) < 0)
        return -1;
    const char *source = m->source && m->source[0] ? m->source : m->type;
    int ret = 0;
    /* A bind mount ignores MS_RDONLY on the first call; remount applies it. */
    unsigned long first = args.flags;
    if ((args.flags & MS_BIND) && !(args.flags & MS_REMOUNT))
        first &= ~(unsigned long)MS_RDONLY;
    if (mount(source, target, m->type, first, args.data) < 0) {
        ret = error_set_errno(err, RPC_INTERNAL, errno, "mount %s (type %s, options %s) onto %s",
                              source, m->type, args.data ? args.data : "", target);
        goto out;
    }
    if ((args.flags & MS_BIND) && (args.flags & MS_RDONLY) && !(args.flags & MS_REMOUNT) &&
        mount(NULL, target, NULL, args.flags | MS_REMOUNT, NULL) < 0) {
        ret = error_set_errno(err, RPC_INTERNAL, errno, "remount %s read-only", target);
        umount2(target, MNT_DETACH);
        goto out;
    }
    if (args.propagation && mount(NULL, target, NULL, args.propagation, NULL) < 0) {
        ret = error_set_errno(err, RPC_INTERNAL, errno, "set propagation of %s", target);
        umount2(target, MNT_DETACH);
    }
out:
    bundle_mount_args_free(&args);
    return ret;
}

static void unmount_n(const char *target, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (umount2(target, 0) < 0)
            umount2(target, MNT_DETACH);
    }
}

int bundle_mount_all(const char *target, const struct bundle_mount *mounts, size_t n,
                     shim_error_t **err)
{
    for (size_t i = 0; i < n; i++) {
        if (mount_one(target, &mounts[i], err) < 0) {
            unmount_n(target, i);
            return -1;
        }
    }
    return 0;
}

int bundle_mount_rootfs(const char *bundle_dir, const struct bundle_mount *mounts, size_t n,
                        shim_error_t **err)
{
    char *target = NULL;
    if (asprintf(&target, "%s/rootfs", bundle_dir) < 0)
        return error_set(err, RPC_INTERNAL, "out of memory");
    int ret = 0;
    if (mkdir(target, 0711) < 0 && errno != EEXIST)
        ret = error_set_errno(err, RPC_INTERNAL, errno, "mkdir %s", target);
    if (ret == 0)
        ret = bundle_mount_all(target, mounts, n, err);
    free(target);
    return ret;
}

/* Bounded: stacked mounts are few; a target that keeps "unmounting" is odd. */
#define UNMOUNT_MAX_LAYERS 64

int bundle_unmount_all(const char *target, shim_error_t **err)
{
    for (int i = 0; i < UNMOUNT_MAX_LAYERS; i++) {
        if (umount2(target, UMOUNT_NOFOLLOW) == 0)
            continue;
        int e = errno;
        if (e == EINVAL || e == ENOENT)
            return 0; /* not (or no longer) a mount point */
        if (e == EBUSY && umount2(target, MNT_DETACH | UMOUNT_NOFOLLOW) == 0)
            continue;
        return error_set_errno(err, RPC_INTERNAL, e, "unmount %s", target);
    }
    return error_set(err, RPC_INTERNAL, "unmount %s: still mounted after %d unmounts", target,
                     UNMOUNT_MAX_LAYERS);
}

int bundle_unmount_rootfs(const char *bundle_dir, shim_error_t **err)
{
    char *target = NULL;
    if (asprintf(&target, "%s/rootfs", bundle_dir) < 0)
        return error_set(err, RPC_INTERNAL, "out of memory");
    int ret = bundle_unmount_all(target, err);
    free(target);
    return ret;
}
