/* SCSI disks in the UVM (gcs-bridge.md §9.2): MappedVirtualDisk Add mounts
 * the disk at Controller/Lun once the kernel has it (the host attached it just
 * before; the guest waits up to 5 s, as the LCOW GCS does), Remove unmounts;
 * SCSIDevice Remove deletes the SCSI device so the host detach is clean.
 *
 * Addressing: the host (QEMU backend) puts each controller on its own
 * virtio-scsi adapter, target 0, LUN = Lun; controller index i is the i-th
 * SCSI host in the guest by host number. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd/gcs/agent.h"
#include "common/log.h"
#include "gcs/bridge_json.h"

#define SCSI_WAIT_MS 5000
#define SCSI_POLL_MS 10
#define SYS_SCSI_HOSTS "/sys/class/scsi_host"
#define SYS_SCSI_DEVICES "/sys/bus/scsi/devices"

static int cmp_uint(const void *a, const void *b)
{
    unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;
    return x < y ? -1 : x > y;
}

/* Host number of the controller-th SCSI host, or -1. */
static int scsi_host_number(unsigned controller)
{
    DIR *d = opendir(SYS_SCSI_HOSTS);
    if (!d)
        return -1;
    unsigned hosts[64];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 64) {
        unsigned h;
        if (sscanf(e->d_name, "host%u", &h) == 1)
            hosts[n++] = h;
    }
    closedir(d);
    qsort(hosts, n, sizeof(hosts[0]), cmp_uint);
    return controller < n ? (int)hosts[controller] : -1;
}

static void scsi_device_dir(int host, unsigned lun, char *out, size_t size)
{
    snprintf(out, size, SYS_SCSI_DEVICES "/%d:0:0:%u", host, lun);
}

/* /dev/<name> of the disk at controller/lun, or -1 if the kernel has none yet. */
static int scsi_block_device(unsigned controller, unsigned lun, char *out, size_t size)
{
    int host = scsi_host_number(controller);
    if (host < 0)
        return -1;
    char dir[256];
    scsi_device_dir(host, lun, dir, sizeof(dir));
    strncat(dir, "/block", sizeof(dir) - strlen(dir) - 1);
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    struct dirent *e;
    int rc = -1;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(out, size, "/dev/%s", e->d_name);
        rc = 0;
        break;
    }
    closedir(d);
    return rc;
}

/* Mount data from Options minus the flags we pass as flags. */
static unsigned long mount_options(const json_t *options, bool read_only, char *data, size_t size)
{
    unsigned long flags = read_only ? MS_RDONLY : 0;
    size_t i;
    json_t *v;
    data[0] = '\0';
    json_array_foreach(options, i, v)
    {
        const char *o = json_string_value(v);
        if (!o)
            continue;
        if (strcmp(o, "ro") == 0) {
            flags |= MS_RDONLY;
            continue;
        }
        if (strcmp(o, "rw") == 0)
            continue;
        if (data[0])
            strncat(data, ",", size - strlen(data) - 1);
        strncat(data, o, size - strlen(data) - 1);
    }
    return flags;
}

struct disk_mount {
    struct request *req;
    uv_timer_t timer;
    char *mount_path;
    unsigned controller, lun;
    unsigned long flags;
    char fstype[32];
    char data[512];
    uint64_t deadline;
    char last_error[400];
    bool ok;
};

static void disk_mount_closed(uv_handle_t *h)
{
    struct disk_mount *m = h->data;
    if (m->ok) {
        agent_track_mount(m->req->a, m->mount_path, true);
        log_info("MappedVirtualDisk Add: lun %u mounted at %s", m->lun, m->mount_path);
        request_reply(m->req, NULL);
    } else {
        request_reply_error(m->req, GCS_HR_E_FAIL, "mounting SCSI controller %u lun %u at %s: %s",
                            m->controller, m->lun, m->mount_path, m->last_error);
    }
    free(m->mount_path);
    free(m);
}

/* One attempt; true when finished (mounted or failed for good). */
static bool try_mount(struct disk_mount *m)
{
    char dev[300];
    if (scsi_block_device(m->controller, m->lun, dev, sizeof(dev)) < 0) {
        snprintf(m->last_error, sizeof(m->last_error), "no such disk");
        return false;
    }
    if (!m->mount_path[0]) { /* attach only */
        m->ok = true;
        return true;
    }
    if (mount(dev, m->mount_path, m->fstype, m->flags, m->data[0] ? m->data : NULL) == 0) {
        m->ok = true;
        return true;
    }
    int e = errno;
    snprintf(m->last_error, sizeof(m->last_error), "mount %s: %s", dev, strerror(e));
    /* ENODEV: ext4 not loaded yet (late modules); ENXIO/ENOENT: node not yet there. */
    return !(e == ENODEV || e == ENXIO || e == ENOENT || e == EBUSY);
}

