/* virtio-console (virtio 1.2, 5.3): one port, no MULTIPORT, so queue 0 is the port's
 * receiveq (host input to the guest) and queue 1 its transmitq (guest output). The guest sees
 * it as hvc0.
 *
 * Output: each transmit chain's readable bytes go to the host console synchronously, on the
 * notifying thread, as the UART does. Input: the console's I/O thread offers bytes; we copy
 * what fits into receive buffers the driver posted and return how much we took. With no
 * buffers (or before DRIVER_OK) we take nothing and the console offers the rest again later,
 * so input is never buffered without bound here.
 *
 * Emergency write (F_EMERG_WRITE): a driver write to emerg_wr prints its low byte, usable
 * before the queues exist.
 *
 * Locking: one mutex for both queues and the scratch element. The input handler is called
 * with the console's lock held (order: console -> device); console->write takes no lock. */
#include "hw/virtio/virtio.h"

#include "util/log.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define CON_QUEUE_SIZE 128
#define CON_RX 0
#define CON_TX 1

#define VIRTIO_CONSOLE_F_EMERG_WRITE 2
/* struct virtio_console_config: le16 cols, le16 rows, le32 max_nr_ports, le32 emerg_wr */
#define CON_CFG_EMERG_WR 8
#define CON_CONFIG_SIZE 12

struct virtio_console {
    pthread_mutex_t lock;
    const struct device_console *console; /* NULL: output dropped, no input */
    struct virtio_device *vdev;
    struct virtqueue *rx, *tx; /* NULL while not running */
    bool rx_halted, tx_halted; /* a malformed ring: wait for a reset */
    struct vq_elem *elem;      /* scratch for vq_pop */
};

static void emit(struct virtio_console *con, const uint8_t *buf, size_t len)
{
    if (con->console && con->console->write && len)
        con->console->write(con->console->ctx, buf, len);
}

/* Guest output: every readable byte of every chain, in order. */
static void transmit_locked(struct virtio_console *con)
{
    bool pushed = false;
    for (;;) {
        vq_set_notification(con->tx, false);
        int rc;
        while ((rc = vq_pop(con->tx, con->elem)) > 0) {
            const struct vq_elem *e = con->elem;
            for (unsigned i = 0; i < e->nr_out; i++)
                emit(con, e->buf[i].host, e->buf[i].len);
            vq_push(con->tx, e, 0);
            pushed = true;
        }
        con->tx_halted = rc < 0;
        if (con->tx_halted || !vq_set_notification(con->tx, true))
            break;
    }
    if (pushed)
        vq_notify(con->tx);
}

static void con_queue_notify(void *opaque, unsigned index)
{
    struct virtio_console *con = opaque;
    pthread_mutex_lock(&con->lock);
    if (index == CON_TX && con->tx && !con->tx_halted)
        transmit_locked(con);
    /* New receive buffers need nothing: the console offers pending input again shortly. */
    pthread_mutex_unlock(&con->lock);
}

/* Host input (the console's I/O thread): fill receive buffers, each chain as far as the
 * bytes go. At most one pass over the ring per call, so a driver posting empty buffers
 * cannot keep the I/O thread here. */
static size_t con_input(void *opaque, const uint8_t *buf, size_t len)
{
    struct virtio_console *con = opaque;
    size_t taken = 0;
    pthread_mutex_lock(&con->lock);
    if (!con->rx || con->rx_halted) {
        pthread_mutex_unlock(&con->lock);
        return 0;
    }
    unsigned budget = vq_size(con->rx);
    bool pushed = false;
    while (taken < len && budget--) {
        int rc = vq_pop(con->rx, con->elem);
        con->rx_halted = rc < 0;
        if (rc <= 0)
            break;
        size_t n = vq_elem_write(con->elem, 0, buf + taken, len - taken);
        vq_push(con->rx, con->elem, (uint32_t)n);
        pushed = true;
        taken += n;
    }
    if (pushed)
        vq_notify(con->rx);
    pthread_mutex_unlock(&con->lock);
    return taken;
}

