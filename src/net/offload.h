/* Software offloads for backends that take plain Ethernet frames (user-mode networking, a tap
 * without a virtio-net header): the guest hands the device partial checksums and 64 KiB TCP
 * "super-frames" (VIRTIO_NET_F_CSUM, HOST_TSO4/6), which is what makes a guest fast on the
 * translator, where every byte the guest checksums itself costs many host instructions; here
 * they are finished in native code before the frame leaves the device.
 *
 * Everything the header says is checked against the frame it came with: a checksum position
 * outside the frame, GSO on something that is not TCP over IPv4/IPv6 (without extension
 * headers), a zero segment size: the frame is refused, never read or written out of bounds. */
#ifndef QUOKKA_NET_OFFLOAD_H
#define QUOKKA_NET_OFFLOAD_H

#include "net/net.h"

#include <stddef.h>
#include <stdint.h>

/* One's-complement sum of len bytes (native byte order, as Linux's csum_partial: store the
 * folded result with memcpy and the bytes are right), added to sum. */
uint64_t net_csum_add(uint64_t sum, const uint8_t *p, size_t len);
/* Fold a sum to 16 bits and complement it: the checksum field's value. */
uint16_t net_csum_finish(uint64_t sum);

/* Called for each finished frame. */
typedef void (*net_emit_fn)(void *opaque, const uint8_t *frame, size_t len);

/* Finish one guest frame described by h: a partial checksum is completed in place (frame is
 * modified); a GSO frame is cut into segments of h->gso_size payload bytes, each built in
 * `scratch` (NET_MAX_FRAME bytes) with its own IP length, ID, TCP sequence number, flags and
 * checksums. Returns the number of frames emitted, or -1 (nothing emitted) when the header
 * does not fit the frame. */
int net_offload_frame(const struct vnet_hdr *h, uint8_t *frame, size_t len, uint8_t *scratch,
                      net_emit_fn emit, void *opaque);

#endif
