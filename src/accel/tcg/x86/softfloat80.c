/* Software x87 extended precision and IEEE binary32/64 arithmetic (see softfloat80.h).
 *
 * Every operation unpacks its operands to sign, exponent and a normalized 64-bit
 * significand, computes the exact result (or a 128-bit one with a sticky bit, which rounds
 * identically), and rounds it once into the destination format: x87 80-bit under precision
 * control, or binary32/64. NaN rules, the default NaN, tininess detection and the flags are
 * the x86 ones (checked against the host x87/SSE by tests/unit/test_softfloat80.c). */
#include "accel/tcg/x86/softfloat80.h"

#include <stddef.h>

typedef unsigned __int128 u128;

enum { C_ZERO, C_NORM, C_INF, C_QNAN, C_SNAN, C_BAD };

/* An unpacked operand: value = m * 2^(exp - 63), m normalized (bit 63) when C_NORM. */
struct unp {
    int cls;
    bool sign, denormal;
    int32_t exp;
    uint64_t m;
};

/* A result before rounding: value = m * 2^(exp - 127), m normalized (bit 127) or zero;
 * bit 0 doubles as a sticky bit for anything below. */
struct unr {
    int cls; /* C_ZERO, C_NORM, C_INF or C_BAD (invalid: the default NaN) */
    bool sign;
    int32_t exp;
    u128 m;
};

/* A destination format: significand bits, normal exponent range. */
struct fmt {
    unsigned prec;
    int32_t emin, emax;
};

static const struct fmt F32 = {24, -126, 127}, F64 = {53, -1022, 1023};

static int clz64(uint64_t v)
{
    return v ? __builtin_clzll(v) : 64;
}

static int clz128(u128 v)
{
    uint64_t hi = (uint64_t)(v >> 64);
    return hi ? __builtin_clzll(hi) : 64 + clz64((uint64_t)v);
}

/* v >> n, ORing every bit shifted out into bit 0. */
static u128 shr_sticky(u128 v, unsigned n)
{
    if (n == 0)
        return v;
    if (n >= 128)
        return v != 0;
    return (v >> n) | ((v & (((u128)1 << n) - 1)) != 0);
}

/* --- rounding -------------------------------------------------------------------------------- */

/* Drop the low `drop` bits (1..127) of m under rc; *carry when the increment overflowed. */
static u128 round_at(u128 m, unsigned drop, unsigned rc, bool sign, bool *inexact, bool *up,
                     bool *carry)
{
    u128 mask = ((u128)1 << drop) - 1, rest = m & mask, kept = m & ~mask, unit = (u128)1 << drop;
    bool inc = false;
    *inexact = rest != 0;
    if (rest) {
        switch (rc & 3) {
        case 0: {
            u128 half = unit >> 1;
            inc = rest > half || (rest == half && (kept & unit));
            break;
        }
        case 1:
            inc = sign;
            break;
        case 2:
            inc = !sign;
            break;
        default:
            break;
        }
    }
    *up = inc;
    *carry = false;
    if (inc) {
        kept += unit;
        *carry = kept == 0;
    }
    return kept;
}

/* The rounded result: r->m holds the significand at bit 127 (bit 127 clear: denormal or
 * zero), r->exp its exponent; r->cls C_INF on overflow to infinity. */
static void round_fmt(struct sf_env *e, struct unr *r, const struct fmt *f)
{
    if (r->cls != C_NORM || r->m == 0) {
        if (r->cls == C_NORM)
            r->cls = C_ZERO;
        return;
    }
    unsigned drop = 128 - f->prec;
    bool inexact, up, carry, tiny = false;
    if (r->exp < f->emin) {
        tiny = true;
        if (r->exp == f->emin - 1) { /* after rounding with an unbounded exponent */
            round_at(r->m, drop, e->rc, r->sign, &inexact, &up, &carry);
            tiny = !carry;
        }
        if (tiny && e->ftz) {
            e->exc |= SF_UE | SF_PE;
            r->cls = C_ZERO;
            r->m = 0;
            return;
        }
        r->m = shr_sticky(r->m, (unsigned)(f->emin - r->exp));
        r->exp = f->emin;
    }
    r->m = round_at(r->m, drop, e->rc, r->sign, &inexact, &up, &carry);
    if (carry) {
        r->m = (u128)1 << 127;
        r->exp++;
    }
    e->c1 = up;
    if (inexact) {
        e->exc |= SF_PE;
        if (tiny)
            e->exc |= SF_UE;
    }
    if (r->exp > f->emax) {
        e->exc |= SF_OE | SF_PE;
        bool to_inf =
            (e->rc & 3) == 0 || ((e->rc & 3) == 1 && r->sign) || ((e->rc & 3) == 2 && !r->sign);
        e->c1 = to_inf;
        if (to_inf) {
            r->cls = C_INF;
        } else {
            r->exp = f->emax;
            r->m = ~(u128)0 << drop;
        }
        return;
    }
    if (r->m == 0)
        r->cls = C_ZERO;
}

