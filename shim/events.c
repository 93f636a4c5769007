#include "shim/events.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "containerd/services/events/ttrpc/v1/events.pb-c.h"
#include "google/protobuf/any.pb-c.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "ttrpc/ttrpc.h"

#define EVENTS_SERVICE "containerd.services.events.ttrpc.v1.Events"
#define BACKOFF_FIRST_MS 100
/* Errors other than "containerd is away" are retried a few times only. */
#define MAX_HARD_FAILURES 5

struct queued_event {
    struct queued_event *next;
    char *topic;
    uint8_t *request; /* packed ForwardRequest */
    size_t len;
    int hard_failures;
};

struct shim_events {
    uv_loop_t *loop;
    ttrpc_client_t *client; /* NULL when there is no address */
    char *ns;
    struct queued_event *head, *tail;
    size_t count;
    bool in_flight;
    uint64_t backoff_ms;
    uv_timer_t retry_timer; /* backoff between attempts */
    uv_timer_t close_timer; /* bounds shim_events_close */
    bool closing;
    shim_events_done_fn done;
    void *done_arg;
    int open_handles;
};

static void send_head(struct shim_events *ev);
static void finish_close(struct shim_events *ev);

static void queued_event_free(struct queued_event *q)
{
    free(q->topic);
    free(q->request);
    free(q);
}

static struct queued_event *pop_head(struct shim_events *ev)
{
    struct queued_event *q = ev->head;
    if (q == NULL)
        return NULL;
    ev->head = q->next;
    if (ev->head == NULL)
        ev->tail = NULL;
    ev->count--;
    return q;
}

int shim_events_new(uv_loop_t *loop, const char *address, const char *ns, struct shim_events **out,
                    shim_error_t **err)
{
    struct shim_events *ev = calloc(1, sizeof(*ev));
    if (ev == NULL)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    ev->loop = loop;
    ev->ns = strdup(ns ? ns : "");
    if (ev->ns == NULL) {
        free(ev);
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    }
    if (address != NULL && address[0] != '\0' &&
        ttrpc_client_new(loop, address, &ev->client, err) < 0) {
        free(ev->ns);
        free(ev);
        return -1;
    }
    uv_timer_init(loop, &ev->retry_timer);
    uv_timer_init(loop, &ev->close_timer);
    ev->retry_timer.data = ev;
    ev->close_timer.data = ev;
    ev->open_handles = 2;
    ev->backoff_ms = BACKOFF_FIRST_MS;
    *out = ev;
    return 0;
}

size_t shim_events_pending(const struct shim_events *ev)
{
    return ev->count;
}

static uint8_t *pack_forward(const char *ns, const char *topic, const ProtobufCMessage *event,
                             size_t *len)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    ts.seconds = now.tv_sec;
    ts.nanos = (int32_t)now.tv_nsec;

    size_t event_len = protobuf_c_message_get_packed_size(event);
    uint8_t *event_bytes = malloc(event_len ? event_len : 1);
    if (event_bytes == NULL)
        return NULL;
    protobuf_c_message_pack(event, event_bytes);
    Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
    any.type_url = (char *)event->descriptor->name; /* bare name: §4.2 */
    any.value.data = event_bytes;
    any.value.len = event_len;

    Containerd__Services__Events__Ttrpc__V1__Envelope env =
        CONTAINERD__SERVICES__EVENTS__TTRPC__V1__ENVELOPE__INIT;
    env.timestamp = &ts;
    env.namespace_ = (char *)ns;
    env.topic = (char *)topic;
    env.event = &any;
    Containerd__Services__Events__Ttrpc__V1__ForwardRequest req =
        CONTAINERD__SERVICES__EVENTS__TTRPC__V1__FORWARD_REQUEST__INIT;
    req.envelope = &env;
    *len = protobuf_c_message_get_packed_size(&req.base);
    uint8_t *buf = malloc(*len ? *len : 1);
    if (buf != NULL)
        protobuf_c_message_pack(&req.base, buf);
    free(event_bytes);
    return buf;
}

void shim_events_publish(struct shim_events *ev, const char *topic, const ProtobufCMessage *event)
{
    log_fields(LOG_LEVEL_DEBUG, "publishing event", "topic", topic, "type", event->descriptor->name,
               NULL);
    if (ev->client == NULL || ev->closing)
        return;
    struct queued_event *q = calloc(1, sizeof(*q));
    if (q != NULL) {
        q->topic = strdup(topic);
        q->request = pack_forward(ev->ns, topic, event, &q->len);
    }
    if (q == NULL || q->topic == NULL || q->request == NULL) {
        log_fields(LOG_LEVEL_ERROR, "out of memory: event dropped", "topic", topic, NULL);
        if (q != NULL)
            queued_event_free(q);
        return;
    }
    if (ev->count >= SHIM_EVENTS_QUEUE_MAX) {
        /* Never drop the one in flight (it is the head). */
        struct queued_event *victim = ev->in_flight && ev->head ? ev->head->next : ev->head;
        if (victim != NULL) {
            log_fields(LOG_LEVEL_WARN, "event queue full: dropping oldest event", "topic",
                       victim->topic, NULL);
            if (victim == ev->head) {
                queued_event_free(pop_head(ev));
            } else {
                ev->head->next = victim->next;
                if (ev->tail == victim)
                    ev->tail = ev->head;
                ev->count--;
                queued_event_free(victim);
            }
        }
    }
    if (ev->tail)
        ev->tail->next = q;
    else
        ev->head = q;
    ev->tail = q;
    ev->count++;
    if (!ev->in_flight && !uv_is_active((uv_handle_t *)&ev->retry_timer))
        send_head(ev);
}

