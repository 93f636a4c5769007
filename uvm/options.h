/* Utility VM creation options (hcsshim OptionsLCOW / OptionsWCOW) with their
 * defaults. Pure data: the host facts the defaults depend on (build number,
 * logical processors, which boot files exist) come in through struct
 * uvm_host, so the translation runs and is tested on any OS. */
#ifndef UVM_OPTIONS_H
#define UVM_OPTIONS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"

/* Windows builds that gate features. */
#define UVM_BUILD_RS5 17763 /* schema v2 floor, 4 SCSI controllers */
#define UVM_BUILD_KERNEL_DIRECT 18286
#define UVM_BUILD_19H1 18362 /* VPMem multi-mapping, single-file Plan9 */
#define UVM_BUILD_COLD_DISCARD 18967

struct uvm_host {
    uint32_t build;              /* Windows build number */
    uint32_t logical_processors; /* 0 = unknown (no clamping) */
    bool arm64;
    /* Does this host path exist? NULL: no probing (no vmlinux/rootfs.vhd
     * detection and no boot-file checks). */
    bool (*file_exists)(void *ctx, const char *path);
    void *ctx;
};

enum uvm_rootfs_type {
    UVM_ROOTFS_INITRD,
    UVM_ROOTFS_VHD,
};

#define UVM_DEFAULT_BOOT_PATH "C:\\Program Files\\Linux Containers"
#define UVM_KERNEL_FILE "kernel"
#define UVM_UNCOMPRESSED_KERNEL_FILE "vmlinux"
#define UVM_INITRD_FILE "initrd.img"
#define UVM_VHD_FILE "rootfs.vhd"
#define UVM_DEFAULT_MEMORY_MB 1024
#define UVM_DEFAULT_VPMEM_COUNT 64
#define UVM_MAX_VPMEM_COUNT 128
#define UVM_DEFAULT_VPMEM_SIZE 4294967296ULL

/* Settings common to LCOW and WCOW. */
struct uvm_common_options {
    char *id;    /* compute-system id, "<pod>@vm" */
    char *owner; /* base name of the shim executable */
    uint64_t memory_size_mb;
    bool allow_overcommit;
    bool enable_deferred_commit;
    uint64_t low_mmio_gap_mb, high_mmio_base_mb, high_mmio_gap_mb;
    int32_t processor_count;  /* requested; the document clamps to the host */
    int32_t processor_limit;  /* 0..100000 */
    int32_t processor_weight; /* 0..10000 */
    char *cpu_group_id;
    char *resource_partition_id;
    int32_t storage_qos_iops_max;
    int32_t storage_qos_bandwidth_max;
    bool fully_physically_backed;
    char *console_pipe;
    bool enable_graphics_console;
    char *process_dump_location;
    bool disable_writable_file_shares;
    struct uvm_host host;
};

struct uvm_lcow_options {
    struct uvm_common_options common;
    bool enable_cold_discard_hint;
    uint32_t scsi_controller_count;
    char *boot_files_path;
    char *kernel_file;
    char *rootfs_file;
    enum uvm_rootfs_type rootfs_type;
    bool kernel_direct;
    char *kernel_boot_options;
    char *exec_command_line; /* "/bin/gcs -v4 -log-format json -loglevel <lvl>" + extras */
    bool forward_stdout, forward_stderr;
    uint32_t vpmem_device_count;
    uint64_t vpmem_size_bytes;
    bool vpmem_no_multi_mapping;
    bool vpci_enabled;
    bool enable_scratch_encryption;
    bool disable_time_sync;
    bool writable_overlay_dirs;
    bool disable_log_scrubbing;     /* adds -scrub-logs=false */
    json_t *hvsocket_service_table; /* owned; GUID -> HvSocketServiceConfig, or NULL */
};

struct uvm_wcow_options {
    struct uvm_common_options common;
    char *uvm_image_path; /* folder holding UtilityVM\Files */
    char *scratch_path;   /* the UVM's sandbox.vhdx */
    bool disable_compartment_namespace;
    bool no_direct_map;
    bool no_inherit_host_timezone;
    bool forward_logs; /* log-forwarding hvsocket service, default on */
};

/* hcsshim NewDefaultOptionsLCOW. `id` empty/NULL is an error (callers pass
 * "<pod>@vm"); `gcs_log_level` is the shim's logrus level name ("info" if
 * NULL). Detects vmlinux / rootfs.vhd in the default boot directory (or
 * `boot_files_path` if non-NULL). */
int uvm_lcow_options_init(struct uvm_lcow_options *o, const char *id, const char *owner,
                          const char *gcs_log_level, const char *boot_files_path,
                          const struct uvm_host *host, shim_error_t **err);
void uvm_lcow_options_free(struct uvm_lcow_options *o);

/* HEAD UpdateBootFilesPath: switches the boot directory and re-runs the
 * vmlinux (when kernel-direct) and rootfs.vhd detection there. */
int uvm_lcow_set_boot_files_path(struct uvm_lcow_options *o, const char *path, shim_error_t **err);

int uvm_wcow_options_init(struct uvm_wcow_options *o, const char *id, const char *owner,
                          const struct uvm_host *host, shim_error_t **err);
void uvm_wcow_options_free(struct uvm_wcow_options *o);

/* Replaces *slot with a copy of value (NULL allowed). */
int uvm_set_string(char **slot, const char *value, shim_error_t **err);

/* Joins dir and name with one backslash. Heap string or NULL. */
char *uvm_join_path(const char *dir, const char *name);

#endif
