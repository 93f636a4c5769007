/* Linux utility VM lifecycle on top of the compute service (hcs/compute.h)
 * and the GCS host connection (gcs/guest_connection.h), shared by every
 * platform; how the host reaches the agent is the channel's job
 * (uvm/channel.h). See uvm/uvm.h. */
#include "uvm/uvm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "gcs/bridge_msg.h"
#include "hcs/doc_modify.h"
#include "uvm/channel.h"

#define SCSI_LUNS 64

enum uvm_phase { PHASE_CREATED, PHASE_STARTING, PHASE_RUNNING, PHASE_FAILED };

struct uvm_disk {
    struct uvm_disk *next;
    struct uvm *u;
    char *host_path;
    char *guest_path;
    unsigned lun;
    bool read_only;
    int refs;
    bool ready;                  /* attached and mounted */
    struct disk_waiter *waiters; /* adds waiting for the first attach */
};

struct disk_waiter {
    struct disk_waiter *next;
    uvm_disk_cb cb;
    void *opaque;
};

struct uvm {
    uv_loop_t *loop;
    char *id;
    char *document;
    struct hcs_backend_options backend;
    uint64_t boot_timeout_ms, rpc_timeout_ms;
    struct uvm_callbacks cbs;
    void *opaque;
    hcs_system_t *sys;
    enum uvm_phase phase;
    uvm_done_cb start_cb;
    void *start_opaque;
    uint64_t t_start;
    uv_timer_t *boot_timer;
    struct uvm_channel *channel; /* how the host reaches the agent; NULL once dropped */
    bool channel_connecting;     /* connect accepted, ready callback due */
    struct gcs_guest_connection *conn;
    struct uvm_disk *disks;
    bool lun_used[SCSI_LUNS];
    unsigned mount_counter;
    bool paused;
    bool closed;
    int pending; /* handles/callbacks that still reference u */
    int vm_pid;
    bool awaiting_exit;  /* closed while the VM ran: the system is closed after its exit */
    uvm_done_cb term_cb; /* uvm_terminate */
    void *term_opaque;
    uv_timer_t *term_timer;
};

static void uvm_maybe_free(struct uvm *u);

/* ---- failure and teardown ------------------------------------------------------------------ */

static void stop_boot_timer(struct uvm *u)
{
    if (!u->boot_timer)
        return;
    uv_timer_stop(u->boot_timer);
    uv_close((uv_handle_t *)u->boot_timer, (uv_close_cb)free);
    u->boot_timer = NULL;
}

static void drop_connections(struct uvm *u)
{
    if (u->conn) {
        gcs_guest_connection_close(u->conn);
        u->conn = NULL;
    }
    /* The connection may still use the stdio transport until its handles
     * close; the channel's transports fail their streams, which is safe. */
    if (u->channel) {
        if (u->channel_connecting) {
            u->channel_connecting = false;
            u->pending--;
        }
        u->channel->ops->close(u->channel);
        u->channel = NULL;
    }
}

static void terminate_vm(struct uvm *u)
{
    if (!u->sys)
        return;
    enum hcs_state st = hcs_system_state(u->sys);
    if (st == HCS_STATE_STARTING || st == HCS_STATE_RUNNING)
        hcs_system_terminate(u->sys, NULL, NULL, NULL);
}

/* Something broke: the VM is ended; the start or the owner hears about it once. */
static void uvm_fail(struct uvm *u, const shim_error_t *why)
{
    if (u->closed || u->phase == PHASE_FAILED)
        return;
    enum uvm_phase was = u->phase;
    u->phase = PHASE_FAILED;
    stop_boot_timer(u);
    terminate_vm(u);
    drop_connections(u);
    if (was == PHASE_STARTING && u->start_cb) {
        uvm_done_cb cb = u->start_cb;
        u->start_cb = NULL;
        cb(u->start_opaque, why);
    } else if (was == PHASE_RUNNING && u->cbs.lost) {
        u->cbs.lost(u->opaque, why);
    }
}

