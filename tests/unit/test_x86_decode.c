/* Unit tests for the x86 decoder: hand-written cases per feature, then a randomized cross-check
 * against capstone (test-only dependency). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <capstone/capstone.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "accel/tcg/x86/decode.h"
#include "accel/tcg/x86/opcodes.h"
#include "vm/cpu_state.h"

static size_t parse_hex(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = 0;
    while (*hex) {
        if (*hex == ' ') {
            hex++;
            continue;
        }
        unsigned v;
        assert_int_equal(sscanf(hex, "%2x", &v), 1);
        assert_true(n < cap);
        out[n++] = (uint8_t)v;
        hex += 2;
    }
    return n;
}

/* Decodes hex text from an exactly-sized heap buffer so ASan catches any over-read. */
static int dec_n(enum x86_cpu_mode mode, const char *hex, size_t limit,
                 struct x86_decoded_insn *insn)
{
    uint8_t tmp[32];
    size_t n = parse_hex(hex, tmp, sizeof(tmp));
    if (limit < n)
        n = limit;
    uint8_t *heap = malloc(n ? n : 1);
    assert_non_null(heap);
    memcpy(heap, tmp, n);
    int rc = x86_decode(heap, n, mode, insn);
    free(heap);
    return rc;
}

static int dec(enum x86_cpu_mode mode, const char *hex, struct x86_decoded_insn *insn)
{
    return dec_n(mode, hex, SIZE_MAX, insn);
}

/* Asserts a successful decode with the given length and mnemonic. */
static void expect(enum x86_cpu_mode mode, const char *hex, unsigned length, enum x86_mnemonic mn,
                   struct x86_decoded_insn *insn)
{
    int rc = dec(mode, hex, insn);
    if (rc != 0 || insn->length != length || insn->mnemonic != mn)
        fail_msg("%s (mode %d): rc=%d len=%u mnemonic=%s, want len=%u %s", hex, mode, rc,
                 insn->length, x86_mnemonic_name((enum x86_mnemonic)insn->mnemonic), length,
                 x86_mnemonic_name(mn));
}

static void expect_invalid(enum x86_cpu_mode mode, const char *hex)
{
    struct x86_decoded_insn insn;
    int rc = dec(mode, hex, &insn);
    if (rc != X86_DECODE_INVALID)
        fail_msg("%s (mode %d): rc=%d len=%u, want INVALID", hex, mode, rc, insn.length);
}

static void expect_format(enum x86_cpu_mode mode, const char *hex, const char *text)
{
    struct x86_decoded_insn insn;
    char buf[96];
    assert_int_equal(dec(mode, hex, &insn), 0);
    int n = x86_format(&insn, buf, sizeof(buf));
    assert_int_equal(n, (int)strlen(buf));
    assert_string_equal(buf, text);
}

static void test_prefixes(void **state)
{
    (void)state;
    struct x86_decoded_insn i;
    expect(X86_MODE_64, "f3 48 a5", 3, X86_MN_MOVS, &i);
    assert_true(i.prefix.rep && i.prefix.rex_w && !i.prefix.repne);
    assert_int_equal(i.opsize, 64);
    assert_int_equal(i.prefix.count, 2);

    expect(X86_MODE_64, "66 f2 0f 58 c1", 5, X86_MN_SSE, &i);
    assert_int_equal(i.cls, X86_CLASS_SSE);
    assert_int_equal(i.prefix.mandatory, X86_MP_F2);
    assert_int_equal(i.map, X86_MAP_0F);
    assert_int_equal(i.opcode, 0x58);
    expect(X86_MODE_64, "f2 f3 0f 10 00", 5, X86_MN_SSE, &i); /* the last of F2/F3 wins */
    assert_int_equal(i.prefix.mandatory, X86_MP_F3);
    expect(X86_MODE_64, "66 0f 58 c1", 4, X86_MN_SSE, &i);
    assert_int_equal(i.prefix.mandatory, X86_MP_66);
    expect(X86_MODE_64, "0f 58 c1", 3, X86_MN_SSE, &i);
    assert_int_equal(i.prefix.mandatory, X86_MP_NONE);

    /* A legacy prefix after REX cancels the REX. */
    expect(X86_MODE_64, "48 66 89 c0", 4, X86_MN_MOV, &i);
    assert_int_equal(i.prefix.rex, 0);
    assert_int_equal(i.opsize, 16);
    expect(X86_MODE_64, "66 48 89 c0", 4, X86_MN_MOV, &i); /* REX.W beats 66 */
    assert_int_equal(i.opsize, 64);
    expect(X86_MODE_64, "4c 89 c8", 3, X86_MN_MOV, &i);
    assert_true(i.prefix.rex_w && i.prefix.rex_r && !i.prefix.rex_x && !i.prefix.rex_b);
    assert_int_equal(i.reg, 9);
    assert_int_equal(i.rm, 0);

    expect(X86_MODE_64, "64 67 8b 04 25 78 56 34 12", 9, X86_MN_MOV, &i);
    assert_int_equal(i.prefix.seg, SEG_FS);
    assert_true(i.prefix.addrsize);
    assert_int_equal(i.mem.seg, SEG_FS);
    assert_int_equal(i.mem.addr_size, 32);
    assert_int_equal(i.mem.base, X86_NO_REG);
    assert_int_equal(i.mem.disp, 0x12345678);

    expect(X86_MODE_32, "2e 3e 26 8b 00", 5, X86_MN_MOV, &i); /* last override wins */
    assert_int_equal(i.mem.seg, SEG_ES);
    expect(X86_MODE_32, "66 b8 34 12", 4, X86_MN_MOV, &i);
    assert_int_equal(i.opsize, 16);
    expect(X86_MODE_16, "66 b8 78 56 34 12", 6, X86_MN_MOV, &i);
    assert_int_equal(i.opsize, 32);
    assert_int_equal(i.imm, 0x12345678);

    /* 40-4F are INC/DEC outside long mode. */
    expect(X86_MODE_32, "48", 1, X86_MN_DEC, &i);
    expect(X86_MODE_32, "41", 1, X86_MN_INC, &i);
    assert_int_equal(i.operand[0].reg, GPR_RCX);
    /* Prefix bytes alone never decode. */
    struct x86_decoded_insn j;
    assert_int_equal(dec(X86_MODE_64, "66 f3 48", &j), X86_DECODE_NEED_MORE);
}

