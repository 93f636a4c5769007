/* G8 (layer attach sequence), G9 (Plan9 bind mount) and the other modify
 * requests of hcs-documents.md 6. The VPMem offsets of G8 are inputs here:
 * the packing allocator belongs to the UVM state, not to these builders. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "hcs/doc_modify.h"
#include "hcs/schema.h"
#include "oci/lcow_spec.h"
#include "test/golden/golden.h"

static void push(json_t *steps, json_t *step)
{
    assert_non_null(step);
    assert_int_equal(json_array_append_new(steps, step), 0);
}

/* Steps 5-7: scratch grant + attach + guest mount, then combine. */
static void push_scratch_and_combine(json_t *steps, const char *const *layer_paths)
{
    push(steps, json_pack("{s:{s:s,s:s}}", "GrantVmAccess", "VmId", "p1@vm", "Path",
                          "C:\\S\\sandbox.vhdx"));
    struct hcs_scsi_attachment a = {.controller = 0, .lun = 0, .path = "C:\\S\\sandbox.vhdx"};
    push(steps, hcs_scsi_attach_request(&a));
    char *mount = oci_lcow_bundle_path("c1");
    struct hcs_lcow_mapped_disk d = {
        .mount_path = mount, .ensure_filesystem = true, .filesystem = "ext4"};
    push(steps, hcs_guest_lcow_mapped_disk(HCS_REQUEST_ADD, &d));
    free(mount);
    char *root = oci_lcow_rootfs_path("c1");
    char *scratch = oci_lcow_scratch_dir_path("c1");
    push(steps, hcs_guest_lcow_combined_layers_add("c1", root, layer_paths, 2, scratch));
    free(root);
    free(scratch);
}

static void test_g8_multimapped(void **state)
{
    (void)state;
    static const struct {
        const char *vhd;
        uint64_t file_size, offset;
    } layers[] = {{"C:\\L2\\layer.vhd", 10485760, 0}, {"C:\\L1\\layer.vhd", 3000000, 16777216}};
    json_t *steps = json_array();
    char *paths[2];
    for (int i = 0; i < 2; i++) {
        uint64_t size = hcs_page_align(layers[i].file_size);
        paths[i] = hcs_lcow_vpmem_mount_path(0, true, layers[i].offset, size);
        push(steps, hcs_vpmem_mapping_add(0, layers[i].offset, layers[i].vhd));
        push(steps, hcs_guest_vpmem_device(HCS_REQUEST_ADD, 0, paths[i], layers[i].offset, size));
    }
    assert_int_equal(hcs_page_align(3000000), 3002368);
    push_scratch_and_combine(steps, (const char *const *)paths);
    assert_true(golden_matches(steps, "g8_layer_attach.expected.json"));
    free(paths[0]);
    free(paths[1]);
    json_decref(steps);
}

static void test_g8_no_multimapping(void **state)
{
    (void)state;
    static const char *const vhds[] = {"C:\\L2\\layer.vhd", "C:\\L1\\layer.vhd"};
    json_t *steps = json_array();
    char *paths[2];
    for (unsigned dev = 0; dev < 2; dev++) {
        paths[dev] = hcs_lcow_vpmem_mount_path(dev, false, 0, 0);
        push(steps, hcs_vpmem_device_add(dev, vhds[dev], true));
        push(steps, hcs_guest_vpmem_device(HCS_REQUEST_ADD, dev, paths[dev], 0, 0));
    }
    push_scratch_and_combine(steps, (const char *const *)paths);
    assert_true(golden_matches(steps, "g8_layer_attach_nomultimapping.expected.json"));
    free(paths[0]);
    free(paths[1]);
    json_decref(steps);
}

