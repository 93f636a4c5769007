/* GCS bridge framing (protocol v4, spec gcs-bridge.md §2).
 *
 * Every message is a 16-byte little-endian header {Type u32, Size u32, ID u64}
 * followed by a JSON object; Size counts the header. Shared by the host
 * (gcs/guest_connection.c) and the guest agent (cmd/gcs). */
#ifndef GCS_BRIDGE_FRAME_H
#define GCS_BRIDGE_FRAME_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

#define GCS_HEADER_SIZE 16u

/* Limits on what a decoder accepts (Size, header included). */
#define GCS_HOST_MAX_MESSAGE_SIZE (8u * 1024 * 1024)
#define GCS_GUEST_MAX_MESSAGE_SIZE (64u * 1024 * 1024)

/* Type = kind (bits 31-28) | category (27-20) | rpc number (19-8) | version (7-0). */
#define GCS_KIND_MASK 0xF0000000u
#define GCS_KIND_REQUEST 0x10000000u
#define GCS_KIND_RESPONSE 0x20000000u
#define GCS_KIND_NOTIFICATION 0x30000000u
#define GCS_CATEGORY_MASK 0x0FF00000u
#define GCS_CATEGORY_COMPUTE_SYSTEM 0x00100000u
#define GCS_CATEGORY_COMPUTE_SERVICE 0x00200000u
#define GCS_RPC_MASK 0x000FFF00u
#define GCS_VERSION_MASK 0x000000FFu

enum gcs_rpc {
    GCS_RPC_CREATE = 1,
    GCS_RPC_START = 2,
    GCS_RPC_SHUTDOWN_GRACEFUL = 3,
    GCS_RPC_SHUTDOWN_FORCED = 4,
    GCS_RPC_EXECUTE_PROCESS = 5,
    GCS_RPC_WAIT_FOR_PROCESS = 6,
    GCS_RPC_SIGNAL_PROCESS = 7,
    GCS_RPC_RESIZE_CONSOLE = 8,
    GCS_RPC_GET_PROPERTIES = 9,
    GCS_RPC_MODIFY_SETTINGS = 10,
    GCS_RPC_NEGOTIATE_PROTOCOL = 11,
    GCS_RPC_DUMP_STACKS = 12,
    GCS_RPC_DELETE_CONTAINER_STATE = 13,
    GCS_RPC_UPDATE_CONTAINER = 14,
    GCS_RPC_LIFECYCLE_NOTIFICATION = 15,
};

#define GCS_MAKE_TYPE(kind, category, rpc) ((kind) | (category) | ((uint32_t)(rpc) << 8) | 1u)
#define GCS_REQ(rpc) GCS_MAKE_TYPE(GCS_KIND_REQUEST, GCS_CATEGORY_COMPUTE_SYSTEM, rpc)
#define GCS_RESP(rpc) GCS_MAKE_TYPE(GCS_KIND_RESPONSE, GCS_CATEGORY_COMPUTE_SYSTEM, rpc)

/* Request types (0x10100n01) */
#define GCS_TYPE_CREATE GCS_REQ(GCS_RPC_CREATE)                                 /* 0x10100101 */
#define GCS_TYPE_START GCS_REQ(GCS_RPC_START)                                   /* 0x10100201 */
#define GCS_TYPE_SHUTDOWN_GRACEFUL GCS_REQ(GCS_RPC_SHUTDOWN_GRACEFUL)           /* 0x10100301 */
#define GCS_TYPE_SHUTDOWN_FORCED GCS_REQ(GCS_RPC_SHUTDOWN_FORCED)               /* 0x10100401 */
#define GCS_TYPE_EXECUTE_PROCESS GCS_REQ(GCS_RPC_EXECUTE_PROCESS)               /* 0x10100501 */
#define GCS_TYPE_WAIT_FOR_PROCESS GCS_REQ(GCS_RPC_WAIT_FOR_PROCESS)             /* 0x10100601 */
#define GCS_TYPE_SIGNAL_PROCESS GCS_REQ(GCS_RPC_SIGNAL_PROCESS)                 /* 0x10100701 */
#define GCS_TYPE_RESIZE_CONSOLE GCS_REQ(GCS_RPC_RESIZE_CONSOLE)                 /* 0x10100801 */
#define GCS_TYPE_GET_PROPERTIES GCS_REQ(GCS_RPC_GET_PROPERTIES)                 /* 0x10100901 */
#define GCS_TYPE_MODIFY_SETTINGS GCS_REQ(GCS_RPC_MODIFY_SETTINGS)               /* 0x10100a01 */
#define GCS_TYPE_NEGOTIATE_PROTOCOL GCS_REQ(GCS_RPC_NEGOTIATE_PROTOCOL)         /* 0x10100b01 */
#define GCS_TYPE_DUMP_STACKS GCS_REQ(GCS_RPC_DUMP_STACKS)                       /* 0x10100c01 */
#define GCS_TYPE_DELETE_CONTAINER_STATE GCS_REQ(GCS_RPC_DELETE_CONTAINER_STATE) /* 0x10100d01 */
#define GCS_TYPE_UPDATE_CONTAINER GCS_REQ(GCS_RPC_UPDATE_CONTAINER)             /* 0x10100e01 */
#define GCS_TYPE_LIFECYCLE_NOTIFICATION GCS_REQ(GCS_RPC_LIFECYCLE_NOTIFICATION) /* 0x10100f01 */
#define GCS_TYPE_MODIFY_SERVICE_SETTINGS                                                           \
    GCS_MAKE_TYPE(GCS_KIND_REQUEST, GCS_CATEGORY_COMPUTE_SERVICE, 1) /* 0x10200101 */
