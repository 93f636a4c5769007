/* The shim's own ttrpc socket on Linux (shim-contract.md §3.3, §3.7):
 * unix:///run/containerd/s/<sha256 hex of "<address>/<namespace>/<group>">. */
#ifndef SHIM_SOCKET_H
#define SHIM_SOCKET_H

#include <stdbool.h>
#include <stddef.h>

#include "common/error.h"

#define SHIM_SOCKET_DIR "/run/containerd/s"
#define SHIM_UNIX_PREFIX "unix://"

/* Go path.Clean semantics (for "a//b/../c" style joins); returns a new string. */
char *shim_path_clean(const char *path);

/* Computes "unix://<dir>/<hex>" where hex = sha256(clean(address/ns/group)).
 * dir NULL means SHIM_SOCKET_DIR. Returns a new string or NULL with err. */
char *shim_socket_address(const char *dir, const char *containerd_address, const char *ns,
                          const char *group, shim_error_t **err);

/* The filesystem path of a unix:// address (pointer into addr), or NULL. */
const char *shim_socket_path(const char *addr);

/* Creates the parent directory (0711), binds and listens; socket mode 0600.
 * Returns the listening fd (CLOEXEC) or -1; EADDRINUSE is reported with
 * err->sys_errno == EADDRINUSE so the caller can decide about reuse. */
int shim_socket_listen(const char *addr, shim_error_t **err);

/* True when something accepts connections on addr (a live shim). */
bool shim_socket_is_live(const char *addr);

/* Removes the socket file of addr; missing is fine. */
int shim_socket_remove(const char *addr, shim_error_t **err);

/* mkdir -p with the given mode for the created components. */
int shim_mkdir_p(const char *dir, unsigned mode, shim_error_t **err);

#endif
