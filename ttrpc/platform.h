/* The few things ttrpc needs beyond libuv's portable pipe API. One
 * implementation per platform: ttrpc/unix/platform.c (named pipes on Windows
 * would get ttrpc/windows/platform.c). Internal to ttrpc/. */
#ifndef TTRPC_PLATFORM_H
#define TTRPC_PLATFORM_H

#include <uv.h>

#include "common/error.h"

/* Makes writes to a peer that went away fail with an error instead of
 * killing the process (Unix: SIGPIPE is ignored unless someone installed a
 * handler). Called by every server and client constructor. */
void ttrpc_platform_init(void);
/* Fails (InvalidArgument) for an address the transport cannot name, e.g. a
 * Unix socket path too long for sun_path (libuv would silently cut it). */
int ttrpc_platform_check_address(const char *path, shim_error_t **err);
/* Makes `path` bindable: removes a stale socket nobody listens on; fails
 * when a live server owns it or something else is in the way. */
int ttrpc_platform_prepare_path(const char *path, shim_error_t **err);
/* Restricts a freshly bound socket to its owner (mode 0600). */
int ttrpc_platform_restrict_path(const char *path, shim_error_t **err);
/* Fails (PermissionDenied) when the peer of an accepted connection runs
 * under another effective uid or gid than we do. */
int ttrpc_platform_check_peer(uv_pipe_t *pipe, shim_error_t **err);

#endif
