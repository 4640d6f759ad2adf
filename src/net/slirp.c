/* User-mode networking through libslirp (`--net user`): the guest sits on 10.0.2.0/24 as on
 * QEMU (DHCP hands out 10.0.2.15, the gateway 10.0.2.2 is also the host's loopback, DNS
 * 10.0.2.3 forwards to the host's resolver; IPv6 fec0::/64), and `hostfwd=` rules listen on
 * host ports and connect to the guest. No privileges needed.
 *
 * libslirp is not thread-safe and wants a poll loop, so one thread owns the Slirp instance and
 * runs it: poll(slirp's sockets + our eventfd), slirp_pollfds_poll, timers. Other threads
 * talk to it through
 * - a bounded queue of guest frames (send(): the device's TX thread copies the frame in and
 *   wakes the thread; a full queue answers NET_TX_BUSY and tx_ready() follows once the thread
 *   has emptied it), finished in software (offload.c) and handed to slirp_input;
 * - a flag and the eventfd for "the guest posted receive buffers" (rx_ready()).
 * Frames slirp emits go straight to the device's receive() on this thread; when the guest has
 * no buffers they wait in a bounded backlog (dropped and counted beyond it: TCP retransmits, as
 * with a real NIC whose ring is full). */
#include "net/frame_queue.h"
#include "net/net.h"
#include "net/offload.h"
#include "util/log.h"
#include "vm/sandbox.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <slirp/libslirp.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define SLIRP_TXQ_BYTES (2u << 20)     /* guest frames waiting for the slirp thread */
#define SLIRP_BACKLOG_BYTES (2u << 20) /* frames waiting for the guest's receive buffers */
#define SLIRP_TX_BATCH 256             /* guest frames per loop turn, so sockets get polled */
#define SLIRP_MAX_POLLFDS 4096         /* sockets beyond this wait for a later turn */
#define SLIRP_NET 0x0a000200u          /* 10.0.2.0/24, host byte order */
#define SLIRP_MASK 0xffffff00u
#define SLIRP_HOST 0x0a000202u
#define SLIRP_DNS 0x0a000203u
#define SLIRP_DHCP_START 0x0a00020fu

struct slirp_timer {
    struct slirp_timer *next;
    SlirpTimerCb cb; /* timer_new's callback, or NULL: slirp_handle_timer(id) */
    SlirpTimerId id;
    void *cb_opaque;
    int64_t expire_ms; /* -1: not armed */
};

struct slirp_backend {
    struct net_backend be; /* first: the device holds a pointer to it */
    Slirp *slirp;
    struct net_client client;
    pthread_t thread;
    bool started;
    int wake_fd;
    atomic_bool stop, rx_kick;

    /* Snapshots: another thread asks (park) and the slirp thread waits, touching nothing,
     * until it is told to go on (libslirp is not thread-safe). */
    pthread_mutex_t park_lock;
    pthread_cond_t park_cond;
    atomic_bool park;
    bool parked; /* under park_lock */

    pthread_mutex_t tx_lock; /* txq and tx_wanted: the device's thread vs ours */
    struct frame_queue txq;
    bool tx_wanted; /* send() said BUSY: call tx_ready once the queue is empty */

    /* Everything below belongs to the slirp thread (and to creation, before it starts). */
    struct frame_queue backlog;
    uint8_t *scratch; /* one segment being built (offload.c) */
    struct pollfd *pfds;
    unsigned nr_pfds, cap_pfds;
    struct slirp_timer *timers;
    bool error_logged;
};

static void count(uint64_t *counter)
{
    __atomic_fetch_add(counter, 1, __ATOMIC_RELAXED);
}

static void wake(struct slirp_backend *sb)
{
    uint64_t one = 1;
    if (write(sb->wake_fd, &one, sizeof(one)) < 0) {
        /* the counter is saturated: the thread is woken anyway */
    }
}

/* --- libslirp's callbacks (all on the slirp thread, or during creation) ------------------ */

/* Frames from slirp are complete (it computes every checksum itself), so the guest may skip
 * verifying them: DATA_VALID (the device clears it unless the guest took GUEST_CSUM). */
static const uint8_t valid_hdr[VNET_HDR_LEN] = {VNET_HDR_F_DATA_VALID};

