/* Firecracker's API over a Unix socket (libmicrohttpd for HTTP, json-c for JSON).
 *
 * Threads: libmicrohttpd's one polling thread runs every handler; the main thread owns the
 * machine's lifetime (create, start, the I/O loop, destroy). A handler that needs the main
 * thread (InstanceStart) hands it the request and waits for the answer; pause/resume wait for
 * the vCPU rendezvous. Nothing here runs on a vCPU thread or holds a lock a vCPU takes.
 * api->lock guards the configuration, the state and the machine pointer. */
#include "api/api.h"

#include "api/api_internal.h"
#include "api/serde_msg.h"
#include "util/log.h"
#include "vm/sandbox.h"
#include "vm/snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#ifndef QUOKKA_VERSION
#define QUOKKA_VERSION "dev"
#endif

/* Firecracker's limit on a request body (http_api_max_payload_size's default). */
#define API_MAX_BODY 51200

/* Firecracker's message for a body its JSON schema (serde) rejects. */
#define SERDE_PREFIX "An error occurred when deserializing the json body of a request: "

#define MSG_POST_BOOT "The requested operation is not supported after starting the microVM."
#define MSG_PRE_BOOT "The requested operation is not supported before starting the microVM."

/* --- responses ------------------------------------------------------------------------------ */

struct reply {
    unsigned status;
    char *body; /* malloc'd JSON, or NULL (204 and empty bodies) */
};

static struct reply reply_empty(void)
{
    return (struct reply){MHD_HTTP_NO_CONTENT, NULL};
}

static struct reply reply_json(unsigned status, struct json_object *o)
{
    struct reply r = {status, strdup(json_object_to_json_string_ext(
                                  o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE))};
    json_object_put(o);
    return r;
}

/* {"fault_message": msg}, Firecracker's error body. */
static struct reply reply_fault(unsigned status, const char *msg)
{
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "fault_message", json_object_new_string(msg));
    return reply_json(status, o);
}

static struct reply reply_bad(const char *msg)
{
    return reply_fault(MHD_HTTP_BAD_REQUEST, msg);
}

/* --- logger and metrics --------------------------------------------------------------------- */

static const char *const level_names[] = {"Off", "Error", "Warning", "Info", "Debug", "Trace"};

/* Firecracker opens the target nonblocking and without creating it (a FIFO or a file). */
static int open_target(const char *path, char *why, size_t len)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        qk_fail(why, len, "%s (os error %d)", strerror(errno), errno);
    return fd;
}

void api_log(struct api_server *api, int level, const char *fmt, ...)
{
    if (api->log_fd < 0 || level > api->log_level || level == 0)
        return;
    char line[1024];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int n = snprintf(line, sizeof(line), "%lld.%09ld [anonymous-instance%s%s] ",
                     (long long)ts.tv_sec, ts.tv_nsec, api->log_show_level ? ":" : "",
                     api->log_show_level ? level_names[level] : "");
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof(line))
        n += vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(line) - 1)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    if (write(api->log_fd, line, (size_t)n) < 0) {
        /* a full FIFO drops the line, as Firecracker's nonblocking logger does */
    }
}

static struct reply put_logger(struct api_server *api, struct json_object *body)
{
    if (api->state != API_NOT_STARTED)
        return reply_bad(MSG_POST_BOOT);
    struct json_object *v;
    int level = 3;
    if (json_object_object_get_ex(body, "level", &v)) {
        const char *name = json_object_get_string(v);
        level = -1;
        for (int i = 0; i < 6; i++)
            if (name && !strcasecmp(name, level_names[i]))
                level = i;
        if (level < 0)
            return reply_bad("An error occurred when deserializing the json body of a request: "
                             "unknown variant for `level`.");
    }
    char why[200];
    int fd = -1;
    if (json_object_object_get_ex(body, "log_path", &v)) {
        fd = open_target(json_object_get_string(v), why, sizeof(why));
        if (fd < 0) {
            char msg[300];
            snprintf(msg, sizeof(msg), "Logger error: Failed to open target file: %s", why);
            return reply_bad(msg);
        }
    }
    if (fd >= 0) {
        if (api->log_fd >= 0)
            close(api->log_fd);
        api->log_fd = fd;
    }
    api->log_level = level;
    api->log_show_level =
        json_object_object_get_ex(body, "show_level", &v) && json_object_get_boolean(v);
    api_log(api, 3, "Logger configured (level %s)", level_names[level]);
    return reply_empty();
}

static struct reply put_metrics(struct api_server *api, struct json_object *body)
{
    if (api->state != API_NOT_STARTED)
        return reply_bad(MSG_POST_BOOT);
    if (api->metrics_fd >= 0)
        return reply_bad("Metrics error: Reinitialization of metrics not allowed.");
    struct json_object *v;
    if (!json_object_object_get_ex(body, "metrics_path", &v) ||
        !json_object_is_type(v, json_type_string))
        return reply_bad("An error occurred when deserializing the json body of a request: "
                         "missing field `metrics_path`.");
    char why[200], msg[300];
    api->metrics_fd = open_target(json_object_get_string(v), why, sizeof(why));
    if (api->metrics_fd < 0) {
        snprintf(msg, sizeof(msg), "Metrics error: Failed to open target file: %s", why);
        return reply_bad(msg);
    }
    return reply_empty();
}

