/* HCS document -> QEMU command line, and modify requests -> QMP commands. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hcs/qemu_config.h"

#define GUID0 "df6d0690-79e5-55b6-a5ec-c1e2f77f580a"
#define GUID1 "0110f83b-de10-5172-a266-78bca56bf50a"

/* hcs-documents.md §2.4 (HEAD default), with Linux paths. */
static const char default_doc[] =
    "{\"Owner\":\"containerd-shim-runhcs-v1.exe\",\"SchemaVersion\":{\"Major\":2,\"Minor\":1},"
    "\"VirtualMachine\":{\"StopOnReset\":true,\"Chipset\":{\"LinuxKernelDirect\":{"
    "\"KernelFilePath\":\"/boot files/vmlinux\",\"InitRdPath\":\"/boot files/initrd.img\","
    "\"KernelCmdLine\":\" initcall_blacklist=virtio_vsock_init 8250_core.nr_uarts=0 panic=-1 "
    "quiet pci=off nr_cpus=2 brd.rd_nr=0 pmtmr=0 -- -e 1 /bin/vsockexec -e 109 /bin/gcs -v4 "
    "-log-format json -loglevel info\"}},"
    "\"ComputeTopology\":{\"Memory\":{\"SizeInMB\":1024,\"AllowOvercommit\":true},"
    "\"Processor\":{\"Count\":2}},"
    "\"Devices\":{\"Scsi\":{\"" GUID0 "\":{}},"
    "\"VirtualPMem\":{\"MaximumCount\":64,\"MaximumSizeBytes\":4294967296},"
    "\"HvSocket\":{\"HvSocketConfig\":{\"DefaultBindSecurityDescriptor\":"
    "\"D:P(A;;FA;;;SY)(A;;FA;;;BA)\"}},\"Plan9\":{}}},"
    "\"ShouldTerminateOnLastHandleClosed\":true}";

static struct qemu_launch microvm_tcg(void)
{
    struct qemu_launch l = {.machine = QEMU_MACHINE_MICROVM,
                            .accel = QEMU_ACCEL_TCG,
                            .tsc_khz = 2599998,
                            .qmp_fd = 3,
                            .gcs_socket = "/run/x/ports/1073741824",
                            .stdio_socket = "/run/x/ports/stdio"};
    return l;
}

/* Index of `opt` followed by `val` in argv, or -1. */
static int find_pair(char **argv, const char *opt, const char *val)
{
    for (int i = 0; argv[i] && argv[i + 1]; i++) {
        if (strcmp(argv[i], opt) == 0 && strcmp(argv[i + 1], val) == 0)
            return i;
    }
    return -1;
}

static const char *value_of(char **argv, const char *opt)
{
    for (int i = 0; argv[i] && argv[i + 1]; i++) {
        if (strcmp(argv[i], opt) == 0)
            return argv[i + 1];
    }
    return NULL;
}

