/* libFuzzer: bytes -> the mux frame decoder (in data-chosen chunk sizes), then
 * the same bytes as everything a peer ever sends to a real mux engine (host
 * role, listeners on ports 1 and 2, one pending connect of its own, accepted
 * streams answering with data). The engine must end with the link down or
 * idle, never crash, and free every handle (uv_loop_close must succeed). If
 * the first byte is odd a valid HELLO is put in front, so inputs reach the
 * stream-level rules quickly. */
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "gcs/mux.h"
#include "gcs/transport.h"

#define MAX_ACCEPTED 16

struct state {
    uv_stream_t *accepted[MAX_ACCEPTED];
    int n_accepted;
    bool down;
    bool connect_done;
    uv_stream_t *connected;
};

static void decode_only(const uint8_t *data, size_t size)
{
    struct gcs_mux_decoder d;
    gcs_mux_decoder_init(&d);
    size_t off = 0;
    unsigned chunk_seed = size ? data[0] : 1;
    while (off < size) {
        size_t n = 1 + (chunk_seed + off) % 97;
        if (n > size - off)
            n = size - off;
        if (gcs_mux_decoder_push(&d, data + off, n, NULL) < 0)
            break;
        off += n;
        struct gcs_mux_frame f;
        int r;
        while ((r = gcs_mux_decoder_next(&d, &f, NULL)) == GCS_MUX_DECODE_FRAME) {
            if (f.length && (f.payload[0] ^ f.payload[f.length - 1]) == 0x5a)
                chunk_seed++; /* touch the payload bounds */
        }
        if (r == GCS_MUX_DECODE_ERROR) {
            shim_error_t *err = NULL;
            gcs_mux_decoder_next(&d, &f, &err); /* error path with a message */
            error_free(err);
            break;
        }
    }
    gcs_mux_decoder_free(&d);
}

static void on_down(void *opaque, const shim_error_t *why)
{
    (void)why;
    ((struct state *)opaque)->down = true;
}

static void write_done(uv_write_t *req, int status)
{
    (void)status;
    free(req);
}

static void on_accept(void *opaque, uint32_t port, uv_stream_t *s)
{
    struct state *st = opaque;
    if (st->n_accepted == MAX_ACCEPTED) {
        gcs_stream_close(s);
        return;
    }
    st->accepted[st->n_accepted++] = s;
    /* port 2 answers with data, so DATA/CREDIT go out too */
    if (port == 2) {
        static char reply[3000];
        uv_write_t *req = malloc(sizeof(*req));
        uv_buf_t b = uv_buf_init(reply, sizeof(reply));
        if (req && uv_write(req, s, &b, 1, write_done) < 0)
            free(req);
    }
}

static void on_connect(uv_stream_t *s, int status, void *opaque)
{
    struct state *st = opaque;
    (void)status;
    st->connect_done = true;
    st->connected = s;
}

static void engine(const uint8_t *data, size_t size)
{
    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0)
        return;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        uv_loop_close(&loop);
        return;
    }
    struct state st = {0};
    uv_stream_t *link = NULL;
    struct gcs_mux *mux = NULL;
    struct gcs_mux_config cfg = {.role = GCS_MUX_ROLE_HOST,
                                 .window = GCS_MUX_MIN_WINDOW * 4,
                                 .make_pair = gcs_mux_socketpair,
                                 .link_down = on_down,
                                 .opaque = &st};
    if (gcs_stream_from_fd(&loop, sv[0], &link, NULL) < 0 ||
        gcs_mux_new(&loop, link, &cfg, &mux, NULL) < 0) {
        close(sv[1]);
        uv_run(&loop, UV_RUN_NOWAIT);
        uv_loop_close(&loop);
        return;
    }
    gcs_mux_listen(mux, 1, on_accept, &st, NULL);
    gcs_mux_listen(mux, 2, on_accept, &st, NULL);
    gcs_mux_connect(mux, 3, on_connect, &st, NULL);
    if (size > 0 && (data[0] & 1)) {
        uint8_t hello[GCS_MUX_HEADER_SIZE + 12];
        uint32_t p[3] = {GCS_MUX_MAGIC, GCS_MUX_VERSION, GCS_MUX_MIN_WINDOW};
        gcs_mux_header_encode(hello, 0, GCS_MUX_HELLO, 12);
        memcpy(hello + GCS_MUX_HEADER_SIZE, p, 12);
        if (write(sv[1], hello, sizeof(hello)) < 0)
            size = 0;
    }
    size_t off = 0;
    while (off < size) {
        ssize_t n = send(sv[1], data + off, size - off, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0)
            off += (size_t)n;
        else if (st.down)
            break;
        uv_run(&loop, UV_RUN_NOWAIT);
    }
    shutdown(sv[1], SHUT_WR);
    for (int i = 0; i < 1000 && !st.down; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    gcs_mux_close(mux);
    for (int i = 0; i < st.n_accepted; i++)
        gcs_stream_close(st.accepted[i]);
    if (st.connected)
        gcs_stream_close(st.connected);
    close(sv[1]);
    for (int i = 0; i < 100 && uv_loop_alive(&loop); i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    if (uv_loop_close(&loop) != 0)
        abort(); /* a handle leaked */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool init;
    if (!init) {
        log_configure(2, LOG_LEVEL_PANIC, LOG_FORMAT_TEXT);
        signal(SIGPIPE, SIG_IGN);
        init = true;
    }
    decode_only(data, size);
    engine(data, size);
    return 0;
}
