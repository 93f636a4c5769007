#include "shim/agent.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "gcs/transport.h"

#define AGENT_RPC_TIMEOUT_MS (120u * 1000u)
#define STOP_POLL_MS 20

struct ready_waiter {
    struct ready_waiter *next;
    shim_agent_ready_fn cb;
    void *arg;
};

enum agent_state { AGENT_IDLE, AGENT_STARTING, AGENT_UP, AGENT_DEAD };

struct shim_agent {
    uv_loop_t *loop;
    bool debug;
    struct shim_agent_callbacks callbacks;
    void *opaque;
    enum agent_state state;
    char *runtime_dir; /* <root>/XXXXXX */
    char *port_dir;    /* <runtime>/p */
    char *state_dir;   /* <runtime>/s */
    pid_t pid;
    bool reaped;
    struct gcs_transport *stdio;
    struct gcs_guest_connection *conn;
    struct ready_waiter *waiters;
    /* closing */
    uv_timer_t stop_timer;
    uv_timer_t ready_timer; /* runs waiters that asked while already up */
    uint64_t stop_elapsed_ms;
    bool killed;
    shim_agent_closed_fn closed;
    void *closed_arg;
};

int shim_agent_new(uv_loop_t *loop, bool debug, const struct shim_agent_callbacks *callbacks,
                   void *opaque, struct shim_agent **out, shim_error_t **err)
{
    struct shim_agent *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    a->loop = loop;
    a->debug = debug;
    if (callbacks)
        a->callbacks = *callbacks;
    a->opaque = opaque;
    uv_timer_init(loop, &a->stop_timer);
    a->stop_timer.data = a;
    uv_timer_init(loop, &a->ready_timer);
    a->ready_timer.data = a;
    *out = a;
    return 0;
}

struct gcs_guest_connection *shim_agent_connection(const struct shim_agent *a)
{
    return a != NULL && a->state == AGENT_UP ? a->conn : NULL;
}

const char *shim_agent_state_dir(const struct shim_agent *a)
{
    return a != NULL && a->state_dir != NULL ? a->state_dir : "";
}

static void notify_waiters(struct shim_agent *a, const shim_error_t *err)
{
    struct ready_waiter *w = a->waiters;
    a->waiters = NULL;
    while (w) {
        struct ready_waiter *next = w->next;
        w->cb(w->arg, err ? NULL : a->conn, err);
        free(w);
        w = next;
    }
}

static void fail_start(struct shim_agent *a, shim_error_t *err)
{
    log_fields(LOG_LEVEL_ERROR, "guest agent unavailable", "error", err->msg, NULL);
    a->state = AGENT_DEAD;
    if (a->conn) {
        gcs_guest_connection_close(a->conn);
        a->conn = NULL;
    }
    if (a->pid > 0 && !a->reaped)
        kill(a->pid, SIGKILL);
    notify_waiters(a, err);
    error_free(err);
}

static char *agent_binary_path(void)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0)
        return NULL;
    self[n] = '\0';
    char *path = NULL;
    if (asprintf(&path, "%s/%s", dirname(self), SHIM_AGENT_BINARY) < 0)
        return NULL;
    return path;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

/* A shim that was SIGKILLed leaves its runtime directory: remove those whose
 * owner (the pid in <dir>/owner) is gone. */
