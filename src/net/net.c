/* Backend selection from the `--net` options, and the small parsers the options need (hostfwd
 * rules, MAC addresses) and the virtio-net header's byte layout. */
#include "net/net.h"

#include "util/log.h"
#include "util/opts.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define NET_MAX_HOSTFWD OPTS_MAX /* the option string cannot hold more */

/* --- the virtio-net header ------------------------------------------------------------------ */

static uint16_t get_le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static void put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

void vnet_hdr_parse(const uint8_t raw[VNET_HDR_LEN], struct vnet_hdr *h)
{
    h->flags = raw[0];
    h->gso_type = raw[1];
    h->hdr_len = get_le16(raw + 2);
    h->gso_size = get_le16(raw + 4);
    h->csum_start = get_le16(raw + 6);
    h->csum_offset = get_le16(raw + 8);
    h->num_buffers = get_le16(raw + 10);
}

void vnet_hdr_build(const struct vnet_hdr *h, uint8_t raw[VNET_HDR_LEN])
{
    raw[0] = h->flags;
    raw[1] = h->gso_type;
    put_le16(raw + 2, h->hdr_len);
    put_le16(raw + 4, h->gso_size);
    put_le16(raw + 6, h->csum_start);
    put_le16(raw + 8, h->csum_offset);
    put_le16(raw + 10, h->num_buffers);
}

/* --- hostfwd rules ------------------------------------------------------------------------- */

/* A decimal port 1-65535 spanning exactly [s, end). */
static bool parse_port(const char *s, const char *end, uint16_t *port)
{
    if (s == end || end - s > 5)
        return false;
    unsigned v = 0;
    for (const char *p = s; p < end; p++) {
        if (!isdigit((unsigned char)*p))
            return false;
        v = v * 10 + (unsigned)(*p - '0');
    }
    if (v < 1 || v > 65535)
        return false;
    *port = (uint16_t)v;
    return true;
}

/* "[ADDR]:PORT" spanning [s, end): an empty address is 0 (any / the default). */
static bool parse_endpoint(const char *s, const char *end, uint32_t *addr, uint16_t *port)
{
    const char *colon = NULL;
    for (const char *p = s; p < end; p++)
        if (*p == ':')
            colon = p;
    if (!colon || !parse_port(colon + 1, end, port))
        return false;
    *addr = 0;
    if (colon == s)
        return true;
    char text[INET_ADDRSTRLEN];
    size_t n = (size_t)(colon - s);
    if (n >= sizeof(text))
        return false;
    memcpy(text, s, n);
    text[n] = '\0';
    struct in_addr a;
    if (inet_pton(AF_INET, text, &a) != 1)
        return false;
    *addr = a.s_addr;
    return true;
}

int net_hostfwd_parse(const char *text, struct net_hostfwd *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    const char *colon = strchr(text, ':');
    const char *dash = colon ? strchr(colon, '-') : NULL;
    bool ok = colon && dash;
    if (ok) {
        size_t plen = (size_t)(colon - text);
        if (plen == 3 && !strncmp(text, "udp", 3))
            out->udp = true;
        else if (!(plen == 0 || (plen == 3 && !strncmp(text, "tcp", 3))))
            ok = false;
    }
    ok = ok && parse_endpoint(colon + 1, dash, &out->host_addr, &out->host_port) &&
         parse_endpoint(dash + 1, text + strlen(text), &out->guest_addr, &out->guest_port);
    if (!ok)
        return qk_fail(err, errlen,
                       "hostfwd '%s' must be tcp|udp:[ADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT "
                       "(ports 1-65535, IPv4 addresses)",
                       text);
    return 0;
}

/* --- MAC addresses --------------------------------------------------------------------------- */

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int net_mac_parse(const char *text, uint8_t mac[6], char *err, size_t errlen)
{
    bool ok = strlen(text) == 17;
    for (unsigned i = 0; ok && i < 6; i++) {
        const char *p = text + 3 * i;
        int hi = hex_digit(p[0]), lo = hex_digit(p[1]);
        ok = hi >= 0 && lo >= 0 && (i == 5 || p[2] == ':');
        mac[i] = (uint8_t)(hi << 4 | lo);
    }
    /* Bit 0 of the first byte marks a group (multicast) address, never a NIC's own. */
    if (!ok || (mac[0] & 1))
        return qk_fail(err, errlen,
                       "mac '%s' must be six hex bytes like 52:54:00:12:34:56 (unicast: the "
                       "first byte even)",
                       text);
    return 0;
}