static const char *state_name(enum api_state s)
{
    switch (s) {
    case API_NOT_STARTED:
    case API_STARTING:
        return "Not started";
    case API_PAUSED:
        return "Paused";
    default:
        return "Running";
    }
}

/* One JSON line of counters, like Firecracker's metrics (its own field set is larger). */
static void flush_metrics(struct api_server *api)
{
    if (api->metrics_fd < 0)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct json_object *o = json_object_new_object(), *a = json_object_new_object();
    json_object_object_add(o, "utc_timestamp_ms",
                           json_object_new_int64((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000));
    json_object_object_add(a, "requests", json_object_new_int64((int64_t)api->requests));
    json_object_object_add(a, "errors", json_object_new_int64((int64_t)api->errors));
    json_object_object_add(o, "api_server", a);
    struct json_object *vm = json_object_new_object();
    json_object_object_add(vm, "state", json_object_new_string(state_name(api->state)));
    if (api->machine) {
        json_object_object_add(vm, "accelerator",
                               json_object_new_string(machine_accel_name(api->machine)));
        json_object_object_add(vm, "guest_clock_ns",
                               json_object_new_int64((int64_t)machine_guest_ns(api->machine)));
    }
    if (api->load_ns)
        json_object_object_add(vm, "snapshot_load_us",
                               json_object_new_int64((int64_t)(api->load_ns / 1000)));
    json_object_object_add(o, "vm", vm);
    const char *s =
        json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    size_t len = strlen(s);
    char *line = malloc(len + 2);
    if (line) {
        memcpy(line, s, len);
        line[len] = '\n';
        if (write(api->metrics_fd, line, len + 1) < 0) {
            /* a full FIFO drops the line */
        }
        free(line);
    }
    json_object_put(o);
}

/* --- actions and state ---------------------------------------------------------------------- */

static struct reply hand_to_main(struct api_server *api);

/* Hands the start to the main thread and waits for its answer. Called with api->lock held. */
static struct reply instance_start(struct api_server *api)
{
    if (api->state != API_NOT_STARTED)
        return reply_bad(MSG_POST_BOOT);
    api->load = false;
    return hand_to_main(api);
}

/* Called with api->lock held: the main thread boots or restores, this thread waits. */
static struct reply hand_to_main(struct api_server *api)
{
    if (api->no_main_thread) {
        api->state = API_NOT_STARTED;
        return reply_bad("no main thread to start the VM (test entry)");
    }
    api->state = API_STARTING;
    api->start_requested = true;
    api->start_done = false;
    pthread_cond_broadcast(&api->cond);
    while (!api->start_done)
        pthread_cond_wait(&api->cond, &api->lock);
    if (api->state == API_NOT_STARTED)
        return reply_bad(api->start_error);
    return reply_empty();
}

/* The raw body of the request being handled, for serde's positions (api->lock held). */
static struct serde_at body_at(const struct api_server *api, const char *const *path,
                               unsigned npath)
{
    return (struct serde_at){api->body_text, api->body_len, path, npath};
}

/* A string member: NULL when absent; *bad set when present but not a string. */
static const char *member_str(struct json_object *o, const char *key, bool *bad)
{
    struct json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null))
        return NULL;
    if (!json_object_is_type(v, json_type_string)) {
        *bad = true;
        return NULL;
    }
    return json_object_get_string(v);
}

/* PUT /snapshot/create: a paused VM's state and memory files (Full only). */
static struct reply snapshot_create(struct api_server *api, struct json_object *body)
{
    static const char *const known[] = {"snapshot_type", "snapshot_path", "mem_file_path", NULL};
    struct serde_at top = body_at(api, NULL, 0);
    char why[FC_PATH_MAX + 200], msg[FC_PATH_MAX + 300];
    bool bad = false;
    if (!json_object_is_type(body, json_type_object))
        return reply_bad(SERDE_PREFIX "invalid type: expected struct CreateSnapshotParams.");
    if (serde_unknown_fields(&top, body, known, why, sizeof(why)) < 0)
        return reply_bad(why);
    const char *state = member_str(body, "snapshot_path", &bad);
    const char *mem = member_str(body, "mem_file_path", &bad);
    const char *type = member_str(body, "snapshot_type", &bad);
    if (bad)
        return reply_bad(SERDE_PREFIX "invalid type: expected a string.");
    if (!state || !mem) {
        serde_missing_field(&top, !state ? "snapshot_path" : "mem_file_path", why, sizeof(why));
        return reply_bad(why);
    }
    if (type && strcmp(type, "Full") != 0)
        return reply_bad("The requested operation is not supported: Diff snapshots");
    if (!api->machine)
        return reply_bad(MSG_PRE_BOOT);
    if (machine_snapshot_create(api->machine, state, mem, why, sizeof(why)) < 0) {
        snprintf(msg, sizeof(msg), "Create snapshot error: %s", why);
        return reply_bad(msg);
    }
    api_log(api, 3, "Snapshot created: %s (memory %s)", state, mem);
    return reply_empty();
}

