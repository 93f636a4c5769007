/* Upstream stdio on Windows (shim-contract.md §5.1, §5.2): ctr/CRI serve
 * \\.\pipe\... named pipes and the shim dials them as a client; file:// is
 * appended to; binary:// is in shim/win/stdio_logger.c.
 *
 * Pipes are dialled synchronously (CreateFileW, one bounded wait when every
 * server instance is busy) so Create/Start fail with a clear error when the
 * client's pipe is missing, like an absent FIFO on Linux. Not done: hcsshim's
 * redial of stdout/stderr after a containerd restart (io_retry_timeout). */
#include "shim/stdio_internal.h" /* first: uv.h brings winsock2.h before windows.h */

#include <errno.h>
#include <fcntl.h>
#include <io.h>
#include <stdlib.h>
#include <string.h>
#include <windows.h>

#include "hcs/win/utf16.h"

/* How long to wait for a free instance of a busy pipe server. */
#define STDIO_PIPE_BUSY_WAIT_MS 5000

static int dial_error(const char *path, DWORD e, shim_error_t **err)
{
    if (e == ERROR_FILE_NOT_FOUND || e == ERROR_PATH_NOT_FOUND)
        return error_set(err, RPC_NOT_FOUND,
                         "open stdio %s: no such named pipe (is the client still serving it?)",
                         path);
    if (e == ERROR_ACCESS_DENIED)
        return error_set(err, RPC_PERMISSION_DENIED, "open stdio %s: access denied", path);
    if (e == ERROR_PIPE_BUSY || e == ERROR_SEM_TIMEOUT)
        return error_set(err, RPC_UNAVAILABLE, "open stdio %s: pipe busy for %d ms", path,
                         STDIO_PIPE_BUSY_WAIT_MS);
    return error_set(err, RPC_INTERNAL, "open stdio %s (Windows error %lu)", path,
                     (unsigned long)e);
}

/* Connects to the client's pipe server: write-only for stdout/stderr
 * (inbound servers), read-only for stdin (outbound). The attribute right is
 * what libuv needs to set and query the pipe's mode. */
static int dial_pipe(uv_loop_t *loop, const char *path, bool for_write, uv_pipe_t **out,
                     shim_error_t **err)
{
    wchar_t *wpath = hcs_utf8_to_utf16(path, err);
    if (wpath == NULL)
        return -1;
    DWORD access =
        for_write ? GENERIC_WRITE | FILE_READ_ATTRIBUTES : GENERIC_READ | FILE_WRITE_ATTRIBUTES;
    HANDLE h = INVALID_HANDLE_VALUE;
    for (int attempt = 0; attempt < 2; attempt++) {
        h = CreateFileW(wpath, access, 0, NULL, OPEN_EXISTING, FILE_FLAG_OVERLAPPED, NULL);
        if (h != INVALID_HANDLE_VALUE || GetLastError() != ERROR_PIPE_BUSY)
            break;
        if (!WaitNamedPipeW(wpath, STDIO_PIPE_BUSY_WAIT_MS))
            break;
    }
    DWORD e = GetLastError();
    free(wpath);
    if (h == INVALID_HANDLE_VALUE)
        return dial_error(path, e, err);
    int fd = _open_osfhandle((intptr_t)h, for_write ? _O_WRONLY : _O_RDONLY);
    if (fd < 0) {
        CloseHandle(h);
        return error_set_errno(err, RPC_INTERNAL, errno, "open stdio %s: no CRT descriptor", path);
    }
    if (stdio_wrap_pipe(loop, fd, out, err) < 0) {
        _close(fd);
        return -1;
    }
    return 0;
}

/* file:///C:/dir/x arrives as path "/C:/dir/x". */
static const char *native_file_path(const char *path)
{
    if (path[0] == '/' && path[1] != '\0' && path[2] == ':')
        return path + 1;
    return path;
}

/* mkdir -p of path's parent directory ('/' and '\\' both separate). */
static int make_parent_dirs(uv_loop_t *loop, const char *path, shim_error_t **err)
{
    char *dir = strdup(path);
    if (dir == NULL)
        return error_set(err, RPC_INTERNAL, "out of memory");
    int ret = 0;
    size_t len = strlen(dir);
    for (size_t i = 1; i < len && ret == 0; i++) {
        if (dir[i] != '/' && dir[i] != '\\')
            continue;
        if (dir[i - 1] == ':' || dir[i - 1] == '/' || dir[i - 1] == '\\')
            continue; /* "C:\" and separators in a row */
        char sep = dir[i];
        dir[i] = '\0';
        uv_fs_t req;
        int rc = uv_fs_mkdir(loop, &req, dir, 0755, NULL);
        uv_fs_req_cleanup(&req);
        if (rc < 0 && rc != UV_EEXIST)
            ret = error_set_uv(err, RPC_INTERNAL, rc, "mkdir %s", dir);
        dir[i] = sep;
    }
    free(dir);
    return ret;
}

/* libuv opens with FILE_APPEND_DATA for O_APPEND, so its writes append (a CRT
 * _O_APPEND descriptor would not: uv_fs_write bypasses the CRT). */
static int open_file_sink(shim_upstream_io_t *io, const char *uri_path, struct sink *sink,
                          shim_error_t **err)
{
    const char *path = native_file_path(uri_path);
    if (make_parent_dirs(io->loop, path, err) < 0)
        return -1;
    uv_fs_t req;
    int fd = uv_fs_open(io->loop, &req, path, UV_FS_O_WRONLY | UV_FS_O_APPEND | UV_FS_O_CREAT, 0644,
                        NULL);
    uv_fs_req_cleanup(&req);
    if (fd < 0)
        return error_set_uv(err, RPC_INTERNAL, fd, "open stdio file %s", path);
    sink->fd = fd;
    return 0;
}

static int not_a_pipe(const char *what, const char *path, bool file_ok, shim_error_t **err)
{
    return error_set(err, RPC_INVALID_ARGUMENT,
                     "%s %s: on Windows stdio must be a named pipe (\\\\.\\pipe\\...)%s", what,
                     path, file_ok ? " or a file:// URI" : "");
}

int stdio_open_output(shim_upstream_io_t *io, const struct shim_stdio_uri *uri, struct sink *sink,
                      shim_error_t **err)
{
    if (uri->kind == SHIM_STDIO_FILE)
        return open_file_sink(io, uri->path, sink, err);
    if (uri->kind != SHIM_STDIO_NPIPE)
        return not_a_pipe("stdout/stderr", uri->path, true, err);
    return dial_pipe(io->loop, uri->path, true, &sink->pipe, err);
}

int stdio_open_stdin(shim_upstream_io_t *io, const char *path, shim_error_t **err)
{
    struct shim_stdio_uri uri;
    if (shim_stdio_uri_parse(path, &uri, err) < 0)
        return -1;
    int ret = uri.kind == SHIM_STDIO_NPIPE
                  ? dial_pipe(io->loop, uri.path, false, &io->stdin_pipe, err)
                  : not_a_pipe("stdin", path, false, err);
    shim_stdio_uri_free(&uri);
    return ret;
}

void stdio_close_fd(int *fd)
{
    if (*fd >= 0)
        _close(*fd);
    *fd = -1;
}

/* A named pipe client cannot see what its server has not read yet: the
 * relay reports drained once the last write completed. */
int stdio_sink_unread(const struct sink *sink)
{
    (void)sink;
    return 0;
}
