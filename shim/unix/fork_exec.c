#include "shim/unix/fork_exec.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

pid_t shim_fork_exec(shim_exec_child_fn child, const void *ctx, const char *what, const char *path,
                     shim_error_t **err)
{
    int exec_err[2];
    if (pipe2(exec_err, O_CLOEXEC) < 0)
        return error_set_errno(err, RPC_INTERNAL, errno, "pipe");
    pid_t pid = fork();
    if (pid < 0) {
        close(exec_err[0]);
        close(exec_err[1]);
        return error_set_errno(err, RPC_INTERNAL, errno, "fork %s", what);
    }
    if (pid == 0)
        child(ctx, exec_err[1]); /* does not return */
    close(exec_err[1]);
    int child_errno = 0;
    ssize_t n;
    do {
        n = read(exec_err[0], &child_errno, sizeof(child_errno));
    } while (n < 0 && errno == EINTR);
    close(exec_err[0]);
    if (n > 0) {
        waitpid(pid, NULL, 0);
        return error_set_errno(err, RPC_INTERNAL, child_errno, "start %s %s", what, path);
    }
    return pid;
}
