/* virtio-net (virtio 1.2, 5.1): one receive queue (0) and one transmit queue (1) in front of a
 * backend (src/net/: user-mode slirp, or a tap device).
 *
 * Features: MAC, STATUS (the link is always up), MRG_RXBUF (a frame may span several receive
 * chains, num_buffers says how many), MTU (user mode: 65520 unless `mtu=` says otherwise; a
 * tap: only when `mtu=` is given), and the offloads the backend can honour: a tap with a
 * virtio-net header takes and produces partial checksums and TSO/UFO frames itself; user mode
 * takes them (finished in software, offload.c) and marks its own frames DATA_VALID. The
 * 12-byte header (struct virtio_net_hdr_v1) precedes every frame.
 *
 * Transmit (a queue notification: vCPU thread, or the I/O thread with a KVM ioeventfd; or the
 * backend's thread after it said BUSY): each chain's readable bytes are a header and a frame;
 * the header is copied and checked (offloads not negotiated, frames without an Ethernet
 * header or longer than NET_MAX_FRAME are dropped and counted) and the frame goes to the
 * backend as iovecs into guest memory. A backend that is busy keeps the device from taking
 * more chains (they wait in the guest's ring) until it calls tx_ready. At most TX_BUDGET
 * chains per run; the rest continue on the I/O thread.
 *
 * Receive (the backend's thread): chains are taken from the ring as a frame needs them and
 * kept ("held") until filled, so a frame that needs more buffers than are posted waits, whole,
 * for the guest's next refill instead of being split. A frame that would not fit even every
 * entry of the ring is dropped and counted. No receive buffers: NET_RX_FULL, after turning the
 * guest's kicks back on, so the backend hears rx_ready when buffers come.
 *
 * Locking: one mutex per queue (its ring calls, scratch element, held chains); they are never
 * held together, nor across a call into the backend except send() (which takes only the
 * backend's own locks). */
#include "hw/virtio/virtio_net.h"

#include "util/log.h"
#include "util/opts.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define NET_RXQ 0
#define NET_TXQ 1
#define TX_BUDGET 256 /* chains per transmit run before the I/O thread takes over */
#define TX_MAX_IOV 64 /* pieces a frame goes to the backend in; more are gathered first */
#define NET_DEFAULT_MTU 1500
#define NET_USER_MTU 65520 /* the largest slirp takes (IF_MTU_MAX 65521), as passt's default */
#define NET_MIN_MTU 68
#define NET_MAX_MTU 65520

static const uint8_t default_mac[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};

/* A receive chain taken from the ring and not yet returned: its writable buffers. */
struct rx_chain {
    uint16_t head;
    uint16_t nbufs;
    uint32_t cap; /* bytes in buf[] */
    struct vq_buf buf[VIRTIO_NET_RX_CHAIN_BUFS];
};

struct net_rx {
    pthread_mutex_t lock;
    struct virtqueue *vq; /* NULL while not running */
    bool halted;          /* the ring is malformed: wait for a reset */
    bool mergeable;
    uint64_t features;     /* the guest's receive offloads (GUEST_*) */
    struct vq_elem *elem;  /* scratch for vq_pop/vq_push */
    struct rx_chain *held; /* ring of up to held_size chains, oldest at held_first */
    unsigned held_size, held_first, held_count;
    uint64_t held_cap; /* bytes in all held chains */
    bool pushed;       /* chains returned since the last interrupt */
};

struct net_tx {
    pthread_mutex_t lock;
    struct virtqueue *vq;
    bool halted;
    bool pending; /* elem holds a chain the backend said BUSY to */
    bool blocked; /* waiting for tx_ready */
    uint64_t features;
    struct vq_elem *elem;
    uint8_t hdr[VNET_HDR_LEN]; /* the checked copy of the chain's header */
    struct iovec iov[TX_MAX_IOV + 1];
    uint8_t *linear; /* a frame in too many pieces, gathered */
    int kick_fd;     /* the I/O thread continues a run that used its budget */
};

struct virtio_net {
    struct virtio_device *vdev;
    struct virtio_device_ops ops;
    struct net_backend *be;
    struct event_loop *loop;
    bool kick_watched;
    uint8_t config[VIRTIO_NET_CONFIG_SIZE];
    struct net_rx rx;
    struct net_tx tx;
    struct virtio_net_stats stats; /* updated atomically */
};

