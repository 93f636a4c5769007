/* The Windows compute-service backend (hcs/win/) without HCS: the HRESULT
 * table, UTF-8 <-> UTF-16 conversion, the "computecore.dll missing" path,
 * and the operation/event -> loop marshalling over a fake function table
 * (the fakes live only here). Runs under wine via `make test-windows`; on
 * Linux it builds to a single skipped case. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#ifdef _WIN32

#include <jansson.h>
#include <uv.h>

#include "hcs/win/compute_hcs.h"
#include "hcs/win/hresult.h"
#include "hcs/win/utf16.h"
#include "test/support/win/fake_hcs.h"

#define WAIT_MS 20000

/* ---- HRESULT table ----------------------------------------------------------------------------
 */

static void test_hresult_table(void **state)
{
    (void)state;
    static const struct {
        uint32_t hr;
        const char *name;
        int code;
    } cases[] = {
        {0x80370100u, "HCS_E_TERMINATED_DURING_START", RPC_ABORTED},
        {0x80370105u, "HCS_E_INVALID_STATE", RPC_FAILED_PRECONDITION},
        {0x8037010Du, "HCS_E_INVALID_JSON", RPC_INVALID_ARGUMENT},
        {0x8037010Eu, "HCS_E_SYSTEM_NOT_FOUND", RPC_NOT_FOUND},
        {0x8037010Fu, "HCS_E_SYSTEM_ALREADY_EXISTS", RPC_ALREADY_EXISTS},
        {0x80370118u, "HCS_E_OPERATION_TIMEOUT", RPC_DEADLINE_EXCEEDED},
        {0x8037011Bu, "HCS_E_ACCESS_DENIED", RPC_PERMISSION_DENIED},
        {0x8037011Eu, "HCS_E_SERVICE_DISCONNECT", RPC_UNAVAILABLE},
        {0x8037011Fu, "HCS_E_PROCESS_ALREADY_STOPPED", RPC_FAILED_PRECONDITION},
        /* legacy vmcompute forms map like their twins */
        {0xC037010Eu, "HCS_E_SYSTEM_NOT_FOUND", RPC_NOT_FOUND},
        {0xC0370105u, "HCS_E_INVALID_STATE", RPC_FAILED_PRECONDITION},
        {0xC0370103u, "ERROR_VMCOMPUTE_OPERATION_PENDING", RPC_FAILED_PRECONDITION},
        {0x80070490u, "ERROR_NOT_FOUND", RPC_NOT_FOUND},
        {0x8007007Fu, "ERROR_PROC_NOT_FOUND", RPC_UNIMPLEMENTED},
        {0x80004005u, "E_FAIL", RPC_UNKNOWN},
        {0x80123456u, "HRESULT", RPC_UNKNOWN},
        {0x00000000u, "S_OK", RPC_OK},
        {0x00000001u, "S_OK", RPC_OK},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct hcs_hresult_info *info = hcs_hresult_lookup(cases[i].hr);
        assert_non_null(info);
        assert_string_equal(info->name, cases[i].name);
        assert_int_equal(info->code, cases[i].code);
        assert_non_null(info->text);
    }
}

static void test_hresult_classifiers(void **state)
{
    (void)state;
    assert_true(hcs_hresult_is_not_exist(0x8037010Eu));
    assert_true(hcs_hresult_is_not_exist(0xC037010Eu));
    assert_true(hcs_hresult_is_not_exist(0x80070490u));
    assert_false(hcs_hresult_is_not_exist(0x80370110u));
    assert_true(hcs_hresult_is_already_stopped(0x80370110u));
    assert_true(hcs_hresult_is_already_stopped(0xC0370110u));
    assert_true(hcs_hresult_is_already_stopped(0x8037011Fu));
    assert_true(hcs_hresult_is_already_stopped(0x80070490u));
    assert_false(hcs_hresult_is_already_stopped(0x80370105u));
    assert_true(hcs_hresult_is_not_supported(0x8037010Du));
    assert_true(hcs_hresult_is_not_supported(0x8007000Du));
    assert_true(hcs_hresult_is_not_supported(0x80070032u));
    assert_true(hcs_hresult_is_not_supported(0xC037010Bu));
    assert_false(hcs_hresult_is_not_supported(0x80004005u));
}