static void test_default_document(void **state)
{
    (void)state;
    struct qemu_vm_config cfg;
    assert_int_equal(qemu_vm_config_parse(default_doc, &cfg, NULL), 0);
    assert_int_equal(cfg.memory_mb, 1024);
    assert_int_equal(cfg.cpus, 2);
    assert_string_equal(cfg.kernel, "/boot files/vmlinux");
    assert_string_equal(cfg.initrd, "/boot files/initrd.img");
    assert_int_equal(cfg.scsi_controllers, 1);
    assert_string_equal(cfg.scsi_keys[0], GUID0);
    assert_int_equal(cfg.ndisks, 0);

    struct qemu_launch l = microvm_tcg();
    char **argv = NULL;
    assert_int_equal(qemu_build_argv("qemu-system-x86_64", &cfg, &l, &argv, NULL), 0);
    assert_string_equal(argv[0], "qemu-system-x86_64");
    assert_true(find_pair(argv, "-accel", "tcg") > 0);
    assert_true(find_pair(argv, "-M", "microvm") > 0);
    assert_true(find_pair(argv, "-m", "1024") > 0);
    assert_true(find_pair(argv, "-smp", "2") > 0);
    assert_true(find_pair(argv, "-kernel", "/boot files/vmlinux") > 0);
    assert_true(find_pair(argv, "-initrd", "/boot files/initrd.img") > 0);
    assert_true(find_pair(argv, "-chardev", "socket,id=qmp,fd=3") > 0);
    assert_true(find_pair(argv, "-mon", "chardev=qmp,mode=control") > 0);
    assert_true(find_pair(argv, "-device", "virtio-serial-device,id=vser0,max_ports=31") > 0);
    assert_true(find_pair(argv, "-chardev",
                          "socket,id=chr-gcs,path=/run/x/ports/1073741824,server=on,wait=off") > 0);
    assert_true(find_pair(argv, "-device",
                          "{\"driver\":\"virtserialport\",\"bus\":\"vser0.0\",\"chardev\":"
                          "\"chr-gcs\",\"name\":\"gcs\",\"id\":\"port-gcs\"}") > 0);
    assert_true(find_pair(argv, "-chardev",
                          "socket,id=chr-stdio,path=/run/x/ports/stdio,server=on,wait=off") > 0);
    assert_true(find_pair(argv, "-device",
                          "{\"driver\":\"virtserialport\",\"bus\":\"vser0.0\",\"chardev\":"
                          "\"chr-stdio\",\"name\":\"stdio\",\"id\":\"port-stdio\"}") > 0);
    assert_true(find_pair(argv, "-device", "virtio-scsi-device,id=scsi0") > 0);
    assert_true(find_pair(argv, "-device", "virtio-rng-device,rng=rng0") > 0);
    bool has_S = false, has_noreboot = false;
    for (int i = 0; argv[i]; i++) {
        has_S |= strcmp(argv[i], "-S") == 0;
        has_noreboot |= strcmp(argv[i], "-no-reboot") == 0;
        assert_null(strstr(argv[i], "-cpu")); /* never -cpu host (linux-uvm.md §1) */
    }
    assert_true(has_S);
    assert_true(has_noreboot);
    const char *append = value_of(argv, "-append");
    assert_non_null(append);
    /* Fast-boot arguments first, tsc_early_khz, then the document's line
     * (with its "-- init args" last). */
    assert_true(strncmp(append, "console=ttyS0 quiet tsc=reliable", 32) == 0);
    assert_non_null(strstr(append, " cryptomgr.notests "));
    assert_non_null(strstr(append, " tsc_early_khz=2599998 initcall_blacklist=virtio_vsock_init"));
    assert_non_null(strstr(append, " pci=off nr_cpus=2 "));
    const char *tail =
        " -- -e 1 /bin/vsockexec -e 109 /bin/gcs -v4 -log-format json -loglevel info";
    assert_string_equal(append + strlen(append) - strlen(tail), tail);
    qemu_argv_free(argv);
    qemu_vm_config_clear(&cfg);
}

static void test_q35_kvm(void **state)
{
    (void)state;
    struct qemu_vm_config cfg;
    assert_int_equal(qemu_vm_config_parse(default_doc, &cfg, NULL), 0);
    struct qemu_launch l = microvm_tcg();
    l.machine = QEMU_MACHINE_Q35;
    l.accel = QEMU_ACCEL_KVM;
    l.extra_kernel_args = "uvm.loglevel=debug";
    char **argv = NULL;
    assert_int_equal(qemu_build_argv("/usr/bin/qemu", &cfg, &l, &argv, NULL), 0);
    assert_true(find_pair(argv, "-accel", "kvm") > 0);
    assert_true(find_pair(argv, "-M", "q35") > 0);
    assert_true(find_pair(argv, "-device", "virtio-serial-pci,id=vser0,max_ports=31") > 0);
    assert_true(find_pair(argv, "-device", "virtio-scsi-pci,id=scsi0") > 0);
    const char *append = value_of(argv, "-append");
    assert_null(strstr(append, "tsc_early_khz")); /* only microvm + TCG needs it */
    assert_null(strstr(append, "pci=off"));       /* q35's virtio devices are PCI */
    assert_non_null(strstr(append, " uvm.loglevel=debug initcall_blacklist"));
    qemu_argv_free(argv);
    qemu_vm_config_clear(&cfg);
}

