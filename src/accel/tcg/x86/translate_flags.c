/* x86 front end: lazy condition codes. The translator knows the flags-setting op of each
 * point in a block statically where it can (dc->cc_op), so conditions become compares of the
 * op's operands and CF a compare or a bit; flags are materialised (a helper call) only where
 * the op is known just at run time. A block starts with the op the vCPU had when it was
 * translated, checked on entry where the block relies on it. */
#include "accel/tcg/x86/translate_internal.h"

#include "accel/tcg/x86/flags.h"

/* --- lazy flags ---------------------------------------------------------------------------- */

void set_cc_op(struct dc *s, int op)
{
    if ((s->cc_op != op || s->cc_op_is_entry) && op != CC_OP_DYNAMIC)
        ir_movi(s->b, IR_I64, G_CC_OP, (uint64_t)op);
    s->cc_op = op;
    s->cc_op_is_entry = false;
}

/* The lazy-flags op changed behind the translator's back (helpers, conditional updates). */
void forget_cc_op(struct dc *s, int op)
{
    s->cc_op = op;
    s->cc_op_is_entry = false;
}

/* The static cc_op, for code that depends on it: at the block's start, the assumed one. */
static int static_cc_op(struct dc *s)
{
    if (s->cc_op_is_entry && s->cc_op >= 0)
        s->entry_cc_used = true;
    return s->cc_op;
}

/* G_CC_OP = the static cc_op, where code (a helper, a possible fault) reads it from env. Not
 * while it is the entry value: env holds the real one then, whatever was assumed. */
void write_cc_op(struct dc *s)
{
    if (s->cc_op != CC_OP_DYNAMIC && !s->cc_op_is_entry)
        ir_movi(s->b, IR_I64, G_CC_OP, (uint64_t)s->cc_op);
}

/* Record a flag-setting result: cc_dst = result (zero-extended at size). */
void set_cc(struct dc *s, int base, unsigned bits, ir_temp dst, ir_temp src, ir_temp src2)
{
    /* Every lazy-flags global is written (zero where this op has no operand for it), so the
     * optimiser sees an earlier flag computation still held in one of them as dead: e.g. a
     * rotate's merged flags (a compute_eflags call) followed by an XOR. */
    gen_zext(s, G_CC_DST, dst, bits);
    if (src != IR_NO_TEMP)
        ir_mov(s->b, IR_I64, G_CC_SRC, src);
    else
        ir_movi(s->b, IR_I64, G_CC_SRC, 0);
    if (src2 != IR_NO_TEMP)
        ir_mov(s->b, IR_I64, G_CC_SRC2, src2);
    else
        ir_movi(s->b, IR_I64, G_CC_SRC2, 0);
    set_cc_op(s, base + (int)cc_size(bits));
}

static ir_temp gen_eflags_arith(struct dc *s)
{
    ir_temp f = tmp(s);
    gen_call(s, HELPER_compute_eflags, f, G_CC_OP, G_CC_DST, G_CC_SRC, G_CC_SRC2);
    return f;
}

/* Make the lazy state "flags materialised" (before instructions that change some flags and
 * keep others). Returns the temp holding the arithmetic flags. */
ir_temp gen_materialize_flags(struct dc *s)
{
    ir_temp f = gen_eflags_arith(s);
    ir_mov(s->b, IR_I64, G_CC_SRC, f);
    set_cc_op(s, CC_OP_EFLAGS);
    return f;
}

ir_temp gen_carry(struct dc *s)
{
    ir_temp c = tmp(s);
    int op = static_cc_op(s);
    if (op >= 0) {
        unsigned bits = 8u << (op & 3);
        switch (op & ~3) {
        case CC_OP_ADD: /* carry iff result < second operand */
            ir_setcond(s->b, IR_I64, IR_COND_LTU, c, G_CC_DST, G_CC_SRC);
            return c;
        case CC_OP_SUB: { /* borrow iff first < second; first = dst + src */
            ir_temp first = tmp(s);
            ir_binop(s->b, IR_ADD, IR_I64, first, G_CC_DST, G_CC_SRC);
            gen_zext(s, first, first, bits);
            ir_setcond(s->b, IR_I64, IR_COND_LTU, c, first, G_CC_SRC);
            return c;
        }
        case CC_OP_LOGIC:
            ir_movi(s->b, IR_I64, c, 0);
            return c;
        case CC_OP_INC:
        case CC_OP_DEC:
        case CC_OP_EFLAGS:
        case CC_OP_SAR: /* the last bit shifted out */
            ir_binop(s->b, IR_AND, IR_I64, c, G_CC_SRC, cst(s, 1));
            return c;
        case CC_OP_SHL: /* the operand's MSB before the last shift step */
            ir_setcond(s->b, IR_I64, IR_COND_TSTNE, c, G_CC_SRC, cst(s, 1ULL << (bits - 1)));
            return c;
        case CC_OP_MUL: /* the upper half is significant */
            ir_setcond(s->b, IR_I64, IR_COND_NE, c, G_CC_SRC, cst(s, 0));
            return c;
        case CC_OP_NEG: /* the operand was not zero */
            ir_setcond(s->b, IR_I64, IR_COND_TSTNE, c, G_CC_SRC,
                       cst(s, bits == 64 ? ~0ULL : (1ULL << bits) - 1));
            return c;
        default:
            break;
        }
    }
    gen_call(s, HELPER_compute_cf, c, G_CC_OP, G_CC_DST, G_CC_SRC, G_CC_SRC2);
    return c;
}

