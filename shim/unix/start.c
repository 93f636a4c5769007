/* shim/start_platform.h on Linux (the runc model, shim-contract.md §3.7):
 * start binds the socket itself and forks the daemon with it as fd 3 and the
 * options in a memfd as fd 4; delete unmounts the rootfs and removes a dead
 * shim's socket. */
#include "shim/start_platform.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shim/socket.h"
#include "shim/start.h"
#include "shim/unix/fork_exec.h"

extern char **environ;

static int options_memfd(const uint8_t *data, size_t len, shim_error_t **err)
{
    int fd = memfd_create("shim-options", MFD_CLOEXEC);
    if (fd < 0)
        return error_set_errno(err, RPC_INTERNAL, errno, "memfd_create");
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            int e = errno;
            close(fd);
            return error_set_errno(err, RPC_INTERNAL, e, "write options memfd");
        }
        off += (size_t)w;
    }
    return fd;
}

struct daemon_launch {
    char *argv[16];
    int listen_fd;
    int options_fd;
    int null_fd;
    const char *self;
    const char *bundle;
};

/* Between fork and exec: async-signal-safe calls only. */
static void daemon_child(const void *ctx, int exec_err_w)
{
    const struct daemon_launch *l = ctx;
    int err_fd = fcntl(exec_err_w, F_DUPFD_CLOEXEC, 10);
    int listen_hi = fcntl(l->listen_fd, F_DUPFD, 10);
    int options_hi = fcntl(l->options_fd, F_DUPFD, 10);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    for (int sig = 1; sig < 32; sig++) {
        if (sig != SIGKILL && sig != SIGSTOP)
            signal(sig, SIG_DFL);
    }
    if (err_fd < 0 || listen_hi < 0 || options_hi < 0)
        goto fail;
    /* A new session: containerd's signals to start's process group and its
     * terminal must not reach the daemon. */
    if (setsid() < 0 && setpgid(0, 0) < 0)
        goto fail;
    if (chdir(l->bundle) < 0)
        goto fail;
    if (dup2(l->null_fd, 0) < 0 || dup2(l->null_fd, 1) < 0 || dup2(l->null_fd, 2) < 0 ||
        dup2(listen_hi, SHIM_LISTEN_FD) < 0 || dup2(options_hi, SHIM_OPTIONS_FD) < 0)
        goto fail;
    /* Nothing else survives: above all not containerd's stdout/stderr pipes. */
    syscall(SYS_close_range, SHIM_OPTIONS_FD + 1, (unsigned)err_fd - 1, 0);
    syscall(SYS_close_range, (unsigned)err_fd + 1, ~0U, 0);
    execve(l->self, l->argv, environ);
fail:;
    int e = errno;
    ssize_t ignored = write(err_fd >= 0 ? err_fd : exec_err_w, &e, sizeof(e));
    (void)ignored;
    _exit(127);
}

static pid_t spawn_daemon(struct daemon_launch *l, shim_error_t **err)
{
    return shim_fork_exec(daemon_child, l, "shim daemon", l->self, err);
}

/* Binds addr; returns the fd, 0 with *reuse set when a live shim owns it. */
static int bind_or_reuse(const char *addr, bool *reuse, shim_error_t **err)
{
    *reuse = false;
    for (int attempt = 0; attempt < 3; attempt++) {
        shim_error_t *bind_err = NULL;
        int fd = shim_socket_listen(addr, &bind_err);
        if (fd >= 0)
            return fd;
        if (bind_err == NULL || bind_err->sys_errno != EADDRINUSE) {
            if (err)
                *err = bind_err;
            else
                error_free(bind_err);
            return -1;
        }
        error_free(bind_err);
        if (shim_socket_is_live(addr)) {
            *reuse = true;
            return 0;
        }
        /* A dead shim's leftover socket file. */
        if (shim_socket_remove(addr, err) < 0)
            return -1;
    }
    return error_set(err, RPC_UNAVAILABLE, "cannot bind %s: address stays in use", addr);
}

static int start_daemon(const struct shim_cli_args *args, const char *self, struct start_state *st,
                        pid_t *pid, shim_error_t **err)
{
    st->options_fd = options_memfd(st->options, st->options_len, err);
    if (st->options_fd < 0)
        return -1;
    st->null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (st->null_fd < 0)
        return error_set_errno(err, RPC_INTERNAL, errno, "open /dev/null");
    struct daemon_launch l = {.listen_fd = st->listen_fd,
                              .options_fd = st->options_fd,
                              .null_fd = st->null_fd,
                              .self = self,
                              .bundle = st->bundle};
    int i = 0;
    l.argv[i++] = (char *)self;
    l.argv[i++] = "-namespace";
    l.argv[i++] = (char *)args->namespace_name;
    l.argv[i++] = "-id";
    l.argv[i++] = (char *)args->id;
    l.argv[i++] = "-address";
    l.argv[i++] = (char *)args->address;
    l.argv[i++] = "-publish-binary";
    l.argv[i++] = (char *)args->publish_binary;
    l.argv[i++] = "-bundle";
    l.argv[i++] = st->bundle;
    l.argv[i++] = "-socket";
    l.argv[i++] = st->addr;
    if (args->debug)
        l.argv[i++] = "-debug";
    l.argv[i] = NULL;
    *pid = spawn_daemon(&l, err);
    return *pid > 0 ? 0 : -1;
}

int start_platform_launch(const struct shim_cli_args *args, const char *self,
                          struct start_state *st, bool *reuse, pid_t *pid, shim_error_t **err)
{
    st->listen_fd = bind_or_reuse(st->addr, reuse, err);
    if (st->listen_fd < 0)
        return -1;
    if (*reuse) {
        st->listen_fd = -1; /* bind_or_reuse returned 0: not ours to close */
        return 0;
    }
    return start_daemon(args, self, st, pid, err);
}

void start_platform_abort(struct start_state *st, pid_t pid, bool reuse)
{
    if (pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    if (st->listen_fd > 0 && !reuse)
        shim_socket_remove(st->addr, NULL);
}

void start_platform_release(struct start_state *st)
{
    if (st->listen_fd >= 0)
        close(st->listen_fd);
    if (st->options_fd >= 0)
        close(st->options_fd);
    if (st->null_fd >= 0)
        close(st->null_fd);
}

/* ---- delete ----------------------------------------------------------------- */

/* Removes this id's own socket when nothing serves it any more. Pod members
 * point at the sandbox's socket and leave it alone. */
static void delete_socket(const struct shim_cli_args *args, const char *bundle, int warn_fd)
{
    shim_error_t *e = NULL;
    char *own = shim_socket_address(NULL, args->address, args->namespace_name, args->id, &e);
    if (own == NULL) {
        start_warn(warn_fd, e);
        return;
    }
    char *recorded = bundle_read_text(bundle, "address", NULL);
    bool owns = recorded == NULL || strcmp(recorded, own) == 0;
    if (owns && !shim_socket_is_live(own) && shim_socket_remove(own, &e) < 0)
        start_warn(warn_fd, e);
    free(recorded);
    free(own);
}

void delete_platform_cleanup(const struct shim_cli_args *args, int warn_fd)
{
    char *bundle = args->bundle[0] ? strdup(args->bundle) : getcwd(NULL, 0);
    shim_error_t *e = NULL;
    if (bundle != NULL) {
        if (bundle_unmount_rootfs(bundle, &e) < 0)
            start_warn(warn_fd, e);
        if (args->id[0] != '\0')
            delete_socket(args, bundle, warn_fd);
    } else {
        dprintf(warn_fd, "delete: no bundle directory: %s\n", strerror(errno));
    }
    free(bundle);
}