static void test_hresult_error_message(void **state)
{
    (void)state;
    shim_error_t *err = NULL;
    const char *doc = "{\"Error\":-2143878899,\"ErrorMessage\":\"The JSON document is invalid.\","
                      "\"ErrorEvents\":[{\"Message\":\"unknown field 'Foo'\"},{\"Provider\":\"x\"},"
                      "{\"Message\":\"at VirtualMachine\"}]}";
    assert_int_equal(hcs_error_from_hresult(&err, 0x8037010Du, doc, "create \"%s\"", "c1"), -1);
    assert_non_null(err);
    assert_int_equal(err->code, RPC_INVALID_ARGUMENT);
    assert_string_equal(err->msg, "create \"c1\": The JSON document is invalid.; unknown field "
                                  "'Foo'; at VirtualMachine (HCS_E_INVALID_JSON 0x8037010D)");
    error_free(err);

    /* No document, a broken one, an unknown HRESULT. */
    err = NULL;
    hcs_error_from_hresult(&err, 0x8037011Bu, NULL, "start");
    assert_string_equal(err->msg, "start: access denied (needs Administrators or Hyper-V "
                                  "Administrators) (HCS_E_ACCESS_DENIED 0x8037011B)");
    error_free(err);
    err = NULL;
    hcs_error_from_hresult(&err, 0x80123456u, "{broken", "modify");
    assert_int_equal(err->code, RPC_UNKNOWN);
    assert_string_equal(err->msg, "modify: unknown error (HRESULT 0x80123456)");
    error_free(err);
    assert_int_equal(hcs_error_from_hresult(NULL, 0x80004005u, NULL, "x"), -1);
}

/* ---- UTF-8 <-> UTF-16
 * ------------------------------------------------------------------------------ */

static void test_utf16_round_trip(void **state)
{
    (void)state;
    /* ASCII JSON, a 2-byte, a 3-byte and a 4-byte (surrogate pair) character. */
    const char *utf8 = "{\"Owner\":\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"}";
    shim_error_t *err = NULL;
    wchar_t *w = hcs_utf8_to_utf16(utf8, &err);
    assert_non_null(w);
    assert_null(err);
    size_t n = wcslen(w);
    assert_int_equal(n, strlen("{\"Owner\":\"caf\"}") + 1 + 1 + 1 + 1 + 2);
    assert_int_equal(w[13], 0x00E9);
    assert_int_equal(w[15], 0x20AC);
    assert_int_equal(w[17], 0xD83D);
    assert_int_equal(w[18], 0xDE00);
    char *back = hcs_utf16_to_utf8(w, &err);
    assert_non_null(back);
    assert_string_equal(back, utf8);
    free(back);
    free(w);

    w = hcs_utf8_to_utf16("", &err);
    assert_non_null(w);
    assert_int_equal(w[0], 0);
    back = hcs_utf16_to_utf8(w, &err);
    assert_string_equal(back, "");
    free(back);
    free(w);
}

static void test_utf16_rejects_invalid(void **state)
{
    (void)state;
    shim_error_t *err = NULL;
    assert_null(hcs_utf8_to_utf16("{\"a\":\"\xff\"}", &err));
    assert_non_null(err);
    assert_int_equal(err->code, RPC_INVALID_ARGUMENT);
    assert_non_null(strstr(err->msg, "not valid UTF-8"));
    error_free(err);

    err = NULL;
    assert_null(hcs_utf8_to_utf16("\xc3", &err)); /* truncated sequence */
    assert_non_null(err);
    error_free(err);

    err = NULL;
    const wchar_t lone[] = {L'a', 0xD800, L'b', 0};
    assert_null(hcs_utf16_to_utf8(lone, &err));
    assert_non_null(err);
    assert_int_equal(err->code, RPC_DATA_LOSS);
    error_free(err);
}

/* ---- computecore.dll missing
 * --------------------------------------------------------------------- */

static void test_dll_missing(void **state)
{
    (void)state;
    struct hcs_api api;
    shim_error_t *err = NULL;
    assert_int_equal(hcs_api_load(&api, L"computecore-not-there-test.dll", &err), -1);
    assert_non_null(err);
    assert_int_equal(err->code, RPC_UNIMPLEMENTED);
    assert_memory_equal(err->msg, "computecore.dll not available", 29);
    assert_null(api.module);
    assert_null(api.CreateOperation);
    error_free(err);
}

