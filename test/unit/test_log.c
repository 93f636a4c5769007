/* common/log.c: logrus text format (as containerd's TextFormatter with full
 * RFC3339Nano timestamps writes it), levels and JSON output. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "common/log.h"

/* 2023-11-14T22:13:20.5Z, exactly representable as a double. */
#define T0 1700000000.5
#define TS "time=\"2023-11-14T22:13:20.500000000Z\""

static char buf[8192];

static const char *text(const char *msg, const char *const *fields, int nfields)
{
    log_format_record(buf, sizeof(buf), LOG_FORMAT_TEXT, T0, LOG_LEVEL_INFO, msg, fields, nfields);
    return buf;
}

/* The value part of one field "k=<value>" as formatted. */
static const char *text_value(const char *value)
{
    const char *fields[] = {"k", value};
    text("m", fields, 2);
    char *p = strstr(buf, " k=");
    assert_non_null(p);
    p += 3;
    p[strlen(p) - 1] = '\0'; /* drop the newline */
    return p;
}

static void test_text_record_layout(void **state)
{
    (void)state;
    const char *fields[] = {"id", "t1", "pid", "42"};
    int len = log_format_record(buf, sizeof(buf), LOG_FORMAT_TEXT, T0, LOG_LEVEL_INFO, "started",
                                fields, 4);
    assert_string_equal(buf, TS " level=info msg=started id=t1 pid=42\n");
    assert_int_equal(len, (int)strlen(buf));
}

static void test_timestamp_utc_nanoseconds(void **state)
{
    (void)state;
    log_format_record(buf, sizeof(buf), LOG_FORMAT_TEXT, 0.0, LOG_LEVEL_INFO, "x", NULL, 0);
    assert_true(strncmp(buf, "time=\"1970-01-01T00:00:00.000000000Z\" ", 38) == 0);
    log_format_record(buf, sizeof(buf), LOG_FORMAT_TEXT, 951782400.25, LOG_LEVEL_INFO, "x", NULL,
                      0);
    assert_true(strncmp(buf, "time=\"2000-02-29T00:00:00.250000000Z\" ", 38) == 0);
}

/* logrus leaves a value bare only if every byte is in [A-Za-z0-9-._/@^+]. */
static void test_plain_values_unquoted(void **state)
{
    (void)state;
    assert_string_equal(text_value("abcXYZ019"), "abcXYZ019");
    assert_string_equal(text_value("a-b.c_d/e@f^g+h"), "a-b.c_d/e@f^g+h");
    assert_string_equal(text_value("/run/containerd/s/abc"), "/run/containerd/s/abc");
}

static void test_other_values_quoted(void **state)
{
    (void)state;
    assert_string_equal(text_value("two words"), "\"two words\"");
    assert_string_equal(text_value("a=b"), "\"a=b\"");
    assert_string_equal(text_value("unix:///x"), "\"unix:///x\"");
    assert_string_equal(text_value("x,y"), "\"x,y\"");
    assert_string_equal(text_value("say \"hi\""), "\"say \\\"hi\\\"\"");
    assert_string_equal(text_value("back\\slash"), "\"back\\\\slash\"");
    assert_string_equal(text_value("line1\nline2"), "\"line1\\nline2\"");
    assert_string_equal(text_value("tab\there"), "\"tab\\there\"");
    assert_string_equal(text_value("cr\r"), "\"cr\\r\"");
    /* Non-ASCII text is quoted but kept as UTF-8 (Go %q keeps printable runes). */
    assert_string_equal(text_value("caf\xc3\xa9"), "\"caf\xc3\xa9\"");
}

static void test_message_quoting(void **state)
{
    (void)state;
    text("shim started", NULL, 0);
    assert_string_equal(buf, TS " level=info msg=\"shim started\"\n");
    text("simple", NULL, 0);
    assert_string_equal(buf, TS " level=info msg=simple\n");
}

static void test_level_names_in_records(void **state)
{
    (void)state;
    const char *expect[] = {"panic", "fatal", "error", "warning", "info", "debug", "trace"};
    for (int l = LOG_LEVEL_PANIC; l <= LOG_LEVEL_TRACE; l++) {
        log_format_record(buf, sizeof(buf), LOG_FORMAT_TEXT, T0, (enum log_level)l, "m", NULL, 0);
        char want[64];
        snprintf(want, sizeof(want), " level=%s msg=m\n", expect[l]);
        assert_non_null(strstr(buf, want));
    }
}

static void test_level_parse_and_name(void **state)
{
    (void)state;
    assert_int_equal(log_level_parse("debug"), LOG_LEVEL_DEBUG);
    assert_int_equal(log_level_parse("info"), LOG_LEVEL_INFO);
    assert_int_equal(log_level_parse("warn"), LOG_LEVEL_WARN);
    assert_int_equal(log_level_parse("warning"), LOG_LEVEL_WARN);
    assert_int_equal(log_level_parse("ERROR"), LOG_LEVEL_ERROR);
    assert_int_equal(log_level_parse("trace"), LOG_LEVEL_TRACE);
    assert_int_equal(log_level_parse("panic"), LOG_LEVEL_PANIC);
    assert_int_equal(log_level_parse("fatal"), LOG_LEVEL_FATAL);
    assert_int_equal(log_level_parse("verbose"), -1);
    assert_int_equal(log_level_parse(""), -1);
    assert_int_equal(log_level_parse(NULL), -1);
    assert_string_equal(log_level_name(LOG_LEVEL_WARN), "warning");
    assert_string_equal(log_level_name(LOG_LEVEL_DEBUG), "debug");
    assert_string_equal(log_level_name((enum log_level)99), "unknown");
}

