/* The stream multiplexer (gcs/mux.h): both ends of a mux over a stream pair
 * (test/support/stream_pair.h: a socketpair, loopback TCP on Windows) on one
 * loop. Open/accept, refused ports, 64 MiB byte-exact with a second
 * stream staying responsive, many concurrent streams, half-close ordering,
 * bounded memory with a slow reader, link loss mid-transfer, garbage input,
 * and the transport wrapper (gcs_transport_mux_new). */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/log.h"
#include "gcs/mux.h"
#include "gcs/transport.h"
#include "test/support/stream_pair.h"

/* The engine's user-side pairs: the product's socketpair on Unix; on Windows
 * (no gcs/unix/) the test's loopback pair. */
#ifdef _WIN32
#define MUX_MAKE_PAIR stream_pair_new
#else
#define MUX_MAKE_PAIR gcs_mux_socketpair
#endif

static uv_loop_t loop;

/* ---- harness ------------------------------------------------------------------------------ */

struct down {
    int count;
    char why[256];
};

struct muxes {
    struct gcs_mux *host, *guest;
    struct down host_down, guest_down;
    uv_stream_t *link[2]; /* the link's ends (owned by the muxes) */
};

static void on_down(void *opaque, const shim_error_t *why)
{
    struct down *d = opaque;
    d->count++;
    snprintf(d->why, sizeof(d->why), "%s", why->msg);
}

static void run_until_fn(loop_cond_fn cond, void *arg, unsigned timeout_ms)
{
    if (!loop_run_until(&loop, cond, arg, timeout_ms))
        fail_msg("timed out after %u ms", timeout_ms);
}

static void run_until(bool *flag)
{
    if (!loop_run_until_flag(&loop, flag, 30000))
        fail_msg("timed out after %u ms", 30000);
}

/* Runs the loop for about ms milliseconds. */
static void run_for(unsigned ms)
{
    loop_run_for(&loop, ms);
}

static void drain_loop(void)
{
    loop_drain(&loop, 20);
}

static void make_muxes_window(struct muxes *m, uint32_t window)
{
    memset(m, 0, sizeof(*m));
    uv_stream_t *a = NULL, *b = NULL;
    assert_int_equal(stream_pair_new(&loop, &a, &b, NULL), 0);
    m->link[0] = a;
    m->link[1] = b;
    struct gcs_mux_config hc = {.role = GCS_MUX_ROLE_HOST,
                                .window = window,
                                .make_pair = MUX_MAKE_PAIR,
                                .link_down = on_down,
                                .opaque = &m->host_down};
    struct gcs_mux_config gc = hc;
    gc.role = GCS_MUX_ROLE_GUEST;
    gc.opaque = &m->guest_down;
    assert_int_equal(gcs_mux_new(&loop, a, &hc, &m->host, NULL), 0);
    assert_int_equal(gcs_mux_new(&loop, b, &gc, &m->guest, NULL), 0);
}

static void make_muxes(struct muxes *m)
{
    make_muxes_window(m, 0);
}

static void close_muxes(struct muxes *m)
{
    gcs_mux_close(m->host);
    gcs_mux_close(m->guest);
    drain_loop();
}

/* An endpoint: a user stream with what it read. */
struct ep {
    uv_stream_t *s;
    int status;
    bool done; /* connect/accept finished */
    bool eof;
    int read_err;
    size_t got;
    char data[8192]; /* first bytes read */
    /* optional pattern check of everything read */
    bool check_pattern;
    bool pattern_bad;
    uint64_t pattern_pos;
    bool no_close_on_eof;
};

static uint8_t pattern_byte(uint64_t i)
{
    return (uint8_t)((i * 7) ^ (i >> 11) ^ (i >> 23) ^ (i >> 31));
}

static void on_connected(uv_stream_t *s, int status, void *opaque)
{
    struct ep *e = opaque;
    e->s = s;
    e->status = status;
    e->done = true;
}

static void on_accept(void *opaque, uint32_t port, uv_stream_t *s)
{
    struct ep *e = opaque;
    (void)port;
    e->s = s;
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
        size_t room = sizeof(e->data) - (e->got < sizeof(e->data) ? e->got : sizeof(e->data));
        size_t copy = (size_t)n < room ? (size_t)n : room;
        if (copy)
            memcpy(e->data + e->got, b->base, copy);
        if (e->check_pattern) {
            for (ssize_t i = 0; i < n; i++)
                if ((uint8_t)b->base[i] != pattern_byte(e->pattern_pos + (uint64_t)i))
                    e->pattern_bad = true;
            e->pattern_pos += (uint64_t)n;
        }
        e->got += (size_t)n;
    } else if (n < 0) {
        if (n == UV_EOF)
            e->eof = true;
        else
            e->read_err = (int)n;
        uv_read_stop(s);
    }
    free(b->base);
}