static int con_activate(void *opaque)
{
    struct virtio_console *con = opaque;
    pthread_mutex_lock(&con->lock);
    con->rx = virtio_queue(con->vdev, CON_RX);
    con->tx = virtio_queue(con->vdev, CON_TX);
    con->rx_halted = con->tx_halted = false;
    pthread_mutex_unlock(&con->lock);
    return 0;
}

static void con_reset(void *opaque)
{
    struct virtio_console *con = opaque;
    pthread_mutex_lock(&con->lock);
    con->rx = con->tx = NULL;
    con->rx_halted = con->tx_halted = false;
    pthread_mutex_unlock(&con->lock);
}

/* cols, rows (no F_SIZE), max_nr_ports (no MULTIPORT) and emerg_wr all read as 0. */
static void con_config_read(void *opaque, uint32_t offset, void *buf, uint32_t len)
{
    (void)opaque, (void)offset;
    memset(buf, 0, len);
}

static void con_config_write(void *opaque, uint32_t offset, const void *buf, uint32_t len)
{
    struct virtio_console *con = opaque;
    if (offset != CON_CFG_EMERG_WR || len < 1)
        return;
    pthread_mutex_lock(&con->lock);
    emit(con, buf, 1); /* the character is the low byte of the le32 */
    pthread_mutex_unlock(&con->lock);
}

static const struct virtio_device_ops con_ops = {
    .device_id = VIRTIO_ID_CONSOLE,
    .features = 1ULL << VIRTIO_CONSOLE_F_EMERG_WRITE,
    .num_queues = 2,
    .queue_max_size = CON_QUEUE_SIZE,
    .config_size = CON_CONFIG_SIZE,
    .config_read = con_config_read,
    .config_write = con_config_write,
    .activate = con_activate,
    .queue_notify = con_queue_notify,
    .reset = con_reset,
};

static void con_destroy(void *state);

static int con_create(const struct device_host *host, const struct device_args *args, void **state,
                      char *err, size_t errlen)
{
    struct virtio_console *con = calloc(1, sizeof(*con));
    if (!con)
        return qk_fail(err, errlen, "out of memory");
    pthread_mutex_init(&con->lock, NULL);
    con->elem = malloc(sizeof(*con->elem));
    if (!con->elem) {
        con_destroy(con);
        return qk_fail(err, errlen, "out of memory");
    }
    con->vdev = virtio_pci_new(host, &con_ops, con, "virtio-console", err, errlen);
    if (!con->vdev) {
        con_destroy(con);
        return -1;
    }
    con->console = args->console;
    if (con->console && con->console->set_input)
        con->console->set_input(con->console->ctx, con_input, con);
    *state = con;
    return 0;
}

static void con_destroy(void *state)
{
    struct virtio_console *con = state;
    if (!con)
        return;
    if (con->console && con->console->set_input)
        con->console->set_input(con->console->ctx, NULL, NULL);
    if (con->vdev)
        virtio_pci_free(con->vdev);
    free(con->elem);
    pthread_mutex_destroy(&con->lock);
    free(con);
}

static const char *const con_option_keys[] = {NULL};

/* Snapshots: output is written synchronously and input is never buffered here, so the
 * transport and ring indices are the whole state (input typed while the snapshot is being
 * written may land in guest memory after the indices were saved: don't type then). */
static void con_save(void *state, struct snap_writer *w)
{
    struct virtio_console *con = state;
    virtio_pci_save(con->vdev, w);
}

static int con_load(void *state, struct snap_reader *r, char *err, size_t errlen)
{
    struct virtio_console *con = state;
    return virtio_pci_load(con->vdev, r, err, errlen);
}

DEVICE_MODEL(virtio_console_model) = {
    .name = "virtio-console",
    .level = DEVICE_LEVEL_PCI,
    .default_instance = false,
    .option_keys = con_option_keys,
    .create = con_create,
    .destroy = con_destroy,
    .save = con_save,
    .load = con_load,
};
