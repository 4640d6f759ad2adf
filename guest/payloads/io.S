/* io.elf: port-I/O and MMIO exits.
 *
 * - Writes port 0x80 (POST sink) N times, N from "count=N" on the command line
 *   (default 100000): the port-I/O exit cost benchmark.
 * - Writes 0x5a to port 0x80 and prints what reading it back gives (quokka returns the
 *   last byte written; other VMMs may not, so it is only printed).
 * - MMIO to the unclaimed 3G-4G hole (0xD0000000): dword, word and byte reads (quokka:
 *   all-ones), a write (dropped), and a re-read.
 * - A dword read just past the end of RAM (highest end of the memory-map entries below
 *   the hole, rounded up to 1 MiB).
 * Paging is off, so every address is physical.  Ends with "PASS" / EXIT_PASS. */
#include "payload.h"

#define HOLE_ADDR 0xD0000000
#define HOLE_BASE 0xC0000000

    .text
    .code32
    .globl main32
main32:
    PRINT32 "io: port and MMIO exits\n"

    call mb_cmdline32
    movl $key_count, %esi
    movl $100000, %eax
    call cmdline_uint32
    movl %eax, %ecx
    PRINT32 "port 0x80 writes: "
    call putdec32
    jecxz 2f
1:  movb %cl, %al
    outb %al, $PORT_POST
    decl %ecx
    jnz 1b
2:  PRINT32 " done\n"

    movb $0x5a, %al
    outb %al, $PORT_POST
    inb $PORT_POST, %al
    PRINT32 "port 0x80 read after writing 0x5a: 0x"
    call puthex8_32
    PRINT32 "\n"

    /* MMIO in the hole */
    PRINT32 "mmio read32 0xd0000000: 0x"
    movl HOLE_ADDR, %eax
    call puthex32
    PRINT32 "\nmmio read16 0xd0000004: 0x"
    movzwl HOLE_ADDR + 4, %eax
    call puthex32
    PRINT32 "\nmmio read8 0xd0000007: 0x"
    movzbl HOLE_ADDR + 7, %eax
    call puthex32
    movl $0x12345678, HOLE_ADDR
    PRINT32 "\nmmio write32 0xd0000000 <- 0x12345678\n"
    PRINT32 "mmio read32 0xd0000000 after write: 0x"
    movl HOLE_ADDR, %eax
    call puthex32
    PRINT32 "\n"

    /* Past the end of RAM: needs the memory map (flags bit 6) */
    movl mb_info, %ebx
    testl $(1 << 6), MBI_FLAGS(%ebx)
    jnz 1f
    PRINT32 "beyond RAM: no memory map\n"
    jmp 5f
1:  movl MBI_MMAP_ADDR(%ebx), %esi
    movl MBI_MMAP_LENGTH(%ebx), %edi
    addl %esi, %edi
    xorl %edx, %edx                 /* highest end seen below the hole */
    movl $64, %ecx                  /* bound the walk */
2:  cmpl %edi, %esi
    jae 4f
    cmpl $0, 8(%esi)                /* base >= 4 GiB: ignore */
    jne 3f
    movl 4(%esi), %eax
    cmpl $HOLE_BASE, %eax
    jae 3f
    cmpl $0, 16(%esi)               /* length >= 4 GiB: clamp to the hole */
    jne 6f
    addl 12(%esi), %eax
    jc 6f
    cmpl $HOLE_BASE, %eax
    jbe 7f
6:  movl $HOLE_BASE, %eax
7:  cmpl %edx, %eax
    jbe 3f
    movl %eax, %edx
3:  movl 0(%esi), %eax
    leal 4(%esi,%eax), %esi
    loop 2b
4:  addl $0xfffff, %edx             /* round up to 1 MiB */
    andl $0xfff00000, %edx
    cmpl $HOLE_BASE, %edx
    jb 1f
    PRINT32 "beyond RAM: RAM reaches the hole\n"
    jmp 5f
1:  PRINT32 "beyond RAM read32 0x"
    movl %edx, %eax
    call puthex32
    PRINT32 ": 0x"
    movl (%edx), %eax
    call puthex32
    PRINT32 "\n"
5:  PRINT32 "PASS\n"
    movb $EXIT_PASS, %al
    jmp exit32

    .section .rodata
key_count: .asciz "count="
