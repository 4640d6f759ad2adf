/* Debugging on the translator (debug.c): the debugger's breakpoints, watchpoints and single
 * step (accel_ops.set_debug, for the gdbstub), and the guest's own hardware breakpoints in
 * DR0-DR3/DR7.
 *
 * Execution breakpoints: blocks end before every breakpoint address of any vCPU (the VM's
 * break set, which the front end asks about while translating) and are never chained into
 * one starting there, so the run loop sees each such address before running it. Changing the
 * set drops every translated block.
 * Data breakpoints: pages with a watched range are kept out of the TLB's read and write tags
 * (every access there takes the slow path, like QEMU's TLB_WATCHPOINT); an access that hits
 * leaves the block and the instruction runs again alone, its hits recorded, so the stop (or
 * the guest's #DB trap) comes exactly after it. Nothing is looked at while nothing is armed. */
#ifndef QUOKKA_ACCEL_TCG_DEBUG_H
#define QUOKKA_ACCEL_TCG_DEBUG_H

#include "accel/accel.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct accel_vm;
struct accel_vcpu;
struct tcg_cpu;

#define TCG_DEBUG_MAX_BREAKS 128

/* Per VM: the union of every vCPU's execution breakpoints. */
struct tcg_vm_debug {
    atomic_uint nr_breaks; /* 0: no block ends early (read first, without a lock) */
    bool every_insn;       /* more than fit: every instruction is a block of its own */
    uint64_t breaks[TCG_DEBUG_MAX_BREAKS];
};

/* Per vCPU. */
struct tcg_vcpu_debug {
    struct accel_debug gdb; /* the debugger's settings */
    bool exec;              /* a gdb breakpoint or an enabled DR execution breakpoint */
    bool watch;             /* a gdb watchpoint or an enabled DR data breakpoint */
    bool restart;           /* a watched access left the block: run it again, recording */
    uint64_t restart_pc;
    bool recording;  /* the instruction runs alone: its watched accesses are recorded */
    uint8_t dr_hits; /* DR6.B0-B3 of the recorded accesses */
    bool gdb_hit;
    struct accel_watchpoint gdb_hit_watch;
};

enum tcg_debug_action {
    TCG_DEBUG_NONE,
    TCG_DEBUG_STOP,  /* return to the machine: the exit is filled in (ACCEL_EXIT_DEBUG) */
    TCG_DEBUG_RAISE, /* deliver the #DB set up in cpu->exception */
};

/* Front end: end the block before the instruction at linear address `linear`. */
bool tcg_debug_break_at(const struct accel_vm *vm, uint64_t linear);
/* Run loop: may a chained jump (or an exit's inline cache) lead to a block at pc? */
bool tcg_debug_may_chain(const struct accel_vm *vm, uint64_t pc);
/* Run loop, before the block at linear pc (before its code address is translated). */
enum tcg_debug_action tcg_debug_before_insn(struct accel_vcpu *v, uint64_t pc,
                                            struct accel_exit *exit);
/* Run loop: true when the instruction at pc must run alone with its accesses recorded. */
bool tcg_debug_take_restart(struct accel_vcpu *v, uint64_t pc);
/* Run loop, after a block ran to its end; gdb_step: it was the debugger's single step. */
enum tcg_debug_action tcg_debug_after_block(struct accel_vcpu *v, bool gdb_step,
                                            struct accel_exit *exit);
/* Run loop, back from a block by an exception or exit: nothing recorded stands. */
void tcg_debug_after_fault(struct accel_vcpu *v);
/* Software MMU slow path: a data access by the running instruction. */
void tcg_debug_watch_access(struct tcg_cpu *cpu, uint64_t vaddr, unsigned size, bool write);
/* Software MMU: the 4 KiB page at vpage holds a watched byte (keep it out of the TLB). */
bool tcg_debug_page_watched(struct tcg_cpu *cpu, uint64_t vpage);
/* After a reset of the CPU (DR7 cleared). */
void tcg_debug_reset(struct tcg_cpu *cpu);
/* DR0-DR3 or DR7 changed (MOV DR): recompute what is armed. On the vCPU's thread. */
void tcg_debug_dr_changed(struct tcg_cpu *cpu);

/* accel_ops */
int tcg_set_debug(struct accel_vcpu *v, const struct accel_debug *dbg, char *err, size_t errlen);
int tcg_translate_gva(struct accel_vcpu *v, uint64_t gva, uint64_t *gpa);

#endif
