/* Native backend: IR block -> x86-64 host code. See x86_64.h for the contract.
 *
 * Code shape. Two callee-saved registers are pinned for the whole chain of blocks:
 *   RBX = env + ENV_BIAS   guest state (globals) at [rbx + offset - ENV_BIAS]
 *   RBP = frame + FRAME_BIAS  block locals at [rbp + 8*slot - FRAME_BIAS]
 * Guest registers, XMM halves and temporaries live in R8-R15 (x86_64_regs.c) and reach env
 * only where the state can be observed; RAX, RCX, RDX, RSI and RDI are scratch for fixed
 * sequences. The biases put the hottest fields (GPRs, RIP, flags) and the first locals in
 * disp8 range. The frame has the same size for every block, so a chained jump goes from one
 * block's code straight into the next without touching the stack.
 *
 * A block's first instruction (skipped when the run loop enters) checks the exit request
 * word; invalidation overwrites it with a jump to the "leave" trampoline. Chained jumps and
 * inline caches read their targets from data slots (struct native_site, x86_64_jit.c), so
 * chaining never rewrites code. Memory accesses inline the software TLB's hit path (tag
 * compare on the page of the last byte, so page-crossing accesses miss) and call the MMU's
 * load/store from slow paths emitted after the block.
 */
#include "accel/tcg/backend/x86_64.h"
#include "accel/tcg/backend/x86_64_emit.h"
#include "accel/tcg/ir/fpenv.h"
#include "accel/tcg/ir/vecop.h"

#include "accel/tcg/ir/bits.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* --- operands --------------------------------------------------------------------------------- */

static const struct ir_temp_info *tinfo(const struct emitter *e, ir_temp t)
{
    return &e->b->temps[t];
}

static bool is_const(const struct emitter *e, ir_temp t)
{
    return tinfo(e, t)->kind == IR_TEMP_CONST;
}

/* reg = t's value (64 bits), from its register, its home or as an immediate. */
static void load(struct emitter *e, unsigned reg, ir_temp t)
{
    if (is_const(e, t)) {
        mov_imm(e, reg, tinfo(e, t)->value);
        return;
    }
    if (e->reg_of[t] != NO_REG) {
        if (e->reg_of[t] != reg)
            mov_rr(e, true, reg, e->reg_of[t]);
        return;
    }
    uint64_t v;
    if (ra_pending_value(e, t, &v)) {
        mov_imm(e, reg, v);
        return;
    }
    unsigned base;
    int32_t disp;
    ra_home(e, t, &base, &disp);
    op_mem(e, 0x8b, true, reg, base, disp);
}

/* reg = argument `arg` of the current op, like load(); a value read again after this op
 * first gets a register of its own, so it is loaded once rather than at each use. */
static void load_reused(struct emitter *e, unsigned reg, unsigned arg)
{
    ir_temp t = e->b->ops[e->op_index].args[arg];
    uint64_t v;
    if (!is_const(e, t) && e->reg_of[t] == NO_REG && !ra_pending_value(e, t, &v) &&
        e->next_read[e->op_index][arg] != NO_USE) {
        mov_rr(e, true, reg, ra_use(e, t));
        return;
    }
    load(e, reg, t);
}

/* t = reg (all 64 bits): t gets a register of its own. */
static void store(struct emitter *e, ir_temp t, unsigned reg)
{
    unsigned r = ra_def(e, t, IR_NO_TEMP);
    if (r != reg)
        mov_rr(e, true, r, reg);
}

/* --- control flow ------------------------------------------------------------------------------
 */

static void jump_to_label(struct emitter *e, uint32_t opc, uint32_t label)
{
    opcode(e, opc);
    if (e->nr_fixups < IR_MAX_OPS)
        e->fixups[e->nr_fixups++] = (struct fixup){(uint32_t)e->len, label};
    else
        e->overflow = true;
    imm32(e, 0);
}

/* jmp/jcc rel32 to an absolute offset in the buffer of trampolines or this block. */
static void jump_to_rx(struct emitter *e, uint32_t opc, uintptr_t target)
{
    opcode(e, opc);
    uintptr_t next = e->rx_base + e->len + 4;
    imm32(e, (uint32_t)(target - next));
}

/* Forward short jump: returns where to patch its rel8. */
static size_t jcc8(struct emitter *e, uint8_t opc)
{
    byte(e, opc);
    byte(e, 0);
    return e->len;
}

static void land8(struct emitter *e, size_t after)
{
    if (e->overflow)
        return;
    size_t d = e->len - after;
    if (d > 127) {
        e->overflow = true; /* cannot happen for the fixed sequences that use it */
        return;
    }
    e->buf[after - 1] = (uint8_t)d;
}

/* The epoch word the site names still holds the value it was set in; else jumps (the
 * returned rel8) away. Uses RAX and RCX. */
static size_t site_epoch_check(struct emitter *e, unsigned site_reg)
{
    op_mem(e, 0x63, true, RCX, site_reg, SITE_EPOCH_DISP_OFF); /* movsxd rcx, [site+disp] */
    op_mem_index(e, 0x8b, false, RAX, RBX, RCX, 0);            /* eax = [rbx + rcx] */
    op_mem(e, 0x3b, false, RAX, site_reg, SITE_EPOCH_OFF);
    return jcc8(e, 0x75);
}

/* A data slot for an indirect jump of this block (none left: like a full buffer): its
 * index in every thread's copy, or NO_SITE. */
static uint32_t new_site(struct emitter *e)
{
    struct native_jit *jit = (struct native_jit *)e->jit;
    if (jit->sites_used >= jit->nr_sites) {
        e->overflow = true;
        return NO_SITE;
    }
    return (uint32_t)jit->sites_used++;
}

/* reg = this thread's copy of site `index`: the address itself with one thread, else
 * through the env pointer to the thread's slots. */
static void load_site(struct emitter *e, unsigned reg, uint32_t index)
{
    const struct native_jit *jit = e->jit;
    if (jit->nr_threads <= 1) {
        mov_imm(e, reg, (uint64_t)(uintptr_t)thread_site(jit, 0, index));
        return;
    }
    op_mem(e, 0x8b, true, reg, RBX, (int32_t)jit->cfg.sites_offset - ENV_BIAS);
    op_mem(e, 0x8d, true, reg, reg, (int32_t)(index * sizeof(struct native_site)));
}

static void env_arg(struct emitter *e);
static void call_abs(struct emitter *e, const void *fn);

/* Count the block's instructions as run. */
/* Statistics: add 1 to the uint64 counter at env offset `offset`, 0 meaning not counted
 * (flags are clobbered: only where none are live). */
static void count_event(struct emitter *e, uint32_t offset)
{
    if (e->jit->cfg.count_insns && offset && offset <= INT32_MAX - 8)
        op_mem(e, 0xff, true, 0, RBX, (int32_t)offset - ENV_BIAS); /* inc qword [rbx + disp] */
}

static void count_insns(struct emitter *e)
{
    uint32_t n = e->info->nr_guest_insns;
    if (n && e->jit->cfg.count_insns) {
        op_mem(e, 0x81, true, 0, RBX, (int32_t)e->jit->cfg.insn_count_offset - ENV_BIAS);
        imm32(e, n);
    }
}

/* sub dword [budget], 1; js <returned rel32, see land32> */
static size_t spend_budget(struct emitter *e)
{
    op_mem(e, 0x83, false, 5, RBX, (int32_t)e->jit->cfg.chain_budget_offset - ENV_BIAS);
    byte(e, 1);
    opcode(e, 0x0f88);
    size_t at = e->len;
    imm32(e, 0);
    return at;
}

static void land32(struct emitter *e, size_t at)
{
    if (!e->overflow)
        patch32(e->buf + at, (uint32_t)(e->len - (at + 4)));
}

/* Leave the block with EAX = value. IR_EXIT_NEXT first asks lookup_next for a block to
 * continue with, so indirect jumps stay in generated code too. */
static bool ras_enabled(const struct emitter *e)
{
    const struct native_config *cfg = &e->jit->cfg;
    return cfg->ras_entries && !(cfg->ras_entries & (cfg->ras_entries - 1)) &&
           e->info->inline_cache;
}