static void test_modrm_sib_forms(void **state)
{
    (void)state;
    struct x86_decoded_insn i;
    expect(X86_MODE_64, "8b 00", 2, X86_MN_MOV, &i);
    assert_true(i.has_modrm && i.has_mem && !i.has_sib);
    assert_int_equal(i.mem.base, GPR_RAX);
    assert_int_equal(i.mem.index, X86_NO_REG);
    assert_int_equal(i.mem.seg, SEG_DS);
    assert_int_equal(i.mem.addr_size, 64);

    expect(X86_MODE_64, "8b 04 24", 3, X86_MN_MOV, &i);
    assert_true(i.has_sib);
    assert_int_equal(i.mem.base, GPR_RSP);
    assert_int_equal(i.mem.index, X86_NO_REG);
    assert_int_equal(i.mem.seg, SEG_SS);

    expect(X86_MODE_64, "8b 45 08", 3, X86_MN_MOV, &i);
    assert_int_equal(i.mem.base, GPR_RBP);
    assert_int_equal(i.mem.disp, 8);
    assert_int_equal(i.mem.disp_size, 1);
    assert_int_equal(i.mem.seg, SEG_SS);

    expect(X86_MODE_64, "8b 05 f0 ff ff ff", 6, X86_MN_MOV, &i);
    assert_int_equal(i.mem.base, X86_RIP_BASE);
    assert_int_equal(i.mem.disp, -16);
    expect(X86_MODE_64, "67 8b 05 10 00 00 00", 7, X86_MN_MOV, &i);
    assert_int_equal(i.mem.base, X86_RIP_BASE);
    assert_int_equal(i.mem.addr_size, 32);

    expect(X86_MODE_64, "8b 04 25 78 56 34 12", 7, X86_MN_MOV, &i);
    assert_int_equal(i.mem.base, X86_NO_REG);
    assert_int_equal(i.mem.index, X86_NO_REG);
    assert_int_equal(i.mem.disp, 0x12345678);

    expect(X86_MODE_64, "8b 44 8d f0", 4, X86_MN_MOV, &i);
    assert_int_equal(i.mem.base, GPR_RBP);
    assert_int_equal(i.mem.index, GPR_RCX);
    assert_int_equal(i.mem.scale, 4);
    assert_int_equal(i.mem.disp, -16);

    expect(X86_MODE_64, "8b 84 c8 00 01 00 00", 7, X86_MN_MOV, &i);
    assert_int_equal(i.mem.scale, 8);
    assert_int_equal(i.mem.index, GPR_RCX);
    assert_int_equal(i.mem.disp, 0x100);
    assert_int_equal(i.mem.disp_size, 4);

    expect(X86_MODE_64, "8b 04 a0", 3, X86_MN_MOV, &i); /* index 100b: none */
    assert_int_equal(i.mem.index, X86_NO_REG);
    expect(X86_MODE_64, "42 8b 04 a0", 4, X86_MN_MOV, &i); /* REX.X: index R12 */
    assert_int_equal(i.mem.index, GPR_R12);
    assert_int_equal(i.mem.scale, 4);
    expect(X86_MODE_64, "41 8b 04 24", 4, X86_MN_MOV, &i); /* base R12 needs a SIB */
    assert_int_equal(i.mem.base, GPR_R12);
    assert_int_equal(i.mem.seg, SEG_DS);
    expect(X86_MODE_64, "41 8b 45 00", 4, X86_MN_MOV, &i); /* base R13 needs disp8 */
    assert_int_equal(i.mem.base, GPR_R13);
    expect(X86_MODE_64, "43 8b 44 fd 7f", 5, X86_MN_MOV, &i);
    assert_int_equal(i.mem.base, GPR_R13);
    assert_int_equal(i.mem.index, GPR_R15);
    assert_int_equal(i.mem.scale, 8);
    assert_int_equal(i.mem.disp, 0x7f);
    expect(X86_MODE_64, "8b 04 2d 00 00 00 80", 7, X86_MN_MOV, &i); /* no base, rbp index */
    assert_int_equal(i.mem.base, X86_NO_REG);
    assert_int_equal(i.mem.index, GPR_RBP);
    assert_int_equal(i.mem.disp, -0x80000000LL);

    expect(X86_MODE_64, "89 c8", 2, X86_MN_MOV, &i); /* register form */
    assert_false(i.has_mem);
    assert_int_equal(i.mod, 3);
    assert_int_equal(i.operand[0].kind, X86_OPND_REG);
    assert_int_equal(i.operand[0].reg, GPR_RAX);
    assert_int_equal(i.operand[1].reg, GPR_RCX);

    /* 32-bit mode: mod=0 rm=5 is an absolute disp32, not RIP-relative. */
    expect(X86_MODE_32, "8b 05 78 56 34 12", 6, X86_MN_MOV, &i);
    assert_int_equal(i.mem.base, X86_NO_REG);
    assert_int_equal(i.mem.addr_size, 32);
}

static void test_16bit_addressing(void **state)
{
    (void)state;
    static const struct {
        const char *hex;
        unsigned length;
        uint8_t base, index, seg;
        int64_t disp;
    } cases[] = {
        {"8b 00", 2, GPR_RBX, GPR_RSI, SEG_DS, 0},
        {"8b 01", 2, GPR_RBX, GPR_RDI, SEG_DS, 0},
        {"8b 02", 2, GPR_RBP, GPR_RSI, SEG_SS, 0},
        {"8b 03", 2, GPR_RBP, GPR_RDI, SEG_SS, 0},
        {"8b 04", 2, GPR_RSI, X86_NO_REG, SEG_DS, 0},
        {"8b 05", 2, GPR_RDI, X86_NO_REG, SEG_DS, 0},
        {"8b 06 34 12", 4, X86_NO_REG, X86_NO_REG, SEG_DS, 0x1234},
        {"8b 07", 2, GPR_RBX, X86_NO_REG, SEG_DS, 0},
        {"8b 46 fe", 3, GPR_RBP, X86_NO_REG, SEG_SS, -2},
        {"8b 87 00 80", 4, GPR_RBX, X86_NO_REG, SEG_DS, -0x8000},
        {"26 8b 46 02", 4, GPR_RBP, X86_NO_REG, SEG_ES, 2},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        struct x86_decoded_insn i;
        expect(X86_MODE_16, cases[k].hex, cases[k].length, X86_MN_MOV, &i);
        assert_int_equal(i.mem.addr_size, 16);
        assert_int_equal(i.mem.base, cases[k].base);
        assert_int_equal(i.mem.index, cases[k].index);
        assert_int_equal(i.mem.seg, cases[k].seg);
        assert_int_equal(i.mem.disp, cases[k].disp);
        assert_int_equal(i.opsize, 16);
    }
    struct x86_decoded_insn i;
    expect(X86_MODE_32, "67 8b 42 10", 4, X86_MN_MOV, &i); /* 16-bit addressing via 67 */
    assert_int_equal(i.mem.base, GPR_RBP);
    assert_int_equal(i.mem.index, GPR_RSI);
    assert_int_equal(i.mem.disp, 0x10);
    expect(X86_MODE_16, "67 8b 04 88", 4, X86_MN_MOV, &i); /* 32-bit addressing with SIB */
    assert_int_equal(i.mem.addr_size, 32);
    assert_int_equal(i.mem.index, GPR_RCX);
    assert_int_equal(i.mem.scale, 4);
}

static void test_immediates(void **state)
{
    (void)state;
    struct x86_decoded_insn i;
    expect(X86_MODE_64, "c8 10 00 02", 4, X86_MN_ENTER, &i);
    assert_int_equal(i.imm, 0x10);
    assert_int_equal(i.imm_size, 2);
    assert_int_equal(i.imm2, 2);
    assert_int_equal(i.imm2_size, 1);
    assert_int_equal(i.operand[1].which_imm, 1);

    expect(X86_MODE_32, "ea 78 56 34 12 08 00", 7, X86_MN_JMPF, &i);
    assert_int_equal(i.imm, 0x12345678);
    assert_int_equal(i.far_selector, 8);
    assert_int_equal(i.operand[0].kind, X86_OPND_FAR);
    expect(X86_MODE_16, "ea 34 12 00 f0", 5, X86_MN_JMPF, &i);
    assert_int_equal(i.imm, 0x1234);
    assert_int_equal(i.far_selector, 0xf000);
    expect(X86_MODE_16, "66 9a 78 56 34 12 10 00", 8, X86_MN_CALLF, &i);
    assert_int_equal(i.imm, 0x12345678);
    assert_int_equal(i.far_selector, 0x10);

    expect(X86_MODE_64, "a1 88 77 66 55 44 33 22 11", 9, X86_MN_MOV, &i);
    assert_true(i.has_mem);
    assert_int_equal(i.mem.disp, 0x1122334455667788LL);
    assert_int_equal(i.mem.disp_size, 8);
    expect(X86_MODE_64, "67 a1 44 33 22 11", 6, X86_MN_MOV, &i);
    assert_int_equal(i.mem.disp, 0x11223344);
    expect(X86_MODE_32, "a2 44 33 22 f1", 5, X86_MN_MOV, &i);
    assert_int_equal(i.mem.disp, 0xf1223344); /* moffs is zero-extended */
    assert_int_equal(i.operand[0].kind, X86_OPND_MEM);
    expect(X86_MODE_16, "a1 34 12", 3, X86_MN_MOV, &i);
    expect(X86_MODE_16, "67 a1 44 33 22 11", 6, X86_MN_MOV, &i);

    expect(X86_MODE_64, "48 b8 88 77 66 55 44 33 22 11", 10, X86_MN_MOV, &i);
    assert_int_equal(i.imm, 0x1122334455667788ULL);
    assert_int_equal(i.imm_size, 8);
    expect(X86_MODE_64, "b8 78 56 34 12", 5, X86_MN_MOV, &i);
    expect(X86_MODE_64, "66 b8 34 12", 4, X86_MN_MOV, &i);
    expect(X86_MODE_64, "48 c7 c0 ff ff ff ff", 7, X86_MN_MOV, &i);
    assert_int_equal(i.imm, UINT64_MAX); /* imm32 sign-extended to 64 */
    expect(X86_MODE_64, "83 c0 ff", 3, X86_MN_ADD, &i);
    assert_int_equal(i.imm, UINT64_MAX);
    expect(X86_MODE_64, "6a 80", 2, X86_MN_PUSH, &i);
    assert_int_equal((int64_t)i.imm, -128);
    expect(X86_MODE_64, "e4 80", 2, X86_MN_IN, &i); /* port numbers are unsigned */
    assert_int_equal(i.imm, 0x80);
    expect(X86_MODE_64, "cd 80", 2, X86_MN_INT, &i);
    assert_int_equal(i.imm, 0x80);
    expect(X86_MODE_64, "c2 08 00", 3, X86_MN_RET, &i);
    assert_int_equal(i.imm, 8);
    expect(X86_MODE_64, "66 68 34 12", 4, X86_MN_PUSH, &i);
    assert_int_equal(i.opsize, 16);
    expect(X86_MODE_64, "68 78 56 34 12", 5, X86_MN_PUSH, &i);
    assert_int_equal(i.opsize, 64);
    expect(X86_MODE_64, "69 c0 00 01 00 00", 6, X86_MN_IMUL, &i);
    assert_int_equal(i.nr_operands, 3);
    expect(X86_MODE_64, "f7 c0 01 00 00 00", 6, X86_MN_TEST, &i);
    expect(X86_MODE_64, "f6 c4 01", 3, X86_MN_TEST, &i);
    expect(X86_MODE_64, "66 f7 00 34 12", 5, X86_MN_TEST, &i);
    expect(X86_MODE_64, "0f ba e0 05", 4, X86_MN_BT, &i);
    expect(X86_MODE_64, "0f a4 c0 05", 4, X86_MN_SHLD, &i);
    expect(X86_MODE_64, "c1 e0 05", 3, X86_MN_SHL, &i);
    expect(X86_MODE_64, "d1 f8", 2, X86_MN_SAR, &i);
    assert_int_equal(i.operand[1].kind, X86_OPND_CONST);
    expect(X86_MODE_64, "eb fe", 2, X86_MN_JMP, &i);
    assert_int_equal((int64_t)i.imm, -2);
    assert_int_equal(i.operand[0].kind, X86_OPND_REL);
    expect(X86_MODE_64, "e8 00 00 00 80", 5, X86_MN_CALL, &i);
    assert_int_equal((int64_t)i.imm, -0x80000000LL);
    expect(X86_MODE_16, "e8 34 12", 3, X86_MN_CALL, &i);
    expect(X86_MODE_32, "66 e9 34 12", 4, X86_MN_JMP, &i);
    /* SSE imm8 and the 0F3A map. */
    expect(X86_MODE_64, "66 0f 3a 0f c1 08", 6, X86_MN_SSE, &i);
    assert_int_equal(i.map, X86_MAP_0F3A);
    assert_int_equal(i.imm, 8);
    expect(X86_MODE_64, "66 0f 70 c1 1b", 5, X86_MN_SSE, &i);
    assert_int_equal(i.imm, 0x1b);
}

