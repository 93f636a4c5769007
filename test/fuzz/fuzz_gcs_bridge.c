/* libFuzzer: bytes -> GCS frame decoder (fed in data-chosen chunk sizes) ->
 * every message parser for the frame's type, then the matching builder on
 * what was parsed (round trip must not crash or leak); then the same bytes
 * as a guest's replies to a host connection with seven calls outstanding
 * (every call must end, nothing may leak). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gcs/bridge_frame.h"
#include "common/log.h"
#include "gcs/bridge_json.h"
#include "gcs/bridge_msg.h"
#include "gcs/guest_connection.h"
#include "gcs/transport.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

static void drop(json_t *v)
{
    json_decref(v);
}

static void parse_request(const json_t *body, unsigned rpc)
{
    shim_error_t *err = NULL;
    switch (rpc) {
    case GCS_RPC_NEGOTIATE_PROTOCOL: {
        struct gcs_negotiate_request r;
        if (gcs_negotiate_request_parse(body, &r, &err) == 0)
            drop(gcs_negotiate_request_build(&r));
        break;
    }
    case GCS_RPC_CREATE: {
        struct gcs_create_request r;
        if (gcs_create_request_parse(body, &r, &err) == 0) {
            struct gcs_container_config cc;
            if (gcs_container_config_parse(r.container_config, &cc, &err) == 0)
                drop(gcs_container_config_build(&cc));
            drop(gcs_create_request_build(&r));
            gcs_create_request_clear(&r);
        }
        break;
    }
    case GCS_RPC_EXECUTE_PROCESS: {
        struct gcs_execute_process_request r;
        if (gcs_execute_process_request_parse(body, &r, &err) == 0) {
            struct gcs_process_parameters p;
            if (gcs_process_parameters_parse(r.process_parameters, &p, &err) == 0)
                drop(gcs_process_parameters_build(&p));
            drop(gcs_execute_process_request_build(&r));
            gcs_execute_process_request_clear(&r);
        }
        break;
    }
    case GCS_RPC_WAIT_FOR_PROCESS: {
        struct gcs_wait_process_request r;
        if (gcs_wait_process_request_parse(body, &r, &err) == 0)
            drop(gcs_wait_process_request_build(&r));
        break;
    }
    case GCS_RPC_SIGNAL_PROCESS: {
        struct gcs_signal_process_request r;
        if (gcs_signal_process_request_parse(body, &r, &err) == 0)
            drop(gcs_signal_process_request_build(&r));
        break;
    }
    case GCS_RPC_RESIZE_CONSOLE: {
        struct gcs_resize_console_request r;
        if (gcs_resize_console_request_parse(body, &r, &err) == 0)
            drop(gcs_resize_console_request_build(&r));
        break;
    }
    case GCS_RPC_GET_PROPERTIES: {
        struct gcs_get_properties_request r;
        if (gcs_get_properties_request_parse(body, &r, &err) == 0) {
            drop(gcs_get_properties_request_build(&r));
            gcs_get_properties_request_clear(&r);
        }
        break;
    }
    case GCS_RPC_MODIFY_SETTINGS: {
        struct gcs_modify_settings_request r;
        if (gcs_modify_settings_request_parse(body, &r, &err) == 0) {
            drop(gcs_modify_settings_request_build(&r));
            struct gcs_mapped_virtual_disk d;
            struct gcs_scsi_device s;
            struct gcs_mapped_directory m;
            struct gcs_vpmem_device v;
            struct gcs_combined_layers c;
            if (gcs_mapped_virtual_disk_parse(r.settings, &d, NULL) == 0)
                drop(gcs_mapped_virtual_disk_build(&d));
            if (gcs_scsi_device_parse(r.settings, &s, NULL) == 0)
                drop(gcs_scsi_device_build(&s));
            if (gcs_mapped_directory_parse(r.settings, &m, NULL) == 0)
                drop(gcs_mapped_directory_build(&m));
            if (gcs_vpmem_device_parse(r.settings, &v, NULL) == 0)
                drop(gcs_vpmem_device_build(&v));
            if (gcs_combined_layers_parse(r.settings, &c, NULL) == 0) {
                for (size_t i = 0; i <= c.n_layers; i++)
                    (void)gcs_combined_layers_path(&c, i);
            }
        }
        break;
    }
    default: {
        struct gcs_request_base b;
        if (gcs_request_base_parse(body, &b, &err) == 0)
            drop(gcs_request_base_build(&b));
    }
    }
    error_free(err);
}

static void parse_response(const json_t *body, unsigned rpc)
{
    shim_error_t *err = NULL;
    struct gcs_response_base b;
    if (gcs_response_base_parse(body, &b, &err) == 0) {
        size_t i;
        json_t *rec;
        json_array_foreach(b.error_records, i, rec)
        {
            struct gcs_error_record r;
            gcs_error_record_parse(rec, &r, NULL);
        }
        drop(gcs_response_base_build(&b));
        (void)gcs_hresult_name(b.result);
        (void)gcs_hresult_to_rpc_code(b.result);
    }
    error_free(err);
    err = NULL;
    switch (rpc) {
    case GCS_RPC_NEGOTIATE_PROTOCOL: {
        struct gcs_negotiate_response r;
        if (gcs_negotiate_response_parse(body, &r, &err) == 0)
            drop(gcs_negotiate_response_build(&r));
        break;
    }
    case GCS_RPC_CREATE: {
        struct gcs_create_response r;
        if (gcs_create_response_parse(body, &r, &err) == 0)
            drop(gcs_create_response_build(&r));
        break;
    }
    case GCS_RPC_EXECUTE_PROCESS: {
        struct gcs_execute_process_response r;
        if (gcs_execute_process_response_parse(body, &r, &err) == 0)
            drop(gcs_execute_process_response_build(&r));
        break;
    }
    case GCS_RPC_WAIT_FOR_PROCESS: {
        struct gcs_wait_process_response r;
        if (gcs_wait_process_response_parse(body, &r, &err) == 0)
            drop(gcs_wait_process_response_build(&r));
        break;
    }
    case GCS_RPC_GET_PROPERTIES: {
        struct gcs_get_properties_response r;
        if (gcs_get_properties_response_parse(body, &r, &err) == 0) {
            uint32_t *pids = NULL;
            size_t n = 0;
            if (r.properties && gcs_properties_process_list(r.properties, &pids, &n, NULL) == 0) {
                drop(gcs_properties_process_list_build(pids, n));
                free(pids);
            }
            drop(gcs_get_properties_response_build(&r));
            gcs_get_properties_response_clear(&r);
        }
        break;
    }
    case GCS_RPC_DUMP_STACKS: {
        struct gcs_dump_stacks_response r;
        if (gcs_dump_stacks_response_parse(body, &r, &err) == 0)
            drop(gcs_dump_stacks_response_build(&r));
        break;
    }
    default:
        break;
    }
    error_free(err);
}

static void handle(const struct gcs_message *m)
{
    unsigned rpc = gcs_type_rpc(m->type);
    (void)gcs_type_name(m->type);
    switch (gcs_type_kind(m->type)) {
    case GCS_KIND_REQUEST:
        parse_request(m->body, rpc);
        break;
    case GCS_KIND_RESPONSE:
        parse_response(m->body, rpc);
        break;
    default: {
        struct gcs_container_notification n;
        shim_error_t *err = NULL;
        if (gcs_container_notification_parse(m->body, &n, &err) == 0) {
            drop(gcs_container_notification_build(&n));
            gcs_container_notification_clear(&n);
        }
        error_free(err);
    }
    }
    /* the frame re-encodes */
    uint8_t *buf = NULL;
    size_t len = 0;
    if (gcs_frame_encode(m->type, m->id, m->body, &buf, &len, NULL) == 0)
        free(buf);
}

