/* virtio-net (virtio 1.2, 5.1): queue pairs (receive queue 2i, transmit queue 2i+1), each in
 * front of its own backend queue (src/net/: user-mode slirp, one pair; or a tap device, one
 * pair per tap queue: `queues=N` opens a multiqueue tap N times). With more than one pair the
 * device offers MQ and a control queue (index 2N) where the guest sets how many pairs it uses
 * (VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET); tap queues beyond that are detached from the kernel's
 * steering, so no flow is sent where the guest has no receive buffers.
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
 * backend's own locks). The control queue runs on the notifying thread under its own mutex. */
#include "hw/virtio/virtio_net.h"

#include "hw/virtio/virtqueue.h"

#include "util/log.h"
#include "util/opts.h"
#include "vm/snapshot.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* Control queue (virtio 1.2, 5.1.6.5): class, command, data; the device writes one ack byte. */
#define VIRTIO_NET_F_CTRL_VQ 17
#define VIRTIO_NET_F_MQ 22
#define VIRTIO_NET_CTRL_MQ 4
#define VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET 0
#define VIRTIO_NET_OK 0
#define VIRTIO_NET_ERR 1
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
    bool frozen;          /* a snapshot is being taken: frames wait in the backend */
    bool mergeable;
    uint64_t features;     /* the guest's receive offloads (GUEST_*) */
    struct vq_elem *elem;  /* scratch for vq_pop/vq_push */
    struct rx_chain *held; /* ring of up to held_size chains, oldest at held_first */
    unsigned held_size, held_first, held_count;
    uint64_t held_cap; /* bytes in all held chains */
    bool pushed;       /* chains returned since the last interrupt */
    /* An unusable chain was returned while others were held: the held ones are no longer
     * the last ones taken from the ring, so a snapshot cannot hand them back by rewinding. */
    bool interleaved;
};

struct net_tx {
    pthread_mutex_t lock;
    struct virtqueue *vq;
    bool halted;
    bool frozen;  /* a snapshot is being taken */
    bool pending; /* elem holds a chain the backend said BUSY to */
    bool blocked; /* waiting for tx_ready */
    uint64_t features;
    struct vq_elem *elem;
    uint8_t hdr[VNET_HDR_LEN]; /* the checked copy of the chain's header */
    struct iovec iov[TX_MAX_IOV + 1];
    uint8_t *linear; /* a frame in too many pieces, gathered */
    int kick_fd;     /* the I/O thread continues a run that used its budget */
};

/* One receive queue and one transmit queue, and the backend queue behind them. */
struct net_pair {
    struct virtio_net *n;
    struct net_backend *be;
    unsigned index;
    bool kick_watched;
    struct net_rx rx;
    struct net_tx tx;
    uint64_t rx_frames, tx_frames; /* this pair's share of the device's (atomically) */
};

struct virtio_net {
    struct virtio_device *vdev;
    struct virtio_device_ops ops;
    struct event_loop *loop;
    uint8_t config[VIRTIO_NET_CONFIG_SIZE];
    unsigned nr_pairs;
    unsigned used_pairs; /* what the guest set through the control queue */
    bool inherited_fds;  /* tap-fd=: a restore could not open them again */
    struct net_pair *pairs;
    pthread_mutex_t ctrl_lock; /* the control queue (nr_pairs > 1) */
    struct vq_elem *ctrl_elem;
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
        rx->interleaved |= rx->held_count > 0;
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
    rx->interleaved &= rx->held_count > 0;
}

