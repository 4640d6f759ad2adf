/* irq.elf: interrupt injection through the 8259 PIC.
 *
 * 1. IDT with a stub for every vector; exceptions and unexpected vectors FAIL.
 * 2. PIC: ICW1-4 remap master to 0x20-0x27 and slave to 0x28-0x2f, mask all but IRQ4.
 * 3. COM1: IER.THRE (bit 1) + MCR.OUT2 (bit 3, gates the IRQ line on a PC).  The
 *    transmitter is idle, so the UART raises IRQ4 at once; `sti; hlt` waits for it.
 *    The handler reads IIR (expect low nibble 0x2: THR empty), disables IER, EOIs.
 *    Prints "irq 4 taken".
 * 4. PIT channel 0, mode 2, divisor 1193 (~1 kHz); unmask IRQ0 only and count 10
 *    ticks with hlt.  Prints "pit ticks ok".
 * If an interrupt never arrives the payload halts forever: the harness times out.
 *
 * "iret=0" on the command line makes the IRQ handlers finish without IRET: they reset
 * the stack and jump back to the wait loop (the interrupted code is always that loop's
 * HLT, so nothing is lost).  This still tests interrupt injection on hosts whose KVM
 * cannot emulate a protected-mode IRET (e.g. kvm_pvm, which emulates non-PVM guests
 * instruction by instruction and fails with "emulation failure" on INT/IRET). */
#include "payload.h"

#define VEC_PIC1 0x20
#define VEC_PIC2 0x28
#define PIT_DIVISOR 1193                /* 1193182 Hz / 1193 ~= 1000 Hz */
#define PIT_TICKS 10

    .text
    .code32
    .globl main32
main32:
    PRINT32 "irq: PIC, UART and PIT interrupts\n"
    call mb_cmdline32
    movl $key_iret, %esi
    movl $1, %eax
    call cmdline_uint32
    movl %eax, use_iret
    testl %eax, %eax
    jnz 1f
    PRINT32 "handlers return without iret\n"
1:

    /* IDT: 256 interrupt gates (type 0xE, DPL 0), selector SEL_CODE32 */
    movl $idt, %edi
    movl $isr_stubs, %edx
    movl $256, %ecx
1:  movl %edx, %eax
    andl $0xffff, %eax
    orl $(SEL_CODE32 << 16), %eax
    movl %eax, 0(%edi)              /* offset 15:0, selector */
    movl %edx, %eax
    andl $0xffff0000, %eax
    orl $0x8e00, %eax
    movl %eax, 4(%edi)              /* P, DPL 0, 32-bit interrupt gate, offset 31:16 */
    addl $8, %edi
    addl $16, %edx                  /* stubs are 16 bytes apart */
    loop 1b
    lidt idtr

    /* PIC: ICW1 (edge, cascade, ICW4), ICW2 (vector base), ICW3 (cascade on IRQ2),
     * ICW4 (8086 mode), then OCW1 masks.  Port 0x80 writes give the classic I/O delay. */
    movb $0x11, %al
    outb %al, $PORT_PIC1_CMD
    outb %al, $PORT_POST
    outb %al, $PORT_PIC2_CMD
    outb %al, $PORT_POST
    movb $VEC_PIC1, %al
    outb %al, $PORT_PIC1_DATA
    outb %al, $PORT_POST
    movb $VEC_PIC2, %al
    outb %al, $PORT_PIC2_DATA
    outb %al, $PORT_POST
    movb $0x04, %al
    outb %al, $PORT_PIC1_DATA
    outb %al, $PORT_POST
    movb $0x02, %al
    outb %al, $PORT_PIC2_DATA
    outb %al, $PORT_POST
    movb $0x01, %al
    outb %al, $PORT_PIC1_DATA
    outb %al, $PORT_POST
    outb %al, $PORT_PIC2_DATA
    outb %al, $PORT_POST
    movb $0xff, %al
    outb %al, $PORT_PIC2_DATA       /* slave: all masked */
    movb $~(1 << 4), %al
    outb %al, $PORT_PIC1_DATA       /* master: only IRQ4 (COM1) */
    inb $PORT_PIC1_DATA, %al
    cmpb $~(1 << 4), %al
    je 1f
    FAIL32 "PIC IMR did not read back"
1:  PRINT32 "pic remapped to 0x20/0x28\n"

    /* UART THRE interrupt */
    movw $COM1_MCR, %dx
    movb $0x0b, %al                 /* DTR | RTS | OUT2 */
    outb %al, %dx
    movl $uart_wait, resume_eip
    movl %esp, resume_esp
    movw $COM1_IER, %dx
    movb $0x02, %al                 /* THR-empty interrupt */
    outb %al, %dx
uart_wait:
2:  cmpl $0, uart_irqs
    jne 3f
    sti                             /* the STI shadow covers the HLT: no lost wakeup */
    hlt
    cli
    jmp 2b
3:  PRINT32 "irq 4 taken, iir=0x"
    movb uart_iir, %al
    call puthex8_32
    PRINT32 "\n"
    movb uart_iir, %al
    andb $0x0f, %al
    cmpb $0x02, %al
    je 1f
    FAIL32 "IIR low nibble is not 0x2 (THR empty)"
1:
    /* PIT: channel 0, lobyte/hibyte, mode 2 (rate generator), binary */
    movb $0x34, %al
    outb %al, $PORT_PIT_CMD
    movb $(PIT_DIVISOR & 0xff), %al
    outb %al, $PORT_PIT_CH0
    movb $(PIT_DIVISOR >> 8), %al
    outb %al, $PORT_PIT_CH0
    movl $pit_wait, resume_eip
    movl %esp, resume_esp
    movb $~(1 << 0), %al
    outb %al, $PORT_PIC1_DATA       /* master: only IRQ0 */
pit_wait:
2:  cmpl $PIT_TICKS, pit_ticks
    jae 3f
    sti
    hlt
    cli
    jmp 2b
3:  movb $0xff, %al
    outb %al, $PORT_PIC1_DATA       /* mask everything again */
    PRINT32 "pit ticks ok\n"
    PRINT32 "PASS\n"
    movb $EXIT_PASS, %al
    jmp exit32

/* One 16-byte stub per vector: push the vector number, go to the common handler. */
    .balign 16
isr_stubs:
    vec = 0
    .rept 256
    .balign 16
    pushl $vec
    jmp isr_common
    vec = vec + 1
    .endr

isr_common:
    pushal
    movl 32(%esp), %eax             /* the vector pushed by the stub */
    cmpl $32, %eax
    jb isr_exception
    cmpl $VEC_PIC1, %eax
    je isr_pit
    cmpl $(VEC_PIC1 + 4), %eax
    je isr_uart
    cmpl $(VEC_PIC1 + 7), %eax
    je isr_done                     /* spurious master IRQ7: no EOI */
    cmpl $(VEC_PIC2 + 7), %eax
    je isr_spurious_slave
    jmp isr_unexpected

isr_pit:
    incl pit_ticks
    jmp isr_eoi

isr_uart:
    movw $COM1_IIR, %dx
    inb %dx, %al                    /* reading IIR acknowledges the THRE source */
    movb %al, uart_iir
    movw $COM1_IER, %dx
    xorb %al, %al
    outb %al, %dx                   /* no more UART interrupts */
    incl uart_irqs
isr_eoi:
    movb $0x20, %al                 /* non-specific EOI */
    outb %al, $PORT_PIC1_CMD
isr_done:
    cmpl $0, use_iret
    je 1f
    popal
    addl $4, %esp                   /* drop the vector */
    iret
1:  movl resume_esp, %esp           /* "iret=0": abandon the frame, back to the loop */
    jmp *resume_eip

isr_spurious_slave:                 /* the master saw a real IRQ2: EOI it only */
    movb $0x20, %al
    outb %al, $PORT_PIC1_CMD
    jmp isr_done

isr_exception:
    PRINT32 "FAIL: exception vector 0x"
    call puthex8_32
    PRINT32 "\n"
    movb $EXIT_FAIL, %al
    jmp exit32

isr_unexpected:
    PRINT32 "FAIL: unexpected interrupt vector 0x"
    call puthex8_32
    PRINT32 "\n"
    movb $EXIT_FAIL, %al
    jmp exit32

    .section .rodata
key_iret: .asciz "iret="
    .balign 4
    .word 0
idtr:
    .word 256 * 8 - 1
    .long idt

    .data
    .balign 4
uart_irqs: .long 0
uart_iir:  .long 0
pit_ticks: .long 0
use_iret:  .long 1
resume_eip: .long 0
resume_esp: .long 0

    .bss
    .balign 8
idt: .skip 256 * 8
