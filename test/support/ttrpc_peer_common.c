/* The platform-independent half of test/support/ttrpc_peer.h: loop pumping,
 * ttrpc frames over the raw peer, loop draining. The raw byte I/O is in
 * test/support/ttrpc_peer.c (POSIX sockets) and test/support/win/ (pipes). */
#include "test/support/ttrpc_peer.h"

#include <stdlib.h>
#include <string.h>

#include "ttrpc/frame.h"

int64_t tpeer_now_ms(void)
{
    return (int64_t)(uv_hrtime() / 1000000);
}

void tpeer_pump(uv_loop_t *loop)
{
    uv_run(loop, UV_RUN_NOWAIT);
    uv_sleep(1); /* let the other end move bytes without spinning hot */
    uv_run(loop, UV_RUN_NOWAIT);
}

bool tpeer_pump_until(uv_loop_t *loop, const bool *flag, int timeout_ms)
{
    int64_t end = tpeer_now_ms() + timeout_ms;
    while (!*flag && tpeer_now_ms() < end)
        tpeer_pump(loop);
    return *flag;
}

bool tpeer_pump_until_count(uv_loop_t *loop, const int *counter, int target, int timeout_ms)
{
    int64_t end = tpeer_now_ms() + timeout_ms;
    while (*counter < target && tpeer_now_ms() < end)
        tpeer_pump(loop);
    return *counter >= target;
}

void tpeer_pump_for(uv_loop_t *loop, int ms)
{
    int64_t end = tpeer_now_ms() + ms;
    while (tpeer_now_ms() < end)
        tpeer_pump(loop);
}

bool tpeer_read_frame(uv_loop_t *loop, int fd, struct tpeer_frame *frame)
{
    uint8_t hdr_buf[TTRPC_HEADER_SIZE];
    struct ttrpc_frame_header hdr;
    memset(frame, 0, sizeof(*frame));
    if (!tpeer_read(loop, fd, hdr_buf, sizeof(hdr_buf)))
        return false;
    ttrpc_header_decode(hdr_buf, &hdr);
    frame->length = hdr.length;
    frame->stream_id = hdr.stream_id;
    frame->type = hdr.type;
    frame->flags = hdr.flags;
    if (hdr.length > 64u << 20)
        return false;
    if (hdr.length == 0)
        return true;
    frame->body = malloc(hdr.length);
    if (frame->body == NULL || !tpeer_read(loop, fd, frame->body, hdr.length)) {
        free(frame->body);
        frame->body = NULL;
        return false;
    }
    return true;
}

bool tpeer_write_frame(uv_loop_t *loop, int fd, uint32_t stream_id, uint8_t type, const void *body,
                       size_t len)
{
    uint8_t hdr_buf[TTRPC_HEADER_SIZE];
    struct ttrpc_frame_header hdr = {
        .length = (uint32_t)len, .stream_id = stream_id, .type = type, .flags = 0};
    ttrpc_header_encode(hdr_buf, &hdr);
    return tpeer_write(loop, fd, hdr_buf, sizeof(hdr_buf)) &&
           (len == 0 || tpeer_write(loop, fd, body, len));
}

bool tpeer_send_request(uv_loop_t *loop, int fd, uint32_t stream_id, const char *service,
                        const char *method, const void *payload, size_t len, int64_t timeout_nano)
{
    uint8_t *frame = NULL;
    size_t frame_len = 0;
    if (ttrpc_request_frame(stream_id, service, method, payload, len, timeout_nano, NULL, 0, &frame,
                            &frame_len, NULL) < 0)
        return false;
    bool ok = tpeer_write(loop, fd, frame, frame_len);
    free(frame);
    return ok;
}

uint32_t tpeer_read_response(uv_loop_t *loop, int fd, int *code, char **message, uint8_t **payload,
                             size_t *payload_len)
{
    struct tpeer_frame frame;
    Ttrpc__Response *resp = NULL;
    if (!tpeer_read_frame(loop, fd, &frame) || frame.type != TTRPC_TYPE_RESPONSE ||
        ttrpc_response_decode(frame.body, frame.length, &resp, NULL) < 0) {
        free(frame.body);
        return 0;
    }
    *code = ttrpc_response_code(resp);
    if (message != NULL)
        *message = strdup(ttrpc_response_message(resp));
    if (payload != NULL) {
        *payload_len = resp->payload.len;
        *payload = malloc(resp->payload.len + 1);
        if (*payload != NULL) {
            if (resp->payload.len > 0)
                memcpy(*payload, resp->payload.data, resp->payload.len);
            (*payload)[resp->payload.len] = '\0';
        }
    }
    ttrpc__response__free_unpacked(resp, NULL);
    free(frame.body);
    return frame.stream_id;
}

static void close_walk_cb(uv_handle_t *handle, void *arg)
{
    (void)arg;
    if (!uv_is_closing(handle))
        uv_close(handle, NULL);
}

void tpeer_loop_drain(uv_loop_t *loop)
{
    uv_run(loop, UV_RUN_NOWAIT);
    uv_walk(loop, close_walk_cb, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
}
