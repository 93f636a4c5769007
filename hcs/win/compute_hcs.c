#include "hcs/win/compute_hcs.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "hcs/win/hresult.h"
#include "hcs/win/utf16.h"

/* One HCS event, copied off the HCS thread. */
struct hcs_event_item {
    struct hcs_event_item *next;
    uint32_t type;
    char *data; /* UTF-8 EventData or NULL */
};

struct hcs_system {
    uv_loop_t *loop;
    struct hcs_api api;
    HCS_SYSTEM handle;
    char *id;
    wchar_t *wid;
    enum hcs_state state;
    hcs_exit_cb exit_cb;
    void *exit_opaque;
    bool exit_reported;
    bool closing;
    bool async_closed;
    unsigned pending_ops; /* uv_queue_work requests in flight */
    /* Shared with the HCS event callback thread. */
    uv_mutex_t lock;
    bool events_closed; /* no more queueing; the async may be closing */
    struct hcs_event_item *events, *events_tail;
    uv_async_t async;
};

enum op_kind { OP_START, OP_MODIFY, OP_FORGET };

struct hcs_op {
    uv_work_t work;
    hcs_system_t *sys;
    HCS_OPERATION handle;
    enum op_kind kind;
    const char *what;
    uint32_t hr;
    char *result; /* UTF-8 result document */
    hcs_done_cb cb;
    void *opaque;
};

static bool failed(uint32_t hr)
{
    return (hr & 0x80000000u) != 0;
}

/* Takes and frees an HCS-allocated result string (LocalFree per the docs). */
static char *take_result(PWSTR w)
{
    if (w == NULL)
        return NULL;
    char *s = hcs_utf16_to_utf8(w, NULL);
    LocalFree(w);
    return s;
}

/* Waits for an accepted operation; cancels it on timeout. */
static uint32_t wait_operation(const struct hcs_api *api, HCS_OPERATION op, DWORD timeout_ms,
                               char **result)
{
    PWSTR doc = NULL;
    uint32_t hr = (uint32_t)api->WaitForOperationResult(op, timeout_ms, &doc);
    if (hr == HCS_HR_E_OPERATION_TIMEOUT)
        api->CancelOperation(op);
    *result = take_result(doc);
    return hr;
}

/* The result of a call that was not accepted. */
static char *rejected_result(const struct hcs_api *api, HCS_OPERATION op)
{
    PWSTR doc = NULL;
    api->GetOperationResult(op, &doc);
    return take_result(doc);
}

/* ---- events (HCS thread -> loop) ------------------------------------------------------------ */

static void CALLBACK on_hcs_event(HCS_EVENT *event, void *context)
{
    hcs_system_t *sys = context;
    struct hcs_event_item *item = calloc(1, sizeof(*item));
    if (item == NULL)
        return; /* nothing better to do on an HCS thread */
    item->type = (uint32_t)event->Type;
    item->data = event->EventData ? hcs_utf16_to_utf8(event->EventData, NULL) : NULL;
    uv_mutex_lock(&sys->lock);
    if (sys->events_closed) {
        uv_mutex_unlock(&sys->lock);
        free(item->data);
        free(item);
        return;
    }
    if (sys->events_tail)
        sys->events_tail->next = item;
    else
        sys->events = item;
    sys->events_tail = item;
    uv_async_send(&sys->async);
    uv_mutex_unlock(&sys->lock);
}

static enum hcs_exit_type exit_type_from(const char *s)
{
    if (s != NULL && strcmp(s, "Shutdown") == 0)
        return HCS_EXIT_SHUTDOWN;
    if (s != NULL && strcmp(s, "Terminate") == 0)
        return HCS_EXIT_TERMINATE;
    return HCS_EXIT_UNEXPECTED;
}

