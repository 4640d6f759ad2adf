/* The translator's vCPU: architectural x86-64 state as the generated code sees it.
 *
 * Fields the IR touches directly ("globals") come first and are 64-bit; the arithmetic
 * flags are lazy: instead of RFLAGS.{CF,PF,AF,ZF,SF,OF} the CPU keeps the last flag-setting
 * operation (cc_op) and its operands (cc_dst, cc_src, cc_src2) and computes a flag only when
 * something reads it (see flags.h). */
#ifndef QUOKKA_ACCEL_TCG_CPU_H
#define QUOKKA_ACCEL_TCG_CPU_H

#include "accel/tcg/fpu_state.h"
#include "accel/tcg/ir/fpenv.h"
#include "accel/tcg/stats.h"
#include "vm/cpu_state.h"

#include <setjmp.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* Lazy flag operations. The size suffix B/W/L/Q is added to the base: base + log2(bytes). */
enum cc_op {
    CC_OP_EFLAGS = 0, /* all six flags are materialised in cc_src (RFLAGS bit positions) */
    CC_OP_ADD = 4,    /* dst = result, src = second operand */
    CC_OP_ADC = 8,    /* dst = result, src = second operand, src2 = carry in */
    CC_OP_SUB = 12,   /* dst = result, src = second operand (first = dst + src) */
    CC_OP_SBB = 16,   /* dst = result, src = second operand, src2 = borrow in */
    CC_OP_LOGIC = 20, /* dst = result; CF = OF = 0, AF = 0 */
    CC_OP_INC = 24,   /* dst = result, src = CF before (INC keeps CF) */
    CC_OP_DEC = 28,   /* dst = result, src = CF before */
    CC_OP_SHL = 32,   /* dst = result, src = operand shifted by count - 1 */
    CC_OP_SAR = 36,   /* dst = result, src = operand shifted right by count - 1 (SHR and SAR) */
    CC_OP_MUL = 40,   /* dst = low result, src = nonzero when CF = OF = 1 */
    CC_OP_NEG = 44,   /* dst = result, src = operand (CF = src != 0) */
    CC_OP_BLSx = 48,  /* reserved */
    CC_OP_NR = 52,
};
/* ROL/ROR (32/64-bit), BT/BTS/BTR/BTC: CF (and OF) set, the other flags those of the op
 * before. The cc_op value is CC_OP_ROT | that op | CF << 16 | OF << 17, with
 * CC_OP_ROT_KEEP_OF when OF too is the op before's (dst/src/src2 stay the op before's). */
#define CC_OP_ROT 0x100u
#define CC_OP_ROT_CF_SHIFT 16
#define CC_OP_ROT_OF_SHIFT 17
#define CC_OP_ROT_KEEP_OF (1u << 18)

#define CC_SIZE_B 0
#define CC_SIZE_W 1
#define CC_SIZE_L 2
#define CC_SIZE_Q 3

#define X86_CF (1u << 0)
#define X86_PF (1u << 2)
#define X86_AF (1u << 4)
#define X86_ZF (1u << 6)
#define X86_SF (1u << 7)
#define X86_TF (1u << 8)
#define X86_DR6_BS (1u << 14) /* DR6: single-step trap */
#define X86_IF (1u << 9)
#define X86_DF (1u << 10)
#define X86_OF (1u << 11)
#define X86_IOPL (3u << 12)
#define X86_NT (1u << 14)
#define X86_RF (1u << 16)
#define X86_VM (1u << 17)
#define X86_AC (1u << 18)
#define X86_VIF (1u << 19)
#define X86_VIP (1u << 20)
#define X86_ID (1u << 21)
#define X86_ARITH_FLAGS (X86_CF | X86_PF | X86_AF | X86_ZF | X86_SF | X86_OF)

/* Exceptions */
enum x86_exception {
    X86_EXC_DE = 0,
    X86_EXC_DB = 1,
    X86_EXC_NMI = 2,
    X86_EXC_BP = 3,
    X86_EXC_OF = 4,
    X86_EXC_BR = 5,
    X86_EXC_UD = 6,
    X86_EXC_NM = 7,
    X86_EXC_DF = 8,
    X86_EXC_TS = 10,
    X86_EXC_NP = 11,
    X86_EXC_SS = 12,
    X86_EXC_GP = 13,
    X86_EXC_PF = 14,
    X86_EXC_MF = 16,
    X86_EXC_AC = 17,
    X86_EXC_MC = 18,
    X86_EXC_XM = 19,
};

