/* x86 front end, second half: decoded instructions -> IR for one translation block.
 *
 * Guest state lives in env (struct tcg_cpu); the GPRs, RIP, lazy-flag fields, RFLAGS and
 * segment bases are IR globals. The translator tracks the lazy flag operation statically
 * within a block (dc->cc_op), so `cmp; jcc` compares the operands directly and never builds
 * RFLAGS. Every instruction first stores its own RIP; the optimiser drops that store unless
 * something that can fault or read guest state follows before the next one, which keeps
 * faults precise at the cost of nothing in straight-line arithmetic. */
#include "accel/tcg/x86/translate.h"
#include "accel/tcg/x86/translate_internal.h"

#include "accel/tcg/tcg_internal.h"
#include "accel/tcg/x86/decode.h"
#include "accel/tcg/x86/flags.h"
#include "accel/tcg/x86/fpu.h"
#include "accel/tcg/x86/helpers.h"
#include "accel/tcg/ir/fpenv.h"
#include "accel/tcg/ir/vecop.h"
#include "vm/memory.h"

#include <stddef.h>
#include <string.h>

#define MAX_INSNS_PER_TB 64
/* Room one instruction may need in the IR block; the block ends before it runs short. */
#define OPS_PER_INSN_RESERVE 400
#define TEMPS_PER_INSN_RESERVE 120

#define GLOBAL(field, label)                                                                       \
    {                                                                                              \
        .kind = IR_TEMP_GLOBAL, .type = IR_I64, .env_offset = offsetof(struct tcg_cpu, field),     \
        .name = label                                                                              \
    }

static const struct ir_temp_info tcg_globals[NR_TCG_GLOBALS] = {
    GLOBAL(gpr[0], "rax"),
    GLOBAL(gpr[1], "rcx"),
    GLOBAL(gpr[2], "rdx"),
    GLOBAL(gpr[3], "rbx"),
    GLOBAL(gpr[4], "rsp"),
    GLOBAL(gpr[5], "rbp"),
    GLOBAL(gpr[6], "rsi"),
    GLOBAL(gpr[7], "rdi"),
    GLOBAL(gpr[8], "r8"),
    GLOBAL(gpr[9], "r9"),
    GLOBAL(gpr[10], "r10"),
    GLOBAL(gpr[11], "r11"),
    GLOBAL(gpr[12], "r12"),
    GLOBAL(gpr[13], "r13"),
    GLOBAL(gpr[14], "r14"),
    GLOBAL(gpr[15], "r15"),
    GLOBAL(rip, "rip"),
    GLOBAL(cc_op, "cc_op"),
    GLOBAL(cc_dst, "cc_dst"),
    GLOBAL(cc_src, "cc_src"),
    GLOBAL(cc_src2, "cc_src2"),
    GLOBAL(eflags, "eflags"),
    GLOBAL(seg_base[0], "es_base"),
    GLOBAL(seg_base[1], "cs_base"),
    GLOBAL(seg_base[2], "ss_base"),
    GLOBAL(seg_base[3], "ds_base"),
    GLOBAL(seg_base[4], "fs_base"),
    GLOBAL(seg_base[5], "gs_base"),
    GLOBAL(seg_base[6], "ldt_base"),
    GLOBAL(seg_base[7], "tr_base"),
    GLOBAL(fpu.xmm[0].q[0], "xmm0l"),
    GLOBAL(fpu.xmm[0].q[1], "xmm0h"),
    GLOBAL(fpu.xmm[1].q[0], "xmm1l"),
    GLOBAL(fpu.xmm[1].q[1], "xmm1h"),
    GLOBAL(fpu.xmm[2].q[0], "xmm2l"),
    GLOBAL(fpu.xmm[2].q[1], "xmm2h"),
    GLOBAL(fpu.xmm[3].q[0], "xmm3l"),
    GLOBAL(fpu.xmm[3].q[1], "xmm3h"),
    GLOBAL(fpu.xmm[4].q[0], "xmm4l"),
    GLOBAL(fpu.xmm[4].q[1], "xmm4h"),
    GLOBAL(fpu.xmm[5].q[0], "xmm5l"),
    GLOBAL(fpu.xmm[5].q[1], "xmm5h"),
    GLOBAL(fpu.xmm[6].q[0], "xmm6l"),
    GLOBAL(fpu.xmm[6].q[1], "xmm6h"),
    GLOBAL(fpu.xmm[7].q[0], "xmm7l"),
    GLOBAL(fpu.xmm[7].q[1], "xmm7h"),
    GLOBAL(fpu.xmm[8].q[0], "xmm8l"),
    GLOBAL(fpu.xmm[8].q[1], "xmm8h"),
    GLOBAL(fpu.xmm[9].q[0], "xmm9l"),
    GLOBAL(fpu.xmm[9].q[1], "xmm9h"),
    GLOBAL(fpu.xmm[10].q[0], "xmm10l"),
    GLOBAL(fpu.xmm[10].q[1], "xmm10h"),
    GLOBAL(fpu.xmm[11].q[0], "xmm11l"),
    GLOBAL(fpu.xmm[11].q[1], "xmm11h"),
    GLOBAL(fpu.xmm[12].q[0], "xmm12l"),
    GLOBAL(fpu.xmm[12].q[1], "xmm12h"),
    GLOBAL(fpu.xmm[13].q[0], "xmm13l"),
    GLOBAL(fpu.xmm[13].q[1], "xmm13h"),
    GLOBAL(fpu.xmm[14].q[0], "xmm14l"),
    GLOBAL(fpu.xmm[14].q[1], "xmm14h"),
    GLOBAL(fpu.xmm[15].q[0], "xmm15l"),
    GLOBAL(fpu.xmm[15].q[1], "xmm15h"),
};

/* --- small utilities -------------------------------------------------------------------- */

static uint64_t size_mask(unsigned bits)
{
    return bits >= 64 ? ~0ULL : (1ULL << bits) - 1;
}

static unsigned stack_bits(const struct dc *s)
{
    if (s->mode == X86_MODE_64)
        return 64;
    return (s->hflags & HF_SS32) ? 32 : 16;
}

/* Zero-extend the low `bits` of a into d. */
void gen_zext(struct dc *s, ir_temp d, ir_temp a, unsigned bits)
{
    switch (bits) {
    case 8:
        ir_unop(s->b, IR_EXT8U, IR_I64, d, a);
        break;
    case 16:
        ir_unop(s->b, IR_EXT16U, IR_I64, d, a);
        break;
    case 32:
        ir_unop(s->b, IR_EXT32U, IR_I64, d, a);
        break;
    default:
        ir_mov(s->b, IR_I64, d, a);
        break;
    }
}

void gen_sext(struct dc *s, ir_temp d, ir_temp a, unsigned bits)
{
    switch (bits) {
    case 8:
        ir_unop(s->b, IR_EXT8S, IR_I64, d, a);
        break;
    case 16:
        ir_unop(s->b, IR_EXT16S, IR_I64, d, a);
        break;
    case 32:
        ir_unop(s->b, IR_EXT32S, IR_I64, d, a);
        break;
    default:
        ir_mov(s->b, IR_I64, d, a);
        break;
    }
}

void gen_call(struct dc *s, enum x86_helper_id h, ir_temp d, ir_temp a0, ir_temp a1, ir_temp a2,
              ir_temp a3)
{
    ir_call(s->b, h, d, a0, a1, a2, a3);
}

/* --- registers -------------------------------------------------------------------------- */

ir_temp load_reg(struct dc *s, unsigned reg, unsigned bits, bool high8)
{
    ir_temp t = tmp(s);
    if (high8)
        ir_extract(s->b, IR_I64, t, gpr(reg), 8, 8);
    else
        gen_zext(s, t, gpr(reg), bits);
    return t;
}

/* Write the low `bits` of v: 32-bit writes zero the upper half, 8/16-bit writes merge. */
void store_reg(struct dc *s, unsigned reg, unsigned bits, bool high8, ir_temp v)
{
    ir_temp g = gpr(reg);
    if (high8)
        ir_deposit(s->b, IR_I64, g, g, v, 8, 8);
    else if (bits == 8 || bits == 16)
        ir_deposit(s->b, IR_I64, g, g, v, 0, bits);
    else
        gen_zext(s, g, v, bits);
}

/* --- addresses and memory ---------------------------------------------------------------- */

/* Linear address from an offset in segment seg: base added outside 64-bit mode (FS/GS
 * always), truncated to 32 bits outside long mode. */
ir_temp gen_linear(struct dc *s, ir_temp offset, unsigned seg)
{
    ir_temp lin = tmp(s);
    if (s->mode == X86_MODE_64) {
        if (seg == SEG_FS || seg == SEG_GS)
            ir_binop(s->b, IR_ADD, IR_I64, lin, offset, (ir_temp)(G_SEG_BASE0 + seg));
        else
            ir_mov(s->b, IR_I64, lin, offset);
        return lin;
    }
    ir_binop(s->b, IR_ADD, IR_I64, lin, offset, (ir_temp)(G_SEG_BASE0 + seg));
    ir_unop(s->b, IR_EXT32U, IR_I64, lin, lin);
    return lin;
}

/* Effective address (offset within the segment) of the memory operand. */
static ir_temp gen_ea(struct dc *s)
{
    const struct x86_mem *m = &s->insn->mem;
    ir_temp ea = tmp(s);
    if (m->base == X86_RIP_BASE) {
        ir_movi(s->b, IR_I64, ea, s->next_ip + (uint64_t)m->disp);
    } else {
        ir_movi(s->b, IR_I64, ea, (uint64_t)m->disp);
        if (m->base != X86_NO_REG)
            ir_binop(s->b, IR_ADD, IR_I64, ea, ea, gpr(m->base));
        if (m->index != X86_NO_REG) {
            ir_temp idx = tmp(s);
            unsigned shift = m->scale == 8 ? 3 : m->scale == 4 ? 2 : m->scale == 2 ? 1 : 0;
            ir_binop(s->b, IR_SHL, IR_I64, idx, gpr(m->index), cst(s, shift));
            ir_binop(s->b, IR_ADD, IR_I64, ea, ea, idx);
        }
    }
    if (m->addr_size < 64)
        gen_zext(s, ea, ea, m->addr_size);
    return ea;
}

