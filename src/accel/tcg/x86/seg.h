/* Segmentation, RFLAGS and interrupt delivery for the translator (see seg.c for limits). */
#ifndef QUOKKA_ACCEL_TCG_X86_SEG_H
#define QUOKKA_ACCEL_TCG_X86_SEG_H

#include "accel/tcg/cpu.h"

#include <stdbool.h>
#include <stdint.h>

uint64_t tcg_read_eflags(const struct tcg_cpu *cpu);
void tcg_write_eflags(struct tcg_cpu *cpu, uint64_t value, uint64_t mask);
uint64_t tcg_eflags_write_mask(const struct tcg_cpu *cpu, unsigned opsize_bytes);

void tcg_update_hflags(struct tcg_cpu *cpu);
void tcg_set_seg(struct tcg_cpu *cpu, unsigned seg, uint16_t selector, uint64_t base,
                 uint32_t limit, uint16_t attr);
void tcg_load_seg(struct tcg_cpu *cpu, unsigned seg, uint16_t selector);
void tcg_load_system_seg(struct tcg_cpu *cpu, bool is_tr, uint16_t selector);
void tcg_verify_seg(struct tcg_cpu *cpu, uint16_t selector, bool write); /* VERR / VERW */

/* What is being delivered: an exception the CPU raised, a software interrupt (INT n,
 * INT3, INTO: gate DPL checked) or an external interrupt (PIC, LAPIC). */
enum tcg_event { TCG_EVENT_EXCEPTION, TCG_EVENT_SOFTWARE, TCG_EVENT_EXTERNAL };

/* Deliver an interrupt or exception through the IDT (or IVT in real mode); next_rip is the
 * return address pushed (the faulting instruction for faults). Atomic: when a fault stops
 * the delivery (the caller then delivers that one), the CPU state is unchanged. */
void tcg_deliver_interrupt(struct tcg_cpu *cpu, int vector, enum tcg_event kind, bool has_error,
                           uint32_t error_code, uint64_t next_rip);
void tcg_far_jump(struct tcg_cpu *cpu, uint16_t selector, uint64_t offset, uint64_t next_rip,
                  bool is_call, unsigned opsize);
void tcg_far_ret(struct tcg_cpu *cpu, unsigned opsize, uint64_t extra_pop);
void tcg_iret(struct tcg_cpu *cpu, unsigned opsize);

#endif
