/* GCS bridge message shapes: every builder against the spec's keys and the
 * §12 wire captures (byte-exact where the spec gives bytes), every parser
 * against case-insensitive keys, unknown keys and missing required keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gcs/bridge_frame.h"
#include "gcs/bridge_json.h"
#include "gcs/bridge_msg.h"

#define Z GCS_ZERO_ACTIVITY_ID

static char *dump(const json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT);
    assert_non_null(s);
    return s;
}

static void assert_json_text(json_t *v, const char *want)
{
    assert_non_null(v);
    char *s = dump(v);
    if (strcmp(s, want) != 0)
        fail_msg("JSON differs:\n got: %s\nwant: %s", s, want);
    free(s);
    json_decref(v);
}

static json_t *load(const char *text)
{
    json_error_t e;
    json_t *v = json_loads(text, 0, &e);
    if (v == NULL)
        fail_msg("bad test JSON: %s: %s", e.text, text);
    return v;
}

static size_t frame_size(uint32_t type, json_t *body)
{
    uint8_t *buf;
    size_t len;
    assert_int_equal(gcs_frame_encode(type, 3, body, &buf, &len, NULL), 0);
    free(buf);
    return len;
}

/* ---- §12 vectors ---------------------------------------------------------- */

static void test_vector_negotiate(void **state)
{
    (void)state;
    struct gcs_negotiate_request req = {.base = {.container_id = GCS_NULL_CONTAINER_ID},
                                        .minimum_version = 4,
                                        .maximum_version = 4};
    assert_json_text(gcs_negotiate_request_build(&req),
                     "{\"ContainerId\":\"" GCS_NULL_CONTAINER_ID "\",\"ActivityId\":\"" Z
                     "\",\"MinimumVersion\":4,\"MaximumVersion\":4}");

    struct gcs_negotiate_response resp = {.base = {.activity_id = Z}, .version = 4};
    gcs_capabilities_lcow_default(&resp.capabilities);
    json_t *body = gcs_negotiate_response_build(&resp);
    const char *want =
        "{\"Result\":0,\"ActivityId\":\"" Z "\",\"Version\":4,\"Capabilities\":{"
        "\"SupportedSchemaVersions\":[{\"Major\":2,\"Minor\":1}],\"RuntimeOsType\":\"Linux\","
        "\"GuestDefinedCapabilities\":{\"NamespaceAddRequestSupported\":true,"
        "\"SignalProcessSupported\":true,\"DumpStacksSupported\":true,"
        "\"DeleteContainerStateSupported\":true}}}";
    assert_int_equal(frame_size(0x20100b01, body), 342); /* size=342 in §12 */
    assert_json_text(body, want);

    /* parse the capture back */
    json_t *in = load(want);
    struct gcs_negotiate_response p;
    assert_int_equal(gcs_negotiate_response_parse(in, &p, NULL), 0);
    assert_int_equal(p.base.result, 0);
    assert_int_equal(p.version, 4);
    assert_string_equal(p.capabilities.runtime_os_type, "Linux");
    assert_true(p.capabilities.signal_process_supported);
    assert_true(p.capabilities.dump_stacks_supported);
    assert_true(p.capabilities.delete_container_state_supported);
    assert_true(p.capabilities.namespace_add_request_supported);
    assert_false(p.capabilities.send_host_create_message);
    json_decref(in);
}

static void test_vector_negotiate_unsupported(void **state)
{
    (void)state;
    const char *want =
        "{\"Result\":-1070137076,\"ActivityId\":\"" Z "\",\"ErrorMessage\":\"HRESULT: "
        "0xc037010c\",\"ErrorRecords\":[{\"Result\":-1070137076,\"Message\":\"HRESULT: "
        "0xc037010c\",\"ModuleName\":\"gcs\",\"FileName\":\"\",\"Line\":4294967295}]}";
    assert_json_text(
        gcs_error_response_build(GCS_HR_UNSUPPORTED_PROTOCOL, Z, "HRESULT: 0xc037010c"), want);
    struct gcs_negotiate_response resp = {.base = {.result = GCS_HR_UNSUPPORTED_PROTOCOL,
                                                   .activity_id = Z,
                                                   .error_message = "HRESULT: 0xc037010c"}};
    assert_json_text(gcs_negotiate_response_build(&resp), want);

    json_t *in = load(want);
    struct gcs_negotiate_response p;
    assert_int_equal(gcs_negotiate_response_parse(in, &p, NULL), 0);
    assert_int_equal(p.base.result, (int32_t)0xC037010C);
    assert_string_equal(p.base.error_message, "HRESULT: 0xc037010c");
    assert_int_equal(json_array_size(p.base.error_records), 1);
    struct gcs_error_record rec;
    assert_int_equal(gcs_error_record_parse(json_array_get(p.base.error_records, 0), &rec, NULL),
                     0);
    assert_int_equal(rec.result, (int32_t)0xC037010C);
    assert_string_equal(rec.module_name, "gcs");
    assert_int_equal(rec.line, 4294967295u);
    assert_null(rec.stack_trace);
    json_decref(in);

    /* The guest request with {2,3} parses. */
    in = load("{\"ContainerId\":\"x\",\"ActivityId\":\"" Z
              "\",\"MinimumVersion\":2,\"MaximumVersion\":3}");
    struct gcs_negotiate_request r;
    assert_int_equal(gcs_negotiate_request_parse(in, &r, NULL), 0);
    assert_int_equal(r.minimum_version, 2);
    assert_int_equal(r.maximum_version, 3);
    json_decref(in);
}

