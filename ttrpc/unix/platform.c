#include "ttrpc/platform.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

void ttrpc_platform_init(void)
{
    struct sigaction old;
    if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL)
        signal(SIGPIPE, SIG_IGN);
}

/* True when something accepts connections on the socket at `path`. */
static int socket_is_live(const char *path)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(addr.sun_path))
        return 0;
    strcpy(addr.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    int live = connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0;
    close(fd);
    return live;
}

int ttrpc_platform_check_address(const char *path, shim_error_t **err)
{
    struct sockaddr_un addr;
    if (strlen(path) >= sizeof(addr.sun_path))
        return error_set(err, RPC_INVALID_ARGUMENT, "socket path too long (%zu bytes, max %zu): %s",
                         strlen(path), sizeof(addr.sun_path) - 1, path);
    return 0;
}

int ttrpc_platform_prepare_path(const char *path, shim_error_t **err)
{
    struct stat st;
    if (ttrpc_platform_check_address(path, err) < 0)
        return -1;
    if (lstat(path, &st) < 0) {
        if (errno == ENOENT)
            return 0;
        return error_set_errno(err, RPC_INTERNAL, errno, "stat %s", path);
    }
    if (!S_ISSOCK(st.st_mode))
        return error_set(err, RPC_ALREADY_EXISTS, "%s exists and is not a socket", path);
    if (socket_is_live(path))
        return error_set(err, RPC_ALREADY_EXISTS, "socket %s is in use by a running server", path);
    if (unlink(path) < 0 && errno != ENOENT)
        return error_set_errno(err, RPC_INTERNAL, errno, "remove stale socket %s", path);
    return 0;
}

int ttrpc_platform_restrict_path(const char *path, shim_error_t **err)
{
    if (chmod(path, 0600) < 0)
        return error_set_errno(err, RPC_INTERNAL, errno, "chmod %s", path);
    return 0;
}

int ttrpc_platform_check_peer(uv_pipe_t *pipe, shim_error_t **err)
{
    uv_os_fd_t fd;
    int rc = uv_fileno((uv_handle_t *)pipe, &fd);
    if (rc < 0)
        return error_set_uv(err, RPC_INTERNAL, rc, "peer credentials");
    struct ucred cred;
    socklen_t len = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
        return error_set_errno(err, RPC_PERMISSION_DENIED, errno, "peer credentials");
    /* Same rule as containerd's UnixSocketRequireSameUser: uid and gid. */
    if (cred.uid != geteuid() || cred.gid != getegid())
        return error_set(err, RPC_PERMISSION_DENIED,
                         "ttrpc: invalid credentials: peer uid %u gid %u, want %u %u",
                         (unsigned)cred.uid, (unsigned)cred.gid, (unsigned)geteuid(),
                         (unsigned)getegid());
    return 0;
}
