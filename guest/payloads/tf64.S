/* tf64.elf: single-step (sys64.S kernel).  The #DB handler logs the pushed RIP and DR6 of
 * every trap (then writes DR6 back to its reset value, as software must).
 * 1. POPF sets TF: the first trap follows the instruction after the POPF; then one per
 *    instruction; the POPF that clears TF still traps after itself.
 * 2. MOV SS with TF: no trap after it, the next one comes after the following instruction.
 * 3. REP MOVSB with RCX = 3: a trap after each iteration (RIP at the instruction until the
 *    last).
 * 4. INT1 (ICEBP): #DB with RIP past it, DR6.BS clear.
 * Each line prints the trap RIPs as offsets from the start of the sequence and DR6.
 * `qemu=1`: skip 4 (QEMU TCG raises #UD for ICEBP); its line is "sdm-only:". */
#include "payload.h"
#include "sys64.h"

    .text
    .code32
    .globl main32
main32:
    PRINT32 "tf64: single-step traps\n"
    call mb_cmdline32
    movl $qemu_key, %esi
    xorl %eax, %eax
    call cmdline_uint32
    movl %eax, qemu_mode
    movl $main64, %eax
    call enter_long_mode32

    .code64
main64:
    call sys64_init
    movl $1, %edi
    movl $db_handler, %esi
    movl $GATE_INT, %edx
    call sys64_set_gate
    movl $0xffff0ff0, %eax
    movq %rax, %dr6

    /* 1. */
    movl $0, count(%rip)
    pushfq
    orl $0x100, (%rsp)
    pushfq
    popq %rbx                       /* TF clear copy */
seq1:
    popfq                           /* TF on */
    nop
    movl $1, %eax
    addl $2, %eax
    pushq %rbx
    popfq                           /* TF off: traps after itself */
seq1_end:
    nop
    leaq seq1(%rip), %rbx
    PRINT64 "popf/nop/mov/add/push/popf:"
    call print_log
    cmpl $5, count(%rip)
    je 1f
    FAIL64 "expected 5 single-step traps"
1:
    /* 2. */
    movl $0, count(%rip)
    pushfq
    popq %rbx
    movq %rbx, %rcx
    orl $0x100, %ecx
    movw %ss, %dx
    pushq %rcx
seq2:
    popfq                           /* TF on */
    movw %dx, %ss                   /* shadow: no trap after it */
    nop                             /* trap after this one */
    pushq %rbx
    popfq
    leaq seq2(%rip), %rbx
    PRINT64 "popf/mov ss/nop/push/popf:"
    call print_log
    cmpl $3, count(%rip)             /* after the nop, the push and the popf */
    je 2f
    FAIL64 "expected 3 traps around mov ss"
2:
    /* 3. */
    movl $0, count(%rip)
    pushfq
    popq %rbx
    movq %rbx, %rax
    orl $0x100, %eax
    leaq buf_src(%rip), %rsi
    leaq buf_dst(%rip), %rdi
    movl $3, %ecx
    pushq %rax
seq3:
    popfq
    rep movsb
    pushq %rbx
    popfq
    leaq seq3(%rip), %rbx
    PRINT64 "popf/rep movsb x3/push/popf:"
    call print_log
    cmpl $5, count(%rip)             /* 3 iterations, the push, the popf */
    je 3f
    FAIL64 "expected a trap per iteration"
3:
    /* 4. (QEMU 7.2 TCG: #UD, it builds without ICEBP) */
    cmpl $0, qemu_mode(%rip)
    jne 4f
    movl $0, count(%rip)
seq4:
    .byte 0xf1                      /* int1 / icebp */
    nop
    leaq seq4(%rip), %rbx
    PRINT64 "sdm-only: icebp:"
    call print_log
    cmpl $1, count(%rip)
    je 4f
    FAIL64 "icebp"
4:  PRINT64 "PASS\n"
    movb $EXIT_PASS, %al
    jmp exit64

/* print_log: RBX = base; " +off dr6=0x...." per trap */
print_log:
    xorl %ecx, %ecx
1:  cmpl count(%rip), %ecx
    jae 2f
    PRINT64 " +"
    leaq log_rip(%rip), %rax
    movq (%rax,%rcx,8), %rax
    subq %rbx, %rax
    call putdec64
    PRINT64 " dr6=0x"
    leaq log_dr6(%rip), %rax
    movq (%rax,%rcx,8), %rax
    call puthex32_64
    incl %ecx
    jmp 1b
2:  PRINT64 "\n"
    ret

db_handler:
    pushq %rax
    pushq %rcx
    pushq %rdx
    movl count(%rip), %ecx
    cmpl $16, %ecx
    jae 1f
    movq 24(%rsp), %rax             /* RIP */
    leaq log_rip(%rip), %rdx
    movq %rax, (%rdx,%rcx,8)
    movq %dr6, %rax
    leaq log_dr6(%rip), %rdx
    movq %rax, (%rdx,%rcx,8)
    incl count(%rip)
1:  movl $0xffff0ff0, %eax
    movq %rax, %dr6
    popq %rdx
    popq %rcx
    popq %rax
    iretq

    .data
    .balign 8
count: .long 0
log_rip: .skip 16 * 8
log_dr6: .skip 16 * 8
buf_src: .ascii "abc"
buf_dst: .skip 8
qemu_mode: .long 0
    .section .rodata
qemu_key: .asciz "qemu="
