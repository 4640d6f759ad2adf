/* 8254 programmable interval timer (ports 0x40-0x43) and the system control port B (0x61:
 * channel 2 gate, speaker enable, refresh toggle, channel 2 output). User-space irqchip only:
 * with KVM the kernel has its own PIT and this model registers nothing.
 *
 * The counters are not stepped: each channel remembers when its count was loaded and derives
 * the current count and OUT level from host->clock_ns() (1.193182 MHz input clock), so reads
 * are exact whenever the guest looks (Linux's PIT calibration, delay loops, the i8253
 * clocksource). Only channel 0 has an interrupt (IRQ 0, pulsed 1 then 0 on each rising edge of
 * OUT), driven by one host timer armed for the next edge.
 *
 * Modelled: modes 0 (interrupt on terminal count), 2 (rate generator), 3 (square wave) and 4
 * (software strobe); access modes LSB, MSB and LSB-then-MSB with the shared flip-flop; the
 * counter latch and read-back commands (count and status, each latched once until read);
 * gate 2 through port 0x61 (low pauses modes 0/4, stops modes 2/3 with OUT high; a rising edge
 * restarts modes 1/2/3/5); the OUT level of every channel. A reload value of 0 means 65536.
 * Approximations: modes 1 and 5 (gate-triggered) behave like 0 and 4, started by a gate
 * rising edge but also by writing the count with the gate already high (gate 0 is tied high,
 * so on a PC they could otherwise never start on channel 0); modes 6/7 alias 2/3 as on the
 * chip; a new count takes effect when complete (the first byte of an LSB-then-MSB write does
 * not stop mode 0), and in modes 2/3 at once instead of at the end of the current period;
 * "null count" clears as soon as the count is complete rather than one input clock later;
 * BCD counting is not modelled (the BCD bit is stored and read back, counting stays binary);
 * OUT in mode 3 with an odd count is high for (N+1)/2 clocks.
 *
 * Interrupts: at most one IRQ 0 pulse per timer callback. When the host falls behind by many
 * periods the missed ones are coalesced into that single pulse, and pulses are at least
 * PIT_MIN_IRQ_PERIOD_NS apart however small the guest makes the count (KVM's in-kernel PIT
 * has the same kind of floor), so no guest value can make the I/O thread spin.
 *
 * Locking: one mutex, taken by the vCPU threads (port accesses) and the I/O thread (timer).
 * timer_arm is called with it held (the timer list lock nests inside, callbacks run without
 * the list lock, so there is no cycle). set_irq is called after releasing it. */
#include "hw/device.h"
#include "util/log.h"
#include "vm/platform.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#define PORT_PIT_CONTROL (PORT_PIT_BASE + 3)
#define PORT_SYSTEM_B 0x61

#define PIT_HZ 1193182ULL
#define NS_PER_SEC 1000000000ULL
#define PIT_MIN_IRQ_PERIOD_NS 100000ULL /* 10 kHz: above any rate a PC guest programs */
#define REFRESH_PERIOD_NS 15085ULL      /* port 0x61 bit 4 toggles every 15.085 us */
#define NO_EVENT UINT64_MAX

#define PIT_NR_CHANNELS 3

/* Access mode / flip-flop states (control word bits 5-4 give the first three). */
enum { RW_LATCH = 0, RW_LSB = 1, RW_MSB = 2, RW_WORD0 = 3, RW_WORD1 = 4 };

#define CTRL_SELECT_SHIFT 6
#define CTRL_RW_SHIFT 4
#define CTRL_READBACK 3        /* select field value of the read-back command */
#define READBACK_NO_COUNT 0x20 /* active low */
#define READBACK_NO_STATUS 0x10

#define SYSB_GATE2 0x01
#define SYSB_SPEAKER 0x02
#define SYSB_WRITABLE 0x0f
#define SYSB_REFRESH 0x10
#define SYSB_OUT2 0x20