bool x86_noncanonical_is_stack(struct tcg_cpu *cpu, uint64_t vaddr)
{
    if (!(cpu->hflags & HF_CS64))
        return false; /* only 64-bit code forms non-canonical addresses */
    uint8_t bytes[16];
    size_t got = mmu_fetch_code(cpu, cpu->rip, bytes, sizeof(bytes));
    struct x86_decoded_insn insn;
    if (x86_decode(bytes, got, X86_MODE_64, &insn) < 0)
        return false;
    switch (insn.mnemonic) {
    case X86_MN_PUSH:
    case X86_MN_POP:
    case X86_MN_PUSHF:
    case X86_MN_POPF:
    case X86_MN_CALL:
    case X86_MN_RET:
    case X86_MN_ENTER:
    case X86_MN_LEAVE:
    case X86_MN_IRET: {
        if (!insn.has_mem || insn.mem.seg == SEG_SS)
            return true;
        /* PUSH/POP/CALL with a DS-type memory operand: the stack side is the one near RSP. */
        uint64_t d = vaddr - cpu->gpr[GPR_RSP];
        return d + 64 <= 128;
    }
    default:
        return insn.has_mem && insn.mem.seg == SEG_SS;
    }
}

ir_temp gen_mem_addr(struct dc *s)
{
    return gen_linear(s, gen_ea(s), s->insn->mem.seg);
}

ir_temp gen_load(struct dc *s, ir_temp addr, unsigned bits)
{
    ir_temp v = tmp(s);
    ir_qld(s->b, IR_I64, v, addr, bits / 8);
    return v;
}

void gen_store(struct dc *s, ir_temp addr, ir_temp v, unsigned bits)
{
    ir_qst(s->b, IR_I64, v, addr, bits / 8);
}

/* --- operands ---------------------------------------------------------------------------- */

struct opref {
    ir_temp addr; /* linear address for memory operands, IR_NO_TEMP otherwise */
    bool stored;  /* a host atomic wrote the result already (load_rmw): store_operand skips it */
};

/* Value of operand i, zero-extended from its size. Memory addresses are computed once and
 * remembered in ref so a read-modify-write stores where it loaded. */
static ir_temp load_operand(struct dc *s, unsigned i, struct opref *ref)
{
    const struct x86_operand *o = &s->insn->operand[i];
    if (ref)
        ref->addr = IR_NO_TEMP, ref->stored = false;
    switch (o->kind) {
    case X86_OPND_REG:
        if (o->reg_class == X86_RC_SEG) {
            ir_temp t = tmp(s);
            ir_ldenv(s->b, t,
                     (uint32_t)(offsetof(struct tcg_cpu, seg) +
                                o->reg * sizeof(struct tcg_segment) +
                                offsetof(struct tcg_segment, selector)));
            ir_unop(s->b, IR_EXT16U, IR_I64, t, t);
            return t;
        }
        return load_reg(s, o->reg, o->size, o->reg_class == X86_RC_GPR8_HIGH);
    case X86_OPND_MEM: {
        ir_temp addr = gen_mem_addr(s);
        if (ref)
            ref->addr = addr;
        return gen_load(s, addr, o->size);
    }
    case X86_OPND_IMM:
        return cst(s, (o->which_imm ? s->insn->imm2 : s->insn->imm) & size_mask(o->size));
    case X86_OPND_CONST:
        return cst(s, 1);
    default:
        return cst(s, 0);
    }
}

static void store_operand(struct dc *s, unsigned i, const struct opref *ref, ir_temp v)
{
    const struct x86_operand *o = &s->insn->operand[i];
    if (ref && ref->stored)
        return;
    if (o->kind == X86_OPND_REG)
        store_reg(s, o->reg, o->size, o->reg_class == X86_RC_GPR8_HIGH, v);
    else if (o->kind == X86_OPND_MEM)
        gen_store(s, ref && ref->addr != IR_NO_TEMP ? ref->addr : gen_mem_addr(s), v, o->size);
}

/* A LOCK'd instruction, or XCHG, on memory while other vCPUs run: one host atomic (atomic.c).
 * LOCK is legal (decode.c) only with a memory destination, operand 0. */
static bool atomic_rmw(const struct dc *s)
{
    return s->cpu->parallel && s->insn->operand[0].kind == X86_OPND_MEM &&
           (s->insn->prefix.lock || s->insn->mnemonic == X86_MN_XCHG);
}

static ir_temp gen_atomic(struct dc *s, ir_temp addr, enum x86_atomic_op op, ir_temp v)
{
    ir_temp old = tmp(s);
    gen_call(s, HELPER_atomic_rmw, old, addr, v,
             cst(s, (uint64_t)op | (uint64_t)(s->insn->operand[0].size / 8) << 8), IR_NO_TEMP);
    return old;
}

/* Operand 0 of a read-modify-write whose new value is (old op v): a load, or when atomic_rmw,
 * the host atomic that reads and writes it at once (then ref->stored). */
static ir_temp load_rmw(struct dc *s, struct opref *ref, enum x86_atomic_op op, ir_temp v)
{
    if (!atomic_rmw(s))
        return load_operand(s, 0, ref);
    ref->addr = gen_mem_addr(s);
    ref->stored = true;
    return gen_atomic(s, ref->addr, op, v);
}

/* --- stack ------------------------------------------------------------------------------- */

static void gen_push(struct dc *s, ir_temp v, unsigned bits)
{
    unsigned sb = stack_bits(s);
    ir_temp sp = tmp(s);
    ir_binop(s->b, IR_SUB, IR_I64, sp, gpr(GPR_RSP), cst(s, bits / 8));
    gen_zext(s, sp, sp, sb);
    gen_store(s, gen_linear(s, sp, SEG_SS), v, bits);
    store_reg(s, GPR_RSP, sb, false, sp);
}

/* Load the top of stack (not yet popped). */
static ir_temp gen_stack_peek(struct dc *s, unsigned bits, unsigned offset)
{
    ir_temp sp = tmp(s);
    ir_binop(s->b, IR_ADD, IR_I64, sp, gpr(GPR_RSP), cst(s, offset));
    gen_zext(s, sp, sp, stack_bits(s));
    return gen_load(s, gen_linear(s, sp, SEG_SS), bits);
}

static void gen_stack_adjust(struct dc *s, uint64_t bytes)
{
    ir_temp sp = tmp(s);
    ir_binop(s->b, IR_ADD, IR_I64, sp, gpr(GPR_RSP), cst(s, bytes));
    store_reg(s, GPR_RSP, stack_bits(s), false, sp);
}

static ir_temp gen_pop(struct dc *s, unsigned bits)
{
    ir_temp v = gen_stack_peek(s, bits, 0);
    gen_stack_adjust(s, bits / 8);
    return v;
}

/* --- instruction families ---------------------------------------------------------------- */

/* Raise `vector` at this instruction. #DF, #TS, #NP, #SS, #GP, #PF, #AC and #CP push an error
 * code (0 here): without it the handler's frame would be shifted by one slot. */
static void gen_raise(struct dc *s, int vector)
{
    bool has_err = vector == X86_EXC_DF || (vector >= X86_EXC_TS && vector <= X86_EXC_PF) ||
                   vector == X86_EXC_AC || vector == 21;
    gen_call(s, HELPER_raise, IR_NO_TEMP, cst(s, (uint64_t)vector), cst(s, 0),
             cst(s, has_err ? 1 : 0), IR_NO_TEMP);
    s->end = true;
}

static void gen_alu(struct dc *s, enum x86_mnemonic mn)
{
    unsigned bits = s->insn->operand[0].size;
    enum ir_type t = type_for(bits);
    struct opref ref;
    ir_temp b = load_operand(s, 1, NULL);
    ir_temp carry = mn == X86_MN_ADC || mn == X86_MN_SBB ? gen_carry(s) : IR_NO_TEMP;
    ir_temp v = b; /* what the atomic adds: ADC/SBB add the carry too */
    if (carry != IR_NO_TEMP && atomic_rmw(s)) {
        v = tmp(s);
        ir_binop(s->b, IR_ADD, IR_I64, v, b, carry);
    }
    ir_temp a = load_rmw(s, &ref, x86_atomic_alu_op(mn), v);
    ir_temp r = tmp(s);
    switch (mn) {
    case X86_MN_ADD:
    case X86_MN_CMP:
    case X86_MN_SUB:
        ir_binop(s->b, mn == X86_MN_ADD ? IR_ADD : IR_SUB, t, r, a, b);
        break;
    case X86_MN_ADC:
    case X86_MN_SBB:
        ir_binop(s->b, mn == X86_MN_ADC ? IR_ADD : IR_SUB, t, r, a, b);
        ir_binop(s->b, mn == X86_MN_ADC ? IR_ADD : IR_SUB, t, r, r, carry);
        break;
    case X86_MN_AND:
    case X86_MN_TEST:
        ir_binop(s->b, IR_AND, t, r, a, b);
        break;
    case X86_MN_OR:
        ir_binop(s->b, IR_OR, t, r, a, b);
        break;
    default: /* XOR */
        ir_binop(s->b, IR_XOR, t, r, a, b);
        break;
    }
    if (mn != X86_MN_CMP && mn != X86_MN_TEST)
        store_operand(s, 0, &ref, r);
    switch (mn) {
    case X86_MN_ADD:
        set_cc(s, CC_OP_ADD, bits, r, b, IR_NO_TEMP);
        break;
    case X86_MN_ADC:
        set_cc(s, CC_OP_ADC, bits, r, b, carry);
        break;
    case X86_MN_SUB:
    case X86_MN_CMP:
        set_cc(s, CC_OP_SUB, bits, r, b, IR_NO_TEMP);
        break;
    case X86_MN_SBB:
        set_cc(s, CC_OP_SBB, bits, r, b, carry);
        break;
    default:
        set_cc(s, CC_OP_LOGIC, bits, r, IR_NO_TEMP, IR_NO_TEMP);
        break;
    }
}

