/* SSE and SSE2 (the x86-64 baseline) for the translator: one C helper per instruction,
 * dispatched on opcode + mandatory prefix (map 0F only; SSE3 and later are #UD and not
 * advertised). The MMX forms without a mandatory prefix run in mmx.c (HELPER_mmx, no CR4.
 * OSFXSR needed) on this file's integer lanes; the ones that also use an XMM register
 * (CVTPI2PS/PD, CVT(T)PS2PI, CVT(T)PD2PI, MOVQ2DQ, MOVDQ2Q) run here, switching to MMX state.
 *
 * Floating point follows MXCSR: rounding control via the host's rounding mode around host
 * float/double operations (fpu_host.h), DAZ/FTZ and NaN propagation (first operand's NaN,
 * quieted, else the second's) done explicitly, IE/DE/ZE/OE/UE/PE accumulated into MXCSR.
 * Unmasked exceptions leave the destination unchanged, set the flags and raise #XM (CR4.
 * OSXMMEXCPT) or #UD. RCPPS/RSQRTPS return the correctly rounded value (well inside the
 * architected 1.5 * 2^-12 error, not the bits of any particular CPU's table). */
#include "accel/tcg/fpu_state.h"
#include "accel/tcg/tcg_internal.h"
#include "accel/tcg/x86/fpu.h"
#include "accel/tcg/x86/fpu_host.h"
#include "accel/tcg/x86/helpers.h"
#include "accel/tcg/x86/softfloat80.h"
#include "accel/tcg/x86/sse_host.h"

#include <math.h>
#include <string.h>

#define MX_IE 0x01u
#define MX_DE 0x02u
#define MX_UE 0x10u
#define MX_PE 0x20u
#define MX_DAZ 0x40u
#define MX_FTZ 0x8000u
#define CR4_OSXMMEXCPT (1ULL << 10)

#define K(opc, mp) ((opc) << 2 | (mp))
enum { NP = X86_MP_NONE, P66 = X86_MP_66, PF3 = X86_MP_F3, PF2 = X86_MP_F2 };

struct sse {
    struct tcg_cpu *cpu;
    uint64_t desc, addr;
    unsigned reg, rm, imm;
    bool mem;
    uint32_t exc; /* MXCSR flag bits raised */
    bool daz, ftz;
};

static noreturn void sse_ud(struct sse *s)
{
    tcg_raise_exception(s->cpu, X86_EXC_UD, 0, false);
}

static union xmm_reg *xr(struct sse *s, unsigned i)
{
    return &s->cpu->fpu.xmm[i];
}

/* The r/m source: a register, or `bytes` of memory (16 with `aligned`: #GP if misaligned). */
static union xmm_reg load_src(struct sse *s, unsigned bytes, bool aligned)
{
    union xmm_reg v;
    if (!s->mem)
        return *xr(s, s->rm);
    memset(&v, 0, sizeof(v));
    if (aligned && (s->addr & 15))
        tcg_raise_exception(s->cpu, X86_EXC_GP, 0, true);
    fpu_load_bytes(s->cpu, s->addr, v.b, bytes);
    return v;
}

static void store_dst(struct sse *s, const union xmm_reg *v, unsigned bytes, bool aligned)
{
    if (!s->mem) {
        memcpy(xr(s, s->rm)->b, v->b, bytes);
        return;
    }
    if (aligned && (s->addr & 15))
        tcg_raise_exception(s->cpu, X86_EXC_GP, 0, true);
    fpu_store_bytes(s->cpu, s->addr, v->b, bytes);
}

/* The r/m operand as a general-purpose register or memory (MOVD, CVTSI2SS, PINSRW). */
static uint64_t load_gpr_src(struct sse *s, unsigned bytes)
{
    uint64_t v = s->mem ? mmu_load(s->cpu, s->addr, bytes) : s->cpu->gpr[s->rm];
    return bytes == 8 ? v : v & ((1ULL << (bytes * 8)) - 1);
}

static void set_gpr(struct sse *s, unsigned r, uint64_t v, bool w64)
{
    s->cpu->gpr[r] = w64 ? v : (v & 0xffffffffULL);
}

/* --- scalar floating-point kernels on raw bits (dbl: binary64, else binary32) ---------------- */

static unsigned fbits(bool dbl)
{
    return dbl ? 64 : 32;
}

static uint64_t sign_bit(bool dbl)
{
    return 1ULL << (fbits(dbl) - 1);
}

static uint64_t exp_mask(bool dbl)
{
    return dbl ? 0x7ff0000000000000ULL : 0x7f800000ULL;
}

static uint64_t frac_mask(bool dbl)
{
    return dbl ? 0x000fffffffffffffULL : 0x007fffffULL;
}

static uint64_t quiet_bit(bool dbl)
{
    return dbl ? 1ULL << 51 : 1ULL << 22;
}

static bool is_nan(uint64_t v, bool dbl)
{
    return (v & exp_mask(dbl)) == exp_mask(dbl) && (v & frac_mask(dbl)) != 0;
}

static bool is_snan(uint64_t v, bool dbl)
{
    return is_nan(v, dbl) && !(v & quiet_bit(dbl));
}

static bool is_denormal(uint64_t v, bool dbl)
{
    return (v & exp_mask(dbl)) == 0 && (v & frac_mask(dbl)) != 0;
}

static uint64_t default_qnan(bool dbl)
{
    return dbl ? 0xfff8000000000000ULL : 0xffc00000ULL;
}

/* DAZ on an input; DE for denormals that stay. */
static uint64_t fp_in(struct sse *s, uint64_t v, bool dbl)
{
    if (is_denormal(v, dbl)) {
        if (s->daz)
            return v & sign_bit(dbl);
        s->exc |= MX_DE;
    }
    return v;
}

static uint64_t fp_out(struct sse *s, uint64_t v, bool dbl)
{
    if (s->ftz && is_denormal(v, dbl)) {
        s->exc |= MX_UE | MX_PE;
        return v & sign_bit(dbl);
    }
    return v;
}