struct pit_channel {
    uint32_t count;      /* reload value, 1..65536 */
    uint64_t base_ns;    /* clock time at which base_ticks was taken */
    uint64_t base_ticks; /* input clocks counted since the count was loaded, as of base_ns */
    bool loaded;         /* a complete count was written after the last control word */
    bool running;        /* counting (loaded, and the gate allows it) */
    bool gate;
    bool null_count;
    bool bcd;
    uint8_t mode; /* 0-7 as written */
    uint8_t rw;   /* RW_LSB, RW_MSB or RW_WORD0 */
    uint8_t read_state, write_state;
    uint8_t write_lsb;
    uint8_t count_latched; /* 0, or the read state of the latched count */
    uint16_t latched_count;
    bool status_latched;
    uint8_t status;
};

struct i8254 {
    pthread_mutex_t lock;
    struct device_host host;
    struct pit_channel ch[PIT_NR_CHANNELS];
    struct device_timer *timer; /* channel 0's next OUT rising edge */
    uint64_t next_irq_tick;     /* channel 0 tick of that edge, or NO_EVENT */
    uint8_t port61;             /* writable bits of port 0x61 */
};

static uint64_t ns_to_ticks(uint64_t ns)
{
    /* Split so neither product overflows for any ns. */
    return (ns / NS_PER_SEC) * PIT_HZ + (ns % NS_PER_SEC) * PIT_HZ / NS_PER_SEC;
}

