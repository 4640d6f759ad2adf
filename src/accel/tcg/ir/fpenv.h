/* Host scalar floating point for IR_FPENV / IR_FPOP (see ir.h).
 *
 * Scalar SSE arithmetic done by a helper costs two MXCSR loads per instruction (the guest's
 * rounding control in, the host's back): most of the time of a floating-point guest program.
 * Instead the host's MXCSR holds the guest's control bits for as long as generated code runs:
 * IR_FPENV loads it once (when `live` is clear) and IR_FPOP's host instructions run under it,
 * their exception flags accumulating in the host register. Whoever takes control back from
 * generated code (the run loop, and helpers that read or write the guest's MXCSR or use the
 * host's FP unit themselves) calls ir_fp_release first: the flags go into the guest's MXCSR and
 * the host's default comes back. Only the guest's exception masks are not carried: every
 * exception is masked in the host while live, so FPOP is only used while the guest masks them
 * all (an unmasked one must fault before the destination is written: a helper's job).
 *
 * x86-64 hosts only (the host's SSE unit gives x86 results bit for bit); elsewhere, and in
 * QUOKKA_SOFT_FLOAT builds, front ends do not emit these ops and backends refuse them. */
#ifndef QUOKKA_ACCEL_TCG_IR_FPENV_H
#define QUOKKA_ACCEL_TCG_IR_FPENV_H

#include <stdbool.h>
#include <stdint.h>

#if defined(__x86_64__) && !defined(QUOKKA_SOFT_FLOAT)
#define IR_HOST_FP 1
#else
#define IR_HOST_FP 0
#endif

/* In env, at the offset IR_FPENV names (high 32 bits of its imm). */
struct ir_fp_live {
    uint32_t live; /* nonzero: the host MXCSR is the guest's (FPENV ran, no release since) */
    uint32_t load; /* scratch: the value FPENV loads */
};

/* The MXCSR FPENV loads for a guest MXCSR: its control bits, every exception masked, no
 * flags. */
static inline uint32_t ir_fp_host_mxcsr(uint32_t guest)
{
    return (guest & ~0x3fu) | 0x1f80u;
}

/* IR_FPOP's imm: the x86 scalar SSE instruction, REX.W << 16 | prefix << 8 | opcode byte:
 *   F3/F2 51 58 59 5A 5C-5F (SQRT ADD MUL CVT SUB MIN DIV MAX): d = a, its low lane op(a, b);
 *   F3/F2 2A (CVTSI2SS/SD): d = a, its low lane the integer b (64-bit with W, else 32);
 *   F3/F2 2C 2D (CVTTSS2SI...): d = the integer of b's low lane (W: 64-bit, else 32,
 *   zero-extended);
 *   none/66 2E 2F (UCOMISS/SD, COMISS/SD): d = the ZF, PF and CF bits they set. */
#define IR_FPOP_INSN(rex_w, prefix, opc) ((uint32_t)(rex_w) << 16 | (uint32_t)(prefix) << 8 | (opc))
bool ir_fpop_valid(uint64_t imm);

/* The interpreter's FPENV and FPOP (the native backend emits the same inline). */
void ir_fp_enter(const uint32_t *guest_mxcsr, struct ir_fp_live *l);
uint64_t ir_fp_op(uint32_t insn, uint64_t a, uint64_t b);

/* Take control back: the flags raised since FPENV into the guest's MXCSR, the host's default
 * MXCSR back. Nothing to do when not live. */
static inline void ir_fp_release(uint32_t *guest_mxcsr, struct ir_fp_live *l)
{
#if IR_HOST_FP
    if (l->live) {
        uint32_t now, host = 0x1f80u;
        __asm__ volatile("stmxcsr %0\n\tldmxcsr %1" : "=m"(now) : "m"(host) : "memory");
        *guest_mxcsr |= now & 0x3fu;
        l->live = 0;
    }
#else
    (void)guest_mxcsr;
    (void)l;
#endif
}

#endif
