/* shim-probe: helper for test/integration/shim_cli.sh.
 *
 *   shim-probe decode-delete            DeleteResponse on stdin ->
 *                                       "pid=P exit_status=S exited_at=SECS"
 *   shim-probe runtimeoptions PATH      serialized Any{runtimeoptions.v1.Options} on stdout
 *   shim-probe runhcs-options LEVEL     serialized Any{containerd.runhcs.v1.Options{log_level}}
 *   shim-probe call ADDRESS METHOD ID   one containerd.task.v2.Task call (Connect, Shutdown,
 *                                       or any other method with {id}); prints
 *                                       "code=N" and, for Connect,
 *                                       "shim_pid=P task_pid=T version=V"
 * Exit 0 when the operation worked (a call got any answer), else 1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "containerd/task/v2/shim.pb-c.h"
#include "google/protobuf/any.pb-c.h"
#include "runhcs/options.pb-c.h"
#include "runtimeoptions/v1/api.pb-c.h"
#include "ttrpc/ttrpc.h"

static int decode_delete(void)
{
    uint8_t buf[4096];
    size_t len = fread(buf, 1, sizeof(buf), stdin);
    Containerd__Task__V2__DeleteResponse *resp =
        containerd__task__v2__delete_response__unpack(NULL, len, buf);
    if (resp == NULL || len == 0) {
        fprintf(stderr, "not a DeleteResponse (%zu bytes)\n", len);
        return 1;
    }
    printf("pid=%u exit_status=%u exited_at=%lld\n", resp->pid, resp->exit_status,
           resp->exited_at ? (long long)resp->exited_at->seconds : 0LL);
    containerd__task__v2__delete_response__free_unpacked(resp, NULL);
    return 0;
}

static int write_any(const char *type_url, const ProtobufCMessage *msg)
{
    Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
    any.type_url = (char *)type_url;
    any.value.len = protobuf_c_message_get_packed_size(msg);
    any.value.data = malloc(any.value.len + 1);
    protobuf_c_message_pack(msg, any.value.data);
    size_t len = google__protobuf__any__get_packed_size(&any);
    uint8_t *out = malloc(len);
    google__protobuf__any__pack(&any, out);
    int ok = fwrite(out, 1, len, stdout) == len;
    free(out);
    free(any.value.data);
    return ok ? 0 : 1;
}

struct call_result {
    bool done;
    int code;
    char *message;
    uint8_t *payload;
    size_t len;
};

static void on_reply(int code, const char *message, const uint8_t *payload, size_t len, void *arg)
{
    struct call_result *r = arg;
    r->done = true;
    r->code = code;
    r->message = strdup(message ? message : "");
    r->payload = malloc(len + 1);
    if (len > 0)
        memcpy(r->payload, payload, len);
    r->len = len;
}

static size_t pack_request(const char *method, const char *id, uint8_t **out)
{
    /* Every Task request we send has `id` as field 1; Shutdown uses ShutdownRequest. */
    Containerd__Task__V2__ShutdownRequest shutdown = CONTAINERD__TASK__V2__SHUTDOWN_REQUEST__INIT;
    Containerd__Task__V2__ConnectRequest connect = CONTAINERD__TASK__V2__CONNECT_REQUEST__INIT;
    ProtobufCMessage *msg = &connect.base;
    connect.id = (char *)id;
    if (strcmp(method, "Shutdown") == 0) {
        shutdown.id = (char *)id;
        msg = &shutdown.base;
    }
    size_t len = protobuf_c_message_get_packed_size(msg);
    *out = malloc(len + 1);
    protobuf_c_message_pack(msg, *out);
    return len;
}

static int call(const char *address, const char *method, const char *id)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    ttrpc_client_t *client = NULL;
    shim_error_t *err = NULL;
    if (ttrpc_client_new(&loop, address, &client, &err) < 0) {
        fprintf(stderr, "client: %s\n", err->msg);
        return 1;
    }
    uint8_t *payload = NULL;
    size_t len = pack_request(method, id, &payload);
    struct ttrpc_call_args args = {.service = "containerd.task.v2.Task",
                                   .method = method,
                                   .payload = payload,
                                   .len = len,
                                   .timeout_ms = 10000};
    struct call_result r = {0};
    if (ttrpc_client_call(client, &args, on_reply, &r, &err) < 0) {
        fprintf(stderr, "call: %s\n", err->msg);
        return 1;
    }
    while (!r.done && uv_run(&loop, UV_RUN_ONCE) != 0) {
    }
    ttrpc_client_close(client);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    free(payload);
    printf("code=%d message=\"%s\"\n", r.code, r.message ? r.message : "");
    if (r.code == 0 && strcmp(method, "Connect") == 0) {
        Containerd__Task__V2__ConnectResponse *resp =
            containerd__task__v2__connect_response__unpack(NULL, r.len, r.payload);
        if (resp == NULL)
            return 1;
        printf("shim_pid=%u task_pid=%u version=%s\n", resp->shim_pid, resp->task_pid,
               resp->version);
        containerd__task__v2__connect_response__free_unpacked(resp, NULL);
    }
    int rc = r.done && r.code != RPC_UNAVAILABLE && r.code != RPC_DEADLINE_EXCEEDED ? 0 : 1;
    free(r.message);
    free(r.payload);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "decode-delete") == 0)
        return decode_delete();
    if (argc == 3 && strcmp(argv[1], "runtimeoptions") == 0) {
        Runtimeoptions__V1__Options o = RUNTIMEOPTIONS__V1__OPTIONS__INIT;
        o.config_path = argv[2];
        return write_any("runtimeoptions.v1.Options", &o.base);
    }
    if (argc == 3 && strcmp(argv[1], "runhcs-options") == 0) {
        Containerd__Runhcs__V1__Options o = CONTAINERD__RUNHCS__V1__OPTIONS__INIT;
        o.log_level = argv[2];
        return write_any("containerd.runhcs.v1.Options", &o.base);
    }
    if (argc == 5 && strcmp(argv[1], "call") == 0)
        return call(argv[2], argv[3], argv[4]);
    fprintf(stderr, "usage: shim-probe decode-delete | runtimeoptions PATH | "
                    "runhcs-options LEVEL | call ADDRESS METHOD ID\n");
    return 2;
}
