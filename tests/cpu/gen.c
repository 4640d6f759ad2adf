/* Random but valid x86-64 integer (and MMX) instruction sequences over random states.
 *
 * Safety by construction: RBX RSP RBP RSI RDI ("pointer registers") start inside the middle of
 * the scratch area and are never written at 16 bits or wider (8-bit writes move them by less
 * than 256 bytes); R13 holds a small index (0..255) and is only written as R13B. Every memory
 * operand is based on those, absolute, or RIP-relative into the scratch area. The other ten
 * GPRs are free destinations. Flags: each group records which flags it defines, leaves
 * undefined and reads; a group never reads a flag that may be undefined at that point, so
 * both machines take the same path and compute the same values. */
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint64_t rng_next(struct rng *r)
{
    /* splitmix64: tiny, and every 64-bit seed is a good one */
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void fuzz_fill_scratch(uint8_t *scratch, uint64_t seed)
{
    struct rng r = {seed};
    for (unsigned i = 0; i < FUZZ_SCRATCH_SIZE; i += 8) {
        uint64_t v = rng_next(&r);
        memcpy(scratch + i, &v, 8);
    }
}

void fuzz_prepare_memory(uint8_t *scratch_and_counter, const struct fuzz_case *c)
{
    uint32_t passes = c->loop_passes;
    fuzz_fill_scratch(scratch_and_counter, c->scratch_seed);
    memcpy(scratch_and_counter + FUZZ_SCRATCH_SIZE, &passes, 4);
}

enum { RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8, R9, R10, R11, R12, R13, R14, R15 };
static const int free_regs[] = {RAX, RCX, RDX, R8, R9, R10, R11, R12, R14, R15};
static const int ptr_regs[] = {RBX, RSP, RBP, RSI, RDI};
#define NFREE (sizeof(free_regs) / sizeof(free_regs[0]))
#define IDX_REG R13

#define COND_READS(cc) (cond_reads[((cc) >> 1) & 7])
static const uint16_t cond_reads[8] = {F_OF, F_CF, F_ZF,        F_CF | F_ZF,
                                       F_SF, F_PF, F_SF | F_OF, F_ZF | F_SF | F_OF};

struct gen {
    struct rng *r;
    struct fuzz_case *c;
    bool legacy8; /* current instruction uses AH..BH: no REX, registers 0..7 only */
};

/* --- operands and encoding ------------------------------------------------------------- */

struct opnd {
    bool mem;
    int reg;         /* register number 0..15 */
    bool high;       /* AH CH DH BH (reg 0..3) */
    int base, index; /* -1 none; base 16 = RIP */
    unsigned scale;
    int32_t disp;
    bool disp32;
    uint32_t target; /* scratch offset for absolute and RIP-relative forms */
};

#define P_LOCK 1u
#define P_REP 2u   /* F3 */
#define P_REPNE 4u /* F2 */
#define P_ADDR32 8u
#define P_NO66 16u  /* size 16 does not add 66 (caller supplies it) */
#define P_NOW 32u   /* size 64 does not set REX.W (default-64 instructions) */
#define P_DIGIT 64u /* regfield is an opcode extension, not a register */

static bool put(struct fuzz_item *it, uint8_t byte)
{
    if (it->len >= FUZZ_ITEM_BYTES)
        return false;
    it->bytes[it->len++] = byte;
    return true;
}

static bool put_n(struct fuzz_item *it, uint64_t v, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        if (!put(it, (uint8_t)(v >> (8 * i))))
            return false;
    return true;
}

/* Encode one instruction; false when the operand combination cannot be encoded (a REX
 * prefix together with AH..BH) or the group is full. */
static bool emit(struct fuzz_item *it, unsigned pfx, unsigned size, const uint8_t *op,
                 unsigned oplen, int regfield, bool reg_high, const struct opnd *rm, uint64_t imm,
                 unsigned immsz)
{
    bool w = size == 64 && !(pfx & P_NOW);
    unsigned rex = (w ? 8u : 0) | ((!(pfx & P_DIGIT) && regfield >= 8) ? 4u : 0);
    bool need_rex8 = false, has_high = reg_high && !(pfx & P_DIGIT);
    if (size == 8 && !(pfx & P_DIGIT) && regfield >= 4 && regfield < 8 && !reg_high)
        need_rex8 = true;
    if (rm) {
        if (rm->mem) {
            if (rm->index >= 8)
                rex |= 2;
            if (rm->base >= 8 && rm->base < 16)
                rex |= 1;
        } else {
            if (rm->reg >= 8)
                rex |= 1;
            if (size == 8 && rm->reg >= 4 && rm->reg < 8 && !rm->high)
                need_rex8 = true;
            has_high |= rm->high;
        }
    }
    if (has_high && (rex || need_rex8))
        return false;
    bool ok = true;
    if (pfx & P_LOCK)
        ok &= put(it, 0xf0);
    if (size == 16 && !(pfx & P_NO66))
        ok &= put(it, 0x66);
    if (pfx & P_ADDR32)
        ok &= put(it, 0x67);
    if (pfx & P_REP)
        ok &= put(it, 0xf3);
    if (pfx & P_REPNE)
        ok &= put(it, 0xf2);
    if (rex || need_rex8)
        ok &= put(it, (uint8_t)(0x40 | rex));
    for (unsigned i = 0; i < oplen; i++)
        ok &= put(it, op[i]);
    if (!rm)
        return ok && put_n(it, imm, immsz);
    unsigned regbits = (unsigned)(reg_high ? regfield + 4 : regfield) & 7;
    if (!rm->mem) {
        unsigned rmbits = (unsigned)(rm->high ? rm->reg + 4 : rm->reg) & 7;
        ok &= put(it, (uint8_t)(0xc0 | regbits << 3 | rmbits));
        return ok && put_n(it, imm, immsz);
    }
    unsigned ss = rm->scale == 8 ? 3 : rm->scale == 4 ? 2 : rm->scale == 2 ? 1 : 0;
    if (rm->base == 16) { /* RIP-relative */
        if (it->nr_rip >= 4)
            return false;
        ok &= put(it, (uint8_t)(regbits << 3 | 5));
        it->rip_disp[it->nr_rip] = it->len;
        it->rip_target[it->nr_rip] = rm->target;
        ok &= put_n(it, 0, 4);
        ok &= put_n(it, imm, immsz);
        it->rip_end[it->nr_rip++] = it->len;
        return ok;
    }
    if (rm->base < 0) {
        unsigned idx = rm->index < 0 ? 4 : (unsigned)rm->index & 7;
        ok &= put(it, (uint8_t)(regbits << 3 | 4));
        ok &= put(it, (uint8_t)(ss << 6 | idx << 3 | 5));
        uint32_t disp =
            rm->index < 0 ? (uint32_t)(FUZZ_SCRATCH_BASE + rm->target) : (uint32_t)rm->disp;
        return ok && put_n(it, disp, 4) && put_n(it, imm, immsz);
    }
    unsigned mod;
    if (rm->disp32)
        mod = 2;
    else if (rm->disp == 0 && (rm->base & 7) != 5)
        mod = 0;
    else
        mod = 1;
    bool sib = rm->index >= 0 || (rm->base & 7) == 4;
    ok &= put(it, (uint8_t)(mod << 6 | regbits << 3 | (sib ? 4u : (unsigned)rm->base & 7)));
    if (sib) {
        unsigned idx = rm->index < 0 ? 4 : (unsigned)rm->index & 7;
        ok &= put(it, (uint8_t)(ss << 6 | idx << 3 | ((unsigned)rm->base & 7)));
    }
    if (mod == 1)
        ok &= put(it, (uint8_t)rm->disp);
    else if (mod == 2)
        ok &= put_n(it, (uint32_t)rm->disp, 4);
    return ok && put_n(it, imm, immsz);
}

/* Sequential composition of a group's flag effects. */
static void flags(struct fuzz_item *it, uint16_t def, uint16_t undef, uint16_t reads)
{
    it->reads |= reads & ~(it->def | it->undef);
    it->def = (uint16_t)((it->def & ~undef) | def);
    it->undef = (uint16_t)((it->undef & ~def) | undef);
}

static unsigned pick_size(struct gen *g, bool allow8)
{
    static const unsigned sizes[] = {8, 16, 32, 64, 32, 64};
    unsigned s;
    do
        s = sizes[rng_below(g->r, 6)];
    while (s == 8 && !allow8);
    return s;
}

static uint64_t rand_value(struct rng *r)
{
    static const uint64_t special[] = {0,
                                       1,
                                       2,
                                       0x7f,
                                       0x80,
                                       0xff,
                                       0x7fff,
                                       0x8000,
                                       0xffff,
                                       0x7fffffff,
                                       0x80000000,
                                       0xffffffff,
                                       0x7fffffffffffffffULL,
                                       0x8000000000000000ULL,
                                       ~0ULL,
                                       ~0ULL - 1,
                                       0x100000000ULL,
                                       0x10};
    switch (rng_below(r, 8)) {
    case 0:
        return special[rng_below(r, sizeof(special) / sizeof(special[0]))];
    case 1:
        return rng_next(r) & 0xff;
    case 2:
        return (uint64_t)(int64_t)(int8_t)rng_next(r);
    case 3:
        return rng_next(r) & 0xffffffff;
    case 4:
        return (uint64_t)(int64_t)(int32_t)rng_next(r);
    case 5:
        return rng_next(r) & ((1ULL << rng_below(r, 64)) - 1);
    default:
        return rng_next(r);
    }
}

/* A register operand of `size`; dest: the instruction writes it. */
static struct opnd pick_reg(struct gen *g, unsigned size, bool dest)
{
    struct opnd o = {.reg = 0};
    if (size == 8 && g->legacy8) {
        for (;;) {
            unsigned e = rng_below(g->r, 8);
            if (dest && e == 7)
                continue; /* BH would move RBX by up to 64 KiB */
            o.reg = (int)(e & 3);
            o.high = e >= 4;
            return o;
        }
    }
    if (size == 8)
        o.reg = (int)rng_below(g->r, 16); /* low bytes: pointers move < 256 bytes */
    else if (dest)
        o.reg = free_regs[rng_below(g->r, NFREE)];
    else
        o.reg = (int)rng_below(g->r, 16);
    return o;
}

static int pick_free(struct gen *g)
{
    return free_regs[rng_below(g->r, NFREE)];
}

/* A memory operand inside the scratch area; align for CMPXCHG16B. */
static struct opnd pick_mem(struct gen *g, unsigned align)
{
    struct opnd o = {.mem = true, .base = -1, .index = -1, .scale = 1};
    unsigned form = align > 1 ? rng_below(g->r, 2) : rng_below(g->r, 7);
    switch (form) {
    case 0: /* absolute */
    case 1: /* RIP-relative */
        o.target = rng_below(g->r, FUZZ_SCRATCH_SIZE - 32) & ~(align ? align - 1 : 0);
        if (form == 1)
            o.base = 16;
        return o;
    case 2: /* [ptr*1 + disp32], no base */
        if (!g->legacy8) {
            static const int idx_ok[] = {RBX, RBP, RSI, RDI};
            o.index = idx_ok[rng_below(g->r, 4)];
            o.disp = (int32_t)rng_below(g->r, 2048) - 1024;
            return o;
        }
        /* fallthrough */
    case 3: /* [ptr + R13*scale + disp8] */
        if (!g->legacy8) {
            o.base = ptr_regs[rng_below(g->r, 5)];
            o.index = IDX_REG;
            o.scale = 1u << rng_below(g->r, 4);
            o.disp = (int8_t)rng_next(g->r);
            return o;
        }
        /* fallthrough */
    default: /* [ptr + disp] */
        o.base = ptr_regs[rng_below(g->r, 5)];
        switch (rng_below(g->r, 3)) {
        case 0:
            o.disp = 0;
            break;
        case 1:
            o.disp = (int8_t)rng_next(g->r);
            break;
        default:
            o.disp = (int32_t)rng_below(g->r, 2048) - 1024, o.disp32 = true;
            break;
        }
        return o;
    }
}

/* Register (dest rules) or memory. */
static struct opnd pick_rm(struct gen *g, unsigned size, bool dest, unsigned mem_pct)
{
    if (rng_below(g->r, 100) < mem_pct)
        return pick_mem(g, 0);
    return pick_reg(g, size, dest);
}

static uint64_t imm_for(struct gen *g, unsigned immsz)
{
    uint64_t v = rand_value(g->r);
    return immsz >= 8 ? v : v & ((1ULL << (8 * immsz)) - 1);
}

static unsigned opsz_imm(unsigned size)
{
    return size == 8 ? 1 : size == 16 ? 2 : 4;
}

static uint8_t sz_op(uint8_t op8, unsigned size)
{
    return size == 8 ? op8 : (uint8_t)(op8 + 1);
}

static void name(struct fuzz_item *it, const char *n)
{
    snprintf(it->what, sizeof(it->what), "%s", n);
}

/* --- instruction groups ----------------------------------------------------------------- */

static bool g_alu(struct gen *g, struct fuzz_item *it)
{
    static const char *names[] = {"add", "or", "adc", "sbb", "and", "sub", "xor", "cmp"};
    unsigned op = rng_below(g->r, 8), size = pick_size(g, true);
    bool logic = op == 1 || op == 4 || op == 6, cmp = op == 7;
    g->legacy8 = size == 8 && rng_below(g->r, 3) == 0;
    unsigned form = rng_below(g->r, 4);
    bool ok;
    uint8_t opc[1];
    switch (form) {
    case 0: { /* r/m, reg */
        struct opnd rm = pick_rm(g, size, !cmp, 40);
        struct opnd reg = pick_reg(g, size, false);
        opc[0] = sz_op((uint8_t)(op * 8), size);
        unsigned pfx = rm.mem && !cmp && rng_below(g->r, 8) == 0 ? P_LOCK : 0;
        ok = emit(it, pfx, size, opc, 1, reg.reg, reg.high, &rm, 0, 0);
        break;
    }
    case 1: { /* reg, r/m */
        struct opnd reg = pick_reg(g, size, !cmp);
        struct opnd rm = pick_rm(g, size, false, 40);
        opc[0] = sz_op((uint8_t)(op * 8 + 2), size);
        ok = emit(it, 0, size, opc, 1, reg.reg, reg.high, &rm, 0, 0);
        break;
    }
    case 2: /* accumulator, imm */
        opc[0] = sz_op((uint8_t)(op * 8 + 4), size);
        ok = emit(it, 0, size, opc, 1, 0, false, NULL, imm_for(g, opsz_imm(size)), opsz_imm(size));
        break;
    default: { /* r/m, imm (80/81/83) */
        struct opnd rm = pick_rm(g, size, !cmp, 40);
        bool imm8 = size != 8 && rng_below(g->r, 2);
        opc[0] = size == 8 ? 0x80 : imm8 ? 0x83 : 0x81;
        unsigned isz = imm8 ? 1 : opsz_imm(size);
        unsigned pfx = P_DIGIT | (rm.mem && !cmp && rng_below(g->r, 8) == 0 ? P_LOCK : 0);
        ok = emit(it, pfx, size, opc, 1, (int)op, false, &rm, imm_for(g, isz), isz);
        break;
    }
    }
    flags(it, logic ? F_ARITH & ~F_AF : F_ARITH, logic ? F_AF : 0, (op == 2 || op == 3) ? F_CF : 0);
    name(it, names[op]);
    return ok;
}

static bool g_test(struct gen *g, struct fuzz_item *it)
{
    unsigned size = pick_size(g, true);
    g->legacy8 = size == 8 && rng_below(g->r, 3) == 0;
    uint8_t opc[1];
    bool ok;
    switch (rng_below(g->r, 3)) {
    case 0: {
        struct opnd rm = pick_rm(g, size, false, 40), reg = pick_reg(g, size, false);
        opc[0] = sz_op(0x84, size);
        ok = emit(it, 0, size, opc, 1, reg.reg, reg.high, &rm, 0, 0);
        break;
    }
    case 1:
        opc[0] = sz_op(0xa8, size);
        ok = emit(it, 0, size, opc, 1, 0, false, NULL, imm_for(g, opsz_imm(size)), opsz_imm(size));
        break;
    default: {
        struct opnd rm = pick_rm(g, size, false, 40);
        opc[0] = sz_op(0xf6, size);
        ok = emit(it, P_DIGIT, size, opc, 1, 0, false, &rm, imm_for(g, opsz_imm(size)),
                  opsz_imm(size));
        break;
    }
    }
    flags(it, F_ARITH & ~F_AF, F_AF, 0);
    name(it, "test");
    return ok;
}

static bool g_unary(struct gen *g, struct fuzz_item *it)
{
    /* INC DEC (FE/FF /0 /1), NOT NEG (F6/F7 /2 /3) */
    static const char *names[] = {"inc", "dec", "not", "neg"};
    unsigned k = rng_below(g->r, 4), size = pick_size(g, true);
    g->legacy8 = size == 8 && rng_below(g->r, 3) == 0;
    struct opnd rm = pick_rm(g, size, true, 40);
    uint8_t opc[1] = {sz_op(k < 2 ? 0xfe : 0xf6, size)};
    unsigned pfx = P_DIGIT | (rm.mem && rng_below(g->r, 8) == 0 ? P_LOCK : 0);
    bool ok = emit(it, pfx, size, opc, 1, (int)k, false, &rm, 0, 0);
    if (k < 2)
        flags(it, F_ARITH & ~F_CF, 0, 0);
    else if (k == 3)
        flags(it, F_ARITH, 0, 0);
    name(it, names[k]);
    return ok;
}

/* Flag effects of a shift/rotate by a known count (SDM: SAL/SAR/SHL/SHR, RCL/RCR/ROL/ROR,
 * SHLD, SHRD). */
static void shift_flags(struct fuzz_item *it, unsigned kind, unsigned size, unsigned count)
{
    unsigned m = count & (size == 64 ? 63 : 31);
    if (m == 0)
        return; /* a zero (masked) count affects no flags */
    uint16_t of = m == 1 ? F_OF : 0, of_u = m == 1 ? 0 : F_OF;
    switch (kind) {
    case 0:
    case 1: /* ROL ROR */
        flags(it, (uint16_t)(F_CF | of), of_u, 0);
        break;
    case 2:
    case 3: /* RCL RCR */
        flags(it, (uint16_t)(F_CF | of), of_u, F_CF);
        break;
    case 4:
    case 5:
    case 6: /* SHL SHR SAL: CF undefined when count >= width (8/16-bit) */
        flags(it, (uint16_t)(F_SF | F_ZF | F_PF | of | (m < size ? F_CF : 0)),
              (uint16_t)(F_AF | of_u | (m < size ? 0 : F_CF)), 0);
        break;
    case 7: /* SAR */
        flags(it, (uint16_t)(F_CF | F_SF | F_ZF | F_PF | of), (uint16_t)(F_AF | of_u), 0);
        break;
    default: /* SHLD SHRD (count <= size guaranteed by the caller) */
        flags(it, (uint16_t)(F_CF | F_SF | F_ZF | F_PF | of), (uint16_t)(F_AF | of_u), 0);
        break;
    }
}

static unsigned rand_count(struct gen *g, unsigned size)
{
    switch (rng_below(g->r, 5)) {
    case 0:
        return 0;
    case 1:
        return 1;
    case 2:
        return rng_below(g->r, size + 2);
    case 3:
        return size - 1 + rng_below(g->r, 3);
    default:
        return rng_below(g->r, 256);
    }
}

static bool g_shift(struct gen *g, struct fuzz_item *it)
{
    static const char *names[] = {"rol", "ror", "rcl", "rcr", "shl", "shr", "sal", "sar"};
    unsigned kind = rng_below(g->r, 8), size = pick_size(g, true);
    g->legacy8 = size == 8 && rng_below(g->r, 3) == 0;
    unsigned form = rng_below(g->r, 3), count;
    bool ok = true;
    struct opnd rm = pick_rm(g, size, true, 30);
    if (form == 2 && rm.mem == false && rm.reg == RCX && !rm.high)
        form = 0; /* shifting CL by CL is fine but makes the count unknown here */
    uint8_t opc[1];
    if (form == 0) { /* imm8 */
        count = rand_count(g, size) & 0xff;
        opc[0] = sz_op(0xc0, size);
        ok = emit(it, P_DIGIT, size, opc, 1, (int)kind, false, &rm, count, 1);
    } else if (form == 1) { /* by 1 */
        count = 1;
        opc[0] = sz_op(0xd0, size);
        ok = emit(it, P_DIGIT, size, opc, 1, (int)kind, false, &rm, 0, 0);
    } else { /* by CL, set just before */
        count = rand_count(g, size) & 0xff;
        ok = put(it, 0xb1) && put(it, (uint8_t)count); /* mov cl, imm8 */
        opc[0] = sz_op(0xd2, size);
        ok = ok && emit(it, P_DIGIT, size, opc, 1, (int)kind, false, &rm, 0, 0);
    }
    shift_flags(it, kind, size, count);
    name(it, names[kind]);
    return ok;
}

static bool g_shld(struct gen *g, struct fuzz_item *it)
{
    bool right = rng_below(g->r, 2), cl = rng_below(g->r, 2);
    unsigned size = pick_size(g, false);
    g->legacy8 = false;
    unsigned count = rand_count(g, size) & 0xff;
    /* A 16-bit SHLD/SHRD by more than 16 leaves the destination undefined (SDM): avoid. */
    if (size == 16 && (count & 31) > 16)
        count &= 15;
    struct opnd rm = pick_rm(g, size, true, 30);
    struct opnd reg = pick_reg(g, size, false);
    bool ok = true;
    uint8_t opc[2] = {0x0f, (uint8_t)((right ? 0xac : 0xa4) + (cl ? 1 : 0))};
    if (cl) {
        if (!rm.mem && rm.reg == RCX)
            return false;
        ok = put(it, 0xb1) && put(it, (uint8_t)count);
        ok = ok && emit(it, 0, size, opc, 2, reg.reg, false, &rm, 0, 0);
    } else {
        ok = emit(it, 0, size, opc, 2, reg.reg, false, &rm, count, 1);
    }
    shift_flags(it, 8, size, count);
    name(it, right ? "shrd" : "shld");
    return ok;
}

static bool g_mul(struct gen *g, struct fuzz_item *it)
{
    unsigned size, form = rng_below(g->r, 4);
    bool ok;
    g->legacy8 = false;
    if (form == 0) { /* MUL / IMUL r/m: rDX:rAX */
        size = pick_size(g, true);
        g->legacy8 = size == 8 && rng_below(g->r, 3) == 0;
        struct opnd rm = pick_rm(g, size, false, 30);
        uint8_t opc[1] = {sz_op(0xf6, size)};
        ok = emit(it, P_DIGIT, size, opc, 1, rng_below(g->r, 2) ? 4 : 5, false, &rm, 0, 0);
        name(it, "mul1");
    } else if (form == 1) { /* IMUL r, r/m */
        size = pick_size(g, false);
        struct opnd reg = pick_reg(g, size, true), rm = pick_rm(g, size, false, 30);
        uint8_t opc[2] = {0x0f, 0xaf};
        ok = emit(it, 0, size, opc, 2, reg.reg, false, &rm, 0, 0);
        name(it, "imul2");
    } else { /* IMUL r, r/m, imm8 / imm */
        size = pick_size(g, false);
        struct opnd reg = pick_reg(g, size, true), rm = pick_rm(g, size, false, 30);
        bool i8 = form == 2;
        uint8_t opc[1] = {i8 ? 0x6b : 0x69};
        unsigned isz = i8 ? 1 : opsz_imm(size);
        ok = emit(it, 0, size, opc, 1, reg.reg, false, &rm, imm_for(g, isz), isz);
        name(it, "imul3");
    }
    flags(it, F_CF | F_OF, F_SF | F_ZF | F_AF | F_PF, 0);
    return ok;
}

/* DIV/IDIV. Usually made safe by construction (unsigned: divisor's top bit set, dividend's
 * high half's top bit clear; signed: divisor even with bit 1 set so |divisor| >= 2, dividend
 * sign-extended from the low half); sometimes raw, when #DE must be raised by both. */
static bool g_div(struct gen *g, struct fuzz_item *it)
{
    unsigned size = pick_size(g, true);
    bool is_signed = rng_below(g->r, 2), raw = rng_below(g->r, 6) == 0;
    g->legacy8 = false;
    struct opnd d;
    if (rng_below(g->r, 3) == 0) {
        d = pick_mem(g, 0);
    } else {
        d = pick_reg(g, size, true);
        if (d.reg == RAX || (size > 8 && d.reg == RDX))
            return false; /* the divisor must survive the setup of the dividend */
    }
    bool ok = true;
    if (!raw) {
        uint8_t opc[1];
        if (is_signed) {
            opc[0] = size == 8 ? 0x80 : 0x83;
            ok &= emit(it, P_DIGIT, size, opc, 1, 4, false, &d, 0xfe, 1); /* and d, -2 */
            ok &= emit(it, P_DIGIT, size, opc, 1, 1, false, &d, 0x02, 1); /* or d, 2 */
            /* CBW / CWD / CDQ / CQO */
            if (size == 8)
                ok &= put(it, 0x66) && put(it, 0x98);
            else {
                uint8_t c99[1] = {0x99};
                ok &= emit(it, 0, size, c99, 1, 0, false, NULL, 0, 0);
            }
        } else {
            if (size == 8) {
                opc[0] = 0x80;
                ok &= emit(it, P_DIGIT, 8, opc, 1, 1, false, &d, 0x80, 1); /* or d, 0x80 */
                ok &= put(it, 0x80) && put(it, 0xe4) && put(it, 0x7f);     /* and ah, 0x7f */
            } else {
                uint8_t bt[2] = {0x0f, 0xba};
                struct opnd rdx = {.reg = RDX};
                ok &= emit(it, P_DIGIT, size, bt, 2, 5, false, &d, size - 1, 1);   /* bts */
                ok &= emit(it, P_DIGIT, size, bt, 2, 6, false, &rdx, size - 1, 1); /* btr */
            }
        }
    }
    uint8_t opc[1] = {sz_op(0xf6, size)};
    ok &= emit(it, P_DIGIT, size, opc, 1, is_signed ? 7 : 6, false, &d, 0, 0);
    flags(it, 0, F_ARITH, 0);
    name(it, raw ? (is_signed ? "idiv-raw" : "div-raw") : (is_signed ? "idiv" : "div"));
    return ok;
}

static bool g_bt(struct gen *g, struct fuzz_item *it)
{
    static const char *names[] = {"bt", "bts", "btr", "btc"};
    unsigned k = rng_below(g->r, 4), size = pick_size(g, false);
    g->legacy8 = false;
    bool imm = rng_below(g->r, 2), ok;
    struct opnd rm = pick_rm(g, size, k != 0, 40);
    if (imm) {
        uint8_t opc[2] = {0x0f, 0xba};
        unsigned pfx = P_DIGIT | (rm.mem && k && rng_below(g->r, 8) == 0 ? P_LOCK : 0);
        ok = emit(it, pfx, size, opc, 2, (int)(4 + k), false, &rm, rng_below(g->r, 256), 1);
    } else {
        /* With a memory operand the register offset reaches beyond it: use the small R13. */
        struct opnd reg = rm.mem ? (struct opnd){.reg = IDX_REG} : pick_reg(g, size, false);
        uint8_t opc[2] = {0x0f, (uint8_t)(0xa3 + 8 * k)};
        ok = emit(it, 0, size, opc, 2, reg.reg, false, &rm, 0, 0);
    }
    flags(it, F_CF, F_OF | F_SF | F_AF | F_PF, 0);
    name(it, names[k]);
    return ok;
}

static bool g_scan(struct gen *g, struct fuzz_item *it)
{
    static const char *names[] = {"bsf", "bsr", "tzcnt", "lzcnt", "popcnt"};
    unsigned k = rng_below(g->r, 5), size = pick_size(g, false);
    g->legacy8 = false;
    struct opnd reg = pick_reg(g, size, true), rm = pick_rm(g, size, false, 30);
    static const uint8_t ops[] = {0xbc, 0xbd, 0xbc, 0xbd, 0xb8};
    uint8_t opc[2] = {0x0f, ops[k]};
    bool ok = emit(it, k >= 2 ? P_REP : 0, size, opc, 2, reg.reg, false, &rm, 0, 0);
    if (k < 2)
        flags(it, F_ZF, F_CF | F_OF | F_SF | F_AF | F_PF, 0);
    else if (k < 4)
        flags(it, F_CF | F_ZF, F_OF | F_SF | F_AF | F_PF, 0);
    else
        flags(it, F_ARITH, 0, 0);
    name(it, names[k]);
    return ok;
}

static bool g_mov(struct gen *g, struct fuzz_item *it)
{
    unsigned size = pick_size(g, true), form = rng_below(g->r, 5);
    g->legacy8 = size == 8 && rng_below(g->r, 3) == 0;
    uint8_t opc[1];
    bool ok;
    switch (form) {
    case 0: { /* r/m, reg */
        struct opnd rm = pick_rm(g, size, true, 50), reg = pick_reg(g, size, false);
        opc[0] = sz_op(0x88, size);
        ok = emit(it, 0, size, opc, 1, reg.reg, reg.high, &rm, 0, 0);
        break;
    }
    case 1: { /* reg, r/m */
        struct opnd reg = pick_reg(g, size, true), rm = pick_rm(g, size, false, 50);
        opc[0] = sz_op(0x8a, size);
        ok = emit(it, 0, size, opc, 1, reg.reg, reg.high, &rm, 0, 0);
        break;
    }
    case 2: { /* B0+r / B8+r (imm64 with REX.W) */
        struct opnd reg = pick_reg(g, size, true);
        unsigned e = (unsigned)(reg.high ? reg.reg + 4 : reg.reg);
        opc[0] = (uint8_t)((size == 8 ? 0xb0 : 0xb8) + (e & 7));
        /* emit() wants the register in r/m for REX.B: encode by hand instead. */
        unsigned rex = (size == 64 ? 8u : 0) | (reg.reg >= 8 ? 1u : 0);
        bool rex8 = size == 8 && !reg.high && reg.reg >= 4 && reg.reg < 8;
        ok = true;
        if (size == 16)
            ok &= put(it, 0x66);
        if (rex || rex8)
            ok &= put(it, (uint8_t)(0x40 | rex));
        ok &= put(it, opc[0]);
        unsigned isz = size / 8;
        ok &= put_n(it, imm_for(g, isz), isz);
        break;
    }
    case 3: { /* C6/C7 /0 imm */
        struct opnd rm = pick_rm(g, size, true, 50);
        opc[0] = sz_op(0xc6, size);
        ok = emit(it, P_DIGIT, size, opc, 1, 0, false, &rm, imm_for(g, opsz_imm(size)),
                  opsz_imm(size));
        break;
    }
    default: { /* MOVZX / MOVSX / MOVSXD */
        unsigned dsize = pick_size(g, false), k = rng_below(g->r, 5);
        struct opnd reg = pick_reg(g, dsize, true);
        if (k == 4) { /* MOVSXD r64, r/m32 */
            struct opnd rm = pick_rm(g, 32, false, 40);
            opc[0] = 0x63;
            ok = emit(it, 0, 64, opc, 1, reg.reg, false, &rm, 0, 0);
            name(it, "movsxd");
            return ok;
        }
        unsigned ssize = (k & 1) ? 16 : 8;
        if (ssize >= dsize)
            ssize = 8;
        g->legacy8 = ssize == 8 && reg.reg < 8 && rng_below(g->r, 2);
        struct opnd rm = pick_rm(g, ssize, false, 40);
        uint8_t op2[2] = {0x0f, (uint8_t)((k & 2 ? 0xbe : 0xb6) + (ssize == 16 ? 1 : 0))};
        /* The REX.B/8-bit rules follow the source: encode with the source size for 8-bit
         * sources (REX needed for SIL..), destination size otherwise. */
        if (ssize == 8 && dsize != 64) {
            ok = dsize == 16 ? put(it, 0x66) : true;
            ok = ok && emit(it, P_NO66, 8, op2, 2, reg.reg, false, &rm, 0, 0);
        } else if (ssize == 8) { /* 64-bit destination: REX.W, no high-byte source */
            if (!rm.mem && rm.high)
                return false;
            ok = emit(it, 0, 64, op2, 2, reg.reg, false, &rm, 0, 0);
        } else {
            ok = emit(it, 0, dsize, op2, 2, reg.reg, false, &rm, 0, 0);
        }
        name(it, k & 2 ? "movsx" : "movzx");
        return ok;
    }
    }
    name(it, "mov");
    return ok;
}

static bool g_convert(struct gen *g, struct fuzz_item *it)
{
    unsigned size = pick_size(g, false);
    bool cwd = rng_below(g->r, 2);
    uint8_t opc[1] = {cwd ? 0x99 : 0x98};
    name(it, cwd ? "cwd" : "cbw");
    return emit(it, 0, size, opc, 1, 0, false, NULL, 0, 0);
}

static bool g_lea(struct gen *g, struct fuzz_item *it)
{
    unsigned size = pick_size(g, false);
    g->legacy8 = false;
    struct opnd reg = pick_reg(g, size, true);
    /* LEA touches no memory: any base, index, scale and displacement. */
    struct opnd m = {.mem = true, .base = -1, .index = -1, .scale = 1u << rng_below(g->r, 4)};
    if (rng_below(g->r, 6) == 0) {
        m.base = 16;
        m.target = rng_below(g->r, FUZZ_SCRATCH_SIZE);
    } else {
        if (rng_below(g->r, 5))
            m.base = (int)rng_below(g->r, 16);
        if (rng_below(g->r, 2)) {
            do
                m.index = (int)rng_below(g->r, 16);
            while (m.index == RSP);
        }
        if (m.base < 0 && m.index < 0)
            m.index = RAX;
        switch (rng_below(g->r, 3)) {
        case 0:
            break;
        case 1:
            m.disp = (int8_t)rng_next(g->r);
            break;
        default:
            m.disp = (int32_t)rng_next(g->r), m.disp32 = true;
            break;
        }
        if (m.base < 0)
            m.disp32 = true;
    }
    uint8_t opc[1] = {0x8d};
    unsigned pfx = m.base != 16 && rng_below(g->r, 4) == 0 ? P_ADDR32 : 0;
    name(it, pfx ? "lea32" : "lea");
    return emit(it, pfx, size, opc, 1, reg.reg, false, &m, 0, 0);
}

static bool g_xchg(struct gen *g, struct fuzz_item *it)
{
    unsigned k = rng_below(g->r, 4), size = pick_size(g, true);
    g->legacy8 = size == 8 && rng_below(g->r, 3) == 0;
    bool ok;
    if (k == 0) { /* XCHG r/m, reg */
        struct opnd rm = pick_rm(g, size, true, 40), reg = pick_reg(g, size, true);
        uint8_t opc[1] = {sz_op(0x86, size)};
        ok = emit(it, 0, size, opc, 1, reg.reg, reg.high, &rm, 0, 0);
        name(it, "xchg");
    } else if (k == 1) { /* XADD */
        struct opnd rm = pick_rm(g, size, true, 40), reg = pick_reg(g, size, true);
        uint8_t opc[2] = {0x0f, sz_op(0xc0, size)};
        ok = emit(it, rm.mem && rng_below(g->r, 3) == 0 ? P_LOCK : 0, size, opc, 2, reg.reg,
                  reg.high, &rm, 0, 0);
        flags(it, F_ARITH, 0, 0);
        name(it, "xadd");
    } else if (k == 2) { /* CMPXCHG */
        struct opnd rm = pick_rm(g, size, true, 40), reg = pick_reg(g, size, false);
        uint8_t opc[2] = {0x0f, sz_op(0xb0, size)};
        ok = emit(it, rm.mem && rng_below(g->r, 3) == 0 ? P_LOCK : 0, size, opc, 2, reg.reg,
                  reg.high, &rm, 0, 0);
        flags(it, F_ARITH, 0, 0);
        name(it, "cmpxchg");
    } else { /* CMPXCHG8B / CMPXCHG16B: reads rDX:rAX and rCX:rBX, writes rDX:rAX */
        bool b16 = rng_below(g->r, 2);
        g->legacy8 = false;
        struct opnd m = pick_mem(g, b16 ? 16 : 0);
        uint8_t opc[2] = {0x0f, 0xc7};
        ok = emit(it, P_DIGIT | (rng_below(g->r, 3) == 0 ? P_LOCK : 0), b16 ? 64 : 32, opc, 2, 1,
                  false, &m, 0, 0);
        flags(it, F_ZF, 0, 0);
        name(it, b16 ? "cmpxchg16b" : "cmpxchg8b");
    }
    return ok;
}

static bool g_bswap(struct gen *g, struct fuzz_item *it)
{
    unsigned size = rng_below(g->r, 2) ? 32 : 64;
    int r = pick_free(g);
    bool ok = true;
    if (size == 64 || r >= 8)
        ok &= put(it, (uint8_t)(0x40 | (size == 64 ? 8 : 0) | (r >= 8 ? 1 : 0)));
    ok &= put(it, 0x0f) && put(it, (uint8_t)(0xc8 + (r & 7)));
    name(it, "bswap");
    return ok;
}

static bool g_setcc_cmov(struct gen *g, struct fuzz_item *it)
{
    unsigned cc = rng_below(g->r, 16);
    bool ok;
    if (rng_below(g->r, 2)) {
        g->legacy8 = rng_below(g->r, 3) == 0;
        struct opnd rm = pick_rm(g, 8, true, 30);
        uint8_t opc[2] = {0x0f, (uint8_t)(0x90 + cc)};
        ok = emit(it, P_DIGIT, 8, opc, 2, 0, false, &rm, 0, 0);
        name(it, "setcc");
    } else {
        unsigned size = pick_size(g, false);
        g->legacy8 = false;
        struct opnd reg = pick_reg(g, size, true), rm = pick_rm(g, size, false, 30);
        uint8_t opc[2] = {0x0f, (uint8_t)(0x40 + cc)};
        ok = emit(it, 0, size, opc, 2, reg.reg, false, &rm, 0, 0);
        name(it, "cmovcc");
    }
    flags(it, 0, 0, COND_READS(cc));
    return ok;
}

static bool g_flagops(struct gen *g, struct fuzz_item *it)
{
    switch (rng_below(g->r, 8)) {
    case 0:
        name(it, "lahf"), flags(it, 0, 0, F_ARITH & ~F_OF);
        return put(it, 0x9f);
    case 1:
        name(it, "sahf"), flags(it, F_ARITH & ~F_OF, 0, 0);
        return put(it, 0x9e);
    case 2:
        name(it, "clc"), flags(it, F_CF, 0, 0);
        return put(it, 0xf8);
    case 3:
        name(it, "stc"), flags(it, F_CF, 0, 0);
        return put(it, 0xf9);
    case 4:
        name(it, "cmc"), flags(it, F_CF, 0, F_CF);
        return put(it, 0xf5);
    case 5:
        name(it, "std");
        return put(it, 0xfd);
    case 6:
        name(it, "cld");
        return put(it, 0xfc);
    default: { /* push imm; popfq: only arithmetic flags, DF and the fixed IF|bit 1 */
        uint32_t v = (uint32_t)(rng_next(g->r) & (F_ARITH | F_DF)) | 0x202;
        name(it, "popf");
        flags(it, F_ARITH, 0, 0);
        return put(it, 0x68) && put_n(it, v, 4) && put(it, 0x9d);
    }
    }
}

static bool g_stack(struct gen *g, struct fuzz_item *it)
{
    bool ok = true, w16 = rng_below(g->r, 6) == 0;
    g->legacy8 = false;
    unsigned size = w16 ? 16 : 64;
    switch (rng_below(g->r, 7)) {
    case 0: { /* push reg */
        int r = (int)rng_below(g->r, 16);
        if (w16)
            ok &= put(it, 0x66);
        if (r >= 8)
            ok &= put(it, 0x41);
        ok &= put(it, (uint8_t)(0x50 + (r & 7)));
        name(it, "push");
        break;
    }
    case 1: { /* pop reg */
        int r = pick_free(g);
        if (w16)
            ok &= put(it, 0x66);
        if (r >= 8)
            ok &= put(it, 0x41);
        ok &= put(it, (uint8_t)(0x58 + (r & 7)));
        name(it, "pop");
        break;
    }
    case 2: { /* push imm8 / imm32 */
        bool i8 = rng_below(g->r, 2);
        if (w16)
            ok &= put(it, 0x66);
        ok &= put(it, i8 ? 0x6a : 0x68) && put_n(it,
                                                 imm_for(g, i8    ? 1
                                                            : w16 ? 2
                                                                  : 4),
                                                 i8    ? 1
                                                 : w16 ? 2
                                                       : 4);
        name(it, "pushi");
        break;
    }
    case 3: { /* push m */
        struct opnd m = pick_mem(g, 0);
        uint8_t opc[1] = {0xff};
        ok &= emit(it, P_DIGIT | P_NOW, size, opc, 1, 6, false, &m, 0, 0);
        name(it, "pushm");
        break;
    }
    case 4: { /* pop m (address computed with the incremented RSP) */
        struct opnd m = pick_mem(g, 0);
        uint8_t opc[1] = {0x8f};
        ok &= emit(it, P_DIGIT | P_NOW, size, opc, 1, 0, false, &m, 0, 0);
        name(it, "popm");
        break;
    }
    case 5: { /* pushfq; pop reg: reads every flag */
        int r = pick_free(g);
        ok &= put(it, 0x9c);
        if (r >= 8)
            ok &= put(it, 0x41);
        ok &= put(it, (uint8_t)(0x58 + (r & 7)));
        flags(it, 0, 0, F_ARITH);
        name(it, "pushf");
        break;
    }
    default: { /* push reg; pop reg (a move through the stack) */
        int a = (int)rng_below(g->r, 16), b = pick_free(g);
        if (a >= 8)
            ok &= put(it, 0x41);
        ok &= put(it, (uint8_t)(0x50 + (a & 7)));
        if (b >= 8)
            ok &= put(it, 0x41);
        ok &= put(it, (uint8_t)(0x58 + (b & 7)));
        name(it, "pushpop");
        break;
    }
    }
    return ok;
}

static bool g_string(struct gen *g, struct fuzz_item *it)
{
    static const char *names[] = {"movs", "cmps", "stos", "lods", "scas"};
    static const uint8_t ops8[] = {0xa4, 0xa6, 0xaa, 0xac, 0xae};
    unsigned k = rng_below(g->r, 5), size = pick_size(g, true);
    unsigned rep = rng_below(g->r, 3); /* none, F3, F2 */
    bool compares = k == 1 || k == 4;
    if (!compares && rep == 2)
        rep = 1;
    unsigned count = rng_below(g->r, 3) == 0 ? 0 : 1 + rng_below(g->r, 12);
    bool ok = true;
    if (rep)
        ok &= put(it, 0xb9) && put_n(it, count, 4); /* mov ecx, count */
    uint8_t opc[1] = {sz_op(ops8[k], size)};
    ok &= emit(it, rep == 1 ? P_REP : rep == 2 ? P_REPNE : 0, size, opc, 1, 0, false, NULL, 0, 0);
    if (compares && (!rep || count))
        flags(it, F_ARITH, 0, 0);
    name(it, names[k]);
    return ok;
}

static bool g_nop(struct gen *g, struct fuzz_item *it)
{
    name(it, "nop");
    if (rng_below(g->r, 2))
        return put(it, 0x90);
    struct opnd m = pick_mem(g, 0); /* NOP r/m: the operand is not accessed */
    uint8_t opc[2] = {0x0f, 0x1f};
    return emit(it, P_DIGIT, 32, opc, 2, 0, false, &m, 0, 0);
}

static bool g_jump(struct gen *g, struct fuzz_item *it, unsigned index)
{
    unsigned cc = rng_below(g->r, 17);
    it->jcc_cc = (uint8_t)cc;
    it->jcc_near = rng_below(g->r, 4) == 0;
    it->jcc_target = (int16_t)(index + 1 + rng_below(g->r, 4));
    if (cc < 16)
        flags(it, 0, 0, COND_READS(cc));
    name(it, cc == 16 ? "jmp" : "jcc");
    return true; /* bytes are written by fuzz_assemble */
}

/* --- MMX ------------------------------------------------------------------------------------
 *
 * Neither runner sets or compares the x87/MMX registers, so every MMX group is self-contained:
 * it loads the MM registers it reads, and its results reach general registers or scratch
 * memory. (A group that read registers an earlier one wrote would diverge by chance once the
 * minimiser dropped the writer.) The x87 groups start with FNINIT for the same reason and only
 * look at registers they wrote. No form that needs CR4.OSFXSR: the translator's runner leaves
 * it clear, so CVTPI2PS, MOVQ2DQ... are the unit tests' (test_fpu_sse.c). */

/* A 64-bit value made of lanes at the saturation edges, so the saturating forms saturate. */
static uint64_t mmx_edges(struct rng *r)
{
    static const uint16_t edge[] = {0,      1,      0x7f,   0x80,   0xff,   0x7fff, 0x8000,
                                    0xffff, 0xff80, 0xff7f, 0x007f, 0x8080, 0x7f7f};
    uint64_t v = 0;
    for (unsigned i = 0; i < 4; i++) {
        uint64_t w = rng_below(r, 4) ? edge[rng_below(r, sizeof(edge) / sizeof(edge[0]))]
                                     : rng_next(r) & 0xffff;
        v |= w << (16 * i);
    }
    return v;
}

/* Write MM register mm: from a GPR or memory (MOVD/MOVQ), or from lane edges through a free
 * GPR; count: a small shift count instead. */
static bool mmx_load(struct gen *g, struct fuzz_item *it, int mm, bool count)
{
    uint8_t mov[2] = {0x0f, 0x6e}, movq[2] = {0x0f, 0x6f};
    unsigned k = rng_below(g->r, count ? 7 : 6);
    if (k >= 4) { /* mov free, imm; movq mm, free */
        struct opnd f = {.reg = pick_free(g)};
        uint64_t v = count ? rand_count(g, 64) : mmx_edges(g->r);
        bool ok = put(it, (uint8_t)(0x48 | (f.reg >= 8 ? 1 : 0))) &&
                  put(it, (uint8_t)(0xb8 + (f.reg & 7))) && put_n(it, v, 8);
        return ok && emit(it, 0, 64, mov, 2, mm, false, &f, 0, 0);
    }
    struct opnd src = k < 2 ? pick_reg(g, 64, false) : pick_mem(g, 0);
    if (k == 2 && rng_below(g->r, 2))
        return emit(it, 0, 32, movq, 2, mm, false, &src, 0, 0); /* MOVQ mm, m64 */
    return emit(it, 0, (k & 1) ? 64 : 32, mov, 2, mm, false, &src, 0, 0);
}

/* Make MM register mm visible: to a free GPR or to memory. */
static bool mmx_export(struct gen *g, struct fuzz_item *it, int mm)
{
    uint8_t op[2] = {0x0f, 0x7e};
    switch (rng_below(g->r, 5)) {
    case 0:
    case 1: { /* MOVD r32 / MOVQ r64, mm */
        struct opnd f = {.reg = pick_free(g)};
        return emit(it, 0, rng_below(g->r, 2) ? 64 : 32, op, 2, mm, false, &f, 0, 0);
    }
    case 2:
        op[1] = 0x7f;
        break; /* MOVQ m64, mm */
    case 3:
        op[1] = 0xe7;
        break; /* MOVNTQ */
    default:
        break; /* MOVD m32 / MOVQ m64 (REX.W), mm */
    }
    struct opnd m = pick_mem(g, 0);
    return emit(it, 0, op[1] == 0x7e && rng_below(g->r, 2) ? 64 : 32, op, 2, mm, false, &m, 0, 0);
}

static bool mmx_is_shift(unsigned opc)
{
    return opc == 0xd1 || opc == 0xd2 || opc == 0xd3 || opc == 0xe1 || opc == 0xe2 || opc == 0xf1 ||
           opc == 0xf2 || opc == 0xf3;
}

/* op mm, mm/m64 (m32 for PUNPCKL*): every MMX and SSE integer op on MM registers. */
static bool g_mmx_lanes(struct gen *g, struct fuzz_item *it)
{
    static const uint8_t ops[] = {0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a,
                                  0x6b, 0x74, 0x75, 0x76, 0xd1, 0xd2, 0xd3, 0xd4, 0xd5, 0xd8, 0xd9,
                                  0xda, 0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xe0, 0xe1, 0xe2, 0xe3, 0xe4,
                                  0xe5, 0xe8, 0xe9, 0xea, 0xeb, 0xec, 0xed, 0xee, 0xef, 0xf1, 0xf2,
                                  0xf3, 0xf4, 0xf5, 0xf6, 0xf8, 0xf9, 0xfa, 0xfb, 0xfc, 0xfd, 0xfe};
    uint8_t op[2] = {0x0f, ops[rng_below(g->r, sizeof(ops))]};
    int d = (int)rng_below(g->r, 8), s = (int)rng_below(g->r, 8);
    bool shift = mmx_is_shift(op[1]), ok = mmx_load(g, it, d, false);
    struct opnd src = {.reg = s};
    if (rng_below(g->r, 4) == 0)
        src = pick_mem(g, 0);
    else if (s != d)
        ok = ok && mmx_load(g, it, s, shift);
    ok = ok && emit(it, 0, 32, op, 2, d, false, &src, 0, 0) && mmx_export(g, it, d);
    snprintf(it->what, sizeof(it->what), "mmx-%02x", op[1]);
    return ok;
}

/* PSRLW/PSRAW/PSLLW (0F 71), the D forms (72) and PSRLQ/PSLLQ (73) by imm8. */
static bool g_mmx_shift_imm(struct gen *g, struct fuzz_item *it)
{
    static const uint8_t digit[3] = {2, 4, 6};
    unsigned grp = rng_below(g->r, 3);
    unsigned d = grp == 2 ? (rng_below(g->r, 2) ? 2u : 6u) : digit[rng_below(g->r, 3)];
    uint8_t op[2] = {0x0f, (uint8_t)(0x71 + grp)};
    struct opnd mm = {.reg = (int)rng_below(g->r, 8)};
    unsigned count = rand_count(g, 16u << grp) & 0xff;
    bool ok = mmx_load(g, it, mm.reg, false) &&
              emit(it, P_DIGIT, 32, op, 2, (int)d, false, &mm, count, 1) &&
              mmx_export(g, it, mm.reg);
    name(it, "mmx-shift-imm");
    return ok;
}

/* The SSE additions on MM registers: PSHUFW PINSRW PEXTRW PMOVMSKB MASKMOVQ ([rDI]). */
static bool g_mmx_misc(struct gen *g, struct fuzz_item *it)
{
    static const char *names[] = {"mmx-pshufw", "mmx-pinsrw", "mmx-pextrw", "mmx-pmovmskb",
                                  "mmx-maskmovq"};
    static const uint8_t opc[] = {0x70, 0xc4, 0xc5, 0xd7, 0xf7};
    unsigned k = rng_below(g->r, 5);
    uint8_t op[2] = {0x0f, opc[k]};
    int d = (int)rng_below(g->r, 8), s = (int)rng_below(g->r, 8);
    struct opnd src = {.reg = s}, gpr = {.reg = pick_free(g)};
    bool ok = mmx_load(g, it, d, false);
    if (k == 2 || k == 3) { /* MM source, free GPR destination */
        ok = ok && emit(it, 0, rng_below(g->r, 2) ? 64 : 32, op, 2, gpr.reg, false,
                        &(struct opnd){.reg = d}, rng_next(g->r) & 0xff, k == 2);
        name(it, names[k]);
        return ok;
    }
    if (k == 1) /* PINSRW mm, r32/m16 */
        src = rng_below(g->r, 2) ? pick_mem(g, 0) : pick_reg(g, 32, false);
    else if (k == 0 && rng_below(g->r, 3) == 0)
        src = pick_mem(g, 0);
    else if (s != d)
        ok = ok && mmx_load(g, it, s, false);
    ok = ok && emit(it, 0, 32, op, 2, d, false, &src, rng_next(g->r) & 0xff, k < 2);
    if (k < 2)
        ok = ok && mmx_export(g, it, d);
    name(it, names[k]);
    return ok;
}

/* The x87 view of MMX state, from FNINIT: TOP and the tags after an MMX write (an FLD
 * overflows unless EMMS emptied the stack; FNSTSW AX shows it), the register an MMX write
 * leaves (sign and exponent all ones: FSTP m80), and MMX reads of what FLD loaded. */
static bool g_mmx_x87(struct gen *g, struct fuzz_item *it)
{
    int k = (int)rng_below(g->r, 8);
    bool ok = put(it, 0xdb) && put(it, 0xe3); /* FNINIT */
    switch (rng_below(g->r, 3)) {
    case 0: {
        if (rng_below(g->r, 2))
            ok = ok && put(it, 0xd9) && put(it, 0xe8); /* FLD1 */
        ok = ok && mmx_load(g, it, k, false);
        if (rng_below(g->r, 2))
            ok = ok && put(it, 0x0f) && put(it, 0x77); /* EMMS */
        /* FLD m80, FNSTSW AX. Not FLD m32/m64 (their DE flag is not modelled by fpu.c) nor
         * FLD1 (fpu.c loses its C1 on a stack overflow). */
        uint8_t op[1] = {0xdb};
        struct opnd m = pick_mem(g, 0);
        ok = ok && emit(it, P_DIGIT, 32, op, 1, 5, false, &m, 0, 0);
        ok = ok && put(it, 0xdf) && put(it, 0xe0);
        name(it, "mmx-x87-tags");
        return ok;
    }
    case 1: {
        ok = ok && mmx_load(g, it, k, false);
        if (k)
            ok = ok && put(it, 0xd9) && put(it, (uint8_t)(0xc8 + k)); /* FXCH ST(k) */
        bool m80 = rng_below(g->r, 2);
        uint8_t op[1] = {m80 ? 0xdb : 0xdd}; /* FSTP m80 (/7) or FSTP m64 (/3) */
        struct opnd m = pick_mem(g, 0);
        ok = ok && emit(it, P_DIGIT, 32, op, 1, m80 ? 7 : 3, false, &m, 0, 0);
        ok = ok && put(it, 0xdf) && put(it, 0xe0); /* FNSTSW AX */
        name(it, "mmx-x87-view");
        return ok;
    }
    default: {
        unsigned n = 1 + rng_below(g->r, 3);
        for (unsigned i = 0; i < n; i++) {
            if (rng_below(g->r, 2)) { /* FLD1 FLDL2T FLDL2E FLDPI FLDLG2 FLDLN2 FLDZ */
                ok = ok && put(it, 0xd9) && put(it, (uint8_t)(0xe8 + rng_below(g->r, 7)));
            } else { /* FLD m64 / m80 */
                bool m80 = rng_below(g->r, 2);
                uint8_t op[1] = {m80 ? 0xdb : 0xdd};
                struct opnd src = pick_mem(g, 0);
                ok = ok && emit(it, P_DIGIT, 32, op, 1, m80 ? 5 : 0, false, &src, 0, 0);
            }
        }
        ok = ok && mmx_export(g, it, (int)(8 - 1 - rng_below(g->r, n)));
        name(it, "mmx-x87-load");
        return ok;
    }
    }
}

static bool g_mmx(struct gen *g, struct fuzz_item *it)
{
    g->legacy8 = false;
    switch (rng_below(g->r, 8)) {
    case 0:
        return g_mmx_shift_imm(g, it);
    case 1:
        return g_mmx_misc(g, it);
    case 2:
        return g_mmx_x87(g, it);
    default:
        return g_mmx_lanes(g, it);
    }
}

/* A compare of two random registers: defines all six flags. */
static bool g_define(struct gen *g, struct fuzz_item *it)
{
    unsigned size = pick_size(g, false);
    g->legacy8 = false;
    struct opnd a = pick_reg(g, size, false), b = pick_reg(g, size, false);
    uint8_t opc[1] = {0x39};
    name(it, "cmp-def");
    flags(it, F_ARITH, 0, 0);
    return emit(it, 0, size, opc, 1, a.reg, false, &b, 0, 0);
}

/* --- whole sequences ---------------------------------------------------------------------- */

/* Flags that may be undefined before item k (conservative over jump paths), and whether every
 * item before k only reads defined flags. fault_item: treat item k's own effects as done
 * partly (a fault inside the group). */
static uint16_t undef_before(const struct fuzz_case *c, unsigned k, bool *valid)
{
    uint16_t undef = 0;
    bool ok = true;
    for (unsigned i = 0; i < k; i++) {
        const struct fuzz_item *it = &c->item[i];
        if (it->reads & undef)
            ok = false;
        bool maybe_skipped = false;
        for (unsigned j = 0; j < i; j++)
            if (c->item[j].jcc_target > (int)i)
                maybe_skipped = true;
        if (maybe_skipped)
            undef |= it->undef;
        else
            undef = (uint16_t)((undef & ~it->def) | it->undef);
    }
    if (valid)
        *valid = ok;
    return undef;
}

typedef bool (*gen_fn)(struct gen *, struct fuzz_item *);
static const struct {
    gen_fn fn;
    unsigned weight;
} table[] = {
    {g_alu, 14},    {g_test, 3},  {g_unary, 5},  {g_shift, 10}, {g_shld, 4},
    {g_mul, 5},     {g_div, 4},   {g_bt, 5},     {g_scan, 4},   {g_mov, 8},
    {g_convert, 2}, {g_lea, 4},   {g_xchg, 6},   {g_bswap, 1},  {g_setcc_cmov, 6},
    {g_flagops, 5}, {g_stack, 5}, {g_string, 5}, {g_nop, 1},    {g_mmx, 8},
};

static bool try_item(struct gen *g, unsigned index)
{
    struct fuzz_case *c = g->c;
    struct fuzz_item *it = &c->item[index];
    memset(it, 0, sizeof(*it));
    it->jcc_target = -1;
    g->legacy8 = false;
    bool ok;
    if (rng_below(g->r, 14) == 0) {
        ok = g_jump(g, it, index);
    } else {
        unsigned total = 0;
        for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
            total += table[i].weight;
        unsigned pick = rng_below(g->r, total);
        size_t i = 0;
        while (pick >= table[i].weight)
            pick -= table[i].weight, i++;
        ok = table[i].fn(g, it);
    }
    if (!ok)
        return false;
    uint16_t undef = undef_before(c, index, NULL);
    return !(it->reads & undef);
}

void fuzz_generate(struct fuzz_case *c, uint64_t seed, unsigned max_items)
{
    struct rng r = {seed};
    memset(c, 0, sizeof(*c));
    c->id = seed;
    c->scratch_seed = rng_next(&r);
    for (unsigned i = 0; i < 16; i++)
        c->init.gpr[i] = rand_value(&r);
    for (unsigned i = 0; i < 5; i++) {
        /* Pointers in the middle 4 KiB (drift and displacements stay inside 16 KiB); any
         * alignment. */
        uint64_t off = 0x1800 + rng_below(&r, 0x1000);
        if (rng_below(&r, 2))
            off &= ~7ULL;
        c->init.gpr[ptr_regs[i]] = FUZZ_SCRATCH_BASE + off;
    }
    c->init.gpr[IDX_REG] = rng_below(&r, 256);
    c->init.rflags = 0x202 | (rng_next(&r) & (F_ARITH | F_DF));
    /* A third of the sequences run as a loop of 2 or 3 passes (pointers drift little enough
     * per pass to stay inside the scratch area). */
    c->loop_passes = rng_below(&r, 3) == 0 ? 2 + rng_below(&r, 2) : 0;
    if (max_items > FUZZ_MAX_ITEMS - 4)
        max_items = FUZZ_MAX_ITEMS - 4;
    unsigned want = 1 + rng_below(&r, max_items);
    struct gen g = {.r = &r, .c = c};
    unsigned n = 0;
    while (n < want && n + 2 < FUZZ_MAX_ITEMS) {
        bool done = false;
        for (unsigned attempt = 0; attempt < 20 && !done; attempt++) {
            if (try_item(&g, n))
                done = true;
            else if (attempt == 10 && n + 1 < FUZZ_MAX_ITEMS) {
                /* Probably wants flags left undefined: define them first. */
                struct fuzz_item *it = &c->item[n];
                memset(it, 0, sizeof(*it));
                it->jcc_target = -1;
                if (g_define(&g, it) && !(undef_before(c, n + 1, NULL) & F_ARITH)) {
                    n++;
                    if (n >= FUZZ_MAX_ITEMS)
                        break;
                }
            }
        }
        if (!done)
            break;
        n++;
    }
    c->nr_items = n;
    /* Jumps past the end land on the end marker. */
    for (unsigned i = 0; i < n; i++)
        if (c->item[i].jcc_target > (int)n)
            c->item[i].jcc_target = (int16_t)n;
    if (fuzz_assemble(c) < 0) {
        /* Too long (cannot happen with these limits): fall back to the first items. */
        while (c->nr_items > 1 && fuzz_assemble(c) < 0)
            c->nr_items--;
    }
}

/* sub dword [rip + counter], 1 (7 bytes); jnz rel32 back to `head` (6 bytes). */
static void put_loop_tail(uint8_t *p, unsigned at, unsigned head)
{
    int32_t disp = (int32_t)(FUZZ_COUNTER_ADDR - (FUZZ_CODE_BASE + at + 7));
    int32_t back = (int32_t)head - (int32_t)(at + 13);
    p[0] = 0x83, p[1] = 0x2d;
    memcpy(p + 2, &disp, 4);
    p[6] = 1;
    p[7] = 0x0f, p[8] = 0x85;
    memcpy(p + 9, &back, 4);
}

#define LOOP_TAIL_BYTES 13u

int fuzz_assemble(struct fuzz_case *c)
{
    bool loop = c->loop_passes > 1;
    unsigned tail = loop ? LOOP_TAIL_BYTES : 0;
    for (unsigned i = 0; i < c->nr_items; i++)
        if (c->item[i].jcc_target > (int)c->nr_items)
            c->item[i].jcc_target = (int16_t)c->nr_items;
    for (unsigned pass = 0; pass < 32; pass++) {
        unsigned pos = 0;
        for (unsigned i = 0; i < c->nr_items; i++) {
            const struct fuzz_item *it = &c->item[i];
            c->item_start[i] = (uint16_t)pos;
            pos +=
                it->jcc_target >= 0 ? (it->jcc_near ? (it->jcc_cc == 16 ? 5u : 6u) : 2u) : it->len;
        }
        c->item_start[c->nr_items] = (uint16_t)pos;
        if (pos + tail > FUZZ_MAX_CODE)
            return -1;
        bool grew = false;
        for (unsigned i = 0; i < c->nr_items; i++) {
            struct fuzz_item *it = &c->item[i];
            uint8_t *p = c->code + c->item_start[i];
            if (it->jcc_target < 0) {
                memcpy(p, it->bytes, it->len);
                for (unsigned k = 0; k < it->nr_rip && k < 4; k++) {
                    uint64_t next = FUZZ_CODE_BASE + c->item_start[i] + it->rip_end[k];
                    int32_t disp = (int32_t)(FUZZ_SCRATCH_BASE + it->rip_target[k] - next);
                    memcpy(p + it->rip_disp[k], &disp, 4);
                }
                continue;
            }
            int64_t rel = (int64_t)c->item_start[it->jcc_target] - (int64_t)c->item_start[i + 1];
            if (!it->jcc_near) {
                if (rel > 127) {
                    it->jcc_near = 1;
                    grew = true;
                    continue;
                }
                p[0] = it->jcc_cc == 16 ? 0xeb : (uint8_t)(0x70 + it->jcc_cc);
                p[1] = (uint8_t)rel;
            } else if (it->jcc_cc == 16) {
                int32_t r32 = (int32_t)rel;
                p[0] = 0xe9;
                memcpy(p + 1, &r32, 4);
            } else {
                int32_t r32 = (int32_t)rel;
                p[0] = 0x0f;
                p[1] = (uint8_t)(0x80 + it->jcc_cc);
                memcpy(p + 2, &r32, 4);
            }
        }
        if (!grew) {
            c->code_len = c->item_start[c->nr_items] + tail;
            if (loop)
                put_loop_tail(c->code + c->item_start[c->nr_items], c->item_start[c->nr_items], 0);
            return 0;
        }
    }
    return -1;
}

bool fuzz_flag_mask(const struct fuzz_case *c, uint64_t fault_rip, uint32_t *compare)
{
    bool valid;
    uint16_t undef;
    if (fault_rip) {
        unsigned k = 0;
        while (k + 1 <= c->nr_items && FUZZ_CODE_BASE + c->item_start[k + 1] <= fault_rip)
            k++;
        if (k > c->nr_items)
            k = c->nr_items;
        undef = undef_before(c, k, &valid);
        /* A fault inside group k: its earlier instructions may have run. */
        if (k < c->nr_items)
            undef |= c->item[k].def | c->item[k].undef;
    } else {
        undef = undef_before(c, c->nr_items, &valid);
    }
    *compare = (uint32_t)((F_ARITH & ~undef) | F_DF);
    return valid;
}
