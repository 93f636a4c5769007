/* shim/socket + shim/start: socket naming, binding/reuse, grouping and the
 * `delete` action (the `start` process itself is covered by
 * test/integration/shim_cli.sh). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "containerd/task/v2/shim.pb-c.h"
#include "shim/socket.h"
#include "shim/start.h"

static void test_path_clean(void **state)
{
    (void)state;
    const char *cases[][2] = {
        {"", "."},
        {"/", "/"},
        {"a/b", "a/b"},
        {"//a//b//", "/a/b"},
        {"/a/./b/../c", "/a/c"},
        {"/../a", "/a"},
        {"a/../..", ".."},
        {"../../x/..", "../.."},
        {"/run/containerd/containerd.sock/default/t1",
         "/run/containerd/containerd.sock/default/t1"},
        {"a/b/c/../../d", "a/d"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *got = shim_path_clean(cases[i][0]);
        if (strcmp(got, cases[i][1]) != 0)
            fail_msg("clean(\"%s\") = \"%s\", want \"%s\"", cases[i][0], got, cases[i][1]);
        free(got);
    }
}

static void test_spec_example_address(void **state)
{
    (void)state;
    char *addr =
        shim_socket_address(NULL, "/run/containerd/containerd.sock", "default", "t1", NULL);
    assert_string_equal(addr, "unix:///run/containerd/s/"
                              "df6a0c5cd2e9a1a16d9a3f2447365d9fc6021bc1d3d9a4caa2f5b2c4f773758f");
    assert_int_equal(strlen(addr), 89);
    /* Join + clean: the same string however it is spelled. */
    char *again =
        shim_socket_address(NULL, "/run/containerd//containerd.sock/", "default", "t1", NULL);
    assert_string_equal(addr, again);
    free(again);
    char *other =
        shim_socket_address(NULL, "/run/containerd/containerd.sock", "default", "t2", NULL);
    assert_string_not_equal(addr, other);
    free(other);
    assert_string_equal(shim_socket_path(addr), addr + strlen("unix://"));
    assert_null(shim_socket_path("/no/prefix"));
    assert_null(shim_socket_path("unix://relative"));
    free(addr);
}

