/* Helpers for golden JSON tests (header-only, included by test_oci_*,
 * test_hcs_* and test_uvm_* cmocka tests).
 *
 * Golden files live in test/golden/. They are found through $GOLDEN_DIR, or
 * test/golden relative to the working directory, or relative to the test
 * binary (build/test/<bin>, build/san/test/<bin> or build/windows/test/<bin>.exe). Comparison is
 * structural (json_equal): key order does not matter, a missing key is a
 * mismatch. */
#ifndef TEST_GOLDEN_H
#define TEST_GOLDEN_H

#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

static inline json_t *golden_try(const char *dir, const char *name)
{
    char path[2 * PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path) ||
        access(path, R_OK) != 0)
        return NULL;
    json_error_t jerr;
    json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (j == NULL)
        fprintf(stderr, "golden %s: %s (line %d)\n", path, jerr.text, jerr.line);
    return j;
}

static inline json_t *golden_load(const char *name)
{
    const char *env = getenv("GOLDEN_DIR");
    json_t *j = env ? golden_try(env, name) : NULL;
    if (j == NULL)
        j = golden_try("test/golden", name);
    char exe[PATH_MAX];
    size_t n = sizeof(exe);
    if (j == NULL && uv_exepath(exe, &n) == 0) {
        /* The binary's directory: cut at the last separator ('\\' on Windows). */
        char *slash = strrchr(exe, '/');
        char *bslash = strrchr(exe, '\\');
        if (bslash != NULL && (slash == NULL || bslash > slash))
            slash = bslash;
        if (slash != NULL) {
            *slash = '\0';
            char dir[PATH_MAX + 32];
            snprintf(dir, sizeof(dir), "%s/../../test/golden", exe);
            j = golden_try(dir, name);
            if (j == NULL) {
                snprintf(dir, sizeof(dir), "%s/../../../test/golden", exe);
                j = golden_try(dir, name);
            }
        }
    }
    if (j == NULL)
        fprintf(stderr, "golden file %s not found\n", name);
    return j;
}

static inline void golden_print_diff(const json_t *actual, const json_t *expected)
{
    char *a = json_dumps(actual, JSON_INDENT(2) | JSON_SORT_KEYS);
    char *e = json_dumps(expected, JSON_INDENT(2) | JSON_SORT_KEYS);
    fprintf(stderr, "--- expected\n%s\n--- actual\n%s\n", e ? e : "(null)", a ? a : "(null)");
    free(a);
    free(e);
}

/* True when actual equals the golden document; prints both otherwise. */
static inline bool golden_matches(const json_t *actual, const char *name)
{
    json_t *expected = golden_load(name);
    bool ok = expected != NULL && actual != NULL && json_equal(actual, expected);
    if (!ok && expected != NULL)
        golden_print_diff(actual, expected);
    json_decref(expected);
    return ok;
}

/* True when actual equals the inline JSON text; prints both otherwise. */
static inline bool json_matches_text(const json_t *actual, const char *text)
{
    json_error_t jerr;
    json_t *expected = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    if (expected == NULL) {
        fprintf(stderr, "bad expected JSON: %s\n", jerr.text);
        return false;
    }
    bool ok = actual != NULL && json_equal(actual, expected);
    if (!ok)
        golden_print_diff(actual, expected);
    json_decref(expected);
    return ok;
}

/* A fake host file system: a NULL-terminated list of existing paths. */
static inline bool golden_file_exists(void *ctx, const char *path)
{
    for (const char *const *p = ctx; *p != NULL; p++) {
        if (strcmp(*p, path) == 0)
            return true;
    }
    return false;
}

#endif
