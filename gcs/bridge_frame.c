#include "gcs/bridge_frame.h"

#include <stdlib.h>
#include <string.h>

static const char *const rpc_names[] = {
    [GCS_RPC_CREATE] = "Create",
    [GCS_RPC_START] = "Start",
    [GCS_RPC_SHUTDOWN_GRACEFUL] = "ShutdownGraceful",
    [GCS_RPC_SHUTDOWN_FORCED] = "ShutdownForced",
    [GCS_RPC_EXECUTE_PROCESS] = "ExecuteProcess",
    [GCS_RPC_WAIT_FOR_PROCESS] = "WaitForProcess",
    [GCS_RPC_SIGNAL_PROCESS] = "SignalProcess",
    [GCS_RPC_RESIZE_CONSOLE] = "ResizeConsole",
    [GCS_RPC_GET_PROPERTIES] = "GetProperties",
    [GCS_RPC_MODIFY_SETTINGS] = "ModifySettings",
    [GCS_RPC_NEGOTIATE_PROTOCOL] = "NegotiateProtocol",
    [GCS_RPC_DUMP_STACKS] = "DumpStacks",
    [GCS_RPC_DELETE_CONTAINER_STATE] = "DeleteContainerState",
    [GCS_RPC_UPDATE_CONTAINER] = "UpdateContainer",
    [GCS_RPC_LIFECYCLE_NOTIFICATION] = "LifecycleNotification",
};

const char *gcs_type_name(uint32_t type)
{
    if (type == GCS_TYPE_CONTAINER_NOTIFICATION)
        return "ContainerNotification";
    if ((type & ~GCS_KIND_MASK) == (GCS_TYPE_MODIFY_SERVICE_SETTINGS & ~GCS_KIND_MASK))
        return "ModifyServiceSettings";
    unsigned rpc = gcs_type_rpc(type);
    if (rpc == 0 || rpc >= sizeof(rpc_names) / sizeof(rpc_names[0]))
        return "Unknown";
    return rpc_names[rpc];
}

static const char *kind_name(uint32_t type)
{
    switch (gcs_type_kind(type)) {
    case GCS_KIND_REQUEST:
        return "request";
    case GCS_KIND_RESPONSE:
        return "response";
    case GCS_KIND_NOTIFICATION:
        return "notification";
    default:
        return "message";
    }
}

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

void gcs_header_encode(uint8_t out[GCS_HEADER_SIZE], const struct gcs_header *h)
{
    put_le32(out, h->type);
    put_le32(out + 4, h->size);
    put_le32(out + 8, (uint32_t)h->id);
    put_le32(out + 12, (uint32_t)(h->id >> 32));
}

void gcs_header_decode(const uint8_t in[GCS_HEADER_SIZE], struct gcs_header *h)
{
    h->type = get_le32(in);
    h->size = get_le32(in + 4);
    h->id = (uint64_t)get_le32(in + 8) | ((uint64_t)get_le32(in + 12) << 32);
}

int gcs_frame_encode_raw(uint32_t type, uint64_t id, const void *body, size_t body_len,
                         uint8_t **out, size_t *out_len, shim_error_t **err)
{
    if (body_len > UINT32_MAX - GCS_HEADER_SIZE)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "gcs message body of %zu bytes is too large",
                         body_len);
    size_t total = GCS_HEADER_SIZE + body_len;
    uint8_t *buf = malloc(total);
    if (buf == NULL)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory encoding gcs message");
    struct gcs_header h = {.type = type, .size = (uint32_t)total, .id = id};
    gcs_header_encode(buf, &h);
    if (body_len > 0)
        memcpy(buf + GCS_HEADER_SIZE, body, body_len);
    *out = buf;
    *out_len = total;
    return 0;
}

int gcs_frame_encode(uint32_t type, uint64_t id, const json_t *body, uint8_t **out, size_t *out_len,
                     shim_error_t **err)
{
    if (!json_is_object(body))
        return error_set(err, RPC_INVALID_ARGUMENT, "gcs message body must be a JSON object");
    char *text = json_dumps(body, JSON_COMPACT);
    if (text == NULL)
        return error_set(err, RPC_INTERNAL, "cannot serialise gcs message body");
    int rc = gcs_frame_encode_raw(type, id, text, strlen(text), out, out_len, err);
    free(text);
    return rc;
}

void gcs_message_clear(struct gcs_message *m)
{
    json_decref(m->body);
    memset(m, 0, sizeof(*m));
}