/* A DLL that exists but is not computecore: a function is missing. */
static void test_dll_without_hcs(void **state)
{
    (void)state;
    struct hcs_api api;
    shim_error_t *err = NULL;
    assert_int_equal(hcs_api_load(&api, L"kernel32.dll", &err), -1);
    assert_non_null(err);
    assert_int_equal(err->code, RPC_UNIMPLEMENTED);
    assert_non_null(
        strstr(err->msg, "computecore.dll not available: it has no HcsCreateOperation"));
    error_free(err);
}

/* Under wine (and on hosts without the feature) the real entry point reports the missing DLL. */
static void test_create_without_hcs(void **state)
{
    (void)state;
    HMODULE real = LoadLibraryExW(L"computecore.dll", NULL, LOAD_LIBRARY_SEARCH_SYSTEM32);
    if (real != NULL) {
        FreeLibrary(real);
        skip(); /* a real HCS host: not this test's business */
    }
    uv_loop_t loop;
    uv_loop_init(&loop);
    hcs_system_t *sys = NULL;
    shim_error_t *err = NULL;
    assert_int_equal(hcs_system_create(&loop, "c1", "{}", NULL, &sys, &err), -1);
    assert_null(sys);
    assert_non_null(err);
    assert_int_equal(err->code, RPC_UNIMPLEMENTED);
    assert_memory_equal(err->msg, "computecore.dll not available", 29);
    error_free(err);
    err = NULL;
    assert_int_equal(hcs_system_open(&loop, "c1", &sys, &err), -1);
    assert_memory_equal(err->msg, "computecore.dll not available", 29);
    error_free(err);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* ---- fake computecore
 * ----------------------------------------------------------------------------- */

#define FAKE_SYSTEM ((HCS_SYSTEM)(uintptr_t)0x5157)

/* What the fake HCS saw and will answer. Shared with thread-pool threads:
 * counters are Interlocked, the rest is set before the calls. */
static struct fake {
    volatile LONG ops_created, ops_closed, cancels, system_closed, terminates;
    uint32_t call_hr;        /* the HCS call's own result (accepted or not) */
    const char *call_result; /* GetOperationResult document for a rejected call */
    uint32_t wait_hr;        /* HcsWaitForOperationResult */
    const char *wait_result; /* its document */
    bool block_wait;         /* wait on `gate` before answering */
    uv_sem_t gate;
    wchar_t *last_id, *last_doc; /* copies of what the calls got */
    DWORD open_access;
    HCS_EVENT_OPTIONS event_options;
    HCS_EVENT_CALLBACK event_cb;
    void *event_ctx;
} fake;

static wchar_t *wdup(PCWSTR s)
{
    return s ? _wcsdup(s) : NULL;
}

static HCS_OPERATION WINAPI fake_create_operation(const void *context,
                                                  HCS_OPERATION_COMPLETION callback)
{
    assert_null(context);
    assert_null(callback);
    return (HCS_OPERATION)(uintptr_t)(0x1000 + InterlockedIncrement(&fake.ops_created));
}

static void WINAPI fake_close_operation(HCS_OPERATION op)
{
    assert_non_null(op);
    InterlockedIncrement(&fake.ops_closed);
}

static HRESULT WINAPI fake_get_operation_result(HCS_OPERATION op, PWSTR *doc)
{
    (void)op;
    *doc = fake_hcs_doc(fake.call_result);
    return (HRESULT)fake.call_hr;
}

static HRESULT WINAPI fake_wait(HCS_OPERATION op, DWORD timeout_ms, PWSTR *doc)
{
    (void)op;
    assert_true(timeout_ms > 0);
    if (fake.block_wait)
        uv_sem_wait(&fake.gate);
    *doc = fake_hcs_doc(fake.wait_result);
    return (HRESULT)fake.wait_hr;
}

static HRESULT WINAPI fake_cancel(HCS_OPERATION op)
{
    (void)op;
    InterlockedIncrement(&fake.cancels);
    return 0;
}

static HRESULT WINAPI fake_create_system(PCWSTR id, PCWSTR config, HCS_OPERATION op,
                                         const SECURITY_DESCRIPTOR *sd, HCS_SYSTEM *out)
{
    assert_non_null(op);
    assert_null(sd);
    free(fake.last_id);
    free(fake.last_doc);
    fake.last_id = wdup(id);
    fake.last_doc = wdup(config);
    *out = FAKE_SYSTEM;
    return (HRESULT)fake.call_hr;
}

static HRESULT WINAPI fake_open_system(PCWSTR id, DWORD access, HCS_SYSTEM *out)
{
    free(fake.last_id);
    fake.last_id = wdup(id);
    fake.open_access = access;
    if ((fake.call_hr & 0x80000000u) == 0)
        *out = FAKE_SYSTEM;
    return (HRESULT)fake.call_hr;
}

static void WINAPI fake_close_system(HCS_SYSTEM sys)
{
    assert_ptr_equal(sys, FAKE_SYSTEM);
    InterlockedIncrement(&fake.system_closed);
}

static HRESULT WINAPI fake_system_call(HCS_SYSTEM sys, HCS_OPERATION op, PCWSTR options)
{
    assert_ptr_equal(sys, FAKE_SYSTEM);
    assert_non_null(op);
    assert_null(options);
    return (HRESULT)fake.call_hr;
}

static HRESULT WINAPI fake_terminate(HCS_SYSTEM sys, HCS_OPERATION op, PCWSTR options)
{
    InterlockedIncrement(&fake.terminates);
    return fake_system_call(sys, op, options);
}

static HRESULT WINAPI fake_modify(HCS_SYSTEM sys, HCS_OPERATION op, PCWSTR config, HANDLE identity)
{
    assert_ptr_equal(sys, FAKE_SYSTEM);
    assert_non_null(op);
    assert_null(identity);
    free(fake.last_doc);
    fake.last_doc = wdup(config);
    return (HRESULT)fake.call_hr;
}

static HRESULT WINAPI fake_set_callback(HCS_SYSTEM sys, HCS_EVENT_OPTIONS options,
                                        const void *context, HCS_EVENT_CALLBACK cb)
{
    assert_ptr_equal(sys, FAKE_SYSTEM);
    fake.event_options = options;
    fake.event_ctx = (void *)context;
    fake.event_cb = cb;
    return 0;
}

static const struct hcs_api fake_api = {
    .module = NULL,
    .CreateOperation = fake_create_operation,
    .CloseOperation = fake_close_operation,
    .GetOperationResult = fake_get_operation_result,
    .WaitForOperationResult = fake_wait,
    .CancelOperation = fake_cancel,
    .CreateComputeSystem = fake_create_system,
    .OpenComputeSystem = fake_open_system,
    .CloseComputeSystem = fake_close_system,
    .StartComputeSystem = fake_system_call,
    .ShutDownComputeSystem = fake_system_call,
    .TerminateComputeSystem = fake_terminate,
    .ModifyComputeSystem = fake_modify,
    .GetComputeSystemProperties = fake_system_call,
    .SetComputeSystemCallback = fake_set_callback,
};

struct fixture {
    uv_loop_t loop;
    uv_thread_t loop_thread;
    hcs_system_t *sys;
    /* done callback */
    int done_calls;
    bool done_on_loop;
    int done_code; /* RPC_OK for success */
    char done_msg[256];
    /* exit callback */
    int exit_calls;
    bool exit_on_loop;
    struct hcs_exit_status exit;
    char exit_reason[32];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (f == NULL || uv_loop_init(&f->loop) != 0)
        return -1;
    f->loop_thread = uv_thread_self();
    free(fake.last_id);
    free(fake.last_doc);
    memset(&fake, 0, sizeof(fake));
    if (uv_sem_init(&fake.gate, 0) != 0)
        return -1;
    *state = f;
    return 0;
}

static void run_until(struct fixture *f, const int *counter, int want)
{
    uint64_t deadline = uv_now(&f->loop) + WAIT_MS;
    while (*counter < want && uv_now(&f->loop) < deadline) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        uv_sleep(1);
        uv_update_time(&f->loop);
    }
    assert_int_equal(*counter, want);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    if (f->sys != NULL)
        hcs_system_close(f->sys);
    /* A blocked fake wait must finish so its work request can complete. */
    if (fake.block_wait)
        uv_sem_post(&fake.gate);
    uint64_t deadline = uv_now(&f->loop) + WAIT_MS;
    while (uv_run(&f->loop, UV_RUN_NOWAIT) != 0 && uv_now(&f->loop) < deadline) {
        uv_sleep(1);
        uv_update_time(&f->loop);
    }
    int rc = uv_loop_close(&f->loop);
    /* Every operation handle the backend made was closed exactly once. */
    bool ops_balanced = fake.ops_created == fake.ops_closed;
    uv_sem_destroy(&fake.gate);
    free(fake.last_id);
    free(fake.last_doc);
    fake.last_id = fake.last_doc = NULL;
    free(f);
    if (!ops_balanced)
        fprintf(stderr, "operations: %ld created, %ld closed\n", (long)fake.ops_created,
                (long)fake.ops_closed);
    return rc == 0 && ops_balanced ? 0 : -1;
}

