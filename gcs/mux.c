/* Stream multiplexer engine (protocol: /work/notes/mux.md). One link stream
 * carries many streams; each is exposed as the user end of a connected pair
 * while the engine pumps between the pair's other end and the link.
 *
 * Memory bounds: a receiver holds at most `window` bytes per stream (the peer
 * may not send more before we return credit, which happens only once the bytes
 * were written into the user's end); a sender stops reading a user end when its
 * credit is gone or the link is congested. A peer that stops reading the link
 * while making us queue more than any honest peer could is dropped. */
#include "gcs/mux.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/compiler.h"
#include "common/log.h"

#define MUX_BUCKETS 64
#define LINK_READ_CHUNK 65536
#define LINK_CONGESTED (1u << 20)     /* stop reading user ends above this... */
#define LINK_UNCONGESTED (256u << 10) /* ...and resume below this */
#define LINK_SLACK (8u << 20)         /* control-frame allowance before a peer counts as stuck */

struct mux_listener {
    struct mux_listener *next;
    uint32_t port;
    gcs_mux_accept_cb cb;
    void *opaque;
};

struct mux_stream {
    struct gcs_mux *mux;
    struct mux_stream *next; /* bucket chain */
    uint32_t id;
    uint32_t port;
    uv_stream_t *end;  /* engine end of the pair */
    uv_stream_t *user; /* user end, held until OPEN_ACK (connects only) */
    gcs_connect_cb connect_cb;
    void *connect_opaque;
    uv_timer_t open_timer;
    bool timer_active;
    bool opening; /* our OPEN not yet answered */
    bool reading;
    bool local_eof;      /* the user end reached EOF; CLOSE_WRITE sent */
    bool remote_eof;     /* CLOSE_WRITE received; shutdown issued */
    bool shut_done;      /* the user end has been told EOF */
    bool dead;           /* out of the table; handles closing */
    int deferred_status; /* != 0: report the failed connect from the timer */
    uint32_t send_credit;
    uint32_t recv_held;   /* received, not yet written into the user end */
    uint32_t credit_owed; /* written, not yet credited back */
    int handles;          /* handles still to be closed before free */
    uv_shutdown_t shutdown_req;
};

struct gcs_mux {
    uv_loop_t *loop;
    uv_stream_t *link;
    struct gcs_mux_config cfg;
    uint32_t window;      /* what we accept per stream */
    uint32_t peer_window; /* what the peer accepts per stream */
    bool hello_received;
    bool down;   /* link failed or closed: no more traffic */
    bool closed; /* gcs_mux_close was called */
    bool congested;
    uint32_t next_id;
    uint32_t peer_max_id;
    struct gcs_mux_decoder decoder;
    struct mux_stream *buckets[MUX_BUCKETS];
    struct mux_listener *listeners;
    size_t n_streams;      /* in the table */
    size_t stream_structs; /* allocated (including dead ones still closing) */
    size_t link_queued;    /* bytes in uv_write to the link */
    size_t user_queued;    /* bytes in uv_write to user ends */
};

struct link_write {
    uv_write_t req;
    struct gcs_mux *mux;
    size_t len;
    uint8_t *frame;
};

struct end_write {
    uv_write_t req;
    struct mux_stream *s;
    uint32_t len;
    uint8_t *data;
};

/* ---- little-endian helpers and codec ---------------------------------------------------- */

static void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void gcs_mux_header_encode(uint8_t out[GCS_MUX_HEADER_SIZE], uint32_t stream, uint8_t kind,
                           uint32_t length)
{
    put_le32(out, stream);
    out[4] = kind;
    out[5] = 0;
    out[6] = 0;
    out[7] = 0;
    put_le32(out + 8, length);
}

const char *gcs_mux_kind_name(uint8_t kind)
{
    static const char *const names[] = {"?",    "HELLO",  "OPEN",        "OPEN_ACK", "REFUSE",
                                        "DATA", "CREDIT", "CLOSE_WRITE", "CLOSE"};
    return kind <= GCS_MUX_CLOSE ? names[kind] : "?";
}

void gcs_mux_decoder_init(struct gcs_mux_decoder *d)
{
    memset(d, 0, sizeof(*d));
}

void gcs_mux_decoder_free(struct gcs_mux_decoder *d)
{
    free(d->buf);
    memset(d, 0, sizeof(*d));
}

