#include "api/serde_msg.h"

#include "util/log.h"

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A cursor over a JSON text json-c has accepted (so only its shape is walked here). */
struct scan {
    const char *s;
    size_t len, i;
};

static void skip_ws(struct scan *sc)
{
    while (sc->i < sc->len && strchr(" \t\r\n", sc->s[sc->i]) && sc->s[sc->i])
        sc->i++;
}

static bool at(struct scan *sc, char c)
{
    skip_ws(sc);
    return sc->i < sc->len && sc->s[sc->i] == c;
}

/* At '"': past the closing quote; the raw bytes between the quotes in *start, *n. */
static bool skip_string(struct scan *sc, const char **start, size_t *n)
{
    if (!at(sc, '"'))
        return false;
    size_t b = ++sc->i;
    while (sc->i < sc->len && sc->s[sc->i] != '"')
        sc->i += sc->s[sc->i] == '\\' ? 2 : 1;
    if (sc->i >= sc->len)
        return false;
    *start = sc->s + b;
    *n = sc->i - b;
    sc->i++;
    return true;
}

/* Past one value of any kind: nested brackets counted, strings skipped whole. */
static bool skip_value(struct scan *sc)
{
    const char *p;
    size_t n;
    if (at(sc, '"'))
        return skip_string(sc, &p, &n);
    unsigned depth = 0;
    while (sc->i < sc->len) {
        char c = sc->s[sc->i];
        if (c == '"') {
            if (!skip_string(sc, &p, &n))
                return false;
            continue;
        }
        if (c == '{' || c == '[')
            depth++;
        else if (c == '}' || c == ']') {
            if (depth == 0)
                return true; /* a scalar ends at its container's end */
            if (--depth == 0) {
                sc->i++;
                return true;
            }
        } else if (c == ',' && depth == 0)
            return true;
        sc->i++;
    }
    return depth == 0;
}

static bool raw_equals(const char *raw, size_t n, const char *key)
{
    return strlen(key) == n && !memcmp(raw, key, n) && !memchr(raw, '\\', n);
}

/* From a value, the index just past `key`'s closing quote in the object `path` leads to, or
 * (key NULL) just past that object's '}'. */
static bool find(struct scan *sc, const char *const *path, unsigned np, const char *key,
                 size_t *out)
{
    bool array = at(sc, '[');
    if (!array && !at(sc, '{'))
        return false;
    if (array && np == 0)
        return false;
    sc->i++;
    for (unsigned idx = 0;; idx++) {
        if (at(sc, array ? ']' : '}')) {
            sc->i++;
            if (np == 0 && !key) {
                *out = sc->i;
                return true;
            }
            return false;
        }
        if (idx && !at(sc, ','))
            return false;
        if (idx)
            sc->i++;
        bool next = false;
        if (!array) {
            const char *raw;
            size_t n;
            if (!skip_string(sc, &raw, &n))
                return false;
            if (np == 0 && key && raw_equals(raw, n, key)) {
                *out = sc->i;
                return true;
            }
            next = np > 0 && raw_equals(raw, n, path[0]);
            if (!at(sc, ':'))
                return false;
            sc->i++;
        } else
            next = (unsigned)strtoul(path[0], NULL, 10) == idx;
        if (next)
            return find(sc, path + 1, np - 1, key, out);
        if (!skip_value(sc))
            return false;
    }
}

/* " at line L column C" as serde_json counts them (column: bytes of the line before idx). */
static void position(const struct serde_at *a, const char *key, char *buf, size_t len)
{
    struct scan sc = {a->text, a->len, 0};
    size_t idx;
    if (!a->text || !find(&sc, a->path, a->npath, key, &idx)) {
        buf[0] = '\0';
        return;
    }
    size_t line = 1, start = 0;
    for (size_t i = 0; i < idx; i++)
        if (a->text[i] == '\n') {
            line++;
            start = i + 1;
        }
    snprintf(buf, len, " at line %zu column %zu", line, idx - start);
}

#define SERDE_PREFIX "An error occurred when deserializing the json body of a request: "

int serde_unknown_fields(const struct serde_at *a, struct json_object *obj,
                         const char *const *known, char *err, size_t errlen)
{
    json_object_object_foreach(obj, key, val)
    {
        (void)val;
        unsigned n = 0;
        bool ok = false;
        for (; known[n]; n++)
            ok = ok || !strcmp(key, known[n]);
        if (ok)
            continue;
        /* serde's wording: `a`; `a` or `b`; one of `a`, `b`, `c` */
        char list[600] = "there are no fields";
        size_t used = 0;
        for (unsigned i = 0; i < n && used < sizeof(list); i++)
            used += (size_t)snprintf(list + used, sizeof(list) - used, "%s`%s`",
                                     i == 0   ? (n > 2 ? "expected one of " : "expected ")
                                     : n == 2 ? " or "
                                              : ", ",
                                     known[i]);
        char pos[64];
        position(a, key, pos, sizeof(pos));
        return qk_fail(err, errlen, SERDE_PREFIX "unknown field `%.100s`, %s%s.", key, list, pos);
    }
    return 0;
}

int serde_missing_field(const struct serde_at *a, const char *key, char *err, size_t errlen)
{
    char pos[64];
    position(a, NULL, pos, sizeof(pos));
    return qk_fail(err, errlen, SERDE_PREFIX "missing field `%s`%s.", key, pos);
}

struct json_object *serde_parse(const char *text, size_t len, char *err, size_t errlen)
{
    if (len > INT32_MAX) {
        qk_fail(err, errlen, "the body is too large");
        return NULL;
    }
    struct json_tokener *tok = json_tokener_new();
    if (!tok) {
        qk_fail(err, errlen, "out of memory");
        return NULL;
    }
    struct json_object *o = json_tokener_parse_ex(tok, text, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (!o || jerr != json_tokener_success) {
        json_object_put(o);
        /* json-c waits for more of an unfinished value: serde's end of input */
        qk_fail(err, errlen, "%s",
                jerr == json_tokener_continue ? "EOF while parsing a value"
                                              : json_tokener_error_desc(jerr));
        return NULL;
    }
    /* json-c stops after the first value; serde_json refuses anything but whitespace after it */
    struct scan sc = {text, len, end};
    skip_ws(&sc);
    if (sc.i < len) {
        size_t line = 1, start = 0;
        for (size_t i = 0; i < sc.i; i++)
            if (text[i] == '\n') {
                line++;
                start = i + 1;
            }
        json_object_put(o);
        qk_fail(err, errlen, "trailing characters at line %zu column %zu", line, sc.i - start + 1);
        return NULL;
    }
    return o;
}
