/* libFuzzer target: the split-virtqueue walker and virtio-blk's request checker on a ring
 * the input writes. Guest RAM is 1 MiB; the input is copied to its start, which holds the
 * descriptor table (0x0), the avail ring (0x1000), the used ring (0x2000), and whatever
 * indirect tables and buffers the descriptors point at. The first byte picks the queue size
 * (a power of two up to 256) and the ring features. The device side then pops what is
 * available (bounded: the ring's size twice), checks each chain as a virtio-blk request,
 * copies data both ways, pushes and notifies, as devices do. Nothing may read or write
 * outside RAM, loop, or crash; a malformed ring must end in vq_pop returning -1. */
#include "hw/virtio/virtio_blk.h"
#include "hw/virtio/virtqueue.h"
#include "vm/dma.h"
#include "vm/memory.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define RAM_SIZE (16ULL << 20)
#define INPUT_MAX (1u << 20) /* what the input may cover, cleared before each */
#define DESC_GPA 0x0ULL
#define AVAIL_GPA 0x1000ULL
#define USED_GPA 0x2000ULL

static struct guest_memory mem;
static struct dma_space dma;
static uint64_t written_bytes;

static void note_write(void *ctx, uint64_t gpa, uint64_t len)
{
    (void)ctx;
    if (gpa >= RAM_SIZE || len > RAM_SIZE - gpa)
        abort(); /* the walker reported a write outside RAM */
    written_bytes += len;
}

static void on_interrupt(void *opaque, unsigned index)
{
    (void)opaque, (void)index;
}

static void on_malformed(void *opaque, unsigned index)
{
    (void)opaque, (void)index;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    static uint8_t scratch[1 << 16];
    if (!ready) {
        char err[256];
        if (guest_memory_init(&mem, RAM_SIZE, err, sizeof(err)) < 0)
            abort();
        dma = (struct dma_space){.mem = &mem, .notify_write = note_write, .ctx = NULL};
        ready = 1;
    }
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    data++, size--;
    uint8_t *ram = gpa_to_host(&mem, 0, RAM_SIZE);
    memset(ram, 0, INPUT_MAX);
    memcpy(ram, data, size < INPUT_MAX ? size : INPUT_MAX);

    struct virtqueue vq;
    struct vq_hooks hooks = {on_interrupt, on_malformed, NULL};
    vq_init(&vq, &dma, 0, &hooks);
    struct vq_layout layout = {
        .size = (uint16_t)(1u << (mode % 9)),
        .desc = DESC_GPA,
        .avail = AVAIL_GPA,
        .used = USED_GPA,
        .event_idx = (mode & 0x10) != 0,
        .indirect = (mode & 0x20) != 0,
    };
    if (vq_start(&vq, &layout) == 0) {
        static struct vq_elem elem;
        static struct iovec iov[BLK_SEG_MAX];
        const struct blk_limits lim = {.capacity = 2048, .readonly = (mode & 0x40) != 0};
        for (unsigned n = 0; n < 2u * layout.size + 2; n++) {
            int rc = vq_pop(&vq, &elem);
            if (rc <= 0)
                break;
            struct blk_request req;
            int status = blk_parse_request(&elem, &lim, &req, iov);
            size_t got = vq_elem_read(&elem, 0, scratch, sizeof(scratch));
            size_t put = vq_elem_write(&elem, 0, scratch, got);
            if (status >= 0 && req.status)
                *req.status = (uint8_t)status;
            vq_push(&vq, &elem, (uint32_t)put);
            if (n & 1)
                vq_set_notification(&vq, n & 2);
            vq_notify(&vq);
        }
        vq_stop(&vq);
    }
    vq_destroy(&vq);
    return 0;
}
