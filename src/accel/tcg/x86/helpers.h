/* C helpers called from translated code for instructions too complex for inline IR.
 * All take env (struct tcg_cpu *) first. The table order is the IR CALL index. */
#ifndef QUOKKA_ACCEL_TCG_X86_HELPERS_H
#define QUOKKA_ACCEL_TCG_X86_HELPERS_H

#include "accel/tcg/ir/ir.h"
#include "accel/tcg/x86/atomic.h"

#define HF_PURE IR_HELPER_NO_SIDE_EFFECTS
#define HF_RW (IR_HELPER_READS_GLOBALS | IR_HELPER_WRITES_GLOBALS)
#define HF_RWX (HF_RW | IR_HELPER_MAY_EXIT)

/* X(name, flags) */
#define X86_HELPERS(X)                                                                             \
    X(compute_eflags, HF_PURE)              /* (cc_op, dst, src, src2) -> arithmetic flags */      \
    X(compute_cf, HF_PURE)                  /* (cc_op, dst, src, src2) -> CF */                    \
    X(cond, HF_PURE)                        /* (flags, cc) -> 0/1 */                               \
    X(read_eflags, IR_HELPER_READS_GLOBALS) /* -> full RFLAGS */                                   \
    X(write_eflags, HF_RWX) /* (value, opsize bytes): POPF/IRET rules for this CPL/IOPL */         \
    X(raise, HF_RWX)        /* (vector, error code, has error code): never returns */              \
    X(soft_int, HF_RWX)     /* (vector, next rip): INT n / INT3 / INTO */                          \
    X(icebp, HF_RWX)        /* (next rip): INT1, a #DB trap */                                     \
    X(in, HF_RWX)           /* (port, size) -> value */                                            \
    X(out, HF_RWX)          /* (port, value, size) */                                              \
    X(string, HF_RWX)       /* (op | size << 8 | rep << 12 | addr size << 16, next rip) */         \
    X(hlt, HF_RWX)          /* (next rip) */                                                       \
    X(cli, HF_RWX)                                                                                 \
    X(sti, HF_RWX)                                                                                 \
    X(cpuid, HF_RW)                                                                                \
    X(rdtsc, HF_RWX) /* (with_aux) */                                                              \
    X(rdmsr, HF_RWX)                                                                               \
    X(wrmsr, HF_RWX)                                                                               \
    X(mul, HF_RWX)             /* (value, size bytes, signed): one-operand MUL/IMUL */             \
    X(div, HF_RWX)             /* (value, size bytes, signed): DIV/IDIV, #DE */                    \
    X(shift, HF_RW)            /* (value, count, kind | size << 8, extra) -> result: rotates,      \
                                  RCL/RCR, SHLD/SHRD (extra = other operand) */                    \
    X(bitscan, HF_RW)          /* (src, old dest, kind | size << 8) -> result (BSF BSR TZCNT LZCNT \
                                  POPCNT) */                                                       \
    X(bittest, HF_RW)          /* (value, bit, kind | size << 8) -> new value (BT BTS BTR BTC) */  \
    X(load_seg, HF_RWX)        /* (seg, selector) */                                               \
    X(far_jump, HF_RWX)        /* (selector, offset, next rip, is_call | opsize << 8) */           \
    X(far_ret, HF_RWX)         /* (opsize bytes, pop extra) */                                     \
    X(iret, HF_RWX)            /* (opsize bytes) */                                                \
    X(lgdt_lidt, HF_RWX)       /* (linear addr, which: 0 gdt 1 idt) */                             \
    X(sgdt_sidt, HF_RWX)       /* (linear addr, which) */                                          \
    X(mov_to_cr, HF_RWX)       /* (cr, value) */                                                   \
    X(mov_from_cr, HF_RWX)     /* (cr) -> value */                                                 \
    X(invlpg, HF_RWX)          /* (linear addr) */                                                 \
    X(lmsw, HF_RWX)            /* (value) */                                                       \
    X(cmpxchg8b, HF_RWX)       /* (linear addr, is 16b | atomic << 1) */                           \
    X(enter, HF_RWX)           /* (frame size, level, opsize bytes) */                             \
    X(pusha, HF_RWX)           /* (opsize bytes) */                                                \
    X(popa, HF_RWX)            /* (opsize bytes) */                                                \
    X(sysenter_family, HF_RWX) /* (kind, next rip): SYSCALL/SYSRET/SYSENTER/SYSEXIT/SWAPGS */      \
    X(ltr_lldt, HF_RWX)        /* (selector, which): 0 LLDT 1 LTR */                               \
    X(str_sldt, HF_RWX)        /* (which) -> selector */                                           \
    X(verr_verw, HF_RWX)       /* (selector, write): ZF */                                         \
    X(fpu_sse, HF_RWX)         /* (x86_fpu_desc(), linear addr): x87, SSE, FXSAVE.. (fpu.c) */     \
    X(mov_dr, HF_RWX)          /* (dr, value, is_write) -> value: MOV to/from DR0-7 */             \
    X(mmx, HF_RWX)             /* (x86_fpu_desc(), linear addr): MMX register forms (mmx.c) */     \
    X(sse_fp, IR_HELPER_READS_GLOBALS | IR_HELPER_MAY_EXIT)     /* (opc | mp << 8 | reg << 10,     \
                                      source low, high): SSE arithmetic, operand loaded (sse.c) */ \
    X(atomic_rmw, IR_HELPER_READS_GLOBALS | IR_HELPER_MAY_EXIT) /* (addr, v, op | size << 8) ->    \
                                  old value: a LOCK'd read-modify-write (atomic.c) */              \
    X(atomic_cmpxchg, IR_HELPER_READS_GLOBALS | IR_HELPER_MAY_EXIT) /* (addr, expected, new,       \
                                  size) -> old value: LOCK CMPXCHG (atomic.c) */                   \
    X(fence, 0) /* a full host memory barrier: MFENCE, WBINVD (atomic.c) */                        \
    X(pause, 0) /* PAUSE with more vCPUs than host CPUs: yield the host CPU (atomic.c) */

