/* virtio over PCI, modern interface only (virtio 1.2, 4.1).
 *
 * One 64-bit memory BAR (BAR 4, as QEMU) holds four 4 KiB regions, each described by a vendor
 * capability: common configuration at 0, ISR status at 0x1000, device configuration at 0x2000
 * and the doorbells at 0x3000 (one 4-byte doorbell per queue: queue_notify_off is the queue
 * index, notify_off_multiplier 4). MSI-X lives in BAR 1 with a vector per queue plus one for
 * configuration changes; without MSI-X, the ISR status and INTx pin A. A fifth capability
 * (VIRTIO_PCI_CAP_PCI_CFG) is a window onto the BAR through configuration space.
 *
 * Queues are processed on the I/O thread, never on a vCPU thread: each doorbell has an
 * eventfd on the I/O loop. With KVM it is also an ioeventfd: the guest's 16-bit doorbell
 * write (Linux's iowrite16) signals it without a vCPU exit. Writes of other widths, and every
 * write on the translator (which has no ioeventfds), come through the BAR handler, which
 * signals the same eventfd; the I/O thread then calls kick(). So a vCPU thread's sandbox
 * needs none of the calls the devices' back ends make (io_uring, sockets, tap). Without an
 * I/O loop or host->doorbells_on_loop (unit tests), the BAR handler kicks directly.
 *
 * Locking: `lock` guards the register state; vCPU threads (BAR and config accesses), device
 * threads (vq_notify's interrupt, virtio_set_needs_reset) and the I/O thread (doorbells) take
 * it briefly. It is never held while calling the device's ops, which may call back into
 * virtio_queue() and vq_*(). `op_lock` serialises status changes (reset, activation) so two
 * vCPUs cannot interleave a reset with an activation; the device's ops run under it, so they
 * must not write the status register themselves. Order: (the PCI layer's access lock, when
 * the PCI-config window is used) -> op_lock -> lock -> queue locks and the PCI layer's device
 * lock; vq_* call back into the transport only after dropping their queue lock. */
#include "hw/pci/pci.h"
#include "hw/virtio/virtio.h"
#include "hw/virtio/virtqueue.h"
#include "util/log.h"
#include "vm/snapshot.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define VPCI_BAR 4
#define VPCI_MSIX_BAR 1
#define VPCI_REGION 0x1000
#define VPCI_COMMON 0x0000
#define VPCI_ISR 0x1000
#define VPCI_DEVICE 0x2000
#define VPCI_NOTIFY 0x3000
#define VPCI_BAR_SIZE 0x4000
#define VPCI_NOTIFY_MULT 4
#define VPCI_MAX_QUEUES (VPCI_REGION / VPCI_NOTIFY_MULT)
#define VPCI_DOORBELL_LEN 2 /* what drivers write (the queue index, 16 bits) */

#define VIRTIO_PCI_VENDOR 0x1af4
#define VIRTIO_PCI_MODERN_BASE 0x1040
#define VIRTIO_PCI_SUBSYS_QEMU 0x1100 /* modern-only devices keep >= 0x40 (spec 4.1.2.1) */
#define VIRTIO_MSI_NO_VECTOR 0xffff

/* Capability types and layout (struct virtio_pci_cap: ID, next, len, cfg_type, bar, id,
 * padding[2], le32 offset, le32 length, then per-type extra data). */
enum {
    CAP_COMMON = 1,
    CAP_NOTIFY = 2,
    CAP_ISR = 3,
    CAP_DEVICE = 4,
    CAP_PCI_CFG = 5,
};
#define CAP_LEN 16
#define CAP_BAR 4
#define CAP_OFFSET 8
#define CAP_LENGTH 12
#define CAP_CFG_DATA 16
#define CAP_CFG_LEN 20

#define STATUS_DRIVER_OK 0x04
#define STATUS_FEATURES_OK 0x08
#define STATUS_NEEDS_RESET 0x40

#define ISR_QUEUE 0x1
#define ISR_CONFIG 0x2

/* struct virtio_pci_common_cfg offsets */
enum {
    CC_DF_SELECT = 0x00,
    CC_DF = 0x04,
    CC_GF_SELECT = 0x08,
    CC_GF = 0x0c,
    CC_MSIX_CONFIG = 0x10,
    CC_NUM_QUEUES = 0x12,
    CC_STATUS = 0x14,
    CC_GENERATION = 0x15,
    CC_Q_SELECT = 0x16,
    CC_Q_SIZE = 0x18,
    CC_Q_MSIX = 0x1a,
    CC_Q_ENABLE = 0x1c,
    CC_Q_NOTIFY_OFF = 0x1e,
    CC_Q_DESC = 0x20,
    CC_Q_DRIVER = 0x28,
    CC_Q_DEVICE = 0x30,
    CC_END = 0x40, /* queue_notify_data, queue_reset, admin fields: not offered, read 0 */
};

/* Bits 24-41 are the transport's (ring layouts, notification data, ...) and 42-49 reserved
 * (spec 6): a device cannot offer them; 0-23 and 50-63 are its own. */
#define TRANSPORT_FEATURES (((1ULL << 26) - 1) << 24)
#define OFFERED_TRANSPORT_FEATURES                                                                 \
    (1ULL << VIRTIO_F_VERSION_1 | 1ULL << VIRTIO_F_EVENT_IDX | 1ULL << VIRTIO_F_INDIRECT_DESC)

struct vpci_queue {
    struct virtqueue vq;
    struct virtio_device *vdev;
    unsigned index;
    uint16_t size, msix_vector;
    bool enabled;
    uint64_t desc, driver, device;
    int efd;          /* the doorbell's eventfd, -1 without */
    bool doorbell_on; /* ... and it is an ioeventfd at doorbell_base now */
};

