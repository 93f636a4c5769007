#include "hcs/qemu_config.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* HEAD's SCSI controller keys (hcs-documents.md §2.2), index = position. */
static const char *const scsi_guids[QEMU_MAX_SCSI_CONTROLLERS] = {
    "df6d0690-79e5-55b6-a5ec-c1e2f77f580a",
    "0110f83b-de10-5172-a266-78bca56bf50a",
    "b5d2d8d4-3a75-51bf-945b-3444dc6b8579",
    "305891a9-b251-5dfe-91a2-c25d9212275b",
};

/* Trimmed arguments for a fast boot under TCG (linux-uvm.md §2, "K3"), plus
 * built-in initcalls of Debian's generic kernel that a utility VM never uses
 * and that are slow under TCG (measured with initcall_debug): the KDF108 self
 * test (~60-110 ms), kprobe tracing (~60 ms), trace_printk export, the perf
 * sysfs bus, the blake2s self test, IMA and zswap. (TCP cubic's 35 ms is the
 * first parse of the kernel's BTF, which the next BTF user would pay.)
 * noreplace-smp: with one vCPU the kernel would rewrite every LOCK prefix of
 * its text at boot (~120 ms of TCG time); kept, they cost next to nothing.
 * init_on_alloc=0: the upstream default (Debian turns it on): zeroing every
 * kernel allocation costs ~60 ms of boot under TCG; the VM, not the guest
 * kernel's hardening, is the isolation boundary here. */
static const char base_kernel_args[] =
    "console=ttyS0 quiet tsc=reliable no_timer_check mitigations=off cryptomgr.notests "
    "i8042.noaux i8042.nokbd i8042.nopnp 8250.nr_uarts=1 random.trust_cpu=on audit=0 "
    "apparmor=0 security=none rodata=off noreplace-smp init_on_alloc=0 "
    "initcall_blacklist=crypto_kdf108_init,init_kprobe_trace,init_trace_printk_function_export,"
    "perf_event_sysfs_init,blake2s_mod_init,init_ima,init_zswap";

/* virtio-serial ports the VM can hold. The guest's virtio_console sets up two
 * virtqueues per possible port at probe time: 511 ports cost ~100-200 ms of
 * boot under TCG, 31 (QEMU's default) ~15 ms. Process stdio is multiplexed
 * over one port, so only "gcs", "stdio" and a few hot-added ports are used. */
#define VIRTIO_SERIAL_MAX_PORTS 31

static char *xstrdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

static int key_index(const char *key)
{
    for (int i = 0; i < QEMU_MAX_SCSI_CONTROLLERS; i++) {
        if (strcasecmp(key, scsi_guids[i]) == 0)
            return i;
    }
    if (key[0] >= '0' && key[0] <= '3' && key[1] == '\0')
        return key[0] - '0';
    return -1;
}

int qemu_scsi_controller_index(const struct qemu_vm_config *cfg, const char *key)
{
    for (unsigned i = 0; cfg && i < cfg->scsi_controllers; i++) {
        if (cfg->scsi_keys[i] && strcasecmp(cfg->scsi_keys[i], key) == 0)
            return (int)i;
    }
    int i = key_index(key);
    return cfg && i >= (int)cfg->scsi_controllers ? -1 : i;
}

static int parse_lun(const char *s, unsigned *lun)
{
    char *end;
    if (!isdigit((unsigned char)s[0]))
        return -1;
    unsigned long v = strtoul(s, &end, 10);
    if (*end != '\0' || v > QEMU_MAX_SCSI_LUN)
        return -1;
    *lun = (unsigned)v;
    return 0;
}

static int parse_attachment(json_t *att, unsigned controller, const char *lun_key,
                            struct qemu_disk *d, shim_error_t **err)
{
    const char *type = json_string_value(json_object_get(att, "Type"));
    const char *path = json_string_value(json_object_get(att, "Path"));
    json_t *ro = json_object_get(att, "ReadOnly");
    if (parse_lun(lun_key, &d->lun) < 0)
        return error_set(err, RPC_INVALID_ARGUMENT, "SCSI attachment: bad LUN '%s'", lun_key);
    if (type && strcmp(type, "VirtualDisk") != 0)
        return error_set(err, RPC_UNIMPLEMENTED, "SCSI attachment type '%s' is not supported",
                         type);
    if (!path || !path[0])
        return error_set(err, RPC_INVALID_ARGUMENT, "SCSI attachment %u:%u: Path missing",
                         controller, d->lun);
    if (ro && !json_is_boolean(ro))
        return error_set(err, RPC_INVALID_ARGUMENT, "SCSI attachment: ReadOnly not a boolean");
    d->controller = controller;
    d->read_only = json_is_true(ro);
    d->path = strdup(path);
    return d->path ? 0 : error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
}

