/* Local APIC model (see lapic.h). Register layout and semantics: Intel SDM vol. 3A chapter 11
 * (xAPIC MMIO offsets; x2APIC MSR 0x800 + offset / 16).
 *
 * Modelled: ID, version (0x14, 6 LVT entries, no EOI-broadcast suppression), TPR, PPR, EOI,
 * LDR, DFR (flat and cluster), SVR software enable (disabling masks every LVT), ISR/TMR/IRR,
 * ESR (latched on write), ICR (fixed, lowest priority, NMI, INIT, STARTUP to any destination
 * or shorthand, through ops.send; INIT level de-assert is a no-op as on the Pentium 4 and
 * later; SMI is dropped), NMI/INIT/STARTUP messages recorded for the CPU, the LVT entries,
 * timer initial/current count and divide configuration, the TSC-deadline MSR, x2APIC mode and
 * its SELF IPI register. Delivery is instantaneous: the ICR's delivery status always reads
 * idle. Not modelled: the thermal/performance/CMCI sources, the error LVT interrupt (errors
 * are only recorded in ESR), LINT0/LINT1 inputs other than the PIC's ExtINT, interrupts
 * accepted while the APIC is software-disabled (dropped, as KVM does). */
#include "accel/tcg/lapic.h"
#include "vm/snapshot.h"

#include <string.h>

#define REG_ID 0x02
#define REG_VERSION 0x03
#define REG_TPR 0x08
#define REG_APR 0x09
#define REG_PPR 0x0a
#define REG_EOI 0x0b
#define REG_RRD 0x0c
#define REG_LDR 0x0d
#define REG_DFR 0x0e
#define REG_SVR 0x0f
#define REG_ISR 0x10
#define REG_TMR 0x18
#define REG_IRR 0x20
#define REG_ESR 0x28
#define REG_ICR 0x30
#define REG_ICR_HI 0x31
#define REG_LVT_TIMER 0x32 /* .. REG_LVT_TIMER + LAPIC_NR_LVT - 1 (error) */
#define REG_TIMER_INITIAL 0x38
#define REG_TIMER_CURRENT 0x39
#define REG_TIMER_DCR 0x3e
#define REG_SELF_IPI 0x3f

#define LAPIC_VERSION (0x14u | ((LAPIC_NR_LVT - 1u) << 16))
#define SVR_ENABLE (1u << 8)
#define SVR_WRITABLE 0x3ffu /* vector, enable, focus disable */
#define LVT_MASKED (1u << 16)
#define LVT_DM(v) (((v) >> 8) & 7u)
#define LVT_TIMER_MODE(v) (((v) >> 17) & 3u)
#define TIMER_ONESHOT 0u
#define TIMER_PERIODIC 1u
#define TIMER_TSC_DEADLINE 2u
#define ICR_WRITABLE 0x000ccfffu /* vector, mode, dest mode, level, trigger, shorthand */
#define ICR_LOGICAL (1u << 11)
#define ICR_ASSERT (1u << 14)
#define ICR_LEVEL_TRIGGER (1u << 15)
#define ICR_SHORTHAND(v) (((v) >> 18) & 3u)
#define ESR_SEND_ILLEGAL_VECTOR (1u << 5)
#define ESR_RECV_ILLEGAL_VECTOR (1u << 6)
#define ESR_ILLEGAL_REGISTER (1u << 7)

/* Writable bits of each LVT entry (delivery status and remote IRR are read-only). */
static const uint32_t lvt_writable[LAPIC_NR_LVT] = {
    [LVT_TIMER] = 0x000700ffu,   /* vector, mask, mode (one-shot/periodic/TSC-deadline) */
    [LVT_THERMAL] = 0x000107ffu, /* vector, delivery mode, mask */
    [LVT_PERF] = 0x000107ffu,
    [LVT_LINT0] = 0x0001a7ffu, /* vector, delivery mode, polarity, trigger, mask */
    [LVT_LINT1] = 0x0001a7ffu,
    [LVT_ERROR] = 0x000100ffu,
};

