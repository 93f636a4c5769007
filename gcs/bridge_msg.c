#include "gcs/bridge_msg.h"

#include <stdlib.h>
#include <string.h>

#include "gcs/bridge_json.h"

/* Builders accumulate setter failures in `bad` and give up at the end. */
static json_t *finish(json_t *obj, int bad)
{
    if (bad != 0) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

/* ---- HRESULTs ---------------------------------------------------------------- */

const char *gcs_hresult_name(int32_t hr)
{
    switch (hr) {
    case GCS_HR_OK:
        return "S_OK";
    case GCS_HR_E_NOTIMPL:
        return "E_NOTIMPL";
    case GCS_HR_E_FAIL:
        return "E_FAIL";
    case GCS_HR_NOT_FOUND:
        return "ERROR_NOT_FOUND";
    case GCS_HR_E_INVALIDARG:
        return "E_INVALIDARG";
    case GCS_HR_TIMEOUT:
        return "HCS_E_TIMEOUT";
    case GCS_HR_UNKNOWN_MESSAGE:
        return "HCS_E_UNKNOWN_MESSAGE";
    case GCS_HR_UNSUPPORTED_PROTOCOL:
        return "HCS_E_UNSUPPORTED_PROTOCOL_VERSION";
    case GCS_HR_INVALID_JSON:
        return "HCS_E_INVALID_JSON";
    case GCS_HR_SYSTEM_NOT_FOUND:
        return "HCS_E_SYSTEM_NOT_FOUND";
    case GCS_HR_ALREADY_EXISTS:
        return "HCS_E_SYSTEM_ALREADY_EXISTS";
    case GCS_HR_INVALID_STATE:
        return "HCS_E_INVALID_STATE";
    case GCS_HR_ALREADY_STOPPED:
        return "HCS_E_SYSTEM_ALREADY_STOPPED";
    default:
        return NULL;
    }
}

int gcs_hresult_to_rpc_code(int32_t hr)
{
    switch (hr) {
    case GCS_HR_OK:
        return RPC_OK;
    case GCS_HR_E_NOTIMPL:
    case GCS_HR_UNKNOWN_MESSAGE:
        return RPC_UNIMPLEMENTED;
    case GCS_HR_NOT_FOUND:
    case GCS_HR_SYSTEM_NOT_FOUND:
        return RPC_NOT_FOUND;
    case GCS_HR_E_INVALIDARG:
    case GCS_HR_INVALID_JSON:
        return RPC_INVALID_ARGUMENT;
    case GCS_HR_TIMEOUT:
        return RPC_DEADLINE_EXCEEDED;
    case GCS_HR_ALREADY_EXISTS:
        return RPC_ALREADY_EXISTS;
    case GCS_HR_INVALID_STATE:
    case GCS_HR_ALREADY_STOPPED:
    case GCS_HR_UNSUPPORTED_PROTOCOL:
        return RPC_FAILED_PRECONDITION;
    default:
        return RPC_UNKNOWN;
    }
}

/* ---- envelope ---------------------------------------------------------------- */

int gcs_request_base_put(json_t *obj, const struct gcs_request_base *b)
{
    int bad = 0;
    bad |= gcs_json_set_string(obj, "ContainerId", b->container_id);
    bad |= gcs_json_set_string(obj, "ActivityId",
                               b->activity_id ? b->activity_id : GCS_ZERO_ACTIVITY_ID);
    if (b->otsc != NULL)
        bad |= gcs_json_set_copy(obj, "otsc", b->otsc);
    return bad ? -1 : 0;
}

json_t *gcs_request_base_build(const struct gcs_request_base *b)
{
    json_t *obj = json_object();
    if (obj == NULL)
        return NULL;
    return finish(obj, gcs_request_base_put(obj, b));
}

int gcs_request_base_parse(const json_t *obj, struct gcs_request_base *b, shim_error_t **err)
{
    memset(b, 0, sizeof(*b));
    if (gcs_json_string(obj, "ContainerId", true, &b->container_id, err) < 0 ||
        gcs_json_string(obj, "ActivityId", false, &b->activity_id, err) < 0 ||
        gcs_json_object(obj, "otsc", false, &b->otsc, err) < 0)
        return -1;
    return 0;
}

static json_t *error_record_build(int32_t hr, const char *message)
{
    json_t *rec = json_object();
    if (rec == NULL)
        return NULL;
    int bad = 0;
    bad |= gcs_json_set_int(rec, "Result", hr);
    bad |= gcs_json_set_string(rec, "Message", message);
    bad |= gcs_json_set_string(rec, "ModuleName", "gcs");
    bad |= gcs_json_set_string(rec, "FileName", "");
    bad |= gcs_json_set_int(rec, "Line", UINT32_MAX);
    return finish(rec, bad);
}

int gcs_response_base_put(json_t *obj, const struct gcs_response_base *b)
{
    int bad = 0;
    bad |= gcs_json_set_int(obj, "Result", b->result);
    bad |= gcs_json_set_string_omitempty(obj, "ActivityId", b->activity_id);
    if (b->result != 0 || (b->error_message && b->error_message[0])) {
        bad |= gcs_json_set_string_omitempty(obj, "ErrorMessage", b->error_message);
        if (b->error_records != NULL) {
            bad |= gcs_json_set_copy(obj, "ErrorRecords", b->error_records);
        } else if (b->result != 0) {
            json_t *arr = json_array();
            json_t *rec = error_record_build(b->result, b->error_message ? b->error_message : "");
            if (arr == NULL || rec == NULL || json_array_append_new(arr, rec) < 0)
                bad = 1;
            else
                rec = NULL;
            json_decref(rec);
            bad |= arr ? json_object_set_new(obj, "ErrorRecords", arr) : -1;
        }
    }
    return bad ? -1 : 0;
}

json_t *gcs_response_base_build(const struct gcs_response_base *b)
{
    json_t *obj = json_object();
    if (obj == NULL)
        return NULL;
    return finish(obj, gcs_response_base_put(obj, b));
}

int gcs_response_base_parse(const json_t *obj, struct gcs_response_base *b, shim_error_t **err)
{
    memset(b, 0, sizeof(*b));
    if (gcs_json_i32(obj, "Result", true, &b->result, err) < 0 ||
        gcs_json_string(obj, "ActivityId", false, &b->activity_id, err) < 0 ||
        gcs_json_string(obj, "ErrorMessage", false, &b->error_message, err) < 0 ||
        gcs_json_array(obj, "ErrorRecords", false, &b->error_records, err) < 0)
        return -1;
    return 0;
}

json_t *gcs_error_response_build(int32_t hr, const char *activity_id, const char *message)
{
    struct gcs_response_base b = {
        .result = hr, .activity_id = activity_id, .error_message = message};
    return gcs_response_base_build(&b);
}

int gcs_error_record_parse(const json_t *rec, struct gcs_error_record *r, shim_error_t **err)
{
    memset(r, 0, sizeof(*r));
    r->line = UINT32_MAX;
    if (!json_is_object(rec))
        return error_set(err, RPC_INVALID_ARGUMENT, "ErrorRecord is not an object");
    if (gcs_json_i32(rec, "Result", false, &r->result, err) < 0 ||
        gcs_json_string(rec, "Message", false, &r->message, err) < 0 ||
        gcs_json_string(rec, "StackTrace", false, &r->stack_trace, err) < 0 ||
        gcs_json_string(rec, "ModuleName", false, &r->module_name, err) < 0 ||
        gcs_json_string(rec, "FileName", false, &r->file_name, err) < 0 ||
        gcs_json_u32(rec, "Line", false, &r->line, err) < 0 ||
        gcs_json_string(rec, "FunctionName", false, &r->function_name, err) < 0)
        return -1;
    return 0;
}

/* ---- NegotiateProtocol ---------------------------------------------------- */

json_t *gcs_negotiate_request_build(const struct gcs_negotiate_request *r)
{
    json_t *obj = gcs_request_base_build(&r->base);
    if (obj == NULL)
        return NULL;
    int bad = 0;
    bad |= gcs_json_set_int(obj, "MinimumVersion", r->minimum_version);
    bad |= gcs_json_set_int(obj, "MaximumVersion", r->maximum_version);
    return finish(obj, bad);
}

int gcs_negotiate_request_parse(const json_t *obj, struct gcs_negotiate_request *r,
                                shim_error_t **err)
{
    memset(r, 0, sizeof(*r));
    if (gcs_request_base_parse(obj, &r->base, err) < 0 ||
        gcs_json_u32(obj, "MinimumVersion", false, &r->minimum_version, err) < 0 ||
        gcs_json_u32(obj, "MaximumVersion", false, &r->maximum_version, err) < 0)
        return -1;
    return 0;
}

void gcs_capabilities_lcow_default(struct gcs_capabilities *c)
{
    memset(c, 0, sizeof(*c));
    c->runtime_os_type = "Linux";
    c->namespace_add_request_supported = true;
    c->signal_process_supported = true;
    c->dump_stacks_supported = true;
    c->delete_container_state_supported = true;
}

/* Sets key: true, or leaves it out when false (the guest's omitempty). */
static int set_flag(json_t *obj, const char *key, bool v)
{
    return v ? gcs_json_set_bool(obj, key, true) : 0;
}

static json_t *capabilities_build(const struct gcs_capabilities *c)
{
    json_t *obj = json_object(), *gdc = json_object();
    int bad = (obj == NULL || gdc == NULL);
    if (!bad) {
        bad |= set_flag(obj, "SendHostCreateMessage", c->send_host_create_message);
        bad |= set_flag(obj, "SendHostStartMessage", c->send_host_start_message);
        bad |= set_flag(obj, "HvSocketConfigOnStartup", c->hv_socket_config_on_startup);
        bad |= set_flag(obj, "SendLifecycleNotifications", c->send_lifecycle_notifications);
        bad |=
            set_flag(obj, "ModifyServiceSettingsSupported", c->modify_service_settings_supported);
        if (c->supported_schema_versions != NULL) {
            bad |= gcs_json_set_copy(obj, "SupportedSchemaVersions", c->supported_schema_versions);
        } else {
            json_t *v = json_pack("[{s:i,s:i}]", "Major", 2, "Minor", 1);
            bad |= v ? json_object_set_new(obj, "SupportedSchemaVersions", v) : -1;
        }
        bad |= gcs_json_set_string_omitempty(obj, "RuntimeOsType", c->runtime_os_type);
        bad |= set_flag(gdc, "NamespaceAddRequestSupported", c->namespace_add_request_supported);
        bad |= set_flag(gdc, "SignalProcessSupported", c->signal_process_supported);
        bad |= set_flag(gdc, "DumpStacksSupported", c->dump_stacks_supported);
        bad |= set_flag(gdc, "DeleteContainerStateSupported", c->delete_container_state_supported);
        bad |= json_object_set(obj, "GuestDefinedCapabilities", gdc);
    }
    json_decref(gdc);
    return finish(obj, bad);
}

static int capabilities_parse(const json_t *obj, struct gcs_capabilities *c, shim_error_t **err)
{
    json_t *gdc = NULL;
    if (gcs_json_bool(obj, "SendHostCreateMessage", false, &c->send_host_create_message, err) < 0 ||
        gcs_json_bool(obj, "SendHostStartMessage", false, &c->send_host_start_message, err) < 0 ||
        gcs_json_bool(obj, "HvSocketConfigOnStartup", false, &c->hv_socket_config_on_startup, err) <
            0 ||
        gcs_json_bool(obj, "SendLifecycleNotifications", false, &c->send_lifecycle_notifications,
                      err) < 0 ||
        gcs_json_bool(obj, "ModifyServiceSettingsSupported", false,
                      &c->modify_service_settings_supported, err) < 0 ||
        gcs_json_array(obj, "SupportedSchemaVersions", false, &c->supported_schema_versions, err) <
            0 ||
        gcs_json_string(obj, "RuntimeOsType", false, &c->runtime_os_type, err) < 0 ||
        gcs_json_object(obj, "GuestDefinedCapabilities", false, &gdc, err) < 0)
        return -1;
    if (gdc == NULL)
        return 0;
    if (gcs_json_bool(gdc, "NamespaceAddRequestSupported", false,
                      &c->namespace_add_request_supported, err) < 0 ||
        gcs_json_bool(gdc, "SignalProcessSupported", false, &c->signal_process_supported, err) <
            0 ||
        gcs_json_bool(gdc, "DumpStacksSupported", false, &c->dump_stacks_supported, err) < 0 ||
        gcs_json_bool(gdc, "DeleteContainerStateSupported", false,
                      &c->delete_container_state_supported, err) < 0)
        return -1;
    return 0;
}

json_t *gcs_negotiate_response_build(const struct gcs_negotiate_response *r)
{
    json_t *obj = gcs_response_base_build(&r->base);
    if (obj == NULL)
        return NULL;
    if (r->base.result != 0)
        return obj;
    int bad = gcs_json_set_int(obj, "Version", r->version);
    json_t *caps = capabilities_build(&r->capabilities);
    bad |= caps ? json_object_set_new(obj, "Capabilities", caps) : -1;
    return finish(obj, bad);
}

int gcs_negotiate_response_parse(const json_t *obj, struct gcs_negotiate_response *r,
                                 shim_error_t **err)
{
    memset(r, 0, sizeof(*r));
    if (gcs_response_base_parse(obj, &r->base, err) < 0)
        return -1;
    if (r->base.result != 0)
        return 0;
    json_t *caps = NULL;
    if (gcs_json_u32(obj, "Version", true, &r->version, err) < 0 ||
        gcs_json_object(obj, "Capabilities", false, &caps, err) < 0)
        return -1;
    return caps ? capabilities_parse(caps, &r->capabilities, err) : 0;
}

/* ---- Create --------------------------------------------------------------- */

json_t *gcs_container_config_build(const struct gcs_container_config *c)
{
    if (!json_is_object(c->oci_specification))
        return NULL;
    int major = c->schema_major, minor = c->schema_minor;
    if (major == 0 && minor == 0) {
        major = 2;
        minor = 1;
    }
    json_t *obj = json_object();
    json_t *sv = json_pack("{s:i,s:i}", "Major", major, "Minor", minor);
    int bad = (obj == NULL || sv == NULL);
    if (!bad) {
        bad |= json_object_set(obj, "SchemaVersion", sv);
        bad |= gcs_json_set_string(obj, "OciBundlePath", c->oci_bundle_path);
        bad |= gcs_json_set_copy(obj, "OciSpecification", c->oci_specification);
        bad |= gcs_json_set_string_omitempty(obj, "ScratchDirPath", c->scratch_dir_path);
    }
    json_decref(sv);
    return finish(obj, bad);
}

int gcs_container_config_parse(const json_t *obj, struct gcs_container_config *c,
                               shim_error_t **err)
{
    memset(c, 0, sizeof(*c));
    json_t *sv = NULL;
    if (!json_is_object(obj))
        return error_set(err, RPC_INVALID_ARGUMENT, "ContainerConfig is not a JSON object");
    if (gcs_json_object(obj, "SchemaVersion", true, &sv, err) < 0 ||
        gcs_json_i32(sv, "Major", false, &c->schema_major, err) < 0 ||
        gcs_json_i32(sv, "Minor", false, &c->schema_minor, err) < 0 ||
        gcs_json_string(obj, "OciBundlePath", true, &c->oci_bundle_path, err) < 0 ||
        gcs_json_object(obj, "OciSpecification", true, &c->oci_specification, err) < 0 ||
        gcs_json_string(obj, "ScratchDirPath", false, &c->scratch_dir_path, err) < 0)
        return -1;
    return 0;
}

json_t *gcs_create_request_build(const struct gcs_create_request *r)
{
    if (r->container_config == NULL)
        return NULL;
    json_t *obj = gcs_request_base_build(&r->base);
    if (obj == NULL)
        return NULL;
    return finish(obj, gcs_json_set_in_string(obj, "ContainerConfig", r->container_config));
}

int gcs_create_request_parse(const json_t *obj, struct gcs_create_request *r, shim_error_t **err)
{
    memset(r, 0, sizeof(*r));
    if (gcs_request_base_parse(obj, &r->base, err) < 0 ||
        gcs_json_in_string(obj, "ContainerConfig", true, &r->container_config, err) < 0)
        return -1;
    return 0;
}

void gcs_create_request_clear(struct gcs_create_request *r)
{
    json_decref(r->container_config);
    r->container_config = NULL;
}

json_t *gcs_create_response_build(const struct gcs_create_response *r)
{
    json_t *obj = gcs_response_base_build(&r->base);
    if (obj == NULL)
        return NULL;
    return finish(obj,
                  gcs_json_set_int(obj, "SelectedProtocolVersion", r->selected_protocol_version));
}

int gcs_create_response_parse(const json_t *obj, struct gcs_create_response *r, shim_error_t **err)
{
    memset(r, 0, sizeof(*r));
    if (gcs_response_base_parse(obj, &r->base, err) < 0 ||
        gcs_json_u32(obj, "SelectedProtocolVersion", false, &r->selected_protocol_version, err) < 0)
        return -1;
    return 0;
}

/* ---- ExecuteProcess ----------------------------------------------------------- */

json_t *gcs_process_parameters_build(const struct gcs_process_parameters *p)
{
    json_t *obj = json_object();
    if (obj == NULL)
        return NULL;
    int bad = 0;
    bad |= gcs_json_set_string_omitempty(obj, "CommandLine", p->command_line);
    if (p->command_args != NULL && json_array_size(p->command_args) > 0)
        bad |= gcs_json_set_copy(obj, "CommandArgs", p->command_args);
    bad |= gcs_json_set_string_omitempty(obj, "WorkingDirectory", p->working_directory);
    if (p->environment != NULL && json_object_size(p->environment) > 0)
        bad |= gcs_json_set_copy(obj, "Environment", p->environment);
    bad |= set_flag(obj, "EmulateConsole", p->emulate_console);
    bad |= set_flag(obj, "CreateStdInPipe", p->create_stdin_pipe);
    bad |= set_flag(obj, "CreateStdOutPipe", p->create_stdout_pipe);
    bad |= set_flag(obj, "CreateStdErrPipe", p->create_stderr_pipe);
    bad |= set_flag(obj, "CreateInUtilityVM", p->create_in_utility_vm);
    if (p->console_height != 0 || p->console_width != 0) {
        json_t *cs = json_pack("[i,i]", p->console_height, p->console_width);
        bad |= cs ? json_object_set_new(obj, "ConsoleSize", cs) : -1;
    }
    if (p->oci_process != NULL)
        bad |= gcs_json_set_copy(obj, "OciProcess", p->oci_process);
    return finish(obj, bad);
}

int gcs_process_parameters_parse(const json_t *obj, struct gcs_process_parameters *p,
                                 shim_error_t **err)
{
    memset(p, 0, sizeof(*p));
    json_t *cs = NULL;
    if (!json_is_object(obj))
        return error_set(err, RPC_INVALID_ARGUMENT, "ProcessParameters is not a JSON object");
    if (gcs_json_string(obj, "CommandLine", false, &p->command_line, err) < 0 ||
        gcs_json_array(obj, "CommandArgs", false, &p->command_args, err) < 0 ||
        gcs_json_string(obj, "WorkingDirectory", false, &p->working_directory, err) < 0 ||
        gcs_json_object(obj, "Environment", false, &p->environment, err) < 0 ||
        gcs_json_bool(obj, "EmulateConsole", false, &p->emulate_console, err) < 0 ||
        gcs_json_bool(obj, "CreateStdInPipe", false, &p->create_stdin_pipe, err) < 0 ||
        gcs_json_bool(obj, "CreateStdOutPipe", false, &p->create_stdout_pipe, err) < 0 ||
        gcs_json_bool(obj, "CreateStdErrPipe", false, &p->create_stderr_pipe, err) < 0 ||
        gcs_json_bool(obj, "CreateInUtilityVM", false, &p->create_in_utility_vm, err) < 0 ||
        gcs_json_object(obj, "OciProcess", false, &p->oci_process, err) < 0 ||
        gcs_json_array(obj, "ConsoleSize", false, &cs, err) < 0)
        return -1;
    size_t i;
    json_t *v;
    json_array_foreach(p->command_args, i, v)
    {
        if (!json_is_string(v))
            return error_set(err, RPC_INVALID_ARGUMENT, "CommandArgs[%zu] is not a string", i);
    }
    const char *k;
    json_object_foreach(p->environment, k, v)
    {
        if (!json_is_string(v))
            return error_set(err, RPC_INVALID_ARGUMENT, "Environment[%s] is not a string", k);
    }
    if (cs != NULL) {
        json_t *h = json_array_get(cs, 0), *w = json_array_get(cs, 1);
        if (json_array_size(cs) != 2 || !json_is_integer(h) || !json_is_integer(w) ||
            json_integer_value(h) < 0 || json_integer_value(h) > UINT16_MAX ||
            json_integer_value(w) < 0 || json_integer_value(w) > UINT16_MAX)
            return error_set(err, RPC_INVALID_ARGUMENT, "ConsoleSize must be [height, width]");
        p->console_height = (uint16_t)json_integer_value(h);
        p->console_width = (uint16_t)json_integer_value(w);
    }
    return 0;
}

static json_t *stdio_ports_build(const struct gcs_stdio_ports *ports)
{
    json_t *obj = json_object();
    if (obj == NULL)
        return NULL;
    int bad = 0;
    if (ports->stdin_port)
        bad |= gcs_json_set_int(obj, "StdIn", ports->stdin_port);
    if (ports->stdout_port)
        bad |= gcs_json_set_int(obj, "StdOut", ports->stdout_port);
    if (ports->stderr_port)
        bad |= gcs_json_set_int(obj, "StdErr", ports->stderr_port);
    return finish(obj, bad);
}

json_t *gcs_execute_process_request_build(const struct gcs_execute_process_request *r)
{
    if (r->process_parameters == NULL)
        return NULL;
    json_t *obj = gcs_request_base_build(&r->base);
    json_t *settings = json_object();
    json_t *ports = stdio_ports_build(&r->ports);
    int bad = (obj == NULL || settings == NULL || ports == NULL);
    if (!bad) {
        bad |= gcs_json_set_in_string(settings, "ProcessParameters", r->process_parameters);
        bad |= json_object_set(settings, "VsockStdioRelaySettings", ports);
        bad |= json_object_set(obj, "Settings", settings);
    }
    json_decref(settings);
    json_decref(ports);
    return finish(obj, bad);
}

int gcs_execute_process_request_parse(const json_t *obj, struct gcs_execute_process_request *r,
                                      shim_error_t **err)
{
    memset(r, 0, sizeof(*r));
    json_t *settings = NULL, *ports = NULL;
    if (gcs_request_base_parse(obj, &r->base, err) < 0 ||
        gcs_json_object(obj, "Settings", true, &settings, err) < 0 ||
        gcs_json_object(settings, "VsockStdioRelaySettings", false, &ports, err) < 0 ||
        gcs_json_u32(ports, "StdIn", false, &r->ports.stdin_port, err) < 0 ||
        gcs_json_u32(ports, "StdOut", false, &r->ports.stdout_port, err) < 0 ||
        gcs_json_u32(ports, "StdErr", false, &r->ports.stderr_port, err) < 0 ||
        gcs_json_in_string(settings, "ProcessParameters", true, &r->process_parameters, err) < 0)
        return -1;
    if (!json_is_object(r->process_parameters)) {
        gcs_execute_process_request_clear(r);
        return error_set(err, RPC_INVALID_ARGUMENT, "ProcessParameters is not a JSON object");
    }
    return 0;
}

void gcs_execute_process_request_clear(struct gcs_execute_process_request *r)
{
    json_decref(r->process_parameters);
    r->process_parameters = NULL;
}

json_t *gcs_execute_process_response_build(const struct gcs_execute_process_response *r)
{
    json_t *obj = gcs_response_base_build(&r->base);
    if (obj == NULL || r->base.result != 0)
        return obj;
    return finish(obj, gcs_json_set_int(obj, "ProcessId", r->process_id));
}

int gcs_execute_process_response_parse(const json_t *obj, struct gcs_execute_process_response *r,
                                       shim_error_t **err)
{
    memset(r, 0, sizeof(*r));
    if (gcs_response_base_parse(obj, &r->base, err) < 0)
        return -1;
    if (r->base.result != 0)
        return gcs_json_u32(obj, "ProcessId", false, &r->process_id, err) < 0 ? -1 : 0;
    return gcs_json_u32(obj, "ProcessId", true, &r->process_id, err) < 0 ? -1 : 0;
}

/* ---- WaitForProcess ------------------------------------------------------------ */

json_t *gcs_wait_process_request_build(const struct gcs_wait_process_request *r)
{
    json_t *obj = gcs_request_base_build(&r->base);
    if (obj == NULL)
        return NULL;
    int bad = 0;
    bad |= gcs_json_set_int(obj, "ProcessId", r->process_id);
    bad |= gcs_json_set_int(obj, "TimeoutInMs", r->timeout_ms);
    return finish(obj, bad);
}

int gcs_wait_process_request_parse(const json_t *obj, struct gcs_wait_process_request *r,
                                   shim_error_t **err)
{
    memset(r, 0, sizeof(*r));
    if (gcs_request_base_parse(obj, &r->base, err) < 0 ||
        gcs_json_u32(obj, "ProcessId", true, &r->process_id, err) < 0 ||
        gcs_json_u32(obj, "TimeoutInMs", false, &r->timeout_ms, err) < 0)
        return -1;
    return 0;
}

json_t *gcs_wait_process_response_build(const struct gcs_wait_process_response *r)
{
    json_t *obj = gcs_response_base_build(&r->base);
    if (obj == NULL)
        return NULL;
    return finish(obj, gcs_json_set_int(obj, "ExitCode", r->exit_code));
}

int gcs_wait_process_response_parse(const json_t *obj, struct gcs_wait_process_response *r,
                                    shim_error_t **err)
{
    memset(r, 0, sizeof(*r));
    if (gcs_response_base_parse(obj, &r->base, err) < 0)
        return -1;
    bool required = r->base.result == 0;
    return gcs_json_u32(obj, "ExitCode", required, &r->exit_code, err) < 0 ? -1 : 0;
}

/* ---- SignalProcess / ResizeConsole --------------------------------------------- */

json_t *gcs_signal_process_request_build(const struct gcs_signal_process_request *r)
{
    json_t *obj = gcs_request_base_build(&r->base);
    if (obj == NULL)
        return NULL;
    int bad = gcs_json_set_int(obj, "ProcessId", r->process_id);
    if (r->has_options) {
        json_t *opts = json_pack("{s:i}", "Signal", r->signal);
        bad |= opts ? json_object_set_new(obj, "Options", opts) : -1;
    }
    return finish(obj, bad);
}

int gcs_signal_process_request_parse(const json_t *obj, struct gcs_signal_process_request *r,
                                     shim_error_t **err)
{
    memset(r, 0, sizeof(*r));
    json_t *opts = NULL;
    int32_t sig = 0;
    if (gcs_request_base_parse(obj, &r->base, err) < 0 ||
        gcs_json_u32(obj, "ProcessId", true, &r->process_id, err) < 0 ||
        gcs_json_object(obj, "Options", false, &opts, err) < 0 ||
        gcs_json_i32(opts, "Signal", false, &sig, err) < 0)
        return -1;
    r->has_options = opts != NULL;
    r->signal = sig;
    return 0;
}

json_t *gcs_resize_console_request_build(const struct gcs_resize_console_request *r)
{
    json_t *obj = gcs_request_base_build(&r->base);
    if (obj == NULL)
        return NULL;
    int bad = 0;
    bad |= gcs_json_set_int(obj, "ProcessId", r->process_id);
    bad |= gcs_json_set_int(obj, "Height", r->height);
    bad |= gcs_json_set_int(obj, "Width", r->width);
    return finish(obj, bad);
}

int gcs_resize_console_request_parse(const json_t *obj, struct gcs_resize_console_request *r,
                                     shim_error_t **err)
{
    memset(r, 0, sizeof(*r));
    if (gcs_request_base_parse(obj, &r->base, err) < 0 ||
        gcs_json_u32(obj, "ProcessId", true, &r->process_id, err) < 0 ||
        gcs_json_u16(obj, "Height", false, &r->height, err) < 0 ||
        gcs_json_u16(obj, "Width", false, &r->width, err) < 0)
        return -1;
    return 0;
}

/* ---- GetProperties ---------------------------------------------------------------- */

json_t *gcs_get_properties_request_build(const struct gcs_get_properties_request *r)
{
    json_t *obj = gcs_request_base_build(&r->base);
    json_t *types = json_array();
    int bad = (obj == NULL || types == NULL);
    if (!bad && (r->property_types & GCS_PROPERTY_PROCESS_LIST))
        bad |= json_array_append_new(types, json_string("ProcessList"));
    if (!bad && (r->property_types & GCS_PROPERTY_STATISTICS))
        bad |= json_array_append_new(types, json_string("Statistics"));
    json_t *query = bad ? NULL : json_pack("{s:O}", "PropertyTypes", types);
    bad |= query == NULL;
    if (!bad)
        bad |= gcs_json_set_in_string(obj, "Query", query);
    json_decref(query);
    json_decref(types);
    return finish(obj, bad);
}

int gcs_get_properties_request_parse(const json_t *obj, struct gcs_get_properties_request *r,
                                     shim_error_t **err)
{
    memset(r, 0, sizeof(*r));
    json_t *types = NULL;
    if (gcs_request_base_parse(obj, &r->base, err) < 0 ||
        gcs_json_in_string(obj, "Query", false, &r->query, err) < 0)
        return -1;
    if (r->query == NULL)
        return 0;
    if (!json_is_object(r->query) ||
        gcs_json_array(r->query, "PropertyTypes", false, &types, NULL) < 0) {
        gcs_get_properties_request_clear(r);
        return error_set(err, RPC_INVALID_ARGUMENT, "Query must be {\"PropertyTypes\":[...]}");
    }
    size_t i;
    json_t *v;
    json_array_foreach(types, i, v)
    {
        const char *s = json_string_value(v);
        if (s == NULL) {
            gcs_get_properties_request_clear(r);
            return error_set(err, RPC_INVALID_ARGUMENT, "PropertyTypes[%zu] is not a string", i);
        }
        if (strcmp(s, "ProcessList") == 0)
            r->property_types |= GCS_PROPERTY_PROCESS_LIST;
        else if (strcmp(s, "Statistics") == 0)
            r->property_types |= GCS_PROPERTY_STATISTICS;
    }
    return 0;
}

void gcs_get_properties_request_clear(struct gcs_get_properties_request *r)
{
    json_decref(r->query);
    r->query = NULL;
}

json_t *gcs_get_properties_response_build(const struct gcs_get_properties_response *r)
{
    json_t *obj = gcs_response_base_build(&r->base);
    if (obj == NULL || r->base.result != 0)
        return obj;
    if (r->properties == NULL)
        return finish(obj, gcs_json_set_string(obj, "Properties", "{}"));
    return finish(obj, gcs_json_set_in_string(obj, "Properties", r->properties));
}

int gcs_get_properties_response_parse(const json_t *obj, struct gcs_get_properties_response *r,
                                      shim_error_t **err)
{
    memset(r, 0, sizeof(*r));
    if (gcs_response_base_parse(obj, &r->base, err) < 0 ||
        gcs_json_in_string(obj, "Properties", false, &r->properties, err) < 0)
        return -1;
    if (r->properties != NULL && !json_is_object(r->properties)) {
        gcs_get_properties_response_clear(r);
        return error_set(err, RPC_INVALID_ARGUMENT, "Properties is not a JSON object");
    }
    return 0;
}

void gcs_get_properties_response_clear(struct gcs_get_properties_response *r)
{
    json_decref(r->properties);
    r->properties = NULL;
}

int gcs_properties_process_list(const json_t *properties, uint32_t **pids, size_t *count,
                                shim_error_t **err)
{
    json_t *list = NULL;
    *pids = NULL;
    *count = 0;
    if (gcs_json_array(properties, "ProcessList", true, &list, err) < 0)
        return -1;
    size_t n = json_array_size(list);
    uint32_t *out = calloc(n ? n : 1, sizeof(*out));
    if (out == NULL)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(list, i);
        if (!json_is_object(e) || gcs_json_u32(e, "ProcessId", true, &out[i], NULL) < 0) {
            free(out);
            return error_set(err, RPC_INVALID_ARGUMENT, "ProcessList[%zu] has no ProcessId", i);
        }
    }
    *pids = out;
    *count = n;
    return 0;
}

