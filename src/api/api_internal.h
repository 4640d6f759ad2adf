/* Shared by the API server's parts (api_server.c, api_snapshot.c). */
#ifndef QUOKKA_API_API_INTERNAL_H
#define QUOKKA_API_API_INTERNAL_H

#include "api/fc_config.h"
#include "vm/machine.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct json_object;
struct MHD_Daemon;

/* PUT /snapshot/load's network_overrides and vsock_override (api_snapshot.c). */
struct api_net_override {
    char iface_id[FC_ID_MAX];
    char host_dev_name[32]; /* "" when only hostfwd is given */
    bool has_hostfwd;       /* extension: a user-mode NIC's new port forwards */
    char hostfwd[FC_MAX_HOSTFWD][FC_HOSTFWD_LEN];
    unsigned nr_hostfwd;
};

struct api_overrides {
    struct api_net_override nets[FC_MAX_NETS];
    unsigned nr_nets;
    bool has_vsock;
    char vsock_uds[FC_PATH_MAX];
};

enum api_state { API_NOT_STARTED, API_STARTING, API_RUNNING, API_PAUSED, API_STOPPED };

struct api_server {
    pthread_mutex_t lock;
    pthread_cond_t cond; /* start requested / start done */
    struct MHD_Daemon *daemon;
    const char *sock_path; /* removed at exit */

    struct fc_config *fc;              /* what the PUTs configured */
    const struct machine_config *base; /* the command line's settings */
    struct machine_config *cfg;        /* what the machine was built from (outlives it) */
    enum api_state state;
    struct machine *machine; /* NULL before start and after the VM ended */

    /* InstanceStart or a snapshot load, handed from the HTTP thread to the main thread. */
    bool start_requested, start_done;
    char start_error[1200];
    bool load; /* the request is a snapshot load: */
    char load_state[FC_PATH_MAX], load_mem[FC_PATH_MAX];
    bool load_resume;
    struct api_overrides load_overrides;
    uint64_t load_ns;                 /* how long the restore took (to paused or running) */
    struct snapshot_config *snap_cfg; /* a restored machine's configuration (outlives it) */
    bool configured;                  /* a boot resource was PUT: snapshot loads are refused */

    const char *body_text; /* the request being handled (for serde's positions) */
    size_t body_len;

    bool no_main_thread; /* api_test_new: a start or load is refused instead of handed over */

    int log_fd, log_level; /* level: 0 Off .. 5 Trace */
    bool log_show_level;
    int metrics_fd;
    uint64_t requests, errors;
};

/* The reply of a handler: status and a malloc'd JSON body (NULL: none). */
struct reply;

/* Appends one line to the logger's target when level (1 Error .. 5 Trace) is enabled. */
void api_log(struct api_server *api, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The overrides of a PUT /snapshot/load body into *o: 0, or -1 with Firecracker's message. */
int api_parse_overrides(const struct api_server *api, struct json_object *body,
                        struct api_overrides *o, char *err, size_t errlen);
/* Applied to a snapshot's configuration before the machine is built from it: 0, or -1 with
 * the message (after "Load snapshot error: ") in err. */
int api_apply_overrides(const struct api_overrides *o, struct snapshot_config *sc, char *err,
                        size_t errlen);

/* Requests without HTTP, sockets or a main thread (fuzz/fuzz_api.c): the real router and
 * handlers, but InstanceStart and PUT /snapshot/load answer 400 instead of starting a VM. */
struct api_server *api_test_new(const struct machine_config *base);
/* One request: the HTTP status; *reply gets the malloc'd JSON body or NULL. */
unsigned api_test_request(struct api_server *api, const char *method, const char *url,
                          const char *body, size_t len, char **reply);
/* A --config-file document, with its logger and metrics sections: 0 or -1 with err. */
int api_test_config(struct api_server *api, const char *text, size_t len, char *err, size_t errlen);
/* Back to the state api_test_new left (without reallocating: fuzzing speed). */
void api_test_reset(struct api_server *api);
void api_test_free(struct api_server *api);

#endif
