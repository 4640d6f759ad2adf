/* LOCK'd read-modify-writes with host atomic instructions (see atomic.h).
 *
 * On an x86-64 host the operations are the guest's own: LOCK XADD, XCHG, LOCK CMPXCHG and
 * LOCK CMPXCHG16B in inline assembly on the host address of the operand. The address comes in a
 * register, so an operand misaligned within its cache line (atomic on x86, but undefined
 * behaviour through a C pointer) needs no special case. The other operations (AND, OR, XOR,
 * NEG: their result needs the old value) are a bounded compare-and-swap loop. Elsewhere the
 * __atomic builtins do it on naturally aligned operands (CMPXCHG16B: a 16-byte __sync on
 * aarch64) and everything else is run alone.
 * No lock is ever taken: a vCPU inside these helpers never waits for another. */
#include "accel/tcg/x86/atomic.h"

#include "accel/tcg/tcg_internal.h"
#include "accel/tcg/x86/decode.h"
#include "accel/tcg/x86/helpers.h"

#include <sched.h>

_Static_assert(ATOMIC_BTR - ATOMIC_BTS == BITTEST_BTR - BITTEST_BTS &&
                   ATOMIC_BTC - ATOMIC_BTS == BITTEST_BTC - BITTEST_BTS,
               "the translator maps BITTEST_BTx to ATOMIC_BTx by offset");

/* A compare-and-swap that keeps losing to other vCPUs gives up and has the instruction run
 * alone (others stopped), so a guest hammering one word cannot starve a vCPU for ever. */
#define ATOMIC_MAX_TRIES (1u << 16)
#define CACHE_LINE 64u
/* The x86-64 instructions, unless QUOKKA_PORTABLE_ATOMICS asks for the portable code (so that
 * it can be tested on an x86-64 host too). */
#if defined(__x86_64__) && !defined(QUOKKA_PORTABLE_ATOMICS)
#define ATOMIC_X86_64 1
#else
#define ATOMIC_X86_64 0
#endif

static uint64_t size_mask(unsigned bytes)
{
    return bytes >= 8 ? ~0ULL : (1ULL << (bytes * 8)) - 1;
}

/* Host memory of the operand, for writing: from the TLB when it maps the page writable (RAM,
 * dirty, no translated code), else through mmu_ram_ptr (translation, #PF, A/D bits, dropping
 * translated code). Crossing a cache line (and so a page), or not plain RAM: run alone. */
static void *atomic_ptr(struct tcg_cpu *cpu, uint64_t vaddr, unsigned bytes)
{
    if ((vaddr & (CACHE_LINE - 1)) + bytes > CACHE_LINE)
        tcg_exit_atomic(cpu);
    unsigned user = (cpu->hflags & HF_CPL_MASK) == 3;
    const struct tlb_entry *e = &cpu->tlb[user][(vaddr >> 12) & (TLB_SIZE - 1)];
    void *p = e->write_tag == (vaddr & ~0xfffULL) ? (void *)(uintptr_t)(vaddr + e->addend)
                                                  : mmu_ram_ptr(cpu, vaddr, bytes, true);
    if (!p)
        tcg_exit_atomic(cpu);
#if !ATOMIC_X86_64
    if ((uintptr_t)p & (bytes - 1)) /* the builtins want natural alignment */
        tcg_exit_atomic(cpu);
#endif
    return p;
}

#if ATOMIC_X86_64

/* Expand OP(type, instruction suffix, register constraint) for the operand size. */
#define BY_SIZE(bytes, OP)                                                                         \
    switch (bytes) {                                                                               \
    case 1:                                                                                        \
        OP(uint8_t, "b", "q");                                                                     \
    case 2:                                                                                        \
        OP(uint16_t, "w", "r");                                                                    \
    case 4:                                                                                        \
        OP(uint32_t, "l", "r");                                                                    \
    default:                                                                                       \
        OP(uint64_t, "q", "r");                                                                    \
    }

/* A plain load: atomic on x86 for an operand within one cache line. */
static uint64_t host_load(const void *p, unsigned bytes)
{
#define LOAD(T, sfx, reg)                                                                          \
    do {                                                                                           \
        T x;                                                                                       \
        __asm__ volatile("mov" sfx " (%1), %0" : "=" reg(x) : "r"(p) : "memory");                  \
        return x;                                                                                  \
    } while (0)
    BY_SIZE(bytes, LOAD)
#undef LOAD
}

