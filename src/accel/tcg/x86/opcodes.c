/* Opcode attribute tables (Intel SDM Vol. 2 Appendix A opcode maps). Entries left out are
 * undefined opcodes (mnemonic X86_MN_INVALID == 0). */
#include "accel/tcg/x86/opcodes.h"
#include "accel/tcg/x86/decode.h"

#define M XF_MODRM
#define ENT(mn, osz, fl, a, b, c)                                                                  \
    {                                                                                              \
        X86_MN_##mn, OSZ_##osz, (fl), {OS_##a, OS_##b, OS_##c}, 0                                  \
    }
#define OP0(mn, osz, fl) ENT(mn, osz, fl, NONE, NONE, NONE)
#define OP1(mn, osz, fl, a) ENT(mn, osz, fl, a, NONE, NONE)
#define OP2(mn, osz, fl, a, b) ENT(mn, osz, fl, a, b, NONE)
#define GRP(g, osz, fl, a, b)                                                                      \
    {                                                                                              \
        GRP_##g, OSZ_##osz, XF_GROUP | M | (fl), {OS_##a, OS_##b, OS_NONE}, 0                      \
    }
#define SPECIAL(mn, osz, fl, a, b) ENT(mn, osz, XF_SPECIAL | (fl), a, b, NONE)
#define SSE(n, p66, f3, f2)                                                                        \
    {                                                                                              \
        X86_MN_SSE, OSZ_NONE, XF_SSE | M, {OS_NONE, OS_NONE, OS_NONE}, SSE_FORMS(n, p66, f3, f2)   \
    }
#define SSEI(n, p66, f3, f2)                                                                       \
    {                                                                                              \
        X86_MN_SSE, OSZ_NONE, XF_SSE | XF_IMM8 | M, {OS_NONE, OS_NONE, OS_NONE},                   \
            SSE_FORMS(n, p66, f3, f2)                                                              \
    }
#define REP8(base, e)                                                                              \
    [(base) + 0] = e, [(base) + 1] = e, [(base) + 2] = e, [(base) + 3] = e, [(base) + 4] = e,      \
              [(base) + 5] = e, [(base) + 6] = e, [(base) + 7] = e
#define REP4(base, e) [(base) + 0] = e, [(base) + 1] = e, [(base) + 2] = e, [(base) + 3] = e

/* The six-opcode ALU pattern shared by ADD..CMP. */
#define ALU(base, mn, lk)                                                                          \
    [(base) + 0] = OP2(mn, B, M | (lk), Eb, Gb), [(base) + 1] = OP2(mn, V, M | (lk), Ev, Gv),      \
              [(base) + 2] = OP2(mn, B, M, Gb, Eb), [(base) + 3] = OP2(mn, V, M, Gv, Ev),          \
              [(base) + 4] = OP2(mn, B, 0, AL, sIb), [(base) + 5] = OP2(mn, V, 0, rAX, Iz)

#define A SSE_ANY
#define N SSE_NO
#define MO SSE_MEM
#define R SSE_REG

