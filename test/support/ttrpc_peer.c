/* POSIX raw peer (Unix sockets + poll); Windows: test/support/win/. */
#ifndef _WIN32

#include "test/support/ttrpc_peer.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ttrpc/frame.h"

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void tpeer_pump(uv_loop_t *loop)
{
    uv_run(loop, UV_RUN_NOWAIT);
    /* Let the kernel move bytes and timers advance without spinning hot. */
    struct timespec pause = {0, 1000000};
    nanosleep(&pause, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
}

bool tpeer_pump_until(uv_loop_t *loop, const bool *flag, int timeout_ms)
{
    int64_t end = now_ms() + timeout_ms;
    while (!*flag && now_ms() < end)
        tpeer_pump(loop);
    return *flag;
}

bool tpeer_pump_until_count(uv_loop_t *loop, const int *counter, int target, int timeout_ms)
{
    int64_t end = now_ms() + timeout_ms;
    while (*counter < target && now_ms() < end)
        tpeer_pump(loop);
    return *counter >= target;
}

void tpeer_pump_for(uv_loop_t *loop, int ms)
{
    int64_t end = now_ms() + ms;
    while (now_ms() < end)
        tpeer_pump(loop);
}

char *tpeer_tmpdir(void)
{
    char *dir = strdup("/tmp/ttrpc-test.XXXXXX");
    if (dir != NULL && mkdtemp(dir) == NULL) {
        free(dir);
        return NULL;
    }
    return dir;
}

void tpeer_rmdir(char *dir)
{
    if (dir == NULL)
        return;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        unlink(path);
    }
    if (d != NULL)
        closedir(d);
    rmdir(dir);
    free(dir);
}

static int unix_addr(const char *path, struct sockaddr_un *addr)
{
    memset(addr, 0, sizeof(*addr));
    addr->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(addr->sun_path))
        return -1;
    strcpy(addr->sun_path, path);
    return 0;
}

int tpeer_connect(const char *path)
{
    struct sockaddr_un addr;
    if (unix_addr(path, &addr) < 0)
        return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        close(fd);
        return -1;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

int tpeer_listen(const char *path)
{
    struct sockaddr_un addr;
    if (unix_addr(path, &addr) < 0)
        return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, 16) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int tpeer_accept(uv_loop_t *loop, int listen_fd)
{
    int64_t end = now_ms() + TPEER_TIMEOUT_MS;
    while (now_ms() < end) {
        int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0)
            return fd;
        tpeer_pump(loop);
    }
    return -1;
}

bool tpeer_write(uv_loop_t *loop, int fd, const void *data, size_t len)
{
    const uint8_t *p = data;
    int64_t end = now_ms() + TPEER_TIMEOUT_MS;
    while (len > 0 && now_ms() < end) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
        } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
            return false;
        } else {
            tpeer_pump(loop);
        }
    }
    return len == 0;
}

bool tpeer_read(uv_loop_t *loop, int fd, void *data, size_t len)
{
    uint8_t *p = data;
    int64_t end = now_ms() + TPEER_TIMEOUT_MS;
    while (len > 0 && now_ms() < end) {
        ssize_t n = recv(fd, p, len, 0);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            return false;
        } else {
            tpeer_pump(loop);
        }
    }
    return len == 0;
}

bool tpeer_wait_eof(uv_loop_t *loop, int fd, int timeout_ms)
{
    int64_t end = now_ms() + timeout_ms;
    uint8_t buf[4096];
    while (now_ms() < end) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n == 0 || (n < 0 && errno == ECONNRESET))
            return true;
        if (n < 0 && errno != EAGAIN && errno != EINTR)
            return false;
        if (n < 0)
            tpeer_pump(loop);
    }
    return false;
}

bool tpeer_quiet(uv_loop_t *loop, int fd, int ms)
{
    int64_t end = now_ms() + ms;
    uint8_t byte;
    while (now_ms() < end) {
        ssize_t n = recv(fd, &byte, 1, MSG_PEEK);
        if (n >= 0)
            return false;
        tpeer_pump(loop);
    }
    return true;
}

bool tpeer_read_frame(uv_loop_t *loop, int fd, struct tpeer_frame *frame)
{
    uint8_t hdr_buf[TTRPC_HEADER_SIZE];
    struct ttrpc_frame_header hdr;
    memset(frame, 0, sizeof(*frame));
    if (!tpeer_read(loop, fd, hdr_buf, sizeof(hdr_buf)))
        return false;
    ttrpc_header_decode(hdr_buf, &hdr);
    frame->length = hdr.length;
    frame->stream_id = hdr.stream_id;
    frame->type = hdr.type;
    frame->flags = hdr.flags;
    if (hdr.length > 64u << 20)
        return false;
    if (hdr.length == 0)
        return true;
    frame->body = malloc(hdr.length);
    if (frame->body == NULL || !tpeer_read(loop, fd, frame->body, hdr.length)) {
        free(frame->body);
        frame->body = NULL;
        return false;
    }
    return true;
}

bool tpeer_write_frame(uv_loop_t *loop, int fd, uint32_t stream_id, uint8_t type, const void *body,
                       size_t len)
{
    uint8_t hdr_buf[TTRPC_HEADER_SIZE];
    struct ttrpc_frame_header hdr = {
        .length = (uint32_t)len, .stream_id = stream_id, .type = type, .flags = 0};
    ttrpc_header_encode(hdr_buf, &hdr);
    return tpeer_write(loop, fd, hdr_buf, sizeof(hdr_buf)) &&
           (len == 0 || tpeer_write(loop, fd, body, len));
}

bool tpeer_send_request(uv_loop_t *loop, int fd, uint32_t stream_id, const char *service,
                        const char *method, const void *payload, size_t len, int64_t timeout_nano)
{
    uint8_t *frame = NULL;
    size_t frame_len = 0;
    if (ttrpc_request_frame(stream_id, service, method, payload, len, timeout_nano, NULL, 0, &frame,
                            &frame_len, NULL) < 0)
        return false;
    bool ok = tpeer_write(loop, fd, frame, frame_len);
    free(frame);
    return ok;
}

uint32_t tpeer_read_response(uv_loop_t *loop, int fd, int *code, char **message, uint8_t **payload,
                             size_t *payload_len)
{
    struct tpeer_frame frame;
    Ttrpc__Response *resp = NULL;
    if (!tpeer_read_frame(loop, fd, &frame) || frame.type != TTRPC_TYPE_RESPONSE ||
        ttrpc_response_decode(frame.body, frame.length, &resp, NULL) < 0) {
        free(frame.body);
        return 0;
    }
    *code = ttrpc_response_code(resp);
    if (message != NULL)
        *message = strdup(ttrpc_response_message(resp));
    if (payload != NULL) {
        *payload_len = resp->payload.len;
        *payload = malloc(resp->payload.len + 1);
        memcpy(*payload, resp->payload.data ? resp->payload.data : (uint8_t *)"",
               resp->payload.len);
        (*payload)[resp->payload.len] = '\0';
    }
    ttrpc__response__free_unpacked(resp, NULL);
    free(frame.body);
    return frame.stream_id;
}

static void close_walk_cb(uv_handle_t *handle, void *arg)
{
    (void)arg;
    if (!uv_is_closing(handle))
        uv_close(handle, NULL);
}

void tpeer_loop_drain(uv_loop_t *loop)
{
    uv_run(loop, UV_RUN_NOWAIT);
    uv_walk(loop, close_walk_cb, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
}

#endif /* !_WIN32 */