/* G9: plan the mount, build both requests, rewrite the spec. */
static json_t *g9_result(json_t *spec, bool is_file)
{
    json_t *mount = json_array_get(json_object_get(spec, "mounts"), 2);
    enum oci_lcow_mount_kind kind;
    assert_int_equal(oci_lcow_mount_kind(mount, &kind, NULL), 0);
    assert_int_equal(kind, OCI_LCOW_MOUNT_PLAN9);
    struct oci_lcow_plan9_mount m;
    shim_error_t *err = NULL;
    assert_int_equal(oci_lcow_plan9_mount(mount, "c1", 2, is_file, &m, &err), 0);
    json_t *host = hcs_plan9_share_add("0", m.host_dir, m.read_only, m.file);
    json_t *guest = hcs_guest_mapped_directory_add(m.guest_mount_path, "0", m.read_only);
    assert_int_equal(oci_lcow_mount_rewrite(spec, 2, m.guest_source, NULL, &err), 0);
    oci_lcow_plan9_mount_free(&m);
    return json_pack("{s:o,s:o,s:O}", "host", host, "guest", guest, "mount", mount);
}

static void test_g9_plan9_file(void **state)
{
    (void)state;
    json_t *spec = golden_load("g9_plan9.input.json");
    json_t *result = g9_result(spec, true);
    assert_true(golden_matches(result, "g9_plan9_file.expected.json"));
    json_decref(result);
    json_decref(spec);
}

static void test_g9_plan9_dir(void **state)
{
    (void)state;
    json_t *spec = golden_load("g9_plan9.input.json");
    json_t *mount = json_array_get(json_object_get(spec, "mounts"), 2);
    json_object_set_new(mount, "source", json_string("C:\\data"));
    json_object_set_new(mount, "options", json_pack("[s]", "rbind"));
    json_t *result = g9_result(spec, false);
    assert_true(golden_matches(result, "g9_plan9_dir.expected.json"));
    json_decref(result);
    json_decref(spec);
}

static void test_plan9_misc(void **state)
{
    (void)state;
    assert_int_equal(hcs_plan9_flags(false, false), 4);
    assert_int_equal(hcs_plan9_flags(true, false), 5);
    assert_int_equal(hcs_plan9_flags(false, true), 132);
    assert_int_equal(hcs_plan9_flags(true, true), 133);
    json_t *r = hcs_plan9_share_remove("3");
    assert_true(json_matches_text(r, "{\"ResourcePath\":\"VirtualMachine/Devices/Plan9/Shares\","
                                     "\"RequestType\":\"Remove\",\"Settings\":{\"Name\":\"3\","
                                     "\"AccessName\":\"3\",\"Port\":564}}"));
    json_decref(r);
    r = hcs_guest_mapped_directory_remove("/run/gcs/c/c1/mounts/m2", "3");
    assert_true(json_matches_text(r, "{\"ResourceType\":\"MappedDirectory\",\"RequestType\":"
                                     "\"Remove\",\"Settings\":{\"MountPath\":\"/run/gcs/c/c1/"
                                     "mounts/m2\",\"ShareName\":\"3\",\"Port\":564}}"));
    json_decref(r);
    /* A file source without a directory part is an error. */
    json_t *m = json_pack("{s:s,s:s,s:s}", "destination", "/x", "type", "bind", "source", "f");
    struct oci_lcow_plan9_mount p;
    shim_error_t *err = NULL;
    assert_int_equal(oci_lcow_plan9_mount(m, "c1", 0, true, &p, &err), -1);
    error_free(err);
    json_decref(m);
    assert_null(hcs_plan9_share_add(NULL, "C:\\x", false, NULL));
}