static enum net_rx_result net_receive(void *opaque, const uint8_t *raw_hdr, const uint8_t *frame,
                                      size_t len)
{
    struct net_pair *p = opaque;
    struct virtio_net *n = p->n;
    struct net_rx *rx = &p->rx;
    struct vnet_hdr h;
    pthread_mutex_lock(&rx->lock);
    enum net_rx_result r = NET_RX_FULL;
    if (!rx->vq || rx->halted || rx->frozen)
        goto out; /* activation (or a reset and activation, or the thaw) calls rx_ready */
    r = NET_RX_DROPPED;
    if (len < NET_ETH_HLEN || len > NET_MAX_FRAME || rx_header(rx, raw_hdr, &h) < 0)
        goto out;
    r = hold_room(rx, VNET_HDR_LEN + len);
    if (r == NET_RX_OK)
        write_frame(rx, &h, frame, len);
out:
    pthread_mutex_unlock(&rx->lock);
    if (r == NET_RX_OK) {
        count(&n->stats.rx_frames);
        count(&p->rx_frames);
    } else if (r == NET_RX_DROPPED)
        count(&n->stats.rx_dropped);
    return r;
}

static void net_receive_done(void *opaque)
{
    struct net_rx *rx = &((struct net_pair *)opaque)->rx;
    pthread_mutex_lock(&rx->lock);
    if (rx->pushed && rx->vq)
        vq_notify(rx->vq);
    rx->pushed = false;
    pthread_mutex_unlock(&rx->lock);
}