static void test_byte_registers(void **state)
{
    (void)state;
    struct x86_decoded_insn i;
    expect(X86_MODE_64, "88 e0", 2, X86_MN_MOV, &i); /* mov al, ah */
    assert_int_equal(i.operand[0].reg_class, X86_RC_GPR);
    assert_int_equal(i.operand[0].reg, GPR_RAX);
    assert_int_equal(i.operand[1].reg_class, X86_RC_GPR8_HIGH);
    assert_int_equal(i.operand[1].reg, 0);
    expect(X86_MODE_64, "40 88 e0", 3, X86_MN_MOV, &i); /* mov al, spl */
    assert_int_equal(i.operand[1].reg_class, X86_RC_GPR);
    assert_int_equal(i.operand[1].reg, GPR_RSP);
    expect(X86_MODE_64, "41 88 e0", 3, X86_MN_MOV, &i); /* mov r8b, spl */
    assert_int_equal(i.operand[0].reg, GPR_R8);
    assert_int_equal(i.operand[1].reg_class, X86_RC_GPR);
    expect(X86_MODE_64, "b7 12", 2, X86_MN_MOV, &i); /* mov bh, 0x12 */
    assert_int_equal(i.operand[0].reg_class, X86_RC_GPR8_HIGH);
    assert_int_equal(i.operand[0].reg, 3);
    expect(X86_MODE_64, "40 b7 12", 3, X86_MN_MOV, &i); /* mov dil, 0x12 */
    assert_int_equal(i.operand[0].reg_class, X86_RC_GPR);
    assert_int_equal(i.operand[0].reg, GPR_RDI);
    expect(X86_MODE_64, "0f b6 c4", 3, X86_MN_MOVZX, &i); /* movzx eax, ah */
    assert_int_equal(i.operand[1].reg_class, X86_RC_GPR8_HIGH);
    expect(X86_MODE_64, "40 0f 94 c6", 4, X86_MN_SETCC, &i); /* sete sil */
    assert_int_equal(i.operand[0].reg_class, X86_RC_GPR);
    assert_int_equal(i.operand[0].reg, GPR_RSI);
    expect(X86_MODE_32, "88 e0", 2, X86_MN_MOV, &i);
    assert_int_equal(i.operand[1].reg_class, X86_RC_GPR8_HIGH);
    expect_format(X86_MODE_64, "40 88 e0", "mov al, spl");
    expect_format(X86_MODE_64, "88 e0", "mov al, ah");
}

static void test_long_mode_defaults(void **state)
{
    (void)state;
    struct x86_decoded_insn i;
    static const struct {
        const char *hex;
        unsigned length;
        enum x86_mnemonic mn;
        unsigned opsize64, opsize32;
    } cases[] = {
        {"50", 1, X86_MN_PUSH, 64, 32},
        {"66 50", 2, X86_MN_PUSH, 16, 16},
        {"5f", 1, X86_MN_POP, 64, 32},
        {"8f c0", 2, X86_MN_POP, 64, 32},
        {"ff d0", 2, X86_MN_CALL, 64, 32},
        {"ff e0", 2, X86_MN_JMP, 64, 32},
        {"ff 30", 2, X86_MN_PUSH, 64, 32},
        {"c3", 1, X86_MN_RET, 64, 32},
        {"c9", 1, X86_MN_LEAVE, 64, 32},
        {"9c", 1, X86_MN_PUSHF, 64, 32},
        {"0f a0", 2, X86_MN_PUSH, 64, 32},
        {"e2 fe", 2, X86_MN_LOOP, 64, 32},
        {"89 c0", 2, X86_MN_MOV, 32, 32},
        {"0f 20 c0", 3, X86_MN_MOV_CR, 64, 32},
        {"66 0f 22 d8", 4, X86_MN_MOV_CR, 64, 32},
        {"ed", 1, X86_MN_IN, 32, 32},
        {"66 ed", 2, X86_MN_IN, 16, 16},
        {"98", 1, X86_MN_CBW, 32, 32},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        expect(X86_MODE_64, cases[k].hex, cases[k].length, cases[k].mn, &i);
        assert_int_equal(i.opsize, cases[k].opsize64);
        expect(X86_MODE_32, cases[k].hex, cases[k].length, cases[k].mn, &i);
        assert_int_equal(i.opsize, cases[k].opsize32);
    }
    expect(X86_MODE_64, "48 ed", 2, X86_MN_IN, &i); /* IN ignores REX.W */
    assert_int_equal(i.opsize, 32);
    expect(X86_MODE_64, "48 98", 2, X86_MN_CBW, &i);
    assert_int_equal(i.opsize, 64);
    expect_format(X86_MODE_64, "48 98", "cdqe");
    expect(X86_MODE_64, "63 c8", 2, X86_MN_MOVSXD, &i);
    expect(X86_MODE_64, "48 63 c8", 3, X86_MN_MOVSXD, &i);
    assert_int_equal(i.opsize, 64);
    assert_int_equal(i.operand[1].size, 32);
    expect(X86_MODE_32, "63 c8", 2, X86_MN_ARPL, &i);
    expect(X86_MODE_64, "e3 fe", 2, X86_MN_JRCXZ, &i);
    expect_format(X86_MODE_64, "67 e3 fe", "jecxz $+1");
    expect(X86_MODE_64, "41 50", 2, X86_MN_PUSH, &i);
    assert_int_equal(i.operand[0].reg, GPR_R8);
}