/* mem_backend {backend_path, backend_type} (deny_unknown_fields): its path, or NULL with the
 * reply in *r. */
static const char *mem_backend(struct api_server *api, struct json_object *backend, struct reply *r)
{
    static const char *const known[] = {"backend_path", "backend_type", NULL};
    static const char *const path[] = {"mem_backend"};
    struct serde_at at = body_at(api, path, 1);
    char why[FC_PATH_MAX + 200];
    bool bad = false;
    if (!json_object_is_type(backend, json_type_object)) {
        *r = reply_bad(SERDE_PREFIX "invalid type: expected struct MemBackendConfig.");
        return NULL;
    }
    if (serde_unknown_fields(&at, backend, known, why, sizeof(why)) < 0) {
        *r = reply_bad(why);
        return NULL;
    }
    const char *mem = member_str(backend, "backend_path", &bad);
    const char *type = member_str(backend, "backend_type", &bad);
    if (bad || !mem || !type) {
        if (bad)
            snprintf(why, sizeof(why), SERDE_PREFIX "invalid type: expected a string.");
        else
            serde_missing_field(&at, !mem ? "backend_path" : "backend_type", why, sizeof(why));
        *r = reply_bad(why);
        return NULL;
    }
    if (strcmp(type, "File") != 0) {
        *r = reply_bad(strcmp(type, "Uffd") ? SERDE_PREFIX "unknown variant, expected `File` or "
                                                           "`Uffd`."
                                            : "The requested operation is not supported: memory "
                                              "backend other than File");
        return NULL;
    }
    return mem;
}

/* PUT /snapshot/load: before anything was configured, as on Firecracker. */
static struct reply snapshot_load(struct api_server *api, struct json_object *body)
{
    static const char *const known[] = {"snapshot_path",
                                        "mem_file_path",
                                        "mem_backend",
                                        "enable_diff_snapshots",
                                        "track_dirty_pages",
                                        "resume_vm",
                                        "network_overrides",
                                        "vsock_override",
                                        "clock_realtime",
                                        "huge_pages",
                                        NULL};
    struct serde_at top = body_at(api, NULL, 0);
    struct json_object *v, *backend;
    char why[FC_PATH_MAX + 200];
    bool bad = false;
    struct reply r = {0, NULL};
    if (!json_object_is_type(body, json_type_object))
        return reply_bad(SERDE_PREFIX "invalid type: expected struct LoadSnapshotConfig.");
    if (serde_unknown_fields(&top, body, known, why, sizeof(why)) < 0)
        return reply_bad(why);
    const char *state = member_str(body, "snapshot_path", &bad);
    const char *mem = member_str(body, "mem_file_path", &bad);
    if (bad)
        return reply_bad(SERDE_PREFIX "invalid type: expected a string.");
    bool has_backend = json_object_object_get_ex(body, "mem_backend", &backend) &&
                       !json_object_is_type(backend, json_type_null);
    if (has_backend && !(mem = mem_backend(api, backend, &r)))
        return r;
    if (!state) {
        serde_missing_field(&top, "snapshot_path", why, sizeof(why));
        return reply_bad(why);
    }
    if (has_backend && member_str(body, "mem_file_path", &bad))
        return reply_bad(SERDE_PREFIX "too many fields: either `mem_backend` or "
                                      "`mem_file_path` exclusively is required.");
    if (!mem)
        return reply_bad(SERDE_PREFIX "missing field: either `mem_backend` or "
                                      "`mem_file_path` is required.");
    if (api_parse_overrides(api, body, &api->load_overrides, why, sizeof(why)) < 0)
        return reply_bad(why);
    if (api->state != API_NOT_STARTED)
        return reply_bad(MSG_POST_BOOT);
    if (api->configured)
        return reply_bad("Load snapshot error: Loading a microVM snapshot not allowed after "
                         "configuring boot-specific resources.");
    if (strlen(state) >= sizeof(api->load_state) || strlen(mem) >= sizeof(api->load_mem))
        return reply_bad("Load snapshot error: path too long");
    snprintf(api->load_state, sizeof(api->load_state), "%s", state);
    snprintf(api->load_mem, sizeof(api->load_mem), "%s", mem);
    api->load_resume =
        json_object_object_get_ex(body, "resume_vm", &v) && json_object_get_boolean(v);
    api->load = true;
    return hand_to_main(api);
}

