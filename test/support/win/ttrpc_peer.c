/* test/support/ttrpc_peer.h for Windows: the raw peer talks over byte-mode
 * named pipes instead of Unix sockets (test/support/ttrpc_peer.c is the
 * POSIX one and compiles to nothing here). Adopted from the Windows build
 * helper's staged compat/win copy.
 *
 * Raw peers are CRT file descriptors wrapping overlapped pipe handles, so the
 * tests' close(fd) closes the pipe. Reads poll with PeekNamedPipe, writes are
 * overlapped and pump the loop until done: the ttrpc end under test runs on
 * the same thread and must be able to drain a write larger than the pipe
 * buffer. A "temp dir" is a pipe-name prefix; '/' is legal in pipe names, so
 * the tests' "%s/s.sock" paths work unchanged. */
#include "test/support/ttrpc_peer.h"

#include <fcntl.h>
#include <io.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <windows.h>

#define PIPE_BUFFER 65536
#define MAX_LISTENERS 16

char *tpeer_tmpdir(void)
{
    static unsigned seq;
    char name[96];
    snprintf(name, sizeof(name), "\\\\.\\pipe\\ttrpc-test-%lu-%u-%llu",
             (unsigned long)GetCurrentProcessId(), ++seq, (unsigned long long)uv_hrtime());
    return strdup(name);
}

/* Pipes vanish with their last handle: nothing to remove. */
void tpeer_rmdir(char *dir)
{
    free(dir);
}

static HANDLE fd_handle(int fd)
{
    return fd < 0 ? INVALID_HANDLE_VALUE : (HANDLE)_get_osfhandle(fd);
}

static int wrap_handle(HANDLE h)
{
    int fd = _open_osfhandle((intptr_t)h, _O_BINARY);
    if (fd < 0)
        CloseHandle(h);
    return fd;
}

int tpeer_connect(const char *path)
{
    int64_t end = tpeer_now_ms() + TPEER_TIMEOUT_MS;
    for (;;) {
        HANDLE h = CreateFileA(path, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING,
                               FILE_FLAG_OVERLAPPED, NULL);
        if (h != INVALID_HANDLE_VALUE)
            return wrap_handle(h);
        /* All instances busy: the server makes a new one when it accepts. */
        if (GetLastError() != ERROR_PIPE_BUSY || tpeer_now_ms() >= end)
            return -1;
        WaitNamedPipeA(path, 100);
    }
}

/* A listener: the fd handed out wraps a handle of the NUL device (so the
 * test's close(fd) has something to close); the pending pipe instance is
 * kept here. */
struct listener {
    int fd;
    HANDLE marker; /* the handle behind fd, to notice the fd was closed */
    char *path;
    HANDLE pending;
    OVERLAPPED ov;
    bool connected;
};

static struct listener listeners[MAX_LISTENERS];

static void listener_release(struct listener *l)
{
    if (l->pending != INVALID_HANDLE_VALUE && l->pending != NULL)
        CloseHandle(l->pending);
    if (l->ov.hEvent != NULL)
        CloseHandle(l->ov.hEvent);
    free(l->path);
    memset(l, 0, sizeof(*l));
}

/* Releases listeners whose fd the test closed. */
static void listeners_sweep(void)
{
    for (int i = 0; i < MAX_LISTENERS; i++) {
        struct listener *l = &listeners[i];
        if (l->path != NULL && fd_handle(l->fd) != l->marker)
            listener_release(l);
    }
}

/* Creates the next instance and starts waiting for a client on it. */
static bool listener_arm(struct listener *l, bool first)
{
    DWORD open_mode = PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED;
    if (first)
        open_mode |= FILE_FLAG_FIRST_PIPE_INSTANCE;
    l->pending =
        CreateNamedPipeA(l->path, open_mode, PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT,
                         PIPE_UNLIMITED_INSTANCES, PIPE_BUFFER, PIPE_BUFFER, 0, NULL);
    if (l->pending == INVALID_HANDLE_VALUE)
        return false;
    ResetEvent(l->ov.hEvent);
    l->connected = false;
    if (ConnectNamedPipe(l->pending, &l->ov))
        l->connected = true;
    else if (GetLastError() == ERROR_PIPE_CONNECTED)
        l->connected = true;
    else if (GetLastError() != ERROR_IO_PENDING)
        return false;
    return true;
}

int tpeer_listen(const char *path)
{
    listeners_sweep();
    struct listener *l = NULL;
    for (int i = 0; i < MAX_LISTENERS && l == NULL; i++)
        if (listeners[i].path == NULL)
            l = &listeners[i];
    if (l == NULL)
        return -1;
    l->pending = INVALID_HANDLE_VALUE;
    l->path = strdup(path);
    l->ov.hEvent = CreateEventA(NULL, TRUE, FALSE, NULL);
    /* The CRT only wraps file-like handles: the NUL device will do. */
    l->marker = CreateFileA("NUL", GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE, NULL,
                            OPEN_EXISTING, 0, NULL);
    if (l->marker == INVALID_HANDLE_VALUE)
        l->marker = NULL;
    if (l->path == NULL || l->ov.hEvent == NULL || l->marker == NULL || !listener_arm(l, true))
        goto fail;
    l->fd = _open_osfhandle((intptr_t)l->marker, _O_BINARY);
    if (l->fd < 0)
        goto fail;
    return l->fd;
fail:
    if (l->marker != NULL)
        CloseHandle(l->marker);
    listener_release(l);
    return -1;
}