static void ep_start(struct ep *e)
{
    e->s->data = e;
    assert_int_equal(uv_read_start(e->s, ep_alloc, ep_read), 0);
}

static void ep_send(struct ep *e, const char *text)
{
    uv_buf_t b = uv_buf_init((char *)text, (unsigned)strlen(text));
    assert_int_equal(uv_try_write(e->s, &b, 1), (int)strlen(text));
}

static void shutdown_cb(uv_shutdown_t *req, int status)
{
    (void)status;
    free(req);
}

static void ep_shutdown(struct ep *e)
{
    uv_shutdown_t *req = malloc(sizeof(*req));
    assert_int_equal(uv_shutdown(req, e->s, shutdown_cb), 0);
}

static void ep_close(struct ep *e)
{
    gcs_stream_close(e->s);
    e->s = NULL;
}

/* Opens one stream guest -> host on port. */
static void open_pair(struct muxes *m, uint32_t port, struct ep *guest, struct ep *host)
{
    assert_int_equal(gcs_mux_connect(m->guest, port, on_connected, guest, NULL), 0);
    assert_false(guest->done); /* never synchronous */
    run_until(&guest->done);
    run_until(&host->done);
    assert_int_equal(guest->status, 0);
    assert_non_null(guest->s);
    assert_non_null(host->s);
}

/* EOF, or ECONNRESET when the engine end went away with unread data */
static bool both_eof(void *arg)
{
    struct ep **e = arg;
    return (e[0]->eof || e[0]->read_err) && (e[1]->eof || e[1]->read_err);
}

/* ---- bulk writer ---------------------------------------------------------------------------- */

struct bulk {
    uv_stream_t *s;
    uint64_t total, sent, acked;
    size_t chunk;
    int inflight;
    bool done; /* all written and shut down */
    int error;
};

struct bulk_write {
    uv_write_t req;
    struct bulk *b;
    size_t len;
    char data[];
};

static void bulk_pump(struct bulk *b);

static void bulk_written(uv_write_t *req, int status)
{
    struct bulk_write *w = (struct bulk_write *)req;
    struct bulk *b = w->b;
    b->acked += w->len;
    b->inflight--;
    free(w);
    if (status < 0) {
        b->error = status;
        b->done = true;
        return;
    }
    bulk_pump(b);
}

static void bulk_shut(uv_shutdown_t *req, int status)
{
    struct bulk *b = req->data;
    (void)status;
    free(req);
    b->done = true;
}

/* Keeps two chunks in flight: memory bounded, and backpressure shows. */
static void bulk_pump(struct bulk *b)
{
    while (b->inflight < 2 && b->sent < b->total && b->error == 0) {
        size_t len = b->chunk;
        if (b->total - b->sent < len)
            len = (size_t)(b->total - b->sent);
        struct bulk_write *w = malloc(sizeof(*w) + len);
        w->b = b;
        w->len = len;
        for (size_t i = 0; i < len; i++)
            w->data[i] = (char)pattern_byte(b->sent + i);
        uv_buf_t buf = uv_buf_init(w->data, (unsigned)len);
        assert_int_equal(uv_write(&w->req, b->s, &buf, 1, bulk_written), 0);
        b->sent += len;
        b->inflight++;
    }
    if (b->sent == b->total && b->inflight == 0 && !b->done && b->error == 0) {
        uv_shutdown_t *req = malloc(sizeof(*req));
        req->data = b;
        assert_int_equal(uv_shutdown(req, b->s, bulk_shut), 0);
        b->sent++; /* shut down once */
    }
}

static void bulk_start(struct bulk *b, uv_stream_t *s, uint64_t total)
{
    memset(b, 0, sizeof(*b));
    b->s = s;
    b->total = total;
    b->chunk = 256 * 1024;
    bulk_pump(b);
}

/* ---- tests ------------------------------------------------------------------------------------
 */

