/* The QEMU compute backend's lifecycle against a fake qemu (a bash script
 * written by the test) that speaks QMP on the inherited fd 3: start, modify,
 * shutdown, terminate, a qemu that fails to start, dies, or ignores quit,
 * and close while running. The real VM is covered by test/integration/uvm_boot.sh. */
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

#include "hcs/compute.h"

/* Replies to every command; events for powerdown/quit/device_del. Logs each
 * command line to $dir/commands. FAKE_MODE=die: fail like a bad command
 * line; FAKE_MODE=deaf: never answer quit. */
static const char fake_qemu[] =
    "#!/bin/bash\n"
    "dir=$(dirname \"$0\")\n"
    "if [ \"$FAKE_MODE\" = die ]; then echo \"qemu-system-x86_64: -kernel: bad image\" >&2; "
    "exit 1; fi\n"
    "printf '%s\\n' \"$@\" > \"$dir/argv\"\n"
    "echo 'console output' \n"
    "printf '{\"QMP\": {\"version\": {}, \"capabilities\": []}}\\r\\n' >&3\n"
    "while IFS= read -r line <&3; do\n"
    "  line=${line%$'\\r'}\n"
    "  echo \"$line\" >> \"$dir/commands\"\n"
    "  id=$(sed -n 's/.*\"id\":\\([0-9]*\\).*/\\1/p' <<<\"$line\")\n"
    "  case \"$line\" in\n"
    "  *'\"execute\":\"device_add\"'*'\"drive\":\"disk-0-7\"'*)\n"
    "    printf '{\"error\": {\"class\": \"GenericError\", \"desc\": \"no room\"}, \"id\": "
    "%s}\\r\\n' $id >&3 ;;\n"
    "  *'\"execute\":\"system_powerdown\"'*)\n"
    "    printf '{\"return\": {}, \"id\": %s}\\r\\n' $id >&3\n"
    "    printf '{\"event\": \"SHUTDOWN\", \"data\": {\"guest\": true, \"reason\": "
    "\"guest-shutdown\"}}\\r\\n' >&3\n"
    "    exit 0 ;;\n"
    "  *'\"execute\":\"quit\"'*)\n"
    "    [ \"$FAKE_MODE\" = deaf ] && continue\n"
    "    printf '{\"return\": {}, \"id\": %s}\\r\\n' $id >&3\n"
    "    printf '{\"event\": \"SHUTDOWN\", \"data\": {\"guest\": false, \"reason\": "
    "\"host-qmp-quit\"}}\\r\\n' >&3\n"
    "    exit 0 ;;\n"
    "  *'\"execute\":\"device_del\"'*)\n"
    "    dev=$(sed -n 's/.*\"id\":\"\\([^\"]*\\)\".*\"id\":[0-9]*}$/\\1/p' <<<\"$line\")\n"
    "    printf '{\"return\": {}, \"id\": %s}\\r\\n' $id >&3\n"
    "    printf '{\"event\": \"DEVICE_DELETED\", \"data\": {\"device\": \"%s\"}}\\r\\n' "
    "\"$dev\" >&3 ;;\n"
    "  *) printf '{\"return\": {}, \"id\": %s}\\r\\n' $id >&3 ;;\n"
    "  esac\n"
    "done\n"
    "exit 0\n";

struct fixture {
    uv_loop_t loop;
    char dir[64];
    char doc[1024];
    char fake[128];
    hcs_system_t *sys;
    int started, start_failed, exits, done_calls, done_errors;
    enum hcs_exit_type exit_type;
    int exit_signal;
    char last_error[512];
};

static void on_started(hcs_system_t *s, const shim_error_t *err, void *opaque)
{
    struct fixture *f = opaque;
    (void)s;
    if (err) {
        f->start_failed++;
        snprintf(f->last_error, sizeof(f->last_error), "%s", err->msg);
    } else {
        f->started++;
    }
}

static void on_done(hcs_system_t *s, const shim_error_t *err, void *opaque)
{
    struct fixture *f = opaque;
    (void)s;
    f->done_calls++;
    if (err) {
        f->done_errors++;
        snprintf(f->last_error, sizeof(f->last_error), "%s", err->msg);
    }
}

static void on_exit_status(hcs_system_t *s, const struct hcs_exit_status *st, void *opaque)
{
    struct fixture *f = opaque;
    (void)s;
    f->exits++;
    f->exit_type = st->type;
    f->exit_signal = st->term_signal;
}