size_t gcs_mux_decoder_pending(const struct gcs_mux_decoder *d)
{
    return d->len - d->off;
}

int gcs_mux_decoder_push(struct gcs_mux_decoder *d, const void *data, size_t n, shim_error_t **err)
{
    if (n == 0)
        return 0;
    if (d->off > 0) { /* drop consumed bytes first */
        memmove(d->buf, d->buf + d->off, d->len - d->off);
        d->len -= d->off;
        d->off = 0;
    }
    if (d->len + n > d->cap) {
        size_t cap = d->cap ? d->cap : 4096;
        while (cap < d->len + n)
            cap *= 2;
        uint8_t *nb = realloc(d->buf, cap);
        if (nb == NULL)
            return error_set(err, RPC_RESOURCE_EXHAUSTED, "mux: out of memory");
        d->buf = nb;
        d->cap = cap;
    }
    memcpy(d->buf + d->len, data, n);
    d->len += n;
    return 0;
}

/* Payload size a kind must have; -1 = variable (DATA). */
static int fixed_payload_size(uint8_t kind)
{
    switch (kind) {
    case GCS_MUX_HELLO:
        return 12;
    case GCS_MUX_OPEN:
    case GCS_MUX_REFUSE:
    case GCS_MUX_CREDIT:
        return 4;
    case GCS_MUX_DATA:
        return -1;
    default:
        return 0;
    }
}

int gcs_mux_decoder_next(struct gcs_mux_decoder *d, struct gcs_mux_frame *f, shim_error_t **err)
{
    size_t avail = d->len - d->off;
    if (avail < GCS_MUX_HEADER_SIZE)
        return GCS_MUX_DECODE_NEED_MORE;
    const uint8_t *h = d->buf + d->off;
    uint32_t stream = get_le32(h);
    uint8_t kind = h[4];
    uint32_t length = get_le32(h + 8);
    if (kind < GCS_MUX_HELLO || kind > GCS_MUX_CLOSE) {
        error_set(err, RPC_DATA_LOSS, "mux: unknown frame kind %u (stream %u)", kind, stream);
        return GCS_MUX_DECODE_ERROR;
    }
    if (h[5] != 0 || h[6] != 0 || h[7] != 0) {
        error_set(err, RPC_DATA_LOSS, "mux: non-zero flags/reserved in a %s frame",
                  gcs_mux_kind_name(kind));
        return GCS_MUX_DECODE_ERROR;
    }
    int fixed = fixed_payload_size(kind);
    if (fixed < 0 ? (length == 0 || length > GCS_MUX_MAX_PAYLOAD) : length != (uint32_t)fixed) {
        error_set(err, RPC_DATA_LOSS, "mux: bad length %u for a %s frame (stream %u)", length,
                  gcs_mux_kind_name(kind), stream);
        return GCS_MUX_DECODE_ERROR;
    }
    if (avail < GCS_MUX_HEADER_SIZE + (size_t)length)
        return GCS_MUX_DECODE_NEED_MORE;
    f->stream = stream;
    f->kind = kind;
    f->length = length;
    f->payload = h + GCS_MUX_HEADER_SIZE;
    d->off += GCS_MUX_HEADER_SIZE + length;
    return GCS_MUX_DECODE_FRAME;
}

/* ---- stream table ------------------------------------------------------------------------ */

static struct mux_stream **bucket_of(struct gcs_mux *mux, uint32_t id)
{
    return &mux->buckets[(id >> 1) % MUX_BUCKETS];
}

static struct mux_stream *stream_find(struct gcs_mux *mux, uint32_t id)
{
    for (struct mux_stream *s = *bucket_of(mux, id); s; s = s->next)
        if (s->id == id)
            return s;
    return NULL;
}

static void table_insert(struct mux_stream *s)
{
    struct mux_stream **b = bucket_of(s->mux, s->id);
    s->next = *b;
    *b = s;
    s->mux->n_streams++;
}

static void table_remove(struct mux_stream *s)
{
    for (struct mux_stream **pp = bucket_of(s->mux, s->id); *pp; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            s->mux->n_streams--;
            return;
        }
    }
}

static struct mux_stream *table_first(struct gcs_mux *mux)
{
    for (size_t i = 0; i < MUX_BUCKETS; i++)
        if (mux->buckets[i])
            return mux->buckets[i];
    return NULL;
}

/* ---- freeing ------------------------------------------------------------------------------ */