/* gen_carry computes CF inline for these lazy ops (not a helper call). */
static bool carry_is_inline(int op)
{
    switch (op & ~3) {
    case CC_OP_ADD:
    case CC_OP_SUB:
    case CC_OP_LOGIC:
    case CC_OP_INC:
    case CC_OP_DEC:
    case CC_OP_SAR:
    case CC_OP_SHL:
    case CC_OP_MUL:
    case CC_OP_NEG:
        return true;
    default:
        return false;
    }
}

/* Condition cc (Jcc encoding) as a 0/1 temp from RFLAGS-layout arithmetic flags f. */
static ir_temp gen_cond_from_eflags(struct dc *s, ir_temp f, unsigned cc)
{
    ir_temp r = tmp(s);
    switch ((cc >> 1) & 7) {
    case 0: /* O */
        ir_binop(s->b, IR_SHR, IR_I64, r, f, cst(s, 11));
        break;
    case 1: /* B */
        ir_mov(s->b, IR_I64, r, f);
        break;
    case 2: /* Z */
        ir_binop(s->b, IR_SHR, IR_I64, r, f, cst(s, 6));
        break;
    case 3: /* BE: CF | ZF */
        ir_setcond(s->b, IR_I64, IR_COND_TSTNE, r, f, cst(s, X86_CF | X86_ZF));
        break;
    case 4: /* S */
        ir_binop(s->b, IR_SHR, IR_I64, r, f, cst(s, 7));
        break;
    case 5: /* P */
        ir_binop(s->b, IR_SHR, IR_I64, r, f, cst(s, 2));
        break;
    default: { /* L: SF != OF; LE: that, or ZF */
        ir_temp o = tmp(s);
        ir_binop(s->b, IR_SHR, IR_I64, r, f, cst(s, 7));
        ir_binop(s->b, IR_SHR, IR_I64, o, f, cst(s, 11));
        ir_binop(s->b, IR_XOR, IR_I64, r, r, o);
        if (((cc >> 1) & 7) == 7) {
            ir_binop(s->b, IR_SHR, IR_I64, o, f, cst(s, 6));
            ir_binop(s->b, IR_OR, IR_I64, r, r, o);
        }
        break;
    }
    }
    ir_binop(s->b, IR_AND, IR_I64, r, r, cst(s, 1));
    if (cc & 1)
        ir_binop(s->b, IR_XOR, IR_I64, r, r, cst(s, 1));
    return r;
}

