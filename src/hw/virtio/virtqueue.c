/* The split-virtqueue walker shared by every virtio device (virtio 1.2, 2.7).
 *
 * The driver writes the rings on another CPU while we read them, so:
 * - avail->idx is loaded with acquire ordering before the entries it publishes are read, and
 *   used->idx is stored with release ordering after the used entry (and the data) it publishes;
 * - every descriptor is copied into a local before it is checked and used (no double fetch);
 * - the suppression handshakes (avail_event / used flags against avail->idx, used->idx against
 *   used_event / avail flags) are store-then-load on both sides, which needs a full fence
 *   between them on ours (the driver has its own): without it, a kick or an interrupt is lost.
 *
 * Nothing the guest writes can make a loop run longer than the queue size (direct chains) or
 * the indirect table size (at most VQ_MAX_SEGS entries), and nothing is sized by the guest. */
#include "hw/virtio/virtqueue.h"

#include <endian.h>
#include <string.h>

/* --- ring accessors: guest memory is little-endian ------------------------------------------ */

static uint16_t load16_acquire(const uint16_t *p)
{
    return le16toh(__atomic_load_n(p, __ATOMIC_ACQUIRE));
}

static uint16_t load16(const uint16_t *p)
{
    return le16toh(__atomic_load_n(p, __ATOMIC_RELAXED));
}

static void store16(uint16_t *p, uint16_t v)
{
    __atomic_store_n(p, htole16(v), __ATOMIC_RELAXED);
}

static void full_fence(void)
{
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

static uint16_t *used_flags(const struct virtqueue *vq)
{
    return (uint16_t *)vq->used;
}

static uint16_t *used_idx_ptr(const struct virtqueue *vq)
{
    return (uint16_t *)(vq->used + 2);
}

static uint32_t *used_elem(const struct virtqueue *vq, uint16_t slot)
{
    return (uint32_t *)(vq->used + 4 + (size_t)VRING_USED_ELEM_SIZE * slot);
}

static uint16_t *avail_event(const struct virtqueue *vq)
{
    return (uint16_t *)(vq->used + 4 + (size_t)VRING_USED_ELEM_SIZE * vq->size);
}

static uint16_t *used_event(const struct virtqueue *vq)
{
    return &vq->avail[2 + vq->size];
}

struct desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags, next;
};

static void read_desc(const uint8_t *table, unsigned i, struct desc *d)
{
    uint8_t raw[VRING_DESC_SIZE];
    memcpy(raw, table + (size_t)i * VRING_DESC_SIZE, sizeof(raw));
    uint64_t addr;
    uint32_t len;
    uint16_t flags, next;
    memcpy(&addr, raw, 8);
    memcpy(&len, raw + 8, 4);
    memcpy(&flags, raw + 12, 2);
    memcpy(&next, raw + 14, 2);
    *d = (struct desc){le64toh(addr), le32toh(len), le16toh(flags), le16toh(next)};
}

/* --- set-up ----------------------------------------------------------------------------------- */

static void clear_state(struct virtqueue *vq)
{
    vq->ready = vq->broken = vq->event_idx = vq->indirect = false;
    vq->notify_enabled = true;
    vq->size = vq->last_avail = vq->used_idx = vq->signalled_used = 0;
    vq->desc_gpa = vq->avail_gpa = vq->used_gpa = 0;
    vq->desc = NULL;
    vq->avail = NULL;
    vq->used = NULL;
}

void vq_init(struct virtqueue *vq, const struct dma_space *dma, unsigned index,
             const struct vq_hooks *hooks)
{
    memset(vq, 0, sizeof(*vq));
    pthread_mutex_init(&vq->lock, NULL);
    vq->dma = dma;
    vq->index = index;
    vq->hooks = *hooks;
    clear_state(vq);
}

void vq_destroy(struct virtqueue *vq)
{
    pthread_mutex_destroy(&vq->lock);
}

static bool valid_layout(const struct vq_layout *l)
{
    if (l->size == 0 || l->size > VQ_MAX_SIZE || (l->size & (l->size - 1)))
        return false;
    return l->desc % VRING_DESC_ALIGN == 0 && l->avail % VRING_AVAIL_ALIGN == 0 &&
           l->used % VRING_USED_ALIGN == 0;
}

