/* Device links (gcs/unix/transport_mux.c): the mux and the bridge over
 * char-device-like fd pairs. Stand-ins for a virtio-serial port:
 *   - a pipe pair: byte-exact transfer and EOF/hang-up after data;
 *   - a FIFO: with no writer, read() returns 0 and (once a writer has come and
 *     gone) poll reports POLLHUP all the time, which is what an unconnected
 *     port does (linux-uvm.md §4): the link must wait and retry without
 *     spinning, then work once the "host" connects;
 *   - a pty (slave side = the guest's device): one O_RDWR fd like a real port;
 *     master close gives POLLHUP + read() == 0 + write EIO like a host
 *     disconnect. A pty cannot model "host not yet connected".
 * Limits: none of these has the port's single-open rule (EBUSY) or its
 * "write blocks while the host is away" behaviour, and a pty's line
 * discipline must be raw (gcs_device_open does that for ttys). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/log.h"
#include "gcs/mux.h"
#include "gcs/transport.h"
#include "test/support/stream_pair.h"

static uv_loop_t loop;

static void run_until(const bool *flag, unsigned timeout_ms)
{
    if (!loop_run_until_flag(&loop, flag, timeout_ms))
        fail_msg("timed out after %u ms", timeout_ms);
}

static void run_for(unsigned ms)
{
    loop_run_for(&loop, ms);
}

static void drain_loop(void)
{
    loop_drain(&loop, 20);
}

struct ep {
    uv_stream_t *s;
    int status;
    bool done;
    bool eof; /* EOF or an error */
    size_t got;
    bool bad;
    char data[256];
};

static uint8_t pattern_byte(uint64_t i)
{
    return (uint8_t)((i * 13) ^ (i >> 9) ^ (i >> 21));
}

static void t_accept(struct gcs_listener *l, uv_stream_t *s, int status, void *opaque)
{
    struct ep *e = opaque;
    (void)l;
    e->s = s;
    e->status = status;
    e->done = true;
}

static void t_connect(uv_stream_t *s, int status, void *opaque)
{
    struct ep *e = opaque;
    e->s = s;
    e->status = status;
    e->done = true;
}

static void ep_alloc(uv_handle_t *h, size_t n, uv_buf_t *b)
{
    (void)h;
    b->base = malloc(n);
    b->len = n;
}

static void ep_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct ep *e = s->data;
    if (n > 0) {
        for (ssize_t i = 0; i < n; i++) {
            if (e->got + (size_t)i < sizeof(e->data))
                e->data[e->got + (size_t)i] = b->base[i];
        }
        e->got += (size_t)n;
    } else if (n < 0) {
        e->eof = true;
        uv_read_stop(s);
    }
    free(b->base);
}

/* Reads and checks the pattern (bulk). */
static void ep_read_pattern(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct ep *e = s->data;
    if (n > 0) {
        for (ssize_t i = 0; i < n; i++)
            if ((uint8_t)b->base[i] != pattern_byte(e->got + (size_t)i))
                e->bad = true;
        e->got += (size_t)n;
    } else if (n < 0) {
        e->eof = true;
        uv_read_stop(s);
    }
    free(b->base);
}

static void ep_start(struct ep *e, bool pattern)
{
    e->s->data = e;
    assert_int_equal(uv_read_start(e->s, ep_alloc, pattern ? ep_read_pattern : ep_read), 0);
}

static void write_done(uv_write_t *req, int status)
{
    (void)status;
    free(req->data);
    free(req);
}

static void ep_write(struct ep *e, const void *data, size_t n)
{
    uv_write_t *req = malloc(sizeof(*req));
    req->data = malloc(n);
    memcpy(req->data, data, n);
    uv_buf_t b = uv_buf_init(req->data, (unsigned)n);
    assert_int_equal(uv_write(req, e->s, &b, 1, write_done), 0);
}

static void shut_done(uv_shutdown_t *req, int status)
{
    (void)status;
    free(req);
}

static void ep_shutdown(struct ep *e)
{
    uv_shutdown_t *req = malloc(sizeof(*req));
    assert_int_equal(uv_shutdown(req, e->s, shut_done), 0);
}

static void ep_close(struct ep *e)
{
    gcs_stream_close(e->s);
    e->s = NULL;
}

static void connect_pair(struct gcs_transport *host, struct gcs_transport *guest, uint32_t port,
                         struct ep *g, struct ep *h, struct gcs_listener **l)
{
    assert_int_equal(gcs_transport_listen(host, port, t_accept, h, l, NULL), 0);
    assert_int_equal(gcs_transport_connect(guest, port, t_connect, g, NULL), 0);
    run_until(&g->done, 10000);
    run_until(&h->done, 10000);
    assert_int_equal(g->status, 0);
    assert_int_equal(h->status, 0);
}