static void on_done(hcs_system_t *sys, const shim_error_t *err, void *opaque)
{
    struct fixture *f = opaque;
    assert_ptr_equal(sys, f->sys);
    uv_thread_t self = uv_thread_self();
    f->done_on_loop = uv_thread_equal(&self, &f->loop_thread) != 0;
    f->done_code = err ? err->code : RPC_OK;
    snprintf(f->done_msg, sizeof(f->done_msg), "%s", err ? err->msg : "");
    f->done_calls++;
}

static void on_exit_cb(hcs_system_t *sys, const struct hcs_exit_status *st, void *opaque)
{
    struct fixture *f = opaque;
    assert_ptr_equal(sys, f->sys);
    uv_thread_t self = uv_thread_self();
    f->exit_on_loop = uv_thread_equal(&self, &f->loop_thread) != 0;
    f->exit = *st;
    snprintf(f->exit_reason, sizeof(f->exit_reason), "%s", st->reason ? st->reason : "");
    f->exit.reason = f->exit_reason;
    f->exit_calls++;
}

static void create_ok(struct fixture *f)
{
    shim_error_t *err = NULL;
    assert_int_equal(hcs_system_create_with_api(&f->loop, &fake_api, "c1", "{\"SchemaVersion\":{}}",
                                                &f->sys, &err),
                     0);
    assert_null(err);
    hcs_system_set_exit_callback(f->sys, on_exit_cb, f);
}

