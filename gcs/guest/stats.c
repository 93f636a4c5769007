#include "gcs/guest/stats.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- small file readers ------------------------------------------------------------ */

static FILE *open_in(const char *dir, const char *name)
{
    if (!dir)
        return NULL;
    char path[4096];
    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
        return NULL;
    return fopen(path, "re");
}

/* One number in a file; "max" and missing files give false. */
static bool read_u64(const char *dir, const char *name, uint64_t *out)
{
    FILE *f = open_in(dir, name);
    if (!f)
        return false;
    char buf[64] = "";
    bool ok = fgets(buf, sizeof(buf), f) != NULL;
    fclose(f);
    if (!ok || strncmp(buf, "max", 3) == 0)
        return false;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(buf, &end, 10);
    if (errno || end == buf)
        return false;
    *out = (uint64_t)v;
    return true;
}

/* Calls fn for each "key value" line. */
static void read_kv(const char *dir, const char *name,
                    void (*fn)(void *ctx, const char *key, uint64_t value), void *ctx)
{
    FILE *f = open_in(dir, name);
    if (!f)
        return;
    char line[256];
    while (fgets(line, sizeof(line), f)) {
        char key[128];
        unsigned long long v;
        if (sscanf(line, "%127s %llu", key, &v) == 2)
            fn(ctx, key, (uint64_t)v);
    }
    fclose(f);
}

/* JSON integers are int64 in jansson; clamp rather than wrap. */
static void set_nz(json_t *obj, const char *key, uint64_t v)
{
    if (v == 0)
        return;
    json_object_set_new(obj, key, json_integer(v > INT64_MAX ? INT64_MAX : (json_int_t)v));
}

static void set_file(json_t *obj, const char *key, const char *dir, const char *name)
{
    uint64_t v = 0;
    if (read_u64(dir, name, &v))
        set_nz(obj, key, v);
}

/* Adds a non-empty section to parent (steals sec). */
static void add_section(json_t *parent, const char *key, json_t *sec)
{
    if (sec && json_object_size(sec) > 0)
        json_object_set_new(parent, key, sec);
    else
        json_decref(sec);
}

/* ---- key maps ------------------------------------------------------------------------ */

struct key_map {
    const char *file_key;
    const char *json_key;
};

struct kv_ctx {
    json_t *obj;
    const struct key_map *map;
    size_t n;
    uint64_t scale;
};

static void kv_mapped(void *ctx, const char *key, uint64_t value)
{
    struct kv_ctx *c = ctx;
    for (size_t i = 0; i < c->n; i++) {
        if (strcmp(c->map[i].file_key, key) == 0)
            set_nz(c->obj, c->map[i].json_key, value * c->scale);
    }
}

#define NKEYS(m) (sizeof(m) / sizeof((m)[0]))

static const struct key_map v1_memory_keys[] = {
    {"cache", "cache"},
    {"rss", "rss"},
    {"rss_huge", "rss_huge"},
    {"mapped_file", "mapped_file"},
    {"dirty", "dirty"},
    {"writeback", "writeback"},
    {"pgpgin", "pg_pg_in"},
    {"pgpgout", "pg_pg_out"},
    {"pgfault", "pg_fault"},
    {"pgmajfault", "pg_maj_fault"},
    {"inactive_anon", "inactive_anon"},
    {"active_anon", "active_anon"},
    {"inactive_file", "inactive_file"},
    {"active_file", "active_file"},
    {"unevictable", "unevictable"},
    {"hierarchical_memory_limit", "hierarchical_memory_limit"},
    {"hierarchical_memsw_limit", "hierarchical_swap_limit"},
    {"total_cache", "total_cache"},
    {"total_rss", "total_rss"},
    {"total_rss_huge", "total_rss_huge"},
    {"total_mapped_file", "total_mapped_file"},
    {"total_dirty", "total_dirty"},
    {"total_writeback", "total_writeback"},
    {"total_pgpgin", "total_pg_pg_in"},
    {"total_pgpgout", "total_pg_pg_out"},
    {"total_pgfault", "total_pg_fault"},
    {"total_pgmajfault", "total_pg_maj_fault"},
    {"total_inactive_anon", "total_inactive_anon"},
    {"total_active_anon", "total_active_anon"},
    {"total_inactive_file", "total_inactive_file"},
    {"total_active_file", "total_active_file"},
    {"total_unevictable", "total_unevictable"},
};

