/* IR optimiser: constant folding + algebraic identities + copy propagation (one forward pass),
 * unreachable code and unused label removal, then dead code elimination (one backward pass).
 *
 * Correctness rules:
 *  - Forward knowledge (known constants, "d is a copy of s") is forgotten at every LABEL, since
 *    other paths merge there. A BRCOND's fall-through is only reached from the BRCOND, so
 *    knowledge survives it. Each temp has a definition counter ("version"); a copy record
 *    remembers its source's version, so redefining the source makes the copy stale in O(1).
 *  - Globals change behind our back at CALLs with IR_HELPER_WRITES_GLOBALS and at STENVs that
 *    overlap them: such points count as redefinitions.
 *  - Liveness: globals are live at block end, at exits, at ops that may leave the block (QLD,
 *    QST, CALLs that may exit), at CALLs that read globals, LDENVs that overlap them, and at
 *    branches. Locals that are read before being written in some basic block ("cross-block"
 *    locals) are the only ones that can be live across a block boundary, so they are treated
 *    as live at every branch; every other local is tracked precisely.
 */
#include "accel/tcg/ir/ir.h"
#include "accel/tcg/ir/bits.h"

#include <string.h>

struct fwd_state {
    uint32_t version[IR_MAX_TEMPS];
    uint64_t value[IR_MAX_TEMPS];
    uint32_t copy_version[IR_MAX_TEMPS];
    ir_temp copy_src[IR_MAX_TEMPS]; /* IR_NO_TEMP: not a known copy */
    bool known[IR_MAX_TEMPS];
    bool copy_low32[IR_MAX_TEMPS];    /* d == zext32(src): valid only for uses of the low half */
    uint64_t maybe_set[IR_MAX_TEMPS]; /* bits the current value may have set (others are 0) */
};

static uint64_t type_mask(enum ir_type t)
{
    return t == IR_I32 ? 0xffffffffu : UINT64_MAX;
}

static unsigned type_bits(enum ir_type t)
{
    return t == IR_I32 ? 32 : 64;
}

/* --- bit utilities (also used by the folding of CLZ/CTZ/CTPOP/BSWAP) ------------------- */

static uint64_t sext(uint64_t v, unsigned bits)
{
    uint64_t sign = 1ull << (bits - 1);
    v &= bits == 64 ? UINT64_MAX : (1ull << bits) - 1;
    return (v ^ sign) - sign;
}

