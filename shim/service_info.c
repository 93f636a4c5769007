/* Pids, Stats and Update. */
#include <stdlib.h>
#include <string.h>

#include "cgroups/v1/metrics.pb-c.h"
#include "common/log.h"
#include "containerd/task/v2/shim.pb-c.h"
#include "containerd/types/task/task.pb-c.h"
#include "google/protobuf/any.pb-c.h"
#include "shim/service_internal.h"

#define LINUX_RESOURCES_TYPE "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources"

static struct gcs_guest_connection *running_task(struct shim_service *s, const char *id,
                                                 struct shim_task **out, shim_error_t **err)
{
    struct shim_task *t;
    if (lookup_process(s, id, NULL, &t, NULL, err) < 0)
        return NULL;
    *out = t;
    if (t->init.state != SHIM_PROC_RUNNING || t->init.exit_known) {
        error_set(err, RPC_FAILED_PRECONDITION, "task %s is not running", id);
        return NULL;
    }
    struct gcs_guest_connection *c = shim_host_connection(s->host);
    if (c == NULL)
        error_set(err, RPC_UNAVAILABLE, "the guest agent is not running");
    return c;
}

/* ---- Pids --------------------------------------------------------------------------------- */

static void reply_pids(ttrpc_call_t *call, const uint32_t *pids, size_t n)
{
    Containerd__Task__V2__PidsResponse resp = CONTAINERD__TASK__V2__PIDS_RESPONSE__INIT;
    Containerd__V1__Types__ProcessInfo *infos = calloc(n ? n : 1, sizeof(*infos));
    Containerd__V1__Types__ProcessInfo **ptrs = calloc(n ? n : 1, sizeof(*ptrs));
    if (infos == NULL || ptrs == NULL) {
        free(infos);
        free(ptrs);
        ttrpc_call_fail(call, RPC_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        containerd__v1__types__process_info__init(&infos[i]);
        infos[i].pid = pids[i];
        ptrs[i] = &infos[i];
    }
    resp.n_processes = n;
    resp.processes = ptrs;
    ttrpc_call_reply_message(call, &resp.base);
    free(infos);
    free(ptrs);
}

static void on_process_list(void *opaque, int32_t hresult, const shim_error_t *err,
                            const json_t *properties)
{
    (void)hresult;
    ttrpc_call_t *call = opaque;
    if (err != NULL) {
        ttrpc_call_fail(call, err->code ? err->code : RPC_UNKNOWN, "%s", err->msg);
        return;
    }
    uint32_t *pids = NULL;
    size_t n = 0;
    shim_error_t *e = NULL;
    if (gcs_properties_process_list(properties, &pids, &n, &e) < 0) {
        fail_and_free(call, e);
        return;
    }
    reply_pids(call, pids, n);
    free(pids);
}

void service_handle_pids(ttrpc_call_t *call)
{
    struct shim_service *s = service_of(call);
    Containerd__Task__V2__PidsRequest *req = (Containerd__Task__V2__PidsRequest *)unpack_or_fail(
        call, &containerd__task__v2__pids_request__descriptor);
    if (req == NULL)
        return;
    struct shim_task *t = NULL;
    shim_error_t *err = NULL;
    struct gcs_guest_connection *c = running_task(s, req->id, &t, &err);
    if (c == NULL && t != NULL && err->code == RPC_FAILED_PRECONDITION) {
        error_free(err); /* nothing runs: an empty list */
        reply_pids(call, NULL, 0);
    } else if (c == NULL || gcs_guest_get_properties(c, t->id, GCS_PROPERTY_PROCESS_LIST,
                                                     on_process_list, call, &err) < 0) {
        fail_and_free(call, err);
    }
    containerd__task__v2__pids_request__free_unpacked(req, NULL);
}

/* ---- Stats -------------------------------------------------------------------------------- */

/* LCOWMetrics is containerd's cgroup v1 Metrics as JSON with the proto field
 * names as keys, so it maps onto the message by its descriptor. */
static ProtobufCMessage *message_from_json(const ProtobufCMessageDescriptor *d, const json_t *obj);

static bool set_field(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, const json_t *v)
{
    char *base = (char *)m;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        if (f->type != PROTOBUF_C_TYPE_UINT64 || !json_is_array(v))
            return false; /* only per_cpu-style lists are needed */
        size_t n = json_array_size(v);
        uint64_t *vals = calloc(n ? n : 1, sizeof(*vals));
        if (vals == NULL)
            return false;
        for (size_t i = 0; i < n; i++)
            vals[i] = (uint64_t)json_integer_value(json_array_get(v, i));
        *(size_t *)(base + f->quantifier_offset) = n;
        *(uint64_t **)(base + f->offset) = vals;
        return true;
    }
    switch (f->type) {
    case PROTOBUF_C_TYPE_UINT64:
        if (json_is_integer(v))
            *(uint64_t *)(base + f->offset) = (uint64_t)json_integer_value(v);
        return true;
    case PROTOBUF_C_TYPE_UINT32:
        if (json_is_integer(v))
            *(uint32_t *)(base + f->offset) = (uint32_t)json_integer_value(v);
        return true;
    case PROTOBUF_C_TYPE_BOOL:
        *(protobuf_c_boolean *)(base + f->offset) = json_is_true(v);
        return true;
    case PROTOBUF_C_TYPE_MESSAGE:
        if (json_is_object(v))
            *(ProtobufCMessage **)(base + f->offset) = message_from_json(f->descriptor, v);
        return true;
    default:
        return true; /* strings and others are not in the subset we report */
    }
}

