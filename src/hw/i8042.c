/* i8042 PS/2 controller with no keyboard or mouse plugged in.
 *
 * Enough for Linux's i8042 driver to probe it quickly (every command it sends is answered, so
 * no probe waits for a timeout) and for the classic reset paths: command 0xFE (pulse the reset
 * line) and writing the output port with the reset bit clear. Bytes sent to the absent devices
 * are answered with 0xFE plus the timeout status bit, which is what a controller reports when
 * no device clocks the byte in.
 *
 * Locking: one mutex; set_irq is called with it held (the callee never calls back into a
 * device), request_stop only after it is released. */
#include "hw/device.h"
#include "util/log.h"
#include "vm/platform.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#define STATUS_OBF 0x01      /* output buffer full */
#define STATUS_SYS 0x04      /* system flag (POST passed), mirrors the command byte */
#define STATUS_CMD 0x08      /* last write went to the command port */
#define STATUS_UNLOCKED 0x10 /* keyboard not inhibited */
#define STATUS_AUX_OBF 0x20  /* the byte in the output buffer comes from the aux port */
#define STATUS_TIMEOUT 0x40

#define CTR_KBD_INT 0x01
#define CTR_AUX_INT 0x02
#define CTR_SYS 0x04
#define CTR_KBD_DISABLE 0x10
#define CTR_AUX_DISABLE 0x20
#define CTR_XLATE 0x40

#define OUTPORT_RESET_INACTIVE 0x01 /* 0 holds the CPU in reset */
#define OUTPORT_A20 0x02

#define DEVICE_NAK 0xfe

#define OUT_QUEUE_SIZE 16
#define RAM_SIZE 32 /* controller RAM; byte 0 is the command byte */

struct out_byte {
    uint8_t value;
    bool aux;
    bool timeout;
};

struct i8042 {
    pthread_mutex_t lock;
    struct device_host host;

    /* Real controllers hold one byte; a short queue lets a command's reply and a device's
     * reply coexist. Bounded: when full, further bytes are dropped. */
    struct out_byte queue[OUT_QUEUE_SIZE];
    unsigned head, count;

    uint8_t ram[RAM_SIZE];
    uint8_t output_port;
    uint8_t pending_cmd; /* command waiting for its parameter on the data port, or 0 */
    bool last_was_cmd;
    bool kbd_irq, aux_irq; /* line levels we last set */
};

static void set_line(struct i8042 *c, bool *current, uint32_t gsi, bool level)
{
    if (*current == level)
        return;
    *current = level;
    if (c->host.set_irq)
        c->host.set_irq(c->host.irq_ctx, gsi, level ? 1 : 0);
}

static void update_irqs(struct i8042 *c)
{
    bool kbd = false, aux = false;
    if (c->count) {
        const struct out_byte *b = &c->queue[c->head];
        aux = b->aux && (c->ram[0] & CTR_AUX_INT);
        kbd = !b->aux && (c->ram[0] & CTR_KBD_INT);
    }
    set_line(c, &c->kbd_irq, IRQ_KEYBOARD, kbd);
    set_line(c, &c->aux_irq, IRQ_MOUSE, aux);
}

static void push(struct i8042 *c, uint8_t value, bool aux, bool timeout)
{
    if (c->count >= OUT_QUEUE_SIZE)
        return;
    c->queue[(c->head + c->count) % OUT_QUEUE_SIZE] = (struct out_byte){value, aux, timeout};
    c->count++;
}

static uint8_t read_status(const struct i8042 *c)
{
    uint8_t status = STATUS_UNLOCKED;
    if (c->ram[0] & CTR_SYS)
        status |= STATUS_SYS;
    if (c->last_was_cmd)
        status |= STATUS_CMD;
    if (c->count) {
        const struct out_byte *b = &c->queue[c->head];
        status |= STATUS_OBF;
        if (b->aux)
            status |= STATUS_AUX_OBF;
        if (b->timeout)
            status |= STATUS_TIMEOUT;
    }
    return status;
}

static uint8_t read_data(struct i8042 *c)
{
    if (!c->count)
        return 0; /* stale buffer: nothing new */
    uint8_t value = c->queue[c->head].value;
    c->head = (c->head + 1) % OUT_QUEUE_SIZE;
    c->count--;
    /* Drop the lines so a following byte makes a fresh edge (ISA interrupts are edge
     * triggered and the guest reads one byte per interrupt). */
    set_line(c, &c->kbd_irq, IRQ_KEYBOARD, false);
    set_line(c, &c->aux_irq, IRQ_MOUSE, false);
    return value;
}

/* Returns true when the guest asked for a reset. */
static bool write_output_port(struct i8042 *c, uint8_t value)
{
    c->output_port = value;
    return !(value & OUTPORT_RESET_INACTIVE);
}

