#include "vm/memory.h"

#include "util/log.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

int guest_memory_init(struct guest_memory *mem, uint64_t size, char *err, size_t errlen)
{
    memset(mem, 0, sizeof(*mem));
    if (size < GUEST_MIN_RAM)
        return qk_fail(err, errlen, "memory size %llu bytes is below the 2M minimum",
                       (unsigned long long)size);
    if (size > GUEST_MAX_RAM)
        return qk_fail(err, errlen, "memory size %llu bytes is above the 1T maximum",
                       (unsigned long long)size);
    if (size & 0xfff)
        return qk_fail(err, errlen, "memory size %llu bytes is not a multiple of 4K",
                       (unsigned long long)size);
    /* MAP_NORESERVE: guest RAM is touched lazily; the kernel backs what the guest uses. */
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (p == MAP_FAILED)
        return qk_fail(err, errlen, "cannot reserve %llu bytes of guest memory: %s",
                       (unsigned long long)size, strerror(errno));
    mem->mapping = p;
    mem->ram_size = size;
    uint64_t low = size < GUEST_LOW_RAM_END ? size : GUEST_LOW_RAM_END;
    mem->region[0] = (struct guest_ram_region){.gpa = 0, .size = low, .host = p};
    mem->nr_regions = 1;
    if (size > low) {
        mem->region[1] = (struct guest_ram_region){
            .gpa = GUEST_HIGH_RAM_BASE, .size = size - low, .host = (uint8_t *)p + low};
        mem->nr_regions = 2;
    }
    return 0;
}

void guest_memory_destroy(struct guest_memory *mem)
{
    if (mem->mapping)
        munmap(mem->mapping, mem->ram_size);
    memset(mem, 0, sizeof(*mem));
}

void *gpa_to_host(const struct guest_memory *mem, uint64_t gpa, uint64_t len)
{
    for (unsigned i = 0; i < mem->nr_regions; i++) {
        const struct guest_ram_region *r = &mem->region[i];
        /* Written to avoid overflow: gpa + len may wrap for hostile values. */
        if (gpa >= r->gpa && gpa - r->gpa <= r->size && len <= r->size - (gpa - r->gpa))
            return r->host + (gpa - r->gpa);
    }
    return NULL;
}

int guest_write(const struct guest_memory *mem, uint64_t gpa, const void *src, uint64_t len)
{
    void *dst = gpa_to_host(mem, gpa, len);
    if (!dst)
        return -1;
    memcpy(dst, src, len);
    return 0;
}

int guest_read(const struct guest_memory *mem, uint64_t gpa, void *dst, uint64_t len)
{
    const void *src = gpa_to_host(mem, gpa, len);
    if (!src)
        return -1;
    memcpy(dst, src, len);
    return 0;
}

uint64_t guest_low_ram(const struct guest_memory *mem)
{
    return mem->nr_regions ? mem->region[0].size : 0;
}

uint64_t guest_high_ram(const struct guest_memory *mem)
{
    return mem->nr_regions > 1 ? mem->region[1].size : 0;
}
