/* Golden tests G1-G6 and G10 (hcs-documents.md 8.1): sandbox spec (+ runhcs
 * options) -> LCOW UVM ComputeSystem document. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "oci/annotations.h"
#include "oci/spec.h"
#include "oci/uvm_options.h"
#include "test/golden/golden.h"
#include "uvm/doc_uvm.h"

static const char *const boot_files[] = {"C:\\LB\\kernel", "C:\\LB\\vmlinux", "C:\\LB\\initrd.img",
                                         NULL};
static const char *const boot_files_vhd[] = {"C:\\LB\\kernel", "C:\\LB\\vmlinux",
                                             "C:\\LB\\initrd.img", "C:\\LB\\rootfs.vhd", NULL};

static struct uvm_host test_host(const char *const *files)
{
    struct uvm_host h = {
        .build = 20348,
        .logical_processors = 8,
        .file_exists = golden_file_exists,
        .ctx = (void *)files,
    };
    return h;
}

/* The shim's pipeline for a pod sandbox: id from the CRI annotations, default
 * options, options + annotations, document. */
static json_t *build_doc(const json_t *spec, const runhcs_options *opts, const char *const *files,
                         shim_error_t **err)
{
    enum oci_sandbox_type type;
    const char *pod = NULL;
    if (oci_sandbox_type_and_id(spec, &type, &pod, err) < 0)
        return NULL;
    assert_int_equal(type, OCI_SANDBOX_SANDBOX);
    char id[128];
    snprintf(id, sizeof(id), "%s@vm", pod);
    assert_string_equal(id, "p1@vm");
    struct uvm_host host = test_host(files);
    struct uvm_lcow_options o;
    if (uvm_lcow_options_init(&o, id, "shim.exe", "info", NULL, &host, err) < 0)
        return NULL;
    json_t *doc = NULL;
    if (oci_lcow_uvm_options(spec, opts, &o, err) == 0)
        doc = uvm_lcow_document(&o, err);
    uvm_lcow_options_free(&o);
    return doc;
}

static void check_golden(const char *name, const char *const *files)
{
    char in[128], out[128];
    snprintf(in, sizeof(in), "%s.input.json", name);
    snprintf(out, sizeof(out), "%s.expected.json", name);
    json_t *spec = golden_load(in);
    assert_non_null(spec);
    shim_error_t *err = NULL;
    json_t *doc = build_doc(spec, NULL, files, &err);
    if (doc == NULL)
        fail_msg("%s: %s", name, err ? err->msg : "?");
    assert_true(golden_matches(doc, out));
    json_decref(doc);
    json_decref(spec);
}

static void test_g1_default(void **state)
{
    (void)state;
    check_golden("g1_lcow_default", boot_files);
}

/* Beyond structural equality: G1 is emitted in hcsshim's key order (2.4). */
static void test_g1_key_order(void **state)
{
    (void)state;
    json_t *spec = golden_load("g1_lcow_default.input.json");
    json_t *doc = build_doc(spec, NULL, boot_files, NULL);
    json_t *expected = golden_load("g1_lcow_default.expected.json");
    char *a = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
    char *e = json_dumps(expected, JSON_COMPACT | JSON_PRESERVE_ORDER);
    assert_string_equal(a, e);
    free(a);
    free(e);
    json_decref(expected);
    json_decref(doc);
    json_decref(spec);
}

static void test_g1_no_forbidden_keys(void **state)
{
    (void)state;
    json_t *spec = golden_load("g1_lcow_default.input.json");
    shim_error_t *err = NULL;
    json_t *doc = build_doc(spec, NULL, boot_files, &err);
    assert_non_null(doc);
    json_t *vm = json_object_get(doc, "VirtualMachine");
    assert_null(json_object_get(vm, "GuestConnection"));
    assert_null(json_object_get(vm, "StorageQoS"));
    assert_null(json_object_get(json_object_get(vm, "Devices"), "ComPorts"));
    json_decref(doc);
    json_decref(spec);
}

static void test_g2_resources(void **state)
{
    (void)state;
    check_golden("g2_lcow_resources", boot_files);
}

static void test_g4_uefi(void **state)
{
    (void)state;
    check_golden("g4_lcow_uefi", boot_files);
}

static void test_g5a_vhd_vpmem(void **state)
{
    (void)state;
    check_golden("g5a_lcow_vhd_vpmem", boot_files_vhd);
}

static void test_g5b_vhd_scsi(void **state)
{
    (void)state;
    check_golden("g5b_lcow_vhd_scsi", boot_files_vhd);
}

static void test_g5c_vhd_physical(void **state)
{
    (void)state;
    check_golden("g5c_lcow_vhd_physical", boot_files_vhd);
}