static void test_scsi(void **state)
{
    (void)state;
    struct hcs_scsi_attachment a = {
        .controller = 0, .lun = 3, .path = "C:\\x\\a.vhdx", .read_only = true};
    json_t *r = hcs_scsi_attach_request(&a);
    assert_true(json_matches_text(
        r, "{\"ResourcePath\":\"VirtualMachine/Devices/Scsi/df6d0690-79e5-55b6-a5ec-c1e2f77f580a/"
           "Attachments/3\",\"RequestType\":\"Add\",\"Settings\":{\"Type\":\"VirtualDisk\","
           "\"Path\":\"C:\\\\x\\\\a.vhdx\",\"ReadOnly\":true}}"));
    json_decref(r);
    struct hcs_scsi_attachment evd = {.controller = 3,
                                      .lun = 63,
                                      .path = "p",
                                      .type = "ExtensibleVirtualDisk",
                                      .evd_type = "space"};
    r = hcs_scsi_attach_request(&evd);
    assert_true(json_matches_text(
        r, "{\"ResourcePath\":\"VirtualMachine/Devices/Scsi/305891a9-b251-5dfe-91a2-c25d9212275b/"
           "Attachments/63\",\"RequestType\":\"Add\",\"Settings\":{\"Type\":"
           "\"ExtensibleVirtualDisk\",\"Path\":\"p\",\"ExtensibleVirtualDiskType\":\"space\"}}"));
    json_decref(r);
    evd.lun = 64;
    assert_null(hcs_scsi_attach_request(&evd));
    evd.lun = 0;
    evd.controller = 4;
    assert_null(hcs_scsi_attach_request(&evd));
    r = hcs_scsi_detach_request(0, 3);
    assert_true(json_matches_text(
        r, "{\"ResourcePath\":\"VirtualMachine/Devices/Scsi/df6d0690-79e5-55b6-a5ec-c1e2f77f580a/"
           "Attachments/3\",\"RequestType\":\"Remove\"}"));
    json_decref(r);
    static const char *const ro[] = {"ro"};
    struct hcs_lcow_mapped_disk d = {.mount_path = "/run/mounts/scsi/m0",
                                     .lun = 3,
                                     .read_only = true,
                                     .options = ro,
                                     .n_options = 1};
    r = hcs_guest_lcow_mapped_disk(HCS_REQUEST_ADD, &d);
    assert_true(json_matches_text(
        r, "{\"ResourceType\":\"MappedVirtualDisk\",\"RequestType\":\"Add\",\"Settings\":{"
           "\"MountPath\":\"/run/mounts/scsi/"
           "m0\",\"Lun\":3,\"ReadOnly\":true,\"Options\":[\"ro\"]}}"));
    json_decref(r);
    d.controller = 1;
    d.encrypted = true;
    d.block_dev = true;
    r = hcs_guest_lcow_mapped_disk(HCS_REQUEST_REMOVE, &d);
    assert_true(json_matches_text(
        r, "{\"ResourceType\":\"MappedVirtualDisk\",\"RequestType\":\"Remove\",\"Settings\":{"
           "\"MountPath\":\"/run/mounts/scsi/m0\",\"Lun\":3,\"Controller\":1,\"ReadOnly\":true,"
           "\"BlockDev\":true}}"));
    json_decref(r);
    r = hcs_guest_scsi_unplug(1, 3);
    assert_true(json_matches_text(r, "{\"ResourceType\":\"SCSIDevice\",\"RequestType\":\"Remove\","
                                     "\"Settings\":{\"Controller\":1,\"Lun\":3}}"));
    json_decref(r);
    r = hcs_guest_scsi_unplug(0, 0);
    assert_true(json_matches_text(r, "{\"ResourceType\":\"SCSIDevice\",\"RequestType\":\"Remove\","
                                     "\"Settings\":{}}"));
    json_decref(r);
    r = hcs_guest_wcow_mapped_disk(HCS_REQUEST_ADD, "c:\\mounts\\scsi\\m0", 3);
    assert_true(json_matches_text(r, "{\"ResourceType\":\"MappedVirtualDisk\",\"RequestType\":"
                                     "\"Add\",\"Settings\":{\"ContainerPath\":\"c:\\\\mounts\\\\"
                                     "scsi\\\\m0\",\"Lun\":3}}"));
    json_decref(r);
}

