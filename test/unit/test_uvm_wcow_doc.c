/* WCOW UVM document (hcs-documents.md 3.1) from a sandbox spec. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "oci/uvm_options.h"
#include "test/golden/golden.h"
#include "uvm/doc_uvm.h"

static const char *const layer_files[] = {"C:\\Base\\UtilityVM", NULL};

static json_t *build(const json_t *spec, const runhcs_options *opts, const char *const *files,
                     shim_error_t **err)
{
    struct uvm_host host = {.build = 20348,
                            .logical_processors = 8,
                            .file_exists = files ? golden_file_exists : NULL,
                            .ctx = (void *)files};
    struct uvm_wcow_options o;
    if (uvm_wcow_options_init(&o, "w1@vm", "shim.exe", &host, err) < 0)
        return NULL;
    json_t *doc = NULL;
    if (oci_wcow_uvm_options(spec, opts, &o, err) == 0)
        doc = uvm_wcow_document(&o, err);
    uvm_wcow_options_free(&o);
    return doc;
}

static void check(const char *name)
{
    char in[128], out[128];
    snprintf(in, sizeof(in), "%s.input.json", name);
    snprintf(out, sizeof(out), "%s.expected.json", name);
    json_t *spec = golden_load(in);
    assert_non_null(spec);
    shim_error_t *err = NULL;
    json_t *doc = build(spec, NULL, layer_files, &err);
    if (doc == NULL)
        fail_msg("%s: %s", name, err->msg);
    assert_true(golden_matches(doc, out));
    json_decref(doc);
    json_decref(spec);
}

static void test_default(void **state)
{
    (void)state;
    check("wcow_uvm_default");
}

static void test_physical_dump_console(void **state)
{
    (void)state;
    check("wcow_uvm_physical");
}

static void test_options_and_annotations(void **state)
{
    (void)state;
    json_t *spec = golden_load("wcow_uvm_default.input.json");
    json_t *anns = json_object_get(spec, "annotations");
    json_object_set_new(anns, "io.microsoft.virtualmachine.disablecompartmentnamespace",
                        json_string("true"));
    json_object_set_new(anns, "io.microsoft.virtualmachine.cpugroup.id",
                        json_string("00000000-0000-0000-0000-000000000001"));
    runhcs_options opts = CONTAINERD__RUNHCS__V1__OPTIONS__INIT;
    opts.vm_memory_size_in_mb = 2049;
    opts.vm_processor_count = 12;
    /* No file probing: the base layer (second to last) holds the UVM image. */
    shim_error_t *err = NULL;
    json_t *doc = build(spec, &opts, NULL, &err);
    assert_non_null(doc);
    json_t *vm = json_object_get(doc, "VirtualMachine");
    assert_null(json_object_get(vm, "RegistryChanges"));
    assert_true(
        json_matches_text(json_object_get(vm, "ComputeTopology"),
                          "{\"Memory\":{\"SizeInMB\":2050,\"AllowOvercommit\":true,"
                          "\"EnableHotHint\":true},\"Processor\":{\"Count\":8,"
                          "\"CpuGroup\":{\"Id\":\"00000000-0000-0000-0000-000000000001\"}}}"));
    json_decref(doc);
    json_decref(spec);
}

static void test_errors(void **state)
{
    (void)state;
    shim_error_t *err = NULL;
    /* No layer holds UtilityVM. */
    static const char *const none[] = {NULL};
    json_t *spec = golden_load("wcow_uvm_default.input.json");
    assert_null(build(spec, NULL, none, &err));
    assert_non_null(strstr(err->msg, "UtilityVM"));
    error_free(err);
    err = NULL;
    /* Too few layer folders. */
    json_object_set_new(json_object_get(spec, "windows"), "layerFolders",
                        json_pack("[s]", "C:\\S"));
    assert_null(build(spec, NULL, layer_files, &err));
    assert_non_null(strstr(err->msg, "layerFolders"));
    error_free(err);
    err = NULL;
    /* No layer folders and no caller-provided paths. */
    json_object_del(json_object_get(spec, "windows"), "layerFolders");
    assert_null(build(spec, NULL, layer_files, &err));
    assert_non_null(strstr(err->msg, "UVM image path"));
    error_free(err);
    err = NULL;
    /* Malformed annotation names the key. */
    json_decref(spec);
    spec = golden_load("wcow_uvm_default.input.json");
    json_object_set_new(json_object_get(spec, "annotations"),
                        "io.microsoft.virtualmachine.wcow.virtualSMB.nodirectmap",
                        json_string("nope"));
    assert_null(build(spec, NULL, layer_files, &err));
    assert_non_null(strstr(err->msg, "io.microsoft.virtualmachine.wcow.virtualSMB.nodirectmap"));
    error_free(err);
    err = NULL;
    json_decref(spec);
    /* An LCOW spec is not a WCOW sandbox. */
    spec = json_loads("{\"linux\":{},\"windows\":{}}", 0, NULL);
    assert_null(build(spec, NULL, layer_files, &err));
    assert_non_null(strstr(err->msg, "Windows"));
    error_free(err);
    json_decref(spec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default),
        cmocka_unit_test(test_physical_dump_console),
        cmocka_unit_test(test_options_and_annotations),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
