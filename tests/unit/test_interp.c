/* Unit tests: IR interpreter semantics (every opcode x type), memory/env/helper plumbing,
 * control flow, compile-time rejection of malformed IR, a random differential test of
 * optimised vs unoptimised blocks (the micro-benchmark at the end builds only into bench/). Every
 * block these tests run on the interpreter also runs on the native x86-64 backend (where the host
 * is x86-64), which must leave the same state and exit the same way. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "accel/tcg/backend/interp.h"
#include "accel/tcg/backend/x86_64.h"
#include "accel/tcg/ir/ir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* --- test CPU state, memory and helpers ----------------------------------------------------- */

#define NR_GLOBALS 6
#define NR_SLOTS 12 /* globals in slots [0, 6), LDENV/STENV scratch after them */
#define FAULT_BIT 0x40000u

struct tenv {
    uint64_t slot[NR_SLOTS];
    uint8_t mem[256];
    uint64_t log_hash;
    uint64_t log_count;
    uint64_t garbage; /* upper bits the fake MMU leaves above the loaded size */
    jmp_buf *fault;   /* where faulting accesses / exiting helpers longjmp to; not compared */
    /* The native backend's run-loop words and a software TLB (not compared). */
    uint32_t exit_request;
    int32_t chain_budget;
    uint32_t guard;
    uint32_t epoch;
    uint32_t global_epoch;
    void *last_exit;
    uint64_t insn_count;
    struct fake_tlb_entry {
        uint64_t read_tag, write_tag;
        uintptr_t addend;
    } tlb[2][4];
};
#define TENV_DATA_SIZE offsetof(struct tenv, fault)

static const struct ir_temp_info test_globals[NR_GLOBALS] = {
    {.env_offset = 0, .name = "g0"},  {.env_offset = 8, .name = "g1"},
    {.env_offset = 16, .name = "g2"}, {.env_offset = 24, .name = "g3"},
    {.env_offset = 32, .name = "g4"}, {.env_offset = 40, .name = "g5"},
};

/* Only small addresses with FAULT_BIT fault, so random 64-bit addresses rarely do. */
static bool faults(uint64_t addr)
{
    return (addr & ~(uint64_t)(FAULT_BIT | 0xffff)) == 0 && (addr & FAULT_BIT);
}

static uint64_t fake_load(void *env, uint64_t addr, unsigned memop)
{
    struct tenv *e = env;
    unsigned size = memop & IR_MEM_SIZE_MASK;
    if (faults(addr) && e->fault)
        longjmp(*e->fault, 1);
    uint64_t v = 0;
    for (unsigned i = 0; i < size; i++)
        v |= (uint64_t)e->mem[(addr + i) & 0xff] << (8 * i);
    if (size < 8) /* the interpreter must extend from the access size by itself */
        v |= e->garbage << (8 * size);
    return v;
}

static void fake_store(void *env, uint64_t addr, uint64_t value, unsigned memop)
{
    struct tenv *e = env;
    unsigned size = memop & IR_MEM_SIZE_MASK;
    if (faults(addr) && e->fault)
        longjmp(*e->fault, 1);
    if (size < 8 && (value >> (8 * size)) != 0)
        e->log_hash ^= 0xbad; /* value not truncated to the access size: shows up as a diff */
    for (unsigned i = 0; i < size; i++)
        e->mem[(addr + i) & 0xff] = (uint8_t)(value >> (8 * i));
}

static const struct interp_mem_ops fake_mem = {fake_load, fake_store};

static uint64_t h_pure(void *env, uint64_t a, uint64_t b, uint64_t c, uint64_t d)
{
    (void)env;
    return a * 31 + (b ^ (c << 3)) + d;
}

static uint64_t h_log(void *env, uint64_t a, uint64_t b, uint64_t c, uint64_t d)
{
    struct tenv *e = env;
    e->log_hash = (e->log_hash * 1000003u) ^ a ^ (b << 1) ^ (c << 2) ^ (d << 3);
    e->log_count++;
    return e->log_count;
}

static uint64_t h_read_globals(void *env, uint64_t a, uint64_t b, uint64_t c, uint64_t d)
{
    struct tenv *e = env;
    (void)b, (void)c, (void)d;
    return e->slot[0] + e->slot[3] * 7 + a;
}

static uint64_t h_write_globals(void *env, uint64_t a, uint64_t b, uint64_t c, uint64_t d)
{
    struct tenv *e = env;
    (void)b, (void)c, (void)d;
    e->slot[1] = a * 5; /* overwrites without reading */
    e->slot[4] = b;
    return a + 1;
}

static uint64_t h_read_write(void *env, uint64_t a, uint64_t b, uint64_t c, uint64_t d)
{
    struct tenv *e = env;
    (void)b, (void)c, (void)d;
    e->slot[2] = e->slot[2] * 3 + e->slot[5] + a;
    return e->slot[2];
}

static uint64_t h_may_exit(void *env, uint64_t a, uint64_t b, uint64_t c, uint64_t d)
{
    struct tenv *e = env;
    (void)b, (void)c, (void)d;
    if ((a & 0x1f) == 0x1f && e->fault)
        longjmp(*e->fault, 2);
    return a ^ 0x55;
}

enum { H_PURE, H_LOG, H_READ_GLOBALS, H_WRITE_GLOBALS, H_READ_WRITE, H_MAY_EXIT, NR_HELPERS };

static const struct ir_helper test_helpers[NR_HELPERS] = {
    [H_PURE] = {h_pure, "pure", IR_HELPER_NO_SIDE_EFFECTS},
    [H_LOG] = {h_log, "log", 0},
    [H_READ_GLOBALS] = {h_read_globals, "read_globals",
                        IR_HELPER_READS_GLOBALS | IR_HELPER_NO_SIDE_EFFECTS},
    [H_WRITE_GLOBALS] = {h_write_globals, "write_globals", IR_HELPER_WRITES_GLOBALS},
    [H_READ_WRITE] = {h_read_write, "read_write",
                      IR_HELPER_READS_GLOBALS | IR_HELPER_WRITES_GLOBALS},
    [H_MAY_EXIT] = {h_may_exit, "may_exit", IR_HELPER_MAY_EXIT},
};

static struct ir_block *new_block(void)
{
    struct ir_block *b = malloc(sizeof(*b));
    assert_non_null(b);
    ir_block_init(b, test_globals, NR_GLOBALS, test_helpers, NR_HELPERS);
    return b;
}

/* --- the native backend, run beside the interpreter ---------------------------------------- */

#define TLB_MISS (~0ull)

static struct native_config test_config(void)
{
    return (struct native_config){
        .mem = {fake_load, fake_store},
        .tlb_offset = {offsetof(struct tenv, tlb[0]), offsetof(struct tenv, tlb[1])},
        .tlb_entry_size = sizeof(struct fake_tlb_entry),
        .tlb_entries = 4,
        .tlb_read_tag = offsetof(struct fake_tlb_entry, read_tag),
        .tlb_write_tag = offsetof(struct fake_tlb_entry, write_tag),
        .tlb_addend = offsetof(struct fake_tlb_entry, addend),
        .exit_request_offset = offsetof(struct tenv, exit_request),
        .chain_budget_offset = offsetof(struct tenv, chain_budget),
        .guard_offset = offsetof(struct tenv, guard),
        .epoch_offset = offsetof(struct tenv, epoch),
        .global_epoch_offset = offsetof(struct tenv, global_epoch),
        .last_exit_offset = offsetof(struct tenv, last_exit),
        .insn_count_offset = offsetof(struct tenv, insn_count),
        .count_insns = true,
    };
}

static struct native_jit *test_jit(void)
{
#if defined(__x86_64__)
    static struct native_jit *jit; /* one code buffer for the whole test program */
    if (!jit) {
        const struct native_config cfg = test_config();
        char err[160];
        jit = native_jit_create(&cfg, 8u << 20, err, sizeof(err));
        if (!jit)
            fail_msg("native backend: %s", err);
    }
    return jit;
#else
    return NULL;
#endif
}

/* Every TLB entry misses: accesses go to fake_load/fake_store like the interpreter's. */
static void native_state_reset(struct tenv *e)
{
    for (int u = 0; u < 2; u++)
        for (int i = 0; i < 4; i++)
            e->tlb[u][i] = (struct fake_tlb_entry){TLB_MISS, TLB_MISS, 0};
    e->exit_request = 0;
    e->chain_budget = 100;
}

static struct native_code *native_compile_ok(const struct ir_block *b, uint32_t insns)
{
    struct native_jit *jit = test_jit();
    const struct native_block_info info = {.nr_guest_insns = insns};
    bool full;
    struct native_code *code = native_compile(jit, b, &info, &full);
    if (!code && full) {
        native_reset(jit); /* the tests free their blocks before compiling more */
        code = native_compile(jit, b, &info, &full);
    }
    assert_non_null(code);
    assert_true(native_code_size(code) > 0);
    return code;
}

