/* x86 front end: control flow. A block ends with a jump (chained to the next block), or
 * loops on itself when it jumps back to its start (IR_LOOP_TB); to get there it may go on past
 * a few conditional branches, their taken sides becoming side exits, when a decode-only look
 * ahead finds that jump back (else the block ends at the first branch, as before). */
#include "accel/tcg/x86/translate_internal.h"

#include "accel/tcg/tcg_internal.h"
#include "accel/tcg/x86/translate.h"

#include <string.h>

/* --- control flow ------------------------------------------------------------------------- */

uint64_t ip_mask(const struct dc *s, unsigned opsize)
{
    if (s->mode == X86_MODE_64)
        return opsize == 16 ? 0xffff : ~0ULL;
    return opsize == 16 ? 0xffff : 0xffffffffULL;
}

void gen_set_rip_const(struct dc *s, uint64_t rip)
{
    ir_movi(s->b, IR_I64, G_RIP, rip);
}

/* End the block jumping to a known RIP. */
void gen_jump_const(struct dc *s, uint64_t rip, unsigned slot)
{
    gen_set_rip_const(s, rip);
    ir_goto_tb(s->b, slot);
    s->end = true;
    s->slot_same_page[slot] = false;
    s->slot_used[slot] = true;
}

/* A jump back to the block's start can stay in the block (IR_LOOP_TB) when the code after the
 * loop head is right for the lazy-flags state here: it does not rely on the op assumed at
 * entry, or that op is the one in force now. */
static uint64_t linear_of(const struct dc *s, uint64_t ip)
{
    uint64_t linear = s->cs_base + ip;
    return s->mode == X86_MODE_64 ? linear : linear & 0xffffffffULL;
}

static bool can_loop(const struct dc *s, uint64_t rip)
{
    return s->loop_head_at >= 0 && rip == s->start_ip &&
           (!s->entry_cc_used || s->cc_op_is_entry || s->cc_op == s->start_cc_op);
}

/* A jump of the guest's control flow (JMP, Jcc, CALL, falling through), not one that ends a
 * block because the mode or the mappings may have changed: when the target is on the
 * block's first page, its chain need not follow the vCPU's TLB epochs. */
void gen_jump_direct(struct dc *s, uint64_t rip, unsigned slot)
{
    if (can_loop(s, rip)) {
        gen_set_rip_const(s, rip);
        if (s->loop_head == IR_NO_LABEL) { /* the placeholder becomes the head's label */
            s->loop_head = ir_new_label(s->b);
            struct ir_op *head = &s->b->ops[s->loop_head_at];
            head->opc = IR_LABEL;
            head->imm = s->loop_head;
        }
        ir_loop_tb(s->b, s->loop_head, slot);
        s->end = true;
        s->loop_closed = true;
        s->slot_used[slot] = true;
        s->slot_same_page[slot] = true;
        return;
    }
    bool first_use = !s->slot_used[slot];
    uint64_t linear = linear_of(s, rip);
    gen_jump_const(s, rip, slot);
    s->slot_same_page[slot] = first_use && (linear & ~0xfffULL) == s->first_page;
}

void gen_jump_reg(struct dc *s, ir_temp rip)
{
    ir_mov(s->b, IR_I64, G_RIP, rip);
    ir_exit_tb(s->b, IR_EXIT_NEXT);
    s->end = true;
}

#define SPEC_MAX_INSNS 16 /* a block goes on past branches only this far */

/* The bytes of a later instruction of the block (not the first: that one may fault): from
 * the first page's host copy while the instruction is inside it, else through the MMU; 0
 * when its page is not mapped (the block ends before it). */
size_t fetch_later_insn(const struct dc *s, uint64_t linear, uint8_t *bytes)
{
    if (s->page_host && (linear & ~0xfffULL) == s->first_page &&
        (linear & 0xfff) + X86_MAX_INSN_LENGTH <= 0x1000) {
        memcpy(bytes, s->page_host + (linear & 0xfff), X86_MAX_INSN_LENGTH);
        return X86_MAX_INSN_LENGTH;
    }
    uint64_t paddr;
    if (!mmu_probe(s->cpu, linear, MMU_EXEC, &paddr))
        return 0;
    return mmu_fetch_code(s->cpu, linear, bytes, X86_MAX_INSN_LENGTH);
}

/* Decoding only (no IR): does the path on from `ip` (falling through conditional branches, at
 * most `sides` of them) jump back to the block's start within the page and the length limit?
 * Translating a block's fall-through in vain costs more than this look. */
