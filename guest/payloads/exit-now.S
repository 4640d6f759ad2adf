/* exit-now.elf: exits with debug-exit value 0 (status 1) as its very first instruction
 * pair, with no output and no setup: used to time VM creation + boot to the first guest
 * instruction.  Standalone (no entry32.o), so it owns its multiboot header. */
#include "payload.h"

    .section .multiboot, "a"
    .balign 4
    .long MB_HEADER_MAGIC
    .long MB_HEADER_FLAGS
    .long -(MB_HEADER_MAGIC + MB_HEADER_FLAGS)

    .text
    .code32
    .globl _start
_start:
    xorl %eax, %eax
    outb %al, $PORT_DEBUG_EXIT
1:  cli                             /* not reached on a working VMM */
    hlt
    jmp 1b