int gcs_body_parse(const void *data, size_t len, json_t **out, shim_error_t **err)
{
    json_error_t jerr;
    /* Flags 0: the top level must be an object or array; trailing whitespace
     * (the hcsshim host's '\n') is fine, anything else after the value is not. */
    json_t *v = json_loadb(data, len, 0, &jerr);
    if (v == NULL)
        return error_set(err, RPC_INVALID_ARGUMENT, "invalid JSON in gcs message: %s (offset %d)",
                         jerr.text, jerr.position);
    if (!json_is_object(v)) {
        json_decref(v);
        return error_set(err, RPC_INVALID_ARGUMENT, "gcs message body is not a JSON object");
    }
    *out = v;
    return 0;
}

void gcs_frame_decoder_init(struct gcs_frame_decoder *d, uint32_t max_size)
{
    memset(d, 0, sizeof(*d));
    d->max_size = max_size < GCS_HEADER_SIZE ? GCS_HEADER_SIZE : max_size;
}

void gcs_frame_decoder_free(struct gcs_frame_decoder *d)
{
    free(d->buf);
    d->buf = NULL;
    d->off = d->len = d->cap = 0;
}

size_t gcs_frame_decoder_pending(const struct gcs_frame_decoder *d)
{
    return d->len - d->off;
}

/* Makes room for `more` bytes: drops consumed bytes first, then grows. */
static int reserve(struct gcs_frame_decoder *d, size_t more)
{
    if (d->off > 0) {
        memmove(d->buf, d->buf + d->off, d->len - d->off);
        d->len -= d->off;
        d->off = 0;
    }
    if (d->cap - d->len >= more)
        return 0;
    size_t need = d->len + more;
    size_t cap = d->cap ? d->cap : 4096;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    uint8_t *nb = realloc(d->buf, cap);
    if (nb == NULL)
        return -1;
    d->buf = nb;
    d->cap = cap;
    return 0;
}

int gcs_frame_decoder_push(struct gcs_frame_decoder *d, const void *data, size_t len,
                           shim_error_t **err)
{
    if (d->failed)
        return error_set(err, RPC_DATA_LOSS, "gcs bridge stream already failed");
    if (len == 0)
        return 0;
    if (reserve(d, len) < 0)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory buffering gcs bridge data");
    memcpy(d->buf + d->len, data, len);
    d->len += len;
    return 0;
}

int gcs_frame_decoder_next(struct gcs_frame_decoder *d, struct gcs_message *msg, shim_error_t **err)
{
    memset(msg, 0, sizeof(*msg));
    if (d->failed) {
        error_set(err, RPC_DATA_LOSS, "gcs bridge stream already failed");
        return GCS_DECODE_FATAL;
    }
    size_t avail = d->len - d->off;
    if (avail < GCS_HEADER_SIZE)
        return GCS_DECODE_NEED_MORE;
    struct gcs_header h;
    gcs_header_decode(d->buf + d->off, &h);
    msg->type = h.type;
    msg->id = h.id;
    msg->size = h.size;
    if (h.size < GCS_HEADER_SIZE || h.size > d->max_size) {
        d->failed = true;
        if (h.size < GCS_HEADER_SIZE)
            error_set(err, RPC_DATA_LOSS,
                      "gcs message size %u is below the header size (type 0x%08x id %llu)", h.size,
                      h.type, (unsigned long long)h.id);
        else
            error_set(err, RPC_RESOURCE_EXHAUSTED,
                      "gcs message size %u exceeds the limit of %u (type 0x%08x id %llu)", h.size,
                      d->max_size, h.type, (unsigned long long)h.id);
        return GCS_DECODE_FATAL;
    }
    if (avail < h.size)
        return GCS_DECODE_NEED_MORE;
    const uint8_t *body = d->buf + d->off + GCS_HEADER_SIZE;
    size_t body_len = h.size - GCS_HEADER_SIZE;
    d->off += h.size;
    if (d->off == d->len)
        d->off = d->len = 0;
    /* body still points at valid bytes: nothing was moved since. */
    int rc = gcs_body_parse(body, body_len, &msg->body, err);
    if (d->len == 0 && d->cap > (1u << 20)) /* give back the room a big message took */
        gcs_frame_decoder_free(d);
    if (rc < 0) {
        error_wrap(err, "%s %s id %llu", gcs_type_name(h.type), kind_name(h.type),
                   (unsigned long long)h.id);
        return GCS_DECODE_BAD_BODY;
    }
    return GCS_DECODE_MESSAGE;
}
