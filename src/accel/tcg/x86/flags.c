#include "accel/tcg/x86/flags.h"

#include "accel/tcg/cpu.h"

static uint64_t width_mask(unsigned size)
{
    return size == CC_SIZE_Q ? ~0ULL : (1ULL << (8u << size)) - 1;
}

static uint64_t sign_bit(unsigned size)
{
    return 1ULL << ((8u << size) - 1);
}

static uint32_t parity_even(uint64_t value)
{
    return (__builtin_popcount((unsigned)(value & 0xff)) & 1) ? 0 : X86_PF;
}

/* ZF, SF, PF from a result: shared by every operation. */
static uint32_t result_flags(uint64_t dst, unsigned size)
{
    uint64_t mask = width_mask(size);
    uint32_t flags = parity_even(dst);
    if ((dst & mask) == 0)
        flags |= X86_ZF;
    if (dst & sign_bit(size))
        flags |= X86_SF;
    return flags;
}

bool x86_cc_op_valid(uint64_t cc_op)
{
    if (cc_op & CC_OP_ROT)
        cc_op &=
            ~(CC_OP_ROT | 1u << CC_OP_ROT_CF_SHIFT | 1u << CC_OP_ROT_OF_SHIFT | CC_OP_ROT_KEEP_OF);
    return cc_op < CC_OP_NR;
}

/* A rotate's flags: CF and OF its own, the rest the op before's. */
static uint32_t rotate_flags(uint32_t cc_op, uint64_t dst, uint64_t src, uint64_t src2)
{
    uint32_t keep = (cc_op & CC_OP_ROT_KEEP_OF) ? X86_OF : 0;
    uint32_t f = x86_flags_compute(cc_op & 0xff, dst, src, src2) & ~(X86_CF | (X86_OF & ~keep));
    f |= (cc_op >> CC_OP_ROT_CF_SHIFT) & 1 ? X86_CF : 0;
    f |= !keep && ((cc_op >> CC_OP_ROT_OF_SHIFT) & 1) ? X86_OF : 0;
    return f;
}

uint32_t x86_flags_compute(uint32_t cc_op, uint64_t dst, uint64_t src, uint64_t src2)
{
    if (cc_op & CC_OP_ROT)
        return rotate_flags(cc_op, dst, src, src2);
    unsigned size = cc_op & 3;
    uint32_t base = cc_op & ~3u;
    uint64_t mask = width_mask(size), sign = sign_bit(size);
    uint32_t flags = 0;
    uint64_t src1;
    switch (base) {
    case CC_OP_EFLAGS:
        return (uint32_t)src & X86_ARITH_FLAGS;
    case CC_OP_ADD:
    case CC_OP_ADC: {
        uint64_t carry_in = base == CC_OP_ADC ? (src2 & 1) : 0;
        src1 = dst - src - carry_in;
        bool carry = carry_in ? (dst & mask) <= (src1 & mask) : (dst & mask) < (src1 & mask);
        flags = carry ? X86_CF : 0;
        if ((src1 ^ dst) & (src ^ dst) & sign)
            flags |= X86_OF;
        flags |= (uint32_t)((dst ^ src1 ^ src) & X86_AF);
        break;
    }
    case CC_OP_SUB:
    case CC_OP_SBB: {
        uint64_t borrow_in = base == CC_OP_SBB ? (src2 & 1) : 0;
        src1 = dst + src + borrow_in;
        bool borrow = borrow_in ? (src1 & mask) <= (src & mask) : (src1 & mask) < (src & mask);
        flags = borrow ? X86_CF : 0;
        if ((src1 ^ src) & (src1 ^ dst) & sign)
            flags |= X86_OF;
        flags |= (uint32_t)((dst ^ src1 ^ src) & X86_AF);
        break;
    }
    case CC_OP_LOGIC:
        /* AF is undefined after logic ops; hardware leaves 0, so do we. */
        break;
    case CC_OP_INC:
        src1 = dst - 1;
        flags = (uint32_t)(src & 1); /* CF is preserved */
        if ((dst & mask) == sign)
            flags |= X86_OF;
        flags |= (uint32_t)((dst ^ src1 ^ 1) & X86_AF);
        break;
    case CC_OP_DEC:
        src1 = dst + 1;
        flags = (uint32_t)(src & 1);
        if ((dst & mask) == sign - 1)
            flags |= X86_OF;
        flags |= (uint32_t)((dst ^ src1 ^ 1) & X86_AF);
        break;
    case CC_OP_SHL:
        /* CF = last bit shifted out; OF = MSB(result) ^ CF (defined for count 1 only);
         * AF undefined: 0. */
        flags = (src & sign) ? X86_CF : 0;
        if ((src ^ dst) & sign)
            flags |= X86_OF;
        break;
    case CC_OP_SAR:
        /* CF = last bit shifted out; OF: SAR 0, SHR the operand's MSB (count 1), which
         * src ^ dst gives for both (src = operand >> (count-1)). */
        flags = (uint32_t)(src & 1);
        if ((src ^ dst) & sign)
            flags |= X86_OF;
        break;
    case CC_OP_MUL:
        /* CF = OF = upper half significant; SF ZF AF PF undefined: taken from the low half,
         * AF 0. */
        flags = src ? (X86_CF | X86_OF) : 0;
        break;
    case CC_OP_NEG:
        flags = (src & mask) ? X86_CF : 0;
        if ((dst & mask) == sign)
            flags |= X86_OF;
        flags |= (uint32_t)((dst ^ src) & X86_AF);
        break;
    default:
        return 0;
    }
    return flags | result_flags(dst, size);
}

uint32_t x86_flags_carry(uint32_t cc_op, uint64_t dst, uint64_t src, uint64_t src2)
{
    if (cc_op & CC_OP_ROT)
        return (cc_op >> CC_OP_ROT_CF_SHIFT) & 1;
    unsigned size = cc_op & 3;
    uint64_t mask = width_mask(size);
    switch (cc_op & ~3u) {
    case CC_OP_ADD:
        return (dst & mask) < ((dst - src) & mask);
    case CC_OP_SUB:
        return ((dst + src) & mask) < (src & mask);
    case CC_OP_LOGIC:
        return 0;
    case CC_OP_INC:
    case CC_OP_DEC:
        return (uint32_t)(src & 1);
    default:
        return x86_flags_compute(cc_op, dst, src, src2) & X86_CF;
    }
}

int x86_flags_condition(uint32_t flags, unsigned cc)
{
    int result;
    switch ((cc >> 1) & 7) {
    case 0:
        result = !!(flags & X86_OF);
        break;
    case 1:
        result = !!(flags & X86_CF);
        break;
    case 2:
        result = !!(flags & X86_ZF);
        break;
    case 3:
        result = !!(flags & (X86_CF | X86_ZF));
        break;
    case 4:
        result = !!(flags & X86_SF);
        break;
    case 5:
        result = !!(flags & X86_PF);
        break;
    case 6:
        result = !!(flags & X86_SF) != !!(flags & X86_OF);
        break;
    default:
        result = (!!(flags & X86_SF) != !!(flags & X86_OF)) || (flags & X86_ZF);
        break;
    }
    return (cc & 1) ? !result : result;
}
