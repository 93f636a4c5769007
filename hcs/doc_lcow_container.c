#include "hcs/doc_container.h"

#include <stdlib.h>

#include "hcs/schema.h"
#include "oci/lcow_spec.h"

json_t *hcs_lcow_container_config(const char *id, json_t *oci_spec, shim_error_t **err)
{
    if (id == NULL || id[0] == '\0' || !json_is_object(oci_spec)) {
        error_set(err, RPC_INVALID_ARGUMENT, "container config needs an id and an OCI spec");
        return NULL;
    }
    char *bundle = oci_lcow_bundle_path(id);
    char *scratch = oci_lcow_scratch_dir_path(id);
    json_t *doc = NULL;
    if (bundle != NULL && scratch != NULL)
        doc = json_pack("{s:o,s:s,s:O,s:s}", "SchemaVersion", hcs_schema_version(), "OciBundlePath",
                        bundle, "OciSpecification", oci_spec, "ScratchDirPath", scratch);
    free(bundle);
    free(scratch);
    if (doc == NULL)
        error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    return doc;
}

char *hcs_lcow_container_config_string(const char *id, json_t *oci_spec, shim_error_t **err)
{
    json_t *doc = hcs_lcow_container_config(id, oci_spec, err);
    if (doc == NULL)
        return NULL;
    char *s = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(doc);
    if (s == NULL)
        error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    return s;
}