static void mux_maybe_free(struct gcs_mux *mux)
{
    if (!mux->closed || mux->link != NULL || mux->stream_structs > 0)
        return;
    gcs_mux_decoder_free(&mux->decoder);
    while (mux->listeners) {
        struct mux_listener *l = mux->listeners;
        mux->listeners = l->next;
        free(l);
    }
    free(mux);
}

static void stream_handle_closed(struct mux_stream *s)
{
    if (--s->handles > 0)
        return;
    struct gcs_mux *mux = s->mux;
    free(s);
    mux->stream_structs--;
    mux_maybe_free(mux);
}

static void end_closed(uv_handle_t *h)
{
    struct mux_stream *s = h->data;
    free(h);
    stream_handle_closed(s);
}

static void timer_closed(uv_handle_t *h)
{
    stream_handle_closed(h->data);
}

static void stream_fail_connect(struct mux_stream *s, int status);

static void deferred_connect_failure(uv_timer_t *t)
{
    struct mux_stream *s = t->data;
    uv_close((uv_handle_t *)t, timer_closed);
    stream_fail_connect(s, s->deferred_status);
}

/* Out of the table and closing: the user end sees EOF (and EPIPE on write). */
static void stream_release(struct mux_stream *s)
{
    if (s->dead)
        return;
    s->dead = true;
    table_remove(s);
    s->handles = 1;
    s->end->data = s;
    uv_close((uv_handle_t *)s->end, end_closed);
    if (s->timer_active) {
        s->handles++;
        s->open_timer.data = s;
        if (s->deferred_status && s->connect_cb) /* the timer closes itself */
            uv_timer_start(&s->open_timer, deferred_connect_failure, 0, 0);
        else
            uv_close((uv_handle_t *)&s->open_timer, timer_closed);
    }
    if (s->user) {
        gcs_stream_close(s->user);
        s->user = NULL;
    }
}

/* Reports a failed connect once (the stream must already be released). */
static void stream_fail_connect(struct mux_stream *s, int status)
{
    gcs_connect_cb cb = s->connect_cb;
    s->connect_cb = NULL;
    if (cb)
        cb(NULL, status, s->connect_opaque);
}

/* ---- link output ------------------------------------------------------------------------- */

static void link_fail(struct gcs_mux *mux, int code, const char *fmt, ...) SHIM_PRINTF(3, 4);
static void stream_update_reading(struct mux_stream *s);

static void update_all_reading(struct gcs_mux *mux)
{
    for (size_t i = 0; i < MUX_BUCKETS; i++) {
        struct mux_stream *s = mux->buckets[i];
        while (s) {
            struct mux_stream *next = s->next;
            stream_update_reading(s);
            s = next;
        }
    }
}

static void link_written(uv_write_t *req, int status)
{
    struct link_write *w = (struct link_write *)req;
    struct gcs_mux *mux = w->mux;
    mux->link_queued -= w->len;
    free(w->frame);
    free(w);
    if (status < 0 && status != UV_ECANCELED) {
        link_fail(mux, RPC_UNAVAILABLE, "mux: writing the link failed: %s", uv_strerror(status));
        return;
    }
    if (mux->congested && mux->link_queued < LINK_UNCONGESTED && !mux->down) {
        mux->congested = false;
        update_all_reading(mux);
    }
}

/* Queues a complete frame (takes `frame`). The link may fail inside. */
static void link_send_raw(struct gcs_mux *mux, uint8_t *frame, size_t len)
{
    if (mux->down) {
        free(frame);
        return;
    }
    struct link_write *w = malloc(sizeof(*w));
    if (w == NULL) {
        free(frame);
        link_fail(mux, RPC_RESOURCE_EXHAUSTED, "mux: out of memory");
        return;
    }
    w->mux = mux;
    w->len = len;
    w->frame = frame;
    uv_buf_t buf = uv_buf_init((char *)frame, (unsigned)len);
    int rc = uv_write(&w->req, mux->link, &buf, 1, link_written);
    if (rc < 0) {
        free(frame);
        free(w);
        link_fail(mux, RPC_UNAVAILABLE, "mux: writing the link failed: %s", uv_strerror(rc));
        return;
    }
    mux->link_queued += len;
    if (mux->link_queued >= LINK_CONGESTED)
        mux->congested = true;
    /* Honest peers never make us hold more: DATA is bounded by credit. */
    size_t limit = LINK_SLACK + 2 * mux->n_streams * (size_t)mux->peer_window;
    if (mux->link_queued > limit)
        link_fail(mux, RPC_UNAVAILABLE, "mux: the peer does not read the link (%zu bytes queued)",
                  mux->link_queued);
}