static void report_exit(hcs_system_t *sys, uint32_t type, const char *data)
{
    json_t *doc = data ? json_loads(data, 0, NULL) : NULL;
    struct hcs_exit_status st = {.type = HCS_EXIT_UNEXPECTED, .exit_code = 0};
    if (type == HcsEventServiceDisconnect) {
        st.status = (int32_t)0x8037011Eu; /* HCS_E_SERVICE_DISCONNECT */
        st.reason = "ServiceDisconnect";
    } else {
        const char *exit_type = json_string_value(json_object_get(doc, "ExitType"));
        st.type = exit_type_from(exit_type);
        st.status = (int32_t)json_integer_value(json_object_get(doc, "Status"));
        st.reason = exit_type;
        if (st.type == HCS_EXIT_UNEXPECTED && st.status == 0)
            st.status = (int32_t)HCS_HR_E_FAIL;
    }
    sys->state = HCS_STATE_STOPPED;
    if (!sys->exit_reported && sys->exit_cb != NULL) {
        sys->exit_reported = true;
        sys->exit_cb(sys, &st, sys->exit_opaque);
    }
    json_decref(doc);
}

static void on_async(uv_async_t *async)
{
    hcs_system_t *sys = async->data;
    uv_mutex_lock(&sys->lock);
    struct hcs_event_item *list = sys->events;
    sys->events = sys->events_tail = NULL;
    uv_mutex_unlock(&sys->lock);
    while (list != NULL) {
        struct hcs_event_item *item = list;
        list = item->next;
        if (!sys->closing) {
            if (item->type == HcsEventSystemExited || item->type == HcsEventServiceDisconnect)
                report_exit(sys, item->type, item->data);
            else
                log_debug("hcs %s: event 0x%08X %s", sys->id, (unsigned)item->type,
                          item->data ? item->data : "");
        }
        free(item->data);
        free(item);
    }
}

/* ---- lifetime ---------------------------------------------------------------------------------
 */

static void system_free(hcs_system_t *sys)
{
    struct hcs_event_item *item = sys->events;
    while (item != NULL) {
        struct hcs_event_item *next = item->next;
        free(item->data);
        free(item);
        item = next;
    }
    uv_mutex_destroy(&sys->lock);
    hcs_api_unload(&sys->api);
    free(sys->id);
    free(sys->wid);
    free(sys);
}

static void maybe_free(hcs_system_t *sys)
{
    if (sys->closing && sys->async_closed && sys->pending_ops == 0)
        system_free(sys);
}

static void on_async_closed(uv_handle_t *h)
{
    hcs_system_t *sys = h->data;
    sys->async_closed = true;
    maybe_free(sys);
}

/* Allocates the system around an HCS handle and registers for events. */
static int system_new(uv_loop_t *loop, const struct hcs_api *api, const char *id, wchar_t *wid,
                      HCS_SYSTEM handle, enum hcs_state state, hcs_system_t **out,
                      shim_error_t **err)
{
    hcs_system_t *sys = calloc(1, sizeof(*sys));
    char *id_copy = strdup(id);
    if (sys == NULL || id_copy == NULL || uv_mutex_init(&sys->lock) != 0) {
        free(sys);
        free(id_copy);
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    }
    sys->loop = loop;
    sys->api = *api;
    sys->handle = handle;
    sys->id = id_copy;
    sys->wid = wid;
    sys->state = state;
    uv_async_init(loop, &sys->async, on_async);
    sys->async.data = sys;
    uint32_t hr =
        (uint32_t)api->SetComputeSystemCallback(handle, HcsEventOptionNone, sys, on_hcs_event);
    if (failed(hr)) {
        hcs_error_from_hresult(err, hr, NULL, "register for events of compute system \"%s\"", id);
        sys->wid = NULL;        /* the caller frees wid on failure */
        sys->api.module = NULL; /* and the loaded DLL */
        sys->handle = NULL;
        sys->closing = true;
        sys->events_closed = true;
        uv_close((uv_handle_t *)&sys->async, on_async_closed);
        return -1;
    }
    *out = sys;
    return 0;
}

/* ---- create / open ------------------------------------------------------------------------------
 */

