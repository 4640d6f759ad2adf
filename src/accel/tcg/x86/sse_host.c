/* SSE/SSE2 floating point on the host's own SSE unit, for the common case: every MXCSR
 * exception masked and DAZ clear (the state Linux gives user programs). The host is x86-64,
 * so the host instruction run under the guest's rounding control and FTZ, with the flags
 * cleared, gives the guest's result and flags bit for bit (NaN propagation, DE, denormal
 * results included); the flags are ORed into the guest MXCSR. With an exception unmasked
 * (it must fault before the destination is written) or DAZ set, sse.c's software path runs.
 * One asm statement holds the MXCSR load, the operation and the flags read, so the compiler
 * cannot move the arithmetic out of the guest's MXCSR scope. */
#include "accel/tcg/x86/sse_host.h"

#define MX_ALL_MASKS 0x1f80u
#define MX_DAZ 0x40u

#if defined(__x86_64__)

typedef double v2df __attribute__((vector_size(16)));
typedef long long v2di __attribute__((vector_size(16)));

/* Runs "OP src, dst" with MXCSR = m; returns the MXCSR after it. */
#define HOST_OP(insn)                                                                              \
    __asm__ volatile("ldmxcsr %[m]\n\t" insn " %[b], %[a]\n\t"                                     \
                     "stmxcsr %[o]\n\t"                                                            \
                     "ldmxcsr %[h]"                                                                \
                     : [a] "+x"(a), [o] "=m"(out)                                                  \
                     : [b] "x"(b), [m] "m"(m), [h] "m"(host)                                       \
                     : "memory")

/* The arithmetic forms (opc 51, 58-5F; mp 0 none, 1 66, 2 F3, 3 F2) and the width conversions
 * CVTSS2SD / CVTSD2SS (5A with F3 / F2). */
static bool host_arith(unsigned opc, unsigned mp, v2df *dst, v2df src, uint32_t m, uint32_t *flags)
{
    v2df a = *dst, b = src;
    uint32_t out = 0, host = MX_ALL_MASKS;
#define FORMS(op)                                                                                  \
    switch (mp) {                                                                                  \
    case 0:                                                                                        \
        HOST_OP(op "ps");                                                                          \
        break;                                                                                     \
    case 1:                                                                                        \
        HOST_OP(op "pd");                                                                          \
        break;                                                                                     \
    case 2:                                                                                        \
        HOST_OP(op "ss");                                                                          \
        break;                                                                                     \
    default:                                                                                       \
        HOST_OP(op "sd");                                                                          \
        break;                                                                                     \
    }
    switch (opc) {
    case 0x51:
        FORMS("sqrt");
        break;
    case 0x58:
        FORMS("add");
        break;
    case 0x59:
        FORMS("mul");
        break;
    case 0x5c:
        FORMS("sub");
        break;
    case 0x5d:
        FORMS("min");
        break;
    case 0x5e:
        FORMS("div");
        break;
    case 0x5f:
        FORMS("max");
        break;
    case 0x5a:
        if (mp == 2)
            HOST_OP("cvtss2sd");
        else if (mp == 3)
            HOST_OP("cvtsd2ss");
        else
            return false;
        break;
    default:
        return false;
    }
#undef FORMS
    *dst = a;
    *flags = out & 0x3fu;
    return true;
}

bool sse_host_fp(uint32_t *mxcsr, unsigned opc, unsigned mp, union xmm_reg *dst,
                 const union xmm_reg *src)
{
    uint32_t mx = *mxcsr;
    if ((mx & (MX_ALL_MASKS | MX_DAZ)) != MX_ALL_MASKS)
        return false;
    /* Quadword by quadword: the translated code writes XMM registers 8 bytes at a time, and a
     * 16-byte load of two fresh 8-byte stores stalls (no store forwarding). Scalar forms use
     * and change lane 0 only. */
    bool scalar = mp >= 2;
    v2di ai = {(long long)dst->q[0], scalar ? 0 : (long long)dst->q[1]};
    v2di bi = {(long long)src->q[0], scalar ? 0 : (long long)src->q[1]};
    v2df a = (v2df)ai, b = (v2df)bi;
    uint32_t flags;
    if (!host_arith(opc, mp, &a, b, mx & ~0x3fu, &flags))
        return false;
    ai = (v2di)a;
    dst->q[0] = (uint64_t)ai[0];
    if (!scalar)
        dst->q[1] = (uint64_t)ai[1];
    *mxcsr = mx | flags;
    return true;
}

bool sse_host_comis(uint32_t *mxcsr, bool dbl, bool quiet, const union xmm_reg *x,
                    const union xmm_reg *y, uint32_t *eflags)
{
    uint32_t mx = *mxcsr;
    if ((mx & (MX_ALL_MASKS | MX_DAZ)) != MX_ALL_MASKS)
        return false;
    v2di ai = {(long long)x->q[0], 0}, bi = {(long long)y->q[0], 0}; /* lane 0 (as above) */
    v2df a = (v2df)ai, b = (v2df)bi;
    uint32_t m = mx & ~0x3fu, out = 0, host = MX_ALL_MASKS;
    bool zf, pf, cf;
#define COMI(insn)                                                                                 \
    __asm__ volatile("ldmxcsr %[m]\n\t" insn " %[b], %[a]\n\t"                                     \
                     "stmxcsr %[o]\n\t"                                                            \
                     "ldmxcsr %[h]"                                                                \
                     : "=@ccz"(zf), "=@ccp"(pf), "=@ccc"(cf), [o] "=m"(out)                        \
                     : [a] "x"(a), [b] "x"(b), [m] "m"(m), [h] "m"(host)                           \
                     : "memory")
    if (dbl && quiet)
        COMI("ucomisd");
    else if (dbl)
        COMI("comisd");
    else if (quiet)
        COMI("ucomiss");
    else
        COMI("comiss");
#undef COMI
    *eflags = (zf ? 0x40u : 0) | (pf ? 0x04u : 0) | (cf ? 0x01u : 0);
    *mxcsr = mx | (out & 0x3fu);
    return true;
}

#else

bool sse_host_fp(uint32_t *mxcsr, unsigned opc, unsigned mp, union xmm_reg *dst,
                 const union xmm_reg *src)
{
    (void)mxcsr, (void)opc, (void)mp, (void)dst, (void)src;
    return false;
}

bool sse_host_comis(uint32_t *mxcsr, bool dbl, bool quiet, const union xmm_reg *x,
                    const union xmm_reg *y, uint32_t *eflags)
{
    (void)mxcsr, (void)dbl, (void)quiet, (void)x, (void)y, (void)eflags;
    return false;
}

#endif