static int parse_scsi(json_t *scsi, struct qemu_vm_config *cfg, shim_error_t **err)
{
    if (!scsi)
        return 0;
    if (!json_is_object(scsi))
        return error_set(err, RPC_INVALID_ARGUMENT, "Devices.Scsi must be an object");
    if (json_object_size(scsi) > QEMU_MAX_SCSI_CONTROLLERS)
        return error_set(err, RPC_INVALID_ARGUMENT, "at most %d SCSI controllers",
                         QEMU_MAX_SCSI_CONTROLLERS);
    /* Known keys keep their index; others take the free slots in order. */
    const char *key;
    json_t *ctl;
    json_object_foreach(scsi, key, ctl)
    {
        int i = key_index(key);
        if (i >= 0 && !cfg->scsi_keys[i])
            cfg->scsi_keys[i] = strdup(key);
    }
    json_object_foreach(scsi, key, ctl)
    {
        bool placed = false;
        for (int i = 0; i < QEMU_MAX_SCSI_CONTROLLERS && !placed; i++)
            placed = cfg->scsi_keys[i] && strcmp(cfg->scsi_keys[i], key) == 0;
        for (int i = 0; i < QEMU_MAX_SCSI_CONTROLLERS && !placed; i++) {
            if (!cfg->scsi_keys[i]) {
                cfg->scsi_keys[i] = strdup(key);
                placed = true;
            }
        }
    }
    for (int i = 0; i < QEMU_MAX_SCSI_CONTROLLERS; i++) {
        if (cfg->scsi_keys[i])
            cfg->scsi_controllers = (unsigned)i + 1;
    }
    json_object_foreach(scsi, key, ctl)
    {
        if (!json_is_object(ctl))
            return error_set(err, RPC_INVALID_ARGUMENT, "SCSI controller %s: not an object", key);
        json_t *atts = json_object_get(ctl, "Attachments");
        if (!atts)
            continue;
        if (!json_is_object(atts))
            return error_set(err, RPC_INVALID_ARGUMENT, "SCSI %s: Attachments not an object", key);
        int index = qemu_scsi_controller_index(cfg, key);
        const char *lun;
        json_t *att;
        json_object_foreach(atts, lun, att)
        {
            struct qemu_disk *d = realloc(cfg->disks, (cfg->ndisks + 1) * sizeof(*d));
            if (!d)
                return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
            cfg->disks = d;
            memset(&d[cfg->ndisks], 0, sizeof(*d));
            if (parse_attachment(att, (unsigned)index, lun, &d[cfg->ndisks], err) < 0)
                return -1;
            cfg->ndisks++;
        }
    }
    return 0;
}

static int parse_topology(json_t *vm, struct qemu_vm_config *cfg, shim_error_t **err)
{
    json_t *topo = json_object_get(vm, "ComputeTopology");
    json_t *mem = json_object_get(json_object_get(topo, "Memory"), "SizeInMB");
    json_t *cpus = json_object_get(json_object_get(topo, "Processor"), "Count");
    cfg->memory_mb = 1024;
    cfg->cpus = 2;
    if (mem) {
        if (!json_is_integer(mem) || json_integer_value(mem) < 64 ||
            json_integer_value(mem) > 1024 * 1024)
            return error_set(err, RPC_INVALID_ARGUMENT, "Memory.SizeInMB out of range");
        cfg->memory_mb = (uint64_t)json_integer_value(mem);
    }
    if (cpus) {
        if (!json_is_integer(cpus) || json_integer_value(cpus) < 1 ||
            json_integer_value(cpus) > 256)
            return error_set(err, RPC_INVALID_ARGUMENT, "Processor.Count out of range");
        cfg->cpus = (unsigned)json_integer_value(cpus);
    }
    return 0;
}

