/* Unit tests of the virtio-pci transport: a fake device (ops that record their calls) behind a
 * real PCI bus and a small real guest RAM, driven the way a driver does it — capabilities
 * found by walking config space, features, queues, DRIVER_OK, doorbells (MMIO and ioeventfd),
 * ISR/INTx and MSI-X, reset, the PCI-config window — and a hammer of junk over every
 * register. The register layout is written out here from the spec, not taken from the code. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "pci_fakes.h"

#include "hw/virtio/virtio.h"
#include "hw/virtio/virtqueue.h"
#include "vm/dma.h"
#include "vm/event_loop.h"
#include "vm/memory.h"

#include <endian.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* virtio 1.2, 4.1.4 */
#define CAP_COMMON 1
#define CAP_NOTIFY 2
#define CAP_ISR 3
#define CAP_DEVICE 4
#define CAP_PCI_CFG 5
#define CC_DF_SELECT 0x00
#define CC_DF 0x04
#define CC_GF_SELECT 0x08
#define CC_GF 0x0c
#define CC_MSIX_CONFIG 0x10
#define CC_NUM_QUEUES 0x12
#define CC_STATUS 0x14
#define CC_GENERATION 0x15
#define CC_Q_SELECT 0x16
#define CC_Q_SIZE 0x18
#define CC_Q_MSIX 0x1a
#define CC_Q_ENABLE 0x1c
#define CC_Q_NOTIFY_OFF 0x1e
#define CC_Q_DESC 0x20
#define CC_Q_DRIVER 0x28
#define CC_Q_DEVICE 0x30
#define S_ACK 0x01
#define S_DRIVER 0x02
#define S_DRIVER_OK 0x04
#define S_FEATURES_OK 0x08
#define S_NEEDS_RESET 0x40
#define NO_VECTOR 0xffff
#define MSIX_ENABLE 0x8000

#define RAM_SIZE (16ULL << 20)
#define NQ 3
#define QMAX 256
#define CONFIG_SIZE 16
#define RING_GPA(q) (0x10000ULL + 0x4000ULL * (q)) /* desc; avail +0x1000, used +0x2000 */
#define DATA_GPA 0x100000ULL
#define DEV_FEATURES                                                                               \
    (1ULL << 0 | 1ULL << 5 | 1ULL << VIRTIO_F_ACCESS_PLATFORM | 1ULL << VIRTIO_F_RING_PACKED |     \
     1ULL << 40 | 1ULL << 45 | 1ULL << 63)
#define OFFERED                                                                                    \
    (1ULL << 0 | 1ULL << 5 | 1ULL << VIRTIO_F_INDIRECT_DESC | 1ULL << VIRTIO_F_EVENT_IDX |         \
     1ULL << VIRTIO_F_VERSION_1 | 1ULL << 63)
#define MAX_IOEV 64

struct fake_dev {
    struct virtio_device *vdev;
    unsigned activates, resets, notifies[NQ], config_writes;
    int activate_rc;
    bool queue0_at_activate, queue1_at_activate;
    uint8_t config[CONFIG_SIZE];
};

struct ioev {
    uint64_t addr;
    unsigned len;
    int fd;
    bool assign;
};

struct fixture {
    struct pci_fake_machine pf;
    struct guest_memory mem;
    struct dma_space dma;
    struct pci_bus *bus;
    struct fake_dev dev;
    struct virtio_device_ops ops;
    struct virtio_device *vdev;
    unsigned slot;
    uint64_t bar, msix_bar;
    uint8_t cap[6], msix_cap;
    struct event_loop *loop;
    int ioev_rc;
    unsigned nr_ioev;
    struct ioev ioev[MAX_IOEV];
    struct vq_elem elem;
};

/* --- the fake device ------------------------------------------------------------------------- */

static void fd_config_read(void *opaque, uint32_t off, void *buf, uint32_t len)
{
    struct fake_dev *d = opaque;
    assert_true(len >= 1 && len <= 8 && off + len <= CONFIG_SIZE);
    memcpy(buf, d->config + off, len);
}

static void fd_config_write(void *opaque, uint32_t off, const void *buf, uint32_t len)
{
    struct fake_dev *d = opaque;
    assert_true(len >= 1 && len <= 8 && off + len <= CONFIG_SIZE);
    memcpy(d->config + off, buf, len);
    d->config_writes++;
}

static int fd_activate(void *opaque)
{
    struct fake_dev *d = opaque;
    d->activates++;
    d->queue0_at_activate = virtio_queue(d->vdev, 0) != NULL;
    d->queue1_at_activate = virtio_queue(d->vdev, 1) != NULL;
    return d->activate_rc;
}

static void fd_queue_notify(void *opaque, unsigned index)
{
    struct fake_dev *d = opaque;
    assert_true(index < NQ);
    d->notifies[index]++;
}

static void fd_reset(void *opaque)
{
    struct fake_dev *d = opaque;
    d->resets++;
}

static int fake_ioeventfd(void *ctx, bool mmio, uint64_t addr, unsigned len, int fd, bool assign)
{
    struct fixture *f = ctx;
    assert_true(mmio);
    if (f->nr_ioev < MAX_IOEV)
        f->ioev[f->nr_ioev] = (struct ioev){addr, len, fd, assign};
    f->nr_ioev++;
    return f->ioev_rc;
}

/* --- set-up ------------------------------------------------------------------------------------
 */

static uint32_t cfg(struct fixture *f, unsigned reg, unsigned size)
{
    return pci_ecam_read(&f->pf, f->slot, reg, size);
}

static void cfg_wr(struct fixture *f, unsigned reg, unsigned size, uint32_t v)
{
    pci_ecam_write(&f->pf, f->slot, reg, size, v);
}

static uint64_t rd(struct fixture *f, uint64_t off, unsigned size)
{
    return pci_mmio_read(&f->pf, f->bar + off, size);
}

static void wr(struct fixture *f, uint64_t off, unsigned size, uint64_t v)
{
    pci_mmio_write(&f->pf, f->bar + off, size, v);
}

