/* Register allocation for the native backend: one forward pass over the block, as QEMU's TCG
 * does. Guest registers (globals) and IR locals stay in host registers from their first use
 * until evicted; a global goes back to env only where its value can be observed there: before
 * helper calls that read globals or may leave, in the slow path of a memory access (which may
 * fault), at a branch and at the block's end. Locals go to their frame slot only when evicted
 * or live across a branch.
 *
 * Which values are live comes from a backward pass: for every op argument, the next op that
 * reads the same temp. Straight-line code is exact (a write ends the old value's life); once a
 * block has labels a write no longer ends it (another path may read the old value), and with a
 * backward branch every local lives to the block's end. Eviction picks the register whose
 * value is read furthest ahead (Belady), preferring clean ones.
 */
#include "accel/tcg/backend/x86_64_emit.h"

static const uint8_t alloc_order[NR_ALLOC_REGS] = {R12, R13, R14, R15, R8, R9, R10, R11};

static bool is_local(const struct emitter *e, ir_temp t)
{
    return e->b->temps[t].kind == IR_TEMP_LOCAL;
}

static bool is_global(const struct emitter *e, ir_temp t)
{
    return e->b->temps[t].kind == IR_TEMP_GLOBAL;
}

void ra_home(const struct emitter *e, ir_temp t, unsigned *base, int32_t *disp)
{
    if (is_global(e, t)) {
        *base = RBX;
        *disp = (int32_t)e->b->temps[t].env_offset - ENV_BIAS;
    } else {
        *base = RBP;
        *disp = e->disp[t];
    }
}

static void store_home(struct emitter *e, ir_temp t, unsigned reg)
{
    unsigned base;
    int32_t disp;
    ra_home(e, t, &base, &disp);
    op_mem(e, 0x89, true, reg, base, disp);
}

static void load_home(struct emitter *e, unsigned reg, ir_temp t)
{
    unsigned base;
    int32_t disp;
    ra_home(e, t, &base, &disp);
    op_mem(e, 0x8b, true, reg, base, disp);
}

/* The temp's home gets the register's value; the register keeps it. */
static void write_back(struct emitter *e, ir_temp t)
{
    if (e->dirty[t]) {
        store_home(e, t, e->reg_of[t]);
        e->dirty[t] = false;
    }
}

static void detach(struct emitter *e, ir_temp t)
{
    unsigned r = e->reg_of[t];
    if (r == NO_REG)
        return;
    e->owner[r] = IR_NO_TEMP;
    e->reg_of[t] = NO_REG;
    e->dirty[t] = false;
}

static void attach(struct emitter *e, ir_temp t, unsigned r, bool dirty)
{
    e->owner[r] = t;
    e->reg_of[t] = (uint8_t)r;
    e->dirty[t] = dirty;
}

/* A local's value is needed after the current op (by index; see the file comment). */
static bool local_live(const struct emitter *e, ir_temp t)
{
    return e->loops || e->cur_next[t] != NO_USE;
}

/* --- liveness ------------------------------------------------------------------------------- */

static void compute_next_reads(struct emitter *e)
{
    const struct ir_block *b = e->b;
    uint16_t *last = e->cur_next; /* reused as scratch: next read seen so far, going back */
    for (uint32_t t = 0; t < b->nr_temps; t++)
        last[t] = NO_USE;
    for (uint32_t i = b->nr_ops; i-- > 0;) {
        const struct ir_op *op = &b->ops[i];
        const struct ir_opcode_info *info = ir_opcode_info((enum ir_opcode)op->opc);
        unsigned nout = info->nr_out, n = nout + info->nr_in;
        for (unsigned k = 0; k < nout; k++) {
            ir_temp t = op->args[k];
            if (t == IR_NO_TEMP)
                continue;
            e->next_read[i][k] = last[t];
        }
        for (unsigned k = 0; k < nout; k++) {
            ir_temp t = op->args[k];
            if (t != IR_NO_TEMP && !e->has_labels)
                last[t] = NO_USE; /* the value before this op is not read past it */
        }
        for (unsigned k = nout; k < n; k++) {
            ir_temp t = op->args[k];
            if (t == IR_NO_TEMP)
                continue;
            e->next_read[i][k] = last[t];
        }
        for (unsigned k = nout; k < n; k++)
            if (op->args[k] != IR_NO_TEMP)
                last[op->args[k]] = (uint16_t)i;
    }
    /* `last` now holds each temp's first read: its next read at block entry. */
}

