/* Making the OCI runtime work with the cgroups this machine has.
 *
 * - cgroup v2 (/sys/fs/cgroup is cgroup2): used as is.
 * - v1 with a v2 "unified" hierarchy that has controllers (hybrid): crun
 *   refuses to run ("cgroups in hybrid mode not supported"). The agent then
 *   moves into a private mount namespace (slave of the host's, so host mounts
 *   still appear) and unmounts /sys/fs/cgroup/unified there; crun then
 *   manages plain v1 hierarchies. Mounts the agent makes later (overlays)
 *   are visible to its containers but not on the host.
 * - auto mode probes whether a cgroup can be created (a container without
 *   cgroup delegation cannot) and otherwise runs crun with
 *   --cgroup-manager disabled: containers run without resource control and
 *   statistics are empty. */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "cmd/gcs/agent.h"
#include "common/log.h"

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif
#ifndef TMPFS_MAGIC
#define TMPFS_MAGIC 0x01021994
#endif

#define CGROUP_ROOT "/sys/fs/cgroup"

static bool fs_is(const char *path, long magic)
{
    struct statfs st;
    return statfs(path, &st) == 0 && (long)st.f_type == magic;
}

static bool has_controllers(const char *dir)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/cgroup.controllers", dir);
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    char buf[256] = "";
    bool any = fgets(buf, sizeof(buf), f) && strspn(buf, " \n") < strlen(buf);
    fclose(f);
    return any;
}

static bool runtime_is_crun(const char *path)
{
    const char *base = strrchr(path, '/');
    return strstr(base ? base + 1 : path, "crun") != NULL;
}

static int leave_hybrid_mode(shim_error_t **err)
{
    if (unshare(CLONE_NEWNS) < 0)
        return error_set_errno(err, RPC_INTERNAL, errno, "unshare(CLONE_NEWNS)");
    if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
        return error_set_errno(err, RPC_INTERNAL, errno, "making / a slave mount");
    if (umount2(CGROUP_ROOT "/unified", MNT_DETACH) < 0)
        return error_set_errno(err, RPC_INTERNAL, errno, "unmounting %s/unified", CGROUP_ROOT);
    return 0;
}

/* Can we create a cgroup where the runtime would? */
static bool can_create_cgroup(bool unified)
{
    char probe[128];
    snprintf(probe, sizeof(probe), "%s/gcs-probe-%d", unified ? CGROUP_ROOT : CGROUP_ROOT "/pids",
             (int)getpid());
    if (mkdir(probe, 0755) < 0)
        return false;
    rmdir(probe);
    return true;
}

int agent_cgroup_prepare(struct agent *a, shim_error_t **err)
{
    const char *mode = a->cfg->cgroup_manager;
    bool crun = runtime_is_crun(a->runtime.path);
    a->cgroup_unified = fs_is(CGROUP_ROOT, CGROUP2_SUPER_MAGIC);
    if (!a->cgroup_unified && fs_is(CGROUP_ROOT, TMPFS_MAGIC) &&
        fs_is(CGROUP_ROOT "/unified", CGROUP2_SUPER_MAGIC) &&
        has_controllers(CGROUP_ROOT "/unified") && crun) {
        if (leave_hybrid_mode(err) < 0)
            return error_wrap(err, "cgroup hybrid mode");
        log_info("cgroups: hybrid v1/v2 with v2 controllers; hid %s/unified in a private "
                 "mount namespace so that %s uses v1",
                 CGROUP_ROOT, a->runtime.path);
    }
    if (strcmp(mode, "auto") == 0) {
        bool ok = can_create_cgroup(a->cgroup_unified);
        mode = ok ? NULL : "disabled";
        if (!ok)
            log_warn("cgroups: cannot create cgroups here; containers run with "
                     "--cgroup-manager disabled (no limits, no statistics)");
    }
    if (mode && !crun) {
        log_warn("cgroups: -cgroup-manager %s only applies to crun; ignored for %s", mode,
                 a->runtime.path);
        mode = NULL;
    }
    a->runtime.cgroup_manager = mode;
    log_info("cgroups: %s, manager %s", a->cgroup_unified ? "v2" : "v1",
             mode ? mode : "runtime default");
    return 0;
}
