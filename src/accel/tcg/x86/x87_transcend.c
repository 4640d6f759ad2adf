/* The x87 transcendentals, bit-identical on every host (x87_transcend.h).
 *
 * Semantics chosen: the operands are widened exactly into IEEE binary128 (113-bit
 * significand, the 80-bit format's exponent range: every x87 value, denormals included,
 * converts exactly), the function is evaluated there to about 2^-105 relative error, and
 * that value is rounded once into 80 bits (64-bit significand: precision control does not
 * apply to these instructions) under the guest's rounding control. PE is set for every
 * inexact result (all but the special values: zeros, log2 of a power of two, 2^k - 1 for an
 * integer k, ...), UE for a tiny inexact one, IE and the indefinite for invalid operands, ZE
 * for log2(0). The result is thus the correctly rounded one except where the exact value
 * lies within about 2^-105 relative of a rounding boundary (rare hard cases).
 *
 * A real x87 differs: its results are within about 1 ulp of the exact value but not always
 * correctly rounded (Intel documents "within 1 ulp" for FSIN/FCOS/FPTAN/FPATAN/F2XM1/FYL2X
 * in round-to-nearest), and FSIN/FCOS/FPTAN reduce the operand with a 66-bit value of pi, so
 * near multiples of pi/2 with large operands its results lose most of their digits (here the
 * reduction is exact enough for any operand below 2^63); it also reports PE for some exact
 * results (F2XM1(+-1), FYL2X(8, 1) = 3), and outside the documented domains (F2XM1 beyond
 * +-1, FYL2XP1 beyond |x| < 1 - sqrt(2)/2) its results are not the functions' at all, where
 * quokka computes the functions. quokka does not imitate those errors (they are the
 * microcode's, undocumented); what it guarantees is the same bits on x86-64 and aarch64
 * (tests/unit/test_x87_transcend.c checks a golden table on both and prints how the CPU it
 * runs on differs).
 *
 * Why not the host's libm: x86-64's long double functions work in the x87's own 64-bit
 * precision and aarch64's in binary128, and different libm versions differ in the last bit.
 * Only +, -, *, / and integer conversions are used here, all correctly rounded by IEEE 754
 * (libgcc's soft-fp on both hosts), at the host's default round-to-nearest, with contraction
 * into fused multiply-adds off (-ffp-contract=off for this file, in the Makefile: clang
 * contracts by default). */
#include "accel/tcg/x86/x87_transcend.h"

#include <float.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__)
typedef __float128 q128;
#elif defined(__aarch64__) && LDBL_MANT_DIG == 113
typedef long double q128;
#else
#error "x87 transcendentals need an IEEE binary128 type (x86-64 __float128, aarch64 long double)"
#endif
_Static_assert(sizeof(q128) == 16, "binary128 is 16 bytes");
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "binary128 bits are read little-endian");

typedef unsigned __int128 u128;

struct qbits {
    uint64_t lo, hi;
};

#include "accel/tcg/x86/x87_transcend_consts.h"

enum { M_2_PI, M_PI_4, M_PI_2, M_3PI_4, M_PI_Q, M_LN2, M_2_LN2 };

static q128 qk(struct qbits b)
{
    q128 v;
    memcpy(&v, &b, sizeof(v));
    return v;
}

static q128 misc(unsigned i)
{
    return qk(q_misc[i]);
}

static u128 bits_of(q128 v)
{
    u128 b;
    memcpy(&b, &v, sizeof(b));
    return b;
}

static q128 of_bits(u128 b)
{
    q128 v;
    memcpy(&v, &b, sizeof(v));
    return v;
}

/* 2^k for -16382 <= k <= 16383 */
static q128 pow2(int k)
{
    return of_bits((u128)(unsigned)(k + 16383) << 112);
}

/* A finite or infinite 80-bit value (not NaN, not unnormal), exactly. A denormal's (or
 * pseudo-denormal's) significand lands in binary128's fraction with the same weight; a
 * carry into the exponent field is the right value too. */
