/* `start` and `delete`, portable part: options, grouping, address, bundle
 * files, output. How a daemon comes to serve the address, and what delete
 * cleans up, is the platform's (shim/start_platform.h). */
#include "shim/start.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "containerd/task/v2/shim.pb-c.h"
#include "shim/options.h"
#include "shim/socket.h"
#include "shim/start_platform.h"
#include "ttrpc/ttrpc.h"

#define SHIM_QUERY_TIMEOUT_MS 2000

int shim_group_resolve(const struct bundle_spec *spec, const char *id, struct shim_group *out,
                       shim_error_t **err)
{
    const char *group = bundle_spec_annotation(spec, SHIM_ANNOTATION_RUNC_GROUP);
    const char *sandbox = bundle_spec_annotation(spec, SHIM_ANNOTATION_SANDBOX_ID);
    const char *type = bundle_spec_annotation(spec, SHIM_ANNOTATION_CONTAINER_TYPE);
    out->id = id;
    out->must_exist = false;
    if (sandbox != NULL && sandbox[0] == '\0')
        return error_set(err, RPC_INVALID_ARGUMENT, "annotation %s is empty",
                         SHIM_ANNOTATION_SANDBOX_ID);
    if (type != NULL) {
        if (sandbox == NULL)
            return error_set(err, RPC_INVALID_ARGUMENT, "annotation %s=%s requires %s",
                             SHIM_ANNOTATION_CONTAINER_TYPE, type, SHIM_ANNOTATION_SANDBOX_ID);
        if (strcmp(type, "sandbox") == 0) {
            if (strcmp(sandbox, id) != 0)
                return error_set(err, RPC_INVALID_ARGUMENT,
                                 "sandbox task %s has annotation %s=%s (must equal the id)", id,
                                 SHIM_ANNOTATION_SANDBOX_ID, sandbox);
        } else if (strcmp(type, "container") == 0) {
            out->must_exist = strcmp(sandbox, id) != 0;
        } else {
            return error_set(err, RPC_INVALID_ARGUMENT,
                             "annotation %s has invalid value \"%s\" (want sandbox or container)",
                             SHIM_ANNOTATION_CONTAINER_TYPE, type);
        }
    }
    if (group != NULL && group[0] != '\0')
        out->id = group;
    else if (sandbox != NULL)
        out->id = sandbox;
    return 0;
}

/* ---- start ------------------------------------------------------------------ */

