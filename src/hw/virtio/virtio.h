/* virtio 1.x devices as their models see them: a device gives its ops (ID, features, config
 * space, queue notifications, reset) to the transport (virtio-pci, modern only) and reads
 * requests out of split virtqueues through one shared walker (virtqueue.c).
 *
 * Threads: queue_notify runs on a vCPU thread (a write to the notify region) or, with a KVM
 * ioeventfd, on the I/O thread; devices complete requests from wherever their I/O finishes.
 * A virtqueue is owned by one side at a time: vq_pop/vq_push/vq_notify take the queue's own
 * lock, so several threads may use one queue.
 *
 * Hostile rings: descriptor loops, chains longer than the queue, addresses outside RAM,
 * lengths that overflow, nested indirect tables, an avail index that jumps by more than the
 * queue size: vq_pop returns -1, the transport sets DEVICE_NEEDS_RESET and raises a config
 * interrupt, the device stops using the queue. Nothing spins; nothing is allocated by size
 * the guest chose. */
#ifndef QUOKKA_HW_VIRTIO_VIRTIO_H
#define QUOKKA_HW_VIRTIO_VIRTIO_H

#include "hw/device.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Device IDs (virtio 1.2, 5) */
#define VIRTIO_ID_NET 1
#define VIRTIO_ID_BLOCK 2
#define VIRTIO_ID_CONSOLE 3
#define VIRTIO_ID_RNG 4
#define VIRTIO_ID_VSOCK 19

/* Transport feature bits the transport itself offers and handles */
#define VIRTIO_F_INDIRECT_DESC 28
#define VIRTIO_F_EVENT_IDX 29
#define VIRTIO_F_VERSION_1 32
#define VIRTIO_F_ACCESS_PLATFORM 33
#define VIRTIO_F_RING_PACKED 34

#define VQ_MAX_SIZE 1024 /* largest queue a device may offer */
#define VQ_MAX_SEGS 1024 /* longest chain (direct + indirect) one request may have */

struct virtio_device;
struct virtqueue;

struct virtio_device_ops {
    uint16_t device_id;
    uint64_t features; /* device-specific bits; the transport adds its own */
    unsigned num_queues;
    uint16_t queue_max_size; /* power of two, <= VQ_MAX_SIZE */
    uint32_t config_size;    /* bytes of device-specific configuration */
    /* Device config space accesses (offset + len within config_size, already checked). */
    void (*config_read)(void *opaque, uint32_t offset, void *buf, uint32_t len);
    void (*config_write)(void *opaque, uint32_t offset, const void *buf, uint32_t len);
    /* The driver set DRIVER_OK: queues are set up (virtio_queue() finds them) and features
     * final. Return -1 to refuse (the transport sets NEEDS_RESET). */
    int (*activate)(void *opaque);
    /* The driver made buffers available on queue `index`. */
    void (*queue_notify)(void *opaque, unsigned index);
    /* Device reset (status written 0) or the VM going away: stop using the queues, wait for
     * I/O in flight to finish, forget per-activation state. The transport clears the queues
     * after this returns. */
    void (*reset)(void *opaque);
};

/* Create a virtio-pci function for the device on host->pci: modern interface only (device ID
 * 0x1040 + id), capabilities for common, notify, ISR, device config and PCI-config access,
 * MSI-X with num_queues + 1 vectors, INTx fallback. */
struct virtio_device *virtio_pci_new(const struct device_host *host,
                                     const struct virtio_device_ops *ops, void *opaque,
                                     const char *name, char *err, size_t errlen);
struct snap_writer;
struct snap_reader;
/* Snapshots: the PCI function, transport and queue indices (no request may be in flight);
 * load into a freshly created device restarts what the driver had running. */
void virtio_pci_save(struct virtio_device *vdev, struct snap_writer *w);
int virtio_pci_load(struct virtio_device *vdev, struct snap_reader *r, char *err, size_t errlen);
/* Reset (calling ops->reset) and remove the device. */
void virtio_pci_free(struct virtio_device *vdev);

/* Features the driver accepted (valid from activate on). */
uint64_t virtio_features(const struct virtio_device *vdev);
/* Queue `index` when the driver enabled it, else NULL. */
struct virtqueue *virtio_queue(struct virtio_device *vdev, unsigned index);
/* The device's config space changed: config interrupt. */
void virtio_config_changed(struct virtio_device *vdev);
/* Something is broken beyond this request (e.g. a hostile ring): DEVICE_NEEDS_RESET. */
void virtio_set_needs_reset(struct virtio_device *vdev);
/* Guest memory, for devices that copy into buffers they mapped. */
const struct dma_space *virtio_dma(const struct virtio_device *vdev);

/* --- virtqueues ------------------------------------------------------------------------- */

struct vq_buf {
    void *host; /* mapped guest memory */
    uint32_t len;
    uint64_t gpa;
};

/* One request: the device-readable buffers first (nr_out), then the device-writable ones
 * (nr_in), in chain order. */
struct vq_elem {
    uint16_t head; /* descriptor index to return in the used ring */
    unsigned nr_out, nr_in;
    uint64_t out_len, in_len; /* total bytes each way */
    struct vq_buf buf[VQ_MAX_SEGS];
};

/* Take the next available request: 1 with *elem filled, 0 when the ring is empty, -1 when
 * the ring is malformed (the device is put in NEEDS_RESET; stop using the queue). */
int vq_pop(struct virtqueue *vq, struct vq_elem *elem);
/* Return a request with `written` bytes stored into its writable buffers (from the start);
 * the written ranges are reported to the DMA space (code invalidation) before the used ring
 * moves. */
void vq_push(struct virtqueue *vq, const struct vq_elem *elem, uint32_t written);
/* Interrupt the driver if it wants one for what was pushed since the last call (EVENT_IDX:
 * used_event; otherwise VRING_AVAIL_F_NO_INTERRUPT). */
void vq_notify(struct virtqueue *vq);
/* Notification suppression while the device is already processing: with enable false the
 * driver is told not to kick (VRING_USED_F_NO_NOTIFY / avail_event). After re-enabling,
 * returns true if buffers arrived meanwhile (pop again). */
bool vq_set_notification(struct virtqueue *vq, bool enable);
/* Queue size the driver chose, and its index. */
uint16_t vq_size(const struct virtqueue *vq);
unsigned vq_index(const struct virtqueue *vq);

/* Copy helpers over an element's buffers: gather from the readable ones at `offset`, scatter
 * into the writable ones at `offset`; return the bytes copied (less at the end). */
size_t vq_elem_read(const struct vq_elem *elem, size_t offset, void *dst, size_t len);
size_t vq_elem_write(const struct vq_elem *elem, size_t offset, const void *src, size_t len);

#endif
