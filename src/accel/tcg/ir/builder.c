/* IR builder: block setup, temps/constants/labels, bounds-checked op emission, and the
 * opcode/condition tables shared by the optimiser, printer and backends. */
#include "accel/tcg/ir/ir.h"

#include <string.h>

static const struct ir_opcode_info opcode_infos[IR_NR_OPCODES] = {
#define IR_OPC_INFO(nm, nout, nin, imm) [IR_##nm] = {#nm, nout, nin, imm},
    IR_OPCODES(IR_OPC_INFO)
#undef IR_OPC_INFO
};

const struct ir_opcode_info *ir_opcode_info(enum ir_opcode opc)
{
    if ((unsigned)opc >= IR_NR_OPCODES)
        return NULL;
    return &opcode_infos[opc];
}

const char *ir_cond_name(enum ir_cond cond)
{
    static const char *const names[] = {
        [IR_COND_EQ] = "eq",         [IR_COND_NE] = "ne",       [IR_COND_LT] = "lt",
        [IR_COND_GE] = "ge",         [IR_COND_LE] = "le",       [IR_COND_GT] = "gt",
        [IR_COND_LTU] = "ltu",       [IR_COND_GEU] = "geu",     [IR_COND_LEU] = "leu",
        [IR_COND_GTU] = "gtu",       [IR_COND_TSTEQ] = "tsteq", [IR_COND_TSTNE] = "tstne",
        [IR_COND_ALWAYS] = "always", [IR_COND_NEVER] = "never",
    };
    if ((unsigned)cond >= sizeof(names) / sizeof(names[0]))
        return "?";
    return names[cond];
}

bool ir_cond_eval(enum ir_cond cond, enum ir_type t, uint64_t a, uint64_t b)
{
    int64_t sa = (int64_t)a, sb = (int64_t)b;
    if (t == IR_I32) { /* compare the low halves; signed conditions sign-extend them */
        a = (uint32_t)a;
        b = (uint32_t)b;
        sa = (int32_t)(uint32_t)a;
        sb = (int32_t)(uint32_t)b;
    }
    switch (cond) {
    case IR_COND_EQ:
        return a == b;
    case IR_COND_NE:
        return a != b;
    case IR_COND_LT:
        return sa < sb;
    case IR_COND_GE:
        return sa >= sb;
    case IR_COND_LE:
        return sa <= sb;
    case IR_COND_GT:
        return sa > sb;
    case IR_COND_LTU:
        return a < b;
    case IR_COND_GEU:
        return a >= b;
    case IR_COND_LEU:
        return a <= b;
    case IR_COND_GTU:
        return a > b;
    case IR_COND_TSTEQ:
        return (a & b) == 0;
    case IR_COND_TSTNE:
        return (a & b) != 0;
    case IR_COND_ALWAYS:
        return true;
    case IR_COND_NEVER:
        return false;
    }
    return false;
}

void ir_block_init(struct ir_block *b, const struct ir_temp_info *globals, uint32_t nr_globals,
                   const struct ir_helper *helpers, uint32_t nr_helpers)
{
    /* The op and temp arrays are large; only the headers need clearing. */
    b->nr_ops = 0;
    b->nr_labels = 0;
    b->overflow = false;
    b->helpers = helpers;
    b->nr_helpers = helpers ? nr_helpers : 0;
    if (nr_globals > IR_MAX_TEMPS) {
        nr_globals = IR_MAX_TEMPS;
        b->overflow = true;
    }
    for (uint32_t i = 0; i < nr_globals; i++) {
        struct ir_temp_info *t = &b->temps[i];
        memset(t, 0, sizeof(*t));
        t->kind = IR_TEMP_GLOBAL;
        t->type = IR_I64;
        t->env_offset = globals[i].env_offset;
        t->name = globals[i].name;
    }
    b->nr_globals = nr_globals;
    b->nr_temps = nr_globals;
}

static ir_temp alloc_temp(struct ir_block *b, enum ir_temp_kind kind, enum ir_type type)
{
    if (b->nr_temps >= IR_MAX_TEMPS) {
        b->overflow = true;
        return IR_NO_TEMP;
    }
    struct ir_temp_info *t = &b->temps[b->nr_temps];
    memset(t, 0, sizeof(*t));
    t->kind = (uint8_t)kind;
    t->type = (uint8_t)type;
    return (ir_temp)b->nr_temps++;
}

ir_temp ir_new_temp(struct ir_block *b, enum ir_type type)
{
    return alloc_temp(b, IR_TEMP_LOCAL, type);
}

