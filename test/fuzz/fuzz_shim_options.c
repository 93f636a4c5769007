/* libFuzzer: bytes -> google.protobuf.Any -> runhcs Options (shim/options.c),
 * plus the log level and isolation decisions that consume the result. */
#include <stddef.h>
#include <stdint.h>

#include "common/log.h"
#include "shim/options.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int configured;
    if (!configured) {
        log_configure(2, LOG_LEVEL_PANIC, LOG_FORMAT_TEXT); /* quiet */
        configured = 1;
    }
    struct shim_options opts;
    shim_error_t *err = NULL;
    if (shim_options_decode(data, size, &opts, &err) < 0) {
        error_free(err);
        return 0;
    }
    (void)shim_options_log_level(&opts, false);
    enum shim_isolation iso;
    struct bundle_spec spec = {0};
    spec.has_linux = size & 1;
    if (shim_resolve_isolation(&spec, NULL, &opts, &iso, &err) < 0)
        error_free(err);
    shim_options_free(&opts);
    return 0;
}