static void test_codec(void **state)
{
    (void)state;
    uint8_t h[GCS_MUX_HEADER_SIZE];
    gcs_mux_header_encode(h, 0x01020304, GCS_MUX_CREDIT, 4);
    const uint8_t want[] = {4, 3, 2, 1, 6, 0, 0, 0, 4, 0, 0, 0};
    assert_memory_equal(h, want, sizeof(want));
    struct gcs_mux_decoder d;
    gcs_mux_decoder_init(&d);
    struct gcs_mux_frame f;
    /* byte by byte: nothing until complete */
    uint8_t frame[16];
    memcpy(frame, h, 12);
    memcpy(frame + 12, "\x10\x00\x00\x00", 4);
    for (int i = 0; i < 16; i++) {
        assert_int_equal(gcs_mux_decoder_next(&d, &f, NULL), GCS_MUX_DECODE_NEED_MORE);
        assert_int_equal(gcs_mux_decoder_push(&d, frame + i, 1, NULL), 0);
    }
    assert_int_equal(gcs_mux_decoder_next(&d, &f, NULL), GCS_MUX_DECODE_FRAME);
    assert_int_equal(f.stream, 0x01020304);
    assert_int_equal(f.kind, GCS_MUX_CREDIT);
    assert_int_equal(f.length, 4);
    assert_memory_equal(f.payload, "\x10\0\0\0", 4);
    assert_int_equal(gcs_mux_decoder_pending(&d), 0);
    /* bad headers */
    const struct {
        uint8_t kind, flags;
        uint32_t len;
    } bad[] = {{0, 0, 0},
               {9, 0, 0},
               {255, 0, 0},
               {GCS_MUX_DATA, 1, 1},
               {GCS_MUX_DATA, 0, 0},
               {GCS_MUX_DATA, 0, 65537},
               {GCS_MUX_CREDIT, 0, 5},
               {GCS_MUX_HELLO, 0, 4},
               {GCS_MUX_CLOSE, 0, 1},
               {GCS_MUX_DATA, 0, 0xFFFFFFFF}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct gcs_mux_decoder d2;
        gcs_mux_decoder_init(&d2);
        gcs_mux_header_encode(h, 1, bad[i].kind, bad[i].len);
        h[5] = bad[i].flags;
        assert_int_equal(gcs_mux_decoder_push(&d2, h, sizeof(h), NULL), 0);
        shim_error_t *err = NULL;
        assert_int_equal(gcs_mux_decoder_next(&d2, &f, &err), GCS_MUX_DECODE_ERROR);
        assert_non_null(err);
        error_free(err);
        gcs_mux_decoder_free(&d2);
    }
    gcs_mux_decoder_free(&d);
}

static void test_open_accept_and_handshake(void **state)
{
    (void)state;
    struct muxes m;
    make_muxes(&m);
    struct ep g = {0}, h = {0};
    assert_int_equal(gcs_mux_listen(m.host, 0x40000001, on_accept, &h, NULL), 0);
    shim_error_t *err = NULL;
    assert_int_equal(gcs_mux_listen(m.host, 0x40000001, on_accept, &h, &err), -1);
    error_free(err);
    open_pair(&m, 0x40000001, &g, &h);
    ep_start(&g);
    ep_start(&h);
    ep_send(&g, "from-guest");
    ep_send(&h, "from-host");
    while (g.got < 9 || h.got < 10)
        uv_run(&loop, UV_RUN_ONCE);
    assert_memory_equal(h.data, "from-guest", 10);
    assert_memory_equal(g.data, "from-host", 9);
    /* §8.4: guest shuts down writing, host reads EOF and closes, guest reads EOF */
    ep_shutdown(&g);
    run_until(&h.eof);
    assert_false(g.eof);
    ep_close(&h);
    run_until(&g.eof);
    ep_close(&g);
    drain_loop();
    assert_int_equal(gcs_mux_stream_count(m.host), 0);
    assert_int_equal(gcs_mux_stream_count(m.guest), 0);
    /* the listener accepts more than once until unlistened */
    struct ep g2 = {0}, h2 = {0};
    gcs_mux_unlisten(m.host, 0x40000001);
    assert_int_equal(gcs_mux_listen(m.host, 0x40000001, on_accept, &h2, NULL), 0);
    open_pair(&m, 0x40000001, &g2, &h2);
    /* host stdin style: host half-closes, guest sees EOF after the data */
    ep_start(&g2);
    ep_send(&h2, "input");
    ep_shutdown(&h2);
    run_until(&g2.eof);
    assert_int_equal(g2.got, 5);
    assert_memory_equal(g2.data, "input", 5);
    ep_close(&g2);
    ep_close(&h2);
    drain_loop();
    assert_int_equal(m.host_down.count, 0);
    assert_int_equal(m.guest_down.count, 0);
    close_muxes(&m);
}

static void test_refused(void **state)
{
    (void)state;
    struct muxes m;
    make_muxes(&m);
    struct ep g = {0};
    assert_int_equal(gcs_mux_connect(m.guest, 77, on_connected, &g, NULL), 0);
    run_until(&g.done);
    assert_int_equal(g.status, UV_ECONNREFUSED);
    assert_null(g.s);
    /* the link stays up; the host side can open towards a guest listener too */
    struct ep h = {0}, ga = {0};
    assert_int_equal(gcs_mux_listen(m.guest, 9, on_accept, &ga, NULL), 0);
    assert_int_equal(gcs_mux_connect(m.host, 9, on_connected, &h, NULL), 0);
    run_until(&h.done);
    run_until(&ga.done);
    assert_int_equal(h.status, 0);
    ep_close(&h);
    ep_close(&ga);
    drain_loop();
    assert_true(gcs_mux_is_up(m.guest));
    assert_int_equal(m.host_down.count + m.guest_down.count, 0);
    close_muxes(&m);
}

struct pinger {
    struct ep *a, *b;
    int rounds;
    bool want_more;
};