static bool x2apic_mode(const struct lapic *l)
{
    return (l->base & LAPIC_BASE_EXTD) != 0;
}

static bool hw_enabled(const struct lapic *l)
{
    return (l->base & LAPIC_BASE_EN) != 0;
}

static bool sw_enabled(const struct lapic *l)
{
    return (l->svr & SVR_ENABLE) != 0;
}

/* Highest vector set in a 256-bit register, or -1. */
static int highest_bit(const uint32_t reg[8])
{
    for (int i = 7; i >= 0; i--)
        if (reg[i])
            return i * 32 + 31 - __builtin_clz(reg[i]);
    return -1;
}

static bool test_bit(const uint32_t reg[8], unsigned vector)
{
    return (reg[vector >> 5] >> (vector & 31)) & 1u;
}

static void set_bit(uint32_t reg[8], unsigned vector)
{
    reg[vector >> 5] |= 1u << (vector & 31);
}

static void clear_bit(uint32_t reg[8], unsigned vector)
{
    reg[vector >> 5] &= ~(1u << (vector & 31));
}

static uint32_t ppr(const struct lapic *l)
{
    int isrv = highest_bit(l->isr);
    uint32_t isr_class = isrv < 0 ? 0 : (uint32_t)isrv & 0xf0u;
    return (l->tpr & 0xf0u) >= isr_class ? l->tpr & 0xffu : isr_class;
}

/* Recompute the hint the run loop polls; with the lock held. */
static bool update_deliverable(struct lapic *l)
{
    int irrv = highest_bit(l->irr);
    bool d = irrv >= 0 && ((uint32_t)irrv & 0xf0u) > (ppr(l) & 0xf0u);
    atomic_store_explicit(&l->deliverable, d, memory_order_release);
    return d;
}

/* Put `vector` into IRR; with the lock held. Returns whether an interrupt is deliverable. */
static bool accept(struct lapic *l, unsigned vector, bool level)
{
    vector &= 0xffu;
    if (!hw_enabled(l) || !sw_enabled(l))
        return update_deliverable(l); /* a disabled APIC drops fixed interrupts */
    if (vector < 16) {
        l->esr_pending |= ESR_RECV_ILLEGAL_VECTOR;
        return update_deliverable(l);
    }
    set_bit(l->irr, vector);
    if (level)
        set_bit(l->tmr, vector);
    else
        clear_bit(l->tmr, vector);
    return update_deliverable(l);
}

static void kick(struct lapic *l)
{
    if (l->ops.kick)
        l->ops.kick(l->ops.ctx);
}

static uint32_t x2apic_ldr(uint32_t id)
{
    return ((id >> 4) << 16) | (1u << (id & 0xfu));
}

/* Does a message for `dest` reach this APIC? */
static bool dest_match(const struct lapic *l, uint32_t dest, bool logical)
{
    if (x2apic_mode(l)) {
        if (dest == 0xffffffffu)
            return true;
        if (!logical)
            return dest == l->id;
        return (dest >> 16) == (l->ldr >> 16) && (dest & l->ldr & 0xffffu) != 0;
    }
    dest &= 0xffu;
    if (dest == 0xffu)
        return true;
    if (!logical)
        return dest == (l->id & 0xffu);
    uint32_t ldr = l->ldr >> 24;
    if ((l->dfr >> 28) == 0xfu) /* flat model: one bit per APIC */
        return (dest & ldr) != 0;
    /* cluster model: cluster in the high nibble (15 = all clusters), APICs in the low one */
    return ((dest >> 4) == (ldr >> 4) || (dest >> 4) == 0xfu) && (dest & ldr & 0xfu) != 0;
}

