/* ttrpc framing and envelope coding: byte-exact against the spec examples,
 * partial/coalesced input, every split point, oversized bodies, garbage. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ttrpc/frame.h"

#define MAX_FRAMES 16

struct collected {
    struct ttrpc_frame frames[MAX_FRAMES];
    int n;
    int oversized;
    uint32_t oversized_stream;
};

static void collected_free(struct collected *c)
{
    for (int i = 0; i < c->n; i++)
        free(c->frames[i].body);
    c->n = 0;
}

/* Feeds one chunk completely, collecting whatever frames complete. */
static void feed_chunk(struct ttrpc_frame_reader *r, const uint8_t *data, size_t len,
                       struct collected *c)
{
    size_t off = 0;
    do {
        struct ttrpc_frame f;
        size_t used = 0;
        int rc = ttrpc_frame_reader_feed(r, data + off, len - off, &used, &f, NULL);
        assert_true(rc >= 0);
        assert_true(used <= len - off);
        off += used;
        if (rc == TTRPC_FRAME_READY) {
            assert_true(c->n < MAX_FRAMES);
            c->frames[c->n++] = f;
        } else if (rc == TTRPC_FRAME_OVERSIZED) {
            c->oversized++;
            c->oversized_stream = f.header.stream_id;
        } else {
            assert_int_equal(off, len); /* NEED_MORE only when all was used */
        }
    } while (off < len);
}

static const uint8_t state_request[] = {
    0x00, 0x00, 0x00, 0x26, 0x00, 0x00, 0x00, 0x07, 0x01, 0x00, 0x0a, 0x17, 'c',  'o',  'n', 't',
    'a',  'i',  'n',  'e',  'r',  'd',  '.',  't',  'a',  's',  'k',  '.',  'v',  '2',  '.', 'T',
    'a',  's',  'k',  0x12, 0x05, 'S',  't',  'a',  't',  'e',  0x1a, 0x04, 0x0a, 0x02, 't', '6'};

static void test_header_roundtrip(void **state)
{
    (void)state;
    uint8_t buf[TTRPC_HEADER_SIZE];
    struct ttrpc_frame_header in = {
        .length = 0x00123456, .stream_id = 0x89abcdef, .type = 2, .flags = 0x5a};
    struct ttrpc_frame_header out;
    ttrpc_header_encode(buf, &in);
    const uint8_t expect[] = {0x00, 0x12, 0x34, 0x56, 0x89, 0xab, 0xcd, 0xef, 0x02, 0x5a};
    assert_memory_equal(buf, expect, sizeof(expect));
    ttrpc_header_decode(buf, &out);
    assert_int_equal(out.length, in.length);
    assert_int_equal(out.stream_id, in.stream_id);
    assert_int_equal(out.type, in.type);
    assert_int_equal(out.flags, in.flags);
}

/* The spec's State request on stream 7, built and parsed byte-exactly. */
static void test_request_frame_matches_spec(void **state)
{
    (void)state;
    const uint8_t payload[] = {0x0a, 0x02, 't', '6'};
    uint8_t *frame = NULL;
    size_t len = 0;
    assert_int_equal(ttrpc_request_frame(7, "containerd.task.v2.Task", "State", payload,
                                         sizeof(payload), 0, NULL, 0, &frame, &len, NULL),
                     0);
    assert_int_equal(len, sizeof(state_request));
    assert_memory_equal(frame, state_request, len);
    free(frame);

    Ttrpc__Request *req = NULL;
    assert_int_equal(ttrpc_request_decode(state_request + 10, 0x26, &req, NULL), 0);
    assert_string_equal(req->service, "containerd.task.v2.Task");
    assert_string_equal(req->method, "State");
    assert_int_equal(req->payload.len, 4);
    assert_memory_equal(req->payload.data, payload, 4);
    assert_int_equal(req->timeout_nano, 0);
    assert_int_equal(req->n_metadata, 0);
    ttrpc__request__free_unpacked(req, NULL);
}

