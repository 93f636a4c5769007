/* POSIX raw peer (Unix sockets + poll); Windows: test/support/win/. The
 * portable half (pumping, frames) is test/support/ttrpc_peer_common.c. */
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
#include <unistd.h>

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
    int64_t end = tpeer_now_ms() + TPEER_TIMEOUT_MS;
    while (tpeer_now_ms() < end) {
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
    int64_t end = tpeer_now_ms() + TPEER_TIMEOUT_MS;
    while (len > 0 && tpeer_now_ms() < end) {
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
    int64_t end = tpeer_now_ms() + TPEER_TIMEOUT_MS;
    while (len > 0 && tpeer_now_ms() < end) {
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
    int64_t end = tpeer_now_ms() + timeout_ms;
    uint8_t buf[4096];
    while (tpeer_now_ms() < end) {
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
    int64_t end = tpeer_now_ms() + ms;
    uint8_t byte;
    while (tpeer_now_ms() < end) {
        ssize_t n = recv(fd, &byte, 1, MSG_PEEK);
        if (n >= 0)
            return false;
        tpeer_pump(loop);
    }
    return true;
}

#endif /* !_WIN32 */
