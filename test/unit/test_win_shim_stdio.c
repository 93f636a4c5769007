/* shim/stdio on Windows: the test plays ctr, serving \\.\pipe\ctr-...-stdin,
 * -stdout and -stderr (libuv pipe servers); the shim's upstream io dials them
 * and the relay copies bytes both ways between them and the process side (a
 * test/support stream pair: TCP on Windows, like the GCS's hvsock streams).
 * binary:// runs this executable itself as the logger ("logger" argument).
 * Runs under wine via `make test-windows`. On Linux the named-pipe cases are
 * one skip; the file:// sink and the parsing cases run on both. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "shim/stdio.h"
#include "test/support/stream_pair.h"

#ifdef _WIN32
#include <windows.h>
#endif

#define WAIT_MS 30000

struct fixture {
    uv_loop_t loop;
    uv_timer_t tick; /* keeps uv_run(ONCE) from blocking while waiting */
};

/* Runs the loop until cond holds (or WAIT_MS passed), then asserts it. */
#define RUN_UNTIL(f, cond)                                                                         \
    do {                                                                                           \
        uv_update_time(&(f)->loop);                                                                \
        uint64_t deadline_ = uv_now(&(f)->loop) + WAIT_MS;                                         \
        while (!(cond) && uv_now(&(f)->loop) < deadline_)                                          \
            uv_run(&(f)->loop, UV_RUN_ONCE);                                                       \
        if (!(cond))                                                                               \
            fail_msg("timed out waiting for %s", #cond);                                           \
    } while (0)

static void tick_cb(uv_timer_t *t)
{
    (void)t;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    uv_timer_init(&f->loop, &f->tick);
    uv_timer_start(&f->tick, tick_cb, 20, 20);
    *state = f;
    return 0;
}

static void close_leftover(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h)) {
        ++*(int *)arg;
        uv_close(h, NULL);
    }
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    uv_close((uv_handle_t *)&f->tick, NULL);
    for (int i = 0; i < 10; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
    /* Everything the test and the code under test opened must be closed. */
    int leftover = 0;
    uv_walk(&f->loop, close_leftover, &leftover);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(leftover, 0);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
    return 0;
}

/* ---- byte sinks and sources ---------------------------------------------------- */

#ifdef _WIN32 /* readers serve the named-pipe cases only */
struct reader {
    char *buf;
    size_t len, cap;
    bool eof;
    int status; /* UV_EOF or the error that ended reading */
    char scratch[64 << 10];
};

static void rd_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    (void)suggested;
    struct reader *r = h->data;
    *b = uv_buf_init(r->scratch, sizeof(r->scratch));
}

static void rd_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct reader *r = s->data;
    if (n > 0) {
        if (r->len + (size_t)n > r->cap) {
            r->cap = (r->len + (size_t)n) * 2;
            r->buf = realloc(r->buf, r->cap);
            assert_non_null(r->buf);
        }
        memcpy(r->buf + r->len, b->base, (size_t)n);
        r->len += (size_t)n;
    } else if (n < 0) {
        uv_read_stop(s);
        r->eof = true;
        r->status = (int)n;
    }
}

static void reader_start(uv_stream_t *s, struct reader *r)
{
    s->data = r;
    assert_int_equal(uv_read_start(s, rd_alloc, rd_read), 0);
}
#endif

static char *pattern(size_t len, unsigned seed)
{
    char *p = malloc(len ? len : 1);
    assert_non_null(p);
    for (size_t i = 0; i < len; i++)
        p[i] = (char)('a' + (i * 7 + seed + i / 251) % 26);
    return p;
}

/* Writes data, then ends the stream: half-close (shutdown) or close. */
struct writer {
    uv_write_t req;
    uv_shutdown_t shut;
    bool close_after;
    bool done;
    int status;
};

static void free_handle(uv_handle_t *h)
{
    free(h);
}

static void wr_shut(uv_shutdown_t *req, int status)
{
    struct writer *w = req->data;
    (void)status;
    w->done = true;
}

static void wr_done(uv_write_t *req, int status)
{
    struct writer *w = req->data;
    w->status = status;
    if (w->close_after) {
        uv_close((uv_handle_t *)req->handle, free_handle);
        w->done = true;
        return;
    }
    w->shut.data = w;
    if (uv_shutdown(&w->shut, req->handle, wr_shut) != 0)
        w->done = true;
}

