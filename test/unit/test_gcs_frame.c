/* GCS bridge framing: header layout, incremental decoding (split at every
 * byte, coalesced), limits (Size < 16, Size > max, 1 GiB claim), bad bodies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gcs/bridge_frame.h"
#include "gcs/bridge_json.h"

static uint8_t *frame(uint32_t type, uint64_t id, const char *body, size_t *len)
{
    uint8_t *buf = NULL;
    assert_int_equal(gcs_frame_encode_raw(type, id, body, strlen(body), &buf, len, NULL), 0);
    return buf;
}

static void test_type_constants(void **state)
{
    (void)state;
    assert_int_equal(GCS_TYPE_CREATE, 0x10100101);
    assert_int_equal(GCS_TYPE_START, 0x10100201);
    assert_int_equal(GCS_TYPE_SHUTDOWN_GRACEFUL, 0x10100301);
    assert_int_equal(GCS_TYPE_SHUTDOWN_FORCED, 0x10100401);
    assert_int_equal(GCS_TYPE_EXECUTE_PROCESS, 0x10100501);
    assert_int_equal(GCS_TYPE_WAIT_FOR_PROCESS, 0x10100601);
    assert_int_equal(GCS_TYPE_SIGNAL_PROCESS, 0x10100701);
    assert_int_equal(GCS_TYPE_RESIZE_CONSOLE, 0x10100801);
    assert_int_equal(GCS_TYPE_GET_PROPERTIES, 0x10100901);
    assert_int_equal(GCS_TYPE_MODIFY_SETTINGS, 0x10100a01);
    assert_int_equal(GCS_TYPE_NEGOTIATE_PROTOCOL, 0x10100b01);
    assert_int_equal(GCS_TYPE_DUMP_STACKS, 0x10100c01);
    assert_int_equal(GCS_TYPE_DELETE_CONTAINER_STATE, 0x10100d01);
    assert_int_equal(GCS_TYPE_UPDATE_CONTAINER, 0x10100e01);
    assert_int_equal(GCS_TYPE_LIFECYCLE_NOTIFICATION, 0x10100f01);
    assert_int_equal(GCS_TYPE_MODIFY_SERVICE_SETTINGS, 0x10200101);
    assert_int_equal(GCS_TYPE_CONTAINER_NOTIFICATION, 0x30100101);
    assert_int_equal(gcs_type_response_for(GCS_TYPE_EXECUTE_PROCESS), 0x20100501);
    assert_int_equal(gcs_type_response_for(0x10100e01), 0x20100e01);
    assert_int_equal(gcs_type_response_for(0xf0123456), 0x20123456);
    assert_int_equal(gcs_type_request_for(0x20100b01), GCS_TYPE_NEGOTIATE_PROTOCOL);
    assert_int_equal(gcs_type_kind(0x20100501), GCS_KIND_RESPONSE);
    assert_int_equal(gcs_type_kind(0x30100101), GCS_KIND_NOTIFICATION);
    assert_int_equal(gcs_type_rpc(0x20100a01), GCS_RPC_MODIFY_SETTINGS);
    assert_int_equal(gcs_type_rpc(0x10200101), 0);
    assert_string_equal(gcs_type_name(0x20100601), "WaitForProcess");
    assert_string_equal(gcs_type_name(0x10100b01), "NegotiateProtocol");
    assert_string_equal(gcs_type_name(0x30100101), "ContainerNotification");
    assert_string_equal(gcs_type_name(0x10101001), "Unknown");
    assert_string_equal(gcs_type_name(0x10200101), "ModifyServiceSettings");
}

static void test_header_little_endian(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = frame(0x10100b01, 0x0102030405060708ull, "{}", &len);
    const uint8_t want[] = {0x01, 0x0b, 0x10, 0x10, 0x12, 0x00, 0x00, 0x00, 0x08,
                            0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, '{',  '}'};
    assert_int_equal(len, sizeof(want));
    assert_memory_equal(buf, want, sizeof(want));
    struct gcs_header h;
    gcs_header_decode(buf, &h);
    assert_int_equal(h.type, 0x10100b01);
    assert_int_equal(h.size, 18);
    assert_true(h.id == 0x0102030405060708ull);
    free(buf);
}

static void test_encode_json_compact(void **state)
{
    (void)state;
    json_t *body = json_pack("{s:s,s:i,s:s}", "ContainerId", "c<1>&", "ProcessId", 7, "Z", "a/b");
    uint8_t *buf;
    size_t len;
    assert_int_equal(gcs_frame_encode(GCS_TYPE_WAIT_FOR_PROCESS, 3, body, &buf, &len, NULL), 0);
    const char *want = "{\"ContainerId\":\"c<1>&\",\"ProcessId\":7,\"Z\":\"a/b\"}";
    assert_int_equal(len, 16 + strlen(want));
    assert_memory_equal(buf + 16, want, strlen(want));
    free(buf);
    json_decref(body);
    /* a non-object body is refused */
    json_t *arr = json_array();
    shim_error_t *err = NULL;
    assert_int_equal(gcs_frame_encode(1, 1, arr, &buf, &len, &err), -1);
    assert_non_null(err);
    error_free(err);
    json_decref(arr);
}

