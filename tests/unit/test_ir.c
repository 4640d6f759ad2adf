/* Unit tests: IR builder (bounds/overflow, constants, validation), tables, printer, and the
 * optimiser's folding, identity, copy propagation and dead code rules. The optimiser's
 * semantic equivalence on random blocks is checked in test_interp.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "accel/tcg/ir/ir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { RAX, RCX, G2, G3, NR_GLOBALS };
static const struct ir_temp_info globals[NR_GLOBALS] = {
    {.env_offset = 0, .name = "rax"},
    {.env_offset = 8, .name = "rcx"},
    {.env_offset = 16, .name = "g2"},
    {.env_offset = 24, .name = "g3"},
};

static uint64_t h_dummy(void *env, uint64_t a, uint64_t b, uint64_t c, uint64_t d)
{
    (void)env;
    return a + b + c + d;
}

enum { H_NAMED, H_LOG, H_PURE, H_READS, H_WRITES, H_MAY_EXIT, NR_HELPERS };
static const struct ir_helper helpers[NR_HELPERS] = {
    [H_NAMED] = {h_dummy, "helper_name", 0},
    [H_LOG] = {h_dummy, "log", 0},
    [H_PURE] = {h_dummy, "pure", IR_HELPER_NO_SIDE_EFFECTS},
    [H_READS] = {h_dummy, "reads", IR_HELPER_READS_GLOBALS | IR_HELPER_NO_SIDE_EFFECTS},
    [H_WRITES] = {h_dummy, "writes", IR_HELPER_WRITES_GLOBALS},
    [H_MAY_EXIT] = {h_dummy, "may_exit", IR_HELPER_MAY_EXIT},
};

static struct ir_block *new_block(void)
{
    struct ir_block *b = malloc(sizeof(*b));
    assert_non_null(b);
    ir_block_init(b, globals, NR_GLOBALS, helpers, NR_HELPERS);
    return b;
}

static char text[1 << 16];

static const char *print(const struct ir_block *b)
{
    ir_print(b, text, sizeof(text));
    return text;
}

/* Optimises b and checks the printed result; frees b. */
static void expect_opt(struct ir_block *b, const char *want)
{
    assert_false(b->overflow);
    ir_optimize(b);
    assert_string_equal(print(b), want);
    free(b);
}

/* --- builder ------------------------------------------------------------------------------- */

static void test_builder_basics(void **state)
{
    (void)state;
    struct ir_block *b = new_block();
    assert_int_equal(b->nr_globals, NR_GLOBALS);
    assert_int_equal(b->nr_temps, NR_GLOBALS);
    assert_int_equal(b->temps[RCX].kind, IR_TEMP_GLOBAL);
    assert_int_equal(b->temps[RCX].type, IR_I64);
    assert_int_equal(b->temps[RCX].env_offset, 8);
    assert_string_equal(b->temps[RCX].name, "rcx");
    ir_temp t = ir_new_temp(b, IR_I32);
    assert_int_equal(t, NR_GLOBALS);
    assert_int_equal(b->temps[t].kind, IR_TEMP_LOCAL);
    ir_temp c1 = ir_const(b, IR_I64, 42), c2 = ir_const(b, IR_I64, 42);
    assert_int_equal(c1, c2); /* deduplicated */
    assert_int_equal(b->temps[c1].kind, IR_TEMP_CONST);
    assert_int_not_equal(ir_const(b, IR_I32, 42), c1); /* different type */
    ir_temp c3 = ir_const(b, IR_I32, 0x100000005ull);
    assert_int_equal(b->temps[c3].value, 5); /* i32 constants are zero-extended */
    assert_int_equal(ir_const(b, IR_I32, 5), c3);
    assert_int_equal(ir_new_label(b), 0);
    assert_int_equal(ir_new_label(b), 1);
    ir_movi(b, IR_I32, t, 0x1ffffffffull);
    assert_int_equal(b->ops[0].imm, 0xffffffffu);
    assert_int_equal(ir_emit(b, IR_ADD, IR_I64, IR_COND_ALWAYS, (ir_temp[]){t, t, c1}, 3, 0), 1);
    assert_int_equal(b->nr_ops, 2);
    assert_false(b->overflow);
    free(b);
}

