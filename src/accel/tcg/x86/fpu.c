/* x87 FPU, FXSAVE/FXRSTOR and LDMXCSR/STMXCSR for the translator, as C helpers on env.
 *
 * Arithmetic uses the host's 80-bit long double (x87 on x86-64 hosts) under the guest's
 * rounding control, so results and the IE/ZE/OE/UE/PE flags are the hardware's; other hosts
 * use the bit-exact software extended precision of softfloat80.c (fx80.h). Not modelled
 * (documented simplifications): precision control (always 64-bit mantissa), the DE flag,
 * unmasked-exception responses (the masked result is always written; an unmasked flag sets
 * ES/B and the next waiting x87 instruction raises #MF), real-mode FSTENV/FSAVE layouts (the
 * protected-mode ones are used), and transcendental results (x87_transcend.c: computed in
 * binary128 and rounded once, the same bits on every host; a real x87 is within about an ulp
 * of them). FIP/FDP hold the instruction's RIP and the operand's linear address. */
#include "accel/tcg/x86/fpu.h"

#include "accel/tcg/fpu_state.h"
#include "accel/tcg/tcg_internal.h"
#include "accel/tcg/x86/flags.h"
#include "accel/tcg/x86/fx80.h"
#include "accel/tcg/x86/seg.h"
#include "vm/cpu_state.h"

#include <string.h>

#define FSW_IE 0x0001u
#define FSW_ZE 0x0004u
#define FSW_PE 0x0020u
#define FSW_SF 0x0040u
#define FSW_ES 0x0080u
#define FSW_C0 0x0100u
#define FSW_C1 0x0200u
#define FSW_C2 0x0400u
#define FSW_C3 0x4000u
#define FSW_B 0x8000u
#define FSW_CC (FSW_C0 | FSW_C1 | FSW_C2 | FSW_C3)

#define CR0_EM (1ULL << 2)
#define CR0_TS (1ULL << 3)
#define CR4_OSFXSR (1ULL << 9)

void tcg_fpu_reset(struct tcg_fpu *fpu)
{
    memset(fpu, 0, sizeof(*fpu));
    fpu->fcw = FPU_FCW_RESET;
    fpu->mxcsr = FPU_MXCSR_RESET;
}

uint64_t x86_fpu_desc(const struct x86_decoded_insn *in)
{
    unsigned kind;
    switch (in->mnemonic) {
    case X86_MN_X87:
        kind = FK_X87;
        break;
    case X86_MN_WAIT:
        kind = FK_WAIT;
        break;
    case X86_MN_FXSAVE:
        kind = FK_FXSAVE;
        break;
    case X86_MN_FXRSTOR:
        kind = FK_FXRSTOR;
        break;
    case X86_MN_LDMXCSR:
        kind = FK_LDMXCSR;
        break;
    case X86_MN_STMXCSR:
        kind = FK_STMXCSR;
        break;
    default:
        kind = FK_SSE;
        break;
    }
    /* 16-bit FSTENV/FSAVE images: 16-bit code without 66, or 32/64-bit code with it. */
    bool op16 = (in->mode == X86_MODE_16) != in->prefix.opsize;
    return (uint64_t)in->opcode | (uint64_t)in->modrm << 8 | (uint64_t)(in->map & 3) << 16 |
           (uint64_t)(in->prefix.mandatory & 3) << 18 | (uint64_t)in->has_mem << 20 |
           (uint64_t)in->prefix.rex_w << 21 | (uint64_t)(in->reg & 15) << 22 |
           (uint64_t)(in->rm & 15) << 26 | (uint64_t)op16 << 30 |
           (uint64_t)(in->mode == X86_MODE_64) << 31 | (uint64_t)kind << 32 |
           (uint64_t)(in->imm & 0xff) << 40;
}

/* --- memory ---------------------------------------------------------------------------------- */

static bool user_mode(const struct tcg_cpu *cpu)
{
    return (cpu->hflags & HF_CPL_MASK) == 3;
}

/* Raise any fault of a write to [addr, addr + len) before the instruction changes state. */
static void probe_write(struct tcg_cpu *cpu, uint64_t addr, unsigned len)
{
    mmu_translate(cpu, addr, MMU_WRITE, user_mode(cpu));
    if (((addr ^ (addr + len - 1)) & ~0xfffULL) != 0)
        mmu_translate(cpu, addr + len - 1, MMU_WRITE, user_mode(cpu));
}

void fpu_load_bytes(struct tcg_cpu *cpu, uint64_t addr, void *dst, unsigned len)
{
    uint8_t *p = dst;
    unsigned i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t v = mmu_load(cpu, addr + i, 8);
        memcpy(p + i, &v, 8);
    }
    for (; i + 4 <= len; i += 4) {
        uint32_t v = (uint32_t)mmu_load(cpu, addr + i, 4);
        memcpy(p + i, &v, 4);
    }
    for (; i < len; i++)
        p[i] = (uint8_t)mmu_load(cpu, addr + i, 1);
}

void fpu_store_bytes(struct tcg_cpu *cpu, uint64_t addr, const void *src, unsigned len)
{
    const uint8_t *p = src;
    probe_write(cpu, addr, len);
    unsigned i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t v;
        memcpy(&v, p + i, 8);
        mmu_store(cpu, addr + i, v, 8);
    }
    for (; i + 4 <= len; i += 4) {
        uint32_t v;
        memcpy(&v, p + i, 4);
        mmu_store(cpu, addr + i, v, 4);
    }
    for (; i < len; i++)
        mmu_store(cpu, addr + i, p[i], 1);
}

/* --- 80-bit values --------------------------------------------------------------------------- */

static fx80 default_nan(void)
{
    return fx_make(0xffff, 0xc000000000000000ULL); /* the "real indefinite" */
}