static void test_g6_debug_console(void **state)
{
    (void)state;
    check_golden("g6_lcow_debug_console", boot_files);
}

/* G3: pod annotations win over shim options, options over defaults. */
static json_t *g3_doc(const char *memory_annotation)
{
    json_t *spec = golden_load("g1_lcow_default.input.json");
    if (memory_annotation != NULL)
        json_object_set_new(json_object_get(spec, "annotations"), ANN_MEMORY_SIZE_MB,
                            json_string(memory_annotation));
    runhcs_options opts = CONTAINERD__RUNHCS__V1__OPTIONS__INIT;
    opts.vm_memory_size_in_mb = 3072;
    opts.vm_processor_count = 4;
    shim_error_t *err = NULL;
    /* The merge as the shim does it at Create, checked on the spec ... */
    json_t *merged = json_deep_copy(spec);
    assert_int_equal(oci_update_spec_from_options(merged, &opts, &err), 0);
    assert_string_equal(oci_annotation(merged, ANN_MEMORY_SIZE_MB),
                        memory_annotation ? memory_annotation : "3072");
    assert_string_equal(oci_annotation(merged, ANN_PROCESSOR_COUNT), "4");
    json_decref(merged);
    /* ... and implied by oci_lcow_uvm_options on the original spec. */
    json_t *doc = build_doc(spec, &opts, boot_files, &err);
    json_decref(spec);
    assert_non_null(doc);
    return doc;
}

static json_int_t topo(const json_t *doc, const char *part, const char *key)
{
    return json_integer_value(json_object_get(
        json_object_get(json_object_get(json_object_get(doc, "VirtualMachine"), "ComputeTopology"),
                        part),
        key));
}

static void test_g3_options_vs_annotations(void **state)
{
    (void)state;
    json_t *doc = g3_doc("2048");
    assert_int_equal(topo(doc, "Memory", "SizeInMB"), 2048);
    assert_int_equal(topo(doc, "Processor", "Count"), 4);
    json_decref(doc);
    doc = g3_doc(NULL);
    assert_int_equal(topo(doc, "Memory", "SizeInMB"), 3072);
    json_decref(doc);
}

static void expect_error(const char *key, const char *value, const char *const *files,
                         const char *needle)
{
    json_t *spec = golden_load("g1_lcow_default.input.json");
    json_t *anns = json_object_get(spec, "annotations");
    if (key != NULL)
        json_object_set_new(anns, key, json_string(value));
    shim_error_t *err = NULL;
    json_t *doc = build_doc(spec, NULL, files, &err);
    assert_null(doc);
    assert_non_null(err);
    if (strstr(err->msg, needle) == NULL)
        fail_msg("error '%s' does not contain '%s'", err->msg, needle);
    error_free(err);
    json_decref(spec);
}

/* G10: validation errors. */
static void test_g10_validation(void **state)
{
    (void)state;
    json_t *spec = golden_load("g1_lcow_default.input.json");
    json_t *anns = json_object_get(spec, "annotations");
    json_object_set_new(anns, ANN_ALLOW_OVERCOMMIT, json_string("false"));
    json_object_set_new(anns, ANN_DEFERRED_COMMIT, json_string("true"));
    shim_error_t *err = NULL;
    assert_null(build_doc(spec, NULL, boot_files, &err));
    assert_non_null(
        strstr(err->msg, "EnableDeferredCommit is not supported on physically backed VMs"));
    assert_non_null(strstr(err->msg, "UVM options incorrect"));
    error_free(err);
    json_decref(spec);

    expect_error(ANN_VPMEM_SIZE, "4097", boot_files, "VPMemSizeBytes must be a multiple of 4096");
    expect_error(ANN_VPMEM_COUNT, "129", boot_files,
                 "VPMem device count cannot be greater than 128");
    expect_error(ANN_BOOT_FILES_ROOT_PATH, "C:\\nope", boot_files,
                 "kernel: 'C:\\nope\\kernel' not found");
}

static void test_missing_rootfs(void **state)
{
    (void)state;
    static const char *const only_kernel[] = {"C:\\LB\\kernel", NULL};
    expect_error(NULL, NULL, only_kernel, "boot file: 'C:\\LB\\initrd.img' not found");
}