static void reset_registers(struct lapic *l)
{
    l->tpr = 0;
    l->dfr = 0xffffffffu;
    l->ldr = x2apic_mode(l) ? x2apic_ldr(l->id) : 0;
    l->svr = 0xffu;
    l->esr = l->esr_pending = 0;
    l->icr_lo = l->icr_hi = 0;
    for (unsigned i = 0; i < LAPIC_NR_LVT; i++)
        l->lvt[i] = LVT_MASKED;
    memset(l->irr, 0, sizeof(l->irr));
    memset(l->isr, 0, sizeof(l->isr));
    memset(l->tmr, 0, sizeof(l->tmr));
    l->timer_initial = 0;
    l->timer_dcr = 0;
    l->timer_period_ns = l->timer_deadline_ns = l->tsc_deadline = 0;
    atomic_store(&l->deliverable, false);
}

/* Registers back to power-up values, IA32_APIC_BASE and the ID aside; with the lock held. */
static void reset_keeping_base(struct lapic *l)
{
    reset_registers(l);
    atomic_store(&l->nmi_pending, false);
    atomic_store(&l->startup, 0);
    if (l->base & LAPIC_BASE_BSP)
        l->lvt[LVT_LINT0] = APIC_DM_EXTINT << 8;
}

void lapic_reset(struct lapic *l)
{
    pthread_mutex_lock(&l->lock);
    bool bsp = (l->base & LAPIC_BASE_BSP) != 0;
    l->base = LAPIC_DEFAULT_BASE | LAPIC_BASE_EN | (bsp ? LAPIC_BASE_BSP : 0);
    l->id = l->initial_id;
    reset_keeping_base(l);
    pthread_mutex_unlock(&l->lock);
}

void lapic_init_reset(struct lapic *l)
{
    pthread_mutex_lock(&l->lock);
    reset_keeping_base(l);
    pthread_mutex_unlock(&l->lock);
}

int lapic_init(struct lapic *l, uint32_t id, bool bsp, const struct lapic_ops *ops)
{
    memset(l, 0, sizeof(*l));
    if (pthread_mutex_init(&l->lock, NULL) != 0)
        return -1;
    l->ops = *ops;
    l->initial_id = id;
    l->base = bsp ? LAPIC_BASE_BSP : 0;
    lapic_reset(l);
    return 0;
}

void lapic_destroy(struct lapic *l)
{
    pthread_mutex_destroy(&l->lock);
}

uint64_t lapic_get_base(const struct lapic *l)
{
    return l->base;
}

bool lapic_set_base(struct lapic *l, uint64_t value)
{
    uint64_t reserved = ~(LAPIC_BASE_ADDR_MASK | LAPIC_BASE_EN | LAPIC_BASE_EXTD | LAPIC_BASE_BSP);
    if (value & reserved)
        return false;
    bool en = value & LAPIC_BASE_EN, extd = value & LAPIC_BASE_EXTD;
    /* SDM 11.12.5: x2APIC without the APIC enabled is invalid, and x2APIC may only be left
     * through the disabled state. */
    if (extd && !en)
        return false;
    if (x2apic_mode(l) && en && !extd)
        return false;
    pthread_mutex_lock(&l->lock);
    uint64_t old = l->base;
    l->base = (value & ~LAPIC_BASE_BSP) | (old & LAPIC_BASE_BSP); /* BSP is read-only */
    if ((old & LAPIC_BASE_EN) && !en) {
        reset_registers(l); /* globally disabled: back to power-up state but the ID */
        l->id = l->initial_id;
    }
    if (extd && !(old & LAPIC_BASE_EXTD)) {
        l->id = l->initial_id; /* the x2APIC ID is the initial APIC ID, LDR derives from it */
        l->ldr = x2apic_ldr(l->id);
    }
    update_deliverable(l);
    pthread_mutex_unlock(&l->lock);
    return true;
}

/* --- timer ------------------------------------------------------------------------------------ */