static struct sf80 make80(bool sign, unsigned exp, uint64_t mant)
{
    return (struct sf80){mant, (uint16_t)((sign ? 0x8000u : 0) | (exp & 0x7fff))};
}

struct sf80 sf80_default_nan(void)
{
    return make80(true, 0x7fff, 0xc000000000000000ULL);
}

static struct sf80 pack80(struct sf_env *e, struct unr r)
{
    static const struct fmt f80[3] = {
        {24, -16382, 16383}, {53, -16382, 16383}, {64, -16382, 16383}};
    if (r.cls == C_BAD) {
        e->exc |= SF_IE;
        return sf80_default_nan();
    }
    round_fmt(e, &r, &f80[e->prec == 24 ? 0 : e->prec == 53 ? 1 : 2]);
    if (r.cls == C_INF)
        return make80(r.sign, 0x7fff, 1ULL << 63);
    if (r.cls == C_ZERO)
        return make80(r.sign, 0, 0);
    uint64_t mant = (uint64_t)(r.m >> 64);
    return make80(r.sign, (mant >> 63) ? (unsigned)(r.exp + 16383) : 0, mant);
}

struct sf80 sf80_round_pack(struct sf_env *e, bool sign, int32_t exp, unsigned __int128 m)
{
    if (m == 0)
        return make80(sign, 0, 0);
    int s = clz128(m);
    return pack80(e, (struct unr){C_NORM, sign, exp - s, m << s});
}

/* --- unpacking ------------------------------------------------------------------------------- */

static struct unp unpack80(struct sf80 a)
{
    struct unp u = {C_NORM, (a.sexp >> 15) != 0, false, (int32_t)(a.sexp & 0x7fff) - 16383, a.mant};
    unsigned e = a.sexp & 0x7fff;
    if (e == 0x7fff) {
        if (!(a.mant >> 63))
            u.cls = C_BAD; /* pseudo-infinity / pseudo-NaN */
        else if ((a.mant << 1) == 0)
            u.cls = C_INF;
        else
            u.cls = (a.mant >> 62) & 1 ? C_QNAN : C_SNAN;
    } else if (e == 0) {
        if (a.mant == 0) {
            u.cls = C_ZERO;
        } else { /* denormal or pseudo-denormal: exponent -16382 */
            int s = clz64(a.mant);
            u.denormal = true;
            u.m = a.mant << s;
            u.exp = -16382 - s;
        }
    } else if (!(a.mant >> 63)) {
        u.cls = C_BAD; /* unnormal */
    }
    return u;
}

bool sf80_is_nan(struct sf80 a)
{
    return (a.sexp & 0x7fff) == 0x7fff && (a.mant << 1) != 0;
}

bool sf80_is_snan(struct sf80 a)
{
    return unpack80(a).cls == C_SNAN;
}

bool sf80_is_inf(struct sf80 a)
{
    return (a.sexp & 0x7fff) == 0x7fff && a.mant == 1ULL << 63;
}

bool sf80_is_zero(struct sf80 a)
{
    return (a.sexp & 0x7fff) == 0 && a.mant == 0;
}

static bool is_nan_cls(int c)
{
    return c == C_QNAN || c == C_SNAN;
}

/* x87 NaN operands: SNaN raises IE; of two NaNs the larger significand wins (a QNaN over an
 * SNaN), equal ones the positive; the result is quiet. */
static struct sf80 nan80(struct sf_env *e, struct sf80 a, struct unp ua, struct sf80 b,
                         struct unp ub)
{
    const uint64_t q = 1ULL << 62;
    if (ua.cls == C_SNAN || ub.cls == C_SNAN)
        e->exc |= SF_IE;
    struct sf80 r;
    if (is_nan_cls(ua.cls) && is_nan_cls(ub.cls)) {
        if (ua.cls != ub.cls)
            r = ua.cls == C_QNAN ? a : b;
        else if ((a.mant & ~q) != (b.mant & ~q))
            r = (a.mant & ~q) > (b.mant & ~q) ? a : b;
        else
            r = a.sexp <= b.sexp ? a : b;
    } else {
        r = is_nan_cls(ua.cls) ? a : b;
    }
    r.mant |= q;
    return r;
}

