#include "hcs/win/hresult.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/strbuf.h"

static const struct hcs_hresult_info table[] = {
    {0x80370100u, "HCS_E_TERMINATED_DURING_START", RPC_ABORTED,
     "the compute system exited while starting"},
    {0x80370101u, "HCS_E_IMAGE_MISMATCH", RPC_FAILED_PRECONDITION,
     "the container image does not match the host OS version"},
    {0x80370102u, "HCS_E_HYPERV_NOT_INSTALLED", RPC_FAILED_PRECONDITION,
     "Hyper-V is not installed"},
    {0x80370105u, "HCS_E_INVALID_STATE", RPC_FAILED_PRECONDITION,
     "operation not valid in the compute system's current state"},
    {0x80370106u, "HCS_E_UNEXPECTED_EXIT", RPC_ABORTED, "the compute system exited unexpectedly"},
    {0x80370107u, "HCS_E_TERMINATED", RPC_ABORTED, "the compute system was terminated"},
    {0x80370108u, "HCS_E_CONNECT_FAILED", RPC_UNAVAILABLE, "connecting to the guest failed"},
    {0x80370109u, "HCS_E_CONNECTION_TIMEOUT", RPC_DEADLINE_EXCEEDED,
     "connecting to the guest timed out"},
    {0x8037010Au, "HCS_E_CONNECTION_CLOSED", RPC_UNAVAILABLE, "the guest connection was closed"},
    {0x8037010Bu, "HCS_E_UNKNOWN_MESSAGE", RPC_UNIMPLEMENTED,
     "the guest does not understand the request"},
    {0x8037010Cu, "HCS_E_UNSUPPORTED_PROTOCOL_VERSION", RPC_UNIMPLEMENTED,
     "unsupported guest protocol version"},
    {0x8037010Du, "HCS_E_INVALID_JSON", RPC_INVALID_ARGUMENT, "invalid or unknown JSON field"},
    {0x8037010Eu, "HCS_E_SYSTEM_NOT_FOUND", RPC_NOT_FOUND, "compute system not found"},
    {0x8037010Fu, "HCS_E_SYSTEM_ALREADY_EXISTS", RPC_ALREADY_EXISTS,
     "a compute system with this id already exists"},
    {0x80370110u, "HCS_E_SYSTEM_ALREADY_STOPPED", RPC_FAILED_PRECONDITION,
     "the compute system is already stopped"},
    {0x80370111u, "HCS_E_PROTOCOL_ERROR", RPC_INTERNAL, "guest protocol error"},
    {0x80370112u, "HCS_E_INVALID_LAYER", RPC_INVALID_ARGUMENT, "invalid container layer"},
    {0x80370113u, "HCS_E_WINDOWS_INSIDER_REQUIRED", RPC_FAILED_PRECONDITION,
     "needs a Windows Insider build"},
    {0x80370114u, "HCS_E_SERVICE_NOT_AVAILABLE", RPC_UNAVAILABLE,
     "the compute service is not available"},
    {0x80370115u, "HCS_E_OPERATION_NOT_STARTED", RPC_FAILED_PRECONDITION,
     "the operation was not started"},
    {0x80370116u, "HCS_E_OPERATION_ALREADY_STARTED", RPC_FAILED_PRECONDITION,
     "the operation handle is already in use"},
    {0x80370117u, "HCS_E_OPERATION_PENDING", RPC_FAILED_PRECONDITION,
     "the operation is still pending"},
    {0x80370118u, "HCS_E_OPERATION_TIMEOUT", RPC_DEADLINE_EXCEEDED, "the operation timed out"},
    {0x80370119u, "HCS_E_OPERATION_SYSTEM_CALLBACK_ALREADY_SET", RPC_FAILED_PRECONDITION,
     "operation callbacks are disabled on this handle"},
    {0x8037011Au, "HCS_E_OPERATION_RESULT_ALLOCATION_FAILED", RPC_RESOURCE_EXHAUSTED,
     "allocating the operation result failed"},
    {0x8037011Bu, "HCS_E_ACCESS_DENIED", RPC_PERMISSION_DENIED,
     "access denied (needs Administrators or Hyper-V Administrators)"},
    {0x8037011Cu, "HCS_E_GUEST_CRITICAL_ERROR", RPC_INTERNAL, "critical error in the guest"},
    {0x8037011Du, "HCS_E_PROCESS_INFO_NOT_AVAILABLE", RPC_UNAVAILABLE,
     "process information is not available"},
    {0x8037011Eu, "HCS_E_SERVICE_DISCONNECT", RPC_UNAVAILABLE,
     "the compute service (vmcompute) disconnected"},
    {0x8037011Fu, "HCS_E_PROCESS_ALREADY_STOPPED", RPC_FAILED_PRECONDITION,
     "the process is already stopped"},
    /* Legacy vmcompute.dll Win32 codes that have no 0x8037 twin. */
    {0xC0370103u, "ERROR_VMCOMPUTE_OPERATION_PENDING", RPC_FAILED_PRECONDITION,
     "the operation is still pending"},
    /* Plain Win32 errors as HRESULT_FROM_WIN32 and generic COM errors. */
    {0x80070490u, "ERROR_NOT_FOUND", RPC_NOT_FOUND, "element not found"},
    {0x80070032u, "ERROR_NOT_SUPPORTED", RPC_UNIMPLEMENTED, "not supported"},
    {0x8007000Du, "ERROR_INVALID_DATA", RPC_INVALID_ARGUMENT, "invalid or unsupported request"},
    {0x80070005u, "E_ACCESSDENIED", RPC_PERMISSION_DENIED, "access denied"},
    {0x80070006u, "E_HANDLE", RPC_FAILED_PRECONDITION, "invalid handle"},
    {0x8007007Fu, "ERROR_PROC_NOT_FOUND", RPC_UNIMPLEMENTED,
     "API function missing (Windows too old)"},
    {0x80070057u, "E_INVALIDARG", RPC_INVALID_ARGUMENT, "invalid argument"},
    {0x8007000Eu, "E_OUTOFMEMORY", RPC_RESOURCE_EXHAUSTED, "out of memory"},
    {0x80004001u, "E_NOTIMPL", RPC_UNIMPLEMENTED, "not implemented"},
    {0x80004004u, "E_ABORT", RPC_CANCELED, "operation aborted"},
    {0x80004005u, "E_FAIL", RPC_UNKNOWN, "unspecified failure"},
};

