/* Host floating-point scope for the x87/SSE helpers: guest rounding mode in, exception flags
 * out (x86 bit order: IE 1, ZE 4, OE 8, UE 0x10, PE 0x20). Operands and results of the host
 * operation go through volatile variables so the compiler keeps the arithmetic between
 * begin and end. No guest memory access may happen inside a scope (a fault would leave the
 * host rounding mode changed). */
#ifndef QUOKKA_ACCEL_TCG_X86_FPU_HOST_H
#define QUOKKA_ACCEL_TCG_X86_FPU_HOST_H

#include <fenv.h>
#include <stdint.h>

struct fp_host {
    int dummy; /* room for a saved host mode should the host ever run non-default */
};

/* rc: x86 rounding control (0 nearest, 1 down, 2 up, 3 toward zero) */
static inline void fp_host_begin(struct fp_host *h, unsigned rc)
{
    static const int modes[4] = {FE_TONEAREST, FE_DOWNWARD, FE_UPWARD, FE_TOWARDZERO};
    (void)h;
    feclearexcept(FE_ALL_EXCEPT);
    if (rc & 3)
        fesetround(modes[rc & 3]);
}

static inline unsigned fp_host_end(struct fp_host *h)
{
    (void)h;
    int e = fetestexcept(FE_ALL_EXCEPT);
    fesetround(FE_TONEAREST);
    feclearexcept(FE_ALL_EXCEPT);
    return ((e & FE_INVALID) ? 0x01u : 0) | ((e & FE_DIVBYZERO) ? 0x04u : 0) |
           ((e & FE_OVERFLOW) ? 0x08u : 0) | ((e & FE_UNDERFLOW) ? 0x10u : 0) |
           ((e & FE_INEXACT) ? 0x20u : 0);
}

/* The SSE helpers' scope (sse.c): only MXCSR, the one register host SSE arithmetic reads
 * and writes. glibc's fenv functions also save and reload the whole x87 environment (fnstenv/
 * fldenv), which made the scope cost more than the SSE instruction it brackets. */
#if defined(__x86_64__)
static inline void fp_sse_begin(unsigned rc)
{
    uint32_t m = 0x1f80u | (rc & 3u) << 13; /* all exceptions masked, no DAZ/FTZ, flags clear */
    __asm__ volatile("ldmxcsr %0" : : "m"(m) : "memory");
}

static inline unsigned fp_sse_end(void)
{
    uint32_t m, dflt = 0x1f80u;
    __asm__ volatile("stmxcsr %0" : "=m"(m) : : "memory");
    __asm__ volatile("ldmxcsr %0" : : "m"(dflt) : "memory");
    return m & 0x3du; /* IE ZE OE UE PE: the same bit order as x86's flags (DE is explicit) */
}
#else
static inline void fp_sse_begin(unsigned rc)
{
    struct fp_host h;
    fp_host_begin(&h, rc);
}

static inline unsigned fp_sse_end(void)
{
    struct fp_host h;
    return fp_host_end(&h);
}
#endif

#endif
