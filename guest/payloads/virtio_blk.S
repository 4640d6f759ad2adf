/* virtio-blk.elf: a small polled virtio 1.x block driver, no Linux.
 *
 * Tests a VMM's virtio-blk device path from the guest side with nothing but this payload,
 * so it also runs where Linux cannot (software-emulating KVM hosts).  32-bit protected mode,
 * paging off: every address is physical.  BARs must lie below 4 GiB (quokka places them in
 * 0xC0000000-0xDFFFFFFF; SeaBIOS under QEMU also puts the 64-bit virtio BAR below 4 GiB);
 * a BAR above 4 GiB is reported as a FAIL, not reprogrammed.
 *
 * 1. PCI bus 0, configuration mechanism #1: the N-th (disk=N, default 0) function with
 *    vendor 0x1af4 device 0x1042 (modern virtio-blk).  The firmware/VMM assigned the BARs
 *    and enabled decoding; we only set PCI_COMMAND memory + bus master.
 * 2. Vendor capabilities (ID 9): common, notify (+ multiplier), ISR and device config,
 *    each a (BAR, offset, length) triple; the BARs are read, never written.
 * 3. virtio 1.x initialisation (spec 3.1.1, 4.1.4.3): reset, ACKNOWLEDGE, DRIVER,
 *    features (VERSION_1 required; accepted: VERSION_1, ACCESS_PLATFORM, INDIRECT_DESC,
 *    BLK_F_FLUSH, BLK_F_RO when offered; never EVENT_IDX), FEATURES_OK (must stick),
 *    queue 0 with min(queue_size, 16) entries in our own page-aligned rings, no MSI-X
 *    vector, DRIVER_OK.
 * 4. Capacity from the device config (64-bit, read under config_generation).
 * 5. Requests, one at a time, completion by polling used->idx:
 *    write sector S (sector=S, default 1) with bytes (i*7 + K) & 0xff (seed=K, default 1),
 *    FLUSH when offered, read it back and compare; read sector 0 and print 16 bytes;
 *    GET_ID; a read at sector `capacity` must fail with IOERR; an indirect-descriptor
 *    read of sector S.  readonly=1 instead expects BLK_F_RO and a write refused with
 *    IOERR, the sector unchanged.
 *    dmacode=1 then reads sector codesector=C (default 2) by DMA over code the translator
 *    has run (see test_dma_code).
 *    Then the ISR (bit 0 set since we never enabled MSI-X, cleared by the read) and the
 *    PCI status interrupt bit following it; finally a device reset.
 * Prints "PASS" (EXIT_PASS) or "FAIL: reason" (EXIT_FAIL). */
#include "payload.h"

#define PCI_CFG_ADDR        0xcf8
#define PCI_CFG_DATA        0xcfc
#define VIRTIO_VENDOR       0x1af4
#define VIRTIO_BLK_MODERN   0x1042

/* virtio_pci_cap.cfg_type */
#define CAP_COMMON          1
#define CAP_NOTIFY          2
#define CAP_ISR             3
#define CAP_DEVICE          4

/* struct virtio_pci_common_cfg */
#define CC_DFSELECT         0x00
#define CC_DF               0x04
#define CC_GFSELECT         0x08
#define CC_GF               0x0c
#define CC_MSIX             0x10
#define CC_NUMQ             0x12
#define CC_STATUS           0x14
#define CC_CFGGEN           0x15
#define CC_Q_SELECT         0x16
#define CC_Q_SIZE           0x18
#define CC_Q_MSIX           0x1a
#define CC_Q_ENABLE         0x1c
#define CC_Q_NOFF           0x1e
#define CC_Q_DESC           0x20
#define CC_Q_DRIVER         0x28
#define CC_Q_DEVICE         0x30
#define CC_MIN_LEN          0x38

#define ST_ACKNOWLEDGE      0x01
#define ST_DRIVER           0x02
#define ST_DRIVER_OK        0x04
#define ST_FEATURES_OK      0x08
#define ST_NEEDS_RESET      0x40
#define ST_FAILED           0x80

/* feature bits: low dword */
#define F_BLK_RO            (1 << 5)
#define F_BLK_FLUSH         (1 << 9)
#define F_INDIRECT_DESC     (1 << 28)
/* high dword (bit - 32) */
#define F_HI_VERSION_1      (1 << 0)
#define F_HI_ACCESS_PLATFORM (1 << 1)
#define ACCEPT_LO           (F_BLK_RO | F_BLK_FLUSH | F_INDIRECT_DESC)
#define ACCEPT_HI           (F_HI_VERSION_1 | F_HI_ACCESS_PLATFORM)

#define T_IN                0
#define T_OUT               1
#define T_FLUSH             4
#define T_GET_ID            8
#define S_OK                0
#define S_IOERR             1

#define DESC_F_NEXT         1
#define DESC_F_WRITE        2
#define DESC_F_INDIRECT     4

#define DIR_NONE            0
#define DIR_OUT             1           /* data device-readable */
#define DIR_IN              2           /* data device-writable */

#define QMAX                16          /* ring entries we use at most */
#define POLL_LIMIT          300000000   /* used->idx polls per request */
#define SPIN_LIMIT          10000000    /* status register polls (reset) */
#define ID_BYTES            20
#define CODE_CALLS          100         /* calls of the code before and after the DMA */
#define SPAN_NOPS           8           /* nops at the end of the first page (two-page case) */

/* PCI configuration space offsets */
#define PCI_COMMAND_OFF     0x04
#define PCI_STATUS_OFF      0x06
#define PCI_HEADER_TYPE_OFF 0x0e
#define PCI_BAR0_OFF        0x10
#define PCI_CAP_PTR_OFF     0x34
#define PCI_CMD_MEMORY      0x2
#define PCI_CMD_MASTER      0x4
#define PCI_STS_INTERRUPT   0x08
#define PCI_STS_CAP_LIST    0x10