const struct x86_opcode_entry x86_one_byte_table[256] = {
    ALU(0x00, ADD, XF_LOCK),
    [0x06] = OP1(PUSH, V, XF_INV64, ES),
    [0x07] = OP1(POP, V, XF_INV64, ES),
    ALU(0x08, OR, XF_LOCK),
    [0x0e] = OP1(PUSH, V, XF_INV64, CS),
    ALU(0x10, ADC, XF_LOCK),
    [0x16] = OP1(PUSH, V, XF_INV64, SS),
    [0x17] = OP1(POP, V, XF_INV64, SS),
    ALU(0x18, SBB, XF_LOCK),
    [0x1e] = OP1(PUSH, V, XF_INV64, DS),
    [0x1f] = OP1(POP, V, XF_INV64, DS),
    ALU(0x20, AND, XF_LOCK),
    [0x27] = OP0(DAA, B, XF_INV64),
    ALU(0x28, SUB, XF_LOCK),
    [0x2f] = OP0(DAS, B, XF_INV64),
    ALU(0x30, XOR, XF_LOCK),
    [0x37] = OP0(AAA, B, XF_INV64),
    ALU(0x38, CMP, 0),
    [0x3f] = OP0(AAS, B, XF_INV64),
    /* 40-4F are REX in long mode; the prefix loop consumes them before the table. */
    REP8(0x40, OP1(INC, V, XF_INV64, Zv)),
    REP8(0x48, OP1(DEC, V, XF_INV64, Zv)),
    REP8(0x50, OP1(PUSH, D64, 0, Zv)),
    REP8(0x58, OP1(POP, D64, 0, Zv)),
    [0x60] = OP0(PUSHA, V, XF_INV64),
    [0x61] = OP0(POPA, V, XF_INV64),
    [0x62] = OP2(BOUND, V, M | XF_MEM | XF_INV64, Gv, Mem), /* EVEX when it cannot be BOUND */
    [0x63] = SPECIAL(ARPL, W, M, Ew, Gw),                   /* MOVSXD in long mode */
    [0x68] = OP1(PUSH, D64, 0, Iz),
    [0x69] = ENT(IMUL, V, M, Gv, Ev, Iz),
    [0x6a] = OP1(PUSH, D64, 0, sIb),
    [0x6b] = ENT(IMUL, V, M, Gv, Ev, sIb),
    [0x6c] = OP0(INS, B, 0),
    [0x6d] = OP0(INS, Z, 0),
    [0x6e] = OP0(OUTS, B, 0),
    [0x6f] = OP0(OUTS, Z, 0),
    REP8(0x70, OP1(JCC, F64, XF_CC, Jb)),
    REP8(0x78, OP1(JCC, F64, XF_CC, Jb)),
    [0x80] = GRP(1, B, 0, Eb, sIb),
    [0x81] = GRP(1, V, 0, Ev, Iz),
    [0x82] = GRP(1, B, XF_INV64, Eb, sIb),
    [0x83] = GRP(1, V, 0, Ev, sIb),
    [0x84] = OP2(TEST, B, M, Eb, Gb),
    [0x85] = OP2(TEST, V, M, Ev, Gv),
    [0x86] = OP2(XCHG, B, M | XF_LOCK, Eb, Gb),
    [0x87] = OP2(XCHG, V, M | XF_LOCK, Ev, Gv),
    [0x88] = OP2(MOV, B, M, Eb, Gb),
    [0x89] = OP2(MOV, V, M, Ev, Gv),
    [0x8a] = OP2(MOV, B, M, Gb, Eb),
    [0x8b] = OP2(MOV, V, M, Gv, Ev),
    [0x8c] = OP2(MOV_SREG, V, M, Ev, Sw),
    [0x8d] = OP2(LEA, V, M | XF_MEM, Gv, Mem),
    [0x8e] = OP2(MOV_SREG, W, M, Sw, Ew),
    [0x8f] = GRP(1A, D64, 0, Ev, NONE),
    [0x90] = SPECIAL(NOP, V, 0, NONE, NONE), /* XCHG r8 with REX.B, PAUSE with F3 */
    [0x91] = OP2(XCHG, V, 0, Zv, rAX),
    [0x92] = OP2(XCHG, V, 0, Zv, rAX),
    [0x93] = OP2(XCHG, V, 0, Zv, rAX),
    [0x94] = OP2(XCHG, V, 0, Zv, rAX),
    [0x95] = OP2(XCHG, V, 0, Zv, rAX),
    [0x96] = OP2(XCHG, V, 0, Zv, rAX),
    [0x97] = OP2(XCHG, V, 0, Zv, rAX),
    [0x98] = OP0(CBW, V, 0),
    [0x99] = OP0(CWD, V, 0),
    [0x9a] = OP1(CALLF, V, XF_INV64, Ap),
    [0x9b] = OP0(WAIT, NONE, 0),
    [0x9c] = OP0(PUSHF, D64, 0),
    [0x9d] = OP0(POPF, D64, 0),
    [0x9e] = OP0(SAHF, NONE, 0),
    [0x9f] = OP0(LAHF, NONE, 0),
    [0xa0] = OP2(MOV, B, 0, AL, Ob),
    [0xa1] = OP2(MOV, V, 0, rAX, Ov),
    [0xa2] = OP2(MOV, B, 0, Ob, AL),
    [0xa3] = OP2(MOV, V, 0, Ov, rAX),
    [0xa4] = OP0(MOVS, B, 0),
    [0xa5] = OP0(MOVS, V, 0),
    [0xa6] = OP0(CMPS, B, 0),
    [0xa7] = OP0(CMPS, V, 0),
    [0xa8] = OP2(TEST, B, 0, AL, sIb),
    [0xa9] = OP2(TEST, V, 0, rAX, Iz),
    [0xaa] = OP0(STOS, B, 0),
    [0xab] = OP0(STOS, V, 0),
    [0xac] = OP0(LODS, B, 0),
    [0xad] = OP0(LODS, V, 0),
    [0xae] = OP0(SCAS, B, 0),
    [0xaf] = OP0(SCAS, V, 0),
    REP8(0xb0, OP2(MOV, B, 0, Zb, sIb)),
    REP8(0xb8, OP2(MOV, V, 0, Zv, Iv)),
    [0xc0] = GRP(2, B, 0, Eb, Ib),
    [0xc1] = GRP(2, V, 0, Ev, Ib),
    [0xc2] = OP1(RET, F64, 0, Iw),
    [0xc3] = OP0(RET, F64, 0),
    [0xc4] = OP2(LES, V, M | XF_MEM | XF_INV64, Gv, Mp), /* VEX when it cannot be LES */
    [0xc5] = OP2(LDS, V, M | XF_MEM | XF_INV64, Gv, Mp), /* VEX when it cannot be LDS */
    [0xc6] = GRP(11, B, 0, Eb, sIb),
    [0xc7] = GRP(11, V, 0, Ev, Iz),
    [0xc8] = OP2(ENTER, D64, 0, Iw, Ib),
    [0xc9] = OP0(LEAVE, D64, 0),
    [0xca] = OP1(RETF, V, 0, Iw),
    [0xcb] = OP0(RETF, V, 0),
    [0xcc] = OP0(INT3, NONE, 0),
    [0xcd] = OP1(INT, NONE, 0, Ib),
    [0xce] = OP0(INTO, NONE, XF_INV64),
    [0xcf] = OP0(IRET, V, 0),
    [0xd0] = GRP(2, B, 0, Eb, ONE),
    [0xd1] = GRP(2, V, 0, Ev, ONE),
    [0xd2] = GRP(2, B, 0, Eb, CL),
    [0xd3] = GRP(2, V, 0, Ev, CL),
    [0xd4] = OP1(AAM, B, XF_INV64, Ib),
    [0xd5] = OP1(AAD, B, XF_INV64, Ib),
    [0xd6] = OP0(SALC, B, XF_INV64),
    [0xd7] = OP0(XLAT, B, 0),
    REP8(0xd8, OP0(X87, NONE, M | XF_X87)),
    [0xe0] = OP1(LOOPNE, F64, 0, Jb),
    [0xe1] = OP1(LOOPE, F64, 0, Jb),
    [0xe2] = OP1(LOOP, F64, 0, Jb),
    [0xe3] = OP1(JRCXZ, F64, 0, Jb),
    [0xe4] = OP2(IN, B, 0, AL, Ib),
    [0xe5] = OP2(IN, Z, 0, rAX, Ib),
    [0xe6] = OP2(OUT, B, 0, Ib, AL),
    [0xe7] = OP2(OUT, Z, 0, Ib, rAX),
    [0xe8] = OP1(CALL, F64, 0, Jz),
    [0xe9] = OP1(JMP, F64, 0, Jz),
    [0xea] = OP1(JMPF, V, XF_INV64, Ap),
    [0xeb] = OP1(JMP, F64, 0, Jb),
    [0xec] = OP2(IN, B, 0, AL, DX),
    [0xed] = OP2(IN, Z, 0, rAX, DX),
    [0xee] = OP2(OUT, B, 0, DX, AL),
    [0xef] = OP2(OUT, Z, 0, DX, rAX),
    [0xf1] = OP0(INT1, NONE, 0),
    [0xf4] = OP0(HLT, NONE, 0),
    [0xf5] = OP0(CMC, NONE, 0),
    [0xf6] = GRP(3, B, 0, Eb, NONE),
    [0xf7] = GRP(3, V, 0, Ev, NONE),
    [0xf8] = OP0(CLC, NONE, 0),
    [0xf9] = OP0(STC, NONE, 0),
    [0xfa] = OP0(CLI, NONE, 0),
    [0xfb] = OP0(STI, NONE, 0),
    [0xfc] = OP0(CLD, NONE, 0),
    [0xfd] = OP0(STD, NONE, 0),
    [0xfe] = GRP(4, B, 0, Eb, NONE),
    [0xff] = GRP(5, V, 0, Ev, NONE),
};