static void test_mux_over_pipe_pair(void **state)
{
    (void)state;
    int g2h[2], h2g[2];
    assert_int_equal(pipe2(g2h, O_CLOEXEC), 0);
    assert_int_equal(pipe2(h2g, O_CLOEXEC), 0);
    struct gcs_transport *guest, *host;
    assert_int_equal(
        gcs_transport_mux_device_new(&loop, h2g[0], g2h[1], GCS_MUX_ROLE_GUEST, &guest, NULL), 0);
    assert_int_equal(
        gcs_transport_mux_device_new(&loop, g2h[0], h2g[1], GCS_MUX_ROLE_HOST, &host, NULL), 0);
    struct ep g = {0}, h = {0};
    struct gcs_listener *l;
    connect_pair(host, guest, 0x40000001, &g, &h, &l);
    gcs_listener_close(l);
    /* 8 MiB guest -> host byte-exact, then EOF; a reply the other way */
    ep_start(&h, true);
    ep_start(&g, false);
    const size_t total = 8u << 20;
    char *buf = malloc(65536);
    for (size_t off = 0; off < total; off += 65536) {
        for (size_t i = 0; i < 65536; i++)
            buf[i] = (char)pattern_byte(off + i);
        ep_write(&g, buf, 65536);
        if (g.s->write_queue_size > (2u << 20)) /* keep our own memory bounded */
            while (g.s->write_queue_size > (1u << 20))
                uv_run(&loop, UV_RUN_ONCE);
    }
    free(buf);
    ep_shutdown(&g);
    run_until(&h.eof, 30000);
    assert_int_equal(h.got, total);
    assert_false(h.bad);
    ep_write(&h, "done", 4);
    ep_shutdown(&h);
    run_until(&g.eof, 10000);
    assert_int_equal(g.got, 4);
    assert_memory_equal(g.data, "done", 4);
    ep_close(&g);
    ep_close(&h);
    /* host goes away with a stream open: the guest's stream ends, no hang */
    struct ep g2 = {0}, h2 = {0};
    connect_pair(host, guest, 0x40000002, &g2, &h2, &l);
    gcs_listener_close(l);
    ep_start(&g2, false);
    ep_close(&h2);
    drain_loop();
    gcs_transport_destroy(host);
    run_until(&g2.eof, 10000);
    /* later connects fail (the link is down) */
    struct ep g3 = {0};
    shim_error_t *err = NULL;
    int rc = gcs_transport_connect(guest, 5, t_connect, &g3, &err);
    if (rc == 0) {
        run_until(&g3.done, 10000);
        assert_true(g3.status < 0);
    } else {
        error_free(err);
    }
    ep_close(&g2);
    drain_loop();
    gcs_transport_destroy(guest);
    drain_loop();
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
           ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
}

/* The guest reads a FIFO: hang-ups before the "host" connects are waited out
 * (no busy loop), then the session comes up on the same fd. */