static void uvm_failf(struct uvm *u, int code, const char *fmt, const char *detail)
{
    shim_error_t *e = NULL;
    if (u->closed || u->phase == PHASE_FAILED)
        return;
    error_set(&e, code, fmt, detail ? detail : "");
    log_warn("uvm %s: %s", u->id, e->msg);
    uvm_fail(u, e);
    error_free(e);
}

/* ---- start --------------------------------------------------------------------------------- */

static void on_vm_exit(hcs_system_t *sys, const struct hcs_exit_status *st, void *opaque)
{
    struct uvm *u = opaque;
    (void)sys;
    if (u->closed) {
        /* QEMU fails every operation before this; under HCS an operation may
         * still complete after the exit: uvm_maybe_free closes the system
         * once none of ours is left in it. */
        u->awaiting_exit = false;
        uvm_maybe_free(u);
        return;
    }
    if (u->term_cb) {
        uvm_done_cb cb = u->term_cb;
        u->term_cb = NULL;
        cb(u->term_opaque, NULL);
        return;
    }
    char detail[512];
    const char *log = hcs_system_log_path(u->sys);
    snprintf(detail, sizeof(detail), "%s (exit code %lld, signal %d%s%s)%s%s",
             hcs_exit_type_name(st->type), (long long)st->exit_code, st->term_signal,
             st->reason ? ", " : "", st->reason ? st->reason : "", log ? "; see " : "",
             log ? log : "");
    uvm_failf(u, RPC_UNAVAILABLE, "utility VM exited: %s", detail);
}

static void on_boot_timeout(uv_timer_t *t)
{
    struct uvm *u = t->data;
    char detail[256];
    const char *log = u->sys ? hcs_system_log_path(u->sys) : NULL;
    snprintf(detail, sizeof(detail), "%.1f s; VM log %s", (double)u->boot_timeout_ms / 1000.0,
             log ? log : "-");
    uvm_failf(u, RPC_DEADLINE_EXCEEDED, "guest agent not ready within the boot timeout of %s",
              detail);
}

static void on_container_exit(void *opaque, const struct gcs_container_notification *n)
{
    struct uvm *u = opaque;
    if (u->cbs.container_exit && !u->closed)
        u->cbs.container_exit(u->opaque, n);
}

static void on_bridge_closed(void *opaque, const shim_error_t *err)
{
    struct uvm *u = opaque;
    uvm_failf(u, RPC_UNAVAILABLE, "guest agent bridge lost: %s", err ? err->msg : "closed");
}

static void on_negotiated(void *opaque, int32_t hresult, const shim_error_t *err,
                          const struct gcs_capabilities *caps)
{
    struct uvm *u = opaque;
    (void)caps;
    u->pending--;
    if (u->closed) {
        uvm_maybe_free(u);
        return;
    }
    if (u->phase != PHASE_STARTING)
        return;
    if (err || hresult != 0) {
        uvm_failf(u, RPC_UNAVAILABLE, "NegotiateProtocol with the guest agent failed: %s",
                  err ? err->msg : "bad HRESULT");
        return;
    }
    stop_boot_timer(u);
    u->phase = PHASE_RUNNING;
    log_info("uvm %s: guest agent ready after %.3f s", u->id,
             (double)(uv_hrtime() - u->t_start) / 1e9);
    uvm_done_cb cb = u->start_cb;
    u->start_cb = NULL;
    if (cb)
        cb(u->start_opaque, NULL);
}