/* Compiles and runs b on e (no fault handler), returning the exit value; where the native
 * backend exists, runs it on a copy of e too and checks it agrees. */
static uint32_t run(const struct ir_block *b, struct tenv *e)
{
    struct tenv copy = *e;
    struct interp_code *code = interp_compile(b, &fake_mem);
    assert_non_null(code);
    assert_true(interp_code_size(code) > 0);
    uint32_t r = interp_exec(code, e);
    interp_free(code);
    if (test_jit()) {
        native_state_reset(&copy);
        struct native_code *nc = native_compile_ok(b, 0);
        uint32_t rn = native_exec(test_jit(), nc, &copy);
        native_code_free(nc);
        assert_int_equal(rn, r);
        assert_memory_equal(&copy, e, TENV_DATA_SIZE);
    }
    return r;
}

/* Evaluates one op d = opc(a, b) three ways: inputs in globals (env operands), inputs as
 * constants into a local (frame operands), and after ir_optimize (constant folding). All
 * three must agree; returns the result. */
static uint64_t eval2(enum ir_opcode opc, enum ir_type t, enum ir_cond cond, uint64_t a, uint64_t b,
                      uint64_t imm)
{
    const struct ir_opcode_info *info = ir_opcode_info(opc);
    uint64_t results[3];
    for (int variant = 0; variant < 3; variant++) {
        struct ir_block *blk = new_block();
        struct tenv e;
        memset(&e, 0, sizeof(e));
        e.slot[0] = 0xdeadbeefdeadbeefull; /* must be fully overwritten */
        e.slot[1] = a;
        e.slot[2] = b;
        ir_temp ta = 1, tb = 2, d = 0;
        if (variant > 0) {
            ta = ir_const(blk, IR_I64, a);
            tb = ir_const(blk, IR_I64, b);
            d = ir_new_temp(blk, t);
        }
        ir_temp args[] = {d, ta, tb};
        assert_true(ir_emit(blk, opc, t, cond, args, 1u + info->nr_in, imm) >= 0);
        if (variant > 0)
            ir_mov(blk, IR_I64, 0, d);
        ir_exit_tb(blk, IR_EXIT_NEXT);
        if (variant == 2)
            ir_optimize(blk);
        assert_false(blk->overflow);
        assert_int_equal(run(blk, &e), IR_EXIT_NEXT);
        results[variant] = e.slot[0];
        free(blk);
    }
    assert_int_equal(results[0], results[1]);
    assert_int_equal(results[0], results[2]);
    return results[0];
}

static uint64_t eval(enum ir_opcode opc, enum ir_type t, uint64_t a, uint64_t b)
{
    return eval2(opc, t, IR_COND_ALWAYS, a, b, 0);
}

/* --- semantics ------------------------------------------------------------------------------ */

static void test_arith(void **state)
{
    (void)state;
    const uint64_t big = 0xffffffff00000005ull;
    assert_int_equal(eval(IR_ADD, IR_I64, 1, 2), 3);
    assert_int_equal(eval(IR_ADD, IR_I32, 0xffffffff, 2), 1); /* wraps, zero-extended */
    assert_int_equal(eval(IR_ADD, IR_I32, big, 1), 6);        /* high input bits ignored */
    assert_int_equal(eval(IR_ADD, IR_I64, UINT64_MAX, 1), 0);
    assert_int_equal(eval(IR_SUB, IR_I32, 0, 1), 0xffffffffu);
    assert_int_equal(eval(IR_SUB, IR_I64, 0, 1), UINT64_MAX);
    assert_int_equal(eval(IR_MUL, IR_I32, 0x10000, 0x10001), 0x10000);
    assert_int_equal(eval(IR_MUL, IR_I64, 0x100000000ull, 0x100000001ull), 0x100000000ull);
    assert_int_equal(eval(IR_AND, IR_I64, 0xff00ff00ff00ff00ull, 0x0ff00ff00ff00ff0ull),
                     0x0f000f000f000f00ull);
    assert_int_equal(eval(IR_AND, IR_I32, big, UINT64_MAX), 5);
    assert_int_equal(eval(IR_OR, IR_I64, 0xf0, 0x0f00000000000000ull), 0x0f000000000000f0ull);
    assert_int_equal(eval(IR_OR, IR_I32, big, 0), 5);
    assert_int_equal(eval(IR_XOR, IR_I64, 0xff, 0x0f), 0xf0);
    assert_int_equal(eval(IR_XOR, IR_I32, UINT64_MAX, 1), 0xfffffffeu);
    assert_int_equal(eval(IR_ANDC, IR_I64, 0xff, 0x0f), 0xf0);
    assert_int_equal(eval(IR_ANDC, IR_I32, UINT64_MAX, 0), 0xffffffffu);
    assert_int_equal(eval(IR_NEG, IR_I64, 1, 0), UINT64_MAX);
    assert_int_equal(eval(IR_NEG, IR_I32, 1, 0), 0xffffffffu);
    assert_int_equal(eval(IR_NOT, IR_I64, 0, 0), UINT64_MAX);
    assert_int_equal(eval(IR_NOT, IR_I32, 0, 0), 0xffffffffu);
    assert_int_equal(eval(IR_MOV, IR_I32, big, 0), 5);
    assert_int_equal(eval(IR_MOV, IR_I64, big, 0), big);
}

static void test_shifts_rotates(void **state)
{
    (void)state;
    /* counts are taken modulo the width */
    assert_int_equal(eval(IR_SHL, IR_I32, 1, 31), 0x80000000u);
    assert_int_equal(eval(IR_SHL, IR_I32, 1, 32), 1);
    assert_int_equal(eval(IR_SHL, IR_I32, 1, 33), 2);
    assert_int_equal(eval(IR_SHL, IR_I64, 1, 63), 0x8000000000000000ull);
    assert_int_equal(eval(IR_SHL, IR_I64, 1, 64), 1);
    assert_int_equal(eval(IR_SHL, IR_I64, 3, 65), 6);
    assert_int_equal(eval(IR_SHR, IR_I32, 0x80000000u, 31), 1);
    assert_int_equal(eval(IR_SHR, IR_I32, 0xffffffff00000000ull, 4), 0);
    assert_int_equal(eval(IR_SHR, IR_I64, 0x8000000000000000ull, 63), 1);
    assert_int_equal(eval(IR_SHR, IR_I64, 0x80, 64 + 7), 1);
    assert_int_equal(eval(IR_SAR, IR_I32, 0x80000000u, 31), 0xffffffffu);
    assert_int_equal(eval(IR_SAR, IR_I32, 0x80000000u, 32 + 4), 0xf8000000u);
    assert_int_equal(eval(IR_SAR, IR_I32, 0x40000000u, 30), 1);
    assert_int_equal(eval(IR_SAR, IR_I64, 0x8000000000000000ull, 63), UINT64_MAX);
    assert_int_equal(eval(IR_SAR, IR_I64, 0x8000000000000000ull, 60), 0xfffffffffffffff8ull);
    assert_int_equal(eval(IR_SAR, IR_I64, 0x4000000000000000ull, 62), 1);
    assert_int_equal(eval(IR_ROTL, IR_I32, 0x80000001u, 1), 3);
    assert_int_equal(eval(IR_ROTL, IR_I32, 0x12345678u, 0), 0x12345678u);
    assert_int_equal(eval(IR_ROTL, IR_I32, 0x12345678u, 32 + 8), 0x34567812u);
    assert_int_equal(eval(IR_ROTL, IR_I64, 0x8000000000000001ull, 1), 3);
    assert_int_equal(eval(IR_ROTL, IR_I64, 0x0123456789abcdefull, 64 + 8), 0x23456789abcdef01ull);
    assert_int_equal(eval(IR_ROTR, IR_I32, 3, 1), 0x80000001u);
    assert_int_equal(eval(IR_ROTR, IR_I32, 0x12345678u, 8), 0x78123456u);
    assert_int_equal(eval(IR_ROTR, IR_I64, 3, 1), 0x8000000000000001ull);
    assert_int_equal(eval(IR_ROTR, IR_I64, 0x0123456789abcdefull, 0), 0x0123456789abcdefull);
}

