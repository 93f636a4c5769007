/* Argon (process-isolated WCOW) container document, hcs-documents.md 3.2. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "hcs/doc_container.h"
#include "oci/annotations.h"
#include "test/golden/golden.h"

static const struct hcs_layer layers[] = {
    {"8e1c2f5a-6b1d-5c3e-9f0a-1b2c3d4e5f60", "C:\\L1"},
    {"3a4b5c6d-7e8f-5a9b-8c0d-1e2f3a4b5c6d", "C:\\Base"},
};

static struct hcs_argon_params params(void)
{
    struct hcs_argon_params p = {
        .owner = "shim.exe",
        .volume_path = "\\\\?\\Volume{0d5c06a9-4b2b-4a4b-9d1c-3b4f2f1a9e01}",
        .layers = layers,
        .n_layers = 2,
    };
    return p;
}

static void test_golden(void **state)
{
    (void)state;
    json_t *spec = golden_load("argon_container.input.json");
    struct hcs_argon_params p = params();
    shim_error_t *err = NULL;
    json_t *doc = hcs_argon_document(spec, &p, &err);
    if (doc == NULL)
        fail_msg("%s", err->msg);
    assert_true(golden_matches(doc, "argon_container.expected.json"));
    json_decref(doc);
    json_decref(spec);
}

static json_t *minimal(void)
{
    return json_loads("{\"windows\":{}}", 0, NULL);
}

static void expect_fail(json_t *spec, const struct hcs_argon_params *p, const char *needle)
{
    shim_error_t *err = NULL;
    assert_null(hcs_argon_document(spec, p, &err));
    assert_non_null(err);
    if (strstr(err->msg, needle) == NULL)
        fail_msg("'%s' does not contain '%s'", err->msg, needle);
    error_free(err);
}

static void test_minimal_and_overrides(void **state)
{
    (void)state;
    json_t *spec = minimal();
    struct hcs_argon_params p = params();
    p.volume_path = "\\\\?\\Volume{0d5c06a9-4b2b-4a4b-9d1c-3b4f2f1a9e01}\\";
    p.n_layers = 1;
    json_t *doc = hcs_argon_document(spec, &p, NULL);
    assert_true(json_matches_text(
        json_object_get(doc, "Container"),
        "{\"GuestOs\":{},\"Storage\":{\"Layers\":[{\"Id\":\"8e1c2f5a-6b1d-5c3e-9f0a-"
        "1b2c3d4e5f60\",\"Path\":\"C:\\\\L1\"}],\"Path\":\"\\\\\\\\?\\\\Volume{0d5c06a9-4b2b-4a4b-"
        "9d1c-3b4f2f1a9e01}\\\\\"},\"RegistryChanges\":{\"AddValues\":[{\"Key\":{\"Hive\":"
        "\"System\",\"Name\":\"ControlSet001\\\\Control\"},\"Name\":\"WaitToKillServiceTimeout\","
        "\"Type\":\"String\",\"StringValue\":\"2147483647\"}]}}"));
    json_decref(doc);
    /* Annotations override spec resources. */
    json_t *res = json_pack("{s:{s:i},s:{s:I}}", "cpu", "shares", 300, "memory", "limit",
                            (json_int_t)1 << 30);
    json_object_set_new(json_object_get(spec, "windows"), "resources", res);
    oci_annotation_set(spec, ANN_CONTAINER_MEMORY_MB, "300", NULL);
    oci_annotation_set(spec, ANN_CONTAINER_CPU_WEIGHT, "500", NULL);
    oci_annotation_set(spec, ANN_CONTAINER_QOS_BANDWIDTH, "777", NULL);
    p.network_namespace = "override-ns";
    json_object_set_new(json_object_get(spec, "windows"), "network", json_object());
    doc = hcs_argon_document(spec, &p, NULL);
    json_t *c = json_object_get(doc, "Container");
    assert_true(json_matches_text(json_object_get(c, "Memory"), "{\"SizeInMB\":300}"));
    assert_true(json_matches_text(json_object_get(c, "Processor"), "{\"Weight\":500}"));
    assert_true(json_matches_text(json_object_get(json_object_get(c, "Storage"), "QoS"),
                                  "{\"BandwidthMaximum\":777}"));
    assert_true(
        json_matches_text(json_object_get(c, "Networking"), "{\"Namespace\":\"override-ns\"}"));
    json_decref(doc);
    json_decref(spec);
}

static void test_errors(void **state)
{
    (void)state;
    struct hcs_argon_params p = params();
    json_t *spec = minimal();
    /* CPU count and limit together. */
    oci_annotation_set(spec, ANN_CONTAINER_CPU_COUNT, "2", NULL);
    oci_annotation_set(spec, ANN_CONTAINER_CPU_LIMIT, "5000", NULL);
    expect_fail(spec, &p, "mutually exclusive");
    json_decref(spec);
    spec = minimal();
    oci_annotation_set(spec, ANN_CONTAINER_CPU_COUNT, "x", NULL);
    expect_fail(spec, &p, ANN_CONTAINER_CPU_COUNT);
    json_decref(spec);
    spec = minimal();
    oci_annotation_set(spec, ANN_CONTAINER_MEMORY_MB, "1.5", NULL);
    expect_fail(spec, &p, ANN_CONTAINER_MEMORY_MB);
    json_decref(spec);
    spec = minimal();
    oci_annotation_set(spec, ANN_PROCESS_DUMP_LOCATION, "C:\\d", NULL);
    oci_annotation_set(spec, ANN_WCOW_DUMP_TYPE, "huge", NULL);
    expect_fail(spec, &p, ANN_WCOW_DUMP_TYPE);
    json_decref(spec);
    spec = json_loads("{\"windows\":{},\"root\":{\"readonly\":true}}", 0, NULL);
    expect_fail(spec, &p, "Root.Readonly");
    json_decref(spec);
    spec = json_loads("{\"linux\":{},\"windows\":{}}", 0, NULL);
    expect_fail(spec, &p, "WCOW");
    json_decref(spec);
    spec = json_loads("{\"windows\":{},\"mounts\":[{\"destination\":\"C:\\\\x\",\"type\":"
                      "\"virtual-disk\",\"source\":\"C:\\\\a.vhdx\"}]}",
                      0, NULL);
    expect_fail(spec, &p, "virtual-disk");
    json_decref(spec);
    spec = json_loads("{\"windows\":{},\"mounts\":[{\"destination\":\"C:\\\\x\"}]}", 0, NULL);
    expect_fail(spec, &p, "source");
    json_decref(spec);
    spec = minimal();
    p.volume_path = "C:\\scratch";
    expect_fail(spec, &p, "volume path");
    p.volume_path = "\\\\?\\Volume{0d5c06a9-4b2b-4a4b-9d1c-3b4f2f1a9e0}\\";
    expect_fail(spec, &p, "volume path");
    p = params();
    p.n_layers = 0;
    expect_fail(spec, &p, "layer");
    json_decref(spec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden),
        cmocka_unit_test(test_minimal_and_overrides),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