/* --- exact cores on unpacked finite non-zero operands ---------------------------------------- */

static struct unr norm(bool sign, int32_t exp, u128 m)
{
    if (m == 0)
        return (struct unr){C_ZERO, sign, 0, 0};
    int s = clz128(m);
    return (struct unr){C_NORM, sign, exp - s, m << s};
}

/* a + b for finite operands (zeros included); exact zero sums are +0 but -0 rounding down. */
static struct unr core_add(unsigned rc, struct unp a, struct unp b)
{
    if (a.cls == C_ZERO && b.cls == C_ZERO)
        return (struct unr){C_ZERO, a.sign == b.sign ? a.sign : (rc & 3) == 1, 0, 0};
    if (a.cls == C_ZERO)
        return norm(b.sign, b.exp, (u128)b.m << 64);
    if (b.cls == C_ZERO)
        return norm(a.sign, a.exp, (u128)a.m << 64);
    if (a.exp < b.exp || (a.exp == b.exp && a.m < b.m)) {
        struct unp t = a;
        a = b, b = t;
    }
    u128 ma = (u128)a.m << 64, mb = shr_sticky((u128)b.m << 64, (unsigned)(a.exp - b.exp));
    if (a.sign == b.sign) {
        u128 s = ma + mb;
        if (s < ma) /* carry out of bit 127 */
            return (struct unr){C_NORM, a.sign, a.exp + 1, (s >> 1) | (s & 1) | (u128)1 << 127};
        return norm(a.sign, a.exp, s);
    }
    u128 d = ma - mb;
    if (d == 0)
        return (struct unr){C_ZERO, (rc & 3) == 1, 0, 0};
    return norm(a.sign, a.exp, d);
}

static struct unr core_mul(struct unp a, struct unp b)
{
    bool sign = a.sign != b.sign;
    if (a.cls == C_ZERO || b.cls == C_ZERO)
        return (struct unr){C_ZERO, sign, 0, 0};
    return norm(sign, a.exp + b.exp + 1, (u128)a.m * b.m);
}

static struct unr core_div(struct unp a, struct unp b)
{
    bool sign = a.sign != b.sign;
    if (a.cls == C_ZERO)
        return (struct unr){C_ZERO, sign, 0, 0};
    u128 n = (u128)a.m << 64, q1 = n / b.m, r1 = n % b.m;
    u128 n2 = r1 << 64, q2 = n2 / b.m, r2 = n2 % b.m;
    /* a/b = (q1 * 2^64 + q2 + r2/b) * 2^-128 * 2^(ea-eb), q1 in (2^63, 2^65) */
    if (q1 >> 64) {
        u128 q = (q1 << 63) | (q2 >> 1) | (q2 & 1) | (r2 != 0);
        return (struct unr){C_NORM, sign, a.exp - b.exp, q};
    }
    return (struct unr){C_NORM, sign, a.exp - b.exp - 1, (q1 << 64) | q2 | (r2 != 0)};
}

static struct unr core_sqrt(struct unp a)
{
    if (a.cls == C_ZERO)
        return (struct unr){C_ZERO, a.sign, 0, 0};
    bool odd = (a.exp & 1) != 0;
    u128 rad = (u128)a.m << (odd ? 64 : 63), rem = 0, root = 0;
    for (int i = 0; i < 64; i++) {
        root <<= 1;
        rem = (rem << 2) | (rad >> 126);
        rad <<= 2;
        u128 t = (root << 1) | 1;
        if (rem >= t) {
            rem -= t;
            root |= 1;
        }
    }
    /* The exact root is never a midpoint: rem > root means above root + 1/2. */
    u128 lo = rem > root ? ((u128)1 << 63) | 1 : rem != 0;
    int32_t exp = odd ? (a.exp - 1) / 2 : a.exp / 2; /* exact: both even */
    return (struct unr){C_NORM, false, exp, (root << 64) | lo};
}

/* --- x87 operations -------------------------------------------------------------------------- */

static void flag_denormals(struct sf_env *e, struct unp a, struct unp b)
{
    if ((a.cls == C_NORM && a.denormal) || (b.cls == C_NORM && b.denormal))
        e->exc |= SF_DE;
}