static q128 widen(struct sf80 a)
{
    u128 b = (u128)(a.sexp >> 15) << 127;
    unsigned e = a.sexp & 0x7fff;
    if (e == 0)
        b |= (u128)a.mant << 49;
    else
        b |= (u128)e << 112 | (u128)(a.mant & ~(1ULL << 63)) << 49;
    return of_bits(b);
}

static bool q_signbit(q128 v)
{
    return (bits_of(v) >> 127) != 0;
}

static q128 q_abs(q128 v)
{
    return of_bits(bits_of(v) & ~((u128)1 << 127));
}

/* Nearest integer (ties to even) of |v| < 2^112: the classic add-and-subtract of 2^112 at
 * round-to-nearest. */
static q128 q_rint(q128 v)
{
    q128 big = pow2(112);
    if (q_signbit(v))
        return -((-v + big) - big);
    return (v + big) - big;
}

/* A result as an unevaluated sum hi + lo, |lo| much smaller than |hi|: lo keeps what binary128
 * cannot hold of a value next to hi (sin x = x - x^3/6 for tiny x), so rounding knows on
 * which side of hi the result lies. */
struct qq {
    q128 hi, lo;
};

static struct qq qq1(q128 v)
{
    return (struct qq){v, 0};
}

static struct qq qq_neg(struct qq v)
{
    return (struct qq){-v.hi, -v.lo};
}

/* Round v (finite or infinite, not NaN) into 80 bits. inexact: v only approximates the
 * exact result, which is never exactly representable (PE, and UE when tiny); then hi + lo
 * is rounded with what the sum's own rounding left (Fast2Sum) as a sticky bit, so a result
 * next to an 80-bit value rounds the right way under directed rounding. */
static struct sf80 narrow_qq(struct qq x, bool inexact, unsigned rc, unsigned *exc)
{
    q128 v = x.lo == 0 ? x.hi : x.hi + x.lo; /* -0 + 0 would be +0 */
    q128 rest = x.lo - (v - x.hi);           /* exact: v + rest = hi + lo */
    u128 b = bits_of(v);
    bool sign = (b >> 127) != 0;
    unsigned e = (unsigned)(b >> 112) & 0x7fff;
    u128 frac = b & (((u128)1 << 112) - 1);
    struct sf_env env = {rc & 3, 64, 0, false, false, false};
    struct sf80 r;
    if (e == 0x7fff) {
        r = (struct sf80){1ULL << 63, (uint16_t)((sign ? 0x8000u : 0) | 0x7fff)};
    } else if (e == 0 && frac == 0) {
        /* An exact zero, or a value below binary128's range: the least possible magnitude
         * stands for it (rounds to zero or the least denormal by rc, with UE and PE). */
        if (inexact && rest != 0)
            sign = q_signbit(rest);
        r = inexact ? sf80_round_pack(&env, sign, -20000, (u128)1 << 127)
                    : (struct sf80){0, (uint16_t)(sign ? 0x8000u : 0)};
    } else {
        /* m's bit 2 weighs 2^(max(e, 1) - 16383 - 112); round_pack wants bit 127's. Bits 0-1
         * say whether the value is a little above or below |v|. */
        u128 m = (e ? frac | (u128)1 << 112 : frac) << 2;
        if (inexact && rest != 0)
            m = q_signbit(rest) == sign ? m + 1 : m - 1;
        r = sf80_round_pack(&env, sign, (int32_t)(e ? e : 1) - 16383 - 112 + 127 - 2, m);
    }
    if (inexact && !(env.exc & SF_PE))
        env.exc |= SF_PE | ((r.sexp & 0x7fff) == 0 ? SF_UE : 0);
    *exc |= env.exc & ~SF_DE;
    return r;
}

static struct sf80 narrow(q128 v, bool inexact, unsigned rc, unsigned *exc)
{
    return narrow_qq(qq1(v), inexact, rc, exc);
}

static struct sf80 overflow(bool sign, unsigned rc, unsigned *exc)
{
    struct sf_env env = {rc & 3, 64, 0, false, false, false};
    struct sf80 r = sf80_round_pack(&env, sign, 20000, (u128)1 << 127);
    *exc |= env.exc & ~SF_DE;
    return r;
}

static struct sf80 invalid(unsigned *exc)
{
    *exc |= SF_IE;
    return sf80_default_nan();
}

