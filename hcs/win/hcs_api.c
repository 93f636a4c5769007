#include "hcs/win/hcs_api.h"

#include <string.h>

/* GetProcAddress returns FARPROC; the table holds the exact signatures. */
#define RESOLVE(field, name)                                                                       \
    do {                                                                                           \
        FARPROC p = GetProcAddress(module, name);                                                  \
        if (p == NULL) {                                                                           \
            missing = name;                                                                        \
            goto fail;                                                                             \
        }                                                                                          \
        memcpy(&api->field, &p, sizeof(p));                                                        \
    } while (0)

int hcs_api_load(struct hcs_api *api, const wchar_t *dll, shim_error_t **err)
{
    memset(api, 0, sizeof(*api));
    const char *missing = NULL;
    HMODULE module =
        LoadLibraryExW(dll ? dll : L"computecore.dll", NULL, LOAD_LIBRARY_SEARCH_SYSTEM32);
    if (module == NULL)
        return error_set(err, RPC_UNIMPLEMENTED,
                         "computecore.dll not available (Windows error %lu): the Host Compute "
                         "Service needs Windows 10 1809 / Server 2019 or later with the "
                         "Containers or Hyper-V feature",
                         (unsigned long)GetLastError());
    RESOLVE(CreateOperation, "HcsCreateOperation");
    RESOLVE(CloseOperation, "HcsCloseOperation");
    RESOLVE(GetOperationResult, "HcsGetOperationResult");
    RESOLVE(WaitForOperationResult, "HcsWaitForOperationResult");
    RESOLVE(CancelOperation, "HcsCancelOperation");
    RESOLVE(CreateComputeSystem, "HcsCreateComputeSystem");
    RESOLVE(OpenComputeSystem, "HcsOpenComputeSystem");
    RESOLVE(CloseComputeSystem, "HcsCloseComputeSystem");
    RESOLVE(StartComputeSystem, "HcsStartComputeSystem");
    RESOLVE(ShutDownComputeSystem, "HcsShutDownComputeSystem");
    RESOLVE(TerminateComputeSystem, "HcsTerminateComputeSystem");
    RESOLVE(ModifyComputeSystem, "HcsModifyComputeSystem");
    RESOLVE(GetComputeSystemProperties, "HcsGetComputeSystemProperties");
    RESOLVE(SetComputeSystemCallback, "HcsSetComputeSystemCallback");
    api->module = module;
    return 0;
fail:
    FreeLibrary(module);
    memset(api, 0, sizeof(*api));
    return error_set(err, RPC_UNIMPLEMENTED,
                     "computecore.dll not available: it has no %s (Windows too old?)", missing);
}

void hcs_api_unload(struct hcs_api *api)
{
    if (api->module != NULL)
        FreeLibrary(api->module);
    memset(api, 0, sizeof(*api));
}
