/* Portable backend: IR block -> compact pre-decoded word array -> threaded interpreter.
 *
 * Pre-decoded form: a flat array of uint32_t words. Each instruction is one opcode word (an
 * interp opcode with the IR type, and for SETCOND/BRCOND the condition, folded in, so no
 * run-time switch on either) followed by its operands and immediates; instructions are
 * variable length (2-7 words), keeping blocks dense in the data cache.
 *
 * Operands are "locations" resolved at compile time: a byte offset from one of two bases,
 * selected by bit 31 — the on-stack frame (locals and constants) or env (globals, in place).
 * The select compiles to a cmov, so every operand access is one select plus one load/store,
 * with no per-kind branching and no copying of guest state in or out.
 *
 * Frame layout: [constants][locals that may be read before written][other locals]. The code
 * object carries a template for the first two regions (constant values, then zeros) that is
 * memcpy'd in at entry; the remaining locals are written before they can be read, so reading
 * the frame never touches indeterminate memory. Unreferenced temps get no slot.
 *
 * Branch targets are word offsets into the code; a terminal EXIT_TB(IR_EXIT_NEXT) catches both
 * falling off the end and labels placed after the last op. Dispatch uses computed goto under
 * GNU C (define QUOKKA_INTERP_SWITCH to force the portable switch).
 */
#include "accel/tcg/backend/interp.h"
#include "accel/tcg/ir/bits.h"
#include "accel/tcg/ir/fpenv.h"
#include "accel/tcg/ir/vecop.h"

#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__) && !defined(QUOKKA_INTERP_SWITCH)
#define INTERP_COMPUTED_GOTO 1
#else
#define INTERP_COMPUTED_GOTO 0
#endif

/* The op lists read as tables: clang-format would pile them up. */
/* clang-format off */
/* Ops with an _I32 and an _I64 flavour, in that order, adjacent in the opcode space. */
#define INTERP_TYPED_OPS(X)                                                                        \
    X(MOV) X(ADD) X(SUB) X(MUL) X(AND) X(OR) X(XOR) X(ANDC) X(SHL) X(SHR) X(SAR) X(ROTL) X(ROTR) \
    X(NEG) X(NOT) X(EXT8S) X(EXT8U) X(EXT16S) X(EXT16U) X(EXT32S) X(EXT32U) X(DEPOSIT)          \
    X(EXTRACT) X(MOVCOND) X(MULU2) X(MULS2) X(CLZ) X(CTZ) X(CTPOP) X(BSWAP) X(QLD) X(QST)
/* Must list enum ir_cond from IR_COND_EQ up to (excluding) IR_COND_ALWAYS, in order. */
#define INTERP_CONDS(X)                                                                            \
    X(EQ) X(NE) X(LT) X(GE) X(LE) X(GT) X(LTU) X(GEU) X(LEU) X(GTU) X(TSTEQ) X(TSTNE)
#define INTERP_PLAIN_OPS(X)                                                                        \
    X(MOVI) X(LDENV) X(STENV) X(CALL) X(CALL_VOID) X(BR) X(GOTO_TB) X(EXIT_TB) X(FPENV) X(FPOP) X(VOP)
/* clang-format on */

enum interp_opcode {
#define ENUM_TYPED(n) I_##n##_I32, I_##n##_I64,
#define ENUM_COND(c)                                                                               \
    I_SETCOND_##c##_I32, I_SETCOND_##c##_I64, I_BRCOND_##c##_I32, I_BRCOND_##c##_I64,
#define ENUM_PLAIN(n) I_##n,
    INTERP_TYPED_OPS(ENUM_TYPED) INTERP_CONDS(ENUM_COND) INTERP_PLAIN_OPS(ENUM_PLAIN)
#undef ENUM_TYPED
#undef ENUM_COND
#undef ENUM_PLAIN
        I_NR_OPCODES
};

/* Condition c's SETCOND is I_SETCOND_EQ_I32 + 4 * c (+1 for i64, +2 for BRCOND). */
_Static_assert(I_SETCOND_TSTNE_I32 - I_SETCOND_EQ_I32 == 4 * IR_COND_TSTNE, "cond order");
_Static_assert(IR_COND_TSTNE + 1 == IR_COND_ALWAYS, "cond order");

#define LOC_ENV 0x80000000u /* location bit: offset is from env, not the frame */
#define MAX_INSN_WORDS 7
#define FRAME_SLOTS (IR_MAX_TEMPS + 1) /* every temp, plus a zero for absent call args */

