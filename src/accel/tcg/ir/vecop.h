/* IR_VOP: one 64-bit half of a 128-bit x86 SSE instruction, done by the host's SSE unit.
 *
 * The translator keeps each XMM register as two 64-bit IR globals. Packed integer operations
 * (string functions: PCMPEQB, PMINUB, unpacks, shuffles...) and packed floating point in
 * helpers cost a call, a decode and a trip through memory each; IR_VOP runs the guest's own
 * instruction instead: d = half `half` of op(a, b), a = {a_lo, a_hi} the destination operand,
 * b = {b_lo, b_hi} the source. A backend may compute both halves of a pair of VOPs with the
 * same operands at once. Floating-point forms run under IR_FPENV (fpenv.h) and only while the
 * guest masks every exception, as IR_FPOP does.
 *
 * x86-64 hosts only (like IR_FPOP); elsewhere front ends do not emit it and backends refuse
 * it. */
#ifndef QUOKKA_ACCEL_TCG_IR_VECOP_H
#define QUOKKA_ACCEL_TCG_IR_VECOP_H

#include <stdbool.h>
#include <stdint.h>

/* IR_VOP's imm: half << 24 | imm8 << 16 | mandatory prefix (0, 0x66, 0xf2, 0xf3) << 8 |
 * the opcode byte after 0F. */
#define IR_VOP_INSN(prefix, opc, imm8, half)                                                       \
    ((uint32_t)(half) << 24 | (uint32_t)(imm8) << 16 | (uint32_t)(prefix) << 8 | (uint32_t)(opc))
#define IR_VOP_HALF (1u << 24)

enum ir_vop_kind {
    IR_VOP_NONE,  /* not an IR_VOP instruction */
    IR_VOP_INT,   /* integer or data movement: no MXCSR involvement */
    IR_VOP_IMM8,  /* data movement with an imm8 operand (shuffles) */
    IR_VOP_FP,    /* floating point: under IR_FPENV */
    IR_VOP_FPCMP, /* CMPPS/CMPPD: floating point with a predicate imm8 (0-7) */
};

/* The kind of prefix/opcode (the low 16 bits of the imm). */
enum ir_vop_kind ir_vop_kind(uint32_t insn);
/* The memory form reads 8 bytes (CVTPS2PD, CVTDQ2PD), not 16 aligned ones. */
bool ir_vop_mem64(uint32_t insn);
bool ir_vop_valid(uint64_t imm);

/* The interpreter's IR_VOP (the native backend emits the instruction inline). */
uint64_t ir_vop_eval(uint32_t insn, uint64_t a_lo, uint64_t a_hi, uint64_t b_lo, uint64_t b_hi);

#endif
