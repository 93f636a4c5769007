/* libFuzzer: bytes -> a real QMP client (hcs/qmp.c) as everything QEMU ever
 * sends on the monitor socket: greeting, replies, events, garbage, partial
 * lines, then EOF. hcs/qmp.h has no socket-free parse function, so the bytes
 * go through a socketpair on a private uv loop, in chunks whose size the
 * first byte picks (partial lines, several lines per read).
 *
 * First byte (flags):
 *   bits 0-2  chunk size: all at once, 1, 3, 7, 16, 64, 256, 4096
 *   bit 3     close the client from inside the first event callback
 *   bit 4     close the client from inside the ready callback
 *   bit 5     close the client from inside the first reply callback
 *   bit 6     prepend a valid greeting and capabilities reply (id 1), so the
 *             rest of the input reaches the command/event paths at once
 *   bit 7     every event queues one more command (ids keep counting)
 * Once ready, the target issues commands with ids 2, 3, 4 (the last without
 * a callback).
 *
 * Checks beyond "no crash, no leak": ready runs exactly once unless we closed
 * first; every command's reply callback runs exactly once (a reply, a QMP
 * error or the connection's end) unless we closed first; after
 * qmp_client_close no callback of any kind runs; the closed callback runs at
 * most once, and exactly once when the connection ended without us closing
 * (also after a refused qmp_capabilities); and every handle is freed
 * (uv_loop_close succeeds).
 *
 * With FUZZ_QMP_OVERSIZED=1 in the environment a one-time check at start-up
 * also feeds a line longer than QMP_MAX_LINE (out of the input size limit's
 * reach) and prints how long the client took to refuse it. It is opt-in
 * only because it allocates and pushes 16 MiB through the socket. */
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "hcs/qmp.h"

#define MAX_EXTRA_COMMANDS 8

static const char greeting[] = "{\"QMP\":{\"version\":{\"qemu\":{\"micro\":0,\"minor\":2,"
                               "\"major\":7},\"package\":\"\"},\"capabilities\":[\"oob\"]}}\r\n"
                               "{\"return\":{},\"id\":1}\r\n";

struct run {
    struct qmp_client *c;
    unsigned flags;
    bool closed_by_us;
    int ready_calls;
    int ready_error_code; /* -1: ready succeeded or not called */
    int closed_calls;
    int closed_code;
    int events;
    int sent;    /* commands with a reply callback */
    int replied; /* their reply callbacks */
    int extra;   /* commands queued from events */
};

static void our_close(struct run *r)
{
    if (!r->closed_by_us) {
        r->closed_by_us = true;
        qmp_client_close(r->c);
    }
}

static void after_close_check(struct run *r)
{
    if (r->closed_by_us)
        abort(); /* a callback after qmp_client_close */
}

static void on_reply(struct qmp_client *c, json_t *ret, const shim_error_t *err, void *opaque)
{
    struct run *r = opaque;
    (void)ret;
    after_close_check(r);
    if (c != r->c || (err != NULL && err->msg == NULL))
        abort();
    r->replied++;
    if (r->replied > r->sent)
        abort();
    if ((r->flags & 0x20) && r->replied == 1)
        our_close(r);
}

static void execute(struct run *r, const char *command, json_t *args, bool with_cb)
{
    shim_error_t *err = NULL;
    if (qmp_client_execute(r->c, command, args, with_cb ? on_reply : NULL, r, &err) == 0) {
        r->sent += with_cb;
    } else {
        if (err == NULL)
            abort();
        error_free(err);
    }
}

static void on_ready(struct qmp_client *c, const shim_error_t *err, void *opaque)
{
    struct run *r = opaque;
    after_close_check(r);
    if (c != r->c || ++r->ready_calls > 1)
        abort();
    if (err != NULL) {
        r->ready_error_code = err->code;
        if (qmp_client_ready(c))
            abort();
        return;
    }
    if (!qmp_client_ready(c))
        abort();
    execute(r, "query-status", NULL, true);
    execute(r, "cont", json_pack("{s:b}", "fuzz", 1), true);
    execute(r, "quit", NULL, false);
    if (r->flags & 0x10)
        our_close(r);
}

