/* Unit tests of the networking helpers that need no device: software offloads (checksum
 * completion, TCP segmentation over IPv4/IPv6/VLAN, every malformed header we can think of),
 * the bounded frame queue (order, wrap-around, full), and the option parsers (hostfwd rules,
 * MAC addresses). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "net/frame_queue.h"
#include "net/net.h"
#include "net/offload.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

/* --- building frames ---------------------------------------------------------------------- */

#define MAX_SEGS 2048

struct capture {
    unsigned n;
    size_t len[MAX_SEGS];
    uint8_t *data[MAX_SEGS];
};

static void capture_emit(void *opaque, const uint8_t *frame, size_t len)
{
    struct capture *c = opaque;
    assert_true(c->n < MAX_SEGS);
    c->data[c->n] = malloc(len);
    assert_non_null(c->data[c->n]);
    memcpy(c->data[c->n], frame, len);
    c->len[c->n++] = len;
}

static void capture_free(struct capture *c)
{
    for (unsigned i = 0; i < c->n; i++)
        free(c->data[i]);
    c->n = 0;
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
    put16(p, (uint16_t)(v >> 16));
    put16(p + 2, (uint16_t)v);
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)get16(p) << 16 | get16(p + 2);
}

/* A reference checksum: big-endian 16-bit words, the textbook way. */
static uint32_t ref_sum(uint32_t sum, const uint8_t *p, size_t len)
{
    for (size_t i = 0; i + 1 < len; i += 2)
        sum += (uint32_t)(p[i] << 8 | p[i + 1]);
    if (len & 1)
        sum += (uint32_t)p[len - 1] << 8;
    return sum;
}

static uint16_t ref_fold(uint32_t sum)
{
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)sum;
}

/* Ethernet (+ VLAN) + IPv4/IPv6 + TCP (with 12 bytes of options) + payload; returns length.
 * l3/l4 say where the headers start. */
static size_t build_tcp(uint8_t *f, bool v6, bool vlan, size_t payload, uint8_t flags, size_t *l3,
                        size_t *l4)
{
    memset(f, 0, 128);
    memcpy(f, "\x52\x55\x0a\x00\x02\x02\x52\x54\x00\x12\x34\x56", 12);
    size_t at = 12;
    if (vlan) {
        put16(f + 12, 0x8100);
        put16(f + 14, 5);
        at = 16;
    }
    put16(f + at, v6 ? 0x86dd : 0x0800);
    *l3 = at + 2;
    uint8_t *ip = f + *l3;
    size_t tcp_len = 32 + payload;
    if (v6) {
        ip[0] = 0x60;
        put16(ip + 4, (uint16_t)tcp_len);
        ip[6] = 6;
        ip[7] = 64;
        for (int i = 0; i < 16; i++) {
            ip[8 + i] = (uint8_t)(0xfe + i);
            ip[24 + i] = (uint8_t)(0x20 + i);
        }
        *l4 = *l3 + 40;
    } else {
        ip[0] = 0x45;
        put16(ip + 2, (uint16_t)(20 + tcp_len));
        put16(ip + 4, 0x1234);
        ip[8] = 64;
        ip[9] = 6;
        memcpy(ip + 12, "\x0a\x00\x02\x0f\x0a\x00\x02\x02", 8);
        *l4 = *l3 + 20;
    }
    uint8_t *tcp = f + *l4;
    put16(tcp, 40000);
    put16(tcp + 2, 80);
    put32(tcp + 4, 0xfffff000); /* the sequence number wraps during the test */
    put32(tcp + 8, 77);
    tcp[12] = 8 << 4; /* 32 bytes: 12 of options */
    tcp[13] = flags;
    put16(tcp + 14, 29200);
    memcpy(tcp + 20, "\x01\x01\x08\x0a\x00\x00\x00\x01\x00\x00\x00\x02", 12);
    for (size_t i = 0; i < payload; i++)
        tcp[32 + i] = (uint8_t)(i * 7 + 3);
    return *l4 + 32 + payload;
}

