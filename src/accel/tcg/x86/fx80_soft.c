/* The x87 transcendental instructions on hosts without an x87 (fx80.h's software path).
 *
 * The operand is widened exactly into the host's long double (binary128 on aarch64: 113-bit
 * significand, the same exponent range as the 80-bit format, so every x87 value including the
 * denormals converts exactly), the host libm computes there, and the result is rounded once
 * into 80 bits under the guest's rounding control. That is within an ulp of the x86-64 host's
 * results (its libm works in the x87's own precision) but not always bit-identical to them;
 * FSQRT and FRNDINT are not transcendental and stay bit-exact (softfloat80.c). */
#include "accel/tcg/x86/fx80.h"

#if !QUOKKA_HOST_X87

static long double to_host(fx80 v)
{
    unsigned e = v.sexp & 0x7fff;
    long double m = (long double)v.mant; /* exact: at least 64 significant bits */
    long double r = e == 0 ? ldexpl(m, -16382 - 63) : ldexpl(m, (int)e - 16383 - 63);
    return (v.sexp & 0x8000) ? -r : r;
}

/* Round a finite host value into 80 bits under rc (its flags: OE UE PE). */
static fx80 from_host(long double q, unsigned rc, unsigned *exc)
{
    bool sign = signbit(q);
    if (q == 0)
        return fx_make(sign ? 0x8000u : 0, 0);
    if (isinf(q))
        return fx_make((sign ? 0x8000u : 0) | 0x7fff, 1ULL << 63);
    int e;
    long double m = frexpl(fabsl(q), &e); /* [0.5, 1) * 2^e */
    int digits = LDBL_MANT_DIG < 128 ? LDBL_MANT_DIG : 127;
    unsigned __int128 bits = (unsigned __int128)ldexpl(m, digits); /* an integer: exact */
    struct sf_env env = {rc & 3, 64, 0, false, false, false};
    struct sf80 r = sf80_round_pack(&env, sign, e - 1, bits << (128 - digits));
    *exc |= env.exc & ~SF_DE;
    return fx_make(r.sexp, r.mant);
}

static long double library(unsigned low, long double a, long double b)
{
    switch (low) {
    case 0x0: /* F2XM1 */
        return expm1l(a * 0.693147180559945309417232121458176568L);
    case 0x1: /* FYL2X */
        return b * log2l(a);
    case 0x2: /* FPTAN */
        return tanl(a);
    case 0x3: /* FPATAN */
        return atan2l(b, a);
    case 0x9: /* FYL2XP1 */
        return b * (log1pl(a) / 0.693147180559945309417232121458176568L);
    case 0xe:
        return sinl(a);
    default:
        return cosl(a);
    }
}

fx80 fx_transcend(unsigned low, fx80 a, fx80 b, unsigned rc, unsigned *exc)
{
    struct sf_env env = {rc & 3, 64, 0, false, false, false};
    if (low == 0xa) { /* FSQRT: exact arithmetic, not a library call */
        fx80 r = fx_of(sf80_sqrt(&env, fx_sf(a)));
        *exc |= env.exc & ~SF_DE;
        return r;
    }
    bool two = low == 0x1 || low == 0x3 || low == 0x9;
    if (fx_isnan(a) || (two && fx_isnan(b))) { /* the x87's NaN propagation */
        fx80 r = fx_of(two ? sf80_add(&env, fx_sf(a), fx_sf(b)) : sf80_sqrt(&env, fx_sf(a)));
        *exc |= env.exc & SF_IE;
        return r;
    }
    unsigned bad = 0; /* unnormals and pseudo-NaNs: invalid, as the x87 says */
    if (sf80_compare(&env, fx_sf(a), fx_sf(a), true) == SF_UN ||
        (two && sf80_compare(&env, fx_sf(b), fx_sf(b), true) == SF_UN))
        bad = SF_IE;
    if (bad) {
        *exc |= SF_IE;
        return fx_make(0xffff, 0xc000000000000000ULL);
    }
    struct fp_host h;
    fp_host_begin(&h, rc);
    volatile long double va = to_host(a), vb = to_host(b);
    volatile long double vr = library(low, va, vb);
    unsigned flags = fp_host_end(&h);
    long double r = vr;
    if (isnan(r)) { /* an invalid operation: the x87's negative indefinite */
        *exc |= SF_IE;
        return fx_make(0xffff, 0xc000000000000000ULL);
    }
    *exc |= flags & SF_ZE;
    return from_host(r, rc, exc);
}

#endif
