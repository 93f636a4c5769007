#include "shim/socket.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/sha256.h"

char *shim_path_clean(const char *path)
{
    size_t len = strlen(path);
    bool rooted = len > 0 && path[0] == '/';
    char *out = malloc(len + 2);
    if (out == NULL)
        return NULL;
    size_t w = 0;      /* write position */
    size_t dotdot = 0; /* out[0:dotdot] cannot be backtracked over */
    if (rooted) {
        out[w++] = '/';
        dotdot = 1;
    }
    size_t r = rooted ? 1 : 0;
    while (r < len) {
        if (path[r] == '/') {
            r++;
        } else if (path[r] == '.' && (r + 1 == len || path[r + 1] == '/')) {
            r++;
        } else if (path[r] == '.' && path[r + 1] == '.' && (r + 2 == len || path[r + 2] == '/')) {
            r += 2;
            if (w > dotdot) {
                w--; /* back up to the previous separator */
                while (w > dotdot && out[w] != '/')
                    w--;
            } else if (!rooted) {
                if (w > 0)
                    out[w++] = '/';
                out[w++] = '.';
                out[w++] = '.';
                dotdot = w;
            }
        } else {
            if ((rooted && w != 1) || (!rooted && w != 0))
                out[w++] = '/';
            for (; r < len && path[r] != '/'; r++)
                out[w++] = path[r];
        }
    }
    if (w == 0)
        out[w++] = '.';
    out[w] = '\0';
    return out;
}

char *shim_socket_address(const char *dir, const char *containerd_address, const char *ns,
                          const char *group, shim_error_t **err)
{
    char *joined = NULL;
    char *cleaned = NULL;
    char *addr = NULL;
    /* Go's filepath.Join drops empty elements before cleaning. */
    const char *parts[3] = {containerd_address, ns, group};
    size_t total = 1;
    for (int i = 0; i < 3; i++)
        total += strlen(parts[i]) + 1;
    joined = calloc(1, total);
    if (joined == NULL)
        goto oom;
    for (int i = 0; i < 3; i++) {
        if (parts[i][0] == '\0')
            continue;
        if (joined[0] != '\0')
            strcat(joined, "/");
        strcat(joined, parts[i]);
    }
    cleaned = shim_path_clean(joined);
    if (cleaned == NULL)
        goto oom;
    char hex[SHA256_HEX_SIZE];
    sha256_hex(cleaned, strlen(cleaned), hex);
    if (asprintf(&addr, "%s%s/%s", SHIM_UNIX_PREFIX, dir ? dir : SHIM_SOCKET_DIR, hex) < 0) {
        addr = NULL;
        goto oom;
    }
    free(joined);
    free(cleaned);
    return addr;
oom:
    free(joined);
    free(cleaned);
    error_set(err, RPC_INTERNAL, "out of memory computing the shim socket address");
    return NULL;
}

const char *shim_socket_path(const char *addr)
{
    size_t n = strlen(SHIM_UNIX_PREFIX);
    if (strncmp(addr, SHIM_UNIX_PREFIX, n) != 0 || addr[n] != '/')
        return NULL;
    return addr + n;
}

static int fill_sockaddr(const char *addr, struct sockaddr_un *sa, shim_error_t **err)
{
    const char *path = shim_socket_path(addr);
    if (path == NULL)
        return error_set(err, RPC_INVALID_ARGUMENT,
                         "socket address %s is not unix:// with an absolute path", addr);
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sa->sun_path))
        return error_set(err, RPC_INVALID_ARGUMENT, "socket path %s is too long (max %zu bytes)",
                         path, sizeof(sa->sun_path) - 1);
    strcpy(sa->sun_path, path);
    return 0;
}

int shim_mkdir_p(const char *dir, unsigned mode, shim_error_t **err)
{
    char *copy = strdup(dir);
    if (copy == NULL)
        return error_set(err, RPC_INTERNAL, "out of memory");
    int ret = 0;
    for (char *p = copy + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char saved = *p;
        *p = '\0';
        if (mkdir(copy, mode) < 0 && errno != EEXIST) {
            ret = error_set_errno(err, RPC_INTERNAL, errno, "mkdir %s", copy);
            break;
        }
        *p = saved;
        if (saved == '\0')
            break;
    }
    free(copy);
    return ret;
}

int shim_socket_listen(const char *addr, shim_error_t **err)
{
    struct sockaddr_un sa;
    if (fill_sockaddr(addr, &sa, err) < 0)
        return -1;
    char *dir = strdup(sa.sun_path);
    if (dir == NULL)
        return error_set(err, RPC_INTERNAL, "out of memory");
    *strrchr(dir, '/') = '\0';
    int ret = dir[0] ? shim_mkdir_p(dir, 0711, err) : 0;
    free(dir);
    if (ret < 0)
        return -1;

    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return error_set_errno(err, RPC_INTERNAL, errno, "socket");
    /* umask makes the socket file 0600 from its creation on; chmod below is
     * the belt to these braces. */
    mode_t old_mask = umask(0177);
    int rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    int bind_errno = errno;
    umask(old_mask);
    if (rc < 0) {
        close(fd);
        return error_set_errno(err, RPC_UNAVAILABLE, bind_errno, "bind %s", sa.sun_path);
    }
    if (chmod(sa.sun_path, 0600) < 0 || listen(fd, SOMAXCONN) < 0) {
        int e = errno;
        close(fd);
        unlink(sa.sun_path);
        return error_set_errno(err, RPC_INTERNAL, e, "listen %s", sa.sun_path);
    }
    return fd;
}

bool shim_socket_is_live(const char *addr)
{
    struct sockaddr_un sa;
    if (fill_sockaddr(addr, &sa, NULL) < 0)
        return false;
    /* Non-blocking: a live shim with a full accept backlog (EAGAIN) must not
     * stall start or delete. */
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return false;
    int rc;
    do {
        rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    } while (rc < 0 && errno == EINTR);
    bool live = rc == 0 || errno == EAGAIN || errno == EINPROGRESS;
    close(fd);
    return live;
}

int shim_socket_remove(const char *addr, shim_error_t **err)
{
    const char *path = shim_socket_path(addr);
    if (path == NULL)
        return error_set(err, RPC_INVALID_ARGUMENT, "not a unix:// socket address: %s", addr);
    if (unlink(path) < 0 && errno != ENOENT)
        return error_set_errno(err, RPC_INTERNAL, errno, "remove socket %s", path);
    return 0;
}