static bool ld_is_snan(fx80 v)
{
    return (fx_sexp(v) & 0x7fff) == 0x7fff && (fx_mant(v) & (1ULL << 62)) == 0 &&
           (fx_mant(v) << 1) != 0;
}

/* Full 2-bit tag of a non-empty register: 0 valid, 1 zero, 2 special. */
static unsigned tag_of(fx80 v)
{
    unsigned e = fx_sexp(v) & 0x7fff;
    uint64_t m = fx_mant(v);
    if (e == 0x7fff)
        return 2;
    if (e == 0)
        return m == 0 ? 1 : 2;
    return (m >> 63) ? 0 : 2; /* unnormals are special */
}

/* --- state access ---------------------------------------------------------------------------- */

struct x87 {
    struct tcg_cpu *cpu;
    struct tcg_fpu *f;
    unsigned exc; /* FSW exception bits raised by this instruction */
};

static unsigned phys(const struct x87 *x, unsigned i)
{
    return (x->f->top + i) & 7;
}

static bool st_empty(const struct x87 *x, unsigned i)
{
    return !((x->f->ftw >> phys(x, i)) & 1);
}

/* ST(i); reading an empty register is a stack underflow giving the indefinite. */
static fx80 st_get(struct x87 *x, unsigned i)
{
    if (st_empty(x, i)) {
        x->exc |= FSW_IE | FSW_SF;
        x->f->fsw &= (uint16_t)~FSW_C1;
        return default_nan();
    }
    return x->f->st[phys(x, i)];
}

static void st_set(struct x87 *x, unsigned i, fx80 v)
{
    x->f->st[phys(x, i)] = v;
    x->f->ftw |= (uint8_t)(1u << phys(x, i));
}

static void push(struct x87 *x, fx80 v)
{
    x->f->top = (x->f->top - 1) & 7;
    if (!st_empty(x, 0)) { /* overflow: C1 = 1, masked response loads the indefinite */
        x->exc |= FSW_IE | FSW_SF;
        x->f->fsw |= FSW_C1;
        v = default_nan();
    }
    st_set(x, 0, v);
}

static void pop(struct x87 *x)
{
    x->f->ftw &= (uint8_t) ~(1u << phys(x, 0));
    x->f->top = (x->f->top + 1) & 7;
}

static uint16_t read_fsw(const struct tcg_fpu *f)
{
    return (uint16_t)((f->fsw & ~(7u << 11)) | (unsigned)(f->top & 7) << 11);
}

static void write_fsw(struct tcg_fpu *f, uint16_t v)
{
    f->fsw = v & (uint16_t) ~(7u << 11);
    f->top = (v >> 11) & 7;
}

static uint16_t full_tag(const struct tcg_fpu *f)
{
    uint16_t t = 0;
    for (unsigned i = 0; i < 8; i++) {
        unsigned tag = ((f->ftw >> i) & 1) ? tag_of(f->st[i]) : 3;
        t |= (uint16_t)(tag << (2 * i));
    }
    return t;
}

static void set_cc(struct x87 *x, unsigned cc)
{
    x->f->fsw = (uint16_t)((x->f->fsw & ~FSW_CC) | cc);
}

static void update_es(struct tcg_fpu *f)
{
    if (f->fsw & ~f->fcw & 0x3f)
        f->fsw |= FSW_ES | FSW_B;
    else
        f->fsw &= (uint16_t) ~(FSW_ES | FSW_B);
}

static void fninit(struct tcg_fpu *f)
{
    f->fcw = FPU_FCW_RESET;
    f->fsw = 0;
    f->top = 0;
    f->ftw = 0;
    f->fop = 0;
    f->fip = f->fdp = 0;
    f->fcs = f->fds = 0;
}

/* --- arithmetic ------------------------------------------------------------------------------ */

static unsigned rc_of(const struct x87 *x)
{
    return (x->f->fcw >> 10) & 3;
}

/* op: 0 add, 1 mul, 4 a - b, 5 b - a, 6 a / b, 7 b / a (the D8 /r numbering) */
static fx80 arith(struct x87 *x, unsigned op, fx80 a, fx80 b)
{
    return fx_arith(op, a, b, rc_of(x), &x->exc);
}

/* Condition codes of a comparison (C3 C2 C0: > 000, < 001, = 100, unordered 111). */
static unsigned compare(struct x87 *x, fx80 a, fx80 b, bool quiet)
{
    static const unsigned cc[4] = {
        [FX_LT] = FSW_C0, [FX_EQ] = FSW_C3, [FX_GT] = 0, [FX_UN] = FSW_C3 | FSW_C2 | FSW_C0};
    return cc[fx_compare(a, b, quiet, &x->exc)];
}

static void set_eflags_from_cc(struct x87 *x, unsigned cc)
{
    uint32_t fl = 0;
    if (cc & FSW_C3)
        fl |= X86_ZF;
    if (cc & FSW_C2)
        fl |= X86_PF;
    if (cc & FSW_C0)
        fl |= X86_CF;
    x->cpu->cc_op = CC_OP_EFLAGS;
    x->cpu->cc_src = fl;
}

/* Round to an integer of `bits` under RC (or truncating); out of range gives the integer
 * indefinite (the minimum value) with IE. */
static int64_t to_int(struct x87 *x, fx80 v, unsigned bits, bool truncate)
{
    return fx_to_int(v, bits, truncate ? 3 : rc_of(x), &x->exc);
}

static fx80 load_mem_real(struct x87 *x, uint64_t addr, unsigned kind)
{
    /* kind: 0 m32 real, 1 m32 int, 2 m64 real, 3 m16 int (the D8/DA/DC/DE order) */
    switch (kind) {
    case 0: /* SNaN -> QNaN with IE, like FLD */
        return fx_from_f32((uint32_t)mmu_load(x->cpu, addr, 4), &x->exc);
    case 1:
        return fx_from_int((int32_t)mmu_load(x->cpu, addr, 4));
    case 2:
        return fx_from_f64(mmu_load(x->cpu, addr, 8), &x->exc);
    default:
        return fx_from_int((int16_t)mmu_load(x->cpu, addr, 2));
    }
}

