/* Asynchronous invocations of the OCI runtime (crun, or runc).
 *
 * Every call runs `<runtime> --root <root> --log <file> --log-format json
 * [--cgroup-manager M] <args...>` through the reaper, optionally capturing
 * stdout, and reports the exit code plus the runtime's last logged error. */
#ifndef GCS_GUEST_RUNTIME_H
#define GCS_GUEST_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "common/error.h"
#include "gcs/guest/reaper.h"

struct gcs_runtime {
    uv_loop_t *loop;
    struct gcs_reaper *reaper;
    const char *path;           /* binary */
    const char *root;           /* --root */
    const char *log_dir;        /* per-call log files live here */
    const char *cgroup_manager; /* crun --cgroup-manager value, NULL for the default */
    unsigned long seq;
};

struct gcs_runtime_result {
    int exit_code;      /* 0 on success; 128+signo if killed */
    const char *error;  /* non-NULL iff exit_code != 0: the runtime's message */
    const char *output; /* captured stdout (NUL-terminated) or NULL */
    size_t output_len;
};

/* res is valid only during the callback. */
typedef void (*gcs_runtime_cb)(void *data, const struct gcs_runtime_result *res);

struct gcs_runtime_stdio {
    int fd[3];           /* inherited as the child's 0,1,2; -1 = /dev/null */
    bool capture_stdout; /* overrides fd[1] */
};

/* Starts one invocation; args is NULL-terminated. stdio may be NULL (all
 * /dev/null). On -1 the callback is never called. */
int gcs_runtime_run(struct gcs_runtime *rt, const char *const *args,
                    const struct gcs_runtime_stdio *stdio, gcs_runtime_cb cb, void *data,
                    shim_error_t **err);

/* The message of the last "error"/"fatal"/"warning" record of a JSON-lines
 * runtime log (else the last non-empty line); malloc'd or NULL. */
char *gcs_runtime_log_error(const char *log_text);

#endif