struct interp_code {
    const struct interp_mem_ops *mem;
    const struct ir_helper *helpers;
    size_t size;         /* bytes of this allocation */
    uint32_t init_slots; /* frame slots copied from frame_init at entry */
    uint32_t nr_words;
    const uint64_t *frame_init;
    const uint32_t *code;
};

/* --- compiler ----------------------------------------------------------------------------- */

struct compiler {
    const struct ir_block *b;
    uint32_t loc[IR_MAX_TEMPS];
    uint32_t label_pos[IR_MAX_LABELS];
    uint32_t zero_loc; /* frame slot holding 0, for absent CALL arguments */
};

#define NO_POS UINT32_MAX

static bool valid_cond(uint8_t cond)
{
    return cond <= IR_COND_NEVER;
}

/* Encodes one op into w[] (at most MAX_INSN_WORDS). Returns the word count (0: the op needs
 * no code), or -1 if the op is malformed. Label targets are only meaningful once
 * label_pos[] is complete (second pass). */
static int encode(const struct compiler *c, const struct ir_op *op, uint32_t *w)
{
    const struct ir_block *b = c->b;
    const ir_temp *a = op->args;
    uint32_t is64 = op->type == IR_I64;
    enum ir_opcode opc = (enum ir_opcode)op->opc;
#define L(i) (c->loc[a[i]])
    switch (opc) {
    case IR_NOP:
    case IR_LABEL:
    case IR_INSN_START:
        return 0;
    case IR_MOVI: {
        uint64_t v = is64 ? op->imm : (uint32_t)op->imm;
        w[0] = I_MOVI, w[1] = L(0), w[2] = (uint32_t)v, w[3] = (uint32_t)(v >> 32);
        return 4;
    }
#define CASE_UNARY(n)                                                                              \
    case IR_##n:                                                                                   \
        w[0] = I_##n##_I32 + is64, w[1] = L(0), w[2] = L(1);                                       \
        return 3;
        CASE_UNARY(MOV)
        CASE_UNARY(NEG)
        CASE_UNARY(NOT)
        CASE_UNARY(EXT8S)
        CASE_UNARY(EXT8U)
        CASE_UNARY(EXT16S)
        CASE_UNARY(EXT16U)
        CASE_UNARY(EXT32S)
        CASE_UNARY(EXT32U)
        CASE_UNARY(CTPOP)
        CASE_UNARY(BSWAP)
#undef CASE_UNARY
#define CASE_BINARY(n)                                                                             \
    case IR_##n:                                                                                   \
        w[0] = I_##n##_I32 + is64, w[1] = L(0), w[2] = L(1), w[3] = L(2);                          \
        return 4;
        CASE_BINARY(ADD)
        CASE_BINARY(SUB)
        CASE_BINARY(MUL)
        CASE_BINARY(AND)
        CASE_BINARY(OR)
        CASE_BINARY(XOR)
        CASE_BINARY(ANDC)
        CASE_BINARY(SHL)
        CASE_BINARY(SHR)
        CASE_BINARY(SAR)
        CASE_BINARY(ROTL)
        CASE_BINARY(ROTR)
        CASE_BINARY(CLZ)
        CASE_BINARY(CTZ)
#undef CASE_BINARY
    case IR_DEPOSIT:
        if (!ir_field_valid(op))
            return -1;
        w[0] = I_DEPOSIT_I32 + is64, w[1] = L(0), w[2] = L(1), w[3] = L(2);
        w[4] = (uint32_t)op->imm;
        return 5;
    case IR_EXTRACT:
        if (!ir_field_valid(op))
            return -1;
        w[0] = I_EXTRACT_I32 + is64, w[1] = L(0), w[2] = L(1), w[3] = (uint32_t)op->imm;
        return 4;
    case IR_SETCOND:
        if (!valid_cond(op->cond))
            return -1;
        if (op->cond >= IR_COND_ALWAYS) { /* constant result */
            w[0] = I_MOVI, w[1] = L(0), w[2] = op->cond == IR_COND_ALWAYS, w[3] = 0;
            return 4;
        }
        w[0] = I_SETCOND_EQ_I32 + 4 * op->cond + is64, w[1] = L(0), w[2] = L(1), w[3] = L(2);
        return 4;
    case IR_MOVCOND:
        if (!valid_cond(op->cond))
            return -1;
        if (op->cond >= IR_COND_ALWAYS) {
            w[0] = I_MOV_I32 + is64, w[1] = L(0), w[2] = op->cond == IR_COND_ALWAYS ? L(3) : L(4);
            return 3;
        }
        w[0] = I_MOVCOND_I32 + is64, w[1] = L(0), w[2] = L(1), w[3] = L(2), w[4] = L(3);
        w[5] = L(4), w[6] = op->cond;
        return 7;
    case IR_MULU2:
    case IR_MULS2:
        w[0] = (opc == IR_MULU2 ? I_MULU2_I32 : I_MULS2_I32) + is64;
        w[1] = L(0), w[2] = L(1), w[3] = L(2), w[4] = L(3);
        return 5;
    case IR_QLD:
    case IR_QST:
        if (!ir_memop_valid(op->imm))
            return -1;
        w[0] = (opc == IR_QLD ? I_QLD_I32 : I_QST_I32) + is64;
        w[1] = L(0), w[2] = L(1), w[3] = (uint32_t)op->imm;
        return 4;
    case IR_LDENV:
    case IR_STENV:
        if (op->imm > LOC_ENV - 8)
            return -1;
        w[0] = opc == IR_LDENV ? I_LDENV : I_STENV, w[1] = L(0), w[2] = (uint32_t)op->imm;
        return 3;
    case IR_FPENV:
        if (!IR_HOST_FP || (op->imm & UINT32_MAX) > LOC_ENV - 4 || (op->imm >> 32) > LOC_ENV - 8)
            return -1;
        w[0] = I_FPENV, w[1] = (uint32_t)op->imm, w[2] = (uint32_t)(op->imm >> 32);
        return 3;
    case IR_FPOP:
        if (!ir_fpop_valid(op->imm))
            return -1;
        w[0] = I_FPOP, w[1] = L(0), w[2] = L(1), w[3] = L(2), w[4] = (uint32_t)op->imm;
        return 5;
    case IR_VOP:
        if (!ir_vop_valid(op->imm))
            return -1;
        w[0] = I_VOP, w[1] = L(0), w[2] = L(1), w[3] = L(2), w[4] = L(3), w[5] = L(4);
        w[6] = (uint32_t)op->imm;
        return 7;
    case IR_CALL:
        if (!b->helpers || op->imm >= b->nr_helpers || !b->helpers[op->imm].fn)
            return -1;
        w[0] = a[0] == IR_NO_TEMP ? I_CALL_VOID : I_CALL;
        w[1] = a[0] == IR_NO_TEMP ? 0 : L(0);
        for (unsigned i = 1; i < IR_MAX_ARGS; i++)
            w[1 + i] = a[i] == IR_NO_TEMP ? c->zero_loc : L(i);
        w[6] = (uint32_t)op->imm;
        return 7;
    case IR_BR:
        if (op->imm >= b->nr_labels || op->imm >= IR_MAX_LABELS)
            return -1;
        w[0] = I_BR, w[1] = c->label_pos[op->imm];
        return 2;
    case IR_BRCOND:
        if (!valid_cond(op->cond) || op->imm >= b->nr_labels || op->imm >= IR_MAX_LABELS)
            return -1;
        if (op->cond == IR_COND_NEVER)
            return 0;
        if (op->cond == IR_COND_ALWAYS) {
            w[0] = I_BR, w[1] = c->label_pos[op->imm];
            return 2;
        }
        w[0] = I_BRCOND_EQ_I32 + 4 * op->cond + is64, w[1] = L(0), w[2] = L(1);
        w[3] = c->label_pos[op->imm];
        return 4;
    case IR_GOTO_TB:
        if (op->imm > 0xff) /* must not collide with the exit reasons' range */
            return -1;
        w[0] = I_GOTO_TB, w[1] = (uint32_t)op->imm;
        return 2;
    case IR_LOOP_TB: /* the run loop runs the block again: it looks for interrupts first */
        if (IR_LOOP_SLOT(op->imm) > 0xff)
            return -1;
        w[0] = I_GOTO_TB, w[1] = IR_LOOP_SLOT(op->imm);
        return 2;
    case IR_EXIT_TB:
        if (op->imm > 0xff)
            return -1;
        w[0] = I_EXIT_TB, w[1] = (uint32_t)op->imm;
        return 2;
    case IR_NR_OPCODES: /* no default: a new IR opcode must be handled here (-Wswitch) */
        break;
    }
#undef L
    return -1;
}

