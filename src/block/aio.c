/* The asynchronous block I/O engine (see aio.h).
 *
 * Each request walks a small state machine of steps (read, write, fdatasync, punch hole, zero
 * range, write zeros): a step that transferred less than asked continues from where it
 * stopped, and write-zeroes falls back from one step to the next when the file says
 * EOPNOTSUPP. Both backends run the same machine: io_uring submits one step at a time and
 * resubmits from the completion, the worker threads loop over the steps with plain system
 * calls.
 *
 * Locking: one mutex guards the ring (liburing's submission and completion queues are not
 * thread-safe), the lists and the counters; it is never held while a callback runs. */
#include "block/aio.h"

#include "util/log.h"
#include "vm/sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <liburing.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define AIO_SQ_ENTRIES 64
#define AIO_THREADS 4
#define AIO_ZERO_CHUNK (1u << 20)
#define AIO_DRAIN_POLL_MS 1

enum aio_step {
    STEP_READ,
    STEP_WRITE,
    STEP_FSYNC,
    STEP_PUNCH,
    STEP_ZERO_RANGE,
    STEP_WRITE_ZEROS,
};

struct aio_engine {
    enum aio_backend backend;
    int efd;
    pthread_mutex_t lock;
    unsigned inflight;         /* submitted, callback not returned */
    struct aio_req *done_head; /* finished, callback not run yet */
    struct aio_req **done_tail;

    struct io_uring ring;
    bool ring_ready;
    unsigned unsubmitted; /* prepared SQEs not yet handed to the kernel */

    pthread_t workers[AIO_THREADS];
    unsigned nr_workers;
    pthread_cond_t work;
    struct aio_req *todo_head;
    struct aio_req **todo_tail;
    bool stopping;
};

/* Write-zeroes' last resort writes from here: never written, so every page is the kernel's
 * shared zero page and costs no memory. */
static uint8_t zero_chunk[AIO_ZERO_CHUNK];

/* --- the step machine (no locks: a request is handled by one thread at a time) ---------- */

static void req_start(struct aio_req *r)
{
    static const enum aio_step first[] = {
        [AIO_READ] = STEP_READ,
        [AIO_WRITE] = STEP_WRITE,
        [AIO_FLUSH] = STEP_FSYNC,
        [AIO_DISCARD] = STEP_PUNCH,
        [AIO_WRITE_ZEROES] = STEP_ZERO_RANGE,
    };
    r->step = first[r->op];
    if (r->op == AIO_WRITE_ZEROES && r->unmap)
        r->step = STEP_PUNCH;
    r->pos = r->offset;
    r->cur_iov = r->iov;
    r->cur_cnt = r->iovcnt;
    r->remaining = r->op == AIO_DISCARD || r->op == AIO_WRITE_ZEROES ? r->len : 0;
    for (unsigned i = 0; i < r->iovcnt && (r->op == AIO_READ || r->op == AIO_WRITE); i++)
        r->remaining += r->iov[i].iov_len;
    r->result = 0;
}

/* Skip the n bytes a transfer step did. */
static void req_advance(struct aio_req *r, uint64_t n)
{
    r->pos += n;
    r->remaining -= n;
    if (r->step == STEP_WRITE_ZEROS)
        return;
    while (n && r->cur_cnt) {
        size_t take = n < r->cur_iov->iov_len ? (size_t)n : r->cur_iov->iov_len;
        r->cur_iov->iov_base = (uint8_t *)r->cur_iov->iov_base + take;
        r->cur_iov->iov_len -= take;
        n -= take;
        if (!r->cur_iov->iov_len) {
            r->cur_iov++;
            r->cur_cnt--;
        }
    }
}

/* Account for a step's result. Returns true when the request is finished (r->result set),
 * false when r->step is the next step to run. */
static bool req_step_done(struct aio_req *r, int64_t res)
{
    switch ((enum aio_step)r->step) {
    case STEP_READ:
    case STEP_WRITE:
    case STEP_WRITE_ZEROS:
        if (res <= 0 || (uint64_t)res > r->remaining) {
            /* 0: end of file (the image shrank under us) or no progress; never loop on it. */
            r->result = res < 0 ? (int)res : -EIO;
            return true;
        }
        req_advance(r, (uint64_t)res);
        return r->remaining == 0;
    case STEP_PUNCH:
        if (res == -EOPNOTSUPP && r->op == AIO_WRITE_ZEROES) {
            r->step = STEP_ZERO_RANGE;
            return false;
        }
        break;
    case STEP_ZERO_RANGE:
        if (res == -EOPNOTSUPP) {
            r->step = STEP_WRITE_ZEROS;
            return false;
        }
        break;
    case STEP_FSYNC:
        break;
    }
    r->result = res < 0 ? (int)res : 0;
    return true;
}

