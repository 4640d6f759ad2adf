/* Unit tests: virtio-vsock and its host side (Firecracker's hybrid Unix sockets).
 *
 * First the multiplexer on its own (src/net/vsock_mux.c), with the guest played by this test
 * (packets handed in and pulled out) and real Unix sockets in a temporary directory as the
 * host side, the machine's event loop and a fake clock: header encoding, the CONNECT line,
 * both directions of connection set-up, refusals, data and credit both ways, half-close, a
 * host that hangs up with data unread, a host that never reads and a guest that ignores the
 * credit, stray and malformed packets, timeouts, the connection table and the reset queue at
 * their bounds, creation errors. Then the device through the real virtio-pci transport and
 * virtqueues, driven as a guest driver would: config space, chains split anywhere, headers
 * across descriptors, chains too short for a header or for their length, reset. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "hw/virtio/virtio.h"
#include "net/vsock_mux.h"
#include "pci_fakes.h"
#include "util/opts.h"
#include "vm/event_loop.h"
#include "vm/memory.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define GUEST_CID 3
#define LOCAL0 VSOCK_LOCAL_PORT_FIRST

/* --- headers and the CONNECT line ---------------------------------------------------------- */

static void test_header_encoding(void **state)
{
    (void)state;
    struct vsock_hdr h = {.src_cid = 0x0102030405060708ULL,
                          .dst_cid = 2,
                          .src_port = 0xa1a2a3a4,
                          .dst_port = 5000,
                          .len = 0x10000,
                          .type = VSOCK_TYPE_STREAM,
                          .op = VSOCK_OP_RW,
                          .flags = 3,
                          .buf_alloc = 0x40000,
                          .fwd_cnt = 0xfffffff0};
    uint8_t raw[VSOCK_HDR_SIZE];
    vsock_hdr_encode(&h, raw);
    static const uint8_t want[VSOCK_HDR_SIZE] = {
        8, 7, 6, 5, 4, 3, 2, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0xa4, 0xa3, 0xa2, 0xa1, 0x88, 0x13,
        0, 0, 0, 0, 1, 0, 1, 0, 5, 0, 3, 0, 0, 0, 0, 0, 4,    0,    0xf0, 0xff, 0xff, 0xff};
    assert_memory_equal(raw, want, sizeof(want));
    struct vsock_hdr b;
    vsock_hdr_decode(raw, &b);
    assert_true(b.src_cid == h.src_cid && b.dst_cid == h.dst_cid && b.src_port == h.src_port &&
                b.dst_port == h.dst_port && b.len == h.len && b.type == h.type && b.op == h.op &&
                b.flags == h.flags && b.buf_alloc == h.buf_alloc && b.fwd_cnt == h.fwd_cnt);
}

static int64_t parse(const char *s)
{
    return vsock_parse_connect(s, strlen(s));
}

static void test_connect_line(void **state)
{
    (void)state;
    assert_int_equal(parse("CONNECT 5000\n"), 5000);
    assert_int_equal(parse("connect 0\n"), 0);
    assert_int_equal(parse("CoNnEcT 52"), 52);
    assert_int_equal(parse("  CONNECT\t4294967295  extra words\r\n"), 4294967295LL);
    assert_int_equal(parse("CONNECT 4294967296\n"), -1);
    assert_int_equal(parse("CONNECT 99999999999\n"), -1);
    assert_int_equal(parse("CONNECT\n"), -1);
    assert_int_equal(parse("CONNECT -1\n"), -1);
    assert_int_equal(parse("CONNECT 0x10\n"), -1);
    assert_int_equal(parse("CONNECT 12a\n"), -1);
    assert_int_equal(parse("CONNECTX 1\n"), -1);
    assert_int_equal(parse("OK 5\n"), -1);
    assert_int_equal(parse(""), -1);
    assert_int_equal(vsock_parse_connect("CONNECT 78", 9), 7); /* only len bytes count */
    assert_int_equal(vsock_parse_connect("CONNECT 7\0", 10), -1);
}

/* --- the multiplexer with a scripted guest --------------------------------------------------- */

struct mux_fixture {
    struct fake_machine fm;
    struct event_loop *loop;
    struct vsock_mux *mux;
    char dir[40], path[80];
    unsigned rx_ready;
    uint32_t buf_alloc, fwd_cnt; /* what the scripted guest advertises */
};

static void on_rx_ready(void *opaque)
{
    ((struct mux_fixture *)opaque)->rx_ready++;
}

static int mux_setup(void **state)
{
    struct mux_fixture *f = calloc(1, sizeof(*f));
    char err[256];
    assert_non_null(f);
    fake_machine_init(&f->fm);
    fake_machine_enable_timers(&f->fm);
    f->loop = event_loop_new(err, sizeof(err));
    assert_non_null(f->loop);
    f->fm.host.loop = f->loop;
    snprintf(f->dir, sizeof(f->dir), "/tmp/qk-vsock-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/v.sock", f->dir);
    f->mux = vsock_mux_new(&f->fm.host, GUEST_CID, f->path, on_rx_ready, f, err, sizeof(err));
    if (!f->mux)
        fail_msg("vsock_mux_new: %s", err);
    vsock_mux_lock(f->mux);
    vsock_mux_start(f->mux);
    vsock_mux_unlock(f->mux);
    f->buf_alloc = 256 * 1024;
    *state = f;
    return 0;
}

static void remove_dir(const char *dir)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static int mux_teardown(void **state)
{
    struct mux_fixture *f = *state;
    vsock_mux_free(f->mux);
    event_loop_free(f->loop);
    fake_machine_destroy(&f->fm);
    remove_dir(f->dir);
    free(f);
    return 0;
}

/* Run the I/O loop until it has nothing more to do right now. */
static void pump(struct mux_fixture *f)
{
    for (int i = 0; i < 200 && event_loop_run_once(f->loop, 5 * 1000000LL) > 0; i++)
        ;
}

/* The guest sends a packet (type STREAM, our CIDs, the fixture's credit). */
static void gsend_full(struct mux_fixture *f, const struct vsock_hdr *h, const void *data)
{
    struct iovec iov = {(void *)data, h->len};
    vsock_mux_lock(f->mux);
    vsock_mux_send(f->mux, h, &iov, data ? 1 : 0);
    vsock_mux_unlock(f->mux);
}

static void gsend(struct mux_fixture *f, uint16_t op, uint32_t src_port, uint32_t dst_port,
                  const void *data, uint32_t len, uint32_t flags)
{
    struct vsock_hdr h = {.src_cid = GUEST_CID,
                          .dst_cid = VSOCK_HOST_CID,
                          .src_port = src_port,
                          .dst_port = dst_port,
                          .len = len,
                          .type = VSOCK_TYPE_STREAM,
                          .op = op,
                          .flags = flags,
                          .buf_alloc = f->buf_alloc,
                          .fwd_cnt = f->fwd_cnt};
    gsend_full(f, &h, data);
}

/* The guest takes the next packet into a buffer of cap bytes; false when none is pending. */
static bool grecv(struct mux_fixture *f, struct vsock_hdr *h, void *buf, uint32_t cap)
{
    vsock_mux_lock(f->mux);
    bool any = vsock_mux_has_rx(f->mux);
    if (any) {
        struct iovec iov = {buf, cap};
        uint32_t len = vsock_mux_recv(f->mux, h, &iov, 1, cap);
        assert_int_equal(len, h->len);
        assert_true(len <= cap);
        assert_int_equal(h->src_cid, VSOCK_HOST_CID);
        assert_int_equal(h->dst_cid, GUEST_CID);
        assert_int_equal(h->type, VSOCK_TYPE_STREAM);
        if (h->op != VSOCK_OP_RST) {
            assert_int_equal(h->buf_alloc, VSOCK_CONN_BUF);
        }
    }
    vsock_mux_unlock(f->mux);
    return any;
}