static void link_send(struct gcs_mux *mux, uint32_t stream, uint8_t kind, const void *payload,
                      uint32_t len)
{
    uint8_t *frame = malloc(GCS_MUX_HEADER_SIZE + len);
    if (frame == NULL) {
        link_fail(mux, RPC_RESOURCE_EXHAUSTED, "mux: out of memory");
        return;
    }
    gcs_mux_header_encode(frame, stream, kind, len);
    if (len)
        memcpy(frame + GCS_MUX_HEADER_SIZE, payload, len);
    link_send_raw(mux, frame, GCS_MUX_HEADER_SIZE + len);
}

static void link_send_u32(struct gcs_mux *mux, uint32_t stream, uint8_t kind, uint32_t value)
{
    uint8_t p[4];
    put_le32(p, value);
    link_send(mux, stream, kind, p, 4);
}

/* Drops a stream and tells the peer (CLOSE) if it still can. */
static void stream_abort(struct mux_stream *s, int connect_status)
{
    if (s->dead)
        return;
    stream_release(s);
    link_send(s->mux, s->id, GCS_MUX_CLOSE, NULL, 0);
    stream_fail_connect(s, connect_status);
}

/* ---- user end -> link ---------------------------------------------------------------------- */

static void end_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct mux_stream *s = h->data;
    (void)suggested;
    size_t n = s->send_credit < GCS_MUX_MAX_PAYLOAD ? s->send_credit : GCS_MUX_MAX_PAYLOAD;
    uint8_t *p = n ? malloc(GCS_MUX_HEADER_SIZE + n) : NULL;
    buf->base = p ? (char *)p + GCS_MUX_HEADER_SIZE : NULL;
    buf->len = p ? n : 0;
}

static void maybe_finish(struct mux_stream *s)
{
    if (!s->dead && s->local_eof && s->remote_eof && s->shut_done)
        stream_release(s);
}

static void end_read(uv_stream_t *end, ssize_t nread, const uv_buf_t *buf)
{
    struct mux_stream *s = end->data;
    uint8_t *frame = buf->base ? (uint8_t *)buf->base - GCS_MUX_HEADER_SIZE : NULL;
    if (nread > 0) {
        gcs_mux_header_encode(frame, s->id, GCS_MUX_DATA, (uint32_t)nread);
        s->send_credit -= (uint32_t)nread;
        link_send_raw(s->mux, frame, GCS_MUX_HEADER_SIZE + (size_t)nread);
        stream_update_reading(s);
        return;
    }
    free(frame);
    if (nread == 0 || nread == UV_ENOBUFS) { /* no credit: reading stops below */
        stream_update_reading(s);
        return;
    }
    if (nread == UV_EOF) {
        s->local_eof = true;
        stream_update_reading(s);
        link_send(s->mux, s->id, GCS_MUX_CLOSE_WRITE, NULL, 0);
        maybe_finish(s);
        return;
    }
    log_debug("mux: stream %u (port %u): read failed: %s", s->id, s->port, uv_strerror((int)nread));
    stream_abort(s, UV_ECONNRESET);
}

static void stream_update_reading(struct mux_stream *s)
{
    struct gcs_mux *mux = s->mux;
    if (s->dead) {
        s->reading = false; /* uv_close stopped it */
        return;
    }
    bool want = !s->dead && !mux->down && !s->opening && !s->local_eof && s->send_credit > 0 &&
                !mux->congested;
    if (want == s->reading)
        return;
    if (!want) {
        uv_read_stop(s->end);
        s->reading = false;
        return;
    }
    int rc = uv_read_start(s->end, end_alloc, end_read);
    if (rc < 0) {
        log_warn("mux: stream %u: cannot read the user end: %s", s->id, uv_strerror(rc));
        return;
    }
    s->reading = true;
}

/* ---- link -> user end ---------------------------------------------------------------------- */

static void send_credit_back(struct mux_stream *s)
{
    uint32_t n = s->credit_owed;
    s->credit_owed = 0;
    link_send_u32(s->mux, s->id, GCS_MUX_CREDIT, n);
}