static void test_vpmem(void **state)
{
    (void)state;
    json_t *r = hcs_vpmem_device_add(5, "C:\\l\\layer.vhd", true);
    assert_true(json_matches_text(
        r, "{\"ResourcePath\":\"VirtualMachine/Devices/VirtualPMem/Devices/5\",\"RequestType\":"
           "\"Add\",\"Settings\":{\"HostPath\":\"C:\\\\l\\\\layer.vhd\",\"ReadOnly\":true,"
           "\"ImageFormat\":\"Vhd1\"}}"));
    json_decref(r);
    r = hcs_guest_vpmem_device(HCS_REQUEST_REMOVE, 5, "/run/layers/p5", 0, 0);
    assert_true(json_matches_text(r, "{\"ResourceType\":\"VPMemDevice\",\"RequestType\":\"Remove\","
                                     "\"Settings\":{\"DeviceNumber\":5,\"MountPath\":"
                                     "\"/run/layers/p5\"}}"));
    json_decref(r);
    r = hcs_vpmem_device_remove(5);
    assert_true(json_matches_text(r, "{\"ResourcePath\":\"VirtualMachine/Devices/VirtualPMem/"
                                     "Devices/5\",\"RequestType\":\"Remove\"}"));
    json_decref(r);
    r = hcs_vpmem_mapping_remove(0, 16777216);
    assert_true(json_matches_text(r, "{\"ResourcePath\":\"VirtualMachine/Devices/VirtualPMem/"
                                     "Devices/0/Mappings/16777216\",\"RequestType\":\"Remove\"}"));
    json_decref(r);
    assert_null(hcs_vpmem_mapping_add(0, 0, NULL));
    assert_int_equal(hcs_page_align(0), 0);
    assert_int_equal(hcs_page_align(1), 4096);
    assert_int_equal(hcs_page_align(4096), 4096);
}

static void test_vsmb(void **state)
{
    (void)state;
    struct hcs_vsmb_options o = hcs_vsmb_read_only_layer_options(true);
    json_t *r = hcs_vsmb_share_request(HCS_REQUEST_ADD, "s1", "C:\\layer", &o, NULL, 0);
    assert_true(json_matches_text(
        r, "{\"ResourcePath\":\"VirtualMachine/Devices/VirtualSmb/Shares\",\"RequestType\":"
           "\"Add\",\"Settings\":{\"Name\":\"s1\",\"Path\":\"C:\\\\layer\",\"Options\":{"
           "\"ReadOnly\":true,\"ShareRead\":true,\"CacheIo\":true,\"TakeBackupPrivilege\":true,"
           "\"NoDirectmap\":true,\"PseudoOplocks\":true}}}"));
    json_decref(r);
    struct hcs_vsmb_options f = {
        .restrict_file_access = true, .single_file_mapping = true, .read_only = true};
    static const char *const files[] = {"a.txt", "b.txt"};
    r = hcs_vsmb_share_request(HCS_REQUEST_UPDATE, "s2", "C:\\dir", &f, files, 2);
    assert_true(json_matches_text(
        r, "{\"ResourcePath\":\"VirtualMachine/Devices/VirtualSmb/Shares\",\"RequestType\":"
           "\"Update\",\"Settings\":{\"Name\":\"s2\",\"Path\":\"C:\\\\dir\",\"AllowedFiles\":"
           "[\"a.txt\",\"b.txt\"],\"Options\":{\"ReadOnly\":true,\"RestrictFileAccess\":true,"
           "\"SingleFileMapping\":true}}}"));
    json_decref(r);
    r = hcs_vsmb_share_remove("s1");
    assert_true(json_matches_text(r, "{\"ResourcePath\":\"VirtualMachine/Devices/VirtualSmb/"
                                     "Shares\",\"RequestType\":\"Remove\",\"Settings\":{\"Name\":"
                                     "\"s1\"}}"));
    json_decref(r);
    char *p = hcs_vsmb_guest_path("s1");
    assert_string_equal(p, "\\\\?\\VMSMB\\VSMB-{dcc079ae-60ba-4d07-847c-3493609c0870}\\s1");
    free(p);
}