static void test_extensions(void **state)
{
    (void)state;
    assert_int_equal(eval(IR_EXT8S, IR_I32, 0x180, 0), 0xffffff80u);
    assert_int_equal(eval(IR_EXT8S, IR_I64, 0x180, 0), 0xffffffffffffff80ull);
    assert_int_equal(eval(IR_EXT8S, IR_I64, 0x17f, 0), 0x7f);
    assert_int_equal(eval(IR_EXT8U, IR_I32, 0xfff, 0), 0xff);
    assert_int_equal(eval(IR_EXT8U, IR_I64, UINT64_MAX, 0), 0xff);
    assert_int_equal(eval(IR_EXT16S, IR_I32, 0x18000, 0), 0xffff8000u);
    assert_int_equal(eval(IR_EXT16S, IR_I64, 0x8000, 0), 0xffffffffffff8000ull);
    assert_int_equal(eval(IR_EXT16U, IR_I32, UINT64_MAX, 0), 0xffff);
    assert_int_equal(eval(IR_EXT16U, IR_I64, 0x12345678, 0), 0x5678);
    assert_int_equal(eval(IR_EXT32S, IR_I64, 0x80000000u, 0), 0xffffffff80000000ull);
    assert_int_equal(eval(IR_EXT32S, IR_I64, 0x123456789ull, 0), 0x23456789);
    assert_int_equal(eval(IR_EXT32U, IR_I64, 0xffffffff80000000ull, 0), 0x80000000u);
}

static uint64_t field(unsigned pos, unsigned len)
{
    return pos | (uint64_t)len << 8;
}

static void test_deposit_extract(void **state)
{
    (void)state;
    assert_int_equal(eval2(IR_DEPOSIT, IR_I64, 0, 0x1122334455667788ull, 0xab, field(8, 8)),
                     0x112233445566ab88ull);
    assert_int_equal(eval2(IR_DEPOSIT, IR_I64, 0, 0, UINT64_MAX, field(0, 64)), UINT64_MAX);
    assert_int_equal(eval2(IR_DEPOSIT, IR_I64, 0, UINT64_MAX, 0, field(32, 32)), 0xffffffffu);
    assert_int_equal(eval2(IR_DEPOSIT, IR_I32, 0, 0xffffffffffffffffull, 0x0, field(0, 16)),
                     0xffff0000u);
    assert_int_equal(eval2(IR_DEPOSIT, IR_I32, 0, 0, 0x3, field(30, 2)), 0xc0000000u);
    assert_int_equal(eval2(IR_EXTRACT, IR_I64, 0, 0x1122334455667788ull, 0, field(8, 16)), 0x6677);
    assert_int_equal(eval2(IR_EXTRACT, IR_I64, 0, UINT64_MAX, 0, field(63, 1)), 1);
    assert_int_equal(eval2(IR_EXTRACT, IR_I64, 0, 0x8000000000000000ull, 0, field(0, 64)),
                     0x8000000000000000ull);
    assert_int_equal(eval2(IR_EXTRACT, IR_I32, 0, 0xffffffff12345678ull, 0, field(16, 16)), 0x1234);
    assert_int_equal(eval2(IR_EXTRACT, IR_I32, 0, 0xffffffff12345678ull, 0, field(0, 32)),
                     0x12345678);
}

static const uint64_t interesting[] = {0,
                                       1,
                                       2,
                                       0x7f,
                                       0x80,
                                       0xff,
                                       0x7fffffff,
                                       0x80000000u,
                                       0xffffffffu,
                                       0x100000000ull,
                                       0x7fffffffffffffffull,
                                       0x8000000000000000ull,
                                       0xfffffffffffffffeull,
                                       UINT64_MAX,
                                       0xffffffff00000001ull};
#define NR_INTERESTING (sizeof(interesting) / sizeof(interesting[0]))

/* Reference condition, written independently of ir_cond_eval. */
static bool ref_cond(enum ir_cond c, enum ir_type t, uint64_t a, uint64_t b)
{
    if (t == IR_I32) {
        uint32_t ua = (uint32_t)a, ub = (uint32_t)b;
        int32_t sa = (int32_t)ua, sb = (int32_t)ub;
        bool r[] = {ua == ub,
                    ua != ub,
                    sa<sb, sa >= sb, sa <= sb, sa>
                        sb,
                    ua<ub, ua >= ub, ua <= ub, ua>
                        ub,
                    (ua & ub) == 0,
                    (ua & ub) != 0,
                    true,
                    false};
        return r[c];
    }
    int64_t sa = (int64_t)a, sb = (int64_t)b;
    bool r[] = {a == b,
                a != b,
                sa<sb, sa >= sb, sa <= sb, sa>
                    sb,
                a<b, a >= b, a <= b, a>
                    b,
                (a & b) == 0,
                (a & b) != 0,
                true,
                false};
    return r[c];
}

static void test_setcond_brcond_movcond(void **state)
{
    (void)state;
    struct tenv e;
    for (int c = IR_COND_EQ; c <= IR_COND_NEVER; c++)
        for (int t = IR_I32; t <= IR_I64; t++)
            for (size_t i = 0; i < NR_INTERESTING; i += 2)
                for (size_t j = 0; j < NR_INTERESTING; j += 3) {
                    uint64_t a = interesting[i], b = interesting[j];
                    bool want = ref_cond((enum ir_cond)c, (enum ir_type)t, a, b);
                    assert_int_equal(ir_cond_eval((enum ir_cond)c, (enum ir_type)t, a, b), want);
                    assert_int_equal(eval2(IR_SETCOND, (enum ir_type)t, (enum ir_cond)c, a, b, 0),
                                     want);
                    /* brcond: g0 = taken ? 1 : 2 */
                    struct ir_block *blk = new_block();
                    ir_label l = ir_new_label(blk);
                    ir_movi(blk, IR_I64, 0, 1);
                    ir_brcond(blk, (enum ir_type)t, (enum ir_cond)c, 1, 2, l);
                    ir_movi(blk, IR_I64, 0, 2);
                    ir_label_here(blk, l);
                    ir_exit_tb(blk, IR_EXIT_NEXT);
                    memset(&e, 0, sizeof(e));
                    e.slot[1] = a;
                    e.slot[2] = b;
                    run(blk, &e);
                    assert_int_equal(e.slot[0], want ? 1 : 2);
                    free(blk);
                    /* movcond: g0 = cond ? g3 : g4, truncated for i32 */
                    blk = new_block();
                    ir_movcond(blk, (enum ir_type)t, (enum ir_cond)c, 0, 1, 2, 3, 4);
                    memset(&e, 0, sizeof(e));
                    e.slot[1] = a;
                    e.slot[2] = b;
                    e.slot[3] = 0x1111111122222222ull;
                    e.slot[4] = 0x3333333344444444ull;
                    run(blk, &e);
                    uint64_t pick = want ? e.slot[3] : e.slot[4];
                    assert_int_equal(e.slot[0], t == IR_I32 ? (uint32_t)pick : pick);
                    free(blk);
                }
}

static void test_mul2(void **state)
{
    (void)state;
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (int iter = 0; iter < 2000; iter++) {
        uint64_t a = iter < 225 ? interesting[iter % NR_INTERESTING] : x;
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t b = iter < 225 ? interesting[(iter / NR_INTERESTING) % NR_INTERESTING] : x;
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        for (int sign = 0; sign < 2; sign++)
            for (int t = IR_I32; t <= IR_I64; t++) {
                struct ir_block *blk = new_block();
                ir_mul2(blk, sign, (enum ir_type)t, 0, 3, 1, 2);
                struct tenv e;
                memset(&e, 0, sizeof(e));
                e.slot[1] = a;
                e.slot[2] = b;
                run(blk, &e);
                free(blk);
                uint64_t lo, hi;
                if (t == IR_I64) {
#if defined(__SIZEOF_INT128__)
                    unsigned __int128 p =
                        sign ? (unsigned __int128)((__int128)(int64_t)a * (__int128)(int64_t)b)
                             : (unsigned __int128)a * b;
                    lo = (uint64_t)p;
                    hi = (uint64_t)(p >> 64);
#else
                    skip();
#endif
                } else {
                    uint64_t p =
                        sign ? (uint64_t)((int64_t)(int32_t)(uint32_t)a * (int32_t)(uint32_t)b)
                             : (uint64_t)(uint32_t)a * (uint32_t)b;
                    lo = (uint32_t)p;
                    hi = p >> 32;
                }
                assert_int_equal(e.slot[0], lo);
                assert_int_equal(e.slot[3], hi);
            }
    }
}

