/* shim/stdio: upstream IO and the relay, with real FIFOs, pipes, files and a
 * logger process on a real uv loop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "shim/stdio.h"

#define BIG_TRANSFER (64u << 20)

static uint8_t pattern_byte(uint64_t i)
{
    return (uint8_t)((i ^ (i >> 8) ^ (i >> 17) ^ (i >> 26)) * 131u + 7u);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

struct fixture {
    uv_loop_t loop;
    char dir[64];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&f->loop);
    strcpy(f->dir, "/tmp/test_shim_stdio.XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    *state = f;
    return 0;
}

static void walk_close(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    uv_walk(&f->loop, walk_close, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&f->loop);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    if (system(cmd) != 0)
        rc = -1;
    free(f);
    return rc == 0 ? 0 : -1;
}

static void path_in(struct fixture *f, const char *name, char *out, size_t size)
{
    snprintf(out, size, "%s/%s", f->dir, name);
}

static void make_fifo(struct fixture *f, const char *name, char *out, size_t size)
{
    path_in(f, name, out, size);
    assert_int_equal(mkfifo(out, 0700), 0);
}

/* A malloc'd uv_pipe_t around fd (ownership goes to the relay). */
static uv_stream_t *pipe_stream(uv_loop_t *loop, int fd)
{
    uv_pipe_t *p = malloc(sizeof(*p));
    assert_non_null(p);
    assert_int_equal(uv_pipe_init(loop, p, 0), 0);
    assert_int_equal(uv_pipe_open(p, fd), 0);
    return (uv_stream_t *)p;
}

/* Runs the loop until *flag or the deadline; true if the flag was set. */
static bool run_until(uv_loop_t *loop, const bool *flag, uint64_t timeout_ms)
{
    uint64_t end = now_ms() + timeout_ms;
    while (!__atomic_load_n(flag, __ATOMIC_SEQ_CST) && now_ms() < end) {
        uv_run(loop, UV_RUN_NOWAIT);
        if (!__atomic_load_n(flag, __ATOMIC_SEQ_CST))
            usleep(200);
    }
    return __atomic_load_n(flag, __ATOMIC_SEQ_CST);
}

static void run_for(uv_loop_t *loop, uint64_t ms)
{
    bool never = false;
    run_until(loop, &never, ms);
}

static void set_flag(void *data)
{
    *(bool *)data = true;
}

static void drained_cb(shim_relay_t *relay, void *data)
{
    (void)relay;
    *(bool *)data = true;
}

/* ---- threads standing in for the process and the client ----------------------- */

struct writer_job {
    int fd;
    uint64_t total;
    uint64_t written;
    int error;
    bool finished; /* set (atomically) after the fd is closed */
};

static void *writer_thread(void *arg)
{
    struct writer_job *j = arg;
    uint8_t buf[65536];
    while (j->written < j->total) {
        size_t n = sizeof(buf);
        if (j->total - j->written < n)
            n = (size_t)(j->total - j->written);
        for (size_t i = 0; i < n; i++)
            buf[i] = pattern_byte(j->written + i);
        ssize_t w = write(j->fd, buf, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            j->error = errno;
            break;
        }
        __atomic_add_fetch(&j->written, (uint64_t)w, __ATOMIC_SEQ_CST);
    }
    close(j->fd);
    __atomic_store_n(&j->finished, true, __ATOMIC_SEQ_CST);
    return NULL;
}

struct reader_job {
    int fd;
    uint64_t expect;
    uint64_t got;
    uint64_t mismatch_at; /* UINT64_MAX if none */
    unsigned delay_us;    /* per read: a slow client */
    int error;
};

static void *reader_thread(void *arg)
{
    struct reader_job *j = arg;
    uint8_t buf[16384];
    j->mismatch_at = UINT64_MAX;
    while (j->got < j->expect) {
        struct pollfd p = {.fd = j->fd, .events = POLLIN};
        if (poll(&p, 1, 30000) <= 0) {
            j->error = ETIMEDOUT;
            break;
        }
        ssize_t r = read(j->fd, buf, sizeof(buf));
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (r <= 0) {
            j->error = r < 0 ? errno : EPIPE;
            break;
        }
        for (ssize_t i = 0; i < r && j->mismatch_at == UINT64_MAX; i++) {
            if (buf[i] != pattern_byte(j->got + (uint64_t)i))
                j->mismatch_at = j->got + (uint64_t)i;
        }
        __atomic_add_fetch(&j->got, (uint64_t)r, __ATOMIC_SEQ_CST);
        if (j->delay_us)
            usleep(j->delay_us);
    }
    return NULL;
}

