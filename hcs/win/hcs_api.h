/* computecore.dll, loaded at run time (hcs-documents.md §1.1).
 *
 * The shim links no import library: a load-time import of computecore.dll
 * would stop the executable from starting at all on a host without the
 * Containers/Hyper-V feature (and under wine), where `delete`, `--version`
 * and error reporting must still work. Instead the functions are looked up
 * into a table; unit tests fill the same table with fakes. */
#ifndef HCS_WIN_HCS_API_H
#define HCS_WIN_HCS_API_H

#include <windows.h>

#include <computedefs.h>

#include "common/error.h"

struct hcs_api {
    HMODULE module; /* NULL for an injected (fake) table */
    HCS_OPERATION(WINAPI *CreateOperation)(const void *context, HCS_OPERATION_COMPLETION callback);
    void(WINAPI *CloseOperation)(HCS_OPERATION operation);
    HRESULT(WINAPI *GetOperationResult)(HCS_OPERATION operation, PWSTR *result_document);
    HRESULT(WINAPI *WaitForOperationResult)
    (HCS_OPERATION operation, DWORD timeout_ms, PWSTR *result_document);
    HRESULT(WINAPI *CancelOperation)(HCS_OPERATION operation);
    HRESULT(WINAPI *CreateComputeSystem)
    (PCWSTR id, PCWSTR configuration, HCS_OPERATION operation,
     const SECURITY_DESCRIPTOR *security_descriptor, HCS_SYSTEM *compute_system);
    HRESULT(WINAPI *OpenComputeSystem)
    (PCWSTR id, DWORD requested_access, HCS_SYSTEM *compute_system);
    void(WINAPI *CloseComputeSystem)(HCS_SYSTEM compute_system);
    HRESULT(WINAPI *StartComputeSystem)
    (HCS_SYSTEM compute_system, HCS_OPERATION operation, PCWSTR options);
    HRESULT(WINAPI *ShutDownComputeSystem)
    (HCS_SYSTEM compute_system, HCS_OPERATION operation, PCWSTR options);
    HRESULT(WINAPI *TerminateComputeSystem)
    (HCS_SYSTEM compute_system, HCS_OPERATION operation, PCWSTR options);
    HRESULT(WINAPI *ModifyComputeSystem)
    (HCS_SYSTEM compute_system, HCS_OPERATION operation, PCWSTR configuration, HANDLE identity);
    HRESULT(WINAPI *GetComputeSystemProperties)
    (HCS_SYSTEM compute_system, HCS_OPERATION operation, PCWSTR property_query);
    HRESULT(WINAPI *SetComputeSystemCallback)
    (HCS_SYSTEM compute_system, HCS_EVENT_OPTIONS callback_options, const void *context,
     HCS_EVENT_CALLBACK callback);
};

/* Loads computecore.dll from System32 and resolves every function above.
 * Fails with RPC_UNIMPLEMENTED "computecore.dll not available: ..." when the
 * DLL is missing (no Containers feature, wine) or lacks a function. `dll`
 * is the DLL name, NULL for "computecore.dll" (tests pass a missing one). */
int hcs_api_load(struct hcs_api *api, const wchar_t *dll, shim_error_t **err);
/* Releases the DLL of a loaded table (nothing for an injected one). */
void hcs_api_unload(struct hcs_api *api);

#endif
