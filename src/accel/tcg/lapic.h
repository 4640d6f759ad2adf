/* The translator's local APIC: one per vCPU, part of the CPU as on hardware (Intel SDM vol. 3
 * chapter 11). xAPIC registers through MMIO at the APIC base, x2APIC through MSRs 0x800-0x8ff,
 * the timer (one-shot, periodic, TSC-deadline), priorities (TPR/PPR, CR8), EOI with the
 * broadcast the IOAPIC needs for level-triggered vectors, IPIs (fixed, lowest priority, NMI,
 * INIT, STARTUP) sent through ops.send onto the APIC bus (apic_bus.h), and LINT0 in ExtINT
 * mode as the 8259's path to the CPU (virtual wire).
 *
 * Independent of the translator's CPU state so it can be tested alone: time comes from
 * ops.clock_ns, EOIs, IPIs and wake-ups go out through ops. INIT and STARTUP messages are
 * recorded (lapic_take_startup) for the CPU to act on. Register accesses, the timer and the
 * interrupt acknowledge happen on the vCPU's thread; lapic_deliver(), lapic_receive() and the
 * destination and priority queries from any thread. */
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

/* ICR destination shorthands (bits 19:18). */
enum lapic_shorthand {
    LAPIC_SH_NONE = 0, /* the destination field */
    LAPIC_SH_SELF = 1,
    LAPIC_SH_ALL = 2,    /* all including self */
    LAPIC_SH_OTHERS = 3, /* all excluding self */
};

struct lapic_ops {
    uint64_t (*clock_ns)(void *ctx);
    void (*eoi)(void *ctx, uint8_t vector); /* level-triggered vector retired; may be NULL */
    void (*kick)(void *ctx);                /* an interrupt became deliverable; may be NULL */
    /* An IPI the ICR sent: the APIC bus routes it to every APIC (this one included). Called
     * on the vCPU's thread without the lock held. NULL: this APIC is alone, it receives what
     * is addressed to itself. */
    void (*send)(void *ctx, const struct apic_msg *msg, enum lapic_shorthand shorthand);
    void *ctx;
};

/* INIT and STARTUP messages waiting for the CPU (lapic_take_startup): */
#define LAPIC_STARTUP_VECTOR 0xffu   /* the last SIPI's vector */
#define LAPIC_STARTUP_INIT (1u << 8) /* an INIT arrived */
#define LAPIC_STARTUP_SIPI (1u << 9) /* a SIPI arrived after it (or without one) */
#define LAPIC_STARTUP_MASK 0x3ffu

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
    atomic_uint startup;     /* LAPIC_STARTUP_*: INIT/SIPI messages the CPU has not taken */
};

/* bsp: the bootstrap processor, whose LINT0 starts in ExtINT mode (virtual wire to the PIC,
 * what PC firmware leaves and KVM's LINT0_REENABLED quirk models). */
int lapic_init(struct lapic *l, uint32_t id, bool bsp, const struct lapic_ops *ops);
void lapic_destroy(struct lapic *l);
/* Power-up state (IA32_APIC_BASE included). */
void lapic_reset(struct lapic *l);
/* INIT: power-up state but IA32_APIC_BASE (x2APIC mode, BSP flag) and the APIC ID stay (SDM
 * 10.4.7.3, as KVM); pending NMI and startup messages are dropped. */
void lapic_init_reset(struct lapic *l);

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

/* An interrupt message (IOAPIC) when this APIC is a destination; any thread. Lowest priority
 * is accepted as fixed: arbitration between APICs is the bus's (apic_bus_route). */
void lapic_deliver(struct lapic *l, const struct apic_msg *msg);
/* Does a message for dest (physical or logical) reach this APIC? A globally disabled APIC is
 * off the bus. Any thread. */
bool lapic_match_dest(struct lapic *l, uint32_t dest, bool logical);
/* A message this APIC is a destination of: fixed and lowest priority vectors into IRR,
 * NMI, INIT and STARTUP recorded for the CPU; SMI and ExtINT are dropped. Kicks the CPU
 * when something arrived. Any thread. */
void lapic_receive(struct lapic *l, const struct apic_msg *msg);
/* For lowest-priority arbitration: false when the APIC cannot take a fixed interrupt
 * (hardware- or software-disabled), else its processor priority (PPR) in *prio. */
bool lapic_arbitration_priority(struct lapic *l, uint32_t *prio);
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
/* INIT/STARTUP messages arrived (lapic_take_startup claims them). */
static inline bool lapic_startup_pending(struct lapic *l)
{
    return atomic_load_explicit(&l->startup, memory_order_acquire) != 0;
}

/* LAPIC_STARTUP_* bits of what arrived since the last call; an INIT drops the SIPIs before
 * it, so INIT then SIPI is the order to act on them in. */
static inline uint32_t lapic_take_startup(struct lapic *l)
{
    return atomic_exchange(&l->startup, 0);
}

/* Snapshots put back what lapic_take_startup would have returned. */
static inline void lapic_set_startup(struct lapic *l, uint32_t events)
{
    atomic_store(&l->startup, events & LAPIC_STARTUP_MASK);
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