static bool tcp_csum_ok(const uint8_t *f, size_t len, size_t l3, size_t l4, bool v6)
{
    uint8_t pseudo[40] = {0};
    size_t plen;
    if (v6) {
        memcpy(pseudo, f + l3 + 8, 32);
        put32(pseudo + 32, (uint32_t)(len - l4));
        pseudo[39] = 6;
        plen = 40;
    } else {
        memcpy(pseudo, f + l3 + 12, 8);
        pseudo[9] = 6;
        put16(pseudo + 10, (uint16_t)(len - l4));
        plen = 12;
    }
    return ref_fold(ref_sum(ref_sum(0, pseudo, plen), f + l4, len - l4)) == 0xffff;
}

/* --- checksums ------------------------------------------------------------------------------ */

static void test_csum_matches_reference(void **state)
{
    (void)state;
    uint8_t buf[1031];
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (uint8_t)(i * 131 + 17);
    for (size_t len = 0; len <= sizeof(buf); len += (len < 40 ? 1 : 97)) {
        uint16_t ours = net_csum_finish(net_csum_add(0, buf, len));
        uint8_t stored[2];
        memcpy(stored, &ours, 2); /* native order: stored bytes are the big-endian value */
        assert_int_equal(get16(stored), (uint16_t)~ref_fold(ref_sum(0, buf, len)));
    }
}

/* NEEDS_CSUM on a UDP datagram: the pseudo-header sum sits in the field, the device sums the
 * rest and the datagram then verifies. */
static void test_complete_udp_checksum(void **state)
{
    (void)state;
    uint8_t f[14 + 20 + 8 + 101];
    memset(f, 0, sizeof(f));
    put16(f + 12, 0x0800);
    uint8_t *ip = f + 14, *udp = ip + 20;
    ip[0] = 0x45;
    ip[9] = 17;
    memcpy(ip + 12, "\x0a\x00\x02\x0f\x08\x08\x08\x08", 8);
    put16(udp, 5353);
    put16(udp + 2, 53);
    put16(udp + 4, 8 + 101);
    for (int i = 0; i < 101; i++)
        udp[8 + i] = (uint8_t)(i ^ 0x5a);
    uint8_t pseudo[12] = {0};
    memcpy(pseudo, ip + 12, 8);
    pseudo[9] = 17;
    put16(pseudo + 10, 8 + 101);
    put16(udp + 6, ref_fold(ref_sum(0, pseudo, 12)));
    struct vnet_hdr h = {.flags = VNET_HDR_F_NEEDS_CSUM, .csum_start = 34, .csum_offset = 6};
    struct capture c = {0};
    assert_int_equal(net_offload_frame(&h, f, sizeof(f), NULL, capture_emit, &c), 1);
    assert_int_equal(c.len[0], sizeof(f));
    assert_int_equal(ref_fold(ref_sum(ref_sum(0, pseudo, 12), c.data[0] + 34, 8 + 101)), 0xffff);
    capture_free(&c);
}

/* --- segmentation --------------------------------------------------------------------------- */