static void test_mux_waits_for_host(void **state)
{
    (void)state;
    char dir[] = "/tmp/mux-dev-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char fifo[64];
    snprintf(fifo, sizeof(fifo), "%s/h2g", dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    int guest_in = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    assert_true(guest_in >= 0);
    /* a writer that comes and goes: from now on the reader sees POLLHUP and
     * read() == 0 continuously, like a port without a host */
    int w = open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    assert_true(w >= 0);
    close(w);
    int g2h[2];
    assert_int_equal(pipe2(g2h, O_CLOEXEC), 0);
    struct gcs_transport *guest, *host;
    assert_int_equal(
        gcs_transport_mux_device_new(&loop, guest_in, g2h[1], GCS_MUX_ROLE_GUEST, &guest, NULL), 0);
    /* the agent dials while the host is still away */
    struct ep g = {0}, h = {0};
    assert_int_equal(gcs_transport_connect(guest, 0x40000001, t_connect, &g, NULL), 0);
    double cpu0 = cpu_seconds();
    run_for(600);
    double cpu = cpu_seconds() - cpu0;
    print_message("cpu while the host is away: %.3f s of 0.6 s\n", cpu);
    assert_false(g.done);   /* neither failed nor connected */
    assert_true(cpu < 0.3); /* waiting, not spinning on POLLHUP */
    /* the host connects */
    int host_out = open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    assert_true(host_out >= 0);
    assert_int_equal(
        gcs_transport_mux_device_new(&loop, g2h[0], host_out, GCS_MUX_ROLE_HOST, &host, NULL), 0);
    struct gcs_listener *l;
    assert_int_equal(gcs_transport_listen(host, 0x40000001, t_accept, &h, &l, NULL), 0);
    run_until(&g.done, 10000);
    run_until(&h.done, 10000);
    assert_int_equal(g.status, 0);
    ep_start(&h, false);
    ep_write(&g, "late-host", 9);
    ep_shutdown(&g);
    run_until(&h.eof, 10000);
    assert_int_equal(h.got, 9);
    assert_memory_equal(h.data, "late-host", 9);
    gcs_listener_close(l);
    ep_close(&g);
    ep_close(&h);
    drain_loop();
    gcs_transport_destroy(host);
    gcs_transport_destroy(guest);
    drain_loop();
    unlink(fifo);
    rmdir(dir);
}

/* The bridge over a pty (one O_RDWR fd, as a real port): data both ways, the
 * stream is the bridge port only, and a host disconnect is EOF. */
static void test_bridge_over_pty(void **state)
{
    (void)state;
    int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    assert_true(master >= 0);
    assert_int_equal(grantpt(master), 0);
    assert_int_equal(unlockpt(master), 0);
    assert_int_equal(fcntl(master, F_SETFL, O_NONBLOCK), 0);
    int fd = -1;
    assert_int_equal(gcs_device_open(ptsname(master), &fd, NULL), 0);
    struct gcs_transport *t;
    assert_int_equal(gcs_transport_device_new(&loop, fd, fd, &t, NULL), 0);
    shim_error_t *err = NULL;
    struct ep x = {0}, b = {0};
    assert_int_equal(gcs_transport_connect(t, 0x40000001, t_connect, &x, &err), -1);
    error_free(err);
    assert_int_equal(gcs_transport_connect(t, 0x40000000, t_connect, &b, NULL), 0);
    run_until(&b.done, 10000);
    assert_int_equal(b.status, 0);
    ep_start(&b, false);
    /* binary-clean both ways (raw mode): \r, \n, ^C, ^D, NUL */
    const char hostmsg[] = "h\r\n\x03\x04\0x";
    assert_int_equal(write(master, hostmsg, sizeof(hostmsg)), (ssize_t)sizeof(hostmsg));
    while (b.got < sizeof(hostmsg))
        uv_run(&loop, UV_RUN_ONCE);
    assert_memory_equal(b.data, hostmsg, sizeof(hostmsg));
    ep_write(&b, "g\r\n\x03\0y", 6);
    char got[16];
    size_t n = 0;
    for (int i = 0; i < 1000 && n < 6; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        ssize_t r = read(master, got + n, sizeof(got) - n);
        if (r > 0)
            n += (size_t)r;
        else
            usleep(1000);
    }
    assert_int_equal(n, 6);
    assert_memory_equal(got, "g\r\n\x03\0y", 6);
    /* host disconnect after data: EOF on the bridge stream */
    close(master);
    run_until(&b.eof, 10000);
    ep_close(&b);
    drain_loop();
    gcs_transport_destroy(t);
    drain_loop();
}

static void test_virtio_port_find(void **state)
{
    (void)state;
    char dir[] = "/tmp/mux-ports-XXXXXX";
    assert_non_null(mkdtemp(dir));
    const char *ports[][2] = {{"vport0p1", "gcs"}, {"vport0p2", "stdio"}};
    char path[256];
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, ports[i][0]);
        assert_int_equal(mkdir(path, 0700), 0);
        snprintf(path, sizeof(path), "%s/%s/name", dir, ports[i][0]);
        FILE *f = fopen(path, "w");
        fprintf(f, "%s\n", ports[i][1]);
        fclose(f);
    }
    setenv("GCS_VIRTIO_PORTS_DIR", dir, 1);
    char out[64];
    assert_int_equal(gcs_virtio_port_find("stdio", 0, out, sizeof(out), NULL), 0);
    assert_string_equal(out, "/dev/vport0p2");
    assert_int_equal(gcs_virtio_port_find("gcs", 0, out, sizeof(out), NULL), 0);
    assert_string_equal(out, "/dev/vport0p1");
    shim_error_t *err = NULL;
    assert_int_equal(gcs_virtio_port_find("nope", 60, out, sizeof(out), &err), -1);
    assert_int_equal(err->code, RPC_NOT_FOUND);
    error_free(err);
    unsetenv("GCS_VIRTIO_PORTS_DIR");
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof(path), "%s/%s/name", dir, ports[i][0]);
        unlink(path);
        snprintf(path, sizeof(path), "%s/%s", dir, ports[i][0]);
        rmdir(path);
    }
    rmdir(dir);
    /* a regular file is no device link: a clear error, fds not leaked */
    err = NULL;
    int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    char tmpf[] = "/tmp/mux-reg-XXXXXX";
    int reg = mkstemp(tmpf);
    assert_true(reg >= 0);
    unlink(tmpf);
    struct gcs_transport *t = NULL;
    assert_int_equal(gcs_transport_device_new(&loop, reg, reg, &t, &err), -1);
    assert_non_null(err);
    error_free(err);
    close(fd);
    drain_loop();
}

static void report_handle(uv_handle_t *h, void *arg)
{
    (void)arg;
    fprintf(stderr, "leaked handle: %s %p\n", uv_handle_type_name(h->type), (void *)h);
}

static int setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    log_configure(2, getenv("MUX_TEST_DEBUG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR, LOG_FORMAT_TEXT);
    return uv_loop_init(&loop);
}

static int teardown(void **state)
{
    (void)state;
    drain_loop();
    if (uv_loop_close(&loop) == 0)
        return 0;
    uv_walk(&loop, report_handle, NULL);
    return -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_mux_over_pipe_pair, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mux_waits_for_host, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bridge_over_pty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_virtio_port_find, setup, teardown),
    };
    if (getenv("MUX_TEST_FILTER"))
        cmocka_set_test_filter(getenv("MUX_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
