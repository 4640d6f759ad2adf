/* The machine: guest memory, buses, devices, boot and vCPU threads, on one accelerator. */
#ifndef QUOKKA_VM_MACHINE_H
#define QUOKKA_VM_MACHINE_H

#include "accel/accel.h"
#include "vm/console.h"
#include "vm/devices.h"

#include <stdint.h>

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
    struct device_request devices[MACHINE_MAX_DEVICE_REQUESTS]; /* --disk, --rng, --device */
    unsigned nr_devices;
};

/* Build and run the VM; returns the process exit status. */
int machine_run(const struct machine_config *cfg);

/* Read a whole file for loading into the guest (bounded by max_size). */
int load_file(const char *what, const char *path, uint64_t max_size, uint8_t **data, size_t *size,
              char *err, size_t errlen);

#endif