static void write_and_end(uv_stream_t *s, char *data, size_t len, struct writer *w)
{
    uv_buf_t b = uv_buf_init(data, (unsigned)len);
    w->req.data = w;
    assert_int_equal(uv_write(&w->req, s, &b, 1, wr_done), 0);
}

static void relay_drained(shim_relay_t *relay, void *data)
{
    (void)relay;
    *(bool *)data = true;
}

static void set_flag(void *data)
{
    *(bool *)data = true;
}

/* ---- portable cases --------------------------------------------------------------- */

/* Named-pipe paths are a stream kind of their own on Windows only; on Linux
 * such a string stays what it always was, a relative (refused) FIFO path. */
static void test_npipe_path_parse(void **state)
{
    (void)state;
    struct shim_stdio_uri u;
    shim_error_t *err = NULL;
    const char *path = "\\\\.\\pipe\\ctr-abc-stdout";
#ifdef _WIN32
    assert_true(shim_stdio_is_npipe_path(path));
    assert_true(shim_stdio_is_npipe_path("//./PIPE/x"));
    assert_false(shim_stdio_is_npipe_path("\\\\.\\pipe\\"));
    assert_false(shim_stdio_is_npipe_path("C:\\pipe\\x"));
    assert_int_equal(shim_stdio_uri_parse(path, &u, &err), 0);
    assert_int_equal(u.kind, SHIM_STDIO_NPIPE);
    assert_string_equal(u.path, path);
    shim_stdio_uri_free(&u);
#else
    assert_false(shim_stdio_is_npipe_path(path));
    assert_int_equal(shim_stdio_uri_parse(path, &u, &err), -1);
    assert_int_equal(err->code, RPC_INVALID_ARGUMENT);
    assert_non_null(strstr(err->msg, "not absolute"));
    error_free(err);
#endif
}

static void tmp_path(char *out, size_t size, const char *leaf)
{
    char tmp[512];
    size_t n = sizeof(tmp);
    assert_int_equal(uv_os_tmpdir(tmp, &n), 0);
    snprintf(out, size, "%s/shim-stdio-%lu-%llu%s", tmp, (unsigned long)uv_os_getpid(),
             (unsigned long long)uv_hrtime(), leaf);
    for (char *p = out; *p; p++) {
        if (*p == '\\')
            *p = '/';
    }
}

static char *read_whole(uv_loop_t *loop, const char *path, size_t *len)
{
    uv_fs_t req;
    int fd = uv_fs_open(loop, &req, path, UV_FS_O_RDONLY, 0, NULL);
    uv_fs_req_cleanup(&req);
    assert_true(fd >= 0);
    size_t cap = 1 << 20, got = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    for (;;) {
        uv_buf_t b = uv_buf_init(buf + got, (unsigned)(cap - got));
        int n = uv_fs_read(loop, &req, fd, &b, 1, -1, NULL);
        uv_fs_req_cleanup(&req);
        assert_true(n >= 0);
        if (n == 0)
            break;
        got += (size_t)n;
        assert_true(got < cap);
    }
    uv_fs_close(loop, &req, fd, NULL);
    uv_fs_req_cleanup(&req);
    *len = got;
    return buf;
}

static uint64_t stdout_bytes(const shim_relay_t *relay)
{
    struct shim_relay_stats st;
    shim_relay_get_stats(relay, &st);
    return st.stdout_bytes;
}