/* --- self-loops: pinned globals ------------------------------------------------------------- */

/* Index of the op LABEL `label` before op `before` (UINT32_MAX: none). */
static uint32_t find_label(const struct ir_block *b, uint32_t label, uint32_t before)
{
    for (uint32_t i = 0; i < before; i++)
        if (b->ops[i].opc == IR_LABEL && b->ops[i].imm == label)
            return i;
    return UINT32_MAX;
}

static bool overlaps(const struct ir_block *b, ir_temp g, uint64_t offset)
{
    uint64_t goff = b->temps[g].env_offset;
    return offset < goff + 8 && goff < offset + 8;
}

/* The globals a self-loop uses most stay in registers from its head to its jump back: not
 * ones given constants there (RIP, the lazy-flags op: those wait as pending stores) or
 * touched by an env access; as many as leave every op of the loop enough registers. */
static void choose_pinned(struct emitter *e)
{
    const struct ir_block *b = e->b;
    e->loop_head_op = e->loop_op = e->nr_pinned = 0;
    e->pinned_mask = 0;
    e->pin_active = false;
    uint32_t loop_op = 0, loops = 0;
    for (uint32_t i = 0; i < b->nr_ops; i++)
        if (b->ops[i].opc == IR_LOOP_TB)
            loop_op = i, loops++;
    if (loops != 1)
        return;
    uint32_t head = find_label(b, IR_LOOP_LABEL(b->ops[loop_op].imm), loop_op);
    if (head == UINT32_MAX)
        return;
    uint32_t uses[IR_MAX_TEMPS];
    uint32_t ng = b->nr_globals, widest = 3;
    memset(uses, 0, ng * sizeof(uses[0]));
    for (uint32_t i = head + 1; i < loop_op; i++) {
        const struct ir_op *op = &b->ops[i];
        const struct ir_opcode_info *info = ir_opcode_info((enum ir_opcode)op->opc);
        unsigned n = info->nr_out + info->nr_in;
        if (op->opc != IR_CALL && n > widest)
            widest = n;
        for (unsigned k = 0; k < n; k++) /* a write saves a store per pass: worth two reads */
            if (op->args[k] < ng && uses[op->args[k]] != UINT32_MAX)
                uses[op->args[k]] += k < info->nr_out ? 2 : 1;
        if (op->opc == IR_MOVI && op->args[0] < ng)
            uses[op->args[0]] = UINT32_MAX; /* excluded */
        if (op->opc == IR_LDENV || op->opc == IR_STENV)
            for (ir_temp g = 0; g < ng; g++)
                if (overlaps(b, g, op->imm))
                    uses[g] = UINT32_MAX;
    }
    uint32_t limit = NR_ALLOC_REGS - 1 - widest; /* free registers for the widest op */
    if (limit > RA_MAX_PINNED)
        limit = RA_MAX_PINNED;
    while (e->nr_pinned < limit) {
        ir_temp best = IR_NO_TEMP;
        for (ir_temp g = 0; g < ng; g++)
            if (uses[g] != UINT32_MAX && uses[g] >= 2 &&
                (best == IR_NO_TEMP || uses[g] > uses[best]))
                best = g;
        if (best == IR_NO_TEMP)
            break;
        uses[best] = UINT32_MAX;
        e->pinned[e->nr_pinned] = best;
        e->pinned_mask |= (uint16_t)(1u << (R15 - e->nr_pinned));
        e->nr_pinned++;
    }
    e->loop_head_op = head;
    e->loop_op = loop_op;
}

static int pinned_index(const struct emitter *e, ir_temp t)
{
    if (!e->pin_active)
        return -1;
    for (uint32_t k = 0; k < e->nr_pinned; k++)
        if (e->pinned[k] == t)
            return (int)k;
    return -1;
}

/* Every pinned global in its register (after a call that wrote globals: from home). */
static void reload_pinned(struct emitter *e)
{
    for (uint32_t k = 0; e->pin_active && k < e->nr_pinned; k++) {
        ir_temp t = e->pinned[k];
        unsigned r = R15 - k;
        if (e->reg_of[t] == r)
            continue;
        if (e->owner[r] != IR_NO_TEMP) /* (cannot happen: pinned registers are not handed out) */
            detach(e, e->owner[r]);
        if (e->reg_of[t] != NO_REG) {
            bool dirty = e->dirty[t];
            mov_rr(e, true, r, e->reg_of[t]);
            detach(e, t);
            attach(e, t, r, dirty);
        } else {
            load_home(e, r, t);
            attach(e, t, r, false);
        }
    }
}

