/* x86 front end: SSE (and the x87/MMX fallbacks) -> IR. Moves, 64-bit lane logic and the
 * bit tricks of PCMPEQB/PMOVMSKB are plain IR; scalar and packed arithmetic, conversions and
 * compares are the host's own instructions (IR_FPOP, IR_VOP) under the guest's MXCSR while
 * every exception is masked; the rest goes to the C helpers (sse.c, fpu.c, mmx.c). */
#include "accel/tcg/x86/translate_internal.h"

#include "accel/tcg/ir/fpenv.h"
#include "accel/tcg/ir/vecop.h"
#include "accel/tcg/tcg_internal.h"
#include "accel/tcg/x86/fpu.h"

#include <stddef.h>

/* --- SSE moves and 64-bit-lane integer ops inline ---------------------------------------------
 * The commonest SSE instructions of compiled code (MOVAPS/MOVDQU/MOVSD/MOVQ/MOVD, the bitwise
 * ops, PADDQ/PSUBQ, PADDD/PSUBD) move or combine 64-bit halves of XMM registers in env: they
 * are translated to IR loads/stores instead of the helper. Translated only under HF_SSE (the
 * availability checks hold for the block). A 16-byte access that is misaligned (the aligned
 * forms: #GP) or crosses a page (all-or-nothing faults) takes the helper at run time. */

/* addr + n for the second half of a 16-byte access (checked not to cross a page). */
static ir_temp addr_plus(struct dc *s, ir_temp addr, uint64_t n)
{
    ir_temp t = tmp(s);
    ir_binop(s->b, IR_ADD, IR_I64, t, addr, cst(s, n));
    return t;
}

/* XMM halves are IR globals: the backend keeps them in host registers like GPRs. */
static ir_temp xmm_ld(struct dc *s, unsigned reg, unsigned half)
{
    ir_temp t = tmp(s);
    ir_mov(s->b, IR_I64, t, (ir_temp)(G_XMM0 + 2 * (reg & 15) + (half & 1)));
    return t;
}

static void xmm_st(struct dc *s, unsigned reg, unsigned half, ir_temp v)
{
    ir_mov(s->b, IR_I64, (ir_temp)(G_XMM0 + 2 * (reg & 15) + (half & 1)), v);
}

/* A 16-byte memory operand the inline code takes only when it is aligned (else, or where
 * `page_only`, when it does not cross a page); the other case runs the whole instruction in
 * the helper, which raises #GP for a misaligned operand of an aligned form. */
struct sse_fallback {
    ir_label slow, done;
};

static struct sse_fallback sse_fallback_unless(struct dc *s, ir_temp addr, bool page_only)
{
    struct sse_fallback f = {ir_new_label(s->b), ir_new_label(s->b)};
    if (page_only) {
        ir_temp off = tmp(s);
        ir_binop(s->b, IR_AND, IR_I64, off, addr, cst(s, 0xfff));
        ir_brcond(s->b, IR_I64, IR_COND_GTU, off, cst(s, 0xff0), f.slow);
    } else {
        ir_brcond(s->b, IR_I64, IR_COND_TSTNE, addr, cst(s, 15), f.slow);
    }
    return f;
}

/* After the inline code: the helper's path, and where both continue. */
static void sse_fallback_end(struct dc *s, struct sse_fallback f, ir_temp addr)
{
    ir_br(s->b, f.done);
    ir_label_here(s->b, f.slow);
    gen_call(s, HELPER_fpu_sse, IR_NO_TEMP, cst(s, x86_fpu_desc(s->insn)), addr, IR_NO_TEMP,
             IR_NO_TEMP);
    ir_label_here(s->b, f.done);
}

/* HELPER_sse_fp left its result in cpu->sse_result: into the destination register. */
static void sse_fp_result(struct dc *s, unsigned reg)
{
    for (unsigned half = 0; half < 2; half++) {
        ir_temp t = tmp(s);
        ir_ldenv(s->b, t, (uint32_t)(offsetof(struct tcg_cpu, sse_result) + 8 * half));
        xmm_st(s, reg, half, t);
    }
}

