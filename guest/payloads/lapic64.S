/* lapic64.elf: local APIC interrupt acceptance (sys64.S kernel, xAPIC MMIO at 0xfee00000).
 * 1. With IF clear, two self-IPIs (vectors 0x50 and 0x70, ICR shorthand self) become
 *    pending; `sti; nop; cli` opens a one-instruction window: both must be taken there,
 *    the higher vector first (the handlers EOI and IRET; IRET leaves no shadow, so the
 *    second is taken before the CLI).  Prints the order and where each was taken.
 * 2. An NMI through the ICR (delivery mode NMI, physical destination = own APIC ID) with IF
 *    clear: taken at once (vector 2), before the next instruction completes a few later. */
#include "payload.h"
#include "sys64.h"

#define APIC      0xfee00000
#define APIC_ID   0x20
#define APIC_EOI  0xb0
#define APIC_SVR  0xf0
#define APIC_TPR  0x80
#define APIC_ICRL 0x300
#define APIC_ICRH 0x310

    .text
    .code32
    .globl main32
main32:
    PRINT32 "lapic64: IPIs to self, NMI through the ICR\n"
    movl $main64, %eax
    call enter_long_mode32

    .code64
main64:
    call sys64_init
    movl $0x50, %edi
    movl $handler50, %esi
    movl $GATE_INT, %edx
    call sys64_set_gate
    movl $0x70, %edi
    movl $handler70, %esi
    call sys64_set_gate
    movl $2, %edi
    movl $nmi_handler, %esi
    call sys64_set_gate
    movl $APIC, %ebx
    movl $0x1ff, APIC_SVR(%rbx)     /* software enable, spurious vector 0xff */
    movl $0, APIC_TPR(%rbx)

    /* 1. two pending self-IPIs, one-instruction window */
    cli
    movl $0x40050, APIC_ICRL(%rbx)  /* fixed, shorthand self, vector 0x50 */
    movl $0x40070, APIC_ICRL(%rbx)
    movl $0, count(%rip)
    sti
window:
    nop
window_end:
    cli
    PRINT64 "taken in the window:"
    xorl %ecx, %ecx
1:  cmpl count(%rip), %ecx
    jae 2f
    PRINT64 " 0x"
    leaq log(%rip), %rax
    movq (%rax,%rcx,8), %rax
    call puthex8_64
    PRINT64 " at "
    leaq where(%rip), %rax
    movq (%rax,%rcx,8), %rax
    leaq window(%rip), %rdx
    cmpq %rdx, %rax
    jne 3f
    PRINT64 "nop"
    jmp 4f
3:  leaq window_end(%rip), %rdx
    cmpq %rdx, %rax
    jne 5f
    PRINT64 "cli"
    jmp 4f
5:  PRINT64 "elsewhere"
4:  incl %ecx
    jmp 1b
2:  PRINT64 "\n"
    cmpl $2, count(%rip)
    je 6f
    FAIL64 "both pending interrupts must be taken in the window"
6:  cmpq $0x70, log(%rip)
    je 7f
    FAIL64 "the higher vector must come first"
7:  leaq window_end(%rip), %rax
    cmpq %rax, where(%rip)
    jne 8f
    cmpq %rax, where + 8(%rip)
    je 9f
8:  FAIL64 "interrupts not taken after the nop"
9:
    /* 2. NMI through the ICR with IF clear */
    movl APIC_ID(%rbx), %eax        /* destination: own APIC ID (bits 31:24) */
    movl %eax, APIC_ICRH(%rbx)
    movl $0, nmi_count(%rip)
    movl $0x400, APIC_ICRL(%rbx)    /* delivery mode NMI, physical, no shorthand */
    nop
    nop
    nop
    PRINT64 "nmi taken: "
    movl nmi_count(%rip), %eax
    call putdec64
    PRINT64 "\n"
    cmpl $1, nmi_count(%rip)
    je 10f
    FAIL64 "NMI through the ICR not taken"
10: PRINT64 "PASS\n"
    movb $EXIT_PASS, %al
    jmp exit64

handler50:
    pushq %rax
    movl $0x50, %eax
    jmp handler
handler70:
    pushq %rax
    movl $0x70, %eax
handler:
    pushq %rcx
    pushq %rdx
    movl count(%rip), %ecx
    cmpl $4, %ecx
    jae 1f
    leaq log(%rip), %rdx
    movq %rax, (%rdx,%rcx,8)
    movq 24(%rsp), %rax             /* the interrupted RIP */
    leaq where(%rip), %rdx
    movq %rax, (%rdx,%rcx,8)
    incl count(%rip)
1:  movl $APIC + APIC_EOI, %eax
    movl $0, (%rax)
    popq %rdx
    popq %rcx
    popq %rax
    iretq

nmi_handler:
    incl nmi_count(%rip)
    iretq

    .data
    .balign 8
count: .long 0
nmi_count: .long 0
log: .quad 0, 0, 0, 0
where: .quad 0, 0, 0, 0
