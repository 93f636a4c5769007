#include "gcs/guest/reaper.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "common/log.h"
#include "gcs/guest/exitcode.h"

#define UNCLAIMED_MAX 256

struct spawned {
    uv_process_t proc;
    struct gcs_reaper *r;
    struct spawned *next;
    gcs_exit_cb cb;
    void *data;
    int pid;
    bool exited;
};

struct watch {
    struct watch *next;
    int pid;
    gcs_exit_cb cb;
    void *data;
};

struct unclaimed {
    int pid;
    int status;
};

struct gcs_reaper {
    uv_loop_t *loop;
    uv_signal_t sigchld;
    struct spawned *children; /* libuv-owned, still running or not yet closed */
    struct watch *watches;
    struct unclaimed unclaimed[UNCLAIMED_MAX];
    size_t unclaimed_next; /* ring buffer position */
    int open_handles;
    bool closing;
};

static void maybe_free(struct gcs_reaper *r)
{
    if (r->closing && r->open_handles == 0)
        free(r);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct gcs_reaper *r = h->data;
    r->open_handles--;
    maybe_free(r);
}

static bool is_libuv_child(const struct gcs_reaper *r, int pid)
{
    for (const struct spawned *s = r->children; s; s = s->next) {
        if (s->pid == pid && !s->exited)
            return true;
    }
    return false;
}

static struct watch *take_watch(struct gcs_reaper *r, int pid)
{
    for (struct watch **pp = &r->watches; *pp; pp = &(*pp)->next) {
        if ((*pp)->pid == pid) {
            struct watch *w = *pp;
            *pp = w->next;
            return w;
        }
    }
    return NULL;
}

static void deliver(struct gcs_reaper *r, int pid, int status)
{
    struct watch *w = take_watch(r, pid);
    if (w) {
        gcs_exit_cb cb = w->cb;
        void *data = w->data;
        free(w);
        cb(data, pid, status);
        return;
    }
    log_debug("reaped unwatched pid %d (status 0x%x)", pid, status);
    r->unclaimed[r->unclaimed_next] = (struct unclaimed){pid, status};
    r->unclaimed_next = (r->unclaimed_next + 1) % UNCLAIMED_MAX;
}

/* Waits for each watched pid individually (they may sit behind a libuv zombie). */
static bool reap_watched(struct gcs_reaper *r)
{
    for (struct watch *w = r->watches; w; w = w->next) {
        int status = 0;
        if (waitpid(w->pid, &status, WNOHANG | __WALL) == w->pid) {
            deliver(r, w->pid, status);
            return true; /* the list changed: start over */
        }
    }
    return false;
}

/* Reaps the first zombie unless libuv owns it. */
static bool reap_other(struct gcs_reaper *r)
{
    siginfo_t si;
    memset(&si, 0, sizeof(si));
    if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT | __WALL) < 0 || si.si_pid == 0)
        return false;
    if (is_libuv_child(r, si.si_pid))
        return false;
    int status = 0;
    if (waitpid(si.si_pid, &status, WNOHANG | __WALL) != si.si_pid)
        return false;
    deliver(r, si.si_pid, status);
    return true;
}

void gcs_reaper_scan(struct gcs_reaper *r)
{
    if (r->closing)
        return;
    while (reap_watched(r) || reap_other(r)) {
    }
}

static void on_sigchld(uv_signal_t *h, int signum)
{
    (void)signum;
    gcs_reaper_scan(h->data);
}

int gcs_reaper_new(uv_loop_t *loop, struct gcs_reaper **out, shim_error_t **err)
{
    struct gcs_reaper *r = calloc(1, sizeof(*r));
    if (!r)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    r->loop = loop;
    int rc = uv_signal_init(loop, &r->sigchld);
    if (rc == 0)
        rc = uv_signal_start(&r->sigchld, on_sigchld, SIGCHLD);
    if (rc != 0) {
        free(r);
        return error_set_uv(err, RPC_INTERNAL, rc, "SIGCHLD watcher");
    }
    r->sigchld.data = r;
    r->open_handles = 1;
    *out = r;
    return 0;
}

void gcs_reaper_close(struct gcs_reaper *r)
{
    if (!r || r->closing)
        return;
    r->closing = true;
    while (r->watches) {
        struct watch *w = r->watches;
        r->watches = w->next;
        free(w);
    }
    for (struct spawned *s = r->children; s; s = s->next)
        s->cb = NULL;
    uv_close((uv_handle_t *)&r->sigchld, on_handle_closed);
}

static void unlink_child(struct gcs_reaper *r, struct spawned *c)
{
    for (struct spawned **pp = &r->children; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            return;
        }
    }
}

static void on_child_closed(uv_handle_t *h)
{
    struct spawned *c = h->data;
    struct gcs_reaper *r = c->r;
    unlink_child(r, c);
    free(c);
    r->open_handles--;
    maybe_free(r);
}

static void on_child_exit(uv_process_t *proc, int64_t exit_status, int term_signal)
{
    struct spawned *c = proc->data;
    c->exited = true;
    if (c->cb)
        c->cb(c->data, c->pid, gcs_wait_status_from_uv(exit_status, term_signal));
    uv_close((uv_handle_t *)proc, on_child_closed);
    /* Zombies queued behind this one got no SIGCHLD of their own. */
    gcs_reaper_scan(c->r);
}

int gcs_reaper_spawn(struct gcs_reaper *r, const uv_process_options_t *opts, gcs_exit_cb cb,
                     void *data, shim_error_t **err)
{
    struct spawned *c = calloc(1, sizeof(*c));
    if (!c)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    uv_process_options_t o = *opts;
    o.exit_cb = on_child_exit;
    int rc = uv_spawn(r->loop, &c->proc, &o);
    if (rc != 0) {
        /* uv_spawn leaves an initialised handle behind on failure. */
        c->r = r;
        c->exited = true;
        c->proc.data = c;
        c->next = r->children;
        r->children = c;
        r->open_handles++;
        uv_close((uv_handle_t *)&c->proc, on_child_closed);
        return error_set_uv(err, RPC_INTERNAL, rc, "spawn %s", opts->file);
    }
    c->r = r;
    c->cb = cb;
    c->data = data;
    c->pid = c->proc.pid;
    c->proc.data = c;
    c->next = r->children;
    r->children = c;
    r->open_handles++;
    return c->pid;
}

int gcs_reaper_watch(struct gcs_reaper *r, int pid, gcs_exit_cb cb, void *data, int *wait_status)
{
    for (size_t i = 0; i < UNCLAIMED_MAX; i++) {
        if (r->unclaimed[i].pid == pid) {
            *wait_status = r->unclaimed[i].status;
            r->unclaimed[i].pid = 0;
            return 1;
        }
    }
    struct watch *w = calloc(1, sizeof(*w));
    if (!w)
        return -1;
    w->pid = pid;
    w->cb = cb;
    w->data = data;
    w->next = r->watches;
    r->watches = w;
    /* It may already be a zombie whose SIGCHLD we consumed before. */
    int status = 0;
    if (waitpid(pid, &status, WNOHANG | __WALL) == pid) {
        free(take_watch(r, pid));
        *wait_status = status;
        return 1;
    }
    return 0;
}

void gcs_reaper_unwatch(struct gcs_reaper *r, int pid)
{
    free(take_watch(r, pid));
}

int gcs_reaper_live_count(const struct gcs_reaper *r)
{
    int n = 0;
    for (const struct spawned *s = r->children; s; s = s->next)
        n += !s->exited;
    for (const struct watch *w = r->watches; w; w = w->next)
        n++;
    return n;
}
