#include "shim/bundle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Platform parts: shim/unix/bundle.c (files, mount(2)), shim/win/bundle.c
 * (files; layers are attached by the UVM host, nothing is mounted). */

/* ---- config.json ------------------------------------------------------------ */

static int check_annotations(json_t *annotations, const char *origin, shim_error_t **err)
{
    if (!json_is_object(annotations))
        return error_set(err, RPC_INVALID_ARGUMENT, "%s: \"annotations\" must be an object",
                         origin);
    const char *key;
    json_t *value;
    json_object_foreach(annotations, key, value)
    {
        if (!json_is_string(value))
            return error_set(err, RPC_INVALID_ARGUMENT, "%s: annotation \"%s\" must be a string",
                             origin, key);
    }
    return 0;
}

int bundle_spec_parse(const char *text, size_t len, const char *origin, struct bundle_spec *out,
                      shim_error_t **err)
{
    memset(out, 0, sizeof(*out));
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        return error_set(err, RPC_INVALID_ARGUMENT, "%s: invalid JSON at line %d column %d: %s",
                         origin, jerr.line, jerr.column, jerr.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return error_set(err, RPC_INVALID_ARGUMENT, "%s: the OCI spec must be a JSON object",
                         origin);
    }
    json_t *annotations = json_object_get(root, "annotations");
    if (annotations != NULL && !json_is_null(annotations) &&
        check_annotations(annotations, origin, err) < 0) {
        json_decref(root);
        return -1;
    }
    out->root = root;
    out->annotations = json_is_object(annotations) ? annotations : NULL;
    out->has_process = json_is_object(json_object_get(root, "process"));
    out->has_linux = json_is_object(json_object_get(root, "linux"));
    json_t *windows = json_object_get(root, "windows");
    out->has_windows = json_is_object(windows);
    out->has_hyperv = out->has_windows && json_is_object(json_object_get(windows, "hyperv"));
    return 0;
}

int bundle_spec_load(const char *bundle_dir, struct bundle_spec *out, shim_error_t **err)
{
    char *path = NULL;
    char *text = NULL;
    size_t len = 0;
    memset(out, 0, sizeof(*out));
    if (asprintf(&path, "%s/config.json", bundle_dir) < 0)
        return error_set(err, RPC_INTERNAL, "out of memory");
    int ret = bundle_read_file(path, &text, &len, err);
    if (ret == 0)
        ret = bundle_spec_parse(text, len, path, out, err);
    free(text);
    free(path);
    return ret;
}

const char *bundle_spec_annotation(const struct bundle_spec *spec, const char *key)
{
    if (spec == NULL || spec->annotations == NULL)
        return NULL;
    return json_string_value(json_object_get(spec->annotations, key));
}

void bundle_spec_free(struct bundle_spec *spec)
{
    if (spec == NULL)
        return;
    json_decref(spec->root);
    memset(spec, 0, sizeof(*spec));
}

/* ---- mounts ----------------------------------------------------------------- */

int bundle_mount_rootfs_pb(const char *bundle_dir, Containerd__Types__Mount *const *mounts,
                           size_t n, shim_error_t **err)
{
    struct bundle_mount *converted = calloc(n ? n : 1, sizeof(*converted));
    if (converted == NULL)
        return error_set(err, RPC_INTERNAL, "out of memory");
    for (size_t i = 0; i < n; i++) {
        converted[i].type = mounts[i]->type;
        converted[i].source = mounts[i]->source;
        converted[i].options = (const char *const *)mounts[i]->options;
        converted[i].n_options = mounts[i]->n_options;
    }
    int ret = bundle_mount_rootfs(bundle_dir, converted, n, err);
    free(converted);
    return ret;
}

/* ---- Windows layers ---------------------------------------------------------- */

static enum bundle_layer_type layer_type_of(const char *type, bool *known)
{
    *known = true;
    if (type != NULL && strcmp(type, "windows-layer") == 0)
        return BUNDLE_LAYER_WINDOWS;
    if (type != NULL && strcmp(type, "lcow-layer") == 0)
        return BUNDLE_LAYER_LCOW;
    *known = false;
    return BUNDLE_LAYER_WINDOWS;
}

bool bundle_mount_is_layer(const struct bundle_mount *m)
{
    bool known;
    layer_type_of(m->type, &known);
    return known;
}

void bundle_layers_free(struct bundle_layers *layers)
{
    if (layers == NULL)
        return;
    free(layers->scratch);
    for (size_t i = 0; i < layers->n_parents; i++)
        free(layers->parents[i]);
    free(layers->parents);
    memset(layers, 0, sizeof(*layers));
}

