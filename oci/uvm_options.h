/* Sandbox spec + runhcs options -> UVM creation options (hcsshim
 * SpecToUVMCreateOpts). */
#ifndef OCI_UVM_OPTIONS_H
#define OCI_UVM_OPTIONS_H

#include <jansson.h>

#include "common/error.h"
#include "oci/annotations.h"
#include "uvm/options.h"

/* Applies the sandbox spec's UVM annotations to `out`, which the caller has
 * set to defaults with uvm_lcow_options_init (id, owner, GCS log level, host).
 * The spec is not modified: the options are merged into a private copy first
 * (oci_update_spec_from_options + oci_process_annotations), so pod annotations
 * win over options and options over defaults. `opts` may be NULL.
 * On error `out` may be partly updated; the caller still frees it. */
int oci_lcow_uvm_options(const json_t *spec, const runhcs_options *opts,
                         struct uvm_lcow_options *out, shim_error_t **err);

/* The same for a WCOW UVM. Also derives uvm_image_path (the first layer
 * folder, top-most first, holding UtilityVM) and scratch_path
 * (<scratch folder>\vm\sandbox.vhdx) from spec.windows.layerFolders when
 * present; otherwise the caller sets them. */
int oci_wcow_uvm_options(const json_t *spec, const runhcs_options *opts,
                         struct uvm_wcow_options *out, shim_error_t **err);

#endif