static void expect_packet(struct mux_fixture *f, struct vsock_hdr *h, uint16_t op,
                          uint32_t src_port, uint32_t dst_port)
{
    static uint8_t scratch[VSOCK_MAX_PKT];
    if (!grecv(f, h, scratch, sizeof(scratch)))
        fail_msg("expected op %u %u->%u, nothing pending", op, src_port, dst_port);
    if (h->op != op || h->src_port != src_port || h->dst_port != dst_port)
        fail_msg("expected op %u %u->%u, got op %u %u->%u len %u", op, src_port, dst_port, h->op,
                 h->src_port, h->dst_port, h->len);
}

static void expect_nothing(struct mux_fixture *f)
{
    struct vsock_hdr h;
    uint8_t buf[64];
    if (grecv(f, &h, buf, sizeof(buf)))
        fail_msg("unexpected op %u %u->%u len %u", h.op, h.src_port, h.dst_port, h.len);
}

static unsigned nr_conns(struct mux_fixture *f)
{
    vsock_mux_lock(f->mux);
    unsigned n = vsock_mux_nr_conns(f->mux);
    vsock_mux_unlock(f->mux);
    return n;
}

/* --- the host side: Unix sockets ------------------------------------------------------------ */

static int host_listen(struct mux_fixture *f, uint32_t port, int backlog)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s_%u", f->path, port);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, backlog), 0);
    return fd;
}

static int host_accept(int lfd)
{
    struct pollfd p = {.fd = lfd, .events = POLLIN};
    assert_int_equal(poll(&p, 1, 2000), 1);
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    assert_true(fd >= 0);
    return fd;
}

static int host_connect(struct mux_fixture *f)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

static void host_write(int fd, const void *buf, size_t len)
{
    assert_int_equal(write(fd, buf, len), (ssize_t)len);
}

/* Read what is there within 2 s (at most len); the count, 0 at EOF. */
static ssize_t host_read(int fd, void *buf, size_t len)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 2000) != 1)
        return -1;
    return read(fd, buf, len);
}

/* Exactly len bytes, pumping the mux's loop between reads. */
static void host_read_exact(struct mux_fixture *f, int fd, void *buf, size_t len)
{
    size_t got = 0;
    for (int tries = 0; got < len && tries < 1000; tries++) {
        pump(f);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 10) != 1)
            continue;
        ssize_t n = read(fd, (uint8_t *)buf + got, len - got);
        assert_true(n > 0);
        got += (size_t)n;
    }
    assert_int_equal(got, len);
}

static bool host_sees_eof(int fd)
{
    char c;
    return host_read(fd, &c, 1) == 0;
}

/* Our end is closed: EOF, or ECONNRESET when we closed with the host's bytes unread. */
static bool host_sees_close(int fd)
{
    char c;
    ssize_t n = host_read(fd, &c, 1);
    return n == 0 || (n < 0 && errno == ECONNRESET);
}

/* A guest-initiated connection from guest port gport to host port hport, accepted by the
 * host; returns the host's socket. */
static int open_from_guest(struct mux_fixture *f, int lfd, uint32_t gport, uint32_t hport)
{
    struct vsock_hdr h;
    gsend(f, VSOCK_OP_REQUEST, gport, hport, NULL, 0, 0);
    expect_packet(f, &h, VSOCK_OP_RESPONSE, hport, gport);
    assert_int_equal(h.len, 0);
    return host_accept(lfd);
}

/* --- guest-initiated connections ----------------------------------------------------------- */

static void test_guest_connect_refused(void **state)
{
    struct mux_fixture *f = *state;
    struct vsock_hdr h;
    gsend(f, VSOCK_OP_REQUEST, 40000, 6000, NULL, 0, 0); /* nobody at <path>_6000 */
    expect_packet(f, &h, VSOCK_OP_RST, 6000, 40000);
    expect_nothing(f);
    assert_int_equal(nr_conns(f), 0);
    /* A socket file nobody listens on refuses too. */
    int lfd = host_listen(f, 6001, 1);
    close(lfd);
    gsend(f, VSOCK_OP_REQUEST, 40001, 6001, NULL, 0, 0);
    expect_packet(f, &h, VSOCK_OP_RST, 6001, 40001);
    assert_int_equal(nr_conns(f), 0);
}

static void test_guest_connect_data_both_ways(void **state)
{
    struct mux_fixture *f = *state;
    int lfd = host_listen(f, 6000, 4);
    int hfd = open_from_guest(f, lfd, 40000, 6000);
    assert_int_equal(nr_conns(f), 1);
    /* Guest to host: straight through. */
    gsend(f, VSOCK_OP_RW, 40000, 6000, "hello host", 10, 0);
    char buf[64];
    host_read_exact(f, hfd, buf, 10);
    assert_memory_equal(buf, "hello host", 10);
    /* Host to guest: read into the guest's buffer when the loop says the socket is readable. */
    host_write(hfd, "hello guest", 11);
    unsigned before = f->rx_ready;
    pump(f);
    assert_true(f->rx_ready > before);
    struct vsock_hdr h;
    uint8_t data[64];
    assert_true(grecv(f, &h, data, sizeof(data)));
    assert_int_equal(h.op, VSOCK_OP_RW);
    assert_int_equal(h.len, 11);
    assert_memory_equal(data, "hello guest", 11);
    assert_int_equal(h.fwd_cnt, 10); /* what the host took from the guest */
    expect_nothing(f);
    /* An unknown op and a REQUEST on a live pair are dropped; the connection carries on. */
    gsend(f, 99, 40000, 6000, NULL, 0, 0);
    gsend(f, VSOCK_OP_REQUEST, 40000, 6000, NULL, 0, 0);
    gsend(f, VSOCK_OP_CREDIT_UPDATE, 40000, 6000, NULL, 0, 0);
    expect_nothing(f);
    /* A credit request gets an update. */
    gsend(f, VSOCK_OP_CREDIT_REQUEST, 40000, 6000, NULL, 0, 0);
    expect_packet(f, &h, VSOCK_OP_CREDIT_UPDATE, 6000, 40000);
    assert_int_equal(h.fwd_cnt, 10);
    /* The guest resets: the host sees EOF, the slot is free. */
    gsend(f, VSOCK_OP_RST, 40000, 6000, NULL, 0, 0);
    assert_true(host_sees_eof(hfd));
    assert_int_equal(nr_conns(f), 0);
    expect_nothing(f);
    close(hfd);
    close(lfd);
}

