#include "hcs/doc_container.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/strbuf.h"
#include "hcs/schema.h"
#include "oci/annotations.h"
#include "oci/lcow_spec.h"

struct argon_cpu {
    int32_t count, maximum, weight;
};

static json_t *win_get(const json_t *spec, const char *a, const char *b, const char *c)
{
    json_t *v = json_object_get(json_object_get(spec, "windows"), a);
    if (b != NULL)
        v = json_object_get(v, b);
    if (c != NULL)
        v = json_object_get(v, c);
    return v;
}

/* An annotation value > 0 wins; otherwise the spec resource value. */
static int pick_i32(const json_t *spec, const char *key, const json_t *fallback, int32_t *out,
                    shim_error_t **err)
{
    if (oci_annotation_int32(spec, key, 0, out, err) < 0)
        return -1;
    if (*out < 0)
        return error_set(err, RPC_INVALID_ARGUMENT, "annotation %s: must not be negative", key);
    if (*out == 0 && json_is_integer(fallback)) {
        json_int_t v = json_integer_value(fallback);
        if (v < 0 || v > INT32_MAX)
            return error_set(err, RPC_INVALID_ARGUMENT, "spec value for %s out of range", key);
        *out = (int32_t)v;
    }
    return 0;
}

static int processor_doc(const json_t *spec, json_t *container, shim_error_t **err)
{
    struct argon_cpu c = {0};
    if (pick_i32(spec, ANN_CONTAINER_CPU_COUNT, win_get(spec, "resources", "cpu", "count"),
                 &c.count, err) < 0 ||
        pick_i32(spec, ANN_CONTAINER_CPU_LIMIT, win_get(spec, "resources", "cpu", "maximum"),
                 &c.maximum, err) < 0 ||
        pick_i32(spec, ANN_CONTAINER_CPU_WEIGHT, win_get(spec, "resources", "cpu", "shares"),
                 &c.weight, err) < 0)
        return -1;
    if ((c.count > 0) + (c.maximum > 0) + (c.weight > 0) > 1)
        return error_set(err, RPC_INVALID_ARGUMENT,
                         "invalid spec - Windows Process Container CPU Count: %d, Limit: %d, "
                         "and Weight: %d are mutually exclusive",
                         (int)c.count, (int)c.maximum, (int)c.weight);
    if (c.count == 0 && c.maximum == 0 && c.weight == 0)
        return 0;
    json_t *p = json_object();
    int rc = p == NULL ? -1 : 0;
    if (rc == 0) {
        rc |= json_put_i64(p, "Count", c.count);
        rc |= json_put_i64(p, "Maximum", c.maximum);
        rc |= json_put_i64(p, "Weight", c.weight);
    }
    rc |= json_put_new(container, "Processor", p);
    return rc != 0 ? error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory") : 0;
}

static int memory_doc(const json_t *spec, json_t *container, shim_error_t **err)
{
    uint64_t mb = 0;
    if (oci_annotation_uint64(spec, ANN_CONTAINER_MEMORY_MB, 0, &mb, err) < 0)
        return -1;
    json_t *limit = win_get(spec, "resources", "memory", "limit");
    if (mb == 0 && json_is_integer(limit) && json_integer_value(limit) > 0)
        mb = (uint64_t)json_integer_value(limit) / (1024 * 1024);
    if (mb == 0)
        return 0;
    if (json_put_new(container, "Memory", json_pack("{s:I}", "SizeInMB", (json_int_t)mb)) < 0)
        return error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    return 0;
}

/* \\?\Volume{<36-char guid>}\ */
static bool valid_volume_path(const char *p)
{
    static const char prefix[] = "\\\\?\\Volume{";
    size_t n = strlen(p);
    size_t plen = sizeof(prefix) - 1;
    if (strncasecmp(p, prefix, plen) != 0 || (n != plen + 38 && n != plen + 37))
        return false;
    for (size_t i = 0; i < 36; i++) {
        char ch = p[plen + i];
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? ch != '-' : !isxdigit((unsigned char)ch))
            return false;
    }
    return p[plen + 36] == '}' && (n == plen + 37 || p[plen + 37] == '\\');
}

