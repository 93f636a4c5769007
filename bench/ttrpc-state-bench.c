/* ttrpc round-trip benchmark against running shims' task sockets.
 *
 *   ttrpc-state-bench state [-b BATCH] [-s SETTLE] [-p PAUSE_US] [-t] COUNT WARMUP
 *                     ADDRESS TASK_ID [ADDRESS TASK_ID ...]
 *       WARMUP untimed State calls per target, then COUNT timed ones per
 *       target, one call at a time (each waits for its response). The timed
 *       calls go round robin over the targets in batches of BATCH calls
 *       (default 1: call by call), so that every target sees the same machine
 *       noise; with several targets each batch starts with SETTLE untimed
 *       calls (default 0) and, with -p, PAUSE_US of idle time. Prints
 *       "TARGET_INDEX NANOSECONDS" per timed call on stdout (targets numbered
 *       from 0 in argument order; -t adds the CLOCK_MONOTONIC start time in ns,
 *       to match slow calls with `perf sched record -k CLOCK_MONOTONIC`) and a
 *       summary per target on stderr.
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

/* One request and its response on the connection. When timed is set, it
 * gets [start, elapsed] of encoding plus the round trip, as a real client
 * spends them. */
static Ttrpc__Response *call(struct conn *c, const char *method, const ProtobufCMessage *msg,
                             uint64_t timed[2])
{
    uint64_t start = now_ns();
    size_t frame_len;
    uint8_t *frame = encode_frame(c->next_stream, method, msg, &frame_len);
    if (!frame)
        return NULL;
    c->next_stream += 2;
    Ttrpc__Response *resp = round_trip(c, frame, frame_len);
    if (timed != NULL) {
        timed[0] = start;
        timed[1] = now_ns() - start;
    }
    free(frame);
    return resp;
}

/* Encodes each request inside the timed section, as a real client does. */
static int timed_state(struct conn *c, const char *id, uint64_t *elapsed_ns, uint64_t *start_ns)
{
    Containerd__Task__V2__StateRequest sreq = CONTAINERD__TASK__V2__STATE_REQUEST__INIT;
    sreq.id = (char *)id;
    uint64_t timed[2] = {0, 0};
    Ttrpc__Response *resp = call(c, "State", &sreq.base, timed);
    *start_ns = timed[0];
    *elapsed_ns = timed[1];
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
    Ttrpc__Response *resp = call(c, "State", &sreq.base, NULL);
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
    uint64_t *start; /* CLOCK_MONOTONIC ns at the start of each timed call */
};

struct state_opts {
    long count, warmup;
    long batch;    /* consecutive calls to one target before switching (1 = call by call) */
    long settle;   /* untimed calls after each switch to a target */
    long pause_us; /* idle time before each batch (lets the previous target go quiet) */
    int timestamps;
};

static void summarize(const struct target *t, long count)
{
    qsort(t->lat, (size_t)count, sizeof(*t->lat), cmp_u64);
    fprintf(stderr, "%s: State x%ld: p50 %.1f us, p99 %.1f us, max %.1f us\n", t->id, count,
            t->lat[count / 2] / 1e3, t->lat[(count * 99) / 100] / 1e3, t->lat[count - 1] / 1e3);
}

/* Untimed calls: the warm-up before the first batch and the settle calls
 * after each switch of target. */
static int untimed_calls(struct target *t, long n)
{
    int rc = 0;
    for (long i = 0; rc == 0 && i < n; i++) {
        uint64_t ignored, ignored_start;
        rc = timed_state(&t->conn, t->id, &ignored, &ignored_start);
    }
    return rc;
}

/* Timed calls [from, to) of target t. */
static int timed_calls(struct target *t, long from, long to)
{
    int rc = 0;
    for (long i = from; rc == 0 && i < to; i++)
        rc = timed_state(&t->conn, t->id, &t->lat[i], &t->start[i]);
    return rc;
}

static void print_samples(const struct target *targets, int n, const struct state_opts *o)
{
    for (long i = 0; i < o->count; i++) {
        for (int t = 0; t < n; t++) {
            if (o->timestamps)
                printf("%d %" PRIu64 " %" PRIu64 "\n", t, targets[t].lat[i], targets[t].start[i]);
            else
                printf("%d %" PRIu64 "\n", t, targets[t].lat[i]);
        }
    }
}

static void pause_us(long us)
{
    struct timespec ts = {.tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

/* Batches of o->batch timed calls go round robin over the targets, so that
 * every target sees the same machine noise; with more than one target each
 * batch starts with o->settle untimed calls. */
static int run_state(struct target *targets, int n, const struct state_opts *o)
{
    int rc = 0;
    for (int t = 0; rc == 0 && t < n; t++)
        rc = check_state(&targets[t].conn, targets[t].id);
    for (long i = 0; rc == 0 && i < o->warmup; i++) {
        for (int t = 0; rc == 0 && t < n; t++)
            rc = untimed_calls(&targets[t], 1);
    }
    for (long from = 0; rc == 0 && from < o->count; from += o->batch) {
        long to = from + o->batch < o->count ? from + o->batch : o->count;
        for (int t = 0; rc == 0 && t < n; t++) {
            if (o->pause_us > 0)
                pause_us(o->pause_us);
            rc = untimed_calls(&targets[t], n > 1 ? o->settle : 0);
            if (rc == 0)
                rc = timed_calls(&targets[t], from, to);
        }
    }
    if (rc != 0)
        return rc;
    print_samples(targets, n, o);
    for (int t = 0; t < n; t++)
        summarize(&targets[t], o->count);
    return 0;
}

static int run_connect(struct conn *c, const char *id)
{
    Containerd__Task__V2__ConnectRequest creq = CONTAINERD__TASK__V2__CONNECT_REQUEST__INIT;
    creq.id = (char *)id;
    Ttrpc__Response *resp = call(c, "Connect", &creq.base, NULL);
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
    fprintf(stderr, "usage: ttrpc-state-bench state [-b BATCH] [-s SETTLE] [-p PAUSE_US] [-t] "
                    "COUNT WARMUP ADDRESS TASK_ID "
                    "[ADDRESS TASK_ID ...]\n"
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

/* Options before COUNT: -b BATCH, -s SETTLE, -t (timestamps). Returns the
 * index of COUNT in argv, or -1. */
static int parse_state_opts(int argc, char **argv, struct state_opts *o)
{
    *o = (struct state_opts){.batch = 1};
    int i = 2;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "-t") == 0) {
            o->timestamps = 1;
        } else if (strcmp(argv[i], "-b") == 0 && i + 1 < argc) {
            if ((o->batch = parse_count(argv[++i], 10000000)) <= 0)
                return -1;
        } else if (strcmp(argv[i], "-p") == 0 && i + 1 < argc) {
            if ((o->pause_us = parse_count(argv[++i], 10000000)) < 0)
                return -1;
        } else if (strcmp(argv[i], "-s") == 0 && i + 1 < argc) {
            if ((o->settle = parse_count(argv[++i], 10000000)) < 0)
                return -1;
        } else {
            return -1;
        }
    }
    if (i + 4 > argc || (argc - i - 2) % 2 != 0 || (argc - i - 2) / 2 > MAX_TARGETS ||
        (o->count = parse_count(argv[i], 10000000)) <= 0 ||
        (o->warmup = parse_count(argv[i + 1], 10000000)) < 0)
        return -1;
    return i;
}

static int main_state(int argc, char **argv)
{
    struct state_opts o;
    int first = parse_state_opts(argc, argv, &o);
    if (first < 0) {
        usage();
        return 2;
    }
    int n = (argc - first - 2) / 2;
    struct target targets[MAX_TARGETS] = {0};
    int rc = 0;
    for (int t = 0; t < n; t++) {
        targets[t].conn = (struct conn){.fd = -1, .next_stream = 1, .body = malloc(MAX_BODY)};
        targets[t].id = argv[first + 3 + 2 * t];
        targets[t].lat = calloc((size_t)o.count, sizeof(uint64_t));
        targets[t].start = calloc((size_t)o.count, sizeof(uint64_t));
        if (!targets[t].conn.body || !targets[t].lat || !targets[t].start ||
            (targets[t].conn.fd = dial(argv[first + 2 + 2 * t])) < 0)
            rc = -1;
    }
    if (rc == 0)
        rc = run_state(targets, n, &o);
    for (int t = 0; t < n; t++) {
        if (targets[t].conn.fd >= 0)
            close(targets[t].conn.fd);
        free(targets[t].conn.body);
        free(targets[t].lat);
        free(targets[t].start);
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
