/* Annotation parsing, option merging, expansion and spec classification. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "oci/annotations.h"
#include "oci/spec.h"
#include "test/golden/golden.h"

static json_t *spec_with(const char *text)
{
    json_t *s = json_loads(text, 0, NULL);
    assert_non_null(s);
    return s;
}

static void test_parse_bool(void **state)
{
    (void)state;
    static const char *const yes[] = {"1", "t", "T", "TRUE", "true", "True"};
    static const char *const no[] = {"0", "f", "F", "FALSE", "false", "False"};
    static const char *const bad[] = {"", "yes", "tRUE", " true", "true ", "2", "on"};
    bool b;
    for (size_t i = 0; i < 6; i++) {
        assert_int_equal(oci_parse_bool(yes[i], &b), 0);
        assert_true(b);
        assert_int_equal(oci_parse_bool(no[i], &b), 0);
        assert_false(b);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(oci_parse_bool(bad[i], &b), -1);
}

static void test_parse_ints(void **state)
{
    (void)state;
    int32_t i;
    uint32_t u;
    uint64_t q;
    assert_int_equal(oci_parse_int32("-2147483648", &i), 0);
    assert_int_equal(i, INT32_MIN);
    assert_int_equal(oci_parse_int32("+7", &i), 0);
    assert_int_equal(i, 7);
    assert_int_equal(oci_parse_int32("2147483648", &i), -1);
    assert_int_equal(oci_parse_int32("", &i), -1);
    assert_int_equal(oci_parse_int32("-", &i), -1);
    assert_int_equal(oci_parse_int32("0x10", &i), -1);
    assert_int_equal(oci_parse_int32("1_000", &i), -1);
    assert_int_equal(oci_parse_uint32("4294967295", &u), 0);
    assert_int_equal(u, UINT32_MAX);
    assert_int_equal(oci_parse_uint32("4294967296", &u), -1);
    assert_int_equal(oci_parse_uint32("+1", &u), -1);
    assert_int_equal(oci_parse_uint32("-1", &u), -1);
    assert_int_equal(oci_parse_uint64("9223372036854775807", &q), 0);
    assert_int_equal(oci_parse_uint64("9223372036854775808", &q), -1);
    assert_int_equal(oci_parse_uint64("99999999999999999999999", &q), -1);
    assert_int_equal(oci_parse_uint64("12 ", &q), -1);
}

static void test_typed_readers(void **state)
{
    (void)state;
    json_t *s =
        spec_with("{\"annotations\":{\"" ANN_ALLOW_OVERCOMMIT "\":\"False\",\"" ANN_VPMEM_COUNT
                  "\":\"bogus\",\"" ANN_PROCESSOR_COUNT "\":7}}");
    bool b = true;
    shim_error_t *err = NULL;
    assert_int_equal(oci_annotation_bool(s, ANN_ALLOW_OVERCOMMIT, true, &b, &err), 0);
    assert_false(b);
    assert_int_equal(oci_annotation_bool(s, ANN_VPCI_ENABLED, true, &b, &err), 0);
    assert_true(b);
    uint32_t u = 5;
    assert_int_equal(oci_annotation_uint32(s, ANN_VPMEM_COUNT, 64, &u, &err), -1);
    assert_int_equal(err->code, RPC_INVALID_ARGUMENT);
    assert_non_null(strstr(err->msg, ANN_VPMEM_COUNT));
    assert_non_null(strstr(err->msg, "bogus"));
    error_free(err);
    err = NULL;
    int32_t i = 0;
    /* A JSON number where a string is required. */
    assert_int_equal(oci_annotation_int32(s, ANN_PROCESSOR_COUNT, 2, &i, &err), -1);
    assert_non_null(strstr(err->msg, ANN_PROCESSOR_COUNT));
    error_free(err);
    err = NULL;
    assert_int_equal(oci_annotations_validate(s, &err), -1);
    error_free(err);
    json_decref(s);
    /* No annotations at all: defaults. */
    s = spec_with("{}");
    uint64_t q = 0;
    assert_int_equal(oci_annotation_uint64(s, ANN_MEMORY_SIZE_MB, 1024, &q, NULL), 0);
    assert_int_equal(q, 1024);
    assert_int_equal(oci_annotations_validate(s, NULL), 0);
    json_decref(s);
    s = spec_with("{\"annotations\":[1]}");
    assert_int_equal(oci_annotations_validate(s, NULL), -1);
    json_decref(s);
}

