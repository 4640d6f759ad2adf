/* The host side of virtio-vsock: Firecracker's hybrid Unix-socket backend (see vsock_mux.h).
 *
 * Connections live in a fixed table: a slot's address is what the event loop hands back to
 * its socket's callback, and it stays valid for the life of the mux, so an event delivered
 * just after the device reset freed the slot (from a vCPU thread) finds a free or a reused
 * slot, never freed memory. Events are therefore only hints: every action re-checks the
 * socket with a non-blocking call (a stale hang-up is confirmed with poll()).
 *
 * Per connection:
 * - guest to host: RW payloads are written straight to the host socket; what the socket does
 *   not take waits in a ring of VSOCK_CONN_BUF bytes, flushed on EPOLLOUT. fwd_cnt counts what
 *   the socket took. A guest that respects our credit never has more than buf_alloc in flight,
 *   so the ring cannot overflow; one that sends more is reset.
 * - host to guest: nothing is buffered here. While the socket is readable, the guest has
 *   credit and receive buffers, we read straight into those buffers (vsock_mux_recv). EPOLLIN
 *   is off while we know the socket is readable, so a guest that posts no buffers does not
 *   make the I/O thread spin; it comes back on when a read comes up short.
 * - half-close goes both ways (Firecracker only passes full closes): the host's EOF becomes
 *   SHUTDOWN(SEND) to the guest; the guest's SHUTDOWN(SEND) becomes shutdown(SHUT_WR) on the
 *   host socket once the ring is flushed. When both directions are done the guest hears
 *   SHUTDOWN(RCV|SEND) and answers RST; if it does not within 2 s, we reset.
 * - packets owed to the guest (RESPONSE, REQUEST, SHUTDOWN, credit, RST) are bits in `owe`;
 *   a connection that owes something, or has host data to deliver, sits once in the receive
 *   queue (a list through the table), served round-robin. */
#include "net/vsock_mux.h"

#include "hw/device.h"
#include "util/log.h"
#include "vm/event_loop.h"

#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define HASH_SIZE 2048 /* twice the table: short chains */
#define NO_CONN (-1)
#define CREDIT_UPDATE_LOW (VSOCK_CONN_BUF / 2) /* tell the guest when it thinks less is free */
#define ACCEPT_BATCH 16                        /* host connections taken per listener event */
#define LISTEN_BACKLOG 128                     /* as Rust's UnixListener (Firecracker) */
#define ACCEPT_RETRY_NS (100ULL * 1000000ULL)  /* out of fds: try accepting again after this */
#define BOTH_SHUT (VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND)
#define SUN_PATH_MAX (sizeof(((struct sockaddr_un *)0)->sun_path) - 1)
#define PORT_SUFFIX_MAX 11 /* "_4294967295" */

enum conn_state {
    CONN_FREE,
    CONN_HANDSHAKE,   /* host socket accepted; its CONNECT line is not complete yet */
    CONN_LOCAL_INIT,  /* host-initiated: REQUEST owed or sent, waiting for RESPONSE */
    CONN_PEER_INIT,   /* guest-initiated: host socket connected, RESPONSE owed */
    CONN_ESTABLISHED, /* data flows */
    CONN_DEAD,        /* host socket closed; an RST owed, then the slot is free */
};

/* Packets a connection owes the guest (vsock_mux_recv serves them in this order). */
#define OWE_RST 1u
#define OWE_RESPONSE 2u
#define OWE_REQUEST 4u
#define OWE_SHUTDOWN 8u
#define OWE_CREDIT_REQUEST 16u
#define OWE_CREDIT_UPDATE 32u

struct vsock_conn {
    struct vsock_mux *mux;
    int fd;
    enum conn_state state;
    uint32_t local_port, peer_port; /* host end, guest end */
    bool hashed, in_rxq;
    int hnext;          /* hash chain, or the free list */
    int rxprev, rxnext; /* receive queue */
    uint32_t owe;
    bool watched;    /* fd is in the event loop */
    uint32_t events; /* its interest while watched */
    bool hup;        /* the host closed both directions: out of the loop for good */
    bool rd_ready;   /* the host socket may have data or EOF for us */
    bool host_eof;   /* the host sends no more */
    bool wr_shut;    /* we shut down writing to the host (the guest sends no more) */
    bool credit_requested;
    uint32_t guest_shut; /* VSOCK_SHUTDOWN_* the guest sent */
    uint32_t shut_sent;  /* VSOCK_SHUTDOWN_* we sent */
    /* Host to guest: what the guest can take (its buf_alloc and fwd_cnt), what we sent. */
    uint32_t peer_buf_alloc, peer_fwd_cnt, rx_cnt;
    /* Guest to host: bytes the host socket took, and the value the guest last heard. */
    uint32_t fwd_cnt, last_fwd_sent;
    uint8_t *ring; /* VSOCK_CONN_BUF bytes once needed */
    uint32_t ring_start, ring_len;
    uint64_t deadline; /* clock_ns when we give up on the guest (0: none) */
    char line[VSOCK_CONNECT_LINE_MAX];
    uint32_t line_len;
};

struct rst_item {
    uint32_t src_port, dst_port; /* as the RST goes to the guest */
};

struct vsock_mux {
    pthread_mutex_t lock;
    const struct device_host *host;
    uint64_t guest_cid;
    char *path;
    int listen_fd;
    dev_t sock_dev;
    ino_t sock_ino;
    bool active;            /* between start and stop */
    bool listening;         /* listen_fd is in the event loop */
    uint64_t accept_resume; /* paused accepting (out of fds) until then; 0: not paused */
    void (*rx_ready)(void *opaque);
    void *opaque;
    struct device_timer *timer;
    uint64_t timer_at; /* armed deadline, 0: none */
    int hash[HASH_SIZE];
    int free_head;
    int rxq_head, rxq_tail;
    unsigned nr_conns;
    uint32_t next_local_port;
    struct rst_item rstq[VSOCK_RSTQ_SIZE];
    unsigned rst_head, rst_count;
    bool warned_full, warned_rstq, warned_accept; /* each problem is logged once */
    struct vsock_conn conns[VSOCK_MAX_CONNS];
};