enum sse_inline_kind {
    SI_NONE,
    SI_LOAD128,  /* xmm = r/m128 */
    SI_STORE128, /* r/m128 = xmm */
    SI_MOVS,     /* MOVSS/MOVSD load (F3: 4 bytes, F2: 8) */
    SI_MOVS_ST,  /* MOVSS/MOVSD store */
    SI_MOVQ_LD,  /* F3 0F 7E: xmm = zext r/m64 */
    SI_MOVQ_ST,  /* 66 0F D6: r/m64 = xmm low, register form zeroes the high half */
    SI_MOVD_LD,  /* 66 0F 6E */
    SI_MOVD_ST,  /* 66 0F 7E */
    SI_LANES,    /* two-operand op on 64-bit halves, r/m128 aligned */
    SI_HALF_LD,  /* MOVLPS/MOVLPD/MOVHPS/MOVHPD xmm, m64; MOVHLPS/MOVLHPS xmm, xmm */
    SI_HALF_ST,  /* MOVLPS/MOVLPD/MOVHPS/MOVHPD m64, xmm */
};

static enum sse_inline_kind sse_inline_kind(unsigned opc, unsigned mp, bool *aligned)
{
    *aligned = false;
    bool np66 = mp == X86_MP_NONE || mp == X86_MP_66;
    switch (opc) {
    case 0x12: /* the register forms (MOVHLPS/MOVLHPS) have no 66 variant: the helper's #UD */
    case 0x16:
        return np66 ? SI_HALF_LD : SI_NONE;
    case 0x13:
    case 0x17:
        return np66 ? SI_HALF_ST : SI_NONE;
    case 0x10:
        return np66 ? SI_LOAD128 : SI_MOVS;
    case 0x11:
        return np66 ? SI_STORE128 : SI_MOVS_ST;
    case 0x28:
        *aligned = true;
        return np66 ? SI_LOAD128 : SI_NONE;
    case 0x29:
    case 0x2b:
        *aligned = true;
        return np66 ? SI_STORE128 : SI_NONE;
    case 0x6f:
    case 0x7f:
        *aligned = mp == X86_MP_66;
        if (mp != X86_MP_66 && mp != X86_MP_F3)
            return SI_NONE;
        return opc == 0x6f ? SI_LOAD128 : SI_STORE128;
    case 0xe7:
        *aligned = true;
        return mp == X86_MP_66 ? SI_STORE128 : SI_NONE;
    case 0x7e:
        return mp == X86_MP_F3 ? SI_MOVQ_LD : mp == X86_MP_66 ? SI_MOVD_ST : SI_NONE;
    case 0xd6:
        return mp == X86_MP_66 ? SI_MOVQ_ST : SI_NONE;
    case 0x6e:
        return mp == X86_MP_66 ? SI_MOVD_LD : SI_NONE;
    case 0x54:
    case 0x55:
    case 0x56:
    case 0x57:
        *aligned = true;
        return np66 ? SI_LANES : SI_NONE;
    case 0x74:
    case 0xdb:
    case 0xdf:
    case 0xeb:
    case 0xef:
    case 0xd4:
    case 0xfb:
    case 0xfe:
    case 0xfa:
        *aligned = true;
        return mp == X86_MP_66 ? SI_LANES : SI_NONE;
    default:
        return SI_NONE;
    }
}

