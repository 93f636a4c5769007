/* fork + exec with the exec's outcome known before returning: the child
 * gets the write end of a CLOEXEC pipe, which a successful execve closes;
 * on failure the child writes its errno there and _exits. */
#ifndef SHIM_UNIX_FORK_EXEC_H
#define SHIM_UNIX_FORK_EXEC_H

#include <sys/types.h>

#include "common/error.h"

/* Runs between fork and exec: async-signal-safe calls only; must execve or
 * write errno to exec_err_w and _exit. */
typedef void (*shim_exec_child_fn)(const void *ctx, int exec_err_w);

/* Returns the child's pid once it has exec'd, or -1 with err ("start <what>
 * <path>: <errno text>"); a child that failed is reaped. */
pid_t shim_fork_exec(shim_exec_child_fn child, const void *ctx, const char *what, const char *path,
                     shim_error_t **err);

#endif
