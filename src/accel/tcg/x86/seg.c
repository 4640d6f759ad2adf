/* Segmentation, RFLAGS, interrupt/exception delivery and the far control transfers, in real
 * mode, 32-bit protected mode and long mode.
 *
 * Not modelled (documented limits): task gates and hardware task switches, call gates,
 * virtual-8086 mode, segment limit checks on data accesses, the descriptor accessed bit. */
#include "accel/tcg/tcg_internal.h"
#include "accel/tcg/x86/flags.h"
#include "accel/tcg/x86/seg.h"

#include <string.h>

/* --- RFLAGS --------------------------------------------------------------------------------- */

uint64_t tcg_read_eflags(const struct tcg_cpu *cpu)
{
    uint32_t arith =
        x86_flags_compute((uint32_t)cpu->cc_op, cpu->cc_dst, cpu->cc_src, cpu->cc_src2);
    return (cpu->eflags & ~(uint64_t)X86_ARITH_FLAGS) | arith | 2;
}

void tcg_write_eflags(struct tcg_cpu *cpu, uint64_t value, uint64_t mask)
{
    uint64_t cur = tcg_read_eflags(cpu);
    uint64_t v = (cur & ~mask) | (value & mask);
    if (v & ~cur & (X86_IF | X86_TF))
        tcg_recheck_interrupts(cpu); /* POPF, IRET, SYSRET setting IF or TF: see the loop */
    cpu->cc_op = CC_OP_EFLAGS;
    cpu->cc_src = v & X86_ARITH_FLAGS;
    cpu->eflags = (v & ~(uint64_t)X86_ARITH_FLAGS) | 2;
}

/* Bits POPF/IRET may change at the current privilege. */
uint64_t tcg_eflags_write_mask(const struct tcg_cpu *cpu, unsigned opsize_bytes)
{
    unsigned cpl = cpu->hflags & HF_CPL_MASK;
    unsigned iopl = (unsigned)((cpu->eflags >> 12) & 3);
    uint64_t mask = X86_ARITH_FLAGS | X86_TF | X86_DF | X86_NT | X86_AC | X86_ID;
    if (!(cpu->hflags & HF_PE) || cpl <= iopl)
        mask |= X86_IF;
    if (!(cpu->hflags & HF_PE) || cpl == 0)
        mask |= X86_IOPL;
    if (opsize_bytes == 2)
        mask &= 0xffff;
    return mask;
}

/* --- segments --------------------------------------------------------------------------------- */

void tcg_update_hflags(struct tcg_cpu *cpu)
{
    uint32_t hf = cpu->hflags & HF_CPL_MASK;
    const struct tcg_segment *cs = &cpu->seg[SEG_CS], *ss = &cpu->seg[SEG_SS];
    if (cpu->cr0 & X86_CR0_PE)
        hf |= HF_PE;
    else
        hf &= ~HF_CPL_MASK; /* real mode runs at CPL 0 */
    if (cpu->cr0 & X86_CR0_PG)
        hf |= HF_PG;
    if (cpu->efer & X86_EFER_LMA)
        hf |= HF_LMA;
    if ((hf & HF_LMA) && (cs->attr & SEG_ATTR_L)) {
        hf |= HF_CS64 | HF_CS32 | HF_SS32;
    } else {
        if (cs->attr & SEG_ATTR_DB)
            hf |= HF_CS32;
        if (ss->attr & SEG_ATTR_DB)
            hf |= HF_SS32;
    }
    /* CR0.EM = bit 2, CR0.TS = bit 3, CR4.OSFXSR = bit 9: the checks every SSE instruction
     * makes, done once at translation for the ones the translator inlines. */
    if (!(cpu->cr0 & 0xcULL) && (cpu->cr4 & (1ULL << 9)))
        hf |= HF_SSE;
    if (cpu->host_fp && (cpu->fpu.mxcsr & 0x1f80u) == 0x1f80u)
        hf |= HF_MXFAST;
    cpu->hflags = hf;
}