/* sum c[i] z^i for i < n, Horner (c[0] the constant term) */
static q128 horner(const struct qbits *c, unsigned n, q128 z)
{
    q128 p = qk(c[n - 1]);
    for (unsigned i = n - 1; i-- > 0;)
        p = p * z + qk(c[i]);
    return p;
}

/* --- sin, cos, tan --------------------------------------------------------------------------- */

/* sin r and cos r for |r| <= pi/4 (a little more is fine): Taylor series to r^31 and r^32,
 * below 2^-116 relative there; the first term apart (hi). */
static struct qq sin_kernel(q128 r)
{
    q128 z = r * r;
    return (struct qq){r, r * z * horner(q_sin, 15, z)};
}

static struct qq cos_kernel(q128 r)
{
    q128 z = r * r;
    return (struct qq){1, z * horner(q_cos, 16, z)};
}

/* x = n * pi/2 + r, |r| <= ~pi/4, for |x| < 2^63: n * piece is exact (n < 2^63, pieces of 48
 * bits), the first two subtractions are exact (the difference fits 113 bits), the rest round
 * relative to the remainder itself: about 2^-111 relative even where x is close to a
 * multiple of pi/2. Returns n mod 4. */
static unsigned reduce(q128 x, q128 *r)
{
    q128 n = q_rint(x * misc(M_2_PI));
    q128 v = x;
    for (unsigned i = 0; i < 5; i++)
        v = v - n * qk(q_pio2_pieces[i]);
    *r = v;
    int64_t ni = (int64_t)n;
    return (unsigned)ni & 3;
}

static struct qq trig(unsigned op, q128 x)
{
    q128 r;
    unsigned quad = reduce(x, &r);
    if (op == 0x2) { /* tan = sin / cos, or -cos / sin in the odd quadrants */
        if (!(quad & 1) && q_abs(r) < pow2(-30)) /* r + r^3/3, the next term below 2^-120 */
            return (struct qq){r, r * (r * r) / 3};
        struct qq sq = sin_kernel(r), cq = cos_kernel(r);
        q128 sv = sq.hi + sq.lo, cv = cq.hi + cq.lo;
        return qq1(quad & 1 ? -cv / sv : sv / cv);
    }
    if (op == 0xf)
        quad++; /* cos x = sin(x + pi/2) */
    struct qq v = quad & 1 ? cos_kernel(r) : sin_kernel(r);
    return quad & 2 ? qq_neg(v) : v;
}

/* --- 2^x - 1 -----------------------------------------------------------------------------------
 */

/* e^t - 1 for |t| <= ln 2 / 2 (and tiny t): Taylor to t^12 at t / 256, then 8 doublings of
 * e^2u - 1 = (e^u - 1)(e^u + 1). */
static q128 expm1_kernel(q128 t)
{
    if (q_abs(t) < pow2(-60))
        return t + t * t / 2;
    q128 u = t * pow2(-8);
    q128 p = u + u * u * horner(q_exp, 11, u);
    for (unsigned i = 0; i < 8; i++)
        p = p * (p + 2);
    return p;
}

static struct sf80 f2xm1(struct sf80 a, unsigned rc, unsigned *exc)
{
    q128 x = widen(a);
    if (sf80_is_inf(a)) /* outside the documented -1..+1: the limits */
        return narrow(q_signbit(x) ? -1 : x, false, rc, exc);
    if (sf80_is_zero(a))
        return a; /* 2^+-0 - 1 = +-0 */
    if (x > 16384)
        return overflow(false, rc, exc);
    if (x < -200) /* -1 + 2^x: -1 to far more than 113 bits */
        return narrow(-1, true, rc, exc);
    q128 k = q_rint(x), f = x - k; /* exact: x has 64 significant bits */
    q128 em = expm1_kernel(f * misc(M_LN2));
    bool exact = f == 0;
    if (k == 0)
        return narrow(em, !exact, rc, exc);
    int ki = (int)(int64_t)k;
    q128 scaled = ki > 16383 ? (em + 1) * pow2(ki - 1) * 2 : (em + 1) * pow2(ki);
    return narrow(scaled - 1, !exact, rc, exc);
}