/* EAX = the RAS slot's offset from its base for the top index in env (after `adjust`). */
static void ras_slot(struct emitter *e, int adjust)
{
    const struct native_config *cfg = &e->jit->cfg;
    int32_t top = (int32_t)cfg->ras_top_offset - ENV_BIAS;
    if (adjust) {
        op_mem(e, 0x83, false, adjust > 0 ? 0 : 5, RBX, top); /* add/sub dword [top], 1 */
        byte(e, 1);
    }
    op_mem(e, 0x8b, false, RAX, RBX, top);
    op_reg(e, 0x81, false, 4, RAX); /* and eax, entries-1 */
    imm32(e, cfg->ras_entries - 1);
    op_reg(e, 0xc1, false, 4, RAX); /* shl eax, 4 */
    byte(e, 4);
}

/* A CALL's block, leaving: push {return pc, a slot for the block there} (the slot is aimed
 * at that block by the first RET that finds it unaimed). */
static void emit_ras_push(struct emitter *e)
{
    if (!e->info->ras_push || !ras_enabled(e))
        return;
    const struct native_config *cfg = &e->jit->cfg;
    uint32_t site = new_site(e);
    if (site == NO_SITE)
        return;
    init_site(e->jit, site, NULL);
    int32_t ras = (int32_t)cfg->ras_offset - ENV_BIAS;
    load_site(e, RDX, site);
    mov_imm(e, RCX, e->info->ras_return);
    ras_slot(e, 0);
    op_mem_index(e, 0x89, true, RCX, RBX, RAX, ras);     /* entry.pc */
    op_mem_index(e, 0x89, true, RDX, RBX, RAX, ras + 8); /* entry.site */
    op_mem(e, 0x83, false, 0, RBX, (int32_t)cfg->ras_top_offset - ENV_BIAS);
    byte(e, 1); /* add dword [top], 1 */
}

/* A RET's block, leaving: pop the RAS; when its pc is the return target, jump through its
 * slot if that is aimed (pc, mode, epoch as set), else have lookup_next aim it: RSI = slot,
 * jump (rel32 returned, to be patched) to the lookup call. Other cases fall through. */
static size_t emit_ras_pop(struct emitter *e)
{
    const struct native_config *cfg = &e->jit->cfg;
    int32_t ras = (int32_t)cfg->ras_offset - ENV_BIAS;
    ras_slot(e, -1);
    op_mem_index(e, 0x8b, true, RCX, RBX, RAX, ras);
    op_mem(e, 0x3b, true, RCX, RBX, (int32_t)cfg->pc_offset - ENV_BIAS);
    size_t other = jcc8(e, 0x75);
    op_mem_index(e, 0x8b, true, RSI, RBX, RAX, ras + 8);
    op_reg(e, 0x85, true, RSI, RSI);
    size_t empty = jcc8(e, 0x74);
    size_t aim[4];
    op_mem(e, 0x3b, true, RCX, RSI, SITE_PC_OFF);
    aim[0] = jcc8(e, 0x75);
    op_mem(e, 0x8b, false, RAX, RBX, (int32_t)cfg->guard_offset - ENV_BIAS);
    op_mem(e, 0x3b, false, RAX, RSI, SITE_GUARD_OFF);
    aim[1] = jcc8(e, 0x75);
    aim[2] = site_epoch_check(e, RSI);
    op_mem(e, 0x83, true, 7, RSI, SITE_TARGET_OFF); /* cmp qword [rsi + target], 0 */
    byte(e, 0);
    aim[3] = jcc8(e, 0x74);
    op_mem(e, 0xff, false, 4, RSI, SITE_TARGET_OFF); /* jmp [rsi + target] */
    for (int k = 0; k < 4; k++)
        land8(e, aim[k]);
    opcode(e, 0xe9); /* jmp rel32: to the lookup, RSI = this slot */
    size_t to_lookup = e->len;
    imm32(e, 0);
    land8(e, other);
    land8(e, empty);
    return to_lookup;
}

/* Search the table of indirect-jump targets (native_config.fast_jump_*) for env's pc: on a
 * match (pc, mode word and epoch) jump to the entry, else fall through. RAX, RCX, RDX. */
static void emit_fast_jump_probe(struct emitter *e)
{
    const struct native_config *cfg = &e->jit->cfg;
    uint32_t n = cfg->fast_jump_entries;
    if (!n || (n & (n - 1)) || n > (1u << 20) || cfg->fast_jump_offset > INT32_MAX - 32 * n)
        return;
    int32_t table = (int32_t)cfg->fast_jump_offset - ENV_BIAS;
    op_mem(e, 0x8b, true, RAX, RBX, (int32_t)cfg->pc_offset - ENV_BIAS); /* rax = pc */
    mov_rr(e, true, RCX, RAX);
    op_reg(e, 0xc1, true, 5, RCX); /* shr rcx, 10 */
    byte(e, 10);
    op_reg(e, 0x33, true, RCX, RAX); /* xor rcx, rax */
    op_reg(e, 0x81, false, 4, RCX);  /* and ecx, n - 1 */
    imm32(e, n - 1);
    op_reg(e, 0xc1, false, 4, RCX); /* shl ecx, 5: 32-byte entries */
    byte(e, 5);
    op_mem_index(e, 0x3b, true, RAX, RBX, RCX, table); /* cmp rax, [rbx + rcx + table] */
    size_t miss0 = jcc8(e, 0x75);
    op_mem(e, 0x8b, false, RDX, RBX, (int32_t)cfg->guard_offset - ENV_BIAS);
    op_mem_index(e, 0x3b, false, RDX, RBX, RCX, table + 8);
    size_t miss1 = jcc8(e, 0x75);
    op_mem(e, 0x8b, false, RDX, RBX, (int32_t)cfg->epoch_offset - ENV_BIAS);
    op_mem_index(e, 0x3b, false, RDX, RBX, RCX, table + 12);
    size_t miss2 = jcc8(e, 0x75);
    op_mem_index(e, 0xff, false, 4, RBX, RCX, table + 16); /* jmp [rbx + rcx + table + 16] */
    land8(e, miss0);
    land8(e, miss1);
    land8(e, miss2);
}

static void emit_exit(struct emitter *e, uint32_t value)
{
    const struct native_config *cfg = &e->jit->cfg;
    ra_sync_globals(e);
    count_insns(e);
    emit_ras_push(e);
    if (value == IR_EXIT_NEXT && cfg->lookup_next) {
        size_t no_budget = spend_budget(e);
        size_t ras_lookup = e->info->ras_pop && ras_enabled(e) ? emit_ras_pop(e) : 0;
        uint32_t site = e->info->inline_cache ? new_site(e) : NO_SITE;
        size_t miss[3] = {0, 0, 0};
        if (site != NO_SITE) {
            /* pc, mode and epoch as when the slot was set: jump straight to its target */
            load_site(e, RSI, site);
            op_mem(e, 0x8b, true, RAX, RBX, (int32_t)cfg->pc_offset - ENV_BIAS);
            op_mem(e, 0x3b, true, RAX, RSI, SITE_PC_OFF);
            miss[0] = jcc8(e, 0x75);
            op_mem(e, 0x8b, false, RAX, RBX, (int32_t)cfg->guard_offset - ENV_BIAS);
            op_mem(e, 0x3b, false, RAX, RSI, SITE_GUARD_OFF);
            miss[1] = jcc8(e, 0x75);
            miss[2] = site_epoch_check(e, RSI);
            op_mem(e, 0xff, false, 4, RSI, SITE_TARGET_OFF); /* jmp [rsi + target] */
            for (int k = 0; k < 3; k++)
                land8(e, miss[k]);
            if (!e->overflow) /* the lookup */
                init_site(e->jit, site, (const void *)(e->rx_base + e->len));
        }
        if (ras_lookup && !e->overflow)
            patch32(e->buf + ras_lookup, (uint32_t)(e->len - (ras_lookup + 4)));
        if (e->info->inline_cache)
            emit_fast_jump_probe(e);
        if (site == NO_SITE)
            mov_imm(e, RSI, 0);
        else
            load_site(e, RSI, site);
        env_arg(e);
        call_abs(e, (const void *)cfg->lookup_next);
        op_reg(e, 0x85, true, RAX, RAX); /* test rax, rax */
        size_t none = jcc8(e, 0x74);
        op_reg(e, 0xff, false, 4, RAX); /* jmp rax */
        land32(e, no_budget);
        land8(e, none);
    }
    mov_imm(e, RAX, value);
    jump_to_rx(e, 0xe9, jit_rx(e->jit, e->jit->exit_off));
}

