/* shim/bundle: config.json parsing, rootfs mounts (real mount(2) when
 * running as root) and the Windows layer mounts (portable parsing). */
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
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "shim/bundle.h"

static void rm_rf(const char *dir)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static void write_text(const char *dir, const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static void test_load_spec(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_shim_bundle.XXXXXX";
    assert_non_null(mkdtemp(dir));
    write_text(dir, "config.json",
               "{\"ociVersion\":\"1.0.2\",\"process\":{\"args\":[\"sh\"]},\"linux\":{},"
               "\"annotations\":{\"io.kubernetes.cri.sandbox-id\":\"pod1\",\"k\":\"v\"}}");
    struct bundle_spec spec;
    shim_error_t *err = NULL;
    assert_int_equal(bundle_spec_load(dir, &spec, &err), 0);
    assert_true(spec.has_process);
    assert_true(spec.has_linux);
    assert_false(spec.has_windows);
    assert_false(spec.has_hyperv);
    assert_string_equal(bundle_spec_annotation(&spec, "io.kubernetes.cri.sandbox-id"), "pod1");
    assert_null(bundle_spec_annotation(&spec, "missing"));
    bundle_spec_free(&spec);

    write_text(dir, "config.json", "{\"windows\":{\"hyperv\":{}}}");
    assert_int_equal(bundle_spec_load(dir, &spec, &err), 0);
    assert_true(spec.has_windows);
    assert_true(spec.has_hyperv);
    assert_false(spec.has_process);
    assert_null(bundle_spec_annotation(&spec, "k"));
    bundle_spec_free(&spec);
    rm_rf(dir);

    /* Missing bundle/config.json: NotFound naming the file. */
    assert_int_equal(bundle_spec_load(dir, &spec, &err), -1);
    assert_int_equal(err->code, RPC_NOT_FOUND);
    assert_non_null(strstr(err->msg, "config.json"));
    error_free(err);
}

static void expect_parse_error(const char *json, const char *needle)
{
    struct bundle_spec spec;
    shim_error_t *err = NULL;
    assert_int_equal(bundle_spec_parse(json, strlen(json), "cfg", &spec, &err), -1);
    assert_int_equal(err->code, RPC_INVALID_ARGUMENT);
    if (strstr(err->msg, needle) == NULL)
        fail_msg("error \"%s\" does not mention \"%s\"", err->msg, needle);
    error_free(err);
}

static void test_broken_json(void **state)
{
    (void)state;
    expect_parse_error("{\"process\": ", "cfg: invalid JSON at line 1");
    expect_parse_error("", "invalid JSON");
    expect_parse_error("[1,2]", "must be a JSON object");
    expect_parse_error("{\"annotations\": [1]}", "\"annotations\" must be an object");
    expect_parse_error("{\"annotations\": {\"a\": 1}}", "annotation \"a\" must be a string");
    expect_parse_error("{\"a\":1,\"a\":2}", "invalid JSON");
    struct bundle_spec spec;
    assert_int_equal(bundle_spec_parse("{\"annotations\":null}", 20, "cfg", &spec, NULL), 0);
    assert_null(spec.annotations);
    bundle_spec_free(&spec);
}

static void test_mount_args(void **state)
{
    (void)state;
    const char *opts[] = {"index=off", "ro",     "nosuid",   "workdir=/w",
                          "rw",        "noexec", "rprivate", "lowerdir=/a:/b"};
    struct bundle_mount m = {.type = "overlay",
                             .source = "overlay",
                             .options = opts,
                             .n_options = sizeof(opts) / sizeof(opts[0])};
    struct bundle_mount_args a;
    assert_int_equal(bundle_mount_args_parse(&m, &a, NULL), 0);
    assert_int_equal(a.flags, MS_NOSUID | MS_NOEXEC); /* rw cleared ro */
    assert_int_equal(a.propagation, MS_PRIVATE | MS_REC);
    assert_string_equal(a.data, "index=off,workdir=/w,lowerdir=/a:/b");
    bundle_mount_args_free(&a);

    const char *bind_opts[] = {"rbind", "ro"};
    struct bundle_mount b = {.type = "bind", .source = "/x", .options = bind_opts, .n_options = 2};
    assert_int_equal(bundle_mount_args_parse(&b, &a, NULL), 0);
    assert_int_equal(a.flags, MS_BIND | MS_REC | MS_RDONLY);
    assert_null(a.data);
    bundle_mount_args_free(&a);
}

static void test_atomic_write(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_shim_bundle.XXXXXX";
    assert_non_null(mkdtemp(dir));
    assert_int_equal(bundle_write_file_atomic(dir, "address", "unix:///x", 9, 0644, NULL), 0);
    assert_int_equal(bundle_write_file_atomic(dir, "address", "unix:///yz", 10, 0644, NULL), 0);
    char *text = bundle_read_text(dir, "address", NULL);
    assert_string_equal(text, "unix:///yz"); /* replaced, no newline */
    free(text);
    shim_error_t *err = NULL;
    assert_null(bundle_read_text(dir, "nope", &err));
    assert_int_equal(err->code, RPC_NOT_FOUND);
    error_free(err);
    rm_rf(dir);
}

/* Real bind mounts need root (CAP_SYS_ADMIN); skipped otherwise. */
static void test_mount_rootfs_bind(void **state)
{
    (void)state;
    if (geteuid() != 0)
        skip();
    char dir[] = "/tmp/test_shim_bundle.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char layer[128], rootfs[128], marker[160];
    snprintf(layer, sizeof(layer), "%s/layer", dir);
    snprintf(rootfs, sizeof(rootfs), "%s/rootfs", dir);
    snprintf(marker, sizeof(marker), "%s/rootfs/marker", dir);
    assert_int_equal(mkdir(layer, 0755), 0);
    write_text(layer, "marker", "x");

    const char *opts[] = {"rbind", "ro"};
    struct bundle_mount m = {.type = "bind", .source = layer, .options = opts, .n_options = 2};
    shim_error_t *err = NULL;
    if (bundle_mount_rootfs(dir, &m, 1, &err) < 0) {
        /* e.g. a container without mount permission */
        error_free(err);
        rm_rf(dir);
        skip();
    }
    assert_int_equal(access(marker, F_OK), 0);
    struct statvfs vfs;
    assert_int_equal(statvfs(rootfs, &vfs), 0);
    assert_true(vfs.f_flag & ST_RDONLY);
    assert_int_equal(open(marker, O_WRONLY), -1); /* read-only */
    assert_int_equal(errno, EROFS);

    /* Busy (open fd inside): still unmounted (MNT_DETACH). */
    int busy = open(marker, O_RDONLY);
    assert_int_equal(bundle_unmount_rootfs(dir, &err), 0);
    close(busy);
    assert_int_equal(access(marker, F_OK), -1);
    assert_int_equal(bundle_unmount_rootfs(dir, &err), 0); /* idempotent */

    /* A failing mount in a list unmounts the ones before it. */
    const char *bad_opts[] = {"bind"};
    struct bundle_mount two[2] = {
        {.type = "bind", .source = layer, .options = opts, .n_options = 2},
        {.type = "bind", .source = "/nonexistent/source", .options = bad_opts, .n_options = 1},
    };
    assert_int_equal(bundle_mount_rootfs(dir, two, 2, &err), -1);
    assert_non_null(strstr(err->msg, "/nonexistent/source"));
    error_free(err);
    assert_int_equal(access(marker, F_OK), -1);

    struct bundle_mount untyped = {.type = "", .source = layer};
    err = NULL;
    assert_int_equal(bundle_mount_rootfs(dir, &untyped, 1, &err), -1);
    assert_non_null(strstr(err->msg, "no type"));
    error_free(err);
    rm_rf(dir);
}

/* overlay as containerd's overlayfs snapshotter passes it (spec §8.3), given
 * as a protobuf Mount list. Skipped where overlay cannot be mounted (e.g.
 * /tmp itself on overlayfs). */
static void test_mount_rootfs_overlay_pb(void **state)
{
    (void)state;
    if (geteuid() != 0)
        skip();
    char dir[] = "/tmp/test_shim_bundle.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char lower1[128], lower2[128], upper[128], work[128];
    snprintf(lower1, sizeof(lower1), "%s/l1", dir);
    snprintf(lower2, sizeof(lower2), "%s/l2", dir);
    snprintf(upper, sizeof(upper), "%s/upper", dir);
    snprintf(work, sizeof(work), "%s/work", dir);
    const char *dirs[] = {lower1, lower2, upper, work};
    for (int i = 0; i < 4; i++)
        assert_int_equal(mkdir(dirs[i], 0755), 0);
    write_text(lower1, "top", "1");
    write_text(lower2, "bottom", "2");
    char opt_work[160], opt_upper[160], opt_lower[300];
    snprintf(opt_work, sizeof(opt_work), "workdir=%s", work);
    snprintf(opt_upper, sizeof(opt_upper), "upperdir=%s", upper);
    snprintf(opt_lower, sizeof(opt_lower), "lowerdir=%s:%s", lower1, lower2);
    char *opts[] = {"index=off", opt_work, opt_upper, opt_lower};
    Containerd__Types__Mount m = CONTAINERD__TYPES__MOUNT__INIT;
    m.type = "overlay";
    m.source = "overlay";
    m.options = opts;
    m.n_options = 4;
    Containerd__Types__Mount *list[] = {&m};
    shim_error_t *err = NULL;
    if (bundle_mount_rootfs_pb(dir, list, 1, &err) < 0) {
        print_message("overlay unavailable here: %s\n", err->msg);
        error_free(err);
        rm_rf(dir);
        skip();
    }
    char path[200];
    snprintf(path, sizeof(path), "%s/rootfs/top", dir);
    assert_int_equal(access(path, F_OK), 0);
    snprintf(path, sizeof(path), "%s/rootfs/bottom", dir);
    assert_int_equal(access(path, F_OK), 0);
    snprintf(path, sizeof(path), "%s/rootfs/new", dir);
    write_text(dir, "rootfs/new", "3"); /* lands in upperdir */
    snprintf(path, sizeof(path), "%s/new", upper);
    assert_int_equal(access(path, F_OK), 0);
    assert_int_equal(bundle_unmount_rootfs(dir, &err), 0);
    snprintf(path, sizeof(path), "%s/rootfs/top", dir);
    assert_int_equal(access(path, F_OK), -1);
    rm_rf(dir);
}

/* containerd's windows-layer mount: scratch folder + parentLayerPaths JSON. */
static void test_layers_parse(void **state)
{
    (void)state;
    shim_error_t *err = NULL;
    const char *opts[] = {"rw", "parentLayerPaths=[\"C:\\\\l\\\\2\",\"C:\\\\l\\\\1\"]"};
    struct bundle_mount m = {
        .type = "windows-layer", .source = "C:\\l\\scratch", .options = opts, .n_options = 2};
    struct bundle_layers l;
    assert_true(bundle_mount_is_layer(&m));
    assert_int_equal(bundle_layers_parse(&m, &l, &err), 0);
    assert_int_equal(l.type, BUNDLE_LAYER_WINDOWS);
    assert_string_equal(l.scratch, "C:\\l\\scratch");
    assert_false(l.read_only);
    assert_int_equal(l.n_parents, 2);
    assert_string_equal(l.parents[0], "C:\\l\\2");
    assert_string_equal(l.parents[1], "C:\\l\\1");
    assert_null(l.parents[2]);
    bundle_layers_free(&l);

    /* lcow-layer, read-only, no parents: an empty, NULL-terminated list. */
    const char *ro[] = {"ro", "unknown=ignored"};
    struct bundle_mount lcow = {
        .type = "lcow-layer", .source = "/s", .options = ro, .n_options = 2};
    assert_int_equal(bundle_layers_from_rootfs(&lcow, 1, &l, &err), 0);
    assert_int_equal(l.type, BUNDLE_LAYER_LCOW);
    assert_true(l.read_only);
    assert_int_equal(l.n_parents, 0);
    assert_null(l.parents[0]);
    bundle_layers_free(&l);

    /* No mounts: legacy spec.windows.layerFolders, nothing parsed. */
    assert_int_equal(bundle_layers_from_rootfs(NULL, 0, &l, &err), 0);
    assert_null(l.scratch);
    bundle_layers_free(&l);
}

static void expect_layer_error(const struct bundle_mount *m, size_t n, int code, const char *text)
{
    shim_error_t *err = NULL;
    struct bundle_layers l;
    assert_int_equal(bundle_layers_from_rootfs(m, n, &l, &err), -1);
    assert_non_null(err);
    assert_int_equal(err->code, code);
    if (strstr(err->msg, text) == NULL)
        fail_msg("error \"%s\" lacks \"%s\"", err->msg, text);
    assert_null(l.scratch);
    assert_null(l.parents);
    error_free(err);
}

static void test_layers_bad(void **state)
{
    (void)state;
    const char *not_array[] = {"parentLayerPaths={\"a\":1}"};
    const char *broken[] = {"parentLayerPaths=[\"C:\\\\x\""};
    const char *not_string[] = {"parentLayerPaths=[\"C:\\\\x\",7]"};
    const char *empty[] = {"parentLayerPaths=[\"\"]"};
    const char *twice[] = {"parentLayerPaths=[]", "parentLayerPaths=[]"};
    struct bundle_mount m = {.type = "windows-layer", .source = "C:\\s", .n_options = 1};
    m.options = not_array;
    expect_layer_error(&m, 1, RPC_INVALID_ARGUMENT, "not a JSON array");
    m.options = broken;
    expect_layer_error(&m, 1, RPC_INVALID_ARGUMENT, "not a JSON array");
    m.options = not_string;
    expect_layer_error(&m, 1, RPC_INVALID_ARGUMENT, "entry 1");
    m.options = empty;
    expect_layer_error(&m, 1, RPC_INVALID_ARGUMENT, "entry 0");
    m.options = twice;
    m.n_options = 2;
    expect_layer_error(&m, 1, RPC_INVALID_ARGUMENT, "more than one");
    struct bundle_mount no_source = {.type = "windows-layer"};
    expect_layer_error(&no_source, 1, RPC_INVALID_ARGUMENT, "no source");
    struct bundle_mount overlay = {.type = "overlay", .source = "overlay"};
    expect_layer_error(&overlay, 1, RPC_UNIMPLEMENTED, "overlay");
    assert_false(bundle_mount_is_layer(&overlay));
    struct bundle_mount two[] = {{.type = "windows-layer", .source = "a"},
                                 {.type = "windows-layer", .source = "b"}};
    expect_layer_error(two, 2, RPC_INVALID_ARGUMENT, "2 mounts");
    shim_error_t *err = NULL;
    struct bundle_layers l;
    assert_int_equal(bundle_layers_parse(&overlay, &l, &err), -1);
    assert_int_equal(err->code, RPC_INVALID_ARGUMENT);
    error_free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_spec),         cmocka_unit_test(test_broken_json),
        cmocka_unit_test(test_mount_args),        cmocka_unit_test(test_atomic_write),
        cmocka_unit_test(test_mount_rootfs_bind), cmocka_unit_test(test_mount_rootfs_overlay_pb),
        cmocka_unit_test(test_layers_parse),      cmocka_unit_test(test_layers_bad),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