void tcg_set_seg(struct tcg_cpu *cpu, unsigned seg, uint16_t selector, uint64_t base,
                 uint32_t limit, uint16_t attr)
{
    cpu->seg[seg] = (struct tcg_segment){base, limit, selector, attr};
    cpu->seg_base[seg] = base;
    if (seg == SEG_CS || seg == SEG_SS)
        tcg_update_hflags(cpu);
}

static noreturn void fault_gp(struct tcg_cpu *cpu, uint32_t err)
{
    tcg_raise_exception(cpu, X86_EXC_GP, err, true);
}

/* Read the 8-byte descriptor for selector (GDT or LDT); #GP(selector) beyond the limit. */
static void read_descriptor(struct tcg_cpu *cpu, uint16_t selector, uint32_t *w0, uint32_t *w1,
                            uint64_t *addr_out)
{
    uint64_t base;
    uint32_t limit;
    if (selector & 4) {
        base = cpu->seg[SEG_LDTR].base;
        limit = cpu->seg[SEG_LDTR].limit;
        if (!(cpu->seg[SEG_LDTR].attr & SEG_ATTR_P))
            fault_gp(cpu, selector & 0xfffc);
    } else {
        base = cpu->gdt.base;
        limit = cpu->gdt.limit;
    }
    uint32_t index = selector & 0xfff8u;
    if (index + 7 > limit)
        fault_gp(cpu, selector & 0xfffc);
    uint64_t addr = base + index;
    if (!(cpu->hflags & HF_LMA))
        addr &= 0xffffffffULL;
    uint64_t d = mmu_load_kernel(cpu, addr, 8);
    *w0 = (uint32_t)d;
    *w1 = (uint32_t)(d >> 32);
    if (addr_out)
        *addr_out = addr;
}

static uint64_t desc_base(uint32_t w0, uint32_t w1)
{
    return (w0 >> 16) | ((w1 & 0xffu) << 16) | (w1 & 0xff000000u);
}

static uint32_t desc_limit(uint32_t w0, uint32_t w1)
{
    uint32_t limit = (w0 & 0xffffu) | (w1 & 0xf0000u);
    return (w1 & (1u << 23)) ? (limit << 12) | 0xfffu : limit;
}

static uint16_t desc_attr(uint32_t w1)
{
    return (uint16_t)((w1 >> 8) & 0xf0ffu);
}

#define ATTR_TYPE(a) ((a)&0xfu)
#define TYPE_CODE 0x8u
#define TYPE_CONFORMING 0x4u /* code */
#define TYPE_READABLE 0x2u   /* code */
#define TYPE_WRITABLE 0x2u   /* data */

void tcg_load_seg(struct tcg_cpu *cpu, unsigned seg, uint16_t selector)
{
    if (!(cpu->hflags & HF_PE)) {
        /* Real mode: the selector is a paragraph number; limit and attributes stay. */
        struct tcg_segment *s = &cpu->seg[seg];
        tcg_set_seg(cpu, seg, selector, (uint64_t)selector << 4, s->limit,
                    s->attr ? s->attr : (uint16_t)(0x3 | SEG_ATTR_S | SEG_ATTR_P));
        return;
    }
    unsigned cpl = cpu->hflags & HF_CPL_MASK, rpl = selector & 3u;
    if ((selector & 0xfffc) == 0) {
        /* Null selector: allowed except for SS (outside 64-bit mode at CPL < 3). */
        if (seg == SEG_SS && !((cpu->hflags & HF_CS64) && cpl != 3))
            fault_gp(cpu, 0);
        tcg_set_seg(cpu, seg, selector, 0, 0, seg == SEG_SS ? (uint16_t)(cpl << 5) : 0);
        return;
    }
    uint32_t w0, w1;
    read_descriptor(cpu, selector, &w0, &w1, NULL);
    uint16_t attr = desc_attr(w1);
    unsigned dpl = SEG_ATTR_DPL(attr), type = ATTR_TYPE(attr);
    if (!(attr & SEG_ATTR_S))
        fault_gp(cpu, selector & 0xfffc);
    if (seg == SEG_SS) {
        if ((type & TYPE_CODE) || !(type & TYPE_WRITABLE) || rpl != cpl || dpl != cpl)
            fault_gp(cpu, selector & 0xfffc);
        if (!(attr & SEG_ATTR_P))
            tcg_raise_exception(cpu, X86_EXC_SS, selector & 0xfffc, true);
    } else {
        if ((type & TYPE_CODE) && !(type & TYPE_READABLE))
            fault_gp(cpu, selector & 0xfffc);
        if (!((type & TYPE_CODE) && (type & TYPE_CONFORMING)) && (dpl < cpl || dpl < rpl))
            fault_gp(cpu, selector & 0xfffc);
        if (!(attr & SEG_ATTR_P))
            tcg_raise_exception(cpu, X86_EXC_NP, selector & 0xfffc, true);
    }
    tcg_set_seg(cpu, seg, selector, desc_base(w0, w1), desc_limit(w0, w1), attr);
}

