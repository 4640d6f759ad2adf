/* Network backends: where a virtio-net device's frames go and where the guest's come from.
 *
 * A backend is created from the `--net` options (net_backend_new: `user` -> libslirp in its own
 * thread, src/net/slirp.c; `tap=NAME` / `tap-fd=N` -> a Linux tap device read from the I/O
 * thread's event loop, src/net/tap.c), then started with the device's callbacks (struct
 * net_client). Frames cross the interface with the guest's own 12-byte virtio-net header
 * (struct virtio_net_hdr_v1, little-endian) in front, so offloads (partial checksums, TSO) pass
 * through to a tap with IFF_VNET_HDR unchanged, and backends that want plain frames complete
 * them in software (src/net/offload.c).
 *
 * Flow control, both ways, so nothing is buffered without bound:
 * - guest -> backend: send() says NET_TX_BUSY when the backend cannot take a frame now; the
 *   device keeps it and stops taking the guest's transmit chains until tx_ready().
 * - backend -> guest: receive() says NET_RX_FULL when the guest has no receive buffers; the
 *   backend keeps that frame (tap: stops reading the fd, the kernel's queue drops; slirp: a
 *   bounded backlog, then drops and counts) until rx_ready(). After NET_RX_FULL the device has
 *   asked the guest to kick it, so rx_ready() always follows the guest's next refill. */
#ifndef QUOKKA_NET_NET_H
#define QUOKKA_NET_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct event_loop;
struct opts;

/* virtio-net feature bits (virtio 1.2, 5.1.3) that concern offloads and the device */
#define VIRTIO_NET_F_CSUM 0       /* device takes partial checksums (guest TX) */
#define VIRTIO_NET_F_GUEST_CSUM 1 /* driver takes partial/validated checksums (guest RX) */
#define VIRTIO_NET_F_MTU 3
#define VIRTIO_NET_F_MAC 5
#define VIRTIO_NET_F_GUEST_TSO4 7
#define VIRTIO_NET_F_GUEST_TSO6 8
#define VIRTIO_NET_F_GUEST_ECN 9
#define VIRTIO_NET_F_GUEST_UFO 10
#define VIRTIO_NET_F_HOST_TSO4 11
#define VIRTIO_NET_F_HOST_TSO6 12
#define VIRTIO_NET_F_HOST_ECN 13
#define VIRTIO_NET_F_HOST_UFO 14
#define VIRTIO_NET_F_MRG_RXBUF 15
#define VIRTIO_NET_F_STATUS 16

#define NET_F(bit) (1ULL << (bit))
/* The receive-side offloads (what a backend may hand the guest) and transmit-side ones. */
#define NET_GUEST_OFFLOADS                                                                         \
    (NET_F(VIRTIO_NET_F_GUEST_CSUM) | NET_F(VIRTIO_NET_F_GUEST_TSO4) |                             \
     NET_F(VIRTIO_NET_F_GUEST_TSO6) | NET_F(VIRTIO_NET_F_GUEST_ECN) |                              \
     NET_F(VIRTIO_NET_F_GUEST_UFO))
#define NET_HOST_OFFLOADS                                                                          \
    (NET_F(VIRTIO_NET_F_CSUM) | NET_F(VIRTIO_NET_F_HOST_TSO4) | NET_F(VIRTIO_NET_F_HOST_TSO6) |    \
     NET_F(VIRTIO_NET_F_HOST_ECN) | NET_F(VIRTIO_NET_F_HOST_UFO))

/* struct virtio_net_hdr_v1: u8 flags, u8 gso_type, le16 hdr_len, gso_size, csum_start,
 * csum_offset, num_buffers. Always 12 bytes with VERSION_1 (the only mode quokka offers). */
#define VNET_HDR_LEN 12
#define VNET_HDR_F_NEEDS_CSUM 1
#define VNET_HDR_F_DATA_VALID 2
#define VNET_HDR_GSO_NONE 0
#define VNET_HDR_GSO_TCPV4 1
#define VNET_HDR_GSO_UDP 3
#define VNET_HDR_GSO_TCPV6 4
#define VNET_HDR_GSO_ECN 0x80

struct vnet_hdr {
    uint8_t flags, gso_type;
    uint16_t hdr_len, gso_size, csum_start, csum_offset, num_buffers;
};

void vnet_hdr_parse(const uint8_t raw[VNET_HDR_LEN], struct vnet_hdr *h);
void vnet_hdr_build(const struct vnet_hdr *h, uint8_t raw[VNET_HDR_LEN]);

/* Frame sizes (without the virtio-net header): an Ethernet header, and at most 64 KiB of
 * payload after it (the largest TSO frame a guest builds), as Firecracker bounds them. */
#define NET_ETH_HLEN 14
#define NET_MAX_FRAME (65536 + NET_ETH_HLEN)

enum net_rx_result {
    NET_RX_OK,      /* delivered into the guest's buffers */
    NET_RX_FULL,    /* no receive buffers now: keep the frame, offer it again after rx_ready */
    NET_RX_DROPPED, /* can never be delivered (too big, malformed): dropped and counted */
};

enum net_tx_result {
    NET_TX_OK,      /* taken */
    NET_TX_BUSY,    /* not taken now: offer it again after tx_ready */
    NET_TX_DROPPED, /* refused for good (malformed, host error): counted by the backend */
};

