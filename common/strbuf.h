/* A growable NUL-terminated string (portable stand-in for open_memstream).
 *
 *   struct strbuf sb = STRBUF_INIT;
 *   strbuf_adds(&sb, "a");
 *   strbuf_addf(&sb, " %d", 1);
 *   char *s = strbuf_detach(&sb);   // NULL if any append ran out of memory
 *
 * An allocation failure is sticky: later appends do nothing and
 * strbuf_detach returns NULL, so callers check once at the end. */
#ifndef COMMON_STRBUF_H
#define COMMON_STRBUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/compiler.h"

struct strbuf {
    char *buf;
    size_t len;
    size_t cap;
    bool failed; /* an allocation failed; the content is incomplete */
};

#define STRBUF_INIT                                                                                \
    {                                                                                              \
        NULL, 0, 0, false                                                                          \
    }

void strbuf_adds(struct strbuf *sb, const char *s);
void strbuf_addn(struct strbuf *sb, const char *s, size_t n);
void strbuf_addf(struct strbuf *sb, const char *fmt, ...) SHIM_PRINTF(2, 3);
void strbuf_vaddf(struct strbuf *sb, const char *fmt, va_list ap) SHIM_PRINTF(2, 0);
/* The content so far ("" when empty); valid until the next append. */
const char *strbuf_str(const struct strbuf *sb);
/* Hands the string to the caller (free() it) and resets sb. NULL when an
 * append failed (the partial content is freed then). */
char *strbuf_detach(struct strbuf *sb);
/* Frees the content and resets sb. */
void strbuf_release(struct strbuf *sb);

#endif
