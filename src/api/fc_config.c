#include "api/fc_config.h"

#include "api/serde_msg.h"
#include "util/log.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Firecracker's message for a body its JSON schema (serde) rejects. */
#define SERDE_PREFIX "An error occurred when deserializing the json body of a request: "

void fc_config_init(struct fc_config *fc, const struct machine_config *base, bool kernel_given)
{
    memset(fc, 0, sizeof(*fc));
    fc->vcpu_count = base->nr_vcpus;
    fc->mem_size_mib = base->mem_size >> 20;
    fc->accel = base->accel;
    if (kernel_given && base->kernel_path) {
        fc->has_kernel = true;
        snprintf(fc->kernel, sizeof(fc->kernel), "%s", base->kernel_path);
        if (base->initrd_path)
            snprintf(fc->initrd, sizeof(fc->initrd), "%s", base->initrd_path);
    }
}

int fc_check_id(const char *id, char *err, size_t errlen)
{
    if (!id || !*id)
        return qk_fail(err, errlen, "The ID cannot be empty.");
    for (const char *p = id; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_')
            return qk_fail(err, errlen,
                           "API Resource IDs can only contain alphanumeric "
                           "characters and underscores.");
    if (strlen(id) >= FC_ID_MAX)
        return qk_fail(err, errlen, "The ID is longer than %d characters.", FC_ID_MAX - 1);
    return 0;
}

/* Every key of body must be in `known` (Firecracker's bodies deny unknown fields). */
static int check_fields(struct json_object *body, const char *const *known, char *err,
                        size_t errlen)
{
    if (!json_object_is_type(body, json_type_object))
        return qk_fail(err, errlen, SERDE_PREFIX "invalid type: expected a JSON object.");
    json_object_object_foreach(body, key, val)
    {
        (void)val;
        bool ok = false;
        for (unsigned i = 0; known[i]; i++)
            ok = ok || !strcmp(key, known[i]);
        if (!ok)
            return qk_fail(err, errlen, SERDE_PREFIX "unknown field `%s`.", key);
    }
    return 0;
}

/* A string field into buf; missing: -1 when required, else 0 with *present false. */
static int get_string(struct json_object *body, const char *key, bool required, char *buf,
                      size_t len, bool *present, char *err, size_t errlen)
{
    struct json_object *v;
    if (present)
        *present = false;
    if (!json_object_object_get_ex(body, key, &v) || json_object_is_type(v, json_type_null)) {
        if (required)
            return qk_fail(err, errlen, SERDE_PREFIX "missing field `%s`.", key);
        return 0;
    }
    if (!json_object_is_type(v, json_type_string))
        return qk_fail(err, errlen, SERDE_PREFIX "invalid type for `%s`: expected a string.", key);
    const char *s = json_object_get_string(v);
    if (strlen(s) >= len)
        return qk_fail(err, errlen, SERDE_PREFIX "`%s` is longer than %zu bytes.", key, len - 1);
    snprintf(buf, len, "%s", s);
    if (present)
        *present = true;
    return 0;
}

static int get_bool(struct json_object *body, const char *key, bool required, bool *out, char *err,
                    size_t errlen)
{
    struct json_object *v;
    if (!json_object_object_get_ex(body, key, &v) || json_object_is_type(v, json_type_null)) {
        if (required)
            return qk_fail(err, errlen, SERDE_PREFIX "missing field `%s`.", key);
        return 0;
    }
    if (!json_object_is_type(v, json_type_boolean))
        return qk_fail(err, errlen, SERDE_PREFIX "invalid type for `%s`: expected a boolean.", key);
    *out = json_object_get_boolean(v);
    return 0;
}

static int get_uint(struct json_object *body, const char *key, bool required, uint64_t max,
                    uint64_t *out, char *err, size_t errlen)
{
    struct json_object *v;
    if (!json_object_object_get_ex(body, key, &v) || json_object_is_type(v, json_type_null)) {
        if (required)
            return qk_fail(err, errlen, SERDE_PREFIX "missing field `%s`.", key);
        return 0;
    }
    if (!json_object_is_type(v, json_type_int))
        return qk_fail(err, errlen, SERDE_PREFIX "invalid type for `%s`: expected an integer.",
                       key);
    errno = 0;
    int64_t n = json_object_get_int64(v);
    if (n < 0 || (uint64_t)n > max || errno)
        return qk_fail(err, errlen, SERDE_PREFIX "invalid value for `%s`: expected 0 to %llu.", key,
                       (unsigned long long)max);
    *out = (uint64_t)n;
    return 0;
}

static int readable_file(const char *path, char *why, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return qk_fail(why, len, "%s (os error %d)", strerror(errno), errno);
    close(fd);
    return 0;
}

int fc_put_boot_source(struct fc_config *fc, struct json_object *body, char *err, size_t errlen)
{
    static const char *const known[] = {"kernel_image_path", "initrd_path", "boot_args", NULL};
    char kernel[FC_PATH_MAX], initrd[FC_PATH_MAX] = "", args[FC_CMDLINE_MAX] = "", why[200];
    bool has_args = false;
    if (check_fields(body, known, err, errlen) < 0 ||
        get_string(body, "kernel_image_path", true, kernel, sizeof(kernel), NULL, err, errlen) <
            0 ||
        get_string(body, "initrd_path", false, initrd, sizeof(initrd), NULL, err, errlen) < 0 ||
        get_string(body, "boot_args", false, args, sizeof(args), &has_args, err, errlen) < 0)
        return -1;
    if (readable_file(kernel, why, sizeof(why)) < 0)
        return qk_fail(err, errlen, "Boot source error: The kernel file cannot be opened: %s", why);
    if (*initrd && readable_file(initrd, why, sizeof(why)) < 0)
        return qk_fail(err, errlen, "Boot source error: The initrd file cannot be opened: %s", why);
    fc->has_kernel = true;
    memcpy(fc->kernel, kernel, sizeof(kernel));
    memcpy(fc->initrd, initrd, sizeof(initrd));
    memcpy(fc->boot_args, args, sizeof(args));
    fc->has_boot_args = has_args;
    return 0;
}

int fc_put_machine_config(struct fc_config *fc, struct json_object *body, char *err, size_t errlen)
{
    static const char *const known[] = {
        "vcpu_count", "mem_size_mib", "smt",         "track_dirty_pages",
        "huge_pages", "cpu_template", "accelerator", NULL};
    uint64_t vcpus = 0, mem = 0;
    bool smt = false, dirty = false;
    char huge[16] = "None", tmpl[32] = "None", accel[8] = "";
    bool has_accel = false;
    if (check_fields(body, known, err, errlen) < 0 ||
        get_uint(body, "vcpu_count", true, UINT32_MAX, &vcpus, err, errlen) < 0 ||
        get_uint(body, "mem_size_mib", true, UINT64_MAX >> 20, &mem, err, errlen) < 0 ||
        get_bool(body, "smt", false, &smt, err, errlen) < 0 ||
        get_bool(body, "track_dirty_pages", false, &dirty, err, errlen) < 0 ||
        get_string(body, "huge_pages", false, huge, sizeof(huge), NULL, err, errlen) < 0 ||
        get_string(body, "cpu_template", false, tmpl, sizeof(tmpl), NULL, err, errlen) < 0 ||
        get_string(body, "accelerator", false, accel, sizeof(accel), &has_accel, err, errlen) < 0)
        return -1;
    if (vcpus < 1 || vcpus > 32 || (smt && vcpus > 1 && vcpus % 2))
        return qk_fail(err, errlen,
                       "Machine config error: The vCPU number is invalid: it should "
                       "be either 1 or an even number when SMT is enabled.");
    if (vcpus > MACHINE_MAX_VCPUS)
        return qk_fail(err, errlen, "Machine config error: at most %d vCPUs", MACHINE_MAX_VCPUS);
    if (mem == 0)
        return qk_fail(err, errlen, "Machine config error: The memory size (MiB) is invalid.");
    if (strcmp(huge, "None") != 0)
        return qk_fail(err, errlen,
                       "Machine config error: huge_pages '%s' is not supported (only None)", huge);
    if (strcmp(tmpl, "None") != 0)
        return qk_fail(err, errlen,
                       "Machine config error: cpu_template '%s' is not supported (only None)",
                       tmpl);
    enum accel_kind kind = fc->accel;
    if (has_accel && accel_parse_kind(accel, &kind) < 0)
        return qk_fail(err, errlen,
                       "Machine config error: accelerator '%s' must be kvm, tcg or auto", accel);
    fc->vcpu_count = (unsigned)vcpus;
    fc->mem_size_mib = mem;
    fc->smt = smt;
    fc->track_dirty_pages = dirty;
    fc->accel = kind;
    return 0;
}

struct json_object *fc_get_machine_config(const struct fc_config *fc)
{
    static const char *const accel_names[] = {"auto", "kvm", "tcg"};
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "vcpu_count", json_object_new_int((int)fc->vcpu_count));
    json_object_object_add(o, "mem_size_mib", json_object_new_int64((int64_t)fc->mem_size_mib));
    json_object_object_add(o, "smt", json_object_new_boolean(fc->smt));
    json_object_object_add(o, "track_dirty_pages", json_object_new_boolean(fc->track_dirty_pages));
    json_object_object_add(o, "huge_pages", json_object_new_string("None"));
    json_object_object_add(o, "accelerator", json_object_new_string(accel_names[fc->accel]));
    return o;
}

