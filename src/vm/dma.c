#include "vm/dma.h"

#include "vm/memory.h"

#include <string.h>

void *dma_map(const struct dma_space *dma, uint64_t gpa, uint64_t len)
{
    if (!len)
        return NULL;
    return gpa_to_host(dma->mem, gpa, len);
}

void dma_mark_written(const struct dma_space *dma, uint64_t gpa, uint64_t len)
{
    if (len && dma->notify_write)
        dma->notify_write(dma->ctx, gpa, len);
}

int dma_read(const struct dma_space *dma, uint64_t gpa, void *dst, uint64_t len)
{
    if (!len)
        return 0;
    const void *src = gpa_to_host(dma->mem, gpa, len);
    if (!src)
        return -1;
    memcpy(dst, src, (size_t)len);
    return 0;
}

int dma_write(const struct dma_space *dma, uint64_t gpa, const void *src, uint64_t len)
{
    if (!len)
        return 0;
    void *dst = gpa_to_host(dma->mem, gpa, len);
    if (!dst)
        return -1;
    memcpy(dst, src, (size_t)len);
    dma_mark_written(dma, gpa, len);
    return 0;
}