static void test_bit_ops(void **state)
{
    (void)state;
    assert_int_equal(eval(IR_CLZ, IR_I32, 1, 99), 31);
    assert_int_equal(eval(IR_CLZ, IR_I32, 0x80000000u, 99), 0);
    assert_int_equal(eval(IR_CLZ, IR_I32, 0xffffffff00000000ull, 99), 99);  /* low half is 0 */
    assert_int_equal(eval(IR_CLZ, IR_I32, 0, 0x1ffffffffull), 0xffffffffu); /* fallback, i32 */
    assert_int_equal(eval(IR_CLZ, IR_I64, 1, 99), 63);
    assert_int_equal(eval(IR_CLZ, IR_I64, 0x100000000ull, 99), 31);
    assert_int_equal(eval(IR_CLZ, IR_I64, 0, 64), 64);
    assert_int_equal(eval(IR_CTZ, IR_I32, 0x80000000u, 99), 31);
    assert_int_equal(eval(IR_CTZ, IR_I32, 0, 32), 32);
    assert_int_equal(eval(IR_CTZ, IR_I32, 0x100000000ull, 7), 7);
    assert_int_equal(eval(IR_CTZ, IR_I64, 0x100000000ull, 7), 32);
    assert_int_equal(eval(IR_CTZ, IR_I64, 0, 64), 64);
    assert_int_equal(eval(IR_CTPOP, IR_I32, UINT64_MAX, 0), 32);
    assert_int_equal(eval(IR_CTPOP, IR_I64, UINT64_MAX, 0), 64);
    assert_int_equal(eval(IR_CTPOP, IR_I64, 0x8000000000000101ull, 0), 3);
    assert_int_equal(eval(IR_CTPOP, IR_I64, 0, 0), 0);
    assert_int_equal(eval(IR_BSWAP, IR_I32, 0xffffffff11223344ull, 0), 0x44332211u);
    assert_int_equal(eval(IR_BSWAP, IR_I64, 0x1122334455667788ull, 0), 0x8877665544332211ull);
}

static void test_qld_qst(void **state)
{
    (void)state;
    static const struct {
        unsigned memop;
        int type;
        uint64_t want;
    } loads[] = {
        {1, IR_I64, 0x88},
        {1 | IR_MEM_SIGN, IR_I64, 0xffffffffffffff88ull},
        {1 | IR_MEM_SIGN, IR_I32, 0xffffff88u},
        {2, IR_I32, 0x7788},
        {2 | IR_MEM_SIGN, IR_I64, 0x7788},
        {4, IR_I64, 0xf5667788u},
        {4 | IR_MEM_SIGN, IR_I64, 0xfffffffff5667788ull},
        {4 | IR_MEM_SIGN, IR_I32, 0xf5667788u},
        {8, IR_I64, 0x11223344f5667788ull},
        {8, IR_I32, 0xf5667788u},
    };
    for (size_t i = 0; i < sizeof(loads) / sizeof(loads[0]); i++) {
        struct ir_block *blk = new_block();
        ir_qld(blk, (enum ir_type)loads[i].type, 0, 1, loads[i].memop);
        struct tenv e;
        memset(&e, 0, sizeof(e));
        e.garbage = 0xa5a5a5a5a5a5a5a5ull;
        e.slot[1] = 0x10;
        uint64_t v = 0x11223344f5667788ull;
        memcpy(&e.mem[0x10], &v, 8);
        run(blk, &e);
        assert_int_equal(e.slot[0], loads[i].want);
        free(blk);
    }
    /* stores write exactly `size` bytes of the (type-truncated) value */
    static const struct {
        unsigned memop;
        int type;
        uint64_t want;
    } stores[] = {
        {1, IR_I64, 0xaaaaaaaaaaaaaa08ull}, {2, IR_I32, 0xaaaaaaaaaaaa0708ull},
        {4, IR_I64, 0xaaaaaaaa05060708ull}, {8, IR_I64, 0x0102030405060708ull},
        {8, IR_I32, 0x0000000005060708ull},
    };
    for (size_t i = 0; i < sizeof(stores) / sizeof(stores[0]); i++) {
        struct ir_block *blk = new_block();
        ir_qst(blk, (enum ir_type)stores[i].type, 2, 1, stores[i].memop);
        struct tenv e;
        memset(&e, 0, sizeof(e));
        memset(e.mem, 0xaa, sizeof(e.mem));
        e.slot[1] = 0x20;
        e.slot[2] = 0x0102030405060708ull;
        run(blk, &e);
        uint64_t got;
        memcpy(&got, &e.mem[0x20], 8);
        assert_int_equal(got, stores[i].want);
        assert_int_equal(e.log_hash, 0); /* no bits above the access size were passed */
        free(blk);
    }
}

static void test_env_and_calls(void **state)
{
    (void)state;
    struct ir_block *blk = new_block();
    ir_temp t = ir_new_temp(blk, IR_I64);
    ir_ldenv(blk, t, 8 * 7);     /* scratch slot 7 */
    ir_stenv(blk, t, 8 * 8 + 4); /* unaligned, straddles slots 8 and 9 */
    ir_temp r = ir_new_temp(blk, IR_I64);
    ir_call(blk, H_PURE, r, 1, 2, IR_NO_TEMP, IR_NO_TEMP); /* absent args read as 0 */
    ir_mov(blk, IR_I64, 0, r);
    ir_call(blk, H_LOG, IR_NO_TEMP, ir_const(blk, IR_I64, 9), IR_NO_TEMP, IR_NO_TEMP, IR_NO_TEMP);
    ir_call(blk, H_READ_WRITE, 3, 1, IR_NO_TEMP, IR_NO_TEMP, IR_NO_TEMP);
    ir_exit_tb(blk, IR_EXIT_HELPER);
    struct tenv e;
    memset(&e, 0, sizeof(e));
    e.slot[1] = 3;
    e.slot[2] = 4;
    e.slot[5] = 100;
    e.slot[7] = 0x1122334455667788ull;
    assert_int_equal(run(blk, &e), IR_EXIT_HELPER);
    assert_int_equal(e.slot[0], 3 * 31 + 4);
    assert_int_equal(e.slot[8], 0x5566778800000000ull);
    assert_int_equal(e.slot[9], 0x11223344u);
    assert_int_equal(e.log_count, 1);
    assert_int_equal(e.log_hash, 9);
    assert_int_equal(e.slot[2], 4 * 3 + 100 + 3);
    assert_int_equal(e.slot[3], e.slot[2]);
    free(blk);
}

static void test_loop_sum(void **state)
{
    (void)state;
    for (int t = IR_I32; t <= IR_I64; t++) {
        struct ir_block *blk = new_block();
        enum ir_type ty = (enum ir_type)t;
        ir_temp sum = ir_new_temp(blk, ty), i = ir_new_temp(blk, ty);
        ir_label top = ir_new_label(blk);
        ir_movi(blk, ty, sum, 0);
        ir_movi(blk, ty, i, 1);
        ir_label_here(blk, top);
        ir_binop(blk, IR_ADD, ty, sum, sum, i);
        ir_binop(blk, IR_ADD, ty, i, i, ir_const(blk, ty, 1));
        ir_brcond(blk, ty, IR_COND_LEU, i, ir_const(blk, ty, 1000), top);
        ir_mov(blk, IR_I64, 0, sum);
        ir_goto_tb(blk, 1);
        for (int opt = 0; opt < 2; opt++) {
            if (opt)
                ir_optimize(blk);
            struct tenv e;
            memset(&e, 0, sizeof(e));
            assert_int_equal(run(blk, &e), INTERP_GOTO_TB(1));
            assert_int_equal(e.slot[0], 500500);
        }
        free(blk);
    }
}

static void test_exits(void **state)
{
    (void)state;
    struct tenv e;
    memset(&e, 0, sizeof(e));
    struct ir_block *blk = new_block();
    ir_movi(blk, IR_I64, 0, 7); /* no exit at all: falls off the end */
    assert_int_equal(run(blk, &e), IR_EXIT_NEXT);
    assert_int_equal(e.slot[0], 7);
    ir_block_init(blk, test_globals, NR_GLOBALS, test_helpers, NR_HELPERS);
    ir_exit_tb(blk, IR_EXIT_INTERRUPT);
    ir_movi(blk, IR_I64, 0, 8); /* unreachable */
    assert_int_equal(run(blk, &e), IR_EXIT_INTERRUPT);
    assert_int_equal(e.slot[0], 7);
    ir_block_init(blk, test_globals, NR_GLOBALS, test_helpers, NR_HELPERS);
    ir_label l = ir_new_label(blk);
    ir_brcond(blk, IR_I64, IR_COND_EQ, 1, 2, l);
    ir_goto_tb(blk, 0);
    ir_label_here(blk, l); /* label at the very end */
    e.slot[1] = 1;
    assert_int_equal(run(blk, &e), INTERP_GOTO_TB(0));
    e.slot[2] = 1;
    assert_int_equal(run(blk, &e), IR_EXIT_NEXT);
    free(blk);
}