/* Evaluates a single-output pure op on constant inputs. false: not foldable here. */
static bool fold_eval(const struct ir_op *op, const uint64_t *in, uint64_t *out)
{
    enum ir_type t = (enum ir_type)op->type;
    uint64_t mask = type_mask(t);
    unsigned bits = type_bits(t);
    uint64_t a = in[0] & mask, b = in[1] & mask;
    unsigned count = (unsigned)(b & (bits - 1));
    uint64_t r;
    switch ((enum ir_opcode)op->opc) {
    case IR_MOV:
        r = a;
        break;
    case IR_ADD:
        r = a + b;
        break;
    case IR_SUB:
        r = a - b;
        break;
    case IR_MUL:
        r = a * b;
        break;
    case IR_AND:
        r = a & b;
        break;
    case IR_OR:
        r = a | b;
        break;
    case IR_XOR:
        r = a ^ b;
        break;
    case IR_ANDC:
        r = a & ~b;
        break;
    case IR_SHL:
        r = a << count;
        break;
    case IR_SHR:
        r = a >> count;
        break;
    case IR_SAR:
        r = (uint64_t)((int64_t)sext(a, bits) >> count);
        break; /* gcc/clang: arithmetic */
    case IR_ROTL:
        r = count ? (a << count) | (a >> (bits - count)) : a;
        break;
    case IR_ROTR:
        r = count ? (a >> count) | (a << (bits - count)) : a;
        break;
    case IR_NEG:
        r = 0 - a;
        break;
    case IR_NOT:
        r = ~a;
        break;
    case IR_EXT8S:
        r = sext(a, 8);
        break;
    case IR_EXT8U:
        r = a & 0xff;
        break;
    case IR_EXT16S:
        r = sext(a, 16);
        break;
    case IR_EXT16U:
        r = a & 0xffff;
        break;
    case IR_EXT32S:
        r = sext(a, 32);
        break;
    case IR_EXT32U:
        r = a & 0xffffffffu;
        break;
    case IR_DEPOSIT:
    case IR_EXTRACT: {
        unsigned pos = op->imm & 0xff, len = (op->imm >> 8) & 0xff;
        if (len == 0 || pos >= bits || len > bits - pos)
            return false; /* malformed: leave it to the backend to reject */
        uint64_t field = UINT64_MAX >> (64 - len);
        if (op->opc == IR_EXTRACT)
            r = (a >> pos) & field;
        else
            r = (a & ~(field << pos)) | ((b & field) << pos);
        break;
    }
    case IR_SETCOND:
        r = ir_cond_eval((enum ir_cond)op->cond, t, a, b);
        break;
    case IR_MOVCOND:
        r = ir_cond_eval((enum ir_cond)op->cond, t, a, b) ? in[2] : in[3];
        break;
    case IR_CLZ:
        r = a ? ir_clz64(a) - (64 - bits) : b;
        break;
    case IR_CTZ:
        r = a ? ir_ctz64(a) : b;
        break;
    case IR_CTPOP:
        r = ir_popcount64(a);
        break;
    case IR_BSWAP:
        r = ir_bswap64(a) >> (64 - bits);
        break;
    default:
        return false;
    }
    *out = r & mask;
    return true;
}

/* --- forward pass ------------------------------------------------------------------------- */

static bool temp_is_const(const struct ir_block *b, ir_temp t)
{
    return b->temps[t].kind == IR_TEMP_CONST;
}

static bool get_known(const struct ir_block *b, const struct fwd_state *s, ir_temp t, uint64_t *v)
{
    if (temp_is_const(b, t)) {
        *v = b->temps[t].value;
        return true;
    }
    if (s->known[t]) {
        *v = s->value[t];
        return true;
    }
    return false;
}

static void redefine(struct fwd_state *s, ir_temp t)
{
    s->version[t]++;
    s->known[t] = false;
    s->copy_src[t] = IR_NO_TEMP;
    s->maybe_set[t] = UINT64_MAX;
}

static void forget_all(const struct ir_block *b, struct fwd_state *s)
{
    for (uint32_t t = 0; t < b->nr_temps; t++) {
        s->known[t] = false;
        s->copy_src[t] = IR_NO_TEMP;
        s->maybe_set[t] = UINT64_MAX;
    }
}

/* Bits of t's value that may be 1 (a known value: exactly its bits). */
static uint64_t maybe_set(const struct ir_block *b, const struct fwd_state *s, ir_temp t)
{
    uint64_t v;
    if (t == IR_NO_TEMP)
        return UINT64_MAX;
    if (get_known(b, s, t, &v))
        return v;
    return s->maybe_set[t];
}

/* What op's (single) result may have set, from what its inputs may have set: the known-zero
 * bits that let extensions and masks of already narrow values become moves. */