struct virtio_device {
    const struct device_host *host;
    struct virtio_device_ops ops;
    void *opaque;
    char name[32];
    struct pci_device *pci;
    pthread_mutex_t lock;
    pthread_mutex_t op_lock;
    uint64_t offered, accepted;
    uint32_t df_select, gf_select;
    uint16_t msix_config, queue_select;
    uint8_t status, generation, isr;
    bool live;                   /* activated and not reset: doorbells reach the device */
    uint8_t cfg_cap;             /* offset of the PCI_CFG capability */
    uint8_t window[CAP_CFG_LEN]; /* its bar/offset/length/data fields as the driver set them */
    uint64_t doorbell_base;      /* guest address the ioeventfds sit at, UINT64_MAX: none */
    bool ioeventfds;             /* the accelerator takes them (else only the BAR handler) */
    unsigned num_queues;
    struct vpci_queue *queues;
};

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
    put16(p, (uint16_t)v);
    put16(p + 2, (uint16_t)(v >> 16));
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static bool power_of_two(uint32_t v)
{
    return v && !(v & (v - 1));
}

/* --- interrupts ------------------------------------------------------------------------------- */

/* Signal `vector` with MSI-X enabled, else set `isr_bit` and assert INTx. Lock held; returns
 * the vector to fire once it is dropped (NO_VECTOR: none). */
static uint16_t raise_locked(struct virtio_device *vdev, uint8_t isr_bit, uint16_t vector)
{
    if (pci_msix_enabled(vdev->pci))
        return vector;
    vdev->isr |= isr_bit;
    pci_set_intx(vdev->pci, 1);
    return VIRTIO_MSI_NO_VECTOR;
}

static void fire(struct virtio_device *vdev, uint16_t vector)
{
    if (vector != VIRTIO_MSI_NO_VECTOR)
        pci_msix_notify(vdev->pci, vector);
}

/* vq_notify decided the driver wants an interrupt for queue `index`. */
static void queue_interrupt(void *opaque, unsigned index)
{
    struct virtio_device *vdev = opaque;
    pthread_mutex_lock(&vdev->lock);
    uint16_t vector = raise_locked(vdev, ISR_QUEUE, vdev->queues[index].msix_vector);
    pthread_mutex_unlock(&vdev->lock);
    fire(vdev, vector);
}

static void queue_malformed(void *opaque, unsigned index)
{
    struct virtio_device *vdev = opaque;
    (void)index;
    virtio_set_needs_reset(vdev);
}

void virtio_config_changed(struct virtio_device *vdev)
{
    uint16_t vector = VIRTIO_MSI_NO_VECTOR;
    pthread_mutex_lock(&vdev->lock);
    vdev->generation++;
    /* No configuration interrupt before the driver is ready for it (spec 2.1.2). */
    if (vdev->status & STATUS_DRIVER_OK)
        vector = raise_locked(vdev, ISR_CONFIG, vdev->msix_config);
    pthread_mutex_unlock(&vdev->lock);
    fire(vdev, vector);
}

void virtio_set_needs_reset(struct virtio_device *vdev)
{
    pthread_mutex_lock(&vdev->lock);
    bool already = vdev->status & STATUS_NEEDS_RESET;
    vdev->status |= STATUS_NEEDS_RESET;
    pthread_mutex_unlock(&vdev->lock);
    if (!already)
        virtio_config_changed(vdev);
}

/* --- what devices ask ------------------------------------------------------------------------- */

uint64_t virtio_features(const struct virtio_device *vdev)
{
    struct virtio_device *v = (struct virtio_device *)vdev; /* locking changes no state */
    pthread_mutex_lock(&v->lock);
    uint64_t features = v->accepted;
    pthread_mutex_unlock(&v->lock);
    return features;
}

struct virtqueue *virtio_queue(struct virtio_device *vdev, unsigned index)
{
    if (index >= vdev->num_queues || !vq_ready(&vdev->queues[index].vq))
        return NULL;
    return &vdev->queues[index].vq;
}

const struct dma_space *virtio_dma(const struct virtio_device *vdev)
{
    return vdev->host->dma;
}

/* --- status: reset and activation ------------------------------------------------------------- */

static void clear_queue(struct vpci_queue *q, uint16_t max_size)
{
    vq_stop(&q->vq);
    q->size = max_size;
    q->msix_vector = VIRTIO_MSI_NO_VECTOR;
    q->enabled = false;
    q->desc = q->driver = q->device = 0;
}

/* Writing 0: the device forgets the driver (ops->reset first, so it stops using the queues
 * before they go away). */
static void reset(struct virtio_device *vdev)
{
    pthread_mutex_lock(&vdev->lock);
    vdev->live = false;
    pthread_mutex_unlock(&vdev->lock);
    if (vdev->ops.reset)
        vdev->ops.reset(vdev->opaque);
    pthread_mutex_lock(&vdev->lock);
    vdev->accepted = 0;
    vdev->df_select = vdev->gf_select = 0;
    vdev->msix_config = VIRTIO_MSI_NO_VECTOR;
    vdev->queue_select = 0;
    vdev->status = vdev->isr = 0;
    for (unsigned i = 0; i < vdev->num_queues; i++)
        clear_queue(&vdev->queues[i], vdev->ops.queue_max_size);
    pci_set_intx(vdev->pci, 0);
    pthread_mutex_unlock(&vdev->lock);
}