int vq_start(struct virtqueue *vq, const struct vq_layout *layout)
{
    if (!valid_layout(layout))
        return -1;
    void *desc = dma_map(vq->dma, layout->desc, vring_desc_bytes(layout->size));
    void *avail = dma_map(vq->dma, layout->avail, vring_avail_bytes(layout->size));
    void *used = dma_map(vq->dma, layout->used, vring_used_bytes(layout->size));
    if (!desc || !avail || !used)
        return -1;
    pthread_mutex_lock(&vq->lock);
    clear_state(vq);
    vq->size = layout->size;
    vq->event_idx = layout->event_idx;
    vq->indirect = layout->indirect;
    vq->desc_gpa = layout->desc;
    vq->avail_gpa = layout->avail;
    vq->used_gpa = layout->used;
    vq->desc = desc;
    vq->avail = avail;
    vq->used = used;
    vq->ready = true; /* indices start at 0, as the driver's do */
    pthread_mutex_unlock(&vq->lock);
    return 0;
}

void vq_stop(struct virtqueue *vq)
{
    pthread_mutex_lock(&vq->lock);
    clear_state(vq);
    pthread_mutex_unlock(&vq->lock);
}

void vq_get_indices(struct virtqueue *vq, struct vq_indices *out)
{
    pthread_mutex_lock(&vq->lock);
    *out = (struct vq_indices){vq->last_avail, vq->used_idx, vq->signalled_used, vq->notify_enabled,
                               vq->broken};
    pthread_mutex_unlock(&vq->lock);
}

void vq_set_indices(struct virtqueue *vq, const struct vq_indices *in)
{
    pthread_mutex_lock(&vq->lock);
    vq->last_avail = in->last_avail;
    vq->used_idx = in->used_idx;
    vq->signalled_used = in->signalled_used;
    vq->notify_enabled = in->notify_enabled;
    vq->broken = in->broken;
    pthread_mutex_unlock(&vq->lock);
}

bool vq_ready(struct virtqueue *vq)
{
    pthread_mutex_lock(&vq->lock);
    bool ready = vq->ready;
    pthread_mutex_unlock(&vq->lock);
    return ready;
}

uint16_t vq_size(const struct virtqueue *vq)
{
    /* Fixed between activate and reset, the only time a device asks. */
    return vq->size;
}

unsigned vq_index(const struct virtqueue *vq)
{
    return vq->index;
}

/* --- taking requests -------------------------------------------------------------------------- */

/* Append one descriptor's buffer to elem. Readable buffers must all come before writable ones
 * (spec 2.7.4.2); zero-length buffers are checked for that but not kept. */
static int add_buf(const struct dma_space *dma, struct vq_elem *elem, const struct desc *d,
                   bool *seen_write)
{
    bool write = d->flags & VRING_DESC_F_WRITE;
    if (!write && *seen_write)
        return -1;
    *seen_write |= write;
    if (d->len == 0)
        return 0;
    if (elem->nr_out + elem->nr_in >= VQ_MAX_SEGS)
        return -1;
    void *host = dma_map(dma, d->addr, d->len);
    if (!host)
        return -1;
    /* The used ring reports at most 2^32-1 bytes, and no driver builds a bigger request. */
    uint64_t *total = write ? &elem->in_len : &elem->out_len;
    if (*total + d->len > UINT32_MAX)
        return -1;
    *total += d->len;
    elem->buf[elem->nr_out + elem->nr_in] = (struct vq_buf){host, d->len, d->addr};
    if (write)
        elem->nr_in++;
    else
        elem->nr_out++;
    return 0;
}

/* The indirect table a descriptor points to, or NULL when it may not be used: only when
 * negotiated, never nested, never with NEXT (spec 2.7.5.3.1), a whole number of descriptors,
 * at most VQ_MAX_SEGS of them, all in RAM. */
