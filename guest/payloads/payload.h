/* Shared definitions for quokka's test payloads (included by the .S files through cpp).
 *
 * Conventions (see README.md): payloads print one line per check on COM1, finish with
 * "PASS" and exit through isa-debug-exit with EXIT_PASS (status 33), or print
 * "FAIL: reason" and exit with EXIT_FAIL (status 35).  A crash therefore never looks
 * like success. */
#ifndef QUOKKA_PAYLOAD_H
#define QUOKKA_PAYLOAD_H

/* Board ports (mirror src/vm/platform.h). */
#define PORT_PIC1_CMD   0x20
#define PORT_PIC1_DATA  0x21
#define PORT_PIC2_CMD   0xa0
#define PORT_PIC2_DATA  0xa1
#define PORT_PIT_CH0    0x40
#define PORT_PIT_CMD    0x43
#define PORT_POST       0x80
#define PORT_DEBUG_EXIT 0xf4
#define COM1            0x3f8
#define COM1_THR        (COM1 + 0)  /* DLAB=0 */
#define COM1_IER        (COM1 + 1)  /* DLAB=0 */
#define COM1_DLL        (COM1 + 0)  /* DLAB=1 */
#define COM1_DLM        (COM1 + 1)  /* DLAB=1 */
#define COM1_IIR        (COM1 + 2)  /* read */
#define COM1_FCR        (COM1 + 2)  /* write */
#define COM1_LCR        (COM1 + 3)
#define COM1_MCR        (COM1 + 4)
#define COM1_LSR        (COM1 + 5)
#define LSR_THRE        0x20

/* isa-debug-exit values: the VMM exits with status (V << 1) | 1. */
#define EXIT_PASS       0x10        /* status 33 */
#define EXIT_FAIL       0x11        /* status 35 */

/* Multiboot v1 */
#define MB_HEADER_MAGIC 0x1BADB002
#define MB_HEADER_FLAGS 0x00000003  /* bit 0: page-align modules, bit 1: memory info */
#define MB_BOOT_MAGIC   0x2BADB002  /* in EAX at entry */
#define MBI_FLAGS       0
#define MBI_MEM_LOWER   4
#define MBI_MEM_UPPER   8
#define MBI_CMDLINE     16
#define MBI_MODS_COUNT  20
#define MBI_MODS_ADDR   24
#define MBI_MMAP_LENGTH 44
#define MBI_MMAP_ADDR   48

/* Selectors of the GDT in entry32.S (all flat except the 16-bit ones). */
#define SEL_CODE32      0x08
#define SEL_DATA32      0x10
#define SEL_CODE64      0x18
#define SEL_CODE16      0x20        /* base REALMODE_BASE, limit 0xffff */
#define SEL_DATA16      0x28        /* base REALMODE_BASE, limit 0xffff */

/* Low-memory scratch area where modes.elf copies its real-mode trampoline.  Free in
 * quokka's layout (boot.h: GDT at 0x500, boot info at 0x6000+) and in QEMU's. */
#define REALMODE_BASE   0x3000
#define REALMODE_SEG    (REALMODE_BASE >> 4)

/* Benchmark buffer: FNV-1a over a 1 MiB xorshift32-generated buffer (lib64.S). */
#define BENCH_BUF_SIZE  0x100000
#define BENCH_SEED      0x12345678
#define BENCH_DEFAULT_ITERS 1500  /* ~1.4 s natively on a 2020s x86 core */

#ifdef __ASSEMBLER__
/* PRINT32 "text" / PRINT64 "text": print a string literal, preserving all registers.
 * The string goes to .rodata under a unique local label. */
.macro PRINT32 str
    .pushsection .rodata
.Lpstr\@: .asciz "\str"
    .popsection
    pushl %esi
    movl $.Lpstr\@, %esi
    call puts32
    popl %esi
.endm

.macro PRINT64 str
    .pushsection .rodata
.Lpstr\@: .asciz "\str"
    .popsection
    pushq %rsi
    movl $.Lpstr\@, %esi
    call puts64
    popq %rsi
.endm

/* FAIL32/FAIL64 "reason": print "FAIL: reason" and exit with EXIT_FAIL. */
.macro FAIL32 str
    PRINT32 "FAIL: \str\n"
    movb $EXIT_FAIL, %al
    jmp exit32
.endm

.macro FAIL64 str
    PRINT64 "FAIL: \str\n"
    movb $EXIT_FAIL, %al
    jmp exit64
.endm
#endif

#endif
