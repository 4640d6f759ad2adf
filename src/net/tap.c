/* A Linux tap device (`--net tap=NAME`, or `tap-fd=N` for an fd opened by whoever started us,
 * as Firecracker and Cloud Hypervisor take it): frames go to and come from the host kernel's
 * network stack.
 *
 * With IFF_VNET_HDR (always when we open the device; when the passed fd has it) every frame
 * carries the virtio-net header, TUNSETVNETHDRSZ makes it our 12 bytes, and offloads pass
 * through untouched: the guest's partial checksums and TSO frames are written as they are
 * (the kernel finishes or segments them where it must), and TUNSETOFFLOAD lets the kernel hand
 * us unchecksummed and GSO frames exactly when the guest accepted them. Without the header
 * (a passed fd without IFF_VNET_HDR), offloads are finished in software (offload.c).
 *
 * Receive: the fd is read on the I/O thread (the machine's event loop), one frame at a time
 * into a bounce buffer, while the guest has receive buffers; when it has none the frame waits
 * here and the fd is no longer watched (the kernel's queue holds or drops what follows) until
 * the guest posts buffers (rx_ready). Transmit: writev straight from guest memory. */
#include "net/net.h"
#include "net/offload.h"
#include "util/log.h"
#include "vm/event_loop.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#define TAP_RX_BATCH 64 /* frames per wake-up, so other fds on the loop get their turn */
/* A GSO frame from the kernel may carry a VLAN tag beyond NET_MAX_FRAME: read it whole and
 * drop it, rather than have the kernel truncate it silently. */
#define TAP_BUF (VNET_HDR_LEN + NET_MAX_FRAME + 256)
#define TAP_ALL_OFFLOADS (TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN | TUN_F_UFO)

struct tap_backend {
    struct net_backend be; /* first: the device holds a pointer to it */
    int fd;
    bool vnet_hdr;
    bool multi_queue;      /* one queue of an IFF_MULTI_QUEUE tap */
    unsigned tun_offloads; /* TUN_F_* the kernel accepted when probed */
    char what[64];         /* "tap 'NAME'" or "tap-fd N", for messages */
    struct event_loop *loop;
    struct net_client client;
    bool watched; /* fd is in the loop */

    pthread_mutex_t watch_lock; /* events, against rx_ready on other threads */
    uint32_t events;            /* what the loop watches fd for */

    uint8_t *rx_buf; /* I/O thread: a frame read (with its header) */
    size_t rx_len;   /* its bytes, 0: none waiting */

    pthread_mutex_t tx_lock; /* tx_buf and scratch (software offloads only) */
    uint8_t *tx_buf, *scratch;
    atomic_bool error_logged;
};

static void count(uint64_t *counter)
{
    __atomic_fetch_add(counter, 1, __ATOMIC_RELAXED);
}

static void log_once(struct tap_backend *tb, const char *doing, int e)
{
    if (!atomic_exchange(&tb->error_logged, true))
        qk_warn("%s: %s failed: %s (the guest's frames are lost)", tb->what, doing, strerror(e));
}

/* --- receive -------------------------------------------------------------------------------- */

/* EPOLLIN: read frames. EPOLLOUT as well (a tap is always writable): call on_readable at
 * once, for a frame that waited here while the fd has nothing new. 0: the guest has no
 * buffers, leave the fd alone. */
static void watch(struct tap_backend *tb, uint32_t events)
{
    pthread_mutex_lock(&tb->watch_lock);
    if (tb->events != events && tb->watched)
        event_loop_modify(tb->loop, tb->fd, events);
    tb->events = events;
    pthread_mutex_unlock(&tb->watch_lock);
}

enum read_result { READ_FRAME, READ_NONE, READ_DEAD };

/* Read the next frame into rx_buf. READ_DEAD: the fd fails for good (the interface was
 * deleted: tun reports EPOLLERR from then on, and reads fail). */
static enum read_result read_frame(struct tap_backend *tb)
{
    static const uint8_t zero_hdr[VNET_HDR_LEN];
    size_t at = tb->vnet_hdr ? 0 : VNET_HDR_LEN;
    for (;;) {
        ssize_t n = read(tb->fd, tb->rx_buf + at, TAP_BUF - at);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return READ_NONE;
        if (n < 0) {
            log_once(tb, "read", errno);
            return READ_DEAD;
        }
        size_t len = at + (size_t)n;
        if (len < VNET_HDR_LEN + NET_ETH_HLEN || len > VNET_HDR_LEN + NET_MAX_FRAME) {
            count(&tb->be.stats.rx_dropped);
            continue;
        }
        if (!tb->vnet_hdr)
            memcpy(tb->rx_buf, zero_hdr, VNET_HDR_LEN);
        tb->rx_len = len;
        return READ_FRAME;
    }
}