void ra_enter_loop(struct emitter *e)
{
    ra_forget_all(e);
    e->pin_active = true;
    reload_pinned(e);
    /* The jump back brings values newer than home: dirty from the head on. */
    for (uint32_t k = 0; k < e->nr_pinned; k++)
        e->dirty[e->pinned[k]] = true;
}

void ra_leave_loop(struct emitter *e)
{
    e->pin_active = false;
}

void ra_init(struct emitter *e)
{
    const struct ir_block *b = e->b;
    uint32_t label_seen[IR_MAX_LABELS];
    e->has_labels = e->loops = false;
    for (uint32_t l = 0; l < IR_MAX_LABELS; l++)
        label_seen[l] = 0;
    for (uint32_t i = 0; i < b->nr_ops; i++) {
        const struct ir_op *op = &b->ops[i];
        if (op->opc == IR_LABEL) {
            e->has_labels = true;
            if (op->imm < IR_MAX_LABELS)
                label_seen[op->imm] = 1;
        } else if ((op->opc == IR_BR || op->opc == IR_BRCOND) &&
                   (op->imm >= IR_MAX_LABELS || label_seen[op->imm])) {
            e->loops = true;
        }
    }
    compute_next_reads(e);
    choose_pinned(e);
    for (uint32_t t = 0; t < b->nr_temps; t++) {
        e->reg_of[t] = NO_REG;
        e->dirty[t] = false;
        e->is_pending[t] = false;
    }
    e->nr_pending = 0;
    for (unsigned r = 0; r < 16; r++)
        e->owner[r] = IR_NO_TEMP;
    e->locked = 0;
}

void ra_begin_op(struct emitter *e, uint32_t i)
{
    e->op_index = i;
    e->locked = 0;
}

/* After op i: each argument's next read moves on; locals nobody reads again lose their
 * register (their value is dead, nothing is written). */
void ra_end_op(struct emitter *e, uint32_t i)
{
    const struct ir_op *op = &e->b->ops[i];
    const struct ir_opcode_info *info = ir_opcode_info((enum ir_opcode)op->opc);
    unsigned n = info->nr_out + info->nr_in;
    /* Inputs first: where a temp is both, the value it holds after the op is the output's. */
    for (unsigned j = 0; j < n; j++) {
        unsigned k = (j + info->nr_out) % n;
        ir_temp t = op->args[k];
        if (t == IR_NO_TEMP || e->b->temps[t].kind == IR_TEMP_CONST)
            continue;
        e->cur_next[t] = e->next_read[i][k];
    }
    for (unsigned k = 0; k < n; k++) {
        ir_temp t = op->args[k];
        if (t != IR_NO_TEMP && is_local(e, t) && !local_live(e, t))
            detach(e, t);
    }
    e->locked = 0;
}

/* --- constants not yet stored ------------------------------------------------------------------
 */

static void store_const_home(struct emitter *e, ir_temp t, uint64_t v)
{
    unsigned base;
    int32_t disp;
    ra_home(e, t, &base, &disp);
    op_mem(e, 0xc7, true, 0, base, disp); /* mov qword [home], simm32 */
    imm32(e, (uint32_t)v);
}

static int pending_slot(const struct emitter *e, ir_temp t)
{
    for (uint32_t k = 0; k < e->nr_pending; k++)
        if (e->pending[k] == t)
            return (int)k;
    return -1;
}

static void drop_pending(struct emitter *e, ir_temp t)
{
    int k = pending_slot(e, t);
    if (k < 0)
        return;
    e->is_pending[t] = false;
    e->pending[k] = e->pending[e->nr_pending - 1];
    e->pending_value[k] = e->pending_value[e->nr_pending - 1];
    e->nr_pending--;
}

static void flush_pending(struct emitter *e)
{
    for (uint32_t k = 0; k < e->nr_pending; k++) {
        store_const_home(e, e->pending[k], e->pending_value[k]);
        e->is_pending[e->pending[k]] = false;
    }
    e->nr_pending = 0;
}

bool ra_pending_value(const struct emitter *e, ir_temp t, uint64_t *v)
{
    if (!e->is_pending[t])
        return false;
    *v = e->pending_value[pending_slot(e, t)];
    return true;
}