static void test_invalid_in_64(void **state)
{
    (void)state;
    static const char *const cases[] = {
        "06",
        "07",
        "0e",
        "16",
        "17",
        "1e",
        "1f",
        "27",
        "2f",
        "37",
        "3f",
        "60",
        "61",
        "9a 00 00 00 00 00 00",
        "ea 00 00 00 00 00 00",
        "ce",
        "d4 0a",
        "d5 0a",
        "d6",
        "82 c0 01",
        "62 00 00 00 00 00",
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        expect_invalid(X86_MODE_64, cases[k]);
        struct x86_decoded_insn i;
        if (dec(X86_MODE_32, cases[k], &i) != 0)
            fail_msg("%s should decode in 32-bit mode", cases[k]);
    }
    struct x86_decoded_insn i;
    /* C4/C5 are VEX in long mode (and with ModRM.mod == 11 elsewhere), LES/LDS otherwise. */
    expect(X86_MODE_64, "c5 f8 77", 3, X86_MN_VEX, &i);
    assert_int_equal(i.cls, X86_CLASS_VEX);
    expect(X86_MODE_32, "c5 f8 77", 3, X86_MN_VEX, &i);
    expect(X86_MODE_32, "c5 00", 2, X86_MN_LDS, &i);
    expect(X86_MODE_32, "c4 00", 2, X86_MN_LES, &i);
    expect(X86_MODE_64, "c4 e2 79 00 c1", 5, X86_MN_VEX, &i);
    assert_int_equal(i.map, X86_MAP_0F38);
    expect(X86_MODE_64, "c4 e3 79 0f c1 08", 6, X86_MN_VEX, &i); /* 0F3A map: imm8 */
    expect(X86_MODE_64, "c5 f9 58 84 24 00 01 00 00", 9, X86_MN_VEX, &i);
    expect(X86_MODE_64, "62 f1 7c 48 58 c0", 6, X86_MN_VEX, &i);
    expect(X86_MODE_32, "62 00", 2, X86_MN_BOUND, &i);
    expect_invalid(X86_MODE_64, "66 c5 f8 77"); /* 66 before VEX */
    expect_invalid(X86_MODE_32, "0f 01 f8");    /* SWAPGS is long mode only */
    expect(X86_MODE_64, "0f 01 f8", 3, X86_MN_SWAPGS, &i);
    expect_invalid(X86_MODE_32, "f3 0f ae c0"); /* RDFSBASE */
    expect(X86_MODE_64, "f3 48 0f ae c0", 5, X86_MN_RDFSBASE, &i);
    expect_invalid(X86_MODE_64, "0f 0f c0 00"); /* 3DNow! */
    expect_invalid(X86_MODE_64, "0f 0e");
    expect_invalid(X86_MODE_64, "8e c8");                     /* MOV CS, r */
    expect_invalid(X86_MODE_64, "8c f0");                     /* segment register 6 */
    expect_invalid(X86_MODE_64, "0f 20 c8");                  /* CR1 */
    expect_invalid(X86_MODE_64, "44 0f 21 c0");               /* DR8 */
    expect(X86_MODE_64, "44 0f 20 c0", 4, X86_MN_MOV_CR, &i); /* CR8 */
    expect_invalid(X86_MODE_64, "8d c0");                     /* LEA needs memory */
    expect_invalid(X86_MODE_64, "ff f8");                     /* FF /7 */
    expect_invalid(X86_MODE_64, "d9 d1");                     /* reserved x87 form */
    expect_invalid(X86_MODE_64, "0f b8 c0");                  /* POPCNT without F3 */
}

static void test_length_limit(void **state)
{
    (void)state;
    struct x86_decoded_insn i;
    expect(X86_MODE_64, "66 66 66 66 66 66 66 66 66 66 66 66 66 66 90", 15, X86_MN_NOP, &i);
    expect_invalid(X86_MODE_64, "66 66 66 66 66 66 66 66 66 66 66 66 66 66 66 90");
    expect_invalid(X86_MODE_64, "66 66 66 66 66 66 66 66 66 66 66 66 66 66 66");
    expect_invalid(X86_MODE_64, "2e 2e 2e 2e 2e 2e 48 b8 00 00 00 00 00 00 00 00");
    expect(X86_MODE_64, "2e 2e 2e 2e 2e 48 b8 00 00 00 00 00 00 00 00", 15, X86_MN_MOV, &i);
    expect_invalid(X86_MODE_64, "f0 f0 f0 f0 f0 f0 f0 f0 64 48 81 84 88 00 00 00 00 00 00 00 00");
    /* Zero bytes available: NEED_MORE, without reading. */
    assert_int_equal(x86_decode(NULL, 0, X86_MODE_64, &i), X86_DECODE_NEED_MORE);
}

static void test_truncation(void **state)
{
    (void)state;
    static const struct {
        enum x86_cpu_mode mode;
        const char *hex;
    } cases[] = {
        {X86_MODE_64, "f0 64 67 48 81 84 88 00 01 00 00 78 56 34 12"},
        {X86_MODE_64, "66 2e 0f 1f 84 00 00 00 00 00"},
        {X86_MODE_64, "48 b8 88 77 66 55 44 33 22 11"},
        {X86_MODE_64, "c4 e3 79 0f 84 24 00 01 00 00 08"},
        {X86_MODE_64, "62 f1 7c 48 58 44 24 01"},
        {X86_MODE_64, "66 f2 0f 38 f1 44 24 08"},
        {X86_MODE_64, "f3 0f 10 05 00 00 00 00"},
        {X86_MODE_64, "dd 84 24 00 01 00 00"},
        {X86_MODE_32, "9a 78 56 34 12 08 00"},
        {X86_MODE_32, "c8 10 00 02"},
        {X86_MODE_32, "a1 44 33 22 11"},
        {X86_MODE_16, "26 8b 87 00 80"},
        {X86_MODE_16, "66 67 c7 84 88 00 01 00 00 78 56 34 12"},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        struct x86_decoded_insn full;
        uint8_t tmp[32];
        size_t n = parse_hex(cases[k].hex, tmp, sizeof(tmp));
        assert_int_equal(dec(cases[k].mode, cases[k].hex, &full), 0);
        assert_int_equal(full.length, n);
        for (size_t avail = 0; avail < n; avail++) {
            struct x86_decoded_insn part;
            int rc = dec_n(cases[k].mode, cases[k].hex, avail, &part);
            if (rc != X86_DECODE_NEED_MORE)
                fail_msg("%s truncated to %zu: rc=%d", cases[k].hex, avail, rc);
        }
    }
}

static void test_lock_rules(void **state)
{
    (void)state;
    static const char *const ok[] = {
        "f0 01 00",       "f0 80 00 01", "f0 83 08 01",    "f0 87 00",
        "f0 86 00",       "f0 0f c7 0f", "f0 48 0f c7 0f", "f0 0f ab 00",
        "f0 0f ba 28 01", "f0 0f b1 00", "f0 0f c1 00",    "f0 f6 10",
        "f0 f7 18",       "f0 fe 00",    "f0 ff 08",       "f0 66 29 00",
    };
    static const char *const bad[] = {
        "f0 01 c0",    "f0 8b 00", "f0 39 00",       "f0 80 38 01", "f0 0f a3 00",
        "f0 90",       "f0 ff 20", "f0 0f ba 20 01", "f0 85 00",    "f0 03 00",
        "f0 0f 58 00", "f0 d9 00", "f0 0f 20 c0",    "f0 c6 00 01", "f0 fe c0",
    };
    struct x86_decoded_insn i;
    for (size_t k = 0; k < sizeof(ok) / sizeof(ok[0]); k++) {
        if (dec(X86_MODE_64, ok[k], &i) != 0 || !i.prefix.lock)
            fail_msg("%s should decode with LOCK", ok[k]);
    }
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++)
        expect_invalid(X86_MODE_64, bad[k]);
}