/* Validates temp references and assigns every referenced temp a location. */
static bool assign_locations(struct compiler *c, uint64_t *init, uint32_t *init_slots)
{
    const struct ir_block *b = c->b;
    uint8_t use[IR_MAX_TEMPS];
    bool need_zero_const;
    if (!ir_temp_uses(b, use, &need_zero_const))
        return false;
    for (uint32_t t = 0; t < b->nr_temps; t++)
        if (b->temps[t].kind == IR_TEMP_GLOBAL && b->temps[t].env_offset > LOC_ENV - 8)
            return false;

    uint32_t slot = 0;
    for (uint32_t t = 0; t < b->nr_temps; t++) {
        const struct ir_temp_info *ti = &b->temps[t];
        if (ti->kind == IR_TEMP_GLOBAL)
            c->loc[t] = LOC_ENV | ti->env_offset;
        else if (ti->kind == IR_TEMP_CONST && use[t] != IR_USE_NONE) {
            init[slot] = ti->value;
            c->loc[t] = 8 * slot++;
        } else if (ti->kind != IR_TEMP_CONST && ti->kind != IR_TEMP_LOCAL)
            return false;
    }
    if (need_zero_const) {
        init[slot] = 0;
        c->zero_loc = 8 * slot++;
    }
    for (uint32_t t = 0; t < b->nr_temps; t++)
        if (b->temps[t].kind == IR_TEMP_LOCAL && use[t] == IR_USE_READ_UNDEFINED) {
            init[slot] = 0;
            c->loc[t] = 8 * slot++;
        }
    *init_slots = slot;
    for (uint32_t t = 0; t < b->nr_temps; t++)
        if (b->temps[t].kind == IR_TEMP_LOCAL && use[t] == IR_USE_DEFINED)
            c->loc[t] = 8 * slot++;
    return true;
}

