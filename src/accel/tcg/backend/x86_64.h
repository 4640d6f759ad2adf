/* The native backend: IR blocks -> x86-64 host code, with block chaining.
 *
 * Same contract as the interpreter (interp.h): a compiled block runs on env and returns an
 * enum ir_exit_reason or INTERP_GOTO_TB(slot); guest memory goes through the software MMU
 * (here with the TLB hit path inlined); helpers and faulting accesses may longjmp out.
 *
 * Beyond that contract, blocks can be chained: a GOTO_TB exit can be pointed at the next
 * block, so hot loops never come back to the run loop. A chained jump is taken only while
 * all of these hold, checked in the generated code:
 *   - the env word at exit_request_offset is 0 (checked at every block entry: interrupts,
 *     stop requests);
 *   - the chain budget (an int32 in env) stays positive: it is decremented per chained jump,
 *     so the run loop gets control back regularly (timers) even in a tight loop;
 *   - the env word at guard_offset (the CPU mode) still equals the value the block was
 *     compiled for, and the epoch word (bumped on TLB flushes; a separate one counts only
 *     the flushes that can drop global pages) equals the value recorded with the target.
 * Indirect exits (IR_EXIT_NEXT) call lookup_next and, in blocks that allow it, keep an
 * inline cache of their last target, guarded by the pc, the mode word and the epoch.
 * Chained targets and caches live in data slots the code reads. Invalidating a block points
 * the slots that lead to it back to their unchained paths and patches its entry to leave
 * for the run loop. Code lives in one buffer mapped twice (writable, executable: never
 * both), reused from the start by native_reset() once every block has been dropped.
 */
#ifndef QUOKKA_ACCEL_TCG_BACKEND_X86_64_H
#define QUOKKA_ACCEL_TCG_BACKEND_X86_64_H

#include "accel/tcg/backend/interp.h"
#include "accel/tcg/ir/ir.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A jump generated code takes through data, never by patching code (rewriting code that
 * runs evicts it from the CPU's pipeline: slow when chains are redone after every TLB
 * flush): a GOTO_TB's chained target, an IR_EXIT_NEXT's inline cache. */
struct native_site;

/* Where the run loop's state and the software TLB live in env (all offsets from env). */
struct native_config {
    struct interp_mem_ops mem; /* slow paths */
    uint32_t tlb_offset[2];    /* TLB array per MMU index (0 supervisor, 1 user) */
    uint32_t tlb_entry_size;
    uint32_t tlb_entries;                             /* power of two */
    uint32_t tlb_read_tag, tlb_write_tag, tlb_addend; /* offsets within an entry */
    uint32_t exit_request_offset; /* uint32: nonzero -> leave at the next block entry */
    uint32_t chain_budget_offset; /* int32 */
    uint32_t guard_offset;        /* uint32 compared with native_block_info.guard */
    uint32_t epoch_offset;        /* uint32: bumped by every TLB flush */
    uint32_t global_epoch_offset; /* uint32: bumped by flushes that may drop global pages */
    uint32_t last_exit_offset;    /* pointer: the struct native_code that left via GOTO_TB */
    uint32_t insn_count_offset;   /* uint64: guest instructions of blocks run to an exit */
    bool count_insns;             /* keep that count (costs an add per block) and the ones
                                     below (statistics: an add per event) */
    /* (each 0: not counted) */
    uint32_t jumps_run_offset;       /* uint64: GOTO_TBs run */
    uint32_t inline_mem_offset;      /* uint64: inline memory accesses */
    uint32_t inline_mem_slow_offset; /* uint64: of those, to the slow path */
    uint32_t helper_calls_offset;    /* uint64[helper_calls_max]: IR_CALLs by helper id */
    uint32_t helper_calls_max;
    /* Optional: where IR_EXIT_NEXT continues (indirect jumps, returns, mode changes).
     * Returns the entry of the cached block for env's current state, or NULL to leave for
     * the run loop. Costs one chain budget unit, like a chained jump. `site` is the exit's
     * inline cache (NULL where the block has none), for native_cache_target(). */
    const void *(*lookup_next)(void *env, struct native_site *site);
    /* Return-address stack in env (blocks ending with a CALL push, with a RET pop and try its
     * slot first): ras_entries x {uint64 pc, native_site *}; 0: none. */
    uint32_t ras_offset, ras_top_offset, ras_entries;
    uint32_t pc_offset; /* uint64: the guest pc an inline cache compares (blocks with
                           native_block_info.inline_cache) */
    /* Threads that run the code at once (vCPUs). Each has its own copy of every data slot
     * (chains and inline caches hold one thread's epochs and targets); with more than one,
     * the code finds its thread's copies through the pointer at sites_offset in env, which
     * the caller sets to native_jit_sites(jit, thread). 0 or 1: one copy, addressed
     * directly. */
    uint32_t nr_threads;
    uint32_t sites_offset;
    /* Optional (0 entries: none): a table in env the IR_EXIT_NEXT code searches by pc before
     * calling lookup_next; entries {uint64 pc, uint32 guard, uint32 epoch (the epoch_offset
     * word), const void *entry, 8 bytes unused} at (pc ^ pc >> 10) & (entries - 1). */
    uint32_t fast_jump_offset, fast_jump_entries;
};