/* One relay run: process stdout+stderr -> file:// (both streams append). */
static void relay_to_file(struct fixture *f, const char *uri, const char *out, size_t out_len,
                          const char *errtext)
{
    struct shim_stdio_config cfg = {.stdout_path = uri, .stderr_path = uri};
    shim_upstream_io_t *io = NULL;
    shim_error_t *err = NULL;
    if (shim_upstream_io_open(&f->loop, &cfg, &io, &err) != 0)
        fail_msg("open %s: %s", uri, err->msg);
    assert_true(shim_upstream_io_has_stdout(io));
    assert_true(shim_upstream_io_has_stderr(io));
    uv_stream_t *po, *to, *pe, *te;
    assert_int_equal(stream_pair_new(&f->loop, &po, &to, &err), 0);
    assert_int_equal(stream_pair_new(&f->loop, &pe, &te, &err), 0);
    struct shim_relay_streams streams = {.stdout_stream = po, .stderr_stream = pe};
    bool drained = false, closed = false;
    shim_relay_t *relay = NULL;
    assert_int_equal(shim_relay_start(io, &streams, relay_drained, &drained, &relay, &err), 0);
    struct writer wo = {0}, we = {0};
    write_and_end(to, (char *)out, out_len, &wo);
    /* stdout fully in the file before stderr starts: a deterministic order. */
    RUN_UNTIL(f, wo.done && stdout_bytes(relay) == out_len);
    write_and_end(te, (char *)errtext, strlen(errtext), &we);
    RUN_UNTIL(f, drained && we.done);
    struct shim_relay_stats st;
    shim_relay_get_stats(relay, &st);
    assert_int_equal(st.stdout_bytes, out_len);
    assert_int_equal(st.stderr_bytes, strlen(errtext));
    shim_relay_close(relay, set_flag, &closed);
    uv_close((uv_handle_t *)to, free_handle);
    uv_close((uv_handle_t *)te, free_handle);
    RUN_UNTIL(f, closed);
}

/* file://: parent directories created, output appended across opens. */
static void test_file_sink(void **state)
{
    struct fixture *f = *state;
    char base[600], file[700], uri[800];
    tmp_path(base, sizeof(base), "");
    snprintf(file, sizeof(file), "%s/sub/out.log", base);
    snprintf(uri, sizeof(uri), "file://%s%s", file[0] == '/' ? "" : "/", file);
    size_t big = 300u << 10;
    char *out = pattern(big, 1);
    relay_to_file(f, uri, out, big, "E1\n");
    relay_to_file(f, uri, "second\n", 7, "E2\n");

    size_t len;
    char *got = read_whole(&f->loop, file, &len);
    assert_int_equal(len, big + 3 + 7 + 3);
    assert_memory_equal(got, out, big);
    assert_memory_equal(got + big, "E1\nsecond\nE2\n", 13);
    free(got);
    free(out);
    uv_fs_t req;
    assert_int_equal(uv_fs_unlink(&f->loop, &req, file, NULL), 0);
    uv_fs_req_cleanup(&req);
    snprintf(file, sizeof(file), "%s/sub", base);
    assert_int_equal(uv_fs_rmdir(&f->loop, &req, file, NULL), 0);
    uv_fs_req_cleanup(&req);
    assert_int_equal(uv_fs_rmdir(&f->loop, &req, base, NULL), 0);
    uv_fs_req_cleanup(&req);
}

#ifdef _WIN32
/* ---- named pipes (Windows) ---------------------------------------------------------- */

/* One pipe ctr serves, and the connection the shim made to it. */
struct ctr_pipe {
    uv_pipe_t server;
    uv_pipe_t *conn;
    struct reader *rd; /* stdout/stderr: start reading on accept */
    bool drop;         /* close the connection right after accepting it */
    char name[200];
};

static void ctr_on_connection(uv_stream_t *server, int status)
{
    struct ctr_pipe *p = server->data;
    assert_int_equal(status, 0);
    assert_null(p->conn);
    p->conn = malloc(sizeof(*p->conn));
    assert_non_null(p->conn);
    uv_pipe_init(server->loop, p->conn, 0);
    assert_int_equal(uv_accept(server, (uv_stream_t *)p->conn), 0);
    if (p->drop) {
        uv_close((uv_handle_t *)p->conn, free_handle);
        return;
    }
    if (p->rd != NULL)
        reader_start((uv_stream_t *)p->conn, p->rd);
}

static void ctr_serve(struct fixture *f, struct ctr_pipe *p, const char *stream)
{
    snprintf(p->name, sizeof(p->name), "\\\\.\\pipe\\ctr-shimtest-%lu-%llu-%s",
             (unsigned long)uv_os_getpid(), (unsigned long long)uv_hrtime(), stream);
    assert_int_equal(uv_pipe_init(&f->loop, &p->server, 0), 0);
    assert_int_equal(uv_pipe_bind(&p->server, p->name), 0);
    p->server.data = p;
    assert_int_equal(uv_listen((uv_stream_t *)&p->server, 4, ctr_on_connection), 0);
}

