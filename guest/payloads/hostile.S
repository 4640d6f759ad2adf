/* hostile.elf: a guest that tries to hurt its VMM. The command line picks the case
 * ("case=N") and how often it repeats ("iters=N"); each case ends with "PASS" when the
 * VMM survived it and answered as the architecture says. The e2e tests watch the VMM's
 * memory (RSS) while these run.
 *   case=1  code outside RAM: jump to an address no RAM or device backs (fetches read
 *           0xff bytes, FF FF is #UD), take the #UD, jump there again, iters times.
 *   case=2  every port 0-0xffff read as byte, word and dword (the last ones wrapping past
 *           0xffff), and written with 0 except where that would end the run (debug exit,
 *           i8042/ACPI reset, COM1/COM2, PCI config), iters rounds.
 *   case=3  string I/O with huge counts: 16 MiB of INSB from an unbacked port (reads 0xff),
 *           8 Mi OUTSW to port 0x80, INSD across the end of RAM (--mem 256M), iters rounds.
 *   case=4  CR3 outside RAM: paging on with the page directory in unbacked memory. Every
 *           walk reads 0xff bytes; the CPU must end in a triple fault (exit status 3).
 *   case=5  a self-referencing page directory (PDE 1 points at the directory itself):
 *           reads and a write through the recursive mapping, iters times.
 *   case=6  code in MMIO (the LAPIC page, the IOAPIC page, the PCI hole): #UD each time,
 *           iters rounds.
 *   case=7  interrupt controller and timer abuse: PIT channel 0 at its fastest, the LAPIC
 *           timer periodic with count 1, all PIC lines open, then garbage in every LAPIC
 *           register (not the ICR), every IOAPIC redirection entry, and PIC init words;
 *           interrupts must arrive and the guest keep running, iters busy-loop steps.
 *   case=8  MMIO hammering, iters rounds: reads of every byte offset as byte, word and dword
 *           (unaligned and page-crossing ones too) over the LAPIC page, the IOAPIC page and
 *           each virtio-pci device's BARs (BAR 4: common, ISR, device and notify regions;
 *           BAR 1: MSI-X table and PBA); random writes of every size to the ISR, device
 *           config, doorbells and MSI-X table (MSI-X stays disabled, the device never
 *           live), and random IOAPIC register indexes and values (redirection entries
 *           masked and fixed-delivery, so no INIT or NMI reaches the vCPU). Then the
 *           known values must read back: IOAPIC version 0x00170011, each device's vendor
 *           0x1af4, device status 0 and num_queues 1-16. The devices come from the command line (--disk,
 *           --rng...): every 1af4 device on bus 0 gets BAR 4 at 0xc0000000 + slot * 64 KiB
 *           and BAR 1 at 0xc1000000 + slot * 4 KiB. */
#include "payload.h"

#define NOWHERE 0x40000000          /* above the RAM the tests give (256M), below MMIO */
#define LAPIC_BASE 0xfee00000
#define IOAPIC_BASE 0xfec00000
#define PCI_HOLE 0xc0000000
#define RAM_END_256M 0x10000000
#define UNBACKED_PORT 0x1234

    .text
    .code32
    .globl main32
main32:
    call mb_cmdline32
    movl $key_iters, %esi
    movl $1000, %eax
    call cmdline_uint32
    movl %eax, iters
    movl $key_case, %esi
    xorl %eax, %eax
    call cmdline_uint32
    movl %eax, hcase
    call idt_init
    PRINT32 "hostile: case="
    movl hcase, %eax
    call putdec32
    PRINT32 " iters="
    movl iters, %eax
    call putdec32
    PRINT32 "\n"
    movl hcase, %eax
    cmpl $1, %eax
    je case_ud_outside_ram
    cmpl $2, %eax
    je case_ports
    cmpl $3, %eax
    je case_string_io
    cmpl $4, %eax
    je case_cr3_outside_ram
    cmpl $5, %eax
    je case_recursive_pd
    cmpl $6, %eax
    je case_code_in_mmio
    cmpl $7, %eax
    je case_irq_abuse
    cmpl $8, %eax
    je case_mmio_hammer
    FAIL32 "unknown case"

