#include "gcs/guest/flags.h"

#include <stddef.h>
#include <string.h>
#include <strings.h>

enum flag_id {
    F_V4,
    F_USE_INOUTERR,
    F_LOGLEVEL,
    F_LOG_FORMAT,
    F_LOGFILE,
    F_TRANSPORT,
    F_PORT_DIR,
    F_BRIDGE_DEVICE,
    F_STDIO_DEVICE,
    F_STATE_DIR,
    F_RUNTIME,
    F_CGROUP_MANAGER,
    F_NO_PIVOT,
    F_HELP,
    F_IGNORED_BOOL,
    F_IGNORED_VALUE,
};

struct flag_def {
    const char *name;
    enum flag_id id;
    bool is_bool;
};

static const struct flag_def flag_defs[] = {
    {"v4", F_V4, true},
    {"use-inouterr", F_USE_INOUTERR, true},
    {"loglevel", F_LOGLEVEL, false},
    {"log-format", F_LOG_FORMAT, false},
    {"logfile", F_LOGFILE, false},
    {"transport", F_TRANSPORT, false},
    {"port-dir", F_PORT_DIR, false},
    {"bridge-device", F_BRIDGE_DEVICE, false},
    {"stdio-device", F_STDIO_DEVICE, false},
    {"state-dir", F_STATE_DIR, false},
    {"runtime", F_RUNTIME, false},
    {"cgroup-manager", F_CGROUP_MANAGER, false},
    {"no-pivot", F_NO_PIVOT, true},
    {"h", F_HELP, true},
    {"help", F_HELP, true},
    /* hcsshim GCS flags we accept and ignore (spec §1.2) */
    {"disable-time-sync", F_IGNORED_BOOL, true},
    {"scrub-logs", F_IGNORED_BOOL, true},
    {"root-mem-reserve-bytes", F_IGNORED_VALUE, false},
    {"gcs-mem-limit-bytes", F_IGNORED_VALUE, false},
    {"initial-policy-stance", F_IGNORED_VALUE, false},
    {"kmsgLogLevel", F_IGNORED_VALUE, false},
    {"core-dump-location", F_IGNORED_VALUE, false},
};

const char *gcs_agent_usage(void)
{
    return "usage: gcs [flags]\n"
           "  -v4                    serve protocol v4 (required; else every request is "
           "E_NOTIMPL)\n"
           "  -use-inouterr          bridge over stdin/stdout, logs to stderr\n"
           "  -loglevel LEVEL        panic|fatal|error|warning|info|debug|trace (default info)\n"
           "  -log-format FORMAT     text|json (default text)\n"
           "  -logfile PATH          write logs to PATH instead of stderr\n"
           "  -transport KIND        vsock|unix|unix:DIR|mux:DEV: how bridge and stdio ports are "
           "dialled (default vsock)\n"
           "  -port-dir DIR          unix transport: directory holding the host's port sockets\n"
           "  -bridge-device DEV     bridge over a virtio-serial port (/dev path or port name)\n"
           "  -stdio-device DEV      stdio ports multiplexed over a virtio-serial port "
           "(= -transport mux:DEV)\n"
           "  -state-dir DIR         bundles and runtime state (default /run/gcs)\n"
           "  -runtime PATH          OCI runtime, crun or runc (default crun)\n"
           "  -cgroup-manager MODE   auto|cgroupfs|systemd|disabled (default auto)\n"
           "  -no-pivot              create containers with --no-pivot (root on an initramfs)\n"
           "ignored (hcsshim compatibility): -disable-time-sync -scrub-logs "
           "-root-mem-reserve-bytes -gcs-mem-limit-bytes -initial-policy-stance -kmsgLogLevel "
           "-core-dump-location\n";
}

