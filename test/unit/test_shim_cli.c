/* shim/cli: Go flag-style parsing of the shim's command line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "shim/cli.h"

#define ARGC(a) ((int)(sizeof(a) / sizeof((a)[0])) - 1)

static void test_containerd_start_argv(void **state)
{
    (void)state;
    char *argv[] = {"shim",
                    "-namespace",
                    "k8s.io",
                    "-address",
                    "/run/containerd/containerd.sock",
                    "-publish-binary",
                    "/usr/bin/containerd",
                    "-id",
                    "t6",
                    "-debug",
                    "start",
                    NULL};
    struct shim_cli_args a;
    shim_error_t *err = NULL;
    assert_int_equal(shim_cli_parse(ARGC(argv), argv, &a, &err), 0);
    assert_string_equal(a.namespace_name, "k8s.io");
    assert_string_equal(a.address, "/run/containerd/containerd.sock");
    assert_string_equal(a.publish_binary, "/usr/bin/containerd");
    assert_string_equal(a.id, "t6");
    assert_string_equal(a.bundle, "");
    assert_true(a.debug);
    assert_int_equal(a.action, SHIM_ACTION_START);
}

static void test_all_spellings(void **state)
{
    (void)state;
    char *argv[] = {"shim",          "--namespace", "ns", "-address=/a",
                    "--id=x",        "-bundle",     "/b", "--socket=unix:///s",
                    "--debug=false", "delete",      NULL};
    struct shim_cli_args a;
    assert_int_equal(shim_cli_parse(ARGC(argv), argv, &a, NULL), 0);
    assert_string_equal(a.namespace_name, "ns");
    assert_string_equal(a.address, "/a");
    assert_string_equal(a.id, "x");
    assert_string_equal(a.bundle, "/b");
    assert_string_equal(a.socket, "unix:///s");
    assert_false(a.debug);
    assert_int_equal(a.action, SHIM_ACTION_DELETE);
}

static void test_serve_without_action(void **state)
{
    (void)state;
    char *argv[] = {"shim", "-namespace", "ns", "-id", "x", "-address", "", NULL};
    struct shim_cli_args a;
    assert_int_equal(shim_cli_parse(ARGC(argv), argv, &a, NULL), 0);
    assert_int_equal(a.action, SHIM_ACTION_SERVE);
    assert_string_equal(a.address, "");
    char *empty[] = {"shim", NULL};
    assert_int_equal(shim_cli_parse(1, empty, &a, NULL), 0);
    assert_int_equal(a.action, SHIM_ACTION_SERVE);
    assert_string_equal(a.id, "");
}

static void test_value_may_look_like_flag(void **state)
{
    (void)state;
    /* Go takes the next word as the value even when it starts with '-'. */
    char *argv[] = {"shim", "-id", "-weird", "start", NULL};
    struct shim_cli_args a;
    assert_int_equal(shim_cli_parse(ARGC(argv), argv, &a, NULL), 0);
    assert_string_equal(a.id, "-weird");
}

static void expect_error(char **argv, int argc, const char *needle)
{
    struct shim_cli_args a;
    shim_error_t *err = NULL;
    assert_int_equal(shim_cli_parse(argc, argv, &a, &err), -1);
    assert_non_null(err);
    assert_int_equal(err->code, RPC_INVALID_ARGUMENT);
    if (strstr(err->msg, needle) == NULL)
        fail_msg("error \"%s\" does not mention \"%s\"", err->msg, needle);
    error_free(err);
}

static void test_errors(void **state)
{
    (void)state;
    char *unknown[] = {"shim", "-bogus", "1", "start", NULL};
    expect_error(unknown, ARGC(unknown), "flag provided but not defined: -bogus");
    char *missing[] = {"shim", "-id", NULL};
    expect_error(missing, ARGC(missing), "flag needs an argument: -id");
    char *action[] = {"shim", "-id", "x", "stop", NULL};
    expect_error(action, ARGC(action), "unknown action \"stop\"");
    char *extra[] = {"shim", "start", "now", NULL};
    expect_error(extra, ARGC(extra), "unexpected argument \"now\"");
    char *flag_after[] = {"shim", "start", "-id", "x", NULL};
    expect_error(flag_after, ARGC(flag_after), "unexpected argument \"-id\"");
    char *bad_bool[] = {"shim", "-debug=maybe", NULL};
    expect_error(bad_bool, ARGC(bad_bool), "invalid boolean value");
    char *dashes[] = {"shim", "---id", "x", NULL};
    expect_error(dashes, ARGC(dashes), "bad flag syntax");
    char *noname[] = {"shim", "-=x", NULL};
    expect_error(noname, ARGC(noname), "bad flag syntax");
}

static void test_double_dash_ends_flags(void **state)
{
    (void)state;
    char *argv[] = {"shim", "-id", "x", "--", "delete", NULL};
    struct shim_cli_args a;
    assert_int_equal(shim_cli_parse(ARGC(argv), argv, &a, NULL), 0);
    assert_int_equal(a.action, SHIM_ACTION_DELETE);
    assert_string_equal(shim_action_name(a.action), "delete");
    assert_non_null(strstr(shim_cli_usage(), "-namespace"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_containerd_start_argv),
        cmocka_unit_test(test_all_spellings),
        cmocka_unit_test(test_serve_without_action),
        cmocka_unit_test(test_value_may_look_like_flag),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_double_dash_ends_flags),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
