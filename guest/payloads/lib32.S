/* 32-bit protected-mode helpers: COM1 output, debug-exit, command-line parsing and the
 * switch into 64-bit long mode.  All routines preserve every register except those
 * named as outputs (and EFLAGS). */
#include "payload.h"

    .text
    .code32

/* Program COM1 for 115200 8N1, FIFOs off, interrupts off.  Goes through DLAB so the
 * UART model's divisor latch handling is exercised too. */
    .globl serial_init32
serial_init32:
    pushl %eax
    pushl %edx
    movw $COM1_IER, %dx
    xorb %al, %al
    outb %al, %dx                   /* IER = 0 */
    movw $COM1_LCR, %dx
    movb $0x80, %al
    outb %al, %dx                   /* DLAB = 1 */
    movw $COM1_DLL, %dx
    movb $1, %al
    outb %al, %dx                   /* divisor 1 = 115200 baud */
    movw $COM1_DLM, %dx
    xorb %al, %al
    outb %al, %dx
    movw $COM1_LCR, %dx
    movb $0x03, %al
    outb %al, %dx                   /* DLAB = 0, 8N1 */
    movw $COM1_FCR, %dx
    xorb %al, %al
    outb %al, %dx                   /* FIFOs off: IIR reads back as plain 0x0N */
    movw $COM1_MCR, %dx
    movb $0x03, %al
    outb %al, %dx                   /* DTR | RTS, OUT2 off: no IRQs yet */
    popl %edx
    popl %eax
    ret

/* putc32: AL = character.  Polls LSR.THRE before writing THR. */
    .globl putc32
putc32:
    pushl %eax
    pushl %edx
    movb %al, %ah
    movw $COM1_LSR, %dx
1:  inb %dx, %al
    testb $LSR_THRE, %al
    jz 1b
    movb %ah, %al
    movw $COM1_THR, %dx
    outb %al, %dx
    popl %edx
    popl %eax
    ret

/* puts32: ESI = NUL-terminated string. */
    .globl puts32
puts32:
    pushl %eax
    pushl %esi
1:  lodsb
    testb %al, %al
    jz 2f
    call putc32
    jmp 1b
2:  popl %esi
    popl %eax
    ret

/* putsn32: ESI = string, ECX = maximum length (stops at NUL too). */
    .globl putsn32
putsn32:
    pushl %eax
    pushl %ecx
    pushl %esi
    jecxz 2f
1:  lodsb
    testb %al, %al
    jz 2f
    call putc32
    loop 1b
2:  popl %esi
    popl %ecx
    popl %eax
    ret

/* puthex32: EAX printed as 8 lower-case hex digits (no prefix). */
    .globl puthex32
puthex32:
    pushl %ecx
    pushl %edx
    movl %eax, %edx
    movl $8, %ecx
1:  roll $4, %edx
    movl %edx, %eax
    call puthexdigit32
    loop 1b
    movl %edx, %eax                 /* rotated 8 times by 4: back to the original */
    popl %edx
    popl %ecx
    ret

/* puthex8_32: AL printed as 2 hex digits. */
    .globl puthex8_32
puthex8_32:
    pushl %eax
    pushl %eax
    shrb $4, %al
    call puthexdigit32
    popl %eax
    call puthexdigit32
    popl %eax
    ret

/* low nibble of AL as one hex digit */
puthexdigit32:
    pushl %eax
    andl $0xf, %eax
    movb hexdigits(%eax), %al
    call putc32
    popl %eax
    ret

/* putdec32: EAX printed as unsigned decimal. */
    .globl putdec32
putdec32:
    pushl %eax
    pushl %ecx
    pushl %edx
    pushl %ebx
    movl $10, %ebx
    xorl %ecx, %ecx
1:  xorl %edx, %edx
    divl %ebx
    pushl %edx                      /* digits come out least significant first */
    incl %ecx
    testl %eax, %eax
    jnz 1b
2:  popl %eax
    addb $'0', %al
    call putc32
    loop 2b
    popl %ebx
    popl %edx
    popl %ecx
    popl %eax
    ret

/* exit32: AL = debug-exit value V; the VMM exits with (V << 1) | 1.  Never returns:
 * if the write does not stop the machine we report it and halt forever. */
    .globl exit32
exit32:
    outb %al, $PORT_DEBUG_EXIT
    cli
    movl $exit_failed_msg, %esi
    call puts32
1:  hlt
    jmp 1b

/* cmdline_uint32: find "key" (ESI = NUL-terminated key including '=', e.g. "iters=")
 * at the start of the command line or after a space, in the NUL-terminated string at
 * EDI (may be 0), and parse the decimal digits after it.
 * In: EAX = default.  Out: EAX = value (default when absent, no digits, or EDI = 0). */
    .globl cmdline_uint32
