/* smp64.elf: application processor start-up and IPIs between CPUs (xAPIC at 0xfee00000).
 * `cpus=N` on the command line says how many CPUs the machine has (default 1).
 * 1. The BSP (long mode) copies a real-mode trampoline to AP_BASE and sends INIT, SIPI, SIPI
 *    with the all-excluding-self shorthand. Each AP starts in real mode at AP_SEG:0 (checks
 *    CS; counts itself on the page after the trampoline), switches to protected then long
 *    mode on the BSP's page tables, enables its APIC, records its APIC ID and atomically
 *    counts itself. The BSP waits (with a timeout) for N - 1 APs and prints the sorted APIC
 *    IDs, which must be distinct.
 * 2. Each AP again, by its APIC ID (physical destination): INIT (to a CPU running long-mode
 *    code), SIPI, SIPI; it must come back through the trampoline and report the same ID.
 * 3. Fixed IPIs: the BSP sends vector 0x40 to each AP by ID (waiting for each answer); each
 *    AP's handler counts it (per APIC ID) and answers with vector 0x50 to the BSP, whose
 *    handler counts those. Then vector 0x41 to all excluding self: every AP counts it once.
 * Only the BSP prints. Every wait has a timeout (TSC), so a lost IPI fails instead of hanging. */
#include "payload.h"

#define APIC        0xfee00000
#define APIC_ID     0x20
#define APIC_EOI    0xb0
#define APIC_SVR    0xf0
#define APIC_ICRL   0x300
#define APIC_ICRH   0x310
#define ICR_BUSY    (1 << 12)
#define ICR_INIT    0x0000c500      /* INIT, level-triggered, assert */
#define ICR_SIPI    0x00000600      /* STARTUP | vector */
#define SH_OTHERS   (3 << 18)

#define AP_BASE     0x10000         /* free in quokka's and QEMU's low memory */
#define AP_SEG      (AP_BASE >> 4)
#define AP_VECTOR   (AP_BASE >> 12)
/* The trampoline's counters, on the page after its code (no data on code pages): */
#define AP_DATA     (AP_BASE + 0x1000)
#define TRAMP_SEEN  0                   /* real-mode entries */
#define TRAMP_BAD_CS 4                  /* entries with CS != AP_SEG */
#define MAX_STARTS  64              /* AP entries through the trampoline (stacks, ID slots) */
#define MAX_ID      256

#define VEC_TO_AP   0x40
#define VEC_ALL     0x41
#define VEC_TO_BSP  0x50
#define VEC_SPUR    0xff

#define TIMEOUT_TSC 5000000000      /* 5 s at quokka's 1 GHz TSC (seconds on others) */

    .text
    .code32
    .globl main32
main32:
    PRINT32 "smp64: INIT/SIPI to the APs, IPIs between CPUs\n"
    call mb_cmdline32
    movl $cpus_key, %esi
    movl $1, %eax
    call cmdline_uint32
    movl %eax, ncpus
    movl $main64, %eax
    call enter_long_mode32

    .code64
main64:
    leaq id_seen(%rip), %r13        /* R13: id_seen throughout */
    call setup_idt
    movl $APIC, %ebx
    movl $0x100 | VEC_SPUR, APIC_SVR(%rbx)
    movl APIC_ID(%rbx), %eax
    shrl $24, %eax
    movl %eax, bsp_id(%rip)
    movl ncpus(%rip), %eax
    testl %eax, %eax
    jz 1f
    cmpl $MAX_STARTS / 2, %eax
    jbe 2f