static void test_create_converts_and_registers(void **state)
{
    struct fixture *f = *state;
    shim_error_t *err = NULL;
    const char *doc = "{\"Owner\":\"caf\xc3\xa9\"}";
    assert_int_equal(
        hcs_system_create_with_api(&f->loop, &fake_api, "c\xc3\xa9", doc, &f->sys, &err), 0);
    assert_int_equal(wcscmp(fake.last_id, L"c\x00e9"), 0);
    assert_int_equal(wcscmp(fake.last_doc, L"{\"Owner\":\"caf\x00e9\"}"), 0);
    assert_int_equal(fake.event_options, HcsEventOptionNone);
    assert_ptr_equal(fake.event_ctx, f->sys);
    assert_non_null(fake.event_cb);
    assert_string_equal(hcs_system_id(f->sys), "c\xc3\xa9");
    assert_int_equal(hcs_system_state(f->sys), HCS_STATE_CREATED);
    assert_null(hcs_system_port_dir(f->sys));
    assert_null(hcs_system_port_path(f->sys, "gcs"));
    assert_null(hcs_system_log_path(f->sys));
    assert_int_equal(fake.ops_created, 1);
    assert_int_equal(fake.ops_closed, 1);
}

static void test_create_rejected(void **state)
{
    struct fixture *f = *state;
    fake.call_hr = 0x8037010Du;
    fake.call_result = "{\"Error\":-2143878899,\"ErrorMessage\":\"bad field VirtualMachine.Foo\"}";
    shim_error_t *err = NULL;
    assert_int_equal(hcs_system_create_with_api(&f->loop, &fake_api, "c1", "{}", &f->sys, &err),
                     -1);
    assert_null(f->sys);
    assert_int_equal(err->code, RPC_INVALID_ARGUMENT);
    assert_string_equal(err->msg, "create compute system \"c1\": bad field VirtualMachine.Foo "
                                  "(HCS_E_INVALID_JSON 0x8037010D)");
    error_free(err);
    /* HCS handed out a handle anyway: it is closed. */
    assert_int_equal(fake.system_closed, 1);
}

static void test_create_fails_in_wait(void **state)
{
    struct fixture *f = *state;
    fake.wait_hr = 0x8037010Fu;
    shim_error_t *err = NULL;
    assert_int_equal(hcs_system_create_with_api(&f->loop, &fake_api, "c1", "{}", &f->sys, &err),
                     -1);
    assert_int_equal(err->code, RPC_ALREADY_EXISTS);
    assert_non_null(strstr(err->msg, "HCS_E_SYSTEM_ALREADY_EXISTS"));
    error_free(err);
    assert_int_equal(fake.system_closed, 1);

    /* Invalid UTF-8 never reaches HCS. */
    err = NULL;
    assert_int_equal(
        hcs_system_create_with_api(&f->loop, &fake_api, "c1", "{\"x\":\"\xfe\"}", &f->sys, &err),
        -1);
    assert_int_equal(err->code, RPC_INVALID_ARGUMENT);
    error_free(err);
}

