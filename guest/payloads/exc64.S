/* exc64.elf: exception and interrupt delivery in long mode (sys64.S kernel).
 * Each case runs a trigger instruction in 64-bit kernel code, 64-bit user code or
 * compatibility-mode user code; the handler (through sys64's recording stubs) copies the
 * frame it finds, skips the error code, points the frame's RIP past the trigger and IRETs;
 * the code then reports SS and RSP after that IRET through int SYS_VEC_BACK.  Checked per
 * case (INT n, faults, privileged instructions at CPL 3): the vector, where the frame lies (RSP0, IST or the current stack aligned to 16),
 * the error code, RIP (faults: the instruction; traps: the next), CS, RF in the pushed
 * RFLAGS (1 for faults, SDM 17.3.1.1), RSP and SS, IF in the handler (interrupt gates clear
 * it, trap gates keep it), CR2 for #PF, and SS:RSP after the IRET.  One line per case.
 * `qemu=1` accepts QEMU TCG's two deviations from the SDM: RF = 0 pushed for faults, and
 * IDT error codes of vector * 16 + 2 in long mode (the SDM: the index field is the vector,
 * vector * 8 + 2).  So lines compare: RF is not printed and IDT error codes print decoded. */
#include "payload.h"
#include "sys64.h"

#define RF (1 << 16)
#define UNMAPPED 0x8000000000       /* PML4[1]: not present */

/* case table fields */
#define C_NAME   0
#define C_MODE   8                  /* 0 kernel 64-bit, 1 user 64-bit, 2 user compat */
#define C_TRIG   16
#define C_RESUME 24
#define C_RIP    32                 /* expected RIP in the frame */
#define C_VEC    40
#define C_HASERR 48
#define C_ERR    56
#define C_RF     64
#define C_STACK  72                 /* 0: the current stack; else the stack top */
#define C_IF     80
#define C_CR2    88                 /* 0: not checked */
#define C_BADRSP0 96                /* 1: RSP0 points at an unmapped page; else RSP0 */
#define C_SIZE   104

    .text
    .code32
    .globl main32
main32:
    PRINT32 "exc64: exception delivery in long mode\n"
    call mb_cmdline32
    movl $rf_key, %esi
    xorl %eax, %eax
    call cmdline_uint32
    movl %eax, qemu_mode
    movl $main64, %eax
    call enter_long_mode32

    .code64
main64:
    call sys64_init
    /* gates */
    movl $0x40, %edi
    xorl %esi, %esi
    movl $(GATE_INT | GATE_DPL3), %edx
    call sys64_set_gate
    movl $0x41, %edi
    movl $(GATE_TRAP | GATE_DPL3 | 1), %edx
    call sys64_set_gate
    movl $0x43, %edi
    movl $((GATE_INT | GATE_DPL3) ^ GATE_NP), %edx
    call sys64_set_gate
    movl $11, %edi                  /* #NP: trap gate on IST1 */
    movl $(GATE_TRAP | 1), %edx
    call sys64_set_gate
    movl $14, %edi                  /* #PF: interrupt gate on IST2 */
    movl $(GATE_INT | 2), %edx
    call sys64_set_gate
    movl $SYS_VEC_BACK, %edi
    movl $sys64_back, %esi
    movl $(GATE_INT | GATE_DPL3), %edx
    call sys64_set_gate
    movl $record, %eax
    movq %rax, sys64_exc_hook(%rip)

    movl $cases, %ebp
next_case:
    cmpq $0, C_NAME(%rbp)
    je all_done
    cmpq $-1, C_NAME(%rbp)          /* the sdm-only cases follow */
    jne 1f
    cmpl $0, qemu_mode(%rip)
    jne all_done
    addq $8, %rbp
    jmp next_case
1:
    movq %rbp, cur_case(%rip)
    movl $0xff, %eax
    movq %rax, sys64_exc_vec(%rip)
    movq $0, handler_flags(%rip)
    movq %cr2, %rax
    xorl %eax, %eax
    movq %rax, %cr2
    movq sys64_tss+4(%rip), %rax
    movq %rax, good_rsp0(%rip)
    movq C_BADRSP0(%rbp), %rax
    testq %rax, %rax
    je 1f
    cmpq $1, %rax
    jne 4f
    movabsq $UNMAPPED + 0x1000, %rax
4:  movq %rax, sys64_tss+4(%rip)
1:  movq C_TRIG(%rbp), %rax
    movq C_MODE(%rbp), %rcx
    testq %rcx, %rcx
    jnz 2f
    call sys64_run_kernel
    jmp 3f
2:  decl %ecx
    leaq sys64_ustack_top - 8(%rip), %rbx
    call sys64_to_user
3:  movq good_rsp0(%rip), %rax
    movq %rax, sys64_tss+4(%rip)
    call check_case
    addq $C_SIZE, %rbp
    jmp next_case