/* --- environment images ---------------------------------------------------------------------- */

static unsigned env_size(uint64_t desc)
{
    return FD_OPSIZE16(desc) ? 14 : 28;
}

static void store_env(struct x87 *x, uint64_t addr, uint64_t desc)
{
    struct tcg_fpu *f = x->f;
    uint8_t b[28] = {0};
    uint16_t w[7];
    if (FD_OPSIZE16(desc)) {
        w[0] = f->fcw, w[1] = read_fsw(f), w[2] = full_tag(f), w[3] = (uint16_t)f->fip;
        w[4] = f->fcs, w[5] = (uint16_t)f->fdp, w[6] = f->fds;
        memcpy(b, w, 14);
    } else {
        uint32_t d[7] = {f->fcw | 0xffff0000u,
                         read_fsw(f) | 0xffff0000u,
                         full_tag(f) | 0xffff0000u,
                         (uint32_t)f->fip,
                         f->fcs | (uint32_t)(f->fop & 0x7ff) << 16,
                         (uint32_t)f->fdp,
                         f->fds | 0xffff0000u};
        memcpy(b, d, 28);
    }
    fpu_store_bytes(x->cpu, addr, b, env_size(desc));
}

static void load_env(struct x87 *x, const uint8_t *b, uint64_t desc)
{
    struct tcg_fpu *f = x->f;
    uint16_t fcw, fsw, ftw;
    if (FD_OPSIZE16(desc)) {
        memcpy(&fcw, b, 2), memcpy(&fsw, b + 2, 2), memcpy(&ftw, b + 4, 2);
        uint16_t ip, dp;
        memcpy(&ip, b + 6, 2), memcpy(&f->fcs, b + 8, 2), memcpy(&dp, b + 10, 2);
        memcpy(&f->fds, b + 12, 2);
        f->fip = ip, f->fdp = dp;
    } else {
        uint32_t d[7];
        memcpy(d, b, 28);
        fcw = (uint16_t)d[0], fsw = (uint16_t)d[1], ftw = (uint16_t)d[2];
        f->fip = d[3], f->fcs = (uint16_t)d[4], f->fop = (uint16_t)((d[4] >> 16) & 0x7ff);
        f->fdp = d[5], f->fds = (uint16_t)d[6];
    }
    f->fcw = (uint16_t)((fcw & 0x1f7f) | 0x40);
    write_fsw(f, fsw);
    f->ftw = 0;
    for (unsigned i = 0; i < 8; i++)
        if (((ftw >> (2 * i)) & 3) != 3)
            f->ftw |= (uint8_t)(1u << i);
    update_es(f);
}

/* --- BCD (FBLD / FBSTP) ---------------------------------------------------------------------- */

static fx80 bcd_load(const uint8_t *b)
{
    int64_t v = 0; /* at most 18 digits of 0..15: below 2^61 */
    for (int i = 8; i >= 0; i--)
        v = v * 100 + (b[i] >> 4) * 10 + (b[i] & 15);
    return (b[9] & 0x80) ? fx_neg(fx_from_int(v)) : fx_from_int(v);
}

static void bcd_store(struct x87 *x, fx80 v, uint8_t *b)
{
    memset(b, 0, 10);
    unsigned ignored = 0;
    fx80 r = fx_round_int(v, rc_of(x), &x->exc);
    if (fx_isnan(r) ||
        fx_compare(fx_abs(r), fx_from_int(1000000000000000000LL), true, &ignored) != FX_LT) {
        x->exc = (x->exc & ~FSW_PE) | FSW_IE; /* the packed BCD indefinite */
        b[7] = 0xc0, b[8] = 0xff, b[9] = 0xff;
        return;
    }
    uint64_t u = (uint64_t)fx_to_int(fx_abs(r), 64, 0, &ignored); /* an integer: exact */
    for (unsigned i = 0; i < 9; i++, u /= 100)
        b[i] = (uint8_t)((u % 10) | ((u / 10) % 10) << 4);
    if (fx_signbit(r))
        b[9] = 0x80;
}

/* --- the x87 instruction set ----------------------------------------------------------------- */

static noreturn void raise_ud(struct tcg_cpu *cpu)
{
    tcg_raise_exception(cpu, X86_EXC_UD, 0, false);
}

/* Transcendentals: reduce |x| < 2^63, else C2 = 1 and the operand is left alone. */
static bool trig_in_range(struct x87 *x, fx80 v)
{
    if (fx_isinf(v)) {
        x->exc |= FSW_IE;
        return true;
    }
    if (!fx_isnan(v) && (fx_sexp(v) & 0x7fff) >= 0x3fff + 63) {
        set_cc(x, FSW_C2);
        return false;
    }
    set_cc(x, 0);
    return true;
}

/* FPREM (round_nearest false) / FPREM1: partial remainder with quotient bits in C0 C3 C1. */
static void fprem(struct x87 *x, bool nearest)
{
    fx80 a = st_get(x, 0), b = st_get(x, 1);
    if (fx_isnan(a) || fx_isnan(b) || fx_isinf(a) || fx_iszero(b)) {
        if (!fx_isnan(a) && !fx_isnan(b))
            x->exc |= FSW_IE, a = default_nan();
        else if (ld_is_snan(a) || ld_is_snan(b))
            x->exc |= FSW_IE;
        st_set(x, 0, fx_isnan(a) ? a : fx_isnan(b) ? b : a);
        set_cc(x, 0);
        return;
    }
    if (fx_isinf(b) || fx_iszero(a)) {
        set_cc(x, 0);
        return;
    }
    int ea = fx_ilogb(a), eb = fx_ilogb(b);
    if (ea - eb >= 64) {
        /* Partial: reduce by b * 2^k, a multiple of b, so the final remainder is unchanged. */
        int k = ea - eb - (32 + (ea - eb) % 32);
        if (k < 1)
            k = 1;
        unsigned exact = 0;
        st_set(x, 0, fx_rem(a, fx_scalbn(b, k, 0, &exact), false, NULL));
        set_cc(x, FSW_C2);
        return;
    }
    uint64_t q;
    st_set(x, 0, fx_rem(a, b, nearest, &q));
    set_cc(x, ((q & 4) ? FSW_C0 : 0) | ((q & 2) ? FSW_C3 : 0) | ((q & 1) ? FSW_C1 : 0));
}