/* The guest's credit bounds what we read for it; CREDIT_REQUEST when it runs out. */
static void test_host_to_guest_credit(void **state)
{
    struct mux_fixture *f = *state;
    int lfd = host_listen(f, 6000, 4);
    f->buf_alloc = 1000;
    int hfd = open_from_guest(f, lfd, 40000, 6000);
    static uint8_t big[5000], got[5000];
    for (unsigned i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)(i * 7);
    host_write(hfd, big, sizeof(big));
    pump(f);
    struct vsock_hdr h;
    size_t total = 0;
    assert_true(grecv(f, &h, got, 300)); /* a small receive buffer: 300 */
    assert_int_equal(h.op, VSOCK_OP_RW);
    assert_int_equal(h.len, 300);
    total += h.len;
    assert_true(grecv(f, &h, got + total, 4096)); /* the credit left: 700 */
    assert_int_equal(h.op, VSOCK_OP_RW);
    assert_int_equal(h.len, 700);
    total += h.len;
    expect_packet(f, &h, VSOCK_OP_CREDIT_REQUEST, 6000, 40000);
    expect_nothing(f); /* asked once */
    pump(f);
    expect_nothing(f);
    /* The guest consumed 1000 and says so: another 1000. */
    f->fwd_cnt = 1000;
    gsend(f, VSOCK_OP_CREDIT_UPDATE, 40000, 6000, NULL, 0, 0);
    assert_true(grecv(f, &h, got + total, 4096));
    assert_int_equal(h.op, VSOCK_OP_RW);
    assert_int_equal(h.len, 1000);
    total += h.len;
    /* A guest whose numbers make no sense (fwd_cnt beyond what it got) gets nothing more. */
    f->fwd_cnt = 0x80000000u;
    f->buf_alloc = 0;
    gsend(f, VSOCK_OP_CREDIT_UPDATE, 40000, 6000, NULL, 0, 0);
    expect_packet(f, &h, VSOCK_OP_CREDIT_REQUEST, 6000, 40000);
    expect_nothing(f);
    /* A big window: the rest, 64 KiB at most per packet anyway. */
    f->fwd_cnt = 2000;
    f->buf_alloc = 1 << 20;
    gsend(f, VSOCK_OP_CREDIT_UPDATE, 40000, 6000, NULL, 0, 0);
    while (total < sizeof(big)) {
        assert_true(grecv(f, &h, got + total, (uint32_t)(sizeof(got) - total)));
        assert_int_equal(h.op, VSOCK_OP_RW);
        total += h.len;
    }
    assert_memory_equal(got, big, sizeof(big));
    close(hfd);
    close(lfd);
}

/* Half-close both ways, then both sides done: SHUTDOWN(RCV|SEND), the guest's RST ends it. */
static void test_half_close(void **state)
{
    struct mux_fixture *f = *state;
    int lfd = host_listen(f, 6000, 4);
    int hfd = open_from_guest(f, lfd, 40000, 6000);
    gsend(f, VSOCK_OP_RW, 40000, 6000, "request", 7, 0);
    gsend(f, VSOCK_OP_SHUTDOWN, 40000, 6000, NULL, 0, VSOCK_SHUTDOWN_SEND);
    char buf[16];
    host_read_exact(f, hfd, buf, 7);
    assert_true(host_sees_eof(hfd)); /* the guest's SHUT_WR reached the host */
    host_write(hfd, "reply", 5);
    assert_int_equal(shutdown(hfd, SHUT_WR), 0);
    pump(f);
    struct vsock_hdr h;
    uint8_t data[64];
    assert_true(grecv(f, &h, data, sizeof(data)));
    assert_int_equal(h.op, VSOCK_OP_RW);
    assert_int_equal(h.len, 5);
    assert_memory_equal(data, "reply", 5);
    pump(f);
    expect_packet(f, &h, VSOCK_OP_SHUTDOWN, 6000, 40000);
    assert_int_equal(h.flags, VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND);
    expect_nothing(f);
    gsend(f, VSOCK_OP_RST, 40000, 6000, NULL, 0, 0);
    assert_int_equal(nr_conns(f), 0);
    close(hfd);
    close(lfd);
}

/* The host writes and closes before the guest reads: the data still arrives, then
 * SHUTDOWN(RCV|SEND); with no RST from the guest within 2 s, we reset. */
static void test_host_hangs_up_with_data(void **state)
{
    struct mux_fixture *f = *state;
    int lfd = host_listen(f, 6000, 4);
    f->buf_alloc = 600;
    int hfd = open_from_guest(f, lfd, 40000, 6000);
    static uint8_t big[1500], got[1500];
    memset(big, 0x5a, sizeof(big));
    host_write(hfd, big, sizeof(big));
    close(hfd);
    pump(f); /* the hang-up takes the socket out of the loop */
    pump(f);
    struct vsock_hdr h;
    size_t total = 0;
    for (int i = 0; i < 10 && total < sizeof(big); i++) {
        assert_true(grecv(f, &h, got + total, 256));
        if (h.op == VSOCK_OP_CREDIT_REQUEST) {
            f->fwd_cnt = (uint32_t)total;
            gsend(f, VSOCK_OP_CREDIT_UPDATE, 40000, 6000, NULL, 0, 0);
            continue;
        }
        assert_int_equal(h.op, VSOCK_OP_RW);
        total += h.len;
    }
    assert_int_equal(total, sizeof(big));
    assert_memory_equal(got, big, sizeof(big));
    expect_packet(f, &h, VSOCK_OP_SHUTDOWN, 6000, 40000);
    assert_int_equal(h.flags, VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND);
    expect_nothing(f);
    f->fm.now_ns += VSOCK_TIMEOUT_NS;
    assert_true(fake_run_timers(&f->fm) >= 1);
    expect_packet(f, &h, VSOCK_OP_RST, 6000, 40000);
    assert_int_equal(nr_conns(f), 0);
    close(lfd);
}

/* A host that never reads: the guest may fill our buffer up to its credit, no further; more
 * is a violation and resets the connection. Our memory stays bounded either way. */
static void test_guest_ignores_credit(void **state)
{
    struct mux_fixture *f = *state;
    int lfd = host_listen(f, 6000, 4);
    int hfd = open_from_guest(f, lfd, 40000, 6000);
    static uint8_t chunk[VSOCK_MAX_PKT];
    memset(chunk, 0xab, sizeof(chunk));
    uint64_t sent = 0;
    uint32_t fwd_seen = 0;
    struct vsock_hdr h;
    bool reset = false;
    for (int i = 0; i < 200 && !reset; i++) {
        gsend(f, VSOCK_OP_RW, 40000, 6000, chunk, sizeof(chunk), 0);
        sent += sizeof(chunk);
        uint8_t buf[64];
        while (grecv(f, &h, buf, sizeof(buf))) {
            if (h.op == VSOCK_OP_RST) {
                reset = true;
                break;
            }
            assert_int_equal(h.op, VSOCK_OP_CREDIT_UPDATE);
            fwd_seen = h.fwd_cnt;
        }
    }
    assert_true(reset);
    /* Only once more than our buffer was waiting (fwd_seen <= what the host really took). */
    assert_true(sent > (uint64_t)fwd_seen + VSOCK_CONN_BUF);
    assert_int_equal(nr_conns(f), 0);
    close(hfd);
    close(lfd);
}

/* A slow host: data waits in our buffer and goes out on EPOLLOUT, in order; the guest hears
 * of the space freed (CREDIT_UPDATE). */
