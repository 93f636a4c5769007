#include "shim/options.h"

#include <stdlib.h>
#include <string.h>

bool shim_type_url_is(const char *type_url, const char *full_name)
{
    if (type_url == NULL)
        return false;
    const char *slash = strrchr(type_url, '/');
    const char *name = slash ? slash + 1 : type_url;
    return strcmp(name, full_name) == 0;
}

static int decode_runhcs(const Google__Protobuf__Any *any, struct shim_options *out,
                         shim_error_t **err)
{
    out->runhcs = containerd__runhcs__v1__options__unpack(NULL, any->value.len, any->value.data);
    if (out->runhcs == NULL)
        return error_set(err, RPC_INVALID_ARGUMENT, "malformed %s in runtime options",
                         SHIM_OPTIONS_TYPE_RUNHCS);
    int iso = (int)out->runhcs->sandbox_isolation;
    if (iso != CONTAINERD__RUNHCS__V1__OPTIONS__SANDBOX_ISOLATION__PROCESS &&
        iso != CONTAINERD__RUNHCS__V1__OPTIONS__SANDBOX_ISOLATION__HYPERVISOR)
        return error_set(err, RPC_INVALID_ARGUMENT,
                         "runtime options: sandbox_isolation has unknown value %d", iso);
    int debug_type = (int)out->runhcs->debug_type;
    if (debug_type < 0 || debug_type > CONTAINERD__RUNHCS__V1__OPTIONS__DEBUG_TYPE__ETW)
        return error_set(err, RPC_INVALID_ARGUMENT,
                         "runtime options: debug_type has unknown value %d", debug_type);
    return 0;
}

int shim_options_from_any(const Google__Protobuf__Any *any, struct shim_options *out,
                          shim_error_t **err)
{
    memset(out, 0, sizeof(*out));
    const char *type_url = any && any->type_url ? any->type_url : "";
    out->type_url = strdup(type_url);
    if (out->type_url == NULL)
        return error_set(err, RPC_INTERNAL, "out of memory");
    if (any == NULL || type_url[0] == '\0') {
        if (any != NULL && any->value.len > 0) {
            shim_options_free(out);
            return error_set(err, RPC_INVALID_ARGUMENT,
                             "runtime options: Any has a value but no type_url");
        }
        return 0;
    }
    if (shim_type_url_is(type_url, SHIM_OPTIONS_TYPE_RUNHCS)) {
        if (decode_runhcs(any, out, err) < 0) {
            shim_options_free(out);
            return -1;
        }
        return 0;
    }
    /* e.g. runtimeoptions.v1.Options from ctr --runtime-config-path (§6.1, §8.3). */
    log_fields(LOG_LEVEL_INFO, "ignoring runtime options of an unknown type", "type_url", type_url,
               NULL);
    return 0;
}

int shim_options_decode(const uint8_t *data, size_t len, struct shim_options *out,
                        shim_error_t **err)
{
    memset(out, 0, sizeof(*out));
    if (len > SHIM_OPTIONS_MAX)
        return error_set(err, RPC_INVALID_ARGUMENT, "runtime options too large (%zu bytes)", len);
    if (len == 0)
        return shim_options_from_any(NULL, out, err);
    Google__Protobuf__Any *any = google__protobuf__any__unpack(NULL, len, data);
    if (any == NULL)
        return error_set(err, RPC_INVALID_ARGUMENT,
                         "runtime options are not a valid google.protobuf.Any (%zu bytes)", len);
    int ret = shim_options_from_any(any, out, err);
    google__protobuf__any__free_unpacked(any, NULL);
    return ret;
}

void shim_options_free(struct shim_options *opts)
{
    if (opts == NULL)
        return;
    free(opts->type_url);
    if (opts->runhcs != NULL)
        containerd__runhcs__v1__options__free_unpacked(opts->runhcs, NULL);
    memset(opts, 0, sizeof(*opts));
}

enum log_level shim_options_log_level(const struct shim_options *opts, bool debug_flag)
{
    const Containerd__Runhcs__V1__Options *o = opts ? opts->runhcs : NULL;
    if (o != NULL && o->log_level != NULL && o->log_level[0] != '\0') {
        int level = log_level_parse(o->log_level);
        if (level >= 0)
            return (enum log_level)level;
    }
    if ((o != NULL && o->debug) || debug_flag)
        return LOG_LEVEL_DEBUG;
    return LOG_LEVEL_INFO;
}

const char *shim_isolation_name(enum shim_isolation isolation)
{
    return isolation == SHIM_ISOLATION_HYPERVISOR ? "hypervisor" : "process";
}

/* 1 = found (out set), 0 = absent, -1 = malformed. */
static int isolation_annotation(const struct bundle_spec *spec, const char *whose,
                                enum shim_isolation *out, shim_error_t **err)
{
    const char *v = bundle_spec_annotation(spec, SHIM_ANNOTATION_ISOLATION);
    if (v == NULL)
        return 0;
    if (strcmp(v, "process") == 0) {
        *out = SHIM_ISOLATION_PROCESS;
        return 1;
    }
    if (strcmp(v, "hypervisor") == 0) {
        *out = SHIM_ISOLATION_HYPERVISOR;
        return 1;
    }
    return error_set(err, RPC_INVALID_ARGUMENT,
                     "%s annotation %s has invalid value \"%s\" (want process or hypervisor)",
                     whose, SHIM_ANNOTATION_ISOLATION, v);
}

int shim_resolve_isolation(const struct bundle_spec *container, const struct bundle_spec *pod,
                           const struct shim_options *opts, enum shim_isolation *out,
                           shim_error_t **err)
{
    int found = isolation_annotation(container, "container", out, err);
    if (found == 0 && pod != NULL)
        found = isolation_annotation(pod, "pod sandbox", out, err);
    if (found != 0)
        return found < 0 ? -1 : 0;
    bool hyperv_option = opts && opts->runhcs &&
                         opts->runhcs->sandbox_isolation ==
                             CONTAINERD__RUNHCS__V1__OPTIONS__SANDBOX_ISOLATION__HYPERVISOR;
    if (hyperv_option || (container && (container->has_hyperv || container->has_linux)))
        *out = SHIM_ISOLATION_HYPERVISOR;
    else
        *out = SHIM_ISOLATION_PROCESS;
    return 0;
}