static int start_queue(struct virtio_device *vdev, struct vpci_queue *q)
{
    struct vq_layout layout = {
        .size = q->size,
        .desc = q->desc,
        .avail = q->driver,
        .used = q->device,
        .event_idx = vdev->accepted & (1ULL << VIRTIO_F_EVENT_IDX),
        .indirect = vdev->accepted & (1ULL << VIRTIO_F_INDIRECT_DESC),
    };
    return vq_start(&q->vq, &layout);
}

/* DRIVER_OK: map every enabled queue (lock held). */
static int start_queues(struct virtio_device *vdev)
{
    for (unsigned i = 0; i < vdev->num_queues; i++)
        if (vdev->queues[i].enabled && start_queue(vdev, &vdev->queues[i]) < 0)
            return -1;
    return 0;
}

/* A status other than 0. FEATURES_OK sticks only for an acceptable feature set (VERSION_1;
 * unoffered bits never got in); DRIVER_OK activates the device; NEEDS_RESET is ours. */
static void set_status(struct virtio_device *vdev, uint8_t value)
{
    pthread_mutex_lock(&vdev->lock);
    uint8_t old = vdev->status;
    value = (uint8_t)((value & ~STATUS_NEEDS_RESET) | (old & STATUS_NEEDS_RESET));
    if ((value & STATUS_FEATURES_OK) && !(old & STATUS_FEATURES_OK) &&
        !(vdev->accepted & (1ULL << VIRTIO_F_VERSION_1)))
        value &= (uint8_t)~STATUS_FEATURES_OK;
    bool activate = (value & STATUS_DRIVER_OK) && !(old & STATUS_DRIVER_OK);
    int rc = 0;
    if (activate)
        rc = (value & STATUS_FEATURES_OK) ? start_queues(vdev) : -1;
    vdev->status = value;
    pthread_mutex_unlock(&vdev->lock);
    if (activate && rc == 0 && vdev->ops.activate)
        rc = vdev->ops.activate(vdev->opaque);
    if (activate && rc == 0) {
        pthread_mutex_lock(&vdev->lock);
        vdev->live = true;
        pthread_mutex_unlock(&vdev->lock);
    }
    if (rc < 0)
        virtio_set_needs_reset(vdev);
}

static void write_status(struct virtio_device *vdev, uint8_t value)
{
    pthread_mutex_lock(&vdev->op_lock);
    if (value == 0)
        reset(vdev);
    else
        set_status(vdev, value);
    pthread_mutex_unlock(&vdev->op_lock);
}

/* --- common configuration --------------------------------------------------------------------- */

static struct vpci_queue *selected_queue(struct virtio_device *vdev)
{
    return vdev->queue_select < vdev->num_queues ? &vdev->queues[vdev->queue_select] : NULL;
}

/* The registers as the driver sees them (lock held). Out-of-range selections read 0. */
static void common_image(struct virtio_device *vdev, uint8_t img[CC_END])
{
    memset(img, 0, CC_END);
    put32(img + CC_DF_SELECT, vdev->df_select);
    if (vdev->df_select < 2)
        put32(img + CC_DF, (uint32_t)(vdev->offered >> (32 * vdev->df_select)));
    put32(img + CC_GF_SELECT, vdev->gf_select);
    if (vdev->gf_select < 2)
        put32(img + CC_GF, (uint32_t)(vdev->accepted >> (32 * vdev->gf_select)));
    put16(img + CC_MSIX_CONFIG, vdev->msix_config);
    put16(img + CC_NUM_QUEUES, (uint16_t)vdev->num_queues);
    img[CC_STATUS] = vdev->status;
    img[CC_GENERATION] = vdev->generation;
    put16(img + CC_Q_SELECT, vdev->queue_select);
    struct vpci_queue *q = selected_queue(vdev);
    if (!q)
        return;
    put16(img + CC_Q_SIZE, q->size);
    put16(img + CC_Q_MSIX, q->msix_vector);
    put16(img + CC_Q_ENABLE, q->enabled);
    put16(img + CC_Q_NOTIFY_OFF, (uint16_t)q->index);
    const uint64_t addr[3] = {q->desc, q->driver, q->device};
    for (int i = 0; i < 3; i++) {
        put32(img + CC_Q_DESC + 8 * i, (uint32_t)addr[i]);
        put32(img + CC_Q_DESC + 8 * i + 4, (uint32_t)(addr[i] >> 32));
    }
}

static uint64_t common_read(struct virtio_device *vdev, uint64_t off, unsigned size)
{
    if (off + size > CC_END)
        return 0;
    uint8_t img[CC_END];
    pthread_mutex_lock(&vdev->lock);
    common_image(vdev, img);
    pthread_mutex_unlock(&vdev->lock);
    uint64_t v = 0;
    for (unsigned i = 0; i < size; i++)
        v |= (uint64_t)img[off + i] << (8 * i);
    return v;
}

/* A vector the device can signal, or NO_VECTOR (what the driver reads back as a refusal). */
static uint16_t checked_vector(const struct virtio_device *vdev, uint64_t v)
{
    return v <= vdev->num_queues ? (uint16_t)v : VIRTIO_MSI_NO_VECTOR;
}

/* queue_desc/driver/device: one 64-bit access or either 32-bit half (spec 4.1.3). */
static void write_queue_address(struct vpci_queue *q, uint64_t off, unsigned size, uint64_t v)
{
    uint64_t *field[3] = {&q->desc, &q->driver, &q->device};
    uint64_t *a = field[(off - CC_Q_DESC) / 8];
    if (size == 8 && off % 8 == 0)
        *a = v;
    else if (size == 4 && off % 8 == 0)
        *a = (*a & ~0xffffffffULL) | (uint32_t)v;
    else if (size == 4)
        *a = (*a & 0xffffffffULL) | (uint64_t)(uint32_t)v << 32;
}