static void test_misc_instructions(void **state)
{
    (void)state;
    struct x86_decoded_insn i;
    expect(X86_MODE_64, "74 05", 2, X86_MN_JCC, &i);
    assert_int_equal(i.cc, 4);
    expect(X86_MODE_64, "0f 8f 00 00 00 00", 6, X86_MN_JCC, &i);
    assert_int_equal(i.cc, 15);
    expect(X86_MODE_64, "0f 9f c0", 3, X86_MN_SETCC, &i);
    assert_int_equal(i.cc, 15);
    expect(X86_MODE_64, "0f 4c c1", 3, X86_MN_CMOVCC, &i);
    assert_int_equal(i.cc, 12);
    expect(X86_MODE_64, "90", 1, X86_MN_NOP, &i);
    expect(X86_MODE_64, "f3 90", 2, X86_MN_PAUSE, &i);
    expect(X86_MODE_64, "41 90", 2, X86_MN_XCHG, &i);
    expect(X86_MODE_64, "0f 1f 00", 3, X86_MN_NOP, &i);
    expect(X86_MODE_64, "66 0f 1f 84 00 00 00 00 00", 9, X86_MN_NOP, &i);
    expect(X86_MODE_64, "f3 0f 1e fa", 4, X86_MN_NOP, &i);
    expect(X86_MODE_64, "0f 0b", 2, X86_MN_UD2, &i);
    expect(X86_MODE_64, "0f b9 c0", 3, X86_MN_UD1, &i);
    expect(X86_MODE_64, "0f ff c0", 3, X86_MN_UD0, &i);
    expect(X86_MODE_64, "f3 0f b8 c1", 4, X86_MN_POPCNT, &i);
    expect(X86_MODE_64, "f3 0f bc c1", 4, X86_MN_TZCNT, &i);
    expect(X86_MODE_64, "f3 0f bd c1", 4, X86_MN_LZCNT, &i);
    expect(X86_MODE_64, "0f bc c1", 3, X86_MN_BSF, &i);
    expect(X86_MODE_64, "48 0f c7 0e", 4, X86_MN_CMPXCHG16B, &i);
    expect(X86_MODE_64, "0f c7 0e", 3, X86_MN_CMPXCHG8B, &i);
    expect(X86_MODE_64, "0f c7 f0", 3, X86_MN_RDRAND, &i);
    expect(X86_MODE_64, "0f c7 f8", 3, X86_MN_RDSEED, &i);
    expect(X86_MODE_64, "f3 0f c7 f8", 4, X86_MN_RDPID, &i);
    expect(X86_MODE_64, "0f 01 d0", 3, X86_MN_XGETBV, &i);
    expect(X86_MODE_64, "0f 01 d1", 3, X86_MN_XSETBV, &i);
    expect(X86_MODE_64, "0f 01 f9", 3, X86_MN_RDTSCP, &i);
    expect(X86_MODE_64, "0f 01 10", 3, X86_MN_LGDT, &i);
    expect(X86_MODE_64, "0f 01 38", 3, X86_MN_INVLPG, &i);
    expect(X86_MODE_64, "0f 01 e0", 3, X86_MN_SMSW, &i);
    expect(X86_MODE_64, "0f 01 f0", 3, X86_MN_LMSW, &i);
    expect(X86_MODE_64, "0f 00 d0", 3, X86_MN_LLDT, &i);
    expect(X86_MODE_64, "0f 00 18", 3, X86_MN_LTR, &i);
    expect(X86_MODE_64, "0f ae e8", 3, X86_MN_LFENCE, &i);
    expect(X86_MODE_64, "0f ae f0", 3, X86_MN_MFENCE, &i);
    expect(X86_MODE_64, "0f ae f8", 3, X86_MN_SFENCE, &i);
    expect(X86_MODE_64, "0f ae 38", 3, X86_MN_CLFLUSH, &i);
    expect(X86_MODE_64, "66 0f ae 38", 4, X86_MN_CLFLUSHOPT, &i);
    expect(X86_MODE_64, "0f ae 10", 3, X86_MN_LDMXCSR, &i);
    expect(X86_MODE_64, "48 0f ae 20", 4, X86_MN_XSAVE, &i);
    expect(X86_MODE_64, "0f 18 08", 3, X86_MN_PREFETCHT0, &i);
    expect(X86_MODE_64, "0f 0d 08", 3, X86_MN_PREFETCHW, &i);
    expect(X86_MODE_64, "0f 05", 2, X86_MN_SYSCALL, &i);
    expect(X86_MODE_64, "48 0f 07", 3, X86_MN_SYSRET, &i);
    expect(X86_MODE_64, "0f 22 e0", 3, X86_MN_MOV_CR, &i);
    assert_int_equal(i.operand[0].reg_class, X86_RC_CR);
    assert_int_equal(i.operand[0].reg, 4);
    expect(X86_MODE_64, "0f 23 f8", 3, X86_MN_MOV_DR, &i);
    expect(X86_MODE_64, "8e d8", 2, X86_MN_MOV_SREG, &i);
    assert_int_equal(i.operand[0].reg_class, X86_RC_SEG);
    assert_int_equal(i.operand[0].reg, SEG_DS);
    expect(X86_MODE_32, "0f b2 00", 3, X86_MN_LSS, &i);
    expect(X86_MODE_32, "c4 00", 2, X86_MN_LES, &i);
    expect(X86_MODE_64, "ff 18", 2, X86_MN_CALLF, &i);
    expect(X86_MODE_64, "48 ff 28", 3, X86_MN_JMPF, &i);
    expect(X86_MODE_64, "d7", 1, X86_MN_XLAT, &i);
    expect(X86_MODE_32, "d6", 1, X86_MN_SALC, &i);
    expect(X86_MODE_32, "62 00", 2, X86_MN_BOUND, &i);
    expect(X86_MODE_32, "60", 1, X86_MN_PUSHA, &i);
    expect(X86_MODE_64, "f2 0f 38 f1 c1", 5, X86_MN_CRC32, &i);
    expect(X86_MODE_64, "0f 38 f0 00", 4, X86_MN_MOVBE, &i);
    expect(X86_MODE_64, "66 0f 38 f6 c1", 5, X86_MN_ADCX, &i);
    /* x87 and SSE: generic classes. */
    expect(X86_MODE_64, "d9 e8", 2, X86_MN_X87, &i);
    assert_int_equal(i.cls, X86_CLASS_X87);
    assert_int_equal(i.opcode, 0xd9);
    assert_int_equal(i.modrm, 0xe8);
    expect(X86_MODE_64, "dd 84 24 00 01 00 00", 7, X86_MN_X87, &i);
    expect(X86_MODE_64, "9b", 1, X86_MN_WAIT, &i);
    expect(X86_MODE_64, "0f 77", 2, X86_MN_SSE, &i);
    expect(X86_MODE_64, "66 0f 38 00 c1", 5, X86_MN_SSE, &i);
    assert_int_equal(i.map, X86_MAP_0F38);
    expect(X86_MODE_64, "66 0f 73 d8 04", 5, X86_MN_SSE, &i);
    expect_invalid(X86_MODE_64, "0f 73 d8 04");            /* PSRLDQ has no MMX form */
    expect_invalid(X86_MODE_64, "f3 0f d0 c0");            /* ADDSUBPD has no F3 or plain form */
    expect(X86_MODE_64, "66 0f 12 c0", 4, X86_MN_SSE, &i); /* MOVLPD is memory-only: MOVHLPS */
    assert_int_equal(i.prefix.mandatory, X86_MP_NONE);
}

static void test_format(void **state)
{
    (void)state;
    expect_format(X86_MODE_64, "f0 48 01 44 98 10", "lock add qword [rax+rbx*4+0x10], rax");
    expect_format(X86_MODE_64, "65 48 8b 04 25 28 00 00 00", "mov rax, qword gs:[0x28]");
    expect_format(X86_MODE_64, "8b 05 f0 ff ff ff", "mov eax, dword [rip-0x10]");
    expect_format(X86_MODE_64, "48 83 ec 08", "sub rsp, 0x8");
    expect_format(X86_MODE_64, "f3 48 ab", "rep stosq");
    expect_format(X86_MODE_64, "f2 ae", "repne scasb");
    expect_format(X86_MODE_64, "75 fe", "jne $+0");
    expect_format(X86_MODE_64, "0f 22 d8", "mov cr3, rax");
    expect_format(X86_MODE_32, "ea 78 56 34 12 08 00", "ljmp 0x8:0x12345678");
    expect_format(X86_MODE_16, "8b 42 02", "mov ax, word [bp+si+0x2]");
    expect_format(X86_MODE_64, "c8 10 00 02", "enter 0x10, 0x2");
    expect_format(X86_MODE_64, "66 0f 58 c1", "sse 66 0f 58 /c1");
    expect_format(X86_MODE_64, "d1 e0", "shl eax, 1");
    char small[4];
    struct x86_decoded_insn i;
    assert_int_equal(dec(X86_MODE_64, "48 83 ec 08", &i), 0);
    assert_int_equal(x86_format(&i, small, sizeof(small)), (int)strlen("sub rsp, 0x8"));
    assert_string_equal(small, "sub");
}

/* ---- Cross-check against capstone ---- */

struct rng {
    uint64_t s;
};

static uint32_t rng_next(struct rng *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return (uint32_t)((r->s * 2685821657736338717ULL) >> 32);
}

static uint32_t rng_below(struct rng *r, uint32_t n)
{
    return rng_next(r) % n;
}

static bool entry_defined(const struct x86_opcode_entry *e)
{
    return e->mnemonic != X86_MN_INVALID || (e->flags & (XF_GROUP | XF_SPECIAL));
}

/* Random 15-byte buffer biased toward realistic encodings: legal prefixes, an opcode that
 * the tables define (sometimes any opcode), then random ModRM/SIB/displacement/immediate. */