static const struct key_map v2_memory_keys[] = {
    {"file", "cache"},
    {"anon", "rss"},
    {"anon_thp", "rss_huge"},
    {"file_mapped", "mapped_file"},
    {"file_dirty", "dirty"},
    {"file_writeback", "writeback"},
    {"pgfault", "pg_fault"},
    {"pgmajfault", "pg_maj_fault"},
    {"inactive_anon", "inactive_anon"},
    {"active_anon", "active_anon"},
    {"inactive_file", "inactive_file"},
    {"active_file", "active_file"},
    {"unevictable", "unevictable"},
};

/* ---- v1 -------------------------------------------------------------------------------- */

static json_t *v1_usage(const char *dir, const char *prefix)
{
    char name[128];
    json_t *u = json_object();
    static const struct key_map files[] = {{"limit_in_bytes", "limit"},
                                           {"usage_in_bytes", "usage"},
                                           {"max_usage_in_bytes", "max"},
                                           {"failcnt", "failcnt"}};
    for (size_t i = 0; i < NKEYS(files); i++) {
        snprintf(name, sizeof(name), "%s%s", prefix, files[i].file_key);
        set_file(u, files[i].json_key, dir, name);
    }
    return u;
}

static json_t *v1_memory(const char *dir)
{
    json_t *m = json_object();
    struct kv_ctx c = {m, v1_memory_keys, NKEYS(v1_memory_keys), 1};
    read_kv(dir, "memory.stat", kv_mapped, &c);
    add_section(m, "usage", v1_usage(dir, "memory."));
    add_section(m, "swap", v1_usage(dir, "memory.memsw."));
    add_section(m, "kernel", v1_usage(dir, "memory.kmem."));
    add_section(m, "kernel_tcp", v1_usage(dir, "memory.kmem.tcp."));
    return m;
}

static json_t *v1_percpu(const char *dir)
{
    FILE *f = open_in(dir, "cpuacct.usage_percpu");
    if (!f)
        return NULL;
    json_t *arr = json_array();
    unsigned long long v;
    while (fscanf(f, "%llu", &v) == 1)
        json_array_append_new(arr, json_integer(v > INT64_MAX ? INT64_MAX : (json_int_t)v));
    fclose(f);
    if (json_array_size(arr) == 0) {
        json_decref(arr);
        return NULL;
    }
    return arr;
}

static json_t *v1_cpu(const struct gcs_cgroup_paths *p)
{
    json_t *cpu = json_object(), *usage = json_object(), *thr = json_object();
    set_file(usage, "total", p->cpuacct, "cpuacct.usage");
    long hz = sysconf(_SC_CLK_TCK);
    static const struct key_map ticks[] = {{"user", "user"}, {"system", "kernel"}};
    struct kv_ctx c = {usage, ticks, 2, hz > 0 ? (uint64_t)(1000000000L / hz) : 10000000u};
    read_kv(p->cpuacct, "cpuacct.stat", kv_mapped, &c);
    json_t *percpu = v1_percpu(p->cpuacct);
    if (percpu)
        json_object_set_new(usage, "per_cpu", percpu);
    static const struct key_map thr_keys[] = {{"nr_periods", "periods"},
                                              {"nr_throttled", "throttled_periods"},
                                              {"throttled_time", "throttled_time"}};
    struct kv_ctx t = {thr, thr_keys, NKEYS(thr_keys), 1};
    read_kv(p->cpu, "cpu.stat", kv_mapped, &t);
    add_section(cpu, "usage", usage);
    add_section(cpu, "throttling", thr);
    return cpu;
}

static json_t *pids_section(const char *dir)
{
    json_t *pids = json_object();
    set_file(pids, "current", dir, "pids.current");
    set_file(pids, "limit", dir, "pids.max");
    return pids;
}

/* ---- v2 -------------------------------------------------------------------------------- */

static json_t *v2_cpu(const char *dir)
{
    json_t *cpu = json_object(), *usage = json_object(), *thr = json_object();
    static const struct key_map usage_keys[] = {
        {"usage_usec", "total"}, {"user_usec", "user"}, {"system_usec", "kernel"}};
    struct kv_ctx u = {usage, usage_keys, NKEYS(usage_keys), 1000};
    read_kv(dir, "cpu.stat", kv_mapped, &u);
    static const struct key_map count_keys[] = {{"nr_periods", "periods"},
                                                {"nr_throttled", "throttled_periods"}};
    struct kv_ctx t = {thr, count_keys, NKEYS(count_keys), 1};
    read_kv(dir, "cpu.stat", kv_mapped, &t);
    static const struct key_map time_keys[] = {{"throttled_usec", "throttled_time"}};
    struct kv_ctx tt = {thr, time_keys, 1, 1000};
    read_kv(dir, "cpu.stat", kv_mapped, &tt);
    add_section(cpu, "usage", usage);
    add_section(cpu, "throttling", thr);
    return cpu;
}

