/* x87, FXSAVE/FXRSTOR, LDMXCSR/STMXCSR (fpu.c) and SSE/SSE2 (sse.c) run in C helpers on env.
 * The translator packs what the helper needs from the decoded instruction into one 64-bit
 * descriptor (x86_fpu_desc) and passes the memory operand's linear address. */
#ifndef QUOKKA_ACCEL_TCG_X86_FPU_H
#define QUOKKA_ACCEL_TCG_X86_FPU_H

#include "accel/tcg/x86/decode.h"

#include <stdint.h>

struct tcg_cpu;

/* Descriptor fields */
#define FD_OPCODE(d) ((unsigned)(d)&0xffu)
#define FD_MODRM(d) ((unsigned)((d) >> 8) & 0xffu)
#define FD_MAP(d) ((unsigned)((d) >> 16) & 3u)
#define FD_MP(d) ((unsigned)((d) >> 18) & 3u) /* enum x86_mandatory_prefix */
#define FD_HAS_MEM(d) (((d) >> 20) & 1u)
#define FD_REX_W(d) (((d) >> 21) & 1u)
#define FD_REG(d) ((unsigned)((d) >> 22) & 0xfu) /* ModRM.reg with REX.R */
#define FD_RM(d) ((unsigned)((d) >> 26) & 0xfu)  /* ModRM.rm with REX.B */
#define FD_OPSIZE16(d) (((d) >> 30) & 1u)        /* 16-bit operand size (FSTENV/FSAVE format) */
#define FD_MODE64(d) (((d) >> 31) & 1u)
#define FD_KIND(d) ((unsigned)((d) >> 32) & 0xfu)
#define FD_IMM8(d) ((unsigned)((d) >> 40) & 0xffu)

enum fpu_kind { FK_SSE, FK_X87, FK_WAIT, FK_FXSAVE, FK_FXRSTOR, FK_LDMXCSR, FK_STMXCSR };

uint64_t x86_fpu_desc(const struct x86_decoded_insn *insn);

/* The HELPER_fpu_sse entry point: (desc, linear address of the memory operand). */
uint64_t h_fpu_sse(void *env, uint64_t desc, uint64_t addr, uint64_t c, uint64_t d);

/* HELPER_sse_fp: ADD/SUB/MUL/DIV/MIN/MAX/SQRT PS/PD/SS/SD and CVTSS2SD/CVTSD2SS (5A F3/F2)
 * with the source operand already loaded (its 16 bytes as two quadwords, a scalar memory
 * operand zero-extended) and availability checked at translation (HF_SSE). */
uint64_t h_sse_fp(void *env, uint64_t op, uint64_t lo, uint64_t hi, uint64_t d);

/* The x87/SSE state for a debugger (the vCPU stopped between two run() calls, so the run
 * loop has merged the host MXCSR's flags back: -1 if it has not). A write takes FXRSTOR's
 * checks and, like LDMXCSR, recomputes hflags (HF_MXFAST follows the new MXCSR). */
struct vcpu_fpu;
int tcg_fpu_get(const struct tcg_cpu *cpu, struct vcpu_fpu *out);
int tcg_fpu_set(struct tcg_cpu *cpu, const struct vcpu_fpu *in);

/* sse.c: one SSE/SSE2 instruction (availability already checked). */
void sse_exec(struct tcg_cpu *cpu, uint64_t desc, uint64_t addr);

/* Shared with sse.c: memory access of up to 16 bytes, all-or-nothing for faults. */
void fpu_load_bytes(struct tcg_cpu *cpu, uint64_t addr, void *dst, unsigned len);
void fpu_store_bytes(struct tcg_cpu *cpu, uint64_t addr, const void *src, unsigned len);

#endif
