/* libFuzzer target: arbitrary bytes through the ttrpc frame reader (in
 * chunks whose sizes come from the input, as a socket would deliver them),
 * then each complete frame through the server's Request decoding and
 * response building and the client's Response decoding. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ttrpc/frame.h"

static void check_request(const struct ttrpc_frame *frame)
{
    Ttrpc__Request *req = NULL;
    shim_error_t *err = NULL;
    uint8_t *out = NULL;
    size_t out_len = 0;
    if (ttrpc_request_decode(frame->body, frame->header.length, &req, &err) < 0) {
        if (err == NULL || err->code != RPC_INVALID_ARGUMENT)
            abort();
        if (ttrpc_response_frame(frame->header.stream_id, err->code, err->msg, NULL, 0, &out,
                                 &out_len) == 0)
            free(out);
        error_free(err);
        return;
    }
    /* Echo the payload back the way a handler would, and re-encode the request. */
    if (ttrpc_response_frame(frame->header.stream_id, 0, NULL, req->payload.data, req->payload.len,
                             &out, &out_len) == 0) {
        if (out_len < TTRPC_HEADER_SIZE || out_len - TTRPC_HEADER_SIZE > TTRPC_MESSAGE_LENGTH_MAX)
            abort();
        free(out);
    }
    if (ttrpc_request_frame(frame->header.stream_id, req->service, req->method, req->payload.data,
                            req->payload.len, req->timeout_nano, NULL, 0, &out, &out_len,
                            NULL) == 0)
        free(out);
    ttrpc__request__free_unpacked(req, NULL);
}

static void check_response(const struct ttrpc_frame *frame)
{
    Ttrpc__Response *resp = NULL;
    if (ttrpc_response_decode(frame->body, frame->header.length, &resp, NULL) < 0)
        return;
    (void)ttrpc_response_code(resp);
    if (ttrpc_response_message(resp) == NULL)
        abort();
    ttrpc__response__free_unpacked(resp, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    /* First byte: chunk size for feeding (0 = all at once). */
    size_t chunk = data[0];
    data++;
    size--;
    struct ttrpc_frame_reader reader;
    ttrpc_frame_reader_init(&reader);
    size_t off = 0;
    while (off < size) {
        size_t avail = size - off;
        if (chunk > 0 && avail > chunk)
            avail = chunk;
        size_t pos = 0;
        while (pos < avail) {
            struct ttrpc_frame frame;
            size_t used = 0;
            int rc = ttrpc_frame_reader_feed(&reader, data + off + pos, avail - pos, &used, &frame,
                                             NULL);
            if (rc < 0 || used > avail - pos)
                abort();
            pos += used;
            if (rc == TTRPC_FRAME_READY) {
                if (frame.header.length > TTRPC_MESSAGE_LENGTH_MAX)
                    abort();
                if (frame.header.type == TTRPC_TYPE_REQUEST)
                    check_request(&frame);
                else
                    check_response(&frame);
                free(frame.body);
            } else if (rc == TTRPC_FRAME_NEED_MORE && pos != avail) {
                abort();
            }
        }
        off += avail;
    }
    ttrpc_frame_reader_reset(&reader);
    return 0;
}