/* One 64-bit half of a lane op: d = a op b. */
static void gen_sse_lane(struct dc *s, unsigned opc, ir_temp d, ir_temp a, ir_temp b)
{
    switch (opc) {
    case 0x54:
    case 0xdb:
        ir_binop(s->b, IR_AND, IR_I64, d, a, b);
        break;
    case 0x55:
    case 0xdf: {
        ir_temp na = tmp(s);
        ir_unop(s->b, IR_NOT, IR_I64, na, a);
        ir_binop(s->b, IR_AND, IR_I64, d, na, b);
        break;
    }
    case 0x56:
    case 0xeb:
        ir_binop(s->b, IR_OR, IR_I64, d, a, b);
        break;
    case 0x57:
    case 0xef:
        ir_binop(s->b, IR_XOR, IR_I64, d, a, b);
        break;
    case 0xd4:
        ir_binop(s->b, IR_ADD, IR_I64, d, a, b);
        break;
    case 0xfb:
        ir_binop(s->b, IR_SUB, IR_I64, d, a, b);
        break;
    case 0x74: { /* PCMPEQB: exact zero-byte test of a ^ b, then 0x80 -> 0xff per byte */
        ir_temp x = tmp(s), y = tmp(s);
        ir_binop(s->b, IR_XOR, IR_I64, x, a, b);
        ir_binop(s->b, IR_AND, IR_I64, y, x, cst(s, 0x7f7f7f7f7f7f7f7fULL));
        ir_binop(s->b, IR_ADD, IR_I64, y, y, cst(s, 0x7f7f7f7f7f7f7f7fULL));
        ir_binop(s->b, IR_OR, IR_I64, y, y, x);
        ir_binop(s->b, IR_OR, IR_I64, y, y, cst(s, 0x7f7f7f7f7f7f7f7fULL));
        ir_unop(s->b, IR_NOT, IR_I64, y, y);
        ir_binop(s->b, IR_SHR, IR_I64, y, y, cst(s, 7));
        ir_binop(s->b, IR_MUL, IR_I64, d, y, cst(s, 0xff));
        break;
    }
    default: { /* 0xfe PADDD / 0xfa PSUBD: two 32-bit lanes, the low one's carry dropped */
        enum ir_opcode op = opc == 0xfe ? IR_ADD : IR_SUB;
        ir_temp lo = tmp(s), hi = tmp(s), ah = tmp(s), bh = tmp(s);
        ir_binop(s->b, op, IR_I32, lo, a, b);
        ir_unop(s->b, IR_EXT32U, IR_I64, lo, lo);
        ir_binop(s->b, IR_SHR, IR_I64, ah, a, cst(s, 32));
        ir_binop(s->b, IR_SHR, IR_I64, bh, b, cst(s, 32));
        ir_binop(s->b, op, IR_I64, hi, ah, bh);
        ir_binop(s->b, IR_SHL, IR_I64, hi, hi, cst(s, 32));
        ir_binop(s->b, IR_OR, IR_I64, d, hi, lo);
        break;
    }
    }
}

/* The inline body; addr is the memory operand's linear address (or IR_NO_TEMP). */
static void gen_sse_inline_body(struct dc *s, enum sse_inline_kind k, ir_temp addr)
{
    const struct x86_decoded_insn *in = s->insn;
    unsigned reg = in->reg & 15, rm = in->rm & 15, mp = in->prefix.mandatory;
    bool mem = in->has_mem, w64 = in->prefix.rex_w;
    ir_temp lo, hi;
    switch (k) {
    case SI_LOAD128:
        if (mem) {
            lo = gen_load(s, addr, 64);
            hi = gen_load(s, addr_plus(s, addr, 8), 64);
        } else {
            lo = xmm_ld(s, rm, 0), hi = xmm_ld(s, rm, 1);
        }
        xmm_st(s, reg, 0, lo), xmm_st(s, reg, 1, hi);
        break;
    case SI_STORE128:
        lo = xmm_ld(s, reg, 0), hi = xmm_ld(s, reg, 1);
        if (mem) {
            gen_store(s, addr, lo, 64);
            gen_store(s, addr_plus(s, addr, 8), hi, 64);
        } else {
            xmm_st(s, rm, 0, lo), xmm_st(s, rm, 1, hi);
        }
        break;
    case SI_MOVS: {
        unsigned bits = mp == X86_MP_F3 ? 32 : 64;
        if (mem) {
            xmm_st(s, reg, 0, gen_load(s, addr, bits)), xmm_st(s, reg, 1, cst(s, 0));
        } else if (bits == 64) {
            xmm_st(s, reg, 0, xmm_ld(s, rm, 0));
        } else {
            ir_temp d = xmm_ld(s, reg, 0);
            ir_deposit(s->b, IR_I64, d, d, xmm_ld(s, rm, 0), 0, 32);
            xmm_st(s, reg, 0, d);
        }
        break;
    }
    case SI_MOVS_ST: {
        unsigned bits = mp == X86_MP_F3 ? 32 : 64;
        if (mem) {
            gen_store(s, addr, xmm_ld(s, reg, 0), bits);
        } else if (bits == 64) {
            xmm_st(s, rm, 0, xmm_ld(s, reg, 0));
        } else {
            ir_temp d = xmm_ld(s, rm, 0);
            ir_deposit(s->b, IR_I64, d, d, xmm_ld(s, reg, 0), 0, 32);
            xmm_st(s, rm, 0, d);
        }
        break;
    }
    case SI_MOVQ_LD:
        lo = mem ? gen_load(s, addr, 64) : xmm_ld(s, rm, 0);
        xmm_st(s, reg, 0, lo), xmm_st(s, reg, 1, cst(s, 0));
        break;
    case SI_MOVQ_ST:
        lo = xmm_ld(s, reg, 0);
        if (mem) {
            gen_store(s, addr, lo, 64);
        } else {
            xmm_st(s, rm, 0, lo), xmm_st(s, rm, 1, cst(s, 0));
        }
        break;
    case SI_MOVD_LD:
        lo = mem ? gen_load(s, addr, w64 ? 64 : 32) : load_reg(s, rm, w64 ? 64 : 32, false);
        xmm_st(s, reg, 0, lo), xmm_st(s, reg, 1, cst(s, 0));
        break;
    case SI_MOVD_ST:
        lo = xmm_ld(s, reg, 0);
        if (mem)
            gen_store(s, addr, lo, w64 ? 64 : 32);
        else
            store_reg(s, rm, w64 ? 64 : 32, false, lo);
        break;
    case SI_HALF_LD: { /* 0F 12: the low half; 0F 16: the high half */
        unsigned half = in->opcode == 0x16;
        if (mem)
            lo = gen_load(s, addr, 64);
        else
            lo = xmm_ld(s, rm, half ? 0 : 1); /* MOVLHPS: low to high; MOVHLPS: high to low */
        xmm_st(s, reg, half, lo);
        break;
    }
    case SI_HALF_ST:
        gen_store(s, addr, xmm_ld(s, reg, in->opcode == 0x17), 64);
        break;
    case SI_LANES: {
        ir_temp b0, b1;
        if (mem) {
            b0 = gen_load(s, addr, 64), b1 = gen_load(s, addr_plus(s, addr, 8), 64);
        } else {
            b0 = xmm_ld(s, rm, 0), b1 = xmm_ld(s, rm, 1);
        }
        lo = tmp(s), hi = tmp(s);
        gen_sse_lane(s, in->opcode, lo, xmm_ld(s, reg, 0), b0);
        gen_sse_lane(s, in->opcode, hi, xmm_ld(s, reg, 1), b1);
        xmm_st(s, reg, 0, lo), xmm_st(s, reg, 1, hi);
        break;
    }
    default:
        break;
    }
}

