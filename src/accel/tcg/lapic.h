/* The translator's local APIC: one per vCPU, part of the CPU as on hardware (Intel SDM vol. 3
 * chapter 11). xAPIC registers through MMIO at the APIC base, x2APIC through MSRs 0x800-0x8ff,
 * the timer (one-shot, periodic, TSC-deadline), priorities (TPR/PPR, CR8), EOI with the
 * broadcast the IOAPIC needs for level-triggered vectors, IPIs to itself, and LINT0 in ExtINT
 * mode as the 8259's path to the CPU (virtual wire).
 *
 * Independent of the translator's CPU state so it can be tested alone: time comes from
 * ops.clock_ns, EOIs and wake-ups go out through ops. Register accesses, the timer and the
 * interrupt acknowledge happen on the vCPU's thread; lapic_deliver() from any thread. */
#ifndef QUOKKA_ACCEL_TCG_LAPIC_H
#define QUOKKA_ACCEL_TCG_LAPIC_H

#include "vm/apic.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define LAPIC_BASE_BSP (1ULL << 8)
#define LAPIC_BASE_EXTD (1ULL << 10) /* x2APIC mode */
#define LAPIC_BASE_EN (1ULL << 11)
#define LAPIC_BASE_ADDR_MASK 0x000000fffffff000ULL /* 40-bit physical addresses (CPUID) */
#define LAPIC_DEFAULT_BASE 0xfee00000ULL

/* Timer input clock before the divider: one count per nanosecond (KVM's choice too). */
#define LAPIC_TIMER_HZ 1000000000ULL
/* Shortest period of the periodic timer; a smaller count would have the vCPU thread take
 * timer interrupts back to back instead of running the guest (KVM's min_timer_period_us). */
#define LAPIC_MIN_PERIOD_NS 200000ULL

#define LAPIC_X2APIC_MSR_BASE 0x800u
#define LAPIC_X2APIC_MSR_END 0x900u

enum lapic_lvt { LVT_TIMER, LVT_THERMAL, LVT_PERF, LVT_LINT0, LVT_LINT1, LVT_ERROR, LAPIC_NR_LVT };

struct lapic_ops {
    uint64_t (*clock_ns)(void *ctx);
    void (*eoi)(void *ctx, uint8_t vector); /* level-triggered vector retired; may be NULL */
    void (*kick)(void *ctx);                /* an interrupt became deliverable; may be NULL */
    void *ctx;
};

struct lapic {
    pthread_mutex_t lock; /* IRR/TMR and everything lapic_deliver() reads */
    struct lapic_ops ops;
    uint32_t initial_id;
    uint64_t base; /* IA32_APIC_BASE */
    uint32_t id;   /* APIC ID (xAPIC: bits 31:24 of the register) */
    uint32_t tpr, ldr, dfr, svr;
    uint32_t esr, esr_pending; /* ESR reads what the last ESR write latched */
    uint32_t icr_lo, icr_hi;
    uint32_t lvt[LAPIC_NR_LVT];
    uint32_t irr[8], isr[8], tmr[8];
    /* Timer: vCPU thread only. deadline 0 = not running. */
    uint32_t timer_initial, timer_dcr;
    uint64_t timer_period_ns, timer_deadline_ns, tsc_deadline;
    atomic_bool deliverable; /* an IRR vector beats the processor priority */
    atomic_bool nmi_pending; /* an NMI message arrived (ICR, IOAPIC/MSI); taken by the CPU */
};

/* bsp: the bootstrap processor, whose LINT0 starts in ExtINT mode (virtual wire to the PIC,
 * what PC firmware leaves and KVM's LINT0_REENABLED quirk models). */
int lapic_init(struct lapic *l, uint32_t id, bool bsp, const struct lapic_ops *ops);
void lapic_destroy(struct lapic *l);
/* Power-up state (IA32_APIC_BASE included). */
void lapic_reset(struct lapic *l);

uint64_t lapic_get_base(const struct lapic *l);
/* WRMSR IA32_APIC_BASE; false means #GP (reserved bits, invalid mode transition). */
bool lapic_set_base(struct lapic *l, uint64_t value);
/* True when physical address paddr is in the xAPIC register page of this APIC. */
static inline bool lapic_mmio_hit(const struct lapic *l, uint64_t paddr)
{
    return (l->base & (LAPIC_BASE_EN | LAPIC_BASE_EXTD)) == LAPIC_BASE_EN &&
           (paddr & ~0xfffULL) == (l->base & LAPIC_BASE_ADDR_MASK);
}
uint64_t lapic_mmio_read(struct lapic *l, uint64_t offset, unsigned size);
void lapic_mmio_write(struct lapic *l, uint64_t offset, unsigned size, uint64_t value);
/* x2APIC MSRs (0x800-0x8ff); false means #GP (not in x2APIC mode, no such register,
 * read-only or write-only register, reserved bits). */
bool lapic_msr_read(struct lapic *l, uint32_t msr, uint64_t *value);
bool lapic_msr_write(struct lapic *l, uint32_t msr, uint64_t value);
/* IA32_TSC_DEADLINE: the caller converts the TSC value to deadline_ns on the clock. */
uint64_t lapic_get_tsc_deadline(const struct lapic *l);
void lapic_set_tsc_deadline(struct lapic *l, uint64_t tsc_value, uint64_t deadline_ns);
/* CR8 is TPR[7:4]. */
uint64_t lapic_get_cr8(const struct lapic *l);
void lapic_set_cr8(struct lapic *l, uint64_t value);

/* An interrupt message (IOAPIC); any thread. */
void lapic_deliver(struct lapic *l, const struct apic_msg *msg);
/* The 8259's INTR reaches the CPU: the APIC is globally disabled or LINT0 is unmasked ExtINT. */
bool lapic_accepts_pic(const struct lapic *l);
static inline bool lapic_has_interrupt(struct lapic *l)
{
    return atomic_load_explicit(&l->deliverable, memory_order_acquire);
}
/* Interrupt acknowledge: the highest deliverable vector, now in service; -1 if none. */
int lapic_ack(struct lapic *l);

/* An NMI is waiting (lapic_take_nmi claims it). */
static inline bool lapic_nmi_pending(struct lapic *l)
{
    return atomic_load_explicit(&l->nmi_pending, memory_order_acquire);
}

static inline bool lapic_take_nmi(struct lapic *l)
{
    return atomic_exchange(&l->nmi_pending, false);
}
/* When the timer fires next (clock ns), 0 when it is not running. */
static inline uint64_t lapic_timer_deadline(const struct lapic *l)
{
    return l->timer_deadline_ns;
}
/* Fire the timer if its deadline is at or before now. */
void lapic_poll_timer(struct lapic *l, uint64_t now);

struct snap_writer;
struct snap_reader;
/* Snapshots: registers, pending vectors and the timer (vCPU stopped). */
void lapic_save(struct lapic *l, struct snap_writer *w);
int lapic_load(struct lapic *l, struct snap_reader *r);

#endif
