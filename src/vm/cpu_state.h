/* x86-64 vCPU architectural state in quokka's own terms, shared by all accelerators. */
#ifndef QUOKKA_VM_CPU_STATE_H
#define QUOKKA_VM_CPU_STATE_H

#include <stdint.h>

enum gpr_index { /* x86 register encoding order */
                 GPR_RAX,
                 GPR_RCX,
                 GPR_RDX,
                 GPR_RBX,
                 GPR_RSP,
                 GPR_RBP,
                 GPR_RSI,
                 GPR_RDI,
                 GPR_R8,
                 GPR_R9,
                 GPR_R10,
                 GPR_R11,
                 GPR_R12,
                 GPR_R13,
                 GPR_R14,
                 GPR_R15,
                 NR_GPRS
};

enum seg_index { SEG_ES, SEG_CS, SEG_SS, SEG_DS, SEG_FS, SEG_GS, SEG_LDTR, SEG_TR, NR_SEGS };

struct vcpu_segment {
    uint64_t base;
    uint32_t limit; /* byte granular (already scaled when G=1) */
    uint16_t selector;
    uint8_t type; /* 4-bit descriptor type */
    uint8_t s, dpl, present, avl, l, db, g;
    uint8_t unusable;
};

struct vcpu_dtable {
    uint64_t base;
    uint16_t limit;
};

struct vcpu_state {
    uint64_t gpr[NR_GPRS];
    uint64_t rip;
    uint64_t rflags;
    struct vcpu_segment seg[NR_SEGS];
    struct vcpu_dtable gdt, idt;
    uint64_t cr0, cr2, cr3, cr4, cr8;
    uint64_t efer;
    uint64_t apic_base;
};

/* x87 and SSE state, laid out as FXSAVE64 holds it (KVM's struct kvm_fpu carries the same):
 * st[i] is ST(i), relative to TOP (fsw bits 11-13); ftw is the abridged tag (bit i set:
 * physical register i is not empty). */
struct vcpu_fpu {
    uint8_t st[8][10]; /* 80-bit extended: 64-bit mantissa, then sign and exponent */
    uint16_t fcw, fsw, fop;
    uint8_t ftw;
    uint16_t fcs, fds; /* FXSAVE's 32-bit form; KVM has none (0) */
    uint64_t fip, fdp;
    uint8_t xmm[16][16];
    uint32_t mxcsr;
};

struct vcpu_msr {
    uint32_t index;
    uint64_t value;
};

#define CPUID_MAX_ENTRIES 128
#define CPUID_FLAG_INDEXED 1u /* entry depends on ECX (subleaf) */

struct cpuid_entry {
    uint32_t function, index, flags;
    uint32_t eax, ebx, ecx, edx;
};

struct cpuid_model {
    uint32_t nr;
    struct cpuid_entry entry[CPUID_MAX_ENTRIES];
};

/* Architectural bits used by boot code and accelerators. */
#define X86_CR0_PE (1ULL << 0)
#define X86_CR0_MP (1ULL << 1)
#define X86_CR0_ET (1ULL << 4)
#define X86_CR0_NE (1ULL << 5)
#define X86_CR0_WP (1ULL << 16)
#define X86_CR0_PG (1ULL << 31)
#define X86_CR4_PAE (1ULL << 5)
#define X86_CR4_PGE (1ULL << 7)
#define X86_EFER_SCE (1ULL << 0)
#define X86_EFER_LME (1ULL << 8)
#define X86_EFER_LMA (1ULL << 10)
#define X86_EFER_NXE (1ULL << 11)
#define X86_RFLAGS_FIXED (1ULL << 1)
#define X86_RFLAGS_IF (1ULL << 9)

#endif