static void count(uint64_t *counter)
{
    __atomic_fetch_add(counter, 1, __ATOMIC_RELAXED);
}

/* --- receive ------------------------------------------------------------------------------ */

/* The features a header's offloads need: the receive side's (GUEST_*) or the transmit
 * side's (CSUM, HOST_*). UINT64_MAX for a GSO type virtio does not define. */
static uint64_t offload_needs(const struct vnet_hdr *h, bool rx)
{
    uint64_t need = 0;
    if (h->flags & VNET_HDR_F_NEEDS_CSUM)
        need |= NET_F(rx ? VIRTIO_NET_F_GUEST_CSUM : VIRTIO_NET_F_CSUM);
    switch (h->gso_type & (uint8_t)~VNET_HDR_GSO_ECN) {
    case VNET_HDR_GSO_NONE:
        break;
    case VNET_HDR_GSO_TCPV4:
        need |= NET_F(rx ? VIRTIO_NET_F_GUEST_TSO4 : VIRTIO_NET_F_HOST_TSO4);
        break;
    case VNET_HDR_GSO_TCPV6:
        need |= NET_F(rx ? VIRTIO_NET_F_GUEST_TSO6 : VIRTIO_NET_F_HOST_TSO6);
        break;
    case VNET_HDR_GSO_UDP:
        need |= NET_F(rx ? VIRTIO_NET_F_GUEST_UFO : VIRTIO_NET_F_HOST_UFO);
        break;
    default:
        return UINT64_MAX;
    }
    if (h->gso_type & VNET_HDR_GSO_ECN)
        need |= NET_F(rx ? VIRTIO_NET_F_GUEST_ECN : VIRTIO_NET_F_HOST_ECN);
    return need;
}

/* The guest's header for a frame from the backend: -1 when it asks for offloads the guest
 * did not accept (a tap sends those only when told the guest takes them). DATA_VALID passes
 * only to a guest that took GUEST_CSUM. */
static int rx_header(const struct net_rx *rx, const uint8_t *raw, struct vnet_hdr *h)
{
    vnet_hdr_parse(raw, h);
    uint64_t need = offload_needs(h, true);
    if ((rx->features & need) != need)
        return -1;
    if (!(rx->features & NET_F(VIRTIO_NET_F_GUEST_CSUM)))
        h->flags &= (uint8_t)~VNET_HDR_F_DATA_VALID;
    h->flags &= VNET_HDR_F_NEEDS_CSUM | VNET_HDR_F_DATA_VALID;
    return 0;
}

static struct rx_chain *held_at(struct net_rx *rx, unsigned i)
{
    return &rx->held[(rx->held_first + i) % rx->held_size];
}

/* Return a chain with `written` bytes (a held one, or the one just popped into elem). */
static void push_chain(struct net_rx *rx, const struct rx_chain *c, uint32_t written)
{
    struct vq_elem *e = rx->elem;
    e->head = c->head;
    e->nr_out = 0;
    e->nr_in = c->nbufs;
    e->out_len = 0;
    e->in_len = c->cap;
    memcpy(e->buf, c->buf, c->nbufs * sizeof(c->buf[0]));
    vq_push(rx->vq, e, written);
    rx->pushed = true;
}

/* Pop one chain onto the held ones: 1 when one was added or returned unusable (the caller
 * looks again), 0 when the ring is empty, -1 when it is malformed. */
static int take_chain(struct net_rx *rx)
{
    int rc = vq_pop(rx->vq, rx->elem);
    if (rc <= 0)
        return rc;
    const struct vq_elem *e = rx->elem;
    struct rx_chain *c = held_at(rx, rx->held_count);
    c->head = e->head;
    c->nbufs =
        (uint16_t)(e->nr_in < VIRTIO_NET_RX_CHAIN_BUFS ? e->nr_in : VIRTIO_NET_RX_CHAIN_BUFS);
    c->cap = 0;
    for (unsigned i = 0; i < c->nbufs; i++) {
        c->buf[i] = e->buf[e->nr_out + i];
        c->cap += c->buf[i].len; /* <= in_len, which vq_pop bounds to 32 bits */
    }
    /* Each buffer must hold at least the header (virtio 1.2, 5.1.6.3.1): give back ones that
     * do not, unused. */
    if (c->cap < VNET_HDR_LEN) {
        push_chain(rx, c, 0);
        return 1;
    }
    rx->held_count++;
    rx->held_cap += c->cap;
    return 1;
}