static ssize_t on_send_packet(const void *buf, size_t len, void *opaque)
{
    struct slirp_backend *sb = opaque;
    if (!sb->client.receive || len > NET_MAX_FRAME) {
        count(&sb->be.stats.rx_dropped);
        return (ssize_t)len;
    }
    /* Behind a backlog, a frame waits its turn (order matters to TCP's fast path). */
    enum net_rx_result r = NET_RX_FULL;
    if (fq_empty(&sb->backlog))
        r = sb->client.receive(sb->client.opaque, valid_hdr, buf, len);
    if (r == NET_RX_FULL) {
        struct iovec iov = {(void *)buf, len};
        if (!fq_push(&sb->backlog, &iov, 1, len))
            count(&sb->be.stats.rx_dropped);
    }
    return (ssize_t)len;
}

static void on_guest_error(const char *msg, void *opaque)
{
    struct slirp_backend *sb = opaque;
    if (!sb->error_logged)
        qk_warn("user network: the guest sent something slirp refused: %s", msg);
    sb->error_logged = true;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t on_clock_get_ns(void *opaque)
{
    (void)opaque;
    return now_ns();
}

static struct slirp_timer *add_timer(struct slirp_backend *sb, SlirpTimerCb cb, SlirpTimerId id,
                                     void *cb_opaque)
{
    struct slirp_timer *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL; /* slirp copes with a missing timer (its RA timer, IPv6 only) */
    *t = (struct slirp_timer){sb->timers, cb, id, cb_opaque, -1};
    sb->timers = t;
    return t;
}

static void *on_timer_new(SlirpTimerCb cb, void *cb_opaque, void *opaque)
{
    return add_timer(opaque, cb, SLIRP_TIMER_RA, cb_opaque);
}

static void *on_timer_new_opaque(SlirpTimerId id, void *cb_opaque, void *opaque)
{
    return add_timer(opaque, NULL, id, cb_opaque);
}

static void on_timer_free(void *timer, void *opaque)
{
    struct slirp_backend *sb = opaque;
    for (struct slirp_timer **p = &sb->timers; *p; p = &(*p)->next)
        if (*p == timer) {
            *p = (*p)->next;
            free(timer);
            return;
        }
}

static void on_timer_mod(void *timer, int64_t expire_ms, void *opaque)
{
    (void)opaque;
    if (timer)
        ((struct slirp_timer *)timer)->expire_ms = expire_ms;
}

static void on_register_poll_fd(int fd, void *opaque)
{
    (void)fd, (void)opaque; /* every turn asks slirp for its fds again */
}

static void on_notify(void *opaque)
{
    wake(opaque);
}

static const SlirpCb slirp_callbacks = {
    .send_packet = on_send_packet,
    .guest_error = on_guest_error,
    .clock_get_ns = on_clock_get_ns,
    .timer_new = on_timer_new,
    .timer_free = on_timer_free,
    .timer_mod = on_timer_mod,
    .register_poll_fd = on_register_poll_fd,
    .unregister_poll_fd = on_register_poll_fd,
    .notify = on_notify,
    .timer_new_opaque = on_timer_new_opaque,
};

/* --- the poll loop ----------------------------------------------------------------------- */

static int on_add_poll(int fd, int events, void *opaque)
{
    struct slirp_backend *sb = opaque;
    if (sb->nr_pfds == sb->cap_pfds) {
        unsigned cap = sb->cap_pfds ? 2 * sb->cap_pfds : 64;
        struct pollfd *p = cap <= SLIRP_MAX_POLLFDS ? realloc(sb->pfds, cap * sizeof(*p)) : NULL;
        if (!p)
            return -1; /* slirp skips a socket with index -1 this turn */
        sb->pfds = p;
        sb->cap_pfds = cap;
    }
    short ev = 0;
    ev |= (events & SLIRP_POLL_IN) ? POLLIN : 0;
    ev |= (events & SLIRP_POLL_OUT) ? POLLOUT : 0;
    ev |= (events & SLIRP_POLL_PRI) ? POLLPRI : 0;
    sb->pfds[sb->nr_pfds] = (struct pollfd){.fd = fd, .events = ev};
    return (int)sb->nr_pfds++;
}

static int on_get_revents(int idx, void *opaque)
{
    struct slirp_backend *sb = opaque;
    if (idx < 0 || (unsigned)idx >= sb->nr_pfds)
        return 0;
    short re = sb->pfds[idx].revents;
    int r = 0;
    r |= (re & POLLIN) ? SLIRP_POLL_IN : 0;
    r |= (re & POLLOUT) ? SLIRP_POLL_OUT : 0;
    r |= (re & POLLPRI) ? SLIRP_POLL_PRI : 0;
    r |= (re & POLLERR) ? SLIRP_POLL_ERR : 0;
    r |= (re & POLLHUP) ? SLIRP_POLL_HUP : 0;
    return r;
}

static void emit_input(void *opaque, const uint8_t *frame, size_t len)
{
    struct slirp_backend *sb = opaque;
    slirp_input(sb->slirp, frame, (int)len);
}

/* One guest frame (header + bytes): finish its offloads and give it to slirp. */
static void input_frame(struct slirp_backend *sb, uint8_t *rec, size_t len)
{
    if (len < VNET_HDR_LEN + NET_ETH_HLEN) {
        count(&sb->be.stats.tx_dropped);
        return;
    }
    struct vnet_hdr h;
    vnet_hdr_parse(rec, &h);
    if (net_offload_frame(&h, rec + VNET_HDR_LEN, len - VNET_HDR_LEN, sb->scratch, emit_input, sb) <
        0)
        count(&sb->be.stats.tx_dropped);
}

/* Up to SLIRP_TX_BATCH queued guest frames; true when more are waiting. The frame stays in
 * the queue (the device cannot overwrite it) until slirp is done with it. */
static bool drain_tx(struct slirp_backend *sb)
{
    for (unsigned i = 0; i < SLIRP_TX_BATCH; i++) {
        size_t len;
        pthread_mutex_lock(&sb->tx_lock);
        uint8_t *rec = fq_peek(&sb->txq, &len);
        pthread_mutex_unlock(&sb->tx_lock);
        if (!rec)
            break;
        input_frame(sb, rec, len);
        pthread_mutex_lock(&sb->tx_lock);
        fq_pop(&sb->txq);
        pthread_mutex_unlock(&sb->tx_lock);
    }
    pthread_mutex_lock(&sb->tx_lock);
    bool more = !fq_empty(&sb->txq);
    bool resume = sb->tx_wanted && !more;
    if (resume)
        sb->tx_wanted = false;
    pthread_mutex_unlock(&sb->tx_lock);
    if (resume && sb->client.tx_ready)
        sb->client.tx_ready(sb->client.opaque); /* may queue more: the next turn sees them */
    return more;
}

/* The guest posted receive buffers: hand over what waited, in order, while they last. */
static void flush_backlog(struct slirp_backend *sb)
{
    size_t len;
    uint8_t *frame;
    while ((frame = fq_peek(&sb->backlog, &len)) != NULL) {
        if (sb->client.receive(sb->client.opaque, valid_hdr, frame, len) == NET_RX_FULL)
            break;
        fq_pop(&sb->backlog);
    }
}

static void run_timers(struct slirp_backend *sb, int64_t now_ms)
{
    /* A callback may free or re-arm timers: start over after each one that fires. */
    for (bool fired = true; fired;) {
        fired = false;
        for (struct slirp_timer *t = sb->timers; t; t = t->next) {
            if (t->expire_ms < 0 || t->expire_ms > now_ms)
                continue;
            t->expire_ms = -1;
            if (t->cb)
                t->cb(t->cb_opaque);
            else
                slirp_handle_timer(sb->slirp, t->id, t->cb_opaque);
            fired = true;
            break;
        }
    }
}

/* Milliseconds until the next timer, capped at slirp's own timeout. */
static int poll_timeout(struct slirp_backend *sb, uint32_t slirp_ms, int64_t now_ms)
{
    int64_t ms = slirp_ms == UINT32_MAX ? 1000 : slirp_ms;
    for (struct slirp_timer *t = sb->timers; t; t = t->next)
        if (t->expire_ms >= 0 && t->expire_ms - now_ms < ms)
            ms = t->expire_ms - now_ms;
    return ms < 0 ? 0 : (int)ms;
}

static void loop_turn(struct slirp_backend *sb, bool busy)
{
    uint32_t timeout = UINT32_MAX;
    sb->nr_pfds = 0;
    on_add_poll(sb->wake_fd, SLIRP_POLL_IN, sb); /* index 0: the cap is far above 1 */
    slirp_pollfds_fill(sb->slirp, &timeout, on_add_poll, sb);
    int ms = busy ? 0 : poll_timeout(sb, timeout, now_ns() / 1000000);
    int rc = poll(sb->pfds, sb->nr_pfds, ms);
    slirp_pollfds_poll(sb->slirp, rc < 0, on_get_revents, sb);
    if (rc > 0 && (sb->pfds[0].revents & POLLIN)) {
        uint64_t n;
        if (read(sb->wake_fd, &n, sizeof(n)) < 0) {
            /* already drained */
        }
    }
}

static void park_here(struct slirp_backend *sb)
{
    pthread_mutex_lock(&sb->park_lock);
    sb->parked = true;
    pthread_cond_broadcast(&sb->park_cond);
    while (atomic_load(&sb->park))
        pthread_cond_wait(&sb->park_cond, &sb->park_lock);
    sb->parked = false;
    pthread_mutex_unlock(&sb->park_lock);
}

static void *slirp_thread(void *opaque)
{
    struct slirp_backend *sb = opaque;
    bool busy = false;
    pthread_setname_np(pthread_self(), "net-slirp");
    sandbox_enter_or_die(SANDBOX_NET); /* before the first guest frame */
    while (!atomic_load(&sb->stop)) {
        if (atomic_load(&sb->park))
            park_here(sb);
        loop_turn(sb, busy);
        if (atomic_exchange(&sb->rx_kick, false))
            flush_backlog(sb);
        busy = drain_tx(sb);
        run_timers(sb, now_ns() / 1000000);
        if (sb->client.receive_done)
            sb->client.receive_done(sb->client.opaque);
    }
    return NULL;
}

/* --- the backend interface ------------------------------------------------------------------ */

static enum net_tx_result slirp_send(struct net_backend *be, const struct iovec *iov,
                                     unsigned iovcnt, size_t len)
{
    struct slirp_backend *sb = (struct slirp_backend *)be;
    pthread_mutex_lock(&sb->tx_lock);
    bool ok = fq_push(&sb->txq, iov, iovcnt, len);
    /* The thread drains until the queue is empty: only the first frame needs to wake it. */
    bool first = ok && sb->txq.count == 1;
    if (!ok)
        sb->tx_wanted = true;
    pthread_mutex_unlock(&sb->tx_lock);
    if (first)
        wake(sb);
    return ok ? NET_TX_OK : NET_TX_BUSY;
}

static void slirp_rx_ready(struct net_backend *be)
{
    struct slirp_backend *sb = (struct slirp_backend *)be;
    atomic_store(&sb->rx_kick, true);
    wake(sb);
}

static void slirp_set_rx_offloads(struct net_backend *be, uint64_t features)
{
    (void)be, (void)features; /* slirp builds plain frames whatever the guest takes */
}

/* Hold the slirp thread between loop turns (nothing to wait for before it started). */
static void park_thread(struct slirp_backend *sb)
{
    if (!sb->started)
        return;
    pthread_mutex_lock(&sb->park_lock);
    atomic_store(&sb->park, true);
    wake(sb);
    while (!sb->parked)
        pthread_cond_wait(&sb->park_cond, &sb->park_lock);
    pthread_mutex_unlock(&sb->park_lock);
}

static void unpark_thread(struct slirp_backend *sb)
{
    if (!sb->started)
        return;
    pthread_mutex_lock(&sb->park_lock);
    atomic_store(&sb->park, false);
    pthread_cond_broadcast(&sb->park_cond);
    pthread_mutex_unlock(&sb->park_lock);
}

struct blob {
    uint8_t *buf;
    size_t len, cap, pos;
    bool failed;
};

static ssize_t blob_write(const void *data, size_t len, void *opaque)
{
    struct blob *b = opaque;
    if (b->failed)
        return -1;
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + len)
            cap *= 2;
        uint8_t *p = realloc(b->buf, cap);
        if (!p) {
            b->failed = true;
            return -1;
        }
        b->buf = p;
        b->cap = cap;
    }
    memcpy(b->buf + b->len, data, len);
    b->len += len;
    return (ssize_t)len;
}

