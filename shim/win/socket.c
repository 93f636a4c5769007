/* shim/socket.h on Windows: hcsshim's named pipes. */
#include "shim/socket.h"

#include <string.h>
#include <windows.h>

char *shim_serve_address(const char *containerd_address, const char *ns, const char *group,
                         shim_error_t **err)
{
    (void)containerd_address; /* hcsshim's names do not depend on it */
    return shim_pipe_address(NULL, ns, group, err);
}

/* WaitNamedPipe tells whether any instance of the name exists without
 * connecting to it: TRUE (one is free) or a timeout (all busy) both mean a
 * server is there; only "not found" means nobody serves the name. */
bool shim_socket_is_live(const char *addr)
{
    if (strncmp(addr, SHIM_PIPE_PREFIX, strlen(SHIM_PIPE_PREFIX)) != 0)
        return false;
    if (WaitNamedPipeA(addr, 1))
        return true;
    DWORD e = GetLastError();
    return e != ERROR_FILE_NOT_FOUND && e != ERROR_PATH_NOT_FOUND && e != ERROR_INVALID_NAME &&
           e != ERROR_BAD_PATHNAME;
}

int shim_socket_remove(const char *addr, shim_error_t **err)
{
    if (strncmp(addr, SHIM_PIPE_PREFIX, strlen(SHIM_PIPE_PREFIX)) != 0)
        return error_set(err, RPC_INVALID_ARGUMENT, "not a named pipe address: %s", addr);
    return 0;
}