static unsigned timer_divisor(uint32_t dcr)
{
    unsigned v = (dcr & 3u) | ((dcr >> 1) & 4u);
    return 1u << ((v + 1u) & 7u); /* 0b111 divides by 1 */
}

static uint64_t now_ns(const struct lapic *l)
{
    return l->ops.clock_ns(l->ops.ctx);
}

static void timer_start(struct lapic *l)
{
    l->timer_deadline_ns = 0;
    l->timer_period_ns = 0;
    if (l->timer_initial == 0 || LVT_TIMER_MODE(l->lvt[LVT_TIMER]) == TIMER_TSC_DEADLINE)
        return;
    uint64_t period =
        (uint64_t)l->timer_initial * timer_divisor(l->timer_dcr) * (1000000000ULL / LAPIC_TIMER_HZ);
    if (LVT_TIMER_MODE(l->lvt[LVT_TIMER]) == TIMER_PERIODIC && period < LAPIC_MIN_PERIOD_NS)
        period = LAPIC_MIN_PERIOD_NS;
    l->timer_period_ns = period;
    l->timer_deadline_ns = now_ns(l) + period;
}

static uint32_t timer_current(const struct lapic *l)
{
    if (!l->timer_deadline_ns || LVT_TIMER_MODE(l->lvt[LVT_TIMER]) == TIMER_TSC_DEADLINE)
        return 0;
    uint64_t now = now_ns(l);
    uint64_t left = l->timer_deadline_ns > now ? l->timer_deadline_ns - now : 0;
    uint64_t count = left / ((1000000000ULL / LAPIC_TIMER_HZ) * timer_divisor(l->timer_dcr));
    return count > l->timer_initial ? l->timer_initial : (uint32_t)count;
}

void lapic_poll_timer(struct lapic *l, uint64_t now)
{
    if (!l->timer_deadline_ns || now < l->timer_deadline_ns)
        return;
    uint32_t lvt = l->lvt[LVT_TIMER];
    if (LVT_TIMER_MODE(lvt) == TIMER_PERIODIC && l->timer_period_ns) {
        l->timer_deadline_ns += l->timer_period_ns;
        if (l->timer_deadline_ns <= now) /* missed periods are coalesced, not replayed */
            l->timer_deadline_ns = now + l->timer_period_ns;
    } else {
        l->timer_deadline_ns = 0;
        l->tsc_deadline = 0;
    }
    if (lvt & LVT_MASKED)
        return;
    pthread_mutex_lock(&l->lock);
    bool d = accept(l, lvt & 0xffu, false);
    pthread_mutex_unlock(&l->lock);
    if (d)
        kick(l);
}

uint64_t lapic_get_tsc_deadline(const struct lapic *l)
{
    return LVT_TIMER_MODE(l->lvt[LVT_TIMER]) == TIMER_TSC_DEADLINE ? l->tsc_deadline : 0;
}

void lapic_set_tsc_deadline(struct lapic *l, uint64_t tsc_value, uint64_t deadline_ns)
{
    if (LVT_TIMER_MODE(l->lvt[LVT_TIMER]) != TIMER_TSC_DEADLINE)
        return; /* ignored in the other timer modes (SDM 11.5.4.1) */
    l->tsc_deadline = tsc_value;
    l->timer_deadline_ns = tsc_value ? (deadline_ns ? deadline_ns : 1) : 0;
}

/* --- registers ------------------------------------------------------------------------------ */