/* The body's id, when present, must match the path's (Firecracker's check). */
static int check_body_id(struct json_object *body, const char *key, const char *id, char *err,
                         size_t errlen)
{
    char body_id[FC_ID_MAX + 1];
    if (get_string(body, key, true, body_id, sizeof(body_id), NULL, err, errlen) < 0)
        return -1;
    if (strcmp(body_id, id) != 0)
        return qk_fail(err, errlen, "The id from the path does not match the id from the body!");
    return 0;
}

int fc_put_drive(struct fc_config *fc, const char *id, struct json_object *body, char *err,
                 size_t errlen)
{
    static const char *const known[] = {"drive_id",     "path_on_host", "is_root_device",
                                        "is_read_only", "partuuid",     "cache_type",
                                        "io_engine",    "rate_limiter", NULL};
    struct fc_drive d = {0};
    char why[200];
    if (fc_check_id(id, err, errlen) < 0 || check_fields(body, known, err, errlen) < 0 ||
        check_body_id(body, "drive_id", id, err, errlen) < 0 ||
        get_string(body, "path_on_host", true, d.path, sizeof(d.path), NULL, err, errlen) < 0 ||
        get_bool(body, "is_root_device", true, &d.root, err, errlen) < 0 ||
        get_bool(body, "is_read_only", false, &d.read_only, err, errlen) < 0)
        return -1;
    snprintf(d.id, sizeof(d.id), "%s", id);
    int fd = open(d.path, (d.read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, sizeof(why), "%s (os error %d)", strerror(errno), errno);
        return qk_fail(err, errlen,
                       "Drive config error: Unable to create the block device: BackingFile: %s, "
                       "\"%s\"",
                       why, d.path);
    }
    close(fd);
    unsigned slot = fc->nr_drives;
    for (unsigned i = 0; i < fc->nr_drives; i++) {
        if (!strcmp(fc->drives[i].id, id))
            slot = i;
        else if (d.root && fc->drives[i].root)
            return qk_fail(err, errlen, "Drive config error: A root block device already exists!");
    }
    if (slot == FC_MAX_DRIVES)
        return qk_fail(err, errlen, "Drive config error: at most %d drives", FC_MAX_DRIVES);
    fc->drives[slot] = d;
    if (slot == fc->nr_drives)
        fc->nr_drives++;
    return 0;
}