/* --- logarithms ---------------------------------------------------------------------------- */

static q128 q_inf(bool neg)
{
    return of_bits((u128)neg << 127 | (u128)0x7fff << 112);
}

/* log2((1 + s) / (1 - s)) = 2 atanh(s) / ln 2 for |s| <= 3 - 2 sqrt 2: series to s^47, below
 * 2^-116 relative. */
static q128 log2_ratio(q128 s)
{
    q128 z = s * s;
    return misc(M_2_LN2) * (s + s * z * horner(q_odd, 23, z));
}

/* log2 of a finite positive v = 2^e * m, m in [sqrt(1/2), sqrt 2]; *exact when v is a power
 * of two (the result is the integer e). */
static q128 log2_q(q128 v, bool *exact)
{
    u128 b = bits_of(v);
    unsigned field = (unsigned)(b >> 112) & 0x7fff;
    u128 frac = b & (((u128)1 << 112) - 1);
    int e = (int)field - 16383;
    if (field == 0) { /* subnormal (an 80-bit denormal): normalize */
        int top = 111;
        while (!((frac >> top) & 1))
            top--;
        e = top - 16494;
        frac = (frac << (112 - top)) & (((u128)1 << 112) - 1);
    }
    q128 m = of_bits((u128)16383 << 112 | frac);
    if (m * m > 2)
        m = m / 2, e++;
    *exact = m == 1;
    q128 l = *exact ? 0 : log2_ratio((m - 1) / (m + 1)); /* m - 1 exact */
    return (q128)e + l;
}

/* y * log2(x) (FYL2X) or y * log2(1 + x) (FYL2XP1: plus1), x and y not NaN. */
static struct sf80 ylog2(struct sf80 xa, struct sf80 ya, bool plus1, unsigned rc, unsigned *exc)
{
    q128 x = widen(xa), y = widen(ya);
    bool xinf = sf80_is_inf(xa), yinf = sf80_is_inf(ya);
    q128 arg = plus1 && !xinf ? x + 1 : x;
    if (arg < 0)
        return invalid(exc);
    if (arg == 0 || xinf) { /* log2 is -inf (divide by zero) or +inf */
        if (sf80_is_zero(ya))
            return invalid(exc); /* 0 * inf */
        if (!xinf && !yinf)
            *exc |= SF_ZE;
        return narrow(q_inf(xinf == q_signbit(y)), false, rc, exc);
    }
    bool exact;
    q128 l;
    if (plus1 && q_abs(x) < 0.5) { /* (1 + s) / (1 - s) = 1 + x for s = x / (2 + x) */
        exact = sf80_is_zero(xa);
        l = exact ? x : log2_ratio(x / (x + 2));
    } else { /* FYL2XP1 only inside |x| < 1 - sqrt(2)/2 by the manual: 1 + x may round */
        l = log2_q(arg, &exact);
        exact = exact && (!plus1 || arg - 1 == x);
    }
    if (yinf) {
        if (l == 0)
            return invalid(exc); /* inf * 0 */
        return narrow(q_inf(q_signbit(l) != q_signbit(y)), false, rc, exc);
    }
    /* y * l is exact when l is an integer, and zero when y is */
    return narrow(y * l, !exact && !sf80_is_zero(ya), rc, exc);
}

/* --- atan2 ----------------------------------------------------------------------------------- */

/* atan t for 0 <= t <= 1: atan(j/16) + atan u, u = (t - j/16) / (1 + t j/16), |u| <= 1/32:
 * series to u^27, below 2^-116 relative. */
static struct qq atan01(q128 t)
{
    int j = (int)(int64_t)q_rint(t * 16);
    q128 c = (q128)j / 16;
    q128 u = j ? (t - c) / (1 + t * c) : t;
    q128 z = u * u, p = 0;
    for (unsigned k = 13; k > 0; k--) /* sum of (-1)^k z^(k-1) / (2k+1), k = 1..13 */
        p = p * z + (k & 1 ? -qk(q_odd[k - 1]) : qk(q_odd[k - 1]));
    if (!j)
        return (struct qq){u, u * z * p};
    return (struct qq){qk(q_atan16[j - 1]), u + u * z * p};
}