/* The message an ICR write sends, or false when it sends nothing; with the lock held. */
static bool icr_message(struct lapic *l, uint32_t lo, uint32_t dest, struct apic_msg *msg)
{
    unsigned mode = LVT_DM(lo);
    *msg = (struct apic_msg){.dest = dest,
                             .vector = (uint8_t)lo,
                             .delivery_mode = (uint8_t)mode,
                             .dest_logical = (lo & ICR_LOGICAL) != 0};
    switch (mode) {
    case APIC_DM_FIXED:
    case APIC_DM_LOWEST:
        if ((lo & 0xffu) < 16) {
            l->esr_pending |= ESR_SEND_ILLEGAL_VECTOR;
            return false;
        }
        return true; /* IPIs are edge-triggered whatever the trigger bit (SDM table 11-6) */
    case APIC_DM_INIT:
        /* INIT level de-assert (level trigger, assert clear): only an arbitration ID sync
         * on the P6, nothing since the Pentium 4; Linux still sends it after INIT. */
        return !((lo & ICR_LEVEL_TRIGGER) && !(lo & ICR_ASSERT));
    case APIC_DM_NMI:
    case APIC_DM_STARTUP:
        return true;
    default:
        return false; /* SMI (not modelled), reserved modes */
    }
}

/* EOI: retire the highest in-service vector. Returns it if it was level-triggered (the IOAPIC
 * must hear of it), else -1. With the lock held. */
static int eoi(struct lapic *l)
{
    int v = highest_bit(l->isr);
    if (v < 0)
        return -1;
    clear_bit(l->isr, (unsigned)v);
    update_deliverable(l);
    return test_bit(l->tmr, (unsigned)v) ? v : -1;
}

static bool reg_read(struct lapic *l, unsigned reg, uint64_t *value)
{
    bool x2 = x2apic_mode(l);
    uint32_t v;
    switch (reg) {
    case REG_ID:
        v = x2 ? l->id : l->id << 24;
        break;
    case REG_VERSION:
        v = LAPIC_VERSION;
        break;
    case REG_TPR:
        v = l->tpr;
        break;
    case REG_APR:
        v = 0;
        break;
    case REG_PPR:
        v = ppr(l);
        break;
    case REG_LDR:
        v = l->ldr;
        break;
    case REG_DFR:
        if (x2)
            return false;
        v = l->dfr;
        break;
    case REG_SVR:
        v = l->svr;
        break;
    case REG_ESR:
        v = l->esr;
        break;
    case REG_ICR:
        if (x2) {
            *value = ((uint64_t)l->icr_hi << 32) | l->icr_lo;
            return true;
        }
        v = l->icr_lo;
        break;
    case REG_ICR_HI:
        if (x2)
            return false;
        v = l->icr_hi;
        break;
    case REG_TIMER_INITIAL:
        v = l->timer_initial;
        break;
    case REG_TIMER_CURRENT:
        v = timer_current(l);
        break;
    case REG_TIMER_DCR:
        v = l->timer_dcr;
        break;
    default:
        if (reg >= REG_ISR && reg < REG_ISR + 8)
            v = l->isr[reg - REG_ISR];
        else if (reg >= REG_TMR && reg < REG_TMR + 8)
            v = l->tmr[reg - REG_TMR];
        else if (reg >= REG_IRR && reg < REG_IRR + 8)
            v = l->irr[reg - REG_IRR];
        else if (reg >= REG_LVT_TIMER && reg < REG_LVT_TIMER + LAPIC_NR_LVT)
            v = l->lvt[reg - REG_LVT_TIMER];
        else
            return false; /* EOI, RRD, SELF IPI (write-only) and holes */
        break;
    }
    *value = v;
    return true;
}

struct write_effects {
    int eoi_vector; /* level-triggered EOI to broadcast after unlocking, or -1 */
    bool kick;
    bool send; /* an ICR write: send ipi (with ipi_shorthand) after unlocking */
    enum lapic_shorthand ipi_shorthand;
    struct apic_msg ipi;
};