static void fxam(struct x87 *x)
{
    unsigned cc;
    if (st_empty(x, 0)) {
        cc = FSW_C3 | FSW_C0;
    } else {
        fx80 v = x->f->st[phys(x, 0)];
        unsigned e = fx_sexp(v) & 0x7fff;
        uint64_t m = fx_mant(v);
        if (e == 0x7fff && !(m >> 63))
            cc = 0; /* pseudo-infinity / pseudo-NaN: unsupported */
        else if (e == 0x7fff)
            cc = (m << 1) == 0 ? (FSW_C2 | FSW_C0) : FSW_C0; /* inf : NaN */
        else if (e == 0)
            cc = m == 0 ? FSW_C3 : (FSW_C3 | FSW_C2);
        else
            cc = (m >> 63) ? FSW_C2 : 0; /* normal : unsupported (unnormal) */
        if (fx_sexp(v) & 0x8000)
            cc |= FSW_C1;
    }
    set_cc(x, cc);
}

/* The D9 E0-FF group's functions (fx80.h), under the guest's rounding control. */
static fx80 transcend(struct x87 *x, unsigned low, fx80 a, fx80 b)
{
    return fx_transcend(low, a, b, rc_of(x), &x->exc);
}

static fx80 fscale(struct x87 *x, fx80 a, fx80 b)
{
    if (fx_isnan(a) || fx_isnan(b))
        return arith(x, 0, a, b);
    if (fx_isinf(b)) {
        bool neg = fx_signbit(b);
        if ((neg && fx_isinf(a)) || (!neg && fx_iszero(a))) {
            x->exc |= FSW_IE;
            return default_nan();
        }
        unsigned sign = fx_sexp(a) & 0x8000u;
        return neg ? fx_make(sign, 0) : fx_iszero(a) ? a : fx_make(sign | 0x7fff, 1ULL << 63);
    }
    return fx_scalbn(a, fx_scale_count(b), rc_of(x), &x->exc);
}

