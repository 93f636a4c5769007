/* common/strbuf: appends, growth across many reallocations, formatted
 * appends longer than any first guess, detach/release, sticky failure. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/strbuf.h"

static void test_empty_is_empty_string(void **state)
{
    (void)state;
    struct strbuf sb = STRBUF_INIT;
    assert_string_equal(strbuf_str(&sb), "");
    char *s = strbuf_detach(&sb);
    assert_non_null(s);
    assert_string_equal(s, "");
    free(s);
    assert_null(sb.buf);
    assert_int_equal(sb.len, 0);
}

static void test_appends_concatenate(void **state)
{
    (void)state;
    struct strbuf sb = STRBUF_INIT;
    strbuf_adds(&sb, "console=");
    strbuf_addn(&sb, "hvc0garbage", 4);
    strbuf_addf(&sb, " n=%d %s %zu", -7, "x", (size_t)42);
    assert_string_equal(strbuf_str(&sb), "console=hvc0 n=-7 x 42");
    assert_int_equal(sb.len, strlen("console=hvc0 n=-7 x 42"));
    char *s = strbuf_detach(&sb);
    assert_string_equal(s, "console=hvc0 n=-7 x 42");
    free(s);
}

static void test_long_appends_grow(void **state)
{
    (void)state;
    struct strbuf sb = STRBUF_INIT;
    char chunk[1000];
    memset(chunk, 'a', sizeof(chunk));
    for (int i = 0; i < 1000; i++)
        strbuf_addn(&sb, chunk, sizeof(chunk));
    assert_int_equal(sb.len, 1000 * 1000);
    assert_false(sb.failed);
    const char *s = strbuf_str(&sb);
    assert_int_equal(strlen(s), 1000 * 1000);
    assert_true(s[0] == 'a' && s[999999] == 'a');
    strbuf_release(&sb);
    assert_null(sb.buf);
    assert_int_equal(sb.len, 0);
}

static void test_formatted_append_longer_than_capacity(void **state)
{
    (void)state;
    struct strbuf sb = STRBUF_INIT;
    strbuf_adds(&sb, "x");
    char *big = malloc(70000);
    assert_non_null(big);
    memset(big, 'b', 69999);
    big[69999] = '\0';
    strbuf_addf(&sb, "<%s>", big);
    assert_int_equal(sb.len, 1 + 70001);
    assert_int_equal(strbuf_str(&sb)[70001], '>');
    free(big);
    strbuf_release(&sb);
}

static void test_failure_is_sticky(void **state)
{
    (void)state;
    struct strbuf sb = STRBUF_INIT;
    strbuf_adds(&sb, "partial");
    sb.failed = true; /* as after an allocation failure */
    strbuf_adds(&sb, " more");
    strbuf_addf(&sb, "%d", 1);
    assert_string_equal(strbuf_str(&sb), "partial");
    assert_null(strbuf_detach(&sb));
    assert_null(sb.buf);
    assert_false(sb.failed);
    strbuf_adds(&sb, "fresh");
    char *s = strbuf_detach(&sb);
    assert_string_equal(s, "fresh");
    free(s);
}

static void test_impossible_size_fails_cleanly(void **state)
{
    (void)state;
    struct strbuf sb = STRBUF_INIT;
    strbuf_adds(&sb, "ab");
    strbuf_addn(&sb, "", SIZE_MAX - 2); /* never read: refused before copying */
    assert_true(sb.failed);
    assert_null(strbuf_detach(&sb));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_is_empty_string),
        cmocka_unit_test(test_appends_concatenate),
        cmocka_unit_test(test_long_appends_grow),
        cmocka_unit_test(test_formatted_append_longer_than_capacity),
        cmocka_unit_test(test_failure_is_sticky),
        cmocka_unit_test(test_impossible_size_fails_cleanly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
