/* shim/start_platform.h on Windows (the hcsshim model, shim-contract.md
 * §3.2, §3.7): a live pipe means a shim already serves the group; otherwise
 * start spawns itself as the serving daemon (same flags plus -bundle and
 * -socket <pipe>), detached, with the options on its stdin, a pipe on its
 * stdout and <bundle>\panic.log as stderr, and waits until the daemon closes
 * that stdout pipe (it listens then). Text the daemon wrote there is its
 * failure message. None of start's own handles (containerd's pipes) may be
 * inherited, or containerd would wait for the daemon to exit. */
#include "shim/start_platform.h"

#include <fcntl.h>
#include <io.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <uv.h>
#include <windows.h>

#include "hcs/win/compute_hcs.h"
#include "shim/socket.h"

#define SHIM_READY_TIMEOUT_MS 30000
#define SHIM_READY_TEXT_MAX 4096
#define SHIM_DELETE_TERMINATE_MS 4000u

struct launch {
    uv_loop_t loop;
    uv_process_t process;
    uv_pipe_t in;  /* the daemon's stdin: the options */
    uv_pipe_t out; /* the daemon's stdout: text until it closes it */
    uv_timer_t timer;
    uv_write_t write_req;
    bool spawned, eof, exited, timed_out;
    int64_t exit_status;
    char text[SHIM_READY_TEXT_MAX];
    size_t text_len;
};

static void on_exit(uv_process_t *p, int64_t status, int signum)
{
    (void)signum;
    struct launch *l = p->data;
    l->exited = true;
    l->exit_status = status;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)hint;
    struct launch *l = h->data;
    size_t room = sizeof(l->text) - 1 - l->text_len;
    static char discard[256];
    *buf = room ? uv_buf_init(l->text + l->text_len, (unsigned)room)
                : uv_buf_init(discard, sizeof(discard));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct launch *l = s->data;
    if (n > 0 && buf->base == l->text + l->text_len)
        l->text_len += (size_t)n;
    else if (n < 0) {
        l->eof = true;
        uv_read_stop(s);
    }
}

static void on_written(uv_write_t *req, int status)
{
    (void)status; /* a daemon that died early shows up as exited */
    uv_close((uv_handle_t *)req->handle, NULL);
}

static void on_timeout(uv_timer_t *t)
{
    ((struct launch *)t->data)->timed_out = true;
}

/* start's own std handles come from containerd: not for the daemon. */
static void keep_std_handles(void)
{
    static const DWORD std[] = {STD_INPUT_HANDLE, STD_OUTPUT_HANDLE, STD_ERROR_HANDLE};
    for (int i = 0; i < 3; i++) {
        HANDLE h = GetStdHandle(std[i]);
        if (h != NULL && h != INVALID_HANDLE_VALUE)
            SetHandleInformation(h, HANDLE_FLAG_INHERIT, 0);
    }
}

static int open_panic_log(const char *bundle)
{
    char *path = NULL;
    if (asprintf(&path, "%s\\panic.log", bundle) < 0)
        return -1;
    int fd = _open(path, _O_WRONLY | _O_CREAT | _O_TRUNC | _O_BINARY | _O_NOINHERIT,
                   _S_IREAD | _S_IWRITE);
    free(path);
    return fd;
}

static int spawn(struct launch *l, const struct shim_cli_args *args, const char *self,
                 struct start_state *st, int panic_fd, shim_error_t **err)
{
    char *argv[16];
    int i = 0;
    argv[i++] = (char *)self;
    argv[i++] = "-namespace";
    argv[i++] = (char *)args->namespace_name;
    argv[i++] = "-id";
    argv[i++] = (char *)args->id;
    argv[i++] = "-address";
    argv[i++] = (char *)args->address;
    argv[i++] = "-publish-binary";
    argv[i++] = (char *)args->publish_binary;
    argv[i++] = "-bundle";
    argv[i++] = st->bundle;
    argv[i++] = "-socket";
    argv[i++] = st->addr;
    if (args->debug)
        argv[i++] = "-debug";
    argv[i] = NULL;
    uv_stdio_container_t stdio[3] = {
        {.flags = UV_CREATE_PIPE | UV_READABLE_PIPE, .data.stream = (uv_stream_t *)&l->in},
        {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&l->out},
        {.flags = panic_fd >= 0 ? UV_INHERIT_FD : UV_IGNORE, .data.fd = panic_fd},
    };
    uv_process_options_t opts = {
        .exit_cb = on_exit,
        .file = self,
        .args = argv,
        .cwd = st->bundle,
        /* Detached: outside libuv's kill-on-close job, so it outlives start. */
        .flags = UV_PROCESS_DETACHED | UV_PROCESS_WINDOWS_HIDE,
        .stdio_count = 3,
        .stdio = stdio,
    };
    l->process.data = l;
    int rc = uv_spawn(&l->loop, &l->process, &opts);
    if (rc < 0)
        return error_set_uv(err, RPC_INTERNAL, rc, "start shim daemon %s", self);
    l->spawned = true;
    return 0;
}