static void test_slow_host_reader(void **state)
{
    struct mux_fixture *f = *state;
    int lfd = host_listen(f, 6000, 4);
    int hfd = open_from_guest(f, lfd, 40000, 6000);
    enum { TOTAL = VSOCK_CONN_BUF };
    static uint8_t data[TOTAL], got[TOTAL];
    for (unsigned i = 0; i < TOTAL; i++)
        data[i] = (uint8_t)(i * 31 + (i >> 9));
    for (unsigned off = 0; off < TOTAL; off += VSOCK_MAX_PKT)
        gsend(f, VSOCK_OP_RW, 40000, 6000, data + off, VSOCK_MAX_PKT, 0);
    host_read_exact(f, hfd, got, TOTAL);
    assert_memory_equal(got, data, TOTAL);
    pump(f);
    struct vsock_hdr h;
    expect_packet(f, &h, VSOCK_OP_CREDIT_UPDATE, 6000, 40000);
    assert_int_equal(h.fwd_cnt, TOTAL);
    expect_nothing(f);
    close(hfd);
    close(lfd);
}

/* The guest closes both ways while data still waits for a slow host: it is flushed, then RST. */
static void test_guest_close_flushes(void **state)
{
    struct mux_fixture *f = *state;
    int lfd = host_listen(f, 6000, 4);
    int hfd = open_from_guest(f, lfd, 40000, 6000);
    static uint8_t data[VSOCK_CONN_BUF], got[VSOCK_CONN_BUF];
    memset(data, 0x77, sizeof(data));
    for (unsigned off = 0; off < sizeof(data); off += VSOCK_MAX_PKT)
        gsend(f, VSOCK_OP_RW, 40000, 6000, data + off, VSOCK_MAX_PKT, 0);
    gsend(f, VSOCK_OP_SHUTDOWN, 40000, 6000, NULL, 0, VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND);
    host_read_exact(f, hfd, got, sizeof(got));
    assert_memory_equal(got, data, sizeof(data));
    assert_true(host_sees_eof(hfd));
    struct vsock_hdr h;
    expect_packet(f, &h, VSOCK_OP_RST, 6000, 40000);
    assert_int_equal(nr_conns(f), 0);
    close(hfd);
    close(lfd);
}

/* --- stray and malformed packets ------------------------------------------------------------ */

static void test_stray_packets(void **state)
{
    struct mux_fixture *f = *state;
    struct vsock_hdr h;
    gsend(f, VSOCK_OP_RW, 40000, 7000, "x", 1, 0); /* not connected: RST */
    expect_packet(f, &h, VSOCK_OP_RST, 7000, 40000);
    gsend(f, VSOCK_OP_SHUTDOWN, 40000, 7000, NULL, 0, 3);
    expect_packet(f, &h, VSOCK_OP_RST, 7000, 40000);
    gsend(f, VSOCK_OP_RESPONSE, 40000, LOCAL0, NULL, 0, 0);
    expect_packet(f, &h, VSOCK_OP_RST, LOCAL0, 40000);
    gsend(f, 0xffff, 40000, 7000, NULL, 0, 0); /* unknown op */
    expect_packet(f, &h, VSOCK_OP_RST, 7000, 40000);
    gsend(f, VSOCK_OP_RST, 40000, 7000, NULL, 0, 0); /* an RST is never answered */
    expect_nothing(f);
    /* Not addressed to the host, or not from the guest's CID: dropped silently. */
    struct vsock_hdr bad = {.src_cid = GUEST_CID,
                            .dst_cid = 5,
                            .src_port = 1,
                            .dst_port = 2,
                            .type = VSOCK_TYPE_STREAM,
                            .op = VSOCK_OP_REQUEST};
    gsend_full(f, &bad, NULL);
    bad.dst_cid = VSOCK_HOST_CID | (1ULL << 32);
    gsend_full(f, &bad, NULL);
    bad.dst_cid = VSOCK_HOST_CID;
    bad.src_cid = 4;
    gsend_full(f, &bad, NULL);
    expect_nothing(f);
    /* Not a stream (SEQPACKET is not offered): RST. */
    bad.src_cid = GUEST_CID;
    bad.type = 2;
    gsend_full(f, &bad, NULL);
    expect_packet(f, &h, VSOCK_OP_RST, 2, 1);
    assert_int_equal(nr_conns(f), 0);
}

/* Impossible lengths and wrong types on a live connection reset it (the host sees EOF). */
static void test_malformed_on_connection(void **state)
{
    struct mux_fixture *f = *state;
    int lfd = host_listen(f, 6000, 4);
    struct vsock_hdr h;
    int hfd = open_from_guest(f, lfd, 40000, 6000);
    struct vsock_hdr bad = {.src_cid = GUEST_CID,
                            .dst_cid = VSOCK_HOST_CID,
                            .src_port = 40000,
                            .dst_port = 6000,
                            .len = 1u << 30,
                            .type = VSOCK_TYPE_STREAM,
                            .op = VSOCK_OP_RW};
    vsock_mux_lock(f->mux);
    vsock_mux_send_malformed(f->mux, &bad);
    vsock_mux_unlock(f->mux);
    expect_packet(f, &h, VSOCK_OP_RST, 6000, 40000);
    assert_true(host_sees_eof(hfd));
    assert_int_equal(nr_conns(f), 0);
    close(hfd);
    hfd = open_from_guest(f, lfd, 40001, 6000);
    bad.src_port = 40001;
    bad.len = 0;
    bad.type = 7;
    gsend_full(f, &bad, NULL);
    expect_packet(f, &h, VSOCK_OP_RST, 6000, 40001);
    assert_true(host_sees_eof(hfd));
    close(hfd);
    /* Malformed on nothing: RST to the sender's ports. */
    bad.src_port = 1234;
    vsock_mux_lock(f->mux);
    vsock_mux_send_malformed(f->mux, &bad);
    vsock_mux_unlock(f->mux);
    expect_packet(f, &h, VSOCK_OP_RST, 6000, 1234);
    assert_int_equal(nr_conns(f), 0);
    close(lfd);
}

/* A guest that sends junk and posts no receive buffers: at most VSOCK_RSTQ_SIZE replies wait. */
static void test_reset_queue_bounded(void **state)
{
    struct mux_fixture *f = *state;
    for (unsigned i = 0; i < 10 * VSOCK_RSTQ_SIZE; i++)
        gsend(f, VSOCK_OP_RW, 30000 + i, 9, "j", 1, 0);
    struct vsock_hdr h;
    for (unsigned i = 0; i < VSOCK_RSTQ_SIZE; i++)
        expect_packet(f, &h, VSOCK_OP_RST, 9, 30000 + i);
    expect_nothing(f);
}

/* --- host-initiated connections ------------------------------------------------------------- */

/* The host connects and sends the line (and maybe data after it); the guest hears REQUEST. */
static int open_from_host(struct mux_fixture *f, const char *line, uint32_t local, uint32_t port)
{
    int hfd = host_connect(f);
    host_write(hfd, line, strlen(line));
    pump(f);
    struct vsock_hdr h;
    expect_packet(f, &h, VSOCK_OP_REQUEST, local, port);
    assert_int_equal(h.len, 0);
    return hfd;
}