all_done:
    PRINT64 "PASS\n"
    movb $EXIT_PASS, %al
    jmp exit64

/* The exception hook: copy the frame, skip the error code, resume after the trigger. */
record:
    movq sys64_exc_rsp(%rip), %rsi
    leaq frame(%rip), %rdi
    movl $6, %ecx
1:  movq (%rsi), %rax
    movq %rax, (%rdi)
    addq $8, %rsi
    addq $8, %rdi
    loop 1b
    pushfq
    popq %rax
    movq %rax, handler_flags(%rip)
    movq %cr2, %rax
    movq %rax, seen_cr2(%rip)
    movq good_rsp0(%rip), %rax      /* the RSP0-unmapped case: usable again */
    movq %rax, sys64_tss+4(%rip)
    movq cur_case(%rip), %rax
    cmpq $0, C_HASERR(%rax)
    je 2f
    addq $8, %rsp
2:  movq C_RESUME(%rax), %rax
    movq %rax, (%rsp)
    iretq

/* check_case: RBP = case.  Prints the case's line and FAILs on a mismatch. */
check_case:
    movq C_NAME(%rbp), %rsi
    call puts64
    PRINT64 ": vector 0x"
    movq sys64_exc_vec(%rip), %rax
    call puthex8_64
    /* frame words, after the error code if there is one */
    leaq frame(%rip), %rbx
    cmpq $0, C_HASERR(%rbp)
    je 1f
    movq (%rbx), %rax
    cmpq $14, sys64_exc_vec(%rip)   /* #PF error codes are not selectors */
    je 4f
    testl $2, %eax
    jnz 2f
4:
    PRINT64 " err 0x"
    call puthex32_64
    jmp 3f
2:  PRINT64 " err idt vector 0x"
    call idt_err_vector
    call puthex8_64
    PRINT64 " ext "
    movq (%rbx), %rax
    andl $1, %eax
    addb $'0', %al
    call putc64
3:  addq $8, %rbx
1:  PRINT64 " rip 0x"
    movq 0(%rbx), %rax
    call puthex32_64
    PRINT64 " cs 0x"
    movq 8(%rbx), %rax
    call puthex32_64
    PRINT64 " rflags 0x"
    movq 16(%rbx), %rax
    andl $~RF, %eax                 /* RF is checked, not printed: QEMU TCG omits it */
    call puthex32_64
    PRINT64 " rsp 0x"
    movq 24(%rbx), %rax
    call puthex32_64
    PRINT64 " ss 0x"
    movq 32(%rbx), %rax
    call puthex32_64
    PRINT64 " frame at top-0x"
    call expected_top
    subq sys64_exc_rsp(%rip), %rax
    call puthex8_64
    PRINT64 " handler IF "
    movq handler_flags(%rip), %rax
    shrq $9, %rax
    andl $1, %eax
    addb $'0', %al
    call putc64
    cmpq $0, C_CR2(%rbp)
    je 2f
    PRINT64 " cr2 0x"
    movq seen_cr2(%rip), %rax
    shrq $32, %rax
    call puthex8_64
    movq seen_cr2(%rip), %rax
    call puthex32_64
2:  PRINT64 " after iret ss 0x"
    movq sys64_back_rax(%rip), %rax
    andl $0xffff, %eax
    call puthex32_64
    PRINT64 " rsp 0x"
    movq sys64_back_rbx(%rip), %rax
    call puthex32_64
    PRINT64 "\n"

    /* the checks */
    movq sys64_exc_vec(%rip), %rax
    cmpq C_VEC(%rbp), %rax
    je 1f
    FAIL64 "wrong vector"
1:  call expected_top
    subq $40, %rax
    cmpq $0, C_HASERR(%rbp)
    je 2f
    subq $8, %rax
    movq frame(%rip), %rcx
    movq C_ERR(%rbp), %rdx
    cmpl $0, qemu_mode(%rip)
    je 20f
    cmpq $14, C_VEC(%rbp)
    je 20f
    testl $2, %edx                  /* QEMU: vector * 16 + 2 */
    jz 20f
    movq %rdx, %rsi
    andl $7, %esi
    shrq $3, %rdx
    shlq $4, %rdx
    orq %rsi, %rdx
20: cmpq %rdx, %rcx
    je 2f
    FAIL64 "wrong error code"
2:  cmpq sys64_exc_rsp(%rip), %rax
    je 3f
    FAIL64 "frame not where the stack switch puts it"
3:  movq C_RIP(%rbp), %rax
    cmpq 0(%rbx), %rax
    je 4f
    FAIL64 "wrong RIP in the frame"
4:  call expected_cs
    cmpq 8(%rbx), %rax
    je 5f
    FAIL64 "wrong CS in the frame"