static void test_network(void **state)
{
    (void)state;
    json_t *r =
        hcs_network_adapter_request(HCS_REQUEST_ADD, "nic1", "ep1", "00-15-5D-01-02-03", NULL);
    assert_true(json_matches_text(
        r, "{\"ResourcePath\":\"VirtualMachine/Devices/NetworkAdapters/nic1\",\"RequestType\":"
           "\"Add\",\"Settings\":{\"EndpointId\":\"ep1\",\"MacAddress\":\"00-15-5D-01-02-03\"}}"));
    json_decref(r);
    struct hcs_ip_config ip = {"10.0.0.5", 24};
    struct hcs_route route = {"10.0.0.1", "0.0.0.0/0", 0};
    struct hcs_lcow_network_adapter a = {.namespace_id = "ns",
                                         .nic_id = "nic1",
                                         .mac = "00-15-5D-01-02-03",
                                         .dns_suffix = "a.com,b.com",
                                         .dns_servers = "10.0.0.10",
                                         .encap_overhead = 50,
                                         .ip_configs = &ip,
                                         .n_ip_configs = 1,
                                         .routes = &route,
                                         .n_routes = 1};
    r = hcs_guest_lcow_network_add(&a);
    assert_true(json_matches_text(
        r, "{\"ResourceType\":\"Network\",\"RequestType\":\"Add\",\"Settings\":{\"NamespaceID\":"
           "\"ns\",\"ID\":\"nic1\",\"MacAddress\":\"00-15-5D-01-02-03\",\"DNSSuffix\":\"a.com,"
           "b.com\",\"DNSServerList\":\"10.0.0.10\",\"EncapOverhead\":50,\"IPConfigs\":[{"
           "\"IPAddress\":\"10.0.0.5\",\"PrefixLength\":24}],\"Routes\":[{\"NextHop\":"
           "\"10.0.0.1\",\"DestinationPrefix\":\"0.0.0.0/0\"}]}}"));
    json_decref(r);
    r = hcs_guest_lcow_network_remove("ns", "nic1");
    assert_true(json_matches_text(r, "{\"ResourceType\":\"Network\",\"RequestType\":\"Remove\","
                                     "\"Settings\":{\"NamespaceID\":\"ns\",\"ID\":\"nic1\"}}"));
    json_decref(r);
    r = hcs_wcow_nic_add("nic1", "ep1", "m");
    assert_true(json_matches_text(
        r, "{\"ResourcePath\":\"VirtualMachine/Devices/NetworkAdapters/nic1\",\"RequestType\":"
           "\"Add\",\"Settings\":{\"EndpointId\":\"ep1\",\"MacAddress\":\"m\"},\"GuestRequest\":"
           "{\"ResourceType\":\"Network\",\"RequestType\":\"Add\",\"Settings\":{\"AdapterId\":"
           "\"nic1\",\"RequestType\":\"Add\"}}}"));
    json_decref(r);
    r = hcs_wcow_nic_remove("nic1", "ep1", "m");
    assert_true(json_matches_text(
        r, "{\"ResourcePath\":\"VirtualMachine/Devices/NetworkAdapters/nic1\",\"RequestType\":"
           "\"Remove\",\"Settings\":{\"EndpointId\":\"ep1\",\"MacAddress\":\"m\"},"
           "\"GuestRequest\":{\"RequestType\":\"Remove\",\"Settings\":{\"AdapterId\":\"nic1\","
           "\"RequestType\":\"Remove\"}}}"));
    json_decref(r);
    json_t *ep = json_pack("{s:s}", "ID", "ep1");
    r = hcs_guest_wcow_nic_preadd("nic1", ep);
    assert_true(json_matches_text(r, "{\"ResourceType\":\"Network\",\"RequestType\":\"Add\","
                                     "\"Settings\":{\"AdapterId\":\"nic1\",\"RequestType\":"
                                     "\"PreAdd\",\"Settings\":{\"ID\":\"ep1\"}}}"));
    json_decref(r);
    r = hcs_guest_wcow_namespace_add(ep);
    assert_true(json_matches_text(r, "{\"ResourceType\":\"NetworkNamespace\",\"RequestType\":"
                                     "\"Add\",\"Settings\":{\"ID\":\"ep1\"}}"));
    json_decref(r);
    json_decref(ep);
}