static void test_host_connect(void **state)
{
    struct mux_fixture *f = *state;
    int hfd = open_from_host(f, "CONNECT 5000\nearly data", LOCAL0, 5000);
    expect_nothing(f);
    /* The guest accepts: the host reads its port, then the data flows. */
    gsend(f, VSOCK_OP_RESPONSE, 5000, LOCAL0, NULL, 0, 0);
    char line[32] = "";
    host_read_exact(f, hfd, line, strlen("OK 1073741824\n"));
    assert_string_equal(line, "OK 1073741824\n");
    pump(f);
    struct vsock_hdr h;
    uint8_t data[64];
    assert_true(grecv(f, &h, data, sizeof(data)));
    assert_int_equal(h.op, VSOCK_OP_RW);
    assert_int_equal(h.len, 10);
    assert_memory_equal(data, "early data", 10); /* nothing after the newline was lost */
    gsend(f, VSOCK_OP_RW, 5000, LOCAL0, "pong", 4, 0);
    host_read_exact(f, hfd, data, 4);
    assert_memory_equal(data, "pong", 4);
    /* A second host connection gets the next port; the line may come in pieces. */
    int h2 = host_connect(f);
    host_write(h2, "con", 3);
    pump(f);
    expect_nothing(f);
    host_write(h2, "nect 5001\n", 10);
    pump(f);
    expect_packet(f, &h, VSOCK_OP_REQUEST, LOCAL0 + 1, 5001);
    assert_int_equal(nr_conns(f), 2);
    /* The guest refuses it: the host end is closed, nothing said. */
    gsend(f, VSOCK_OP_RST, 5001, LOCAL0 + 1, NULL, 0, 0);
    assert_true(host_sees_eof(h2));
    assert_int_equal(nr_conns(f), 1);
    /* The host closes the first: the guest hears SHUTDOWN, answers RST. */
    close(hfd);
    pump(f);
    expect_packet(f, &h, VSOCK_OP_SHUTDOWN, LOCAL0, 5000);
    assert_int_equal(h.flags, VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND);
    gsend(f, VSOCK_OP_RST, 5000, LOCAL0, NULL, 0, 0);
    assert_int_equal(nr_conns(f), 0);
    close(h2);
}

static void test_host_connect_bad_lines(void **state)
{
    struct mux_fixture *f = *state;
    static const char *const bad[] = {
        "HELLO 5000\n",
        "CONNECT\n",
        "CONNECT x\n",
        "CONNECT 99999999999\n",
        "CONNECT 1 2 3 4 5 6 7 8 9 10 11 12 13", /* 32 bytes, no newline */
    };
    for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int hfd = host_connect(f);
        host_write(hfd, bad[i], strlen(bad[i]));
        pump(f);
        if (!host_sees_close(hfd))
            fail_msg("'%s' was not refused", bad[i]);
        close(hfd);
    }
    /* A host that closes before its line is complete. */
    int hfd = host_connect(f);
    host_write(hfd, "CONNECT 5", 9);
    close(hfd);
    pump(f);
    expect_nothing(f);
    assert_int_equal(nr_conns(f), 0);
    /* Lowercase is fine (Firecracker's parser). */
    hfd = open_from_host(f, "connect 77\n", LOCAL0, 77);
    close(hfd);
}

/* The guest never answers a REQUEST: after 2 s it hears RST and the host end closes. */
static void test_host_connect_timeout(void **state)
{
    struct mux_fixture *f = *state;
    int hfd = open_from_host(f, "CONNECT 5000\n", LOCAL0, 5000);
    f->fm.now_ns += VSOCK_TIMEOUT_NS - 1;
    fake_run_timers(&f->fm);
    expect_nothing(f);
    f->fm.now_ns += 1;
    assert_true(fake_run_timers(&f->fm) >= 1);
    struct vsock_hdr h;
    expect_packet(f, &h, VSOCK_OP_RST, LOCAL0, 5000);
    assert_true(host_sees_eof(hfd));
    assert_int_equal(nr_conns(f), 0);
    close(hfd);
}

/* --- bounds and lifecycle ------------------------------------------------------------------- */

/* VSOCK_MAX_CONNS connections at most: one more from the guest gets RST, one more from the
 * host is closed at once. A reset closes them all. */
static void test_connection_table_bound(void **state)
{
    struct mux_fixture *f = *state;
    int lfd = host_listen(f, 6000, VSOCK_MAX_CONNS + 16);
    struct vsock_hdr h;
    for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
        gsend(f, VSOCK_OP_REQUEST, 10000 + i, 6000, NULL, 0, 0);
        expect_packet(f, &h, VSOCK_OP_RESPONSE, 6000, 10000 + i);
    }
    assert_int_equal(nr_conns(f), VSOCK_MAX_CONNS);
    gsend(f, VSOCK_OP_REQUEST, 20000, 6000, NULL, 0, 0);
    expect_packet(f, &h, VSOCK_OP_RST, 6000, 20000);
    int hfd = host_connect(f);
    pump(f);
    assert_true(host_sees_eof(hfd));
    close(hfd);
    expect_nothing(f);
    /* One goes; the next fits. */
    gsend(f, VSOCK_OP_RST, 10000, 6000, NULL, 0, 0);
    gsend(f, VSOCK_OP_REQUEST, 20000, 6000, NULL, 0, 0);
    expect_packet(f, &h, VSOCK_OP_RESPONSE, 6000, 20000);
    int first = host_accept(lfd);
    vsock_mux_lock(f->mux);
    vsock_mux_stop(f->mux);
    vsock_mux_unlock(f->mux);
    assert_int_equal(nr_conns(f), 0);
    expect_nothing(f);
    char c;
    assert_int_equal(read(first, &c, 1), 0);
    close(first);
    close(lfd);
    vsock_mux_lock(f->mux);
    vsock_mux_start(f->mux);
    vsock_mux_unlock(f->mux);
}

/* Before start (no driver) host connections wait in the backlog; after stop, too. */
static void test_accept_only_while_started(void **state)
{
    struct mux_fixture *f = *state;
    vsock_mux_lock(f->mux);
    vsock_mux_stop(f->mux);
    vsock_mux_unlock(f->mux);
    int hfd = host_connect(f);
    host_write(hfd, "CONNECT 5000\n", 13);
    pump(f);
    expect_nothing(f);
    assert_int_equal(nr_conns(f), 0);
    vsock_mux_lock(f->mux);
    vsock_mux_start(f->mux);
    vsock_mux_unlock(f->mux);
    pump(f);
    struct vsock_hdr h;
    expect_packet(f, &h, VSOCK_OP_REQUEST, LOCAL0, 5000);
    close(hfd);
}

/* Out of file descriptors: accept fails, the listener sits out 100 ms (no busy loop on a
 * listener that stays readable), then the waiting host connections are taken. */
static void test_accept_pauses_without_fds(void **state)
{
    struct mux_fixture *f = *state;
    int hfd = host_connect(f);
    host_write(hfd, "CONNECT 5000\n", 13);
    struct rlimit saved;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved), 0);
    int lowest = dup(0); /* every number below it is in use */
    assert_true(lowest >= 0);
    close(lowest);
    struct rlimit tight = {(rlim_t)lowest, saved.rlim_max};
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &tight), 0);
    int ran = event_loop_run_once(f->loop, 5 * 1000000LL); /* the listener: EMFILE */
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved), 0);
    assert_int_equal(ran, 1);
    assert_int_equal(event_loop_run_once(f->loop, 5 * 1000000LL), 0); /* out of the loop */
    expect_nothing(f);
    f->fm.now_ns += 100 * 1000000ULL;
    assert_true(fake_run_timers(&f->fm) >= 1);
    pump(f);
    struct vsock_hdr h;
    expect_packet(f, &h, VSOCK_OP_REQUEST, LOCAL0, 5000);
    close(hfd);
}

/* --- creation errors ------------------------------------------------------------------------ */