static int read_all(int fd, uint8_t **data, size_t *len, shim_error_t **err)
{
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap);
    for (;;) {
        if (buf == NULL)
            return error_set(err, RPC_INTERNAL, "out of memory reading options");
        if (n == cap) {
            if (cap > SHIM_OPTIONS_MAX) {
                free(buf);
                return error_set(err, RPC_INVALID_ARGUMENT,
                                 "runtime options on stdin exceed %u bytes", SHIM_OPTIONS_MAX);
            }
            cap *= 2;
            uint8_t *grown = realloc(buf, cap);
            if (grown == NULL)
                free(buf);
            buf = grown;
            continue;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            free(buf);
            return error_set_errno(err, RPC_INTERNAL, e, "read runtime options from stdin");
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    *data = buf;
    *len = n;
    return 0;
}

static int write_out(int fd, const char *s, shim_error_t **err)
{
    size_t len = strlen(s);
    while (len > 0) {
        ssize_t w = write(fd, s, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return error_set_errno(err, RPC_INTERNAL, errno, "write address to stdout");
        s += w;
        len -= (size_t)w;
    }
    return 0;
}

struct pid_query {
    bool done;
    pid_t pid;
};

static void on_connect_reply(int code, const char *message, const uint8_t *payload, size_t len,
                             void *arg)
{
    (void)message;
    struct pid_query *q = arg;
    q->done = true;
    if (code != RPC_OK)
        return;
    Containerd__Task__V2__ConnectResponse *resp =
        containerd__task__v2__connect_response__unpack(NULL, len, payload);
    if (resp != NULL) {
        q->pid = (pid_t)resp->shim_pid;
        containerd__task__v2__connect_response__free_unpacked(resp, NULL);
    }
}

/* Asks a running (shared) shim for its pid, as hcsshim's start does for a
 * pod member; 0 when it does not answer in time. */
static pid_t query_shim_pid(const char *addr, const char *group_id)
{
    uv_loop_t loop;
    if (uv_loop_init(&loop) < 0)
        return 0;
    ttrpc_client_t *client = NULL;
    struct pid_query q = {0};
    Containerd__Task__V2__ConnectRequest req = CONTAINERD__TASK__V2__CONNECT_REQUEST__INIT;
    req.id = (char *)group_id;
    uint8_t buf[256];
    size_t len = containerd__task__v2__connect_request__get_packed_size(&req);
    if (len <= sizeof(buf) && ttrpc_client_new(&loop, addr, &client, NULL) == 0) {
        containerd__task__v2__connect_request__pack(&req, buf);
        struct ttrpc_call_args args = {.service = "containerd.task.v2.Task",
                                       .method = "Connect",
                                       .payload = buf,
                                       .len = len,
                                       .timeout_ms = SHIM_QUERY_TIMEOUT_MS};
        if (ttrpc_client_call(client, &args, on_connect_reply, &q, NULL) < 0)
            q.done = true;
        while (!q.done && uv_run(&loop, UV_RUN_ONCE) != 0) {
        }
        ttrpc_client_close(client);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return q.pid;
}

static int publish_address(const char *bundle, const char *addr, pid_t pid, shim_error_t **err)
{
    if (pid > 0) {
        char pid_text[32];
        int n = snprintf(pid_text, sizeof(pid_text), "%d", (int)pid);
        if (bundle_write_file_atomic(bundle, "shim.pid", pid_text, (size_t)n, 0644, err) < 0)
            return -1;
    }
    return bundle_write_file_atomic(bundle, "address", addr, strlen(addr), 0644, err);
}

static int start_prepare(const struct shim_cli_args *args, int in_fd, struct start_state *st,
                         shim_error_t **err)
{
    if (args->id[0] == '\0' || args->namespace_name[0] == '\0')
        return error_set(err, RPC_INVALID_ARGUMENT, "start needs -id and -namespace");
    st->bundle = args->bundle[0] ? strdup(args->bundle) : getcwd(NULL, 0);
    if (st->bundle == NULL)
        return error_set_errno(err, RPC_INTERNAL, errno, "cannot determine the bundle directory");
    if (bundle_spec_load(st->bundle, &st->spec, err) < 0)
        return -1;
    if (read_all(in_fd, &st->options, &st->options_len, err) < 0)
        return -1;
    /* Validate now so a broken Any fails start, not the daemon later. */
    struct shim_options opts;
    if (shim_options_decode(st->options, st->options_len, &opts, err) < 0)
        return error_wrap(err, "start");
    shim_options_free(&opts);
    struct shim_group group;
    if (shim_group_resolve(&st->spec, args->id, &group, err) < 0)
        return -1;
    st->group_id = group.id;
    st->addr = shim_serve_address(args->address, args->namespace_name, group.id, err);
    if (st->addr == NULL)
        return -1;
    if (group.must_exist && !shim_socket_is_live(st->addr))
        return error_set(err, RPC_FAILED_PRECONDITION,
                         "the shim of pod sandbox %s is not running (%s)", group.id, st->addr);
    return 0;
}

static void start_state_free(struct start_state *st)
{
    start_platform_release(st);
    free(st->bundle);
    bundle_spec_free(&st->spec);
    free(st->options);
    free(st->addr);
}

int shim_start(const struct shim_cli_args *args, const char *self, int in_fd, int out_fd,
               shim_error_t **err)
{
    struct start_state st = {.listen_fd = -1, .options_fd = -1, .null_fd = -1};
    bool reuse = false;
    pid_t pid = 0, reused_pid = 0;
    int ret = start_prepare(args, in_fd, &st, err);
    if (ret == 0)
        ret = start_platform_launch(args, self, &st, &reuse, &pid, err);
    if (ret == 0 && reuse)
        reused_pid = query_shim_pid(st.addr, st.group_id);
    if (ret == 0)
        ret = publish_address(st.bundle, st.addr, reuse ? reused_pid : pid, err);
    if (ret == 0)
        ret = write_out(out_fd, st.addr, err);
    if (ret < 0)
        start_platform_abort(&st, pid, reuse);
    start_state_free(&st);
    return ret;
}

/* ---- delete ----------------------------------------------------------------- */

uint8_t *shim_delete_response(size_t *len)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    ts.seconds = now.tv_sec;
    ts.nanos = (int32_t)now.tv_nsec;
    Containerd__Task__V2__DeleteResponse resp = CONTAINERD__TASK__V2__DELETE_RESPONSE__INIT;
    resp.pid = 0;
    resp.exit_status = 255; /* hcsshim's answer: the task is gone, its status unknown */
    resp.exited_at = &ts;
    *len = containerd__task__v2__delete_response__get_packed_size(&resp);
    uint8_t *buf = malloc(*len ? *len : 1);
    if (buf != NULL)
        containerd__task__v2__delete_response__pack(&resp, buf);
    return buf;
}

void start_warn(int fd, shim_error_t *e)
{
    if (e == NULL)
        return;
    char *line = NULL;
    int n = asprintf(&line, "delete: %s\n", e->msg);
    if (n > 0) {
        ssize_t ignored = write(fd, line, (size_t)n);
        (void)ignored;
    }
    free(line);
    error_free(e);
}

int shim_delete(const struct shim_cli_args *args, int out_fd, int warn_fd, shim_error_t **err)
{
    delete_platform_cleanup(args, warn_fd);
    size_t len = 0;
    uint8_t *resp = shim_delete_response(&len);
    if (resp == NULL)
        return error_set(err, RPC_INTERNAL, "out of memory");
    int ret = 0;
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(out_fd, resp + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            ret = error_set_errno(err, RPC_INTERNAL, errno, "write DeleteResponse");
            break;
        }
        off += (size_t)w;
    }
    free(resp);
    return ret;
}
