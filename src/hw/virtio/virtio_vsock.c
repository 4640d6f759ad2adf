/* virtio-vsock (virtio 1.2, 5.10): the guest's AF_VSOCK stream sockets, with Firecracker's
 * hybrid host side (host AF_UNIX sockets; src/net/vsock_mux.h says how they meet).
 *
 * `--vsock cid=N,path=SOCK`: N is the guest's context ID (3 or more; 0-2 are reserved for the
 * hypervisor, loopback and the host), SOCK the Unix socket host programs connect to.
 *
 * Queues: 0 receive (packets to the guest), 1 transmit (packets from the guest), 2 events. The
 * only event is TRANSPORT_RESET, sent once after a snapshot restore (as Firecracker does): the
 * host ends of the guest's connections did not survive, so the driver drops them; new ones
 * work at once. No device feature bits (stream only; no SEQPACKET), as Firecracker. Config
 * space: le64 guest_cid, read-only.
 *
 * Transmit: every chain is one packet: a 44-byte header (read through the chain, so a header
 * split across descriptors is fine) and h.len payload bytes after it. A chain too short for a
 * header is returned unread; a length over 64 KiB or past the chain resets that connection.
 * Chains are always returned at once: guest data the host cannot take yet waits in the
 * connection's buffer, which the credit we advertise bounds.
 *
 * Receive: each chain takes one packet: the header, then up to 64 KiB of payload, never more
 * than the chain holds or the connection's credit. Chains with less room than a header come
 * back empty.
 *
 * Threads and locking: queue notifications come on vCPU threads (or the I/O thread with KVM
 * ioeventfds), host socket events and timeouts on the I/O thread. One lock (the mux's) covers
 * the connections, both queues and the scratch element; under it we call vq_* (queue lock,
 * then the transport's register lock for interrupts) and the event loop's add/remove (its own
 * leaf lock). The transport calls activate/reset without its locks held, so reset taking our
 * lock cannot deadlock with an I/O-thread callback that holds it. */
#include "hw/virtio/virtio.h"

#include "net/vsock_mux.h"
#include "util/log.h"
#include "util/opts.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define VSOCK_QUEUE_SIZE 256
#define VSOCK_RX 0
#define VSOCK_TX 1
#define VSOCK_EVENT 2
#define VSOCK_EVENT_TRANSPORT_RESET 0 /* struct virtio_vsock_event: le32 id */
#define VSOCK_CONFIG_SIZE 8           /* le64 guest_cid */
#define VSOCK_CID_MIN 3               /* 0-2: hypervisor, local, host */
#define VSOCK_CID_MAX 0xfffffffeULL   /* Linux's CIDs are 32-bit; U32_MAX is VMADDR_CID_ANY */

struct virtio_vsock {
    struct vsock_mux *mux; /* its lock is the device's lock */
    struct virtio_device *vdev;
    uint64_t cid;
    struct virtqueue *rx, *tx; /* NULL while not running */
    bool rx_halted, tx_halted; /* a malformed ring: wait for a reset */
    bool frozen;               /* a snapshot is being taken: guest memory stays as it is */
    bool reset_owed;           /* restored: TRANSPORT_RESET waits for an event buffer */
    struct vq_elem *elem;      /* scratch for vq_pop */
    struct iovec iov[VQ_MAX_SEGS];
};

/* iovecs over `len` bytes of the element's readable (or writable) buffers from byte `skip`. */
static unsigned payload_iov(const struct vq_elem *e, bool writable, uint64_t skip, uint64_t len,
                            struct iovec *iov)
{
    unsigned first = writable ? e->nr_out : 0, end = writable ? e->nr_out + e->nr_in : e->nr_out;
    unsigned n = 0;
    for (unsigned i = first; i < end && len && n < VQ_MAX_SEGS; i++) {
        uint64_t blen = e->buf[i].len;
        if (skip >= blen) {
            skip -= blen;
            continue;
        }
        uint64_t take = blen - skip < len ? blen - skip : len;
        iov[n].iov_base = (uint8_t *)e->buf[i].host + skip;
        iov[n].iov_len = (size_t)take;
        n++;
        len -= take;
        skip = 0;
    }
    return n;
}

