/* What shim/daemon.c asks of the platform (shim/unix/daemon.c,
 * shim/win/daemon.c). Called in this order: init, open_log, load_options,
 * start, listen, then serving or failed; close at shutdown. */
#ifndef SHIM_DAEMON_PLATFORM_H
#define SHIM_DAEMON_PLATFORM_H

#include "shim/daemon.h"

/* Initialises d->signals (and any platform state) so that close can always
 * run, even after a failed setup. */
void daemon_platform_init(struct shim_daemon *d);
/* Points the log at containerd; returns the fd to log to (-1: nowhere yet). */
int daemon_platform_open_log(struct shim_daemon *d);
/* The runtime options start passed (a serialized Any) into d->options;
 * absent or unreadable options leave them empty. */
void daemon_platform_load_options(struct shim_daemon *d);
/* Process-wide setup after logging works: subreaper, signal handlers. */
int daemon_platform_start(struct shim_daemon *d, shim_error_t **err);
/* Serves d->server on the address start chose; sets d->socket_addr. */
int daemon_platform_listen(struct shim_daemon *d, shim_error_t **err);
/* The daemon serves (Windows: tells start it is ready). */
void daemon_platform_serving(struct shim_daemon *d);
/* Setup failed (Windows: the message goes to start, which reports it). */
void daemon_platform_failed(struct shim_daemon *d, const char *msg);
/* Closes the platform handles (part of shutdown). */
void daemon_platform_close(struct shim_daemon *d);

#endif
