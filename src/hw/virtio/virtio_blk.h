/* virtio-blk's request parser (virtio 1.2, 5.2.6), apart from the device so tests can feed it
 * handcrafted requests. The device model itself is in virtio_blk.c.
 *
 * A request is a chain: the readable part starts with a 16-byte header (le32 type, le32
 * reserved, le64 sector) followed by data (writes) or discard/write-zeroes segments; the
 * writable part holds data (reads, GET_ID) and ends with the status byte. Any framing is
 * accepted (virtio 1.x has no layout rules): the header, data and status may share buffers. */
#ifndef QUOKKA_HW_VIRTIO_VIRTIO_BLK_H
#define QUOKKA_HW_VIRTIO_VIRTIO_BLK_H

#include "hw/virtio/virtio.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

/* Feature bits (5.2.3) */
#define VIRTIO_BLK_F_SIZE_MAX 1
#define VIRTIO_BLK_F_SEG_MAX 2
#define VIRTIO_BLK_F_GEOMETRY 4
#define VIRTIO_BLK_F_RO 5
#define VIRTIO_BLK_F_BLK_SIZE 6
#define VIRTIO_BLK_F_FLUSH 9
#define VIRTIO_BLK_F_TOPOLOGY 10
#define VIRTIO_BLK_F_CONFIG_WCE 11
#define VIRTIO_BLK_F_MQ 12
#define VIRTIO_BLK_F_DISCARD 13
#define VIRTIO_BLK_F_WRITE_ZEROES 14

/* Request types and status values (5.2.6) */
#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_T_GET_ID 8
#define VIRTIO_BLK_T_DISCARD 11
#define VIRTIO_BLK_T_WRITE_ZEROES 13
#define VIRTIO_BLK_S_OK 0
#define VIRTIO_BLK_S_IOERR 1
#define VIRTIO_BLK_S_UNSUPP 2
#define VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP 1

#define VIRTIO_BLK_ID_BYTES 20
#define VIRTIO_BLK_SECTOR_SIZE 512
#define VIRTIO_BLK_HDR_SIZE 16
#define VIRTIO_BLK_DWZ_SEG_SIZE 16 /* le64 sector, le32 num_sectors, le32 flags */

/* Config space (struct virtio_blk_config) offsets, up to the write-zeroes fields. */
#define BLK_CFG_CAPACITY 0
#define BLK_CFG_SIZE_MAX 8
#define BLK_CFG_SEG_MAX 12
#define BLK_CFG_GEOMETRY 16
#define BLK_CFG_BLK_SIZE 20
#define BLK_CFG_TOPOLOGY 24
#define BLK_CFG_WRITEBACK 32
#define BLK_CFG_NUM_QUEUES 34
#define BLK_CFG_MAX_DISCARD_SECTORS 36
#define BLK_CFG_MAX_DISCARD_SEG 40
#define BLK_CFG_DISCARD_ALIGN 44
#define BLK_CFG_MAX_WZ_SECTORS 48
#define BLK_CFG_MAX_WZ_SEG 52
#define BLK_CFG_WZ_MAY_UNMAP 56
#define BLK_CONFIG_SIZE 60

/* What we advertise: data segments per request (seg_max), bytes per segment (size_max), so a
 * request carries at most BLK_MAX_DATA bytes; discard and write-zeroes take one segment of
 * up to BLK_MAX_DWZ_SECTORS. */
#define BLK_SEG_MAX 254
#define BLK_MAX_BUFS (BLK_SEG_MAX + 2) /* + header + status */
#define BLK_SIZE_MAX (1u << 20)
#define BLK_MAX_DATA ((uint64_t)BLK_SEG_MAX * BLK_SIZE_MAX)
#define BLK_MAX_DWZ_SECTORS 0x3fffffu /* 2 GiB - 512, QEMU's default */
#define BLK_MAX_DWZ_SEG 1
#define BLK_DISCARD_ALIGN 8 /* sectors: 4 KiB, the host filesystem's usual block */

struct blk_limits {
    uint64_t capacity; /* sectors */
    bool readonly;
};

struct blk_request {
    uint32_t type;
    uint64_t sector;
    uint8_t *status;  /* host address of the status byte; NULL when the chain has none */
    uint32_t written; /* the used length to report: the whole writable part */
    uint64_t offset;  /* bytes: where the transfer, discard or write-zeroes starts */
    uint64_t len;     /* bytes of it */
    bool unmap;       /* write-zeroes may deallocate */
    unsigned niov;    /* data segments filled in iov (IN/OUT) */
    uint32_t id_len;  /* GET_ID: bytes of the ID the buffer takes (<= VIRTIO_BLK_ID_BYTES) */
};

#define BLK_PARSE_NO_STATUS (-1)

/* Check a request against the disk. Returns VIRTIO_BLK_S_OK (req filled, data segments in
 * iov[0..BLK_SEG_MAX)), VIRTIO_BLK_S_IOERR or VIRTIO_BLK_S_UNSUPP (the status to complete it
 * with; req->status and req->written are valid), or BLK_PARSE_NO_STATUS when there is no
 * status byte to report anything in (return the chain with nothing written). */
int blk_parse_request(const struct vq_elem *elem, const struct blk_limits *lim,
                      struct blk_request *req, struct iovec *iov);

#endif
