/* Common Multiboot v1 entry for the 32-bit payloads.
 *
 * The loader enters _start in flat 32-bit protected mode with paging off,
 * EAX = 0x2BADB002 and EBX = the multiboot info pointer.  The spec leaves GDTR, IDTR
 * and ESP undefined, so we load our own GDT (which also carries the 64-bit and 16-bit
 * segments the mode-switching payloads need), reload every segment register, set a
 * stack, initialise COM1 and call the payload's main32.  main32 must not return. */
#include "payload.h"

    .section .multiboot, "a"
    .balign 4
mb_header:                          /* must lie within the first 8 KiB of the file */
    .long MB_HEADER_MAGIC
    .long MB_HEADER_FLAGS
    .long -(MB_HEADER_MAGIC + MB_HEADER_FLAGS)

    .text
    .code32
    .globl _start
_start:
    cli
    cld
    movl $stack_top, %esp
    movl %eax, mb_magic             /* saved before anything clobbers them */
    movl %ebx, mb_info
    lgdt gdtr
    ljmp $SEL_CODE32, $1f           /* reload CS from our GDT */
1:  movw $SEL_DATA32, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %fs
    movw %ax, %gs
    movw %ax, %ss
    call serial_init32
    call main32
    FAIL32 "main32 returned"

    .data
    .balign 4
    .globl mb_magic, mb_info
mb_magic: .long 0
mb_info:  .long 0

    .section .rodata
    .balign 8
    .globl gdt, gdtr
gdt:
    .quad 0                         /* 0x00 null */
    .quad 0x00cf9a000000ffff        /* 0x08 code32: base 0, limit 4G, D=1 */
    .quad 0x00cf92000000ffff        /* 0x10 data32: base 0, limit 4G, B=1 */
    .quad 0x00af9a000000ffff        /* 0x18 code64: L=1, D=0 */
    /* 0x20 code16 and 0x28 data16: base REALMODE_BASE, limit 0xffff, byte granular,
     * so the cached limits are already real-mode compatible when we clear CR0.PE. */
    .quad 0x00009a000000ffff | (REALMODE_BASE << 16)
    .quad 0x000092000000ffff | (REALMODE_BASE << 16)
gdt_end:
    .balign 4
    .word 0                         /* pad so the base below is 4-byte aligned */
gdtr:
    .word gdt_end - gdt - 1
    .long gdt

    .bss
    .balign 16
stack: .skip 16384
    .globl stack_top
stack_top:
