/* Compiler attributes shared by the whole tree. */
#ifndef COMMON_COMPILER_H
#define COMMON_COMPILER_H

/* printf-style format checking. mingw's GCC checks the plain `printf`
 * archetype against MSVCRT's dialect (no %zu, %hhx), but the Windows build
 * uses mingw's C99 printf (__USE_MINGW_ANSI_STDIO=1), so check against
 * that: gnu_printf. */
#if defined(__MINGW32__)
#define SHIM_PRINTF(fmt_idx, arg_idx) __attribute__((format(gnu_printf, fmt_idx, arg_idx)))
#else
#define SHIM_PRINTF(fmt_idx, arg_idx) __attribute__((format(printf, fmt_idx, arg_idx)))
#endif

#endif
