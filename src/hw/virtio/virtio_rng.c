/* virtio-rng (virtio 1.2, 5.4): one request queue; every writable buffer the driver offers is
 * filled from the host's getrandom() (the kernel's CSPRNG, never blocking once the host has
 * booted) and returned at once, on the thread that notified.
 *
 * Bounds: at most RNG_MAX_REQUEST bytes per request, whatever the chain's length. The queue
 * lock covers the scratch element and the ring calls, so a reset (which takes it) waits for
 * a notification in progress and nothing is in flight after it. */
#include "hw/virtio/virtio.h"

#include "util/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define RNG_QUEUE_SIZE 64
#define RNG_MAX_REQUEST (64 * 1024)

struct virtio_rng {
    pthread_mutex_t lock;
    struct virtio_device *vdev;
    struct virtqueue *vq; /* NULL while not running */
    struct vq_elem *elem; /* scratch for vq_pop */
    bool halted;          /* the ring is malformed: wait for a reset */
};

static size_t fill_buffer(uint8_t *dst, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = getrandom(dst + done, len - done, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* the host has no getrandom: return what we have */
        done += (size_t)n;
    }
    return done;
}

/* Fill the writable buffers in order; returns the bytes written from the start. */
static uint32_t fill_random(const struct vq_elem *e)
{
    size_t room = e->in_len < RNG_MAX_REQUEST ? (size_t)e->in_len : RNG_MAX_REQUEST;
    size_t done = 0;
    for (unsigned i = e->nr_out; i < e->nr_out + e->nr_in && done < room; i++) {
        size_t want = e->buf[i].len < room - done ? e->buf[i].len : room - done;
        size_t got = fill_buffer(e->buf[i].host, want);
        done += got;
        if (got < want)
            break;
    }
    return (uint32_t)done;
}

static void rng_queue_notify(void *opaque, unsigned index)
{
    struct virtio_rng *rng = opaque;
    pthread_mutex_lock(&rng->lock);
    if (index != 0 || !rng->vq || rng->halted) {
        pthread_mutex_unlock(&rng->lock);
        return;
    }
    bool pushed = false;
    for (;;) {
        vq_set_notification(rng->vq, false);
        int rc;
        while ((rc = vq_pop(rng->vq, rng->elem)) > 0) {
            vq_push(rng->vq, rng->elem, fill_random(rng->elem));
            pushed = true;
        }
        rng->halted = rc < 0;
        /* Look again for buffers that raced with re-enabling notifications. */
        if (rng->halted || !vq_set_notification(rng->vq, true))
            break;
    }
    if (pushed)
        vq_notify(rng->vq);
    pthread_mutex_unlock(&rng->lock);
}

static int rng_activate(void *opaque)
{
    struct virtio_rng *rng = opaque;
    pthread_mutex_lock(&rng->lock);
    rng->vq = virtio_queue(rng->vdev, 0);
    rng->halted = false;
    pthread_mutex_unlock(&rng->lock);
    return 0;
}

static void rng_reset(void *opaque)
{
    struct virtio_rng *rng = opaque;
    pthread_mutex_lock(&rng->lock);
    rng->vq = NULL;
    rng->halted = false;
    pthread_mutex_unlock(&rng->lock);
}

static void rng_config_read(void *opaque, uint32_t offset, void *buf, uint32_t len)
{
    (void)opaque, (void)offset;
    memset(buf, 0, len); /* no configuration space */
}

static void rng_config_write(void *opaque, uint32_t offset, const void *buf, uint32_t len)
{
    (void)opaque, (void)offset, (void)buf, (void)len;
}

static const struct virtio_device_ops rng_ops = {
    .device_id = VIRTIO_ID_RNG,
    .features = 0,
    .num_queues = 1,
    .queue_max_size = RNG_QUEUE_SIZE,
    .config_size = 0,
    .config_read = rng_config_read,
    .config_write = rng_config_write,
    .activate = rng_activate,
    .queue_notify = rng_queue_notify,
    .reset = rng_reset,
};

static void rng_destroy(void *state);

static int rng_create(const struct device_host *host, const struct device_args *args, void **state,
                      char *err, size_t errlen)
{
    (void)args;
    struct virtio_rng *rng = calloc(1, sizeof(*rng));
    if (!rng)
        return qk_fail(err, errlen, "out of memory");
    pthread_mutex_init(&rng->lock, NULL);
    rng->elem = malloc(sizeof(*rng->elem));
    if (!rng->elem) {
        rng_destroy(rng);
        return qk_fail(err, errlen, "out of memory");
    }
    rng->vdev = virtio_pci_new(host, &rng_ops, rng, "virtio-rng", err, errlen);
    if (!rng->vdev) {
        rng_destroy(rng);
        return -1;
    }
    *state = rng;
    return 0;
}

static void rng_destroy(void *state)
{
    struct virtio_rng *rng = state;
    if (!rng)
        return;
    if (rng->vdev)
        virtio_pci_free(rng->vdev);
    free(rng->elem);
    pthread_mutex_destroy(&rng->lock);
    free(rng);
}

/* Snapshots: requests are served synchronously on the kick, so nothing is ever in flight. */
static void rng_save(void *state, struct snap_writer *w)
{
    struct virtio_rng *rng = state;
    virtio_pci_save(rng->vdev, w);
}

static int rng_load(void *state, struct snap_reader *r, char *err, size_t errlen)
{
    struct virtio_rng *rng = state;
    return virtio_pci_load(rng->vdev, r, err, errlen);
}

static const char *const rng_option_keys[] = {NULL};

DEVICE_MODEL(virtio_rng_model) = {
    .name = "virtio-rng",
    .level = DEVICE_LEVEL_PCI,
    .default_instance = false,
    .option_keys = rng_option_keys,
    .create = rng_create,
    .destroy = rng_destroy,
    .save = rng_save,
    .load = rng_load,
};