/* process stdout pipe -> relay -> upstream FIFO, checked byte for byte. */
static void transfer_through_fifo(struct fixture *f, uint64_t total, unsigned reader_delay_us,
                                  struct shim_relay_stats *stats)
{
    char fifo[128];
    make_fifo(f, "stdout", fifo, sizeof(fifo));
    int client_fd = open(fifo, O_RDONLY | O_NONBLOCK);
    assert_true(client_fd >= 0);

    struct shim_stdio_config cfg = {.stdout_path = fifo};
    shim_upstream_io_t *io = NULL;
    shim_error_t *err = NULL;
    assert_int_equal(shim_upstream_io_open(&f->loop, &cfg, &io, &err), 0);
    assert_true(shim_upstream_io_has_stdout(io));

    int proc[2];
    assert_int_equal(pipe2(proc, O_CLOEXEC), 0);
    struct shim_relay_streams streams = {.stdout_stream = pipe_stream(&f->loop, proc[0])};
    bool drained = false;
    shim_relay_t *relay = NULL;
    assert_int_equal(shim_relay_start(io, &streams, drained_cb, &drained, &relay, &err), 0);

    struct writer_job w = {.fd = proc[1], .total = total};
    struct reader_job r = {.fd = client_fd, .expect = total, .delay_us = reader_delay_us};
    pthread_t wt, rt;
    pthread_create(&wt, NULL, writer_thread, &w);
    pthread_create(&rt, NULL, reader_thread, &r);
    assert_true(run_until(&f->loop, &drained, 120000));
    pthread_join(wt, NULL);
    pthread_join(rt, NULL);
    assert_int_equal(w.error, 0);
    assert_int_equal(r.error, 0);
    assert_true(r.got == total);
    assert_true(r.mismatch_at == UINT64_MAX);
    shim_relay_get_stats(relay, stats);
    assert_true(stats->stdout_bytes == total);

    bool closed = false;
    shim_relay_close(relay, set_flag, &closed);
    assert_true(run_until(&f->loop, &closed, 10000));
    close(client_fd);
}

static void test_relay_64mib_byte_exact(void **state)
{
    struct shim_relay_stats stats;
    transfer_through_fifo(*state, BIG_TRANSFER, 0, &stats);
    assert_true(stats.max_buffered <= SHIM_RELAY_HIGH_WATER + SHIM_RELAY_BUFFER_SIZE);
}

/* A client reading slowly: the relay stops reading instead of buffering. */
static void test_relay_slow_reader_backpressure(void **state)
{
    struct shim_relay_stats stats;
    transfer_through_fifo(*state, 8u << 20, 300, &stats);
    assert_true(stats.max_buffered <= SHIM_RELAY_HIGH_WATER + SHIM_RELAY_BUFFER_SIZE);
}

/* Process writing faster than anyone reads: the writer must block, i.e. the
 * relay holds at most a bounded amount. */
static void test_relay_blocked_reader_bounds_buffering(void **state)
{
    struct fixture *f = *state;
    char fifo[128];
    make_fifo(f, "stdout", fifo, sizeof(fifo));
    struct shim_stdio_config cfg = {.stdout_path = fifo};
    shim_upstream_io_t *io = NULL;
    assert_int_equal(shim_upstream_io_open(&f->loop, &cfg, &io, NULL), 0);
    int proc[2];
    assert_int_equal(pipe2(proc, O_CLOEXEC), 0);
    struct shim_relay_streams streams = {.stdout_stream = pipe_stream(&f->loop, proc[0])};
    shim_relay_t *relay = NULL;
    bool drained = false;
    assert_int_equal(shim_relay_start(io, &streams, drained_cb, &drained, &relay, NULL), 0);

    struct writer_job w = {.fd = proc[1], .total = 32u << 20};
    pthread_t wt;
    pthread_create(&wt, NULL, writer_thread, &w);
    run_for(&f->loop, 1500); /* nobody reads the FIFO */
    uint64_t written = __atomic_load_n(&w.written, __ATOMIC_SEQ_CST);
    /* FIFO (64 KiB) + process pipe (64 KiB) + relay backlog + one read buffer. */
    uint64_t bound = (64u << 10) * 2 + SHIM_RELAY_HIGH_WATER + 2 * SHIM_RELAY_BUFFER_SIZE;
    assert_true(written <= bound);
    assert_false(drained);
    struct shim_relay_stats stats;
    shim_relay_get_stats(relay, &stats);
    assert_true(stats.max_buffered <= SHIM_RELAY_HIGH_WATER + SHIM_RELAY_BUFFER_SIZE);

    /* Teardown with a stuck client must not hang; the writer sees EPIPE. */
    bool closed = false;
    shim_relay_close(relay, set_flag, &closed);
    assert_true(run_until(&f->loop, &closed, 10000));
    pthread_join(wt, NULL);
    assert_int_equal(w.error, EPIPE);
}

