/* virtio-blk (virtio 1.2, 5.2): a raw image (src/block/image.c) behind one or more request
 * queues, its I/O done asynchronously (src/block/aio.c: io_uring or worker threads).
 *
 * Request flow: a queue notification (vCPU thread, or the I/O thread with a KVM ioeventfd)
 * pops every available request, checks it (blk_parse_request) and either completes it at
 * once (errors, GET_ID) or submits it; the engine's eventfd wakes the I/O thread, whose
 * completion callbacks write the status byte, return the chain and interrupt the driver once
 * per batch. Data moves straight between the image and guest memory.
 *
 * Bounds: each queue has a pool of request slots, one per ring entry, allocated when the
 * driver starts the device; a popped request holds its slot until its I/O completed. A driver
 * that makes more requests available than that (only a hostile one can) finds them waiting in
 * its ring until slots free up. Requests with more buffers than we advertised fail.
 *
 * Durability: writes complete only once the kernel has them (the page cache; no O_DIRECT), a
 * FLUSH only once fdatasync returned, so what the guest flushed survives quokka being killed.
 *
 * Locking: one mutex per queue covers its slots, its scratch element and the ring calls made
 * for it (queue lock -> virtqueue lock -> engine lock). Completion callbacks take it; reset
 * never holds it while it waits for the engine, so the I/O thread and reset cannot block each
 * other, whichever thread resets. */
#include "hw/virtio/virtio_blk.h"

#include "block/aio.h"
#include "block/image.h"
#include "util/log.h"
#include "util/opts.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#define BLK_MAX_QUEUES 16
#define BLK_QUEUE_SIZE 256
#define BLK_RESET_WAIT_NS (5 * 1000000000LL)