static int parse_chipset(json_t *vm, struct qemu_vm_config *cfg, shim_error_t **err)
{
    json_t *chipset = json_object_get(vm, "Chipset");
    json_t *direct = json_object_get(chipset, "LinuxKernelDirect");
    if (!direct) {
        if (json_object_get(chipset, "Uefi"))
            return error_set(err, RPC_UNIMPLEMENTED,
                             "Chipset.Uefi boot is not supported by the QEMU backend");
        return error_set(err, RPC_INVALID_ARGUMENT, "Chipset.LinuxKernelDirect missing");
    }
    const char *kernel = json_string_value(json_object_get(direct, "KernelFilePath"));
    const char *initrd = json_string_value(json_object_get(direct, "InitRdPath"));
    const char *cmdline = json_string_value(json_object_get(direct, "KernelCmdLine"));
    if (!kernel || !kernel[0])
        return error_set(err, RPC_INVALID_ARGUMENT, "LinuxKernelDirect.KernelFilePath missing");
    cfg->kernel = strdup(kernel);
    cfg->initrd = xstrdup(initrd && initrd[0] ? initrd : NULL);
    cfg->cmdline = strdup(cmdline ? cmdline : "");
    if (!cfg->kernel || !cfg->cmdline || (initrd && initrd[0] && !cfg->initrd))
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    return 0;
}

int qemu_vm_config_parse(const char *document, struct qemu_vm_config *cfg, shim_error_t **err)
{
    memset(cfg, 0, sizeof(*cfg));
    json_error_t jerr;
    json_t *doc = json_loads(document ? document : "", 0, &jerr);
    if (!json_is_object(doc)) {
        json_decref(doc);
        return error_set(err, RPC_INVALID_ARGUMENT, "compute system document: %s",
                         doc ? "not an object" : jerr.text);
    }
    int rc = -1;
    json_t *vm = json_object_get(doc, "VirtualMachine");
    if (!json_is_object(vm)) {
        error_set(err, RPC_INVALID_ARGUMENT,
                  json_object_get(doc, "Container")
                      ? "Container documents need a host compute service; only "
                        "VirtualMachine is supported"
                      : "document has no VirtualMachine");
        goto out;
    }
    if (parse_topology(vm, cfg, err) < 0 || parse_chipset(vm, cfg, err) < 0 ||
        parse_scsi(json_object_get(json_object_get(vm, "Devices"), "Scsi"), cfg, err) < 0)
        goto out;
    rc = 0;
out:
    json_decref(doc);
    if (rc < 0)
        qemu_vm_config_clear(cfg);
    return rc;
}

void qemu_vm_config_clear(struct qemu_vm_config *cfg)
{
    free(cfg->kernel);
    free(cfg->initrd);
    free(cfg->cmdline);
    for (int i = 0; i < QEMU_MAX_SCSI_CONTROLLERS; i++)
        free(cfg->scsi_keys[i]);
    for (size_t i = 0; i < cfg->ndisks; i++)
        free(cfg->disks[i].path);
    free(cfg->disks);
    memset(cfg, 0, sizeof(*cfg));
}

const char *qemu_image_format(const char *path)
{
    const char *dot = strrchr(path, '.');
    const char *slash = strrchr(path, '/');
    if (!dot || (slash && dot < slash))
        return "raw";
    if (strcasecmp(dot, ".vhd") == 0)
        return "vpc";
    if (strcasecmp(dot, ".vhdx") == 0)
        return "vhdx";
    if (strcasecmp(dot, ".qcow2") == 0)
        return "qcow2";
    return "raw";
}

void qemu_disk_ids(unsigned controller, unsigned lun, char *device_id, char *node_name, size_t size)
{
    if (device_id)
        snprintf(device_id, size, "sd-%u-%u", controller, lun);
    if (node_name)
        snprintf(node_name, size, "disk-%u-%u", controller, lun);
}

void qemu_port_ids(const char *name, char *device_id, char *chardev_id, size_t size)
{
    if (device_id)
        snprintf(device_id, size, "port-%s", name);
    if (chardev_id)
        snprintf(chardev_id, size, "chr-%s", name);
}

