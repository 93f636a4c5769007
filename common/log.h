/* Logging in logrus text format, as containerd and its shims write it:
 *   time="2026-11-23T14:12:33.123456789Z" level=info msg="started" id=t1
 * to one file descriptor (stderr by default; the shim moves it to the
 * bundle's log FIFO). JSON output is available for the guest agent. */
#ifndef COMMON_LOG_H
#define COMMON_LOG_H

#include <stdbool.h>

#include "common/compiler.h"

enum log_level {
    LOG_LEVEL_PANIC = 0,
    LOG_LEVEL_FATAL,
    LOG_LEVEL_ERROR,
    LOG_LEVEL_WARN,
    LOG_LEVEL_INFO,
    LOG_LEVEL_DEBUG,
    LOG_LEVEL_TRACE,
};

enum log_format {
    LOG_FORMAT_TEXT = 0,
    LOG_FORMAT_JSON,
};

struct log_config {
    int fd;
    enum log_level level;
    enum log_format format;
};

/* The process-wide log configuration (part of "configuration"). */
void log_configure(int fd, enum log_level level, enum log_format format);
/* Parses a logrus level name ("debug", "warning", ...); -1 if unknown. */
int log_level_parse(const char *name);
const char *log_level_name(enum log_level level);
bool log_enabled(enum log_level level);

/* Fields are given as alternating key, value strings, terminated by NULL:
 *   log_fields(LOG_LEVEL_INFO, "task started", "id", id, "pid", pidstr, NULL); */
void log_fields(enum log_level level, const char *msg, ...) __attribute__((sentinel));
/* printf-style message without extra fields. */
void log_msg(enum log_level level, const char *fmt, ...) SHIM_PRINTF(2, 3);

/* Formats one record into buf (for tests); returns the length written
 * (truncated to size-1) including the trailing newline. */
int log_format_record(char *buf, int size, enum log_format format, double unix_time,
                      enum log_level level, const char *msg, const char *const *fields,
                      int nfields);

#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...)                                                                             \
    do {                                                                                           \
        if (log_enabled(LOG_LEVEL_DEBUG))                                                          \
            log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__);                                                 \
    } while (0)
#define log_trace(...)                                                                             \
    do {                                                                                           \
        if (log_enabled(LOG_LEVEL_TRACE))                                                          \
            log_msg(LOG_LEVEL_TRACE, __VA_ARGS__);                                                 \
    } while (0)

#endif
