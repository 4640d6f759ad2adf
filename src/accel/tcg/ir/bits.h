/* Bit utilities shared by the optimiser's constant folding and the interpreter, so a folded
 * CLZ/CTZ/CTPOP/BSWAP gives exactly what the backend would compute at run time. */
#ifndef QUOKKA_ACCEL_TCG_IR_BITS_H
#define QUOKKA_ACCEL_TCG_IR_BITS_H

#include <stdint.h>

static inline unsigned ir_clz64(uint64_t v) /* v != 0 */
{
#if defined(__GNUC__)
    return (unsigned)__builtin_clzll(v);
#else
    unsigned n = 0;
    for (uint64_t bit = 1ull << 63; !(v & bit); bit >>= 1)
        n++;
    return n;
#endif
}

static inline unsigned ir_ctz64(uint64_t v) /* v != 0 */
{
#if defined(__GNUC__)
    return (unsigned)__builtin_ctzll(v);
#else
    unsigned n = 0;
    for (; !(v & 1); v >>= 1)
        n++;
    return n;
#endif
}

static inline unsigned ir_popcount64(uint64_t v)
{
#if defined(__GNUC__)
    return (unsigned)__builtin_popcountll(v);
#else
    unsigned n = 0;
    for (; v; v &= v - 1)
        n++;
    return n;
#endif
}

static inline uint64_t ir_bswap64(uint64_t v)
{
#if defined(__GNUC__)
    return __builtin_bswap64(v);
#else
    uint64_t r = 0;
    for (unsigned i = 0; i < 8; i++)
        r |= ((v >> (8 * i)) & 0xff) << (56 - 8 * i);
    return r;
#endif
}

#endif
