/* ttrpc-forward --address SOCKPATH --namespace NS --topic TOPIC --container-id ID
 *               [--id EXECID] [--exit-status N] [--count N] [--timeout-ms N]
 *
 * Publishes task events through our ttrpc client with
 * containerd.services.events.ttrpc.v1.Events/Forward, the way the shim does
 * (spec §4.2). --count N sends N events at once (all in flight). Exits 0 when
 * every reply is OK, else prints "forward failed: code=<n> <message>" and
 * exits 1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "containerd/events/task.pb-c.h"
#include "containerd/services/events/ttrpc/v1/events.pb-c.h"
#include "google/protobuf/any.pb-c.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "ttrpc/ttrpc.h"

struct options {
    const char *address;
    const char *ns;
    const char *topic;
    const char *container_id;
    const char *exec_id;
    uint32_t exit_status;
    long count;
    long timeout_ms;
};

struct run {
    ttrpc_client_t *client;
    long outstanding;
    int failed_code;
    char *failed_message;
};

static void usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s --address SOCKPATH --namespace NS --topic TOPIC --container-id ID\n"
            "       [--id EXECID] [--exit-status N] [--count N] [--timeout-ms N]\n",
            argv0);
}

static int parse_args(int argc, char **argv, struct options *o)
{
    *o = (struct options){.exec_id = "", .count = 1, .timeout_ms = 5000};
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (strcmp(k, "--address") == 0)
            o->address = v;
        else if (strcmp(k, "--namespace") == 0)
            o->ns = v;
        else if (strcmp(k, "--topic") == 0)
            o->topic = v;
        else if (strcmp(k, "--container-id") == 0)
            o->container_id = v;
        else if (strcmp(k, "--id") == 0)
            o->exec_id = v;
        else if (strcmp(k, "--exit-status") == 0)
            o->exit_status = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(k, "--count") == 0)
            o->count = strtol(v, NULL, 10);
        else if (strcmp(k, "--timeout-ms") == 0)
            o->timeout_ms = strtol(v, NULL, 10);
        else
            return -1;
    }
    if (argc % 2 != 1 || !o->address || !o->ns || !o->topic || !o->container_id || o->count < 1 ||
        o->timeout_ms < 0)
        return -1;
    return 0;
}

static Google__Protobuf__Timestamp now_timestamp(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    Google__Protobuf__Timestamp t = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    t.seconds = ts.tv_sec;
    t.nanos = (int32_t)ts.tv_nsec;
    return t;
}

/* Packs the event message for the topic into *any (type_url = bare name). */
static int pack_event(const struct options *o, Google__Protobuf__Timestamp *now,
                      Google__Protobuf__Any *any)
{
    char *cid = (char *)o->container_id;
    char *exec_id = (char *)o->exec_id;
    Containerd__Events__TaskExit exit_ev = CONTAINERD__EVENTS__TASK_EXIT__INIT;
    Containerd__Events__TaskCreate create_ev = CONTAINERD__EVENTS__TASK_CREATE__INIT;
    Containerd__Events__TaskStart start_ev = CONTAINERD__EVENTS__TASK_START__INIT;
    Containerd__Events__TaskDelete delete_ev = CONTAINERD__EVENTS__TASK_DELETE__INIT;
    Containerd__Events__TaskOOM oom_ev = CONTAINERD__EVENTS__TASK_OOM__INIT;
    ProtobufCMessage *msg;
    if (strcmp(o->topic, "/tasks/exit") == 0) {
        exit_ev.container_id = cid;
        exit_ev.id = *exec_id ? exec_id : cid;
        exit_ev.exit_status = o->exit_status;
        exit_ev.exited_at = now;
        msg = &exit_ev.base;
    } else if (strcmp(o->topic, "/tasks/create") == 0) {
        create_ev.container_id = cid;
        msg = &create_ev.base;
    } else if (strcmp(o->topic, "/tasks/start") == 0) {
        start_ev.container_id = cid;
        msg = &start_ev.base;
    } else if (strcmp(o->topic, "/tasks/delete") == 0) {
        delete_ev.container_id = cid;
        delete_ev.id = exec_id;
        delete_ev.exit_status = o->exit_status;
        delete_ev.exited_at = now;
        msg = &delete_ev.base;
    } else if (strcmp(o->topic, "/tasks/oom") == 0) {
        oom_ev.container_id = cid;
        msg = &oom_ev.base;
    } else {
        fprintf(stderr, "ttrpc-forward: unsupported topic %s\n", o->topic);
        return -1;
    }
    any->type_url = (char *)msg->descriptor->name;
    any->value.len = protobuf_c_message_get_packed_size(msg);
    any->value.data = malloc(any->value.len + 1);
    if (any->value.data == NULL)
        return -1;
    protobuf_c_message_pack(msg, any->value.data);
    return 0;
}

/* Builds the serialized ForwardRequest into *out (malloc'ed). */
static int build_request(const struct options *o, uint8_t **out, size_t *len)
{
    Google__Protobuf__Timestamp now = now_timestamp();
    Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
    if (pack_event(o, &now, &any) < 0)
        return -1;
    Containerd__Services__Events__Ttrpc__V1__Envelope env =
        CONTAINERD__SERVICES__EVENTS__TTRPC__V1__ENVELOPE__INIT;
    env.timestamp = &now;
    env.namespace_ = (char *)o->ns;
    env.topic = (char *)o->topic;
    env.event = &any;
    Containerd__Services__Events__Ttrpc__V1__ForwardRequest req =
        CONTAINERD__SERVICES__EVENTS__TTRPC__V1__FORWARD_REQUEST__INIT;
    req.envelope = &env;
    *len = protobuf_c_message_get_packed_size(&req.base);
    *out = malloc(*len + 1);
    if (*out != NULL)
        protobuf_c_message_pack(&req.base, *out);
    free(any.value.data);
    return *out ? 0 : -1;
}

static void on_reply(int code, const char *message, const uint8_t *payload, size_t len, void *arg)
{
    (void)payload;
    (void)len;
    struct run *run = arg;
    if (code != 0 && run->failed_message == NULL) {
        run->failed_code = code;
        run->failed_message = strdup(message);
    }
    if (--run->outstanding == 0)
        ttrpc_client_close(run->client);
}

int main(int argc, char **argv)
{
    struct options o;
    struct run run = {0};
    shim_error_t *err = NULL;
    uint8_t *payload = NULL;
    size_t len = 0;
    if (parse_args(argc, argv, &o) < 0) {
        usage(argv[0]);
        return 2;
    }
    uv_loop_t *loop = uv_default_loop();
    if (build_request(&o, &payload, &len) < 0)
        return 2;
    if (ttrpc_client_new(loop, o.address, &run.client, &err) < 0) {
        fprintf(stderr, "forward failed: code=%d %s\n", err->code, err->msg);
        return 1;
    }
    struct ttrpc_call_args args = {.service = "containerd.services.events.ttrpc.v1.Events",
                                   .method = "Forward",
                                   .payload = payload,
                                   .len = len,
                                   .timeout_ms = (uint64_t)o.timeout_ms};
    for (long i = 0; i < o.count; i++) {
        if (ttrpc_client_call(run.client, &args, on_reply, &run, &err) < 0) {
            fprintf(stderr, "forward failed: code=%d %s\n", err->code, err->msg);
            return 1;
        }
        run.outstanding++;
    }
    free(payload);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    if (run.failed_message != NULL) {
        fprintf(stderr, "forward failed: code=%d %s\n", run.failed_code, run.failed_message);
        free(run.failed_message);
        return 1;
    }
    return 0;
}
