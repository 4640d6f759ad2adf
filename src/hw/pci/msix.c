/* MSI-X (PCI Local Bus 3.0, 6.8.2): the capability's Message Control (enable, function mask)
 * in config space, the vector table and pending-bit array in a memory BAR of their own. Each
 * vector owns an MSI route from the machine, reprogrammed with the table's address/data when
 * the guest unmasks the vector or changes an unmasked one. A vector signalled while it (or
 * the function) is masked, or MSI-X is off, sets its pending bit; unmasking delivers it.
 *
 * Everything is under dev->lock: table accesses come from vCPUs, notifications from device
 * threads. msi_set and msi_fire are called with it held (they only reprogram a route or
 * signal an eventfd/APIC message, never call back into PCI). */
#include "hw/pci/pci_internal.h"

#include "vm/snapshot.h"
#include "util/log.h"

#include <stdlib.h>
#include <string.h>

#define MSIX_CONTROL 2 /* offsets inside the capability */
#define MSIX_TABLE 4
#define MSIX_PBA 8
#define MSIX_CAP_BODY 10 /* after ID and next pointer */
#define MSIX_ENABLE 0x8000u
#define MSIX_FUNCTION_MASK 0x4000u
#define MSIX_ENTRY_ADDR_LO 0
#define MSIX_ENTRY_ADDR_HI 4
#define MSIX_ENTRY_DATA 8
#define MSIX_ENTRY_CONTROL 12
#define MSIX_VECTOR_MASKED 0x1u
#define MSIX_MIN_BAR_SIZE 4096

struct msix_route {
    int route;
    bool programmed;
    uint64_t address;
    uint32_t data;
};

struct pci_msix {
    unsigned nr;
    uint8_t cap;
    uint32_t table_size; /* the PBA follows at this (8-byte aligned) offset */
    uint32_t pba_size;
    uint8_t *table;
    uint8_t *pba;
    struct msix_route *routes;
};

uint16_t pci_msix_control(const struct pci_device *dev)
{
    return dev->msix ? pci_get16(dev->config + dev->msix->cap + MSIX_CONTROL) : 0;
}

bool pci_msix_enabled_locked(const struct pci_device *dev)
{
    return (pci_msix_control(dev) & MSIX_ENABLE) != 0;
}

bool pci_msix_enabled(const struct pci_device *dev)
{
    struct pci_device *d = (struct pci_device *)dev; /* locking is a read */
    pthread_mutex_lock(&d->lock);
    bool on = pci_msix_enabled_locked(d);
    pthread_mutex_unlock(&d->lock);
    return on;
}

static uint8_t *entry(const struct pci_msix *m, unsigned v)
{
    return m->table + (size_t)v * PCI_MSIX_ENTRY_SIZE;
}

static bool pending(const struct pci_msix *m, unsigned v)
{
    return m->pba[v / 8] & (1u << (v % 8));
}

static void set_pending(struct pci_msix *m, unsigned v, bool on)
{
    if (on)
        m->pba[v / 8] |= (uint8_t)(1u << (v % 8));
    else
        m->pba[v / 8] &= (uint8_t) ~(1u << (v % 8));
}

static bool vector_masked(const struct pci_msix *m, unsigned v)
{
    return pci_get32(entry(m, v) + MSIX_ENTRY_CONTROL) & MSIX_VECTOR_MASKED;
}

static bool can_fire(const struct pci_device *dev, unsigned v)
{
    uint16_t control = pci_msix_control(dev);
    return (control & MSIX_ENABLE) && !(control & MSIX_FUNCTION_MASK) &&
           !vector_masked(dev->msix, v);
}

/* Hand an unmasked vector's address/data to its route when they changed. */
static void program(struct pci_device *dev, unsigned v)
{
    struct pci_msix *m = dev->msix;
    if (vector_masked(m, v))
        return;
    const uint8_t *e = entry(m, v);
    uint64_t address =
        pci_get32(e + MSIX_ENTRY_ADDR_LO) | (uint64_t)pci_get32(e + MSIX_ENTRY_ADDR_HI) << 32;
    uint32_t data = pci_get32(e + MSIX_ENTRY_DATA);
    struct msix_route *r = &m->routes[v];
    if (r->programmed && r->address == address && r->data == data)
        return;
    const struct device_host *h = &dev->bus->host;
    h->msi_set(h->msi_ctx, r->route, address, data);
    *r = (struct msix_route){r->route, true, address, data};
}