pass:
    PRINT32 "PASS\n"
    movb $EXIT_PASS, %al
    jmp exit32

/* IDT: exceptions -> unexpected (prints the vector, fails); #UD -> ud_handler; vectors
 * 32-255 (PIC, LAPIC, IOAPIC) -> irq_handler. */
idt_init:
    movl $idt, %edi
    xorl %ecx, %ecx
1:  leal stubs(,%ecx,8), %edx
    cmpl $32, %ecx
    jb 3f
    movl $irq_handler, %edx
3:  cmpl $6, %ecx
    jne 2f
    movl $ud_handler, %edx
2:  movl %edx, %eax
    andl $0xffff, %eax
    orl $(SEL_CODE32 << 16), %eax
    movl %eax, 0(%edi)
    movl %edx, %eax
    andl $0xffff0000, %eax
    orl $0x8e00, %eax
    movl %eax, 4(%edi)
    addl $8, %edi
    incl %ecx
    cmpl $256, %ecx
    jne 1b
    lidt idtr
    ret

/* Any interrupt: count it, EOI everywhere it may have come from, return. */
irq_handler:
    pushl %eax
    incl irq_count
    movb $0x20, %al
    outb %al, $PORT_PIC2_CMD
    outb %al, $PORT_PIC1_CMD
    movl $0, LAPIC_BASE + 0xb0
    popl %eax
    iret

/* Vector stubs, 8 bytes each: a call whose return address tells the vector. */
    .balign 8
stubs:
.rept 32
    .balign 8
    call unexpected
.endr
unexpected:
    PRINT32 "FAIL: unexpected exception vector "
    popl %eax
    subl $(stubs + 5), %eax
    shrl $3, %eax
    call putdec32
    PRINT32 "\n"
    movb $EXIT_FAIL, %al
    jmp exit32

/* #UD: the case's handler, if any (without IRET: the payload also runs where IRET cannot
 * be emulated). */
ud_handler:
    movl ud_next, %eax
    testl %eax, %eax
    jz stubs + 6 * 8
    jmp *%eax

/* case 1 */
case_ud_outside_ram:
    movl $ud_outside_again, ud_next
ud_outside_again:
    movl $stack_top, %esp           /* drop the #UD frame */
    decl iters
    js 1f
    movl $NOWHERE, %eax
    jmp *%eax
1:  movl $0, ud_next
    PRINT32 "ud outside ram ok\n"
    jmp pass


/* case 2: every port, every size. */
case_ports:
    movl iters, %eax
    movl %eax, rounds
.Lports_round:
    xorl %edx, %edx
.Lports_next:
    inb %dx, %al
    inw %dx, %ax
    inl %dx, %eax
    call port_writable
    jc 1f
    xorl %eax, %eax
    outb %al, %dx
    outw %ax, %dx
    outl %eax, %dx
1:  incl %edx
    cmpl $0x10000, %edx
    jne .Lports_next
    decl rounds
    jnz .Lports_round
    PRINT32 "ports ok\n"
    jmp pass

/* CF set when a dword write at port DX would touch a port whose write ends the run or
 * garbles the output: [lo, hi] pairs in skip_ports. */
port_writable:
    pushl %esi
    movl $skip_ports, %esi
1:  movl (%esi), %eax
    cmpl $-1, %eax
    je 3f
    leal 3(%edx), %ecx
    cmpl %eax, %ecx                 /* port + 3 < lo: below the range */
    jb 2f
    cmpl 4(%esi), %edx              /* port > hi: above it */
    ja 2f
    popl %esi
    stc
    ret
2:  addl $8, %esi
    jmp 1b
3:  popl %esi
    clc
    ret

/* case 3: string I/O with huge counts. */
case_string_io:
    cld
.Lstr_round:
    movl $UNBACKED_PORT, %edx
    movl $0x1000000, %edi
    movl $0x1000000, %ecx
    rep insb
    cmpb $0xff, 0x1ffffff
    je 1f
    FAIL32 "INSB from an unbacked port did not read 0xff"