static int send_options(struct launch *l, const struct start_state *st)
{
    if (st->options_len == 0) {
        uv_close((uv_handle_t *)&l->in, NULL);
        return 0;
    }
    uv_buf_t buf = uv_buf_init((char *)st->options, (unsigned)st->options_len);
    int rc = uv_write(&l->write_req, (uv_stream_t *)&l->in, &buf, 1, on_written);
    if (rc < 0)
        uv_close((uv_handle_t *)&l->in, NULL);
    return rc;
}

/* Runs until the daemon closed its stdout (or died, or the time is up). */
static int wait_ready(struct launch *l, const struct start_state *st, shim_error_t **err)
{
    int rc = uv_read_start((uv_stream_t *)&l->out, on_alloc, on_read);
    if (rc < 0)
        return error_set_uv(err, RPC_INTERNAL, rc, "read from the shim daemon");
    uv_timer_start(&l->timer, on_timeout, SHIM_READY_TIMEOUT_MS, 0);
    while (!l->eof && !l->timed_out)
        uv_run(&l->loop, UV_RUN_ONCE);
    l->text[l->text_len] = '\0';
    if (l->text_len > 0)
        return error_set(err, RPC_INTERNAL, "shim daemon failed: %s", l->text);
    if (l->timed_out)
        return error_set(err, RPC_DEADLINE_EXCEEDED, "shim daemon did not get ready within %d ms",
                         SHIM_READY_TIMEOUT_MS);
    if (l->exited || !shim_socket_is_live(st->addr))
        return error_set(err, RPC_INTERNAL, "shim daemon exited before serving %s%s", st->addr,
                         l->exited ? "" : " (it closed its stdout but the pipe is not there)");
    return 0;
}

static void launch_close(struct launch *l, bool kill_daemon)
{
    if (kill_daemon && l->spawned && !l->exited)
        uv_process_kill(&l->process, SIGKILL);
    uv_handle_t *handles[] = {(uv_handle_t *)&l->in, (uv_handle_t *)&l->out,
                              (uv_handle_t *)&l->timer, (uv_handle_t *)&l->process};
    for (size_t i = 0; i < sizeof(handles) / sizeof(handles[0]); i++) {
        if (handles[i]->loop != NULL && !uv_is_closing(handles[i]))
            uv_close(handles[i], NULL);
    }
    uv_run(&l->loop, UV_RUN_DEFAULT);
    uv_loop_close(&l->loop);
}

int start_platform_launch(const struct shim_cli_args *args, const char *self,
                          struct start_state *st, bool *reuse, pid_t *pid, shim_error_t **err)
{
    *reuse = shim_socket_is_live(st->addr);
    if (*reuse)
        return 0;
    struct launch *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return error_set(err, RPC_INTERNAL, "out of memory");
    int rc = uv_loop_init(&l->loop);
    if (rc < 0) {
        free(l);
        return error_set_uv(err, RPC_INTERNAL, rc, "uv_loop_init");
    }
    uv_pipe_init(&l->loop, &l->in, 0);
    uv_pipe_init(&l->loop, &l->out, 0);
    uv_timer_init(&l->loop, &l->timer);
    l->in.data = l->out.data = l->timer.data = l;
    keep_std_handles();
    int panic_fd = open_panic_log(st->bundle);
    int ret = spawn(l, args, self, st, panic_fd, err);
    if (panic_fd >= 0)
        _close(panic_fd);
    if (ret == 0 && send_options(l, st) < 0)
        ret = error_set(err, RPC_INTERNAL, "cannot pass the runtime options to the shim daemon");
    if (ret == 0)
        ret = wait_ready(l, st, err);
    if (ret == 0)
        *pid = (pid_t)l->process.pid;
    launch_close(l, ret < 0);
    free(l);
    return ret;
}

void start_platform_abort(struct start_state *st, pid_t pid, bool reuse)
{
    (void)st;
    if (pid > 0 && !reuse)
        uv_kill((int)pid, SIGKILL);
}

void start_platform_release(struct start_state *st)
{
    (void)st; /* nothing held: the daemon made its own pipe */
}

/* ---- delete ------------------------------------------------------------------------ */