static void deliver_pending(struct pci_device *dev, unsigned v)
{
    if (!pending(dev->msix, v) || !can_fire(dev, v))
        return;
    set_pending(dev->msix, v, false);
    const struct device_host *h = &dev->bus->host;
    h->msi_fire(h->msi_ctx, dev->msix->routes[v].route);
}

void pci_msix_notify(struct pci_device *dev, unsigned vector)
{
    if (!dev)
        return;
    pthread_mutex_lock(&dev->lock);
    struct pci_msix *m = dev->msix;
    if (m && vector < m->nr) {
        if (can_fire(dev, vector)) {
            const struct device_host *h = &dev->bus->host;
            h->msi_fire(h->msi_ctx, m->routes[vector].route);
        } else {
            set_pending(m, vector, true);
        }
    }
    pthread_mutex_unlock(&dev->lock);
}

void pci_msix_control_written(struct pci_device *dev, uint16_t old)
{
    if (!dev->msix)
        return;
    uint16_t now = pci_msix_control(dev);
    if (!((old ^ now) & (MSIX_ENABLE | MSIX_FUNCTION_MASK)))
        return;
    for (unsigned v = 0; v < dev->msix->nr; v++)
        deliver_pending(dev, v);
}

void pci_msix_save_locked(struct pci_device *dev, struct snap_writer *w)
{
    struct pci_msix *m = dev->msix;
    if (!m)
        return;
    snap_put(w, m->table, m->table_size);
    snap_put(w, m->pba, m->pba_size);
}

int pci_msix_load_locked(struct pci_device *dev, struct snap_reader *r)
{
    struct pci_msix *m = dev->msix;
    if (!m)
        return 0;
    snap_get(r, m->table, m->table_size);
    snap_get(r, m->pba, m->pba_size);
    if (r->failed)
        return -1;
    for (unsigned v = 0; v < m->nr; v++) {
        m->routes[v].programmed = false;
        program(dev, v);
    }
    return 0;
}

/* --- the table BAR ---------------------------------------------------------------------- */

/* Aligned 4- and 8-byte accesses only (the spec's rule); anything else reads zero and writes
 * nothing. */
static bool table_access_ok(uint64_t offset, unsigned size)
{
    return (size == 4 || size == 8) && !(offset & (size - 1));
}

static uint64_t msix_read(void *opaque, uint64_t offset, unsigned size)
{
    struct pci_device *dev = opaque;
    uint64_t v = 0;
    if (!table_access_ok(offset, size))
        return 0;
    pthread_mutex_lock(&dev->lock);
    struct pci_msix *m = dev->msix;
    const uint8_t *src = NULL;
    if (m && offset < m->table_size && size <= m->table_size - offset)
        src = m->table + offset;
    else if (m && offset >= m->table_size && offset - m->table_size < m->pba_size &&
             size <= m->pba_size - (offset - m->table_size))
        src = m->pba + (offset - m->table_size);
    for (unsigned i = 0; src && i < size; i++)
        v |= (uint64_t)src[i] << (8 * i);
    pthread_mutex_unlock(&dev->lock);
    return v;
}

static void table_write(struct pci_device *dev, uint64_t offset, unsigned size, uint64_t value)
{
    struct pci_msix *m = dev->msix;
    unsigned v = (unsigned)(offset / PCI_MSIX_ENTRY_SIZE);
    for (unsigned i = 0; i < size; i++)
        m->table[offset + i] = (uint8_t)(value >> (8 * i));
    /* Only the mask bit of Vector Control is defined; the rest reads as zero. */
    uint8_t *ctrl = entry(m, v) + MSIX_ENTRY_CONTROL;
    pci_put32(ctrl, pci_get32(ctrl) & MSIX_VECTOR_MASKED);
    program(dev, v);
    deliver_pending(dev, v);
}

/* The PBA is read-only. */
static void msix_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
    struct pci_device *dev = opaque;
    if (!table_access_ok(offset, size))
        return;
    pthread_mutex_lock(&dev->lock);
    struct pci_msix *m = dev->msix;
    if (m && offset < m->table_size && size <= m->table_size - offset)
        table_write(dev, offset, size, value);
    pthread_mutex_unlock(&dev->lock);
}