/* parentLayerPaths=["C:\\...\\1","C:\\...\\2"] (JSON: backslashes escaped). */
static int parse_parents(const char *json_text, struct bundle_layers *out, shim_error_t **err)
{
    json_error_t jerr;
    json_t *arr = json_loads(json_text, JSON_DECODE_ANY, &jerr);
    int ret = 0;
    if (!json_is_array(arr)) {
        ret = error_set(err, RPC_INVALID_ARGUMENT,
                        "rootfs option " BUNDLE_PARENT_LAYERS_OPTION "%s is not a JSON array",
                        json_text);
        goto out;
    }
    size_t n = json_array_size(arr);
    out->parents = calloc(n + 1, sizeof(char *));
    if (out->parents == NULL) {
        ret = error_set(err, RPC_INTERNAL, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const char *path = json_string_value(json_array_get(arr, i));
        if (path == NULL || path[0] == '\0') {
            ret = error_set(err, RPC_INVALID_ARGUMENT,
                            "rootfs option " BUNDLE_PARENT_LAYERS_OPTION
                            "%s: entry %zu is not a non-empty string",
                            json_text, i);
            goto out;
        }
        out->parents[i] = strdup(path);
        if (out->parents[i] == NULL) {
            ret = error_set(err, RPC_INTERNAL, "out of memory");
            goto out;
        }
        out->n_parents++;
    }
out:
    json_decref(arr);
    return ret;
}

static int parse_layer_options(const struct bundle_mount *m, struct bundle_layers *out,
                               shim_error_t **err)
{
    const size_t prefix_len = strlen(BUNDLE_PARENT_LAYERS_OPTION);
    bool seen_parents = false;
    for (size_t i = 0; i < m->n_options; i++) {
        const char *opt = m->options[i];
        if (opt == NULL)
            continue;
        if (strcmp(opt, "ro") == 0) {
            out->read_only = true;
        } else if (strcmp(opt, "rw") == 0) {
            out->read_only = false;
        } else if (strncmp(opt, BUNDLE_PARENT_LAYERS_OPTION, prefix_len) == 0) {
            if (seen_parents)
                return error_set(err, RPC_INVALID_ARGUMENT,
                                 "rootfs mount has more than one " BUNDLE_PARENT_LAYERS_OPTION
                                 " option");
            seen_parents = true;
            if (parse_parents(opt + prefix_len, out, err) < 0)
                return -1;
        }
        /* Other options are ignored, as hcsshim does. */
    }
    if (out->parents == NULL) {
        out->parents = calloc(1, sizeof(char *));
        if (out->parents == NULL)
            return error_set(err, RPC_INTERNAL, "out of memory");
    }
    return 0;
}

int bundle_layers_parse(const struct bundle_mount *m, struct bundle_layers *out, shim_error_t **err)
{
    memset(out, 0, sizeof(*out));
    bool known;
    out->type = layer_type_of(m->type, &known);
    if (!known)
        return error_set(err, RPC_INVALID_ARGUMENT,
                         "rootfs mount type %s is not a layer mount (windows-layer, lcow-layer)",
                         m->type ? m->type : "(none)");
    if (m->source == NULL || m->source[0] == '\0')
        return error_set(err, RPC_INVALID_ARGUMENT, "%s rootfs mount has no source", m->type);
    out->scratch = strdup(m->source);
    if (out->scratch == NULL)
        return error_set(err, RPC_INTERNAL, "out of memory");
    if (parse_layer_options(m, out, err) < 0) {
        bundle_layers_free(out);
        return -1;
    }
    return 0;
}

int bundle_layers_from_rootfs(const struct bundle_mount *mounts, size_t n,
                              struct bundle_layers *out, shim_error_t **err)
{
    memset(out, 0, sizeof(*out));
    if (n == 0)
        return 0;
    if (n > 1)
        return error_set(err, RPC_INVALID_ARGUMENT,
                         "a Windows rootfs is one layer mount; got %zu mounts", n);
    if (!bundle_mount_is_layer(&mounts[0]))
        return error_set(err, RPC_UNIMPLEMENTED,
                         "rootfs mount type %s is not supported (windows-layer, lcow-layer)",
                         mounts[0].type ? mounts[0].type : "(none)");
    return bundle_layers_parse(&mounts[0], out, err);
}

/* ---- small files ------------------------------------------------------------ */

char *bundle_read_text(const char *dir, const char *name, shim_error_t **err)
{
    char *path = NULL;
    char *text = NULL;
    size_t len = 0;
    if (asprintf(&path, "%s/%s", dir, name) < 0) {
        error_set(err, RPC_INTERNAL, "out of memory");
        return NULL;
    }
    if (bundle_read_file(path, &text, &len, err) < 0)
        text = NULL;
    free(path);
    return text;
}