static void ctr_close(struct ctr_pipe *p)
{
    uv_close((uv_handle_t *)&p->server, NULL);
    if (p->conn != NULL && !p->drop && !uv_is_closing((uv_handle_t *)p->conn))
        uv_close((uv_handle_t *)p->conn, free_handle);
}

/* ctr's stdin reaches the process, process output reaches ctr, byte for byte;
 * ctr sees EOF only after the relay drained and was closed. */
static void test_pipes_relay_both_ways(void **state)
{
    struct fixture *f = *state;
    struct reader out_rd = {0}, err_rd = {0}, in_rd = {0};
    struct ctr_pipe in = {0}, out = {.rd = &out_rd}, errp = {.rd = &err_rd};
    ctr_serve(f, &in, "stdin");
    ctr_serve(f, &out, "stdout");
    ctr_serve(f, &errp, "stderr");

    struct shim_stdio_config cfg = {
        .stdin_path = in.name, .stdout_path = out.name, .stderr_path = errp.name};
    shim_upstream_io_t *io = NULL;
    shim_error_t *err = NULL;
    if (shim_upstream_io_open(&f->loop, &cfg, &io, &err) != 0)
        fail_msg("shim_upstream_io_open: %s", err->msg);
    assert_true(shim_upstream_io_has_stdin(io));
    assert_true(shim_upstream_io_has_stdout(io));
    assert_true(shim_upstream_io_has_stderr(io));
    RUN_UNTIL(f, in.conn && out.conn && errp.conn);

    uv_stream_t *pi, *ti, *po, *to, *pe, *te;
    assert_int_equal(stream_pair_new(&f->loop, &pi, &ti, &err), 0);
    assert_int_equal(stream_pair_new(&f->loop, &po, &to, &err), 0);
    assert_int_equal(stream_pair_new(&f->loop, &pe, &te, &err), 0);
    struct shim_relay_streams streams = {
        .stdin_stream = pi, .stdout_stream = po, .stderr_stream = pe};
    bool drained = false, closed = false;
    shim_relay_t *relay = NULL;
    assert_int_equal(shim_relay_start(io, &streams, relay_drained, &drained, &relay, &err), 0);
    reader_start(ti, &in_rd);

    /* More than the relay's high water, so backpressure is exercised. */
    size_t out_len = 1u << 20, err_len = 5000, in_len = 300u << 10;
    char *out_data = pattern(out_len, 1), *err_data = pattern(err_len, 2);
    char *in_data = pattern(in_len, 3);
    struct writer wo = {0}, we = {0}, wi = {.close_after = true};
    write_and_end(to, out_data, out_len, &wo);
    write_and_end(te, err_data, err_len, &we);
    write_and_end((uv_stream_t *)in.conn, in_data, in_len, &wi); /* then ctr closes stdin */
    in.conn = NULL;                                              /* closed by the writer */

    RUN_UNTIL(f, drained && in_rd.eof && wo.done && we.done && wi.done);
    assert_int_equal(in_rd.status, UV_EOF);
    assert_int_equal(in_rd.len, in_len);
    assert_memory_equal(in_rd.buf, in_data, in_len);
    struct shim_relay_stats st;
    shim_relay_get_stats(relay, &st);
    assert_int_equal(st.stdin_bytes, in_len);
    assert_int_equal(st.stdout_bytes, out_len);
    assert_int_equal(st.stderr_bytes, err_len);
    assert_false(out_rd.eof); /* upstream stays open until the shim closes it */

    shim_relay_close(relay, set_flag, &closed);
    RUN_UNTIL(f, closed && out_rd.eof && err_rd.eof);
    assert_int_equal(out_rd.len, out_len);
    assert_memory_equal(out_rd.buf, out_data, out_len);
    assert_int_equal(err_rd.len, err_len);
    assert_memory_equal(err_rd.buf, err_data, err_len);

    uv_close((uv_handle_t *)ti, free_handle);
    uv_close((uv_handle_t *)to, free_handle);
    uv_close((uv_handle_t *)te, free_handle);
    ctr_close(&in);
    ctr_close(&out);
    ctr_close(&errp);
    free(out_data);
    free(err_data);
    free(in_data);
    free(out_rd.buf);
    free(err_rd.buf);
    free(in_rd.buf);
}