static bool bulk_and_eof(void *arg)
{
    struct ep *e = arg;
    return e->eof || e->read_err;
}

static void test_bulk_64mib_with_responsive_stream(void **state)
{
    (void)state;
    struct muxes m;
    make_muxes(&m);
    struct ep g = {0}, h = {0}, pg = {0}, ph = {0};
    assert_int_equal(gcs_mux_listen(m.host, 1, on_accept, &h, NULL), 0);
    open_pair(&m, 1, &g, &h);
    gcs_mux_unlisten(m.host, 1);
    assert_int_equal(gcs_mux_listen(m.host, 2, on_accept, &ph, NULL), 0);
    open_pair(&m, 2, &pg, &ph);
    h.check_pattern = true;
    ep_start(&h);
    ep_start(&pg);
    ep_start(&ph);
    const uint64_t total = 64ull << 20;
    struct bulk b;
    bulk_start(&b, g.s, total);
    /* ping-pong on the second stream while the bulk runs */
    int rounds = 0;
    size_t expect = 0;
    while (!(h.eof || h.read_err) && rounds < 1000000) {
        char msg[8];
        snprintf(msg, sizeof(msg), "p%05d", rounds % 100000);
        ep_send(&pg, msg);
        expect += 6;
        while (ph.got < expect && !h.eof)
            uv_run(&loop, UV_RUN_ONCE);
        if (ph.got < expect)
            break;
        ep_send(&ph, "k");
        while (pg.got < (size_t)rounds + 1)
            uv_run(&loop, UV_RUN_ONCE);
        rounds++;
    }
    run_until_fn(bulk_and_eof, &h, 60000);
    assert_int_equal(h.read_err, 0);
    assert_false(h.pattern_bad);
    assert_int_equal(h.got, total);
    assert_int_equal(b.error, 0);
    /* the small stream made progress during the transfer */
    print_message("ping-pong rounds during 64 MiB: %d\n", rounds);
    assert_true(rounds >= 10);
    ep_close(&h);
    ep_close(&pg);
    ep_close(&ph);
    run_until(&b.done);
    ep_close(&g);
    drain_loop();
    close_muxes(&m);
}

#define MANY 100

struct many {
    struct ep g[MANY], h[MANY];
    int accepted;
};

static void on_accept_many(void *opaque, uint32_t port, uv_stream_t *s)
{
    struct many *mm = opaque;
    int i = (int)port - 1000;
    mm->h[i].s = s;
    mm->h[i].done = true;
    mm->accepted++;
}

static bool many_done(void *arg)
{
    struct many *mm = arg;
    for (int i = 0; i < MANY; i++)
        if (!mm->h[i].eof || !mm->g[i].eof)
            return false;
    return true;
}

static bool many_connected(void *arg)
{
    struct many *mm = arg;
    if (mm->accepted < MANY)
        return false;
    for (int i = 0; i < MANY; i++)
        if (!mm->g[i].done)
            return false;
    return true;
}

static void test_many_streams(void **state)
{
    (void)state;
    struct muxes m;
    make_muxes(&m);
    struct many *mm = calloc(1, sizeof(*mm));
    for (int i = 0; i < MANY; i++)
        assert_int_equal(gcs_mux_listen(m.host, 1000 + (uint32_t)i, on_accept_many, mm, NULL), 0);
    for (int i = 0; i < MANY; i++)
        assert_int_equal(
            gcs_mux_connect(m.guest, 1000 + (uint32_t)i, on_connected, &mm->g[i], NULL), 0);
    run_until_fn(many_connected, mm, 30000);
    assert_int_equal(gcs_mux_stream_count(m.guest), MANY);
    /* every stream: a distinct message each way, then EOF both ways */
    for (int i = 0; i < MANY; i++) {
        assert_int_equal(mm->g[i].status, 0);
        ep_start(&mm->g[i]);
        ep_start(&mm->h[i]);
        char msg[32];
        snprintf(msg, sizeof(msg), "g%d", i);
        ep_send(&mm->g[i], msg);
        snprintf(msg, sizeof(msg), "h%d", i);
        ep_send(&mm->h[i], msg);
        ep_shutdown(&mm->g[i]);
        ep_shutdown(&mm->h[i]);
    }
    run_until_fn(many_done, mm, 30000);
    for (int i = 0; i < MANY; i++) {
        char msg[32];
        snprintf(msg, sizeof(msg), "g%d", i);
        assert_int_equal(mm->h[i].got, strlen(msg));
        assert_memory_equal(mm->h[i].data, msg, strlen(msg));
        snprintf(msg, sizeof(msg), "h%d", i);
        assert_int_equal(mm->g[i].got, strlen(msg));
        assert_memory_equal(mm->g[i].data, msg, strlen(msg));
        ep_close(&mm->g[i]);
        ep_close(&mm->h[i]);
    }
    drain_loop();
    assert_int_equal(gcs_mux_stream_count(m.guest), 0);
    assert_int_equal(gcs_mux_stream_count(m.host), 0);
    free(mm);
    close_muxes(&m);
}