/* Feeds `data` in chunks of `chunk` bytes; collects messages. */
static int decode_all(const uint8_t *data, size_t len, size_t chunk, uint32_t max,
                      struct gcs_message *out, int max_out, int *last_rc)
{
    struct gcs_frame_decoder d;
    gcs_frame_decoder_init(&d, max);
    int n = 0;
    *last_rc = 0;
    for (size_t off = 0; off < len; off += chunk) {
        size_t c = len - off < chunk ? len - off : chunk;
        assert_int_equal(gcs_frame_decoder_push(&d, data + off, c, NULL), 0);
        for (;;) {
            struct gcs_message m;
            shim_error_t *err = NULL;
            int rc = gcs_frame_decoder_next(&d, &m, &err);
            if (rc == GCS_DECODE_NEED_MORE)
                break;
            *last_rc = rc;
            if (rc != GCS_DECODE_MESSAGE) {
                assert_non_null(err);
                error_free(err);
                gcs_message_clear(&m);
                if (rc == GCS_DECODE_FATAL)
                    goto out;
                continue;
            }
            assert_null(err);
            assert_true(n < max_out);
            out[n++] = m;
        }
    }
out:
    gcs_frame_decoder_free(&d);
    return n;
}

static void test_split_at_every_byte(void **state)
{
    (void)state;
    size_t l1, l2, l3;
    uint8_t *a = frame(0x10100b01, 0, "{\"ContainerId\":\"x\"}", &l1);
    uint8_t *b = frame(0x20100501, 1, "{\"Result\":0,\"ProcessId\":42}\n", &l2);
    uint8_t *c = frame(0x30100101, 0, "{}", &l3);
    size_t total = l1 + l2 + l3;
    uint8_t *all = malloc(total);
    memcpy(all, a, l1);
    memcpy(all + l1, b, l2);
    memcpy(all + l1 + l2, c, l3);
    for (size_t chunk = 1; chunk <= total; chunk++) {
        struct gcs_message m[3];
        int rc;
        int n = decode_all(all, total, chunk, GCS_HOST_MAX_MESSAGE_SIZE, m, 3, &rc);
        assert_int_equal(n, 3);
        assert_int_equal(m[0].type, 0x10100b01);
        assert_string_equal(json_string_value(gcs_json_get(m[0].body, "ContainerId")), "x");
        assert_int_equal(m[1].type, 0x20100501);
        assert_true(m[1].id == 1);
        assert_int_equal(json_integer_value(gcs_json_get(m[1].body, "ProcessId")), 42);
        assert_int_equal(m[2].type, 0x30100101);
        assert_int_equal(json_object_size(m[2].body), 0);
        for (int i = 0; i < 3; i++)
            gcs_message_clear(&m[i]);
    }
    /* every split point of the concatenation: two pushes */
    for (size_t cut = 0; cut <= total; cut++) {
        struct gcs_frame_decoder d;
        gcs_frame_decoder_init(&d, GCS_HOST_MAX_MESSAGE_SIZE);
        int n = 0;
        for (int part = 0; part < 2; part++) {
            const uint8_t *p = part == 0 ? all : all + cut;
            size_t plen = part == 0 ? cut : total - cut;
            assert_int_equal(gcs_frame_decoder_push(&d, p, plen, NULL), 0);
            struct gcs_message m;
            while (gcs_frame_decoder_next(&d, &m, NULL) == GCS_DECODE_MESSAGE) {
                n++;
                gcs_message_clear(&m);
            }
        }
        assert_int_equal(n, 3);
        assert_int_equal(gcs_frame_decoder_pending(&d), 0);
        gcs_frame_decoder_free(&d);
    }
    free(a);
    free(b);
    free(c);
    free(all);
}

