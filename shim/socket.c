#include "shim/socket.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/sha256.h"

char *shim_path_clean(const char *path)
{
    size_t len = strlen(path);
    bool rooted = len > 0 && path[0] == '/';
    char *out = malloc(len + 2);
    if (out == NULL)
        return NULL;
    size_t w = 0;      /* write position */
    size_t dotdot = 0; /* out[0:dotdot] cannot be backtracked over */
    if (rooted) {
        out[w++] = '/';
        dotdot = 1;
    }
    size_t r = rooted ? 1 : 0;
    while (r < len) {
        if (path[r] == '/') {
            r++;
        } else if (path[r] == '.' && (r + 1 == len || path[r + 1] == '/')) {
            r++;
        } else if (path[r] == '.' && path[r + 1] == '.' && (r + 2 == len || path[r + 2] == '/')) {
            r += 2;
            if (w > dotdot) {
                w--; /* back up to the previous separator */
                while (w > dotdot && out[w] != '/')
                    w--;
            } else if (!rooted) {
                if (w > 0)
                    out[w++] = '/';
                out[w++] = '.';
                out[w++] = '.';
                dotdot = w;
            }
        } else {
            if ((rooted && w != 1) || (!rooted && w != 0))
                out[w++] = '/';
            for (; r < len && path[r] != '/'; r++)
                out[w++] = path[r];
        }
    }
    if (w == 0)
        out[w++] = '.';
    out[w] = '\0';
    return out;
}

char *shim_socket_address(const char *dir, const char *containerd_address, const char *ns,
                          const char *group, shim_error_t **err)
{
    char *joined = NULL;
    char *cleaned = NULL;
    char *addr = NULL;
    /* Go's filepath.Join drops empty elements before cleaning. */
    const char *parts[3] = {containerd_address, ns, group};
    size_t total = 1;
    for (int i = 0; i < 3; i++)
        total += strlen(parts[i]) + 1;
    joined = calloc(1, total);
    if (joined == NULL)
        goto oom;
    for (int i = 0; i < 3; i++) {
        if (parts[i][0] == '\0')
            continue;
        if (joined[0] != '\0')
            strcat(joined, "/");
        strcat(joined, parts[i]);
    }
    cleaned = shim_path_clean(joined);
    if (cleaned == NULL)
        goto oom;
    char hex[SHA256_HEX_SIZE];
    sha256_hex(cleaned, strlen(cleaned), hex);
    if (asprintf(&addr, "%s%s/%s", SHIM_UNIX_PREFIX, dir ? dir : SHIM_SOCKET_DIR, hex) < 0) {
        addr = NULL;
        goto oom;
    }
    free(joined);
    free(cleaned);
    return addr;
oom:
    free(joined);
    free(cleaned);
    error_set(err, RPC_INTERNAL, "out of memory computing the shim socket address");
    return NULL;
}

const char *shim_socket_path(const char *addr)
{
    size_t n = strlen(SHIM_UNIX_PREFIX);
    if (strncmp(addr, SHIM_UNIX_PREFIX, n) != 0 || addr[n] != '/')
        return NULL;
    return addr + n;
}

/* "<prefix>containerd-shim-<ns>-<name>-<kind>", bounded like every pipe name. */
static char *shim_pipe_name(const char *prefix, const char *ns, const char *name, const char *kind,
                            shim_error_t **err)
{
    char *pipe = NULL;
    if (asprintf(&pipe, "%scontainerd-shim-%s-%s-%s", prefix, ns, name, kind) < 0) {
        error_set(err, RPC_INTERNAL, "out of memory computing the shim %s name", kind);
        return NULL;
    }
    if (strlen(pipe) > SHIM_PIPE_NAME_MAX) {
        error_set(err, RPC_INVALID_ARGUMENT, "pipe name too long (%zu bytes, max %d): %s",
                  strlen(pipe), SHIM_PIPE_NAME_MAX, pipe);
        free(pipe);
        return NULL;
    }
    return pipe;
}

char *shim_pipe_address(const char *prefix, const char *ns, const char *group, shim_error_t **err)
{
    return shim_pipe_name(prefix ? prefix : SHIM_PIPE_PROTECTED_PREFIX, ns, group, "pipe", err);
}

char *shim_log_pipe_address(const char *ns, const char *id, shim_error_t **err)
{
    return shim_pipe_name(SHIM_PIPE_PREFIX, ns, id, "log", err);
}
