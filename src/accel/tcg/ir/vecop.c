/* IR_VOP's instruction table and the interpreter's IR_VOP on the host's SSE unit (vecop.h). */
#include "accel/tcg/ir/vecop.h"

#include "accel/tcg/ir/fpenv.h"

/* prefix, opcode, mnemonic, kind: every instruction IR_VOP runs. The shuffles (IMM8) are data
 * movement the interpreter does in C; the rest it runs as the instruction itself. */
#define IR_VOP_TABLE(X)                                                                            \
    X(0x66, 0x60, "punpcklbw", INT)                                                                \
    X(0x66, 0x61, "punpcklwd", INT)                                                                \
    X(0x66, 0x62, "punpckldq", INT)                                                                \
    X(0x66, 0x63, "packsswb", INT)                                                                 \
    X(0x66, 0x64, "pcmpgtb", INT)                                                                  \
    X(0x66, 0x65, "pcmpgtw", INT)                                                                  \
    X(0x66, 0x66, "pcmpgtd", INT)                                                                  \
    X(0x66, 0x67, "packuswb", INT)                                                                 \
    X(0x66, 0x68, "punpckhbw", INT)                                                                \
    X(0x66, 0x69, "punpckhwd", INT)                                                                \
    X(0x66, 0x6a, "punpckhdq", INT)                                                                \
    X(0x66, 0x6b, "packssdw", INT)                                                                 \
    X(0x66, 0x6c, "punpcklqdq", INT)                                                               \
    X(0x66, 0x6d, "punpckhqdq", INT)                                                               \
    X(0x66, 0x74, "pcmpeqb", INT)                                                                  \
    X(0x66, 0x75, "pcmpeqw", INT)                                                                  \
    X(0x66, 0x76, "pcmpeqd", INT)                                                                  \
    X(0x66, 0xd1, "psrlw", INT)                                                                    \
    X(0x66, 0xd2, "psrld", INT)                                                                    \
    X(0x66, 0xd3, "psrlq", INT)                                                                    \
    X(0x66, 0xd4, "paddq", INT)                                                                    \
    X(0x66, 0xd5, "pmullw", INT)                                                                   \
    X(0x66, 0xd8, "psubusb", INT)                                                                  \
    X(0x66, 0xd9, "psubusw", INT)                                                                  \
    X(0x66, 0xda, "pminub", INT)                                                                   \
    X(0x66, 0xdb, "pand", INT)                                                                     \
    X(0x66, 0xdc, "paddusb", INT)                                                                  \
    X(0x66, 0xdd, "paddusw", INT)                                                                  \
    X(0x66, 0xde, "pmaxub", INT)                                                                   \
    X(0x66, 0xdf, "pandn", INT)                                                                    \
    X(0x66, 0xe0, "pavgb", INT)                                                                    \
    X(0x66, 0xe1, "psraw", INT)                                                                    \
    X(0x66, 0xe2, "psrad", INT)                                                                    \
    X(0x66, 0xe3, "pavgw", INT)                                                                    \
    X(0x66, 0xe4, "pmulhuw", INT)                                                                  \
    X(0x66, 0xe5, "pmulhw", INT)                                                                   \
    X(0x66, 0xe8, "psubsb", INT)                                                                   \
    X(0x66, 0xe9, "psubsw", INT)                                                                   \
    X(0x66, 0xea, "pminsw", INT)                                                                   \
    X(0x66, 0xeb, "por", INT)                                                                      \
    X(0x66, 0xec, "paddsb", INT)                                                                   \
    X(0x66, 0xed, "paddsw", INT)                                                                   \
    X(0x66, 0xee, "pmaxsw", INT)                                                                   \
    X(0x66, 0xef, "pxor", INT)                                                                     \
    X(0x66, 0xf1, "psllw", INT)                                                                    \
    X(0x66, 0xf2, "pslld", INT)                                                                    \
    X(0x66, 0xf3, "psllq", INT)                                                                    \
    X(0x66, 0xf4, "pmuludq", INT)                                                                  \
    X(0x66, 0xf5, "pmaddwd", INT)                                                                  \
    X(0x66, 0xf6, "psadbw", INT)                                                                   \
    X(0x66, 0xf8, "psubb", INT)                                                                    \
    X(0x66, 0xf9, "psubw", INT)                                                                    \
    X(0x66, 0xfa, "psubd", INT)                                                                    \
    X(0x66, 0xfb, "psubq", INT)                                                                    \
    X(0x66, 0xfc, "paddb", INT)                                                                    \
    X(0x66, 0xfd, "paddw", INT)                                                                    \
    X(0x66, 0xfe, "paddd", INT)                                                                    \
    X(0x00, 0x14, "unpcklps", INT)                                                                 \
    X(0x66, 0x14, "unpcklpd", INT)                                                                 \
    X(0x00, 0x15, "unpckhps", INT)                                                                 \
    X(0x66, 0x15, "unpckhpd", INT)                                                                 \
    X(0x66, 0x70, "pshufd", IMM8)                                                                  \
    X(0xf2, 0x70, "pshuflw", IMM8)                                                                 \
    X(0xf3, 0x70, "pshufhw", IMM8)                                                                 \
    X(0x00, 0xc6, "shufps", IMM8)                                                                  \
    X(0x66, 0xc6, "shufpd", IMM8)                                                                  \
    X(0x00, 0x51, "sqrtps", FP)                                                                    \
    X(0x66, 0x51, "sqrtpd", FP)                                                                    \
    X(0x00, 0x58, "addps", FP)                                                                     \
    X(0x66, 0x58, "addpd", FP)                                                                     \
    X(0x00, 0x59, "mulps", FP)                                                                     \
    X(0x66, 0x59, "mulpd", FP)                                                                     \
    X(0x00, 0x5a, "cvtps2pd", FP)                                                                  \
    X(0x66, 0x5a, "cvtpd2ps", FP)                                                                  \
    X(0x00, 0x5b, "cvtdq2ps", FP)                                                                  \
    X(0x66, 0x5b, "cvtps2dq", FP)                                                                  \
    X(0xf3, 0x5b, "cvttps2dq", FP)                                                                 \
    X(0x00, 0x5c, "subps", FP)                                                                     \
    X(0x66, 0x5c, "subpd", FP)                                                                     \
    X(0x00, 0x5d, "minps", FP)                                                                     \
    X(0x66, 0x5d, "minpd", FP)                                                                     \
    X(0x00, 0x5e, "divps", FP)                                                                     \
    X(0x66, 0x5e, "divpd", FP)                                                                     \
    X(0x00, 0x5f, "maxps", FP)                                                                     \
    X(0x66, 0x5f, "maxpd", FP)                                                                     \
    X(0xf3, 0xe6, "cvtdq2pd", FP)                                                                  \
    X(0x66, 0xe6, "cvttpd2dq", FP)                                                                 \
    X(0xf2, 0xe6, "cvtpd2dq", FP)                                                                  \
    X(0x00, 0xc2, "cmpps", FPCMP)                                                                  \
    X(0x66, 0xc2, "cmppd", FPCMP)

