/* Runtime options (shim-contract.md §6.1, §6.2): the google.protobuf.Any that
 * arrives on `start`'s stdin and again in CreateTaskRequest.options, and the
 * isolation decision that depends on them. */
#ifndef SHIM_OPTIONS_H
#define SHIM_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "common/log.h"
#include "google/protobuf/any.pb-c.h"
#include "runhcs/options.pb-c.h"
#include "shim/bundle.h"

#define SHIM_OPTIONS_TYPE_RUNHCS "containerd.runhcs.v1.Options"
#define SHIM_ANNOTATION_ISOLATION "io.runhcs.isolation"
#define SHIM_OPTIONS_MAX (4u << 20) /* a ttrpc message cannot be larger anyway */

struct shim_options {
    char *type_url;                          /* "" when no options were given; owned */
    Containerd__Runhcs__V1__Options *runhcs; /* NULL unless the type is runhcs; owned */
};

/* Decodes a serialized Any (0 bytes = no options). Unknown types are accepted
 * (runhcs stays NULL); a malformed Any or runhcs payload is InvalidArgument. */
int shim_options_decode(const uint8_t *data, size_t len, struct shim_options *out,
                        shim_error_t **err);
/* Same for an already unpacked Any (NULL = no options). */
int shim_options_from_any(const Google__Protobuf__Any *any, struct shim_options *out,
                          shim_error_t **err);
void shim_options_free(struct shim_options *opts);

/* True when type_url names `full_name` (bare, or with a ".../" prefix). */
bool shim_type_url_is(const char *type_url, const char *full_name);

/* Log level for the daemon: runhcs log_level (if valid) > runhcs debug >
 * the -debug flag > info. */
enum log_level shim_options_log_level(const struct shim_options *opts, bool debug_flag);

enum shim_isolation {
    SHIM_ISOLATION_PROCESS = 0,
    SHIM_ISOLATION_HYPERVISOR = 1,
};

/* Decides process vs hypervisor isolation for one container:
 *   1. the container's annotation io.runhcs.isolation (process|hypervisor),
 *   2. the pod sandbox's annotation (pod may be NULL),
 *   3. runhcs Options.sandbox_isolation = HYPERVISOR, or windows.hyperv present,
 *   4. Linux containers (spec.linux) default to hypervisor, others to process.
 * A malformed annotation value is InvalidArgument naming the key. */
int shim_resolve_isolation(const struct bundle_spec *container, const struct bundle_spec *pod,
                           const struct shim_options *opts, enum shim_isolation *out,
                           shim_error_t **err);
const char *shim_isolation_name(enum shim_isolation isolation);

#endif
