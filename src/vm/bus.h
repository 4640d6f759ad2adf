/* Port-I/O and MMIO buses: devices claim [base, base+len) ranges; accesses are dispatched by
 * address. Ranges may be added, removed and moved while vCPUs run (PCI BARs move when the
 * guest programs them): writers serialise on a mutex and publish through a sequence counter;
 * lookups take no lock (a seqlock read: they retry only while a change is being written).
 * The range table has a fixed capacity allocated once, so a reader never sees freed memory.
 * Devices serialise their own state. */
#ifndef QUOKKA_VM_BUS_H
#define QUOKKA_VM_BUS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BUS_MAX_RANGES 512

struct bus_device_ops {
    /* offset is relative to the range base; size is 1, 2, 4 or 8. */
    uint64_t (*read)(void *opaque, uint64_t offset, unsigned size);
    void (*write)(void *opaque, uint64_t offset, unsigned size, uint64_t value);
};

/* Fields are atomics because lock-free readers may load them while a writer changes them
 * (the sequence counter tells the reader to retry); relaxed loads are plain moves. */
struct bus_range {
    _Atomic uint64_t base;
    _Atomic uint64_t len;
    _Atomic(const struct bus_device_ops *) ops;
    _Atomic(void *) opaque;
    _Atomic(const char *) name;
};

/* What a lookup returns: a consistent copy of one range. */
struct bus_hit {
    uint64_t base, len;
    const struct bus_device_ops *ops;
    void *opaque;
    const char *name;
};

struct bus {
    const char *name;         /* "pio" or "mmio", for messages */
    struct bus_range *ranges; /* sorted by base, non-overlapping; BUS_MAX_RANGES entries */
    _Atomic size_t nr;
    _Atomic uint32_t seq; /* odd while a writer is changing the table */
    pthread_mutex_t write_lock;
    uint64_t limit; /* highest valid address + 1 (0x10000 for ports) or 0 for 2^64 */
};

int bus_init(struct bus *bus, const char *name, uint64_t limit);
void bus_destroy(struct bus *bus);

/* Returns 0, or -1 with a message in err when len is 0, the range wraps or exceeds the bus,
 * it overlaps a range already registered, or the table is full. */
int bus_register(struct bus *bus, uint64_t base, uint64_t len, const struct bus_device_ops *ops,
                 void *opaque, const char *name, char *err, size_t errlen);
/* Remove the range at base owned by opaque (0 when found). */
int bus_unregister(struct bus *bus, uint64_t base, void *opaque);
/* Move opaque's range at old_base (UINT64_MAX: none yet) to new_base (UINT64_MAX: remove)
 * in one step. -1 (and the range is left unmapped) when the new place is invalid or taken. */
int bus_remap(struct bus *bus, void *opaque, uint64_t old_base, uint64_t new_base, uint64_t len,
              const struct bus_device_ops *ops, const char *name);

/* Range claiming addr and the whole access: true with *hit filled. */
bool bus_find(const struct bus *bus, uint64_t addr, unsigned size, struct bus_hit *hit);

/* Dispatch an access. Unclaimed reads return all-ones and unclaimed writes are dropped, as on
 * real hardware; the return value says whether a device claimed it. */
bool bus_read(const struct bus *bus, uint64_t addr, unsigned size, uint64_t *value);
bool bus_write(const struct bus *bus, uint64_t addr, unsigned size, uint64_t value);

#endif