static void test_vector_notimpl(void **state)
{
    (void)state;
    const char *msg = "HRESULT 0x80004001: bridge: function not supported, header type: "
                      "ComputeSystemDumpStacksV1";
    json_t *body = gcs_error_response_build(GCS_HR_E_NOTIMPL, Z, msg);
    json_t *res = json_object_get(body, "Result");
    assert_int_equal(json_integer_value(res), -2147467263);
    assert_string_equal(json_string_value(json_object_get(body, "ErrorMessage")), msg);
    json_decref(body);
    /* no ActivityId when the request could not be parsed */
    assert_json_text(gcs_error_response_build(GCS_HR_INVALID_JSON, NULL, "bad"),
                     "{\"Result\":-1070137075,\"ErrorMessage\":\"bad\",\"ErrorRecords\":[{"
                     "\"Result\":-1070137075,\"Message\":\"bad\",\"ModuleName\":\"gcs\","
                     "\"FileName\":\"\",\"Line\":4294967295}]}");
}

static void test_vector_execute_process(void **state)
{
    (void)state;
    /* request as captured (the inner JSON has spaces) */
    const char *capture =
        "{\"ContainerId\":\"" GCS_NULL_CONTAINER_ID "\",\"ActivityId\":\"" Z
        "\",\"Settings\":{\"ProcessParameters\":\"{\\\"CommandArgs\\\": [\\\"/bin/sh\\\", "
        "\\\"-c\\\", \\\"sleep 0.5; exit 7\\\"], \\\"WorkingDirectory\\\": \\\"/\\\", "
        "\\\"Environment\\\": {\\\"PATH\\\": "
        "\\\"/usr/bin:/bin\\\"}}\",\"VsockStdioRelaySettings\":{}}}";
    json_t *in = load(capture);
    struct gcs_execute_process_request r;
    assert_int_equal(gcs_execute_process_request_parse(in, &r, NULL), 0);
    assert_string_equal(r.base.container_id, GCS_NULL_CONTAINER_ID);
    assert_int_equal(r.ports.stdin_port, 0);
    struct gcs_process_parameters pp;
    assert_int_equal(gcs_process_parameters_parse(r.process_parameters, &pp, NULL), 0);
    assert_int_equal(json_array_size(pp.command_args), 3);
    assert_string_equal(json_string_value(json_array_get(pp.command_args, 2)), "sleep 0.5; exit 7");
    assert_string_equal(pp.working_directory, "/");
    assert_string_equal(json_string_value(json_object_get(pp.environment, "PATH")),
                        "/usr/bin:/bin");
    assert_false(pp.create_stdout_pipe);

    /* build the same request: compact inner JSON, empty relay settings */
    json_t *req = gcs_execute_process_request_build(&r);
    assert_json_text(req,
                     "{\"ContainerId\":\"" GCS_NULL_CONTAINER_ID "\",\"ActivityId\":\"" Z
                     "\",\"Settings\":{\"ProcessParameters\":\"{\\\"CommandArgs\\\":[\\\"/bin/"
                     "sh\\\",\\\"-c\\\",\\\"sleep 0.5; exit 7\\\"],\\\"WorkingDirectory\\\":\\\"/"
                     "\\\",\\\"Environment\\\":{\\\"PATH\\\":\\\"/usr/bin:/bin\\\"}}\","
                     "\"VsockStdioRelaySettings\":{}}}");
    gcs_execute_process_request_clear(&r);
    json_decref(in);

    /* response size=98 */
    struct gcs_execute_process_response resp = {.base = {.activity_id = Z}, .process_id = 10304};
    json_t *body = gcs_execute_process_response_build(&resp);
    assert_int_equal(frame_size(0x20100501, body), 98);
    assert_json_text(body, "{\"Result\":0,\"ActivityId\":\"" Z "\",\"ProcessId\":10304}");
}

