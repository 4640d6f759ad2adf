/* The fixed board layout of quokka's PC machine: where devices and firmware tables live.
 * One place so boot loaders, ACPI tables and device models agree. */
#ifndef QUOKKA_VM_PLATFORM_H
#define QUOKKA_VM_PLATFORM_H

/* Port I/O */
#define PORT_PIT_BASE 0x40
#define PORT_I8042_DATA 0x60
#define PORT_I8042_CMD 0x64
#define PORT_CMOS_BASE 0x70 /* index 0x70, data 0x71 */
#define PORT_POST 0x80      /* POST code / I/O delay sink */
#define PORT_DEBUG_EXIT 0xf4
#define PORT_COM1 0x3f8
#define PORT_ACPI_PM1A_EVT 0x600 /* 4 bytes: PM1 status (2) + enable (2) */
#define PORT_ACPI_PM1A_CNT 0x604 /* 2 bytes */
#define PORT_ACPI_PM_TMR 0x608   /* 4 bytes, 3.579545 MHz */
#define PORT_ACPI_RESET 0x60c    /* FADT reset register: write 0x0e to reset */

/* ISA interrupt lines (== GSI) */
#define IRQ_PIT 0
#define IRQ_KEYBOARD 1
#define IRQ_COM1 4
#define IRQ_RTC 8
#define IRQ_ACPI_SCI 9
#define IRQ_MOUSE 12 /* i8042 auxiliary (PS/2 mouse) port */

/* Physical addresses */
#define PHYS_IOAPIC 0xFEC00000ULL
#define PHYS_LAPIC 0xFEE00000ULL
#define MMIO_HOLE_BASE 0xC0000000ULL /* equals GUEST_LOW_RAM_END */
#define PHYS_KVM_TSS 0xFFFBD000ULL   /* 3 pages KVM needs for real-mode emulation */
#define PHYS_KVM_IDENTITY_MAP 0xFFFBC000ULL

/* PCI (see hw/pci/pci.h): configuration mechanism #1 ports, ECAM for bus 0, and the windows
 * BARs are allocated from. The 64-bit window starts at the first GiB boundary above RAM. */
#define PORT_PCI_CONFIG_ADDRESS 0xcf8
#define PORT_PCI_CONFIG_DATA 0xcfc
#define PHYS_PCI_ECAM 0xE0000000ULL
#define PCI_ECAM_SIZE 0x100000ULL /* bus 0 only: 32 devices x 8 functions x 4 KiB */
#define PHYS_PCI_MMIO32 0xC0000000ULL
#define PCI_MMIO32_SIZE 0x20000000ULL /* up to the ECAM window */
#define PCI_MMIO64_ALIGN (1ULL << 30)
#define PCI_MMIO64_SIZE (64ULL << 30)
#define PORT_PCI_IO_BASE 0xc000
#define PCI_IO_SIZE 0x4000
/* PCI INTx: IOAPIC inputs 16-23 (level, active low, as on QEMU's PC) */
#define GSI_PCI_FIRST 16
#define GSI_PCI_COUNT 8
/* Second serial port */
#define PORT_COM2 0x2f8
#define IRQ_COM2 3

#define ACPI_SLP_TYP_S5 5 /* value the DSDT's _S5 package gives for PM1a_CNT.SLP_TYP */

#endif
