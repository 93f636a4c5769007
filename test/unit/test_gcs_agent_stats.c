/* Guest agent statistics: cgroup v1 and v2 files mapped onto containerd's
 * v1 Metrics JSON (snake_case, zero values left out). Uses fake cgroup trees. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "gcs/guest/stats.h"

static char root[] = "/tmp/test_gcs_agent_stats.XXXXXX";

static void put(const char *rel, const char *content)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", root, rel);
    char *slash = strrchr(path, '/');
    *slash = '\0';
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", path);
    assert_int_equal(system(cmd), 0);
    *slash = '/';
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(content, f);
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    return mkdtemp(root) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    return system(cmd) == 0 ? 0 : -1;
}

static json_int_t geti(json_t *m, const char *path)
{
    char buf[128];
    snprintf(buf, sizeof(buf), "%s", path);
    json_t *v = m;
    for (char *save = NULL, *k = strtok_r(buf, ".", &save); k; k = strtok_r(NULL, ".", &save))
        v = json_object_get(v, k);
    return json_is_integer(v) ? json_integer_value(v) : -1;
}

static void test_v2(void **state)
{
    (void)state;
    put("proc/cgroup", "0::/containers/abc\n");
    put("cg/containers/abc/cpu.stat", "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n"
                                      "nr_periods 4\nnr_throttled 2\nthrottled_usec 7\n");
    put("cg/containers/abc/memory.current", "4096\n");
    put("cg/containers/abc/memory.max", "max\n");
    put("cg/containers/abc/memory.peak", "8192\n");
    put("cg/containers/abc/memory.events", "low 0\nhigh 0\nmax 3\noom 0\n");
    put("cg/containers/abc/memory.stat", "anon 100\nfile 200\nfile_mapped 0\npgfault 9\n"
                                         "inactive_file 50\nsomething_new 1\n");
    put("cg/containers/abc/memory.swap.current", "0\n");
    put("cg/containers/abc/pids.current", "2\n");
    put("cg/containers/abc/pids.max", "max\n");

    char proc[512], cg[512];
    snprintf(proc, sizeof(proc), "%s/proc/cgroup", root);
    snprintf(cg, sizeof(cg), "%s/cg", root);
    struct gcs_cgroup_paths p;
    assert_int_equal(gcs_cgroup_paths_resolve(proc, cg, true, &p, NULL), 0);
    assert_non_null(p.unified);
    assert_non_null(strstr(p.unified, "/cg/containers/abc"));
    assert_null(strstr(p.unified, "//"));
    json_t *m = gcs_stats_read(&p);
    assert_int_equal(geti(m, "cpu.usage.total"), 1500000);
    assert_int_equal(geti(m, "cpu.usage.user"), 1000000);
    assert_int_equal(geti(m, "cpu.usage.kernel"), 500000);
    assert_int_equal(geti(m, "cpu.throttling.periods"), 4);
    assert_int_equal(geti(m, "cpu.throttling.throttled_periods"), 2);
    assert_int_equal(geti(m, "cpu.throttling.throttled_time"), 7000);
    assert_int_equal(geti(m, "memory.usage.usage"), 4096);
    assert_int_equal(geti(m, "memory.usage.max"), 8192);
    assert_int_equal(geti(m, "memory.usage.failcnt"), 3);
    assert_int_equal(geti(m, "memory.usage.limit"), -1); /* "max": left out */
    assert_int_equal(geti(m, "memory.rss"), 100);
    assert_int_equal(geti(m, "memory.cache"), 200);
    assert_int_equal(geti(m, "memory.pg_fault"), 9);
    assert_int_equal(geti(m, "memory.inactive_file"), 50);
    assert_null(json_object_get(json_object_get(m, "memory"), "mapped_file")); /* zero */
    assert_null(json_object_get(json_object_get(m, "memory"), "swap"));        /* all zero */
    assert_int_equal(geti(m, "pids.current"), 2);
    assert_int_equal(geti(m, "pids.limit"), -1);
    json_decref(m);
    gcs_cgroup_paths_free(&p);
}