static void test_builder_overflow(void **state)
{
    (void)state;
    struct ir_block *b = new_block();
    for (int i = 0; i < IR_MAX_OPS; i++)
        ir_movi(b, IR_I64, RAX, (uint64_t)i);
    assert_false(b->overflow);
    assert_int_equal(b->nr_ops, IR_MAX_OPS);
    assert_int_equal(ir_emit(b, IR_MOVI, IR_I64, IR_COND_ALWAYS, (ir_temp[]){RAX}, 1, 0), -1);
    assert_true(b->overflow);
    assert_int_equal(b->nr_ops, IR_MAX_OPS);
    ir_exit_tb(b, IR_EXIT_NEXT);
    assert_int_equal(b->nr_ops, IR_MAX_OPS);

    ir_block_init(b, globals, NR_GLOBALS, helpers, NR_HELPERS);
    assert_false(b->overflow);
    for (int i = NR_GLOBALS; i < IR_MAX_TEMPS; i++)
        assert_int_not_equal(ir_new_temp(b, IR_I64), IR_NO_TEMP);
    assert_false(b->overflow);
    assert_int_equal(ir_new_temp(b, IR_I64), IR_NO_TEMP);
    assert_true(b->overflow);
    assert_int_equal(ir_const(b, IR_I64, 0x1234), IR_NO_TEMP);
    assert_int_equal(b->nr_temps, IR_MAX_TEMPS);
    ir_mov(b, IR_I64, RAX, IR_NO_TEMP); /* the failed temp is rejected, not emitted */
    assert_int_equal(b->nr_ops, 0);

    ir_block_init(b, globals, NR_GLOBALS, helpers, NR_HELPERS);
    for (int i = 0; i < IR_MAX_LABELS; i++)
        ir_new_label(b);
    assert_false(b->overflow);
    ir_label bad = ir_new_label(b);
    assert_true(b->overflow);
    ir_br(b, bad);
    assert_int_equal(b->nr_ops, 0);
    assert_int_equal(b->nr_labels, IR_MAX_LABELS);

    /* malformed uses are rejected and flag the block */
    ir_block_init(b, globals, NR_GLOBALS, helpers, NR_HELPERS);
    ir_temp c = ir_const(b, IR_I64, 1);
    ir_movi(b, IR_I64, c, 2); /* writing a constant */
    assert_true(b->overflow);
    ir_block_init(b, globals, NR_GLOBALS, helpers, NR_HELPERS);
    ir_call(b, NR_HELPERS, IR_NO_TEMP, IR_NO_TEMP, IR_NO_TEMP, IR_NO_TEMP, IR_NO_TEMP);
    assert_true(b->overflow);
    ir_block_init(b, globals, NR_GLOBALS, helpers, NR_HELPERS);
    ir_label_here(b, 0); /* label never allocated */
    assert_true(b->overflow);
    ir_block_init(b, globals, NR_GLOBALS, helpers, NR_HELPERS);
    assert_int_equal(ir_emit(b, IR_ADD, IR_I64, IR_COND_ALWAYS, (ir_temp[]){RAX, RAX}, 2, 0), -1);
    assert_int_equal(ir_emit(b, IR_NR_OPCODES, IR_I64, IR_COND_ALWAYS, NULL, 0, 0), -1);
    assert_int_equal(b->nr_ops, 0);
    free(b);
}

static void test_tables(void **state)
{
    (void)state;
    const struct ir_opcode_info *add = ir_opcode_info(IR_ADD);
    assert_string_equal(add->name, "ADD");
    assert_int_equal(add->nr_out, 1);
    assert_int_equal(add->nr_in, 2);
    assert_false(add->has_imm);
    const struct ir_opcode_info *qst = ir_opcode_info(IR_QST);
    assert_int_equal(qst->nr_out, 0);
    assert_int_equal(qst->nr_in, 2);
    assert_true(qst->has_imm);
    assert_int_equal(ir_opcode_info(IR_MOVCOND)->nr_in, 4);
    assert_int_equal(ir_opcode_info(IR_MULU2)->nr_out, 2);
    assert_null(ir_opcode_info(IR_NR_OPCODES));
    assert_string_equal(ir_cond_name(IR_COND_LTU), "ltu");
    assert_string_equal(ir_cond_name(IR_COND_TSTNE), "tstne");
    assert_string_equal(ir_cond_name((enum ir_cond)99), "?");

    /* widths: i32 looks at the low halves, signed i32 conditions sign-extend from bit 31 */
    assert_true(ir_cond_eval(IR_COND_EQ, IR_I32, 0x100000001ull, 1));
    assert_false(ir_cond_eval(IR_COND_EQ, IR_I64, 0x100000001ull, 1));
    assert_true(ir_cond_eval(IR_COND_LT, IR_I32, 0x80000000u, 0));
    assert_false(ir_cond_eval(IR_COND_LT, IR_I64, 0x80000000u, 0));
    assert_true(ir_cond_eval(IR_COND_GTU, IR_I32, 0x80000000u, 0x7fffffff00000001ull));
    assert_true(ir_cond_eval(IR_COND_LT, IR_I64, UINT64_MAX, 0));
    assert_false(ir_cond_eval(IR_COND_LTU, IR_I64, UINT64_MAX, 0));
    assert_true(ir_cond_eval(IR_COND_TSTEQ, IR_I32, 0xff00000000ull, 0xff00000000ull));
    assert_true(ir_cond_eval(IR_COND_TSTNE, IR_I64, 0xff00000000ull, 0xff00000000ull));
    assert_true(ir_cond_eval(IR_COND_ALWAYS, IR_I64, 0, 1));
    assert_false(ir_cond_eval(IR_COND_NEVER, IR_I64, 0, 0));
}

