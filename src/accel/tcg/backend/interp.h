/* The portable backend: an interpreter over a compact pre-decoded form of an IR block.
 * Works on any host; the native x86-64 emitter is a later backend with the same contract. */
#ifndef QUOKKA_ACCEL_TCG_BACKEND_INTERP_H
#define QUOKKA_ACCEL_TCG_BACKEND_INTERP_H

#include "accel/tcg/ir/ir.h"

#include <stdint.h>

/* Guest memory access through the software MMU. They may leave the block by longjmp-ing out
 * of interp_exec (guest page fault): the interpreter holds no resources across them. */
struct interp_mem_ops {
    uint64_t (*load)(void *env, uint64_t addr, unsigned memop);
    void (*store)(void *env, uint64_t addr, uint64_t value, unsigned memop);
};

struct interp_code; /* opaque compiled block */

/* Compile an (optimised) IR block. Returns NULL on allocation failure. The helper table and
 * mem ops pointers must outlive the code. */
struct interp_code *interp_compile(const struct ir_block *block, const struct interp_mem_ops *mem);
void interp_free(struct interp_code *code);
size_t interp_code_size(const struct interp_code *code); /* bytes, for cache accounting */

/* Run the block on env. Returns an enum ir_exit_reason for EXIT_TB, or
 * INTERP_GOTO_TB(slot) for GOTO_TB. */
#define INTERP_GOTO_TB(slot) (0x100u | (slot))
uint32_t interp_exec(const struct interp_code *code, void *env);

#endif