const struct x86_opcode_entry x86_0f_table[256] = {
    [0x00] = GRP(6, V, 0, Ev, NONE),
    [0x01] = SPECIAL(INVALID, NONE, M, NONE, NONE), /* group 7: memory forms and ModRM forms */
    [0x02] = OP2(LAR, V, M, Gv, Ew),
    [0x03] = OP2(LSL, V, M, Gv, Ew),
    [0x05] = OP0(SYSCALL, NONE, 0),
    [0x06] = OP0(CLTS, NONE, 0),
    [0x07] = OP0(SYSRET, V, 0),
    [0x08] = OP0(INVD, NONE, 0),
    [0x09] = OP0(WBINVD, NONE, 0),
    [0x0b] = OP0(UD2, NONE, 0),
    [0x0d] = GRP(PREFETCH_0D, NONE, XF_MEM, Mem, NONE),
    /* 0F 0E FEMMS and 0F 0F 3DNow! are left undefined: 3DNow! is not offered. */
    [0x10] = SSE(A, A, A, A),
    [0x11] = SSE(A, A, A, A),
    [0x12] = SSE(A, MO, A, A),
    [0x13] = SSE(MO, MO, N, N),
    [0x14] = SSE(A, A, N, N),
    [0x15] = SSE(A, A, N, N),
    [0x16] = SSE(A, MO, A, N),
    [0x17] = SSE(MO, MO, N, N),
    [0x18] = GRP(16, NONE, 0, Mem, NONE), /* /4-/7: hint NOPs, any ModRM */
    /* 0F 19-1F: hint NOPs (0F 1F /0 is the recommended multi-byte NOP, F3 0F 1E FA ENDBR64). */
    [0x19] = OP1(NOP, V, M, Ev),
    [0x1a] = OP1(NOP, V, M, Ev),
    [0x1b] = OP1(NOP, V, M, Ev),
    [0x1c] = OP1(NOP, V, M, Ev),
    [0x1d] = OP1(NOP, V, M, Ev),
    [0x1e] = OP1(NOP, V, M, Ev),
    [0x1f] = OP1(NOP, V, M, Ev),
    /* MOV CR/DR ignore ModRM.mod: always register operands. */
    [0x20] = OP2(MOV_CR, NATIVE, M | XF_RM_IS_REG, Rn, Cd),
    [0x21] = OP2(MOV_DR, NATIVE, M | XF_RM_IS_REG, Rn, Dd),
    [0x22] = OP2(MOV_CR, NATIVE, M | XF_RM_IS_REG, Cd, Rn),
    [0x23] = OP2(MOV_DR, NATIVE, M | XF_RM_IS_REG, Dd, Rn),
    [0x28] = SSE(A, A, N, N),
    [0x29] = SSE(A, A, N, N),
    [0x2a] = SSE(A, A, A, A),
    [0x2b] = SSE(MO, MO, N, N),
    [0x2c] = SSE(A, A, A, A),
    [0x2d] = SSE(A, A, A, A),
    [0x2e] = SSE(A, A, N, N),
    [0x2f] = SSE(A, A, N, N),
    [0x30] = OP0(WRMSR, NONE, 0),
    [0x31] = OP0(RDTSC, NONE, 0),
    [0x32] = OP0(RDMSR, NONE, 0),
    [0x33] = OP0(RDPMC, NONE, 0),
    [0x34] = OP0(SYSENTER, NONE, 0),
    [0x35] = OP0(SYSEXIT, V, 0),
    REP8(0x40, OP2(CMOVCC, V, M | XF_CC, Gv, Ev)),
    REP8(0x48, OP2(CMOVCC, V, M | XF_CC, Gv, Ev)),
    [0x50] = SSE(R, R, N, N),
    [0x51] = SSE(A, A, A, A),
    [0x52] = SSE(A, N, A, N),
    [0x53] = SSE(A, N, A, N),
    REP4(0x54, SSE(A, A, N, N)),
    [0x58] = SSE(A, A, A, A),
    [0x59] = SSE(A, A, A, A),
    [0x5a] = SSE(A, A, A, A),
    [0x5b] = SSE(A, A, A, N),
    REP4(0x5c, SSE(A, A, A, A)),
    REP8(0x60, SSE(A, A, N, N)),
    REP4(0x68, SSE(A, A, N, N)),
    [0x6c] = SSE(N, A, N, N),
    [0x6d] = SSE(N, A, N, N),
    [0x6e] = SSE(A, A, N, N),
    [0x6f] = SSE(A, A, A, N),
    [0x70] = SSEI(A, A, A, A),
    /* 71-73: shift-by-immediate groups, validity per ModRM.reg (decode.c). */
    [0x71] = SPECIAL(SSE, NONE, XF_SSE | XF_IMM8 | M, NONE, NONE),
    [0x72] = SPECIAL(SSE, NONE, XF_SSE | XF_IMM8 | M, NONE, NONE),
    [0x73] = SPECIAL(SSE, NONE, XF_SSE | XF_IMM8 | M, NONE, NONE),
    [0x74] = SSE(A, A, N, N),
    [0x75] = SSE(A, A, N, N),
    [0x76] = SSE(A, A, N, N),
    [0x77] = {X86_MN_SSE, OSZ_NONE, XF_SSE, {OS_NONE, OS_NONE, OS_NONE}, SSE_FORMS(A, N, N, N)},
    [0x7c] = SSE(N, A, N, A),
    [0x7d] = SSE(N, A, N, A),
    [0x7e] = SSE(A, A, A, N),
    [0x7f] = SSE(A, A, A, N),
    REP8(0x80, OP1(JCC, F64, XF_CC, Jz)),
    REP8(0x88, OP1(JCC, F64, XF_CC, Jz)),
    REP8(0x90, OP1(SETCC, B, M | XF_CC, Eb)),
    REP8(0x98, OP1(SETCC, B, M | XF_CC, Eb)),
    [0xa0] = OP1(PUSH, D64, 0, FS),
    [0xa1] = OP1(POP, D64, 0, FS),
    [0xa2] = OP0(CPUID, NONE, 0),
    [0xa3] = OP2(BT, V, M, Ev, Gv),
    [0xa4] = ENT(SHLD, V, M, Ev, Gv, Ib),
    [0xa5] = ENT(SHLD, V, M, Ev, Gv, CL),
    [0xa8] = OP1(PUSH, D64, 0, GS),
    [0xa9] = OP1(POP, D64, 0, GS),
    [0xaa] = OP0(RSM, NONE, 0),
    [0xab] = OP2(BTS, V, M | XF_LOCK, Ev, Gv),
    [0xac] = ENT(SHRD, V, M, Ev, Gv, Ib),
    [0xad] = ENT(SHRD, V, M, Ev, Gv, CL),
    [0xae] = SPECIAL(INVALID, NONE, M, NONE, NONE), /* group 15 */
    [0xaf] = OP2(IMUL, V, M, Gv, Ev),
    [0xb0] = OP2(CMPXCHG, B, M | XF_LOCK, Eb, Gb),
    [0xb1] = OP2(CMPXCHG, V, M | XF_LOCK, Ev, Gv),
    [0xb2] = OP2(LSS, V, M | XF_MEM, Gv, Mp),
    [0xb3] = OP2(BTR, V, M | XF_LOCK, Ev, Gv),
    [0xb4] = OP2(LFS, V, M | XF_MEM, Gv, Mp),
    [0xb5] = OP2(LGS, V, M | XF_MEM, Gv, Mp),
    [0xb6] = OP2(MOVZX, V, M, Gv, Eb),
    [0xb7] = OP2(MOVZX, V, M, Gv, Ew),
    [0xb8] = SPECIAL(POPCNT, V, M, Gv, Ev), /* needs F3 (plain 0F B8 is IA-64 JMPE) */
    [0xb9] = OP2(UD1, V, M, Gv, Ev),
    [0xba] = GRP(8, V, 0, Ev, Ib),
    [0xbb] = OP2(BTC, V, M | XF_LOCK, Ev, Gv),
    [0xbc] = SPECIAL(BSF, V, M, Gv, Ev), /* TZCNT with F3 */
    [0xbd] = SPECIAL(BSR, V, M, Gv, Ev), /* LZCNT with F3 */
    [0xbe] = OP2(MOVSX, V, M, Gv, Eb),
    [0xbf] = OP2(MOVSX, V, M, Gv, Ew),
    [0xc0] = OP2(XADD, B, M | XF_LOCK, Eb, Gb),
    [0xc1] = OP2(XADD, V, M | XF_LOCK, Ev, Gv),
    [0xc2] = SSEI(A, A, A, A),
    [0xc3] = SSE(MO, N, N, N), /* MOVNTI */
    [0xc4] = SSEI(A, A, N, N),
    [0xc5] = SSEI(R, R, N, N),
    [0xc6] = SSEI(A, A, N, N),
    [0xc7] = SPECIAL(INVALID, NONE, M, NONE, NONE), /* group 9 */
    REP8(0xc8, OP1(BSWAP, V, 0, Zv)),
    [0xd0] = SSE(N, A, N, A),
    REP4(0xd1, SSE(A, A, N, N)),
    [0xd5] = SSE(A, A, N, N),
    [0xd6] = SSE(N, A, R, R),
    [0xd7] = SSE(R, R, N, N),
    REP8(0xd8, SSE(A, A, N, N)),
    REP4(0xe0, SSE(A, A, N, N)),
    [0xe4] = SSE(A, A, N, N),
    [0xe5] = SSE(A, A, N, N),
    [0xe6] = SSE(N, A, A, A),
    [0xe7] = SSE(MO, MO, N, N),
    REP8(0xe8, SSE(A, A, N, N)),
    [0xf0] = SSE(N, N, N, MO),
    REP4(0xf1, SSE(A, A, N, N)),
    [0xf5] = SSE(A, A, N, N),
    [0xf6] = SSE(A, A, N, N),
    [0xf7] = SSE(R, R, N, N),
    REP4(0xf8, SSE(A, A, N, N)),
    [0xfc] = SSE(A, A, N, N),
    [0xfd] = SSE(A, A, N, N),
    [0xfe] = SSE(A, A, N, N),
    [0xff] = OP2(UD0, V, M, Gv, Ev),
};