/* The 49 high significant bits of v (Veltkamp's split: v - high is exact). */
static q128 high49(q128 v)
{
    q128 c = v * (pow2(64) + 1);
    return c - (c - v);
}

/* y / x for 0 < y <= x (80-bit values) as hi + lo: the quotient's rounding error from the
 * exact remainder y - q x, with q split into pieces of at most 49 bits so that each
 * piece * x (64 bits) is exact. */
static struct qq divide(q128 y, q128 x)
{
    q128 q = y / x;
    q128 q1 = high49(q), rest = q - q1;
    q128 q2 = high49(rest), q3 = rest - q2;
    q128 rem = ((y - q1 * x) - q2 * x) - q3 * x;
    return (struct qq){q, rem / x};
}

/* atan2(y, x) for x, y not NaN (FPATAN: y is ST(1), x ST(0)); the special values are C99's
 * and the x87's. */
static struct sf80 fpatan(struct sf80 xa, struct sf80 ya, unsigned rc, unsigned *exc)
{
    q128 x = widen(xa), y = widen(ya);
    bool sy = q_signbit(y), sx = q_signbit(x);
    bool xinf = sf80_is_inf(xa), yinf = sf80_is_inf(ya);
    q128 r;
    if (sf80_is_zero(ya)) {
        if (!sx)
            return narrow(y, false, rc, exc); /* +-0 */
        r = misc(M_PI_Q);
    } else if (yinf) {
        r = xinf ? misc(sx ? M_3PI_4 : M_PI_4) : misc(M_PI_2);
    } else if (xinf) {
        if (!sx)
            return narrow(sy ? -(q128)0 : 0, false, rc, exc);
        r = misc(M_PI_Q);
    } else if (sf80_is_zero(xa)) {
        r = misc(M_PI_2);
    } else {
        q128 ax = q_abs(x), ay = q_abs(y);
        struct qq t = ay <= ax ? divide(ay, ax) : divide(ax, ay);
        struct qq at = atan01(t.hi); /* atan(t + d) = atan t + d / (1 + t^2) */
        at.lo = at.lo + t.lo / (1 + t.hi * t.hi);
        if (ay > ax)
            at = (struct qq){misc(M_PI_2), -(at.hi + at.lo)};
        if (sx)
            at = (struct qq){misc(M_PI_Q), -(at.hi + at.lo)};
        return narrow_qq(sy ? qq_neg(at) : at, true, rc, exc);
    }
    return narrow(sy ? -r : r, true, rc, exc);
}

/* --- the instructions ------------------------------------------------------------------------ */

static bool two_operands(unsigned op)
{
    return op == 0x1 || op == 0x3 || op == 0x9;
}

struct sf80 x87_transcend(unsigned op, struct sf80 a, struct sf80 b, unsigned rc, unsigned *exc)
{
    struct sf_env env = {rc & 3, 64, 0, false, false, false};
    bool two = two_operands(op);
    if (sf80_is_nan(a) || (two && sf80_is_nan(b))) { /* the x87's NaN propagation */
        struct sf80 r = two ? sf80_add(&env, a, b) : sf80_sqrt(&env, a);
        *exc |= env.exc & SF_IE;
        return r;
    }
    /* Unnormals, pseudo-infinities and pseudo-NaNs compare unordered: invalid operands. */
    if (sf80_compare(&env, a, a, true) == SF_UN || (two && sf80_compare(&env, b, b, true) == SF_UN))
        return invalid(exc);
    switch (op) {
    case 0x0:
        return f2xm1(a, rc, exc);
    case 0x1:
        return ylog2(a, b, false, rc, exc);
    case 0x3:
        return fpatan(a, b, rc, exc);
    case 0x9:
        return ylog2(a, b, true, rc, exc);
    case 0x2:
    case 0xe:
    case 0xf:
        break;
    default:
        return invalid(exc);
    }
    if (sf80_is_inf(a))
        return invalid(exc);
    if (sf80_is_zero(a)) /* sin, tan: the zero itself; cos: 1 */
        return op == 0xf ? (struct sf80){1ULL << 63, 0x3fff} : a;
    return narrow_qq(trig(op, widen(a)), true, rc, exc);
}
