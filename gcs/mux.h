/* A stream multiplexer: many "vsock port" connections over one byte stream
 * (a virtio-serial port in a QEMU utility VM). Protocol and rationale:
 * /work/notes/mux.md.
 *
 * Frame = 12-byte little-endian header {u32 stream, u8 kind, u8 flags=0,
 * u16 reserved=0, u32 length} + payload (<= 64 KiB). Per-stream credit flow
 * control bounds what a receiver buffers; half-close (CLOSE_WRITE) carries
 * EOF in order after all data.
 *
 * Each stream is handed to callers as a real uv_stream_t: one end of a
 * connected pair made by cfg->make_pair (an AF_UNIX socketpair on Unix); the
 * engine pumps between the other end and the link. Platform-neutral: only
 * libuv streams are used here. */
#ifndef GCS_MUX_H
#define GCS_MUX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/error.h"
#include "gcs/transport.h"

#define GCS_MUX_HEADER_SIZE 12
#define GCS_MUX_MAX_PAYLOAD 65536u
#define GCS_MUX_DEFAULT_WINDOW (256u * 1024u)
#define GCS_MUX_MIN_WINDOW 4096u
#define GCS_MUX_MAX_WINDOW (16u * 1024u * 1024u)
#define GCS_MUX_MAGIC 0x584D5347u /* "GSMX" little-endian */
#define GCS_MUX_VERSION 1u
#define GCS_MUX_DEFAULT_OPEN_TIMEOUT_MS 30000u

enum gcs_mux_kind {
    GCS_MUX_HELLO = 1,
    GCS_MUX_OPEN = 2,
    GCS_MUX_OPEN_ACK = 3,
    GCS_MUX_REFUSE = 4,
    GCS_MUX_DATA = 5,
    GCS_MUX_CREDIT = 6,
    GCS_MUX_CLOSE_WRITE = 7,
    GCS_MUX_CLOSE = 8,
};

enum gcs_mux_refuse_reason {
    GCS_MUX_REFUSE_NO_LISTENER = 1,
    GCS_MUX_REFUSE_RESOURCES = 2,
};

/* Which ids this side opens: GUEST odd, HOST even. */
enum gcs_mux_role {
    GCS_MUX_ROLE_HOST = 0,
    GCS_MUX_ROLE_GUEST = 1,
};

/* ---- codec ------------------------------------------------------------------------------ */

struct gcs_mux_frame {
    uint32_t stream;
    uint8_t kind;
    uint32_t length;
    const uint8_t *payload; /* valid until the next push/next call */
};

void gcs_mux_header_encode(uint8_t out[GCS_MUX_HEADER_SIZE], uint32_t stream, uint8_t kind,
                           uint32_t length);
const char *gcs_mux_kind_name(uint8_t kind);

struct gcs_mux_decoder {
    uint8_t *buf;
    size_t len; /* bytes buffered */
    size_t off; /* start of the first unconsumed byte */
    size_t cap;
};

enum {
    GCS_MUX_DECODE_ERROR = -1, /* malformed header: the stream is unusable */
    GCS_MUX_DECODE_NEED_MORE = 0,
    GCS_MUX_DECODE_FRAME = 1,
};

void gcs_mux_decoder_init(struct gcs_mux_decoder *d);
/* Appends bytes (memory grows by what arrives, at most one frame + n). */
int gcs_mux_decoder_push(struct gcs_mux_decoder *d, const void *data, size_t n, shim_error_t **err);
/* Next complete frame: checks kind, flags, reserved, length limits and the
 * payload size of fixed-size kinds (the stream-level rules are the engine's). */
int gcs_mux_decoder_next(struct gcs_mux_decoder *d, struct gcs_mux_frame *f, shim_error_t **err);
size_t gcs_mux_decoder_pending(const struct gcs_mux_decoder *d);
void gcs_mux_decoder_free(struct gcs_mux_decoder *d);

/* ---- engine ----------------------------------------------------------------------------- */

struct gcs_mux;

/* Makes a connected full-duplex pair: the engine keeps *engine_end, the user
 * gets *user_end. Both heap handles closed with gcs_stream_close. */
typedef int (*gcs_mux_pair_fn)(uv_loop_t *loop, uv_stream_t **engine_end, uv_stream_t **user_end,
                               shim_error_t **err);
/* A stream opened by the peer on a port we listen on; the callee owns it. */
typedef void (*gcs_mux_accept_cb)(void *opaque, uint32_t port, uv_stream_t *stream);
/* The link is gone (EOF, I/O or protocol error): runs once, from the loop. */
typedef void (*gcs_mux_down_cb)(void *opaque, const shim_error_t *why);

struct gcs_mux_config {
    enum gcs_mux_role role;
    uint32_t window;          /* 0 = GCS_MUX_DEFAULT_WINDOW */
    uint64_t open_timeout_ms; /* 0 = GCS_MUX_DEFAULT_OPEN_TIMEOUT_MS */
    gcs_mux_pair_fn make_pair;
    gcs_mux_down_cb link_down; /* optional */
    void *opaque;
};

/* Starts the mux over a connected stream (owned from now on, also on error)
 * and sends HELLO. */
int gcs_mux_new(uv_loop_t *loop, uv_stream_t *link, const struct gcs_mux_config *cfg,
                struct gcs_mux **out, shim_error_t **err);
/* One listener per port; -1 if the port is taken or the link is down. */
int gcs_mux_listen(struct gcs_mux *mux, uint32_t port, gcs_mux_accept_cb cb, void *opaque,
                   shim_error_t **err);
/* Safe from inside the accept callback. */
void gcs_mux_unlisten(struct gcs_mux *mux, uint32_t port);
/* Opens a stream to the peer's port. On 0, cb runs exactly once, later:
 * stream + 0, or NULL + UV_ECONNREFUSED (no listener), UV_ETIMEDOUT,
 * UV_ECONNRESET (link lost). -1 when the link is already down. */
int gcs_mux_connect(struct gcs_mux *mux, uint32_t port, gcs_connect_cb cb, void *opaque,
                    shim_error_t **err);
bool gcs_mux_is_up(const struct gcs_mux *mux);
/* Streams alive (opening or open), and the bytes the engine holds for them
 * (queued to users + queued to the link): for tests and debugging. */
size_t gcs_mux_stream_count(const struct gcs_mux *mux);
size_t gcs_mux_buffered_bytes(const struct gcs_mux *mux);
/* Tears everything down (streams see EOF, pending connects UV_ECANCELED);
 * link_down is not called. Frees asynchronously. */
void gcs_mux_close(struct gcs_mux *mux);

/* The Unix make_pair (gcs/unix/transport_mux.c): AF_UNIX socketpair. */
int gcs_mux_socketpair(uv_loop_t *loop, uv_stream_t **engine_end, uv_stream_t **user_end,
                       shim_error_t **err);

#endif
