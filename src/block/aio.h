/* Asynchronous block I/O: reads, writes, flushes, discards and write-zeroes on a file
 * descriptor, completed later through a callback on whichever thread polls the engine.
 *
 * Two backends behind one interface: io_uring (liburing) when the kernel offers it, else (or
 * with QUOKKA_BLOCK_AIO=threads in the environment) a small pool of worker threads making the
 * same system calls synchronously. Either way, completions are announced on one eventfd
 * (aio_event_fd) that the owner watches from its event loop and answers with aio_poll().
 *
 * Requests are owned by the caller and must stay put until their callback ran; the engine
 * allocates nothing per request. Data buffers are used in place (no bounce copies). A request
 * always completes through its callback, also when it could not be started, and only once
 * every byte is done: short transfers are continued, a flush is complete when fdatasync
 * returned. Threads: submit, kick, poll and drain may be called from any thread; callbacks run
 * in aio_poll()'s caller with no engine lock held (they may submit more). */
#ifndef QUOKKA_BLOCK_AIO_H
#define QUOKKA_BLOCK_AIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

enum aio_backend {
    AIO_BACKEND_AUTO,     /* io_uring, else threads; QUOKKA_BLOCK_AIO=threads forces threads */
    AIO_BACKEND_IO_URING, /* io_uring or fail */
    AIO_BACKEND_THREADS,
};

enum aio_op {
    AIO_READ,         /* preadv of iov at offset */
    AIO_WRITE,        /* pwritev of iov at offset */
    AIO_FLUSH,        /* fdatasync */
    AIO_DISCARD,      /* punch a hole over [offset, offset + len), keeping the size */
    AIO_WRITE_ZEROES, /* make [offset, offset + len) read as zeros: punch a hole when unmap,
                       * else allocate zeroed blocks, else write zeros, whichever the file
                       * supports first */
};

struct aio_req;
typedef void (*aio_complete_fn)(struct aio_req *req, int result); /* 0 or -errno */

struct aio_req {
    /* Set by the caller before aio_submit. */
    enum aio_op op;
    int fd;
    struct iovec *iov; /* READ/WRITE; entries may be adjusted in place by a short transfer */
    unsigned iovcnt;   /* <= IOV_MAX */
    uint64_t offset;
    uint64_t len; /* DISCARD/WRITE_ZEROES */
    bool unmap;   /* WRITE_ZEROES may deallocate */
    aio_complete_fn complete;

    /* The engine's. */
    struct aio_req *next;
    int step;
    int result;
    uint64_t pos, remaining;
    struct iovec *cur_iov;
    unsigned cur_cnt;
    struct iovec zero_iov;
};

struct aio_engine;

/* max_inflight bounds the requests the caller will ever have submitted and not completed (it
 * sizes io_uring's completion ring so completions are never dropped). */
struct aio_engine *aio_new(enum aio_backend backend, unsigned max_inflight, char *err,
                           size_t errlen);
/* Waits for requests in flight (running their callbacks), then frees. */
void aio_free(struct aio_engine *e);

enum aio_backend aio_backend(const struct aio_engine *e);
const char *aio_backend_name(enum aio_backend backend);
/* Readable when completions are waiting for aio_poll(). */
int aio_event_fd(const struct aio_engine *e);

/* Queue a request. io_uring batches submissions until aio_kick(); the threads start at once. */
void aio_submit(struct aio_engine *e, struct aio_req *req);
void aio_kick(struct aio_engine *e);
/* Run the callbacks of finished requests; returns how many. */
unsigned aio_poll(struct aio_engine *e);
/* Poll until nothing is in flight or timeout_ns passed (< 0: no limit); true when drained. */
bool aio_drain(struct aio_engine *e, int64_t timeout_ns);
/* Submitted requests whose callback has not returned yet. */
unsigned aio_inflight(struct aio_engine *e);

#endif