/* FAIL32 without the "FAIL: " prefix, ending a message begun with PRINT32 "FAIL: ...". */
.macro FAIL32_TAIL str
    PRINT32 "\str\n"
    movb $EXIT_FAIL, %al
    jmp exit32
.endm

/* REQUEST type, buf, len, dir[, indirect]: one request for sector rq_sector_hi:lo, waits
 * for its completion; EAX = the status byte the device wrote. */
.macro REQUEST type, buf, len, dir, indirect=0
    movl $\type, rq_type
    movl $\buf, rq_buf
    movl $\len, rq_len
    movl $\dir, rq_dir
    movl $\indirect, rq_indirect
    call do_request
.endm

    .text
    .code32
    .globl main32
main32:
    PRINT32 "virtio-blk: polled virtio 1.x driver\n"

    call mb_cmdline32
    movl $key_disk, %esi
    xorl %eax, %eax
    call cmdline_uint32
    movl %eax, opt_disk
    movl $key_sector, %esi
    movl $1, %eax
    call cmdline_uint32
    movl %eax, opt_sector
    movl $key_seed, %esi
    movl $1, %eax
    call cmdline_uint32
    movl %eax, opt_seed
    movl $key_readonly, %esi
    xorl %eax, %eax
    call cmdline_uint32
    movl %eax, opt_readonly
    movl $key_dmacode, %esi
    xorl %eax, %eax
    call cmdline_uint32
    movl %eax, opt_dmacode
    movl $key_codesector, %esi
    movl $2, %eax
    call cmdline_uint32
    movl %eax, opt_codesector

    call find_device
    call read_caps
    call virtio_init
    call read_capacity

    cmpl $0, capacity_hi            /* the sector under test must exist */
    jne 1f
    movl opt_sector, %eax
    cmpl capacity_lo, %eax
    jb 1f
    FAIL32 "sector= is beyond the capacity"
1:  cmpl $0, opt_dmacode
    je 1f
    cmpl $0, capacity_hi
    jne 2f
    movl opt_codesector, %eax
    cmpl capacity_lo, %eax
    jb 2f
    FAIL32 "codesector= is beyond the capacity"
2:  movl opt_codesector, %eax
    cmpl opt_sector, %eax
    jne 1f
    FAIL32 "codesector= must differ from sector= (that sector gets the write pattern)"
1:  cmpl $0, opt_readonly
    jne 2f
    call test_write_read
    jmp 3f
2:  call test_readonly
3:  call test_sector0
    call test_get_id
    call test_out_of_range
    call test_indirect
    cmpl $0, opt_dmacode
    je 1f
    call test_dma_code
1:  call test_isr
    call device_reset
    PRINT32 "PASS\n"
    movb $EXIT_PASS, %al
    jmp exit32

/* ---- PCI configuration space (mechanism #1) ------------------------------------------ */

/* pci_read32: EAX = config offset -> EAX = the dword containing it, of the function in
 * pci_addr. */
pci_read32:
    pushl %edx
    andl $0xfc, %eax
    orl pci_addr, %eax
    movw $PCI_CFG_ADDR, %dx
    outl %eax, %dx
    movw $PCI_CFG_DATA, %dx
    inl %dx, %eax
    popl %edx
    ret

/* pci_read8: EAX = config offset -> EAX = that byte. */
pci_read8:
    pushl %ecx
    movl %eax, %ecx
    call pci_read32
    andl $3, %ecx
    shll $3, %ecx
    shrl %cl, %eax
    andl $0xff, %eax
    popl %ecx
    ret

/* pci_read16: EAX = config offset (even) -> EAX = that word. */
pci_read16:
    pushl %ecx
    movl %eax, %ecx
    call pci_read32
    andl $2, %ecx
    shll $3, %ecx
    shrl %cl, %eax
    andl $0xffff, %eax
    popl %ecx
    ret

/* pci_write16: EAX = config offset (even), EDX = value; a 16-bit write to 0xCFC + (off & 2). */
pci_write16:
    pushl %eax
    pushl %ecx
    pushl %edx
    movl %edx, %ecx                 /* value */
    movl %eax, %edx
    andl $2, %edx
    addl $PCI_CFG_DATA, %edx        /* data port */
    andl $0xfc, %eax
    orl pci_addr, %eax
    pushl %edx
    movw $PCI_CFG_ADDR, %dx
    outl %eax, %dx
    popl %edx
    movl %ecx, %eax
    outw %ax, %dx
    popl %edx
    popl %ecx
    popl %eax
    ret

/* find_device: the opt_disk-th 1af4:1042 function on bus 0 -> pci_addr.  Prints where it
 * is and turns on memory decoding and bus mastering (the BARs are left as assigned). */
find_device:
    movl opt_disk, %ebx             /* matches still to skip */
    xorl %esi, %esi                 /* slot */
.Lfd_slot:
    xorl %edi, %edi                 /* function */
.Lfd_fn:
    movl %esi, %eax
    shll $11, %eax
    movl %edi, %ecx
    shll $8, %ecx
    orl %ecx, %eax
    orl $0x80000000, %eax
    movl %eax, pci_addr
    xorl %eax, %eax
    call pci_read32                 /* device << 16 | vendor */
    cmpw $0xffff, %ax
    jne 1f
    testl %edi, %edi                /* no function 0: empty slot */
    jz .Lfd_next_slot
    jmp .Lfd_next_fn
1:  cmpl $((VIRTIO_BLK_MODERN << 16) | VIRTIO_VENDOR), %eax
    jne 2f
    testl %ebx, %ebx
    jz .Lfd_found
    decl %ebx
2:  testl %edi, %edi
    jnz .Lfd_next_fn
    movl $PCI_HEADER_TYPE_OFF, %eax
    call pci_read8
    testb $0x80, %al                /* multi-function: functions 1-7 too */
    jz .Lfd_next_slot