/* queue_enable = 1 (0 is not the driver's to write without RING_RESET, spec 4.1.4.3.2): only
 * for a power-of-two size the device supports. After DRIVER_OK the queue starts now. */
static int enable_queue(struct virtio_device *vdev, struct vpci_queue *q)
{
    if (q->enabled || !power_of_two(q->size) || q->size > vdev->ops.queue_max_size)
        return 0;
    q->enabled = true;
    return (vdev->status & STATUS_DRIVER_OK) ? start_queue(vdev, q) : 0;
}

/* The queue fields are the driver's to set before it enables the queue, not after. */
static int write_queue_field(struct virtio_device *vdev, uint64_t off, unsigned size, uint64_t v)
{
    struct vpci_queue *q = selected_queue(vdev);
    if (!q)
        return 0;
    if (off == CC_Q_MSIX && size == 2)
        q->msix_vector = checked_vector(vdev, v);
    else if (off == CC_Q_ENABLE && size == 2 && v == 1)
        return enable_queue(vdev, q);
    else if (q->enabled)
        return 0;
    else if (off == CC_Q_SIZE && size == 2)
        q->size = (uint16_t)v;
    else if (off >= CC_Q_DESC && off < CC_Q_DEVICE + 8)
        write_queue_address(q, off, size, v);
    return 0;
}

static void write_driver_features(struct virtio_device *vdev, uint32_t v)
{
    /* Fixed once FEATURES_OK is set; only offered bits are kept (spec 4.1.4.3.1). */
    if ((vdev->status & STATUS_FEATURES_OK) || vdev->gf_select > 1)
        return;
    unsigned shift = 32 * vdev->gf_select;
    vdev->accepted =
        (vdev->accepted & ~(0xffffffffULL << shift)) | (((uint64_t)v << shift) & vdev->offered);
}

static void common_write(struct virtio_device *vdev, uint64_t off, unsigned size, uint64_t v)
{
    if (off == CC_STATUS) {
        if (size == 1)
            write_status(vdev, (uint8_t)v);
        return;
    }
    int rc = 0;
    pthread_mutex_lock(&vdev->lock);
    if (off == CC_DF_SELECT && size == 4)
        vdev->df_select = (uint32_t)v;
    else if (off == CC_GF_SELECT && size == 4)
        vdev->gf_select = (uint32_t)v;
    else if (off == CC_GF && size == 4)
        write_driver_features(vdev, (uint32_t)v);
    else if (off == CC_MSIX_CONFIG && size == 2)
        vdev->msix_config = checked_vector(vdev, v);
    else if (off == CC_Q_SELECT && size == 2)
        vdev->queue_select = (uint16_t)v;
    else if (off >= CC_Q_SIZE && off < CC_Q_DEVICE + 8)
        rc = write_queue_field(vdev, off, size, v);
    pthread_mutex_unlock(&vdev->lock);
    if (rc < 0)
        virtio_set_needs_reset(vdev); /* a queue enabled after DRIVER_OK outside RAM */
}

/* --- the other regions ------------------------------------------------------------------------ */

/* Reading the ISR status clears it and drops INTx (spec 4.1.4.5). */
static uint64_t isr_read(struct virtio_device *vdev, uint64_t off)
{
    if (off != 0)
        return 0;
    pthread_mutex_lock(&vdev->lock);
    uint8_t v = vdev->isr;
    vdev->isr = 0;
    pci_set_intx(vdev->pci, 0);
    pthread_mutex_unlock(&vdev->lock);
    return v;
}

static uint64_t device_read(struct virtio_device *vdev, uint64_t off, unsigned size)
{
    if (off >= vdev->ops.config_size || !vdev->ops.config_read)
        return 0;
    uint8_t buf[8] = {0};
    uint32_t n =
        (uint32_t)(vdev->ops.config_size - off < size ? vdev->ops.config_size - off : size);
    vdev->ops.config_read(vdev->opaque, (uint32_t)off, buf, n);
    uint64_t v = 0;
    for (unsigned i = 0; i < size; i++)
        v |= (uint64_t)buf[i] << (8 * i);
    return v;
}

static void device_write(struct virtio_device *vdev, uint64_t off, unsigned size, uint64_t v)
{
    if (off + size > vdev->ops.config_size || !vdev->ops.config_write)
        return;
    uint8_t buf[8];
    for (unsigned i = 0; i < size; i++)
        buf[i] = (uint8_t)(v >> (8 * i));
    vdev->ops.config_write(vdev->opaque, (uint32_t)off, buf, size);
}

/* The driver made buffers available on queue `index` (doorbell write or its ioeventfd). */
static void kick(struct virtio_device *vdev, unsigned index)
{
    pthread_mutex_lock(&vdev->lock);
    bool go = vdev->live && vdev->queues[index].enabled;
    pthread_mutex_unlock(&vdev->lock);
    if (go && vdev->ops.queue_notify)
        vdev->ops.queue_notify(vdev->opaque, index);
}

/* A doorbell write through the BAR: the I/O thread processes the queue (its eventfd), as
 * for an ioeventfd; directly only when there is no I/O loop. */
static void ring_doorbell(struct virtio_device *vdev, unsigned index)
{
    int efd = vdev->queues[index].efd;
    uint64_t one = 1;
    if (efd < 0 || !vdev->host->doorbells_on_loop)
        kick(vdev, index);
    else if (write(efd, &one, sizeof(one)) < 0) {
        /* the counter is saturated: the I/O thread has a kick pending anyway */
    }
}

