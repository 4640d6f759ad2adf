/* Debugging on the translator: see debug.h for how breakpoints, watchpoints and the guest's
 * DR0-DR7 reach the run loop and the software MMU. */
#include "accel/tcg/debug.h"

#include "accel/tcg/tcg_internal.h"
#include "util/log.h"

#include <string.h>

/* DR7: breakpoint n is enabled (L or G), its R/W and LEN fields. */
static bool dr7_enabled(uint64_t dr7, unsigned n)
{
    return (dr7 >> (2 * n)) & 3;
}

static unsigned dr7_rw(uint64_t dr7, unsigned n)
{
    return (dr7 >> (16 + 4 * n)) & 3;
}

static unsigned dr7_len(uint64_t dr7, unsigned n)
{
    static const unsigned len[4] = {1, 2, 8, 4}; /* LEN 00, 01, 10 (64-bit), 11 */
    return len[(dr7 >> (18 + 4 * n)) & 3];
}

#define DR_RW_EXEC 0
#define DR_RW_WRITE 1
#define DR_RW_ACCESS 3 /* 2 is I/O, not modelled */

static bool dr_is_exec(const struct tcg_cpu *cpu, unsigned n)
{
    return dr7_enabled(cpu->dr[7], n) && dr7_rw(cpu->dr[7], n) == DR_RW_EXEC;
}

static bool dr_is_data(const struct tcg_cpu *cpu, unsigned n)
{
    unsigned rw = dr7_rw(cpu->dr[7], n);
    return dr7_enabled(cpu->dr[7], n) && (rw == DR_RW_WRITE || rw == DR_RW_ACCESS);
}

/* [a, a+alen) and [b, b+blen) share a byte (no wrap-around at the top of the space). */
static bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
    return a < b + blen && b < a + alen;
}

/* A data breakpoint covers its LEN-aligned range (the low address bits are ignored). */
static uint64_t dr_base(const struct tcg_cpu *cpu, unsigned n)
{
    return cpu->dr[n] & ~(uint64_t)(dr7_len(cpu->dr[7], n) - 1);
}

/* --- the VM's break set ------------------------------------------------------------------ */

static void add_break(uint64_t *set, unsigned *n, bool *overflow, uint64_t pc)
{
    for (unsigned i = 0; i < *n; i++)
        if (set[i] == pc)
            return;
    if (*n == TCG_DEBUG_MAX_BREAKS) {
        *overflow = true;
        return;
    }
    set[(*n)++] = pc;
}

/* Rebuild the union of every vCPU's execution breakpoints; when it changed, every block is
 * dropped at the next point where no block runs (blocks may span a new address, or end
 * before an old one and be chained). Other vCPUs' DR values are read while they may run:
 * a stale one only makes a block end early. Translation lock held. */
static void rebuild_breaks(struct accel_vm *vm)
{
    uint64_t set[TCG_DEBUG_MAX_BREAKS];
    unsigned n = 0;
    bool overflow = false;
    for (unsigned i = 0; i < TCG_MAX_VCPUS; i++) {
        struct accel_vcpu *v = atomic_load(&vm->vcpus[i]);
        if (!v)
            continue;
        for (unsigned b = 0; b < v->dbg.gdb.nr_breakpoints; b++)
            add_break(set, &n, &overflow, v->dbg.gdb.breakpoint[b]);
        for (unsigned d = 0; d < 4; d++)
            if (dr_is_exec(&v->cpu, d))
                add_break(set, &n, &overflow, __atomic_load_n(&v->cpu.dr[d], __ATOMIC_RELAXED));
    }
    struct tcg_vm_debug *d = &vm->dbg;
    unsigned old = atomic_load_explicit(&d->nr_breaks, memory_order_relaxed);
    bool same = old == (overflow ? 1u : n) && d->every_insn == overflow &&
                (overflow || !memcmp(d->breaks, set, n * sizeof(set[0])));
    if (same)
        return;
    atomic_store_explicit(&d->nr_breaks, 0, memory_order_release);
    memcpy(d->breaks, set, n * sizeof(set[0]));
    d->every_insn = overflow;
    atomic_store_explicit(&d->nr_breaks, overflow ? 1u : n, memory_order_release);
    vm->tbs.flush_wanted = true;
}

bool tcg_debug_break_at(const struct accel_vm *vm, uint64_t linear)
{
    const struct tcg_vm_debug *d = &vm->dbg;
    unsigned n = atomic_load_explicit(&d->nr_breaks, memory_order_acquire);
    if (!n)
        return false;
    if (n > TCG_DEBUG_MAX_BREAKS)
        n = TCG_DEBUG_MAX_BREAKS;
    if (d->every_insn)
        return true;
    for (unsigned i = 0; i < n; i++)
        if (d->breaks[i] == linear)
            return true;
    return false;
}

bool tcg_debug_may_chain(const struct accel_vm *vm, uint64_t pc)
{
    return !tcg_debug_break_at(vm, pc);
}