json_t *gcs_properties_process_list_build(const uint32_t *pids, size_t count)
{
    json_t *list = json_array();
    int bad = list == NULL;
    for (size_t i = 0; !bad && i < count; i++) {
        json_t *e = json_pack("{s:I}", "ProcessId", (json_int_t)pids[i]);
        bad |= e ? json_array_append_new(list, e) : -1;
    }
    if (bad) {
        json_decref(list);
        return NULL;
    }
    return json_pack("{s:o}", "ProcessList", list);
}

/* ---- ModifySettings ------------------------------------------------------------------ */

json_t *gcs_modify_settings_request_build(const struct gcs_modify_settings_request *r)
{
    json_t *obj = gcs_request_base_build(&r->base);
    json_t *req = json_object();
    int bad = (obj == NULL || req == NULL);
    if (!bad) {
        bad |= gcs_json_set_string(req, "ResourceType", r->resource_type);
        bad |= gcs_json_set_string(req, "RequestType",
                                   r->request_type ? r->request_type : GCS_REQUEST_ADD);
        if (r->settings != NULL)
            bad |= gcs_json_set_copy(req, "Settings", r->settings);
        bad |= json_object_set(obj, "Request", req);
    }
    json_decref(req);
    return finish(obj, bad);
}

int gcs_modify_settings_request_parse(const json_t *obj, struct gcs_modify_settings_request *r,
                                      shim_error_t **err)
{
    memset(r, 0, sizeof(*r));
    json_t *req = NULL;
    if (gcs_request_base_parse(obj, &r->base, err) < 0 ||
        gcs_json_object(obj, "Request", true, &req, err) < 0 ||
        gcs_json_string(req, "ResourceType", true, &r->resource_type, err) < 0 ||
        gcs_json_string(req, "RequestType", false, &r->request_type, err) < 0 ||
        gcs_json_object(req, "Settings", false, &r->settings, err) < 0)
        return -1;
    if (r->request_type == NULL || r->request_type[0] == '\0')
        r->request_type = GCS_REQUEST_ADD;
    return 0;
}

