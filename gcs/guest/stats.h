/* Container statistics from cgroup files, in the shape the LCOW GCS reports:
 * containerd's cgroup v1 stats.Metrics as JSON with snake_case keys and Go's
 * omitempty (zero values left out). cgroup v2 files are mapped onto it
 * (gcs-bridge.md §6.8). */
#ifndef GCS_GUEST_STATS_H
#define GCS_GUEST_STATS_H

#include <jansson.h>
#include <stdbool.h>

#include "common/error.h"

/* Where one container's cgroup lives. v2: only `unified`. v1: one directory per
 * controller (NULL when that controller is not mounted). */
struct gcs_cgroup_paths {
    char *unified;
    char *cpu, *cpuacct, *memory, *pids;
};

/* Resolves the paths from a /proc/<pid>/cgroup file. cgroup_root is normally
 * /sys/fs/cgroup; unified says whether it is a cgroup2 mount (v2 mode) or a
 * tmpfs of v1 hierarchies. -1 with *err when the file cannot be read or names
 * no usable hierarchy. */
int gcs_cgroup_paths_resolve(const char *proc_cgroup_file, const char *cgroup_root, bool unified,
                             struct gcs_cgroup_paths *out, shim_error_t **err);
void gcs_cgroup_paths_free(struct gcs_cgroup_paths *p);

/* The LCOWMetrics object (new reference). Missing files leave their fields
 * out; never NULL except on out-of-memory. */
json_t *gcs_stats_read(const struct gcs_cgroup_paths *p);

#endif
