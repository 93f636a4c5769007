/* The `start` and `delete` actions (shim-contract.md §3.2-§3.5, §3.7, §3.8).
 * Portable flow in shim/start.c; how the daemon is launched and what delete
 * cleans up is shim/unix/start.c (runc model: bind, fork with fd 3/4) or
 * shim/win/start.c (hcsshim model: spawn, wait for the daemon's readiness). */
#ifndef SHIM_START_H
#define SHIM_START_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "shim/bundle.h"
#include "shim/cli.h"

#define SHIM_ANNOTATION_RUNC_GROUP "io.containerd.runc.v2.group"
#define SHIM_ANNOTATION_SANDBOX_ID "io.kubernetes.cri.sandbox-id"
#define SHIM_ANNOTATION_CONTAINER_TYPE "io.kubernetes.cri.container-type"

/* The fds the daemon inherits from `start` (Linux). */
#define SHIM_LISTEN_FD 3
#define SHIM_OPTIONS_FD 4

struct shim_group {
    const char *id; /* grouping key: points into spec or the task id */
    /* container-type=container: the pod's shim must already be running. */
    bool must_exist;
};

/* Chooses the grouping key: the runc group annotation, else the CRI sandbox
 * id, else the task id. CRI container-type is checked like hcsshim does
 * (sandbox: sandbox-id must equal id; container: needs sandbox-id). */
int shim_group_resolve(const struct bundle_spec *spec, const char *id, struct shim_group *out,
                       shim_error_t **err);

/* Runs `start`: prints the address on out_fd. self is this executable;
 * in_fd/out_fd are (CRT) file descriptors. */
int shim_start(const struct shim_cli_args *args, const char *self, int in_fd, int out_fd,
               shim_error_t **err);

/* Serialized DeleteResponse{pid 0, exit_status 255, exited_at now}; free() it. */
uint8_t *shim_delete_response(size_t *len);

/* Runs `delete`: cleanup for args->id, DeleteResponse on out_fd. Problems
 * that do not stop the response are reported on warn_fd. */
int shim_delete(const struct shim_cli_args *args, int out_fd, int warn_fd, shim_error_t **err);

#endif
