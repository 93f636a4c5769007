/* uvm/ layer without a real VM: the document from a sandbox spec, the rootfs
 * image, the container spec, argument checks, and start failures against a
 * fake qemu (a bash script speaking QMP on fd 3): a qemu that dies at start,
 * one whose ports never appear, and close while starting. The real VM is
 * covered by test/integration/shim_uvm_layer.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "uvm/uvm.h"

static const char fake_qemu[] =
    "#!/bin/bash\n"
    "if [ \"$FAKE_MODE\" = die ]; then echo 'qemu: -kernel: bad image' >&2; exit 1; fi\n"
    "printf '{\"QMP\": {\"version\": {}, \"capabilities\": []}}\\r\\n' >&3\n"
    "while IFS= read -r line <&3; do\n"
    "  id=$(sed -n 's/.*\"id\":\\([0-9]*\\).*/\\1/p' <<<\"$line\")\n"
    "  printf '{\"return\": {}, \"id\": %s}\\r\\n' $id >&3\n"
    "  case \"$line\" in *'\"quit\"'*) exit 0 ;; esac\n"
    "done\n";

struct fixture {
    char dir[64];
    char boot[128];
    char qemu[128];
    char *doc;
};

static void write_file(const char *path, const char *text, mode_t mode)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    chmod(path, mode);
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/uvm-unit-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->boot, sizeof(fx->boot), "%s/boot", fx->dir);
    mkdir(fx->boot, 0700);
    char path[256];
    snprintf(path, sizeof(path), "%s/kernel", fx->boot);
    write_file(path, "k", 0600);
    snprintf(path, sizeof(path), "%s/initrd.img", fx->boot);
    write_file(path, "i", 0600);
    snprintf(fx->qemu, sizeof(fx->qemu), "%s/fake-qemu", fx->dir);
    write_file(fx->qemu, fake_qemu, 0700);
    json_t *spec = json_pack("{s:{},s:{s:s}}", "linux", "annotations",
                             "io.microsoft.virtualmachine.computetopology.memory.sizeinmb", "300");
    shim_error_t *err = NULL;
    fx->doc = uvm_document_for_spec(spec, NULL, "t@vm", "test", "info", fx->boot, &err);
    json_decref(spec);
    assert_non_null(fx->doc);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", fx->dir);
    assert_int_equal(system(cmd), 0);
    free(fx->doc);
    free(fx);
    return 0;
}

static void test_document_for_spec(void **state)
{
    struct fixture *fx = *state;
    json_t *doc = json_loads(fx->doc, 0, NULL);
    assert_non_null(doc);
    json_t *vm = json_object_get(doc, "VirtualMachine");
    assert_int_equal(
        json_integer_value(json_object_get(
            json_object_get(json_object_get(vm, "ComputeTopology"), "Memory"), "SizeInMB")),
        300);
    json_t *lkd = json_object_get(json_object_get(vm, "Chipset"), "LinuxKernelDirect");
    char want[256];
    snprintf(want, sizeof(want), "%s/kernel", fx->boot);
    assert_string_equal(json_string_value(json_object_get(lkd, "KernelFilePath")), want);
    snprintf(want, sizeof(want), "%s/initrd.img", fx->boot);
    assert_string_equal(json_string_value(json_object_get(lkd, "InitRdPath")), want);
    assert_non_null(strstr(json_string_value(json_object_get(lkd, "KernelCmdLine")), "/bin/gcs"));
    json_decref(doc);
}

static void test_document_boot_files_annotation(void **state)
{
    struct fixture *fx = *state;
    json_t *spec = json_pack("{s:{},s:{s:s}}", "linux", "annotations",
                             "io.microsoft.virtualmachine.bootfilesrootpath", "/nonexistent/boot");
    shim_error_t *err = NULL;
    char *doc = uvm_document_for_spec(spec, NULL, "t@vm", "test", "info", fx->boot, &err);
    json_decref(spec);
    assert_null(doc);
    assert_non_null(err);
    assert_non_null(strstr(err->msg, "/nonexistent/boot"));
    error_free(err);
}

static void test_rootfs_image(void **state)
{
    struct fixture *fx = *state;
    if (system("command -v mkfs.ext4 >/dev/null") != 0)
        skip();
    char src[128], img[128], cmd[512];
    snprintf(src, sizeof(src), "%s/rootfs", fx->dir);
    snprintf(img, sizeof(img), "%s/rootfs.img", fx->dir);
    mkdir(src, 0755);
    snprintf(cmd, sizeof(cmd), "%s/hello", src);
    write_file(cmd, "hello\n", 0644);
    shim_error_t *err = NULL;
    assert_int_equal(uvm_rootfs_image_build(src, img, &err), 0);
    struct stat st;
    assert_int_equal(stat(img, &st), 0);
    assert_true(st.st_size >= (256 << 20));
    snprintf(cmd, sizeof(cmd), "debugfs -R 'cat /hello' %s 2>/dev/null | grep -qx hello", img);
    if (system("command -v debugfs >/dev/null") == 0)
        assert_int_equal(system(cmd), 0);
    assert_int_equal(uvm_rootfs_image_build("/nonexistent/rootfs", img, &err), -1);
    assert_non_null(err);
    error_free(err);
}

static void test_container_spec(void **state)
{
    (void)state;
    json_t *spec =
        json_pack("{s:{s:[s]},s:{s:s},s:{},s:[{s:s,s:s},{s:s,s:s,s:s,s:[s]}],s:[{s:s}]}", "process",
                  "args", "sh", "root", "path", "/host/rootfs", "linux", "mounts", "destination",
                  "/proc", "type", "proc", "destination", "/data", "type", "bind", "source",
                  "/host/data", "options", "rbind", "hooks_unused", "x", "y");
    shim_error_t *err = NULL;
    json_t *out = uvm_container_spec(spec, "c1", "/run/mounts/scsi/m3", &err);
    assert_non_null(out);
    assert_string_equal(json_string_value(json_object_get(json_object_get(out, "root"), "path")),
                        "/run/mounts/scsi/m3");
    json_t *mounts = json_object_get(out, "mounts");
    assert_int_equal(json_array_size(mounts), 1);
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(mounts, 0), "destination")), "/proc");
    json_decref(out);
    json_decref(spec);
}