1:  FAIL64 "cpus= must be 1..32"
2:  decl %eax
    movl %eax, naps(%rip)
    /* The trampoline goes below 1 MiB, with the GDTR it loads (this CPU's: entry32's GDT). */
    leaq tramp_start(%rip), %rsi
    movl $AP_BASE, %edi
    movl $tramp_end - tramp_start, %ecx
    rep movsb
    sgdt AP_BASE + (tramp_gdtr - tramp_start)
    movq $0, AP_DATA                /* low memory may hold the firmware's leftovers */
    movb $0xff, %al                 /* mask the 8259s: only IPIs may interrupt */
    outb %al, $PORT_PIC1_DATA
    outb %al, $PORT_PIC2_DATA
    sti

    /* 1. INIT, SIPI, SIPI to all excluding self. */
    movl $SH_OTHERS | ICR_INIT, %eax
    call send_ipi
    movl $10000000, %edi            /* 10 ms at 1 GHz (SDM 9.4.4.1) */
    call delay
    movl $SH_OTHERS | ICR_SIPI | AP_VECTOR, %eax
    call send_ipi
    movl $200000, %edi
    call delay
    movl $SH_OTHERS | ICR_SIPI | AP_VECTOR, %eax
    call send_ipi
    leaq ap_count(%rip), %rdi
    movl naps(%rip), %esi
    call wait_count
    jnc 3f
    FAIL64 "not every AP started (timeout)"
3:  PRINT64 "cpus: "
    movl ncpus(%rip), %eax
    call putdec64
    PRINT64 "\n"
    call check_trampoline
    call collect_ids
    PRINT64 "apic ids:"
    xorl %ecx, %ecx
4:  cmpb $0, (%r13,%rcx)
    je 5f
    PRINT64 " "
    movl %ecx, %eax
    call putdec64
5:  incl %ecx
    cmpl $MAX_ID, %ecx
    jb 4b
    PRINT64 "\n"

    /* 2. INIT, SIPI, SIPI to each AP by ID. */
    PRINT64 "restarted by id:"
    xorl %ecx, %ecx
6:  cmpb $0, (%r13,%rcx)
    je 8f
    cmpl bsp_id(%rip), %ecx
    je 8f
    movl ap_count(%rip), %r12d      /* the AP's report goes to this slot */
    movl %ecx, %edx
    movl $ICR_INIT, %eax
    call send_ipi_to
    movl $10000000, %edi
    call delay
    movl $ICR_SIPI | AP_VECTOR, %eax
    call send_ipi_to
    movl $200000, %edi
    call delay
    movl $ICR_SIPI | AP_VECTOR, %eax
    call send_ipi_to
    leaq ap_count(%rip), %rdi
    leal 1(%r12), %esi
    call wait_count
    jnc 7f
    FAIL64 "an AP did not restart after INIT/SIPI by ID"
7:  leaq ap_ids(%rip), %rax
    cmpl (%rax,%r12,4), %ecx
    je 9f
    FAIL64 "another CPU answered the INIT/SIPI by ID"
9:  PRINT64 " "
    movl %ecx, %eax
    call putdec64
8:  incl %ecx
    cmpl $MAX_ID, %ecx
    jb 6b
    PRINT64 "\n"
    call check_trampoline

    /* 3. Fixed IPIs: to each AP by ID, which answers the BSP; one at a time, since IPIs of
     * one vector that arrive while it is pending merge into one (one IRR bit). Then to all
     * but self. */
    xorl %ecx, %ecx
    xorl %esi, %esi                 /* IPIs sent so far */
10: cmpb $0, (%r13,%rcx)
    je 11f
    cmpl bsp_id(%rip), %ecx
    je 11f
    movl %ecx, %edx
    movl $VEC_TO_AP, %eax
    call send_ipi_to
    incl %esi
    leaq bsp_ipis(%rip), %rdi
    call wait_count
    jnc 11f
    FAIL64 "IPI from the BSP to an AP, or its answer, missing (timeout)"
11: incl %ecx
    cmpl $MAX_ID, %ecx
    jb 10b
    movl $SH_OTHERS | VEC_ALL, %eax
    call send_ipi
    leaq ap_bcasts(%rip), %rdi
    movl naps(%rip), %esi
    call wait_count
    jnc 14f
    FAIL64 "IPI to all excluding self missing (timeout)"