json_t *gcs_mapped_virtual_disk_build(const struct gcs_mapped_virtual_disk *d)
{
    json_t *obj = json_object();
    if (obj == NULL)
        return NULL;
    int bad = 0;
    bad |= gcs_json_set_string_omitempty(obj, "MountPath", d->mount_path);
    if (d->lun)
        bad |= gcs_json_set_int(obj, "Lun", d->lun);
    if (d->controller)
        bad |= gcs_json_set_int(obj, "Controller", d->controller);
    if (d->partition)
        bad |= gcs_json_set_int(obj, "Partition", (long long)d->partition);
    bad |= set_flag(obj, "ReadOnly", d->read_only);
    bad |= set_flag(obj, "Encrypted", d->encrypted);
    if (d->options != NULL && json_array_size(d->options) > 0)
        bad |= gcs_json_set_copy(obj, "Options", d->options);
    bad |= set_flag(obj, "BlockDev", d->block_dev);
    bad |= set_flag(obj, "EnsureFilesystem", d->ensure_filesystem);
    bad |= gcs_json_set_string_omitempty(obj, "Filesystem", d->filesystem);
    return finish(obj, bad);
}

int gcs_mapped_virtual_disk_parse(const json_t *obj, struct gcs_mapped_virtual_disk *d,
                                  shim_error_t **err)
{
    memset(d, 0, sizeof(*d));
    if (gcs_json_string(obj, "MountPath", false, &d->mount_path, err) < 0 ||
        gcs_json_u8(obj, "Lun", false, &d->lun, err) < 0 ||
        gcs_json_u8(obj, "Controller", false, &d->controller, err) < 0 ||
        gcs_json_u64(obj, "Partition", false, &d->partition, err) < 0 ||
        gcs_json_bool(obj, "ReadOnly", false, &d->read_only, err) < 0 ||
        gcs_json_bool(obj, "Encrypted", false, &d->encrypted, err) < 0 ||
        gcs_json_array(obj, "Options", false, &d->options, err) < 0 ||
        gcs_json_bool(obj, "BlockDev", false, &d->block_dev, err) < 0 ||
        gcs_json_bool(obj, "EnsureFilesystem", false, &d->ensure_filesystem, err) < 0 ||
        gcs_json_string(obj, "Filesystem", false, &d->filesystem, err) < 0)
        return -1;
    return 0;
}