/* --- packet headers ------------------------------------------------------------------------ */

static uint64_t get_le(const uint8_t *p, unsigned bytes)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < bytes; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static void put_le(uint8_t *p, uint64_t v, unsigned bytes)
{
    for (unsigned i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

void vsock_hdr_decode(const uint8_t raw[VSOCK_HDR_SIZE], struct vsock_hdr *h)
{
    h->src_cid = get_le(raw, 8);
    h->dst_cid = get_le(raw + 8, 8);
    h->src_port = (uint32_t)get_le(raw + 16, 4);
    h->dst_port = (uint32_t)get_le(raw + 20, 4);
    h->len = (uint32_t)get_le(raw + 24, 4);
    h->type = (uint16_t)get_le(raw + 28, 2);
    h->op = (uint16_t)get_le(raw + 30, 2);
    h->flags = (uint32_t)get_le(raw + 32, 4);
    h->buf_alloc = (uint32_t)get_le(raw + 36, 4);
    h->fwd_cnt = (uint32_t)get_le(raw + 40, 4);
}

void vsock_hdr_encode(const struct vsock_hdr *h, uint8_t raw[VSOCK_HDR_SIZE])
{
    put_le(raw, h->src_cid, 8);
    put_le(raw + 8, h->dst_cid, 8);
    put_le(raw + 16, h->src_port, 4);
    put_le(raw + 20, h->dst_port, 4);
    put_le(raw + 24, h->len, 4);
    put_le(raw + 28, h->type, 2);
    put_le(raw + 30, h->op, 2);
    put_le(raw + 32, h->flags, 4);
    put_le(raw + 36, h->buf_alloc, 4);
    put_le(raw + 40, h->fwd_cnt, 4);
}

/* The next whitespace-separated word of [*p, end): its start and length (0 at the end). */
static size_t next_word(const char **p, const char *end, const char **word)
{
    while (*p < end && isspace((unsigned char)**p))
        (*p)++;
    *word = *p;
    while (*p < end && !isspace((unsigned char)**p))
        (*p)++;
    return (size_t)(*p - *word);
}

int64_t vsock_parse_connect(const char *line, size_t len)
{
    const char *p = line, *end = line + len, *cmd, *num;
    size_t cmd_len = next_word(&p, end, &cmd);
    size_t num_len = next_word(&p, end, &num);
    if (cmd_len != 7 || strncasecmp(cmd, "connect", 7) != 0 || num_len == 0 || num_len > 10)
        return -1;
    uint64_t port = 0;
    for (size_t i = 0; i < num_len; i++) {
        if (num[i] < '0' || num[i] > '9')
            return -1;
        port = port * 10 + (uint64_t)(num[i] - '0');
    }
    return port > UINT32_MAX ? -1 : (int64_t)port;
}

/* --- the table: slots, hash by (local port, peer port), receive queue ---------------------- */

static int conn_index(const struct vsock_mux *mux, const struct vsock_conn *c)
{
    return (int)(c - mux->conns);
}

static unsigned hash_ports(uint32_t local_port, uint32_t peer_port)
{
    uint32_t h = local_port * 0x9e3779b1u ^ peer_port * 0x85ebca77u;
    return (h ^ h >> 16) % HASH_SIZE;
}

static struct vsock_conn *conn_find(struct vsock_mux *mux, uint32_t local_port, uint32_t peer_port)
{
    for (int i = mux->hash[hash_ports(local_port, peer_port)]; i != NO_CONN;
         i = mux->conns[i].hnext) {
        struct vsock_conn *c = &mux->conns[i];
        if (c->local_port == local_port && c->peer_port == peer_port)
            return c;
    }
    return NULL;
}

static void hash_insert(struct vsock_mux *mux, struct vsock_conn *c)
{
    int *head = &mux->hash[hash_ports(c->local_port, c->peer_port)];
    c->hnext = *head;
    *head = conn_index(mux, c);
    c->hashed = true;
}

static void hash_remove(struct vsock_mux *mux, struct vsock_conn *c)
{
    int me = conn_index(mux, c);
    for (int *p = &mux->hash[hash_ports(c->local_port, c->peer_port)]; *p != NO_CONN;
         p = &mux->conns[*p].hnext)
        if (*p == me) {
            *p = c->hnext;
            break;
        }
    c->hashed = false;
}

static void rxq_push(struct vsock_mux *mux, struct vsock_conn *c)
{
    int me = conn_index(mux, c);
    c->rxprev = mux->rxq_tail;
    c->rxnext = NO_CONN;
    if (mux->rxq_tail != NO_CONN)
        mux->conns[mux->rxq_tail].rxnext = me;
    else
        mux->rxq_head = me;
    mux->rxq_tail = me;
    c->in_rxq = true;
}

static void rxq_remove(struct vsock_mux *mux, struct vsock_conn *c)
{
    if (c->rxprev != NO_CONN)
        mux->conns[c->rxprev].rxnext = c->rxnext;
    else
        mux->rxq_head = c->rxnext;
    if (c->rxnext != NO_CONN)
        mux->conns[c->rxnext].rxprev = c->rxprev;
    else
        mux->rxq_tail = c->rxprev;
    c->in_rxq = false;
}

static void reset_slot(struct vsock_mux *mux, struct vsock_conn *c)
{
    memset(c, 0, sizeof(*c));
    c->mux = mux;
    c->fd = -1;
    c->hnext = c->rxprev = c->rxnext = NO_CONN;
}

static struct vsock_conn *conn_alloc(struct vsock_mux *mux)
{
    if (mux->free_head == NO_CONN) {
        if (!mux->warned_full)
            qk_warn("vsock: %d connections open; refusing more", VSOCK_MAX_CONNS);
        mux->warned_full = true;
        return NULL;
    }
    struct vsock_conn *c = &mux->conns[mux->free_head];
    mux->free_head = c->hnext;
    reset_slot(mux, c);
    mux->nr_conns++;
    return c;
}

/* --- host sockets in the event loop -------------------------------------------------------- */

static void conn_event(void *opaque, uint32_t revents);

static void unwatch(struct vsock_conn *c)
{
    if (c->watched)
        event_loop_remove(c->mux->host->loop, c->fd);
    c->watched = false;
}

static bool watch(struct vsock_conn *c, uint32_t events)
{
    char err[128];
    if (event_loop_add(c->mux->host->loop, c->fd, events, conn_event, c, err, sizeof(err)) < 0)
        return false;
    c->watched = true;
    c->events = events;
    return true;
}

static void close_host(struct vsock_conn *c)
{
    if (c->fd < 0)
        return;
    unwatch(c); /* before close: the number may be reused at once */
    close(c->fd);
    c->fd = -1;
}

static void conn_free(struct vsock_conn *c)
{
    struct vsock_mux *mux = c->mux;
    close_host(c);
    if (c->hashed)
        hash_remove(mux, c);
    if (c->in_rxq)
        rxq_remove(mux, c);
    free(c->ring);
    reset_slot(mux, c);
    c->hnext = mux->free_head;
    mux->free_head = conn_index(mux, c);
    mux->nr_conns--;
}

/* Give up on a connection: close the host socket; the guest hears RST (unless it never heard
 * of the connection: then the slot just goes). */
static void conn_kill(struct vsock_conn *c)
{
    if (c->state == CONN_HANDSHAKE || (c->state == CONN_LOCAL_INIT && (c->owe & OWE_REQUEST))) {
        conn_free(c);
        return;
    }
    close_host(c);
    free(c->ring);
    c->ring = NULL;
    c->ring_len = 0;
    c->state = CONN_DEAD;
    c->owe = OWE_RST;
    c->deadline = 0;
}

/* A stray packet: answer RST from its destination to its source (dropped when the ring of
 * pending RSTs is full: the guest's own timeouts cover it). */
static void queue_rst(struct vsock_mux *mux, const struct vsock_hdr *h)
{
    if (mux->rst_count == VSOCK_RSTQ_SIZE) {
        if (!mux->warned_rstq)
            qk_warn("vsock: the guest sends stray packets faster than it takes replies; "
                    "dropping resets");
        mux->warned_rstq = true;
        return;
    }
    unsigned at = (mux->rst_head + mux->rst_count++) % VSOCK_RSTQ_SIZE;
    mux->rstq[at] = (struct rst_item){h->dst_port, h->src_port};
}

/* --- timer: deadlines, paused accepts, deferred receive work ------------------------------- */

static uint64_t now_ns(const struct vsock_mux *mux)
{
    return mux->host->clock_ns(mux->host->timer_ctx);
}

static void arm_at(struct vsock_mux *mux, uint64_t when)
{
    if (mux->timer_at && mux->timer_at <= when)
        return;
    mux->timer_at = when;
    mux->host->timer_arm(mux->host->timer_ctx, mux->timer, when);
}

static void set_deadline(struct vsock_conn *c, uint64_t from_now)
{
    c->deadline = now_ns(c->mux) + from_now;
    arm_at(c->mux, c->deadline);
}

/* --- credit -------------------------------------------------------------------------------- */

/* What the guest can still take on this connection (0 when its numbers make no sense). */
static uint32_t peer_credit(const struct vsock_conn *c)
{
    uint32_t in_flight = c->rx_cnt - c->peer_fwd_cnt;
    return in_flight >= c->peer_buf_alloc ? 0 : c->peer_buf_alloc - in_flight;
}

/* Host data could go to the guest now, credit permitting. */
static bool wants_read(const struct vsock_conn *c)
{
    return c->state == CONN_ESTABLISHED && c->rd_ready && !c->host_eof &&
           !(c->guest_shut & VSOCK_SHUTDOWN_RCV);
}

static bool owes_packet(const struct vsock_conn *c)
{
    return c->owe || (wants_read(c) && peer_credit(c) > 0);
}

/* After we forwarded guest data: if the guest believes less than CREDIT_UPDATE_LOW of our
 * buffer is free while more is, tell it (any packet carries fwd_cnt; this one only if nothing
 * else goes first). */
static void check_credit_update(struct vsock_conn *c)
{
    uint32_t used_as_seen = c->fwd_cnt + c->ring_len - c->last_fwd_sent;
    if (used_as_seen > VSOCK_CONN_BUF - CREDIT_UPDATE_LOW && c->fwd_cnt != c->last_fwd_sent)
        c->owe |= OWE_CREDIT_UPDATE;
}

/* SHUTDOWN flags we would send now: SEND once the host sent EOF, RCV once nothing more can
 * reach the host (it closed, or the guest shut its sending side and we passed that on). */
static uint32_t shutdown_flags(const struct vsock_conn *c)
{
    uint32_t f = c->host_eof ? VSOCK_SHUTDOWN_SEND : 0;
    if (c->host_eof && (c->hup || c->wr_shut))
        f |= VSOCK_SHUTDOWN_RCV;
    return f;
}

/* Bring a connection's receive-queue membership, epoll interest and shutdown state in line
 * with what it is (after every change). */
static void conn_sync(struct vsock_conn *c)
{
    struct vsock_mux *mux = c->mux;
    if (c->state == CONN_FREE)
        return;
    if (c->state == CONN_ESTABLISHED && (shutdown_flags(c) & ~c->shut_sent))
        c->owe |= OWE_SHUTDOWN;
    if (wants_read(c) && peer_credit(c) == 0 && !c->credit_requested) {
        c->owe |= OWE_CREDIT_REQUEST;
        c->credit_requested = true;
    }
    bool owes = owes_packet(c);
    if (owes && !c->in_rxq)
        rxq_push(mux, c);
    else if (!owes && c->in_rxq)
        rxq_remove(mux, c);
    uint32_t ev = 0;
    if (c->state == CONN_HANDSHAKE)
        ev = EPOLLIN;
    if (c->state == CONN_ESTABLISHED && !c->rd_ready && !c->host_eof &&
        !(c->guest_shut & VSOCK_SHUTDOWN_RCV))
        ev |= EPOLLIN;
    if (c->state == CONN_ESTABLISHED && c->ring_len)
        ev |= EPOLLOUT;
    if (c->watched && ev != c->events && event_loop_modify(mux->host->loop, c->fd, ev) == 0)
        c->events = ev;
}

/* --- guest to host ------------------------------------------------------------------------- */

static ssize_t send_iov(int fd, const struct iovec *iov, unsigned niov)
{
    struct msghdr msg = {.msg_iov = (struct iovec *)iov, .msg_iovlen = niov};
    ssize_t n;
    do
        n = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return 0;
    return n;
}

/* The ring is empty: pass on what the guest's shutdown asked for. */
static void after_drain(struct vsock_conn *c)
{
    if (c->ring_len || c->state != CONN_ESTABLISHED)
        return;
    if ((c->guest_shut & VSOCK_SHUTDOWN_SEND) && !c->wr_shut && c->fd >= 0) {
        shutdown(c->fd, SHUT_WR); /* the host reads EOF */
        c->wr_shut = true;
    }
    if (c->guest_shut == BOTH_SHUT)
        conn_kill(c); /* nothing more either way: RST ends it */
}

/* EPOLLOUT: write what waits in the ring. */
static void flush_ring(struct vsock_conn *c)
{
    if (!c->ring_len || c->fd < 0)
        return;
    uint32_t first = VSOCK_CONN_BUF - c->ring_start;
    if (first > c->ring_len)
        first = c->ring_len;
    struct iovec iov[2] = {{c->ring + c->ring_start, first}, {c->ring, c->ring_len - first}};
    ssize_t n = send_iov(c->fd, iov, iov[1].iov_len ? 2 : 1);
    if (n < 0) {
        conn_kill(c); /* the host is gone */
        return;
    }
    c->ring_start = (uint32_t)((c->ring_start + (size_t)n) % VSOCK_CONN_BUF);
    c->ring_len -= (uint32_t)n;
    c->fwd_cnt += (uint32_t)n;
    if (n && c->guest_shut == BOTH_SHUT)
        set_deadline(c, VSOCK_TIMEOUT_NS); /* a host still reading gets its data */
    check_credit_update(c);
    after_drain(c);
}

/* Copy `len` bytes of iov, from byte `skip`, to the end of the ring (it has room). */
static void ring_append(struct vsock_conn *c, const struct iovec *iov, unsigned niov, size_t skip,
                        size_t len)
{
    for (unsigned i = 0; i < niov && len; i++) {
        if (skip >= iov[i].iov_len) {
            skip -= iov[i].iov_len;
            continue;
        }
        const uint8_t *src = (const uint8_t *)iov[i].iov_base + skip;
        size_t n = iov[i].iov_len - skip < len ? iov[i].iov_len - skip : len;
        skip = 0;
        len -= n;
        while (n) {
            uint32_t at = (c->ring_start + c->ring_len) % VSOCK_CONN_BUF;
            size_t piece = VSOCK_CONN_BUF - at < n ? VSOCK_CONN_BUF - at : n;
            memcpy(c->ring + at, src, piece);
            c->ring_len += (uint32_t)piece;
            src += piece;
            n -= piece;
        }
    }
}

/* An RW packet on an established connection. */
static void forward(struct vsock_conn *c, const struct vsock_hdr *h, const struct iovec *iov,
                    unsigned niov)
{
    if ((size_t)c->ring_len + h->len > VSOCK_CONN_BUF) {
        conn_kill(c); /* more than the credit we gave */
        return;
    }
    ssize_t done = 0;
    if (!c->ring_len && c->fd >= 0) {
        done = send_iov(c->fd, iov, niov);
        if (done < 0) {
            conn_kill(c);
            return;
        }
    }
    if ((uint32_t)done < h->len) {
        if (!c->ring && !(c->ring = malloc(VSOCK_CONN_BUF))) {
            conn_kill(c);
            return;
        }
        ring_append(c, iov, niov, (size_t)done, h->len - (size_t)done);
    }
    c->fwd_cnt += (uint32_t)done;
    check_credit_update(c);
}

static void guest_shutdown(struct vsock_conn *c, uint32_t flags)
{
    c->guest_shut |= flags & BOTH_SHUT;
    if (c->guest_shut == BOTH_SHUT && c->ring_len)
        set_deadline(c, VSOCK_TIMEOUT_NS); /* flush what we can, then reset */
    after_drain(c);
}

/* The guest accepted a host-initiated connection: tell the host which port it got. */
static void establish_local(struct vsock_conn *c)
{
    char msg[24];
    int len = snprintf(msg, sizeof(msg), "OK %u\n", c->local_port);
    c->state = CONN_ESTABLISHED;
    c->deadline = 0;
    struct iovec iov = {msg, (size_t)len};
    if (c->fd < 0 || send_iov(c->fd, &iov, 1) != len)
        conn_kill(c); /* a fresh socket that cannot take a dozen bytes is broken (as FC) */
}

/* The guest connects to host port h->dst_port: the Unix socket "<path>_<port>". */
static void peer_request(struct vsock_mux *mux, const struct vsock_hdr *h)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s_%u", mux->path, h->dst_port);
    struct vsock_conn *c = conn_alloc(mux);
    if (!c) {
        queue_rst(mux, h);
        return;
    }
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    /* Non-blocking connect on a Unix socket: done at once, or EAGAIN (backlog full), or no
     * listener; all but the first refuse the guest. */
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || !watch(c, 0)) {
        conn_free(c);
        queue_rst(mux, h);
        return;
    }
    c->state = CONN_PEER_INIT;
    c->local_port = h->dst_port;
    c->peer_port = h->src_port;
    c->peer_buf_alloc = h->buf_alloc;
    c->peer_fwd_cnt = h->fwd_cnt;
    c->owe = OWE_RESPONSE;
    hash_insert(mux, c);
    conn_sync(c);
}