static bool has_room(const struct net_rx *rx, uint64_t need)
{
    return rx->mergeable ? rx->held_cap >= need : rx->held_count > 0;
}

/* Hold chains until they can take `need` bytes: NET_RX_OK, NET_RX_FULL (wait for the guest),
 * NET_RX_DROPPED (the frame can never fit). Mergeable buffers: as many chains as needed;
 * otherwise the frame must fit the first chain alone. */
static enum net_rx_result hold_room(struct net_rx *rx, uint64_t need)
{
    /* Every turn takes a ring entry or finds the ring empty; a guest that keeps posting
     * unusable chains is given up on after a ring's worth (as if it had posted none). */
    for (unsigned turns = 0; !has_room(rx, need); turns++) {
        if (rx->held_count == rx->held_size)
            return NET_RX_DROPPED; /* more than every entry of the ring can hold */
        if (turns > 2u * rx->held_size)
            return NET_RX_FULL;
        int rc = take_chain(rx);
        if (rc < 0) {
            rx->halted = true;
            return NET_RX_FULL; /* the transport set NEEDS_RESET; a reset brings rx_ready */
        }
        /* Empty: ask the guest to kick us when it refills, then look once more for buffers
         * that raced with asking. */
        if (rc == 0 && !vq_set_notification(rx->vq, true))
            return NET_RX_FULL;
    }
    return rx->mergeable || held_at(rx, 0)->cap >= need ? NET_RX_OK : NET_RX_DROPPED;
}

/* Copy bytes [off, off + n) of header-then-frame into chain c. */
static void fill_chain(const struct rx_chain *c, const uint8_t *hdr, const uint8_t *frame,
                       size_t off, size_t n)
{
    for (unsigned i = 0; i < c->nbufs && n; i++) {
        uint8_t *dst = c->buf[i].host;
        size_t room = c->buf[i].len < n ? c->buf[i].len : n;
        n -= room;
        while (room) {
            const uint8_t *src = off < VNET_HDR_LEN ? hdr + off : frame + (off - VNET_HDR_LEN);
            size_t avail = off < VNET_HDR_LEN ? VNET_HDR_LEN - off : room;
            size_t k = avail < room ? avail : room;
            memcpy(dst, src, k);
            dst += k;
            off += k;
            room -= k;
        }
    }
}

/* Write the frame into the first held chains (room is there) and return them. */
static void write_frame(struct net_rx *rx, struct vnet_hdr *h, const uint8_t *frame, size_t len)
{
    size_t total = VNET_HDR_LEN + len;
    unsigned n = 0;
    for (uint64_t room = 0; room < total; n++)
        room += held_at(rx, n)->cap;
    h->num_buffers = (uint16_t)n; /* n <= held_size <= VQ_MAX_SIZE */
    uint8_t raw[VNET_HDR_LEN];
    vnet_hdr_build(h, raw);
    size_t off = 0;
    for (unsigned i = 0; i < n; i++) {
        const struct rx_chain *c = held_at(rx, i);
        size_t k = total - off < c->cap ? total - off : c->cap;
        fill_chain(c, raw, frame, off, k);
        push_chain(rx, c, (uint32_t)k);
        off += k;
        rx->held_cap -= c->cap;
    }
    rx->held_first = (rx->held_first + n) % rx->held_size;
    rx->held_count -= n;
}

static enum net_rx_result net_receive(void *opaque, const uint8_t *raw_hdr, const uint8_t *frame,
                                      size_t len)
{
    struct virtio_net *n = opaque;
    struct net_rx *rx = &n->rx;
    struct vnet_hdr h;
    pthread_mutex_lock(&rx->lock);
    enum net_rx_result r = NET_RX_FULL;
    if (!rx->vq || rx->halted)
        goto out; /* activation (or a reset and activation) calls rx_ready */
    r = NET_RX_DROPPED;
    if (len < NET_ETH_HLEN || len > NET_MAX_FRAME || rx_header(rx, raw_hdr, &h) < 0)
        goto out;
    r = hold_room(rx, VNET_HDR_LEN + len);
    if (r == NET_RX_OK)
        write_frame(rx, &h, frame, len);
out:
    pthread_mutex_unlock(&rx->lock);
    if (r == NET_RX_OK)
        count(&n->stats.rx_frames);
    else if (r == NET_RX_DROPPED)
        count(&n->stats.rx_dropped);
    return r;
}