static void test_vector_wait(void **state)
{
    (void)state;
    struct gcs_wait_process_request w = {
        .base = {.container_id = GCS_NULL_CONTAINER_ID}, .process_id = 10304, .timeout_ms = 10};
    assert_json_text(gcs_wait_process_request_build(&w),
                     "{\"ContainerId\":\"" GCS_NULL_CONTAINER_ID "\",\"ActivityId\":\"" Z
                     "\",\"ProcessId\":10304,\"TimeoutInMs\":10}");
    w.timeout_ms = GCS_WAIT_INFINITE;
    json_t *body = gcs_wait_process_request_build(&w);
    assert_int_equal(json_integer_value(json_object_get(body, "TimeoutInMs")), 4294967295LL);
    struct gcs_wait_process_request wp;
    assert_int_equal(gcs_wait_process_request_parse(body, &wp, NULL), 0);
    assert_int_equal(wp.timeout_ms, GCS_WAIT_INFINITE);
    json_decref(body);

    struct gcs_wait_process_response resp = {.base = {.activity_id = Z}, .exit_code = 7};
    body = gcs_wait_process_response_build(&resp);
    assert_int_equal(frame_size(0x20100601, body), 93); /* size=93 */
    assert_json_text(body, "{\"Result\":0,\"ActivityId\":\"" Z "\",\"ExitCode\":7}");

    /* timeout and not-found replies parse; ExitCode is still decoded */
    json_t *in = load("{\"Result\":-1070137079,\"ActivityId\":\"" Z
                      "\",\"ErrorMessage\":\"HRESULT: 0xc0370109\",\"ExitCode\":0}");
    struct gcs_wait_process_response p;
    assert_int_equal(gcs_wait_process_response_parse(in, &p, NULL), 0);
    assert_int_equal(p.base.result, GCS_HR_TIMEOUT);
    assert_int_equal(gcs_hresult_to_rpc_code(p.base.result), RPC_DEADLINE_EXCEEDED);
    json_decref(in);
    in = load("{\"Result\":-2147023728,\"ErrorMessage\":\"HRESULT: 0x80070490\"}");
    assert_int_equal(gcs_wait_process_response_parse(in, &p, NULL), 0);
    assert_int_equal(p.base.result, GCS_HR_NOT_FOUND);
    assert_int_equal(-2147023728, GCS_HR_NOT_FOUND);
    json_decref(in);
    /* success without ExitCode is malformed */
    in = load("{\"Result\":0}");
    shim_error_t *err = NULL;
    assert_int_equal(gcs_wait_process_response_parse(in, &p, &err), -1);
    assert_non_null(strstr(err->msg, "ExitCode"));
    error_free(err);
    json_decref(in);
    /* UVM process killed: -1 arrives as 4294967295 */
    in = load("{\"Result\":0,\"ExitCode\":4294967295}");
    assert_int_equal(gcs_wait_process_response_parse(in, &p, NULL), 0);
    assert_int_equal(p.exit_code, 4294967295u);
    json_decref(in);
}

static void test_vector_signal(void **state)
{
    (void)state;
    struct gcs_signal_process_request s = {
        .base = {.container_id = "abc"}, .process_id = 1, .has_options = true, .signal = 15};
    json_t *body = gcs_signal_process_request_build(&s);
    assert_json_text(body, "{\"ContainerId\":\"abc\",\"ActivityId\":\"" Z
                           "\",\"ProcessId\":1,\"Options\":{\"Signal\":15}}");
    s.has_options = false;
    assert_json_text(gcs_signal_process_request_build(&s),
                     "{\"ContainerId\":\"abc\",\"ActivityId\":\"" Z "\",\"ProcessId\":1}");
    json_t *in = load("{\"containerid\":\"abc\",\"PROCESSID\":1,\"options\":{\"signal\":9}}");
    struct gcs_signal_process_request p;
    assert_int_equal(gcs_signal_process_request_parse(in, &p, NULL), 0);
    assert_string_equal(p.base.container_id, "abc");
    assert_int_equal(p.process_id, 1);
    assert_true(p.has_options);
    assert_int_equal(p.signal, 9);
    json_decref(in);
    in = load("{\"ContainerId\":\"abc\",\"ProcessId\":1,\"Options\":null}");
    assert_int_equal(gcs_signal_process_request_parse(in, &p, NULL), 0);
    assert_false(p.has_options);
    json_decref(in);
    /* the guest's reply to an unknown container */
    in = load("{\"Result\":-1070137074,\"ErrorMessage\":\"HRESULT: 0xc037010e\"}");
    struct gcs_response_base b;
    assert_int_equal(gcs_response_base_parse(in, &b, NULL), 0);
    assert_int_equal(b.result, GCS_HR_SYSTEM_NOT_FOUND);
    assert_int_equal(gcs_hresult_to_rpc_code(b.result), RPC_NOT_FOUND);
    json_decref(in);
}

/* ---- other messages -------------------------------------------------------- */