/* A packet for an existing connection. */
static void conn_packet_from_guest(struct vsock_conn *c, const struct vsock_hdr *h,
                                   const struct iovec *iov, unsigned niov)
{
    if (h->op == VSOCK_OP_RST) {
        conn_free(c); /* the guest is done (or refused a host connection): close the host end */
        return;
    }
    if (c->state == CONN_DEAD)
        return; /* our RST is on its way */
    c->peer_buf_alloc = h->buf_alloc;
    c->peer_fwd_cnt = h->fwd_cnt;
    if (peer_credit(c))
        c->credit_requested = false;
    switch (h->op) {
    case VSOCK_OP_RESPONSE:
        if (c->state == CONN_LOCAL_INIT && !(c->owe & OWE_REQUEST))
            establish_local(c);
        break;
    case VSOCK_OP_RW:
        if (c->state == CONN_ESTABLISHED && !(c->guest_shut & VSOCK_SHUTDOWN_SEND) && h->len)
            forward(c, h, iov, niov);
        break;
    case VSOCK_OP_SHUTDOWN:
        if (c->state == CONN_ESTABLISHED)
            guest_shutdown(c, h->flags);
        break;
    case VSOCK_OP_CREDIT_REQUEST:
        if (c->state == CONN_ESTABLISHED)
            c->owe |= OWE_CREDIT_UPDATE;
        break;
    default:
        break; /* CREDIT_UPDATE: done above; REQUEST on a live pair, unknown ops: dropped (FC) */
    }
    conn_sync(c);
}

