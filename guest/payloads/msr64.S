/* msr64.elf: the CPU model (sys64.S kernel).  Prints the CPUID vendor, family/model/stepping
 * and whether MCE/MCA are advertised, then RDMSR of a list of MSRs: each either reads or
 * raises #GP(0), as the model's vendor defines them (Intel: the machine-check registers
 * with MCA, no AMD C001_00xxh performance counters, nothing at unknown indexes).  A few
 * values are printed (APIC base, PAT), writes with reserved bits must #GP.  One line per MSR.
 * `qemu=1`: QEMU TCG reads unknown MSRs as 0 instead of #GP; those checks are skipped and
 * print as "sdm-only: ..." lines elsewhere (the test leaves them out of the comparison). */
#include "payload.h"
#include "sys64.h"

    .text
    .code32
    .globl main32
main32:
    PRINT32 "msr64: CPU model and MSRs\n"
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
    movl $record_gp, %eax
    movq %rax, sys64_exc_hook(%rip)
    xorl %eax, %eax
    cpuid
    movl %ebx, vendor(%rip)
    movl %edx, vendor + 4(%rip)
    movl %ecx, vendor + 8(%rip)
    PRINT64 "vendor "
    leaq vendor(%rip), %rsi
    call puts64
    movl $1, %eax
    cpuid
    movl %edx, %ebx
    PRINT64 " mce "
    movl %ebx, %eax
    shrl $7, %eax
    andl $1, %eax
    addb $'0', %al
    call putc64
    PRINT64 " mca "
    movl %ebx, %eax
    shrl $14, %eax
    andl $1, %eax
    addb $'0', %al
    call putc64
    PRINT64 "\n"
    /* Intel: the model must be Intel for the list below */
    cmpl $0x756e6547, vendor(%rip)   /* "Genu" */
    je 1f
    FAIL64 "this payload checks an Intel-vendor model"
1:  leaq msr_list(%rip), %rbp
2:  movl (%rbp), %ecx
    cmpl $0xffffffff, %ecx
    je 3f
    cmpl $0, 4(%rbp)
    jne 10f
    cmpl $0, qemu_mode(%rip)        /* QEMU TCG reads unknown MSRs as 0: not checked there */
    jne 6f
    PRINT64 "sdm-only: "
10: call try_rdmsr
    PRINT64 "rdmsr 0x"
    movl (%rbp), %eax
    call puthex32_64
    cmpq $0, faulted(%rip)
    je 4f
    PRINT64 ": #GP"
    jmp 5f
4:  PRINT64 ": ok"
    cmpl $0, 8(%rbp)
    je 5f
    PRINT64 " value 0x"
    movq value(%rip), %rax
    shrq $32, %rax
    call puthex32_64
    movq value(%rip), %rax
    call puthex32_64
5:  PRINT64 "\n"
    movl 4(%rbp), %eax              /* 1: must read; 0: must #GP */
    xorl $1, %eax
    cmpl faulted(%rip), %eax
    je 6f
    FAIL64 "wrong RDMSR outcome"
6:  addq $12, %rbp
    jmp 2b
3:  /* WRMSR with reserved bits: QEMU TCG accepts them (sdm-only) */
    cmpl $0, qemu_mode(%rip)
    jne 9f
    movl $0xc0000080, %ecx          /* EFER bit 1 is reserved */
    rdmsr
    orl $2, %eax
    call try_wrmsr
    PRINT64 "sdm-only: wrmsr EFER with bit 1: "
    call put_outcome
    cmpq $1, faulted(%rip)
    je 7f
    FAIL64 "EFER reserved bit accepted"
7:  movl $0x277, %ecx               /* PAT entry type 2 is reserved */
    movl $0x00070402, %eax
    movl $0x00070406, %edx
    call try_wrmsr
    PRINT64 "sdm-only: wrmsr PAT with memory type 2: "
    call put_outcome
    cmpq $1, faulted(%rip)
    je 8f
    FAIL64 "PAT reserved type accepted"