static void x87_register_form(struct x87 *x, unsigned op, unsigned modrm)
{
    unsigned reg = (modrm >> 3) & 7, i = modrm & 7;
    struct tcg_fpu *f = x->f;
    switch (op) {
    case 0: /* D8: ST(0) = ST(0) op ST(i); FCOM/FCOMP */
        if (reg == 2 || reg == 3) {
            set_cc(x, compare(x, st_get(x, 0), st_get(x, i), false));
            if (reg == 3)
                pop(x);
        } else {
            st_set(x, 0, arith(x, reg, st_get(x, 0), st_get(x, i)));
        }
        return;
    case 4:                        /* DC: ST(i) = ST(i) op ST(0), SUB/SUBR and DIV/DIVR swapped */
    case 6:                        /* DE: the same and pop */
        if (op == 6 && reg == 3) { /* FCOMPP (DE D9 only) */
            if (i != 1)
                raise_ud(x->cpu);
            set_cc(x, compare(x, st_get(x, 0), st_get(x, 1), false));
            pop(x);
            pop(x);
            return;
        }
        if (reg == 2 || reg == 3) { /* FCOM2/FCOMP3/FCOMP5 aliases */
            set_cc(x, compare(x, st_get(x, 0), st_get(x, i), false));
            if (reg == 3 || op == 6)
                pop(x);
            return;
        }
        st_set(x, i, arith(x, reg >= 4 ? reg ^ 1 : reg, st_get(x, i), st_get(x, 0)));
        if (op == 6)
            pop(x);
        return;
    case 1:
        switch (reg) {
        case 0:
            push(x, st_get(x, i));
            return; /* FLD ST(i): read before the push */
        case 1: {   /* FXCH */
            fx80 a = st_get(x, 0), b = st_get(x, i);
            st_set(x, 0, b);
            st_set(x, i, a);
            set_cc(x, 0);
            return;
        }
        case 2:
            if (i == 0)
                return; /* FNOP */
            break;
        case 3: /* FSTP1 alias */
            st_set(x, i, st_get(x, 0));
            pop(x);
            return;
        case 4:
            switch (i) {
            case 0:
                st_set(x, 0, fx_neg(st_get(x, 0)));
                set_cc(x, 0);
                return; /* FCHS */
            case 1:
                st_set(x, 0, fx_abs(st_get(x, 0)));
                set_cc(x, 0);
                return;
            case 4:
                set_cc(x, compare(x, st_get(x, 0), fx_from_int(0), false));
                return; /* FTST */
            case 5:
                fxam(x);
                return;
            }
            break;
        case 5: {
            if (i == 7)
                break;
            set_cc(x, 0); /* before the push: a stack overflow sets C1 */
            push(x, fx_const(i));
            return;
        }
        case 6:
            switch (i) {
            case 0: { /* F2XM1 */
                fx80 a = st_get(x, 0);
                st_set(x, 0, transcend(x, 0, a, a));
                return;
            }
            case 1:
            case 3: { /* FYL2X, FPATAN: ST(1) = f(ST(0), ST(1)), pop */
                fx80 r = transcend(x, i, st_get(x, 0), st_get(x, 1));
                st_set(x, 1, r);
                pop(x);
                set_cc(x, 0);
                return;
            }
            case 2: { /* FPTAN */
                fx80 a = st_get(x, 0);
                if (trig_in_range(x, a)) {
                    st_set(x, 0, transcend(x, 2, a, a));
                    push(x, fx_from_int(1));
                }
                return;
            }
            case 4: { /* FXTRACT */
                fx80 a = st_get(x, 0), e, m;
                if (fx_iszero(a)) {
                    x->exc |= FSW_ZE;
                    e = fx_make(0xffff, 1ULL << 63), m = a; /* -inf */
                } else if (fx_isinf(a)) {
                    e = fx_make(0x7fff, 1ULL << 63), m = a;
                } else if (fx_isnan(a)) {
                    e = m = a;
                } else {
                    unsigned exact = 0;
                    int k = fx_ilogb(a);
                    e = fx_from_int(k);
                    m = fx_scalbn(a, -k, 0, &exact);
                }
                st_set(x, 0, e);
                push(x, m);
                return;
            }
            case 5:
                fprem(x, true);
                return;
            case 6:
                f->top = (f->top - 1) & 7;
                set_cc(x, 0);
                return; /* FDECSTP */
            case 7:
                f->top = (f->top + 1) & 7;
                set_cc(x, 0);
                return; /* FINCSTP */
            }
            break;
        case 7:
            switch (i) {
            case 0:
                fprem(x, false);
                return;
            case 1: { /* FYL2XP1 */
                fx80 r = transcend(x, 9, st_get(x, 0), st_get(x, 1));
                st_set(x, 1, r);
                pop(x);
                return;
            }
            case 2: { /* FSQRT */
                fx80 a = st_get(x, 0);
                st_set(x, 0, transcend(x, 0xa, a, a));
                return;
            }
            case 3: { /* FSINCOS */
                fx80 a = st_get(x, 0);
                if (trig_in_range(x, a)) {
                    fx80 s = transcend(x, 0xe, a, a), c = transcend(x, 0xf, a, a);
                    st_set(x, 0, s);
                    push(x, c);
                }
                return;
            }
            case 4: /* FRNDINT */
                st_set(x, 0, fx_round_int(st_get(x, 0), rc_of(x), &x->exc));
                return;
            case 5:
                st_set(x, 0, fscale(x, st_get(x, 0), st_get(x, 1)));
                return;
            case 6:
            case 7: {
                fx80 a = st_get(x, 0);
                if (trig_in_range(x, a))
                    st_set(x, 0, transcend(x, i == 6 ? 0xe : 0xf, a, a));
                return;
            }
            }
            break;
        }
        break;
    case 2: /* DA: FCMOVB/E/BE/U, FUCOMPP */
    case 3: /* DB: FCMOVNB/NE/NBE/NU, FNCLEX, FNINIT, FUCOMI, FCOMI */
        if (reg < 4) {
            static const uint8_t cc[4] = {2, 4, 6, 10}; /* B E BE P */
            uint32_t fl = x86_flags_compute((uint32_t)x->cpu->cc_op, x->cpu->cc_dst, x->cpu->cc_src,
                                            x->cpu->cc_src2);
            bool take = x86_flags_condition(fl, cc[reg] | (op == 3 ? 1u : 0u)) != 0;
            fx80 v = st_get(x, i);
            if (take)
                st_set(x, 0, v);
            return;
        }
        if (op == 2 && modrm == 0xe9) { /* FUCOMPP */
            set_cc(x, compare(x, st_get(x, 0), st_get(x, 1), true));
            pop(x);
            pop(x);
            return;
        }
        if (op == 3 && reg == 4) {
            if (i == 2) { /* FNCLEX */
                f->fsw &= (uint16_t) ~(0xffu | FSW_B);
                return;
            }
            if (i == 3) {
                fninit(f);
                return;
            }
            if (i == 0 || i == 1 || i == 4)
                return; /* FENI, FDISI, FSETPM: no-ops since the 287 */
            break;
        }
        if (op == 3 && (reg == 5 || reg == 6)) { /* FUCOMI, FCOMI */
            set_eflags_from_cc(x, compare(x, st_get(x, 0), st_get(x, i), reg == 5));
            return;
        }
        break;
    case 5: /* DD: FFREE, FST, FSTP, FUCOM, FUCOMP */
        switch (reg) {
        case 0:
            f->ftw &= (uint8_t) ~(1u << phys(x, i));
            return;
        case 1: { /* FXCH4 alias */
            fx80 a = st_get(x, 0), b = st_get(x, i);
            st_set(x, 0, b);
            st_set(x, i, a);
            return;
        }
        case 2:
            st_set(x, i, st_get(x, 0));
            return;
        case 3:
            st_set(x, i, st_get(x, 0));
            pop(x);
            return;
        case 4:
        case 5:
            set_cc(x, compare(x, st_get(x, 0), st_get(x, i), true));
            if (reg == 5)
                pop(x);
            return;
        }
        break;
    case 7: /* DF: FFREEP, FNSTSW AX, FUCOMIP, FCOMIP */
        if (reg == 0) {
            f->ftw &= (uint8_t) ~(1u << phys(x, i));
            pop(x);
            return;
        }
        if (reg == 4 && i == 0) {
            x->cpu->gpr[0] = (x->cpu->gpr[0] & ~0xffffULL) | read_fsw(f);
            return;
        }
        if (reg == 5 || reg == 6) {
            set_eflags_from_cc(x, compare(x, st_get(x, 0), st_get(x, i), reg == 5));
            pop(x);
            return;
        }
        if (reg == 1) { /* FXCH7 alias */
            fx80 a = st_get(x, 0), b = st_get(x, i);
            st_set(x, 0, b);
            st_set(x, i, a);
            return;
        }
        if (reg == 2 || reg == 3) { /* FSTP8/9 aliases */
            st_set(x, i, st_get(x, 0));
            pop(x);
            return;
        }
        break;
    }
    raise_ud(x->cpu);
}

