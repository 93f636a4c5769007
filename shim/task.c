#include "shim/task.h"

#include <stdlib.h>
#include <string.h>

#include "containerd/types/task/task.pb-c.h"

const char *shim_proc_state_name(enum shim_proc_state s)
{
    switch (s) {
    case SHIM_PROC_CREATED:
        return "created";
    case SHIM_PROC_RUNNING:
        return "running";
    case SHIM_PROC_EXITED:
        return "exited";
    }
    return "unknown";
}

struct shim_process *shim_task_find_exec(struct shim_task *t, const char *exec_id)
{
    for (struct shim_process *p = t->execs; p; p = p->next)
        if (strcmp(p->exec_id, exec_id) == 0)
            return p;
    return NULL;
}

struct shim_process *shim_task_process(struct shim_task *t, const char *exec_id)
{
    if (exec_id == NULL || exec_id[0] == '\0')
        return &t->init;
    return shim_task_find_exec(t, exec_id);
}

void shim_process_free_fields(struct shim_process *p)
{
    free(p->exec_id);
    free(p->stdin_path);
    free(p->stdout_path);
    free(p->stderr_path);
    json_decref(p->oci_process);
    p->exec_id = p->stdin_path = p->stdout_path = p->stderr_path = NULL;
    p->oci_process = NULL;
}

int shim_process_status(const struct shim_process *p)
{
    switch (p->state) {
    case SHIM_PROC_CREATED:
        return CONTAINERD__V1__TYPES__STATUS__CREATED;
    case SHIM_PROC_RUNNING:
        return p->task != NULL && p->task->paused ? CONTAINERD__V1__TYPES__STATUS__PAUSED
                                                  : CONTAINERD__V1__TYPES__STATUS__RUNNING;
    case SHIM_PROC_EXITED:
        return CONTAINERD__V1__TYPES__STATUS__STOPPED;
    }
    return CONTAINERD__V1__TYPES__STATUS__UNKNOWN;
}

bool shim_process_alive(const struct shim_process *p)
{
    return p->state == SHIM_PROC_RUNNING || p->starting;
}