.Lfd_next_fn:
    incl %edi
    cmpl $8, %edi
    jb .Lfd_fn
.Lfd_next_slot:
    incl %esi
    cmpl $32, %esi
    jb .Lfd_slot
    PRINT32 "FAIL: virtio-blk device disk="
    movl opt_disk, %eax
    call putdec32
    FAIL32_TAIL " (1af4:1042, counted from 0) not found on PCI bus 0"
.Lfd_found:
    PRINT32 "virtio-blk at 00:"
    movl %esi, %eax
    call puthex8_32
    PRINT32 "."
    movl %edi, %eax
    addb $'0', %al
    call putc32
    PRINT32 "\n"
    movl $PCI_COMMAND_OFF, %eax
    call pci_read16
    movl %eax, %edx
    orl $(PCI_CMD_MEMORY | PCI_CMD_MASTER), %edx
    movl $PCI_COMMAND_OFF, %eax
    call pci_write16
    call pci_read16
    andl $(PCI_CMD_MEMORY | PCI_CMD_MASTER), %eax
    cmpl $(PCI_CMD_MEMORY | PCI_CMD_MASTER), %eax
    je 1f
    FAIL32 "PCI command memory/bus-master bits do not stick"
1:  ret

/* ---- virtio capabilities ------------------------------------------------------------- */

/* bar_address: EAX = BAR index -> EAX = its (memory) address; FAILs when unusable. */
bar_address:
    pushl %ebx
    pushl %ecx
    cmpl $5, %eax
    jbe 1f
    FAIL32 "capability names a BAR above 5"
1:  movl %eax, %ebx
    leal PCI_BAR0_OFF(,%ebx,4), %eax
    call pci_read32
    testb $1, %al
    jz 1f
    FAIL32 "capability in an I/O BAR (unsupported)"
1:  movl %eax, %ecx
    andl $6, %ecx
    cmpl $4, %ecx                   /* type 2: 64-bit, high dword in the next BAR */
    jne 2f
    cmpl $5, %ebx
    jne 1f
    FAIL32 "64-bit BAR 5"
1:  pushl %eax
    leal PCI_BAR0_OFF + 4(,%ebx,4), %eax
    call pci_read32
    testl %eax, %eax
    popl %eax
    jz 2f
    FAIL32 "BAR above 4 GiB (this payload runs with paging off)"
2:  andl $0xfffffff0, %eax
    jnz 1f
    FAIL32 "BAR not assigned (address 0)"
1:  popl %ecx
    popl %ebx
    ret

/* read_caps: walk the capability list; for the first vendor capability of each cfg_type
 * 1-4 keep BAR, offset, length and address (BAR address + offset); the notify multiplier. */
read_caps:
    movl $PCI_STATUS_OFF, %eax
    call pci_read16
    testl $PCI_STS_CAP_LIST, %eax
    jnz 1f
    FAIL32 "PCI status says there is no capability list"
1:  movl $PCI_CAP_PTR_OFF, %eax
    call pci_read8
    andl $0xfc, %eax
    movl %eax, %esi                 /* current capability */
    movl $49, %edi                  /* a loop guard: at most 48 capabilities fit */
.Lrc_next:
    testl %esi, %esi
    jz .Lrc_done
    decl %edi
    jnz 1f
    FAIL32 "capability list loops"
1:  cmpl $0x40, %esi
    jae 1f
    FAIL32 "capability pointer into the standard header"
1:  movl %esi, %eax
    call pci_read8
    cmpl $0x09, %eax                /* vendor-specific */
    jne .Lrc_follow
    leal 3(%esi), %eax
    call pci_read8
    movl %eax, %ebx                 /* cfg_type */
    cmpl $CAP_COMMON, %ebx
    jb .Lrc_follow
    cmpl $CAP_DEVICE, %ebx
    ja .Lrc_follow                  /* PCI-config access and others: not used */
    cmpl $0, cap_addr - 4(,%ebx,4)  /* the first one of each type only */
    jne .Lrc_follow
    leal 2(%esi), %eax
    call pci_read8                  /* cap_len */
    cmpl $16, %eax
    jae 1f
    FAIL32 "virtio capability shorter than 16 bytes"
1:  leal 4(%esi), %eax
    call pci_read8
    movl %eax, cap_bar - 4(,%ebx,4)
    call bar_address
    movl %eax, bar_addr - 4(,%ebx,4)
    leal 8(%esi), %eax
    call pci_read32
    movl %eax, cap_off - 4(,%ebx,4)
    leal 12(%esi), %eax
    call pci_read32
    movl %eax, cap_len - 4(,%ebx,4)
    movl bar_addr - 4(,%ebx,4), %eax
    addl cap_off - 4(,%ebx,4), %eax
    jnc 1f
    FAIL32 "capability offset wraps past 4 GiB"
1:  movl %eax, cap_addr - 4(,%ebx,4)
    cmpl $CAP_NOTIFY, %ebx
    jne .Lrc_follow
    leal 2(%esi), %eax
    call pci_read8
    cmpl $20, %eax
    jae 1f
    FAIL32 "notify capability shorter than 20 bytes"
1:  leal 16(%esi), %eax
    call pci_read32
    movl %eax, notify_mult
.Lrc_follow:
    leal 1(%esi), %eax
    call pci_read8
    andl $0xfc, %eax
    movl %eax, %esi
    jmp .Lrc_next
.Lrc_done:
    movl $CAP_COMMON, %ebx
.Lrc_print:
    cmpl $0, cap_addr - 4(,%ebx,4)
    jne 1f
    PRINT32 "FAIL: no "
    movl cap_names - 4(,%ebx,4), %esi
    call puts32
    FAIL32_TAIL " capability"