void vsock_mux_send(struct vsock_mux *mux, const struct vsock_hdr *h, const struct iovec *iov,
                    unsigned niov)
{
    if (!mux->active || h->dst_cid != VSOCK_HOST_CID || h->src_cid != mux->guest_cid)
        return; /* not for us (FC drops these too): nothing to answer */
    struct vsock_conn *c = conn_find(mux, h->dst_port, h->src_port);
    if (h->type != VSOCK_TYPE_STREAM) {
        if (c) {
            conn_kill(c);
            conn_sync(c);
        } else if (h->op != VSOCK_OP_RST) {
            queue_rst(mux, h);
        }
        return;
    }
    if (c) {
        conn_packet_from_guest(c, h, iov, niov);
        return;
    }
    if (h->op == VSOCK_OP_REQUEST)
        peer_request(mux, h);
    else if (h->op != VSOCK_OP_RST)
        queue_rst(mux, h); /* RW or anything else on a pair we do not know (never RST an RST) */
}

void vsock_mux_send_malformed(struct vsock_mux *mux, const struct vsock_hdr *h)
{
    if (!mux->active || h->dst_cid != VSOCK_HOST_CID || h->src_cid != mux->guest_cid)
        return;
    struct vsock_conn *c = conn_find(mux, h->dst_port, h->src_port);
    if (c) {
        conn_kill(c);
        conn_sync(c);
    } else if (h->op != VSOCK_OP_RST) {
        queue_rst(mux, h);
    }
}

