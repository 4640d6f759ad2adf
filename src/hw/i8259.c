/* Two cascaded 8259A programmable interrupt controllers (master 0x20-0x21, slave 0xa0-0xa1 on
 * master IR2) and the edge/level control registers (ELCR, 0x4d0-0x4d1). User-space irqchip
 * only: with KVM the kernel has its own PIC and this model registers nothing.
 *
 * Modelled: ICW1-ICW4 (ICW4 optional; ICW3 accepted but the cascade is always master IR2),
 * OCW1 (IMR), OCW2 (non-specific/specific EOI, the rotate variants and set-priority), OCW3
 * (IRR/ISR read select, poll command, special mask mode), auto-EOI (with rotate), special
 * fully nested mode, fixed and rotating priority, spurious IRQ 7/15 when a request vanished
 * before the acknowledge, edge or level triggering per ELCR bit.
 * Not modelled: 8080/8085 call-address mode, the buffered mode and ICW1's LTIM bit (PC boards
 * select level triggering through the ELCR instead), single mode (the slave stays cascaded).
 *
 * Edge requests are latched in IRR until acknowledged even if the line drops again: devices
 * (the PIT) signal edges as a 1-then-0 pulse, which a real 8259A would only see as a glitch.
 * Level requests follow the line, so a level line dropping before the acknowledge gives the
 * spurious vector, as on hardware.
 *
 * Lines: the router maps GSI n < 16 to ISA IRQ n (master IR n, slave IR n-8). GSI 2 is
 * ignored: master IR2 carries the slave's INT output, not a device (AT boards wire the bus's
 * IRQ2 pin to IRQ9). Higher GSIs belong to an IOAPIC and are ignored here.
 *
 * Locking: one mutex covers both chips. set_irq arrives from device and timer threads, the
 * acknowledge and register accesses from the vCPU thread. set_cpu_intr is called with the
 * lock held: it only records the pin and kicks the vCPU, never calling back into the PIC, so
 * the order PIC -> accelerator cannot deadlock and INTR changes reach the CPU in order. */
#include "hw/device.h"
#include "util/log.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#define PORT_PIC_MASTER 0x20
#define PORT_PIC_SLAVE 0xa0
#define PORT_ELCR 0x4d0 /* 0x4d0 master, 0x4d1 slave */
#define PIC_CASCADE_IR 2
#define PIC_NR_ISA_IRQS 16

/* IRQ 0, 1, 2 (timer, keyboard, cascade) and 8, 13 (RTC, FPU) are edge-only on PIIX-style
 * ELCRs; their bits are read-only zero. */
#define ELCR_MASK_MASTER 0xf8
#define ELCR_MASK_SLAVE 0xde

#define ICW1_IC4 0x01  /* ICW4 follows */
#define ICW1_SNGL 0x02 /* single mode: no ICW3 */
#define ICW1_INIT 0x10
#define OCW3_SEL 0x08
#define OCW3_RIS 0x01 /* with RR: 1 reads ISR, 0 reads IRR */
#define OCW3_RR 0x02
#define OCW3_POLL 0x04
#define OCW3_SMM 0x20
#define OCW3_ESMM 0x40
#define ICW4_AEOI 0x02
#define ICW4_SFNM 0x10

enum init_state { INIT_NONE, INIT_ICW2, INIT_ICW3, INIT_ICW4 };

struct pic_chip {
    uint8_t irr;   /* pending requests */
    uint8_t isr;   /* in service */
    uint8_t imr;   /* masked */
    uint8_t lines; /* current input levels (edge detection, level requests) */
    uint8_t elcr;  /* 1 = level triggered */
    uint8_t elcr_mask;
    uint8_t vector_base;     /* ICW2, low 3 bits zero */
    uint8_t lowest_priority; /* IR with the lowest priority (7 after ICW1); rotation moves it */
    uint8_t init_state;
    bool need_icw4;
    bool single;
    bool read_isr;
    bool poll;
    bool special_mask;
    bool auto_eoi;
    bool rotate_on_aeoi;
    bool special_fully_nested;
    bool is_master;
};