1:  movl cap_names - 4(,%ebx,4), %esi
    call puts32
    PRINT32 " cfg: bar "
    movl cap_bar - 4(,%ebx,4), %eax
    call putdec32
    PRINT32 " at 0x"
    movl bar_addr - 4(,%ebx,4), %eax
    call puthex32
    PRINT32 " offset 0x"
    movl cap_off - 4(,%ebx,4), %eax
    call puthex32
    PRINT32 " length 0x"
    movl cap_len - 4(,%ebx,4), %eax
    call puthex32
    cmpl $CAP_NOTIFY, %ebx
    jne 1f
    PRINT32 " multiplier "
    movl notify_mult, %eax
    call putdec32
1:  PRINT32 "\n"
    movl cap_len - 4(,%ebx,4), %eax
    cmpl cap_min_len - 4(,%ebx,4), %eax
    jae 1f
    PRINT32 "FAIL: "
    movl cap_names - 4(,%ebx,4), %esi
    call puts32
    FAIL32_TAIL " capability too short"
1:  incl %ebx
    cmpl $CAP_DEVICE, %ebx
    jbe .Lrc_print
    ret

/* ---- virtio initialisation ----------------------------------------------------------- */

/* set_status: AL = bits to add to device_status (read-modify-write). */
set_status:
    pushl %edx
    pushl %eax
    movl cap_addr + 0, %edx         /* common cfg */
    movb CC_STATUS(%edx), %ah       /* MMIO only through plain MOVs, like readb/writeb */
    orb %ah, %al
    movb %al, CC_STATUS(%edx)
    popl %eax
    popl %edx
    ret

/* reset_and_wait: write 0 to device_status and wait until it reads back 0. */
reset_and_wait:
    pushl %eax
    pushl %ecx
    pushl %edx
    movl cap_addr + 0, %edx
    movb $0, CC_STATUS(%edx)
    movl $SPIN_LIMIT, %ecx
1:  movb CC_STATUS(%edx), %al
    testb %al, %al
    jz 2f
    pause
    decl %ecx
    jnz 1b
    FAIL32 "device_status does not read 0 after reset"
2:  popl %edx
    popl %ecx
    popl %eax
    ret

virtio_init:
    movl cap_addr + 0, %ebx         /* EBX = common cfg throughout */
    call reset_and_wait
    movb $ST_ACKNOWLEDGE, %al
    call set_status
    movb $ST_DRIVER, %al
    call set_status

    /* features */
    movl $0, CC_DFSELECT(%ebx)
    movl CC_DF(%ebx), %eax
    movl %eax, dev_feat_lo
    movl $1, CC_DFSELECT(%ebx)
    movl CC_DF(%ebx), %eax
    movl %eax, dev_feat_hi
    PRINT32 "device features 0x"
    call puthex32
    movl dev_feat_lo, %eax
    call puthex32
    PRINT32 "\n"
    testl $F_HI_VERSION_1, dev_feat_hi
    jnz 1f
    FAIL32 "device does not offer VIRTIO_F_VERSION_1"
1:  movl dev_feat_lo, %eax
    andl $ACCEPT_LO, %eax
    movl %eax, drv_feat_lo
    movl dev_feat_hi, %eax
    andl $ACCEPT_HI, %eax
    movl %eax, drv_feat_hi
    movl $0, CC_GFSELECT(%ebx)
    movl drv_feat_lo, %eax
    movl %eax, CC_GF(%ebx)
    movl $1, CC_GFSELECT(%ebx)
    movl drv_feat_hi, %eax
    movl %eax, CC_GF(%ebx)
    PRINT32 "driver features 0x"
    call puthex32
    movl drv_feat_lo, %eax
    call puthex32
    PRINT32 "\n"
    movb $ST_FEATURES_OK, %al
    call set_status
    movb CC_STATUS(%ebx), %al
    testb $ST_FEATURES_OK, %al
    jnz 1f
    FAIL32 "device did not keep FEATURES_OK (refused our features)"
1:  PRINT32 "features ok\n"

    /* queue 0 */
    movw $0xffff, CC_MSIX(%ebx)     /* no config vector either: MSI-X stays off */
    movzwl CC_NUMQ(%ebx), %eax
    testl %eax, %eax
    jnz 1f
    FAIL32 "device has no queues (num_queues 0)"
1:  movw $0, CC_Q_SELECT(%ebx)
    movzwl CC_Q_SIZE(%ebx), %eax
    testl %eax, %eax
    jnz 1f
    FAIL32 "queue 0 is not available (queue_size 0)"
1:  PRINT32 "queue 0 max size "
    call putdec32
    PRINT32 "\n"
    movw CC_Q_ENABLE(%ebx), %dx
    testw %dx, %dx
    jz 1f
    FAIL32 "queue 0 enabled right after reset"
1:  cmpl $QMAX, %eax
    jbe 1f
    movl $QMAX, %eax
1:  cmpl $4, %eax
    jae 1f
    FAIL32 "queue 0 has fewer than 4 entries"
1:  movl %eax, qsize
    movw %ax, CC_Q_SIZE(%ebx)
    movw $0xffff, CC_Q_MSIX(%ebx)

    /* zero our rings (and the indirect table) */
    movl $vq_desc, %edi
    movl $(4 * 4096 / 4), %ecx
    xorl %eax, %eax
    rep stosl
    movl %eax, avail_shadow
    movl %eax, used_last
    movl $vq_desc, CC_Q_DESC(%ebx)
    movl $0, CC_Q_DESC + 4(%ebx)
    movl $vq_avail, CC_Q_DRIVER(%ebx)
    movl $0, CC_Q_DRIVER + 4(%ebx)
    movl $vq_used, CC_Q_DEVICE(%ebx)
    movl $0, CC_Q_DEVICE + 4(%ebx)

    /* notify address: notify cap + queue_notify_off * multiplier, inside the cap */
    movzwl CC_Q_NOFF(%ebx), %eax
    mull notify_mult
    testl %edx, %edx
    jnz 2f
    movl %eax, %ecx
    addl $2, %ecx
    jc 2f
    cmpl cap_len + 4, %ecx
    ja 2f
    addl cap_addr + 4, %eax
    jnc 1f
