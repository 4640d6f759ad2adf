/* Unit tests: virtio-net through the real virtio-pci transport and virtqueues, driven as a
 * guest driver would (rings in a fake guest RAM, doorbells through the MMIO bus), first on a
 * fake backend that records what it is sent and hands frames in on demand:
 * config space and features; transmit (header handling, frames in many pieces, hostile chains:
 * too short, longer than 64 KiB + header, offloads not negotiated; a busy backend holding the
 * ring back); receive (a frame merged over several buffers with num_buffers right, a frame
 * waiting whole for more buffers, one too big for the whole ring, no buffers at all, without
 * mergeable buffers, offloads the guest did not take); a malformed ring; reset; creation
 * errors. Then user-mode networking for real: ARP and ping to the slirp gateway, and a guest
 * that never posts receive buffers (bounded backlog, drops counted, the rest in order). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "hw/virtio/virtio_net.h"
#include "net/offload.h"
#include "pci_fakes.h"
#include "util/opts.h"
#include "vm/event_loop.h"
#include "vm/memory.h"
#include "vm/snapshot.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RAM_SIZE (32ULL << 20)
#define RING_GPA(q) (0x10000ULL + 0x10000ULL * (q))
#define DATA_GPA 0x200000ULL
#define QSIZE 128
#define VIRTIO_PCI_CAP_COMMON 1
#define VIRTIO_PCI_CAP_NOTIFY 2
#define VIRTIO_PCI_CAP_ISR 3
#define VIRTIO_PCI_CAP_DEVICE 4
#define CC_DF_SELECT 0x00
#define CC_DF 0x04
#define CC_GF_SELECT 0x08
#define CC_GF 0x0c
#define CC_NUM_QUEUES 0x12
#define CC_STATUS 0x14
#define CC_Q_SELECT 0x16
#define CC_Q_SIZE 0x18
#define CC_Q_ENABLE 0x1c
#define CC_Q_DESC 0x20
#define CC_Q_DRIVER 0x28
#define CC_Q_DEVICE 0x30
#define STATUS_ACK 1
#define STATUS_DRIVER 2
#define STATUS_DRIVER_OK 4
#define STATUS_FEATURES_OK 8
#define STATUS_NEEDS_RESET 0x40
#define DESC_F_NEXT 1
#define DESC_F_WRITE 2
#define RXQ 0
#define TXQ 1
#define F(bit) (1ULL << (bit))

/* --- a fake backend ------------------------------------------------------------------------- */

#define FAKE_MAX_SENT 64

struct fake_backend {
    struct net_backend be;
    struct net_client client;
    bool started, freed_flag;
    bool *freed;  /* set when the device frees us */
    bool enabled; /* set_enabled's last word */
    enum net_tx_result answer;
    unsigned sent;
    size_t sent_len[FAKE_MAX_SENT];
    unsigned sent_iovcnt[FAKE_MAX_SENT];
    uint8_t *sent_data[FAKE_MAX_SENT];
    unsigned rx_ready_calls;
    uint64_t rx_offloads_set;
    /* Called from send(), as a guest adding chains while the device works would. */
    void (*on_send)(void *opaque);
    void *on_send_opaque;
};

static int fake_start(struct net_backend *be, const struct net_client *client, char *err,
                      size_t errlen)
{
    (void)err, (void)errlen;
    struct fake_backend *fb = (struct fake_backend *)be;
    fb->client = *client;
    fb->started = true;
    return 0;
}

static enum net_tx_result fake_send(struct net_backend *be, const struct iovec *iov,
                                    unsigned iovcnt, size_t len)
{
    struct fake_backend *fb = (struct fake_backend *)be;
    if (fb->answer != NET_TX_OK)
        return fb->answer;
    if (fb->on_send)
        fb->on_send(fb->on_send_opaque);
    if (fb->sent >= FAKE_MAX_SENT) { /* only the first ones are kept */
        fb->sent++;
        return NET_TX_OK;
    }
    uint8_t *copy = malloc(len);
    assert_non_null(copy);
    size_t got = 0;
    for (unsigned i = 0; i < iovcnt; i++) {
        assert_true(got + iov[i].iov_len <= len);
        memcpy(copy + got, iov[i].iov_base, iov[i].iov_len);
        got += iov[i].iov_len;
    }
    assert_int_equal(got, len);
    fb->sent_data[fb->sent] = copy;
    fb->sent_len[fb->sent] = len;
    fb->sent_iovcnt[fb->sent++] = iovcnt;
    return NET_TX_OK;
}

static void fake_rx_ready(struct net_backend *be)
{
    ((struct fake_backend *)be)->rx_ready_calls++;
}

static void fake_set_rx_offloads(struct net_backend *be, uint64_t f)
{
    ((struct fake_backend *)be)->rx_offloads_set = f;
}

static void fake_free(struct net_backend *be)
{
    struct fake_backend *fb = (struct fake_backend *)be;
    for (unsigned i = 0; i < fb->sent && i < FAKE_MAX_SENT; i++)
        free(fb->sent_data[i]);
    if (fb->freed)
        *fb->freed = true;
    free(fb);
}

static void fake_set_enabled(struct net_backend *be, bool enabled)
{
    ((struct fake_backend *)be)->enabled = enabled;
}

static const struct net_backend_ops fake_ops = {
    .start = fake_start,
    .send = fake_send,
    .rx_ready = fake_rx_ready,
    .set_rx_offloads = fake_set_rx_offloads,
    .set_enabled = fake_set_enabled,
    .free = fake_free,
};

/* --- the fixture: a fake machine and a small driver --------------------------------------- */

struct drv_queue {
    uint16_t size;
    uint16_t avail_idx, next_desc;
};

struct fixture {
    struct pci_fake_machine pf;
    struct guest_memory mem;
    struct dma_space dma;
    struct event_loop *loop;
    struct pci_bus *pci;
    const struct device_model *model;
    void *state;
    struct fake_backend *fb; /* NULL with a real backend */
    unsigned slot;
    uint64_t common, isr, devcfg, notify;
    uint32_t notify_mult;
    uint64_t data_next;
    struct drv_queue q[5]; /* two pairs and a control queue at most */
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    char err[256];
    assert_non_null(f);
    pci_fake_machine_init(&f->pf);
    assert_int_equal(guest_memory_init(&f->mem, RAM_SIZE, err, sizeof(err)), 0);
    f->dma = (struct dma_space){.mem = &f->mem};
    f->loop = event_loop_new(err, sizeof(err));
    assert_non_null(f->loop);
    struct device_host *host = &f->pf.fm.host;
    host->dma = &f->dma;
    host->loop = f->loop;
    f->pci = pci_bus_new(host, err, sizeof(err));
    assert_non_null(f->pci);
    host->pci = f->pci;
    f->data_next = DATA_GPA;
    f->model = device_model_find("virtio-net");
    assert_non_null(f->model);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    if (f->state)
        f->model->destroy(f->state);
    pci_bus_free(f->pci);
    event_loop_free(f->loop);
    guest_memory_destroy(&f->mem);
    pci_fake_machine_destroy(&f->pf);
    free(f);
    return 0;
}

static uint8_t *gmem(struct fixture *f, uint64_t gpa, uint64_t len)
{
    void *p = gpa_to_host(&f->mem, gpa, len);
    assert_non_null(p);
    return p;
}

static uint64_t galloc(struct fixture *f, uint64_t len)
{
    uint64_t gpa = f->data_next;
    f->data_next = (f->data_next + len + 15) & ~15ULL;
    assert_true(f->data_next <= RAM_SIZE);
    return gpa;
}

