#include "shim/stdio.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shim/stdio_internal.h"

/* ---- stdio strings ------------------------------------------------------------ */

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

enum unescape_result { UNESCAPE_OK, UNESCAPE_MALFORMED, UNESCAPE_NUL, UNESCAPE_NO_MEMORY };

/* URL unescaping (%XX a byte; '+' a space in queries) into *out. An escaped
 * NUL is refused: it would silently cut the C string ("/tmp/a%00/../x"). */
static enum unescape_result query_unescape(const char *s, size_t len, bool plus_is_space,
                                           char **out_str)
{
    *out_str = NULL;
    char *out = malloc(len + 1);
    if (out == NULL)
        return UNESCAPE_NO_MEMORY;
    size_t w = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '+' && plus_is_space) {
            out[w++] = ' ';
        } else if (s[i] == '%') {
            int hi = i + 1 < len ? hex_value(s[i + 1]) : -1;
            int lo = i + 2 < len ? hex_value(s[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi | lo) == 0) {
                free(out);
                return hi < 0 || lo < 0 ? UNESCAPE_MALFORMED : UNESCAPE_NUL;
            }
            out[w++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            out[w++] = s[i];
        }
    }
    out[w] = '\0';
    *out_str = out;
    return UNESCAPE_OK;
}

/* Unescapes one URI part; on failure sets an error naming the URI. */
static int unescape_part(const char *uri, const char *part, const char *s, size_t len,
                         bool plus_is_space, char **out, shim_error_t **err)
{
    switch (query_unescape(s, len, plus_is_space, out)) {
    case UNESCAPE_OK:
        return 0;
    case UNESCAPE_NUL:
        return error_set(err, RPC_INVALID_ARGUMENT,
                         "stdio URI %s: %s contains an escaped NUL (%%00)", uri, part);
    case UNESCAPE_MALFORMED:
        return error_set(err, RPC_INVALID_ARGUMENT, "stdio URI %s: malformed %s", uri, part);
    default:
        return error_set(err, RPC_INTERNAL, "out of memory");
    }
}

static bool has_key(const struct shim_stdio_uri *uri, const char *key)
{
    for (size_t i = 0; i < uri->n_args; i += 2) {
        if (strcmp(uri->args[i], key) == 0)
            return true;
    }
    return false;
}

static int push_arg(struct shim_stdio_uri *uri, char *arg)
{
    char **grown = realloc(uri->args, (uri->n_args + 2) * sizeof(char *));
    if (grown == NULL) {
        free(arg);
        return -1;
    }
    uri->args = grown;
    uri->args[uri->n_args++] = arg;
    uri->args[uri->n_args] = NULL;
    return 0;
}

/* argv tail: each key and its first value (Go url.Values.Get). text is the
 * whole URI, for errors. */
static int parse_query(const char *text, const char *q, struct shim_stdio_uri *uri,
                       shim_error_t **err)
{
    while (*q) {
        size_t len = strcspn(q, "&");
        const char *eq = memchr(q, '=', len);
        size_t key_len = eq ? (size_t)(eq - q) : len;
        /* "key" alone has the empty value. */
        const char *value_at = eq ? eq + 1 : q + len;
        size_t value_len = (size_t)(q + len - value_at);
        char *key = NULL, *value = NULL;
        if (unescape_part(text, "query", q, key_len, true, &key, err) < 0)
            return -1;
        if (unescape_part(text, "query", value_at, value_len, true, &value, err) < 0) {
            free(key);
            return -1;
        }
        if (key[0] == '\0' || has_key(uri, key)) {
            free(key);
            free(value);
        } else if (push_arg(uri, key) < 0) {
            free(value);
            return error_set(err, RPC_INTERNAL, "out of memory");
        } else if (push_arg(uri, value) < 0) {
            return error_set(err, RPC_INTERNAL, "out of memory");
        }
        q += len;
        if (*q == '&')
            q++;
    }
    return 0;
}

static int parse_scheme_path(const char *text, const char *rest, const char *scheme,
                             struct shim_stdio_uri *out, shim_error_t **err)
{
    /* scheme:///abs/path — an authority (host) is not allowed. */
    if (strncmp(rest, "//", 2) != 0 || rest[2] != '/')
        return error_set(err, RPC_INVALID_ARGUMENT,
                         "%s:// stdio URI must name an absolute path (%s:///path)", scheme, scheme);
    const char *path = rest + 2;
    size_t path_len = strcspn(path, "?");
    if (unescape_part(text, "path", path, path_len, false, &out->path, err) < 0)
        return -1;
    if (path[path_len] == '?' && out->kind == SHIM_STDIO_BINARY)
        return parse_query(text, path + path_len + 1, out, err);
    return 0;
}

bool shim_stdio_is_npipe_path(const char *s)
{
#ifdef _WIN32
    /* \\.\pipe\name (any case, '/' accepted as a separator like Win32 does). */
    static const char prefix[] = "\\\\.\\pipe\\";
    for (size_t i = 0; i < sizeof(prefix) - 1; i++) {
        char c = s[i] == '/' ? '\\' : s[i];
        char want = prefix[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c != want)
            return false;
    }
    return s[sizeof(prefix) - 1] != '\0';
#else
    (void)s; /* Linux clients never send named pipes: such a path is a relative FIFO path */
    return false;
#endif
}

