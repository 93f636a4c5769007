/* Process isolation: the guest agent `gcs` runs on the host as a child of
 * the shim (the binary next to our own), with the bridge on its stdin/stdout
 * (one end of a socketpair) and process stdio over a Unix-socket-directory
 * transport in a private runtime directory. The shim drives it through the
 * same bridge client (gcs/guest_connection.h) a utility VM would use.
 *
 * The agent is started on first use and shared by every task of the shim. */
#ifndef SHIM_AGENT_H
#define SHIM_AGENT_H

#include <stdbool.h>
#include <sys/types.h>
#include <uv.h>

#include "common/error.h"
#include "gcs/guest_connection.h"

#define SHIM_AGENT_BINARY "gcs"
#define SHIM_AGENT_RUNTIME_ROOT "/run/runhcs"
#define SHIM_AGENT_STOP_TIMEOUT_MS 5000

struct shim_agent;

struct shim_agent_callbacks {
    /* The container notification (§6.14); may be NULL. */
    void (*container_exit)(void *opaque, const char *container_id);
    /* The agent died or the bridge broke after it was up. */
    void (*lost)(void *opaque, const char *reason);
};

int shim_agent_new(uv_loop_t *loop, bool debug, const struct shim_agent_callbacks *callbacks,
                   void *opaque, struct shim_agent **out, shim_error_t **err);

/* conn is the negotiated connection (borrowed) or NULL with err. */
typedef void (*shim_agent_ready_fn)(void *arg, struct gcs_guest_connection *conn,
                                    const shim_error_t *err);
/* Starts the agent if needed; cb runs once, later, when it is usable. */
int shim_agent_get(struct shim_agent *a, shim_agent_ready_fn cb, void *arg, shim_error_t **err);
/* The connection when the agent is up, else NULL. */
struct gcs_guest_connection *shim_agent_connection(const struct shim_agent *a);
/* The agent's state directory (bundles at <state>/c/<id>). */
const char *shim_agent_state_dir(const struct shim_agent *a);
/* For the daemon's SIGCHLD hook: true when pid was the agent. */
bool shim_agent_child_exited(struct shim_agent *a, pid_t pid, int wait_status);

/* The agent may live in its own mount namespace (it hides cgroup v2 from crun
 * on hybrid hosts), where mounts the shim makes later do not appear (the
 * host's mounts are often private). Runs fn(arg) in a child that joined the
 * agent's mount namespace; 0 right away (fn not run) when the agent is not
 * running or shares ours. fn returns 0 or -1; its error text is logged. */
int shim_agent_in_mount_ns(struct shim_agent *a, int (*fn)(void *arg), void *arg,
                           shim_error_t **err);

typedef void (*shim_agent_closed_fn)(void *arg);
/* Closes the bridge, stops the agent (SIGTERM, SIGKILL after
 * SHIM_AGENT_STOP_TIMEOUT_MS), removes the runtime directory, frees a. */
void shim_agent_close(struct shim_agent *a, shim_agent_closed_fn done, void *arg);

#endif
