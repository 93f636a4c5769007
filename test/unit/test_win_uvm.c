/* uvm/ on its Windows path without Hyper-V: the real uvm.c + uvm/win/channel.c
 * (hvsock channel) + hcs/win/compute_hcs.c, with a FAKE computecore function
 * table (HCS) and a FAKE "vsock" transport injected through the channel's
 * transport factory: each port the host listens on is a named pipe, and a
 * fake guest agent (on the same loop) dials it and speaks the GCS bridge.
 * Runs under wine via `make test-windows`; on Linux it builds to a single
 * skipped case (hcs/win is Windows-only). */
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

#include "gcs/bridge_frame.h"
#include "gcs/bridge_msg.h"
#include "gcs/transport_impl.h"
#include "hcs/win/compute_hcs.h"
#include "hcs/win/utf16.h"
#include "test/support/win/fake_hcs.h"
#include "shim/host_uvm_common.h"
#include "uvm/channel.h"
#include "uvm/uvm.h"

#define WAIT_MS 20000
#define FAKE_SYSTEM ((HCS_SYSTEM)(uintptr_t)0x5157)
#define RUNTIME_ID "c0ffee00-1234-4abc-8def-0123456789ab"
#define SCSI0 "VirtualMachine/Devices/Scsi/df6d0690-79e5-55b6-a5ec-c1e2f77f580a/Attachments/"
#define MAX_OPS 4096
#define MAX_DOCS 32
#define MAX_REQS 64

enum op_kind { OPK_NONE, OPK_CREATE, OPK_START, OPK_PROPS, OPK_MODIFY, OPK_STOP };

enum guest_mode {
    GUEST_OK,     /* connects at start and answers */
    GUEST_ABSENT, /* never connects */
    GUEST_SILENT, /* connects, never answers */
};

/* ---- fake computecore --------------------------------------------------------------------------
 */

static struct fake {
    volatile LONG ops_created, ops_closed, system_closed, terminates, starts;
    enum op_kind kinds[MAX_OPS];
    uint32_t start_hr, modify_hr;
    bool block_start; /* start's wait blocks on `gate` */
    uv_sem_t gate;
    HCS_EVENT_CALLBACK event_cb;
    void *event_ctx;
    char *docs[MAX_DOCS]; /* modify requests, UTF-8 */
    int n_docs;
    bool listening_at_start[3]; /* bridge, entropy, log listeners existed at HcsStart */
} fake;

static struct test_env *T;
static void guest_connect(void);
static bool port_listening(uint32_t port);

static size_t op_index(HCS_OPERATION op)
{
    return ((uintptr_t)op - 0x1000u) % MAX_OPS;
}

static HCS_OPERATION WINAPI fake_create_operation(const void *context,
                                                  HCS_OPERATION_COMPLETION callback)
{
    (void)context;
    (void)callback;
    HCS_OPERATION op = (HCS_OPERATION)(uintptr_t)(0x1000 + InterlockedIncrement(&fake.ops_created));
    fake.kinds[op_index(op)] = OPK_NONE;
    return op;
}

static void WINAPI fake_close_operation(HCS_OPERATION op)
{
    (void)op;
    InterlockedIncrement(&fake.ops_closed);
}

static HRESULT WINAPI fake_get_operation_result(HCS_OPERATION op, PWSTR *doc)
{
    (void)op;
    *doc = NULL;
    return 0;
}

static HRESULT WINAPI fake_wait(HCS_OPERATION op, DWORD timeout_ms, PWSTR *doc)
{
    (void)timeout_ms;
    *doc = NULL;
    switch (fake.kinds[op_index(op)]) {
    case OPK_PROPS:
        *doc = fake_hcs_doc("{\"Id\":\"p1@vm\",\"SystemType\":\"VirtualMachine\",\"RuntimeOsType\":"
                            "\"Linux\",\"RuntimeId\":\"" RUNTIME_ID "\"}");
        return 0;
    case OPK_START:
        if (fake.block_start)
            uv_sem_wait(&fake.gate);
        return (HRESULT)fake.start_hr;
    case OPK_MODIFY:
        return (HRESULT)fake.modify_hr;
    default:
        return 0;
    }
}

static HRESULT WINAPI fake_cancel(HCS_OPERATION op)
{
    (void)op;
    return 0;
}

static HRESULT WINAPI fake_create_system(PCWSTR id, PCWSTR config, HCS_OPERATION op,
                                         const SECURITY_DESCRIPTOR *sd, HCS_SYSTEM *out)
{
    (void)id;
    (void)config;
    (void)sd;
    fake.kinds[op_index(op)] = OPK_CREATE;
    *out = FAKE_SYSTEM;
    return 0;
}

static HRESULT WINAPI fake_open_system(PCWSTR id, DWORD access, HCS_SYSTEM *out)
{
    (void)id;
    (void)access;
    (void)out;
    return (HRESULT)0x8037010Eu;
}

static void WINAPI fake_close_system(HCS_SYSTEM sys)
{
    assert_ptr_equal(sys, FAKE_SYSTEM);
    InterlockedIncrement(&fake.system_closed);
}

/* Called on the loop thread (the backend makes HCS calls there). */
static HRESULT WINAPI fake_start(HCS_SYSTEM sys, HCS_OPERATION op, PCWSTR options)
{
    (void)sys;
    (void)options;
    fake.kinds[op_index(op)] = OPK_START;
    InterlockedIncrement(&fake.starts);
    fake.listening_at_start[0] = port_listening(GCS_BRIDGE_PORT);
    fake.listening_at_start[1] = port_listening(1);
    fake.listening_at_start[2] = port_listening(109);
    guest_connect(); /* the guest boots and dials the host */
    return 0;
}

static HRESULT WINAPI fake_shutdown(HCS_SYSTEM sys, HCS_OPERATION op, PCWSTR options)
{
    (void)sys;
    (void)options;
    fake.kinds[op_index(op)] = OPK_STOP;
    return 0;
}

static void raise_event(HCS_EVENT_TYPE type, const char *data)
{
    assert_non_null(fake.event_cb);
    fake_hcs_raise_event(fake.event_cb, fake.event_ctx, type, data);
}

