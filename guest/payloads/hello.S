/* hello.elf: the smallest useful multiboot payload.  Prints one line and exits PASS. */
#include "payload.h"

    .text
    .code32
    .globl main32
main32:
    PRINT32 "hello from quokka payload\n"
    movb $EXIT_PASS, %al
    jmp exit32