static const uint8_t *indirect_table(const struct virtqueue *vq, const struct desc *d, bool nested,
                                     unsigned *entries)
{
    if (!vq->indirect || nested || (d->flags & VRING_DESC_F_NEXT))
        return NULL;
    if (d->len == 0 || d->len % VRING_DESC_SIZE || d->len / VRING_DESC_SIZE > VQ_MAX_SEGS)
        return NULL;
    *entries = d->len / VRING_DESC_SIZE;
    return dma_map(vq->dma, d->addr, d->len);
}

/* Follow the chain at `head`: zero or more direct descriptors, optionally ending in one that
 * points to an indirect table (spec 2.7.5.3.2). `budget` bounds the descriptors read from each
 * table by its size, so a loop ends as "too long". */
static int walk_chain(const struct virtqueue *vq, uint16_t head, struct vq_elem *elem)
{
    const uint8_t *table = vq->desc;
    unsigned table_size = vq->size, budget = vq->size, i = head;
    bool nested = false, seen_write = false;
    elem->head = head;
    elem->nr_out = elem->nr_in = 0;
    elem->out_len = elem->in_len = 0;
    for (;;) {
        struct desc d;
        if (budget-- == 0)
            return -1;
        read_desc(table, i, &d);
        if (d.flags & VRING_DESC_F_INDIRECT) {
            table = indirect_table(vq, &d, nested, &table_size);
            if (!table)
                return -1;
            budget = table_size;
            nested = true;
            i = 0;
            continue;
        }
        if (add_buf(vq->dma, elem, &d, &seen_write) < 0)
            return -1;
        if (!(d.flags & VRING_DESC_F_NEXT))
            return 0;
        if (d.next >= table_size)
            return -1;
        i = d.next;
    }
}

/* The ring looked empty: if the driver is to kick us for more, tell it where from (avail_event)
 * and look again after a full fence, or a buffer published between our load of avail->idx and
 * its load of avail_event would be neither seen nor kicked. */
static bool recheck_empty(struct virtqueue *vq, uint16_t *avail_idx)
{
    if (!vq->event_idx || !vq->notify_enabled)
        return false;
    store16(avail_event(vq), vq->last_avail);
    full_fence();
    *avail_idx = load16_acquire(&vq->avail[1]);
    return *avail_idx != vq->last_avail;
}

static int pop_locked(struct virtqueue *vq, struct vq_elem *elem)
{
    if (!vq->ready)
        return 0;
    if (vq->broken)
        return -1;
    uint16_t avail_idx = load16_acquire(&vq->avail[1]);
    if (avail_idx == vq->last_avail && !recheck_empty(vq, &avail_idx))
        return 0;
    /* More than a ring's worth outstanding: the driver's index is garbage. */
    if ((uint16_t)(avail_idx - vq->last_avail) > vq->size)
        return -1;
    uint16_t head = load16(&vq->avail[2 + (vq->last_avail & (vq->size - 1))]);
    if (head >= vq->size || walk_chain(vq, head, elem) < 0)
        return -1;
    vq->last_avail++;
    /* Kick us when the next entry comes (no fence: the empty path re-checks with one). */
    if (vq->event_idx && vq->notify_enabled)
        store16(avail_event(vq), vq->last_avail);
    return 1;
}

int vq_pop(struct virtqueue *vq, struct vq_elem *elem)
{
    pthread_mutex_lock(&vq->lock);
    int rc = pop_locked(vq, elem);
    bool report = rc < 0 && !vq->broken;
    if (rc < 0)
        vq->broken = true;
    pthread_mutex_unlock(&vq->lock);
    if (report && vq->hooks.malformed)
        vq->hooks.malformed(vq->hooks.opaque, vq->index);
    return rc;
}

/* --- returning requests ----------------------------------------------------------------------- */

/* Report the first `len` bytes of the writable buffers as written (code invalidation). */
static void mark_written(const struct dma_space *dma, const struct vq_elem *elem, uint32_t len)
{
    unsigned end = elem->nr_out + elem->nr_in;
    if (end > VQ_MAX_SEGS)
        end = VQ_MAX_SEGS;
    for (unsigned i = elem->nr_out; i < end && len; i++) {
        uint32_t n = elem->buf[i].len < len ? elem->buf[i].len : len;
        dma_mark_written(dma, elem->buf[i].gpa, n);
        len -= n;
    }
}