static void test_uninitialised_locals_read_zero(void **state)
{
    (void)state;
    /* The dirty-stack run first: a compiled block must not leak old frame contents. */
    struct ir_block *blk = new_block();
    for (int i = 0; i < 200; i++)
        ir_movi(blk, IR_I64, ir_new_temp(blk, IR_I64), 0x5555555555555555ull);
    struct tenv e;
    memset(&e, 0, sizeof(e));
    run(blk, &e);
    ir_block_init(blk, test_globals, NR_GLOBALS, test_helpers, NR_HELPERS);
    ir_label l = ir_new_label(blk);
    ir_temp t = ir_new_temp(blk, IR_I64);
    ir_brcond(blk, IR_I64, IR_COND_EQ, 1, 2, l);
    ir_movi(blk, IR_I64, t, 5);
    ir_label_here(blk, l);
    ir_mov(blk, IR_I64, 0, t);
    e.slot[0] = 99;
    run(blk, &e); /* branch taken: t never written */
    assert_int_equal(e.slot[0], 0);
    free(blk);
}

/* Both backends refuse the block (and the native one not because its buffer is full). */
static void assert_rejected(const struct ir_block *blk)
{
    assert_null(interp_compile(blk, &fake_mem));
    if (test_jit()) {
        const struct native_block_info info = {.nr_guest_insns = 1};
        bool full = true;
        assert_null(native_compile(test_jit(), blk, &info, &full));
        assert_false(full);
    }
}

static void test_compile_rejects_malformed(void **state)
{
    (void)state;
    struct ir_block *blk = new_block();
    ir_label l = ir_new_label(blk);
    ir_br(blk, l); /* label never placed */
    assert_rejected(blk);

    ir_block_init(blk, test_globals, NR_GLOBALS, test_helpers, NR_HELPERS);
    l = ir_new_label(blk);
    ir_label_here(blk, l);
    ir_label_here(blk, l); /* placed twice */
    assert_rejected(blk);

    ir_block_init(blk, test_globals, NR_GLOBALS, test_helpers, NR_HELPERS);
    ir_qld(blk, IR_I64, 0, 1, 3); /* bad size */
    assert_rejected(blk);

    ir_block_init(blk, test_globals, NR_GLOBALS, test_helpers, NR_HELPERS);
    ir_extract(blk, IR_I32, 0, 1, 16, 17); /* past the i32 width */
    assert_rejected(blk);

    ir_block_init(blk, test_globals, NR_GLOBALS, test_helpers, NR_HELPERS);
    ir_movi(blk, IR_I64, 0, 1);
    blk->ops[0].args[0] = 999; /* corrupt temp index */
    assert_rejected(blk);
    ir_optimize(blk); /* and the optimiser leaves it alone rather than crash */
    free(blk);
}

/* A guest Jcc's shape, SETCOND then BRCOND on it against 0 (the native backend fuses
 * them): every condition, both senses, both widths, against the interpreter. */
static void test_setcond_brcond_pairs(void **state)
{
    (void)state;
    static const uint64_t values[] = {
        0, 1, 2, 0x7fffffff, 0x80000000, 0xffffffff, 0x100000000ull, 0x8000000000000000ull, ~0ull};
    const unsigned nv = sizeof(values) / sizeof(values[0]);
    for (unsigned cond = IR_COND_EQ; cond < IR_COND_ALWAYS; cond++)
        for (unsigned sense = 0; sense < 2; sense++)
            for (unsigned t = IR_I32; t <= IR_I64; t++) {
                struct ir_block *blk = new_block();
                ir_temp c = ir_new_temp(blk, (enum ir_type)t);
                ir_label l = ir_new_label(blk);
                ir_setcond(blk, (enum ir_type)t, (enum ir_cond)cond, c, 1, 2);
                ir_brcond(blk, IR_I64, sense ? IR_COND_EQ : IR_COND_NE, c, ir_const(blk, IR_I64, 0),
                          l);
                ir_movi(blk, IR_I64, 0, 111);
                ir_exit_tb(blk, IR_EXIT_NEXT);
                ir_label_here(blk, l);
                ir_movi(blk, IR_I64, 0, 222);
                ir_exit_tb(blk, IR_EXIT_NEXT);
                for (unsigned x = 0; x < nv; x++)
                    for (unsigned y = 0; y < nv; y++) {
                        struct tenv e;
                        memset(&e, 0, sizeof(e));
                        e.slot[1] = values[x];
                        e.slot[2] = values[y];
                        run(blk, &e); /* the native run must agree (checked in run) */
                        bool taken = ir_cond_eval((enum ir_cond)cond, (enum ir_type)t, values[x],
                                                  values[y]) != (sense == 1);
                        assert_int_equal(e.slot[0], taken ? 222 : 111);
                    }
                free(blk);
            }
}

/* --- native backend: TLB hit path and block chaining ------------------------------------- */

static void test_native_tlb_hit_path(void **state)
{
    (void)state;
    if (!test_jit())
        skip();
    static uint8_t page[4096];
    for (unsigned i = 0; i < sizeof(page); i++)
        page[i] = (uint8_t)(0x80 + i * 7);
    struct ir_block *blk = new_block();
    ir_qld(blk, IR_I64, 0, 1, 4);               /* g0 = u32 [g1] */
    ir_qld(blk, IR_I64, 4, 1, 1 | IR_MEM_SIGN); /* g4 = s8 [g1] */
    ir_qst(blk, IR_I64, 2, 3, 2);               /* u16 [g3] = g2 */
    ir_exit_tb(blk, IR_EXIT_NEXT);
    struct tenv e;
    for (unsigned mmu = 0; mmu < 2; mmu++) {
        const struct native_block_info info = {.mmu_index = mmu, .nr_guest_insns = 1};
        bool full;
        struct native_code *code = native_compile(test_jit(), blk, &info, &full);
        assert_non_null(code);
        for (int crossing = 0; crossing < 2; crossing++) {
            memset(&e, 0, sizeof(e));
            native_state_reset(&e);
            for (unsigned i = 0; i < sizeof(e.mem); i++)
                e.mem[i] = (uint8_t)i;
            /* Page 0x7000 -> `page`, in entry 3 of this MMU index's TLB only. */
            e.tlb[mmu][3] = (struct fake_tlb_entry){0x7000, 0x7000, (uintptr_t)page - 0x7000};
            e.slot[1] = crossing ? 0x7ffe : 0x7010;
            e.slot[2] = 0xabcd1234;
            e.slot[3] = 0x7020;
            assert_int_equal(native_exec(test_jit(), code, &e), IR_EXIT_NEXT);
            if (!crossing) { /* hits: `page`, not the slow path's e.mem */
                uint32_t want;
                memcpy(&want, page + 0x10, 4);
                assert_int_equal(e.slot[0], want);
                assert_int_equal(e.slot[4], (uint64_t)(int64_t)(int8_t)page[0x10]);
            } else { /* 4 bytes cross into the next page: the slow path (e.mem wraps at
                        256); the 1-byte load at the same address still hits */
                assert_int_equal(e.slot[0], 0x0100fffeu);
                assert_int_equal(e.slot[4], (uint64_t)(int64_t)(int8_t)page[0xffe]);
            }
            assert_int_equal(page[0x20] | page[0x21] << 8, 0x1234);
            page[0x20] = page[0x21] = 0;
            /* With the write tag gone, the store takes the slow path. */
            e.tlb[mmu][3].write_tag = TLB_MISS;
            e.slot[2] = 0x5566;
            native_exec(test_jit(), code, &e);
            assert_int_equal(e.mem[0x20] | e.mem[0x21] << 8, 0x5566);
            assert_int_equal(page[0x20], 0);
        }
        native_code_free(code);
    }
    free(blk);
}

/* g<reg> += 1, then GOTO_TB 0. */
static struct native_code *counting_block(unsigned reg)
{
    struct ir_block *blk = new_block();
    ir_binop(blk, IR_ADD, IR_I64, (ir_temp)reg, (ir_temp)reg, ir_const(blk, IR_I64, 1));
    ir_goto_tb(blk, 0);
    struct native_code *code = native_compile_ok(blk, 1);
    free(blk);
    return code;
}