static void check_segments(bool v6, bool vlan, size_t payload, uint16_t mss, uint8_t flags)
{
    static uint8_t f[NET_MAX_FRAME], scratch[NET_MAX_FRAME];
    size_t l3, l4, len = build_tcp(f, v6, vlan, payload, flags, &l3, &l4);
    uint8_t orig[NET_MAX_FRAME];
    memcpy(orig, f, len);
    struct vnet_hdr h = {
        .flags = VNET_HDR_F_NEEDS_CSUM,
        .gso_type = (uint8_t)((v6 ? VNET_HDR_GSO_TCPV6 : VNET_HDR_GSO_TCPV4) | VNET_HDR_GSO_ECN),
        .gso_size = mss,
        .csum_start = (uint16_t)l4,
        .csum_offset = 16,
    };
    struct capture c = {0};
    int n = net_offload_frame(&h, f, len, scratch, capture_emit, &c);
    unsigned want = payload ? (unsigned)((payload + mss - 1) / mss) : 1;
    assert_int_equal(n, want);
    size_t off = 0, hdrs = l4 + 32;
    for (unsigned i = 0; i < c.n; i++) {
        const uint8_t *s = c.data[i];
        size_t seg = c.len[i] - hdrs;
        assert_true(seg <= mss);
        assert_memory_equal(s, orig, l3); /* link headers unchanged */
        if (v6) {
            assert_int_equal(get16(s + l3 + 4), 32 + seg);
        } else {
            assert_int_equal(get16(s + l3 + 2), 20 + 32 + seg);
            assert_int_equal(get16(s + l3 + 4), (uint16_t)(0x1234 + i));
            assert_int_equal(ref_fold(ref_sum(0, s + l3, 20)), 0xffff);
        }
        assert_int_equal(get32(s + l4 + 4), (uint32_t)(0xfffff000u + off));
        uint8_t fl = s[l4 + 13], want_fl = flags;
        if (i + 1 < c.n)
            want_fl &= (uint8_t)~0x09; /* FIN, PSH: last only */
        if (i > 0)
            want_fl &= (uint8_t)~0x80; /* CWR: first only */
        assert_int_equal(fl, want_fl);
        assert_memory_equal(s + l4 + 20, orig + l4 + 20, 12); /* options in every segment */
        assert_true(tcp_csum_ok(s, c.len[i], l3, l4, v6));
        assert_memory_equal(s + hdrs, orig + hdrs + off, seg);
        off += seg;
    }
    assert_int_equal(off, payload);
    capture_free(&c);
}

static void test_tso_ipv4(void **state)
{
    (void)state;
    check_segments(false, false, 65536 - 20 - 32 - 1, 1448, 0x18 | 0x01 | 0x80);
    check_segments(false, false, 3000, 1000, 0x10); /* an exact multiple */
    check_segments(false, false, 500, 1448, 0x18);  /* fits in one */
    check_segments(false, false, 0, 1448, 0x11);    /* headers only */
}

static void test_tso_ipv6_and_vlan(void **state)
{
    (void)state;
    check_segments(true, false, 60000, 1428, 0x18 | 0x80);
    check_segments(false, true, 20000, 1448, 0x18);
    check_segments(true, true, 9000, 8940, 0x19);
    check_segments(false, false, 2000, 1, 0x10); /* a 1-byte MSS: 2000 segments, bounded */
}

/* Headers that do not fit their frame: refused, nothing emitted, nothing read outside. */
static void test_hostile_headers(void **state)
{
    (void)state;
    static uint8_t f[NET_MAX_FRAME + 16], scratch[NET_MAX_FRAME];
    size_t l3, l4, len = build_tcp(f, false, false, 3000, 0x18, &l3, &l4);
    struct capture c = {0};
    struct vnet_hdr csum = {.flags = VNET_HDR_F_NEEDS_CSUM};
    csum.csum_start = (uint16_t)len; /* at the end */
    assert_int_equal(net_offload_frame(&csum, f, len, scratch, capture_emit, &c), -1);
    csum.csum_start = (uint16_t)(len - 1);
    csum.csum_offset = 0; /* the 2-byte field would straddle the end */
    assert_int_equal(net_offload_frame(&csum, f, len, scratch, capture_emit, &c), -1);
    csum.csum_start = 34;
    csum.csum_offset = 0xffff;
    assert_int_equal(net_offload_frame(&csum, f, len, scratch, capture_emit, &c), -1);
    struct vnet_hdr gso = {.gso_type = VNET_HDR_GSO_TCPV4, .gso_size = 0};
    assert_int_equal(net_offload_frame(&gso, f, len, scratch, capture_emit, &c), -1);
    gso.gso_size = 1448;
    gso.gso_type = VNET_HDR_GSO_TCPV6; /* an IPv4 frame */
    assert_int_equal(net_offload_frame(&gso, f, len, scratch, capture_emit, &c), -1);
    gso.gso_type = VNET_HDR_GSO_UDP;
    assert_int_equal(net_offload_frame(&gso, f, len, scratch, capture_emit, &c), -1);
    gso.gso_type = 0x42; /* unknown */
    assert_int_equal(net_offload_frame(&gso, f, len, scratch, capture_emit, &c), -1);
    gso.gso_type = VNET_HDR_GSO_TCPV4;
    f[l3 + 9] = 17; /* UDP, not TCP */
    assert_int_equal(net_offload_frame(&gso, f, len, scratch, capture_emit, &c), -1);
    f[l3 + 9] = 6;
    f[l3] = 0x44; /* IHL 16 bytes */
    assert_int_equal(net_offload_frame(&gso, f, len, scratch, capture_emit, &c), -1);
    f[l3] = 0x4f; /* IHL 60 bytes: runs into the TCP header, whose offset then lies */
    assert_int_equal(net_offload_frame(&gso, f, 14 + 60, scratch, capture_emit, &c), -1);
    f[l3] = 0x45;
    f[l4 + 12] = 4 << 4; /* TCP header 16 bytes */
    assert_int_equal(net_offload_frame(&gso, f, len, scratch, capture_emit, &c), -1);
    f[l4 + 12] = 15 << 4; /* 60 bytes, past a frame cut short */
    assert_int_equal(net_offload_frame(&gso, f, l4 + 40, scratch, capture_emit, &c), -1);
    f[l4 + 12] = 8 << 4;
    for (size_t cut = 0; cut < l4 + 32; cut += 3) /* every truncation of the headers */
        assert_int_equal(net_offload_frame(&gso, f, cut, scratch, capture_emit, &c), -1);
    assert_int_equal(net_offload_frame(&gso, f, NET_MAX_FRAME + 1, scratch, capture_emit, &c), -1);
    put16(f + 12, 0x8100); /* a VLAN tag cut off */
    assert_int_equal(net_offload_frame(&gso, f, 16, scratch, capture_emit, &c), -1);
    assert_int_equal(c.n, 0);
}

/* --- frame queue ---------------------------------------------------------------------------- */

static void test_frame_queue(void **state)
{
    (void)state;
    struct frame_queue q;
    assert_int_equal(fq_init(&q, 4096), 0);
    uint8_t data[2000];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)i;
    size_t len;
    assert_null(fq_peek(&q, &len));
    /* Order, and frames made of several pieces. */
    struct iovec two[2] = {{data, 100}, {data + 100, 300}};
    assert_true(fq_push(&q, two, 2, 400));
    struct iovec one = {data, 1000};
    assert_true(fq_push(&q, &one, 1, 1000));
    uint8_t *p = fq_peek(&q, &len);
    assert_int_equal(len, 400);
    assert_memory_equal(p, data, 400);
    fq_pop(&q);
    p = fq_peek(&q, &len);
    assert_int_equal(len, 1000);
    fq_pop(&q);
    assert_true(fq_empty(&q));
    /* Fill, fail when full, drain: many times round the ring with odd sizes. */
    unsigned pushed = 0, popped = 0;
    for (unsigned round = 0; round < 500; round++) {
        size_t n = 1 + (round * 37) % 1900;
        struct iovec v = {data + (round % 50), n};
        if (!fq_push(&q, &v, 1, n)) {
            assert_true(q.count > 0); /* only a non-empty ring refuses a frame that fits */
            p = fq_peek(&q, &len);
            assert_non_null(p);
            assert_true((size_t)(p - q.buf) + len <= q.size);
            fq_pop(&q);
            popped++;
            continue;
        }
        pushed++;
        p = NULL;
    }
    while (fq_peek(&q, &len)) {
        fq_pop(&q);
        popped++;
    }
    assert_int_equal(pushed, popped);
    /* Records stay contiguous and intact across the wrap. */
    for (unsigned round = 0; round < 300; round++) {
        size_t n = 500 + (round * 101) % 1400;
        struct iovec v = {data, n};
        while (!fq_push(&q, &v, 1, n))
            fq_pop(&q);
        uint8_t *last = NULL;
        size_t l = 0;
        struct frame_queue copy = q;
        while ((p = fq_peek(&copy, &l)) != NULL) { /* peek the newest via a copy */
            last = p;
            fq_pop(&copy);
        }
        assert_non_null(last);
        assert_int_equal(l, n);
        assert_memory_equal(last, data, n);
    }
    struct iovec huge = {data, 1};
    assert_false(fq_push(&q, &huge, 1, 8192)); /* never fits */
    fq_destroy(&q);
}