/* Smallest ns with ns_to_ticks(ns) >= ticks (saturating). */
static uint64_t ticks_to_ns_ceil(uint64_t ticks)
{
    uint64_t secs = ticks / PIT_HZ;
    if (secs > (UINT64_MAX - NS_PER_SEC) / NS_PER_SEC)
        return UINT64_MAX;
    return secs * NS_PER_SEC + ((ticks % PIT_HZ) * NS_PER_SEC + PIT_HZ - 1) / PIT_HZ;
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static uint64_t now_ns(const struct i8254 *p)
{
    return p->host.clock_ns(p->host.timer_ctx);
}

/* Modes 6 and 7 are 2 and 3 (bit 3 is a don't-care for them). */
static unsigned eff_mode(const struct pit_channel *c)
{
    return c->mode >= 6 ? c->mode - 4u : c->mode;
}

static uint64_t elapsed(const struct pit_channel *c, uint64_t now)
{
    if (!c->running || now <= c->base_ns) /* a clock going backwards counts as no time */
        return c->base_ticks;
    return sat_add(c->base_ticks, ns_to_ticks(now - c->base_ns));
}

static bool channel_out(const struct pit_channel *c, uint64_t now)
{
    unsigned mode = eff_mode(c);
    if (!c->loaded)
        return mode != 0; /* after the control word: low in mode 0, high otherwise */
    uint64_t d = elapsed(c, now), n = c->count;
    switch (mode) {
    case 0:
    case 1:
        return d >= n;
    case 2:
        return !c->gate || d % n != n - 1; /* low for the one clock before the reload */
    case 3:
        return !c->gate || d % n < (n + 1) / 2;
    default: /* 4, 5: one clock low at terminal count */
        return d != n;
    }
}

static uint16_t channel_count(const struct pit_channel *c, uint64_t now)
{
    if (!c->loaded)
        return (uint16_t)c->count;
    uint64_t d = elapsed(c, now), n = c->count;
    switch (eff_mode(c)) {
    case 2:
        return (uint16_t)(n - d % n);
    case 3: /* counts down by two, twice per period */
        return (uint16_t)(n - (d % n) * 2 % n);
    default: /* 0, 1, 4, 5: wraps through 0xffff after terminal count */
        return (uint16_t)(n - d % 0x10000);
    }
}

/* First tick after d at which OUT rises (the IRQ 0 edge), or NO_EVENT. */
static uint64_t next_rising_edge(const struct pit_channel *c, uint64_t d)
{
    if (!c->loaded || !c->running)
        return NO_EVENT;
    uint64_t n = c->count;
    switch (eff_mode(c)) {
    case 0:
    case 1:
        return d < n ? n : NO_EVENT;
    case 2:
    case 3:
        return (d / n + 1) * n;
    default: /* 4, 5: OUT returns high one clock after terminal count */
        return d < n + 1 ? n + 1 : NO_EVENT;
    }
}

static uint64_t tick_deadline(const struct pit_channel *c, uint64_t tick)
{
    uint64_t ns = sat_add(c->base_ns, ticks_to_ns_ceil(tick - c->base_ticks));
    return ns ? ns : 1; /* 0 would disarm */
}

/* Re-arm channel 0's timer for its next rising edge after now. */
static void schedule(struct i8254 *p, uint64_t now)
{
    struct pit_channel *c = &p->ch[0];
    p->next_irq_tick = next_rising_edge(c, elapsed(c, now));
    uint64_t deadline = p->next_irq_tick == NO_EVENT ? 0 : tick_deadline(c, p->next_irq_tick);
    p->host.timer_arm(p->host.timer_ctx, p->timer, deadline);
}

static void timer_fired(void *opaque)
{
    struct i8254 *p = opaque;
    struct pit_channel *c = &p->ch[0];
    bool pulse = false;
    pthread_mutex_lock(&p->lock);
    if (p->next_irq_tick != NO_EVENT) {
        uint64_t now = now_ns(p);
        uint64_t d = elapsed(c, now);
        if (d >= p->next_irq_tick) {
            /* One pulse however many edges passed: the next one is the first after now. */
            pulse = true;
            p->next_irq_tick = next_rising_edge(c, d);
        }
        uint64_t deadline = 0;
        if (p->next_irq_tick != NO_EVENT) {
            deadline = tick_deadline(c, p->next_irq_tick);
            uint64_t floor = sat_add(now, PIT_MIN_IRQ_PERIOD_NS);
            if (pulse && deadline < floor)
                deadline = floor;
        }
        p->host.timer_arm(p->host.timer_ctx, p->timer, deadline);
    }
    pthread_mutex_unlock(&p->lock);
    if (pulse && p->host.set_irq) {
        p->host.set_irq(p->host.irq_ctx, IRQ_PIT, 1);
        p->host.set_irq(p->host.irq_ctx, IRQ_PIT, 0);
    }
}

static void load_count(struct pit_channel *c, uint32_t value, uint64_t now)
{
    c->count = value ? value : 0x10000;
    c->loaded = true;
    c->null_count = false;
    c->base_ticks = 0;
    c->base_ns = now;
    c->running = c->gate;
}

static void set_gate(struct pit_channel *c, bool gate, uint64_t now)
{
    if (gate == c->gate)
        return;
    uint64_t d = elapsed(c, now);
    c->gate = gate;
    if (!c->loaded)
        return;
    unsigned mode = eff_mode(c);
    c->base_ns = now;
    if (gate) {
        /* Modes 0/4 resume where they paused; the others restart a full count. */
        c->base_ticks = (mode == 0 || mode == 4) ? d : 0;
        c->running = true;
    } else if (mode != 1 && mode != 5) { /* 1/5 ignore the gate falling */
        c->base_ticks = d;
        c->running = false;
    } else {
        c->base_ticks = d;
    }
}

static void latch_count(struct pit_channel *c, uint64_t now)
{
    if (c->count_latched)
        return; /* a second latch before the read is ignored */
    c->latched_count = channel_count(c, now);
    c->count_latched = c->rw;
}

static void latch_status(struct pit_channel *c, uint64_t now)
{
    if (c->status_latched)
        return;
    c->status = (uint8_t)((channel_out(c, now) ? 0x80 : 0) | (c->null_count ? 0x40 : 0) |
                          (c->rw << CTRL_RW_SHIFT) | (c->mode << 1) | (c->bcd ? 1 : 0));
    c->status_latched = true;
}

static void write_control(struct i8254 *p, uint8_t value, uint64_t now)
{
    unsigned sel = value >> CTRL_SELECT_SHIFT;
    if (sel == CTRL_READBACK) {
        for (unsigned i = 0; i < PIT_NR_CHANNELS; i++) {
            if (!(value & (2u << i)))
                continue;
            if (!(value & READBACK_NO_COUNT))
                latch_count(&p->ch[i], now);
            if (!(value & READBACK_NO_STATUS))
                latch_status(&p->ch[i], now);
        }
        return;
    }
    struct pit_channel *c = &p->ch[sel];
    unsigned rw = (value >> CTRL_RW_SHIFT) & 3u;
    if (rw == RW_LATCH) {
        latch_count(c, now);
        return;
    }
    /* A control word resets the counter: it waits for a new count, OUT takes its initial
     * level, latches and flip-flops are cleared. */
    c->rw = (uint8_t)rw;
    c->mode = (value >> 1) & 7u;
    c->bcd = value & 1u;
    c->read_state = c->write_state = (uint8_t)rw;
    c->count_latched = 0;
    c->status_latched = false;
    c->loaded = false;
    c->running = false;
    c->null_count = true;
    c->base_ticks = 0;
    if (sel == 0)
        schedule(p, now);
}

static void write_channel(struct i8254 *p, unsigned i, uint8_t value, uint64_t now)
{
    struct pit_channel *c = &p->ch[i];
    switch (c->write_state) {
    case RW_LSB:
        load_count(c, value, now);
        break;
    case RW_MSB:
        load_count(c, (uint32_t)value << 8, now);
        break;
    case RW_WORD0:
        c->write_lsb = value;
        c->write_state = RW_WORD1;
        c->null_count = true;
        return; /* the count is not complete yet */
    default:    /* RW_WORD1 */
        load_count(c, c->write_lsb | (uint32_t)value << 8, now);
        c->write_state = RW_WORD0;
        break;
    }
    if (i == 0)
        schedule(p, now);
}

static uint8_t read_channel(struct pit_channel *c, uint64_t now)
{
    if (c->status_latched) {
        c->status_latched = false;
        return c->status;
    }
    if (c->count_latched) {
        uint16_t v = c->latched_count;
        switch (c->count_latched) {
        case RW_MSB:
            c->count_latched = 0;
            return (uint8_t)(v >> 8);
        case RW_WORD0:
            c->count_latched = RW_WORD1;
            return (uint8_t)v;
        case RW_WORD1:
            c->count_latched = 0;
            return (uint8_t)(v >> 8);
        default: /* RW_LSB */
            c->count_latched = 0;
            return (uint8_t)v;
        }
    }
    uint16_t v = channel_count(c, now);
    switch (c->read_state) {
    case RW_MSB:
        return (uint8_t)(v >> 8);
    case RW_WORD0:
        c->read_state = RW_WORD1;
        return (uint8_t)v;
    case RW_WORD1:
        c->read_state = RW_WORD0;
        return (uint8_t)(v >> 8);
    default: /* RW_LSB */
        return (uint8_t)v;
    }
}

/* --- bus entry points ------------------------------------------------------------------------ */

/* Byte accesses; wider ones reach consecutive ports as the ISA bus splits them. The clock is
 * sampled once per access so a multi-byte read is consistent. */
static uint64_t pit_read(void *opaque, uint64_t offset, unsigned size)
{
    struct i8254 *p = opaque;
    uint64_t value = 0;
    pthread_mutex_lock(&p->lock);
    uint64_t now = now_ns(p);
    for (unsigned i = 0; i < size && i < 8; i++) {
        uint64_t reg = offset + i;
        uint8_t byte = 0xff; /* the control port cannot be read */
        if (reg < PIT_NR_CHANNELS)
            byte = read_channel(&p->ch[reg], now);
        value |= (uint64_t)byte << (8 * i);
    }
    pthread_mutex_unlock(&p->lock);
    return value;
}

static void pit_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
    struct i8254 *p = opaque;
    pthread_mutex_lock(&p->lock);
    uint64_t now = now_ns(p);
    for (unsigned i = 0; i < size && i < 8; i++) {
        uint64_t reg = offset + i;
        uint8_t byte = (uint8_t)(value >> (8 * i));
        if (reg < PIT_NR_CHANNELS)
            write_channel(p, (unsigned)reg, byte, now);
        else if (reg == 3)
            write_control(p, byte, now);
    }
    pthread_mutex_unlock(&p->lock);
}