static HRESULT WINAPI fake_terminate(HCS_SYSTEM sys, HCS_OPERATION op, PCWSTR options)
{
    (void)sys;
    (void)options;
    fake.kinds[op_index(op)] = OPK_STOP;
    InterlockedIncrement(&fake.terminates);
    raise_event(HcsEventSystemExited, "{\"Status\":0,\"ExitType\":\"Terminate\"}");
    return 0;
}

static HRESULT WINAPI fake_modify(HCS_SYSTEM sys, HCS_OPERATION op, PCWSTR config, HANDLE identity)
{
    (void)sys;
    (void)identity;
    fake.kinds[op_index(op)] = OPK_MODIFY;
    assert_true(fake.n_docs < MAX_DOCS);
    fake.docs[fake.n_docs++] = hcs_utf16_to_utf8(config, NULL);
    return 0;
}

static HRESULT WINAPI fake_properties(HCS_SYSTEM sys, HCS_OPERATION op, PCWSTR query)
{
    (void)sys;
    (void)query;
    fake.kinds[op_index(op)] = OPK_PROPS;
    return 0;
}

static HRESULT WINAPI fake_set_callback(HCS_SYSTEM sys, HCS_EVENT_OPTIONS options,
                                        const void *context, HCS_EVENT_CALLBACK cb)
{
    (void)sys;
    (void)options;
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
    .StartComputeSystem = fake_start,
    .ShutDownComputeSystem = fake_shutdown,
    .TerminateComputeSystem = fake_terminate,
    .ModifyComputeSystem = fake_modify,
    .GetComputeSystemProperties = fake_properties,
    .SetComputeSystemCallback = fake_set_callback,
};

/* ---- fake "vsock" transport: one named pipe per port -------------------------------------------
 */

struct fake_listener {
    struct gcs_listener base;
    uv_pipe_t server;
    struct fake_listener *next;
};

struct fake_transport {
    struct gcs_transport base;
};

struct test_env {
    uv_loop_t loop;
    struct fake_listener *listeners;
    int factory_calls;
    char factory_runtime_id[64];
    int transports_destroyed;
    unsigned pipe_seq;
    /* guest */
    enum guest_mode mode;
    uv_pipe_t *bridge;
    uv_connect_t bridge_req;
    struct gcs_frame_decoder dec;
    struct gcs_message reqs[MAX_REQS];
    int n_reqs;
    bool fail_mounts; /* MappedVirtualDisk Add fails */
    bool guest_eof;
    uv_pipe_t *entropy;
    uv_connect_t entropy_req;
    size_t entropy_bytes;
    int entropy_eof;
    /* uvm */
    struct uvm *u;
    int started, start_code;
    char start_msg[512];
    int lost, lost_code;
    char lost_msg[512];
    int disk_cbs, disk_code;
    char disk_path[128];
    int removed, remove_code;
    int terminated;
};

static void pipe_name(uint32_t port, char *buf, size_t n)
{
    snprintf(buf, n, "\\\\.\\pipe\\uvm-test-%lu-%u-%u", (unsigned long)GetCurrentProcessId(),
             T->pipe_seq, port);
}

static bool port_listening(uint32_t port)
{
    for (struct fake_listener *l = T->listeners; l; l = l->next)
        if (l->base.port == port)
            return true;
    return false;
}

static void listener_freed(uv_handle_t *h)
{
    free(h->data);
}

static void fake_listener_close(struct gcs_listener *base)
{
    struct fake_listener *l = (struct fake_listener *)base;
    for (struct fake_listener **pp = &T->listeners; *pp; pp = &(*pp)->next) {
        if (*pp == l) {
            *pp = l->next;
            break;
        }
    }
    uv_close((uv_handle_t *)&l->server, listener_freed);
}

static void on_fake_connection(uv_stream_t *server, int status)
{
    struct fake_listener *l = server->data;
    gcs_listener_deliver_accept(&l->base, server, status);
}

static int fake_listen(struct gcs_transport *t, uint32_t port, gcs_accept_cb cb, void *opaque,
                       struct gcs_listener **out, shim_error_t **err)
{
    struct fake_listener *l = calloc(1, sizeof(*l));
    char name[128];
    pipe_name(port, name, sizeof(name));
    if (!l)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    l->base.close = fake_listener_close;
    l->base.port = port;
    l->base.cb = cb;
    l->base.opaque = opaque;
    uv_pipe_init(t->loop, &l->server, 0);
    l->server.data = l;
    int rc = uv_pipe_bind(&l->server, name);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&l->server, 8, on_fake_connection);
    if (rc < 0) {
        uv_close((uv_handle_t *)&l->server, listener_freed);
        return error_set_uv(err, RPC_UNAVAILABLE, rc, "fake listen %s", name);
    }
    l->next = T->listeners;
    T->listeners = l;
    *out = &l->base;
    return 0;
}

static int fake_connect(struct gcs_transport *t, uint32_t port, gcs_connect_cb cb, void *opaque,
                        shim_error_t **err)
{
    (void)t;
    (void)cb;
    (void)opaque;
    return error_set(err, RPC_UNIMPLEMENTED, "fake: no connect to %u", port);
}

static void fake_destroy(struct gcs_transport *t)
{
    T->transports_destroyed++;
    free(t);
}

static const struct gcs_transport_ops fake_transport_ops = {
    .name = "fake-vsock",
    .listen = fake_listen,
    .connect = fake_connect,
    .destroy = fake_destroy,
};

static int fake_factory(void *ctx, uv_loop_t *loop, const char *runtime_id,
                        struct gcs_transport **out, shim_error_t **err)
{
    assert_ptr_equal(ctx, T);
    T->factory_calls++;
    snprintf(T->factory_runtime_id, sizeof(T->factory_runtime_id), "%s", runtime_id);
    struct fake_transport *t = calloc(1, sizeof(*t));
    if (!t)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    t->base.ops = &fake_transport_ops;
    t->base.loop = loop;
    *out = &t->base;
    return 0;
}

/* ---- fake guest agent ------------------------------------------------------------------------ */

static void alloc_buf(uv_handle_t *h, size_t s, uv_buf_t *b)
{
    (void)h;
    b->base = malloc(s);
    b->len = s;
}

