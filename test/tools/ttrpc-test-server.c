/* ttrpc-test-server --socket PATH [--debug]
 *
 * Serves ttrpc.interop.v1.Test with our ttrpc server, for interop and
 * integration tests:
 *   Echo(StringValue) -> the same StringValue
 *   Sleep(Int64Value ms) -> Empty after that many ms (later calls overtake it)
 *   Fail(Int64Value code) -> error {code, "requested failure"}
 *   Metadata(Empty) -> StringValue "key=value" lines, sorted, joined by "\n"
 *   Deadline(Empty) -> Int64Value of the received timeout_nano
 *   Big(Int64Value n) -> BytesValue of n bytes 'x' (too big -> ResourceExhausted)
 * Prints "ready" once listening; exits 0 after a graceful shutdown on
 * SIGTERM/SIGINT. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "common/log.h"
#include "google/protobuf/empty.pb-c.h"
#include "google/protobuf/wrappers.pb-c.h"
#include "ttrpc/ttrpc.h"

/* Big() refuses to even allocate beyond this; the server's 4 MiB reply limit
 * is what tests exercise below it. */
#define BIG_ALLOC_MAX (64 << 20)
#define SHUTDOWN_TIMEOUT_MS 5000

struct app {
    uv_loop_t *loop;
    ttrpc_server_t *server;
    uv_signal_t sigterm;
    uv_signal_t sigint;
    int exit_code;
};

static ProtobufCMessage *unpack_or_fail(ttrpc_call_t *call, const ProtobufCMessageDescriptor *d)
{
    shim_error_t *err = NULL;
    ProtobufCMessage *msg = ttrpc_call_unpack(call, d, &err);
    if (msg == NULL) {
        ttrpc_call_fail_error(call, err);
        error_free(err);
    }
    return msg;
}

static void handle_echo(ttrpc_call_t *call)
{
    ProtobufCMessage *msg = unpack_or_fail(call, &google__protobuf__string_value__descriptor);
    if (msg == NULL)
        return;
    ttrpc_call_reply_message(call, msg);
    protobuf_c_message_free_unpacked(msg, NULL);
}

static void on_sleep_timer_closed(uv_handle_t *handle)
{
    free(handle);
}

static void on_sleep_done(uv_timer_t *timer)
{
    ttrpc_call_t *call = timer->data;
    uv_close((uv_handle_t *)timer, on_sleep_timer_closed);
    ttrpc_call_reply_message(call, NULL);
}

static void on_sleep_cancelled(ttrpc_call_t *call, void *arg)
{
    on_sleep_done(arg);
    (void)call;
}

static void handle_sleep(ttrpc_call_t *call)
{
    Google__Protobuf__Int64Value *ms = (Google__Protobuf__Int64Value *)unpack_or_fail(
        call, &google__protobuf__int64_value__descriptor);
    if (ms == NULL)
        return;
    int64_t delay = ms->value < 0 ? 0 : ms->value;
    protobuf_c_message_free_unpacked(&ms->base, NULL);
    struct app *app = ttrpc_call_user_data(call);
    uv_timer_t *timer = malloc(sizeof(*timer));
    if (timer == NULL) {
        ttrpc_call_fail(call, 8, "out of memory");
        return;
    }
    uv_timer_init(app->loop, timer);
    timer->data = call;
    ttrpc_call_on_cancel(call, on_sleep_cancelled, timer);
    uv_timer_start(timer, on_sleep_done, (uint64_t)delay, 0);
}

static void handle_fail(ttrpc_call_t *call)
{
    Google__Protobuf__Int64Value *code = (Google__Protobuf__Int64Value *)unpack_or_fail(
        call, &google__protobuf__int64_value__descriptor);
    if (code == NULL)
        return;
    int c = (int)code->value;
    protobuf_c_message_free_unpacked(&code->base, NULL);
    ttrpc_call_fail(call, c, "requested failure");
}

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void handle_metadata(ttrpc_call_t *call)
{
    size_t n = ttrpc_call_metadata_count(call);
    char **lines = calloc(n + 1, sizeof(*lines));
    size_t total = 1;
    for (size_t i = 0; lines != NULL && i < n; i++) {
        const char *key, *value;
        ttrpc_call_metadata_at(call, i, &key, &value);
        if (asprintf(&lines[i], "%s=%s", key, value) < 0)
            lines[i] = NULL;
        total += lines[i] ? strlen(lines[i]) + 1 : 0;
    }
    char *joined = lines ? calloc(1, total) : NULL;
    if (joined == NULL) {
        free(lines);
        ttrpc_call_fail(call, 8, "out of memory");
        return;
    }
    qsort(lines, n, sizeof(*lines), compare_strings);
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            strcat(joined, "\n");
        strcat(joined, lines[i] ? lines[i] : "");
        free(lines[i]);
    }
    free(lines);
    Google__Protobuf__StringValue reply = GOOGLE__PROTOBUF__STRING_VALUE__INIT;
    reply.value = joined;
    ttrpc_call_reply_message(call, &reply.base);
    free(joined);
}