static uint64_t result_bits(const struct ir_block *b, const struct fwd_state *s,
                            const struct ir_op *op)
{
    uint64_t mask = op->type == IR_I32 ? 0xffffffffull : UINT64_MAX;
    unsigned nin = ir_opcode_info((enum ir_opcode)op->opc)->nr_in;
    uint64_t x = nin >= 1 ? maybe_set(b, s, op->args[1]) : UINT64_MAX;
    uint64_t y = nin >= 2 ? maybe_set(b, s, op->args[2]) : UINT64_MAX;
    uint64_t v;
    switch (op->opc) {
    case IR_CALL: /* helpers and env words: whatever they return */
    case IR_LDENV:
        return UINT64_MAX;
    case IR_MOVI:
        return op->imm & mask;
    case IR_MOV:
        return x & mask;
    case IR_EXT8U:
        return x & 0xff;
    case IR_EXT16U:
        return x & 0xffff;
    case IR_EXT32U:
        return x & 0xffffffffull;
    case IR_AND:
        return x & y & mask;
    case IR_OR:
    case IR_XOR:
        return (x | y) & mask;
    case IR_SHR:
        if (get_known(b, s, op->args[2], &v))
            return ((x & mask) >> (v & (op->type == IR_I32 ? 31 : 63))) & mask;
        return mask;
    case IR_SHL:
        if (get_known(b, s, op->args[2], &v))
            return (x << (v & (op->type == IR_I32 ? 31 : 63))) & mask;
        return mask;
    case IR_EXTRACT:
        return (UINT64_MAX >> (64 - ((op->imm >> 8) & 0xff))) & mask;
    case IR_SETCOND:
        return 1;
    case IR_CLZ:
    case IR_CTZ:
        return mask == UINT64_MAX ? (127 | y) : ((63 | y) & mask);
    case IR_CTPOP:
        return 127;
    case IR_QLD:
        if (!(op->imm & IR_MEM_SIGN) && (op->imm & IR_MEM_SIZE_MASK) < 8)
            return (1ull << (8 * (op->imm & IR_MEM_SIZE_MASK))) - 1;
        return mask;
    default:
        return mask;
    }
}

static bool overlaps_global(const struct ir_block *b, ir_temp g, uint64_t offset)
{
    uint64_t goff = b->temps[g].env_offset;
    return offset < goff + 8 && goff < offset + 8;
}

static uint32_t helper_flags(const struct ir_block *b, uint64_t index)
{
    /* An unknown helper gets the most pessimistic flags. */
    if (!b->helpers || index >= b->nr_helpers)
        return IR_HELPER_READS_GLOBALS | IR_HELPER_WRITES_GLOBALS | IR_HELPER_MAY_EXIT;
    return b->helpers[index].flags;
}

/* Whether input `t` of this op only matters through its low 32 bits. */
static bool reads_low32_only(const struct ir_op *op)
{
    switch (op->opc) {
    case IR_QLD: /* 64-bit address */
    case IR_QST:
    case IR_CALL:
    case IR_STENV:
        return false;
    default:
        return op->type == IR_I32;
    }
}

static void make_nop(struct ir_op *op)
{
    memset(op, 0, sizeof(*op));
    op->opc = IR_NOP;
    for (unsigned i = 0; i < IR_MAX_ARGS; i++)
        op->args[i] = IR_NO_TEMP;
}

static void make_movi(struct ir_op *op, uint64_t value)
{
    ir_temp d = op->args[0];
    uint8_t type = op->type;
    make_nop(op);
    op->opc = IR_MOVI;
    op->type = type;
    op->args[0] = d;
    op->imm = value & type_mask((enum ir_type)type);
}

static void make_mov(struct ir_op *op, ir_temp src)
{
    ir_temp d = op->args[0];
    uint8_t type = op->type;
    make_nop(op);
    op->opc = IR_MOV;
    op->type = type;
    op->args[0] = d;
    op->args[1] = src;
}

/* For a comparison of a temp with itself: 1 true, 0 false, -1 depends on the value. */
static int cond_on_same(enum ir_cond c)
{
    switch (c) {
    case IR_COND_EQ:
    case IR_COND_GE:
    case IR_COND_LE:
    case IR_COND_GEU:
    case IR_COND_LEU:
    case IR_COND_ALWAYS:
        return 1;
    case IR_COND_NE:
    case IR_COND_LT:
    case IR_COND_GT:
    case IR_COND_LTU:
    case IR_COND_GTU:
    case IR_COND_NEVER:
        return 0;
    default:
        return -1;
    }
}