static void on_channel_ready(void *opaque, uv_stream_t *bridge, struct gcs_transport *stdio,
                             const shim_error_t *err)
{
    struct uvm *u = opaque;
    shim_error_t *e = NULL;
    u->channel_connecting = false;
    u->pending--;
    if (u->closed || u->phase != PHASE_STARTING) {
        gcs_stream_close(bridge);
        uvm_maybe_free(u);
        return;
    }
    if (err) {
        uvm_failf(u, err->code, "%s", err->msg);
        return;
    }
    struct gcs_guest_connection_config cfg = {.rpc_timeout_ms = u->rpc_timeout_ms};
    struct gcs_guest_callbacks cbs = {.container_exit = on_container_exit,
                                      .bridge_closed = on_bridge_closed};
    if (gcs_guest_connection_new(u->loop, bridge, stdio, &cfg, &cbs, u, &u->conn, &e) < 0 ||
        gcs_guest_negotiate(u->conn, on_negotiated, u, &e) < 0) {
        uvm_failf(u, RPC_INTERNAL, "bridge: %s", e->msg);
        error_free(e);
        return;
    }
    u->pending++;
}

static void on_vm_started(hcs_system_t *sys, const shim_error_t *err, void *opaque)
{
    struct uvm *u = opaque;
    shim_error_t *e = NULL;
    u->pending--;
    if (u->closed) {
        uvm_maybe_free(u);
        return;
    }
    if (err) {
        uvm_failf(u, RPC_INTERNAL, "starting the utility VM: %s", err->msg);
        return;
    }
    if (u->phase != PHASE_STARTING || !u->channel)
        return;
    json_t *props = NULL;
    if (hcs_system_properties(sys, &props, NULL) == 0) {
        u->vm_pid = (int)json_integer_value(json_object_get(props, "ProcessId"));
        json_decref(props);
    }
    if (u->channel->ops->connect(u->channel, sys, on_channel_ready, u, &e) < 0) {
        uvm_failf(u, e->code, "%s", e->msg);
        error_free(e);
        return;
    }
    u->channel_connecting = true;
    u->pending++;
}

int uvm_create(uv_loop_t *loop, const struct uvm_config *cfg, const struct uvm_callbacks *cbs,
               void *opaque, struct uvm **out, shim_error_t **err)
{
    hcs_system_t *given_sys = cfg ? cfg->system : NULL;
    struct uvm_channel *given_channel = cfg ? cfg->channel : NULL;
    if (!cfg || !cfg->id || (!cfg->document && !cfg->system)) {
        if (given_sys)
            hcs_system_close(given_sys);
        if (given_channel)
            given_channel->ops->close(given_channel);
        return error_set(err, RPC_INVALID_ARGUMENT, "uvm: id and document are required");
    }
    struct uvm *u = calloc(1, sizeof(*u));
    if (!u || (!given_channel && uvm_channel_platform_new(loop, &given_channel, err) < 0)) {
        if (given_sys)
            hcs_system_close(given_sys);
        if (!u)
            error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
        free(u);
        return -1;
    }
    u->channel = given_channel;
    u->sys = given_sys;
    u->loop = loop;
    u->id = strdup(cfg->id);
    u->boot_timeout_ms = cfg->boot_timeout_ms ? cfg->boot_timeout_ms : UVM_DEFAULT_BOOT_TIMEOUT_MS;
    u->rpc_timeout_ms = cfg->rpc_timeout_ms;
    if (cbs)
        u->cbs = *cbs;
    u->opaque = opaque;
    u->backend = cfg->backend;
    if (!u->id || (!u->sys && hcs_system_create(loop, cfg->id, cfg->document, &cfg->backend,
                                                &u->sys, err) < 0)) {
        if (!u->id)
            error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
        if (u->sys)
            hcs_system_close(u->sys);
        u->channel->ops->close(u->channel);
        free(u->id);
        free(u);
        return -1;
    }
    hcs_system_set_exit_callback(u->sys, on_vm_exit, u);
    *out = u;
    return 0;
}