json_t *gcs_scsi_device_build(const struct gcs_scsi_device *d)
{
    return json_pack("{s:i,s:i}", "Controller", d->controller, "Lun", d->lun);
}

int gcs_scsi_device_parse(const json_t *obj, struct gcs_scsi_device *d, shim_error_t **err)
{
    memset(d, 0, sizeof(*d));
    if (gcs_json_u8(obj, "Controller", false, &d->controller, err) < 0 ||
        gcs_json_u8(obj, "Lun", false, &d->lun, err) < 0)
        return -1;
    return 0;
}

json_t *gcs_mapped_directory_build(const struct gcs_mapped_directory *d)
{
    json_t *obj = json_object();
    if (obj == NULL)
        return NULL;
    int bad = 0;
    bad |= gcs_json_set_string_omitempty(obj, "MountPath", d->mount_path);
    if (d->port)
        bad |= gcs_json_set_int(obj, "Port", d->port);
    bad |= gcs_json_set_string_omitempty(obj, "ShareName", d->share_name);
    bad |= set_flag(obj, "ReadOnly", d->read_only);
    return finish(obj, bad);
}

int gcs_mapped_directory_parse(const json_t *obj, struct gcs_mapped_directory *d,
                               shim_error_t **err)
{
    memset(d, 0, sizeof(*d));
    if (gcs_json_string(obj, "MountPath", false, &d->mount_path, err) < 0 ||
        gcs_json_i32(obj, "Port", false, &d->port, err) < 0 ||
        gcs_json_string(obj, "ShareName", false, &d->share_name, err) < 0 ||
        gcs_json_bool(obj, "ReadOnly", false, &d->read_only, err) < 0)
        return -1;
    return 0;
}

