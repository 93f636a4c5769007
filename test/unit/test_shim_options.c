/* shim/options: the runtime options Any and isolation resolution. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "runtimeoptions/v1/api.pb-c.h"
#include "shim/options.h"

/* Packs msg into an Any with type_url; returns the serialized Any. */
static uint8_t *pack_any(const char *type_url, const ProtobufCMessage *msg, size_t *len)
{
    Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
    any.type_url = (char *)type_url;
    uint8_t *value = NULL;
    if (msg != NULL) {
        any.value.len = protobuf_c_message_get_packed_size(msg);
        value = malloc(any.value.len + 1);
        protobuf_c_message_pack(msg, value);
        any.value.data = value;
    }
    *len = google__protobuf__any__get_packed_size(&any);
    uint8_t *out = malloc(*len + 1);
    google__protobuf__any__pack(&any, out);
    free(value);
    return out;
}

static void test_empty(void **state)
{
    (void)state;
    struct shim_options o;
    assert_int_equal(shim_options_decode(NULL, 0, &o, NULL), 0);
    assert_string_equal(o.type_url, "");
    assert_null(o.runhcs);
    assert_int_equal(shim_options_log_level(&o, false), LOG_LEVEL_INFO);
    assert_int_equal(shim_options_log_level(&o, true), LOG_LEVEL_DEBUG);
    shim_options_free(&o);
}

static void test_runhcs(void **state)
{
    (void)state;
    Containerd__Runhcs__V1__Options opts = CONTAINERD__RUNHCS__V1__OPTIONS__INIT;
    opts.sandbox_isolation = CONTAINERD__RUNHCS__V1__OPTIONS__SANDBOX_ISOLATION__HYPERVISOR;
    opts.log_level = "trace";
    opts.vm_memory_size_in_mb = 2048;
    size_t len;
    uint8_t *bytes = pack_any("containerd.runhcs.v1.Options", &opts.base, &len);
    struct shim_options o;
    shim_error_t *err = NULL;
    assert_int_equal(shim_options_decode(bytes, len, &o, &err), 0);
    assert_non_null(o.runhcs);
    assert_int_equal(o.runhcs->vm_memory_size_in_mb, 2048);
    assert_int_equal(shim_options_log_level(&o, false), LOG_LEVEL_TRACE);
    shim_options_free(&o);
    free(bytes);

    /* A type URL with a prefix names the same type; debug without log_level. */
    Containerd__Runhcs__V1__Options dbg = CONTAINERD__RUNHCS__V1__OPTIONS__INIT;
    dbg.debug = 1;
    dbg.log_level = "nonsense"; /* invalid: ignored */
    bytes = pack_any("type.googleapis.com/containerd.runhcs.v1.Options", &dbg.base, &len);
    assert_int_equal(shim_options_decode(bytes, len, &o, &err), 0);
    assert_non_null(o.runhcs);
    assert_int_equal(shim_options_log_level(&o, false), LOG_LEVEL_DEBUG);
    shim_options_free(&o);
    free(bytes);
}

/* ctr --runtime-config-path on Linux (bytes from the spec, Appendix B). */
static void test_runtimeoptions_is_ignored(void **state)
{
    (void)state;
    static const uint8_t wire[] = "\x0a\x19runtimeoptions.v1.Options\x12\x1e\x12\x1c"
                                  "/etc/containerd/runtime.toml";
    struct shim_options o;
    assert_int_equal(shim_options_decode(wire, sizeof(wire) - 1, &o, NULL), 0);
    assert_string_equal(o.type_url, "runtimeoptions.v1.Options");
    assert_null(o.runhcs);
    shim_options_free(&o);
}

static void expect_decode_error(const uint8_t *data, size_t len, const char *needle)
{
    struct shim_options o;
    shim_error_t *err = NULL;
    assert_int_equal(shim_options_decode(data, len, &o, &err), -1);
    assert_int_equal(err->code, RPC_INVALID_ARGUMENT);
    if (strstr(err->msg, needle) == NULL)
        fail_msg("error \"%s\" does not mention \"%s\"", err->msg, needle);
    error_free(err);
}

static void test_malformed(void **state)
{
    (void)state;
    expect_decode_error((const uint8_t *)"\x0a\x40short", 7, "not a valid google.protobuf.Any");
    expect_decode_error((const uint8_t *)"\xff\xff\xff", 3, "not a valid");
    /* runhcs type whose value is not an Options message */
    static const uint8_t bad_value[] = "\x0a\x1c"
                                       "containerd.runhcs.v1.Options"
                                       "\x12\x02\x0a\x09";
    expect_decode_error(bad_value, sizeof(bad_value) - 1, "malformed containerd.runhcs.v1.Options");
    /* value but no type */
    expect_decode_error((const uint8_t *)"\x12\x01\x00", 3, "no type_url");
    /* enum out of range */
    static const uint8_t bad_enum[] = "\x0a\x1c"
                                      "containerd.runhcs.v1.Options"
                                      "\x12\x02\x30\x07";
    expect_decode_error(bad_enum, sizeof(bad_enum) - 1, "sandbox_isolation has unknown value 7");
    uint8_t *huge = calloc(1, SHIM_OPTIONS_MAX + 1);
    expect_decode_error(huge, SHIM_OPTIONS_MAX + 1, "too large");
    free(huge);
}

