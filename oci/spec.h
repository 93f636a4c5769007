/* Classification of an OCI spec the way runhcs does it (hcsshim
 * internal/oci/util.go and sandbox.go). */
#ifndef OCI_SPEC_H
#define OCI_SPEC_H

#include <jansson.h>
#include <stdbool.h>

#include "common/error.h"
#include "runhcs/options.pb-c.h"

enum oci_spec_kind {
    OCI_KIND_LCOW,         /* spec.linux present: Linux container in a UVM */
    OCI_KIND_WCOW_HYPERV,  /* Windows container in a WCOW UVM (windows.hyperv) */
    OCI_KIND_ARGON,        /* process-isolated Windows container on the host */
    OCI_KIND_HOST_PROCESS, /* WCOW HostProcess (job object) container */
};

bool oci_is_lcow(const json_t *spec);
bool oci_is_wcow(const json_t *spec);
/* Needs a UVM: LCOW, or WCOW with windows.hyperv present. */
bool oci_is_isolated(const json_t *spec);
/* WCOW and annotation microsoft.com/hostprocess-container == "true". */
bool oci_is_job_container(const json_t *spec);

/* Classifies the spec; a spec with neither linux nor windows, or a
 * host-process container that is also hypervisor-isolated, is an error. */
int oci_classify(const json_t *spec, enum oci_spec_kind *out, shim_error_t **err);
const char *oci_spec_kind_name(enum oci_spec_kind kind);

enum oci_sandbox_type {
    OCI_SANDBOX_NONE,      /* standalone task: no CRI annotations */
    OCI_SANDBOX_SANDBOX,   /* pod sandbox (creates the pod/UVM) */
    OCI_SANDBOX_CONTAINER, /* workload in an existing pod */
};

/* hcsshim GetSandboxTypeAndID: container-type and sandbox-id must both be
 * set or both absent; the type must be "sandbox" or "container". *id points
 * into the spec (NULL for OCI_SANDBOX_NONE). */
int oci_sandbox_type_and_id(const json_t *spec, enum oci_sandbox_type *type, const char **id,
                            shim_error_t **err);

/* Create step 1 in one call (shim-contract.md 7.3): merges runhcs options
 * into annotations (oci_update_spec_from_options), adds an empty
 * windows.hyperv to a Windows spec when sandbox_isolation is HYPERVISOR,
 * checks sandbox_platform ("linux/..." or "windows/...") against the spec and
 * expands annotations (oci_process_annotations). `opts` may be NULL. */
int oci_apply_runtime_options(json_t *spec, const Containerd__Runhcs__V1__Options *opts,
                              shim_error_t **err);

#endif
