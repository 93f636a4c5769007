/* Unit tests for common/strbuf. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
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
}

static void test_appends_and_formats(void **state)
{
    (void)state;
    struct strbuf sb = STRBUF_INIT;
    strbuf_adds(&sb, "id=");
    strbuf_addn(&sb, "abcdef", 3);
    strbuf_addf(&sb, " n=%d %s", 42, "x");
    assert_string_equal(strbuf_str(&sb), "id=abc n=42 x");
    assert_int_equal(sb.len, strlen("id=abc n=42 x"));
    strbuf_release(&sb);
    assert_null(sb.buf);
    assert_int_equal(sb.len, 0);
}

static void test_grows_past_many_reallocations(void **state)
{
    (void)state;
    struct strbuf sb = STRBUF_INIT;
    for (int i = 0; i < 100000; i++)
        strbuf_addf(&sb, "%d,", i % 10);
    assert_int_equal(sb.len, 200000);
    const char *s = strbuf_str(&sb);
    assert_int_equal(s[0], '0');
    assert_int_equal(s[199998], '9');
    assert_int_equal(s[200000], '\0');
    char *owned = strbuf_detach(&sb);
    assert_non_null(owned);
    assert_null(sb.buf);
    free(owned);
}

static void test_embedded_data_is_kept_exactly(void **state)
{
    (void)state;
    struct strbuf sb = STRBUF_INIT;
    char big[5000];
    memset(big, 'q', sizeof(big));
    strbuf_addn(&sb, big, sizeof(big));
    strbuf_addf(&sb, "%s", "");
    assert_int_equal(sb.len, sizeof(big));
    assert_memory_equal(strbuf_str(&sb), big, sizeof(big));
    strbuf_release(&sb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_is_empty_string),
        cmocka_unit_test(test_appends_and_formats),
        cmocka_unit_test(test_grows_past_many_reallocations),
        cmocka_unit_test(test_embedded_data_is_kept_exactly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
