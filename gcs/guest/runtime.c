#include "gcs/guest/runtime.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "gcs/guest/exitcode.h"

#define OUTPUT_MAX (4u * 1024 * 1024)

struct call {
    struct gcs_runtime *rt;
    gcs_runtime_cb cb;
    void *data;
    char *log_path;
    char *what; /* "crun create" for messages */
    uv_pipe_t out_pipe;
    bool capturing;
    bool exited, out_done;
    int wait_status;
    char *out;
    size_t out_len, out_cap;
};

static char *read_small_file(const char *path)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    size_t n;
    while (buf && (n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len <= 1) {
            if (cap >= OUTPUT_MAX)
                break;
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf)
        buf[len] = '\0';
    return buf;
}

static char *line_message(const char *line, size_t len, bool *is_error)
{
    json_t *rec = json_loadb(line, len, 0, NULL);
    char *msg = NULL;
    *is_error = false;
    if (json_is_object(rec)) {
        const char *level = json_string_value(json_object_get(rec, "level"));
        const char *m = json_string_value(json_object_get(rec, "msg"));
        *is_error = level && (strcmp(level, "error") == 0 || strcmp(level, "fatal") == 0 ||
                              strncmp(level, "warn", 4) == 0);
        if (m)
            msg = strdup(m);
    } else {
        msg = strndup(line, len);
        *is_error = true;
    }
    json_decref(rec);
    return msg;
}

char *gcs_runtime_log_error(const char *log_text)
{
    char *best = NULL;
    if (!log_text)
        return NULL;
    for (const char *p = log_text; *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (len > 0) {
            bool is_error = false;
            char *m = line_message(p, len, &is_error);
            if (m && (is_error || !best)) {
                free(best);
                best = m;
            } else {
                free(m);
            }
        }
        p += len + (nl ? 1 : 0);
    }
    return best;
}

static void call_free(struct call *c)
{
    if (c->log_path)
        unlink(c->log_path);
    free(c->log_path);
    free(c->what);
    free(c->out);
    free(c);
}

static void on_pipe_closed(uv_handle_t *h)
{
    call_free(h->data);
}

static void finish(struct call *c)
{
    struct gcs_runtime_result res = {0};
    res.exit_code = (int)gcs_exit_code_container(c->wait_status);
    char *msg = NULL;
    if (res.exit_code != 0) {
        char *log_text = read_small_file(c->log_path);
        msg = gcs_runtime_log_error(log_text);
        free(log_text);
        if (!msg && asprintf(&msg, "%s exited with status %d", c->what, res.exit_code) < 0)
            msg = NULL;
        res.error = msg ? msg : "runtime failed";
    }
    res.output = c->out ? c->out : (c->capturing ? "" : NULL);
    res.output_len = c->out_len;
    c->cb(c->data, &res);
    free(msg);
    if (c->capturing)
        uv_close((uv_handle_t *)&c->out_pipe, on_pipe_closed);
    else
        call_free(c);
}

static void maybe_finish(struct call *c)
{
    if (c->exited && (!c->capturing || c->out_done))
        finish(c);
}

static void on_exit_cb(void *data, int pid, int wait_status)
{
    (void)pid;
    struct call *c = data;
    c->exited = true;
    c->wait_status = wait_status;
    maybe_finish(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct call *c = h->data;
    if (c->out_cap - c->out_len < 4096 && c->out_cap < OUTPUT_MAX) {
        size_t cap = c->out_cap ? c->out_cap * 2 : 8192;
        char *nb = realloc(c->out, cap);
        if (nb) {
            c->out = nb;
            c->out_cap = cap;
        }
    }
    size_t room = c->out_cap - c->out_len;
    *buf = uv_buf_init(c->out ? c->out + c->out_len : NULL, room > 1 ? (unsigned)(room - 1) : 0);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    (void)buf;
    struct call *c = s->data;
    if (n > 0) {
        c->out_len += (size_t)n;
        c->out[c->out_len] = '\0';
        return;
    }
    if (n == 0)
        return;
    /* EOF, an error, or no buffer left (output too large): stop reading. */
    uv_read_stop(s);
    c->out_done = true;
    maybe_finish(c);
}

static int build_argv(struct gcs_runtime *rt, struct call *c, const char *const *args, char ***out)
{
    size_t nargs = 0;
    while (args[nargs])
        nargs++;
    char **argv = calloc(nargs + 12, sizeof(char *));
    if (!argv)
        return -1;
    size_t i = 0;
    argv[i++] = (char *)rt->path;
    argv[i++] = "--root";
    argv[i++] = (char *)rt->root;
    argv[i++] = "--log";
    argv[i++] = c->log_path;
    argv[i++] = "--log-format";
    argv[i++] = "json";
    if (rt->cgroup_manager) {
        argv[i++] = "--cgroup-manager";
        argv[i++] = (char *)rt->cgroup_manager;
    }
    for (size_t k = 0; k < nargs; k++)
        argv[i++] = (char *)args[k];
    *out = argv;
    return 0;
}

static int spawn_call(struct gcs_runtime *rt, struct call *c, char **argv,
                      const struct gcs_runtime_stdio *stdio, shim_error_t **err)
{
    uv_stdio_container_t sc[3];
    for (int i = 0; i < 3; i++) {
        int fd = stdio ? stdio->fd[i] : -1;
        sc[i].flags = fd >= 0 ? UV_INHERIT_FD : UV_IGNORE;
        sc[i].data.fd = fd;
    }
    if (c->capturing) {
        sc[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
        sc[1].data.stream = (uv_stream_t *)&c->out_pipe;
    }
    uv_process_options_t o = {0};
    o.file = rt->path;
    o.args = argv;
    o.stdio = sc;
    o.stdio_count = 3;
    int pid = gcs_reaper_spawn(rt->reaper, &o, on_exit_cb, c, err);
    if (pid < 0)
        return -1;
    if (c->capturing) {
        int rc = uv_read_start((uv_stream_t *)&c->out_pipe, on_alloc, on_read);
        if (rc != 0) {
            c->out_done = true; /* the exit still completes the call */
            log_warn("%s: reading output: %s", c->what, uv_strerror(rc));
        }
    }
    return 0;
}

int gcs_runtime_run(struct gcs_runtime *rt, const char *const *args,
                    const struct gcs_runtime_stdio *stdio, gcs_runtime_cb cb, void *data,
                    shim_error_t **err)
{
    struct call *c = calloc(1, sizeof(*c));
    char **argv = NULL;
    if (!c)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    c->rt = rt;
    c->cb = cb;
    c->data = data;
    c->capturing = stdio && stdio->capture_stdout;
    if (asprintf(&c->log_path, "%s/runtime-%d-%lu.log", rt->log_dir, (int)getpid(), ++rt->seq) <
            0 ||
        asprintf(&c->what, "%s %s", rt->path, args[0] ? args[0] : "") < 0) {
        c->log_path = NULL;
        c->what = NULL;
        goto oom;
    }
    if (build_argv(rt, c, args, &argv) < 0)
        goto oom;
    if (c->capturing) {
        uv_pipe_init(rt->loop, &c->out_pipe, 0);
        c->out_pipe.data = c;
    }
    int rc = spawn_call(rt, c, argv, stdio, err);
    free(argv);
    if (rc < 0) {
        if (c->capturing)
            uv_close((uv_handle_t *)&c->out_pipe, on_pipe_closed);
        else
            call_free(c);
        return -1;
    }
    log_debug("started %s", c->what);
    return 0;
oom:
    call_free(c);
    return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
}
