/* dr64.elf: hardware breakpoints in DR0-DR3/DR7 (sys64.S kernel). The #DB handler logs the
 * pushed RIP and DR6 of every #DB, writes DR6 back to its reset value and sets RF in the
 * pushed RFLAGS (as software must after an instruction breakpoint, SDM 17.3.1.1).
 * 1. An execution breakpoint (DR0, R/W=00) on a routine called twice: a fault before the
 *    instruction each time (RIP at it, B0); RF lets it run once, and is cleared after it.
 * 2. A write breakpoint (DR1, R/W=01, 4 bytes): a trap after the store into it (RIP past
 *    it, B1); a store beside it and a load from it do not trap.
 * 3. A read/write breakpoint (DR2, R/W=11, 8 bytes): a trap after a load and after a byte
 *    store into its last byte (B2); a store just past it does not trap.
 * 4. DR7 cleared: nothing traps any more.
 * Each line prints the #DB RIPs as offsets from the start of the sequence and DR6. */
#include "payload.h"
#include "sys64.h"

    .text
    .code32
    .globl main32
main32:
    PRINT32 "dr64: hardware breakpoints\n"
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
    leaq routine_bp(%rip), %rax
    movq %rax, %dr0
    movl $0x401, %eax               /* L0, R/W0=00, LEN0=00 */
    movq %rax, %dr7
    xorl %esi, %esi
seq1:
    call routine
    call routine
    movl $0x400, %eax
    movq %rax, %dr7
    leaq seq1(%rip), %rbx
    PRINT64 "exec bp x2 (offsets from seq1):"
    call print_log
    cmpl $2, count(%rip)
    jne 9f
    cmpl $2, %esi                   /* the instruction ran once per call */
    je 1f
9:  FAIL64 "expected 2 execution breakpoint faults"
1:
    /* 2. */
    movl $0, count(%rip)
    leaq wvar(%rip), %rax
    movq %rax, %dr1
    movl $0x00d00404, %eax          /* L1, R/W1=01, LEN1=11 */
    movq %rax, %dr7
seq2:
    movl $5, wvar+4(%rip)           /* beside it */
    movl $7, wvar(%rip)             /* trap after this */
    nop
    movl wvar(%rip), %eax           /* a load: no trap */
    movl $0x400, %eax
    movq %rax, %dr7
    leaq seq2(%rip), %rbx
    PRINT64 "write bp:"
    call print_log
    cmpl $1, count(%rip)
    je 2f
    FAIL64 "expected 1 write breakpoint trap"
2:
    /* 3. */
    movl $0, count(%rip)
    leaq rwvar(%rip), %rax
    movq %rax, %dr2
    movl $0x0b000410, %eax          /* L2, R/W2=11, LEN2=10 (8 bytes) */
    movq %rax, %dr7
seq3:
    movq rwvar(%rip), %rax          /* trap after this */
    nop
    movb %al, rwvar+7(%rip)         /* trap after this */
    movb %al, rwvar+8(%rip)         /* past it */
    movl $0x400, %eax
    movq %rax, %dr7
    leaq seq3(%rip), %rbx
    PRINT64 "read/write bp:"
    call print_log
    cmpl $2, count(%rip)
    je 3f
    FAIL64 "expected 2 read/write breakpoint traps"
3:
    /* 4. */
    movl $0, count(%rip)
    call routine
    movl $1, wvar(%rip)
    movq rwvar(%rip), %rax
    cmpl $0, count(%rip)
    je 4f
    FAIL64 "a disabled breakpoint trapped"
4:  PRINT64 "disabled: none\n"
    PRINT64 "PASS\n"
    movb $EXIT_PASS, %al
    jmp exit64

routine:
    nop
routine_bp:
    incl %esi
    ret

/* print_log: RBX = base; " +off dr6=0x...." per #DB */
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
    orl $0x10000, 40(%rsp)          /* RFLAGS.RF: resume past an instruction breakpoint */
    popq %rdx
    popq %rcx
    popq %rax
    iretq

    .data
    .balign 8
count: .long 0
    .balign 8
log_rip: .skip 16 * 8
log_dr6: .skip 16 * 8
    .balign 8
wvar: .quad 0
rwvar: .quad 0
    .quad 0
