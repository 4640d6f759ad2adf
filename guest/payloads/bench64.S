/* The deterministic CPU benchmark kernel shared by long64.elf and cpubench.elf (64-bit
 * code; assembled as ELF32 for cpubench and as ELF64 for long64, like lib64.S). */
#include "payload.h"

    .text
    .code64

/* bench_run64: the CPU benchmark.  EAX = iterations -> EAX = checksum.
 * Fills bench_buf (1 MiB) with little-endian dwords of xorshift32 (13, 17, 5) seeded
 * with BENCH_SEED, then runs 32-bit FNV-1a over the whole buffer EAX times, carrying the
 * hash from one pass into the next (iters = 0 gives the FNV offset basis 0x811c9dc5).
 * tests/e2e/test_payloads.py recomputes the same value in Python. */
    .globl bench_run64
bench_run64:
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %r8
    movl %eax, %r8d
    /* generate */
    movl $BENCH_SEED, %eax
    movl $bench_buf, %edi
    movl $(BENCH_BUF_SIZE / 4), %ecx
1:  movl %eax, %edx
    shll $13, %edx
    xorl %edx, %eax
    movl %eax, %edx
    shrl $17, %edx
    xorl %edx, %eax
    movl %eax, %edx
    shll $5, %edx
    xorl %edx, %eax
    movl %eax, (%rdi)
    addq $4, %rdi
    decl %ecx
    jnz 1b
    /* hash */
    movl $0x811c9dc5, %eax
    testl %r8d, %r8d
    jz 4f
2:  movl $bench_buf, %esi
    movl $BENCH_BUF_SIZE, %ecx
3:  movzbl (%rsi), %edx
    xorl %edx, %eax
    imull $0x01000193, %eax, %eax
    incq %rsi
    decl %ecx
    jnz 3b
    decl %r8d
    jnz 2b
4:  popq %r8
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    ret

    .bss
    .balign 4096
bench_buf: .skip BENCH_BUF_SIZE