/* Statically decided outcome of `a cond b`: 1, 0 or -1 (unknown). */
static int decide_cond(const struct ir_block *b, const struct fwd_state *s, const struct ir_op *op,
                       ir_temp ta, ir_temp tb)
{
    enum ir_cond c = (enum ir_cond)op->cond;
    uint64_t va, vb;
    if (c == IR_COND_ALWAYS)
        return 1;
    if (c == IR_COND_NEVER)
        return 0;
    bool ka = get_known(b, s, ta, &va), kb = get_known(b, s, tb, &vb);
    if (ka && kb)
        return ir_cond_eval(c, (enum ir_type)op->type, va, vb);
    if (ta == tb)
        return cond_on_same(c);
    uint64_t mask = type_mask((enum ir_type)op->type);
    bool a_zero = ka && (va & mask) == 0, b_zero = kb && (vb & mask) == 0;
    switch (c) { /* comparisons with 0 that do not depend on the other operand */
    case IR_COND_TSTEQ:
        return (a_zero || b_zero) ? 1 : -1;
    case IR_COND_TSTNE:
        return (a_zero || b_zero) ? 0 : -1;
    case IR_COND_LTU:
        return b_zero ? 0 : -1; /* x < 0 */
    case IR_COND_GEU:
        return b_zero ? 1 : -1;
    case IR_COND_LEU:
        return a_zero ? 1 : -1; /* 0 <= x */
    case IR_COND_GTU:
        return a_zero ? 0 : -1;
    default:
        return -1;
    }
}

/* Algebraic identities; may rewrite op into MOV or MOVI. */
static void simplify(const struct ir_block *b, const struct fwd_state *s, struct ir_op *op)
{
    enum ir_type t = (enum ir_type)op->type;
    uint64_t mask = type_mask(t);
    ir_temp x = op->args[1], y = op->args[2];
    uint64_t vx = 0, vy = 0;
    bool kx = false, ky = false;
    const struct ir_opcode_info *info = ir_opcode_info((enum ir_opcode)op->opc);
    if (info->nr_out != 1 || op->opc == IR_CALL || op->opc == IR_QLD || op->opc == IR_FPOP ||
        op->opc == IR_VOP)
        return; /* only pure single-output ops have identities */
    if (info->nr_in >= 1)
        kx = get_known(b, s, x, &vx);
    if (info->nr_in >= 2)
        ky = get_known(b, s, y, &vy);
    vx &= mask;
    vy &= mask;

    switch (op->opc) {
    case IR_ADD:
    case IR_OR:
    case IR_XOR:
        if (ky && vy == 0)
            make_mov(op, x);
        else if (kx && vx == 0)
            make_mov(op, y);
        else if (op->opc == IR_OR && ((kx && vx == mask) || (ky && vy == mask)))
            make_movi(op, mask);
        else if (op->opc == IR_OR && x == y)
            make_mov(op, x);
        else if (op->opc == IR_XOR && x == y)
            make_movi(op, 0);
        break;
    case IR_SUB:
        if (ky && vy == 0)
            make_mov(op, x);
        else if (x == y)
            make_movi(op, 0);
        break;
    case IR_MUL:
        if ((kx && vx == 0) || (ky && vy == 0))
            make_movi(op, 0);
        else if (ky && vy == 1)
            make_mov(op, x);
        else if (kx && vx == 1)
            make_mov(op, y);
        break;
    case IR_AND:
        if ((kx && vx == 0) || (ky && vy == 0))
            make_movi(op, 0);
        else if (ky && vy == mask)
            make_mov(op, x);
        else if (kx && vx == mask)
            make_mov(op, y);
        else if (x == y)
            make_mov(op, x);
        break;
    case IR_ANDC:
        if ((kx && vx == 0) || (ky && vy == mask) || x == y)
            make_movi(op, 0);
        else if (ky && vy == 0)
            make_mov(op, x);
        break;
    case IR_SHL:
    case IR_SHR:
    case IR_SAR:
    case IR_ROTL:
    case IR_ROTR:
        if (ky && (vy & (type_bits(t) - 1)) == 0)
            make_mov(op, x);
        else if (kx && vx == 0)
            make_movi(op, 0);
        else if (kx && vx == mask && op->opc != IR_SHL && op->opc != IR_SHR)
            make_movi(op, mask);
        break;
    case IR_SETCOND: {
        int r = decide_cond(b, s, op, x, y);
        if (r >= 0)
            make_movi(op, (uint64_t)r);
        else if (op->cond == IR_COND_NE && ky && vy == 0 && maybe_set(b, s, x) == 1)
            make_mov(op, x); /* x != 0 of a 0/1 value */
        break;
    }
    case IR_MOVCOND: {
        int r = decide_cond(b, s, op, x, y);
        if (r >= 0)
            make_mov(op, r ? op->args[3] : op->args[4]);
        else if (op->args[3] == op->args[4])
            make_mov(op, op->args[3]);
        break;
    }
    case IR_CLZ:
    case IR_CTZ:
        if (kx && vx == 0)
            make_mov(op, y);
        break;
    case IR_EXT8U:
    case IR_EXT16U:
    case IR_EXT32U: { /* of a value already that narrow: a move */
        uint64_t keep = op->opc == IR_EXT8U ? 0xff : op->opc == IR_EXT16U ? 0xffff : 0xffffffffull;
        if ((maybe_set(b, s, x) & ~keep) == 0)
            make_mov(op, x);
        break;
    }
    default:
        break;
    }
    if (op->opc == IR_AND && !kx && ky && (maybe_set(b, s, x) & ~vy & mask) == 0)
        make_mov(op, x); /* masks off nothing */
}

