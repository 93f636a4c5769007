/* binary:// on Windows (shim-contract.md §5.1; hcsshim's io_binary and
 * containerd's Windows logging library): the shim serves three named pipes
 * \\.\pipe\binary-<id>-<nonce>-stdout, -stderr and -wait, starts the logger
 * with their names in CONTAINER_STDOUT, CONTAINER_STDERR and CONTAINER_WAIT
 * (plus CONTAINER_ID, CONTAINER_NAMESPACE and SYSTEMROOT), and the logger
 * dials all three. It is ready once its output pipes are connected and it
 * closed the wait pipe. On close the output pipes are closed (the logger reads
 * EOF) and it gets logger_kill_timeout_ms to exit before TerminateProcess. */
#include "shim/stdio_internal.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

#define LOGGER_PIPE_NAME_MAX 512
#define LOGGER_ENV_COUNT 6

static void free_handle_cb(uv_handle_t *h)
{
    free(h);
}

static void check_ready(shim_upstream_io_t *io)
{
    if (!io->logger_watching || io->ready_done || !io->logger_wait_closed)
        return;
    if (io->out.pipe != NULL && (!io->logger_want_err || io->err.pipe != NULL))
        stdio_ready_finish(io, 0);
}

/* The one connection a logger pipe server takes; NULL if none. */
static uv_pipe_t *accept_one(uv_stream_t *server, int status)
{
    shim_upstream_io_t *io = server->data;
    if (status < 0 || io->closing)
        return NULL;
    uv_pipe_t *conn = malloc(sizeof(*conn));
    if (conn == NULL)
        return NULL;
    uv_pipe_init(io->loop, conn, 0);
    if (uv_accept(server, (uv_stream_t *)conn) < 0) {
        uv_close((uv_handle_t *)conn, free_handle_cb);
        return NULL;
    }
    return conn;
}

/* Stores conn in *slot (closing the server: one connection only). */
static void take_connection(shim_upstream_io_t *io, uv_pipe_t *conn, uv_pipe_t **slot,
                            uv_pipe_t **server)
{
    if (*slot != NULL) {
        uv_close((uv_handle_t *)conn, free_handle_cb);
        return;
    }
    *slot = conn;
    stdio_io_close_handle(io, (uv_handle_t *)*server);
    *server = NULL;
}

static void on_out_connection(uv_stream_t *server, int status)
{
    shim_upstream_io_t *io = server->data;
    uv_pipe_t *conn = accept_one(server, status);
    if (conn == NULL)
        return;
    take_connection(io, conn, &io->out.pipe, &io->logger_out_server);
    check_ready(io);
}

static void on_err_connection(uv_stream_t *server, int status)
{
    shim_upstream_io_t *io = server->data;
    uv_pipe_t *conn = accept_one(server, status);
    if (conn == NULL)
        return;
    take_connection(io, conn, io->logger_want_err ? &io->err.pipe : &io->logger_unused_err,
                    &io->logger_err_server);
    check_ready(io);
}

static void wait_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    static char scratch[64]; /* contents are discarded */
    *buf = uv_buf_init(scratch, sizeof(scratch));
}

static void wait_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    shim_upstream_io_t *io = s->data;
    if (nread >= 0)
        return;
    uv_read_stop(s);
    io->logger_wait_closed = true;
    stdio_io_close_handle(io, (uv_handle_t *)io->logger_wait_conn);
    io->logger_wait_conn = NULL;
    check_ready(io);
}

static void on_wait_connection(uv_stream_t *server, int status)
{
    shim_upstream_io_t *io = server->data;
    uv_pipe_t *conn = accept_one(server, status);
    if (conn == NULL)
        return;
    if (io->logger_wait_conn != NULL || io->logger_wait_closed) {
        uv_close((uv_handle_t *)conn, free_handle_cb);
        return;
    }
    io->logger_wait_conn = conn;
    conn->data = io;
    if (uv_read_start((uv_stream_t *)conn, wait_alloc, wait_read) < 0)
        wait_read((uv_stream_t *)conn, UV_EOF, NULL);
}