/* The guest posted receive buffers (it kicks only after we ran out). */
static void rx_notify(struct net_pair *p)
{
    struct net_rx *rx = &p->rx;
    pthread_mutex_lock(&rx->lock);
    bool running = rx->vq && !rx->halted && !rx->frozen;
    if (running)
        vq_set_notification(rx->vq, false); /* we take what comes until we run out again */
    pthread_mutex_unlock(&rx->lock);
    if (running)
        p->be->ops->rx_ready(p->be);
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
static enum net_tx_result transmit_one(struct net_pair *p)
{
    struct virtio_net *n = p->n;
    struct net_tx *tx = &p->tx;
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
    enum net_tx_result r = p->be->ops->send(p->be, tx->iov, tx_iov(tx), (size_t)e->out_len);
    if (r == NET_TX_OK) {
        count(&n->stats.tx_frames);
        count(&p->tx_frames);
    }
    return r;
}

/* Send what the guest queued, with its kicks off meanwhile; stop when the backend is busy
 * (tx_ready resumes) or the budget is spent (the I/O thread resumes). */
static void tx_run_locked(struct net_pair *p)
{
    struct net_tx *tx = &p->tx;
    if (!tx->vq || tx->halted || tx->blocked || tx->frozen)
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
            tx->pending = transmit_one(p) == NET_TX_BUSY;
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

static void tx_run(struct net_pair *p)
{
    pthread_mutex_lock(&p->tx.lock);
    tx_run_locked(p);
    pthread_mutex_unlock(&p->tx.lock);
}

static void net_tx_ready(void *opaque)
{
    struct net_pair *p = opaque;
    pthread_mutex_lock(&p->tx.lock);
    p->tx.blocked = false;
    tx_run_locked(p);
    pthread_mutex_unlock(&p->tx.lock);
}

static void on_tx_kick(void *opaque, uint32_t revents)
{
    (void)revents;
    struct net_pair *p = opaque;
    uint64_t v;
    if (read(p->tx.kick_fd, &v, sizeof(v)) < 0) {
        /* already drained */
    }
    tx_run(p);
}

/* --- the control queue ------------------------------------------------------------------------ */

/* Use the first `k` pairs: the backend queues of the others leave the host's steering (their
 * rings stay, the guest just stops filling them). */
static void use_pairs(struct virtio_net *n, unsigned k)
{
    n->used_pairs = k;
    for (unsigned i = 1; i < n->nr_pairs; i++)
        if (n->pairs[i].be->ops->set_enabled)
            n->pairs[i].be->ops->set_enabled(n->pairs[i].be, i < k);
}

/* One command: its ack. Only MQ's VQ_PAIRS_SET is offered (no CTRL_RX, CTRL_VLAN, ...). */
static uint8_t ctrl_command(struct virtio_net *n, const struct vq_elem *e)
{
    uint8_t cmd[4];
    if (e->out_len != sizeof(cmd) || vq_elem_read(e, 0, cmd, sizeof(cmd)) != sizeof(cmd))
        return VIRTIO_NET_ERR;
    uint16_t pairs = (uint16_t)(cmd[2] | cmd[3] << 8);
    if (cmd[0] != VIRTIO_NET_CTRL_MQ || cmd[1] != VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET || pairs < 1 ||
        pairs > n->nr_pairs)
        return VIRTIO_NET_ERR;
    use_pairs(n, pairs);
    return VIRTIO_NET_OK;
}

static void ctrl_run(struct virtio_net *n)
{
    struct virtqueue *vq = virtio_queue(n->vdev, 2 * n->nr_pairs);
    if (!vq)
        return;
    pthread_mutex_lock(&n->ctrl_lock);
    struct vq_elem *e = n->ctrl_elem;
    bool pushed = false;
    /* Each turn takes a ring entry; vq_pop bounds a ring's worth of them. */
    for (unsigned turns = 0; turns < VIRTIO_NET_QUEUE_SIZE && vq_pop(vq, e) > 0; turns++) {
        /* No room for the ack: the command is not run, the chain comes back unwritten. */
        uint8_t ack = e->in_len ? ctrl_command(n, e) : VIRTIO_NET_ERR;
        vq_push(vq, e, (uint32_t)vq_elem_write(e, 0, &ack, 1));
        pushed = true;
    }
    if (pushed)
        vq_notify(vq);
    pthread_mutex_unlock(&n->ctrl_lock);
}

/* --- the virtio device ---------------------------------------------------------------------- */

static void net_queue_notify(void *opaque, unsigned index)
{
    struct virtio_net *n = opaque;
    if (index < 2 * n->nr_pairs && index % 2 == 0)
        rx_notify(&n->pairs[index / 2]);
    else if (index < 2 * n->nr_pairs)
        tx_run(&n->pairs[index / 2]);
    else if (index == 2 * n->nr_pairs)
        ctrl_run(n);
}

static void rx_forget_locked(struct net_rx *rx)
{
    free(rx->held);
    rx->held = NULL;
    rx->held_size = rx->held_first = rx->held_count = 0;
    rx->held_cap = 0;
    rx->vq = NULL;
    rx->halted = rx->pushed = rx->interleaved = false;
}

static int pair_activate(struct net_pair *p, uint64_t f)
{
    struct virtio_net *n = p->n;
    struct virtqueue *rvq = virtio_queue(n->vdev, 2 * p->index);
    pthread_mutex_lock(&p->rx.lock);
    rx_forget_locked(&p->rx);
    p->rx.mergeable = f & NET_F(VIRTIO_NET_F_MRG_RXBUF);
    p->rx.features = f & NET_GUEST_OFFLOADS;
    p->rx.held = rvq ? calloc(vq_size(rvq), sizeof(*p->rx.held)) : NULL;
    if (p->rx.held) {
        p->rx.held_size = vq_size(rvq);
        p->rx.vq = rvq;
    }
    bool ok = !rvq || p->rx.held;
    pthread_mutex_unlock(&p->rx.lock);
    if (!ok)
        return -1;
    pthread_mutex_lock(&p->tx.lock);
    p->tx.vq = virtio_queue(n->vdev, 2 * p->index + 1);
    p->tx.features = f;
    p->tx.halted = p->tx.pending = p->tx.blocked = false;
    pthread_mutex_unlock(&p->tx.lock);
    p->be->ops->set_rx_offloads(p->be, f & p->be->rx_offloads);
    p->be->ops->rx_ready(p->be); /* buffers posted before DRIVER_OK were not kicked */
    return 0;
}

/* A driver that did not take MQ (or has not set the count yet) uses pair 0 alone
 * (virtio 1.2, 5.1.6.5.5). */
static int net_activate(void *opaque)
{
    struct virtio_net *n = opaque;
    uint64_t f = virtio_features(n->vdev);
    use_pairs(n, 1);
    for (unsigned i = 0; i < n->nr_pairs; i++)
        if (pair_activate(&n->pairs[i], f) < 0)
            return -1; /* out of memory: the transport sets NEEDS_RESET */
    return 0;
}

/* Forget the rings; the backends keep what they hold for the next activation. */
static void net_reset(void *opaque)
{
    struct virtio_net *n = opaque;
    for (unsigned i = 0; i < n->nr_pairs; i++) {
        struct net_pair *p = &n->pairs[i];
        pthread_mutex_lock(&p->rx.lock);
        rx_forget_locked(&p->rx);
        pthread_mutex_unlock(&p->rx.lock);
        pthread_mutex_lock(&p->tx.lock);
        p->tx.vq = NULL;
        p->tx.halted = p->tx.pending = p->tx.blocked = false;
        pthread_mutex_unlock(&p->tx.lock);
        p->be->ops->set_rx_offloads(p->be, 0);
    }
    use_pairs(n, 1);
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
    /* Nothing is writable (the MAC only through the control queue's CTRL_MAC, not offered). */
    (void)opaque, (void)offset, (void)buf, (void)len;
}

void virtio_net_get_stats(void *state, struct virtio_net_stats *out)
{
    struct virtio_net *n = state;
    memset(out, 0, sizeof(*out));
    out->tx_frames = __atomic_load_n(&n->stats.tx_frames, __ATOMIC_RELAXED);
    out->rx_frames = __atomic_load_n(&n->stats.rx_frames, __ATOMIC_RELAXED);
    out->tx_dropped = __atomic_load_n(&n->stats.tx_dropped, __ATOMIC_RELAXED);
    out->rx_dropped = __atomic_load_n(&n->stats.rx_dropped, __ATOMIC_RELAXED);
    for (unsigned i = 0; i < n->nr_pairs; i++) {
        const struct net_pair *p = &n->pairs[i];
        out->backend.tx_dropped += __atomic_load_n(&p->be->stats.tx_dropped, __ATOMIC_RELAXED);
        out->backend.rx_dropped += __atomic_load_n(&p->be->stats.rx_dropped, __ATOMIC_RELAXED);
        if (i < VIRTIO_NET_MAX_PAIRS) {
            out->pair_rx_frames[i] = __atomic_load_n(&p->rx_frames, __ATOMIC_RELAXED);
            out->pair_tx_frames[i] = __atomic_load_n(&p->tx_frames, __ATOMIC_RELAXED);
        }
    }
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
    c[VIRTIO_NET_CFG_MAX_PAIRS] = (uint8_t)n->nr_pairs;
    c[VIRTIO_NET_CFG_MTU] = (uint8_t)o->mtu;
    c[VIRTIO_NET_CFG_MTU + 1] = (uint8_t)(o->mtu >> 8);
}

/* The offloads every backend queue honours (the queues of one tap all have the same). */
static uint64_t features(const struct virtio_net *n, bool mtu_set)
{
    uint64_t f =
        NET_F(VIRTIO_NET_F_MAC) | NET_F(VIRTIO_NET_F_STATUS) | NET_F(VIRTIO_NET_F_MRG_RXBUF);
    uint64_t offloads = NET_HOST_OFFLOADS | NET_GUEST_OFFLOADS;
    for (unsigned i = 0; i < n->nr_pairs; i++)
        offloads &= n->pairs[i].be->tx_offloads | n->pairs[i].be->rx_offloads;
    f |= offloads;
    if (mtu_set)
        f |= NET_F(VIRTIO_NET_F_MTU);
    if (n->nr_pairs > 1)
        f |= NET_F(VIRTIO_NET_F_CTRL_VQ) | NET_F(VIRTIO_NET_F_MQ);
    return f;
}

static int pair_setup(struct net_pair *p, const struct device_host *host, char *err, size_t errlen)
{
    p->rx.elem = malloc(sizeof(*p->rx.elem));
    p->tx.elem = malloc(sizeof(*p->tx.elem));
    p->tx.linear = malloc(NET_MAX_FRAME);
    if (!p->rx.elem || !p->tx.elem || !p->tx.linear)
        return qk_fail(err, errlen, "out of memory");
    if (!host->loop)
        return 0; /* (unit tests without a loop) a spent budget waits for the guest's kick */
    p->tx.kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (p->tx.kick_fd < 0)
        return qk_fail(err, errlen, "eventfd: %s", strerror(errno));
    if (event_loop_add(host->loop, p->tx.kick_fd, EPOLLIN, on_tx_kick, p, err, errlen) < 0)
        return -1;
    p->kick_watched = true;
    return 0;
}

/* The pairs, each taking one backend (from here on owned by the device, even on failure). */
static int pairs_setup(struct virtio_net *n, const struct device_host *host,
                       struct net_backend *const *bes, unsigned nr, char *err, size_t errlen)
{
    n->pairs = calloc(nr, sizeof(*n->pairs));
    if (!n->pairs) {
        net_backends_free(bes, nr);
        return qk_fail(err, errlen, "out of memory");
    }
    n->nr_pairs = nr;
    n->loop = host->loop;
    for (unsigned i = 0; i < nr; i++) {
        struct net_pair *p = &n->pairs[i];
        *p = (struct net_pair){.n = n, .be = bes[i], .index = i};
        p->tx.kick_fd = -1;
        pthread_mutex_init(&p->rx.lock, NULL);
        pthread_mutex_init(&p->tx.lock, NULL);
    }
    for (unsigned i = 0; i < nr; i++)
        if (pair_setup(&n->pairs[i], host, err, errlen) < 0)
            return -1;
    n->ctrl_elem = malloc(sizeof(*n->ctrl_elem));
    return n->ctrl_elem ? 0 : qk_fail(err, errlen, "out of memory");
}

static void net_destroy(void *state);

int virtio_net_create_on(const struct device_host *host, const struct device_args *args,
                         struct net_backend *const *bes, unsigned nr_bes, void **state, char *err,
                         size_t errlen)
{
    struct net_options o;
    struct virtio_net *n = calloc(1, sizeof(*n));
    if (!n) {
        net_backends_free(bes, nr_bes);
        return qk_fail(err, errlen, "out of memory");
    }
    pthread_mutex_init(&n->ctrl_lock, NULL);
    if (pairs_setup(n, host, bes, nr_bes, err, errlen) < 0 ||
        parse_options(args, &o, err, errlen) < 0)
        goto fail;
    build_config(n, &o);
    n->ops = (struct virtio_device_ops){
        .device_id = VIRTIO_ID_NET,
        .features = features(n, o.mtu_set),
        .num_queues = 2 * n->nr_pairs + (n->nr_pairs > 1),
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
    for (unsigned i = 0; i < n->nr_pairs; i++) {
        struct net_pair *p = &n->pairs[i];
        struct net_client client = {net_receive, net_receive_done, net_tx_ready, p};
        if (p->be->ops->start(p->be, &client, err, errlen) < 0)
            goto fail;
    }
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
    struct net_backend *bes[VIRTIO_NET_MAX_PAIRS];
    int nr = net_backends_new(args->opts, (uint16_t)o.mtu, host->loop, bes, VIRTIO_NET_MAX_PAIRS,
                              err, errlen);
    if (nr < 0)
        return -1;
    if (virtio_net_create_on(host, args, bes, (unsigned)nr, state, err, errlen) < 0)
        return -1;
    ((struct virtio_net *)*state)->inherited_fds = opts_get(args->opts, "tap-fd") != NULL;
    return 0;
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
    for (unsigned i = 0; n->nr_pairs > 1 && i < n->nr_pairs; i++)
        qk_warn("virtio-net: queue pair %u: tx %" PRIu64 " frames, rx %" PRIu64 " frames", i,
                s.pair_tx_frames[i], s.pair_rx_frames[i]);
}

static void pair_destroy(struct net_pair *p)
{
    if (p->be)
        p->be->ops->free(p->be);
    if (p->kick_watched)
        event_loop_remove(p->n->loop, p->tx.kick_fd);
    if (p->tx.kick_fd >= 0)
        close(p->tx.kick_fd);
    free(p->rx.held);
    free(p->rx.elem);
    free(p->tx.elem);
    free(p->tx.linear);
    pthread_mutex_destroy(&p->rx.lock);
    pthread_mutex_destroy(&p->tx.lock);
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
    for (unsigned i = 0; i < n->nr_pairs; i++)
        pair_destroy(&n->pairs[i]);
    free(n->pairs);
    free(n->ctrl_elem);
    pthread_mutex_destroy(&n->ctrl_lock);
    free(n);
}

/* --- snapshots ------------------------------------------------------------------------------- */

/* Give the held receive chains back to the ring. They are normally the last ones taken, so
 * moving the ring's position back over them leaves it as if they had never been touched (as
 * Firecracker undoes its parsed chains); after an interleaved unusable chain they are
 * returned used with nothing written instead (the driver counts a short frame, refills). */
static void rx_unhold_locked(struct net_rx *rx)
{
    if (rx->vq && rx->held_count && rx->interleaved) {
        for (unsigned i = 0; i < rx->held_count; i++)
            push_chain(rx, held_at(rx, i), 0);
        vq_notify(rx->vq);
    } else if (rx->vq && rx->held_count) {
        struct vq_indices idx;
        vq_get_indices(rx->vq, &idx);
        idx.last_avail = (uint16_t)(idx.last_avail - rx->held_count);
        vq_set_indices(rx->vq, &idx);
    }
    rx->held_first = rx->held_count = 0;
    rx->held_cap = 0;
    rx->interleaved = false;
}

/* The chain the backend said BUSY to is the last one taken: put it back the same way. */
static void tx_unpend_locked(struct net_tx *tx)
{
    if (tx->vq && tx->pending) {
        struct vq_indices idx;
        vq_get_indices(tx->vq, &idx);
        idx.last_avail = (uint16_t)(idx.last_avail - 1);
        vq_set_indices(tx->vq, &idx);
    }
    tx->pending = tx->blocked = false;
}

/* Nothing of the guest's rings is held by the device afterwards, and nothing more is written
 * into guest memory until the thaw: the backends keep their frames (flow control). */
static int net_quiesce(void *state, char *err, size_t errlen)
{
    struct virtio_net *n = state;
    if (n->inherited_fds)
        return qk_fail(err, errlen,
                       "virtio-net on inherited tap fds (tap-fd=) cannot be snapshotted: a "
                       "restore could not open them again (use tap=NAME)");
    for (unsigned i = 0; i < n->nr_pairs; i++) {
        struct net_pair *p = &n->pairs[i];
        pthread_mutex_lock(&p->rx.lock);
        p->rx.frozen = true;
        rx_unhold_locked(&p->rx);
        pthread_mutex_unlock(&p->rx.lock);
        pthread_mutex_lock(&p->tx.lock);
        p->tx.frozen = true;
        tx_unpend_locked(&p->tx);
        pthread_mutex_unlock(&p->tx.lock);
    }
    return 0;
}

static void net_thaw(void *state)
{
    struct virtio_net *n = state;
    for (unsigned i = 0; i < n->nr_pairs; i++) {
        struct net_pair *p = &n->pairs[i];
        pthread_mutex_lock(&p->rx.lock);
        p->rx.frozen = false;
        pthread_mutex_unlock(&p->rx.lock);
        pthread_mutex_lock(&p->tx.lock);
        p->tx.frozen = false;
        tx_run_locked(p); /* what the guest queued meanwhile; turns its kicks back on */
        pthread_mutex_unlock(&p->tx.lock);
        p->be->ops->rx_ready(p->be); /* frames that waited in the backend */
    }
}

/* The pairs in use, each backend's own state (slirp's leases), then the transport (whose
 * load checks it reads to the section's end). A tap is opened again by name on restore. */
static void net_save(void *state, struct snap_writer *w)
{
    struct virtio_net *n = state;
    snap_put_u32(w, n->used_pairs);
    snap_put_u32(w, n->nr_pairs);
    for (unsigned i = 0; i < n->nr_pairs; i++) {
        struct net_backend *be = n->pairs[i].be;
        uint8_t *blob = NULL;
        size_t len = 0;
        if (be->ops->save_state && (be->ops->save_state(be, &blob, &len) < 0 || len > UINT32_MAX))
            w->failed = true; /* out of memory: the snapshot reports it */
        snap_put_u32(w, (uint32_t)len);
        if (len)
            snap_put(w, blob, len);
        free(blob);
    }
    virtio_pci_save(n->vdev, w);
}

static const uint8_t *get_blob(struct snap_reader *r, uint32_t len)
{
    if (r->failed || len > r->len - r->pos) {
        r->failed = true;
        return NULL;
    }
    const uint8_t *p = r->data + r->pos;
    r->pos += len;
    return p;
}

static int net_load(void *state, struct snap_reader *r, char *err, size_t errlen)
{
    struct virtio_net *n = state;
    uint32_t used = snap_get_u32(r);
    if (snap_get_u32(r) != n->nr_pairs || used < 1 || used > n->nr_pairs)
        return qk_fail(err, errlen, "virtio-net: the saved queue pairs do not match the device");
    const uint8_t *blobs[VIRTIO_NET_MAX_PAIRS];
    uint32_t lens[VIRTIO_NET_MAX_PAIRS];
    for (unsigned i = 0; i < n->nr_pairs && i < VIRTIO_NET_MAX_PAIRS; i++) {
        lens[i] = snap_get_u32(r);
        blobs[i] = get_blob(r, lens[i]);
    }
    if (r->failed)
        return qk_fail(err, errlen, "virtio-net: its saved state is truncated");
    if (virtio_pci_load(n->vdev, r, err, errlen) < 0)
        return -1;
    use_pairs(n, used);
    for (unsigned i = 0; i < n->nr_pairs; i++) {
        struct net_backend *be = n->pairs[i].be;
        if (lens[i] && !be->ops->load_state)
            return qk_fail(err, errlen,
                           "virtio-net: the saved state is for another kind of backend");
        if (lens[i] && be->ops->load_state(be, blobs[i], lens[i], err, errlen) < 0)
            return -1;
        tx_run(&n->pairs[i]); /* the saved ring may have had the guest's kicks off */
    }
    return 0;
}

/* id=NAME labels the interface (Firecracker's iface_id): a snapshot keeps it with the
 * options, so PUT /snapshot/load can name the interface in network_overrides. */
static const char *const net_option_keys[] = {"user", "tap",    "tap-fd", "hostfwd", "mac",
                                              "mtu",  "queues", "id",     NULL};
static const char *const net_repeatable_keys[] = {"hostfwd", NULL};

DEVICE_MODEL(virtio_net_model) = {
    .name = "virtio-net",
    .level = DEVICE_LEVEL_PCI,
    .default_instance = false,
    .option_keys = net_option_keys,
    .repeatable_keys = net_repeatable_keys,
    .create = net_create,
    .destroy = net_destroy,
    .save = net_save,
    .load = net_load,
    .quiesce = net_quiesce,
    .thaw = net_thaw,
};