/* ctr goes away: stdin closed before any byte (the process sees EOF at once)
 * and the stdout reader gone (output is discarded, the relay still drains). */
static void test_pipes_client_gone(void **state)
{
    struct fixture *f = *state;
    struct reader in_rd = {0};
    struct ctr_pipe in = {.drop = true}, out = {.drop = true};
    ctr_serve(f, &in, "stdin");
    ctr_serve(f, &out, "stdout");
    struct shim_stdio_config cfg = {.stdin_path = in.name, .stdout_path = out.name};
    shim_upstream_io_t *io = NULL;
    shim_error_t *err = NULL;
    if (shim_upstream_io_open(&f->loop, &cfg, &io, &err) != 0)
        fail_msg("shim_upstream_io_open: %s", err->msg);
    assert_false(shim_upstream_io_has_stderr(io));
    RUN_UNTIL(f, in.conn && out.conn);

    uv_stream_t *pi, *ti, *po, *to;
    assert_int_equal(stream_pair_new(&f->loop, &pi, &ti, &err), 0);
    assert_int_equal(stream_pair_new(&f->loop, &po, &to, &err), 0);
    struct shim_relay_streams streams = {.stdin_stream = pi, .stdout_stream = po};
    bool drained = false, closed = false;
    shim_relay_t *relay = NULL;
    assert_int_equal(shim_relay_start(io, &streams, relay_drained, &drained, &relay, &err), 0);
    reader_start(ti, &in_rd);
    size_t out_len = 1u << 20;
    char *out_data = pattern(out_len, 4);
    struct writer wo = {0};
    write_and_end(to, out_data, out_len, &wo);
    RUN_UNTIL(f, drained && in_rd.eof && wo.done);
    assert_int_equal(in_rd.status, UV_EOF);
    assert_int_equal(in_rd.len, 0);

    shim_relay_close(relay, set_flag, &closed);
    RUN_UNTIL(f, closed);
    uv_close((uv_handle_t *)ti, free_handle);
    uv_close((uv_handle_t *)to, free_handle);
    ctr_close(&in);
    ctr_close(&out);
    free(out_data);
    free(in_rd.buf);
}

static void expect_open_error(struct fixture *f, const struct shim_stdio_config *cfg, int code,
                              const char *text)
{
    shim_upstream_io_t *io = NULL;
    shim_error_t *err = NULL;
    assert_int_equal(shim_upstream_io_open(&f->loop, cfg, &io, &err), -1);
    assert_null(io);
    assert_non_null(err);
    if (err->code != code || strstr(err->msg, text) == NULL)
        fail_msg("got %s \"%s\", want %s with \"%s\"", rpc_code_name(err->code), err->msg,
                 rpc_code_name(code), text);
    error_free(err);
    uv_run(&f->loop, UV_RUN_NOWAIT); /* closes what the failed open made */
}

/* Clear errors, nothing left open: a pipe nobody serves, Linux FIFO paths. */
static void test_pipes_bad_paths(void **state)
{
    struct fixture *f = *state;
    char missing[200];
    snprintf(missing, sizeof(missing), "\\\\.\\pipe\\ctr-shimtest-%lu-missing-stdout",
             (unsigned long)uv_os_getpid());
    struct shim_stdio_config cfg = {.stdout_path = missing};
    expect_open_error(f, &cfg, RPC_NOT_FOUND, missing);
    struct shim_stdio_config in_cfg = {.stdin_path = missing};
    expect_open_error(f, &in_cfg, RPC_NOT_FOUND, "no such named pipe");

    /* The stdout pipe exists, stderr does not: stdout's connection is undone. */
    struct ctr_pipe out = {0};
    ctr_serve(f, &out, "stdout");
    struct shim_stdio_config half = {.stdout_path = out.name, .stderr_path = missing};
    expect_open_error(f, &half, RPC_NOT_FOUND, missing);

    struct shim_stdio_config fifo = {.stdout_path = "/run/containerd/fifo/x-stdout"};
    expect_open_error(f, &fifo, RPC_INVALID_ARGUMENT, "named pipe");
    struct shim_stdio_config fifo_in = {.stdin_path = "fifo:///run/x-stdin"};
    expect_open_error(f, &fifo_in, RPC_INVALID_ARGUMENT, "named pipe");
    ctr_close(&out);
    uv_run(&f->loop, UV_RUN_NOWAIT);
}