static const struct bus_device_ops msix_ops = {msix_read, msix_write};

/* --- setup ------------------------------------------------------------------------------ */

static void msix_destroy(struct pci_msix *m)
{
    if (!m)
        return;
    free(m->table);
    free(m->pba);
    free(m->routes);
    free(m);
}

void pci_msix_free(struct pci_device *dev)
{
    msix_destroy(dev->msix);
    dev->msix = NULL;
}

static uint64_t bar_size_for(uint32_t bytes)
{
    uint64_t size = MSIX_MIN_BAR_SIZE;
    while (size < bytes)
        size *= 2;
    return size;
}

/* Tables, every vector masked (the reset state), and one route per vector. Routes already
 * handed out stay allocated when a later one fails: the host has no way to return them. */
static struct pci_msix *msix_create(const struct device_host *h, unsigned nr, char *err,
                                    size_t errlen)
{
    struct pci_msix *m = calloc(1, sizeof(*m));
    if (!m) {
        qk_fail(err, errlen, "out of memory");
        return NULL;
    }
    m->nr = nr;
    m->table_size = nr * PCI_MSIX_ENTRY_SIZE;
    m->pba_size = (nr + 63) / 64 * 8;
    m->table = calloc(nr, PCI_MSIX_ENTRY_SIZE);
    m->pba = calloc(1, m->pba_size);
    m->routes = calloc(nr, sizeof(*m->routes));
    if (!m->table || !m->pba || !m->routes) {
        msix_destroy(m);
        qk_fail(err, errlen, "out of memory");
        return NULL;
    }
    for (unsigned v = 0; v < nr; v++) {
        pci_put32(entry(m, v) + MSIX_ENTRY_CONTROL, MSIX_VECTOR_MASKED);
        m->routes[v].route = h->msi_alloc(h->msi_ctx);
        if (m->routes[v].route < 0) {
            msix_destroy(m);
            qk_fail(err, errlen, "no MSI route left for vector %u of %u", v, nr);
            return NULL;
        }
    }
    return m;
}

int pci_device_init_msix(struct pci_device *dev, unsigned nr_vectors, unsigned bar, char *err,
                         size_t errlen)
{
    const struct device_host *h = &dev->bus->host;
    if (nr_vectors == 0 || nr_vectors > PCI_MSIX_MAX_VECTORS)
        return qk_fail(err, errlen, "%s: %u MSI-X vectors (1-%u)", dev->name, nr_vectors,
                       PCI_MSIX_MAX_VECTORS);
    if (!h->msi_alloc || !h->msi_set || !h->msi_fire)
        return qk_fail(err, errlen, "%s: the machine has no MSIs", dev->name);
    pthread_mutex_lock(&dev->lock);
    bool ok = !dev->msix && pci_cap_fits(dev, MSIX_CAP_BODY);
    pthread_mutex_unlock(&dev->lock);
    if (!ok)
        return qk_fail(err, errlen, "%s: MSI-X is set up already or has no room", dev->name);
    char why[160];
    struct pci_msix *m = msix_create(h, nr_vectors, why, sizeof(why));
    if (!m)
        return qk_fail(err, errlen, "%s: MSI-X: %s", dev->name, why);
    uint64_t size = bar_size_for(m->table_size + m->pba_size);
    if (pci_device_add_bar(dev, bar, PCI_BAR_MEM32, size, false, &msix_ops, dev, err, errlen) < 0) {
        msix_destroy(m);
        return -1;
    }
    uint8_t body[MSIX_CAP_BODY];
    pci_put16(body, (uint16_t)(nr_vectors - 1)); /* table size N-1, disabled, not masked */
    pci_put32(body + 2, 0 | bar);                /* table at offset 0 of the BAR */
    pci_put32(body + 6, m->table_size | bar);    /* PBA right after it */
    uint8_t cap = pci_device_add_capability(dev, PCI_CAP_ID_MSIX, body, sizeof(body));
    pthread_mutex_lock(&dev->lock);
    m->cap = cap;
    dev->wmask[cap + MSIX_CONTROL + 1] = (MSIX_ENABLE | MSIX_FUNCTION_MASK) >> 8;
    dev->msix = m;
    pthread_mutex_unlock(&dev->lock);
    return 0;
}