static void net_receive_done(void *opaque)
{
    struct net_rx *rx = &((struct virtio_net *)opaque)->rx;
    pthread_mutex_lock(&rx->lock);
    if (rx->pushed && rx->vq)
        vq_notify(rx->vq);
    rx->pushed = false;
    pthread_mutex_unlock(&rx->lock);
}

/* The guest posted receive buffers (it kicks only after we ran out). */
static void rx_notify(struct virtio_net *n)
{
    struct net_rx *rx = &n->rx;
    pthread_mutex_lock(&rx->lock);
    bool running = rx->vq && !rx->halted;
    if (running)
        vq_set_notification(rx->vq, false); /* we take what comes until we run out again */
    pthread_mutex_unlock(&rx->lock);
    if (running)
        n->be->ops->rx_ready(n->be);
}

/* --- transmit ------------------------------------------------------------------------------ */

/* The frame after the header as iovecs into guest memory (gathered into `linear` when it is
 * in more than TX_MAX_IOV pieces). Returns the iovec count, header included. */
static unsigned tx_iov(struct net_tx *tx)
{
    const struct vq_elem *e = tx->elem;
    tx->iov[0] = (struct iovec){tx->hdr, VNET_HDR_LEN};
    unsigned n = 1;
    size_t skip = VNET_HDR_LEN;
    for (unsigned i = 0; i < e->nr_out; i++) {
        const struct vq_buf *b = &e->buf[i];
        if (skip >= b->len) {
            skip -= b->len;
            continue;
        }
        if (n == TX_MAX_IOV + 1) {
            size_t len = vq_elem_read(e, VNET_HDR_LEN, tx->linear, NET_MAX_FRAME);
            tx->iov[1] = (struct iovec){tx->linear, len};
            return 2;
        }
        tx->iov[n++] = (struct iovec){(uint8_t *)b->host + skip, b->len - skip};
        skip = 0;
    }
    return n;
}

/* Send the chain in tx->elem. */
static enum net_tx_result transmit_one(struct virtio_net *n, struct net_tx *tx)
{
    const struct vq_elem *e = tx->elem;
    if (e->out_len < VNET_HDR_LEN + NET_ETH_HLEN || e->out_len > VNET_HDR_LEN + NET_MAX_FRAME) {
        count(&n->stats.tx_dropped);
        return NET_TX_DROPPED;
    }
    struct vnet_hdr h;
    vq_elem_read(e, 0, tx->hdr, VNET_HDR_LEN);
    vnet_hdr_parse(tx->hdr, &h);
    uint64_t need = offload_needs(&h, false);
    if ((tx->features & need) != need) {
        count(&n->stats.tx_dropped);
        return NET_TX_DROPPED;
    }
    h.num_buffers = 0; /* receive-only */
    vnet_hdr_build(&h, tx->hdr);
    enum net_tx_result r = n->be->ops->send(n->be, tx->iov, tx_iov(tx), (size_t)e->out_len);
    if (r == NET_TX_OK)
        count(&n->stats.tx_frames);
    return r;
}

/* Send what the guest queued, with its kicks off meanwhile; stop when the backend is busy
 * (tx_ready resumes) or the budget is spent (the I/O thread resumes). */
static void tx_run_locked(struct virtio_net *n)
{
    struct net_tx *tx = &n->tx;
    if (!tx->vq || tx->halted || tx->blocked)
        return;
    unsigned budget = TX_BUDGET;
    bool pushed = false;
    for (;;) {
        vq_set_notification(tx->vq, false);
        while (budget) {
            if (!tx->pending) {
                int rc = vq_pop(tx->vq, tx->elem);
                tx->halted = rc < 0;
                if (rc <= 0)
                    break;
            }
            budget--;
            tx->pending = transmit_one(n, tx) == NET_TX_BUSY;
            if (tx->pending)
                break;
            vq_push(tx->vq, tx->elem, 0);
            pushed = true;
        }
        if (tx->pending || tx->halted)
            break;
        if (!budget) {
            uint64_t one = 1;
            if (tx->kick_fd < 0 || write(tx->kick_fd, &one, sizeof(one)) < 0)
                vq_set_notification(tx->vq, true); /* no I/O thread: the guest kicks again */
            break;
        }
        if (!vq_set_notification(tx->vq, true))
            break;
    }
    tx->blocked = tx->pending;
    if (pushed)
        vq_notify(tx->vq);
}

