/* rtc64.elf: the CMOS RTC alarm interrupt wakes a halted CPU (sys64.S kernel).
 * The 8259s are remapped (master 0x20, slave 0x28) with only IRQ 2 (cascade) and IRQ 8
 * unmasked; the RTC in binary 24-hour mode gets an alarm two seconds ahead (minutes and hours
 * "don't care"), AIE set, register C cleared; then `sti; hlt` until the IRQ 8 handler has
 * read register C, which must show IRQF and AF.  Without the interrupt the CPU halts for good
 * (the harness times out). */
#include "payload.h"
#include "sys64.h"

#define CMOS_INDEX 0x70
#define CMOS_DATA  0x71

    .text
    .code32
    .globl main32
main32:
    PRINT32 "rtc64: RTC alarm interrupt\n"
    movl $main64, %eax
    call enter_long_mode32

    .code64
main64:
    call sys64_init
    movl $0x28, %edi
    movl $rtc_handler, %esi
    movl $GATE_INT, %edx
    call sys64_set_gate
    movl $0x27, %edi                /* spurious IRQ 7 / 15: ignore */
    movl $spurious, %esi
    call sys64_set_gate
    movl $0x2f, %edi
    call sys64_set_gate
    /* PIC: ICW1-4, master 0x20, slave 0x28 */
    movb $0x11, %al
    outb %al, $PORT_PIC1_CMD
    outb %al, $PORT_PIC2_CMD
    movb $0x20, %al
    outb %al, $PORT_PIC1_DATA
    movb $0x28, %al
    outb %al, $PORT_PIC2_DATA
    movb $0x04, %al
    outb %al, $PORT_PIC1_DATA
    movb $0x02, %al
    outb %al, $PORT_PIC2_DATA
    movb $0x01, %al
    outb %al, $PORT_PIC1_DATA
    outb %al, $PORT_PIC2_DATA
    movb $~(1 << 2), %al
    outb %al, $PORT_PIC1_DATA
    movb $~(1 << 0), %al
    outb %al, $PORT_PIC2_DATA
    /* RTC: binary, 24 hours, no interrupts while we set the alarm */
    movb $0x0b, %al
    movb $0x06, %ah
    call cmos_write
    movb $0x00, %al                 /* seconds */
    call cmos_read
    movzbl %al, %eax
    addl $2, %eax
    cmpl $60, %eax
    jb 1f
    subl $60, %eax
1:  movb %al, %ah
    movb $0x01, %al                 /* seconds alarm */
    call cmos_write
    movw $0xff03, %ax               /* minutes alarm: don't care */
    call cmos_write
    movw $0xff05, %ax               /* hours alarm: don't care */
    call cmos_write
    movb $0x0c, %al
    call cmos_read                  /* clear register C */
    movw $0x260b, %ax               /* B: AIE | binary | 24 hours */
    call cmos_write
    PRINT64 "alarm set 2 s ahead, halting\n"
2:  cmpl $0, taken(%rip)
    jne 3f
    sti
    hlt
    cli
    jmp 2b
3:  PRINT64 "alarm interrupt taken, register C & 0xa0 = 0x"
    movb reg_c(%rip), %al
    andb $0xa0, %al
    call puthex8_64
    PRINT64 "\n"
    movw $0x060b, %ax               /* AIE off */
    call cmos_write
    movb reg_c(%rip), %al
    andb $0xa0, %al
    cmpb $0xa0, %al
    je 4f
    FAIL64 "register C lacks IRQF or AF"
4:  PRINT64 "PASS\n"
    movb $EXIT_PASS, %al
    jmp exit64

/* cmos_write: AL = index, AH = value */
cmos_write:
    outb %al, $CMOS_INDEX
    movb %ah, %al
    outb %al, $CMOS_DATA
    ret

/* cmos_read: AL = index -> AL = value */
cmos_read:
    outb %al, $CMOS_INDEX
    inb $CMOS_DATA, %al
    ret

rtc_handler:
    pushq %rax
    movb $0x0c, %al
    call cmos_read
    movb %al, reg_c(%rip)
    movl $1, taken(%rip)
    movb $0x20, %al                 /* EOI: slave, then master */
    outb %al, $PORT_PIC2_CMD
    outb %al, $PORT_PIC1_CMD
    popq %rax
    iretq

spurious:
    iretq

    .data
taken: .long 0
reg_c: .byte 0
