/* LOCK'd read-modify-writes as host atomic instructions, for when other vCPUs run guest code
 * at the same time (cpu->parallel): the front end calls these helpers instead of a load and a
 * store, and computes the result and the lazy flags from the old value they return exactly as
 * the plain path does. An operand the host cannot update atomically (one crossing a 64-byte
 * cache line or a page, or not in RAM) leaves through tcg_exit_atomic: the instruction runs
 * again alone, non-atomically, with the other vCPUs stopped. */
#ifndef QUOKKA_ACCEL_TCG_X86_ATOMIC_H
#define QUOKKA_ACCEL_TCG_X86_ATOMIC_H

#include <stdbool.h>
#include <stdint.h>

struct tcg_cpu;

/* What h_atomic_rmw does to the operand with its value argument v. */
enum x86_atomic_op {
    ATOMIC_ADD,  /* ADD, ADC (v = src + CF), INC, XADD */
    ATOMIC_SUB,  /* SUB, SBB (v = src + CF), DEC */
    ATOMIC_AND,  /* AND, BTR (v = ~bit) */
    ATOMIC_OR,   /* OR, BTS */
    ATOMIC_XOR,  /* XOR, BTC, NOT (v = all ones) */
    ATOMIC_XCHG, /* XCHG */
    ATOMIC_NEG,  /* NEG (v unused) */
    ATOMIC_BTS,  /* BTS, BTR, BTC (in BITTEST_* order): v = the bit offset, taken modulo the */
    ATOMIC_BTR,  /* operand size (memory bit strings have their address adjusted already) */
    ATOMIC_BTC,
    ATOMIC_NR_OPS,
};

/* The operation for a LOCK'd ADD ADC SUB SBB AND OR XOR (enum x86_mnemonic). */
enum x86_atomic_op x86_atomic_alu_op(unsigned mnemonic);

/* IR helpers (env = struct tcg_cpu). rmw: (linear addr, v, op | size bytes << 8) -> old value,
 * zero-extended. cmpxchg: (linear addr, expected, replacement, size bytes) -> old value (the
 * operand was replaced iff it equals expected at the operand size). */
uint64_t h_atomic_rmw(void *env, uint64_t addr, uint64_t v, uint64_t op_size, uint64_t d);
uint64_t h_atomic_cmpxchg(void *env, uint64_t addr, uint64_t expected, uint64_t repl,
                          uint64_t size);
/* MFENCE, WBINVD/INVD: a full host barrier (stores before it are visible to every other thread
 * before loads after it). */
uint64_t h_fence(void *env, uint64_t a, uint64_t b, uint64_t c, uint64_t d);
uint64_t h_pause(void *env, uint64_t a, uint64_t b, uint64_t c, uint64_t d);

/* CMPXCHG8B (bytes 8) / CMPXCHG16B (bytes 16, already checked aligned) at linear addr as one
 * host atomic: compares with expected[0..1] (low, high quadword; [1] unused for 8 bytes) and
 * stores repl when equal. Returns true when it did; otherwise expected holds the operand. */
bool x86_atomic_cmpxchg_wide(struct tcg_cpu *cpu, uint64_t addr, unsigned bytes,
                             uint64_t expected[2], const uint64_t repl[2]);

#endif
