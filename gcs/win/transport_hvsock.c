#include "gcs/win/transport_hvsock.h"

#include <hvsocket.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gcs/transport_impl.h"

/* mingw's <hvsocket.h> declares the GUIDs but the structs and constants are
 * all we need; AF_HYPERV is 34 in ws2def.h on current SDKs. */
#ifndef AF_HYPERV
#define AF_HYPERV 34
#endif

struct hvsock_transport {
    struct gcs_transport base;
    GUID vm_id;
};

/* A socket accepted on the accept thread, waiting for the loop. */
struct accepted {
    struct accepted *next;
    SOCKET sock;
    int status; /* 0, or a libuv error when accept failed */
};

struct hvsock_listener {
    struct gcs_listener base;
    uv_loop_t *loop;
    SOCKET sock;
    uv_thread_t thread;
    uv_async_t async;
    uv_mutex_t lock; /* guards the fields below (accept thread <-> loop) */
    bool closing;
    struct accepted *queue, *queue_tail;
};

void gcs_hvsock_service_id(uint32_t port, GUID *out)
{
    static const unsigned char tail[8] = {0xbd, 0x58, 0x64, 0x00, 0x6a, 0x79, 0x86, 0xd3};
    out->Data1 = port;
    out->Data2 = 0xfacb;
    out->Data3 = 0x11e6;
    memcpy(out->Data4, tail, sizeof(tail));
}

void gcs_guid_format(const GUID *g, char *buf)
{
    snprintf(buf, GCS_GUID_STRING_LEN + 1, "%08lx-%04x-%04x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             (unsigned long)g->Data1, g->Data2, g->Data3, g->Data4[0], g->Data4[1], g->Data4[2],
             g->Data4[3], g->Data4[4], g->Data4[5], g->Data4[6], g->Data4[7]);
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int gcs_guid_parse(const char *s, GUID *out)
{
    size_t len = strlen(s);
    if (len == GCS_GUID_STRING_LEN + 2 && s[0] == '{' && s[len - 1] == '}') {
        s++;
        len -= 2;
    }
    if (len != GCS_GUID_STRING_LEN)
        return -1;
    unsigned char bytes[16];
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return -1;
            continue;
        }
        int hi = hex_value(s[i]), lo = hex_value(s[i + 1]);
        if (hi < 0 || lo < 0 || (i + 1 == 8 || i + 1 == 13 || i + 1 == 18 || i + 1 == 23))
            return -1;
        bytes[n++] = (unsigned char)(hi << 4 | lo);
        i++;
    }
    out->Data1 = (unsigned long)bytes[0] << 24 | (unsigned long)bytes[1] << 16 |
                 (unsigned long)bytes[2] << 8 | bytes[3];
    out->Data2 = (unsigned short)(bytes[4] << 8 | bytes[5]);
    out->Data3 = (unsigned short)(bytes[6] << 8 | bytes[7]);
    memcpy(out->Data4, bytes + 8, 8);
    return 0;
}

/* ---- listener
 * ------------------------------------------------------------------------------------ */

static void enqueue(struct hvsock_listener *l, SOCKET sock, int status)
{
    struct accepted *a = calloc(1, sizeof(*a));
    uv_mutex_lock(&l->lock);
    if (a == NULL || l->closing) {
        uv_mutex_unlock(&l->lock);
        if (sock != INVALID_SOCKET)
            closesocket(sock);
        free(a);
        return;
    }
    a->sock = sock;
    a->status = status;
    if (l->queue_tail)
        l->queue_tail->next = a;
    else
        l->queue = a;
    l->queue_tail = a;
    uv_async_send(&l->async);
    uv_mutex_unlock(&l->lock);
}

/* Blocking accepts until the listening socket is closed. */
static void accept_thread(void *arg)
{
    struct hvsock_listener *l = arg;
    for (;;) {
        SOCKET s = accept(l->sock, NULL, NULL);
        if (s != INVALID_SOCKET) {
            enqueue(l, s, 0);
            continue;
        }
        int e = WSAGetLastError();
        uv_mutex_lock(&l->lock);
        bool closing = l->closing;
        uv_mutex_unlock(&l->lock);
        if (closing || e == WSAENOTSOCK || e == WSAEINTR || e == WSAEINVAL)
            return;
        enqueue(l, INVALID_SOCKET, uv_translate_sys_error(e));
        Sleep(50); /* a persistent failure must not spin */
    }
}

static void deliver(struct hvsock_listener *l, struct accepted *a)
{
    if (a->status < 0) {
        l->base.cb(&l->base, NULL, a->status, l->base.opaque);
        return;
    }
    uv_tcp_t *t = malloc(sizeof(*t));
    int rc = t ? uv_tcp_init(l->loop, t) : UV_ENOMEM;
    if (rc == 0) {
        rc = uv_tcp_open(t, (uv_os_sock_t)a->sock);
        if (rc < 0) {
            closesocket(a->sock);
            gcs_stream_close((uv_stream_t *)t);
        }
    } else {
        free(t);
        closesocket(a->sock);
    }
    if (rc < 0)
        l->base.cb(&l->base, NULL, rc, l->base.opaque);
    else
        l->base.cb(&l->base, (uv_stream_t *)t, 0, l->base.opaque);
}