static void test_create(void **state)
{
    (void)state;
    json_t *spec = load("{\"ociVersion\":\"1.0.2\",\"root\":{\"path\":\"rootfs\"},\"linux\":{}}");
    struct gcs_container_config cc = {.oci_bundle_path = "/run/gcs/c/c1",
                                      .oci_specification = spec};
    json_t *cfg = gcs_container_config_build(&cc);
    assert_non_null(cfg);
    struct gcs_create_request cr = {.base = {.container_id = "c1"}, .container_config = cfg};
    json_t *body = gcs_create_request_build(&cr);
    char *text = dump(body);
    assert_string_equal(
        text, "{\"ContainerId\":\"c1\",\"ActivityId\":\"" Z "\",\"ContainerConfig\":\"{\\\"Schema"
              "Version\\\":{\\\"Major\\\":2,\\\"Minor\\\":1},\\\"OciBundlePath\\\":\\\"/run/gcs/c/"
              "c1\\\",\\\"OciSpecification\\\":{\\\"ociVersion\\\":\\\"1.0.2\\\",\\\"root\\\":{"
              "\\\"path\\\":\\\"rootfs\\\"},\\\"linux\\\":{}}}\"}");
    free(text);
    struct gcs_create_request p;
    assert_int_equal(gcs_create_request_parse(body, &p, NULL), 0);
    struct gcs_container_config pc;
    assert_int_equal(gcs_container_config_parse(p.container_config, &pc, NULL), 0);
    assert_int_equal(pc.schema_major, 2);
    assert_int_equal(pc.schema_minor, 1);
    assert_string_equal(pc.oci_bundle_path, "/run/gcs/c/c1");
    assert_true(json_equal(pc.oci_specification, spec));
    assert_null(pc.scratch_dir_path);
    gcs_create_request_clear(&p);
    json_decref(body);
    json_decref(cfg);

    /* missing OciSpecification / ContainerConfig not a string / bad inner JSON */
    const char *bad[] = {
        "{\"ContainerId\":\"c\",\"ContainerConfig\":\"{\\\"SchemaVersion\\\":{\\\"Major\\\":2},"
        "\\\"OciBundlePath\\\":\\\"/b\\\"}\"}",
        "{\"ContainerId\":\"c\",\"ContainerConfig\":{}}",
        "{\"ContainerId\":\"c\",\"ContainerConfig\":\"{nope\"}",
        "{\"ContainerId\":\"c\"}",
        "{\"ContainerConfig\":\"{}\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *in = load(bad[i]);
        shim_error_t *err = NULL;
        int rc = gcs_create_request_parse(in, &p, &err);
        if (rc == 0) {
            rc = gcs_container_config_parse(p.container_config, &pc, &err);
            gcs_create_request_clear(&p);
        }
        assert_int_equal(rc, -1);
        assert_non_null(err);
        assert_int_equal(err->code, RPC_INVALID_ARGUMENT);
        error_free(err);
        json_decref(in);
    }

    struct gcs_create_response resp = {.base = {.activity_id = Z}};
    assert_json_text(gcs_create_response_build(&resp),
                     "{\"Result\":0,\"ActivityId\":\"" Z "\",\"SelectedProtocolVersion\":0}");
    json_decref(spec);
}

