/* BARs: an address from the board's windows at creation (what firmware would assign), then
 * wherever the guest programs it. Every config write recomputes where each BAR decodes (its
 * registers and the command register's decode bits) and moves the range on the bus; a BAR
 * that would overlap another range, or lies outside the bus, is not decoded: the range stays
 * with whoever had it. Every change then retries the dark BARs of the whole bus
 * (pci.c's refresh_bars), so when the winner moves away the loser decodes again without being
 * reprogrammed: the decoded map is always what the registers imply, with the earlier holder
 * winning an overlap (PCI leaves overlaps undefined). */
#include "hw/pci/pci_internal.h"

#include "util/log.h"

#include <string.h>

#define PCI_IO_SPACE_END 0x10000ULL /* x86 ports are 16 bits */
#define PCI_BAR_MIN_MEM 16
#define PCI_BAR_MIN_IO 4

static struct bus *bar_bus(const struct pci_device *dev, const struct pci_bar *b)
{
    return b->kind == PCI_BAR_IO ? dev->bus->host.pio : dev->bus->host.mmio;
}

/* The address in the BAR's registers, as the guest programmed it. */
static uint64_t programmed_address(const struct pci_device *dev, unsigned index)
{
    const struct pci_bar *b = &dev->bars[index];
    uint32_t lo = pci_get32(dev->config + PCI_BAR0 + 4 * index);
    if (b->kind == PCI_BAR_IO)
        return lo & ~PCI_BAR_IO_MASK;
    uint64_t a = lo & ~PCI_BAR_MEM_MASK;
    if (b->kind == PCI_BAR_MEM64)
        a |= (uint64_t)pci_get32(dev->config + PCI_BAR0 + 4 * (index + 1)) << 32;
    return a;
}

/* Where the BAR decodes now, or PCI_NO_ADDRESS: decoding off, address 0, beyond the 64K
 * ports, or a memory range that reaches the last byte of its space (what a BAR holds while
 * the guest sizes it). */
static uint64_t decode_address(const struct pci_device *dev, unsigned index)
{
    const struct pci_bar *b = &dev->bars[index];
    uint16_t cmd = pci_get16(dev->config + PCI_COMMAND);
    uint64_t a = programmed_address(dev, index);
    uint64_t space_end; /* exclusive */
    if (b->kind == PCI_BAR_IO) {
        if (!(cmd & PCI_COMMAND_IO))
            return PCI_NO_ADDRESS;
        space_end = PCI_IO_SPACE_END;
    } else {
        if (!(cmd & PCI_COMMAND_MEMORY))
            return PCI_NO_ADDRESS;
        space_end = b->kind == PCI_BAR_MEM64 ? UINT64_MAX : UINT32_MAX;
    }
    if (a == 0 || a > space_end - b->size)
        return PCI_NO_ADDRESS;
    return a;
}

/* One pass: every BAR whose decoding differs from its registers moves there (or stops); a
 * move onto a taken range leaves the BAR dark. */
static void bars_pass(struct pci_device *dev)
{
    for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
        struct pci_bar *b = &dev->bars[i];
        if (!b->present || b->upper)
            continue;
        uint64_t want = decode_address(dev, i);
        if (want == b->mapped)
            continue;
        int rc = bus_remap(bar_bus(dev, b), b->opaque, b->mapped, want, b->size, b->ops, dev->name);
        b->mapped = want != PCI_NO_ADDRESS && rc == 0 ? want : PCI_NO_ADDRESS;
    }
}

unsigned pci_bars_update(struct pci_device *dev, struct pci_bar_event *ev)
{
    uint64_t before[PCI_NUM_BARS];
    for (unsigned i = 0; i < PCI_NUM_BARS; i++)
        before[i] = dev->bars[i].mapped;
    /* The second pass retries what the first left dark: a BAR may want the range a later BAR
     * of the same function only left in the first pass (a command-register write or a
     * snapshot load changes several at once). The first pass frees every range a BAR leaves;
     * the second only takes ranges, so a third would change nothing. */
    bars_pass(dev);
    bars_pass(dev);
    unsigned n = 0;
    for (unsigned i = 0; i < PCI_NUM_BARS; i++)
        if (dev->bars[i].mapped != before[i])
            ev[n++] = (struct pci_bar_event){i, dev->bars[i].mapped};
    return n;
}

