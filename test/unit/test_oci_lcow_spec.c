/* G7: the OCI spec an LCOW container gets in the guest, and the
 * ContainerConfig document of the GCS Create message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "hcs/doc_container.h"
#include "oci/annotations.h"
#include "oci/lcow_spec.h"
#include "test/golden/golden.h"

static json_t *g7_config(json_t *input)
{
    shim_error_t *err = NULL;
    json_t *spec = oci_lcow_container_spec(input, "c1", &err);
    if (spec == NULL)
        fail_msg("%s", err->msg);
    json_t *config = hcs_lcow_container_config("c1", spec, &err);
    json_decref(spec);
    assert_non_null(config);
    return config;
}

/* Note: the reference lists linux.cgroupsPath = "" after the transform; Go's
 * omitempty drops that empty string on the wire, so the golden omits it. */
static void test_g7_transform(void **state)
{
    (void)state;
    json_t *input = golden_load("g7_lcow_container.input.json");
    assert_non_null(input);
    json_t *before = json_deep_copy(input);
    json_t *config = g7_config(input);
    assert_true(golden_matches(config, "g7_lcow_container.expected.json"));
    /* The input spec is not modified. */
    assert_true(json_equal(input, before));
    json_decref(config);
    json_decref(before);
    json_decref(input);
}

static void test_g7_privileged_drops_seccomp(void **state)
{
    (void)state;
    json_t *input = golden_load("g7_lcow_container.input.json");
    oci_annotation_set(input, ANN_LCOW_PRIVILEGED, "true", NULL);
    json_t *config = g7_config(input);
    json_t *expected = golden_load("g7_lcow_container.expected.json");
    json_t *espec = json_object_get(expected, "OciSpecification");
    json_object_del(json_object_get(espec, "linux"), "seccomp");
    json_object_set_new(espec, "annotations", json_pack("{s:s}", ANN_LCOW_PRIVILEGED, "true"));
    if (!json_equal(config, expected)) {
        golden_print_diff(config, expected);
        fail();
    }
    json_decref(expected);
    json_decref(config);
    json_decref(input);
}

static void test_config_string(void **state)
{
    (void)state;
    json_t *input = golden_load("g7_lcow_container.input.json");
    json_t *spec = oci_lcow_container_spec(input, "c1", NULL);
    char *s = hcs_lcow_container_config_string("c1", spec, NULL);
    assert_non_null(s);
    /* Compact, emitted in hcsshim's struct order. */
    assert_true(strncmp(s,
                        "{\"SchemaVersion\":{\"Major\":2,\"Minor\":1},\"OciBundlePath\":"
                        "\"/run/gcs/c/c1\",\"OciSpecification\":{",
                        88) == 0);
    assert_non_null(strstr(s, "\"ScratchDirPath\":\"/run/gcs/c/c1/scratch/c1\"}"));
    json_t *parsed = json_loads(s, 0, NULL);
    assert_true(golden_matches(parsed, "g7_lcow_container.expected.json"));
    json_decref(parsed);
    free(s);
    json_decref(spec);
    json_decref(input);
}

static void test_edge_cases(void **state)
{
    (void)state;
    shim_error_t *err = NULL;
    /* Not LCOW. */
    json_t *s = json_loads("{\"windows\":{}}", 0, NULL);
    assert_null(oci_lcow_container_spec(s, "c1", &err));
    error_free(err);
    err = NULL;
    json_decref(s);
    /* Bad id. */
    s = json_loads("{\"linux\":{}}", 0, NULL);
    assert_null(oci_lcow_container_spec(s, "../x", &err));
    error_free(err);
    err = NULL;
    assert_null(oci_lcow_container_spec(s, "", &err));
    error_free(err);
    err = NULL;
    /* No root, windows with nothing to keep, devices kept, quota non-zero. */
    json_decref(s);
    s = json_loads("{\"linux\":{\"resources\":{\"cpu\":{\"quota\":5000}}},"
                   "\"windows\":{\"layerFolders\":[\"a\"],\"devices\":[{\"id\":\"d\"}]}}",
                   0, NULL);
    json_t *out = oci_lcow_container_spec(s, "c2", &err);
    assert_true(json_matches_text(out, "{\"linux\":{\"resources\":{\"cpu\":{\"quota\":5000}}},"
                                       "\"windows\":{\"devices\":[{\"id\":\"d\"}]},"
                                       "\"root\":{\"path\":\"/run/gcs/c/c2/rootfs\"}}"));
    json_decref(out);
    json_decref(s);
    s = json_loads("{\"linux\":{},\"windows\":{\"network\":{\"networkNamespace\":\"\"}}}", 0, NULL);
    out = oci_lcow_container_spec(s, "c3", NULL);
    assert_null(json_object_get(out, "windows"));
    json_decref(out);
    json_decref(s);
    /* Malformed privileged annotation names the key. */
    s = json_pack("{s:{},s:{s:s}}", "linux", "annotations", ANN_LCOW_PRIVILEGED, "sure");
    assert_null(oci_lcow_container_spec(s, "c1", &err));
    assert_non_null(strstr(err->msg, ANN_LCOW_PRIVILEGED));
    error_free(err);
    json_decref(s);
    /* Config with no spec. */
    err = NULL;
    assert_null(hcs_lcow_container_config("c1", NULL, &err));
    error_free(err);
}