struct native_block_info {
    unsigned mmu_index; /* which TLB the inlined accesses use */
    uint32_t guard;     /* value of the guard word this block was translated for */
    uint32_t nr_guest_insns;
    /* Give IR_EXIT_NEXT exits an inline cache: the last target, taken again while the pc
     * word, the guard word and the epoch match what it was patched with. Only where the pc
     * word and the guard fully identify a block (e.g. no segment base in play). */
    bool inline_cache;
    /* The block ends with a near CALL returning to ras_return / with a near RET (64-bit code,
     * with inline_cache): see native_config's return-address stack. */
    bool ras_push, ras_pop;
    uint64_t ras_return;
    /* GOTO_TB slot i leads to the block's own page: its chain skips the epoch check. */
    bool chain_same_page[IR_MAX_GOTO_SLOTS];
};

struct native_jit;
struct native_code {
    const uint8_t *entry; /* executable address, where chained jumps enter */
    uint32_t body;        /* offset past the entry check, where the run loop enters */
    uint32_t size;
    uint32_t
        chain[IR_MAX_GOTO_SLOTS]; /* each GOTO_TB slot's site (index into every thread's slots) */
    /* Sites (indexes) that were pointed here: reset to their fallback in every thread when
     * this block dies, so no path keeps leaving through its dead entry. */
    uint32_t *incoming;
    uint32_t nr_incoming, cap_incoming;
    bool dead;
};

/* Map the code buffer and build the entry/exit trampolines. Returns NULL (with a reason in
 * err) where the host refuses executable memory. */
struct native_jit *native_jit_create(const struct native_config *cfg, size_t buffer_bytes,
                                     char *err, size_t errlen);
void native_jit_destroy(struct native_jit *jit);

/* Compile an optimised IR block. Returns NULL when the IR is malformed, memory is short,
 * or the buffer is full (then *full is set: drop every block, native_reset(), retry). */
struct native_code *native_compile(struct native_jit *jit, const struct ir_block *block,
                                   const struct native_block_info *info, bool *full);
uint32_t native_exec(const struct native_jit *jit, const struct native_code *code, void *env);

/* Thread `thread`'s data slots (for env at sites_offset). */
void *native_jit_sites(struct native_jit *jit, unsigned thread);
/* Make from's GOTO_TB `slot` jump straight to `to`, for `thread`, while the epoch word stays
 * at `epoch`: the global one when `to`'s code is on global pages (CR3 writes keep those),
 * else the every-flush one. Callers serialise native_chain, native_cache_target and
 * native_invalidate (the lists of sites leading to a block are shared). */
void native_chain(struct native_jit *jit, unsigned thread, struct native_code *from, unsigned slot,
                  struct native_code *to, uint32_t epoch, bool global);
/* Point an inline cache at `to` for this pc, guard value and epoch (as native_chain). */
/* False for an inline-cache site that keeps missing with new targets (megamorphic): the
 * caller then leaves it unaimed (its misses keep going to the lookup). */
bool native_site_open(struct native_site *site, uint64_t pc);
void native_cache_target(struct native_jit *jit, struct native_site *site, uint64_t pc,
                         uint32_t guard, uint32_t epoch, bool global, struct native_code *to);
/* The block must not run again: its entry now leaves for the run loop (an atomic rewrite:
 * other threads may be about to run it), and the chains and caches that led to it go back to
 * their unchained paths. */
void native_invalidate(struct native_jit *jit, struct native_code *code);
/* Frees the descriptor (the code bytes are reclaimed by native_reset). */
void native_code_free(struct native_code *code);
/* Every block has been dropped: reuse the buffer from the start. */
void native_reset(struct native_jit *jit);
size_t native_code_size(const struct native_code *code);
size_t native_jit_used(const struct native_jit *jit);

#endif