/* hflags: the parts of CPU mode that change how code is translated; part of the TB key. */
#define HF_CPL_MASK 3u
#define HF_CS32 (1u << 2)   /* CS.D: 32-bit default operand/address size */
#define HF_SS32 (1u << 3)   /* SS.B: 32-bit stack */
#define HF_CS64 (1u << 4)   /* long mode with CS.L: 64-bit code */
#define HF_LMA (1u << 5)    /* long mode active */
#define HF_PE (1u << 6)     /* protected mode */
#define HF_PG (1u << 7)     /* paging */
#define HF_ADDSEG (1u << 8) /* some of DS/ES/SS has a nonzero base: add segment bases */
#define HF_SSE (1u << 9)    /* SSE usable (CR4.OSFXSR, !CR0.EM, !CR0.TS): inline SSE moves */
/* Every MXCSR exception masked and the host can run scalar SSE arithmetic inline (host_fp):
 * IR_FPOP instead of a helper. LDMXCSR and FXRSTOR end their block (the bit may change). */
#define HF_MXFAST (1u << 10)

/* Software TLB: direct-mapped, virtual page -> host pointer for RAM pages. */
#define TLB_BITS 10
#define TLB_SIZE (1u << TLB_BITS)
_Static_assert(TLB_BITS <= 15, "tlb_nonglobal packs user << 15 | index");
#define TLB_INVALID (~0ULL)
#define TLB_NONGLOBAL_LOG 64
#define TLB_CHAIN_PAGE_WORDS 1024 /* a 64 Ki-bit page hash */

struct tlb_entry {
    uint64_t read_tag;  /* page-aligned virtual address valid for reads, or TLB_INVALID */
    uint64_t write_tag; /* same for writes (not set for pages holding translated code) */
    uint64_t exec_tag;
    uintptr_t addend;   /* host = vaddr + addend */
    uint64_t paddr;     /* physical page, for code invalidation and MMIO */
    bool global;        /* a global page (CR4.PGE): kept across CR3 writes */
    uint8_t page_shift; /* of the guest page it is a slice of: 12, or 21/22/30 when large */
    uint8_t pad[22];    /* 64 bytes, a power of two: generated code indexes with a shift */
};
_Static_assert(sizeof(struct tlb_entry) == 64, "TLB entry size used by generated code");

struct tcg_segment {
    uint64_t base;
    uint32_t limit;
    uint16_t selector;
    uint16_t
        attr; /* type | s << 4 | dpl << 5 | p << 7 | avl << 12 | l << 13 | db << 14 | g << 15 */
};

#define SEG_ATTR_S (1u << 4)
#define SEG_ATTR_P (1u << 7)
#define SEG_ATTR_L (1u << 13)
#define SEG_ATTR_DB (1u << 14)
#define SEG_ATTR_G (1u << 15)
#define SEG_ATTR_DPL(a) (((a) >> 5) & 3u)

struct tcg_vcpu;

#define TCG_RAS_ENTRIES 32
#define TCG_FAST_JUMPS 1024 /* a power of two */

struct tcg_cpu {
    /* --- IR globals (64-bit each, order matches tcg_globals[]) --- */
    uint64_t gpr[NR_GPRS];
    uint64_t rip;
    uint64_t cc_op;
    uint64_t cc_dst;
    uint64_t cc_src;
    uint64_t cc_src2;
    uint64_t eflags; /* non-arithmetic RFLAGS bits (bit 1 set); arithmetic ones are lazy */
    uint64_t seg_base[NR_SEGS]; /* copies of seg[].base the generated code adds */

    /* --- system state, through helpers --- */
    struct tcg_segment seg[NR_SEGS];
    struct vcpu_dtable gdt, idt;
    uint64_t cr0, cr2, cr3, cr4; /* CR8 is the local APIC's TPR (lapic.h) */
    uint64_t dr[8];              /* debug registers: stored, breakpoints not modelled */
    uint64_t efer;
    uint64_t star, lstar, cstar, sfmask, kernel_gs_base, tsc_aux;
    uint64_t sysenter_cs, sysenter_esp, sysenter_eip;
    uint64_t pat, misc_enable;
    uint64_t spec_ctrl;  /* IA32_SPEC_CTRL: stored (a software CPU has no predictors) */
    uint64_t mcg_status; /* IA32_MCG_STATUS (RIPV, EIPV, MCIP, LMCE_S) */
    int64_t tsc_offset;
    uint32_t hflags;
    /* From the CPU model (tcg_set_cpuid): paging's reserved bits depend on these. */
    uint8_t phys_bits; /* MAXPHYADDR; 0 until a model is set (no address-bit check) */
    bool page_1g;      /* 1 GiB pages (CPUID 8000_0001h EDX[26]) */
    /* The instruction at rip could not be done with a host atomic (it crosses a page or a
     * cache line, or is not in RAM): run it once more, alone, everyone else stopped. */
    bool step_atomic;
    struct tcg_fpu fpu;       /* x87, SSE (fpu.c, sse.c) */
    union xmm_reg sse_result; /* HELPER_sse_fp's result, copied into the XMM register by IR */