/* Stop watching the fd for good: at free, or when it is dead (it would report an error to
 * the loop forever; on the I/O thread removing is final). The guest keeps a link that
 * receives nothing. */
static void unwatch(struct tap_backend *tb)
{
    pthread_mutex_lock(&tb->watch_lock);
    if (tb->watched)
        event_loop_remove(tb->loop, tb->fd);
    tb->watched = false;
    pthread_mutex_unlock(&tb->watch_lock);
}

static enum net_rx_result deliver(struct tap_backend *tb)
{
    enum net_rx_result r = tb->client.receive(tb->client.opaque, tb->rx_buf,
                                              tb->rx_buf + VNET_HDR_LEN, tb->rx_len - VNET_HDR_LEN);
    if (r != NET_RX_FULL)
        tb->rx_len = 0;
    return r;
}

/* The guest has no buffers: stop watching, then look once more, since buffers posted before
 * we stopped may have kicked rx_ready while we were still watching. */
static bool pause_reading(struct tap_backend *tb)
{
    watch(tb, 0);
    if (deliver(tb) == NET_RX_FULL)
        return true;
    watch(tb, EPOLLIN);
    return false;
}

static void on_readable(void *opaque, uint32_t revents)
{
    (void)revents;
    struct tap_backend *tb = opaque;
    for (unsigned i = 0; i < TAP_RX_BATCH; i++) {
        enum read_result rr = tb->rx_len ? READ_FRAME : read_frame(tb);
        if (rr == READ_DEAD) {
            unwatch(tb);
            return;
        }
        if (rr == READ_NONE)
            break;
        if (deliver(tb) == NET_RX_FULL && pause_reading(tb))
            break;
    }
    if (!tb->rx_len)
        watch(tb, EPOLLIN); /* nothing waits here: back to plain reading */
    tb->client.receive_done(tb->client.opaque);
}

static void tap_rx_ready(struct net_backend *be)
{
    watch((struct tap_backend *)be, EPOLLIN | EPOLLOUT);
}

static unsigned tun_offloads_for(uint64_t f)
{
    if (!(f & NET_F(VIRTIO_NET_F_GUEST_CSUM)))
        return 0; /* segmentation offloads need checksum offload (as Linux requires) */
    unsigned t = TUN_F_CSUM;
    t |= (f & NET_F(VIRTIO_NET_F_GUEST_TSO4)) ? TUN_F_TSO4 : 0;
    t |= (f & NET_F(VIRTIO_NET_F_GUEST_TSO6)) ? TUN_F_TSO6 : 0;
    t |= (f & NET_F(VIRTIO_NET_F_GUEST_ECN)) ? TUN_F_TSO_ECN : 0;
    t |= (f & NET_F(VIRTIO_NET_F_GUEST_UFO)) ? TUN_F_UFO : 0;
    return t;
}

static void tap_set_rx_offloads(struct net_backend *be, uint64_t features)
{
    struct tap_backend *tb = (struct tap_backend *)be;
    if (!tb->vnet_hdr)
        return;
    unsigned t = tun_offloads_for(features) & tb->tun_offloads;
    if (ioctl(tb->fd, TUNSETOFFLOAD, t) < 0)
        log_once(tb, "TUNSETOFFLOAD", errno);
}

/* A queue the guest does not use leaves the kernel's flow steering (TUNSETQUEUE), so no flow
 * waits here for receive buffers that never come. */
static void tap_set_enabled(struct net_backend *be, bool enabled)
{
    struct tap_backend *tb = (struct tap_backend *)be;
    if (!tb->multi_queue)
        return;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    ifr.ifr_flags = enabled ? IFF_ATTACH_QUEUE : IFF_DETACH_QUEUE;
    if (ioctl(tb->fd, TUNSETQUEUE, &ifr) < 0 && errno != EINVAL)
        log_once(tb, "TUNSETQUEUE", errno); /* EINVAL: already attached / detached */
}

/* --- transmit ------------------------------------------------------------------------------- */

static enum net_tx_result write_result(struct tap_backend *tb, ssize_t n)
{
    if (n >= 0)
        return NET_TX_OK;
    /* EIO: the interface is down; EINVAL: a header the kernel refused. Both are the frame's
     * end, as on a wire; the first is logged. */
    log_once(tb, "write", errno);
    count(&tb->be.stats.tx_dropped);
    return NET_TX_DROPPED;
}

static void emit_write(void *opaque, const uint8_t *frame, size_t len)
{
    struct tap_backend *tb = opaque;
    ssize_t n;
    do
        n = write(tb->fd, frame, len);
    while (n < 0 && errno == EINTR);
    write_result(tb, n);
}