/* With the lock held. False: no such writable register (x2APIC: #GP). */
static bool reg_write(struct lapic *l, unsigned reg, uint64_t value64, struct write_effects *fx)
{
    bool x2 = x2apic_mode(l);
    uint32_t v = (uint32_t)value64;
    if (x2 && reg != REG_ICR && (value64 >> 32))
        return false;
    switch (reg) {
    case REG_ID:
        if (x2)
            return false;
        l->id = v >> 24; /* writable in xAPIC mode (KVM allows it too) */
        break;
    case REG_TPR:
        l->tpr = v & 0xffu;
        update_deliverable(l);
        break;
    case REG_EOI:
        if (x2 && v != 0)
            return false;
        fx->eoi_vector = eoi(l);
        break;
    case REG_LDR:
        if (x2)
            return false;
        l->ldr = v & 0xff000000u;
        break;
    case REG_DFR:
        if (x2)
            return false;
        l->dfr = v | 0x0fffffffu;
        break;
    case REG_SVR:
        l->svr = v & SVR_WRITABLE;
        if (!sw_enabled(l))
            for (unsigned i = 0; i < LAPIC_NR_LVT; i++)
                l->lvt[i] |= LVT_MASKED;
        break;
    case REG_ESR:
        if (x2 && v != 0)
            return false;
        l->esr = l->esr_pending;
        l->esr_pending = 0;
        break;
    case REG_ICR:
        l->icr_lo = v & ICR_WRITABLE;
        if (x2)
            l->icr_hi = (uint32_t)(value64 >> 32);
        fx->send = icr_message(l, l->icr_lo, x2 ? l->icr_hi : l->icr_hi >> 24, &fx->ipi);
        fx->ipi_shorthand = (enum lapic_shorthand)ICR_SHORTHAND(l->icr_lo);
        break;
    case REG_ICR_HI:
        if (x2)
            return false;
        l->icr_hi = v & 0xff000000u;
        break;
    case REG_TIMER_INITIAL:
        if (LVT_TIMER_MODE(l->lvt[LVT_TIMER]) == TIMER_TSC_DEADLINE)
            break; /* ignored in TSC-deadline mode */
        l->timer_initial = v;
        timer_start(l);
        break;
    case REG_TIMER_DCR:
        l->timer_dcr = v & 0xbu;
        break;
    case REG_SELF_IPI:
        if (!x2)
            return false;
        if ((v & 0xffu) < 16)
            l->esr_pending |= ESR_SEND_ILLEGAL_VECTOR;
        else
            fx->kick |= accept(l, v & 0xffu, false);
        break;
    default:
        if (reg >= REG_LVT_TIMER && reg < REG_LVT_TIMER + LAPIC_NR_LVT) {
            unsigned i = reg - REG_LVT_TIMER;
            uint32_t nv = v & lvt_writable[i];
            if (i == LVT_TIMER && LVT_TIMER_MODE(nv) == 3u)
                nv &= ~(3u << 17); /* reserved mode: one-shot */
            if (!sw_enabled(l))
                nv |= LVT_MASKED; /* the mask cannot be cleared while software-disabled */
            if (i == LVT_TIMER && LVT_TIMER_MODE(nv) != LVT_TIMER_MODE(l->lvt[i])) {
                /* A mode change stops the timer (as KVM does). */
                l->timer_initial = 0;
                l->timer_deadline_ns = l->timer_period_ns = l->tsc_deadline = 0;
            }
            l->lvt[i] = nv;
            break;
        }
        return false; /* read-only registers and holes */
    }
    return true;
}

/* Without a bus this APIC receives what it addresses to itself. */
static void send_alone(struct lapic *l, const struct apic_msg *msg, enum lapic_shorthand sh)
{
    bool self = sh == LAPIC_SH_NONE ? lapic_match_dest(l, msg->dest, msg->dest_logical)
                                    : sh != LAPIC_SH_OTHERS;
    if (self)
        lapic_receive(l, msg);
}

static void finish_write(struct lapic *l, const struct write_effects *fx)
{
    if (fx->eoi_vector >= 0 && l->ops.eoi)
        l->ops.eoi(l->ops.ctx, (uint8_t)fx->eoi_vector);
    if (fx->kick)
        kick(l);
    if (fx->send && l->ops.send)
        l->ops.send(l->ops.ctx, &fx->ipi, fx->ipi_shorthand);
    else if (fx->send)
        send_alone(l, &fx->ipi, fx->ipi_shorthand);
}