/* PSRLDQ / PSLLDQ xmm, imm8 (left: toward the high byte) on the two halves. */
static void gen_sse_byte_shift(struct dc *s, unsigned rm, unsigned n, bool left)
{
    ir_temp lo = xmm_ld(s, rm, 0), hi = xmm_ld(s, rm, 1);
    ir_temp nlo = tmp(s), nhi = tmp(s), t = tmp(s);
    unsigned k = n >= 8 ? (n - 8) * 8 : n * 8;
    ir_temp src = left ? lo : hi; /* the half whose bytes move across */
    if (n >= 16) {
        ir_movi(s->b, IR_I64, nlo, 0), ir_movi(s->b, IR_I64, nhi, 0);
    } else if (n >= 8) {
        ir_binop(s->b, left ? IR_SHL : IR_SHR, IR_I64, t, src, cst(s, k));
        ir_movi(s->b, IR_I64, left ? nlo : nhi, 0);
        ir_mov(s->b, IR_I64, left ? nhi : nlo, t);
    } else if (left) {
        ir_binop(s->b, IR_SHL, IR_I64, nhi, hi, cst(s, k));
        ir_binop(s->b, IR_SHR, IR_I64, t, lo, cst(s, 64 - k));
        ir_binop(s->b, IR_OR, IR_I64, nhi, nhi, t);
        ir_binop(s->b, IR_SHL, IR_I64, nlo, lo, cst(s, k));
    } else {
        ir_binop(s->b, IR_SHR, IR_I64, nlo, lo, cst(s, k));
        ir_binop(s->b, IR_SHL, IR_I64, t, hi, cst(s, 64 - k));
        ir_binop(s->b, IR_OR, IR_I64, nlo, nlo, t);
        ir_binop(s->b, IR_SHR, IR_I64, nhi, hi, cst(s, k));
    }
    xmm_st(s, rm, 0, nlo), xmm_st(s, rm, 1, nhi);
}

/* 66 0F 71-73 register forms: PSRLW/D/Q (/2), PSLLW/D/Q (/6), PSRLDQ (/3), PSLLDQ (/7) by
 * imm8; false for the rest (arithmetic shifts, #UD forms: the helper). */
static bool gen_sse_shift_imm(struct dc *s)
{
    const struct x86_decoded_insn *in = s->insn;
    unsigned op = (in->modrm >> 3) & 7, rm = in->rm & 15, n = (unsigned)(in->imm & 0xff);
    unsigned bits = in->opcode == 0x71 ? 16 : in->opcode == 0x72 ? 32 : 64;
    if (in->has_mem || in->prefix.mandatory != X86_MP_66)
        return false;
    if (in->opcode == 0x73 && (op == 3 || op == 7)) {
        if (n != 0)
            gen_sse_byte_shift(s, rm, n, op == 7);
        return true;
    }
    if (op != 2 && op != 6)
        return false;
    uint64_t lane = bits == 64 ? ~0ULL : (1ULL << bits) - 1;
    uint64_t rep = bits == 16 ? 0x0001000100010001ULL : bits == 32 ? 0x0000000100000001ULL : 1;
    for (unsigned h = 0; h < 2; h++) {
        ir_temp v = tmp(s);
        if (n >= bits) {
            ir_movi(s->b, IR_I64, v, 0);
        } else {
            uint64_t keep = (op == 2 ? lane >> n : (lane << n) & lane) * rep;
            ir_binop(s->b, op == 2 ? IR_SHR : IR_SHL, IR_I64, v, xmm_ld(s, rm, h), cst(s, n));
            if (bits != 64)
                ir_binop(s->b, IR_AND, IR_I64, v, v, cst(s, keep));
        }
        xmm_st(s, rm, h, v);
    }
    return true;
}

/* PMOVMSKB r, xmm: the top bit of each byte; per half, a multiply gathers bit 7 of byte i
 * into bit 56 + i (the partial products land on distinct bits). */
static void gen_pmovmskb(struct dc *s)
{
    const struct x86_decoded_insn *in = s->insn;
    ir_temp m[2];
    for (unsigned h = 0; h < 2; h++) {
        m[h] = tmp(s);
        ir_binop(s->b, IR_AND, IR_I64, m[h], xmm_ld(s, in->rm & 15, h),
                 cst(s, 0x8080808080808080ULL));
        ir_binop(s->b, IR_MUL, IR_I64, m[h], m[h], cst(s, 0x0002040810204081ULL));
        ir_binop(s->b, IR_SHR, IR_I64, m[h], m[h], cst(s, h ? 48 : 56));
    }
    ir_binop(s->b, IR_AND, IR_I64, m[1], m[1], cst(s, 0xff00));
    ir_binop(s->b, IR_OR, IR_I64, gpr(in->reg & 15), m[0], m[1]);
}

/* The host's MXCSR is the guest's for the IR_FPOP about to be emitted: an IR_FPENV unless
 * one earlier in the block still holds (no helper call since, which may have released it,
 * and no label, where another path joins). */