static void test_validate_names_key(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {ANN_MEMORY_SIZE_MB, "12MB"},     {ANN_FULLY_PHYSICALLY_BACKED, "yes"},
        {ANN_CONTAINER_CPU_LIMIT, "1.5"}, {ANN_DISABLE_HOST_PROCESS, "nope"},
        {ANN_VPMEM_SIZE, "-4096"},        {ANN_STORAGE_QOS_BANDWIDTH, "9999999999"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *s = json_pack("{s:{s:s}}", "annotations", cases[i][0], cases[i][1]);
        shim_error_t *err = NULL;
        assert_int_equal(oci_annotations_validate(s, &err), -1);
        if (strstr(err->msg, cases[i][0]) == NULL)
            fail_msg("error '%s' does not name %s", err->msg, cases[i][0]);
        error_free(err);
        json_decref(s);
    }
    json_t *s = json_pack("{s:{s:s,s:s}}", "annotations", "io.microsoft.unknown", "anything",
                          ANN_CONSOLE_PIPE, "");
    assert_int_equal(oci_annotations_validate(s, NULL), 0);
    json_decref(s);
}

static void test_update_from_options(void **state)
{
    (void)state;
    json_t *s =
        spec_with("{\"annotations\":{\"" ANN_PROCESSOR_COUNT "\":\"3\",\"keep\":\"mine\"}}");
    runhcs_options opts = CONTAINERD__RUNHCS__V1__OPTIONS__INIT;
    opts.boot_files_root_path = "C:\\boot";
    opts.vm_processor_count = 6;
    opts.vm_memory_size_in_mb = -1; /* not positive: ignored */
    opts.ncproxyaddr = "npipe:////./pipe/ncproxy";
    Containerd__Runhcs__V1__Options__DefaultContainerAnnotationsEntry e1 =
        CONTAINERD__RUNHCS__V1__OPTIONS__DEFAULT_CONTAINER_ANNOTATIONS_ENTRY__INIT;
    Containerd__Runhcs__V1__Options__DefaultContainerAnnotationsEntry e2 = e1;
    e1.key = "keep";
    e1.value = "default";
    e2.key = "added";
    e2.value = "yes";
    Containerd__Runhcs__V1__Options__DefaultContainerAnnotationsEntry *entries[] = {&e1, &e2};
    opts.n_default_container_annotations = 2;
    opts.default_container_annotations = entries;
    assert_int_equal(oci_update_spec_from_options(s, &opts, NULL), 0);
    assert_true(json_matches_text(json_object_get(s, "annotations"),
                                  "{\"" ANN_PROCESSOR_COUNT "\":\"3\",\"keep\":\"mine\","
                                  "\"" ANN_BOOT_FILES_ROOT_PATH "\":\"C:\\\\boot\","
                                  "\"" ANN_NCPROXY "\":\"npipe:////./pipe/ncproxy\","
                                  "\"added\":\"yes\"}"));
    json_decref(s);
    /* No annotations object yet; NULL options are a no-op. */
    s = spec_with("{}");
    assert_int_equal(oci_update_spec_from_options(s, NULL, NULL), 0);
    assert_null(json_object_get(s, "annotations"));
    opts.n_default_container_annotations = 0;
    assert_int_equal(oci_update_spec_from_options(s, &opts, NULL), 0);
    assert_string_equal(oci_annotation(s, ANN_PROCESSOR_COUNT), "6");
    assert_null(oci_annotation(s, ANN_MEMORY_SIZE_MB));
    json_decref(s);
}