static ssize_t blob_read(void *data, size_t len, void *opaque)
{
    struct blob *b = opaque;
    size_t n = b->len - b->pos < len ? b->len - b->pos : len;
    memcpy(data, b->buf + b->pos, n);
    b->pos += n;
    return (ssize_t)n;
}

/* libslirp saves its DHCP leases and IP id (and guestfwd sockets, which quokka has none of),
 * preceded here by its state version. Its TCP/UDP sockets to the host are not saved: a
 * connection the guest had open through slirp is reset after a restore, as on QEMU. */
static int slirp_save_state(struct net_backend *be, uint8_t **buf, size_t *len)
{
    struct slirp_backend *sb = (struct slirp_backend *)be;
    struct blob b = {0};
    uint32_t version = (uint32_t)slirp_state_version();
    blob_write(&version, sizeof(version), &b);
    park_thread(sb);
    slirp_state_save(sb->slirp, blob_write, &b);
    unpark_thread(sb);
    if (b.failed) {
        free(b.buf);
        return -1;
    }
    *buf = b.buf;
    *len = b.len;
    return 0;
}

static int slirp_load_state(struct net_backend *be, const uint8_t *buf, size_t len, char *err,
                            size_t errlen)
{
    struct slirp_backend *sb = (struct slirp_backend *)be;
    uint32_t version;
    if (len < sizeof(version))
        return qk_fail(err, errlen, "user network: its saved state is truncated");
    memcpy(&version, buf, sizeof(version));
    if (version == 0 || version > (uint32_t)slirp_state_version())
        return qk_fail(err, errlen, "user network: libslirp state version %u is not %d or older",
                       version, slirp_state_version());
    struct blob b = {.buf = (uint8_t *)buf, .len = len, .pos = sizeof(version)};
    park_thread(sb);
    int rc = slirp_state_load(sb->slirp, (int)version, blob_read, &b);
    unpark_thread(sb);
    if (rc < 0 || b.pos != b.len)
        return qk_fail(err, errlen, "user network: libslirp refused its saved state");
    return 0;
}