/* Shared operand screening of the two-operand x87 operations: true when *out is the result. */
static bool special80(struct sf_env *e, struct sf80 a, struct unp ua, struct sf80 b, struct unp ub,
                      struct sf80 *out)
{
    if (ua.cls == C_BAD || ub.cls == C_BAD) {
        e->exc |= SF_IE;
        *out = sf80_default_nan();
        return true;
    }
    if (is_nan_cls(ua.cls) || is_nan_cls(ub.cls)) {
        *out = nan80(e, a, ua, b, ub);
        return true;
    }
    return false; /* DE is raised only when a result is computed (not for IE or ZE) */
}

static struct sf80 invalid80(struct sf_env *e)
{
    e->exc |= SF_IE;
    return sf80_default_nan();
}

static struct sf80 addsub80_op(struct sf_env *e, struct sf80 a, struct sf80 b, bool negb)
{
    struct unp ua = unpack80(a), ub = unpack80(b);
    struct sf80 r;
    if (special80(e, a, ua, b, ub, &r))
        return r;
    ub.sign ^= negb;
    if (ua.cls == C_INF || ub.cls == C_INF) {
        if (ua.cls == C_INF && ub.cls == C_INF && ua.sign != ub.sign)
            return invalid80(e);
        return make80(ua.cls == C_INF ? ua.sign : ub.sign, 0x7fff, 1ULL << 63);
    }
    return pack80(e, core_add(e->rc, ua, ub));
}

static struct sf80 mul80_op(struct sf_env *e, struct sf80 a, struct sf80 b)
{
    struct unp ua = unpack80(a), ub = unpack80(b);
    struct sf80 r;
    if (special80(e, a, ua, b, ub, &r))
        return r;
    bool sign = ua.sign != ub.sign;
    if (ua.cls == C_INF || ub.cls == C_INF) {
        if (ua.cls == C_ZERO || ub.cls == C_ZERO)
            return invalid80(e);
        return make80(sign, 0x7fff, 1ULL << 63);
    }
    return pack80(e, core_mul(ua, ub));
}

static struct sf80 div80_op(struct sf_env *e, struct sf80 a, struct sf80 b)
{
    struct unp ua = unpack80(a), ub = unpack80(b);
    struct sf80 r;
    if (special80(e, a, ua, b, ub, &r))
        return r;
    bool sign = ua.sign != ub.sign;
    if (ua.cls == C_INF)
        return ub.cls == C_INF ? invalid80(e) : make80(sign, 0x7fff, 1ULL << 63);
    if (ub.cls == C_INF)
        return make80(sign, 0, 0);
    if (ub.cls == C_ZERO) {
        if (ua.cls == C_ZERO)
            return invalid80(e);
        e->exc |= SF_ZE;
        return make80(sign, 0x7fff, 1ULL << 63);
    }
    return pack80(e, core_div(ua, ub));
}

/* DE for a denormal operand of an operation that computed a result: not with a NaN operand,
 * an invalid operation or a division by zero (as the x87 reports it). */
static struct sf80 with_de(struct sf_env *e, struct sf80 a, struct sf80 b, int kind)
{
    unsigned before = e->exc;
    e->exc = 0;
    struct sf80 r = kind == 0   ? addsub80_op(e, a, b, false)
                    : kind == 1 ? addsub80_op(e, a, b, true)
                    : kind == 2 ? mul80_op(e, a, b)
                                : div80_op(e, a, b);
    struct unp ua = unpack80(a), ub = unpack80(b);
    if (!(e->exc & (SF_IE | SF_ZE)) && !is_nan_cls(ua.cls) && !is_nan_cls(ub.cls))
        flag_denormals(e, ua, ub);
    e->exc |= before;
    return r;
}

struct sf80 sf80_add(struct sf_env *e, struct sf80 a, struct sf80 b)
{
    return with_de(e, a, b, 0);
}

struct sf80 sf80_sub(struct sf_env *e, struct sf80 a, struct sf80 b)
{
    return with_de(e, a, b, 1);
}

struct sf80 sf80_mul(struct sf_env *e, struct sf80 a, struct sf80 b)
{
    return with_de(e, a, b, 2);
}

struct sf80 sf80_div(struct sf_env *e, struct sf80 a, struct sf80 b)
{
    return with_de(e, a, b, 3);
}

struct sf80 sf80_arith(struct sf_env *e, unsigned op, struct sf80 a, struct sf80 b)
{
    switch (op) {
    case 0:
        return sf80_add(e, a, b);
    case 1:
        return sf80_mul(e, a, b);
    case 4:
        return sf80_sub(e, a, b);
    case 5:
        return sf80_sub(e, b, a);
    case 6:
        return sf80_div(e, a, b);
    default:
        return sf80_div(e, b, a);
    }
}