static void test_start_completes_on_loop(void **state)
{
    struct fixture *f = *state;
    create_ok(f);
    fake.block_wait = true;
    shim_error_t *err = NULL;
    assert_int_equal(hcs_system_start(f->sys, on_done, f, &err), 0);
    assert_int_equal(hcs_system_state(f->sys), HCS_STATE_STARTING);
    /* The HCS wait is blocked: nothing may be reported yet. */
    for (int i = 0; i < 20; i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        uv_sleep(1);
    }
    assert_int_equal(f->done_calls, 0);
    /* A second start while starting is refused synchronously. */
    assert_int_equal(hcs_system_start(f->sys, on_done, f, &err), -1);
    assert_int_equal(err->code, RPC_FAILED_PRECONDITION);
    error_free(err);
    uv_sem_post(&fake.gate);
    run_until(f, &f->done_calls, 1);
    assert_true(f->done_on_loop);
    assert_int_equal(f->done_code, RPC_OK);
    assert_int_equal(hcs_system_state(f->sys), HCS_STATE_RUNNING);
    fake.block_wait = false;
}

static void test_start_fails_async(void **state)
{
    struct fixture *f = *state;
    create_ok(f);
    fake.wait_hr = 0x8037011Bu;
    fake.wait_result = "{\"Error\":-2143878885,\"ErrorMessage\":\"Access is denied.\","
                       "\"ErrorEvents\":[{\"Message\":\"vm worker\"}]}";
    shim_error_t *err = NULL;
    assert_int_equal(hcs_system_start(f->sys, on_done, f, &err), 0);
    run_until(f, &f->done_calls, 1);
    assert_int_equal(f->done_code, RPC_PERMISSION_DENIED);
    assert_string_equal(f->done_msg, "start compute system \"c1\": Access is denied.; vm worker "
                                     "(HCS_E_ACCESS_DENIED 0x8037011B)");
    assert_int_equal(hcs_system_state(f->sys), HCS_STATE_CREATED);
}

static void test_start_timeout_cancels(void **state)
{
    struct fixture *f = *state;
    create_ok(f);
    fake.wait_hr = 0x80370118u;
    shim_error_t *err = NULL;
    assert_int_equal(hcs_system_start(f->sys, on_done, f, &err), 0);
    run_until(f, &f->done_calls, 1);
    assert_int_equal(f->done_code, RPC_DEADLINE_EXCEEDED);
    assert_int_equal(fake.cancels, 1);
}

static void test_start_rejected_sync(void **state)
{
    struct fixture *f = *state;
    create_ok(f);
    fake.call_hr = 0x80370105u;
    shim_error_t *err = NULL;
    assert_int_equal(hcs_system_start(f->sys, on_done, f, &err), -1);
    assert_int_equal(err->code, RPC_FAILED_PRECONDITION);
    assert_non_null(strstr(err->msg, "HCS_E_INVALID_STATE"));
    error_free(err);
    assert_int_equal(hcs_system_state(f->sys), HCS_STATE_CREATED);
    assert_int_equal(f->done_calls, 0);
}

static void test_modify_passes_utf16(void **state)
{
    struct fixture *f = *state;
    create_ok(f);
    const char *req = "{\"ResourcePath\":\"VirtualMachine/Devices/Scsi/0/Attachments/1\","
                      "\"RequestType\":\"Add\"}";
    shim_error_t *err = NULL;
    assert_int_equal(hcs_system_modify(f->sys, req, on_done, f, &err), 0);
    char *got = hcs_utf16_to_utf8(fake.last_doc, NULL);
    assert_string_equal(got, req);
    free(got);
    run_until(f, &f->done_calls, 1);
    assert_int_equal(f->done_code, RPC_OK);
}

