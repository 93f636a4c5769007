/* libFuzzer: bytes -> bundle_spec_parse (an OCI config.json) and the
 * decisions the shim takes from it (isolation, shim grouping); then mount
 * option lists -> bundle_mount_args_parse, both from the spec's "mounts"
 * (options arrays) and from the raw input split at '\n' (containerd rootfs
 * mount options).
 *
 * Checks beyond "no crash, no leak": a failed parse is InvalidArgument with
 * nothing kept; a parsed spec's flags agree with its JSON; mount flags stay
 * within the known mount(2) bits; and parsing an option list twice in a row
 * gives the same flags and propagation with the data repeated (every option
 * sets, clears or replaces, so the last occurrence wins). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>

#include "common/log.h"
#include "shim/bundle.h"
#include "shim/options.h"
#include "shim/start.h"

#define MAX_OPTIONS 256

static const unsigned long known_flags =
    MS_SYNCHRONOUS | MS_NOATIME | MS_BIND | MS_NODEV | MS_NODIRATIME | MS_DIRSYNC | MS_NOEXEC |
    MS_MANDLOCK | MS_RELATIME | MS_STRICTATIME | MS_NOSUID | MS_REC | MS_REMOUNT | MS_RDONLY;

static bool valid_propagation(unsigned long p)
{
    unsigned long base = p & ~(unsigned long)MS_REC;
    return p == 0 || base == MS_PRIVATE || base == MS_SHARED || base == MS_SLAVE ||
           base == MS_UNBINDABLE;
}

static void check_mount_options(const char *const *options, size_t n)
{
    struct bundle_mount m = {
        .type = "overlay", .source = "overlay", .options = options, .n_options = n};
    struct bundle_mount_args once, twice;
    shim_error_t *err = NULL;
    if (bundle_mount_args_parse(&m, &once, &err) < 0)
        abort(); /* only out-of-memory can fail */
    if ((once.flags & ~known_flags) != 0 || !valid_propagation(once.propagation))
        abort();
    if (once.data != NULL && once.data[0] == '\0')
        abort(); /* empty options are skipped, so data is never "" */

    const char **doubled = malloc(2 * (n ? n : 1) * sizeof(*doubled));
    if (doubled == NULL) {
        bundle_mount_args_free(&once);
        return;
    }
    memcpy(doubled, options, n * sizeof(*doubled));
    memcpy(doubled + n, options, n * sizeof(*doubled));
    m.options = doubled;
    m.n_options = 2 * n;
    if (bundle_mount_args_parse(&m, &twice, &err) < 0)
        abort();
    if (twice.flags != once.flags || twice.propagation != once.propagation)
        abort();
    if ((once.data == NULL) != (twice.data == NULL))
        abort();
    if (once.data != NULL) {
        size_t len = strlen(once.data);
        if (strlen(twice.data) != 2 * len + 1 || strncmp(twice.data, once.data, len) != 0 ||
            twice.data[len] != ',' || strcmp(twice.data + len + 1, once.data) != 0)
            abort();
    }
    bundle_mount_args_free(&twice);
    bundle_mount_args_free(&once);
    if (once.data != NULL)
        abort();
    free(doubled);
}

/* The spec's own mounts[].options arrays (non-strings become NULL entries,
 * which the parser must skip). */
static void spec_mounts(const json_t *root)
{
    size_t i;
    json_t *mount;
    json_array_foreach(json_object_get(root, "mounts"), i, mount)
    {
        json_t *opts = json_object_get(mount, "options");
        size_t n = json_array_size(opts);
        if (n == 0 || n > MAX_OPTIONS)
            continue;
        const char *list[MAX_OPTIONS];
        for (size_t j = 0; j < n; j++)
            list[j] = json_string_value(json_array_get(opts, j));
        check_mount_options(list, n);
    }
}

/* The raw input as one option per line. */
static void raw_mounts(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (text == NULL)
        return;
    memcpy(text, data, size);
    text[size] = '\0';
    const char *list[MAX_OPTIONS];
    size_t n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(text, "\n", &save); tok && n < MAX_OPTIONS;
         tok = strtok_r(NULL, "\n", &save))
        list[n++] = tok;
    check_mount_options(list, n);
    free(text);
}

static void check_spec(const struct bundle_spec *spec, size_t size)
{
    const json_t *root = spec->root;
    json_t *windows = json_object_get(root, "windows");
    if (!json_is_object(root) ||
        spec->has_process != json_is_object(json_object_get(root, "process")) ||
        spec->has_linux != json_is_object(json_object_get(root, "linux")) ||
        spec->has_windows != json_is_object(windows) ||
        spec->has_hyperv !=
            (json_is_object(windows) && json_is_object(json_object_get(windows, "hyperv"))))
        abort();
    if (spec->annotations != NULL && spec->annotations != json_object_get(root, "annotations"))
        abort();
    const char *key;
    json_t *value;
    json_object_foreach(spec->annotations, key, value)
    {
        if (!json_is_string(value) || bundle_spec_annotation(spec, key) != json_string_value(value))
            abort();
    }

    shim_error_t *err = NULL;
    enum shim_isolation iso;
    if (shim_resolve_isolation(spec, size & 1 ? spec : NULL, NULL, &iso, &err) < 0) {
        if (err == NULL || err->code != RPC_INVALID_ARGUMENT)
            abort();
        error_free(err);
        err = NULL;
    } else if (iso != SHIM_ISOLATION_PROCESS && iso != SHIM_ISOLATION_HYPERVISOR) {
        abort();
    }
    struct shim_group group;
    static const char task_id[] = "task-1";
    if (shim_group_resolve(spec, task_id, &group, &err) < 0) {
        if (err == NULL || err->code != RPC_INVALID_ARGUMENT)
            abort();
        error_free(err);
    } else if (group.id == NULL) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool quiet;
    if (!quiet) {
        log_configure(2, LOG_LEVEL_PANIC, LOG_FORMAT_TEXT);
        quiet = true;
    }
    struct bundle_spec spec;
    shim_error_t *err = NULL;
    if (bundle_spec_parse((const char *)data, size, "config.json", &spec, &err) < 0) {
        if (err == NULL || err->code != RPC_INVALID_ARGUMENT || spec.root != NULL)
            abort();
        error_free(err);
    } else {
        check_spec(&spec, size);
        spec_mounts(spec.root);
        bundle_spec_free(&spec);
    }
    raw_mounts(data, size);
    return 0;
}