/* One transmit chain: a packet for the mux, or nothing when there is no whole header. */
static void handle_tx(struct virtio_vsock *vs, const struct vq_elem *e)
{
    uint8_t raw[VSOCK_HDR_SIZE];
    if (e->out_len < VSOCK_HDR_SIZE || vq_elem_read(e, 0, raw, sizeof(raw)) != sizeof(raw))
        return;
    struct vsock_hdr h;
    vsock_hdr_decode(raw, &h);
    if (h.len > VSOCK_MAX_PKT || h.len > e->out_len - VSOCK_HDR_SIZE) {
        vsock_mux_send_malformed(vs->mux, &h);
        return;
    }
    unsigned n = payload_iov(e, false, VSOCK_HDR_SIZE, h.len, vs->iov);
    vsock_mux_send(vs->mux, &h, vs->iov, n);
}

/* Fill receive chains while the mux has packets. At most two passes over the ring per call;
 * what is left is picked up from the I/O thread, so neither thread is held for long. */
static void process_rx_locked(struct virtio_vsock *vs)
{
    if (!vs->rx || vs->rx_halted || vs->frozen)
        return;
    unsigned budget = 2u * vq_size(vs->rx);
    bool pushed = false;
    while (vsock_mux_has_rx(vs->mux)) {
        if (budget-- == 0) {
            vsock_mux_defer_rx(vs->mux);
            break;
        }
        int rc = vq_pop(vs->rx, vs->elem);
        vs->rx_halted = rc < 0;
        if (rc <= 0)
            break; /* no buffers: the driver kicks when it adds some */
        const struct vq_elem *e = vs->elem;
        uint32_t written = 0;
        if (e->in_len >= VSOCK_HDR_SIZE) {
            uint64_t room = e->in_len - VSOCK_HDR_SIZE;
            uint32_t cap = room < VSOCK_MAX_PKT ? (uint32_t)room : VSOCK_MAX_PKT;
            unsigned n = payload_iov(e, true, VSOCK_HDR_SIZE, cap, vs->iov);
            struct vsock_hdr h;
            uint32_t len = vsock_mux_recv(vs->mux, &h, vs->iov, n, cap);
            uint8_t raw[VSOCK_HDR_SIZE];
            vsock_hdr_encode(&h, raw);
            vq_elem_write(e, 0, raw, sizeof(raw));
            written = VSOCK_HDR_SIZE + len;
        }
        vq_push(vs->rx, e, written);
        pushed = true;
    }
    if (pushed)
        vq_notify(vs->rx);
}

static void process_tx_locked(struct virtio_vsock *vs)
{
    if (!vs->tx || vs->tx_halted || vs->frozen)
        return;
    bool pushed = false;
    for (;;) {
        vq_set_notification(vs->tx, false);
        int rc;
        while ((rc = vq_pop(vs->tx, vs->elem)) > 0) {
            handle_tx(vs, vs->elem);
            vq_push(vs->tx, vs->elem, 0);
            pushed = true;
        }
        vs->tx_halted = rc < 0;
        if (vs->tx_halted || !vq_set_notification(vs->tx, true))
            break;
    }
    if (pushed)
        vq_notify(vs->tx);
}

/* The mux has packets for the guest (I/O thread, lock held). */
static void vsock_rx_ready(void *opaque)
{
    process_rx_locked(opaque);
}