static void test_stop_requests(void **state)
{
    struct fixture *f = *state;
    create_ok(f);
    shim_error_t *err = NULL;
    /* Already stopped / gone counts as done for terminate and shutdown. */
    fake.call_hr = 0x80370110u;
    assert_int_equal(hcs_system_terminate(f->sys, on_done, f, &err), 0);
    run_until(f, &f->done_calls, 1);
    assert_int_equal(f->done_code, RPC_OK);
    fake.call_hr = 0x80070490u;
    assert_int_equal(hcs_system_shutdown(f->sys, on_done, f, &err), 0);
    run_until(f, &f->done_calls, 2);
    assert_int_equal(f->done_code, RPC_OK);
    /* Anything else is refused synchronously. */
    fake.call_hr = 0x8037011Bu;
    assert_int_equal(hcs_system_shutdown(f->sys, on_done, f, &err), -1);
    assert_int_equal(err->code, RPC_PERMISSION_DENIED);
    error_free(err);
    /* Submit and forget: no wait on the operation. */
    fake.call_hr = 0;
    fake.block_wait = true;
    assert_int_equal(hcs_system_terminate(f->sys, on_done, f, &err), 0);
    run_until(f, &f->done_calls, 3);
    fake.block_wait = false;
}

static void raise_event(HCS_EVENT_TYPE type, const char *data)
{
    fake_hcs_raise_event(fake.event_cb, fake.event_ctx, type, data);
}

static void test_exit_event_marshalled(void **state)
{
    struct fixture *f = *state;
    create_ok(f);
    shim_error_t *err = NULL;
    assert_int_equal(hcs_system_start(f->sys, on_done, f, &err), 0);
    run_until(f, &f->done_calls, 1);
    /* Not an exit: logged and ignored. */
    raise_event(HcsEventSystemCrashInitiated, "{}");
    raise_event(HcsEventSystemExited, "{\"Status\":0,\"ExitType\":\"Shutdown\"}");
    run_until(f, &f->exit_calls, 1);
    assert_true(f->exit_on_loop);
    assert_int_equal(f->exit.type, HCS_EXIT_SHUTDOWN);
    assert_int_equal(f->exit.status, 0);
    assert_string_equal(f->exit.reason, "Shutdown");
    assert_int_equal(hcs_system_state(f->sys), HCS_STATE_STOPPED);
    /* Exactly once. */
    raise_event(HcsEventSystemExited, "{\"Status\":0,\"ExitType\":\"Terminate\"}");
    for (int i = 0; i < 20; i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        uv_sleep(1);
    }
    assert_int_equal(f->exit_calls, 1);
}

static void test_exit_unexpected_and_disconnect(void **state)
{
    struct fixture *f = *state;
    create_ok(f);
    raise_event(HcsEventSystemExited,
                "{\"Status\":-2143878906,\"ExitType\":\"UnexpectedExit\",\"Attribution\":[]}");
    run_until(f, &f->exit_calls, 1);
    assert_int_equal(f->exit.type, HCS_EXIT_UNEXPECTED);
    assert_int_equal((uint32_t)f->exit.status, 0x80370106u);
    hcs_system_close(f->sys);
    f->sys = NULL;

    /* A fresh system: the service going away is an unexpected exit. */
    f->exit_calls = 0;
    create_ok(f);
    raise_event(HcsEventServiceDisconnect, NULL);
    run_until(f, &f->exit_calls, 1);
    assert_int_equal(f->exit.type, HCS_EXIT_UNEXPECTED);
    assert_int_equal((uint32_t)f->exit.status, 0x8037011Eu);
    assert_string_equal(f->exit.reason, "ServiceDisconnect");

    /* Broken event data is still an (unexpected) exit, never a crash. */
    hcs_system_close(f->sys);
    f->sys = NULL;
    f->exit_calls = 0;
    create_ok(f);
    raise_event(HcsEventSystemExited, "{not json");
    run_until(f, &f->exit_calls, 1);
    assert_int_equal(f->exit.type, HCS_EXIT_UNEXPECTED);
    assert_int_equal((uint32_t)f->exit.status, 0x80004005u);
}

static void test_properties(void **state)
{
    struct fixture *f = *state;
    create_ok(f);
    fake.wait_result = "{\"Id\":\"c1\",\"SystemType\":\"VirtualMachine\",\"State\":\"Running\","
                       "\"RuntimeId\":\"2b3c4d5e-0000-4000-8000-000000000001\"}";
    json_t *props = NULL;
    shim_error_t *err = NULL;
    assert_int_equal(hcs_system_properties(f->sys, &props, &err), 0);
    assert_string_equal(json_string_value(json_object_get(props, "State")), "Running");
    assert_string_equal(json_string_value(json_object_get(props, "Backend")), "hcs");
    assert_string_equal(json_string_value(json_object_get(props, "RuntimeId")),
                        "2b3c4d5e-0000-4000-8000-000000000001");
    json_decref(props);

    fake.wait_result = "[1,2]";
    assert_int_equal(hcs_system_properties(f->sys, &props, &err), -1);
    assert_int_equal(err->code, RPC_DATA_LOSS);
    error_free(err);
    err = NULL;
    fake.wait_hr = 0x80070006u;
    fake.wait_result = NULL;
    assert_int_equal(hcs_system_properties(f->sys, &props, &err), -1);
    assert_int_equal(err->code, RPC_FAILED_PRECONDITION);
    error_free(err);
}