void vq_push(struct virtqueue *vq, const struct vq_elem *elem, uint32_t written)
{
    pthread_mutex_lock(&vq->lock);
    if (vq->ready) {
        uint32_t len = written < elem->in_len ? written : (uint32_t)elem->in_len;
        /* Before the used ring moves: the guest may run the code as soon as it sees it. */
        mark_written(vq->dma, elem, len);
        uint32_t *slot = used_elem(vq, vq->used_idx & (vq->size - 1));
        __atomic_store_n(&slot[0], htole32(elem->head), __ATOMIC_RELAXED);
        __atomic_store_n(&slot[1], htole32(len), __ATOMIC_RELAXED);
        vq->used_idx++;
        __atomic_store_n(used_idx_ptr(vq), htole16(vq->used_idx), __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&vq->lock);
}

/* Whether the driver wants an interrupt for the entries pushed since the last one. */
static bool should_interrupt(struct virtqueue *vq)
{
    uint16_t old = vq->signalled_used, now = vq->used_idx;
    if (old == now)
        return false;
    vq->signalled_used = now;
    /* used->idx (stored above) must be visible before we read the driver's suppression. */
    full_fence();
    if (vq->event_idx)
        return vring_need_event(load16(used_event(vq)), now, old);
    return !(load16(&vq->avail[0]) & VRING_AVAIL_F_NO_INTERRUPT);
}

void vq_notify(struct virtqueue *vq)
{
    pthread_mutex_lock(&vq->lock);
    bool fire = vq->ready && should_interrupt(vq);
    pthread_mutex_unlock(&vq->lock);
    if (fire && vq->hooks.interrupt)
        vq->hooks.interrupt(vq->hooks.opaque, vq->index);
}

bool vq_set_notification(struct virtqueue *vq, bool enable)
{
    bool pending = false;
    pthread_mutex_lock(&vq->lock);
    if (vq->ready) {
        vq->notify_enabled = enable;
        /* With EVENT_IDX, an avail_event the driver has already passed stops kicks. */
        if (vq->event_idx)
            store16(avail_event(vq), enable ? vq->last_avail : (uint16_t)(vq->last_avail - 1));
        else
            store16(used_flags(vq), enable ? 0 : VRING_USED_F_NO_NOTIFY);
        if (enable) {
            full_fence();
            pending = load16_acquire(&vq->avail[1]) != vq->last_avail;
        }
    }
    pthread_mutex_unlock(&vq->lock);
    return pending;
}

/* --- copying ---------------------------------------------------------------------------------- */

/* Copy len bytes starting `offset` bytes into the buffers: into dst when reading them, from
 * src when writing them (the other one is NULL). */
static size_t copy_segs(const struct vq_buf *buf, unsigned nr, size_t offset, size_t len,
                        uint8_t *dst, const uint8_t *src)
{
    size_t done = 0;
    for (unsigned i = 0; i < nr && done < len; i++) {
        if (offset >= buf[i].len) {
            offset -= buf[i].len;
            continue;
        }
        size_t n = buf[i].len - offset;
        if (n > len - done)
            n = len - done;
        uint8_t *host = (uint8_t *)buf[i].host + offset;
        if (src)
            memcpy(host, src + done, n);
        else
            memcpy(dst + done, host, n);
        done += n;
        offset = 0;
    }
    return done;
}

size_t vq_elem_read(const struct vq_elem *elem, size_t offset, void *dst, size_t len)
{
    unsigned nr = elem->nr_out < VQ_MAX_SEGS ? elem->nr_out : VQ_MAX_SEGS;
    return copy_segs(elem->buf, nr, offset, len, dst, NULL);
}

size_t vq_elem_write(const struct vq_elem *elem, size_t offset, const void *src, size_t len)
{
    if (elem->nr_out >= VQ_MAX_SEGS)
        return 0;
    unsigned nr =
        elem->nr_in < VQ_MAX_SEGS - elem->nr_out ? elem->nr_in : VQ_MAX_SEGS - elem->nr_out;
    return copy_segs(elem->buf + elem->nr_out, nr, offset, len, NULL, src);
}
