/* pf64.elf: 4-level paging conformance (sys64.S kernel, CR0.WP set).
 * A test hierarchy under PML4[2] (TV = 0x10000000000): PDPT[0] -> PD[0] -> PT with
 * PT[0], PT[1] = two code pages, PT[2] = a data page; PD[1] = a 2 MiB page; PDPT[1] unused.
 * Each case edits entries, accesses TV space from CPL 0 or 3 and reports the #PF error
 * code and CR2 (or "no fault"); checked against the SDM: P, W/R, U/S, RSVD (bits above
 * MAXPHYADDR = 40, reserved bits of 2 MiB and 1 GiB pages (or PS in a PDPTE without 1 GiB pages), PS in a
 * PML4E, NX while EFER.NXE = 0), I/D; the A bits of every level after a read and D after a
 * write; NX stopping instruction fetch of code already run and of a block reached by a
 * direct jump from another page (after INVLPG). One line per case.
 * `qemu=1`: accept QEMU TCG's RSVD faults without P (the SDM sets P: the entry is present);
 * they print as the SDM has them. */
#include "payload.h"
#include "sys64.h"

#define TV        0x10000000000
#define MSR_EFER  0xc0000080
#define BIT45     (1 << 13)          /* in the high dword: bit 45 */
#define NXHI      0x80000000         /* in the high dword: bit 63 */

/* KACCESS read|write|call: access RDX at CPL 0; UACCESS: at CPL 3 */
.macro KACCESS kind
    movq $-1, pf_err(%rip)
    movq $-1, pf_cr2(%rip)
    leaq 9f(%rip), %rax
    movq %rax, pf_resume(%rip)
    .ifc \kind, read
    movq (%rdx), %rax
    .endif
    .ifc \kind, write
    movq %rax, (%rdx)
    .endif
    .ifc \kind, call
    leaq just_ret(%rip), %rax
    movq %rax, pf_resume(%rip)
    call *%rdx
    .endif
9:
.endm
.macro UACCESS kind
    movq $-1, pf_err(%rip)
    movq $-1, pf_cr2(%rip)
    leaq u_done(%rip), %rax
    movq %rax, pf_resume(%rip)
    .ifc \kind, call
    leaq just_ret(%rip), %rax
    movq %rax, pf_resume(%rip)
    .endif
    leaq u_\kind(%rip), %rax
    leaq sys64_ustack_top(%rip), %rbx
    xorl %ecx, %ecx
    call sys64_to_user
.endm
/* EXPECT "name", err (-1: no fault): print and check */
.macro EXPECT name, err
    PRINT64 "\name: "
    movq $\err, %rax
    call check_pf
.endm

    .text
    .code32
    .globl main32
main32:
    PRINT32 "pf64: paging conformance\n"
    call mb_cmdline32
    movl $qemu_key, %esi
    xorl %eax, %eax
    call cmdline_uint32
    movl %eax, qemu_mode
    movl $main64, %eax
    call enter_long_mode32

    .code64
main64:
    call sys64_init
    movl $14, %edi
    xorl %esi, %esi
    movl $GATE_INT, %edx
    call sys64_set_gate
    movl $SYS_VEC_BACK, %edi
    movl $sys64_back, %esi
    movl $(GATE_INT | GATE_DPL3), %edx
    call sys64_set_gate
    movl $record_pf, %eax
    movq %rax, sys64_exc_hook(%rip)
    movq %cr0, %rax
    orl $(1 << 16), %eax            /* CR0.WP */
    movq %rax, %cr0

    /* --- A and D bits --- */
    call pf_reset
    movabsq $TV + 0x2000, %rdx
    KACCESS read
    EXPECT "kernel read", -1
    PRINT64 "accessed bits after a read: pml4e "
    movq lm_pml4 + 16(%rip), %rax
    call put_ad
    PRINT64 " pdpte "
    movq pdpt_t(%rip), %rax
    call put_ad
    PRINT64 " pde "
    movq pd_t(%rip), %rax
    call put_ad
    PRINT64 " pte "
    movq pt_t + 16(%rip), %rax
    call put_ad
    PRINT64 "\n"
    movq pt_t + 16(%rip), %rcx      /* the PTE: A, not D */
    andl $0x60, %ecx
    cmpl $0x20, %ecx
    je 1f
    FAIL64 "A/D of the PTE after a read"