/* A constant temp holding `value` (all 64 bits), or IR_NO_TEMP if the temp table is full.
 * The optimiser must not set b->overflow: the block is already complete. */
static ir_temp const_temp(struct ir_block *b, uint64_t value)
{
    for (uint32_t i = b->nr_globals; i < b->nr_temps; i++) {
        const struct ir_temp_info *ti = &b->temps[i];
        if (ti->kind == IR_TEMP_CONST && ti->value == value)
            return (ir_temp)i;
    }
    if (b->nr_temps >= IR_MAX_TEMPS)
        return IR_NO_TEMP;
    return ir_const(b, IR_I64, value);
}

static void forward_pass(struct ir_block *b, struct fwd_state *s)
{
    bool unreachable = false;
    forget_all(b, s);
    for (uint32_t i = 0; i < b->nr_ops; i++) {
        struct ir_op *op = &b->ops[i];
        enum ir_opcode opc = (enum ir_opcode)op->opc;
        if (opc == IR_LABEL) {
            unreachable = false;
            forget_all(b, s);
            continue;
        }
        if (unreachable) { /* after BR/exit and before any label: never executed */
            make_nop(op);
            continue;
        }
        const struct ir_opcode_info *info = ir_opcode_info(opc);
        unsigned nout = info->nr_out, nin = info->nr_in;

        /* Copy propagation on the inputs. */
        for (unsigned k = nout; k < nout + nin; k++) {
            ir_temp t = op->args[k];
            if (t == IR_NO_TEMP || temp_is_const(b, t))
                continue;
            ir_temp src = s->copy_src[t];
            if (src != IR_NO_TEMP && s->version[src] == s->copy_version[t] &&
                (!s->copy_low32[t] || reads_low32_only(op)))
                op->args[k] = src;
        }

        /* Constant folding of pure single-output ops. */
        uint64_t in[4] = {0, 0, 0, 0};
        bool all_known = nout == 1 && nin >= 1 && opc != IR_CALL && opc != IR_QLD &&
                         opc != IR_FPOP && opc != IR_VOP;
        for (unsigned k = 0; k < nin && all_known; k++)
            all_known = get_known(b, s, op->args[nout + k], &in[k]);
        uint64_t folded;
        if (all_known && fold_eval(op, in, &folded))
            make_movi(op, folded);
        else if (opc != IR_BRCOND)
            simplify(b, s, op);

        opc = (enum ir_opcode)op->opc;
        info = ir_opcode_info(opc);
        nout = info->nr_out;
        nin = info->nr_in;

        /* Inputs still known to be constant read a constant temp instead, so the MOVI that
         * produced them can die. */
        for (unsigned k = nout; k < nout + nin; k++) {
            ir_temp t = op->args[k];
            uint64_t v;
            if (t == IR_NO_TEMP || temp_is_const(b, t) || !s->known[t])
                continue;
            v = s->value[t];
            ir_temp c = const_temp(b, v);
            if (c != IR_NO_TEMP)
                op->args[k] = c;
        }

        switch (opc) {
        case IR_MOVI:
            op->imm &= type_mask((enum ir_type)op->type);
            redefine(s, op->args[0]);
            s->known[op->args[0]] = true;
            s->value[op->args[0]] = op->imm;
            break;
        case IR_MOV: {
            ir_temp d = op->args[0], src = op->args[1];
            uint64_t v;
            if (get_known(b, s, src, &v)) {
                make_movi(op, v);
                redefine(s, d);
                s->known[d] = true;
                s->value[d] = op->imm;
                break;
            }
            if (d == src && op->type == IR_I64) {
                make_nop(op);
                break;
            }
            uint64_t bits = result_bits(b, s, op);
            redefine(s, d);
            s->maybe_set[d] = bits;
            if (d != src) {
                s->copy_src[d] = src;
                s->copy_version[d] = s->version[src];
                /* an i32 move of a value with no high bits is a full copy */
                s->copy_low32[d] = op->type == IR_I32 && (maybe_set(b, s, src) >> 32) != 0;
            }
            break;
        }
        case IR_EXT32U: { /* d = zext32(src): a copy for readers of the low half */
            ir_temp d = op->args[0], src = op->args[1];
            uint64_t src_bits = maybe_set(b, s, src);
            redefine(s, d);
            s->maybe_set[d] = src_bits & 0xffffffffu;
            if (d != src && !temp_is_const(b, src)) {
                s->copy_src[d] = src;
                s->copy_version[d] = s->version[src];
                s->copy_low32[d] = (src_bits >> 32) != 0;
            }
            break;
        }
        case IR_BRCOND: {
            int r = decide_cond(b, s, op, op->args[0], op->args[1]);
            if (r == 0) {
                make_nop(op);
            } else if (r == 1) {
                uint64_t label = op->imm;
                make_nop(op);
                op->opc = IR_BR;
                op->imm = label;
                unreachable = true;
            }
            break;
        }
        case IR_BR:
        case IR_EXIT_TB:
        case IR_GOTO_TB:
        case IR_LOOP_TB:
            unreachable = true;
            break;
        case IR_CALL:
            if (helper_flags(b, op->imm) & IR_HELPER_WRITES_GLOBALS)
                for (ir_temp g = 0; g < b->nr_globals; g++)
                    redefine(s, g);
            if (op->args[0] != IR_NO_TEMP)
                redefine(s, op->args[0]);
            break;
        case IR_STENV:
            for (ir_temp g = 0; g < b->nr_globals; g++)
                if (overlaps_global(b, g, op->imm))
                    redefine(s, g);
            break;
        default: {
            uint64_t bits = nout == 1 ? result_bits(b, s, op) : UINT64_MAX;
            for (unsigned k = 0; k < nout; k++)
                redefine(s, op->args[k]);
            if (nout == 1)
                s->maybe_set[op->args[0]] = bits;
            break;
        }
        }
    }
}