static void test_half_close_ordering(void **state)
{
    (void)state;
    struct muxes m;
    make_muxes(&m);
    struct ep g = {0}, h = {0};
    assert_int_equal(gcs_mux_listen(m.host, 5, on_accept, &h, NULL), 0);
    open_pair(&m, 5, &g, &h);
    /* 3 MiB then EOF: the host must see every byte before EOF */
    struct bulk b;
    bulk_start(&b, g.s, 3u << 20);
    run_for(50); /* let data pile up before anyone reads */
    h.check_pattern = true;
    ep_start(&h);
    run_until(&h.eof);
    assert_int_equal(h.got, 3u << 20);
    assert_false(h.pattern_bad);
    /* the other direction still works after the guest's half-close */
    ep_start(&g);
    ep_send(&h, "still-open");
    while (g.got < 10)
        uv_run(&loop, UV_RUN_ONCE);
    assert_memory_equal(g.data, "still-open", 10);
    ep_shutdown(&h);
    run_until(&g.eof);
    run_until(&b.done);
    ep_close(&g);
    ep_close(&h);
    drain_loop();
    assert_int_equal(gcs_mux_stream_count(m.host), 0);
    close_muxes(&m);
}

static void test_slow_reader_bounded(void **state)
{
    (void)state;
    struct muxes m;
    make_muxes(&m);
    struct ep g = {0}, h = {0}, g2 = {0}, h2 = {0};
    assert_int_equal(gcs_mux_listen(m.host, 5, on_accept, &h, NULL), 0);
    assert_int_equal(gcs_mux_listen(m.host, 6, on_accept, &h2, NULL), 0);
    open_pair(&m, 5, &g, &h);
    open_pair(&m, 6, &g2, &h2);
    /* the guest offers 32 MiB; the host reads nothing for a while */
    struct bulk b;
    bulk_start(&b, g.s, 32u << 20);
    size_t max_host = 0, max_guest = 0;
    for (int i = 0; i < 20; i++) {
        run_for(25);
        size_t hb = gcs_mux_buffered_bytes(m.host), gb = gcs_mux_buffered_bytes(m.guest);
        max_host = hb > max_host ? hb : max_host;
        max_guest = gb > max_guest ? gb : max_guest;
    }
    /* %llu, not %zu: cmocka's print_message is checked as MSVCRT printf on Windows */
    print_message("slow reader: engine buffers host %llu guest %llu bytes; writer acked %llu\n",
                  (unsigned long long)max_host, (unsigned long long)max_guest,
                  (unsigned long long)b.acked);
    /* the receiver never holds more than one window; the sender no more than
     * its credit (one window) plus what is in the link write queue */
    assert_true(max_host <= GCS_MUX_DEFAULT_WINDOW + (64u << 10));
    assert_true(max_guest <= GCS_MUX_DEFAULT_WINDOW + (64u << 10));
    assert_true(b.acked < (8u << 20)); /* the writer is held back */
    /* the other stream is not blocked by the stalled one */
    ep_start(&h2);
    ep_send(&g2, "alive");
    while (h2.got < 5)
        uv_run(&loop, UV_RUN_ONCE);
    /* start reading: everything arrives intact */
    h.check_pattern = true;
    ep_start(&h);
    run_until(&h.eof);
    assert_int_equal(h.got, 32u << 20);
    assert_false(h.pattern_bad);
    run_until(&b.done);
    ep_close(&g);
    ep_close(&h);
    ep_close(&g2);
    ep_close(&h2);
    drain_loop();
    close_muxes(&m);
}

static void test_link_loss_mid_transfer(void **state)
{
    (void)state;
    struct muxes m;
    make_muxes(&m);
    struct ep g = {0}, h = {0}, g2 = {0}, h2 = {0};
    assert_int_equal(gcs_mux_listen(m.host, 5, on_accept, &h, NULL), 0);
    assert_int_equal(gcs_mux_listen(m.host, 6, on_accept, &h2, NULL), 0);
    open_pair(&m, 5, &g, &h);
    open_pair(&m, 6, &g2, &h2);
    ep_start(&h);
    ep_start(&g);
    ep_start(&h2);
    ep_start(&g2);
    struct bulk b;
    bulk_start(&b, g.s, 64u << 20);
    while (h.got < (1u << 20))
        uv_run(&loop, UV_RUN_ONCE);
    /* a pending connect at the moment of the loss */
    struct ep pending = {0};
    assert_int_equal(gcs_mux_connect(m.guest, 999, on_connected, &pending, NULL), 0);
    /* the link dies under both muxes */
    assert_int_equal(stream_pair_shutdown(m.link[0], STREAM_SHUT_BOTH), 0);
    struct ep *all[2] = {&h, &g};
    run_until_fn(both_eof, all, 10000);
    struct ep *all2[2] = {&h2, &g2};
    run_until_fn(both_eof, all2, 10000);
    run_until(&pending.done);
    assert_true(pending.status == UV_ECONNRESET || pending.status == UV_ECONNREFUSED);
    assert_true(h.got < (64u << 20));
    assert_int_equal(m.host_down.count, 1);
    assert_int_equal(m.guest_down.count, 1);
    print_message("link down: host \"%s\", guest \"%s\"\n", m.host_down.why, m.guest_down.why);
    assert_false(gcs_mux_is_up(m.host));
    shim_error_t *err = NULL;
    struct ep late = {0};
    assert_int_equal(gcs_mux_connect(m.guest, 5, on_connected, &late, &err), -1);
    assert_int_equal(err->code, RPC_UNAVAILABLE);
    error_free(err);
    run_until(&b.done); /* the writer sees EPIPE, no hang */
    ep_close(&g);
    ep_close(&h);
    ep_close(&g2);
    ep_close(&h2);
    drain_loop();
    close_muxes(&m);
}

