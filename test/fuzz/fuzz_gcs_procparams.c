/* libFuzzer: bytes -> the guest agent's process parameters path:
 * JSON -> ProcessParameters (directly, or as the JSON-in-string inside an
 * ExecuteProcess request, the way the agent receives it) -> argv/env/cwd for
 * a UVM process and the OCI process document for a container exec; and the
 * raw bytes (up to the first NUL) as a CommandLine through the shell-style
 * splitter.
 *
 * Checks beyond "no crash, no leak": failures are InvalidArgument; argv has a
 * first word; env is sorted "K=V"; the OCI process keeps its args and gets a
 * non-empty cwd; and a split result, re-quoted word by word with single
 * quotes, splits back into exactly the same words. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gcs/bridge_msg.h"
#include "gcs/guest/procparams.h"

static void expect_invalid(shim_error_t *err)
{
    if (err == NULL || err->code != RPC_INVALID_ARGUMENT)
        abort();
    error_free(err);
}

static void check_command(const struct gcs_process_parameters *p)
{
    struct gcs_guest_command c;
    shim_error_t *err = NULL;
    if (gcs_guest_command_from_params(p, &c, &err) < 0) {
        expect_invalid(err);
        if (c.argv != NULL || c.env != NULL || c.working_dir != NULL)
            abort();
        return;
    }
    if (c.argv == NULL || c.argv[0] == NULL || c.env == NULL)
        abort();
    for (size_t i = 0; c.env[i]; i++) {
        if (strchr(c.env[i], '=') == NULL || (i > 0 && strcmp(c.env[i - 1], c.env[i]) > 0))
            abort();
    }
    if (c.working_dir != NULL && c.working_dir[0] == '\0')
        abort();
    gcs_guest_command_free(&c);
}

static void check_oci_process(const json_t *oci)
{
    json_t *doc = NULL;
    shim_error_t *err = NULL;
    bool terminal = gcs_guest_oci_process_terminal(oci);
    if (gcs_guest_oci_process(oci, &doc, &err) < 0) {
        expect_invalid(err);
        return;
    }
    json_t *cwd = json_object_get(doc, "cwd");
    if (!json_is_string(cwd) || json_string_length(cwd) == 0 ||
        json_array_size(json_object_get(doc, "args")) == 0 ||
        gcs_guest_oci_process_terminal(doc) != terminal || doc == oci)
        abort();
    json_decref(doc);
}

static void check_params(const json_t *obj)
{
    struct gcs_process_parameters p;
    shim_error_t *err = NULL;
    if (gcs_process_parameters_parse(obj, &p, &err) < 0) {
        expect_invalid(err);
        return;
    }
    check_command(&p);
    if (p.oci_process != NULL)
        check_oci_process(p.oci_process);
    json_decref(gcs_process_parameters_build(&p));
}

/* Single-quotes a word for the splitter: ' becomes '\''. */
static void quote_word(FILE *f, const char *w)
{
    fputc('\'', f);
    for (; *w; w++) {
        if (*w == '\'')
            fputs("'\\''", f);
        else
            fputc(*w, f);
    }
    fputc('\'', f);
}

static void check_split(const char *line)
{
    char **words = NULL;
    shim_error_t *err = NULL;
    if (gcs_split_command_line(line, &words, &err) < 0) {
        expect_invalid(err);
        return;
    }
    size_t n = gcs_strv_len(words);
    char *requoted = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&requoted, &len);
    if (f == NULL) {
        gcs_strv_free(words);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (strlen(words[i]) > strlen(line))
            abort(); /* a word never grows beyond its source */
        if (i > 0)
            fputc(' ', f);
        quote_word(f, words[i]);
    }
    fclose(f);
    char **again = NULL;
    if (gcs_split_command_line(requoted, &again, NULL) < 0 || gcs_strv_len(again) != n)
        abort();
    for (size_t i = 0; i < n; i++) {
        if (strcmp(again[i], words[i]) != 0)
            abort();
    }
    gcs_strv_free(again);
    gcs_strv_free(words);
    free(requoted);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *doc = json_loadb((const char *)data, size, 0, NULL);
    if (doc != NULL) {
        check_params(doc);
        struct gcs_execute_process_request r;
        if (gcs_execute_process_request_parse(doc, &r, NULL) == 0) {
            check_params(r.process_parameters);
            gcs_execute_process_request_clear(&r);
        }
        json_decref(doc);
    }
    char *line = malloc(size + 1);
    if (line == NULL)
        return 0;
    memcpy(line, data, size);
    line[size] = '\0';
    check_split(line);
    free(line);
    return 0;
}
