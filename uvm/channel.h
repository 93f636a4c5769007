/* How the host reaches the guest agent of a utility VM: the platform part of
 * uvm/ (the rest of uvm/uvm.c is shared).
 *
 *   unix (uvm/unix/channel.c)  the QEMU backend: the bridge is the "gcs"
 *                              virtio-serial port (unix-dir transport), process
 *                              stdio is multiplexed over the "stdio" port
 *                              (gcs/mux.h); the host connects after the start.
 *   listen (uvm/channel_listen.c)  the host listens on a "vsock port"
 *                              transport before the start and the guest dials
 *                              in: the bridge on GCS_BRIDGE_PORT, stdio on the
 *                              same transport; optionally the entropy (1) and
 *                              log (109) ports as hcsshim serves them.
 *   win (uvm/win/channel.c)    listen over hvsock (gcs/win/transport_hvsock.c),
 *                              the VM id being the RuntimeId of the created
 *                              compute system.
 *
 * Order (uvm.c): hcs_system_create -> prepare -> hcs_system_start ->
 * (started) connect -> ready callback -> NegotiateProtocol. */
#ifndef UVM_CHANNEL_H
#define UVM_CHANNEL_H

#include <stdint.h>
#include <uv.h>

#include "common/error.h"
#include "gcs/transport.h"
#include "hcs/compute.h"

struct uvm_channel;

/* err NULL: `bridge` is the connected bridge stream (owned by the receiver)
 * and `stdio` is where the host listens for process stdio (owned by the
 * channel: valid until uvm_channel_close; close the guest connection first).
 * err set: bridge and stdio are NULL. */
typedef void (*uvm_channel_ready_cb)(void *opaque, uv_stream_t *bridge, struct gcs_transport *stdio,
                                     const shim_error_t *err);

struct uvm_channel_ops {
    const char *name;
    /* The system is created, not started: set up what must exist before the
     * guest runs (listeners). */
    int (*prepare)(struct uvm_channel *ch, hcs_system_t *sys, shim_error_t **err);
    /* The system started: deliver the bridge. On 0, cb runs exactly once,
     * later (never inside this call), unless the channel is closed first. */
    int (*connect)(struct uvm_channel *ch, hcs_system_t *sys, uvm_channel_ready_cb cb, void *opaque,
                   shim_error_t **err);
    /* No callback runs afterwards; frees itself once its handles closed. */
    void (*close)(struct uvm_channel *ch);
};

struct uvm_channel {
    const struct uvm_channel_ops *ops;
};

/* The platform's channel (unix: QEMU ports; win: hvsock). */
int uvm_channel_platform_new(uv_loop_t *loop, struct uvm_channel **out, shim_error_t **err);

struct uvm_channel_listen_options {
    uint32_t entropy_port; /* 0 = none; else accept, write 512 random bytes, close */
    uint32_t log_port;     /* 0 = none; else accept and log the guest's lines */
};
/* The host listens on `transport` (taken over, also on error). */
int uvm_channel_listen_new(uv_loop_t *loop, struct gcs_transport *transport,
                           const struct uvm_channel_listen_options *opts, struct uvm_channel **out,
                           shim_error_t **err);

/* Windows: a transport for the VM whose RuntimeId is `runtime_id` (the GUID
 * as text); the default is gcs_transport_hvsock_new. Tests inject a fake. */
typedef int (*uvm_transport_factory)(void *ctx, uv_loop_t *loop, const char *runtime_id,
                                     struct gcs_transport **out, shim_error_t **err);
/* Windows only: listen over the transport `factory` makes at prepare time
 * (NULL = hvsock), with hcsshim's entropy and log ports. */
int uvm_channel_hvsock_new(uv_loop_t *loop, uvm_transport_factory factory, void *ctx,
                           struct uvm_channel **out, shim_error_t **err);

#endif
