/* libFuzzer target: virtio-net's transmit handling after the ring walk: the 12-byte
 * virtio-net header a guest puts before each frame (flags, GSO type and size, checksum start
 * and offset, header length) and the frame, through checksum completion and TSO/UFO
 * segmentation (net/offload.c). Every frame emitted must fit NET_MAX_FRAME; nothing may read
 * or write outside the frame or the scratch buffer. */
#include "net/net.h"
#include "net/offload.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static size_t emitted;

static void emit(void *opaque, const uint8_t *frame, size_t len)
{
    (void)opaque;
    if (len > NET_MAX_FRAME)
        abort();
    volatile uint8_t sink = len ? frame[0] ^ frame[len - 1] : 0; /* ASan checks the range ends */
    (void)sink;
    emitted += len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t scratch[NET_MAX_FRAME];
    if (size < VNET_HDR_LEN)
        return 0;
    struct vnet_hdr h;
    vnet_hdr_parse(data, &h);
    size_t len = size - VNET_HDR_LEN;
    if (len > NET_MAX_FRAME)
        len = NET_MAX_FRAME;
    /* The frame is modified in place: an exactly-sized heap copy, so overruns are caught. */
    uint8_t *frame = malloc(len ? len : 1);
    if (!frame)
        return 0;
    memcpy(frame, data + VNET_HDR_LEN, len);
    net_offload_frame(&h, frame, len, scratch, emit, NULL);
    free(frame);
    return 0;
}
