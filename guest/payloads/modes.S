/* modes.elf: boot-information and CPU mode-switch test.
 *
 * 1. In the 32-bit protected mode the loader gave us: check the multiboot magic and
 *    print what the multiboot info says (memory, command line, modules, memory map),
 *    so tests can pass --append/--initrd and compare.
 * 2. 32 -> 64: own page tables, PAE + LME + PG, far jump to a 64-bit segment; verify
 *    EFER.LMA.
 * 3. 64 -> 32: far return to a 32-bit segment (compatibility mode), clear CR0.PG and
 *    EFER.LME; verify EFER.LMA is clear again.
 * 4. 32 -> 16-bit protected mode -> real mode -> 32-bit protected mode, through a small
 *    position-independent trampoline copied to REALMODE_BASE (real mode cannot reach
 *    code at 1 MiB comfortably).
 * Then "PASS" and EXIT_PASS. */
#include "payload.h"

#define MSR_EFER 0xc0000080
#define EFER_LMA (1 << 10)

    .text
    .code32
    .globl main32
main32:
    PRINT32 "modes: 32-bit protected mode entry\n"
    cmpl $MB_BOOT_MAGIC, mb_magic
    je 1f
    PRINT32 "multiboot magic 0x"
    movl mb_magic, %eax
    call puthex32
    FAIL32 " is wrong"
1:  PRINT32 "multiboot magic ok\n"
    movl mb_info, %ebx
    PRINT32 "mbi flags=0x"
    movl MBI_FLAGS(%ebx), %eax
    call puthex32
    PRINT32 "\n"

    /* memory sizes (flags bit 0) */
    testl $(1 << 0), MBI_FLAGS(%ebx)
    jnz 1f
    PRINT32 "mem: none\n"
    jmp 2f
1:  PRINT32 "mem_lower="
    movl MBI_MEM_LOWER(%ebx), %eax
    call putdec32
    PRINT32 " KiB mem_upper="
    movl MBI_MEM_UPPER(%ebx), %eax
    call putdec32
    PRINT32 " KiB\n"
2:
    /* command line (flags bit 2) */
    call mb_cmdline32
    testl %edi, %edi
    jnz 1f
    PRINT32 "cmdline: none\n"
    jmp 2f
1:  PRINT32 "cmdline: "
    movl %edi, %esi
    movl $256, %ecx
    call putsn32
    PRINT32 "\n"
2:
    /* modules (flags bit 3): count, first module's size, first 16 bytes, string */
    testl $(1 << 3), MBI_FLAGS(%ebx)
    jnz 1f
    PRINT32 "modules: none\n"
    jmp 3f
1:  PRINT32 "modules: "
    movl MBI_MODS_COUNT(%ebx), %eax
    call putdec32
    PRINT32 "\n"
    testl %eax, %eax
    jz 3f
    movl MBI_MODS_ADDR(%ebx), %edx  /* struct: mod_start, mod_end, string, reserved */
    PRINT32 "module 0: size="
    movl 4(%edx), %ecx
    subl 0(%edx), %ecx
    movl %ecx, %eax
    call putdec32
    PRINT32 " bytes="
    cmpl $16, %ecx
    jbe 1f
    movl $16, %ecx
1:  movl 0(%edx), %esi
    jecxz 2f
1:  lodsb
    call puthex8_32
    loop 1b
2:  PRINT32 " string="
    movl 8(%edx), %esi
    testl %esi, %esi
    jz 2f
    movl $256, %ecx
    call putsn32
2:  PRINT32 "\n"
3:
    /* memory map (flags bit 6): one line per entry, then the count */
    testl $(1 << 6), MBI_FLAGS(%ebx)
    jnz 1f
    PRINT32 "mmap: none\n"
    jmp 3f
1:  movl MBI_MMAP_ADDR(%ebx), %esi
    movl MBI_MMAP_LENGTH(%ebx), %edi
    addl %esi, %edi                 /* end of the map */
    xorl %edx, %edx                 /* entry count */
2:  cmpl %edi, %esi
    jae 2f
    /* entry: size(4) base(8) length(8) type(4); next = this + size + 4 */
    PRINT32 "mmap: base=0x"
    movl 8(%esi), %eax
    call puthex32
    movl 4(%esi), %eax
    call puthex32
    PRINT32 " len=0x"
    movl 16(%esi), %eax
    call puthex32
    movl 12(%esi), %eax
    call puthex32
    PRINT32 " type="
    movl 20(%esi), %eax
    call putdec32
    PRINT32 "\n"
    incl %edx
    movl 0(%esi), %eax
    leal 4(%esi,%eax), %esi
    cmpl $64, %edx                  /* bound the walk if the map is corrupt */
    jb 2b
2:  PRINT32 "mmap entries: "
    movl %edx, %eax
    call putdec32
    PRINT32 "\n"
3:
    /* 32 -> 64 */
    PRINT32 "entering long mode\n"
    movl $in_long_mode, %eax
    jmp enter_long_mode32

    .code64
