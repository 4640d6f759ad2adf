/* long64.elf: plain ELF64 payload for quokka's ELF64 loader (no multiboot header, so
 * QEMU cannot boot it).  Entered in 64-bit long mode with the first 4 GiB identity
 * mapped, RSP valid, RDI = command line, RSI/RDX = initrd address/size.
 * Prints:
 *   "64-bit entry ok"                  (after checking EFER.LMA and 64-bit arithmetic)
 *   "cmdline: <string>"
 *   "initrd: size=N bytes=<first 16 bytes hex>"  or "initrd: none"
 *   "cpu vendor: <CPUID.0 vendor>"     (checked printable)
 *   "iters=N checksum=0xXXXXXXXX"      (bench64.S, "iters=N" on the command line)
 *   "PASS" */
#include "payload.h"

#define MSR_EFER 0xc0000080
#define EFER_LMA (1 << 10)

    .text
    .code64
    .globl _start
_start:
    cli
    cld
    movq %rdi, boot_cmdline(%rip)   /* save the loader's arguments first */
    movq %rsi, boot_initrd(%rip)
    movq %rdx, boot_initrd_size(%rip)
    movq %rsp, boot_rsp(%rip)
    leaq stack_top64(%rip), %rsp    /* our own stack: the loader's may be small */
    call serial_init64

    movl $MSR_EFER, %ecx
    rdmsr
    testl $EFER_LMA, %eax
    jnz 1f
    FAIL64 "EFER.LMA clear at entry"
1:  movabsq $0x123456789abcdef0, %rax  /* only a 64-bit CPU gets this right */
    rolq $32, %rax
    movabsq $0x9abcdef012345678, %rdx
    cmpq %rdx, %rax
    je 1f
    FAIL64 "64-bit rotate gave the wrong result"
1:  movq boot_rsp(%rip), %rax
    testq %rax, %rax
    jnz 1f
    FAIL64 "RSP was 0 at entry"
1:  PRINT64 "64-bit entry ok\n"

    /* command line */
    movq boot_cmdline(%rip), %rsi
    testq %rsi, %rsi
    jnz 1f
    PRINT64 "cmdline: none\n"
    jmp 2f
1:  PRINT64 "cmdline: "
    movl $256, %ecx
    call putsn64
    PRINT64 "\n"
2:
    /* initrd */
    movq boot_initrd_size(%rip), %rcx
    testq %rcx, %rcx
    jnz 1f
    PRINT64 "initrd: none\n"
    jmp 3f
1:  PRINT64 "initrd: size="
    movq %rcx, %rax
    call putdec64
    PRINT64 " bytes="
    cmpq $16, %rcx
    jbe 1f
    movl $16, %ecx
1:  movq boot_initrd(%rip), %rsi
2:  lodsb
    call puthex8_64
    decq %rcx
    jnz 2b
    PRINT64 "\n"
3:
    /* CPUID vendor: EBX, EDX, ECX spell 12 printable ASCII characters */
    xorl %eax, %eax
    cpuid
    movl %ebx, vendor(%rip)
    movl %edx, vendor+4(%rip)
    movl %ecx, vendor+8(%rip)
    movb $0, vendor+12(%rip)
    leaq vendor(%rip), %rsi
    movl $12, %ecx
1:  lodsb
    cmpb $0x20, %al
    jb 2f
    cmpb $0x7e, %al
    ja 2f
    decl %ecx
    jnz 1b
    jmp 3f
2:  FAIL64 "CPUID vendor string is not printable"
3:  PRINT64 "cpu vendor: "
    leaq vendor(%rip), %rsi
    call puts64
    PRINT64 "\n"

    /* benchmark */
    movq boot_cmdline(%rip), %rdi
    movl $key_iters, %esi
    movl $BENCH_DEFAULT_ITERS, %eax
    call cmdline_uint64
    PRINT64 "iters="
    call putdec64
    call bench_run64
    PRINT64 " checksum=0x"
    call puthex32_64
    PRINT64 "\nPASS\n"
    movb $EXIT_PASS, %al
    jmp exit64

    .section .rodata
key_iters: .asciz "iters="

    .data
    .balign 8
boot_cmdline:     .quad 0
boot_initrd:      .quad 0
boot_initrd_size: .quad 0
boot_rsp:         .quad 0
vendor:           .skip 16

    .bss
    .balign 16
    .skip 16384
stack_top64:
