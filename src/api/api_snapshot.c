/* PUT /snapshot/load's overrides: network_overrides gives a restored NIC (named by its
 * iface_id, kept in the snapshot as the NIC's id= option) another tap, vsock_override gives
 * the vsock device another host Unix socket, as on Firecracker. Extension: an override with
 * "hostfwd" instead of "host_dev_name" replaces a user-mode NIC's host port forwards. The
 * overrides edit the snapshot's device requests before the machine is built from them. */
#include "api/api_internal.h"
#include "api/serde_msg.h"
#include "util/log.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#define SERDE_PREFIX "An error occurred when deserializing the json body of a request: "
/* Firecracker's chain for an override naming nothing in the snapshot (persist.rs). */
#define MSG_NO_STATE "Failed to restore from snapshot: Failed to get snapshot state from file: "

/* A required string member of the override at `at` into buf (bounded by len). */
static int override_str(const struct serde_at *at, struct json_object *o, const char *key,
                        bool required, char *buf, size_t len, char *err, size_t errlen)
{
    struct json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null))
        return required ? serde_missing_field(at, key, err, errlen) : 0;
    if (!json_object_is_type(v, json_type_string))
        return qk_fail(err, errlen, SERDE_PREFIX "invalid type for `%s`: expected a string.", key);
    if (strlen(json_object_get_string(v)) >= len)
        return qk_fail(err, errlen, "Load snapshot error: `%s` is longer than %zu bytes.", key,
                       len - 1);
    snprintf(buf, len, "%s", json_object_get_string(v));
    return 0;
}

static int parse_hostfwd(struct api_net_override *n, struct json_object *v, char *err,
                         size_t errlen)
{
    n->has_hostfwd = true;
    return fc_parse_hostfwd(v, n->hostfwd, &n->nr_hostfwd, err, errlen);
}

/* One element of network_overrides (serde's NetworkOverride: unknown fields ignored). */
static int parse_net(const struct api_server *api, struct json_object *e, unsigned idx,
                     struct api_net_override *n, char *err, size_t errlen)
{
    char index[16];
    snprintf(index, sizeof(index), "%u", idx);
    const char *const path[] = {"network_overrides", index};
    struct serde_at at = {api->body_text, api->body_len, path, 2};
    struct json_object *fwd;
    memset(n, 0, sizeof(*n));
    if (!json_object_is_type(e, json_type_object))
        return qk_fail(err, errlen, SERDE_PREFIX "invalid type: expected struct NetworkOverride.");
    bool has_fwd =
        json_object_object_get_ex(e, "hostfwd", &fwd) && !json_object_is_type(fwd, json_type_null);
    if (override_str(&at, e, "iface_id", true, n->iface_id, sizeof(n->iface_id), err, errlen) < 0 ||
        override_str(&at, e, "host_dev_name", !has_fwd, n->host_dev_name, sizeof(n->host_dev_name),
                     err, errlen) < 0 ||
        (has_fwd && parse_hostfwd(n, fwd, err, errlen) < 0))
        return -1;
    if (has_fwd && n->host_dev_name[0])
        return qk_fail(err, errlen,
                       "Load snapshot error: network override '%s': host_dev_name (a tap) and "
                       "hostfwd (user-mode networking) exclude each other.",
                       n->iface_id);
    return 0;
}

int api_parse_overrides(const struct api_server *api, struct json_object *body,
                        struct api_overrides *o, char *err, size_t errlen)
{
    struct json_object *v;
    memset(o, 0, sizeof(*o));
    if (json_object_object_get_ex(body, "network_overrides", &v) &&
        !json_object_is_type(v, json_type_null)) {
        if (!json_object_is_type(v, json_type_array))
            return qk_fail(err, errlen,
                           SERDE_PREFIX "invalid type for `network_overrides`: expected a "
                                        "sequence.");
        size_t n = json_object_array_length(v);
        if (n > FC_MAX_NETS)
            return qk_fail(err, errlen, "Load snapshot error: at most %d network_overrides.",
                           FC_MAX_NETS);
        for (size_t i = 0; i < n; i++)
            if (parse_net(api, json_object_array_get_idx(v, i), (unsigned)i, &o->nets[i], err,
                          errlen) < 0)
                return -1;
        o->nr_nets = (unsigned)n;
    }
    if (json_object_object_get_ex(body, "vsock_override", &v) &&
        !json_object_is_type(v, json_type_null)) {
        const char *const path[] = {"vsock_override"};
        struct serde_at at = {api->body_text, api->body_len, path, 1};
        if (!json_object_is_type(v, json_type_object))
            return qk_fail(err, errlen,
                           SERDE_PREFIX "invalid type: expected struct VsockOverride.");
        if (override_str(&at, v, "uds_path", true, o->vsock_uds, sizeof(o->vsock_uds), err,
                         errlen) < 0)
            return -1;
        o->has_vsock = true;
    }
    return 0;
}

/* "key=value" with the value's commas doubled (util/opts.h's escape), appended at out+*used. */
static void put_item(char *out, size_t len, size_t *used, const char *key, const char *value)
{
    *used += (size_t)snprintf(out + *used, len - *used, "%s%s=", *used ? "," : "", key);
    for (const char *p = value; *p && *used + 3 < len; p++) {
        if (*p == ',')
            out[(*used)++] = ',';
        out[(*used)++] = *p;
    }
    out[*used] = '\0';
}

static int apply_net(const struct api_net_override *n, struct snapshot_config *sc, char *err,
                     size_t errlen)
{
    static const char *const tap_keys[] = {"tap", "tap-fd", NULL};
    static const char *const fwd_keys[] = {"hostfwd", NULL};
    int i = snapshot_config_find(sc, "virtio-net", n->iface_id);
    if (i < 0)
        return qk_fail(err, errlen, MSG_NO_STATE "Unknown Network Device.");
    bool user = snapshot_config_has(sc, (unsigned)i, "user");
    if (user != n->has_hostfwd)
        return qk_fail(err, errlen,
                       user ? "network interface '%s' uses user-mode networking: override its "
                              "hostfwd rules, not host_dev_name"
                            : "network interface '%s' is on a tap: hostfwd is for user-mode "
                              "networking",
                       n->iface_id);
    char add[FC_MAX_HOSTFWD * 80 + 64] = "";
    size_t used = 0;
    if (user)
        for (unsigned f = 0; f < n->nr_hostfwd; f++)
            put_item(add, sizeof(add), &used, "hostfwd", n->hostfwd[f]);
    else
        put_item(add, sizeof(add), &used, "tap", n->host_dev_name);
    if (snapshot_config_edit(sc, (unsigned)i, user ? fwd_keys : tap_keys, add) < 0)
        return qk_fail(err, errlen, "network override '%s': out of memory", n->iface_id);
    return 0;
}

int api_apply_overrides(const struct api_overrides *o, struct snapshot_config *sc, char *err,
                        size_t errlen)
{
    for (unsigned k = 0; k < o->nr_nets; k++)
        if (apply_net(&o->nets[k], sc, err, errlen) < 0)
            return -1;
    if (!o->has_vsock)
        return 0;
    static const char *const path_keys[] = {"path", NULL};
    int i = snapshot_config_find(sc, "virtio-vsock", NULL);
    if (i < 0)
        return qk_fail(err, errlen, MSG_NO_STATE "Unknown Vsock Device.");
    char add[2 * FC_PATH_MAX + 8];
    size_t used = 0;
    put_item(add, sizeof(add), &used, "path", o->vsock_uds);
    if (snapshot_config_edit(sc, (unsigned)i, path_keys, add) < 0)
        return qk_fail(err, errlen, "vsock override: the path is too long");
    return 0;
}