struct i8259 {
    pthread_mutex_t lock;
    struct device_host host;
    struct pic_chip chip[2]; /* 0 master, 1 slave */
    bool intr;               /* what set_cpu_intr was last told */
};

/* Priority rank (0 highest) of IR `irq` given the current rotation. */
static unsigned rank_of(const struct pic_chip *c, unsigned irq)
{
    return (irq + 7u - c->lowest_priority) & 7u;
}

/* IR of the highest-priority bit of mask, or -1 when mask is empty. At most 8 steps. */
static int highest(const struct pic_chip *c, uint8_t mask)
{
    for (unsigned r = 0; r < 8; r++) {
        unsigned irq = (c->lowest_priority + 1u + r) & 7u;
        if (mask & (1u << irq))
            return (int)irq;
    }
    return -1;
}

/* The IR this chip would deliver now: an unmasked request with a higher priority than every
 * in-service level (special mask mode: masked in-service levels do not block), or -1. */
static int chip_pending(const struct pic_chip *c)
{
    int req = highest(c, (uint8_t)(c->irr & ~c->imr));
    if (req < 0)
        return -1;
    uint8_t in_service = c->isr;
    if (c->special_mask)
        in_service &= (uint8_t)~c->imr;
    /* Special fully nested mode lets a higher slave request through while IR2 is in service. */
    if (c->special_fully_nested && c->is_master)
        in_service &= (uint8_t) ~(1u << PIC_CASCADE_IR);
    int cur = highest(c, in_service);
    if (cur >= 0 && rank_of(c, (unsigned)req) >= rank_of(c, (unsigned)cur))
        return -1;
    return req;
}

static void chip_set_line(struct pic_chip *c, unsigned irq, bool level)
{
    uint8_t bit = (uint8_t)(1u << irq);
    if (c->elcr & bit) {
        if (level)
            c->irr |= bit;
        else
            c->irr &= (uint8_t)~bit;
    } else if (level && !(c->lines & bit)) {
        c->irr |= bit; /* 0 -> 1 transition */
    }
    if (level)
        c->lines |= bit;
    else
        c->lines &= (uint8_t)~bit;
}

/* The slave's INT output drives master IR2. It is treated as a level input (IRR2 follows
 * INT): with an edge latch a slave that still requests after its acknowledge (auto-EOI, special
 * mask) would never make a new edge and its request would be lost. */
static void cascade(struct i8259 *p)
{
    struct pic_chip *m = &p->chip[0];
    uint8_t bit = (uint8_t)(1u << PIC_CASCADE_IR);
    if (chip_pending(&p->chip[1]) >= 0) {
        m->irr |= bit;
        m->lines |= bit;
    } else {
        m->irr &= (uint8_t)~bit;
        m->lines &= (uint8_t)~bit;
    }
}

/* Propagate the slave's INT output to master IR2 and the master's to the CPU's INTR pin. */
static void update(struct i8259 *p)
{
    cascade(p);
    bool intr = chip_pending(&p->chip[0]) >= 0;
    if (intr == p->intr)
        return;
    p->intr = intr;
    p->host.set_cpu_intr(p->host.irqchip_ctx, 0, intr ? 1 : 0);
}

/* Move IR `irq` from IRR to ISR (or retire it at once in auto-EOI mode). Level requests stay
 * in IRR: they follow the line. */
static void chip_ack(struct pic_chip *c, unsigned irq)
{
    uint8_t bit = (uint8_t)(1u << irq);
    if (c->auto_eoi) {
        if (c->rotate_on_aeoi)
            c->lowest_priority = (uint8_t)irq;
    } else {
        c->isr |= bit;
    }
    if (!(c->elcr & bit))
        c->irr &= (uint8_t)~bit;
}

