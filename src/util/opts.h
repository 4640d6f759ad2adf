/* "key=value,key=value" option strings, as in `--disk path=IMG,readonly=on`. A device lists
 * the keys it knows; anything else is a user error naming the key. Values cannot contain
 * commas (QEMU's ",," escape is accepted: it stands for one comma). */
#ifndef QUOKKA_UTIL_OPTS_H
#define QUOKKA_UTIL_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OPTS_MAX 16

struct opts {
    unsigned nr;
    struct {
        char *key;
        char *value; /* "" for a bare key */
    } item[OPTS_MAX];
    char *storage;
};

/* Parse text; `known` is a NULL-terminated list of accepted keys (what = "--disk" for
 * messages). A bare first word without '=' is taken as `first_key`=word when first_key is
 * not NULL (e.g. `--disk IMG`). */
int opts_parse(struct opts *o, const char *text, const char *what, const char *const *known,
               const char *first_key, char *err, size_t errlen);
/* The same, where the keys in `repeatable` (NULL-terminated, or NULL) may be given more than
 * once (e.g. `hostfwd=` for each forwarded port). */
int opts_parse_repeatable(struct opts *o, const char *text, const char *what,
                          const char *const *known, const char *first_key,
                          const char *const *repeatable, char *err, size_t errlen);
void opts_free(struct opts *o);

/* Value of key, or NULL when absent. */
const char *opts_get(const struct opts *o, const char *key);
/* The n-th value (from 0) of a repeatable key, or NULL past the last. */
const char *opts_get_nth(const struct opts *o, const char *key, unsigned n);
/* on/off, yes/no, true/false, 1/0; absent gives dflt. -1 with a message on another word. */
int opts_get_bool(const struct opts *o, const char *key, bool dflt, bool *out, const char *what,
                  char *err, size_t errlen);
/* A decimal or 0x number in [min, max]; absent gives dflt. */
int opts_get_u64(const struct opts *o, const char *key, uint64_t dflt, uint64_t min, uint64_t max,
                 uint64_t *out, const char *what, char *err, size_t errlen);

#endif