1:  movl $PORT_POST, %edx
    movl $0x100000, %esi
    movl $0x800000, %ecx
    rep outsw
    movl $UNBACKED_PORT, %edx
    movl $RAM_END_256M - 0x4000, %edi
    movl $0x10000, %ecx             /* 256 KiB: 16 KiB in RAM, the rest beyond it */
    rep insl
    cmpl $0xffffffff, RAM_END_256M - 4
    je 1f
    FAIL32 "INSD up to the end of RAM did not store 0xffffffff"
1:  testl %ecx, %ecx
    jz 1f
    FAIL32 "INSD across the end of RAM stopped early"
1:  decl iters
    jnz .Lstr_round
    PRINT32 "string io ok\n"
    jmp pass

/* case 4: the page directory outside RAM. Nothing after the MOV to CR0 can run. */
case_cr3_outside_ram:
    PRINT32 "paging with cr3 outside ram\n"
    movl $NOWHERE, %eax
    movl %eax, %cr3
    movl %cr0, %eax
    orl $0x80000000, %eax
    movl %eax, %cr0
    FAIL32 "ran on with a page directory outside RAM"

/* case 5: recursive page directory. pd[0] -> pt0 (identity 0-4 MiB), pd[1] -> pd itself:
 * linear 0x400000 + 0x1000 * k shows the table pd[k] points at, so 0x401000 is pd. */
case_recursive_pd:
    movl $pt0, %edi
    movl $3, %eax
1:  movl %eax, (%edi)
    addl $4, %edi
    addl $0x1000, %eax
    cmpl $0x400003, %eax
    jne 1b
    movl $pt0 + 3, pd
    movl $pd + 3, pd + 4
    movl $pd, %eax
    movl %eax, %cr3
    movl %cr0, %eax
    orl $0x80000000, %eax
    movl %eax, %cr0
.Lrec_round:
    movl 0x401000, %eax             /* pd[0] read through the self mapping */
    andl $~0x60, %eax               /* without the accessed and dirty bits the CPU sets */
    cmpl $pt0 + 3, %eax
    je 1f
    PRINT32 "read 0x"
    call puthex32
    PRINT32 " expected 0x"
    movl $pt0 + 3, %eax
    call puthex32
    PRINT32 "\n"
    FAIL32 "pd[0] through the recursive mapping is wrong"
1:  movl 0x401004, %eax             /* pd[1]: the self reference itself */
    andl $~0x60, %eax
    cmpl $pd + 3, %eax
    je 1f
    FAIL32 "pd[1] through the recursive mapping is wrong"
1:  movl $pt0 + 3, 0x401008         /* write pd[2] through it: 0x800000 aliases 0-4 MiB */
    movl %cr3, %eax
    movl %eax, %cr3
    movl $0x5a5a1234, marker
    movl marker + 0x800000, %eax
    cmpl $0x5a5a1234, %eax
    je 1f
    FAIL32 "the alias made through the recursive mapping does not work"
1:  movl $0, 0x401008               /* and take it away again */
    movl %cr3, %eax
    movl %eax, %cr3
    decl iters
    jnz .Lrec_round
    movl %cr0, %eax
    andl $0x7fffffff, %eax
    movl %eax, %cr0
    PRINT32 "recursive page directory ok\n"
    jmp pass

/* case 6: code in MMIO pages. */
case_code_in_mmio:
    movl $mmio_again, ud_next
    movl $0, rounds
mmio_again:
    movl $stack_top, %esp
    movl rounds, %eax
    incl rounds
    xorl %edx, %edx
    movl $3, %ecx
    divl %ecx                       /* edx = round mod 3: which MMIO page */
    movl iters, %eax
    imull $3, %eax
    cmpl rounds, %eax
    jb 1f
    movl mmio_targets(,%edx,4), %eax
    jmp *%eax
1:  movl $0, ud_next
    PRINT32 "code in mmio ok\n"
    jmp pass