/* ---- stdin ------------------------------------------------------------------- */

struct collector {
    char data[4096];
    size_t len;
    bool eof;
};

static void collect_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct collector *c = h->data;
    *buf = uv_buf_init(c->data + c->len, (unsigned)(sizeof(c->data) - c->len));
}

static void collect_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    struct collector *c = s->data;
    if (nread > 0)
        c->len += (size_t)nread;
    else if (nread < 0) {
        c->eof = true;
        uv_read_stop(s);
    }
}

static bool run_until_len(uv_loop_t *loop, const struct collector *c, size_t len,
                          uint64_t timeout_ms)
{
    uint64_t end = now_ms() + timeout_ms;
    while (c->len < len && !c->eof && now_ms() < end) {
        uv_run(loop, UV_RUN_NOWAIT);
        usleep(200);
    }
    return c->len >= len;
}

static void test_stdin_eof_only_after_closeio(void **state)
{
    struct fixture *f = *state;
    char fifo[128];
    make_fifo(f, "stdin", fifo, sizeof(fifo));
    struct shim_stdio_config cfg = {.stdin_path = fifo};
    shim_upstream_io_t *io = NULL;
    shim_error_t *err = NULL;
    assert_int_equal(shim_upstream_io_open(&f->loop, &cfg, &io, &err), 0);
    assert_true(shim_upstream_io_has_stdin(io));

    /* The process side: the relay writes into proc[1]; we read proc[0]. */
    int proc[2];
    assert_int_equal(pipe2(proc, O_CLOEXEC), 0);
    struct collector got = {.len = 0};
    uv_pipe_t reader;
    uv_pipe_init(&f->loop, &reader, 0);
    uv_pipe_open(&reader, proc[0]);
    reader.data = &got;
    uv_read_start((uv_stream_t *)&reader, collect_alloc, collect_read);

    struct shim_relay_streams streams = {.stdin_stream = pipe_stream(&f->loop, proc[1])};
    shim_relay_t *relay = NULL;
    bool drained = false;
    assert_int_equal(shim_relay_start(io, &streams, drained_cb, &drained, &relay, &err), 0);
    assert_true(run_until(&f->loop, &drained, 5000)); /* no outputs: drained at once */

    /* The client writes and goes away: no EOF yet (the keep-alive writer). */
    int client = open(fifo, O_WRONLY | O_NONBLOCK);
    assert_true(client >= 0);
    assert_int_equal(write(client, "hello\n", 6), 6);
    close(client);
    assert_true(run_until_len(&f->loop, &got, 6, 10000));
    run_for(&f->loop, 200); /* time for a wrong EOF to show up */
    assert_int_equal(got.len, 6);
    assert_memory_equal(got.data, "hello\n", 6);
    assert_false(got.eof);

    /* A client may come back before CloseIO. */
    client = open(fifo, O_WRONLY | O_NONBLOCK);
    assert_true(client >= 0);
    assert_int_equal(write(client, "again\n", 6), 6);
    close(client);
    assert_true(run_until_len(&f->loop, &got, 12, 10000));
    run_for(&f->loop, 200);
    assert_false(got.eof);

    shim_relay_close_stdin(relay);
    assert_true(run_until(&f->loop, &got.eof, 5000));
    assert_int_equal(got.len, 12);
    assert_memory_equal(got.data, "hello\nagain\n", 12);

    bool closed = false;
    shim_relay_close(relay, set_flag, &closed);
    assert_true(run_until(&f->loop, &closed, 5000));
    uv_close((uv_handle_t *)&reader, NULL);
}