static int slirp_start(struct net_backend *be, const struct net_client *client, char *err,
                       size_t errlen)
{
    struct slirp_backend *sb = (struct slirp_backend *)be;
    sb->client = *client;
    /* The thread takes no signals: the machine's I/O thread handles them. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = pthread_create(&sb->thread, NULL, slirp_thread, sb);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0)
        return qk_fail(err, errlen, "user network: cannot start its thread: %s", strerror(rc));
    sb->started = true;
    return 0;
}

static void slirp_free(struct net_backend *be)
{
    struct slirp_backend *sb = (struct slirp_backend *)be;
    if (!sb)
        return;
    if (sb->started) {
        atomic_store(&sb->stop, true);
        wake(sb);
        pthread_join(sb->thread, NULL);
    }
    if (sb->slirp)
        slirp_cleanup(sb->slirp); /* frees its timers through on_timer_free */
    while (sb->timers)
        on_timer_free(sb->timers, sb);
    if (sb->wake_fd >= 0)
        close(sb->wake_fd);
    fq_destroy(&sb->txq);
    fq_destroy(&sb->backlog);
    pthread_mutex_destroy(&sb->tx_lock);
    pthread_mutex_destroy(&sb->park_lock);
    pthread_cond_destroy(&sb->park_cond);
    free(sb->scratch);
    free(sb->pfds);
    free(sb);
}

