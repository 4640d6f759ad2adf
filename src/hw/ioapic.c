/* The I/O APIC (Intel 82093AA) at PHYS_IOAPIC: 24 redirection entries that turn interrupt
 * lines into messages for the local APICs. User-space irqchip only: with KVM the kernel has
 * its own IOAPIC and this model registers nothing.
 *
 * Modelled: IOREGSEL/IOWIN, the ID, version (0x11, as on PIIX-era boards: no EOI register)
 * and arbitration registers, redirection entries (vector, delivery mode, logical/physical
 * destination, trigger mode, mask; delivery status always idle), edge and level triggering,
 * remote IRR cleared by the local APICs' EOI broadcast, re-delivery of a level line still
 * asserted after its EOI or unmask.
 * Not modelled: polarity (lines arrive as asserted/deasserted, so the bit is only stored),
 * the APIC-bus arbitration itself.
 *
 * Wiring: the router sees the same lines as the 8259 pair. Following the MADT's interrupt
 * source override, ISA IRQ 0 (the PIT) drives pin 2; line 2 is the PIC cascade and drives
 * nothing; line n otherwise drives pin n. Pin 0 (the 8259's INTR on boards with virtual wire
 * through the IOAPIC) is unconnected: quokka wires the PIC to LINT0 of the local APIC.
 *
 * Masked edges are dropped, not held (datasheet 3.2.4: "not delivered or held pending");
 * a masked level line is sampled again when it is unmasked.
 *
 * Locking: one mutex. Messages go to the local APICs with it held (their locks nest inside);
 * the EOI broadcast arrives on a vCPU thread with no local APIC lock held. */
#include "hw/device.h"
#include "util/log.h"
#include "vm/platform.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#define IOAPIC_NR_PINS 24
#define IOAPIC_MMIO_LEN 0x1000
#define IOAPIC_REGSEL 0x00
#define IOAPIC_WIN 0x10
#define IOAPIC_REG_ID 0x00
#define IOAPIC_REG_VER 0x01
#define IOAPIC_REG_ARB 0x02
#define IOAPIC_REG_REDTBL 0x10
#define IOAPIC_VERSION (0x11u | ((IOAPIC_NR_PINS - 1u) << 16))
#define IOAPIC_ID_MASK 0x0f000000u

#define RTE_VECTOR 0xffULL
#define RTE_DM_SHIFT 8
#define RTE_DEST_LOGICAL (1ULL << 11)
#define RTE_REMOTE_IRR (1ULL << 14)
#define RTE_LEVEL (1ULL << 15)
#define RTE_MASKED (1ULL << 16)
#define RTE_DEST_SHIFT 56
/* Guest-writable bits: all but delivery status (12), remote IRR (14) and reserved ones. */
#define RTE_WRITABLE                                                                               \
    (0xff000000000000ffULL | (7ULL << 8) | (1ULL << 11) | (1ULL << 13) | RTE_LEVEL | RTE_MASKED)

struct ioapic {
    pthread_mutex_t lock;
    struct device_host host;
    uint32_t regsel;
    uint32_t id;
    uint64_t rte[IOAPIC_NR_PINS];
    uint32_t lines; /* current levels of the pins (bit n = pin n asserted) */
};

static void send(struct ioapic *io, unsigned pin)
{
    uint64_t e = io->rte[pin];
    struct apic_msg msg = {
        .dest = (uint32_t)(e >> RTE_DEST_SHIFT),
        .vector = (uint8_t)(e & RTE_VECTOR),
        .delivery_mode = (uint8_t)((e >> RTE_DM_SHIFT) & 7u),
        .dest_logical = (e & RTE_DEST_LOGICAL) != 0,
        .level = (e & RTE_LEVEL) != 0,
    };
    io->host.send_apic_msg(io->host.irqchip_ctx, &msg);
}

/* Deliver a level-triggered pin if it is asserted, unmasked and not awaiting its EOI. */
static void service_level(struct ioapic *io, unsigned pin)
{
    uint64_t *e = &io->rte[pin];
    if (!(*e & RTE_LEVEL) || (*e & (RTE_MASKED | RTE_REMOTE_IRR)) || !(io->lines & (1u << pin)))
        return;
    *e |= RTE_REMOTE_IRR;
    send(io, pin);
}

static void set_pin(struct ioapic *io, unsigned pin, bool level)
{
    uint32_t bit = 1u << pin;
    bool was = (io->lines & bit) != 0;
    if (level)
        io->lines |= bit;
    else
        io->lines &= ~bit;
    if (io->rte[pin] & RTE_LEVEL)
        service_level(io, pin);
    else if (level && !was && !(io->rte[pin] & RTE_MASKED))
        send(io, pin);
}

static uint32_t read_reg(const struct ioapic *io)
{
    uint32_t index = io->regsel;
    switch (index) {
    case IOAPIC_REG_ID:
    case IOAPIC_REG_ARB:
        return io->id;
    case IOAPIC_REG_VER:
        return IOAPIC_VERSION;
    default:
        break;
    }
    if (index >= IOAPIC_REG_REDTBL && index < IOAPIC_REG_REDTBL + 2 * IOAPIC_NR_PINS) {
        uint64_t e = io->rte[(index - IOAPIC_REG_REDTBL) / 2];
        return (uint32_t)((index & 1) ? e >> 32 : e);
    }
    return 0xffffffffu; /* nothing there */
}