static int try_new(struct mux_fixture *f, const char *path, char *err, size_t errlen)
{
    struct vsock_mux *m = vsock_mux_new(&f->fm.host, GUEST_CID, path, on_rx_ready, f, err, errlen);
    if (!m)
        return -1;
    vsock_mux_free(m);
    return 0;
}

static void expect_new_error(struct mux_fixture *f, const char *path, const char *needle)
{
    char err[512] = "";
    assert_int_equal(try_new(f, path, err, sizeof(err)), -1);
    if (!strstr(err, needle))
        fail_msg("'%s': got \"%s\", wanted \"%s\"", path, err, needle);
}

static void test_create_errors(void **state)
{
    struct mux_fixture *f = *state;
    char path[80], msg[256];
    snprintf(path, sizeof(path), "%s/nodir/v.sock", f->dir);
    snprintf(msg, sizeof(msg), "directory '%s/nodir' does not exist", f->dir);
    expect_new_error(f, path, msg);
    snprintf(path, sizeof(path), "%s/file", f->dir);
    close(open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
    expect_new_error(f, path, "exists and is not a socket");
    expect_new_error(f, f->path, "is in use by another process"); /* the fixture's own */
    char longp[200];
    memset(longp, 'a', sizeof(longp) - 1);
    longp[0] = '/';
    longp[sizeof(longp) - 1] = '\0';
    expect_new_error(f, longp, "is too long");
    /* A stale socket (nobody listening) is replaced; the file goes with the mux. */
    snprintf(path, sizeof(path), "%s/stale.sock", f->dir);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(fd);
    char err[256] = "";
    if (try_new(f, path, err, sizeof(err)) < 0)
        fail_msg("stale socket: %s", err);
    struct stat st;
    assert_int_equal(lstat(path, &st), -1);
    /* A relative path works too (the directory is "."). */
    char cwd[256];
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    assert_int_equal(chdir(f->dir), 0);
    if (try_new(f, "rel.sock", err, sizeof(err)) < 0)
        fail_msg("relative path: %s", err);
    assert_int_equal(chdir(cwd), 0);
}

/* --- the device through virtio-pci ---------------------------------------------------------- */

#define RAM_SIZE (32ULL << 20)
#define RING_GPA(q) (0x10000ULL + 0x10000ULL * (q))
#define DATA_GPA 0x200000ULL
#define QSIZE 64
#define CAP_COMMON 1
#define CAP_NOTIFY 2
#define CAP_DEVICE 4
#define CC_DF_SELECT 0x00
#define CC_DF 0x04
#define CC_GF_SELECT 0x08
#define CC_GF 0x0c
#define CC_STATUS 0x14
#define CC_Q_SELECT 0x16
#define CC_Q_SIZE 0x18
#define CC_Q_ENABLE 0x1c
#define CC_Q_DESC 0x20
#define CC_Q_DRIVER 0x28
#define CC_Q_DEVICE 0x30
#define STATUS_NEEDS_RESET 0x40
#define DESC_F_NEXT 1
#define DESC_F_WRITE 2

struct dev_fixture {
    struct pci_fake_machine pf;
    struct guest_memory mem;
    struct dma_space dma;
    struct event_loop *loop;
    struct pci_bus *pci;
    const struct device_model *model;
    void *state;
    unsigned slot;
    uint64_t common, devcfg, notify;
    uint32_t notify_mult;
    uint64_t data_next;
    struct {
        uint16_t size, avail_idx, next_desc;
    } q[3];
    char dir[40], path[80];
};

static int dev_setup(void **state)
{
    struct dev_fixture *f = calloc(1, sizeof(*f));
    char err[256];
    assert_non_null(f);
    pci_fake_machine_init(&f->pf);
    fake_machine_enable_timers(&f->pf.fm);
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
    snprintf(f->dir, sizeof(f->dir), "/tmp/qk-vsockdev-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/v.sock", f->dir);
    *state = f;
    return 0;
}

static int dev_teardown(void **state)
{
    struct dev_fixture *f = *state;
    if (f->state)
        f->model->destroy(f->state);
    pci_bus_free(f->pci);
    event_loop_free(f->loop);
    guest_memory_destroy(&f->mem);
    pci_fake_machine_destroy(&f->pf);
    remove_dir(f->dir);
    free(f);
    return 0;
}

static void dpump(struct dev_fixture *f)
{
    for (int i = 0; i < 200 && event_loop_run_once(f->loop, 5 * 1000000LL) > 0; i++)
        ;
}

static uint8_t *gmem(struct dev_fixture *f, uint64_t gpa, uint64_t len)
{
    void *p = gpa_to_host(&f->mem, gpa, len);
    assert_non_null(p);
    return p;
}

static uint64_t galloc(struct dev_fixture *f, uint64_t len)
{
    uint64_t gpa = f->data_next;
    f->data_next = (f->data_next + len + 15) & ~15ULL;
    assert_true(f->data_next <= RAM_SIZE);
    return gpa;
}

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

static int try_create(struct dev_fixture *f, const char *text, void **state, char *err,
                      size_t errlen)
{
    f->model = device_model_find("virtio-vsock");
    assert_non_null(f->model);
    struct opts o;
    if (opts_parse(&o, text, "--vsock", f->model->option_keys, f->model->implied_key, err, errlen) <
        0)
        return -1;
    struct device_args args = {.instance = 0, .opts = &o, .console = NULL};
    int rc = f->model->create(&f->pf.fm.host, &args, state, err, errlen);
    opts_free(&o);
    return rc;
}

static uint32_t cfg_read(struct dev_fixture *f, unsigned reg, unsigned size)
{
    return pci_ecam_read(&f->pf, f->slot, reg, size);
}

static uint64_t bar_address(struct dev_fixture *f, unsigned bar)
{
    uint32_t lo = cfg_read(f, PCI_BAR0 + 4 * bar, 4);
    uint64_t addr = lo & ~0xfULL;
    if ((lo & 6) == 4)
        addr |= (uint64_t)cfg_read(f, PCI_BAR0 + 4 * bar + 4, 4) << 32;
    return addr;
}

static void create_dev(struct dev_fixture *f, const char *text)
{
    char err[512] = "";
    if (try_create(f, text, &f->state, err, sizeof(err)) < 0)
        fail_msg("creating virtio-vsock (%s): %s", text, err);
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
        if (type == CAP_COMMON)
            f->common = at;
        else if (type == CAP_NOTIFY) {
            f->notify = at;
            f->notify_mult = cfg_read(f, cap + 16, 4);
        } else if (type == CAP_DEVICE)
            f->devcfg = at;
    }
    assert_true(f->common && f->notify && f->devcfg);
}

static void cc_write(struct dev_fixture *f, unsigned off, unsigned size, uint64_t v)
{
    pci_mmio_write(&f->pf, f->common + off, size, v);
}

static uint64_t cc_read(struct dev_fixture *f, unsigned off, unsigned size)
{
    return pci_mmio_read(&f->pf, f->common + off, size);
}

static uint64_t device_features(struct dev_fixture *f)
{
    cc_write(f, CC_DF_SELECT, 4, 0);
    uint64_t lo = cc_read(f, CC_DF, 4);
    cc_write(f, CC_DF_SELECT, 4, 1);
    return lo | cc_read(f, CC_DF, 4) << 32;
}