static void on_retry(uv_timer_t *t)
{
    send_head(t->data);
}

static void schedule_retry(struct shim_events *ev)
{
    uv_timer_start(&ev->retry_timer, on_retry, ev->backoff_ms, 0);
    ev->backoff_ms *= 2;
    if (ev->backoff_ms > SHIM_EVENTS_BACKOFF_MAX_MS)
        ev->backoff_ms = SHIM_EVENTS_BACKOFF_MAX_MS;
}

static void on_forward_reply(int code, const char *message, const uint8_t *payload, size_t len,
                             void *arg)
{
    (void)payload;
    (void)len;
    struct shim_events *ev = arg;
    ev->in_flight = false;
    struct queued_event *q = ev->head;
    if (code == RPC_CANCELED && ev->closing) {
        finish_close(ev);
        return;
    }
    if (code == RPC_OK) {
        queued_event_free(pop_head(ev));
        ev->backoff_ms = BACKOFF_FIRST_MS;
    } else if (code == RPC_UNAVAILABLE || code == RPC_DEADLINE_EXCEEDED || code == RPC_CANCELED) {
        /* containerd is away (e.g. restarting): keep it and retry. */
        log_fields(LOG_LEVEL_DEBUG, "event publish failed; will retry", "topic", q->topic, "error",
                   message, NULL);
        schedule_retry(ev);
        return;
    } else if (++q->hard_failures >= MAX_HARD_FAILURES) {
        log_fields(LOG_LEVEL_ERROR, "event rejected; dropping it", "topic", q->topic, "error",
                   message, NULL);
        queued_event_free(pop_head(ev));
    } else {
        schedule_retry(ev);
        return;
    }
    if (ev->closing && ev->head == NULL) {
        finish_close(ev);
        return;
    }
    send_head(ev);
}

static void send_head(struct shim_events *ev)
{
    if (ev->in_flight || ev->head == NULL || ev->client == NULL)
        return;
    struct queued_event *q = ev->head;
    struct ttrpc_call_args args = {
        .service = EVENTS_SERVICE,
        .method = "Forward",
        .payload = q->request,
        .len = q->len,
        .timeout_ms = SHIM_EVENTS_FORWARD_TIMEOUT_MS,
    };
    shim_error_t *err = NULL;
    if (ttrpc_client_call(ev->client, &args, on_forward_reply, ev, &err) < 0) {
        log_fields(LOG_LEVEL_WARN, "event publish failed; will retry", "topic", q->topic, "error",
                   err ? err->msg : "", NULL);
        error_free(err);
        schedule_retry(ev);
        return;
    }
    ev->in_flight = true;
}

static void on_handle_closed(uv_handle_t *h)
{
    struct shim_events *ev = h->data;
    if (--ev->open_handles > 0)
        return;
    while (ev->head)
        queued_event_free(pop_head(ev));
    shim_events_done_fn done = ev->done;
    void *arg = ev->done_arg;
    free(ev->ns);
    free(ev);
    if (done)
        done(arg);
}

static void finish_close(struct shim_events *ev)
{
    if (ev->client == NULL && ev->open_handles == 0)
        return;
    if (ev->head != NULL)
        log_fields(LOG_LEVEL_WARN, "shim exiting with unpublished events", NULL);
    ttrpc_client_t *client = ev->client;
    ev->client = NULL;
    if (client != NULL && ev->in_flight) {
        /* The reply callback comes back with Canceled and finishes then. */
        ev->in_flight = false;
        ttrpc_client_close(client);
        return;
    }
    if (client != NULL)
        ttrpc_client_close(client);
    if (!uv_is_closing((uv_handle_t *)&ev->retry_timer)) {
        uv_close((uv_handle_t *)&ev->retry_timer, on_handle_closed);
        uv_close((uv_handle_t *)&ev->close_timer, on_handle_closed);
    }
}

static void on_close_timeout(uv_timer_t *t)
{
    finish_close(t->data);
}

void shim_events_close(struct shim_events *ev, uint64_t timeout_ms, shim_events_done_fn done,
                       void *arg)
{
    ev->closing = true;
    ev->done = done;
    ev->done_arg = arg;
    if (ev->head == NULL || ev->client == NULL) {
        finish_close(ev);
        return;
    }
    uv_timer_start(&ev->close_timer, on_close_timeout, timeout_ms, 0);
}
