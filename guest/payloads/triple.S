/* triple.elf: deliberate triple fault.  Loads an IDT with limit 0, then executes int3:
 * vector 3 is outside the IDT -> #GP, which is outside too -> #DF, also outside ->
 * triple fault (shutdown).  quokka exits with status 3; QEMU resets (or, with
 * -no-reboot, exits 0).  Anything after the int3 running means the fault was lost. */
#include "payload.h"

    .text
    .code32
    .globl main32
main32:
    PRINT32 "about to triple fault\n"
    lidt null_idtr
    int3
    ud2
    FAIL32 "still running after the triple fault"

    .section .rodata
    .balign 4
    .word 0
null_idtr:
    .word 0                         /* limit 0: no vector is reachable */
    .long 0