/* One-operand screening: NaN quieted (IE for SNaN), invalid encodings. */
static bool special80_1(struct sf_env *e, struct sf80 a, struct unp ua, struct sf80 *out)
{
    if (ua.cls == C_BAD) {
        *out = invalid80(e);
        return true;
    }
    if (is_nan_cls(ua.cls)) {
        if (ua.cls == C_SNAN)
            e->exc |= SF_IE;
        a.mant |= 1ULL << 62;
        *out = a;
        return true;
    }
    return false;
}

struct sf80 sf80_sqrt(struct sf_env *e, struct sf80 a)
{
    struct unp ua = unpack80(a);
    struct sf80 r;
    if (special80_1(e, a, ua, &r))
        return r;
    if (ua.cls == C_ZERO)
        return a;
    if (ua.sign)
        return invalid80(e);
    if (ua.cls == C_INF)
        return a;
    flag_denormals(e, ua, ua);
    return pack80(e, core_sqrt(ua));
}

/* |a| rounded to an integer under rc: the magnitude (up to 2^64) and whether inexact. */
static u128 round_magnitude(struct sf_env *e, struct unp ua, bool *inexact)
{
    bool up, carry;
    *inexact = false;
    if (ua.cls == C_ZERO)
        return 0;
    if (ua.exp >= 63)
        return (u128)ua.m << (ua.exp - 63 > 64 ? 64 : ua.exp - 63);
    /* Fixed point with 64 fraction bits. */
    u128 f = shr_sticky((u128)ua.m << 64, (unsigned)(63 - ua.exp));
    u128 r = round_at(f, 64, e->rc, ua.sign, inexact, &up, &carry);
    e->c1 = up;
    return carry ? (u128)1 << 64 : r >> 64;
}

struct sf80 sf80_round_int(struct sf_env *e, struct sf80 a)
{
    struct unp ua = unpack80(a);
    struct sf80 r;
    if (special80_1(e, a, ua, &r))
        return r;
    if (ua.cls == C_NORM && ua.denormal)
        e->exc |= SF_DE;
    if (ua.cls == C_INF || ua.cls == C_ZERO || ua.exp >= 63)
        return a;
    bool inexact;
    u128 m = round_magnitude(e, ua, &inexact);
    if (inexact)
        e->exc |= SF_PE;
    if (m == 0)
        return make80(ua.sign, 0, 0);
    int s = clz128(m);
    return make80(ua.sign, (unsigned)(127 - s + 16383), (uint64_t)((m << s) >> 64));
}

int64_t sf80_to_int(struct sf_env *e, struct sf80 a, unsigned bits)
{
    struct unp ua = unpack80(a);
    int64_t indefinite = INT64_MIN >> (64 - bits); /* 0x8000 / 0x80000000 sign-extended */
    if (ua.cls == C_BAD || ua.cls == C_INF || is_nan_cls(ua.cls)) {
        e->exc |= SF_IE;
        return indefinite;
    }
    bool inexact; /* no DE: FIST does not report denormal operands */
    u128 m = ua.exp >= 64 ? (u128)1 << 64 : round_magnitude(e, ua, &inexact);
    u128 lim = (u128)1 << (bits - 1);
    if (ua.exp >= 64 || m > lim || (m == lim && !ua.sign)) {
        e->exc |= SF_IE;
        return indefinite;
    }
    if (inexact)
        e->exc |= SF_PE;
    return ua.sign ? (int64_t)(0 - (uint64_t)m) : (int64_t)(uint64_t)m;
}

/* Order of two screened operands (NaN and invalid encodings give SF_UN with IE as x86 does:
 * always when signaling, only for SNaN when quiet). */
static int compare_unp(struct sf_env *e, struct unp ua, struct unp ub, bool quiet)
{
    if (ua.cls == C_BAD || ub.cls == C_BAD) {
        e->exc |= SF_IE;
        return SF_UN;
    }
    if (is_nan_cls(ua.cls) || is_nan_cls(ub.cls)) {
        if (!quiet || ua.cls == C_SNAN || ub.cls == C_SNAN)
            e->exc |= SF_IE;
        return SF_UN;
    }
    flag_denormals(e, ua, ub);
    int sa = ua.cls == C_ZERO ? 0 : ua.sign ? -1 : 1, sb = ub.cls == C_ZERO ? 0 : ub.sign ? -1 : 1;
    if (sa != sb)
        return sa < sb ? SF_LT : SF_GT;
    if (sa == 0)
        return SF_EQ;
    int mag; /* |a| vs |b| */
    if (ua.cls != ub.cls)
        mag = ua.cls == C_INF ? 1 : -1;
    else if (ua.cls == C_INF || (ua.exp == ub.exp && ua.m == ub.m))
        mag = 0;
    else if (ua.exp != ub.exp)
        mag = ua.exp > ub.exp ? 1 : -1;
    else
        mag = ua.m > ub.m ? 1 : -1;
    if (mag == 0)
        return SF_EQ;
    return (mag > 0) != (sa < 0) ? SF_GT : SF_LT;
}