struct guest_write {
    uv_write_t req;
    uint8_t *buf;
};

static void guest_written(uv_write_t *req, int status)
{
    struct guest_write *w = (struct guest_write *)req;
    (void)status; /* the host may be gone */
    free(w->buf);
    free(w);
}

/* Named pipes have no uv_try_write on Windows: queue the write. */
static void guest_send(uint32_t type, uint64_t id, const char *body)
{
    struct guest_write *w = calloc(1, sizeof(*w));
    size_t len;
    assert_non_null(w);
    assert_int_equal(gcs_frame_encode_raw(type, id, body, strlen(body), &w->buf, &len, NULL), 0);
    uv_buf_t b = uv_buf_init((char *)w->buf, (unsigned)len);
    assert_int_equal(uv_write(&w->req, (uv_stream_t *)T->bridge, &b, 1, guest_written), 0);
}

static void guest_answer(const struct gcs_message *m)
{
    uint32_t resp = (m->type & ~GCS_KIND_MASK) | GCS_KIND_RESPONSE;
    if (m->type == GCS_TYPE_NEGOTIATE_PROTOCOL) {
        guest_send(resp, m->id,
                   "{\"Result\":0,\"Version\":4,\"Capabilities\":{\"RuntimeOsType\":\"Linux\"}}");
        return;
    }
    const json_t *req = json_object_get(m->body, "Request");
    const char *type = json_string_value(json_object_get(req, "ResourceType"));
    const char *rt = json_string_value(json_object_get(req, "RequestType"));
    if (T->fail_mounts && type && strcmp(type, "MappedVirtualDisk") == 0 && rt &&
        strcmp(rt, "Add") == 0) {
        guest_send(resp, m->id, "{\"Result\":-2147467259,\"ErrorMessage\":\"mount failed\"}");
        return;
    }
    guest_send(resp, m->id, "{\"Result\":0}");
}

static void guest_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    (void)s;
    if (n < 0) {
        T->guest_eof = true;
        uv_read_stop(s);
    } else if (n > 0) {
        assert_int_equal(gcs_frame_decoder_push(&T->dec, b->base, (size_t)n, NULL), 0);
        struct gcs_message m;
        while (gcs_frame_decoder_next(&T->dec, &m, NULL) == GCS_DECODE_MESSAGE) {
            assert_true(T->n_reqs < MAX_REQS);
            T->reqs[T->n_reqs++] = m;
            if (T->mode == GUEST_OK)
                guest_answer(&m);
        }
    }
    free(b->base);
}

static void on_guest_bridge(uv_connect_t *req, int status)
{
    (void)req;
    assert_int_equal(status, 0);
    assert_int_equal(uv_read_start((uv_stream_t *)T->bridge, alloc_buf, guest_read), 0);
}

static void entropy_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    (void)s;
    if (n > 0)
        T->entropy_bytes += (size_t)n;
    if (n < 0) {
        T->entropy_eof = 1;
        uv_read_stop(s);
    }
    free(b->base);
}

static void on_guest_entropy(uv_connect_t *req, int status)
{
    (void)req;
    assert_int_equal(status, 0);
    assert_int_equal(uv_read_start((uv_stream_t *)T->entropy, alloc_buf, entropy_read), 0);
}

static void guest_connect(void)
{
    if (T->mode == GUEST_ABSENT)
        return;
    char name[128];
    T->entropy = calloc(1, sizeof(uv_pipe_t));
    uv_pipe_init(&T->loop, T->entropy, 0);
    pipe_name(1, name, sizeof(name));
    uv_pipe_connect(&T->entropy_req, T->entropy, name, on_guest_entropy);
    T->bridge = calloc(1, sizeof(uv_pipe_t));
    uv_pipe_init(&T->loop, T->bridge, 0);
    pipe_name(GCS_BRIDGE_PORT, name, sizeof(name));
    uv_pipe_connect(&T->bridge_req, T->bridge, name, on_guest_bridge);
}

static void free_on_close(uv_handle_t *h)
{
    free(h);
}

static void guest_hang_up(void)
{
    if (T->bridge)
        uv_close((uv_handle_t *)T->bridge, free_on_close);
    T->bridge = NULL;
}

/* ---- fixture and helpers -----------------------------------------------------------------------
 */

static int setup(void **state)
{
    static unsigned seq;
    T = calloc(1, sizeof(*T));
    if (!T || uv_loop_init(&T->loop) != 0)
        return -1;
    T->pipe_seq = ++seq;
    gcs_frame_decoder_init(&T->dec, GCS_GUEST_MAX_MESSAGE_SIZE);
    for (int i = 0; i < fake.n_docs; i++)
        free(fake.docs[i]);
    memset(&fake, 0, sizeof(fake));
    if (uv_sem_init(&fake.gate, 0) != 0)
        return -1;
    *state = T;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (T->u)
        uvm_close(T->u);
    if (fake.block_start) {
        fake.block_start = false;
        uv_sem_post(&fake.gate);
    }
    guest_hang_up();
    if (T->entropy)
        uv_close((uv_handle_t *)T->entropy, free_on_close);
    uint64_t deadline = uv_now(&T->loop) + WAIT_MS;
    while (uv_run(&T->loop, UV_RUN_NOWAIT) != 0 && uv_now(&T->loop) < deadline) {
        uv_sleep(1);
        uv_update_time(&T->loop);
    }
    int rc = uv_loop_close(&T->loop);
    bool balanced = fake.ops_created == fake.ops_closed;
    if (rc != 0)
        fprintf(stderr, "teardown: the loop still has handles\n");
    if (!balanced)
        fprintf(stderr, "teardown: operations %ld created, %ld closed\n", (long)fake.ops_created,
                (long)fake.ops_closed);
    for (int i = 0; i < T->n_reqs; i++)
        gcs_message_clear(&T->reqs[i]);
    gcs_frame_decoder_free(&T->dec);
    uv_sem_destroy(&fake.gate);
    free(T);
    T = NULL;
    return rc == 0 && balanced ? 0 : -1;
}

