/* The OCI spec an LCOW container gets inside the UVM (hcsshim createLCOWSpec
 * and allocateLinuxResources, HEAD behaviour) and the guest paths it uses. */
#ifndef OCI_LCOW_SPEC_H
#define OCI_LCOW_SPEC_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/error.h"

#define LCOW_ROOT_PREFIX "/run/gcs/c"

/* Guest paths; heap strings, NULL on allocation failure. */
char *oci_lcow_bundle_path(const char *id);          /* /run/gcs/c/<id> */
char *oci_lcow_rootfs_path(const char *id);          /* /run/gcs/c/<id>/rootfs */
char *oci_lcow_scratch_dir_path(const char *id);     /* /run/gcs/c/<id>/scratch/<id> */
char *oci_lcow_mount_path(const char *id, size_t i); /* /run/gcs/c/<id>/mounts/m<i> */

/* Returns a transformed deep copy of `spec` for container `id` (4.4 steps
 * 1-7): windows reduced to network.networkNamespace and devices, hooks and
 * cgroupsPath dropped, cpu period 0 -> 100000 and quota 0 -> -1, devices /
 * pids / blockIO / hugepageLimits / network resources dropped, seccomp dropped
 * for privileged containers, root.path set to the guest rootfs. Zero-valued
 * members are removed rather than emitted (Go omitempty). Mounts are left for
 * the caller (see below), since they need host state. */
json_t *oci_lcow_container_spec(const json_t *spec, const char *id, shim_error_t **err);

enum oci_lcow_mount_kind {
    OCI_LCOW_MOUNT_OTHER,   /* left unchanged (proc, tmpfs, ...) */
    OCI_LCOW_MOUNT_SPECIAL, /* sandbox://, sandbox-tmp://, uvm://, hugepages://2M/ */
    OCI_LCOW_MOUNT_PLAN9,   /* bind of a host directory or file */
    OCI_LCOW_MOUNT_VIRTUAL_DISK,
    OCI_LCOW_MOUNT_PHYSICAL_DISK,
    OCI_LCOW_MOUNT_EVD, /* extensible-virtual-disk, source evd://<type>/<path> */
};

/* Classifies spec.mounts[i]; a bind/disk mount without source or destination
 * is an error. */
int oci_lcow_mount_kind(const json_t *mount, enum oci_lcow_mount_kind *out, shim_error_t **err);

/* True when the mount options contain "ro" (case-insensitive). */
bool oci_mount_read_only(const json_t *mount);

/* How a Plan9 bind mount is shared and where the container sees it. */
struct oci_lcow_plan9_mount {
    char *host_dir; /* shared host directory (for a file: its parent, with trailing \) */
    char *file;     /* single allowed file, or NULL for a directory */
    bool read_only;
    char *guest_mount_path; /* /run/gcs/c/<id>/mounts/m<i> */
    char *guest_source;     /* mount source inside the container spec */
};

/* Plans spec.mounts[index] as a Plan9 share; `source_is_file` says whether the
 * host source is a regular file (the caller stats it on the host). */
int oci_lcow_plan9_mount(const json_t *mount, const char *id, size_t index, bool source_is_file,
                         struct oci_lcow_plan9_mount *out, shim_error_t **err);
void oci_lcow_plan9_mount_free(struct oci_lcow_plan9_mount *m);

/* Rewrites spec.mounts[index].source (and .type unless `type` is NULL). */
int oci_lcow_mount_rewrite(json_t *spec, size_t index, const char *source, const char *type,
                           shim_error_t **err);

#endif
