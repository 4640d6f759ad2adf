/* The x87 register arithmetic of fpu.c, chosen at compile time: on x86-64 hosts the host's own
 * x87 (long double) under the guest's rounding control, as fast as before; elsewhere the
 * software extended precision of softfloat80.c, bit-exact with it for the basic operations
 * (arithmetic, square root, rounding, comparisons, conversions, remainders, scaling).
 * Transcendentals are the same code on every host (x87_transcend.c: binary128, rounded once
 * into 80 bits), so bit-identical everywhere.
 * Flags come back in x87 FSW order (IE 1, ZE 4, OE 8, UE 0x10, PE 0x20); DE is not reported
 * by either path (as before). Included by fpu.c only. */
#ifndef QUOKKA_ACCEL_TCG_X86_FX80_H
#define QUOKKA_ACCEL_TCG_X86_FX80_H

#include "accel/tcg/fpu_state.h"
#include "accel/tcg/x86/fpu_host.h"
#include "accel/tcg/x86/softfloat80.h"
#include "accel/tcg/x86/x87_transcend.h"

#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

enum { FX_LT = SF_LT, FX_EQ = SF_EQ, FX_GT = SF_GT, FX_UN = SF_UN };

#if QUOKKA_HOST_X87

_Static_assert(LDBL_MANT_DIG == 64 && LDBL_MAX_EXP == 16384,
               "x87 registers are host long double: needs the x86 80-bit extended format");

static inline uint64_t fx_mant(fx80 v)
{
    uint64_t m;
    memcpy(&m, &v, 8);
    return m;
}

static inline unsigned fx_sexp(fx80 v) /* sign << 15 | exponent */
{
    uint16_t e;
    memcpy(&e, (const uint8_t *)&v + 8, 2);
    return e;
}

static inline fx80 fx_make(unsigned sexp, uint64_t mant)
{
    long double v = 0;
    uint16_t e = (uint16_t)sexp;
    memcpy(&v, &mant, 8);
    memcpy((uint8_t *)&v + 8, &e, 2);
    return v;
}

static inline bool fx_isnan(fx80 v)
{
    return isnan(v);
}

static inline bool fx_isinf(fx80 v)
{
    return isinf(v);
}

static inline bool fx_iszero(fx80 v)
{
    return v == 0;
}

static inline bool fx_signbit(fx80 v)
{
    return signbit(v);
}

static inline fx80 fx_neg(fx80 v)
{
    return -v;
}

static inline fx80 fx_abs(fx80 v)
{
    return fabsl(v);
}

static inline fx80 fx_from_int(int64_t v)
{
    return (long double)v;
}

/* op: 0 add, 1 mul, 4 a - b, 5 b - a, 6 a / b, 7 b / a (the D8 /r numbering) */
static inline fx80 fx_arith(unsigned op, fx80 a, fx80 b, unsigned rc, unsigned *exc)
{
    volatile long double va = a, vb = b, vr; /* keep the operation inside the host scope */
    struct fp_host h;
    fp_host_begin(&h, rc);
    switch (op) {
    case 0:
        vr = va + vb;
        break;
    case 1:
        vr = va * vb;
        break;
    case 4:
        vr = va - vb;
        break;
    case 5:
        vr = vb - va;
        break;
    case 6:
        vr = va / vb;
        break;
    default:
        vr = vb / va;
        break;
    }
    *exc |= fp_host_end(&h);
    return vr;
}

static inline int fx_compare(fx80 a, fx80 b, bool quiet, unsigned *exc)
{
    if (isnan(a) || isnan(b)) {
        bool snan_a = (fx_sexp(a) & 0x7fff) == 0x7fff && !(fx_mant(a) & (1ULL << 62));
        bool snan_b = (fx_sexp(b) & 0x7fff) == 0x7fff && !(fx_mant(b) & (1ULL << 62));
        if (!quiet || (isnan(a) && snan_a) || (isnan(b) && snan_b))
            *exc |= SF_IE;
        return FX_UN;
    }
    return a > b ? FX_GT : a < b ? FX_LT : FX_EQ;
}

/* rintl under rc */
static inline fx80 fx_round_int(fx80 v, unsigned rc, unsigned *exc)
{
    volatile long double vv = v, vr;
    struct fp_host h;
    fp_host_begin(&h, rc);
    vr = rintl(vv);
    *exc |= fp_host_end(&h);
    return vr;
}

/* Round to an integer of `bits` under rc; out of range gives the integer indefinite (the
 * minimum value) with IE. */
static inline int64_t fx_to_int(fx80 v, unsigned bits, unsigned rc, unsigned *exc)
{
    unsigned e = 0;
    long double r = fx_round_int(v, rc, &e);
    long double lim = ldexpl(1.0L, (int)bits - 1);
    if (isnan(r) || r < -lim || r >= lim) {
        *exc |= (e & ~SF_PE) | SF_IE;
        return INT64_MIN >> (64 - bits);
    }
    *exc |= e;
    return (int64_t)r;
}