static uint64_t host_xadd(void *p, unsigned bytes, uint64_t v)
{
#define XADD(T, sfx, reg)                                                                          \
    do {                                                                                           \
        T x = (T)v;                                                                                \
        __asm__ volatile("lock xadd" sfx " %0, (%1)" : "+" reg(x) : "r"(p) : "memory", "cc");      \
        return x;                                                                                  \
    } while (0)
    BY_SIZE(bytes, XADD)
#undef XADD
}

static uint64_t host_xchg(void *p, unsigned bytes, uint64_t v)
{
#define XCHG(T, sfx, reg)                                                                          \
    do {                                                                                           \
        T x = (T)v;                                                                                \
        __asm__ volatile("xchg" sfx " %0, (%1)" : "+" reg(x) : "r"(p) : "memory");                 \
        return x;                                                                                  \
    } while (0)
    BY_SIZE(bytes, XCHG)
#undef XCHG
}

/* Returns the old value: equal to expected iff repl was stored. */
static uint64_t host_cmpxchg(void *p, unsigned bytes, uint64_t expected, uint64_t repl)
{
#define CMPXCHG(T, sfx, reg)                                                                       \
    do {                                                                                           \
        T old = (T)expected;                                                                       \
        __asm__ volatile("lock cmpxchg" sfx " %2, (%1)"                                            \
                         : "+a"(old)                                                               \
                         : "r"(p), reg((T)repl)                                                    \
                         : "memory", "cc");                                                        \
        return old;                                                                                \
    } while (0)
    BY_SIZE(bytes, CMPXCHG)
#undef CMPXCHG
}

/* Every x86-64 host quokka runs on has CMPXCHG16B (x86-64-v2; KVM hosts all do). */
static bool host_cmpxchg16b(void *p, uint64_t expected[2], const uint64_t repl[2])
{
    uint64_t lo = expected[0], hi = expected[1];
    bool ok;
    __asm__ volatile("lock cmpxchg16b (%3)"
                     : "+a"(lo), "+d"(hi), "=@ccz"(ok)
                     : "r"(p), "b"(repl[0]), "c"(repl[1])
                     : "memory");
    expected[0] = lo;
    expected[1] = hi;
    return ok;
}

#else /* portable: the __atomic builtins on naturally aligned operands (atomic_ptr checked) */

#define BY_SIZE(bytes, OP)                                                                         \
    switch (bytes) {                                                                               \
    case 1:                                                                                        \
        OP(uint8_t);                                                                               \
    case 2:                                                                                        \
        OP(uint16_t);                                                                              \
    case 4:                                                                                        \
        OP(uint32_t);                                                                              \
    default:                                                                                       \
        OP(uint64_t);                                                                              \
    }

static uint64_t host_load(const void *p, unsigned bytes)
{
#define LOAD(T) return __atomic_load_n((const T *)p, __ATOMIC_RELAXED)
    BY_SIZE(bytes, LOAD)
#undef LOAD
}

static uint64_t host_xadd(void *p, unsigned bytes, uint64_t v)
{
#define XADD(T) return __atomic_fetch_add((T *)p, (T)v, __ATOMIC_SEQ_CST)
    BY_SIZE(bytes, XADD)
#undef XADD
}

static uint64_t host_xchg(void *p, unsigned bytes, uint64_t v)
{
#define XCHG(T) return __atomic_exchange_n((T *)p, (T)v, __ATOMIC_SEQ_CST)
    BY_SIZE(bytes, XCHG)
#undef XCHG
}

static uint64_t host_cmpxchg(void *p, unsigned bytes, uint64_t expected, uint64_t repl)
{
#define CMPXCHG(T)                                                                                 \
    do {                                                                                           \
        T old = (T)expected;                                                                       \
        __atomic_compare_exchange_n((T *)p, &old, (T)repl, false, __ATOMIC_SEQ_CST,                \
                                    __ATOMIC_SEQ_CST);                                             \
        return old;                                                                                \
    } while (0)
    BY_SIZE(bytes, CMPXCHG)
#undef CMPXCHG
}

#endif

enum x86_atomic_op x86_atomic_alu_op(unsigned mnemonic)
{
    switch (mnemonic) {
    case X86_MN_ADD:
    case X86_MN_ADC:
        return ATOMIC_ADD;
    case X86_MN_SUB:
    case X86_MN_SBB:
        return ATOMIC_SUB;
    case X86_MN_AND:
        return ATOMIC_AND;
    case X86_MN_OR:
        return ATOMIC_OR;
    default:
        return ATOMIC_XOR;
    }
}