static double as_d(uint64_t v, bool dbl)
{
    if (dbl) {
        double d;
        memcpy(&d, &v, 8);
        return d;
    }
    uint32_t u = (uint32_t)v;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

enum { FOP_ADD, FOP_SUB, FOP_MUL, FOP_DIV, FOP_MIN, FOP_MAX, FOP_SQRT };

/* a op b for one lane (SQRT: of b). Runs inside the host scope. */
static uint64_t fp_binop(struct sse *s, unsigned op, uint64_t a, uint64_t b, bool dbl)
{
    bool an = is_nan(a, dbl), bn = is_nan(b, dbl);
    if (op == FOP_MIN || op == FOP_MAX) {
        if (an || bn) {
            s->exc |= MX_IE;
            return b;
        }
        a = fp_in(s, a, dbl), b = fp_in(s, b, dbl);
        double x = as_d(a, dbl), y = as_d(b, dbl);
        return (op == FOP_MIN ? x < y : x > y) ? a : b;
    }
    if (op == FOP_SQRT) {
        an = false;
        a = 0;
    }
    if (an || bn) {
        if (is_snan(a, dbl) || is_snan(b, dbl))
            s->exc |= MX_IE;
        return (an ? a : b) | quiet_bit(dbl);
    }
    a = fp_in(s, a, dbl), b = fp_in(s, b, dbl);
    uint64_t r;
#if !QUOKKA_HOST_X87
    /* Not the host's float unit: its default NaN, tininess and flags are not x86's. */
    static const unsigned sf_op[] = {
        [FOP_ADD] = 0, [FOP_SUB] = 1, [FOP_MUL] = 2, [FOP_DIV] = 3, [FOP_SQRT] = 4};
    struct sf_env e = {(s->cpu->fpu.mxcsr >> 13) & 3, 64, 0, false, false, false};
    r = sf_ieee_arith(&e, sf_op[op], a, b, dbl);
    s->exc |= e.exc & ~MX_DE; /* DE: fp_in's */
    return fp_out(s, r, dbl);
#endif
    if (dbl) {
        volatile double x = as_d(a, true), y = as_d(b, true), z;
        switch (op) {
        case FOP_ADD:
            z = x + y;
            break;
        case FOP_SUB:
            z = x - y;
            break;
        case FOP_MUL:
            z = x * y;
            break;
        case FOP_DIV:
            z = x / y;
            break;
        default:
            z = sqrt(y);
            break;
        }
        double d = z;
        memcpy(&r, &d, 8);
    } else {
        volatile float x = (float)as_d(a, false), y = (float)as_d(b, false), z;
        switch (op) {
        case FOP_ADD:
            z = x + y;
            break;
        case FOP_SUB:
            z = x - y;
            break;
        case FOP_MUL:
            z = x * y;
            break;
        case FOP_DIV:
            z = x / y;
            break;
        default:
            z = sqrtf(y);
            break;
        }
        float f = z;
        uint32_t u;
        memcpy(&u, &f, 4);
        r = u;
    }
    return fp_out(s, r, dbl);
}

/* CMPPS predicate (imm8 bits 2:0) -> all-ones / zero lane. */
static uint64_t fp_cmp(struct sse *s, unsigned pred, uint64_t a, uint64_t b, bool dbl)
{
    bool unord = is_nan(a, dbl) || is_nan(b, dbl);
    bool signaling = pred == 1 || pred == 2 || pred == 5 || pred == 6;
    if (is_snan(a, dbl) || is_snan(b, dbl) || (unord && signaling))
        s->exc |= MX_IE;
    bool r = false;
    if (!unord) {
        double x = as_d(fp_in(s, a, dbl), dbl), y = as_d(fp_in(s, b, dbl), dbl);
        switch (pred & 3) {
        case 0:
            r = x == y;
            break;
        case 1:
            r = x < y;
            break;
        case 2:
            r = x <= y;
            break;
        default:
            r = false;
            break; /* UNORD */
        }
    } else {
        r = (pred & 3) == 3; /* only UNORD holds; NEQ/NLT/NLE/ORD via the inversion */
    }
    if (pred & 4)
        r = !r;
    return r ? (dbl ? ~0ULL : 0xffffffffULL) : 0;
}

/* Float -> integer of ibits, rounding by MXCSR.RC or truncating; the integer indefinite on
 * NaN / overflow. Inside the host scope. */
static uint64_t fp_to_int(struct sse *s, uint64_t v, bool dbl, unsigned ibits, bool chop)
{
    if (s->daz && is_denormal(v, dbl))
        v &= sign_bit(dbl);
    double lim = ibits == 64 ? 9223372036854775808.0 : 2147483648.0;
    uint64_t indefinite = 1ULL << (ibits - 1);
    double x = as_d(v, dbl), r;
    /* Rounded explicitly: the host's rint() need not follow the rounding mode we set. */
    switch (chop ? 3 : (s->cpu->fpu.mxcsr >> 13) & 3) {
    case 0:
        r = x - trunc(x) == 0.5 || x - trunc(x) == -0.5 ? 2 * round(x / 2) : round(x);
        break;
    case 1:
        r = floor(x);
        break;
    case 2:
        r = ceil(x);
        break;
    default:
        r = trunc(x);
        break;
    }
    if (r != x && !isnan(r) && r >= -lim && r < lim)
        s->exc |= MX_PE;
    if (isnan(r) || r < -lim || r >= lim) {
        s->exc |= MX_IE;
        return indefinite;
    }
    uint64_t u = (uint64_t)(int64_t)r;
    return ibits == 64 ? u : (u & 0xffffffffULL);
}

/* Width conversions float <-> double (to_dbl: binary32 -> binary64). Inside the scope. */
static uint64_t fp_convert(struct sse *s, uint64_t v, bool to_dbl)
{
    bool from_dbl = !to_dbl;
    if (is_nan(v, from_dbl)) {
        if (is_snan(v, from_dbl))
            s->exc |= MX_IE;
        v |= quiet_bit(from_dbl);
        /* Keep sign and top payload bits, as the hardware does. */
        if (to_dbl)
            return (v & 0x80000000ULL) << 32 | 0x7ff0000000000000ULL | (v & 0x7fffffULL) << 29;
        return (v >> 32 & 0x80000000ULL) | 0x7f800000ULL | ((v >> 29) & 0x7fffffULL);
    }
    v = fp_in(s, v, from_dbl);
    if (to_dbl) {
        double d = as_d(v, false);
        uint64_t r;
        memcpy(&r, &d, 8);
        return r;
    }
#if !QUOKKA_HOST_X87
    struct sf_env e = {(s->cpu->fpu.mxcsr >> 13) & 3, 64, 0, false, false, false};
    uint64_t u = sf_ieee_convert(&e, v, false);
    s->exc |= e.exc & ~MX_DE;
#else
    volatile double x = as_d(v, true);
    volatile float f = (float)x;
    float ff = f;
    uint32_t u;
    memcpy(&u, &ff, 4);
#endif
    return fp_out(s, u, false);
}

static uint64_t int_to_fp(struct sse *s, int64_t v, bool dbl)
{
    (void)s;
    volatile int64_t vi = v;
    if (dbl) {
        volatile double d = (double)vi;
        double dd = d;
        uint64_t r;
        memcpy(&r, &dd, 8);
        return r;
    }
    volatile float f = (float)vi;
    float ff = f;
    uint32_t u;
    memcpy(&u, &ff, 4);
    return u;
}

/* RCP / RSQRT (binary32 only, no flags). */
static uint32_t fp_approx(uint32_t v, bool rsqrt)
{
    if (is_nan(v, false))
        return v | (uint32_t)quiet_bit(false);
    uint32_t sign = v & 0x80000000u;
    if ((v & 0x7f800000u) == 0) /* zero and denormals act as zero */
        return sign | 0x7f800000u;
    if (rsqrt && sign)
        return (uint32_t)default_qnan(false);
    if ((v & 0x7fffffffu) == 0x7f800000u)
        return sign;
    double x = as_d(v, false);
    double r = rsqrt ? 1.0 / sqrt(x) : 1.0 / x;
    if (fabs(r) < 0x1p-126)
        return sign; /* tiny results flush to zero */
    float f = (float)r;
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* --- floating-point instruction shapes ----------------------------------------------------------
 */

/* Lanes of an op: packed (all lanes of 128 bits) or scalar (lane 0, the rest of dst kept). */
static void fp_arith(struct sse *s, unsigned op, bool dbl, bool scalar, union xmm_reg b,
                     union xmm_reg *out)
{
    union xmm_reg a = *xr(s, s->reg);
    *out = a;
    unsigned n = scalar ? 1 : dbl ? 2 : 4;
    for (unsigned i = 0; i < n; i++) {
        if (dbl)
            out->q[i] = fp_binop(s, op, a.q[i], b.q[i], true);
        else
            out->d[i] = (uint32_t)fp_binop(s, op, a.d[i], b.d[i], false);
    }
}

static void fp_compare_lanes(struct sse *s, bool dbl, bool scalar, union xmm_reg b,
                             union xmm_reg *out)
{
    union xmm_reg a = *xr(s, s->reg);
    *out = a;
    unsigned n = scalar ? 1 : dbl ? 2 : 4;
    for (unsigned i = 0; i < n; i++) {
        if (dbl)
            out->q[i] = fp_cmp(s, s->imm & 7, a.q[i], b.q[i], true);
        else
            out->d[i] = (uint32_t)fp_cmp(s, s->imm & 7, a.d[i], b.d[i], false);
    }
}

static void comis(struct sse *s, bool dbl, bool quiet, union xmm_reg b)
{
    uint64_t x = dbl ? xr(s, s->reg)->q[0] : xr(s, s->reg)->d[0];
    uint64_t y = dbl ? b.q[0] : b.d[0];
    uint32_t fl;
    if (is_nan(x, dbl) || is_nan(y, dbl)) {
        if (!quiet || is_snan(x, dbl) || is_snan(y, dbl))
            s->exc |= MX_IE;
        fl = X86_ZF | X86_PF | X86_CF;
    } else {
        double p = as_d(fp_in(s, x, dbl), dbl), q = as_d(fp_in(s, y, dbl), dbl);
        fl = p > q ? 0 : p < q ? X86_CF : X86_ZF;
    }
    s->cpu->cc_op = CC_OP_EFLAGS;
    s->cpu->cc_src = fl;
}

/* --- integer SIMD ----------------------------------------------------------------------------- */

static int64_t clamp(int64_t v, int64_t lo, int64_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* Shift lanes of `bits` by count: kind 0 logical right, 1 arithmetic right, 2 left. */
static void shift_lanes(union xmm_reg *v, unsigned bits, unsigned kind, uint64_t count)
{
    unsigned n = 128 / bits;
    for (unsigned i = 0; i < n; i++) {
        uint64_t x = bits == 16 ? v->w[i] : bits == 32 ? v->d[i] : v->q[i];
        uint64_t r;
        if (kind == 1) {
            int64_t sx = bits == 16 ? (int16_t)x : bits == 32 ? (int32_t)x : (int64_t)x;
            r = (uint64_t)(sx >> (count >= bits ? bits - 1 : count));
        } else if (count >= bits) {
            r = 0;
        } else {
            r = kind == 0 ? x >> count : x << count;
        }
        if (bits == 16)
            v->w[i] = (uint16_t)r;
        else if (bits == 32)
            v->d[i] = (uint32_t)r;
        else
            v->q[i] = r;
    }
}

/* Integer ops of 66 0F 60-FE taking (dst, src) -> dst; false if the opcode is not one. */
static bool int_op(unsigned opc, union xmm_reg *d, const union xmm_reg *b)
{
    union xmm_reg a = *d, r;
    memset(&r, 0, sizeof(r));
    switch (opc) {
    case 0x60:
        for (unsigned i = 0; i < 8; i++)
            r.b[2 * i] = a.b[i], r.b[2 * i + 1] = b->b[i];
        break;
    case 0x61:
        for (unsigned i = 0; i < 4; i++)
            r.w[2 * i] = a.w[i], r.w[2 * i + 1] = b->w[i];
        break;
    case 0x62:
        for (unsigned i = 0; i < 2; i++)
            r.d[2 * i] = a.d[i], r.d[2 * i + 1] = b->d[i];
        break;
    case 0x6c:
        r.q[0] = a.q[0], r.q[1] = b->q[0];
        break;
    case 0x68:
        for (unsigned i = 0; i < 8; i++)
            r.b[2 * i] = a.b[i + 8], r.b[2 * i + 1] = b->b[i + 8];
        break;
    case 0x69:
        for (unsigned i = 0; i < 4; i++)
            r.w[2 * i] = a.w[i + 4], r.w[2 * i + 1] = b->w[i + 4];
        break;
    case 0x6a:
        for (unsigned i = 0; i < 2; i++)
            r.d[2 * i] = a.d[i + 2], r.d[2 * i + 1] = b->d[i + 2];
        break;
    case 0x6d:
        r.q[0] = a.q[1], r.q[1] = b->q[1];
        break;
    case 0x63: /* PACKSSWB */
        for (unsigned i = 0; i < 8; i++) {
            r.b[i] = (uint8_t)clamp((int16_t)a.w[i], -128, 127);
            r.b[i + 8] = (uint8_t)clamp((int16_t)b->w[i], -128, 127);
        }
        break;
    case 0x67: /* PACKUSWB */
        for (unsigned i = 0; i < 8; i++) {
            r.b[i] = (uint8_t)clamp((int16_t)a.w[i], 0, 255);
            r.b[i + 8] = (uint8_t)clamp((int16_t)b->w[i], 0, 255);
        }
        break;
    case 0x6b: /* PACKSSDW */
        for (unsigned i = 0; i < 4; i++) {
            r.w[i] = (uint16_t)clamp((int32_t)a.d[i], -32768, 32767);
            r.w[i + 4] = (uint16_t)clamp((int32_t)b->d[i], -32768, 32767);
        }
        break;
    case 0x64:
        for (unsigned i = 0; i < 16; i++)
            r.b[i] = (int8_t)a.b[i] > (int8_t)b->b[i] ? 0xff : 0;
        break;
    case 0x65:
        for (unsigned i = 0; i < 8; i++)
            r.w[i] = (int16_t)a.w[i] > (int16_t)b->w[i] ? 0xffff : 0;
        break;
    case 0x66:
        for (unsigned i = 0; i < 4; i++)
            r.d[i] = (int32_t)a.d[i] > (int32_t)b->d[i] ? ~0u : 0;
        break;
    case 0x74:
        for (unsigned i = 0; i < 16; i++)
            r.b[i] = a.b[i] == b->b[i] ? 0xff : 0;
        break;
    case 0x75:
        for (unsigned i = 0; i < 8; i++)
            r.w[i] = a.w[i] == b->w[i] ? 0xffff : 0;
        break;
    case 0x76:
        for (unsigned i = 0; i < 4; i++)
            r.d[i] = a.d[i] == b->d[i] ? ~0u : 0;
        break;
    case 0xd1:
    case 0xd2:
    case 0xd3:
    case 0xe1:
    case 0xe2:
    case 0xf1:
    case 0xf2:
    case 0xf3: {
        unsigned bits = (opc & 3) == 1 ? 16 : (opc & 3) == 2 ? 32 : 64;
        unsigned kind = (opc >> 4) == 0xd ? 0 : (opc >> 4) == 0xe ? 1 : 2;
        r = a;
        shift_lanes(&r, bits, kind, b->q[0]);
        break;
    }
    case 0xd4:
        r.q[0] = a.q[0] + b->q[0], r.q[1] = a.q[1] + b->q[1];
        break;
    case 0xfb:
        r.q[0] = a.q[0] - b->q[0], r.q[1] = a.q[1] - b->q[1];
        break;
    case 0xd5:
        for (unsigned i = 0; i < 8; i++)
            r.w[i] = (uint16_t)((int32_t)(int16_t)a.w[i] * (int16_t)b->w[i]);
        break;
    case 0xe5:
        for (unsigned i = 0; i < 8; i++)
            r.w[i] = (uint16_t)(((int32_t)(int16_t)a.w[i] * (int16_t)b->w[i]) >> 16);
        break;
    case 0xe4:
        for (unsigned i = 0; i < 8; i++)
            r.w[i] = (uint16_t)(((uint32_t)a.w[i] * b->w[i]) >> 16);
        break;
    case 0xf4:
        r.q[0] = (uint64_t)a.d[0] * b->d[0], r.q[1] = (uint64_t)a.d[2] * b->d[2];
        break;
    case 0xf5: /* PMADDWD */
        for (unsigned i = 0; i < 4; i++)
            r.d[i] =
                (uint32_t)((int32_t)(int16_t)a.w[2 * i] * (int16_t)b->w[2 * i] +
                           (uint32_t)((int32_t)(int16_t)a.w[2 * i + 1] * (int16_t)b->w[2 * i + 1]));
        break;
    case 0xf6: /* PSADBW */
        for (unsigned h = 0; h < 2; h++) {
            unsigned sum = 0;
            for (unsigned i = 0; i < 8; i++) {
                int dlt = (int)a.b[8 * h + i] - (int)b->b[8 * h + i];
                sum += (unsigned)(dlt < 0 ? -dlt : dlt);
            }
            r.q[h] = sum;
        }
        break;
    case 0xd8:
        for (unsigned i = 0; i < 16; i++)
            r.b[i] = (uint8_t)clamp((int)a.b[i] - b->b[i], 0, 255);
        break;
    case 0xd9:
        for (unsigned i = 0; i < 8; i++)
            r.w[i] = (uint16_t)clamp((int)a.w[i] - b->w[i], 0, 65535);
        break;
    case 0xdc:
        for (unsigned i = 0; i < 16; i++)
            r.b[i] = (uint8_t)clamp((int)a.b[i] + b->b[i], 0, 255);
        break;
    case 0xdd:
        for (unsigned i = 0; i < 8; i++)
            r.w[i] = (uint16_t)clamp((int)a.w[i] + b->w[i], 0, 65535);
        break;
    case 0xe8:
        for (unsigned i = 0; i < 16; i++)
            r.b[i] = (uint8_t)clamp((int8_t)a.b[i] - (int8_t)b->b[i], -128, 127);
        break;
    case 0xe9:
        for (unsigned i = 0; i < 8; i++)
            r.w[i] = (uint16_t)clamp((int16_t)a.w[i] - (int16_t)b->w[i], -32768, 32767);
        break;
    case 0xec:
        for (unsigned i = 0; i < 16; i++)
            r.b[i] = (uint8_t)clamp((int8_t)a.b[i] + (int8_t)b->b[i], -128, 127);
        break;
    case 0xed:
        for (unsigned i = 0; i < 8; i++)
            r.w[i] = (uint16_t)clamp((int16_t)a.w[i] + (int16_t)b->w[i], -32768, 32767);
        break;
    case 0xda:
        for (unsigned i = 0; i < 16; i++)
            r.b[i] = a.b[i] < b->b[i] ? a.b[i] : b->b[i];
        break;
    case 0xde:
        for (unsigned i = 0; i < 16; i++)
            r.b[i] = a.b[i] > b->b[i] ? a.b[i] : b->b[i];
        break;
    case 0xea:
        for (unsigned i = 0; i < 8; i++)
            r.w[i] = (int16_t)a.w[i] < (int16_t)b->w[i] ? a.w[i] : b->w[i];
        break;
    case 0xee:
        for (unsigned i = 0; i < 8; i++)
            r.w[i] = (int16_t)a.w[i] > (int16_t)b->w[i] ? a.w[i] : b->w[i];
        break;
    case 0xe0:
        for (unsigned i = 0; i < 16; i++)
            r.b[i] = (uint8_t)((a.b[i] + b->b[i] + 1) >> 1);
        break;
    case 0xe3:
        for (unsigned i = 0; i < 8; i++)
            r.w[i] = (uint16_t)((a.w[i] + b->w[i] + 1) >> 1);
        break;
    case 0xdb:
        r.q[0] = a.q[0] & b->q[0], r.q[1] = a.q[1] & b->q[1];
        break;
    case 0xdf:
        r.q[0] = ~a.q[0] & b->q[0], r.q[1] = ~a.q[1] & b->q[1];
        break;
    case 0xeb:
        r.q[0] = a.q[0] | b->q[0], r.q[1] = a.q[1] | b->q[1];
        break;
    case 0xef:
        r.q[0] = a.q[0] ^ b->q[0], r.q[1] = a.q[1] ^ b->q[1];
        break;
    case 0xf8:
        for (unsigned i = 0; i < 16; i++)
            r.b[i] = (uint8_t)(a.b[i] - b->b[i]);
        break;
    case 0xf9:
        for (unsigned i = 0; i < 8; i++)
            r.w[i] = (uint16_t)(a.w[i] - b->w[i]);
        break;
    case 0xfa:
        for (unsigned i = 0; i < 4; i++)
            r.d[i] = a.d[i] - b->d[i];
        break;
    case 0xfc:
        for (unsigned i = 0; i < 16; i++)
            r.b[i] = (uint8_t)(a.b[i] + b->b[i]);
        break;
    case 0xfd:
        for (unsigned i = 0; i < 8; i++)
            r.w[i] = (uint16_t)(a.w[i] + b->w[i]);
        break;
    case 0xfe:
        for (unsigned i = 0; i < 4; i++)
            r.d[i] = a.d[i] + b->d[i];
        break;
    default:
        return false;
    }
    *d = r;
    return true;
}

/* The MMX (64-bit) form of an op of int_op, on 128-bit operands arranged so that one half of
 * the result is the answer: the lane-wise ops and the low unpacks read the low halves; the
 * high unpacks interleave the high halves of each 64-bit operand, so the operands go in the
 * high halves; a 128-bit pack of {a, b} packs a, then b, into the low half. */
bool sse_int_op64(unsigned opc, uint64_t *a, uint64_t b)
{
    union xmm_reg x = {.q = {*a, 0}}, y = {.q = {b, 0}};
    unsigned half = 0;
    if (opc >= 0x68 && opc <= 0x6a) {
        x.q[1] = *a, y.q[1] = b;
        half = 1;
    } else if (opc == 0x63 || opc == 0x67 || opc == 0x6b) {
        x.q[1] = b;
    }
    if (!int_op(opc, &x, &y))
        return false;
    *a = x.q[half];
    return true;
}

/* --- the dispatcher --------------------------------------------------------------------------- */

/* Finish an FP instruction: unmasked exceptions fault before the destination is written. */
static void fp_commit(struct sse *s, union xmm_reg *dst, const union xmm_reg *v)
{
    s->exc |= fp_sse_end() & ~MX_DE;
    uint32_t *mx = &s->cpu->fpu.mxcsr;
    if (s->exc & ~(*mx >> 7) & 0x3f) {
        *mx |= s->exc;
        tcg_raise_exception(s->cpu, (s->cpu->cr4 & CR4_OSXMMEXCPT) ? X86_EXC_XM : X86_EXC_UD, 0,
                            false);
    }
    *mx |= s->exc;
    if (dst)
        *dst = *v;
}

static void fp_begin(struct sse *s)
{
    fp_sse_begin((s->cpu->fpu.mxcsr >> 13) & 3);
}

/* CVTPI2PS/CVTPI2PD xmm, mm/m64: two int32 to floats (CVTPI2PS keeps the high quadword). */
static void cvtpi2p(struct sse *s, bool dbl)
{
    union xmm_reg *d = xr(s, s->reg), r = *d;
    uint64_t v = s->mem ? mmu_load(s->cpu, s->addr, 8) : mmx_get(s->cpu, s->rm);
    if (!s->mem)
        mmx_enter(s->cpu);
    fp_begin(s);
    for (unsigned i = 0; i < 2; i++) {
        int32_t x = (int32_t)(uint32_t)(v >> (32 * i));
        if (dbl)
            r.q[i] = int_to_fp(s, x, true);
        else
            r.d[i] = (uint32_t)int_to_fp(s, x, false);
    }
    fp_commit(s, d, &r);
}

/* CVT(T)PS2PI mm, xmm/m64 and CVT(T)PD2PI mm, xmm/m128 (aligned): two floats to int32. */
static void cvtp2pi(struct sse *s, bool dbl, bool chop)
{
    union xmm_reg v = load_src(s, dbl ? 16 : 8, dbl);
    mmx_enter(s->cpu);
    fp_begin(s);
    uint64_t lo = fp_to_int(s, dbl ? v.q[0] : v.d[0], dbl, 32, chop);
    uint64_t hi = fp_to_int(s, dbl ? v.q[1] : v.d[1], dbl, 32, chop);
    fp_commit(s, NULL, NULL);
    mmx_set(s->cpu, s->reg, lo | hi << 32);
}

/* The forms with an MMX and an XMM operand: a pending x87 exception first; the switch to MMX
 * state once the operands are read, even when an unmasked SIMD exception then faults (as an
 * AMD Zen and Bochs do). CVTPI2PS/PD from memory touch no MMX state and take no #MF (the SDM
 * says so of CVTPI2PD; that CPU and Bochs do the same for CVTPI2PS). */
static void mmx_operand_forms(struct sse *s, unsigned opc, unsigned mp)
{
    if (!(opc == 0x2a && s->mem))
        mmx_check_pending(s->cpu);
    switch (K(opc, mp)) {
    case K(0xd6, PF3): /* MOVQ2DQ xmm, mm */
        *xr(s, s->reg) = (union xmm_reg){.q = {mmx_get(s->cpu, s->rm), 0}};
        mmx_enter(s->cpu);
        break;
    case K(0xd6, PF2): /* MOVDQ2Q mm, xmm */
        mmx_set(s->cpu, s->reg, xr(s, s->rm)->q[0]);
        mmx_enter(s->cpu);
        break;
    case K(0x2a, NP):
    case K(0x2a, P66):
        cvtpi2p(s, mp == P66);
        break;
    default:
        cvtp2pi(s, mp == P66, opc == 0x2c);
        break;
    }
}

void sse_exec(struct tcg_cpu *cpu, uint64_t desc, uint64_t addr)
{
    struct sse s = {.cpu = cpu,
                    .desc = desc,
                    .addr = addr,
                    .reg = FD_REG(desc),
                    .rm = FD_RM(desc),
                    .imm = FD_IMM8(desc),
                    .mem = FD_HAS_MEM(desc),
                    .daz = (cpu->fpu.mxcsr & MX_DAZ) != 0,
                    .ftz = (cpu->fpu.mxcsr & MX_FTZ) != 0};
    unsigned opc = FD_OPCODE(desc), mp = FD_MP(desc);
    bool w64 = FD_REX_W(desc) != 0;
    union xmm_reg *d = xr(&s, s.reg), v;
    if (FD_MAP(desc) != X86_MAP_0F)
        sse_ud(&s); /* SSSE3 / SSE4 are not advertised */
    switch (K(opc, mp)) {
    case K(0x2a, NP):
    case K(0x2a, P66):
    case K(0x2c, NP):
    case K(0x2c, P66):
    case K(0x2d, NP):
    case K(0x2d, P66):
    case K(0xd6, PF3):
    case K(0xd6, PF2):
        mmx_operand_forms(&s, opc, mp);
        return;
    /* --- moves --- */
    case K(0x10, NP):
    case K(0x10, P66):
        *d = load_src(&s, 16, false);
        return;
    case K(0x28, NP):
    case K(0x28, P66):
        *d = load_src(&s, 16, true);
        return;
    case K(0x6f, P66):
        *d = load_src(&s, 16, true);
        return;
    case K(0x6f, PF3):
        *d = load_src(&s, 16, false);
        return;
    case K(0x11, NP):
    case K(0x11, P66):
    case K(0x7f, PF3):
        store_dst(&s, d, 16, false);
        return;
    case K(0x29, NP):
    case K(0x29, P66):
    case K(0x7f, P66):
    case K(0x2b, NP):
    case K(0x2b, P66):
    case K(0xe7, P66):
        store_dst(&s, d, 16, true);
        return;
    case K(0x10, PF3):
        v = load_src(&s, 4, false);
        if (s.mem)
            *d = v;
        else
            d->d[0] = v.d[0];
        return;
    case K(0x10, PF2):
        v = load_src(&s, 8, false);
        if (s.mem)
            *d = v;
        else
            d->q[0] = v.q[0];
        return;
    case K(0x11, PF3):
        store_dst(&s, d, 4, false);
        return;
    case K(0x11, PF2):
        store_dst(&s, d, 8, false);
        return;
    case K(0x12, NP):
    case K(0x12, P66): /* MOVLPS/MOVLPD m64, MOVHLPS */
        v = load_src(&s, 8, false);
        d->q[0] = s.mem ? v.q[0] : v.q[1];
        return;
    case K(0x16, NP):
    case K(0x16, P66): /* MOVHPS/MOVHPD m64, MOVLHPS */
        v = load_src(&s, 8, false);
        d->q[1] = v.q[0];
        return;
    case K(0x13, NP):
    case K(0x13, P66):
        store_dst(&s, d, 8, false);
        return;
    case K(0x17, NP):
    case K(0x17, P66):
        v.q[0] = d->q[1];
        store_dst(&s, &v, 8, false);
        return;
    case K(0x6e, P66): /* MOVD/MOVQ xmm, r/m */
        memset(&v, 0, sizeof(v));
        v.q[0] = load_gpr_src(&s, w64 ? 8 : 4);
        *d = v;
        return;
    case K(0x7e, P66): { /* MOVD/MOVQ r/m, xmm */
        uint64_t x = w64 ? d->q[0] : d->d[0];
        if (s.mem) {
            fpu_store_bytes(cpu, addr, &x, w64 ? 8 : 4);
        } else {
            set_gpr(&s, s.rm, x, w64);
        }
        return;
    }
    case K(0x7e, PF3): /* MOVQ xmm, xmm/m64 */
        v = load_src(&s, 8, false);
        d->q[0] = v.q[0], d->q[1] = 0;
        return;
    case K(0xd6, P66): /* MOVQ xmm/m64, xmm */
        if (s.mem) {
            store_dst(&s, d, 8, false);
        } else {
            xr(&s, s.rm)->q[0] = d->q[0];
            xr(&s, s.rm)->q[1] = 0;
        }
        return;
    case K(0xc3, NP): { /* MOVNTI */
        uint64_t x = cpu->gpr[s.reg];
        fpu_store_bytes(cpu, addr, &x, w64 ? 8 : 4);
        return;
    }
    case K(0xf7, P66): { /* MASKMOVDQU */
        union xmm_reg m = *xr(&s, s.rm);
        for (unsigned i = 0; i < 16; i++)
            if (m.b[i] & 0x80)
                fpu_store_bytes(cpu, addr + i, &d->b[i], 1);
        return;
    }
    case K(0x50, NP):
    case K(0x50, P66): { /* MOVMSKPS/PD */
        union xmm_reg *x = xr(&s, s.rm);
        uint64_t m = 0;
        if (mp == P66)
            m = (x->q[0] >> 63) | (x->q[1] >> 63) << 1;
        else
            for (unsigned i = 0; i < 4; i++)
                m |= (uint64_t)(x->d[i] >> 31) << i;
        cpu->gpr[s.reg] = m;
        return;
    }
    case K(0xd7, P66): { /* PMOVMSKB */
        union xmm_reg *x = xr(&s, s.rm);
        uint64_t m = 0;
        for (unsigned i = 0; i < 16; i++)
            m |= (uint64_t)(x->b[i] >> 7) << i;
        cpu->gpr[s.reg] = m;
        return;
    }
    case K(0xc4, P66): /* PINSRW */
        d->w[s.imm & 7] = (uint16_t)load_gpr_src(&s, 2);
        return;
    case K(0xc5, P66): /* PEXTRW */
        cpu->gpr[s.reg] = xr(&s, s.rm)->w[s.imm & 7];
        return;
    /* --- shuffles --- */
    case K(0x14, NP):
        v = load_src(&s, 16, true);
        *d = (union xmm_reg){.d = {d->d[0], v.d[0], d->d[1], v.d[1]}};
        return;
    case K(0x15, NP):
        v = load_src(&s, 16, true);
        *d = (union xmm_reg){.d = {d->d[2], v.d[2], d->d[3], v.d[3]}};
        return;
    case K(0x14, P66):
        v = load_src(&s, 16, true);
        d->q[1] = v.q[0];
        return;
    case K(0x15, P66):
        v = load_src(&s, 16, true);
        d->q[0] = d->q[1], d->q[1] = v.q[1];
        return;
    case K(0xc6, NP):
        v = load_src(&s, 16, true);
        *d = (union xmm_reg){.d = {d->d[s.imm & 3], d->d[(s.imm >> 2) & 3], v.d[(s.imm >> 4) & 3],
                                   v.d[(s.imm >> 6) & 3]}};
        return;
    case K(0xc6, P66):
        v = load_src(&s, 16, true);
        *d = (union xmm_reg){.q = {d->q[s.imm & 1], v.q[(s.imm >> 1) & 1]}};
        return;
    case K(0x70, P66):
        v = load_src(&s, 16, true);
        for (unsigned i = 0; i < 4; i++)
            d->d[i] = v.d[(s.imm >> (2 * i)) & 3];
        return;
    case K(0x70, PF3):
        v = load_src(&s, 16, true);
        d->q[0] = v.q[0];
        for (unsigned i = 0; i < 4; i++)
            d->w[4 + i] = v.w[4 + ((s.imm >> (2 * i)) & 3)];
        return;
    case K(0x70, PF2):
        v = load_src(&s, 16, true);
        d->q[1] = v.q[1];
        for (unsigned i = 0; i < 4; i++)
            d->w[i] = v.w[(s.imm >> (2 * i)) & 3];
        return;
    case K(0x71, P66):
    case K(0x72, P66):
    case K(0x73, P66): { /* shifts by imm8 */
        unsigned r = FD_MODRM(desc) >> 3 & 7;
        union xmm_reg *x = xr(&s, s.rm);
        if (opc == 0x73 && (r == 3 || r == 7)) { /* PSRLDQ / PSLLDQ: bytes */
            unsigned n = s.imm > 16 ? 16 : s.imm;
            union xmm_reg t;
            memset(&t, 0, sizeof(t));
            for (unsigned i = 0; i < 16; i++) {
                if (r == 3 && i + n < 16)
                    t.b[i] = x->b[i + n];
                else if (r == 7 && i >= n)
                    t.b[i] = x->b[i - n];
            }
            *x = t;
            return;
        }
        unsigned bits = opc == 0x71 ? 16 : opc == 0x72 ? 32 : 64;
        unsigned kind = r == 2 ? 0 : r == 4 ? 1 : r == 6 ? 2 : 3;
        if (kind == 3 || (kind == 1 && bits == 64))
            sse_ud(&s);
        shift_lanes(x, bits, kind, s.imm);
        return;
    }
    /* --- logic --- */
    case K(0x54, NP):
    case K(0x54, P66):
        v = load_src(&s, 16, true);
        d->q[0] &= v.q[0], d->q[1] &= v.q[1];
        return;
    case K(0x55, NP):
    case K(0x55, P66):
        v = load_src(&s, 16, true);
        d->q[0] = ~d->q[0] & v.q[0], d->q[1] = ~d->q[1] & v.q[1];
        return;
    case K(0x56, NP):
    case K(0x56, P66):
        v = load_src(&s, 16, true);
        d->q[0] |= v.q[0], d->q[1] |= v.q[1];
        return;
    case K(0x57, NP):
    case K(0x57, P66):
        v = load_src(&s, 16, true);
        d->q[0] ^= v.q[0], d->q[1] ^= v.q[1];
        return;
    default:
        break;
    }
    if (mp == P66 && opc >= 0x60) {
        v = load_src(&s, 16, true);
        if (int_op(opc, d, &v))
            return;
    }

    /* --- floating point: load operands first (faults), then compute in the host scope --- */
    bool dbl = mp == P66 || mp == PF2;
    bool scalar = mp == PF3 || mp == PF2;
    union xmm_reg r;
    uint32_t fl;
    switch (opc) {
    case 0x58:
    case 0x59:
    case 0x5c:
    case 0x5d:
    case 0x5e:
    case 0x5f:
    case 0x51: {
        static const uint8_t fop[8] = {FOP_ADD, FOP_MUL, 0, 0, FOP_SUB, FOP_MIN, FOP_DIV, FOP_MAX};
        unsigned op = opc == 0x51 ? FOP_SQRT : fop[opc - 0x58];
        v = load_src(&s, scalar ? (dbl ? 8 : 4) : 16, !scalar);
        if (sse_host_fp(&cpu->fpu.mxcsr, opc, mp, d, &v))
            return;
        fp_begin(&s);
        fp_arith(&s, op, dbl, scalar, v, &r);
        fp_commit(&s, d, &r);
        return;
    }
    case 0xc2:
        v = load_src(&s, scalar ? (dbl ? 8 : 4) : 16, !scalar);
        fp_begin(&s);
        fp_compare_lanes(&s, dbl, scalar, v, &r);
        fp_commit(&s, d, &r);
        return;
    case 0x2e:
    case 0x2f:
        if (scalar)
            break;
        v = load_src(&s, dbl ? 8 : 4, false);
        if (sse_host_comis(&cpu->fpu.mxcsr, dbl, opc == 0x2e, d, &v, &fl)) {
            cpu->cc_op = CC_OP_EFLAGS;
            cpu->cc_src = fl;
            return;
        }
        fp_begin(&s);
        comis(&s, dbl, opc == 0x2e, v);
        fp_commit(&s, NULL, NULL);
        return;
    case 0x52:
    case 0x53: /* RSQRT / RCP: PS and SS only */
        if (mp != NP && mp != PF3)
            break;
        v = load_src(&s, mp == PF3 ? 4 : 16, mp == NP);
        for (unsigned i = 0; i < (mp == PF3 ? 1u : 4u); i++)
            d->d[i] = fp_approx(v.d[i], opc == 0x52);
        return;
    case 0x2a: { /* CVTSI2SS/SD */
        if (!scalar)
            break;
        int64_t x = w64 ? (int64_t)load_gpr_src(&s, 8) : (int32_t)load_gpr_src(&s, 4);
        r = *d;
        fp_begin(&s);
        if (dbl)
            r.q[0] = int_to_fp(&s, x, true);
        else
            r.d[0] = (uint32_t)int_to_fp(&s, x, false);
        fp_commit(&s, d, &r);
        return;
    }
    case 0x2c:
    case 0x2d: { /* CVT(T)SS2SI / CVT(T)SD2SI */
        if (!scalar)
            break;
        v = load_src(&s, dbl ? 8 : 4, false);
        fp_begin(&s);
        uint64_t x = fp_to_int(&s, dbl ? v.q[0] : v.d[0], dbl, w64 ? 64 : 32, opc == 0x2c);
        fp_commit(&s, NULL, NULL);
        set_gpr(&s, s.reg, x, w64);
        return;
    }
    case 0x5a:
        r = *d;
        if (mp == NP) { /* CVTPS2PD */
            v = load_src(&s, 8, false);
            fp_begin(&s);
            r.q[0] = fp_convert(&s, v.d[0], true);
            r.q[1] = fp_convert(&s, v.d[1], true);
        } else if (mp == P66) { /* CVTPD2PS */
            v = load_src(&s, 16, true);
            fp_begin(&s);
            r.d[0] = (uint32_t)fp_convert(&s, v.q[0], false);
            r.d[1] = (uint32_t)fp_convert(&s, v.q[1], false);
            r.q[1] = 0;
        } else if (mp == PF3) { /* CVTSS2SD */
            v = load_src(&s, 4, false);
            if (sse_host_fp(&cpu->fpu.mxcsr, opc, mp, d, &v))
                return;
            fp_begin(&s);
            r.q[0] = fp_convert(&s, v.d[0], true);
        } else { /* CVTSD2SS */
            v = load_src(&s, 8, false);
            if (sse_host_fp(&cpu->fpu.mxcsr, opc, mp, d, &v))
                return;
            fp_begin(&s);
            r.d[0] = (uint32_t)fp_convert(&s, v.q[0], false);
        }
        fp_commit(&s, d, &r);
        return;
    case 0x5b:
        if (mp == PF2)
            break;
        v = load_src(&s, 16, true);
        fp_begin(&s);
        for (unsigned i = 0; i < 4; i++)
            r.d[i] = mp == NP ? (uint32_t)int_to_fp(&s, (int32_t)v.d[i], false)
                              : (uint32_t)fp_to_int(&s, v.d[i], false, 32, mp == PF3);
        fp_commit(&s, d, &r);
        return;
    case 0xe6:
        if (mp == NP)
            break;
        memset(&r, 0, sizeof(r));
        if (mp == PF3) { /* CVTDQ2PD */
            v = load_src(&s, 8, false);
            fp_begin(&s);
            r.q[0] = int_to_fp(&s, (int32_t)v.d[0], true);
            r.q[1] = int_to_fp(&s, (int32_t)v.d[1], true);
        } else { /* CVTTPD2DQ (66), CVTPD2DQ (F2) */
            v = load_src(&s, 16, true);
            fp_begin(&s);
            r.d[0] = (uint32_t)fp_to_int(&s, v.q[0], true, 32, mp == P66);
            r.d[1] = (uint32_t)fp_to_int(&s, v.q[1], true, 32, mp == P66);
        }
        fp_commit(&s, d, &r);
        return;
    }
    /* SSE3 (MOVSLDUP, HADDPS, LDDQU...) and the rest: not implemented, not advertised. */
    sse_ud(&s);
}

uint64_t h_sse_fp(void *env, uint64_t op, uint64_t lo, uint64_t hi, uint64_t unused)
{
    (void)unused;
    struct tcg_cpu *cpu = env;
    tcg_fp_release(cpu);
    unsigned opc = (unsigned)op & 0xff, mp = (unsigned)(op >> 8) & 3,
             reg = (unsigned)(op >> 10) & 15;
    /* The result goes to sse_result, which the generated code copies into the register: XMM
     * registers are IR globals, and this helper does not write globals. */
    union xmm_reg v = {.q = {lo, hi}}, r, *d = &cpu->sse_result;
    *d = cpu->fpu.xmm[reg];
    if (sse_host_fp(&cpu->fpu.mxcsr, opc, mp, d, &v))
        return 0;
    struct sse s = {.cpu = cpu,
                    .reg = reg,
                    .daz = (cpu->fpu.mxcsr & MX_DAZ) != 0,
                    .ftz = (cpu->fpu.mxcsr & MX_FTZ) != 0};
    bool dbl = mp == P66 || mp == PF2, scalar = mp == PF3 || mp == PF2;
    fp_begin(&s);
    if (opc == 0x5a) {
        r = *d;
        if (mp == PF3)
            r.q[0] = fp_convert(&s, v.d[0], true);
        else
            r.d[0] = (uint32_t)fp_convert(&s, v.q[0], false);
    } else {
        static const uint8_t fop[8] = {FOP_ADD, FOP_MUL, 0, 0, FOP_SUB, FOP_MIN, FOP_DIV, FOP_MAX};
        fp_arith(&s, opc == 0x51 ? FOP_SQRT : fop[(opc - 0x58) & 7], dbl, scalar, v, &r);
    }
    fp_commit(&s, d, &r);
    return 0;
}