static void run_until(const int *counter, int want)
{
    uint64_t deadline = uv_now(&T->loop) + WAIT_MS;
    while (*counter < want && uv_now(&T->loop) < deadline) {
        uv_run(&T->loop, UV_RUN_NOWAIT);
        uv_sleep(1);
        uv_update_time(&T->loop);
    }
    assert_int_equal(*counter, want);
}

/* Runs the loop for ms, for "nothing more happens" checks. */
static void run_for(uint64_t ms)
{
    uint64_t deadline = uv_now(&T->loop) + ms;
    while (uv_now(&T->loop) < deadline) {
        uv_run(&T->loop, UV_RUN_NOWAIT);
        uv_sleep(1);
        uv_update_time(&T->loop);
    }
}

static void on_started(void *opaque, const shim_error_t *err)
{
    assert_ptr_equal(opaque, T);
    T->start_code = err ? err->code : RPC_OK;
    snprintf(T->start_msg, sizeof(T->start_msg), "%s", err ? err->msg : "");
    T->started++;
}

static void on_lost(void *opaque, const shim_error_t *err)
{
    assert_ptr_equal(opaque, T);
    T->lost_code = err ? err->code : RPC_OK;
    snprintf(T->lost_msg, sizeof(T->lost_msg), "%s", err ? err->msg : "");
    T->lost++;
}

static void make_uvm(uint64_t boot_timeout_ms)
{
    shim_error_t *err = NULL;
    hcs_system_t *sys = NULL;
    struct uvm_channel *ch = NULL;
    assert_int_equal(hcs_system_create_with_api(&T->loop, &fake_api, "p1@vm", "{}", &sys, &err), 0);
    assert_int_equal(uvm_channel_hvsock_new(&T->loop, fake_factory, T, &ch, &err), 0);
    struct uvm_config cfg = {
        .id = "p1@vm", .boot_timeout_ms = boot_timeout_ms, .system = sys, .channel = ch};
    struct uvm_callbacks cbs = {.lost = on_lost};
    assert_int_equal(uvm_create(&T->loop, &cfg, &cbs, T, &T->u, &err), 0);
    assert_null(err);
}

static void boot(void)
{
    shim_error_t *err = NULL;
    make_uvm(0);
    assert_int_equal(uvm_start(T->u, on_started, T, &err), 0);
    /* The listeners exist as soon as start returns: HcsStart came after them. */
    assert_int_equal(fake.starts, 1);
    assert_true(fake.listening_at_start[0]);
    assert_true(fake.listening_at_start[1]);
    assert_true(fake.listening_at_start[2]);
    assert_int_equal(T->started, 0); /* never synchronous */
    run_until(&T->started, 1);
    assert_int_equal(T->start_code, RPC_OK);
}

static void on_terminated(void *opaque, const shim_error_t *err)
{
    assert_ptr_equal(opaque, T);
    assert_null(err);
    T->terminated++;
}

/* ---- tests ----------------------------------------------------------------------------------- */

static void test_boot_negotiate_ready(void **state)
{
    (void)state;
    boot();
    assert_true(uvm_running(T->u));
    assert_non_null(uvm_guest(T->u));
    assert_int_equal(uvm_vm_pid(T->u), 0);
    assert_null(uvm_log_path(T->u));
    /* The transport is for the VM's RuntimeId from the properties. */
    assert_int_equal(T->factory_calls, 1);
    assert_string_equal(T->factory_runtime_id, RUNTIME_ID);
    /* NegotiateProtocol was the first call; the bridge listener is gone. */
    assert_true(T->n_reqs >= 1);
    assert_int_equal(T->reqs[0].type, GCS_TYPE_NEGOTIATE_PROTOCOL);
    assert_false(port_listening(GCS_BRIDGE_PORT));
    /* Entropy: 512 bytes, then the host closes. */
    run_until(&T->entropy_eof, 1);
    assert_int_equal(T->entropy_bytes, 512);
    assert_false(port_listening(1));
    assert_true(port_listening(109)); /* the guest's log never came */

    shim_error_t *err = NULL;
    assert_int_equal(uvm_terminate(T->u, on_terminated, T, &err), 0);
    run_until(&T->terminated, 1);
    assert_int_equal(fake.terminates, 1);
    assert_int_equal(T->lost, 0);
    uvm_close(T->u);
    T->u = NULL;
    run_for(50);
    assert_int_equal(fake.system_closed, 1);
    assert_int_equal(T->transports_destroyed, 1);
    assert_null(T->listeners);
}

static void test_boot_timeout_silent_guest(void **state)
{
    (void)state;
    shim_error_t *err = NULL;
    T->mode = GUEST_SILENT;
    make_uvm(300);
    assert_int_equal(uvm_start(T->u, on_started, T, &err), 0);
    run_until(&T->started, 1);
    assert_int_equal(T->start_code, RPC_DEADLINE_EXCEEDED);
    assert_non_null(strstr(T->start_msg, "boot timeout of 0.3 s; VM log -"));
    assert_int_equal(T->n_reqs, 1); /* the negotiate that was never answered */
    assert_int_equal(fake.terminates, 1);
    assert_false(uvm_running(T->u));
    assert_null(uvm_guest(T->u));
    run_for(100);
    assert_int_equal(T->lost, 0);
    assert_int_equal(T->started, 1);
}

static void test_guest_never_connects(void **state)
{
    (void)state;
    shim_error_t *err = NULL;
    T->mode = GUEST_ABSENT;
    make_uvm(300);
    assert_int_equal(uvm_start(T->u, on_started, T, &err), 0);
    run_until(&T->started, 1);
    assert_int_equal(T->start_code, RPC_DEADLINE_EXCEEDED);
    assert_int_equal(fake.terminates, 1);
    /* The failure dropped the channel: nothing listens any more. */
    assert_null(T->listeners);
    assert_int_equal(T->transports_destroyed, 1);
    run_for(100);
    assert_int_equal(T->lost, 0);
}

static void test_start_rejected_by_hcs(void **state)
{
    (void)state;
    shim_error_t *err = NULL;
    fake.start_hr = 0x8037011Bu; /* access denied, reported by the wait */
    T->mode = GUEST_ABSENT;
    make_uvm(0);
    assert_int_equal(uvm_start(T->u, on_started, T, &err), 0);
    run_until(&T->started, 1);
    assert_int_equal(T->start_code, RPC_INTERNAL);
    assert_non_null(strstr(T->start_msg, "starting the utility VM"));
    assert_non_null(strstr(T->start_msg, "HCS_E_ACCESS_DENIED"));
    run_for(50);
    assert_int_equal(T->lost, 0);
}