/* ---- the host connection reading the same bytes as the guest's replies ---- */

static void done_cb(void *o, int32_t hr, const shim_error_t *err)
{
    ++*(int *)o;
    (void)hr, (void)err;
}
static void negotiate_cb(void *o, int32_t hr, const shim_error_t *err,
                         const struct gcs_capabilities *caps)
{
    ++*(int *)o;
    (void)hr, (void)err, (void)caps;
}
static void wait_cb(void *o, int32_t hr, const shim_error_t *err, uint32_t code)
{
    ++*(int *)o;
    (void)hr, (void)err, (void)code;
}
static void props_cb(void *o, int32_t hr, const shim_error_t *err, const json_t *props)
{
    ++*(int *)o;
    (void)hr, (void)err, (void)props;
}
static void stacks_cb(void *o, int32_t hr, const shim_error_t *err, const char *stacks)
{
    ++*(int *)o;
    (void)hr, (void)err, (void)stacks;
}
static void exec_cb(void *o, int32_t hr, const shim_error_t *err, struct gcs_process_io *io)
{
    ++*(int *)o;
    (void)hr, (void)err, (void)io;
}
static void raw_cb(void *o, int32_t hr, const shim_error_t *err, const json_t *body)
{
    ++*(int *)o;
    (void)hr, (void)err, (void)body;
}
static void exit_cb(void *o, const struct gcs_container_notification *n)
{
    (void)o, (void)n;
}