/* ---- argv -------------------------------------------------------------------- */

struct argv_builder {
    char **v;
    size_t n, cap;
    bool oom;
};

static void add(struct argv_builder *b, const char *s)
{
    if (b->oom)
        return;
    if (b->n + 2 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        char **v = realloc(b->v, cap * sizeof(*v));
        if (!v) {
            b->oom = true;
            return;
        }
        b->v = v;
        b->cap = cap;
    }
    char *copy = strdup(s);
    if (!copy) {
        b->oom = true;
        return;
    }
    b->v[b->n++] = copy;
    b->v[b->n] = NULL;
}

static void add2(struct argv_builder *b, const char *opt, const char *val)
{
    add(b, opt);
    add(b, val);
}

static void add_json(struct argv_builder *b, const char *opt, json_t *obj)
{
    char *s = obj ? json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(obj);
    if (!s) {
        b->oom = true;
        return;
    }
    add2(b, opt, s);
    free(s);
}

/* Words of `cmdline` without those that break this machine type. */
static void append_doc_args(char **out, size_t *len, size_t cap, const char *cmdline,
                            enum qemu_machine machine)
{
    const char *p = cmdline;
    bool after_dashes = false;
    while (*p) {
        while (*p == ' ')
            p++;
        const char *w = p;
        while (*p && *p != ' ')
            p++;
        size_t n = (size_t)(p - w);
        if (n == 0)
            break;
        /* hcsshim adds pci=off (no vPCI); on q35 the virtio devices are PCI. */
        bool drop =
            !after_dashes && machine == QEMU_MACHINE_Q35 && n == 7 && strncmp(w, "pci=off", 7) == 0;
        if (n == 2 && strncmp(w, "--", 2) == 0)
            after_dashes = true;
        if (!drop && *len + n + 2 <= cap) {
            (*out)[(*len)++] = ' ';
            memcpy(*out + *len, w, n);
            *len += n;
            (*out)[*len] = '\0';
        }
    }
}

char *qemu_kernel_cmdline(const struct qemu_vm_config *cfg, const struct qemu_launch *launch)
{
    size_t cap = sizeof(base_kernel_args) + strlen(cfg->cmdline ? cfg->cmdline : "") + 64 +
                 (launch->extra_kernel_args ? strlen(launch->extra_kernel_args) + 1 : 0);
    char *s = malloc(cap);
    if (!s)
        return NULL;
    size_t len = (size_t)snprintf(s, cap, "%s", base_kernel_args);
    if (launch->machine == QEMU_MACHINE_MICROVM && launch->accel == QEMU_ACCEL_TCG &&
        launch->tsc_khz > 0)
        len += (size_t)snprintf(s + len, cap - len, " tsc_early_khz=%" PRIu64, launch->tsc_khz);
    if (launch->extra_kernel_args && launch->extra_kernel_args[0])
        len += (size_t)snprintf(s + len, cap - len, " %s", launch->extra_kernel_args);
    /* The document's arguments last: its "-- <init args>" must end the line. */
    append_doc_args(&s, &len, cap, cfg->cmdline ? cfg->cmdline : "", launch->machine);
    return s;
}

static void add2f(struct argv_builder *b, const char *opt, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void add2f(struct argv_builder *b, const char *opt, const char *fmt, ...)
{
    char *s = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->oom = true;
        return;
    }
    add2(b, opt, s);
    free(s);
}

/* QEMU option values escape ',' as ",,". */
static char *opt_escape(const char *s)
{
    char *out = malloc(strlen(s) * 2 + 1), *o = out;
    if (!out)
        return NULL;
    for (; *s; s++) {
        *o++ = *s;
        if (*s == ',')
            *o++ = ',';
    }
    *o = '\0';
    return out;
}

/* A virtio-serial port whose host end is a listening Unix socket. */
static void add_port(struct argv_builder *b, const char *name, const char *socket_path)
{
    char chr[80], dev[80];
    qemu_port_ids(name, dev, chr, sizeof(chr));
    char *path = opt_escape(socket_path);
    if (!path)
        b->oom = true;
    else
        add2f(b, "-chardev", "socket,id=%s,path=%s,server=on,wait=off", chr, path);
    free(path);
    add_json(b, "-device",
             json_pack("{s:s,s:s,s:s,s:s,s:s}", "driver", "virtserialport", "bus", "vser0.0",
                       "chardev", chr, "name", name, "id", dev));
}