ir_temp ir_const(struct ir_block *b, enum ir_type type, uint64_t value)
{
    if (type == IR_I32)
        value = (uint32_t)value; /* an i32 temp holds its value zero-extended */
    /* Reuse an identical constant: blocks use few distinct ones, so a scan is cheap enough. */
    for (uint32_t i = b->nr_globals; i < b->nr_temps; i++) {
        const struct ir_temp_info *t = &b->temps[i];
        if (t->kind == IR_TEMP_CONST && t->type == type && t->value == value)
            return (ir_temp)i;
    }
    ir_temp t = alloc_temp(b, IR_TEMP_CONST, type);
    if (t != IR_NO_TEMP)
        b->temps[t].value = value;
    return t;
}

ir_label ir_new_label(struct ir_block *b)
{
    if (b->nr_labels >= IR_MAX_LABELS) {
        b->overflow = true;
        return (ir_label)0xffff; /* rejected by ir_emit, so no op ever references it */
    }
    return (ir_label)b->nr_labels++;
}

static bool temp_ok(const struct ir_block *b, ir_temp t)
{
    return t < b->nr_temps;
}

int ir_emit(struct ir_block *b, enum ir_opcode opc, enum ir_type type, enum ir_cond cond,
            const ir_temp *args, unsigned nargs, uint64_t imm)
{
    const struct ir_opcode_info *info = ir_opcode_info(opc);
    if (!info || nargs > IR_MAX_ARGS || b->nr_ops >= IR_MAX_OPS)
        goto fail;
    unsigned nr_args = info->nr_out + info->nr_in;
    if (opc != IR_CALL && nargs < nr_args)
        goto fail;
    /* Reject references the backends would have to range-check later: a bad temp here is
     * normally the IR_NO_TEMP of an earlier ran-out-of-temps, so the block is abandoned. */
    for (unsigned i = 0; i < nargs && i < nr_args; i++) {
        if (opc == IR_CALL && args[i] == IR_NO_TEMP)
            continue;
        if (!temp_ok(b, args[i]))
            goto fail;
        if (i < info->nr_out && b->temps[args[i]].kind == IR_TEMP_CONST)
            goto fail;
    }
    if ((opc == IR_LABEL || opc == IR_BR || opc == IR_BRCOND) && imm >= b->nr_labels)
        goto fail;
    if (opc == IR_CALL && imm >= b->nr_helpers)
        goto fail;

    struct ir_op *op = &b->ops[b->nr_ops];
    memset(op, 0, sizeof(*op));
    op->opc = (uint8_t)opc;
    op->type = (uint8_t)type;
    op->cond = (uint8_t)cond;
    for (unsigned i = 0; i < IR_MAX_ARGS; i++)
        op->args[i] = (i < nargs && i < nr_args) ? args[i] : IR_NO_TEMP;
    op->imm = imm;
    return (int)b->nr_ops++;
fail:
    b->overflow = true;
    return -1;
}

void ir_mov(struct ir_block *b, enum ir_type t, ir_temp d, ir_temp a)
{
    ir_temp args[] = {d, a};
    ir_emit(b, IR_MOV, t, IR_COND_ALWAYS, args, 2, 0);
}

void ir_movi(struct ir_block *b, enum ir_type t, ir_temp d, uint64_t imm)
{
    ir_temp args[] = {d};
    ir_emit(b, IR_MOVI, t, IR_COND_ALWAYS, args, 1, t == IR_I32 ? (uint32_t)imm : imm);
}

void ir_binop(struct ir_block *b, enum ir_opcode opc, enum ir_type t, ir_temp d, ir_temp a,
              ir_temp c)
{
    ir_temp args[] = {d, a, c};
    ir_emit(b, opc, t, IR_COND_ALWAYS, args, 3, 0);
}

void ir_unop(struct ir_block *b, enum ir_opcode opc, enum ir_type t, ir_temp d, ir_temp a)
{
    ir_temp args[] = {d, a};
    ir_emit(b, opc, t, IR_COND_ALWAYS, args, 2, 0);
}

void ir_setcond(struct ir_block *b, enum ir_type t, enum ir_cond cond, ir_temp d, ir_temp a,
                ir_temp c)
{
    ir_temp args[] = {d, a, c};
    ir_emit(b, IR_SETCOND, t, cond, args, 3, 0);
}

void ir_movcond(struct ir_block *b, enum ir_type t, enum ir_cond cond, ir_temp d, ir_temp a,
                ir_temp c, ir_temp vtrue, ir_temp vfalse)
{
    ir_temp args[] = {d, a, c, vtrue, vfalse};
    ir_emit(b, IR_MOVCOND, t, cond, args, 5, 0);
}

void ir_deposit(struct ir_block *b, enum ir_type t, ir_temp d, ir_temp a, ir_temp v, unsigned pos,
                unsigned len)
{
    ir_temp args[] = {d, a, v};
    ir_emit(b, IR_DEPOSIT, t, IR_COND_ALWAYS, args, 3, (pos & 0xff) | (uint64_t)(len & 0xff) << 8);
}