static json_t *storage_doc(const json_t *spec, const struct hcs_argon_params *p, shim_error_t **err)
{
    if (p->volume_path == NULL || !valid_volume_path(p->volume_path)) {
        error_set(err, RPC_INVALID_ARGUMENT, "invalid container volume path '%s'",
                  p->volume_path ? p->volume_path : "");
        return NULL;
    }
    int32_t iops = 0, bps = 0;
    if (pick_i32(spec, ANN_CONTAINER_QOS_IOPS, win_get(spec, "resources", "storage", "iops"), &iops,
                 err) < 0 ||
        pick_i32(spec, ANN_CONTAINER_QOS_BANDWIDTH, win_get(spec, "resources", "storage", "bps"),
                 &bps, err) < 0)
        return NULL;
    json_t *layers = json_array();
    json_t *st = json_object();
    int rc = layers == NULL || st == NULL ? -1 : 0;
    for (size_t i = 0; rc == 0 && i < p->n_layers; i++)
        rc |= json_array_append_new(
            layers, json_pack("{s:s,s:s}", "Id", p->layers[i].id, "Path", p->layers[i].path));
    char *path = NULL;
    size_t n = strlen(p->volume_path);
    if (asprintf(&path, "%s%s", p->volume_path, p->volume_path[n - 1] == '\\' ? "" : "\\") < 0)
        path = NULL;
    rc |= json_put_new(st, "Layers", layers);
    rc |= json_put_new(st, "Path", path ? json_string(path) : NULL);
    free(path);
    if (rc == 0 && (iops > 0 || bps > 0)) {
        json_t *qos = json_object();
        rc |= json_put_i64(qos, "IopsMaximum", iops);
        rc |= json_put_i64(qos, "BandwidthMaximum", bps);
        rc |= json_put_new(st, "QoS", qos);
    }
    if (rc != 0) {
        json_decref(st);
        error_set(err, RPC_INVALID_ARGUMENT, "invalid layer list or out of memory");
        return NULL;
    }
    return st;
}

static bool is_pipe(const char *s)
{
    return strncmp(s, "\\\\.\\pipe\\", 9) == 0;
}

static int mounts_doc(const json_t *spec, json_t *container, shim_error_t **err)
{
    json_t *dirs = json_array(), *pipes = json_array();
    int rc = dirs == NULL || pipes == NULL ? -1 : 0;
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(spec, "mounts"), i, m)
    {
        const char *type = json_string_value(json_object_get(m, "type"));
        const char *src = json_string_value(json_object_get(m, "source"));
        const char *dst = json_string_value(json_object_get(m, "destination"));
        if (type != NULL && type[0] != '\0' && strcmp(type, "bind") != 0) {
            rc = error_set(err, RPC_INVALID_ARGUMENT,
                           "mount %zu: type '%s' is not supported for process isolation", i, type);
            break;
        }
        if (src == NULL || src[0] == '\0' || dst == NULL || dst[0] == '\0') {
            rc =
                error_set(err, RPC_INVALID_ARGUMENT, "mount %zu needs a source and destination", i);
            break;
        }
        if (is_pipe(src)) {
            const char *name = is_pipe(dst) ? dst + 9 : dst;
            rc |= json_array_append_new(
                pipes, json_pack("{s:s,s:s}", "ContainerPipeName", name, "HostPath", src));
        } else {
            json_t *d = json_pack("{s:s,s:s}", "HostPath", src, "ContainerPath", dst);
            if (d != NULL)
                rc |= json_put_true(d, "ReadOnly", oci_mount_read_only(m));
            rc |= json_array_append_new(dirs, d);
        }
    }
    if (rc == 0) {
        rc |= json_put_nonempty(container, "MappedDirectories", dirs);
        rc |= json_put_nonempty(container, "MappedPipes", pipes);
        return rc != 0 ? error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory") : 0;
    }
    json_decref(dirs);
    json_decref(pipes);
    if (err != NULL && *err == NULL)
        error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
    return -1;
}

/* Comma-joins the string members of an array (Go strings.Join). */
static char *join_strings(const json_t *arr)
{
    struct strbuf sb = STRBUF_INIT;
    bool first = true;
    size_t i;
    json_t *s;
    json_array_foreach(arr, i, s)
    {
        if (!json_is_string(s))
            continue;
        strbuf_addf(&sb, "%s%s", first ? "" : ",", json_string_value(s));
        first = false;
    }
    return strbuf_detach(&sb);
}

static json_t *networking_doc(const json_t *spec, const struct hcs_argon_params *p)
{
    json_t *net = win_get(spec, "network", NULL, NULL);
    if (!json_is_object(net))
        return json_object(); /* dropped by the caller */
    json_t *out = json_object();
    if (out == NULL)
        return NULL;
    const char *ns = p->network_namespace
                         ? p->network_namespace
                         : json_string_value(json_object_get(net, "networkNamespace"));
    int rc = json_put_true(out, "AllowUnqualifiedDnsQuery",
                           json_is_true(json_object_get(net, "allowUnqualifiedDNSQuery")));
    json_t *search = json_object_get(net, "DNSSearchList");
    if (json_is_array(search) && json_array_size(search) > 0) {
        char *joined = join_strings(search);
        rc |= joined == NULL ? -1 : json_put_str(out, "DnsSearchList", joined);
        free(joined);
    }
    rc |= json_put_str(out, "Namespace", ns);
    rc |= json_put_str(out, "NetworkSharedContainerName",
                       json_string_value(json_object_get(net, "networkSharedContainerName")));
    if (rc != 0) {
        json_decref(out);
        return NULL;
    }
    return out;
}