static void test_size_below_header(void **state)
{
    (void)state;
    for (uint32_t size = 0; size < 16; size++) {
        uint8_t hdr[16];
        struct gcs_header h = {.type = 0x20100101, .size = size, .id = 5};
        gcs_header_encode(hdr, &h);
        struct gcs_frame_decoder d;
        gcs_frame_decoder_init(&d, GCS_HOST_MAX_MESSAGE_SIZE);
        gcs_frame_decoder_push(&d, hdr, 16, NULL);
        struct gcs_message m;
        shim_error_t *err = NULL;
        assert_int_equal(gcs_frame_decoder_next(&d, &m, &err), GCS_DECODE_FATAL);
        assert_non_null(err);
        assert_int_equal(err->code, RPC_DATA_LOSS);
        assert_non_null(strstr(err->msg, "below the header size"));
        assert_int_equal(m.size, size);
        error_free(err);
        err = NULL;
        /* stays failed */
        assert_int_equal(gcs_frame_decoder_next(&d, &m, &err), GCS_DECODE_FATAL);
        error_free(err);
        err = NULL;
        assert_int_equal(gcs_frame_decoder_push(&d, "x", 1, &err), -1);
        error_free(err);
        gcs_frame_decoder_free(&d);
    }
}

static void test_oversized_claims(void **state)
{
    (void)state;
    const uint32_t claims[] = {GCS_HOST_MAX_MESSAGE_SIZE + 1, 1u << 30, UINT32_MAX};
    for (size_t i = 0; i < sizeof(claims) / sizeof(claims[0]); i++) {
        uint8_t hdr[16];
        struct gcs_header h = {.type = 0x20100501, .size = claims[i], .id = 9};
        gcs_header_encode(hdr, &h);
        struct gcs_frame_decoder d;
        gcs_frame_decoder_init(&d, GCS_HOST_MAX_MESSAGE_SIZE);
        gcs_frame_decoder_push(&d, hdr, 16, NULL);
        struct gcs_message m;
        shim_error_t *err = NULL;
        assert_int_equal(gcs_frame_decoder_next(&d, &m, &err), GCS_DECODE_FATAL);
        assert_int_equal(err->code, RPC_RESOURCE_EXHAUSTED);
        assert_non_null(strstr(err->msg, "exceeds the limit"));
        /* nothing was allocated for the claim */
        assert_true(d.cap < 1024 * 1024);
        error_free(err);
        gcs_frame_decoder_free(&d);
    }
    /* Exactly at the limit is fine: a 1 GiB guest-side claim with the 64 MiB
     * limit fails, a 1 MiB message under the host limit decodes. */
    size_t body_len = 1u << 20;
    char *body = malloc(body_len + 1);
    memset(body, ' ', body_len);
    memcpy(body, "{\"GuestStacks\":\"", 16);
    memset(body + 16, 'a', body_len - 18);
    memcpy(body + body_len - 2, "\"}", 2);
    body[body_len] = 0;
    uint8_t *buf;
    size_t len;
    assert_int_equal(gcs_frame_encode_raw(0x20100c01, 2, body, body_len, &buf, &len, NULL), 0);
    struct gcs_frame_decoder d;
    gcs_frame_decoder_init(&d, (uint32_t)len);
    gcs_frame_decoder_push(&d, buf, len, NULL);
    struct gcs_message m;
    assert_int_equal(gcs_frame_decoder_next(&d, &m, NULL), GCS_DECODE_MESSAGE);
    assert_int_equal(strlen(json_string_value(gcs_json_get(m.body, "GuestStacks"))), body_len - 18);
    gcs_message_clear(&m);
    gcs_frame_decoder_free(&d);
    /* one byte over a limit */
    gcs_frame_decoder_init(&d, (uint32_t)len - 1);
    gcs_frame_decoder_push(&d, buf, len, NULL);
    shim_error_t *err = NULL;
    assert_int_equal(gcs_frame_decoder_next(&d, &m, &err), GCS_DECODE_FATAL);
    error_free(err);
    gcs_frame_decoder_free(&d);
    free(buf);
    free(body);
}

