/* Port-I/O and MMIO buses: devices claim [base, base+len) ranges; accesses are dispatched by
 * address. Ranges are registered while the machine is built (single-threaded) and are
 * read-only once vCPUs run, so lookups take no lock; devices serialise their own state. */
#ifndef QUOKKA_VM_BUS_H
#define QUOKKA_VM_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bus_device_ops {
    /* offset is relative to the range base; size is 1, 2, 4 or 8. */
    uint64_t (*read)(void *opaque, uint64_t offset, unsigned size);
    void (*write)(void *opaque, uint64_t offset, unsigned size, uint64_t value);
};

struct bus_range {
    uint64_t base;
    uint64_t len;
    const struct bus_device_ops *ops;
    void *opaque;
    const char *name;
};

struct bus {
    const char *name; /* "pio" or "mmio", for messages */
    struct bus_range *ranges; /* sorted by base, non-overlapping */
    size_t nr, cap;
    uint64_t limit; /* highest valid address + 1 (0x10000 for ports) or 0 for 2^64 */
};

void bus_init(struct bus *bus, const char *name, uint64_t limit);
void bus_destroy(struct bus *bus);

/* Returns 0, or -1 with a message in err when len is 0, the range wraps or exceeds the bus,
 * or it overlaps a range already registered. */
int bus_register(struct bus *bus, uint64_t base, uint64_t len, const struct bus_device_ops *ops,
                 void *opaque, const char *name, char *err, size_t errlen);

/* Range claiming addr (and the whole access), or NULL. */
const struct bus_range *bus_find(const struct bus *bus, uint64_t addr, unsigned size);

/* Dispatch an access. Unclaimed reads return all-ones and unclaimed writes are dropped, as on
 * real hardware; the return value says whether a device claimed it. */
bool bus_read(const struct bus *bus, uint64_t addr, unsigned size, uint64_t *value);
bool bus_write(const struct bus *bus, uint64_t addr, unsigned size, uint64_t value);

#endif