struct terminate_wait {
    bool done;
    bool exited;
    char *error;
};

static void on_terminate_exit(hcs_system_t *sys, const struct hcs_exit_status *status, void *opaque)
{
    (void)sys;
    (void)status;
    ((struct terminate_wait *)opaque)->exited = true;
}

static void on_terminate_done(hcs_system_t *sys, const shim_error_t *err, void *opaque)
{
    (void)sys;
    struct terminate_wait *w = opaque;
    w->done = true;
    if (err != NULL)
        w->error = strdup(err->msg);
}

static void on_terminate_timeout(uv_timer_t *t)
{
    *(bool *)t->data = true;
}

/* Runs the loop until the terminate was accepted and the system exited, or
 * SHIM_DELETE_TERMINATE_MS passed (containerd gives delete 5 s in all). */
static void wait_terminated(uv_loop_t *loop, struct terminate_wait *w)
{
    bool timed_out = false;
    uv_timer_t timer;
    uv_timer_init(loop, &timer);
    timer.data = &timed_out;
    uv_timer_start(&timer, on_terminate_timeout, SHIM_DELETE_TERMINATE_MS, 0);
    while (!timed_out && !(w->done && (w->exited || w->error != NULL)))
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&timer, NULL);
}

static int delete_terminate_compute_system(uv_loop_t *loop, const char *id, shim_error_t **err)
{
    hcs_system_t *sys = NULL;
    shim_error_t *open_err = NULL;
    if (hcs_system_open(loop, id, &sys, &open_err) < 0) {
        /* nothing left (NotFound) or no HCS on this host (Unimplemented) */
        bool nothing = open_err->code == RPC_NOT_FOUND || open_err->code == RPC_UNIMPLEMENTED;
        if (nothing) {
            error_free(open_err);
            return 0;
        }
        *err = open_err;
        return -1;
    }
    struct terminate_wait w = {0};
    hcs_system_set_exit_callback(sys, on_terminate_exit, &w);
    shim_error_t *e = NULL;
    int rc = hcs_system_terminate(sys, on_terminate_done, &w, &e);
    if (rc == 0)
        wait_terminated(loop, &w);
    hcs_system_close(sys);
    while (uv_run(loop, UV_RUN_NOWAIT) != 0)
        ;
    if (rc < 0) {
        *err = e;
        return -1;
    }
    if (w.error != NULL) {
        error_set(err, RPC_INTERNAL, "terminate compute system %s: %s", id, w.error);
        free(w.error);
        return -1;
    }
    if (!w.exited)
        return error_set(err, RPC_DEADLINE_EXCEEDED, "compute system %s did not exit in %u ms", id,
                         SHIM_DELETE_TERMINATE_MS);
    return 0;
}

/* A live shim still serves this task's group (a pod's shared shim, or a
 * normal delete before the shim exits): its compute systems are its own. */
static bool group_shim_is_live(const char *bundle)
{
    char *addr = bundle_read_text(bundle, "address", NULL);
    bool live = addr != NULL && addr[0] != '\0' && shim_socket_is_live(addr);
    free(addr);
    return live;
}

/* What a crashed shim leaves for this id, as hcsshim's delete: the task's
 * compute system and its utility VM ("<id>@vm", when the task owned one). */
static void terminate_left_systems(const struct shim_cli_args *args, int warn_fd)
{
    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0)
        return;
    char vm_id[512];
    snprintf(vm_id, sizeof(vm_id), "%s@vm", args->id);
    const char *ids[] = {args->id, vm_id};
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        shim_error_t *e = NULL;
        if (delete_terminate_compute_system(&loop, ids[i], &e) < 0)
            start_warn(warn_fd, e);
    }
    uv_loop_close(&loop);
}

/* No mounts on Windows (HCS attaches the layers) and a pipe vanishes with
 * its server. A crashed shim's compute systems are terminated by id (unless
 * the group's shim is alive), and what the daemon wrote to stderr
 * (<bundle>\panic.log, hcsshim's convention) is reported as a cleanup
 * warning. */
void delete_platform_cleanup(const struct shim_cli_args *args, int warn_fd)
{
    if (args->bundle[0] == '\0')
        return; /* the cwd is not the bundle on Windows */
    if (!group_shim_is_live(args->bundle))
        terminate_left_systems(args, warn_fd);
    char *panic = bundle_read_text(args->bundle, "panic.log", NULL);
    if (panic != NULL && panic[0] != '\0') {
        shim_error_t *e = NULL;
        error_set(&e, RPC_INTERNAL, "the shim's panic.log: %s", panic);
        start_warn(warn_fd, e);
    }
    free(panic);
}