static struct reply api_put_snapshot(struct api_server *api, const char *what,
                                     struct json_object *body)
{
    if (!strcmp(what, "create"))
        return snapshot_create(api, body);
    if (!strcmp(what, "load"))
        return snapshot_load(api, body);
    return (struct reply){0, NULL};
}

/* A Firecracker body that is a struct with one required enum member, `key` (ActionBody,
 * Vm): its string, or NULL with *fail the 400 serde's rules give (not an object, unknown
 * field, wrong type, missing). */
static const char *one_enum_member(struct api_server *api, struct json_object *body,
                                   const char *key, const char *struct_name, const char *enum_name,
                                   struct reply *fail)
{
    const char *const known[] = {key, NULL};
    struct serde_at top = body_at(api, NULL, 0);
    char err[300];
    bool bad = false;
    if (!json_object_is_type(body, json_type_object)) {
        snprintf(err, sizeof(err), SERDE_PREFIX "invalid type: expected struct %s.", struct_name);
        *fail = reply_bad(err);
        return NULL;
    }
    if (serde_unknown_fields(&top, body, known, err, sizeof(err)) < 0) {
        *fail = reply_bad(err);
        return NULL;
    }
    const char *value = member_str(body, key, &bad);
    if (bad) {
        snprintf(err, sizeof(err), SERDE_PREFIX "invalid type: expected enum %s.", enum_name);
        *fail = reply_bad(err);
        return NULL;
    }
    if (!value) {
        serde_missing_field(&top, key, err, sizeof(err));
        *fail = reply_bad(err);
    }
    return value;
}

static struct reply put_actions(struct api_server *api, struct json_object *body)
{
    struct reply fail;
    char err[300];
    const char *action =
        one_enum_member(api, body, "action_type", "ActionBody", "ActionType", &fail);
    if (!action)
        return fail;
    if (!strcmp(action, "InstanceStart"))
        return instance_start(api);
    if (strcmp(action, "SendCtrlAltDel") && strcmp(action, "FlushMetrics")) {
        snprintf(err, sizeof(err),
                 SERDE_PREFIX
                 "unknown variant `%.100s`, expected one of `FlushMetrics`, `InstanceStart`, "
                 "`SendCtrlAltDel`.",
                 action);
        return reply_bad(err);
    }
    if (!api->machine)
        return reply_bad(MSG_PRE_BOOT);
    if (!strcmp(action, "FlushMetrics")) {
        flush_metrics(api);
        return reply_empty();
    }
    char why[200];
    if (machine_send_ctrl_alt_del(api->machine, why, sizeof(why)) < 0) {
        snprintf(err, sizeof(err), "Internal VMM error: %s", why);
        return reply_bad(err);
    }
    return reply_empty();
}

static struct reply patch_vm(struct api_server *api, struct json_object *body)
{
    struct reply fail;
    char why[200], err[300];
    const char *want = one_enum_member(api, body, "state", "Vm", "VmState", &fail);
    if (!want)
        return fail;
    bool pause = !strcmp(want, "Paused");
    if (!pause && strcmp(want, "Resumed")) {
        snprintf(err, sizeof(err),
                 SERDE_PREFIX "unknown variant `%.100s`, expected `Paused` or `Resumed`.", want);
        return reply_bad(err);
    }
    if (!api->machine)
        return reply_bad(MSG_PRE_BOOT);
    int rc = pause ? machine_pause(api->machine, why, sizeof(why))
                   : machine_resume(api->machine, why, sizeof(why));
    if (rc < 0) {
        snprintf(err, sizeof(err), "Internal VMM error: %s", why);
        return reply_bad(err);
    }
    api->state = pause ? API_PAUSED : API_RUNNING;
    api_log(api, 3, "VM %s", pause ? "paused" : "resumed");
    return reply_empty();
}

static struct reply get_instance_info(struct api_server *api)
{
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_string("anonymous-instance"));
    json_object_object_add(o, "state", json_object_new_string(state_name(api->state)));
    json_object_object_add(o, "vmm_version", json_object_new_string(QUOKKA_VERSION));
    json_object_object_add(o, "app_name", json_object_new_string("quokka"));
    return reply_json(MHD_HTTP_OK, o);
}

/* --- routing ------------------------------------------------------------------------------- */

typedef int (*fc_put_fn)(struct fc_config *, struct json_object *, char *, size_t);

/* A pre-boot configuration PUT. */
static struct reply put_config(struct api_server *api, fc_put_fn put, struct json_object *body)
{
    if (api->state != API_NOT_STARTED)
        return reply_bad(MSG_POST_BOOT);
    char err[FC_PATH_MAX + 300];
    if (put(api->fc, body, err, sizeof(err)) < 0)
        return reply_bad(err);
    api->configured = true;
    return reply_empty();
}

static struct reply put_with_id(struct api_server *api, const char *id,
                                int (*put)(struct fc_config *, const char *, struct json_object *,
                                           char *, size_t),
                                struct json_object *body)
{
    if (api->state != API_NOT_STARTED)
        return reply_bad(MSG_POST_BOOT);
    char err[FC_PATH_MAX + 300];
    if (put(api->fc, id, body, err, sizeof(err)) < 0)
        return reply_bad(err);
    api->configured = true;
    return reply_empty();
}