/* Calls with IDs 0..6 are outstanding; the input arrives as the guest's
 * replies, then EOF. Every call must end and nothing may leak. */
static void fuzz_connection(const uint8_t *data, size_t size)
{
    static uv_loop_t loop;
    static bool loop_ready;
    if (!loop_ready) {
        uv_loop_init(&loop);
        log_configure(2, LOG_LEVEL_PANIC, LOG_FORMAT_TEXT);
        loop_ready = true;
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return;
    uv_stream_t *bridge = NULL;
    if (gcs_stream_from_fd(&loop, sv[0], &bridge, NULL) < 0) {
        close(sv[0]);
        close(sv[1]);
        return;
    }
    struct gcs_guest_callbacks cbs = {.container_exit = exit_cb};
    struct gcs_guest_connection *c = NULL;
    if (gcs_guest_connection_new(&loop, bridge, NULL, NULL, &cbs, NULL, &c, NULL) == 0) {
        json_t *params = json_object();
        json_t *body = json_pack("{s:s}", "ContainerId", "c");
        int sent = 0, ended = 0;
        sent += gcs_guest_negotiate(c, negotiate_cb, &ended, NULL) == 0;
        sent += gcs_guest_wait_process(c, "c", 1, GCS_WAIT_INFINITE, wait_cb, &ended, NULL) == 0;
        sent += gcs_guest_get_properties(c, "c", GCS_PROPERTY_PROCESS_LIST, props_cb, &ended,
                                         NULL) == 0;
        sent += gcs_guest_dump_stacks(c, stacks_cb, &ended, NULL) == 0;
        sent += gcs_guest_execute_process(c, "c", params, 0, exec_cb, &ended, NULL) == 0;
        sent +=
            gcs_guest_call_raw(c, GCS_TYPE_UPDATE_CONTAINER, body, true, raw_cb, &ended, NULL) == 0;
        sent += gcs_guest_start_container(c, "c", done_cb, &ended, NULL) == 0;
        json_decref(params);
        json_decref(body);
        /* non-blocking: beyond the socket buffer the rest is simply dropped */
        fcntl(sv[1], F_SETFL, O_NONBLOCK);
        size_t off = 0;
        while (off < size) {
            ssize_t n = write(sv[1], data + off, size - off);
            if (n <= 0)
                break;
            off += (size_t)n;
        }
        shutdown(sv[1], SHUT_WR);
        uv_run(&loop, UV_RUN_DEFAULT); /* ends once EOF failed the bridge */
        if (ended != sent || gcs_guest_connection_alive(c))
            abort(); /* a call never ended, or EOF did not kill the bridge */
        gcs_guest_connection_close(c);
    }
    close(sv[1]);
    uv_run(&loop, UV_RUN_DEFAULT);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    /* first byte: chunk size (0 = all at once); a small max keeps runs fast */
    size_t chunk = data[0] ? data[0] : size;
    data++;
    size--;
    struct gcs_frame_decoder d;
    gcs_frame_decoder_init(&d, 1u << 20);
    for (size_t off = 0; off < size; off += chunk) {
        size_t n = size - off < chunk ? size - off : chunk;
        if (gcs_frame_decoder_push(&d, data + off, n, NULL) < 0)
            break;
        for (;;) {
            struct gcs_message m;
            shim_error_t *err = NULL;
            int rc = gcs_frame_decoder_next(&d, &m, &err);
            error_free(err);
            if (rc == GCS_DECODE_MESSAGE)
                handle(&m);
            gcs_message_clear(&m);
            if (rc == GCS_DECODE_NEED_MORE || rc == GCS_DECODE_FATAL)
                break;
        }
    }
    gcs_frame_decoder_free(&d);
    fuzz_connection(data, size);
    return 0;
}