static void test_scsi_attachments(void **state)
{
    (void)state;
    const char *doc =
        "{\"VirtualMachine\":{\"Chipset\":{\"LinuxKernelDirect\":{\"KernelFilePath\":\"/k\"}},"
        "\"Devices\":{\"Scsi\":{\"" GUID1 "\":{\"Attachments\":{\"3\":{\"Type\":\"VirtualDisk\","
        "\"Path\":\"/l/a,b.vhd\",\"ReadOnly\":true}}},\"mine\":{}}}}}";
    struct qemu_vm_config cfg;
    assert_int_equal(qemu_vm_config_parse(doc, &cfg, NULL), 0);
    assert_null(cfg.initrd);
    assert_int_equal(cfg.memory_mb, 1024); /* defaults */
    assert_int_equal(cfg.cpus, 2);
    assert_int_equal(cfg.scsi_controllers, 2);
    assert_string_equal(cfg.scsi_keys[0], "mine"); /* unknown key: first free slot */
    assert_string_equal(cfg.scsi_keys[1], GUID1);
    assert_int_equal(qemu_scsi_controller_index(&cfg, GUID1), 1);
    assert_int_equal(qemu_scsi_controller_index(&cfg, "MINE"), 0);
    assert_int_equal(qemu_scsi_controller_index(&cfg, "3"), -1);
    assert_int_equal(cfg.ndisks, 1);
    assert_int_equal(cfg.disks[0].controller, 1);
    assert_int_equal(cfg.disks[0].lun, 3);
    assert_true(cfg.disks[0].read_only);
    struct qemu_launch l = microvm_tcg();
    char **argv = NULL;
    assert_int_equal(qemu_build_argv("q", &cfg, &l, &argv, NULL), 0);
    assert_null(value_of(argv, "-initrd"));
    assert_true(find_pair(argv, "-device", "virtio-scsi-device,id=scsi1") > 0);
    assert_true(find_pair(argv, "-blockdev",
                          "{\"driver\":\"vpc\",\"node-name\":\"disk-1-3\",\"read-only\":true,"
                          "\"file\":{\"driver\":\"file\",\"filename\":\"/l/a,b.vhd\","
                          "\"read-only\":true}}") > 0);
    assert_true(find_pair(argv, "-device",
                          "{\"driver\":\"scsi-hd\",\"id\":\"sd-1-3\",\"bus\":\"scsi1.0\","
                          "\"drive\":\"disk-1-3\",\"channel\":0,\"scsi-id\":0,\"lun\":3}") > 0);
    qemu_argv_free(argv);
    qemu_vm_config_clear(&cfg);
}

static void test_socket_path_commas_escaped(void **state)
{
    (void)state;
    struct qemu_vm_config cfg;
    assert_int_equal(qemu_vm_config_parse(default_doc, &cfg, NULL), 0);
    struct qemu_launch l = microvm_tcg();
    l.gcs_socket = "/tmp/a,b/1073741824";
    char **argv = NULL;
    assert_int_equal(qemu_build_argv("q", &cfg, &l, &argv, NULL), 0);
    assert_true(find_pair(argv, "-chardev",
                          "socket,id=chr-gcs,path=/tmp/a,,b/1073741824,server=on,wait=off") > 0);
    qemu_argv_free(argv);
    qemu_vm_config_clear(&cfg);
}

static void expect_parse_error(const char *doc, int code, const char *needle)
{
    struct qemu_vm_config cfg;
    shim_error_t *err = NULL;
    assert_int_equal(qemu_vm_config_parse(doc, &cfg, &err), -1);
    assert_non_null(err);
    assert_int_equal(err->code, code);
    if (!strstr(err->msg, needle))
        fail_msg("'%s' not in '%s'", needle, err->msg);
    error_free(err);
}