static bool write_command(struct i8042 *c, uint8_t cmd)
{
    c->last_was_cmd = true;
    c->pending_cmd = 0;
    if (cmd >= 0x20 && cmd < 0x20 + RAM_SIZE) {
        push(c, c->ram[cmd - 0x20], false, false);
        return false;
    }
    if (cmd >= 0x60 && cmd < 0x60 + RAM_SIZE) {
        c->pending_cmd = cmd;
        return false;
    }
    if (cmd >= 0xf0) /* pulse output port bits 0-3 low where the command's bit is 0 */
        return !(cmd & OUTPORT_RESET_INACTIVE);
    switch (cmd) {
    case 0xa7: /* disable aux interface */
        c->ram[0] |= CTR_AUX_DISABLE;
        break;
    case 0xa8: /* enable aux interface */
        c->ram[0] &= (uint8_t)~CTR_AUX_DISABLE;
        break;
    case 0xa9: /* aux interface test: 0 = no error */
    case 0xab: /* keyboard interface test */
        push(c, 0x00, false, false);
        break;
    case 0xaa: /* controller self test */
        push(c, 0x55, false, false);
        break;
    case 0xad: /* disable keyboard interface */
        c->ram[0] |= CTR_KBD_DISABLE;
        break;
    case 0xae: /* enable keyboard interface */
        c->ram[0] &= (uint8_t)~CTR_KBD_DISABLE;
        break;
    case 0xc0: /* read input port: keyboard not inhibited */
        push(c, 0x80, false, false);
        break;
    case 0xd0: /* read output port */
        push(c, c->output_port, false, false);
        break;
    case 0xd1: /* write output port */
    case 0xd2: /* write keyboard output buffer */
    case 0xd3: /* write aux output buffer (loopback) */
    case 0xd4: /* write to aux device */
        c->pending_cmd = cmd;
        break;
    default: /* unknown or unneeded (A20 gate, password, ...): ignored */
        break;
    }
    return false;
}

static bool write_data(struct i8042 *c, uint8_t value)
{
    uint8_t cmd = c->pending_cmd;
    c->last_was_cmd = false;
    c->pending_cmd = 0;
    if (cmd >= 0x60 && cmd < 0x60 + RAM_SIZE) {
        c->ram[cmd - 0x60] = value;
        return false;
    }
    switch (cmd) {
    case 0xd1:
        return write_output_port(c, value);
    case 0xd2:
        push(c, value, false, false);
        break;
    case 0xd3:
        push(c, value, true, false);
        break;
    case 0xd4: /* no mouse: nothing clocks the byte in */
        push(c, DEVICE_NAK, true, true);
        break;
    default: /* a byte for the keyboard, which is absent */
        push(c, DEVICE_NAK, false, true);
        break;
    }
    return false;
}

static uint64_t i8042_read(void *opaque, uint64_t offset, unsigned size, bool is_cmd_port)
{
    struct i8042 *c = opaque;
    if (offset != 0 || size != 1)
        return ~0ULL; /* byte-wide registers only */
    pthread_mutex_lock(&c->lock);
    uint8_t value = is_cmd_port ? read_status(c) : read_data(c);
    update_irqs(c);
    pthread_mutex_unlock(&c->lock);
    return value;
}

static void i8042_write(void *opaque, uint64_t offset, unsigned size, uint64_t value,
                        bool is_cmd_port)
{
    struct i8042 *c = opaque;
    if (offset != 0 || size != 1)
        return;
    pthread_mutex_lock(&c->lock);
    bool reset = is_cmd_port ? write_command(c, (uint8_t)value) : write_data(c, (uint8_t)value);
    update_irqs(c);
    pthread_mutex_unlock(&c->lock);
    if (reset && c->host.request_stop)
        c->host.request_stop(c->host.stop_ctx, VM_STOP_REBOOT, 0);
}

static uint64_t data_read(void *opaque, uint64_t offset, unsigned size)
{
    return i8042_read(opaque, offset, size, false);
}

static void data_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
    i8042_write(opaque, offset, size, value, false);
}

static uint64_t cmd_read(void *opaque, uint64_t offset, unsigned size)
{
    return i8042_read(opaque, offset, size, true);
}

static void cmd_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
    i8042_write(opaque, offset, size, value, true);
}

static const struct bus_device_ops data_ops = {.read = data_read, .write = data_write};
static const struct bus_device_ops cmd_ops = {.read = cmd_read, .write = cmd_write};

static int i8042_create(const struct device_host *host, const struct device_args *args,
                        void **state, char *err, size_t errlen)
{
    struct i8042 *c = calloc(1, sizeof(*c));
    if (!c)
        return qk_fail(err, errlen, "out of memory");
    c->host = *host;
    c->ram[0] = CTR_KBD_INT | CTR_AUX_INT | CTR_SYS | CTR_XLATE; /* what a PC BIOS leaves */
    c->output_port = OUTPORT_RESET_INACTIVE | OUTPORT_A20;
    if (pthread_mutex_init(&c->lock, NULL) != 0) {
        free(c);
        return qk_fail(err, errlen, "cannot create the i8042 lock");
    }
    if (bus_register(host->pio, PORT_I8042_DATA, 1, &data_ops, c, "i8042-data", err, errlen) < 0) {
        pthread_mutex_destroy(&c->lock);
        free(c);
        return -1;
    }
    /* The data port now points at c and the bus cannot unregister it: on failure c is left
     * allocated (the machine is being torn down anyway) rather than dangling. */
    if (bus_register(host->pio, PORT_I8042_CMD, 1, &cmd_ops, c, "i8042-cmd", err, errlen) < 0)
        return -1;
    *state = c;
    return 0;
}

static void i8042_destroy(void *state)
{
    struct i8042 *c = state;
    if (!c)
        return;
    pthread_mutex_destroy(&c->lock);
    free(c);
}

DEVICE_MODEL(i8042_model) = {
    .name = "i8042",
    .level = DEVICE_LEVEL_PLATFORM,
    .default_instance = true,
    .create = i8042_create,
    .destroy = i8042_destroy,
};