static void test_request_with_metadata_and_timeout(void **state)
{
    (void)state;
    const struct ttrpc_metadata md[] = {{"containerd-namespace-ttrpc", "ns1"}, {"k", "v"}};
    uint8_t *frame = NULL;
    size_t len = 0;
    assert_int_equal(
        ttrpc_request_frame(5, "s", "m", NULL, 0, 4999987652LL, md, 2, &frame, &len, NULL), 0);
    Ttrpc__Request *req = NULL;
    assert_int_equal(ttrpc_request_decode(frame + 10, len - 10, &req, NULL), 0);
    assert_int_equal(req->timeout_nano, 4999987652LL);
    assert_int_equal(req->n_metadata, 2);
    assert_string_equal(req->metadata[0]->key, "containerd-namespace-ttrpc");
    assert_string_equal(req->metadata[0]->value, "ns1");
    assert_string_equal(req->metadata[1]->key, "k");
    ttrpc__request__free_unpacked(req, NULL);
    free(frame);
}

/* Appendix B: empty success = header only; error bodies byte-exact. */
static void test_response_frames_match_spec(void **state)
{
    (void)state;
    uint8_t *frame = NULL;
    size_t len = 0;
    assert_int_equal(ttrpc_response_frame(9, 0, NULL, NULL, 0, &frame, &len), 0);
    const uint8_t empty[] = {0, 0, 0, 0, 0, 0, 0, 9, 2, 0};
    assert_int_equal(len, sizeof(empty));
    assert_memory_equal(frame, empty, len);
    free(frame);

    assert_int_equal(ttrpc_response_frame(3, 12, "method Nope", NULL, 0, &frame, &len), 0);
    const uint8_t nope[] = {0,   0,    0,    17,   0,    0,    0,    3,   2,
                            0,   0x0a, 0x0f, 0x08, 0x0c, 0x12, 0x0b, 'm', 'e',
                            't', 'h',  'o',  'd',  ' ',  'N',  'o',  'p', 'e'};
    assert_int_equal(len, sizeof(nope));
    assert_memory_equal(frame, nope, len);
    free(frame);

    const char *odd = "StreamID must be odd for client initiated streams";
    assert_int_equal(ttrpc_response_frame(2, 3, odd, NULL, 0, &frame, &len), 0);
    const uint8_t odd_prefix[] = {0x0a, 0x35, 0x08, 0x03, 0x12, 0x31};
    assert_int_equal(len, 10 + 6 + strlen(odd));
    assert_memory_equal(frame + 10, odd_prefix, sizeof(odd_prefix));
    assert_memory_equal(frame + 16, odd, strlen(odd));
    free(frame);

    /* Success with payload: only field 2, no status. */
    const uint8_t payload[] = {0x08, 0xe6, 0x98, 0x01, 0x10, 0x83, 0x99, 0x01};
    assert_int_equal(ttrpc_response_frame(1, 0, NULL, payload, sizeof(payload), &frame, &len), 0);
    assert_int_equal(len, 10 + 2 + sizeof(payload));
    assert_int_equal(frame[10], 0x12);
    assert_int_equal(frame[11], 0x08);
    assert_memory_equal(frame + 12, payload, sizeof(payload));
    free(frame);
}

static void test_response_too_big_becomes_resource_exhausted(void **state)
{
    (void)state;
    size_t big = TTRPC_MESSAGE_LENGTH_MAX; /* + field overhead > limit */
    uint8_t *payload = calloc(1, big);
    uint8_t *frame = NULL;
    size_t len = 0;
    assert_non_null(payload);
    assert_int_equal(ttrpc_response_frame(5, 0, NULL, payload, big, &frame, &len), 0);
    assert_true(len < 256);
    Ttrpc__Response *resp = NULL;
    assert_int_equal(ttrpc_response_decode(frame + 10, len - 10, &resp, NULL), 0);
    assert_int_equal(ttrpc_response_code(resp), 8);
    assert_non_null(strstr(ttrpc_response_message(resp), "exceed maximum message size"));
    assert_int_equal(resp->payload.len, 0);
    ttrpc__response__free_unpacked(resp, NULL);
    free(frame);

    /* Just under the limit still goes out as is. */
    size_t fits = TTRPC_MESSAGE_LENGTH_MAX - 5;
    assert_int_equal(ttrpc_response_frame(5, 0, NULL, payload, fits, &frame, &len), 0);
    assert_int_equal(len, 10 + TTRPC_MESSAGE_LENGTH_MAX);
    free(frame);
    free(payload);
}