/* A raw peer speaks bytes to one mux. */
struct raw {
    struct gcs_mux *mux;
    struct down down;
    stream_raw_t fd;
};

static void raw_start_timeout(struct raw *r, enum gcs_mux_role role, uint64_t open_timeout_ms);

static void raw_start(struct raw *r, enum gcs_mux_role role)
{
    raw_start_timeout(r, role, 0);
}

static void raw_start_timeout(struct raw *r, enum gcs_mux_role role, uint64_t open_timeout_ms)
{
    memset(r, 0, sizeof(*r));
    uv_stream_t *s = NULL;
    assert_int_equal(stream_pair_new_raw(&loop, &s, &r->fd, NULL), 0);
    struct gcs_mux_config c = {.role = role,
                               .open_timeout_ms = open_timeout_ms,
                               .make_pair = MUX_MAKE_PAIR,
                               .link_down = on_down,
                               .opaque = &r->down};
    assert_int_equal(gcs_mux_new(&loop, s, &c, &r->mux, NULL), 0);
}

static void raw_send(struct raw *r, const void *data, size_t n)
{
    assert_true(stream_raw_write(r->fd, data, n));
}

static void raw_frame(struct raw *r, uint32_t stream, uint8_t kind, const void *p, uint32_t n)
{
    uint8_t buf[GCS_MUX_HEADER_SIZE + 64];
    gcs_mux_header_encode(buf, stream, kind, n);
    if (n)
        memcpy(buf + GCS_MUX_HEADER_SIZE, p, n);
    raw_send(r, buf, GCS_MUX_HEADER_SIZE + n);
}

static void raw_hello(struct raw *r, uint32_t magic, uint32_t version, uint32_t window)
{
    uint32_t p[3] = {magic, version, window}; /* little-endian host */
    raw_frame(r, 0, GCS_MUX_HELLO, p, 12);
}

static void raw_u32(struct raw *r, uint32_t stream, uint8_t kind, uint32_t v)
{
    raw_frame(r, stream, kind, &v, 4);
}

static bool raw_down(void *arg)
{
    return ((struct raw *)arg)->down.count > 0;
}

static void raw_finish(struct raw *r, const char *want_in_msg)
{
    run_until_fn(raw_down, r, 10000);
    assert_int_equal(r->down.count, 1);
    /* want_in_msg: alternatives separated by '|' */
    bool found = false;
    char alts[128];
    snprintf(alts, sizeof(alts), "%s", want_in_msg);
    for (char *save = NULL, *a = strtok_r(alts, "|", &save); a; a = strtok_r(NULL, "|", &save))
        found = found || strstr(r->down.why, a) != NULL;
    if (!found)
        fail_msg("link down reason \"%s\" lacks \"%s\"", r->down.why, want_in_msg);
    gcs_mux_close(r->mux);
    stream_raw_close(r->fd);
    drain_loop();
}

static void on_accept_close(void *opaque, uint32_t port, uv_stream_t *s)
{
    (void)port;
    (*(int *)opaque)++;
    gcs_stream_close(s);
}