static void store_real(struct x87 *x, uint64_t addr, fx80 v, unsigned bytes)
{
    uint64_t bits = fx_to_real(v, bytes, rc_of(x), &x->exc);
    probe_write(x->cpu, addr, bytes);
    mmu_store(x->cpu, addr, bits, bytes);
}

static void x87_memory_form(struct x87 *x, unsigned op, unsigned modrm, uint64_t addr,
                            uint64_t desc)
{
    unsigned reg = (modrm >> 3) & 7;
    struct tcg_fpu *f = x->f;
    struct tcg_cpu *cpu = x->cpu;
    if (!(op & 1)) { /* D8 DA DC DE: arithmetic with m32real, m32int, m64real, m16int */
        fx80 m = load_mem_real(x, addr, op >> 1);
        if (reg == 2 || reg == 3) {
            set_cc(x, compare(x, st_get(x, 0), m, false));
            if (reg == 3)
                pop(x);
        } else {
            st_set(x, 0, arith(x, reg, st_get(x, 0), m));
        }
        return;
    }
    switch (op << 3 | reg) {
    case 1 << 3 | 0:
        push(x, load_mem_real(x, addr, 0));
        return; /* FLD m32 */
    case 5 << 3 | 0:
        push(x, load_mem_real(x, addr, 2));
        return; /* FLD m64 */
    case 3 << 3 | 0:
        push(x, load_mem_real(x, addr, 1));
        return; /* FILD m32 */
    case 7 << 3 | 0:
        push(x, load_mem_real(x, addr, 3));
        return; /* FILD m16 */
    case 7 << 3 | 5:
        push(x, fx_from_int((int64_t)mmu_load(cpu, addr, 8)));
        return;
    case 3 << 3 | 5: { /* FLD m80 */
        uint8_t b[10];
        fpu_load_bytes(cpu, addr, b, 10);
        uint16_t e;
        uint64_t m;
        memcpy(&m, b, 8), memcpy(&e, b + 8, 2);
        push(x, fx_make(e, m));
        return;
    }
    case 7 << 3 | 4: { /* FBLD */
        uint8_t b[10];
        fpu_load_bytes(cpu, addr, b, 10);
        push(x, bcd_load(b));
        return;
    }
    case 1 << 3 | 2:
    case 1 << 3 | 3: /* FST/FSTP m32 */
    case 5 << 3 | 2:
    case 5 << 3 | 3: /* FST/FSTP m64 */
        store_real(x, addr, st_get(x, 0), op == 1 ? 4 : 8);
        if (reg == 3)
            pop(x);
        return;
    case 3 << 3 | 7: { /* FSTP m80 */
        fx80 v = st_get(x, 0);
        uint8_t b[10];
        uint64_t m = fx_mant(v);
        uint16_t e = (uint16_t)fx_sexp(v);
        memcpy(b, &m, 8), memcpy(b + 8, &e, 2);
        fpu_store_bytes(cpu, addr, b, 10);
        pop(x);
        return;
    }
    case 7 << 3 | 6: { /* FBSTP */
        uint8_t b[10];
        bcd_store(x, st_get(x, 0), b);
        fpu_store_bytes(cpu, addr, b, 10);
        pop(x);
        return;
    }
    /* FIST/FISTP/FISTTP: DB m32, DD (FISTTP) m64, DF m16 and m64 */
    case 3 << 3 | 1:
    case 3 << 3 | 2:
    case 3 << 3 | 3:
    case 5 << 3 | 1:
    case 7 << 3 | 1:
    case 7 << 3 | 2:
    case 7 << 3 | 3:
    case 7 << 3 | 7: {
        unsigned bytes = op == 3 ? 4 : op == 5 ? 8 : reg == 7 ? 8 : 2;
        int64_t v = to_int(x, st_get(x, 0), bytes * 8, reg == 1);
        probe_write(cpu, addr, bytes);
        mmu_store(cpu, addr, (uint64_t)v & (bytes == 8 ? ~0ULL : (1ULL << (bytes * 8)) - 1), bytes);
        if (reg != 2)
            pop(x);
        return;
    }
    case 1 << 3 | 4: { /* FLDENV */
        uint8_t b[28];
        fpu_load_bytes(cpu, addr, b, env_size(desc));
        load_env(x, b, desc);
        return;
    }
    case 1 << 3 | 5: /* FLDCW */
        f->fcw = (uint16_t)((mmu_load(cpu, addr, 2) & 0x1f7f) | 0x40);
        update_es(f);
        return;
    case 1 << 3 | 6: /* FNSTENV: then all exceptions masked */
        store_env(x, addr, desc);
        f->fcw |= 0x3f;
        return;
    case 1 << 3 | 7: /* FNSTCW */
        probe_write(cpu, addr, 2);
        mmu_store(cpu, addr, f->fcw, 2);
        return;
    case 5 << 3 | 4: { /* FRSTOR */
        uint8_t b[28 + 80];
        unsigned n = env_size(desc);
        fpu_load_bytes(cpu, addr, b, n + 80);
        load_env(x, b, desc);
        for (unsigned i = 0; i < 8; i++) {
            uint64_t m;
            uint16_t e;
            memcpy(&m, b + n + 10 * i, 8), memcpy(&e, b + n + 10 * i + 8, 2);
            f->st[phys(x, i)] = fx_make(e, m);
        }
        return;
    }
    case 5 << 3 | 6: { /* FNSAVE: then FNINIT */
        uint8_t b[80];
        unsigned n = env_size(desc);
        probe_write(cpu, addr, n + 80);
        for (unsigned i = 0; i < 8; i++) {
            fx80 v = f->st[phys(x, i)];
            uint64_t m = fx_mant(v);
            uint16_t e = (uint16_t)fx_sexp(v);
            memcpy(b + 10 * i, &m, 8), memcpy(b + 10 * i + 8, &e, 2);
        }
        store_env(x, addr, desc);
        fpu_store_bytes(cpu, addr + n, b, 80);
        fninit(f);
        return;
    }
    case 5 << 3 | 7: /* FNSTSW m16 */
        probe_write(cpu, addr, 2);
        mmu_store(cpu, addr, read_fsw(f), 2);
        return;
    }
    raise_ud(cpu);
}

