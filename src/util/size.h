#ifndef QUOKKA_UTIL_SIZE_H
#define QUOKKA_UTIL_SIZE_H

#include <stdint.h>

/* Parse "256M", "1G", "512k", "1048576" (bytes). Suffixes K/M/G/T, case-insensitive, optional
 * trailing "B"/"iB". Returns 0 on success, -1 on empty/garbage/overflow. */
int parse_size(const char *text, uint64_t *out);

#endif
