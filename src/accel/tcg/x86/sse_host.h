/* SSE/SSE2 floating point on the host's SSE unit when the guest's MXCSR allows it
 * (sse_host.c); false: the caller computes in software (sse.c). */
#ifndef QUOKKA_ACCEL_TCG_X86_SSE_HOST_H
#define QUOKKA_ACCEL_TCG_X86_SSE_HOST_H

#include "accel/tcg/fpu_state.h"

#include <stdbool.h>
#include <stdint.h>

/* ADD/SUB/MUL/DIV/MIN/MAX/SQRT (opc 51, 58-5F) PS/PD/SS/SD (mp: none, 66, F3, F2) and
 * CVTSS2SD/CVTSD2SS (5A F3/F2): dst = dst op src, MXCSR flags ORed in. */
bool sse_host_fp(uint32_t *mxcsr, unsigned opc, unsigned mp, union xmm_reg *dst,
                 const union xmm_reg *src);

/* (U)COMISS/(U)COMISD of lane 0: ZF/PF/CF (x86 bit positions) in *eflags. */
bool sse_host_comis(uint32_t *mxcsr, bool dbl, bool quiet, const union xmm_reg *x,
                    const union xmm_reg *y, uint32_t *eflags);

/* The same two in software (softfloat80.c), for any MXCSR: what hosts without SSE run, and what
 * the unit test compares with the host's SSE. */
bool sse_soft_fp(uint32_t *mxcsr, unsigned opc, unsigned mp, union xmm_reg *dst,
                 const union xmm_reg *src);
bool sse_soft_comis(uint32_t *mxcsr, bool dbl, bool quiet, const union xmm_reg *x,
                    const union xmm_reg *y, uint32_t *eflags);

#endif
