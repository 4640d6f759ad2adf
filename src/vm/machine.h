/* The machine: guest memory, buses, devices, boot and vCPU threads, on one accelerator. */
#ifndef QUOKKA_VM_MACHINE_H
#define QUOKKA_VM_MACHINE_H

#include "accel/accel.h"
#include "vm/console.h"
#include "hw/device.h"
#include "vm/devices.h"

#include <stdint.h>

struct snap_file;

#define MACHINE_MAX_VCPUS 64

/* Process exit statuses (the CLI contract). */
#define EXIT_GUEST_OK 0     /* poweroff or reboot request */
#define EXIT_HOST_FAILURE 1 /* quokka could not start the VM (no accelerator, host error) */
#define EXIT_USAGE 2        /* user error: bad flag, missing or malformed file, bad size */
#define EXIT_GUEST_CRASH 3  /* triple fault or accelerator error */

struct machine_config {
    const char *kernel_path;
    const char *initrd_path; /* NULL: none */
    const char *cmdline;
    uint64_t mem_size;
    unsigned nr_vcpus;
    enum accel_kind accel;
    struct console_spec console;
    bool virtio_console; /* the host console is hvc0 (virtio-console) instead of COM1 */
    bool seccomp_off;    /* --seccomp off: no sandbox (debugging) */
    const char *gdb;     /* --gdb tcp:HOST:PORT|unix:PATH: a gdbstub (gdbstub.h); NULL: none */
    struct device_request devices[MACHINE_MAX_DEVICE_REQUESTS]; /* --disk, --rng, --device */
    unsigned nr_devices;
    struct accel_settings accel_settings; /* translator backend, code buffer */
    /* Restore a snapshot instead of booting (kernel, initrd and cmdline unused): the parsed
     * state file and the guest memory file, mapped MAP_PRIVATE. */
    const struct snap_file *restore;
    const char *restore_mem_path;
};

/* The lifecycle: machine_create (configure: memory, kernel, devices, firmware, vCPUs) ->
 * machine_start (vCPU threads) -> machine_wait (the I/O loop on the calling thread, until the
 * guest or a signal stops it) -> machine_destroy. machine_pause/resume may be called from
 * another thread (the API's) while machine_wait runs; the vCPUs meet in a rendezvous where all
 * are stopped at an instruction boundary and their registers readable, and the guest clock
 * (every timer device's time) stands still until resume. */
enum machine_state { MACHINE_CREATED, MACHINE_RUNNING, MACHINE_PAUSED, MACHINE_STOPPED };

struct machine;
struct vcpu_state;

/* NULL on failure, with *status the exit status (EXIT_USAGE for the user's mistakes) and err. */
struct machine *machine_create(const struct machine_config *cfg, int *status, char *err,
                               size_t errlen);
/* paused: the vCPUs park at once and the guest clock stands still until machine_resume
 * (a restored snapshot). */
int machine_start(struct machine *m, bool paused, char *err, size_t errlen);
/* Runs the I/O loop until the VM stops; returns the process exit status. */
int machine_wait(struct machine *m);
void machine_destroy(struct machine *m, bool failed);
int machine_pause(struct machine *m, char *err, size_t errlen);
int machine_resume(struct machine *m, char *err, size_t errlen);
enum machine_state machine_get_state(struct machine *m);
const char *machine_accel_name(const struct machine *m);
/* Paused only: vCPU `index`'s registers. */
int machine_vcpu_state(struct machine *m, unsigned index, struct vcpu_state *out);
uint64_t machine_guest_ns(struct machine *m);
/* Ctrl+Alt+Del key presses through the i8042 (Firecracker's SendCtrlAltDel). */
int machine_send_ctrl_alt_del(struct machine *m, char *err, size_t errlen);
/* Stop the VM from outside (any thread); the first stop request sets the exit status. */
void machine_stop(struct machine *m, enum vm_stop_kind kind, uint32_t value);

/* Snapshots (machine_snapshot.c). Create needs a paused machine: the state file (config,
 * guest clock, vCPUs, devices) and the memory file. */
int machine_snapshot_create(struct machine *m, const char *state_path, const char *mem_path,
                            char *err, size_t errlen);
/* A snapshot's machine configuration: cfg starts from base (console, settings) and gets the
 * snapshot's memory, vCPUs, accelerator and devices; free with snapshot_config_free. */
struct snapshot_config {
    struct machine_config cfg;
    char *strings[2 * MACHINE_MAX_DEVICE_REQUESTS];
    unsigned nr_strings;
};
int snapshot_config_read(const struct snap_file *f, const struct machine_config *base,
                         struct snapshot_config *out, char *err, size_t errlen);
void snapshot_config_free(struct snapshot_config *sc);
/* The index of the device request of `model` whose options say id=ID (id NULL: the first of
 * that model), or -1. Snapshots made before NICs carried their id have none to match. */
int snapshot_config_find(const struct snapshot_config *sc, const char *model, const char *id);
/* Whether request i's options have `key` (as key=value or a bare word). */
bool snapshot_config_has(const struct snapshot_config *sc, unsigned i, const char *key);
/* Request i's options with every item whose key is in `drop` (NULL-terminated) removed and
 * `add` ("key=value[,...]", commas in values already doubled) appended: 0, or -1 when out of
 * memory or the result would be too long. */
int snapshot_config_edit(struct snapshot_config *sc, unsigned i, const char *const *drop,
                         const char *add);

/* Build and run the VM; returns the process exit status. */
int machine_run(const struct machine_config *cfg);

/* Read a whole file for loading into the guest (bounded by max_size). */
int load_file(const char *what, const char *path, uint64_t max_size, uint8_t **data, size_t *size,
              char *err, size_t errlen);

#endif