/* Load CS for a control transfer to privilege cpl (checks done by the caller). */
static void load_cs(struct tcg_cpu *cpu, uint16_t selector, uint32_t w0, uint32_t w1, unsigned cpl)
{
    cpu->hflags = (cpu->hflags & ~HF_CPL_MASK) | cpl;
    tcg_set_seg(cpu, SEG_CS, (uint16_t)((selector & 0xfffc) | cpl), desc_base(w0, w1),
                desc_limit(w0, w1), desc_attr(w1));
}

/* Check a code segment descriptor for a transfer; returns its DPL. */
static unsigned check_code_desc(struct tcg_cpu *cpu, uint16_t selector, uint32_t w1)
{
    uint16_t attr = desc_attr(w1);
    if (!(attr & SEG_ATTR_S) || !(ATTR_TYPE(attr) & TYPE_CODE))
        fault_gp(cpu, selector & 0xfffc);
    if (!(attr & SEG_ATTR_P))
        tcg_raise_exception(cpu, X86_EXC_NP, selector & 0xfffc, true);
    return SEG_ATTR_DPL(attr);
}

/* --- stack helpers for delivery -------------------------------------------------------------- */

struct stack {
    uint64_t sp;
    uint64_t base;
    uint64_t mask; /* stack pointer width */
};

static void stack_push(struct tcg_cpu *cpu, struct stack *st, uint64_t value, unsigned bytes)
{
    st->sp = (st->sp - bytes) & st->mask;
    uint64_t addr = st->base + st->sp;
    if (!(cpu->hflags & HF_LMA))
        addr &= 0xffffffffULL;
    mmu_store_kernel(cpu, addr, value, bytes);
}

static uint64_t stack_pop(struct tcg_cpu *cpu, struct stack *st, unsigned bytes)
{
    uint64_t addr = st->base + st->sp;
    if (!(cpu->hflags & HF_LMA))
        addr &= 0xffffffffULL;
    uint64_t v = mmu_load(cpu, addr, bytes);
    st->sp = (st->sp + bytes) & st->mask;
    return v;
}

static struct stack current_stack(const struct tcg_cpu *cpu)
{
    uint64_t mask = (cpu->hflags & HF_CS64)   ? ~0ULL
                    : (cpu->hflags & HF_SS32) ? 0xffffffffULL
                                              : 0xffffULL;
    uint64_t base = (cpu->hflags & HF_CS64) ? 0 : cpu->seg[SEG_SS].base;
    return (struct stack){cpu->gpr[GPR_RSP] & mask, base, mask};
}

static void set_sp(struct tcg_cpu *cpu, const struct stack *st)
{
    if (st->mask == 0xffff)
        cpu->gpr[GPR_RSP] = (cpu->gpr[GPR_RSP] & ~0xffffULL) | st->sp;
    else
        cpu->gpr[GPR_RSP] = st->sp;
}

/* --- interrupt and exception delivery ------------------------------------------------------- */