/* --- per vCPU ------------------------------------------------------------------------------ */

static bool gdb_watch_hits(const struct accel_watchpoint *w, uint64_t vaddr, unsigned size,
                           bool write)
{
    bool kind_ok = w->kind == ACCEL_WATCH_ACCESS ||
                   (write ? w->kind == ACCEL_WATCH_WRITE : w->kind == ACCEL_WATCH_READ);
    return kind_ok && overlaps(vaddr, size, w->addr, w->len);
}

/* Recompute the vCPU's armed flags; the TLB is flushed when watched pages may have changed
 * (so they leave, or return to, the fast path). */
static void refresh(struct accel_vcpu *v)
{
    struct tcg_cpu *cpu = &v->cpu;
    bool exec = v->dbg.gdb.nr_breakpoints > 0, watch = v->dbg.gdb.nr_watchpoints > 0;
    for (unsigned n = 0; n < 4; n++) {
        exec |= dr_is_exec(cpu, n);
        watch |= dr_is_data(cpu, n);
    }
    v->dbg.exec = exec;
    if (watch || v->dbg.watch)
        tlb_flush(cpu);
    v->dbg.watch = watch;
}

void tcg_debug_reset(struct tcg_cpu *cpu)
{
    /* A stale break set only makes blocks end early: rebuilt at the next change. */
    refresh(cpu_vcpu(cpu));
}

void tcg_debug_dr_changed(struct tcg_cpu *cpu)
{
    struct accel_vcpu *v = cpu_vcpu(cpu);
    refresh(v);
    struct accel_vm *vm = v->vm;
    bool held = cpu->tb_lock_held;
    if (!held)
        tcg_tb_lock(cpu, vm);
    rebuild_breaks(vm);
    if (!held)
        tcg_tb_unlock(cpu, vm);
    /* Chained code must come back to the run loop (which drops blocks when asked). */
    tcg_recheck_interrupts(cpu);
}

int tcg_set_debug(struct accel_vcpu *v, const struct accel_debug *dbg, char *err, size_t errlen)
{
    if (dbg->nr_breakpoints > ACCEL_MAX_BREAKPOINTS || dbg->nr_watchpoints > ACCEL_MAX_WATCHPOINTS)
        return qk_fail(err, errlen, "too many breakpoints or watchpoints");
    for (unsigned i = 0; i < dbg->nr_watchpoints; i++) {
        const struct accel_watchpoint *w = &dbg->watchpoint[i];
        if (w->len < 1 || w->len > 8 || w->kind < ACCEL_WATCH_WRITE || w->kind > ACCEL_WATCH_ACCESS)
            return qk_fail(err, errlen, "bad watchpoint");
    }
    /* The vCPU is stopped: its state is this thread's to change. */
    v->dbg.gdb = *dbg;
    v->dbg.restart = false;
    refresh(v);
    pthread_mutex_lock(&v->vm->tb_lock);
    rebuild_breaks(v->vm);
    pthread_mutex_unlock(&v->vm->tb_lock);
    return 0;
}

int tcg_translate_gva(struct accel_vcpu *v, uint64_t gva, uint64_t *gpa)
{
    return mmu_debug_translate(&v->cpu, gva, gpa) ? 0 : -1;
}

static void setup_db(struct tcg_cpu *cpu, uint8_t hits)
{
    cpu->dr[6] = (cpu->dr[6] & ~0xfULL) | hits;
    cpu->exception = X86_EXC_DB;
    cpu->has_error_code = false;
    cpu->exception_soft = false;
    cpu->exception_ext = false;
}

static void debug_exit(struct accel_exit *exit, enum accel_debug_kind kind, uint64_t addr,
                       uint8_t watch_kind)
{
    exit->reason = ACCEL_EXIT_DEBUG;
    exit->debug.kind = kind;
    exit->debug.addr = addr;
    exit->debug.watch_kind = watch_kind;
}

enum tcg_debug_action tcg_debug_before_insn(struct accel_vcpu *v, uint64_t pc,
                                            struct accel_exit *exit)
{
    struct tcg_cpu *cpu = &v->cpu;
    if (!v->dbg.exec) {
        cpu->eflags &= ~(uint64_t)X86_RF;
        return TCG_DEBUG_NONE;
    }
    if (v->dbg.restart && v->dbg.restart_pc == pc)
        return TCG_DEBUG_NONE; /* (an instruction run again after a watched access) */
    /* The debugger's breakpoints: not for the instruction it steps (it may step off one). */
    if (!v->dbg.gdb.single_step)
        for (unsigned i = 0; i < v->dbg.gdb.nr_breakpoints; i++)
            if (v->dbg.gdb.breakpoint[i] == pc) {
                debug_exit(exit, ACCEL_DEBUG_BREAKPOINT, pc, 0);
                return TCG_DEBUG_STOP;
            }
    /* RF=1: this instruction's breakpoints do not fire; RF clears once it completes (a
     * fault pushes it set, seg.c; an IRET or POPF it runs sets it again). */
    if (cpu->eflags & X86_RF) {
        cpu->eflags &= ~(uint64_t)X86_RF;
        return TCG_DEBUG_NONE;
    }
    uint8_t hits = 0;
    for (unsigned n = 0; n < 4; n++)
        if (dr_is_exec(cpu, n) && cpu->dr[n] == pc)
            hits |= (uint8_t)(1u << n);
    if (!hits)
        return TCG_DEBUG_NONE;
    setup_db(cpu, hits); /* a fault: RIP stays at the instruction */
    return TCG_DEBUG_RAISE;
}