static void test_garbage(void **state)
{
    (void)state;
    struct raw r;
    /* not a mux peer at all */
    raw_start(&r, GCS_MUX_ROLE_HOST);
    raw_send(&r, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27);
    raw_finish(&r, "unknown frame kind");
    raw_start(&r, GCS_MUX_ROLE_HOST);
    raw_hello(&r, 0x12345678, 1, 65536);
    raw_finish(&r, "bad magic");
    raw_start(&r, GCS_MUX_ROLE_HOST);
    raw_hello(&r, GCS_MUX_MAGIC, 2, 65536);
    raw_finish(&r, "unsupported version");
    raw_start(&r, GCS_MUX_ROLE_HOST);
    raw_hello(&r, GCS_MUX_MAGIC, 1, 1);
    raw_finish(&r, "window");
    raw_start(&r, GCS_MUX_ROLE_HOST);
    raw_u32(&r, 1, GCS_MUX_OPEN, 5);
    raw_finish(&r, "before HELLO");
    /* oversized frame */
    raw_start(&r, GCS_MUX_ROLE_HOST);
    raw_hello(&r, GCS_MUX_MAGIC, 1, 65536);
    uint8_t h[GCS_MUX_HEADER_SIZE];
    gcs_mux_header_encode(h, 1, GCS_MUX_DATA, 70000);
    raw_send(&r, h, sizeof(h));
    raw_finish(&r, "bad length");
    /* stream-level lies */
    int accepted = 0;
    raw_start(&r, GCS_MUX_ROLE_HOST);
    assert_int_equal(gcs_mux_listen(r.mux, 5, on_accept_close, &accepted, NULL), 0);
    raw_hello(&r, GCS_MUX_MAGIC, 1, 65536);
    raw_u32(&r, 2, GCS_MUX_OPEN, 5); /* even id from the guest */
    raw_finish(&r, "bad stream id");
    raw_start(&r, GCS_MUX_ROLE_HOST);
    raw_hello(&r, GCS_MUX_MAGIC, 1, 65536);
    raw_frame(&r, 7, GCS_MUX_DATA, "x", 1);
    raw_finish(&r, "unknown stream");
    raw_start(&r, GCS_MUX_ROLE_HOST);
    struct ep acc0 = {0};
    assert_int_equal(gcs_mux_listen(r.mux, 5, on_accept, &acc0, NULL), 0);
    raw_hello(&r, GCS_MUX_MAGIC, 1, 65536);
    raw_u32(&r, 1, GCS_MUX_OPEN, 5);
    raw_u32(&r, 1, GCS_MUX_CREDIT, 1); /* credit above the window */
    raw_finish(&r, "bad CREDIT");
    assert_true(acc0.done);
    gcs_stream_close(acc0.s);
    /* DATA beyond the window: the user end is not read, so once its socket
     * buffer is full no credit comes back and the 4 MiB sent must overflow */
    raw_start(&r, GCS_MUX_ROLE_HOST);
    struct ep acc = {0};
    assert_int_equal(gcs_mux_listen(r.mux, 5, on_accept, &acc, NULL), 0);
    raw_hello(&r, GCS_MUX_MAGIC, 1, 65536);
    raw_u32(&r, 1, GCS_MUX_OPEN, 5);
    char *big = malloc(GCS_MUX_HEADER_SIZE + 65536);
    for (int i = 0; i < 64 && r.down.count == 0; i++) {
        gcs_mux_header_encode((uint8_t *)big, 1, GCS_MUX_DATA, 65536);
        memset(big + GCS_MUX_HEADER_SIZE, 'z', 65536);
        size_t off = 0, total = GCS_MUX_HEADER_SIZE + 65536;
        while (off < total && r.down.count == 0) {
            long n = stream_raw_send(r.fd, big + off, total - off, false);
            if (n > 0)
                off += (size_t)n;
            else
                uv_run(&loop, UV_RUN_NOWAIT);
        }
    }
    free(big);
    raw_finish(&r, "exceed the credit");
    gcs_stream_close(acc.s);
    /* DATA after CLOSE_WRITE */
    raw_start(&r, GCS_MUX_ROLE_HOST);
    struct ep acc2 = {0};
    assert_int_equal(gcs_mux_listen(r.mux, 5, on_accept, &acc2, NULL), 0);
    raw_hello(&r, GCS_MUX_MAGIC, 1, 65536);
    raw_u32(&r, 1, GCS_MUX_OPEN, 5);
    raw_frame(&r, 1, GCS_MUX_CLOSE_WRITE, NULL, 0);
    raw_frame(&r, 1, GCS_MUX_DATA, "late", 4);
    raw_finish(&r, "after CLOSE_WRITE");
    gcs_stream_close(acc2.s);
    /* a truncated frame then EOF: link closed, no crash */
    raw_start(&r, GCS_MUX_ROLE_HOST);
    raw_hello(&r, GCS_MUX_MAGIC, 1, 65536);
    raw_send(&r, h, 5);
    stream_raw_shutdown(r.fd, STREAM_SHUT_WRITE);
    raw_finish(&r, "closed by the peer|connection reset");
    /* late frames for a closed stream are fine */
    raw_start(&r, GCS_MUX_ROLE_HOST);
    raw_hello(&r, GCS_MUX_MAGIC, 1, 65536);
    raw_u32(&r, 1, GCS_MUX_OPEN, 5); /* nobody listens: REFUSE */
    raw_frame(&r, 1, GCS_MUX_CLOSE, NULL, 0);
    raw_frame(&r, 1, GCS_MUX_DATA, "x", 1);
    run_for(50);
    assert_int_equal(r.down.count, 0);
    stream_raw_close(r.fd);
    r.fd = STREAM_RAW_NONE;
    raw_finish(&r, "closed by the peer|connection reset");
    drain_loop();
}

