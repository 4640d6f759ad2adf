/* cpubench.elf: the CPU-bound benchmark as a multiboot payload (runs under QEMU too).
 * Reads "iters=N" from the command line (default BENCH_DEFAULT_ITERS, about 1-2 s of
 * native CPU time), enters long mode and runs bench_run64 (bench64.S): FNV-1a over a
 * 1 MiB xorshift32 buffer, N passes.  Output is deterministic:
 *   "cpubench: iters=N" / "checksum=0xXXXXXXXX" / "PASS". */
#include "payload.h"

    .text
    .code32
    .globl main32
main32:
    call mb_cmdline32
    movl $key_iters, %esi
    movl $BENCH_DEFAULT_ITERS, %eax
    call cmdline_uint32
    movl %eax, bench_iters
    PRINT32 "cpubench: iters="
    call putdec32
    PRINT32 "\n"
    movl $bench_long, %eax
    jmp enter_long_mode32

    .code64
bench_long:
    movl bench_iters(%rip), %eax
    call bench_run64
    PRINT64 "checksum=0x"
    call puthex32_64
    PRINT64 "\nPASS\n"
    movb $EXIT_PASS, %al
    jmp exit64

    .section .rodata
key_iters: .asciz "iters="

    .data
    .balign 4
bench_iters: .long 0