static void test_close_while_starting(void **state)
{
    struct fixture *f = *state;
    create_ok(f);
    fake.block_wait = true;
    shim_error_t *err = NULL;
    assert_int_equal(hcs_system_start(f->sys, on_done, f, &err), 0);
    hcs_system_close(f->sys);
    f->sys = NULL;
    /* A running system is terminated and its handle closed right away. */
    assert_int_equal(fake.terminates, 1);
    assert_int_equal(fake.system_closed, 1);
    /* Events after close are dropped (HCS would not send them). */
    uv_sem_post(&fake.gate);
    uint64_t deadline = uv_now(&f->loop) + WAIT_MS;
    while (uv_run(&f->loop, UV_RUN_NOWAIT) != 0 && uv_now(&f->loop) < deadline) {
        uv_sleep(1);
        uv_update_time(&f->loop);
    }
    assert_int_equal(f->done_calls, 0);
    assert_int_equal(f->exit_calls, 0);
    fake.block_wait = false;
}

static void close_in_done(hcs_system_t *sys, const shim_error_t *err, void *opaque)
{
    struct fixture *f = opaque;
    on_done(sys, err, opaque);
    hcs_system_close(sys);
    f->sys = NULL;
}

static void test_close_inside_callback(void **state)
{
    struct fixture *f = *state;
    create_ok(f);
    shim_error_t *err = NULL;
    assert_int_equal(hcs_system_modify(f->sys, "{}", close_in_done, f, &err), 0);
    assert_int_equal(hcs_system_modify(f->sys, "{}", close_in_done, f, &err), 0);
    run_until(f, &f->done_calls, 1);
    /* The second completion belongs to a closed system: dropped. */
    uint64_t deadline = uv_now(&f->loop) + WAIT_MS;
    while (uv_run(&f->loop, UV_RUN_NOWAIT) != 0 && uv_now(&f->loop) < deadline) {
        uv_sleep(1);
        uv_update_time(&f->loop);
    }
    assert_int_equal(f->done_calls, 1);
}

static void test_open(void **state)
{
    struct fixture *f = *state;
    shim_error_t *err = NULL;
    assert_int_equal(hcs_system_open_with_api(&f->loop, &fake_api, "c1", &f->sys, &err), 0);
    assert_int_equal(fake.open_access, GENERIC_ALL);
    assert_int_equal(wcscmp(fake.last_id, L"c1"), 0);
    assert_int_equal(hcs_system_state(f->sys), HCS_STATE_RUNNING);
    assert_non_null(fake.event_cb);
    hcs_system_close(f->sys);
    f->sys = NULL;

    fake.call_hr = 0x8037010Eu;
    assert_int_equal(hcs_system_open_with_api(&f->loop, &fake_api, "gone", &f->sys, &err), -1);
    assert_null(f->sys);
    assert_int_equal(err->code, RPC_NOT_FOUND);
    assert_string_equal(err->msg, "open compute system \"gone\": compute system not found "
                                  "(HCS_E_SYSTEM_NOT_FOUND 0x8037010E)");
    error_free(err);
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hresult_table),
        cmocka_unit_test(test_hresult_classifiers),
        cmocka_unit_test(test_hresult_error_message),
        cmocka_unit_test(test_utf16_round_trip),
        cmocka_unit_test(test_utf16_rejects_invalid),
        cmocka_unit_test(test_dll_missing),
        cmocka_unit_test(test_dll_without_hcs),
        cmocka_unit_test(test_create_without_hcs),
        cmocka_unit_test_setup_teardown(test_create_converts_and_registers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_fails_in_wait, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_completes_on_loop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_fails_async, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_timeout_cancels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_rejected_sync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_modify_passes_utf16, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exit_event_marshalled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exit_unexpected_and_disconnect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_properties, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_while_starting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_inside_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#else /* !_WIN32 */

static void test_windows_only(void **state)
{
    (void)state;
    skip(); /* hcs/win/ is built and tested by `make test-windows` */
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_windows_only)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#endif