static void test_execute_process_ports_and_params(void **state)
{
    (void)state;
    json_t *oci = load("{\"args\":[\"sh\"],\"cwd\":\"/\",\"terminal\":true}");
    struct gcs_process_parameters pp = {
        .create_stdin_pipe = true, .create_stdout_pipe = true, .oci_process = oci};
    json_t *params = gcs_process_parameters_build(&pp);
    assert_json_text(json_incref(params),
                     "{\"CreateStdInPipe\":true,\"CreateStdOutPipe\":true,\"OciProcess\":{"
                     "\"args\":[\"sh\"],\"cwd\":\"/\",\"terminal\":true}}");
    struct gcs_execute_process_request r = {
        .base = {.container_id = "c1"},
        .process_parameters = params,
        .ports = {.stdin_port = 0x40000001, .stdout_port = 0x40000002}};
    json_t *body = gcs_execute_process_request_build(&r);
    json_t *relay = json_object_get(json_object_get(body, "Settings"), "VsockStdioRelaySettings");
    assert_json_text(json_incref(relay), "{\"StdIn\":1073741825,\"StdOut\":1073741826}");
    struct gcs_execute_process_request p;
    assert_int_equal(gcs_execute_process_request_parse(body, &p, NULL), 0);
    assert_int_equal(p.ports.stdin_port, 0x40000001);
    assert_int_equal(p.ports.stdout_port, 0x40000002);
    assert_int_equal(p.ports.stderr_port, 0);
    struct gcs_process_parameters q;
    assert_int_equal(gcs_process_parameters_parse(p.process_parameters, &q, NULL), 0);
    assert_true(q.create_stdin_pipe && q.create_stdout_pipe && !q.create_stderr_pipe);
    assert_true(json_equal(q.oci_process, oci));
    gcs_execute_process_request_clear(&p);
    json_decref(body);
    json_decref(params);
    json_decref(oci);

    /* UVM process form with console size and env */
    json_t *args = load("[\"/bin/true\"]"), *env = load("{\"A\":\"1\"}");
    struct gcs_process_parameters u = {.command_args = args,
                                       .environment = env,
                                       .working_directory = "/",
                                       .emulate_console = true,
                                       .console_height = 24,
                                       .console_width = 80};
    assert_json_text(
        gcs_process_parameters_build(&u),
        "{\"CommandArgs\":[\"/bin/true\"],\"WorkingDirectory\":\"/\","
        "\"Environment\":{\"A\":\"1\"},\"EmulateConsole\":true,\"ConsoleSize\":[24,80]}");
    json_decref(args);
    json_decref(env);

    /* wrong types in ProcessParameters */
    const char *bad[] = {"{\"CommandArgs\":[1]}", "{\"Environment\":{\"A\":1}}",
                         "{\"CreateStdInPipe\":\"yes\"}", "{\"ConsoleSize\":[1]}", "[]"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *in = load(bad[i]);
        shim_error_t *err = NULL;
        assert_int_equal(gcs_process_parameters_parse(in, &q, &err), -1);
        error_free(err);
        json_decref(in);
    }
    /* Settings missing -> error; ProcessParameters not an object -> error */
    const char *bad_req[] = {"{\"ContainerId\":\"c\"}",
                             "{\"ContainerId\":\"c\",\"Settings\":{\"ProcessParameters\":\"[1]\"}}",
                             "{\"ContainerId\":\"c\",\"Settings\":{\"ProcessParameters\":\"{}\","
                             "\"VsockStdioRelaySettings\":{\"StdIn\":-1}}}"};
    for (size_t i = 0; i < sizeof(bad_req) / sizeof(bad_req[0]); i++) {
        json_t *in = load(bad_req[i]);
        shim_error_t *err = NULL;
        assert_int_equal(gcs_execute_process_request_parse(in, &p, &err), -1);
        assert_null(p.process_parameters);
        error_free(err);
        json_decref(in);
    }
    /* a failed exec response has no ProcessId */
    json_t *in = load("{\"Result\":-2147467259,\"ErrorMessage\":\"failed creating stdout\"}");
    struct gcs_execute_process_response er;
    assert_int_equal(gcs_execute_process_response_parse(in, &er, NULL), 0);
    assert_int_equal(er.base.result, GCS_HR_E_FAIL);
    json_decref(in);
    in = load("{\"Result\":0}");
    shim_error_t *err = NULL;
    assert_int_equal(gcs_execute_process_response_parse(in, &er, &err), -1);
    error_free(err);
    json_decref(in);
}

static void test_resize_and_base_only(void **state)
{
    (void)state;
    struct gcs_resize_console_request r = {
        .base = {.container_id = "c"}, .process_id = 5, .height = 40, .width = 120};
    json_t *body = gcs_resize_console_request_build(&r);
    assert_json_text(json_incref(body), "{\"ContainerId\":\"c\",\"ActivityId\":\"" Z
                                        "\",\"ProcessId\":5,\"Height\":40,\"Width\":120}");
    struct gcs_resize_console_request p;
    assert_int_equal(gcs_resize_console_request_parse(body, &p, NULL), 0);
    assert_int_equal(p.height, 40);
    assert_int_equal(p.width, 120);
    json_decref(body);
    json_t *in = load("{\"ContainerId\":\"c\",\"ProcessId\":5,\"Height\":70000}");
    shim_error_t *err = NULL;
    assert_int_equal(gcs_resize_console_request_parse(in, &p, &err), -1);
    assert_non_null(strstr(err->msg, "Height"));
    error_free(err);
    json_decref(in);

    struct gcs_request_base b = {.container_id = "c",
                                 .activity_id = "11111111-2222-3333-4444-555555555555"};
    assert_json_text(
        gcs_request_base_build(&b),
        "{\"ContainerId\":\"c\",\"ActivityId\":\"11111111-2222-3333-4444-555555555555\"}");
    json_t *otsc = load("{\"traceparent\":\"00-abc-def-01\"}");
    b.otsc = otsc;
    body = gcs_request_base_build(&b);
    struct gcs_request_base pb;
    assert_int_equal(gcs_request_base_parse(body, &pb, NULL), 0);
    assert_true(json_equal(pb.otsc, otsc));
    json_decref(body);
    json_decref(otsc);
    struct gcs_response_base ok = {.activity_id = Z};
    assert_json_text(gcs_response_base_build(&ok), "{\"Result\":0,\"ActivityId\":\"" Z "\"}");
    struct gcs_dump_stacks_response ds = {.guest_stacks = "goroutine 1"};
    assert_json_text(gcs_dump_stacks_response_build(&ds),
                     "{\"Result\":0,\"GuestStacks\":\"goroutine 1\"}");
}