static void test_combined_layers_remove(void **state)
{
    (void)state;
    json_t *r =
        hcs_guest_only_request(hcs_guest_lcow_combined_layers_remove("/run/gcs/c/c1/rootfs"));
    assert_true(json_matches_text(
        r, "{\"GuestRequest\":{\"ResourceType\":\"CombinedLayers\",\"RequestType\":\"Remove\","
           "\"Settings\":{\"ContainerRootPath\":\"/run/gcs/c/c1/rootfs\"}}}"));
    json_decref(r);
    json_t *host = hcs_modify_request("VirtualMachine/x", NULL, json_integer(5),
                                      hcs_guest_request("T", HCS_REQUEST_UPDATE, NULL));
    assert_true(json_matches_text(host, "{\"ResourcePath\":\"VirtualMachine/x\",\"Settings\":5,"
                                        "\"GuestRequest\":{\"ResourceType\":\"T\","
                                        "\"RequestType\":\"Update\"}}"));
    json_decref(host);
    assert_null(hcs_guest_lcow_combined_layers_add("c1", NULL, NULL, 0, NULL));
}

static void test_other_requests(void **state)
{
    (void)state;
    static const char *const ids[] = {"id1"};
    static const char *const paths[] = {
        "\\\\?\\VMSMB\\VSMB-{dcc079ae-60ba-4d07-847c-3493609c0870}\\s1"};
    json_t *r = hcs_guest_wcow_combined_layers_add("C:\\c\\1", ids, paths, 1, "C:\\c\\1\\s");
    assert_true(json_matches_text(
        r, "{\"ResourceType\":\"CombinedLayers\",\"RequestType\":\"Add\",\"Settings\":{"
           "\"ContainerRootPath\":\"C:\\\\c\\\\1\",\"Layers\":[{\"Id\":\"id1\",\"Path\":"
           "\"\\\\\\\\?\\\\VMSMB\\\\VSMB-{dcc079ae-60ba-4d07-847c-3493609c0870}\\\\s1\"}],"
           "\"ScratchPath\":\"C:\\\\c\\\\1\\\\s\"}}"));
    json_decref(r);
    r = hcs_guest_wcow_hvsocket_update("rt-guid");
    assert_true(json_matches_text(r, "{\"ResourceType\":\"HvSocket\",\"RequestType\":\"Update\","
                                     "\"Settings\":{\"LocalAddress\":\"rt-guid\",\"ParentAddress\":"
                                     "\"894cc2d6-9d79-424f-93fe-42969ae6d8d1\"}}"));
    json_decref(r);
    json_t *res = json_pack("{s:{s:i}}", "memory", "limit", 1024);
    r = hcs_guest_container_constraints(true, res);
    assert_true(json_matches_text(r, "{\"ResourceType\":\"ContainerConstraints\",\"RequestType\":"
                                     "\"Update\",\"Settings\":{\"Linux\":{\"memory\":{\"limit\":"
                                     "1024}}}}"));
    json_decref(r);
    json_decref(res);
    r = hcs_memory_size_update(2048);
    assert_true(json_matches_text(r, "{\"ResourcePath\":\"VirtualMachine/ComputeTopology/Memory/"
                                     "SizeInMB\",\"Settings\":2048}"));
    json_decref(r);
    assert_null(hcs_memory_size_update(0));
    r = hcs_processor_limits_update(50000, 0, 0, 0);
    assert_true(json_matches_text(r, "{\"ResourcePath\":\"VirtualMachine/ComputeTopology/"
                                     "Processor/Limits\",\"RequestType\":\"Update\",\"Settings\":{"
                                     "\"Limit\":50000}}"));
    json_decref(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_g8_multimapped), cmocka_unit_test(test_g8_no_multimapping),
        cmocka_unit_test(test_g9_plan9_file),  cmocka_unit_test(test_g9_plan9_dir),
        cmocka_unit_test(test_plan9_misc),     cmocka_unit_test(test_scsi),
        cmocka_unit_test(test_vpmem),          cmocka_unit_test(test_vsmb),
        cmocka_unit_test(test_network),        cmocka_unit_test(test_combined_layers_remove),
        cmocka_unit_test(test_other_requests),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