/* The device, as its backend sees it. Callbacks run on the backend's thread (tap: the I/O
 * thread; user: the slirp thread), never two at once for one backend. */
struct net_client {
    /* One frame for the guest: hdr is its VNET_HDR_LEN-byte header (flags, GSO), frame its
     * `len` bytes. */
    enum net_rx_result (*receive)(void *opaque, const uint8_t *hdr, const uint8_t *frame,
                                  size_t len);
    /* A batch of receive() calls is over: interrupt the guest once for all of them. */
    void (*receive_done)(void *opaque);
    /* send() said NET_TX_BUSY and the backend has room again. */
    void (*tx_ready)(void *opaque);
    void *opaque;
};

struct net_backend;

struct net_backend_ops {
    /* Start delivering frames to `client` (threads, fd watches). -1 with a message. */
    int (*start)(struct net_backend *be, const struct net_client *client, char *err, size_t errlen);
    /* A frame from the guest: `len` bytes in iov, starting with the VNET_HDR_LEN-byte header
     * (the device's own copy: the guest cannot change it any more). Any thread; the device
     * calls it for one frame at a time. */
    enum net_tx_result (*send)(struct net_backend *be, const struct iovec *iov, unsigned iovcnt,
                               size_t len);
    /* The guest posted receive buffers (after NET_RX_FULL). Any thread, any time. */
    void (*rx_ready)(struct net_backend *be);
    /* The receive offloads the guest accepted (VIRTIO_NET_F_GUEST_* bits of rx_offloads; 0 at
     * a reset): a tap's kernel then builds only frames the guest can take. Any thread. */
    void (*set_rx_offloads)(struct net_backend *be, uint64_t guest_features);
    /* Optional (queues of a multiqueue backend): whether the host may steer frames to this
     * queue (the guest uses it). Any thread. */
    void (*set_enabled)(struct net_backend *be, bool enabled);
    /* Optional (snapshots): the backend's own state as a malloc'd blob (*buf, *len; -1 when
     * out of memory), and that blob put into a fresh backend (-1 with a message when it is
     * malformed or from another version). Any thread; the device is quiesced. */
    int (*save_state)(struct net_backend *be, uint8_t **buf, size_t *len);
    int (*load_state)(struct net_backend *be, const uint8_t *buf, size_t len, char *err,
                      size_t errlen);
    /* Stop (join threads, unwatch fds) and free. */
    void (*free)(struct net_backend *be);
};

struct net_backend_stats {
    uint64_t tx_dropped; /* frames from the guest refused (malformed offload, host error) */
    uint64_t rx_dropped; /* frames for the guest dropped (backlog full, too big) */
};

struct net_backend {
    const struct net_backend_ops *ops;
    /* Transmit offloads the backend takes in headers (VIRTIO_NET_F_CSUM, HOST_*), and receive
     * offloads it can produce (GUEST_*): the device offers the guest only these. */
    uint64_t tx_offloads, rx_offloads;
    /* Counters the backend keeps (atomically updated; read for statistics). */
    struct net_backend_stats stats;
};

/* Queues a multiqueue backend may have (a tap's queues; user mode has one). */
#define NET_MAX_QUEUES 16

/* The backend queues the options ask for, into out[0..max): `user` (the default; one queue),
 * `tap=NAME` (`queues=N`: a multiqueue tap opened N times) or `tap-fd=N[:N...]` (one fd per
 * queue), and the user-mode `hostfwd=` rules. Returns how many, or -1 with a message naming
 * the problem ("tap 'foo': Operation not permitted", "host port 8080 is in use"). `mtu` is
 * the guest's link MTU (user mode sizes its segments to it). */
int net_backends_new(const struct opts *o, uint16_t mtu, struct event_loop *loop,
                     struct net_backend **out, unsigned max, char *err, size_t errlen);
/* Free the first n backends of bes (a set that will not be used after all). */
void net_backends_free(struct net_backend *const *bes, unsigned n);

/* Backends by kind (net_backend_new picks one). */
struct net_hostfwd;
struct net_backend *net_slirp_new(const struct net_hostfwd *fwds, unsigned nr_fwds, uint16_t mtu,
                                  char *err, size_t errlen);
/* One queue of tap NAME; `multi_queue`: opened with IFF_MULTI_QUEUE (every queue must be). */
struct net_backend *net_tap_open(const char *name, bool multi_queue, struct event_loop *loop,
                                 char *err, size_t errlen);
struct net_backend *net_tap_from_fd(int fd, struct event_loop *loop, char *err, size_t errlen);

/* --- hostfwd rules ------------------------------------------------------------------------- */

struct net_hostfwd {
    bool udp;
    uint32_t host_addr, guest_addr; /* network byte order; 0: any / the DHCP address */
    uint16_t host_port, guest_port;
};

/* Parse `tcp|udp:[ADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT` (QEMU's syntax; the protocol may be
 * empty, meaning tcp). -1 with a message naming the rule. */
int net_hostfwd_parse(const char *text, struct net_hostfwd *out, char *err, size_t errlen);

/* --- the guest's MAC address --------------------------------------------------------------- */

/* Parse "52:54:00:12:34:56" (six hex bytes, unicast). -1 with a message. */
int net_mac_parse(const char *text, uint8_t mac[6], char *err, size_t errlen);

#endif
