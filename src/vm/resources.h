/* Resource allocators handed to devices (Firecracker's ResourceAllocator): address windows
 * for PCI BARs (32-bit and 64-bit MMIO, port I/O) and interrupt lines (GSIs). Devices never
 * pick a free address themselves. Thread-safe (BARs are handed out while devices are created,
 * but hot-plug may come later). */
#ifndef QUOKKA_VM_RESOURCES_H
#define QUOKKA_VM_RESOURCES_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define RANGE_ALLOC_MAX 256

/* First-fit allocator over [base, base+size), aligned requests. */
struct range_alloc {
    uint64_t base, size;
    unsigned nr;
    struct {
        uint64_t base, size;
    } used[RANGE_ALLOC_MAX]; /* sorted by base */
};

void range_alloc_init(struct range_alloc *a, uint64_t base, uint64_t size);
/* Lowest free aligned block of size bytes (align a power of two). -1 when none. */
int range_alloc(struct range_alloc *a, uint64_t size, uint64_t align, uint64_t *out);
/* Claim an exact block (fixed legacy addresses). -1 when taken or outside. */
int range_alloc_fixed(struct range_alloc *a, uint64_t base, uint64_t size);
void range_free(struct range_alloc *a, uint64_t base);

/* The board's windows (see vm/platform.h for where they are). */
struct vm_resources {
    pthread_mutex_t lock;
    struct range_alloc mmio32; /* PCI 32-bit memory window */
    struct range_alloc mmio64; /* PCI 64-bit memory window, above RAM */
    struct range_alloc pio;    /* PCI port I/O window */
    struct range_alloc gsi;    /* IOAPIC inputs for PCI INTx and platform devices */
};

void vm_resources_init(struct vm_resources *r, uint64_t mmio64_base, uint64_t mmio64_size);
void vm_resources_destroy(struct vm_resources *r);
/* Locked wrappers. kind: the allocator inside r. */
int vm_resources_alloc(struct vm_resources *r, struct range_alloc *kind, uint64_t size,
                       uint64_t align, uint64_t *out);
int vm_resources_claim(struct vm_resources *r, struct range_alloc *kind, uint64_t base,
                       uint64_t size);

#endif