static void gen_fpenv(struct dc *s)
{
    bool held = s->fpenv_at >= 0;
    for (uint32_t i = (uint32_t)(s->fpenv_at + 1); held && i < s->b->nr_ops; i++)
        held = s->b->ops[i].opc != IR_CALL && s->b->ops[i].opc != IR_LABEL;
    if (held)
        return;
    s->fpenv_at = s->b->nr_ops;
    ir_fpenv(s->b, offsetof(struct tcg_cpu, fpu.mxcsr), offsetof(struct tcg_cpu, fp_live));
}

/* The r/m source of a scalar SSE instruction: `bits` from memory, else the low quadword of
 * the XMM register (or the GPR, for CVTSI2S*). */
static ir_temp sse_scalar_src(struct dc *s, unsigned bits, bool gpr_form)
{
    const struct x86_decoded_insn *in = s->insn;
    if (!in->has_mem)
        return gpr_form ? gpr(in->rm & 15) : xmm_ld(s, in->rm & 15, 0);
    ir_temp addr = gen_mem_addr(s);
    sync_cc_op(s); /* the load may fault */
    return gen_load(s, addr, bits);
}

/* Scalar SSE arithmetic with every exception masked (HF_MXFAST): the host's own instruction
 * on the low quadwords, inline (IR_FPOP). */
static void gen_sse_fp_inline(struct dc *s)
{
    const struct x86_decoded_insn *in = s->insn;
    bool single = in->prefix.mandatory == X86_MP_F3;
    ir_temp src = sse_scalar_src(s, single ? 32 : 64, false);
    gen_fpenv(s);
    ir_temp r = tmp(s);
    ir_fpop(s->b, r, xmm_ld(s, in->reg & 15, 0), src,
            IR_FPOP_INSN(0, single ? 0xf3 : 0xf2, in->opcode));
    xmm_st(s, in->reg, 0, r);
}

/* The scalar conversions to and from integers and the ordered/unordered compares, inline
 * under HF_MXFAST like the arithmetic. False: not one of them. */
static bool gen_sse_scalar_misc(struct dc *s)
{
    const struct x86_decoded_insn *in = s->insn;
    unsigned opc = in->opcode, mp = in->prefix.mandatory;
    bool scalar = mp == X86_MP_F3 || mp == X86_MP_F2, w = in->prefix.rex_w;
    bool cvt = scalar && (opc == 0x2a || opc == 0x2c || opc == 0x2d);
    bool comis = (mp == X86_MP_NONE || mp == X86_MP_66) && (opc == 0x2e || opc == 0x2f);
    if (!(s->hflags & HF_MXFAST) || !(cvt || comis))
        return false;
    unsigned prefix = mp == X86_MP_F3 ? 0xf3 : mp == X86_MP_F2 ? 0xf2 : mp == X86_MP_66 ? 0x66 : 0;
    /* the source: an integer for CVTSI2S*, else a single (F3, no prefix) or a double */
    unsigned bits = opc == 0x2a ? (w ? 64 : 32) : (mp == X86_MP_F3 || mp == X86_MP_NONE) ? 32 : 64;
    ir_temp src = sse_scalar_src(s, bits, opc == 0x2a);
    gen_fpenv(s);
    ir_temp r = tmp(s);
    ir_temp a = opc == 0x2c || opc == 0x2d ? src : xmm_ld(s, in->reg & 15, 0);
    ir_fpop(s->b, r, a, src, IR_FPOP_INSN(w && cvt, prefix, opc));
    if (opc == 0x2a) {
        xmm_st(s, in->reg, 0, r);
    } else if (cvt) {
        ir_mov(s->b, IR_I64, gpr(in->reg & 15), r); /* 32-bit results come zero-extended */
    } else {
        ir_mov(s->b, IR_I64, G_CC_SRC, r);
        set_cc_op(s, CC_OP_EFLAGS);
    }
    return true;
}