void ra_set_const(struct emitter *e, ir_temp t, uint64_t v)
{
    if (pinned_index(e, t) >= 0) { /* (not chosen for pinning, but stay right) */
        mov_imm(e, e->reg_of[t], v);
        e->dirty[t] = true;
        return;
    }
    detach(e, t); /* the register's value is overwritten */
    int k = pending_slot(e, t);
    if (k < 0) {
        if (e->nr_pending == RA_MAX_PENDING) { /* room: the oldest one goes home */
            store_const_home(e, e->pending[0], e->pending_value[0]);
            drop_pending(e, e->pending[0]);
        }
        k = (int)e->nr_pending++;
        e->pending[k] = t;
        e->is_pending[t] = true;
    }
    e->pending_value[k] = v;
}

/* --- allocation ------------------------------------------------------------------------------ */

/* A register to hold a new value: a free one, else the one whose value is needed furthest
 * ahead (its value goes home first if the home is stale). */
static unsigned take_register(struct emitter *e)
{
    unsigned best = NO_REG;
    uint32_t best_score = 0;
    for (unsigned k = 0; k < NR_ALLOC_REGS; k++) {
        unsigned r = alloc_order[k];
        if ((e->locked & (1u << r)) || (e->pin_active && (e->pinned_mask & (1u << r))))
            continue;
        ir_temp t = e->owner[r];
        if (t == IR_NO_TEMP)
            return r;
        /* Later next read = better victim; a clean one costs no store. */
        uint32_t score = (uint32_t)e->cur_next[t] * 2 + (e->dirty[t] ? 0 : 1);
        if (best == NO_REG || score > best_score) {
            best = r;
            best_score = score;
        }
    }
    if (best == NO_REG) { /* every register locked: cannot happen (ops read at most 4) */
        e->overflow = true;
        return R12;
    }
    ir_temp victim = e->owner[best];
    if (is_global(e, victim) || local_live(e, victim))
        write_back(e, victim);
    detach(e, victim);
    return best;
}

unsigned ra_use(struct emitter *e, ir_temp t)
{
    unsigned r = e->reg_of[t];
    uint64_t v;
    if (r == NO_REG && ra_pending_value(e, t, &v)) { /* into a register, its home still stale */
        r = take_register(e);
        mov_imm(e, r, v);
        drop_pending(e, t);
        attach(e, t, r, true);
    }
    if (r == NO_REG) {
        r = take_register(e);
        if (e->b->temps[t].kind == IR_TEMP_CONST) {
            mov_imm(e, r, e->b->temps[t].value); /* not attached: constants have no home */
            e->locked |= (uint16_t)(1u << r);
            return r;
        }
        load_home(e, r, t);
        attach(e, t, r, false);
    }
    e->locked |= (uint16_t)(1u << r);
    return r;
}

/* Input t of the current op is a local whose value nobody reads after this op. */
static bool input_dies(const struct emitter *e, ir_temp t)
{
    if (!is_local(e, t) || e->loops)
        return false;
    const struct ir_op *op = &e->b->ops[e->op_index];
    const struct ir_opcode_info *info = ir_opcode_info((enum ir_opcode)op->opc);
    bool found = false;
    for (unsigned k = info->nr_out; k < info->nr_out + info->nr_in; k++) {
        if (op->args[k] != t)
            continue;
        if (e->next_read[e->op_index][k] != NO_USE)
            return false;
        found = true;
    }
    return found;
}

unsigned ra_def(struct emitter *e, ir_temp t, ir_temp reuse)
{
    drop_pending(e, t); /* overwritten before anything saw it */
    unsigned r = e->reg_of[t];
    if (r == NO_REG && reuse != IR_NO_TEMP && reuse != t && e->reg_of[reuse] != NO_REG &&
        input_dies(e, reuse)) {
        r = e->reg_of[reuse];
        detach(e, reuse);
    }
    if (r == NO_REG)
        r = take_register(e);
    attach(e, t, r, true);
    e->locked |= (uint16_t)(1u << r);
    return r;
}

/* --- where values must be in memory ---------------------------------------------------------- */

void ra_sync_globals(struct emitter *e)
{
    flush_pending(e);
    for (unsigned r = 0; r < 16; r++) {
        ir_temp t = e->owner[r];
        if (t != IR_NO_TEMP && is_global(e, t))
            write_back(e, t);
    }
}

void ra_loop_back(struct emitter *e)
{
    flush_pending(e);
    for (unsigned r = 0; r < 16; r++) {
        ir_temp t = e->owner[r];
        if (t != IR_NO_TEMP && is_global(e, t) && pinned_index(e, t) < 0)
            write_back(e, t);
    }
}

