/* Guest agent flag parsing: Go flag syntax and hcsshim GCS compatibility. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gcs/guest/flags.h"

static int parse(struct gcs_agent_config *cfg, char **argv, shim_error_t **err)
{
    int argc = 0;
    while (argv[argc])
        argc++;
    gcs_agent_config_defaults(cfg);
    return gcs_agent_flags_parse(argc, argv, cfg, err);
}

static void test_defaults(void **state)
{
    (void)state;
    struct gcs_agent_config cfg;
    char *argv[] = {"gcs", NULL};
    assert_int_equal(parse(&cfg, argv, NULL), 0);
    assert_false(cfg.v4);
    assert_false(cfg.use_inouterr);
    assert_int_equal(cfg.log_level, LOG_LEVEL_INFO);
    assert_int_equal(cfg.log_format, LOG_FORMAT_TEXT);
    assert_null(cfg.log_file);
    assert_int_equal(cfg.transport, GCS_AGENT_TRANSPORT_VSOCK);
    assert_string_equal(cfg.state_dir, "/run/gcs");
    assert_string_equal(cfg.runtime, "crun");
    assert_string_equal(cfg.cgroup_manager, "auto");
    assert_int_equal(cfg.first_arg, 1);
}

/* The exact command line hcsshim boots the GCS with (spec §1.2). */
static void test_hcsshim_command_line(void **state)
{
    (void)state;
    struct gcs_agent_config cfg;
    char *argv[] = {"gcs",
                    "-v4",
                    "-log-format",
                    "json",
                    "-loglevel",
                    "debug",
                    "-disable-time-sync",
                    "-scrub-logs=false",
                    "-core-dump-location",
                    "/tmp/core",
                    "-root-mem-reserve-bytes",
                    "78643200",
                    "-gcs-mem-limit-bytes=52428800",
                    "-initial-policy-stance",
                    "allow",
                    "-kmsgLogLevel",
                    "4",
                    NULL};
    assert_int_equal(parse(&cfg, argv, NULL), 0);
    assert_true(cfg.v4);
    assert_int_equal(cfg.log_format, LOG_FORMAT_JSON);
    assert_int_equal(cfg.log_level, LOG_LEVEL_DEBUG);
    assert_int_equal(cfg.first_arg, 17);
}

static void test_syntax_forms(void **state)
{
    (void)state;
    struct gcs_agent_config cfg;
    char *argv[] = {"gcs",
                    "--v4",
                    "-use-inouterr=true",
                    "--state-dir",
                    "/tmp/s",
                    "-runtime=/usr/bin/runc",
                    "--logfile=/tmp/l",
                    "-loglevel=warning",
                    NULL};
    assert_int_equal(parse(&cfg, argv, NULL), 0);
    assert_true(cfg.v4);
    assert_true(cfg.use_inouterr);
    assert_string_equal(cfg.state_dir, "/tmp/s");
    assert_string_equal(cfg.runtime, "/usr/bin/runc");
    assert_string_equal(cfg.log_file, "/tmp/l");
    assert_int_equal(cfg.log_level, LOG_LEVEL_WARN);

    char *argv2[] = {"gcs", "-v4=false", "-use-inouterr=0", NULL};
    assert_int_equal(parse(&cfg, argv2, NULL), 0);
    assert_false(cfg.v4);
    assert_false(cfg.use_inouterr);
}

static void test_transport(void **state)
{
    (void)state;
    struct gcs_agent_config cfg;
    char *a1[] = {"gcs", "-transport", "unix:/tmp/ports", NULL};
    assert_int_equal(parse(&cfg, a1, NULL), 0);
    assert_int_equal(cfg.transport, GCS_AGENT_TRANSPORT_UNIX);
    assert_string_equal(cfg.port_dir, "/tmp/ports");

    char *a2[] = {"gcs", "-port-dir", "/tmp/p2", NULL};
    assert_int_equal(parse(&cfg, a2, NULL), 0);
    assert_int_equal(cfg.transport, GCS_AGENT_TRANSPORT_UNIX);
    assert_string_equal(cfg.port_dir, "/tmp/p2");

    char *a3[] = {"gcs", "-transport=unix", "-port-dir=/tmp/p3", NULL};
    assert_int_equal(parse(&cfg, a3, NULL), 0);
    assert_int_equal(cfg.transport, GCS_AGENT_TRANSPORT_UNIX);

    shim_error_t *err = NULL;
    char *a4[] = {"gcs", "-transport", "unix", NULL};
    assert_int_equal(parse(&cfg, a4, &err), -1);
    assert_non_null(strstr(err->msg, "-port-dir"));
    error_free(err);
    err = NULL;

    char *a5[] = {"gcs", "-transport", "tcp", NULL};
    assert_int_equal(parse(&cfg, a5, &err), -1);
    assert_int_equal(err->code, RPC_INVALID_ARGUMENT);
    error_free(err);
}

static void expect_error(char **argv, const char *needle)
{
    struct gcs_agent_config cfg;
    shim_error_t *err = NULL;
    assert_int_equal(parse(&cfg, argv, &err), -1);
    assert_non_null(err);
    assert_non_null(strstr(err->msg, needle));
    error_free(err);
}

static void test_errors(void **state)
{
    (void)state;
    char *a1[] = {"gcs", "-nope", NULL};
    expect_error(a1, "not defined: -nope");
    char *a2[] = {"gcs", "-loglevel", NULL};
    expect_error(a2, "needs an argument");
    char *a3[] = {"gcs", "-loglevel", "loud", NULL};
    expect_error(a3, "invalid value");
    char *a4[] = {"gcs", "-log-format", "xml", NULL};
    expect_error(a4, "text or json");
    char *a5[] = {"gcs", "-v4=maybe", NULL};
    expect_error(a5, "invalid boolean");
    char *a6[] = {"gcs", "---v4", NULL};
    expect_error(a6, "bad flag syntax");
    char *a7[] = {"gcs", "-cgroup-manager", "magic", NULL};
    expect_error(a7, "cgroup");
    char *a8[] = {"gcs", "-state-dir=", NULL};
    expect_error(a8, "directory");
}

static void test_stops_at_non_flag(void **state)
{
    (void)state;
    struct gcs_agent_config cfg;
    char *a1[] = {"gcs", "-v4", "extra", "-use-inouterr", NULL};
    assert_int_equal(parse(&cfg, a1, NULL), 0);
    assert_true(cfg.v4);
    assert_false(cfg.use_inouterr);
    assert_int_equal(cfg.first_arg, 2);

    char *a2[] = {"gcs", "--", "-v4", NULL};
    assert_int_equal(parse(&cfg, a2, NULL), 0);
    assert_false(cfg.v4);
    assert_int_equal(cfg.first_arg, 2);

    char *a3[] = {"gcs", "-h", NULL};
    assert_int_equal(parse(&cfg, a3, NULL), 0);
    assert_true(cfg.help);
    assert_non_null(strstr(gcs_agent_usage(), "-use-inouterr"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),     cmocka_unit_test(test_hcsshim_command_line),
        cmocka_unit_test(test_syntax_forms), cmocka_unit_test(test_transport),
        cmocka_unit_test(test_errors),       cmocka_unit_test(test_stops_at_non_flag),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
