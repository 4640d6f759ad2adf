/* 64-bit long-mode helpers: COM1 output, debug-exit and command-line parsing.
 * Assembled twice: into ELF32 objects for the multiboot payloads that switch to long
 * mode themselves (gas accepts .code64 there; every address is below 2 GiB, so 32-bit
 * absolute relocations suffice) and into an ELF64 object for long64.elf.
 * Routines preserve all registers except their outputs. */
#include "payload.h"

    .text
    .code64

/* Same programming as serial_init32, for entry points that start in long mode. */
    .globl serial_init64
serial_init64:
    pushq %rax
    pushq %rdx
    movw $COM1_IER, %dx
    xorb %al, %al
    outb %al, %dx
    movw $COM1_LCR, %dx
    movb $0x80, %al
    outb %al, %dx
    movw $COM1_DLL, %dx
    movb $1, %al
    outb %al, %dx
    movw $COM1_DLM, %dx
    xorb %al, %al
    outb %al, %dx
    movw $COM1_LCR, %dx
    movb $0x03, %al
    outb %al, %dx
    movw $COM1_FCR, %dx
    xorb %al, %al
    outb %al, %dx
    movw $COM1_MCR, %dx
    movb $0x03, %al
    outb %al, %dx
    popq %rdx
    popq %rax
    ret

/* putc64: AL = character */
    .globl putc64
putc64:
    pushq %rax
    pushq %rdx
    movb %al, %ah
    movw $COM1_LSR, %dx
1:  inb %dx, %al
    testb $LSR_THRE, %al
    jz 1b
    movb %ah, %al
    movw $COM1_THR, %dx
    outb %al, %dx
    popq %rdx
    popq %rax
    ret

/* puts64: RSI = NUL-terminated string */
    .globl puts64
puts64:
    pushq %rax
    pushq %rsi
1:  lodsb
    testb %al, %al
    jz 2f
    call putc64
    jmp 1b
2:  popq %rsi
    popq %rax
    ret

/* putsn64: RSI = string, RCX = maximum length (stops at NUL too) */
    .globl putsn64
putsn64:
    pushq %rax
    pushq %rcx
    pushq %rsi
    testq %rcx, %rcx
    jz 2f
1:  lodsb
    testb %al, %al
    jz 2f
    call putc64
    decq %rcx
    jnz 1b
2:  popq %rsi
    popq %rcx
    popq %rax
    ret

/* puthex32_64: EAX as 8 hex digits */
    .globl puthex32_64
puthex32_64:
    pushq %rax
    pushq %rcx
    pushq %rdx
    pushq %rbx
    leaq hexdigits64(%rip), %rbx    /* RIP-relative: works in ELF32 and ELF64 objects */
    movl %eax, %edx
    movl $8, %ecx
1:  roll $4, %edx
    movl %edx, %eax
    andl $0xf, %eax
    movb (%rbx,%rax), %al
    call putc64
    decl %ecx
    jnz 1b
    popq %rbx
    popq %rdx
    popq %rcx
    popq %rax
    ret

/* puthex8_64: AL as 2 hex digits */
    .globl puthex8_64
puthex8_64:
    pushq %rax
    pushq %rbx
    pushq %rdx
    leaq hexdigits64(%rip), %rdx
    movzbl %al, %ebx
    shrl $4, %eax
    andl $0xf, %eax
    movb (%rdx,%rax), %al
    call putc64
    andl $0xf, %ebx
    movb (%rdx,%rbx), %al
    call putc64
    popq %rdx
    popq %rbx
    popq %rax
    ret

/* putdec64: RAX as unsigned decimal */
    .globl putdec64
putdec64:
    pushq %rax
    pushq %rcx
    pushq %rdx
    pushq %rbx
    movl $10, %ebx
    xorl %ecx, %ecx
1:  xorl %edx, %edx
    divq %rbx
    pushq %rdx
    incl %ecx
    testq %rax, %rax
    jnz 1b
2:  popq %rax
    addb $'0', %al
    call putc64
    decl %ecx
    jnz 2b
    popq %rbx
    popq %rdx
    popq %rcx
    popq %rax
    ret

/* exit64: AL = debug-exit value.  Never returns. */
    .globl exit64
exit64:
    outb %al, $PORT_DEBUG_EXIT
    cli
    movl $exit_failed_msg64, %esi
    call puts64
1:  hlt
    jmp 1b

/* cmdline_uint64: like cmdline_uint32.  RSI = key ("iters="), RDI = command line
 * (may be 0), RAX = default -> RAX = value. */
    .globl cmdline_uint64
cmdline_uint64:
    pushq %rbx
    pushq %rcx
    pushq %rdx
    pushq %rdi
    testq %rdi, %rdi
    jz .Lc64_done
    movb $' ', %dl
.Lc64_scan:
    movb (%rdi), %cl
    testb %cl, %cl
    jz .Lc64_done
    cmpb $' ', %dl
    jne .Lc64_next
    xorl %ebx, %ebx
.Lc64_cmp:
    movb (%rsi,%rbx), %ch
    testb %ch, %ch
    jz .Lc64_found
    cmpb (%rdi,%rbx), %ch
    jne .Lc64_next
    incl %ebx
    jmp .Lc64_cmp
.Lc64_next:
    movb %cl, %dl
    incq %rdi
    jmp .Lc64_scan
.Lc64_found:
    addq %rbx, %rdi
    movzbl (%rdi), %ecx
    subl $'0', %ecx
    cmpl $9, %ecx
    ja .Lc64_done
    xorl %eax, %eax
1:  movzbl (%rdi), %ecx
    subl $'0', %ecx
    cmpl $9, %ecx
    ja .Lc64_done
    imulq $10, %rax, %rax
    addq %rcx, %rax
    incq %rdi
    jmp 1b
.Lc64_done:
    popq %rdi
    popq %rdx
    popq %rcx
    popq %rbx
    ret

    .section .rodata
hexdigits64: .ascii "0123456789abcdef"
exit_failed_msg64: .asciz "FAIL: debug-exit port did not stop the machine\n"
