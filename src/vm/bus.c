#include "vm/bus.h"

#include "util/log.h"

#include <stdlib.h>
#include <string.h>

void bus_init(struct bus *bus, const char *name, uint64_t limit)
{
    memset(bus, 0, sizeof(*bus));
    bus->name = name;
    bus->limit = limit;
}

void bus_destroy(struct bus *bus)
{
    free(bus->ranges);
    bus->ranges = NULL;
    bus->nr = bus->cap = 0;
}

int bus_register(struct bus *bus, uint64_t base, uint64_t len, const struct bus_device_ops *ops,
                 void *opaque, const char *name, char *err, size_t errlen)
{
    if (len == 0 || base + len - 1 < base)
        return qk_fail(err, errlen, "%s: %s range at 0x%llx is empty or wraps", bus->name, name,
                       (unsigned long long)base);
    if (bus->limit && (base >= bus->limit || len > bus->limit - base))
        return qk_fail(err, errlen, "%s: %s range 0x%llx+0x%llx is outside the bus", bus->name,
                       name, (unsigned long long)base, (unsigned long long)len);
    size_t pos = 0;
    while (pos < bus->nr && bus->ranges[pos].base < base)
        pos++;
    const struct bus_range *prev = pos ? &bus->ranges[pos - 1] : NULL;
    const struct bus_range *next = pos < bus->nr ? &bus->ranges[pos] : NULL;
    const struct bus_range *clash = NULL;
    if (prev && base - prev->base < prev->len)
        clash = prev;
    else if (next && next->base - base < len)
        clash = next;
    if (clash)
        return qk_fail(err, errlen, "%s: %s range 0x%llx+0x%llx overlaps %s", bus->name, name,
                       (unsigned long long)base, (unsigned long long)len, clash->name);
    if (bus->nr == bus->cap) {
        size_t cap = bus->cap ? bus->cap * 2 : 16;
        struct bus_range *r = realloc(bus->ranges, cap * sizeof(*r));
        if (!r)
            return qk_fail(err, errlen, "%s: out of memory", bus->name);
        bus->ranges = r;
        bus->cap = cap;
    }
    memmove(&bus->ranges[pos + 1], &bus->ranges[pos], (bus->nr - pos) * sizeof(*bus->ranges));
    bus->ranges[pos] = (struct bus_range){base, len, ops, opaque, name};
    bus->nr++;
    return 0;
}

const struct bus_range *bus_find(const struct bus *bus, uint64_t addr, unsigned size)
{
    size_t lo = 0, hi = bus->nr;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct bus_range *r = &bus->ranges[mid];
        if (addr < r->base)
            hi = mid;
        else if (addr - r->base >= r->len)
            lo = mid + 1;
        else
            return (size <= r->len - (addr - r->base)) ? r : NULL;
    }
    return NULL;
}

static uint64_t size_mask(unsigned size)
{
    return size >= 8 ? ~0ULL : (1ULL << (size * 8)) - 1;
}

bool bus_read(const struct bus *bus, uint64_t addr, unsigned size, uint64_t *value)
{
    const struct bus_range *r = bus_find(bus, addr, size);
    if (!r || !r->ops->read) {
        *value = size_mask(size);
        return r != NULL;
    }
    *value = r->ops->read(r->opaque, addr - r->base, size) & size_mask(size);
    return true;
}

bool bus_write(const struct bus *bus, uint64_t addr, unsigned size, uint64_t value)
{
    const struct bus_range *r = bus_find(bus, addr, size);
    if (!r)
        return false;
    if (r->ops->write)
        r->ops->write(r->opaque, addr - r->base, size, value & size_mask(size));
    return true;
}