int shim_stdio_uri_parse(const char *s, struct shim_stdio_uri *out, shim_error_t **err)
{
    memset(out, 0, sizeof(*out));
    if (s == NULL || s[0] == '\0')
        return 0;
    const char *colon = strstr(s, "://");
    int ret = 0;
    bool npipe = shim_stdio_is_npipe_path(s);
    if (colon == NULL || npipe) {
        out->kind = npipe ? SHIM_STDIO_NPIPE : SHIM_STDIO_FIFO;
        out->path = strdup(s);
        if (out->path == NULL)
            ret = error_set(err, RPC_INTERNAL, "out of memory");
        else if (out->kind == SHIM_STDIO_FIFO && s[0] != '/')
            ret = error_set(err, RPC_INVALID_ARGUMENT, "stdio path %s is not absolute", s);
    } else {
        size_t scheme_len = (size_t)(colon - s);
        if (scheme_len == 4 && strncmp(s, "fifo", 4) == 0)
            out->kind = SHIM_STDIO_FIFO;
        else if (scheme_len == 4 && strncmp(s, "file", 4) == 0)
            out->kind = SHIM_STDIO_FILE;
        else if (scheme_len == 6 && strncmp(s, "binary", 6) == 0)
            out->kind = SHIM_STDIO_BINARY;
        else
            return error_set(err, RPC_INVALID_ARGUMENT, "unsupported stdio URI scheme in %s", s);
        char scheme[8];
        snprintf(scheme, sizeof(scheme), "%.*s", (int)scheme_len, s);
        ret = parse_scheme_path(s, colon + 1, scheme, out, err);
    }
    if (ret < 0)
        shim_stdio_uri_free(out);
    return ret;
}

void shim_stdio_uri_free(struct shim_stdio_uri *uri)
{
    free(uri->path);
    for (size_t i = 0; i < uri->n_args; i++)
        free(uri->args[i]);
    free(uri->args);
    memset(uri, 0, sizeof(*uri));
}

/* ---- upstream io ---------------------------------------------------------------- */

void stdio_io_maybe_finish(shim_upstream_io_t *io)
{
    if (!io->closing || io->pending > 0)
        return;
    shim_io_closed_cb cb = io->closed_cb;
    void *data = io->closed_data;
    free(io);
    if (cb)
        cb(data);
}

static void io_handle_closed(uv_handle_t *h)
{
    shim_upstream_io_t *io = h->data;
    free(h);
    io->pending--;
    stdio_io_maybe_finish(io);
}

void stdio_io_close_handle(shim_upstream_io_t *io, uv_handle_t *h)
{
    if (h == NULL)
        return;
    h->data = io;
    io->pending++;
    uv_close(h, io_handle_closed);
}

int stdio_wrap_pipe(uv_loop_t *loop, int fd, uv_pipe_t **out, shim_error_t **err)
{
    uv_pipe_t *p = malloc(sizeof(*p));
    if (p == NULL)
        return error_set(err, RPC_INTERNAL, "out of memory");
    uv_pipe_init(loop, p, 0);
    int rc = uv_pipe_open(p, fd);
    if (rc < 0) {
        /* The handle is initialised: it must be closed through the loop. */
        uv_close((uv_handle_t *)p, (uv_close_cb)free);
        return error_set_uv(err, RPC_INTERNAL, rc, "watch fd %d", fd);
    }
    *out = p;
    return 0;
}

/* ---- open / close ------------------------------------------------------------------ */

void stdio_io_close_pipes(shim_upstream_io_t *io)
{
    stdio_io_close_handle(io, (uv_handle_t *)io->out.pipe);
    stdio_io_close_handle(io, (uv_handle_t *)io->err.pipe);
    stdio_io_close_handle(io, (uv_handle_t *)io->stdin_pipe);
    io->out.pipe = io->err.pipe = io->stdin_pipe = NULL;
}

void stdio_ready_finish(shim_upstream_io_t *io, int status)
{
    if (io->ready_done)
        return;
    io->ready_done = true;
    if (io->ready_pipe) {
        uv_read_stop((uv_stream_t *)io->ready_pipe);
        stdio_io_close_handle(io, (uv_handle_t *)io->ready_pipe);
        io->ready_pipe = NULL;
    }
    if (io->ready_timer) {
        uv_timer_stop(io->ready_timer);
        stdio_io_close_handle(io, (uv_handle_t *)io->ready_timer);
        io->ready_timer = NULL;
    }
    if (io->ready_cb && !io->closing)
        io->ready_cb(io, status, io->ready_data);
}

void shim_upstream_io_close(shim_upstream_io_t *io, shim_io_closed_cb cb, void *data)
{
    if (io == NULL) {
        if (cb)
            cb(data);
        return;
    }
    io->closing = true;
    io->closed_cb = cb;
    io->closed_data = data;
    io->pending++; /* hold io until this function returns */
    stdio_ready_finish(io, UV_ECANCELED);
    stdio_io_close_pipes(io);
    stdio_close_fd(&io->out.fd);
    stdio_close_fd(&io->err.fd);
    stdio_close_fd(&io->stdin_keepalive_fd);
    stdio_logger_stop(io);
    io->pending--;
    stdio_io_maybe_finish(io);
}

