/* The OCI bundle containerd hands the shim (shim-contract.md §3.4, §8.3):
 * <bundle>/config.json and the rootfs mounts from CreateTaskRequest. */
#ifndef SHIM_BUNDLE_H
#define SHIM_BUNDLE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/error.h"
#include "containerd/types/mount.pb-c.h"

#define BUNDLE_CONFIG_MAX (16u << 20) /* refuse absurd config.json sizes */

struct bundle_spec {
    json_t *root;        /* owned */
    json_t *annotations; /* borrowed from root; object of strings, or NULL */
    bool has_process;
    bool has_linux; /* LCOW by hcsshim's classification (§7.1) */
    bool has_windows;
    bool has_hyperv; /* windows.hyperv present */
};

/* Reads and validates <bundle_dir>/config.json. */
int bundle_spec_load(const char *bundle_dir, struct bundle_spec *out, shim_error_t **err);
/* Parses spec JSON text; origin names the source in error messages. */
int bundle_spec_parse(const char *text, size_t len, const char *origin, struct bundle_spec *out,
                      shim_error_t **err);
/* Annotation value or NULL when absent. */
const char *bundle_spec_annotation(const struct bundle_spec *spec, const char *key);
void bundle_spec_free(struct bundle_spec *spec);

/* One containerd rootfs mount (containerd.types.Mount without target). */
struct bundle_mount {
    const char *type;
    const char *source;
    const char *const *options;
    size_t n_options;
};

/* Windows rootfs layers (shim-contract.md §7.3 step 5): containerd's
 * windows-layer / lcow-layer mount, source = the container's scratch (writable
 * layer) folder, options "rw"/"ro" and parentLayerPaths=<JSON array of
 * folders>. Nothing is mounted on Windows: the UVM host attaches them. */
enum bundle_layer_type {
    BUNDLE_LAYER_WINDOWS, /* windows-layer (WCOW) */
    BUNDLE_LAYER_LCOW,    /* lcow-layer */
};

struct bundle_layers {
    enum bundle_layer_type type;
    char *scratch;  /* owned */
    bool read_only; /* "ro" */
    char **parents; /* parentLayerPaths in containerd's order (top-most first);
                       NULL-terminated, owned */
    size_t n_parents;
};

#define BUNDLE_PARENT_LAYERS_OPTION "parentLayerPaths="

/* True for a mount bundle_layers_parse understands. */
bool bundle_mount_is_layer(const struct bundle_mount *m);
/* Parses one layer mount; InvalidArgument for other types, no source or a
 * malformed parentLayerPaths (not a JSON array of non-empty strings). */
int bundle_layers_parse(const struct bundle_mount *m, struct bundle_layers *out,
                        shim_error_t **err);
void bundle_layers_free(struct bundle_layers *layers);
/* The rootfs of a Windows task: zero mounts (legacy spec.windows.layerFolders)
 * or exactly one layer mount; *out is zeroed for zero mounts. */
int bundle_layers_from_rootfs(const struct bundle_mount *mounts, size_t n,
                              struct bundle_layers *out, shim_error_t **err);

#ifndef _WIN32
/* mount(2) arguments derived from a mount's options. */
struct bundle_mount_args {
    unsigned long flags;       /* for the main mount(2) */
    unsigned long propagation; /* MS_SHARED/MS_PRIVATE/... (+MS_REC), 0 if none */
    char *data;                /* comma-joined unknown options, or NULL; owned */
};

int bundle_mount_args_parse(const struct bundle_mount *m, struct bundle_mount_args *out,
                            shim_error_t **err);
void bundle_mount_args_free(struct bundle_mount_args *args);
#endif

/* Linux: mount(2)s the rootfs. Windows: validates the layer mounts
 * (bundle_layers_from_rootfs) and mounts nothing; unmount is a no-op. */

/* Mounts every mount in order onto target (a directory). On failure, the ones
 * already mounted are unmounted again. */
int bundle_mount_all(const char *target, const struct bundle_mount *mounts, size_t n,
                     shim_error_t **err);
/* bundle_mount_all onto <bundle_dir>/rootfs (created 0711 if missing). */
int bundle_mount_rootfs(const char *bundle_dir, const struct bundle_mount *mounts, size_t n,
                        shim_error_t **err);
/* The same for CreateTaskRequest.rootfs as decoded from the wire. */
int bundle_mount_rootfs_pb(const char *bundle_dir, Containerd__Types__Mount *const *mounts,
                           size_t n, shim_error_t **err);
/* Unmounts everything stacked on target (MNT_DETACH when busy); not mounted is
 * success. */
int bundle_unmount_all(const char *target, shim_error_t **err);
int bundle_unmount_rootfs(const char *bundle_dir, shim_error_t **err);

/* Writes a file atomically (temp file in the same directory + rename). */
int bundle_write_file_atomic(const char *dir, const char *name, const void *data, size_t len,
                             unsigned mode, shim_error_t **err);
/* Reads a regular file of at most BUNDLE_CONFIG_MAX bytes, NUL-terminated;
 * NotFound when missing. */
int bundle_read_file(const char *path, char **text, size_t *len, shim_error_t **err);
/* Reads a small text file; NULL with err (NotFound when missing). */
char *bundle_read_text(const char *dir, const char *name, shim_error_t **err);

#endif
