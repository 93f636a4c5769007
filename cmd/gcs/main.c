/* gcs: the guest agent. Answers the GCS bridge protocol v4 as the guest
 * (see /work/notes/gcs-agent.md for flags and behaviour). */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <ftw.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cmd/gcs/agent.h"
#include "common/log.h"
#include "gcs/mux.h"

/* ---- small utilities (declared in agent.h) ---------------------------------------------- */

char *xasprintf(const char *fmt, ...)
{
    char *s = NULL;
    va_list ap;
    va_start(ap, fmt);
    int rc = vasprintf(&s, fmt, ap);
    va_end(ap);
    return rc < 0 ? NULL : s;
}

int mkdir_p(const char *path, int mode)
{
    char *copy = strdup(path);
    if (!copy)
        return -1;
    for (char *p = copy + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(copy, (mode_t)mode) < 0 && errno != EEXIST) {
            free(copy);
            return -1;
        }
        *p = '/';
    }
    int rc = mkdir(copy, (mode_t)mode) < 0 && errno != EEXIST ? -1 : 0;
    free(copy);
    return rc;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

int remove_tree(const char *path)
{
    /* FTW_PHYS: never follow symlinks out of the bundle; FTW_MOUNT: stay on
     * this filesystem (a rootfs mounted inside is not ours to delete). */
    int rc = nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
    return rc < 0 && errno == ENOENT ? 0 : rc;
}

/* ---- leftovers of an earlier agent (one agent per state directory) ----------------- */

extern char **environ;

/* `runtime delete --force id`, waited for (start-up only: nothing else runs yet,
 * and the containers of a dead agent are not our children). */
static void delete_stale_container(struct agent *a, const char *id)
{
    const char *argv[] = {
        a->runtime.path, "--root", a->runtime_root, "delete", "--force", id, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    for (int fd = 0; fd < 3; fd++)
        posix_spawn_file_actions_addopen(&fa, fd, "/dev/null", fd ? O_WRONLY : O_RDONLY, 0);
    pid_t pid;
    int rc = posix_spawnp(&pid, a->runtime.path, &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    int status = 0;
    if (rc == 0)
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
    log_warn("removed container %s left by an earlier agent (%s)", id,
             rc == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? "ok" : "runtime failed");
}

/* Calls fn for every entry of dir except . and .. */
static void for_each_entry(struct agent *a, const char *dir,
                           void (*fn)(struct agent *a, const char *dir, const char *name))
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            fn(a, dir, e->d_name);
    }
    closedir(d);
}

static void stale_runtime_entry(struct agent *a, const char *dir, const char *name)
{
    (void)dir;
    delete_stale_container(a, name);
}

static void stale_file_entry(struct agent *a, const char *dir, const char *name)
{
    (void)a;
    char *path = xasprintf("%s/%s", dir, name);
    if (path && remove_tree(path) < 0)
        log_warn("removing %s: %s", path, strerror(errno));
    free(path);
}

static void stale_console_socket(struct agent *a, const char *dir, const char *name)
{
    if (strncmp(name, "console-", 8) == 0)
        stale_file_entry(a, dir, name);
}

/* Containers, bundles and sockets of an agent that was killed. */
static void clean_stale_state(struct agent *a)
{
    for_each_entry(a, a->runtime_root, stale_runtime_entry);
    for_each_entry(a, a->bundles_dir, stale_file_entry);
    for_each_entry(a, a->log_dir, stale_file_entry);
    for_each_entry(a, a->cfg->state_dir, stale_console_socket);
}

/* ---- startup ------------------------------------------------------------------------------ */

static int open_log(const struct gcs_agent_config *cfg)
{
    int fd = STDERR_FILENO;
    if (cfg->log_file) {
        fd = open(cfg->log_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd < 0) {
            fprintf(stderr, "gcs: cannot open log file %s: %s\n", cfg->log_file, strerror(errno));
            return -1;
        }
    }
    log_configure(fd, cfg->log_level, cfg->log_format);
    return 0;
}