5:  cmpl $0, qemu_mode(%rip)
    jne 6f
    movq 16(%rbx), %rax
    shrq $16, %rax
    andl $1, %eax
    cmpq C_RF(%rbp), %rax
    je 6f
    FAIL64 "wrong RF in the pushed RFLAGS"
6:  call expected_ss
    cmpq 32(%rbx), %rax
    je 7f
    FAIL64 "wrong SS in the frame"
7:  cmpw sys64_back_rax(%rip), %ax
    je 8f
    FAIL64 "wrong SS after IRET"
8:  call expected_rsp
    cmpq 24(%rbx), %rax
    je 9f
    FAIL64 "wrong RSP in the frame"
9:  cmpl sys64_back_rbx(%rip), %eax
    je 10f
    FAIL64 "wrong RSP after IRET"
10: movq handler_flags(%rip), %rax
    shrq $9, %rax
    andl $1, %eax
    cmpq C_IF(%rbp), %rax
    je 11f
    FAIL64 "wrong IF in the handler"
11: movq C_CR2(%rbp), %rax
    testq %rax, %rax
    jz 12f
    cmpq seen_cr2(%rip), %rax
    je 12f
    FAIL64 "wrong CR2"
12: ret

/* idt_err_vector: RAX = an IDT error code -> RAX = the vector it names */
idt_err_vector:
    shrq $3, %rax
    cmpl $0, qemu_mode(%rip)
    je 1f
    shrq $1, %rax
1:  andl $0xff, %eax
    ret

/* the stack top the frame must be below: RAX */
expected_top:
    movq C_STACK(%rbp), %rax
    testq %rax, %rax
    jnz 1f
    movq sys64_saved_rsp(%rip), %rax
1:  andq $~0xf, %rax
    ret

expected_cs:
    movl $SYS_KCODE, %eax
    cmpq $1, C_MODE(%rbp)
    jb 1f
    movl $SYS_UCODE64, %eax
    je 1f
    movl $SYS_UCODE32, %eax
1:  ret

expected_ss:
    movl $SYS_KDATA, %eax
    cmpq $0, C_MODE(%rbp)
    je 1f
    movl $SYS_UDATA, %eax
1:  ret

expected_rsp:
    movq sys64_saved_rsp(%rip), %rax
    cmpq $0, C_MODE(%rbp)
    je 1f
    leaq sys64_ustack_top - 8(%rip), %rax
1:  ret

/* --- triggers: `insn` at t_X, resume (and, for traps, the pushed RIP) at t_X_next --- */
post64:
    movl %ss, %eax
    movq %rsp, %rbx
    int $SYS_VEC_BACK
.macro TRIG64 name, insn:vararg
t_\name:
    \insn
t_\name\()_next:
    jmp post64
.endm
    TRIG64 int40, int $0x40
    TRIG64 int41, int $0x41
    TRIG64 ud, ud2
    TRIG64 gp, int $0x42
    TRIG64 np, int $0x43
    TRIG64 pf, movabsq UNMAPPED, %rax
    TRIG64 hlt, hlt
    TRIG64 movcr, movq %cr3, %rax
    TRIG64 lidt, lidt 0
    TRIG64 invlpg, invlpg 0
    TRIG64 lgdtnc, lgdt bad_dtr(%rip)
/* non-canonical data addresses: RAX = 2^47 first */
e_nc:
    movabsq $0x0000800000000000, %rax
    jmp *nc_target(%rip)
    TRIG64 ncrsp, movq (%rsp,%rax), %rbx
    TRIG64 ncrbp, movq 8(%rbp,%rax), %rbx
    TRIG64 ncds, movq (%rax), %rbx
e_ncrsp:
    leaq t_ncrsp(%rip), %rbx
    movq %rbx, nc_target(%rip)
    jmp e_nc
e_ncrbp:
    leaq t_ncrbp(%rip), %rbx
    movq %rbx, nc_target(%rip)
    jmp e_nc
e_ncds:
    leaq t_ncds(%rip), %rbx
    movq %rbx, nc_target(%rip)
    jmp e_nc
    TRIG64 lidtnc, lidt bad_dtr(%rip)

    .code32
post32:
    movl %ss, %eax
    movl %esp, %ebx
    int $SYS_VEC_BACK
.macro TRIG32 name, insn:vararg
t_\name:
    \insn
t_\name\()_next:
    jmp post32
.endm
    TRIG32 c_int40, int $0x40
    TRIG32 c_gp, int $0x42
    TRIG32 c_ud, ud2
    TRIG32 c_pf, movl 0xc0000000, %eax
    .code64

    .data
    .balign 8
cur_case: .quad 0
frame: .skip 48
handler_flags: .quad 0
seen_cr2: .quad 0
good_rsp0: .quad 0
nc_target: .quad 0
    .balign 8
    .word 0, 0, 0