int uvm_start(struct uvm *u, uvm_done_cb cb, void *opaque, shim_error_t **err)
{
    if (u->phase != PHASE_CREATED)
        return error_set(err, RPC_FAILED_PRECONDITION, "uvm %s was already started", u->id);
    u->boot_timer = malloc(sizeof(*u->boot_timer));
    if (!u->boot_timer)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    u->t_start = uv_hrtime();
    /* Listeners (hvsock) must exist before the guest runs. */
    if (u->channel->ops->prepare(u->channel, u->sys, err) < 0 ||
        hcs_system_start(u->sys, on_vm_started, u, err) < 0) {
        free(u->boot_timer);
        u->boot_timer = NULL;
        return -1;
    }
    u->pending++;
    uv_timer_init(u->loop, u->boot_timer);
    u->boot_timer->data = u;
    uv_timer_start(u->boot_timer, on_boot_timeout, u->boot_timeout_ms, 0);
    u->phase = PHASE_STARTING;
    u->start_cb = cb;
    u->start_opaque = opaque;
    return 0;
}

struct gcs_guest_connection *uvm_guest(struct uvm *u)
{
    return u->phase == PHASE_RUNNING ? u->conn : NULL;
}

const char *uvm_id(const struct uvm *u)
{
    return u->id;
}

int uvm_vm_pid(struct uvm *u)
{
    return u->vm_pid;
}

bool uvm_running(const struct uvm *u)
{
    return u->phase == PHASE_RUNNING;
}

bool uvm_paused(const struct uvm *u)
{
    return u->paused;
}

const char *uvm_log_path(const struct uvm *u)
{
    return u->sys ? hcs_system_log_path(u->sys) : NULL;
}

/* ---- disks --------------------------------------------------------------------------------- */

static struct uvm_disk *disk_find(const struct uvm *u, const char *host_path)
{
    for (struct uvm_disk *d = u->disks; d; d = d->next)
        if (strcmp(d->host_path, host_path) == 0)
            return d;
    return NULL;
}

int uvm_disk_refs(const struct uvm *u, const char *host_path)
{
    const struct uvm_disk *d = disk_find(u, host_path);
    return d ? d->refs : 0;
}

static void disk_unlink(struct uvm *u, struct uvm_disk *d)
{
    for (struct uvm_disk **pp = &u->disks; *pp; pp = &(*pp)->next) {
        if (*pp == d) {
            *pp = d->next;
            break;
        }
    }
}

static void disk_free(struct uvm_disk *d)
{
    free(d->host_path);
    free(d->guest_path);
    free(d);
}

/* The host part (hcs-documents.md §6.2): controller 0, the disk's LUN. */
static char *scsi_request(const struct uvm_disk *d, bool add)
{
    struct hcs_scsi_attachment a = {.lun = d->lun, .path = d->host_path, .read_only = d->read_only};
    json_t *req = add ? hcs_scsi_attach_request(&a) : hcs_scsi_detach_request(0, d->lun);
    char *s = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    return s;
}

/* Answers every waiter of a first attach (err NULL = attached). */
static void disk_answer(struct uvm_disk *d, const shim_error_t *err)
{
    struct disk_waiter *w = d->waiters;
    d->waiters = NULL;
    bool closed = d->u->closed;
    while (w) {
        struct disk_waiter *next = w->next;
        if (!closed)
            w->cb(w->opaque, err, err ? NULL : d->guest_path);
        free(w);
        w = next;
    }
}

struct disk_op {
    struct uvm *u;
    struct uvm_disk *d;
    uvm_done_cb cb; /* remove */
    void *opaque;
    shim_error_t *first_err;
};

static void disk_add_failed(struct disk_op *op, const shim_error_t *err)
{
    struct uvm_disk *d = op->d;
    disk_unlink(op->u, d);
    op->u->lun_used[d->lun] = false;
    disk_answer(d, err);
    disk_free(d);
}

static void on_rollback_detached(hcs_system_t *sys, const shim_error_t *err, void *opaque)
{
    struct disk_op *op = opaque;
    (void)sys;
    (void)err;
    struct uvm *u = op->u;
    u->pending--;
    disk_add_failed(op, op->first_err);
    error_free(op->first_err);
    free(op);
    uvm_maybe_free(u);
}