/* SSE arithmetic (and CVTSS2SD/CVTSD2SS): the source operand loaded here, the operation in
 * HELPER_sse_fp (the host's SSE unit under the guest's MXCSR, or exact software). */
static bool gen_sse_fp(struct dc *s)
{
    const struct x86_decoded_insn *in = s->insn;
    unsigned opc = in->opcode, mp = in->prefix.mandatory;
    bool scalar = mp == X86_MP_F3 || mp == X86_MP_F2;
    if (!((opc >= 0x58 && opc <= 0x5f && opc != 0x5a && opc != 0x5b) || opc == 0x51 ||
          (opc == 0x5a && scalar)))
        return false;
    if (scalar && (s->hflags & HF_MXFAST)) {
        gen_sse_fp_inline(s);
        return true;
    }
    ir_temp arg = cst(s, opc | mp << 8 | (in->reg & 15u) << 10);
    if (!in->has_mem) {
        gen_call(s, HELPER_sse_fp, IR_NO_TEMP, arg, xmm_ld(s, in->rm & 15, 0),
                 xmm_ld(s, in->rm & 15, 1), IR_NO_TEMP);
        sse_fp_result(s, in->reg);
        return true;
    }
    ir_temp addr = gen_mem_addr(s);
    sync_cc_op(s); /* the load or an unmasked exception may fault */
    if (scalar) {
        ir_temp lo = gen_load(s, addr, mp == X86_MP_F3 ? 32 : 64);
        gen_call(s, HELPER_sse_fp, IR_NO_TEMP, arg, lo, cst(s, 0), IR_NO_TEMP);
        sse_fp_result(s, in->reg);
        return true;
    }
    /* 16 aligned bytes (one page); misaligned: the helper raises #GP */
    struct sse_fallback f = sse_fallback_unless(s, addr, false);
    ir_temp lo = gen_load(s, addr, 64), hi = gen_load(s, addr_plus(s, addr, 8), 64);
    gen_call(s, HELPER_sse_fp, IR_NO_TEMP, arg, lo, hi, IR_NO_TEMP);
    sse_fp_result(s, in->reg);
    sse_fallback_end(s, f, addr);
    return true;
}

/* True if the instruction was translated inline. */
static unsigned mandatory_prefix_byte(enum x86_mandatory_prefix mp)
{
    return mp == X86_MP_66 ? 0x66 : mp == X86_MP_F3 ? 0xf3 : mp == X86_MP_F2 ? 0xf2 : 0;
}

/* The packed instructions the host runs itself (IR_VOP, vecop.h): both halves of the
 * destination from the host instruction on the guest's operands. A misaligned 16-byte
 * operand (#GP) goes to the helper. False: not one of them here. */
static bool gen_sse_vec(struct dc *s)
{
    const struct x86_decoded_insn *in = s->insn;
    unsigned prefix = mandatory_prefix_byte(in->prefix.mandatory);
    enum ir_vop_kind kind = ir_vop_kind(IR_VOP_INSN(prefix, in->opcode, 0, 0));
    bool fp = kind == IR_VOP_FP || kind == IR_VOP_FPCMP;
    unsigned imm8 = kind == IR_VOP_IMM8    ? (unsigned)(in->imm & 0xff)
                    : kind == IR_VOP_FPCMP ? (unsigned)(in->imm & 7)
                                           : 0;
    uint32_t insn = IR_VOP_INSN(prefix, in->opcode, imm8, 0);
    if (!IR_HOST_FP || kind == IR_VOP_NONE || (fp && !(s->hflags & HF_MXFAST)))
        return false;
    unsigned reg = in->reg & 15;
    ir_temp b0, b1, addr = IR_NO_TEMP;
    struct sse_fallback f = {0, 0};
    bool checked = in->has_mem && !ir_vop_mem64(insn);
    if (!in->has_mem) {
        b0 = xmm_ld(s, in->rm & 15, 0), b1 = xmm_ld(s, in->rm & 15, 1);
    } else {
        addr = gen_mem_addr(s);
        sync_cc_op(s); /* the loads may fault */
        if (checked)
            f = sse_fallback_unless(s, addr, false);
        b0 = gen_load(s, addr, 64);
        b1 = checked ? gen_load(s, addr_plus(s, addr, 8), 64) : cst(s, 0);
    }
    if (fp)
        gen_fpenv(s);
    ir_temp a0 = xmm_ld(s, reg, 0), a1 = xmm_ld(s, reg, 1), lo = tmp(s), hi = tmp(s);
    ir_vop(s->b, lo, a0, a1, b0, b1, insn);
    ir_vop(s->b, hi, a0, a1, b0, b1, insn | IR_VOP_HALF);
    xmm_st(s, reg, 0, lo), xmm_st(s, reg, 1, hi);
    if (checked)
        sse_fallback_end(s, f, addr);
    return true;
}