bad_dtr: .word 0xfff
    .quad 0x0000800000000000
qemu_mode: .long 0
    .section .rodata
rf_key: .asciz "qemu="
    .data

/* CASE name, mode, trigger, fault(1)/trap(0), vector, has_err, err, stack, IF, cr2, badrsp0 */
.macro CASE name, mode, trig, fault, vec, haserr, err, stack, if, cr2=0, bad=0, entry=
    .pushsection .rodata
.Lname\@: .asciz "\name"
    .popsection
    .long .Lname\@, 0
    .quad \mode
    .ifb \entry
    .long t_\trig, 0, t_\trig\()_next, 0
    .else
    .long \entry, 0, t_\trig\()_next, 0
    .endif
    .if \fault
    .long t_\trig, 0
    .else
    .long t_\trig\()_next, 0
    .endif
    .quad \vec, \haserr, \err, \fault
    .long \stack, 0
    .quad \if, \cr2, \bad
.endm
cases:
    CASE "user64 int 0x40, interrupt gate", 1, int40, 0, 0x40, 0, 0, sys64_kstack_top, 0
    CASE "user64 int 0x41, trap gate, IST1", 1, int41, 0, 0x41, 0, 0, sys64_ist1_top, 1
    CASE "user64 ud2", 1, ud, 1, 6, 0, 0, sys64_kstack_top, 0
    CASE "user64 int 0x42, DPL 0 gate", 1, gp, 1, 13, 1, 0x212, sys64_kstack_top, 0
    CASE "user64 int 0x43, gate not present", 1, np, 1, 11, 1, 0x21a, sys64_ist1_top, 1
    CASE "user64 page fault, IST2", 1, pf, 1, 14, 1, 4, sys64_ist2_top, 0, UNMAPPED
    CASE "user64 int 0x40, RSP0 unmapped", 1, int40, 1, 14, 1, 2, sys64_ist2_top, 0, UNMAPPED + 0xff8, 1
    /* SS and RSP fit below RSP0 = 0x10, RFLAGS wraps to 2^64 - 8 (not present): the #PF
     * must see the state from before the delivery began (user SS, CS, RSP). */
    CASE "user64 int 0x40, RSP0 0x10", 1, int40, 1, 14, 1, 2, sys64_ist2_top, 0, 0xfffffffffffffff8, 0x10
    /* privileged instructions at CPL 3: #GP(0), with its error code */
    CASE "user64 hlt", 1, hlt, 1, 13, 1, 0, sys64_kstack_top, 0
    CASE "user64 mov from cr3", 1, movcr, 1, 13, 1, 0, sys64_kstack_top, 0
    CASE "user64 lidt", 1, lidt, 1, 13, 1, 0, sys64_kstack_top, 0
    CASE "user64 invlpg", 1, invlpg, 1, 13, 1, 0, sys64_kstack_top, 0
    CASE "kernel int 0x40", 0, int40, 0, 0x40, 0, 0, 0, 0
    CASE "kernel int 0x41, IST1", 0, int41, 0, 0x41, 0, 0, sys64_ist1_top, 0
    CASE "kernel ud2", 0, ud, 1, 6, 0, 0, 0, 0
    CASE "kernel page fault, IST2", 0, pf, 1, 14, 1, 0, sys64_ist2_top, 0, UNMAPPED
    CASE "compat int 0x40", 2, c_int40, 0, 0x40, 0, 0, sys64_kstack_top, 0
    CASE "compat int 0x42, DPL 0 gate", 2, c_gp, 1, 13, 1, 0x212, sys64_kstack_top, 0
    CASE "compat ud2", 2, c_ud, 1, 6, 0, 0, sys64_kstack_top, 0
    CASE "compat page fault, IST2", 2, c_pf, 1, 14, 1, 5, sys64_ist2_top, 0, 0xc0000000
    CASE "kernel load from a non-canonical address", 0, ncds, 1, 13, 1, 0, 0, 0, 0, 0, e_ncds
    /* What QEMU TCG does not check (it loads the base; stack references give #GP there):
     * not run with qemu=1 */
    .quad -1
    CASE "sdm-only: kernel load (%rsp,%rax) non-canonical: #SS", 0, ncrsp, 1, 12, 1, 0, 0, 0, 0, 0, e_ncrsp
    CASE "sdm-only: kernel load 8(%rbp,%rax) non-canonical: #SS", 0, ncrbp, 1, 12, 1, 0, 0, 0, 0, 0, e_ncrbp
    /* non-canonical bases (4-level paging): #GP(0), the tables unchanged */
    CASE "sdm-only: kernel lgdt with a non-canonical base", 0, lgdtnc, 1, 13, 1, 0, 0, 0
    CASE "sdm-only: kernel lidt with a non-canonical base", 0, lidtnc, 1, 13, 1, 0, 0, 0
    .quad 0