static void tx_run(struct virtio_net *n)
{
    pthread_mutex_lock(&n->tx.lock);
    tx_run_locked(n);
    pthread_mutex_unlock(&n->tx.lock);
}

static void net_tx_ready(void *opaque)
{
    struct virtio_net *n = opaque;
    pthread_mutex_lock(&n->tx.lock);
    n->tx.blocked = false;
    tx_run_locked(n);
    pthread_mutex_unlock(&n->tx.lock);
}

static void on_tx_kick(void *opaque, uint32_t revents)
{
    (void)revents;
    struct virtio_net *n = opaque;
    uint64_t v;
    if (read(n->tx.kick_fd, &v, sizeof(v)) < 0) {
        /* already drained */
    }
    tx_run(n);
}

/* --- the virtio device ---------------------------------------------------------------------- */

static void net_queue_notify(void *opaque, unsigned index)
{
    struct virtio_net *n = opaque;
    if (index == NET_RXQ)
        rx_notify(n);
    else if (index == NET_TXQ)
        tx_run(n);
}

static void rx_forget_locked(struct net_rx *rx)
{
    free(rx->held);
    rx->held = NULL;
    rx->held_size = rx->held_first = rx->held_count = 0;
    rx->held_cap = 0;
    rx->vq = NULL;
    rx->halted = rx->pushed = false;
}

static int net_activate(void *opaque)
{
    struct virtio_net *n = opaque;
    uint64_t f = virtio_features(n->vdev);
    struct virtqueue *rvq = virtio_queue(n->vdev, NET_RXQ);
    pthread_mutex_lock(&n->rx.lock);
    rx_forget_locked(&n->rx);
    n->rx.mergeable = f & NET_F(VIRTIO_NET_F_MRG_RXBUF);
    n->rx.features = f & NET_GUEST_OFFLOADS;
    n->rx.held = rvq ? calloc(vq_size(rvq), sizeof(*n->rx.held)) : NULL;
    if (n->rx.held) {
        n->rx.held_size = vq_size(rvq);
        n->rx.vq = rvq;
    }
    bool ok = !rvq || n->rx.held;
    pthread_mutex_unlock(&n->rx.lock);
    if (!ok)
        return -1; /* out of memory: the transport sets NEEDS_RESET */
    pthread_mutex_lock(&n->tx.lock);
    n->tx.vq = virtio_queue(n->vdev, NET_TXQ);
    n->tx.features = f;
    n->tx.halted = n->tx.pending = n->tx.blocked = false;
    pthread_mutex_unlock(&n->tx.lock);
    n->be->ops->set_rx_offloads(n->be, f & n->be->rx_offloads);
    n->be->ops->rx_ready(n->be); /* buffers posted before DRIVER_OK were not kicked */
    return 0;
}

/* Forget the rings; the backend keeps what it holds for the next activation. */
static void net_reset(void *opaque)
{
    struct virtio_net *n = opaque;
    pthread_mutex_lock(&n->rx.lock);
    rx_forget_locked(&n->rx);
    pthread_mutex_unlock(&n->rx.lock);
    pthread_mutex_lock(&n->tx.lock);
    n->tx.vq = NULL;
    n->tx.halted = n->tx.pending = n->tx.blocked = false;
    pthread_mutex_unlock(&n->tx.lock);
    n->be->ops->set_rx_offloads(n->be, 0);
}

static void net_config_read(void *opaque, uint32_t offset, void *buf, uint32_t len)
{
    struct virtio_net *n = opaque;
    memset(buf, 0, len);
    if (offset <= VIRTIO_NET_CONFIG_SIZE && len <= VIRTIO_NET_CONFIG_SIZE - offset)
        memcpy(buf, n->config + offset, len);
}