static void end_written(uv_write_t *req, int status)
{
    struct end_write *w = (struct end_write *)req;
    struct mux_stream *s = w->s;
    uint32_t len = w->len;
    s->mux->user_queued -= len;
    free(w->data);
    free(w);
    if (s->dead)
        return;
    s->recv_held -= len;
    if (status < 0) { /* the user closed its end (EPIPE): the peer must stop */
        log_debug("mux: stream %u (port %u): user end gone: %s", s->id, s->port,
                  uv_strerror(status));
        stream_abort(s, UV_ECONNRESET);
        return;
    }
    s->credit_owed += len;
    if (!s->remote_eof && (s->credit_owed >= s->mux->window / 4 || s->recv_held == 0))
        send_credit_back(s);
}

static void end_shutdown_done(uv_shutdown_t *req, int status)
{
    struct mux_stream *s = req->data;
    if (status == UV_ECANCELED || s->dead)
        return;
    s->shut_done = true; /* also when it failed: the user end is gone */
    maybe_finish(s);
}

static int deliver_data(struct mux_stream *s, const struct gcs_mux_frame *f)
{
    struct end_write *w = malloc(sizeof(*w));
    uint8_t *data = malloc(f->length);
    if (w == NULL || data == NULL) {
        free(w);
        free(data);
        return -1;
    }
    memcpy(data, f->payload, f->length);
    w->s = s;
    w->len = f->length;
    w->data = data;
    uv_buf_t buf = uv_buf_init((char *)data, f->length);
    int rc = uv_write(&w->req, s->end, &buf, 1, end_written);
    if (rc < 0) {
        free(data);
        free(w);
        return -1;
    }
    s->recv_held += f->length;
    s->mux->user_queued += f->length;
    return 0;
}

/* ---- incoming frames ------------------------------------------------------------------------ */

static bool is_ours(const struct gcs_mux *mux, uint32_t id)
{
    return (id & 1u) == (mux->cfg.role == GCS_MUX_ROLE_GUEST ? 1u : 0u);
}

static struct mux_listener *listener_find(struct gcs_mux *mux, uint32_t port)
{
    for (struct mux_listener *l = mux->listeners; l; l = l->next)
        if (l->port == port)
            return l;
    return NULL;
}

static struct mux_stream *stream_new(struct gcs_mux *mux, uint32_t id, uint32_t port,
                                     uv_stream_t **user, shim_error_t **err)
{
    struct mux_stream *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        error_set(err, RPC_RESOURCE_EXHAUSTED, "mux: out of memory");
        return NULL;
    }
    if (mux->cfg.make_pair(mux->loop, &s->end, user, err) < 0) {
        free(s);
        return NULL;
    }
    s->mux = mux;
    s->id = id;
    s->port = port;
    s->end->data = s;
    mux->stream_structs++;
    table_insert(s);
    return s;
}

static int on_open(struct gcs_mux *mux, const struct gcs_mux_frame *f)
{
    if (is_ours(mux, f->stream) || f->stream <= mux->peer_max_id) {
        link_fail(mux, RPC_DATA_LOSS, "mux: protocol error: OPEN with bad stream id %u", f->stream);
        return -1;
    }
    mux->peer_max_id = f->stream;
    uint32_t port = get_le32(f->payload);
    struct mux_listener *l = listener_find(mux, port);
    if (l == NULL) {
        log_debug("mux: stream %u: nobody listens on port %u", f->stream, port);
        link_send_u32(mux, f->stream, GCS_MUX_REFUSE, GCS_MUX_REFUSE_NO_LISTENER);
        return 0;
    }
    uv_stream_t *user = NULL;
    shim_error_t *err = NULL;
    struct mux_stream *s = stream_new(mux, f->stream, port, &user, &err);
    if (s == NULL) {
        log_warn("mux: refusing stream %u to port %u: %s", f->stream, port, err->msg);
        error_free(err);
        link_send_u32(mux, f->stream, GCS_MUX_REFUSE, GCS_MUX_REFUSE_RESOURCES);
        return 0;
    }
    s->send_credit = mux->peer_window;
    link_send(mux, s->id, GCS_MUX_OPEN_ACK, NULL, 0);
    if (mux->down) {
        gcs_stream_close(user);
        return -1;
    }
    stream_update_reading(s);
    l->cb(l->opaque, port, user);
    return 0;
}