/* Drops labels no branch refers to (so knowledge flows through them) and branches to the
 * label right after them. Returns whether anything changed. */
static bool cleanup_labels(struct ir_block *b)
{
    uint16_t refs[IR_MAX_LABELS];
    bool changed = false;
    memset(refs, 0, sizeof(refs));
    for (uint32_t i = 0; i < b->nr_ops; i++) {
        struct ir_op *op = &b->ops[i];
        if (op->opc != IR_BR)
            continue;
        uint32_t j = i + 1;
        while (j < b->nr_ops && b->ops[j].opc == IR_NOP)
            j++;
        if (j < b->nr_ops && b->ops[j].opc == IR_LABEL && b->ops[j].imm == op->imm) {
            make_nop(op);
            changed = true;
        }
    }
    for (uint32_t i = 0; i < b->nr_ops; i++) {
        const struct ir_op *op = &b->ops[i];
        if ((op->opc == IR_BR || op->opc == IR_BRCOND) && op->imm < IR_MAX_LABELS)
            refs[op->imm]++;
        else if (op->opc == IR_LOOP_TB && IR_LOOP_LABEL(op->imm) < IR_MAX_LABELS)
            refs[IR_LOOP_LABEL(op->imm)]++;
    }
    for (uint32_t i = 0; i < b->nr_ops; i++) {
        struct ir_op *op = &b->ops[i];
        if (op->opc == IR_LABEL && op->imm < IR_MAX_LABELS && refs[op->imm] == 0) {
            make_nop(op);
            changed = true;
        }
    }
    return changed;
}

