/* sys64.S: a minimal 64-bit "kernel" for the conformance payloads (exc64, pf64, ...).
 * sys64_init (called in long mode, after enter_long_mode32) loads a GDT with kernel and user
 * segments and a 64-bit TSS (RSP0 = sys64_kstack_top, IST1/IST2 = sys64_ist1_top/ist2_top),
 * an IDT whose 256 gates (interrupt gates, DPL 0, no IST) lead to one stub per vector, masks
 * both 8259s and makes the identity map (first 1 GiB) user-accessible.  Each stub records
 * RSP at entry in sys64_exc_rsp and the vector in sys64_exc_vec, then jumps through
 * sys64_exc_hook (default: print the vector and FAIL).  Routines preserve registers except
 * their outputs. */
#include "payload.h"
#include "sys64.h"

    .text
    .code64
    .globl sys64_init
sys64_init:
    pushq %rax
    pushq %rcx
    pushq %rdx
    pushq %rdi
    lgdt sys64_gdtr(%rip)
    /* reload CS through a far return, then the data segments */
    movq %rsp, %rax
    pushq $SYS_KDATA
    pushq %rax
    pushfq
    pushq $SYS_KCODE
    leaq 1f(%rip), %rax
    pushq %rax
    iretq
1:  movw $SYS_KDATA, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %fs
    movw %ax, %gs
    /* TSS descriptor: base = sys64_tss, limit 0x67, type 9 (available 64-bit TSS), P */
    leaq sys64_tss(%rip), %rax
    movq %rax, %rdx
    andq $0xffff, %rdx
    shlq $16, %rdx
    orq $0x67, %rdx                 /* limit 15:0 | base 15:0 << 16 */
    movq %rax, %rcx
    shrq $16, %rcx
    andq $0xff, %rcx
    shlq $32, %rcx
    orq %rcx, %rdx                  /* base 23:16 */
    movq $0x89, %rcx
    shlq $40, %rcx
    orq %rcx, %rdx                  /* type 9, P */
    movq %rax, %rcx
    shrq $24, %rcx
    andq $0xff, %rcx
    shlq $56, %rcx
    orq %rcx, %rdx                  /* base 31:24 */
    movq %rdx, sys64_gdt_tss(%rip)
    movq $0, sys64_gdt_tss+8(%rip)
    leaq sys64_kstack_top(%rip), %rax
    movq %rax, sys64_tss+4(%rip)    /* RSP0 */
    leaq sys64_ist1_top(%rip), %rax
    movq %rax, sys64_tss+0x24(%rip) /* IST1 */
    leaq sys64_ist2_top(%rip), %rax
    movq %rax, sys64_tss+0x2c(%rip) /* IST2 */
    movw $0x68, sys64_tss+0x66(%rip) /* I/O map base beyond the limit: no bitmap */
    movw $SYS_TSS, %ax
    ltr %ax
    /* IDT: every vector -> its stub, interrupt gate, DPL 0 */
    xorl %edi, %edi
2:  movl $GATE_INT, %edx
    xorl %esi, %esi
    call sys64_set_gate
    incl %edi
    cmpl $256, %edi
    jne 2b
    lidt sys64_idtr(%rip)
    /* mask the 8259s: no legacy interrupt may arrive */
    movb $0xff, %al
    outb %al, $PORT_PIC1_DATA
    outb %al, $PORT_PIC2_DATA
    /* user-accessible identity map: U in PML4[0], PDPT[0..3] and the first PD */
    movq lm_pml4(%rip), %rax
    orq $4, %rax
    movq %rax, lm_pml4(%rip)
    andq $~0xfff, %rax
    movq %rax, %rdi
    movl $4, %ecx
3:  orq $4, (%rdi)
    addq $8, %rdi
    loop 3b
    movq (%rax), %rdi
    andq $~0xfff, %rdi
    movl $512, %ecx
4:  orq $4, (%rdi)
    addq $8, %rdi
    loop 4b
    movq %cr3, %rax
    movq %rax, %cr3
    popq %rdi
    popq %rdx
    popq %rcx
    popq %rax
    ret

/* sys64_set_gate: EDI = vector, RSI = handler (0: the vector's recording stub),
 * EDX = the gate's attribute word (P | DPL << 13 | type << 8 | IST). */
    .globl sys64_set_gate
sys64_set_gate:
    pushq %rax
    pushq %rcx
    pushq %rsi
    testq %rsi, %rsi
    jnz 1f
    movl %edi, %esi
    shll $5, %esi
    leaq sys64_stubs(%rip), %rax
    addq %rax, %rsi