/* ---- binary:// (Windows protocol) ------------------------------------------------ */

static HANDLE dial_env_pipe(const char *var)
{
    const char *name = getenv(var);
    if (name == NULL)
        return INVALID_HANDLE_VALUE;
    for (int i = 0; i < 50; i++) {
        HANDLE h = CreateFileA(name, GENERIC_READ, 0, NULL, OPEN_EXISTING, 0, NULL);
        if (h != INVALID_HANDLE_VALUE || GetLastError() != ERROR_PIPE_BUSY)
            return h;
        WaitNamedPipeA(name, 200);
    }
    return INVALID_HANDLE_VALUE;
}

static void copy_until_eof(HANDLE from, FILE *to)
{
    char buf[16384];
    DWORD n;
    while (ReadFile(from, buf, sizeof(buf), &n, NULL) && n > 0)
        fwrite(buf, 1, n, to);
}

/* The logger side (containerd's Windows logging library, by hand): dial the
 * three pipes, signal ready by closing the wait pipe, copy stdout and then
 * stderr into out_path after a line with the container id and namespace.
 * mode "hang" never gets ready (and never exits by itself). */
static int logger_main(const char *mode, const char *out_path)
{
    HANDLE out = dial_env_pipe("CONTAINER_STDOUT");
    HANDLE err = dial_env_pipe("CONTAINER_STDERR");
    HANDLE wait = dial_env_pipe("CONTAINER_WAIT");
    if (out == INVALID_HANDLE_VALUE || err == INVALID_HANDLE_VALUE || wait == INVALID_HANDLE_VALUE)
        return 3;
    if (strcmp(mode, "hang") == 0) {
        Sleep(120000);
        return 4;
    }
    CloseHandle(wait);
    FILE *fp = fopen(out_path, "wb");
    if (fp == NULL)
        return 5;
    fprintf(fp, "ID=%s NS=%s\n", getenv("CONTAINER_ID"), getenv("CONTAINER_NAMESPACE"));
    copy_until_eof(out, fp);
    fputs("--stderr--\n", fp);
    copy_until_eof(err, fp);
    fclose(fp);
    return 0;
}

static void logger_uri(char *uri, size_t size, const char *mode, const char *out_path)
{
    char exe[1024];
    size_t n = sizeof(exe);
    assert_int_equal(uv_exepath(exe, &n), 0);
    for (char *p = exe; *p; p++) {
        if (*p == '\\')
            *p = '/';
    }
    snprintf(uri, size, "binary:///%s?%s=%s", exe, mode, out_path);
}

struct ready {
    bool done;
    int status;
};

static void on_ready(shim_upstream_io_t *io, int status, void *data)
{
    (void)io;
    struct ready *r = data;
    r->done = true;
    r->status = status;
}