/* Three frames back to back: a request, an empty one and a response. */
static size_t build_stream(uint8_t *out)
{
    size_t n = 0;
    memcpy(out, state_request, sizeof(state_request));
    n += sizeof(state_request);
    const uint8_t empty[] = {0, 0, 0, 0, 0, 0, 0, 9, 1, 0};
    memcpy(out + n, empty, sizeof(empty));
    n += sizeof(empty);
    const uint8_t resp[] = {0, 0, 0, 3, 0, 0, 0, 11, 2, 0, 0x12, 0x01, 0x7f};
    memcpy(out + n, resp, sizeof(resp));
    n += sizeof(resp);
    return n;
}

static void check_stream_frames(const struct collected *c)
{
    assert_int_equal(c->n, 3);
    assert_int_equal(c->frames[0].header.stream_id, 7);
    assert_int_equal(c->frames[0].header.length, 0x26);
    assert_int_equal(c->frames[0].header.type, 1);
    assert_memory_equal(c->frames[0].body, state_request + 10, 0x26);
    assert_int_equal(c->frames[1].header.stream_id, 9);
    assert_int_equal(c->frames[1].header.length, 0);
    assert_null(c->frames[1].body);
    assert_int_equal(c->frames[2].header.stream_id, 11);
    assert_int_equal(c->frames[2].header.type, 2);
    assert_int_equal(c->frames[2].body[2], 0x7f);
}

static void test_coalesced(void **state)
{
    (void)state;
    uint8_t buf[256];
    size_t n = build_stream(buf);
    struct ttrpc_frame_reader r;
    struct collected c = {0};
    ttrpc_frame_reader_init(&r);
    feed_chunk(&r, buf, n, &c);
    check_stream_frames(&c);
    collected_free(&c);
    ttrpc_frame_reader_reset(&r);
}

static void test_split_at_every_byte(void **state)
{
    (void)state;
    uint8_t buf[256];
    size_t n = build_stream(buf);
    for (size_t split = 0; split <= n; split++) {
        struct ttrpc_frame_reader r;
        struct collected c = {0};
        ttrpc_frame_reader_init(&r);
        feed_chunk(&r, buf, split, &c);
        feed_chunk(&r, buf + split, n - split, &c);
        check_stream_frames(&c);
        collected_free(&c);
        ttrpc_frame_reader_reset(&r);
    }
}

static void test_byte_by_byte(void **state)
{
    (void)state;
    uint8_t buf[256];
    size_t n = build_stream(buf);
    struct ttrpc_frame_reader r;
    struct collected c = {0};
    ttrpc_frame_reader_init(&r);
    for (size_t i = 0; i < n; i++)
        feed_chunk(&r, buf + i, 1, &c);
    check_stream_frames(&c);
    collected_free(&c);
    ttrpc_frame_reader_reset(&r);
}

/* A partial frame left in the reader is released by reset (ASan checks). */
static void test_reset_frees_partial_body(void **state)
{
    (void)state;
    struct ttrpc_frame_reader r;
    struct collected c = {0};
    ttrpc_frame_reader_init(&r);
    feed_chunk(&r, state_request, 20, &c);
    assert_int_equal(c.n, 0);
    ttrpc_frame_reader_reset(&r);
}

static void test_oversized_is_skipped(void **state)
{
    (void)state;
    const uint32_t big = TTRPC_MESSAGE_LENGTH_MAX + 1;
    uint8_t hdr[10];
    struct ttrpc_frame_header h = {.length = big, .stream_id = 21, .type = 1, .flags = 0};
    ttrpc_header_encode(hdr, &h);
    uint8_t *junk = malloc(64 * 1024);
    assert_non_null(junk);
    memset(junk, 0xab, 64 * 1024);
    struct ttrpc_frame_reader r;
    struct collected c = {0};
    ttrpc_frame_reader_init(&r);
    feed_chunk(&r, hdr, sizeof(hdr), &c);
    assert_int_equal(c.oversized, 1);
    assert_int_equal(c.oversized_stream, 21);
    for (uint32_t left = big; left > 0;) {
        uint32_t n = left < 64 * 1024 ? left : 64 * 1024;
        feed_chunk(&r, junk, n, &c);
        left -= n;
    }
    assert_int_equal(c.n, 0);
    /* The stream is still in sync: the next frame parses. */
    uint8_t buf[256];
    size_t n = build_stream(buf);
    feed_chunk(&r, buf, n, &c);
    check_stream_frames(&c);
    assert_int_equal(c.oversized, 1);
    collected_free(&c);
    ttrpc_frame_reader_reset(&r);
    free(junk);
}