14: /* exactly one per AP (none lost, none doubled, none to the BSP) */
    xorl %ecx, %ecx
15: cmpb $0, (%r13,%rcx)
    je 17f
    xorl %eax, %eax
    cmpl bsp_id(%rip), %ecx
    je 16f
    movl $0x0101, %eax
16: leaq ipi_by_id(%rip), %rdx
    cmpw %ax, (%rdx,%rcx,2)
    je 17f
    FAIL64 "a CPU did not get exactly one IPI of each kind"
17: incl %ecx
    cmpl $MAX_ID, %ecx
    jb 15b
    movl $2000000, %edi             /* a late extra IPI would show now */
    call delay
    movl naps(%rip), %eax
    cmpl %eax, bsp_ipis(%rip)
    jne 18f
    cmpl %eax, ap_ipis(%rip)
    jne 18f
    cmpl %eax, ap_bcasts(%rip)
    je 19f
18: FAIL64 "extra IPIs"
19: PRINT64 "ipis: bsp->ap "
    movl ap_ipis(%rip), %eax
    call putdec64
    PRINT64 ", ap->bsp "
    movl bsp_ipis(%rip), %eax
    call putdec64
    PRINT64 ", all-but-self "
    movl ap_bcasts(%rip), %eax
    call putdec64
    PRINT64 "\nsmp64: OK\nPASS\n"
    movb $EXIT_PASS, %al
    jmp exit64

/* send_ipi: EAX = ICR low (destination shorthand, no destination). send_ipi_to: EDX = APIC
 * ID (physical). Wait for the delivery status to read idle first, as the SDM asks. */
send_ipi_to:
    pushq %rdx
    pushq %rsi
    movl $APIC, %esi
    shll $24, %edx
    call icr_idle
    movl %edx, APIC_ICRH(%rsi)
    movl %eax, APIC_ICRL(%rsi)
    popq %rsi
    popq %rdx
    ret
send_ipi:
    pushq %rsi
    movl $APIC, %esi
    call icr_idle
    movl %eax, APIC_ICRL(%rsi)
    popq %rsi
    ret
/* icr_idle: RSI = APIC base */
icr_idle:
    testl $ICR_BUSY, APIC_ICRL(%rsi)
    jz 1f
    pause
    jmp icr_idle
1:  ret

/* delay: EDI = TSC cycles. */
delay:
    pushq %rax
    pushq %rcx
    pushq %rdx
    rdtsc
    shlq $32, %rdx
    orq %rax, %rdx
    movq %rdx, %rcx
1:  pause
    rdtsc
    shlq $32, %rdx
    orq %rax, %rdx
    subq %rcx, %rdx
    cmpq %rdi, %rdx
    jb 1b
    popq %rdx
    popq %rcx
    popq %rax
    ret

/* wait_count: until the 32-bit counter at RDI reaches ESI; CF set on timeout. */
wait_count:
    pushq %rax
    pushq %rcx
    pushq %rdx
    rdtsc
    shlq $32, %rdx
    orq %rax, %rdx
    movq %rdx, %rcx
1:  cmpl %esi, (%rdi)
    jae 2f
    pause
    rdtsc
    shlq $32, %rdx
    orq %rax, %rdx
    subq %rcx, %rdx
    movabsq $TIMEOUT_TSC, %rax
    cmpq %rax, %rdx
    jb 1b
    popq %rdx
    popq %rcx
    popq %rax
    stc
    ret
2:  popq %rdx
    popq %rcx
    popq %rax
    clc
    ret

/* Every AP entered the trampoline once per start, in real mode at AP_SEG:0. */
check_trampoline:
    movl AP_DATA + TRAMP_BAD_CS, %eax
    testl %eax, %eax
    jz 1f
    FAIL64 "an AP started with CS other than the SIPI vector << 8"
