/* Translator statistics (--tcg stats): per-vCPU event counts, printed at exit. Only slow
 * paths count (translation, run-loop lookups, TLB fills, slow memory accesses), so they cost
 * nothing in generated code and are always on. */
#ifndef QUOKKA_ACCEL_TCG_STATS_H
#define QUOKKA_ACCEL_TCG_STATS_H

#include <stdint.h>
#include <stdio.h>

#define TCG_STATS_FIELDS(X)                                                                        \
    X(blocks_translated, "blocks translated")                                                      \
    X(insns_translated, "guest instructions translated")                                           \
    X(translate_ns, "nanoseconds translating")                                                     \
    X(loop_lookups, "run-loop block lookups")                                                      \
    X(loop_misses, "run-loop lookups that translated")                                             \
    X(next_lookups, "lookups from generated code (indirect jumps, returns)")                       \
    X(next_misses, "of those, back to the run loop")                                               \
    X(cache_sets, "inline caches (re)aimed")                                                       \
    X(chains, "direct jumps chained")                                                              \
    X(tlb_fills, "software TLB fills (page walks)")                                                \
    X(slow_loads, "loads through the C slow path")                                                 \
    X(slow_stores, "stores through the C slow path")                                               \
    X(code_writes, "stores that dropped translated code")                                          \
    X(exceptions, "exceptions and interrupts delivered")                                           \
    X(helper_exits, "helper exits to the run loop")

struct tcg_stats {
#define TCG_STAT_FIELD(name, text) uint64_t name;
    TCG_STATS_FIELDS(TCG_STAT_FIELD)
#undef TCG_STAT_FIELD
};

/* One line per counter, prefixed with the vCPU index. */
static inline void tcg_stats_print(const struct tcg_stats *s, unsigned vcpu, FILE *out)
{
#define TCG_STAT_PRINT(name, text)                                                                 \
    fprintf(out, "quokka-tcg-stats: cpu%u %-18s %14llu  %s\n", vcpu, #name,                        \
            (unsigned long long)s->name, text);
    TCG_STATS_FIELDS(TCG_STAT_PRINT)
#undef TCG_STAT_PRINT
}

#endif