static int make_dirs(struct agent *a, shim_error_t **err)
{
    a->runtime_root = xasprintf("%s/crun", a->cfg->state_dir);
    a->log_dir = xasprintf("%s/log", a->cfg->state_dir);
    a->bundles_dir = xasprintf("%s/c", a->cfg->state_dir);
    if (!a->runtime_root || !a->log_dir || !a->bundles_dir)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    const char *dirs[] = {a->cfg->state_dir, a->runtime_root, a->log_dir, a->bundles_dir};
    for (size_t i = 0; i < 4; i++) {
        if (mkdir_p(dirs[i], 0700) < 0)
            return error_set_errno(err, RPC_INTERNAL, errno, "creating %s", dirs[i]);
    }
    return 0;
}

/* A virtio-serial port (linux-uvm.md §4): opened once, O_RDWR; hang-ups
 * while the host is not connected are waited out by the device link. */
static int make_device_transport(struct agent *a, const char *device, bool mux,
                                 struct gcs_transport **out, shim_error_t **err)
{
    int fd = -1;
    if (gcs_device_open(device, &fd, err) < 0)
        return -1;
    log_info("%s over device %s (fd %d)", mux ? "stdio ports multiplexed" : "bridge", device, fd);
    if (mux)
        return gcs_transport_mux_device_new(a->loop, fd, fd, GCS_MUX_ROLE_GUEST, out, err);
    return gcs_transport_device_new(a->loop, fd, fd, out, err);
}

static int make_transports(struct agent *a, shim_error_t **err)
{
    const struct gcs_agent_config *cfg = a->cfg;
    if (cfg->transport == GCS_AGENT_TRANSPORT_UNIX) {
        if (gcs_transport_unix_dir_new(a->loop, cfg->port_dir, &a->stdio_transport, err) < 0)
            return -1;
    } else if (cfg->transport == GCS_AGENT_TRANSPORT_MUX) {
        if (make_device_transport(a, cfg->stdio_device, true, &a->stdio_transport, err) < 0)
            return -1;
    } else if (gcs_transport_vsock_new(a->loop, GCS_VSOCK_CID_HOST, &a->stdio_transport, err) < 0) {
        return -1;
    }
    if (cfg->bridge_device)
        return make_device_transport(a, cfg->bridge_device, false, &a->bridge_transport, err);
    if (!cfg->use_inouterr) {
        a->bridge_transport = a->stdio_transport;
        return 0;
    }
    int in_fd = fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3);
    int out_fd = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
    if (in_fd < 0 || out_fd < 0)
        return error_set_errno(err, RPC_INTERNAL, errno, "dup stdin/stdout");
    struct stat si, so;
    if (fstat(in_fd, &si) == 0 && fstat(out_fd, &so) == 0 && S_ISSOCK(si.st_mode) &&
        si.st_dev == so.st_dev && si.st_ino == so.st_ino) {
        close(out_fd); /* one full-duplex socket: no pumps needed */
        out_fd = in_fd;
    }
    /* Children must never inherit the bridge: point 0 and 1 at /dev/null. */
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (devnull >= 0) {
        dup2(devnull, STDIN_FILENO);
        dup2(devnull, STDOUT_FILENO);
        close(devnull);
    }
    return gcs_transport_fdpair_new(a->loop, in_fd, out_fd, &a->bridge_transport, err);
}

static void on_bridge_connected(uv_stream_t *stream, int status, void *opaque)
{
    struct agent *a = opaque;
    shim_error_t *err = NULL;
    if (status < 0) {
        /* hcsshim's GCS dials once and exits on failure (§1.3). */
        log_error("connecting the bridge (port 0x%x): %s", GCS_BRIDGE_PORT, uv_strerror(status));
        agent_shutdown(a, 1);
        return;
    }
    log_info("bridge connected");
    if (agent_bridge_start(a, stream, &err) < 0) {
        log_error("%s", err->msg);
        error_free(err);
        gcs_stream_close(stream);
        agent_shutdown(a, 1);
    }
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct agent *a = h->data;
    log_info("received signal %d", signum);
    agent_shutdown(a, 0);
}