/* --- request parsing --------------------------------------------------------------------- */

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_le64(const uint8_t *p)
{
    return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

/* Host address of byte `off` of the writable part, or NULL past its end. */
static uint8_t *writable_byte(const struct vq_elem *e, uint64_t off)
{
    for (unsigned i = e->nr_out; i < e->nr_out + e->nr_in; i++) {
        if (off < e->buf[i].len)
            return (uint8_t *)e->buf[i].host + off;
        off -= e->buf[i].len;
    }
    return NULL;
}

/* Bytes [off, off + len) of buffers [first, first + count) as iovecs into guest memory.
 * Returns how many, or -1 when that takes more than BLK_SEG_MAX or the buffers end first. */
static int slice(const struct vq_elem *e, unsigned first, unsigned count, uint64_t off,
                 uint64_t len, struct iovec *iov)
{
    int n = 0;
    for (unsigned i = first; i < first + count && len; i++) {
        uint64_t blen = e->buf[i].len;
        if (off >= blen) {
            off -= blen;
            continue;
        }
        uint64_t take = blen - off < len ? blen - off : len;
        if (n == BLK_SEG_MAX)
            return -1;
        iov[n].iov_base = (uint8_t *)e->buf[i].host + off;
        iov[n].iov_len = (size_t)take;
        n++;
        len -= take;
        off = 0;
    }
    return len ? -1 : n;
}

static bool in_range(const struct blk_limits *lim, uint64_t sector, uint64_t count)
{
    return sector <= lim->capacity && count <= lim->capacity - sector;
}

static int parse_rw(const struct vq_elem *e, const struct blk_limits *lim, struct blk_request *req,
                    struct iovec *iov)
{
    bool write = req->type == VIRTIO_BLK_T_OUT;
    if (write && lim->readonly)
        return VIRTIO_BLK_S_IOERR;
    uint64_t len = write ? e->out_len - VIRTIO_BLK_HDR_SIZE : e->in_len - 1;
    if (len % VIRTIO_BLK_SECTOR_SIZE || len > BLK_MAX_DATA ||
        !in_range(lim, req->sector, len / VIRTIO_BLK_SECTOR_SIZE))
        return VIRTIO_BLK_S_IOERR;
    int n = write ? slice(e, 0, e->nr_out, VIRTIO_BLK_HDR_SIZE, len, iov)
                  : slice(e, e->nr_out, e->nr_in, 0, len, iov);
    if (n < 0)
        return VIRTIO_BLK_S_IOERR;
    req->niov = (unsigned)n;
    req->offset = req->sector * VIRTIO_BLK_SECTOR_SIZE;
    req->len = len;
    return VIRTIO_BLK_S_OK;
}

/* DISCARD and WRITE_ZEROES: one segment (what we advertise); unknown flags, and UNMAP on a
 * discard, are unsupported (5.2.6.2); the range must lie on the disk. */
static int parse_dwz(const struct vq_elem *e, const struct blk_limits *lim, struct blk_request *req)
{
    bool wz = req->type == VIRTIO_BLK_T_WRITE_ZEROES;
    uint64_t payload = e->out_len - VIRTIO_BLK_HDR_SIZE;
    if (lim->readonly || payload == 0 || payload % VIRTIO_BLK_DWZ_SEG_SIZE)
        return VIRTIO_BLK_S_IOERR;
    if (payload / VIRTIO_BLK_DWZ_SEG_SIZE > BLK_MAX_DWZ_SEG)
        return VIRTIO_BLK_S_UNSUPP;
    uint8_t seg[VIRTIO_BLK_DWZ_SEG_SIZE];
    if (vq_elem_read(e, VIRTIO_BLK_HDR_SIZE, seg, sizeof(seg)) != sizeof(seg))
        return VIRTIO_BLK_S_IOERR;
    uint64_t sector = get_le64(seg);
    uint32_t num = get_le32(seg + 8), flags = get_le32(seg + 12);
    if (flags & ~(uint32_t)(wz ? VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP : 0))
        return VIRTIO_BLK_S_UNSUPP;
    if (num > BLK_MAX_DWZ_SECTORS || !in_range(lim, sector, num))
        return VIRTIO_BLK_S_IOERR;
    req->sector = sector;
    req->offset = sector * VIRTIO_BLK_SECTOR_SIZE;
    req->len = (uint64_t)num * VIRTIO_BLK_SECTOR_SIZE;
    req->unmap = flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP;
    return VIRTIO_BLK_S_OK;
}

int blk_parse_request(const struct vq_elem *elem, const struct blk_limits *lim,
                      struct blk_request *req, struct iovec *iov)
{
    memset(req, 0, sizeof(*req));
    /* The status byte is the last writable byte; the used length covers all of them. */
    if (elem->nr_out + elem->nr_in > VQ_MAX_SEGS || elem->in_len == 0 || elem->in_len > UINT32_MAX)
        return BLK_PARSE_NO_STATUS;
    req->status = writable_byte(elem, elem->in_len - 1);
    if (!req->status)
        return BLK_PARSE_NO_STATUS;
    req->written = (uint32_t)elem->in_len;

    uint8_t hdr[VIRTIO_BLK_HDR_SIZE];
    if (elem->nr_out + elem->nr_in > BLK_MAX_BUFS || elem->out_len < sizeof(hdr) ||
        vq_elem_read(elem, 0, hdr, sizeof(hdr)) != sizeof(hdr))
        return VIRTIO_BLK_S_IOERR;
    req->type = get_le32(hdr);
    req->sector = get_le64(hdr + 8);
    switch (req->type) {
    case VIRTIO_BLK_T_IN:
    case VIRTIO_BLK_T_OUT:
        return parse_rw(elem, lim, req, iov);
    case VIRTIO_BLK_T_FLUSH:
        return VIRTIO_BLK_S_OK;
    case VIRTIO_BLK_T_GET_ID:
        req->id_len = elem->in_len - 1 < VIRTIO_BLK_ID_BYTES ? (uint32_t)elem->in_len - 1
                                                             : VIRTIO_BLK_ID_BYTES;
        return VIRTIO_BLK_S_OK;
    case VIRTIO_BLK_T_DISCARD:
    case VIRTIO_BLK_T_WRITE_ZEROES:
        return parse_dwz(elem, lim, req);
    default:
        return VIRTIO_BLK_S_UNSUPP;
    }
}

/* --- the device ------------------------------------------------------------------------ */

struct blk_queue;

/* One request in flight: what is needed to finish it once the I/O completes. */
struct blk_slot {
    struct aio_req aio; /* first: the completion callback gets the slot back from it */
    struct blk_queue *q;
    struct blk_slot *next_free;
    uint32_t type;
    uint64_t sector;
    uint8_t *status;
    uint32_t written;
    /* The chain, to return it (vq_push wants the element back). */
    uint16_t head;
    unsigned nr_out, nr_in;
    uint64_t out_len, in_len;
    struct vq_buf buf[BLK_MAX_BUFS];
    struct iovec iov[BLK_SEG_MAX];
};

struct blk_queue {
    pthread_mutex_t lock;
    struct virtio_blk *blk;
    struct virtqueue *vq;   /* NULL while the device is not running */
    struct vq_elem *elem;   /* scratch for vq_pop and vq_push */
    struct blk_slot *slots; /* nr_slots of them; kept past a reset while I/O still runs */
    struct blk_slot *free_slots;
    unsigned nr_slots, inflight;
    bool halted;  /* pop nothing more: the ring is malformed, or the device is resetting */
    bool starved; /* requests wait in the ring for a free slot */
    bool notify;  /* chains returned since the last vq_notify */
};

struct virtio_blk {
    char *path;
    struct block_image img;
    struct aio_engine *aio;
    struct event_loop *loop;
    bool watching; /* the engine's eventfd is in the loop */
    struct virtio_device *vdev;
    struct virtio_device_ops ops;
    struct blk_limits lim;
    uint8_t serial[VIRTIO_BLK_ID_BYTES];
    uint8_t config[BLK_CONFIG_SIZE];
    unsigned nr_queues;
    struct blk_queue queues[BLK_MAX_QUEUES];
    atomic_bool error_logged;
};

static const enum aio_op aio_op_for[] = {
    [VIRTIO_BLK_T_IN] = AIO_READ,
    [VIRTIO_BLK_T_OUT] = AIO_WRITE,
    [VIRTIO_BLK_T_FLUSH] = AIO_FLUSH,
    [VIRTIO_BLK_T_DISCARD] = AIO_DISCARD,
    [VIRTIO_BLK_T_WRITE_ZEROES] = AIO_WRITE_ZEROES,
};

static const char *type_name(uint32_t type)
{
    switch (type) {
    case VIRTIO_BLK_T_IN:
        return "read";
    case VIRTIO_BLK_T_OUT:
        return "write";
    case VIRTIO_BLK_T_FLUSH:
        return "flush";
    case VIRTIO_BLK_T_DISCARD:
        return "discard";
    default:
        return "write-zeroes";
    }
}

/* The status for an I/O result. Discard is a hint: a file that cannot punch holes has done
 * all it must (QEMU agrees). Host errors reach the guest as IOERR; the first is logged. */
static uint8_t io_status(struct virtio_blk *blk, const struct blk_slot *s, int result)
{
    if (result == 0 || (result == -EOPNOTSUPP && s->type == VIRTIO_BLK_T_DISCARD))
        return VIRTIO_BLK_S_OK;
    if (!atomic_exchange(&blk->error_logged, true))
        qk_warn("disk '%s': %s at sector %" PRIu64 " failed: %s (the guest sees an I/O error)",
                blk->path, type_name(s->type), s->sector, strerror(-result));
    return VIRTIO_BLK_S_IOERR;
}

static void free_slots_locked(struct blk_queue *q)
{
    free(q->slots);
    q->slots = NULL;
    q->free_slots = NULL;
    q->nr_slots = 0;
}

static void push_slot_locked(struct blk_queue *q, const struct blk_slot *s)
{
    struct vq_elem *e = q->elem;
    e->head = s->head;
    e->nr_out = s->nr_out;
    e->nr_in = s->nr_in;
    e->out_len = s->out_len;
    e->in_len = s->in_len;
    memcpy(e->buf, s->buf, (s->nr_out + s->nr_in) * sizeof(e->buf[0]));
    vq_push(q->vq, e, s->written);
    q->notify = true;
}

/* The engine finished a request (on whichever thread polled it). */
static void blk_io_done(struct aio_req *req, int result)
{
    struct blk_slot *s = (struct blk_slot *)req;
    struct blk_queue *q = s->q;
    uint8_t status = io_status(q->blk, s, result);
    pthread_mutex_lock(&q->lock);
    if (q->vq) { /* else the device was reset meanwhile: the chain is no longer ours */
        *s->status = status;
        push_slot_locked(q, s);
    }
    s->next_free = q->free_slots;
    q->free_slots = s;
    q->inflight--;
    if (!q->vq && !q->inflight)
        free_slots_locked(q); /* the last straggler of a reset that stopped waiting */
    pthread_mutex_unlock(&q->lock);
}

/* Complete a request at once with `status` (req->status valid unless NO_STATUS). */
static void finish_now_locked(struct blk_queue *q, const struct blk_request *req, int status)
{
    if (status == BLK_PARSE_NO_STATUS) {
        vq_push(q->vq, q->elem, 0);
    } else {
        *req->status = (uint8_t)status;
        vq_push(q->vq, q->elem, req->written);
    }
    q->notify = true;
}

static void submit_locked(struct blk_queue *q, struct blk_slot *s, const struct blk_request *req)
{
    const struct vq_elem *e = q->elem;
    q->free_slots = s->next_free;
    q->inflight++;
    s->type = req->type;
    s->sector = req->sector;
    s->status = req->status;
    s->written = req->written;
    s->head = e->head;
    s->nr_out = e->nr_out;
    s->nr_in = e->nr_in;
    s->out_len = e->out_len;
    s->in_len = e->in_len;
    memcpy(s->buf, e->buf, (e->nr_out + e->nr_in) * sizeof(s->buf[0]));
    s->aio = (struct aio_req){
        .op = aio_op_for[req->type],
        .fd = q->blk->img.fd,
        .iov = s->iov,
        .iovcnt = req->niov,
        .offset = req->offset,
        .len = req->len,
        .unmap = req->unmap,
        .complete = blk_io_done,
    };
    aio_submit(q->blk->aio, &s->aio);
}

/* Handle the request just popped into q->elem; a free slot exists. */
static void start_request_locked(struct blk_queue *q)
{
    struct virtio_blk *blk = q->blk;
    struct blk_slot *s = q->free_slots;
    struct blk_request req;
    int status = blk_parse_request(q->elem, &blk->lim, &req, s->iov);
    if (status == VIRTIO_BLK_S_OK && req.type != VIRTIO_BLK_T_GET_ID) {
        submit_locked(q, s, &req);
        return;
    }
    if (status == VIRTIO_BLK_S_OK)
        vq_elem_write(q->elem, 0, blk->serial, req.id_len);
    finish_now_locked(q, &req, status);
}

/* Take one request; false when there is none to take now. */
static bool take_one_locked(struct blk_queue *q)
{
    if (!q->free_slots) {
        q->starved = true; /* completions free slots and come back here */
        return false;
    }
    int rc = vq_pop(q->vq, q->elem);
    if (rc < 0)
        q->halted = true; /* the transport set NEEDS_RESET; leave the ring alone */
    if (rc <= 0)
        return false;
    start_request_locked(q);
    return true;
}

/* Drain the available ring with notifications off, then re-enable them and look once more
 * for requests that raced with re-enabling (virtio 1.2, 2.7.10). */
static void process_locked(struct blk_queue *q)
{
    q->starved = false;
    if (!q->vq || q->halted)
        return;
    for (;;) {
        vq_set_notification(q->vq, false);
        while (take_one_locked(q))
            ;
        if (q->starved || q->halted || !vq_set_notification(q->vq, true))
            break;
    }
}

static void notify_locked(struct blk_queue *q)
{
    if (q->notify && q->vq)
        vq_notify(q->vq);
    q->notify = false;
}

static void blk_queue_notify(void *opaque, unsigned index)
{
    struct virtio_blk *blk = opaque;
    if (index >= blk->nr_queues)
        return;
    struct blk_queue *q = &blk->queues[index];
    pthread_mutex_lock(&q->lock);
    process_locked(q);
    notify_locked(q);
    pthread_mutex_unlock(&q->lock);
    aio_kick(blk->aio);
}

/* The I/O thread: completions are ready. One interrupt per queue per batch; queues that ran
 * out of slots resume. */
static void blk_aio_ready(void *opaque, uint32_t revents)
{
    (void)revents;
    struct virtio_blk *blk = opaque;
    aio_poll(blk->aio);
    for (unsigned i = 0; i < blk->nr_queues; i++) {
        struct blk_queue *q = &blk->queues[i];
        pthread_mutex_lock(&q->lock);
        if (q->starved)
            process_locked(q);
        notify_locked(q);
        pthread_mutex_unlock(&q->lock);
    }
    aio_kick(blk->aio);
}

/* Stop every queue: requests still running finish into their rings while we wait (bounded);
 * whatever is still running after that keeps its slots, which its completion frees, and the
 * device refuses to start again until then. */
static void blk_reset(void *opaque)
{
    struct virtio_blk *blk = opaque;
    for (unsigned i = 0; i < blk->nr_queues; i++) {
        pthread_mutex_lock(&blk->queues[i].lock);
        blk->queues[i].halted = true;
        pthread_mutex_unlock(&blk->queues[i].lock);
    }
    if (!aio_drain(blk->aio, BLK_RESET_WAIT_NS))
        qk_warn("disk '%s': I/O still running %lld s after the guest reset the device", blk->path,
                BLK_RESET_WAIT_NS / 1000000000LL);
    for (unsigned i = 0; i < blk->nr_queues; i++) {
        struct blk_queue *q = &blk->queues[i];
        pthread_mutex_lock(&q->lock);
        q->vq = NULL;
        q->halted = q->starved = q->notify = false;
        if (!q->inflight)
            free_slots_locked(q);
        pthread_mutex_unlock(&q->lock);
    }
}

static int start_queue_locked(struct blk_queue *q, struct virtqueue *vq)
{
    unsigned n = vq_size(vq);
    n = n < 1 ? 1 : n > BLK_QUEUE_SIZE ? BLK_QUEUE_SIZE : n;
    q->slots = calloc(n, sizeof(*q->slots));
    if (!q->slots)
        return -1;
    q->nr_slots = n;
    for (unsigned i = 0; i < n; i++) {
        q->slots[i].q = q;
        q->slots[i].next_free = i + 1 < n ? &q->slots[i + 1] : NULL;
    }
    q->free_slots = q->slots;
    q->vq = vq;
    return 0;
}

static int blk_activate(void *opaque)
{
    struct virtio_blk *blk = opaque;
    for (unsigned i = 0; i < blk->nr_queues; i++) {
        struct blk_queue *q = &blk->queues[i];
        struct virtqueue *vq = virtio_queue(blk->vdev, i); /* NULL: the driver left it off */
        pthread_mutex_lock(&q->lock);
        bool busy = q->slots != NULL;
        int rc = busy ? -1 : vq ? start_queue_locked(q, vq) : 0;
        pthread_mutex_unlock(&q->lock);
        if (rc < 0) {
            qk_warn("disk '%s': cannot start queue %u (%s)", blk->path, i,
                    busy ? "I/O from before a reset still running" : "out of memory");
            blk_reset(blk);
            return -1;
        }
    }
    return 0;
}

static void blk_config_read(void *opaque, uint32_t offset, void *buf, uint32_t len)
{
    struct virtio_blk *blk = opaque;
    memset(buf, 0, len);
    if (offset <= BLK_CONFIG_SIZE && len <= BLK_CONFIG_SIZE - offset)
        memcpy(buf, blk->config + offset, len);
}

static void blk_config_write(void *opaque, uint32_t offset, const void *buf, uint32_t len)
{
    /* Nothing is writable: the cache mode (writeback, F_CONFIG_WCE) is not offered. */
    (void)opaque, (void)offset, (void)buf, (void)len;
}

/* --- creation ---------------------------------------------------------------------------- */

static void put_le(uint8_t *p, uint64_t v, unsigned bytes)
{
    for (unsigned i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void build_config(struct virtio_blk *blk)
{
    uint8_t *c = blk->config;
    put_le(c + BLK_CFG_CAPACITY, blk->lim.capacity, 8);
    put_le(c + BLK_CFG_SIZE_MAX, BLK_SIZE_MAX, 4);
    put_le(c + BLK_CFG_SEG_MAX, BLK_SEG_MAX, 4);
    put_le(c + BLK_CFG_BLK_SIZE, VIRTIO_BLK_SECTOR_SIZE, 4);
    put_le(c + BLK_CFG_NUM_QUEUES, blk->nr_queues, 2);
    if (blk->lim.readonly)
        return;
    put_le(c + BLK_CFG_MAX_DISCARD_SECTORS, BLK_MAX_DWZ_SECTORS, 4);
    put_le(c + BLK_CFG_MAX_DISCARD_SEG, BLK_MAX_DWZ_SEG, 4);
    put_le(c + BLK_CFG_DISCARD_ALIGN, BLK_DISCARD_ALIGN, 4);
    put_le(c + BLK_CFG_MAX_WZ_SECTORS, BLK_MAX_DWZ_SECTORS, 4);
    put_le(c + BLK_CFG_MAX_WZ_SEG, BLK_MAX_DWZ_SEG, 4);
    c[BLK_CFG_WZ_MAY_UNMAP] = 1; /* UNMAP write-zeroes punch holes */
}

static uint64_t features(const struct virtio_blk *blk)
{
    uint64_t f = 1ULL << VIRTIO_BLK_F_SIZE_MAX | 1ULL << VIRTIO_BLK_F_SEG_MAX |
                 1ULL << VIRTIO_BLK_F_BLK_SIZE | 1ULL << VIRTIO_BLK_F_FLUSH;
    if (blk->lim.readonly)
        f |= 1ULL << VIRTIO_BLK_F_RO;
    else
        f |= 1ULL << VIRTIO_BLK_F_DISCARD | 1ULL << VIRTIO_BLK_F_WRITE_ZEROES;
    if (blk->nr_queues > 1)
        f |= 1ULL << VIRTIO_BLK_F_MQ;
    return f;
}

struct blk_options {
    const char *path, *serial;
    bool readonly;
    uint64_t queues;
};

static int parse_options(const struct device_host *host, const struct opts *o,
                         struct blk_options *out, char *err, size_t errlen)
{
    static const char what[] = "virtio-blk";
    out->path = opts_get(o, "path");
    out->serial = opts_get(o, "serial");
    if (!out->path || !*out->path)
        return qk_fail(err, errlen, "%s: path=IMG is required", what);
    if (out->serial && strlen(out->serial) > VIRTIO_BLK_ID_BYTES)
        return qk_fail(err, errlen, "%s: serial='%s' is longer than %d bytes", what, out->serial,
                       VIRTIO_BLK_ID_BYTES);
    unsigned dflt = host->nr_vcpus < 1                ? 1
                    : host->nr_vcpus > BLK_MAX_QUEUES ? BLK_MAX_QUEUES
                                                      : host->nr_vcpus;
    if (opts_get_bool(o, "readonly", false, &out->readonly, what, err, errlen) < 0 ||
        opts_get_u64(o, "queues", dflt, 1, BLK_MAX_QUEUES, &out->queues, what, err, errlen) < 0)
        return -1;
    return 0;
}

static void blk_destroy(void *state);

/* Queues, engine, config, event loop; the transport last. */
static int blk_setup(struct virtio_blk *blk, const struct device_host *host, char *err,
                     size_t errlen)
{
    for (unsigned i = 0; i < blk->nr_queues; i++) {
        struct blk_queue *q = &blk->queues[i];
        pthread_mutex_init(&q->lock, NULL);
        q->blk = blk;
        q->elem = malloc(sizeof(*q->elem));
        if (!q->elem)
            return qk_fail(err, errlen, "out of memory");
    }
    blk->aio = aio_new(AIO_BACKEND_AUTO, blk->nr_queues * BLK_QUEUE_SIZE, err, errlen);
    if (!blk->aio)
        return -1;
    build_config(blk);
    blk->ops = (struct virtio_device_ops){
        .device_id = VIRTIO_ID_BLOCK,
        .features = features(blk),
        .num_queues = blk->nr_queues,
        .queue_max_size = BLK_QUEUE_SIZE,
        .config_size = BLK_CONFIG_SIZE,
        .config_read = blk_config_read,
        .config_write = blk_config_write,
        .activate = blk_activate,
        .queue_notify = blk_queue_notify,
        .reset = blk_reset,
    };
    if (!host->loop)
        return qk_fail(err, errlen, "virtio-blk needs the machine's event loop");
    if (event_loop_add(host->loop, aio_event_fd(blk->aio), EPOLLIN, blk_aio_ready, blk, err,
                       errlen) < 0)
        return -1;
    blk->loop = host->loop;
    blk->watching = true;
    blk->vdev = virtio_pci_new(host, &blk->ops, blk, "virtio-blk", err, errlen);
    return blk->vdev ? 0 : -1;
}

static int blk_create(const struct device_host *host, const struct device_args *args, void **state,
                      char *err, size_t errlen)
{
    struct blk_options o;
    if (parse_options(host, args->opts, &o, err, errlen) < 0)
        return -1;
    struct virtio_blk *blk = calloc(1, sizeof(*blk));
    if (!blk)
        return qk_fail(err, errlen, "out of memory");
    blk->img.fd = -1;
    blk->path = strdup(o.path);
    if (!blk->path) {
        free(blk);
        return qk_fail(err, errlen, "out of memory");
    }
    if (block_image_open(&blk->img, o.path, o.readonly, err, errlen) < 0)
        goto fail;
    blk->lim = (struct blk_limits){blk->img.size / VIRTIO_BLK_SECTOR_SIZE, o.readonly};
    if (o.serial)
        memcpy(blk->serial, o.serial, strlen(o.serial)); /* zero-padded; NUL-ended if short */
    blk->nr_queues = (unsigned)o.queues;
    if (blk_setup(blk, host, err, errlen) < 0)
        goto fail;
    *state = blk;
    return 0;
fail:
    blk_destroy(blk);
    return -1;
}

static void blk_destroy(void *state)
{
    struct virtio_blk *blk = state;
    if (!blk)
        return;
    if (blk->vdev)
        virtio_pci_free(blk->vdev); /* resets: no I/O in flight after this */
    if (blk->watching)
        event_loop_remove(blk->loop, aio_event_fd(blk->aio));
    aio_free(blk->aio); /* waits for anything a timed-out reset left running */
    for (unsigned i = 0; i < blk->nr_queues; i++) {
        struct blk_queue *q = &blk->queues[i];
        if (!q->blk)
            continue; /* setup stopped before this queue */
        free_slots_locked(q);
        free(q->elem);
        pthread_mutex_destroy(&q->lock);
    }
    block_image_close(&blk->img);
    free(blk->path);
    free(blk);
}

/* Snapshots: requests in flight finish first (their completions land in guest memory and
 * the used rings), so the saved ring indices describe every request as done or not taken. */
#define BLK_QUIESCE_WAIT_NS (5LL * 1000000000)
static int blk_quiesce(void *state, char *err, size_t errlen)
{
    struct virtio_blk *blk = state;
    if (!aio_drain(blk->aio, BLK_QUIESCE_WAIT_NS))
        return qk_fail(err, errlen, "disk '%s': I/O still in flight after 5 s", blk->path);
    for (unsigned i = 0; i < blk->nr_queues; i++) {
        pthread_mutex_lock(&blk->queues[i].lock);
        unsigned n = blk->queues[i].inflight;
        pthread_mutex_unlock(&blk->queues[i].lock);
        if (n)
            return qk_fail(err, errlen, "disk '%s': I/O still in flight", blk->path);
    }
    return 0;
}

static void blk_save(void *state, struct snap_writer *w)
{
    struct virtio_blk *blk = state;
    virtio_pci_save(blk->vdev, w);
}

static int blk_load(void *state, struct snap_reader *r, char *err, size_t errlen)
{
    struct virtio_blk *blk = state;
    return virtio_pci_load(blk->vdev, r, err, errlen);
}

static const char *const blk_option_keys[] = {"path", "readonly", "serial", "queues", NULL};

DEVICE_MODEL(virtio_blk_model) = {
    .name = "virtio-blk",
    .level = DEVICE_LEVEL_PCI,
    .default_instance = false,
    .option_keys = blk_option_keys,
    .implied_key = "path",
    .create = blk_create,
    .destroy = blk_destroy,
    .save = blk_save,
    .load = blk_load,
    .quiesce = blk_quiesce,
};