/* No header on this tap: gather the frame and finish its offloads here. */
static enum net_tx_result send_plain(struct tap_backend *tb, const struct iovec *iov,
                                     unsigned iovcnt, size_t len)
{
    pthread_mutex_lock(&tb->tx_lock);
    size_t got = 0;
    for (unsigned i = 0; i < iovcnt && got < len; i++) {
        size_t n = iov[i].iov_len < len - got ? iov[i].iov_len : len - got;
        memcpy(tb->tx_buf + got, iov[i].iov_base, n);
        got += n;
    }
    struct vnet_hdr h;
    vnet_hdr_parse(tb->tx_buf, &h);
    int rc = net_offload_frame(&h, tb->tx_buf + VNET_HDR_LEN, len - VNET_HDR_LEN, tb->scratch,
                               emit_write, tb);
    pthread_mutex_unlock(&tb->tx_lock);
    if (rc < 0)
        count(&tb->be.stats.tx_dropped);
    return rc < 0 ? NET_TX_DROPPED : NET_TX_OK;
}

static enum net_tx_result tap_send(struct net_backend *be, const struct iovec *iov, unsigned iovcnt,
                                   size_t len)
{
    struct tap_backend *tb = (struct tap_backend *)be;
    if (len < VNET_HDR_LEN + NET_ETH_HLEN || len > VNET_HDR_LEN + NET_MAX_FRAME) {
        count(&tb->be.stats.tx_dropped);
        return NET_TX_DROPPED;
    }
    if (!tb->vnet_hdr)
        return send_plain(tb, iov, iovcnt, len);
    ssize_t n;
    do
        n = writev(tb->fd, iov, (int)iovcnt);
    while (n < 0 && errno == EINTR);
    return write_result(tb, n);
}

/* --- lifecycle ------------------------------------------------------------------------------ */

static int tap_start(struct net_backend *be, const struct net_client *client, char *err,
                     size_t errlen)
{
    struct tap_backend *tb = (struct tap_backend *)be;
    tb->client = *client;
    if (!tb->loop)
        return qk_fail(err, errlen, "%s needs the machine's event loop", tb->what);
    /* Not read until the guest has receive buffers (activation calls rx_ready). */
    if (event_loop_add(tb->loop, tb->fd, 0, on_readable, tb, err, errlen) < 0)
        return -1;
    tb->watched = true;
    return 0;
}

static void tap_free(struct net_backend *be)
{
    struct tap_backend *tb = (struct tap_backend *)be;
    if (!tb)
        return;
    unwatch(tb);
    if (tb->fd >= 0)
        close(tb->fd);
    pthread_mutex_destroy(&tb->watch_lock);
    pthread_mutex_destroy(&tb->tx_lock);
    free(tb->rx_buf);
    free(tb->tx_buf);
    free(tb->scratch);
    free(tb);
}

static const struct net_backend_ops tap_ops = {
    .start = tap_start,
    .send = tap_send,
    .rx_ready = tap_rx_ready,
    .set_rx_offloads = tap_set_rx_offloads,
    .set_enabled = tap_set_enabled,
    .free = tap_free,
};

/* The largest set of TUN_F_* offloads the kernel takes (QEMU probes the same way); the tap
 * is then left with none until a guest accepts some. */
static unsigned probe_offloads(int fd)
{
    static const unsigned tries[] = {TAP_ALL_OFFLOADS, TAP_ALL_OFFLOADS & ~TUN_F_UFO, TUN_F_CSUM};
    unsigned ok = 0;
    for (unsigned i = 0; i < sizeof(tries) / sizeof(tries[0]) && !ok; i++)
        if (ioctl(fd, TUNSETOFFLOAD, tries[i]) == 0)
            ok = tries[i];
    if (ioctl(fd, TUNSETOFFLOAD, 0) < 0) {
        /* a tap that cannot turn offloads off never had any on */
    }
    return ok;
}

static void set_offload_features(struct tap_backend *tb)
{
    uint64_t sw = NET_F(VIRTIO_NET_F_CSUM) | NET_F(VIRTIO_NET_F_HOST_TSO4) |
                  NET_F(VIRTIO_NET_F_HOST_TSO6) | NET_F(VIRTIO_NET_F_HOST_ECN);
    if (!tb->vnet_hdr) {
        tb->be.tx_offloads = sw; /* finished in software */
        return;
    }
    unsigned t = tb->tun_offloads;
    tb->be.tx_offloads = sw | ((t & TUN_F_UFO) ? NET_F(VIRTIO_NET_F_HOST_UFO) : 0);
    if (!(t & TUN_F_CSUM))
        return;
    tb->be.rx_offloads = NET_F(VIRTIO_NET_F_GUEST_CSUM);
    tb->be.rx_offloads |= (t & TUN_F_TSO4) ? NET_F(VIRTIO_NET_F_GUEST_TSO4) : 0;
    tb->be.rx_offloads |= (t & TUN_F_TSO6) ? NET_F(VIRTIO_NET_F_GUEST_TSO6) : 0;
    tb->be.rx_offloads |= (t & TUN_F_TSO_ECN) ? NET_F(VIRTIO_NET_F_GUEST_ECN) : 0;
    tb->be.rx_offloads |= (t & TUN_F_UFO) ? NET_F(VIRTIO_NET_F_GUEST_UFO) : 0;
}

