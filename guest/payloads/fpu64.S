/* fpu64.elf: x87 and SSE registers for the gdbstub test (tests/e2e/test_gdb.py).  Loads known
 * values (ST0 = 1.0, ST1 = 2.5, XMM1 = 0x99aabbccddeeff00:1122334455667788, XMM2 = 0, MXCSR =
 * 0x1f80 then PE raised by an inexact DIVSS) and stops at `gdb_stop`, where gdb reads them and
 * may change them.  Then it prints what it sees: "xmm2 HIGH:LOW", "mxcsr M", "st1 N" (ST1 as
 * an integer) and whether a DIVSS by zero raised #XM ("xm 1": the debugger unmasked ZM; the
 * translator must have re-derived its cached MXCSR state) or not ("xm 0"), then PASS. */
#include "payload.h"
#include "sys64.h"

    .text
    .code32
    .globl main32
main32:
    PRINT32 "fpu64: x87/SSE registers for gdb\n"
    movl $main64, %eax
    call enter_long_mode32

    .code64
main64:
    call sys64_init
    leaq on_exception(%rip), %rax
    movq %rax, sys64_exc_hook(%rip)
    movq %cr0, %rax
    andq $~0xc, %rax                 /* EM, TS clear */
    orq $0x22, %rax                  /* MP, NE */
    movq %rax, %cr0
    movq %cr4, %rax
    orq $0x600, %rax                 /* OSFXSR, OSXMMEXCPT */
    movq %rax, %cr4
    fninit
    fldl two_point_five(%rip)        /* ST0 = 2.5 */
    fld1                             /* ST0 = 1.0, ST1 = 2.5 */
    movdqu xmm1_value(%rip), %xmm1
    pxor %xmm2, %xmm2
    ldmxcsr mxcsr_default(%rip)
    movss one(%rip), %xmm3
    divss three(%rip), %xmm3         /* inexact: PE */
    .globl gdb_stop
gdb_stop:
    nop
    PRINT64 "xmm2 "
    movq %xmm2, %rbx
    movq %rbx, %rax
    shrq $32, %rax
    call puthex32_64
    PRINT64 ":"
    movl %ebx, %eax
    call puthex32_64
    PRINT64 "\nmxcsr "
    stmxcsr scratch(%rip)
    movl scratch(%rip), %eax
    call puthex32_64
    PRINT64 "\nst1 "
    fstp %st(0)
    fistpl scratch(%rip)
    movl scratch(%rip), %eax
    call putdec64
    PRINT64 "\nxm "
    leaq after_div(%rip), %rax
    movq %rax, resume(%rip)
    movss one(%rip), %xmm4
    xorps %xmm5, %xmm5
    divss %xmm5, %xmm4               /* #XM only if ZM is clear */
after_div:
    movq faulted(%rip), %rax
    addb $'0', %al
    call putc64
    PRINT64 "\nPASS\n"
    movb $EXIT_PASS, %al
    jmp exit64

/* #XM (19) from the DIVSS: note it, go on after it; anything else fails. */
on_exception:
    cmpl $19, sys64_exc_vec(%rip)
    je 1f
    FAIL64 "unexpected exception"
1:  movq $1, faulted(%rip)
    movq resume(%rip), %rax
    movq %rax, (%rsp)                /* no error code: RIP on top */
    iretq

    .section .rodata
    .balign 16
xmm1_value: .quad 0x1122334455667788, 0x99aabbccddeeff00
two_point_five: .double 2.5
one: .float 1.0
three: .float 3.0
mxcsr_default: .long 0x1f80

    .data
    .balign 8
faulted: .quad 0
resume: .quad 0
scratch: .quad 0
