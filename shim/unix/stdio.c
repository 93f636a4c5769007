/* Upstream stdio on Linux (shim-contract.md §5.1, §5.2): FIFOs opened the
 * way runc does, file:// sinks, and the FIFO backlog the relay waits on. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shim/socket.h"
#include "shim/stdio_internal.h"

static int open_fifo(const char *path, int flags, shim_error_t **err)
{
    int fd = open(path, flags | O_CLOEXEC);
    if (fd < 0)
        return error_set_errno(err, errno == ENOENT ? RPC_NOT_FOUND : RPC_INTERNAL, errno,
                               "open stdio %s", path);
    return fd;
}

/* A stream sink when the fd can be polled (FIFO, socket), else an fd sink. */
static int sink_from_fd(shim_upstream_io_t *io, int fd, struct sink *sink, shim_error_t **err)
{
    struct stat st;
    if (fstat(fd, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode))) {
        if (stdio_wrap_pipe(io->loop, fd, &sink->pipe, err) < 0) {
            close(fd);
            return -1;
        }
        return 0;
    }
    sink->fd = fd;
    return 0;
}

static int open_file_sink(shim_upstream_io_t *io, const char *path, struct sink *sink,
                          shim_error_t **err)
{
    char *dir = strdup(path);
    if (dir == NULL)
        return error_set(err, RPC_INTERNAL, "out of memory");
    char *slash = strrchr(dir, '/');
    int ret = 0;
    if (slash != NULL && slash != dir) {
        *slash = '\0';
        ret = shim_mkdir_p(dir, 0755, err);
    }
    free(dir);
    if (ret < 0)
        return -1;
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return error_set_errno(err, RPC_INTERNAL, errno, "open stdio file %s", path);
    return sink_from_fd(io, fd, sink, err);
}

int stdio_open_output(shim_upstream_io_t *io, const struct shim_stdio_uri *uri, struct sink *sink,
                      shim_error_t **err)
{
    if (uri->kind == SHIM_STDIO_FILE)
        return open_file_sink(io, uri->path, sink, err);
    int fd = open_fifo(uri->path, O_RDWR | O_NONBLOCK, err);
    if (fd < 0)
        return -1;
    return sink_from_fd(io, fd, sink, err);
}

int stdio_open_stdin(shim_upstream_io_t *io, const char *path, shim_error_t **err)
{
    struct shim_stdio_uri uri;
    if (shim_stdio_uri_parse(path, &uri, err) < 0)
        return -1;
    int ret = 0;
    int fd = -1;
    struct stat st;
    if (uri.kind != SHIM_STDIO_FIFO) {
        ret = error_set(err, RPC_INVALID_ARGUMENT, "stdin %s must be a FIFO path", path);
        goto out;
    }
    fd = open_fifo(uri.path, O_RDONLY | O_NONBLOCK, err);
    if (fd < 0) {
        ret = -1;
        goto out;
    }
    if (fstat(fd, &st) < 0 || !S_ISFIFO(st.st_mode)) {
        close(fd);
        ret = error_set(err, RPC_INVALID_ARGUMENT, "stdin %s is not a FIFO", uri.path);
        goto out;
    }
    /* The keep-alive writer: no EOF until CloseIO, whatever the client does. */
    io->stdin_keepalive_fd = open(uri.path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (io->stdin_keepalive_fd < 0) {
        ret =
            error_set_errno(err, RPC_INTERNAL, errno, "open stdin keep-alive writer %s", uri.path);
        close(fd);
        goto out;
    }
    ret = stdio_wrap_pipe(io->loop, fd, &io->stdin_pipe, err);
    if (ret < 0)
        close(fd);
out:
    shim_stdio_uri_free(&uri);
    return ret;
}

void stdio_close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

int stdio_make_pipe(int fds[2], shim_error_t **err)
{
    if (pipe2(fds, O_CLOEXEC) < 0)
        return error_set_errno(err, RPC_INTERNAL, errno, "pipe");
    return 0;
}

int stdio_sink_unread(const struct sink *sink)
{
    uv_os_fd_t fd;
    int n = 0;
    if (sink->pipe == NULL || uv_is_closing((uv_handle_t *)sink->pipe) ||
        uv_fileno((uv_handle_t *)sink->pipe, &fd) != 0)
        return 0;
    if (ioctl(fd, FIONREAD, &n) != 0 || n < 0)
        return 0;
    return n;
}
