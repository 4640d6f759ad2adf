/* C helpers behind IR CALL ops (table order = enum x86_helper_id). Each receives env (the
 * struct tcg_cpu) and up to four 64-bit arguments; guest faults leave through
 * tcg_raise_exception(), which needs cpu->rip at the faulting instruction (the translator
 * stores it before every instruction that can fault). */
#include "accel/tcg/x86/helpers.h"

#include "accel/tcg/tcg_internal.h"
#include "accel/tcg/x86/flags.h"
#include "accel/tcg/x86/fpu.h"
#include "accel/tcg/x86/seg.h"
#include "vm/bus.h"
#include "vm/cpu_model.h"
#include "vm/cpuid.h"
#include "vm/timers.h"

#include <string.h>
#include <time.h>

#define CPU(env) ((struct tcg_cpu *)(env))

/* Serialising instructions (CPUID, IRET, WRMSR, MOV to CR, LGDT/LIDT/LLDT/LTR, INVLPG) order
 * memory like MFENCE: other vCPUs see every store before them first. */
static void serialize(void)
{
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

static uint64_t mask_of(unsigned bytes)
{
    return bytes >= 8 ? ~0ULL : (1ULL << (bytes * 8)) - 1;
}

static uint64_t sext(uint64_t v, unsigned bytes)
{
    unsigned shift = 64 - bytes * 8;
    return bytes >= 8 ? v : (uint64_t)((int64_t)(v << shift) >> shift);
}

/* Write the low `bytes` of a GPR with x86 rules (32-bit writes zero-extend). */
static void set_gpr(struct tcg_cpu *cpu, unsigned reg, uint64_t v, unsigned bytes)
{
    if (bytes >= 4)
        cpu->gpr[reg] = bytes == 4 ? (v & 0xffffffffULL) : v;
    else
        cpu->gpr[reg] = (cpu->gpr[reg] & ~mask_of(bytes)) | (v & mask_of(bytes));
}

static void set_flags(struct tcg_cpu *cpu, uint32_t arith)
{
    cpu->cc_op = CC_OP_EFLAGS;
    cpu->cc_src = arith & X86_ARITH_FLAGS;
}

static uint32_t current_flags(const struct tcg_cpu *cpu)
{
    return x86_flags_compute((uint32_t)cpu->cc_op, cpu->cc_dst, cpu->cc_src, cpu->cc_src2);
}

static uint32_t result_flags(uint64_t v, unsigned bytes)
{
    return x86_flags_compute(CC_OP_LOGIC + (bytes == 1   ? 0
                                            : bytes == 2 ? 1
                                            : bytes == 4 ? 2
                                                         : 3),
                             v, 0, 0) &
           (X86_ZF | X86_SF | X86_PF);
}

static bool protected_mode(const struct tcg_cpu *cpu)
{
    return (cpu->hflags & HF_PE) != 0;
}

static unsigned cpl(const struct tcg_cpu *cpu)
{
    return cpu->hflags & HF_CPL_MASK;
}

static unsigned iopl(const struct tcg_cpu *cpu)
{
    return (unsigned)((cpu->eflags >> 12) & 3);
}

static noreturn void gp0(struct tcg_cpu *cpu)
{
    tcg_raise_exception(cpu, X86_EXC_GP, 0, true);
}

/* --- flags -------------------------------------------------------------------------------- */

static uint64_t h_compute_eflags(void *env, uint64_t op, uint64_t dst, uint64_t src, uint64_t src2)
{
    (void)env;
    return x86_flags_compute((uint32_t)op, dst, src, src2);
}

static uint64_t h_compute_cf(void *env, uint64_t op, uint64_t dst, uint64_t src, uint64_t src2)
{
    (void)env;
    return x86_flags_carry((uint32_t)op, dst, src, src2);
}

static uint64_t h_cond(void *env, uint64_t flags, uint64_t cc, uint64_t c, uint64_t d)
{
    (void)env, (void)c, (void)d;
    return (uint64_t)x86_flags_condition((uint32_t)flags, (unsigned)cc);
}

static uint64_t h_read_eflags(void *env, uint64_t a, uint64_t b, uint64_t c, uint64_t d)
{
    (void)a, (void)b, (void)c, (void)d;
    return tcg_read_eflags(CPU(env));
}

static uint64_t h_write_eflags(void *env, uint64_t value, uint64_t bytes, uint64_t c, uint64_t d)
{
    (void)c, (void)d;
    struct tcg_cpu *cpu = CPU(env);
    if (protected_mode(cpu) && (cpu->eflags & X86_VM) && iopl(cpu) < 3)
        gp0(cpu);
    tcg_write_eflags(cpu, value, tcg_eflags_write_mask(cpu, (unsigned)bytes));
    return 0;
}

/* --- exceptions, interrupts, halting -------------------------------------------------------- */

static uint64_t h_raise(void *env, uint64_t vector, uint64_t err, uint64_t has_err, uint64_t d)
{
    (void)d;
    tcg_raise_exception(CPU(env), (int)vector, (uint32_t)err, has_err != 0);
}

static uint64_t h_soft_int(void *env, uint64_t vector, uint64_t next_rip, uint64_t c, uint64_t d)
{
    (void)c, (void)d;
    struct tcg_cpu *cpu = CPU(env);
    cpu->exception_soft = true;
    cpu->exception_next_rip = next_rip;
    tcg_raise_exception(cpu, (int)vector, 0, false);
}

/* ICEBP / INT1: a #DB trap (no gate DPL check, unlike INT n), returning past it. */
static uint64_t h_icebp(void *env, uint64_t next_rip, uint64_t b, uint64_t c, uint64_t d)
{
    (void)b, (void)c, (void)d;
    struct tcg_cpu *cpu = CPU(env);
    cpu->rip = next_rip;
    tcg_raise_exception(cpu, X86_EXC_DB, 0, false);
}

static uint64_t h_hlt(void *env, uint64_t next_rip, uint64_t b, uint64_t c, uint64_t d)
{
    (void)b, (void)c, (void)d;
    struct tcg_cpu *cpu = CPU(env);
    cpu->rip = next_rip;
    cpu->halted = true;
    tcg_exit_to_loop(cpu);
}

static uint64_t h_cli(void *env, uint64_t a, uint64_t b, uint64_t c, uint64_t d)
{
    (void)a, (void)b, (void)c, (void)d;
    struct tcg_cpu *cpu = CPU(env);
    if (protected_mode(cpu) && cpl(cpu) > iopl(cpu))
        gp0(cpu);
    cpu->eflags &= ~(uint64_t)X86_IF;
    return 0;
}

static uint64_t h_sti(void *env, uint64_t a, uint64_t b, uint64_t c, uint64_t d)
{
    (void)a, (void)b, (void)c, (void)d;
    struct tcg_cpu *cpu = CPU(env);
    if (protected_mode(cpu) && cpl(cpu) > iopl(cpu))
        gp0(cpu);
    if (!(cpu->eflags & X86_IF)) {
        cpu->inhibit_irq = true; /* no interrupt before the next instruction */
        tcg_recheck_interrupts(cpu);
    }
    cpu->eflags |= X86_IF;
    return 0;
}

/* --- port I/O ---------------------------------------------------------------------------- */

/* The TSS I/O permission bitmap is not consulted: at CPL > IOPL every port faults. */
static void check_io(struct tcg_cpu *cpu)
{
    if (protected_mode(cpu) && cpl(cpu) > iopl(cpu))
        gp0(cpu);
}

static uint64_t port_in(struct tcg_cpu *cpu, uint16_t port, unsigned bytes)
{
    uint64_t v;
    bus_read(cpu_vcpu(cpu)->vm->pio, port, bytes, &v);
    return v & mask_of(bytes);
}

static void port_out(struct tcg_cpu *cpu, uint16_t port, uint64_t v, unsigned bytes)
{
    bus_write(cpu_vcpu(cpu)->vm->pio, port, bytes, v & mask_of(bytes));
}

static uint64_t h_in(void *env, uint64_t port, uint64_t bytes, uint64_t c, uint64_t d)
{
    (void)c, (void)d;
    check_io(CPU(env));
    return port_in(CPU(env), (uint16_t)port, (unsigned)bytes);
}

static uint64_t h_out(void *env, uint64_t port, uint64_t value, uint64_t bytes, uint64_t d)
{
    (void)d;
    check_io(CPU(env));
    port_out(CPU(env), (uint16_t)port, value, (unsigned)bytes);
    return 0;
}

/* --- string instructions -------------------------------------------------------------------- */

#define STRING_ITERATIONS_PER_CALL 4096 /* then back to the loop: interrupts stay timely */

static uint64_t string_linear(const struct tcg_cpu *cpu, unsigned seg, uint64_t offset)
{
    if (cpu->hflags & HF_CS64)
        return (seg == SEG_FS || seg == SEG_GS) ? offset + cpu->seg[seg].base : offset;
    return (offset + cpu->seg[seg].base) & 0xffffffffULL;
}

static void string_advance(struct tcg_cpu *cpu, unsigned reg, int64_t step, unsigned abytes)
{
    set_gpr(cpu, reg, cpu->gpr[reg] + (uint64_t)step, abytes);
}

/* REP MOVS / REP STOS forward in 64-bit code, a page at a time through host memory: the
 * same faults (before anything of a chunk is written), A/D bits and code invalidation as
 * element by element. Returns false where elements must go one by one (MMIO, an element
 * across pages, a copy onto its own source's tail). Spends *budget elements. */
static bool string_fast(struct tcg_cpu *cpu, unsigned kind, unsigned bytes, unsigned seg,
                        unsigned *budget)
{
    while (cpu->gpr[GPR_RCX] && *budget) {
        uint64_t dst = string_linear(cpu, SEG_ES, cpu->gpr[GPR_RDI]);
        uint64_t src = string_linear(cpu, seg, cpu->gpr[GPR_RSI]);
        uint64_t n = (0x1000 - (dst & 0xfff)) / bytes;
        if (kind == STR_MOVS && (0x1000 - (src & 0xfff)) / bytes < n)
            n = (0x1000 - (src & 0xfff)) / bytes;
        if (n > cpu->gpr[GPR_RCX])
            n = cpu->gpr[GPR_RCX];
        if (n > *budget)
            n = *budget;
        if (n == 0)
            return false;
        size_t len = (size_t)n * bytes;
        const uint8_t *from = NULL;
        if (kind == STR_MOVS && !(from = mmu_ram_ptr(cpu, src, len, false)))
            return false;
        uint8_t *to = mmu_ram_ptr(cpu, dst, len, true);
        if (!to || (from && to > from && to < from + len))
            return false; /* forward element copy replicates; memmove would not */
        if (kind == STR_MOVS) {
            memmove(to, from, len);
            cpu->gpr[GPR_RSI] += len;
        } else if (bytes == 1) {
            memset(to, (int)(cpu->gpr[GPR_RAX] & 0xff), len);
        } else {
            for (size_t i = 0; i < len; i += bytes)
                memcpy(to + i, &cpu->gpr[GPR_RAX], bytes); /* little-endian low bytes */
        }
        cpu->gpr[GPR_RDI] += len;
        cpu->gpr[GPR_RCX] -= n;
        *budget -= (unsigned)n;
    }
    return true;
}

static uint64_t h_string(void *env, uint64_t desc, uint64_t next_rip, uint64_t c, uint64_t d)
{
    (void)c, (void)d;
    struct tcg_cpu *cpu = CPU(env);
    unsigned kind = desc & 0xff, bytes = (desc >> 8) & 0xf, rep = (desc >> 12) & 0xf;
    unsigned abytes = (desc >> 16) & 0xf, seg = (unsigned)(desc >> 24) & 7;
    uint64_t amask = mask_of(abytes);
    int64_t step = (cpu->eflags & X86_DF) ? -(int64_t)bytes : (int64_t)bytes;
    unsigned cc = bytes == 1 ? 0 : bytes == 2 ? 1 : bytes == 4 ? 2 : 3;
    if (kind == STR_INS || kind == STR_OUTS)
        check_io(cpu);
    /* Single-stepping: one iteration per trap, RIP at the instruction while RCX lasts. */
    unsigned budget = cpu->single_step ? 1 : STRING_ITERATIONS_PER_CALL;
    if (!cpu->single_step && rep == REP_REP && (kind == STR_MOVS || kind == STR_STOS) && step > 0 &&
        abytes == 8 && (cpu->hflags & HF_CS64) && string_fast(cpu, kind, bytes, seg, &budget)) {
        if (cpu->gpr[GPR_RCX])
            return 0; /* budget spent: RIP still here, resumes after the loop looks */
        cpu->rip = next_rip;
        return 0;
    }
    for (unsigned n = STRING_ITERATIONS_PER_CALL - budget;; n++) {
        if (rep && (cpu->gpr[GPR_RCX] & amask) == 0)
            break;
        if (n == STRING_ITERATIONS_PER_CALL)
            return 0; /* RIP still at this instruction: it resumes after the loop looks */
        uint64_t src = string_linear(cpu, seg, cpu->gpr[GPR_RSI] & amask);
        uint64_t dst = string_linear(cpu, SEG_ES, cpu->gpr[GPR_RDI] & amask);
        bool compared = false;
        switch (kind) {
        case STR_MOVS:
            mmu_store(cpu, dst, mmu_load(cpu, src, bytes), bytes);
            string_advance(cpu, GPR_RSI, step, abytes);
            string_advance(cpu, GPR_RDI, step, abytes);
            break;
        case STR_STOS:
            mmu_store(cpu, dst, cpu->gpr[GPR_RAX], bytes);
            string_advance(cpu, GPR_RDI, step, abytes);
            break;
        case STR_LODS:
            set_gpr(cpu, GPR_RAX, mmu_load(cpu, src, bytes), bytes);
            string_advance(cpu, GPR_RSI, step, abytes);
            break;
        case STR_CMPS:
        case STR_SCAS: {
            uint64_t a = kind == STR_CMPS ? mmu_load(cpu, src, bytes) : cpu->gpr[GPR_RAX];
            uint64_t b = mmu_load(cpu, dst, bytes);
            cpu->cc_op = CC_OP_SUB + cc;
            cpu->cc_dst = (a - b) & mask_of(bytes);
            cpu->cc_src = b & mask_of(bytes);
            if (kind == STR_CMPS)
                string_advance(cpu, GPR_RSI, step, abytes);
            string_advance(cpu, GPR_RDI, step, abytes);
            compared = true;
            break;
        }
        case STR_INS:
            mmu_store(cpu, dst, port_in(cpu, (uint16_t)cpu->gpr[GPR_RDX], bytes), bytes);
            string_advance(cpu, GPR_RDI, step, abytes);
            break;
        default: /* OUTS */
            port_out(cpu, (uint16_t)cpu->gpr[GPR_RDX], mmu_load(cpu, src, bytes), bytes);
            string_advance(cpu, GPR_RSI, step, abytes);
            break;
        }
        if (!rep)
            break;
        set_gpr(cpu, GPR_RCX, cpu->gpr[GPR_RCX] - 1, abytes);
        if (compared) {
            bool zf = cpu->cc_dst == 0;
            if ((rep == REP_REP && !zf) || (rep == REP_REPNE && zf))
                break;
        }
    }
    cpu->rip = next_rip;
    return 0;
}

/* --- CPUID, TSC, MSRs ----------------------------------------------------------------------- */

static uint64_t h_cpuid(void *env, uint64_t a, uint64_t b, uint64_t c, uint64_t d)
{
    (void)a, (void)b, (void)c, (void)d;
    struct tcg_cpu *cpu = CPU(env);
    serialize();
    uint32_t fn = (uint32_t)cpu->gpr[GPR_RAX], idx = (uint32_t)cpu->gpr[GPR_RCX];
    const struct cpuid_entry *e = cpuid_find(&cpu_vcpu(cpu)->cpuid, fn, idx);
    set_gpr(cpu, GPR_RAX, e ? e->eax : 0, 4);
    set_gpr(cpu, GPR_RBX, e ? e->ebx : 0, 4);
    set_gpr(cpu, GPR_RCX, e ? e->ecx : 0, 4);
    set_gpr(cpu, GPR_RDX, e ? e->edx : 0, 4);
    return 0;
}

uint64_t tcg_read_tsc(const struct tcg_cpu *cpu)
{
    /* A stable TSC at TCG_TSC_HZ derived from the guest clock (stands still while paused). */
    uint64_t ns = tcg_clock_ns(cpu_vcpu((struct tcg_cpu *)cpu)->vm);
    return ns * (TCG_TSC_HZ / 1000000ULL) / 1000ULL + (uint64_t)cpu->tsc_offset;
}

static uint64_t h_rdtsc(void *env, uint64_t with_aux, uint64_t b, uint64_t c, uint64_t d)
{
    (void)b, (void)c, (void)d;
    struct tcg_cpu *cpu = CPU(env);
    if ((cpu->cr4 & (1ULL << 2)) && cpl(cpu) != 0) /* CR4.TSD */
        gp0(cpu);
    uint64_t tsc = tcg_read_tsc(cpu);
    set_gpr(cpu, GPR_RAX, tsc, 4);
    set_gpr(cpu, GPR_RDX, tsc >> 32, 4);
    if (with_aux)
        set_gpr(cpu, GPR_RCX, cpu->tsc_aux, 4);
    return 0;
}

#define MSR_TSC 0x10
#define MSR_APIC_BASE 0x1b
#define MSR_TSC_DEADLINE 0x6e0
#define MSR_BIOS_SIGN_ID 0x8b
#define MSR_MCG_CAP 0x179
#define MSR_ARCH_CAPABILITIES 0x10a
#define MSR_SPEC_CTRL 0x48
#define MSR_PRED_CMD 0x49
#define MSR_MCG_STATUS 0x17a
#define MSR_SYSENTER_CS 0x174
#define MSR_SYSENTER_ESP 0x175
#define MSR_SYSENTER_EIP 0x176
#define MSR_MISC_ENABLE 0x1a0
#define MSR_PAT 0x277
#define MSR_EFER 0xc0000080
#define MSR_STAR 0xc0000081
#define MSR_LSTAR 0xc0000082
#define MSR_CSTAR 0xc0000083
#define MSR_SFMASK 0xc0000084
#define MSR_FS_BASE 0xc0000100
#define MSR_GS_BASE 0xc0000101
#define MSR_KERNEL_GS_BASE 0xc0000102
#define MSR_TSC_AUX 0xc0000103

bool tcg_msr_read(struct tcg_cpu *cpu, uint32_t index, uint64_t *value)
{
    switch (index) {
    case MSR_TSC:
        *value = tcg_read_tsc(cpu);
        return true;
    case MSR_APIC_BASE:
        *value = lapic_get_base(&cpu_vcpu(cpu)->lapic);
        return true;
    case MSR_TSC_DEADLINE:
        *value = lapic_get_tsc_deadline(&cpu_vcpu(cpu)->lapic);
        return true;
    case MSR_SYSENTER_CS:
        *value = cpu->sysenter_cs;
        return true;
    case MSR_SYSENTER_ESP:
        *value = cpu->sysenter_esp;
        return true;
    case MSR_SYSENTER_EIP:
        *value = cpu->sysenter_eip;
        return true;
    case MSR_MISC_ENABLE:
        *value = cpu->misc_enable;
        return true;
    case MSR_BIOS_SIGN_ID:
        *value = 0;
        return true; /* microcode revision 0 */
    case MSR_MCG_CAP:
        *value = 0;
        return true;    /* MCA without banks (CPUID.1:EDX) */
    case MSR_SPEC_CTRL: /* CPUID.7:EDX[26] */
        *value = cpu->spec_ctrl;
        return true;
    case MSR_ARCH_CAPABILITIES: /* CPUID.7:EDX[29]; read-only */
        *value = CPU_MODEL_ARCH_CAPABILITIES;
        return true;
    case MSR_MCG_STATUS:
        *value = cpu->mcg_status;
        return true;
    case MSR_PAT:
        *value = cpu->pat;
        return true;
    case MSR_EFER:
        *value = cpu->efer;
        return true;
    case MSR_STAR:
        *value = cpu->star;
        return true;
    case MSR_LSTAR:
        *value = cpu->lstar;
        return true;
    case MSR_CSTAR:
        *value = cpu->cstar;
        return true;
    case MSR_SFMASK:
        *value = cpu->sfmask;
        return true;
    case MSR_FS_BASE:
        *value = cpu->seg[SEG_FS].base;
        return true;
    case MSR_GS_BASE:
        *value = cpu->seg[SEG_GS].base;
        return true;
    case MSR_KERNEL_GS_BASE:
        *value = cpu->kernel_gs_base;
        return true;
    case MSR_TSC_AUX:
        *value = cpu->tsc_aux;
        return true;
    default:
        return lapic_msr_read(&cpu_vcpu(cpu)->lapic, index, value); /* x2APIC */
    }
}

/* IA32_TSC_DEADLINE: the TSC counts TCG_TSC_HZ from the guest clock, so a TSC value is a
 * point on the LAPIC's clock. A value already passed fires at once; a far one saturates. */
static void write_tsc_deadline(struct tcg_cpu *cpu, uint64_t value)
{
    uint64_t tsc = tcg_read_tsc(cpu), now = tcg_clock_ns(cpu_vcpu(cpu)->vm);
    uint64_t deadline = now;
    if (value > tsc) {
        uint64_t delta = value - tsc;
        uint64_t ns =
            delta / TCG_TSC_HZ * 1000000000ULL + delta % TCG_TSC_HZ * 1000000000ULL / TCG_TSC_HZ;
        deadline = ns > UINT64_MAX - now ? UINT64_MAX : now + ns;
    }
    lapic_set_tsc_deadline(&cpu_vcpu(cpu)->lapic, value, deadline);
}

static bool canonical(uint64_t v)
{
    return (uint64_t)((int64_t)(v << 16) >> 16) == v;
}

/* Every PAT entry must name a memory type: 0 (UC), 1 (WC), 4 (WT), 5 (WP), 6 (WB), 7 (UC-). */
static bool pat_valid(uint64_t value)
{
    for (unsigned i = 0; i < 8; i++) {
        unsigned type = (unsigned)(value >> (i * 8)) & 0xff;
        if (type == 2 || type == 3 || type > 7)
            return false;
    }
    return true;
}

bool tcg_msr_write(struct tcg_cpu *cpu, uint32_t index, uint64_t value)
{
    switch (index) {
    case MSR_TSC:
        cpu->tsc_offset = (int64_t)(value - (tcg_read_tsc(cpu) - (uint64_t)cpu->tsc_offset));
        return true;
    case MSR_APIC_BASE: {
        struct lapic *l = &cpu_vcpu(cpu)->lapic;
        uint64_t old = lapic_get_base(l);
        if (!lapic_set_base(l, value))
            return false;
        if (old != value)
            tlb_flush(cpu); /* the register page moved, appeared or went */
        return true;
    }
    case MSR_TSC_DEADLINE:
        write_tsc_deadline(cpu, value);
        return true;
    case MSR_SYSENTER_CS:
        cpu->sysenter_cs = value & 0xffff;
        return true;
    case MSR_SYSENTER_ESP:
        cpu->sysenter_esp = value;
        return true;
    case MSR_SYSENTER_EIP:
        cpu->sysenter_eip = value;
        return true;
    case MSR_MISC_ENABLE:
        cpu->misc_enable = value;
        return true;
    case MSR_BIOS_SIGN_ID:
        return true;    /* the "clear, then CPUID" sequence: nothing to load */
    case MSR_SPEC_CTRL: /* IBRS, STIBP, SSBD: nothing to restrict in a software CPU */
        if (value & ~7ULL)
            return false;
        cpu->spec_ctrl = value;
        return true;
    case MSR_PRED_CMD: /* IBPB (write-only): no predictor state to drop */
        return (value & ~1ULL) == 0;
    case MSR_MCG_STATUS:
        if (value & ~0xfULL)
            return false;
        cpu->mcg_status = value;
        return true;
    case MSR_PAT:
        if (!pat_valid(value))
            return false;
        cpu->pat = value;
        return true;
    case MSR_EFER: {
        uint64_t allowed = X86_EFER_SCE | X86_EFER_LME | X86_EFER_NXE;
        if (value & ~(allowed | X86_EFER_LMA))
            return false;
        /* LMA is read-only: it follows LME when paging is on. LME may not change then. */
        if ((cpu->cr0 & X86_CR0_PG) && ((value ^ cpu->efer) & X86_EFER_LME))
            return false;
        cpu->efer = (value & allowed) | (cpu->efer & X86_EFER_LMA);
        tlb_flush(cpu);
        tcg_update_hflags(cpu);
        return true;
    }
    case MSR_STAR:
        cpu->star = value;
        return true;
    case MSR_LSTAR:
    case MSR_CSTAR:
    case MSR_FS_BASE:
    case MSR_GS_BASE:
    case MSR_KERNEL_GS_BASE:
        if (!canonical(value))
            return false;
        if (index == MSR_LSTAR)
            cpu->lstar = value;
        else if (index == MSR_CSTAR)
            cpu->cstar = value;
        else if (index == MSR_FS_BASE)
            tcg_set_seg(cpu, SEG_FS, cpu->seg[SEG_FS].selector, value, cpu->seg[SEG_FS].limit,
                        cpu->seg[SEG_FS].attr);
        else if (index == MSR_GS_BASE)
            tcg_set_seg(cpu, SEG_GS, cpu->seg[SEG_GS].selector, value, cpu->seg[SEG_GS].limit,
                        cpu->seg[SEG_GS].attr);
        else
            cpu->kernel_gs_base = value;
        return true;
    case MSR_SFMASK:
        cpu->sfmask = value & 0xffffffffULL;
        return true;
    case MSR_TSC_AUX:
        cpu->tsc_aux = value & 0xffffffffULL;
        return true;
    default: /* x2APIC: EOI and TPR writes may unmask a pending interrupt */
        tcg_recheck_interrupts(cpu);
        return lapic_msr_write(&cpu_vcpu(cpu)->lapic, index, value);
    }
}

static uint64_t h_rdmsr(void *env, uint64_t a, uint64_t b, uint64_t c, uint64_t d)
{
    (void)a, (void)b, (void)c, (void)d;
    struct tcg_cpu *cpu = CPU(env);
    uint64_t v;
    if (cpl(cpu) != 0 || !tcg_msr_read(cpu, (uint32_t)cpu->gpr[GPR_RCX], &v))
        gp0(cpu);
    set_gpr(cpu, GPR_RAX, v, 4);
    set_gpr(cpu, GPR_RDX, v >> 32, 4);
    return 0;
}

static uint64_t h_wrmsr(void *env, uint64_t a, uint64_t b, uint64_t c, uint64_t d)
{
    (void)a, (void)b, (void)c, (void)d;
    struct tcg_cpu *cpu = CPU(env);
    uint64_t v = (cpu->gpr[GPR_RAX] & 0xffffffffULL) | (cpu->gpr[GPR_RDX] << 32);
    serialize();
    if (cpl(cpu) != 0 || !tcg_msr_write(cpu, (uint32_t)cpu->gpr[GPR_RCX], v))
        gp0(cpu);
    return 0;
}

/* --- multiply and divide -------------------------------------------------------------------- */

static uint64_t h_mul(void *env, uint64_t value, uint64_t bytes_arg, uint64_t is_signed, uint64_t d)
{
    (void)d;
    struct tcg_cpu *cpu = CPU(env);
    unsigned bytes = (unsigned)bytes_arg;
    unsigned cc = bytes == 1 ? 0 : bytes == 2 ? 1 : bytes == 4 ? 2 : 3;
    uint64_t a = cpu->gpr[GPR_RAX] & mask_of(bytes), b = value & mask_of(bytes);
    uint64_t lo, hi;
    bool overflow;
    if (bytes == 8) {
        if (is_signed) {
            __int128 p = (__int128)(int64_t)a * (int64_t)b;
            lo = (uint64_t)p;
            hi = (uint64_t)(p >> 64);
            overflow = (int64_t)hi != ((int64_t)lo >> 63);
        } else {
            unsigned __int128 p = (unsigned __int128)a * b;
            lo = (uint64_t)p;
            hi = (uint64_t)(p >> 64);
            overflow = hi != 0;
        }
    } else {
        uint64_t p =
            is_signed ? (uint64_t)((int64_t)sext(a, bytes) * (int64_t)sext(b, bytes)) : a * b;
        lo = p & mask_of(bytes);
        hi = (p >> (bytes * 8)) & mask_of(bytes);
        overflow = is_signed ? sext(p, bytes * 2) != sext(lo, bytes) : hi != 0;
    }
    if (bytes == 1) {
        set_gpr(cpu, GPR_RAX, lo | (hi << 8), 2);
    } else {
        set_gpr(cpu, GPR_RAX, lo, bytes);
        set_gpr(cpu, GPR_RDX, hi, bytes);
    }
    cpu->cc_op = CC_OP_MUL + cc;
    cpu->cc_dst = lo;
    cpu->cc_src = overflow;
    return 0;
}

static uint64_t h_div(void *env, uint64_t value, uint64_t bytes_arg, uint64_t is_signed, uint64_t d)
{
    (void)d;
    struct tcg_cpu *cpu = CPU(env);
    unsigned bytes = (unsigned)bytes_arg;
    uint64_t divisor = value & mask_of(bytes);
    if (divisor == 0)
        tcg_raise_exception(cpu, X86_EXC_DE, 0, false);
    uint64_t lo = bytes == 1 ? cpu->gpr[GPR_RAX] & 0xffff : cpu->gpr[GPR_RAX] & mask_of(bytes);
    uint64_t hi = bytes == 1 ? 0 : cpu->gpr[GPR_RDX] & mask_of(bytes);
    uint64_t q, r;
    if (is_signed) {
        __int128 dividend;
        if (bytes == 1)
            dividend = (int16_t)lo;
        else if (bytes == 8)
            dividend = (__int128)(((unsigned __int128)hi << 64) | lo);
        else
            dividend = (int64_t)sext(lo | (hi << (bytes * 8)), bytes * 2);
        __int128 dv = (int64_t)sext(divisor, bytes);
        __int128 qq = dividend / dv, rr = dividend % dv;
        __int128 qmax = (__int128)((1ULL << (bytes * 8 - 1)) - 1);
        if (bytes == 8)
            qmax = INT64_MAX;
        if (qq > qmax || qq < -qmax - 1)
            tcg_raise_exception(cpu, X86_EXC_DE, 0, false);
        q = (uint64_t)qq;
        r = (uint64_t)rr;
    } else {
        unsigned __int128 dividend =
            bytes == 8 ? ((unsigned __int128)hi << 64) | lo
                       : (unsigned __int128)(lo | (bytes == 1 ? 0 : hi << (bytes * 8)));
        unsigned __int128 qq = dividend / divisor, rr = dividend % divisor;
        if (qq > mask_of(bytes))
            tcg_raise_exception(cpu, X86_EXC_DE, 0, false);
        q = (uint64_t)qq;
        r = (uint64_t)rr;
    }
    if (bytes == 1) {
        set_gpr(cpu, GPR_RAX, (q & 0xff) | ((r & 0xff) << 8), 2);
    } else {
        set_gpr(cpu, GPR_RAX, q, bytes);
        set_gpr(cpu, GPR_RDX, r, bytes);
    }
    /* Flags are undefined after DIV/IDIV; quokka leaves them unchanged. */
    return 0;
}

/* --- rotates and double shifts -------------------------------------------------------------- */

static uint64_t h_shift(void *env, uint64_t value, uint64_t count, uint64_t kind_size,
                        uint64_t extra)
{
    struct tcg_cpu *cpu = CPU(env);
    unsigned kind = kind_size & 0xff, bytes = (unsigned)(kind_size >> 8) & 0xf;
    unsigned bits = bytes * 8;
    uint64_t mask = mask_of(bytes), msb = 1ULL << (bits - 1);
    unsigned n = (unsigned)(count & (bits == 64 ? 63 : 31));
    value &= mask;
    if (n == 0)
        return value; /* no flag changes at all */
    uint32_t f = current_flags(cpu);
    uint64_t r;
    unsigned cf, of;
    switch (kind) {
    case SHIFT_ROL: {
        unsigned k = n % bits;
        r = k ? ((value << k) | (value >> (bits - k))) & mask : value;
        cf = r & 1;
        of = (unsigned)!!(r & msb) ^ cf;
        f = (f & ~(X86_CF | X86_OF)) | cf | (of ? X86_OF : 0);
        break;
    }
    case SHIFT_ROR: {
        unsigned k = n % bits;
        r = k ? ((value >> k) | (value << (bits - k))) & mask : value;
        cf = !!(r & msb);
        of = (unsigned)(!!(r & msb) ^ !!(r & (msb >> 1)));
        f = (f & ~(X86_CF | X86_OF)) | cf | (of ? X86_OF : 0);
        break;
    }
    case SHIFT_RCL:
    case SHIFT_RCR: {
        unsigned k = n % (bits + 1);
        unsigned carry = f & X86_CF;
        of = 0;
        r = value;
        if (kind == SHIFT_RCR)
            of = (unsigned)(!!(value & msb) ^ carry); /* defined for count 1, from the input */
        for (unsigned i = 0; i < k; i++) {            /* k <= 64: bounded */
            unsigned out;
            if (kind == SHIFT_RCL) {
                out = !!(r & msb);
                r = ((r << 1) | carry) & mask;
            } else {
                out = r & 1;
                r = (r >> 1) | (carry ? msb : 0);
            }
            carry = out;
        }
        if (kind == SHIFT_RCL)
            of = (unsigned)!!(r & msb) ^ carry;
        if (k == 0)
            return value;
        f = (f & ~(X86_CF | X86_OF)) | carry | (of ? X86_OF : 0);
        break;
    }
    default: { /* SHLD / SHRD: value is the destination, extra the source of new bits */
        uint64_t src = extra & mask;
        if (bits == 16 && n > 16) {
            /* Undefined; use the 32-bit concatenation like common hardware. */
            uint64_t wide = kind == SHIFT_SHLD ? (value << 16) | src : (src << 16) | value;
            uint64_t wr = kind == SHIFT_SHLD ? (wide << n) >> 16 : wide >> n;
            r = wr & mask;
            cf = kind == SHIFT_SHLD ? (unsigned)((wide >> (32 - n)) & 1)
                                    : (unsigned)((wide >> (n - 1)) & 1);
        } else if (kind == SHIFT_SHLD) {
            /* n == bits (16-bit, count 16) is defined: the result is the source. */
            r = ((value << n) | (n <= bits ? src >> (bits - n) : 0)) & mask;
            cf = (unsigned)((value >> (bits - n)) & 1);
        } else {
            r = ((value >> n) | (n <= bits ? src << (bits - n) : 0)) & mask;
            cf = (unsigned)((value >> (n - 1)) & 1);
        }
        of = (unsigned)(!!(r & msb) ^ !!(value & msb));
        f = result_flags(r, bytes) | cf | (of ? X86_OF : 0);
        break;
    }
    }
    set_flags(cpu, f);
    return r;
}

/* --- bit scans and bit tests ------------------------------------------------------------------ */

static uint64_t h_bitscan(void *env, uint64_t src, uint64_t old, uint64_t kind_size, uint64_t d)
{
    (void)d;
    struct tcg_cpu *cpu = CPU(env);
    unsigned kind = kind_size & 0xff, bytes = (unsigned)(kind_size >> 8) & 0xf;
    unsigned bits = bytes * 8;
    uint64_t v = src & mask_of(bytes);
    uint64_t r;
    uint32_t f = 0;
    switch (kind) {
    case SCAN_BSF:
    case SCAN_BSR:
        /* Zero source: ZF=1 and the destination keeps its value (what CPUs do). Other flags
         * are undefined: quokka clears them. */
        if (!v) {
            set_flags(cpu, X86_ZF);
            return old;
        }
        r = kind == SCAN_BSF ? (uint64_t)__builtin_ctzll(v) : (uint64_t)(63 - __builtin_clzll(v));
        set_flags(cpu, 0);
        return r;
    case SCAN_TZCNT:
        r = v ? (uint64_t)__builtin_ctzll(v) : bits;
        f = (v ? 0 : X86_CF) | (r ? 0 : X86_ZF);
        break;
    case SCAN_LZCNT:
        r = v ? (uint64_t)(__builtin_clzll(v) - (64 - bits)) : bits;
        f = (v ? 0 : X86_CF) | (r ? 0 : X86_ZF);
        break;
    default: /* POPCNT */
        r = (uint64_t)__builtin_popcountll(v);
        f = v ? 0 : X86_ZF;
        break;
    }
    set_flags(cpu, f);
    return r;
}

static uint64_t h_bittest(void *env, uint64_t value, uint64_t bit, uint64_t kind_size, uint64_t d)
{
    (void)d;
    struct tcg_cpu *cpu = CPU(env);
    unsigned kind = kind_size & 0xff, bytes = (unsigned)(kind_size >> 8) & 0xf;
    unsigned pos = (unsigned)(bit & (bytes * 8 - 1));
    uint64_t m = 1ULL << pos;
    unsigned cf = (value & m) ? 1 : 0;
    /* CF = the bit; ZF unchanged; OF SF AF PF undefined (kept). */
    set_flags(cpu, (current_flags(cpu) & ~X86_CF) | cf);
    switch (kind) {
    case BITTEST_BTS:
        return value | m;
    case BITTEST_BTR:
        return value & ~m;
    case BITTEST_BTC:
        return value ^ m;
    default:
        return value;
    }
}

/* --- segments and far transfers ------------------------------------------------------------- */

static uint64_t h_load_seg(void *env, uint64_t seg, uint64_t selector, uint64_t c, uint64_t d)
{
    (void)c, (void)d;
    struct tcg_cpu *cpu = CPU(env);
    if (seg == SEG_CS || seg >= SEG_LDTR)
        tcg_raise_exception(cpu, X86_EXC_UD, 0, false);
    tcg_load_seg(cpu, (unsigned)seg, (uint16_t)selector);
    if (seg == SEG_SS) {
        cpu->inhibit_irq = true; /* MOV SS / POP SS shadow, for single-step traps too */
        cpu->inhibit_db = true;
    }
    return 0;
}

static uint64_t h_far_jump(void *env, uint64_t sel, uint64_t off, uint64_t next_rip, uint64_t f)
{
    tcg_far_jump(CPU(env), (uint16_t)sel, off, next_rip, f & 1, (unsigned)(f >> 8));
    return 0;
}

static uint64_t h_far_ret(void *env, uint64_t opsize, uint64_t extra, uint64_t c, uint64_t d)
{
    (void)c, (void)d;
    tcg_far_ret(CPU(env), (unsigned)opsize, extra);
    return 0;
}

static uint64_t h_iret(void *env, uint64_t opsize, uint64_t b, uint64_t c, uint64_t d)
{
    (void)b, (void)c, (void)d;
    serialize();
    tcg_iret(CPU(env), (unsigned)opsize);
    return 0;
}

static uint64_t h_lgdt_lidt(void *env, uint64_t addr, uint64_t which_size, uint64_t c, uint64_t d)
{
    (void)c, (void)d;
    struct tcg_cpu *cpu = CPU(env);
    serialize();
    unsigned opbytes = (unsigned)(which_size >> 8);
    uint16_t limit = (uint16_t)mmu_load(cpu, addr, 2);
    uint64_t base;
    if (cpu->hflags & HF_CS64) {
        base = mmu_load(cpu, addr + 2, 8);
        if (!canonical(base))
            gp0(cpu); /* with 4-level paging, bits 63:47 must be equal */
    } else
        base = mmu_load(cpu, addr + 2, 4) & (opbytes == 2 ? 0xffffffULL : 0xffffffffULL);
    struct vcpu_dtable *t = (which_size & 0xff) ? &cpu->idt : &cpu->gdt;
    t->base = base;
    t->limit = limit;
    return 0;
}

static uint64_t h_sgdt_sidt(void *env, uint64_t addr, uint64_t which_size, uint64_t c, uint64_t d)
{
    (void)c, (void)d;
    struct tcg_cpu *cpu = CPU(env);
    const struct vcpu_dtable *t = (which_size & 0xff) ? &cpu->idt : &cpu->gdt;
    mmu_store(cpu, addr, t->limit, 2);
    if (cpu->hflags & HF_CS64)
        mmu_store(cpu, addr + 2, t->base, 8);
    else
        mmu_store(cpu, addr + 2, t->base & 0xffffffffULL, 4);
    return 0;
}

static uint64_t h_ltr_lldt(void *env, uint64_t sel, uint64_t is_tr, uint64_t c, uint64_t d)
{
    (void)c, (void)d;
    struct tcg_cpu *cpu = CPU(env);
    serialize();
    if (!protected_mode(cpu))
        tcg_raise_exception(cpu, X86_EXC_UD, 0, false);
    if (cpl(cpu) != 0)
        gp0(cpu);
    tcg_load_system_seg(cpu, is_tr != 0, (uint16_t)sel);
    return 0;
}

static uint64_t h_str_sldt(void *env, uint64_t is_tr, uint64_t b, uint64_t c, uint64_t d)
{
    (void)b, (void)c, (void)d;
    struct tcg_cpu *cpu = CPU(env);
    if (!protected_mode(cpu))
        tcg_raise_exception(cpu, X86_EXC_UD, 0, false);
    return cpu->seg[is_tr ? SEG_TR : SEG_LDTR].selector;
}

static uint64_t h_verr_verw(void *env, uint64_t sel, uint64_t write, uint64_t c, uint64_t d)
{
    (void)c, (void)d;
    struct tcg_cpu *cpu = CPU(env);
    if (!protected_mode(cpu) || (cpu->eflags & X86_VM))
        tcg_raise_exception(cpu, X86_EXC_UD, 0, false);
    tcg_verify_seg(cpu, (uint16_t)sel, write != 0);
    return 0;
}

/* --- control registers ---------------------------------------------------------------------- */

#define CR4_KNOWN                                                                                  \
    (0x1ULL | 0x2ULL | 0x4ULL | 0x8ULL | 0x10ULL | 0x20ULL | 0x40ULL | 0x80ULL | 0x100ULL |        \
     0x200ULL | 0x400ULL)

void tcg_write_cr0(struct tcg_cpu *cpu, uint64_t value)
{
    value |= X86_CR0_ET;
    if ((value >> 32) || ((value & X86_CR0_PG) && !(value & X86_CR0_PE)))
        gp0(cpu);
    bool paging_on = (value & X86_CR0_PG) && !(cpu->cr0 & X86_CR0_PG);
    bool paging_off = !(value & X86_CR0_PG) && (cpu->cr0 & X86_CR0_PG);
    if (paging_on && (cpu->efer & X86_EFER_LME)) {
        if (!(cpu->cr4 & X86_CR4_PAE))
            gp0(cpu);
        cpu->efer |= X86_EFER_LMA;
    }
    if (paging_off && (cpu->efer & X86_EFER_LMA)) {
        if (cpu->hflags & HF_CS64)
            gp0(cpu); /* must leave 64-bit code first */
        cpu->efer &= ~X86_EFER_LMA;
    }
    if ((value ^ cpu->cr0) & (X86_CR0_PG | X86_CR0_WP | X86_CR0_PE))
        tlb_flush(cpu);
    cpu->cr0 = value;
    tcg_update_hflags(cpu);
}

static uint64_t h_mov_to_cr(void *env, uint64_t cr, uint64_t value, uint64_t c, uint64_t d)
{
    (void)c, (void)d;
    struct tcg_cpu *cpu = CPU(env);
    serialize();
    switch (cr) {
    case 0:
        tcg_write_cr0(cpu, (cpu->hflags & HF_CS64) ? value : (value & 0xffffffffULL));
        break;
    case 0x100: /* CLTS */
        cpu->cr0 &= ~(1ULL << 3);
        tcg_update_hflags(cpu); /* HF_SSE */
        break;
    case 2:
        cpu->cr2 = value;
        break;
    case 3:
        cpu->cr3 = (cpu->hflags & HF_LMA) ? value : (value & 0xffffffffULL);
        tlb_flush_nonglobal(cpu); /* global pages stay, as on hardware with CR4.PGE */
        break;
    case 4:
        if ((value & ~CR4_KNOWN) || ((cpu->efer & X86_EFER_LMA) && !(value & X86_CR4_PAE)))
            gp0(cpu);
        if ((value ^ cpu->cr4) & (X86_CR4_PAE | X86_CR4_PGE | 0x10ULL))
            tlb_flush(cpu);
        cpu->cr4 = value;
        tcg_update_hflags(cpu); /* HF_SSE */
        break;
    case 8:
        if (value & ~0xfULL) /* reserved bits of CR8 */
            gp0(cpu);
        lapic_set_cr8(&cpu_vcpu(cpu)->lapic, value);
        tcg_recheck_interrupts(cpu);
        break;
    default:
        tcg_raise_exception(cpu, X86_EXC_UD, 0, false);
    }
    return 0;
}

static uint64_t h_mov_from_cr(void *env, uint64_t cr, uint64_t b, uint64_t c, uint64_t d)
{
    (void)b, (void)c, (void)d;
    struct tcg_cpu *cpu = CPU(env);
    switch (cr) {
    case 0:
        return cpu->cr0;
    case 2:
        return cpu->cr2;
    case 3:
        return cpu->cr3;
    case 4:
        return cpu->cr4;
    case 8:
        return lapic_get_cr8(&cpu_vcpu(cpu)->lapic);
    default:
        tcg_raise_exception(cpu, X86_EXC_UD, 0, false);
    }
}

static uint64_t h_lmsw(void *env, uint64_t value, uint64_t b, uint64_t c, uint64_t d)
{
    (void)b, (void)c, (void)d;
    struct tcg_cpu *cpu = CPU(env);
    /* LMSW sets PE (never clears it) and writes MP, EM, TS. */
    uint64_t v = (cpu->cr0 & ~0xeULL) | (value & 0xf) | (cpu->cr0 & X86_CR0_PE);
    tcg_write_cr0(cpu, v);
    return 0;
}

static uint64_t h_invlpg(void *env, uint64_t addr, uint64_t b, uint64_t c, uint64_t d)
{
    (void)b, (void)c, (void)d;
    serialize();
    tlb_flush_page(CPU(env), addr);
    return 0;
}

/* --- misc ----------------------------------------------------------------------------------- */

/* CMPXCHG8B / CMPXCHG16B: (linear addr, is 16b | parallel << 1). With other vCPUs running and
 * LOCK, one host atomic (atomic.c); else load, compare and store (the destination is always
 * written, as the processor does). */
static uint64_t h_cmpxchg8b(void *env, uint64_t addr, uint64_t flags, uint64_t c, uint64_t d)
{
    (void)c, (void)d;
    struct tcg_cpu *cpu = CPU(env);
    bool is16 = flags & 1;
    uint32_t f = current_flags(cpu) & ~X86_ZF;
    uint64_t old[2], repl[2];
    if (is16) {
        if (addr & 15)
            gp0(cpu);
        old[0] = cpu->gpr[GPR_RAX], old[1] = cpu->gpr[GPR_RDX];
        repl[0] = cpu->gpr[GPR_RBX], repl[1] = cpu->gpr[GPR_RCX];
    } else {
        old[0] = (cpu->gpr[GPR_RAX] & 0xffffffffULL) | (cpu->gpr[GPR_RDX] << 32), old[1] = 0;
        repl[0] = (cpu->gpr[GPR_RBX] & 0xffffffffULL) | (cpu->gpr[GPR_RCX] << 32), repl[1] = 0;
    }
    bool same;
    if (flags & 2) {
        same = x86_atomic_cmpxchg_wide(cpu, addr, is16 ? 16 : 8, old, repl);
    } else {
        uint64_t m[2] = {mmu_load(cpu, addr, 8), is16 ? mmu_load(cpu, addr + 8, 8) : 0};
        same = m[0] == old[0] && m[1] == old[1];
        const uint64_t *w = same ? repl : m;
        mmu_store(cpu, addr, w[0], 8);
        if (is16)
            mmu_store(cpu, addr + 8, w[1], 8);
        old[0] = m[0], old[1] = m[1];
    }
    if (same) {
        f |= X86_ZF;
    } else if (is16) {
        cpu->gpr[GPR_RAX] = old[0];
        cpu->gpr[GPR_RDX] = old[1];
    } else {
        set_gpr(cpu, GPR_RAX, old[0], 4);
        set_gpr(cpu, GPR_RDX, old[0] >> 32, 4);
    }
    set_flags(cpu, f);
    return 0;
}

static uint64_t stack_mask(const struct tcg_cpu *cpu)
{
    return (cpu->hflags & HF_CS64) ? ~0ULL : (cpu->hflags & HF_SS32) ? 0xffffffffULL : 0xffffULL;
}

static uint64_t stack_linear(const struct tcg_cpu *cpu, uint64_t sp)
{
    if (cpu->hflags & HF_CS64)
        return sp;
    return (sp + cpu->seg[SEG_SS].base) & 0xffffffffULL;
}

static void set_sp_masked(struct tcg_cpu *cpu, uint64_t sp)
{
    uint64_t m = stack_mask(cpu);
    cpu->gpr[GPR_RSP] = m == 0xffff ? (cpu->gpr[GPR_RSP] & ~0xffffULL) | (sp & 0xffff) : sp & m;
}

static uint64_t h_enter(void *env, uint64_t frame, uint64_t level, uint64_t bytes_arg, uint64_t d)
{
    (void)d;
    struct tcg_cpu *cpu = CPU(env);
    unsigned bytes = (unsigned)bytes_arg;
    uint64_t m = stack_mask(cpu);
    uint64_t sp = cpu->gpr[GPR_RSP] & m, bp = cpu->gpr[GPR_RBP];
    /* Do every memory access first so a fault leaves registers unchanged. */
    sp = (sp - bytes) & m;
    mmu_store(cpu, stack_linear(cpu, sp), bp, bytes);
    uint64_t frame_ptr = sp;
    for (uint64_t i = 1; i < level; i++) { /* level <= 31 */
        uint64_t src = (bp - i * bytes) & m;
        uint64_t v = mmu_load(cpu, stack_linear(cpu, src), bytes);
        sp = (sp - bytes) & m;
        mmu_store(cpu, stack_linear(cpu, sp), v, bytes);
    }
    if (level) {
        sp = (sp - bytes) & m;
        mmu_store(cpu, stack_linear(cpu, sp), frame_ptr, bytes);
    }
    sp = (sp - frame) & m;
    set_gpr(cpu, GPR_RBP, frame_ptr, bytes);
    set_sp_masked(cpu, sp);
    return 0;
}

static uint64_t h_pusha(void *env, uint64_t bytes_arg, uint64_t b, uint64_t c, uint64_t d)
{
    (void)b, (void)c, (void)d;
    struct tcg_cpu *cpu = CPU(env);
    unsigned bytes = (unsigned)bytes_arg;
    uint64_t m = stack_mask(cpu), sp = cpu->gpr[GPR_RSP] & m, orig = cpu->gpr[GPR_RSP];
    for (unsigned r = 0; r < 8; r++) {
        sp = (sp - bytes) & m;
        mmu_store(cpu, stack_linear(cpu, sp), r == GPR_RSP ? orig : cpu->gpr[r], bytes);
    }
    set_sp_masked(cpu, sp);
    return 0;
}

static uint64_t h_popa(void *env, uint64_t bytes_arg, uint64_t b, uint64_t c, uint64_t d)
{
    (void)b, (void)c, (void)d;
    struct tcg_cpu *cpu = CPU(env);
    unsigned bytes = (unsigned)bytes_arg;
    uint64_t m = stack_mask(cpu), sp = cpu->gpr[GPR_RSP] & m;
    uint64_t vals[8];
    for (int r = 7; r >= 0; r--) {
        vals[r] = mmu_load(cpu, stack_linear(cpu, sp), bytes);
        sp = (sp + bytes) & m;
    }
    for (unsigned r = 0; r < 8; r++)
        if (r != GPR_RSP)
            set_gpr(cpu, r, vals[r], bytes);
    set_sp_masked(cpu, sp);
    return 0;
}

static uint64_t h_sysenter_family(void *env, uint64_t kind_size, uint64_t next_rip, uint64_t c,
                                  uint64_t d)
{
    (void)c, (void)d;
    struct tcg_cpu *cpu = CPU(env);
    unsigned kind = kind_size & 0xff, bytes = (unsigned)(kind_size >> 8);
    const uint16_t flat_code64 = 0xa09b, flat_code32 = 0xc09b, flat_data = 0xc093;
    switch (kind) {
    case SYS_SYSCALL: {
        if (!(cpu->efer & X86_EFER_SCE) || !(cpu->hflags & HF_LMA))
            tcg_raise_exception(cpu, X86_EXC_UD, 0, false);
        uint16_t sel = (uint16_t)(cpu->star >> 32);
        cpu->gpr[GPR_RCX] = next_rip;
        cpu->gpr[GPR_R11] = tcg_read_eflags(cpu);
        tcg_write_eflags(cpu, tcg_read_eflags(cpu) & ~cpu->sfmask, ~0ULL);
        cpu->eflags &= ~(uint64_t)X86_RF;
        cpu->hflags &= ~HF_CPL_MASK;
        tcg_set_seg(cpu, SEG_CS, sel & 0xfffc, 0, 0xffffffff, flat_code64);
        tcg_set_seg(cpu, SEG_SS, (uint16_t)((sel + 8) & 0xfffc), 0, 0xffffffff, flat_data);
        cpu->rip = (cpu->hflags & HF_CS64) ? cpu->lstar : cpu->cstar;
        return 0;
    }
    case SYS_SYSRET: {
        if (!(cpu->efer & X86_EFER_SCE) || !(cpu->hflags & HF_LMA))
            tcg_raise_exception(cpu, X86_EXC_UD, 0, false);
        if (cpl(cpu) != 0)
            gp0(cpu);
        uint16_t sel = (uint16_t)(cpu->star >> 48);
        bool to64 = bytes == 8;
        if (to64 && !canonical(cpu->gpr[GPR_RCX]))
            gp0(cpu);
        tcg_write_eflags(cpu, cpu->gpr[GPR_R11], ~0ULL);
        cpu->eflags &= ~(uint64_t)(X86_RF | X86_VM);
        cpu->hflags |= 3;
        tcg_set_seg(cpu, SEG_CS, (uint16_t)((to64 ? sel + 16 : sel) | 3), 0, 0xffffffff,
                    (uint16_t)((to64 ? flat_code64 : flat_code32) | (3u << 5)));
        tcg_set_seg(cpu, SEG_SS, (uint16_t)((sel + 8) | 3), 0, 0xffffffff,
                    (uint16_t)(flat_data | (3u << 5)));
        cpu->rip = to64 ? cpu->gpr[GPR_RCX] : (cpu->gpr[GPR_RCX] & 0xffffffffULL);
        return 0;
    }
    case SYS_SWAPGS: {
        if (!(cpu->hflags & HF_CS64))
            tcg_raise_exception(cpu, X86_EXC_UD, 0, false);
        if (cpl(cpu) != 0)
            gp0(cpu);
        uint64_t gs = cpu->seg[SEG_GS].base;
        tcg_set_seg(cpu, SEG_GS, cpu->seg[SEG_GS].selector, cpu->kernel_gs_base,
                    cpu->seg[SEG_GS].limit, cpu->seg[SEG_GS].attr);
        cpu->kernel_gs_base = gs;
        return 0;
    }
    default:
        /* SYSENTER/SYSEXIT are not advertised in CPUID. */
        tcg_raise_exception(cpu, X86_EXC_UD, 0, false);
    }
}

/* Debug registers; breakpoints in DR0-DR3 armed by DR7 work as debug.h describes (not I/O
 * breakpoints, R/W=10, nor DR7.GD). DR4/DR5 alias DR6/DR7 unless CR4.DE. */
static uint64_t h_mov_dr(void *env, uint64_t dr, uint64_t value, uint64_t is_write, uint64_t d)
{
    (void)d;
    struct tcg_cpu *cpu = CPU(env);
    if (cpl(cpu) != 0)
        gp0(cpu);
    if (dr == 4 || dr == 5) {
        if (cpu->cr4 & (1ULL << 3))
            tcg_raise_exception(cpu, X86_EXC_UD, 0, false);
        dr += 2;
    }
    if (dr > 7)
        tcg_raise_exception(cpu, X86_EXC_UD, 0, false);
    if (!is_write)
        return cpu->dr[dr];
    if ((cpu->hflags & HF_LMA) && dr >= 6 && (value >> 32))
        gp0(cpu);
    if (dr == 6)
        value = (value & 0xe00fULL) | 0xffff0ff0ULL;
    else if (dr == 7)
        value = (value & ~0xd000ULL) | 0x400;
    cpu->dr[dr] = value;
    if (dr != 6)
        tcg_debug_dr_changed(cpu);
    return 0;
}

const struct ir_helper x86_helper_table[X86_NR_HELPERS] = {
#define X86_HELPER_ENTRY(name, flags) [HELPER_##name] = {h_##name, #name, flags},
    X86_HELPERS(X86_HELPER_ENTRY)
#undef X86_HELPER_ENTRY
};