static struct iovec zero_iov_for(const struct aio_req *r)
{
    size_t len = r->remaining < AIO_ZERO_CHUNK ? (size_t)r->remaining : AIO_ZERO_CHUNK;
    return (struct iovec){zero_chunk, len};
}

/* One step with a plain system call (worker threads). */
static int64_t req_run_step(struct aio_req *r)
{
    int64_t n;
    do {
        switch ((enum aio_step)r->step) {
        case STEP_READ:
            n = preadv(r->fd, r->cur_iov, (int)r->cur_cnt, (off_t)r->pos);
            break;
        case STEP_WRITE:
            n = pwritev(r->fd, r->cur_iov, (int)r->cur_cnt, (off_t)r->pos);
            break;
        case STEP_WRITE_ZEROS: {
            struct iovec zero = zero_iov_for(r);
            n = pwritev(r->fd, &zero, 1, (off_t)r->pos);
            break;
        }
        case STEP_FSYNC:
            n = fdatasync(r->fd);
            break;
        case STEP_PUNCH:
            n = fallocate(r->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)r->pos,
                          (off_t)r->remaining);
            break;
        default: /* STEP_ZERO_RANGE */
            n = fallocate(r->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, (off_t)r->pos,
                          (off_t)r->remaining);
            break;
        }
    } while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

/* --- completion bookkeeping ------------------------------------------------------------ */

static void signal_eventfd(struct aio_engine *e)
{
    uint64_t one = 1;
    if (write(e->efd, &one, sizeof(one)) < 0) {
        /* EAGAIN: the counter is already non-zero, the poller will wake anyway */
    }
}

/* Lock held. */
static void finish_locked(struct aio_engine *e, struct aio_req *r)
{
    r->next = NULL;
    *e->done_tail = r;
    e->done_tail = &r->next;
}

/* --- io_uring backend ------------------------------------------------------------------ */

/* Prepare the request's current step. Lock held. */
static void uring_prep_locked(struct aio_engine *e, struct aio_req *r)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&e->ring);
    if (!sqe) {
        /* The submission ring is full: hand it to the kernel, which frees every slot. */
        io_uring_submit(&e->ring);
        e->unsubmitted = 0;
        sqe = io_uring_get_sqe(&e->ring);
    }
    if (!sqe) {
        r->result = -EAGAIN;
        finish_locked(e, r);
        signal_eventfd(e);
        return;
    }
    switch ((enum aio_step)r->step) {
    case STEP_READ:
        io_uring_prep_readv(sqe, r->fd, r->cur_iov, r->cur_cnt, r->pos);
        break;
    case STEP_WRITE:
        io_uring_prep_writev(sqe, r->fd, r->cur_iov, r->cur_cnt, r->pos);
        break;
    case STEP_WRITE_ZEROS:
        r->zero_iov = zero_iov_for(r); /* the ring reads it after we return */
        io_uring_prep_writev(sqe, r->fd, &r->zero_iov, 1, r->pos);
        break;
    case STEP_FSYNC:
        io_uring_prep_fsync(sqe, r->fd, IORING_FSYNC_DATASYNC);
        break;
    case STEP_PUNCH:
        io_uring_prep_fallocate(sqe, r->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, r->pos,
                                r->remaining);
        break;
    case STEP_ZERO_RANGE:
        io_uring_prep_fallocate(sqe, r->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, r->pos,
                                r->remaining);
        break;
    }
    io_uring_sqe_set_data(sqe, r);
    e->unsubmitted++;
}

/* Move finished requests to the done list, resubmit continuing ones. Lock held. */
static void uring_reap_locked(struct aio_engine *e)
{
    struct io_uring_cqe *cqe;
    while (io_uring_peek_cqe(&e->ring, &cqe) == 0) {
        struct aio_req *r = io_uring_cqe_get_data(cqe);
        int res = cqe->res;
        io_uring_cqe_seen(&e->ring, cqe);
        if (!r)
            continue;
        if (req_step_done(r, res))
            finish_locked(e, r);
        else
            uring_prep_locked(e, r);
    }
    if (e->unsubmitted && io_uring_submit(&e->ring) >= 0)
        e->unsubmitted = 0;
}

