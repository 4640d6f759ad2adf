/* Differential CPU fuzzing: random integer instruction sequences run natively and in quokka's
 * translator; registers, RFLAGS (undefined flags masked) and a scratch area must match.
 *
 * Layout shared by both runners (identity-mapped in the guest, MAP_FIXED in the native child):
 * the sequence's code at FUZZ_CODE_BASE, a scratch area at FUZZ_SCRATCH_BASE that every memory
 * operand, stack access and string instruction stays inside by construction. */
#ifndef QUOKKA_TESTS_CPU_FUZZ_H
#define QUOKKA_TESTS_CPU_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FUZZ_CODE_BASE 0x10000000ULL
#define FUZZ_CODE_SIZE 0x1000u
#define FUZZ_SCRATCH_BASE 0x20000000ULL
#define FUZZ_SCRATCH_SIZE 0x4000u
/* A looped sequence's pass counter: just past the scratch area (not compared; no item
 * reaches it). Both runners map it. */
#define FUZZ_COUNTER_ADDR (FUZZ_SCRATCH_BASE + FUZZ_SCRATCH_SIZE)
#define FUZZ_COUNTER_PAGE 0x1000u

#define FUZZ_MAX_ITEMS 24
#define FUZZ_ITEM_BYTES 64
#define FUZZ_MAX_CODE 1536 /* assembled sequence, without the end marker */

/* RFLAGS bits (architectural positions). */
#define F_CF 0x001u
#define F_PF 0x004u
#define F_AF 0x010u
#define F_ZF 0x040u
#define F_SF 0x080u
#define F_DF 0x400u
#define F_OF 0x800u
#define F_ARITH (F_CF | F_PF | F_AF | F_ZF | F_SF | F_OF)

/* One group of instructions that stays together (a setup and the instruction it protects,
 * or a jump): the unit of generation, jump targets and minimisation. */
struct fuzz_item {
    uint8_t bytes[FUZZ_ITEM_BYTES];
    uint8_t len;
    uint16_t def;        /* flags the group certainly leaves defined */
    uint16_t undef;      /* flags it leaves architecturally undefined */
    uint16_t reads;      /* flags it reads before defining them itself */
    int16_t jcc_target;  /* forward jump: index of the target item (may be nr_items = end), or -1 */
    uint8_t jcc_cc;      /* condition (0..15), or 16 for JMP */
    uint8_t jcc_near;    /* rel32 form (set by layout when rel8 does not reach) */
    uint8_t nr_rip;      /* RIP-relative operands in the group: */
    uint8_t rip_disp[4]; /* offset of each disp32 in bytes */
    uint8_t rip_end[4];  /* offset of the end of its instruction */
    uint32_t rip_target[4]; /* scratch offset it addresses */
    char what[24];          /* generator's name for the group (reports only) */
};

struct fuzz_state {
    uint64_t gpr[16];
    uint64_t rflags;
};

struct fuzz_case {
    uint64_t id;
    uint64_t scratch_seed; /* initial scratch bytes come from this seed */
    struct fuzz_state init;
    /* 0 or 1: the items run once. n > 1: they run n times, as a loop whose jump back is to
     * the sequence's start: the runner sets the dword counter to n; after the items (where
     * jumps to the end land) `sub dword [counter], 1` (every arithmetic flag defined for the
     * next pass) and `jnz` to the first item. A translator keeps such a loop in one block. */
    unsigned loop_passes;
    unsigned nr_items;
    struct fuzz_item item[FUZZ_MAX_ITEMS];
    /* Filled by fuzz_assemble: */
    uint8_t code[FUZZ_MAX_CODE];
    unsigned code_len;
    uint16_t item_start[FUZZ_MAX_ITEMS + 1];
};

struct fuzz_result {
    struct fuzz_state regs;
    uint64_t fault_rip;
    int fault; /* 0, or the native signal number / 1 for a translator exception */
    int error; /* the runner could not run it (reason in the report) */
    uint8_t scratch[FUZZ_SCRATCH_SIZE];
};

struct rng {
    uint64_t s;
};
uint64_t rng_next(struct rng *r);
static inline unsigned rng_below(struct rng *r, unsigned n)
{
    return (unsigned)(rng_next(r) % n);
}

/* Generator (gen.c) */
void fuzz_generate(struct fuzz_case *c, uint64_t seed, unsigned max_items);
/* Lay out items into c->code (jump displacements, RIP-relative fixups). 0 or -1 (too long). */
int fuzz_assemble(struct fuzz_case *c);
/* Flags to compare after the whole sequence, or (fault_rip != 0) at a faulting instruction.
 * Returns false when some item reads a flag that may be undefined (invalid sequence). */
bool fuzz_flag_mask(const struct fuzz_case *c, uint64_t fault_rip, uint32_t *compare);
void fuzz_fill_scratch(uint8_t *scratch, uint64_t seed);
/* The scratch area's initial bytes and the pass counter after it (see loop_passes). */
void fuzz_prepare_memory(uint8_t *scratch_and_counter, const struct fuzz_case *c);

/* Native runner (native.c): runs cases[0..n) in a sandboxed child; results[i] for each. */
struct native_runner;
struct native_runner *native_runner_new(unsigned max_batch);
void native_runner_free(struct native_runner *nr);
/* Or split: start forks the child (cases must stay untouched until finish), finish waits. */
int native_batch_start(struct native_runner *nr, const struct fuzz_case *cases, unsigned n);
int native_batch_finish(struct native_runner *nr, struct fuzz_result *results);
int native_run_batch(struct native_runner *nr, const struct fuzz_case *cases, unsigned n,
                     struct fuzz_result *results);

/* Translator runner (tcg_runner.c) */
struct tcg_runner;
struct tcg_runner *tcg_runner_new(bool parallel);
void tcg_runner_free(struct tcg_runner *tr);
void tcg_run_case(struct tcg_runner *tr, const struct fuzz_case *c, struct fuzz_result *out);

/* Repro files (repro.c) */
int repro_save(const struct fuzz_case *c, const char *dir, char *path, size_t pathlen);
int repro_load(const char *path, struct fuzz_case *c);

#endif