/* --- printer ------------------------------------------------------------------------------- */

static void test_print(void **state)
{
    (void)state;
    struct ir_block *b = new_block();
    ir_insn_start(b, 0x1000);
    ir_temp c16 = ir_const(b, IR_I32, 0x10), c0 = ir_const(b, IR_I32, 0);
    ir_temp t = ir_new_temp(b, IR_I32), u = ir_new_temp(b, IR_I64), v = ir_new_temp(b, IR_I64);
    ir_binop(b, IR_ADD, IR_I32, t, RAX, c16);
    ir_movi(b, IR_I64, u, 0x10);
    ir_label l = ir_new_label(b);
    ir_brcond(b, IR_I32, IR_COND_NE, t, c0, l);
    ir_call(b, H_NAMED, v, t, RCX, IR_NO_TEMP, IR_NO_TEMP);
    ir_call(b, H_LOG, IR_NO_TEMP, IR_NO_TEMP, IR_NO_TEMP, IR_NO_TEMP, IR_NO_TEMP);
    ir_qld(b, IR_I64, u, t, 4 | IR_MEM_SIGN);
    ir_qst(b, IR_I32, t, RCX, 2);
    ir_setcond(b, IR_I64, IR_COND_LTU, u, RAX, RCX);
    ir_movcond(b, IR_I32, IR_COND_EQ, t, RAX, RCX, u, v);
    ir_deposit(b, IR_I64, RAX, RAX, u, 8, 8);
    ir_extract(b, IR_I32, t, RAX, 4, 4);
    ir_mul2(b, true, IR_I64, u, v, RAX, RCX);
    ir_ldenv(b, u, 0x40);
    ir_stenv(b, u, 0x48);
    ir_label_here(b, l);
    ir_br(b, l);
    ir_goto_tb(b, 1);
    ir_exit_tb(b, IR_EXIT_HELPER);
    assert_false(b->overflow);
    const char *want = " ---- 0x1000\n"
                       "  add_i32 t6, rax, $0x10\n"
                       "  movi_i64 t7, $0x10\n"
                       "  brcond_i32 t6, $0x0, ne, L0\n"
                       "  call helper_name t8, t6, rcx\n"
                       "  call log\n"
                       "  qld_i64 t7, [t6] size=4 sign\n"
                       "  qst_i32 t6, [rcx] size=2\n"
                       "  setcond_i64 t7, rax, rcx, ltu\n"
                       "  movcond_i32 t6, rax, rcx, t7, t8, eq\n"
                       "  deposit_i64 rax, rax, t7, pos=8, len=8\n"
                       "  extract_i32 t6, rax, pos=4, len=4\n"
                       "  muls2_i64 t7, t8, rax, rcx\n"
                       "  ldenv t7, [env+0x40]\n"
                       "  stenv t7, [env+0x48]\n"
                       "L0:\n"
                       "  br L0\n"
                       "  goto_tb 1\n"
                       "  exit_tb 2\n";
    size_t full = ir_print(b, text, sizeof(text));
    assert_string_equal(text, want);
    assert_int_equal(full, strlen(want));

    /* truncation: like snprintf, NUL-terminated, returns the untruncated length */
    char small[16];
    memset(small, 'x', sizeof(small));
    assert_int_equal(ir_print(b, small, 10), full);
    assert_string_equal(small, " ---- 0x1");
    assert_int_equal(small[10], 'x');
    assert_int_equal(ir_print(b, NULL, 0), full);
    for (size_t n = 1; n < full + 2; n += 7) { /* every cut point stays in bounds */
        char *buf = malloc(n);
        assert_non_null(buf);
        assert_int_equal(ir_print(b, buf, n), full);
        assert_int_equal(strlen(buf), n - 1 < full ? n - 1 : full);
        assert_memory_equal(buf, want, strlen(buf));
        free(buf);
    }
    free(b);
}

