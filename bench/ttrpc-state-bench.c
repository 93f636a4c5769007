/* ttrpc round-trip benchmark against running shims' task sockets.
 *
 *   ttrpc-state-bench state COUNT WARMUP ADDRESS TASK_ID [ADDRESS TASK_ID ...]
 *       WARMUP untimed State calls per target, then COUNT timed ones per
 *       target, one call at a time (each waits for its response), going round
 *       robin over the targets so that every target sees the same machine
 *       noise. Prints "TARGET_INDEX NANOSECONDS" per timed call on stdout
 *       (targets numbered from 0 in argument order) and a summary per target
 *       on stderr.
 *   ttrpc-state-bench connect ADDRESS TASK_ID
 *       one Connect call; prints "SHIM_PID TASK_PID".
 *
 * ADDRESS is a socket path, optionally "unix://"-prefixed (the content of the
 * task bundle's `address` file). The client is raw blocking sockets plus the
 * generated protobuf-c messages, so its own cost is a write, a read and two
 * small encodes: the measured time is the shim's. Any non-OK status, short
 * read or 10 s stall is an error (exit 1). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "containerd/task/v2/shim.pb-c.h"
#include "ttrpc/ttrpc.pb-c.h"

#define TASK_SERVICE "containerd.task.v2.Task"
#define HEADER_SIZE 10
#define MAX_BODY (4u << 20)
#define IO_TIMEOUT_S 10

struct conn {
    int fd;
    uint32_t next_stream;
    uint8_t *body; /* MAX_BODY bytes, reused for every response */
};

static int dial(const char *address)
{
    const char *path = strncmp(address, "unix://", 7) == 0 ? address + 7 : address;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path)) {
        fprintf(stderr, "socket path too long: %s\n", path);
        return -1;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        perror("socket");
        return -1;
    }
    struct timeval tv = {.tv_sec = IO_TIMEOUT_S};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        fprintf(stderr, "connect %s: %s\n", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            fprintf(stderr, "write: %s\n", w < 0 ? strerror(errno) : "closed");
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int read_all(int fd, uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            fprintf(stderr, "read: %s\n", r < 0 ? strerror(errno) : "connection closed");
            return -1;
        }
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Encodes one unary request frame (header + ttrpc.Request) into a new buffer. */
static uint8_t *encode_frame(uint32_t stream, const char *method, const ProtobufCMessage *msg,
                             size_t *frame_len)
{
    size_t payload_len = protobuf_c_message_get_packed_size(msg);
    uint8_t *payload = malloc(payload_len ? payload_len : 1);
    if (!payload)
        return NULL;
    protobuf_c_message_pack(msg, payload);

    Ttrpc__Request req = TTRPC__REQUEST__INIT;
    req.service = (char *)TASK_SERVICE;
    req.method = (char *)method;
    req.payload.data = payload;
    req.payload.len = payload_len;
    size_t body_len = ttrpc__request__get_packed_size(&req);
    uint8_t *frame = malloc(HEADER_SIZE + body_len);
    if (frame) {
        put_be32(frame, (uint32_t)body_len);
        put_be32(frame + 4, stream);
        frame[8] = 1; /* Request */
        frame[9] = 0;
        ttrpc__request__pack(&req, frame + HEADER_SIZE);
        *frame_len = HEADER_SIZE + body_len;
    }
    free(payload);
    return frame;
}

/* Sends one request and waits for its response; returns the decoded
 * ttrpc.Response (caller frees) or NULL. */
static Ttrpc__Response *round_trip(struct conn *c, const uint8_t *frame, size_t frame_len)
{
    uint8_t header[HEADER_SIZE];
    uint32_t stream = get_be32(frame + 4);
    if (write_all(c->fd, frame, frame_len) < 0 || read_all(c->fd, header, HEADER_SIZE) < 0)
        return NULL;
    uint32_t len = get_be32(header);
    if (len > MAX_BODY || get_be32(header + 4) != stream || header[8] != 2) {
        fprintf(stderr, "unexpected frame: len %" PRIu32 " stream %" PRIu32 " type %u\n", len,
                get_be32(header + 4), header[8]);
        return NULL;
    }
    if (read_all(c->fd, c->body, len) < 0)
        return NULL;
    Ttrpc__Response *resp = ttrpc__response__unpack(NULL, len, c->body);
    if (!resp) {
        fprintf(stderr, "response does not decode\n");
        return NULL;
    }
    if (resp->status && resp->status->code != 0) {
        fprintf(stderr, "status %d: %s\n", resp->status->code,
                resp->status->message ? resp->status->message : "");
        ttrpc__response__free_unpacked(resp, NULL);
        return NULL;
    }
    return resp;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Encodes each request inside the timed section, as a real client does. */
static int timed_state(struct conn *c, const char *id, uint64_t *elapsed_ns)
{
    Containerd__Task__V2__StateRequest sreq = CONTAINERD__TASK__V2__STATE_REQUEST__INIT;
    sreq.id = (char *)id;
    uint64_t start = now_ns();
    size_t frame_len;
    uint8_t *frame = encode_frame(c->next_stream, "State", &sreq.base, &frame_len);
    if (!frame)
        return -1;
    c->next_stream += 2;
    Ttrpc__Response *resp = round_trip(c, frame, frame_len);
    *elapsed_ns = now_ns() - start;
    free(frame);
    if (!resp)
        return -1;
    ttrpc__response__free_unpacked(resp, NULL);
    return 0;
}

/* The first call also checks that the answer is a State of our task. */
static int check_state(struct conn *c, const char *id)
{
    Containerd__Task__V2__StateRequest sreq = CONTAINERD__TASK__V2__STATE_REQUEST__INIT;
    sreq.id = (char *)id;
    size_t frame_len;
    uint8_t *frame = encode_frame(c->next_stream, "State", &sreq.base, &frame_len);
    if (!frame)
        return -1;
    c->next_stream += 2;
    Ttrpc__Response *resp = round_trip(c, frame, frame_len);
    free(frame);
    if (!resp)
        return -1;
    Containerd__Task__V2__StateResponse *st =
        containerd__task__v2__state_response__unpack(NULL, resp->payload.len, resp->payload.data);
    int rc = 0;
    if (!st || strcmp(st->id, id) != 0) {
        fprintf(stderr, "State answer is not about task %s\n", id);
        rc = -1;
    } else {
        fprintf(stderr, "task %s: pid %" PRIu32 " status %d\n", id, st->pid, (int)st->status);
    }
    if (st)
        containerd__task__v2__state_response__free_unpacked(st, NULL);
    ttrpc__response__free_unpacked(resp, NULL);
    return rc;
}

#define MAX_TARGETS 8

struct target {
    struct conn conn;
    const char *id;
    uint64_t *lat;
};

static void summarize(const struct target *t, long count)
{
    qsort(t->lat, (size_t)count, sizeof(*t->lat), cmp_u64);
    fprintf(stderr, "%s: State x%ld: p50 %.1f us, p99 %.1f us, max %.1f us\n", t->id, count,
            t->lat[count / 2] / 1e3, t->lat[(count * 99) / 100] / 1e3, t->lat[count - 1] / 1e3);
}

static int run_state(struct target *targets, int n, long count, long warmup)
{
    int rc = 0;
    for (int t = 0; rc == 0 && t < n; t++)
        rc = check_state(&targets[t].conn, targets[t].id);
    for (long i = 0; rc == 0 && i < warmup; i++) {
        for (int t = 0; rc == 0 && t < n; t++) {
            uint64_t ignored;
            rc = timed_state(&targets[t].conn, targets[t].id, &ignored);
        }
    }
    for (long i = 0; rc == 0 && i < count; i++) {
        for (int t = 0; rc == 0 && t < n; t++)
            rc = timed_state(&targets[t].conn, targets[t].id, &targets[t].lat[i]);
    }
    if (rc != 0)
        return rc;
    for (long i = 0; i < count; i++) {
        for (int t = 0; t < n; t++)
            printf("%d %" PRIu64 "\n", t, targets[t].lat[i]);
    }
    for (int t = 0; t < n; t++)
        summarize(&targets[t], count);
    return 0;
}

static int run_connect(struct conn *c, const char *id)
{
    Containerd__Task__V2__ConnectRequest creq = CONTAINERD__TASK__V2__CONNECT_REQUEST__INIT;
    creq.id = (char *)id;
    size_t frame_len;
    uint8_t *frame = encode_frame(c->next_stream, "Connect", &creq.base, &frame_len);
    if (!frame)
        return -1;
    c->next_stream += 2;
    Ttrpc__Response *resp = round_trip(c, frame, frame_len);
    free(frame);
    if (!resp)
        return -1;
    Containerd__Task__V2__ConnectResponse *cr =
        containerd__task__v2__connect_response__unpack(NULL, resp->payload.len, resp->payload.data);
    int rc = -1;
    if (cr) {
        printf("%" PRIu32 " %" PRIu32 "\n", cr->shim_pid, cr->task_pid);
        containerd__task__v2__connect_response__free_unpacked(cr, NULL);
        rc = 0;
    } else {
        fprintf(stderr, "Connect answer does not decode\n");
    }
    ttrpc__response__free_unpacked(resp, NULL);
    return rc;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: ttrpc-state-bench state COUNT WARMUP ADDRESS TASK_ID [ADDRESS TASK_ID ...]\n"
            "       ttrpc-state-bench connect ADDRESS TASK_ID\n");
}

static long parse_count(const char *s, long max)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < 0 || v > max)
        return -1;
    return v;
}