/* TRANSPORT_RESET into the driver's next event buffer, once (none posted yet: when it kicks). */
static void send_reset_locked(struct virtio_vsock *vs)
{
    struct virtqueue *evq = virtio_queue(vs->vdev, VSOCK_EVENT);
    if (!vs->reset_owed || !evq || vs->frozen)
        return;
    int rc = vq_pop(evq, vs->elem);
    if (rc <= 0) {
        vs->reset_owed = rc == 0; /* a malformed ring gets nothing */
        return;
    }
    uint8_t ev[4] = {VSOCK_EVENT_TRANSPORT_RESET, 0, 0, 0};
    vq_push(evq, vs->elem, (uint32_t)vq_elem_write(vs->elem, 0, ev, sizeof(ev)));
    vq_notify(evq);
    vs->reset_owed = vs->tx != NULL;
}

static void vsock_queue_notify(void *opaque, unsigned index)
{
    struct virtio_vsock *vs = opaque;
    vsock_mux_lock(vs->mux);
    if (index == VSOCK_TX)
        process_tx_locked(vs);
    /* Replies to what was sent, or new receive buffers for what waits. The event queue's
     * buffers stay with us unused. */
    if (index == VSOCK_TX || index == VSOCK_RX)
        process_rx_locked(vs);
    if (index == VSOCK_EVENT)
        send_reset_locked(vs);
    vsock_mux_unlock(vs->mux);
}

static int vsock_activate(void *opaque)
{
    struct virtio_vsock *vs = opaque;
    vsock_mux_lock(vs->mux);
    vs->rx = virtio_queue(vs->vdev, VSOCK_RX);
    vs->tx = virtio_queue(vs->vdev, VSOCK_TX);
    vs->rx_halted = vs->tx_halted = false;
    vsock_mux_start(vs->mux);
    vsock_mux_unlock(vs->mux);
    return 0;
}

/* The driver is gone: every connection goes (host ends closed), as Firecracker's reset. */
static void vsock_reset(void *opaque)
{
    struct virtio_vsock *vs = opaque;
    vsock_mux_lock(vs->mux);
    vsock_mux_stop(vs->mux);
    vs->rx = vs->tx = NULL;
    vs->rx_halted = vs->tx_halted = vs->reset_owed = false;
    vsock_mux_unlock(vs->mux);
}

static void vsock_config_read(void *opaque, uint32_t offset, void *buf, uint32_t len)
{
    const struct virtio_vsock *vs = opaque;
    uint8_t cfg[VSOCK_CONFIG_SIZE];
    for (unsigned i = 0; i < sizeof(cfg); i++)
        cfg[i] = (uint8_t)(vs->cid >> (8 * i));
    memcpy(buf, cfg + offset, len); /* the transport keeps offset + len within the config */
}

static const struct virtio_device_ops vsock_ops = {
    .device_id = VIRTIO_ID_VSOCK,
    .features = 0,
    .num_queues = 3,
    .queue_max_size = VSOCK_QUEUE_SIZE,
    .config_size = VSOCK_CONFIG_SIZE,
    .config_read = vsock_config_read,
    .config_write = NULL, /* guest_cid is read-only */
    .activate = vsock_activate,
    .queue_notify = vsock_queue_notify,
    .reset = vsock_reset,
};

static int parse_cid(const struct opts *o, uint64_t *cid, char *err, size_t errlen)
{
    const char *v = opts_get(o, "cid");
    if (!v || !*v)
        return qk_fail(err, errlen,
                       "virtio-vsock: cid=N is required (the guest's context ID, %d or more)",
                       VSOCK_CID_MIN);
    char *end;
    unsigned long long n = strtoull(v, &end, 10);
    if (*end || *v == '-' || *v == '+' || n > VSOCK_CID_MAX)
        return qk_fail(err, errlen, "virtio-vsock: cid='%s' must be a number from %d to %llu", v,
                       VSOCK_CID_MIN, VSOCK_CID_MAX);
    if (n < VSOCK_CID_MIN)
        return qk_fail(err, errlen,
                       "virtio-vsock: cid=%llu is reserved (0 hypervisor, 1 local, 2 host); "
                       "the guest needs %d or more",
                       n, VSOCK_CID_MIN);
    *cid = n;
    return 0;
}