void ir_extract(struct ir_block *b, enum ir_type t, ir_temp d, ir_temp a, unsigned pos,
                unsigned len)
{
    ir_temp args[] = {d, a};
    ir_emit(b, IR_EXTRACT, t, IR_COND_ALWAYS, args, 2, (pos & 0xff) | (uint64_t)(len & 0xff) << 8);
}

void ir_mul2(struct ir_block *b, bool is_signed, enum ir_type t, ir_temp lo, ir_temp hi, ir_temp a,
             ir_temp c)
{
    ir_temp args[] = {lo, hi, a, c};
    ir_emit(b, is_signed ? IR_MULS2 : IR_MULU2, t, IR_COND_ALWAYS, args, 4, 0);
}

void ir_qld(struct ir_block *b, enum ir_type t, ir_temp d, ir_temp addr, unsigned memop)
{
    ir_temp args[] = {d, addr};
    ir_emit(b, IR_QLD, t, IR_COND_ALWAYS, args, 2, memop);
}

void ir_qst(struct ir_block *b, enum ir_type t, ir_temp value, ir_temp addr, unsigned memop)
{
    ir_temp args[] = {value, addr};
    ir_emit(b, IR_QST, t, IR_COND_ALWAYS, args, 2, memop);
}

void ir_ldenv(struct ir_block *b, ir_temp d, uint32_t offset)
{
    ir_temp args[] = {d};
    ir_emit(b, IR_LDENV, IR_I64, IR_COND_ALWAYS, args, 1, offset);
}

void ir_stenv(struct ir_block *b, ir_temp a, uint32_t offset)
{
    ir_temp args[] = {a};
    ir_emit(b, IR_STENV, IR_I64, IR_COND_ALWAYS, args, 1, offset);
}

void ir_fpenv(struct ir_block *b, uint32_t mxcsr_offset, uint32_t live_offset)
{
    ir_emit(b, IR_FPENV, IR_I64, IR_COND_ALWAYS, NULL, 0,
            mxcsr_offset | (uint64_t)live_offset << 32);
}

void ir_fpop(struct ir_block *b, ir_temp d, ir_temp a, ir_temp c, uint32_t insn)
{
    ir_temp args[] = {d, a, c};
    ir_emit(b, IR_FPOP, IR_I64, IR_COND_ALWAYS, args, 3, insn);
}

void ir_vop(struct ir_block *b, ir_temp d, ir_temp a_lo, ir_temp a_hi, ir_temp b_lo, ir_temp b_hi,
            uint32_t insn)
{
    ir_temp args[5] = {d, a_lo, a_hi, b_lo, b_hi};
    ir_emit(b, IR_VOP, IR_I64, IR_COND_ALWAYS, args, 5, insn);
}

void ir_call(struct ir_block *b, unsigned helper, ir_temp d, ir_temp a0, ir_temp a1, ir_temp a2,
             ir_temp a3)
{
    ir_temp args[] = {d, a0, a1, a2, a3};
    ir_emit(b, IR_CALL, IR_I64, IR_COND_ALWAYS, args, 5, helper);
}

void ir_label_here(struct ir_block *b, ir_label l)
{
    ir_emit(b, IR_LABEL, IR_I64, IR_COND_ALWAYS, NULL, 0, l);
}

void ir_br(struct ir_block *b, ir_label l)
{
    ir_emit(b, IR_BR, IR_I64, IR_COND_ALWAYS, NULL, 0, l);
}

void ir_brcond(struct ir_block *b, enum ir_type t, enum ir_cond cond, ir_temp a, ir_temp c,
               ir_label l)
{
    ir_temp args[] = {a, c};
    ir_emit(b, IR_BRCOND, t, cond, args, 2, l);
}

void ir_insn_start(struct ir_block *b, uint64_t guest_pc)
{
    ir_emit(b, IR_INSN_START, IR_I64, IR_COND_ALWAYS, NULL, 0, guest_pc);
}

void ir_goto_tb(struct ir_block *b, unsigned slot)
{
    ir_emit(b, IR_GOTO_TB, IR_I64, IR_COND_ALWAYS, NULL, 0, slot);
}

void ir_loop_tb(struct ir_block *b, ir_label head, unsigned slot)
{
    ir_emit(b, IR_LOOP_TB, IR_I64, IR_COND_ALWAYS, NULL, 0, IR_LOOP_IMM(head, slot));
}

void ir_exit_tb(struct ir_block *b, enum ir_exit_reason reason)
{
    ir_emit(b, IR_EXIT_TB, IR_I64, IR_COND_ALWAYS, NULL, 0, reason);
}
