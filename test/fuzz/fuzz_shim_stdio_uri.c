/* libFuzzer: bytes (up to the first NUL) -> shim_stdio_uri_parse, the stdio
 * strings containerd passes in Create/Exec (FIFO paths, fifo://, file://,
 * binary:// with a percent-encoded query).
 *
 * Checks beyond "no crash, no leak": a failure leaves the result zeroed with
 * an InvalidArgument error; a success has an absolute path, a NULL-terminated
 * list of unique non-empty keys with values (binary:// only); and the parsed
 * result, percent-encoded again into a URI of the same scheme, parses back to
 * exactly the same path and arguments. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shim/stdio.h"

static bool all_zero(const struct shim_stdio_uri *u)
{
    return u->kind == SHIM_STDIO_NONE && u->path == NULL && u->args == NULL && u->n_args == 0;
}

static void check_shape(const char *s, const struct shim_stdio_uri *u)
{
    if (s[0] == '\0') {
        if (!all_zero(u))
            abort();
        return;
    }
    if (u->kind == SHIM_STDIO_NONE || u->path == NULL || u->path[0] != '/')
        abort();
    if (u->kind != SHIM_STDIO_BINARY && u->n_args != 0)
        abort();
    if (u->n_args % 2 != 0 || (u->n_args > 0 && (u->args == NULL || u->args[u->n_args] != NULL)))
        abort();
    for (size_t i = 0; i < u->n_args; i += 2) {
        if (u->args[i][0] == '\0')
            abort(); /* empty keys are dropped */
        for (size_t j = 0; j < i; j += 2) {
            if (strcmp(u->args[i], u->args[j]) == 0)
                abort(); /* only a key's first value is kept */
        }
    }
}

/* Percent-encodes everything but unreserved characters (and '/' in paths). */
static void encode(FILE *f, const char *s, bool keep_slash)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            strchr("-._~", c) != NULL || (keep_slash && c == '/'))
            fputc(c, f);
        else
            fprintf(f, "%%%02X", c);
    }
}

static char *reencode(const struct shim_stdio_uri *u)
{
    static const char *const scheme[] = {"", "fifo", "file", "binary"};
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (f == NULL)
        return NULL;
    fprintf(f, "%s://", scheme[u->kind]);
    encode(f, u->path, true);
    for (size_t i = 0; i < u->n_args; i += 2) {
        fputc(i == 0 ? '?' : '&', f);
        encode(f, u->args[i], false);
        fputc('=', f);
        encode(f, u->args[i + 1], false);
    }
    fclose(f);
    return text;
}

static void check_round_trip(const struct shim_stdio_uri *u)
{
    char *text = reencode(u);
    if (text == NULL)
        return;
    struct shim_stdio_uri again;
    shim_error_t *err = NULL;
    if (shim_stdio_uri_parse(text, &again, &err) < 0)
        abort(); /* a well-formed URI built from a parse result must parse */
    if (again.kind != u->kind || strcmp(again.path, u->path) != 0 || again.n_args != u->n_args)
        abort();
    for (size_t i = 0; i < u->n_args; i++) {
        if (strcmp(again.args[i], u->args[i]) != 0)
            abort();
    }
    shim_stdio_uri_free(&again);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (s == NULL)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0'; /* a C string: an embedded NUL ends it, as on the wire */
    struct shim_stdio_uri u;
    shim_error_t *err = NULL;
    if (shim_stdio_uri_parse(s, &u, &err) < 0) {
        if (err == NULL || err->code != RPC_INVALID_ARGUMENT || !all_zero(&u))
            abort();
        error_free(err);
    } else {
        if (err != NULL)
            abort();
        check_shape(s, &u);
        if (u.kind != SHIM_STDIO_NONE)
            check_round_trip(&u);
        shim_stdio_uri_free(&u);
        if (!all_zero(&u))
            abort();
    }
    free(s);
    return 0;
}