static bool uring_has_ops(struct io_uring *ring)
{
    struct io_uring_probe *probe = io_uring_get_probe_ring(ring);
    if (!probe)
        return false;
    bool ok = io_uring_opcode_supported(probe, IORING_OP_READV) &&
              io_uring_opcode_supported(probe, IORING_OP_WRITEV) &&
              io_uring_opcode_supported(probe, IORING_OP_FSYNC) &&
              io_uring_opcode_supported(probe, IORING_OP_FALLOCATE);
    io_uring_free_probe(probe);
    return ok;
}

/* The completion ring holds every request that can be in flight, so it never overflows. */
static int uring_init(struct aio_engine *e, unsigned max_inflight)
{
    struct io_uring_params p = {.flags = IORING_SETUP_CQSIZE};
    p.cq_entries = max_inflight > 2 * AIO_SQ_ENTRIES ? max_inflight : 2 * AIO_SQ_ENTRIES;
    int rc = io_uring_queue_init_params(AIO_SQ_ENTRIES, &e->ring, &p);
    if (rc < 0)
        return rc;
    if (!uring_has_ops(&e->ring)) {
        io_uring_queue_exit(&e->ring);
        return -EOPNOTSUPP;
    }
    rc = io_uring_register_eventfd(&e->ring, e->efd);
    if (rc < 0) {
        io_uring_queue_exit(&e->ring);
        return rc;
    }
    e->ring_ready = true;
    return 0;
}

/* --- thread-pool backend --------------------------------------------------------------- */

static void *worker_main(void *opaque)
{
    struct aio_engine *e = opaque;
    pthread_setname_np(pthread_self(), "blk-aio");
    sandbox_enter_or_die(SANDBOX_BLOCK); /* before the first guest request */
    pthread_mutex_lock(&e->lock);
    for (;;) {
        while (!e->todo_head && !e->stopping)
            pthread_cond_wait(&e->work, &e->lock);
        struct aio_req *r = e->todo_head;
        if (!r)
            break; /* stopping and nothing left */
        e->todo_head = r->next;
        if (!e->todo_head)
            e->todo_tail = &e->todo_head;
        pthread_mutex_unlock(&e->lock);
        while (!req_step_done(r, req_run_step(r)))
            ;
        pthread_mutex_lock(&e->lock);
        finish_locked(e, r);
        signal_eventfd(e);
    }
    pthread_mutex_unlock(&e->lock);
    return NULL;
}

static int threads_init(struct aio_engine *e)
{
    for (unsigned i = 0; i < AIO_THREADS; i++) {
        int rc = pthread_create(&e->workers[i], NULL, worker_main, e);
        if (rc != 0)
            return e->nr_workers ? 0 : -rc; /* fewer workers still work */
        e->nr_workers++;
    }
    return 0;
}

static void threads_stop(struct aio_engine *e)
{
    pthread_mutex_lock(&e->lock);
    e->stopping = true;
    pthread_cond_broadcast(&e->work);
    pthread_mutex_unlock(&e->lock);
    for (unsigned i = 0; i < e->nr_workers; i++)
        pthread_join(e->workers[i], NULL);
    e->nr_workers = 0;
}

/* --- the interface --------------------------------------------------------------------- */

static enum aio_backend pick_backend(enum aio_backend want)
{
    if (want != AIO_BACKEND_AUTO)
        return want;
    const char *env = getenv("QUOKKA_BLOCK_AIO");
    return env && !strcmp(env, "threads") ? AIO_BACKEND_THREADS : AIO_BACKEND_IO_URING;
}

static int engine_start(struct aio_engine *e, enum aio_backend want, unsigned max_inflight,
                        char *err, size_t errlen)
{
    e->backend = pick_backend(want);
    if (e->backend == AIO_BACKEND_IO_URING) {
        int rc = uring_init(e, max_inflight);
        if (rc == 0)
            return 0;
        if (want == AIO_BACKEND_IO_URING)
            return qk_fail(err, errlen, "io_uring is not usable: %s", strerror(-rc));
        e->backend = AIO_BACKEND_THREADS; /* seccomp, old kernel: the portable way */
    }
    int rc = threads_init(e);
    if (rc)
        return qk_fail(err, errlen, "cannot start block I/O threads: %s", strerror(rc));
    return 0;
}