/* "/drives/x" -> resource "drives", id "x" (NULL when absent); a third segment is refused. */
static void split_path(const char *url, char *res, size_t reslen, char *id, size_t idlen,
                       bool *extra)
{
    while (*url == '/')
        url++;
    const char *slash = strchr(url, '/');
    size_t n = slash ? (size_t)(slash - url) : strlen(url);
    snprintf(res, reslen, "%.*s", (int)n, url);
    id[0] = '\0';
    *extra = false;
    if (!slash)
        return;
    const char *rest = slash + 1;
    const char *slash2 = strchr(rest, '/');
    size_t m = slash2 ? (size_t)(slash2 - rest) : strlen(rest);
    snprintf(id, idlen, "%.*s", (int)m, rest);
    *extra = slash2 && slash2[1];
}

static struct reply route_put(struct api_server *api, const char *res, const char *id,
                              struct json_object *body)
{
    if (!strcmp(res, "actions"))
        return put_actions(api, body);
    if (!strcmp(res, "boot-source"))
        return put_config(api, fc_put_boot_source, body);
    if (!strcmp(res, "machine-config"))
        return put_config(api, fc_put_machine_config, body);
    if (!strcmp(res, "vsock"))
        return put_config(api, fc_put_vsock, body);
    if (!strcmp(res, "drives"))
        return put_with_id(api, id, fc_put_drive, body);
    if (!strcmp(res, "network-interfaces"))
        return put_with_id(api, id, fc_put_net, body);
    if (!strcmp(res, "logger"))
        return put_logger(api, body);
    if (!strcmp(res, "metrics"))
        return put_metrics(api, body);
    if (!strcmp(res, "snapshot"))
        return api_put_snapshot(api, id, body);
    return (struct reply){0, NULL};
}

static struct reply route(struct api_server *api, const char *method, const char *url,
                          const char *body_text, size_t body_len)
{
    char res[64], id[FC_ID_MAX + 8], msg[400];
    bool extra;
    split_path(url, res, sizeof(res), id, sizeof(id), &extra);
    bool get = !strcmp(method, "GET"), put = !strcmp(method, "PUT"),
         patch = !strcmp(method, "PATCH");
    if (get && body_len)
        return reply_bad("GET request cannot have a body.");
    if ((put || patch) && !body_len)
        return reply_bad(put ? "Empty PUT request." : "Empty PATCH request.");
    if (get && !res[0])
        return get_instance_info(api);
    if (get && !strcmp(res, "machine-config") && api->snap_cfg) {
        /* a restored machine: what the snapshot says */
        struct json_object *o = fc_get_machine_config(api->fc);
        json_object_object_add(o, "vcpu_count",
                               json_object_new_int((int)api->snap_cfg->cfg.nr_vcpus));
        json_object_object_add(o, "mem_size_mib",
                               json_object_new_int64((int64_t)(api->snap_cfg->cfg.mem_size >> 20)));
        static const char *const names[] = {"auto", "kvm", "tcg"};
        json_object_object_add(o, "accelerator",
                               json_object_new_string(names[api->snap_cfg->cfg.accel]));
        return reply_json(MHD_HTTP_OK, o);
    }
    if (get && !strcmp(res, "machine-config"))
        return reply_json(MHD_HTTP_OK, fc_get_machine_config(api->fc));
    if (get && !strcmp(res, "version")) {
        struct json_object *o = json_object_new_object();
        json_object_object_add(o, "firecracker_version", json_object_new_string(QUOKKA_VERSION));
        return reply_json(MHD_HTTP_OK, o);
    }
    if ((put || patch) && !extra) {
        char why[200];
        struct json_object *body = serde_parse(body_text, body_len, why, sizeof(why));
        if (!body) {
            snprintf(msg, sizeof(msg), SERDE_PREFIX "%s.", why);
            return reply_bad(msg);
        }
        struct reply r = {0, NULL};
        api->body_text = body_text;
        api->body_len = body_len;
        if (put)
            r = route_put(api, res, id, body);
        else if (!strcmp(res, "vm") && !id[0])
            r = patch_vm(api, body);
        json_object_put(body);
        api->body_text = NULL;
        api->body_len = 0;
        if (r.status)
            return r;
    }
    snprintf(msg, sizeof(msg), "Invalid request method and/or path: %s %s.", method, res);
    return reply_bad(msg);
}

/* --- libmicrohttpd glue --------------------------------------------------------------------- */

struct request_body {
    char data[API_MAX_BODY];
    size_t len;
    bool too_large;
};