/* The operations without a fetch-and-op instruction that returns the old value. */
static uint64_t apply(unsigned op, uint64_t old, uint64_t v)
{
    switch (op) {
    case ATOMIC_AND:
        return old & v;
    case ATOMIC_OR:
        return old | v;
    case ATOMIC_XOR:
        return old ^ v;
    default: /* ATOMIC_NEG */
        return -old;
    }
}

static unsigned valid_size(uint64_t bytes)
{
    return bytes == 1 || bytes == 2 || bytes == 4 ? (unsigned)bytes : 8;
}

uint64_t h_atomic_rmw(void *env, uint64_t addr, uint64_t v, uint64_t op_size, uint64_t d)
{
    (void)d;
    struct tcg_cpu *cpu = env;
    unsigned op = op_size & 0xff, bytes = valid_size((op_size >> 8) & 0xf);
    uint64_t m = size_mask(bytes);
    void *p = atomic_ptr(cpu, addr, bytes);
    switch (op) {
    case ATOMIC_ADD:
        return host_xadd(p, bytes, v) & m;
    case ATOMIC_SUB:
        return host_xadd(p, bytes, -v) & m;
    case ATOMIC_XCHG:
        return host_xchg(p, bytes, v) & m;
    case ATOMIC_BTS:
    case ATOMIC_BTR:
    case ATOMIC_BTC: {
        uint64_t bit = 1ULL << (v & (bytes * 8 - 1));
        op = op == ATOMIC_BTS ? ATOMIC_OR : op == ATOMIC_BTR ? ATOMIC_AND : ATOMIC_XOR;
        v = op == ATOMIC_AND ? ~bit : bit;
        break;
    }
    default:
        break;
    }
    uint64_t old = host_load(p, bytes) & m;
    for (unsigned tries = 0; tries < ATOMIC_MAX_TRIES; tries++) {
        uint64_t seen = host_cmpxchg(p, bytes, old, apply(op, old, v) & m) & m;
        if (seen == old)
            return old;
        old = seen;
    }
    tcg_exit_atomic(cpu);
}

uint64_t h_atomic_cmpxchg(void *env, uint64_t addr, uint64_t expected, uint64_t repl, uint64_t size)
{
    struct tcg_cpu *cpu = env;
    unsigned bytes = valid_size(size);
    uint64_t m = size_mask(bytes);
    /* Write permission is checked whatever the outcome, as the locked instruction does. */
    void *p = atomic_ptr(cpu, addr, bytes);
    return host_cmpxchg(p, bytes, expected & m, repl & m) & m;
}

uint64_t h_fence(void *env, uint64_t a, uint64_t b, uint64_t c, uint64_t d)
{
    (void)env, (void)a, (void)b, (void)c, (void)d;
    __atomic_thread_fence(__ATOMIC_SEQ_CST); /* MFENCE on x86-64 */
    return 0;
}

/* PAUSE in a spin-wait loop, translated so only when vCPUs outnumber the host's CPUs: the
 * lock holder the loop waits for may be a vCPU thread the host has preempted; give it the
 * CPU instead of burning the rest of this time slice. */
uint64_t h_pause(void *env, uint64_t a, uint64_t b, uint64_t c, uint64_t d)
{
    (void)a, (void)b, (void)c, (void)d;
    (void)env;
    sched_yield();
    return 0;
}

bool x86_atomic_cmpxchg_wide(struct tcg_cpu *cpu, uint64_t addr, unsigned bytes,
                             uint64_t expected[2], const uint64_t repl[2])
{
    void *p = atomic_ptr(cpu, addr, bytes == 16 ? 16 : 8);
    if (bytes != 16) {
        uint64_t old = host_cmpxchg(p, 8, expected[0], repl[0]);
        bool same = old == expected[0];
        expected[0] = old;
        return same;
    }
#if ATOMIC_X86_64
    return host_cmpxchg16b(p, expected, repl);
#elif defined(__aarch64__)
    /* The 16-byte __sync builtin is gcc's lock-free aarch64 helper (CASP with LSE, else an
     * LDXP/STXP loop); the __atomic one would call libatomic, which may take a lock and so not
     * be atomic against the 8-byte operations of other vCPUs on the same memory. */
    typedef unsigned __int128 u128;
    u128 e = (u128)expected[1] << 64 | expected[0], r = (u128)repl[1] << 64 | repl[0];
    u128 old = __sync_val_compare_and_swap((u128 *)p, e, r);
    expected[0] = (uint64_t)old;
    expected[1] = (uint64_t)(old >> 64);
    return old == e;
#else
    tcg_exit_atomic(cpu); /* no lock-free 16-byte compare-and-swap here: run alone */
#endif
}
