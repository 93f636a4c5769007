/* G11: HCS Properties -> VM statistics. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "hcs/doc_stats.h"
#include "test/golden/golden.h"

static void test_g11(void **state)
{
    (void)state;
    json_t *props =
        json_loads("{\"Statistics\":{\"Processor\":{\"TotalRuntime100ns\":150}},\"Memory\":{"
                   "\"VirtualNodeCount\":1,\"VirtualMachineMemory\":{\"AssignedMemory\":262144}}}",
                   0, NULL);
    struct hcs_vm_stats s;
    assert_int_equal(hcs_vm_stats_from_properties(props, true, &s, NULL), 0);
    assert_int_equal(s.total_runtime_ns, 15000);
    assert_true(s.working_set_known);
    assert_int_equal(s.working_set_bytes, 1073741824);
    assert_int_equal(s.virtual_node_count, 1);
    assert_true(s.has_vm_memory);
    assert_int_equal(s.assigned_memory, 262144);
    /* Not physically backed: the working set comes from the vmmem process. */
    assert_int_equal(hcs_vm_stats_from_properties(props, false, &s, NULL), 0);
    assert_false(s.working_set_known);
    assert_int_equal(s.working_set_bytes, 0);
    json_decref(props);
}

static void test_query_and_errors(void **state)
{
    (void)state;
    json_t *q = hcs_vm_stats_query();
    assert_true(json_matches_text(q, "{\"PropertyTypes\":[\"Statistics\",\"Memory\"]}"));
    json_decref(q);
    static const char *const bad[] = {
        "[]",
        "{\"Statistics\":5}",
        "{\"Statistics\":{\"Processor\":{\"TotalRuntime100ns\":-1}}}",
        "{\"Statistics\":{\"Processor\":{\"TotalRuntime100ns\":\"1\"}}}",
        "{\"Statistics\":{\"Processor\":{\"TotalRuntime100ns\":9223372036854775807}}}",
        "{\"Memory\":{\"VirtualNodeCount\":4294967296}}",
        "{\"Memory\":{\"VirtualMachineMemory\":{\"AvailableMemory\":2147483648}}}",
        "{\"Memory\":{\"VirtualMachineMemory\":[]}}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *p = json_loads(bad[i], 0, NULL);
        assert_non_null(p);
        struct hcs_vm_stats s;
        shim_error_t *err = NULL;
        assert_int_equal(hcs_vm_stats_from_properties(p, true, &s, &err), -1);
        assert_non_null(err);
        error_free(err);
        json_decref(p);
    }
    json_t *empty = json_object();
    struct hcs_vm_stats s;
    assert_int_equal(hcs_vm_stats_from_properties(empty, true, &s, NULL), 0);
    assert_int_equal(s.total_runtime_ns, 0);
    assert_false(s.has_vm_memory);
    json_decref(empty);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_g11),
        cmocka_unit_test(test_query_and_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