/* The only notification: container exit (G->H, ID 0). */
#define GCS_TYPE_CONTAINER_NOTIFICATION                                                            \
    GCS_MAKE_TYPE(GCS_KIND_NOTIFICATION, GCS_CATEGORY_COMPUTE_SYSTEM, 1) /* 0x30100101 */

static inline uint32_t gcs_type_kind(uint32_t type)
{
    return type & GCS_KIND_MASK;
}
/* RPC number (enum gcs_rpc) of a ComputeSystem request/response, else 0. */
static inline unsigned gcs_type_rpc(uint32_t type)
{
    if ((type & GCS_CATEGORY_MASK) != GCS_CATEGORY_COMPUTE_SYSTEM)
        return 0;
    return (type & GCS_RPC_MASK) >> 8;
}
/* The response type for any request type (even unknown ones): top nibble 0x2. */
static inline uint32_t gcs_type_response_for(uint32_t request_type)
{
    return (request_type & ~GCS_KIND_MASK) | GCS_KIND_RESPONSE;
}
static inline uint32_t gcs_type_request_for(uint32_t response_type)
{
    return (response_type & ~GCS_KIND_MASK) | GCS_KIND_REQUEST;
}
/* "Create", "ExecuteProcess", ... for any kind; "Unknown" otherwise. */
const char *gcs_type_name(uint32_t type);

struct gcs_header {
    uint32_t type;
    uint32_t size; /* total, header included */
    uint64_t id;
};

void gcs_header_encode(uint8_t out[GCS_HEADER_SIZE], const struct gcs_header *h);
void gcs_header_decode(const uint8_t in[GCS_HEADER_SIZE], struct gcs_header *h);

/* Serialises a JSON body compactly (key order kept, no trailing newline) and
 * prepends the header. *out is malloc'd (caller frees), *out_len = Size. */
int gcs_frame_encode(uint32_t type, uint64_t id, const json_t *body, uint8_t **out, size_t *out_len,
                     shim_error_t **err);
/* Same with an already serialised body of any length (up to 4 GiB - 17). */
int gcs_frame_encode_raw(uint32_t type, uint64_t id, const void *body, size_t body_len,
                         uint8_t **out, size_t *out_len, shim_error_t **err);

/* One decoded message: body is always a JSON object (owned; json_decref). */
struct gcs_message {
    uint32_t type;
    uint64_t id;
    uint32_t size;
    json_t *body;
};
void gcs_message_clear(struct gcs_message *m);

/* Incremental decoder: push arbitrary chunks (split or coalesced messages),
 * then call gcs_frame_decoder_next until it returns 0. Memory grows only with
 * bytes actually received, never with what a header claims. After an error the
 * decoder stays failed (the stream is unusable). */
struct gcs_frame_decoder {
    uint32_t max_size;
    uint8_t *buf;
    size_t off, len, cap; /* unread bytes are buf[off..len) */
    bool failed;
};

void gcs_frame_decoder_init(struct gcs_frame_decoder *d, uint32_t max_size);
void gcs_frame_decoder_free(struct gcs_frame_decoder *d);
/* Appends bytes; -1 (RPC_RESOURCE_EXHAUSTED) only on out-of-memory or when failed. */
int gcs_frame_decoder_push(struct gcs_frame_decoder *d, const void *data, size_t len,
                           shim_error_t **err);
enum gcs_decode_result {
    GCS_DECODE_FATAL = -1,    /* framing broken (Size < 16 or > max): stream unusable */
    GCS_DECODE_NEED_MORE = 0, /* no complete message buffered */
    GCS_DECODE_MESSAGE = 1,   /* *msg holds a message (caller clears it) */
    GCS_DECODE_BAD_BODY = 2,  /* a whole frame was consumed but its body is not a JSON
                                 object: *msg has the header (body NULL), *err why.
                                 The stream stays in sync: a guest answers 0xC037010D,
                                 a host treats it as fatal. */
};
/* Returns one enum gcs_decode_result. On FATAL *err says why (RPC_DATA_LOSS
 * for Size < 16, RPC_RESOURCE_EXHAUSTED for Size > max) and *msg has the bad
 * header; the decoder then stays failed. */
int gcs_frame_decoder_next(struct gcs_frame_decoder *d, struct gcs_message *msg,
                           shim_error_t **err);
/* Bytes buffered but not yet returned as a message (a truncated tail at EOF). */
size_t gcs_frame_decoder_pending(const struct gcs_frame_decoder *d);

/* Parses a body alone (used by the decoder): must be one JSON object, trailing
 * whitespace allowed. */
int gcs_body_parse(const void *data, size_t len, json_t **out, shim_error_t **err);

#endif