/* --- constant folding and identities -------------------------------------------------------- */

static void test_fold_constants(void **state)
{
    (void)state;
    struct ir_block *b = new_block();
    ir_temp t = ir_new_temp(b, IR_I32);
    ir_movi(b, IR_I32, t, 5);
    ir_binop(b, IR_ADD, IR_I32, RAX, t, ir_const(b, IR_I32, 3)); /* through a known temp */
    ir_binop(b, IR_ADD, IR_I32, RCX, ir_const(b, IR_I32, 0xffffffff), ir_const(b, IR_I32, 1));
    ir_binop(b, IR_SHL, IR_I32, G2, ir_const(b, IR_I64, 1), ir_const(b, IR_I64, 33));
    ir_binop(b, IR_SAR, IR_I64, G3, ir_const(b, IR_I64, 0x8000000000000000ull),
             ir_const(b, IR_I64, 64 + 60));
    ir_exit_tb(b, IR_EXIT_NEXT);
    expect_opt(b, "  movi_i32 rax, $0x8\n"
                  "  movi_i32 rcx, $0x0\n" /* i32 wraps and zero-extends */
                  "  movi_i32 g2, $0x2\n"  /* count mod 32 */
                  "  movi_i64 g3, $0xfffffffffffffff8\n"
                  "  exit_tb 0\n");

    b = new_block();
    ir_temp x = ir_new_temp(b, IR_I64), y = ir_new_temp(b, IR_I64);
    ir_movi(b, IR_I64, x, 0x1122334455667788ull);
    ir_unop(b, IR_BSWAP, IR_I32, y, x);
    ir_unop(b, IR_EXT16S, IR_I64, RAX, y);
    ir_extract(b, IR_I64, RCX, x, 8, 16);
    ir_setcond(b, IR_I32, IR_COND_LT, G2, x, ir_const(b, IR_I32, 0));
    ir_movcond(b, IR_I64, IR_COND_EQ, G3, x, x, RAX, RCX); /* decided: selects a temp */
    ir_exit_tb(b, IR_EXIT_NEXT);
    expect_opt(b, "  movi_i64 rax, $0x6655\n"
                  "  movi_i64 rcx, $0x6677\n"
                  "  movi_i32 g2, $0x0\n" /* 0x55667788 is positive as i32 */
                  "  movi_i64 g3, $0x6655\n"
                  "  exit_tb 0\n");
}