static void test_disable_unsafe_expansion(void **state)
{
    (void)state;
    json_t *s = spec_with("{\"annotations\":{\"" ANN_DISABLE_UNSAFE_OPERATIONS "\":\"true\"}}");
    assert_int_equal(oci_process_annotations(s, NULL), 0);
    assert_string_equal(oci_annotation(s, ANN_WCOW_DISABLE_GMSA), "true");
    assert_string_equal(oci_annotation(s, ANN_DISABLE_WRITABLE_SHARES), "true");
    assert_string_equal(oci_annotation(s, ANN_VSMB_NO_DIRECT_MAP), "true");
    assert_string_equal(oci_annotation(s, ANN_DISABLE_HOST_PROCESS), "true");
    json_decref(s);
    /* Same explicit value: fine. Different spelling: conflict naming the key. */
    s = spec_with("{\"annotations\":{\"" ANN_DISABLE_UNSAFE_OPERATIONS
                  "\":\"true\",\"" ANN_VSMB_NO_DIRECT_MAP "\":\"true\"}}");
    assert_int_equal(oci_process_annotations(s, NULL), 0);
    json_decref(s);
    s = spec_with("{\"annotations\":{\"" ANN_DISABLE_UNSAFE_OPERATIONS
                  "\":\"true\",\"" ANN_DISABLE_WRITABLE_SHARES "\":\"True\"}}");
    shim_error_t *err = NULL;
    assert_int_equal(oci_process_annotations(s, &err), -1);
    assert_non_null(strstr(err->msg, ANN_DISABLE_WRITABLE_SHARES));
    error_free(err);
    json_decref(s);
    /* A disabled host-process container. */
    s = spec_with("{\"windows\":{},\"annotations\":{\"" ANN_DISABLE_UNSAFE_OPERATIONS
                  "\":\"true\",\"" ANN_HOST_PROCESS "\":\"true\"}}");
    err = NULL;
    assert_int_equal(oci_process_annotations(s, &err), -1);
    assert_non_null(strstr(err->msg, ANN_HOST_PROCESS));
    error_free(err);
    json_decref(s);
    s = spec_with("{\"annotations\":{\"" ANN_DISABLE_UNSAFE_OPERATIONS "\":\"maybe\"}}");
    assert_int_equal(oci_process_annotations(s, &err), -1);
    assert_non_null(strstr(err->msg, ANN_DISABLE_HOST_PROCESS));
    error_free(err);
    json_decref(s);
}