1:  testb $0x20, lm_pml4 + 16(%rip)
    jz 2f
    testb $0x20, pdpt_t(%rip)
    jz 2f
    testb $0x20, pd_t(%rip)
    jnz 3f
2:  FAIL64 "A not set in a paging-structure entry"
3:  KACCESS write
    EXPECT "kernel write", -1
    testb $0x40, pt_t + 16(%rip)
    jnz 4f
    FAIL64 "D not set after a write"
4:
    /* --- permission faults --- */
    call pf_reset
    andq $~4, pt_t + 16(%rip)
    call flush
    UACCESS read
    EXPECT "user read of a supervisor page", 0x5
    call pf_reset
    andq $~2, pt_t + 16(%rip)
    call flush
    UACCESS write
    EXPECT "user write to a read-only page", 0x7
    KACCESS write
    EXPECT "kernel write to a read-only page, CR0.WP", 0x3
    call pf_reset
    movq $0, pt_t + 16(%rip)
    call flush
    UACCESS write
    EXPECT "user write to a not-present page", 0x6

    /* --- reserved bits --- */
    call pf_reset
    orl $BIT45, pt_t + 16 + 4(%rip)
    call flush
    KACCESS read
    EXPECT "PTE bit 45 (above MAXPHYADDR), kernel read", 0x9
    UACCESS read
    EXPECT "PTE bit 45, user read", 0xd
    UACCESS write
    EXPECT "PTE bit 45, user write", 0xf
    call pf_reset
    orl $BIT45, pd_t + 4(%rip)
    call flush
    KACCESS read
    EXPECT "PDE bit 45, kernel read", 0x9
    call pf_reset
    orl $(1 << 13), pd_t + 8(%rip)  /* 2 MiB page: bits 20:13 are reserved */
    call flush
    movabsq $TV + 0x200000, %rdx
    KACCESS read
    EXPECT "2 MiB page with bit 13 set", 0x9
    call pf_reset
    movl $0x87, pdpt_t + 8(%rip)    /* PS in a PDPTE: a 1 GiB page at 0 if the CPU has them */
    call flush
    movl $0x80000001, %eax
    cpuid
    movabsq $TV + 0x40000000, %rax
    testl $(1 << 26), %edx          /* Page1GB */
    movq %rax, %rdx
    jnz 1f
    KACCESS read
    EXPECT "PDPTE with PS (no 1 GiB pages)", 0x9
    jmp 2f
1:  KACCESS read
    EXPECT "1 GiB page", -1
    orl $(1 << 13), pdpt_t + 8(%rip) /* 1 GiB page: bits 29:13 are reserved */
    call flush
    KACCESS read
    EXPECT "1 GiB page with bit 13 set", 0x9
2:  call pf_reset
    orq $0x80, lm_pml4 + 16(%rip)   /* PS in a PML4E is reserved */
    call flush
    movabsq $TV + 0x2000, %rdx
    KACCESS read
    EXPECT "PML4E with PS", 0x9
    call pf_reset
    orl $NXHI, pt_t + 16 + 4(%rip)
    call flush
    KACCESS read
    EXPECT "NX bit while EFER.NXE = 0", 0x9

    /* --- NX --- */
    movl $MSR_EFER, %ecx
    rdmsr
    orl $(1 << 11), %eax
    wrmsr
    KACCESS read
    EXPECT "NX page, data read with EFER.NXE = 1", -1
    call pf_reset
    orl $NXHI, pt_t + 4(%rip)
    call flush
    movabsq $TV, %rdx
    KACCESS call
    EXPECT "kernel fetch from an NX page", 0x11
    UACCESS call
    EXPECT "user fetch from an NX page", 0x15
    call pf_reset
    orl $BIT45, pt_t + 4(%rip)
    call flush
    KACCESS call
    EXPECT "fetch through a PTE with bit 45", 0x19
    /* code that has run, then NX + INVLPG */
    call pf_reset
    movabsq $TV, %rdx
    KACCESS call
    KACCESS call
    KACCESS call
    EXPECT "code page runs", -1
    orl $NXHI, pt_t + 4(%rip)
    invlpg (%rdx)
    KACCESS call
    EXPECT "the same code after NX + INVLPG", 0x11
    /* a block reached by a direct jump from another page */
    call pf_reset
    movb $0xe9, code1(%rip)         /* jmp TV + 0x1000 */
    movl $0x1000 - 5, code1 + 1(%rip)
    movabsq $TV, %rdx
    KACCESS call
    KACCESS call
    KACCESS call
    EXPECT "jump into the next page runs", -1
    orl $NXHI, pt_t + 8 + 4(%rip)
    movabsq $TV + 0x1000, %rax
    invlpg (%rax)
    KACCESS call
    EXPECT "jump into that page after NX + INVLPG", 0x11
    PRINT64 "PASS\n"
    movb $EXIT_PASS, %al
    jmp exit64