/* GOTO_TB: count, spend budget, check mode and epoch, then a patchable jump. Until patched
 * the jump goes to the unchained exit right after it. */
static void emit_goto_tb(struct emitter *e, unsigned slot)
{
    const struct native_config *cfg = &e->jit->cfg;
    struct native_code *c = e->code;
    uint32_t site = new_site(e);
    ra_sync_globals(e);
    count_insns(e);
    count_event(e, cfg->jumps_run_offset);
    emit_ras_push(e);
    size_t no_budget = spend_budget(e);
    op_mem(e, 0x81, false, 7, RBX, (int32_t)cfg->guard_offset - ENV_BIAS); /* cmp guard */
    imm32(e, e->info->guard);
    size_t wrong_mode = jcc8(e, 0x75);
    load_site(e, RDX, site == NO_SITE ? 0 : site);
    bool same_page = e->info->chain_same_page[slot];
    size_t wrong_epoch = same_page ? 0 : site_epoch_check(e, RDX);
    op_mem(e, 0xff, false, 4, RDX, SITE_TARGET_OFF); /* jmp [rdx + target] */
    land32(e, no_budget);
    land8(e, wrong_mode);
    if (!same_page)
        land8(e, wrong_epoch);
    /* Unchained: the slot's first target, and what leaving looks like. */
    if (site != NO_SITE && !e->overflow)
        init_site(e->jit, site, (const void *)(e->rx_base + e->len));
    c->chain[slot] = site;
    /* Tell the run loop which block left, so it can chain the jump. */
    mov_imm(e, RAX, (uint64_t)(uintptr_t)c);
    op_mem(e, 0x89, true, RAX, RBX, (int32_t)cfg->last_exit_offset - ENV_BIAS);
    mov_imm(e, RAX, INTERP_GOTO_TB(slot));
    jump_to_rx(e, 0xe9, jit_rx(e->jit, e->jit->exit_off));
}

/* LOOP_TB: the block jumps to its own start. While nothing asks the vCPU to leave, the chain
 * budget lasts and the mode is the block's, go straight back to the head label (no trip
 * through a chained jump's slot and the entry check); else leave as GOTO_TB `slot`. */
static void emit_loop_tb(struct emitter *e, uint32_t head, unsigned slot)
{
    const struct native_config *cfg = &e->jit->cfg;
    ra_loop_back(e);
    op_mem(e, 0x83, false, 7, RBX, (int32_t)cfg->exit_request_offset - ENV_BIAS);
    byte(e, 0); /* cmp dword [exit_request], 0 */
    size_t asked = jcc8(e, 0x75);
    size_t no_budget = spend_budget(e);
    op_mem(e, 0x81, false, 7, RBX, (int32_t)cfg->guard_offset - ENV_BIAS); /* cmp guard */
    imm32(e, e->info->guard);
    size_t wrong_mode = jcc8(e, 0x75);
    count_insns(e);
    count_event(e, cfg->jumps_run_offset);
    jump_to_label(e, 0xe9, head);
    land8(e, asked);
    land32(e, no_budget);
    land8(e, wrong_mode);
    emit_goto_tb(e, slot); /* stores the pinned globals */
    ra_leave_loop(e);
}

/* --- memory ----------------------------------------------------------------------------------- */

/* Load `size` bytes from [src] (or extend register RAX when src_is_rax) into RAX with the
 * memop's extension, as the interpreter does: extend to 64 bits, then i32 keeps the low 32. */
static void load_extend(struct emitter *e, unsigned size, bool sign, bool is64, bool src_is_rax,
                        unsigned src, unsigned dst)
{
    uint32_t opc;
    bool w = false;
    switch (size) {
    case 1:
        opc = sign ? 0x0fbe : 0x0fb6;
        w = sign && is64;
        break;
    case 2:
        opc = sign ? 0x0fbf : 0x0fb7;
        w = sign && is64;
        break;
    case 4:
        opc = (sign && is64) ? 0x63 : 0x8b; /* movsxd / mov r32 */
        w = sign && is64;
        break;
    default:
        opc = 0x8b;
        w = is64;
        break;
    }
    if (src_is_rax) {
        if (size == 8 && is64)
            mov_rr(e, true, dst, RAX);
        else
            op_reg(e, opc, w, dst, RAX);
    } else {
        op_mem(e, opc, w, dst, src, 0);
    }
}

/* RSI = address; on a TLB hit for `size` bytes at mmu_index falls through with RSI = host
 * address; on a miss jumps (jne rel32 at the returned offset) to the slow path, RSI still
 * the address. */
static size_t tlb_lookup(struct emitter *e, unsigned size, bool write)
{
    const struct native_config *cfg = &e->jit->cfg;
    uint32_t tlb = cfg->tlb_offset[e->info->mmu_index];
    uint32_t tag = write ? cfg->tlb_write_tag : cfg->tlb_read_tag;
    count_event(e, cfg->inline_mem_offset);
    mov_rr(e, true, RAX, RSI);
    uint32_t entry = cfg->tlb_entry_size;
    if (entry && !(entry & (entry - 1)) && entry <= 4096) {
        unsigned log2 = (unsigned)__builtin_ctz(entry);
        op_reg(e, 0xc1, true, 5, RAX); /* shr rax, 12 - log2(entry): index * entry_size */
        byte(e, (uint8_t)(12 - log2));
        op_reg(e, 0x81, false, 4, RAX); /* and eax, (entries-1) * entry_size */
        imm32(e, (cfg->tlb_entries - 1) << log2);
    } else {
        op_reg(e, 0xc1, true, 5, RAX); /* shr rax, 12 */
        byte(e, 12);
        op_reg(e, 0x81, false, 4, RAX); /* and eax, entries-1 */
        imm32(e, cfg->tlb_entries - 1);
        op_reg(e, 0x69, false, RAX, RAX); /* imul eax, eax, entry_size */
        imm32(e, entry);
    }
    /* RDI = page of the last byte: differs from the tag when the access crosses pages. */
    op_mem(e, 0x8d, true, RDI, RSI, (int32_t)(size - 1)); /* lea rdi, [rsi + size-1] */
    op_reg(e, 0x81, true, 4, RDI);                        /* and rdi, ~0xfff */
    imm32(e, 0xfffff000u);
    op_mem_index(e, 0x3b, true, RDI, RBX, RAX, (int32_t)(tlb + tag) - ENV_BIAS);
    opcode(e, 0x0f85); /* jne rel32, patched when the slow path is placed */
    size_t miss = e->len;
    imm32(e, 0);
    op_mem_index(e, 0x03, true, RSI, RBX, RAX, (int32_t)(tlb + cfg->tlb_addend) - ENV_BIAS);
    return miss;
}

static void call_abs(struct emitter *e, const void *fn)
{
    mov_imm(e, RAX, (uint64_t)(uintptr_t)fn);
    op_reg(e, 0xff, false, 2, RAX); /* call rax */
}

static void env_arg(struct emitter *e)
{
    op_mem(e, 0x8d, true, RDI, RBX, -ENV_BIAS); /* lea rdi, [rbx - bias] = env */
}

/* `array` with room for element `nr` (a growing array of the emitter, kept between blocks):
 * the same or a larger copy, or NULL when out of memory (then `array` is still valid). */
static void *room_for_one(void *array, uint32_t nr, uint32_t *cap, size_t size)
{
    if (nr < *cap)
        return array;
    uint32_t more = *cap ? 2 * *cap : 16;
    void *v = realloc(array, more * size);
    if (v)
        *cap = more;
    return v;
}

/* Remember a slow path whose fast path jumps from `jump_at` and continues at the current
 * offset (emit_slow_paths places it). False when out of memory. */
static bool defer_slow_path(struct emitter *e, size_t jump_at, const struct ir_op *op, bool store,
                            const struct ra_state *regs, unsigned dest)
{
    struct slow_path *grown = room_for_one(e->slow, e->nr_slow, &e->cap_slow, sizeof(*grown));
    if (!grown)
        return false;
    e->slow = grown;
    struct slow_path *sp = &e->slow[e->nr_slow++];
    sp->jump_at = (uint32_t)jump_at;
    sp->resume = (uint32_t)e->len;
    sp->memop = (uint8_t)op->imm;
    sp->store = store;
    sp->sign = (op->imm & IR_MEM_SIGN) != 0;
    sp->is64 = op->type == IR_I64;
    sp->dest = (uint8_t)dest;
    if (regs)
        sp->regs = *regs;
    else
        ra_snapshot(e, &sp->regs);
    return true;
}