static void run_until(struct fixture *f, const int *counter, int want)
{
    for (int i = 0; i < 20000 && *counter < want; i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        if (*counter < want)
            usleep(1000);
    }
    assert_int_equal(*counter, want);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    chmod(path, mode);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/hcs-test-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/vmlinux", f->dir);
    write_file(path, "ELF", 0644);
    snprintf(path, sizeof(path), "%s/initrd.img", f->dir);
    write_file(path, "cpio", 0644);
    snprintf(f->fake, sizeof(f->fake), "%s/fake-qemu", f->dir);
    write_file(f->fake, fake_qemu, 0755);
    snprintf(f->doc, sizeof(f->doc),
             "{\"VirtualMachine\":{\"Chipset\":{\"LinuxKernelDirect\":{\"KernelFilePath\":"
             "\"%s/vmlinux\",\"InitRdPath\":\"%s/initrd.img\",\"KernelCmdLine\":\" -- x\"}},"
             "\"ComputeTopology\":{\"Memory\":{\"SizeInMB\":256},\"Processor\":{\"Count\":1}},"
             "\"Devices\":{\"Scsi\":{\"0\":{}}}}}",
             f->dir, f->dir);
    uv_loop_init(&f->loop);
    unsetenv("FAKE_MODE");
    signal(SIGPIPE, SIG_IGN);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    hcs_system_close(f->sys);
    for (int i = 0; i < 200 && uv_run(&f->loop, UV_RUN_NOWAIT); i++)
        usleep(5000);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static void create(struct fixture *f)
{
    char run[96];
    snprintf(run, sizeof(run), "%s/run", f->dir);
    struct hcs_backend_options o = {
        .run_dir = run, .qemu_binary = f->fake, .accel = "tcg", .tsc_khz = 1000000};
    shim_error_t *err = NULL;
    if (hcs_system_create(&f->loop, "t@vm", f->doc, &o, &f->sys, &err) < 0)
        fail_msg("create: %s", err->msg);
    hcs_system_set_exit_callback(f->sys, on_exit_status, f);
    assert_int_equal(hcs_system_state(f->sys), HCS_STATE_CREATED);
}

static void start(struct fixture *f)
{
    create(f);
    assert_int_equal(hcs_system_start(f->sys, on_started, f, NULL), 0);
    assert_int_equal(hcs_system_state(f->sys), HCS_STATE_STARTING);
    run_until(f, &f->started, 1);
    assert_int_equal(hcs_system_state(f->sys), HCS_STATE_RUNNING);
}

static char *read_file(struct fixture *f, const char *name)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/run/%s", f->dir, name);
    if (strcmp(name, "argv") == 0 || strcmp(name, "commands") == 0)
        snprintf(path, sizeof(path), "%s/%s", f->dir, name);
    FILE *fp = fopen(path, "r");
    if (!fp)
        return strdup("");
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    return strdup(buf);
}

static void test_start_properties_shutdown(void **state)
{
    struct fixture *f = *state;
    start(f);
    /* Started paused (-S) and continued. */
    char *argv = read_file(f, "argv"), *cmds = read_file(f, "commands");
    assert_non_null(strstr(argv, "\n-S\n"));
    assert_non_null(strstr(argv, "tsc_early_khz=1000000"));
    assert_non_null(strstr(cmds, "\"execute\":\"qmp_capabilities\""));
    assert_non_null(strstr(cmds, "\"execute\":\"cont\""));
    free(argv);
    free(cmds);
    json_t *p = NULL;
    assert_int_equal(hcs_system_properties(f->sys, &p, NULL), 0);
    assert_string_equal(json_string_value(json_object_get(p, "State")), "Running");
    assert_true(json_integer_value(json_object_get(p, "ProcessId")) > 0);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(p, "Memory"), "SizeInMB")),
                     256);
    json_decref(p);
    const char *gcs = hcs_system_port_path(f->sys, "gcs");
    assert_non_null(gcs);
    char want[128];
    snprintf(want, sizeof(want), "%s/run/ports/1073741824", f->dir);
    assert_string_equal(gcs, want);
    snprintf(want, sizeof(want), "%s/run/ports/stdio", f->dir);
    assert_string_equal(hcs_system_port_path(f->sys, "stdio"), want);
    assert_null(hcs_system_port_path(f->sys, "nope"));
    snprintf(want, sizeof(want), "%s/run/ports", f->dir);
    assert_string_equal(hcs_system_port_dir(f->sys), want);
    /* Wrong states. */
    shim_error_t *err = NULL;
    assert_int_equal(hcs_system_start(f->sys, on_started, f, &err), -1);
    assert_int_equal(err->code, RPC_FAILED_PRECONDITION);
    error_free(err);

    assert_int_equal(hcs_system_shutdown(f->sys, on_done, f, NULL), 0);
    run_until(f, &f->exits, 1);
    assert_int_equal(f->exit_type, HCS_EXIT_SHUTDOWN);
    assert_int_equal(hcs_system_state(f->sys), HCS_STATE_STOPPED);
    assert_int_equal(f->done_calls, 1);
    char *log = read_file(f, "vm.log");
    assert_non_null(strstr(log, "console output"));
    free(log);
}