static const struct net_backend_ops slirp_ops = {
    .start = slirp_start,
    .send = slirp_send,
    .rx_ready = slirp_rx_ready,
    .set_rx_offloads = slirp_set_rx_offloads,
    .save_state = slirp_save_state,
    .load_state = slirp_load_state,
    .free = slirp_free,
};

/* --- creation ------------------------------------------------------------------------------- */

static struct in_addr v4(uint32_t host_order)
{
    return (struct in_addr){htonl(host_order)};
}

static struct in6_addr v6(const char *text)
{
    struct in6_addr a;
    inet_pton(AF_INET6, text, &a);
    return a;
}

static int add_hostfwd(struct slirp_backend *sb, const struct net_hostfwd *f, char *err,
                       size_t errlen)
{
    uint32_t guest = ntohl(f->guest_addr);
    if (guest && ((guest & SLIRP_MASK) != SLIRP_NET || guest == SLIRP_HOST || guest == SLIRP_DNS))
        return qk_fail(err, errlen,
                       "hostfwd: guest address %s is not a guest's address in 10.0.2.0/24",
                       inet_ntoa((struct in_addr){f->guest_addr}));
    errno = 0;
    if (slirp_add_hostfwd(sb->slirp, f->udp, (struct in_addr){f->host_addr}, f->host_port,
                          (struct in_addr){f->guest_addr}, f->guest_port) == 0)
        return 0;
    if (errno == EADDRINUSE)
        return qk_fail(err, errlen, "host port %u is in use", f->host_port);
    return qk_fail(err, errlen, "hostfwd: cannot listen on %s:%u (%s): %s",
                   inet_ntoa((struct in_addr){f->host_addr}), f->host_port, f->udp ? "udp" : "tcp",
                   errno ? strerror(errno) : "refused by slirp");
}