/* Without upstream stdin the process's stdin is closed right away. */
static void test_no_stdin_closes_process_stdin(void **state)
{
    struct fixture *f = *state;
    struct shim_stdio_config cfg = {.stdin_path = ""};
    shim_upstream_io_t *io = NULL;
    assert_int_equal(shim_upstream_io_open(&f->loop, &cfg, &io, NULL), 0);
    assert_false(shim_upstream_io_has_stdin(io));
    int proc[2];
    assert_int_equal(pipe2(proc, O_CLOEXEC), 0);
    struct shim_relay_streams streams = {.stdin_stream = pipe_stream(&f->loop, proc[1])};
    shim_relay_t *relay = NULL;
    assert_int_equal(shim_relay_start(io, &streams, NULL, NULL, &relay, NULL), 0);
    run_for(&f->loop, 100);
    char c;
    assert_int_equal(read(proc[0], &c, 1), 0); /* EOF */
    close(proc[0]);
    bool closed = false;
    shim_relay_close(relay, set_flag, &closed);
    assert_true(run_until(&f->loop, &closed, 5000));
}

/* ---- files -------------------------------------------------------------------- */

struct drain_check {
    const char *path;
    off_t expect;
    off_t size_at_drain;
    bool drained;
};

static void drain_check_cb(shim_relay_t *relay, void *data)
{
    (void)relay;
    struct drain_check *d = data;
    struct stat st;
    d->size_at_drain = stat(d->path, &st) == 0 ? st.st_size : -1;
    d->drained = true;
}

static void write_all_fd(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        assert_true(w > 0);
        p += w;
        len -= (size_t)w;
    }
}

/* The drain callback comes after the last byte of every output is written. */
static void test_drain_after_last_byte(void **state)
{
    struct fixture *f = *state;
    char path[128], uri[160];
    path_in(f, "out.log", path, sizeof(path));
    snprintf(uri, sizeof(uri), "file://%s", path);
    struct shim_stdio_config cfg = {.stdout_path = uri, .stderr_path = uri};
    shim_upstream_io_t *io = NULL;
    assert_int_equal(shim_upstream_io_open(&f->loop, &cfg, &io, NULL), 0);
    assert_true(shim_upstream_io_has_stderr(io));

    int out[2], errp[2];
    assert_int_equal(pipe2(out, O_CLOEXEC), 0);
    assert_int_equal(pipe2(errp, O_CLOEXEC), 0);
    struct shim_relay_streams streams = {.stdout_stream = pipe_stream(&f->loop, out[0]),
                                         .stderr_stream = pipe_stream(&f->loop, errp[0])};
    const size_t out_total = 6u << 20;
    struct drain_check d = {.path = path, .expect = (off_t)out_total + 5};
    shim_relay_t *relay = NULL;
    assert_int_equal(shim_relay_start(io, &streams, drain_check_cb, &d, &relay, NULL), 0);

    struct writer_job w = {.fd = out[1], .total = out_total};
    pthread_t wt;
    pthread_create(&wt, NULL, writer_thread, &w);
    /* The loop must run while the writer works: the relay is what drains it. */
    assert_true(run_until(&f->loop, &w.finished, 60000)); /* stdout hit EOF ... */
    pthread_join(wt, NULL);
    run_for(&f->loop, 300);
    assert_false(d.drained); /* ... but stderr is still open */
    write_all_fd(errp[1], "error", 5);
    close(errp[1]);
    assert_true(run_until(&f->loop, &d.drained, 30000));
    assert_true(d.size_at_drain == d.expect);

    bool closed = false;
    shim_relay_close(relay, set_flag, &closed);
    assert_true(run_until(&f->loop, &closed, 5000));
}

/* A relay from a process pipe to a FIFO whose client reader is open but reads
 * only when the test says so. */
struct fifo_relay {
    int reader;      /* the client's end of the FIFO */
    int process_out; /* the process's stdout (write end) */
    shim_relay_t *relay;
    bool drained;
};

