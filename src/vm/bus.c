#include "vm/bus.h"

#include "util/log.h"

#include <stdlib.h>
#include <string.h>

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)
#define STORE(x, v) atomic_store_explicit(&(x), (v), memory_order_relaxed)

int bus_init(struct bus *bus, const char *name, uint64_t limit)
{
    memset(bus, 0, sizeof(*bus));
    bus->name = name;
    bus->limit = limit;
    bus->ranges = calloc(BUS_MAX_RANGES, sizeof(*bus->ranges));
    pthread_mutex_init(&bus->write_lock, NULL);
    return bus->ranges ? 0 : -1;
}

void bus_destroy(struct bus *bus)
{
    if (!bus->ranges)
        return;
    free(bus->ranges);
    bus->ranges = NULL;
    STORE(bus->nr, 0);
    pthread_mutex_destroy(&bus->write_lock);
}

static void write_begin(struct bus *bus)
{
    pthread_mutex_lock(&bus->write_lock);
    atomic_fetch_add_explicit(&bus->seq, 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
}

static void write_end(struct bus *bus)
{
    atomic_fetch_add_explicit(&bus->seq, 1, memory_order_release);
    pthread_mutex_unlock(&bus->write_lock);
}

static void copy_range(struct bus_range *dst, const struct bus_range *src)
{
    STORE(dst->base, LOAD(src->base));
    STORE(dst->len, LOAD(src->len));
    STORE(dst->ops, LOAD(src->ops));
    STORE(dst->opaque, LOAD(src->opaque));
    STORE(dst->name, LOAD(src->name));
}

/* Checks and inserts; caller holds the write side. */
static int insert_locked(struct bus *bus, uint64_t base, uint64_t len,
                         const struct bus_device_ops *ops, void *opaque, const char *name,
                         char *err, size_t errlen)
{
    if (len == 0 || base + len - 1 < base)
        return qk_fail(err, errlen, "%s: %s range at 0x%llx is empty or wraps", bus->name, name,
                       (unsigned long long)base);
    if (bus->limit && (base >= bus->limit || len > bus->limit - base))
        return qk_fail(err, errlen, "%s: %s range 0x%llx+0x%llx is outside the bus", bus->name,
                       name, (unsigned long long)base, (unsigned long long)len);
    size_t nr = LOAD(bus->nr);
    size_t pos = 0;
    while (pos < nr && LOAD(bus->ranges[pos].base) < base)
        pos++;
    const struct bus_range *clash = NULL;
    if (pos && base - LOAD(bus->ranges[pos - 1].base) < LOAD(bus->ranges[pos - 1].len))
        clash = &bus->ranges[pos - 1];
    else if (pos < nr && LOAD(bus->ranges[pos].base) - base < len)
        clash = &bus->ranges[pos];
    if (clash)
        return qk_fail(err, errlen, "%s: %s range 0x%llx+0x%llx overlaps %s", bus->name, name,
                       (unsigned long long)base, (unsigned long long)len, LOAD(clash->name));
    if (nr == BUS_MAX_RANGES)
        return qk_fail(err, errlen, "%s: too many ranges", bus->name);
    for (size_t i = nr; i > pos; i--)
        copy_range(&bus->ranges[i], &bus->ranges[i - 1]);
    struct bus_range *r = &bus->ranges[pos];
    STORE(r->base, base);
    STORE(r->len, len);
    STORE(r->ops, ops);
    STORE(r->opaque, opaque);
    STORE(r->name, name);
    STORE(bus->nr, nr + 1);
    return 0;
}

static int remove_locked(struct bus *bus, uint64_t base, void *opaque)
{
    size_t nr = LOAD(bus->nr);
    for (size_t i = 0; i < nr; i++) {
        if (LOAD(bus->ranges[i].base) != base || LOAD(bus->ranges[i].opaque) != opaque)
            continue;
        for (size_t j = i; j + 1 < nr; j++)
            copy_range(&bus->ranges[j], &bus->ranges[j + 1]);
        STORE(bus->nr, nr - 1);
        return 0;
    }
    return -1;
}

int bus_register(struct bus *bus, uint64_t base, uint64_t len, const struct bus_device_ops *ops,
                 void *opaque, const char *name, char *err, size_t errlen)
{
    write_begin(bus);
    int rc = insert_locked(bus, base, len, ops, opaque, name, err, errlen);
    write_end(bus);
    return rc;
}

int bus_unregister(struct bus *bus, uint64_t base, void *opaque)
{
    write_begin(bus);
    int rc = remove_locked(bus, base, opaque);
    write_end(bus);
    return rc;
}

int bus_remap(struct bus *bus, void *opaque, uint64_t old_base, uint64_t new_base, uint64_t len,
              const struct bus_device_ops *ops, const char *name)
{
    char why[160];
    write_begin(bus);
    if (old_base != UINT64_MAX)
        remove_locked(bus, old_base, opaque);
    int rc = 0;
    if (new_base != UINT64_MAX)
        rc = insert_locked(bus, new_base, len, ops, opaque, name, why, sizeof(why));
    write_end(bus);
    return rc;
}

/* Binary search; the caller validates the result against the sequence counter. */
static bool search(const struct bus *bus, uint64_t addr, unsigned size, struct bus_hit *hit)
{
    size_t lo = 0, hi = LOAD(bus->nr);
    if (hi > BUS_MAX_RANGES)
        return false; /* torn read during a write: the retry sees a sane value */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct bus_range *r = &bus->ranges[mid];
        uint64_t base = LOAD(r->base), len = LOAD(r->len);
        if (addr < base) {
            hi = mid;
        } else if (addr - base >= len) {
            lo = mid + 1;
        } else {
            if (size > len - (addr - base))
                return false;
            *hit = (struct bus_hit){base, len, LOAD(r->ops), LOAD(r->opaque), LOAD(r->name)};
            return true;
        }
    }
    return false;
}

bool bus_find(const struct bus *bus, uint64_t addr, unsigned size, struct bus_hit *hit)
{
    struct bus_hit local;
    if (!hit)
        hit = &local;
    struct bus *b = (struct bus *)bus; /* the counter is read, never written, here */
    for (;;) {
        uint32_t seq = atomic_load_explicit(&b->seq, memory_order_acquire);
        if (seq & 1)
            continue; /* a writer is in the middle of a change: it is short */
        bool found = search(bus, addr, size, hit);
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&b->seq, memory_order_relaxed) == seq)
            return found;
    }
}

static uint64_t size_mask(unsigned size)
{
    return size >= 8 ? ~0ULL : (1ULL << (size * 8)) - 1;
}

bool bus_read(const struct bus *bus, uint64_t addr, unsigned size, uint64_t *value)
{
    struct bus_hit r;
    bool found = bus_find(bus, addr, size, &r);
    if (!found || !r.ops->read) {
        *value = size_mask(size);
        return found;
    }
    *value = r.ops->read(r.opaque, addr - r.base, size) & size_mask(size);
    return true;
}

bool bus_write(const struct bus *bus, uint64_t addr, unsigned size, uint64_t value)
{
    struct bus_hit r;
    if (!bus_find(bus, addr, size, &r))
        return false;
    if (r.ops->write)
        r.ops->write(r.opaque, addr - r.base, size, value & size_mask(size));
    return true;
}