static void deliver_real(struct tcg_cpu *cpu, int vector, uint64_t next_rip)
{
    uint64_t entry = cpu->idt.base + (uint64_t)vector * 4;
    if ((uint64_t)vector * 4 + 3 > cpu->idt.limit)
        fault_gp(cpu, (uint32_t)vector * 8 + 2);
    uint32_t ivt = (uint32_t)mmu_load_kernel(cpu, entry, 4);
    struct stack st = current_stack(cpu);
    stack_push(cpu, &st, tcg_read_eflags(cpu) & 0xffff, 2);
    stack_push(cpu, &st, cpu->seg[SEG_CS].selector, 2);
    stack_push(cpu, &st, next_rip & 0xffff, 2);
    set_sp(cpu, &st);
    cpu->eflags &= ~(uint64_t)(X86_IF | X86_TF | X86_AC | X86_RF);
    uint16_t sel = (uint16_t)(ivt >> 16);
    tcg_set_seg(cpu, SEG_CS, sel, (uint64_t)sel << 4, cpu->seg[SEG_CS].limit,
                cpu->seg[SEG_CS].attr);
    cpu->rip = ivt & 0xffff;
}

static uint64_t tss_read(struct tcg_cpu *cpu, uint64_t offset, unsigned size)
{
    const struct tcg_segment *tr = &cpu->seg[SEG_TR];
    if (!(tr->attr & SEG_ATTR_P) || offset + size - 1 > tr->limit)
        tcg_raise_exception(cpu, X86_EXC_TS, tr->selector & 0xfffc, true);
    return mmu_load_kernel(cpu, tr->base + offset, size);
}

/* Fault-class exceptions: the pushed RFLAGS has RF set (SDM 17.3.1.1), so that IRET back
 * to the instruction does not report its instruction breakpoint again. #DB is left out:
 * its instruction-breakpoint form is the exception to the rule, the others are traps. */
static bool is_fault(int vector)
{
    switch (vector) {
    case X86_EXC_DE:
    case X86_EXC_BR:
    case X86_EXC_UD:
    case X86_EXC_NM:
    case X86_EXC_TS:
    case X86_EXC_NP:
    case X86_EXC_SS:
    case X86_EXC_GP:
    case X86_EXC_PF:
    case X86_EXC_MF:
    case X86_EXC_AC:
    case X86_EXC_XM:
    case 20: /* #VE */
    case 21: /* #CP */
        return true;
    default:
        return false;
    }
}

/* The stack an inner-privilege 32-bit gate switches to: SS:ESP for new_dpl from the TSS.
 * Nothing is committed yet (delivery must be atomic). */
static struct stack inner_stack32(struct tcg_cpu *cpu, unsigned new_dpl, uint16_t *ss_sel,
                                  uint32_t *s0, uint32_t *s1)
{
    uint64_t esp = tss_read(cpu, 4 + (uint64_t)new_dpl * 8, 4);
    *ss_sel = (uint16_t)tss_read(cpu, 8 + (uint64_t)new_dpl * 8, 2);
    if ((*ss_sel & 0xfffc) == 0)
        tcg_raise_exception(cpu, X86_EXC_TS, 0, true);
    read_descriptor(cpu, *ss_sel, s0, s1, NULL);
    uint16_t sattr = desc_attr(*s1);
    uint64_t mask = (sattr & SEG_ATTR_DB) ? 0xffffffffULL : 0xffffULL;
    return (struct stack){esp & mask, desc_base(*s0, *s1), mask};
}