static void test_vm_exit_lost_once(void **state)
{
    (void)state;
    boot();
    raise_event(HcsEventSystemExited,
                "{\"Status\":-2143878906,\"ExitType\":\"UnexpectedExit\",\"Attribution\":[]}");
    run_until(&T->lost, 1);
    assert_int_equal(T->lost_code, RPC_UNAVAILABLE);
    assert_non_null(strstr(T->lost_msg, "utility VM exited: UnexpectedExit"));
    assert_null(strstr(T->lost_msg, "see")); /* no VM log under HCS */
    assert_null(uvm_guest(T->u));
    /* A second exit and the bridge dying afterwards add nothing. */
    raise_event(HcsEventSystemExited, "{\"Status\":0,\"ExitType\":\"Terminate\"}");
    guest_hang_up();
    run_for(100);
    assert_int_equal(T->lost, 1);
}

static void test_bridge_lost_once(void **state)
{
    (void)state;
    boot();
    guest_hang_up();
    run_until(&T->lost, 1);
    assert_non_null(strstr(T->lost_msg, "guest agent bridge lost"));
    assert_int_equal(fake.terminates, 1); /* the VM is ended */
    run_for(100);
    assert_int_equal(T->lost, 1);
}

static void on_disk_added(void *opaque, const shim_error_t *err, const char *guest_path)
{
    assert_ptr_equal(opaque, T);
    T->disk_code = err ? err->code : RPC_OK;
    snprintf(T->disk_path, sizeof(T->disk_path), "%s", guest_path ? guest_path : "");
    T->disk_cbs++;
}

static void on_disk_removed(void *opaque, const shim_error_t *err)
{
    assert_ptr_equal(opaque, T);
    T->remove_code = err ? err->code : RPC_OK;
    T->removed++;
}

static json_t *doc(int i)
{
    assert_true(i < fake.n_docs);
    json_t *j = json_loads(fake.docs[i], 0, NULL);
    assert_non_null(j);
    return j;
}