static void test_v1(void **state)
{
    (void)state;
    put("proc1/cgroup", "9:name=systemd:/x\n8:pids:/x\n4:memory:/x\n2:cpu,cpuacct:/x\n"
                        "0::/\n");
    put("v1/pids/x/pids.current", "3\n");
    put("v1/pids/x/pids.max", "100\n");
    put("v1/memory/x/memory.usage_in_bytes", "1000\n");
    put("v1/memory/x/memory.limit_in_bytes", "9223372036854771712\n");
    put("v1/memory/x/memory.max_usage_in_bytes", "2000\n");
    put("v1/memory/x/memory.failcnt", "0\n");
    put("v1/memory/x/memory.stat", "cache 10\nrss 20\npgpgin 5\ntotal_rss 20\n"
                                   "hierarchical_memsw_limit 77\n");
    put("v1/cpu,cpuacct/x/cpuacct.usage", "123456\n");
    put("v1/cpu,cpuacct/x/cpuacct.usage_percpu", "100 200 \n");
    put("v1/cpu,cpuacct/x/cpuacct.stat", "user 3\nsystem 1\n");
    put("v1/cpu,cpuacct/x/cpu.stat", "nr_periods 1\nnr_throttled 0\nthrottled_time 0\n");

    char proc[512], cg[512];
    snprintf(proc, sizeof(proc), "%s/proc1/cgroup", root);
    snprintf(cg, sizeof(cg), "%s/v1", root);
    struct gcs_cgroup_paths p;
    assert_int_equal(gcs_cgroup_paths_resolve(proc, cg, false, &p, NULL), 0);
    assert_null(p.unified);
    assert_non_null(p.cpu);
    assert_non_null(strstr(p.cpuacct, "cpu,cpuacct/x"));
    json_t *m = gcs_stats_read(&p);
    assert_int_equal(geti(m, "pids.current"), 3);
    assert_int_equal(geti(m, "pids.limit"), 100);
    assert_int_equal(geti(m, "memory.usage.usage"), 1000);
    assert_int_equal(geti(m, "memory.usage.limit"), 9223372036854771712LL);
    assert_int_equal(geti(m, "memory.usage.max"), 2000);
    assert_int_equal(geti(m, "memory.cache"), 10);
    assert_int_equal(geti(m, "memory.rss"), 20);
    assert_int_equal(geti(m, "memory.pg_pg_in"), 5);
    assert_int_equal(geti(m, "memory.total_rss"), 20);
    assert_int_equal(geti(m, "memory.hierarchical_swap_limit"), 77);
    assert_int_equal(geti(m, "cpu.usage.total"), 123456);
    long hz = sysconf(_SC_CLK_TCK);
    assert_int_equal(geti(m, "cpu.usage.user"), 3 * (1000000000L / hz));
    assert_int_equal(geti(m, "cpu.usage.kernel"), 1 * (1000000000L / hz));
    json_t *percpu =
        json_object_get(json_object_get(json_object_get(m, "cpu"), "usage"), "per_cpu");
    assert_int_equal(json_array_size(percpu), 2);
    assert_int_equal(json_integer_value(json_array_get(percpu, 1)), 200);
    assert_int_equal(geti(m, "cpu.throttling.periods"), 1);
    json_decref(m);
    gcs_cgroup_paths_free(&p);
}

static void test_missing(void **state)
{
    (void)state;
    shim_error_t *err = NULL;
    struct gcs_cgroup_paths p;
    assert_int_equal(
        gcs_cgroup_paths_resolve("/nonexistent/cgroup", "/sys/fs/cgroup", true, &p, &err), -1);
    assert_int_equal(err->code, RPC_NOT_FOUND);
    error_free(err);
    err = NULL;
    put("proc2/cgroup", "garbage\n");
    char proc[512];
    snprintf(proc, sizeof(proc), "%s/proc2/cgroup", root);
    assert_int_equal(gcs_cgroup_paths_resolve(proc, "/sys/fs/cgroup", true, &p, &err), -1);
    error_free(err);
    /* Paths whose files are gone give an empty object, not an error. */
    struct gcs_cgroup_paths gone = {.unified = "/nonexistent/cg"};
    json_t *m = gcs_stats_read(&gone);
    assert_non_null(m);
    assert_int_equal(json_object_size(m), 0);
    json_decref(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v2),
        cmocka_unit_test(test_v1),
        cmocka_unit_test(test_missing),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