static void generate(struct rng *r, enum x86_cpu_mode mode, uint8_t *buf)
{
    for (int k = 0; k < 15; k++)
        buf[k] = (uint8_t)rng_next(r);
    if (rng_below(r, 10) == 0)
        return; /* fully random */
    static const uint8_t legacy[] = {0x66, 0x66, 0x67, 0xf2, 0xf3, 0x2e,
                                     0x3e, 0x26, 0x36, 0x64, 0x65, 0xf0};
    static const uint8_t nr_prefixes[] = {0, 0, 0, 0, 1, 1, 1, 2, 2, 3, 4};
    unsigned pos = 0;
    unsigned n = nr_prefixes[rng_below(r, sizeof(nr_prefixes))];
    for (unsigned k = 0; k < n; k++) {
        uint8_t p = legacy[rng_below(r, sizeof(legacy))];
        if (p == 0xf0 && rng_below(r, 3))
            p = 0x66; /* keep LOCK rarer */
        buf[pos++] = p;
    }
    if (mode == X86_MODE_64 && rng_below(r, 5) < 2)
        buf[pos++] = (uint8_t)(0x40 | rng_below(r, 16));
    uint32_t kind = rng_below(r, 100);
    const struct x86_opcode_entry *table = x86_one_byte_table;
    if (kind < 50) {
        table = x86_one_byte_table;
    } else if (kind < 80) {
        buf[pos++] = 0x0f;
        table = x86_0f_table;
    } else if (kind < 88) {
        buf[pos++] = 0x0f;
        buf[pos++] = 0x38;
        table = x86_0f38_table;
    } else if (kind < 94) {
        buf[pos++] = 0x0f;
        buf[pos++] = 0x3a;
        table = x86_0f3a_table;
    } else {
        /* VEX / EVEX with plausible fixed bits. */
        uint32_t v = rng_below(r, 3);
        buf[pos] = v == 0 ? 0xc5 : v == 1 ? 0xc4 : 0x62;
        if (v == 1)
            buf[pos + 1] = (uint8_t)((buf[pos + 1] & 0xe0) | (1 + rng_below(r, 3)));
        if (v == 2) {
            buf[pos + 1] = (uint8_t)((buf[pos + 1] & 0xf0) | (1 + rng_below(r, 3)));
            buf[pos + 2] |= 4;
        }
        if (mode != X86_MODE_64)
            buf[pos + 1] |= 0xc0;
        return;
    }
    if (rng_below(r, 4) == 0)
        return; /* any opcode byte of the map */
    for (int tries = 0; tries < 64; tries++) {
        uint8_t op = (uint8_t)rng_next(r);
        if (entry_defined(&table[op]) && !(table == x86_0f_table && (op == 0x38 || op == 0x3a))) {
            buf[pos] = op;
            return;
        }
    }
}

enum exclusion {
    EXCL_LOCK,            /* capstone 4 does not enforce LOCK legality */
    EXCL_RESERVED_REG,    /* capstone 4 accepts MOV CS / CR1,5-7,9-15 / DR8-15 */
    EXCL_UD0_UD1,         /* capstone 4 decodes 0F B9 / 0F FF without ModRM */
    EXCL_PREFETCH_0D,     /* capstone 4 knows only 0F 0D /1 (PREFETCHW) */
    EXCL_FENCE,           /* capstone 4: only rm=0 fences, but also 66-prefixed ones (NP: #UD) */
    EXCL_VEX_OPCODE,      /* quokka accepts any VEX/EVEX opcode (all #UD anyway) */
    EXCL_NAME_QUIRK,      /* mnemonic naming differences (RDPID is RDSEED in capstone 4) */
    EXCL_VEX_PREFIXED,    /* capstone 4 accepts 66/F2/F3/REX before VEX/EVEX (#UD on CPUs) */
    EXCL_HINT_NOP,        /* capstone 4 rejects many ModRM forms of hint NOPs 0F 19-1F */
    EXCL_PREFIX_ORDER,    /* capstone 4 only honours 66/F2/F3 right before the opcode */
    EXCL_SREG_REX_R,      /* capstone 4 rejects MOV Sreg with REX.R (CPUs ignore REX.R) */
    EXCL_16BIT_MANDATORY, /* capstone 4 ignores mandatory 66/F2/F3 in 16-bit mode */
    EXCL_67_AS_66,        /* capstone 4 takes a 67 before a 0F38/0F3A opcode as the 66 */
    EXCL_MULTI_REX,       /* capstone 4 lets an earlier, superseded REX byte count */
    EXCL_RET_IMM,         /* capstone 4 reads RET imm16 as imm32 with 66/67 + REX.W */
    EXCL_MOVBE_REP,       /* capstone 4 accepts F3 MOVBE (SDM: #UD) */
    EXCL_REX_90,          /* capstone 4: 66 REX.B 90 is NOP, REX.W 90 XCHG, F3 REX 90 not PAUSE */
    NR_EXCLUSIONS
};

static const char *const exclusion_names[NR_EXCLUSIONS] = {
    "lock-legality", "reserved-seg/cr/dr", "ud0/ud1-modrm", "prefetch-0f0d",
    "fence",         "vex-opcode",         "name-quirk",    "vex-prefixed",
    "hint-nop",      "prefix-order",       "sreg-rex-r",    "16bit-mandatory",
    "67-as-66",      "multi-rex",          "ret-imm",       "movbe-rep",
    "rex-90",
};

struct cross_stats {
    uint64_t checked, both_valid, capstone_only_unsupported, both_invalid, class_compared;
    uint64_t excluded[NR_EXCLUSIONS];
    uint64_t failures;
};

/* Capstone mnemonic -> quokka's coarse name (x86_mnemonic_name), NULL if not an integer or
 * system instruction quokka knows. */
static const char *normalize_capstone(const char *mnemonic, char *tmp, size_t tmp_len)
{
    static const char *const strip[] = {"lock ",     "rep ",      "repe ",    "repne ",
                                        "repz ",     "repnz ",    "notrack ", "bnd ",
                                        "xacquire ", "xrelease ", "data16 "};
    for (bool again = true; again;) {
        again = false;
        for (size_t k = 0; k < sizeof(strip) / sizeof(strip[0]); k++) {
            size_t n = strlen(strip[k]);
            if (!strncmp(mnemonic, strip[k], n)) {
                mnemonic += n;
                again = true;
            }
        }
    }
    static const char *const cc[] = {"o", "no", "b", "ae", "e", "ne", "be", "a",
                                     "s", "ns", "p", "np", "l", "ge", "le", "g"};
    static const struct {
        const char *from, *to;
    } alias[] = {
        {"cwde", "cbw"},
        {"cdqe", "cbw"},
        {"cdq", "cwd"},
        {"cqo", "cwd"},
        {"sal", "shl"},
        {"movabs", "mov"},
        {"pushal", "pusha"},
        {"pushaw", "pusha"},
        {"popal", "popa"},
        {"popaw", "popa"},
        {"pushfd", "pushf"},
        {"pushfq", "pushf"},
        {"pushfw", "pushf"},
        {"popfd", "popf"},
        {"popfq", "popf"},
        {"popfw", "popf"},
        {"iretd", "iret"},
        {"iretq", "iret"},
        {"iretw", "iret"},
        {"jcxz", "jrcxz"},
        {"jecxz", "jrcxz"},
        {"xlatb", "xlat"},
        {"endbr64", "nop"},
        {"endbr32", "nop"},
        {"ud2b", "ud1"},
        {"retfq", "retf"},
        {"retfw", "retf"},
        {"retfd", "retf"},
        {"sysretq", "sysret"},
        {"sysexitq", "sysexit"},
        {"fwait", "wait"},
        {"icebp", "int1"},
        {"retq", "ret"},
        {"retw", "ret"},
        {"ljmp", "ljmp"},
        {"lcall", "lcall"},
        {"xsave64", "xsave"},
        {"xrstor64", "xrstor"},
        {"fxsave64", "fxsave"},
        {"fxrstor64", "fxrstor"},
        {"xsaveopt64", "xsaveopt"},
        {"xsavec64", "xsavec"},
        {"xsaves64", "xsaves"},
        {"xrstors64", "xrstors"},
        {"int 3", "int3"},
    };
    for (size_t k = 0; k < sizeof(alias) / sizeof(alias[0]); k++)
        if (!strcmp(mnemonic, alias[k].from))
            return alias[k].to;
    static const char *const strings[] = {"movs", "cmps", "stos", "lods", "scas", "ins", "outs"};
    for (size_t k = 0; k < sizeof(strings) / sizeof(strings[0]); k++) {
        size_t n = strlen(strings[k]);
        if (!strncmp(mnemonic, strings[k], n) && strlen(mnemonic) == n + 1 &&
            strchr("bwdq", mnemonic[n]))
            return strings[k];
    }
    if (strcmp(mnemonic, "jmp") && strcmp(mnemonic, "jrcxz")) {
        for (size_t k = 0; k < 16; k++) {
            const char *prefixes[3] = {"j", "set", "cmov"};
            for (size_t p = 0; p < 3; p++) {
                size_t n = strlen(prefixes[p]);
                if (!strncmp(mnemonic, prefixes[p], n) && !strcmp(mnemonic + n, cc[k]))
                    return prefixes[p];
            }
        }
    }
    for (int mn = 1; mn < X86_MN_COUNT; mn++) {
        enum x86_insn_class c = x86_mnemonic_class((enum x86_mnemonic)mn);
        if ((c == X86_CLASS_INT || c == X86_CLASS_SYSTEM || mn == X86_MN_WAIT) &&
            !strcmp(mnemonic, x86_mnemonic_name((enum x86_mnemonic)mn))) {
            snprintf(tmp, tmp_len, "%s", mnemonic);
            return tmp;
        }
    }
    return NULL;
}

static bool has_group(const cs_insn *ci, uint8_t group)
{
    for (uint8_t k = 0; k < ci->detail->groups_count; k++)
        if (ci->detail->groups[k] == group)
            return true;
    return false;
}