static void test_type_url(void **state)
{
    (void)state;
    assert_true(shim_type_url_is("a.b.C", "a.b.C"));
    assert_true(shim_type_url_is("x/y/a.b.C", "a.b.C"));
    assert_false(shim_type_url_is("a.b.CD", "a.b.C"));
    assert_false(shim_type_url_is(NULL, "a.b.C"));
}

static void spec(const char *json, struct bundle_spec *out)
{
    assert_int_equal(bundle_spec_parse(json, strlen(json), "t", out, NULL), 0);
}

static enum shim_isolation resolve(const char *container, const char *pod,
                                   const struct shim_options *o)
{
    struct bundle_spec c, p;
    spec(container, &c);
    if (pod)
        spec(pod, &p);
    enum shim_isolation iso;
    shim_error_t *err = NULL;
    if (shim_resolve_isolation(&c, pod ? &p : NULL, o, &iso, &err) < 0)
        fail_msg("%s", err->msg);
    bundle_spec_free(&c);
    if (pod)
        bundle_spec_free(&p);
    return iso;
}

static void test_isolation(void **state)
{
    (void)state;
    Containerd__Runhcs__V1__Options hv = CONTAINERD__RUNHCS__V1__OPTIONS__INIT;
    hv.sandbox_isolation = CONTAINERD__RUNHCS__V1__OPTIONS__SANDBOX_ISOLATION__HYPERVISOR;
    struct shim_options with_hv = {.type_url = "containerd.runhcs.v1.Options", .runhcs = &hv};
    Containerd__Runhcs__V1__Options proc = CONTAINERD__RUNHCS__V1__OPTIONS__INIT;
    struct shim_options with_proc = {.type_url = "containerd.runhcs.v1.Options", .runhcs = &proc};

    /* defaults: Linux -> hypervisor, Windows -> process unless hyperv */
    assert_int_equal(resolve("{\"linux\":{}}", NULL, NULL), SHIM_ISOLATION_HYPERVISOR);
    assert_int_equal(resolve("{\"windows\":{}}", NULL, NULL), SHIM_ISOLATION_PROCESS);
    assert_int_equal(resolve("{\"windows\":{\"hyperv\":{}}}", NULL, NULL),
                     SHIM_ISOLATION_HYPERVISOR);
    /* options */
    assert_int_equal(resolve("{\"windows\":{}}", NULL, &with_hv), SHIM_ISOLATION_HYPERVISOR);
    assert_int_equal(resolve("{\"linux\":{}}", NULL, &with_proc), SHIM_ISOLATION_HYPERVISOR);
    /* the container's annotation wins over everything */
    assert_int_equal(resolve("{\"linux\":{},\"annotations\":{\"io.runhcs.isolation\":\"process\"}}",
                             "{\"annotations\":{\"io.runhcs.isolation\":\"hypervisor\"}}",
                             &with_hv),
                     SHIM_ISOLATION_PROCESS);
    /* the pod's annotation wins over the options */
    assert_int_equal(resolve("{\"windows\":{}}",
                             "{\"annotations\":{\"io.runhcs.isolation\":\"process\"}}", &with_hv),
                     SHIM_ISOLATION_PROCESS);
    assert_int_equal(resolve("{\"windows\":{}}",
                             "{\"annotations\":{\"io.runhcs.isolation\":\"hypervisor\"}}", NULL),
                     SHIM_ISOLATION_HYPERVISOR);
    assert_string_equal(shim_isolation_name(SHIM_ISOLATION_HYPERVISOR), "hypervisor");

    struct bundle_spec c;
    spec("{\"annotations\":{\"io.runhcs.isolation\":\"Hyper-V\"}}", &c);
    enum shim_isolation iso;
    shim_error_t *err = NULL;
    assert_int_equal(shim_resolve_isolation(&c, NULL, NULL, &iso, &err), -1);
    assert_non_null(strstr(err->msg, "io.runhcs.isolation"));
    assert_non_null(strstr(err->msg, "Hyper-V"));
    error_free(err);
    bundle_spec_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_runhcs),
        cmocka_unit_test(test_runtimeoptions_is_ignored),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_type_url),
        cmocka_unit_test(test_isolation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
