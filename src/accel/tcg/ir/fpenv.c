/* The interpreter's IR_FPENV / IR_FPOP on the host's SSE unit (see fpenv.h). */
#include "accel/tcg/ir/fpenv.h"

bool ir_fpop_valid(uint64_t imm)
{
    if (!IR_HOST_FP || ((imm >> 8) != 0xf2 && (imm >> 8) != 0xf3))
        return false;
    switch (imm & 0xff) {
    case 0x51: /* SQRT */
    case 0x58: /* ADD */
    case 0x59: /* MUL */
    case 0x5a: /* CVTSS2SD (F3) / CVTSD2SS (F2) */
    case 0x5c: /* SUB */
    case 0x5d: /* MIN */
    case 0x5e: /* DIV */
    case 0x5f: /* MAX */
        return true;
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

uint64_t ir_fp_op(uint32_t insn, uint64_t a, uint64_t b)
{
    v2di x = {(long long)a, 0}, y = {(long long)b, 0};
    /* volatile: the result depends on the MXCSR, which the compiler does not see */
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
        break; /* refused when the block was compiled (ir_fpop_valid) */
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