static void test_json_record(void **state)
{
    (void)state;
    const char *fields[] = {"id", "t1", "note", "a \"quoted\"\nline\\"};
    int len = log_format_record(buf, sizeof(buf), LOG_FORMAT_JSON, T0, LOG_LEVEL_WARN,
                                "it <failed>", fields, 4);
    assert_int_equal(len, (int)strlen(buf));
    assert_int_equal(buf[len - 1], '\n');
    json_error_t jerr;
    json_t *obj = json_loads(buf, 0, &jerr);
    assert_non_null(obj);
    assert_string_equal(json_string_value(json_object_get(obj, "level")), "warning");
    assert_string_equal(json_string_value(json_object_get(obj, "msg")), "it <failed>");
    assert_string_equal(json_string_value(json_object_get(obj, "time")),
                        "2023-11-14T22:13:20.500000000Z");
    assert_string_equal(json_string_value(json_object_get(obj, "id")), "t1");
    assert_string_equal(json_string_value(json_object_get(obj, "note")), "a \"quoted\"\nline\\");
    assert_int_equal(json_object_size(obj), 5);
    json_decref(obj);
}

static void test_json_control_characters(void **state)
{
    (void)state;
    const char *fields[] = {"k", "\x01\x1f"};
    log_format_record(buf, sizeof(buf), LOG_FORMAT_JSON, T0, LOG_LEVEL_INFO, "m", fields, 2);
    json_t *obj = json_loads(buf, 0, NULL);
    assert_non_null(obj);
    assert_string_equal(json_string_value(json_object_get(obj, "k")), "\x01\x1f");
    json_decref(obj);
}

/* A record that does not fit is cut but stays one terminated line. */
static void test_truncation_keeps_a_line(void **state)
{
    (void)state;
    char small[40];
    int len = log_format_record(small, sizeof(small), LOG_FORMAT_TEXT, T0, LOG_LEVEL_INFO,
                                "a rather long message that cannot fit", NULL, 0);
    assert_int_equal(len, (int)sizeof(small) - 1);
    assert_int_equal(small[len - 1], '\n');
    assert_int_equal(small[len], '\0');
    assert_ptr_equal(strchr(small, '\n'), small + len - 1);
}

static void test_output_and_level_filter(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    log_configure(p[1], LOG_LEVEL_INFO, LOG_FORMAT_TEXT);
    assert_true(log_enabled(LOG_LEVEL_ERROR));
    assert_true(log_enabled(LOG_LEVEL_INFO));
    assert_false(log_enabled(LOG_LEVEL_DEBUG));
    log_fields(LOG_LEVEL_INFO, "hello world", "id", "c1", "path", "/a b", NULL);
    log_debug("filtered %d", 1);
    log_info("formatted %d", 7);
    log_configure(2, LOG_LEVEL_INFO, LOG_FORMAT_TEXT);
    close(p[1]);
    char out[1024] = "";
    ssize_t n = read(p[0], out, sizeof(out) - 1);
    close(p[0]);
    assert_true(n > 0);
    out[n] = '\0';
    assert_non_null(strstr(out, " level=info msg=\"hello world\" id=c1 path=\"/a b\"\n"));
    assert_null(strstr(out, "filtered"));
    assert_non_null(strstr(out, " level=info msg=\"formatted 7\"\n"));
    char *second = strchr(out, '\n');
    assert_non_null(second);
    assert_true(strncmp(second + 1, "time=\"", 6) == 0);
}

/* Details of logrus' default TextFormatter: empty values are written bare
 * (`k=`, QuoteEmptyFields is off), control characters use Go %q escapes
 * (\x01, \a, \x7f) and fields are sorted by key. */
static void test_strict_logrus_details(void **state)
{
    (void)state;
    assert_string_equal(text_value(""), "");
    assert_string_equal(text_value("\x01"), "\"\\x01\"");
    assert_string_equal(text_value("\a"), "\"\\a\"");
    assert_string_equal(text_value("\x7f"), "\"\\x7f\"");
    const char *fields[] = {"pid", "1", "id", "t1"};
    text("m", fields, 4);
    assert_string_equal(buf, TS " level=info msg=m id=t1 pid=1\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_record_layout),
        cmocka_unit_test(test_timestamp_utc_nanoseconds),
        cmocka_unit_test(test_plain_values_unquoted),
        cmocka_unit_test(test_other_values_quoted),
        cmocka_unit_test(test_message_quoting),
        cmocka_unit_test(test_level_names_in_records),
        cmocka_unit_test(test_level_parse_and_name),
        cmocka_unit_test(test_json_record),
        cmocka_unit_test(test_json_control_characters),
        cmocka_unit_test(test_truncation_keeps_a_line),
        cmocka_unit_test(test_output_and_level_filter),
        cmocka_unit_test(test_strict_logrus_details),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