static void test_truncated_header_and_body(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = frame(0x20100201, 4, "{\"Result\":0}", &len);
    for (size_t cut = 0; cut < len; cut++) {
        struct gcs_frame_decoder d;
        gcs_frame_decoder_init(&d, GCS_HOST_MAX_MESSAGE_SIZE);
        gcs_frame_decoder_push(&d, buf, cut, NULL);
        struct gcs_message m;
        assert_int_equal(gcs_frame_decoder_next(&d, &m, NULL), GCS_DECODE_NEED_MORE);
        assert_int_equal(gcs_frame_decoder_pending(&d), cut);
        gcs_frame_decoder_free(&d);
    }
    free(buf);
}

static void test_bad_bodies(void **state)
{
    (void)state;
    const char *bodies[] = {
        "", "{", "[1,2]", "\"str\"", "42", "{} x", "{\"a\":}", "null", "{\"a\":\"\\ud800\"}"};
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        size_t l1, l2;
        uint8_t *bad = frame(0x10100601, 10 + i, bodies[i], &l1);
        uint8_t *good = frame(0x10100601, 99, "{\"ok\":true}", &l2);
        struct gcs_frame_decoder d;
        gcs_frame_decoder_init(&d, GCS_GUEST_MAX_MESSAGE_SIZE);
        gcs_frame_decoder_push(&d, bad, l1, NULL);
        gcs_frame_decoder_push(&d, good, l2, NULL);
        struct gcs_message m;
        shim_error_t *err = NULL;
        assert_int_equal(gcs_frame_decoder_next(&d, &m, &err), GCS_DECODE_BAD_BODY);
        assert_non_null(err);
        assert_int_equal(err->code, RPC_INVALID_ARGUMENT);
        assert_null(m.body);
        assert_int_equal(m.type, 0x10100601);
        assert_true(m.id == 10 + i);
        error_free(err);
        /* the stream stays in sync */
        assert_int_equal(gcs_frame_decoder_next(&d, &m, NULL), GCS_DECODE_MESSAGE);
        assert_true(m.id == 99);
        gcs_message_clear(&m);
        gcs_frame_decoder_free(&d);
        free(bad);
        free(good);
    }
}

static void test_unicode_escapes(void **state)
{
    (void)state;
    /* Go's encoder escapes <, >, & and U+2028; surrogate pairs must decode. */
    const char *body = "{\"ErrorMessage\":\"\\u003cx\\u003e \\u0026 \\u2028 \\ud83d\\ude00\"}";
    size_t len;
    uint8_t *buf = frame(0x20100101, 1, body, &len);
    struct gcs_message m;
    int rc;
    assert_int_equal(decode_all(buf, len, 3, GCS_HOST_MAX_MESSAGE_SIZE, &m, 1, &rc), 1);
    assert_string_equal(json_string_value(gcs_json_get(m.body, "errormessage")),
                        "<x> & \xe2\x80\xa8 \xf0\x9f\x98\x80");
    gcs_message_clear(&m);
    free(buf);
}

static void test_large_body_encode(void **state)
{
    (void)state;
    /* bodies beyond 64 KiB encode fine (the host must send any size) */
    size_t n = 200000;
    char *s = malloc(n + 1);
    memset(s, 'q', n);
    s[n] = 0;
    json_t *body = json_pack("{s:s}", "GuestStacks", s);
    uint8_t *buf;
    size_t len;
    assert_int_equal(gcs_frame_encode(GCS_TYPE_DUMP_STACKS, 1, body, &buf, &len, NULL), 0);
    struct gcs_header h;
    gcs_header_decode(buf, &h);
    assert_int_equal(h.size, len);
    assert_int_equal(len, 16 + n + strlen("{\"GuestStacks\":\"\"}"));
    free(buf);
    free(s);
    json_decref(body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_type_constants),
        cmocka_unit_test(test_header_little_endian),
        cmocka_unit_test(test_encode_json_compact),
        cmocka_unit_test(test_split_at_every_byte),
        cmocka_unit_test(test_size_below_header),
        cmocka_unit_test(test_oversized_claims),
        cmocka_unit_test(test_truncated_header_and_body),
        cmocka_unit_test(test_bad_bodies),
        cmocka_unit_test(test_unicode_escapes),
        cmocka_unit_test(test_large_body_encode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
