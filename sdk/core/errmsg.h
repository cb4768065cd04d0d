/* errmsg: filling a caller's error buffer, the one way every API that takes (err, errlen) does. */
#ifndef STENO_CORE_ERRMSG_H
#define STENO_CORE_ERRMSG_H

#include <stdarg.h>
#include <stddef.h>

/* Formats into err[errlen] (always terminated); does nothing when err is NULL or errlen 0, so
 * callers may pass what the application gave them unchecked. */
void steno__errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The same, returning rc: "return steno__errf_rc(err, errlen, STENO_ERR_CONFIG, ...)". */
int steno__errf_rc(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void steno__verrf(char *err, size_t errlen, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

#endif
