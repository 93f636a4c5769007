/* libFuzzer target: arbitrary bytes as an OCI spec through classification,
 * annotation parsing/merging and every document builder. Must never crash,
 * leak or trip a sanitizer. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hcs/doc_container.h"
#include "hcs/doc_stats.h"
#include "oci/annotations.h"
#include "oci/lcow_spec.h"
#include "oci/spec.h"
#include "oci/uvm_options.h"
#include "uvm/doc_uvm.h"

/* The fake host "has" every file whose path does not contain "nope". */
static bool fake_exists(void *ctx, const char *path)
{
    (void)ctx;
    return strstr(path, "nope") == NULL;
}

static const struct uvm_host fuzz_host = {
    .build = 20348, .logical_processors = 8, .file_exists = fake_exists};

static void drop(shim_error_t *err)
{
    error_free(err);
}

static void run_lcow(const json_t *spec, const runhcs_options *opts)
{
    struct uvm_lcow_options o;
    shim_error_t *err = NULL;
    if (uvm_lcow_options_init(&o, "p@vm", "shim.exe", "info", NULL, &fuzz_host, &err) < 0) {
        drop(err);
        return;
    }
    if (oci_lcow_uvm_options(spec, opts, &o, &err) == 0) {
        json_t *doc = uvm_lcow_document(&o, &err);
        char *s = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
        free(s);
        json_decref(doc);
    }
    drop(err);
    uvm_lcow_options_free(&o);
}

static void run_wcow(const json_t *spec, const runhcs_options *opts)
{
    struct uvm_wcow_options o;
    shim_error_t *err = NULL;
    if (uvm_wcow_options_init(&o, "w@vm", NULL, &fuzz_host, &err) < 0) {
        drop(err);
        return;
    }
    if (oci_wcow_uvm_options(spec, opts, &o, &err) == 0)
        json_decref(uvm_wcow_document(&o, &err));
    drop(err);
    uvm_wcow_options_free(&o);
}

static void run_container(const json_t *spec)
{
    shim_error_t *err = NULL;
    json_t *lspec = oci_lcow_container_spec(spec, "c1", &err);
    if (lspec != NULL) {
        free(hcs_lcow_container_config_string("c1", lspec, &err));
        size_t i;
        json_t *m;
        json_array_foreach(json_object_get(lspec, "mounts"), i, m)
        {
            enum oci_lcow_mount_kind kind;
            struct oci_lcow_plan9_mount p;
            if (oci_lcow_mount_kind(m, &kind, &err) == 0 && kind == OCI_LCOW_MOUNT_PLAN9 &&
                oci_lcow_plan9_mount(m, "c1", i, i % 2 == 0, &p, &err) == 0) {
                oci_lcow_mount_rewrite(lspec, i, p.guest_source, NULL, &err);
                oci_lcow_plan9_mount_free(&p);
            }
            drop(err);
            err = NULL;
        }
        json_decref(lspec);
    }
    drop(err);
    err = NULL;
    static const struct hcs_layer layer = {"00000000-0000-0000-0000-000000000001", "C:\\L"};
    struct hcs_argon_params ap = {.owner = "shim.exe",
                                  .volume_path =
                                      "\\\\?\\Volume{00000000-0000-0000-0000-000000000002}",
                                  .layers = &layer,
                                  .n_layers = 1};
    json_decref(hcs_argon_document(spec, &ap, &err));
    drop(err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *spec = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    if (spec == NULL)
        return 0;
    shim_error_t *err = NULL;
    enum oci_spec_kind kind;
    enum oci_sandbox_type type;
    const char *id;
    oci_annotations_validate(spec, &err);
    drop(err);
    err = NULL;
    oci_classify(spec, &kind, &err);
    drop(err);
    err = NULL;
    oci_sandbox_type_and_id(spec, &type, &id, &err);
    drop(err);
    err = NULL;

    runhcs_options opts = CONTAINERD__RUNHCS__V1__OPTIONS__INIT;
    opts.vm_processor_count = 3;
    opts.vm_memory_size_in_mb = 1500;
    opts.boot_files_root_path = "C:\\boot";
    run_lcow(spec, size % 2 ? &opts : NULL);
    run_wcow(spec, size % 3 ? &opts : NULL);
    run_container(spec);

    struct hcs_vm_stats st;
    hcs_vm_stats_from_properties(spec, size % 2, &st, &err);
    drop(err);
    err = NULL;

    json_t *copy = json_deep_copy(spec);
    opts.sandbox_isolation = size % 2;
    opts.sandbox_platform = size % 5 ? "linux/amd64" : "windows/amd64";
    oci_apply_runtime_options(copy, &opts, &err);
    drop(err);
    json_decref(copy);
    json_decref(spec);
    return 0;
}