/* Malformed annotation values are errors naming the key. */
static void test_malformed_annotations(void **state)
{
    (void)state;
    expect_error(ANN_MEMORY_SIZE_MB, "1G", boot_files, ANN_MEMORY_SIZE_MB);
    expect_error(ANN_MEMORY_SIZE_MB, "-5", boot_files, ANN_MEMORY_SIZE_MB);
    expect_error(ANN_PROCESSOR_COUNT, "two", boot_files, ANN_PROCESSOR_COUNT);
    expect_error(ANN_PROCESSOR_COUNT, "4294967297", boot_files, ANN_PROCESSOR_COUNT);
    expect_error(ANN_PROCESSOR_COUNT, "-1", boot_files, ANN_PROCESSOR_COUNT);
    expect_error(ANN_ALLOW_OVERCOMMIT, "yes", boot_files, ANN_ALLOW_OVERCOMMIT);
    expect_error(ANN_VPMEM_COUNT, " 3", boot_files, ANN_VPMEM_COUNT);
    expect_error(ANN_PREFERRED_ROOTFS_TYPE, "squashfs", boot_files, ANN_PREFERRED_ROOTFS_TYPE);
    expect_error(ANN_HVSOCKET_SERVICE_TABLE_PREFIX "not-a-guid", "{}", boot_files, "not-a-guid");
    expect_error(ANN_HVSOCKET_SERVICE_TABLE_PREFIX "0000006d-facb-11e6-bd58-64006a7986d3",
                 "{broken", boot_files, "service-table");
}

/* Processor limit/weight outside the HCS ranges. */
static void test_invalid_processor_values(void **state)
{
    (void)state;
    expect_error(ANN_PROCESSOR_LIMIT, "100001", boot_files, "ProcessorLimit");
    expect_error(ANN_PROCESSOR_WEIGHT, "-1", boot_files, "ProcessorWeight");
    expect_error(ANN_PROCESSOR_WEIGHT, "10001", boot_files, "ProcessorWeight");
    expect_error(ANN_STORAGE_QOS_IOPS, "-3", boot_files, "StorageQoS");
}

static void test_normalization(void **state)
{
    (void)state;
    assert_int_equal(uvm_normalize_memory_mb(0), 0);
    assert_int_equal(uvm_normalize_memory_mb(1), 2);
    assert_int_equal(uvm_normalize_memory_mb(1023), 1024);
    assert_int_equal(uvm_normalize_memory_mb(65535), 65536);
    assert_int_equal(uvm_normalize_processor_count(16, 8), 8);
    assert_int_equal(uvm_normalize_processor_count(0, 8), 0);
    assert_int_equal(uvm_normalize_processor_count(-1, 8), -1);
    assert_int_equal(uvm_normalize_processor_count(4, 0), 4);
}

static void test_single_cpu_host_default(void **state)
{
    (void)state;
    struct uvm_host host = test_host(boot_files);
    host.logical_processors = 1;
    struct uvm_lcow_options o;
    assert_int_equal(uvm_lcow_options_init(&o, "x@vm", NULL, NULL, "C:\\LB", &host, NULL), 0);
    assert_int_equal(o.common.processor_count, 1);
    assert_string_equal(o.kernel_file, "vmlinux");
    char *cmd = uvm_lcow_kernel_cmdline(&o);
    assert_non_null(strstr(cmd, " nr_cpus=1 "));
    free(cmd);
    uvm_lcow_options_free(&o);
}

/* HEAD extras: time sync, extra exec args, writable overlay, service table,
 * graphics console, forward stdout. */
static void test_cmdline_extras(void **state)
{
    (void)state;
    json_t *spec = golden_load("g1_lcow_default.input.json");
    json_t *anns = json_object_get(spec, "annotations");
    json_object_set_new(anns, ANN_TIMESYNC_DISABLE, json_string("1"));
    json_object_set_new(anns, ANN_EXTRA_EXEC_ARGS, json_string("-foo bar"));
    json_object_set_new(anns, ANN_WRITABLE_OVERLAY_DIRS, json_string("T"));
    json_object_set_new(anns, ANN_PREFERRED_ROOTFS_TYPE, json_string("vhd"));
    json_object_set_new(anns,
                        ANN_HVSOCKET_SERVICE_TABLE_PREFIX "{0000006D-FACB-11E6-BD58-64006A7986D3}",
                        json_string("{\"AllowWildcardBinds\":true}"));
    struct uvm_host host = test_host(boot_files_vhd);
    struct uvm_lcow_options o;
    shim_error_t *err = NULL;
    assert_int_equal(uvm_lcow_options_init(&o, "p1@vm", "shim.exe", "debug", NULL, &host, &err), 0);
    assert_int_equal(oci_lcow_uvm_options(spec, NULL, &o, &err), 0);
    o.forward_stdout = true;
    char *cmd = uvm_lcow_kernel_cmdline(&o);
    assert_string_equal(cmd, "root=/dev/pmem0 ro rootwait init=/init "
                             "initcall_blacklist=virtio_vsock_init 8250_core.nr_uarts=0 panic=-1 "
                             "quiet pci=off nr_cpus=2 brd.rd_nr=0 pmtmr=0 -- -e 1 -w "
                             "/bin/vsockexec -o 109 -e 109 /bin/gcs -v4 -log-format json "
                             "-loglevel debug -foo bar -disable-time-sync");
    free(cmd);
    json_t *doc = uvm_lcow_document(&o, &err);
    assert_non_null(doc);
    json_t *table = json_object_get(
        json_object_get(
            json_object_get(json_object_get(json_object_get(doc, "VirtualMachine"), "Devices"),
                            "HvSocket"),
            "HvSocketConfig"),
        "ServiceTable");
    assert_true(json_matches_text(
        table, "{\"0000006d-facb-11e6-bd58-64006a7986d3\":{\"AllowWildcardBinds\":true}}"));
    json_decref(doc);
    o.common.enable_graphics_console = true;
    cmd = uvm_lcow_kernel_cmdline(&o);
    assert_non_null(strstr(cmd, "8250_core.nr_uarts=0 console=tty pci=off"));
    free(cmd);
    uvm_lcow_options_free(&o);
    json_decref(spec);
}