static void test_bad_documents(void **state)
{
    (void)state;
    expect_parse_error("{not json", RPC_INVALID_ARGUMENT, "compute system document");
    expect_parse_error("[]", RPC_INVALID_ARGUMENT, "not an object");
    expect_parse_error(NULL, RPC_INVALID_ARGUMENT, "compute system document");
    expect_parse_error("{\"Container\":{}}", RPC_INVALID_ARGUMENT, "VirtualMachine");
    expect_parse_error("{\"VirtualMachine\":{}}", RPC_INVALID_ARGUMENT, "LinuxKernelDirect");
    expect_parse_error("{\"VirtualMachine\":{\"Chipset\":{\"Uefi\":{}}}}", RPC_UNIMPLEMENTED,
                       "Uefi");
    expect_parse_error("{\"VirtualMachine\":{\"Chipset\":{\"LinuxKernelDirect\":{}}}}",
                       RPC_INVALID_ARGUMENT, "KernelFilePath");
    expect_parse_error("{\"VirtualMachine\":{\"Chipset\":{\"LinuxKernelDirect\":{"
                       "\"KernelFilePath\":\"/k\"}},\"ComputeTopology\":{\"Memory\":{"
                       "\"SizeInMB\":\"lots\"}}}}",
                       RPC_INVALID_ARGUMENT, "SizeInMB");
    expect_parse_error("{\"VirtualMachine\":{\"Chipset\":{\"LinuxKernelDirect\":{"
                       "\"KernelFilePath\":\"/k\"}},\"ComputeTopology\":{\"Processor\":{"
                       "\"Count\":0}}}}",
                       RPC_INVALID_ARGUMENT, "Processor.Count");
    expect_parse_error("{\"VirtualMachine\":{\"Chipset\":{\"LinuxKernelDirect\":{"
                       "\"KernelFilePath\":\"/k\"}},\"Devices\":{\"Scsi\":{\"0\":{},\"1\":{},"
                       "\"2\":{},\"3\":{},\"4\":{}}}}}",
                       RPC_INVALID_ARGUMENT, "at most 4");
    expect_parse_error("{\"VirtualMachine\":{\"Chipset\":{\"LinuxKernelDirect\":{"
                       "\"KernelFilePath\":\"/k\"}},\"Devices\":{\"Scsi\":{\"0\":{"
                       "\"Attachments\":{\"x\":{\"Path\":\"/a\"}}}}}}}",
                       RPC_INVALID_ARGUMENT, "bad LUN");
    expect_parse_error("{\"VirtualMachine\":{\"Chipset\":{\"LinuxKernelDirect\":{"
                       "\"KernelFilePath\":\"/k\"}},\"Devices\":{\"Scsi\":{\"0\":{"
                       "\"Attachments\":{\"0\":{\"Type\":\"PassThru\",\"Path\":\"/dev/sda\"}}}}}}}",
                       RPC_UNIMPLEMENTED, "PassThru");
    expect_parse_error("{\"VirtualMachine\":{\"Chipset\":{\"LinuxKernelDirect\":{"
                       "\"KernelFilePath\":\"/k\"}},\"Devices\":{\"Scsi\":{\"0\":{"
                       "\"Attachments\":{\"0\":{\"Type\":\"VirtualDisk\"}}}}}}}",
                       RPC_INVALID_ARGUMENT, "Path missing");
}

static void test_image_format(void **state)
{
    (void)state;
    assert_string_equal(qemu_image_format("/a/b.vhd"), "vpc");
    assert_string_equal(qemu_image_format("/a/b.VHDX"), "vhdx");
    assert_string_equal(qemu_image_format("/a/b.qcow2"), "qcow2");
    assert_string_equal(qemu_image_format("/a/b.img"), "raw");
    assert_string_equal(qemu_image_format("/a.vhd/b"), "raw");
}

static struct qemu_vm_config default_config(void)
{
    struct qemu_vm_config cfg;
    assert_int_equal(qemu_vm_config_parse(default_doc, &cfg, NULL), 0);
    return cfg;
}

static char *dump(json_t *j)
{
    return json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
}

