/* Turning parsed ProcessParameters (gcs/bridge_msg.h) into what exec needs:
 * argv, environment and working directory for a process run in the UVM, and
 * the OCI process document for a container exec (gcs-bridge.md §8.1-8.2). */
#ifndef GCS_GUEST_PROCPARAMS_H
#define GCS_GUEST_PROCPARAMS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/error.h"
#include "gcs/bridge_msg.h"

/* A UVM process command. */
struct gcs_guest_command {
    char **argv;       /* NULL-terminated, at least one word */
    char **env;        /* NULL-terminated "K=V", sorted by key */
    char *working_dir; /* NULL: the agent's own */
};

/* CommandArgs wins over CommandLine (split with shell quoting rules).
 * RPC_INVALID_ARGUMENT when there is no command or a value has the wrong
 * type. */
int gcs_guest_command_from_params(const struct gcs_process_parameters *p,
                                  struct gcs_guest_command *out, shim_error_t **err);
void gcs_guest_command_free(struct gcs_guest_command *c);

/* The OCI process for `crun exec --process`: a copy of OciProcess with
 * defaults crun needs (cwd "/"). Requires a
 * non-empty args array of strings. New reference or -1. */
int gcs_guest_oci_process(const json_t *oci_process, json_t **out, shim_error_t **err);
/* Whether OciProcess asks for a terminal. */
bool gcs_guest_oci_process_terminal(const json_t *oci_process);

/* Splits a command line into words with POSIX shell quoting ('..', "..",
 * backslash), no expansion. NULL-terminated, malloc'd. -1 on an
 * unterminated quote. */
int gcs_split_command_line(const char *line, char ***out, shim_error_t **err);
void gcs_strv_free(char **v);
size_t gcs_strv_len(char *const *v);

#endif