1:  movl AP_DATA + TRAMP_SEEN, %eax
    cmpl ap_count(%rip), %eax
    je 2f
    PRINT64 "FAIL: trampoline entries "
    call putdec64
    PRINT64 " and AP reports "
    movl ap_count(%rip), %eax
    call putdec64
    PRINT64 " differ\n"
    movb $EXIT_FAIL, %al
    jmp exit64
2:  ret

/* id_seen[id] = 1 for the BSP and every AP that reported; distinct IDs. */
collect_ids:
    movl bsp_id(%rip), %eax
    movb $1, (%r13,%rax)
    xorl %ecx, %ecx
1:  cmpl naps(%rip), %ecx
    jae 3f
    leaq ap_ids(%rip), %rax
    movl (%rax,%rcx,4), %eax
    cmpl $MAX_ID, %eax
    jae 2f
    cmpb $0, (%r13,%rax)
    jne 2f
    movb $1, (%r13,%rax)
    incl %ecx
    jmp 1b
2:  FAIL64 "APIC IDs are not distinct"
3:  ret

/* IDT: every vector fails loudly but the ones used here. */
setup_idt:
    xorl %edi, %edi
1:  movl %edi, %esi
    shll $4, %esi
    leaq unexpected_stubs(%rip), %rax
    addq %rax, %rsi
    call set_gate
    incl %edi
    cmpl $256, %edi
    jb 1b
    movl $VEC_TO_AP, %edi
    leaq to_ap_handler(%rip), %rsi
    call set_gate
    movl $VEC_ALL, %edi
    leaq all_handler(%rip), %rsi
    call set_gate
    movl $VEC_TO_BSP, %edi
    leaq to_bsp_handler(%rip), %rsi
    call set_gate
    movl $VEC_SPUR, %edi
    leaq spurious_handler(%rip), %rsi
    call set_gate
    lidt idtr(%rip)
    ret

/* set_gate: EDI = vector, RSI = handler: 64-bit interrupt gate through SEL_CODE64. */
set_gate:
    pushq %rax
    pushq %rdx
    movl %edi, %edx
    shll $4, %edx
    leaq idt(%rip), %rax
    addq %rax, %rdx
    movw %si, (%rdx)
    movw $SEL_CODE64, 2(%rdx)
    movw $0x8e00, 4(%rdx)
    movq %rsi, %rax
    shrq $16, %rax
    movw %ax, 6(%rdx)
    shrq $16, %rax
    movl %eax, 8(%rdx)
    movl $0, 12(%rdx)
    popq %rdx
    popq %rax
    ret

/* This CPU's APIC ID in EAX. */
own_id:
    movl $APIC, %eax
    movl APIC_ID(%rax), %eax
    shrl $24, %eax
    ret

/* End of interrupt; preserves registers. */
eoi:
    pushq %rax
    movl $APIC, %eax
    movl $0, APIC_EOI(%rax)
    popq %rax
    ret

to_ap_handler:
    pushq %rax
    pushq %rdx
    call own_id
    leaq ipi_by_id(%rip), %rdx
    lock incb (%rdx,%rax,2)
    lock incl ap_ipis(%rip)
    call eoi
    movl bsp_id(%rip), %edx         /* answer: an IPI to the BSP */
    movl $VEC_TO_BSP, %eax
    call send_ipi_to
    popq %rdx
    popq %rax
    iretq

all_handler:
    pushq %rax
    pushq %rdx
    call own_id
    leaq ipi_by_id + 1(%rip), %rdx
    lock incb (%rdx,%rax,2)
    lock incl ap_bcasts(%rip)
    call eoi
    popq %rdx
    popq %rax
    iretq

to_bsp_handler:
    lock incl bsp_ipis(%rip)
    call eoi
    iretq

spurious_handler:
    iretq                           /* no EOI for the spurious vector */

/* One 16-byte stub per vector: push it, then report it (and the APIC ID of the CPU). */
    .balign 16
unexpected_stubs:
    .set vec, 0
    .rept 256
    .balign 16
    pushq $vec
    jmp unexpected
    .set vec, vec + 1
    .endr