2:  FAIL32 "queue_notify_off * multiplier lies outside the notify capability"
1:  movl %eax, notify_addr

    movw $1, CC_Q_ENABLE(%ebx)
    movw CC_Q_ENABLE(%ebx), %ax
    cmpw $1, %ax
    je 1f
    FAIL32 "queue_enable does not read 1"
1:  movb $ST_DRIVER_OK, %al
    call set_status
    movzbl CC_STATUS(%ebx), %eax
    testb $(ST_NEEDS_RESET | ST_FAILED), %al
    jnz 1f
    testb $ST_DRIVER_OK, %al
    jnz 2f
1:  PRINT32 "FAIL: device_status 0x"
    call puthex8_32
    FAIL32_TAIL " after DRIVER_OK"
2:  PRINT32 "queue size "
    movl qsize, %eax
    call putdec32
    PRINT32 "\n"
    ret

/* read_capacity: 64-bit capacity at device config offset 0, as two dwords read under an
 * unchanged config_generation. */
read_capacity:
    movl cap_addr + 0, %ebx
    movl cap_addr + 12, %esi        /* device cfg */
    movl $16, %ecx
1:  movzbl CC_CFGGEN(%ebx), %edi
    movl 0(%esi), %eax
    movl 4(%esi), %edx
    movzbl CC_CFGGEN(%ebx), %ebp
    cmpl %ebp, %edi
    je 2f
    loop 1b
    FAIL32 "config_generation keeps changing"
2:  movl %eax, capacity_lo
    movl %edx, capacity_hi
    PRINT32 "capacity "
    call putdec64_32
    PRINT32 " sectors\n"
    orl %edx, %eax
    jnz 1f
    FAIL32 "capacity is 0"
1:  ret

/* ---- requests ------------------------------------------------------------------------ */

/* build_chain: EDI = where the first descriptor goes, EBX = its index in that table.
 * Header (device-readable), data per rq_dir, status (device-writable), linked by NEXT.
 * Out: ECX = number of descriptors. */
build_chain:
    pushl %eax
    pushl %edx
    pushl %edi
    movl $req_hdr, 0(%edi)
    movl $0, 4(%edi)
    movl $16, 8(%edi)
    movw $DESC_F_NEXT, 12(%edi)
    leal 1(%ebx), %eax
    movw %ax, 14(%edi)
    movl $1, %ecx
    addl $16, %edi
    movl rq_dir, %edx
    cmpl $DIR_NONE, %edx
    je 1f
    movl rq_buf, %eax
    movl %eax, 0(%edi)
    movl $0, 4(%edi)
    movl rq_len, %eax
    movl %eax, 8(%edi)
    movw $DESC_F_NEXT, %ax
    cmpl $DIR_IN, %edx
    jne 2f
    orw $DESC_F_WRITE, %ax
2:  movw %ax, 12(%edi)
    leal 2(%ebx), %eax
    movw %ax, 14(%edi)
    incl %ecx
    addl $16, %edi
1:  movl $req_status, 0(%edi)
    movl $0, 4(%edi)
    movl $1, 8(%edi)
    movw $DESC_F_WRITE, 12(%edi)
    movw $0, 14(%edi)
    incl %ecx
    popl %edi
    popl %edx
    popl %eax
    ret

/* do_request: the request described by rq_* -> EAX = status byte, rq_used_len = the used
 * element's len.  Direct chains use descriptors 4k..4k+2 (k rotating, so heads differ);
 * indirect ones put the chain in indirect_tbl behind one INDIRECT descriptor at 4k. */
do_request:
    pushal
    movl rq_type, %eax
    movl %eax, req_hdr
    movl $0, req_hdr + 4
    movl rq_sector_lo, %eax
    movl %eax, req_hdr + 8
    movl rq_sector_hi, %eax
    movl %eax, req_hdr + 12
    movb $0xff, req_status

    movl req_count, %eax            /* head = (req_count % (qsize / 4)) * 4 */
    incl req_count
    xorl %edx, %edx
    movl qsize, %ecx
    shrl $2, %ecx
    divl %ecx
    leal (,%edx,4), %ebx            /* EBX = head */
    movl %ebx, %edi
    shll $4, %edi
    addl $vq_desc, %edi             /* EDI = &desc[head] */
    cmpl $0, rq_indirect
    jne 1f
    call build_chain
    jmp 2f
1:  pushl %ebx
    pushl %edi
    movl $indirect_tbl, %edi
    xorl %ebx, %ebx
    call build_chain
    popl %edi
    popl %ebx
    movl $indirect_tbl, 0(%edi)
    movl $0, 4(%edi)
    shll $4, %ecx
    movl %ecx, 8(%edi)
    movw $DESC_F_INDIRECT, 12(%edi)
    movw $0, 14(%edi)

    /* publish: ring entry, barrier, index, barrier, notify */
2:  movl avail_shadow, %eax
    xorl %edx, %edx
    divl qsize
    movw %bx, vq_avail + 4(,%edx,2)
    mfence
    incl avail_shadow
    movl avail_shadow, %eax
    movw %ax, vq_avail + 2
    mfence
    movl notify_addr, %edi
    movw $0, (%edi)                 /* queue index 0 */

    /* poll used->idx */
    movl $POLL_LIMIT, %ecx
    movl used_last, %edx
1:  movzwl vq_used + 2, %eax
    cmpw %dx, %ax
    jne 2f
    pause
    decl %ecx
    jnz 1b
    PRINT32 "FAIL: request timed out (type "
    movl rq_type, %eax
    call putdec32
    FAIL32_TAIL ")"
2:  mfence
    subl %edx, %eax
    andl $0xffff, %eax
    cmpl $1, %eax
    je 1f
    FAIL32 "used->idx moved by more than the one request in flight"