static enum MHD_Result send_reply(struct MHD_Connection *conn, struct reply r)
{
    const char *text = r.body ? r.body : "";
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY);
    if (r.body)
        MHD_add_response_header(resp, "Content-Type", "application/json");
    MHD_add_response_header(resp, "Server", "Firecracker API");
    enum MHD_Result ret = MHD_queue_response(conn, r.status, resp);
    MHD_destroy_response(resp);
    free(r.body);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **con_cls)
{
    (void)version;
    struct api_server *api = cls;
    struct request_body *rb = *con_cls;
    if (!rb) {
        rb = calloc(1, sizeof(*rb));
        if (!rb)
            return MHD_NO;
        *con_cls = rb;
        return MHD_YES;
    }
    if (*upload_size) {
        if (rb->len + *upload_size > sizeof(rb->data))
            rb->too_large = true;
        else
            memcpy(rb->data + rb->len, upload_data, *upload_size);
        if (!rb->too_large)
            rb->len += *upload_size;
        *upload_size = 0;
        return MHD_YES;
    }
    struct reply r;
    if (rb->too_large) {
        char msg[120];
        snprintf(msg, sizeof(msg),
                 "Request payload with size %zu is larger than the limit of "
                 "%d allowed by server.",
                 rb->len, API_MAX_BODY);
        r = reply_fault(MHD_HTTP_CONTENT_TOO_LARGE, msg);
    } else {
        sandbox_enter_or_die(SANDBOX_API); /* already on since the connection started */
        pthread_mutex_lock(&api->lock);
        api_log(api, 3, "The API server received a %s request on \"%s\".", method, url);
        r = route(api, method, url, rb->data, rb->len);
        api->requests++;
        if (r.status >= 400) {
            api->errors++;
            api_log(api, 1, "Received Error. Status code: %u. Message: %s", r.status,
                    r.body ? r.body : "");
        }
        pthread_mutex_unlock(&api->lock);
    }
    return send_reply(conn, r);
}

/* The HTTP thread's filter goes on as it takes its first connection, before it reads a byte
 * a client sent (MHD gives no hook at the thread's start; until then it only polls the
 * listening socket). It then stays for the process's life: pre-boot configuration, start,
 * pause, snapshot files, logger and metrics all run within the API allow-list. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    (void)cls, (void)conn, (void)socket_context;
    static _Thread_local bool entered;
    if (code == MHD_CONNECTION_NOTIFY_STARTED && !entered) {
        pthread_setname_np(pthread_self(), "api"); /* prctl: not in the API list */
        sandbox_enter_or_die(SANDBOX_API);
        entered = true;
    }
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode code)
{
    (void)cls, (void)conn, (void)code;
    free(*con_cls);
    *con_cls = NULL;
}

/* A listening Unix socket; an existing path is an error, as on Firecracker. */
static int listen_unix(const char *path, char *err, size_t errlen)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path))
        return qk_fail(err, errlen, "--api-sock '%s': path longer than %zu bytes", path,
                       sizeof(sa.sun_path) - 1);
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return qk_fail(err, errlen, "--api-sock: socket: %s", strerror(errno));
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 16) < 0) {
        int e = errno;
        close(fd);
        return qk_fail(err, errlen, "--api-sock '%s': %s%s", path, strerror(e),
                       e == EADDRINUSE ? " (remove the stale socket file)" : "");
    }
    return fd;
}

static int start_http(struct api_server *api, const char *path, char *err, size_t errlen)
{
    int fd = listen_unix(path, err, errlen);
    if (fd < 0)
        return -1;
    api->sock_path = path;
    /* The server thread takes no terminal signals: they belong to the main thread. */
    sigset_t sigs, old;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, &old);
    api->daemon =
        MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL, 0, NULL, NULL, on_request,
                         api, MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_NOTIFY_COMPLETED,
                         on_completed, api, MHD_OPTION_NOTIFY_CONNECTION, on_connection, api,
                         MHD_OPTION_CONNECTION_LIMIT, 64u, MHD_OPTION_END);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!api->daemon) {
        close(fd);
        unlink(path);
        return qk_fail(err, errlen, "--api-sock '%s': cannot start the HTTP server", path);
    }
    return 0;
}

/* --- the main thread ------------------------------------------------------------------------ */

/* Build, create and start the machine (main thread). NULL with Firecracker's message in err
 * and the exit status quokka would end with in *status. cfg must outlive the machine. */
