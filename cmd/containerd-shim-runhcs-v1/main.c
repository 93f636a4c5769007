/* containerd-shim-runhcs-v1: the containerd runtime v2 shim.
 *   ... start   print the address of a (new or shared) serving shim
 *   ... delete  clean up after a task, print a DeleteResponse
 *   ...         serve (started by `start`) */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <uv.h>

#include "common/error.h"
#include "common/log.h"
#include "shim/cli.h"
#include "shim/daemon.h"
#include "shim/start.h"

static int fail(const char *action, shim_error_t *err)
{
    fprintf(stderr, "containerd-shim-runhcs-v1 %s: %s\n", action,
            err && err->msg ? err->msg : "failed");
    error_free(err);
    return 1;
}

int main(int argc, char **argv)
{
    struct shim_cli_args args;
    shim_error_t *err = NULL;
    if (shim_cli_parse(argc, argv, &args, &err) < 0) {
        fprintf(stderr, "containerd-shim-runhcs-v1: %s\n%s\n", err->msg, shim_cli_usage());
        error_free(err);
        return 1;
    }
    /* start/delete talk to containerd through stdout/stderr only: a log line
     * there would end up in the address or the "cleanup warnings". */
    if (args.action != SHIM_ACTION_SERVE)
        log_configure(-1, LOG_LEVEL_PANIC, LOG_FORMAT_TEXT);
    switch (args.action) {
    case SHIM_ACTION_START: {
        char self[PATH_MAX];
        size_t n = sizeof(self);
        if (uv_exepath(self, &n) != 0)
            return fail("start", NULL);
        if (shim_start(&args, self, STDIN_FILENO, STDOUT_FILENO, &err) < 0)
            return fail("start", err);
        return 0;
    }
    case SHIM_ACTION_DELETE:
        if (shim_delete(&args, STDOUT_FILENO, STDERR_FILENO, &err) < 0)
            return fail("delete", err);
        return 0;
    default:
        return shim_daemon_run(&args);
    }
}
