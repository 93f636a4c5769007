/* The Windows half of test/support/stream_pair.h: a loopback TCP connection
 * (an ephemeral listener on 127.0.0.1, connect, accept, listener closed). uv
 * ends are heap uv_tcp_t's (uv_tcp_open); a raw end is a blocking SOCKET.
 *
 * Why not a named pipe: libuv's uv_shutdown on a Windows pipe only flushes,
 * the peer never reads EOF, and the mux (CLOSE_WRITE) and the stdio streams
 * (§8.4 half-close) depend on it. */
#include "test/support/stream_pair.h"

#include <stdlib.h>
#include <winsock2.h>
#include <ws2tcpip.h>

/* About what an AF_UNIX socketpair buffers, so a reader that stops reading
 * pushes back on its writer after a few hundred KiB, not megabytes. */
#define PAIR_SOCKET_BUFFER (64 * 1024)
#define MAX_SEND 65536

static SOCKET tcp_socket(void)
{
    SOCKET s = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    if (s == INVALID_SOCKET)
        return s;
    int size = PAIR_SOCKET_BUFFER;
    setsockopt(s, SOL_SOCKET, SO_RCVBUF, (const char *)&size, sizeof(size));
    setsockopt(s, SOL_SOCKET, SO_SNDBUF, (const char *)&size, sizeof(size));
    BOOL on = TRUE;
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, (const char *)&on, sizeof(on));
    return s;
}

/* Connects out[0] to out[1] through lst, a fresh listener; NULL or what failed. */
static const char *connect_through(SOCKET lst, SOCKET out[2])
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int alen = sizeof(addr);
    if (bind(lst, (struct sockaddr *)&addr, sizeof(addr)) != 0 ||
        getsockname(lst, (struct sockaddr *)&addr, &alen) != 0 || listen(lst, 1) != 0)
        return "listen on 127.0.0.1";
    out[0] = tcp_socket(); /* buffers set before connect: the window is negotiated then */
    if (out[0] == INVALID_SOCKET)
        return "socket";
    if (connect(out[0], (struct sockaddr *)&addr, sizeof(addr)) != 0)
        return "connect";
    out[1] = accept(lst, NULL, NULL); /* inherits the listener's buffer sizes */
    return out[1] == INVALID_SOCKET ? "accept" : NULL;
}

int stream_raw_pair(stream_raw_t out[2], shim_error_t **err)
{
    WSADATA wsa;
    if (WSAStartup(MAKEWORD(2, 2), &wsa) != 0)
        return error_set(err, RPC_INTERNAL, "loopback pair: WSAStartup failed");
    SOCKET s[2] = {INVALID_SOCKET, INVALID_SOCKET};
    SOCKET lst = tcp_socket();
    const char *failed = lst == INVALID_SOCKET ? "socket" : connect_through(lst, s);
    int code = WSAGetLastError();
    if (lst != INVALID_SOCKET)
        closesocket(lst);
    WSACleanup(); /* libuv holds its own reference while a loop exists */
    if (failed != NULL) {
        stream_raw_close(s[0]);
        stream_raw_close(s[1]);
        return error_set(err, RPC_INTERNAL, "loopback pair: %s (Windows error %d)", failed, code);
    }
    out[0] = (stream_raw_t)s[0];
    out[1] = (stream_raw_t)s[1];
    return 0;
}

static void free_on_close(uv_handle_t *h)
{
    free(h);
}

int stream_raw_wrap(uv_loop_t *loop, stream_raw_t raw, uv_stream_t **out, shim_error_t **err)
{
    uv_tcp_t *t = malloc(sizeof(*t));
    if (t == NULL)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    int rc = uv_tcp_init(loop, t);
    if (rc < 0) {
        free(t);
        return error_set_uv(err, RPC_INTERNAL, rc, "uv_tcp_init");
    }
    rc = uv_tcp_open(t, (uv_os_sock_t)raw);
    if (rc < 0) {
        uv_close((uv_handle_t *)t, free_on_close);
        return error_set_uv(err, RPC_INTERNAL, rc, "uv_tcp_open");
    }
    *out = (uv_stream_t *)t;
    return 0;
}

long stream_raw_send(stream_raw_t raw, const void *data, size_t len, bool wait)
{
    u_long nonblocking = wait ? 0 : 1, blocking = 0;
    if (!wait)
        ioctlsocket((SOCKET)raw, FIONBIO, &nonblocking);
    int n = send((SOCKET)raw, data, len > MAX_SEND ? MAX_SEND : (int)len, 0);
    int code = WSAGetLastError();
    if (!wait)
        ioctlsocket((SOCKET)raw, FIONBIO, &blocking);
    if (n == SOCKET_ERROR)
        return code == WSAEWOULDBLOCK ? 0 : -1;
    return n;
}

int stream_raw_shutdown(stream_raw_t raw, enum stream_shut how)
{
    return shutdown((SOCKET)raw, how == STREAM_SHUT_WRITE ? SD_SEND : SD_BOTH) == 0 ? 0 : -1;
}

void stream_raw_close(stream_raw_t raw)
{
    if (raw != STREAM_RAW_NONE)
        closesocket((SOCKET)raw);
}