static uint32_t cfg_read(struct fixture *f, unsigned reg, unsigned size)
{
    return pci_ecam_read(&f->pf, f->slot, reg, size);
}

static uint64_t bar_address(struct fixture *f, unsigned bar)
{
    uint32_t lo = cfg_read(f, PCI_BAR0 + 4 * bar, 4);
    uint64_t addr = lo & ~0xfULL;
    if ((lo & 6) == 4)
        addr |= (uint64_t)cfg_read(f, PCI_BAR0 + 4 * bar + 4, 4) << 32;
    return addr;
}

static void find_regions(struct fixture *f)
{
    for (f->slot = 1; f->slot < PCI_MAX_DEVICES; f->slot++)
        if (cfg_read(f, PCI_VENDOR_ID, 2) == 0x1af4)
            break;
    assert_true(f->slot < PCI_MAX_DEVICES);
    pci_ecam_write(&f->pf, f->slot, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    for (unsigned cap = cfg_read(f, PCI_CAPABILITY_LIST, 1); cap; cap = cfg_read(f, cap + 1, 1)) {
        if (cfg_read(f, cap, 1) != PCI_CAP_ID_VNDR)
            continue;
        unsigned type = cfg_read(f, cap + 3, 1);
        uint64_t at = bar_address(f, cfg_read(f, cap + 4, 1)) + cfg_read(f, cap + 8, 4);
        if (type == VIRTIO_PCI_CAP_COMMON)
            f->common = at;
        else if (type == VIRTIO_PCI_CAP_NOTIFY) {
            f->notify = at;
            f->notify_mult = cfg_read(f, cap + 16, 4);
        } else if (type == VIRTIO_PCI_CAP_ISR)
            f->isr = at;
        else if (type == VIRTIO_PCI_CAP_DEVICE)
            f->devcfg = at;
    }
    assert_true(f->common && f->notify && f->isr && f->devcfg);
}

static int parse_and_create(struct fixture *f, const char *text, struct net_backend *be,
                            unsigned instance, char *err, size_t errlen)
{
    struct opts o;
    if (opts_parse_repeatable(&o, text, "--net", f->model->option_keys, f->model->implied_key,
                              f->model->repeatable_keys, err, errlen) < 0)
        return -1;
    struct device_args args = {.instance = instance, .opts = &o};
    int rc = be ? virtio_net_create_on(&f->pf.fm.host, &args, &be, 1, &f->state, err, errlen)
                : f->model->create(&f->pf.fm.host, &args, &f->state, err, errlen);
    opts_free(&o);
    return rc;
}

/* The device on a fake backend with these offloads. */
static void create_fake(struct fixture *f, const char *text, uint64_t tx_off, uint64_t rx_off)
{
    struct fake_backend *fb = calloc(1, sizeof(*fb));
    assert_non_null(fb);
    fb->be = (struct net_backend){.ops = &fake_ops, .tx_offloads = tx_off, .rx_offloads = rx_off};
    char err[256] = "";
    if (parse_and_create(f, text, &fb->be, 0, err, sizeof(err)) < 0)
        fail_msg("creating virtio-net (%s): %s", text, err);
    assert_true(fb->started);
    f->fb = fb;
    find_regions(f);
}

static void create_real(struct fixture *f, const char *text)
{
    char err[256] = "";
    if (parse_and_create(f, text, NULL, 0, err, sizeof(err)) < 0)
        fail_msg("creating virtio-net (%s): %s", text, err);
    find_regions(f);
}

static void cc_write(struct fixture *f, unsigned off, unsigned size, uint64_t v)
{
    pci_mmio_write(&f->pf, f->common + off, size, v);
}

static uint64_t cc_read(struct fixture *f, unsigned off, unsigned size)
{
    return pci_mmio_read(&f->pf, f->common + off, size);
}

static uint64_t device_features(struct fixture *f)
{
    cc_write(f, CC_DF_SELECT, 4, 0);
    uint64_t lo = cc_read(f, CC_DF, 4);
    cc_write(f, CC_DF_SELECT, 4, 1);
    return lo | cc_read(f, CC_DF, 4) << 32;
}

/* Reset, negotiate VERSION_1 plus `wanted` of what is offered, start every queue. */
static uint64_t driver_init(struct fixture *f, uint64_t wanted)
{
    cc_write(f, CC_STATUS, 1, 0);
    cc_write(f, CC_STATUS, 1, STATUS_ACK | STATUS_DRIVER);
    uint64_t accept = device_features(f) & (wanted | F(VIRTIO_F_VERSION_1));
    cc_write(f, CC_GF_SELECT, 4, 0);
    cc_write(f, CC_GF, 4, (uint32_t)accept);
    cc_write(f, CC_GF_SELECT, 4, 1);
    cc_write(f, CC_GF, 4, (uint32_t)(accept >> 32));
    cc_write(f, CC_STATUS, 1, STATUS_ACK | STATUS_DRIVER | STATUS_FEATURES_OK);
    unsigned nq = (unsigned)cc_read(f, CC_NUM_QUEUES, 2);
    assert_true(nq >= 2 && nq <= 5);
    for (unsigned q = 0; q < nq; q++) {
        memset(gmem(f, RING_GPA(q), 0x10000), 0, 0x10000);
        cc_write(f, CC_Q_SELECT, 2, q);
        uint16_t max = (uint16_t)cc_read(f, CC_Q_SIZE, 2);
        f->q[q] = (struct drv_queue){.size = max < QSIZE ? max : QSIZE};
        cc_write(f, CC_Q_SIZE, 2, f->q[q].size);
        cc_write(f, CC_Q_DESC, 8, RING_GPA(q));
        cc_write(f, CC_Q_DRIVER, 8, RING_GPA(q) + 0x4000);
        cc_write(f, CC_Q_DEVICE, 8, RING_GPA(q) + 0x8000);
        cc_write(f, CC_Q_ENABLE, 2, 1);
    }
    cc_write(f, CC_STATUS, 1, STATUS_ACK | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK);
    assert_int_equal(cc_read(f, CC_STATUS, 1) & STATUS_NEEDS_RESET, 0);
    return accept;
}

struct seg {
    uint64_t gpa;
    uint32_t len;
    bool writable;
};

static void put_le(uint8_t *p, uint64_t v, unsigned bytes)
{
    for (unsigned i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, unsigned bytes)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < bytes; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static void post(struct fixture *f, unsigned qi, const struct seg *segs, unsigned n)
{
    struct drv_queue *q = &f->q[qi];
    uint16_t head = q->next_desc;
    for (unsigned i = 0; i < n; i++) {
        uint16_t d = (uint16_t)((head + i) % q->size);
        uint8_t *desc = gmem(f, RING_GPA(qi) + 16ULL * d, 16);
        uint16_t flags =
            (uint16_t)((segs[i].writable ? DESC_F_WRITE : 0) | (i + 1 < n ? DESC_F_NEXT : 0));
        put_le(desc, segs[i].gpa, 8);
        put_le(desc + 8, segs[i].len, 4);
        put_le(desc + 12, flags, 2);
        put_le(desc + 14, (head + i + 1) % q->size, 2);
    }
    q->next_desc = (uint16_t)((head + n) % q->size);
    uint64_t avail = RING_GPA(qi) + 0x4000;
    put_le(gmem(f, avail + 4 + 2ULL * (q->avail_idx % q->size), 2), head, 2);
    q->avail_idx++;
    __atomic_thread_fence(__ATOMIC_RELEASE);
    put_le(gmem(f, avail + 2, 2), q->avail_idx, 2);
}

static void kick(struct fixture *f, unsigned qi)
{
    pci_mmio_write(&f->pf, f->notify + qi * f->notify_mult, 2, qi);
}

static uint16_t used_idx(struct fixture *f, unsigned qi)
{
    return __atomic_load_n((uint16_t *)gmem(f, RING_GPA(qi) + 0x8000 + 2, 2), __ATOMIC_ACQUIRE);
}

static uint32_t used_id(struct fixture *f, unsigned qi, uint16_t i)
{
    return (uint32_t)get_le(gmem(f, RING_GPA(qi) + 0x8000 + 4 + 8ULL * (i % f->q[qi].size), 4), 4);
}

static uint32_t used_len(struct fixture *f, unsigned qi, uint16_t i)
{
    return (uint32_t)get_le(gmem(f, RING_GPA(qi) + 0x8000 + 8 + 8ULL * (i % f->q[qi].size), 4), 4);
}

/* Reading the ISR clears it: true when a queue interrupt was raised since the last read. */
static bool queue_interrupt(struct fixture *f)
{
    return pci_mmio_read(&f->pf, f->isr, 1) & 1;
}

static uint64_t devcfg_read(struct fixture *f, unsigned off, unsigned size)
{
    return pci_mmio_read(&f->pf, f->devcfg + off, size);
}

static struct virtio_net_stats stats(struct fixture *f)
{
    struct virtio_net_stats s;
    virtio_net_get_stats(f->state, &s);
    return s;
}

/* A guest frame in guest memory: header (flags, gso) then an Ethernet frame of `len` bytes. */
static uint64_t tx_frame(struct fixture *f, size_t len, uint8_t flags, uint8_t gso, uint8_t fill)
{
    uint64_t gpa = galloc(f, VNET_HDR_LEN + len);
    uint8_t *p = gmem(f, gpa, VNET_HDR_LEN + len);
    struct vnet_hdr h = {.flags = flags, .gso_type = gso, .num_buffers = 0x7777};
    vnet_hdr_build(&h, p);
    for (size_t i = 0; i < len; i++)
        p[VNET_HDR_LEN + i] = (uint8_t)(fill + i);
    return gpa;
}

/* --- config space and features ------------------------------------------------------------- */

static void test_config_and_features(void **state)
{
    struct fixture *f = *state;
    uint64_t tx_off = F(VIRTIO_NET_F_CSUM) | F(VIRTIO_NET_F_HOST_TSO4);
    create_fake(f, "user", tx_off, F(VIRTIO_NET_F_GUEST_CSUM));
    assert_int_equal(cfg_read(f, PCI_DEVICE_ID, 2), 0x1040 + VIRTIO_ID_NET);
    uint64_t df = device_features(f);
    uint64_t want = F(VIRTIO_NET_F_MAC) | F(VIRTIO_NET_F_STATUS) | F(VIRTIO_NET_F_MRG_RXBUF) |
                    tx_off | F(VIRTIO_NET_F_GUEST_CSUM) | F(VIRTIO_F_VERSION_1);
    assert_int_equal(df & want, want);
    assert_int_equal(
        df & (F(VIRTIO_NET_F_GUEST_TSO4) | F(VIRTIO_NET_F_HOST_UFO) | F(VIRTIO_NET_F_HOST_TSO6)),
        0);
    assert_true(df & F(VIRTIO_NET_F_MTU)); /* user mode: a 64 KiB link */
    assert_int_equal(devcfg_read(f, VIRTIO_NET_CFG_MTU, 2), 65520);
    uint8_t mac[6];
    for (unsigned i = 0; i < 6; i++)
        mac[i] = (uint8_t)devcfg_read(f, VIRTIO_NET_CFG_MAC + i, 1);
    assert_memory_equal(mac, "\x52\x54\x00\x12\x34\x56", 6);
    assert_int_equal(devcfg_read(f, VIRTIO_NET_CFG_STATUS, 2), VIRTIO_NET_S_LINK_UP);
    assert_int_equal(devcfg_read(f, VIRTIO_NET_CFG_MAX_PAIRS, 2), 1);
    driver_init(f, F(VIRTIO_NET_F_GUEST_CSUM) | F(VIRTIO_NET_F_MRG_RXBUF));
    assert_int_equal(f->fb->rx_offloads_set, F(VIRTIO_NET_F_GUEST_CSUM));
    assert_true(f->fb->rx_ready_calls >= 1); /* activation looks for buffers */
    cc_write(f, CC_STATUS, 1, 0);
    assert_int_equal(f->fb->rx_offloads_set, 0); /* reset turns the tap's offloads off */
    /* mac= and mtu=; a second instance without mac= gets the next address. */
    f->model->destroy(f->state);
    f->state = NULL;
    create_fake(f, "mac=02:00:00:aa:bb:cc,mtu=9000", 0, 0);
    assert_true(device_features(f) & F(VIRTIO_NET_F_MTU));
    assert_int_equal(devcfg_read(f, VIRTIO_NET_CFG_MTU, 2), 9000);
    assert_int_equal(devcfg_read(f, VIRTIO_NET_CFG_MAC + 3, 1), 0xaa);
    f->model->destroy(f->state);
    f->state = NULL;
    /* A tap's MTU is the host's: not offered unless given. */
    create_fake(f, "tap=qk0", 0, 0);
    assert_false(device_features(f) & F(VIRTIO_NET_F_MTU));
    f->model->destroy(f->state);
    f->state = NULL;
    create_fake(f, "tap-fd=3,mtu=1400", 0, 0);
    assert_true(device_features(f) & F(VIRTIO_NET_F_MTU));
    assert_int_equal(devcfg_read(f, VIRTIO_NET_CFG_MTU, 2), 1400);
    f->model->destroy(f->state);
    f->state = NULL;
    struct fake_backend *fb = calloc(1, sizeof(*fb));
    assert_non_null(fb);
    fb->be.ops = &fake_ops;
    char err[256];
    assert_int_equal(parse_and_create(f, "", &fb->be, 3, err, sizeof(err)), 0);
    find_regions(f);
    assert_int_equal(devcfg_read(f, VIRTIO_NET_CFG_MAC + 5, 1), 0x59);
}

/* --- transmit ------------------------------------------------------------------------------- */

static void test_tx_frames(void **state)
{
    struct fixture *f = *state;
    create_fake(f, "", F(VIRTIO_NET_F_CSUM), 0);
    driver_init(f, F(VIRTIO_NET_F_CSUM) | F(VIRTIO_NET_F_MRG_RXBUF));
    /* Header and frame in three buffers, split inside the header. */
    uint64_t a = tx_frame(f, 1000, VNET_HDR_F_NEEDS_CSUM, 0, 1);
    struct seg three[3] = {{a, 5, false}, {a + 5, 500, false}, {a + 505, 507, false}};
    post(f, TXQ, three, 3);
    /* Everything in one buffer, followed by a writable one (ignored). */
    uint64_t b = tx_frame(f, 60, 0, 0, 9), w = galloc(f, 64);
    struct seg two[2] = {{b, VNET_HDR_LEN + 60, false}, {w, 64, true}};
    post(f, TXQ, two, 2);
    kick(f, TXQ);
    assert_int_equal(used_idx(f, TXQ), 2);
    assert_int_equal(used_len(f, TXQ, 0), 0);
    assert_true(queue_interrupt(f));
    assert_int_equal(f->fb->sent, 2);
    assert_int_equal(f->fb->sent_len[0], VNET_HDR_LEN + 1000);
    struct vnet_hdr h;
    vnet_hdr_parse(f->fb->sent_data[0], &h);
    assert_int_equal(h.flags, VNET_HDR_F_NEEDS_CSUM);
    assert_int_equal(h.num_buffers, 0); /* receive-only field, cleared */
    assert_memory_equal(f->fb->sent_data[0] + VNET_HDR_LEN, gmem(f, a + VNET_HDR_LEN, 1000), 1000);
    assert_int_equal(f->fb->sent_len[1], VNET_HDR_LEN + 60);
    assert_memory_equal(f->fb->sent_data[1] + VNET_HDR_LEN, gmem(f, b + VNET_HDR_LEN, 60), 60);
    /* A frame in 100 pieces reaches the backend whole (gathered). */
    uint64_t c = tx_frame(f, 2000, 0, 0, 77);
    struct seg many[101];
    many[0] = (struct seg){c, VNET_HDR_LEN, false};
    for (unsigned i = 0; i < 100; i++)
        many[1 + i] = (struct seg){c + VNET_HDR_LEN + 20 * i, 20, false};
    post(f, TXQ, many, 101);
    kick(f, TXQ);
    assert_int_equal(f->fb->sent, 3);
    assert_true(f->fb->sent_iovcnt[2] <= 65);
    assert_memory_equal(f->fb->sent_data[2] + VNET_HDR_LEN, gmem(f, c + VNET_HDR_LEN, 2000), 2000);
    assert_int_equal(stats(f).tx_frames, 3);
}

/* Chains that are not frames: dropped, counted, returned; the queue carries on. */
static void test_tx_hostile_chains(void **state)
{
    struct fixture *f = *state;
    create_fake(f, "", F(VIRTIO_NET_F_CSUM), 0); /* no TSO */
    driver_init(f, F(VIRTIO_NET_F_CSUM));
    uint64_t small = tx_frame(f, 13, 0, 0, 0); /* no full Ethernet header */
    struct seg s1 = {small, VNET_HDR_LEN + 13, false};
    post(f, TXQ, &s1, 1);
    uint64_t hdr_only = tx_frame(f, 0, 0, 0, 0);
    struct seg s2 = {hdr_only, 8, false};
    post(f, TXQ, &s2, 1);
    /* 64 KiB + 15 bytes of frame: one byte over, in two buffers. */
    uint64_t big = tx_frame(f, NET_MAX_FRAME + 1, 0, 0, 0);
    struct seg s3[2] = {{big, 40000, false},
                        {big + 40000, VNET_HDR_LEN + NET_MAX_FRAME + 1 - 40000, false}};
    post(f, TXQ, s3, 2);
    uint64_t tso = tx_frame(f, 3000, VNET_HDR_F_NEEDS_CSUM, VNET_HDR_GSO_TCPV4, 0);
    struct seg s4 = {tso, VNET_HDR_LEN + 3000, false};
    post(f, TXQ, &s4, 1);
    uint64_t odd = tx_frame(f, 100, 0, 0x55, 0); /* an unknown GSO type */
    struct seg s5 = {odd, VNET_HDR_LEN + 100, false};
    post(f, TXQ, &s5, 1);
    uint64_t w = galloc(f, 100); /* only writable */
    struct seg s6 = {w, 100, true};
    post(f, TXQ, &s6, 1);
    uint64_t good = tx_frame(f, NET_MAX_FRAME, 0, 0, 5); /* exactly the largest */
    struct seg s7[2] = {{good, 30000, false},
                        {good + 30000, VNET_HDR_LEN + NET_MAX_FRAME - 30000, false}};
    post(f, TXQ, s7, 2);
    kick(f, TXQ);
    assert_int_equal(used_idx(f, TXQ), 7);
    assert_int_equal(f->fb->sent, 1);
    assert_int_equal(f->fb->sent_len[0], VNET_HDR_LEN + NET_MAX_FRAME);
    struct virtio_net_stats s = stats(f);
    assert_int_equal(s.tx_dropped, 6);
    assert_int_equal(s.tx_frames, 1);
    assert_int_equal(cc_read(f, CC_STATUS, 1) & STATUS_NEEDS_RESET, 0);
}

/* A busy backend: the chain stays unreturned, later ones stay in the ring, in order, until
 * the backend calls tx_ready. */
static void test_tx_backpressure(void **state)
{
    struct fixture *f = *state;
    create_fake(f, "", 0, 0);
    driver_init(f, 0);
    f->fb->answer = NET_TX_BUSY;
    uint64_t a = tx_frame(f, 100, 0, 0, 1), b = tx_frame(f, 200, 0, 0, 2);
    struct seg sa = {a, VNET_HDR_LEN + 100, false}, sb = {b, VNET_HDR_LEN + 200, false};
    post(f, TXQ, &sa, 1);
    post(f, TXQ, &sb, 1);
    kick(f, TXQ);
    kick(f, TXQ); /* a kick while blocked changes nothing */
    assert_int_equal(used_idx(f, TXQ), 0);
    f->fb->answer = NET_TX_OK;
    f->fb->client.tx_ready(f->fb->client.opaque);
    assert_int_equal(used_idx(f, TXQ), 2);
    assert_int_equal(f->fb->sent, 2);
    assert_int_equal(f->fb->sent_len[0], VNET_HDR_LEN + 100);
    assert_int_equal(f->fb->sent_len[1], VNET_HDR_LEN + 200);
}

/* A guest that keeps adding chains while the device sends: one run stops after its budget
 * and the I/O thread finishes the job. */
struct refill {
    struct fixture *f;
    struct seg s;
    unsigned left;
};

static void refill_one(void *opaque)
{
    struct refill *r = opaque;
    if (r->left) {
        r->left--;
        post(r->f, TXQ, &r->s, 1);
    }
}

static void test_tx_budget(void **state)
{
    struct fixture *f = *state;
    create_fake(f, "", 0, 0);
    driver_init(f, 0);
    uint64_t a = tx_frame(f, 60, 0, 0, 1);
    struct refill r = {f, {a, VNET_HDR_LEN + 60, false}, 1000};
    f->fb->on_send = refill_one;
    f->fb->on_send_opaque = &r;
    post(f, TXQ, &r.s, 1);
    kick(f, TXQ);
    uint16_t after_kick = used_idx(f, TXQ);
    assert_true(after_kick >= 200 && after_kick < 1001); /* stopped at the budget */
    for (int i = 0; i < 100 && used_idx(f, TXQ) != 1001; i++)
        event_loop_run_once(f->loop, 10 * 1000000LL);
    assert_int_equal(used_idx(f, TXQ), 1001);
    assert_int_equal(f->fb->sent, 1001);
}

/* --- receive -------------------------------------------------------------------------------- */

static enum net_rx_result deliver(struct fixture *f, const struct vnet_hdr *h, const uint8_t *frame,
                                  size_t len)
{
    uint8_t raw[VNET_HDR_LEN];
    vnet_hdr_build(h, raw);
    enum net_rx_result r = f->fb->client.receive(f->fb->client.opaque, raw, frame, len);
    f->fb->client.receive_done(f->fb->client.opaque);
    return r;
}

static uint8_t *pattern(size_t len, uint8_t seed)
{
    uint8_t *p = malloc(len);
    assert_non_null(p);
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)(seed + i * 13);
    return p;
}

static void post_rx(struct fixture *f, uint64_t gpa, uint32_t len)
{
    struct seg s = {gpa, len, true};
    post(f, RXQ, &s, 1);
}

/* A frame spread over several 1000-byte buffers: num_buffers in the first, the bytes in
 * order, each chain's used length right, one interrupt. */
static void test_rx_mergeable(void **state)
{
    struct fixture *f = *state;
    create_fake(f, "", 0, F(VIRTIO_NET_F_GUEST_CSUM));
    driver_init(f, F(VIRTIO_NET_F_MRG_RXBUF) | F(VIRTIO_NET_F_GUEST_CSUM));
    uint64_t buf = galloc(f, 8 * 1000);
    for (unsigned i = 0; i < 8; i++)
        post_rx(f, buf + 1000 * i, 1000);
    kick(f, RXQ);
    queue_interrupt(f);
    uint8_t *frame = pattern(2500, 3);
    struct vnet_hdr h = {.flags = VNET_HDR_F_DATA_VALID};
    assert_int_equal(deliver(f, &h, frame, 2500), NET_RX_OK);
    assert_int_equal(used_idx(f, RXQ), 3);
    assert_int_equal(used_len(f, RXQ, 0), 1000);
    assert_int_equal(used_len(f, RXQ, 1), 1000);
    assert_int_equal(used_len(f, RXQ, 2), VNET_HDR_LEN + 2500 - 2000);
    assert_int_equal(used_id(f, RXQ, 0), 0);
    assert_int_equal(used_id(f, RXQ, 2), 2);
    assert_true(queue_interrupt(f));
    struct vnet_hdr got;
    vnet_hdr_parse(gmem(f, buf, VNET_HDR_LEN), &got);
    assert_int_equal(got.num_buffers, 3);
    assert_int_equal(got.flags, VNET_HDR_F_DATA_VALID);
    assert_memory_equal(gmem(f, buf + VNET_HDR_LEN, 2500), frame, 2500); /* contiguous here */
    /* A small frame takes one buffer, num_buffers 1. */
    assert_int_equal(deliver(f, &h, frame, 60), NET_RX_OK);
    assert_int_equal(used_idx(f, RXQ), 4);
    vnet_hdr_parse(gmem(f, buf + 3000, VNET_HDR_LEN), &got);
    assert_int_equal(got.num_buffers, 1);
    assert_int_equal(used_len(f, RXQ, 3), VNET_HDR_LEN + 60);
    /* The largest frame over the 4 buffers left does not fit yet: it waits, whole. */
    uint8_t *huge = pattern(NET_MAX_FRAME, 9);
    assert_int_equal(deliver(f, &h, huge, NET_MAX_FRAME), NET_RX_FULL);
    assert_int_equal(used_idx(f, RXQ), 4);
    unsigned before = f->fb->rx_ready_calls;
    uint64_t more = galloc(f, 64 * 1024);
    post_rx(f, more, 64 * 1024);
    kick(f, RXQ); /* notifications were turned back on when we ran out */
    assert_int_equal(f->fb->rx_ready_calls, before + 1);
    assert_int_equal(deliver(f, &h, huge, NET_MAX_FRAME), NET_RX_OK);
    assert_int_equal(used_idx(f, RXQ), 9);
    vnet_hdr_parse(gmem(f, buf + 4000, VNET_HDR_LEN), &got);
    assert_int_equal(got.num_buffers, 5);
    assert_memory_equal(gmem(f, buf + 4000 + VNET_HDR_LEN, 4000 - VNET_HDR_LEN), huge,
                        4000 - VNET_HDR_LEN);
    assert_memory_equal(gmem(f, more, NET_MAX_FRAME - (4000 - VNET_HDR_LEN)),
                        huge + 4000 - VNET_HDR_LEN, NET_MAX_FRAME - (4000 - VNET_HDR_LEN));
    assert_int_equal(used_len(f, RXQ, 8), VNET_HDR_LEN + NET_MAX_FRAME - 4000);
    assert_int_equal(stats(f).rx_frames, 3);
    free(frame);
    free(huge);
}

/* Snapshots: receive buffers held for a frame that did not fit go back to the ring
 * (quiesce), nothing reaches guest memory while frozen, and after the thaw the same buffers
 * are taken again, in order. */
static void test_snapshot_quiesce(void **state)
{
    struct fixture *f = *state;
    create_fake(f, "", 0, 0);
    driver_init(f, F(VIRTIO_NET_F_MRG_RXBUF));
    uint64_t buf = galloc(f, 4 * 1000);
    for (unsigned i = 0; i < 4; i++)
        post_rx(f, buf + 1000 * i, 1000);
    kick(f, RXQ);
    uint8_t *huge = pattern(NET_MAX_FRAME, 5);
    struct vnet_hdr h = {0};
    assert_int_equal(deliver(f, &h, huge, NET_MAX_FRAME), NET_RX_FULL); /* all 4 held */
    char err[200];
    assert_int_equal(f->model->quiesce(f->state, err, sizeof(err)), 0);
    uint8_t *frame = pattern(100, 6);
    assert_int_equal(deliver(f, &h, frame, 100), NET_RX_FULL); /* frozen */
    assert_int_equal(used_idx(f, RXQ), 0);
    struct snap_writer w;
    snap_writer_init(&w);
    f->model->save(f->state, &w);
    assert_false(w.failed);
    snap_writer_free(&w);
    unsigned before = f->fb->rx_ready_calls;
    f->model->thaw(f->state);
    assert_int_equal(f->fb->rx_ready_calls, before + 1); /* the backend hears to go on */
    assert_int_equal(deliver(f, &h, frame, 100), NET_RX_OK);
    assert_int_equal(used_idx(f, RXQ), 1);
    assert_int_equal(used_id(f, RXQ, 0), 0); /* the first buffer, taken again */
    assert_memory_equal(gmem(f, buf + VNET_HDR_LEN, 100), frame, 100);
    free(frame);
    free(huge);
}

/* A guest that posts nothing: every frame is NET_RX_FULL (the backend keeps it; nothing is
 * buffered here), and its first refill kicks rx_ready. */
static void test_rx_no_buffers(void **state)
{
    struct fixture *f = *state;
    create_fake(f, "", 0, 0);
    uint8_t *frame = pattern(100, 1);
    struct vnet_hdr h = {0};
    assert_int_equal(deliver(f, &h, frame, 100), NET_RX_FULL); /* before DRIVER_OK too */
    driver_init(f, F(VIRTIO_NET_F_MRG_RXBUF));
    for (int i = 0; i < 1000; i++)
        assert_int_equal(deliver(f, &h, frame, 100), NET_RX_FULL);
    assert_int_equal(stats(f).rx_dropped, 0);
    unsigned before = f->fb->rx_ready_calls;
    post_rx(f, galloc(f, 2048), 2048);
    kick(f, RXQ);
    assert_int_equal(f->fb->rx_ready_calls, before + 1);
    assert_int_equal(deliver(f, &h, frame, 100), NET_RX_OK);
    free(frame);
}

/* Every buffer of the ring together is too small: dropped and counted; the held buffers then
 * serve the next frame. Frames bigger than NET_MAX_FRAME or smaller than an Ethernet header
 * are dropped too. */
static void test_rx_too_big(void **state)
{
    struct fixture *f = *state;
    create_fake(f, "", 0, 0);
    driver_init(f, F(VIRTIO_NET_F_MRG_RXBUF));
    uint64_t buf = galloc(f, QSIZE * 64);
    for (unsigned i = 0; i < QSIZE; i++)
        post_rx(f, buf + 64 * i, 64);
    kick(f, RXQ);
    uint8_t *frame = pattern(NET_MAX_FRAME + 1, 4);
    struct vnet_hdr h = {0};
    assert_int_equal(deliver(f, &h, frame, QSIZE * 64), NET_RX_DROPPED);
    assert_int_equal(deliver(f, &h, frame, NET_MAX_FRAME + 1), NET_RX_DROPPED);
    assert_int_equal(deliver(f, &h, frame, NET_ETH_HLEN - 1), NET_RX_DROPPED);
    assert_int_equal(used_idx(f, RXQ), 0);
    assert_int_equal(deliver(f, &h, frame, 100), NET_RX_OK);
    assert_int_equal(used_idx(f, RXQ), 2);
    assert_int_equal(used_len(f, RXQ, 1), VNET_HDR_LEN + 100 - 64);
    assert_int_equal(stats(f).rx_dropped, 3);
    free(frame);
}

/* Without MRG_RXBUF a frame goes into one chain (header and data may share its buffers);
 * a chain too small for the frame keeps waiting for a smaller one. */
static void test_rx_single_chain(void **state)
{
    struct fixture *f = *state;
    create_fake(f, "", 0, 0);
    driver_init(f, 0);
    uint64_t hdr = galloc(f, VNET_HDR_LEN), data = galloc(f, 1514);
    struct seg chain[2] = {{hdr, VNET_HDR_LEN, true}, {data, 1514, true}};
    post(f, RXQ, chain, 2);
    kick(f, RXQ);
    uint8_t *frame = pattern(2000, 6);
    struct vnet_hdr h = {0};
    assert_int_equal(deliver(f, &h, frame, 2000), NET_RX_DROPPED);
    assert_int_equal(deliver(f, &h, frame, 1514), NET_RX_OK);
    assert_int_equal(used_idx(f, RXQ), 1);
    assert_int_equal(used_len(f, RXQ, 0), VNET_HDR_LEN + 1514);
    struct vnet_hdr got;
    vnet_hdr_parse(gmem(f, hdr, VNET_HDR_LEN), &got);
    assert_int_equal(got.num_buffers, 1);
    assert_memory_equal(gmem(f, data, 1514), frame, 1514);
    assert_int_equal(deliver(f, &h, frame, 100), NET_RX_FULL);
    free(frame);
}

/* Offloads the guest did not accept never reach it. */
static void test_rx_offload_filter(void **state)
{
    struct fixture *f = *state;
    uint64_t all = F(VIRTIO_NET_F_GUEST_CSUM) | F(VIRTIO_NET_F_GUEST_TSO4);
    create_fake(f, "", 0, all);
    driver_init(f, F(VIRTIO_NET_F_MRG_RXBUF)); /* neither */
    uint64_t buf = galloc(f, 16 * 2048);
    for (unsigned i = 0; i < 16; i++)
        post_rx(f, buf + 2048 * i, 2048);
    kick(f, RXQ);
    uint8_t *frame = pattern(1000, 2);
    struct vnet_hdr gso = {
        .flags = VNET_HDR_F_NEEDS_CSUM, .gso_type = VNET_HDR_GSO_TCPV4, .gso_size = 1448};
    assert_int_equal(deliver(f, &gso, frame, 1000), NET_RX_DROPPED);
    struct vnet_hdr partial = {.flags = VNET_HDR_F_NEEDS_CSUM, .csum_start = 34};
    assert_int_equal(deliver(f, &partial, frame, 1000), NET_RX_DROPPED);
    struct vnet_hdr valid = {.flags = VNET_HDR_F_DATA_VALID};
    assert_int_equal(deliver(f, &valid, frame, 1000), NET_RX_OK);
    struct vnet_hdr got;
    vnet_hdr_parse(gmem(f, buf, VNET_HDR_LEN), &got);
    assert_int_equal(got.flags, 0); /* DATA_VALID only with GUEST_CSUM */
    /* With both accepted, they pass. */
    driver_init(f, all | F(VIRTIO_NET_F_MRG_RXBUF));
    assert_int_equal(f->fb->rx_offloads_set, all);
    for (unsigned i = 0; i < 16; i++)
        post_rx(f, buf + 2048 * i, 2048);
    kick(f, RXQ);
    assert_int_equal(deliver(f, &gso, frame, 1000), NET_RX_OK);
    vnet_hdr_parse(gmem(f, buf, VNET_HDR_LEN), &got);
    assert_int_equal(got.gso_type, VNET_HDR_GSO_TCPV4);
    assert_int_equal(got.gso_size, 1448);
    free(frame);
}

/* A receive chain outside RAM: NEEDS_RESET, frames wait (FULL); after a reset the device
 * works again. Held chains are forgotten by a reset. */
static void test_rx_malformed_ring_and_reset(void **state)
{
    struct fixture *f = *state;
    create_fake(f, "", 0, 0);
    driver_init(f, F(VIRTIO_NET_F_MRG_RXBUF));
    uint8_t *frame = pattern(3000, 8);
    struct vnet_hdr h = {0};
    uint64_t buf = galloc(f, 2048);
    post_rx(f, buf, 1024); /* held, then forgotten by the reset below */
    kick(f, RXQ);
    assert_int_equal(deliver(f, &h, frame, 3000), NET_RX_FULL);
    post_rx(f, RAM_SIZE + 0x1000, 2048);
    kick(f, RXQ);
    assert_int_equal(deliver(f, &h, frame, 3000), NET_RX_FULL);
    assert_true(cc_read(f, CC_STATUS, 1) & STATUS_NEEDS_RESET);
    driver_init(f, F(VIRTIO_NET_F_MRG_RXBUF));
    uint64_t big = galloc(f, 4096);
    post_rx(f, big, 4096);
    kick(f, RXQ);
    assert_int_equal(deliver(f, &h, frame, 3000), NET_RX_OK);
    assert_int_equal(used_idx(f, RXQ), 1);
    assert_int_equal(used_len(f, RXQ, 0), VNET_HDR_LEN + 3000);
    assert_memory_equal(gmem(f, big + VNET_HDR_LEN, 3000), frame, 3000);
    free(frame);
}

/* Receive buffers smaller than the header are returned unused; they do not count. */
static void test_rx_tiny_buffers(void **state)
{
    struct fixture *f = *state;
    create_fake(f, "", 0, 0);
    driver_init(f, F(VIRTIO_NET_F_MRG_RXBUF));
    uint64_t buf = galloc(f, 4096);
    post_rx(f, buf, 4);
    post_rx(f, buf + 16, 0);
    post_rx(f, buf + 32, 2048);
    kick(f, RXQ);
    uint8_t *frame = pattern(100, 1);
    struct vnet_hdr h = {0};
    assert_int_equal(deliver(f, &h, frame, 100), NET_RX_OK);
    assert_int_equal(used_idx(f, RXQ), 3);
    assert_int_equal(used_len(f, RXQ, 0), 0);
    assert_int_equal(used_len(f, RXQ, 1), 0);
    assert_int_equal(used_len(f, RXQ, 2), VNET_HDR_LEN + 100);
    free(frame);
}

/* --- creation errors ------------------------------------------------------------------------ */

static void expect_error(struct fixture *f, const char *text, const char *needle)
{
    char err[512] = "";
    f->state = NULL;
    assert_int_equal(parse_and_create(f, text, NULL, 0, err, sizeof(err)), -1);
    assert_null(f->state);
    if (!strstr(err, needle))
        fail_msg("'%s': got \"%s\", wanted \"%s\"", text, err, needle);
}

/* --- multiqueue ------------------------------------------------------------------------------ */

/* A control command on queue 4 (two pairs): its ack byte. */
static uint8_t ctrl_command(struct fixture *f, uint8_t cls, uint8_t cmd, uint16_t pairs)
{
    uint64_t c = galloc(f, 4), ack = galloc(f, 1);
    uint8_t *p = gmem(f, c, 4);
    p[0] = cls, p[1] = cmd;
    put_le(p + 2, pairs, 2);
    *gmem(f, ack, 1) = 0xee;
    struct seg segs[2] = {{c, 4, false}, {ack, 1, true}};
    uint16_t before = used_idx(f, 4);
    post(f, 4, segs, 2);
    kick(f, 4);
    assert_int_equal(used_idx(f, 4), (uint16_t)(before + 1));
    assert_int_equal(used_len(f, 4, before), 1);
    return *gmem(f, ack, 1);
}

/* Two pairs on two backend queues: MQ and a control queue offered, pair 1 off until the
 * guest sets two pairs; each pair's frames go to and come from its own backend queue. */
static void test_multiqueue(void **state)
{
    struct fixture *f = *state;
    struct fake_backend *fb[2];
    struct net_backend *bes[2];
    for (unsigned i = 0; i < 2; i++) {
        fb[i] = calloc(1, sizeof(*fb[i]));
        assert_non_null(fb[i]);
        fb[i]->be = (struct net_backend){.ops = &fake_ops};
        fb[i]->enabled = true;
        bes[i] = &fb[i]->be;
    }
    struct opts o;
    char err[256] = "";
    assert_int_equal(opts_parse_repeatable(&o, "tap=qk0,queues=2", "--net", f->model->option_keys,
                                           f->model->implied_key, f->model->repeatable_keys, err,
                                           sizeof(err)),
                     0);
    struct device_args args = {.opts = &o};
    assert_int_equal(
        virtio_net_create_on(&f->pf.fm.host, &args, bes, 2, &f->state, err, sizeof(err)), 0);
    opts_free(&o);
    find_regions(f);
    uint64_t mq = F(22) | F(17); /* MQ, CTRL_VQ */
    assert_int_equal(device_features(f) & mq, mq);
    assert_int_equal(devcfg_read(f, VIRTIO_NET_CFG_MAX_PAIRS, 2), 2);
    assert_int_equal(cc_read(f, CC_NUM_QUEUES, 2), 5);
    driver_init(f, mq | F(VIRTIO_NET_F_MRG_RXBUF));
    assert_true(fb[0]->started && fb[1]->started);
    assert_false(fb[1]->enabled);                  /* one pair until the guest says more */
    assert_int_equal(ctrl_command(f, 4, 0, 3), 1); /* more pairs than there are */
    assert_int_equal(ctrl_command(f, 4, 0, 0), 1);
    assert_int_equal(ctrl_command(f, 1, 0, 2), 1); /* CTRL_RX: not offered */
    assert_false(fb[1]->enabled);
    assert_int_equal(ctrl_command(f, 4, 0, 2), 0);
    assert_true(fb[1]->enabled);
    /* A command without room for its ack is returned unrun. */
    uint64_t c = galloc(f, 4);
    memcpy(gmem(f, c, 4), "\x04\x00\x01\x00", 4);
    struct seg noack = {c, 4, false};
    post(f, 4, &noack, 1);
    kick(f, 4);
    assert_int_equal(used_idx(f, 4), 5);
    assert_int_equal(used_len(f, 4, 4), 0);
    assert_true(fb[1]->enabled);
    /* Transmit on pair 1 (queue 3) reaches backend queue 1 only. */
    uint64_t a = tx_frame(f, 100, 0, 0, 5);
    struct seg s = {a, VNET_HDR_LEN + 100, false};
    post(f, 3, &s, 1);
    kick(f, 3);
    assert_int_equal(used_idx(f, 3), 1);
    assert_int_equal(fb[1]->sent, 1);
    assert_int_equal(fb[0]->sent, 0);
    /* Receive from backend queue 1 lands in queue 2. */
    uint64_t buf = galloc(f, 2048);
    struct seg r = {buf, 2048, true};
    post(f, 2, &r, 1);
    kick(f, 2);
    uint8_t *frame = pattern(200, 3), raw[VNET_HDR_LEN];
    struct vnet_hdr h = {0};
    vnet_hdr_build(&h, raw);
    assert_int_equal(fb[1]->client.receive(fb[1]->client.opaque, raw, frame, 200), NET_RX_OK);
    fb[1]->client.receive_done(fb[1]->client.opaque);
    assert_int_equal(used_idx(f, 2), 1);
    assert_int_equal(used_idx(f, RXQ), 0);
    assert_memory_equal(gmem(f, buf + VNET_HDR_LEN, 200), frame, 200);
    free(frame);
    struct virtio_net_stats st = stats(f);
    assert_int_equal(st.pair_rx_frames[1], 1);
    assert_int_equal(st.pair_tx_frames[1], 1);
    assert_int_equal(st.pair_rx_frames[0] + st.pair_tx_frames[0], 0);
    /* A reset goes back to one pair. */
    cc_write(f, CC_STATUS, 1, 0);
    assert_false(fb[1]->enabled);
}

static void test_create_errors(void **state)
{
    struct fixture *f = *state;
    expect_error(f, "mac=01:02:03:04:05:06", "mac '01:02:03:04:05:06' must be six hex bytes");
    expect_error(f, "mtu=67", "mtu='67' must be a number from 68 to 65520");
    expect_error(f, "user,tap=x", "give one of user, tap=NAME and tap-fd=N");
    expect_error(f, "user=yes", "'user' takes no value");
    expect_error(f, "tap=x,hostfwd=tcp::1-:2", "hostfwd= is for user-mode networking");
    expect_error(f, "tap=", "tap '': an interface name is 1-15 bytes");
    expect_error(f, "tap=abcdefghijklmnop", "an interface name is 1-15 bytes");
    expect_error(f, "tap-fd=x", "tap-fd 'x' must be 1-16 open file descriptor numbers");
    expect_error(f, "tap-fd=1:", "tap-fd '1:' must be 1-16 open file descriptor numbers");
    expect_error(f, "user,queues=2", "queues=2 needs tap=NAME");
    expect_error(f, "tap=x,queues=17", "queues='17' must be a number from 1 to 16");
    expect_error(f, "tap-fd=987654", "tap-fd 987654: Bad file descriptor");
    int null_fd = open("/dev/null", O_RDONLY);
    assert_true(null_fd >= 0);
    char text[64], msg[64];
    snprintf(text, sizeof(text), "tap-fd=%d", null_fd);
    snprintf(msg, sizeof(msg), "tap-fd %d is not a tap device", null_fd);
    expect_error(f, text, msg);
    assert_true(fcntl(null_fd, F_GETFD) >= 0); /* a refused fd is not closed */
    close(null_fd);
    expect_error(f, "user,hostfwd=tcp:2222-:22", "hostfwd 'tcp:2222-:22' must be tcp|udp:");
    expect_error(f, "user,hostfwd=tcp::2222-8.8.8.8:22", "guest address 8.8.8.8 is not");
    /* A host port someone already listens on. */
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(s >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(s, 1), 0);
    socklen_t alen = sizeof(a);
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &alen), 0);
    snprintf(text, sizeof(text), "user,hostfwd=tcp:127.0.0.1:%u-:22", ntohs(a.sin_port));
    snprintf(msg, sizeof(msg), "host port %u is in use", ntohs(a.sin_port));
    expect_error(f, text, msg);
    close(s);
}