/* --- host to guest ------------------------------------------------------------------------- */

/* Shorten iov in place to at most max bytes; returns how many entries remain. */
static unsigned clip_iov(struct iovec *iov, unsigned niov, size_t max)
{
    for (unsigned i = 0; i < niov; i++) {
        if (iov[i].iov_len >= max) {
            iov[i].iov_len = max;
            return max ? i + 1 : i;
        }
        max -= iov[i].iov_len;
    }
    return niov;
}

/* The host closed both directions (a hang-up, checked now: events may be stale). */
static bool peer_hung_up(int fd)
{
    struct pollfd p = {.fd = fd, .events = 0};
    return poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLERR));
}

/* A data packet from the host socket into the guest's buffer (op RW). A read that brings no
 * data leaves op INVALID (EOF: host_eof set; nothing after all: rd_ready cleared); an error
 * kills the connection (op RST). */
static uint32_t read_packet(struct vsock_conn *c, struct vsock_hdr *h, struct iovec *iov,
                            unsigned niov, uint32_t cap)
{
    uint32_t max = peer_credit(c);
    if (max > cap)
        max = cap;
    if (max > VSOCK_MAX_PKT)
        max = VSOCK_MAX_PKT;
    unsigned n = clip_iov(iov, niov, max);
    if (!n)
        return 0; /* a receive buffer with no room after the header */
    ssize_t got;
    do
        got = readv(c->fd, iov, (int)n);
    while (got < 0 && errno == EINTR);
    if (got > 0) {
        h->op = VSOCK_OP_RW;
        c->rx_cnt += (uint32_t)got;
        /* A short read probably drained the socket: EPOLLIN tells us about more. After a
         * hang-up the socket is out of the loop and only EOF ends the reading. */
        if ((uint32_t)got < max && !c->hup)
            c->rd_ready = false;
        return (uint32_t)got;
    }
    c->rd_ready = false;
    if (got == 0) {
        c->host_eof = true;
        c->hup = c->hup || peer_hung_up(c->fd);
    } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
        conn_kill(c);
        h->op = VSOCK_OP_RST;
    }
    return 0;
}