1:  movl used_last, %eax
    xorl %edx, %edx
    divl qsize
    movl vq_used + 4(,%edx,8), %eax /* id */
    cmpl %ebx, %eax
    je 1f
    PRINT32 "FAIL: used ring returned id "
    call putdec32
    PRINT32 ", expected "
    movl %ebx, %eax
    call putdec32
    FAIL32_TAIL ""
1:  movl vq_used + 8(,%edx,8), %eax /* len */
    movl %eax, rq_used_len
    incl used_last
    movzbl req_status, %eax
    movl %eax, rq_status
    popal
    movl rq_status, %eax
    ret

/* expect_ok: EAX = status; FAIL naming the request unless VIRTIO_BLK_S_OK. */
expect_ok:
    testl %eax, %eax
    jnz 1f
    ret
1:  PRINT32 "FAIL: request type "
    pushl %eax
    movl rq_type, %eax
    call putdec32
    PRINT32 " sector "
    movl rq_sector_lo, %eax
    movl rq_sector_hi, %edx
    call putdec64_32
    PRINT32 " completed with status "
    popl %eax
    call putdec32
    FAIL32_TAIL ""

/* expect_read_ok: expect_ok, and the used len must cover the data and the status byte
 * (the status is the last writable byte, and a driver may only trust len bytes). */
expect_read_ok:
    call expect_ok
    pushl %eax
    movl rq_len, %eax
    incl %eax
    cmpl %eax, rq_used_len
    je 1f
    PRINT32 "FAIL: used len "
    movl rq_used_len, %eax
    call putdec32
    PRINT32 " for a read of "
    movl rq_len, %eax
    call putdec32
    FAIL32_TAIL " bytes (expected data + 1 status byte)"
1:  popl %eax
    ret

set_sector_opt:
    pushl %eax
    movl opt_sector, %eax
    movl %eax, rq_sector_lo
    movl $0, rq_sector_hi
    popl %eax
    ret

/* fill_pattern: wbuf[i] = (i * 7 + seed) & 0xff */
fill_pattern:
    pushal
    xorl %ecx, %ecx
    movl opt_seed, %eax
1:  movb %al, wbuf(%ecx)
    addl $7, %eax
    incl %ecx
    cmpl $512, %ecx
    jb 1b
    popal
    ret

/* cmp512: ESI, EDI -> ZF set when the 512 bytes are equal. */
cmp512:
    pushl %ecx
    pushl %esi
    pushl %edi
    movl $128, %ecx
    repe cmpsl
    popl %edi
    popl %esi
    popl %ecx
    ret

/* clear512: EDI = buffer, filled with 0xee (so stale data cannot pass a compare). */
clear512:
    pushal
    movl $128, %ecx
    movl $0xeeeeeeee, %eax
    rep stosl
    popal
    ret

print_sector_line:
    PRINT32 "sector "
    movl opt_sector, %eax
    call putdec32
    ret

test_write_read:
    testl $F_BLK_RO, dev_feat_lo
    jz 1f
    FAIL32 "device offers VIRTIO_BLK_F_RO (read-only) but readonly=1 was not given"
1:  call fill_pattern
    call set_sector_opt
    REQUEST T_OUT, wbuf, 512, DIR_OUT
    call expect_ok
    testl $F_BLK_FLUSH, drv_feat_lo
    jnz 1f
    PRINT32 "flush not offered\n"
    jmp 2f
1:  movl $0, rq_sector_lo          /* the spec wants sector 0 in FLUSH and GET_ID */
    movl $0, rq_sector_hi
    REQUEST T_FLUSH, 0, 0, DIR_NONE
    call expect_ok
    PRINT32 "flush ok\n"
    call set_sector_opt
2:  movl $rbuf, %edi
    call clear512
    REQUEST T_IN, rbuf, 512, DIR_IN
    call expect_read_ok
    movl $wbuf, %esi
    movl $rbuf, %edi
    call cmp512
    je 1f
    PRINT32 "FAIL: "
    call print_sector_line
    FAIL32_TAIL " read back differs from what was written"
1:  movl $wbuf, %esi
    movl $ref_buf, %edi
    movl $128, %ecx
    rep movsl
    PRINT32 "write/read "
    call print_sector_line
    PRINT32 " ok\n"
    ret

test_readonly:
    testl $F_BLK_RO, dev_feat_lo
    jnz 1f
    FAIL32 "readonly=1 but the device does not offer VIRTIO_BLK_F_RO"
1:  PRINT32 "device offers VIRTIO_BLK_F_RO\n"
    call set_sector_opt
    movl $rbuf, %edi
    call clear512
    REQUEST T_IN, rbuf, 512, DIR_IN
    call expect_read_ok
    call fill_pattern
    REQUEST T_OUT, wbuf, 512, DIR_OUT
    cmpl $S_IOERR, %eax
    je 1f
    PRINT32 "FAIL: write to a read-only device completed with status "
    call putdec32
    FAIL32_TAIL " (expected 1, IOERR)"
1:  movl $rbuf2, %edi
    call clear512
    REQUEST T_IN, rbuf2, 512, DIR_IN
    call expect_read_ok
    movl $rbuf, %esi
    movl $rbuf2, %edi
    call cmp512
    je 1f
    PRINT32 "FAIL: "
    call print_sector_line
    FAIL32_TAIL " changed by a refused write"
1:  movl $rbuf, %esi
    movl $ref_buf, %edi
    movl $128, %ecx
    rep movsl
    PRINT32 "readonly write refused\n"
    ret

test_sector0:
    movl $0, rq_sector_lo
    movl $0, rq_sector_hi
    movl $rbuf2, %edi
    call clear512
    REQUEST T_IN, rbuf2, 512, DIR_IN
    call expect_read_ok
    PRINT32 "sector 0: "
    xorl %ecx, %ecx