json_t *gcs_vpmem_device_build(const struct gcs_vpmem_device *d)
{
    json_t *obj = json_object();
    if (obj == NULL)
        return NULL;
    int bad = 0;
    bad |= gcs_json_set_int(obj, "DeviceNumber", d->device_number);
    bad |= gcs_json_set_string_omitempty(obj, "MountPath", d->mount_path);
    if (d->has_mapping) {
        json_t *m =
            json_pack("{s:I,s:I}", "DeviceOffsetInBytes", (json_int_t)d->device_offset_in_bytes,
                      "DeviceSizeInBytes", (json_int_t)d->device_size_in_bytes);
        bad |= m ? json_object_set_new(obj, "MappingInfo", m) : -1;
    }
    return finish(obj, bad);
}

int gcs_vpmem_device_parse(const json_t *obj, struct gcs_vpmem_device *d, shim_error_t **err)
{
    memset(d, 0, sizeof(*d));
    json_t *m = NULL;
    if (gcs_json_u32(obj, "DeviceNumber", false, &d->device_number, err) < 0 ||
        gcs_json_string(obj, "MountPath", false, &d->mount_path, err) < 0 ||
        gcs_json_object(obj, "MappingInfo", false, &m, err) < 0 ||
        gcs_json_u64(m, "DeviceOffsetInBytes", false, &d->device_offset_in_bytes, err) < 0 ||
        gcs_json_u64(m, "DeviceSizeInBytes", false, &d->device_size_in_bytes, err) < 0)
        return -1;
    d->has_mapping = m != NULL;
    return 0;
}