static struct machine *boot(struct api_server *api, struct machine_config *cfg, int *status,
                            char *err, size_t errlen)
{
    pthread_mutex_lock(&api->lock);
    int rc = fc_build(api->fc, api->base, cfg, err, errlen);
    pthread_mutex_unlock(&api->lock);
    *status = EXIT_USAGE;
    if (rc < 0)
        return NULL;
    char why[1024];
    struct machine *m = machine_create(cfg, status, why, sizeof(why));
    if (m && machine_start(m, false, why, sizeof(why)) < 0) {
        machine_destroy(m, true);
        *status = EXIT_HOST_FAILURE;
        m = NULL;
    }
    if (!m)
        qk_fail(err, errlen, "Start microvm error: %s", why);
    return m;
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* A snapshot into a fresh machine, started paused (resumed when asked). */
static struct machine *restore(struct api_server *api, int *status, char *err, size_t errlen)
{
    uint64_t t0 = mono_ns();
    struct snap_file f;
    char why[FC_PATH_MAX + 300];
    struct machine *m = NULL;
    *status = EXIT_USAGE;
    if (snap_file_load(&f, api->load_state, why, sizeof(why)) < 0) {
        qk_fail(err, errlen, "Load snapshot error: %s", why);
        return NULL;
    }
    struct snapshot_config *sc = calloc(1, sizeof(*sc));
    if (!sc || snapshot_config_read(&f, api->base, sc, why, sizeof(why)) < 0) {
        free(sc);
        snap_file_free(&f);
        qk_fail(err, errlen, "Load snapshot error: %s", sc ? why : "out of memory");
        return NULL;
    }
    if (api_apply_overrides(&api->load_overrides, sc, why, sizeof(why)) < 0) {
        snapshot_config_free(sc);
        free(sc);
        snap_file_free(&f);
        qk_fail(err, errlen, "Load snapshot error: %s", sc ? why : "out of memory");
        return NULL;
    }
    sc->cfg.restore_mem_path = api->load_mem;
    m = machine_create(&sc->cfg, status, why, sizeof(why));
    sc->cfg.restore = NULL; /* only read while creating */
    snap_file_free(&f);
    if (m && machine_start(m, true, why, sizeof(why)) < 0) {
        machine_destroy(m, true);
        m = NULL;
    }
    if (m && api->load_resume && machine_resume(m, why, sizeof(why)) < 0) {
        machine_stop(m, VM_STOP_ERROR, 0);
        machine_destroy(m, true);
        m = NULL;
    }
    if (!m) {
        snapshot_config_free(sc);
        free(sc);
        qk_fail(err, errlen, "Load snapshot error: %s", why);
        return NULL;
    }
    api->snap_cfg = sc;
    api->load_ns = mono_ns() - t0;
    return m;
}

/* A terminal signal already pending (they are blocked on every thread): its number, or 0. */
static int pending_signal(const sigset_t *sigs)
{
    const struct timespec zero = {0, 0};
    siginfo_t si;
    int sig = sigtimedwait(sigs, &si, &zero);
    return sig > 0 ? sig : 0;
}

/* Serve pre-boot requests until InstanceStart boots the VM (or a signal ends quokka). */
static struct machine *wait_for_start(struct api_server *api, struct machine_config *cfg,
                                      const sigset_t *sigs, int *status)
{
    for (;;) {
        pthread_mutex_lock(&api->lock);
        while (!api->start_requested) {
            struct timespec limit;
            clock_gettime(CLOCK_REALTIME, &limit);
            limit.tv_nsec += 100000000;
            if (limit.tv_nsec >= 1000000000) {
                limit.tv_sec++;
                limit.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&api->cond, &api->lock, &limit);
            int sig = api->start_requested ? 0 : pending_signal(sigs);
            if (sig) {
                pthread_mutex_unlock(&api->lock);
                qk_error("terminated by signal %d", sig);
                *status = 128 + sig;
                return NULL;
            }
        }
        pthread_mutex_unlock(&api->lock);
        char err[sizeof(api->start_error)];
        struct machine *m = api->load ? restore(api, status, err, sizeof(err))
                                      : boot(api, cfg, status, err, sizeof(err));
        pthread_mutex_lock(&api->lock);
        api->machine = m;
        api->state = !m                                       ? API_NOT_STARTED
                     : machine_get_state(m) == MACHINE_PAUSED ? API_PAUSED
                                                              : API_RUNNING;
        if (m && api->load)
            api_log(api, 3, "Snapshot loaded in %llu us",
                    (unsigned long long)(api->load_ns / 1000));
        if (!m)
            snprintf(api->start_error, sizeof(api->start_error), "%s", err);
        api_log(api, 3, m ? "Successfully started microvm" : "%s", err);
        api->start_requested = false;
        api->start_done = true;
        pthread_cond_broadcast(&api->cond);
        pthread_mutex_unlock(&api->lock);
        if (m)
            return m;
    }
}

/* The config file's logger/metrics sections, as PUT /logger and PUT /metrics take them. */
static int apply_sections(struct api_server *api, struct json_object *logger,
                          struct json_object *metrics, char *err, size_t errlen)
{
    struct reply r = {MHD_HTTP_NO_CONTENT, NULL};
    if (logger)
        r = put_logger(api, logger);
    if (r.status == MHD_HTTP_NO_CONTENT && metrics) {
        free(r.body);
        r = put_metrics(api, metrics);
    }
    int rc = r.status == MHD_HTTP_NO_CONTENT ? 0 : -1;
    if (rc < 0)
        qk_fail(err, errlen, "--config-file: %s", r.body ? r.body : "");
    free(r.body);
    return rc;
}

/* Everything but the allocations (api->fc, api->cfg), which are kept. */
static void api_init(struct api_server *api, const struct api_options *o)
{
    fc_config_init(api->fc, o->base, o->kernel_given);
    memset(api->cfg, 0, sizeof(*api->cfg));
    api->base = o->base;
    api->log_fd = api->metrics_fd = -1;
    api->log_level = 3;
    pthread_mutex_init(&api->lock, NULL);
    pthread_cond_init(&api->cond, NULL);
}

static struct api_server *api_new(const struct api_options *o)
{
    struct api_server *api = calloc(1, sizeof(*api));
    if (!api)
        return NULL;
    api->fc = malloc(sizeof(*api->fc));
    api->cfg = calloc(1, sizeof(*api->cfg));
    if (!api->fc || !api->cfg) {
        free(api->fc);
        free(api->cfg);
        free(api);
        return NULL;
    }
    api_init(api, o);
    return api;
}

static void api_free(struct api_server *api)
{
    if (api->daemon)
        MHD_stop_daemon(api->daemon);
    if (api->sock_path)
        unlink(api->sock_path);
    if (api->log_fd >= 0)
        close(api->log_fd);
    if (api->metrics_fd >= 0)
        close(api->metrics_fd);
    pthread_mutex_destroy(&api->lock);
    pthread_cond_destroy(&api->cond);
    if (api->snap_cfg)
        snapshot_config_free(api->snap_cfg);
    free(api->snap_cfg);
    free(api->fc);
    free(api->cfg);
    free(api);
}

int api_main(const struct api_options *o)
{
    struct api_server *api = api_new(o);
    if (!api) {
        qk_error("out of memory");
        return EXIT_HOST_FAILURE;
    }
    sigset_t sigs, old;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, &old);
    char err[FC_PATH_MAX + 600];
    int status = EXIT_USAGE;
    struct machine *m = NULL;
    struct json_object *logger = NULL, *metrics = NULL;
    if (o->config_file &&
        (fc_load_file(api->fc, o->config_file, &logger, &metrics, err, sizeof(err)) < 0 ||
         apply_sections(api, logger, metrics, err, sizeof(err)) < 0)) {
        qk_error("%s", err);
        goto out;
    }
    if (o->sock_path && start_http(api, o->sock_path, err, sizeof(err)) < 0) {
        qk_error("%s", err);
        status = EXIT_HOST_FAILURE;
        goto out;
    }
    if (o->config_file) {
        m = boot(api, api->cfg, &status, err, sizeof(err));
        if (!m) {
            qk_error("%s", err);
            goto out;
        }
        pthread_mutex_lock(&api->lock);
        api->machine = m;
        api->state = API_RUNNING;
        pthread_mutex_unlock(&api->lock);
    } else {
        m = wait_for_start(api, api->cfg, &sigs, &status);
        if (!m)
            goto out;
    }
    status = machine_wait(m);
    pthread_mutex_lock(&api->lock);
    api->machine = NULL;
    api->state = API_STOPPED;
    pthread_mutex_unlock(&api->lock);
    machine_destroy(m, false);
out:
    json_object_put(logger);
    json_object_put(metrics);
    api_free(api);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return status;
}

