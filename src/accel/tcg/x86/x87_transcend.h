/* The x87 transcendental instructions (F2XM1, FYL2X, FPTAN, FPATAN, FYL2XP1, FSIN, FCOS and
 * FSINCOS's halves), one implementation for every host: the result is computed in IEEE
 * binary128 with basic arithmetic only (+ - * /, conversions: correctly rounded on every host,
 * so the same bits everywhere; no libm), then rounded once into the 80-bit format under the
 * guest's rounding control. See x87_transcend.c for the semantics and how they compare with
 * a real x87. */
#ifndef QUOKKA_ACCEL_TCG_X86_X87_TRANSCEND_H
#define QUOKKA_ACCEL_TCG_X86_X87_TRANSCEND_H

#include "accel/tcg/x86/softfloat80.h"

/* The D9 E0-FF group's low bits: 0x0 F2XM1 (2^a - 1), 0x1 FYL2X (b * log2 a), 0x2 FPTAN (tan a;
 * the caller pushes 1.0), 0x3 FPATAN (atan2(b, a)), 0x9 FYL2XP1 (b * log2(1 + a)), 0xe sin a,
 * 0xf cos a. a is ST(0), b ST(1). rc: x86 rounding control; flags (SF_*, no DE) are ORed into
 * *exc. FSIN/FCOS/FPTAN operands must be below 2^63 in magnitude (the caller sets C2
 * otherwise); infinities give IE and the indefinite. */
struct sf80 x87_transcend(unsigned op, struct sf80 a, struct sf80 b, unsigned rc, unsigned *exc);

#endif