/* The vCPU's interrupt acknowledge cycle. */
static int acknowledge(struct i8259 *p)
{
    struct pic_chip *m = &p->chip[0], *s = &p->chip[1];
    int irq = chip_pending(m);
    if (irq < 0)
        return m->vector_base + 7; /* spurious IRQ 7: no ISR bit is set */
    int vector;
    if (irq == PIC_CASCADE_IR) {
        int sirq = chip_pending(s);
        if (sirq >= 0) {
            chip_ack(s, (unsigned)sirq);
            vector = s->vector_base + sirq;
        } else {
            vector = s->vector_base + 7; /* spurious IRQ 15; the master still acks IR2 */
        }
    } else {
        vector = m->vector_base + irq;
    }
    chip_ack(m, (unsigned)irq);
    update(p); /* re-derives IR2 from the slave's INT after the acknowledge cleared it */
    return vector;
}

/* OCW3 poll: the read returns 0x80 | IR and acknowledges it, or 0 when nothing is pending. */
static uint8_t chip_poll(struct i8259 *p, struct pic_chip *c)
{
    int irq = chip_pending(c);
    if (irq < 0)
        return 0;
    chip_ack(c, (unsigned)irq);
    update(p);
    return (uint8_t)(0x80 | irq);
}

static void chip_eoi(struct pic_chip *c, int irq, bool rotate)
{
    if (irq < 0)
        return;
    c->isr &= (uint8_t) ~(1u << irq);
    if (rotate)
        c->lowest_priority = (uint8_t)irq;
}

static void write_icw1(struct pic_chip *c, uint8_t value)
{
    /* Edge sense is reset: a line already high needs a new 0 -> 1 transition, which `lines`
     * gives us. Level requests keep following their line. */
    c->irr &= c->elcr & c->lines;
    c->isr = 0;
    c->imr = 0;
    c->lowest_priority = 7;
    c->special_mask = false;
    c->read_isr = false;
    c->poll = false;
    c->auto_eoi = false;
    c->rotate_on_aeoi = false;
    c->special_fully_nested = false;
    c->need_icw4 = value & ICW1_IC4;
    c->single = value & ICW1_SNGL;
    c->init_state = INIT_ICW2;
}

static void write_command(struct pic_chip *c, uint8_t value)
{
    if (value & ICW1_INIT) {
        write_icw1(c, value);
        return;
    }
    if (value & OCW3_SEL) {
        if (value & OCW3_RR)
            c->read_isr = value & OCW3_RIS;
        if (value & OCW3_POLL)
            c->poll = true;
        if (value & OCW3_ESMM)
            c->special_mask = value & OCW3_SMM;
        return;
    }
    /* OCW2: R SL EOI in bits 7-5, level in 2-0. */
    unsigned level = value & 7u;
    switch (value >> 5) {
    case 0: /* rotate in auto-EOI mode: clear */
        c->rotate_on_aeoi = false;
        break;
    case 4: /* rotate in auto-EOI mode: set */
        c->rotate_on_aeoi = true;
        break;
    case 1: /* non-specific EOI */
        chip_eoi(c, highest(c, c->isr), false);
        break;
    case 5: /* rotate on non-specific EOI */
        chip_eoi(c, highest(c, c->isr), true);
        break;
    case 3: /* specific EOI */
        chip_eoi(c, (int)level, false);
        break;
    case 7: /* rotate on specific EOI */
        chip_eoi(c, (int)level, true);
        break;
    case 6: /* set priority: `level` becomes the lowest */
        c->lowest_priority = (uint8_t)level;
        break;
    default: /* 2: no operation */
        break;
    }
}

static void write_data(struct pic_chip *c, uint8_t value)
{
    switch (c->init_state) {
    case INIT_ICW2:
        c->vector_base = value & 0xf8;
        if (!c->single)
            c->init_state = INIT_ICW3;
        else
            c->init_state = c->need_icw4 ? INIT_ICW4 : INIT_NONE;
        break;
    case INIT_ICW3: /* cascade wiring is fixed (slave on IR2): accept any value */
        c->init_state = c->need_icw4 ? INIT_ICW4 : INIT_NONE;
        break;
    case INIT_ICW4:
        c->auto_eoi = value & ICW4_AEOI;
        c->special_fully_nested = value & ICW4_SFNM;
        c->init_state = INIT_NONE;
        break;
    default: /* OCW1 */
        c->imr = value;
        break;
    }
}

static void write_elcr(struct pic_chip *c, uint8_t value)
{
    c->elcr = value & c->elcr_mask;
    /* Lines now level-triggered request exactly while high; edge ones keep their latch. */
    c->irr = (uint8_t)((c->irr & ~c->elcr) | (c->lines & c->elcr));
}

/* --- bus, router and acknowledge entry points --------------------------------------------- */

/* Byte accesses; wider ones reach consecutive ports as the ISA bus splits them. */
static uint64_t pic_bus_read(struct i8259 *p, unsigned which, uint64_t offset, unsigned size)
{
    uint64_t value = 0;
    pthread_mutex_lock(&p->lock);
    for (unsigned i = 0; i < size && i < 8; i++) {
        uint64_t reg = offset + i;
        uint8_t byte = 0xff;
        if (reg < 2) {
            struct pic_chip *c = &p->chip[which];
            if (c->poll) {
                c->poll = false; /* the poll applies to the next read of either port */
                byte = chip_poll(p, c);
            } else if (reg == 0) {
                byte = c->read_isr ? c->isr : c->irr;
            } else {
                byte = c->imr;
            }
        }
        value |= (uint64_t)byte << (8 * i);
    }
    pthread_mutex_unlock(&p->lock);
    return value;
}

static void pic_bus_write(struct i8259 *p, unsigned which, uint64_t offset, unsigned size,
                          uint64_t value)
{
    pthread_mutex_lock(&p->lock);
    for (unsigned i = 0; i < size && i < 8; i++) {
        uint64_t reg = offset + i;
        uint8_t byte = (uint8_t)(value >> (8 * i));
        if (reg == 0)
            write_command(&p->chip[which], byte);
        else if (reg == 1)
            write_data(&p->chip[which], byte);
    }
    update(p);
    pthread_mutex_unlock(&p->lock);
}

static uint64_t master_read(void *opaque, uint64_t offset, unsigned size)
{
    return pic_bus_read(opaque, 0, offset, size);
}

static void master_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
    pic_bus_write(opaque, 0, offset, size, value);
}

static uint64_t slave_read(void *opaque, uint64_t offset, unsigned size)
{
    return pic_bus_read(opaque, 1, offset, size);
}

static void slave_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
    pic_bus_write(opaque, 1, offset, size, value);
}

static uint64_t elcr_read(void *opaque, uint64_t offset, unsigned size)
{
    struct i8259 *p = opaque;
    uint64_t value = 0;
    pthread_mutex_lock(&p->lock);
    for (unsigned i = 0; i < size && i < 8; i++) {
        uint64_t reg = offset + i;
        uint8_t byte = reg < 2 ? p->chip[reg].elcr : 0xff;
        value |= (uint64_t)byte << (8 * i);
    }
    pthread_mutex_unlock(&p->lock);
    return value;
}

static void elcr_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
    struct i8259 *p = opaque;
    pthread_mutex_lock(&p->lock);
    for (unsigned i = 0; i < size && i < 8; i++) {
        uint64_t reg = offset + i;
        if (reg < 2)
            write_elcr(&p->chip[reg], (uint8_t)(value >> (8 * i)));
    }
    update(p);
    pthread_mutex_unlock(&p->lock);
}

static void pic_route(void *opaque, uint32_t gsi, int level)
{
    struct i8259 *p = opaque;
    if (gsi >= PIC_NR_ISA_IRQS || gsi == PIC_CASCADE_IR)
        return;
    pthread_mutex_lock(&p->lock);
    chip_set_line(&p->chip[gsi >> 3], gsi & 7u, level != 0);
    update(p);
    pthread_mutex_unlock(&p->lock);
}