void tcg_deliver_interrupt(struct tcg_cpu *cpu, int vector, enum tcg_event kind, bool has_error,
                           uint32_t error_code, uint64_t next_rip)
{
    if (!(cpu->hflags & HF_PE)) {
        deliver_real(cpu, vector, next_rip);
        return;
    }
    bool software = kind == TCG_EVENT_SOFTWARE;
    bool long_mode = (cpu->hflags & HF_LMA) != 0;
    unsigned gate_size = long_mode ? 16 : 8;
    uint32_t idt_err = (uint32_t)vector * 8 + 2 + (software ? 0 : 1);
    if ((uint64_t)vector * gate_size + gate_size - 1 > cpu->idt.limit)
        fault_gp(cpu, idt_err);
    uint64_t gate_addr = cpu->idt.base + (uint64_t)vector * gate_size;
    if (!long_mode)
        gate_addr &= 0xffffffffULL;
    uint64_t g0 = mmu_load_kernel(cpu, gate_addr, 8);
    uint64_t g1 = long_mode ? mmu_load_kernel(cpu, gate_addr + 8, 8) : 0;
    unsigned type = (unsigned)(g0 >> 40) & 0xf, dpl = (unsigned)(g0 >> 45) & 3;
    bool present = (g0 >> 47) & 1;
    uint16_t selector = (uint16_t)(g0 >> 16);
    uint64_t offset = (g0 & 0xffff) | ((g0 >> 32) & 0xffff0000ULL);
    if (long_mode)
        offset |= (g1 & 0xffffffffULL) << 32;
    unsigned ist = long_mode ? (unsigned)(g0 >> 32) & 7 : 0;
    bool gate32 = type == 0xe || type == 0xf, gate16 = type == 0x6 || type == 0x7;
    if (long_mode ? !gate32 : !(gate32 || gate16))
        fault_gp(cpu, idt_err); /* task gates are not supported */
    unsigned cpl = cpu->hflags & HF_CPL_MASK;
    if (software && dpl < cpl)
        fault_gp(cpu, idt_err);
    if (!present)
        tcg_raise_exception(cpu, X86_EXC_NP, idt_err, true);
    if ((selector & 0xfffc) == 0)
        fault_gp(cpu, 0);
    uint32_t w0, w1;
    read_descriptor(cpu, selector, &w0, &w1, NULL);
    unsigned new_dpl = check_code_desc(cpu, selector, w1);
    if (new_dpl > cpl)
        fault_gp(cpu, selector & 0xfffc);
    if (ATTR_TYPE(desc_attr(w1)) & TYPE_CONFORMING)
        new_dpl = cpl;
    if (long_mode && (!(w1 & (1u << 21)) || (w1 & (1u << 22))))
        fault_gp(cpu, selector & 0xfffc); /* long-mode handlers must be 64-bit code */

    uint64_t old_flags = tcg_read_eflags(cpu);
    if (kind == TCG_EVENT_EXCEPTION && is_fault(vector))
        old_flags |= X86_RF;
    uint16_t old_cs = cpu->seg[SEG_CS].selector, old_ss = cpu->seg[SEG_SS].selector;
    uint64_t old_sp = cpu->gpr[GPR_RSP];
    unsigned push = long_mode ? 8 : gate32 ? 4 : 2;
    bool inner = new_dpl < cpl;
    /* Every push happens before any register changes: a fault on the new stack (#PF,
     * #SS) is then delivered from the interrupted context, as on hardware. */
    struct stack st;
    uint16_t ss_sel = 0;
    uint32_t s0 = 0, s1 = 0;
    if (long_mode) {
        uint64_t sp = old_sp;
        if (ist)
            sp = tss_read(cpu, 0x24 + (uint64_t)(ist - 1) * 8, 8);
        else if (inner)
            sp = tss_read(cpu, 4 + (uint64_t)new_dpl * 8, 8);
        st = (struct stack){sp & ~0xfULL, 0, ~0ULL};
        stack_push(cpu, &st, old_ss, 8);
        stack_push(cpu, &st, old_sp, 8);
    } else if (inner) {
        st = inner_stack32(cpu, new_dpl, &ss_sel, &s0, &s1);
        stack_push(cpu, &st, old_ss, push);
        stack_push(cpu, &st, old_sp, push);
    } else {
        st = current_stack(cpu);
    }
    stack_push(cpu, &st, old_flags, push);
    stack_push(cpu, &st, old_cs, push);
    stack_push(cpu, &st, next_rip, push);
    if (has_error)
        stack_push(cpu, &st, error_code, push);

    /* Commit. */
    if (long_mode && inner)
        tcg_set_seg(cpu, SEG_SS, (uint16_t)new_dpl, 0, 0, (uint16_t)(new_dpl << 5));
    else if (inner)
        tcg_set_seg(cpu, SEG_SS, ss_sel, desc_base(s0, s1), desc_limit(s0, s1), desc_attr(s1));
    load_cs(cpu, selector, w0, w1, new_dpl);
    if (long_mode)
        cpu->gpr[GPR_RSP] = st.sp;
    else
        set_sp(cpu, &st);
    cpu->rip = gate16 ? (offset & 0xffff) : offset;
    uint64_t clear = X86_TF | X86_NT | X86_RF | X86_VM;
    if (type == 0xe || type == 0x6)
        clear |= X86_IF; /* interrupt gate; trap gates keep IF */
    cpu->eflags &= ~clear;
}