void gcs_agent_config_defaults(struct gcs_agent_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->log_level = LOG_LEVEL_INFO;
    cfg->log_format = LOG_FORMAT_TEXT;
    cfg->transport = GCS_AGENT_TRANSPORT_VSOCK;
    cfg->state_dir = "/run/gcs";
    cfg->runtime = "crun";
    cfg->cgroup_manager = "auto";
}

static const struct flag_def *find_flag(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(flag_defs) / sizeof(flag_defs[0]); i++) {
        if (strlen(flag_defs[i].name) == len && strncmp(flag_defs[i].name, name, len) == 0)
            return &flag_defs[i];
    }
    return NULL;
}

/* Go's strconv.ParseBool. */
static int parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"1", "t", "T", "TRUE", "true", "True"};
    static const char *const no[] = {"0", "f", "F", "FALSE", "false", "False"};
    for (size_t i = 0; i < 6; i++) {
        if (strcmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

static int apply_bool(struct gcs_agent_config *cfg, enum flag_id id, bool v)
{
    if (id == F_V4)
        cfg->v4 = v;
    else if (id == F_USE_INOUTERR)
        cfg->use_inouterr = v;
    else if (id == F_NO_PIVOT)
        cfg->no_pivot = v;
    else if (id == F_HELP)
        cfg->help = v;
    return 0;
}

static int apply_value(struct gcs_agent_config *cfg, const struct flag_def *f, const char *v,
                       shim_error_t **err)
{
    switch (f->id) {
    case F_LOGLEVEL: {
        int level = log_level_parse(v);
        if (level < 0)
            return error_set(err, RPC_INVALID_ARGUMENT, "invalid value \"%s\" for flag -%s", v,
                             f->name);
        cfg->log_level = (enum log_level)level;
        return 0;
    }
    case F_LOG_FORMAT:
        if (strcasecmp(v, "text") == 0)
            cfg->log_format = LOG_FORMAT_TEXT;
        else if (strcasecmp(v, "json") == 0)
            cfg->log_format = LOG_FORMAT_JSON;
        else
            return error_set(err, RPC_INVALID_ARGUMENT,
                             "invalid value \"%s\" for flag -%s: text or json", v, f->name);
        return 0;
    case F_LOGFILE:
        cfg->log_file = v[0] ? v : NULL;
        return 0;
    case F_TRANSPORT:
        cfg->transport_set = true;
        if (strcmp(v, "vsock") == 0) {
            cfg->transport = GCS_AGENT_TRANSPORT_VSOCK;
        } else if (strcmp(v, "unix") == 0) {
            cfg->transport = GCS_AGENT_TRANSPORT_UNIX;
        } else if (strncmp(v, "unix:", 5) == 0 && v[5]) {
            cfg->transport = GCS_AGENT_TRANSPORT_UNIX; /* -transport unix:DIR */
            cfg->port_dir = v + 5;
        } else if (strcmp(v, "mux") == 0) {
            cfg->transport = GCS_AGENT_TRANSPORT_MUX; /* device from -stdio-device */
        } else if (strncmp(v, "mux:", 4) == 0 && v[4]) {
            cfg->transport = GCS_AGENT_TRANSPORT_MUX; /* -transport mux:DEV */
            cfg->stdio_device = v + 4;
        } else
            return error_set(err, RPC_INVALID_ARGUMENT,
                             "invalid value \"%s\" for flag -%s: vsock, unix, unix:DIR or "
                             "mux:DEV",
                             v, f->name);
        return 0;
    case F_BRIDGE_DEVICE:
    case F_STDIO_DEVICE:
        if (v[0] == '\0')
            return error_set(err, RPC_INVALID_ARGUMENT, "flag -%s needs a device", f->name);
        if (f->id == F_BRIDGE_DEVICE)
            cfg->bridge_device = v;
        else
            cfg->stdio_device = v;
        return 0;
    case F_PORT_DIR:
        cfg->port_dir = v;
        return 0;
    case F_STATE_DIR:
        if (v[0] == '\0')
            return error_set(err, RPC_INVALID_ARGUMENT, "flag -%s needs a directory", f->name);
        cfg->state_dir = v;
        return 0;
    case F_RUNTIME:
        if (v[0] == '\0')
            return error_set(err, RPC_INVALID_ARGUMENT, "flag -%s needs a path", f->name);
        cfg->runtime = v;
        return 0;
    case F_CGROUP_MANAGER:
        if (strcmp(v, "auto") && strcmp(v, "cgroupfs") && strcmp(v, "systemd") &&
            strcmp(v, "disabled"))
            return error_set(err, RPC_INVALID_ARGUMENT,
                             "invalid value \"%s\" for flag -%s: auto, cgroupfs, systemd or "
                             "disabled",
                             v, f->name);
        cfg->cgroup_manager = v;
        return 0;
    default:
        return 0; /* ignored */
    }
}

/* One argument at argv[*i]; advances *i past what it consumed. 1 = stop. */
static int parse_one(int argc, char **argv, int *i, struct gcs_agent_config *cfg,
                     shim_error_t **err)
{
    const char *arg = argv[*i];
    if (arg[0] != '-' || arg[1] == '\0')
        return 1;
    const char *name = arg + 1;
    if (name[0] == '-') {
        name++;
        if (name[0] == '\0') { /* "--" ends the flags */
            (*i)++;
            return 1;
        }
    }
    if (name[0] == '-' || name[0] == '=')
        return error_set(err, RPC_INVALID_ARGUMENT, "bad flag syntax: %s", arg);
    const char *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    const struct flag_def *f = find_flag(name, len);
    if (!f)
        return error_set(err, RPC_INVALID_ARGUMENT, "flag provided but not defined: -%.*s",
                         (int)len, name);
    (*i)++;
    if (f->is_bool) {
        bool v = true;
        if (eq && parse_bool(eq + 1, &v) < 0)
            return error_set(err, RPC_INVALID_ARGUMENT, "invalid boolean value \"%s\" for -%s",
                             eq + 1, f->name);
        return apply_bool(cfg, f->id, v);
    }
    const char *value = eq ? eq + 1 : NULL;
    if (!value) {
        if (*i >= argc)
            return error_set(err, RPC_INVALID_ARGUMENT, "flag needs an argument: -%s", f->name);
        value = argv[(*i)++];
    }
    return apply_value(cfg, f, value, err);
}

int gcs_agent_flags_parse(int argc, char **argv, struct gcs_agent_config *cfg, shim_error_t **err)
{
    int i = 1;
    while (i < argc) {
        int rc = parse_one(argc, argv, &i, cfg, err);
        if (rc < 0)
            return -1;
        if (rc == 1)
            break;
    }
    cfg->first_arg = i;
    if (cfg->stdio_device && !cfg->transport_set)
        cfg->transport = GCS_AGENT_TRANSPORT_MUX;
    if (cfg->port_dir && !cfg->transport_set && !cfg->stdio_device)
        cfg->transport = GCS_AGENT_TRANSPORT_UNIX;
    if (cfg->transport == GCS_AGENT_TRANSPORT_UNIX && !cfg->port_dir)
        return error_set(err, RPC_INVALID_ARGUMENT, "-transport unix needs -port-dir");
    if (cfg->transport == GCS_AGENT_TRANSPORT_MUX && !cfg->stdio_device)
        return error_set(err, RPC_INVALID_ARGUMENT, "-transport mux needs -stdio-device");
    if (cfg->bridge_device && cfg->use_inouterr)
        return error_set(err, RPC_INVALID_ARGUMENT,
                         "-bridge-device and -use-inouterr both name the bridge");
    if (cfg->bridge_device && cfg->stdio_device &&
        strcmp(cfg->bridge_device, cfg->stdio_device) == 0)
        return error_set(err, RPC_INVALID_ARGUMENT,
                         "-bridge-device and -stdio-device must be different ports");
    return 0;
}