static void test_fold_identities(void **state)
{
    (void)state;
    struct ir_block *b = new_block();
    ir_temp zero = ir_const(b, IR_I64, 0), one = ir_const(b, IR_I64, 1);
    ir_temp ones = ir_const(b, IR_I64, UINT64_MAX), ones32 = ir_const(b, IR_I32, 0xffffffff);
    ir_temp t[16];
    for (int i = 0; i < 16; i++)
        t[i] = ir_new_temp(b, IR_I64);
    /* each result is stored with a side effect so it stays alive */
    ir_binop(b, IR_ADD, IR_I64, t[0], RCX, zero);                    /* x+0 */
    ir_binop(b, IR_ADD, IR_I64, t[1], zero, RCX);                    /* 0+x */
    ir_binop(b, IR_MUL, IR_I64, t[2], RCX, one);                     /* x*1 */
    ir_binop(b, IR_AND, IR_I64, t[3], RCX, ones);                    /* x&-1 */
    ir_binop(b, IR_AND, IR_I32, t[4], RCX, ones32);                  /* x&-1 at i32: a 32-bit mov */
    ir_binop(b, IR_OR, IR_I64, t[5], RCX, zero);                     /* x|0 */
    ir_binop(b, IR_XOR, IR_I64, t[6], RCX, zero);                    /* x^0 */
    ir_binop(b, IR_SHL, IR_I64, t[7], RCX, ir_const(b, IR_I64, 64)); /* x<<0 (mod 64) */
    ir_binop(b, IR_AND, IR_I64, t[8], RCX, zero);                    /* x&0 */
    ir_binop(b, IR_MUL, IR_I64, t[9], zero, RCX);                    /* 0*x */
    ir_binop(b, IR_XOR, IR_I64, t[10], RCX, RCX);                    /* x^x */
    ir_binop(b, IR_SUB, IR_I64, t[11], RCX, RCX);                    /* x-x */
    ir_binop(b, IR_OR, IR_I32, t[12], RCX, ones);                    /* x|-1 at i32 */
    ir_setcond(b, IR_I64, IR_COND_GEU, t[13], RCX, RCX);
    ir_setcond(b, IR_I64, IR_COND_LT, t[14], RCX, RCX);
    ir_movcond(b, IR_I64, IR_COND_LTU, t[15], RAX, RCX, G2, G2);
    for (int i = 0; i < 16; i++)
        ir_stenv(b, t[i], 0x100 + 8 * (uint32_t)i);
    ir_exit_tb(b, IR_EXIT_NEXT);
    expect_opt(b, "  mov_i32 t12, rcx\n" /* a 32-bit mov zero-extends: not a copy of rcx */
                  "  stenv rcx, [env+0x100]\n"
                  "  stenv rcx, [env+0x108]\n"
                  "  stenv rcx, [env+0x110]\n"
                  "  stenv rcx, [env+0x118]\n"
                  "  stenv t12, [env+0x120]\n"
                  "  stenv rcx, [env+0x128]\n"
                  "  stenv rcx, [env+0x130]\n"
                  "  stenv rcx, [env+0x138]\n"
                  "  stenv $0x0, [env+0x140]\n"
                  "  stenv $0x0, [env+0x148]\n"
                  "  stenv $0x0, [env+0x150]\n"
                  "  stenv $0x0, [env+0x158]\n"
                  "  stenv $0xffffffff, [env+0x160]\n"
                  "  stenv $0x1, [env+0x168]\n"
                  "  stenv $0x0, [env+0x170]\n"
                  "  stenv g2, [env+0x178]\n"
                  "  exit_tb 0\n");
}

static void test_fold_branches(void **state)
{
    (void)state;
    /* never taken: the brcond disappears, and so does its now unused label */
    struct ir_block *b = new_block();
    ir_label l = ir_new_label(b);
    ir_brcond(b, IR_I64, IR_COND_EQ, ir_const(b, IR_I64, 1), ir_const(b, IR_I64, 2), l);
    ir_movi(b, IR_I64, RAX, 1);
    ir_label_here(b, l);
    ir_exit_tb(b, IR_EXIT_NEXT);
    expect_opt(b, "  movi_i64 rax, $0x1\n"
                  "  exit_tb 0\n");

    /* always taken: becomes br, the skipped code is unreachable, then the br to the very
     * next label and the label go too */
    b = new_block();
    l = ir_new_label(b);
    ir_temp t = ir_new_temp(b, IR_I32);
    ir_movi(b, IR_I32, t, 0x100000000ull); /* 0 as i32 */
    ir_brcond(b, IR_I32, IR_COND_TSTEQ, t, RAX, l);
    ir_movi(b, IR_I64, RAX, 1);
    ir_label_here(b, l);
    ir_movi(b, IR_I64, RCX, 2);
    ir_exit_tb(b, IR_EXIT_NEXT);
    expect_opt(b, "  movi_i64 rcx, $0x2\n"
                  "  exit_tb 0\n");

    /* undecidable branches stay, and knowledge does not flow through a used label */
    b = new_block();
    l = ir_new_label(b);
    t = ir_new_temp(b, IR_I64);
    ir_movi(b, IR_I64, t, 7);
    ir_brcond(b, IR_I64, IR_COND_EQ, RAX, t, l);
    ir_movi(b, IR_I64, t, 8);
    ir_label_here(b, l);
    ir_binop(b, IR_ADD, IR_I64, RCX, t, t);
    ir_exit_tb(b, IR_EXIT_NEXT);
    expect_opt(b, "  movi_i64 t4, $0x7\n"
                  "  brcond_i64 rax, $0x7, eq, L0\n"
                  "  movi_i64 t4, $0x8\n"
                  "L0:\n"
                  "  add_i64 rcx, t4, t4\n"
                  "  exit_tb 0\n");
}

/* --- copy propagation ---------------------------------------------------------------------- */