/* Common set-up once fd is a tap: header size, offloads, buffers. */
static int tap_setup(struct tap_backend *tb, char *err, size_t errlen)
{
    int hdr = VNET_HDR_LEN;
    if (tb->vnet_hdr && ioctl(tb->fd, TUNSETVNETHDRSZ, &hdr) < 0)
        return qk_fail(err, errlen, "%s: TUNSETVNETHDRSZ: %s", tb->what, strerror(errno));
    if (tb->vnet_hdr)
        tb->tun_offloads = probe_offloads(tb->fd);
    set_offload_features(tb);
    tb->rx_buf = malloc(TAP_BUF);
    tb->tx_buf = malloc(VNET_HDR_LEN + NET_MAX_FRAME);
    tb->scratch = malloc(NET_MAX_FRAME);
    if (!tb->rx_buf || !tb->tx_buf || !tb->scratch)
        return qk_fail(err, errlen, "out of memory");
    return 0;
}

static struct tap_backend *tap_alloc(struct event_loop *loop, char *err, size_t errlen)
{
    struct tap_backend *tb = calloc(1, sizeof(*tb));
    if (!tb) {
        qk_fail(err, errlen, "out of memory");
        return NULL;
    }
    tb->fd = -1;
    tb->be.ops = &tap_ops;
    tb->loop = loop;
    pthread_mutex_init(&tb->watch_lock, NULL);
    pthread_mutex_init(&tb->tx_lock, NULL);
    return tb;
}

static struct net_backend *finish(struct tap_backend *tb, int rc)
{
    if (rc == 0)
        return &tb->be;
    tap_free(&tb->be);
    return NULL;
}

struct net_backend *net_tap_open(const char *name, bool multi_queue, struct event_loop *loop,
                                 char *err, size_t errlen)
{
    if (!*name || strlen(name) >= IFNAMSIZ || strchr(name, '/')) {
        qk_fail(err, errlen, "tap '%s': an interface name is 1-%d bytes without '/'", name,
                IFNAMSIZ - 1);
        return NULL;
    }
    struct tap_backend *tb = tap_alloc(loop, err, errlen);
    if (!tb)
        return NULL;
    snprintf(tb->what, sizeof(tb->what), "tap '%s'", name);
    tb->fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (tb->fd < 0)
        return finish(tb, qk_fail(err, errlen, "%s: /dev/net/tun: %s", tb->what, strerror(errno)));
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    memcpy(ifr.ifr_name, name, strlen(name));
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | (multi_queue ? IFF_MULTI_QUEUE : 0);
    if (ioctl(tb->fd, TUNSETIFF, &ifr) < 0)
        return finish(tb, qk_fail(err, errlen, "%s: %s%s", tb->what, strerror(errno),
                                  multi_queue && errno == EINVAL
                                      ? " (queues=N needs a tap made with multi_queue)"
                                      : ""));
    tb->vnet_hdr = true;
    tb->multi_queue = multi_queue;
    return finish(tb, tap_setup(tb, err, errlen));
}

struct net_backend *net_tap_from_fd(int fd, struct event_loop *loop, char *err, size_t errlen)
{
    struct tap_backend *tb = tap_alloc(loop, err, errlen);
    if (!tb)
        return NULL;
    snprintf(tb->what, sizeof(tb->what), "tap-fd %d", fd);
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0)
        return finish(tb, qk_fail(err, errlen, "%s: %s", tb->what, strerror(errno)));
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    if (ioctl(fd, TUNGETIFF, &ifr) < 0)
        return finish(
            tb, qk_fail(err, errlen, "%s is not a tap device (%s)", tb->what, strerror(errno)));
    if (!(ifr.ifr_flags & IFF_TAP))
        return finish(tb, qk_fail(err, errlen, "%s is a tun (IP) device, not a tap", tb->what));
    if (!(ifr.ifr_flags & IFF_NO_PI))
        return finish(tb, qk_fail(err, errlen, "%s was opened without IFF_NO_PI", tb->what));
    if (fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
        return finish(tb, qk_fail(err, errlen, "%s: %s", tb->what, strerror(errno)));
    tb->fd = fd; /* ours from here on: closed with the device */
    tb->vnet_hdr = ifr.ifr_flags & IFF_VNET_HDR;
    tb->multi_queue = ifr.ifr_flags & IFF_MULTI_QUEUE;
    return finish(tb, tap_setup(tb, err, errlen));
}