static void gen_incdec(struct dc *s, bool inc)
{
    unsigned bits = s->insn->operand[0].size;
    struct opref ref;
    ir_temp a = load_rmw(s, &ref, inc ? ATOMIC_ADD : ATOMIC_SUB, cst(s, 1));
    ir_temp carry = gen_carry(s); /* INC/DEC keep CF */
    ir_temp r = tmp(s);
    ir_binop(s->b, inc ? IR_ADD : IR_SUB, type_for(bits), r, a, cst(s, 1));
    store_operand(s, 0, &ref, r);
    set_cc(s, inc ? CC_OP_INC : CC_OP_DEC, bits, r, carry, IR_NO_TEMP);
}

static void gen_neg_not(struct dc *s, bool neg)
{
    unsigned bits = s->insn->operand[0].size;
    struct opref ref;
    ir_temp a = load_rmw(s, &ref, neg ? ATOMIC_NEG : ATOMIC_XOR, cst(s, size_mask(bits)));
    ir_temp r = tmp(s);
    ir_unop(s->b, neg ? IR_NEG : IR_NOT, type_for(bits), r, a);
    store_operand(s, 0, &ref, r);
    if (neg)
        set_cc(s, CC_OP_NEG, bits, r, a, IR_NO_TEMP);
}

/* SHL/SHR/SAR: flags change only when the masked count is nonzero. */
static void gen_shift(struct dc *s, enum x86_mnemonic mn)
{
    unsigned bits = s->insn->operand[0].size;
    unsigned cmask = bits == 64 ? 63 : 31;
    struct opref ref;
    ir_temp a = load_operand(s, 0, &ref);
    ir_temp count = load_operand(s, 1, NULL);
    ir_temp n = tmp(s), n1 = tmp(s), src = tmp(s), r = tmp(s);
    ir_binop(s->b, IR_AND, IR_I64, n, count, cst(s, cmask));
    ir_binop(s->b, IR_SUB, IR_I64, n1, n, cst(s, 1));
    ir_binop(s->b, IR_AND, IR_I64, n1, n1, cst(s, 63));
    ir_temp val = a;
    if (mn == X86_MN_SAR) {
        val = tmp(s);
        gen_sext(s, val, a, bits);
    }
    enum ir_opcode opc = mn == X86_MN_SHL ? IR_SHL : mn == X86_MN_SHR ? IR_SHR : IR_SAR;
    ir_binop(s->b, opc, IR_I64, src, val, n1); /* shifted by count - 1: holds CF */
    ir_binop(s->b, opc, IR_I64, r, val, n);
    store_operand(s, 0, &ref, r);
    /* Conditional flag update without a branch: select between old and new lazy state. */
    int base = mn == X86_MN_SHL ? CC_OP_SHL : CC_OP_SAR;
    uint64_t new_op = (uint64_t)(base + (int)cc_size(bits));
    write_cc_op(s);
    ir_temp rz = tmp(s);
    gen_zext(s, rz, r, bits);
    ir_temp zero = cst(s, 0);
    ir_movcond(s->b, IR_I64, IR_COND_NE, G_CC_DST, n, zero, rz, G_CC_DST);
    ir_movcond(s->b, IR_I64, IR_COND_NE, G_CC_SRC, n, zero, src, G_CC_SRC);
    ir_movcond(s->b, IR_I64, IR_COND_NE, G_CC_OP, n, zero, cst(s, new_op), G_CC_OP);
    forget_cc_op(s, CC_OP_DYNAMIC);
}

/* The lazy cc_op that sets CF (0/1) and OF (0/1; IR_NO_TEMP: OF kept) on top of the current
 * one (CC_OP_ROT; a CC_OP_ROT before is unwrapped: its CF and OF are overwritten). */
static ir_temp gen_cc_op_rot(struct dc *s, ir_temp cf, ir_temp of)
{
    ir_temp tag = tmp(s), inner = tmp(s), op = tmp(s), c = tmp(s);
    uint64_t keep = of == IR_NO_TEMP ? CC_OP_ROT_KEEP_OF : 0;
    ir_binop(s->b, IR_AND, IR_I64, tag, G_CC_OP, cst(s, CC_OP_ROT));
    /* keeping OF of a rotate before: keep its OF bit and its keep flag too */
    ir_binop(s->b, IR_AND, IR_I64, inner, G_CC_OP,
             cst(s, keep ? 0xff | 1u << CC_OP_ROT_OF_SHIFT | CC_OP_ROT_KEEP_OF : 0xff));
    ir_movcond(s->b, IR_I64, IR_COND_NE, inner, tag, cst(s, 0), inner, G_CC_OP);
    ir_binop(s->b, IR_SHL, IR_I64, c, cf, cst(s, CC_OP_ROT_CF_SHIFT));
    ir_binop(s->b, IR_OR, IR_I64, op, inner, c);
    if (of != IR_NO_TEMP) {
        ir_temp o = tmp(s);
        ir_binop(s->b, IR_SHL, IR_I64, o, of, cst(s, CC_OP_ROT_OF_SHIFT));
        ir_binop(s->b, IR_OR, IR_I64, op, op, o);
    }
    ir_binop(s->b, IR_OR, IR_I64, op, op, cst(s, CC_OP_ROT | keep));
    return op;
}

/* ROL/ROR of 32/64-bit operands in IR: the result is one rotate op; CF and OF go into the
 * lazy cc_op (CC_OP_ROT) on top of the op before, computed only if something reads them.
 * Count 0 changes no flag. */
static void gen_rotate(struct dc *s, bool left)
{
    unsigned bits = s->insn->operand[0].size;
    enum ir_type t = bits == 64 ? IR_I64 : IR_I32;
    struct opref ref;
    ir_temp a = load_operand(s, 0, &ref);
    ir_temp count = load_operand(s, 1, NULL);
    ir_temp n = tmp(s), r = tmp(s), msb = tmp(s), cf = tmp(s), of = tmp(s);
    ir_binop(s->b, IR_AND, IR_I64, n, count, cst(s, bits - 1));
    ir_binop(s->b, left ? IR_ROTL : IR_ROTR, t, r, a, n);
    store_operand(s, 0, &ref, r);
    ir_extract(s->b, IR_I64, msb, r, bits - 1, 1);
    if (left) { /* CF = bit rotated into bit 0; OF = MSB ^ CF */
        ir_binop(s->b, IR_AND, IR_I64, cf, r, cst(s, 1));
        ir_binop(s->b, IR_XOR, IR_I64, of, msb, cf);
    } else { /* CF = MSB; OF = the two top bits differ */
        ir_mov(s->b, IR_I64, cf, msb);
        ir_extract(s->b, IR_I64, of, r, bits - 2, 1);
        ir_binop(s->b, IR_XOR, IR_I64, of, of, msb);
    }
    ir_movcond(s->b, IR_I64, IR_COND_NE, G_CC_OP, n, cst(s, 0), gen_cc_op_rot(s, cf, of), G_CC_OP);
    forget_cc_op(s, CC_OP_DYNAMIC);
}

static void gen_shift_helper(struct dc *s, int kind)
{
    unsigned bits = s->insn->operand[0].size;
    struct opref ref;
    ir_temp a = load_operand(s, 0, &ref);
    ir_temp extra = IR_NO_TEMP, count;
    if (kind == SHIFT_SHLD || kind == SHIFT_SHRD) {
        extra = load_operand(s, 1, NULL);
        count = load_operand(s, 2, NULL);
    } else {
        count = load_operand(s, 1, NULL);
    }
    write_cc_op(s);
    ir_temp r = tmp(s);
    gen_call(s, HELPER_shift, r, a, count, cst(s, (uint64_t)kind | (uint64_t)(bits / 8) << 8),
             extra == IR_NO_TEMP ? cst(s, 0) : extra);
    store_operand(s, 0, &ref, r);
    forget_cc_op(s, CC_OP_DYNAMIC);
}

void sync_cc_op(struct dc *s)
{
    write_cc_op(s);
}

static void gen_imul_2_3(struct dc *s)
{
    unsigned bits = s->insn->operand[0].size;
    ir_temp a = load_operand(s, s->insn->nr_operands == 3 ? 1 : 0, NULL);
    ir_temp b = load_operand(s, s->insn->nr_operands == 3 ? 2 : 1, NULL);
    ir_temp lo = tmp(s), over = tmp(s);
    if (bits == 64) {
        ir_temp hi = tmp(s), sign = tmp(s);
        ir_mul2(s->b, true, IR_I64, lo, hi, a, b);
        ir_binop(s->b, IR_SAR, IR_I64, sign, lo, cst(s, 63));
        ir_setcond(s->b, IR_I64, IR_COND_NE, over, hi, sign);
    } else {
        ir_temp sa = tmp(s), sb = tmp(s), full = tmp(s), trunc = tmp(s);
        gen_sext(s, sa, a, bits);
        gen_sext(s, sb, b, bits);
        ir_binop(s->b, IR_MUL, IR_I64, full, sa, sb);
        gen_sext(s, trunc, full, bits);
        ir_setcond(s->b, IR_I64, IR_COND_NE, over, trunc, full);
        /* The result from a multiply of its own width: a hash loop's chain is then the host's
         * 32-bit IMUL alone, the full product only feeds the flags (dropped when dead). */
        ir_binop(s->b, IR_MUL, IR_I32, lo, a, b);
    }
    store_operand(s, 0, NULL, lo);
    set_cc(s, CC_OP_MUL, bits, lo, over, IR_NO_TEMP);
}

/* One-operand MUL/IMUL of 32/64-bit operands: rDX:rAX = rAX * r/m (h_mul's rules: CF = OF
 * = the high half is significant; the lazy flags take the low half). */
