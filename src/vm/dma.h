/* Guest memory as devices see it: bounded reads, writes and mappings of guest-physical ranges.
 *
 * No device computes a host pointer by itself: every range is checked to lie inside one RAM
 * region (a range that leaves RAM or crosses the 3G-4G hole fails). Writes made by host code
 * are reported to the accelerator (notify_write) so the translator drops code translated from
 * those pages, as QEMU's address_space_write does: a block read from disk over old code never
 * runs a stale translation. All functions are safe from any thread; mappings stay valid for
 * the life of the VM (guest RAM is one host mapping that never moves). */
#ifndef QUOKKA_VM_DMA_H
#define QUOKKA_VM_DMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct guest_memory;

struct dma_space {
    const struct guest_memory *mem;
    /* Host code changed guest RAM [gpa, gpa+len). NULL when nobody caches guest code (KVM). */
    void (*notify_write)(void *ctx, uint64_t gpa, uint64_t len);
    void *ctx;
};

/* Host pointer for [gpa, gpa+len) when it is entirely RAM (len 1..), else NULL. A device that
 * writes through a mapping calls dma_mark_written() for what it wrote, before it tells the
 * guest (used ring, interrupt). */
void *dma_map(const struct dma_space *dma, uint64_t gpa, uint64_t len);
void dma_mark_written(const struct dma_space *dma, uint64_t gpa, uint64_t len);

/* Bounded copies: -1 (nothing copied) when the range is not entirely RAM. len 0 succeeds. */
int dma_read(const struct dma_space *dma, uint64_t gpa, void *dst, uint64_t len);
int dma_write(const struct dma_space *dma, uint64_t gpa, const void *src, uint64_t len);

#endif