static void test_paths(void **state)
{
    (void)state;
    char *p = oci_lcow_mount_path("c1", 12);
    assert_string_equal(p, "/run/gcs/c/c1/mounts/m12");
    free(p);
    p = oci_lcow_bundle_path("c1");
    assert_string_equal(p, "/run/gcs/c/c1");
    free(p);
}

static void test_mount_kinds(void **state)
{
    (void)state;
    static const struct {
        const char *mount;
        int rc;
        enum oci_lcow_mount_kind kind;
    } cases[] = {
        {"{\"destination\":\"/proc\",\"type\":\"proc\",\"source\":\"proc\"}", 0,
         OCI_LCOW_MOUNT_OTHER},
        {"{\"destination\":\"/x\"}", 0, OCI_LCOW_MOUNT_OTHER},
        {"{\"destination\":\"/d\",\"type\":\"bind\",\"source\":\"C:\\\\d\"}", 0,
         OCI_LCOW_MOUNT_PLAN9},
        {"{\"destination\":\"/d\",\"type\":\"bind\",\"source\":\"sandbox://x\"}", 0,
         OCI_LCOW_MOUNT_SPECIAL},
        {"{\"destination\":\"/d\",\"type\":\"bind\",\"source\":\"hugepages://2M/h\"}", 0,
         OCI_LCOW_MOUNT_SPECIAL},
        {"{\"destination\":\"/d\",\"type\":\"bind\",\"source\":\"hugepages://1G/h\"}", 0,
         OCI_LCOW_MOUNT_PLAN9},
        {"{\"destination\":\"/d\",\"type\":\"virtual-disk\",\"source\":\"C:\\\\a.vhdx\"}", 0,
         OCI_LCOW_MOUNT_VIRTUAL_DISK},
        {"{\"destination\":\"/"
         "d\",\"type\":\"physical-disk\",\"source\":\"\\\\\\\\.\\\\PHYSICALDRIVE2\"}",
         0, OCI_LCOW_MOUNT_PHYSICAL_DISK},
        {"{\"destination\":\"/d\",\"type\":\"extensible-virtual-disk\",\"source\":\"evd://t/p\"}",
         0, OCI_LCOW_MOUNT_EVD},
        {"{\"destination\":\"/d\",\"type\":\"extensible-virtual-disk\",\"source\":\"C:\\\\p\"}", -1,
         0},
        {"{\"type\":\"bind\",\"source\":\"C:\\\\d\"}", -1, 0},
        {"{\"destination\":\"/d\",\"type\":\"bind\"}", -1, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *m = json_loads(cases[i].mount, 0, NULL);
        assert_non_null(m);
        enum oci_lcow_mount_kind k;
        shim_error_t *err = NULL;
        assert_int_equal(oci_lcow_mount_kind(m, &k, &err), cases[i].rc);
        if (cases[i].rc == 0)
            assert_int_equal(k, cases[i].kind);
        error_free(err);
        json_decref(m);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_g7_transform),  cmocka_unit_test(test_g7_privileged_drops_seccomp),
        cmocka_unit_test(test_config_string), cmocka_unit_test(test_edge_cases),
        cmocka_unit_test(test_paths),         cmocka_unit_test(test_mount_kinds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