/* --- dead code elimination ---------------------------------------------------------------- */

static bool is_block_boundary_after(enum ir_opcode opc)
{
    return opc == IR_BR || opc == IR_BRCOND || opc == IR_EXIT_TB || opc == IR_GOTO_TB ||
           opc == IR_LOOP_TB;
}

/* Locals read before being written within some basic block. */
static void find_cross_block_locals(const struct ir_block *b, bool *cross)
{
    static const uint32_t never = UINT32_MAX;
    uint32_t defined_in_bb[IR_MAX_TEMPS];
    uint32_t bb = 0;
    for (uint32_t t = 0; t < b->nr_temps; t++) {
        defined_in_bb[t] = never;
        cross[t] = false;
    }
    for (uint32_t i = 0; i < b->nr_ops; i++) {
        const struct ir_op *op = &b->ops[i];
        const struct ir_opcode_info *info = ir_opcode_info((enum ir_opcode)op->opc);
        if (op->opc == IR_LABEL)
            bb++;
        for (unsigned k = info->nr_out; k < info->nr_out + info->nr_in; k++) {
            ir_temp t = op->args[k];
            if (t != IR_NO_TEMP && b->temps[t].kind == IR_TEMP_LOCAL && defined_in_bb[t] != bb)
                cross[t] = true;
        }
        for (unsigned k = 0; k < info->nr_out; k++)
            if (op->args[k] != IR_NO_TEMP)
                defined_in_bb[op->args[k]] = bb;
        if (is_block_boundary_after((enum ir_opcode)op->opc))
            bb++;
    }
}

static bool removable(const struct ir_block *b, const struct ir_op *op)
{
    switch (op->opc) {
    case IR_QLD: /* may fault */
    case IR_QST:
    case IR_STENV:
    case IR_FPENV: /* the guest's MXCSR flags are results too */
    case IR_FPOP:
    case IR_VOP: /* the FP forms raise MXCSR flags */
    case IR_LABEL:
    case IR_BR:
    case IR_BRCOND:
    case IR_INSN_START:
    case IR_GOTO_TB:
    case IR_LOOP_TB:
    case IR_EXIT_TB:
        return false;
    case IR_CALL: {
        uint32_t f = helper_flags(b, op->imm);
        return (f & IR_HELPER_NO_SIDE_EFFECTS) &&
               !(f & (IR_HELPER_WRITES_GLOBALS | IR_HELPER_MAY_EXIT));
    }
    default:
        return true;
    }
}