static int on_open_ack(struct gcs_mux *mux, struct mux_stream *s)
{
    if (!s->opening) {
        link_fail(mux, RPC_DATA_LOSS, "mux: protocol error: OPEN_ACK for open stream %u", s->id);
        return -1;
    }
    s->opening = false;
    if (s->timer_active)
        uv_timer_stop(&s->open_timer);
    s->send_credit = mux->peer_window;
    uv_stream_t *user = s->user;
    gcs_connect_cb cb = s->connect_cb;
    s->user = NULL;
    s->connect_cb = NULL;
    stream_update_reading(s);
    cb(user, 0, s->connect_opaque);
    return 0;
}

static int on_data(struct gcs_mux *mux, struct mux_stream *s, const struct gcs_mux_frame *f)
{
    if (s->opening || s->remote_eof) {
        link_fail(mux, RPC_DATA_LOSS, "mux: protocol error: DATA on stream %u %s", s->id,
                  s->opening ? "before OPEN_ACK" : "after CLOSE_WRITE");
        return -1;
    }
    if (f->length > mux->window - s->recv_held) {
        link_fail(mux, RPC_DATA_LOSS,
                  "mux: protocol error: stream %u: %u bytes exceed the credit (%u held of %u)",
                  s->id, f->length, s->recv_held, mux->window);
        return -1;
    }
    if (deliver_data(s, f) < 0)
        stream_abort(s, UV_ECONNRESET);
    return 0;
}

static int on_credit(struct gcs_mux *mux, struct mux_stream *s, const struct gcs_mux_frame *f)
{
    uint32_t n = get_le32(f->payload);
    if (s->opening || n == 0 || n > mux->peer_window - s->send_credit) {
        link_fail(mux, RPC_DATA_LOSS, "mux: protocol error: stream %u: bad CREDIT %u", s->id, n);
        return -1;
    }
    s->send_credit += n;
    stream_update_reading(s);
    return 0;
}

static int on_close_write(struct gcs_mux *mux, struct mux_stream *s)
{
    if (s->opening || s->remote_eof) {
        link_fail(mux, RPC_DATA_LOSS, "mux: protocol error: unexpected CLOSE_WRITE on stream %u",
                  s->id);
        return -1;
    }
    s->remote_eof = true;
    s->shutdown_req.data = s;
    /* libuv shuts down after the queued writes: EOF comes after all data. */
    if (uv_shutdown(&s->shutdown_req, s->end, end_shutdown_done) < 0) {
        s->shut_done = true;
        maybe_finish(s);
    }
    return 0;
}

static int on_hello(struct gcs_mux *mux, const struct gcs_mux_frame *f)
{
    uint32_t magic = get_le32(f->payload);
    uint32_t version = get_le32(f->payload + 4);
    uint32_t window = get_le32(f->payload + 8);
    const char *why = NULL;
    if (mux->hello_received)
        why = "second HELLO";
    else if (f->stream != 0)
        why = "HELLO on a stream";
    else if (magic != GCS_MUX_MAGIC)
        why = "bad magic (not a mux peer)";
    else if (version != GCS_MUX_VERSION)
        why = "unsupported version";
    else if (window < GCS_MUX_MIN_WINDOW || window > GCS_MUX_MAX_WINDOW)
        why = "window out of range";
    if (why) {
        link_fail(mux, RPC_DATA_LOSS, "mux: protocol error: %s (magic 0x%08x version %u window %u)",
                  why, magic, version, window);
        return -1;
    }
    mux->hello_received = true;
    mux->peer_window = window;
    return 0;
}