/* --- far transfers ------------------------------------------------------------------------- */

void tcg_far_jump(struct tcg_cpu *cpu, uint16_t selector, uint64_t offset, uint64_t next_rip,
                  bool is_call, unsigned opsize)
{
    if (!(cpu->hflags & HF_PE)) {
        if (is_call) {
            struct stack st = current_stack(cpu);
            stack_push(cpu, &st, cpu->seg[SEG_CS].selector, opsize);
            stack_push(cpu, &st, next_rip, opsize);
            set_sp(cpu, &st);
        }
        tcg_set_seg(cpu, SEG_CS, selector, (uint64_t)selector << 4, cpu->seg[SEG_CS].limit,
                    cpu->seg[SEG_CS].attr);
        cpu->rip = offset & (opsize == 2 ? 0xffff : 0xffffffffULL);
        return;
    }
    if ((selector & 0xfffc) == 0)
        fault_gp(cpu, 0);
    uint32_t w0, w1;
    read_descriptor(cpu, selector, &w0, &w1, NULL);
    unsigned cpl = cpu->hflags & HF_CPL_MASK;
    if (!(w1 & (1u << 12)))
        fault_gp(cpu, selector & 0xfffc); /* call gates / TSS: not supported */
    unsigned dpl = check_code_desc(cpu, selector, w1);
    bool conforming = ATTR_TYPE(desc_attr(w1)) & TYPE_CONFORMING;
    if (conforming ? dpl > cpl : (dpl != cpl || (selector & 3u) > cpl))
        fault_gp(cpu, selector & 0xfffc);
    if (is_call) {
        struct stack st = current_stack(cpu);
        stack_push(cpu, &st, cpu->seg[SEG_CS].selector, opsize);
        stack_push(cpu, &st, next_rip, opsize);
        set_sp(cpu, &st);
    }
    load_cs(cpu, selector, w0, w1, cpl);
    cpu->rip = opsize == 2 ? (offset & 0xffff) : opsize == 4 ? (offset & 0xffffffffULL) : offset;
}