/* The PIC's INT pin goes to vCPU 0 only (the other CPUs get interrupts from the LAPICs);
 * other vCPUs never acknowledge through it. */
static int pic_intack(void *opaque, unsigned vcpu)
{
    struct i8259 *p = opaque;
    if (vcpu != 0)
        return -1;
    pthread_mutex_lock(&p->lock);
    int vector = acknowledge(p);
    pthread_mutex_unlock(&p->lock);
    return vector;
}

static const struct bus_device_ops master_ops = {.read = master_read, .write = master_write};
static const struct bus_device_ops slave_ops = {.read = slave_read, .write = slave_write};
static const struct bus_device_ops elcr_ops = {.read = elcr_read, .write = elcr_write};

static void pic_reset(struct pic_chip *c, bool master)
{
    *c = (struct pic_chip){
        .elcr_mask = master ? ELCR_MASK_MASTER : ELCR_MASK_SLAVE,
        .lowest_priority = 7,
        .is_master = master,
    };
}

static int pic_create(const struct device_host *host, const struct device_args *args, void **state,
                      char *err, size_t errlen)
{
    *state = NULL;
    if (!host->user_irqchip)
        return 0; /* the accelerator has its own PIC */
    if (!host->register_irq_router || !host->set_cpu_intr || !host->register_intack)
        return qk_fail(err, errlen, "the machine offers no user-space irqchip hooks");
    struct i8259 *p = calloc(1, sizeof(*p));
    if (!p)
        return qk_fail(err, errlen, "out of memory");
    p->host = *host;
    pic_reset(&p->chip[0], true);
    pic_reset(&p->chip[1], false);
    if (pthread_mutex_init(&p->lock, NULL) != 0) {
        free(p);
        return qk_fail(err, errlen, "cannot create the PIC lock");
    }
    /* The bus cannot unregister: check every range is free first, so a conflict does not
     * leave a range pointing at freed state. */
    static const uint16_t ports[] = {PORT_PIC_MASTER, PORT_PIC_SLAVE, PORT_ELCR};
    for (size_t i = 0; i < sizeof(ports) / sizeof(ports[0]); i++)
        if (bus_find(host->pio, ports[i], 1, NULL) || bus_find(host->pio, ports[i] + 1u, 1, NULL)) {
            pthread_mutex_destroy(&p->lock);
            free(p);
            return qk_fail(err, errlen, "port 0x%x is already claimed", (unsigned)ports[i]);
        }
    struct bus *pio = host->pio;
    if (bus_register(pio, PORT_PIC_MASTER, 2, &master_ops, p, "pic-master", err, errlen) < 0) {
        pthread_mutex_destroy(&p->lock);
        free(p);
        return -1;
    }
    /* Only out of memory fails from here on; the master range already points at p, so p is
     * left allocated rather than freed under it (the machine gives up anyway). */
    if (bus_register(pio, PORT_PIC_SLAVE, 2, &slave_ops, p, "pic-slave", err, errlen) < 0 ||
        bus_register(pio, PORT_ELCR, 2, &elcr_ops, p, "elcr", err, errlen) < 0)
        return -1;
    host->register_irq_router(host->irqchip_ctx, pic_route, p);
    host->register_intack(host->irqchip_ctx, pic_intack, p);
    *state = p;
    return 0;
}

static void pic_destroy(void *state)
{
    struct i8259 *p = state;
    if (!p)
        return;
    p->host.register_irq_router(p->host.irqchip_ctx, NULL, p);
    p->host.register_intack(p->host.irqchip_ctx, NULL, NULL);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

DEVICE_MODEL(i8259_model) = {
    .name = "i8259",
    .level = DEVICE_LEVEL_IRQCHIP,
    .default_instance = true,
    .create = pic_create,
    .destroy = pic_destroy,
};