/* Each access lies inside one region (the bus gives sizes 1-8; other callers may not). */
static bool valid_access(uint64_t off, unsigned size)
{
    if (size != 1 && size != 2 && size != 4 && size != 8)
        return false;
    return off < VPCI_BAR_SIZE && off % VPCI_REGION + size <= VPCI_REGION;
}

static uint64_t bar_read(void *opaque, uint64_t off, unsigned size)
{
    struct virtio_device *vdev = opaque;
    if (!valid_access(off, size))
        return 0;
    switch (off & ~(uint64_t)(VPCI_REGION - 1)) {
    case VPCI_COMMON:
        return common_read(vdev, off, size);
    case VPCI_ISR:
        return isr_read(vdev, off - VPCI_ISR);
    case VPCI_DEVICE:
        return device_read(vdev, off - VPCI_DEVICE, size);
    default:
        return 0; /* doorbells read as 0 */
    }
}

static void bar_write(void *opaque, uint64_t off, unsigned size, uint64_t value)
{
    struct virtio_device *vdev = opaque;
    if (!valid_access(off, size))
        return;
    switch (off & ~(uint64_t)(VPCI_REGION - 1)) {
    case VPCI_COMMON:
        common_write(vdev, off, size, value);
        break;
    case VPCI_DEVICE:
        device_write(vdev, off - VPCI_DEVICE, size, value);
        break;
    case VPCI_NOTIFY:
        /* The doorbell's address says which queue; the value (the same index) is not needed. */
        if ((off - VPCI_NOTIFY) % VPCI_NOTIFY_MULT == 0 &&
            (off - VPCI_NOTIFY) / VPCI_NOTIFY_MULT < vdev->num_queues)
            ring_doorbell(vdev, (unsigned)((off - VPCI_NOTIFY) / VPCI_NOTIFY_MULT));
        break;
    default:
        break; /* ISR status is read-only */
    }
}

static const struct bus_device_ops bar_ops = {.read = bar_read, .write = bar_write};

/* --- the PCI configuration access window (VIRTIO_PCI_CAP_PCI_CFG) ----------------------------- */

/* Accesses that fall entirely on the window's driver-visible fields (bar .. pci_cfg_data); the
 * capability's header bytes are the PCI layer's. */
static bool in_window(const struct virtio_device *vdev, uint32_t offset, unsigned size)
{
    uint32_t start = vdev->cfg_cap + CAP_BAR, end = vdev->cfg_cap + CAP_CFG_LEN;
    return vdev->cfg_cap && offset >= start && offset + size <= end;
}

static bool touches_data(const struct virtio_device *vdev, uint32_t offset, unsigned size)
{
    return offset + size > vdev->cfg_cap + (uint32_t)CAP_CFG_DATA;
}

/* Perform the access the window describes: cap.length (1, 2 or 4) bytes at cap.offset in
 * cap.bar, aligned and inside the BAR; anything else is ignored (a read leaves pci_cfg_data as
 * it was). */
static void window_access(struct virtio_device *vdev, bool write)
{
    pthread_mutex_lock(&vdev->lock);
    uint8_t bar = vdev->window[CAP_BAR];
    uint32_t off = get32(vdev->window + CAP_OFFSET), len = get32(vdev->window + CAP_LENGTH);
    uint32_t data = get32(vdev->window + CAP_CFG_DATA);
    pthread_mutex_unlock(&vdev->lock);
    if (bar != VPCI_BAR || (len != 1 && len != 2 && len != 4) || off % len || off >= VPCI_BAR_SIZE)
        return;
    if (write) {
        bar_write(vdev, off, len, len == 4 ? data : data & ((1u << (8 * len)) - 1));
        return;
    }
    uint64_t v = bar_read(vdev, off, len);
    pthread_mutex_lock(&vdev->lock);
    for (unsigned i = 0; i < len; i++)
        vdev->window[CAP_CFG_DATA + i] = (uint8_t)(v >> (8 * i));
    pthread_mutex_unlock(&vdev->lock);
}

static bool cfg_read(void *opaque, uint32_t offset, unsigned size, uint32_t *value)
{
    struct virtio_device *vdev = opaque;
    if (!in_window(vdev, offset, size))
        return false;
    if (touches_data(vdev, offset, size))
        window_access(vdev, false);
    pthread_mutex_lock(&vdev->lock);
    uint32_t v = 0;
    for (unsigned i = 0; i < size; i++)
        v |= (uint32_t)vdev->window[offset - vdev->cfg_cap + i] << (8 * i);
    pthread_mutex_unlock(&vdev->lock);
    *value = v;
    return true;
}

static void cfg_write(void *opaque, uint32_t offset, unsigned size, uint32_t value)
{
    struct virtio_device *vdev = opaque;
    if (!in_window(vdev, offset, size))
        return;
    pthread_mutex_lock(&vdev->lock);
    for (unsigned i = 0; i < size; i++) {
        unsigned field = offset - vdev->cfg_cap + i;
        /* bar, offset, length and data are the driver's; id and padding are not. */
        if (field == CAP_BAR || field >= CAP_OFFSET)
            vdev->window[field] = (uint8_t)(value >> (8 * i));
    }
    pthread_mutex_unlock(&vdev->lock);
    if (touches_data(vdev, offset, size))
        window_access(vdev, true);
}

/* --- doorbell ioeventfds ---------------------------------------------------------------------- */

static void doorbell_ready(void *opaque, uint32_t revents)
{
    struct vpci_queue *q = opaque;
    uint64_t count;
    (void)revents;
    if (read(q->efd, &count, sizeof(count)) == (ssize_t)sizeof(count))
        kick(q->vdev, q->index);
}