/* --- parsers -------------------------------------------------------------------------------- */

static void test_hostfwd_parse(void **state)
{
    (void)state;
    struct net_hostfwd f;
    char err[256];
    assert_int_equal(net_hostfwd_parse("tcp:127.0.0.1:2222-:22", &f, err, sizeof(err)), 0);
    assert_false(f.udp);
    assert_int_equal(f.host_addr, htonl(0x7f000001));
    assert_int_equal(f.host_port, 2222);
    assert_int_equal(f.guest_addr, 0);
    assert_int_equal(f.guest_port, 22);
    assert_int_equal(net_hostfwd_parse("udp::5353-10.0.2.15:53", &f, err, sizeof(err)), 0);
    assert_true(f.udp);
    assert_int_equal(f.host_addr, 0);
    assert_int_equal(f.guest_addr, htonl(0x0a00020f));
    assert_int_equal(f.guest_port, 53);
    assert_int_equal(net_hostfwd_parse(":0.0.0.0:65535-:1", &f, err, sizeof(err)), 0);
    assert_false(f.udp);
    assert_int_equal(f.host_port, 65535);
    static const char *const bad[] = {
        "",
        "x",
        "tcp",
        "tcp:",
        "tcp:2222-22",
        "tcp::2222-22",
        "sctp::2222-:22",
        "tcp::0-:22",
        "tcp::65536-:22",
        "tcp::2222-:",
        "tcp::-:22",
        "tcp::22a-:22",
        "tcp:1.2.3:2222-:22",
        "tcp:localhost:2222-:22",
        "tcp::2222-:22:33",
        "tcp::2222:-:22",
        "tcp::000002222-:22",
        "tcp:1.2.3.4.5.6.7.8.9.10.11.12:1-:2",
    };
    for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        if (net_hostfwd_parse(bad[i], &f, err, sizeof(err)) == 0)
            fail_msg("'%s' was accepted", bad[i]);
        assert_non_null(strstr(err, "must be tcp|udp:[ADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT"));
        assert_non_null(strstr(err, bad[i]));
    }
}

static void test_mac_parse(void **state)
{
    (void)state;
    uint8_t mac[6];
    char err[256];
    assert_int_equal(net_mac_parse("52:54:00:ab:CD:ef", mac, err, sizeof(err)), 0);
    assert_memory_equal(mac, "\x52\x54\x00\xab\xcd\xef", 6);
    static const char *const bad[] = {"",
                                      "52:54:00:12:34",
                                      "52:54:00:12:34:567",
                                      "52-54-00-12-34-56",
                                      "52:54:00:12:34:5g",
                                      "01:00:5e:00:00:01", /* multicast */
                                      "ff:ff:ff:ff:ff:ff",
                                      "52:54:00:12:34:56:"};
    for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (net_mac_parse(bad[i], mac, err, sizeof(err)) == 0)
            fail_msg("'%s' was accepted", bad[i]);
        assert_non_null(strstr(err, "six hex bytes"));
    }
}

static void test_vnet_hdr_layout(void **state)
{
    (void)state;
    struct vnet_hdr h = {0x01, 0x81, 0x0203, 0x0405, 0x0607, 0x0809, 0x0a0b}, back;
    uint8_t raw[VNET_HDR_LEN];
    vnet_hdr_build(&h, raw);
    assert_memory_equal(raw, "\x01\x81\x03\x02\x05\x04\x07\x06\x09\x08\x0b\x0a", 12);
    vnet_hdr_parse(raw, &back);
    assert_memory_equal(&back, &h, sizeof(h));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_csum_matches_reference),
        cmocka_unit_test(test_complete_udp_checksum),
        cmocka_unit_test(test_tso_ipv4),
        cmocka_unit_test(test_tso_ipv6_and_vlan),
        cmocka_unit_test(test_hostile_headers),
        cmocka_unit_test(test_frame_queue),
        cmocka_unit_test(test_hostfwd_parse),
        cmocka_unit_test(test_mac_parse),
        cmocka_unit_test(test_vnet_hdr_layout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
