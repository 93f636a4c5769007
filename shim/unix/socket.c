/* shim/socket.h on Linux: unix sockets below /run/containerd/s. */
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

char *shim_serve_address(const char *containerd_address, const char *ns, const char *group,
                         shim_error_t **err)
{
    return shim_socket_address(NULL, containerd_address, ns, group, err);
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