static bool loop_closes_ahead(const struct dc *s, uint64_t ip, unsigned sides)
{
    uint64_t mask = s->mode == X86_MODE_64   ? ~0ULL
                    : s->mode == X86_MODE_32 ? 0xffffffffULL
                                             : 0xffff;
    for (unsigned n = s->insn_no + 1; n < SPEC_MAX_INSNS; n++) {
        uint64_t linear = linear_of(s, ip);
        uint8_t bytes[X86_MAX_INSN_LENGTH];
        struct x86_decoded_insn in;
        size_t got = (linear & ~0xfffULL) == s->first_page ? fetch_later_insn(s, linear, bytes) : 0;
        if (!got || x86_decode(bytes, got, s->mode, &in) < 0 || in.cls == X86_CLASS_SYSTEM)
            return false;
        uint64_t next = (ip + in.length) & mask;
        switch ((enum x86_mnemonic)in.mnemonic) {
        case X86_MN_JCC:
        case X86_MN_JMP:
        case X86_MN_LOOP:
        case X86_MN_LOOPE:
        case X86_MN_LOOPNE:
        case X86_MN_JRCXZ: {
            if (in.mnemonic == X86_MN_JMP && in.operand[0].kind != X86_OPND_REL)
                return false;
            uint64_t target = (next + in.imm) & (in.opsize == 16 ? 0xffff : mask);
            if (target == s->start_ip)
                return true;
            if (in.mnemonic == X86_MN_JMP || sides-- == 0)
                return false;
            break;
        }
        case X86_MN_CALL:
        case X86_MN_CALLF:
        case X86_MN_RET:
        case X86_MN_RETF:
        case X86_MN_JMPF:
            return false;
        default:
            break;
        }
        ip = next;
    }
    return false;
}

/* Go on past this branch (its taken side a side exit) rather than end the block: in a block
 * that may loop, with side exits left, when a jump back to the start is ahead on the
 * fall-through path (what is translated in vain when no loop closes is thrown away). */
static bool spec_branch(struct dc *s, ir_temp cond, uint64_t taken, uint64_t fallthrough)
{
    if (s->loop_head_at < 0 || s->nr_side >= MAX_SIDE_EXITS || s->insn_no + 1 >= SPEC_MAX_INSNS ||
        (linear_of(s, fallthrough) & ~0xfffULL) != s->first_page ||
        !loop_closes_ahead(s, fallthrough, MAX_SIDE_EXITS - 1 - s->nr_side))
        return false;
    struct spec_point *sp = s->spec_storage;
    if (!s->spec) {
        sp->state = *s;
        sp->nr_ops = s->b->nr_ops;
        sp->nr_temps = s->b->nr_temps;
        sp->nr_labels = s->b->nr_labels;
        sp->cond = cond, sp->taken = taken, sp->fallthrough = fallthrough;
        s->spec = sp;
    }
    ir_label l = ir_new_label(s->b);
    ir_brcond(s->b, IR_I64, IR_COND_NE, cond, cst(s, 0), l);
    s->side[s->nr_side].label = l;
    s->side[s->nr_side].target = taken;
    s->nr_side++;
    return true;
}

static void gen_branch_two_way(struct dc *s, ir_temp cond, uint64_t taken, uint64_t fallthrough);

void gen_branch_cond(struct dc *s, ir_temp cond, uint64_t taken, uint64_t fallthrough)
{
    if (can_loop(s, taken)) { /* the loop's way back falls through, its exit branches */
        ir_label l = ir_new_label(s->b);
        ir_brcond(s->b, IR_I64, IR_COND_EQ, cond, cst(s, 0), l);
        gen_jump_direct(s, taken, 1);
        ir_label_here(s->b, l);
        gen_jump_direct(s, fallthrough, 0);
        return;
    }
    if (!can_loop(s, fallthrough) && spec_branch(s, cond, taken, fallthrough))
        return;
    gen_branch_two_way(s, cond, taken, fallthrough);
}

/* No loop closed past the first branch: the block ends there after all. */
void spec_rollback(struct dc *s, struct x86_translate_info *info)
{
    struct spec_point *sp = s->spec;
    struct ir_block *b = s->b;
    b->nr_ops = sp->nr_ops;
    b->nr_temps = sp->nr_temps;
    b->nr_labels = sp->nr_labels;
    *s = sp->state; /* (its spec: NULL) */
    info->nr_insns = s->insn_no + 1;
    info->last_byte = s->insn_last_byte;
    s->ip = s->next_ip;
    gen_branch_two_way(s, sp->cond, sp->taken, sp->fallthrough);
}

/* A loop closed: the side exits, each to its taken side (never to the loop head: that one
 * was not known to be right for the flags state there). */
void gen_side_exits(struct dc *s)
{
    for (unsigned k = 0; k < s->nr_side; k++) {
        ir_label_here(s->b, s->side[k].label);
        uint64_t linear = linear_of(s, s->side[k].target);
        gen_jump_const(s, s->side[k].target, 2 + k);
        s->slot_same_page[2 + k] = (linear & ~0xfffULL) == s->first_page;
    }
}

static void gen_branch_two_way(struct dc *s, ir_temp cond, uint64_t taken, uint64_t fallthrough)
{
    ir_label l = ir_new_label(s->b);
    ir_brcond(s->b, IR_I64, IR_COND_NE, cond, cst(s, 0), l);
    gen_jump_direct(s, fallthrough, 0);
    ir_label_here(s->b, l);
    gen_jump_direct(s, taken, 1);
}

uint64_t rel_target(const struct dc *s)
{
    return (s->next_ip + s->insn->imm) & ip_mask(s, s->insn->opsize);
}
