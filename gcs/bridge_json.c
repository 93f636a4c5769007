#include "gcs/bridge_json.h"

#include <string.h>

/* Reads one folding unit from s: an ASCII letter lower-cased, U+212A as 'k',
 * U+017F as 's', any other byte as itself. Returns the bytes consumed. */
static int fold_unit(const unsigned char *s, int *unit)
{
    if (s[0] == 0xE2 && s[1] == 0x84 && s[2] == 0xAA) {
        *unit = 'k';
        return 3;
    }
    if (s[0] == 0xC5 && s[1] == 0xBF) {
        *unit = 's';
        return 2;
    }
    int c = s[0];
    if (c >= 'A' && c <= 'Z')
        c += 'a' - 'A';
    *unit = c;
    return 1;
}

bool gcs_json_key_equal_fold(const char *a, const char *b)
{
    const unsigned char *p = (const unsigned char *)a, *q = (const unsigned char *)b;
    while (*p && *q) {
        int ua, ub;
        p += fold_unit(p, &ua);
        q += fold_unit(q, &ub);
        if (ua != ub)
            return false;
    }
    return *p == 0 && *q == 0;
}

json_t *gcs_json_get(const json_t *obj, const char *key)
{
    if (!json_is_object(obj))
        return NULL;
    json_t *v = json_object_get(obj, key);
    if (v == NULL) {
        const char *k;
        json_t *cand;
        json_object_foreach((json_t *)obj, k, cand)
        {
            if (gcs_json_key_equal_fold(k, key))
                v = cand;
        }
    }
    return json_is_null(v) ? NULL : v;
}

static int lookup(const json_t *obj, const char *key, bool required, json_t **out,
                  shim_error_t **err)
{
    *out = gcs_json_get(obj, key);
    if (*out != NULL)
        return 1;
    if (required)
        return error_set(err, RPC_INVALID_ARGUMENT, "missing required field %s", key);
    return 0;
}

static int wrong_type(const char *key, const char *want, shim_error_t **err)
{
    return error_set(err, RPC_INVALID_ARGUMENT, "field %s: expected %s", key, want);
}

int gcs_json_string(const json_t *obj, const char *key, bool required, const char **out,
                    shim_error_t **err)
{
    json_t *v;
    int rc = lookup(obj, key, required, &v, err);
    if (rc <= 0)
        return rc;
    if (!json_is_string(v))
        return wrong_type(key, "a string", err);
    *out = json_string_value(v);
    return 1;
}

int gcs_json_bool(const json_t *obj, const char *key, bool required, bool *out, shim_error_t **err)
{
    json_t *v;
    int rc = lookup(obj, key, required, &v, err);
    if (rc <= 0)
        return rc;
    if (!json_is_boolean(v))
        return wrong_type(key, "a boolean", err);
    *out = json_is_true(v);
    return 1;
}

static int get_int(const json_t *obj, const char *key, bool required, long long min, long long max,
                   long long *out, shim_error_t **err)
{
    json_t *v;
    int rc = lookup(obj, key, required, &v, err);
    if (rc <= 0)
        return rc;
    if (!json_is_integer(v))
        return wrong_type(key, "an integer", err);
    long long n = json_integer_value(v);
    if (n < min || n > max)
        return error_set(err, RPC_INVALID_ARGUMENT, "field %s: %lld is out of range", key, n);
    *out = n;
    return 1;
}

#define DEFINE_INT_GETTER(name, type, min, max)                                                    \
    int name(const json_t *obj, const char *key, bool required, type *out, shim_error_t **err)     \
    {                                                                                              \
        long long n;                                                                               \
        int rc = get_int(obj, key, required, min, max, &n, err);                                   \
        if (rc == 1)                                                                               \
            *out = (type)n;                                                                        \
        return rc;                                                                                 \
    }

DEFINE_INT_GETTER(gcs_json_u8, uint8_t, 0, UINT8_MAX)
DEFINE_INT_GETTER(gcs_json_u16, uint16_t, 0, UINT16_MAX)
DEFINE_INT_GETTER(gcs_json_u32, uint32_t, 0, UINT32_MAX)
DEFINE_INT_GETTER(gcs_json_i32, int32_t, INT32_MIN, INT32_MAX)

/* jansson keeps integers as long long: u64 values above INT64_MAX do not parse. */
DEFINE_INT_GETTER(gcs_json_u64, uint64_t, 0, INT64_MAX)

int gcs_json_object(const json_t *obj, const char *key, bool required, json_t **out,
                    shim_error_t **err)
{
    json_t *v;
    int rc = lookup(obj, key, required, &v, err);
    if (rc <= 0)
        return rc;
    if (!json_is_object(v))
        return wrong_type(key, "an object", err);
    *out = v;
    return 1;
}

int gcs_json_array(const json_t *obj, const char *key, bool required, json_t **out,
                   shim_error_t **err)
{
    json_t *v;
    int rc = lookup(obj, key, required, &v, err);
    if (rc <= 0)
        return rc;
    if (!json_is_array(v))
        return wrong_type(key, "an array", err);
    *out = v;
    return 1;
}

int gcs_json_in_string(const json_t *obj, const char *key, bool required, json_t **out,
                       shim_error_t **err)
{
    const char *text = NULL;
    int rc = gcs_json_string(obj, key, required, &text, err);
    if (rc <= 0)
        return rc;
    if (text[0] == '\0') {
        if (required)
            return error_set(err, RPC_INVALID_ARGUMENT, "missing required field %s", key);
        return 0;
    }
    json_error_t jerr;
    json_t *v =
        json_loadb(text, json_string_length(gcs_json_get(obj, key)), JSON_DECODE_ANY, &jerr);
    if (v == NULL)
        return error_set(err, RPC_INVALID_ARGUMENT, "field %s: invalid JSON in string: %s", key,
                         jerr.text);
    *out = v;
    return 1;
}

int gcs_json_set_string(json_t *obj, const char *key, const char *value)
{
    return json_object_set_new(obj, key, json_string(value ? value : ""));
}

int gcs_json_set_string_omitempty(json_t *obj, const char *key, const char *value)
{
    if (value == NULL || value[0] == '\0')
        return 0;
    return gcs_json_set_string(obj, key, value);
}

int gcs_json_set_int(json_t *obj, const char *key, long long value)
{
    return json_object_set_new(obj, key, json_integer(value));
}

int gcs_json_set_bool(json_t *obj, const char *key, bool value)
{
    return json_object_set_new(obj, key, json_boolean(value));
}

int gcs_json_set_copy(json_t *obj, const char *key, json_t *value)
{
    return json_object_set(obj, key, value);
}

int gcs_json_set_in_string(json_t *obj, const char *key, const json_t *value)
{
    char *text = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
    if (text == NULL)
        return -1;
    int rc = json_object_set_new(obj, key, json_string(text));
    free(text);
    return rc;
}