/* Offset of the first non-prefix byte (legacy and, in long mode, REX). */
static unsigned skip_prefixes(const uint8_t *buf, enum x86_cpu_mode mode)
{
    unsigned pos = 0;
    while (pos < 15) {
        uint8_t b = buf[pos];
        bool legacy = b == 0x66 || b == 0x67 || b == 0xf0 || b == 0xf2 || b == 0xf3 || b == 0x2e ||
                      b == 0x3e || b == 0x26 || b == 0x36 || b == 0x64 || b == 0x65;
        if (!legacy && !(mode == X86_MODE_64 && (b & 0xf0) == 0x40))
            break;
        pos++;
    }
    return pos;
}

/* C4/C5/62 start a VEX/EVEX prefix in long mode or when they cannot be LES/LDS/BOUND. */
static bool vex_at(const uint8_t *buf, unsigned op, enum x86_cpu_mode mode)
{
    uint8_t b = buf[op];
    if (b != 0xc4 && b != 0xc5 && b != 0x62)
        return false;
    return mode == X86_MODE_64 || op + 1 >= 15 || (buf[op + 1] & 0xc0) == 0xc0;
}

/* Which kind of instruction capstone saw, from quokka's supported-set point of view. */
enum cs_kind { CS_UNSUPPORTED, CS_INTEGER, CS_SSE, CS_X87, CS_VEX };

static enum cs_kind classify_capstone(const cs_insn *ci, const uint8_t *buf, enum x86_cpu_mode mode,
                                      const char **name, char *tmp, size_t tmp_len)
{
    *name = NULL;
    unsigned op = skip_prefixes(buf, mode);
    if (op >= 15)
        return CS_UNSUPPORTED;
    uint8_t b = buf[op];
    if (has_group(ci, X86_GRP_AVX) || has_group(ci, X86_GRP_AVX2) ||
        has_group(ci, X86_GRP_AVX512) || has_group(ci, X86_GRP_FMA) ||
        has_group(ci, X86_GRP_F16C) || has_group(ci, X86_GRP_BMI) || has_group(ci, X86_GRP_BMI2) ||
        vex_at(buf, op, mode))
        return vex_at(buf, op, mode) ? CS_VEX : CS_UNSUPPORTED;
    if (b >= 0xd8 && b <= 0xdf)
        return CS_X87;
    const char *n = normalize_capstone(ci->mnemonic, tmp, tmp_len);
    bool sse_group = has_group(ci, X86_GRP_SSE1) || has_group(ci, X86_GRP_SSE2) ||
                     has_group(ci, X86_GRP_SSE3) || has_group(ci, X86_GRP_SSSE3) ||
                     has_group(ci, X86_GRP_SSE41) || has_group(ci, X86_GRP_SSE42) ||
                     has_group(ci, X86_GRP_MMX) || has_group(ci, X86_GRP_AES) ||
                     has_group(ci, X86_GRP_PCLMUL) || has_group(ci, X86_GRP_SHA);
    /* SSE MOVSD/CMPSD share names with string instructions. */
    if (n && !(sse_group && (!strcmp(n, "movs") || !strcmp(n, "cmps")))) {
        *name = n;
        return CS_INTEGER;
    }
    if (has_group(ci, X86_GRP_SSE4A) || has_group(ci, X86_GRP_3DNOW) ||
        has_group(ci, X86_GRP_XOP) || has_group(ci, X86_GRP_TBM))
        return CS_UNSUPPORTED;
    if (sse_group)
        return CS_SSE;
    return CS_UNSUPPORTED;
}

/* Equivalent re-encodings used to tell capstone 4 prefix bugs from quokka bugs. Prefix order
 * carries no meaning except that the last F2/F3 wins and REX must come last, both kept here. */
enum variant { VAR_66_LAST, VAR_REP_LAST, VAR_ONE_REX, NR_VARIANTS };

static bool make_variant(const uint8_t *buf, enum x86_cpu_mode mode, enum variant v, uint8_t *out)
{
    unsigned op = skip_prefixes(buf, mode);
    memcpy(out, buf, 15);
    if (v == VAR_ONE_REX) {
        /* Superseded REX bytes become CS overrides (ignored in long mode, no length change). */
        for (unsigned k = 0; k + 1 < op; k++)
            if (mode == X86_MODE_64 && (out[k] & 0xf0) == 0x40)
                out[k] = 0x2e;
        return memcmp(out, buf, 15) != 0;
    }
    unsigned legacy_end = op;
    if (legacy_end > 0 && mode == X86_MODE_64 && (buf[legacy_end - 1] & 0xf0) == 0x40)
        legacy_end--; /* the effective REX stays last */
    unsigned n = 0;
    for (int pass = 0; pass < 3; pass++) {
        for (unsigned k = 0; k < legacy_end; k++) {
            uint8_t b = buf[k];
            bool is66 = b == 0x66, isrep = b == 0xf2 || b == 0xf3;
            int rank = is66 ? (v == VAR_REP_LAST ? 1 : 2) : isrep ? (v == VAR_REP_LAST ? 2 : 1) : 0;
            if (mode == X86_MODE_64 && (b & 0xf0) == 0x40)
                rank = 0; /* cancelled REX bytes keep their (no-op) role up front */
            if (rank == pass)
                out[n++] = b;
        }
    }
    return memcmp(out, buf, 15) != 0;
}

/* Does capstone's view of an instruction match quokka's (length and coarse class)? */
static bool capstone_matches(const cs_insn *ci, const uint8_t *buf, enum x86_cpu_mode mode,
                             const struct x86_decoded_insn *q)
{
    if (ci->size != q->length)
        return false;
    char tmp[32];
    const char *cs_name = NULL;
    switch (classify_capstone(ci, buf, mode, &cs_name, tmp, sizeof(tmp))) {
    case CS_INTEGER:
        return cs_name && !strcmp(cs_name, x86_mnemonic_name((enum x86_mnemonic)q->mnemonic));
    case CS_SSE:
        return q->cls == X86_CLASS_SSE;
    case CS_X87:
        return q->cls == X86_CLASS_X87;
    case CS_VEX:
        return q->cls == X86_CLASS_VEX;
    default:
        return true; /* a name outside quokka's set: nothing to compare */
    }
}

static bool capstone_decode(csh cs, cs_insn *ci, const uint8_t *buf)
{
    const uint8_t *code = buf;
    size_t size = 15;
    uint64_t addr = 0x1000;
    return cs_disasm_iter(cs, &code, &size, &addr, ci);
}