static void test_get_properties(void **state)
{
    (void)state;
    struct gcs_get_properties_request r = {.base = {.container_id = "c"},
                                           .property_types =
                                               GCS_PROPERTY_PROCESS_LIST | GCS_PROPERTY_STATISTICS};
    json_t *body = gcs_get_properties_request_build(&r);
    assert_string_equal(json_string_value(json_object_get(body, "Query")),
                        "{\"PropertyTypes\":[\"ProcessList\",\"Statistics\"]}");
    struct gcs_get_properties_request p;
    assert_int_equal(gcs_get_properties_request_parse(body, &p, NULL), 0);
    assert_int_equal(p.property_types, GCS_PROPERTY_PROCESS_LIST | GCS_PROPERTY_STATISTICS);
    gcs_get_properties_request_clear(&p);
    json_decref(body);
    /* unknown types ignored; missing/empty Query = nothing */
    json_t *in = load("{\"ContainerId\":\"c\",\"Query\":\"{\\\"PropertyTypes\\\":[\\\"Memory\\\","
                      "\\\"ProcessList\\\"]}\"}");
    assert_int_equal(gcs_get_properties_request_parse(in, &p, NULL), 0);
    assert_int_equal(p.property_types, GCS_PROPERTY_PROCESS_LIST);
    gcs_get_properties_request_clear(&p);
    json_decref(in);
    in = load("{\"ContainerId\":\"c\",\"Query\":\"\"}");
    assert_int_equal(gcs_get_properties_request_parse(in, &p, NULL), 0);
    assert_int_equal(p.property_types, 0);
    json_decref(in);

    uint32_t pids[] = {1, 42, 4000000000u};
    json_t *props = gcs_properties_process_list_build(pids, 3);
    struct gcs_get_properties_response resp = {.properties = props};
    body = gcs_get_properties_response_build(&resp);
    assert_string_equal(json_string_value(json_object_get(body, "Properties")),
                        "{\"ProcessList\":[{\"ProcessId\":1},{\"ProcessId\":42},{\"ProcessId\":"
                        "4000000000}]}");
    struct gcs_get_properties_response pr;
    assert_int_equal(gcs_get_properties_response_parse(body, &pr, NULL), 0);
    uint32_t *got;
    size_t n;
    assert_int_equal(gcs_properties_process_list(pr.properties, &got, &n, NULL), 0);
    assert_int_equal(n, 3);
    assert_int_equal(got[2], 4000000000u);
    free(got);
    gcs_get_properties_response_clear(&pr);
    json_decref(body);
    json_decref(props);
    resp.properties = NULL;
    assert_json_text(gcs_get_properties_response_build(&resp),
                     "{\"Result\":0,\"Properties\":\"{}\"}");
    in = load("{\"Result\":0,\"Properties\":\"{\\\"ProcessList\\\":[{\\\"Pid\\\":1}]}\"}");
    assert_int_equal(gcs_get_properties_response_parse(in, &pr, NULL), 0);
    shim_error_t *err = NULL;
    assert_int_equal(gcs_properties_process_list(pr.properties, &got, &n, &err), -1);
    error_free(err);
    gcs_get_properties_response_clear(&pr);
    json_decref(in);
}

