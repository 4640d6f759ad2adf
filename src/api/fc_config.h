/* Firecracker's VM configuration: what PUT /boot-source, /machine-config, /drives/{id},
 * /network-interfaces/{id} and /vsock set, and what --config-file holds (the same JSON bodies
 * under "boot-source", "machine-config", "drives", "network-interfaces", "vsock", "logger",
 * "metrics"). Turned into a machine_config for machine_create. */
#ifndef QUOKKA_API_FC_CONFIG_H
#define QUOKKA_API_FC_CONFIG_H

#include "vm/machine.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct json_object;

#define FC_MAX_DRIVES 8
#define FC_MAX_NETS 8
#define FC_ID_MAX 64
#define FC_PATH_MAX 4096
#define FC_CMDLINE_MAX 4096
#define FC_MAX_HOSTFWD 8
#define FC_HOSTFWD_LEN 64

/* Firecracker's default when boot_args is absent, with the console on COM1 (Firecracker's
 * own default turns the UARTs off: 8250.nr_uarts=0). reboot=k makes a guest reboot (and
 * Ctrl+Alt+Del) reset through the i8042, which ends the VM; i8042.dumbkbd binds Linux's AT
 * keyboard driver to the keyboard-less controller so SendCtrlAltDel reaches it. */
#define FC_DEFAULT_BOOT_ARGS                                                                       \
    "console=ttyS0 reboot=k panic=1 i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd"

struct fc_drive {
    char id[FC_ID_MAX];
    char path[FC_PATH_MAX];
    bool root, read_only;
};

struct fc_net {
    char id[FC_ID_MAX];
    char host_dev_name[32]; /* tap; "" with user_mode */
    char mac[18];           /* guest_mac, "" for the default */
    bool user_mode;         /* extension: libslirp user-mode networking instead of a tap */
    char hostfwd[FC_MAX_HOSTFWD][FC_HOSTFWD_LEN];
    unsigned nr_hostfwd;
};

struct fc_config {
    bool has_kernel;
    char kernel[FC_PATH_MAX];
    char initrd[FC_PATH_MAX]; /* "" for none */
    char boot_args[FC_CMDLINE_MAX];
    bool has_boot_args;
    unsigned vcpu_count;
    uint64_t mem_size_mib;
    bool smt, track_dirty_pages;
    enum accel_kind accel; /* extension field "accelerator": "auto", "kvm" or "tcg" */
    struct fc_drive drives[FC_MAX_DRIVES];
    unsigned nr_drives;
    struct fc_net nets[FC_MAX_NETS];
    unsigned nr_nets;
    bool has_vsock;
    uint32_t vsock_cid;
    char vsock_uds[FC_PATH_MAX];

    /* Option strings and the command line handed to the machine (built by fc_build). */
    char cmdline[FC_CMDLINE_MAX + 64];
    char dev_opts[MACHINE_MAX_DEVICE_REQUESTS][FC_PATH_MAX + 128];
};

/* From a CLI configuration (its --kernel if given, sizes, accelerator). */
void fc_config_init(struct fc_config *fc, const struct machine_config *base, bool kernel_given);

/* Each returns 0, or -1 with Firecracker's fault message in err. */
int fc_put_boot_source(struct fc_config *fc, struct json_object *body, char *err, size_t errlen);
int fc_put_machine_config(struct fc_config *fc, struct json_object *body, char *err, size_t errlen);
int fc_put_drive(struct fc_config *fc, const char *id, struct json_object *body, char *err,
                 size_t errlen);
int fc_put_net(struct fc_config *fc, const char *id, struct json_object *body, char *err,
               size_t errlen);
int fc_put_vsock(struct fc_config *fc, struct json_object *body, char *err, size_t errlen);
/* {"vcpu_count":...,"mem_size_mib":...,...} (owned by the caller). */
struct json_object *fc_get_machine_config(const struct fc_config *fc);

/* API resource IDs: alphanumeric and '_' only, as Firecracker checks them. */
int fc_check_id(const char *id, char *err, size_t errlen);

/* The whole --config-file document; logger/metrics sections are handed back for the caller. */
int fc_load_file(struct fc_config *fc, const char *path, struct json_object **logger,
                 struct json_object **metrics, char *err, size_t errlen);
/* The same document from memory (len bytes, no NUL needed): fuzz/fuzz_api.c. */
int fc_load_text(struct fc_config *fc, const char *text, size_t len, struct json_object **logger,
                 struct json_object **metrics, char *err, size_t errlen);

/* Fill *cfg (starting from base: console, CLI devices, settings) for machine_create; the
 * strings point into fc. */
int fc_build(struct fc_config *fc, const struct machine_config *base, struct machine_config *cfg,
             char *err, size_t errlen);

/* A "hostfwd" JSON array (the user-mode extension): at most FC_MAX_HOSTFWD rules, each a
 * string without commas, into rules[0 .. *nr). -1 with Firecracker-style message otherwise. */
int fc_parse_hostfwd(struct json_object *v, char (*rules)[FC_HOSTFWD_LEN], unsigned *nr, char *err,
                     size_t errlen);

#endif