int sf80_compare(struct sf_env *e, struct sf80 a, struct sf80 b, bool quiet)
{
    return compare_unp(e, unpack80(a), unpack80(b), quiet);
}

struct sf80 sf80_from_int(int64_t v)
{
    if (v == 0)
        return make80(false, 0, 0);
    uint64_t m = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    int s = clz64(m);
    return make80(v < 0, (unsigned)(63 - s + 16383), m << s);
}

/* --- IEEE binary32 / binary64 ---------------------------------------------------------------- */

static unsigned ieee_fbits(bool dbl)
{
    return dbl ? 52 : 23;
}

static struct unp unpack_ieee(uint64_t v, bool dbl)
{
    unsigned fb = ieee_fbits(dbl), eb = dbl ? 11 : 8;
    int32_t bias = dbl ? 1023 : 127;
    uint64_t frac = v & ((1ULL << fb) - 1);
    unsigned e = (unsigned)(v >> fb) & ((1u << eb) - 1);
    struct unp u = {C_NORM, ((v >> (fb + eb)) & 1) != 0, false, (int32_t)e - bias,
                    (frac << (63 - fb)) | 1ULL << 63};
    if (e == (1u << eb) - 1) {
        u.cls = frac == 0 ? C_INF : (frac >> (fb - 1)) & 1 ? C_QNAN : C_SNAN;
    } else if (e == 0) {
        if (frac == 0) {
            u.cls = C_ZERO;
        } else {
            int s = clz64(frac << (63 - fb));
            u.denormal = true;
            u.m = (frac << (63 - fb)) << s;
            u.exp = 1 - bias - s;
        }
    }
    return u;
}

static uint64_t ieee_make(bool sign, unsigned biased, uint64_t frac, bool dbl)
{
    unsigned fb = ieee_fbits(dbl), eb = dbl ? 11 : 8;
    return (uint64_t)sign << (fb + eb) | (uint64_t)biased << fb | frac;
}

static uint64_t ieee_default_nan(bool dbl)
{
    return dbl ? 0xfff8000000000000ULL : 0xffc00000ULL;
}

static uint64_t pack_ieee(struct sf_env *e, struct unr r, bool dbl)
{
    const struct fmt *f = dbl ? &F64 : &F32;
    unsigned fb = ieee_fbits(dbl), emax_biased = dbl ? 2047 : 255;
    if (r.cls == C_BAD) {
        e->exc |= SF_IE;
        return ieee_default_nan(dbl);
    }
    round_fmt(e, &r, f);
    if (r.cls == C_INF)
        return ieee_make(r.sign, emax_biased, 0, dbl);
    if (r.cls == C_ZERO)
        return ieee_make(r.sign, 0, 0, dbl);
    uint64_t top = (uint64_t)(r.m >> (128 - f->prec));
    unsigned biased = (top >> fb) & 1 ? (unsigned)(r.exp + f->emax) : 0;
    return ieee_make(r.sign, biased, top & ((1ULL << fb) - 1), dbl);
}

/* The unrounded result of an SSE operation on screened operands (no NaN). */
static struct unr ieee_core(struct sf_env *e, unsigned op, struct unp a, struct unp b)
{
    struct unr bad = {C_BAD, false, 0, 0};
    bool sign = a.sign != b.sign;
    switch (op) {
    case 0:
    case 1:
        if (op == 1)
            b.sign = !b.sign;
        if (a.cls == C_INF || b.cls == C_INF) {
            if (a.cls == C_INF && b.cls == C_INF && a.sign != b.sign)
                return bad;
            return (struct unr){C_INF, a.cls == C_INF ? a.sign : b.sign, 0, 0};
        }
        return core_add(e->rc, a, b);
    case 2:
        if (a.cls == C_INF || b.cls == C_INF)
            return a.cls == C_ZERO || b.cls == C_ZERO ? bad : (struct unr){C_INF, sign, 0, 0};
        return core_mul(a, b);
    case 3:
        if (a.cls == C_INF)
            return b.cls == C_INF ? bad : (struct unr){C_INF, sign, 0, 0};
        if (b.cls == C_INF)
            return (struct unr){C_ZERO, sign, 0, 0};
        if (b.cls == C_ZERO) {
            if (a.cls == C_ZERO)
                return bad;
            e->exc |= SF_ZE;
            return (struct unr){C_INF, sign, 0, 0};
        }
        return core_div(a, b);
    default:
        if (b.cls == C_ZERO)
            return (struct unr){C_ZERO, b.sign, 0, 0};
        if (b.sign)
            return bad;
        if (b.cls == C_INF)
            return (struct unr){C_INF, false, 0, 0};
        return core_sqrt(b);
    }
}