static void test_copy_propagation(void **state)
{
    (void)state;
    struct ir_block *b = new_block();
    ir_temp t = ir_new_temp(b, IR_I64);
    ir_mov(b, IR_I64, t, RCX);
    ir_binop(b, IR_ADD, IR_I64, RAX, t, t);
    ir_exit_tb(b, IR_EXIT_NEXT);
    expect_opt(b, "  add_i64 rax, rcx, rcx\n"
                  "  exit_tb 0\n");

    /* the source is redefined: later uses keep the copy */
    b = new_block();
    t = ir_new_temp(b, IR_I64);
    ir_mov(b, IR_I64, t, RCX);
    ir_binop(b, IR_ADD, IR_I64, RCX, RCX, ir_const(b, IR_I64, 1));
    ir_binop(b, IR_ADD, IR_I64, RAX, t, t);
    ir_exit_tb(b, IR_EXIT_NEXT);
    expect_opt(b, "  mov_i64 t4, rcx\n"
                  "  add_i64 rcx, rcx, $0x1\n"
                  "  add_i64 rax, t4, t4\n"
                  "  exit_tb 0\n");

    /* a helper that writes globals invalidates copies of globals; one that does not, doesn't */
    b = new_block();
    t = ir_new_temp(b, IR_I64);
    ir_mov(b, IR_I64, t, RCX);
    ir_call(b, H_LOG, IR_NO_TEMP, IR_NO_TEMP, IR_NO_TEMP, IR_NO_TEMP, IR_NO_TEMP);
    ir_mov(b, IR_I64, G2, t);
    ir_call(b, H_WRITES, IR_NO_TEMP, IR_NO_TEMP, IR_NO_TEMP, IR_NO_TEMP, IR_NO_TEMP);
    ir_mov(b, IR_I64, RAX, t);
    ir_exit_tb(b, IR_EXIT_NEXT);
    expect_opt(b, "  mov_i64 t4, rcx\n"
                  "  call log\n"
                  "  mov_i64 g2, rcx\n"
                  "  call writes\n"
                  "  mov_i64 rax, t4\n"
                  "  exit_tb 0\n");

    /* an overlapping stenv counts as a write to the global */
    b = new_block();
    t = ir_new_temp(b, IR_I64);
    ir_mov(b, IR_I64, t, RCX);
    ir_stenv(b, RAX, 12); /* overlaps rcx (8..15) */
    ir_mov(b, IR_I64, G2, t);
    ir_exit_tb(b, IR_EXIT_NEXT);
    expect_opt(b, "  mov_i64 t4, rcx\n"
                  "  stenv rax, [env+0xc]\n"
                  "  mov_i64 g2, t4\n"
                  "  exit_tb 0\n");

    /* knowledge is reset at a label that is a branch target */
    b = new_block();
    t = ir_new_temp(b, IR_I64);
    ir_label l = ir_new_label(b);
    ir_mov(b, IR_I64, t, RCX);
    ir_brcond(b, IR_I64, IR_COND_EQ, RAX, t, l);
    ir_label_here(b, l);
    ir_mov(b, IR_I64, G2, t);
    ir_exit_tb(b, IR_EXIT_NEXT);
    expect_opt(b, "  mov_i64 t4, rcx\n"
                  "  brcond_i64 rax, rcx, eq, L0\n"
                  "L0:\n"
                  "  mov_i64 g2, t4\n"
                  "  exit_tb 0\n");

    /* a 32-bit mov is a copy only for uses that read the low 32 bits */
    b = new_block();
    t = ir_new_temp(b, IR_I32);
    ir_mov(b, IR_I32, t, RCX);
    ir_binop(b, IR_ADD, IR_I32, RAX, t, t);
    ir_binop(b, IR_ADD, IR_I64, G2, t, t);
    ir_exit_tb(b, IR_EXIT_NEXT);
    expect_opt(b, "  mov_i32 t4, rcx\n"
                  "  add_i32 rax, rcx, rcx\n"
                  "  add_i64 g2, t4, t4\n"
                  "  exit_tb 0\n");
}

/* --- dead code elimination ----------------------------------------------------------------- */