static inline fx80 fx_from_f32(uint32_t u, unsigned *exc)
{
    float fv;
    memcpy(&fv, &u, 4);
    volatile float vf = fv;
    struct fp_host h;
    fp_host_begin(&h, 0);
    volatile long double r = vf; /* SNaN -> QNaN with IE, like FLD */
    *exc |= fp_host_end(&h);
    return r;
}

static inline fx80 fx_from_f64(uint64_t u, unsigned *exc)
{
    double dv;
    memcpy(&dv, &u, 8);
    volatile double vd = dv;
    struct fp_host h;
    fp_host_begin(&h, 0);
    volatile long double r = vd;
    *exc |= fp_host_end(&h);
    return r;
}

/* FST m32 (bytes 4) / m64 under rc: the stored bits. */
static inline uint64_t fx_to_real(fx80 v, unsigned bytes, unsigned rc, unsigned *exc)
{
    volatile long double vv = v;
    struct fp_host h;
    fp_host_begin(&h, rc);
    uint64_t bits;
    if (bytes == 4) {
        volatile float r = (float)vv;
        float rf = r;
        uint32_t u;
        memcpy(&u, &rf, 4);
        bits = u;
    } else {
        volatile double r = (double)vv;
        double rd = r;
        memcpy(&bits, &rd, 8);
    }
    *exc |= fp_host_end(&h);
    return bits;
}

static inline int fx_ilogb(fx80 v)
{
    return ilogbl(v);
}

/* v * 2^n under rc */
static inline fx80 fx_scalbn(fx80 v, int n, unsigned rc, unsigned *exc)
{
    volatile long double va = v, vr;
    struct fp_host h;
    fp_host_begin(&h, rc);
    vr = scalbnl(va, n);
    *exc |= fp_host_end(&h);
    return vr;
}

/* FSCALE's integer: ST(1) truncated, clamped to +-65536. */
static inline int fx_scale_count(fx80 b)
{
    long double t = truncl(b);
    return t > 65536 ? 65536 : t < -65536 ? -65536 : (int)t;
}

/* Exact remainder (finite a, finite non-zero b): fmod, or the IEEE remainder when nearest;
 * *q (q may be NULL for fmod) the low bits of |quotient|. */
static inline fx80 fx_rem(fx80 a, fx80 b, bool nearest, uint64_t *q)
{
    long double r;
    if (nearest) {
        int qi;
        r = remquol(a, b, &qi);
        *q = (uint64_t)(qi < 0 ? -qi : qi);
    } else {
        r = fmodl(a, b);
        if (q) /* exact: the quotient fits 64 bits when asked for */
            *q = (uint64_t)fabsl((a - r) / b);
    }
    return r;
}

/* The D9 E0-FF group: FSQRT on the host's x87 (exact), the transcendentals in binary128 like
 * every host (x87_transcend.c). */
static inline fx80 fx_transcend(unsigned low, fx80 a, fx80 b, unsigned rc, unsigned *exc)
{
    if (low != 0xa) {
        struct sf80 r = x87_transcend(low, (struct sf80){fx_mant(a), (uint16_t)fx_sexp(a)},
                                      (struct sf80){fx_mant(b), (uint16_t)fx_sexp(b)}, rc, exc);
        return fx_make(r.sexp, r.mant);
    }
    volatile long double va = a, vr;
    struct fp_host h;
    fp_host_begin(&h, rc);
    vr = sqrtl(va);
    *exc |= fp_host_end(&h);
    return vr;
}

static inline fx80 fx_const(unsigned i)
{
    static const long double k[7] = {
        1.0L,
        3.32192809488736234787031942948939018L, /* log2(10) */
        1.44269504088896340735992468100189214L, /* log2(e) */
        3.14159265358979323846264338327950288L,
        0.301029995663981195213738894724493027L, /* log10(2) */
        0.693147180559945309417232121458176568L, /* ln 2 */
        0.0L,
    };
    return k[i];
}

#else /* software extended precision */

static inline uint64_t fx_mant(fx80 v)
{
    return v.mant;
}

static inline unsigned fx_sexp(fx80 v)
{
    return v.sexp;
}

static inline fx80 fx_make(unsigned sexp, uint64_t mant)
{
    fx80 v = {mant, (uint16_t)sexp, {0}};
    return v;
}

static inline struct sf80 fx_sf(fx80 v)
{
    return (struct sf80){v.mant, v.sexp};
}

static inline fx80 fx_of(struct sf80 s)
{
    return fx_make(s.sexp, s.mant);
}

static inline bool fx_isnan(fx80 v)
{
    return sf80_is_nan(fx_sf(v));
}

static inline bool fx_isinf(fx80 v)
{
    return sf80_is_inf(fx_sf(v));
}

static inline bool fx_iszero(fx80 v)
{
    return sf80_is_zero(fx_sf(v));
}

static inline bool fx_signbit(fx80 v)
{
    return (v.sexp >> 15) != 0;
}

static inline fx80 fx_neg(fx80 v)
{
    return fx_make(v.sexp ^ 0x8000u, v.mant);
}

static inline fx80 fx_abs(fx80 v)
{
    return fx_make(v.sexp & 0x7fffu, v.mant);
}