1:  movb rbuf2(%ecx), %al
    call puthex8_32
    incl %ecx
    cmpl $16, %ecx
    jb 1b
    PRINT32 "\n"
    ret

test_get_id:
    movl $0, rq_sector_lo
    movl $0, rq_sector_hi
    movl $idbuf, %edi
    xorl %eax, %eax
    movl $(32 / 4), %ecx
    rep stosl
    REQUEST T_GET_ID, idbuf, ID_BYTES, DIR_IN
    call expect_ok
    PRINT32 "serial: "
    movl $idbuf, %esi
    movl $ID_BYTES, %ecx
    call putsn32
    PRINT32 "\n"
    ret

test_out_of_range:
    movl capacity_lo, %eax
    movl %eax, rq_sector_lo
    movl capacity_hi, %eax
    movl %eax, rq_sector_hi
    REQUEST T_IN, rbuf2, 512, DIR_IN
    PRINT32 "out of range read: status "
    call putdec32
    PRINT32 "\n"
    cmpl $S_IOERR, %eax
    je 1f
    FAIL32 "a read at sector = capacity must fail with IOERR (1)"
1:  ret

test_indirect:
    testl $F_INDIRECT_DESC, drv_feat_lo
    jnz 1f
    PRINT32 "indirect descriptors not offered\n"
    ret
1:  call set_sector_opt
    movl $rbuf2, %edi
    call clear512
    REQUEST T_IN, rbuf2, 512, DIR_IN, 1
    call expect_read_ok
    movl $ref_buf, %esi
    movl $rbuf2, %edi
    call cmp512
    je 1f
    PRINT32 "FAIL: indirect read of "
    call print_sector_line
    FAIL32_TAIL " returned different data"
1:  PRINT32 "indirect read ok\n"
    ret

/* test_isr: MSI-X was never enabled and we asked for interrupts (avail flags 0), so each
 * completion set ISR bit 0 and asserted INTx (which nothing receives: IF=0).  Reading the
 * ISR returns and clears it, and deasserts INTx (PCI status bit 3 follows the line). */
test_isr:
    movl $PCI_STATUS_OFF, %eax
    call pci_read16
    movl %eax, %ebx                 /* PCI status before */
    movl cap_addr + 8, %esi
    movzbl (%esi), %ecx             /* ISR: read-to-clear */
    movzbl (%esi), %edx             /* again: cleared */
    movl $PCI_STATUS_OFF, %eax
    call pci_read16
    movl %eax, %edi                 /* PCI status after */
    PRINT32 "isr 0x"
    movl %ecx, %eax
    call puthex8_32
    PRINT32 " then 0x"
    movl %edx, %eax
    call puthex8_32
    PRINT32 ", pci status interrupt "
    movl %ebx, %eax
    shrl $3, %eax
    andl $1, %eax
    call putdec32
    PRINT32 " then "
    movl %edi, %eax
    shrl $3, %eax
    andl $1, %eax
    call putdec32
    PRINT32 "\n"
    testl $1, %ecx
    jnz 1f
    FAIL32 "ISR queue bit not set after completions (MSI-X off, interrupts not suppressed)"
1:  testl $1, %edx
    jz 1f
    FAIL32 "reading the ISR did not clear it"
1:  testl $PCI_STS_INTERRUPT, %ebx
    jnz 1f
    FAIL32 "PCI status interrupt bit clear while the ISR was set (INTx not asserted)"
1:  testl $PCI_STS_INTERRUPT, %edi
    jz 1f
    FAIL32 "PCI status interrupt bit still set after the ISR read (INTx not deasserted)"
1:  ret

/* ---- DMA over translated code -------------------------------------------------------- */

/* A device write (DMA) into guest memory holding code the CPU has already run must make the
 * CPU run the new bytes: a binary translator has to drop what it translated from there (QEMU:
 * DMA goes through tb_invalidate_phys_range), as it does for CPU stores.  Paging is off, so
 * .bss is executable.
 *
 * Same page: code_page starts with `mov $1, %eax; ret` (b8 01 00 00 00 c3, the rest 0xcc),
 * put there with CPU stores and called CODE_CALLS times (each must return 1).  Then sector
 * codesector=C, which the host filled with `mov $2, %eax; ret` (b8 02 00 00 00 c3, int3
 * padding), is read by a virtio IN request straight into code_page, and the function is
 * called CODE_CALLS times again: each call must return 2.
 * Two pages: code_span's function starts SPAN_NOPS nops before the end of its first page and
 * goes on with `mov $1, %eax; ret` at the start of the second, so its translation spans both
 * pages (or chains into the second); the same sector is read into the second page only. */
test_dma_code:
    movl $code_page, %edi           /* same page */
    movl $4096, %ecx
    movb $0xcc, %al
    rep stosb
    movl $code_page, %edi
    call put_mov1_ret
    movl $code_page, %esi
    movl $code_page, %edi
    call dma_code_case
    je 1f
    cmpl $1, %eax
    jne 2f
    FAIL32 "stale code after DMA"
2:  PRINT32 "FAIL: code after DMA returned 0x"
    call puthex32
    FAIL32_TAIL " (expected 2)"
1:  PRINT32 "dma over code ok\n"

    movl $code_span, %edi           /* two pages */
    movl $8192, %ecx
    movb $0xcc, %al
    rep stosb
    movl $code_span + 4096 - SPAN_NOPS, %edi
    movl $SPAN_NOPS, %ecx
    movb $0x90, %al
    rep stosb
    call put_mov1_ret               /* EDI = code_span + 4096 */
    movl $code_span + 4096 - SPAN_NOPS, %esi
    movl $code_span + 4096, %edi
    call dma_code_case
    je 1f
    cmpl $1, %eax
    jne 2f
    FAIL32 "stale code after DMA (second page of a two-page function)"
2:  PRINT32 "FAIL: two-page code after DMA returned 0x"
    call puthex32
    FAIL32_TAIL " (expected 2)"