int hcs_system_create_with_api(uv_loop_t *loop, const struct hcs_api *api, const char *id,
                               const char *document, hcs_system_t **out, shim_error_t **err)
{
    wchar_t *wid = hcs_utf8_to_utf16(id, err);
    wchar_t *wdoc = wid ? hcs_utf8_to_utf16(document, err) : NULL;
    if (wdoc == NULL) {
        free(wid);
        return -1;
    }
    HCS_OPERATION op = api->CreateOperation(NULL, NULL);
    if (op == NULL) {
        free(wid);
        free(wdoc);
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "HcsCreateOperation failed");
    }
    HCS_SYSTEM handle = NULL;
    char *result = NULL;
    uint32_t hr = (uint32_t)api->CreateComputeSystem(wid, wdoc, op, NULL, &handle);
    if (failed(hr))
        result = rejected_result(api, op);
    else
        hr = wait_operation(api, op, HCS_WIN_SYNC_TIMEOUT_MS, &result);
    api->CloseOperation(op);
    free(wdoc);
    if (failed(hr)) {
        if (handle != NULL)
            api->CloseComputeSystem(handle);
        hcs_error_from_hresult(err, hr, result, "create compute system \"%s\"", id);
        free(result);
        free(wid);
        return -1;
    }
    free(result);
    if (system_new(loop, api, id, wid, handle, HCS_STATE_CREATED, out, err) < 0) {
        api->CloseComputeSystem(handle);
        free(wid);
        return -1;
    }
    return 0;
}

int hcs_system_create(uv_loop_t *loop, const char *id, const char *document,
                      const struct hcs_backend_options *options, hcs_system_t **out,
                      shim_error_t **err)
{
    (void)options; /* QEMU knobs; HCS takes everything from the document */
    struct hcs_api api;
    if (hcs_api_load(&api, NULL, err) < 0)
        return -1;
    if (hcs_system_create_with_api(loop, &api, id, document, out, err) < 0) {
        hcs_api_unload(&api);
        return -1;
    }
    return 0;
}

int hcs_system_open_with_api(uv_loop_t *loop, const struct hcs_api *api, const char *id,
                             hcs_system_t **out, shim_error_t **err)
{
    wchar_t *wid = hcs_utf8_to_utf16(id, err);
    if (wid == NULL)
        return -1;
    HCS_SYSTEM handle = NULL;
    uint32_t hr = (uint32_t)api->OpenComputeSystem(wid, GENERIC_ALL, &handle);
    if (failed(hr)) {
        free(wid);
        return hcs_error_from_hresult(err, hr, NULL, "open compute system \"%s\"", id);
    }
    if (system_new(loop, api, id, wid, handle, HCS_STATE_RUNNING, out, err) < 0) {
        api->CloseComputeSystem(handle);
        free(wid);
        return -1;
    }
    return 0;
}

int hcs_system_open(uv_loop_t *loop, const char *id, hcs_system_t **out, shim_error_t **err)
{
    struct hcs_api api;
    if (hcs_api_load(&api, NULL, err) < 0)
        return -1;
    if (hcs_system_open_with_api(loop, &api, id, out, err) < 0) {
        hcs_api_unload(&api);
        return -1;
    }
    return 0;
}

void hcs_system_set_exit_callback(hcs_system_t *sys, hcs_exit_cb cb, void *opaque)
{
    sys->exit_cb = cb;
    sys->exit_opaque = opaque;
}

/* ---- asynchronous operations -------------------------------------------------------------------
 */

static void op_work(uv_work_t *work)
{
    struct hcs_op *op = work->data;
    if (op->kind != OP_FORGET)
        op->hr = wait_operation(&op->sys->api, op->handle, HCS_WIN_OP_TIMEOUT_MS, &op->result);
    op->sys->api.CloseOperation(op->handle);
}

static void op_after_work(uv_work_t *work, int status)
{
    (void)status; /* UV_ECANCELED cannot happen: nothing calls uv_cancel */
    struct hcs_op *op = work->data;
    hcs_system_t *sys = op->sys;
    if (!sys->closing) {
        shim_error_t *e = NULL;
        if (failed(op->hr))
            hcs_error_from_hresult(&e, op->hr, op->result, "%s compute system \"%s\"", op->what,
                                   sys->id);
        if (op->kind == OP_START && sys->state == HCS_STATE_STARTING)
            sys->state = e ? HCS_STATE_CREATED : HCS_STATE_RUNNING;
        if (op->cb != NULL)
            op->cb(sys, e, op->opaque);
        error_free(e);
    }
    free(op->result);
    free(op);
    sys->pending_ops--;
    maybe_free(sys);
}

/* Makes one HCS call with a fresh operation and queues the wait for its
 * result. A rejected call fails synchronously, except that for stop requests
 * (OP_FORGET) "already stopped", "not found" and "pending" count as done. */