/* Where a virtio structure lives: the capability's BAR and offset (as a driver computes it). */
static uint64_t region(struct fixture *f, unsigned type)
{
    assert_true(f->cap[type] != 0);
    assert_int_equal(cfg(f, f->cap[type] + 4, 1), 4); /* BAR 4 */
    return cfg(f, f->cap[type] + 8, 4);
}

static void find_caps(struct fixture *f)
{
    assert_true(cfg(f, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
    unsigned p = cfg(f, PCI_CAPABILITY_LIST, 1), seen = 0;
    while (p) {
        assert_true(p >= 0x40 && p < 0x100 && p % 4 == 0);
        assert_true(++seen < 48);
        unsigned id = cfg(f, p, 1);
        if (id == PCI_CAP_ID_MSIX)
            f->msix_cap = (uint8_t)p;
        if (id == PCI_CAP_ID_VNDR) {
            unsigned type = cfg(f, p + 3, 1);
            assert_true(type >= 1 && type <= 5);
            if (!f->cap[type]) /* the first of each type is the one to use */
                f->cap[type] = (uint8_t)p;
        }
        p = cfg(f, p + 1, 1);
    }
}

static int setup_with(void **state, bool ioeventfds, int ioev_rc)
{
    struct fixture *f = calloc(1, sizeof(*f));
    char err[200] = "";
    assert_non_null(f);
    pci_fake_machine_init(&f->pf);
    assert_int_equal(guest_memory_init(&f->mem, RAM_SIZE, err, sizeof(err)), 0);
    f->dma = (struct dma_space){.mem = &f->mem};
    struct device_host *h = &f->pf.fm.host;
    h->dma = &f->dma;
    if (ioeventfds) {
        f->loop = event_loop_new(err, sizeof(err));
        assert_non_null(f->loop);
        f->ioev_rc = ioev_rc;
        h->loop = f->loop;
        h->ioeventfd = fake_ioeventfd;
        h->ioeventfd_ctx = f;
    }
    f->bus = pci_bus_new(h, err, sizeof(err));
    assert_non_null(f->bus);
    h->pci = f->bus;
    f->ops = (struct virtio_device_ops){
        .device_id = VIRTIO_ID_RNG,
        .features = DEV_FEATURES,
        .num_queues = NQ,
        .queue_max_size = QMAX,
        .config_size = CONFIG_SIZE,
        .config_read = fd_config_read,
        .config_write = fd_config_write,
        .activate = fd_activate,
        .queue_notify = fd_queue_notify,
        .reset = fd_reset,
    };
    for (unsigned i = 0; i < CONFIG_SIZE; i++)
        f->dev.config[i] = (uint8_t)(0xc0 + i);
    f->vdev = virtio_pci_new(h, &f->ops, &f->dev, "virtio-test", err, sizeof(err));
    if (!f->vdev)
        fail_msg("virtio_pci_new: %s", err);
    f->dev.vdev = f->vdev;
    f->slot = 1;
    find_caps(f);
    f->bar = (cfg(f, PCI_BAR0 + 16, 4) & ~0xfULL) | (uint64_t)cfg(f, PCI_BAR0 + 20, 4) << 32;
    f->msix_bar = cfg(f, PCI_BAR0 + 4, 4) & ~0xfULL;
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_with(state, false, 0);
}

static int setup_kvm(void **state)
{
    return setup_with(state, true, 0);
}

static int setup_translator(void **state)
{
    return setup_with(state, true, -1);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    virtio_pci_free(f->vdev);
    pci_bus_free(f->bus);
    if (f->loop)
        event_loop_free(f->loop);
    guest_memory_destroy(&f->mem);
    pci_fake_machine_destroy(&f->pf);
    free(f);
    return 0;
}

/* --- the driver's side --------------------------------------------------------------------------
 */

static void set_features(struct fixture *f, uint64_t features)
{
    wr(f, CC_GF_SELECT, 4, 0);
    wr(f, CC_GF, 4, (uint32_t)features);
    wr(f, CC_GF_SELECT, 4, 1);
    wr(f, CC_GF, 4, (uint32_t)(features >> 32));
}

static void setup_queue(struct fixture *f, unsigned q, uint16_t size, uint16_t vector)
{
    wr(f, CC_Q_SELECT, 2, q);
    assert_int_equal(rd(f, CC_Q_SIZE, 2), QMAX);
    wr(f, CC_Q_SIZE, 2, size);
    wr(f, CC_Q_DESC, 4, (uint32_t)RING_GPA(q)); /* 32-bit halves, as Linux writes them */
    wr(f, CC_Q_DESC + 4, 4, 0);
    wr(f, CC_Q_DRIVER, 8, RING_GPA(q) + 0x1000); /* or one 64-bit access */
    wr(f, CC_Q_DEVICE, 4, (uint32_t)(RING_GPA(q) + 0x2000));
    wr(f, CC_Q_DEVICE + 4, 4, 0);
    wr(f, CC_Q_MSIX, 2, vector);
    wr(f, CC_Q_ENABLE, 2, 1);
}

/* The whole initialisation sequence (3.1.1) with queue 0 (and 2) enabled. */
static void driver_init(struct fixture *f)
{
    wr(f, CC_STATUS, 1, 0);
    assert_int_equal(rd(f, CC_STATUS, 1), 0);
    wr(f, CC_STATUS, 1, S_ACK);
    wr(f, CC_STATUS, 1, S_ACK | S_DRIVER);
    set_features(f, OFFERED);
    wr(f, CC_STATUS, 1, S_ACK | S_DRIVER | S_FEATURES_OK);
    assert_int_equal(rd(f, CC_STATUS, 1), S_ACK | S_DRIVER | S_FEATURES_OK);
    wr(f, CC_MSIX_CONFIG, 2, 0);
    setup_queue(f, 0, 16, 1);
    setup_queue(f, 2, 8, 3);
    wr(f, CC_STATUS, 1, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
}

static void put16(struct fixture *f, uint64_t gpa, uint16_t v)
{
    v = htole16(v);
    assert_int_equal(guest_write(&f->mem, gpa, &v, 2), 0);
}

static uint16_t get16(struct fixture *f, uint64_t gpa)
{
    uint16_t v;
    assert_int_equal(guest_read(&f->mem, gpa, &v, 2), 0);
    return le16toh(v);
}

/* Make one writable buffer available on queue 0 (size 16), as the driver would. */
static void offer_buffer(struct fixture *f)
{
    uint8_t d[16];
    uint64_t addr = htole64(DATA_GPA);
    uint32_t len = htole32(64);
    uint16_t flags = htole16(VRING_DESC_F_WRITE), next = 0;
    memcpy(d, &addr, 8);
    memcpy(d + 8, &len, 4);
    memcpy(d + 12, &flags, 2);
    memcpy(d + 14, &next, 2);
    assert_int_equal(guest_write(&f->mem, RING_GPA(0), d, 16), 0);
    uint16_t idx = get16(f, RING_GPA(0) + 0x1000 + 2);
    put16(f, RING_GPA(0) + 0x1000 + 4 + 2 * (idx % 16), 0);
    put16(f, RING_GPA(0) + 0x1000 + 2, (uint16_t)(idx + 1));
}

/* The device's side of one request on queue 0: pop, push, notify. */
static void complete_one(struct fixture *f)
{
    struct virtqueue *vq = virtio_queue(f->vdev, 0);
    assert_non_null(vq);
    offer_buffer(f);
    assert_int_equal(vq_pop(vq, &f->elem), 1);
    vq_push(vq, &f->elem, 4);
    vq_notify(vq);
}

static unsigned intx_gsi(struct fixture *f)
{
    return cfg(f, PCI_INTERRUPT_LINE, 1);
}

/* MSI-X on, vectors 0..n-1 unmasked (each the only user of route v here). */
static void enable_msix(struct fixture *f, unsigned n)
{
    for (unsigned v = 0; v < n; v++) {
        pci_mmio_write(&f->pf, f->msix_bar + 16 * v, 4, 0xfee00000);
        pci_mmio_write(&f->pf, f->msix_bar + 16 * v + 4, 4, 0);
        pci_mmio_write(&f->pf, f->msix_bar + 16 * v + 8, 4, 0x40 + v);
        pci_mmio_write(&f->pf, f->msix_bar + 16 * v + 12, 4, 0);
    }
    cfg_wr(f, f->msix_cap + 2, 2, MSIX_ENABLE);
}

/* --- tests ------------------------------------------------------------------------------------ */

static void test_identity_and_capabilities(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(cfg(f, PCI_VENDOR_ID, 2), 0x1af4);
    assert_int_equal(cfg(f, PCI_DEVICE_ID, 2), 0x1040 + VIRTIO_ID_RNG);
    assert_int_equal(cfg(f, PCI_SUBSYSTEM_VENDOR_ID, 2), 0x1af4);
    assert_true(cfg(f, PCI_SUBSYSTEM_ID, 2) >= 0x40);
    assert_int_equal(cfg(f, PCI_CLASS_REVISION, 4), 0x00ff0001); /* unclassified, rev 1 */
    assert_int_equal(cfg(f, PCI_BAR0 + 16, 4) & 0x7, 0x4);       /* 64-bit memory */
    assert_true(f->bar != 0 && f->msix_bar != 0);
    assert_true(f->msix_cap != 0);
    assert_int_equal(cfg(f, f->msix_cap + 2, 2) & 0x7ff, NQ); /* NQ + 1 vectors */
    static const uint32_t offsets[6] = {0, 0, 0x3000, 0x1000, 0x2000, 0};
    for (unsigned t = CAP_COMMON; t <= CAP_DEVICE; t++) {
        assert_int_equal(region(f, t), offsets[t]);
        assert_int_equal(cfg(f, f->cap[t] + 2, 1), t == CAP_NOTIFY ? 20 : 16);
    }
    assert_true(cfg(f, f->cap[CAP_COMMON] + 12, 4) >= 0x38);
    assert_int_equal(cfg(f, f->cap[CAP_DEVICE] + 12, 4), CONFIG_SIZE);
    /* Doorbells: cap.length >= queue_notify_off * multiplier + 2 for every queue. */
    uint32_t mult = cfg(f, f->cap[CAP_NOTIFY] + 16, 4);
    assert_int_equal(mult, 4);
    for (unsigned q = 0; q < NQ; q++) {
        wr(f, CC_Q_SELECT, 2, q);
        assert_true(cfg(f, f->cap[CAP_NOTIFY] + 12, 4) >= rd(f, CC_Q_NOTIFY_OFF, 2) * mult + 2);
    }
    assert_int_equal(cfg(f, f->cap[CAP_PCI_CFG] + 2, 1), 20);
    assert_int_equal(rd(f, CC_NUM_QUEUES, 2), NQ);
}

static void test_feature_negotiation(void **state)
{
    struct fixture *f = *state;
    wr(f, CC_DF_SELECT, 4, 0);
    assert_int_equal(rd(f, CC_DF, 4), (uint32_t)OFFERED);
    wr(f, CC_DF_SELECT, 4, 1);
    assert_int_equal(rd(f, CC_DF, 4), (uint32_t)(OFFERED >> 32));
    wr(f, CC_DF_SELECT, 4, 2);
    assert_int_equal(rd(f, CC_DF, 4), 0);
    wr(f, CC_DF, 4, 0xffffffff); /* read-only */
    wr(f, CC_DF_SELECT, 4, 0);
    assert_int_equal(rd(f, CC_DF, 4), (uint32_t)OFFERED);

    wr(f, CC_STATUS, 1, S_ACK | S_DRIVER);
    set_features(f, ~0ULL); /* unoffered bits do not stick */
    wr(f, CC_GF_SELECT, 4, 0);
    assert_int_equal(rd(f, CC_GF, 4), (uint32_t)OFFERED);
    wr(f, CC_GF_SELECT, 4, 1);
    assert_int_equal(rd(f, CC_GF, 4), (uint32_t)(OFFERED >> 32));
    wr(f, CC_GF_SELECT, 4, 7);
    wr(f, CC_GF, 4, 0xffffffff);
    assert_int_equal(rd(f, CC_GF, 4), 0);

    /* Without VERSION_1, FEATURES_OK does not stick. */
    set_features(f, OFFERED & ~(1ULL << VIRTIO_F_VERSION_1));
    wr(f, CC_STATUS, 1, S_ACK | S_DRIVER | S_FEATURES_OK);
    assert_int_equal(rd(f, CC_STATUS, 1), S_ACK | S_DRIVER);
    set_features(f, 1ULL << VIRTIO_F_VERSION_1 | 1ULL << 5);
    wr(f, CC_STATUS, 1, S_ACK | S_DRIVER | S_FEATURES_OK);
    assert_int_equal(rd(f, CC_STATUS, 1), S_ACK | S_DRIVER | S_FEATURES_OK);
    /* Fixed from then on. */
    set_features(f, OFFERED);
    assert_int_equal(virtio_features(f->vdev), 1ULL << VIRTIO_F_VERSION_1 | 1ULL << 5);
}

static void test_queue_setup_activate_and_doorbells(void **state)
{
    struct fixture *f = *state;
    wr(f, 0x3000, 2, 0); /* doorbells before DRIVER_OK reach nobody */
    driver_init(f);
    assert_int_equal(f->dev.activates, 1);
    assert_true(f->dev.queue0_at_activate);
    assert_false(f->dev.queue1_at_activate); /* never enabled */
    assert_int_equal(f->dev.notifies[0], 0);
    struct virtqueue *vq = virtio_queue(f->vdev, 0);
    assert_non_null(vq);
    assert_int_equal(vq_size(vq), 16);
    assert_int_equal(vq_index(vq), 0);
    assert_int_equal(vq_size(virtio_queue(f->vdev, 2)), 8);
    assert_null(virtio_queue(f->vdev, NQ));
    assert_int_equal(virtio_features(f->vdev), OFFERED);
    assert_ptr_equal(virtio_dma(f->vdev), &f->dma);

    wr(f, CC_Q_SELECT, 2, 0);
    assert_int_equal(rd(f, CC_Q_ENABLE, 2), 1);
    assert_int_equal(rd(f, CC_Q_DESC, 4), RING_GPA(0));
    assert_int_equal(rd(f, CC_Q_DRIVER, 8), RING_GPA(0) + 0x1000);
    assert_int_equal(rd(f, CC_Q_DEVICE + 4, 4), 0);

    /* Doorbell of queue q at notify offset q * 4: 16-bit writes (Linux) and 32-bit ones. */
    wr(f, 0x3000 + 0, 2, 0);
    wr(f, 0x3000 + 8, 4, 2);
    wr(f, 0x3000 + 4, 2, 1); /* queue 1 is not enabled */
    wr(f, 0x3000 + 4 * NQ, 2, NQ);
    wr(f, 0x3000 + 2, 2, 0); /* not a doorbell */
    assert_int_equal(f->dev.notifies[0], 1);
    assert_int_equal(f->dev.notifies[1], 0);
    assert_int_equal(f->dev.notifies[2], 1);
    assert_int_equal(rd(f, 0x3000, 2), 0);

    /* A second DRIVER_OK write does not activate again. */
    wr(f, CC_STATUS, 1, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
    assert_int_equal(f->dev.activates, 1);
}

static void test_queue_fields_fixed_once_enabled(void **state)
{
    struct fixture *f = *state;
    wr(f, CC_STATUS, 1, S_ACK | S_DRIVER);
    set_features(f, OFFERED);
    wr(f, CC_STATUS, 1, S_ACK | S_DRIVER | S_FEATURES_OK);
    setup_queue(f, 0, 16, 1);
    wr(f, CC_Q_SIZE, 2, 32);
    wr(f, CC_Q_DESC, 4, 0x5000);
    wr(f, CC_Q_DEVICE, 8, 0x6000);
    wr(f, CC_Q_ENABLE, 2, 0); /* 0 is not the driver's to write */
    assert_int_equal(rd(f, CC_Q_SIZE, 2), 16);
    assert_int_equal(rd(f, CC_Q_DESC, 4), RING_GPA(0));
    assert_int_equal(rd(f, CC_Q_DEVICE, 8), RING_GPA(0) + 0x2000);
    assert_int_equal(rd(f, CC_Q_ENABLE, 2), 1);
    /* Read-only registers. */
    wr(f, CC_NUM_QUEUES, 2, 99);
    wr(f, CC_GENERATION, 1, 99);
    wr(f, CC_Q_NOTIFY_OFF, 2, 99);
    assert_int_equal(rd(f, CC_NUM_QUEUES, 2), NQ);
    assert_int_equal(rd(f, CC_Q_NOTIFY_OFF, 2), 0);
    assert_int_equal(rd(f, CC_GENERATION, 1), 0);
    /* Not the natural width: ignored. */
    wr(f, CC_Q_SELECT, 4, 2);
    assert_int_equal(rd(f, CC_Q_SELECT, 2), 0);
    wr(f, CC_STATUS, 2, 0);
    assert_int_equal(rd(f, CC_STATUS, 1), S_ACK | S_DRIVER | S_FEATURES_OK);
}

static void test_bad_queue_sizes_do_not_enable(void **state)
{
    struct fixture *f = *state;
    static const uint16_t bad[] = {0, 3, 24, QMAX * 2, 0xffff};
    wr(f, CC_Q_SELECT, 2, 1);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        wr(f, CC_Q_SIZE, 2, bad[i]);
        wr(f, CC_Q_ENABLE, 2, 1);
        assert_int_equal(rd(f, CC_Q_ENABLE, 2), 0);
    }
    wr(f, CC_Q_SIZE, 2, 1);
    wr(f, CC_Q_ENABLE, 2, 1);
    assert_int_equal(rd(f, CC_Q_ENABLE, 2), 1);
}

static void test_queue_select_out_of_range(void **state)
{
    struct fixture *f = *state;
    static const uint16_t sel[] = {NQ, NQ + 1, 0x8000, 0xffff};
    for (size_t i = 0; i < sizeof(sel) / sizeof(sel[0]); i++) {
        wr(f, CC_Q_SELECT, 2, sel[i]);
        assert_int_equal(rd(f, CC_Q_SELECT, 2), sel[i]);
        wr(f, CC_Q_SIZE, 2, 16);
        wr(f, CC_Q_DESC, 8, RING_GPA(0));
        wr(f, CC_Q_MSIX, 2, 1);
        wr(f, CC_Q_ENABLE, 2, 1);
        for (unsigned off = CC_Q_SIZE; off < 0x40; off += 2)
            assert_int_equal(rd(f, off, 2), 0);
    }
    for (unsigned q = 0; q < NQ; q++) {
        wr(f, CC_Q_SELECT, 2, q);
        assert_int_equal(rd(f, CC_Q_SIZE, 2), QMAX);
        assert_int_equal(rd(f, CC_Q_ENABLE, 2), 0);
        assert_int_equal(rd(f, CC_Q_MSIX, 2), NO_VECTOR);
        assert_int_equal(rd(f, CC_Q_DESC, 8), 0);
        assert_int_equal(rd(f, CC_Q_NOTIFY_OFF, 2), q);
    }
}

static void test_msix_vector_registers(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(rd(f, CC_MSIX_CONFIG, 2), NO_VECTOR);
    wr(f, CC_MSIX_CONFIG, 2, NQ);
    assert_int_equal(rd(f, CC_MSIX_CONFIG, 2), NQ);
    wr(f, CC_MSIX_CONFIG, 2, NQ + 1); /* no such vector: the mapping fails */
    assert_int_equal(rd(f, CC_MSIX_CONFIG, 2), NO_VECTOR);
    wr(f, CC_Q_SELECT, 2, 1);
    wr(f, CC_Q_MSIX, 2, 2);
    assert_int_equal(rd(f, CC_Q_MSIX, 2), 2);
    wr(f, CC_Q_MSIX, 2, 0x7ff);
    assert_int_equal(rd(f, CC_Q_MSIX, 2), NO_VECTOR);
}

static void test_isr_and_intx(void **state)
{
    struct fixture *f = *state;
    unsigned gsi = intx_gsi(f);
    assert_true(gsi < FAKE_NR_IRQS);
    driver_init(f);
    complete_one(f);
    assert_int_equal(get16(f, RING_GPA(0) + 0x2000 + 2), 1); /* used idx */
    assert_int_equal(f->pf.fm.irq_level[gsi], 1);
    assert_true(cfg(f, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
    assert_int_equal(rd(f, 0x1000, 1), 1); /* queue interrupt; reading clears it */
    assert_int_equal(f->pf.fm.irq_level[gsi], 0);
    assert_int_equal(rd(f, 0x1000, 1), 0);
    assert_int_equal(f->pf.total_fires, 0);

    uint8_t gen = (uint8_t)rd(f, CC_GENERATION, 1);
    virtio_config_changed(f->vdev);
    assert_int_equal(rd(f, CC_GENERATION, 1), (uint8_t)(gen + 1));
    assert_int_equal(f->pf.fm.irq_level[gsi], 1);
    assert_int_equal(rd(f, 0x1000, 4), 2); /* configuration interrupt */
    assert_int_equal(f->pf.fm.irq_level[gsi], 0);
    assert_int_equal(rd(f, 0x1001, 1), 0);
}

static void test_msix_interrupts(void **state)
{
    struct fixture *f = *state;
    unsigned gsi = intx_gsi(f);
    driver_init(f); /* config vector 0, queue 0 vector 1, queue 2 vector 3 */
    enable_msix(f, NQ + 1);
    complete_one(f);
    assert_int_equal(pci_fake_fires(&f->pf, 1), 1);
    assert_int_equal(f->pf.total_fires, 1);
    assert_int_equal(f->pf.fm.irq_level[gsi], 0);
    assert_int_equal(rd(f, 0x1000, 1), 0); /* the ISR is unused with MSI-X */
    virtio_config_changed(f->vdev);
    assert_int_equal(pci_fake_fires(&f->pf, 0), 1);
    /* A queue whose vector is NO_VECTOR interrupts nobody. */
    wr(f, CC_Q_SELECT, 2, 0);
    wr(f, CC_Q_MSIX, 2, NO_VECTOR);
    complete_one(f);
    assert_int_equal(f->pf.total_fires, 2);
    assert_int_equal(f->pf.fm.irq_level[gsi], 0);
}

static void test_reset(void **state)
{
    struct fixture *f = *state;
    driver_init(f);
    complete_one(f);
    assert_int_equal(f->pf.fm.irq_level[intx_gsi(f)], 1);
    unsigned resets = f->dev.resets;
    wr(f, CC_STATUS, 1, 0);
    assert_int_equal(f->dev.resets, resets + 1);
    assert_int_equal(rd(f, CC_STATUS, 1), 0);
    assert_int_equal(f->pf.fm.irq_level[intx_gsi(f)], 0);
    assert_int_equal(rd(f, 0x1000, 1), 0);
    assert_null(virtio_queue(f->vdev, 0));
    assert_int_equal(virtio_features(f->vdev), 0);
    assert_int_equal(rd(f, CC_MSIX_CONFIG, 2), NO_VECTOR);
    wr(f, CC_GF_SELECT, 4, 0);
    assert_int_equal(rd(f, CC_GF, 4), 0);
    for (unsigned q = 0; q < NQ; q++) {
        wr(f, CC_Q_SELECT, 2, q);
        assert_int_equal(rd(f, CC_Q_ENABLE, 2), 0);
        assert_int_equal(rd(f, CC_Q_SIZE, 2), QMAX);
        assert_int_equal(rd(f, CC_Q_MSIX, 2), NO_VECTOR);
        assert_int_equal(rd(f, CC_Q_DESC, 8), 0);
        assert_int_equal(rd(f, CC_Q_DRIVER, 8), 0);
        assert_int_equal(rd(f, CC_Q_DEVICE, 8), 0);
    }
    wr(f, 0x3000, 2, 0);
    assert_int_equal(f->dev.notifies[0], 0);
    /* And the device comes back. */
    memset(gpa_to_host(&f->mem, RING_GPA(0), 0x3000), 0, 0x3000);
    driver_init(f);
    assert_int_equal(f->dev.activates, 2);
    complete_one(f);
    assert_int_equal(get16(f, RING_GPA(0) + 0x2000 + 2), 1);
}

static void test_needs_reset(void **state)
{
    struct fixture *f = *state;
    driver_init(f);
    /* A hostile ring: more available than the queue holds. */
    put16(f, RING_GPA(0) + 0x1000 + 2, 17);
    struct vq_elem *e = &f->elem;
    assert_int_equal(vq_pop(virtio_queue(f->vdev, 0), e), -1);
    assert_true(rd(f, CC_STATUS, 1) & S_NEEDS_RESET);
    assert_int_equal(rd(f, 0x1000, 1), 2); /* configuration interrupt */
    /* The driver cannot clear it except by reset. */
    wr(f, CC_STATUS, 1, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
    assert_true(rd(f, CC_STATUS, 1) & S_NEEDS_RESET);
    wr(f, CC_STATUS, 1, 0);
    assert_int_equal(rd(f, CC_STATUS, 1), 0);

    /* Rings outside RAM at DRIVER_OK: no activation, NEEDS_RESET. */
    wr(f, CC_STATUS, 1, S_ACK | S_DRIVER);
    set_features(f, OFFERED);
    wr(f, CC_STATUS, 1, S_ACK | S_DRIVER | S_FEATURES_OK);
    wr(f, CC_Q_SELECT, 2, 0);
    wr(f, CC_Q_DESC, 8, RAM_SIZE);
    wr(f, CC_Q_DRIVER, 8, RING_GPA(0) + 0x1000);
    wr(f, CC_Q_DEVICE, 8, RING_GPA(0) + 0x2000);
    wr(f, CC_Q_ENABLE, 2, 1);
    wr(f, CC_STATUS, 1, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
    assert_int_equal(f->dev.activates, 1);
    assert_true(rd(f, CC_STATUS, 1) & S_NEEDS_RESET);
    wr(f, 0x3000, 2, 0);
    assert_int_equal(f->dev.notifies[0], 0);

    /* DRIVER_OK without FEATURES_OK. */
    wr(f, CC_STATUS, 1, 0);
    wr(f, CC_STATUS, 1, S_ACK | S_DRIVER | S_DRIVER_OK);
    assert_int_equal(f->dev.activates, 1);
    assert_true(rd(f, CC_STATUS, 1) & S_NEEDS_RESET);

    /* The device refuses to activate. */
    wr(f, CC_STATUS, 1, 0);
    f->dev.activate_rc = -1;
    driver_init(f);
    assert_int_equal(f->dev.activates, 2);
    assert_true(rd(f, CC_STATUS, 1) & S_NEEDS_RESET);
    wr(f, 0x3000, 2, 0);
    assert_int_equal(f->dev.notifies[0], 0);
}

static void test_queue_enabled_after_driver_ok(void **state)
{
    struct fixture *f = *state;
    driver_init(f);
    assert_null(virtio_queue(f->vdev, 1));
    setup_queue(f, 1, 4, 2);
    assert_non_null(virtio_queue(f->vdev, 1));
    wr(f, 0x3000 + 4, 2, 1);
    assert_int_equal(f->dev.notifies[1], 1);
    assert_false(rd(f, CC_STATUS, 1) & S_NEEDS_RESET);
}

static void test_device_config_and_generation(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(rd(f, 0x2000, 1), 0xc0);
    assert_int_equal(rd(f, 0x2002, 2), 0xc3c2);
    assert_int_equal(rd(f, 0x2004, 4), 0xc7c6c5c4);
    assert_int_equal(rd(f, 0x2008, 8), 0xcfcecdcccbcac9c8ULL);
    assert_int_equal(rd(f, 0x200e, 4), 0xcfce); /* the part past the end reads 0 */
    assert_int_equal(rd(f, 0x2010, 4), 0);
    assert_int_equal(rd(f, 0x2ffc, 4), 0);
    wr(f, 0x2004, 4, 0x11223344);
    assert_int_equal(f->dev.config_writes, 1);
    assert_int_equal(rd(f, 0x2004, 4), 0x11223344);
    wr(f, 0x200e, 4, 0); /* straddles the end: ignored */
    wr(f, 0x2010, 1, 0);
    assert_int_equal(f->dev.config_writes, 1);
    uint8_t gen = (uint8_t)rd(f, CC_GENERATION, 1);
    virtio_config_changed(f->vdev);
    virtio_config_changed(f->vdev);
    assert_int_equal(rd(f, CC_GENERATION, 1), (uint8_t)(gen + 2));
    assert_int_equal(f->pf.fm.irq_level[intx_gsi(f)], 0); /* not before DRIVER_OK */
}

static void test_pci_cfg_window(void **state)
{
    struct fixture *f = *state;
    unsigned c = f->cap[CAP_PCI_CFG];
    /* Read num_queues through the window. */
    cfg_wr(f, c + 4, 1, 4);
    cfg_wr(f, c + 8, 4, CC_NUM_QUEUES);
    cfg_wr(f, c + 12, 4, 2);
    assert_int_equal(cfg(f, c + 16, 4) & 0xffff, NQ);
    assert_int_equal(cfg(f, c + 16, 2), NQ);
    assert_int_equal(cfg(f, c + 4, 1), 4);
    assert_int_equal(cfg(f, c + 8, 4), CC_NUM_QUEUES);
    assert_int_equal(cfg(f, c + 12, 4), 2);
    /* Write the status through it: only cap.length bytes of the data are used. */
    cfg_wr(f, c + 8, 4, CC_STATUS);
    cfg_wr(f, c + 12, 4, 1);
    cfg_wr(f, c + 16, 4, 0xffffff00 | S_ACK);
    assert_int_equal(rd(f, CC_STATUS, 1), S_ACK);
    assert_int_equal(cfg(f, c + 16, 1), S_ACK);
    /* A 32-bit register: device_feature. */
    cfg_wr(f, c + 8, 4, CC_DF);
    cfg_wr(f, c + 12, 4, 4);
    assert_int_equal(cfg(f, c + 16, 4), (uint32_t)OFFERED);
    /* id and padding are not the driver's; the header is the PCI layer's. */
    cfg_wr(f, c + 4, 4, 0xffffff04);
    assert_int_equal(cfg(f, c + 4, 4), 4);
    cfg_wr(f, c, 4, 0xffffffff);
    assert_int_equal(cfg(f, c, 1), PCI_CAP_ID_VNDR);
    assert_int_equal(cfg(f, c + 3, 1), CAP_PCI_CFG);
    /* Misaligned, odd length or another BAR: nothing happens, data keeps its bytes. */
    cfg_wr(f, c + 16, 4, 0x5a5a5a5a);
    cfg_wr(f, c + 8, 4, CC_NUM_QUEUES + 1);
    cfg_wr(f, c + 12, 4, 2);
    assert_int_equal(cfg(f, c + 16, 4), 0x5a5a5a5a);
    cfg_wr(f, c + 8, 4, CC_NUM_QUEUES);
    cfg_wr(f, c + 12, 4, 3);
    assert_int_equal(cfg(f, c + 16, 4), 0x5a5a5a5a);
    cfg_wr(f, c + 12, 4, 2);
    cfg_wr(f, c + 4, 1, 1);
    assert_int_equal(cfg(f, c + 16, 4), 0x5a5a5a5a);
    cfg_wr(f, c + 4, 1, 4);
    cfg_wr(f, c + 8, 4, 0x4000); /* past the BAR */
    assert_int_equal(cfg(f, c + 16, 4), 0x5a5a5a5a);
    cfg_wr(f, c + 8, 4, 0xfffffffe);
    cfg_wr(f, c + 16, 2, 0);
    assert_int_equal(cfg(f, c + 16, 2), 0);
    /* A doorbell through the window. */
    driver_init(f);
    cfg_wr(f, c + 8, 4, 0x3000);
    cfg_wr(f, c + 12, 4, 2);
    cfg_wr(f, c + 16, 2, 0);
    assert_int_equal(f->dev.notifies[0], 1);
}

static unsigned count_ioev(struct fixture *f, uint64_t base, bool assign)
{
    unsigned n = 0;
    for (unsigned i = 0; i < f->nr_ioev && i < MAX_IOEV; i++)
        if (f->ioev[i].assign == assign && f->ioev[i].addr >= base + 0x3000 &&
            f->ioev[i].addr < base + 0x3000 + 4 * NQ) {
            assert_int_equal(f->ioev[i].len, 2);
            assert_int_equal((f->ioev[i].addr - base - 0x3000) % 4, 0);
            n++;
        }
    return n;
}

static void test_ioeventfd_doorbells(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(count_ioev(f, f->bar, true), NQ);
    driver_init(f);
    /* The accelerator signals queue 2's eventfd: the I/O loop kicks the device. */
    int fd = -1;
    for (unsigned i = 0; i < f->nr_ioev; i++)
        if (f->ioev[i].addr == f->bar + 0x3000 + 8)
            fd = f->ioev[i].fd;
    assert_true(fd >= 0);
    uint64_t one = 1;
    assert_int_equal(write(fd, &one, sizeof(one)), sizeof(one));
    assert_true(event_loop_run_once(f->loop, 0) >= 1);
    assert_int_equal(f->dev.notifies[2], 1);

    /* The guest moves the BAR: the doorbells follow it. */
    uint64_t old = f->bar, moved = 0xd0000000ULL;
    f->nr_ioev = 0;
    cfg_wr(f, PCI_BAR0 + 16, 4, (uint32_t)moved);
    cfg_wr(f, PCI_BAR0 + 20, 4, 0);
    f->bar = moved;
    assert_int_equal(count_ioev(f, old, false), NQ);
    assert_int_equal(count_ioev(f, moved, true), NQ);
    wr(f, 0x3000, 4, 0); /* a width the ioeventfd does not take reaches the handler */
    assert_int_equal(f->dev.notifies[0], 1);
    /* Decoding off: no doorbells anywhere; back on: at the BAR again. */
    f->nr_ioev = 0;
    uint32_t cmd = cfg(f, PCI_COMMAND, 2);
    cfg_wr(f, PCI_COMMAND, 2, cmd & ~PCI_COMMAND_MEMORY);
    assert_int_equal(count_ioev(f, moved, false), NQ);
    cfg_wr(f, PCI_COMMAND, 2, cmd);
    assert_int_equal(count_ioev(f, moved, true), NQ);
    f->nr_ioev = 0;
    virtio_pci_free(f->vdev);
    f->vdev = NULL;
    assert_int_equal(count_ioev(f, moved, false), NQ);
}

static void test_translator_doorbells(void **state)
{
    struct fixture *f = *state;
    /* The accelerator refused: no eventfds kept, no more attempts, the BAR handler works. */
    unsigned attempts = f->nr_ioev;
    assert_true(attempts >= 1);
    cfg_wr(f, PCI_BAR0 + 16, 4, 0xd0000000);
    f->bar = 0xd0000000;
    assert_int_equal(f->nr_ioev, attempts);
    driver_init(f);
    wr(f, 0x3000, 2, 0);
    assert_int_equal(f->dev.notifies[0], 1);
    assert_int_equal(event_loop_run_once(f->loop, 0), 0);
}

/* --- a device thread and a vCPU at once ----------------------------------------------------- */

#define STRESS_ROUNDS 20000

/* No cmocka asserts here: this runs off the main thread. */
static void *stress_device(void *arg)
{
    struct fixture *f = arg;
    struct vq_elem *elem = malloc(sizeof(*elem));
    struct virtqueue *vq = virtio_queue(f->vdev, 0); /* stays valid memory across resets */
    if (!elem || !vq) {
        free(elem);
        return (void *)1;
    }
    uint16_t *avail_idx = gpa_to_host(&f->mem, RING_GPA(0) + 0x1000 + 2, 2);
    for (unsigned i = 0; i < STRESS_ROUNDS; i++) {
        /* Act as the driver too: re-offer descriptor 0 (set up by offer_buffer). */
        uint16_t idx = le16toh(__atomic_load_n(avail_idx, __ATOMIC_RELAXED));
        __atomic_store_n(avail_idx, htole16((uint16_t)(idx + 1)), __ATOMIC_RELEASE);
        if (vq_pop(vq, elem) == 1)
            vq_push(vq, elem, 4);
        vq_notify(vq);
        if (i % 64 == 0)
            virtio_config_changed(f->vdev);
    }
    free(elem);
    return NULL;
}

/* Resets, MSI-X switching and register traffic on the vCPU side while the device thread
 * pushes, notifies and trips over the rings the resets pull away: no deadlock, no crash. */
static void test_device_and_vcpu_concurrently(void **state)
{
    struct fixture *f = *state;
    driver_init(f);
    offer_buffer(f);
    for (unsigned v = 0; v <= NQ; v++) {
        pci_mmio_write(&f->pf, f->msix_bar + 16 * v, 4, 0xfee00000);
        pci_mmio_write(&f->pf, f->msix_bar + 16 * v + 12, 4, 0);
    }
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, stress_device, f), 0);
    for (unsigned i = 0; i < STRESS_ROUNDS / 4; i++) {
        rd(f, 0x1000, 1);
        rd(f, CC_STATUS, 1);
        wr(f, CC_Q_SELECT, 2, 0);
        wr(f, CC_Q_MSIX, 2, i % 3 ? 1 : NO_VECTOR);
        if (i % 97 == 0)
            cfg_wr(f, f->msix_cap + 2, 2, i % 2 ? MSIX_ENABLE : 0);
        if (i % 499 == 0) { /* the driver starts over */
            wr(f, CC_STATUS, 1, 0);
            wr(f, CC_STATUS, 1, S_ACK | S_DRIVER);
            set_features(f, OFFERED);
            wr(f, CC_STATUS, 1, S_ACK | S_DRIVER | S_FEATURES_OK);
            wr(f, CC_Q_SELECT, 2, 0);
            wr(f, CC_Q_SIZE, 2, 16);
            wr(f, CC_Q_DESC, 8, RING_GPA(0));
            wr(f, CC_Q_DRIVER, 8, RING_GPA(0) + 0x1000);
            wr(f, CC_Q_DEVICE, 8, RING_GPA(0) + 0x2000);
            wr(f, CC_Q_ENABLE, 2, 1);
            wr(f, CC_STATUS, 1, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
        }
    }
    void *failed;
    pthread_join(t, &failed);
    assert_null(failed);
}

/* Every register, every width, junk values: nothing may crash, hang or trip a sanitizer, and
 * the fake device's asserts check what reaches it stays in bounds. */
static void test_hostile_hammer(void **state)
{
    struct fixture *f = *state;
    static const unsigned sizes[] = {1, 2, 4, 8};
    static const uint64_t junk[] = {0, 1, 0xff, 0xa5a5a5a5a5a5a5a5ULL, ~0ULL, 0x8000, 0x7f};
    driver_init(f);
    enable_msix(f, NQ + 1);
    struct bus_hit hit;
    assert_true(bus_find(&f->pf.fm.mmio, f->bar, 1, &hit));
    for (uint64_t off = 0; off < 0x4000 + 16; off += (off % 0x1000 < 0x48 ? 1 : 0x3d)) {
        for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++)
            for (size_t j = 0; j < sizeof(junk) / sizeof(junk[0]); j++) {
                rd(f, off, sizes[s]);
                wr(f, off, sizes[s], junk[j]);
                rd(f, off, sizes[s]);
            }
        for (unsigned size = 0; size <= 9; size++) { /* callers other than the bus */
            hit.ops->read(hit.opaque, off, size);
            hit.ops->write(hit.opaque, off, size, 0x5a5a5a5a5a5a5a5aULL);
        }
        if (off % 0x400 == 0) { /* the device side keeps going meanwhile */
            struct virtqueue *vq = virtio_queue(f->vdev, 0);
            if (vq && vq_pop(vq, &f->elem) == 1)
                vq_push(vq, &f->elem, 1);
            if (vq)
                vq_notify(vq);
            virtio_config_changed(f->vdev);
        }
    }
    hit.ops->read(hit.opaque, UINT64_MAX - 3, 4);
    hit.ops->write(hit.opaque, UINT64_MAX - 3, 4, 0);
    /* The capabilities and the window in config space. */
    for (unsigned reg = 0x40; reg < 0x100; reg++)
        for (unsigned size = 1; size <= 4; size *= 2)
            for (size_t j = 0; j < sizeof(junk) / sizeof(junk[0]); j++) {
                cfg(f, reg, size);
                cfg_wr(f, reg, size, (uint32_t)junk[j]);
            }
    /* Still a device a driver can reset and use. */
    wr(f, CC_STATUS, 1, 0);
    assert_int_equal(rd(f, CC_STATUS, 1), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_identity_and_capabilities, setup, teardown),
        cmocka_unit_test_setup_teardown(test_feature_negotiation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_setup_activate_and_doorbells, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_fields_fixed_once_enabled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_queue_sizes_do_not_enable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_select_out_of_range, setup, teardown),
        cmocka_unit_test_setup_teardown(test_msix_vector_registers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_isr_and_intx, setup, teardown),
        cmocka_unit_test_setup_teardown(test_msix_interrupts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_needs_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_enabled_after_driver_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(test_device_config_and_generation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pci_cfg_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ioeventfd_doorbells, setup_kvm, teardown),
        cmocka_unit_test_setup_teardown(test_translator_doorbells, setup_translator, teardown),
        cmocka_unit_test_setup_teardown(test_device_and_vcpu_concurrently, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_hammer, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