/* Return to CS:RIP popped by RETF/IRET, reloading SS:RSP when going to an outer level. */
static void return_to(struct tcg_cpu *cpu, struct stack *st, uint16_t cs_sel, uint64_t rip,
                      unsigned opsize, uint64_t extra_pop, bool is_iret, uint64_t flags)
{
    unsigned cpl = cpu->hflags & HF_CPL_MASK, rpl = cs_sel & 3u;
    if ((cs_sel & 0xfffc) == 0 || rpl < cpl)
        fault_gp(cpu, cs_sel & 0xfffc);
    uint32_t w0, w1;
    read_descriptor(cpu, cs_sel, &w0, &w1, NULL);
    unsigned dpl = check_code_desc(cpu, cs_sel, w1);
    bool conforming = ATTR_TYPE(desc_attr(w1)) & TYPE_CONFORMING;
    if (conforming ? dpl > rpl : dpl != rpl)
        fault_gp(cpu, cs_sel & 0xfffc);
    st->sp = (st->sp + extra_pop) & st->mask;
    bool long_mode = (cpu->hflags & HF_LMA) != 0;
    bool pop_ss = rpl > cpl || (long_mode && is_iret && (opsize == 8 || (cpu->hflags & HF_CS64)));
    uint64_t new_sp = 0;
    uint16_t ss_sel = 0;
    if (pop_ss) {
        new_sp = stack_pop(cpu, st, opsize);
        ss_sel = (uint16_t)stack_pop(cpu, st, opsize);
    }
    if (is_iret) {
        /* IRET also loads RF (POPF does not): a #DB handler resumes past a breakpoint. */
        uint64_t mask = tcg_eflags_write_mask(cpu, opsize) | (opsize > 2 ? X86_RF : 0);
        tcg_write_eflags(cpu, flags, mask);
    }
    load_cs(cpu, cs_sel, w0, w1, rpl);
    if (pop_ss) {
        if ((ss_sel & 0xfffc) == 0 && long_mode && (w1 & (1u << 21)) && rpl != 3) {
            tcg_set_seg(cpu, SEG_SS, ss_sel, 0, 0, (uint16_t)(rpl << 5));
        } else {
            tcg_load_seg(cpu, SEG_SS, ss_sel);
        }
        cpu->gpr[GPR_RSP] = new_sp;
        if (!(cpu->hflags & HF_SS32) && !(cpu->hflags & HF_CS64))
            cpu->gpr[GPR_RSP] &= 0xffff;
    } else {
        set_sp(cpu, st);
    }
    if (rpl > cpl) {
        /* Data segments the new (outer) level may not use become null. */
        /* Only the selector and the present bit go: the base stays (in 64-bit mode FS/GS
         * bases set through MSRs must survive the return to user mode), and null FS/GS
         * selectors are left alone, as on hardware. */
        static const unsigned data_segs[] = {SEG_ES, SEG_DS, SEG_FS, SEG_GS};
        for (unsigned i = 0; i < 4; i++) {
            unsigned seg = data_segs[i];
            struct tcg_segment *sg = &cpu->seg[seg];
            unsigned t = ATTR_TYPE(sg->attr);
            bool conforming_code = (t & TYPE_CODE) && (t & TYPE_CONFORMING);
            if ((seg == SEG_FS || seg == SEG_GS) && (sg->selector & 0xfffc) == 0)
                continue;
            if (!conforming_code && SEG_ATTR_DPL(sg->attr) < rpl)
                tcg_set_seg(cpu, seg, 0, sg->base, sg->limit, (uint16_t)(sg->attr & ~SEG_ATTR_P));
        }
    }
    cpu->rip = opsize == 2 ? (rip & 0xffff) : opsize == 4 ? (rip & 0xffffffffULL) : rip;
}

void tcg_far_ret(struct tcg_cpu *cpu, unsigned opsize, uint64_t extra_pop)
{
    struct stack st = current_stack(cpu);
    uint64_t rip = stack_pop(cpu, &st, opsize);
    uint16_t cs_sel = (uint16_t)stack_pop(cpu, &st, opsize);
    if (!(cpu->hflags & HF_PE)) {
        st.sp = (st.sp + extra_pop) & st.mask;
        set_sp(cpu, &st);
        tcg_set_seg(cpu, SEG_CS, cs_sel, (uint64_t)cs_sel << 4, cpu->seg[SEG_CS].limit,
                    cpu->seg[SEG_CS].attr);
        cpu->rip = rip & (opsize == 2 ? 0xffff : 0xffffffffULL);
        return;
    }
    return_to(cpu, &st, cs_sel, rip, opsize, extra_pop, false, 0);
}

void tcg_iret(struct tcg_cpu *cpu, unsigned opsize)
{
    if (cpu->nmi_blocked) {
        cpu->nmi_blocked = false; /* IRET ends NMI blocking, even if it then faults */
        tcg_recheck_interrupts(cpu);
    }
    struct stack st = current_stack(cpu);
    uint64_t rip = stack_pop(cpu, &st, opsize);
    uint16_t cs_sel = (uint16_t)stack_pop(cpu, &st, opsize);
    uint64_t flags = stack_pop(cpu, &st, opsize);
    if (!(cpu->hflags & HF_PE)) {
        set_sp(cpu, &st);
        tcg_write_eflags(cpu, flags,
                         tcg_eflags_write_mask(cpu, opsize) | (opsize > 2 ? X86_RF : 0));
        tcg_set_seg(cpu, SEG_CS, cs_sel, (uint64_t)cs_sel << 4, cpu->seg[SEG_CS].limit,
                    cpu->seg[SEG_CS].attr);
        cpu->rip = rip & (opsize == 2 ? 0xffff : 0xffffffffULL);
        return;
    }
    if (cpu->eflags & X86_NT)
        fault_gp(cpu, 0); /* nested task return needs task switching: not supported */
    return_to(cpu, &st, cs_sel, rip, opsize, 0, true, flags);
}