cmdline_uint32:
    pushl %ebx
    pushl %ecx
    pushl %edx
    pushl %esi
    pushl %edi
    testl %edi, %edi
    jz .Lcu_done
    movb $' ', %dl                  /* previous character: "start" counts as a space */
.Lcu_scan:
    movb (%edi), %cl
    testb %cl, %cl
    jz .Lcu_done
    cmpb $' ', %dl
    jne .Lcu_next
    /* compare key at EDI */
    xorl %ebx, %ebx
.Lcu_cmp:
    movb (%esi,%ebx), %ch
    testb %ch, %ch
    jz .Lcu_found
    cmpb (%edi,%ebx), %ch
    jne .Lcu_next
    incl %ebx
    jmp .Lcu_cmp
.Lcu_next:
    movb %cl, %dl
    incl %edi
    jmp .Lcu_scan
.Lcu_found:
    addl %ebx, %edi
    movzbl (%edi), %ecx
    subl $'0', %ecx
    cmpl $9, %ecx
    ja .Lcu_done                    /* no digits: keep the default */
    xorl %eax, %eax
1:  movzbl (%edi), %ecx
    subl $'0', %ecx
    cmpl $9, %ecx
    ja .Lcu_done
    imull $10, %eax, %eax
    addl %ecx, %eax
    incl %edi
    jmp 1b
.Lcu_done:
    popl %edi
    popl %esi
    popl %edx
    popl %ecx
    popl %ebx
    ret

/* mb_cmdline32: EDI = multiboot command line pointer, or 0 if flags bit 2 is clear. */
    .globl mb_cmdline32
mb_cmdline32:
    pushl %eax
    xorl %edi, %edi
    movl mb_info, %eax
    testl $(1 << 2), MBI_FLAGS(%eax)
    jz 1f
    movl MBI_CMDLINE(%eax), %edi
1:  popl %eax
    ret

/* enter_long_mode32: EAX = address (below 2 GiB) of 64-bit code to jump to.
 * Builds page tables identity-mapping the first 4 GiB with 2 MiB pages, enables
 * CR4.PAE, EFER.LME and CR0.PG, then far-jumps through the 64-bit code segment.
 * The target runs with DS/ES/SS = SEL_DATA32, RSP = ESP (zero-extended), and all
 * other registers as they were except EAX/ECX/EDX.  Does not return. */
    .globl enter_long_mode32
enter_long_mode32:
    movl %eax, lm_target
    /* zero the 6 table pages: PML4, PDPT, 4 page directories */
    pushl %edi
    movl $lm_pml4, %edi
    movl $(6 * 4096 / 4), %ecx
    xorl %eax, %eax
    rep stosl
    movl $lm_pdpt + 0x3, %eax       /* present | writable */
    movl %eax, lm_pml4
    movl $lm_pd + 0x3, %eax
    movl $lm_pdpt, %edi
    movl $4, %ecx
1:  movl %eax, (%edi)               /* PDPT[i] -> PD i */
    addl $4096, %eax
    addl $8, %edi
    loop 1b
    movl $lm_pd, %edi
    movl $0x83, %eax                /* present | writable | 2 MiB page */
    xorl %edx, %edx                 /* high dword of the entry (bits 32+ of address) */
    movl $2048, %ecx
2:  movl %eax, (%edi)
    movl %edx, 4(%edi)
    addl $0x200000, %eax
    addl $8, %edi
    loop 2b
    popl %edi

    movl $lm_pml4, %eax
    movl %eax, %cr3
    movl %cr4, %eax
    orl $(1 << 5), %eax             /* CR4.PAE */
    movl %eax, %cr4
    movl $0xc0000080, %ecx          /* IA32_EFER */
    rdmsr
    orl $(1 << 8), %eax             /* EFER.LME */
    wrmsr
    movl %cr0, %eax
    orl $0x80000001, %eax           /* CR0.PG | CR0.PE: activates long mode (LMA) */
    movl %eax, %cr0
    ljmp $SEL_CODE64, $lm_entry64

    .code64
lm_entry64:
    movl %esp, %esp                 /* zero-extend: upper halves are undefined */
    movl lm_target(%rip), %eax     /* RIP-relative: no 32S relocation in ELF32 */
    jmpq *%rax
    .code32

    .section .rodata
hexdigits: .ascii "0123456789abcdef"
exit_failed_msg: .asciz "FAIL: debug-exit port did not stop the machine\n"

    .data
    .balign 4
lm_target: .long 0

    .bss
    .balign 4096
    .globl lm_pml4
lm_pml4: .skip 4096
lm_pdpt: .skip 4096
lm_pd:   .skip 4 * 4096