enum x86_helper_id {
#define X86_HELPER_ENUM(name, flags) HELPER_##name,
    X86_HELPERS(X86_HELPER_ENUM)
#undef X86_HELPER_ENUM
        X86_NR_HELPERS
};

extern const struct ir_helper x86_helper_table[X86_NR_HELPERS];

/* mmx.c: the instructions on MM registers that need no CR4.OSFXSR (x86_mmx_form picks them
 * for HELPER_mmx), and the MMX register file (MMi = the mantissa of x87 R(i)) that sse.c's
 * CVTPI2PS/MOVQ2DQ... share. sse.c: the 64-bit form of an SSE2 integer op. */
struct tcg_cpu;
uint64_t h_mmx(void *env, uint64_t desc, uint64_t addr, uint64_t c, uint64_t d);
bool x86_mmx_form(uint64_t desc);
uint64_t mmx_get(const struct tcg_cpu *cpu, unsigned i);
void mmx_set(struct tcg_cpu *cpu, unsigned i, uint64_t v);
void mmx_check_pending(struct tcg_cpu *cpu); /* #MF for a pending unmasked x87 exception */
void mmx_enter(struct tcg_cpu *cpu);         /* TOP = 0, every tag valid */
bool sse_int_op64(unsigned opc, uint64_t *a, uint64_t b);

/* Shift helper kinds */
enum { SHIFT_ROL, SHIFT_ROR, SHIFT_RCL, SHIFT_RCR, SHIFT_SHLD, SHIFT_SHRD };
/* Bit scan kinds */
enum { SCAN_BSF, SCAN_BSR, SCAN_TZCNT, SCAN_LZCNT, SCAN_POPCNT };
/* Bit test kinds */
enum { BITTEST_BT, BITTEST_BTS, BITTEST_BTR, BITTEST_BTC };
/* String op kinds */
enum { STR_MOVS, STR_CMPS, STR_STOS, STR_LODS, STR_SCAS, STR_INS, STR_OUTS };
enum { REP_NONE, REP_REP, REP_REPNE };
/* sysenter_family kinds */
enum { SYS_SYSCALL, SYS_SYSRET, SYS_SYSENTER, SYS_SYSEXIT, SYS_SWAPGS };

#endif
