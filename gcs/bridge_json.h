/* JSON field access with Go encoding/json semantics, for GCS bridge bodies.
 *
 * Keys match exactly first, then case-insensitively (ASCII, plus the two
 * non-ASCII runes Go folds onto ASCII letters: U+212A KELVIN SIGN = k and
 * U+017F LONG S = s). Unknown keys are ignored by construction. A JSON null
 * counts as absent (Go leaves the field at its zero value). */
#ifndef GCS_BRIDGE_JSON_H
#define GCS_BRIDGE_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"

/* Borrowed value for `key`, or NULL if absent or null. With several
 * case-insensitive matches and no exact one, the last wins (as in Go). */
json_t *gcs_json_get(const json_t *obj, const char *key);
/* Go's key comparison (case folding as above). */
bool gcs_json_key_equal_fold(const char *a, const char *b);

/* Typed getters. Return 1 if the key was found and stored, 0 if absent (the
 * output is untouched) and -1 with *err (RPC_INVALID_ARGUMENT) if the value
 * has the wrong JSON type or range, or if `required` and absent. Integers must
 * be JSON integers within the C type's range (Go rejects 4.0 and overflow). */
int gcs_json_string(const json_t *obj, const char *key, bool required, const char **out,
                    shim_error_t **err);
int gcs_json_bool(const json_t *obj, const char *key, bool required, bool *out, shim_error_t **err);
int gcs_json_u8(const json_t *obj, const char *key, bool required, uint8_t *out,
                shim_error_t **err);
int gcs_json_u16(const json_t *obj, const char *key, bool required, uint16_t *out,
                 shim_error_t **err);
int gcs_json_u32(const json_t *obj, const char *key, bool required, uint32_t *out,
                 shim_error_t **err);
int gcs_json_i32(const json_t *obj, const char *key, bool required, int32_t *out,
                 shim_error_t **err);
int gcs_json_u64(const json_t *obj, const char *key, bool required, uint64_t *out,
                 shim_error_t **err);
/* Borrowed object / array. */
int gcs_json_object(const json_t *obj, const char *key, bool required, json_t **out,
                    shim_error_t **err);
int gcs_json_array(const json_t *obj, const char *key, bool required, json_t **out,
                   shim_error_t **err);
/* JSON-in-string: the value is a string holding a JSON document; *out is a new
 * reference to the decoded value (any JSON type). An empty string counts as
 * absent. Invalid inner JSON -> -1. */
int gcs_json_in_string(const json_t *obj, const char *key, bool required, json_t **out,
                       shim_error_t **err);

/* Setters (exact casing); they return -1 only on out-of-memory. */
int gcs_json_set_string(json_t *obj, const char *key, const char *value);
/* Skips the key when value is NULL or "" (Go omitempty). */
int gcs_json_set_string_omitempty(json_t *obj, const char *key, const char *value);
int gcs_json_set_int(json_t *obj, const char *key, long long value);
int gcs_json_set_bool(json_t *obj, const char *key, bool value);
/* Stores a new reference to value (incref). */
int gcs_json_set_copy(json_t *obj, const char *key, json_t *value);
/* Encodes value compactly and stores it as a string (JSON-in-string). */
int gcs_json_set_in_string(json_t *obj, const char *key, const json_t *value);

#endif
