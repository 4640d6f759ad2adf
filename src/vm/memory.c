#include "vm/memory.h"

#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

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
    /* Transparent huge pages where the host offers them (as QEMU asks): one fault per 2 MiB
     * the guest touches instead of 512, and fewer host TLB misses on guest memory. */
    madvise(p, size, MADV_HUGEPAGE);
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

int guest_memory_map_file(struct guest_memory *mem, const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return qk_fail(err, errlen, "cannot open memory file '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != mem->ram_size) {
        close(fd);
        return qk_fail(err, errlen, "memory file '%s' is not %llu bytes of guest RAM", path,
                       (unsigned long long)mem->ram_size);
    }
    void *p = mmap(mem->mapping, mem->ram_size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE, fd, 0);
    close(fd);
    if (p == MAP_FAILED)
        return qk_fail(err, errlen, "cannot map memory file '%s': %s", path, strerror(errno));
    return 0;
}

int guest_memory_save(const struct guest_memory *mem, const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return qk_fail(err, errlen, "cannot write memory file '%s': %s", path, strerror(errno));
    /* Runs of non-zero pages in one write each; zero pages stay holes (read back as 0). */
    static const uint8_t zero[4096];
    int rc = 0;
    uint64_t run = 0, run_len = 0;
    for (uint64_t off = 0; off <= mem->ram_size && rc == 0; off += sizeof(zero)) {
        bool data = off < mem->ram_size && memcmp(mem->mapping + off, zero, sizeof(zero)) != 0;
        if (data) {
            if (!run_len)
                run = off;
            run_len += sizeof(zero);
            continue;
        }
        for (uint64_t done = 0; run_len && done < run_len && rc == 0;) {
            ssize_t n = pwrite(fd, mem->mapping + run + done, run_len - done, (off_t)(run + done));
            if (n <= 0)
                rc = -1;
            else
                done += (uint64_t)n;
        }
        run_len = 0;
    }
    if (rc == 0 && ftruncate(fd, (off_t)mem->ram_size) < 0)
        rc = -1;
    if (rc < 0)
        qk_fail(err, errlen, "cannot write memory file '%s': %s", path, strerror(errno));
    close(fd);
    return rc;
}