json_t *gcs_combined_layers_build(const struct gcs_combined_layers *c)
{
    json_t *obj = json_object(), *layers = json_array();
    int bad = (obj == NULL || layers == NULL);
    for (size_t i = 0; !bad && i < c->n_layers; i++) {
        json_t *l = json_pack("{s:s}", "Path", c->layers[i]);
        bad |= l ? json_array_append_new(layers, l) : -1;
    }
    if (!bad) {
        bad |= gcs_json_set_string_omitempty(obj, "ContainerID", c->container_id);
        bad |= gcs_json_set_string(obj, "ContainerRootPath", c->container_root_path);
        bad |= json_object_set(obj, "Layers", layers);
        bad |= gcs_json_set_string_omitempty(obj, "ScratchPath", c->scratch_path);
    }
    json_decref(layers);
    return finish(obj, bad);
}

int gcs_combined_layers_parse(const json_t *obj, struct gcs_combined_layers *c, shim_error_t **err)
{
    memset(c, 0, sizeof(*c));
    if (gcs_json_string(obj, "ContainerID", false, &c->container_id, err) < 0 ||
        gcs_json_string(obj, "ContainerRootPath", false, &c->container_root_path, err) < 0 ||
        gcs_json_array(obj, "Layers", false, &c->layers_json, err) < 0 ||
        gcs_json_string(obj, "ScratchPath", false, &c->scratch_path, err) < 0)
        return -1;
    c->n_layers = json_array_size(c->layers_json);
    for (size_t i = 0; i < c->n_layers; i++) {
        const char *p = NULL;
        json_t *l = json_array_get(c->layers_json, i);
        if (!json_is_object(l) || gcs_json_string(l, "Path", true, &p, NULL) < 0)
            return error_set(err, RPC_INVALID_ARGUMENT, "Layers[%zu] has no Path", i);
    }
    return 0;
}