static void test_listen_live_remove(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_shim_start.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char sub[128];
    snprintf(sub, sizeof(sub), "%s/s/deeper", dir);
    char *addr = shim_socket_address(sub, "/x.sock", "ns", "id", NULL);
    assert_false(shim_socket_is_live(addr));
    shim_error_t *err = NULL;
    int fd = shim_socket_listen(addr, &err);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(stat(shim_socket_path(addr), &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(stat(sub, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0711);
    assert_true(shim_socket_is_live(addr));

    /* A second bind reports EADDRINUSE for the reuse decision. */
    assert_int_equal(shim_socket_listen(addr, &err), -1);
    assert_int_equal(err->sys_errno, EADDRINUSE);
    error_free(err);
    err = NULL;

    /* Closed listener: the file stays but nobody answers. */
    close(fd);
    assert_false(shim_socket_is_live(addr));
    assert_int_equal(shim_socket_remove(addr, &err), 0);
    assert_int_equal(shim_socket_remove(addr, &err), 0); /* idempotent */
    assert_int_equal(stat(shim_socket_path(addr), &st), -1);

    assert_int_equal(shim_socket_listen("unix://relative", &err), -1);
    error_free(err);
    err = NULL;
    char longpath[200];
    memset(longpath, 'a', sizeof(longpath));
    memcpy(longpath, "unix:///", 8);
    longpath[sizeof(longpath) - 1] = '\0';
    assert_int_equal(shim_socket_listen(longpath, &err), -1);
    assert_non_null(strstr(err->msg, "too long"));
    error_free(err);
    free(addr);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static void parse_spec(const char *json, struct bundle_spec *spec)
{
    shim_error_t *err = NULL;
    if (bundle_spec_parse(json, strlen(json), "test", spec, &err) < 0)
        fail_msg("parse: %s", err->msg);
}

static void expect_group(const char *json, const char *id, const char *group, bool must_exist)
{
    struct bundle_spec spec;
    parse_spec(json, &spec);
    struct shim_group g;
    shim_error_t *err = NULL;
    if (shim_group_resolve(&spec, id, &g, &err) < 0)
        fail_msg("resolve: %s", err->msg);
    assert_string_equal(g.id, group);
    assert_int_equal(g.must_exist, must_exist);
    bundle_spec_free(&spec);
}

static void expect_group_error(const char *json, const char *id, const char *needle)
{
    struct bundle_spec spec;
    parse_spec(json, &spec);
    struct shim_group g;
    shim_error_t *err = NULL;
    assert_int_equal(shim_group_resolve(&spec, id, &g, &err), -1);
    if (strstr(err->msg, needle) == NULL)
        fail_msg("error \"%s\" does not mention \"%s\"", err->msg, needle);
    error_free(err);
    bundle_spec_free(&spec);
}

static void test_grouping(void **state)
{
    (void)state;
    expect_group("{}", "t1", "t1", false);
    expect_group("{\"annotations\":{}}", "t1", "t1", false);
    expect_group("{\"annotations\":{\"io.kubernetes.cri.sandbox-id\":\"pod1\"}}", "c1", "pod1",
                 false);
    expect_group("{\"annotations\":{\"io.containerd.runc.v2.group\":\"g\","
                 "\"io.kubernetes.cri.sandbox-id\":\"pod1\"}}",
                 "c1", "g", false);
    expect_group("{\"annotations\":{\"io.kubernetes.cri.container-type\":\"sandbox\","
                 "\"io.kubernetes.cri.sandbox-id\":\"pod1\"}}",
                 "pod1", "pod1", false);
    expect_group("{\"annotations\":{\"io.kubernetes.cri.container-type\":\"container\","
                 "\"io.kubernetes.cri.sandbox-id\":\"pod1\"}}",
                 "c1", "pod1", true);
    expect_group_error("{\"annotations\":{\"io.kubernetes.cri.container-type\":\"sandbox\","
                       "\"io.kubernetes.cri.sandbox-id\":\"pod1\"}}",
                       "c1", "must equal the id");
    expect_group_error("{\"annotations\":{\"io.kubernetes.cri.container-type\":\"container\"}}",
                       "c1", "requires io.kubernetes.cri.sandbox-id");
    expect_group_error("{\"annotations\":{\"io.kubernetes.cri.container-type\":\"pause\","
                       "\"io.kubernetes.cri.sandbox-id\":\"p\"}}",
                       "c1", "invalid value \"pause\"");
    expect_group_error("{\"annotations\":{\"io.kubernetes.cri.sandbox-id\":\"\"}}", "c1",
                       "is empty");
}

static Containerd__Task__V2__DeleteResponse *read_delete_response(int fd)
{
    uint8_t buf[256];
    ssize_t n = read(fd, buf, sizeof(buf));
    assert_true(n > 0);
    return containerd__task__v2__delete_response__unpack(NULL, (size_t)n, buf);
}

static void test_delete_response(void **state)
{
    (void)state;
    size_t len = 0;
    uint8_t *buf = shim_delete_response(&len);
    Containerd__Task__V2__DeleteResponse *resp =
        containerd__task__v2__delete_response__unpack(NULL, len, buf);
    assert_non_null(resp);
    assert_int_equal(resp->pid, 0);
    assert_int_equal(resp->exit_status, 255);
    assert_non_null(resp->exited_at);
    time_t now = time(NULL);
    assert_true(resp->exited_at->seconds >= now - 5 && resp->exited_at->seconds <= now + 5);
    containerd__task__v2__delete_response__free_unpacked(resp, NULL);
    free(buf);
}

/* delete in a bundle: idempotent, removes only a dead socket it owns. */
static void test_delete_action(void **state)
{
    (void)state;
    char bundle[] = "/tmp/test_shim_delete.XXXXXX";
    assert_non_null(mkdtemp(bundle));
    char address[160];
    snprintf(address, sizeof(address), "%s/containerd.sock", bundle);
    struct shim_cli_args args = {.namespace_name = "ns",
                                 .address = address,
                                 .publish_binary = "",
                                 .id = "del1",
                                 .bundle = bundle,
                                 .socket = "",
                                 .action = SHIM_ACTION_DELETE};
    char *own = shim_socket_address(NULL, address, "ns", "del1", NULL);
    int devnull = open("/dev/null", O_WRONLY);
    int out[2];
    assert_int_equal(pipe(out), 0);

    /* A live listener (a running shim) is left alone. */
    int fd = shim_socket_listen(own, NULL);
    assert_true(fd >= 0);
    assert_int_equal(shim_delete(&args, out[1], devnull, NULL), 0);
    Containerd__Task__V2__DeleteResponse *resp = read_delete_response(out[0]);
    assert_non_null(resp);
    assert_int_equal(resp->exit_status, 255);
    containerd__task__v2__delete_response__free_unpacked(resp, NULL);
    assert_true(shim_socket_is_live(own));

    /* A pod member's bundle records another shim's address: never touched. */
    close(fd); /* now dead */
    char other[] = "unix:///run/containerd/s/someone-else";
    assert_int_equal(bundle_write_file_atomic(bundle, "address", other, strlen(other), 0644, NULL),
                     0);
    assert_int_equal(shim_delete(&args, out[1], devnull, NULL), 0);
    resp = read_delete_response(out[0]);
    assert_non_null(resp);
    containerd__task__v2__delete_response__free_unpacked(resp, NULL);
    assert_int_equal(access(shim_socket_path(own), F_OK), 0);

    /* Its own dead socket goes; twice is fine. */
    assert_int_equal(bundle_write_file_atomic(bundle, "address", own, strlen(own), 0644, NULL), 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(shim_delete(&args, out[1], devnull, NULL), 0);
        resp = read_delete_response(out[0]);
        assert_non_null(resp);
        containerd__task__v2__delete_response__free_unpacked(resp, NULL);
        assert_int_equal(access(shim_socket_path(own), F_OK), -1);
    }
    char *addr_text = bundle_read_text(bundle, "address", NULL);
    assert_string_equal(addr_text, own);
    free(addr_text);
    free(own);
    close(out[0]);
    close(out[1]);
    close(devnull);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", bundle);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path_clean),         cmocka_unit_test(test_spec_example_address),
        cmocka_unit_test(test_listen_live_remove), cmocka_unit_test(test_grouping),
        cmocka_unit_test(test_delete_response),    cmocka_unit_test(test_delete_action),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
