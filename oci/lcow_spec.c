#include "oci/lcow_spec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "oci/annotations.h"

static char *fmt(const char *f, const char *id, const char *extra)
{
    char *out = NULL;
    if (asprintf(&out, f, id, extra) < 0)
        return NULL;
    return out;
}

char *oci_lcow_bundle_path(const char *id)
{
    return fmt(LCOW_ROOT_PREFIX "/%s%s", id, "");
}

char *oci_lcow_rootfs_path(const char *id)
{
    return fmt(LCOW_ROOT_PREFIX "/%s%s", id, "/rootfs");
}

char *oci_lcow_scratch_dir_path(const char *id)
{
    return fmt(LCOW_ROOT_PREFIX "/%s/scratch/%s", id, id);
}

char *oci_lcow_mount_path(const char *id, size_t i)
{
    char *out = NULL;
    if (asprintf(&out, LCOW_ROOT_PREFIX "/%s/mounts/m%zu", id, i) < 0)
        return NULL;
    return out;
}

static int oom(shim_error_t **err)
{
    return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
}

/* Step 1: keep only network.networkNamespace and devices. */
static int reduce_windows(json_t *spec, shim_error_t **err)
{
    json_t *win = json_object_get(spec, "windows");
    if (win == NULL)
        return 0;
    json_t *kept = json_object();
    if (kept == NULL)
        return oom(err);
    const char *ns =
        json_string_value(json_object_get(json_object_get(win, "network"), "networkNamespace"));
    int rc = 0;
    if (ns != NULL && ns[0] != '\0')
        rc |= json_object_set_new(kept, "network", json_pack("{s:s}", "networkNamespace", ns));
    json_t *devices = json_object_get(win, "devices");
    if (json_is_array(devices) && json_array_size(devices) > 0)
        rc |= json_object_set(kept, "devices", devices);
    if (rc != 0) {
        json_decref(kept);
        return oom(err);
    }
    if (json_object_size(kept) == 0) {
        json_decref(kept);
        json_object_del(spec, "windows");
        return 0;
    }
    return json_object_set_new(spec, "windows", kept) < 0 ? oom(err) : 0;
}

/* Step 3 (HEAD): a present-but-zero period/quota would make the guest's
 * runc reject the update, so hcsshim substitutes the kernel defaults. */
static int fix_cpu(json_t *cpu, shim_error_t **err)
{
    json_t *period = json_object_get(cpu, "period");
    json_t *quota = json_object_get(cpu, "quota");
    int rc = 0;
    if (json_is_integer(period) && json_integer_value(period) == 0)
        rc |= json_object_set_new(cpu, "period", json_integer(100000));
    if (json_is_integer(quota) && json_integer_value(quota) == 0)
        rc |= json_object_set_new(cpu, "quota", json_integer(-1));
    return rc != 0 ? oom(err) : 0;
}

static int transform_linux(json_t *spec, shim_error_t **err)
{
    json_t *lin = json_object_get(spec, "linux");
    if (!json_is_object(lin))
        return error_set(err, RPC_INVALID_ARGUMENT, "LCOW spec requires a linux object");
    json_object_del(lin, "cgroupsPath");
    json_t *res = json_object_get(lin, "resources");
    if (json_is_object(res)) {
        static const char *const dropped[] = {"devices", "pids", "blockIO", "hugepageLimits",
                                              "network"};
        for (size_t i = 0; i < sizeof(dropped) / sizeof(dropped[0]); i++)
            json_object_del(res, dropped[i]);
        json_t *cpu = json_object_get(res, "cpu");
        if (json_is_object(cpu) && fix_cpu(cpu, err) < 0)
            return -1;
    }
    bool privileged = false;
    if (oci_annotation_bool(spec, ANN_LCOW_PRIVILEGED, false, &privileged, err) < 0)
        return -1;
    if (privileged)
        json_object_del(lin, "seccomp");
    return 0;
}

static int set_root(json_t *spec, const char *id, shim_error_t **err)
{
    json_t *root = json_object_get(spec, "root");
    if (root != NULL && !json_is_object(root))
        return error_set(err, RPC_INVALID_ARGUMENT, "spec root must be an object");
    if (root == NULL) {
        root = json_object();
        if (json_object_set_new(spec, "root", root) < 0)
            return oom(err);
    }
    char *path = oci_lcow_rootfs_path(id);
    if (path == NULL || json_object_set_new(root, "path", json_string(path)) < 0) {
        free(path);
        return oom(err);
    }
    free(path);
    return 0;
}

json_t *oci_lcow_container_spec(const json_t *spec, const char *id, shim_error_t **err)
{
    if (!json_is_object(spec)) {
        error_set(err, RPC_INVALID_ARGUMENT, "spec must be a JSON object");
        return NULL;
    }
    if (id == NULL || id[0] == '\0' || strchr(id, '/') != NULL) {
        error_set(err, RPC_INVALID_ARGUMENT, "invalid container id '%s'", id ? id : "");
        return NULL;
    }
    json_t *out = json_deep_copy(spec);
    if (out == NULL) {
        oom(err);
        return NULL;
    }
    if (oci_annotations_validate(out, err) < 0 || reduce_windows(out, err) < 0 ||
        transform_linux(out, err) < 0 || set_root(out, id, err) < 0) {
        json_decref(out);
        return NULL;
    }
    json_object_del(out, "hooks");
    return out;
}