    /* --- exceptions and interrupts --- */
    int32_t exception; /* pending exception vector or -1 */
    uint32_t error_code;
    bool has_error_code;
    bool exception_soft;           /* INT n / INT3 / INTO: DPL checks, return past the insn */
    bool exception_ext;            /* an external interrupt: no RF, EXT in error codes */
    uint64_t exception_next_rip;   /* return address for software interrupts */
    uint64_t fault_addr;           /* CR2 for #PF */
    atomic_uint interrupt_request; /* TCG_REQ_* bits, set from other threads; nonzero makes
                                      chained native code return to the run loop */
    bool halted;
    bool inhibit_irq;  /* STI / MOV SS shadow: no interrupt before the next instruction */
    bool nmi_blocked;  /* an NMI handler runs: no NMI until the next IRET */
    bool single_step;  /* TF was set when this instruction began: #DB after it (one insn runs) */
    bool inhibit_db;   /* MOV SS / POP SS: the single-step trap waits one more instruction */
    bool in_block;     /* generated code is running (stores may restart it, see softmmu.c) */
    bool tb_lock_held; /* this vCPU holds the VM's translation lock (released on longjmp) */
    uint8_t smc;       /* TCG_SMC_*: a store rewrote code of the block that was running */

    /* --- software MMU: one TLB per privilege (0 supervisor, 1 user) --- */
    struct tlb_entry tlb[2][TLB_SIZE];
    bool tlb_has_large_pages; /* some entry came from a large page (see tlb_flush_page) */
    /* Where non-global entries were filled since the last flush, so a CR3 write (which
     * keeps global ones) need not scan the whole TLB: user << 15 | index. */
    uint16_t tlb_nonglobal[TLB_NONGLOBAL_LOG];
    uint32_t tlb_nonglobal_count; /* > TLB_NONGLOBAL_LOG: the log overflowed, scan all */

    /* --- block chaining (native backend, see backend/x86_64.h) --- */
    int32_t chain_budget;        /* chained jumps left before the run loop must look (timers) */
    uint32_t chain_epoch;        /* bumped by every TLB flush: chains set before are void */
    uint32_t chain_epoch_global; /* bumped by flushes that can drop global pages */
    uint64_t chain_pages[TLB_CHAIN_PAGE_WORDS]; /* hashed pages chains lead into (softmmu.c) */
    void *last_exit;                            /* the native block that left through GOTO_TB */
    /* The host MXCSR holds the guest's while generated code runs (ir/fpenv.h): released into
     * fpu.mxcsr when the run loop or an FP helper takes control back (tcg_fp_release). */
    struct ir_fp_live fp_live;
    uint64_t insn_count; /* guest instructions of native blocks run to an exit */
    /* Return-address stack of the native code (hints: every use is checked): what each CALL
     * pushed, and a jump slot for the block at that return address. */
    struct tcg_ras_entry {
        uint64_t pc;
        void *site;
    } ras[TCG_RAS_ENTRIES];
    uint32_t ras_top;
    /* Indirect jumps' table, searched by the native code when an exit's inline cache misses
     * (a switch's jump table, a shared return): by 64-bit pc, a block for this mode and
     * chain epoch (a zero entry never matches: 64-bit code's mode word is never 0). */
    struct tcg_fast_jump {
        uint64_t pc;
        uint32_t guard; /* hflags */
        uint32_t epoch; /* chain_epoch */
        const void *entry;
        uint64_t unused;
    } fast_jump[TCG_FAST_JUMPS];

    /* --- exits back to the run loop --- */
    jmp_buf exit_jmp;
    struct tcg_vcpu *vcpu;
    void *jit_sites; /* this vCPU's copies of the native code's jump slots (x86_64.h) */
    /* Set by the VM's shape (kept across resets and INIT): */
    /* Other vCPUs may run at the same time: LOCK'd and implicitly locked instructions use host
     * atomics. Cleared while an instruction runs alone with the others stopped (step_atomic). */
    bool parallel;
    /* More vCPUs than host CPUs: PAUSE (spin-wait loops) yields the host CPU. */
    bool oversubscribed;
    bool host_fp;           /* scalar SSE arithmetic inline (IR_HOST_FP hosts) */
    struct tcg_stats stats; /* kept across resets: counts for the whole run */
};

/* Generated code has left (or a helper needs the guest's MXCSR or the host's FP unit): the
 * host's MXCSR back to the host, the flags it gathered into the guest's. */
static inline void tcg_fp_release(struct tcg_cpu *cpu)
{
    ir_fp_release(&cpu->fpu.mxcsr, &cpu->fp_live);
}

#define TCG_REQ_STOP 1u       /* kick(): return to the machine */
#define TCG_SMC_ONE_INSN 1u   /* run the interrupted instruction again, translated alone */
#define TCG_SMC_RUNNING 2u    /* that one-instruction block is running */
#define TCG_REQ_INTERRUPT 2u  /* an external interrupt line is raised */
#define TCG_REQ_INVALIDATE 4u /* a device wrote pages holding code: drop their blocks first */
#define TCG_REQ_EXCLUSIVE 8u  /* another vCPU waits for this one at its safe point */

#endif
