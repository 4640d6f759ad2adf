/* virtio-net internals the unit tests reach: creating the device on a backend they provide,
 * and its drop counters. The device model itself is in virtio_net.c; backends in src/net/. */
#ifndef QUOKKA_HW_VIRTIO_VIRTIO_NET_H
#define QUOKKA_HW_VIRTIO_VIRTIO_NET_H

#include "hw/virtio/virtio.h"
#include "net/net.h"

#include <stdint.h>

#define VIRTIO_NET_QUEUE_SIZE 256
#define VIRTIO_NET_S_LINK_UP 1
/* struct virtio_net_config: u8 mac[6], le16 status, le16 max_virtqueue_pairs, le16 mtu */
#define VIRTIO_NET_CFG_MAC 0
#define VIRTIO_NET_CFG_STATUS 6
#define VIRTIO_NET_CFG_MAX_PAIRS 8
#define VIRTIO_NET_CFG_MTU 10
#define VIRTIO_NET_CONFIG_SIZE 12
/* Writable buffers of one receive chain the device uses (Linux's largest: 19, "big
 * packets"); the rest of a longer chain is left unused. */
#define VIRTIO_NET_RX_CHAIN_BUFS 20
/* Queue pairs a device may have (`queues=N`; a multiqueue tap). */
#define VIRTIO_NET_MAX_PAIRS NET_MAX_QUEUES

struct virtio_net_stats {
    uint64_t tx_frames, rx_frames;
    /* Dropped by the device: transmit chains without a header or frame, longer than a
     * header + NET_MAX_FRAME, or asking for offloads not negotiated; frames for the guest
     * that cannot fit all its receive buffers or carry offloads it did not accept. */
    uint64_t tx_dropped, rx_dropped;
    struct net_backend_stats backend; /* dropped by the backends (see net.h), all queues */
    uint64_t pair_tx_frames[VIRTIO_NET_MAX_PAIRS], pair_rx_frames[VIRTIO_NET_MAX_PAIRS];
};

/* Create the device on `nr_bes` (1..VIRTIO_NET_MAX_PAIRS) backend queues, one per queue pair
 * (owned by the device from here on, also on failure). */
int virtio_net_create_on(const struct device_host *host, const struct device_args *args,
                         struct net_backend *const *bes, unsigned nr_bes, void **state, char *err,
                         size_t errlen);
void virtio_net_get_stats(void *state, struct virtio_net_stats *out);

#endif