void pci_bars_notify(struct pci_device *dev, const struct pci_bar_event *ev, unsigned n)
{
    if (n == 0)
        return;
    pthread_mutex_lock(&dev->lock);
    void (*moved)(void *, unsigned, uint64_t) = dev->moved;
    void *opaque = dev->moved_opaque;
    pthread_mutex_unlock(&dev->lock);
    for (unsigned i = 0; moved && i < n; i++)
        moved(opaque, ev[i].index, ev[i].address);
}

static void give_back(struct pci_device *dev, struct pci_bar *b)
{
    struct vm_resources *r = dev->bus->host.resources;
    pthread_mutex_lock(&r->lock);
    range_free(b->window, b->allocated);
    pthread_mutex_unlock(&r->lock);
}

void pci_bars_release(struct pci_device *dev)
{
    for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
        struct pci_bar *b = &dev->bars[i];
        if (!b->present || b->upper)
            continue;
        if (b->mapped != PCI_NO_ADDRESS)
            bus_unregister(bar_bus(dev, b), b->mapped, b->opaque);
        give_back(dev, b);
    }
    memset(dev->bars, 0, sizeof(dev->bars));
    for (unsigned i = 0; i < PCI_NUM_BARS; i++)
        dev->bars[i].mapped = PCI_NO_ADDRESS;
}

static int check_bar(const struct pci_device *dev, unsigned index, enum pci_bar_kind kind,
                     uint64_t size, const struct bus_device_ops *ops, char *err, size_t errlen)
{
    unsigned slots = kind == PCI_BAR_MEM64 ? 2 : 1;
    if (kind != PCI_BAR_MEM32 && kind != PCI_BAR_MEM64 && kind != PCI_BAR_IO)
        return qk_fail(err, errlen, "%s: BAR %u has an unknown kind", dev->name, index);
    if (index >= PCI_NUM_BARS || slots > PCI_NUM_BARS - index)
        return qk_fail(err, errlen, "%s: no BAR %u%s", dev->name, index,
                       slots == 2 ? " for a 64-bit BAR" : "");
    if (dev->bars[index].present || (slots == 2 && dev->bars[index + 1].present))
        return qk_fail(err, errlen, "%s: BAR %u is already in use", dev->name, index);
    uint64_t min = kind == PCI_BAR_IO ? PCI_BAR_MIN_IO : PCI_BAR_MIN_MEM;
    uint64_t max = kind == PCI_BAR_IO      ? PCI_IO_SIZE
                   : kind == PCI_BAR_MEM32 ? 1ULL << 31
                                           : 1ULL << 62;
    if (size < min || size > max || (size & (size - 1)))
        return qk_fail(err, errlen, "%s: BAR %u size 0x%llx is not a power of two in 0x%llx-0x%llx",
                       dev->name, index, (unsigned long long)size, (unsigned long long)min,
                       (unsigned long long)max);
    if (!ops)
        return qk_fail(err, errlen, "%s: BAR %u has no handlers", dev->name, index);
    return 0;
}

/* Naturally aligned space from the right window; a 64-bit BAR prefers the 32-bit window (it
 * can hold a 32-bit address, and every guest handles that) and falls back to the 64-bit one. */
static int allocate(struct pci_device *dev, struct pci_bar *b)
{
    struct vm_resources *r = dev->bus->host.resources;
    if (b->kind == PCI_BAR_IO)
        b->window = &r->pio;
    else
        b->window = &r->mmio32;
    if (vm_resources_alloc(r, b->window, b->size, b->size, &b->allocated) == 0)
        return 0;
    if (b->kind != PCI_BAR_MEM64 || r->mmio64.size == 0)
        return -1;
    b->window = &r->mmio64;
    return vm_resources_alloc(r, b->window, b->size, b->size, &b->allocated);
}