const struct x86_opcode_entry x86_0f38_table[256] = {
    REP8(0x00, SSE(A, A, N, N)), /* SSSE3: PSHUFB..PSIGND, PMULHRSW (MMX and XMM forms) */
    REP4(0x08, SSE(A, A, N, N)),
    [0x10] = SSE(N, A, N, N),
    [0x14] = SSE(N, A, N, N),
    [0x15] = SSE(N, A, N, N),
    [0x17] = SSE(N, A, N, N),
    [0x1c] = SSE(A, A, N, N),
    [0x1d] = SSE(A, A, N, N),
    [0x1e] = SSE(A, A, N, N),
    REP4(0x20, SSE(N, A, N, N)),
    [0x24] = SSE(N, A, N, N),
    [0x25] = SSE(N, A, N, N),
    [0x28] = SSE(N, A, N, N),
    [0x29] = SSE(N, A, N, N),
    [0x2a] = SSE(N, MO, N, N),
    [0x2b] = SSE(N, A, N, N),
    REP4(0x30, SSE(N, A, N, N)),
    [0x34] = SSE(N, A, N, N),
    [0x35] = SSE(N, A, N, N),
    [0x37] = SSE(N, A, N, N),
    REP8(0x38, SSE(N, A, N, N)),
    [0x40] = SSE(N, A, N, N),
    [0x41] = SSE(N, A, N, N),
    [0x82] = SPECIAL(INVPCID, NATIVE, M | XF_MEM, Gv, Mem), /* 66 only */
    REP4(0xc8, SSE(A, N, N, N)),                            /* SHA */
    [0xcc] = SSE(A, N, N, N),
    [0xcd] = SSE(A, N, N, N),
    [0xdb] = SSE(N, A, N, N), /* AES */
    REP4(0xdc, SSE(N, A, N, N)),
    [0xf0] = SPECIAL(MOVBE, V, M, Gv, Ev), /* CRC32 Gy,Eb with F2 */
    [0xf1] = SPECIAL(MOVBE, V, M, Ev, Gv), /* CRC32 Gy,Ev with F2 */
    [0xf6] = SPECIAL(ADCX, V, M, Gy, Ey),  /* 66: ADCX, F3: ADOX */
};