/* VERR / VERW: ZF = the segment is readable / writable at the current privilege. Selectors
 * beyond the table give ZF = 0, not #GP (the descriptor is looked at without faulting). */
void tcg_verify_seg(struct tcg_cpu *cpu, uint16_t selector, bool write)
{
    bool ok = false;
    bool ldt = selector & 4;
    uint64_t base = ldt ? cpu->seg[SEG_LDTR].base : cpu->gdt.base;
    uint32_t limit = ldt ? cpu->seg[SEG_LDTR].limit : cpu->gdt.limit;
    bool table = !ldt || (cpu->seg[SEG_LDTR].attr & SEG_ATTR_P);
    if ((selector & 0xfffc) && table && (uint32_t)(selector & 0xfff8u) + 7 <= limit) {
        uint64_t addr = base + (selector & 0xfff8u);
        if (!(cpu->hflags & HF_LMA))
            addr &= 0xffffffffULL;
        uint32_t w1 = (uint32_t)(mmu_load_kernel(cpu, addr, 8) >> 32);
        uint16_t attr = desc_attr(w1);
        unsigned type = ATTR_TYPE(attr), dpl = SEG_ATTR_DPL(attr);
        unsigned cpl = cpu->hflags & HF_CPL_MASK, rpl = selector & 3u;
        bool code = type & TYPE_CODE;
        bool conforming = code && (type & TYPE_CONFORMING);
        bool priv = conforming || (dpl >= cpl && dpl >= rpl);
        bool access = write ? !code && (type & TYPE_WRITABLE) : !code || (type & TYPE_READABLE);
        ok = (attr & SEG_ATTR_S) && priv && access;
    }
    uint64_t f = tcg_read_eflags(cpu);
    tcg_write_eflags(cpu, ok ? f | X86_ZF : f & ~(uint64_t)X86_ZF, X86_ZF);
}

void tcg_load_system_seg(struct tcg_cpu *cpu, bool is_tr, uint16_t selector)
{
    if ((selector & 0xfffc) == 0) {
        if (is_tr)
            fault_gp(cpu, 0);
        tcg_set_seg(cpu, SEG_LDTR, selector, 0, 0, 0);
        return;
    }
    if (selector & 4)
        fault_gp(cpu, selector & 0xfffc);
    uint32_t w0, w1;
    uint64_t addr;
    read_descriptor(cpu, selector, &w0, &w1, &addr);
    uint16_t attr = desc_attr(w1);
    unsigned type = ATTR_TYPE(attr);
    bool ok = !(attr & SEG_ATTR_S) && (is_tr ? (type == 0x9 || type == 0x1) : type == 0x2);
    if (!ok)
        fault_gp(cpu, selector & 0xfffc);
    if (!(attr & SEG_ATTR_P))
        tcg_raise_exception(cpu, X86_EXC_NP, selector & 0xfffc, true);
    uint64_t base = desc_base(w0, w1);
    if (cpu->hflags & HF_LMA) {
        base |= (mmu_load_kernel(cpu, addr + 8, 8) & 0xffffffffULL) << 32;
        if ((uint64_t)((int64_t)(base << 16) >> 16) != base)
            fault_gp(cpu, selector & 0xfffc); /* non-canonical TSS/LDT base */
    }
    if (is_tr) {
        /* Mark the TSS busy in the GDT, as LTR does. */
        mmu_store_kernel(cpu, addr + 4, w1 | (2u << 8), 4);
        attr |= 2;
    }
    tcg_set_seg(cpu, is_tr ? SEG_TR : SEG_LDTR, selector, base, desc_limit(w0, w1), attr);
}