/* jcc to a stub that stores what the label needs at home (the compare's flags are set),
 * then jumps to it; falling through keeps every register as it is. */
static bool branch_to_stub(struct emitter *e, uint8_t cc, uint32_t label)
{
    struct branch_stub *grown = room_for_one(e->stubs, e->nr_stubs, &e->cap_stubs, sizeof(*grown));
    if (!grown)
        return false;
    e->stubs = grown;
    struct branch_stub *st = &e->stubs[e->nr_stubs++];
    st->label = label;
    st->store = ra_edge_stores(e);
    ra_snapshot(e, &st->regs);
    opcode(e, 0x0f80u | cc);
    st->jump_at = (uint32_t)e->len;
    imm32(e, 0);
    return true;
}

static void emit_branch_stubs(struct emitter *e)
{
    for (uint32_t i = 0; i < e->nr_stubs && !e->overflow; i++) {
        const struct branch_stub *st = &e->stubs[i];
        patch32(e->buf + st->jump_at, (uint32_t)(e->len - (st->jump_at + 4)));
        ra_edge_save(e, &st->regs, st->store);
        jump_to_label(e, 0xe9, st->label);
    }
}

/* After the block: each slow path calls the MMU (RSI = address, RDX = value for stores) with
 * globals home (it may fault) and caller-saved registers kept, then resumes the fast path
 * (loads with the value in RAX, extended). */
static void emit_slow_paths(struct emitter *e)
{
    for (uint32_t i = 0; i < e->nr_slow && !e->overflow; i++) {
        const struct slow_path *sp = &e->slow[i];
        patch32(e->buf + sp->jump_at, (uint32_t)(e->len - (sp->jump_at + 4)));
        count_event(e, e->jit->cfg.inline_mem_slow_offset);
        mov_imm(e, sp->store ? RCX : RDX, sp->memop);
        ra_slow_save(e, &sp->regs);
        env_arg(e);
        call_abs(e, sp->store ? (const void *)e->jit->cfg.mem.store
                              : (const void *)e->jit->cfg.mem.load);
        ra_slow_restore(e, &sp->regs);
        if (!sp->store)
            load_extend(e, sp->memop & IR_MEM_SIZE_MASK, sp->sign, sp->is64, true, RAX, sp->dest);
        opcode(e, 0xe9);
        imm32(e, (uint32_t)(sp->resume - (e->len + 4)));
    }
}

static bool emit_qld(struct emitter *e, const struct ir_op *op)
{
    unsigned size = op->imm & IR_MEM_SIZE_MASK;
    bool sign = (op->imm & IR_MEM_SIGN) != 0, is64 = op->type == IR_I64;
    load_reused(e, RSI, 1);
    /* The value goes straight to its register, taken before the lookup (a spill for it runs
     * on both paths); the slow path saves the state from before that. */
    struct ra_state before;
    ra_snapshot(e, &before);
    unsigned rd = ra_def(e, op->args[0], IR_NO_TEMP);
    size_t miss = tlb_lookup(e, size, false);
    load_extend(e, size, sign, is64, false, RSI, rd);
    return defer_slow_path(e, miss, op, false, &before, rd);
}

static bool emit_qst(struct emitter *e, const struct ir_op *op)
{
    unsigned size = op->imm & IR_MEM_SIZE_MASK;
    bool is64 = op->type == IR_I64;
    load_reused(e, RDX, 0);
    /* The value as the interpreter passes it: the op's width, then the access size. */
    if (size == 1)
        op_reg(e, 0x0fb6, false, RDX, RDX); /* movzx edx, dl */
    else if (size == 2)
        op_reg(e, 0x0fb7, false, RDX, RDX);
    else if (size == 4 || !is64)
        mov_rr(e, false, RDX, RDX);
    load_reused(e, RSI, 1);
    size_t miss = tlb_lookup(e, size, true);
    switch (size) {
    case 1:
        op_mem(e, 0x88, false, RDX, RSI, 0); /* mov [rsi], dl */
        break;
    case 2:
        byte(e, 0x66);
        op_mem(e, 0x89, false, RDX, RSI, 0);
        break;
    case 4:
        op_mem(e, 0x89, false, RDX, RSI, 0);
        break;
    default:
        op_mem(e, 0x89, true, RDX, RSI, 0);
        break;
    }
    return defer_slow_path(e, miss, op, true, NULL, RAX);
}

/* --- ops -----------------------------------------------------------------------------------------
 */

static const uint8_t cond_cc[] = {
    [IR_COND_EQ] = 0x4,  [IR_COND_NE] = 0x5,  [IR_COND_LT] = 0xc,    [IR_COND_GE] = 0xd,
    [IR_COND_LE] = 0xe,  [IR_COND_GT] = 0xf,  [IR_COND_LTU] = 0x2,   [IR_COND_GEU] = 0x3,
    [IR_COND_LEU] = 0x6, [IR_COND_GTU] = 0x7, [IR_COND_TSTEQ] = 0x4, [IR_COND_TSTNE] = 0x5,
};

/* Where an input is for the op being emitted: a register (locked until the op ends), its
 * memory home, or an immediate. Resolved before the output gets its register, so the
 * output's allocation cannot evict it. */
struct opnd {
    enum { OPND_REG, OPND_MEM, OPND_IMM } kind;
    unsigned reg, base;
    int32_t disp;
    uint64_t imm;
};

static struct opnd resolve(struct emitter *e, ir_temp t)
{
    struct opnd o = {OPND_MEM, 0, 0, 0, 0};
    if (is_const(e, t)) {
        o.kind = OPND_IMM;
        o.imm = tinfo(e, t)->value;
    } else if (e->reg_of[t] != NO_REG) {
        o.kind = OPND_REG;
        o.reg = e->reg_of[t];
        e->locked |= (uint16_t)(1u << o.reg);
    } else if (ra_pending_value(e, t, &o.imm)) {
        o.kind = OPND_IMM;
    } else {
        ra_home(e, t, &o.base, &o.disp);
    }
    return o;
}

/* rd = operand (all 64 bits when w, else the low 32 zero-extended). */
static void mov_opnd(struct emitter *e, unsigned rd, const struct opnd *o, bool w)
{
    switch (o->kind) {
    case OPND_IMM:
        mov_imm(e, rd, w ? o->imm : (uint32_t)o->imm);
        break;
    case OPND_REG: /* the same register: ops of width !w ignore (and clear) the high half */
        if (o->reg != rd)
            mov_rr(e, w, rd, o->reg);
        break;
    case OPND_MEM:
        op_mem(e, 0x8b, w, rd, o->base, o->disp);
        break;
    }
}

/* `opc reg, operand` for an r/m-form opcode (0x03 add, 0x0b or, 0x23 and, 0x2b sub, 0x33 xor,
 * 0x3b cmp, 0x85 test, 0x0faf imul). Immediates go through RDX. */
static void rm_opnd(struct emitter *e, uint32_t opc, bool w, unsigned reg, const struct opnd *o)
{
    switch (o->kind) {
    case OPND_IMM:
        mov_imm(e, RDX, o->imm);
        op_reg(e, opc, w, reg, RDX);
        break;
    case OPND_REG:
        op_reg(e, opc, w, reg, o->reg);
        break;
    case OPND_MEM:
        op_mem(e, opc, w, reg, o->base, o->disp);
        break;
    }
}

/* ALU group-1 op `digit` (ADD 0, OR 1, AND 4, SUB 5, XOR 6, CMP 7) of reg with an operand. */
static void alu_opnd(struct emitter *e, unsigned digit, bool w, unsigned reg, const struct opnd *o)
{
    if (o->kind == OPND_IMM && (!w || fits_i32((int64_t)o->imm))) {
        uint32_t imm = (uint32_t)o->imm;
        if (fits_i8((int32_t)imm)) {
            op_reg(e, 0x83, w, digit, reg);
            byte(e, (uint8_t)imm);
        } else {
            op_reg(e, 0x81, w, digit, reg);
            imm32(e, imm);
        }
        return;
    }
    rm_opnd(e, 0x03 + 8 * digit, w, reg, o);
}