/* Registers, write masks (the size bits read back as zero: sizing) and the decode bit. */
static void program_bar(struct pci_device *dev, unsigned index, bool prefetchable)
{
    struct pci_bar *b = &dev->bars[index];
    uint8_t *reg = dev->config + PCI_BAR0 + 4 * index;
    uint8_t *mask = dev->wmask + PCI_BAR0 + 4 * index;
    uint64_t size_mask = ~(b->size - 1);
    uint16_t cmd = pci_get16(dev->config + PCI_COMMAND);
    if (b->kind == PCI_BAR_IO) {
        pci_put32(reg, (uint32_t)b->allocated | PCI_BAR_IO_FLAG);
        pci_put32(mask, (uint32_t)size_mask & ~PCI_BAR_IO_MASK);
        cmd |= PCI_COMMAND_IO;
    } else {
        uint32_t flags = (b->kind == PCI_BAR_MEM64 ? PCI_BAR_MEM64_FLAG : 0) |
                         (prefetchable ? PCI_BAR_PREFETCH_FLAG : 0);
        pci_put32(reg, (uint32_t)b->allocated | flags);
        pci_put32(mask, (uint32_t)size_mask & ~PCI_BAR_MEM_MASK);
        if (b->kind == PCI_BAR_MEM64) {
            pci_put32(reg + 4, (uint32_t)(b->allocated >> 32));
            pci_put32(mask + 4, (uint32_t)(size_mask >> 32));
        }
        cmd |= PCI_COMMAND_MEMORY;
    }
    pci_put16(dev->config + PCI_COMMAND, cmd);
}

int pci_device_add_bar(struct pci_device *dev, unsigned index, enum pci_bar_kind kind,
                       uint64_t size, bool prefetchable, const struct bus_device_ops *ops,
                       void *opaque, char *err, size_t errlen)
{
    pthread_mutex_lock(&dev->lock);
    if (check_bar(dev, index, kind, size, ops, err, errlen) < 0) {
        pthread_mutex_unlock(&dev->lock);
        return -1;
    }
    struct pci_bar *b = &dev->bars[index];
    *b = (struct pci_bar){
        .kind = kind, .size = size, .ops = ops, .opaque = opaque, .mapped = PCI_NO_ADDRESS};
    if (allocate(dev, b) < 0) {
        pthread_mutex_unlock(&dev->lock);
        return qk_fail(err, errlen, "%s: no room for BAR %u (0x%llx bytes) in the PCI windows",
                       dev->name, index, (unsigned long long)size);
    }
    if (bus_register(bar_bus(dev, b), b->allocated, size, ops, opaque, dev->name, err, errlen) <
        0) {
        give_back(dev, b);
        pthread_mutex_unlock(&dev->lock);
        return -1;
    }
    b->present = true;
    b->mapped = b->allocated;
    if (kind == PCI_BAR_MEM64)
        dev->bars[index + 1] =
            (struct pci_bar){.present = true, .upper = true, .mapped = PCI_NO_ADDRESS};
    program_bar(dev, index, prefetchable);
    pthread_mutex_unlock(&dev->lock);
    return 0;
}

uint64_t pci_device_bar_address(const struct pci_device *dev, unsigned index)
{
    if (!dev || index >= PCI_NUM_BARS)
        return PCI_NO_ADDRESS;
    /* The lock is not part of the device's observable state: taking it is a read. */
    struct pci_device *d = (struct pci_device *)dev;
    pthread_mutex_lock(&d->lock);
    uint64_t a = PCI_NO_ADDRESS;
    if (d->bars[index].present && !d->bars[index].upper)
        a = programmed_address(d, index);
    pthread_mutex_unlock(&d->lock);
    return a;
}
