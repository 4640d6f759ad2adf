/* A bounded FIFO of frames in one fixed byte ring: what user-mode networking queues between
 * threads (guest frames waiting for the slirp thread) and for a slow guest (frames waiting for
 * receive buffers). Each frame is stored contiguously, so a consumer hands it on as is. A push
 * that does not fit fails: the caller pushes back (NET_TX_BUSY) or drops and counts. No
 * locking: callers serialise (a mutex, or a single thread). */
#ifndef QUOKKA_NET_FRAME_QUEUE_H
#define QUOKKA_NET_FRAME_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct frame_queue {
    uint8_t *buf;
    size_t size;       /* bytes of ring */
    size_t head, tail; /* next record is written at head; the oldest starts at tail */
    unsigned count;    /* records queued */
};

/* A ring of `bytes` (a multiple of 8, at least one largest frame). -1 when out of memory. */
int fq_init(struct frame_queue *q, size_t bytes);
void fq_destroy(struct frame_queue *q);

/* Append one record: the `len` bytes of iov[0..n) (len is their total). False (nothing
 * stored) without room. */
bool fq_push(struct frame_queue *q, const struct iovec *iov, unsigned n, size_t len);
/* The oldest record (its bytes stay valid and unchanged until fq_pop), or NULL when empty. */
uint8_t *fq_peek(struct frame_queue *q, size_t *len);
/* Drop the oldest record. */
void fq_pop(struct frame_queue *q);
static inline bool fq_empty(const struct frame_queue *q)
{
    return q->count == 0;
}

#endif
