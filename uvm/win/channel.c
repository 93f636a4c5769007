/* The HCS channel (uvm/channel.h): hvsock listeners on the VM's RuntimeId,
 * made after HcsCreateComputeSystem and before HcsStartComputeSystem
 * (hcs-documents.md §1.3, gcs-bridge.md §1.1): entropy (1), GCS log (109)
 * and the bridge (0x40000000); process stdio listens on the same transport. */
#include <stdlib.h>

#include "common/log.h"
#include "gcs/win/transport_hvsock.h"
#include "uvm/channel.h"

#define ENTROPY_PORT 1u
#define LOG_PORT 109u

struct hvsock_channel {
    struct uvm_channel base;
    uv_loop_t *loop;
    uvm_transport_factory factory;
    void *ctx;
    struct uvm_channel *inner; /* the listen channel, from prepare on */
};

static int hvsock_factory(void *ctx, uv_loop_t *loop, const char *runtime_id,
                          struct gcs_transport **out, shim_error_t **err)
{
    (void)ctx;
    GUID vm_id;
    if (gcs_guid_parse(runtime_id, &vm_id) < 0)
        return error_set(err, RPC_INTERNAL, "the compute system's RuntimeId \"%s\" is not a GUID",
                         runtime_id);
    return gcs_transport_hvsock_new(loop, &vm_id, out, err);
}

static int channel_prepare(struct uvm_channel *base, hcs_system_t *sys, shim_error_t **err)
{
    struct hvsock_channel *ch = (struct hvsock_channel *)base;
    if (ch->inner)
        return error_set(err, RPC_FAILED_PRECONDITION, "uvm: the channel is already prepared");
    json_t *props = NULL;
    if (hcs_system_properties(sys, &props, err) < 0)
        return -1;
    const char *runtime_id = json_string_value(json_object_get(props, "RuntimeId"));
    struct gcs_transport *t = NULL;
    int rc;
    if (!runtime_id)
        rc = error_set(err, RPC_FAILED_PRECONDITION,
                       "compute system \"%s\" reports no RuntimeId (needed for hvsock)",
                       hcs_system_id(sys));
    else
        rc = ch->factory(ch->ctx, ch->loop, runtime_id, &t, err);
    if (rc == 0)
        log_fields(LOG_LEVEL_DEBUG, "uvm: listening on hvsock", "id", hcs_system_id(sys),
                   "runtime_id", runtime_id, NULL);
    json_decref(props);
    if (rc < 0)
        return -1;
    struct uvm_channel_listen_options opts = {.entropy_port = ENTROPY_PORT, .log_port = LOG_PORT};
    if (uvm_channel_listen_new(ch->loop, t, &opts, &ch->inner, err) < 0)
        return -1;
    return ch->inner->ops->prepare(ch->inner, sys, err);
}

static int channel_connect(struct uvm_channel *base, hcs_system_t *sys, uvm_channel_ready_cb cb,
                           void *opaque, shim_error_t **err)
{
    struct hvsock_channel *ch = (struct hvsock_channel *)base;
    if (!ch->inner)
        return error_set(err, RPC_FAILED_PRECONDITION, "uvm: the channel was not prepared");
    return ch->inner->ops->connect(ch->inner, sys, cb, opaque, err);
}

static void channel_close(struct uvm_channel *base)
{
    struct hvsock_channel *ch = (struct hvsock_channel *)base;
    if (ch->inner)
        ch->inner->ops->close(ch->inner);
    free(ch);
}

static const struct uvm_channel_ops hvsock_channel_ops = {
    .name = "hvsock",
    .prepare = channel_prepare,
    .connect = channel_connect,
    .close = channel_close,
};

int uvm_channel_hvsock_new(uv_loop_t *loop, uvm_transport_factory factory, void *ctx,
                           struct uvm_channel **out, shim_error_t **err)
{
    struct hvsock_channel *ch = calloc(1, sizeof(*ch));
    if (!ch)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    ch->base.ops = &hvsock_channel_ops;
    ch->loop = loop;
    ch->factory = factory ? factory : hvsock_factory;
    ch->ctx = ctx;
    *out = &ch->base;
    return 0;
}

int uvm_channel_platform_new(uv_loop_t *loop, struct uvm_channel **out, shim_error_t **err)
{
    return uvm_channel_hvsock_new(loop, NULL, NULL, out, err);
}