static void vsock_destroy(void *state);

static int vsock_create(const struct device_host *host, const struct device_args *args,
                        void **state, char *err, size_t errlen)
{
    uint64_t cid = 0;
    if (parse_cid(args->opts, &cid, err, errlen) < 0)
        return -1;
    const char *path = opts_get(args->opts, "path");
    if (!path || !*path)
        return qk_fail(err, errlen, "virtio-vsock: path=SOCK is required (the host's Unix socket)");
    struct virtio_vsock *vs = calloc(1, sizeof(*vs));
    if (!vs || !(vs->elem = malloc(sizeof(*vs->elem)))) {
        free(vs);
        return qk_fail(err, errlen, "out of memory");
    }
    vs->cid = cid;
    char why[512];
    vs->mux = vsock_mux_new(host, cid, path, vsock_rx_ready, vs, why, sizeof(why));
    if (!vs->mux) {
        vsock_destroy(vs);
        return qk_fail(err, errlen, "virtio-vsock: %s", why);
    }
    vs->vdev = virtio_pci_new(host, &vsock_ops, vs, "virtio-vsock", err, errlen);
    if (!vs->vdev) {
        vsock_destroy(vs);
        return -1;
    }
    *state = vs;
    return 0;
}

static void vsock_destroy(void *state)
{
    struct virtio_vsock *vs = state;
    if (!vs)
        return;
    if (vs->vdev)
        virtio_pci_free(vs->vdev); /* resets: the mux stops */
    vsock_mux_free(vs->mux);
    free(vs->elem);
    free(vs);
}

/* --- snapshots ------------------------------------------------------------------------------- */

/* Chains are never held (each is returned as it is taken), so stopping the I/O thread's
 * deliveries is all: host data waits in the host sockets meanwhile. */
static int vsock_quiesce(void *state, char *err, size_t errlen)
{
    (void)err, (void)errlen;
    struct virtio_vsock *vs = state;
    vsock_mux_lock(vs->mux);
    vs->frozen = true;
    vsock_mux_unlock(vs->mux);
    return 0;
}

static void vsock_thaw(void *state)
{
    struct virtio_vsock *vs = state;
    vsock_mux_lock(vs->mux);
    vs->frozen = false;
    process_tx_locked(vs);
    process_rx_locked(vs);
    vsock_mux_unlock(vs->mux);
}

/* The transport and queues only: connections are not saved (their host ends belong to this
 * process), as on Firecracker. */
static void vsock_save(void *state, struct snap_writer *w)
{
    struct virtio_vsock *vs = state;
    virtio_pci_save(vs->vdev, w);
}

/* A fresh device (its Unix socket listening again at the same path) with the driver's queues
 * as they were; the driver hears TRANSPORT_RESET, so it drops the connections whose host
 * ends are gone, and kicks for its transmit queue are turned back on. */
static int vsock_load(void *state, struct snap_reader *r, char *err, size_t errlen)
{
    struct virtio_vsock *vs = state;
    if (virtio_pci_load(vs->vdev, r, err, errlen) < 0)
        return -1;
    vsock_mux_lock(vs->mux);
    vs->reset_owed = vs->tx != NULL;
    send_reset_locked(vs);
    process_tx_locked(vs);
    vsock_mux_unlock(vs->mux);
    return 0;
}

static const char *const vsock_option_keys[] = {"cid", "path", NULL};

DEVICE_MODEL(virtio_vsock_model) = {
    .name = "virtio-vsock",
    .level = DEVICE_LEVEL_PCI,
    .default_instance = false,
    .option_keys = vsock_option_keys,
    .create = vsock_create,
    .destroy = vsock_destroy,
    .save = vsock_save,
    .load = vsock_load,
    .quiesce = vsock_quiesce,
    .thaw = vsock_thaw,
};