static void test_create_checks(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct uvm *u = NULL;
    shim_error_t *err = NULL;
    struct uvm_config cfg = {.id = "x@vm"};
    assert_int_equal(uvm_create(&loop, &cfg, NULL, NULL, &u, &err), -1);
    assert_int_equal(err->code, RPC_INVALID_ARGUMENT);
    error_free(err);
    err = NULL;
    cfg.document = "{not json";
    assert_int_equal(uvm_create(&loop, &cfg, NULL, NULL, &u, &err), -1);
    assert_non_null(err);
    error_free(err);
    uv_loop_close(&loop);
}

struct result {
    bool done;
    int code;
    char msg[512];
};

static void on_done(void *opaque, const shim_error_t *err)
{
    struct result *r = opaque;
    r->done = true;
    r->code = err ? err->code : 0;
    snprintf(r->msg, sizeof(r->msg), "%s", err ? err->msg : "");
}

static void on_lost(void *opaque, const shim_error_t *err)
{
    (void)err;
    *(bool *)opaque = true;
}

/* Starts with the fake qemu; runs the loop until the start answers. */
static void start_fails(struct fixture *fx, const char *mode, const char *want)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    setenv("FAKE_MODE", mode, 1);
    char run_dir[128];
    snprintf(run_dir, sizeof(run_dir), "%s/run-%s", fx->dir, mode);
    mkdir(run_dir, 0700);
    struct uvm_config cfg = {.id = "t@vm", .document = fx->doc, .boot_timeout_ms = 20000};
    cfg.backend.run_dir = run_dir;
    cfg.backend.qemu_binary = fx->qemu;
    cfg.backend.tsc_khz = 1000000;
    bool lost = false;
    struct uvm_callbacks cbs = {.lost = on_lost};
    struct uvm *u = NULL;
    shim_error_t *err = NULL;
    assert_int_equal(uvm_create(&loop, &cfg, &cbs, &lost, &u, &err), 0);
    struct result r = {0};
    assert_int_equal(uvm_start(u, on_done, &r, &err), 0);
    assert_int_equal(uvm_start(u, on_done, &r, &err), -1); /* only once */
    error_free(err);
    assert_null(uvm_guest(u));
    for (int i = 0; i < 2000 && !r.done; i++)
        uv_run(&loop, UV_RUN_ONCE);
    assert_true(r.done);
    assert_int_not_equal(r.code, 0);
    if (!strstr(r.msg, want))
        fail_msg("start error '%s' lacks '%s'", r.msg, want);
    assert_false(lost);
    assert_false(uvm_running(u));
    err = NULL;
    assert_int_equal(uvm_pause(u, on_done, &r, &err), -1);
    assert_int_equal(err->code, RPC_FAILED_PRECONDITION);
    error_free(err);
    err = NULL;
    assert_int_equal(uvm_disk_add(u, "/x.img", true, NULL, NULL, &err), -1);
    error_free(err);
    uvm_close(u);
    while (uv_run(&loop, UV_RUN_DEFAULT))
        ;
    assert_int_equal(uv_loop_close(&loop), 0);
    unsetenv("FAKE_MODE");
}

static void test_start_qemu_dies(void **state)
{
    start_fails(*state, "die", "starting the utility VM");
}

static void test_start_no_ports(void **state)
{
    /* The fake answers QMP but never listens on the port sockets. */
    start_fails(*state, "noports", "stdio port");
}

static void test_close_while_starting(void **state)
{
    struct fixture *fx = *state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    char run_dir[128];
    snprintf(run_dir, sizeof(run_dir), "%s/run-close", fx->dir);
    mkdir(run_dir, 0700);
    struct uvm_config cfg = {.id = "t@vm", .document = fx->doc};
    cfg.backend.run_dir = run_dir;
    cfg.backend.qemu_binary = fx->qemu;
    cfg.backend.tsc_khz = 1000000;
    struct uvm *u = NULL;
    shim_error_t *err = NULL;
    assert_int_equal(uvm_create(&loop, &cfg, NULL, NULL, &u, &err), 0);
    struct result r = {0};
    assert_int_equal(uvm_start(u, on_done, &r, &err), 0);
    uv_run(&loop, UV_RUN_NOWAIT);
    uvm_close(u);
    while (uv_run(&loop, UV_RUN_DEFAULT))
        ;
    assert_false(r.done); /* no callbacks after close */
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_default_boot_files_path(void **state)
{
    (void)state;
    /* Next to the test binary there are none (build/test/LinuxBootFiles), but
     * build/test/../LinuxBootFiles may exist after `make uvm`. */
    char *p = uvm_default_boot_files_path();
    if (p) {
        char k[4200];
        snprintf(k, sizeof(k), "%s/kernel", p);
        assert_int_equal(access(k, R_OK), 0);
    }
    free(p);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_document_for_spec, setup, teardown),
        cmocka_unit_test_setup_teardown(test_document_boot_files_annotation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rootfs_image, setup, teardown),
        cmocka_unit_test(test_container_spec),
        cmocka_unit_test(test_create_checks),
        cmocka_unit_test_setup_teardown(test_start_qemu_dies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_no_ports, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_while_starting, setup, teardown),
        cmocka_unit_test(test_default_boot_files_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