/* case 7: interrupt controllers and timers abused. */
case_irq_abuse:
    call pic_init_open
    movb $0x34, %al                 /* PIT ch0: lobyte/hibyte, mode 2 */
    outb %al, $PORT_PIT_CMD
    movb $1, %al                    /* count 1: not even valid for mode 2 */
    outb %al, $PORT_PIT_CH0
    xorb %al, %al
    outb %al, $PORT_PIT_CH0
    movl $0x1ff, LAPIC_BASE + 0xf0  /* software enable, spurious vector 0xff */
    movl $0xb, LAPIC_BASE + 0x3e0   /* divide by 1 */
    movl $0x20040, LAPIC_BASE + 0x320 /* periodic, vector 0x40 */
    movl $1, LAPIC_BASE + 0x380     /* initial count 1 */
    call busy_with_interrupts
    cmpl $0, irq_count
    jne 1f
    FAIL32 "no interrupt arrived during the storm"
1:  PRINT32 "interrupt storm ok\n"
    /* garbage everywhere (interrupts off while writing) */
    movl $LAPIC_BASE, %edi
1:  cmpl $LAPIC_BASE + 0x300, %edi  /* not the ICR: that would send IPIs (INIT) */
    je 2f
    cmpl $LAPIC_BASE + 0x310, %edi
    je 2f
    movl $0xffffffff, (%edi)
    movl (%edi), %eax
2:  addl $0x10, %edi
    cmpl $LAPIC_BASE + 0x1000, %edi
    jne 1b
    xorl %ecx, %ecx
1:  movl %ecx, IOAPIC_BASE          /* every register index, the redirection table too */
    movl $0xffffffff, IOAPIC_BASE + 0x10
    movl IOAPIC_BASE + 0x10, %eax
    incl %ecx
    cmpl $256, %ecx
    jne 1b
    movb $0xff, %al                 /* an ICW1 with every bit set, then junk words */
    outb %al, $PORT_PIC1_CMD
    outb %al, $PORT_PIC1_DATA
    outb %al, $PORT_PIC1_DATA
    outb %al, $PORT_PIC2_CMD
    outb %al, $PORT_PIC2_DATA
    /* working again after a proper set-up */
    call pic_init_open
    movl $0x1ff, LAPIC_BASE + 0xf0
    movl $0, LAPIC_BASE + 0x80      /* TPR 0 */
    movl $0x20041, LAPIC_BASE + 0x320
    movl $1, LAPIC_BASE + 0x380
    movl $0, irq_count
    call busy_with_interrupts
    cmpl $0, irq_count
    jne 1f
    FAIL32 "no interrupt after the controllers were set up again"
1:  movl $0x10000, LAPIC_BASE + 0x320 /* masked */
    PRINT32 "interrupt controllers after garbage ok\n"
    jmp pass

/* case 8: MMIO hammering. */
case_mmio_hammer:
    call virtio_bars_assign
    PRINT32 "virtio devices: "
    movl nr_vdev, %eax
    call putdec32
    PRINT32 "\n"
    movl $0, rounds
1:  movl $LAPIC_BASE, %esi          /* reads only: a write could send IPIs or NMIs */
    movl $0x1000, %ecx
    xorl %edi, %edi
    call hammer
    movl $IOAPIC_BASE, %esi
    movl $0x1000, %ecx
    call hammer
    call ioapic_garbage
    call virtio_hammer
    incl rounds
    movl rounds, %eax
    cmpl iters, %eax
    jb 1b
    PRINT32 "mmio accesses: "
    movl accesses, %eax
    call putdec32
    PRINT32 "\n"
    movl $1, IOAPIC_BASE            /* the version register: a known value */
    movl IOAPIC_BASE + 0x10, %eax
    cmpl $0x00170011, %eax
    je 2f
    PRINT32 "ioapic version "
    call puthex32
    FAIL32 " after the hammering"
2:  call virtio_check
    PRINT32 "mmio hammer ok\n"
    jmp pass

/* Random IOAPIC register indexes and values, 256 per round; a redirection entry's low
 * half is written masked with fixed delivery. */
