/* What backends check before compiling a block: field and memop immediates in range, and
 * temp use: which temps need storage, and which locals may be read before anything wrote
 * them (their storage must start as 0, so a backend never reads indeterminate memory); also
 * that every op references temps the block has and never writes a constant. */
#include "accel/tcg/ir/ir.h"

#include <stdlib.h>
#include <string.h>

/* Which locals are written on every path to a point: a forward pass over the ops, the set at
 * a label being the intersection of the sets its branches (and the fall-through) bring.
 * Blocks branch forward (fast/slow paths); a backward branch makes the pass give up. */
#define SET_WORDS (IR_MAX_TEMPS / 64)
struct defined_sets {
    uint64_t cur[SET_WORDS]; /* at the current op, when reachable */
    uint64_t *at_label;      /* words per label: brought by the branches seen so far */
    bool branched_to[IR_MAX_LABELS], placed[IR_MAX_LABELS];
    bool reachable, backward;
    uint32_t words, nr_labels;
};

static bool is_set(const uint64_t *set, ir_temp t)
{
    return (set[t / 64] >> (t % 64)) & 1;
}

/* A branch to label l: what is defined here is what l may count on, at most. */
static void branch_to(struct defined_sets *d, uint64_t l)
{
    if (l >= d->nr_labels || !d->reachable)
        return;
    if (d->placed[l])
        d->backward = true;
    uint64_t *set = d->at_label + l * d->words;
    for (uint32_t w = 0; w < d->words; w++)
        set[w] = d->branched_to[l] ? set[w] & d->cur[w] : d->cur[w];
    d->branched_to[l] = true;
}

static void place_label(struct defined_sets *d, uint64_t l)
{
    if (l >= d->nr_labels)
        return;
    d->placed[l] = true;
    if (!d->branched_to[l])
        return; /* only the fall-through reaches it (or nothing does) */
    const uint64_t *set = d->at_label + l * d->words;
    for (uint32_t w = 0; w < d->words; w++)
        d->cur[w] = d->reachable ? d->cur[w] & set[w] : set[w];
    d->reachable = true;
}

/* Track op's effect on the sets once its reads were checked. */
static void defined_after(struct defined_sets *d, const struct ir_op *op, unsigned nout)
{
    for (unsigned k = 0; k < nout; k++)
        if (op->args[k] != IR_NO_TEMP)
            d->cur[op->args[k] / 64] |= 1ULL << (op->args[k] % 64);
    switch (op->opc) {
    case IR_BR:
        branch_to(d, op->imm);
        d->reachable = false;
        break;
    case IR_BRCOND:
        if (op->cond == IR_COND_NEVER)
            break;
        branch_to(d, op->imm);
        if (op->cond == IR_COND_ALWAYS)
            d->reachable = false;
        break;
    case IR_GOTO_TB:
    case IR_LOOP_TB: /* no local lives across it (ir.h) */
    case IR_EXIT_TB:
        d->reachable = false;
        break;
    default:
        break;
    }
}

/* Every temp op references exists, constants are never written. */
static bool check_temps(const struct ir_block *b, const struct ir_op *op,
                        const struct ir_opcode_info *info, bool *call_needs_zero)
{
    unsigned nout = info->nr_out, n = info->nr_out + info->nr_in;
    for (unsigned k = 0; k < n; k++) {
        ir_temp t = op->args[k];
        if (t == IR_NO_TEMP && op->opc == IR_CALL) {
            *call_needs_zero |= k > 0;
            continue;
        }
        if (t >= b->nr_temps || b->temps[t].kind > IR_TEMP_CONST ||
            (k < nout && b->temps[t].kind == IR_TEMP_CONST))
            return false;
    }
    return true;
}

bool ir_temp_uses(const struct ir_block *b, uint8_t *use, bool *call_needs_zero)
{
    struct defined_sets d;
    bool prefix_defined[IR_MAX_TEMPS];
    bool in_prefix = true; /* ops before the first label/branch run unconditionally, in order */
    bool maybe_undefined[IR_MAX_TEMPS]; /* read where some path had not written it */
    if (b->nr_temps > IR_MAX_TEMPS || b->nr_ops > IR_MAX_OPS || b->nr_labels > IR_MAX_LABELS)
        return false;
    *call_needs_zero = false;
    d.words = (b->nr_temps + 63) / 64, d.nr_labels = b->nr_labels;
    d.reachable = true, d.backward = false;
    d.at_label = malloc((b->nr_labels ? b->nr_labels : 1) * d.words * sizeof(uint64_t) + 8);
    if (!d.at_label)
        return false;
    memset(d.cur, 0, sizeof(d.cur));
    memset(d.branched_to, 0, b->nr_labels * sizeof(bool));
    memset(d.placed, 0, b->nr_labels * sizeof(bool));
    for (uint32_t t = 0; t < b->nr_temps; t++) {
        use[t] = IR_USE_NONE;
        prefix_defined[t] = maybe_undefined[t] = false;
    }
    for (uint32_t i = 0; i < b->nr_ops; i++) {
        const struct ir_op *op = &b->ops[i];
        const struct ir_opcode_info *info = ir_opcode_info((enum ir_opcode)op->opc);
        if (!info || op->type > IR_I64 || !check_temps(b, op, info, call_needs_zero)) {
            free(d.at_label);
            return false;
        }
        if (op->opc == IR_LABEL) {
            in_prefix = false;
            place_label(&d, op->imm);
        }
        unsigned nout = info->nr_out, n = info->nr_out + info->nr_in;
        for (unsigned k = 0; k < n; k++) {
            ir_temp t = op->args[k];
            if (t == IR_NO_TEMP && op->opc == IR_CALL)
                continue;
            const struct ir_temp_info *ti = &b->temps[t];
            if (use[t] == IR_USE_NONE)
                use[t] = IR_USE_DEFINED;
            if (k >= nout && ti->kind == IR_TEMP_LOCAL && !prefix_defined[t])
                use[t] = IR_USE_READ_UNDEFINED;
            if (k >= nout && ti->kind == IR_TEMP_LOCAL && d.reachable && !is_set(d.cur, t))
                maybe_undefined[t] = true;
        }
        if (in_prefix)
            for (unsigned k = 0; k < nout; k++)
                if (op->args[k] != IR_NO_TEMP)
                    prefix_defined[op->args[k]] = true;
        if (op->opc == IR_BR || op->opc == IR_BRCOND)
            in_prefix = false;
        defined_after(&d, op, nout);
    }
    /* Without backward branches the paths are known: only locals some path reads unwritten
     * need their 0 (the prefix rule alone zeroed every local read after the first branch). */
    for (uint32_t t = 0; !d.backward && t < b->nr_temps; t++)
        if (use[t] == IR_USE_READ_UNDEFINED && !maybe_undefined[t])
            use[t] = IR_USE_DEFINED;
    free(d.at_label);
    return true;
}

bool ir_field_valid(const struct ir_op *op)
{
    unsigned bits = op->type == IR_I32 ? 32 : 64;
    unsigned pos = op->imm & 0xff, len = (op->imm >> 8) & 0xff;
    return op->imm <= 0xffff && len >= 1 && pos < bits && len <= bits - pos;
}

bool ir_memop_valid(uint64_t memop)
{
    unsigned size = memop & IR_MEM_SIZE_MASK;
    return memop <= (IR_MEM_SIZE_MASK | IR_MEM_SIGN) &&
           (size == 1 || size == 2 || size == 4 || size == 8);
}