static void test_terminate(void **state)
{
    struct fixture *f = *state;
    start(f);
    assert_int_equal(hcs_system_terminate(f->sys, on_done, f, NULL), 0);
    assert_int_equal(hcs_system_state(f->sys), HCS_STATE_STOPPING);
    run_until(f, &f->exits, 1);
    assert_int_equal(f->exit_type, HCS_EXIT_TERMINATE);
    run_until(f, &f->done_calls, 1);
    shim_error_t *err = NULL;
    assert_int_equal(hcs_system_terminate(f->sys, on_done, f, &err), -1);
    error_free(err);
    assert_int_equal(hcs_system_modify(f->sys, "{}", on_done, f, &err), -1);
    assert_int_equal(err->code, RPC_FAILED_PRECONDITION);
    error_free(err);
}

static void test_modify(void **state)
{
    struct fixture *f = *state;
    start(f);
    const char *add = "{\"ResourcePath\":\"VirtualMachine/Devices/Scsi/0/Attachments/1\","
                      "\"RequestType\":\"Add\",\"Settings\":{\"Type\":\"VirtualDisk\","
                      "\"Path\":\"/l/layer.vhd\",\"ReadOnly\":true}}";
    const char *rm = "{\"ResourcePath\":\"VirtualMachine/Devices/Scsi/0/Attachments/1\","
                     "\"RequestType\":\"Remove\"}";
    const char *padd = "{\"ResourcePath\":\"VirtualMachine/Devices/VirtioSerial/Ports/s1\","
                       "\"RequestType\":\"Add\"}";
    const char *prm = "{\"ResourcePath\":\"VirtualMachine/Devices/VirtioSerial/Ports/s1\","
                      "\"RequestType\":\"Remove\"}";
    assert_int_equal(hcs_system_modify(f->sys, add, on_done, f, NULL), 0);
    run_until(f, &f->done_calls, 1);
    assert_int_equal(hcs_system_modify(f->sys, rm, on_done, f, NULL), 0);
    run_until(f, &f->done_calls, 2);
    assert_null(hcs_system_port_path(f->sys, "s1"));
    assert_int_equal(hcs_system_modify(f->sys, padd, on_done, f, NULL), 0);
    run_until(f, &f->done_calls, 3);
    assert_non_null(strstr(hcs_system_port_path(f->sys, "s1"), "/run/ports/s1"));
    shim_error_t *err = NULL;
    assert_int_equal(hcs_system_modify(f->sys, padd, on_done, f, &err), -1);
    assert_int_equal(err->code, RPC_ALREADY_EXISTS);
    error_free(err);
    assert_int_equal(hcs_system_modify(f->sys, prm, on_done, f, NULL), 0);
    run_until(f, &f->done_calls, 4);
    assert_null(hcs_system_port_path(f->sys, "s1"));
    assert_int_equal(f->done_errors, 0);
    /* A failing device_add rolls the blockdev back. */
    const char *bad = "{\"ResourcePath\":\"VirtualMachine/Devices/Scsi/0/Attachments/7\","
                      "\"RequestType\":\"Add\",\"Settings\":{\"Type\":\"VirtualDisk\","
                      "\"Path\":\"/l/x.img\"}}";
    assert_int_equal(hcs_system_modify(f->sys, bad, on_done, f, NULL), 0);
    run_until(f, &f->done_calls, 5);
    assert_int_equal(f->done_errors, 1);
    assert_non_null(strstr(f->last_error, "no room"));
    /* Bad requests fail synchronously, no callback. */
    assert_int_equal(hcs_system_modify(f->sys, "{\"x\":1}", on_done, f, &err), -1);
    assert_int_equal(err->code, RPC_INVALID_ARGUMENT);
    error_free(err);
    assert_int_equal(hcs_system_terminate(f->sys, NULL, NULL, NULL), 0);
    run_until(f, &f->exits, 1);
    char *cmds = read_file(f, "commands");
    const char *order[] = {"\"blockdev-add\"", "\"device_add\"",     "\"device_del\"",
                           "\"blockdev-del\"", "\"chardev-add\"",    "\"device_add\"",
                           "\"device_del\"",   "\"chardev-remove\"", "\"blockdev-add\"",
                           "\"device_add\"",   "\"blockdev-del\"",   "\"quit\""};
    const char *at = cmds;
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        at = strstr(at, order[i]);
        if (!at)
            fail_msg("command %zu (%s) missing or out of order in:\n%s", i, order[i], cmds);
        at++;
    }
    free(cmds);
    assert_int_equal(f->done_calls, 5); /* the op-less terminate adds none */
}