static void on_accepted(uv_async_t *async)
{
    struct hvsock_listener *l = async->data;
    uv_mutex_lock(&l->lock);
    struct accepted *list = l->queue;
    l->queue = l->queue_tail = NULL;
    uv_mutex_unlock(&l->lock);
    while (list != NULL) {
        struct accepted *a = list;
        list = a->next;
        bool closing;
        uv_mutex_lock(&l->lock);
        closing = l->closing;
        uv_mutex_unlock(&l->lock);
        if (closing) /* closed from inside the callback */
            closesocket(a->sock);
        else
            deliver(l, a);
        free(a);
    }
}

static void listener_free(uv_handle_t *h)
{
    struct hvsock_listener *l = h->data;
    while (l->queue != NULL) {
        struct accepted *a = l->queue;
        l->queue = a->next;
        if (a->sock != INVALID_SOCKET)
            closesocket(a->sock);
        free(a);
    }
    uv_mutex_destroy(&l->lock);
    free(l);
}

static void listener_close(struct gcs_listener *base)
{
    struct hvsock_listener *l = (struct hvsock_listener *)base;
    uv_mutex_lock(&l->lock);
    bool already = l->closing;
    l->closing = true;
    uv_mutex_unlock(&l->lock);
    if (already)
        return;
    /* Aborts the blocking accept(); the thread then returns at once. */
    closesocket(l->sock);
    uv_thread_join(&l->thread);
    uv_close((uv_handle_t *)&l->async, listener_free);
}

static SOCKET hvsock_bind_listen(const GUID *vm_id, uint32_t port, shim_error_t **err)
{
    SOCKET s = WSASocketW(AF_HYPERV, SOCK_STREAM, HV_PROTOCOL_RAW, NULL, 0, WSA_FLAG_OVERLAPPED);
    if (s == INVALID_SOCKET) {
        int e = WSAGetLastError();
        error_set_uv(err, RPC_UNAVAILABLE, uv_translate_sys_error(e),
                     "hvsock: AF_HYPERV socket (Windows error %d; needs Windows 10 / Server 2016 "
                     "or later with Hyper-V)",
                     e);
        return INVALID_SOCKET;
    }
    SOCKADDR_HV addr;
    memset(&addr, 0, sizeof(addr));
    addr.Family = AF_HYPERV;
    addr.VmId = *vm_id;
    gcs_hvsock_service_id(port, &addr.ServiceId);
    if (bind(s, (struct sockaddr *)&addr, sizeof(addr)) != 0 || listen(s, 16) != 0) {
        int e = WSAGetLastError();
        char vm[GCS_GUID_STRING_LEN + 1], svc[GCS_GUID_STRING_LEN + 1];
        gcs_guid_format(vm_id, vm);
        gcs_guid_format(&addr.ServiceId, svc);
        closesocket(s);
        error_set_uv(err, e == WSAEADDRINUSE ? RPC_ALREADY_EXISTS : RPC_UNAVAILABLE,
                     uv_translate_sys_error(e), "hvsock: listen on (%s, %s) (Windows error %d)", vm,
                     svc, e);
        return INVALID_SOCKET;
    }
    return s;
}

static int hvsock_listen(struct gcs_transport *t, uint32_t port, gcs_accept_cb cb, void *opaque,
                         struct gcs_listener **out, shim_error_t **err)
{
    struct hvsock_transport *ht = (struct hvsock_transport *)t;
    SOCKET s = hvsock_bind_listen(&ht->vm_id, port, err);
    if (s == INVALID_SOCKET)
        return -1;
    struct hvsock_listener *l = calloc(1, sizeof(*l));
    if (l == NULL || uv_mutex_init(&l->lock) != 0) {
        free(l);
        closesocket(s);
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    }
    l->base.close = listener_close;
    l->base.port = port;
    l->base.cb = cb;
    l->base.opaque = opaque;
    l->loop = t->loop;
    l->sock = s;
    uv_async_init(t->loop, &l->async, on_accepted);
    l->async.data = l;
    int rc = uv_thread_create(&l->thread, accept_thread, l);
    if (rc < 0) {
        closesocket(s);
        uv_close((uv_handle_t *)&l->async, listener_free);
        return error_set_uv(err, RPC_INTERNAL, rc, "hvsock: accept thread");
    }
    *out = &l->base;
    return 0;
}

static int hvsock_connect(struct gcs_transport *t, uint32_t port, gcs_connect_cb cb, void *opaque,
                          shim_error_t **err)
{
    (void)t;
    (void)cb;
    (void)opaque;
    return error_set(err, RPC_UNIMPLEMENTED,
                     "hvsock: connecting to guest port %u is not supported (the guest dials the "
                     "host)",
                     (unsigned)port);
}

static void hvsock_destroy(struct gcs_transport *t)
{
    free(t);
}

static const struct gcs_transport_ops hvsock_ops = {
    .name = "hvsock",
    .listen = hvsock_listen,
    .connect = hvsock_connect,
    .destroy = hvsock_destroy,
};

int gcs_transport_hvsock_new(uv_loop_t *loop, const GUID *vm_id, struct gcs_transport **out,
                             shim_error_t **err)
{
    struct hvsock_transport *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    t->base.ops = &hvsock_ops;
    t->base.loop = loop;
    t->vm_id = *vm_id;
    *out = &t->base;
    return 0;
}