/* Move every doorbell's ioeventfd to `base` (UINT64_MAX: none). Lock held. A doorbell whose
 * assignment fails is left to the BAR handler, which always works. */
static void place_doorbells(struct virtio_device *vdev, uint64_t base)
{
    const struct device_host *h = vdev->host;
    if (!vdev->ioeventfds || base == vdev->doorbell_base)
        return;
    for (unsigned i = 0; i < vdev->num_queues; i++) {
        struct vpci_queue *q = &vdev->queues[i];
        uint64_t at = VPCI_NOTIFY + (uint64_t)VPCI_NOTIFY_MULT * i;
        if (q->doorbell_on)
            h->ioeventfd(h->ioeventfd_ctx, true, vdev->doorbell_base + at, VPCI_DOORBELL_LEN,
                         q->efd, false);
        q->doorbell_on = base != UINT64_MAX && h->ioeventfd(h->ioeventfd_ctx, true, base + at,
                                                            VPCI_DOORBELL_LEN, q->efd, true) == 0;
    }
    vdev->doorbell_base = base;
}

static void bar_moved(void *opaque, unsigned index, uint64_t address)
{
    struct virtio_device *vdev = opaque;
    if (index != VPCI_BAR)
        return;
    pthread_mutex_lock(&vdev->lock);
    place_doorbells(vdev, address);
    pthread_mutex_unlock(&vdev->lock);
}

static void close_doorbells(struct virtio_device *vdev)
{
    for (unsigned i = 0; i < vdev->num_queues; i++) {
        struct vpci_queue *q = &vdev->queues[i];
        if (q->efd < 0)
            continue;
        if (vdev->host->loop)
            event_loop_remove(vdev->host->loop, q->efd);
        close(q->efd);
        q->efd = -1;
    }
    vdev->ioeventfds = false;
}

/* One eventfd per doorbell on the I/O loop; also an ioeventfd if the accelerator takes them
 * (the first assignment tells; the translator does not, and then the BAR handler signals
 * the eventfds). */
static void open_doorbells(struct virtio_device *vdev)
{
    const struct device_host *h = vdev->host;
    if (!h->loop || (!h->ioeventfd && !h->doorbells_on_loop))
        return;
    for (unsigned i = 0; i < vdev->num_queues; i++) {
        struct vpci_queue *q = &vdev->queues[i];
        char err[128];
        q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (q->efd < 0 ||
            event_loop_add(h->loop, q->efd, EPOLLIN, doorbell_ready, q, err, sizeof(err)) < 0) {
            if (q->efd >= 0)
                close(q->efd);
            q->efd = -1;
            close_doorbells(vdev);
            return;
        }
    }
    if (!h->ioeventfd)
        return;
    vdev->ioeventfds = true;
    pthread_mutex_lock(&vdev->lock);
    place_doorbells(vdev, pci_device_bar_address(vdev->pci, VPCI_BAR));
    bool refused = vdev->doorbell_base != UINT64_MAX && !vdev->queues[0].doorbell_on;
    if (refused) {
        place_doorbells(vdev, UINT64_MAX);
        vdev->ioeventfds = false; /* the eventfds stay, for the BAR handler */
    }
    pthread_mutex_unlock(&vdev->lock);
    if (refused && !h->doorbells_on_loop)
        close_doorbells(vdev);
}

/* --- creation --------------------------------------------------------------------------------- */

/* PCI class as QEMU gives each virtio-pci device. */
static uint32_t class_code(uint16_t device_id)
{
    switch (device_id) {
    case VIRTIO_ID_NET:
        return 0x020000; /* Ethernet controller */
    case VIRTIO_ID_BLOCK:
        return 0x010000; /* SCSI storage controller */
    case VIRTIO_ID_CONSOLE:
    case VIRTIO_ID_VSOCK:
        return 0x078000; /* other communication controller */
    default:
        return 0x00ff00; /* unclassified */
    }
}

static void add_cap(struct virtio_device *vdev, uint8_t type, uint32_t offset, uint32_t length,
                    const void *extra, size_t extra_len, uint8_t *at)
{
    uint8_t body[CAP_CFG_LEN - 2] = {0};
    body[0] = (uint8_t)(CAP_LEN + extra_len); /* cap_len counts the ID and next bytes */
    body[1] = type;
    body[2] = type == CAP_PCI_CFG ? 0 : VPCI_BAR;
    put32(body + CAP_OFFSET - 2, offset);
    put32(body + CAP_LENGTH - 2, length);
    if (extra_len)
        memcpy(body + CAP_LEN - 2, extra, extra_len);
    uint8_t off =
        pci_device_add_capability(vdev->pci, PCI_CAP_ID_VNDR, body, CAP_LEN - 2 + extra_len);
    if (at)
        *at = off;
}

static int add_caps(struct virtio_device *vdev, char *err, size_t errlen)
{
    uint8_t mult[4], data[4] = {0}, cfg = 0;
    put32(mult, VPCI_NOTIFY_MULT);
    add_cap(vdev, CAP_COMMON, VPCI_COMMON, VPCI_REGION, NULL, 0, NULL);
    add_cap(vdev, CAP_NOTIFY, VPCI_NOTIFY, VPCI_NOTIFY_MULT * vdev->num_queues, mult, 4, NULL);
    add_cap(vdev, CAP_ISR, VPCI_ISR, VPCI_REGION, NULL, 0, NULL);
    if (vdev->ops.config_size)
        add_cap(vdev, CAP_DEVICE, VPCI_DEVICE, vdev->ops.config_size, NULL, 0, NULL);
    add_cap(vdev, CAP_PCI_CFG, 0, 0, data, 4, &cfg);
    if (!cfg) /* appended in order: when the last one fits, all did */
        return qk_fail(err, errlen, "%s: no room for the virtio capabilities", vdev->name);
    vdev->cfg_cap = cfg;
    /* The window's own copy starts as the capability reads: bar 0, offset 0, length 0. */
    memcpy(vdev->window, pci_device_config(vdev->pci) + cfg, CAP_CFG_LEN);
    return 0;
}

