/* x86 -> IR for one translation block. */
#ifndef QUOKKA_ACCEL_TCG_X86_TRANSLATE_H
#define QUOKKA_ACCEL_TCG_X86_TRANSLATE_H

#include "accel/tcg/cpu.h"
#include "accel/tcg/ir/ir.h"

struct x86_translate_info {
    uint32_t guest_size; /* bytes of guest code covered */
    uint32_t nr_insns;
    uint64_t last_byte; /* linear address of the block's last code byte */
    /* How the block ends, for a backend's return-address stack (64-bit code only): a near
     * CALL whose return address is call_return, or a near RET. */
    bool ends_with_call, ends_with_ret;
    uint64_t call_return;
    /* GOTO_TB slot i is a plain jump to the block's first page: a chain made there stays
     * right whatever the vCPU does to its mappings after the block was entered (the block's
     * page was mapped so when it was), as QEMU chains only within a page. */
    bool chain_same_page[IR_MAX_GOTO_SLOTS];
    /* The block is only right for this lazy-flags op at entry (it checks, and leaves for
     * the run loop otherwise); -1: for any. */
    int entry_cc_op;
};

void x86_translate_init(struct ir_block *block);
/* Translate starting at cs_base + rip in the mode given by hflags, at most max_insns
 * instructions (0: the usual limit). Code fetch faults on the first instruction raise the
 * guest exception (longjmp out, see tcg_internal.h). Returns -1 only on IR overflow (a bug:
 * the driver reserves room per instruction). */
int x86_translate_block(struct tcg_cpu *cpu, struct ir_block *block, uint64_t cs_base, uint64_t rip,
                        uint32_t hflags, unsigned max_insns, struct x86_translate_info *info);

/* A data access of the instruction at RIP (64-bit code) reached the non-canonical vaddr: true
 * when that access goes through SS (an RSP/RBP-based or SS-overridden operand, or the stack
 * of PUSH/POP/CALL/RET/ENTER/LEAVE/PUSHF/POPF/IRET), which raises #SS(0) instead of #GP(0). */
bool x86_noncanonical_is_stack(struct tcg_cpu *cpu, uint64_t vaddr);

#endif
