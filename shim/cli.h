/* Command line of containerd-shim-runhcs-v1 (shim-contract.md §3.2, §3.5, §3.7).
 *
 * Go flag package style: `-x v`, `--x v`, `-x=v`, `--x=v`; boolean flags take
 * no separate value (`-debug`, `-debug=true|false`). Parsing stops at the
 * first non-flag word (the action) or at `--`. */
#ifndef SHIM_CLI_H
#define SHIM_CLI_H

#include <stdbool.h>

#include "common/error.h"

enum shim_action {
    SHIM_ACTION_SERVE = 0, /* no action word: the long-running daemon */
    SHIM_ACTION_START,
    SHIM_ACTION_DELETE,
};

/* String members point into argv (not owned). Missing flags are "". */
struct shim_cli_args {
    const char *namespace_name;
    const char *address;        /* containerd's gRPC socket */
    const char *publish_binary; /* containerd binary for the legacy publish path */
    const char *id;
    const char *bundle;
    const char *socket; /* serve: our own ttrpc address (unix://...) */
    bool debug;
    enum shim_action action;
};

/* Returns 0, or -1 with err (InvalidArgument) naming the bad flag or word. */
int shim_cli_parse(int argc, char **argv, struct shim_cli_args *out, shim_error_t **err);
const char *shim_action_name(enum shim_action action);
/* Usage text for -h / errors. */
const char *shim_cli_usage(void);

#endif
