#include "vm/resources.h"

#include "vm/platform.h"

#include <string.h>

void range_alloc_init(struct range_alloc *a, uint64_t base, uint64_t size)
{
    memset(a, 0, sizeof(*a));
    a->base = base;
    a->size = size;
}

static int insert(struct range_alloc *a, unsigned pos, uint64_t base, uint64_t size)
{
    if (a->nr == RANGE_ALLOC_MAX)
        return -1;
    memmove(&a->used[pos + 1], &a->used[pos], (a->nr - pos) * sizeof(a->used[0]));
    a->used[pos].base = base;
    a->used[pos].size = size;
    a->nr++;
    return 0;
}

int range_alloc(struct range_alloc *a, uint64_t size, uint64_t align, uint64_t *out)
{
    if (!size || !align || (align & (align - 1)))
        return -1;
    uint64_t end = a->base + a->size;
    uint64_t cursor = a->base;
    for (unsigned i = 0; i <= a->nr; i++) {
        uint64_t candidate = (cursor + align - 1) & ~(align - 1);
        uint64_t limit = i < a->nr ? a->used[i].base : end;
        if (candidate >= cursor && candidate <= limit && size <= limit - candidate) {
            if (insert(a, i, candidate, size) < 0)
                return -1;
            *out = candidate;
            return 0;
        }
        if (i < a->nr)
            cursor = a->used[i].base + a->used[i].size;
    }
    return -1;
}

int range_alloc_fixed(struct range_alloc *a, uint64_t base, uint64_t size)
{
    if (!size || base < a->base || base - a->base > a->size || size > a->size - (base - a->base))
        return -1;
    unsigned pos = 0;
    while (pos < a->nr && a->used[pos].base < base)
        pos++;
    if (pos > 0 && a->used[pos - 1].base + a->used[pos - 1].size > base)
        return -1;
    if (pos < a->nr && a->used[pos].base - base < size)
        return -1;
    return insert(a, pos, base, size);
}

void range_free(struct range_alloc *a, uint64_t base)
{
    for (unsigned i = 0; i < a->nr; i++)
        if (a->used[i].base == base) {
            memmove(&a->used[i], &a->used[i + 1], (a->nr - i - 1) * sizeof(a->used[0]));
            a->nr--;
            return;
        }
}

void vm_resources_init(struct vm_resources *r, uint64_t mmio64_base, uint64_t mmio64_size)
{
    pthread_mutex_init(&r->lock, NULL);
    range_alloc_init(&r->mmio32, PHYS_PCI_MMIO32, PCI_MMIO32_SIZE);
    range_alloc_init(&r->mmio64, mmio64_base, mmio64_size);
    range_alloc_init(&r->pio, PORT_PCI_IO_BASE, PCI_IO_SIZE);
    range_alloc_init(&r->gsi, GSI_PCI_FIRST, GSI_PCI_COUNT);
}

void vm_resources_destroy(struct vm_resources *r)
{
    pthread_mutex_destroy(&r->lock);
}

int vm_resources_alloc(struct vm_resources *r, struct range_alloc *kind, uint64_t size,
                       uint64_t align, uint64_t *out)
{
    pthread_mutex_lock(&r->lock);
    int rc = range_alloc(kind, size, align, out);
    pthread_mutex_unlock(&r->lock);
    return rc;
}

int vm_resources_claim(struct vm_resources *r, struct range_alloc *kind, uint64_t base,
                       uint64_t size)
{
    pthread_mutex_lock(&r->lock);
    int rc = range_alloc_fixed(kind, base, size);
    pthread_mutex_unlock(&r->lock);
    return rc;
}