static void add_scsi(struct argv_builder *b, const struct qemu_vm_config *cfg, const char *suffix)
{
    for (unsigned i = 0; i < cfg->scsi_controllers; i++)
        add2f(b, "-device", "virtio-scsi-%s,id=scsi%u", suffix, i);
    for (size_t i = 0; i < cfg->ndisks; i++) {
        const struct qemu_disk *d = &cfg->disks[i];
        char dev_id[64], node[64], bus[32];
        qemu_disk_ids(d->controller, d->lun, dev_id, node, sizeof(dev_id));
        snprintf(bus, sizeof(bus), "scsi%u.0", d->controller);
        /* JSON syntax: no escaping of paths needed. */
        add_json(b, "-blockdev",
                 json_pack("{s:s,s:s,s:b,s:{s:s,s:s,s:b}}", "driver", qemu_image_format(d->path),
                           "node-name", node, "read-only", d->read_only, "file", "driver", "file",
                           "filename", d->path, "read-only", d->read_only));
        add_json(b, "-device",
                 json_pack("{s:s,s:s,s:s,s:s,s:i,s:i,s:i}", "driver", "scsi-hd", "id", dev_id,
                           "bus", bus, "drive", node, "channel", 0, "scsi-id", 0, "lun",
                           (int)d->lun));
    }
}

int qemu_build_argv(const char *qemu_binary, const struct qemu_vm_config *cfg,
                    const struct qemu_launch *l, char ***argv, shim_error_t **err)
{
    struct argv_builder b = {0};
    const bool microvm = l->machine == QEMU_MACHINE_MICROVM;
    const char *suffix = microvm ? "device" : "pci";
    add(&b, qemu_binary);
    add2(&b, "-accel", l->accel == QEMU_ACCEL_KVM ? "kvm" : "tcg");
    /* microvm keeps ACPI: poweroff and the power button need it. */
    add2(&b, "-M", microvm ? "microvm" : "q35");
    add2f(&b, "-m", "%" PRIu64, cfg->memory_mb);
    add2f(&b, "-smp", "%u", cfg->cpus);
    /* -S: created but not running; start sends "cont" (HCS create/start). */
    const char *fixed[] = {"-S",       "-no-reboot", "-no-user-config", "-nodefaults",
                           "-display", "none",       "-serial",         "stdio"};
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
        add(&b, fixed[i]);
    add2(&b, "-kernel", cfg->kernel);
    if (cfg->initrd)
        add2(&b, "-initrd", cfg->initrd);
    char *cmdline = qemu_kernel_cmdline(cfg, l);
    if (!cmdline)
        b.oom = true;
    else
        add2(&b, "-append", cmdline);
    free(cmdline);
    /* QMP over an inherited, already-connected socket: no path, no race. */
    add2f(&b, "-chardev", "socket,id=qmp,fd=%d", l->qmp_fd);
    add2(&b, "-mon", "chardev=qmp,mode=control");
    /* Entropy: without it the guest's first /dev/urandom read waits ~1 s. */
    add2(&b, "-object", "rng-random,id=rng0,filename=/dev/urandom");
    add2f(&b, "-device", "virtio-rng-%s,rng=rng0", suffix);
    add2f(&b, "-device", "virtio-serial-%s,id=vser0,max_ports=%d", suffix, VIRTIO_SERIAL_MAX_PORTS);
    add_port(&b, QEMU_GCS_PORT_NAME, l->gcs_socket ? l->gcs_socket : "");
    if (l->stdio_socket)
        add_port(&b, QEMU_STDIO_PORT_NAME, l->stdio_socket);
    add_scsi(&b, cfg, suffix);
    if (b.oom) {
        qemu_argv_free(b.v);
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "building the qemu command line");
    }
    *argv = b.v;
    return 0;
}

void qemu_argv_free(char **argv)
{
    for (size_t i = 0; argv && argv[i]; i++)
        free(argv[i]);
    free(argv);
}

