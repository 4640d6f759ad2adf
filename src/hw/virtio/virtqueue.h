/* Split virtqueues (virtio 1.2, 2.7) as the transport and the tests see them: the queue object,
 * how a transport starts and stops it, and the ring layout. Devices use only virtio.h.
 *
 * The three ring areas are mapped once when the queue starts (guest RAM never moves, so the
 * mappings stay valid); everything the guest writes there is read once into locals before it
 * is checked, so a guest that changes a descriptor while the device walks it gets a consistent
 * (if useless) view, never an unchecked one. */
#ifndef QUOKKA_HW_VIRTIO_VIRTQUEUE_H
#define QUOKKA_HW_VIRTIO_VIRTQUEUE_H

#include "hw/virtio/virtio.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define VRING_DESC_F_NEXT 1
#define VRING_DESC_F_WRITE 2
#define VRING_DESC_F_INDIRECT 4
#define VRING_AVAIL_F_NO_INTERRUPT 1
#define VRING_USED_F_NO_NOTIFY 1

#define VRING_DESC_SIZE 16     /* struct virtq_desc: le64 addr, le32 len, le16 flags, next */
#define VRING_USED_ELEM_SIZE 8 /* struct virtq_used_elem: le32 id, le32 len */
#define VRING_DESC_ALIGN 16    /* the spec's alignments (2.7); the ring atomics need them */
#define VRING_AVAIL_ALIGN 2
#define VRING_USED_ALIGN 4

/* Bytes of each area for a queue of `size` entries, with the EVENT_IDX fields (virtio 1.x
 * always reserves them). */
static inline uint64_t vring_desc_bytes(uint16_t size)
{
    return (uint64_t)VRING_DESC_SIZE * size;
}
static inline uint64_t vring_avail_bytes(uint16_t size)
{
    return 6 + 2 * (uint64_t)size;
}
static inline uint64_t vring_used_bytes(uint16_t size)
{
    return 6 + (uint64_t)VRING_USED_ELEM_SIZE * size;
}

/* EVENT_IDX: does moving an index from old_idx to new_idx pass `event` (the other side asked
 * to hear when the entry at `event` is written)? All arithmetic mod 2^16 (Linux's
 * vring_need_event). */
static inline bool vring_need_event(uint16_t event, uint16_t new_idx, uint16_t old_idx)
{
    return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old_idx);
}

/* What the transport wants to hear about; both run with the queue's lock released. */
struct vq_hooks {
    void (*interrupt)(void *opaque, unsigned index); /* vq_notify decided to interrupt */
    void (*malformed)(void *opaque, unsigned index); /* vq_pop met a hostile ring (once) */
    void *opaque;
};

/* Where the driver put the rings and which ring features were negotiated. */
struct vq_layout {
    uint16_t size; /* power of two, 1..VQ_MAX_SIZE */
    uint64_t desc, avail, used;
    bool event_idx, indirect;
};

struct virtqueue {
    pthread_mutex_t lock; /* everything below, against concurrent vq_* callers */
    const struct dma_space *dma;
    unsigned index;
    struct vq_hooks hooks;

    bool ready;  /* started and not stopped */
    bool broken; /* a malformed ring was seen: vq_pop fails until the queue restarts */
    bool event_idx, indirect;
    bool notify_enabled; /* the device wants kicks (vq_set_notification) */
    uint16_t size;
    uint16_t last_avail;     /* next avail ring entry to take */
    uint16_t used_idx;       /* next used ring entry (the device's copy of used->idx) */
    uint16_t signalled_used; /* used_idx at the last vq_notify */
    uint64_t desc_gpa, avail_gpa, used_gpa;
    const uint8_t *desc; /* host mappings of the three areas */
    uint16_t *avail;     /* flags, idx, ring[size], used_event */
    uint8_t *used;       /* flags, idx, elems[size], avail_event */
};

void vq_init(struct virtqueue *vq, const struct dma_space *dma, unsigned index,
             const struct vq_hooks *hooks);
void vq_destroy(struct virtqueue *vq);
/* Start using the rings at `layout`: -1 (and the queue stays stopped) when the size is not a
 * power of two up to VQ_MAX_SIZE, an area is misaligned or not entirely RAM. */
int vq_start(struct virtqueue *vq, const struct vq_layout *layout);
/* Forget the rings (device reset). vq_pop returns 0 and vq_push/vq_notify do nothing after. */
void vq_stop(struct virtqueue *vq);
/* Snapshots: the device's ring indices (the rings themselves are in guest memory). */
struct vq_indices {
    uint16_t last_avail, used_idx, signalled_used;
    bool notify_enabled, broken;
};
void vq_get_indices(struct virtqueue *vq, struct vq_indices *out);
/* On a started queue. */
void vq_set_indices(struct virtqueue *vq, const struct vq_indices *in);
bool vq_ready(struct virtqueue *vq);

#endif