static void test_native_chaining(void **state)
{
    (void)state;
    if (!test_jit())
        skip();
    struct native_jit *jit = test_jit();
    native_reset(jit);
    struct native_code *a = counting_block(0), *b = counting_block(1);
    struct tenv e;
    memset(&e, 0, sizeof(e));
    native_state_reset(&e);
    /* Unchained: A leaves through its GOTO_TB and says so. */
    assert_int_equal(native_exec(jit, a, &e), INTERP_GOTO_TB(0));
    assert_ptr_equal(e.last_exit, a);
    assert_int_equal(e.slot[0], 1);
    /* A -> B -> B -> ... until the budget runs out. */
    native_chain(jit, 0, a, 0, b, 0, false);
    native_chain(jit, 0, b, 0, b, 0, false);
    e.chain_budget = 10;
    e.insn_count = 0;
    assert_int_equal(native_exec(jit, a, &e), INTERP_GOTO_TB(0));
    assert_ptr_equal(e.last_exit, b);
    assert_int_equal(e.slot[0], 2);
    assert_int_equal(e.slot[1], 10);
    assert_int_equal(e.insn_count, 11);
    /* Another CPU mode, another epoch: the chain is not taken. */
    e.guard = 5;
    e.chain_budget = 10;
    native_exec(jit, a, &e);
    assert_ptr_equal(e.last_exit, a);
    assert_int_equal(e.slot[1], 10);
    e.guard = 0;
    e.epoch = 1;
    native_exec(jit, a, &e);
    assert_ptr_equal(e.last_exit, a);
    assert_int_equal(e.slot[1], 10);
    e.epoch = 0;
    /* Chained into global code: only the global epoch matters. */
    native_chain(jit, 0, a, 0, b, 7, true);
    e.epoch = 3;
    e.global_epoch = 7;
    e.chain_budget = 2;
    native_exec(jit, a, &e); /* A -> B; B's own chain (every-flush epoch 0) is stale */
    assert_ptr_equal(e.last_exit, b);
    assert_int_equal(e.slot[1], 11);
    e.global_epoch = 8;
    native_exec(jit, a, &e);
    assert_ptr_equal(e.last_exit, a);
    assert_int_equal(e.slot[1], 11);
    native_chain(jit, 0, a, 0, b, 0, false);
    e.epoch = 0;
    /* An exit request stops the chain at B's entry, before B runs. */
    e.exit_request = 1;
    e.chain_budget = 10;
    assert_int_equal(native_exec(jit, a, &e), IR_EXIT_INTERRUPT);
    assert_int_equal(e.slot[1], 11);
    e.exit_request = 0;
    /* Invalidating B undoes the chain into it: A leaves through its GOTO_TB again. */
    native_invalidate(jit, b);
    assert_true(b->dead);
    e.chain_budget = 10;
    assert_int_equal(native_exec(jit, a, &e), INTERP_GOTO_TB(0));
    assert_ptr_equal(e.last_exit, a);
    assert_int_equal(e.slot[0], 8);
    assert_int_equal(e.slot[1], 11);
    native_code_free(a);
    native_code_free(b);
}

/* Indirect exits: lookup_next finds the target and patches the exit's inline cache, which
 * then skips the lookup while pc (g5), mode and epoch match. */
static struct {
    struct native_jit *jit;
    struct native_code *target;
    unsigned calls;
} lookup_state;

static const void *test_lookup(void *env, struct native_site *site)
{
    struct tenv *e = env;
    lookup_state.calls++;
    if (!lookup_state.target)
        return NULL;
    native_cache_target(lookup_state.jit, site, e->slot[5], e->guard, e->epoch, false,
                        lookup_state.target);
    return lookup_state.target->entry;
}

static void test_native_inline_cache(void **state)
{
    (void)state;
    if (!test_jit())
        skip();
    struct native_config cfg = test_config();
    cfg.lookup_next = test_lookup;
    cfg.pc_offset = offsetof(struct tenv, slot[5]);
    char err[160];
    struct native_jit *jit = native_jit_create(&cfg, 1u << 20, err, sizeof(err));
    assert_non_null(jit);
    lookup_state.jit = jit;
    const struct native_block_info info = {.nr_guest_insns = 1, .inline_cache = true};
    bool full;
    struct ir_block *blk = new_block();
    ir_binop(blk, IR_ADD, IR_I64, 0, 0, ir_const(blk, IR_I64, 1)); /* source: g0++, exit */
    ir_exit_tb(blk, IR_EXIT_NEXT);
    struct native_code *src = native_compile(jit, blk, &info, &full);
    ir_block_init(blk, test_globals, NR_GLOBALS, test_helpers, NR_HELPERS);
    ir_binop(blk, IR_ADD, IR_I64, 1, 1, ir_const(blk, IR_I64, 1)); /* target: g1++, leave */
    ir_exit_tb(blk, IR_EXIT_HELPER);
    struct native_code *dst = native_compile(jit, blk, &info, &full);
    free(blk);
    assert_non_null(src);
    assert_non_null(dst);
    struct tenv e;
    memset(&e, 0, sizeof(e));
    native_state_reset(&e);
    e.slot[5] = 0x401000;
    lookup_state.target = dst;
    lookup_state.calls = 0;
    assert_int_equal(native_exec(jit, src, &e), IR_EXIT_HELPER); /* looked up */
    assert_int_equal(lookup_state.calls, 1);
    assert_int_equal(native_exec(jit, src, &e), IR_EXIT_HELPER); /* cached */
    assert_int_equal(lookup_state.calls, 1);
    assert_int_equal(e.slot[0], 2);
    assert_int_equal(e.slot[1], 2);
    e.slot[5] = 0x402000; /* another pc, another mode, another epoch: looked up again */
    native_exec(jit, src, &e);
    assert_int_equal(lookup_state.calls, 2);
    e.guard = 3;
    native_exec(jit, src, &e);
    assert_int_equal(lookup_state.calls, 3);
    e.epoch = 9;
    native_exec(jit, src, &e);
    assert_int_equal(lookup_state.calls, 4);
    native_exec(jit, src, &e);
    assert_int_equal(lookup_state.calls, 4);
    assert_int_equal(e.slot[1], 6);
    /* No block found: back to the run loop. */
    e.slot[5] = 0x403000;
    lookup_state.target = NULL;
    assert_int_equal(native_exec(jit, src, &e), IR_EXIT_NEXT);
    /* Invalidating the cached target empties the cache: the lookup is asked again. */
    e.slot[5] = 0x402000;
    native_invalidate(jit, dst);
    unsigned calls = lookup_state.calls;
    assert_int_equal(native_exec(jit, src, &e), IR_EXIT_NEXT);
    assert_int_equal(lookup_state.calls, calls + 1);
    assert_int_equal(e.slot[1], 6);
    /* The budget is spent by the lookups too. */
    e.chain_budget = 0;
    lookup_state.calls = 0;
    assert_int_equal(native_exec(jit, src, &e), IR_EXIT_NEXT);
    assert_int_equal(lookup_state.calls, 0);
    native_code_free(src);
    native_code_free(dst);
    native_jit_destroy(jit);
}

/* --- random differential test: optimised vs unoptimised -------------------------------------- */

struct rng {
    uint64_t s;
};

static uint64_t rnd(struct rng *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 2685821657736338717ull;
}

static uint32_t rnd_below(struct rng *r, uint32_t n)
{
    return (uint32_t)(rnd(r) % n);
}

static uint64_t rnd_value(struct rng *r)
{
    switch (rnd_below(r, 6)) {
    case 0:
        return interesting[rnd_below(r, NR_INTERESTING)];
    case 1:
        return rnd_below(r, 70);
    case 2: /* addresses into the fake memory, sometimes faulting */
        return rnd_below(r, 256) | (rnd_below(r, 8) == 0 ? FAULT_BIT : 0);
    default:
        return rnd(r);
    }
}

#define GEN_MAX_LOCALS 24
#define GEN_MAX_PENDING 4

struct gen {
    struct rng *r;
    struct ir_block *b;
    ir_temp locals[GEN_MAX_LOCALS];
    unsigned nr_locals;
    uint32_t defined;  /* locals surely written on every path to here (bit per local) */
    uint32_t reserved; /* loop counter: not a destination */
    bool reachable;
    struct {
        ir_label label;
        uint32_t defined; /* intersection over the branches to it */
    } pending[GEN_MAX_PENDING];
    unsigned nr_pending;
};

static ir_temp gen_input(struct gen *g)
{
    for (;;) {
        switch (rnd_below(g->r, 4)) {
        case 0:
            return (ir_temp)rnd_below(g->r, NR_GLOBALS);
        case 1: {
            enum ir_type t = rnd_below(g->r, 2) ? IR_I64 : IR_I32;
            return ir_const(g->b, t, rnd_value(g->r));
        }
        default:
            if (g->nr_locals) {
                unsigned i = rnd_below(g->r, g->nr_locals);
                if (g->defined & (1u << i))
                    return g->locals[i];
            }
        }
    }
}

static ir_temp gen_output(struct gen *g)
{
    if (rnd_below(g->r, 3) == 0)
        return (ir_temp)rnd_below(g->r, NR_GLOBALS);
    unsigned i;
    if (g->nr_locals < GEN_MAX_LOCALS && rnd_below(g->r, 3) == 0) {
        i = g->nr_locals++;
        g->locals[i] = ir_new_temp(g->b, rnd_below(g->r, 2) ? IR_I64 : IR_I32);
    } else if (g->nr_locals) {
        i = rnd_below(g->r, g->nr_locals);
        if (g->reserved & (1u << i))
            return (ir_temp)rnd_below(g->r, NR_GLOBALS);
    } else {
        return (ir_temp)rnd_below(g->r, NR_GLOBALS);
    }
    g->defined |= 1u << i; /* the op below writes it */
    return g->locals[i];
}