static int serve_pipe(shim_upstream_io_t *io, const char *name, uv_connection_cb cb,
                      uv_pipe_t **out, shim_error_t **err)
{
    uv_pipe_t *p = malloc(sizeof(*p));
    if (p == NULL)
        return error_set(err, RPC_INTERNAL, "out of memory");
    uv_pipe_init(io->loop, p, 0);
    p->data = io;
    *out = p; /* closed by stdio_logger_stop whatever happens next */
    int rc = uv_pipe_bind(p, name);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)p, 1, cb);
    if (rc < 0)
        return error_set_uv(err, RPC_INTERNAL, rc, "serve logger pipe %s", name);
    return 0;
}

static void logger_kill_cb(uv_timer_t *timer)
{
    shim_upstream_io_t *io = timer->data;
    if (io->logger_process != NULL) {
        log_fields(LOG_LEVEL_WARN, "stdio logger did not exit after its pipes closed; killing it",
                   NULL);
        uv_process_kill(io->logger_process, SIGKILL);
    }
}

static void logger_exit_cb(uv_process_t *proc, int64_t status, int term_signal)
{
    shim_upstream_io_t *io = proc->data;
    if (status != 0 || term_signal != 0) {
        char code[32];
        snprintf(code, sizeof(code), "%lld", (long long)status);
        log_fields(LOG_LEVEL_WARN, "stdio logger exited", "status", code, NULL);
    }
    io->logger_pid = 0;
    io->logger_process = NULL;
    stdio_io_close_handle(io, (uv_handle_t *)proc);
    if (io->logger_kill_timer != NULL) {
        uv_timer_stop(io->logger_kill_timer);
        stdio_io_close_handle(io, (uv_handle_t *)io->logger_kill_timer);
        io->logger_kill_timer = NULL;
    }
    if (io->logger_watching && !io->ready_done)
        stdio_ready_finish(io, UV_ESRCH); /* died before it was ready */
    if (io->logger_stopping) {
        io->logger_stopping = false;
        io->pending--;
        stdio_io_maybe_finish(io);
    }
}

struct logger_env {
    char *vars[LOGGER_ENV_COUNT + 1];
};

static void logger_env_free(struct logger_env *e)
{
    for (int i = 0; i < LOGGER_ENV_COUNT; i++)
        free(e->vars[i]);
}

static int env_var(char **slot, const char *name, const char *value)
{
    size_t len = strlen(name) + strlen(value) + 2;
    *slot = malloc(len);
    if (*slot == NULL)
        return -1;
    snprintf(*slot, len, "%s=%s", name, value);
    return 0;
}

static int logger_env_build(struct logger_env *e, const struct shim_stdio_config *cfg,
                            char names[3][LOGGER_PIPE_NAME_MAX])
{
    memset(e, 0, sizeof(*e));
    char root[260];
    size_t root_len = sizeof(root);
    if (uv_os_getenv("SYSTEMROOT", root, &root_len) != 0)
        snprintf(root, sizeof(root), "C:\\Windows");
    int failed = 0;
    failed |= env_var(&e->vars[0], "CONTAINER_ID", cfg->container_id ? cfg->container_id : "");
    failed |=
        env_var(&e->vars[1], "CONTAINER_NAMESPACE", cfg->namespace_name ? cfg->namespace_name : "");
    failed |= env_var(&e->vars[2], "CONTAINER_STDOUT", names[0]);
    failed |= env_var(&e->vars[3], "CONTAINER_STDERR", names[1]);
    failed |= env_var(&e->vars[4], "CONTAINER_WAIT", names[2]);
    /* Windows processes need it (Go's os/exec adds it too). */
    failed |= env_var(&e->vars[5], "SYSTEMROOT", root);
    return failed ? -1 : 0;
}

