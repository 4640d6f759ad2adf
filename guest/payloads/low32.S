/* low32.elf (issue 12): a Multiboot payload whose segments lie at 0x6000 (code, data) and
 * 0xA000 (bss, past 0xF000), where loaders like to put their own data (quokka's defaults:
 * boot information 0x6000, page tables 0x9000-0xF000; link32low.ld says why 0x9000 stays
 * free). It checks that the loader put everything of its own elsewhere: the multiboot info
 * (EBX), the memory map and command line it points to lie outside both segments, a pattern
 * in .data is intact and .bss is zero. Passes on QEMU (-kernel) too. */
#include "payload.h"

#define PATTERN 0x5aa5c33c
#define PATTERN_WORDS 512               /* 2 KiB of .data, over the default boot information */

    .text
    .code32
    .globl main32
main32:
    cmpl $MB_BOOT_MAGIC, mb_magic
    je 1f
    FAIL32 "no multiboot magic in EAX"
1:  movl mb_info, %ebx
    movl %ebx, %eax
    call outside_image
    movl MBI_FLAGS(%ebx), %ecx
    testl $(1 << 6), %ecx               /* mmap_length / mmap_addr valid */
    jz 2f
    movl MBI_MMAP_ADDR(%ebx), %eax
    call outside_image
2:  testl $(1 << 2), %ecx               /* cmdline valid */
    jz 3f
    movl MBI_CMDLINE(%ebx), %eax
    call outside_image
3:  movl $pattern, %esi
    movl $PATTERN_WORDS, %ecx
4:  cmpl $PATTERN, (%esi)
    je 5f
    FAIL32 "the loader wrote into the image's .data"
5:  addl $4, %esi
    loop 4b
    movl $zeroes, %esi
    movl $PATTERN_WORDS, %ecx
6:  cmpl $0, (%esi)
    je 7f
    FAIL32 "the image's .bss is not zero"
7:  addl $4, %esi
    loop 6b
    PRINT32 "low32: loaded at 0x6000 and 0xa000, the loader's data is outside both\n"
    PRINT32 "PASS\n"
    movb $EXIT_PASS, %al
    jmp exit32

/* EAX: an address the loader gave us; fails unless it is outside both segments. */
outside_image:
    cmpl $_low_start, %eax
    jb 1f
    cmpl $_low_end, %eax
    jae 1f
    FAIL32 "the loader put its data inside the low segment"
1:  cmpl $_high_start, %eax
    jb 2f
    cmpl $_high_end, %eax
    jae 2f
    FAIL32 "the loader put its data inside the bss segment"
2:  ret

    .data
    .balign 4
pattern:
    .rept PATTERN_WORDS
    .long PATTERN
    .endr

    .bss
    .balign 4
zeroes: .skip 4 * PATTERN_WORDS
