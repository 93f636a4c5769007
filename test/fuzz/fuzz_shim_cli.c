/* libFuzzer: bytes split at NUL into argv[1..] -> shim_cli_parse (the
 * shim's Go-style command line: -flag v, --flag=v, -debug[=bool], then an
 * optional start|delete action).
 *
 * Checks beyond "no crash, no leak": failures are InvalidArgument; on success
 * every string is "" or points into an argv word (not copied), the action is
 * one of the three, and parsing is deterministic (a second parse of the same
 * argv gives the same result). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shim/cli.h"

#define MAX_ARGS 64

static int build_argv(const uint8_t *data, size_t size, char **argv, char **buf)
{
    static char prog[] = "containerd-shim-runhcs-v1";
    *buf = malloc(size + 1);
    if (*buf == NULL)
        return 0;
    memcpy(*buf, data, size);
    (*buf)[size] = '\0';
    int argc = 0;
    argv[argc++] = prog;
    for (size_t off = 0; off < size && argc < MAX_ARGS; off += strlen(*buf + off) + 1)
        argv[argc++] = *buf + off;
    argv[argc] = NULL;
    return argc;
}

static bool string_ok(const char *s, int argc, char **argv)
{
    if (s == NULL)
        return false;
    if (s[0] == '\0')
        return true;
    for (int i = 1; i < argc; i++) {
        if (s >= argv[i] && s < argv[i] + strlen(argv[i]))
            return true;
    }
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *argv[MAX_ARGS + 1];
    char *buf = NULL;
    int argc = build_argv(data, size, argv, &buf);
    if (argc == 0)
        return 0;
    struct shim_cli_args args, again;
    shim_error_t *err = NULL;
    int rc = shim_cli_parse(argc, argv, &args, &err);
    if (rc < 0) {
        if (err == NULL || err->code != RPC_INVALID_ARGUMENT || err->msg == NULL)
            abort();
        error_free(err);
        err = NULL;
    } else {
        if (err != NULL || !string_ok(args.namespace_name, argc, argv) ||
            !string_ok(args.address, argc, argv) || !string_ok(args.publish_binary, argc, argv) ||
            !string_ok(args.id, argc, argv) || !string_ok(args.bundle, argc, argv) ||
            !string_ok(args.socket, argc, argv))
            abort();
        if (args.action != SHIM_ACTION_SERVE && args.action != SHIM_ACTION_START &&
            args.action != SHIM_ACTION_DELETE)
            abort();
        (void)shim_action_name(args.action);
    }
    if (shim_cli_parse(argc, argv, &again, &err) != rc)
        abort();
    error_free(err);
    if (rc == 0 && (args.namespace_name != again.namespace_name || args.address != again.address ||
                    args.publish_binary != again.publish_binary || args.id != again.id ||
                    args.bundle != again.bundle || args.socket != again.socket ||
                    args.debug != again.debug || args.action != again.action))
        abort();
    (void)shim_cli_usage();
    free(buf);
    return 0;
}