/* Flags for `a cond b`; returns the x86 condition code. Emits no register allocation (so it
 * can follow the end-of-block spills of a branch). */
static uint8_t compare(struct emitter *e, enum ir_cond cond, bool w, ir_temp a, ir_temp b)
{
    struct opnd x = resolve(e, a), y = resolve(e, b);
    unsigned ra = RCX;
    if (x.kind == OPND_REG)
        ra = x.reg;
    else
        mov_opnd(e, RCX, &x, true);
    if (cond == IR_COND_TSTEQ || cond == IR_COND_TSTNE) {
        if (y.kind == OPND_IMM && (!w || fits_i32((int64_t)y.imm))) {
            op_reg(e, 0xf7, w, 0, ra); /* test ra, imm32 */
            imm32(e, (uint32_t)y.imm);
        } else {
            rm_opnd(e, 0x85, w, ra, &y);
        }
    } else {
        alu_opnd(e, 7, w, ra, &y);
    }
    return cond_cc[cond];
}

/* d = x OP y for ADD/SUB/AND/OR/XOR/MUL, computed in d's register. */
static void emit_binop(struct emitter *e, const struct ir_op *op)
{
    static const uint8_t digit[] = {
        [IR_ADD] = 0, [IR_OR] = 1, [IR_AND] = 4, [IR_SUB] = 5, [IR_XOR] = 6};
    bool w = op->type == IR_I64, commutative = op->opc != IR_SUB;
    ir_temp d = op->args[0], xt = op->args[1], yt = op->args[2];
    if (commutative && is_const(e, xt) && !is_const(e, yt)) {
        ir_temp tmp = xt;
        xt = yt;
        yt = tmp;
    }
    struct opnd x = resolve(e, xt), y = resolve(e, yt);
    unsigned rd = ra_def(e, d, xt);
    bool x_in_rd = x.kind == OPND_REG && x.reg == rd;
    if (y.kind == OPND_REG && y.reg == rd && !x_in_rd) { /* d is y: y would be overwritten */
        if (commutative) {
            struct opnd tmp = x;
            x = y;
            y = tmp;
        } else {
            mov_opnd(e, RAX, &x, w);
            alu_opnd(e, digit[op->opc], w, RAX, &y);
            mov_rr(e, w, rd, RAX);
            return;
        }
    }
    mov_opnd(e, rd, &x, w);
    if (op->opc == IR_MUL) {
        if (y.kind == OPND_IMM && fits_i32((int64_t)y.imm)) {
            op_reg(e, 0x69, w, rd, rd); /* imul rd, rd, imm32 */
            imm32(e, (uint32_t)y.imm);
        } else {
            rm_opnd(e, 0x0faf, w, rd, &y);
        }
        return;
    }
    alu_opnd(e, digit[op->opc], w, rd, &y);
}

/* d = OP x for the one-operand forms: NOT/NEG (0xf7 /2, /3). */
static void emit_unop(struct emitter *e, const struct ir_op *op, unsigned digit)
{
    bool w = op->type == IR_I64;
    struct opnd x = resolve(e, op->args[1]);
    unsigned rd = ra_def(e, op->args[0], op->args[1]);
    mov_opnd(e, rd, &x, w);
    op_reg(e, 0xf7, w, digit, rd);
}

static void shift(struct emitter *e, unsigned digit, bool w, const struct ir_op *op)
{
    bool by_const = is_const(e, op->args[2]);
    if (!by_const)
        load(e, RCX, op->args[2]);
    struct opnd x = resolve(e, op->args[1]);
    unsigned rd = ra_def(e, op->args[0], op->args[1]);
    mov_opnd(e, rd, &x, w);
    if (by_const) {
        op_reg(e, 0xc1, w, digit, rd);
        byte(e, (uint8_t)(tinfo(e, op->args[2])->value & (w ? 63 : 31)));
    } else {
        op_reg(e, 0xd3, w, digit, rd);
    }
}

/* d = x sign/zero-extended from `size` bytes (EXT* ops), straight from x's register or home. */
static void emit_extend(struct emitter *e, const struct ir_op *op, unsigned size, bool sign)
{
    bool w = op->type == IR_I64;
    struct opnd x = resolve(e, op->args[1]);
    unsigned rd = ra_def(e, op->args[0], op->args[1]);
    if (x.kind == OPND_IMM) {
        uint64_t v = x.imm, bits = 8u * size;
        v &= (UINT64_MAX >> (64 - bits));
        if (sign && (v >> (bits - 1)) & 1)
            v |= ~(UINT64_MAX >> (64 - bits));
        mov_imm(e, rd, w ? v : (uint32_t)v);
        return;
    }
    uint32_t opc;
    bool wide = sign && w;
    if (size == 1)
        opc = sign ? 0x0fbe : 0x0fb6;
    else if (size == 2)
        opc = sign ? 0x0fbf : 0x0fb7;
    else
        opc = wide ? 0x63 : 0x8b; /* movsxd / mov r32 */
    if (x.kind == OPND_REG) {
        op_reg(e, opc, wide, rd, x.reg);
    } else {
        op_mem(e, opc, wide, rd, x.base, x.disp);
    }
}

static uint64_t popcount_helper(uint64_t v)
{
    return ir_popcount64(v);
}

/* FPENV: unless live, load the guest's MXCSR (its control bits, exceptions masked) into the
 * host's and mark it live (fpenv.h). RAX is scratch. */
static bool emit_fpenv(struct emitter *e, uint64_t imm)
{
    uint32_t mx = (uint32_t)imm, live = (uint32_t)(imm >> 32);
    if (!IR_HOST_FP || mx > INT32_MAX - 4 || live > INT32_MAX - 8)
        return false;
    int32_t mx_disp = (int32_t)mx - ENV_BIAS, live_disp = (int32_t)live - ENV_BIAS,
            load_disp = live_disp + (int32_t)offsetof(struct ir_fp_live, load);
    op_mem(e, 0x83, false, 7, RBX, live_disp); /* cmp dword [live], 0 */
    byte(e, 0);
    size_t skip = jcc8(e, 0x75);
    op_mem(e, 0x8b, false, RAX, RBX, mx_disp);
    op_reg(e, 0x83, false, 4, RAX); /* and eax, ~0x3f: no flags */
    byte(e, 0xc0);
    op_reg(e, 0x81, false, 1, RAX); /* or eax, 0x1f80: every exception masked */
    imm32(e, 0x1f80);
    op_mem(e, 0x89, false, RAX, RBX, load_disp);
    op_mem(e, 0x0fae, false, 2, RBX, load_disp); /* ldmxcsr */
    op_mem(e, 0xc7, false, 0, RBX, live_disp);   /* mov dword [live], 1 */
    imm32(e, 1);
    land8(e, skip);
    return true;
}

/* movq xmm, operand (66 REX.W 0F 6E). */
static void movq_to_xmm(struct emitter *e, unsigned xmm, const struct opnd *o)
{
    unsigned src = RAX;
    if (o->kind == OPND_IMM)
        mov_imm(e, RAX, o->imm);
    else if (o->kind == OPND_REG)
        src = o->reg;
    byte(e, 0x66);
    if (o->kind == OPND_MEM)
        op_mem(e, 0x0f6e, true, xmm, o->base, o->disp);
    else
        op_reg(e, 0x0f6e, true, xmm, src);
}

/* The operand in a GPR (RAX when it is not in one). */
static unsigned opnd_in_gpr(struct emitter *e, const struct opnd *o)
{
    if (o->kind == OPND_REG)
        return o->reg;
    mov_opnd(e, RAX, o, true);
    return RAX;
}

/* FPOP d = a, b: the guest's scalar SSE instruction itself (fpenv.h), on XMM0 and XMM1 (no
 * host XMM register holds anything across ops). */
