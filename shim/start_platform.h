/* What shim/start.c asks of the platform (shim/unix/start.c, shim/win/start.c):
 * making sure a daemon serves the group's address, and the platform part of
 * `delete`. The flow around it (options, grouping, address, bundle files,
 * output) is portable. */
#ifndef SHIM_START_PLATFORM_H
#define SHIM_START_PLATFORM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/error.h"
#include "shim/bundle.h"
#include "shim/cli.h"

struct start_state {
    char *bundle;
    struct bundle_spec spec;
    uint8_t *options; /* start's stdin: a serialized Any, may be empty */
    size_t options_len;
    char *addr;           /* the address the group's shim serves */
    const char *group_id; /* points into spec or args */
    /* Linux: the socket start binds and the daemon inherits (fd 3), the
     * options memfd (fd 4) and /dev/null; -1 when unused. */
    int listen_fd;
    int options_fd;
    int null_fd;
};

/* Makes sure a shim serves st->addr: either one already does (*reuse), or
 * this launches the daemon and returns once it accepts connections (*pid). */
int start_platform_launch(const struct shim_cli_args *args, const char *self,
                          struct start_state *st, bool *reuse, pid_t *pid, shim_error_t **err);
/* A later step of start failed: stop the daemon launched (pid > 0) and
 * release the address if this start claimed it. */
void start_platform_abort(struct start_state *st, pid_t pid, bool reuse);
/* Closes what launch left open (st's fds). */
void start_platform_release(struct start_state *st);

/* The platform part of `delete` for args->id (its bundle is -bundle, or the
 * cwd on Linux): unmounting, removing a dead shim's socket. Problems go to warn_fd
 * through start_warn. */
void delete_platform_cleanup(const struct shim_cli_args *args, int warn_fd);
/* Writes "delete: <msg>\n" to fd and frees e (NULL: nothing). */
void start_warn(int fd, shim_error_t *e);

#endif