static void gen_mul_1(struct dc *s, bool is_signed)
{
    unsigned bits = s->insn->operand[0].size;
    ir_temp v = load_operand(s, 0, NULL);
    ir_temp lo = tmp(s), hi = tmp(s), over = tmp(s);
    if (bits == 64) {
        ir_temp a = gpr(0);
        ir_mul2(s->b, is_signed, IR_I64, lo, hi, a, v);
        if (is_signed) {
            ir_temp sign = tmp(s);
            ir_binop(s->b, IR_SAR, IR_I64, sign, lo, cst(s, 63));
            ir_setcond(s->b, IR_I64, IR_COND_NE, over, hi, sign);
        } else {
            ir_setcond(s->b, IR_I64, IR_COND_NE, over, hi, cst(s, 0));
        }
    } else {
        ir_temp a = tmp(s), b = tmp(s), full = tmp(s), check = tmp(s);
        if (is_signed) {
            gen_sext(s, a, gpr(0), 32), gen_sext(s, b, v, 32);
        } else {
            gen_zext(s, a, gpr(0), 32), gen_zext(s, b, v, 32);
        }
        ir_binop(s->b, IR_MUL, IR_I64, full, a, b);
        gen_zext(s, lo, full, 32);
        ir_binop(s->b, IR_SHR, IR_I64, hi, full, cst(s, 32));
        if (is_signed) { /* the product does not fit the low half, sign-extended */
            gen_sext(s, check, full, 32);
            ir_setcond(s->b, IR_I64, IR_COND_NE, over, check, full);
        } else {
            ir_setcond(s->b, IR_I64, IR_COND_NE, over, hi, cst(s, 0));
        }
    }
    store_reg(s, 0, bits, false, lo);
    store_reg(s, 2, bits, false, hi);
    set_cc(s, CC_OP_MUL, bits, lo, over, IR_NO_TEMP);
}

static void gen_string(struct dc *s, int kind)
{
    const struct x86_decoded_insn *in = s->insn;
    unsigned rep = REP_NONE;
    bool compares = kind == STR_CMPS || kind == STR_SCAS;
    if (in->prefix.rep)
        rep = REP_REP;
    else if (in->prefix.repne && compares)
        rep = REP_REPNE;
    else if (in->prefix.repne)
        rep = REP_REP; /* F2 on MOVS/STOS/...: behaves as REP */
    /* The segment override applies to the source (DS:rSI); ES:rDI is fixed. */
    unsigned seg = in->prefix.seg != X86_SEG_NONE ? in->prefix.seg : SEG_DS;
    sync_cc_op(s);
    uint64_t desc = (uint64_t)kind | (uint64_t)(in->opsize / 8) << 8 | (uint64_t)rep << 12 |
                    (uint64_t)(in->addr_size / 8) << 16 | (uint64_t)seg << 24;
    gen_call(s, HELPER_string, IR_NO_TEMP, cst(s, desc), cst(s, s->next_ip), IR_NO_TEMP,
             IR_NO_TEMP);
    if (compares)
        forget_cc_op(s, CC_OP_DYNAMIC);
    /* The helper left RIP at the next instruction, or at this one when a REP stopped early
     * (so interrupts are taken between iterations). */
    ir_exit_tb(s->b, IR_EXIT_NEXT);
    s->end = true;
}

static void gen_in_out(struct dc *s, bool is_in)
{
    const struct x86_decoded_insn *in = s->insn;
    unsigned data_op = is_in ? 0 : 1, port_op = is_in ? 1 : 0;
    unsigned bits = in->operand[data_op].size;
    ir_temp port = load_operand(s, port_op, NULL);
    if (is_in) {
        ir_temp v = tmp(s);
        gen_call(s, HELPER_in, v, port, cst(s, bits / 8), IR_NO_TEMP, IR_NO_TEMP);
        store_operand(s, 0, NULL, v);
    } else {
        ir_temp v = load_operand(s, data_op, NULL);
        gen_call(s, HELPER_out, IR_NO_TEMP, port, v, cst(s, bits / 8), IR_NO_TEMP);
        /* A device may have asked the machine to stop or raised an interrupt: let the run
         * loop look before the next instruction. */
        gen_jump_const(s, s->next_ip, 0);
    }
}

static void gen_cmpxchg(struct dc *s)
{
    unsigned bits = s->insn->operand[0].size;
    struct opref ref;
    ir_temp src = load_operand(s, 1, NULL);
    ir_temp acc = load_reg(s, GPR_RAX, bits, false);
    ir_temp dest, diff = tmp(s), newval = tmp(s);
    bool atomic = atomic_rmw(s);
    if (atomic) { /* one host LOCK CMPXCHG; it checks write permission whatever the outcome */
        dest = tmp(s);
        gen_call(s, HELPER_atomic_cmpxchg, dest, gen_mem_addr(s), acc, src, cst(s, bits / 8));
    } else {
        dest = load_operand(s, 0, &ref);
    }
    ir_binop(s->b, IR_SUB, type_for(bits), diff, acc, dest);
    if (s->insn->operand[0].kind == X86_OPND_REG) {
        /* Exactly one register is written: a 32-bit destination keeps its upper half when
         * the comparison fails, and RAX keeps its upper half when it succeeds. */
        ir_label differ = ir_new_label(s->b), done = ir_new_label(s->b);
        ir_brcond(s->b, IR_I64, IR_COND_NE, acc, dest, differ);
        store_operand(s, 0, &ref, src);
        ir_br(s->b, done);
        ir_label_here(s->b, differ);
        store_reg(s, GPR_RAX, bits, false, dest);
        ir_label_here(s->b, done);
        set_cc(s, CC_OP_SUB, bits, diff, dest, IR_NO_TEMP);
        return;
    }
    /* Equal: dest = src. Not equal: accumulator = dest, and dest is written back unchanged
     * (the processor always writes a memory destination). */
    if (!atomic) {
        ir_movcond(s->b, IR_I64, IR_COND_EQ, newval, acc, dest, src, dest);
        store_operand(s, 0, &ref, newval);
    }
    ir_label same = ir_new_label(s->b);
    ir_brcond(s->b, IR_I64, IR_COND_EQ, acc, dest, same);
    store_reg(s, GPR_RAX, bits, false, dest);
    ir_label_here(s->b, same);
    set_cc(s, CC_OP_SUB, bits, diff, dest, IR_NO_TEMP);
}

static void gen_movs_family(struct dc *s, enum x86_mnemonic mn)
{
    static const int kinds[] = {
        [X86_MN_MOVS] = STR_MOVS, [X86_MN_CMPS] = STR_CMPS, [X86_MN_STOS] = STR_STOS,
        [X86_MN_LODS] = STR_LODS, [X86_MN_SCAS] = STR_SCAS, [X86_MN_INS] = STR_INS,
        [X86_MN_OUTS] = STR_OUTS};
    gen_string(s, kinds[mn]);
}

static void gen_loop(struct dc *s, enum x86_mnemonic mn)
{
    unsigned abits = s->insn->addr_size;
    ir_temp c = tmp(s);
    if (mn == X86_MN_JRCXZ) {
        gen_zext(s, c, gpr(GPR_RCX), abits);
        ir_temp z = tmp(s);
        ir_setcond(s->b, IR_I64, IR_COND_EQ, z, c, cst(s, 0));
        gen_branch_cond(s, z, rel_target(s), s->next_ip);
        return;
    }
    ir_binop(s->b, IR_SUB, IR_I64, c, gpr(GPR_RCX), cst(s, 1));
    store_reg(s, GPR_RCX, abits, false, c);
    gen_zext(s, c, c, abits);
    ir_temp take = tmp(s);
    ir_setcond(s->b, IR_I64, IR_COND_NE, take, c, cst(s, 0));
    if (mn != X86_MN_LOOP) {
        /* LOOPE continues while ZF=1 (cc 4 = E), LOOPNE while ZF=0 (cc 5 = NE). */
        ir_temp zf = gen_condition(s, mn == X86_MN_LOOPE ? 4 : 5);
        ir_binop(s->b, IR_AND, IR_I64, take, take, zf);
    }
    gen_branch_cond(s, take, rel_target(s), s->next_ip);
}

/* --- the dispatcher ---------------------------------------------------------------------- */

static bool privileged(const struct dc *s)
{
    return (s->hflags & HF_CPL_MASK) != 0;
}