/* ---- modify ------------------------------------------------------------------ */

static bool valid_port_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return false;
    for (; *s; s++) {
        if (!isalnum((unsigned char)*s) && *s != '.' && *s != '_' && *s != '-')
            return false;
    }
    return true;
}

static int parse_scsi_modify(const struct qemu_vm_config *cfg, char **parts, size_t n,
                             json_t *settings, struct qemu_modify *m, shim_error_t **err)
{
    /* VirtualMachine/Devices/Scsi/<key>/Attachments/<lun> */
    if (n != 6 || strcmp(parts[4], "Attachments") != 0)
        return error_set(err, RPC_INVALID_ARGUMENT, "bad SCSI resource path");
    int controller = qemu_scsi_controller_index(cfg, parts[3]);
    if (controller < 0)
        return error_set(err, RPC_NOT_FOUND, "no SCSI controller '%s'", parts[3]);
    m->kind = QEMU_MODIFY_SCSI_DISK;
    if (!m->add) {
        m->disk.controller = (unsigned)controller;
        if (parse_lun(parts[5], &m->disk.lun) < 0)
            return error_set(err, RPC_INVALID_ARGUMENT, "bad LUN '%s'", parts[5]);
        return 0;
    }
    if (!json_is_object(settings))
        return error_set(err, RPC_INVALID_ARGUMENT, "SCSI Add needs Settings");
    return parse_attachment(settings, (unsigned)controller, parts[5], &m->disk, err);
}

static int parse_port_modify(char **parts, size_t n, json_t *settings, struct qemu_modify *m,
                             shim_error_t **err)
{
    /* VirtualMachine/Devices/VirtioSerial/Ports/<name> */
    if (n != 5 || strcmp(parts[3], "Ports") != 0 || !valid_port_name(parts[4]))
        return error_set(err, RPC_INVALID_ARGUMENT, "bad virtio-serial port resource path");
    if (strcmp(parts[4], QEMU_GCS_PORT_NAME) == 0 || strcmp(parts[4], QEMU_STDIO_PORT_NAME) == 0)
        return error_set(err, RPC_PERMISSION_DENIED, "the %s port cannot be modified", parts[4]);
    m->kind = QEMU_MODIFY_SERIAL_PORT;
    m->port_name = strdup(parts[4]);
    if (!m->port_name)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    const char *sock = json_string_value(json_object_get(settings, "SocketPath"));
    if (m->add && sock && sock[0]) {
        if (strlen(sock) >= 108)
            return error_set(err, RPC_INVALID_ARGUMENT, "SocketPath too long");
        m->socket_path = strdup(sock);
        if (!m->socket_path)
            return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    }
    return 0;
}

