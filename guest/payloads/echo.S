/* echo.elf: serial input.  Prints "echo ready", then echoes every byte received on COM1
 * (polling LSR.DR) as "<hex>" until it reads 'q', then exits PASS.  Lets the tests check
 * that host input reaches the guest's UART. */
#include "payload.h"

#define LSR_DR 0x01

    .text
    .code32
    .globl main32
main32:
    PRINT32 "echo ready\n"
1:  movw $COM1_LSR, %dx
2:  inb %dx, %al
    testb $LSR_DR, %al
    jnz 3f
    pause
    jmp 2b
3:  movw $COM1_THR, %dx
    inb %dx, %al
    movb %al, %bl
    PRINT32 "got "
    movb %bl, %al
    call puthex8_32
    PRINT32 "\n"
    cmpb $'q', %bl
    jne 1b
    PRINT32 "PASS\n"
    movb $EXIT_PASS, %al
    jmp exit32
