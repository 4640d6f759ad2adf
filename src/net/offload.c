/* Checksum completion and TCP segmentation in software (see offload.h). */
#include "net/offload.h"

#include <string.h>

#define ETH_P_IPV4 0x0800
#define ETH_P_IPV6 0x86dd
#define ETH_P_VLAN 0x8100
#define VLAN_HLEN 4
#define IPV4_MIN_HLEN 20
#define IPV6_HLEN 40
#define TCP_MIN_HLEN 20
#define IPPROTO_TCP_NUM 6
#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_PSH 0x08
#define TCP_FLAG_CWR 0x80

uint64_t net_csum_add(uint64_t sum, const uint8_t *p, size_t len)
{
    /* 32-bit words into a 64-bit accumulator: no carry is lost before 2^32 words. */
    while (len >= 4) {
        uint32_t w;
        memcpy(&w, p, 4);
        sum += w;
        p += 4;
        len -= 4;
    }
    if (len >= 2) {
        uint16_t w;
        memcpy(&w, p, 2);
        sum += w;
        p += 2;
        len -= 2;
    }
    if (len) {
        uint8_t last[2] = {p[0], 0}; /* an odd tail is padded with a zero byte */
        uint16_t w;
        memcpy(&w, last, 2);
        sum += w;
    }
    return sum;
}