static ProtobufCMessage *message_from_json(const ProtobufCMessageDescriptor *d, const json_t *obj)
{
    ProtobufCMessage *m = calloc(1, d->sizeof_message);
    if (m == NULL)
        return NULL;
    d->message_init(m);
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const json_t *v = json_object_get(obj, f->name);
        if (v != NULL)
            set_field(m, f, v);
    }
    return m;
}

static void on_statistics(void *opaque, int32_t hresult, const shim_error_t *err,
                          const json_t *properties)
{
    (void)hresult;
    ttrpc_call_t *call = opaque;
    if (err != NULL) {
        ttrpc_call_fail(call, err->code ? err->code : RPC_UNKNOWN, "%s", err->msg);
        return;
    }
    json_t *empty = json_object();
    const json_t *lcow = json_object_get(properties, "LCOWMetrics");
    if (!json_is_object(lcow))
        lcow = empty;
    ProtobufCMessage *metrics =
        lcow ? message_from_json(&io__containerd__cgroups__v1__metrics__descriptor, lcow) : NULL;
    json_decref(empty);
    size_t len = metrics ? protobuf_c_message_get_packed_size(metrics) : 0;
    uint8_t *buf = metrics ? malloc(len ? len : 1) : NULL;
    if (buf == NULL) {
        if (metrics)
            protobuf_c_message_free_unpacked(metrics, NULL);
        ttrpc_call_fail(call, RPC_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    protobuf_c_message_pack(metrics, buf);
    /* Built with calloc/malloc like unpacked messages: free_unpacked releases it. */
    protobuf_c_message_free_unpacked(metrics, NULL);
    Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
    any.type_url = (char *)io__containerd__cgroups__v1__metrics__descriptor.name;
    any.value.data = buf;
    any.value.len = len;
    Containerd__Task__V2__StatsResponse resp = CONTAINERD__TASK__V2__STATS_RESPONSE__INIT;
    resp.stats = &any;
    ttrpc_call_reply_message(call, &resp.base);
    free(buf);
}

void service_handle_stats(ttrpc_call_t *call)
{
    struct shim_service *s = service_of(call);
    Containerd__Task__V2__StatsRequest *req = (Containerd__Task__V2__StatsRequest *)unpack_or_fail(
        call, &containerd__task__v2__stats_request__descriptor);
    if (req == NULL)
        return;
    struct shim_task *t = NULL;
    shim_error_t *err = NULL;
    struct gcs_guest_connection *c = running_task(s, req->id, &t, &err);
    if (c == NULL ||
        gcs_guest_get_properties(c, t->id, GCS_PROPERTY_STATISTICS, on_statistics, call, &err) < 0)
        fail_and_free(call, err);
    containerd__task__v2__stats_request__free_unpacked(req, NULL);
}

/* ---- Update ------------------------------------------------------------------------------- */

static void on_updated(void *opaque, int32_t hresult, const shim_error_t *err)
{
    (void)hresult;
    ttrpc_call_t *call = opaque;
    if (err != NULL)
        ttrpc_call_fail(call, err->code ? err->code : RPC_UNKNOWN, "%s", err->msg);
    else
        ttrpc_call_reply(call, NULL, 0);
}

static int update(ttrpc_call_t *call, struct shim_service *s,
                  const Containerd__Task__V2__UpdateTaskRequest *req, shim_error_t **err)
{
    if (req->resources == NULL || req->resources->value.len == 0)
        return error_set(err, RPC_INVALID_ARGUMENT, "update: resources are required");
    if (strstr(req->resources->type_url, "WindowsResources") != NULL)
        return error_set(err, RPC_INVALID_ARGUMENT,
                         "update: WindowsResources do not apply to a Linux container");
    struct shim_task *t = NULL;
    struct gcs_guest_connection *c = running_task(s, req->id, &t, err);
    if (c == NULL)
        return -1;
    json_error_t jerr;
    json_t *res =
        json_loadb((const char *)req->resources->value.data, req->resources->value.len, 0, &jerr);
    if (!json_is_object(res)) {
        json_decref(res);
        return error_set(err, RPC_INVALID_ARGUMENT, "update: resources (%s) are not JSON: %s",
                         req->resources->type_url, jerr.text);
    }
    json_t *settings = json_pack("{s:o}", "Linux", res);
    int rc = settings ? gcs_guest_modify_settings(c, t->id, "ContainerConstraints", "Update",
                                                  settings, on_updated, call, err)
                      : error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    json_decref(settings);
    return rc;
}

void service_handle_update(ttrpc_call_t *call)
{
    struct shim_service *s = service_of(call);
    Containerd__Task__V2__UpdateTaskRequest *req =
        (Containerd__Task__V2__UpdateTaskRequest *)unpack_or_fail(
            call, &containerd__task__v2__update_task_request__descriptor);
    if (req == NULL)
        return;
    shim_error_t *err = NULL;
    if (update(call, s, req, &err) < 0)
        fail_and_free(call, err);
    containerd__task__v2__update_task_request__free_unpacked(req, NULL);
}