static bool emit_fpop(struct emitter *e, const struct ir_op *op)
{
    if (!ir_fpop_valid(op->imm))
        return false;
    unsigned opc = op->imm & 0xff, prefix = (op->imm >> 8) & 0xff;
    bool w = (op->imm >> 16) & 1;
    struct opnd x = resolve(e, op->args[1]), y = resolve(e, op->args[2]);
    unsigned rd;
    switch (opc) {
    case 0x2a: { /* CVTSI2S*: xmm0 = a, then the integer from a GPR (loaded before the
                  * prefix: nothing may come between it and the opcode) */
        movq_to_xmm(e, 0, &x);
        unsigned src = opnd_in_gpr(e, &y);
        byte(e, (uint8_t)prefix);
        op_reg(e, 0x0f2a, w, 0, src);
        break;
    }
    case 0x2c:
    case 0x2d: /* CVT(T)S*2SI: straight into d's register */
        movq_to_xmm(e, 1, &y);
        rd = ra_def(e, op->args[0], IR_NO_TEMP);
        byte(e, (uint8_t)prefix);
        op_reg(e, 0x0f00 | opc, w, rd, 1); /* 32-bit forms zero-extend */
        return true;
    case 0x2e:
    case 0x2f: /* (U)COMIS*: ZF PF CF, which LAHF puts at their EFLAGS positions in AH */
        movq_to_xmm(e, 0, &x);
        movq_to_xmm(e, 1, &y);
        if (prefix)
            byte(e, (uint8_t)prefix);
        op_reg(e, 0x0f00 | opc, false, 0, 1);
        byte(e, 0x9f);                    /* lahf */
        op_reg(e, 0x0fb6, false, RAX, 4); /* movzx eax, ah (no REX) */
        op_reg(e, 0x83, false, 4, RAX);   /* and eax, 0x45 */
        byte(e, 0x45);
        rd = ra_def(e, op->args[0], IR_NO_TEMP);
        mov_rr(e, false, rd, RAX);
        return true;
    default: /* the arithmetic: xmm0 op= xmm1 */
        movq_to_xmm(e, 0, &x);
        movq_to_xmm(e, 1, &y);
        byte(e, (uint8_t)prefix);
        op_reg(e, 0x0f00 | opc, false, 0, 1);
        break;
    }
    rd = ra_def(e, op->args[0], IR_NO_TEMP);
    byte(e, 0x66);
    op_reg(e, 0x0f7e, true, 0, rd); /* movq rd, xmm0 */
    return true;
}

/* xmm = {lo, hi}; XMM2 is scratch. */
static void load_xmm_pair(struct emitter *e, unsigned xmm, ir_temp lo, ir_temp hi)
{
    struct opnd l = resolve(e, lo), h = resolve(e, hi);
    movq_to_xmm(e, xmm, &l); /* zeroes the high half */
    if (h.kind == OPND_IMM && h.imm == 0)
        return;
    movq_to_xmm(e, 2, &h);
    byte(e, 0x66);
    op_reg(e, 0x0f6c, false, xmm, 2); /* punpcklqdq xmm, xmm2 */
}

/* The pair of an IR_VOP: the op before this one computed the other (low) half of the same
 * instruction on the same operands, and its result is still whole in XMM0. */
static bool vop_pair_ready(const struct emitter *e, const struct ir_op *op)
{
    if (!(op->imm & IR_VOP_HALF) || e->vop_in_xmm0 != e->op_index || e->op_index == 0)
        return false;
    const struct ir_op *prev = &e->b->ops[e->op_index - 1];
    if (prev->opc != IR_VOP || prev->imm != (op->imm & ~(uint64_t)IR_VOP_HALF))
        return false;
    for (unsigned k = 1; k < 5; k++)
        if (prev->args[k] != op->args[k] || prev->args[0] == op->args[k])
            return false;
    return true;
}

/* VOP d = half of the guest's 128-bit SSE instruction (vecop.h) on XMM0 = a, XMM1 = b; the
 * second half of a pair takes the result the first left in XMM0. */
static bool emit_vop(struct emitter *e, const struct ir_op *op)
{
    if (!ir_vop_valid(op->imm))
        return false;
    uint32_t insn = (uint32_t)op->imm;
    if (!vop_pair_ready(e, op)) {
        load_xmm_pair(e, 0, op->args[1], op->args[2]);
        load_xmm_pair(e, 1, op->args[3], op->args[4]);
        unsigned prefix = (insn >> 8) & 0xff;
        enum ir_vop_kind kind = ir_vop_kind(insn);
        if (prefix)
            byte(e, (uint8_t)prefix);
        op_reg(e, 0x0f00 | (insn & 0xff), false, 0, 1);
        if (kind == IR_VOP_IMM8 || kind == IR_VOP_FPCMP)
            byte(e, (uint8_t)(insn >> 16));
    }
    e->vop_in_xmm0 = 0;
    if (insn & IR_VOP_HALF) {
        byte(e, 0x66);
        op_reg(e, 0x0f6d, false, 0, 0); /* punpckhqdq xmm0, xmm0 */
    } else {
        e->vop_in_xmm0 = e->op_index + 1;
    }
    unsigned rd = ra_def(e, op->args[0], IR_NO_TEMP);
    byte(e, 0x66);
    op_reg(e, 0x0f7e, true, 0, rd); /* movq rd, xmm0 */
    return true;
}

