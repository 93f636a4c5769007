/* libFuzzer: bytes split at NUL into argv[1..] -> gcs_agent_flags_parse (the
 * guest agent's Go-style flags).
 *
 * Checks beyond "no crash, no leak": failures are InvalidArgument; on success
 * first_arg is within argv, every string setting is its default or points
 * into an argv word (values are not copied), and the transport has what it
 * needs (unix: a port directory; mux: a stdio device). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gcs/guest/flags.h"

#define MAX_ARGS 64

/* argv[0] plus the input's NUL-separated words, in one owned buffer. */
static int build_argv(const uint8_t *data, size_t size, char **argv, char **buf)
{
    static char prog[] = "gcs";
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

static bool in_argv(const char *s, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (s >= argv[i] && s <= argv[i] + strlen(argv[i]))
            return true;
    }
    return false;
}

static bool setting_ok(const char *value, const char *dflt, int argc, char **argv)
{
    return value == dflt || (value != NULL && in_argv(value, argc, argv));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *argv[MAX_ARGS + 1];
    char *buf = NULL;
    int argc = build_argv(data, size, argv, &buf);
    if (argc == 0)
        return 0;
    struct gcs_agent_config dflt, cfg;
    gcs_agent_config_defaults(&dflt);
    gcs_agent_config_defaults(&cfg);
    shim_error_t *err = NULL;
    if (gcs_agent_flags_parse(argc, argv, &cfg, &err) < 0) {
        if (err == NULL || err->code != RPC_INVALID_ARGUMENT || err->msg == NULL)
            abort();
        error_free(err);
    } else {
        if (err != NULL || cfg.first_arg < 1 || cfg.first_arg > argc)
            abort();
        if (!setting_ok(cfg.state_dir, dflt.state_dir, argc, argv) ||
            !setting_ok(cfg.runtime, dflt.runtime, argc, argv) ||
            !setting_ok(cfg.cgroup_manager, dflt.cgroup_manager, argc, argv) ||
            !setting_ok(cfg.log_file, NULL, argc, argv) ||
            !setting_ok(cfg.port_dir, NULL, argc, argv) ||
            !setting_ok(cfg.stdio_device, NULL, argc, argv) ||
            !setting_ok(cfg.bridge_device, NULL, argc, argv))
            abort();
        if (cfg.state_dir[0] == '\0' || cfg.runtime[0] == '\0' ||
            (cfg.transport == GCS_AGENT_TRANSPORT_UNIX && cfg.port_dir == NULL) ||
            (cfg.transport == GCS_AGENT_TRANSPORT_MUX && cfg.stdio_device == NULL) ||
            (cfg.bridge_device && cfg.use_inouterr) || (int)cfg.log_level < 0 ||
            cfg.log_level > LOG_LEVEL_TRACE)
            abort();
    }
    (void)gcs_agent_usage();
    free(buf);
    return 0;
}
