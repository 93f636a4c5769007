#include "hcs/win/utf16.h"

#include <windows.h>

#include <stdlib.h>

wchar_t *hcs_utf8_to_utf16(const char *s, shim_error_t **err)
{
    int n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, NULL, 0);
    if (n <= 0) {
        error_set(err, RPC_INVALID_ARGUMENT, "document is not valid UTF-8 (Windows error %lu)",
                  (unsigned long)GetLastError());
        return NULL;
    }
    wchar_t *w = malloc((size_t)n * sizeof(*w));
    if (w == NULL) {
        error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
        return NULL;
    }
    if (MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, w, n) != n) {
        free(w);
        error_set(err, RPC_INTERNAL, "UTF-8 to UTF-16 conversion failed");
        return NULL;
    }
    return w;
}

char *hcs_utf16_to_utf8(const wchar_t *w, shim_error_t **err)
{
    int n = WideCharToMultiByte(CP_UTF8, WC_ERR_INVALID_CHARS, w, -1, NULL, 0, NULL, NULL);
    if (n <= 0) {
        error_set(err, RPC_DATA_LOSS, "HCS returned invalid UTF-16 (Windows error %lu)",
                  (unsigned long)GetLastError());
        return NULL;
    }
    char *s = malloc((size_t)n);
    if (s == NULL) {
        error_set(err, RPC_RESOURCE_EXHAUSTED, "out of memory");
        return NULL;
    }
    if (WideCharToMultiByte(CP_UTF8, WC_ERR_INVALID_CHARS, w, -1, s, n, NULL, NULL) != n) {
        free(s);
        error_set(err, RPC_INTERNAL, "UTF-16 to UTF-8 conversion failed");
        return NULL;
    }
    return s;
}
