/* libFuzzer: bytes -> a real ttrpc client (ttrpc/client.c) as everything the
 * server ever sends back on one connection, then EOF. fuzz_ttrpc_frame covers
 * the frame reader and Response decoding; this covers what the client does
 * with them: matching stream ids to outstanding calls, late or foreign
 * responses, non-response frame types, oversized frames, and connection loss.
 *
 * Three calls are outstanding (stream ids 1, 3, 5) when the input arrives,
 * in chunks whose size the first byte picks (bits 0-2: all at once, 1, 3, 7,
 * 16, 64, 256, 4096). Bit 3: close the client from inside the first
 * callback. Bit 4: the first callback starts one more call (stream 7).
 *
 * Checks beyond "no crash, no leak": every call's callback runs exactly
 * once, never inside ttrpc_client_call, with a message and (on success) a
 * payload within the message limit; and every handle is freed
 * (uv_loop_close succeeds). */
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"
#include "ttrpc/frame.h"
#include "ttrpc/ttrpc.h"

#define MAX_CALLS 4

struct run;

struct call_state {
    struct run *run;
    int completions;
};

struct run {
    ttrpc_client_t *client;
    unsigned flags;
    bool in_api; /* inside ttrpc_client_call */
    bool closed;
    int started;
    int completed;
    struct call_state calls[MAX_CALLS];
};

static char socket_path[108];
static int listen_fd = -1;

static void cleanup(void)
{
    if (listen_fd >= 0)
        close(listen_fd);
    unlink(socket_path);
    char *slash = strrchr(socket_path, '/');
    if (slash != NULL) {
        *slash = '\0';
        rmdir(socket_path);
    }
}

static bool listen_once(void)
{
    char dir[] = "/tmp/fuzz_ttrpc_client.XXXXXX";
    if (mkdtemp(dir) == NULL)
        return false;
    snprintf(socket_path, sizeof(socket_path), "%s/s", dir);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", socket_path);
    listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
        listen(listen_fd, 8) < 0)
        return false;
    atexit(cleanup);
    return true;
}

static void start_call(struct run *r);

static void on_done(int code, const char *message, const uint8_t *payload, size_t len, void *arg)
{
    struct call_state *cs = arg;
    struct run *r = cs->run;
    /* any int32 code passes through from the server, as in Go's ttrpc */
    if (r->in_api || ++cs->completions != 1 || message == NULL || rpc_code_name(code) == NULL)
        abort();
    if (code == 0 && len > TTRPC_MESSAGE_LENGTH_MAX)
        abort();
    if (len > 0 && payload == NULL)
        abort();
    r->completed++;
    if (r->completed == 1 && (r->flags & 0x10))
        start_call(r);
    if (r->completed == 1 && (r->flags & 0x08) && !r->closed) {
        r->closed = true;
        ttrpc_client_close(r->client);
    }
}

static void start_call(struct run *r)
{
    static const uint8_t payload[] = {0x0a, 0x03, 'a', 'b', 'c'};
    if (r->started == MAX_CALLS || r->closed)
        return;
    struct call_state *cs = &r->calls[r->started];
    cs->run = r;
    struct ttrpc_metadata md = {"k", "v"};
    struct ttrpc_call_args args = {.service = "containerd.task.v2.Task",
                                   .method = "State",
                                   .payload = payload,
                                   .len = sizeof(payload),
                                   .metadata = &md,
                                   .n_metadata = 1};
    shim_error_t *err = NULL;
    r->in_api = true;
    int rc = ttrpc_client_call(r->client, &args, on_done, cs, &err);
    r->in_api = false;
    if (rc < 0) {
        error_free(err);
        return;
    }
    r->started++;
}

static void feed(uv_loop_t *loop, int fd, const uint8_t *data, size_t size, size_t chunk)
{
    size_t off = 0;
    int stuck = 0;
    while (off < size && stuck < 1000) {
        size_t n = size - off < chunk ? size - off : chunk;
        ssize_t w = send(fd, data + off, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w > 0) {
            off += (size_t)w;
            stuck = 0;
        } else {
            stuck++; /* the client is gone and the buffer is full */
        }
        uv_run(loop, UV_RUN_NOWAIT);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    if (!ready) {
        log_configure(2, LOG_LEVEL_PANIC, LOG_FORMAT_TEXT);
        signal(SIGPIPE, SIG_IGN);
        if (!listen_once())
            abort();
        ready = true;
    }
    if (size < 1)
        return 0;
    static const size_t chunks[] = {0, 1, 3, 7, 16, 64, 256, 4096};
    struct run r = {.flags = data[0]};
    size_t chunk = chunks[data[0] & 7];
    data++;
    size--;
    if (chunk == 0)
        chunk = size ? size : 1;

    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0)
        return 0;
    if (ttrpc_client_new(&loop, socket_path, &r.client, NULL) < 0)
        abort();
    for (int i = 0; i < 3; i++)
        start_call(&r);
    /* the connect was issued inside the first call: accept it, let the
     * client send its requests, then answer with the input */
    struct pollfd pfd = {.fd = listen_fd, .events = POLLIN};
    int server = poll(&pfd, 1, 10000) == 1 ? accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC) : -1;
    if (server < 0)
        abort();
    uv_run(&loop, UV_RUN_NOWAIT);
    feed(&loop, server, data, size, chunk);
    close(server); /* EOF: whatever is still outstanding fails */
    /* A call started after the connection was lost dials again: such a
     * connection is accepted and closed at once, so that call fails too. */
    for (int i = 0; i < 100000 && r.completed < r.started; i++) {
        int late = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (late >= 0)
            close(late);
        uv_run(&loop, UV_RUN_NOWAIT);
    }
    if (r.completed != r.started)
        abort(); /* a call never ended */
    if (!r.closed) {
        r.closed = true;
        ttrpc_client_close(r.client);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0)
        abort(); /* a handle leaked */
    return 0;
}