/* Exactly 4 MiB is allowed. */
static void test_max_size_accepted(void **state)
{
    (void)state;
    const uint32_t max = TTRPC_MESSAGE_LENGTH_MAX;
    uint8_t *buf = calloc(1, 10 + max);
    assert_non_null(buf);
    struct ttrpc_frame_header h = {.length = max, .stream_id = 1, .type = 1, .flags = 0};
    ttrpc_header_encode(buf, &h);
    struct ttrpc_frame_reader r;
    struct collected c = {0};
    ttrpc_frame_reader_init(&r);
    feed_chunk(&r, buf, 10 + max, &c);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.oversized, 0);
    assert_int_equal(c.frames[0].header.length, max);
    collected_free(&c);
    free(buf);
}

static void test_garbage_request_fails_to_decode(void **state)
{
    (void)state;
    const uint8_t garbage[][6] = {
        {0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, /* bad tag and varint */
        {0x0a, 0x7f, 'a', 'b', 'c', 'd'},     /* length beyond the body */
        {0x22, 0x01, 0x00, 0x00, 0x00, 0x00}, /* field 4 with wrong wire type */
    };
    for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++) {
        Ttrpc__Request *req = NULL;
        shim_error_t *err = NULL;
        assert_int_equal(ttrpc_request_decode(garbage[i], sizeof(garbage[i]), &req, &err), -1);
        assert_null(req);
        assert_non_null(err);
        assert_int_equal(err->code, 3);
        assert_true(strncmp(err->msg, "unmarshal request error: ", 25) == 0);
        error_free(err);
    }
    /* An empty body is a valid (empty) Request. */
    Ttrpc__Request *req = NULL;
    assert_int_equal(ttrpc_request_decode(NULL, 0, &req, NULL), 0);
    assert_string_equal(req->service, "");
    ttrpc__request__free_unpacked(req, NULL);
}

/* Random bytes never crash the reader and always account for every byte. */
static void test_random_garbage_stream(void **state)
{
    (void)state;
    uint8_t buf[4096];
    unsigned seed = 12345;
    for (size_t i = 0; i < sizeof(buf); i++) {
        seed = seed * 1103515245u + 12345u;
        buf[i] = (uint8_t)(seed >> 16);
        if (i % 10 == 0)
            buf[i] = 0; /* keep some lengths small so frames complete */
    }
    struct ttrpc_frame_reader r;
    ttrpc_frame_reader_init(&r);
    size_t off = 0;
    int frames = 0;
    while (off < sizeof(buf)) {
        struct ttrpc_frame f;
        size_t used = 0;
        int rc = ttrpc_frame_reader_feed(&r, buf + off, sizeof(buf) - off, &used, &f, NULL);
        assert_true(rc >= 0);
        off += used;
        if (rc == TTRPC_FRAME_READY) {
            Ttrpc__Request *req = NULL;
            if (ttrpc_request_decode(f.body, f.header.length, &req, NULL) == 0)
                ttrpc__request__free_unpacked(req, NULL);
            free(f.body);
            frames++;
        }
    }
    ttrpc_frame_reader_reset(&r);
    (void)frames;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_roundtrip),
        cmocka_unit_test(test_request_frame_matches_spec),
        cmocka_unit_test(test_request_with_metadata_and_timeout),
        cmocka_unit_test(test_response_frames_match_spec),
        cmocka_unit_test(test_response_too_big_becomes_resource_exhausted),
        cmocka_unit_test(test_coalesced),
        cmocka_unit_test(test_split_at_every_byte),
        cmocka_unit_test(test_byte_by_byte),
        cmocka_unit_test(test_reset_frees_partial_body),
        cmocka_unit_test(test_oversized_is_skipped),
        cmocka_unit_test(test_max_size_accepted),
        cmocka_unit_test(test_garbage_request_fails_to_decode),
        cmocka_unit_test(test_random_garbage_stream),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