static void on_event(struct qmp_client *c, const char *event, json_t *data, void *opaque)
{
    struct run *r = opaque;
    (void)data;
    after_close_check(r);
    if (c != r->c || event == NULL)
        abort();
    r->events++;
    if ((r->flags & 0x80) && r->extra < MAX_EXTRA_COMMANDS) {
        r->extra++;
        execute(r, "query-status", NULL, true);
    }
    if ((r->flags & 0x08) && r->events == 1)
        our_close(r);
}

static void on_closed(struct qmp_client *c, const shim_error_t *err, void *opaque)
{
    struct run *r = opaque;
    after_close_check(r);
    if (c != r->c || err == NULL || ++r->closed_calls > 1 || qmp_client_ready(c))
        abort();
    r->closed_code = err->code;
    /* every command has ended by now */
    if (qmp_client_pending(c) != 0)
        abort();
}

static void send_all(uv_loop_t *loop, int fd, const uint8_t *data, size_t size, size_t chunk)
{
    size_t off = 0;
    int stuck = 0;
    while (off < size && stuck < 10000) {
        size_t n = size - off < chunk ? size - off : chunk;
        ssize_t w = send(fd, data + off, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w > 0) {
            off += (size_t)w;
            stuck = 0;
        } else {
            stuck++; /* the client stopped reading (dead) and the buffer is full */
        }
        uv_run(loop, UV_RUN_NOWAIT);
    }
}

static void check_end(const struct run *r)
{
    if (r->closed_by_us)
        return; /* close suppresses every callback; nothing more to expect */
    if (r->ready_calls != 1 || r->replied != r->sent)
        abort();
    /* Every end (including a refused qmp_capabilities) calls closed, once. */
    if (r->closed_calls != 1)
        abort();
    /* A client that never got ready closes for the same reason. */
    if (r->ready_error_code != -1 && r->closed_code != r->ready_error_code)
        abort();
}

static void run_client(const uint8_t *data, size_t size, unsigned flags, struct run *r)
{
    static const size_t chunks[] = {0, 1, 3, 7, 16, 64, 256, 4096};
    uv_loop_t loop;
    int sv[2];
    if (uv_loop_init(&loop) != 0)
        return;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        uv_loop_close(&loop);
        return;
    }
    memset(r, 0, sizeof(*r));
    r->flags = flags;
    r->ready_error_code = -1;
    struct qmp_callbacks cbs = {.ready = on_ready, .event = on_event, .closed = on_closed};
    shim_error_t *err = NULL;
    if (qmp_client_open(&loop, sv[0], &cbs, r, &r->c, &err) < 0)
        abort(); /* a fresh socketpair must open */
    size_t chunk = chunks[flags & 7] ? chunks[flags & 7] : (size ? size : 1);
    if (flags & 0x40)
        send_all(&loop, sv[1], (const uint8_t *)greeting, sizeof(greeting) - 1, chunk);
    send_all(&loop, sv[1], data, size, chunk);
    shutdown(sv[1], SHUT_WR);
    /* EOF ends the client; bounded in case it does not */
    for (int i = 0; i < 100000 && !r->closed_by_us && r->closed_calls == 0 && uv_loop_alive(&loop);
         i++)
        uv_run(&loop, UV_RUN_ONCE);
    check_end(r);
    our_close(r);
    close(sv[1]);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0)
        abort(); /* a handle leaked */
}

/* A line longer than QMP_MAX_LINE must end the client with
 * RESOURCE_EXHAUSTED, not grow its buffer without bound. */
static void oversized_line_check(void)
{
    size_t n = QMP_MAX_LINE + (1u << 16);
    uint8_t *big = malloc(n);
    if (big == NULL)
        return;
    memset(big, ' ', n);
    struct run r;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    run_client(big, n, 0x40 /* all at once after a good greeting */, &r);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    free(big);
    if (r.closed_calls != 1 || r.closed_code != RPC_RESOURCE_EXHAUSTED || r.replied != r.sent)
        abort();
    fprintf(stderr, "fuzz_qmp: %zu-byte line refused after %.1f s\n", n,
            (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool init;
    if (!init) {
        log_configure(2, LOG_LEVEL_PANIC, LOG_FORMAT_TEXT);
        signal(SIGPIPE, SIG_IGN);
        init = true;
        const char *big = getenv("FUZZ_QMP_OVERSIZED");
        if (big != NULL && strcmp(big, "1") == 0)
            oversized_line_check();
    }
    if (size < 1)
        return 0;
    struct run r;
    run_client(data + 1, size - 1, data[0], &r);
    return 0;
}
