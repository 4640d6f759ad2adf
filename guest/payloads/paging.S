/* paging.elf: 32-bit paging (2-level, 4 KiB pages) and page faults.
 *
 * 1. Identity-map the first 4 MiB with a page table; map virtual 0x00400000 to the
 *    physical page `alias_target` (a second name for the same memory); enable paging.
 *    Write through one name, read through the other.
 * 2. Read an unmapped address (0x00800000): #PF with CR2 = 0x800000 and error code 0
 *    (not present, read, supervisor).
 * 3. Write to a read-only page with CR0.WP set: #PF with error code 3 (present, write).
 * The #PF handler records CR2 and the error code and resumes at the next stage without
 * IRET (so the payload also runs where KVM cannot emulate IRET).  Prints each check. */
#include "payload.h"

#define VA_ALIAS   0x00400000
#define VA_MISSING 0x00800000

    .text
    .code32
    .globl main32
main32:
    PRINT32 "paging: 2-level paging and page faults\n"
    /* IDT: vector 14 -> pf_handler, everything else -> unexpected */
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

    /* Page table 0: identity 0-4 MiB, all present + writable, except ro_page (read only). */
    movl $pt0, %edi
    xorl %eax, %eax
1:  movl %eax, %edx
    orl $3, %edx
    cmpl $ro_page, %eax
    jne 2f
    andl $~2, %edx
2:  movl %edx, (%edi)
    addl $4, %edi
    addl $4096, %eax
    cmpl $0x400000, %eax
    jne 1b
    /* Page table 1: only its first entry, VA 0x400000 -> alias_target */
    movl $alias_target, %eax
    orl $3, %eax
    movl %eax, pt1
    movl $pt0, %eax
    orl $3, %eax
    movl %eax, pd
    movl $pt1, %eax
    orl $3, %eax
    movl %eax, pd + 4
    movl $pd, %eax
    movl %eax, %cr3
    movl %cr0, %eax
    orl $0x80010000, %eax           /* PG | WP */
    movl %eax, %cr0
    PRINT32 "paging on\n"

    movl $0x12345678, VA_ALIAS + 8
    movl alias_target + 8, %eax
    cmpl $0x12345678, %eax
    je 1f
    FAIL32 "alias write not seen at the physical page"
1:  movl $0x9abcdef0, alias_target + 12
    movl VA_ALIAS + 12, %eax
    cmpl $0x9abcdef0, %eax
    je 1f
    FAIL32 "physical write not seen through the alias"
1:  PRINT32 "alias mapping ok\n"

    movl $stage_ro, resume
    movl %esp, resume_esp
    movl VA_MISSING, %eax           /* faults */
    FAIL32 "read of an unmapped page did not fault"
stage_ro:
    call report_fault
    cmpl $VA_MISSING, fault_cr2
    jne bad
    cmpl $0, fault_err
    jne bad
    movl $stage_done, resume
    movl %esp, resume_esp
    movl $1, ro_page                /* faults: read-only with CR0.WP */
    FAIL32 "write to a read-only page did not fault"
stage_done:
    call report_fault
    cmpl $ro_page, fault_cr2
    jne bad
    cmpl $3, fault_err
    jne bad
    PRINT32 "PASS\n"
    movb $EXIT_PASS, %al
    jmp exit32
bad:
    FAIL32 "wrong CR2 or error code"

report_fault:
    PRINT32 "page fault cr2=0x"
    movl fault_cr2, %eax
    call puthex32
    PRINT32 " err=0x"
    movl fault_err, %eax
    call puthex32
    PRINT32 "\n"
    ret

pf_handler:
    popl %eax                       /* error code */
    movl %eax, fault_err
    movl %cr2, %eax
    movl %eax, fault_cr2
    movl resume_esp, %esp           /* drop the exception frame: resume without IRET */
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
pd: .skip 4096
pt0: .skip 4096
pt1: .skip 4096
alias_target: .skip 4096
ro_page: .skip 4096
idt: .skip 32 * 8