static int spawn_logger(shim_upstream_io_t *io, const struct shim_stdio_uri *uri,
                        const struct shim_stdio_config *cfg, char names[3][LOGGER_PIPE_NAME_MAX],
                        shim_error_t **err)
{
    /* binary:///C:/path/logger.exe arrives as "/C:/path/logger.exe". */
    const char *file = uri->path;
    if (file[0] == '/' && file[1] != '\0' && file[2] == ':')
        file++;
    char **argv = calloc(uri->n_args + 2, sizeof(char *));
    struct logger_env env;
    int env_rc = logger_env_build(&env, cfg, names);
    io->logger_process = malloc(sizeof(*io->logger_process));
    int ret = 0;
    if (argv == NULL || env_rc < 0 || io->logger_process == NULL) {
        free(io->logger_process);
        io->logger_process = NULL;
        ret = error_set(err, RPC_INTERNAL, "out of memory");
        goto out;
    }
    argv[0] = (char *)file;
    for (size_t i = 0; i < uri->n_args; i++)
        argv[i + 1] = uri->args[i];
    uv_process_options_t opts = {.exit_cb = logger_exit_cb,
                                 .file = file,
                                 .args = argv,
                                 .env = env.vars,
                                 .flags = UV_PROCESS_WINDOWS_HIDE};
    io->logger_process->data = io;
    int rc = uv_spawn(io->loop, io->logger_process, &opts);
    if (rc < 0) {
        uv_close((uv_handle_t *)io->logger_process, free_handle_cb);
        io->logger_process = NULL;
        ret = error_set_uv(err, rc == UV_ENOENT ? RPC_NOT_FOUND : RPC_INTERNAL, rc,
                           "start logger %s", file);
        goto out;
    }
    io->logger_pid = io->logger_process->pid;
out:
    free(argv);
    logger_env_free(&env);
    return ret;
}

int stdio_logger_start(shim_upstream_io_t *io, const struct shim_stdio_uri *uri,
                       const struct shim_stdio_config *cfg, bool want_stderr, shim_error_t **err)
{
    unsigned char nonce[4];
    if (uv_random(NULL, NULL, nonce, sizeof(nonce), 0, NULL) != 0)
        memset(nonce, 0, sizeof(nonce));
    static const char *const streams[3] = {"stdout", "stderr", "wait"};
    char names[3][LOGGER_PIPE_NAME_MAX];
    for (int i = 0; i < 3; i++) {
        int n = snprintf(names[i], sizeof(names[i]), "\\\\.\\pipe\\binary-%s-%02x%02x%02x%02x-%s",
                         cfg->container_id ? cfg->container_id : "", nonce[0], nonce[1], nonce[2],
                         nonce[3], streams[i]);
        if (n < 0 || (size_t)n >= sizeof(names[i]))
            return error_set(err, RPC_INVALID_ARGUMENT, "container id too long for a pipe name");
    }
    io->logger_want_err = want_stderr;
    if (serve_pipe(io, names[0], on_out_connection, &io->logger_out_server, err) < 0 ||
        serve_pipe(io, names[1], on_err_connection, &io->logger_err_server, err) < 0 ||
        serve_pipe(io, names[2], on_wait_connection, &io->ready_pipe, err) < 0)
        return -1;
    return spawn_logger(io, uri, cfg, names, err);
}

/* A later loop turn ends the wait (the API promises that); < 0 makes the
 * caller report "ready" itself when everything already happened. */
int stdio_logger_watch_ready(shim_upstream_io_t *io)
{
    io->logger_watching = true;
    if (io->logger_wait_closed && io->out.pipe != NULL &&
        (!io->logger_want_err || io->err.pipe != NULL)) {
        io->logger_watching = false;
        return -1;
    }
    return 0;
}

void stdio_logger_stop(shim_upstream_io_t *io)
{
    uv_pipe_t **handles[] = {&io->logger_out_server, &io->logger_err_server, &io->logger_wait_conn,
                             &io->logger_unused_err};
    for (size_t i = 0; i < sizeof(handles) / sizeof(handles[0]); i++) {
        stdio_io_close_handle(io, (uv_handle_t *)*handles[i]);
        *handles[i] = NULL;
    }
    if (io->logger_process == NULL || io->logger_stopping)
        return;
    io->logger_stopping = true;
    io->pending++; /* released by logger_exit_cb */
    io->logger_kill_timer = malloc(sizeof(*io->logger_kill_timer));
    if (io->logger_kill_timer == NULL) {
        uv_process_kill(io->logger_process, SIGKILL);
        return;
    }
    uv_timer_init(io->loop, io->logger_kill_timer);
    io->logger_kill_timer->data = io;
    uv_update_time(io->loop);
    uv_timer_start(io->logger_kill_timer, logger_kill_cb, io->logger_kill_timeout_ms, 0);
}
