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
 *           and BAR 1 at 0xc1000000 + slot * 4 KiB.
 *   case=9  hostile virtqueues, iters rounds, on every virtio device given (as case 8 finds
 *           them): for each of 16 scenarios the device is reset and set up again (quokka's
 *           layout: common config at BAR 4 + 0, doorbells at + 0x3000, 4 apart) with the
 *           queue it processes when kicked (blk and rng: 0, console, net, vsock: their
 *           transmit queue 1), the hostile ring is posted, the doorbell rung, and what the
 *           device did is printed once it answered or a bounded wait ran out: "used len=N"
 *           (it completed the buffer), "needs-reset" (DEVICE_NEEDS_RESET, 0x40 in the
 *           status) or "ignored". Scenarios: descriptor loop, next index out of range, a
 *           chain of every descriptor in a ring (longer than the queue), an indirect
 *           descriptor pointing at its own table, a loop inside an indirect table, an
 *           indirect table whose length is not a multiple of 16, a 1 MiB indirect table,
 *           a buffer beyond RAM, a buffer wrapping past 2^64, a 4 GiB length, the avail
 *           index jumping by 1000, a head index out of range, queue size 13 (not a power
 *           of two), the wrong direction (device-writable vs -readable), doorbells of
 *           every queue that was not set up, and rings placed beyond RAM. Afterwards a
 *           virtio-rng device (if given) must still answer a good request.
 *   case=10 overlapping BARs, iters rounds (needs --disk and another virtio device; BARs
 *           placed as in case 8): the disk's BAR 4 is moved onto the other device's BAR 4
 *           (the other keeps the range: the disk's capacity must not show there), then the
 *           other's BAR 4 moves away and the disk's, never written again, must decode
 *           there: its capacity (device config, BAR 4 + 0x2000) is printed, "overlap
 *           capacity=N". Then within the disk: BAR 1 (MSI-X table) onto BAR 4, BAR 4 away,
 *           and BAR 1 must decode (entry 0's vector control reads 1, masked) and BAR 4 at
 *           its new place (the same capacity). */
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
    cmpl $9, %eax
    je case_virtqueues
    cmpl $10, %eax
    je case_bar_overlap
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
    movl $0x04, %ecx                /* command: memory space, bus master */
    movl $0x6, %esi
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

/* --- case 10: overlapping BARs ------------------------------------------------------- */

#define OVL_AWAY 0xc0800000         /* free: the case 8 layout ends at 0xc0200000 */
#define OVL_AWAY2 0xc0900000
#define BLK_CAPACITY 0x2000         /* BAR 4: device config, capacity's low dword */

case_bar_overlap:
    movl $0, rounds
1:  call virtio_bars_assign
    call overlap_pick
    call overlap_round
    incl rounds
    movl rounds, %eax
    cmpl iters, %eax
    jb 1b
    PRINT32 "bar overlap ok\n"
    jmp pass

/* ovl_blk = the virtio-blk's slot, ovl_other = another virtio device's slot. */
overlap_pick:
    pushal
    movl $0, ovl_blk
    movl $0, ovl_other
    xorl %ebp, %ebp
1:  cmpl nr_vdev, %ebp
    jae 3f
    movl vdev_slots(,%ebp,4), %ebx
    xorl %ecx, %ecx
    call pci_read
    shrl $16, %eax
    cmpl $0x1042, %eax
    jne 2f
    movl %ebx, ovl_blk
    jmp 4f
2:  movl %ebx, ovl_other
4:  incl %ebp
    jmp 1b
3:  cmpl $0, ovl_blk
    je 5f
    cmpl $0, ovl_other
    jne 6f
5:  FAIL32 "case 10 needs a virtio-blk and another virtio device"
6:  popal
    ret

/* %ebx = slot, %ecx = BAR register, %esi = address: BAR write (64-bit: upper half 0). */
overlap_move:
    call pci_write
    cmpl $0x20, %ecx
    jne 1f
    pushl %esi
    movl $0x24, %ecx
    xorl %esi, %esi
    call pci_write
    popl %esi
1:  ret

overlap_round:
    pushal
    movl ovl_other, %edi            /* %edi = the other's BAR 4 address */
    shll $16, %edi
    addl $PCI_HOLE, %edi
    movl ovl_blk, %ebx              /* the disk's BAR 4 onto it: the other keeps it */
    movl $0x20, %ecx
    movl %edi, %esi
    call overlap_move
    movl BLK_CAPACITY(%edi), %eax
    movl %eax, ovl_seen
    movl ovl_other, %ebx            /* the other moves away */
    movl $0x20, %ecx
    movl $OVL_AWAY, %esi
    call overlap_move
    movzwl OVL_AWAY + 0x12, %eax    /* num_queues: the other decodes at its new place */
    decl %eax
    cmpl $16, %eax
    jb 1f
    FAIL32 "the moved BAR does not decode"
1:  movl BLK_CAPACITY(%edi), %eax   /* the disk's BAR 4, untouched since, decodes again */
    cmpl $0xffffffff, %eax
    jne 2f
    FAIL32 "the BAR that lost the overlap stays dark after the other moved away"
2:  cmpl %eax, ovl_seen
    jne 3f
    FAIL32 "the disk's BAR decoded over the other device's"
3:  cmpl $0, rounds
    jne 4f
    PRINT32 "overlap capacity="
    call putdec32
    PRINT32 "\n"
4:  movl %eax, ovl_seen
    movl ovl_blk, %ebx              /* within the disk: BAR 1 onto BAR 4 (BAR 4 keeps it) */
    movl $0x14, %ecx
    movl %edi, %esi
    call overlap_move
    movl $0x20, %ecx                /* BAR 4 away */
    movl $OVL_AWAY2, %esi
    call overlap_move
    movl 12(%edi), %eax             /* MSI-X entry 0's vector control: masked */
    cmpl $1, %eax
    je 5f
    PRINT32 "msi-x vector control "
    call puthex32
    FAIL32 " where BAR 1 lost the overlap to BAR 4 that left"
5:  movl OVL_AWAY2 + BLK_CAPACITY, %eax
    cmpl ovl_seen, %eax
    je 6f
    FAIL32 "the disk's BAR 4 does not decode after its move"
6:  cmpl $0, rounds
    jne 7f
    PRINT32 "overlap within a device ok\n"
7:  popal
    ret

/* --- case 9: hostile virtqueues --------------------------------------------------------- */

#define VQ_NEXT 1
#define VQ_WRITE 2
#define VQ_INDIRECT 4
#define VQ_SPIN 400000
#define VQ_NR_SCENARIOS 16
#define BEYOND_RAM 0x40000000

/* Descriptor i of table tbl (vq_desc or itab); flags also get the device's data direction
 * (wflag) when dir is 1. */
.macro DESC tbl, i, alo, ahi, len, flags, next, dir=1
    movl $\alo, \tbl + \i * 16
    movl $\ahi, \tbl + \i * 16 + 4
    movl $\len, \tbl + \i * 16 + 8
    movw $\flags, %ax
    .if \dir
    orw wflag, %ax
    .endif
    movw %ax, \tbl + \i * 16 + 12
    movw $\next, \tbl + \i * 16 + 14
.endm

case_virtqueues:
    call virtio_bars_assign
    PRINT32 "virtio devices: "
    movl nr_vdev, %eax
    call putdec32
    PRINT32 "\n"
    movl $0, rounds
1:  xorl %ebp, %ebp
2:  cmpl nr_vdev, %ebp
    jae 3f
    call vq_device
    incl %ebp
    jmp 2b
3:  incl rounds
    movl rounds, %eax
    cmpl iters, %eax
    jb 1b
    PRINT32 "hostile virtqueue cases: "
    movl vq_cases, %eax
    call putdec32
    PRINT32 "\n"
    call rng_recovers
    PRINT32 "hostile virtqueues ok\n"
    jmp pass

/* Device %ebp of vdev_slots: its identity, then every scenario. */
vq_device:
    pushal
    movl vdev_slots(,%ebp,4), %ebx
    movl %ebx, %esi
    shll $16, %esi
    addl $PCI_HOLE, %esi
    movl %esi, dbase
    xorl %ecx, %ecx
    call pci_read
    shrl $16, %eax
    movl %eax, dev_id
    movl $1, kq                     /* console, net, vsock: transmit queue 1 */
    movw $0, wflag
    cmpl $0x1042, %eax              /* blk */
    jne 1f
    movl $0, kq
1:  cmpl $0x1044, %eax              /* rng: device-writable buffers */
    jne 1f
    movl $0, kq
    movw $VQ_WRITE, wflag
1:  xorl %edi, %edi
2:  movl %edi, scen
    movl $16, qsz
    movl $vq_desc, ring_desc
    movl $vq_avail, ring_avail
    movl $vq_used, ring_used
    cmpl $0, rounds                 /* what each case did: printed in the first round */
    jne 3f
    PRINT32 "device "
    movl dev_id, %eax
    call puthex32
    PRINT32 " q"
    movl kq, %eax
    call putdec32
    PRINT32 " "
    movl vq_names(,%edi,4), %esi
    call puts32
    PRINT32 ": "
3:  call *vq_scenarios(,%edi,4)
    call vq_observe
    incl vq_cases
    incl %edi
    cmpl $VQ_NR_SCENARIOS, %edi
    jb 2b
    call vq_reset
    popal
    ret

/* Status 0, then wait until the device reads back 0 (bounded). */
vq_reset:
    pushl %ebx
    pushl %ecx
    movl dbase, %ebx
    movb $0, 0x14(%ebx)
    movl $1000000, %ecx
1:  cmpb $0, 0x14(%ebx)
    je 2f
    pause
    loop 1b
    FAIL32 "device reset did not complete"
2:  popl %ecx
    popl %ebx
    ret

/* Reset, features (VERSION_1, INDIRECT_DESC when offered), queue kq with qsz entries at
 * ring_desc/avail/used (cleared first when they are ours), DRIVER_OK. */
vq_setup:
    pushal
    call vq_reset
    movl dbase, %ebx
    movb $1, 0x14(%ebx)
    movb $3, 0x14(%ebx)
    movl $0, 0x00(%ebx)
    movl 0x04(%ebx), %eax
    andl $0x10000000, %eax
    movl $0, 0x08(%ebx)
    movl %eax, 0x0c(%ebx)
    movl $1, 0x08(%ebx)
    movl $1, 0x0c(%ebx)
    movb $0xb, 0x14(%ebx)
    movl $vq_desc, %edi             /* desc, avail, used, indirect table: 4 pages */
    movl $4096, %ecx
    xorl %eax, %eax
    rep stosl
    movl kq, %eax
    movw %ax, 0x16(%ebx)
    movl qsz, %eax
    movw %ax, 0x18(%ebx)
    movw $0xffff, 0x1a(%ebx)
    movl ring_desc, %eax
    movl %eax, 0x20(%ebx)
    movl $0, 0x24(%ebx)
    movl ring_avail, %eax
    movl %eax, 0x28(%ebx)
    movl $0, 0x2c(%ebx)
    movl ring_used, %eax
    movl %eax, 0x30(%ebx)
    movl $0, 0x34(%ebx)
    movw $1, 0x1c(%ebx)
    movb $0xf, 0x14(%ebx)
    popal
    ret

/* Doorbell of queue %eax. */
vq_kick_eax:
    pushl %edx
    movl dbase, %edx
    leal 0x3000(%edx,%eax,4), %edx
    movw %ax, (%edx)
    popl %edx
    ret

/* avail.ring[0] = head %eax, avail.idx = %ecx, doorbell. */
vq_post:
    movw %ax, vq_avail + 4
    movw %cx, vq_avail + 2
    movl kq, %eax
    jmp vq_kick_eax

vq_post_head0:
    xorl %eax, %eax
    movl $1, %ecx
    jmp vq_post

/* Wait (bounded) for the device's answer and print it. */
vq_observe:
    pushal
    movl $VQ_SPIN, %ecx
    movl dbase, %ebx
1:  movzbl 0x14(%ebx), %eax
    testb $0x40, %al
    jnz 3f
    cmpw $0, vq_used + 2
    jne 4f
    pause
    loop 1b
    incl vq_ignored
    cmpl $0, rounds
    jne 9f
    PRINT32 "ignored\n"
    jmp 9f
3:  incl vq_needs_reset
    cmpl $0, rounds
    jne 9f
    PRINT32 "needs-reset\n"
    jmp 9f
4:  incl vq_used_count
    cmpl $0, rounds
    jne 9f
    PRINT32 "used len="
    movl vq_used + 8, %eax
    call putdec32
    PRINT32 "\n"
9:  popal
    ret

vq_s_loop:
    call vq_setup
    DESC vq_desc, 0, vbuf, 0, 16, VQ_NEXT, 1
    DESC vq_desc, 1, vbuf, 0, 16, VQ_NEXT, 0
    jmp vq_post_head0

vq_s_next_range:
    call vq_setup
    DESC vq_desc, 0, vbuf, 0, 16, VQ_NEXT, 21
    jmp vq_post_head0

/* Every descriptor linked to the next, the last to the first. */
vq_s_long_chain:
    call vq_setup
    xorl %ecx, %ecx
1:  movl $vbuf, vq_desc(,%ecx,8)
    movl $0, vq_desc + 4(,%ecx,8)
    movl $16, vq_desc + 8(,%ecx,8)
    movw wflag, %ax
    orw $VQ_NEXT, %ax
    movw %ax, vq_desc + 12(,%ecx,8)
    movl %ecx, %eax
    shrl $1, %eax
    incl %eax
    andl $15, %eax
    movw %ax, vq_desc + 14(,%ecx,8)
    addl $2, %ecx                   /* ecx = 2 * index: 16-byte entries at ecx * 8 */
    cmpl $32, %ecx
    jb 1b
    jmp vq_post_head0

vq_s_indirect_self:
    call vq_setup
    DESC vq_desc, 0, itab, 0, 16, VQ_INDIRECT, 0, 0
    DESC itab, 0, itab, 0, 16, VQ_INDIRECT, 0, 0
    jmp vq_post_head0

vq_s_indirect_loop:
    call vq_setup
    DESC vq_desc, 0, itab, 0, 32, VQ_INDIRECT, 0, 0
    DESC itab, 0, vbuf, 0, 16, VQ_NEXT, 1
    DESC itab, 1, vbuf, 0, 16, VQ_NEXT, 0
    jmp vq_post_head0

vq_s_indirect_len:
    call vq_setup
    DESC vq_desc, 0, itab, 0, 17, VQ_INDIRECT, 0, 0
    DESC itab, 0, vbuf, 0, 16, 0, 0
    jmp vq_post_head0

vq_s_indirect_huge:
    call vq_setup
    DESC vq_desc, 0, itab, 0, 0x100000, VQ_INDIRECT, 0, 0
    DESC itab, 0, vbuf, 0, 16, VQ_NEXT, 1
    DESC itab, 1, vbuf, 0, 16, VQ_NEXT, 2
    jmp vq_post_head0

vq_s_beyond_ram:
    call vq_setup
    DESC vq_desc, 0, BEYOND_RAM, 0, 512, 0, 0
    jmp vq_post_head0

vq_s_wrap:
    call vq_setup
    DESC vq_desc, 0, 0xfffff000, 0xffffffff, 0x2000, 0, 0
    jmp vq_post_head0

vq_s_huge_len:
    call vq_setup
    DESC vq_desc, 0, vbuf, 0, 0xffffffff, 0, 0
    jmp vq_post_head0

vq_s_idx_jump:
    call vq_setup
    DESC vq_desc, 0, vbuf, 0, 16, 0, 0
    xorl %eax, %eax
    movl $1000, %ecx
    jmp vq_post

vq_s_head_range:
    call vq_setup
    DESC vq_desc, 0, vbuf, 0, 16, 0, 0
    movl $500, %eax
    movl $1, %ecx
    jmp vq_post

vq_s_size13:
    movl $13, qsz
    call vq_setup
    DESC vq_desc, 0, vbuf, 0, 16, 0, 0
    jmp vq_post_head0

/* The direction the device does not expect: readable for rng, writable for the others. */
vq_s_direction:
    call vq_setup
    DESC vq_desc, 0, vbuf, 0, 16, 0, 0, 0
    movw wflag, %ax
    xorw $VQ_WRITE, %ax
    movw %ax, vq_desc + 12
    jmp vq_post_head0

/* Doorbells of queues 0-15 other than kq, and of 0xffff: none set up. A buffer posted on
 * kq's ring is not kicked, so the device must not take it either. */
vq_s_unconfigured:
    call vq_setup
    DESC vq_desc, 0, vbuf, 0, 16, 0, 0
    movw $0, vq_avail + 4
    movw $1, vq_avail + 2
    xorl %eax, %eax
1:  cmpl kq, %eax
    je 2f
    call vq_kick_eax
2:  incl %eax
    cmpl $16, %eax
    jb 1b
    movl $0xffff, %eax
    jmp vq_kick_eax

vq_s_rings_beyond_ram:
    movl $BEYOND_RAM, ring_desc
    movl $BEYOND_RAM + 0x1000, ring_avail
    movl $BEYOND_RAM + 0x2000, ring_used
    call vq_setup
    jmp vq_post_head0

/* A good request on virtio-rng after all that: 64 random bytes. */
rng_recovers:
    pushal
    xorl %ebp, %ebp
1:  cmpl nr_vdev, %ebp
    jae 9f
    movl vdev_slots(,%ebp,4), %ebx
    xorl %ecx, %ecx
    call pci_read
    shrl $16, %eax
    cmpl $0x1044, %eax
    je 2f
    incl %ebp
    jmp 1b
2:  movl %ebx, %esi
    shll $16, %esi
    addl $PCI_HOLE, %esi
    movl %esi, dbase
    movl $0, kq
    movl $16, qsz
    movl $vq_desc, ring_desc
    movl $vq_avail, ring_avail
    movl $vq_used, ring_used
    call vq_setup
    DESC vq_desc, 0, vbuf, 0, 64, VQ_WRITE, 0, 0
    call vq_post_head0
    movl $10000000, %ecx
3:  cmpw $0, vq_used + 2
    jne 4f
    pause
    loop 3b
    FAIL32 "virtio-rng does not answer a good request after the hostile rings"
4:  cmpl $0, vq_used + 8
    jne 5f
    FAIL32 "virtio-rng answered a good request with 0 bytes"
5:  PRINT32 "virtio-rng after the hostile rings: "
    movl vq_used + 8, %eax
    call putdec32
    PRINT32 " bytes\n"
    call vq_reset
9:  popal
    ret

    .section .rodata
    .balign 4
vq_scenarios:
    .long vq_s_loop, vq_s_next_range, vq_s_long_chain, vq_s_indirect_self
    .long vq_s_indirect_loop, vq_s_indirect_len, vq_s_indirect_huge, vq_s_beyond_ram
    .long vq_s_wrap, vq_s_huge_len, vq_s_idx_jump, vq_s_head_range
    .long vq_s_size13, vq_s_direction, vq_s_unconfigured, vq_s_rings_beyond_ram
vq_names:
    .long 1f, 2f, 3f, 4f, 5f, 6f, 7f, 8f, 9f, 10f, 11f, 12f, 13f, 14f, 15f, 16f
1:  .asciz "descriptor-loop"
2:  .asciz "next-out-of-range"
3:  .asciz "chain-longer-than-queue"
4:  .asciz "indirect-to-itself"
5:  .asciz "indirect-loop"
6:  .asciz "indirect-len-17"
7:  .asciz "indirect-1MiB"
8:  .asciz "buffer-beyond-ram"
9:  .asciz "buffer-wraps-2^64"
10: .asciz "length-4GiB"
11: .asciz "avail-idx-jump-1000"
12: .asciz "head-out-of-range"
13: .asciz "queue-size-13"
14: .asciz "wrong-direction"
15: .asciz "unconfigured-queues"
16: .asciz "rings-beyond-ram"
    .text

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
dbase: .long 0
dev_id: .long 0
kq: .long 0
qsz: .long 0
scen: .long 0
ring_desc: .long 0
ring_avail: .long 0
ring_used: .long 0
vq_cases: .long 0
ovl_blk: .long 0
ovl_other: .long 0
ovl_seen: .long 0
vq_ignored: .long 0
vq_needs_reset: .long 0
vq_used_count: .long 0
wflag: .word 0
    .balign 4096
vq_desc: .space 4096
vq_avail: .space 4096
vq_used: .space 4096
itab: .space 4096
vbuf: .space 4096
    .data
    .balign 4
seed: .long 0x2545f491
