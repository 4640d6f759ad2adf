/* PCI: the host bridge (configuration mechanism #1 at 0xCF8/0xCFC and ECAM/MMCONFIG), the
 * configuration space of each function, BARs that move when the guest programs them, MSI-X
 * and INTx. One bus (bus 0), up to 32 devices, function 0 each.
 *
 * The VMM assigns every BAR an address from the board's windows (as firmware would) and turns
 * decoding on, so a guest (or a test payload) can use devices without assigning resources;
 * Linux keeps those assignments. When the guest rewrites a BAR or the command register, the
 * BAR's range moves on the MMIO/port bus (bus_remap): vCPUs keep looking ranges up without a
 * lock. A BAR programmed over another range is not decoded until it moves away.
 *
 * Every guest-controlled value is bounded: config offsets, BAR values (masked to their size),
 * MSI-X table indices. Config registers not backed by anything read as zero; writes to
 * read-only bits are ignored. */
#ifndef QUOKKA_HW_PCI_PCI_H
#define QUOKKA_HW_PCI_PCI_H

#include "hw/device.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PCI_CONFIG_SIZE 4096 /* PCI Express extended configuration space (ECAM) */
#define PCI_MAX_DEVICES 32
#define PCI_NUM_BARS 6

/* Standard header offsets and bits used outside pci.c */
#define PCI_VENDOR_ID 0x00
#define PCI_DEVICE_ID 0x02
#define PCI_COMMAND 0x04
#define PCI_COMMAND_IO 0x1
#define PCI_COMMAND_MEMORY 0x2
#define PCI_COMMAND_MASTER 0x4
#define PCI_COMMAND_INTX_DISABLE 0x400
#define PCI_STATUS 0x06
#define PCI_STATUS_INTERRUPT 0x08
#define PCI_STATUS_CAP_LIST 0x10
#define PCI_CLASS_REVISION 0x08
#define PCI_HEADER_TYPE 0x0e
#define PCI_BAR0 0x10
#define PCI_SUBSYSTEM_VENDOR_ID 0x2c
#define PCI_SUBSYSTEM_ID 0x2e
#define PCI_CAPABILITY_LIST 0x34
#define PCI_INTERRUPT_LINE 0x3c
#define PCI_INTERRUPT_PIN 0x3d

#define PCI_CAP_ID_MSIX 0x11
#define PCI_CAP_ID_VNDR 0x09

#define PCI_MSIX_ENTRY_SIZE 16
#define PCI_MSIX_MAX_VECTORS 2048

struct pci_bus;
struct pci_device;
struct aml_buf;

enum pci_bar_kind {
    PCI_BAR_MEM32,
    PCI_BAR_MEM64, /* takes two BAR slots (index and index+1) */
    PCI_BAR_IO,
};

struct pci_device_info {
    const char *name; /* for messages, e.g. "virtio-blk" */
    uint16_t vendor_id, device_id;
    uint16_t subsystem_vendor_id, subsystem_id;
    uint8_t revision;
    uint32_t class_code; /* class << 16 | subclass << 8 | prog-if */
};

/* Optional hooks a device gives for its own registers in configuration space (beyond the
 * standard header and the capabilities the PCI layer manages). Called with the PCI layer's
 * lock not held; offset is the register's offset, size 1, 2 or 4. (Guest config accesses are
 * serialised, so hooks never run concurrently with each other; they must not create or free
 * PCI devices.) */
struct pci_device_hooks {
    /* Return true and fill *value to answer a read (e.g. the virtio PCI-config window). */
    bool (*config_read)(void *opaque, uint32_t offset, unsigned size, uint32_t *value);
    /* Called after the PCI layer applied a guest write (the device may react). */
    void (*config_write)(void *opaque, uint32_t offset, unsigned size, uint32_t value);
    void *opaque;
};

/* --- the machine's side ---------------------------------------------------------------- */

/* Create the host bridge on the host's port and MMIO buses (0xCF8/0xCFC, ECAM at
 * PHYS_PCI_ECAM); BARs come from host->resources. */
