/* The device manager: which device instances a machine has, created level by level from the
 * board's fixed devices and the command line's requests, and described to the ACPI builder. */
#ifndef QUOKKA_VM_DEVICES_H
#define QUOKKA_VM_DEVICES_H

#include "hw/device.h"
#include "util/opts.h"

#include <stddef.h>

#define MACHINE_MAX_DEVICE_REQUESTS 32

/* One `--disk ...` / `--rng` / `--device MODEL,...` from the command line. */
struct device_request {
    char model[32];   /* a DEVICE_MODEL name, e.g. "virtio-blk" */
    const char *opts; /* "key=value,..." ("" for none) */
    const char *flag; /* what the user typed, for messages ("--disk") */
};

struct device_instance {
    const struct device_model *model;
    struct opts opts;
    unsigned instance;
    const char *flag;
    void *state;
    bool created;
};

struct device_manager {
    struct device_instance *list;
    size_t nr;
    /* The instance the host console attaches to: model name, instance 0. */
    const char *console_model;
    const struct device_console *console;
};

/* Resolve and parse every request (user errors: unknown model, bad option) and add the
 * board's default instances. Nothing is created yet. */
int devices_prepare(struct device_manager *dm, const struct device_request *reqs, unsigned nr,
                    char *err, size_t errlen);
/* Create every prepared instance of `level`, in order. */
int devices_create_level(struct device_manager *dm, const struct device_host *host,
                         enum device_level level, char *err, size_t errlen);
/* Each created device's ACPI description (DSDT \_SB scope). */
void devices_describe_acpi(struct device_manager *dm, struct aml_buf *aml);
/* Destroy in reverse creation order and free the list. */
void devices_destroy(struct device_manager *dm);

#endif