static int open_outputs(shim_upstream_io_t *io, const struct shim_stdio_config *cfg,
                        shim_error_t **err)
{
    struct shim_stdio_uri out_uri, err_uri;
    memset(&err_uri, 0, sizeof(err_uri));
    if (shim_stdio_uri_parse(cfg->stdout_path, &out_uri, err) < 0)
        return -1;
    bool want_stderr = !cfg->terminal && cfg->stderr_path && cfg->stderr_path[0];
    int ret = 0;
    if (out_uri.kind == SHIM_STDIO_BINARY) {
        ret = stdio_logger_start(io, &out_uri, cfg, want_stderr, err);
    } else {
        if (out_uri.kind != SHIM_STDIO_NONE)
            ret = stdio_open_output(io, &out_uri, &io->out, err);
        if (ret == 0 && want_stderr) {
            /* file:// on stdout takes stderr along into the same file (runc). */
            if (out_uri.kind == SHIM_STDIO_FILE)
                ret = stdio_open_output(io, &out_uri, &io->err, err);
            else if ((ret = shim_stdio_uri_parse(cfg->stderr_path, &err_uri, err)) == 0)
                ret = err_uri.kind == SHIM_STDIO_BINARY
                          ? error_set(err, RPC_INVALID_ARGUMENT,
                                      "binary:// stderr needs binary:// stdout")
                          : stdio_open_output(io, &err_uri, &io->err, err);
        }
    }
    shim_stdio_uri_free(&out_uri);
    shim_stdio_uri_free(&err_uri);
    return ret;
}

int shim_upstream_io_open(uv_loop_t *loop, const struct shim_stdio_config *cfg,
                          shim_upstream_io_t **out, shim_error_t **err)
{
    shim_upstream_io_t *io = calloc(1, sizeof(*io));
    if (io == NULL)
        return error_set(err, RPC_INTERNAL, "out of memory");
    io->loop = loop;
    io->out.fd = io->err.fd = io->stdin_keepalive_fd = io->logger_pidfd = -1;
    io->logger_kill_timeout_ms =
        cfg->logger_kill_timeout_ms ? cfg->logger_kill_timeout_ms : SHIM_LOGGER_KILL_TIMEOUT_MS;
    int ret = open_outputs(io, cfg, err);
    if (ret == 0 && cfg->stdin_path && cfg->stdin_path[0])
        ret = stdio_open_stdin(io, cfg->stdin_path, err);
    if (ret < 0) {
        shim_upstream_io_close(io, NULL, NULL);
        return -1;
    }
    if (io->ready_pipe == NULL)
        io->ready_done = true;
    *out = io;
    return 0;
}

bool shim_upstream_io_has_stdin(const shim_upstream_io_t *io)
{
    return io->stdin_pipe != NULL;
}

bool shim_upstream_io_has_stdout(const shim_upstream_io_t *io)
{
    return io->out.pipe != NULL || io->out.fd >= 0;
}

bool shim_upstream_io_has_stderr(const shim_upstream_io_t *io)
{
    return io->err.pipe != NULL || io->err.fd >= 0;
}

int shim_upstream_io_logger_pid(const shim_upstream_io_t *io)
{
    return io->logger_pid;
}

void shim_upstream_io_close_stdin(shim_upstream_io_t *io)
{
    stdio_close_fd(&io->stdin_keepalive_fd);
}

static void ready_timeout(uv_timer_t *t)
{
    stdio_ready_finish(t->data, UV_ETIMEDOUT);
}

static void ready_now(uv_timer_t *t)
{
    shim_upstream_io_t *io = t->data;
    io->ready_done = false;
    stdio_ready_finish(io, 0);
}

int shim_upstream_io_wait_ready(shim_upstream_io_t *io, uint64_t timeout_ms, shim_io_ready_cb cb,
                                void *data, shim_error_t **err)
{
    if (io->ready_cb != NULL || io->closing)
        return error_set(err, RPC_FAILED_PRECONDITION, "stdio readiness already awaited");
    io->ready_timer = malloc(sizeof(*io->ready_timer));
    if (io->ready_timer == NULL)
        return error_set(err, RPC_INTERNAL, "out of memory");
    io->ready_cb = cb;
    io->ready_data = data;
    uv_timer_init(io->loop, io->ready_timer);
    io->ready_timer->data = io;
    if (io->ready_pipe == NULL) {
        uv_timer_start(io->ready_timer, ready_now, 0, 0);
        return 0;
    }
    if (stdio_logger_watch_ready(io) < 0) {
        uv_timer_start(io->ready_timer, ready_now, 0, 0); /* cannot watch: do not block */
        return 0;
    }
    if (timeout_ms > 0) {
        uv_update_time(io->loop);
        uv_timer_start(io->ready_timer, ready_timeout, timeout_ms, 0);
    }
    return 0;
}
