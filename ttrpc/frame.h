/* ttrpc framing and envelope coding (internal to ttrpc/, its tests and its
 * fuzz target). Wire facts: shared/spec/shim-contract.md §1.2-1.4.
 *
 * A frame is a 10-byte big-endian header (data length, stream id, type,
 * flags) followed by `length` bytes of body. The reader is incremental: feed
 * it whatever the transport delivered (partial or several frames at once)
 * and take out complete frames one at a time. */
#ifndef TTRPC_FRAME_H
#define TTRPC_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "ttrpc/ttrpc.h"
#include "ttrpc/ttrpc.pb-c.h"

#define TTRPC_HEADER_SIZE 10
#define TTRPC_MESSAGE_LENGTH_MAX TTRPC_MAX_MESSAGE /* 4 MiB */

enum ttrpc_frame_type {
    TTRPC_TYPE_REQUEST = 1,
    TTRPC_TYPE_RESPONSE = 2,
    TTRPC_TYPE_DATA = 3,
};

struct ttrpc_frame_header {
    uint32_t length;
    uint32_t stream_id;
    uint8_t type;
    uint8_t flags;
};

void ttrpc_header_encode(uint8_t out[TTRPC_HEADER_SIZE], const struct ttrpc_frame_header *hdr);
void ttrpc_header_decode(const uint8_t in[TTRPC_HEADER_SIZE], struct ttrpc_frame_header *hdr);

enum ttrpc_frame_status {
    TTRPC_FRAME_NEED_MORE = 0, /* every byte given was consumed */
    TTRPC_FRAME_READY,         /* a complete frame is in *out (caller frees body) */
    TTRPC_FRAME_OVERSIZED,     /* header announced > 4 MiB; body is being skipped */
};

struct ttrpc_frame {
    struct ttrpc_frame_header header;
    uint8_t *body; /* malloc'ed, header.length bytes; NULL when length is 0 */
};

struct ttrpc_frame_reader {
    uint8_t header_buf[TTRPC_HEADER_SIZE];
    size_t header_have;
    struct ttrpc_frame_header header;
    uint8_t *body;
    size_t body_have;
    uint64_t discard_left; /* bytes of an oversized body still to skip */
};

void ttrpc_frame_reader_init(struct ttrpc_frame_reader *r);
void ttrpc_frame_reader_reset(struct ttrpc_frame_reader *r); /* frees a partial body */

/* Consumes bytes from data[0..len) until a frame completes or the input is
 * exhausted; *consumed tells how far it got. On TTRPC_FRAME_READY the caller
 * owns out->body. On TTRPC_FRAME_OVERSIZED out->header tells which stream to
 * answer; the body is skipped by later feeds. Returns -1 only when a body
 * buffer cannot be allocated. Call again with the rest of the input. */
int ttrpc_frame_reader_feed(struct ttrpc_frame_reader *r, const uint8_t *data, size_t len,
                            size_t *consumed, struct ttrpc_frame *out, shim_error_t **err);

/* Decodes a Request body; on failure the error is InvalidArgument
 * "unmarshal request error: ...". Free with ttrpc__request__free_unpacked. */
int ttrpc_request_decode(const uint8_t *body, size_t len, Ttrpc__Request **out, shim_error_t **err);

/* Builds a complete Request frame (header + body) in a malloc'ed buffer. */
int ttrpc_request_frame(uint32_t stream_id, const char *service, const char *method,
                        const uint8_t *payload, size_t payload_len, int64_t timeout_nano,
                        const struct ttrpc_metadata *metadata, size_t n_metadata, uint8_t **frame,
                        size_t *frame_len, shim_error_t **err);

/* Builds a complete Response frame. code 0 = success: the status is omitted
 * and an empty payload gives a zero-length body. On error the payload is
 * ignored. A body that would exceed 4 MiB is replaced by ResourceExhausted.
 * Returns -1 only on allocation failure. */
int ttrpc_response_frame(uint32_t stream_id, int code, const char *message, const uint8_t *payload,
                         size_t payload_len, uint8_t **frame, size_t *frame_len);

/* Decodes a Response body (free with ttrpc__response__free_unpacked); a
 * failure is Internal "unmarshal response error". */
int ttrpc_response_decode(const uint8_t *body, size_t len, Ttrpc__Response **resp,
                          shim_error_t **err);

/* Status of a decoded response: code and message ("" when absent). */
int ttrpc_response_code(const Ttrpc__Response *resp);
const char *ttrpc_response_message(const Ttrpc__Response *resp);

#endif