static int check_ops(const struct device_host *host, const struct virtio_device_ops *ops,
                     const char *name, char *err, size_t errlen)
{
    if (!host->pci)
        return qk_fail(err, errlen, "%s: no PCI bus", name);
    if (ops->num_queues == 0 || ops->num_queues > VPCI_MAX_QUEUES)
        return qk_fail(err, errlen, "%s: %u queues (1-%u)", name, ops->num_queues, VPCI_MAX_QUEUES);
    if (!power_of_two(ops->queue_max_size) || ops->queue_max_size > VQ_MAX_SIZE)
        return qk_fail(err, errlen, "%s: queue size %u", name, ops->queue_max_size);
    if (ops->config_size > VPCI_REGION)
        return qk_fail(err, errlen, "%s: %u bytes of configuration", name, ops->config_size);
    return 0;
}

static struct virtio_device *alloc_device(const struct device_host *host,
                                          const struct virtio_device_ops *ops, void *opaque,
                                          const char *name)
{
    struct virtio_device *vdev = calloc(1, sizeof(*vdev));
    struct vpci_queue *queues = calloc(ops->num_queues, sizeof(*queues));
    if (!vdev || !queues) {
        free(vdev);
        free(queues);
        return NULL;
    }
    vdev->host = host;
    vdev->ops = *ops;
    vdev->opaque = opaque;
    snprintf(vdev->name, sizeof(vdev->name), "%s", name);
    pthread_mutex_init(&vdev->lock, NULL);
    pthread_mutex_init(&vdev->op_lock, NULL);
    vdev->offered = (ops->features & ~TRANSPORT_FEATURES) | OFFERED_TRANSPORT_FEATURES;
    vdev->msix_config = VIRTIO_MSI_NO_VECTOR;
    vdev->doorbell_base = UINT64_MAX;
    vdev->num_queues = ops->num_queues;
    vdev->queues = queues;
    struct vq_hooks hooks = {queue_interrupt, queue_malformed, vdev};
    for (unsigned i = 0; i < vdev->num_queues; i++) {
        queues[i].vdev = vdev;
        queues[i].index = i;
        queues[i].efd = -1;
        vq_init(&queues[i].vq, host->dma, i, &hooks);
        clear_queue(&queues[i], ops->queue_max_size);
    }
    return vdev;
}

static void free_device(struct virtio_device *vdev)
{
    for (unsigned i = 0; i < vdev->num_queues; i++)
        vq_destroy(&vdev->queues[i].vq);
    pthread_mutex_destroy(&vdev->lock);
    pthread_mutex_destroy(&vdev->op_lock);
    free(vdev->queues);
    free(vdev);
}

struct virtio_device *virtio_pci_new(const struct device_host *host,
                                     const struct virtio_device_ops *ops, void *opaque,
                                     const char *name, char *err, size_t errlen)
{
    if (check_ops(host, ops, name, err, errlen) < 0)
        return NULL;
    struct virtio_device *vdev = alloc_device(host, ops, opaque, name);
    if (!vdev) {
        qk_fail(err, errlen, "%s: out of memory", name);
        return NULL;
    }
    struct pci_device_info info = {
        .name = vdev->name,
        .vendor_id = VIRTIO_PCI_VENDOR,
        .device_id = (uint16_t)(VIRTIO_PCI_MODERN_BASE + ops->device_id),
        .subsystem_vendor_id = VIRTIO_PCI_VENDOR,
        .subsystem_id = VIRTIO_PCI_SUBSYS_QEMU,
        .revision = 1, /* modern only (spec 4.1.2.1) */
        .class_code = class_code(ops->device_id),
    };
    struct pci_device_hooks hooks = {cfg_read, cfg_write, vdev};
    vdev->pci = pci_device_new(host->pci, &info, &hooks, err, errlen);
    if (!vdev->pci) {
        free_device(vdev);
        return NULL;
    }
    if (pci_device_add_bar(vdev->pci, VPCI_BAR, PCI_BAR_MEM64, VPCI_BAR_SIZE, false, &bar_ops, vdev,
                           err, errlen) < 0 ||
        pci_device_init_msix(vdev->pci, vdev->num_queues + 1, VPCI_MSIX_BAR, err, errlen) < 0 ||
        add_caps(vdev, err, errlen) < 0) {
        pci_device_free(vdev->pci);
        free_device(vdev);
        return NULL;
    }
    open_doorbells(vdev);
    pci_device_on_bar_move(vdev->pci, bar_moved, vdev);
    return vdev;
}

void virtio_pci_free(struct virtio_device *vdev)
{
    if (!vdev)
        return;
    write_status(vdev, 0);
    pci_device_on_bar_move(vdev->pci, NULL, NULL);
    pthread_mutex_lock(&vdev->lock);
    place_doorbells(vdev, UINT64_MAX);
    pthread_mutex_unlock(&vdev->lock);
    close_doorbells(vdev); /* the I/O loop has ended: nothing is reading them */
    pci_device_free(vdev->pci);
    free_device(vdev);
}

/* --- snapshots ------------------------------------------------------------------------------ */

/* The transport as the driver set it up, and each queue with its ring indices. The device
 * must have no request in flight (its save drains first). */