/* --- choosing the backend ------------------------------------------------------------------- */

static struct net_backend *user_backend(const struct opts *o, uint16_t mtu, char *err,
                                        size_t errlen)
{
    struct net_hostfwd fwds[NET_MAX_HOSTFWD];
    unsigned n = 0;
    const char *rule;
    while (n < NET_MAX_HOSTFWD && (rule = opts_get_nth(o, "hostfwd", n)) != NULL) {
        if (net_hostfwd_parse(rule, &fwds[n], err, errlen) < 0)
            return NULL;
        n++;
    }
    return net_slirp_new(fwds, n, mtu, err, errlen);
}

/* `tap-fd=A[:B...]`: one open tap fd per queue (all parsed before any is taken). */
static int tap_fd_backends(const char *text, struct event_loop *loop, struct net_backend **out,
                           unsigned max, char *err, size_t errlen)
{
    int fds[NET_MAX_QUEUES];
    unsigned n = 0;
    for (const char *p = text;;) {
        char *end;
        errno = 0;
        long fd = strtol(p, &end, 10);
        if (end == p || (*end && *end != ':') || errno || fd < 0 || fd > 1000000 || n == max ||
            n == NET_MAX_QUEUES)
            return qk_fail(err, errlen,
                           "tap-fd '%s' must be 1-%u open file descriptor numbers joined by ':'",
                           text, max < NET_MAX_QUEUES ? max : NET_MAX_QUEUES);
        fds[n++] = (int)fd;
        if (!*end)
            break;
        p = end + 1;
    }
    for (unsigned i = 0; i < n; i++) {
        out[i] = net_tap_from_fd(fds[i], loop, err, errlen);
        if (!out[i]) {
            net_backends_free(out, i);
            return -1;
        }
    }
    return (int)n;
}

/* `tap=NAME[,queues=N]`: N queues of one tap (IFF_MULTI_QUEUE when N > 1). */
static int tap_backends(const char *name, uint64_t queues, struct event_loop *loop,
                        struct net_backend **out, char *err, size_t errlen)
{
    for (unsigned i = 0; i < queues; i++) {
        out[i] = net_tap_open(name, queues > 1, loop, err, errlen);
        if (!out[i]) {
            net_backends_free(out, i);
            return -1;
        }
    }
    return (int)queues;
}

void net_backends_free(struct net_backend *const *bes, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        bes[i]->ops->free(bes[i]);
}

int net_backends_new(const struct opts *o, uint16_t mtu, struct event_loop *loop,
                     struct net_backend **out, unsigned max, char *err, size_t errlen)
{
    const char *user = opts_get(o, "user"), *tap = opts_get(o, "tap");
    const char *tap_fd = opts_get(o, "tap-fd");
    if ((user != NULL) + (tap != NULL) + (tap_fd != NULL) > 1)
        return qk_fail(err, errlen, "give one of user, tap=NAME and tap-fd=N");
    if (user && *user)
        return qk_fail(err, errlen, "'user' takes no value (got user=%s)", user);
    if ((tap || tap_fd) && opts_get(o, "hostfwd"))
        return qk_fail(err, errlen,
                       "hostfwd= is for user-mode networking (--net user,hostfwd=...)");
    uint64_t queues;
    if (opts_get_u64(o, "queues", 1, 1, max < NET_MAX_QUEUES ? max : NET_MAX_QUEUES, &queues,
                     "virtio-net", err, errlen) < 0)
        return -1;
    if (queues > 1 && !tap)
        return qk_fail(err, errlen,
                       "queues=%llu needs tap=NAME (user mode has one queue; with tap-fd= "
                       "give one fd per queue)",
                       (unsigned long long)queues);
    if (tap)
        return tap_backends(tap, queues, loop, out, err, errlen);
    if (tap_fd)
        return tap_fd_backends(tap_fd, loop, out, max, err, errlen);
    out[0] = user_backend(o, mtu, err, errlen);
    return out[0] ? 1 : -1;
}