ioapic_garbage:
    pushal
    movl $256, %ecx
1:  call rand32
    movzbl %al, %ebx
    movl %ebx, IOAPIC_BASE
    call rand32
    cmpl $0x10, %ebx
    jb 2f
    testl $1, %ebx
    jnz 2f
    andl $0xfffff8ff, %eax          /* delivery mode fixed */
    orl $0x10000, %eax              /* masked */
2:  movl %eax, IOAPIC_BASE + 0x10
    movl IOAPIC_BASE + 0x10, %eax
    addl $3, accesses
    loop 1b
    popal
    ret

/* %esi = base, %ecx = length, %edi != 0: also random writes. Byte, word and dword at every
 * offset. */
hammer:
    pushal
    xorl %ebx, %ebx
1:  leal (%esi,%ebx), %edx
    movb (%edx), %al
    movw (%edx), %ax
    movl (%edx), %eax
    addl $3, accesses
    testl %edi, %edi
    jz 2f
    call rand32
    movb %al, (%edx)
    call rand32
    movw %ax, (%edx)
    call rand32
    movl %eax, (%edx)
    addl $3, accesses
2:  incl %ebx
    cmpl %ecx, %ebx
    jb 1b
    popal
    ret

/* xorshift32: %eax = the next value; other registers kept. */
rand32:
    pushl %edx
    movl seed, %eax
    movl %eax, %edx
    shll $13, %edx
    xorl %edx, %eax
    movl %eax, %edx
    shrl $17, %edx
    xorl %edx, %eax
    movl %eax, %edx
    shll $5, %edx
    xorl %edx, %eax
    movl %eax, seed
    popl %edx
    ret

/* PCI configuration dword: %ebx = slot, %ecx = register -> %eax. */
pci_read:
    movl %ebx, %eax
    shll $11, %eax
    orl %ecx, %eax
    orl $0x80000000, %eax
    movw $0xcf8, %dx
    outl %eax, %dx
    movw $0xcfc, %dx
    inl %dx, %eax
    ret

/* %ebx = slot, %ecx = register, %esi = value. */
pci_write:
    movl %ebx, %eax
    shll $11, %eax
    orl %ecx, %eax
    orl $0x80000000, %eax
    movw $0xcf8, %dx
    outl %eax, %dx
    movw $0xcfc, %dx
    movl %esi, %eax
    outl %eax, %dx
    ret

/* Every 1af4 device on bus 0: BARs placed, memory decoding on; slots kept in vdev_slots.
 * Decoding goes off everywhere first: a BAR moved onto another device's current place
 * would overlap it for a while. */
virtio_bars_assign:
    pushal
    movl $1, %ebx
1:  movl $0x04, %ecx
    xorl %esi, %esi
    call pci_write
    incl %ebx
    cmpl $32, %ebx
    jb 1b
    movl $0, nr_vdev
    movl $1, %ebx
1:  xorl %ecx, %ecx
    call pci_read
    cmpw $0x1af4, %ax
    jne 2f
    movl nr_vdev, %eax
    movl %ebx, vdev_slots(,%eax,4)
    incl nr_vdev
    movl $0x20, %ecx                /* BAR 4, 64-bit */
    movl %ebx, %esi
    shll $16, %esi
    addl $PCI_HOLE, %esi
    call pci_write
    movl $0x24, %ecx
    xorl %esi, %esi
    call pci_write
    movl $0x14, %ecx                /* BAR 1 */
    movl %ebx, %esi
    shll $12, %esi
    addl $0xc1000000, %esi
    call pci_write
    movl $0x04, %ecx                /* command: memory space */
    movl $0x2, %esi
    call pci_write
2:  incl %ebx
    cmpl $32, %ebx
    jb 1b
    popal
    ret

/* One round over every device's BARs. */
virtio_hammer:
    pushal
    xorl %ebp, %ebp