static void test_dce_locals(void **state)
{
    (void)state;
    struct ir_block *b = new_block();
    ir_temp t = ir_new_temp(b, IR_I64), u = ir_new_temp(b, IR_I64), v = ir_new_temp(b, IR_I64);
    ir_binop(b, IR_MUL, IR_I64, t, RAX, RCX); /* dead chain */
    ir_binop(b, IR_ADD, IR_I64, u, t, RCX);
    ir_call(b, H_PURE, v, RAX, IR_NO_TEMP, IR_NO_TEMP, IR_NO_TEMP); /* dead pure call */
    ir_call(b, H_LOG, v, RAX, IR_NO_TEMP, IR_NO_TEMP, IR_NO_TEMP);  /* side effects: kept */
    ir_qld(b, IR_I64, u, RAX, 8);                                   /* may fault: kept */
    ir_ldenv(b, u, 0x100);                                          /* dead read: removed */
    ir_insn_start(b, 0x10);
    ir_exit_tb(b, IR_EXIT_NEXT);
    ir_movi(b, IR_I64, RAX, 1); /* unreachable */
    expect_opt(b, "  call log t6, rax\n"
                  "  qld_i64 t5, [rax] size=8\n"
                  " ---- 0x10\n"
                  "  exit_tb 0\n");
}

static void test_dce_dead_global_stores(void **state)
{
    (void)state;
    /* flags of an add overwritten by a sub with nothing observing them in between */
    struct ir_block *b = new_block();
    ir_insn_start(b, 0x1000);
    ir_binop(b, IR_ADD, IR_I64, RAX, RAX, RCX);
    ir_mov(b, IR_I64, G2, RAX);
    ir_mov(b, IR_I64, G3, RCX);
    ir_insn_start(b, 0x1003);
    ir_binop(b, IR_SUB, IR_I64, RAX, RAX, RCX);
    ir_mov(b, IR_I64, G2, RAX);
    ir_mov(b, IR_I64, G3, RCX);
    ir_call(b, H_LOG, IR_NO_TEMP, IR_NO_TEMP, IR_NO_TEMP, IR_NO_TEMP, IR_NO_TEMP);
    ir_movi(b, IR_I64, G2, 5); /* a helper without READS_GLOBALS does not observe g2 */
    ir_exit_tb(b, IR_EXIT_NEXT);
    expect_opt(b, " ---- 0x1000\n"
                  "  add_i64 rax, rax, rcx\n"
                  " ---- 0x1003\n"
                  "  sub_i64 rax, rax, rcx\n"
                  "  mov_i64 g3, rcx\n"
                  "  call log\n"
                  "  movi_i64 g2, $0x5\n"
                  "  exit_tb 0\n");
}

/* A store to g2 followed by `observer`, then g2 overwritten: the first store must stay. */
static void check_store_observed(void (*observer)(struct ir_block *b), const char *want)
{
    struct ir_block *b = new_block();
    ir_movi(b, IR_I64, G2, 1);
    observer(b);
    ir_movi(b, IR_I64, G2, 2);
    ir_exit_tb(b, IR_EXIT_NEXT);
    expect_opt(b, want);
}

static void obs_qld(struct ir_block *b)
{
    ir_qld(b, IR_I64, RAX, RCX, 1);
}
static void obs_qst(struct ir_block *b)
{
    ir_qst(b, IR_I64, RAX, RCX, 1);
}
static void obs_call_reads(struct ir_block *b)
{
    ir_call(b, H_READS, RAX, IR_NO_TEMP, IR_NO_TEMP, IR_NO_TEMP, IR_NO_TEMP);
}
static void obs_call_may_exit(struct ir_block *b)
{
    ir_call(b, H_MAY_EXIT, IR_NO_TEMP, IR_NO_TEMP, IR_NO_TEMP, IR_NO_TEMP, IR_NO_TEMP);
}
static void obs_ldenv(struct ir_block *b)
{
    ir_ldenv(b, RAX, 20); /* overlaps g2 (16..23) */
}
static void obs_branch(struct ir_block *b)
{
    ir_label l = ir_new_label(b);
    ir_brcond(b, IR_I64, IR_COND_EQ, RAX, RCX, l);
    ir_exit_tb(b, IR_EXIT_HELPER);
    ir_label_here(b, l);
}
static void obs_exit(struct ir_block *b)
{
    ir_label l = ir_new_label(b);
    ir_brcond(b, IR_I64, IR_COND_EQ, RAX, RCX, l);
    ir_goto_tb(b, 0);
    ir_label_here(b, l);
}

