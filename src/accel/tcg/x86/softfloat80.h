/* Software x87 extended precision (80-bit) and IEEE binary32/binary64 arithmetic, bit-exact
 * with the x86 hardware: used by the x87 and SSE helpers on hosts without an x87 (fpu.c and
 * sse.c choose it at compile time; on x86-64 hosts the host FPU runs instead). The unit test
 * (tests/unit/test_softfloat80.c) compares it against the host x87 and SSE on x86-64.
 *
 * Exception flags use the x87/MXCSR bit order (IE 1, DE 2, ZE 4, OE 8, UE 0x10, PE 0x20).
 * Results are the masked responses; x86 detects tininess after rounding. */
#ifndef QUOKKA_ACCEL_TCG_X86_SOFTFLOAT80_H
#define QUOKKA_ACCEL_TCG_X86_SOFTFLOAT80_H

#include <stdbool.h>
#include <stdint.h>

#define SF_IE 0x01u
#define SF_DE 0x02u
#define SF_ZE 0x04u
#define SF_OE 0x08u
#define SF_UE 0x10u
#define SF_PE 0x20u

/* An 80-bit value: explicit-integer-bit mantissa, sign << 15 | biased exponent. */
struct sf80 {
    uint64_t mant;
    uint16_t sexp;
};

/* Rounding state of one operation and the flags it raised. */
struct sf_env {
    unsigned rc;   /* 0 nearest-even, 1 down, 2 up, 3 toward zero (x86 RC encoding) */
    unsigned prec; /* x87 precision control: 24, 53 or 64 significant bits */
    unsigned exc;  /* SF_* flags raised (ORed) */
    bool c1;       /* the last rounding went up in magnitude (x87 C1) */
    bool ftz;      /* binary32/64 only: MXCSR.FTZ (tiny results become zero, UE and PE) */
    bool daz;      /* binary32/64 only: MXCSR.DAZ (denormal inputs read as zero) */
};

/* Comparison results */
enum { SF_LT, SF_EQ, SF_GT, SF_UN };

struct sf80 sf80_default_nan(void); /* the "real indefinite" */
bool sf80_is_nan(struct sf80 a);
bool sf80_is_snan(struct sf80 a);
bool sf80_is_inf(struct sf80 a);
bool sf80_is_zero(struct sf80 a);

/* op: 0 add, 1 mul, 4 a - b, 5 b - a, 6 a / b, 7 b / a (the D8 /r numbering) */
struct sf80 sf80_arith(struct sf_env *e, unsigned op, struct sf80 a, struct sf80 b);
struct sf80 sf80_add(struct sf_env *e, struct sf80 a, struct sf80 b);
struct sf80 sf80_sub(struct sf_env *e, struct sf80 a, struct sf80 b);
struct sf80 sf80_mul(struct sf_env *e, struct sf80 a, struct sf80 b);
struct sf80 sf80_div(struct sf_env *e, struct sf80 a, struct sf80 b);
struct sf80 sf80_sqrt(struct sf_env *e, struct sf80 a);
struct sf80 sf80_round_int(struct sf_env *e, struct sf80 a); /* FRNDINT: RC, not PC */
int sf80_compare(struct sf_env *e, struct sf80 a, struct sf80 b, bool quiet);

/* Round to an integer of `bits` (16, 32, 64) under e->rc; NaN or out of range: IE and the
 * integer indefinite (the minimum value). */
int64_t sf80_to_int(struct sf_env *e, struct sf80 a, unsigned bits);
struct sf80 sf80_from_int(int64_t v);
struct sf80 sf80_from_f32(struct sf_env *e, uint32_t v);
struct sf80 sf80_from_f64(struct sf_env *e, uint64_t v);
uint32_t sf80_to_f32(struct sf_env *e, struct sf80 a);
uint64_t sf80_to_f64(struct sf_env *e, struct sf80 a);

/* a * 2^n, rounded (n clamped to +-65536). */
struct sf80 sf80_scalbn(struct sf_env *e, struct sf80 a, int n);
/* The exponent of a finite non-zero a (denormals normalized). */
int sf80_ilogb(struct sf80 a);
/* Exact remainder of finite a by finite non-zero b: truncating (fmod) or nearest (IEEE
 * remainder); *q gets the low 64 bits of the integer quotient's magnitude. */
struct sf80 sf80_rem(struct sf_env *e, struct sf80 a, struct sf80 b, bool nearest, uint64_t *q);

/* Rounding of an arbitrary-precision value: sign, the exponent of bit 127 of m (m normalized
 * or zero) and a sticky flag for bits below m. Rounds to e->prec bits (64 at most). */
struct sf80 sf80_round_pack(struct sf_env *e, bool sign, int32_t exp, unsigned __int128 m);

/* IEEE binary32 (dbl false) / binary64 arithmetic with x86 SSE semantics: DAZ/FTZ, NaN
 * propagation (the first operand's NaN, quieted, else the second's), the negative default
 * NaN. op: 0 add, 1 sub, 2 mul, 3 div, 4 sqrt (of b). Values are the raw bits. */
uint64_t sf_ieee_arith(struct sf_env *e, unsigned op, uint64_t a, uint64_t b, bool dbl);
/* binary32 <-> binary64 (to_dbl: widen), SSE NaN rules (sign and top payload kept). */
uint64_t sf_ieee_convert(struct sf_env *e, uint64_t v, bool to_dbl);
/* int64 -> binary32/64 rounded under e->rc. */
uint64_t sf_ieee_from_int(struct sf_env *e, int64_t v, bool dbl);
/* binary32/64 -> int32/int64, rounded (or truncated: chop); the indefinite 1 << (bits-1)
 * with IE on NaN and overflow. */
uint64_t sf_ieee_to_int(struct sf_env *e, uint64_t v, bool dbl, unsigned bits, bool chop);
/* Order of two binary32/64 values (SF_LT...SF_UN); IE on NaN when !quiet, on SNaN always. */
int sf_ieee_compare(struct sf_env *e, uint64_t a, uint64_t b, bool dbl, bool quiet);

#endif