static void fifo_relay_start(struct fixture *f, const char *name, struct fifo_relay *fr)
{
    char fifo[128];
    make_fifo(f, name, fifo, sizeof(fifo));
    fr->reader = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    assert_true(fr->reader >= 0);
    struct shim_stdio_config cfg = {.stdout_path = fifo};
    shim_upstream_io_t *io = NULL;
    assert_int_equal(shim_upstream_io_open(&f->loop, &cfg, &io, NULL), 0);
    int out[2];
    assert_int_equal(pipe2(out, O_CLOEXEC), 0);
    fr->process_out = out[1];
    struct shim_relay_streams streams = {.stdout_stream = pipe_stream(&f->loop, out[0])};
    fr->drained = false;
    assert_int_equal(shim_relay_start(io, &streams, drained_cb, &fr->drained, &fr->relay, NULL), 0);
}

static void fifo_relay_close(struct fixture *f, struct fifo_relay *fr)
{
    bool closed = false;
    shim_relay_close(fr->relay, set_flag, &closed);
    assert_true(run_until(&f->loop, &closed, 5000));
    close(fr->reader);
}

/* Drained waits until the FIFO reader took the bytes (containerd 1.6's client
 * closes its readers right after Wait), but not forever for a reader that
 * stopped reading. */
static void test_drain_waits_for_fifo_reader(void **state)
{
    struct fixture *f = *state;
    struct fifo_relay fr;
    fifo_relay_start(f, "slow-stdout", &fr);
    char chunk[20000];
    memset(chunk, 'z', sizeof(chunk));
    write_all_fd(fr.process_out, chunk, sizeof(chunk));
    close(fr.process_out);

    run_for(&f->loop, 400);
    assert_false(fr.drained); /* every byte is in the FIFO, none read yet */
    size_t got = 0;
    while (got < sizeof(chunk)) {
        ssize_t n = read(fr.reader, chunk, sizeof(chunk));
        if (n > 0)
            got += (size_t)n;
        run_for(&f->loop, 5);
    }
    assert_true(run_until(&f->loop, &fr.drained, 5000));
    fifo_relay_close(f, &fr);
}

static void test_drain_gives_up_on_a_stalled_reader(void **state)
{
    struct fixture *f = *state;
    struct fifo_relay fr;
    fifo_relay_start(f, "stalled-stdout", &fr);
    write_all_fd(fr.process_out, "never read\n", 11);
    close(fr.process_out);
    uint64_t start = now_ms();
    assert_true(run_until(&f->loop, &fr.drained, 10000));
    assert_true(now_ms() - start >= 900); /* waited for the reader ... */
    char buf[32];
    assert_int_equal(read(fr.reader, buf, sizeof(buf)), 11); /* ... and kept the bytes */
    fifo_relay_close(f, &fr);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL)
        return NULL;
    char *buf = calloc(1, 1 << 16);
    *len = fread(buf, 1, (1 << 16) - 1, fp);
    fclose(fp);
    return buf;
}

static void test_file_uri_appends(void **state)
{
    struct fixture *f = *state;
    char path[128], uri[160];
    path_in(f, "nested/dir/out.log", path, sizeof(path));
    snprintf(uri, sizeof(uri), "file://%s", path);

    for (int round = 0; round < 2; round++) {
        struct shim_stdio_config cfg = {.stdout_path = uri};
        shim_upstream_io_t *io = NULL;
        shim_error_t *err = NULL;
        assert_int_equal(shim_upstream_io_open(&f->loop, &cfg, &io, &err), 0);
        int out[2];
        assert_int_equal(pipe2(out, O_CLOEXEC), 0);
        struct shim_relay_streams streams = {.stdout_stream = pipe_stream(&f->loop, out[0])};
        bool drained = false;
        shim_relay_t *relay = NULL;
        assert_int_equal(shim_relay_start(io, &streams, drained_cb, &drained, &relay, NULL), 0);
        write_all_fd(out[1], round == 0 ? "first\n" : "second\n", round == 0 ? 6 : 7);
        close(out[1]);
        assert_true(run_until(&f->loop, &drained, 5000));
        bool closed = false;
        shim_relay_close(relay, set_flag, &closed);
        assert_true(run_until(&f->loop, &closed, 5000));
    }
    size_t len = 0;
    char *text = slurp(path, &len);
    assert_non_null(text);
    assert_string_equal(text, "first\nsecond\n");
    free(text);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
}

/* ---- binary:// ------------------------------------------------------------------ */