/* DAZ: a denormal input reads as a zero of its sign. */
static struct unp daz_in(const struct sf_env *e, struct unp u)
{
    if (e->daz && u.cls == C_NORM && u.denormal) {
        u.cls = C_ZERO;
        u.denormal = false;
    }
    return u;
}

uint64_t sf_ieee_arith(struct sf_env *e, unsigned op, uint64_t a, uint64_t b, bool dbl)
{
    uint64_t quiet = 1ULL << (ieee_fbits(dbl) - 1);
    struct unp ua = daz_in(e, unpack_ieee(a, dbl)), ub = daz_in(e, unpack_ieee(b, dbl));
    if (op == 4) { /* SQRT: of b alone */
        ua.cls = C_ZERO;
        ua.denormal = false;
    }
    bool an = is_nan_cls(ua.cls), bn = is_nan_cls(ub.cls);
    if (an || bn) {
        if (ua.cls == C_SNAN || ub.cls == C_SNAN)
            e->exc |= SF_IE;
        return (an ? a : b) | quiet;
    }
    unsigned before = e->exc;
    struct unr r = ieee_core(e, op, ua, ub);
    if (r.cls != C_BAD && !((e->exc & ~before) & SF_ZE))
        flag_denormals(e, ua, ub);
    return pack_ieee(e, r, dbl);
}

uint64_t sf_ieee_convert(struct sf_env *e, uint64_t v, bool to_dbl)
{
    bool from_dbl = !to_dbl;
    struct unp u = daz_in(e, unpack_ieee(v, from_dbl));
    if (is_nan_cls(u.cls)) {
        if (u.cls == C_SNAN)
            e->exc |= SF_IE;
        uint64_t payload = (u.m << 1) | 1ULL << 63; /* quiet, top bits aligned at 63 */
        if (to_dbl)
            return ieee_make(u.sign, 2047, payload >> 12, true);
        return ieee_make(u.sign, 255, payload >> 41, false);
    }
    flag_denormals(e, u, u);
    if (u.cls == C_INF)
        return ieee_make(u.sign, to_dbl ? 2047 : 255, 0, to_dbl);
    return pack_ieee(e, (struct unr){u.cls, u.sign, u.exp, (u128)u.m << 64}, to_dbl);
}

uint64_t sf_ieee_from_int(struct sf_env *e, int64_t v, bool dbl)
{
    if (v == 0)
        return 0;
    uint64_t m = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    int s = clz64(m);
    struct unr r = {C_NORM, v < 0, 63 - s, (u128)(m << s) << 64};
    return pack_ieee(e, r, dbl);
}

uint64_t sf_ieee_to_int(struct sf_env *e, uint64_t v, bool dbl, unsigned bits, bool chop)
{
    struct unp u = daz_in(e, unpack_ieee(v, dbl));
    uint64_t indefinite = 1ULL << (bits - 1);
    if (u.cls == C_INF || is_nan_cls(u.cls)) {
        e->exc |= SF_IE;
        return indefinite;
    }
    unsigned rc = e->rc; /* no DE, as CVT(T)SS/SD2SI */
    if (chop)
        e->rc = 3;
    bool inexact = false;
    u128 m = u.cls == C_ZERO ? 0 : u.exp >= 64 ? (u128)1 << 64 : round_magnitude(e, u, &inexact);
    e->rc = rc;
    u128 lim = (u128)1 << (bits - 1);
    if (m > lim || (m == lim && !u.sign)) {
        e->exc |= SF_IE;
        return indefinite;
    }
    if (inexact)
        e->exc |= SF_PE;
    uint64_t r = u.sign ? 0 - (uint64_t)m : (uint64_t)m;
    return bits == 64 ? r : (r & 0xffffffffULL);
}

/* --- conversions between 80-bit and binary32/64 ---------------------------------------------- */