static void on_disk_mounted(void *opaque, int32_t hresult, const shim_error_t *err)
{
    struct disk_op *op = opaque;
    struct uvm *u = op->u;
    (void)hresult;
    u->pending--;
    if (!err) {
        op->d->ready = true;
        disk_answer(op->d, NULL);
        free(op);
        uvm_maybe_free(u);
        return;
    }
    error_set(&op->first_err, err->code, "mounting %s in the UVM: %s", op->d->host_path, err->msg);
    char *req = scsi_request(op->d, false);
    if (req && !u->closed && hcs_system_modify(u->sys, req, on_rollback_detached, op, NULL) == 0) {
        u->pending++;
        free(req);
        return;
    }
    free(req);
    disk_add_failed(op, op->first_err);
    error_free(op->first_err);
    free(op);
    uvm_maybe_free(u);
}

static void on_disk_attached(hcs_system_t *sys, const shim_error_t *err, void *opaque)
{
    struct disk_op *op = opaque;
    struct uvm *u = op->u;
    shim_error_t *e = NULL;
    (void)sys;
    u->pending--;
    if (err || u->closed || !uvm_guest(u)) {
        error_set(&e, err ? err->code : RPC_UNAVAILABLE, "attaching %s: %s", op->d->host_path,
                  err ? err->msg : "the UVM is gone");
        disk_add_failed(op, e);
        error_free(e);
        free(op);
        uvm_maybe_free(u);
        return;
    }
    struct gcs_mapped_virtual_disk mvd = {
        .mount_path = op->d->guest_path,
        .lun = (uint8_t)op->d->lun,
        .read_only = op->d->read_only,
    };
    json_t *settings = gcs_mapped_virtual_disk_build(&mvd);
    if (op->d->read_only && settings)
        json_object_set_new(settings, "Options", json_pack("[s]", "ro"));
    if (!settings || gcs_guest_modify_settings(u->conn, NULL, "MappedVirtualDisk", "Add", settings,
                                               on_disk_mounted, op, &e) < 0) {
        json_decref(settings);
        u->pending++;
        /* Reuse the mount-failure path: it detaches again. */
        shim_error_t *tmp = e;
        if (!tmp)
            error_set(&tmp, RPC_RESOURCE_EXHAUSTED, "out of memory");
        on_disk_mounted(op, 0, tmp);
        error_free(tmp);
        return;
    }
    json_decref(settings);
    u->pending++;
}

/* A callback that must not run synchronously: one loop turn later. */
struct deferred {
    uv_timer_t timer;
    struct uvm *u;
    uvm_disk_cb cb;      /* add */
    uvm_done_cb done_cb; /* remove */
    void *opaque;
    char *guest_path;
};

static void deferred_closed(uv_handle_t *h)
{
    struct deferred *df = h->data;
    struct uvm *u = df->u;
    free(df->guest_path);
    free(df);
    u->pending--;
    uvm_maybe_free(u);
}

static void on_deferred(uv_timer_t *t)
{
    struct deferred *df = t->data;
    if (!df->u->closed && df->cb)
        df->cb(df->opaque, NULL, df->guest_path);
    else if (!df->u->closed && df->done_cb)
        df->done_cb(df->opaque, NULL);
    uv_close((uv_handle_t *)&df->timer, deferred_closed);
}

static int defer_answer(struct uvm *u, uvm_disk_cb cb, uvm_done_cb done_cb, void *opaque,
                        const char *guest_path, shim_error_t **err)
{
    struct deferred *df = calloc(1, sizeof(*df));
    if (!df || !(df->guest_path = strdup(guest_path))) {
        free(df);
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    }
    df->u = u;
    df->cb = cb;
    df->done_cb = done_cb;
    df->opaque = opaque;
    uv_timer_init(u->loop, &df->timer);
    df->timer.data = df;
    uv_timer_start(&df->timer, on_deferred, 0, 0);
    u->pending++;
    return 0;
}