1:  movl %edi, %ecx
    shll $4, %ecx
    leaq sys64_idt(%rip), %rax
    addq %rcx, %rax
    movw %si, 0(%rax)
    movw $SYS_KCODE, 2(%rax)
    movw %dx, 4(%rax)
    movq %rsi, %rcx
    shrq $16, %rcx
    movw %cx, 6(%rax)
    shrq $16, %rcx
    movl %ecx, 8(%rax)
    movl $0, 12(%rax)
    popq %rsi
    popq %rcx
    popq %rax
    ret

/* sys64_to_user: enter CPL 3 at RAX with RSP = RBX; ECX = 0: 64-bit code, else
 * compatibility mode.  RFLAGS = 0x202.  Records the caller's RSP (after its return address
 * is popped by sys64_back) in sys64_saved_rsp: sys64_back returns to our caller. */
    .globl sys64_to_user
sys64_to_user:
    movq %rsp, sys64_saved_rsp(%rip)
    pushq $SYS_UDATA
    pushq %rbx
    pushq $0x202
    testl %ecx, %ecx
    jnz 1f
    pushq $SYS_UCODE64
    jmp 2f
1:  pushq $SYS_UCODE32
2:  pushq %rax
    iretq

/* sys64_run_kernel: run RAX at CPL 0 with the caller's stack (minus the return address),
 * recorded in sys64_saved_rsp; sys64_back returns to our caller. */
    .globl sys64_run_kernel
sys64_run_kernel:
    movq %rsp, sys64_saved_rsp(%rip)
    jmp *%rax

/* sys64_back: the handler of SYS_VEC_BACK (DPL 3): saves RAX/RBX as the code that ran left
 * them in sys64_back_rax/rbx, switches back to the kernel stack saved by sys64_to_user or
 * sys64_run_kernel and returns to their caller. */
    .globl sys64_back
sys64_back:
    movq %rax, sys64_back_rax(%rip)
    movq %rbx, sys64_back_rbx(%rip)
    movw $SYS_KDATA, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss                   /* the ring switch left a null SS */
    movq sys64_saved_rsp(%rip), %rsp
    ret

sys64_unexpected:
    PRINT64 "FAIL: unexpected exception, vector 0x"
    movl sys64_exc_vec(%rip), %eax
    call puthex8_64
    PRINT64 " rip 0x"
    movq sys64_exc_rsp(%rip), %rax
    movq (%rax), %rax
    call puthex32_64
    PRINT64 "\n"
    movb $EXIT_FAIL, %al
    jmp exit64

/* 256 recording stubs, 32 bytes apart */
    .balign 32
sys64_stubs:
    .set vec, 0
    .rept 256
    .balign 32
    movq %rsp, sys64_exc_rsp(%rip)
    movl $vec, sys64_exc_vec(%rip)
    jmp *sys64_exc_hook(%rip)
    .set vec, vec + 1
    .endr

    .data
    .balign 8
    .globl sys64_exc_hook, sys64_exc_rsp, sys64_exc_vec, sys64_saved_rsp
    .globl sys64_back_rax, sys64_back_rbx
sys64_exc_hook: .long sys64_unexpected, 0
sys64_exc_rsp: .quad 0
sys64_exc_vec: .quad 0
sys64_saved_rsp: .quad 0
sys64_back_rax: .quad 0
sys64_back_rbx: .quad 0

    .balign 16
sys64_gdt:
    .quad 0                         /* 0x00 */
    .quad 0x00af9a000000ffff        /* 0x08 kernel code, 64-bit */
    .quad 0x00cf92000000ffff        /* 0x10 kernel data */
    .quad 0x00cffa000000ffff        /* 0x18 user code, 32-bit (compatibility mode) */
    .quad 0x00cff2000000ffff        /* 0x20 user data */
    .quad 0x00affa000000ffff        /* 0x28 user code, 64-bit */
sys64_gdt_tss:
    .quad 0, 0                      /* 0x30 TSS (built at run time) */
sys64_gdt_end:
    .balign 4
    .word 0
sys64_gdtr:
    .word sys64_gdt_end - sys64_gdt - 1
    .long sys64_gdt, 0
    .balign 4
    .word 0
sys64_idtr:
    .word 256 * 16 - 1
    .long sys64_idt, 0

    .bss
    .balign 4096
sys64_idt: .skip 256 * 16
    .balign 16
    .globl sys64_tss
sys64_tss: .skip 0x68
    .balign 16
    .skip 4096
    .globl sys64_kstack_top
sys64_kstack_top:
    .skip 4096
    .globl sys64_ist1_top
sys64_ist1_top:
    .skip 4096
    .globl sys64_ist2_top
sys64_ist2_top:
    .skip 4096
    .globl sys64_ustack_top
sys64_ustack_top:
