/* SHA-256 against FIPS 180-4 / NIST test vectors and the shim's socket-name example. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/sha256.h"

static void check_hex(const char *input, const char *expected)
{
    char hex[SHA256_HEX_SIZE];
    sha256_hex(input, strlen(input), hex);
    assert_string_equal(hex, expected);
}

static void test_empty(void **state)
{
    (void)state;
    check_hex("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void test_abc(void **state)
{
    (void)state;
    check_hex("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_two_blocks(void **state)
{
    (void)state;
    check_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
              "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

static void test_padding_boundaries(void **state)
{
    (void)state;
    /* 55, 56 and 64 bytes exercise the three padding cases. */
    char buf[65];
    memset(buf, 'a', sizeof(buf));
    char hex[SHA256_HEX_SIZE];
    sha256_hex(buf, 55, hex);
    assert_string_equal(hex, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318");
    sha256_hex(buf, 56, hex);
    assert_string_equal(hex, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a");
    sha256_hex(buf, 64, hex);
    assert_string_equal(hex, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb");
}

static void test_million_a_incremental(void **state)
{
    (void)state;
    struct sha256_ctx ctx;
    uint8_t digest[SHA256_DIGEST_SIZE];
    char chunk[997]; /* odd size so updates straddle block boundaries */
    memset(chunk, 'a', sizeof(chunk));
    sha256_init(&ctx);
    size_t left = 1000000;
    while (left > 0) {
        size_t n = left < sizeof(chunk) ? left : sizeof(chunk);
        sha256_update(&ctx, chunk, n);
        left -= n;
    }
    sha256_final(&ctx, digest);
    static const uint8_t expected[SHA256_DIGEST_SIZE] = {
        0xcd, 0xc7, 0x6e, 0x5c, 0x99, 0x14, 0xfb, 0x92, 0x81, 0xa1, 0xc7,
        0xe2, 0x84, 0xd7, 0x3e, 0x67, 0xf1, 0x80, 0x9a, 0x48, 0xa4, 0x97,
        0x20, 0x0e, 0x04, 0x6d, 0x39, 0xcc, 0xc7, 0x11, 0x2c, 0xd0};
    assert_memory_equal(digest, expected, sizeof(expected));
}

static void test_shim_socket_example(void **state)
{
    (void)state;
    check_hex("/run/containerd/containerd.sock/default/t1",
              "df6a0c5cd2e9a1a16d9a3f2447365d9fc6021bc1d3d9a4caa2f5b2c4f773758f");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_abc),
        cmocka_unit_test(test_two_blocks),
        cmocka_unit_test(test_padding_boundaries),
        cmocka_unit_test(test_million_a_incremental),
        cmocka_unit_test(test_shim_socket_example),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