static void test_modify_scsi(void **state)
{
    (void)state;
    struct qemu_vm_config cfg = default_config();
    struct qemu_modify m;
    struct qemu_qmp_step steps[2];
    /* hcs-documents.md §6.2 attach. */
    const char *add = "{\"ResourcePath\":\"VirtualMachine/Devices/Scsi/" GUID0
                      "/Attachments/3\",\"RequestType\":\"Add\",\"Settings\":{\"Type\":"
                      "\"VirtualDisk\",\"Path\":\"/x/a.vhdx\",\"ReadOnly\":true}}";
    assert_int_equal(qemu_modify_parse(&cfg, add, &m, NULL), 0);
    assert_int_equal(m.kind, QEMU_MODIFY_SCSI_DISK);
    assert_true(m.add);
    assert_int_equal(m.disk.lun, 3);
    assert_int_equal(qemu_modify_commands(&m, NULL, steps, NULL), 2);
    assert_string_equal(steps[0].command, "blockdev-add");
    char *s0 = dump(steps[0].args), *s1 = dump(steps[1].args);
    assert_string_equal(s0, "{\"driver\":\"vhdx\",\"node-name\":\"disk-0-3\",\"read-only\":true,"
                            "\"file\":{\"driver\":\"file\",\"filename\":\"/x/a.vhdx\","
                            "\"read-only\":true}}");
    assert_string_equal(steps[1].command, "device_add");
    assert_string_equal(s1, "{\"driver\":\"scsi-hd\",\"id\":\"sd-0-3\",\"bus\":\"scsi0.0\","
                            "\"drive\":\"disk-0-3\",\"channel\":0,\"scsi-id\":0,\"lun\":3}");
    free(s0);
    free(s1);
    assert_string_equal(steps[0].wait_deleted, "");
    qemu_steps_clear(steps, 2);
    qemu_modify_clear(&m);

    const char *rm = "{\"ResourcePath\":\"VirtualMachine/Devices/Scsi/" GUID0
                     "/Attachments/3\",\"RequestType\":\"Remove\"}";
    assert_int_equal(qemu_modify_parse(&cfg, rm, &m, NULL), 0);
    assert_false(m.add);
    assert_int_equal(qemu_modify_commands(&m, NULL, steps, NULL), 2);
    assert_string_equal(steps[0].command, "device_del");
    assert_string_equal(steps[0].wait_deleted, "sd-0-3");
    assert_string_equal(steps[1].command, "blockdev-del");
    s1 = dump(steps[1].args);
    assert_string_equal(s1, "{\"node-name\":\"disk-0-3\"}");
    free(s1);
    qemu_steps_clear(steps, 2);
    qemu_modify_clear(&m);
    qemu_vm_config_clear(&cfg);
}

static void test_modify_port(void **state)
{
    (void)state;
    struct qemu_vm_config cfg = default_config();
    struct qemu_modify m;
    struct qemu_qmp_step steps[2];
    const char *add = "{\"ResourcePath\":\"VirtualMachine/Devices/VirtioSerial/Ports/stdio1\","
                      "\"RequestType\":\"Add\"}";
    assert_int_equal(qemu_modify_parse(&cfg, add, &m, NULL), 0);
    assert_int_equal(m.kind, QEMU_MODIFY_SERIAL_PORT);
    assert_string_equal(m.port_name, "stdio1");
    assert_null(m.socket_path);
    assert_int_equal(qemu_modify_commands(&m, NULL, steps, NULL), -1); /* needs a path */
    assert_int_equal(qemu_modify_commands(&m, "/r/p/stdio1", steps, NULL), 2);
    char *s0 = dump(steps[0].args), *s1 = dump(steps[1].args);
    assert_string_equal(steps[0].command, "chardev-add");
    assert_string_equal(s0, "{\"id\":\"chr-stdio1\",\"backend\":{\"type\":\"socket\",\"data\":{"
                            "\"addr\":{\"type\":\"unix\",\"data\":{\"path\":\"/r/p/stdio1\"}},"
                            "\"server\":true,\"wait\":false}}}");
    assert_string_equal(steps[1].command, "device_add");
    assert_string_equal(s1, "{\"driver\":\"virtserialport\",\"bus\":\"vser0.0\",\"chardev\":"
                            "\"chr-stdio1\",\"name\":\"stdio1\",\"id\":\"port-stdio1\"}");
    free(s0);
    free(s1);
    qemu_steps_clear(steps, 2);
    qemu_modify_clear(&m);

    const char *add_path = "{\"ResourcePath\":\"VirtualMachine/Devices/VirtioSerial/Ports/p2\","
                           "\"RequestType\":\"Add\",\"Settings\":{\"SocketPath\":\"/s/p2.sock\"}}";
    assert_int_equal(qemu_modify_parse(&cfg, add_path, &m, NULL), 0);
    assert_string_equal(m.socket_path, "/s/p2.sock");
    qemu_modify_clear(&m);

    const char *rm = "{\"ResourcePath\":\"VirtualMachine/Devices/VirtioSerial/Ports/stdio1\","
                     "\"RequestType\":\"Remove\"}";
    assert_int_equal(qemu_modify_parse(&cfg, rm, &m, NULL), 0);
    assert_int_equal(qemu_modify_commands(&m, NULL, steps, NULL), 2);
    assert_string_equal(steps[0].command, "device_del");
    assert_string_equal(steps[0].wait_deleted, "port-stdio1");
    assert_string_equal(steps[1].command, "chardev-remove");
    qemu_steps_clear(steps, 2);
    qemu_modify_clear(&m);
    qemu_vm_config_clear(&cfg);
}

