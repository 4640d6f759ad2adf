#include "util/opts.h"

#include "util/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool known_key(const char *const *known, const char *key)
{
    for (; known && *known; known++)
        if (!strcmp(*known, key))
            return true;
    return false;
}

/* Split at single commas (",," is an escaped comma), in place. Returns the next item. */
static char *next_item(char **cursor)
{
    char *start = *cursor, *out = start, *in = start;
    if (!start)
        return NULL;
    for (;;) {
        if (*in == ',' && in[1] == ',') {
            *out++ = ',';
            in += 2;
        } else if (*in == ',' || *in == '\0') {
            *cursor = *in ? in + 1 : NULL;
            *out = '\0';
            return start;
        } else {
            *out++ = *in++;
        }
    }
}

int opts_parse(struct opts *o, const char *text, const char *what, const char *const *known,
               const char *first_key, char *err, size_t errlen)
{
    return opts_parse_repeatable(o, text, what, known, first_key, NULL, err, errlen);
}

int opts_parse_repeatable(struct opts *o, const char *text, const char *what,
                          const char *const *known, const char *first_key,
                          const char *const *repeatable, char *err, size_t errlen)
{
    memset(o, 0, sizeof(*o));
    o->storage = strdup(text ? text : "");
    if (!o->storage)
        return qk_fail(err, errlen, "out of memory");
    char *cursor = *o->storage ? o->storage : NULL;
    char *item;
    while ((item = next_item(&cursor)) != NULL) {
        if (!*item)
            continue;
        char *eq = strchr(item, '=');
        const char *key = item, *value = "";
        if (eq) {
            *eq = '\0';
            value = eq + 1;
        } else if (first_key && o->nr == 0) {
            key = first_key;
            value = item;
        }
        if (!known_key(known, key)) {
            qk_fail(err, errlen, "%s: unknown option '%s'", what, key);
            goto fail;
        }
        if (opts_get(o, key) && !known_key(repeatable, key)) {
            qk_fail(err, errlen, "%s: option '%s' given twice", what, key);
            goto fail;
        }
        if (o->nr == OPTS_MAX) {
            qk_fail(err, errlen, "%s: too many options", what);
            goto fail;
        }
        o->item[o->nr].key = (char *)key;
        o->item[o->nr].value = (char *)value;
        o->nr++;
    }
    return 0;
fail:
    opts_free(o);
    return -1;
}

void opts_free(struct opts *o)
{
    free(o->storage);
    memset(o, 0, sizeof(*o));
}

const char *opts_get(const struct opts *o, const char *key)
{
    for (unsigned i = 0; i < o->nr; i++)
        if (!strcmp(o->item[i].key, key))
            return o->item[i].value;
    return NULL;
}

const char *opts_get_nth(const struct opts *o, const char *key, unsigned n)
{
    for (unsigned i = 0; i < o->nr; i++)
        if (!strcmp(o->item[i].key, key) && n-- == 0)
            return o->item[i].value;
    return NULL;
}

int opts_get_bool(const struct opts *o, const char *key, bool dflt, bool *out, const char *what,
                  char *err, size_t errlen)
{
    const char *v = opts_get(o, key);
    static const char *const yes[] = {"on", "yes", "true", "1", ""};
    static const char *const no[] = {"off", "no", "false", "0"};
    *out = dflt;
    if (!v)
        return 0;
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
        if (!strcasecmp(v, yes[i])) {
            *out = true;
            return 0;
        }
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        if (!strcasecmp(v, no[i])) {
            *out = false;
            return 0;
        }
    return qk_fail(err, errlen, "%s: %s='%s' must be on or off", what, key, v);
}

int opts_get_u64(const struct opts *o, const char *key, uint64_t dflt, uint64_t min, uint64_t max,
                 uint64_t *out, const char *what, char *err, size_t errlen)
{
    const char *v = opts_get(o, key);
    *out = dflt;
    if (!v)
        return 0;
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 0);
    if (!*v || *end || errno || *v == '-' || n < min || n > max)
        return qk_fail(err, errlen, "%s: %s='%s' must be a number from %llu to %llu", what, key, v,
                       (unsigned long long)min, (unsigned long long)max);
    *out = n;
    return 0;
}