unexpected:
    PRINT64 "FAIL: unexpected vector 0x"
    popq %rax
    call puthex8_64
    PRINT64 " on APIC ID "
    call own_id
    call putdec64
    PRINT64 "\n"
    movb $EXIT_FAIL, %al
    jmp exit64

/* --- AP start-up ------------------------------------------------------------------------ */

/* Copied to AP_BASE; runs in real mode at AP_SEG:0 (position-independent: DS = CS). */
    .code16
tramp_start:
    cli
    cld
    movw %cs, %ax
    movw %ax, %ds
    lock incl AP_DATA - AP_BASE + TRAMP_SEEN
    cmpw $AP_SEG, %ax
    je 1f
    lock incl AP_DATA - AP_BASE + TRAMP_BAD_CS
1:  lgdtl tramp_gdtr - tramp_start
    movl %cr0, %eax
    orl $1, %eax                    /* CR0.PE */
    movl %eax, %cr0
    ljmpl $SEL_CODE32, $ap_entry32
    .balign 4
tramp_gdtr: .skip 10                /* SGDT of the BSP (64-bit form; LGDTL reads 6 bytes) */
tramp_end:

    .code32
ap_entry32:
    movw $SEL_DATA32, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %fs
    movw %ax, %gs
    movw %ax, %ss
    movl $1, %eax
    lock xaddl %eax, ap_next        /* this start's stack */
    cmpl $MAX_STARTS, %eax
    jae ap_dead
    incl %eax
    shll $12, %eax
    addl $ap_stacks, %eax
    movl %eax, %esp
    /* long mode on the BSP's identity map (lib32.S's enter_long_mode32 built it) */
    movl %cr4, %eax
    orl $(1 << 5), %eax             /* PAE */
    movl %eax, %cr4
    movl $lm_pml4, %eax
    movl %eax, %cr3
    movl $0xc0000080, %ecx          /* IA32_EFER.LME */
    rdmsr
    orl $(1 << 8), %eax
    wrmsr
    movl %cr0, %eax
    orl $0x80000001, %eax
    movl %eax, %cr0
    ljmp $SEL_CODE64, $ap_entry64
ap_dead:
    cli
    hlt
    jmp ap_dead

    .code64
ap_entry64:
    movl %esp, %esp
    lidt idtr(%rip)
    movl $APIC, %eax
    movl $0x100 | VEC_SPUR, APIC_SVR(%rax)
    call own_id
    movl $1, %ecx
    lock xaddl %ecx, ap_slot(%rip)
    cmpl $MAX_STARTS, %ecx
    jae 1f
    leaq ap_ids(%rip), %rdx
    movl %eax, (%rdx,%rcx,4)        /* the ID first, then the count the BSP waits on */
    lock incl ap_count(%rip)
1:  sti
2:  hlt                             /* IPIs arrive here; INIT ends it */
    jmp 2b

    .section .rodata
cpus_key: .asciz "cpus="

    .data
    .balign 4096                    /* no data on code pages: CPUs write these concurrently */
idtr:
    .word 256 * 16 - 1
    .long idt, 0
    .balign 4
ncpus: .long 0
naps: .long 0
bsp_id: .long 0
ap_next: .long 0                    /* stacks handed out */
ap_slot: .long 0                    /* ap_ids slots handed out */
ap_count: .long 0                   /* AP reports (after their slot is written) */
ap_ids: .fill MAX_STARTS, 4, 0
ap_ipis: .long 0
ap_bcasts: .long 0
bsp_ipis: .long 0
ipi_by_id: .fill MAX_ID, 2, 0       /* per APIC ID: [0] VEC_TO_AP, [1] VEC_ALL */
id_seen: .fill MAX_ID, 1, 0

    .bss
    .balign 4096
idt: .skip 256 * 16
ap_stacks: .skip (MAX_STARTS + 1) * 4096
