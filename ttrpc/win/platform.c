/* ttrpc/platform.h for Windows: the transport is a byte-mode named pipe
 * (\\.\pipe\...), which libuv's uv_pipe_* create and connect natively.
 * (Adopted from the Windows build helper's staged compat/win copy.) */
#include "ttrpc/platform.h"

#include <string.h>
#include <windows.h>

#define PIPE_PREFIX "\\\\.\\pipe\\"
/* Named pipe names are limited to 256 characters including the prefix. */
#define PIPE_NAME_MAX 256

/* Writes to a closed pipe fail with an error on Windows; no SIGPIPE. */
void ttrpc_platform_init(void) {}

int ttrpc_platform_check_address(const char *path, shim_error_t **err)
{
    size_t prefix = strlen(PIPE_PREFIX);
    if (strncmp(path, PIPE_PREFIX, prefix) != 0 || path[prefix] == '\0')
        return error_set(err, RPC_INVALID_ARGUMENT, "not a named pipe path (\\\\.\\pipe\\...): %s",
                         path);
    if (strlen(path) > PIPE_NAME_MAX)
        return error_set(err, RPC_INVALID_ARGUMENT, "pipe name too long (%zu bytes, max %d): %s",
                         strlen(path), PIPE_NAME_MAX, path);
    return 0;
}

/* A pipe disappears with its last handle, so nothing is ever stale. A live
 * server should make uv_pipe_bind fail (FILE_FLAG_FIRST_PIPE_INSTANCE), but
 * not every implementation enforces that flag (wine does not), so ask first:
 * WaitNamedPipe reports whether any instance of the name exists without
 * connecting to it. */
int ttrpc_platform_prepare_path(const char *path, shim_error_t **err)
{
    if (ttrpc_platform_check_address(path, err) < 0)
        return -1;
    if (WaitNamedPipeA(path, 1) || GetLastError() != ERROR_FILE_NOT_FOUND)
        return error_set(err, RPC_ALREADY_EXISTS, "pipe %s is in use by a running server", path);
    return 0;
}

/* Access is governed by the pipe's name: \\.\pipe\ProtectedPrefix\
 * Administrators\... can only be created by Administrators (hcsshim's
 * convention), and libuv's default DACL admits the creator and SYSTEM. */
int ttrpc_platform_restrict_path(const char *path, shim_error_t **err)
{
    (void)path;
    (void)err;
    return 0;
}

/* SO_PEERCRED has no pipe equivalent that libuv exposes; the pipe's name
 * and DACL already limit who can connect. */
int ttrpc_platform_check_peer(uv_pipe_t *pipe, shim_error_t **err)
{
    (void)pipe;
    (void)err;
    return 0;
}