struct interp_code *interp_compile(const struct ir_block *block, const struct interp_mem_ops *mem)
{
    if (!block || block->nr_ops > IR_MAX_OPS || block->nr_temps > IR_MAX_TEMPS ||
        block->nr_labels > IR_MAX_LABELS)
        return NULL;
    struct compiler *c = malloc(sizeof(*c));
    uint64_t *init = malloc(FRAME_SLOTS * sizeof(uint64_t));
    struct interp_code *code = NULL;
    uint32_t init_slots = 0;
    if (!c || !init)
        goto out;
    c->b = block;
    c->zero_loc = 0;
    if (!assign_locations(c, init, &init_slots))
        goto out;

    /* Pass 1: sizes and label positions. */
    uint32_t words = 0, scratch[MAX_INSN_WORDS];
    for (uint32_t l = 0; l < IR_MAX_LABELS; l++)
        c->label_pos[l] = NO_POS;
    for (uint32_t i = 0; i < block->nr_ops; i++) {
        const struct ir_op *op = &block->ops[i];
        if (op->opc == IR_LABEL) {
            if (op->imm >= block->nr_labels || c->label_pos[op->imm] != NO_POS)
                goto out; /* unknown or twice-placed label */
            c->label_pos[op->imm] = words;
        }
        int n = encode(c, op, scratch);
        if (n < 0)
            goto out;
        words += (uint32_t)n;
    }
    uint32_t total_words = words + 2; /* + the terminal EXIT_TB */

    size_t size = sizeof(*code) + init_slots * sizeof(uint64_t) + total_words * sizeof(uint32_t);
    code = malloc(size);
    if (!code)
        goto out;
    uint64_t *frame_init = (uint64_t *)(code + 1);
    uint32_t *words_out = (uint32_t *)(frame_init + init_slots);
    memcpy(frame_init, init, init_slots * sizeof(uint64_t));

    /* Pass 2: emit, with branch targets resolved. */
    uint32_t pos = 0;
    for (uint32_t i = 0; i < block->nr_ops; i++) {
        const struct ir_op *op = &block->ops[i];
        if ((op->opc == IR_BR || op->opc == IR_BRCOND) && c->label_pos[op->imm] == NO_POS) {
            free(code); /* branch to a label that is never placed */
            code = NULL;
            goto out;
        }
        int n = encode(c, op, words_out + pos);
        pos += (uint32_t)n;
    }
    words_out[pos++] = I_EXIT_TB;
    words_out[pos++] = IR_EXIT_NEXT;

