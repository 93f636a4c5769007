/* Explicit error values in crun's out-parameter style.
 *
 * A failing function returns a negative value and, when `err` is not NULL,
 * stores a heap-allocated error the caller owns (release with error_free).
 * Codes are gRPC status codes so any layer's error can be answered to
 * containerd without translation. */
#ifndef COMMON_ERROR_H
#define COMMON_ERROR_H

#include <stdarg.h>

#include "common/compiler.h"

enum rpc_code {
    RPC_OK = 0,
    RPC_CANCELED = 1,
    RPC_UNKNOWN = 2,
    RPC_INVALID_ARGUMENT = 3,
    RPC_DEADLINE_EXCEEDED = 4,
    RPC_NOT_FOUND = 5,
    RPC_ALREADY_EXISTS = 6,
    RPC_PERMISSION_DENIED = 7,
    RPC_RESOURCE_EXHAUSTED = 8,
    RPC_FAILED_PRECONDITION = 9,
    RPC_ABORTED = 10,
    RPC_OUT_OF_RANGE = 11,
    RPC_UNIMPLEMENTED = 12,
    RPC_INTERNAL = 13,
    RPC_UNAVAILABLE = 14,
    RPC_DATA_LOSS = 15,
    RPC_UNAUTHENTICATED = 16,
};

typedef struct shim_error {
    int code;      /* enum rpc_code */
    int sys_errno; /* errno or negative libuv code, 0 if none */
    char *msg;
} shim_error_t;

/* Stores a new error in *err (if err != NULL) and returns -1. */
int error_set(shim_error_t **err, int code, const char *fmt, ...) SHIM_PRINTF(3, 4);
/* Like error_set, appending ": strerror(errnum)". */
int error_set_errno(shim_error_t **err, int code, int errnum, const char *fmt, ...)
    SHIM_PRINTF(4, 5);
/* Like error_set, appending ": uv_strerror(uv_status)". */
int error_set_uv(shim_error_t **err, int code, int uv_status, const char *fmt, ...)
    SHIM_PRINTF(4, 5);
/* Prefixes an existing error's message with more context; returns -1. */
int error_wrap(shim_error_t **err, const char *fmt, ...) SHIM_PRINTF(2, 3);
void error_free(shim_error_t *err);
const char *rpc_code_name(int code);

#endif
