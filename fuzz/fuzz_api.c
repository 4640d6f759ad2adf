/* libFuzzer target: the Firecracker-compatible API's requests (api/api_server.c's router and
 * handlers, api/fc_config.c's fc_put_* and the --config-file document, api/api_snapshot.c's
 * load overrides, api/serde_msg.c's messages), through api_test_request: the real routing
 * and JSON parsing, without HTTP, sockets or a main thread (InstanceStart and snapshot loads
 * are answered with an error instead of starting a VM).
 *
 * Input: records separated by NUL bytes, each [endpoint selector][body], sent in order to one
 * fresh API server (so a configuration PUT can precede a snapshot load). Selector 14 is a
 * whole --config-file document; 15 takes the method from its next byte and the URL from the
 * body's first line. Every reply must be JSON (or empty) with a status the API uses. At the
 * end, the configuration is turned into the machine's (fc_build), as a start would.
 *
 * No file named by the input is opened: the handlers' open() calls (logger, metrics, kernel,
 * initrd, drives) come here while a request runs and get /dev/null instead. */
#include "api/api_internal.h"

#include <fcntl.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_BODY 51200 /* the server's limit (API_MAX_BODY) */

static struct api_server *server; /* one server, reset before each input */
static bool guard; /* a request is running: open() must not reach the input's paths */

/* Overrides libc's open for this binary: the paths in a request body are never opened. */
int open(const char *path, int flags, ...)
{
    mode_t mode = 0;
    if (flags & O_CREAT) {
        va_list ap;
        va_start(ap, flags);
        mode = (mode_t)va_arg(ap, int);
        va_end(ap);
    }
    if (guard) {
        path = "/dev/null";
        flags &= O_ACCMODE | O_CLOEXEC | O_NONBLOCK;
    }
    return (int)syscall(SYS_openat, AT_FDCWD, path, flags, mode);
}

static const struct {
    const char *method, *url;
} endpoints[14] = {
    {"PUT", "/machine-config"},
    {"PUT", "/boot-source"},
    {"PUT", "/drives/rootfs"},
    {"PUT", "/network-interfaces/eth0"},
    {"PUT", "/vsock"},
    {"PUT", "/logger"},
    {"PUT", "/metrics"},
    {"PUT", "/snapshot/load"},
    {"PUT", "/snapshot/create"},
    {"PUT", "/actions"},
    {"PATCH", "/vm"},
    {"PATCH", "/machine-config"},
    {"GET", "/machine-config"},
    {"GET", "/"},
};

static bool verbose; /* QUOKKA_FUZZ_VERBOSE: print every reply (checking seeds) */

static void check_reply(unsigned status, char *reply)
{
    if (verbose)
        fprintf(stderr, "%u %s\n", status, reply ? reply : "");
    if (status != 200 && status != 204 && status != 400)
        abort();
    if (reply) {
        struct json_object *o = json_tokener_parse(reply);
        if (!o)
            abort();
        json_object_put(o);
    }
    free(reply);
}

/* Selector 15: "[method byte]url\nbody". */
static void free_form(struct api_server *api, const char *rec, size_t len)
{
    static const char *const methods[] = {"GET", "PUT", "PATCH", "POST"};
    if (len < 1)
        return;
    const char *method = methods[(uint8_t)rec[0] & 3];
    rec++;
    len--;
    const char *nl = memchr(rec, '\n', len);
    size_t ulen = nl ? (size_t)(nl - rec) : len;
    char url[512];
    if (ulen >= sizeof(url))
        ulen = sizeof(url) - 1;
    memcpy(url, rec, ulen);
    url[ulen] = '\0';
    const char *body = nl ? nl + 1 : rec + len;
    size_t blen = (size_t)(rec + len - body);
    char *reply;
    check_reply(api_test_request(api, method, url, body, blen, &reply), reply);
}

static void one(struct api_server *api, const char *rec, size_t len)
{
    if (!len)
        return;
    unsigned sel = (uint8_t)rec[0] & 15;
    rec++;
    len--;
    char *reply, err[1200];
    if (sel == 14) {
        int rc = api_test_config(api, rec, len, err, sizeof(err));
        if (verbose)
            fprintf(stderr, "config file: %s\n", rc < 0 ? err : "ok");
    } else if (sel == 15) {
        free_form(api, rec, len);
    } else {
        bool get = !strcmp(endpoints[sel].method, "GET");
        check_reply(api_test_request(api, endpoints[sel].method, endpoints[sel].url, rec,
                                     get ? 0 : len, &reply),
                    reply);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    verbose = getenv("QUOKKA_FUZZ_VERBOSE") != NULL;
    static struct machine_config base; /* the command line's: nothing given */
    server = api_test_new(&base);
    if (!server)
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    if (len > 4 * MAX_BODY)
        return 0;
    api_test_reset(server); /* every input starts from a fresh server */
    guard = true;
    const char *p = (const char *)data, *end = p + len;
    while (p < end) {
        const char *nul = memchr(p, '\0', (size_t)(end - p));
        size_t n = nul ? (size_t)(nul - p) : (size_t)(end - p);
        if (n <= MAX_BODY + 1)
            one(server, p, n);
        p += n + (nul ? 1 : 0);
    }
    /* what InstanceStart would build the machine from (the main thread's fc_build) */
    struct machine_config cfg;
    char err[1200];
    fc_build(server->fc, server->base, &cfg, err, sizeof(err));
    guard = false;
    return 0;
}