static uint64_t sysb_read(void *opaque, uint64_t offset, unsigned size)
{
    struct i8254 *p = opaque;
    uint64_t value = 0;
    pthread_mutex_lock(&p->lock);
    uint64_t now = now_ns(p);
    for (unsigned i = 0; i < size && i < 8; i++) {
        uint8_t byte = 0xff;
        if (offset + i == 0) {
            /* Bits 7-6 (parity / channel check NMI sources) never fire here. */
            byte = (uint8_t)(p->port61 | ((now / REFRESH_PERIOD_NS) & 1 ? SYSB_REFRESH : 0) |
                             (channel_out(&p->ch[2], now) ? SYSB_OUT2 : 0));
        }
        value |= (uint64_t)byte << (8 * i);
    }
    pthread_mutex_unlock(&p->lock);
    return value;
}

static void sysb_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
    struct i8254 *p = opaque;
    if (offset != 0 || size == 0)
        return;
    pthread_mutex_lock(&p->lock);
    p->port61 = (uint8_t)(value & SYSB_WRITABLE);
    set_gate(&p->ch[2], p->port61 & SYSB_GATE2, now_ns(p));
    pthread_mutex_unlock(&p->lock);
}

static const struct bus_device_ops pit_ops = {.read = pit_read, .write = pit_write};
static const struct bus_device_ops sysb_ops = {.read = sysb_read, .write = sysb_write};