static void dead_code_pass(struct ir_block *b)
{
    bool cross[IR_MAX_TEMPS];
    bool live[IR_MAX_TEMPS];
    uint32_t nt = b->nr_temps, ng = b->nr_globals;
    find_cross_block_locals(b, cross);

    /* Falling off the end leaves the block: globals live, locals dead. */
    for (uint32_t t = 0; t < nt; t++)
        live[t] = t < ng;

    for (uint32_t i = b->nr_ops; i-- > 0;) {
        struct ir_op *op = &b->ops[i];
        enum ir_opcode opc = (enum ir_opcode)op->opc;
        const struct ir_opcode_info *info = ir_opcode_info(opc);
        bool observes_globals = false;
        switch (opc) {
        case IR_NOP:
        case IR_LABEL:
        case IR_INSN_START:
            continue;
        case IR_EXIT_TB:
        case IR_GOTO_TB:
        case IR_LOOP_TB: /* at the loop's head too, only globals are live (see ir.h) */
            for (uint32_t t = 0; t < nt; t++)
                live[t] = t < ng;
            continue;
        case IR_BR:
            for (uint32_t t = 0; t < nt; t++)
                live[t] = t < ng || cross[t];
            continue;
        case IR_BRCOND:
            for (uint32_t t = 0; t < nt; t++)
                live[t] = live[t] || t < ng || cross[t];
            break;
        case IR_QLD:
        case IR_QST:
            observes_globals = true;
            break;
        case IR_CALL:
            observes_globals =
                (helper_flags(b, op->imm) & (IR_HELPER_READS_GLOBALS | IR_HELPER_MAY_EXIT)) != 0;
            break;
        default:
            break;
        }

        bool any_out_live = false;
        for (unsigned k = 0; k < info->nr_out; k++)
            if (op->args[k] != IR_NO_TEMP && live[op->args[k]])
                any_out_live = true;
        if (!any_out_live && removable(b, op)) {
            make_nop(op);
            continue;
        }
        for (unsigned k = 0; k < info->nr_out; k++)
            if (op->args[k] != IR_NO_TEMP)
                live[op->args[k]] = false;
        for (unsigned k = info->nr_out; k < info->nr_out + info->nr_in; k++)
            if (op->args[k] != IR_NO_TEMP)
                live[op->args[k]] = true;
        if (observes_globals)
            for (uint32_t g = 0; g < ng; g++)
                live[g] = true;
        if (opc == IR_LDENV)
            for (ir_temp g = 0; g < ng; g++)
                if (overlaps_global(b, g, op->imm))
                    live[g] = true;
    }
}

static void compact(struct ir_block *b)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < b->nr_ops; i++)
        if (b->ops[i].opc != IR_NOP)
            b->ops[n++] = b->ops[i];
    b->nr_ops = n;
}

/* The passes trust op shapes; a block that did not come from the builder is left alone. */
static bool well_formed(const struct ir_block *b)
{
    if (b->nr_ops > IR_MAX_OPS || b->nr_temps > IR_MAX_TEMPS || b->nr_globals > b->nr_temps)
        return false;
    for (uint32_t i = 0; i < b->nr_ops; i++) {
        const struct ir_op *op = &b->ops[i];
        const struct ir_opcode_info *info = ir_opcode_info((enum ir_opcode)op->opc);
        if (!info || op->type > IR_I64)
            return false;
        for (unsigned k = 0; k < (unsigned)(info->nr_out + info->nr_in); k++) {
            ir_temp t = op->args[k];
            if (t == IR_NO_TEMP && op->opc == IR_CALL)
                continue;
            if (t >= b->nr_temps)
                return false;
            if (k < info->nr_out && b->temps[t].kind == IR_TEMP_CONST)
                return false;
        }
    }
    return true;
}

void ir_optimize(struct ir_block *b)
{
    if (!well_formed(b))
        return;
    /* Only the block's temps are set up (forget_all does the rest): zeroing all 28 KiB of
     * the state was a tenth of the optimiser's time. */
    struct fwd_state state, *s = &state;
    for (uint32_t t = 0; t < b->nr_temps; t++) {
        s->version[t] = s->copy_version[t] = 0;
        s->copy_low32[t] = false;
        s->value[t] = 0;
    }
    forward_pass(b, s);
    /* Removing labels lets knowledge flow further; two rounds catch the common
     * "branch folded away, its label now unused" case without unbounded iteration. */
    for (int round = 0; round < 2 && cleanup_labels(b); round++)
        forward_pass(b, s);
    dead_code_pass(b);
    ir_coalesce_copies(b);
    compact(b);
}
