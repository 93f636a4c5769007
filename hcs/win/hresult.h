/* HRESULTs of the Host Compute Service -> our error codes and messages
 * (hcs-documents.md §1.1 "HRESULTs that matter"). Plain C, no Windows
 * headers needed, so the table is testable anywhere. */
#ifndef HCS_WIN_HRESULT_H
#define HCS_WIN_HRESULT_H

#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"

#define HCS_HR_S_OK 0x00000000u
#define HCS_HR_E_INVALID_STATE 0x80370105u
#define HCS_HR_E_SYSTEM_NOT_FOUND 0x8037010Eu
#define HCS_HR_E_SYSTEM_ALREADY_STOPPED 0x80370110u
#define HCS_HR_E_OPERATION_PENDING 0x80370117u
#define HCS_HR_E_OPERATION_TIMEOUT 0x80370118u
#define HCS_HR_E_ACCESS_DENIED 0x8037011Bu
#define HCS_HR_E_PROCESS_ALREADY_STOPPED 0x8037011Fu
#define HCS_HR_ERROR_NOT_FOUND 0x80070490u
#define HCS_HR_E_FAIL 0x80004005u

struct hcs_hresult_info {
    uint32_t hr;
    const char *name; /* "HCS_E_INVALID_STATE"; "HRESULT" for an unknown value */
    int code;         /* enum rpc_code */
    const char *text; /* what it means, lower case */
};

/* Never NULL: unknown failures give {"HRESULT", RPC_UNKNOWN, ...}, success
 * values {"S_OK", RPC_OK, ...}. The legacy 0xC037xxxx forms map like their
 * 0x8037xxxx twins. */
const struct hcs_hresult_info *hcs_hresult_lookup(uint32_t hr);

/* hcsshim's classifiers. */
bool hcs_hresult_is_not_exist(uint32_t hr);       /* system not found, element not found */
bool hcs_hresult_is_already_stopped(uint32_t hr); /* already stopped (system/process), not found */
bool hcs_hresult_is_not_supported(uint32_t hr); /* invalid JSON/data, not supported, unknown msg */

/* Sets *err from a failed HCS call and returns -1. The message is
 * "<context>: <ErrorMessage or the table's text>[; <event>...] (NAME 0xXXXXXXXX)"
 * where ErrorMessage and the ErrorEvents messages come from the ResultError
 * document `result_json` (UTF-8; NULL or not JSON is fine). */
int hcs_error_from_hresult(shim_error_t **err, uint32_t hr, const char *result_json,
                           const char *fmt, ...) SHIM_PRINTF(4, 5);

#endif