static void translate_insn(struct dc *s)
{
    const struct x86_decoded_insn *in = s->insn;
    enum x86_mnemonic mn = in->mnemonic;
    unsigned bits = in->opsize;
    switch (mn) {
    case X86_MN_ADD:
    case X86_MN_OR:
    case X86_MN_ADC:
    case X86_MN_SBB:
    case X86_MN_AND:
    case X86_MN_SUB:
    case X86_MN_XOR:
    case X86_MN_CMP:
    case X86_MN_TEST:
        gen_alu(s, mn);
        break;
    case X86_MN_INC:
    case X86_MN_DEC:
        gen_incdec(s, mn == X86_MN_INC);
        break;
    case X86_MN_NEG:
    case X86_MN_NOT:
        gen_neg_not(s, mn == X86_MN_NEG);
        break;
    case X86_MN_SHL:
    case X86_MN_SHR:
    case X86_MN_SAR:
        gen_shift(s, mn);
        break;
    case X86_MN_ROL:
    case X86_MN_ROR:
        if (in->operand[0].size >= 32)
            gen_rotate(s, mn == X86_MN_ROL);
        else
            gen_shift_helper(s, mn == X86_MN_ROL ? SHIFT_ROL : SHIFT_ROR);
        break;
    case X86_MN_RCL:
        gen_shift_helper(s, SHIFT_RCL);
        break;
    case X86_MN_RCR:
        gen_shift_helper(s, SHIFT_RCR);
        break;
    case X86_MN_SHLD:
        gen_shift_helper(s, SHIFT_SHLD);
        break;
    case X86_MN_SHRD:
        gen_shift_helper(s, SHIFT_SHRD);
        break;
    case X86_MN_MOV: {
        ir_temp v = load_operand(s, 1, NULL);
        store_operand(s, 0, NULL, v);
        break;
    }
    case X86_MN_MOVZX:
    case X86_MN_MOVSX:
    case X86_MN_MOVSXD: {
        unsigned from = in->operand[1].size;
        ir_temp v = load_operand(s, 1, NULL);
        ir_temp r = tmp(s);
        if (mn == X86_MN_MOVZX)
            gen_zext(s, r, v, from);
        else
            gen_sext(s, r, v, from);
        store_operand(s, 0, NULL, r);
        break;
    }
    case X86_MN_LEA: {
        ir_temp ea = gen_ea(s);
        store_reg(s, in->operand[0].reg, bits, false, ea);
        break;
    }
    case X86_MN_XCHG: {
        struct opref ref;
        ir_temp b = load_operand(s, 1, NULL);
        ir_temp a = load_rmw(s, &ref, ATOMIC_XCHG, b);
        store_operand(s, 0, &ref, b);
        store_operand(s, 1, NULL, a);
        break;
    }
    case X86_MN_XADD: {
        struct opref ref;
        ir_temp b = load_operand(s, 1, NULL);
        ir_temp a = load_rmw(s, &ref, ATOMIC_ADD, b);
        ir_temp r = tmp(s);
        ir_binop(s->b, IR_ADD, type_for(bits), r, a, b);
        store_operand(s, 1, NULL, a);
        store_operand(s, 0, &ref, r);
        set_cc(s, CC_OP_ADD, bits, r, b, IR_NO_TEMP);
        break;
    }
    case X86_MN_CMPXCHG:
        gen_cmpxchg(s);
        break;
    case X86_MN_CMPXCHG8B:
    case X86_MN_CMPXCHG16B:
        sync_cc_op(s);
        gen_call(s, HELPER_cmpxchg8b, IR_NO_TEMP, gen_mem_addr(s),
                 cst(s, (mn == X86_MN_CMPXCHG16B) | (unsigned)atomic_rmw(s) << 1), IR_NO_TEMP,
                 IR_NO_TEMP);
        forget_cc_op(s, CC_OP_DYNAMIC);
        break;
    case X86_MN_BSWAP: {
        ir_temp v = load_reg(s, in->operand[0].reg, bits, false);
        ir_temp r = tmp(s);
        if (bits == 16) {
            ir_movi(s->b, IR_I64, r, 0); /* BSWAP r16 is undefined; real CPUs give 0 */
        } else {
            ir_unop(s->b, IR_BSWAP, type_for(bits), r, v);
        }
        store_reg(s, in->operand[0].reg, bits, false, r);
        break;
    }
    case X86_MN_CBW: { /* CBW/CWDE/CDQE: rAX = sign-extend half of itself */
        ir_temp v = tmp(s);
        gen_sext(s, v, gpr(GPR_RAX), bits / 2);
        store_reg(s, GPR_RAX, bits, false, v);
        break;
    }
    case X86_MN_CWD: { /* CWD/CDQ/CQO: rDX = sign of rAX */
        ir_temp v = tmp(s);
        gen_sext(s, v, gpr(GPR_RAX), bits);
        ir_binop(s->b, IR_SAR, IR_I64, v, v, cst(s, 63));
        store_reg(s, GPR_RDX, bits, false, v);
        break;
    }
    case X86_MN_MUL:
    case X86_MN_IMUL:
        if (mn == X86_MN_IMUL && in->nr_operands >= 2) {
            gen_imul_2_3(s);
            break;
        }
        if (in->operand[0].size >= 32) {
            gen_mul_1(s, mn == X86_MN_IMUL);
            break;
        }
        /* fallthrough */
    case X86_MN_DIV:
    case X86_MN_IDIV: {
        ir_temp v = load_operand(s, 0, NULL);
        bool is_signed = mn == X86_MN_IMUL || mn == X86_MN_IDIV;
        sync_cc_op(s);
        gen_call(s, (mn == X86_MN_MUL || mn == X86_MN_IMUL) ? HELPER_mul : HELPER_div, IR_NO_TEMP,
                 v, cst(s, in->operand[0].size / 8), cst(s, is_signed), IR_NO_TEMP);
        forget_cc_op(s, CC_OP_DYNAMIC);
        break;
    }
    case X86_MN_BT:
    case X86_MN_BTS:
    case X86_MN_BTR:
    case X86_MN_BTC: {
        int kind = mn == X86_MN_BT    ? BITTEST_BT
                   : mn == X86_MN_BTS ? BITTEST_BTS
                   : mn == X86_MN_BTR ? BITTEST_BTR
                                      : BITTEST_BTC;
        ir_temp bit = load_operand(s, 1, NULL);
        ir_temp addr = IR_NO_TEMP, v = IR_NO_TEMP;
        bool atomic = kind != BITTEST_BT && atomic_rmw(s);
        if (in->operand[0].kind == X86_OPND_MEM && in->operand[1].kind == X86_OPND_REG) {
            /* Register bit offsets address memory beyond the operand: signed. */
            ir_temp off = tmp(s), ea = gen_ea(s);
            gen_sext(s, off, bit, bits);
            ir_binop(s->b, IR_SAR, IR_I64, off, off, cst(s, bits == 64 ? 6 : bits == 32 ? 5 : 4));
            ir_binop(s->b, IR_SHL, IR_I64, off, off, cst(s, bits == 64 ? 3 : bits == 32 ? 2 : 1));
            ir_binop(s->b, IR_ADD, IR_I64, ea, ea, off);
            if (in->mem.addr_size < 64)
                gen_zext(s, ea, ea, in->mem.addr_size);
            addr = gen_linear(s, ea, in->mem.seg);
        } else if (atomic) {
            addr = gen_mem_addr(s);
        } else {
            struct opref ref;
            v = load_operand(s, 0, &ref);
            addr = ref.addr;
        }
        if (atomic) /* the helper below then only computes CF from the old value */
            v = gen_atomic(s, addr, (enum x86_atomic_op)(ATOMIC_BTS + kind - BITTEST_BTS), bit);
        else if (v == IR_NO_TEMP)
            v = gen_load(s, addr, bits);
        /* CF = the bit, the rest as before (CC_OP_ROT, OF kept); the result in IR */
        ir_temp r = tmp(s), pos = tmp(s), cf = tmp(s), m = tmp(s);
        ir_binop(s->b, IR_AND, IR_I64, pos, bit, cst(s, bits - 1));
        ir_binop(s->b, IR_SHR, IR_I64, cf, v, pos);
        ir_binop(s->b, IR_AND, IR_I64, cf, cf, cst(s, 1));
        ir_binop(s->b, IR_SHL, IR_I64, m, cst(s, 1), pos);
        if (kind == BITTEST_BTR)
            ir_unop(s->b, IR_NOT, IR_I64, m, m);
        ir_binop(s->b,
                 kind == BITTEST_BTS   ? IR_OR
                 : kind == BITTEST_BTR ? IR_AND
                 : kind == BITTEST_BTC ? IR_XOR
                                       : IR_OR,
                 IR_I64, r, v, kind == BITTEST_BT ? cst(s, 0) : m);
        ir_mov(s->b, IR_I64, G_CC_OP, gen_cc_op_rot(s, cf, IR_NO_TEMP));
        forget_cc_op(s, CC_OP_DYNAMIC);
        if (kind != BITTEST_BT && !atomic) {
            if (addr != IR_NO_TEMP)
                gen_store(s, addr, r, bits);
            else
                store_operand(s, 0, NULL, r);
        }
        break;
    }
    case X86_MN_BSF:
    case X86_MN_BSR:
    case X86_MN_TZCNT:
    case X86_MN_LZCNT:
    case X86_MN_POPCNT: {
        int kind = mn == X86_MN_BSF     ? SCAN_BSF
                   : mn == X86_MN_BSR   ? SCAN_BSR
                   : mn == X86_MN_TZCNT ? SCAN_TZCNT
                   : mn == X86_MN_LZCNT ? SCAN_LZCNT
                                        : SCAN_POPCNT;
        ir_temp src = load_operand(s, 1, NULL);
        ir_temp old = load_operand(s, 0, NULL);
        /* BSF/BSR of 0 leave the whole destination unchanged (AMD documents it; Intel says
         * undefined): a 32-bit one keeps its upper half too, so pass and store 64 bits. */
        bool keep64 = (kind == SCAN_BSF || kind == SCAN_BSR) && bits == 32;
        if (keep64)
            old = gpr(in->operand[0].reg);
        ir_temp r = tmp(s);
        if (bits >= 32 && kind != SCAN_POPCNT) {
            gen_bitscan_inline(s, kind, bits, r, src, old);
        } else {
            sync_cc_op(s);
            gen_call(s, HELPER_bitscan, r, src, old,
                     cst(s, (uint64_t)kind | (uint64_t)(bits / 8) << 8), IR_NO_TEMP);
            forget_cc_op(s, CC_OP_DYNAMIC);
        }
        if (keep64)
            store_reg(s, in->operand[0].reg, 64, false, r);
        else
            store_operand(s, 0, NULL, r);
        break;
    }
    case X86_MN_PUSH: {
        ir_temp v = load_operand(s, 0, NULL);
        gen_push(s, v, bits);
        break;
    }
    case X86_MN_POP: {
        const struct x86_operand *o = &in->operand[0];
        if (o->kind == X86_OPND_REG && o->reg_class == X86_RC_SEG) {
            ir_temp v = gen_stack_peek(s, bits, 0);
            gen_call(s, HELPER_load_seg, IR_NO_TEMP, cst(s, o->reg), v, IR_NO_TEMP, IR_NO_TEMP);
            gen_stack_adjust(s, bits / 8);
            gen_jump_const(s, s->next_ip, 0); /* mode may have changed (SS.B) */
            break;
        }
        /* POP to memory computes its address after RSP was incremented. */
        ir_temp v = gen_stack_peek(s, bits, 0);
        gen_stack_adjust(s, bits / 8);
        store_operand(s, 0, NULL, v);
        break;
    }
    case X86_MN_PUSHF: {
        sync_cc_op(s);
        ir_temp f = tmp(s);
        gen_call(s, HELPER_read_eflags, f, IR_NO_TEMP, IR_NO_TEMP, IR_NO_TEMP, IR_NO_TEMP);
        ir_binop(s->b, IR_AND, IR_I64, f, f, cst(s, ~(uint64_t)(X86_VM | X86_RF)));
        gen_push(s, f, bits);
        break;
    }
    case X86_MN_POPF: {
        ir_temp v = gen_stack_peek(s, bits, 0);
        gen_call(s, HELPER_write_eflags, IR_NO_TEMP, v, cst(s, bits / 8), IR_NO_TEMP, IR_NO_TEMP);
        gen_stack_adjust(s, bits / 8);
        forget_cc_op(s, CC_OP_EFLAGS);
        gen_jump_const(s, s->next_ip, 0); /* IF/TF may have changed */
        break;
    }
    case X86_MN_LAHF: {
        sync_cc_op(s);
        ir_temp f = tmp(s);
        gen_call(s, HELPER_read_eflags, f, IR_NO_TEMP, IR_NO_TEMP, IR_NO_TEMP, IR_NO_TEMP);
        ir_deposit(s->b, IR_I64, gpr(GPR_RAX), gpr(GPR_RAX), f, 8, 8);
        break;
    }
    case X86_MN_SAHF: {
        ir_temp f = gen_materialize_flags(s);
        ir_temp ah = tmp(s);
        ir_extract(s->b, IR_I64, ah, gpr(GPR_RAX), 8, 8);
        uint64_t low = X86_CF | X86_PF | X86_AF | X86_ZF | X86_SF;
        ir_binop(s->b, IR_AND, IR_I64, ah, ah, cst(s, low));
        ir_binop(s->b, IR_AND, IR_I64, f, f, cst(s, ~low));
        ir_binop(s->b, IR_OR, IR_I64, G_CC_SRC, f, ah);
        break;
    }
    case X86_MN_CLC:
    case X86_MN_STC:
    case X86_MN_CMC: {
        ir_temp f = gen_materialize_flags(s);
        if (mn == X86_MN_CLC)
            ir_binop(s->b, IR_AND, IR_I64, G_CC_SRC, f, cst(s, ~(uint64_t)X86_CF));
        else if (mn == X86_MN_STC)
            ir_binop(s->b, IR_OR, IR_I64, G_CC_SRC, f, cst(s, X86_CF));
        else
            ir_binop(s->b, IR_XOR, IR_I64, G_CC_SRC, f, cst(s, X86_CF));
        break;
    }
    case X86_MN_CLD:
        ir_binop(s->b, IR_AND, IR_I64, G_EFLAGS, G_EFLAGS, cst(s, ~(uint64_t)X86_DF));
        break;
    case X86_MN_STD:
        ir_binop(s->b, IR_OR, IR_I64, G_EFLAGS, G_EFLAGS, cst(s, X86_DF));
        break;
    case X86_MN_CLI:
        gen_call(s, HELPER_cli, IR_NO_TEMP, IR_NO_TEMP, IR_NO_TEMP, IR_NO_TEMP, IR_NO_TEMP);
        break;
    case X86_MN_STI:
        /* The interrupt shadow: the run loop lets one more block run before interrupts. */
        gen_call(s, HELPER_sti, IR_NO_TEMP, IR_NO_TEMP, IR_NO_TEMP, IR_NO_TEMP, IR_NO_TEMP);
        gen_jump_const(s, s->next_ip, 0);
        break;
    case X86_MN_JMP:
        if (in->operand[0].kind == X86_OPND_REL) {
            gen_jump_direct(s, rel_target(s), 0);
        } else {
            ir_temp t = load_operand(s, 0, NULL);
            gen_jump_reg(s, t);
        }
        break;
    case X86_MN_JCC: {
        ir_temp c = gen_condition(s, in->cc);
        gen_branch_cond(s, c, rel_target(s), s->next_ip);
        break;
    }
    case X86_MN_CALL: {
        ir_temp target;
        if (in->operand[0].kind == X86_OPND_REL) {
            target = cst(s, rel_target(s));
        } else {
            target = tmp(s);
            gen_zext(s, target, load_operand(s, 0, NULL), bits);
        }
        gen_push(s, cst(s, s->next_ip & ip_mask(s, bits)), bits);
        s->call = true;
        if (in->operand[0].kind == X86_OPND_REL)
            gen_jump_direct(s, rel_target(s), 0);
        else
            gen_jump_reg(s, target);
        break;
    }
    case X86_MN_RET: {
        ir_temp t = gen_pop(s, bits);
        if (in->nr_operands == 1)
            gen_stack_adjust(s, in->imm & 0xffff);
        s->ret = true;
        gen_jump_reg(s, t);
        break;
    }
    case X86_MN_LEAVE: {
        unsigned sb = stack_bits(s);
        store_reg(s, GPR_RSP, sb, false, load_reg(s, GPR_RBP, sb, false));
        ir_temp v = gen_pop(s, bits);
        store_reg(s, GPR_RBP, bits, false, v);
        break;
    }
    case X86_MN_ENTER:
        gen_call(s, HELPER_enter, IR_NO_TEMP, cst(s, in->imm & 0xffff), cst(s, in->imm2 & 0x1f),
                 cst(s, bits / 8), IR_NO_TEMP);
        break;
    case X86_MN_PUSHA:
    case X86_MN_POPA:
        gen_call(s, mn == X86_MN_PUSHA ? HELPER_pusha : HELPER_popa, IR_NO_TEMP, cst(s, bits / 8),
                 IR_NO_TEMP, IR_NO_TEMP, IR_NO_TEMP);
        break;
    case X86_MN_LOOP:
    case X86_MN_LOOPE:
    case X86_MN_LOOPNE:
    case X86_MN_JRCXZ:
        gen_loop(s, mn);
        break;
    case X86_MN_SETCC: {
        ir_temp c = gen_condition(s, in->cc);
        store_operand(s, 0, NULL, c);
        break;
    }
    case X86_MN_CMOVCC: {
        ir_temp c = gen_condition(s, in->cc);
        ir_temp v = load_operand(s, 1, NULL);
        ir_temp old = load_reg(s, in->operand[0].reg, bits, false);
        ir_temp r = tmp(s);
        /* A 32-bit CMOV zero-extends the destination even when the condition is false. */
        ir_movcond(s->b, IR_I64, IR_COND_NE, r, c, cst(s, 0), v, old);
        store_reg(s, in->operand[0].reg, bits, false, r);
        break;
    }
    case X86_MN_XLAT: {
        ir_temp ea = tmp(s), al = load_reg(s, GPR_RAX, 8, false);
        ir_binop(s->b, IR_ADD, IR_I64, ea, gpr(GPR_RBX), al);
        if (in->addr_size < 64)
            gen_zext(s, ea, ea, in->addr_size);
        unsigned seg = in->prefix.seg != X86_SEG_NONE ? in->prefix.seg : SEG_DS;
        ir_temp v = gen_load(s, gen_linear(s, ea, seg), 8);
        store_reg(s, GPR_RAX, 8, false, v);
        break;
    }
    case X86_MN_MOVS:
    case X86_MN_CMPS:
    case X86_MN_STOS:
    case X86_MN_LODS:
    case X86_MN_SCAS:
    case X86_MN_INS:
    case X86_MN_OUTS:
        gen_movs_family(s, mn);
        break;
    case X86_MN_IN:
    case X86_MN_OUT:
        gen_in_out(s, mn == X86_MN_IN);
        break;
    case X86_MN_PAUSE:
        if (s->cpu->oversubscribed)
            gen_call(s, HELPER_pause, IR_NO_TEMP, IR_NO_TEMP, IR_NO_TEMP, IR_NO_TEMP, IR_NO_TEMP);
        break;
    case X86_MN_NOP:
    case X86_MN_PREFETCH:
    case X86_MN_PREFETCHW:
    case X86_MN_PREFETCHNTA:
    case X86_MN_PREFETCHT0:
    case X86_MN_PREFETCHT1:
    case X86_MN_PREFETCHT2:
    case X86_MN_LFENCE: /* the host is x86 too (TSO): only stores then loads can pass */
    case X86_MN_SFENCE:
    case X86_MN_CLFLUSH:
    case X86_MN_CLFLUSHOPT:
    case X86_MN_CLWB:
        break; /* no caches to model */
    case X86_MN_MFENCE:
        gen_call(s, HELPER_fence, IR_NO_TEMP, IR_NO_TEMP, IR_NO_TEMP, IR_NO_TEMP, IR_NO_TEMP);
        break;
    case X86_MN_HLT:
        if (privileged(s)) {
            gen_raise(s, X86_EXC_GP);
            break;
        }
        gen_call(s, HELPER_hlt, IR_NO_TEMP, cst(s, s->next_ip), IR_NO_TEMP, IR_NO_TEMP, IR_NO_TEMP);
        ir_exit_tb(s->b, IR_EXIT_NEXT);
        s->end = true;
        break;
    case X86_MN_CPUID:
        gen_call(s, HELPER_cpuid, IR_NO_TEMP, IR_NO_TEMP, IR_NO_TEMP, IR_NO_TEMP, IR_NO_TEMP);
        break;
    case X86_MN_RDTSC:
    case X86_MN_RDTSCP:
        gen_call(s, HELPER_rdtsc, IR_NO_TEMP, cst(s, mn == X86_MN_RDTSCP), IR_NO_TEMP, IR_NO_TEMP,
                 IR_NO_TEMP);
        break;
    case X86_MN_RDMSR:
    case X86_MN_WRMSR:
        gen_call(s, mn == X86_MN_RDMSR ? HELPER_rdmsr : HELPER_wrmsr, IR_NO_TEMP, IR_NO_TEMP,
                 IR_NO_TEMP, IR_NO_TEMP, IR_NO_TEMP);
        if (mn == X86_MN_WRMSR)
            gen_jump_const(s, s->next_ip, 0); /* EFER and friends change modes */
        break;
    case X86_MN_INT1:
        sync_cc_op(s);
        gen_call(s, HELPER_icebp, IR_NO_TEMP, cst(s, s->next_ip), IR_NO_TEMP, IR_NO_TEMP,
                 IR_NO_TEMP);
        ir_exit_tb(s->b, IR_EXIT_NEXT);
        s->end = true;
        break;
    case X86_MN_INT:
    case X86_MN_INT3:
    case X86_MN_INTO: {
        uint64_t vector = mn == X86_MN_INT ? (in->imm & 0xff) : mn == X86_MN_INT3 ? 3 : 4;
        if (mn == X86_MN_INTO) {
            ir_temp of = gen_condition(s, 0);
            ir_label skip = ir_new_label(s->b);
            ir_brcond(s->b, IR_I64, IR_COND_EQ, of, cst(s, 0), skip);
            gen_call(s, HELPER_soft_int, IR_NO_TEMP, cst(s, vector), cst(s, s->next_ip), IR_NO_TEMP,
                     IR_NO_TEMP);
            ir_label_here(s->b, skip);
            gen_jump_const(s, s->next_ip, 0);
            break;
        }
        sync_cc_op(s);
        gen_call(s, HELPER_soft_int, IR_NO_TEMP, cst(s, vector), cst(s, s->next_ip), IR_NO_TEMP,
                 IR_NO_TEMP);
        ir_exit_tb(s->b, IR_EXIT_NEXT);
        s->end = true;
        break;
    }
    case X86_MN_IRET:
        sync_cc_op(s);
        gen_call(s, HELPER_iret, IR_NO_TEMP, cst(s, bits / 8), IR_NO_TEMP, IR_NO_TEMP, IR_NO_TEMP);
        forget_cc_op(s, CC_OP_EFLAGS);
        ir_exit_tb(s->b, IR_EXIT_NEXT);
        s->end = true;
        break;
    case X86_MN_JMPF:
    case X86_MN_CALLF: {
        ir_temp sel, off;
        if (in->operand[0].kind == X86_OPND_FAR) {
            sel = cst(s, in->far_selector);
            off = cst(s, in->imm & size_mask(bits));
        } else {
            ir_temp addr = gen_mem_addr(s);
            off = gen_load(s, addr, bits);
            ir_temp a2 = tmp(s);
            ir_binop(s->b, IR_ADD, IR_I64, a2, addr, cst(s, bits / 8));
            sel = gen_load(s, a2, 16);
        }
        sync_cc_op(s);
        gen_call(s, HELPER_far_jump, IR_NO_TEMP, sel, off, cst(s, s->next_ip),
                 cst(s, (uint64_t)(mn == X86_MN_CALLF) | (uint64_t)(bits / 8) << 8));
        ir_exit_tb(s->b, IR_EXIT_NEXT);
        s->end = true;
        break;
    }
    case X86_MN_RETF:
        sync_cc_op(s);
        gen_call(s, HELPER_far_ret, IR_NO_TEMP, cst(s, bits / 8),
                 cst(s, in->nr_operands ? (in->imm & 0xffff) : 0), IR_NO_TEMP, IR_NO_TEMP);
        ir_exit_tb(s->b, IR_EXIT_NEXT);
        s->end = true;
        break;
    case X86_MN_MOV_SREG:
        if (in->operand[0].kind == X86_OPND_REG && in->operand[0].reg_class == X86_RC_SEG) {
            ir_temp v = load_operand(s, 1, NULL);
            sync_cc_op(s);
            gen_call(s, HELPER_load_seg, IR_NO_TEMP, cst(s, in->operand[0].reg), v, IR_NO_TEMP,
                     IR_NO_TEMP);
            gen_jump_const(s, s->next_ip, 0); /* segment attributes are part of the mode */
        } else {
            ir_temp v = load_operand(s, 1, NULL);
            /* MOV r32, Sreg zero-extends; to memory it is always 16 bits. */
            if (in->operand[0].kind == X86_OPND_MEM)
                gen_store(s, gen_mem_addr(s), v, 16);
            else
                store_reg(s, in->operand[0].reg, bits, false, v);
        }
        break;
    case X86_MN_LDS:
    case X86_MN_LES:
    case X86_MN_LFS:
    case X86_MN_LGS:
    case X86_MN_LSS: {
        unsigned seg = mn == X86_MN_LDS   ? SEG_DS
                       : mn == X86_MN_LES ? SEG_ES
                       : mn == X86_MN_LFS ? SEG_FS
                       : mn == X86_MN_LGS ? SEG_GS
                                          : SEG_SS;
        ir_temp addr = gen_mem_addr(s);
        ir_temp off = gen_load(s, addr, bits);
        ir_temp a2 = tmp(s);
        ir_binop(s->b, IR_ADD, IR_I64, a2, addr, cst(s, bits / 8));
        ir_temp sel = gen_load(s, a2, 16);
        sync_cc_op(s);
        gen_call(s, HELPER_load_seg, IR_NO_TEMP, cst(s, seg), sel, IR_NO_TEMP, IR_NO_TEMP);
        store_reg(s, in->operand[0].reg, bits, false, off);
        gen_jump_const(s, s->next_ip, 0);
        break;
    }
    case X86_MN_LGDT:
    case X86_MN_LIDT:
    case X86_MN_SGDT:
    case X86_MN_SIDT: {
        bool load = mn == X86_MN_LGDT || mn == X86_MN_LIDT;
        unsigned which = (mn == X86_MN_LIDT || mn == X86_MN_SIDT) ? 1 : 0;
        if (load && privileged(s)) {
            gen_raise(s, X86_EXC_GP);
            break;
        }
        ir_temp addr = gen_mem_addr(s);
        gen_call(s, load ? HELPER_lgdt_lidt : HELPER_sgdt_sidt, IR_NO_TEMP, addr,
                 cst(s, which | (uint64_t)(bits / 8) << 8), IR_NO_TEMP, IR_NO_TEMP);
        break;
    }
    case X86_MN_LLDT:
    case X86_MN_LTR: {
        ir_temp v = load_operand(s, 0, NULL);
        gen_call(s, HELPER_ltr_lldt, IR_NO_TEMP, v, cst(s, mn == X86_MN_LTR), IR_NO_TEMP,
                 IR_NO_TEMP);
        break;
    }
    case X86_MN_VERR:
    case X86_MN_VERW: {
        ir_temp v = load_operand(s, 0, NULL);
        sync_cc_op(s);
        gen_call(s, HELPER_verr_verw, IR_NO_TEMP, v, cst(s, mn == X86_MN_VERW), IR_NO_TEMP,
                 IR_NO_TEMP);
        forget_cc_op(s, CC_OP_EFLAGS);
        break;
    }
    case X86_MN_SLDT:
    case X86_MN_STR: {
        ir_temp v = tmp(s);
        gen_call(s, HELPER_str_sldt, v, cst(s, mn == X86_MN_STR), IR_NO_TEMP, IR_NO_TEMP,
                 IR_NO_TEMP);
        if (in->operand[0].kind == X86_OPND_MEM)
            gen_store(s, gen_mem_addr(s), v, 16);
        else
            store_operand(s, 0, NULL, v);
        break;
    }
    case X86_MN_MOV_CR:
        if (privileged(s)) {
            gen_raise(s, X86_EXC_GP);
            break;
        }
        if (in->operand[0].reg_class == X86_RC_CR) {
            ir_temp v = load_operand(s, 1, NULL);
            sync_cc_op(s);
            gen_call(s, HELPER_mov_to_cr, IR_NO_TEMP, cst(s, in->operand[0].reg), v, IR_NO_TEMP,
                     IR_NO_TEMP);
            gen_jump_const(s, s->next_ip, 0); /* paging and mode bits change translation */
        } else {
            ir_temp v = tmp(s);
            gen_call(s, HELPER_mov_from_cr, v, cst(s, in->operand[1].reg), IR_NO_TEMP, IR_NO_TEMP,
                     IR_NO_TEMP);
            store_reg(s, in->operand[0].reg, in->operand[0].size, false, v);
        }
        break;
    case X86_MN_MOV_DR:
        if (in->operand[0].reg_class == X86_RC_DR) {
            ir_temp v = load_operand(s, 1, NULL);
            gen_call(s, HELPER_mov_dr, IR_NO_TEMP, cst(s, in->operand[0].reg), v, cst(s, 1),
                     IR_NO_TEMP);
            gen_jump_const(s, s->next_ip, 0); /* breakpoints may have changed (debug.h) */
        } else {
            ir_temp v = tmp(s);
            gen_call(s, HELPER_mov_dr, v, cst(s, in->operand[1].reg), cst(s, 0), cst(s, 0),
                     IR_NO_TEMP);
            store_reg(s, in->operand[0].reg, in->operand[0].size, false, v);
        }
        break;
    case X86_MN_SMSW: {
        ir_temp v = tmp(s);
        gen_call(s, HELPER_mov_from_cr, v, cst(s, 0), IR_NO_TEMP, IR_NO_TEMP, IR_NO_TEMP);
        if (in->operand[0].kind == X86_OPND_MEM)
            gen_store(s, gen_mem_addr(s), v, 16);
        else
            store_operand(s, 0, NULL, v);
        break;
    }
    case X86_MN_LMSW: {
        if (privileged(s)) {
            gen_raise(s, X86_EXC_GP);
            break;
        }
        ir_temp v = load_operand(s, 0, NULL);
        gen_call(s, HELPER_lmsw, IR_NO_TEMP, v, IR_NO_TEMP, IR_NO_TEMP, IR_NO_TEMP);
        gen_jump_const(s, s->next_ip, 0);
        break;
    }
    case X86_MN_CLTS:
        if (privileged(s)) {
            gen_raise(s, X86_EXC_GP);
            break;
        }
        /* CR number 0x100 asks the helper to clear CR0.TS only. */
        gen_call(s, HELPER_mov_to_cr, IR_NO_TEMP, cst(s, 0x100), cst(s, 0), IR_NO_TEMP, IR_NO_TEMP);
        gen_jump_const(s, s->next_ip, 0); /* HF_SSE may change */
        break;
    case X86_MN_INVLPG:
        if (privileged(s)) {
            gen_raise(s, X86_EXC_GP);
            break;
        }
        gen_call(s, HELPER_invlpg, IR_NO_TEMP, gen_mem_addr(s), IR_NO_TEMP, IR_NO_TEMP, IR_NO_TEMP);
        gen_jump_const(s, s->next_ip, 0);
        break;
    case X86_MN_WBINVD:
    case X86_MN_INVD:
        if (privileged(s))
            gen_raise(s, X86_EXC_GP);
        else
            gen_call(s, HELPER_fence, IR_NO_TEMP, IR_NO_TEMP, IR_NO_TEMP, IR_NO_TEMP, IR_NO_TEMP);
        break;
    case X86_MN_SYSCALL:
    case X86_MN_SYSRET:
    case X86_MN_SYSENTER:
    case X86_MN_SYSEXIT:
    case X86_MN_SWAPGS: {
        int kind = mn == X86_MN_SYSCALL    ? SYS_SYSCALL
                   : mn == X86_MN_SYSRET   ? SYS_SYSRET
                   : mn == X86_MN_SYSENTER ? SYS_SYSENTER
                   : mn == X86_MN_SYSEXIT  ? SYS_SYSEXIT
                                           : SYS_SWAPGS;
        sync_cc_op(s);
        gen_call(s, HELPER_sysenter_family, IR_NO_TEMP,
                 cst(s, (uint64_t)kind | (uint64_t)(bits / 8) << 8), cst(s, s->next_ip), IR_NO_TEMP,
                 IR_NO_TEMP);
        if (kind == SYS_SWAPGS)
            break;
        forget_cc_op(s, CC_OP_DYNAMIC);
        ir_exit_tb(s->b, IR_EXIT_NEXT);
        s->end = true;
        break;
    }
    case X86_MN_SSE:
    case X86_MN_X87:
    case X86_MN_WAIT:
    case X86_MN_FXSAVE:
    case X86_MN_STMXCSR:
        gen_fpu_sse(s);
        break;
    case X86_MN_FXRSTOR:
    case X86_MN_LDMXCSR:
        gen_fpu_sse(s);
        gen_jump_const(s, s->next_ip, 0); /* HF_MXFAST may change */
        break;
    case X86_MN_UD0:
    case X86_MN_UD1:
    case X86_MN_UD2:
    default:
        /* Anything not implemented is an invalid opcode to the guest, never a host abort. */
        gen_raise(s, X86_EXC_UD);
        break;
    }
}

