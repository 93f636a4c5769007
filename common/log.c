#include "common/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#ifdef _WIN32
#include <uv.h>
#endif

#define LOG_RECORD_MAX 8192
#define LOG_FIELDS_MAX 32

static struct log_config log_config = {.fd = 2, .level = LOG_LEVEL_INFO, .format = LOG_FORMAT_TEXT};

static const char *const level_names[] = {"panic", "fatal", "error", "warning",
                                          "info",  "debug", "trace"};

void log_configure(int fd, enum log_level level, enum log_format format)
{
    log_config.fd = fd;
    log_config.level = level;
    log_config.format = format;
}

int log_level_parse(const char *name)
{
    if (name == NULL)
        return -1;
    if (strcasecmp(name, "warn") == 0)
        return LOG_LEVEL_WARN;
    for (int i = 0; i <= LOG_LEVEL_TRACE; i++) {
        if (strcasecmp(name, level_names[i]) == 0)
            return i;
    }
    return -1;
}

const char *log_level_name(enum log_level level)
{
    if ((int)level < 0 || level > LOG_LEVEL_TRACE)
        return "unknown";
    return level_names[level];
}

bool log_enabled(enum log_level level)
{
    return level <= log_config.level;
}

/* logrus quotes a text value unless every byte is in [A-Za-z0-9-._/@^+]. */
/* logrus (QuoteEmptyFields off) writes an empty value bare: `key=`. */
static bool text_needs_quoting(const char *s)
{
    for (; *s; s++) {
        char c = *s;
        bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                     strchr("-._/@^+", c) != NULL;
        if (!plain)
            return true;
    }
    return false;
}

struct out_buf {
    char *p;
    int size;
    int len;
};

static void put_char(struct out_buf *o, char c)
{
    if (o->len < o->size - 1)
        o->p[o->len++] = c;
}

static void put_str(struct out_buf *o, const char *s)
{
    while (*s)
        put_char(o, *s++);
}

static void put_hex_escape(struct out_buf *o, const char *prefix, unsigned c)
{
    char hex[8];
    snprintf(hex, sizeof(hex), "%s%0*x", prefix, prefix[1] == 'u' ? 4 : 2, c);
    put_str(o, hex);
}

/* Escapes shared by Go's %q (text format) and JSON; returns false when the
 * byte needs the format's own control-character escape. */
static bool put_common_escape(struct out_buf *o, unsigned char c)
{
    switch (c) {
    case '"': put_str(o, "\\\""); return true;
    case '\\': put_str(o, "\\\\"); return true;
    case '\n': put_str(o, "\\n"); return true;
    case '\r': put_str(o, "\\r"); return true;
    case '\t': put_str(o, "\\t"); return true;
    default:
        if (c >= 0x20 && c != 0x7f) {
            put_char(o, (char)c);
            return true;
        }
        return false;
    }
}

/* Go's strconv.Quote, as logrus uses it for text values. */
static void put_go_quoted(struct out_buf *o, const char *s)
{
    put_char(o, '"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (put_common_escape(o, c))
            continue;
        switch (c) {
        case '\a': put_str(o, "\\a"); break;
        case '\b': put_str(o, "\\b"); break;
        case '\f': put_str(o, "\\f"); break;
        case '\v': put_str(o, "\\v"); break;
        default: put_hex_escape(o, "\\x", c);
        }
    }
    put_char(o, '"');
}

/* A JSON string. */
static void put_quoted(struct out_buf *o, const char *s)
{
    put_char(o, '"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (!put_common_escape(o, c))
            put_hex_escape(o, "\\u", c);
    }
    put_char(o, '"');
}

static void put_text_value(struct out_buf *o, const char *v)
{
    if (text_needs_quoting(v))
        put_go_quoted(o, v);
    else
        put_str(o, v);
}

static void format_time(char *buf, size_t size, double unix_time)
{
    time_t secs = (time_t)unix_time;
    long nanos = (long)((unix_time - (double)secs) * 1e9);
    if (nanos < 0)
        nanos = 0;
    struct tm tm;
    gmtime_r(&secs, &tm);
    char base[32];
    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, size, "%s.%09ldZ", base, nanos);
}

/* logrus sorts field keys (stable for repeated keys); order[] gets pair indices. */
static int sorted_pairs(const char *const *fields, int nfields, int *order)
{
    int n = nfields / 2;
    for (int i = 0; i < n; i++) {
        int j = i;
        while (j > 0 && strcmp(fields[2 * order[j - 1]], fields[2 * i]) > 0) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }
    return n;
}

