/* Translation of HCS documents to QEMU: the pure part of the Linux compute
 * backend (no processes, no sockets), so it can be unit-tested.
 *
 *   qemu_vm_config_parse    LCOW UVM ComputeSystem document (hcs-documents.md
 *                           §2) -> struct qemu_vm_config
 *   qemu_build_argv         config + launch settings -> qemu argv
 *   qemu_modify_parse       ModifySettingRequest (§6) -> struct qemu_modify
 *   qemu_modify_commands    struct qemu_modify -> the QMP commands to run
 *
 * Supported document parts: ComputeTopology.Memory.SizeInMB,
 * ComputeTopology.Processor.Count, Chipset.LinuxKernelDirect (KernelFilePath,
 * InitRdPath, KernelCmdLine), Devices.Scsi (controllers and VirtualDisk
 * attachments). Parts that have no meaning here (HvSocket, Plan9 {}, VPMem
 * limits, StorageQoS, ...) are ignored; Chipset.Uefi is rejected. */
#ifndef HCS_QEMU_CONFIG_H
#define HCS_QEMU_CONFIG_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"

#define QEMU_MAX_SCSI_CONTROLLERS 4
#define QEMU_MAX_SCSI_LUN 255
#define QEMU_GCS_PORT_NAME "gcs"     /* the GCS bridge */
#define QEMU_STDIO_PORT_NAME "stdio" /* process stdio, multiplexed (notes/mux.md) */

enum qemu_machine { QEMU_MACHINE_MICROVM = 0, QEMU_MACHINE_Q35 };
enum qemu_accel { QEMU_ACCEL_AUTO = 0, QEMU_ACCEL_KVM, QEMU_ACCEL_TCG };

struct qemu_disk {
    unsigned controller, lun;
    char *path;
    bool read_only;
};

struct qemu_vm_config {
    uint64_t memory_mb;
    unsigned cpus;
    char *kernel, *initrd, *cmdline;
    unsigned scsi_controllers;                  /* how many controllers the VM has */
    char *scsi_keys[QEMU_MAX_SCSI_CONTROLLERS]; /* document key of controller i */
    struct qemu_disk *disks;
    size_t ndisks;
};

/* Host-side settings of one launch (not part of the document). */
struct qemu_launch {
    enum qemu_machine machine;
    enum qemu_accel accel;         /* resolved: KVM or TCG */
    uint64_t tsc_khz;              /* microvm + TCG: tsc_early_khz (0 = leave out) */
    int qmp_fd;                    /* fd number of the QMP socket in the child */
    const char *gcs_socket;        /* listening socket path of the "gcs" port */
    const char *stdio_socket;      /* of the "stdio" port; NULL = no such port */
    const char *extra_kernel_args; /* may be NULL */
};

int qemu_vm_config_parse(const char *document, struct qemu_vm_config *cfg, shim_error_t **err);
void qemu_vm_config_clear(struct qemu_vm_config *cfg);
/* Controller index for a document key (the config's keys, the HEAD GUIDs or
 * "0".."3"); -1 when unknown. */
int qemu_scsi_controller_index(const struct qemu_vm_config *cfg, const char *key);

/* NULL-terminated argv (argv[0] = qemu binary); free with qemu_argv_free. */
int qemu_build_argv(const char *qemu_binary, const struct qemu_vm_config *cfg,
                    const struct qemu_launch *launch, char ***argv, shim_error_t **err);
void qemu_argv_free(char **argv);
/* The kernel command line qemu_build_argv passes (malloc'd). */
char *qemu_kernel_cmdline(const struct qemu_vm_config *cfg, const struct qemu_launch *launch);

/* QEMU block driver for an image path: vpc (.vhd), vhdx, qcow2, else raw. */
const char *qemu_image_format(const char *path);

enum qemu_modify_kind { QEMU_MODIFY_SCSI_DISK, QEMU_MODIFY_SERIAL_PORT };

/* ResourcePath forms:
 *   VirtualMachine/Devices/Scsi/<controller key>/Attachments/<lun>
 *     Add: Settings {"Type":"VirtualDisk","Path":...,"ReadOnly":bool}; Remove.
 *   VirtualMachine/Devices/VirtioSerial/Ports/<name>   (Linux backend only)
 *     Add: Settings optional {"SocketPath": host path}; Remove. */
struct qemu_modify {
    enum qemu_modify_kind kind;
    bool add;              /* else remove */
    struct qemu_disk disk; /* SCSI: controller, lun, path (add), read_only */
    char *port_name;       /* serial port */
    char *socket_path;     /* serial port add: NULL = backend default */
};

int qemu_modify_parse(const struct qemu_vm_config *cfg, const char *request, struct qemu_modify *m,
                      shim_error_t **err);
void qemu_modify_clear(struct qemu_modify *m);

/* Device and node names used for a disk / a port. */
void qemu_disk_ids(unsigned controller, unsigned lun, char *device_id, char *node_name,
                   size_t size);
void qemu_port_ids(const char *name, char *device_id, char *chardev_id, size_t size);

/* One QMP command of a modify: execute `command` with `args`. When
 * wait_deleted is set, the step is complete only after the DEVICE_DELETED
 * event for that device id. */
struct qemu_qmp_step {
    const char *command;
    json_t *args;
    char wait_deleted[64];
};
/* Builds the QMP steps for m (socket_path: resolved path for a port add).
 * Returns the step count (<= 2) or -1. Free the args with qemu_steps_clear. */
int qemu_modify_commands(const struct qemu_modify *m, const char *socket_path,
                         struct qemu_qmp_step steps[2], shim_error_t **err);
void qemu_steps_clear(struct qemu_qmp_step *steps, int n);

#endif