static void test_verify_rules(void **state)
{
    (void)state;
    struct uvm_host host = test_host(NULL);
    host.file_exists = NULL;
    struct uvm_lcow_options o;
    shim_error_t *err = NULL;
    assert_int_equal(uvm_lcow_options_init(&o, "p@vm", NULL, NULL, NULL, &host, NULL), 0);
    assert_int_equal(uvm_lcow_verify_options(&o, NULL), 0);
    o.scsi_controller_count = 5;
    assert_int_equal(uvm_lcow_verify_options(&o, &err), -1);
    assert_non_null(strstr(err->msg, "SCSI controller count"));
    error_free(err);
    o.scsi_controller_count = 1;
    o.enable_cold_discard_hint = true;
    o.common.host.build = 18000;
    o.kernel_direct = false;
    assert_int_equal(uvm_lcow_verify_options(&o, &err), -1);
    assert_non_null(strstr(err->msg, "EnableColdDiscardHint"));
    error_free(err);
    o.enable_cold_discard_hint = false;
    o.kernel_direct = true;
    assert_int_equal(uvm_lcow_verify_options(&o, &err), -1);
    assert_non_null(strstr(err->msg, "KernelDirectBoot"));
    error_free(err);
    o.kernel_direct = false;
    o.common.memory_size_mb = 0;
    assert_int_equal(uvm_lcow_verify_options(&o, &err), -1);
    assert_non_null(strstr(err->msg, "MemorySizeInMB"));
    error_free(err);
    o.common.memory_size_mb = 512;
    uvm_set_string(&o.common.cpu_group_id, "g", NULL);
    uvm_set_string(&o.common.resource_partition_id, "r", NULL);
    assert_int_equal(uvm_lcow_verify_options(&o, &err), -1);
    assert_non_null(strstr(err->msg, "resource partition"));
    error_free(err);
    uvm_lcow_options_free(&o);
    assert_int_equal(uvm_lcow_options_init(&o, "", NULL, NULL, NULL, &host, &err), -1);
    error_free(err);
    err = NULL;
    /* A Windows spec is not an LCOW sandbox. */
    json_t *wspec = json_loads("{\"windows\":{}}", 0, NULL);
    assert_int_equal(uvm_lcow_options_init(&o, "p@vm", NULL, NULL, NULL, &host, NULL), 0);
    assert_int_equal(oci_lcow_uvm_options(wspec, NULL, &o, &err), -1);
    assert_non_null(strstr(err->msg, "linux"));
    error_free(err);
    uvm_lcow_options_free(&o);
    json_decref(wspec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_g1_default),
        cmocka_unit_test(test_g1_key_order),
        cmocka_unit_test(test_g1_no_forbidden_keys),
        cmocka_unit_test(test_g2_resources),
        cmocka_unit_test(test_g3_options_vs_annotations),
        cmocka_unit_test(test_g4_uefi),
        cmocka_unit_test(test_g5a_vhd_vpmem),
        cmocka_unit_test(test_g5b_vhd_scsi),
        cmocka_unit_test(test_g5c_vhd_physical),
        cmocka_unit_test(test_g6_debug_console),
        cmocka_unit_test(test_g10_validation),
        cmocka_unit_test(test_missing_rootfs),
        cmocka_unit_test(test_malformed_annotations),
        cmocka_unit_test(test_invalid_processor_values),
        cmocka_unit_test(test_normalization),
        cmocka_unit_test(test_single_cpu_host_default),
        cmocka_unit_test(test_cmdline_extras),
        cmocka_unit_test(test_verify_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