/* The packet a connection owes, most urgent first; a credit update (every packet carries our
 * fwd_cnt) when nothing else is due. */
static uint32_t conn_next_packet(struct vsock_conn *c, struct vsock_hdr *h, struct iovec *iov,
                                 unsigned niov, uint32_t cap)
{
    uint32_t len = 0;
    if (c->owe & OWE_RST) {
        h->op = VSOCK_OP_RST;
        c->owe = 0;
        return 0;
    }
    if (c->owe & OWE_RESPONSE) {
        h->op = VSOCK_OP_RESPONSE;
        c->owe &= ~OWE_RESPONSE;
        c->state = CONN_ESTABLISHED;
    } else if (c->owe & OWE_REQUEST) {
        h->op = VSOCK_OP_REQUEST;
        c->owe &= ~OWE_REQUEST;
        set_deadline(c, VSOCK_TIMEOUT_NS); /* the guest answers within 2 s, or we reset */
    } else if (wants_read(c) && peer_credit(c) > 0) {
        len = read_packet(c, h, iov, niov, cap);
    }
    if (h->op == VSOCK_OP_RST)
        return 0;
    if (h->op == VSOCK_OP_INVALID && c->state == CONN_ESTABLISHED &&
        (shutdown_flags(c) & ~c->shut_sent)) {
        h->op = VSOCK_OP_SHUTDOWN;
        h->flags = shutdown_flags(c);
        c->shut_sent |= h->flags;
        if (c->shut_sent == BOTH_SHUT)
            set_deadline(c, VSOCK_TIMEOUT_NS); /* the guest answers RST, or we do */
    } else if (h->op == VSOCK_OP_INVALID && (c->owe & OWE_CREDIT_REQUEST)) {
        h->op = VSOCK_OP_CREDIT_REQUEST;
        c->owe &= ~OWE_CREDIT_REQUEST;
    } else if (h->op == VSOCK_OP_INVALID) {
        h->op = VSOCK_OP_CREDIT_UPDATE;
    }
    /* Any packet carries fwd_cnt; a SHUTDOWN that had to wait is owed again by conn_sync. */
    c->owe &= ~(OWE_CREDIT_UPDATE | OWE_SHUTDOWN);
    return len;
}

bool vsock_mux_has_rx(const struct vsock_mux *mux)
{
    return mux->rst_count || mux->rxq_head != NO_CONN;
}

uint32_t vsock_mux_recv(struct vsock_mux *mux, struct vsock_hdr *h, const struct iovec *iov,
                        unsigned niov, uint32_t cap)
{
    memset(h, 0, sizeof(*h));
    h->src_cid = VSOCK_HOST_CID;
    h->dst_cid = mux->guest_cid;
    h->type = VSOCK_TYPE_STREAM;
    if (mux->rst_count) {
        const struct rst_item *r = &mux->rstq[mux->rst_head];
        h->src_port = r->src_port;
        h->dst_port = r->dst_port;
        h->op = VSOCK_OP_RST;
        mux->rst_head = (mux->rst_head + 1) % VSOCK_RSTQ_SIZE;
        mux->rst_count--;
        return 0;
    }
    if (mux->rxq_head == NO_CONN) {
        h->op = VSOCK_OP_INVALID; /* misuse: nothing was pending */
        return 0;
    }
    struct vsock_conn *c = &mux->conns[mux->rxq_head];
    rxq_remove(mux, c);
    h->src_port = c->local_port;
    h->dst_port = c->peer_port;
    /* The payload goes into the caller's iovecs, which we may shorten (they are scratch). */
    uint32_t len = conn_next_packet(c, h, (struct iovec *)iov, niov, cap);
    h->buf_alloc = VSOCK_CONN_BUF;
    h->fwd_cnt = c->fwd_cnt;
    h->len = len;
    c->last_fwd_sent = c->fwd_cnt;
    if (h->op == VSOCK_OP_RST)
        conn_free(c);
    else
        conn_sync(c);
    return len;
}

void vsock_mux_defer_rx(struct vsock_mux *mux)
{
    arm_at(mux, now_ns(mux)); /* the timer's callback ends in notify_rx */
}

/* End of an I/O-thread entry: let the device deliver what is now pending. */
static void notify_rx(struct vsock_mux *mux)
{
    if (mux->active && vsock_mux_has_rx(mux))
        mux->rx_ready(mux->opaque);
}

/* --- host connections: accept, the CONNECT line, socket events ----------------------------- */

/* Read the CONNECT line without taking a byte past its newline: what follows is data for the
 * guest, once it accepted. */
