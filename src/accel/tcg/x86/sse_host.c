/* SSE/SSE2 floating point on the host's own SSE unit (x86-64 hosts; elsewhere softfloat80.c
 * gives the same bits and flags, below), for the common case: every MXCSR
 * exception masked and DAZ clear (the state Linux gives user programs). The host is x86-64,
 * so the host instruction run under the guest's rounding control and FTZ, with the flags
 * cleared, gives the guest's result and flags bit for bit (NaN propagation, DE, denormal
 * results included); the flags are ORed into the guest MXCSR. With an exception unmasked
 * (it must fault before the destination is written) or DAZ set, sse.c's software path runs.
 * One asm statement holds the MXCSR load, the operation and the flags read, so the compiler
 * cannot move the arithmetic out of the guest's MXCSR scope. */
#include "accel/tcg/x86/sse_host.h"

#include "accel/tcg/x86/softfloat80.h"

#define MX_ALL_MASKS 0x1f80u
#define MX_DAZ 0x40u
#define MX_FTZ 0x8000u

#if QUOKKA_HOST_X87

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

#else /* no host SSE: the portable code below, exact for x86 */

bool sse_host_fp(uint32_t *mxcsr, unsigned opc, unsigned mp, union xmm_reg *dst,
                 const union xmm_reg *src)
{
    if ((*mxcsr & (MX_ALL_MASKS | MX_DAZ)) != MX_ALL_MASKS)
        return false;
    return sse_soft_fp(mxcsr, opc, mp, dst, src);
}

bool sse_host_comis(uint32_t *mxcsr, bool dbl, bool quiet, const union xmm_reg *x,
                    const union xmm_reg *y, uint32_t *eflags)
{
    if ((*mxcsr & (MX_ALL_MASKS | MX_DAZ)) != MX_ALL_MASKS)
        return false;
    return sse_soft_comis(mxcsr, dbl, quiet, x, y, eflags);
}

#endif

/* --- the same in software (softfloat80.c): hosts without SSE, and the unit test's reference
 * comparison on x86-64 hosts ------------------------------------------------------------------ */

static struct sf_env soft_env(uint32_t mx)
{
    return (struct sf_env){(mx >> 13) & 3, 64, 0, false, (mx & MX_FTZ) != 0, (mx & MX_DAZ) != 0};
}

/* One lane of ADD/SUB/MUL/DIV/MIN/MAX/SQRT: MIN and MAX give the second operand when either
 * is a NaN (IE even for quiet ones) or both compare equal (+0 and -0). */
static uint64_t soft_lane(struct sf_env *e, unsigned opc, uint64_t a, uint64_t b, bool dbl)
{
    switch (opc) {
    case 0x51:
        return sf_ieee_arith(e, 4, a, b, dbl);
    case 0x58:
        return sf_ieee_arith(e, 0, a, b, dbl);
    case 0x59:
        return sf_ieee_arith(e, 2, a, b, dbl);
    case 0x5c:
        return sf_ieee_arith(e, 1, a, b, dbl);
    case 0x5e:
        return sf_ieee_arith(e, 3, a, b, dbl);
    default: { /* 0x5d MIN, 0x5f MAX */
        int c = sf_ieee_compare(e, a, b, dbl, false);
        return c != SF_UN && c == (opc == 0x5d ? SF_LT : SF_GT) ? a : b;
    }
    }
}

bool sse_soft_fp(uint32_t *mxcsr, unsigned opc, unsigned mp, union xmm_reg *dst,
                 const union xmm_reg *src)
{
    if (!((opc == 0x51 || (opc >= 0x58 && opc <= 0x5f && opc != 0x5a && opc != 0x5b)) ||
          (opc == 0x5a && mp >= 2)))
        return false;
    struct sf_env e = soft_env(*mxcsr);
    union xmm_reg r = *dst;
    if (opc == 0x5a) { /* CVTSS2SD (F3) / CVTSD2SS (F2) of the source's lane 0 */
        if (mp == 2)
            r.q[0] = sf_ieee_convert(&e, src->d[0], true);
        else
            r.d[0] = (uint32_t)sf_ieee_convert(&e, src->q[0], false);
    } else if (mp == 1 || mp == 3) { /* PD, SD */
        for (unsigned i = 0; i < (mp == 1 ? 2u : 1u); i++)
            r.q[i] = soft_lane(&e, opc, dst->q[i], src->q[i], true);
    } else { /* PS, SS */
        for (unsigned i = 0; i < (mp == 0 ? 4u : 1u); i++)
            r.d[i] = (uint32_t)soft_lane(&e, opc, dst->d[i], src->d[i], false);
    }
    *dst = r;
    *mxcsr |= e.exc;
    return true;
}

bool sse_soft_comis(uint32_t *mxcsr, bool dbl, bool quiet, const union xmm_reg *x,
                    const union xmm_reg *y, uint32_t *eflags)
{
    static const uint32_t fl[4] = {
        [SF_LT] = 0x01u, [SF_EQ] = 0x40u, [SF_GT] = 0, [SF_UN] = 0x45u}; /* CF, ZF, none, ZF PF CF
                                                                          */
    struct sf_env e = soft_env(*mxcsr);
    int c = dbl ? sf_ieee_compare(&e, x->q[0], y->q[0], true, quiet)
                : sf_ieee_compare(&e, x->d[0], y->d[0], false, quiet);
    *eflags = fl[c];
    *mxcsr |= e.exc;
    return true;
}
