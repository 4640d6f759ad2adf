/* The interpreter's IR_FPENV / IR_FPOP on the host's SSE unit (see fpenv.h). */
#include "accel/tcg/ir/fpenv.h"

bool ir_fpop_valid(uint64_t imm)
{
    unsigned opc = imm & 0xff, prefix = (imm >> 8) & 0xff;
    bool scalar = prefix == 0xf2 || prefix == 0xf3, w = (imm >> 16) & 1;
    if (!IR_HOST_FP || imm >> 17)
        return false;
    switch (opc) {
    case 0x51: /* SQRT */
    case 0x58: /* ADD */
    case 0x59: /* MUL */
    case 0x5a: /* CVTSS2SD (F3) / CVTSD2SS (F2) */
    case 0x5c: /* SUB */
    case 0x5d: /* MIN */
    case 0x5e: /* DIV */
    case 0x5f: /* MAX */
        return scalar && !w;
    case 0x2a: /* CVTSI2S* */
    case 0x2c: /* CVTTS*2SI */
    case 0x2d: /* CVTS*2SI */
        return scalar;
    case 0x2e: /* UCOMIS* */
    case 0x2f: /* COMIS* */
        return (prefix == 0 || prefix == 0x66) && !w;
    default:
        return false;
    }
}

#if IR_HOST_FP

void ir_fp_enter(const uint32_t *guest_mxcsr, struct ir_fp_live *l)
{
    if (l->live)
        return;
    l->load = ir_fp_host_mxcsr(*guest_mxcsr);
    __asm__ volatile("ldmxcsr %0" : : "m"(l->load) : "memory");
    l->live = 1;
}

typedef long long v2di __attribute__((vector_size(16)));

/* The integer conversions and comparisons (ir_fp_op's other forms). */
static uint64_t int_or_flags_op(uint32_t insn, v2di x, uint64_t b)
{
    v2di y = {(long long)b, 0};
    uint64_t r = 0;
    uint32_t r32 = 0; /* the 32-bit forms need a 32-bit register (a 64-bit one means REX.W) */
    bool zf, pf, cf;
    /* volatile: results and flags depend on the MXCSR, which the compiler does not see */
    uint32_t b32 = (uint32_t)b;
#define TO_XMM(text, v) __asm__ volatile(text " %1, %0" : "+x"(x) : "r"(v))
#define TO_INT(text) __asm__ volatile(text " %1, %0" : "=r"(r) : "x"(y))
#define TO_INT32(text) __asm__ volatile(text " %1, %0" : "=r"(r32) : "x"(y))
#define COMPARE(text)                                                                              \
    __asm__ volatile(text " %3, %4" : "=@ccz"(zf), "=@ccp"(pf), "=@ccc"(cf) : "x"(y), "x"(x))
    switch (insn) {
    case 0x0f32a:
        TO_XMM("cvtsi2ssl", b32);
        return (uint64_t)x[0];
    case 0x1f32a:
        TO_XMM("cvtsi2ssq", b);
        return (uint64_t)x[0];
    case 0x0f22a:
        TO_XMM("cvtsi2sdl", b32);
        return (uint64_t)x[0];
    case 0x1f22a:
        TO_XMM("cvtsi2sdq", b);
        return (uint64_t)x[0];
    case 0x0f32c:
        TO_INT32("cvttss2si");
        return r32;
    case 0x1f32c:
        TO_INT("cvttss2siq");
        return r;
    case 0x0f22c:
        TO_INT32("cvttsd2si");
        return r32;
    case 0x1f22c:
        TO_INT("cvttsd2siq");
        return r;
    case 0x0f32d:
        TO_INT32("cvtss2si");
        return r32;
    case 0x1f32d:
        TO_INT("cvtss2siq");
        return r;
    case 0x0f22d:
        TO_INT32("cvtsd2si");
        return r32;
    case 0x1f22d:
        TO_INT("cvtsd2siq");
        return r;
    case 0x002e:
        COMPARE("ucomiss");
        break;
    case 0x662e:
        COMPARE("ucomisd");
        break;
    case 0x002f:
        COMPARE("comiss");
        break;
    case 0x662f:
        COMPARE("comisd");
        break;
    default:
        return 0; /* refused when the block was compiled (ir_fpop_valid) */
    }
#undef TO_XMM
#undef TO_INT
#undef TO_INT32
#undef COMPARE
    return (zf ? 0x40u : 0) | (pf ? 0x04u : 0) | (cf ? 0x01u : 0);
}

uint64_t ir_fp_op(uint32_t insn, uint64_t a, uint64_t b)
{
    v2di x = {(long long)a, 0}, y = {(long long)b, 0};
#define OP(text) __asm__ volatile(text " %1, %0" : "+x"(x) : "x"(y))
    switch (insn) {
    case 0xf351:
        OP("sqrtss");
        break;
    case 0xf251:
        OP("sqrtsd");
        break;
    case 0xf358:
        OP("addss");
        break;
    case 0xf258:
        OP("addsd");
        break;
    case 0xf359:
        OP("mulss");
        break;
    case 0xf259:
        OP("mulsd");
        break;
    case 0xf35a:
        OP("cvtss2sd");
        break;
    case 0xf25a:
        OP("cvtsd2ss");
        break;
    case 0xf35c:
        OP("subss");
        break;
    case 0xf25c:
        OP("subsd");
        break;
    case 0xf35d:
        OP("minss");
        break;
    case 0xf25d:
        OP("minsd");
        break;
    case 0xf35e:
        OP("divss");
        break;
    case 0xf25e:
        OP("divsd");
        break;
    case 0xf35f:
        OP("maxss");
        break;
    case 0xf25f:
        OP("maxsd");
        break;
    default:
        return int_or_flags_op(insn, x, b);
    }
#undef OP
    return (uint64_t)x[0];
}

#else

void ir_fp_enter(const uint32_t *guest_mxcsr, struct ir_fp_live *l)
{
    (void)guest_mxcsr;
    (void)l;
}

uint64_t ir_fp_op(uint32_t insn, uint64_t a, uint64_t b)
{
    (void)insn;
    (void)b;
    return a;
}

#endif
