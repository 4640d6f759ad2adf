/* Lazy condition codes: compute RFLAGS' arithmetic bits from (cc_op, cc_dst, cc_src, cc_src2)
 * only when an instruction reads them. Architecturally undefined flags get the value listed
 * per operation in flags.c (the differential tests mask them). */
#ifndef QUOKKA_ACCEL_TCG_X86_FLAGS_H
#define QUOKKA_ACCEL_TCG_X86_FLAGS_H

#include <stdbool.h>
#include <stdint.h>

/* The six arithmetic flags (CF PF AF ZF SF OF) at their RFLAGS positions. */
uint32_t x86_flags_compute(uint32_t cc_op, uint64_t dst, uint64_t src, uint64_t src2);
/* A cc_op value the functions here understand (a lazy op, or a rotate's encoding). */
bool x86_cc_op_valid(uint64_t cc_op);
/* Only CF (0 or 1): cheaper, used by ADC/SBB/RCL/RCR/INC/DEC. */
uint32_t x86_flags_carry(uint32_t cc_op, uint64_t dst, uint64_t src, uint64_t src2);
/* Evaluate condition code cc (0-15, Jcc/SETcc/CMOVcc encoding) against the flags. */
int x86_flags_condition(uint32_t flags, unsigned cc);

#endif