static void sweep_stale_runtime_dirs(void)
{
    DIR *dir = opendir(SHIM_AGENT_RUNTIME_ROOT);
    if (dir == NULL)
        return;
    struct dirent *de;
    while ((de = readdir(dir)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/%s/owner", SHIM_AGENT_RUNTIME_ROOT, de->d_name);
        FILE *f = fopen(path, "r");
        int pid = 0;
        if (f == NULL)
            continue; /* being created right now, or not ours */
        if (fscanf(f, "%d", &pid) != 1)
            pid = 0;
        fclose(f);
        /* No pid yet: being created right now. Alive: in use. */
        if (pid <= 0 || kill(pid, 0) == 0 || errno != ESRCH)
            continue;
        snprintf(path, sizeof(path), "%s/%s", SHIM_AGENT_RUNTIME_ROOT, de->d_name);
        log_fields(LOG_LEVEL_INFO, "removing stale runtime directory", "path", path, NULL);
        nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
    closedir(dir);
}

static int write_owner(const char *dir)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/owner", dir);
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return -1;
    fprintf(f, "%d\n", (int)getpid());
    return fclose(f);
}

static int make_runtime_dirs(struct shim_agent *a, shim_error_t **err)
{
    if (mkdir(SHIM_AGENT_RUNTIME_ROOT, 0711) < 0 && errno != EEXIST)
        return error_set_errno(err, RPC_INTERNAL, errno, "mkdir %s", SHIM_AGENT_RUNTIME_ROOT);
    sweep_stale_runtime_dirs();
    char tmpl[] = SHIM_AGENT_RUNTIME_ROOT "/XXXXXX";
    if (mkdtemp(tmpl) == NULL)
        return error_set_errno(err, RPC_INTERNAL, errno, "mkdtemp %s", tmpl);
    a->runtime_dir = strdup(tmpl);
    if (a->runtime_dir == NULL || asprintf(&a->port_dir, "%s/p", tmpl) < 0 ||
        asprintf(&a->state_dir, "%s/s", tmpl) < 0)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    if (write_owner(tmpl) < 0 || mkdir(a->port_dir, 0700) < 0 || mkdir(a->state_dir, 0700) < 0)
        return error_set_errno(err, RPC_INTERNAL, errno, "setting up %s", tmpl);
    return 0;
}

/* fork+exec rather than uv_spawn: the daemon's SIGCHLD handler reaps every
 * child with waitpid(-1), which would steal libuv's exit notification. */
static int spawn_agent(struct shim_agent *a, int bridge_fd, shim_error_t **err)
{
    char *binary = agent_binary_path();
    if (binary == NULL)
        return error_set(err, RPC_INTERNAL, "cannot find the shim's own binary");
    if (access(binary, X_OK) < 0) {
        error_set_errno(err, RPC_FAILED_PRECONDITION, errno, "guest agent %s", binary);
        free(binary);
        return -1;
    }
    char transport[PATH_MAX + 8];
    snprintf(transport, sizeof(transport), "unix:%s", a->port_dir);
    const char *argv[] = {
        binary,        "-v4",  "-use-inouterr", "-loglevel", a->debug ? "debug" : "info",
        "-log-format", "text", "-transport",    transport,   "-state-dir",
        a->state_dir,  NULL};
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        free(binary);
        return error_set_errno(err, RPC_INTERNAL, errno, "fork guest agent");
    }
    if (pid == 0) {
        /* The agent must not outlive the shim. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        dup2(bridge_fd, STDIN_FILENO);
        dup2(bridge_fd, STDOUT_FILENO);
        for (int fd = 3; fd < 1024; fd++)
            if (fd != STDERR_FILENO)
                close(fd);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        execv(binary, (char *const *)argv);
        _exit(127);
    }
    free(binary);
    a->pid = pid;
    char pidstr[16];
    snprintf(pidstr, sizeof(pidstr), "%d", (int)pid);
    log_fields(LOG_LEVEL_INFO, "guest agent started", "pid", pidstr, "runtime_dir", a->runtime_dir,
               NULL);
    return 0;
}

static void on_container_exit(void *opaque, const struct gcs_container_notification *n)
{
    struct shim_agent *a = opaque;
    log_fields(LOG_LEVEL_DEBUG, "container notification", "container_id",
               n->base.container_id ? n->base.container_id : "", NULL);
    if (a->callbacks.container_exit && n->base.container_id)
        a->callbacks.container_exit(a->opaque, n->base.container_id);
}

static void agent_lost(struct shim_agent *a, const char *reason)
{
    if (a->state == AGENT_DEAD)
        return;
    bool was_up = a->state == AGENT_UP;
    a->state = AGENT_DEAD;
    log_fields(LOG_LEVEL_ERROR, "guest agent lost", "reason", reason, NULL);
    if (!was_up) {
        shim_error_t *err = NULL;
        error_set(&err, RPC_UNAVAILABLE, "guest agent failed to start: %s", reason);
        notify_waiters(a, err);
        error_free(err);
    }
    if (was_up && a->callbacks.lost)
        a->callbacks.lost(a->opaque, reason);
}

static void on_bridge_closed(void *opaque, const shim_error_t *err)
{
    agent_lost(opaque, err ? err->msg : "bridge closed");
}

static void on_negotiated(void *opaque, int32_t hresult, const shim_error_t *err,
                          const struct gcs_capabilities *caps)
{
    (void)hresult;
    (void)caps;
    struct shim_agent *a = opaque;
    if (a->state != AGENT_STARTING)
        return;
    if (err != NULL) {
        shim_error_t *copy = NULL;
        error_set(&copy, RPC_UNAVAILABLE, "guest agent negotiation failed: %s", err->msg);
        fail_start(a, copy);
        return;
    }
    a->state = AGENT_UP;
    log_fields(LOG_LEVEL_DEBUG, "guest agent ready", NULL);
    notify_waiters(a, NULL);
}

static int start_agent(struct shim_agent *a, shim_error_t **err)
{
    int sv[2] = {-1, -1};
    if (make_runtime_dirs(a, err) < 0)
        return -1;
    if (gcs_transport_unix_dir_new(a->loop, a->port_dir, &a->stdio, err) < 0)
        return -1;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return error_set_errno(err, RPC_INTERNAL, errno, "socketpair");
    int rc = spawn_agent(a, sv[1], err);
    close(sv[1]);
    uv_stream_t *bridge = NULL;
    if (rc < 0 || gcs_stream_from_fd(a->loop, sv[0], &bridge, err) < 0) {
        close(sv[0]);
        return -1;
    }
    struct gcs_guest_connection_config cfg = {.rpc_timeout_ms = AGENT_RPC_TIMEOUT_MS};
    struct gcs_guest_callbacks cbs = {.container_exit = on_container_exit,
                                      .bridge_closed = on_bridge_closed};
    if (gcs_guest_connection_new(a->loop, bridge, a->stdio, &cfg, &cbs, a, &a->conn, err) < 0)
        return -1;
    return gcs_guest_negotiate(a->conn, on_negotiated, a, err);
}

static void on_ready_timer(uv_timer_t *t)
{
    struct shim_agent *a = t->data;
    if (a->state == AGENT_UP)
        notify_waiters(a, NULL);
}

int shim_agent_get(struct shim_agent *a, shim_agent_ready_fn cb, void *arg, shim_error_t **err)
{
    if (a == NULL || a->state == AGENT_DEAD)
        return error_set(err, RPC_UNAVAILABLE, "the guest agent is not running");
    struct ready_waiter *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    w->cb = cb;
    w->arg = arg;
    if (a->state == AGENT_IDLE) {
        a->state = AGENT_STARTING;
        if (start_agent(a, err) < 0) {
            free(w);
            a->state = AGENT_DEAD;
            if (a->pid > 0)
                kill(a->pid, SIGKILL);
            return -1;
        }
    }
    w->next = a->waiters;
    a->waiters = w;
    if (a->state == AGENT_UP) /* always from the loop, never synchronously */
        uv_timer_start(&a->ready_timer, on_ready_timer, 0, 0);
    return 0;
}

bool shim_agent_child_exited(struct shim_agent *a, pid_t pid, int wait_status)
{
    if (a == NULL || pid != a->pid || a->pid <= 0)
        return false;
    a->reaped = true;
    char status[32];
    snprintf(status, sizeof(status), "%d",
             WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : 128 + WTERMSIG(wait_status));
    log_fields(LOG_LEVEL_INFO, "guest agent exited", "status", status, NULL);
    agent_lost(a, "guest agent exited");
    return true;
}

static void on_stop_timer_closed(uv_handle_t *h)
{
    struct shim_agent *a = h->data;
    if (a->stdio)
        gcs_transport_destroy(a->stdio);
    if (a->runtime_dir)
        nftw(a->runtime_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    shim_agent_closed_fn done = a->closed;
    void *arg = a->closed_arg;
    free(a->runtime_dir);
    free(a->port_dir);
    free(a->state_dir);
    free(a);
    if (done)
        done(arg);
}

static bool agent_gone(struct shim_agent *a)
{
    if (a->pid <= 0 || a->reaped)
        return true;
    int status;
    pid_t r = waitpid(a->pid, &status, WNOHANG);
    if (r == a->pid || (r < 0 && errno == ECHILD)) {
        a->reaped = true;
        return true;
    }
    return false;
}

static void on_stop_poll(uv_timer_t *t)
{
    struct shim_agent *a = t->data;
    a->stop_elapsed_ms += STOP_POLL_MS;
    if (!agent_gone(a)) {
        if (!a->killed && a->stop_elapsed_ms >= SHIM_AGENT_STOP_TIMEOUT_MS) {
            a->killed = true;
            kill(a->pid, SIGKILL);
        }
        if (a->stop_elapsed_ms < 2 * SHIM_AGENT_STOP_TIMEOUT_MS)
            return;
    }
    uv_timer_stop(t);
    uv_close((uv_handle_t *)t, on_stop_timer_closed);
}

void shim_agent_close(struct shim_agent *a, shim_agent_closed_fn done, void *arg)
{
    a->closed = done;
    a->closed_arg = arg;
    shim_error_t *err = NULL;
    error_set(&err, RPC_UNAVAILABLE, "the shim is shutting down");
    a->state = AGENT_DEAD;
    notify_waiters(a, err);
    uv_close((uv_handle_t *)&a->ready_timer, NULL);
    error_free(err);
    if (a->conn) {
        gcs_guest_connection_close(a->conn);
        a->conn = NULL;
    }
    if (a->pid > 0 && !a->reaped)
        kill(a->pid, SIGTERM);
    uv_timer_start(&a->stop_timer, on_stop_poll, 0, STOP_POLL_MS);
}

static bool same_mount_ns(pid_t pid)
{
    char path[64];
    struct stat ours, theirs;
    snprintf(path, sizeof(path), "/proc/%d/ns/mnt", (int)pid);
    if (stat("/proc/self/ns/mnt", &ours) < 0 || stat(path, &theirs) < 0)
        return true; /* cannot tell: nothing we could do anyway */
    return ours.st_ino == theirs.st_ino && ours.st_dev == theirs.st_dev;
}

int shim_agent_in_mount_ns(struct shim_agent *a, int (*fn)(void *arg), void *arg,
                           shim_error_t **err)
{
    if (a == NULL || a->pid <= 0 || a->reaped || a->state == AGENT_DEAD || same_mount_ns(a->pid))
        return 0;
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/ns/mnt", (int)a->pid);
    int ns = open(path, O_RDONLY | O_CLOEXEC);
    if (ns < 0)
        return error_set_errno(err, RPC_INTERNAL, errno, "open %s", path);
    pid_t child = fork();
    if (child < 0) {
        close(ns);
        return error_set_errno(err, RPC_INTERNAL, errno, "fork");
    }
    if (child == 0) {
        /* Single-threaded child: setns(CLONE_NEWNS) is allowed. */
        if (setns(ns, CLONE_NEWNS) < 0)
            _exit(2);
        _exit(fn(arg) == 0 ? 0 : 1);
    }
    close(ns);
    /* Blocking is fine: a mount takes milliseconds, and the daemon's SIGCHLD
     * handler runs from the loop, so it cannot reap this child first. */
    int status = 0;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return error_set(err, RPC_INTERNAL, "operation in the agent's mount namespace failed (%s)",
                         WIFEXITED(status) && WEXITSTATUS(status) == 2 ? "setns" : "see log");
    return 0;
}