int fc_parse_hostfwd(struct json_object *v, char (*rules)[FC_HOSTFWD_LEN], unsigned *nr, char *err,
                     size_t errlen)
{
    *nr = 0;
    if (!json_object_is_type(v, json_type_array) || json_object_array_length(v) > FC_MAX_HOSTFWD)
        return qk_fail(err, errlen,
                       SERDE_PREFIX "`hostfwd` must be an array of at most %d strings.",
                       FC_MAX_HOSTFWD);
    for (size_t i = 0; i < json_object_array_length(v); i++) {
        struct json_object *e = json_object_array_get_idx(v, i);
        if (!json_object_is_type(e, json_type_string) ||
            strlen(json_object_get_string(e)) >= FC_HOSTFWD_LEN ||
            strchr(json_object_get_string(e), ','))
            return qk_fail(err, errlen, SERDE_PREFIX "`hostfwd` entry %zu is not a rule.", i);
        snprintf(rules[i], FC_HOSTFWD_LEN, "%s", json_object_get_string(e));
        (*nr)++;
    }
    return 0;
}

static int parse_hostfwd(struct fc_net *n, struct json_object *body, char *err, size_t errlen)
{
    struct json_object *v;
    if (!json_object_object_get_ex(body, "hostfwd", &v))
        return 0;
    return fc_parse_hostfwd(v, n->hostfwd, &n->nr_hostfwd, err, errlen);
}

