/* The host side of virtio-vsock (virtio 1.2, 5.10), as Firecracker's "hybrid" vsock: guest
 * AF_VSOCK stream sockets meet host AF_UNIX sockets.
 *
 * - Host to guest: a host process connects to the Unix socket at `path`, writes
 *   "CONNECT <port>\n" and, once the guest's listener on <port> accepted, reads
 *   "OK <hostport>\n" (the port quokka gave the host end, from 1 << 30 up); then the socket is
 *   a byte stream to the guest. A guest that refuses (RST) gets the host socket closed.
 * - Guest to host: a guest connecting to CID 2 port P reaches the Unix socket `<path>_<P>`
 *   when something listens there; otherwise the guest gets RST.
 *
 * The multiplexer (vsock_mux.c) owns the connections, the host sockets (watched on the
 * machine's event loop) and the credit accounting; the virtio device (virtio_vsock.c) moves
 * packets between it and the virtqueues. Everything below runs under the mux's one lock,
 * which the device takes around its queue work (vsock_mux_lock) and the mux takes on the I/O
 * thread (socket events, its timer); `rx_ready` is called with the lock held.
 *
 * Bounds, whatever the guest or the host peers do: at most VSOCK_MAX_CONNS connections
 * (accepted host sockets waiting for their CONNECT line included); per connection at most
 * VSOCK_CONN_BUF bytes of guest data waiting for a slow host reader (the credit we advertise:
 * a guest that sends more is reset); host data is read straight into the guest's receive
 * buffers, never more than the guest's credit; replies to stray packets wait in a ring of
 * VSOCK_RSTQ_SIZE (more are dropped). */
#ifndef QUOKKA_NET_VSOCK_MUX_H
#define QUOKKA_NET_VSOCK_MUX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct device_host;

/* struct virtio_vsock_hdr: le64 src_cid, dst_cid; le32 src_port, dst_port, len; le16 type, op;
 * le32 flags, buf_alloc, fwd_cnt (packed). */
#define VSOCK_HDR_SIZE 44
#define VSOCK_HOST_CID 2
#define VSOCK_TYPE_STREAM 1

enum vsock_op {
    VSOCK_OP_INVALID = 0,
    VSOCK_OP_REQUEST = 1,
    VSOCK_OP_RESPONSE = 2,
    VSOCK_OP_RST = 3,
    VSOCK_OP_SHUTDOWN = 4,
    VSOCK_OP_RW = 5,
    VSOCK_OP_CREDIT_UPDATE = 6,
    VSOCK_OP_CREDIT_REQUEST = 7,
};

#define VSOCK_SHUTDOWN_RCV 1  /* the sender will receive no more */
#define VSOCK_SHUTDOWN_SEND 2 /* the sender will send no more */

#define VSOCK_MAX_PKT (64 * 1024)   /* payload of one packet either way (Linux's and FC's) */
#define VSOCK_CONN_BUF (256 * 1024) /* buf_alloc we advertise per connection */
#define VSOCK_MAX_CONNS 1024
#define VSOCK_RSTQ_SIZE 256
#define VSOCK_LOCAL_PORT_FIRST (1u << 30)       /* host ends of host-initiated connections */
#define VSOCK_CONNECT_LINE_MAX 32               /* "CONNECT <port>\n", as Firecracker reads it */
#define VSOCK_TIMEOUT_NS (2ULL * 1000000000ULL) /* REQUEST unanswered, SHUTDOWN without RST */

struct vsock_hdr {
    uint64_t src_cid, dst_cid;
    uint32_t src_port, dst_port;
    uint32_t len;
    uint16_t type, op;
    uint32_t flags, buf_alloc, fwd_cnt;
};

void vsock_hdr_decode(const uint8_t raw[VSOCK_HDR_SIZE], struct vsock_hdr *h);
void vsock_hdr_encode(const struct vsock_hdr *h, uint8_t raw[VSOCK_HDR_SIZE]);

/* The port in a host's "CONNECT <port>\n" line (len bytes, the newline included or not):
 * the first word is "connect" in any case, the second a decimal u32; more words are ignored
 * (Firecracker's parser). -1 when it is not such a line. */
int64_t vsock_parse_connect(const char *line, size_t len);

struct vsock_mux;

/* Check the socket path (its directory exists; not an existing non-socket; not a socket
 * someone listens on: a stale one is removed), bind and listen. Nothing is watched until
 * vsock_mux_start. rx_ready(opaque) is called with the lock held when packets for the guest
 * may be waiting (host data, a connection to announce, a timeout). */
struct vsock_mux *vsock_mux_new(const struct device_host *host, uint64_t guest_cid,
                                const char *path, void (*rx_ready)(void *opaque), void *opaque,
                                char *err, size_t errlen);
/* Close everything and remove the socket file (if it is still ours). The I/O loop has ended. */
void vsock_mux_free(struct vsock_mux *mux);

void vsock_mux_lock(struct vsock_mux *mux);
void vsock_mux_unlock(struct vsock_mux *mux);

/* --- with the lock held ------------------------------------------------------------------- */

/* The driver is ready: accept host connections. */
void vsock_mux_start(struct vsock_mux *mux);
/* The driver is gone (device reset): drop every connection (their host sockets are closed)
 * and every queued packet, stop accepting. */
void vsock_mux_stop(struct vsock_mux *mux);

/* A packet from the guest's transmit queue whose payload is `iov` (exactly h->len bytes, at
 * most VSOCK_MAX_PKT; the device checked the chain holds them). */
void vsock_mux_send(struct vsock_mux *mux, const struct vsock_hdr *h, const struct iovec *iov,
                    unsigned niov);
/* A transmit packet with a usable header but an impossible length (more than VSOCK_MAX_PKT,
 * or than the chain holds): its connection, if any, is reset. */
void vsock_mux_send_malformed(struct vsock_mux *mux, const struct vsock_hdr *h);

/* True when vsock_mux_recv has a packet to give. */
bool vsock_mux_has_rx(const struct vsock_mux *mux);
/* The next packet for the guest: its header into *h and up to `cap` payload bytes into iov
 * (the receive buffer after the header). Call only when vsock_mux_has_rx; always fills *h.
 * Returns the payload length (h->len). */
uint32_t vsock_mux_recv(struct vsock_mux *mux, struct vsock_hdr *h, const struct iovec *iov,
                        unsigned niov, uint32_t cap);
/* Receive processing stopped with work left (a budget): run rx_ready again soon from the I/O
 * thread. */
void vsock_mux_defer_rx(struct vsock_mux *mux);

/* Connections in the table (tests). */
unsigned vsock_mux_nr_conns(const struct vsock_mux *mux);

#endif