int tpeer_accept(uv_loop_t *loop, int listen_fd)
{
    struct listener *l = NULL;
    for (int i = 0; i < MAX_LISTENERS && l == NULL; i++)
        if (listeners[i].path != NULL && listeners[i].fd == listen_fd)
            l = &listeners[i];
    if (l == NULL)
        return -1;
    int64_t end = tpeer_now_ms() + TPEER_TIMEOUT_MS;
    DWORD n;
    while (!l->connected && tpeer_now_ms() < end) {
        if (GetOverlappedResult(l->pending, &l->ov, &n, FALSE))
            l->connected = true;
        else if (GetLastError() == ERROR_IO_INCOMPLETE)
            tpeer_pump(loop);
        else
            return -1;
    }
    if (!l->connected)
        return -1;
    HANDLE conn = l->pending;
    l->pending = INVALID_HANDLE_VALUE;
    if (!listener_arm(l, false))
        l->pending = INVALID_HANDLE_VALUE;
    return wrap_handle(conn);
}

/* Runs one overlapped transfer to completion while pumping the loop. */
static bool transfer(uv_loop_t *loop, HANDLE h, bool write, void *buf, DWORD len, DWORD *done)
{
    OVERLAPPED ov = {0};
    ov.hEvent = CreateEventA(NULL, TRUE, FALSE, NULL);
    if (ov.hEvent == NULL)
        return false;
    bool ok = false;
    BOOL started = write ? WriteFile(h, buf, len, NULL, &ov) : ReadFile(h, buf, len, NULL, &ov);
    if (started || GetLastError() == ERROR_IO_PENDING) {
        int64_t end = tpeer_now_ms() + TPEER_TIMEOUT_MS;
        for (;;) {
            if (GetOverlappedResult(h, &ov, done, FALSE)) {
                ok = true;
                break;
            }
            if (GetLastError() != ERROR_IO_INCOMPLETE)
                break;
            if (tpeer_now_ms() >= end) {
                CancelIoEx(h, &ov);
                GetOverlappedResult(h, &ov, done, TRUE);
                break;
            }
            tpeer_pump(loop);
        }
    }
    CloseHandle(ov.hEvent);
    return ok;
}

bool tpeer_write(uv_loop_t *loop, int fd, const void *data, size_t len)
{
    HANDLE h = fd_handle(fd);
    const uint8_t *p = data;
    if (h == INVALID_HANDLE_VALUE)
        return false;
    while (len > 0) {
        DWORD chunk = len > (1u << 30) ? (1u << 30) : (DWORD)len;
        DWORD done = 0;
        if (!transfer(loop, h, true, (void *)p, chunk, &done) || done == 0)
            return false;
        p += done;
        len -= done;
    }
    return true;
}

/* Bytes waiting to be read: >0, 0 (none yet) or -1 (closed or broken). */
static long long available(HANDLE h)
{
    DWORD avail = 0;
    if (!PeekNamedPipe(h, NULL, 0, NULL, &avail, NULL))
        return -1;
    return avail;
}

bool tpeer_read(uv_loop_t *loop, int fd, void *data, size_t len)
{
    HANDLE h = fd_handle(fd);
    uint8_t *p = data;
    int64_t end = tpeer_now_ms() + TPEER_TIMEOUT_MS;
    if (h == INVALID_HANDLE_VALUE)
        return false;
    while (len > 0 && tpeer_now_ms() < end) {
        long long avail = available(h);
        if (avail < 0)
            return false;
        if (avail == 0) {
            tpeer_pump(loop);
            continue;
        }
        DWORD want =
            (size_t)avail < len ? (DWORD)avail : (DWORD)(len > (1u << 30) ? 1u << 30 : len);
        DWORD done = 0;
        if (!transfer(loop, h, false, p, want, &done) || done == 0)
            return false;
        p += done;
        len -= done;
    }
    return len == 0;
}

bool tpeer_wait_eof(uv_loop_t *loop, int fd, int timeout_ms)
{
    HANDLE h = fd_handle(fd);
    int64_t end = tpeer_now_ms() + timeout_ms;
    uint8_t buf[4096];
    if (h == INVALID_HANDLE_VALUE)
        return false;
    while (tpeer_now_ms() < end) {
        long long avail = available(h);
        if (avail < 0) {
            DWORD e = GetLastError();
            return e == ERROR_BROKEN_PIPE || e == ERROR_PIPE_NOT_CONNECTED || e == ERROR_NO_DATA;
        }
        if (avail == 0) {
            tpeer_pump(loop);
            continue;
        }
        DWORD done = 0;
        DWORD want = avail < (long long)sizeof(buf) ? (DWORD)avail : (DWORD)sizeof(buf);
        if (!transfer(loop, h, false, buf, want, &done))
            return false;
    }
    return false;
}

bool tpeer_quiet(uv_loop_t *loop, int fd, int ms)
{
    HANDLE h = fd_handle(fd);
    int64_t end = tpeer_now_ms() + ms;
    while (tpeer_now_ms() < end) {
        /* Data or EOF both count as "not quiet", as recv() >= 0 does. */
        if (available(h) != 0)
            return false;
        tpeer_pump(loop);
    }
    return true;
}
