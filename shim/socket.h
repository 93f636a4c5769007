/* The shim's own ttrpc address (shim-contract.md §3.3, §3.7, §3.8).
 *
 *   Linux    unix:///run/containerd/s/<sha256 hex of "<address>/<namespace>/<group>">
 *            (runc's naming; shim/unix/socket.c)
 *   Windows  \\.\pipe\ProtectedPrefix\Administrators\containerd-shim-<ns>-<group>-pipe
 *            (hcsshim's naming; shim/win/socket.c)
 *
 * The naming helpers are portable (tested on both); listening, liveness and
 * removal are the platform's. */
#ifndef SHIM_SOCKET_H
#define SHIM_SOCKET_H

#include <stdbool.h>
#include <stddef.h>

#include "common/error.h"

#define SHIM_SOCKET_DIR "/run/containerd/s"
#define SHIM_UNIX_PREFIX "unix://"
#define SHIM_PIPE_PREFIX "\\\\.\\pipe\\"
/* Only Administrators can create pipes below it: nobody can squat a name. */
#define SHIM_PIPE_PROTECTED_PREFIX SHIM_PIPE_PREFIX "ProtectedPrefix\\Administrators\\"
/* Named pipe names are limited to 256 characters including the prefix. */
#define SHIM_PIPE_NAME_MAX 256

/* Go path.Clean semantics (for "a//b/../c" style joins); returns a new string. */
char *shim_path_clean(const char *path);

/* Computes "unix://<dir>/<hex>" where hex = sha256(clean(address/ns/group)).
 * dir NULL means SHIM_SOCKET_DIR. Returns a new string or NULL with err. */
char *shim_socket_address(const char *dir, const char *containerd_address, const char *ns,
                          const char *group, shim_error_t **err);

/* hcsshim's serving pipe "<prefix>containerd-shim-<ns>-<group>-pipe"; prefix
 * NULL means SHIM_PIPE_PROTECTED_PREFIX. New string or NULL with err
 * (InvalidArgument when the name is too long). */
char *shim_pipe_address(const char *prefix, const char *ns, const char *group, shim_error_t **err);

/* The log pipe containerd dials for a Windows shim (unprotected name):
 * \\.\pipe\containerd-shim-<ns>-<id>-log. New string or NULL with err. */
char *shim_log_pipe_address(const char *ns, const char *id, shim_error_t **err);

/* The filesystem path of a unix:// address (pointer into addr), or NULL. */
const char *shim_socket_path(const char *addr);

/* ---- platform (shim/unix/socket.c, shim/win/socket.c) ---------------------- */

/* The address the shim serving `group` listens on: the unix:// socket
 * (Linux) or the protected pipe (Windows). New string or NULL with err. */
char *shim_serve_address(const char *containerd_address, const char *ns, const char *group,
                         shim_error_t **err);

/* True when something accepts connections on addr (a live shim). */
bool shim_socket_is_live(const char *addr);

/* Removes the socket file of addr; missing is fine. Windows: a pipe goes
 * away with its last handle, nothing to remove. */
int shim_socket_remove(const char *addr, shim_error_t **err);

#ifndef _WIN32
/* Creates the parent directory (0711), binds and listens; socket mode 0600.
 * Returns the listening fd (CLOEXEC) or -1; EADDRINUSE is reported with
 * err->sys_errno == EADDRINUSE so the caller can decide about reuse. */
int shim_socket_listen(const char *addr, shim_error_t **err);

/* mkdir -p with the given mode for the created components. */
int shim_mkdir_p(const char *dir, unsigned mode, shim_error_t **err);
#endif

#endif