int uvm_disk_add(struct uvm *u, const char *host_path, bool read_only, uvm_disk_cb cb, void *opaque,
                 shim_error_t **err)
{
    if (!uvm_guest(u))
        return error_set(err, RPC_FAILED_PRECONDITION, "uvm %s is not running", u->id);
    struct disk_waiter *w = calloc(1, sizeof(*w));
    if (!w)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    w->cb = cb;
    w->opaque = opaque;
    struct uvm_disk *d = disk_find(u, host_path);
    if (d) {
        d->refs++;
        if (d->ready) {
            free(w);
            return defer_answer(u, cb, NULL, opaque, d->guest_path, err);
        }
        w->next = d->waiters;
        d->waiters = w;
        return 0;
    }
    unsigned lun = 0;
    while (lun < SCSI_LUNS && u->lun_used[lun])
        lun++;
    if (lun == SCSI_LUNS) {
        free(w);
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "uvm %s: all %d SCSI LUNs are in use", u->id,
                         SCSI_LUNS);
    }
    d = calloc(1, sizeof(*d));
    struct disk_op *op = calloc(1, sizeof(*op));
    char *req = NULL;
    if (!d || !op || !(d->host_path = strdup(host_path)) ||
        asprintf(&d->guest_path, "/run/mounts/scsi/m%u", u->mount_counter++) < 0) {
        if (d)
            d->guest_path = NULL;
        goto oom;
    }
    d->u = u;
    d->lun = lun;
    d->read_only = read_only;
    d->refs = 1;
    d->waiters = w;
    op->u = u;
    op->d = d;
    if (!(req = scsi_request(d, true)))
        goto oom;
    if (hcs_system_modify(u->sys, req, on_disk_attached, op, err) < 0) {
        free(req);
        free(op);
        d->waiters = NULL;
        free(w);
        disk_free(d);
        return -1;
    }
    free(req);
    u->lun_used[lun] = true;
    d->next = u->disks;
    u->disks = d;
    u->pending++;
    return 0;
oom:
    free(op);
    free(w);
    if (d) {
        d->waiters = NULL;
        disk_free(d);
    }
    return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
}

/* Removal: guest unmount, guest unplug (SCSIDevice), host detach. Failures
 * are logged and the next step still runs, so the host never keeps a disk
 * the guest let go of; the first error is reported. */
static void disk_remove_finish(struct disk_op *op)
{
    struct uvm *u = op->u;
    u->lun_used[op->d->lun] = false;
    disk_free(op->d);
    if (op->cb && !u->closed)
        op->cb(op->opaque, op->first_err);
    error_free(op->first_err);
    free(op);
    uvm_maybe_free(u);
}

static void note_error(struct disk_op *op, const char *what, const shim_error_t *err)
{
    if (!err)
        return;
    log_warn("uvm %s: %s %s: %s", op->u->id, what, op->d->host_path, err->msg);
    if (!op->first_err)
        error_set(&op->first_err, err->code, "%s %s: %s", what, op->d->host_path, err->msg);
}

static void on_disk_detached(hcs_system_t *sys, const shim_error_t *err, void *opaque)
{
    struct disk_op *op = opaque;
    (void)sys;
    op->u->pending--;
    note_error(op, "detaching", err);
    disk_remove_finish(op);
}

static void detach_disk(struct disk_op *op)
{
    struct uvm *u = op->u;
    shim_error_t *e = NULL;
    char *req = scsi_request(op->d, false);
    if (!u->closed && u->sys && hcs_system_state(u->sys) == HCS_STATE_RUNNING && req &&
        hcs_system_modify(u->sys, req, on_disk_detached, op, &e) == 0) {
        u->pending++;
        free(req);
        return;
    }
    free(req);
    note_error(op, "detaching", e);
    error_free(e);
    disk_remove_finish(op);
}

static void on_disk_unplugged(void *opaque, int32_t hresult, const shim_error_t *err)
{
    struct disk_op *op = opaque;
    (void)hresult;
    op->u->pending--;
    note_error(op, "unplugging", err);
    detach_disk(op);
}