static const enum ir_opcode gen_binops[] = {IR_ADD,  IR_SUB,  IR_MUL, IR_AND, IR_OR,
                                            IR_XOR,  IR_ANDC, IR_SHL, IR_SHR, IR_SAR,
                                            IR_ROTL, IR_ROTR, IR_CLZ, IR_CTZ};
static const enum ir_opcode gen_unops[] = {IR_MOV,    IR_NEG,    IR_NOT,    IR_EXT8S,
                                           IR_EXT8U,  IR_EXT16S, IR_EXT16U, IR_EXT32S,
                                           IR_EXT32U, IR_CTPOP,  IR_BSWAP};

/* One straight-line op (no control flow). */
static void gen_simple_op(struct gen *g)
{
    struct rng *r = g->r;
    enum ir_type t = rnd_below(r, 2) ? IR_I64 : IR_I32;
    enum ir_cond c = (enum ir_cond)rnd_below(r, IR_COND_NEVER + 1);
    switch (rnd_below(r, 16)) {
    case 0:
    case 1:
    case 2:
    case 3: {
        ir_temp a = gen_input(g), b = gen_input(g);
        if (rnd_below(r, 8) == 0)
            b = a; /* x-x, x^x, ... */
        /* one random draw per statement: argument evaluation order is unspecified, and the
         * block sequence must not depend on the compiler */
        enum ir_opcode opc = gen_binops[rnd_below(r, sizeof(gen_binops) / sizeof(gen_binops[0]))];
        ir_binop(g->b, opc, t, gen_output(g), a, b);
        break;
    }
    case 4:
    case 5: {
        ir_temp a = gen_input(g);
        enum ir_opcode opc = gen_unops[rnd_below(r, sizeof(gen_unops) / sizeof(gen_unops[0]))];
        ir_unop(g->b, opc, t, gen_output(g), a);
        break;
    }
    case 6: {
        uint64_t v = rnd_value(r);
        ir_movi(g->b, t, gen_output(g), v);
    } break;
    case 7: {
        ir_temp a = gen_input(g), b = gen_input(g);
        if (rnd_below(r, 2)) {
            ir_setcond(g->b, t, c, gen_output(g), a, b);
        } else {
            ir_temp x = gen_input(g), y = gen_input(g);
            ir_movcond(g->b, t, c, gen_output(g), a, b, x, y);
        }
        break;
    }
    case 8: {
        unsigned bits = t == IR_I32 ? 32 : 64;
        unsigned pos = rnd_below(r, bits), len = 1 + rnd_below(r, bits - pos);
        ir_temp a = gen_input(g);
        if (rnd_below(r, 2)) {
            ir_temp v = gen_input(g);
            ir_deposit(g->b, t, gen_output(g), a, v, pos, len);
        } else {
            ir_extract(g->b, t, gen_output(g), a, pos, len);
        }
        break;
    }
    case 9: {
        ir_temp a = gen_input(g), b = gen_input(g);
        ir_temp lo = gen_output(g), hi = gen_output(g);
        if (lo == hi) /* both were marked written: write it */
            ir_binop(g->b, IR_MUL, t, lo, a, b);
        else
            ir_mul2(g->b, rnd_below(r, 2), t, lo, hi, a, b);
        break;
    }
    case 10: {
        static const unsigned sizes[] = {1, 2, 4, 8};
        unsigned memop = sizes[rnd_below(r, 4)] | (rnd_below(r, 2) ? IR_MEM_SIGN : 0);
        ir_temp addr = gen_input(g);
        if (rnd_below(r, 2))
            ir_qld(g->b, t, gen_output(g), addr, memop);
        else
            ir_qst(g->b, t, gen_input(g), addr, memop);
        break;
    }
    case 11: {
        /* globals' own slots (aligned and straddling) as well as scratch */
        static const uint32_t offsets[] = {0, 4, 8, 20, 40, 44, 48, 56, 64, 72, 80, 88};
        uint32_t off = offsets[rnd_below(r, sizeof(offsets) / sizeof(offsets[0]))];
        if (rnd_below(r, 2))
            ir_ldenv(g->b, gen_output(g), off);
        else
            ir_stenv(g->b, gen_input(g), off);
        break;
    }
    case 12:
    case 13: {
        ir_temp args[4];
        for (int i = 0; i < 4; i++)
            args[i] = rnd_below(r, 3) ? gen_input(g) : IR_NO_TEMP;
        ir_temp d = rnd_below(r, 4) ? gen_output(g) : IR_NO_TEMP;
        ir_call(g->b, rnd_below(r, NR_HELPERS), d, args[0], args[1], args[2], args[3]);
        break;
    }
    case 14:
        ir_insn_start(g->b, rnd_below(r, 0x10000));
        break;
    default: {
        ir_temp a = gen_input(g); /* before gen_output marks the destination written */
        ir_mov(g->b, t, gen_output(g), a);
        break;
    }
    }
}

static void gen_place_label(struct gen *g, unsigned i)
{
    uint32_t in = g->pending[i].defined;
    g->defined = g->reachable ? (g->defined & in) : in;
    g->reachable = true;
    ir_label_here(g->b, g->pending[i].label);
    g->pending[i] = g->pending[--g->nr_pending];
}

static void gen_block(struct gen *g, unsigned nr_steps)
{
    struct rng *r = g->r;
    g->reachable = true;
    for (unsigned step = 0; step < nr_steps; step++) {
        unsigned kind = rnd_below(r, 20);
        if (kind < 14) {
            gen_simple_op(g);
        } else if (kind < 16 && g->nr_pending < GEN_MAX_PENDING) { /* forward branch */
            ir_label l = ir_new_label(g->b);
            g->pending[g->nr_pending].label = l;
            g->pending[g->nr_pending].defined = g->defined;
            g->nr_pending++;
            if (rnd_below(r, 4) == 0) {
                ir_br(g->b, l);
                g->reachable = false;
            } else {
                ir_temp a = gen_input(g), b = gen_input(g);
                enum ir_type t = rnd_below(r, 2) ? IR_I64 : IR_I32;
                enum ir_cond c = (enum ir_cond)rnd_below(r, IR_COND_NEVER + 1);
                ir_brcond(g->b, t, c, a, b, l);
            }
        } else if (kind < 18 && g->nr_pending) {
            gen_place_label(g, rnd_below(r, g->nr_pending));
        } else if (kind == 18 && g->nr_pending) { /* early exit, then the code is unreachable */
            if (rnd_below(r, 2))
                ir_exit_tb(g->b, IR_EXIT_HELPER);
            else
                ir_goto_tb(g->b, 1);
            g->reachable = false;
        } else if (kind == 19 && g->nr_locals < GEN_MAX_LOCALS && g->reserved == 0) {
            /* a small counted loop: the body's locals cross the back edge */
            unsigned ci = g->nr_locals++;
            ir_temp cnt = ir_new_temp(g->b, IR_I64);
            g->locals[ci] = cnt;
            ir_movi(g->b, IR_I64, cnt, 1 + rnd_below(r, 4));
            g->defined |= 1u << ci;
            g->reserved = 1u << ci;
            ir_label top = ir_new_label(g->b);
            ir_label_here(g->b, top);
            g->reachable = true;
            unsigned body = 1 + rnd_below(r, 6);
            for (unsigned i = 0; i < body; i++)
                gen_simple_op(g);
            ir_binop(g->b, IR_SUB, IR_I64, cnt, cnt, ir_const(g->b, IR_I64, 1));
            ir_brcond(g->b, IR_I64, IR_COND_NE, cnt, ir_const(g->b, IR_I64, 0), top);
            g->reserved = 0;
        }
    }
    while (g->nr_pending)
        gen_place_label(g, 0);
    switch (rnd_below(r, 3)) {
    case 0:
        ir_exit_tb(g->b, IR_EXIT_NEXT);
        break;
    case 1:
        ir_goto_tb(g->b, 0);
        break;
    default:
        break; /* fall off the end */
    }
}

static void random_env(struct rng *r, struct tenv *e)
{
    memset(e, 0, sizeof(*e));
    for (int i = 0; i < NR_SLOTS; i++)
        e->slot[i] = rnd_value(r);
    for (size_t i = 0; i < sizeof(e->mem); i++)
        e->mem[i] = (uint8_t)rnd(r);
    e->garbage = rnd_below(r, 2) ? 0 : rnd(r);
}