const struct x86_opcode_entry x86_0f3a_table[256] = {
    REP4(0x08, SSEI(N, A, N, N)), /* ROUNDPS..ROUNDSD */
    [0x0c] = SSEI(N, A, N, N),    [0x0d] = SSEI(N, A, N, N), [0x0e] = SSEI(N, A, N, N),
    [0x0f] = SSEI(A, A, N, N), /* PALIGNR */
    REP4(0x14, SSEI(N, A, N, N)), [0x20] = SSEI(N, A, N, N), [0x21] = SSEI(N, A, N, N),
    [0x22] = SSEI(N, A, N, N),    [0x40] = SSEI(N, A, N, N), [0x41] = SSEI(N, A, N, N),
    [0x42] = SSEI(N, A, N, N),    [0x44] = SSEI(N, A, N, N), /* PCLMULQDQ */
    REP4(0x60, SSEI(N, A, N, N)), [0xcc] = SSEI(A, N, N, N), /* SHA1RNDS4 */
    [0xdf] = SSEI(N, A, N, N),                               /* AESKEYGENASSIST */
};

/* Group members: mnemonic, opsize (INHERIT keeps the opcode's), extra flags, and operands that
 * replace the opcode's when the first is not NONE. */
#define GE(mn, osz, fl) ENT(mn, osz, fl, NONE, NONE, NONE)
#define GEO(mn, osz, fl, a, b) ENT(mn, osz, fl, a, b, NONE)