bool tcg_debug_take_restart(struct accel_vcpu *v, uint64_t pc)
{
    if (!v->dbg.restart)
        return false;
    v->dbg.restart = false;
    /* An interrupt came first: the instruction hits again when it runs. */
    if (v->dbg.restart_pc != pc)
        return false;
    v->dbg.recording = true;
    v->dbg.dr_hits = 0;
    v->dbg.gdb_hit = false;
    return true;
}

enum tcg_debug_action tcg_debug_after_block(struct accel_vcpu *v, bool gdb_step,
                                            struct accel_exit *exit)
{
    if (v->dbg.recording) {
        v->dbg.recording = false;
        uint8_t hits = v->dbg.dr_hits;
        v->dbg.dr_hits = 0;
        if (v->dbg.gdb_hit) {
            v->dbg.gdb_hit = false;
            debug_exit(exit, ACCEL_DEBUG_WATCHPOINT, v->dbg.gdb_hit_watch.addr,
                       v->dbg.gdb_hit_watch.kind);
            return TCG_DEBUG_STOP;
        }
        if (hits) {
            setup_db(&v->cpu, hits); /* a trap: RIP is past the instruction */
            return TCG_DEBUG_RAISE;
        }
    }
    if (gdb_step) {
        debug_exit(exit, ACCEL_DEBUG_STEP, v->cpu.rip, 0);
        return TCG_DEBUG_STOP;
    }
    return TCG_DEBUG_NONE;
}

void tcg_debug_after_fault(struct accel_vcpu *v)
{
    if (v->dbg.recording && v->cpu.step_atomic) {
        /* A locked instruction went to run alone, non-atomically: record that run. */
        uint64_t cs_base;
        v->dbg.restart = true;
        v->dbg.restart_pc = tcg_current_pc(&v->cpu, &cs_base);
    }
    v->dbg.recording = false;
    v->dbg.dr_hits = 0;
    v->dbg.gdb_hit = false;
}

void tcg_debug_watch_access(struct tcg_cpu *cpu, uint64_t vaddr, unsigned size, bool write)
{
    struct accel_vcpu *v = cpu_vcpu(cpu);
    if (!cpu->in_block)
        return; /* interrupt delivery, not an instruction's access */
    uint8_t hits = 0;
    for (unsigned n = 0; n < 4; n++)
        if (dr_is_data(cpu, n) && (write || dr7_rw(cpu->dr[7], n) == DR_RW_ACCESS) &&
            overlaps(vaddr, size, dr_base(cpu, n), dr7_len(cpu->dr[7], n)))
            hits |= (uint8_t)(1u << n);
    const struct accel_watchpoint *hit = NULL;
    for (unsigned i = 0; i < v->dbg.gdb.nr_watchpoints && !hit; i++)
        if (gdb_watch_hits(&v->dbg.gdb.watchpoint[i], vaddr, size, write))
            hit = &v->dbg.gdb.watchpoint[i];
    if (!hits && !hit)
        return;
    if (!v->dbg.recording) {
        /* Leave before the access; the front end keeps guest state untouched before an
         * instruction's last possible fault, so running it again is exact. */
        uint64_t cs_base;
        v->dbg.restart = true;
        v->dbg.restart_pc = tcg_current_pc(cpu, &cs_base);
        tcg_exit_to_loop(cpu);
    }
    v->dbg.dr_hits |= hits;
    if (hit && !v->dbg.gdb_hit) {
        v->dbg.gdb_hit = true;
        v->dbg.gdb_hit_watch = *hit;
        v->dbg.gdb_hit_watch.addr = vaddr > hit->addr ? vaddr : hit->addr;
    }
}

bool tcg_debug_page_watched(struct tcg_cpu *cpu, uint64_t vpage)
{
    struct accel_vcpu *v = cpu_vcpu(cpu);
    for (unsigned n = 0; n < 4; n++)
        if (dr_is_data(cpu, n) && overlaps(vpage, 0x1000, dr_base(cpu, n), dr7_len(cpu->dr[7], n)))
            return true;
    for (unsigned i = 0; i < v->dbg.gdb.nr_watchpoints; i++)
        if (overlaps(vpage, 0x1000, v->dbg.gdb.watchpoint[i].addr, v->dbg.gdb.watchpoint[i].len))
            return true;
    return false;
}
