/* smc.elf: self-modifying code.  Patches the immediate of `mov $imm32, %eax` in a
 * function, calls it, and checks the new value is returned: a translator must notice
 * the write to a page holding translated code and throw the stale translation away.
 * Done 100 times with different values, then once more patching code on the same page
 * as the patching loop itself, and once patching the next instruction of the running
 * block.  Prints "smc ok" and exits PASS. */
#include "payload.h"

    .text
    .code32
    .globl main32
main32:
    PRINT32 "smc: self-modifying code\n"
    call patchme
    cmpl $1, %eax
    je 1f
    FAIL32 "initial value"
1:  movl $2, %ebx
2:  movl %ebx, patchme + 1          /* the imm32 of `mov $imm32, %eax` */
    call patchme
    cmpl %ebx, %eax
    je 3f
    FAIL32 "stale code ran after the patch"
3:  incl %ebx
    cmpl $102, %ebx
    jne 2b
    /* The same again for code on this very page. */
    movl $0x5a5a5a5a, near_patch + 1
    call near_patch
    cmpl $0x5a5a5a5a, %eax
    je 5f
    FAIL32 "stale code on the patching page"
5:  /* Within one block: a store rewrites the immediate of the very next instruction, which
     * must run with the new value (x86 keeps instruction fetch coherent with stores). */
    movl $0x77, same_block + 1
same_block:
    movl $0x11, %eax
    cmpl $0x77, %eax
    je 4f
    FAIL32 "stale code in the same block"
4:  PRINT32 "smc ok\n"
    PRINT32 "PASS\n"
    movb $EXIT_PASS, %al
    jmp exit32

near_patch:
    movl $0, %eax
    ret

    /* On its own page, so writes to it hit a page that holds only this code. */
    .balign 4096
patchme:
    movl $1, %eax
    ret
