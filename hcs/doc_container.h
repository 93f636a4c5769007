/* Container documents: the LCOW ContainerConfig sent in the GCS Create
 * message, and the Argon (process-isolated WCOW) ComputeSystem document. */
#ifndef HCS_DOC_CONTAINER_H
#define HCS_DOC_CONTAINER_H

#include <jansson.h>
#include <stddef.h>

#include "common/error.h"

/* {"SchemaVersion":{2,1},"OciBundlePath":"/run/gcs/c/<id>",
 *  "OciSpecification":<spec>,"ScratchDirPath":"/run/gcs/c/<id>/scratch/<id>"}
 * `oci_spec` is the transformed spec (oci_lcow_container_spec) and is
 * borrowed (a reference is taken). The GCS wants this as a JSON *string*
 * inside the Create message: see hcs_lcow_container_config_string. */
json_t *hcs_lcow_container_config(const char *id, json_t *oci_spec, shim_error_t **err);
/* The same document serialized compactly; heap string. */
char *hcs_lcow_container_config_string(const char *id, json_t *oci_spec, shim_error_t **err);

struct hcs_layer {
    const char *id;   /* layer GUID (vmcompute NameToGuid of the folder name) */
    const char *path; /* layer folder */
};

struct hcs_argon_params {
    const char *owner;
    const char *volume_path;        /* mounted scratch: \\?\Volume{<guid>}\ (\ added if missing) */
    const struct hcs_layer *layers; /* read-only layers, top-most first */
    size_t n_layers;
    const char *network_namespace; /* HNS namespace id; NULL: spec's networkNamespace */
};

/* The Argon ComputeSystem document (3.2) from a WCOW spec. Mount sources are
 * used as given (the caller resolves symlinks on the host). CPU count, limit
 * and weight are mutually exclusive; annotations override spec resources. */
json_t *hcs_argon_document(const json_t *spec, const struct hcs_argon_params *p,
                           shim_error_t **err);

#endif