static inline fx80 fx_from_int(int64_t v)
{
    return fx_of(sf80_from_int(v));
}

/* The guest's rounding control at 64-bit precision (the x86 path's host x87 runs with
 * Linux's default precision control, extended). */
static inline struct sf_env fx_env(unsigned rc)
{
    return (struct sf_env){rc & 3, 64, 0, false, false, false};
}

static inline unsigned fx_flags(const struct sf_env *e)
{
    return e->exc & ~SF_DE;
}

static inline fx80 fx_arith(unsigned op, fx80 a, fx80 b, unsigned rc, unsigned *exc)
{
    struct sf_env e = fx_env(rc);
    fx80 r = fx_of(sf80_arith(&e, op, fx_sf(a), fx_sf(b)));
    *exc |= fx_flags(&e);
    return r;
}

static inline int fx_compare(fx80 a, fx80 b, bool quiet, unsigned *exc)
{
    struct sf_env e = fx_env(0);
    int r = sf80_compare(&e, fx_sf(a), fx_sf(b), quiet);
    *exc |= fx_flags(&e);
    return r;
}

static inline fx80 fx_round_int(fx80 v, unsigned rc, unsigned *exc)
{
    struct sf_env e = fx_env(rc);
    fx80 r = fx_of(sf80_round_int(&e, fx_sf(v)));
    *exc |= fx_flags(&e);
    return r;
}

static inline int64_t fx_to_int(fx80 v, unsigned bits, unsigned rc, unsigned *exc)
{
    struct sf_env e = fx_env(rc);
    int64_t r = sf80_to_int(&e, fx_sf(v), bits);
    *exc |= fx_flags(&e);
    return r;
}

static inline fx80 fx_from_f32(uint32_t u, unsigned *exc)
{
    struct sf_env e = fx_env(0);
    fx80 r = fx_of(sf80_from_f32(&e, u));
    *exc |= fx_flags(&e);
    return r;
}

static inline fx80 fx_from_f64(uint64_t u, unsigned *exc)
{
    struct sf_env e = fx_env(0);
    fx80 r = fx_of(sf80_from_f64(&e, u));
    *exc |= fx_flags(&e);
    return r;
}

static inline uint64_t fx_to_real(fx80 v, unsigned bytes, unsigned rc, unsigned *exc)
{
    struct sf_env e = fx_env(rc);
    uint64_t r = bytes == 4 ? sf80_to_f32(&e, fx_sf(v)) : sf80_to_f64(&e, fx_sf(v));
    *exc |= fx_flags(&e);
    return r;
}

static inline int fx_ilogb(fx80 v)
{
    return sf80_ilogb(fx_sf(v));
}

static inline fx80 fx_scalbn(fx80 v, int n, unsigned rc, unsigned *exc)
{
    struct sf_env e = fx_env(rc);
    fx80 r = fx_of(sf80_scalbn(&e, fx_sf(v), n));
    *exc |= fx_flags(&e);
    return r;
}

/* trunc(b) clamped to +-65536, from the bits (b finite, not NaN). */
static inline int fx_scale_count(fx80 b)
{
    int exp = (int)(b.sexp & 0x7fff) - 16383;
    int n;
    if (b.mant == 0 || exp < 0)
        n = 0;
    else if (exp >= 17)
        n = 65536 + 1;
    else
        n = (int)(b.mant >> (63 - exp));
    if (n > 65536)
        n = 65536;
    return fx_signbit(b) ? -n : n;
}

static inline fx80 fx_rem(fx80 a, fx80 b, bool nearest, uint64_t *q)
{
    struct sf_env e = fx_env(0);
    uint64_t quo;
    fx80 r = fx_of(sf80_rem(&e, fx_sf(a), fx_sf(b), nearest, &quo));
    if (q)
        *q = quo;
    return r;
}

/* FSQRT exact in software, the transcendentals in binary128 like every host
 * (x87_transcend.c). */
static inline fx80 fx_transcend(unsigned low, fx80 a, fx80 b, unsigned rc, unsigned *exc)
{
    if (low != 0xa)
        return fx_of(x87_transcend(low, fx_sf(a), fx_sf(b), rc, exc));
    struct sf_env e = fx_env(rc);
    fx80 r = fx_of(sf80_sqrt(&e, fx_sf(a)));
    *exc |= fx_flags(&e);
    return r;
}

/* FLD1, FLDL2T, FLDL2E, FLDPI, FLDLG2, FLDLN2, FLDZ: the x86 path's long double constants. */
static inline fx80 fx_const(unsigned i)
{
    static const struct {
        uint64_t mant;
        uint16_t sexp;
    } k[7] = {
        {0x8000000000000000ULL, 0x3fff}, {0xd49a784bcd1b8afeULL, 0x4000},
        {0xb8aa3b295c17f0bcULL, 0x3fff}, {0xc90fdaa22168c235ULL, 0x4000},
        {0x9a209a84fbcff799ULL, 0x3ffd}, {0xb17217f7d1cf79acULL, 0x3ffe},
        {0x0000000000000000ULL, 0x0000},
    };
    return fx_make(k[i].sexp, k[i].mant);
}

#endif

#endif