static bool gen_sse_inline(struct dc *s)
{
    const struct x86_decoded_insn *in = s->insn;
    bool aligned;
    if (in->mnemonic != X86_MN_SSE || in->map != X86_MAP_0F || !(s->hflags & HF_SSE))
        return false;
    if (in->opcode >= 0x71 && in->opcode <= 0x73)
        return gen_sse_shift_imm(s);
    /* the 64-bit IR forms first: cheaper than the host's instruction on XMM registers */
    if (sse_inline_kind(in->opcode, in->prefix.mandatory, &aligned) == SI_NONE && gen_sse_vec(s))
        return true;
    if (gen_sse_fp(s) || gen_sse_scalar_misc(s))
        return true;
    if (in->opcode == 0xd7 && in->prefix.mandatory == X86_MP_66 && !in->has_mem) {
        gen_pmovmskb(s);
        return true;
    }
    enum sse_inline_kind k = sse_inline_kind(in->opcode, in->prefix.mandatory, &aligned);
    if (k == SI_NONE || (k == SI_HALF_LD && !in->has_mem && in->prefix.mandatory == X86_MP_66) ||
        (k == SI_HALF_ST && !in->has_mem))
        return false;
    if (!in->has_mem) {
        gen_sse_inline_body(s, k, IR_NO_TEMP);
        return true;
    }
    ir_temp addr = gen_mem_addr(s);
    sync_cc_op(s); /* a load or store may fault */
    bool wide = k == SI_LOAD128 || k == SI_STORE128 || k == SI_LANES;
    if (!wide) {
        gen_sse_inline_body(s, k, addr);
        return true;
    }
    /* 16 bytes: misaligned (aligned forms) or page-crossing accesses go to the helper. */
    struct sse_fallback f = sse_fallback_unless(s, addr, !aligned);
    gen_sse_inline_body(s, k, addr);
    sse_fallback_end(s, f, addr);
    return true;
}

/* x87, SSE, MMX and their state instructions run in C helpers (fpu.c/sse.c/mmx.c), given the
 * packed instruction and its memory operand's linear address (MASKMOVDQU/MASKMOVQ: DS:rDI). */
void gen_fpu_sse(struct dc *s)
{
    const struct x86_decoded_insn *in = s->insn;
    if (gen_sse_inline(s))
        return;
    ir_temp addr = cst(s, 0);
    if (in->has_mem) {
        addr = gen_mem_addr(s);
    } else if (in->cls == X86_CLASS_SSE && in->map == X86_MAP_0F && in->opcode == 0xf7) {
        ir_temp off = tmp(s);
        gen_zext(s, off, gpr(7), in->addr_size);
        addr = gen_linear(s, off, in->prefix.seg != X86_SEG_NONE ? in->prefix.seg : SEG_DS);
    }
    sync_cc_op(s);
    uint64_t desc = x86_fpu_desc(in);
    /* MMX forms have their own availability rules (no CR4.OSFXSR): their own helper. */
    gen_call(s, x86_mmx_form(desc) ? HELPER_mmx : HELPER_fpu_sse, IR_NO_TEMP, cst(s, desc), addr,
             IR_NO_TEMP, IR_NO_TEMP);
    forget_cc_op(s, CC_OP_DYNAMIC); /* COMISS/FCOMI write the flags */
}