static void test_dce_observed_stores_kept(void **state)
{
    (void)state;
    check_store_observed(obs_qld, "  movi_i64 g2, $0x1\n"
                                  "  qld_i64 rax, [rcx] size=1\n"
                                  "  movi_i64 g2, $0x2\n"
                                  "  exit_tb 0\n");
    check_store_observed(obs_qst, "  movi_i64 g2, $0x1\n"
                                  "  qst_i64 rax, [rcx] size=1\n"
                                  "  movi_i64 g2, $0x2\n"
                                  "  exit_tb 0\n");
    check_store_observed(obs_call_reads, "  movi_i64 g2, $0x1\n"
                                         "  call reads rax\n"
                                         "  movi_i64 g2, $0x2\n"
                                         "  exit_tb 0\n");
    check_store_observed(obs_call_may_exit, "  movi_i64 g2, $0x1\n"
                                            "  call may_exit\n"
                                            "  movi_i64 g2, $0x2\n"
                                            "  exit_tb 0\n");
    check_store_observed(obs_ldenv, "  movi_i64 g2, $0x1\n"
                                    "  ldenv rax, [env+0x14]\n"
                                    "  movi_i64 g2, $0x2\n"
                                    "  exit_tb 0\n");
    check_store_observed(obs_branch, "  movi_i64 g2, $0x1\n"
                                     "  brcond_i64 rax, rcx, eq, L0\n"
                                     "  exit_tb 2\n"
                                     "L0:\n"
                                     "  movi_i64 g2, $0x2\n"
                                     "  exit_tb 0\n");
    check_store_observed(obs_exit, "  movi_i64 g2, $0x1\n"
                                   "  brcond_i64 rax, rcx, eq, L0\n"
                                   "  goto_tb 0\n"
                                   "L0:\n"
                                   "  movi_i64 g2, $0x2\n"
                                   "  exit_tb 0\n");
}

static void test_dce_locals_across_branches(void **state)
{
    (void)state;
    /* t is defined before a loop and read inside it: its definition must stay, and the
     * loop-carried update of u too */
    struct ir_block *b = new_block();
    ir_temp t = ir_new_temp(b, IR_I64), u = ir_new_temp(b, IR_I64);
    ir_label top = ir_new_label(b);
    ir_binop(b, IR_ADD, IR_I64, t, RAX, RCX);
    ir_movi(b, IR_I64, u, 0);
    ir_label_here(b, top);
    ir_binop(b, IR_ADD, IR_I64, u, u, t);
    ir_binop(b, IR_SUB, IR_I64, G2, G2, ir_const(b, IR_I64, 1));
    ir_brcond(b, IR_I64, IR_COND_NE, G2, ir_const(b, IR_I64, 0), top);
    ir_mov(b, IR_I64, G3, u);
    ir_exit_tb(b, IR_EXIT_NEXT);
    expect_opt(b, "  add_i64 t4, rax, rcx\n"
                  "  movi_i64 t5, $0x0\n"
                  "L0:\n"
                  "  add_i64 t5, t5, t4\n"
                  "  sub_i64 g2, g2, $0x1\n"
                  "  brcond_i64 g2, $0x0, ne, L0\n"
                  "  mov_i64 g3, t5\n"
                  "  exit_tb 0\n");
}

static void test_optimize_idempotent(void **state)
{
    (void)state;
    struct ir_block *b = new_block();
    ir_temp t = ir_new_temp(b, IR_I64);
    ir_label l = ir_new_label(b);
    ir_movi(b, IR_I64, t, 3);
    ir_binop(b, IR_ADD, IR_I64, RAX, RAX, t);
    ir_brcond(b, IR_I64, IR_COND_LT, RAX, RCX, l);
    ir_mov(b, IR_I64, G2, t);
    ir_label_here(b, l);
    ir_exit_tb(b, IR_EXIT_NEXT);
    ir_optimize(b);
    char first[4096];
    strcpy(first, print(b));
    ir_optimize(b);
    assert_string_equal(print(b), first);
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builder_basics),
        cmocka_unit_test(test_builder_overflow),
        cmocka_unit_test(test_tables),
        cmocka_unit_test(test_print),
        cmocka_unit_test(test_fold_constants),
        cmocka_unit_test(test_fold_identities),
        cmocka_unit_test(test_fold_branches),
        cmocka_unit_test(test_copy_propagation),
        cmocka_unit_test(test_dce_locals),
        cmocka_unit_test(test_dce_dead_global_stores),
        cmocka_unit_test(test_dce_observed_stores_kept),
        cmocka_unit_test(test_dce_locals_across_branches),
        cmocka_unit_test(test_optimize_idempotent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
