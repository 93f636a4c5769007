#include "hcs/schema.h"

#include "common/compiler.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

const char *const hcs_scsi_controller_guids[HCS_SCSI_CONTROLLER_MAX] = {
    "df6d0690-79e5-55b6-a5ec-c1e2f77f580a",
    "0110f83b-de10-5172-a266-78bca56bf50a",
    "b5d2d8d4-3a75-51bf-945b-3444dc6b8579",
    "305891a9-b251-5dfe-91a2-c25d9212275b",
};

int json_put_str(json_t *obj, const char *key, const char *s)
{
    if (s == NULL || s[0] == '\0')
        return 0;
    return json_object_set_new(obj, key, json_string(s));
}

int json_put_u64(json_t *obj, const char *key, uint64_t v)
{
    if (v == 0)
        return 0;
    if (v > (uint64_t)INT64_MAX)
        return -1;
    return json_object_set_new(obj, key, json_integer((json_int_t)v));
}

int json_put_i64(json_t *obj, const char *key, int64_t v)
{
    if (v == 0)
        return 0;
    return json_object_set_new(obj, key, json_integer((json_int_t)v));
}

int json_put_true(json_t *obj, const char *key, bool b)
{
    if (!b)
        return 0;
    return json_object_set_new(obj, key, json_true());
}

int json_put_new(json_t *obj, const char *key, json_t *child)
{
    if (child == NULL)
        return -1;
    return json_object_set_new(obj, key, child);
}

int json_put_nonempty(json_t *obj, const char *key, json_t *child)
{
    if (child == NULL)
        return -1;
    if ((json_is_object(child) && json_object_size(child) == 0) ||
        (json_is_array(child) && json_array_size(child) == 0)) {
        json_decref(child);
        return 0;
    }
    return json_object_set_new(obj, key, child);
}

const char *json_get_str(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

json_t *hcs_schema_version(void)
{
    return json_pack("{s:i,s:i}", "Major", HCS_SCHEMA_MAJOR, "Minor", HCS_SCHEMA_MINOR);
}

static char *format_path(const char *fmt, ...) SHIM_PRINTF(1, 2);

static char *format_path(const char *fmt, ...)
{
    char *out = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&out, fmt, ap);
    va_end(ap);
    return n < 0 ? NULL : out;
}

char *hcs_path_scsi(unsigned controller, unsigned lun)
{
    if (controller >= HCS_SCSI_CONTROLLER_MAX)
        return NULL;
    return format_path("VirtualMachine/Devices/Scsi/%s/Attachments/%u",
                       hcs_scsi_controller_guids[controller], lun);
}

char *hcs_path_vpmem_device(unsigned device)
{
    return format_path("VirtualMachine/Devices/VirtualPMem/Devices/%u", device);
}

char *hcs_path_vpmem_mapping(unsigned device, uint64_t offset)
{
    return format_path("VirtualMachine/Devices/VirtualPMem/Devices/%u/Mappings/%llu", device,
                       (unsigned long long)offset);
}

char *hcs_path_network_adapter(const char *nic_id)
{
    return format_path("VirtualMachine/Devices/NetworkAdapters/%s", nic_id);
}