const struct x86_opcode_entry x86_group_table[NR_GROUPS][8] = {
    [GRP_1] = {GE(ADD, INHERIT, XF_LOCK), GE(OR, INHERIT, XF_LOCK), GE(ADC, INHERIT, XF_LOCK),
               GE(SBB, INHERIT, XF_LOCK), GE(AND, INHERIT, XF_LOCK), GE(SUB, INHERIT, XF_LOCK),
               GE(XOR, INHERIT, XF_LOCK), GE(CMP, INHERIT, 0)},
    [GRP_1A] = {GE(POP, INHERIT, 0)},
    [GRP_2] = {GE(ROL, INHERIT, 0), GE(ROR, INHERIT, 0), GE(RCL, INHERIT, 0), GE(RCR, INHERIT, 0),
               GE(SHL, INHERIT, 0), GE(SHR, INHERIT, 0), GE(SHL, INHERIT, 0) /* SAL alias */,
               GE(SAR, INHERIT, 0)},
    [GRP_3] = {GE(TEST, INHERIT, XF_GRP_IMM), GE(TEST, INHERIT, XF_GRP_IMM) /* alias */,
               GE(NOT, INHERIT, XF_LOCK), GE(NEG, INHERIT, XF_LOCK), GE(MUL, INHERIT, 0),
               GE(IMUL, INHERIT, 0), GE(DIV, INHERIT, 0), GE(IDIV, INHERIT, 0)},
    [GRP_4] = {GE(INC, INHERIT, XF_LOCK), GE(DEC, INHERIT, XF_LOCK)},
    [GRP_5] = {GE(INC, INHERIT, XF_LOCK), GE(DEC, INHERIT, XF_LOCK), GE(CALL, F64, 0),
               GEO(CALLF, INHERIT, XF_MEM, Mp, NONE), GE(JMP, F64, 0),
               GEO(JMPF, INHERIT, XF_MEM, Mp, NONE), GE(PUSH, D64, 0)},
    [GRP_11] = {GE(MOV, INHERIT, 0)},
    [GRP_6] = {GE(SLDT, INHERIT, 0), GE(STR, INHERIT, 0), GEO(LLDT, W, 0, Ew, NONE),
               GEO(LTR, W, 0, Ew, NONE), GEO(VERR, W, 0, Ew, NONE), GEO(VERW, W, 0, Ew, NONE)},
    [GRP_7_MEM] = {GEO(SGDT, NONE, 0, Mem, NONE), GEO(SIDT, NONE, 0, Mem, NONE),
                   GEO(LGDT, NONE, 0, Mem, NONE), GEO(LIDT, NONE, 0, Mem, NONE),
                   GEO(SMSW, W, 0, Ew, NONE), GE(INVALID, INHERIT, 0), GEO(LMSW, W, 0, Ew, NONE),
                   GEO(INVLPG, NONE, 0, Mem, NONE)},
    [GRP_8] = {[4] = GE(BT, INHERIT, 0),
               [5] = GE(BTS, INHERIT, XF_LOCK),
               [6] = GE(BTR, INHERIT, XF_LOCK),
               [7] = GE(BTC, INHERIT, XF_LOCK)},
    [GRP_9_MEM] = {[1] = GEO(CMPXCHG8B, NONE, XF_LOCK, Mem, NONE),
                   [3] = GEO(XRSTORS, NONE, 0, Mem, NONE),
                   [4] = GEO(XSAVEC, NONE, 0, Mem, NONE),
                   [5] = GEO(XSAVES, NONE, 0, Mem, NONE)},
    [GRP_15_MEM] = {GEO(FXSAVE, NONE, 0, Mem, NONE), GEO(FXRSTOR, NONE, 0, Mem, NONE),
                    GEO(LDMXCSR, NONE, 0, Mem, NONE), GEO(STMXCSR, NONE, 0, Mem, NONE),
                    GEO(XSAVE, NONE, 0, Mem, NONE), GEO(XRSTOR, NONE, 0, Mem, NONE),
                    GEO(XSAVEOPT, NONE, 0, Mem, NONE), GEO(CLFLUSH, NONE, 0, Mem, NONE)},
    [GRP_16] = {GE(PREFETCHNTA, INHERIT, XF_MEM), GE(PREFETCHT0, INHERIT, XF_MEM),
                GE(PREFETCHT1, INHERIT, XF_MEM), GE(PREFETCHT2, INHERIT, XF_MEM),
                GEO(NOP, V, 0, Ev, NONE), GEO(NOP, V, 0, Ev, NONE), GEO(NOP, V, 0, Ev, NONE),
                GEO(NOP, V, 0, Ev, NONE)},
    [GRP_PREFETCH_0D] = {GE(PREFETCH, INHERIT, 0), GE(PREFETCHW, INHERIT, 0)},
};