int qemu_modify_parse(const struct qemu_vm_config *cfg, const char *request, struct qemu_modify *m,
                      shim_error_t **err)
{
    memset(m, 0, sizeof(*m));
    json_error_t jerr;
    json_t *req = json_loads(request ? request : "", 0, &jerr);
    char *copy = NULL;
    int rc = -1;
    if (!json_is_object(req)) {
        error_set(err, RPC_INVALID_ARGUMENT, "modify request: %s",
                  req ? "not an object" : jerr.text);
        goto out;
    }
    const char *path = json_string_value(json_object_get(req, "ResourcePath"));
    const char *type = json_string_value(json_object_get(req, "RequestType"));
    json_t *settings = json_object_get(req, "Settings");
    if (!path || !type) {
        error_set(err, RPC_INVALID_ARGUMENT, "modify request needs ResourcePath and RequestType");
        goto out;
    }
    if (json_object_get(req, "GuestRequest") &&
        !json_is_null(json_object_get(req, "GuestRequest"))) {
        error_set(err, RPC_INVALID_ARGUMENT,
                  "GuestRequest goes to the guest over the bridge, not to the compute service");
        goto out;
    }
    if (strcmp(type, "Add") == 0) {
        m->add = true;
    } else if (strcmp(type, "Remove") != 0) {
        error_set(err, RPC_UNIMPLEMENTED, "RequestType '%s' is not supported", type);
        goto out;
    }
    copy = strdup(path);
    char *parts[8];
    size_t n = 0;
    for (char *save = NULL, *t = strtok_r(copy, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
        if (n == 8) {
            n = 0;
            break;
        }
        parts[n++] = t;
    }
    if (n >= 4 && strcmp(parts[0], "VirtualMachine") == 0 && strcmp(parts[1], "Devices") == 0 &&
        strcmp(parts[2], "Scsi") == 0)
        rc = parse_scsi_modify(cfg, parts, n, settings, m, err);
    else if (n >= 4 && strcmp(parts[0], "VirtualMachine") == 0 &&
             strcmp(parts[1], "Devices") == 0 && strcmp(parts[2], "VirtioSerial") == 0)
        rc = parse_port_modify(parts, n, settings, m, err);
    else
        error_set(err, RPC_UNIMPLEMENTED, "resource path '%s' is not supported", path);
out:
    free(copy);
    json_decref(req);
    if (rc < 0)
        qemu_modify_clear(m);
    return rc;
}

void qemu_modify_clear(struct qemu_modify *m)
{
    free(m->disk.path);
    free(m->port_name);
    free(m->socket_path);
    memset(m, 0, sizeof(*m));
}

int qemu_modify_commands(const struct qemu_modify *m, const char *socket_path,
                         struct qemu_qmp_step steps[2], shim_error_t **err)
{
    memset(steps, 0, 2 * sizeof(steps[0]));
    char dev[64], other[64], bus[32];
    if (m->kind == QEMU_MODIFY_SCSI_DISK) {
        qemu_disk_ids(m->disk.controller, m->disk.lun, dev, other, sizeof(dev));
        snprintf(bus, sizeof(bus), "scsi%u.0", m->disk.controller);
        if (m->add) {
            steps[0].command = "blockdev-add";
            steps[0].args = json_pack("{s:s,s:s,s:b,s:{s:s,s:s,s:b}}", "driver",
                                      qemu_image_format(m->disk.path), "node-name", other,
                                      "read-only", m->disk.read_only, "file", "driver", "file",
                                      "filename", m->disk.path, "read-only", m->disk.read_only);
            steps[1].command = "device_add";
            steps[1].args =
                json_pack("{s:s,s:s,s:s,s:s,s:i,s:i,s:i}", "driver", "scsi-hd", "id", dev, "bus",
                          bus, "drive", other, "channel", 0, "scsi-id", 0, "lun", (int)m->disk.lun);
        } else {
            steps[0].command = "device_del";
            steps[0].args = json_pack("{s:s}", "id", dev);
            snprintf(steps[0].wait_deleted, sizeof(steps[0].wait_deleted), "%s", dev);
            steps[1].command = "blockdev-del";
            steps[1].args = json_pack("{s:s}", "node-name", other);
        }
    } else {
        qemu_port_ids(m->port_name, dev, other, sizeof(dev));
        if (m->add) {
            if (!socket_path)
                return error_set(err, RPC_INVALID_ARGUMENT, "port %s: no socket path",
                                 m->port_name);
            steps[0].command = "chardev-add";
            steps[0].args = json_pack("{s:s,s:{s:s,s:{s:{s:s,s:{s:s}},s:b,s:b}}}", "id", other,
                                      "backend", "type", "socket", "data", "addr", "type", "unix",
                                      "data", "path", socket_path, "server", 1, "wait", 0);
            steps[1].command = "device_add";
            steps[1].args = json_pack("{s:s,s:s,s:s,s:s,s:s}", "driver", "virtserialport", "bus",
                                      "vser0.0", "chardev", other, "name", m->port_name, "id", dev);
        } else {
            steps[0].command = "device_del";
            steps[0].args = json_pack("{s:s}", "id", dev);
            snprintf(steps[0].wait_deleted, sizeof(steps[0].wait_deleted), "%s", dev);
            steps[1].command = "chardev-remove";
            steps[1].args = json_pack("{s:s}", "id", other);
        }
    }
    if (!steps[0].args || !steps[1].args) {
        qemu_steps_clear(steps, 2);
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    }
    return 2;
}

void qemu_steps_clear(struct qemu_qmp_step *steps, int n)
{
    for (int i = 0; i < n; i++) {
        json_decref(steps[i].args);
        steps[i].args = NULL;
    }
}
