/* Command-line flags of the guest agent (build/bin/gcs).
 *
 * Go "flag" package syntax, like hcsshim's GCS: -name, --name, -name=value,
 * -name value (not for booleans: -b=false). Parsing stops at "--" or the
 * first non-flag argument. Flags hcsshim passes that the agent does not use
 * are accepted and ignored. String values point into argv (no copies). */
#ifndef GCS_GUEST_FLAGS_H
#define GCS_GUEST_FLAGS_H

#include <stdbool.h>

#include "common/error.h"
#include "common/log.h"

enum gcs_agent_transport {
    GCS_AGENT_TRANSPORT_VSOCK = 0, /* AF_VSOCK to CID 2 (the default, as in a UVM) */
    GCS_AGENT_TRANSPORT_UNIX,      /* Unix sockets in -port-dir */
    GCS_AGENT_TRANSPORT_MUX,       /* multiplexed over -stdio-device (gcs/mux.h) */
};

struct gcs_agent_config {
    bool v4;           /* register the v4 handlers; else every request gets E_NOTIMPL */
    bool use_inouterr; /* bridge over stdin/stdout, logs to stderr */
    enum log_level log_level;
    enum log_format log_format;
    const char *log_file;               /* NULL: stderr */
    enum gcs_agent_transport transport; /* -port-dir alone implies unix */
    bool transport_set;
    const char *port_dir;       /* -transport unix: where the host's port sockets are */
    const char *stdio_device;   /* -transport mux: virtio-serial port (path or port name) */
    const char *bridge_device;  /* bridge over this virtio-serial port (path or port name) */
    const char *state_dir;      /* bundles and runtime state; default /run/gcs */
    const char *runtime;        /* OCI runtime binary; default "crun" */
    const char *cgroup_manager; /* auto|cgroupfs|systemd|disabled; default auto */
    bool no_pivot;              /* runtime create --no-pivot (rootfs on an initramfs) */
    bool help;
    int first_arg; /* index of the first argument after the flags */
};

void gcs_agent_config_defaults(struct gcs_agent_config *cfg);
/* Parses argv[1..]; -1 with *err (RPC_INVALID_ARGUMENT) on an unknown flag,
 * a missing or bad value. */
int gcs_agent_flags_parse(int argc, char **argv, struct gcs_agent_config *cfg, shim_error_t **err);
/* Multi-line usage text (static). */
const char *gcs_agent_usage(void);

#endif
