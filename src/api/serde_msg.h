/* Firecracker's request bodies are serde structs: a rejected body gets serde_json's message,
 * which names the place in the text ("unknown field `x`, expected one of `a`, `b` at line 1
 * column 7"). json-c keeps no positions, so these helpers find them again in the raw body
 * (already validated as JSON by json-c). */
#ifndef QUOKKA_API_SERDE_MSG_H
#define QUOKKA_API_SERDE_MSG_H

#include <stddef.h>

struct json_object;

/* Where in a body an object lies: `path` names, from the top-level value, the object keys and
 * (as decimal strings) the array indices leading to it; npath 0 is the top-level object. */
struct serde_at {
    const char *text;
    size_t len;
    const char *const *path;
    unsigned npath;
};

/* The first key of obj (the object at `at`) not in `known` (NULL-terminated): -1 with
 * "unknown field `k`, expected ... at line L column C" in err; 0 when every key is known. */
int serde_unknown_fields(const struct serde_at *at, struct json_object *obj,
                         const char *const *known, char *err, size_t errlen);

/* "missing field `key` at line L column C": the position is the end of the object at `at`.
 * Always -1. */
int serde_missing_field(const struct serde_at *at, const char *key, char *err, size_t errlen);

/* A whole body as serde_json takes it: one JSON value, then only whitespace. NULL with the
 * reason (without SERDE's prefix) in err when it is not. */
struct json_object *serde_parse(const char *text, size_t len, char *err, size_t errlen);

#endif