static void driver_init(struct dev_fixture *f)
{
    cc_write(f, CC_STATUS, 1, 0);
    cc_write(f, CC_STATUS, 1, 1 | 2);
    uint64_t accept =
        device_features(f) & (1ULL << VIRTIO_F_VERSION_1 | 1ULL << VIRTIO_F_EVENT_IDX);
    cc_write(f, CC_GF_SELECT, 4, 0);
    cc_write(f, CC_GF, 4, (uint32_t)accept);
    cc_write(f, CC_GF_SELECT, 4, 1);
    cc_write(f, CC_GF, 4, (uint32_t)(accept >> 32));
    cc_write(f, CC_STATUS, 1, 1 | 2 | 8);
    for (unsigned q = 0; q < 3; q++) {
        memset(gmem(f, RING_GPA(q), 0x10000), 0, 0x10000);
        cc_write(f, CC_Q_SELECT, 2, q);
        f->q[q].size = QSIZE;
        f->q[q].avail_idx = f->q[q].next_desc = 0;
        cc_write(f, CC_Q_SIZE, 2, QSIZE);
        cc_write(f, CC_Q_DESC, 8, RING_GPA(q));
        cc_write(f, CC_Q_DRIVER, 8, RING_GPA(q) + 0x4000);
        cc_write(f, CC_Q_DEVICE, 8, RING_GPA(q) + 0x8000);
        cc_write(f, CC_Q_ENABLE, 2, 1);
    }
    cc_write(f, CC_STATUS, 1, 1 | 2 | 8 | 4);
    assert_int_equal(cc_read(f, CC_STATUS, 1) & STATUS_NEEDS_RESET, 0);
}

struct seg {
    uint64_t gpa;
    uint32_t len;
    bool writable;
};

static void post(struct dev_fixture *f, unsigned qi, const struct seg *segs, unsigned n)
{
    uint16_t head = f->q[qi].next_desc, size = f->q[qi].size;
    for (unsigned i = 0; i < n; i++) {
        uint16_t d = (uint16_t)((head + i) % size);
        uint8_t *desc = gmem(f, RING_GPA(qi) + 16ULL * d, 16);
        put_le(desc, segs[i].gpa, 8);
        put_le(desc + 8, segs[i].len, 4);
        put_le(desc + 12, (segs[i].writable ? DESC_F_WRITE : 0) | (i + 1 < n ? DESC_F_NEXT : 0), 2);
        put_le(desc + 14, (head + i + 1) % size, 2);
    }
    f->q[qi].next_desc = (uint16_t)((head + n) % size);
    uint64_t avail = RING_GPA(qi) + 0x4000;
    put_le(gmem(f, avail + 4 + 2ULL * (f->q[qi].avail_idx % size), 2), head, 2);
    f->q[qi].avail_idx++;
    put_le(gmem(f, avail + 2, 2), f->q[qi].avail_idx, 2);
}

static void kick(struct dev_fixture *f, unsigned qi)
{
    pci_mmio_write(&f->pf, f->notify + qi * f->notify_mult, 2, qi);
}

static uint16_t used_idx(struct dev_fixture *f, unsigned qi)
{
    return (uint16_t)get_le(gmem(f, RING_GPA(qi) + 0x8000 + 2, 2), 2);
}

static uint32_t used_len(struct dev_fixture *f, unsigned qi, uint16_t i)
{
    return (uint32_t)get_le(gmem(f, RING_GPA(qi) + 0x8000 + 4 + 8ULL * (i % QSIZE) + 4, 4), 4);
}

/* A header in guest memory. */
static uint64_t make_hdr(struct dev_fixture *f, uint16_t op, uint32_t src_port, uint32_t dst_port,
                         uint32_t len)
{
    struct vsock_hdr h = {.src_cid = 7,
                          .dst_cid = VSOCK_HOST_CID,
                          .src_port = src_port,
                          .dst_port = dst_port,
                          .len = len,
                          .type = VSOCK_TYPE_STREAM,
                          .op = op,
                          .buf_alloc = 256 * 1024};
    uint64_t gpa = galloc(f, VSOCK_HDR_SIZE);
    vsock_hdr_encode(&h, gmem(f, gpa, VSOCK_HDR_SIZE));
    return gpa;
}

/* A receive buffer as Linux 6.1 posts them: header and data in two descriptors (contiguous
 * here, so the payload is at the returned address + VSOCK_HDR_SIZE). */
static uint64_t post_rx(struct dev_fixture *f, uint32_t data_len)
{
    uint64_t hdr = galloc(f, VSOCK_HDR_SIZE + data_len);
    struct seg s[2] = {{hdr, VSOCK_HDR_SIZE, true}, {hdr + VSOCK_HDR_SIZE, data_len, true}};
    post(f, 0, s, 2);
    return hdr;
}

static struct vsock_hdr rx_hdr(struct dev_fixture *f, uint64_t gpa)
{
    struct vsock_hdr h;
    vsock_hdr_decode(gmem(f, gpa, VSOCK_HDR_SIZE), &h);
    return h;
}

static int dev_host_listen(struct dev_fixture *f, uint32_t port)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s_%u", f->path, port);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, 4), 0);
    return fd;
}