static void v2_events_max(void *ctx, const char *key, uint64_t value)
{
    if (strcmp(key, "max") == 0)
        set_nz(ctx, "failcnt", value);
}

static json_t *v2_memory(const char *dir)
{
    json_t *m = json_object(), *usage = json_object(), *swap = json_object();
    struct kv_ctx c = {m, v2_memory_keys, NKEYS(v2_memory_keys), 1};
    read_kv(dir, "memory.stat", kv_mapped, &c);
    set_file(usage, "usage", dir, "memory.current");
    set_file(usage, "limit", dir, "memory.max");
    set_file(usage, "max", dir, "memory.peak");
    read_kv(dir, "memory.events", v2_events_max, usage);
    set_file(swap, "usage", dir, "memory.swap.current");
    set_file(swap, "limit", dir, "memory.swap.max");
    add_section(m, "usage", usage);
    add_section(m, "swap", swap);
    return m;
}

json_t *gcs_stats_read(const struct gcs_cgroup_paths *p)
{
    json_t *metrics = json_object();
    if (!metrics)
        return NULL;
    if (p->unified) {
        add_section(metrics, "pids", pids_section(p->unified));
        add_section(metrics, "cpu", v2_cpu(p->unified));
        add_section(metrics, "memory", v2_memory(p->unified));
    } else {
        add_section(metrics, "pids", pids_section(p->pids));
        add_section(metrics, "cpu", v1_cpu(p));
        add_section(metrics, "memory", v1_memory(p->memory));
    }
    return metrics;
}

/* ---- resolving paths ------------------------------------------------------------------- */

/* a/b/c without doubled slashes; empty components are skipped. */
static char *join3(const char *a, const char *b, const char *c)
{
    size_t len = strlen(a) + strlen(b) + strlen(c) + 3;
    char *s = malloc(len);
    if (!s)
        return NULL;
    strcpy(s, a);
    const char *parts[] = {b, c};
    for (size_t i = 0; i < 2; i++) {
        const char *part = parts[i];
        while (*part == '/')
            part++;
        if (!*part)
            continue;
        size_t n = strlen(s);
        if (n == 0 || s[n - 1] != '/')
            strcat(s, "/");
        strcat(s, part);
    }
    return s;
}

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* v1: "N:ctrl1,ctrl2:/path". The hierarchy is mounted at root/<ctrl1,ctrl2>
 * (with per-controller symlinks) or at root/<ctrl>. */
static void v1_assign(struct gcs_cgroup_paths *out, const char *root, char *ctrls, const char *path)
{
    static const char *const names[] = {"cpu", "cpuacct", "memory", "pids"};
    char **slots[] = {&out->cpu, &out->cpuacct, &out->memory, &out->pids};
    char *list = strdup(ctrls);
    if (!list)
        return;
    char *save = NULL;
    for (char *c = strtok_r(ctrls, ",", &save); c; c = strtok_r(NULL, ",", &save)) {
        for (size_t i = 0; i < 4; i++) {
            if (strcmp(c, names[i]) != 0 || *slots[i])
                continue;
            char *dir = join3(root, list, path);
            if (dir && !is_dir(dir)) {
                free(dir);
                dir = join3(root, c, path);
            }
            *slots[i] = dir;
        }
    }
    free(list);
}

int gcs_cgroup_paths_resolve(const char *proc_cgroup_file, const char *cgroup_root, bool unified,
                             struct gcs_cgroup_paths *out, shim_error_t **err)
{
    memset(out, 0, sizeof(*out));
    FILE *f = fopen(proc_cgroup_file, "re");
    if (!f)
        return error_set_errno(err, RPC_NOT_FOUND, errno, "open %s", proc_cgroup_file);
    char line[4096];
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        char *c1 = strchr(line, ':');
        char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            continue;
        *c1 = '\0';
        *c2 = '\0';
        const char *path = c2 + 1;
        char *ctrls = c1 + 1;
        if (unified && strcmp(line, "0") == 0 && ctrls[0] == '\0' && !out->unified)
            out->unified = join3(cgroup_root, "", path);
        else if (!unified && ctrls[0] != '\0')
            v1_assign(out, cgroup_root, ctrls, path);
    }
    fclose(f);
    if (!out->unified && !out->cpu && !out->cpuacct && !out->memory && !out->pids)
        return error_set(err, RPC_NOT_FOUND, "%s names no usable cgroup", proc_cgroup_file);
    return 0;
}

void gcs_cgroup_paths_free(struct gcs_cgroup_paths *p)
{
    free(p->unified);
    free(p->cpu);
    free(p->cpuacct);
    free(p->memory);
    free(p->pids);
    memset(p, 0, sizeof(*p));
}
