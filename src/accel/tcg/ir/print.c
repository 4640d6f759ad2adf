/* IR printer for "-d ir" logs: one op per line, globals by name, constants as $0x... */
#include "accel/tcg/ir/ir.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

/* Appends with snprintf semantics: `total` counts everything, `buf` never overflows. */
struct out {
    char *buf;
    size_t len;
    size_t total;
};

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void
put(struct out *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t room = o->total < o->len ? o->len - o->total : 0;
    int n = vsnprintf(room ? o->buf + o->total : NULL, room, fmt, ap);
    va_end(ap);
    if (n > 0)
        o->total += (size_t)n;
}

static void put_temp(struct out *o, const struct ir_block *b, ir_temp t)
{
    if (t == IR_NO_TEMP) {
        put(o, "-");
        return;
    }
    if (t >= b->nr_temps) { /* corrupt op: show it rather than read out of bounds */
        put(o, "?%u", (unsigned)t);
        return;
    }
    const struct ir_temp_info *ti = &b->temps[t];
    switch (ti->kind) {
    case IR_TEMP_GLOBAL:
        if (ti->name)
            put(o, "%s", ti->name);
        else
            put(o, "g%u", (unsigned)t);
        break;
    case IR_TEMP_CONST:
        put(o, "$0x%" PRIx64, ti->value);
        break;
    default:
        put(o, "t%u", (unsigned)t);
        break;
    }
}

static void put_name(struct out *o, const char *name)
{
    char lower[32];
    size_t i = 0;
    for (; name[i] && i + 1 < sizeof(lower); i++)
        lower[i] = (char)tolower((unsigned char)name[i]);
    lower[i] = '\0';
    put(o, "%s", lower);
}

/* Ops whose behaviour does not depend on op->type print without a _i32/_i64 suffix. */
static bool is_typed(enum ir_opcode opc)
{
    switch (opc) {
    case IR_NOP:
    case IR_LDENV:
    case IR_STENV:
    case IR_CALL:
    case IR_FPENV:
    case IR_FPOP:
    case IR_VOP:
    case IR_LABEL:
    case IR_BR:
    case IR_INSN_START:
    case IR_GOTO_TB:
    case IR_LOOP_TB:
    case IR_EXIT_TB:
        return false;
    default:
        return true;
    }
}

static void put_memop(struct out *o, uint64_t memop)
{
    put(o, " size=%u%s", (unsigned)(memop & IR_MEM_SIZE_MASK),
        (memop & IR_MEM_SIGN) ? " sign" : "");
}

static void put_op(struct out *o, const struct ir_block *b, const struct ir_op *op)
{
    const struct ir_opcode_info *info = ir_opcode_info((enum ir_opcode)op->opc);
    if (!info) {
        put(o, "  <bad opcode %u>\n", (unsigned)op->opc);
        return;
    }
    enum ir_opcode opc = (enum ir_opcode)op->opc;
    const ir_temp *a = op->args;
    switch (opc) {
    case IR_LABEL:
        put(o, "L%" PRIu64 ":\n", op->imm);
        return;
    case IR_INSN_START:
        put(o, " ---- 0x%" PRIx64 "\n", op->imm);
        return;
    default:
        break;
    }

    put(o, "  ");
    put_name(o, info->name);
    if (is_typed(opc))
        put(o, "_%s", op->type == IR_I32 ? "i32" : "i64");

    switch (opc) {
    case IR_MOVI:
        put(o, " ");
        put_temp(o, b, a[0]);
        put(o, ", $0x%" PRIx64, op->imm);
        break;
    case IR_QLD:
        put(o, " ");
        put_temp(o, b, a[0]);
        put(o, ", [");
        put_temp(o, b, a[1]);
        put(o, "]");
        put_memop(o, op->imm);
        break;
    case IR_QST:
        put(o, " ");
        put_temp(o, b, a[0]);
        put(o, ", [");
        put_temp(o, b, a[1]);
        put(o, "]");
        put_memop(o, op->imm);
        break;
    case IR_LDENV:
    case IR_STENV:
        put(o, " ");
        put_temp(o, b, a[0]);
        put(o, ", [env+0x%" PRIx64 "]", op->imm);
        break;
    case IR_CALL: {
        const struct ir_helper *h =
            (b->helpers && op->imm < b->nr_helpers) ? &b->helpers[op->imm] : NULL;
        if (h && h->name)
            put(o, " %s", h->name);
        else
            put(o, " helper#%" PRIu64, op->imm);
        /* Result first ("-" for none), then the arguments up to the last one used. */
        unsigned last = 0;
        for (unsigned i = 1; i < IR_MAX_ARGS; i++)
            if (a[i] != IR_NO_TEMP)
                last = i;
        if (a[0] == IR_NO_TEMP && last == 0)
            break;
        for (unsigned i = 0; i <= last; i++) {
            put(o, i ? ", " : " ");
            put_temp(o, b, a[i]);
        }
        break;
    }
    case IR_BR:
        put(o, " L%" PRIu64, op->imm);
        break;
    case IR_GOTO_TB:
    case IR_EXIT_TB:
        put(o, " %" PRIu64, op->imm);
        break;
    case IR_LOOP_TB:
        put(o, " L%u, %u", IR_LOOP_LABEL(op->imm), IR_LOOP_SLOT(op->imm));
        break;
    case IR_FPENV:
        put(o, " mxcsr=[env+0x%" PRIx64 "], live=[env+0x%" PRIx64 "]", op->imm & UINT32_MAX,
            op->imm >> 32);
        break;
    default: {
        unsigned n = info->nr_out + info->nr_in;
        for (unsigned i = 0; i < n && i < IR_MAX_ARGS; i++) {
            put(o, i ? ", " : " ");
            put_temp(o, b, a[i]);
        }
        if (opc == IR_SETCOND || opc == IR_MOVCOND || opc == IR_BRCOND)
            put(o, ", %s", ir_cond_name((enum ir_cond)op->cond));
        if (opc == IR_BRCOND)
            put(o, ", L%" PRIu64, op->imm);
        if (opc == IR_FPOP)
            put(o, ", insn=%02x 0f %02x", (unsigned)(op->imm >> 8) & 0xff,
                (unsigned)op->imm & 0xff);
        if (opc == IR_VOP)
            put(o, ", insn=%02x 0f %02x imm8=%02x half=%u", (unsigned)(op->imm >> 8) & 0xff,
                (unsigned)op->imm & 0xff, (unsigned)(op->imm >> 16) & 0xff,
                (unsigned)(op->imm >> 24) & 1);
        if (opc == IR_DEPOSIT || opc == IR_EXTRACT)
            put(o, ", pos=%u, len=%u", (unsigned)(op->imm & 0xff),
                (unsigned)((op->imm >> 8) & 0xff));
        break;
    }
    }
    put(o, "\n");
}

size_t ir_print(const struct ir_block *b, char *buf, size_t len)
{
    struct out o = {buf, len, 0};
    if (buf && len)
        buf[0] = '\0';
    else
        o.len = 0;
    uint32_t n = b->nr_ops <= IR_MAX_OPS ? b->nr_ops : IR_MAX_OPS;
    for (uint32_t i = 0; i < n; i++)
        put_op(&o, b, &b->ops[i]);
    return o.total;
}
