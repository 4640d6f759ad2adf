/* The x86 front end's shared translation state and helpers (translate.c, translate_sse.c):
 * one block being translated, and the IR-emitting building blocks the instruction families
 * use. Not an interface outside the front end. */
#ifndef QUOKKA_ACCEL_TCG_X86_TRANSLATE_INTERNAL_H
#define QUOKKA_ACCEL_TCG_X86_TRANSLATE_INTERNAL_H

#include "accel/tcg/cpu.h"
#include "accel/tcg/ir/ir.h"
#include "accel/tcg/x86/decode.h"
#include "accel/tcg/x86/helpers.h"
#include "accel/tcg/x86/translate.h"

#include <stdbool.h>
#include <stdint.h>

#define CC_OP_DYNAMIC (-1)

enum global_index {
    G_GPR0 = 0,
    G_RIP = NR_GPRS,
    G_CC_OP,
    G_CC_DST,
    G_CC_SRC,
    G_CC_SRC2,
    G_EFLAGS,
    G_SEG_BASE0,
    G_XMM0 = G_SEG_BASE0 + NR_SEGS, /* xmm0 low half, xmm0 high half, xmm1 low... */
    NR_TCG_GLOBALS = G_XMM0 + 32,
};

/* Conditional branches a block may go on past (each taken side a side exit, GOTO_TB slot
 * 2 + its index), hoping to reach a jump back to its start. */
#define MAX_SIDE_EXITS 3

struct spec_point;

/* Disassembly context: one block being translated. */
struct dc {
    struct ir_block *b;
    struct tcg_cpu *cpu;
    const struct x86_decoded_insn *insn;
    uint64_t cs_base;
    uint64_t ip;      /* RIP of the current instruction (not linear) */
    uint64_t next_ip; /* RIP after it */
    uint32_t hflags;
    enum x86_cpu_mode mode;
    int cc_op; /* static lazy-flags op, or CC_OP_DYNAMIC */
    /* cc_op is still the value the vCPU had when the block was translated (assumed at entry,
     * see x86_translate_info.entry_cc_op), and whether code relied on that. */
    bool cc_op_is_entry, entry_cc_used;
    bool end;                 /* the block ends after this instruction */
    bool call, ret;           /* ...with a near CALL / RET (x86_translate_info) */
    int64_t fpenv_at;         /* the op index of the block's last IR_FPENV, -1: none */
    uint64_t first_page;      /* linear */
    const uint8_t *page_host; /* the first page's bytes (in RAM), or NULL */
    /* Per GOTO_TB slot: emitted, and by a plain jump to the block's first page (see
     * x86_translate_info.chain_same_page). */
    bool slot_used[IR_MAX_GOTO_SLOTS], slot_same_page[IR_MAX_GOTO_SLOTS];
    /* A jump to the block's own start (start_ip) may continue at loop_head (IR_LOOP_TB):
     * a label placed after the entry check, or IR_NO_LABEL where the block must leave. */
    uint64_t start_ip;
    ir_label loop_head;
    int64_t loop_head_at; /* the NOP that becomes loop_head's LABEL at the first use; -1: none */
    int start_cc_op;      /* s.cc_op at the start (the assumed entry op or CC_OP_DYNAMIC) */
    bool loop_closed;     /* an IR_LOOP_TB was emitted */
    /* Going on past conditional branches (translate.c, spec_branch): where the first one was
     * (NULL: not past one), and each one's taken side. */
    struct spec_point *spec, *spec_storage;
    unsigned nr_side;
    struct {
        ir_label label;
        uint64_t target;
    } side[MAX_SIDE_EXITS];
    unsigned insn_no;        /* the instruction being translated, from 0 */
    uint64_t insn_last_byte; /* its last byte (linear) */
};

static inline ir_temp gpr(unsigned r)
{
    return (ir_temp)(G_GPR0 + r);
}

static inline ir_temp tmp(struct dc *s)
{
    return ir_new_temp(s->b, IR_I64);
}

static inline ir_temp cst(struct dc *s, uint64_t v)
{
    return ir_const(s->b, IR_I64, v);
}

/* IR building blocks (translate.c). */
void gen_call(struct dc *s, enum x86_helper_id h, ir_temp d, ir_temp a0, ir_temp a1, ir_temp a2,
              ir_temp a3);
ir_temp gen_load(struct dc *s, ir_temp addr, unsigned bits);
void gen_store(struct dc *s, ir_temp addr, ir_temp v, unsigned bits);
ir_temp gen_mem_addr(struct dc *s);
ir_temp gen_linear(struct dc *s, ir_temp offset, unsigned seg);
void store_reg(struct dc *s, unsigned reg, unsigned bits, bool high8, ir_temp v);
ir_temp load_reg(struct dc *s, unsigned reg, unsigned bits, bool high8);
/* d = the low `bits` of a, zero- / sign-extended */
void gen_zext(struct dc *s, ir_temp d, ir_temp a, unsigned bits);
void gen_sext(struct dc *s, ir_temp d, ir_temp a, unsigned bits);
void sync_cc_op(struct dc *s); /* G_CC_OP written before what may fault or read it */

static inline enum ir_type type_for(unsigned bits)
{
    return bits == 64 ? IR_I64 : IR_I32;
}

static inline unsigned cc_size(unsigned bits)
{
    return bits == 8 ? CC_SIZE_B : bits == 16 ? CC_SIZE_W : bits == 32 ? CC_SIZE_L : CC_SIZE_Q;
}

/* Lazy flags (translate_flags.c). */
void set_cc_op(struct dc *s, int op);
void forget_cc_op(struct dc *s, int op);
void write_cc_op(struct dc *s);
void set_cc(struct dc *s, int base, unsigned bits, ir_temp dst, ir_temp src, ir_temp src2);
ir_temp gen_materialize_flags(struct dc *s);
ir_temp gen_carry(struct dc *s);
ir_temp gen_condition(struct dc *s, unsigned cc);
void gen_bitscan_inline(struct dc *s, int kind, unsigned bits, ir_temp r, ir_temp src, ir_temp old);

/* Where translation went past its first conditional branch: what to come back to when no
 * loop closes (the block then ends at that branch, as it would have). */
struct spec_point {
    struct dc state; /* as at the branch */
    uint32_t nr_ops, nr_temps, nr_labels;
    ir_temp cond;
    uint64_t taken, fallthrough;
};

/* Control flow (translate_jumps.c): jumps that end the block, loops that stay in it, and
 * going on past conditional branches towards a jump back to the start. */
uint64_t ip_mask(const struct dc *s, unsigned opsize);
uint64_t rel_target(const struct dc *s);
void gen_set_rip_const(struct dc *s, uint64_t rip);
void gen_jump_const(struct dc *s, uint64_t rip, unsigned slot);
void gen_jump_direct(struct dc *s, uint64_t rip, unsigned slot);
void gen_jump_reg(struct dc *s, ir_temp rip);
void gen_branch_cond(struct dc *s, ir_temp cond, uint64_t taken, uint64_t fallthrough);
size_t fetch_later_insn(const struct dc *s, uint64_t linear, uint8_t *bytes);
void spec_rollback(struct dc *s, struct x86_translate_info *info);
void gen_side_exits(struct dc *s);

/* x87, SSE and MMX instructions (translate_sse.c): inline where the host's own instruction
 * or plain IR gives the exact result, else a helper. */
void gen_fpu_sse(struct dc *s);

#endif
