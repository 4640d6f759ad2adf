/* hostile.elf: a guest that tries to hurt its VMM. The command line picks the case
 * ("case=N") and how often it repeats ("iters=N"); each case ends with "PASS" when the
 * VMM survived it and answered as the architecture says. The e2e tests watch the VMM's
 * memory (RSS) while these run.
 *   case=1  code outside RAM: jump to an address no RAM or device backs (fetches read
 *           0xff bytes, FF FF is #UD), take the #UD, jump there again, iters times. */
#include "payload.h"

#define NOWHERE 0x40000000          /* above the RAM the tests give (256M), below MMIO */

    .text
    .code32
    .globl main32
main32:
    call mb_cmdline32
    movl $key_iters, %esi
    movl $1000, %eax
    call cmdline_uint32
    movl %eax, iters
    movl $key_case, %esi
    xorl %eax, %eax
    call cmdline_uint32
    movl %eax, hcase
    call idt_init
    PRINT32 "hostile: case="
    movl hcase, %eax
    call putdec32
    PRINT32 " iters="
    movl iters, %eax
    call putdec32
    PRINT32 "\n"
    movl hcase, %eax
    cmpl $1, %eax
    je case_ud_outside_ram
    FAIL32 "unknown case"

pass:
    PRINT32 "PASS\n"
    movb $EXIT_PASS, %al
    jmp exit32

/* IDT: every vector -> unexpected (prints the vector, fails); #UD -> ud_handler. */
idt_init:
    movl $idt, %edi
    xorl %ecx, %ecx
1:  leal stubs(,%ecx,8), %edx
    cmpl $6, %ecx
    jne 2f
    movl $ud_handler, %edx
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
    ret

/* Vector stubs, 8 bytes each: a call whose return address tells the vector. */
    .balign 8
stubs:
.rept 32
    .balign 8
    call unexpected
.endr
unexpected:
    PRINT32 "FAIL: unexpected exception vector "
    popl %eax
    subl $(stubs + 5), %eax
    shrl $3, %eax
    call putdec32
    PRINT32 "\n"
    movb $EXIT_FAIL, %al
    jmp exit32

/* #UD: the case's handler, if any (without IRET: the payload also runs where IRET cannot
 * be emulated). */
ud_handler:
    movl ud_next, %eax
    testl %eax, %eax
    jz stubs + 6 * 8
    jmp *%eax

/* case 1 */
case_ud_outside_ram:
    movl $ud_outside_again, ud_next
ud_outside_again:
    movl $stack_top, %esp           /* drop the #UD frame */
    decl iters
    js 1f
    movl $NOWHERE, %eax
    jmp *%eax
1:  movl $0, ud_next
    PRINT32 "ud outside ram ok\n"
    jmp pass

    .section .rodata
key_iters: .asciz "iters="
key_case:  .asciz "case="
    .balign 4
    .word 0
idtr:
    .word 32 * 8 - 1
    .long idt

    /* In .bss, a page of its own: stores next to the code would make the VMM translate
     * it again after each one. */
    .bss
    .balign 8
idt: .space 32 * 8
iters: .long 0
hcase: .long 0
ud_next: .long 0