static void write_logger(struct fixture *f, char *script, size_t size)
{
    path_in(f, "logger.sh", script, size);
    FILE *fp = fopen(script, "w");
    assert_non_null(fp);
    fprintf(fp, "#!/bin/sh\n"
                "dir=\"$2\"\n"
                "/usr/bin/env > \"$dir/env\"\n"
                "printf '%%s\\n' \"$@\" > \"$dir/args\"\n"
                /* Copiers first (without the ready fd), then "ready": a
                 * SIGTERM right after readiness must not lose output. */
                "(exec 5>&- 4<&-; /bin/cat <&3 > \"$dir/stdout.tmp\" && "
                "/bin/mv \"$dir/stdout.tmp\" \"$dir/stdout\") &\n"
                "(exec 5>&- 3<&-; /bin/cat <&4 > \"$dir/stderr.tmp\" && "
                "/bin/mv \"$dir/stderr.tmp\" \"$dir/stderr\") &\n"
                "exec 3<&- 4<&- 5>&-\n"
                "wait\n");
    fclose(fp);
    assert_int_equal(chmod(script, 0755), 0);
}

static void ready_cb(shim_upstream_io_t *io, int status, void *data)
{
    (void)io;
    int *out = data;
    *out = status == 0 ? 1 : status;
}

static bool wait_for_file(const char *path, uint64_t timeout_ms)
{
    uint64_t end = now_ms() + timeout_ms;
    while (access(path, F_OK) != 0) {
        if (now_ms() > end)
            return false;
        usleep(10000);
    }
    return true;
}

static void test_binary_logger(void **state)
{
    struct fixture *f = *state;
    char script[128], uri[512], file[160];
    write_logger(f, script, sizeof(script));
    snprintf(uri, sizeof(uri), "binary://%s?dir=%s&mode=te%%20st", script, f->dir);
    struct shim_stdio_config cfg = {
        .stdout_path = uri, .stderr_path = uri, .container_id = "c1", .namespace_name = "ns1"};
    shim_upstream_io_t *io = NULL;
    shim_error_t *err = NULL;
    assert_int_equal(shim_upstream_io_open(&f->loop, &cfg, &io, &err), 0);
    int logger = shim_upstream_io_logger_pid(io);
    assert_true(logger > 0);
    int ready = 0;
    assert_int_equal(shim_upstream_io_wait_ready(io, 10000, ready_cb, &ready, NULL), 0);
    uint64_t end = now_ms() + 10000;
    while (ready == 0 && now_ms() < end) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(500);
    }
    assert_int_equal(ready, 1);

    int out[2], errp[2];
    assert_int_equal(pipe2(out, O_CLOEXEC), 0);
    assert_int_equal(pipe2(errp, O_CLOEXEC), 0);
    struct shim_relay_streams streams = {.stdout_stream = pipe_stream(&f->loop, out[0]),
                                         .stderr_stream = pipe_stream(&f->loop, errp[0])};
    bool drained = false;
    shim_relay_t *relay = NULL;
    assert_int_equal(shim_relay_start(io, &streams, drained_cb, &drained, &relay, NULL), 0);
    write_all_fd(out[1], "to stdout\n", 10);
    write_all_fd(errp[1], "to stderr\n", 10);
    close(out[1]);
    close(errp[1]);
    assert_true(run_until(&f->loop, &drained, 10000));
    bool closed = false;
    shim_relay_close(relay, set_flag, &closed);
    assert_true(run_until(&f->loop, &closed, 20000)); /* logger reaped */
    assert_true(kill(logger, 0) < 0 && errno == ESRCH);

    size_t len;
    char *text;
    path_in(f, "stdout", file, sizeof(file));
    assert_true(wait_for_file(file, 10000));
    text = slurp(file, &len);
    assert_string_equal(text, "to stdout\n");
    free(text);
    path_in(f, "stderr", file, sizeof(file));
    assert_true(wait_for_file(file, 10000));
    text = slurp(file, &len);
    assert_string_equal(text, "to stderr\n");
    free(text);

    char expect_args[256];
    snprintf(expect_args, sizeof(expect_args), "dir\n%s\nmode\nte st\n", f->dir);
    path_in(f, "args", file, sizeof(file));
    text = slurp(file, &len);
    assert_string_equal(text, expect_args);
    free(text);
    path_in(f, "env", file, sizeof(file));
    text = slurp(file, &len);
    assert_non_null(strstr(text, "CONTAINER_ID=c1\n"));
    assert_non_null(strstr(text, "CONTAINER_NAMESPACE=ns1\n"));
    assert_null(strstr(text, "HOME="));
    free(text);
}