static void test_device(void **state)
{
    struct dev_fixture *f = *state;
    char text[256];
    snprintf(text, sizeof(text), "cid=7,path=%s", f->path);
    create_dev(f, text);
    assert_int_equal(cfg_read(f, PCI_DEVICE_ID, 2), 0x1040 + VIRTIO_ID_VSOCK);
    /* No device-specific features (stream only), guest_cid in the config, read-only. */
    assert_int_equal(device_features(f) & 0xffffffULL, 0);
    assert_int_equal(pci_mmio_read(&f->pf, f->devcfg, 8), 7);
    assert_int_equal(pci_mmio_read(&f->pf, f->devcfg + 4, 4), 0);
    pci_mmio_write(&f->pf, f->devcfg, 4, 9);
    assert_int_equal(pci_mmio_read(&f->pf, f->devcfg, 4), 7);
    driver_init(f);
    int lfd = dev_host_listen(f, 1234);
    uint64_t rx[4];
    for (int i = 0; i < 4; i++)
        rx[i] = post_rx(f, 4096);
    kick(f, 0);
    /* REQUEST with its header split 10 + 34 across descriptors. */
    uint64_t hdr = make_hdr(f, VSOCK_OP_REQUEST, 50000, 1234, 0);
    struct seg req[2] = {{hdr, 10, false}, {hdr + 10, 34, false}};
    post(f, 1, req, 2);
    kick(f, 1);
    assert_int_equal(used_idx(f, 1), 1);
    assert_int_equal(used_len(f, 1, 0), 0);
    assert_int_equal(used_idx(f, 0), 1);
    assert_int_equal(used_len(f, 0, 0), VSOCK_HDR_SIZE);
    struct vsock_hdr h = rx_hdr(f, rx[0]);
    assert_int_equal(h.op, VSOCK_OP_RESPONSE);
    assert_int_equal(h.src_cid, VSOCK_HOST_CID);
    assert_int_equal(h.dst_cid, 7);
    assert_int_equal(h.src_port, 1234);
    assert_int_equal(h.dst_port, 50000);
    int hfd = host_accept(lfd);
    /* RW: header, then the payload in two more descriptors. */
    hdr = make_hdr(f, VSOCK_OP_RW, 50000, 1234, 11);
    uint64_t pay = galloc(f, 11);
    memcpy(gmem(f, pay, 11), "hello world", 11);
    struct seg rw[3] = {{hdr, VSOCK_HDR_SIZE, false}, {pay, 5, false}, {pay + 5, 6, false}};
    post(f, 1, rw, 3);
    kick(f, 1);
    char buf[32];
    assert_int_equal(host_read(hfd, buf, sizeof(buf)), 11);
    assert_memory_equal(buf, "hello world", 11);
    /* Host data lands after the header of the next receive chain. */
    host_write(hfd, "from the host", 13);
    dpump(f);
    assert_int_equal(used_idx(f, 0), 2);
    assert_int_equal(used_len(f, 0, 1), VSOCK_HDR_SIZE + 13);
    h = rx_hdr(f, rx[1]);
    assert_int_equal(h.op, VSOCK_OP_RW);
    assert_int_equal(h.len, 13);
    assert_memory_equal(gmem(f, rx[1] + VSOCK_HDR_SIZE, 13), "from the host", 13);
    assert_int_equal(h.fwd_cnt, 11);
    /* Hostile chains: too short for a header, empty, a length past the chain. */
    uint64_t junk = galloc(f, 64);
    struct seg shorty = {junk, 20, false}, empty = {junk, 0, false};
    post(f, 1, &shorty, 1);
    post(f, 1, &empty, 1);
    kick(f, 1);
    assert_int_equal(used_idx(f, 1), 4);
    assert_int_equal(used_idx(f, 0), 2); /* nothing to answer */
    hdr = make_hdr(f, VSOCK_OP_RW, 50000, 1234, 100);
    struct seg lying[2] = {{hdr, VSOCK_HDR_SIZE, false}, {pay, 10, false}};
    post(f, 1, lying, 2);
    kick(f, 1);
    assert_int_equal(used_idx(f, 1), 5);
    assert_int_equal(used_idx(f, 0), 3);
    h = rx_hdr(f, rx[2]);
    assert_int_equal(h.op, VSOCK_OP_RST);
    assert_int_equal(h.dst_port, 50000);
    assert_int_equal(host_read(hfd, buf, sizeof(buf)), 0); /* the connection is gone */
    close(hfd);
    /* A receive chain with no room for a header comes back empty; the next one gets the
     * packet (an RST for a stray RW). */
    uint64_t tiny = galloc(f, 16);
    struct seg small = {tiny, 16, true};
    post(f, 0, &small, 1);
    uint64_t after = post_rx(f, 4096);
    kick(f, 0);
    hdr = make_hdr(f, VSOCK_OP_RW, 50001, 999, 0);
    struct seg stray = {hdr, VSOCK_HDR_SIZE, false};
    post(f, 1, &stray, 1);
    kick(f, 1);
    /* rx[3] first (still available), then the tiny one, then `after`. */
    assert_int_equal(used_idx(f, 0), 4);
    h = rx_hdr(f, rx[3]);
    assert_int_equal(h.op, VSOCK_OP_RST);
    assert_int_equal(h.src_port, 999);
    post(f, 1, &stray, 1);
    kick(f, 1);
    assert_int_equal(used_idx(f, 0), 6);
    assert_int_equal(used_len(f, 0, 4), 0);
    assert_int_equal(used_len(f, 0, 5), VSOCK_HDR_SIZE);
    assert_int_equal(rx_hdr(f, after).op, VSOCK_OP_RST);
    close(lfd);
}

/* Host-initiated through the device; a reset closes the host end and stops accepting. */
static void test_device_host_connect_and_reset(void **state)
{
    struct dev_fixture *f = *state;
    char text[256];
    snprintf(text, sizeof(text), "cid=7,path=%s", f->path);
    create_dev(f, text);
    driver_init(f);
    uint64_t rx = post_rx(f, 4096);
    kick(f, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->path);
    int hfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_int_equal(connect(hfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    host_write(hfd, "CONNECT 5000\n", 13);
    dpump(f);
    assert_int_equal(used_idx(f, 0), 1);
    struct vsock_hdr h = rx_hdr(f, rx);
    assert_int_equal(h.op, VSOCK_OP_REQUEST);
    assert_int_equal(h.src_port, LOCAL0);
    assert_int_equal(h.dst_port, 5000);
    assert_int_equal(h.dst_cid, 7);
    /* The driver goes away: the host end is closed. */
    cc_write(f, CC_STATUS, 1, 0);
    char c;
    assert_int_equal(host_read(hfd, &c, 1), 0);
    close(hfd);
    /* Destroying the device removes its socket file. */
    f->model->destroy(f->state);
    f->state = NULL;
    struct stat st;
    assert_int_equal(lstat(f->path, &st), -1);
}

static void expect_create_error(struct dev_fixture *f, const char *text, const char *needle)
{
    char err[512] = "";
    void *state = NULL;
    assert_int_equal(try_create(f, text, &state, err, sizeof(err)), -1);
    assert_null(state);
    if (!strstr(err, needle))
        fail_msg("'%s': got \"%s\", wanted \"%s\"", text, err, needle);
}

static void test_device_create_errors(void **state)
{
    struct dev_fixture *f = *state;
    char text[256];
    snprintf(text, sizeof(text), "path=%s", f->path);
    expect_create_error(f, text, "cid=N is required");
    snprintf(text, sizeof(text), "cid=2,path=%s", f->path);
    expect_create_error(f, text, "cid=2 is reserved");
    snprintf(text, sizeof(text), "cid=0,path=%s", f->path);
    expect_create_error(f, text, "cid=0 is reserved");
    snprintf(text, sizeof(text), "cid=abc,path=%s", f->path);
    expect_create_error(f, text, "cid='abc' must be a number from 3 to 4294967294");
    snprintf(text, sizeof(text), "cid=4294967295,path=%s", f->path);
    expect_create_error(f, text, "must be a number from 3");
    expect_create_error(f, "cid=3", "path=SOCK is required");
    expect_create_error(f, "cid=3,path=/nonexistent-dir/v.sock",
                        "directory '/nonexistent-dir' does not exist");
    snprintf(text, sizeof(text), "cid=3,path=%s", f->dir);
    expect_create_error(f, text, "exists and is not a socket");
    /* Nothing was left behind by the failures. */
    struct stat st;
    assert_int_equal(lstat(f->path, &st), -1);
}

#define MUX_TEST(fn) cmocka_unit_test_setup_teardown(fn, mux_setup, mux_teardown)
#define DEV_TEST(fn) cmocka_unit_test_setup_teardown(fn, dev_setup, dev_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_encoding),
        cmocka_unit_test(test_connect_line),
        MUX_TEST(test_guest_connect_refused),
        MUX_TEST(test_guest_connect_data_both_ways),
        MUX_TEST(test_host_to_guest_credit),
        MUX_TEST(test_half_close),
        MUX_TEST(test_host_hangs_up_with_data),
        MUX_TEST(test_guest_ignores_credit),
        MUX_TEST(test_slow_host_reader),
        MUX_TEST(test_guest_close_flushes),
        MUX_TEST(test_stray_packets),
        MUX_TEST(test_malformed_on_connection),
        MUX_TEST(test_reset_queue_bounded),
        MUX_TEST(test_host_connect),
        MUX_TEST(test_host_connect_bad_lines),
        MUX_TEST(test_host_connect_timeout),
        MUX_TEST(test_connection_table_bound),
        MUX_TEST(test_accept_only_while_started),
        MUX_TEST(test_accept_pauses_without_fds),
        MUX_TEST(test_create_errors),
        DEV_TEST(test_device),
        DEV_TEST(test_device_host_connect_and_reset),
        DEV_TEST(test_device_create_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