static void on_disk_unmounted(void *opaque, int32_t hresult, const shim_error_t *err)
{
    struct disk_op *op = opaque;
    struct uvm *u = op->u;
    shim_error_t *e = NULL;
    (void)hresult;
    u->pending--;
    note_error(op, "unmounting", err);
    struct gcs_scsi_device dev = {.lun = (uint8_t)op->d->lun};
    json_t *settings = gcs_scsi_device_build(&dev);
    if (!u->closed && uvm_guest(u) && settings &&
        gcs_guest_modify_settings(u->conn, NULL, "SCSIDevice", "Remove", settings,
                                  on_disk_unplugged, op, &e) == 0) {
        u->pending++;
        json_decref(settings);
        return;
    }
    json_decref(settings);
    error_free(e);
    detach_disk(op);
}

int uvm_disk_remove(struct uvm *u, const char *host_path, uvm_done_cb cb, void *opaque,
                    shim_error_t **err)
{
    struct uvm_disk *d = disk_find(u, host_path);
    if (!d)
        return error_set(err, RPC_NOT_FOUND, "uvm %s: disk %s is not attached", u->id, host_path);
    if (!d->ready)
        return error_set(err, RPC_FAILED_PRECONDITION, "uvm %s: disk %s is still being attached",
                         u->id, host_path);
    struct disk_op *op = calloc(1, sizeof(*op));
    if (!op)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    op->u = u;
    op->cb = cb;
    op->opaque = opaque;
    if (--d->refs > 0) {
        /* Still used: nothing to do in the VM, answer from the loop. */
        free(op);
        return defer_answer(u, NULL, cb, opaque, d->guest_path, err);
    }
    disk_unlink(u, d);
    op->d = d;
    struct gcs_mapped_virtual_disk mvd = {
        .mount_path = d->guest_path, .lun = (uint8_t)d->lun, .read_only = d->read_only};
    json_t *settings = gcs_mapped_virtual_disk_build(&mvd);
    shim_error_t *e = NULL;
    if (uvm_guest(u) && settings &&
        gcs_guest_modify_settings(u->conn, NULL, "MappedVirtualDisk", "Remove", settings,
                                  on_disk_unmounted, op, &e) == 0) {
        u->pending++;
        json_decref(settings);
        return 0;
    }
    json_decref(settings);
    error_free(e);
    /* The guest is gone: only the host side is left (from the loop). */
    u->pending++;
    on_disk_unmounted(op, 0, NULL);
    return 0;
}

/* ---- pause / resume ------------------------------------------------------------------------ */

struct pause_op {
    struct uvm *u;
    bool pause;
    uvm_done_cb cb;
    void *opaque;
};

static void on_paused(hcs_system_t *sys, const shim_error_t *err, void *opaque)
{
    struct pause_op *op = opaque;
    struct uvm *u = op->u;
    (void)sys;
    u->pending--;
    if (!err)
        u->paused = op->pause;
    if (op->cb && !u->closed)
        op->cb(op->opaque, err);
    free(op);
    uvm_maybe_free(u);
}

static int change_run_state(struct uvm *u, bool pause, uvm_done_cb cb, void *opaque,
                            shim_error_t **err)
{
    if (!uvm_guest(u))
        return error_set(err, RPC_FAILED_PRECONDITION, "uvm %s is not running", u->id);
    if (u->paused == pause)
        return error_set(err, RPC_FAILED_PRECONDITION, "uvm %s is %s", u->id,
                         pause ? "already paused" : "not paused");
    struct pause_op *op = calloc(1, sizeof(*op));
    if (!op)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    *op = (struct pause_op){.u = u, .pause = pause, .cb = cb, .opaque = opaque};
    int rc = pause ? hcs_system_pause(u->sys, on_paused, op, err)
                   : hcs_system_resume(u->sys, on_paused, op, err);
    if (rc < 0) {
        free(op);
        return -1;
    }
    u->pending++;
    return 0;
}

int uvm_pause(struct uvm *u, uvm_done_cb cb, void *opaque, shim_error_t **err)
{
    return change_run_state(u, true, cb, opaque, err);
}