    code->mem = mem;
    code->helpers = block->helpers;
    code->size = size;
    code->init_slots = init_slots;
    code->nr_words = total_words;
    code->frame_init = frame_init;
    code->code = words_out;
out:
    free(init);
    free(c);
    return code;
}

void interp_free(struct interp_code *code)
{
    free(code);
}

size_t interp_code_size(const struct interp_code *code)
{
    return code ? code->size : 0;
}

/* --- executor ----------------------------------------------------------------------------- */

static inline uint64_t load64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static inline void store64(uint8_t *p, uint64_t v)
{
    memcpy(p, &v, sizeof(v));
}

static inline void mulu64(uint64_t a, uint64_t b, uint64_t *lo, uint64_t *hi)
{
#if defined(__SIZEOF_INT128__)
    unsigned __int128 p = (unsigned __int128)a * b;
    *lo = (uint64_t)p;
    *hi = (uint64_t)(p >> 64);
#else
    uint64_t al = (uint32_t)a, ah = a >> 32, bl = (uint32_t)b, bh = b >> 32;
    uint64_t ll = al * bl, lh = al * bh, hl = ah * bl, hh = ah * bh;
    uint64_t mid = (ll >> 32) + (uint32_t)lh + (uint32_t)hl;
    *lo = (mid << 32) | (uint32_t)ll;
    *hi = hh + (lh >> 32) + (hl >> 32) + (mid >> 32);
#endif
}

/* Loaded value -> op value: sign- or zero-extend from the access size. */
static inline uint64_t extend_load(uint64_t v, uint32_t memop)
{
    unsigned bits = (memop & IR_MEM_SIZE_MASK) * 8;
    if (bits >= 64)
        return v;
    uint64_t field = (1ull << bits) - 1, sign = 1ull << (bits - 1);
    v &= field;
    return (memop & IR_MEM_SIGN) ? (v ^ sign) - sign : v;
}

static inline uint64_t truncate_store(uint64_t v, uint32_t memop)
{
    unsigned bits = (memop & IR_MEM_SIZE_MASK) * 8;
    return bits >= 64 ? v : v & ((1ull << bits) - 1);
}

/* Per-op expressions, instantiated for (uint32_t, int32_t, 32) and (uint64_t, int64_t, 64).
 * The i32 results are truncated by the handler, which is the zero-extension rule. */
#define F_ADD(a, b, W, S) ((a) + (b))
#define F_SUB(a, b, W, S) ((a) - (b))
#define F_MUL(a, b, W, S) ((a) * (b))
#define F_AND(a, b, W, S) ((a) & (b))
#define F_OR(a, b, W, S) ((a) | (b))
#define F_XOR(a, b, W, S) ((a) ^ (b))
#define F_ANDC(a, b, W, S) ((a) & ~(b))
#define F_SHL(a, b, W, S) ((a) << ((b) & ((W)-1)))
#define F_SHR(a, b, W, S) ((a) >> ((b) & ((W)-1)))
#define F_SAR(a, b, W, S) ((S)(a) >> ((b) & ((W)-1))) /* gcc/clang: arithmetic shift */
#define F_ROTL(a, b, W, S) (((a) << ((b) & ((W)-1))) | ((a) >> ((0u - (b)) & ((W)-1))))
#define F_ROTR(a, b, W, S) (((a) >> ((b) & ((W)-1))) | ((a) << ((0u - (b)) & ((W)-1))))
#define F_MOV(a, W, S) (a)
#define F_NEG(a, W, S) (0u - (a))
#define F_NOT(a, W, S) (~(a))
#define F_EXT8S(a, W, S) ((S)(int8_t)(a))
#define F_EXT8U(a, W, S) ((a)&0xffu)
#define F_EXT16S(a, W, S) ((S)(int16_t)(a))
#define F_EXT16U(a, W, S) ((a)&0xffffu)
#define F_EXT32S(a, W, S) ((S)(int32_t)(a))
#define F_EXT32U(a, W, S) ((a)&0xffffffffu)
#define F_CTPOP(a, W, S) ir_popcount64(a)
#define F_BSWAP(a, W, S) (ir_bswap64(a) >> (64 - (W)))