int fc_put_net(struct fc_config *fc, const char *id, struct json_object *body, char *err,
               size_t errlen)
{
    static const char *const known[] = {
        "iface_id",        "host_dev_name", "guest_mac", "rx_rate_limiter",
        "tx_rate_limiter", "user_mode",     "hostfwd",   NULL};
    struct fc_net n = {0};
    if (fc_check_id(id, err, errlen) < 0 || check_fields(body, known, err, errlen) < 0 ||
        check_body_id(body, "iface_id", id, err, errlen) < 0 ||
        get_bool(body, "user_mode", false, &n.user_mode, err, errlen) < 0 ||
        get_string(body, "host_dev_name", !n.user_mode, n.host_dev_name, sizeof(n.host_dev_name),
                   NULL, err, errlen) < 0 ||
        get_string(body, "guest_mac", false, n.mac, sizeof(n.mac), NULL, err, errlen) < 0 ||
        parse_hostfwd(&n, body, err, errlen) < 0)
        return -1;
    if (n.user_mode && n.host_dev_name[0])
        return qk_fail(err, errlen,
                       "Network config error: user_mode and host_dev_name exclude "
                       "each other.");
    if (strchr(n.host_dev_name, ',') || strchr(n.mac, ','))
        return qk_fail(err, errlen, "Network config error: a comma in host_dev_name/guest_mac.");
    snprintf(n.id, sizeof(n.id), "%s", id);
    unsigned slot = fc->nr_nets;
    for (unsigned i = 0; i < fc->nr_nets; i++) {
        if (!strcmp(fc->nets[i].id, id))
            slot = i;
        else if (n.mac[0] && !strcmp(fc->nets[i].mac, n.mac))
            return qk_fail(err, errlen,
                           "Network config error: The MAC address is already in use: %s", n.mac);
    }
    if (slot == FC_MAX_NETS)
        return qk_fail(err, errlen, "Network config error: at most %d interfaces", FC_MAX_NETS);
    fc->nets[slot] = n;
    if (slot == fc->nr_nets)
        fc->nr_nets++;
    return 0;
}

int fc_put_vsock(struct fc_config *fc, struct json_object *body, char *err, size_t errlen)
{
    static const char *const known[] = {"guest_cid", "uds_path", "vsock_id", NULL};
    uint64_t cid = 0;
    char uds[FC_PATH_MAX];
    if (check_fields(body, known, err, errlen) < 0 ||
        get_uint(body, "guest_cid", true, UINT32_MAX, &cid, err, errlen) < 0 ||
        get_string(body, "uds_path", true, uds, sizeof(uds), NULL, err, errlen) < 0)
        return -1;
    if (cid < 3 || cid > 0xfffffffeULL)
        return qk_fail(err, errlen, "Vsock config error: guest_cid must be 3 to 4294967294.");
    fc->has_vsock = true;
    fc->vsock_cid = (uint32_t)cid;
    memcpy(fc->vsock_uds, uds, sizeof(uds));
    return 0;
}

/* An array section of the config file: each element goes to put(fc, element[id_key], e). */
static int
load_array(struct fc_config *fc, struct json_object *doc, const char *section, const char *id_key,
           int (*put)(struct fc_config *, const char *, struct json_object *, char *, size_t),
           char *err, size_t errlen)
{
    struct json_object *arr, *idv;
    if (!json_object_object_get_ex(doc, section, &arr))
        return 0;
    if (!json_object_is_type(arr, json_type_array))
        return qk_fail(err, errlen, "\"%s\" must be an array", section);
    for (size_t i = 0; i < json_object_array_length(arr); i++) {
        struct json_object *e = json_object_array_get_idx(arr, i);
        const char *id =
            json_object_object_get_ex(e, id_key, &idv) ? json_object_get_string(idv) : NULL;
        if (put(fc, id, e, err, errlen) < 0)
            return -1;
    }
    return 0;
}