typedef HRESULT (*hcs_call_fn)(hcs_system_t *sys, HCS_OPERATION op, const wchar_t *arg);

static int submit(hcs_system_t *sys, enum op_kind kind, const char *what, hcs_call_fn call,
                  const wchar_t *arg, hcs_done_cb cb, void *opaque, shim_error_t **err)
{
    if (sys->closing)
        return error_set(err, RPC_FAILED_PRECONDITION, "compute system \"%s\" is closed", sys->id);
    struct hcs_op *op = calloc(1, sizeof(*op));
    if (op == NULL)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    op->handle = sys->api.CreateOperation(NULL, NULL);
    if (op->handle == NULL) {
        free(op);
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "HcsCreateOperation failed");
    }
    op->sys = sys;
    op->kind = kind;
    op->what = what;
    op->cb = cb;
    op->opaque = opaque;
    op->work.data = op;
    uint32_t hr = (uint32_t)call(sys, op->handle, arg);
    bool ignorable =
        kind == OP_FORGET && (hcs_hresult_is_already_stopped(hr) || hcs_hresult_is_not_exist(hr) ||
                              hr == HCS_HR_E_OPERATION_PENDING);
    if (failed(hr) && !ignorable) {
        char *result = rejected_result(&sys->api, op->handle);
        sys->api.CloseOperation(op->handle);
        free(op);
        hcs_error_from_hresult(err, hr, result, "%s compute system \"%s\"", what, sys->id);
        free(result);
        return -1;
    }
    int rc = uv_queue_work(sys->loop, &op->work, op_work, op_after_work);
    if (rc < 0) {
        sys->api.CloseOperation(op->handle);
        free(op);
        return error_set_uv(err, RPC_INTERNAL, rc, "uv_queue_work");
    }
    sys->pending_ops++;
    return 0;
}

static HRESULT call_start(hcs_system_t *sys, HCS_OPERATION op, const wchar_t *arg)
{
    (void)arg;
    return sys->api.StartComputeSystem(sys->handle, op, NULL);
}

static HRESULT call_shutdown(hcs_system_t *sys, HCS_OPERATION op, const wchar_t *arg)
{
    (void)arg;
    return sys->api.ShutDownComputeSystem(sys->handle, op, NULL);
}

static HRESULT call_terminate(hcs_system_t *sys, HCS_OPERATION op, const wchar_t *arg)
{
    (void)arg;
    return sys->api.TerminateComputeSystem(sys->handle, op, NULL);
}

static HRESULT call_modify(hcs_system_t *sys, HCS_OPERATION op, const wchar_t *arg)
{
    return sys->api.ModifyComputeSystem(sys->handle, op, arg, NULL);
}

int hcs_system_start(hcs_system_t *sys, hcs_done_cb cb, void *opaque, shim_error_t **err)
{
    if (sys->state != HCS_STATE_CREATED)
        return error_set(err, RPC_FAILED_PRECONDITION, "compute system \"%s\" is %s", sys->id,
                         hcs_state_name(sys->state));
    if (submit(sys, OP_START, "start", call_start, NULL, cb, opaque, err) < 0)
        return -1;
    sys->state = HCS_STATE_STARTING;
    return 0;
}

static int request_stop(hcs_system_t *sys, const char *what, hcs_call_fn call, hcs_done_cb cb,
                        void *opaque, shim_error_t **err)
{
    if (submit(sys, OP_FORGET, what, call, NULL, cb, opaque, err) < 0)
        return -1;
    if (sys->state == HCS_STATE_RUNNING || sys->state == HCS_STATE_STARTING)
        sys->state = HCS_STATE_STOPPING;
    return 0;
}

int hcs_system_shutdown(hcs_system_t *sys, hcs_done_cb cb, void *opaque, shim_error_t **err)
{
    return request_stop(sys, "shut down", call_shutdown, cb, opaque, err);
}

int hcs_system_terminate(hcs_system_t *sys, hcs_done_cb cb, void *opaque, shim_error_t **err)
{
    return request_stop(sys, "terminate", call_terminate, cb, opaque, err);
}

