/* What backends check before compiling a block: field and memop immediates in range, and
 * temp use: which temps need storage, and which locals may be read before anything wrote
 * them (their storage must start as 0, so a backend never reads indeterminate memory); also
 * that every op references temps the block has and never writes a constant. */
#include "accel/tcg/ir/ir.h"

bool ir_temp_uses(const struct ir_block *b, uint8_t *use, bool *call_needs_zero)
{
    bool prefix_defined[IR_MAX_TEMPS];
    bool in_prefix = true; /* ops before the first label/branch run unconditionally, in order */
    if (b->nr_temps > IR_MAX_TEMPS || b->nr_ops > IR_MAX_OPS)
        return false;
    *call_needs_zero = false;
    for (uint32_t t = 0; t < b->nr_temps; t++) {
        use[t] = IR_USE_NONE;
        prefix_defined[t] = false;
    }
    for (uint32_t i = 0; i < b->nr_ops; i++) {
        const struct ir_op *op = &b->ops[i];
        const struct ir_opcode_info *info = ir_opcode_info((enum ir_opcode)op->opc);
        if (!info || op->type > IR_I64)
            return false;
        if (op->opc == IR_LABEL)
            in_prefix = false;
        unsigned nout = info->nr_out, n = info->nr_out + info->nr_in;
        for (unsigned k = 0; k < n; k++) {
            ir_temp t = op->args[k];
            if (t == IR_NO_TEMP && op->opc == IR_CALL) {
                *call_needs_zero |= k > 0;
                continue;
            }
            if (t >= b->nr_temps)
                return false;
            const struct ir_temp_info *ti = &b->temps[t];
            if (k < nout && ti->kind == IR_TEMP_CONST)
                return false;
            if (ti->kind > IR_TEMP_CONST)
                return false;
            if (use[t] == IR_USE_NONE)
                use[t] = IR_USE_DEFINED;
            if (k >= nout && ti->kind == IR_TEMP_LOCAL && !prefix_defined[t])
                use[t] = IR_USE_READ_UNDEFINED;
        }
        if (in_prefix)
            for (unsigned k = 0; k < nout; k++)
                if (op->args[k] != IR_NO_TEMP)
                    prefix_defined[op->args[k]] = true;
        if (op->opc == IR_BR || op->opc == IR_BRCOND)
            in_prefix = false;
    }
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