static json_t *reg_value(const char *hive, const char *key, const char *name, const char *str,
                         int dword)
{
    if (str != NULL)
        return json_pack("{s:{s:s,s:s},s:s,s:s,s:s}", "Key", "Hive", hive, "Name", key, "Name",
                         name, "Type", "String", "StringValue", str);
    return json_pack("{s:{s:s,s:s},s:s,s:s,s:i}", "Key", "Hive", hive, "Name", key, "Name", name,
                     "Type", "DWord", "DWordValue", dword);
}

static int dump_type(const json_t *spec, int *out, shim_error_t **err)
{
    const char *t = oci_annotation(spec, ANN_WCOW_DUMP_TYPE);
    if (t == NULL || strcasecmp(t, "full") == 0)
        *out = 2;
    else if (strcasecmp(t, "mini") == 0)
        *out = 1;
    else
        return error_set(err, RPC_INVALID_ARGUMENT,
                         "annotation %s: invalid value '%s' (want mini or full)",
                         ANN_WCOW_DUMP_TYPE, t);
    return 0;
}

static json_t *registry_doc(const json_t *spec, shim_error_t **err)
{
    static const char wer[] = "Microsoft\\Windows\\Windows Error Reporting\\LocalDumps";
    json_t *values = json_array();
    if (values == NULL)
        return NULL;
    int rc = json_array_append_new(values, reg_value("System", "ControlSet001\\Control",
                                                     "WaitToKillServiceTimeout", "2147483647", 0));
    const char *dump = oci_annotation(spec, ANN_PROCESS_DUMP_LOCATION);
    if (dump != NULL && dump[0] != '\0') {
        int type = 0;
        if (dump_type(spec, &type, err) < 0) {
            json_decref(values);
            return NULL;
        }
        rc |= json_array_append_new(values, reg_value("Software", wer, "DumpFolder", dump, 0));
        rc |= json_array_append_new(values, reg_value("Software", wer, "DumpType", NULL, type));
    }
    if (rc != 0) {
        json_decref(values);
        error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
        return NULL;
    }
    return json_pack("{s:o}", "AddValues", values);
}

static int check_spec(const json_t *spec, const struct hcs_argon_params *p, shim_error_t **err)
{
    if (!json_is_object(spec) || json_object_get(spec, "linux") != NULL ||
        !json_is_object(json_object_get(spec, "windows")))
        return error_set(err, RPC_INVALID_ARGUMENT, "an Argon container needs a WCOW spec");
    if (json_is_true(json_object_get(json_object_get(spec, "root"), "readonly")))
        return error_set(err, RPC_INVALID_ARGUMENT,
                         "invalid spec - Windows Container does not support Root.Readonly");
    if (p->n_layers == 0)
        return error_set(err, RPC_INVALID_ARGUMENT, "an Argon container needs at least 1 layer");
    for (size_t i = 0; i < p->n_layers; i++) {
        if (p->layers[i].id == NULL || p->layers[i].path == NULL)
            return error_set(err, RPC_INVALID_ARGUMENT, "layer %zu needs an id and a path", i);
    }
    return oci_annotations_validate(spec, err);
}

json_t *hcs_argon_document(const json_t *spec, const struct hcs_argon_params *p, shim_error_t **err)
{
    if (check_spec(spec, p, err) < 0)
        return NULL;
    json_t *c = json_object();
    if (c == NULL) {
        error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
        return NULL;
    }
    const char *host = json_string_value(json_object_get(spec, "hostname"));
    int rc = json_put_new(c, "GuestOs",
                          host && host[0] ? json_pack("{s:s}", "HostName", host) : json_object());
    json_t *storage = storage_doc(spec, p, err);
    if (storage == NULL)
        goto fail;
    rc |= json_put_new(c, "Storage", storage);
    if (mounts_doc(spec, c, err) < 0 || memory_doc(spec, c, err) < 0 ||
        processor_doc(spec, c, err) < 0)
        goto fail;
    json_t *net = networking_doc(spec, p);
    if (net != NULL && json_is_object(win_get(spec, "network", NULL, NULL)))
        rc |= json_put_new(c, "Networking", net);
    else if (net != NULL)
        json_decref(net);
    else
        rc = -1;
    json_t *reg = registry_doc(spec, err);
    if (reg == NULL)
        goto fail;
    rc |= json_put_new(c, "RegistryChanges", reg);
    json_t *doc = json_object();
    if (rc != 0 || doc == NULL) {
        json_decref(doc);
        error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
        goto fail;
    }
    rc |= json_put_str(doc, "Owner", p->owner);
    rc |= json_put_new(doc, "SchemaVersion", hcs_schema_version());
    rc |= json_put_new(doc, "Container", c);
    rc |= json_put_true(doc, "ShouldTerminateOnLastHandleClosed", true);
    if (rc != 0) {
        json_decref(doc);
        error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
        return NULL;
    }
    return doc;
fail:
    json_decref(c);
    return NULL;
}