static void test_binary_logger_missing(void **state)
{
    struct fixture *f = *state;
    struct shim_stdio_config cfg = {.stdout_path = "binary:///nonexistent/logger"};
    shim_upstream_io_t *io = NULL;
    shim_error_t *err = NULL;
    assert_int_equal(shim_upstream_io_open(&f->loop, &cfg, &io, &err), -1);
    assert_non_null(strstr(err->msg, "/nonexistent/logger"));
    error_free(err);
}

/* A logger that ignores SIGTERM is killed after the timeout. */
static void test_binary_logger_ignoring_sigterm(void **state)
{
    struct fixture *f = *state;
    char script[128], uri[256];
    path_in(f, "stubborn.sh", script, sizeof(script));
    FILE *fp = fopen(script, "w");
    assert_non_null(fp);
    fprintf(fp, "#!/bin/sh\ntrap '' TERM\nexec 3<&- 4<&- 5>&-\nexec /bin/sleep 1000\n");
    fclose(fp);
    assert_int_equal(chmod(script, 0755), 0);
    snprintf(uri, sizeof(uri), "binary://%s", script);
    struct shim_stdio_config cfg = {.stdout_path = uri, .logger_kill_timeout_ms = 300};
    shim_upstream_io_t *io = NULL;
    assert_int_equal(shim_upstream_io_open(&f->loop, &cfg, &io, NULL), 0);
    int logger = shim_upstream_io_logger_pid(io);
    int ready = 0;
    assert_int_equal(shim_upstream_io_wait_ready(io, 10000, ready_cb, &ready, NULL), 0);
    uint64_t end = now_ms() + 10000;
    while (ready == 0 && now_ms() < end) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(500);
    }
    assert_int_equal(ready, 1);
    usleep(100000); /* let it reach sleep with TERM ignored */
    uint64_t t0 = now_ms();
    bool closed = false;
    shim_upstream_io_close(io, set_flag, &closed);
    assert_true(run_until(&f->loop, &closed, 20000));
    uint64_t took = now_ms() - t0;
    assert_true(took >= 250); /* TERM alone did not end it */
    assert_true(kill(logger, 0) < 0 && errno == ESRCH);
}

/* ---- parsing and misc ---------------------------------------------------------- */

static void test_uri_parse(void **state)
{
    (void)state;
    struct shim_stdio_uri u;
    shim_error_t *err = NULL;
    assert_int_equal(shim_stdio_uri_parse("", &u, &err), 0);
    assert_int_equal(u.kind, SHIM_STDIO_NONE);
    assert_int_equal(shim_stdio_uri_parse("/run/fifo/x-stdout", &u, &err), 0);
    assert_int_equal(u.kind, SHIM_STDIO_FIFO);
    assert_string_equal(u.path, "/run/fifo/x-stdout");
    shim_stdio_uri_free(&u);
    assert_int_equal(shim_stdio_uri_parse("fifo:///a/b", &u, &err), 0);
    assert_int_equal(u.kind, SHIM_STDIO_FIFO);
    assert_string_equal(u.path, "/a/b");
    shim_stdio_uri_free(&u);
    assert_int_equal(shim_stdio_uri_parse("file:///var/log/a%20b.log", &u, &err), 0);
    assert_int_equal(u.kind, SHIM_STDIO_FILE);
    assert_string_equal(u.path, "/var/log/a b.log");
    shim_stdio_uri_free(&u);
    assert_int_equal(shim_stdio_uri_parse("binary:///bin/logger?a=1&b=x+y&a=2&c", &u, &err), 0);
    assert_int_equal(u.kind, SHIM_STDIO_BINARY);
    assert_string_equal(u.path, "/bin/logger");
    assert_int_equal(u.n_args, 6);
    const char *expect[] = {"a", "1", "b", "x y", "c", ""};
    for (int i = 0; i < 6; i++)
        assert_string_equal(u.args[i], expect[i]);
    assert_null(u.args[6]);
    shim_stdio_uri_free(&u);

    const char *bad[] = {"relative/path", "http:///x", "file://host/x", "binary:///x?a=%zz",
                         "file:///bad%2"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err = NULL;
        assert_int_equal(shim_stdio_uri_parse(bad[i], &u, &err), -1);
        assert_non_null(err);
        error_free(err);
    }

    /* An escaped NUL would cut the decoded string short ("/tmp/a"), so it is
     * refused wherever it appears, with the URI in the message. */
    const char *nul[] = {"file:///tmp/a%00/../../etc/x",        "binary:///bin/logger%00.evil?k=v",
                         "binary:///bin/logger?k=v%00w",        "binary:///bin/logger?k%00ey=v",
                         "binary:///bin/logger?a=1&k=%00",      "fifo:///run/x%00y",
                         "binary:///bin/logger%00.evil?k=v%00w"};
    for (size_t i = 0; i < sizeof(nul) / sizeof(nul[0]); i++) {
        err = NULL;
        memset(&u, 0xa5, sizeof(u));
        assert_int_equal(shim_stdio_uri_parse(nul[i], &u, &err), -1);
        assert_non_null(err);
        assert_int_equal(err->code, RPC_INVALID_ARGUMENT);
        assert_non_null(strstr(err->msg, nul[i]));
        assert_non_null(strstr(err->msg, "NUL"));
        assert_null(u.path);
        assert_null(u.args);
        assert_int_equal(u.n_args, 0);
        error_free(err);
    }
    /* Other control bytes and a literal "%00" spelled %2500 still decode. */
    assert_int_equal(shim_stdio_uri_parse("binary:///bin/logger?k=%01%2500", &u, &err), 0);
    assert_string_equal(u.path, "/bin/logger");
    assert_int_equal(u.n_args, 2);
    assert_string_equal(u.args[1], "\x01%00");
    shim_stdio_uri_free(&u);
}

