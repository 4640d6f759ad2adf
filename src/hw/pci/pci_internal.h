/* State shared by the PCI layer's files (pci.c: host bridge, config space, INTx; pci_bar.c:
 * BARs; msix.c: MSI-X; pci_acpi.c: the DSDT's description). Not for devices.
 *
 * Locking: bus->access_lock serialises the guest's configuration accesses (the 0xCF8 address
 * register and each data access, ECAM too) and device creation/removal; device hooks run with
 * it held. dev->lock protects one function's config bytes, BAR state, MSI-X table and INTx
 * level against device threads (pci_msix_notify, pci_set_intx); device hooks never run with
 * it held. bus->irq_lock (taken inside dev->lock) guards the shared INTx lines. Order:
 * access_lock -> dev->lock -> irq_lock. */
#ifndef QUOKKA_HW_PCI_PCI_INTERNAL_H
#define QUOKKA_HW_PCI_PCI_INTERNAL_H

#include "hw/pci/pci.h"
#include "vm/platform.h"

#include <pthread.h>

#define PCI_HOST_BRIDGE_SLOT 0
/* INTx swizzle: slot s, pin p (0 = INTA) drives GSI_PCI_FIRST + (s + p) % PCI_INTX_LINES.
 * The DSDT's _PRT says the same. The other GSIs of the PCI range stay free for others. */
#define PCI_INTX_LINES 4
#define PCI_NO_ADDRESS UINT64_MAX

#define PCI_REVISION_ID 0x08
#define PCI_CACHE_LINE_SIZE 0x0c
#define PCI_LATENCY_TIMER 0x0d
#define PCI_ROM_ADDRESS 0x30
#define PCI_BAR_END (PCI_BAR0 + 4 * PCI_NUM_BARS)
#define PCI_STD_HEADER_SIZE 0x40
#define PCI_CAP_SPACE_END 0x100 /* capabilities live in the first 256 bytes */

#define PCI_BAR_IO_FLAG 0x1
#define PCI_BAR_MEM64_FLAG 0x4
#define PCI_BAR_PREFETCH_FLAG 0x8
#define PCI_BAR_IO_MASK 0x3u
#define PCI_BAR_MEM_MASK 0xfu

struct pci_bar {
    bool present;
    bool upper; /* the high half of the 64-bit BAR in the slot below */
    enum pci_bar_kind kind;
    uint64_t size;
    struct range_alloc *window; /* where the firmware-style address came from */
    uint64_t allocated;
    uint64_t mapped; /* where it decodes now, PCI_NO_ADDRESS when not */
    const struct bus_device_ops *ops;
    void *opaque;
};

/* A BAR that moved or stopped/started decoding, reported after dev->lock is dropped. */
struct pci_bar_event {
    unsigned index;
    uint64_t address;
};

struct pci_msix;
struct snap_writer;
struct snap_reader;
/* msix.c, with dev->lock held: the table and PBA (nothing without MSI-X). */
void pci_msix_save_locked(struct pci_device *dev, struct snap_writer *w);
int pci_msix_load_locked(struct pci_device *dev, struct snap_reader *r);

struct pci_device {
    struct pci_bus *bus;
    unsigned slot;
    char name[32];
    pthread_mutex_t lock;
    uint8_t config[PCI_CONFIG_SIZE];
    uint8_t wmask[PCI_CONFIG_SIZE];   /* bits the guest may write */
    uint8_t w1cmask[PCI_CONFIG_SIZE]; /* bits a guest 1 clears (status errors) */
    uint8_t last_cap;                 /* offset of the last capability, 0 when none */
    unsigned cap_end;                 /* where the next capability may go */
    struct pci_bar bars[PCI_NUM_BARS];
    struct pci_device_hooks hooks;
    void (*moved)(void *opaque, unsigned index, uint64_t address);
    void *moved_opaque;
    bool intx_level;    /* what the device drives */
    bool intx_asserted; /* what reaches its line (after INTx-disable and MSI-X) */
    struct pci_msix *msix;
};

struct pci_bus {
    struct device_host host;
    pthread_mutex_t access_lock;
    pthread_mutex_t irq_lock;
    uint32_t config_address;
    struct pci_device *devices[PCI_MAX_DEVICES];
    uint32_t line_slots[PCI_INTX_LINES]; /* bit s: slot s asserts this line */
    bool cf8_registered, cfc_registered, ecam_registered, gsis_claimed;
};

static inline uint16_t pci_get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t pci_get32(const uint8_t *p)
{
    return (uint32_t)pci_get16(p) | (uint32_t)pci_get16(p + 2) << 16;
}

static inline void pci_put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static inline void pci_put32(uint8_t *p, uint32_t v)
{
    pci_put16(p, (uint16_t)v);
    pci_put16(p + 2, (uint16_t)(v >> 16));
}

static inline uint32_t pci_intx_gsi(unsigned slot, unsigned pin_index)
{
    return GSI_PCI_FIRST + (slot + pin_index) % PCI_INTX_LINES;
}

/* pci_bar.c; dev->lock held unless said otherwise. */
/* Bring every BAR's decoding in line with its registers and the command register; returns
 * how many events it wrote to ev (at most PCI_NUM_BARS). */
unsigned pci_bars_update(struct pci_device *dev, struct pci_bar_event *ev);
/* Report events to the device (dev->lock NOT held). */
void pci_bars_notify(struct pci_device *dev, const struct pci_bar_event *ev, unsigned n);
/* Stop decoding and give the addresses back (device removal). */
void pci_bars_release(struct pci_device *dev);

/* pci.c */
/* Room for a capability with body_len bytes after its ID and next pointer. */
bool pci_cap_fits(const struct pci_device *dev, size_t body_len);

/* msix.c; dev->lock held. */
bool pci_msix_enabled_locked(const struct pci_device *dev);
/* The Message Control register, for noticing changes around a config write (0: no MSI-X). */
uint16_t pci_msix_control(const struct pci_device *dev);
/* After a config write changed Message Control from old: deliver what became deliverable. */
void pci_msix_control_written(struct pci_device *dev, uint16_t old);
void pci_msix_free(struct pci_device *dev);

#endif