static void test_classification(void **state)
{
    (void)state;
    static const struct {
        const char *spec;
        int rc;
        enum oci_spec_kind kind;
        bool lcow, wcow, isolated;
    } cases[] = {
        {"{\"linux\":{}}", 0, OCI_KIND_LCOW, true, false, true},
        {"{\"linux\":{},\"windows\":{}}", 0, OCI_KIND_LCOW, true, false, true},
        {"{\"windows\":{}}", 0, OCI_KIND_ARGON, false, true, false},
        {"{\"windows\":{\"hyperv\":{}}}", 0, OCI_KIND_WCOW_HYPERV, false, true, true},
        {"{\"windows\":{},\"annotations\":{\"" ANN_HOST_PROCESS "\":\"true\"}}", 0,
         OCI_KIND_HOST_PROCESS, false, true, false},
        {"{\"windows\":{},\"annotations\":{\"" ANN_HOST_PROCESS "\":\"True\"}}", 0, OCI_KIND_ARGON,
         false, true, false},
        {"{\"windows\":{\"hyperv\":{}},\"annotations\":{\"" ANN_HOST_PROCESS "\":\"true\"}}", -1, 0,
         false, true, true},
        {"{}", -1, 0, false, false, false},
        {"{\"linux\":null,\"windows\":null}", -1, 0, false, false, false},
        {"[]", -1, 0, false, false, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *s = json_loads(cases[i].spec, 0, NULL);
        enum oci_spec_kind kind = OCI_KIND_LCOW;
        shim_error_t *err = NULL;
        int rc = oci_classify(s, &kind, &err);
        assert_int_equal(rc, cases[i].rc);
        if (rc == 0)
            assert_int_equal(kind, cases[i].kind);
        else
            error_free(err);
        assert_int_equal(oci_is_lcow(s), cases[i].lcow);
        assert_int_equal(oci_is_wcow(s), cases[i].wcow);
        assert_int_equal(oci_is_isolated(s), cases[i].isolated);
        json_decref(s);
    }
    assert_string_equal(oci_spec_kind_name(OCI_KIND_ARGON), "argon");
}

static void test_sandbox_type(void **state)
{
    (void)state;
    enum oci_sandbox_type t;
    const char *id;
    json_t *s = spec_with("{}");
    assert_int_equal(oci_sandbox_type_and_id(s, &t, &id, NULL), 0);
    assert_int_equal(t, OCI_SANDBOX_NONE);
    assert_null(id);
    json_decref(s);
    s = spec_with("{\"annotations\":{\"" ANN_K8S_CONTAINER_TYPE
                  "\":\"container\",\"" ANN_K8S_SANDBOX_ID "\":\"pod\"}}");
    assert_int_equal(oci_sandbox_type_and_id(s, &t, &id, NULL), 0);
    assert_int_equal(t, OCI_SANDBOX_CONTAINER);
    assert_string_equal(id, "pod");
    json_decref(s);
    static const char *const bad[] = {
        "{\"annotations\":{\"" ANN_K8S_CONTAINER_TYPE "\":\"sandbox\"}}",
        "{\"annotations\":{\"" ANN_K8S_SANDBOX_ID "\":\"p\"}}",
        "{\"annotations\":{\"" ANN_K8S_CONTAINER_TYPE "\":\"pod\",\"" ANN_K8S_SANDBOX_ID
        "\":\"p\"}}",
    };
    for (size_t i = 0; i < 3; i++) {
        s = spec_with(bad[i]);
        shim_error_t *err = NULL;
        assert_int_equal(oci_sandbox_type_and_id(s, &t, &id, &err), -1);
        assert_non_null(strstr(err->msg, ANN_K8S_CONTAINER_TYPE));
        error_free(err);
        json_decref(s);
    }
}

static void test_annotation_set(void **state)
{
    (void)state;
    json_t *s = spec_with("{\"annotations\":null}");
    assert_int_equal(oci_annotation_set(s, "a", "b", NULL), 0);
    assert_string_equal(oci_annotation(s, "a"), "b");
    json_decref(s);
    s = spec_with("{\"annotations\":\"x\"}");
    shim_error_t *err = NULL;
    assert_int_equal(oci_annotation_set(s, "a", "b", &err), -1);
    error_free(err);
    assert_int_equal(oci_update_spec_from_options(s, NULL, NULL), 0);
    json_decref(s);
}

static void test_apply_runtime_options(void **state)
{
    (void)state;
    runhcs_options opts = CONTAINERD__RUNHCS__V1__OPTIONS__INIT;
    opts.sandbox_isolation = CONTAINERD__RUNHCS__V1__OPTIONS__SANDBOX_ISOLATION__HYPERVISOR;
    opts.sandbox_platform = "windows/amd64";
    opts.vm_processor_count = 4;
    json_t *s = spec_with("{\"windows\":{\"layerFolders\":[]}}");
    assert_int_equal(oci_apply_runtime_options(s, &opts, NULL), 0);
    assert_true(json_matches_text(s, "{\"windows\":{\"layerFolders\":[],\"hyperv\":{}},"
                                     "\"annotations\":{\"" ANN_PROCESSOR_COUNT "\":\"4\"}}"));
    enum oci_spec_kind kind;
    assert_int_equal(oci_classify(s, &kind, NULL), 0);
    assert_int_equal(kind, OCI_KIND_WCOW_HYPERV);
    /* Platform mismatch and unknown platform. */
    opts.sandbox_platform = "linux/amd64";
    shim_error_t *err = NULL;
    assert_int_equal(oci_apply_runtime_options(s, &opts, &err), -1);
    assert_non_null(strstr(err->msg, "linux/amd64"));
    error_free(err);
    err = NULL;
    opts.sandbox_platform = "plan9/amd64";
    assert_int_equal(oci_apply_runtime_options(s, &opts, &err), -1);
    error_free(err);
    json_decref(s);
    /* LCOW with HYPERVISOR: nothing to add; linux platform matches. */
    s = spec_with("{\"linux\":{},\"windows\":{}}");
    opts.sandbox_platform = "linux/amd64";
    assert_int_equal(oci_apply_runtime_options(s, &opts, NULL), 0);
    assert_null(json_object_get(json_object_get(s, "windows"), "hyperv"));
    json_decref(s);
    /* Malformed annotations surface here too. */
    s = spec_with("{\"linux\":{},\"annotations\":{\"" ANN_VPCI_ENABLED "\":\"x\"}}");
    err = NULL;
    assert_int_equal(oci_apply_runtime_options(s, NULL, &err), -1);
    assert_non_null(strstr(err->msg, ANN_VPCI_ENABLED));
    error_free(err);
    json_decref(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_bool),          cmocka_unit_test(test_parse_ints),
        cmocka_unit_test(test_typed_readers),       cmocka_unit_test(test_validate_names_key),
        cmocka_unit_test(test_update_from_options), cmocka_unit_test(test_disable_unsafe_expansion),
        cmocka_unit_test(test_classification),      cmocka_unit_test(test_sandbox_type),
        cmocka_unit_test(test_annotation_set),      cmocka_unit_test(test_apply_runtime_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