static struct sf80 from_ieee(struct sf_env *e, uint64_t v, bool dbl)
{
    struct unp u = unpack_ieee(v, dbl);
    switch (u.cls) {
    case C_ZERO:
        return make80(u.sign, 0, 0);
    case C_INF:
        return make80(u.sign, 0x7fff, 1ULL << 63);
    case C_SNAN:
        e->exc |= SF_IE;
        /* fall through */
    case C_QNAN:
        return make80(u.sign, 0x7fff, u.m | 1ULL << 62);
    default:
        if (u.denormal)
            e->exc |= SF_DE;
        return make80(u.sign, (unsigned)(u.exp + 16383), u.m);
    }
}

struct sf80 sf80_from_f32(struct sf_env *e, uint32_t v)
{
    return from_ieee(e, v, false);
}

struct sf80 sf80_from_f64(struct sf_env *e, uint64_t v)
{
    return from_ieee(e, v, true);
}

static uint64_t to_ieee(struct sf_env *e, struct sf80 a, bool dbl)
{
    struct unp u = unpack80(a);
    unsigned fb = ieee_fbits(dbl), emax_biased = dbl ? 2047 : 255;
    switch (u.cls) {
    case C_BAD:
        e->exc |= SF_IE;
        return ieee_default_nan(dbl);
    case C_ZERO:
        return ieee_make(u.sign, 0, 0, dbl);
    case C_INF:
        return ieee_make(u.sign, emax_biased, 0, dbl);
    case C_SNAN:
    case C_QNAN:
        if (u.cls == C_SNAN)
            e->exc |= SF_IE;
        return ieee_make(u.sign, emax_biased,
                         ((a.mant | 1ULL << 62) >> (63 - fb)) & ((1ULL << fb) - 1), dbl);
    default: /* no DE: FST does not report a denormal source */
        return pack_ieee(e, (struct unr){C_NORM, u.sign, u.exp, (u128)u.m << 64}, dbl);
    }
}

uint32_t sf80_to_f32(struct sf_env *e, struct sf80 a)
{
    return (uint32_t)to_ieee(e, a, false);
}

uint64_t sf80_to_f64(struct sf_env *e, struct sf80 a)
{
    return to_ieee(e, a, true);
}

/* --- scaling and remainders ------------------------------------------------------------------ */

struct sf80 sf80_scalbn(struct sf_env *e, struct sf80 a, int n)
{
    struct unp ua = unpack80(a);
    struct sf80 r;
    if (special80_1(e, a, ua, &r))
        return r;
    if (ua.cls != C_NORM)
        return a;
    n = n > 65536 ? 65536 : n < -65536 ? -65536 : n;
    return pack80(e, (struct unr){C_NORM, ua.sign, ua.exp + n, (u128)ua.m << 64});
}

int sf80_ilogb(struct sf80 a)
{
    return unpack80(a).exp;
}

struct sf80 sf80_rem(struct sf_env *e, struct sf80 a, struct sf80 b, bool nearest, uint64_t *q)
{
    struct unp ua = unpack80(a), ub = unpack80(b);
    *q = 0;
    if (ua.cls != C_NORM)
        return a;
    int32_t d = ua.exp - ub.exp, base = ub.exp;
    u128 x = ua.m, y = ub.m;
    uint64_t quo = 0;
    if (d < 0) {
        if (!nearest || d < -1)
            return a;
        base = ua.exp; /* |a| >= |b| / 2 is possible: b is 2y at a's scale */
        y <<= 1;
    } else {
        for (int32_t i = 0; i < d; i++) {
            if (x >= y) {
                x -= y;
                quo |= 1;
            }
            x <<= 1;
            quo <<= 1;
        }
        if (x >= y) {
            x -= y;
            quo |= 1;
        }
    }
    bool sign = ua.sign;
    if (nearest && (2 * x > y || (2 * x == y && (quo & 1)))) {
        x = y - x;
        sign = !sign;
        quo++;
    }
    *q = quo;
    if (x == 0)
        return make80(ua.sign, 0, 0);
    struct sf_env exact = {e->rc, 64, 0, false, false, false};
    struct sf80 r = sf80_round_pack(&exact, sign, base, x << 64);
    e->exc |= exact.exc & (SF_UE | SF_PE);
    return r;
}

int sf_ieee_compare(struct sf_env *e, uint64_t a, uint64_t b, bool dbl, bool quiet)
{
    return compare_unp(e, daz_in(e, unpack_ieee(a, dbl)), daz_in(e, unpack_ieee(b, dbl)), quiet);
}