struct pci_bus *pci_bus_new(const struct device_host *host, char *err, size_t errlen);
void pci_bus_free(struct pci_bus *bus);
struct snap_writer;
struct snap_reader;
/* Snapshots: the configuration latch and the host bridge (vCPUs stopped). */
void pci_bus_save(struct pci_bus *bus, struct snap_writer *w);
int pci_bus_load(struct pci_bus *bus, struct snap_reader *r, char *err, size_t errlen);
/* A function's configuration space (guest-writable bits) and MSI-X state; load moves BARs. */
void pci_device_save(struct pci_device *dev, struct snap_writer *w);
int pci_device_load(struct pci_device *dev, struct snap_reader *r);
/* AML for \_SB.PCI0: the root bridge (PNP0A08/PNP0A03), its bus-number, port and memory
 * windows (_CRS), _PRT for INTx, _OSC-less. */
void pci_bus_describe_acpi(struct pci_bus *bus, struct aml_buf *aml);

/* --- a device's side ----------------------------------------------------------------- */

/* A new function on the first free slot (slot 0 is the host bridge). */
struct pci_device *pci_device_new(struct pci_bus *bus, const struct pci_device_info *info,
                                  const struct pci_device_hooks *hooks, char *err, size_t errlen);
/* Remove it from the bus (its BARs stop decoding) and free it. */
void pci_device_free(struct pci_device *dev);

/* A BAR of `size` bytes (a power of two, >= 16 for memory, >= 4 for I/O), allocated from the
 * board's windows, decoded while the command register enables it. Accesses go to ops with the
 * offset inside the BAR. */
int pci_device_add_bar(struct pci_device *dev, unsigned index, enum pci_bar_kind kind,
                       uint64_t size, bool prefetchable, const struct bus_device_ops *ops,
                       void *opaque, char *err, size_t errlen);
/* The BAR's current guest address (what the guest programmed), for ioeventfd placement. */
uint64_t pci_device_bar_address(const struct pci_device *dev, unsigned index);
/* Called (on a vCPU thread, PCI lock not held) after a BAR moved or decoding changed;
 * address UINT64_MAX when not decoded. Optional. */
void pci_device_on_bar_move(struct pci_device *dev,
                            void (*moved)(void *opaque, unsigned index, uint64_t address),
                            void *opaque);

/* Append a capability: `body` is everything after the ID and next-pointer bytes (for a
 * vendor-specific capability the first body byte is its length field, which the caller
 * fills). Returns the capability's offset in config space, or 0 when it does not fit. */
uint8_t pci_device_add_capability(struct pci_device *dev, uint8_t cap_id, const void *body,
                                  size_t body_len);
/* Direct access to the function's config space, for a device's own registers set at creation
 * (the standard header and capability bodies). */
uint8_t *pci_device_config(struct pci_device *dev);
/* The function's write mask (a 1 bit: the guest may write that bit; everything starts
 * read-only except the standard header's writable fields), for a device's own writable
 * registers in config space, set at creation. */
uint8_t *pci_device_config_wmask(struct pci_device *dev);

/* MSI-X with nr_vectors (1..PCI_MSIX_MAX_VECTORS) in its own memory BAR `bar` (table at 0,
 * PBA after it): function mask, per-vector mask, pending bits. Each vector gets an MSI route
 * from the host, programmed when the guest unmasks it. */
int pci_device_init_msix(struct pci_device *dev, unsigned nr_vectors, unsigned bar, char *err,
                         size_t errlen);
/* True when the guest enabled MSI-X (so the device signals through vectors, not INTx). */
bool pci_msix_enabled(const struct pci_device *dev);
/* Signal a vector: fires it, or sets its pending bit while it (or the function) is masked;
 * vector out of range (or NO_VECTOR 0xffff): nothing. Any thread. */
void pci_msix_notify(struct pci_device *dev, unsigned vector);

/* INTx (pin A): level-triggered line through the IOAPIC (GSI from the slot); honours the
 * command register's INTx-disable and reflects the level in the status register. */
void pci_set_intx(struct pci_device *dev, int level);

#endif
