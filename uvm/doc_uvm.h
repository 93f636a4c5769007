/* Utility VM ComputeSystem documents (HCS schema v2), as hcsshim builds them
 * for HcsCreateComputeSystem("<pod>@vm", doc). Both builders validate the
 * options first (hcsshim VerifyOptions); errors read "UVM options incorrect:
 * <rule>" or name the missing boot file. */
#ifndef UVM_DOC_UVM_H
#define UVM_DOC_UVM_H

#include <jansson.h>

#include "common/error.h"
#include "uvm/options.h"

/* Rejects option combinations hcsshim rejects (2.5) plus non-positive
 * memory/processor counts and out-of-range CPU limit/weight. */
int uvm_lcow_verify_options(const struct uvm_lcow_options *o, shim_error_t **err);
int uvm_wcow_verify_options(const struct uvm_wcow_options *o, shim_error_t **err);

/* The LCOW kernel command line (hcs-documents.md 2.3). Heap string. */
char *uvm_lcow_kernel_cmdline(const struct uvm_lcow_options *o);

/* The LCOW UVM document (2.2). Checks that the kernel and rootfs exist when
 * the host can probe files. New reference or NULL with *err set. */
json_t *uvm_lcow_document(const struct uvm_lcow_options *o, shim_error_t **err);

/* The WCOW UVM document (3.1); uvm_image_path and scratch_path are required. */
json_t *uvm_wcow_document(const struct uvm_wcow_options *o, shim_error_t **err);

/* Normalization shared with tests: memory rounds up to an even MB count;
 * the processor count is clamped to the host's logical processors. */
uint64_t uvm_normalize_memory_mb(uint64_t mb);
int32_t uvm_normalize_processor_count(int32_t requested, uint32_t host_lps);

/* ComputeTopology for either OS; `hot_hint` sets EnableHotHint (WCOW). */
json_t *uvm_doc_compute_topology(const struct uvm_common_options *c, bool hot_hint,
                                 bool cold_discard_hint);
/* {"IopsMaximum","BandwidthMaximum"} or NULL when neither is set. */
json_t *uvm_doc_storage_qos(const struct uvm_common_options *c);
/* Fills ComPorts / graphics devices shared by LCOW and WCOW. */
int uvm_doc_console_devices(json_t *devices, const struct uvm_common_options *c);
/* Checks shared by both verify functions. */
int uvm_verify_common(const struct uvm_common_options *c, shim_error_t **err);

#endif
