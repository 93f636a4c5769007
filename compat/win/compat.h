/* Force-included (-include) into every translation unit of the Windows
 * cross-build (mk/windows.mk), before any other header. It fills the few
 * POSIX gaps of mingw-w64 that portable code may rely on, and nothing else:
 * platform code proper lives in <module>/win/. Not used on Linux. */
#ifndef COMPAT_WIN_COMPAT_H
#define COMPAT_WIN_COMPAT_H

/* C99 printf family (%zu, %lld, %hhx) from mingw's own stdio instead of
 * MSVCRT's; set on the command line too, this is the fallback. */
#ifndef __USE_MINGW_ANSI_STDIO
#define __USE_MINGW_ANSI_STDIO 1
#endif
/* Exposes gmtime_r/localtime_r in mingw's <time.h>. */
#ifndef _POSIX_THREAD_SAFE_FUNCTIONS
#define _POSIX_THREAD_SAFE_FUNCTIONS 200112L
#endif

#include <fcntl.h>
#include <io.h>
#include <stdlib.h>
#include <string.h>

/* POSIX.1-2008 strndup, absent from MSVCRT and mingw-w64. */
static inline char *compat_strndup(const char *s, size_t n)
{
    size_t len = 0;
    while (len < n && s[len] != '\0')
        len++;
    char *out = malloc(len + 1);
    if (out == NULL)
        return NULL;
    memcpy(out, s, len);
    out[len] = '\0';
    return out;
}
#define strndup(s, n) compat_strndup(s, n)

/* POSIX pipe(2) as a CRT pipe of CRT file descriptors; binary mode, so
 * bytes pass unchanged. Function-like, so fields named `pipe` stay put. */
static inline int compat_pipe(int fds[2])
{
    return _pipe(fds, 65536, _O_BINARY);
}
#define pipe(fds) compat_pipe(fds)

#endif