static void handshake_read(struct vsock_conn *c)
{
    struct vsock_mux *mux = c->mux;
    char peek[VSOCK_CONNECT_LINE_MAX];
    size_t room = sizeof(c->line) - c->line_len;
    ssize_t n = recv(c->fd, peek, room, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) {
        conn_free(c); /* EOF or error before a whole line */
        return;
    }
    char *nl = memchr(peek, '\n', (size_t)n);
    size_t take = nl ? (size_t)(nl - peek) + 1 : (size_t)n;
    if (recv(c->fd, c->line + c->line_len, take, MSG_DONTWAIT) != (ssize_t)take) {
        conn_free(c);
        return;
    }
    c->line_len += (uint32_t)take;
    if (!nl) {
        if (c->line_len == sizeof(c->line))
            conn_free(c); /* no newline within 32 bytes: not a CONNECT line */
        return;
    }
    int64_t port = vsock_parse_connect(c->line, c->line_len);
    if (port < 0) {
        conn_free(c); /* as Firecracker: the host end is closed, nothing said */
        return;
    }
    c->peer_port = (uint32_t)port;
    do { /* round-robin in [1 << 30, 1 << 31), skipping a pair in use */
        c->local_port = mux->next_local_port;
        mux->next_local_port = (mux->next_local_port + 1) | VSOCK_LOCAL_PORT_FIRST;
        mux->next_local_port &= ~(1u << 31);
    } while (conn_find(mux, c->local_port, c->peer_port));
    c->state = CONN_LOCAL_INIT;
    c->owe = OWE_REQUEST;
    hash_insert(mux, c);
}

/* A hang-up (confirmed): the socket leaves the loop, which would report it forever. What the
 * host wrote before closing is still read, by the receive path. */
static void host_hung_up(struct vsock_conn *c)
{
    unwatch(c);
    c->hup = true;
    if (c->state == CONN_HANDSHAKE) {
        handshake_read(c);
        if (c->state == CONN_HANDSHAKE)
            conn_free(c);
        if (c->state == CONN_FREE)
            return;
    }
    c->rd_ready = true; /* data and EOF left to read */
    flush_ring(c);      /* fails: the guest's data has nowhere to go */
}

static void conn_event(void *opaque, uint32_t revents)
{
    struct vsock_conn *c = opaque;
    struct vsock_mux *mux = c->mux;
    pthread_mutex_lock(&mux->lock);
    /* A reset may have closed this socket, or the slot be another connection's by now. */
    if (!c->watched) {
        pthread_mutex_unlock(&mux->lock);
        return;
    }
    if ((revents & (EPOLLHUP | EPOLLERR)) && peer_hung_up(c->fd)) {
        host_hung_up(c);
    } else if (c->state == CONN_HANDSHAKE) {
        if (revents & EPOLLIN)
            handshake_read(c);
    } else if (c->state == CONN_ESTABLISHED) {
        if (revents & EPOLLIN)
            c->rd_ready = true;
        if (revents & EPOLLOUT)
            flush_ring(c);
    }
    conn_sync(c);
    notify_rx(mux);
    pthread_mutex_unlock(&mux->lock);
}

static void listener_event(void *opaque, uint32_t revents);

static void listen_on(struct vsock_mux *mux)
{
    char err[128];
    if (!mux->listening && event_loop_add(mux->host->loop, mux->listen_fd, EPOLLIN, listener_event,
                                          mux, err, sizeof(err)) == 0)
        mux->listening = true;
}

static void listen_off(struct vsock_mux *mux)
{
    if (mux->listening)
        event_loop_remove(mux->host->loop, mux->listen_fd);
    mux->listening = false;
}

/* accept failed for want of file descriptors: a listener left in the loop would wake us
 * forever, so it sits out a while. */
static void pause_accepting(struct vsock_mux *mux)
{
    if (!mux->warned_accept)
        qk_warn("vsock: cannot accept host connections: %s (retrying every 100 ms)",
                strerror(errno));
    mux->warned_accept = true;
    listen_off(mux);
    mux->accept_resume = now_ns(mux) + ACCEPT_RETRY_NS;
    arm_at(mux, mux->accept_resume);
}

static void accept_one(struct vsock_mux *mux, int fd)
{
    struct vsock_conn *c = conn_alloc(mux);
    if (!c) {
        close(fd); /* table full: accepted and dropped, as Firecracker */
        return;
    }
    c->fd = fd;
    c->state = CONN_HANDSHAKE;
    if (!watch(c, EPOLLIN))
        conn_free(c);
}

static void listener_event(void *opaque, uint32_t revents)
{
    struct vsock_mux *mux = opaque;
    (void)revents;
    pthread_mutex_lock(&mux->lock);
    for (unsigned i = 0; i < ACCEPT_BATCH && mux->active && mux->listening; i++) {
        int fd = accept4(mux->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            accept_one(mux, fd);
            continue;
        }
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
            pause_accepting(mux);
        if (errno != EINTR && errno != ECONNABORTED)
            break;
    }
    pthread_mutex_unlock(&mux->lock);
}

static void sweep_deadlines(struct vsock_mux *mux, uint64_t now)
{
    uint64_t next = 0;
    for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
        struct vsock_conn *c = &mux->conns[i];
        if (c->state == CONN_FREE || !c->deadline)
            continue;
        if (c->deadline <= now) {
            c->deadline = 0;
            conn_kill(c); /* no RESPONSE, no RST after our SHUTDOWN, a host that stopped reading */
            conn_sync(c);
        } else if (!next || c->deadline < next) {
            next = c->deadline;
        }
    }
    if (next)
        arm_at(mux, next);
}

static void mux_timer(void *opaque)
{
    struct vsock_mux *mux = opaque;
    pthread_mutex_lock(&mux->lock);
    uint64_t now = now_ns(mux);
    mux->timer_at = 0;
    if (mux->accept_resume && mux->accept_resume <= now) {
        mux->accept_resume = 0;
        if (mux->active)
            listen_on(mux);
    } else if (mux->accept_resume) {
        arm_at(mux, mux->accept_resume);
    }
    sweep_deadlines(mux, now);
    notify_rx(mux);
    pthread_mutex_unlock(&mux->lock);
}

/* --- lifecycle ----------------------------------------------------------------------------- */

void vsock_mux_lock(struct vsock_mux *mux)
{
    pthread_mutex_lock(&mux->lock);
}