/* Control instructions (no FIP/FOP update and no pending-exception check): FNINIT FNCLEX
 * FLDCW FNSTCW FNSTSW FLDENV FNSTENV FRSTOR FNSAVE. */
static bool is_control(unsigned op, unsigned modrm, bool mem)
{
    unsigned reg = (modrm >> 3) & 7;
    if (mem)
        return (op == 1 && reg >= 4) || (op == 5 && (reg == 4 || reg == 6 || reg == 7));
    return (op == 3 && (modrm == 0xe2 || modrm == 0xe3)) || (op == 7 && modrm == 0xe0);
}

static void x87_exec(struct tcg_cpu *cpu, uint64_t desc, uint64_t addr)
{
    unsigned op = FD_OPCODE(desc) & 7, modrm = FD_MODRM(desc);
    bool mem = FD_HAS_MEM(desc);
    struct x87 x = {cpu, &cpu->fpu, 0};
    bool control = is_control(op, modrm, mem);
    /* A pending unmasked exception is delivered by the next waiting instruction. */
    bool no_wait =
        control && !(mem && op == 1 && (((modrm >> 3) & 7) == 4 || ((modrm >> 3) & 7) == 5));
    if (!no_wait && (x.f->fsw & FSW_ES) && (cpu->cr0 & X86_CR0_NE))
        tcg_raise_exception(cpu, X86_EXC_MF, 0, false);
    if (!control) {
        x.f->fop = (uint16_t)(op << 8 | modrm);
        x.f->fip = cpu->rip;
        x.f->fcs = cpu->seg[SEG_CS].selector;
        if (mem) {
            x.f->fdp = addr;
            x.f->fds = cpu->seg[SEG_DS].selector;
        }
    }
    if (mem)
        x87_memory_form(&x, op, modrm, addr, desc);
    else
        x87_register_form(&x, op, modrm);
    if (x.exc) { /* C1 of stack faults was already set by push/st_get */
        x.f->fsw |= (uint16_t)x.exc;
        update_es(x.f);
    }
}

/* --- FXSAVE / FXRSTOR / LDMXCSR / STMXCSR ------------------------------------------------------
 */

static void fxsave(struct tcg_cpu *cpu, uint64_t addr, uint64_t desc)
{
    struct tcg_fpu *f = &cpu->fpu;
    uint8_t b[512] = {0};
    uint16_t w;
    w = f->fcw, memcpy(b, &w, 2);
    w = read_fsw(f), memcpy(b + 2, &w, 2);
    b[4] = f->ftw;
    w = f->fop, memcpy(b + 6, &w, 2);
    if (FD_REX_W(desc)) { /* FXSAVE64: 64-bit FIP/FDP */
        memcpy(b + 8, &f->fip, 8);
        memcpy(b + 16, &f->fdp, 8);
    } else {
        uint32_t d = (uint32_t)f->fip;
        memcpy(b + 8, &d, 4), memcpy(b + 12, &f->fcs, 2);
        d = (uint32_t)f->fdp;
        memcpy(b + 16, &d, 4), memcpy(b + 20, &f->fds, 2);
    }
    uint32_t m = f->mxcsr, mask = FPU_MXCSR_MASK;
    memcpy(b + 24, &m, 4), memcpy(b + 28, &mask, 4);
    for (unsigned i = 0; i < 8; i++) {
        fx80 v = f->st[(f->top + i) & 7];
        uint64_t mant = fx_mant(v);
        uint16_t e = (uint16_t)fx_sexp(v);
        memcpy(b + 32 + 16 * i, &mant, 8), memcpy(b + 40 + 16 * i, &e, 2);
    }
    unsigned nxmm = FD_MODE64(desc) ? 16 : 8;
    memcpy(b + 160, f->xmm, 16 * nxmm);
    /* Bytes 464-511 are software-available: leave the guest's data there. */
    fpu_store_bytes(cpu, addr, b, 464);
}

static void fxrstor(struct tcg_cpu *cpu, uint64_t addr, uint64_t desc)
{
    struct tcg_fpu *f = &cpu->fpu;
    uint8_t b[416];
    fpu_load_bytes(cpu, addr, b, sizeof(b));
    uint32_t m;
    memcpy(&m, b + 24, 4);
    if (m & ~FPU_MXCSR_MASK)
        tcg_raise_exception(cpu, X86_EXC_GP, 0, true);
    uint16_t w;
    memcpy(&w, b, 2), f->fcw = (uint16_t)((w & 0x1f7f) | 0x40);
    memcpy(&w, b + 2, 2), write_fsw(f, w);
    f->ftw = b[4];
    memcpy(&w, b + 6, 2), f->fop = w & 0x7ff;
    if (FD_REX_W(desc)) {
        memcpy(&f->fip, b + 8, 8);
        memcpy(&f->fdp, b + 16, 8);
    } else {
        uint32_t d;
        memcpy(&d, b + 8, 4), f->fip = d, memcpy(&f->fcs, b + 12, 2);
        memcpy(&d, b + 16, 4), f->fdp = d, memcpy(&f->fds, b + 20, 2);
    }
    f->mxcsr = m;
    for (unsigned i = 0; i < 8; i++) {
        uint64_t mant;
        uint16_t e;
        memcpy(&mant, b + 32 + 16 * i, 8), memcpy(&e, b + 40 + 16 * i, 2);
        f->st[(f->top + i) & 7] = fx_make(e, mant);
    }
    memcpy(f->xmm, b + 160, 16 * (FD_MODE64(desc) ? 16 : 8));
    update_es(f);
}