static void on_mount_poll(uv_timer_t *t)
{
    struct disk_mount *m = t->data;
    if (try_mount(m) || uv_now(t->loop) >= m->deadline) {
        uv_close((uv_handle_t *)t, disk_mount_closed);
        return;
    }
    uv_timer_start(t, on_mount_poll, SCSI_POLL_MS, 0);
}

static void mapped_disk_add(struct request *req, const struct gcs_mapped_virtual_disk *d)
{
    struct disk_mount *m = calloc(1, sizeof(*m));
    if (!m || !(m->mount_path = strdup(d->mount_path ? d->mount_path : ""))) {
        free(m);
        request_reply_error(req, GCS_HR_E_FAIL, "out of memory");
        return;
    }
    if (d->block_dev || d->encrypted || d->partition) {
        free(m->mount_path);
        free(m);
        request_reply_error(req, GCS_HR_E_NOTIMPL,
                            "MappedVirtualDisk: BlockDev, Encrypted and Partition are not "
                            "supported by this agent");
        return;
    }
    m->req = req;
    m->controller = d->controller;
    m->lun = d->lun;
    snprintf(m->fstype, sizeof(m->fstype), "%s",
             d->filesystem && d->filesystem[0] ? d->filesystem : "ext4");
    m->flags = mount_options(d->options, d->read_only, m->data, sizeof(m->data));
    if (m->mount_path[0] && mkdir_p(m->mount_path, 0755) < 0) {
        request_reply_error(req, GCS_HR_E_FAIL, "creating %s: %s", m->mount_path, strerror(errno));
        free(m->mount_path);
        free(m);
        return;
    }
    uv_timer_init(req->a->loop, &m->timer);
    m->timer.data = m;
    m->deadline = uv_now(req->a->loop) + SCSI_WAIT_MS;
    uv_timer_start(&m->timer, on_mount_poll, 0, 0);
}

static void mapped_disk_remove(struct request *req, const struct gcs_mapped_virtual_disk *d)
{
    if (!d->mount_path || !d->mount_path[0]) {
        request_reply(req, NULL); /* attach-only disk: nothing mounted */
        return;
    }
    if (umount2(d->mount_path, 0) < 0 && errno != EINVAL && errno != ENOENT) {
        int e = errno;
        if (umount2(d->mount_path, MNT_DETACH) < 0) {
            request_reply_error(req, GCS_HR_E_FAIL, "unmounting %s: %s", d->mount_path,
                                strerror(e));
            return;
        }
    }
    rmdir(d->mount_path);
    agent_track_mount(req->a, d->mount_path, false);
    log_info("MappedVirtualDisk Remove: %s", d->mount_path);
    request_reply(req, NULL);
}

void agent_modify_mapped_virtual_disk(struct request *req, const char *request_type,
                                      const json_t *settings)
{
    struct gcs_mapped_virtual_disk d;
    shim_error_t *err = NULL;
    bool add = strcmp(request_type, GCS_REQUEST_ADD) == 0;
    if (!add && strcmp(request_type, GCS_REQUEST_REMOVE) != 0) {
        request_reply_error(req, GCS_HR_E_FAIL, "the RequestType \"%s\" is not supported",
                            request_type);
        return;
    }
    if (gcs_mapped_virtual_disk_parse(settings, &d, &err) < 0) {
        request_reply_error(req, GCS_HR_INVALID_JSON, "%s", err->msg);
        error_free(err);
        return;
    }
    if (add)
        mapped_disk_add(req, &d);
    else
        mapped_disk_remove(req, &d);
}

void agent_modify_scsi_device(struct request *req, const char *request_type, const json_t *settings)
{
    struct gcs_scsi_device d;
    shim_error_t *err = NULL;
    if (strcmp(request_type, GCS_REQUEST_REMOVE) != 0) {
        request_reply_error(req, GCS_HR_E_FAIL, "the RequestType \"%s\" is not supported",
                            request_type);
        return;
    }
    if (gcs_scsi_device_parse(settings, &d, &err) < 0) {
        request_reply_error(req, GCS_HR_INVALID_JSON, "%s", err->msg);
        error_free(err);
        return;
    }
    int host = scsi_host_number(d.controller);
    char path[256];
    if (host >= 0) {
        scsi_device_dir(host, d.lun, path, sizeof(path));
        strncat(path, "/delete", sizeof(path) - strlen(path) - 1);
        FILE *f = fopen(path, "w");
        if (f) {
            fputs("1\n", f);
            if (fclose(f) != 0)
                log_warn("SCSIDevice Remove: writing %s: %s", path, strerror(errno));
        }
    }
    log_info("SCSIDevice Remove: controller %u lun %u", d.controller, d.lun);
    request_reply(req, NULL); /* already gone is fine */
}
