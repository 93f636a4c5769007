/* Guest agent: exit-code mapping, command-line splitting, ProcessParameters
 * to argv/env, and the OCI process document for crun exec. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "gcs/bridge_msg.h"
#include "gcs/guest/exitcode.h"
#include "gcs/guest/procparams.h"

/* Wait statuses built the way the kernel encodes them. */
#define EXITED(code) (((code)&0xff) << 8)
#define SIGNALED(sig) ((sig)&0x7f)

static void test_exit_codes(void **state)
{
    (void)state;
    assert_true(WIFEXITED(EXITED(7)));
    assert_int_equal(gcs_exit_code_container(EXITED(0)), 0);
    assert_int_equal(gcs_exit_code_container(EXITED(7)), 7);
    assert_int_equal(gcs_exit_code_container(EXITED(255)), 255);
    assert_int_equal(gcs_exit_code_container(SIGNALED(9)), 137);
    assert_int_equal(gcs_exit_code_container(SIGNALED(15)), 143);
    assert_int_equal(gcs_exit_code_container(SIGNALED(9) | 0x80), 137); /* core dumped */
    assert_int_equal(gcs_exit_code_uvm(EXITED(3)), 3);
    assert_int_equal(gcs_exit_code_uvm(SIGNALED(9)), 4294967295u);
    assert_int_equal(gcs_wait_status_from_uv(5, 0), EXITED(5));
    assert_int_equal(gcs_wait_status_from_uv(0, 15), SIGNALED(15));
    assert_int_equal(gcs_exit_code_container(gcs_wait_status_from_uv(0, 2)), 130);
}

static void expect_split(const char *line, const char *const *want)
{
    char **v = NULL;
    assert_int_equal(gcs_split_command_line(line, &v, NULL), 0);
    size_t n = 0;
    while (want[n])
        n++;
    assert_int_equal(gcs_strv_len(v), n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(v[i], want[i]);
    gcs_strv_free(v);
}

static void test_split(void **state)
{
    (void)state;
    expect_split("/bin/sh -c 'echo hi; exit 3'",
                 (const char *const[]){"/bin/sh", "-c", "echo hi; exit 3", NULL});
    expect_split("  a\tb  ", (const char *const[]){"a", "b", NULL});
    expect_split("x\"y z\"w", (const char *const[]){"xy zw", NULL});
    expect_split("\"a \\\"q\\\" \\n\"", (const char *const[]){"a \"q\" \\n", NULL});
    expect_split("a\\ b c", (const char *const[]){"a b", "c", NULL});
    expect_split("''", (const char *const[]){"", NULL});
    expect_split("", (const char *const[]){NULL});
    char **v = NULL;
    shim_error_t *err = NULL;
    assert_int_equal(gcs_split_command_line("echo 'open", &v, &err), -1);
    assert_non_null(strstr(err->msg, "unterminated"));
    error_free(err);
    err = NULL;
    assert_int_equal(gcs_split_command_line("echo \"open", &v, &err), -1);
    error_free(err);
}

static int params_from(const char *json, struct gcs_process_parameters *p, json_t **doc)
{
    *doc = json_loads(json, 0, NULL);
    assert_non_null(*doc);
    return gcs_process_parameters_parse(*doc, p, NULL);
}

static void test_command_from_params(void **state)
{
    (void)state;
    struct gcs_process_parameters p;
    json_t *doc;
    /* Keys are case-insensitive; CommandArgs wins over CommandLine. */
    assert_int_equal(params_from("{\"commandargs\":[\"/bin/echo\",\"a b\"],\"CommandLine\":\"x y\","
                                 "\"Environment\":{\"PATH\":\"/bin\",\"A\":\"1=2\"},"
                                 "\"WorkingDirectory\":\"/tmp\",\"Unknown\":5}",
                                 &p, &doc),
                     0);
    struct gcs_guest_command c;
    assert_int_equal(gcs_guest_command_from_params(&p, &c, NULL), 0);
    assert_int_equal(gcs_strv_len(c.argv), 2);
    assert_string_equal(c.argv[0], "/bin/echo");
    assert_string_equal(c.argv[1], "a b");
    assert_int_equal(gcs_strv_len(c.env), 2);
    assert_string_equal(c.env[0], "A=1=2"); /* sorted */
    assert_string_equal(c.env[1], "PATH=/bin");
    assert_string_equal(c.working_dir, "/tmp");
    gcs_guest_command_free(&c);
    json_decref(doc);

    assert_int_equal(params_from("{\"CommandLine\":\"/bin/sh -c 'exit 7'\"}", &p, &doc), 0);
    assert_int_equal(gcs_guest_command_from_params(&p, &c, NULL), 0);
    assert_int_equal(gcs_strv_len(c.argv), 3);
    assert_string_equal(c.argv[2], "exit 7");
    assert_int_equal(gcs_strv_len(c.env), 0);
    assert_null(c.working_dir);
    gcs_guest_command_free(&c);
    json_decref(doc);
}

static void expect_command_error(const char *json, const char *needle)
{
    struct gcs_process_parameters p;
    json_t *doc;
    shim_error_t *err = NULL;
    struct gcs_guest_command c;
    if (params_from(json, &p, &doc) == 0) {
        assert_int_equal(gcs_guest_command_from_params(&p, &c, &err), -1);
        assert_non_null(strstr(err->msg, needle));
        assert_null(c.argv);
        error_free(err);
    }
    json_decref(doc);
}

static void test_command_errors(void **state)
{
    (void)state;
    expect_command_error("{}", "required");
    expect_command_error("{\"CommandLine\":\"   \"}", "required");
    expect_command_error("{\"CommandArgs\":[]}", "required");
    expect_command_error("{\"CommandArgs\":[\"a\",3]}", "CommandArgs[1]");
    expect_command_error("{\"CommandArgs\":[\"a\"],\"Environment\":{\"X\":1}}", "Environment[X]");
    expect_command_error("{\"CommandLine\":\"'x\"}", "unterminated");
}

static void test_oci_process(void **state)
{
    (void)state;
    json_t *in =
        json_loads("{\"args\":[\"/bin/ls\"],\"terminal\":true,\"env\":[\"A=1\"]}", 0, NULL);
    json_t *out = NULL;
    assert_int_equal(gcs_guest_oci_process(in, &out, NULL), 0);
    assert_string_equal(json_string_value(json_object_get(out, "cwd")), "/");
    assert_true(gcs_guest_oci_process_terminal(out));
    assert_null(json_object_get(in, "cwd")); /* the input is untouched */
    json_decref(out);
    json_object_set_new(in, "cwd", json_string("/work"));
    assert_int_equal(gcs_guest_oci_process(in, &out, NULL), 0);
    assert_string_equal(json_string_value(json_object_get(out, "cwd")), "/work");
    json_decref(out);
    json_decref(in);

    const char *bad[] = {"{}", "{\"args\":[]}", "{\"args\":\"ls\"}", "{\"args\":[1]}", "[]"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *b = json_loads(bad[i], JSON_DECODE_ANY, NULL);
        shim_error_t *err = NULL;
        out = NULL;
        assert_int_equal(gcs_guest_oci_process(b, &out, &err), -1);
        assert_null(out);
        assert_int_equal(err->code, RPC_INVALID_ARGUMENT);
        error_free(err);
        json_decref(b);
    }
    assert_false(gcs_guest_oci_process_terminal(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exit_codes),          cmocka_unit_test(test_split),
        cmocka_unit_test(test_command_from_params), cmocka_unit_test(test_command_errors),
        cmocka_unit_test(test_oci_process),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