/* --- without HTTP (api_internal.h) ---------------------------------------------------------- */

struct api_server *api_test_new(const struct machine_config *base)
{
    struct api_options o = {.base = base};
    struct api_server *api = api_new(&o);
    if (api)
        api->no_main_thread = true;
    return api;
}

unsigned api_test_request(struct api_server *api, const char *method, const char *url,
                          const char *body, size_t len, char **reply)
{
    pthread_mutex_lock(&api->lock);
    struct reply r = route(api, method, url, body, len);
    pthread_mutex_unlock(&api->lock);
    *reply = r.body;
    return r.status;
}

void api_test_reset(struct api_server *api)
{
    struct fc_config *fc = api->fc;
    struct machine_config *cfg = api->cfg;
    struct api_options o = {.base = api->base};
    if (api->log_fd >= 0)
        close(api->log_fd);
    if (api->metrics_fd >= 0)
        close(api->metrics_fd);
    pthread_mutex_destroy(&api->lock);
    pthread_cond_destroy(&api->cond);
    memset(api, 0, sizeof(*api)); /* no machine nor snapshot configuration: no main thread */
    api->fc = fc;
    api->cfg = cfg;
    api_init(api, &o);
    api->no_main_thread = true;
}

int api_test_config(struct api_server *api, const char *text, size_t len, char *err, size_t errlen)
{
    struct json_object *logger = NULL, *metrics = NULL;
    int rc = fc_load_text(api->fc, text, len, &logger, &metrics, err, errlen);
    if (rc == 0)
        rc = apply_sections(api, logger, metrics, err, errlen);
    json_object_put(logger);
    json_object_put(metrics);
    return rc;
}

void api_test_free(struct api_server *api)
{
    api_free(api);
}