const char *gcs_combined_layers_path(const struct gcs_combined_layers *c, size_t i)
{
    if (c->layers_json == NULL)
        return i < c->n_layers ? c->layers[i] : NULL;
    json_t *p = gcs_json_get(json_array_get(c->layers_json, i), "Path");
    return json_string_value(p);
}

/* ---- DumpStacks ------------------------------------------------------------------------ */

json_t *gcs_dump_stacks_response_build(const struct gcs_dump_stacks_response *r)
{
    json_t *obj = gcs_response_base_build(&r->base);
    if (obj == NULL || r->base.result != 0)
        return obj;
    return finish(obj, gcs_json_set_string(obj, "GuestStacks", r->guest_stacks));
}

int gcs_dump_stacks_response_parse(const json_t *obj, struct gcs_dump_stacks_response *r,
                                   shim_error_t **err)
{
    memset(r, 0, sizeof(*r));
    if (gcs_response_base_parse(obj, &r->base, err) < 0 ||
        gcs_json_string(obj, "GuestStacks", false, &r->guest_stacks, err) < 0)
        return -1;
    return 0;
}

/* ---- container notification ----------------------------------------------------------- */

json_t *gcs_container_notification_build(const struct gcs_container_notification *n)
{
    json_t *obj = gcs_request_base_build(&n->base);
    if (obj == NULL)
        return NULL;
    int bad = 0;
    bad |= gcs_json_set_string(obj, "Type", n->type ? n->type : GCS_NOTIFY_UNEXPECTED_EXIT);
    bad |= gcs_json_set_string(obj, "Operation", n->operation ? n->operation : "None");
    bad |= gcs_json_set_int(obj, "Result", n->result);
    if (n->result_info != NULL)
        bad |= gcs_json_set_in_string(obj, "ResultInfo", n->result_info);
    return finish(obj, bad);
}

int gcs_container_notification_parse(const json_t *obj, struct gcs_container_notification *n,
                                     shim_error_t **err)
{
    memset(n, 0, sizeof(*n));
    if (gcs_request_base_parse(obj, &n->base, err) < 0 ||
        gcs_json_string(obj, "Type", false, &n->type, err) < 0 ||
        gcs_json_string(obj, "Operation", false, &n->operation, err) < 0 ||
        gcs_json_i32(obj, "Result", false, &n->result, err) < 0 ||
        gcs_json_in_string(obj, "ResultInfo", false, &n->result_info, err) < 0)
        return -1;
    return 0;
}

void gcs_container_notification_clear(struct gcs_container_notification *n)
{
    json_decref(n->result_info);
    n->result_info = NULL;
}
