/* Diagnostics: every user-facing error is one line on stderr prefixed "quokka: ". */
#ifndef QUOKKA_UTIL_LOG_H
#define QUOKKA_UTIL_LOG_H

#include <stddef.h>

void qk_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void qk_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* snprintf into a caller-supplied error buffer; tolerates buf == NULL. Returns -1 so callers
 * can write "return qk_fail(err, len, ...)". */
int qk_fail(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
