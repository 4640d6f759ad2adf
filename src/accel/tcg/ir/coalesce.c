/* Copy coalescing: a guest instruction's result is computed into a local and then copied to
 * the guest register (`t = a + b; rax = t; cc_dst = t`). Where nothing between the two can
 * see the register early, the op writes the register itself and later reads of the local
 * read the register (`rax = a + b; cc_dst = rax`): one copy less, one value less to hold.
 *
 * Rules, for `P: t = ...` then `M: mov g, t` (g a global, t a local defined by P alone):
 *  - between P and M nothing references g, and nothing may observe guest state (memory
 *    accesses that may fault, calls, env accesses, branches, labels, exits): g's new value
 *    appears exactly where M would have put it as far as anything can tell;
 *  - every read of t after M comes before g is written again and before the next label (a
 *    local read across a label would be read on another path too), and none before P (a
 *    value from an earlier definition, or from the last pass of a loop).
 */
#include "accel/tcg/ir/ir.h"

static bool writes(const struct ir_op *op, const struct ir_opcode_info *info, ir_temp t)
{
    for (unsigned k = 0; k < info->nr_out; k++)
        if (op->args[k] == t)
            return true;
    return false;
}

static bool reads(const struct ir_op *op, const struct ir_opcode_info *info, ir_temp t)
{
    for (unsigned k = info->nr_out; k < (unsigned)(info->nr_out + info->nr_in); k++)
        if (op->args[k] == t)
            return true;
    return false;
}

/* Ops where guest state in env may be looked at, or control may go elsewhere. */
static bool observes_state(enum ir_opcode opc)
{
    switch (opc) {
    case IR_QLD:
    case IR_QST:
    case IR_LDENV:
    case IR_STENV:
    case IR_CALL:
    case IR_FPENV:
    case IR_LABEL:
    case IR_BR:
    case IR_BRCOND:
    case IR_GOTO_TB:
    case IR_LOOP_TB:
    case IR_EXIT_TB:
        return true;
    default:
        return false;
    }
}

#define NONE 0xffffu
#define MAX_DISTANCE 16 /* ops between the definition and the copy looked through */

/* The op defining t for the copy at m, or -1 when the rules do not hold before m. `first`:
 * the first op that reads t. */
static int64_t find_definition(const struct ir_block *b, uint32_t m, ir_temp g, ir_temp t,
                               uint32_t first)
{
    for (uint32_t p = m, seen = 0; p-- > 0 && seen < MAX_DISTANCE; seen++) {
        const struct ir_op *op = &b->ops[p];
        const struct ir_opcode_info *info = ir_opcode_info((enum ir_opcode)op->opc);
        if (op->opc == IR_NOP || op->opc == IR_INSN_START)
            continue;
        if (writes(op, info, t)) {
            /* t read up to here (by this op too): an older value, maybe from a jump back */
            bool simple = info->nr_out == 1 && op->opc != IR_CALL && first > p;
            return simple ? (int64_t)p : -1;
        }
        if (observes_state((enum ir_opcode)op->opc) || writes(op, info, g) || reads(op, info, g))
            return -1;
    }
    return -1;
}

/* Reads of t after m (the last at op `last`) can become reads of g: collects them (at most
 * `max`), or false. */
static bool later_reads(const struct ir_block *b, uint32_t m, ir_temp g, ir_temp t, uint32_t last,
                        uint32_t *at, uint32_t *n, uint32_t max)
{
    bool g_changed = false, crossed_label = false;
    *n = 0;
    for (uint32_t q = m + 1; q <= last && q < b->nr_ops; q++) {
        const struct ir_op *op = &b->ops[q];
        const struct ir_opcode_info *info = ir_opcode_info((enum ir_opcode)op->opc);
        if (op->opc == IR_LABEL)
            crossed_label = true;
        if (reads(op, info, t)) {
            if (g_changed || crossed_label || *n == max)
                return false;
            at[(*n)++] = q;
        }
        if (writes(op, info, t))
            return true; /* a new value: later reads are not of this one */
        if (writes(op, info, g))
            g_changed = true;
    }
    return true;
}

void ir_coalesce_copies(struct ir_block *b)
{
    uint16_t first[IR_MAX_TEMPS], last[IR_MAX_TEMPS]; /* each local's first and last reader */
    uint32_t at[MAX_DISTANCE + 8], n;
    for (uint32_t t = b->nr_globals; t < b->nr_temps; t++)
        first[t] = last[t] = NONE;
    for (uint32_t i = 0; i < b->nr_ops && i < NONE; i++) {
        const struct ir_op *op = &b->ops[i];
        const struct ir_opcode_info *info = ir_opcode_info((enum ir_opcode)op->opc);
        for (unsigned k = info->nr_out; k < (unsigned)(info->nr_out + info->nr_in); k++) {
            ir_temp t = op->args[k];
            if (t >= b->nr_globals && t < b->nr_temps) {
                if (first[t] == NONE)
                    first[t] = (uint16_t)i;
                last[t] = (uint16_t)i;
            }
        }
    }
    for (uint32_t m = 0; m < b->nr_ops; m++) {
        struct ir_op *mov = &b->ops[m];
        if (mov->opc != IR_MOV || mov->type != IR_I64)
            continue;
        ir_temp g = mov->args[0], t = mov->args[1];
        if (g >= b->nr_globals || t >= b->nr_temps || b->temps[t].kind != IR_TEMP_LOCAL)
            continue;
        int64_t p = find_definition(b, m, g, t, first[t]);
        if (p < 0 || !later_reads(b, m, g, t, last[t] == NONE ? m : last[t], at, &n, 8))
            continue;
        b->ops[p].args[0] = g;
        for (uint32_t q = (uint32_t)p + 1; q < m; q++) /* reads between: g holds it */
            if (reads(&b->ops[q], ir_opcode_info((enum ir_opcode)b->ops[q].opc), t))
                at[n++] = q;
        for (uint32_t k = 0; k < n; k++) {
            struct ir_op *op = &b->ops[at[k]];
            const struct ir_opcode_info *info = ir_opcode_info((enum ir_opcode)op->opc);
            for (unsigned j = info->nr_out; j < (unsigned)(info->nr_out + info->nr_in); j++)
                if (op->args[j] == t)
                    op->args[j] = g;
        }
        mov->opc = IR_NOP;
        for (unsigned j = 0; j < IR_MAX_ARGS; j++)
            mov->args[j] = IR_NO_TEMP;
    }
}