static int main_connect(const char *address, const char *id)
{
    struct conn c = {.fd = -1, .next_stream = 1, .body = malloc(MAX_BODY)};
    int rc = -1;
    if (c.body && (c.fd = dial(address)) >= 0) {
        rc = run_connect(&c, id);
        close(c.fd);
    }
    free(c.body);
    return rc == 0 ? 0 : 1;
}

static int main_state(int argc, char **argv)
{
    long count, warmup;
    int n = (argc - 4) / 2;
    if (argc < 6 || (argc - 4) % 2 != 0 || n > MAX_TARGETS ||
        (count = parse_count(argv[2], 10000000)) <= 0 ||
        (warmup = parse_count(argv[3], 10000000)) < 0) {
        usage();
        return 2;
    }
    struct target targets[MAX_TARGETS] = {0};
    int rc = 0;
    for (int t = 0; t < n; t++) {
        targets[t].conn = (struct conn){.fd = -1, .next_stream = 1, .body = malloc(MAX_BODY)};
        targets[t].id = argv[5 + 2 * t];
        targets[t].lat = calloc((size_t)count, sizeof(uint64_t));
        if (!targets[t].conn.body || !targets[t].lat ||
            (targets[t].conn.fd = dial(argv[4 + 2 * t])) < 0)
            rc = -1;
    }
    if (rc == 0)
        rc = run_state(targets, n, count, warmup);
    for (int t = 0; t < n; t++) {
        if (targets[t].conn.fd >= 0)
            close(targets[t].conn.fd);
        free(targets[t].conn.body);
        free(targets[t].lat);
    }
    return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "connect") == 0)
        return main_connect(argv[2], argv[3]);
    if (argc >= 2 && strcmp(argv[1], "state") == 0)
        return main_state(argc, argv);
    usage();
    return 2;
}