static const char *jstr(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* The last guest ModifySettings request. */
static const json_t *last_guest_request(void)
{
    assert_true(T->n_reqs > 0);
    const struct gcs_message *m = &T->reqs[T->n_reqs - 1];
    assert_int_equal(m->type, GCS_TYPE_MODIFY_SETTINGS);
    assert_string_equal(jstr(m->body, "ContainerId"), GCS_NULL_CONTAINER_ID);
    return json_object_get(m->body, "Request");
}

static void test_disk_refcounts(void **state)
{
    (void)state;
    shim_error_t *err = NULL;
    const char *layer = "C:\\layers\\l1\\layer.vhd", *scratch = "C:\\s\\sandbox.vhdx";
    boot();
    /* First add: host attach (read-only) then the guest mount. */
    assert_int_equal(uvm_disk_add(T->u, layer, true, on_disk_added, T, &err), 0);
    run_until(&T->disk_cbs, 1);
    assert_int_equal(T->disk_code, RPC_OK);
    assert_string_equal(T->disk_path, "/run/mounts/scsi/m0");
    assert_int_equal(fake.n_docs, 1);
    json_t *d = doc(0);
    assert_string_equal(jstr(d, "ResourcePath"), SCSI0 "0");
    assert_string_equal(jstr(d, "RequestType"), "Add");
    json_t *s = json_object_get(d, "Settings");
    assert_string_equal(jstr(s, "Type"), "VirtualDisk");
    assert_string_equal(jstr(s, "Path"), layer);
    assert_true(json_is_true(json_object_get(s, "ReadOnly")));
    assert_null(json_object_get(d, "GuestRequest")); /* the guest part went over the bridge */
    json_decref(d);
    const json_t *g = last_guest_request();
    assert_string_equal(jstr(g, "ResourceType"), "MappedVirtualDisk");
    assert_string_equal(jstr(g, "RequestType"), "Add");
    const json_t *gs = json_object_get(g, "Settings");
    assert_string_equal(jstr(gs, "MountPath"), "/run/mounts/scsi/m0");
    assert_true(json_is_true(json_object_get(gs, "ReadOnly")));
    assert_string_equal(json_string_value(json_array_get(json_object_get(gs, "Options"), 0)), "ro");
    assert_null(json_object_get(gs, "Lun")); /* LUN 0 is omitted, as hcsshim does */
    int reqs_after_first = T->n_reqs;

    /* Same path again: a reference, no new request, answered later. */
    assert_int_equal(uvm_disk_add(T->u, layer, true, on_disk_added, T, &err), 0);
    assert_int_equal(T->disk_cbs, 1);
    run_until(&T->disk_cbs, 2);
    assert_string_equal(T->disk_path, "/run/mounts/scsi/m0");
    assert_int_equal(uvm_disk_refs(T->u, layer), 2);
    assert_int_equal(fake.n_docs, 1);
    assert_int_equal(T->n_reqs, reqs_after_first);

    /* The scratch: read-write, next LUN. */
    assert_int_equal(uvm_disk_add(T->u, scratch, false, on_disk_added, T, &err), 0);
    run_until(&T->disk_cbs, 3);
    assert_string_equal(T->disk_path, "/run/mounts/scsi/m1");
    d = doc(1);
    assert_string_equal(jstr(d, "ResourcePath"), SCSI0 "1");
    assert_null(json_object_get(json_object_get(d, "Settings"), "ReadOnly"));
    json_decref(d);
    gs = json_object_get(last_guest_request(), "Settings");
    assert_int_equal(json_integer_value(json_object_get(gs, "Lun")), 1);
    assert_null(json_object_get(gs, "Options"));

    /* Dropping one of two references touches nothing. */
    assert_int_equal(uvm_disk_remove(T->u, layer, on_disk_removed, T, &err), 0);
    run_until(&T->removed, 1);
    assert_int_equal(uvm_disk_refs(T->u, layer), 1);
    assert_int_equal(fake.n_docs, 2);
    int reqs_before = T->n_reqs;

    /* The last one: guest unmount, guest unplug, host detach (that order). */
    assert_int_equal(uvm_disk_remove(T->u, layer, on_disk_removed, T, &err), 0);
    run_until(&T->removed, 2);
    assert_int_equal(T->remove_code, RPC_OK);
    assert_int_equal(uvm_disk_refs(T->u, layer), 0);
    assert_int_equal(T->n_reqs, reqs_before + 2);
    const json_t *unmount = json_object_get(T->reqs[reqs_before].body, "Request");
    assert_string_equal(jstr(unmount, "ResourceType"), "MappedVirtualDisk");
    assert_string_equal(jstr(unmount, "RequestType"), "Remove");
    const json_t *unplug = json_object_get(T->reqs[reqs_before + 1].body, "Request");
    assert_string_equal(jstr(unplug, "ResourceType"), "SCSIDevice");
    assert_string_equal(jstr(unplug, "RequestType"), "Remove");
    assert_int_equal(fake.n_docs, 3);
    d = doc(2);
    assert_string_equal(jstr(d, "ResourcePath"), SCSI0 "0");
    assert_string_equal(jstr(d, "RequestType"), "Remove");
    assert_null(json_object_get(d, "Settings"));
    json_decref(d);

    /* LUN 0 is free again. */
    assert_int_equal(uvm_disk_add(T->u, "C:\\layers\\l2\\layer.vhd", true, on_disk_added, T, &err),
                     0);
    run_until(&T->disk_cbs, 4);
    d = doc(3);
    assert_string_equal(jstr(d, "ResourcePath"), SCSI0 "0");
    json_decref(d);
    assert_int_equal(uvm_disk_refs(T->u, scratch), 1);
}

static void test_disk_mount_failure_detaches(void **state)
{
    (void)state;
    shim_error_t *err = NULL;
    boot();
    T->fail_mounts = true;
    assert_int_equal(uvm_disk_add(T->u, "C:\\l\\layer.vhd", true, on_disk_added, T, &err), 0);
    run_until(&T->disk_cbs, 1);
    assert_int_not_equal(T->disk_code, RPC_OK);
    assert_int_equal(fake.n_docs, 2); /* attach, then the rollback detach */
    json_t *d = doc(1);
    assert_string_equal(jstr(d, "RequestType"), "Remove");
    assert_string_equal(jstr(d, "ResourcePath"), SCSI0 "0");
    json_decref(d);
    assert_int_equal(uvm_disk_refs(T->u, "C:\\l\\layer.vhd"), 0);
}

static void test_close_while_starting(void **state)
{
    (void)state;
    shim_error_t *err = NULL;
    fake.block_start = true; /* HcsStart accepted, its result not in yet */
    T->mode = GUEST_ABSENT;
    make_uvm(0);
    assert_int_equal(uvm_start(T->u, on_started, T, &err), 0);
    run_for(20);
    uvm_close(T->u);
    T->u = NULL;
    fake.block_start = false;
    uv_sem_post(&fake.gate);
    run_for(100);
    assert_int_equal(T->started, 0); /* no callback after close */
    assert_int_equal(T->lost, 0);
    assert_int_equal(fake.terminates, 1);
    assert_int_equal(fake.system_closed, 1);
    assert_null(T->listeners);
}

static void test_pause_unimplemented(void **state)
{
    (void)state;
    shim_error_t *err = NULL;
    boot();
    assert_int_equal(uvm_pause(T->u, on_terminated, T, &err), -1);
    assert_int_equal(err->code, RPC_UNIMPLEMENTED);
    error_free(err);
    assert_false(uvm_paused(T->u));
}

static void test_real_hvsock_unavailable(void **state)
{
    (void)state;
    /* The default factory (real hvsock): under wine AF_HYPERV does not exist,
     * so the start fails synchronously and HcsStart is never called. */
    shim_error_t *err = NULL;
    hcs_system_t *sys = NULL;
    struct uvm_channel *ch = NULL;
    assert_int_equal(hcs_system_create_with_api(&T->loop, &fake_api, "p1@vm", "{}", &sys, &err), 0);
    assert_int_equal(uvm_channel_hvsock_new(&T->loop, NULL, NULL, &ch, &err), 0);
    struct uvm_config cfg = {.id = "p1@vm", .system = sys, .channel = ch};
    assert_int_equal(uvm_create(&T->loop, &cfg, NULL, T, &T->u, &err), 0);
    int rc = uvm_start(T->u, on_started, T, &err);
    if (rc == 0) { /* a Hyper-V host: not this test's business */
        skip();
    }
    assert_non_null(err);
    assert_non_null(strstr(err->msg, "hvsock"));
    error_free(err);
    assert_int_equal(fake.starts, 0);
}

/* ---- the shim's hypervisor host (shim/win/host_uvm.c) on the same fakes ------------------------
 */

struct host_env {
    struct shim_host *host;
    int ready, ready_code;
    int configs, config_code;
    char config_msg[512];
    json_t *config;
    int released, closed;
};

static struct host_env H;

static void on_host_ready(void *arg, struct gcs_guest_connection *conn, const shim_error_t *err)
{
    assert_ptr_equal(arg, &H);
    H.ready_code = err ? err->code : RPC_OK;
    assert_true(err || conn);
    H.ready++;
}

static void on_config(void *arg, json_t *config, const shim_error_t *err)
{
    assert_ptr_equal(arg, &H);
    H.config_code = err ? err->code : RPC_OK;
    snprintf(H.config_msg, sizeof(H.config_msg), "%s", err ? err->msg : "");
    json_decref(H.config);
    H.config = config;
    H.configs++;
}

static void on_host_released(void *arg, const shim_error_t *err)
{
    assert_ptr_equal(arg, &H);
    assert_null(err);
    H.released++;
}

static void on_host_closed(void *arg)
{
    assert_ptr_equal(arg, &H);
    H.closed++;
}

static const char *const SPEC =
    "{\"ociVersion\":\"1.1.0\",\"process\":{\"args\":[\"sh\"],\"cwd\":\"/\"},"
    "\"root\":{\"path\":\"rootfs\"},\"linux\":{\"namespaces\":[{\"type\":\"pid\"}]}}";

/* A boot files directory with an (empty) kernel and initrd, named by the
 * bootfilesrootpath annotation: the document builder checks they exist. */
static char boot_dir[MAX_PATH];

static void make_boot_files(json_t *spec)
{
    char tmp[MAX_PATH];
    assert_true(GetTempPathA(sizeof(tmp), tmp) > 0);
    snprintf(boot_dir, sizeof(boot_dir), "%suvm-test-boot-%lu", tmp,
             (unsigned long)GetCurrentProcessId());
    CreateDirectoryA(boot_dir, NULL);
    static const char *const files[] = {"kernel", "initrd.img"};
    for (int i = 0; i < 2; i++) {
        char path[MAX_PATH + 32];
        snprintf(path, sizeof(path), "%s\\%s", boot_dir, files[i]);
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        fclose(f);
    }
    json_t *ann = json_object_get(spec, "annotations");
    if (!ann) {
        ann = json_object();
        json_object_set_new(spec, "annotations", ann);
    }
    json_object_set_new(ann, "io.microsoft.virtualmachine.bootfilesrootpath",
                        json_string(boot_dir));
}

static void remove_boot_files(void)
{
    static const char *const files[] = {"kernel", "initrd.img"};
    for (int i = 0; i < 2; i++) {
        char path[MAX_PATH + 32];
        snprintf(path, sizeof(path), "%s\\%s", boot_dir, files[i]);
        DeleteFileA(path);
    }
    RemoveDirectoryA(boot_dir);
}

static void host_boot(json_t *spec)
{
    shim_error_t *err = NULL;
    hcs_system_t *sys = NULL;
    struct uvm_channel *ch = NULL;
    memset(&H, 0, sizeof(H));
    make_boot_files(spec);
    assert_int_equal(hcs_system_create_with_api(&T->loop, &fake_api, "p1@vm", "{}", &sys, &err), 0);
    assert_int_equal(uvm_channel_hvsock_new(&T->loop, fake_factory, T, &ch, &err), 0);
    struct shim_host_uvm_config cfg = {.owner_id = "p1", .spec = spec};
    int rc = shim_host_uvm_new_injected(&T->loop, &cfg, NULL, &H, sys, ch, &H.host, &err);
    if (rc < 0)
        fail_msg("host: %s", err->msg);
    assert_int_equal(H.host->kind, SHIM_HOST_HYPERVISOR);
    assert_int_equal(shim_host_get(H.host, on_host_ready, &H, &err), 0);
    run_until(&H.ready, 1);
    assert_int_equal(H.ready_code, RPC_OK);
    assert_non_null(shim_host_connection(H.host));
}

static void host_close(void)
{
    shim_host_close(H.host, on_host_closed, &H);
    run_until(&H.closed, 1);
    remove_boot_files();
    H.host = NULL;
    json_decref(H.config);
    H.config = NULL;
}

/* The i-th guest request from index `from` on with this ResourceType. */
static const json_t *guest_req(int i)
{
    assert_true(i < T->n_reqs);
    return json_object_get(T->reqs[i].body, "Request");
}

static void test_host_layers_prepare_release(void **state)
{
    (void)state;
    shim_error_t *err = NULL;
    json_t *spec = json_loads(SPEC, 0, NULL);
    host_boot(spec);
    int first = T->n_reqs; /* after NegotiateProtocol */
    const char *opts[] = {"rw", "parentLayerPaths=[\"C:\\\\l\\\\top\",\"C:\\\\l\\\\base\"]"};
    struct bundle_mount m = {
        .type = "lcow-layer", .source = "C:\\s\\c1", .options = opts, .n_options = 2};
    struct shim_host_container ci = {
        .id = "c1", .bundle = "C:\\b\\c1", .spec = spec, .mounts = &m, .n_mounts = 1};
    assert_int_equal(shim_host_prepare(H.host, &ci, on_config, &H, &err), 0);
    run_until(&H.configs, 1);
    assert_int_equal(H.config_code, RPC_OK);

    /* Host: the layers read-only (top-most first), then the scratch read-write. */
    static const char *const paths[] = {"C:\\l\\top\\layer.vhd", "C:\\l\\base\\layer.vhd",
                                        "C:\\s\\c1\\sandbox.vhdx"};
    assert_int_equal(fake.n_docs, 3);
    for (int i = 0; i < 3; i++) {
        json_t *d = doc(i);
        char want[200];
        snprintf(want, sizeof(want), SCSI0 "%d", i);
        assert_string_equal(jstr(d, "ResourcePath"), want);
        assert_string_equal(jstr(d, "RequestType"), "Add");
        json_t *st = json_object_get(d, "Settings");
        assert_string_equal(jstr(st, "Path"), paths[i]);
        assert_int_equal(json_is_true(json_object_get(st, "ReadOnly")), i < 2);
        json_decref(d);
    }
    /* Guest: three mounts, then CombinedLayers over them. */
    assert_int_equal(T->n_reqs, first + 4);
    for (int i = 0; i < 3; i++)
        assert_string_equal(jstr(guest_req(first + i), "ResourceType"), "MappedVirtualDisk");
    const json_t *comb = guest_req(first + 3);
    assert_string_equal(jstr(comb, "ResourceType"), "CombinedLayers");
    assert_string_equal(jstr(comb, "RequestType"), "Add");
    const json_t *cs = json_object_get(comb, "Settings");
    assert_string_equal(jstr(cs, "ContainerID"), "c1");
    assert_string_equal(jstr(cs, "ContainerRootPath"), "/run/gcs/c/c1/rootfs");
    assert_string_equal(jstr(cs, "ScratchPath"), "/run/mounts/scsi/m2/scratch/c1");
    const json_t *layers = json_object_get(cs, "Layers");
    assert_int_equal(json_array_size(layers), 2);
    assert_string_equal(jstr(json_array_get(layers, 0), "Path"), "/run/mounts/scsi/m0");
    assert_string_equal(jstr(json_array_get(layers, 1), "Path"), "/run/mounts/scsi/m1");
    /* The ContainerConfig for Create. */
    assert_non_null(H.config);
    assert_string_equal(jstr(H.config, "OciBundlePath"), "/run/gcs/c/c1");
    assert_string_equal(jstr(H.config, "ScratchDirPath"), "/run/mounts/scsi/m2/scratch/c1");
    const json_t *oci = json_object_get(H.config, "OciSpecification");
    assert_string_equal(jstr(json_object_get(oci, "root"), "path"), "/run/gcs/c/c1/rootfs");

    /* Release: CombinedLayers Remove, then each disk in reverse order. */
    int before = T->n_reqs;
    assert_int_equal(shim_host_release(H.host, "c1", "C:\\b\\c1", on_host_released, &H, &err), 0);
    run_until(&H.released, 1);
    const json_t *uncomb = guest_req(before);
    assert_string_equal(jstr(uncomb, "ResourceType"), "CombinedLayers");
    assert_string_equal(jstr(uncomb, "RequestType"), "Remove");
    assert_string_equal(jstr(json_object_get(uncomb, "Settings"), "ContainerRootPath"),
                        "/run/gcs/c/c1/rootfs");
    assert_int_equal(T->n_reqs, before + 1 + 3 * 2); /* + unmount and unplug per disk */
    assert_int_equal(fake.n_docs, 6);
    for (int i = 0; i < 3; i++) {
        json_t *d = doc(3 + i);
        char want[200];
        snprintf(want, sizeof(want), SCSI0 "%d", 2 - i);
        assert_string_equal(jstr(d, "ResourcePath"), want);
        assert_string_equal(jstr(d, "RequestType"), "Remove");
        json_decref(d);
    }
    /* A second release of the same container is a no-op. */
    assert_int_equal(shim_host_release(H.host, "c1", "C:\\b\\c1", on_host_released, &H, &err), 0);
    assert_int_equal(H.released, 2);
    assert_int_equal(fake.n_docs, 6);
    host_close();
    assert_int_equal(fake.terminates, 1);
    json_decref(spec);
}

static void test_host_prepare_failure_undoes(void **state)
{
    (void)state;
    shim_error_t *err = NULL;
    json_t *spec = json_loads(SPEC, 0, NULL);
    /* Legacy layerFolders: [layer, scratch]. */
    json_object_set_new(spec, "windows",
                        json_pack("{s:[s,s]}", "layerFolders", "C:\\l\\one", "C:\\s\\c2"));
    host_boot(spec);
    T->fail_mounts = true; /* the guest refuses every mount */
    struct shim_host_container ci = {.id = "c2", .bundle = "C:\\b\\c2", .spec = spec};
    assert_int_equal(shim_host_prepare(H.host, &ci, on_config, &H, &err), 0);
    run_until(&H.configs, 1);
    assert_int_not_equal(H.config_code, RPC_OK);
    assert_non_null(strstr(H.config_msg, "C:\\l\\one\\layer.vhd"));
    assert_null(H.config);
    /* Attached, refused by the guest, detached again; the scratch never came. */
    assert_int_equal(fake.n_docs, 2);
    json_t *d = doc(1);
    assert_string_equal(jstr(d, "RequestType"), "Remove");
    json_decref(d);
    /* The service's release after a failed Create answers at once. */
    assert_int_equal(shim_host_release(H.host, "c2", "C:\\b\\c2", on_host_released, &H, &err), 0);
    assert_int_equal(H.released, 1);
    /* A WCOW layer mount has no place in a Linux UVM. */
    const char *opts[] = {"parentLayerPaths=[]"};
    struct bundle_mount m = {
        .type = "windows-layer", .source = "C:\\s\\c3", .options = opts, .n_options = 1};
    struct shim_host_container wc = {
        .id = "c3", .bundle = "C:\\b\\c3", .spec = spec, .mounts = &m, .n_mounts = 1};
    assert_int_equal(shim_host_prepare(H.host, &wc, on_config, &H, &err), -1);
    assert_int_equal(err->code, RPC_INVALID_ARGUMENT);
    error_free(err);
    err = NULL;
    /* Pause: not on HCS yet. */
    assert_int_equal(shim_host_pause(H.host, "c2", true, on_host_released, &H, &err), -1);
    assert_int_equal(err->code, RPC_UNIMPLEMENTED);
    error_free(err);
    host_close();
    json_decref(spec);
}

static void test_host_close_while_booting(void **state)
{
    (void)state;
    shim_error_t *err = NULL;
    hcs_system_t *sys = NULL;
    struct uvm_channel *ch = NULL;
    json_t *spec = json_loads(SPEC, 0, NULL);
    memset(&H, 0, sizeof(H));
    make_boot_files(spec);
    T->mode = GUEST_ABSENT;
    assert_int_equal(hcs_system_create_with_api(&T->loop, &fake_api, "p1@vm", "{}", &sys, &err), 0);
    assert_int_equal(uvm_channel_hvsock_new(&T->loop, fake_factory, T, &ch, &err), 0);
    struct shim_host_uvm_config cfg = {.owner_id = "p1", .spec = spec};
    assert_int_equal(shim_host_uvm_new_injected(&T->loop, &cfg, NULL, &H, sys, ch, &H.host, &err),
                     0);
    assert_int_equal(shim_host_get(H.host, on_host_ready, &H, &err), 0);
    run_for(20);
    host_close(); /* the waiter hears about it first */
    assert_int_equal(H.ready, 1);
    assert_int_equal(H.ready_code, RPC_UNAVAILABLE);
    assert_int_equal(fake.system_closed, 1);
    json_decref(spec);
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_boot_negotiate_ready, setup, teardown),
        cmocka_unit_test_setup_teardown(test_boot_timeout_silent_guest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_guest_never_connects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_rejected_by_hcs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vm_exit_lost_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bridge_lost_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disk_refcounts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disk_mount_failure_detaches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_while_starting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pause_unimplemented, setup, teardown),
        cmocka_unit_test_setup_teardown(test_real_hvsock_unavailable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_host_layers_prepare_release, setup, teardown),
        cmocka_unit_test_setup_teardown(test_host_prepare_failure_undoes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_host_close_while_booting, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#else

static void test_windows_only(void **state)
{
    (void)state;
    skip(); /* uvm/win and hcs/win are built for Windows only */
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_windows_only)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#endif