int uvm_resume(struct uvm *u, uvm_done_cb cb, void *opaque, shim_error_t **err)
{
    return change_run_state(u, false, cb, opaque, err);
}

/* ---- terminate ------------------------------------------------------------------------------ */

static void term_timer_closed(uv_handle_t *h)
{
    struct uvm *u = h->data;
    free(h);
    u->pending--;
    uvm_maybe_free(u);
}

static void on_term_timer(uv_timer_t *t)
{
    struct uvm *u = t->data;
    u->term_timer = NULL;
    uv_close((uv_handle_t *)t, term_timer_closed);
    if (u->term_cb && !u->closed) {
        uvm_done_cb cb = u->term_cb;
        u->term_cb = NULL;
        cb(u->term_opaque, NULL);
    }
}

int uvm_terminate(struct uvm *u, uvm_done_cb cb, void *opaque, shim_error_t **err)
{
    if (u->closed || u->term_cb)
        return error_set(err, RPC_FAILED_PRECONDITION, "uvm %s is already being terminated", u->id);
    u->term_cb = cb;
    u->term_opaque = opaque;
    stop_boot_timer(u);
    if (u->phase == PHASE_STARTING && u->start_cb) {
        uvm_done_cb start_cb = u->start_cb;
        u->start_cb = NULL;
        shim_error_t *e = NULL;
        error_set(&e, RPC_CANCELED, "uvm %s terminated while starting", u->id);
        u->phase = PHASE_FAILED;
        start_cb(u->start_opaque, e);
        error_free(e);
    }
    u->phase = PHASE_FAILED; /* no `lost` from here on */
    drop_connections(u);
    enum hcs_state st = u->sys ? hcs_system_state(u->sys) : HCS_STATE_STOPPED;
    if ((st == HCS_STATE_STARTING || st == HCS_STATE_RUNNING || st == HCS_STATE_STOPPING) &&
        (st == HCS_STATE_STOPPING || hcs_system_terminate(u->sys, NULL, NULL, NULL) == 0))
        return 0; /* on_vm_exit answers */
    u->term_timer = malloc(sizeof(*u->term_timer));
    if (!u->term_timer) {
        u->term_cb = NULL;
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    }
    uv_timer_init(u->loop, u->term_timer);
    u->term_timer->data = u;
    uv_timer_start(u->term_timer, on_term_timer, 0, 0);
    u->pending++;
    return 0;
}

int uvm_reaped(struct uvm *u, int pid, int wait_status)
{
    return u && u->sys ? hcs_system_reaped(u->sys, pid, wait_status) : 0;
}

/* ---- close --------------------------------------------------------------------------------- */

/* After uvm_close: closes the system once the VM is gone and no operation of
 * ours is in flight (closing it drops pending callbacks, which hold u), then
 * frees u. */
static void uvm_maybe_free(struct uvm *u)
{
    if (!u->closed || u->pending > 0 || u->awaiting_exit)
        return;
    if (u->sys) {
        hcs_system_close(u->sys);
        u->sys = NULL;
    }
    while (u->disks) {
        struct uvm_disk *d = u->disks;
        u->disks = d->next;
        disk_answer(d, NULL);
        disk_free(d);
    }
    free(u->id);
    free(u);
}

void uvm_close(struct uvm *u)
{
    if (!u || u->closed)
        return;
    u->closed = true;
    stop_boot_timer(u);
    drop_connections(u);
    if (u->sys) {
        enum hcs_state st = hcs_system_state(u->sys);
        if (st == HCS_STATE_STARTING || st == HCS_STATE_RUNNING || st == HCS_STATE_STOPPING) {
            /* Wait for the exit: on QEMU it fails (and so completes) every
             * operation still in flight, whose callbacks hold u. */
            if (st != HCS_STATE_STOPPING)
                hcs_system_terminate(u->sys, NULL, NULL, NULL);
            u->awaiting_exit = true;
        }
    }
    uvm_maybe_free(u);
}