enum ir_vop_kind ir_vop_kind(uint32_t insn)
{
    switch (insn & 0xffff) {
#define KIND_CASE(prefix, opc, name, kind)                                                         \
    case (prefix) << 8 | (opc):                                                                    \
        return IR_VOP_##kind;
        IR_VOP_TABLE(KIND_CASE)
#undef KIND_CASE
    default:
        return IR_VOP_NONE;
    }
}

bool ir_vop_mem64(uint32_t insn)
{
    return (insn & 0xffff) == 0x005a || (insn & 0xffff) == 0xf3e6;
}

bool ir_vop_valid(uint64_t imm)
{
    enum ir_vop_kind k = ir_vop_kind((uint32_t)imm);
    if (!IR_HOST_FP || imm >> 25 || k == IR_VOP_NONE)
        return false;
    unsigned imm8 = (imm >> 16) & 0xff;
    return k == IR_VOP_IMM8 || (k == IR_VOP_FPCMP ? imm8 < 8 : imm8 == 0);
}

#if IR_HOST_FP

typedef long long v2di __attribute__((vector_size(16)));

/* PSHUFD/PSHUFLW/PSHUFHW/SHUFPS/SHUFPD: lanes picked by imm8, in C. */
static v2di shuffle(uint32_t insn, v2di a, v2di b)
{
    unsigned imm8 = (insn >> 16) & 0xff;
    union {
        v2di q;
        uint32_t d[4];
        uint16_t w[8];
        uint64_t u[2];
    } x = {.q = a}, y = {.q = b}, r;
    switch (insn & 0xffff) {
    case 0x6670: /* PSHUFD: every dword from the source */
        for (unsigned i = 0; i < 4; i++)
            r.d[i] = y.d[(imm8 >> (2 * i)) & 3];
        break;
    case 0xf270: /* PSHUFLW: the low four words shuffled, the high quadword copied */
        r.u[1] = y.u[1];
        for (unsigned i = 0; i < 4; i++)
            r.w[i] = y.w[(imm8 >> (2 * i)) & 3];
        break;
    case 0xf370: /* PSHUFHW */
        r.u[0] = y.u[0];
        for (unsigned i = 0; i < 4; i++)
            r.w[4 + i] = y.w[4 + ((imm8 >> (2 * i)) & 3)];
        break;
    case 0x00c6: /* SHUFPS: two dwords of the destination, then two of the source */
        r.d[0] = x.d[imm8 & 3], r.d[1] = x.d[(imm8 >> 2) & 3];
        r.d[2] = y.d[(imm8 >> 4) & 3], r.d[3] = y.d[(imm8 >> 6) & 3];
        break;
    default: /* 0x66c6 SHUFPD */
        r.u[0] = x.u[imm8 & 1], r.u[1] = y.u[(imm8 >> 1) & 1];
        break;
    }
    return r.q;
}