int tcg_fpu_get(const struct tcg_cpu *cpu, struct vcpu_fpu *out)
{
    const struct tcg_fpu *f = &cpu->fpu;
    if (cpu->fp_live.live)
        return -1; /* flags still in a host MXCSR (the vCPU thread's): not stopped */
    memset(out, 0, sizeof(*out));
    out->fcw = f->fcw;
    out->fsw = read_fsw(f);
    out->ftw = f->ftw;
    out->fop = f->fop;
    out->fcs = f->fcs, out->fds = f->fds;
    out->fip = f->fip, out->fdp = f->fdp;
    out->mxcsr = f->mxcsr;
    for (unsigned i = 0; i < 8; i++) {
        fx80 v = f->st[(f->top + i) & 7];
        uint64_t mant = fx_mant(v);
        uint16_t e = (uint16_t)fx_sexp(v);
        memcpy(out->st[i], &mant, 8), memcpy(out->st[i] + 8, &e, 2);
    }
    memcpy(out->xmm, f->xmm, sizeof(out->xmm));
    return 0;
}

int tcg_fpu_set(struct tcg_cpu *cpu, const struct vcpu_fpu *in)
{
    struct tcg_fpu *f = &cpu->fpu;
    if (cpu->fp_live.live || (in->mxcsr & ~FPU_MXCSR_MASK))
        return -1;                                  /* FXRSTOR and LDMXCSR would #GP */
    f->fcw = (uint16_t)((in->fcw & 0x1f7f) | 0x40); /* as FXRSTOR keeps it */
    write_fsw(f, in->fsw);
    f->ftw = in->ftw;
    f->fop = in->fop & 0x7ff;
    f->fcs = in->fcs, f->fds = in->fds;
    f->fip = in->fip, f->fdp = in->fdp;
    for (unsigned i = 0; i < 8; i++) {
        uint64_t mant;
        uint16_t e;
        memcpy(&mant, in->st[i], 8), memcpy(&e, in->st[i] + 8, 2);
        f->st[(f->top + i) & 7] = fx_make(e, mant);
    }
    memcpy(f->xmm, in->xmm, sizeof(f->xmm));
    update_es(f);
    f->mxcsr = in->mxcsr;
    tcg_update_hflags(cpu); /* HF_MXFAST, as after LDMXCSR */
    return 0;
}

uint64_t h_fpu_sse(void *env, uint64_t desc, uint64_t addr, uint64_t c, uint64_t d)
{
    (void)c, (void)d;
    struct tcg_cpu *cpu = env;
    unsigned kind = FD_KIND(desc);
    tcg_fp_release(cpu); /* the guest's MXCSR complete, the host's own FP environment */
    switch (kind) {
    case FK_WAIT:
        if ((cpu->cr0 & (CR0_TS | X86_CR0_MP)) == (CR0_TS | X86_CR0_MP))
            tcg_raise_exception(cpu, X86_EXC_NM, 0, false);
        if ((cpu->fpu.fsw & FSW_ES) && (cpu->cr0 & X86_CR0_NE))
            tcg_raise_exception(cpu, X86_EXC_MF, 0, false);
        return 0;
    case FK_X87:
        if (cpu->cr0 & (CR0_EM | CR0_TS))
            tcg_raise_exception(cpu, X86_EXC_NM, 0, false);
        x87_exec(cpu, desc, addr);
        return 0;
    case FK_FXSAVE:
    case FK_FXRSTOR:
        if (cpu->cr0 & (CR0_EM | CR0_TS))
            tcg_raise_exception(cpu, X86_EXC_NM, 0, false);
        if (addr & 15)
            tcg_raise_exception(cpu, X86_EXC_GP, 0, true);
        if (kind == FK_FXSAVE)
            fxsave(cpu, addr, desc);
        else
            fxrstor(cpu, addr, desc);
        tcg_update_hflags(cpu); /* HF_MXFAST */
        return 0;
    default: /* SSE class and LDMXCSR/STMXCSR */
        if (FD_MAP(desc) == X86_MAP_0F && FD_OPCODE(desc) == 0x77 && FD_MP(desc) == X86_MP_NONE) {
            /* EMMS: x87 state only (MMX registers alias it), no CR4.OSFXSR needed. Linux
             * runs it on AMD CPUs to clear FXSAVE leaks even without using MMX. */
            if (cpu->cr0 & CR0_EM)
                raise_ud(cpu);
            if (cpu->cr0 & CR0_TS)
                tcg_raise_exception(cpu, X86_EXC_NM, 0, false);
            if ((cpu->fpu.fsw & FSW_ES) && (cpu->cr0 & X86_CR0_NE))
                tcg_raise_exception(cpu, X86_EXC_MF, 0, false);
            cpu->fpu.ftw = 0; /* every register empty */
            return 0;
        }
        if ((cpu->cr0 & CR0_EM) || !(cpu->cr4 & CR4_OSFXSR))
            raise_ud(cpu);
        if (cpu->cr0 & CR0_TS)
            tcg_raise_exception(cpu, X86_EXC_NM, 0, false);
        if (kind == FK_LDMXCSR) {
            uint32_t m = (uint32_t)mmu_load(cpu, addr, 4);
            if (m & ~FPU_MXCSR_MASK)
                tcg_raise_exception(cpu, X86_EXC_GP, 0, true);
            cpu->fpu.mxcsr = m;
            tcg_update_hflags(cpu); /* HF_MXFAST */
        } else if (kind == FK_STMXCSR) {
            probe_write(cpu, addr, 4);
            mmu_store(cpu, addr, cpu->fpu.mxcsr, 4);
        } else {
            sse_exec(cpu, desc, addr);
        }
        return 0;
    }
}