const struct x86_modrm_form x86_0f01_reg_forms[] = {
    {0xc1, X86_MN_VMCALL, 0}, {0xc8, X86_MN_MONITOR, 0}, {0xc9, X86_MN_MWAIT, 0},
    {0xca, X86_MN_CLAC, 0},   {0xcb, X86_MN_STAC, 0},    {0xd0, X86_MN_XGETBV, 0},
    {0xd1, X86_MN_XSETBV, 0}, {0xd9, X86_MN_VMMCALL, 0}, {0xf8, X86_MN_SWAPGS, XF_ONLY64},
    {0xf9, X86_MN_RDTSCP, 0},
};
const uint32_t x86_nr_0f01_reg_forms = sizeof(x86_0f01_reg_forms) / sizeof(x86_0f01_reg_forms[0]);

/* x87 register forms (ModRM C0-FF, bit n = ModRM 0xC0 + n) and memory forms (bit = reg) that
 * exist, including the undocumented aliases real CPUs execute (FCOM2, FXCH4, FSTP1, FFREEP...). */
const uint64_t x87_reg_form_valid[8] = {
    0xffffffffffffffffULL, 0xffff7f33ff01ffffULL, 0x00000200ffffffffULL, 0x00ffff1fffffffffULL,
    0xffffffffffffffffULL, 0x0000ffffffffffffULL, 0xffffffff02ffffffULL, 0x00ffff01ffffffffULL,
};
const uint8_t x87_mem_form_valid[8] = {0xff, 0xfd, 0xff, 0xaf, 0xff, 0xdf, 0xff, 0xff};