static void handle_deadline(ttrpc_call_t *call)
{
    Google__Protobuf__Int64Value reply = GOOGLE__PROTOBUF__INT64_VALUE__INIT;
    reply.value = ttrpc_call_timeout_nano(call);
    ttrpc_call_reply_message(call, &reply.base);
}

static void handle_big(ttrpc_call_t *call)
{
    Google__Protobuf__Int64Value *n = (Google__Protobuf__Int64Value *)unpack_or_fail(
        call, &google__protobuf__int64_value__descriptor);
    if (n == NULL)
        return;
    int64_t size = n->value < 0 ? 0 : n->value;
    protobuf_c_message_free_unpacked(&n->base, NULL);
    if (size > BIG_ALLOC_MAX) {
        ttrpc_call_fail(call, 8, "message length %lld exceed maximum message size of %u",
                        (long long)size, TTRPC_MAX_MESSAGE);
        return;
    }
    Google__Protobuf__BytesValue reply = GOOGLE__PROTOBUF__BYTES_VALUE__INIT;
    reply.value.len = (size_t)size;
    reply.value.data = malloc((size_t)size + 1);
    if (reply.value.data == NULL) {
        ttrpc_call_fail(call, 8, "out of memory");
        return;
    }
    memset(reply.value.data, 'x', (size_t)size);
    ttrpc_call_reply_message(call, &reply.base);
    free(reply.value.data);
}

static const struct ttrpc_method test_methods[] = {
    {"Echo", handle_echo},         {"Sleep", handle_sleep},       {"Fail", handle_fail},
    {"Metadata", handle_metadata}, {"Deadline", handle_deadline}, {"Big", handle_big},
};

static void on_signal_closed(uv_handle_t *handle)
{
    (void)handle;
}

static void on_server_done(void *arg)
{
    struct app *app = arg;
    uv_close((uv_handle_t *)&app->sigterm, on_signal_closed);
    uv_close((uv_handle_t *)&app->sigint, on_signal_closed);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    struct app *app = sig->data;
    log_info("ttrpc-test-server: signal %d, shutting down", signum);
    uv_signal_stop(&app->sigterm);
    uv_signal_stop(&app->sigint);
    ttrpc_server_shutdown(app->server, SHUTDOWN_TIMEOUT_MS, on_server_done, app);
}

static const char *parse_args(int argc, char **argv)
{
    const char *socket_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc)
            socket_path = argv[++i];
        else if (strcmp(argv[i], "--debug") == 0)
            log_configure(2, LOG_LEVEL_DEBUG, LOG_FORMAT_TEXT);
        else
            return NULL;
    }
    return socket_path;
}

int main(int argc, char **argv)
{
    struct app app = {.loop = uv_default_loop()};
    shim_error_t *err = NULL;
    const char *socket_path = parse_args(argc, argv);
    if (socket_path == NULL) {
        fprintf(stderr, "usage: %s --socket PATH [--debug]\n", argv[0]);
        return 2;
    }
    struct ttrpc_service service = {.name = "ttrpc.interop.v1.Test",
                                    .methods = test_methods,
                                    .n_methods = sizeof(test_methods) / sizeof(test_methods[0]),
                                    .user_data = &app};
    if (ttrpc_server_new(app.loop, NULL, &app.server, &err) < 0 ||
        ttrpc_server_register(app.server, &service, &err) < 0 ||
        ttrpc_server_listen(app.server, socket_path, &err) < 0) {
        fprintf(stderr, "ttrpc-test-server: %s\n", err ? err->msg : "failed");
        error_free(err);
        return 1;
    }
    uv_signal_init(app.loop, &app.sigterm);
    uv_signal_init(app.loop, &app.sigint);
    app.sigterm.data = app.sigint.data = &app;
    uv_signal_start(&app.sigterm, on_signal, SIGTERM);
    uv_signal_start(&app.sigint, on_signal, SIGINT);
    printf("ready\n");
    fflush(stdout);
    uv_run(app.loop, UV_RUN_DEFAULT);
    uv_loop_close(app.loop);
    return app.exit_code;
}