int hcs_system_modify(hcs_system_t *sys, const char *request, hcs_done_cb cb, void *opaque,
                      shim_error_t **err)
{
    wchar_t *wreq = hcs_utf8_to_utf16(request, err);
    if (wreq == NULL)
        return -1;
    /* HCS copies the document during the call. */
    int rc = submit(sys, OP_MODIFY, "modify", call_modify, wreq, cb, opaque, err);
    free(wreq);
    return rc;
}

int hcs_system_properties(hcs_system_t *sys, json_t **out, shim_error_t **err)
{
    HCS_OPERATION op = sys->api.CreateOperation(NULL, NULL);
    if (op == NULL)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "HcsCreateOperation failed");
    char *result = NULL;
    uint32_t hr = (uint32_t)sys->api.GetComputeSystemProperties(sys->handle, op, NULL);
    if (failed(hr))
        result = rejected_result(&sys->api, op);
    else
        hr = wait_operation(&sys->api, op, HCS_WIN_SYNC_TIMEOUT_MS, &result);
    sys->api.CloseOperation(op);
    if (failed(hr)) {
        hcs_error_from_hresult(err, hr, result, "properties of compute system \"%s\"", sys->id);
        free(result);
        return -1;
    }
    json_error_t jerr;
    json_t *props = result ? json_loads(result, 0, &jerr) : json_object();
    free(result);
    if (!json_is_object(props)) {
        json_decref(props);
        return error_set(err, RPC_DATA_LOSS,
                         "properties of compute system \"%s\": not a JSON "
                         "object",
                         sys->id);
    }
    if (json_object_get(props, "State") == NULL)
        json_object_set_new(props, "State", json_string(hcs_state_name(sys->state)));
    if (json_object_get(props, "Id") == NULL)
        json_object_set_new(props, "Id", json_string(sys->id));
    json_object_set_new(props, "Backend", json_string("hcs"));
    *out = props;
    return 0;
}

/* Not wired to HcsPauseComputeSystem / HcsResumeComputeSystem yet (they are
 * not in struct hcs_api). */
int hcs_system_pause(hcs_system_t *sys, hcs_done_cb cb, void *opaque, shim_error_t **err)
{
    (void)cb;
    (void)opaque;
    return error_set(err, RPC_UNIMPLEMENTED, "pausing compute system \"%s\" is not supported",
                     sys->id);
}

int hcs_system_resume(hcs_system_t *sys, hcs_done_cb cb, void *opaque, shim_error_t **err)
{
    (void)cb;
    (void)opaque;
    return error_set(err, RPC_UNIMPLEMENTED, "resuming compute system \"%s\" is not supported",
                     sys->id);
}

/* No child processes on Windows: the VM belongs to HCS. */
int hcs_system_reaped(hcs_system_t *sys, int pid, int wait_status)
{
    (void)sys;
    (void)pid;
    (void)wait_status;
    return 0;
}

const char *hcs_system_id(const hcs_system_t *sys)
{
    return sys->id;
}

enum hcs_state hcs_system_state(const hcs_system_t *sys)
{
    return sys->state;
}

const char *hcs_system_port_path(const hcs_system_t *sys, const char *name)
{
    (void)sys;
    (void)name;
    return NULL;
}

const char *hcs_system_port_dir(const hcs_system_t *sys)
{
    (void)sys;
    return NULL;
}

const char *hcs_system_log_path(const hcs_system_t *sys)
{
    (void)sys;
    return NULL;
}

void hcs_system_close(hcs_system_t *sys)
{
    if (sys == NULL || sys->closing)
        return;
    sys->closing = true;
    bool live = sys->state == HCS_STATE_STARTING || sys->state == HCS_STATE_RUNNING ||
                sys->state == HCS_STATE_STOPPING;
    if (live) {
        /* Submit and forget; ShouldTerminateOnLastHandleClosed covers it too. */
        HCS_OPERATION op = sys->api.CreateOperation(NULL, NULL);
        if (op != NULL) {
            sys->api.TerminateComputeSystem(sys->handle, op, NULL);
            sys->api.CloseOperation(op);
        }
    }
    /* Unregisters the event callback: no event is raised after this returns. */
    sys->api.CloseComputeSystem(sys->handle);
    uv_mutex_lock(&sys->lock);
    sys->events_closed = true;
    uv_mutex_unlock(&sys->lock);
    uv_close((uv_handle_t *)&sys->async, on_async_closed);
}