void virtio_pci_save(struct virtio_device *vdev, struct snap_writer *w)
{
    pci_device_save(vdev->pci, w);
    pthread_mutex_lock(&vdev->op_lock);
    pthread_mutex_lock(&vdev->lock);
    snap_put_u64(w, vdev->accepted);
    snap_put_u32(w, vdev->df_select);
    snap_put_u32(w, vdev->gf_select);
    uint8_t b[6] = {(uint8_t)vdev->msix_config,
                    (uint8_t)(vdev->msix_config >> 8),
                    vdev->status,
                    vdev->generation,
                    vdev->isr,
                    vdev->live};
    snap_put(w, b, sizeof(b));
    snap_put_u32(w, vdev->queue_select);
    snap_put(w, vdev->window, sizeof(vdev->window));
    snap_put_u32(w, vdev->num_queues);
    for (unsigned i = 0; i < vdev->num_queues; i++) {
        struct vpci_queue *q = &vdev->queues[i];
        struct vq_indices idx;
        vq_get_indices(&q->vq, &idx);
        snap_put_u32(w, q->size | (uint32_t)q->msix_vector << 16);
        snap_put_u32(w, q->enabled);
        snap_put_u64(w, q->desc);
        snap_put_u64(w, q->driver);
        snap_put_u64(w, q->device);
        uint16_t v[3] = {idx.last_avail, idx.used_idx, idx.signalled_used};
        snap_put(w, v, sizeof(v));
        uint8_t f = (uint8_t)(idx.notify_enabled | idx.broken << 1);
        snap_put(w, &f, 1);
    }
    pthread_mutex_unlock(&vdev->lock);
    pthread_mutex_unlock(&vdev->op_lock);
}

static bool queue_ok(const struct virtio_device *vdev, const struct vpci_queue *q)
{
    bool vector_ok = q->msix_vector == VIRTIO_MSI_NO_VECTOR || q->msix_vector <= vdev->num_queues;
    return power_of_two(q->size) && q->size <= vdev->ops.queue_max_size && vector_ok;
}

static int load_queues(struct virtio_device *vdev, struct snap_reader *r, struct vq_indices *idx)
{
    if (snap_get_u32(r) != vdev->num_queues)
        return -1;
    for (unsigned i = 0; i < vdev->num_queues && !r->failed; i++) {
        struct vpci_queue *q = &vdev->queues[i];
        uint32_t sv = snap_get_u32(r);
        q->size = (uint16_t)sv;
        q->msix_vector = (uint16_t)(sv >> 16);
        q->enabled = snap_get_u32(r) != 0;
        q->desc = snap_get_u64(r);
        q->driver = snap_get_u64(r);
        q->device = snap_get_u64(r);
        uint16_t v[3];
        uint8_t f;
        snap_get(r, v, sizeof(v));
        snap_get(r, &f, 1);
        idx[i] = (struct vq_indices){v[0], v[1], v[2], f & 1, (f >> 1) & 1};
        if (!queue_ok(vdev, q))
            return -1;
    }
    return snap_done(r) ? 0 : -1;
}

/* Into a freshly created device: configuration space and MSI-X (BARs move, doorbells follow),
 * the transport, then, for a device the driver had running, the queues started at their
 * saved indices and the device activated, as DRIVER_OK does. */
int virtio_pci_load(struct virtio_device *vdev, struct snap_reader *r, char *err, size_t errlen)
{
    if (pci_device_load(vdev->pci, r) < 0)
        return qk_fail(err, errlen, "%s: PCI state is malformed", vdev->name);
    struct vq_indices *idx = calloc(vdev->num_queues ? vdev->num_queues : 1, sizeof(*idx));
    if (!idx)
        return qk_fail(err, errlen, "out of memory");
    pthread_mutex_lock(&vdev->op_lock);
    pthread_mutex_lock(&vdev->lock);
    vdev->accepted = snap_get_u64(r);
    vdev->df_select = snap_get_u32(r);
    vdev->gf_select = snap_get_u32(r);
    uint8_t b[6];
    snap_get(r, b, sizeof(b));
    vdev->msix_config = (uint16_t)(b[0] | b[1] << 8);
    vdev->status = b[2];
    vdev->generation = b[3];
    vdev->isr = b[4];
    bool live = b[5] != 0;
    vdev->queue_select = (uint16_t)snap_get_u32(r);
    snap_get(r, vdev->window, sizeof(vdev->window));
    int rc = load_queues(vdev, r, idx);
    if (rc == 0 &&
        ((vdev->accepted & ~vdev->offered) ||
         (vdev->msix_config != VIRTIO_MSI_NO_VECTOR && vdev->msix_config > vdev->num_queues)))
        rc = -1;
    if (rc == 0 && live && (vdev->status & STATUS_DRIVER_OK)) {
        rc = start_queues(vdev);
        for (unsigned i = 0; rc == 0 && i < vdev->num_queues; i++)
            if (vdev->queues[i].enabled)
                vq_set_indices(&vdev->queues[i].vq, &idx[i]);
    } else {
        live = false;
    }
    pthread_mutex_unlock(&vdev->lock);
    if (rc == 0 && live && vdev->ops.activate)
        rc = vdev->ops.activate(vdev->opaque);
    if (rc == 0 && live) {
        pthread_mutex_lock(&vdev->lock);
        vdev->live = true;
        pthread_mutex_unlock(&vdev->lock);
    }
    pthread_mutex_unlock(&vdev->op_lock);
    free(idx);
    if (rc < 0)
        return qk_fail(err, errlen, "%s: virtio state is malformed", vdev->name);
    return 0;
}
