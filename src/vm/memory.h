/* Guest physical memory: one anonymous host mapping, split around the 32-bit MMIO hole. */
#ifndef QUOKKA_VM_MEMORY_H
#define QUOKKA_VM_MEMORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GUEST_LOW_RAM_END 0xC0000000ULL /* RAM below 4G stops at 3 GiB; the rest is MMIO */
#define GUEST_HIGH_RAM_BASE 0x100000000ULL
#define GUEST_MIN_RAM (2ULL << 20)
#define GUEST_MAX_RAM (1ULL << 40)

struct guest_ram_region {
    uint64_t gpa;
    uint64_t size;
    uint8_t *host;
};

struct guest_memory {
    struct guest_ram_region region[2];
    unsigned nr_regions;
    uint8_t *mapping;  /* whole host mapping (regions point into it) */
    uint64_t ram_size; /* total bytes of RAM */
};

/* Reserve host memory for `size` bytes of guest RAM (lazily backed). */
int guest_memory_init(struct guest_memory *mem, uint64_t size, char *err, size_t errlen);
void guest_memory_destroy(struct guest_memory *mem);
/* Snapshots: back the whole of guest RAM by `path` (exactly ram_size bytes), MAP_PRIVATE so
 * pages fault in from the file as the guest touches them and its writes stay private. */
int guest_memory_map_file(struct guest_memory *mem, const char *path, char *err, size_t errlen);
/* Write guest RAM to path (holes where pages are zero). */
int guest_memory_save(const struct guest_memory *mem, const char *path, char *err, size_t errlen);

/* Host pointer for [gpa, gpa+len) if the whole range is RAM inside one region, else NULL.
 * The only way host code turns a guest address into a pointer. */
void *gpa_to_host(const struct guest_memory *mem, uint64_t gpa, uint64_t len);

/* Bounded copies; return -1 (and copy nothing) when the range is not entirely RAM. */
int guest_write(const struct guest_memory *mem, uint64_t gpa, const void *src, uint64_t len);
int guest_read(const struct guest_memory *mem, uint64_t gpa, void *dst, uint64_t len);

/* Bytes of RAM below 4 GiB / above 4 GiB. */
uint64_t guest_low_ram(const struct guest_memory *mem);
uint64_t guest_high_ram(const struct guest_memory *mem);

#endif