/* CMPPS/CMPPD with predicate 0-7: the immediate must be a constant of the instruction. */
static v2di compare(uint32_t insn, v2di x, v2di y)
{
    bool pd = ((insn >> 8) & 0xff) == 0x66;
#define CMP(n)                                                                                     \
    case n:                                                                                        \
        if (pd)                                                                                    \
            __asm__ volatile("cmppd $" #n ", %1, %0" : "+x"(x) : "x"(y));                          \
        else                                                                                       \
            __asm__ volatile("cmpps $" #n ", %1, %0" : "+x"(x) : "x"(y));                          \
        break;
    switch ((insn >> 16) & 7) {
        CMP(0) CMP(1) CMP(2) CMP(3) CMP(4) CMP(5) CMP(6) CMP(7)
    }
#undef CMP
    return x;
}

uint64_t ir_vop_eval(uint32_t insn, uint64_t a_lo, uint64_t a_hi, uint64_t b_lo, uint64_t b_hi)
{
    v2di x = {(long long)a_lo, (long long)a_hi}, y = {(long long)b_lo, (long long)b_hi};
    /* volatile: floating-point results and flags depend on the MXCSR, which the compiler
     * does not see */
    switch (insn & 0xffff) {
#define RUN_INT(name) __asm__ volatile(name " %1, %0" : "+x"(x) : "x"(y))
#define RUN_FP(name) RUN_INT(name)
#define RUN_IMM8(name) x = shuffle(insn, x, y)
#define RUN_FPCMP(name) x = compare(insn, x, y)
#define OP_CASE(prefix, opc, name, kind)                                                           \
    case (prefix) << 8 | (opc):                                                                    \
        RUN_##kind(name);                                                                          \
        break;
        IR_VOP_TABLE(OP_CASE)
#undef OP_CASE
#undef RUN_INT
#undef RUN_FP
#undef RUN_IMM8
#undef RUN_FPCMP
    default:
        break; /* refused when the block was compiled (ir_vop_valid) */
    }
    return (uint64_t)x[(insn & IR_VOP_HALF) ? 1 : 0];
}

#else

uint64_t ir_vop_eval(uint32_t insn, uint64_t a_lo, uint64_t a_hi, uint64_t b_lo, uint64_t b_hi)
{
    (void)insn, (void)a_hi, (void)b_lo, (void)b_hi;
    return a_lo;
}

#endif