static int pit_create(const struct device_host *host, const struct device_args *args, void **state,
                      char *err, size_t errlen)
{
    *state = NULL;
    if (!host->user_irqchip)
        return 0; /* the accelerator has its own PIT */
    if (!host->clock_ns || !host->timer_new || !host->timer_arm)
        return qk_fail(err, errlen, "the machine offers no device timers");
    for (uint16_t port = PORT_PIT_BASE; port <= PORT_PIT_CONTROL; port++)
        if (bus_find(host->pio, port, 1, NULL))
            return qk_fail(err, errlen, "port 0x%x is already claimed", (unsigned)port);
    if (bus_find(host->pio, PORT_SYSTEM_B, 1, NULL))
        return qk_fail(err, errlen, "port 0x%x is already claimed", PORT_SYSTEM_B);
    struct i8254 *p = calloc(1, sizeof(*p));
    if (!p)
        return qk_fail(err, errlen, "out of memory");
    p->host = *host;
    p->next_irq_tick = NO_EVENT;
    /* Unprogrammed after reset (no firmware runs): mode 0, LSB-then-MSB, waiting for a count.
     * Gates 0 and 1 are tied high; gate 2 follows port 0x61 bit 0. */
    for (unsigned i = 0; i < PIT_NR_CHANNELS; i++) {
        struct pit_channel *c = &p->ch[i];
        c->count = 0x10000;
        c->rw = c->read_state = c->write_state = RW_WORD0;
        c->gate = i != 2;
    }
    if (pthread_mutex_init(&p->lock, NULL) != 0) {
        free(p);
        return qk_fail(err, errlen, "cannot create the PIT lock");
    }
    /* Timers live until the machine's timer list goes; ours is disarmed in destroy. */
    p->timer = host->timer_new(host->timer_ctx, timer_fired, p);
    if (!p->timer) {
        pthread_mutex_destroy(&p->lock);
        free(p);
        return qk_fail(err, errlen, "cannot create the PIT timer");
    }
    if (bus_register(host->pio, PORT_PIT_BASE, 4, &pit_ops, p, "pit", err, errlen) < 0) {
        pthread_mutex_destroy(&p->lock);
        free(p);
        return -1;
    }
    if (bus_register(host->pio, PORT_SYSTEM_B, 1, &sysb_ops, p, "port61", err, errlen) < 0) {
        /* Only out of memory gets here (the ports were free). The pit range already points
         * at p, so p is left allocated rather than freed under it (the machine gives up). */
        return -1;
    }
    *state = p;
    return 0;
}

static void pit_destroy(void *state)
{
    struct i8254 *p = state;
    if (!p)
        return;
    /* The I/O thread has stopped by now; disarm so the timer list never calls freed state. */
    p->host.timer_arm(p->host.timer_ctx, p->timer, 0);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

DEVICE_MODEL(i8254_model) = {
    .name = "i8254",
    .level = DEVICE_LEVEL_PLATFORM,
    .default_instance = true,
    .create = pit_create,
    .destroy = pit_destroy,
};