static int setup(struct slirp_backend *sb, uint16_t mtu, char *err, size_t errlen)
{
    pthread_mutex_init(&sb->tx_lock, NULL);
    sb->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (sb->wake_fd < 0)
        return qk_fail(err, errlen, "user network: eventfd: %s", strerror(errno));
    sb->scratch = malloc(NET_MAX_FRAME);
    if (!sb->scratch || fq_init(&sb->txq, SLIRP_TXQ_BYTES) < 0 ||
        fq_init(&sb->backlog, SLIRP_BACKLOG_BYTES) < 0)
        return qk_fail(err, errlen, "out of memory");
    SlirpConfig cfg = {
        .version = 4,
        .in_enabled = true,
        .vnetwork = v4(SLIRP_NET),
        .vnetmask = v4(SLIRP_MASK),
        .vhost = v4(SLIRP_HOST),
        .in6_enabled = true,
        .vprefix_addr6 = v6("fec0::"),
        .vprefix_len = 64,
        .vhost6 = v6("fec0::2"),
        .vdhcp_start = v4(SLIRP_DHCP_START),
        .vnameserver = v4(SLIRP_DNS),
        .vnameserver6 = v6("fec0::3"),
        .if_mtu = mtu,
        .if_mru = mtu,
        .disable_host_loopback = false, /* 10.0.2.2 reaches the host's 127.0.0.1 */
    };
    sb->slirp = slirp_new(&cfg, &slirp_callbacks, sb);
    if (!sb->slirp)
        return qk_fail(err, errlen, "user network: libslirp refused its configuration (mtu %u)",
                       mtu);
    return 0;
}

struct net_backend *net_slirp_new(const struct net_hostfwd *fwds, unsigned nr_fwds, uint16_t mtu,
                                  char *err, size_t errlen)
{
    struct slirp_backend *sb = calloc(1, sizeof(*sb));
    if (!sb) {
        qk_fail(err, errlen, "out of memory");
        return NULL;
    }
    sb->wake_fd = -1;
    sb->be.ops = &slirp_ops;
    pthread_mutex_init(&sb->park_lock, NULL);
    pthread_cond_init(&sb->park_cond, NULL);
    /* Checksums and TCP segmentation are finished in software here (offload.c); slirp's own
     * frames are complete, which the guest hears as DATA_VALID. */
    sb->be.tx_offloads = NET_F(VIRTIO_NET_F_CSUM) | NET_F(VIRTIO_NET_F_HOST_TSO4) |
                         NET_F(VIRTIO_NET_F_HOST_TSO6) | NET_F(VIRTIO_NET_F_HOST_ECN);
    sb->be.rx_offloads = NET_F(VIRTIO_NET_F_GUEST_CSUM);
    int rc = setup(sb, mtu, err, errlen);
    for (unsigned i = 0; rc == 0 && i < nr_fwds; i++)
        rc = add_hostfwd(sb, &fwds[i], err, errlen);
    if (rc < 0) {
        slirp_free(&sb->be);
        return NULL;
    }
    return &sb->be;
}