void ra_end_bb(struct emitter *e)
{
    flush_pending(e);
    for (unsigned r = 0; r < 16; r++) {
        ir_temp t = e->owner[r];
        if (t == IR_NO_TEMP)
            continue;
        if (is_global(e, t) || local_live(e, t))
            write_back(e, t);
    }
}

void ra_forget_all(struct emitter *e)
{
    for (uint32_t k = 0; k < e->nr_pending; k++) /* unreachable: ra_end_bb flushed them */
        e->is_pending[e->pending[k]] = false;
    e->nr_pending = 0;
    for (unsigned r = 0; r < 16; r++) {
        ir_temp t = e->owner[r];
        if (t == IR_NO_TEMP)
            continue;
        if (pinned_index(e, t) >= 0)
            e->dirty[t] = true; /* another path may join with a newer value */
        else
            detach(e, t);
    }
}

void ra_before_call(struct emitter *e, uint32_t flags)
{
    bool pure =
        (flags & IR_HELPER_NO_SIDE_EFFECTS) &&
        !(flags & (IR_HELPER_READS_GLOBALS | IR_HELPER_WRITES_GLOBALS | IR_HELPER_MAY_EXIT));
    if (!pure)
        ra_sync_globals(e);
    for (unsigned r = 0; r < 16; r++) {
        ir_temp t = e->owner[r];
        if (t != IR_NO_TEMP && CALLER_SAVED(r) && (is_global(e, t) || local_live(e, t)))
            write_back(e, t);
    }
}

void ra_after_call(struct emitter *e, uint32_t flags)
{
    for (unsigned r = 0; r < 16; r++) {
        ir_temp t = e->owner[r];
        if (t == IR_NO_TEMP)
            continue;
        if (CALLER_SAVED(r) || (is_global(e, t) && (flags & IR_HELPER_WRITES_GLOBALS)))
            detach(e, t);
    }
    reload_pinned(e);
}

void ra_snapshot(const struct emitter *e, struct ra_state *st)
{
    st->nr_pending = e->nr_pending;
    for (uint32_t k = 0; k < e->nr_pending; k++) {
        st->pending[k] = e->pending[k];
        st->pending_value[k] = e->pending_value[k];
    }
    for (unsigned r = 0; r < 16; r++) {
        st->owner[r] = e->owner[r];
        st->dirty[r] = e->owner[r] != IR_NO_TEMP && e->dirty[e->owner[r]];
    }
}

void ra_slow_save(struct emitter *e, const struct ra_state *st)
{
    for (uint32_t k = 0; k < st->nr_pending; k++)
        store_const_home(e, st->pending[k], st->pending_value[k]);
    for (unsigned r = 0; r < 16; r++) {
        ir_temp t = st->owner[r];
        if (t == IR_NO_TEMP)
            continue;
        /* Stored without changing what the allocator believes: this path may not run. */
        if ((is_global(e, t) && st->dirty[r]) || CALLER_SAVED(r))
            store_home(e, t, r);
    }
}

uint16_t ra_edge_stores(const struct emitter *e)
{
    uint16_t mask = 0;
    for (unsigned r = 0; r < 16; r++) {
        ir_temp t = e->owner[r];
        if (t != IR_NO_TEMP && e->dirty[t] && (is_global(e, t) || local_live(e, t)))
            mask |= (uint16_t)(1u << r);
    }
    return mask;
}

void ra_edge_save(struct emitter *e, const struct ra_state *st, uint16_t store)
{
    for (uint32_t k = 0; k < st->nr_pending; k++)
        store_const_home(e, st->pending[k], st->pending_value[k]);
    for (unsigned r = 0; r < 16; r++)
        if (store & (1u << r))
            store_home(e, st->owner[r], r);
}

void ra_slow_restore(struct emitter *e, const struct ra_state *st)
{
    for (unsigned r = 0; r < 16; r++) {
        ir_temp t = st->owner[r];
        if (t != IR_NO_TEMP && CALLER_SAVED(r))
            load_home(e, r, t);
    }
}

void ra_env_access(struct emitter *e, uint64_t offset, bool write)
{
    flush_pending(e); /* rare (state not modelled as globals): simply all */
    for (unsigned r = 0; r < 16; r++) {
        ir_temp t = e->owner[r];
        if (t == IR_NO_TEMP || !is_global(e, t))
            continue;
        uint64_t goff = e->b->temps[t].env_offset;
        if (offset < goff + 8 && goff < offset + 8) { /* (pending constants: flushed above) */
            write_back(e, t);
            if (write)
                detach(e, t);
        }
    }
}