static void test_qemu_fails_to_start(void **state)
{
    struct fixture *f = *state;
    setenv("FAKE_MODE", "die", 1);
    create(f);
    assert_int_equal(hcs_system_start(f->sys, on_started, f, NULL), 0);
    run_until(f, &f->start_failed, 1);
    assert_non_null(strstr(f->last_error, "bad image"));
    run_until(f, &f->exits, 1);
    assert_int_equal(f->exit_type, HCS_EXIT_UNEXPECTED);
    assert_int_equal(hcs_system_state(f->sys), HCS_STATE_STOPPED);
}

static void test_missing_binary_and_files(void **state)
{
    struct fixture *f = *state;
    snprintf(f->fake, sizeof(f->fake), "%s/no-such-qemu", f->dir);
    create(f);
    shim_error_t *err = NULL;
    assert_int_equal(hcs_system_start(f->sys, on_started, f, &err), -1);
    assert_int_equal(err->code, RPC_FAILED_PRECONDITION);
    error_free(err);
    hcs_system_close(f->sys);
    f->sys = NULL;
    struct hcs_backend_options o = {.accel = "tcg"};
    const char *doc = "{\"VirtualMachine\":{\"Chipset\":{\"LinuxKernelDirect\":{"
                      "\"KernelFilePath\":\"/nonexistent/vmlinux\"}}}}";
    assert_int_equal(hcs_system_create(&f->loop, "x", doc, &o, &f->sys, &err), -1);
    assert_int_equal(err->code, RPC_NOT_FOUND);
    assert_non_null(strstr(err->msg, "kernel: '/nonexistent/vmlinux' not found"));
    error_free(err);
    o.machine = "pc";
    assert_int_equal(hcs_system_create(&f->loop, "x", f->doc, &o, &f->sys, &err), -1);
    assert_int_equal(err->code, RPC_INVALID_ARGUMENT);
    error_free(err);
    f->sys = NULL;
}

static void test_killed_behind_our_back(void **state)
{
    struct fixture *f = *state;
    start(f);
    json_t *p = NULL;
    assert_int_equal(hcs_system_properties(f->sys, &p, NULL), 0);
    int pid = (int)json_integer_value(json_object_get(p, "ProcessId"));
    json_decref(p);
    kill(pid, SIGKILL);
    run_until(f, &f->exits, 1);
    assert_int_equal(f->exit_type, HCS_EXIT_UNEXPECTED);
    assert_int_equal(f->exit_signal, SIGKILL);
}

static void test_deaf_qemu_is_killed(void **state)
{
    struct fixture *f = *state;
    setenv("FAKE_MODE", "deaf", 1);
    start(f);
    assert_int_equal(hcs_system_terminate(f->sys, on_done, f, NULL), 0);
    run_until(f, &f->exits, 1); /* after the 5 s grace period */
    assert_int_equal(f->exit_type, HCS_EXIT_TERMINATE);
    assert_int_equal(f->exit_signal, SIGKILL);
    run_until(f, &f->done_calls, 1);
    assert_int_equal(f->done_errors, 0); /* quit never answered, but the VM is gone */
}

static void test_close_while_running(void **state)
{
    struct fixture *f = *state;
    start(f);
    assert_int_equal(hcs_system_modify(f->sys,
                                       "{\"ResourcePath\":\"VirtualMachine/Devices/VirtioSerial/"
                                       "Ports/p\",\"RequestType\":\"Add\"}",
                                       on_done, f, NULL),
                     0);
    hcs_system_close(f->sys); /* terminates; no callback of any kind after this */
    f->sys = NULL;
    for (int i = 0; i < 2000 && uv_run(&f->loop, UV_RUN_NOWAIT); i++)
        usleep(1000);
    assert_int_equal(f->exits, 0);
    assert_int_equal(f->done_calls, 0);
}

static void test_close_before_start(void **state)
{
    struct fixture *f = *state;
    create(f);
    hcs_system_close(f->sys);
    f->sys = NULL;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_start_properties_shutdown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_terminate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_modify, setup, teardown),
        cmocka_unit_test_setup_teardown(test_qemu_fails_to_start, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_binary_and_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_killed_behind_our_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deaf_qemu_is_killed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_while_running, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_before_start, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
