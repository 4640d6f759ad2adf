/* isa-debug-exit (QEMU semantics): a write of V to PORT_DEBUG_EXIT asks the machine to exit
 * with status (V << 1) | 1, so test guests can report results without a shutdown path.
 *
 * The range is 4 ports wide so that outw/outl to the port reach us too (the bus only
 * dispatches accesses that fit a range); writes to the 3 ports after it are ignored. The device
 * has no mutable state, hence no lock; request_stop is safe from any thread. */
#include "hw/device.h"
#include "util/log.h"
#include "vm/platform.h"

#include <stdlib.h>

#define DEBUG_EXIT_WIDTH 4

struct debug_exit {
    struct device_host host;
};

static void debug_exit_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
    (void)size;
    const struct debug_exit *d = opaque;
    if (offset != 0 || !d->host.request_stop)
        return;
    d->host.request_stop(d->host.stop_ctx, VM_STOP_DEBUG_EXIT, (uint32_t)value);
}

static const struct bus_device_ops debug_exit_ops = {.read = NULL, .write = debug_exit_write};

static int debug_exit_create(const struct device_host *host, const struct device_args *args,
                             void **state, char *err, size_t errlen)
{
    struct debug_exit *d = calloc(1, sizeof(*d));
    if (!d)
        return qk_fail(err, errlen, "out of memory");
    d->host = *host;
    if (bus_register(host->pio, PORT_DEBUG_EXIT, DEBUG_EXIT_WIDTH, &debug_exit_ops, d, "debug-exit",
                     err, errlen) < 0) {
        free(d);
        return -1;
    }
    *state = d;
    return 0;
}

static void debug_exit_destroy(void *state)
{
    free(state);
}

DEVICE_MODEL(debug_exit_model) = {
    .name = "debug_exit",
    .level = DEVICE_LEVEL_PLATFORM,
    .default_instance = true,
    .create = debug_exit_create,
    .destroy = debug_exit_destroy,
};