static void write_reg(struct ioapic *io, uint32_t value)
{
    uint32_t index = io->regsel;
    if (index == IOAPIC_REG_ID) {
        io->id = value & IOAPIC_ID_MASK;
        return;
    }
    if (index < IOAPIC_REG_REDTBL || index >= IOAPIC_REG_REDTBL + 2 * IOAPIC_NR_PINS)
        return; /* version, arbitration: read-only */
    unsigned pin = (index - IOAPIC_REG_REDTBL) / 2;
    uint64_t *e = &io->rte[pin];
    uint64_t v = (index & 1) ? ((uint64_t)value << 32) | (*e & 0xffffffffULL)
                             : (*e & 0xffffffff00000000ULL) | value;
    *e = (v & RTE_WRITABLE) | (*e & RTE_REMOTE_IRR);
    if (!(*e & RTE_LEVEL))
        *e &= ~RTE_REMOTE_IRR; /* remote IRR is undefined for edge entries: keep it clear */
    service_level(io, pin);    /* an asserted level line unmasked now is delivered now */
}

/* 32-bit registers at 0x00 and 0x10; narrower accesses see their bytes of the register,
 * wider ones the low 32 bits; anything else reads as zero and ignores writes. */
static uint64_t ioapic_read(void *opaque, uint64_t offset, unsigned size)
{
    struct ioapic *io = opaque;
    if (size == 0 || size > 8)
        return 0;
    uint64_t reg = offset & ~3ULL, shift = (offset & 3) * 8;
    uint32_t value;
    pthread_mutex_lock(&io->lock);
    if (reg == IOAPIC_REGSEL)
        value = io->regsel;
    else if (reg == IOAPIC_WIN)
        value = read_reg(io);
    else
        value = 0;
    pthread_mutex_unlock(&io->lock);
    uint64_t v = (uint64_t)value >> shift;
    return size >= 8 ? v : v & ((1ULL << (size * 8)) - 1);
}

static void ioapic_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
    struct ioapic *io = opaque;
    if (size == 0 || size > 8)
        return;
    pthread_mutex_lock(&io->lock);
    if (offset == IOAPIC_REGSEL)
        io->regsel = (uint32_t)value & 0xffu; /* IOREGSEL holds an 8-bit index */
    else if (offset == IOAPIC_WIN && size >= 4)
        write_reg(io, (uint32_t)value);
    pthread_mutex_unlock(&io->lock);
}

static void ioapic_route(void *opaque, uint32_t gsi, int level)
{
    struct ioapic *io = opaque;
    unsigned pin;
    if (gsi == IRQ_PIT)
        pin = 2; /* the MADT's override: ISA IRQ 0 -> GSI 2 */
    else if (gsi == 2 || gsi >= IOAPIC_NR_PINS)
        return;
    else
        pin = gsi;
    pthread_mutex_lock(&io->lock);
    set_pin(io, pin, level != 0);
    pthread_mutex_unlock(&io->lock);
}

/* A local APIC retired `vector`: every level entry with that vector may take a new one. */
static void ioapic_eoi(void *opaque, uint8_t vector)
{
    struct ioapic *io = opaque;
    pthread_mutex_lock(&io->lock);
    for (unsigned pin = 0; pin < IOAPIC_NR_PINS; pin++) {
        uint64_t *e = &io->rte[pin];
        if ((*e & RTE_VECTOR) != vector || !(*e & RTE_REMOTE_IRR))
            continue;
        *e &= ~RTE_REMOTE_IRR;
        service_level(io, pin);
    }
    pthread_mutex_unlock(&io->lock);
}

static const struct bus_device_ops ioapic_ops = {.read = ioapic_read, .write = ioapic_write};

static int ioapic_create(const struct device_host *host, const struct device_args *args,
                         void **state, char *err, size_t errlen)
{
    *state = NULL;
    if (!host->user_irqchip)
        return 0; /* the accelerator has its own IOAPIC */
    if (!host->register_irq_router || !host->send_apic_msg || !host->register_eoi)
        return qk_fail(err, errlen, "the machine offers no user-space APIC hooks");
    struct ioapic *io = calloc(1, sizeof(*io));
    if (!io)
        return qk_fail(err, errlen, "out of memory");
    io->host = *host;
    for (unsigned pin = 0; pin < IOAPIC_NR_PINS; pin++)
        io->rte[pin] = RTE_MASKED;
    if (pthread_mutex_init(&io->lock, NULL) != 0) {
        free(io);
        return qk_fail(err, errlen, "cannot create the IOAPIC lock");
    }
    if (bus_register(host->mmio, PHYS_IOAPIC, IOAPIC_MMIO_LEN, &ioapic_ops, io, "ioapic", err,
                     errlen) < 0) {
        pthread_mutex_destroy(&io->lock);
        free(io);
        return -1;
    }
    host->register_irq_router(host->irqchip_ctx, ioapic_route, io);
    host->register_eoi(host->irqchip_ctx, ioapic_eoi, io);
    *state = io;
    return 0;
}

static void ioapic_destroy(void *state)
{
    struct ioapic *io = state;
    if (!io)
        return;
    io->host.register_irq_router(io->host.irqchip_ctx, NULL, io);
    io->host.register_eoi(io->host.irqchip_ctx, NULL, NULL);
    pthread_mutex_destroy(&io->lock);
    free(io);
}

DEVICE_MODEL(ioapic_model) = {
    .name = "ioapic",
    .level = DEVICE_LEVEL_IRQCHIP,
    .default_instance = true,
    .create = ioapic_create,
    .destroy = ioapic_destroy,
};