/* The whole document (freed here); path names it in the messages. */
static int load_doc(struct fc_config *fc, struct json_object *doc, const char *path,
                    struct json_object **logger, struct json_object **metrics, char *err,
                    size_t errlen)
{
    char why[FC_PATH_MAX + 200] = "";
    int rc = -1;
    *logger = *metrics = NULL;
    static const char *const known[] = {
        "boot-source", "machine-config", "drives",  "network-interfaces",
        "vsock",       "logger",         "metrics", NULL};
    struct json_object *sec;
    if (check_fields(doc, known, why, sizeof(why)) < 0)
        goto out;
    if (!json_object_object_get_ex(doc, "boot-source", &sec)) {
        snprintf(why, sizeof(why), "no \"boot-source\" section");
        goto out;
    }
    if (fc_put_boot_source(fc, sec, why, sizeof(why)) < 0)
        goto out;
    if (json_object_object_get_ex(doc, "machine-config", &sec) &&
        fc_put_machine_config(fc, sec, why, sizeof(why)) < 0)
        goto out;
    if (load_array(fc, doc, "drives", "drive_id", fc_put_drive, why, sizeof(why)) < 0 ||
        load_array(fc, doc, "network-interfaces", "iface_id", fc_put_net, why, sizeof(why)) < 0)
        goto out;
    if (json_object_object_get_ex(doc, "vsock", &sec) &&
        fc_put_vsock(fc, sec, why, sizeof(why)) < 0)
        goto out;
    *logger = json_object_object_get_ex(doc, "logger", &sec) ? json_object_get(sec) : NULL;
    *metrics = json_object_object_get_ex(doc, "metrics", &sec) ? json_object_get(sec) : NULL;
    rc = 0;
out:
    if (rc < 0)
        qk_fail(err, errlen, "--config-file '%s': %s", path, why);
    json_object_put(doc);
    return rc;
}

int fc_load_file(struct fc_config *fc, const char *path, struct json_object **logger,
                 struct json_object **metrics, char *err, size_t errlen)
{
    struct json_object *doc = json_object_from_file(path);
    if (!doc)
        return qk_fail(err, errlen, "--config-file '%s': %s", path, json_util_get_last_err());
    return load_doc(fc, doc, path, logger, metrics, err, errlen);
}

int fc_load_text(struct fc_config *fc, const char *text, size_t len, struct json_object **logger,
                 struct json_object **metrics, char *err, size_t errlen)
{
    char why[200];
    struct json_object *doc = serde_parse(text, len, why, sizeof(why));
    if (!doc)
        return qk_fail(err, errlen, "--config-file: %s", why);
    return load_doc(fc, doc, "(text)", logger, metrics, err, errlen);
}

/* A path inside a key=value option string: commas doubled (opts.h's escape). */
static int escape_commas(char *out, size_t len, const char *path)
{
    size_t o = 0;
    for (const char *p = path; *p; p++) {
        if (o + 3 > len)
            return -1;
        if (*p == ',')
            out[o++] = ',';
        out[o++] = *p;
    }
    out[o] = '\0';
    return 0;
}

static int add_request(struct machine_config *cfg, const char *model, const char *opts,
                       const char *flag, char *err, size_t errlen)
{
    if (cfg->nr_devices == MACHINE_MAX_DEVICE_REQUESTS)
        return qk_fail(err, errlen, "at most %d devices", MACHINE_MAX_DEVICE_REQUESTS);
    struct device_request *r = &cfg->devices[cfg->nr_devices++];
    snprintf(r->model, sizeof(r->model), "%s", model);
    r->opts = opts;
    r->flag = flag;
    return 0;
}