static void test_terminal_ignores_stderr(void **state)
{
    struct fixture *f = *state;
    char out[128], errf[128];
    make_fifo(f, "t-stdout", out, sizeof(out));
    make_fifo(f, "t-stderr", errf, sizeof(errf));
    struct shim_stdio_config cfg = {.stdout_path = out, .stderr_path = errf, .terminal = true};
    shim_upstream_io_t *io = NULL;
    assert_int_equal(shim_upstream_io_open(&f->loop, &cfg, &io, NULL), 0);
    assert_true(shim_upstream_io_has_stdout(io));
    assert_false(shim_upstream_io_has_stderr(io));
    assert_false(shim_upstream_io_has_stdin(io));
    bool closed = false;
    shim_upstream_io_close(io, set_flag, &closed);
    assert_true(run_until(&f->loop, &closed, 5000));
}

static void test_missing_fifo_is_not_found(void **state)
{
    struct fixture *f = *state;
    char path[128];
    path_in(f, "no-such-fifo", path, sizeof(path));
    struct shim_stdio_config cfg = {.stdout_path = path};
    shim_upstream_io_t *io = NULL;
    shim_error_t *err = NULL;
    assert_int_equal(shim_upstream_io_open(&f->loop, &cfg, &io, &err), -1);
    assert_int_equal(err->code, RPC_NOT_FOUND);
    error_free(err);
    /* stdin must be a FIFO */
    path_in(f, "regular", path, sizeof(path));
    close(open(path, O_CREAT | O_WRONLY, 0600));
    struct shim_stdio_config cfg2 = {.stdin_path = path};
    err = NULL;
    assert_int_equal(shim_upstream_io_open(&f->loop, &cfg2, &io, &err), -1);
    assert_int_equal(err->code, RPC_INVALID_ARGUMENT);
    error_free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uri_parse),
        cmocka_unit_test_setup_teardown(test_relay_64mib_byte_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_relay_slow_reader_backpressure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_relay_blocked_reader_bounds_buffering, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stdin_eof_only_after_closeio, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_stdin_closes_process_stdin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drain_after_last_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drain_waits_for_fifo_reader, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drain_gives_up_on_a_stalled_reader, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_uri_appends, setup, teardown),
        cmocka_unit_test_setup_teardown(test_binary_logger, setup, teardown),
        cmocka_unit_test_setup_teardown(test_binary_logger_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_binary_logger_ignoring_sigterm, setup, teardown),
        cmocka_unit_test_setup_teardown(test_terminal_ignores_stderr, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_fifo_is_not_found, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
