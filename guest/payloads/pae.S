/* pae.elf: 32-bit PAE paging (3-level, 8-byte entries, 2 MiB and 4 KiB pages) and NX.
 *
 * 1. PDPT entry 0 -> page directory: entry 0 maps 0-2 MiB as one 2 MiB page, entry 1 a page
 *    table mapping virtual 0x00200000 to the physical page `alias_target`.
 * 2. Write through the alias, read through the identity mapping, and back.
 * 3. Enable EFER.NXE, mark `nx_page` execute-disable and call into it: #PF with error
 *    code 0x11 (present, instruction fetch) and CR2 = nx_page.
 * The handler resumes without IRET (see paging.elf). */
#include "payload.h"

#define VA_ALIAS 0x00200000
#define MSR_EFER 0xc0000080

    .text
    .code32
    .globl main32
main32:
    PRINT32 "pae: PAE paging, 2 MiB pages and NX\n"
    movl $idt, %edi
    xorl %ecx, %ecx
1:  movl $unexpected, %edx
    cmpl $14, %ecx
    jne 2f
    movl $pf_handler, %edx
2:  movl %edx, %eax
    andl $0xffff, %eax
    orl $(SEL_CODE32 << 16), %eax
    movl %eax, 0(%edi)
    movl %edx, %eax
    andl $0xffff0000, %eax
    orl $0x8e00, %eax
    movl %eax, 4(%edi)
    addl $8, %edi
    incl %ecx
    cmpl $32, %ecx
    jne 1b
    lidt idtr

    /* The payload lives below 2 MiB: PD[0] is a 2 MiB identity page (PS). */
    movl $0x83, pd                  /* P | RW | PS, base 0 */
    movl $0, pd + 4
    movl $pt, %eax
    orl $3, %eax
    movl %eax, pd + 8               /* PD[1]: 2-4 MiB through a page table */
    movl $alias_target, %eax
    orl $3, %eax
    movl %eax, pt                   /* PT[0]: VA 0x200000 -> alias_target */
    movl $pd, %eax
    orl $1, %eax                    /* PDPTEs have only P among the low flags */
    movl %eax, pdpt
    /* CR4.PAE, EFER.NXE, CR3, then paging */
    movl %cr4, %eax
    orl $0x20, %eax
    movl %eax, %cr4
    movl $MSR_EFER, %ecx
    rdmsr
    orl $0x800, %eax
    wrmsr
    movl $pdpt, %eax
    movl %eax, %cr3
    movl %cr0, %eax
    orl $0x80000000, %eax
    movl %eax, %cr0
    PRINT32 "pae paging on\n"

    movl $0x11223344, VA_ALIAS + 16
    cmpl $0x11223344, alias_target + 16
    je 1f
    FAIL32 "alias write not seen at the physical page"
1:  movl $0x55667788, alias_target + 20
    cmpl $0x55667788, VA_ALIAS + 20
    je 1f
    FAIL32 "physical write not seen through the alias"
1:  PRINT32 "pae alias mapping ok\n"

    /* Split the 2 MiB identity page so nx_page can have its own entry: PT2 maps 0-2 MiB. */
    movl $pt2, %edi
    xorl %eax, %eax
1:  movl %eax, %edx
    orl $3, %edx
    movl %edx, (%edi)
    movl $0, 4(%edi)
    cmpl $nx_page, %eax
    jne 2f
    movl $0x80000000, 4(%edi)       /* XD (bit 63) */
2:  addl $8, %edi
    addl $4096, %eax
    cmpl $0x200000, %eax
    jne 1b
    movl $pt2, %eax
    orl $3, %eax
    movl %eax, pd
    movl %cr3, %eax
    movl %eax, %cr3                 /* flush the TLB */
    movb $0xc3, nx_page             /* ret: would run if NX were ignored */
    movl $after_nx, resume
    movl %esp, resume_esp
    call nx_page
    FAIL32 "execution from an NX page did not fault"
after_nx:
    PRINT32 "page fault cr2=0x"
    movl fault_cr2, %eax
    call puthex32
    PRINT32 " err=0x"
    movl fault_err, %eax
    call puthex32
    PRINT32 "\n"
    cmpl $nx_page, fault_cr2
    jne bad
    cmpl $0x11, fault_err
    jne bad
    PRINT32 "PASS\n"
    movb $EXIT_PASS, %al
    jmp exit32
bad:
    FAIL32 "wrong CR2 or error code"

pf_handler:
    popl %eax
    movl %eax, fault_err
    movl %cr2, %eax
    movl %eax, fault_cr2
    movl resume_esp, %esp
    jmp *resume

unexpected:
    FAIL32 "unexpected exception"

    .data
    .balign 8
idtr:
    .word 32 * 8 - 1
    .long idt
resume: .long 0
resume_esp: .long 0
fault_cr2: .long 0
fault_err: .long 0

    .bss
    .balign 4096
pdpt: .skip 4096
pd: .skip 4096
pt: .skip 4096
pt2: .skip 4096
alias_target: .skip 4096
nx_page: .skip 4096
idt: .skip 32 * 8