/* A peer that never answers OPEN: the connect times out; closing the mux with
 * a connect pending reports it later (never inside gcs_mux_close). */
static void test_open_timeout_and_close_pending(void **state)
{
    (void)state;
    struct raw r;
    raw_start_timeout(&r, GCS_MUX_ROLE_GUEST, 200);
    struct ep a = {0}, b = {0};
    assert_int_equal(gcs_mux_connect(r.mux, 5, on_connected, &a, NULL), 0);
    run_until(&a.done);
    assert_int_equal(a.status, UV_ETIMEDOUT);
    assert_null(a.s);
    assert_int_equal(gcs_mux_stream_count(r.mux), 0);
    assert_int_equal(gcs_mux_connect(r.mux, 6, on_connected, &b, NULL), 0);
    gcs_mux_close(r.mux);
    assert_false(b.done);
    run_until(&b.done);
    assert_int_equal(b.status, UV_ECANCELED);
    assert_int_equal(r.down.count, 0); /* closing is not a link failure */
    stream_raw_close(r.fd);
    drain_loop();
}

/* The transport wrapper: the shared gcs_transport API over the mux. */
#ifndef _WIN32
struct tside {
    uv_stream_t *s;
    int status;
    bool done;
};

static void t_accept(struct gcs_listener *l, uv_stream_t *s, int status, void *opaque)
{
    struct tside *t = opaque;
    t->s = s;
    t->status = status;
    t->done = true;
    gcs_listener_close(l); /* one connection per listener, as the host does */
}

static void t_connect(uv_stream_t *s, int status, void *opaque)
{
    struct tside *t = opaque;
    t->s = s;
    t->status = status;
    t->done = true;
}

#endif

static void test_transport_wrapper(void **state)
{
    (void)state;
#ifdef _WIN32
    print_message("skipped: gcs_transport_mux_new lives in gcs/unix/transport_mux.c (char "
                  "devices, socketpairs), which is not built for Windows\n");
    skip();
#else
    uv_stream_t *a = NULL, *b = NULL;
    assert_int_equal(stream_pair_new(&loop, &a, &b, NULL), 0);
    struct gcs_transport *host, *guest;
    assert_int_equal(gcs_transport_mux_new(&loop, a, GCS_MUX_ROLE_HOST, &host, NULL), 0);
    assert_int_equal(gcs_transport_mux_new(&loop, b, GCS_MUX_ROLE_GUEST, &guest, NULL), 0);
    struct gcs_listener *l;
    struct tside hs = {0}, gs = {0}, none = {0};
    assert_int_equal(gcs_transport_listen(host, 0x40000001, t_accept, &hs, &l, NULL), 0);
    assert_int_equal(gcs_listener_port(l), 0x40000001);
    assert_int_equal(gcs_transport_connect(guest, 0x40000001, t_connect, &gs, NULL), 0);
    run_until(&gs.done);
    run_until(&hs.done);
    assert_int_equal(gs.status, 0);
    /* the listener closed itself: a second connect is refused */
    assert_int_equal(gcs_transport_connect(guest, 0x40000001, t_connect, &none, NULL), 0);
    run_until(&none.done);
    assert_int_equal(none.status, UV_ECONNREFUSED);
    struct ep g = {.s = gs.s}, h = {.s = hs.s};
    ep_start(&h);
    ep_send(&g, "via-transport");
    ep_shutdown(&g);
    run_until(&h.eof);
    assert_int_equal(h.got, 13);
    ep_close(&g);
    ep_close(&h);
    drain_loop();
    gcs_transport_destroy(host);
    gcs_transport_destroy(guest);
    drain_loop();
#endif
}

static int setup(void **state)
{
    (void)state;
#ifndef _WIN32
    signal(SIGPIPE, SIG_IGN);
#endif
    log_configure(2, getenv("MUX_TEST_DEBUG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR, LOG_FORMAT_TEXT);
    return uv_loop_init(&loop);
}

static void report_handle(uv_handle_t *h, void *arg)
{
    (void)arg;
    fprintf(stderr, "leaked handle: %s %p\n", uv_handle_type_name(h->type), (void *)h);
}

static int teardown(void **state)
{
    (void)state;
    drain_loop(); /* close callbacks; a leaked active handle must not block here */
    if (uv_loop_close(&loop) == 0)
        return 0;
    uv_walk(&loop, report_handle, NULL);
    return -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_codec, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_accept_and_handshake, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bulk_64mib_with_responsive_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_streams, setup, teardown),
        cmocka_unit_test_setup_teardown(test_half_close_ordering, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_reader_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_link_loss_mid_transfer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_timeout_and_close_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transport_wrapper, setup, teardown),
    };
    if (getenv("MUX_TEST_FILTER"))
        cmocka_set_test_filter(getenv("MUX_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
