#include "gcs/guest/procparams.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void gcs_strv_free(char **v)
{
    if (!v)
        return;
    for (char **p = v; *p; p++)
        free(*p);
    free(v);
}

size_t gcs_strv_len(char *const *v)
{
    size_t n = 0;
    while (v && v[n])
        n++;
    return n;
}

/* A growable word list for the splitter. */
struct strv_builder {
    char **v;
    size_t n, cap;
};

static int strv_push(struct strv_builder *b, char *s)
{
    if (b->n + 2 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 8;
        char **nv = realloc(b->v, cap * sizeof(*nv));
        if (!nv)
            return -1;
        b->v = nv;
        b->cap = cap;
    }
    b->v[b->n++] = s;
    b->v[b->n] = NULL;
    return 0;
}

/* Reads one word starting at *pp into word (which has room for strlen(line)+1).
 * Returns 1 if a word was read, 0 at the end, -1 on an unterminated quote. */
static int next_word(const char **pp, char *word)
{
    const char *p = *pp;
    while (*p == ' ' || *p == '\t' || *p == '\n')
        p++;
    if (*p == '\0') {
        *pp = p;
        return 0;
    }
    size_t n = 0;
    while (*p && *p != ' ' && *p != '\t' && *p != '\n') {
        if (*p == '\'') {
            const char *end = strchr(p + 1, '\'');
            if (!end)
                return -1;
            memcpy(word + n, p + 1, (size_t)(end - p - 1));
            n += (size_t)(end - p - 1);
            p = end + 1;
        } else if (*p == '"') {
            p++;
            while (*p && *p != '"') {
                if (*p == '\\' && p[1] && strchr("\\\"$`\n", p[1]))
                    p++;
                word[n++] = *p++;
            }
            if (*p != '"')
                return -1;
            p++;
        } else if (*p == '\\' && p[1]) {
            word[n++] = p[1];
            p += 2;
        } else {
            word[n++] = *p++;
        }
    }
    word[n] = '\0';
    *pp = p;
    return 1;
}

int gcs_split_command_line(const char *line, char ***out, shim_error_t **err)
{
    struct strv_builder b = {0};
    char *word = malloc(strlen(line) + 1);
    if (!word || strv_push(&b, NULL) < 0)
        goto oom;
    b.n = 0;
    const char *p = line;
    int rc;
    while ((rc = next_word(&p, word)) == 1) {
        char *dup = strdup(word);
        if (!dup || strv_push(&b, dup) < 0) {
            free(dup);
            goto oom;
        }
    }
    free(word);
    if (rc < 0) {
        gcs_strv_free(b.v);
        return error_set(err, RPC_INVALID_ARGUMENT, "unterminated quote in CommandLine");
    }
    *out = b.v;
    return 0;
oom:
    free(word);
    gcs_strv_free(b.v);
    return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
}

static int strv_from_json_array(const json_t *arr, const char *what, char ***out,
                                shim_error_t **err)
{
    size_t n = json_array_size(arr);
    char **v = calloc(n + 1, sizeof(*v));
    if (!v)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_array_get(arr, i);
        if (!json_is_string(s)) {
            gcs_strv_free(v);
            return error_set(err, RPC_INVALID_ARGUMENT, "%s[%zu] must be a string", what, i);
        }
        v[i] = strdup(json_string_value(s));
        if (!v[i]) {
            gcs_strv_free(v);
            return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
        }
    }
    *out = v;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int env_from_json_object(const json_t *obj, char ***out, shim_error_t **err)
{
    char **v = calloc(json_object_size(obj) + 1, sizeof(*v));
    if (!v)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    size_t n = 0;
    const char *k;
    json_t *val;
    json_object_foreach((json_t *)obj, k, val)
    {
        if (!json_is_string(val)) {
            gcs_strv_free(v);
            return error_set(err, RPC_INVALID_ARGUMENT, "Environment[%s] must be a string", k);
        }
        if (asprintf(&v[n], "%s=%s", k, json_string_value(val)) < 0) {
            v[n] = NULL;
            gcs_strv_free(v);
            return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
        }
        n++;
    }
    qsort(v, n, sizeof(*v), cmp_str);
    *out = v;
    return 0;
}

static int command_argv(const struct gcs_process_parameters *p, char ***out, shim_error_t **err)
{
    if (p->command_args && !json_is_array(p->command_args))
        return error_set(err, RPC_INVALID_ARGUMENT, "CommandArgs must be an array");
    if (p->command_args && json_array_size(p->command_args) > 0)
        return strv_from_json_array(p->command_args, "CommandArgs", out, err);
    if (p->command_line && gcs_split_command_line(p->command_line, out, err) < 0)
        return -1;
    if (!p->command_line || !(*out)[0]) {
        if (p->command_line)
            gcs_strv_free(*out);
        *out = NULL;
        return error_set(err, RPC_INVALID_ARGUMENT,
                         "ProcessParameters: CommandArgs or CommandLine required");
    }
    return 0;
}

int gcs_guest_command_from_params(const struct gcs_process_parameters *p,
                                  struct gcs_guest_command *out, shim_error_t **err)
{
    memset(out, 0, sizeof(*out));
    if (command_argv(p, &out->argv, err) < 0)
        return -1;
    if (p->environment && !json_is_object(p->environment)) {
        error_set(err, RPC_INVALID_ARGUMENT, "Environment must be an object");
        goto fail;
    }
    if (p->environment) {
        if (env_from_json_object(p->environment, &out->env, err) < 0)
            goto fail;
    } else if (!(out->env = calloc(1, sizeof(char *)))) {
        error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
        goto fail;
    }
    if (p->working_directory && p->working_directory[0] &&
        !(out->working_dir = strdup(p->working_directory))) {
        error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
        goto fail;
    }
    return 0;
fail:
    gcs_guest_command_free(out);
    return -1;
}

void gcs_guest_command_free(struct gcs_guest_command *c)
{
    gcs_strv_free(c->argv);
    gcs_strv_free(c->env);
    free(c->working_dir);
    memset(c, 0, sizeof(*c));
}

bool gcs_guest_oci_process_terminal(const json_t *oci_process)
{
    return json_is_true(json_object_get(oci_process, "terminal"));
}

int gcs_guest_oci_process(const json_t *oci_process, json_t **out, shim_error_t **err)
{
    if (!json_is_object(oci_process))
        return error_set(err, RPC_INVALID_ARGUMENT, "OciProcess must be an object");
    json_t *args = json_object_get(oci_process, "args");
    if (!json_is_array(args) || json_array_size(args) == 0)
        return error_set(err, RPC_INVALID_ARGUMENT, "OciProcess.args must be a non-empty array");
    for (size_t i = 0; i < json_array_size(args); i++) {
        if (!json_is_string(json_array_get(args, i)))
            return error_set(err, RPC_INVALID_ARGUMENT, "OciProcess.args[%zu] must be a string", i);
    }
    json_t *copy = json_deep_copy(oci_process);
    if (!copy)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    json_t *cwd = json_object_get(copy, "cwd");
    if (!json_is_string(cwd) || json_string_length(cwd) == 0)
        json_object_set_new(copy, "cwd", json_string("/"));
    *out = copy;
    return 0;
}