static int build_drives(struct fc_config *fc, struct machine_config *cfg, unsigned *slot, char *err,
                        size_t errlen)
{
    /* The root device is /dev/vda: it comes first, as on Firecracker. */
    for (int pass = 0; pass < 2; pass++)
        for (unsigned i = 0; i < fc->nr_drives; i++) {
            const struct fc_drive *d = &fc->drives[i];
            if (d->root != (pass == 0))
                continue;
            char path[2 * FC_PATH_MAX];
            char *opts = fc->dev_opts[*slot];
            if (escape_commas(path, sizeof(path), d->path) < 0 ||
                (size_t)snprintf(opts, sizeof(fc->dev_opts[0]), "path=%s%s", path,
                                 d->read_only ? ",readonly=on" : "") >= sizeof(fc->dev_opts[0]))
                return qk_fail(err, errlen, "drive '%s': path too long", d->id);
            if (add_request(cfg, "virtio-blk", opts, "drives", err, errlen) < 0)
                return -1;
            (*slot)++;
        }
    return 0;
}

static int build_nets(struct fc_config *fc, struct machine_config *cfg, unsigned *slot, char *err,
                      size_t errlen)
{
    for (unsigned i = 0; i < fc->nr_nets; i++) {
        const struct fc_net copy = fc->nets[i], *n = &copy; /* not inside fc: no overlap */
        char *opts = fc->dev_opts[*slot];
        size_t len = sizeof(fc->dev_opts[0]);
        /* id= first: the iface id a snapshot load's network_overrides names */
        int used = n->user_mode ? snprintf(opts, len, "id=%s,user", n->id)
                                : snprintf(opts, len, "id=%s,tap=%s", n->id, n->host_dev_name);
        if (n->mac[0])
            used += snprintf(opts + used, len - (size_t)used, ",mac=%s", n->mac);
        for (unsigned f = 0; f < n->nr_hostfwd; f++)
            used += snprintf(opts + used, len - (size_t)used, ",hostfwd=%s", n->hostfwd[f]);
        if (add_request(cfg, "virtio-net", opts, "network-interfaces", err, errlen) < 0)
            return -1;
        (*slot)++;
    }
    return 0;
}

int fc_build(struct fc_config *fc, const struct machine_config *base, struct machine_config *cfg,
             char *err, size_t errlen)
{
    if (!fc->has_kernel)
        return qk_fail(err, errlen,
                       "Start microvm error: Cannot start microvm without kernel configuration.");
    *cfg = *base;
    cfg->kernel_path = fc->kernel;
    cfg->initrd_path = fc->initrd[0] ? fc->initrd : NULL;
    cfg->nr_vcpus = fc->vcpu_count;
    cfg->mem_size = fc->mem_size_mib << 20;
    cfg->accel = fc->accel;
    const struct fc_drive *root = NULL;
    for (unsigned i = 0; i < fc->nr_drives; i++)
        if (fc->drives[i].root)
            root = &fc->drives[i];
    /* As Firecracker does for a root drive without partuuid: root=/dev/vda ro|rw appended.
     * (cmdline is larger than boot_args can be: memcpy cannot overflow.) */
    const char *args = fc->has_boot_args ? fc->boot_args : FC_DEFAULT_BOOT_ARGS;
    size_t n = strnlen(args, FC_CMDLINE_MAX - 1);
    memcpy(fc->cmdline, args, n);
    snprintf(fc->cmdline + n, sizeof(fc->cmdline) - n, "%s%s", root ? " root=/dev/vda " : "",
             root ? (root->read_only ? "ro" : "rw") : "");
    cfg->cmdline = fc->cmdline;
    unsigned slot = 0;
    if (build_drives(fc, cfg, &slot, err, errlen) < 0 ||
        build_nets(fc, cfg, &slot, err, errlen) < 0)
        return -1;
    if (fc->has_vsock) {
        char path[2 * FC_PATH_MAX];
        char *opts = fc->dev_opts[slot];
        if (escape_commas(path, sizeof(path), fc->vsock_uds) < 0 ||
            (size_t)snprintf(opts, sizeof(fc->dev_opts[0]), "cid=%u,path=%s", fc->vsock_cid,
                             path) >= sizeof(fc->dev_opts[0]))
            return qk_fail(err, errlen, "vsock: uds_path too long");
        if (add_request(cfg, "virtio-vsock", opts, "vsock", err, errlen) < 0)
            return -1;
    }
    return 0;
}
