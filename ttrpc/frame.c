#include "ttrpc/frame.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "google/rpc/status.pb-c.h"

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

void ttrpc_header_encode(uint8_t out[TTRPC_HEADER_SIZE], const struct ttrpc_frame_header *hdr)
{
    put_be32(out, hdr->length);
    put_be32(out + 4, hdr->stream_id);
    out[8] = hdr->type;
    out[9] = hdr->flags;
}

void ttrpc_header_decode(const uint8_t in[TTRPC_HEADER_SIZE], struct ttrpc_frame_header *hdr)
{
    hdr->length = get_be32(in);
    hdr->stream_id = get_be32(in + 4);
    hdr->type = in[8];
    hdr->flags = in[9];
}

void ttrpc_frame_reader_init(struct ttrpc_frame_reader *r)
{
    memset(r, 0, sizeof(*r));
}

void ttrpc_frame_reader_reset(struct ttrpc_frame_reader *r)
{
    free(r->body);
    ttrpc_frame_reader_init(r);
}

static size_t min_size(size_t a, uint64_t b)
{
    return (uint64_t)a < b ? a : (size_t)b;
}

/* Header complete: decide between skipping an oversized body and buffering. */
static int start_body(struct ttrpc_frame_reader *r, struct ttrpc_frame *out, shim_error_t **err)
{
    ttrpc_header_decode(r->header_buf, &r->header);
    if (r->header.length > TTRPC_MESSAGE_LENGTH_MAX) {
        r->discard_left = r->header.length;
        r->header_have = 0;
        out->header = r->header;
        out->body = NULL;
        return TTRPC_FRAME_OVERSIZED;
    }
    r->body_have = 0;
    r->body = NULL;
    if (r->header.length > 0) {
        r->body = malloc(r->header.length);
        if (r->body == NULL)
            return error_set(err, RPC_RESOURCE_EXHAUSTED, "ttrpc: cannot allocate %u bytes",
                             r->header.length);
    }
    return TTRPC_FRAME_NEED_MORE;
}

static int finish_frame(struct ttrpc_frame_reader *r, struct ttrpc_frame *out)
{
    out->header = r->header;
    out->body = r->body;
    r->body = NULL;
    r->body_have = 0;
    r->header_have = 0;
    return TTRPC_FRAME_READY;
}

int ttrpc_frame_reader_feed(struct ttrpc_frame_reader *r, const uint8_t *data, size_t len,
                            size_t *consumed, struct ttrpc_frame *out, shim_error_t **err)
{
    size_t pos = 0;
    int rc = TTRPC_FRAME_NEED_MORE;
    while (rc == TTRPC_FRAME_NEED_MORE) {
        if (r->discard_left > 0) {
            size_t n = min_size(len - pos, r->discard_left);
            r->discard_left -= n;
            pos += n;
            if (r->discard_left > 0)
                break;
            continue;
        }
        if (r->header_have < TTRPC_HEADER_SIZE) {
            if (pos == len)
                break;
            size_t n = min_size(len - pos, TTRPC_HEADER_SIZE - r->header_have);
            memcpy(r->header_buf + r->header_have, data + pos, n);
            r->header_have += n;
            pos += n;
            if (r->header_have < TTRPC_HEADER_SIZE)
                break;
            rc = start_body(r, out, err);
            if (rc < 0)
                r->header_have = 0;
            if (rc != TTRPC_FRAME_NEED_MORE)
                break;
        }
        size_t n = min_size(len - pos, r->header.length - r->body_have);
        if (n > 0)
            memcpy(r->body + r->body_have, data + pos, n);
        r->body_have += n;
        pos += n;
        if (r->body_have == r->header.length)
            rc = finish_frame(r, out);
        else
            break;
    }
    *consumed = pos;
    return rc;
}

int ttrpc_request_decode(const uint8_t *body, size_t len, Ttrpc__Request **out, shim_error_t **err)
{
    *out = ttrpc__request__unpack(NULL, len, body);
    if (*out == NULL)
        return error_set(err, RPC_INVALID_ARGUMENT,
                         "unmarshal request error: invalid ttrpc.Request encoding (%zu bytes)",
                         len);
    return 0;
}

/* Allocates header + body space and fills in the header. */
static uint8_t *frame_alloc(uint32_t stream_id, uint8_t type, size_t body_len)
{
    uint8_t *frame = malloc(TTRPC_HEADER_SIZE + body_len);
    if (frame == NULL)
        return NULL;
    struct ttrpc_frame_header hdr = {
        .length = (uint32_t)body_len, .stream_id = stream_id, .type = type, .flags = 0};
    ttrpc_header_encode(frame, &hdr);
    return frame;
}