static void test_modify_settings(void **state)
{
    (void)state;
    json_t *opts = load("[\"ro\"]");
    struct gcs_mapped_virtual_disk d = {.mount_path = "/run/mounts/scsi/m0",
                                        .controller = 0,
                                        .lun = 3,
                                        .read_only = true,
                                        .options = opts};
    json_t *settings = gcs_mapped_virtual_disk_build(&d);
    struct gcs_modify_settings_request r = {.base = {.container_id = GCS_NULL_CONTAINER_ID},
                                            .resource_type = GCS_RESOURCE_MAPPED_VIRTUAL_DISK,
                                            .request_type = GCS_REQUEST_ADD,
                                            .settings = settings};
    json_t *body = gcs_modify_settings_request_build(&r);
    assert_json_text(json_incref(body),
                     "{\"ContainerId\":\"" GCS_NULL_CONTAINER_ID "\",\"ActivityId\":\"" Z
                     "\",\"Request\":{\"ResourceType\":\"MappedVirtualDisk\",\"RequestType\":"
                     "\"Add\",\"Settings\":{\"MountPath\":\"/run/mounts/scsi/m0\",\"Lun\":3,"
                     "\"ReadOnly\":true,\"Options\":[\"ro\"]}}}");
    struct gcs_modify_settings_request p;
    assert_int_equal(gcs_modify_settings_request_parse(body, &p, NULL), 0);
    assert_string_equal(p.resource_type, "MappedVirtualDisk");
    struct gcs_mapped_virtual_disk pd;
    assert_int_equal(gcs_mapped_virtual_disk_parse(p.settings, &pd, NULL), 0);
    assert_int_equal(pd.lun, 3);
    assert_true(pd.read_only);
    assert_string_equal(pd.mount_path, "/run/mounts/scsi/m0");
    json_decref(body);
    json_decref(settings);
    json_decref(opts);

    /* RequestType defaults to Add; Request must be an object */
    json_t *in = load("{\"ContainerId\":\"x\",\"request\":{\"resourcetype\":\"SCSIDevice\","
                      "\"settings\":{\"Controller\":1,\"Lun\":2}}}");
    assert_int_equal(gcs_modify_settings_request_parse(in, &p, NULL), 0);
    assert_string_equal(p.request_type, "Add");
    struct gcs_scsi_device sd;
    assert_int_equal(gcs_scsi_device_parse(p.settings, &sd, NULL), 0);
    assert_int_equal(sd.controller, 1);
    assert_int_equal(sd.lun, 2);
    json_decref(in);
    in = load("{\"ContainerId\":\"x\",\"Request\":\"{}\"}");
    shim_error_t *err = NULL;
    assert_int_equal(gcs_modify_settings_request_parse(in, &p, &err), -1);
    error_free(err);
    json_decref(in);
    in = load("{\"ContainerId\":\"x\",\"Request\":{\"RequestType\":\"Add\"}}");
    err = NULL;
    assert_int_equal(gcs_modify_settings_request_parse(in, &p, &err), -1);
    assert_non_null(strstr(err->msg, "ResourceType"));
    error_free(err);
    json_decref(in);

    struct gcs_mapped_directory md = {
        .mount_path = "/run/gcs/c/x/mounts/m0", .port = 564, .share_name = "0", .read_only = true};
    json_t *mdj = gcs_mapped_directory_build(&md);
    assert_json_text(json_incref(mdj), "{\"MountPath\":\"/run/gcs/c/x/mounts/m0\",\"Port\":564,"
                                       "\"ShareName\":\"0\",\"ReadOnly\":true}");
    struct gcs_mapped_directory pmd;
    assert_int_equal(gcs_mapped_directory_parse(mdj, &pmd, NULL), 0);
    assert_int_equal(pmd.port, 564);
    json_decref(mdj);

    const char *layers[] = {"/run/layers/p1", "/run/layers/p0"};
    struct gcs_combined_layers cl = {.container_id = "x",
                                     .container_root_path = "/run/gcs/c/x/rootfs",
                                     .layers = layers,
                                     .n_layers = 2,
                                     .scratch_path = "/run/gcs/c/x/scratch"};
    json_t *clj = gcs_combined_layers_build(&cl);
    assert_json_text(json_incref(clj),
                     "{\"ContainerID\":\"x\",\"ContainerRootPath\":\"/run/gcs/c/x/rootfs\","
                     "\"Layers\":[{\"Path\":\"/run/layers/p1\"},{\"Path\":\"/run/layers/p0\"}],"
                     "\"ScratchPath\":\"/run/gcs/c/x/scratch\"}");
    struct gcs_combined_layers pcl;
    assert_int_equal(gcs_combined_layers_parse(clj, &pcl, NULL), 0);
    assert_int_equal(pcl.n_layers, 2);
    assert_string_equal(gcs_combined_layers_path(&pcl, 0), "/run/layers/p1");
    assert_string_equal(gcs_combined_layers_path(&pcl, 1), "/run/layers/p0");
    assert_null(gcs_combined_layers_path(&pcl, 2));
    json_decref(clj);
    in = load("{\"Layers\":[{\"Id\":\"x\"}]}");
    err = NULL;
    assert_int_equal(gcs_combined_layers_parse(in, &pcl, &err), -1);
    error_free(err);
    json_decref(in);

    struct gcs_vpmem_device vp = {.device_number = 2,
                                  .mount_path = "/run/layers/p2",
                                  .has_mapping = true,
                                  .device_offset_in_bytes = 4096,
                                  .device_size_in_bytes = 1 << 20};
    json_t *vpj = gcs_vpmem_device_build(&vp);
    assert_json_text(json_incref(vpj),
                     "{\"DeviceNumber\":2,\"MountPath\":\"/run/layers/p2\",\"MappingInfo\":{"
                     "\"DeviceOffsetInBytes\":4096,\"DeviceSizeInBytes\":1048576}}");
    struct gcs_vpmem_device pvp;
    assert_int_equal(gcs_vpmem_device_parse(vpj, &pvp, NULL), 0);
    assert_true(pvp.has_mapping);
    assert_true(pvp.device_size_in_bytes == 1 << 20);
    json_decref(vpj);
}

