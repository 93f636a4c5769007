/* Event publisher (shim-contract.md §4): one FIFO queue, published to
 * containerd's ttrpc Events/Forward one at a time (each reply awaited before
 * the next send), so containerd sees events in the order they were queued.
 * While containerd is unreachable events stay queued (bounded) and are retried
 * with backoff; the ttrpc client reconnects on the next attempt. */
#ifndef SHIM_EVENTS_H
#define SHIM_EVENTS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include <protobuf-c/protobuf-c.h>

#include "common/error.h"

#define SHIM_EVENTS_QUEUE_MAX 2048
#define SHIM_EVENTS_FORWARD_TIMEOUT_MS 5000
#define SHIM_EVENTS_BACKOFF_MAX_MS 5000

struct shim_events;

/* address: TTRPC_ADDRESS (bare path or unix://); NULL or "" = events are
 * logged and dropped. ns is the -namespace value. */
int shim_events_new(uv_loop_t *loop, const char *address, const char *ns, struct shim_events **out,
                    shim_error_t **err);
/* Queues `event` (packed now, type_url = its full message name) for `topic`
 * with the current time. Drops the oldest event when the queue is full. */
void shim_events_publish(struct shim_events *ev, const char *topic, const ProtobufCMessage *event);
size_t shim_events_pending(const struct shim_events *ev);

typedef void (*shim_events_done_fn)(void *arg);
/* Waits until the queue is empty or timeout_ms passed, then closes the
 * client, frees ev and calls done(arg). Call once. */
void shim_events_close(struct shim_events *ev, uint64_t timeout_ms, shim_events_done_fn done,
                       void *arg);

#endif
