#include "oci/spec.h"

#include <string.h>

#include "oci/annotations.h"

static bool present(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return v != NULL && !json_is_null(v);
}

bool oci_is_lcow(const json_t *spec)
{
    return present(spec, "linux");
}

bool oci_is_wcow(const json_t *spec)
{
    return !present(spec, "linux") && present(spec, "windows");
}

bool oci_is_isolated(const json_t *spec)
{
    return oci_is_lcow(spec) ||
           (oci_is_wcow(spec) && present(json_object_get(spec, "windows"), "hyperv"));
}

bool oci_is_job_container(const json_t *spec)
{
    const char *v = oci_annotation(spec, ANN_HOST_PROCESS);
    return oci_is_wcow(spec) && v != NULL && strcmp(v, "true") == 0;
}

int oci_classify(const json_t *spec, enum oci_spec_kind *out, shim_error_t **err)
{
    if (!json_is_object(spec))
        return error_set(err, RPC_INVALID_ARGUMENT, "spec must be a JSON object");
    if (oci_is_lcow(spec)) {
        *out = OCI_KIND_LCOW;
        return 0;
    }
    if (!oci_is_wcow(spec))
        return error_set(err, RPC_INVALID_ARGUMENT,
                         "invalid spec: neither linux nor windows section is present");
    if (oci_is_job_container(spec)) {
        if (oci_is_isolated(spec))
            return error_set(err, RPC_INVALID_ARGUMENT,
                             "host process containers cannot be hypervisor isolated");
        *out = OCI_KIND_HOST_PROCESS;
        return 0;
    }
    *out = oci_is_isolated(spec) ? OCI_KIND_WCOW_HYPERV : OCI_KIND_ARGON;
    return 0;
}

const char *oci_spec_kind_name(enum oci_spec_kind kind)
{
    switch (kind) {
    case OCI_KIND_LCOW:
        return "lcow";
    case OCI_KIND_WCOW_HYPERV:
        return "wcow-hyperv";
    case OCI_KIND_ARGON:
        return "argon";
    case OCI_KIND_HOST_PROCESS:
        return "host-process";
    }
    return "unknown";
}

int oci_sandbox_type_and_id(const json_t *spec, enum oci_sandbox_type *type, const char **id,
                            shim_error_t **err)
{
    const char *t = oci_annotation(spec, ANN_K8S_CONTAINER_TYPE);
    const char *sid = oci_annotation(spec, ANN_K8S_SANDBOX_ID);
    *type = OCI_SANDBOX_NONE;
    *id = NULL;
    if (t == NULL && sid == NULL)
        return 0;
    if (t == NULL || sid == NULL)
        return error_set(err, RPC_INVALID_ARGUMENT,
                         "annotations %s and %s must both be set or both be absent",
                         ANN_K8S_CONTAINER_TYPE, ANN_K8S_SANDBOX_ID);
    if (strcmp(t, "sandbox") == 0)
        *type = OCI_SANDBOX_SANDBOX;
    else if (strcmp(t, "container") == 0)
        *type = OCI_SANDBOX_CONTAINER;
    else
        return error_set(err, RPC_INVALID_ARGUMENT, "annotation %s: invalid value '%s'",
                         ANN_K8S_CONTAINER_TYPE, t);
    *id = sid;
    return 0;
}

static int add_hyperv(json_t *spec, shim_error_t **err)
{
    json_t *win = json_object_get(spec, "windows");
    if (!oci_is_wcow(spec) || json_object_get(win, "hyperv") != NULL)
        return 0;
    if (!json_is_object(win) || json_object_set_new(win, "hyperv", json_object()) < 0)
        return error_set(err, RPC_INVALID_ARGUMENT, "spec windows section must be an object");
    return 0;
}

static int check_platform(const json_t *spec, const char *platform, shim_error_t **err)
{
    if (platform == NULL || platform[0] == '\0')
        return 0;
    size_t os_len = strcspn(platform, "/");
    bool linux_os = os_len == 5 && strncmp(platform, "linux", 5) == 0;
    bool windows_os = os_len == 7 && strncmp(platform, "windows", 7) == 0;
    if (!linux_os && !windows_os)
        return error_set(err, RPC_INVALID_ARGUMENT, "unsupported sandbox platform '%s'", platform);
    if (linux_os != oci_is_lcow(spec))
        return error_set(err, RPC_INVALID_ARGUMENT,
                         "sandbox platform '%s' does not match the %s spec", platform,
                         oci_is_lcow(spec) ? "Linux" : "Windows");
    return 0;
}

int oci_apply_runtime_options(json_t *spec, const Containerd__Runhcs__V1__Options *opts,
                              shim_error_t **err)
{
    if (oci_update_spec_from_options(spec, opts, err) < 0)
        return -1;
    if (opts != NULL &&
        opts->sandbox_isolation == CONTAINERD__RUNHCS__V1__OPTIONS__SANDBOX_ISOLATION__HYPERVISOR &&
        add_hyperv(spec, err) < 0)
        return -1;
    if (opts != NULL && check_platform(spec, opts->sandbox_platform, err) < 0)
        return -1;
    return oci_process_annotations(spec, err);
}