1:  PRINT32 "dma over code ok (second page of a two-page function)\n"
    ret

/* put_mov1_ret: EDI = where; stores `mov $1, %eax; ret` there with CPU stores. */
put_mov1_ret:
    movb $0xb8, 0(%edi)
    movl $1, 1(%edi)
    movb $0xc3, 5(%edi)
    ret

/* dma_code_case: ESI = function (returns 1 now), EDI = where the code sector is read to.
 * Calls it CODE_CALLS times (FAIL unless 1), reads sector codesector= into EDI by DMA,
 * checks the bytes arrived, calls it CODE_CALLS times again.
 * Out: ZF set when every call after the DMA returned 2, else ZF clear, EAX = the value. */
dma_code_case:
    movl $1, %edx
    call call_code_n
    je 1f
    PRINT32 "FAIL: code before DMA returned 0x"
    call puthex32
    FAIL32_TAIL " (expected 1)"
1:  movl opt_codesector, %eax
    movl %eax, rq_sector_lo
    movl $0, rq_sector_hi
    movl %edi, rq_buf               /* REQUEST with a buffer address taken at run time */
    movl $T_IN, rq_type
    movl $512, rq_len
    movl $DIR_IN, rq_dir
    movl $0, rq_indirect
    call do_request
    call expect_read_ok
    cmpl $0x000002b8, 0(%edi)       /* b8 02 00 00 00 c3 cc cc */
    jne 1f
    cmpl $0xccccc300, 4(%edi)
    je 2f
1:  PRINT32 "FAIL: the DMA did not put the code sector in memory: "
    xorl %ecx, %ecx
3:  movb (%edi,%ecx), %al
    call puthex8_32
    incl %ecx
    cmpl $8, %ecx
    jb 3b
    FAIL32_TAIL " (expected b802000000c3cccc: sector codesector= of the image)"
2:  movl $2, %edx
    call call_code_n
    ret

/* call_code_n: ESI = function, EDX = expected EAX.  Calls it CODE_CALLS times, stopping at
 * the first other result.  Out: ZF set when all returned EDX; EAX = the last result. */
call_code_n:
    pushl %ecx
    movl $CODE_CALLS, %ecx
1:  call *%esi                      /* clobbers EAX only */
    cmpl %edx, %eax
    jne 2f
    loop 1b                         /* flags untouched: ZF still from the compare */
2:  popl %ecx
    ret

device_reset:
    call reset_and_wait
    PRINT32 "device reset ok\n"
    ret

/* putdec64_32: EDX:EAX printed as unsigned decimal. */
putdec64_32:
    pushal
    movl %edx, %esi                 /* high */
    movl %eax, %edi                 /* low */
    movl $10, %ebx
    xorl %ecx, %ecx
1:  xorl %edx, %edx
    movl %esi, %eax
    divl %ebx
    movl %eax, %esi
    movl %edi, %eax                 /* EDX = high remainder: (rem:low) / 10 fits */
    divl %ebx
    movl %eax, %edi
    pushl %edx
    incl %ecx
    movl %esi, %eax
    orl %edi, %eax
    jnz 1b
2:  popl %eax
    addb $'0', %al
    call putc32
    loop 2b
    popal
    ret

    .section .rodata
key_disk:     .asciz "disk="
key_sector:   .asciz "sector="
key_seed:     .asciz "seed="
key_readonly: .asciz "readonly="
key_dmacode:  .asciz "dmacode="
key_codesector: .asciz "codesector="
name_common:  .asciz "common"
name_notify:  .asciz "notify"
name_isr:     .asciz "isr"
name_device:  .asciz "device"
    .balign 4
/* indexed by cfg_type - 1 */
cap_names:    .long name_common, name_notify, name_isr, name_device
cap_min_len:  .long CC_MIN_LEN, 2, 1, 8

    .data
    .balign 4
opt_disk:     .long 0
opt_sector:   .long 0
opt_seed:     .long 0
opt_readonly: .long 0
opt_dmacode:  .long 0
opt_codesector: .long 0
pci_addr:     .long 0
/* per cfg_type - 1: BAR index, BAR address, offset, length, address of the structure */
cap_bar:      .long 0, 0, 0, 0
bar_addr:     .long 0, 0, 0, 0
cap_off:      .long 0, 0, 0, 0
cap_len:      .long 0, 0, 0, 0
cap_addr:     .long 0, 0, 0, 0
notify_mult:  .long 0
notify_addr:  .long 0
dev_feat_lo:  .long 0
dev_feat_hi:  .long 0
drv_feat_lo:  .long 0
drv_feat_hi:  .long 0
capacity_lo:  .long 0
capacity_hi:  .long 0
qsize:        .long 0
avail_shadow: .long 0
used_last:    .long 0
req_count:    .long 0
rq_type:      .long 0
rq_sector_lo: .long 0
rq_sector_hi: .long 0
rq_buf:       .long 0
rq_len:       .long 0
rq_dir:       .long 0
rq_indirect:  .long 0
rq_used_len:  .long 0
rq_status:    .long 0

    .bss
    .balign 4096
vq_desc:      .skip 4096            /* descriptor table (16 bytes x qsize) */
vq_avail:     .skip 4096            /* driver area: flags, idx, ring[qsize], used_event */
vq_used:      .skip 4096            /* device area: flags, idx, ring[qsize] (id, len) */
indirect_tbl: .skip 4096            /* an indirect descriptor table */
wbuf:         .skip 512
rbuf:         .skip 512
rbuf2:        .skip 512
ref_buf:      .skip 512             /* what sector S must contain */
req_hdr:      .skip 16              /* struct virtio_blk_req header: type, reserved, sector */
idbuf:        .skip 32
req_status:   .skip 4
    .balign 4096
code_page:    .skip 4096            /* dmacode=1: code overwritten by DMA (same page) */
code_span:    .skip 8192            /* dmacode=1: a function across two pages */