/* --- block driver ------------------------------------------------------------------------ */

void x86_translate_init(struct ir_block *block)
{
    ir_block_init(block, tcg_globals, NR_TCG_GLOBALS, x86_helper_table, X86_NR_HELPERS);
}

/* The block relied on cc_op being its value at translation: the placeholder at the start
 * becomes "if (cc_op != it) leave for the run loop", which looks up (or translates) the
 * block for the cc_op there is. */
static int assume_entry_cc_op(struct dc *s, uint32_t placeholder)
{
    const struct ir_block *b = s->b;
    if (placeholder >= b->nr_ops || b->ops[placeholder].opc != IR_NOP)
        return -1;
    int op = (int)s->cpu->cc_op;
    ir_label leave = ir_new_label(s->b);
    ir_temp expected = cst(s, (uint64_t)op);
    ir_label_here(s->b, leave);
    ir_exit_tb(s->b, IR_EXIT_NEXT);
    struct ir_op *guard = &s->b->ops[placeholder];
    guard->opc = IR_BRCOND, guard->type = IR_I64, guard->cond = IR_COND_NE;
    guard->args[0] = G_CC_OP, guard->args[1] = expected, guard->imm = leave;
    return op;
}

int x86_translate_block(struct tcg_cpu *cpu, struct ir_block *block, uint64_t cs_base, uint64_t rip,
                        uint32_t hflags, unsigned max_insns, struct x86_translate_info *info)
{
    bool whole_blocks = max_insns == 0;
    if (max_insns == 0 || max_insns > MAX_INSNS_PER_TB)
        max_insns = MAX_INSNS_PER_TB;
    x86_translate_init(block);
    struct dc s = {
        .b = block,
        .cpu = cpu,
        .cs_base = cs_base,
        .ip = rip,
        .hflags = hflags,
        .mode = (hflags & HF_CS64)   ? X86_MODE_64
                : (hflags & HF_CS32) ? X86_MODE_32
                                     : X86_MODE_16,
        .cc_op = CC_OP_DYNAMIC,
        .fpenv_at = -1,
    };
    uint64_t first_page = (cs_base + rip) & ~0xfffULL;
    if (s.mode != X86_MODE_64)
        first_page &= 0xffffffffULL;
    s.first_page = first_page;
    /* Translate for the lazy-flags op the vCPU has now: a block that starts by reading the
     * flags (a loop head's Jcc, INC/DEC's carry) then tests them inline, and checks the
     * assumption on entry (assume_entry_cc_op). */
    int entry_placeholder = -1;
    if (cpu->cc_op < CC_OP_BLSx) {
        s.cc_op = (int)cpu->cc_op, s.cc_op_is_entry = true;
        entry_placeholder = ir_emit(block, IR_NOP, IR_I64, IR_COND_ALWAYS, NULL, 0, 0);
    }
    s.start_cc_op = s.cc_op;
    s.start_ip = rip;
    struct spec_point spec_storage;
    s.spec_storage = &spec_storage;
    /* Loops stay in the block, except where the run loop must see every pass: one
     * instruction at a time (single step, self-modifying code) or a breakpoint there. The
     * head's label takes this NOP's place at the first jump back (an unused label would cost
     * the optimiser a round). */
    s.loop_head = IR_NO_LABEL;
    s.loop_head_at = -1;
    if (whole_blocks &&
        !tcg_debug_break_at(cpu_vcpu(cpu)->vm, first_page | ((cs_base + rip) & 0xfff))) {
        s.loop_head_at = ir_emit(block, IR_NOP, IR_I64, IR_COND_ALWAYS, NULL, 0, 0);
    }
    info->entry_cc_op = -1;
    info->guest_size = 0;
    info->nr_insns = 0;
    info->last_byte = cs_base + rip;
    info->ends_with_call = info->ends_with_ret = false;
    info->call_return = 0;
    for (unsigned n = 0; n < max_insns && !s.end; n++) {
        uint64_t linear = cs_base + s.ip;
        if (s.mode != X86_MODE_64)
            linear &= 0xffffffffULL;
        /* Stop before running short of IR room or leaving the first page (a block spans at
         * most two pages: its last instruction may cross). */
        if (n > 0 && (block->nr_ops + OPS_PER_INSN_RESERVE > IR_MAX_OPS ||
                      block->nr_temps + TEMPS_PER_INSN_RESERVE > IR_MAX_TEMPS ||
                      (linear & ~0xfffULL) != first_page ||
                      tcg_debug_break_at(cpu_vcpu(cpu)->vm, linear))) { /* see debug.h */
            gen_jump_const(&s, s.ip, 0);
            break;
        }
        uint8_t bytes[X86_MAX_INSN_LENGTH];
        size_t got;
        if (n == 0) {
            got = mmu_fetch_code(cpu, linear, bytes, sizeof(bytes)); /* faults if unmapped */
            uint64_t paddr; /* the rest of the page is read from memory directly */
            if (mmu_probe(cpu, linear, MMU_EXEC, &paddr))
                s.page_host = gpa_to_host(cpu_vcpu(cpu)->vm->mem, paddr & ~0xfffULL, 0x1000);
        } else {
            /* Later instructions must not fault here: end the block instead, so the fault is
             * raised when that instruction really executes. */
            got = fetch_later_insn(&s, linear, bytes);
            if (!got) {
                gen_jump_const(&s, s.ip, 0);
                break;
            }
        }
        struct x86_decoded_insn insn;
        int rc = x86_decode(bytes, got, s.mode, &insn);
        ir_insn_start(block, linear);
        if (n > 0) /* the block is entered with RIP at its first instruction */
            gen_set_rip_const(&s, s.ip);
        if (rc < 0) {
            if (rc == X86_DECODE_NEED_MORE && n > 0) {
                /* The rest is on a page that is not mapped yet: execute up to here. */
                gen_jump_const(&s, s.ip, 0);
                break;
            }
            s.insn = &insn;
            if (rc == X86_DECODE_NEED_MORE) {
                /* First instruction straddles into an unmapped page: touching it raises the
                 * page fault with the right address. */
                mmu_fetch_code(cpu, linear + got, bytes, 1);
            }
            memset(&insn, 0, sizeof(insn));
            gen_raise(&s, X86_EXC_UD);
            info->nr_insns++;
            info->last_byte = linear;
            break;
        }
        s.insn = &insn;
        s.next_ip = (s.ip + insn.length) & (s.mode == X86_MODE_64 ? ~0ULL : 0xffffffffULL);
        if (s.mode == X86_MODE_16)
            s.next_ip &= 0xffff;
        s.insn_no = n;
        s.insn_last_byte = linear + insn.length - 1;
        translate_insn(&s);
        info->nr_insns++;
        info->last_byte = linear + insn.length - 1;
        s.ip = s.next_ip;
        if (block->overflow)
            return -1;
    }
    if (s.spec && s.loop_closed)
        gen_side_exits(&s);
    else if (s.spec)
        spec_rollback(&s, info);
    if (!s.end)
        gen_jump_direct(&s, s.ip, 0);
    if (s.entry_cc_used && entry_placeholder >= 0)
        info->entry_cc_op = assume_entry_cc_op(&s, (uint32_t)entry_placeholder);
    for (unsigned k = 0; k < IR_MAX_GOTO_SLOTS; k++)
        info->chain_same_page[k] = s.slot_same_page[k];
    if (s.mode == X86_MODE_64) {
        info->ends_with_call = s.call;
        info->ends_with_ret = s.ret;
        info->call_return = s.ip; /* after the last instruction */
    }
    info->guest_size = (uint32_t)(info->last_byte - (cs_base + rip) + 1);
    return block->overflow ? -1 : 0;
}