/* check_pf: RAX = expected error code or -1 */
check_pf:
    pushq %rax
    movq pf_err(%rip), %rax
    cmpq $-1, %rax
    je 0f
    cmpl $0, qemu_mode(%rip)        /* QEMU TCG leaves P clear with RSVD: as the SDM says */
    je 1f
    testb $8, %al
    jz 1f
    orq $1, %rax
    movq %rax, pf_err(%rip)
    jmp 1f
0:
    PRINT64 "no fault\n"
    jmp 2f
1:  PRINT64 "err 0x"
    call puthex8_64
    PRINT64 " cr2 0x"
    movq pf_cr2(%rip), %rax
    shrq $32, %rax
    call puthex32_64
    movq pf_cr2(%rip), %rax
    call puthex32_64
    PRINT64 "\n"
2:  popq %rax
    cmpq pf_err(%rip), %rax
    je 3f
    FAIL64 "unexpected page-fault error code"
3:  ret

/* put_ad: RAX = entry; prints A and D as "A-" / "AD" / "--" */
put_ad:
    pushq %rax
    pushq %rcx
    movq %rax, %rcx
    movb $'-', %al
    testb $0x20, %cl
    jz 1f
    movb $'A', %al
1:  call putc64
    movb $'-', %al
    testb $0x40, %cl
    jz 2f
    movb $'D', %al
2:  call putc64
    popq %rcx
    popq %rax
    ret

/* the user-mode triggers (address in RDX) */
u_read:
    movq (%rdx), %rax
    jmp u_done
u_write:
    movq %rax, (%rdx)
    jmp u_done
u_call:
    call *%rdx
u_done:
    int $SYS_VEC_BACK
just_ret:
    ret

/* #PF hook: record, resume at pf_resume */
record_pf:
    popq %rax
    movq %rax, pf_err(%rip)
    movq %cr2, %rax
    movq %rax, pf_cr2(%rip)
    movq pf_resume(%rip), %rax
    movq %rax, (%rsp)
    iretq

flush:
    pushq %rax
    movq %cr3, %rax
    movq %rax, %cr3
    popq %rax
    ret

/* pf_reset: the test hierarchy's default entries and code; flushes the TLB */
pf_reset:
    pushq %rax
    pushq %rdi
    pushq %rcx
    movl $pdpt_t + 7, %eax
    movq %rax, lm_pml4 + 16(%rip)
    movl $pd_t + 7, %eax
    movq %rax, pdpt_t(%rip)
    movq $0, pdpt_t + 8(%rip)
    movl $pt_t + 7, %eax
    movq %rax, pd_t(%rip)
    movq $0x200087, pd_t + 8(%rip)  /* 2 MiB page at 2 MiB, P W U PS */
    movl $code1 + 7, %eax
    movq %rax, pt_t(%rip)
    movl $code2 + 7, %eax
    movq %rax, pt_t + 8(%rip)
    movl $data + 7, %eax
    movq %rax, pt_t + 16(%rip)
    leaq code1(%rip), %rdi
    movl $0xc3, %eax                /* ret, over both code pages */
    movl $8192, %ecx
    rep stosb
    call flush
    popq %rcx
    popq %rdi
    popq %rax
    ret

    .data
    .balign 8
pf_err: .quad 0
pf_cr2: .quad 0
pf_resume: .quad 0
qemu_mode: .long 0
    .section .rodata
qemu_key: .asciz "qemu="

    .bss
    .balign 4096
pdpt_t: .skip 4096
pd_t: .skip 4096
pt_t: .skip 4096
code1: .skip 4096
code2: .skip 4096
data: .skip 4096