in_long_mode:
    movl $MSR_EFER, %ecx
    rdmsr
    testl $EFER_LMA, %eax
    jnz 1f
    FAIL64 "EFER.LMA clear after entering long mode"
1:  /* a computation that only works with 64-bit registers */
    movabsq $0x123456789abcdef0, %rax
    rolq $32, %rax
    movabsq $0x9abcdef012345678, %rdx
    cmpq %rdx, %rax
    je 1f
    FAIL64 "64-bit rotate gave the wrong result"
1:  PRINT64 "long mode ok\n"

    /* 64 -> 32: far return into the 32-bit code segment (compatibility mode) */
    movl $in_compat_mode, %eax
    pushq $SEL_CODE32
    pushq %rax
    lretq

    .code32
in_compat_mode:
    movl %cr0, %eax
    andl $~0x80000000, %eax         /* CR0.PG off: leaves long mode (LMA = 0) */
    movl %eax, %cr0
    movl $MSR_EFER, %ecx
    rdmsr
    andl $~(1 << 8), %eax           /* EFER.LME off */
    wrmsr
    rdmsr
    testl $EFER_LMA, %eax
    jz 1f
    FAIL32 "EFER.LMA still set after leaving long mode"
1:  movl %cr4, %eax
    andl $~(1 << 5), %eax           /* CR4.PAE off: plain flat protected mode again */
    movl %eax, %cr4
    PRINT32 "back in 32-bit protected mode\n"

    /* 32 -> 16-bit protected mode -> real mode -> 32: copy the trampoline down */
    movl $rm_blob_start, %esi
    movl $REALMODE_BASE, %edi
    movl $(rm_blob_end - rm_blob_start), %ecx
    rep movsb
    movl %esp, saved_esp
    ljmp $SEL_CODE16, $(pm16_entry - rm_blob_start)

pm32_again:                         /* from real mode, through ljmpl in the trampoline */
    movw $SEL_DATA32, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %fs
    movw %ax, %gs
    movw %ax, %ss
    movl saved_esp, %esp
    movl %cr0, %eax
    testl $1, %eax
    jnz 1f
    FAIL32 "CR0.PE clear after returning to protected mode"
1:  PRINT32 "32-bit protected mode again\n"
    PRINT32 "PASS\n"
    movb $EXIT_PASS, %al
    jmp exit32

/* The trampoline.  Runs at REALMODE_BASE: in 16-bit protected mode with CS/DS base
 * REALMODE_BASE (GDT entries 0x20/0x28), and in real mode with segments REALMODE_SEG,
 * so every offset below is relative to rm_blob_start in both. */
    .code16
rm_blob_start:
pm16_entry:
    movw $SEL_DATA16, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %fs
    movw %ax, %gs
    movw %ax, %ss
    movl $0xff0, %esp               /* stack at REALMODE_BASE + 0xff0 */
    movw $(msg_pm16 - rm_blob_start), %si
    call rm_puts
    movl %cr0, %eax
    andl $~1, %eax                  /* CR0.PE off: real mode */
    movl %eax, %cr0
    ljmp $REALMODE_SEG, $(rm_entry - rm_blob_start)
rm_entry:
    movw $REALMODE_SEG, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movw $0xff0, %sp
    smsw %ax                        /* really real mode? */
    testw $1, %ax
    jz 1f
    movw $(msg_rm_bad - rm_blob_start), %si
    call rm_puts
    movb $EXIT_FAIL, %al
    outb %al, $PORT_DEBUG_EXIT
1:  /* real-mode segmentation: the same byte through two segment:offset pairs */
    xorw %ax, %ax
    movw %ax, %es
    movb %es:(REALMODE_BASE + msg_rm - rm_blob_start), %al
    cmpb (msg_rm - rm_blob_start), %al
    je 1f
    movw $(msg_rm_bad - rm_blob_start), %si
    call rm_puts
    movb $EXIT_FAIL, %al
    outb %al, $PORT_DEBUG_EXIT
1:  movw $(msg_rm - rm_blob_start), %si
    call rm_puts
    movl %cr0, %eax
    orl $1, %eax                    /* CR0.PE on; GDTR survived real mode */
    movl %eax, %cr0
    ljmpl $SEL_CODE32, $pm32_again

rm_puts:                            /* DS:SI = string */
    pushw %ax
    pushw %dx
1:  lodsb
    testb %al, %al
    jz 3f
    movb %al, %ah
    movw $COM1_LSR, %dx
2:  inb %dx, %al
    testb $LSR_THRE, %al
    jz 2b
    movb %ah, %al
    movw $COM1_THR, %dx
    outb %al, %dx
    jmp 1b
3:  popw %dx
    popw %ax
    ret

msg_pm16:   .asciz "16-bit protected mode ok\n"
msg_rm:     .asciz "real mode ok\n"
msg_rm_bad: .asciz "FAIL: real-mode check failed\n"
rm_blob_end:
    .code32

    .data
    .balign 4
saved_esp: .long 0