/* Returns the exclusion explaining a disagreement (ci == NULL: capstone rejected), or -1. */
static int explain(csh cs, cs_insn *scratch, const uint8_t *buf, enum x86_cpu_mode mode, int qrc,
                   const struct x86_decoded_insn *q, const cs_insn *ci)
{
    unsigned op = skip_prefixes(buf, mode);
    const uint8_t *o = buf + op;
    char cs_mn[sizeof(ci->mnemonic)] = "", cs_ops[sizeof(ci->op_str)] = "";
    if (ci) {
        memcpy(cs_mn, ci->mnemonic, sizeof(cs_mn));
        memcpy(cs_ops, ci->op_str, sizeof(cs_ops));
        cs_mn[sizeof(cs_mn) - 1] = cs_ops[sizeof(cs_ops) - 1] = '\0';
    }
    /* Prefix-order/REX variants: same quokka result, and capstone then agrees. */
    for (int v = 0; v < NR_VARIANTS; v++) {
        uint8_t var[15];
        if (!make_variant(buf, mode, (enum variant)v, var))
            continue;
        struct x86_decoded_insn q2;
        int qrc2 = x86_decode(var, 15, mode, &q2);
        if (qrc2 != qrc || (qrc == 0 && (q2.length != q->length || q2.mnemonic != q->mnemonic)))
            continue;
        bool cs_ok = capstone_decode(cs, scratch, var);
        if (qrc == 0 ? cs_ok && capstone_matches(scratch, var, mode, q) : !cs_ok)
            return v == VAR_ONE_REX ? EXCL_MULTI_REX : EXCL_PREFIX_ORDER;
    }
    if (mode == X86_MODE_16 && qrc == 0 && q->cls != X86_CLASS_VEX &&
        (q->prefix.mandatory != X86_MP_NONE || (q->cls == X86_CLASS_SSE && q->prefix.opsize)))
        return EXCL_16BIT_MANDATORY;
    if (qrc != 0 && ci && vex_at(buf, op, mode) && op > 0)
        return EXCL_VEX_PREFIXED;
    if (qrc == 0 && q->cls == X86_CLASS_VEX && (!ci || o[0] == 0x62))
        return EXCL_VEX_OPCODE; /* capstone 4 also miscounts some EVEX rounding forms */
    if (qrc == 0 && !ci && q->mnemonic == X86_MN_NOP && q->map == X86_MAP_0F)
        return EXCL_HINT_NOP;
    if (qrc == 0 && !ci && q->mnemonic == X86_MN_MOV_SREG && q->prefix.rex_r)
        return EXCL_SREG_REX_R;
    if (qrc == 0 && ci && (q->mnemonic == X86_MN_RET || q->mnemonic == X86_MN_RETF) &&
        ci->size == q->length + 2u && q->prefix.rex_w)
        return EXCL_RET_IMM;
    if (qrc != 0 && ci && !strcmp(cs_mn, "movbe") && memchr(buf, 0xf3, op))
        return EXCL_MOVBE_REP;
    if (o[0] == 0x0f && (o[1] == 0xb9 || o[1] == 0xff))
        return EXCL_UD0_UD1;
    if (qrc == 0 && !ci && o[0] == 0x0f && o[1] == 0x0d)
        return EXCL_PREFETCH_0D;
    if (qrc == 0 && !ci &&
        (q->mnemonic == X86_MN_LFENCE || q->mnemonic == X86_MN_MFENCE ||
         q->mnemonic == X86_MN_SFENCE))
        return EXCL_FENCE;
    if (qrc != 0 && ci && o[0] == 0x0f && o[1] == 0xae && strstr(cs_mn, "fence"))
        return EXCL_FENCE; /* NP: 66/F2/F3 fences are #UD per the SDM */
    if (ci && q && qrc == 0 && q->mnemonic == X86_MN_RDPID && !strcmp(cs_mn, "rdseed"))
        return EXCL_NAME_QUIRK;
    if (ci && qrc == 0 && q->map == X86_MAP_ONE_BYTE && q->opcode == 0x90 && q->prefix.rex &&
        (!strcmp(cs_mn, "nop") || !strcmp(cs_mn, "xchg")))
        return EXCL_REX_90;
    if (ci && memchr(buf, 0x67, op) && !memchr(buf, 0x66, op)) {
        uint8_t copy[15];
        memcpy(copy, buf, 15);
        for (unsigned k = 0; k < op; k++)
            if (copy[k] == 0x67)
                copy[k] = 0x66;
        struct x86_decoded_insn q2;
        if (x86_decode(copy, 15, mode, &q2) == 0 && capstone_matches(ci, copy, mode, &q2))
            return EXCL_67_AS_66;
    }
    if (qrc != 0 && ci) {
        bool has_lock = false;
        uint8_t copy[15];
        memcpy(copy, buf, 15);
        for (unsigned k = 0; k < op; k++) {
            if (copy[k] == 0xf0) {
                copy[k] = 0x3e; /* same length, no LOCK */
                has_lock = true;
            }
        }
        struct x86_decoded_insn q2;
        if (has_lock && x86_decode(copy, 15, mode, &q2) == 0 && q2.length == ci->size)
            return EXCL_LOCK;
        if (!strcmp(cs_mn, "mov") &&
            (strstr(cs_ops, "cr") || strstr(cs_ops, "dr") || !strncmp(cs_ops, "cs,", 3)))
            return EXCL_RESERVED_REG;
    }
    return -1;
}

static void report(const char *what, const uint8_t *buf, enum x86_cpu_mode mode, int qrc,
                   const struct x86_decoded_insn *q, const cs_insn *ci, struct cross_stats *st)
{
    st->failures++;
    if (st->failures > 25)
        return;
    char text[96] = "";
    if (qrc == 0)
        x86_format(q, text, sizeof(text));
    fprintf(stderr, "MISMATCH %s mode=%d bytes=", what,
            mode == X86_MODE_64   ? 64
            : mode == X86_MODE_32 ? 32
                                  : 16);
    for (int k = 0; k < 15; k++)
        fprintf(stderr, "%02x", buf[k]);
    fprintf(stderr, " quokka: rc=%d len=%u '%s' capstone: %s%s%s len=%u\n", qrc,
            qrc ? 0 : q->length, text, ci ? ci->mnemonic : "(invalid)", ci ? " " : "",
            ci ? ci->op_str : "", ci ? ci->size : 0);
}

static void cross_check_mode(csh cs, cs_insn *ci, cs_insn *scratch, enum x86_cpu_mode mode,
                             uint32_t samples, uint64_t seed, struct cross_stats *st)
{
    struct rng r = {seed};
    for (uint32_t s = 0; s < samples; s++) {
        uint8_t buf[15];
        generate(&r, mode, buf);
        struct x86_decoded_insn q;
        int qrc = x86_decode(buf, sizeof(buf), mode, &q);
        bool cs_ok = capstone_decode(cs, ci, buf);
        st->checked++;
        char tmp[32];
        const char *cs_name = NULL;
        enum cs_kind kind =
            cs_ok ? classify_capstone(ci, buf, mode, &cs_name, tmp, sizeof(tmp)) : CS_UNSUPPORTED;
        if (!cs_ok && qrc != 0) {
            st->both_invalid++;
            continue;
        }
        if (qrc != 0 && kind == CS_UNSUPPORTED) {
            st->capstone_only_unsupported++; /* capstone knows more (AVX-512 in 32-bit...) */
            continue;
        }
        const char *what = NULL;
        if (qrc != 0)
            what = "quokka-rejects";
        else if (!cs_ok)
            what = "capstone-rejects";
        else if (ci->size != q.length)
            what = "length";
        else if (!capstone_matches(ci, buf, mode, &q))
            what = "class";
        if (!what) {
            st->both_valid++;
            if (kind != CS_UNSUPPORTED)
                st->class_compared++;
            continue;
        }
        int why = explain(cs, scratch, buf, mode, qrc, &q, cs_ok ? ci : NULL);
        if (why >= 0)
            st->excluded[why]++;
        else
            report(what, buf, mode, qrc, &q, cs_ok ? ci : NULL, st);
    }
}

static void test_capstone_cross_check(void **state)
{
    (void)state;
    static const struct {
        enum x86_cpu_mode mode;
        cs_mode cs;
        uint32_t samples;
        uint64_t seed;
    } runs[] = {
        {X86_MODE_64, CS_MODE_64, 200000, 0x9e3779b97f4a7c15ULL},
        {X86_MODE_32, CS_MODE_32, 200000, 0xd1b54a32d192ed03ULL},
        {X86_MODE_16, CS_MODE_16, 50000, 0x8cb92ba72f3d8dd7ULL},
    };
    uint64_t failures = 0;
    for (size_t k = 0; k < sizeof(runs) / sizeof(runs[0]); k++) {
        csh cs;
        assert_int_equal(cs_open(CS_ARCH_X86, runs[k].cs, &cs), CS_ERR_OK);
        cs_option(cs, CS_OPT_DETAIL, CS_OPT_ON);
        cs_insn *ci = cs_malloc(cs);
        cs_insn *scratch = cs_malloc(cs);
        struct cross_stats st = {0};
        cross_check_mode(cs, ci, scratch, runs[k].mode, runs[k].samples, runs[k].seed, &st);
        printf("capstone cross-check mode %d: %" PRIu64 " buffers, %" PRIu64
               " both valid (same length), %" PRIu64 " classes compared, %" PRIu64
               " both invalid, %" PRIu64 " capstone-only outside quokka's set, %" PRIu64
               " failures\n  exclusions:",
               runs[k].mode == X86_MODE_64   ? 64
               : runs[k].mode == X86_MODE_32 ? 32
                                             : 16,
               st.checked, st.both_valid, st.class_compared, st.both_invalid,
               st.capstone_only_unsupported, st.failures);
        for (int e = 0; e < NR_EXCLUSIONS; e++)
            printf(" %s=%" PRIu64, exclusion_names[e], st.excluded[e]);
        printf("\n");
        failures += st.failures;
        /* A floor on what was really compared (here ~73-79% of the buffers): a capstone
         * upgrade, a broadened exclusion or a decoder that rejects everything would
         * otherwise pass with nothing checked. */
        if (st.class_compared < (uint64_t)runs[k].samples * 65 / 100) {
            printf("capstone cross-check: only %" PRIu64 " of %u buffers compared (floor 65%%)\n",
                   st.class_compared, runs[k].samples);
            failures++;
        }
        cs_free(ci, 1);
        cs_free(scratch, 1);
        cs_close(&cs);
    }
    assert_int_equal(failures, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prefixes),
        cmocka_unit_test(test_modrm_sib_forms),
        cmocka_unit_test(test_16bit_addressing),
        cmocka_unit_test(test_immediates),
        cmocka_unit_test(test_byte_registers),
        cmocka_unit_test(test_long_mode_defaults),
        cmocka_unit_test(test_invalid_in_64),
        cmocka_unit_test(test_length_limit),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_lock_rules),
        cmocka_unit_test(test_misc_instructions),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_capstone_cross_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