8:  movl $0xc0000100, %ecx          /* FS base: non-canonical */
    movl $0, %eax
    movl $0x00008000, %edx
    call try_wrmsr
    PRINT64 "sdm-only: wrmsr FS_BASE non-canonical: "
    call put_outcome
    cmpq $1, faulted(%rip)
    je 9f
    FAIL64 "non-canonical FS base accepted"
9:  /* VERW / VERR (Linux runs VERW on every return to user mode on Intel models) */
    movw $SYS_KDATA, %ax
    xorl %ecx, %ecx
    verw %ax
    setz %cl
    movw $SYS_KCODE, %ax
    verw %ax
    setz %ch
    verr %ax
    setz %dl
    movw $0xfff8, %ax               /* beyond the GDT */
    verr %ax
    setz %dh
    PRINT64 "verw data "
    movzbl %cl, %eax
    call putdec64
    PRINT64 " verw code "
    movzbl %ch, %eax
    call putdec64
    PRINT64 " verr code "
    movzbl %dl, %eax
    call putdec64
    PRINT64 " verr beyond the GDT "
    movzbl %dh, %eax
    call putdec64
    PRINT64 "\n"
    cmpw $0x0001, %cx
    jne 11f
    cmpw $0x0001, %dx
    je 12f
11: FAIL64 "VERR/VERW"
12: PRINT64 "PASS\n"
    movb $EXIT_PASS, %al
    jmp exit64

put_outcome:
    cmpq $0, faulted(%rip)
    je 1f
    PRINT64 "#GP\n"
    ret
1:  PRINT64 "ok\n"
    ret

/* try_rdmsr: ECX -> value, faulted */
try_rdmsr:
    movq $0, faulted(%rip)
    leaq 1f(%rip), %rax
    movq %rax, resume(%rip)
    rdmsr
    shlq $32, %rdx
    movl %eax, %eax
    orq %rdx, %rax
    movq %rax, value(%rip)
1:  ret

/* try_wrmsr: ECX, EDX:EAX -> faulted */
try_wrmsr:
    movq $0, faulted(%rip)
    leaq 1f(%rip), %rax
    movq %rax, resume(%rip)
    movl %eax, %eax
    wrmsr
1:  ret

record_gp:
    cmpq $13, sys64_exc_vec(%rip)
    je 1f
    FAIL64 "unexpected exception"
1:  addq $8, %rsp
    movq $1, faulted(%rip)
    movq resume(%rip), %rax
    movq %rax, (%rsp)
    iretq

    .data
    .balign 8
faulted: .quad 0
value: .quad 0
resume: .quad 0
vendor: .skip 16
qemu_mode: .long 0
    .section .rodata
qemu_key: .asciz "qemu="

    .section .rodata
    .balign 4
/* index, 1 = exists / 0 = #GP, 1 = print the value */
msr_list:
    .long 0x0000001b, 1, 1          /* IA32_APIC_BASE */
    .long 0x00000010, 1, 0          /* IA32_TIME_STAMP_COUNTER */
    .long 0x0000008b, 1, 0          /* IA32_BIOS_SIGN_ID */
    .long 0x00000174, 1, 0          /* IA32_SYSENTER_CS */
    .long 0x00000179, 1, 0          /* IA32_MCG_CAP */
    .long 0x0000017a, 1, 0          /* IA32_MCG_STATUS */
    .long 0x000001a0, 1, 0          /* IA32_MISC_ENABLE */
    .long 0x00000277, 1, 1          /* IA32_PAT */
    .long 0xc0000080, 1, 0          /* EFER */
    .long 0xc0000081, 1, 0          /* STAR */
    .long 0xc0000102, 1, 0          /* KERNEL_GS_BASE */
    .long 0xc0000103, 1, 0          /* TSC_AUX */
    .long 0xc0010000, 0, 0          /* AMD PERF_CTL0: not on Intel */
    .long 0xc0010004, 0, 0          /* AMD PERF_CTR0 */
    .long 0x40000000, 0, 0          /* Hyper-V guest OS ID: no Hyper-V interface */
    .long 0x12345678, 0, 0          /* nothing */
    .long 0xffffffff
