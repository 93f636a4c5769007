/* UTF-8 <-> UTF-16 for HCS documents (the API takes PCWSTR, our JSON is
 * UTF-8). Invalid input (bad UTF-8, unpaired surrogates) is an error, not
 * silently replaced: a mangled document would be misread by HCS. */
#ifndef HCS_WIN_UTF16_H
#define HCS_WIN_UTF16_H

#include <wchar.h>

#include "common/error.h"

/* Returns a malloc'd NUL-terminated UTF-16 copy of s; NULL with *err. */
wchar_t *hcs_utf8_to_utf16(const char *s, shim_error_t **err);
/* Returns a malloc'd NUL-terminated UTF-8 copy of w; NULL with *err. */
char *hcs_utf16_to_utf8(const wchar_t *w, shim_error_t **err);

#endif