static bool has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static bool special_source(const char *src)
{
    return has_prefix(src, "sandbox://") || has_prefix(src, "sandbox-tmp://") ||
           has_prefix(src, "uvm://") || has_prefix(src, "hugepages://2M/");
}

int oci_lcow_mount_kind(const json_t *mount, enum oci_lcow_mount_kind *out, shim_error_t **err)
{
    const char *type = json_string_value(json_object_get(mount, "type"));
    const char *src = json_string_value(json_object_get(mount, "source"));
    const char *dst = json_string_value(json_object_get(mount, "destination"));
    *out = OCI_LCOW_MOUNT_OTHER;
    if (type == NULL)
        return 0;
    enum oci_lcow_mount_kind kind;
    if (strcmp(type, "bind") == 0)
        kind = OCI_LCOW_MOUNT_PLAN9;
    else if (strcmp(type, "virtual-disk") == 0)
        kind = OCI_LCOW_MOUNT_VIRTUAL_DISK;
    else if (strcmp(type, "physical-disk") == 0)
        kind = OCI_LCOW_MOUNT_PHYSICAL_DISK;
    else if (strcmp(type, "extensible-virtual-disk") == 0)
        kind = OCI_LCOW_MOUNT_EVD;
    else
        return 0;
    if (src == NULL || src[0] == '\0' || dst == NULL || dst[0] == '\0')
        return error_set(err, RPC_INVALID_ARGUMENT,
                         "mount of type %s requires a source and a destination", type);
    if (kind == OCI_LCOW_MOUNT_PLAN9 && special_source(src))
        kind = OCI_LCOW_MOUNT_SPECIAL;
    if (kind == OCI_LCOW_MOUNT_EVD && !has_prefix(src, "evd://"))
        return error_set(err, RPC_INVALID_ARGUMENT,
                         "extensible-virtual-disk source must start with evd://: '%s'", src);
    *out = kind;
    return 0;
}

bool oci_mount_read_only(const json_t *mount)
{
    size_t i;
    json_t *o;
    json_array_foreach(json_object_get(mount, "options"), i, o)
    {
        const char *s = json_string_value(o);
        if (s != NULL && strcasecmp(s, "ro") == 0)
            return true;
    }
    return false;
}

void oci_lcow_plan9_mount_free(struct oci_lcow_plan9_mount *m)
{
    free(m->host_dir);
    free(m->file);
    free(m->guest_mount_path);
    free(m->guest_source);
    memset(m, 0, sizeof(*m));
}

/* Splits a host file path after its last separator, keeping the separator
 * on the directory (Go filepath.Split). */
static int split_file(const char *src, char **dir, char **file)
{
    const char *sep = strrchr(src, '\\');
    const char *slash = strrchr(src, '/');
    if (slash != NULL && (sep == NULL || slash > sep))
        sep = slash;
    if (sep == NULL || sep[1] == '\0')
        return -1;
    *dir = strndup(src, (size_t)(sep - src) + 1);
    *file = strdup(sep + 1);
    return 0;
}

int oci_lcow_plan9_mount(const json_t *mount, const char *id, size_t index, bool source_is_file,
                         struct oci_lcow_plan9_mount *out, shim_error_t **err)
{
    memset(out, 0, sizeof(*out));
    const char *src = json_string_value(json_object_get(mount, "source"));
    if (src == NULL || src[0] == '\0')
        return error_set(err, RPC_INVALID_ARGUMENT, "bind mount %zu has no source", index);
    out->read_only = oci_mount_read_only(mount);
    out->guest_mount_path = oci_lcow_mount_path(id, index);
    if (out->guest_mount_path == NULL)
        goto nomem;
    if (!source_is_file) {
        out->host_dir = strdup(src);
        out->guest_source = strdup(out->guest_mount_path);
        if (out->host_dir == NULL || out->guest_source == NULL)
            goto nomem;
        return 0;
    }
    if (split_file(src, &out->host_dir, &out->file) < 0) {
        oci_lcow_plan9_mount_free(out);
        return error_set(err, RPC_INVALID_ARGUMENT, "bind mount %zu: invalid file source '%s'",
                         index, src);
    }
    if (out->host_dir == NULL || out->file == NULL ||
        asprintf(&out->guest_source, "%s/%s", out->guest_mount_path, out->file) < 0) {
        out->guest_source = NULL;
        goto nomem;
    }
    return 0;
nomem:
    oci_lcow_plan9_mount_free(out);
    return oom(err);
}

int oci_lcow_mount_rewrite(json_t *spec, size_t index, const char *source, const char *type,
                           shim_error_t **err)
{
    json_t *mount = json_array_get(json_object_get(spec, "mounts"), index);
    if (!json_is_object(mount))
        return error_set(err, RPC_INVALID_ARGUMENT, "spec has no mount %zu", index);
    int rc = json_object_set_new(mount, "source", json_string(source));
    if (type != NULL)
        rc |= json_object_set_new(mount, "type", json_string(type));
    return rc != 0 ? oom(err) : 0;
}