static void net_config_write(void *opaque, uint32_t offset, const void *buf, uint32_t len)
{
    /* Nothing is writable (the MAC only through a control queue, not offered). */
    (void)opaque, (void)offset, (void)buf, (void)len;
}

void virtio_net_get_stats(void *state, struct virtio_net_stats *out)
{
    struct virtio_net *n = state;
    const uint64_t *src[] = {&n->stats.tx_frames,      &n->stats.rx_frames,
                             &n->stats.tx_dropped,     &n->stats.rx_dropped,
                             &n->be->stats.tx_dropped, &n->be->stats.rx_dropped};
    uint64_t *dst[] = {&out->tx_frames,  &out->rx_frames,          &out->tx_dropped,
                       &out->rx_dropped, &out->backend.tx_dropped, &out->backend.rx_dropped};
    for (unsigned i = 0; i < sizeof(src) / sizeof(src[0]); i++)
        *dst[i] = __atomic_load_n(src[i], __ATOMIC_RELAXED);
}

/* --- creation ------------------------------------------------------------------------------- */

struct net_options {
    uint8_t mac[6];
    uint64_t mtu;
    bool mtu_set;
};

static int parse_options(const struct device_args *args, struct net_options *o, char *err,
                         size_t errlen)
{
    const char *mac = opts_get(args->opts, "mac");
    if (mac && net_mac_parse(mac, o->mac, err, errlen) < 0)
        return -1;
    if (!mac) {
        memcpy(o->mac, default_mac, sizeof(o->mac));
        o->mac[5] = (uint8_t)(o->mac[5] + args->instance); /* one MAC per NIC */
    }
    /* User mode defaults to a 64 KiB MTU (as passt does): the link ends at slirp, which
     * talks to the world through host sockets, so nothing on it needs 1500-byte frames, and
     * a translated guest handles ~40x fewer packets (and slirp ~40x fewer ACKs) per byte.
     * A tap's MTU is the host's business: told to the guest only when given. */
    bool user = !opts_get(args->opts, "tap") && !opts_get(args->opts, "tap-fd");
    o->mtu_set = user || opts_get(args->opts, "mtu") != NULL;
    return opts_get_u64(args->opts, "mtu", user ? NET_USER_MTU : NET_DEFAULT_MTU, NET_MIN_MTU,
                        NET_MAX_MTU, &o->mtu, "virtio-net", err, errlen);
}

static void build_config(struct virtio_net *n, const struct net_options *o)
{
    uint8_t *c = n->config;
    memcpy(c + VIRTIO_NET_CFG_MAC, o->mac, 6);
    c[VIRTIO_NET_CFG_STATUS] = VIRTIO_NET_S_LINK_UP;
    c[VIRTIO_NET_CFG_MAX_PAIRS] = 1;
    c[VIRTIO_NET_CFG_MTU] = (uint8_t)o->mtu;
    c[VIRTIO_NET_CFG_MTU + 1] = (uint8_t)(o->mtu >> 8);
}

static uint64_t features(const struct net_backend *be, bool mtu_set)
{
    uint64_t f =
        NET_F(VIRTIO_NET_F_MAC) | NET_F(VIRTIO_NET_F_STATUS) | NET_F(VIRTIO_NET_F_MRG_RXBUF);
    f |= be->tx_offloads & NET_HOST_OFFLOADS;
    f |= be->rx_offloads & NET_GUEST_OFFLOADS;
    if (mtu_set)
        f |= NET_F(VIRTIO_NET_F_MTU);
    return f;
}

static int queues_setup(struct virtio_net *n, const struct device_host *host, char *err,
                        size_t errlen)
{
    pthread_mutex_init(&n->rx.lock, NULL);
    pthread_mutex_init(&n->tx.lock, NULL);
    n->rx.elem = malloc(sizeof(*n->rx.elem));
    n->tx.elem = malloc(sizeof(*n->tx.elem));
    n->tx.linear = malloc(NET_MAX_FRAME);
    if (!n->rx.elem || !n->tx.elem || !n->tx.linear)
        return qk_fail(err, errlen, "out of memory");
    if (!host->loop)
        return 0; /* (unit tests without a loop) a spent budget waits for the guest's kick */
    n->tx.kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (n->tx.kick_fd < 0)
        return qk_fail(err, errlen, "eventfd: %s", strerror(errno));
    if (event_loop_add(host->loop, n->tx.kick_fd, EPOLLIN, on_tx_kick, n, err, errlen) < 0)
        return -1;
    n->loop = host->loop;
    n->kick_watched = true;
    return 0;
}