/* xAPIC registers are 32 bits at 16-byte strides. Reads of any size see the bytes of the
 * register at their offset (past its 4 bytes: zero); only aligned writes of 4 bytes or more
 * reach a register (the low 32 bits), others are dropped, as on hardware where they are
 * undefined. */
uint64_t lapic_mmio_read(struct lapic *l, uint64_t offset, unsigned size)
{
    if (size == 0 || size > 8 || offset > 0xfff)
        return 0;
    unsigned within = (unsigned)(offset & 0xf);
    uint64_t v = 0;
    pthread_mutex_lock(&l->lock);
    if (!reg_read(l, (unsigned)(offset >> 4), &v))
        v = 0; /* write-only registers and holes */
    pthread_mutex_unlock(&l->lock);
    v &= 0xffffffffULL;
    v = within < 4 ? v >> (8 * within) : 0;
    return size >= 8 ? v : v & ((1ULL << (8 * size)) - 1);
}

void lapic_mmio_write(struct lapic *l, uint64_t offset, unsigned size, uint64_t value)
{
    if (size < 4 || size > 8 || offset > 0xfff || (offset & 0xf))
        return;
    struct write_effects fx = {.eoi_vector = -1};
    pthread_mutex_lock(&l->lock);
    unsigned reg = (unsigned)(offset >> 4);
    if (reg == REG_SELF_IPI || !reg_write(l, reg, value & 0xffffffffULL, &fx))
        l->esr_pending |= ESR_ILLEGAL_REGISTER; /* SELF IPI exists in x2APIC mode only */
    pthread_mutex_unlock(&l->lock);
    finish_write(l, &fx);
}

bool lapic_msr_read(struct lapic *l, uint32_t msr, uint64_t *value)
{
    if (!x2apic_mode(l) || msr < LAPIC_X2APIC_MSR_BASE || msr >= LAPIC_X2APIC_MSR_END)
        return false;
    pthread_mutex_lock(&l->lock);
    bool ok = reg_read(l, msr - LAPIC_X2APIC_MSR_BASE, value);
    pthread_mutex_unlock(&l->lock);
    return ok;
}

bool lapic_msr_write(struct lapic *l, uint32_t msr, uint64_t value)
{
    if (!x2apic_mode(l) || msr < LAPIC_X2APIC_MSR_BASE || msr >= LAPIC_X2APIC_MSR_END)
        return false;
    struct write_effects fx = {.eoi_vector = -1};
    pthread_mutex_lock(&l->lock);
    bool ok = reg_write(l, msr - LAPIC_X2APIC_MSR_BASE, value, &fx);
    pthread_mutex_unlock(&l->lock);
    finish_write(l, &fx);
    return ok;
}

uint64_t lapic_get_cr8(const struct lapic *l)
{
    return (l->tpr >> 4) & 0xfu;
}

void lapic_set_cr8(struct lapic *l, uint64_t value)
{
    pthread_mutex_lock(&l->lock);
    l->tpr = (uint32_t)(value & 0xfu) << 4;
    update_deliverable(l);
    pthread_mutex_unlock(&l->lock);
}

/* --- delivery --------------------------------------------------------------------------------- */

bool lapic_match_dest(struct lapic *l, uint32_t dest, bool logical)
{
    pthread_mutex_lock(&l->lock);
    bool match = hw_enabled(l) && dest_match(l, dest, logical);
    pthread_mutex_unlock(&l->lock);
    return match;
}

bool lapic_arbitration_priority(struct lapic *l, uint32_t *prio)
{
    pthread_mutex_lock(&l->lock);
    bool ok = hw_enabled(l) && sw_enabled(l);
    *prio = ppr(l);
    pthread_mutex_unlock(&l->lock);
    return ok;
}