int ttrpc_request_frame(uint32_t stream_id, const char *service, const char *method,
                        const uint8_t *payload, size_t payload_len, int64_t timeout_nano,
                        const struct ttrpc_metadata *metadata, size_t n_metadata, uint8_t **frame,
                        size_t *frame_len, shim_error_t **err)
{
    Ttrpc__Request req = TTRPC__REQUEST__INIT;
    Ttrpc__KeyValue *kv = NULL, **kvp = NULL;
    int ret = -1;
    req.service = (char *)service;
    req.method = (char *)method;
    req.payload.data = (uint8_t *)payload;
    req.payload.len = payload_len;
    req.timeout_nano = timeout_nano;
    if (n_metadata > 0) {
        kv = calloc(n_metadata, sizeof(*kv));
        kvp = calloc(n_metadata, sizeof(*kvp));
        if (kv == NULL || kvp == NULL) {
            error_set(err, RPC_RESOURCE_EXHAUSTED, "ttrpc: out of memory");
            goto cleanup;
        }
        for (size_t i = 0; i < n_metadata; i++) {
            ttrpc__key_value__init(&kv[i]);
            kv[i].key = (char *)metadata[i].key;
            kv[i].value = (char *)metadata[i].value;
            kvp[i] = &kv[i];
        }
        req.n_metadata = n_metadata;
        req.metadata = kvp;
    }
    size_t body_len = ttrpc__request__get_packed_size(&req);
    if (body_len > TTRPC_MESSAGE_LENGTH_MAX) {
        error_set(err, RPC_RESOURCE_EXHAUSTED,
                  "message length %zu exceed maximum message size of %u", body_len,
                  TTRPC_MESSAGE_LENGTH_MAX);
        goto cleanup;
    }
    *frame = frame_alloc(stream_id, TTRPC_TYPE_REQUEST, body_len);
    if (*frame == NULL) {
        error_set(err, RPC_RESOURCE_EXHAUSTED, "ttrpc: out of memory");
        goto cleanup;
    }
    ttrpc__request__pack(&req, *frame + TTRPC_HEADER_SIZE);
    *frame_len = TTRPC_HEADER_SIZE + body_len;
    ret = 0;
cleanup:
    free(kv);
    free(kvp);
    return ret;
}

int ttrpc_response_frame(uint32_t stream_id, int code, const char *message, const uint8_t *payload,
                         size_t payload_len, uint8_t **frame, size_t *frame_len)
{
    Ttrpc__Response resp = TTRPC__RESPONSE__INIT;
    Google__Rpc__Status status = GOOGLE__RPC__STATUS__INIT;
    char toobig[128];
    if (code != 0) {
        status.code = code;
        status.message = (char *)(message ? message : "");
        resp.status = &status;
    } else {
        resp.payload.data = (uint8_t *)payload;
        resp.payload.len = payload_len;
    }
    size_t body_len = ttrpc__response__get_packed_size(&resp);
    if (body_len > TTRPC_MESSAGE_LENGTH_MAX) {
        /* Never send what the peer must reject; tell it why instead. */
        snprintf(toobig, sizeof(toobig), "message length %zu exceed maximum message size of %u",
                 body_len, TTRPC_MESSAGE_LENGTH_MAX);
        resp.payload.data = NULL;
        resp.payload.len = 0;
        status.code = RPC_RESOURCE_EXHAUSTED;
        status.message = toobig;
        resp.status = &status;
        body_len = ttrpc__response__get_packed_size(&resp);
    }
    *frame = frame_alloc(stream_id, TTRPC_TYPE_RESPONSE, body_len);
    if (*frame == NULL)
        return -1;
    ttrpc__response__pack(&resp, *frame + TTRPC_HEADER_SIZE);
    *frame_len = TTRPC_HEADER_SIZE + body_len;
    return 0;
}

int ttrpc_response_decode(const uint8_t *body, size_t len, Ttrpc__Response **resp,
                          shim_error_t **err)
{
    *resp = ttrpc__response__unpack(NULL, len, body);
    if (*resp == NULL)
        return error_set(err, RPC_INTERNAL, "unmarshal response error: invalid ttrpc.Response");
    return 0;
}

int ttrpc_response_code(const Ttrpc__Response *resp)
{
    return resp->status ? resp->status->code : 0;
}

const char *ttrpc_response_message(const Ttrpc__Response *resp)
{
    if (resp->status == NULL || resp->status->message == NULL)
        return "";
    return resp->status->message;
}