static void net_destroy(void *state);

int virtio_net_create_on(const struct device_host *host, const struct device_args *args,
                         struct net_backend *be, void **state, char *err, size_t errlen)
{
    struct net_options o;
    struct virtio_net *n = calloc(1, sizeof(*n));
    if (!n) {
        be->ops->free(be);
        return qk_fail(err, errlen, "out of memory");
    }
    n->be = be;
    n->tx.kick_fd = -1;
    if (parse_options(args, &o, err, errlen) < 0 || queues_setup(n, host, err, errlen) < 0)
        goto fail;
    build_config(n, &o);
    n->ops = (struct virtio_device_ops){
        .device_id = VIRTIO_ID_NET,
        .features = features(be, o.mtu_set),
        .num_queues = 2,
        .queue_max_size = VIRTIO_NET_QUEUE_SIZE,
        .config_size = VIRTIO_NET_CONFIG_SIZE,
        .config_read = net_config_read,
        .config_write = net_config_write,
        .activate = net_activate,
        .queue_notify = net_queue_notify,
        .reset = net_reset,
    };
    n->vdev = virtio_pci_new(host, &n->ops, n, "virtio-net", err, errlen);
    if (!n->vdev)
        goto fail;
    struct net_client client = {net_receive, net_receive_done, net_tx_ready, n};
    if (be->ops->start(be, &client, err, errlen) < 0)
        goto fail;
    *state = n;
    return 0;
fail:
    net_destroy(n);
    return -1;
}

static int net_create(const struct device_host *host, const struct device_args *args, void **state,
                      char *err, size_t errlen)
{
    struct net_options o;
    if (parse_options(args, &o, err, errlen) < 0)
        return -1;
    struct net_backend *be = net_backend_new(args->opts, (uint16_t)o.mtu, host->loop, err, errlen);
    if (!be)
        return -1;
    return virtio_net_create_on(host, args, be, state, err, errlen);
}

static void print_stats(struct virtio_net *n)
{
    struct virtio_net_stats s;
    virtio_net_get_stats(n, &s);
    qk_warn("virtio-net: tx %" PRIu64 " frames (%" PRIu64 " dropped, %" PRIu64
            " by the backend), rx %" PRIu64 " frames (%" PRIu64 " dropped, %" PRIu64
            " by the backend)",
            s.tx_frames, s.tx_dropped, s.backend.tx_dropped, s.rx_frames, s.rx_dropped,
            s.backend.rx_dropped);
}

/* The transport first (its reset stops the device's use of the rings), then the backend (its
 * thread may still call us until it is joined: the rings are gone, so it finds nothing). */
static void net_destroy(void *state)
{
    struct virtio_net *n = state;
    if (!n)
        return;
    if (n->vdev) {
        if (getenv("QUOKKA_NET_STATS"))
            print_stats(n);
        virtio_pci_free(n->vdev);
    }
    if (n->be)
        n->be->ops->free(n->be);
    if (n->kick_watched)
        event_loop_remove(n->loop, n->tx.kick_fd);
    if (n->tx.kick_fd >= 0)
        close(n->tx.kick_fd);
    free(n->rx.held);
    free(n->rx.elem);
    free(n->tx.elem);
    free(n->tx.linear);
    pthread_mutex_destroy(&n->rx.lock);
    pthread_mutex_destroy(&n->tx.lock);
    free(n);
}

static const char *const net_option_keys[] = {"user", "tap", "tap-fd", "hostfwd",
                                              "mac",  "mtu", NULL};
static const char *const net_repeatable_keys[] = {"hostfwd", NULL};

DEVICE_MODEL(virtio_net_model) = {
    .name = "virtio-net",
    .level = DEVICE_LEVEL_PCI,
    .default_instance = false,
    .option_keys = net_option_keys,
    .repeatable_keys = net_repeatable_keys,
    .create = net_create,
    .destroy = net_destroy,
};