void vsock_mux_unlock(struct vsock_mux *mux)
{
    pthread_mutex_unlock(&mux->lock);
}

void vsock_mux_start(struct vsock_mux *mux)
{
    mux->active = true;
    if (!mux->accept_resume)
        listen_on(mux);
}

void vsock_mux_stop(struct vsock_mux *mux)
{
    mux->active = false;
    listen_off(mux);
    mux->accept_resume = 0;
    for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++)
        if (mux->conns[i].state != CONN_FREE)
            conn_free(&mux->conns[i]);
    mux->rst_head = mux->rst_count = 0;
    mux->next_local_port = VSOCK_LOCAL_PORT_FIRST;
}

unsigned vsock_mux_nr_conns(const struct vsock_mux *mux)
{
    return mux->nr_conns;
}

/* Up to VSOCK_MAX_CONNS host sockets, plus the machine's own: lift the soft fd limit towards
 * the hard one when it is lower (Debian's default soft limit is 1024). */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    rlim_t want = VSOCK_MAX_CONNS + 512;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= want)
        return;
    rl.rlim_cur = rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want ? rl.rlim_max : want;
    setrlimit(RLIMIT_NOFILE, &rl);
}

/* Someone accepts connections on the socket at sa (another VM with this path). */
static bool socket_in_use(const struct sockaddr_un *sa)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    bool used = connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0 || errno == EAGAIN;
    close(fd);
    return used;
}

/* The path may be used: its directory exists; it is absent, or a stale socket (removed). */
static int check_path(const char *path, const struct sockaddr_un *sa, char *err, size_t errlen)
{
    char dir[sizeof(sa->sun_path)];
    const char *slash = strrchr(path, '/');
    snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash == path ? 1 : slash - path) : 1,
             slash ? path : ".");
    struct stat st;
    if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
        return qk_fail(err, errlen, "socket '%s': directory '%s' does not exist", path, dir);
    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : qk_fail(err, errlen, "socket '%s': %s", path, strerror(errno));
    if (!S_ISSOCK(st.st_mode))
        return qk_fail(err, errlen,
                       "'%s' exists and is not a socket (remove it or pick another path)", path);
    if (socket_in_use(sa))
        return qk_fail(err, errlen, "socket '%s' is in use by another process", path);
    if (unlink(path) < 0) /* a stale socket from an earlier run */
        return qk_fail(err, errlen, "cannot remove stale socket '%s': %s", path, strerror(errno));
    return 0;
}

static int bind_listener(struct vsock_mux *mux, char *err, size_t errlen)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(mux->path) + PORT_SUFFIX_MAX > SUN_PATH_MAX)
        return qk_fail(err, errlen,
                       "socket path '%s' is too long (at most %zu bytes, leaving room for _PORT)",
                       mux->path, SUN_PATH_MAX - PORT_SUFFIX_MAX);
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", mux->path);
    if (check_path(mux->path, &sa, err, errlen) < 0)
        return -1;
    mux->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct stat st;
    if (mux->listen_fd < 0 || bind(mux->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        listen(mux->listen_fd, LISTEN_BACKLOG) < 0 || stat(mux->path, &st) < 0)
        return qk_fail(err, errlen, "cannot listen on '%s': %s", mux->path, strerror(errno));
    mux->sock_dev = st.st_dev;
    mux->sock_ino = st.st_ino;
    return 0;
}

struct vsock_mux *vsock_mux_new(const struct device_host *host, uint64_t guest_cid,
                                const char *path, void (*rx_ready)(void *opaque), void *opaque,
                                char *err, size_t errlen)
{
    if (!host->loop || !host->timer_new || !host->timer_arm || !host->clock_ns) {
        qk_fail(err, errlen, "vsock needs the machine's event loop and timers");
        return NULL;
    }
    struct vsock_mux *mux = calloc(1, sizeof(*mux));
    if (!mux || !(mux->path = strdup(path))) {
        free(mux);
        qk_fail(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&mux->lock, NULL);
    mux->host = host;
    mux->guest_cid = guest_cid;
    mux->rx_ready = rx_ready;
    mux->opaque = opaque;
    mux->listen_fd = -1;
    mux->free_head = mux->rxq_head = mux->rxq_tail = NO_CONN;
    mux->next_local_port = VSOCK_LOCAL_PORT_FIRST;
    for (unsigned i = 0; i < HASH_SIZE; i++)
        mux->hash[i] = NO_CONN;
    for (int i = VSOCK_MAX_CONNS - 1; i >= 0; i--) {
        reset_slot(mux, &mux->conns[i]);
        mux->conns[i].hnext = mux->free_head;
        mux->free_head = i;
    }
    if (bind_listener(mux, err, errlen) < 0) {
        vsock_mux_free(mux);
        return NULL;
    }
    mux->timer = host->timer_new(host->timer_ctx, mux_timer, mux);
    if (!mux->timer) {
        qk_fail(err, errlen, "cannot create the vsock timer");
        vsock_mux_free(mux);
        return NULL;
    }
    raise_fd_limit();
    return mux;
}

void vsock_mux_free(struct vsock_mux *mux)
{
    if (!mux)
        return;
    vsock_mux_stop(mux);
    if (mux->timer)
        mux->host->timer_arm(mux->host->timer_ctx, mux->timer, 0);
    if (mux->listen_fd >= 0) {
        struct stat st;
        /* Remove the socket file only if it is still the one we made. */
        if (stat(mux->path, &st) == 0 && st.st_dev == mux->sock_dev && st.st_ino == mux->sock_ino)
            unlink(mux->path);
        close(mux->listen_fd);
    }
    pthread_mutex_destroy(&mux->lock);
    free(mux->path);
    free(mux);
}