/* Conditions: unsigned operands ua/ub, sign-interpreted sa/sb (unused ones vanish). */
#define C_EQ(ua, ub, sa, sb) ((ua) == (ub))
#define C_NE(ua, ub, sa, sb) ((ua) != (ub))
#define C_LT(ua, ub, sa, sb) ((sa) < (sb))
#define C_GE(ua, ub, sa, sb) ((sa) >= (sb))
#define C_LE(ua, ub, sa, sb) ((sa) <= (sb))
#define C_GT(ua, ub, sa, sb) ((sa) > (sb))
#define C_LTU(ua, ub, sa, sb) ((ua) < (ub))
#define C_GEU(ua, ub, sa, sb) ((ua) >= (ub))
#define C_LEU(ua, ub, sa, sb) ((ua) <= (ub))
#define C_GTU(ua, ub, sa, sb) ((ua) > (ub))
#define C_TSTEQ(ua, ub, sa, sb) (((ua) & (ub)) == 0)
#define C_TSTNE(ua, ub, sa, sb) (((ua) & (ub)) != 0)

uint32_t interp_exec(const struct interp_code *code, void *env)
{
    uint64_t frame[FRAME_SLOTS];
    uint8_t *const frame_base = (uint8_t *)frame;
    uint8_t *const env_base = env;
    const uint32_t *const start = code->code;
    const uint32_t *pc = start;
    const struct interp_mem_ops *const mem = code->mem;
    const struct ir_helper *const helpers = code->helpers;
    memcpy(frame, code->frame_init, code->init_slots * sizeof(uint64_t));

#define PTR(loc) (((loc)&LOC_ENV ? env_base : frame_base) + ((loc) & ~LOC_ENV))
#define RD(loc) load64(PTR(loc))
#define WR(loc, v) store64(PTR(loc), (v))

#if INTERP_COMPUTED_GOTO
    static const void *const dispatch_table[I_NR_OPCODES] = {
#define TABLE_TYPED(n) &&L_##n##_I32, &&L_##n##_I64,
#define TABLE_COND(c)                                                                              \
    &&L_SETCOND_##c##_I32, &&L_SETCOND_##c##_I64, &&L_BRCOND_##c##_I32, &&L_BRCOND_##c##_I64,
#define TABLE_PLAIN(n) &&L_##n,
        INTERP_TYPED_OPS(TABLE_TYPED) INTERP_CONDS(TABLE_COND) INTERP_PLAIN_OPS(TABLE_PLAIN)
#undef TABLE_TYPED
#undef TABLE_COND
#undef TABLE_PLAIN
    };
#define HANDLER(name) L_##name:
#define DISPATCH() goto *dispatch_table[*pc]
    DISPATCH();
#else
#define HANDLER(name) case I_##name:
#define DISPATCH() goto dispatch
dispatch:
    switch ((enum interp_opcode) * pc) {
#endif
#define NEXT(n)                                                                                    \
    do {                                                                                           \
        pc += (n);                                                                                 \
        DISPATCH();                                                                                \
    } while (0)

#define H_BINARY(n)                                                                                \
    HANDLER(n##_I32)                                                                               \
    {                                                                                              \
        uint32_t a = (uint32_t)RD(pc[2]), b = (uint32_t)RD(pc[3]);                                 \
        WR(pc[1], (uint32_t)F_##n(a, b, 32, int32_t));                                             \
        NEXT(4);                                                                                   \
    }                                                                                              \
    HANDLER(n##_I64)                                                                               \
    {                                                                                              \
        uint64_t a = RD(pc[2]), b = RD(pc[3]);                                                     \
        WR(pc[1], (uint64_t)F_##n(a, b, 64, int64_t));                                             \
        NEXT(4);                                                                                   \
    }
#define H_UNARY(n)                                                                                 \
    HANDLER(n##_I32)                                                                               \
    {                                                                                              \
        uint32_t a = (uint32_t)RD(pc[2]);                                                          \
        WR(pc[1], (uint32_t)F_##n(a, 32, int32_t));                                                \
        NEXT(3);                                                                                   \
    }                                                                                              \
    HANDLER(n##_I64)                                                                               \
    {                                                                                              \
        uint64_t a = RD(pc[2]);                                                                    \
        WR(pc[1], (uint64_t)F_##n(a, 64, int64_t));                                                \
        NEXT(3);                                                                                   \
    }
#define H_COND(c)                                                                                  \
    HANDLER(SETCOND_##c##_I32)                                                                     \
    {                                                                                              \
        uint32_t a = (uint32_t)RD(pc[2]), b = (uint32_t)RD(pc[3]);                                 \
        WR(pc[1], C_##c(a, b, (int32_t)a, (int32_t)b) ? 1u : 0u);                                  \
        NEXT(4);                                                                                   \
    }                                                                                              \
    HANDLER(SETCOND_##c##_I64)                                                                     \
    {                                                                                              \
        uint64_t a = RD(pc[2]), b = RD(pc[3]);                                                     \
        WR(pc[1], C_##c(a, b, (int64_t)a, (int64_t)b) ? 1u : 0u);                                  \
        NEXT(4);                                                                                   \
    }                                                                                              \
    HANDLER(BRCOND_##c##_I32)                                                                      \
    {                                                                                              \
        uint32_t a = (uint32_t)RD(pc[1]), b = (uint32_t)RD(pc[2]);                                 \
        pc = C_##c(a, b, (int32_t)a, (int32_t)b) ? start + pc[3] : pc + 4;                         \
        DISPATCH();                                                                                \
    }                                                                                              \
    HANDLER(BRCOND_##c##_I64)                                                                      \
    {                                                                                              \
        uint64_t a = RD(pc[1]), b = RD(pc[2]);                                                     \
        pc = C_##c(a, b, (int64_t)a, (int64_t)b) ? start + pc[3] : pc + 4;                         \
        DISPATCH();                                                                                \
    }

    H_UNARY(MOV)
    H_BINARY(ADD)
    H_BINARY(SUB)
    H_BINARY(MUL)
    H_BINARY(AND)
    H_BINARY(OR)
    H_BINARY(XOR)
    H_BINARY(ANDC)
    H_BINARY(SHL)
    H_BINARY(SHR)
    H_BINARY(SAR)
    H_BINARY(ROTL)
    H_BINARY(ROTR)
    H_UNARY(NEG)
    H_UNARY(NOT)
    H_UNARY(EXT8S)
    H_UNARY(EXT8U)
    H_UNARY(EXT16S)
    H_UNARY(EXT16U)
    H_UNARY(EXT32S)
    H_UNARY(EXT32U)
    H_UNARY(CTPOP)
    H_UNARY(BSWAP)
    INTERP_CONDS(H_COND)

    HANDLER(DEPOSIT_I32)
    HANDLER(DEPOSIT_I64)
    {
        /* One body for both: the i32 flavour's field lies in the low 32 bits (checked at
         * compile time), so only the final truncation differs. */
        uint64_t a = RD(pc[2]), b = RD(pc[3]);
        unsigned pos = pc[4] & 0xff, len = pc[4] >> 8;
        uint64_t field = UINT64_MAX >> (64 - len);
        uint64_t r = (a & ~(field << pos)) | ((b & field) << pos);
        WR(pc[1], *pc == I_DEPOSIT_I32 ? (uint32_t)r : r);
        NEXT(5);
    }
    HANDLER(EXTRACT_I32)
    HANDLER(EXTRACT_I64)
    {
        uint64_t a = RD(pc[2]);
        unsigned pos = pc[3] & 0xff, len = pc[3] >> 8;
        WR(pc[1], (a >> pos) & (UINT64_MAX >> (64 - len))); /* pos+len <= type width */
        NEXT(4);
    }
    HANDLER(MOVCOND_I32)
    {
        uint64_t r =
            ir_cond_eval((enum ir_cond)pc[6], IR_I32, RD(pc[2]), RD(pc[3])) ? RD(pc[4]) : RD(pc[5]);
        WR(pc[1], (uint32_t)r);
        NEXT(7);
    }
    HANDLER(MOVCOND_I64)
    {
        uint64_t r =
            ir_cond_eval((enum ir_cond)pc[6], IR_I64, RD(pc[2]), RD(pc[3])) ? RD(pc[4]) : RD(pc[5]);
        WR(pc[1], r);
        NEXT(7);
    }
    HANDLER(MULU2_I32)
    {
        uint64_t p = (uint64_t)(uint32_t)RD(pc[3]) * (uint32_t)RD(pc[4]);
        WR(pc[1], (uint32_t)p);
        WR(pc[2], p >> 32);
        NEXT(5);
    }
    HANDLER(MULU2_I64)
    {
        uint64_t lo, hi;
        mulu64(RD(pc[3]), RD(pc[4]), &lo, &hi);
        WR(pc[1], lo);
        WR(pc[2], hi);
        NEXT(5);
    }
    HANDLER(MULS2_I32)
    {
        int64_t p = (int64_t)(int32_t)(uint32_t)RD(pc[3]) * (int32_t)(uint32_t)RD(pc[4]);
        WR(pc[1], (uint32_t)(uint64_t)p);
        WR(pc[2], (uint32_t)((uint64_t)p >> 32));
        NEXT(5);
    }
    HANDLER(MULS2_I64)
    {
        uint64_t a = RD(pc[3]), b = RD(pc[4]), lo, hi;
        mulu64(a, b, &lo, &hi);
        /* Signed high half = unsigned high half minus the other operand per negative one. */
        hi -= ((int64_t)a < 0 ? b : 0) + ((int64_t)b < 0 ? a : 0);
        WR(pc[1], lo);
        WR(pc[2], hi);
        NEXT(5);
    }
    HANDLER(CLZ_I32)
    {
        uint32_t a = (uint32_t)RD(pc[2]);
        WR(pc[1], a ? ir_clz64(a) - 32 : (uint32_t)RD(pc[3]));
        NEXT(4);
    }
    HANDLER(CLZ_I64)
    {
        uint64_t a = RD(pc[2]);
        WR(pc[1], a ? ir_clz64(a) : RD(pc[3]));
        NEXT(4);
    }
    HANDLER(CTZ_I32)
    {
        uint32_t a = (uint32_t)RD(pc[2]);
        WR(pc[1], a ? ir_ctz64(a) : (uint32_t)RD(pc[3]));
        NEXT(4);
    }
    HANDLER(CTZ_I64)
    {
        uint64_t a = RD(pc[2]);
        WR(pc[1], a ? ir_ctz64(a) : RD(pc[3]));
        NEXT(4);
    }
    HANDLER(QLD_I32)
    {
        uint64_t v = mem->load(env, RD(pc[2]), pc[3]);
        WR(pc[1], (uint32_t)extend_load(v, pc[3]));
        NEXT(4);
    }
    HANDLER(QLD_I64)
    {
        uint64_t v = mem->load(env, RD(pc[2]), pc[3]);
        WR(pc[1], extend_load(v, pc[3]));
        NEXT(4);
    }
    HANDLER(QST_I32)
    {
        mem->store(env, RD(pc[2]), truncate_store((uint32_t)RD(pc[1]), pc[3]), pc[3]);
        NEXT(4);
    }
    HANDLER(QST_I64)
    {
        mem->store(env, RD(pc[2]), truncate_store(RD(pc[1]), pc[3]), pc[3]);
        NEXT(4);
    }
    HANDLER(MOVI)
    {
        WR(pc[1], pc[2] | (uint64_t)pc[3] << 32);
        NEXT(4);
    }
    HANDLER(LDENV)
    {
        WR(pc[1], load64(env_base + pc[2]));
        NEXT(3);
    }
    HANDLER(STENV)
    {
        store64(env_base + pc[2], RD(pc[1]));
        NEXT(3);
    }
    HANDLER(FPENV)
    {
        ir_fp_enter((const uint32_t *)(env_base + pc[1]), (struct ir_fp_live *)(env_base + pc[2]));
        NEXT(3);
    }
    HANDLER(FPOP)
    {
        WR(pc[1], ir_fp_op(pc[4], RD(pc[2]), RD(pc[3])));
        NEXT(5);
    }
    HANDLER(VOP)
    {
        WR(pc[1], ir_vop_eval(pc[6], RD(pc[2]), RD(pc[3]), RD(pc[4]), RD(pc[5])));
        NEXT(7);
    }
    HANDLER(CALL)
    {
        uint64_t r = helpers[pc[6]].fn(env, RD(pc[2]), RD(pc[3]), RD(pc[4]), RD(pc[5]));
        WR(pc[1], r);
        NEXT(7);
    }
    HANDLER(CALL_VOID)
    {
        helpers[pc[6]].fn(env, RD(pc[2]), RD(pc[3]), RD(pc[4]), RD(pc[5]));
        NEXT(7);
    }
    HANDLER(BR)
    {
        pc = start + pc[1];
        DISPATCH();
    }
    HANDLER(GOTO_TB)
    {
        return INTERP_GOTO_TB(pc[1]);
    }
    HANDLER(EXIT_TB)
    {
        return pc[1];
    }
#if !INTERP_COMPUTED_GOTO
default:
    break;
}
return IR_EXIT_NEXT; /* unreachable: the compiler only emits known opcodes */
#endif
#undef H_BINARY
#undef H_UNARY
#undef H_COND
#undef NEXT
#undef HANDLER
#undef DISPATCH
#undef PTR
#undef RD
#undef WR
}