/* Emits one op; false if it is malformed. */
static bool emit_op(struct emitter *e, const struct ir_op *op)
{
    const struct ir_block *b = e->b;
    const ir_temp *a = op->args;
    bool w = op->type == IR_I64;
    if (op->cond > IR_COND_NEVER)
        return false;
    switch ((enum ir_opcode)op->opc) {
    case IR_NOP:
    case IR_INSN_START:
        return true;
    case IR_LABEL:
        if (op->imm >= b->nr_labels || e->label_pos[op->imm] != NO_POS)
            return false;
        if (!e->unreachable)
            ra_end_bb(e); /* falling into the label */
        if (e->loop_op && e->op_index == e->loop_head_op)
            ra_enter_loop(e); /* pinned globals loaded before the head */
        else
            ra_forget_all(e);
        e->label_pos[op->imm] = (uint32_t)e->len;
        return true;
    case IR_MOV:
    case IR_EXT32U: {
        struct opnd x = resolve(e, a[1]);
        unsigned rd = ra_def(e, a[0], a[1]);
        bool wide = w && op->opc == IR_MOV;
        if (!wide && x.kind == OPND_REG && x.reg == rd)
            mov_rr(e, false, rd, rd); /* the zero-extension is the point */
        else
            mov_opnd(e, rd, &x, wide);
        return true;
    }
    case IR_MOVI: {
        uint64_t v = w ? op->imm : (uint32_t)op->imm;
        if (tinfo(e, a[0])->kind == IR_TEMP_GLOBAL && v == (uint64_t)(int64_t)(int32_t)v) {
            /* A constant into the CPU state (RIP before an access that may fault, a lazy
             * flags op): no register, its home written only where it must be (ra_set_const). */
            ra_set_const(e, a[0], v);
            return true;
        }
        unsigned rd = ra_def(e, a[0], IR_NO_TEMP);
        mov_imm(e, rd, v);
        return true;
    }
    case IR_ADD:
    case IR_SUB:
    case IR_AND:
    case IR_OR:
    case IR_XOR:
    case IR_MUL:
        emit_binop(e, op);
        return true;
    case IR_ANDC:
        load(e, RCX, a[2]);
        op_reg(e, 0xf7, w, 2, RCX); /* not */
        load(e, RAX, a[1]);
        op_reg(e, 0x23, w, RAX, RCX);
        store(e, a[0], RAX);
        return true;
    case IR_SHL:
        shift(e, 4, w, op);
        return true;
    case IR_SHR:
        shift(e, 5, w, op);
        return true;
    case IR_SAR:
        shift(e, 7, w, op);
        return true;
    case IR_ROTL:
        shift(e, 0, w, op);
        return true;
    case IR_ROTR:
        shift(e, 1, w, op);
        return true;
    case IR_NEG:
    case IR_NOT:
        emit_unop(e, op, op->opc == IR_NEG ? 3 : 2);
        return true;
    case IR_EXT8S:
    case IR_EXT8U:
    case IR_EXT16S:
    case IR_EXT16U:
    case IR_EXT32S: {
        static const uint8_t size[] = {[IR_EXT8S] = 1,  [IR_EXT8U] = 1,  [IR_EXT16S] = 2,
                                       [IR_EXT16U] = 2, [IR_EXT32S] = 4, [IR_EXT32U] = 4};
        bool sign = op->opc == IR_EXT8S || op->opc == IR_EXT16S || op->opc == IR_EXT32S;
        emit_extend(e, op, size[op->opc], sign);
        return true;
    }
    case IR_DEPOSIT: {
        if (!ir_field_valid(op))
            return false;
        unsigned pos = op->imm & 0xff, len = (op->imm >> 8) & 0xff;
        uint64_t field = UINT64_MAX >> (64 - len), mask = field << pos;
        load(e, RCX, a[2]);
        if (len < 64) {
            mov_imm(e, RDX, field);
            op_reg(e, 0x23, true, RCX, RDX); /* and rcx, rdx */
        }
        if (pos) {
            op_reg(e, 0xc1, true, 4, RCX); /* shl rcx, pos */
            byte(e, (uint8_t)pos);
        }
        load(e, RAX, a[1]);
        mov_imm(e, RDX, ~mask);
        op_reg(e, 0x23, true, RAX, RDX);
        op_reg(e, 0x0b, w, RAX, RCX); /* or; the i32 form truncates */
        store(e, a[0], RAX);
        return true;
    }
    case IR_EXTRACT: {
        if (!ir_field_valid(op))
            return false;
        unsigned pos = op->imm & 0xff, len = (op->imm >> 8) & 0xff;
        load(e, RAX, a[1]);
        if (pos) {
            op_reg(e, 0xc1, true, 5, RAX); /* shr rax, pos */
            byte(e, (uint8_t)pos);
        }
        if (len == 32) {
            mov_rr(e, false, RAX, RAX);
        } else if (len < 64) {
            mov_imm(e, RDX, UINT64_MAX >> (64 - len));
            op_reg(e, 0x23, true, RAX, RDX);
        }
        store(e, a[0], RAX);
        return true;
    }
    case IR_SETCOND: {
        if (op->cond >= IR_COND_ALWAYS) {
            unsigned rd = ra_def(e, a[0], IR_NO_TEMP);
            mov_imm(e, rd, op->cond == IR_COND_ALWAYS);
            return true;
        }
        uint8_t cc = compare(e, (enum ir_cond)op->cond, w, a[1], a[2]);
        op_reg(e, 0x0f90 | cc, false, 0, RAX); /* setcc al */
        op_reg(e, 0x0fb6, false, RAX, RAX);    /* movzx eax, al */
        store(e, a[0], RAX);
        return true;
    }
    case IR_MOVCOND:
        if (op->cond >= IR_COND_ALWAYS) {
            load(e, RAX, op->cond == IR_COND_ALWAYS ? a[3] : a[4]);
            if (!w)
                mov_rr(e, false, RAX, RAX);
        } else {
            /* Values first: loading a zero constant is an XOR, which would clobber the flags. */
            load(e, RAX, a[4]);
            load(e, RSI, a[3]);
            uint8_t cc = compare(e, (enum ir_cond)op->cond, w, a[1], a[2]);
            op_reg(e, 0x0f40 | cc, w, RAX, RSI); /* cmovcc; the 32-bit form zero-extends */
        }
        store(e, a[0], RAX);
        return true;
    case IR_MULU2:
    case IR_MULS2:
        load(e, RAX, a[2]);
        load(e, RCX, a[3]);
        op_reg(e, 0xf7, w, op->opc == IR_MULU2 ? 4 : 5, RCX); /* mul/imul rcx: rdx:rax */
        store(e, a[0], RAX);
        store(e, a[1], RDX);
        return true;
    case IR_CLZ:
    case IR_CTZ: {
        load(e, RAX, a[1]);
        op_reg(e, op->opc == IR_CLZ ? 0x0fbd : 0x0fbc, w, RCX, RAX); /* bsr/bsf rcx, rax */
        size_t zero = jcc8(e, 0x74);
        if (op->opc == IR_CLZ) {
            op_reg(e, 0x83, false, 6, RCX); /* xor ecx, width-1: clz = width-1 - index */
            byte(e, w ? 63 : 31);
        }
        mov_rr(e, true, RAX, RCX);
        size_t done = jcc8(e, 0xeb);
        land8(e, zero);
        load(e, RAX, a[2]);
        if (!w)
            mov_rr(e, false, RAX, RAX);
        land8(e, done);
        store(e, a[0], RAX);
        return true;
    }
    case IR_CTPOP:
        ra_before_call(e, IR_HELPER_NO_SIDE_EFFECTS);
        load(e, RDI, a[1]);
        if (!w)
            mov_rr(e, false, RDI, RDI);
        call_abs(e, (const void *)popcount_helper);
        ra_after_call(e, IR_HELPER_NO_SIDE_EFFECTS);
        store(e, a[0], RAX);
        return true;
    case IR_BSWAP:
        load(e, RAX, a[1]);
        rex(e, w, 0, 0, RAX);
        byte(e, 0x0f);
        byte(e, 0xc8);
        store(e, a[0], RAX);
        return true;
    case IR_QLD:
        if (!ir_memop_valid(op->imm))
            return false;
        return emit_qld(e, op);
    case IR_QST:
        if (!ir_memop_valid(op->imm))
            return false;
        return emit_qst(e, op);
    case IR_LDENV:
        if (op->imm > INT32_MAX - 8)
            return false;
        ra_env_access(e, op->imm, false);
        op_mem(e, 0x8b, true, RAX, RBX, (int32_t)op->imm - ENV_BIAS);
        store(e, a[0], RAX);
        return true;
    case IR_STENV:
        if (op->imm > INT32_MAX - 8)
            return false;
        load(e, RAX, a[0]);
        ra_env_access(e, op->imm, true);
        op_mem(e, 0x89, true, RAX, RBX, (int32_t)op->imm - ENV_BIAS);
        return true;
    case IR_CALL: {
        if (!b->helpers || op->imm >= b->nr_helpers || !b->helpers[op->imm].fn)
            return false;
        /* R8 last: an argument may still be read from it before. */
        static const unsigned arg_reg[] = {RSI, RDX, RCX, R8};
        uint32_t flags = b->helpers[op->imm].flags;
        ra_before_call(e, flags);
        for (unsigned i = 0; i < 4; i++) {
            if (a[1 + i] == IR_NO_TEMP)
                mov_imm(e, arg_reg[i], 0);
            else
                load(e, arg_reg[i], a[1 + i]);
        }
        env_arg(e);
        if (op->imm < e->jit->cfg.helper_calls_max && e->jit->cfg.helper_calls_offset)
            count_event(e, e->jit->cfg.helper_calls_offset + 8 * (uint32_t)op->imm);
        call_abs(e, (const void *)b->helpers[op->imm].fn);
        ra_after_call(e, flags);
        if (a[0] != IR_NO_TEMP)
            store(e, a[0], RAX);
        return true;
    }
    case IR_BR:
        if (op->imm >= b->nr_labels)
            return false;
        ra_end_bb(e);
        jump_to_label(e, 0xe9, (uint32_t)op->imm);
        return true;
    case IR_BRCOND: {
        if (op->imm >= b->nr_labels)
            return false;
        if (op->cond == IR_COND_NEVER)
            return true;
        if (op->cond == IR_COND_ALWAYS) {
            ra_end_bb(e);
            jump_to_label(e, 0xe9, (uint32_t)op->imm);
            return true;
        }
        uint8_t cc = compare(e, (enum ir_cond)op->cond, w, a[0], a[1]);
        return branch_to_stub(e, cc, (uint32_t)op->imm);
    }
    case IR_GOTO_TB:
        if (op->imm >= IR_MAX_GOTO_SLOTS)
            return false;
        emit_goto_tb(e, (unsigned)op->imm);
        return true;
    case IR_EXIT_TB:
        if (op->imm > 0xff)
            return false;
        emit_exit(e, (uint32_t)op->imm);
        return true;
    case IR_LOOP_TB:
        if (IR_LOOP_SLOT(op->imm) >= IR_MAX_GOTO_SLOTS || IR_LOOP_LABEL(op->imm) >= b->nr_labels)
            return false;
        emit_loop_tb(e, IR_LOOP_LABEL(op->imm), IR_LOOP_SLOT(op->imm));
        return true;
    case IR_FPENV:
        return emit_fpenv(e, op->imm);
    case IR_FPOP:
        return emit_fpop(e, op);
    case IR_VOP:
        return emit_vop(e, op);
    case IR_NR_OPCODES: /* no default: a new IR opcode must be handled here (-Wswitch) */
        break;
    }
    return false;
}

/* SETCOND t = a cond b, then BRCOND t ==/!= 0 as the only use of t (a guest Jcc): one
 * compare and one conditional jump, with no 0/1 value in between. */