static void format_text(struct out_buf *o, const char *ts, enum log_level level, const char *msg,
                        const char *const *fields, int nfields)
{
    int order[LOG_FIELDS_MAX / 2];
    int n = sorted_pairs(fields, nfields, order);
    put_str(o, "time=");
    put_quoted(o, ts);
    put_str(o, " level=");
    put_str(o, log_level_name(level));
    put_str(o, " msg=");
    put_text_value(o, msg);
    for (int k = 0; k < n; k++) {
        const char *key = fields[2 * order[k]];
        const char *value = fields[2 * order[k] + 1];
        put_char(o, ' ');
        put_str(o, key);
        put_char(o, '=');
        put_text_value(o, value ? value : "<nil>");
    }
    put_char(o, '\n');
}

/* logrus' JSON formatter marshals a map: every key, fixed ones included, sorted. */
static void format_json(struct out_buf *o, const char *ts, enum log_level level, const char *msg,
                        const char *const *fields, int nfields)
{
    const char *all[LOG_FIELDS_MAX + 6];
    int order[LOG_FIELDS_MAX / 2 + 3];
    int len = 0;
    all[len++] = "level";
    all[len++] = log_level_name(level);
    all[len++] = "msg";
    all[len++] = msg;
    all[len++] = "time";
    all[len++] = ts;
    for (int i = 0; i + 1 < nfields; i += 2) {
        all[len++] = fields[i];
        all[len++] = fields[i + 1];
    }
    int n = sorted_pairs(all, len, order);
    put_char(o, '{');
    for (int k = 0; k < n; k++) {
        if (k > 0)
            put_char(o, ',');
        put_quoted(o, all[2 * order[k]]);
        put_char(o, ':');
        put_quoted(o, all[2 * order[k] + 1] ? all[2 * order[k] + 1] : "");
    }
    put_str(o, "}\n");
}

int log_format_record(char *buf, int size, enum log_format format, double unix_time,
                      enum log_level level, const char *msg, const char *const *fields,
                      int nfields)
{
    struct out_buf o = {.p = buf, .size = size, .len = 0};
    char ts[64];
    if (size <= 1)
        return 0;
    if (nfields > LOG_FIELDS_MAX)
        nfields = LOG_FIELDS_MAX;
    if (nfields < 0 || fields == NULL)
        nfields = 0;
    format_time(ts, sizeof(ts), unix_time);
    if (format == LOG_FORMAT_JSON)
        format_json(&o, ts, level, msg, fields, nfields);
    else
        format_text(&o, ts, level, msg, fields, nfields);
    /* Keep the record a line even when truncated. */
    if (o.len > 0 && o.p[o.len - 1] != '\n')
        o.p[o.len - 1] = '\n';
    o.p[o.len] = '\0';
    return o.len;
}

static double now_unix(void)
{
#ifdef _WIN32
    /* MSVCRT has no clock_gettime; libuv's wall clock has microseconds. */
    uv_timeval64_t tv;
    if (uv_gettimeofday(&tv) != 0)
        return (double)time(NULL);
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
#else
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
#endif
}

static void write_all(int fd, const char *p, int len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, (size_t)len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return; /* logging never fails the caller */
        p += n;
        len -= (int)n;
    }
}

static void emit(enum log_level level, const char *msg, const char *const *fields, int nfields)
{
    char record[LOG_RECORD_MAX];
    int saved_errno = errno;
    int len = log_format_record(record, sizeof(record), log_config.format, now_unix(), level, msg,
                                fields, nfields);
    write_all(log_config.fd, record, len);
    errno = saved_errno;
}

void log_fields(enum log_level level, const char *msg, ...)
{
    if (!log_enabled(level))
        return;
    const char *fields[LOG_FIELDS_MAX];
    int n = 0;
    va_list ap;
    va_start(ap, msg);
    const char *s;
    while ((s = va_arg(ap, const char *)) != NULL && n < LOG_FIELDS_MAX)
        fields[n++] = s;
    va_end(ap);
    emit(level, msg, fields, n);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    if (!log_enabled(level))
        return;
    char msg[LOG_RECORD_MAX / 2];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    emit(level, msg, NULL, 0);
}