uint16_t net_csum_finish(uint64_t sum)
{
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

static uint16_t be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static void put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be32(uint8_t *p, uint32_t v)
{
    put_be16(p, (uint16_t)(v >> 16));
    put_be16(p + 2, (uint16_t)v);
}

static void store_csum(uint8_t *at, uint16_t csum)
{
    memcpy(at, &csum, 2);
}

/* NEEDS_CSUM: the field at csum_start + csum_offset holds the pseudo-header sum; the device
 * sums from csum_start to the end and stores the result there (virtio 1.2, 5.1.6.2). */
static int complete_csum(const struct vnet_hdr *h, uint8_t *frame, size_t len)
{
    size_t start = h->csum_start, field = start + h->csum_offset;
    if (start >= len || field + 2 > len)
        return -1;
    uint16_t c = net_csum_finish(net_csum_add(0, frame + start, len - start));
    /* A UDP checksum of 0 means "none": the equivalent 0xffff is sent instead (RFC 768). */
    store_csum(frame + field, c ? c : 0xffff);
    return 0;
}

/* Where a TCP segment's headers are. */
struct tcp_layout {
    size_t l3, l4, hdrs; /* IP header, TCP header, payload offsets */
    bool v6;
};

static size_t l2_len(const uint8_t *frame, size_t len, uint16_t *ethertype)
{
    *ethertype = be16(frame + 12);
    if (*ethertype != ETH_P_VLAN)
        return NET_ETH_HLEN;
    if (len < NET_ETH_HLEN + VLAN_HLEN)
        return 0;
    *ethertype = be16(frame + 16);
    return NET_ETH_HLEN + VLAN_HLEN;
}

/* The frame is TCP over IPv4 (v6 false) or IPv6 with no extension headers, all headers
 * inside the frame. */
static int parse_tcp(const uint8_t *frame, size_t len, bool v6, struct tcp_layout *t)
{
    uint16_t type;
    if (len < NET_ETH_HLEN)
        return -1;
    t->l3 = l2_len(frame, len, &type);
    t->v6 = v6;
    if (!t->l3 || type != (v6 ? ETH_P_IPV6 : ETH_P_IPV4))
        return -1;
    const uint8_t *ip = frame + t->l3;
    size_t ihl;
    if (v6) {
        if (len < t->l3 + IPV6_HLEN || ip[0] >> 4 != 6 || ip[6] != IPPROTO_TCP_NUM)
            return -1;
        ihl = IPV6_HLEN;
    } else {
        if (len < t->l3 + IPV4_MIN_HLEN || ip[0] >> 4 != 4 || ip[9] != IPPROTO_TCP_NUM)
            return -1;
        ihl = (size_t)(ip[0] & 0xf) * 4;
        if (ihl < IPV4_MIN_HLEN || len < t->l3 + ihl)
            return -1;
    }
    t->l4 = t->l3 + ihl;
    if (len < t->l4 + TCP_MIN_HLEN)
        return -1;
    size_t thl = (size_t)(frame[t->l4 + 12] >> 4) * 4;
    if (thl < TCP_MIN_HLEN || len < t->l4 + thl)
        return -1;
    t->hdrs = t->l4 + thl;
    return 0;
}

/* The TCP checksum of the segment in `seg` (headers as laid out by t, seg_len bytes). */
static uint16_t tcp_csum(const uint8_t *seg, size_t seg_len, const struct tcp_layout *t)
{
    uint8_t pseudo[IPV6_HLEN];
    size_t tcp_len = seg_len - t->l4, plen;
    const uint8_t *ip = seg + t->l3;
    if (t->v6) {
        memcpy(pseudo, ip + 8, 32); /* source and destination */
        put_be32(pseudo + 32, (uint32_t)tcp_len);
        memset(pseudo + 36, 0, 3);
        pseudo[39] = IPPROTO_TCP_NUM;
        plen = 40;
    } else {
        memcpy(pseudo, ip + 12, 8);
        pseudo[8] = 0;
        pseudo[9] = IPPROTO_TCP_NUM;
        put_be16(pseudo + 10, (uint16_t)tcp_len);
        plen = 12;
    }
    uint64_t sum = net_csum_add(0, pseudo, plen);
    return net_csum_finish(net_csum_add(sum, seg + t->l4, tcp_len));
}

/* Fix up segment i (payload bytes [off, off + n) of the original) built in seg. */
static void fix_segment(uint8_t *seg, const struct tcp_layout *t, unsigned i, bool last, size_t off,
                        size_t n)
{
    uint8_t *ip = seg + t->l3, *tcp = seg + t->l4;
    size_t l4_len = t->hdrs - t->l4 + n;
    if (t->v6) {
        put_be16(ip + 4, (uint16_t)l4_len);
    } else {
        put_be16(ip + 2, (uint16_t)(t->l4 - t->l3 + l4_len));
        put_be16(ip + 4, (uint16_t)(be16(ip + 4) + i)); /* consecutive IDs, as Linux's GSO */
        store_csum(ip + 10, 0);
        store_csum(ip + 10, net_csum_finish(net_csum_add(0, ip, t->l4 - t->l3)));
    }
    put_be32(tcp + 4, be32(tcp + 4) + (uint32_t)off);
    if (!last)
        tcp[13] &= (uint8_t) ~(TCP_FLAG_FIN | TCP_FLAG_PSH); /* only the last one ends a push */
    if (i > 0)
        tcp[13] &= (uint8_t)~TCP_FLAG_CWR; /* the congestion signal goes out once */
    store_csum(tcp + 16, 0);
    store_csum(tcp + 16, tcp_csum(seg, t->hdrs + n, t));
}

static int segment_tcp(const struct vnet_hdr *h, const uint8_t *frame, size_t len, uint8_t *scratch,
                       net_emit_fn emit, void *opaque)
{
    uint8_t type = h->gso_type & (uint8_t)~VNET_HDR_GSO_ECN;
    struct tcp_layout t;
    if (h->gso_size == 0 || parse_tcp(frame, len, type == VNET_HDR_GSO_TCPV6, &t) < 0)
        return -1;
    /* The count is bounded by the payload (64 KiB) even for a one-byte gso_size. */
    size_t payload = len - t.hdrs, mss = h->gso_size;
    if (t.hdrs - t.l3 + (payload < mss ? payload : mss) > 65535)
        return -1; /* a segment would not fit an IP length field */
    int count = 0;
    size_t off = 0;
    do {
        size_t n = payload - off < mss ? payload - off : mss;
        memcpy(scratch, frame, t.hdrs);
        memcpy(scratch + t.hdrs, frame + t.hdrs + off, n);
        fix_segment(scratch, &t, (unsigned)count, off + n == payload, off, n);
        emit(opaque, scratch, t.hdrs + n);
        count++;
        off += n;
    } while (off < payload);
    return count;
}

int net_offload_frame(const struct vnet_hdr *h, uint8_t *frame, size_t len, uint8_t *scratch,
                      net_emit_fn emit, void *opaque)
{
    if (len < NET_ETH_HLEN || len > NET_MAX_FRAME)
        return -1;
    uint8_t type = h->gso_type & (uint8_t)~VNET_HDR_GSO_ECN;
    if (type == VNET_HDR_GSO_TCPV4 || type == VNET_HDR_GSO_TCPV6)
        return segment_tcp(h, frame, len, scratch, emit, opaque);
    if (type != VNET_HDR_GSO_NONE)
        return -1; /* UDP fragmentation (UFO) is never offered to these backends */
    if ((h->flags & VNET_HDR_F_NEEDS_CSUM) && complete_csum(h, frame, len) < 0)
        return -1;
    emit(opaque, frame, len);
    return 1;
}