/* Runs code on e; returns the exit value, or 0x1000 + n if something longjmp'd out. */
static uint32_t run_guarded(const struct interp_code *code, const struct native_code *native,
                            struct tenv *e)
{
    jmp_buf jb;
    e->fault = &jb;
    int why = setjmp(jb);
    if (why) {
        e->fault = NULL;
        return 0x1000u + (uint32_t)why;
    }
    uint32_t res;
    if (native) {
        native_state_reset(e);
        res = native_exec(test_jit(), native, e);
    } else {
        res = interp_exec(code, e);
    }
    e->fault = NULL;
    return res;
}

static void test_random_differential(void **state)
{
    (void)state;
    struct ir_block *orig = malloc(sizeof(*orig)), *opt = malloc(sizeof(*opt));
    assert_non_null(orig);
    assert_non_null(opt);
    struct rng r = {0x243f6a8885a308d3ull};
    uint64_t ops_before = 0, ops_after = 0, runs = 0, exits_seen[4] = {0, 0, 0, 0};
    const unsigned nr_blocks = 4000, envs_per_block = 4;
    char *text = malloc(1 << 16);
    assert_non_null(text);
    for (unsigned n = 0; n < nr_blocks; n++) {
        ir_block_init(orig, test_globals, NR_GLOBALS, test_helpers, NR_HELPERS);
        struct gen g;
        memset(&g, 0, sizeof(g));
        g.r = &r;
        g.b = orig;
        gen_block(&g, 5 + rnd_below(&r, 60));
        assert_false(orig->overflow);
        memcpy(opt, orig, sizeof(*opt));
        ir_optimize(opt);
        ops_before += orig->nr_ops;
        ops_after += opt->nr_ops;
        ir_print(opt, text, 1 << 16);

        struct interp_code *c1 = interp_compile(orig, &fake_mem);
        struct interp_code *c2 = interp_compile(opt, &fake_mem);
        assert_non_null(c1);
        assert_non_null(c2);
        struct native_code *c3 = test_jit() ? native_compile_ok(opt, 0) : NULL;
        for (unsigned k = 0; k < envs_per_block; k++) {
            struct tenv e1, e2, e3;
            random_env(&r, &e1);
            memcpy(&e2, &e1, sizeof(e1));
            memcpy(&e3, &e1, sizeof(e1));
            uint32_t r1 = run_guarded(c1, NULL, &e1);
            uint32_t r2 = run_guarded(c2, NULL, &e2);
            if (c3) { /* the native code of the optimised block must do what the interpreter did */
                uint32_t r3 = run_guarded(NULL, c3, &e3);
                if (r3 != r2 || memcmp(&e2, &e3, TENV_DATA_SIZE) != 0) {
                    ir_print(opt, text, 1 << 16);
                    print_message("block %u env %u: interpreter exit %#x, native %#x\n%s", n, k, r2,
                                  r3, text);
                    for (int i = 0; i < NR_SLOTS; i++)
                        print_message("slot %d: %#llx vs %#llx\n", i,
                                      (unsigned long long)e2.slot[i],
                                      (unsigned long long)e3.slot[i]);
                    fail();
                }
            }
            if (r1 != r2 || memcmp(&e1, &e2, TENV_DATA_SIZE) != 0) {
                size_t len = ir_print(orig, text, 1 << 16);
                print_message("block %u env %u: exit %#x vs %#x\n--- original (%zu bytes)\n%s", n,
                              k, r1, r2, len, text);
                ir_print(opt, text, 1 << 16);
                print_message("--- optimised\n%s", text);
                for (int i = 0; i < NR_SLOTS; i++)
                    print_message("slot %d: %#llx vs %#llx\n", i, (unsigned long long)e1.slot[i],
                                  (unsigned long long)e2.slot[i]);
                fail();
            }
            runs++;
            exits_seen[r1 >= 0x1000 ? 3 : r1 >= 0x100 ? 2 : r1 == IR_EXIT_NEXT ? 0 : 1]++;
        }
        interp_free(c1);
        interp_free(c2);
        native_code_free(c3);
    }
    print_message("differential: %u blocks, %llu runs (exit_next %llu, other exit %llu, goto_tb "
                  "%llu, longjmp %llu); ops %llu -> %llu after ir_optimize\n",
                  nr_blocks, (unsigned long long)runs, (unsigned long long)exits_seen[0],
                  (unsigned long long)exits_seen[1], (unsigned long long)exits_seen[2],
                  (unsigned long long)exits_seen[3], (unsigned long long)ops_before,
                  (unsigned long long)ops_after);
    free(text);
    free(orig);
    free(opt);
}

/* --- micro-benchmark (informational) --------------------------------------------------------- */
/* Not a unit test (timings prove nothing there and cost every run): built only as
 * build/bench/interp_micro (-DINTERP_BENCH, `make bench-interp`, part of `make bench`). */
#ifdef INTERP_BENCH

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void bench_loop(const char *what, bool in_globals)
{
    const uint64_t n = 2000000;
    struct ir_block *blk = new_block();
    ir_temp sum = in_globals ? 3 : ir_new_temp(blk, IR_I64);
    ir_temp i = in_globals ? 4 : ir_new_temp(blk, IR_I64);
    ir_temp x = ir_new_temp(blk, IR_I64);
    ir_label top = ir_new_label(blk);
    ir_movi(blk, IR_I64, sum, 0);
    ir_movi(blk, IR_I64, i, 1);
    ir_label_here(blk, top);
    ir_binop(blk, IR_XOR, IR_I64, x, i, ir_const(blk, IR_I64, 0x55));
    ir_binop(blk, IR_ADD, IR_I64, sum, sum, x);
    ir_binop(blk, IR_ADD, IR_I64, i, i, ir_const(blk, IR_I64, 1));
    ir_brcond(blk, IR_I64, IR_COND_LEU, i, ir_const(blk, IR_I64, n), top);
    ir_mov(blk, IR_I64, 0, sum);
    ir_exit_tb(blk, IR_EXIT_NEXT);
    struct interp_code *code = interp_compile(blk, &fake_mem);
    assert_non_null(code);
    struct tenv e;
    memset(&e, 0, sizeof(e));
    double t0 = now_ns();
    interp_exec(code, &e);
    double dt = now_ns() - t0;
    uint64_t want = 0;
    for (uint64_t k = 1; k <= n; k++)
        want += k ^ 0x55;
    assert_int_equal(e.slot[0], want);
    print_message("interp bench (%s): %.2f ns per IR op (%llu ops, %zu-byte code)\n", what,
                  dt / (double)(4 * n), (unsigned long long)(4 * n), interp_code_size(code));
    interp_free(code);
    free(blk);
}

static void test_bench(void **state)
{
    (void)state;
    bench_loop("locals", false);
    bench_loop("globals in env", true);

    /* Compile cost of a typical-size straight-line block. */
    struct ir_block *blk = new_block();
    struct rng r = {42};
    struct gen g;
    memset(&g, 0, sizeof(g));
    g.r = &r;
    g.b = blk;
    for (int i = 0; i < 60; i++)
        gen_simple_op(&g);
    ir_exit_tb(blk, IR_EXIT_NEXT);
    struct ir_block *copy = malloc(sizeof(*copy));
    assert_non_null(copy);
    const int reps = 2000;
    double t_opt = 0, t_compile = 0;
    for (int k = 0; k < reps; k++) {
        memcpy(copy, blk, sizeof(*copy));
        double t0 = now_ns();
        ir_optimize(copy);
        double t1 = now_ns();
        struct interp_code *code = interp_compile(copy, &fake_mem);
        double t2 = now_ns();
        assert_non_null(code);
        interp_free(code);
        t_opt += t1 - t0;
        t_compile += t2 - t1;
    }
    print_message("translate bench: %u-op block: ir_optimize %.1f us, interp_compile %.1f us\n",
                  blk->nr_ops, t_opt / reps / 1e3, t_compile / reps / 1e3);
    free(copy);
    free(blk);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_bench)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
#else
int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arith),
        cmocka_unit_test(test_shifts_rotates),
        cmocka_unit_test(test_extensions),
        cmocka_unit_test(test_deposit_extract),
        cmocka_unit_test(test_setcond_brcond_movcond),
        cmocka_unit_test(test_mul2),
        cmocka_unit_test(test_bit_ops),
        cmocka_unit_test(test_qld_qst),
        cmocka_unit_test(test_env_and_calls),
        cmocka_unit_test(test_loop_sum),
        cmocka_unit_test(test_exits),
        cmocka_unit_test(test_uninitialised_locals_read_zero),
        cmocka_unit_test(test_compile_rejects_malformed),
        cmocka_unit_test(test_setcond_brcond_pairs),
        cmocka_unit_test(test_native_tlb_hit_path),
        cmocka_unit_test(test_native_chaining),
        cmocka_unit_test(test_native_inline_cache),
        cmocka_unit_test(test_random_differential),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
#endif