1:  cmpl nr_vdev, %ebp
    jae 9f
    movl vdev_slots(,%ebp,4), %esi
    shll $16, %esi
    addl $PCI_HOLE, %esi            /* BAR 4 */
    movl $0x1000, %ecx
    xorl %edi, %edi
    call hammer                     /* common config: reads (writes would make it live) */
    addl $0x1000, %esi
    movl $0x3000, %ecx              /* ISR, device config, doorbells */
    movl $1, %edi
    call hammer
    movl vdev_slots(,%ebp,4), %esi
    shll $12, %esi
    addl $0xc1000000, %esi          /* BAR 1: MSI-X table and PBA */
    movl $0x1000, %ecx
    call hammer
    incl %ebp
    jmp 1b
9:  popal
    ret

/* Known values after the hammering: vendor 1af4, device status 0 (never written). */
virtio_check:
    pushal
    xorl %ebp, %ebp
1:  cmpl nr_vdev, %ebp
    jae 9f
    movl vdev_slots(,%ebp,4), %ebx
    xorl %ecx, %ecx
    call pci_read
    cmpw $0x1af4, %ax
    je 2f
    FAIL32 "a virtio device's vendor changed"
2:  movl %ebx, %esi
    shll $16, %esi
    movzbl PCI_HOLE + 0x14(%esi), %eax
    testl %eax, %eax
    jz 3f
    PRINT32 "slot "
    pushl %eax
    movl %ebx, %eax
    call putdec32
    PRINT32 " status "
    popl %eax
    call puthex32
    PRINT32 "\n"
    FAIL32 "a virtio device's status is not 0"
3:  movzwl PCI_HOLE + 0x12(%esi), %eax /* num_queues: the BAR really decodes */
    decl %eax
    cmpl $16, %eax
    jb 4f
    FAIL32 "a virtio device's num_queues is not 1-16"
4:  incl %ebp
    jmp 1b
9:  popal
    ret

/* PIC: ICW1-4, vectors 0x20/0x28, every line unmasked. */
pic_init_open:
    movb $0x11, %al
    outb %al, $PORT_PIC1_CMD
    outb %al, $PORT_PIC2_CMD
    movb $0x20, %al
    outb %al, $PORT_PIC1_DATA
    movb $0x28, %al
    outb %al, $PORT_PIC2_DATA
    movb $4, %al
    outb %al, $PORT_PIC1_DATA
    movb $2, %al
    outb %al, $PORT_PIC2_DATA
    movb $1, %al
    outb %al, $PORT_PIC1_DATA
    outb %al, $PORT_PIC2_DATA
    xorb %al, %al
    outb %al, $PORT_PIC1_DATA
    outb %al, $PORT_PIC2_DATA
    ret

/* iters steps of a loop with interrupts on. */
busy_with_interrupts:
    movl iters, %ecx
    sti
1:  pause
    decl %ecx
    jnz 1b
    cli
    ret

    .section .rodata
    .balign 4
/* [lo, hi] port ranges not written by case 2, then -1 */
skip_ports:
    .long 0x60, 0x64                /* i8042: 0xfe to 0x64 resets */
    .long PORT_DEBUG_EXIT, PORT_DEBUG_EXIT + 3
    .long 0x2f8, 0x2ff              /* COM2 */
    .long COM1, COM1 + 7
    .long 0x600, 0x60f              /* ACPI PM: sleep and reset registers */
    .long 0xcf8, 0xcff              /* PCI config (and the 0xcf9 reset control) */
    .long -1
mmio_targets:
    .long LAPIC_BASE, IOAPIC_BASE, PCI_HOLE
key_iters: .asciz "iters="
key_case:  .asciz "case="
    .balign 4
    .word 0
idtr:
    .word 256 * 8 - 1
    .long idt

    /* In .bss, a page of its own: stores next to the code would make the VMM translate
     * it again after each one. */
    .bss
    .balign 4096
pd: .space 4096
pt0: .space 4096
marker: .long 0
    .balign 8
idt: .space 256 * 8
irq_count: .long 0
rounds: .long 0
iters: .long 0
hcase: .long 0
ud_next: .long 0
accesses: .long 0
nr_vdev: .long 0
vdev_slots: .space 32 * 4
    .data
    .balign 4
seed: .long 0x2545f491