static void test_notification(void **state)
{
    (void)state;
    struct gcs_container_notification n = {.base = {.container_id = "c1", .activity_id = Z},
                                           .type = GCS_NOTIFY_FORCED_EXIT};
    json_t *body = gcs_container_notification_build(&n);
    assert_json_text(json_incref(body),
                     "{\"ContainerId\":\"c1\",\"ActivityId\":\"" Z
                     "\",\"Type\":\"ForcedExit\",\"Operation\":\"None\",\"Result\":0}");
    struct gcs_container_notification p;
    assert_int_equal(gcs_container_notification_parse(body, &p, NULL), 0);
    assert_string_equal(p.type, "ForcedExit");
    assert_null(p.result_info);
    gcs_container_notification_clear(&p);
    json_decref(body);
    json_t *in = load("{\"ContainerId\":\"c1\",\"Type\":\"UnexpectedExit\",\"ResultInfo\":"
                      "\"{\\\"a\\\":1}\",\"Extra\":[1,2]}");
    assert_int_equal(gcs_container_notification_parse(in, &p, NULL), 0);
    assert_int_equal(json_integer_value(json_object_get(p.result_info, "a")), 1);
    gcs_container_notification_clear(&p);
    json_decref(in);
    in = load("{\"Type\":\"UnexpectedExit\"}");
    shim_error_t *err = NULL;
    assert_int_equal(gcs_container_notification_parse(in, &p, &err), -1);
    assert_non_null(strstr(err->msg, "ContainerId"));
    error_free(err);
    json_decref(in);
}

static void test_json_go_semantics(void **state)
{
    (void)state;
    json_t *o = load("{\"containerid\":\"fold\",\"ContainerId\":\"exact\"}");
    assert_string_equal(json_string_value(gcs_json_get(o, "ContainerId")), "exact");
    json_decref(o);
    o = load("{\"CONTAINERID\":\"a\",\"containerId\":\"b\"}");
    assert_string_equal(json_string_value(gcs_json_get(o, "ContainerId")), "b");
    json_decref(o);
    /* Go folds U+212A KELVIN SIGN onto k and U+017F LONG S onto s */
    o = load("{\"\xe2\x84\xaa\x65y\":1,\"\xc5\xbfignal\":2}");
    assert_int_equal(json_integer_value(gcs_json_get(o, "Key")), 1);
    assert_int_equal(json_integer_value(gcs_json_get(o, "Signal")), 2);
    json_decref(o);
    assert_false(gcs_json_key_equal_fold("ProcessId", "ProcessI"));
    assert_false(gcs_json_key_equal_fold("ab", "a\xc5"));
    /* null = absent; integers strict */
    o = load("{\"A\":null,\"B\":4.0,\"C\":-1,\"D\":4294967296,\"E\":true}");
    const char *s = "keep";
    assert_int_equal(gcs_json_string(o, "A", false, &s, NULL), 0);
    assert_string_equal(s, "keep");
    shim_error_t *err = NULL;
    assert_int_equal(gcs_json_string(o, "A", true, &s, &err), -1);
    error_free(err);
    uint32_t u = 0;
    err = NULL;
    assert_int_equal(gcs_json_u32(o, "B", false, &u, &err), -1);
    error_free(err);
    err = NULL;
    assert_int_equal(gcs_json_u32(o, "C", false, &u, &err), -1);
    error_free(err);
    err = NULL;
    assert_int_equal(gcs_json_u32(o, "D", false, &u, &err), -1);
    error_free(err);
    int32_t i = 0;
    assert_int_equal(gcs_json_i32(o, "c", false, &i, NULL), 1);
    assert_int_equal(i, -1);
    bool b = false;
    assert_int_equal(gcs_json_bool(o, "e", true, &b, NULL), 1);
    assert_true(b);
    json_decref(o);
    /* HRESULT names */
    assert_string_equal(gcs_hresult_name(GCS_HR_SYSTEM_NOT_FOUND), "HCS_E_SYSTEM_NOT_FOUND");
    assert_null(gcs_hresult_name(12345));
    assert_int_equal(gcs_hresult_to_rpc_code(GCS_HR_E_NOTIMPL), RPC_UNIMPLEMENTED);
    assert_int_equal(gcs_hresult_to_rpc_code(GCS_HR_E_FAIL), RPC_UNKNOWN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vector_negotiate),
        cmocka_unit_test(test_vector_negotiate_unsupported),
        cmocka_unit_test(test_vector_notimpl),
        cmocka_unit_test(test_vector_execute_process),
        cmocka_unit_test(test_vector_wait),
        cmocka_unit_test(test_vector_signal),
        cmocka_unit_test(test_create),
        cmocka_unit_test(test_execute_process_ports_and_params),
        cmocka_unit_test(test_resize_and_base_only),
        cmocka_unit_test(test_get_properties),
        cmocka_unit_test(test_modify_settings),
        cmocka_unit_test(test_notification),
        cmocka_unit_test(test_json_go_semantics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