static int agent_init(struct agent *a, const struct gcs_agent_config *cfg, shim_error_t **err)
{
    a->loop = uv_default_loop();
    a->cfg = cfg;
    a->runtime.path = cfg->runtime;
    gcs_frame_decoder_init(&a->decoder, GCS_GUEST_MAX_MESSAGE_SIZE);
    /* Before any thread exists (unshare of the mount namespace). */
    if (agent_cgroup_prepare(a, err) < 0 || make_dirs(a, err) < 0)
        return -1;
    clean_stale_state(a);
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
        return error_set_errno(err, RPC_INTERNAL, errno, "PR_SET_CHILD_SUBREAPER");
    if (gcs_reaper_new(a->loop, &a->reaper, err) < 0)
        return -1;
    a->runtime.loop = a->loop;
    a->runtime.reaper = a->reaper;
    a->runtime.root = a->runtime_root;
    a->runtime.log_dir = a->log_dir;
    uv_timer_init(a->loop, &a->shutdown_timer);
    a->shutdown_timer.data = a;
    uv_signal_init(a->loop, &a->sig_term);
    uv_signal_init(a->loop, &a->sig_int);
    a->sig_term.data = a->sig_int.data = a;
    uv_signal_start(&a->sig_term, on_signal, SIGTERM);
    uv_signal_start(&a->sig_int, on_signal, SIGINT);
    signal(SIGPIPE, SIG_IGN);
    if (make_transports(a, err) < 0)
        return -1;
    return gcs_transport_connect(a->bridge_transport, GCS_BRIDGE_PORT, on_bridge_connected, a, err);
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void agent_free(struct agent *a)
{
    if (a->reaper)
        gcs_reaper_close(a->reaper);
    if (a->stdio_transport && a->stdio_transport != a->bridge_transport)
        gcs_transport_destroy(a->stdio_transport);
    gcs_transport_destroy(a->bridge_transport);
    uv_walk(a->loop, close_walk, NULL);
    uv_run(a->loop, UV_RUN_DEFAULT);
    uv_loop_close(a->loop);
    gcs_frame_decoder_free(&a->decoder);
    agent_unmount_all(a);
    free(a->runtime_root);
    free(a->log_dir);
    free(a->bundles_dir);
}

int main(int argc, char **argv)
{
    struct gcs_agent_config cfg;
    shim_error_t *err = NULL;
    gcs_agent_config_defaults(&cfg);
    if (gcs_agent_flags_parse(argc, argv, &cfg, &err) < 0) {
        fprintf(stderr, "gcs: %s\n%s", err->msg, gcs_agent_usage());
        error_free(err);
        return 2;
    }
    if (cfg.help) {
        fputs(gcs_agent_usage(), stdout);
        return 0;
    }
    if (open_log(&cfg) < 0)
        return 1;
    log_info("gcs agent starting (v4=%s, bridge over %s, state %s, runtime %s)",
             cfg.v4 ? "yes" : "no",
             cfg.bridge_device  ? cfg.bridge_device
             : cfg.use_inouterr ? "stdin/stdout"
                                : "transport",
             cfg.state_dir, cfg.runtime);
    struct agent a;
    memset(&a, 0, sizeof(a));
    int rc = agent_init(&a, &cfg, &err);
    if (rc < 0) {
        log_error("startup failed: %s", err->msg);
        error_free(err);
        if (a.loop)
            agent_free(&a);
        return 1;
    }
    uv_run(a.loop, UV_RUN_DEFAULT);
    log_info("gcs agent exiting (%d)", a.exit_code);
    agent_free(&a);
    return a.exit_code;
}