struct aio_engine *aio_new(enum aio_backend backend, unsigned max_inflight, char *err,
                           size_t errlen)
{
    struct aio_engine *e = calloc(1, sizeof(*e));
    if (!e) {
        qk_fail(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&e->lock, NULL);
    pthread_cond_init(&e->work, NULL);
    e->done_tail = &e->done_head;
    e->todo_tail = &e->todo_head;
    e->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (e->efd < 0) {
        qk_fail(err, errlen, "cannot create an eventfd: %s", strerror(errno));
        goto fail;
    }
    if (engine_start(e, backend, max_inflight, err, errlen) < 0)
        goto fail;
    return e;
fail:
    if (e->efd >= 0)
        close(e->efd);
    pthread_cond_destroy(&e->work);
    pthread_mutex_destroy(&e->lock);
    free(e);
    return NULL;
}

void aio_free(struct aio_engine *e)
{
    if (!e)
        return;
    aio_drain(e, -1);
    if (e->ring_ready)
        io_uring_queue_exit(&e->ring);
    threads_stop(e);
    close(e->efd);
    pthread_cond_destroy(&e->work);
    pthread_mutex_destroy(&e->lock);
    free(e);
}

enum aio_backend aio_backend(const struct aio_engine *e)
{
    return e->backend;
}

const char *aio_backend_name(enum aio_backend backend)
{
    switch (backend) {
    case AIO_BACKEND_IO_URING:
        return "io_uring";
    case AIO_BACKEND_THREADS:
        return "threads";
    default:
        return "auto";
    }
}

int aio_event_fd(const struct aio_engine *e)
{
    return e->efd;
}

void aio_submit(struct aio_engine *e, struct aio_req *r)
{
    bool bad = (unsigned)r->op > AIO_WRITE_ZEROES || r->iovcnt > IOV_MAX;
    if (!bad)
        req_start(r);
    pthread_mutex_lock(&e->lock);
    e->inflight++;
    if (bad || (r->op != AIO_FLUSH && r->remaining == 0)) {
        /* Nothing to transfer completes at once (a 0-byte preadv would look like EOF). */
        r->result = bad ? -EINVAL : 0;
        finish_locked(e, r);
        signal_eventfd(e);
    } else if (e->backend == AIO_BACKEND_IO_URING) {
        uring_prep_locked(e, r);
    } else {
        r->next = NULL;
        *e->todo_tail = r;
        e->todo_tail = &r->next;
        pthread_cond_signal(&e->work);
    }
    pthread_mutex_unlock(&e->lock);
}

void aio_kick(struct aio_engine *e)
{
    pthread_mutex_lock(&e->lock);
    /* A failed submit leaves the entries in the ring; the next kick or poll retries. */
    if (e->ring_ready && e->unsubmitted && io_uring_submit(&e->ring) >= 0)
        e->unsubmitted = 0;
    pthread_mutex_unlock(&e->lock);
}

unsigned aio_poll(struct aio_engine *e)
{
    uint64_t count;
    /* Clear the eventfd before looking, so a completion that lands later signals again. */
    if (read(e->efd, &count, sizeof(count)) < 0) {
        /* EAGAIN: nothing signalled, there may still be work another poll left */
    }
    pthread_mutex_lock(&e->lock);
    if (e->ring_ready)
        uring_reap_locked(e);
    struct aio_req *list = e->done_head;
    e->done_head = NULL;
    e->done_tail = &e->done_head;
    pthread_mutex_unlock(&e->lock);

    unsigned n = 0;
    while (list) {
        struct aio_req *r = list;
        list = r->next; /* the callback may reuse r */
        r->complete(r, r->result);
        n++;
    }
    if (n) {
        pthread_mutex_lock(&e->lock);
        e->inflight -= n;
        pthread_mutex_unlock(&e->lock);
    }
    return n;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

bool aio_drain(struct aio_engine *e, int64_t timeout_ns)
{
    int64_t deadline = timeout_ns < 0 ? INT64_MAX : now_ns() + timeout_ns;
    for (;;) {
        aio_kick(e);
        aio_poll(e);
        if (aio_inflight(e) == 0)
            return true;
        if (now_ns() >= deadline)
            return false;
        /* Another thread may be polling too and take the wake-up: look again soon anyway. */
        struct pollfd pfd = {.fd = e->efd, .events = POLLIN};
        poll(&pfd, 1, AIO_DRAIN_POLL_MS);
    }
}

unsigned aio_inflight(struct aio_engine *e)
{
    pthread_mutex_lock(&e->lock);
    unsigned n = e->inflight;
    pthread_mutex_unlock(&e->lock);
    return n;
}
