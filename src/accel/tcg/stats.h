/* Translator statistics (--tcg stats): per-vCPU event counts, printed at exit. Slow paths
 * (translation, run-loop lookups, TLB fills, slow memory accesses) always count; what only
 * generated code sees (direct jumps taken, inline memory accesses, helper calls by kind) is
 * counted by the native backend's code when --tcg stats is given, at an add per event. */
#ifndef QUOKKA_ACCEL_TCG_STATS_H
#define QUOKKA_ACCEL_TCG_STATS_H

#include "accel/tcg/ir/ir.h"

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
    X(helper_exits, "helper exits to the run loop")                                                \
    X(jumps_run, "direct jumps (GOTO_TB) run by native code")                                      \
    X(jumps_unchained, "of those, back to the run loop (not chained yet, or void)")                \
    X(inline_mem, "memory accesses by native code's inline TLB path")                              \
    X(inline_mem_slow, "of those, to the slow path (TLB miss, MMIO, page crossing)")

/* Helper calls by kind: counted for helper ids below this. */
#define TCG_STATS_HELPERS 128

struct tcg_stats {
#define TCG_STAT_FIELD(name, text) uint64_t name;
    TCG_STATS_FIELDS(TCG_STAT_FIELD)
#undef TCG_STAT_FIELD
    uint64_t helper_calls[TCG_STATS_HELPERS]; /* by native code, by helper id */
};

static inline double tcg_stats_rate(uint64_t part, uint64_t whole)
{
    return whole ? 100.0 * (double)part / (double)whole : 0.0;
}

/* One line per counter, prefixed with the vCPU index; the rates derived from them; then the
 * helpers called, by name (helpers[i] for helper id i, n of them). */
static inline void tcg_stats_print(const struct tcg_stats *s, unsigned vcpu,
                                   const struct ir_helper *helpers, unsigned n, FILE *out)
{
#define TCG_STAT_PRINT(name, text)                                                                 \
    fprintf(out, "quokka-tcg-stats: cpu%u %-18s %14llu  %s\n", vcpu, #name,                        \
            (unsigned long long)s->name, text);
    TCG_STATS_FIELDS(TCG_STAT_PRINT)
#undef TCG_STAT_PRINT
    fprintf(out, "quokka-tcg-stats: cpu%u %-18s %13.1f%%  %s\n", vcpu, "chain_hit_rate",
            s->jumps_run ? 100.0 - tcg_stats_rate(s->jumps_unchained, s->jumps_run) : 0.0,
            "direct jumps that went straight to the next block");
    fprintf(out, "quokka-tcg-stats: cpu%u %-18s %13.1f%%  %s\n", vcpu, "tlb_hit_rate",
            s->inline_mem ? 100.0 - tcg_stats_rate(s->inline_mem_slow, s->inline_mem) : 0.0,
            "inline accesses that hit the software TLB");
    fprintf(out, "quokka-tcg-stats: cpu%u %-18s %14.1f  %s\n", vcpu, "translate_ns_per_insn",
            s->insns_translated ? (double)s->translate_ns / (double)s->insns_translated : 0.0,
            "translation cost per guest instruction");
    for (unsigned i = 0; i < n && i < TCG_STATS_HELPERS; i++)
        if (s->helper_calls[i])
            fprintf(out, "quokka-tcg-stats: cpu%u helper %-11s %14llu  calls from native code\n",
                    vcpu, helpers[i].name ? helpers[i].name : "?",
                    (unsigned long long)s->helper_calls[i]);
}

#endif
