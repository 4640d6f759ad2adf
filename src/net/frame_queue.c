/* Records are an 8-byte header (le32 length, 4 bytes padding) then the bytes, padded to 8.
 * A record that does not fit before the end of the ring starts at 0 instead; a header of
 * FQ_WRAP (or fewer than 8 bytes left) tells the reader to go back to 0. */
#include "net/frame_queue.h"

#include <stdlib.h>
#include <string.h>

#define FQ_HDR 8
#define FQ_WRAP UINT32_MAX

static size_t record_bytes(size_t len)
{
    return FQ_HDR + ((len + 7) & ~(size_t)7);
}

int fq_init(struct frame_queue *q, size_t bytes)
{
    memset(q, 0, sizeof(*q));
    q->size = bytes & ~(size_t)7;
    q->buf = malloc(q->size);
    return q->buf ? 0 : -1;
}

void fq_destroy(struct frame_queue *q)
{
    free(q->buf);
    memset(q, 0, sizeof(*q));
}

/* Where a record of `need` bytes can go, or SIZE_MAX. Records live in [tail, head) (possibly
 * wrapped); count tells an empty ring (head == tail) from a full one. */
static size_t place(const struct frame_queue *q, size_t need)
{
    if (q->count && q->head == q->tail)
        return SIZE_MAX;      /* full */
    if (q->head >= q->tail) { /* not wrapped: [0, tail) and [head, size) are free */
        if (q->size - q->head >= need)
            return q->head;
        return need <= q->tail ? 0 : SIZE_MAX; /* wrap to the start */
    }
    return q->tail - q->head >= need ? q->head : SIZE_MAX;
}

bool fq_push(struct frame_queue *q, const struct iovec *iov, unsigned n, size_t len)
{
    if (len > UINT32_MAX - 8)
        return false;
    if (q->count == 0)
        q->head = q->tail = 0;
    size_t need = record_bytes(len), at = place(q, need);
    if (at == SIZE_MAX)
        return false;
    if (at == 0 && q->head != 0 && q->size - q->head >= FQ_HDR) {
        uint32_t wrap = FQ_WRAP;
        memcpy(q->buf + q->head, &wrap, 4);
    }
    uint32_t l32 = (uint32_t)len;
    memcpy(q->buf + at, &l32, 4);
    size_t off = at + FQ_HDR, left = len;
    for (unsigned i = 0; i < n && left; i++) {
        size_t take = iov[i].iov_len < left ? iov[i].iov_len : left;
        memcpy(q->buf + off, iov[i].iov_base, take);
        off += take;
        left -= take;
    }
    q->head = at + need;
    q->count++;
    return true;
}

uint8_t *fq_peek(struct frame_queue *q, size_t *len)
{
    if (q->count == 0)
        return NULL;
    uint32_t l32 = FQ_WRAP;
    if (q->size - q->tail >= FQ_HDR)
        memcpy(&l32, q->buf + q->tail, 4);
    if (l32 == FQ_WRAP) {
        q->tail = 0;
        memcpy(&l32, q->buf, 4);
    }
    *len = l32;
    return q->buf + q->tail + FQ_HDR;
}

void fq_pop(struct frame_queue *q)
{
    size_t len;
    if (!fq_peek(q, &len))
        return;
    q->tail += record_bytes(len);
    q->count--;
}
