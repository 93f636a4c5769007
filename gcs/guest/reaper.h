/* Child reaping for a subreaper agent that also uses uv_spawn.
 *
 * libuv reaps only the children it spawned (waitpid on each of its own pids).
 * The agent additionally inherits orphans: `crun create` and `crun exec -d`
 * exit and leave the container processes to the nearest subreaper. This module
 * owns a SIGCHLD watcher that reaps every child that is NOT libuv's:
 *  - watched pids (registered by the agent) are waited for individually;
 *  - any other zombie is peeked at with waitid(WNOWAIT) and reaped unless it
 *    belongs to libuv; its status is kept a while in case a watch for it comes
 *    later (a process can die before the agent learns its pid).
 * A libuv zombie at the head of the child list hides those behind it, so
 * every libuv exit callback triggers a rescan. */
#ifndef GCS_GUEST_REAPER_H
#define GCS_GUEST_REAPER_H

#include <stdbool.h>
#include <uv.h>

#include "common/error.h"

struct gcs_reaper;

/* wait_status in waitpid() encoding (WIFEXITED/WTERMSIG work on it). */
typedef void (*gcs_exit_cb)(void *data, int pid, int wait_status);

int gcs_reaper_new(uv_loop_t *loop, struct gcs_reaper **out, shim_error_t **err);
/* Stops watching; pending libuv children keep their handles until they exit,
 * their callbacks are no longer called. Frees r once every handle is closed. */
void gcs_reaper_close(struct gcs_reaper *r);

/* uv_spawn with opts (its exit_cb is replaced); cb runs once libuv has reaped
 * the child. Returns the pid, or -1 with *err. */
int gcs_reaper_spawn(struct gcs_reaper *r, const uv_process_options_t *opts, gcs_exit_cb cb,
                     void *data, shim_error_t **err);

/* Watches a pid that is (or will become) our child without libuv. Returns 1
 * with *wait_status when it was already reaped (no callback), else 0 and cb
 * runs later exactly once unless unwatched. */
int gcs_reaper_watch(struct gcs_reaper *r, int pid, gcs_exit_cb cb, void *data, int *wait_status);
void gcs_reaper_unwatch(struct gcs_reaper *r, int pid);

/* Reaps what can be reaped now (also run on every SIGCHLD). */
void gcs_reaper_scan(struct gcs_reaper *r);

/* Number of libuv children and watched pids still alive. */
int gcs_reaper_live_count(const struct gcs_reaper *r);

#endif