static int handle_frame(struct gcs_mux *mux, const struct gcs_mux_frame *f)
{
    if (f->kind == GCS_MUX_HELLO || !mux->hello_received) {
        if (f->kind != GCS_MUX_HELLO) {
            link_fail(mux, RPC_DATA_LOSS, "mux: protocol error: %s before HELLO",
                      gcs_mux_kind_name(f->kind));
            return -1;
        }
        return on_hello(mux, f);
    }
    if (f->stream == 0) {
        link_fail(mux, RPC_DATA_LOSS, "mux: protocol error: %s on stream 0",
                  gcs_mux_kind_name(f->kind));
        return -1;
    }
    if (f->kind == GCS_MUX_OPEN)
        return on_open(mux, f);
    struct mux_stream *s = stream_find(mux, f->stream);
    if (s == NULL) {
        bool used =
            is_ours(mux, f->stream) ? f->stream < mux->next_id : f->stream <= mux->peer_max_id;
        if (used)
            return 0; /* in flight when the stream went away */
        link_fail(mux, RPC_DATA_LOSS, "mux: protocol error: %s for unknown stream %u",
                  gcs_mux_kind_name(f->kind), f->stream);
        return -1;
    }
    switch (f->kind) {
    case GCS_MUX_OPEN_ACK:
        return on_open_ack(mux, s);
    case GCS_MUX_REFUSE:
        if (!s->opening) {
            link_fail(mux, RPC_DATA_LOSS, "mux: protocol error: REFUSE for open stream %u", s->id);
            return -1;
        }
        stream_release(s);
        stream_fail_connect(s, UV_ECONNREFUSED);
        return 0;
    case GCS_MUX_DATA:
        return on_data(mux, s, f);
    case GCS_MUX_CREDIT:
        return on_credit(mux, s, f);
    case GCS_MUX_CLOSE_WRITE:
        return on_close_write(mux, s);
    default: /* CLOSE */
        stream_release(s);
        stream_fail_connect(s, UV_ECONNRESET);
        return 0;
    }
}

static void link_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    buf->base = malloc(LINK_READ_CHUNK);
    buf->len = buf->base ? LINK_READ_CHUNK : 0;
}

static void link_read(uv_stream_t *link, ssize_t nread, const uv_buf_t *buf)
{
    struct gcs_mux *mux = link->data;
    if (nread <= 0) {
        free(buf->base);
        if (nread == UV_EOF)
            link_fail(mux, RPC_UNAVAILABLE, "mux: link closed by the peer");
        else if (nread < 0)
            link_fail(mux, RPC_UNAVAILABLE, "mux: reading the link failed: %s",
                      uv_strerror((int)nread));
        return;
    }
    shim_error_t *err = NULL;
    int rc = gcs_mux_decoder_push(&mux->decoder, buf->base, (size_t)nread, &err);
    free(buf->base);
    while (rc == 0 && !mux->down) {
        struct gcs_mux_frame f;
        int r = gcs_mux_decoder_next(&mux->decoder, &f, &err);
        if (r == GCS_MUX_DECODE_NEED_MORE)
            return;
        if (r == GCS_MUX_DECODE_ERROR)
            rc = -1;
        else
            handle_frame(mux, &f);
    }
    if (rc < 0) {
        link_fail(mux, err->code, "%s", err->msg);
        error_free(err);
    }
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

static void link_closed(uv_handle_t *h)
{
    struct gcs_mux *mux = h->data;
    free(h);
    mux->link = NULL;
    mux_maybe_free(mux);
}

/* Stops all traffic: streams released (users see EOF), pending connects get
 * connect_status (from the loop if `defer`: gcs_mux_close must not call back
 * into its caller), the link closes. */
static void mux_take_down(struct gcs_mux *mux, int connect_status, bool defer)
{
    if (mux->down)
        return;
    mux->down = true;
    uv_close((uv_handle_t *)mux->link, link_closed);
    struct mux_stream *s;
    while ((s = table_first(mux)) != NULL) {
        if (defer)
            s->deferred_status = connect_status;
        stream_release(s);
        if (!defer)
            stream_fail_connect(s, connect_status);
    }
}

static void link_fail(struct gcs_mux *mux, int code, const char *fmt, ...)
{
    if (mux->down)
        return;
    shim_error_t *why = NULL;
    char *msg = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) < 0)
        msg = NULL;
    va_end(ap);
    error_set(&why, code, "%s", msg ? msg : "mux: link failed");
    free(msg);
    log_warn("%s (%zu streams reset)", why->msg, mux->n_streams);
    mux_take_down(mux, UV_ECONNRESET, false);
    if (mux->cfg.link_down && !mux->closed)
        mux->cfg.link_down(mux->cfg.opaque, why);
    error_free(why);
}

