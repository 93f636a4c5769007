/* Host-side preparation shared by every platform: the UVM document from a
 * sandbox spec and a container's guest spec. The platform parts (boot
 * files, host probing, document fix-ups, rootfs images) are in
 * uvm/unix/setup.c and uvm/win/setup.c. */
#include <string.h>

#include "common/log.h"
#include "oci/lcow_spec.h"
#include "oci/uvm_options.h"
#include "uvm/doc_uvm.h"
#include "uvm/options.h"
#include "uvm/setup_platform.h"
#include "uvm/uvm.h"

char *uvm_document_for_spec(const json_t *spec, const runhcs_options *opts, const char *id,
                            const char *owner, const char *log_level, const char *default_boot_path,
                            shim_error_t **err)
{
    struct uvm_lcow_options o;
    memset(&o, 0, sizeof(o));
    struct uvm_host host;
    memset(&host, 0, sizeof(host));
    uvm_platform_host(&host);
    char *doc_text = NULL;
    json_t *doc = NULL;
    if (uvm_lcow_options_init(&o, id, owner, log_level, default_boot_path, &host, err) < 0 ||
        oci_lcow_uvm_options(spec, opts, &o, err) < 0)
        goto out;
    doc = uvm_lcow_document(&o, err);
    if (!doc || uvm_platform_fix_document(doc, err) < 0)
        goto out;
    doc_text = json_dumps(doc, JSON_COMPACT);
    if (!doc_text)
        error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
out:
    json_decref(doc);
    uvm_lcow_options_free(&o);
    return doc_text;
}

/* Host bind mounts need shares (Plan 9 / virtiofs), which are not wired yet. */
static void drop_host_mounts(json_t *spec, const char *id)
{
    json_t *mounts = json_object_get(spec, "mounts");
    size_t i = 0;
    while (i < json_array_size(mounts)) {
        json_t *m = json_array_get(mounts, i);
        enum oci_lcow_mount_kind kind = OCI_LCOW_MOUNT_OTHER;
        shim_error_t *e = NULL;
        if (oci_lcow_mount_kind(m, &kind, &e) < 0)
            error_free(e);
        if (kind != OCI_LCOW_MOUNT_OTHER && kind != OCI_LCOW_MOUNT_SPECIAL) {
            log_warn("container %s: mount of host %s at %s is not supported %s; dropped", id,
                     json_string_value(json_object_get(m, "source")),
                     json_string_value(json_object_get(m, "destination")),
                     uvm_platform_no_shares_reason);
            json_array_remove(mounts, i);
            continue;
        }
        i++;
    }
}

json_t *uvm_container_spec(const json_t *spec, const char *id, const char *guest_root,
                           shim_error_t **err)
{
    json_t *out = oci_lcow_container_spec(spec, id, err);
    if (!out)
        return NULL;
    json_t *root = json_object_get(out, "root");
    if (!json_is_object(root)) {
        root = json_object();
        json_object_set_new(out, "root", root);
    }
    if (!root || json_object_set_new(root, "path", json_string(guest_root)) < 0) {
        json_decref(out);
        error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
        return NULL;
    }
    drop_host_mounts(out, id);
    return out;
}