/* --- user-mode networking for real ---------------------------------------------------------- */

static const uint8_t guest_mac[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
static const uint8_t guest_ip[4] = {10, 0, 2, 15}, gw_ip[4] = {10, 0, 2, 2};

/* Wait (the slirp thread answers asynchronously) until the receive queue's used index
 * reaches `want`; bounded. */
static void wait_rx(struct fixture *f, uint16_t want)
{
    for (int i = 0; i < 500 && (uint16_t)(used_idx(f, RXQ) - want) > 0x8000; i++)
        usleep(10000);
    assert_int_equal(used_idx(f, RXQ), want);
}

static void send_frame(struct fixture *f, const uint8_t *frame, size_t len)
{
    /* A driver never has more chains outstanding than its ring holds: wait for the slirp
     * thread when it is behind (the device then holds chains back: NET_TX_BUSY). */
    for (int i = 0; i < 500 && (uint16_t)(f->q[TXQ].avail_idx - used_idx(f, TXQ)) >= QSIZE / 2; i++)
        usleep(10000);
    assert_true((uint16_t)(f->q[TXQ].avail_idx - used_idx(f, TXQ)) < QSIZE / 2);
    uint64_t gpa = galloc(f, VNET_HDR_LEN + len);
    memset(gmem(f, gpa, VNET_HDR_LEN), 0, VNET_HDR_LEN);
    memcpy(gmem(f, gpa + VNET_HDR_LEN, len), frame, len);
    struct seg s = {gpa, (uint32_t)(VNET_HDR_LEN + len), false};
    post(f, TXQ, &s, 1);
    kick(f, TXQ);
}

static void send_arp_request(struct fixture *f)
{
    uint8_t arp[42] = {0};
    memset(arp, 0xff, 6);
    memcpy(arp + 6, guest_mac, 6);
    memcpy(arp + 12, "\x08\x06\x00\x01\x08\x00\x06\x04\x00\x01", 10);
    memcpy(arp + 22, guest_mac, 6);
    memcpy(arp + 28, guest_ip, 4);
    memcpy(arp + 38, gw_ip, 4);
    send_frame(f, arp, sizeof(arp));
}

static size_t build_ping(uint8_t *p, uint16_t seq, size_t payload)
{
    memcpy(p, "\x52\x55\x0a\x00\x02\x02", 6);
    memcpy(p + 6, guest_mac, 6);
    p[12] = 0x08;
    p[13] = 0x00;
    uint8_t *ip = p + 14, *icmp = ip + 20;
    memset(ip, 0, 20);
    ip[0] = 0x45;
    ip[2] = (uint8_t)((20 + 8 + payload) >> 8);
    ip[3] = (uint8_t)(20 + 8 + payload);
    ip[8] = 64;
    ip[9] = 1;
    memcpy(ip + 12, guest_ip, 4);
    memcpy(ip + 16, gw_ip, 4);
    uint16_t c = net_csum_finish(net_csum_add(0, ip, 20));
    memcpy(ip + 10, &c, 2);
    memset(icmp, 0, 8);
    icmp[0] = 8;
    icmp[5] = 42;
    icmp[6] = (uint8_t)(seq >> 8);
    icmp[7] = (uint8_t)seq;
    for (size_t i = 0; i < payload; i++)
        icmp[8 + i] = (uint8_t)(seq + i);
    c = net_csum_finish(net_csum_add(0, icmp, 8 + payload));
    memcpy(icmp + 2, &c, 2);
    return 14 + 20 + 8 + payload;
}

/* The echo reply for `seq` in the receive buffer at gpa (frame after the header). */
static void check_reply(struct fixture *f, uint64_t gpa, uint16_t seq, size_t payload)
{
    const uint8_t *p = gmem(f, gpa + VNET_HDR_LEN, 14 + 28 + payload);
    assert_memory_equal(p, guest_mac, 6);
    assert_int_equal(p[12] << 8 | p[13], 0x0800);
    assert_memory_equal(p + 14 + 12, gw_ip, 4);
    const uint8_t *icmp = p + 34;
    assert_int_equal(icmp[0], 0); /* echo reply */
    assert_int_equal(icmp[6] << 8 | icmp[7], seq);
    assert_int_equal(net_csum_finish(net_csum_add(0, icmp, 8 + payload)), 0);
}

/* ARP and ICMP echo against slirp's gateway, through its thread and the real device. */
static void test_user_arp_and_ping(void **state)
{
    struct fixture *f = *state;
    create_real(f, "user");
    uint64_t df = device_features(f);
    assert_true(df & F(VIRTIO_NET_F_HOST_TSO4));
    assert_true(df & F(VIRTIO_NET_F_GUEST_CSUM));
    assert_false(df & F(VIRTIO_NET_F_GUEST_TSO4));
    driver_init(f, ~0ULL);
    uint64_t buf = galloc(f, 16 * 2048);
    for (unsigned i = 0; i < 16; i++)
        post_rx(f, buf + 2048 * i, 2048);
    kick(f, RXQ);
    send_arp_request(f);
    wait_rx(f, 1);
    const uint8_t *reply = gmem(f, buf + VNET_HDR_LEN, 42);
    assert_memory_equal(reply, guest_mac, 6);
    assert_memory_equal(reply + 6, "\x52\x55\x0a\x00\x02\x02", 6);
    assert_int_equal(reply[21], 2); /* ARP reply */
    struct vnet_hdr got;
    vnet_hdr_parse(gmem(f, buf, VNET_HDR_LEN), &got);
    assert_int_equal(got.flags, VNET_HDR_F_DATA_VALID);
    assert_int_equal(got.num_buffers, 1);
    uint8_t ping[1500];
    size_t len = build_ping(ping, 1, 1000);
    send_frame(f, ping, len);
    wait_rx(f, 2);
    check_reply(f, buf + 2048, 1, 1000);
}

/* A guest that posts no receive buffers while slirp has frames for it: they wait in the
 * bounded backlog, the rest are dropped and counted, nothing grows; once buffers come the
 * backlog arrives in order. */
static void test_user_guest_never_refills(void **state)
{
    struct fixture *f = *state;
    create_real(f, "user");
    driver_init(f, ~0ULL);
    uint64_t one = galloc(f, 2048);
    post_rx(f, one, 2048);
    kick(f, RXQ);
    send_arp_request(f); /* slirp learns our MAC */
    wait_rx(f, 1);
    uint8_t ping[1500];
    enum { PINGS = 2400, PAYLOAD = 1400 };
    for (unsigned i = 0; i < PINGS; i++) {
        size_t len = build_ping(ping, (uint16_t)i, PAYLOAD);
        f->data_next = DATA_GPA + 0x100000; /* reuse guest memory: each chain is sent at once */
        send_frame(f, ping, len);
    }
    struct virtio_net_stats s;
    for (int i = 0; i < 500; i++) { /* until slirp has answered them all */
        s = stats(f);
        if (s.backend.rx_dropped > 0 && s.tx_frames == PINGS + 1)
            break;
        usleep(10000);
    }
    usleep(100000);
    s = stats(f);
    assert_int_equal(s.tx_frames, PINGS + 1);
    assert_true(s.backend.rx_dropped >= PINGS / 3); /* ~2 MiB waited, the rest was dropped */
    assert_true(s.backend.rx_dropped < PINGS);
    assert_int_equal(s.rx_frames, 1);
    /* Buffers at last: the backlog arrives, first pings first. */
    f->data_next = DATA_GPA + 0x800000;
    uint64_t buf = galloc(f, QSIZE * 2048);
    for (unsigned i = 0; i < QSIZE - 1; i++)
        post_rx(f, buf + 2048 * i, 2048);
    kick(f, RXQ);
    wait_rx(f, QSIZE);
    check_reply(f, buf, 0, PAYLOAD);
    check_reply(f, buf + 2048 * 5, 5, PAYLOAD);
}

#define TEST(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        TEST(test_config_and_features),
        TEST(test_tx_frames),
        TEST(test_tx_hostile_chains),
        TEST(test_tx_backpressure),
        TEST(test_tx_budget),
        TEST(test_rx_mergeable),
        TEST(test_snapshot_quiesce),
        TEST(test_rx_no_buffers),
        TEST(test_rx_too_big),
        TEST(test_rx_single_chain),
        TEST(test_rx_offload_filter),
        TEST(test_rx_malformed_ring_and_reset),
        TEST(test_rx_tiny_buffers),
        TEST(test_multiqueue),
        TEST(test_create_errors),
        TEST(test_user_arp_and_ping),
        TEST(test_user_guest_never_refills),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
