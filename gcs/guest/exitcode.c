#include "gcs/guest/exitcode.h"

#include <sys/wait.h>

uint32_t gcs_exit_code_container(int wait_status)
{
    if (WIFEXITED(wait_status))
        return (uint32_t)WEXITSTATUS(wait_status);
    if (WIFSIGNALED(wait_status))
        return 128u + (uint32_t)WTERMSIG(wait_status);
    return 255u;
}

uint32_t gcs_exit_code_uvm(int wait_status)
{
    if (WIFEXITED(wait_status))
        return (uint32_t)WEXITSTATUS(wait_status);
    return UINT32_MAX;
}

int gcs_wait_status_from_uv(int64_t exit_status, int term_signal)
{
    /* The Linux encoding: low 7 bits the signal, else (code << 8). */
    if (term_signal > 0)
        return term_signal & 0x7f;
    return (int)((exit_status & 0xff) << 8);
}