/* Record an INIT or a SIPI. An INIT drops the SIPIs before it (they would start the CPU
 * before the reset); of SIPIs in a row only the first counts (it starts the CPU, which then
 * ignores the others: INIT, SIPI, SIPI must start it at the first one's vector). */
static void record_startup(struct lapic *l, const struct apic_msg *msg)
{
    unsigned old = atomic_load(&l->startup), new;
    do {
        if (msg->delivery_mode == APIC_DM_INIT)
            new = LAPIC_STARTUP_INIT;
        else if (old & LAPIC_STARTUP_SIPI)
            return;
        else
            new = old | LAPIC_STARTUP_SIPI | msg->vector;
    } while (!atomic_compare_exchange_weak(&l->startup, &old, new));
}

void lapic_receive(struct lapic *l, const struct apic_msg *msg)
{
    pthread_mutex_lock(&l->lock);
    bool d = false;
    if (!hw_enabled(l)) {
        /* globally disabled: the CPU has no APIC to receive with */
    } else if (msg->delivery_mode == APIC_DM_FIXED || msg->delivery_mode == APIC_DM_LOWEST) {
        d = accept(l, msg->vector, msg->level);
    } else if (msg->delivery_mode == APIC_DM_NMI) {
        atomic_store(&l->nmi_pending, true); /* software-disabled APICs take NMIs too */
        d = true;
    } else if (msg->delivery_mode == APIC_DM_INIT || msg->delivery_mode == APIC_DM_STARTUP) {
        record_startup(l, msg);
        d = true;
    }
    pthread_mutex_unlock(&l->lock);
    if (d)
        kick(l);
}

void lapic_deliver(struct lapic *l, const struct apic_msg *msg)
{
    if (lapic_match_dest(l, msg->dest, msg->dest_logical))
        lapic_receive(l, msg);
}

bool lapic_accepts_pic(const struct lapic *l)
{
    uint32_t lint0 = l->lvt[LVT_LINT0];
    return !hw_enabled(l) || (!(lint0 & LVT_MASKED) && LVT_DM(lint0) == APIC_DM_EXTINT);
}

int lapic_ack(struct lapic *l)
{
    pthread_mutex_lock(&l->lock);
    int v = -1;
    if (update_deliverable(l)) {
        v = highest_bit(l->irr);
        clear_bit(l->irr, (unsigned)v);
        set_bit(l->isr, (unsigned)v);
        update_deliverable(l);
    }
    pthread_mutex_unlock(&l->lock);
    return v;
}

/* --- snapshots ------------------------------------------------------------------------------ */

/* The registers and timer: from initial_id up to (not including) `deliverable`, which is
 * recomputed. Timer deadlines are guest-clock ns, which a restore continues. */
#define LAPIC_STATE_OFFSET offsetof(struct lapic, initial_id)
#define LAPIC_STATE_SIZE (offsetof(struct lapic, deliverable) - LAPIC_STATE_OFFSET)

void lapic_save(struct lapic *l, struct snap_writer *w)
{
    pthread_mutex_lock(&l->lock);
    snap_put(w, (uint8_t *)l + LAPIC_STATE_OFFSET, LAPIC_STATE_SIZE);
    pthread_mutex_unlock(&l->lock);
}

int lapic_load(struct lapic *l, struct snap_reader *r)
{
    uint8_t saved[LAPIC_STATE_SIZE];
    snap_get(r, saved, sizeof(saved));
    if (r->failed)
        return -1;
    pthread_mutex_lock(&l->lock);
    memcpy((uint8_t *)l + LAPIC_STATE_OFFSET, saved, sizeof(saved));
    /* A hostile file must not make a periodic timer fire back to back. */
    if (l->timer_period_ns && l->timer_period_ns < LAPIC_MIN_PERIOD_NS)
        l->timer_period_ns = LAPIC_MIN_PERIOD_NS;
    update_deliverable(l);
    pthread_mutex_unlock(&l->lock);
    return 0;
}
