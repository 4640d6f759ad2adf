/* POST-code port 0x80. Firmware writes progress codes here and Linux uses `out 0x80` as an
 * I/O delay, so it only has to be cheap; reads return the last code written. */
#include "hw/device.h"
#include "util/log.h"
#include "vm/platform.h"

#include <pthread.h>
#include <stdlib.h>

struct post_port {
    pthread_mutex_t lock;
    uint8_t last_code;
};

static uint64_t post_read(void *opaque, uint64_t offset, unsigned size)
{
    (void)offset;
    (void)size;
    struct post_port *p = opaque;
    pthread_mutex_lock(&p->lock);
    uint8_t code = p->last_code;
    pthread_mutex_unlock(&p->lock);
    return code;
}

static void post_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
    (void)offset;
    (void)size;
    struct post_port *p = opaque;
    pthread_mutex_lock(&p->lock);
    p->last_code = (uint8_t)value;
    pthread_mutex_unlock(&p->lock);
}

static const struct bus_device_ops post_ops = {.read = post_read, .write = post_write};

static int post_create(const struct device_host *host, const struct device_args *args, void **state,
                       char *err, size_t errlen)
{
    struct post_port *p = calloc(1, sizeof(*p));
    if (!p)
        return qk_fail(err, errlen, "out of memory");
    if (pthread_mutex_init(&p->lock, NULL) != 0) {
        free(p);
        return qk_fail(err, errlen, "cannot create the POST port lock");
    }
    if (bus_register(host->pio, PORT_POST, 1, &post_ops, p, "post", err, errlen) < 0) {
        pthread_mutex_destroy(&p->lock);
        free(p);
        return -1;
    }
    *state = p;
    return 0;
}

static void post_destroy(void *state)
{
    struct post_port *p = state;
    if (!p)
        return;
    pthread_mutex_destroy(&p->lock);
    free(p);
}

DEVICE_MODEL(port80_model) = {
    .name = "port80",
    .level = DEVICE_LEVEL_PLATFORM,
    .default_instance = true,
    .create = post_create,
    .destroy = post_destroy,
};