/* Output reaches the logger through its pipes; closing the io ends it. */
static void test_binary_logger(void **state)
{
    struct fixture *f = *state;
    char out_path[600], uri[2048];
    tmp_path(out_path, sizeof(out_path), ".log");
    logger_uri(uri, sizeof(uri), "logger", out_path);
    struct shim_stdio_config cfg = {
        .stdout_path = uri, .stderr_path = uri, .container_id = "ctr1", .namespace_name = "ns1"};
    shim_upstream_io_t *io = NULL;
    shim_error_t *err = NULL;
    if (shim_upstream_io_open(&f->loop, &cfg, &io, &err) != 0)
        fail_msg("open %s: %s", uri, err->msg);
    assert_true(shim_upstream_io_logger_pid(io) > 0);
    struct ready ready = {0};
    assert_int_equal(shim_upstream_io_wait_ready(io, WAIT_MS, on_ready, &ready, &err), 0);
    RUN_UNTIL(f, ready.done);
    assert_int_equal(ready.status, 0);
    assert_true(shim_upstream_io_has_stdout(io));
    assert_true(shim_upstream_io_has_stderr(io));

    uv_stream_t *po, *to, *pe, *te;
    assert_int_equal(stream_pair_new(&f->loop, &po, &to, &err), 0);
    assert_int_equal(stream_pair_new(&f->loop, &pe, &te, &err), 0);
    struct shim_relay_streams streams = {.stdout_stream = po, .stderr_stream = pe};
    bool drained = false, closed = false;
    shim_relay_t *relay = NULL;
    assert_int_equal(shim_relay_start(io, &streams, relay_drained, &drained, &relay, &err), 0);
    size_t out_len = 512u << 10;
    char *out_data = pattern(out_len, 5);
    struct writer wo = {0}, we = {0};
    write_and_end(to, out_data, out_len, &wo);
    write_and_end(te, "oops\n", 5, &we);
    RUN_UNTIL(f, drained && wo.done && we.done);
    shim_relay_close(relay, set_flag, &closed); /* done once the logger exited */
    RUN_UNTIL(f, closed);
    uv_close((uv_handle_t *)to, free_handle);
    uv_close((uv_handle_t *)te, free_handle);

    size_t len;
    char *got = read_whole(&f->loop, out_path, &len);
    const char *head = "ID=ctr1 NS=ns1\n", *tail = "--stderr--\noops\n";
    assert_int_equal(len, strlen(head) + out_len + strlen(tail));
    assert_memory_equal(got, head, strlen(head));
    assert_memory_equal(got + strlen(head), out_data, out_len);
    assert_memory_equal(got + strlen(head) + out_len, tail, strlen(tail));
    free(got);
    free(out_data);
    uv_fs_t req;
    assert_int_equal(uv_fs_unlink(&f->loop, &req, out_path, NULL), 0);
    uv_fs_req_cleanup(&req);
}

/* A logger that never gets ready: the wait times out, and closing the io
 * kills it after logger_kill_timeout_ms. A missing logger binary: NotFound. */
static void test_binary_logger_failures(void **state)
{
    struct fixture *f = *state;
    char uri[2048];
    logger_uri(uri, sizeof(uri), "hang", "unused");
    struct shim_stdio_config cfg = {
        .stdout_path = uri, .container_id = "ctr2", .logger_kill_timeout_ms = 300};
    shim_upstream_io_t *io = NULL;
    shim_error_t *err = NULL;
    if (shim_upstream_io_open(&f->loop, &cfg, &io, &err) != 0)
        fail_msg("open %s: %s", uri, err->msg);
    struct ready ready = {0};
    assert_int_equal(shim_upstream_io_wait_ready(io, 1500, on_ready, &ready, &err), 0);
    RUN_UNTIL(f, ready.done);
    assert_int_equal(ready.status, UV_ETIMEDOUT);
    bool closed = false;
    shim_upstream_io_close(io, set_flag, &closed);
    RUN_UNTIL(f, closed);

    struct shim_stdio_config missing = {.stdout_path = "binary:///C:/no/such/logger.exe?a=b",
                                        .container_id = "ctr3"};
    expect_open_error(f, &missing, RPC_NOT_FOUND, "logger.exe");
}
#else
static void test_named_pipes_windows_only(void **state)
{
    (void)state;
    skip(); /* \\.\pipe\ stdio exists on Windows only; Linux FIFOs: test_shim_stdio */
}
#endif

int main(int argc, char **argv)
{
#ifdef _WIN32
    if (argc == 3 && (strcmp(argv[1], "logger") == 0 || strcmp(argv[1], "hang") == 0))
        return logger_main(argv[1], argv[2]);
#else
    (void)argc;
    (void)argv;
#endif
    setvbuf(stdout, NULL, _IONBF, 0); /* wine: keep progress lines if killed */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_npipe_path_parse),
        cmocka_unit_test_setup_teardown(test_file_sink, setup, teardown),
#ifdef _WIN32
        cmocka_unit_test_setup_teardown(test_pipes_relay_both_ways, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipes_client_gone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipes_bad_paths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_binary_logger, setup, teardown),
        cmocka_unit_test_setup_teardown(test_binary_logger_failures, setup, teardown),
#else
        cmocka_unit_test(test_named_pipes_windows_only),
#endif
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
