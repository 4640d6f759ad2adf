/* x87 / SSE register state of the translator's vCPU (struct tcg_cpu.fpu).
 *
 * The x87 data registers (fx80) are host `long double` on x86-64 hosts (gcc and clang, SysV
 * ABI): exactly the 80-bit extended format (64-bit explicit mantissa, 15-bit exponent) in the
 * low 10 bytes of a 16-byte slot, so guest values round-trip bit-exactly (fx80.h asserts the
 * format). Other hosts hold the same 10 bytes in a struct of the same size and alignment and
 * compute with softfloat80.c. */
#ifndef QUOKKA_ACCEL_TCG_FPU_STATE_H
#define QUOKKA_ACCEL_TCG_FPU_STATE_H

#include <stdint.h>

/* The host's x87 and SSE compute the guest's x87 and SSE arithmetic on x86-64 hosts; elsewhere,
 * or built with -DQUOKKA_SOFT_FLOAT (which lets the x86-64 unit tests check the software path
 * against the CPU), softfloat80.c does. */
#if defined(__x86_64__) && !defined(QUOKKA_SOFT_FLOAT)
#define QUOKKA_HOST_X87 1
#else
#define QUOKKA_HOST_X87 0
#endif

#if QUOKKA_HOST_X87
typedef long double fx80;
#else
typedef struct {
    _Alignas(16) uint64_t mant; /* explicit integer bit 63 */
    uint16_t sexp;              /* sign << 15 | biased exponent */
    uint16_t pad[3];
} fx80;
#endif
_Static_assert(sizeof(fx80) == 16, "an x87 register is a 16-byte slot");

/* One XMM register; the views alias (C11 union type punning), little-endian lanes. */
union xmm_reg {
    uint8_t b[16];
    uint16_t w[8];
    uint32_t d[4];
    uint64_t q[2];
    float f[4];
    double df[2];
};

#define FPU_FCW_RESET 0x037fu
#define FPU_MXCSR_RESET 0x1f80u
#define FPU_MXCSR_MASK 0xffffu /* writable MXCSR bits (DAZ supported), reported by FXSAVE */

struct tcg_fpu {
    fx80 st[8]; /* physical registers R0..R7; ST(i) is st[(top + i) & 7] */
    uint16_t fcw;
    uint16_t fsw; /* status word with the TOP field (bits 11-13) kept zero: see top */
    uint8_t top;
    uint8_t ftw;  /* abridged tag (FXSAVE form): bit i set = R(i) not empty */
    uint16_t fop; /* last non-control instruction's opcode (11 bits) */
    uint16_t fcs, fds;
    uint64_t fip, fdp; /* its address and its memory operand's address */
    uint32_t mxcsr;
    union xmm_reg xmm[16];
};

void tcg_fpu_reset(struct tcg_fpu *fpu); /* processor reset / FNINIT + MXCSR default */

#endif
