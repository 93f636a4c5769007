#include "common/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

static char *vformat(const char *fmt, va_list ap)
{
    char *out = NULL;
    if (vasprintf(&out, fmt, ap) < 0)
        return NULL;
    return out;
}

static int store(shim_error_t **err, int code, int sys_errno, char *msg)
{
    if (err == NULL) {
        free(msg);
        return -1;
    }
    shim_error_t *e = calloc(1, sizeof(*e));
    if (e == NULL) {
        free(msg);
        *err = NULL;
        return -1;
    }
    e->code = code;
    e->sys_errno = sys_errno;
    e->msg = msg ? msg : strdup("out of memory");
    *err = e;
    return -1;
}

int error_set(shim_error_t **err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = vformat(fmt, ap);
    va_end(ap);
    return store(err, code, 0, msg);
}

static char *append(char *msg, const char *suffix)
{
    char *out = NULL;
    if (msg == NULL || asprintf(&out, "%s: %s", msg, suffix) < 0)
        out = NULL;
    free(msg);
    return out;
}

int error_set_errno(shim_error_t **err, int code, int errnum, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = vformat(fmt, ap);
    va_end(ap);
    return store(err, code, errnum, append(msg, strerror(errnum)));
}

int error_set_uv(shim_error_t **err, int code, int uv_status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = vformat(fmt, ap);
    va_end(ap);
    return store(err, code, uv_status, append(msg, uv_strerror(uv_status)));
}

int error_wrap(shim_error_t **err, const char *fmt, ...)
{
    if (err == NULL || *err == NULL)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    char *prefix = vformat(fmt, ap);
    va_end(ap);
    char *out = NULL;
    if (prefix != NULL && asprintf(&out, "%s: %s", prefix, (*err)->msg) >= 0) {
        free((*err)->msg);
        (*err)->msg = out;
    }
    free(prefix);
    return -1;
}

void error_free(shim_error_t *err)
{
    if (err == NULL)
        return;
    free(err->msg);
    free(err);
}

const char *rpc_code_name(int code)
{
    static const char *const names[] = {
        "ok",        "canceled",          "unknown",           "invalid argument",
        "deadline exceeded", "not found",  "already exists",    "permission denied",
        "resource exhausted", "failed precondition", "aborted", "out of range",
        "not implemented", "internal",     "unavailable",       "data loss",
        "unauthenticated",
    };
    if (code < 0 || code >= (int)(sizeof(names) / sizeof(names[0])))
        return "unknown";
    return names[code];
}