static const struct hcs_hresult_info success = {0, "S_OK", RPC_OK, "success"};
static const struct hcs_hresult_info unknown = {0, "HRESULT", RPC_UNKNOWN, "unknown error"};

/* ERROR_VMCOMPUTE_* (0xC037xxxx) -> its HCS_E_* twin (0x8037xxxx). */
static uint32_t canonical(uint32_t hr)
{
    if ((hr & 0xFFFF0000u) == 0xC0370000u && hr != 0xC0370103u)
        return 0x80370000u | (hr & 0xFFFFu);
    return hr;
}

const struct hcs_hresult_info *hcs_hresult_lookup(uint32_t hr)
{
    if ((hr & 0x80000000u) == 0)
        return &success;
    hr = canonical(hr);
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        if (table[i].hr == hr)
            return &table[i];
    }
    return &unknown;
}

bool hcs_hresult_is_not_exist(uint32_t hr)
{
    hr = canonical(hr);
    return hr == HCS_HR_E_SYSTEM_NOT_FOUND || hr == HCS_HR_ERROR_NOT_FOUND;
}

bool hcs_hresult_is_already_stopped(uint32_t hr)
{
    hr = canonical(hr);
    return hr == HCS_HR_E_SYSTEM_ALREADY_STOPPED || hr == HCS_HR_E_PROCESS_ALREADY_STOPPED ||
           hr == HCS_HR_ERROR_NOT_FOUND;
}

bool hcs_hresult_is_not_supported(uint32_t hr)
{
    hr = canonical(hr);
    return hr == 0x8037010Du || hr == 0x8007000Du || hr == 0x80070032u || hr == 0x8037010Bu;
}

/* HCS's own text and the ErrorEvents messages of a ResultError document. */
static void append_result_detail(struct strbuf *sb, const char *result_json,
                                 const struct hcs_hresult_info *info)
{
    json_t *doc = result_json ? json_loads(result_json, 0, NULL) : NULL;
    const char *message = json_string_value(json_object_get(doc, "ErrorMessage"));
    strbuf_adds(sb, message && message[0] ? message : info->text);
    size_t i;
    json_t *ev;
    json_array_foreach(json_object_get(doc, "ErrorEvents"), i, ev)
    {
        const char *m = json_string_value(json_object_get(ev, "Message"));
        if (m != NULL && m[0] != '\0')
            strbuf_addf(sb, "; %s", m);
    }
    json_decref(doc);
}

int hcs_error_from_hresult(shim_error_t **err, uint32_t hr, const char *result_json,
                           const char *fmt, ...)
{
    const struct hcs_hresult_info *info = hcs_hresult_lookup(hr);
    struct strbuf sb = STRBUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    strbuf_vaddf(&sb, fmt, ap);
    va_end(ap);
    strbuf_adds(&sb, ": ");
    append_result_detail(&sb, result_json, info);
    strbuf_addf(&sb, " (%s 0x%08X)", info->name, (unsigned)hr);
    char *msg = strbuf_detach(&sb);
    int code = info->code == RPC_OK ? RPC_UNKNOWN : info->code;
    if (msg == NULL)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    error_set(err, code, "%s", msg);
    free(msg);
    if (err != NULL && *err != NULL)
        (*err)->sys_errno = 0;
    return -1;
}