static void expect_modify_error(const char *req, int code, const char *needle)
{
    struct qemu_vm_config cfg = default_config();
    struct qemu_modify m;
    shim_error_t *err = NULL;
    assert_int_equal(qemu_modify_parse(&cfg, req, &m, &err), -1);
    assert_non_null(err);
    if (err->code != code || !strstr(err->msg, needle))
        fail_msg("%s: got %d '%s'", req, err->code, err->msg);
    error_free(err);
    qemu_vm_config_clear(&cfg);
}

static void test_modify_errors(void **state)
{
    (void)state;
    expect_modify_error("nope", RPC_INVALID_ARGUMENT, "modify request");
    expect_modify_error("{}", RPC_INVALID_ARGUMENT, "ResourcePath");
    expect_modify_error("{\"ResourcePath\":\"VirtualMachine/Devices/Plan9/Shares\","
                        "\"RequestType\":\"Add\",\"Settings\":{}}",
                        RPC_UNIMPLEMENTED, "not supported");
    expect_modify_error("{\"ResourcePath\":\"VirtualMachine/ComputeTopology/Memory/SizeInMB\","
                        "\"RequestType\":\"Update\",\"Settings\":2048}",
                        RPC_UNIMPLEMENTED, "Update");
    expect_modify_error("{\"ResourcePath\":\"VirtualMachine/Devices/Scsi/" GUID1
                        "/Attachments/0\",\"RequestType\":\"Remove\"}",
                        RPC_NOT_FOUND, "no SCSI controller");
    expect_modify_error("{\"ResourcePath\":\"VirtualMachine/Devices/Scsi/" GUID0
                        "/Attachments/999\",\"RequestType\":\"Remove\"}",
                        RPC_INVALID_ARGUMENT, "bad LUN");
    expect_modify_error("{\"ResourcePath\":\"VirtualMachine/Devices/Scsi/" GUID0
                        "/Attachments/1\",\"RequestType\":\"Add\"}",
                        RPC_INVALID_ARGUMENT, "Settings");
    expect_modify_error("{\"ResourcePath\":\"VirtualMachine/Devices/Scsi/" GUID0
                        "/Attachments/1\",\"RequestType\":\"Add\",\"Settings\":{\"Type\":"
                        "\"VirtualDisk\",\"Path\":\"/a\"},\"GuestRequest\":{\"ResourceType\":"
                        "\"MappedVirtualDisk\"}}",
                        RPC_INVALID_ARGUMENT, "GuestRequest");
    expect_modify_error("{\"ResourcePath\":\"VirtualMachine/Devices/VirtioSerial/Ports/gcs\","
                        "\"RequestType\":\"Remove\"}",
                        RPC_PERMISSION_DENIED, "gcs");
    expect_modify_error("{\"ResourcePath\":\"VirtualMachine/Devices/VirtioSerial/Ports/stdio\","
                        "\"RequestType\":\"Add\"}",
                        RPC_PERMISSION_DENIED, "stdio");
    expect_modify_error("{\"ResourcePath\":\"VirtualMachine/Devices/VirtioSerial/Ports/a b\","
                        "\"RequestType\":\"Add\"}",
                        RPC_INVALID_ARGUMENT, "port");
    expect_modify_error("{\"ResourcePath\":\"VirtualMachine/Devices/VirtioSerial/Ports/../x\","
                        "\"RequestType\":\"Add\"}",
                        RPC_INVALID_ARGUMENT, "port");
    expect_modify_error("{\"ResourcePath\":\"a/b/c/d/e/f/g/h/i/j\",\"RequestType\":\"Add\"}",
                        RPC_UNIMPLEMENTED, "not supported");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_document), cmocka_unit_test(test_q35_kvm),
        cmocka_unit_test(test_scsi_attachments), cmocka_unit_test(test_socket_path_commas_escaped),
        cmocka_unit_test(test_bad_documents),    cmocka_unit_test(test_image_format),
        cmocka_unit_test(test_modify_scsi),      cmocka_unit_test(test_modify_port),
        cmocka_unit_test(test_modify_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