static bool fuse_setcond_brcond(struct emitter *e, uint32_t i)
{
    const struct ir_block *b = e->b;
    const struct ir_op *set = &b->ops[i], *br = &b->ops[i + 1];
    if (set->opc != IR_SETCOND || set->cond >= IR_COND_ALWAYS || !e->single_use[i] ||
        i + 1 >= b->nr_ops || br->opc != IR_BRCOND || br->args[0] != set->args[0] ||
        (br->cond != IR_COND_NE && br->cond != IR_COND_EQ) || br->args[1] >= b->nr_temps ||
        !is_const(e, br->args[1]) || tinfo(e, br->args[1])->value != 0 || br->imm >= b->nr_labels)
        return false;
    uint8_t cc =
        compare(e, (enum ir_cond)set->cond, set->type == IR_I64, set->args[1], set->args[2]);
    if (br->cond == IR_COND_EQ)
        cc ^= 1; /* branch when the condition is false: x86's inverse condition */
    if (!branch_to_stub(e, cc, (uint32_t)br->imm))
        e->overflow = true; /* out of memory: the block is not compiled */
    return true;
}

/* --- compile ---------------------------------------------------------------------------------- */

/* Which ops' results are locals read exactly once, by the very next op (a SETCOND feeding a
 * BRCOND is then one compare and jump). Needs forward-only branches; single-output ops. */
static void find_single_use(struct emitter *e, const uint8_t *use)
{
    const struct ir_block *b = e->b;
    bool label_seen[IR_MAX_LABELS], backward = false;
    uint32_t nr_labels = b->nr_labels < IR_MAX_LABELS ? b->nr_labels : IR_MAX_LABELS;
    memset(label_seen, 0, nr_labels * sizeof(bool));
    for (uint32_t i = 0; i < b->nr_ops; i++) {
        const struct ir_op *op = &b->ops[i];
        e->single_use[i] = false;
        if (op->opc == IR_LABEL && op->imm < nr_labels)
            label_seen[op->imm] = true;
        else if ((op->opc == IR_BR || op->opc == IR_BRCOND) &&
                 (op->imm >= nr_labels || label_seen[op->imm]))
            backward = true;
    }
    if (backward)
        return;
    uint32_t *reads = e->use_reads, *next_read = e->use_next;
    memset(reads, 0, b->nr_temps * sizeof(*reads));
    for (uint32_t i = b->nr_ops; i-- > 0;) {
        const struct ir_op *op = &b->ops[i];
        const struct ir_opcode_info *info = ir_opcode_info((enum ir_opcode)op->opc);
        ir_temp out = op->args[0];
        if (info->nr_out == 1 && out < b->nr_temps && b->temps[out].kind == IR_TEMP_LOCAL &&
            use[out] == IR_USE_DEFINED && reads[out] == 1 && next_read[out] == i + 1)
            e->single_use[i] = true;
        for (unsigned k = info->nr_out; k < info->nr_out + info->nr_in; k++) {
            ir_temp t = op->args[k];
            if (t < b->nr_temps) {
                reads[t]++;
                next_read[t] = i;
            }
        }
    }
}

static bool assign_frame(struct emitter *e)
{
    const struct ir_block *b = e->b;
    uint8_t use[IR_MAX_TEMPS];
    bool call_needs_zero;
    if (!ir_temp_uses(b, use, &call_needs_zero))
        return false;
    uint32_t slot = 0;
    for (uint32_t t = 0; t < b->nr_temps; t++) {
        const struct ir_temp_info *ti = &b->temps[t];
        if (ti->kind == IR_TEMP_GLOBAL && ti->env_offset > INT32_MAX - 8)
            return false;
        if (ti->kind != IR_TEMP_LOCAL || use[t] == IR_USE_NONE)
            continue;
        e->disp[t] = (int32_t)(8 * slot++) - FRAME_BIAS;
        if (use[t] == IR_USE_READ_UNDEFINED) { /* may be read before written: start at 0 */
            op_mem(e, 0xc7, true, 0, RBP, e->disp[t]);
            imm32(e, 0);
        }
    }
    find_single_use(e, use);
    return slot <= IR_MAX_TEMPS;
}

struct native_code *native_compile(struct native_jit *jit, const struct ir_block *block,
                                   const struct native_block_info *info, bool *full)
{
    *full = false;
    if (!block || block->nr_ops > IR_MAX_OPS || block->nr_temps > IR_MAX_TEMPS ||
        block->nr_labels > IR_MAX_LABELS || info->mmu_index > 1)
        return NULL;
    if (!jit->scratch)
        jit->scratch = calloc(1, sizeof(*jit->scratch));
    jit_populate_ahead(jit);
    struct native_code *code = calloc(1, sizeof(*code));
    struct emitter *e = jit->scratch;
    if (!code || !e) {
        free(code);
        return NULL;
    }
    for (unsigned k = 0; k < IR_MAX_GOTO_SLOTS; k++)
        code->chain[k] = NO_SITE;
    e->buf = jit->rw + jit->used;
    e->cap = jit->size - jit->used;
    e->len = 0;
    e->overflow = false;
    e->rx_base = (uintptr_t)(jit->rx + jit->used);
    e->jit = jit;
    e->b = block;
    e->info = info;
    e->nr_fixups = 0;
    e->nr_slow = 0; /* e->slow and e->stubs keep their capacity */
    e->nr_stubs = 0;
    e->code = code;
    for (uint32_t l = 0; l < IR_MAX_LABELS; l++)
        e->label_pos[l] = NO_POS;

    /* Entry: leave when asked to (7 bytes, so invalidation can overwrite it with a jmp). */
    const struct native_config *cfg = &jit->cfg;
    rex(e, false, 0, 0, RBX);
    byte(e, 0x83);
    byte(e, (uint8_t)(2 << 6 | 7 << 3 | RBX)); /* cmp dword [rbx + disp32], 0 */
    imm32(e, (uint32_t)((int32_t)cfg->exit_request_offset - ENV_BIAS));
    byte(e, 0);
    size_t go = jcc8(e, 0x74); /* je: no request */
    mov_imm(e, RAX, IR_EXIT_INTERRUPT);
    jump_to_rx(e, 0xe9, jit_rx(jit, jit->exit_off));
    land8(e, go);
    code->body = (uint32_t)e->len;

    e->op_index = 0;
    e->vop_in_xmm0 = 0;
    e->unreachable = false;
    bool ok = assign_frame(e);
    if (ok)
        ra_init(e);
    for (uint32_t i = 0; ok && i < block->nr_ops && !e->overflow; i++) {
        const struct ir_op *op = &block->ops[i];
        ra_begin_op(e, i);
        if (fuse_setcond_brcond(e, i)) {
            ra_end_op(e, i);
            i++; /* the BRCOND went with it */
            ra_begin_op(e, i);
        } else {
            ok = emit_op(e, op);
        }
        ra_end_op(e, i);
        /* Code after an unconditional jump or exit runs only through a label. */
        enum ir_opcode opc = (enum ir_opcode)block->ops[i].opc;
        if (opc == IR_BR || opc == IR_GOTO_TB || opc == IR_EXIT_TB || opc == IR_LOOP_TB ||
            (opc == IR_BRCOND && block->ops[i].cond == IR_COND_ALWAYS))
            e->unreachable = true;
        else if (opc != IR_NOP && opc != IR_INSN_START)
            e->unreachable = false;
    }
    if (ok) {
        emit_exit(e, IR_EXIT_NEXT); /* falling off the end, or a label after the last op */
        emit_slow_paths(e);
        emit_branch_stubs(e);
    }
    for (uint32_t i = 0; ok && !e->overflow && i < e->nr_fixups; i++) {
        uint32_t target = e->label_pos[e->fixups[i].label];
        if (target == NO_POS) {
            ok = false; /* branch to a label that is never placed */
            break;
        }
        patch32(e->buf + e->fixups[i].at, target - (e->fixups[i].at + 4));
    }
    if (!ok || e->overflow) {
        *full = ok && e->overflow;
        free(code);
        return NULL;
    }
    code->entry = jit->rx + jit->used;
    code->size = (uint32_t)e->len;
    jit->used = (jit->used + e->len + 15) & ~(size_t)15;
    if (jit->used > jit->size)
        jit->used = jit->size;
    return code;
}