int gcs_mux_new(uv_loop_t *loop, uv_stream_t *link, const struct gcs_mux_config *cfg,
                struct gcs_mux **out, shim_error_t **err)
{
    uint32_t window = cfg->window ? cfg->window : GCS_MUX_DEFAULT_WINDOW;
    if (window < GCS_MUX_MIN_WINDOW || window > GCS_MUX_MAX_WINDOW || cfg->make_pair == NULL) {
        gcs_stream_close(link);
        return error_set(err, RPC_INVALID_ARGUMENT, "mux: bad configuration (window %u)", window);
    }
    struct gcs_mux *mux = calloc(1, sizeof(*mux));
    if (mux == NULL) {
        gcs_stream_close(link);
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "mux: out of memory");
    }
    mux->loop = loop;
    mux->link = link;
    mux->cfg = *cfg;
    mux->window = window;
    mux->next_id = cfg->role == GCS_MUX_ROLE_GUEST ? 1 : 2;
    gcs_mux_decoder_init(&mux->decoder);
    link->data = mux;
    int rc = uv_read_start(link, link_alloc, link_read);
    if (rc < 0) {
        mux->closed = true;
        mux_take_down(mux, UV_ECANCELED, true);
        return error_set_uv(err, RPC_UNAVAILABLE, rc, "mux: reading the link");
    }
    uint8_t hello[12];
    put_le32(hello, GCS_MUX_MAGIC);
    put_le32(hello + 4, GCS_MUX_VERSION);
    put_le32(hello + 8, window);
    link_send(mux, 0, GCS_MUX_HELLO, hello, sizeof(hello));
    *out = mux;
    return 0;
}

int gcs_mux_listen(struct gcs_mux *mux, uint32_t port, gcs_mux_accept_cb cb, void *opaque,
                   shim_error_t **err)
{
    if (mux->down)
        return error_set(err, RPC_UNAVAILABLE, "mux link is down");
    if (listener_find(mux, port))
        return error_set(err, RPC_ALREADY_EXISTS, "mux: port %u is already listened on", port);
    struct mux_listener *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "mux: out of memory");
    l->port = port;
    l->cb = cb;
    l->opaque = opaque;
    l->next = mux->listeners;
    mux->listeners = l;
    return 0;
}

void gcs_mux_unlisten(struct gcs_mux *mux, uint32_t port)
{
    for (struct mux_listener **pp = &mux->listeners; *pp; pp = &(*pp)->next) {
        if ((*pp)->port == port) {
            struct mux_listener *l = *pp;
            *pp = l->next;
            free(l);
            return;
        }
    }
}

static void open_timed_out(uv_timer_t *t)
{
    struct mux_stream *s = t->data;
    log_warn("mux: stream %u: no answer to OPEN port %u", s->id, s->port);
    stream_abort(s, UV_ETIMEDOUT);
}

int gcs_mux_connect(struct gcs_mux *mux, uint32_t port, gcs_connect_cb cb, void *opaque,
                    shim_error_t **err)
{
    if (mux->down)
        return error_set(err, RPC_UNAVAILABLE, "mux link is down");
    if (mux->next_id >= 0xFFFFFFF0u)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "mux: stream ids exhausted");
    uv_stream_t *user = NULL;
    struct mux_stream *s = stream_new(mux, mux->next_id, port, &user, err);
    if (s == NULL)
        return -1;
    mux->next_id += 2;
    s->opening = true;
    s->user = user;
    uv_timer_init(mux->loop, &s->open_timer);
    s->open_timer.data = s;
    s->timer_active = true;
    /* cb is armed only after the send: a link failing right here must not
     * run it synchronously. */
    link_send_u32(mux, s->id, GCS_MUX_OPEN, port);
    if (mux->down)
        return error_set(err, RPC_UNAVAILABLE, "mux link is down");
    s->connect_cb = cb;
    s->connect_opaque = opaque;
    uint64_t timeout =
        mux->cfg.open_timeout_ms ? mux->cfg.open_timeout_ms : GCS_MUX_DEFAULT_OPEN_TIMEOUT_MS;
    uv_timer_start(&s->open_timer, open_timed_out, timeout, 0);
    return 0;
}

bool gcs_mux_is_up(const struct gcs_mux *mux)
{
    return !mux->down;
}

size_t gcs_mux_stream_count(const struct gcs_mux *mux)
{
    return mux->n_streams;
}

size_t gcs_mux_buffered_bytes(const struct gcs_mux *mux)
{
    return mux->user_queued + mux->link_queued;
}

void gcs_mux_close(struct gcs_mux *mux)
{
    if (mux == NULL || mux->closed)
        return;
    mux->closed = true;
    mux_take_down(mux, UV_ECANCELED, true);
    mux_maybe_free(mux);
}