/* Condition cc (Jcc encoding) as a 0/1 temp, with fast paths for the common flag ops. */
ir_temp gen_condition(struct dc *s, unsigned cc)
{
    ir_temp r = tmp(s);
    int op = static_cc_op(s);
    unsigned test = (cc >> 1) & 7;
    bool negate = cc & 1;
    enum ir_cond cond = IR_COND_NEVER;
    ir_temp a = IR_NO_TEMP, c = IR_NO_TEMP;
    if (op >= 0 && op != CC_OP_EFLAGS) {
        unsigned bits = 8u << (op & 3);
        int base = op & ~3;
        if (test == 2) { /* ZF */
            a = G_CC_DST, c = cst(s, 0), cond = IR_COND_EQ;
        } else if (test == 4) { /* SF */
            a = tmp(s);
            gen_sext(s, a, G_CC_DST, bits);
            c = cst(s, 0), cond = IR_COND_LT;
        } else if (base == CC_OP_SUB && test != 0 && test != 5) {
            ir_temp first = tmp(s);
            ir_binop(s->b, IR_ADD, IR_I64, first, G_CC_DST, G_CC_SRC);
            gen_zext(s, first, first, bits);
            if (test == 1 || test == 3) { /* B, BE: unsigned */
                a = first, c = G_CC_SRC, cond = test == 1 ? IR_COND_LTU : IR_COND_LEU;
            } else { /* L, LE: signed */
                ir_temp sa = tmp(s), sb = tmp(s);
                gen_sext(s, sa, first, bits);
                gen_sext(s, sb, G_CC_SRC, bits);
                a = sa, c = sb, cond = test == 6 ? IR_COND_LT : IR_COND_LE;
            }
        } else if (base == CC_OP_LOGIC) {
            ir_temp sv = tmp(s);
            gen_sext(s, sv, G_CC_DST, bits);
            switch (test) {
            case 0:
                a = sv, c = cst(s, 0), cond = IR_COND_NEVER;
                break; /* OF = 0 */
            case 1:
                a = sv, c = cst(s, 0), cond = IR_COND_NEVER;
                break; /* CF = 0 */
            case 3:
                a = sv, c = cst(s, 0), cond = IR_COND_EQ;
                break; /* CF|ZF = ZF */
            case 6:
                a = sv, c = cst(s, 0), cond = IR_COND_LT;
                break; /* SF != 0 */
            case 7:
                a = sv, c = cst(s, 0), cond = IR_COND_LE;
                break;
            default:
                break;
            }
        }
    }
    if (a != IR_NO_TEMP) {
        if (negate) {
            static const enum ir_cond inverse[] = {
                [IR_COND_EQ] = IR_COND_NE,        [IR_COND_NE] = IR_COND_EQ,
                [IR_COND_LT] = IR_COND_GE,        [IR_COND_GE] = IR_COND_LT,
                [IR_COND_LE] = IR_COND_GT,        [IR_COND_GT] = IR_COND_LE,
                [IR_COND_LTU] = IR_COND_GEU,      [IR_COND_GEU] = IR_COND_LTU,
                [IR_COND_LEU] = IR_COND_GTU,      [IR_COND_GTU] = IR_COND_LEU,
                [IR_COND_NEVER] = IR_COND_ALWAYS, [IR_COND_ALWAYS] = IR_COND_NEVER,
            };
            cond = inverse[cond];
        }
        ir_setcond(s->b, IR_I64, cond, r, a, c);
        return r;
    }
    if (op >= 0 && op != CC_OP_EFLAGS && (test == 1 || test == 3) && carry_is_inline(op)) {
        ir_temp cf = gen_carry(s); /* B, BE: CF (| ZF) without materialising the rest */
        if (test == 3) {
            ir_temp z = tmp(s);
            ir_setcond(s->b, IR_I64, IR_COND_EQ, z, G_CC_DST, cst(s, 0));
            ir_binop(s->b, IR_OR, IR_I64, cf, cf, z);
        }
        if (negate)
            ir_binop(s->b, IR_XOR, IR_I64, cf, cf, cst(s, 1));
        return cf;
    }
    /* Otherwise from the arithmetic flags: in cc_src already, or one helper call. */
    return gen_cond_from_eflags(s, op == CC_OP_EFLAGS ? G_CC_SRC : gen_eflags_arith(s), cc);
}

/* BSF/BSR/TZCNT/LZCNT of a 32/64-bit source in IR (h_bitscan's rules): r = the index or
 * count; the flags materialised (ZF: BSF/BSR source zero; TZCNT/LZCNT: CF source zero, ZF
 * result zero; the rest clear), which the optimiser drops when the next instruction sets
 * its own. */
void gen_bitscan_inline(struct dc *s, int kind, unsigned bits, ir_temp r, ir_temp src, ir_temp old)
{
    ir_temp v = tmp(s), z = tmp(s), f = tmp(s);
    gen_zext(s, v, src, bits); /* 64-bit ops on it: `old` keeps all 64 bits */
    switch (kind) {
    case SCAN_BSF:
        ir_binop(s->b, IR_CTZ, IR_I64, r, v, old);
        break;
    case SCAN_TZCNT:
        ir_binop(s->b, IR_CTZ, IR_I64, r, v, cst(s, bits));
        break;
    case SCAN_LZCNT:
        ir_binop(s->b, IR_CLZ, type_for(bits), r, v, cst(s, bits));
        break;
    default: { /* BSR: 63 - clz64, or the old value */
        ir_temp c = tmp(s);
        ir_binop(s->b, IR_CLZ, IR_I64, c, v, cst(s, 0));
        ir_binop(s->b, IR_XOR, IR_I64, c, c, cst(s, 63));
        ir_movcond(s->b, IR_I64, IR_COND_EQ, r, v, cst(s, 0), old, c);
        break;
    }
    }
    ir_setcond(s->b, IR_I64, IR_COND_EQ, z, v, cst(s, 0));
    if (kind == SCAN_BSF || kind == SCAN_BSR) {
        ir_binop(s->b, IR_SHL, IR_I64, f, z, cst(s, 6)); /* ZF */
    } else {
        ir_temp rz = tmp(s);
        ir_setcond(s->b, IR_I64, IR_COND_EQ, rz, r, cst(s, 0));
        ir_binop(s->b, IR_SHL, IR_I64, rz, rz, cst(s, 6));
        ir_binop(s->b, IR_OR, IR_I64, f, z, rz); /* CF | ZF */
    }
    ir_mov(s->b, IR_I64, G_CC_SRC, f);
    set_cc_op(s, CC_OP_EFLAGS);
}
