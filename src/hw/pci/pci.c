/* The PCI host bridge and configuration space: mechanism #1 (0xCF8 address, 0xCFC data) and
 * ECAM reach the same registers; each function's config space is bytes plus write masks, so
 * read-only fields stay as the device set them. INTx lines are shared by slots (the usual
 * swizzle) and driven as the OR of the devices asserting them. BARs are in pci_bar.c, MSI-X
 * in msix.c, the ACPI description in pci_acpi.c. */
#include "hw/pci/pci_internal.h"

#include "vm/snapshot.h"
#include "util/log.h"
#include "vm/platform.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONFIG_ADDRESS_ENABLE 0x80000000u
/* Enable, bus, device, function, register (bits 30:24 and 1:0 read as zero) */
#define CONFIG_ADDRESS_MASK 0x80fffffcu
#define ECAM_DEVICE_SHIFT 15
#define ECAM_FUNCTION_SHIFT 12
#define ECAM_REG_MASK 0xfffu

#define PCI_INTERRUPT_PIN_A 1
#define PCI_HEADER_TYPE_NORMAL 0
/* Writable command bits: I/O, memory, bus master, parity response, SERR#, INTx disable */
#define COMMAND_WMASK 0x0547u
/* Status error bits the guest clears by writing 1: master data parity error (8), signalled
 * target abort (11), received target/master abort (12, 13), signalled system error (14),
 * detected parity error (15) */
#define STATUS_W1C 0xf900u

/* A host bridge no driver claims: Red Hat's "QEMU PCIe host bridge" id, which no x86 Linux
 * chipset quirk or AGP/EDAC driver matches (Intel ids would invite those). */
static const struct pci_device_info host_bridge_info = {
    .name = "pci-host",
    .vendor_id = 0x1b36,
    .device_id = 0x0008,
    .subsystem_vendor_id = 0x1af4,
    .subsystem_id = 0x1100,
    .class_code = 0x060000,
};

/* --- one function's configuration space ------------------------------------------------ */

static void init_header(struct pci_device *dev, const struct pci_device_info *info)
{
    uint8_t *c = dev->config;
    pci_put16(c + PCI_VENDOR_ID, info->vendor_id);
    pci_put16(c + PCI_DEVICE_ID, info->device_id);
    c[PCI_REVISION_ID] = info->revision;
    c[PCI_REVISION_ID + 1] = (uint8_t)info->class_code;
    c[PCI_REVISION_ID + 2] = (uint8_t)(info->class_code >> 8);
    c[PCI_REVISION_ID + 3] = (uint8_t)(info->class_code >> 16);
    c[PCI_HEADER_TYPE] = PCI_HEADER_TYPE_NORMAL; /* one function */
    pci_put16(c + PCI_SUBSYSTEM_VENDOR_ID, info->subsystem_vendor_id);
    pci_put16(c + PCI_SUBSYSTEM_ID, info->subsystem_id);
    pci_put16(dev->wmask + PCI_COMMAND, COMMAND_WMASK);
    pci_put16(dev->w1cmask + PCI_STATUS, STATUS_W1C);
    dev->wmask[PCI_CACHE_LINE_SIZE] = 0xff;
    dev->wmask[PCI_LATENCY_TIMER] = 0xff;
    if (dev->slot != PCI_HOST_BRIDGE_SLOT) {
        /* Pin A, and the line firmware would have written: the GSI the _PRT names. */
        c[PCI_INTERRUPT_PIN] = PCI_INTERRUPT_PIN_A;
        c[PCI_INTERRUPT_LINE] = (uint8_t)pci_intx_gsi(dev->slot, 0);
        dev->wmask[PCI_INTERRUPT_LINE] = 0xff;
    }
    dev->cap_end = PCI_STD_HEADER_SIZE;
}

static struct pci_device *device_alloc(struct pci_bus *bus, unsigned slot,
                                       const struct pci_device_info *info,
                                       const struct pci_device_hooks *hooks)
{
    struct pci_device *dev = calloc(1, sizeof(*dev));
    if (!dev)
        return NULL;
    dev->bus = bus;
    dev->slot = slot;
    snprintf(dev->name, sizeof(dev->name), "%s", info->name ? info->name : "pci-device");
    pthread_mutex_init(&dev->lock, NULL);
    if (hooks)
        dev->hooks = *hooks;
    for (unsigned i = 0; i < PCI_NUM_BARS; i++)
        dev->bars[i].mapped = PCI_NO_ADDRESS;
    init_header(dev, info);
    return dev;
}

/* A shared line is asserted while any slot on it asserts it (pin A of slot s: line s % 4). */
static void drive_line(struct pci_bus *bus, unsigned slot, bool on)
{
    uint32_t gsi = pci_intx_gsi(slot, 0);
    uint32_t *slots = &bus->line_slots[gsi - GSI_PCI_FIRST];
    pthread_mutex_lock(&bus->irq_lock);
    bool was = *slots != 0;
    *slots = on ? *slots | 1u << slot : *slots & ~(1u << slot);
    bool now = *slots != 0;
    if (was != now && bus->host.set_irq)
        bus->host.set_irq(bus->host.irq_ctx, gsi, now);
    pthread_mutex_unlock(&bus->irq_lock);
}

/* Status.INTERRUPT shows the device's level; the line sees it unless INTx is disabled or
 * MSI-X is on. dev->lock held. */
static void intx_update(struct pci_device *dev)
{
    uint16_t cmd = pci_get16(dev->config + PCI_COMMAND);
    uint16_t status = pci_get16(dev->config + PCI_STATUS);
    status = (uint16_t)(dev->intx_level ? status | PCI_STATUS_INTERRUPT
                                        : status & ~PCI_STATUS_INTERRUPT);
    pci_put16(dev->config + PCI_STATUS, status);
    bool drive = dev->intx_level && !(cmd & PCI_COMMAND_INTX_DISABLE) &&
                 !pci_msix_enabled_locked(dev) && dev->config[PCI_INTERRUPT_PIN];
    if (drive != dev->intx_asserted) {
        dev->intx_asserted = drive;
        drive_line(dev->bus, dev->slot, drive);
    }
}

void pci_set_intx(struct pci_device *dev, int level)
{
    if (!dev)
        return;
    pthread_mutex_lock(&dev->lock);
    dev->intx_level = level != 0;
    intx_update(dev);
    pthread_mutex_unlock(&dev->lock);
}

/* 1, 2 or 4 bytes inside one dword of config space. */
static bool access_ok(uint32_t reg, unsigned size)
{
    return (size == 1 || size == 2 || size == 4) && reg < PCI_CONFIG_SIZE && (reg & 3) + size <= 4;
}

static uint32_t device_config_read(struct pci_device *dev, uint32_t reg, unsigned size)
{
    uint32_t value = 0;
    if (dev->hooks.config_read && dev->hooks.config_read(dev->hooks.opaque, reg, size, &value))
        return value;
    pthread_mutex_lock(&dev->lock);
    for (unsigned i = 0; i < size; i++)
        value |= (uint32_t)dev->config[reg + i] << (8 * i);
    pthread_mutex_unlock(&dev->lock);
    return value;
}

/* Guest bits land only where the write mask allows; a 1 in a W1C bit clears it. */
static void apply_write(struct pci_device *dev, uint32_t reg, unsigned size, uint32_t value)
{
    for (unsigned i = 0; i < size; i++) {
        uint32_t off = reg + i;
        uint8_t v = (uint8_t)(value >> (8 * i));
        uint8_t w = dev->wmask[off];
        uint8_t c = (uint8_t)((dev->config[off] & ~w) | (v & w));
        dev->config[off] = (uint8_t)(c & ~(v & dev->w1cmask[off]));
    }
}

/* Apply the write, then everything it may have changed: BAR decoding (command register and
 * BARs), MSI-X delivery, the INTx line. The device hears about it afterwards, unlocked. */
static void device_config_write(struct pci_device *dev, uint32_t reg, unsigned size, uint32_t value)
{
    struct pci_bar_event ev[PCI_NUM_BARS];
    pthread_mutex_lock(&dev->lock);
    uint16_t msix_control = pci_msix_control(dev);
    apply_write(dev, reg, size, value);
    unsigned n = pci_bars_update(dev, ev);
    pci_msix_control_written(dev, msix_control);
    intx_update(dev);
    pthread_mutex_unlock(&dev->lock);
    pci_bars_notify(dev, ev, n);
    if (dev->hooks.config_write)
        dev->hooks.config_write(dev->hooks.opaque, reg, size, value);
}

/* Bring every function's BAR decoding in line with its registers, after anything that may
 * have freed a range (a BAR moved or stopped decoding, a device went away): a BAR that lost
 * an overlap decodes again as soon as its range is free. Only the function that changed can
 * free ranges, and the others only take them, so one pass over the bus is enough. access_lock
 * held. */
static void refresh_bars(struct pci_bus *bus)
{
    struct pci_bar_event ev[PCI_NUM_BARS];
    for (unsigned s = 0; s < PCI_MAX_DEVICES; s++) {
        struct pci_device *dev = bus->devices[s];
        if (!dev)
            continue;
        pthread_mutex_lock(&dev->lock);
        unsigned n = pci_bars_update(dev, ev);
        pthread_mutex_unlock(&dev->lock);
        pci_bars_notify(dev, ev, n);
    }
}

/* Only function 0 of each device on bus 0 exists; the rest reads all-ones. access_lock
 * held. */
static struct pci_device *lookup(struct pci_bus *bus, unsigned slot, unsigned fn)
{
    return slot < PCI_MAX_DEVICES && fn == 0 ? bus->devices[slot] : NULL;
}

static uint32_t bus_config_read(struct pci_bus *bus, unsigned slot, unsigned fn, uint32_t reg,
                                unsigned size)
{
    struct pci_device *dev = lookup(bus, slot, fn);
    if (!dev || !access_ok(reg, size))
        return UINT32_MAX;
    return device_config_read(dev, reg, size);
}

static void bus_config_write(struct pci_bus *bus, unsigned slot, unsigned fn, uint32_t reg,
                             unsigned size, uint32_t value)
{
    struct pci_device *dev = lookup(bus, slot, fn);
    if (dev && access_ok(reg, size)) {
        device_config_write(dev, reg, size, value);
        refresh_bars(bus);
    }
}

/* --- configuration mechanism #1 -------------------------------------------------------- */

/* Only whole-dword accesses reach the address register, as on PCs (byte accesses to 0xCF8-
 * 0xCFB are other registers there: Linux's mechanism probe relies on that). */
static uint64_t cf8_read(void *opaque, uint64_t offset, unsigned size)
{
    struct pci_bus *bus = opaque;
    if (offset != 0 || size != 4)
        return UINT64_MAX;
    pthread_mutex_lock(&bus->access_lock);
    uint32_t v = bus->config_address;
    pthread_mutex_unlock(&bus->access_lock);
    return v;
}

static void cf8_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
    struct pci_bus *bus = opaque;
    if (offset != 0 || size != 4)
        return;
    pthread_mutex_lock(&bus->access_lock);
    bus->config_address = (uint32_t)value & CONFIG_ADDRESS_MASK;
    pthread_mutex_unlock(&bus->access_lock);
}

/* The register the address register selects, plus the data port byte offset; false when
 * disabled or another bus. access_lock held. */
static bool cfc_target(const struct pci_bus *bus, uint64_t offset, unsigned size, unsigned *slot,
                       unsigned *fn, uint32_t *reg)
{
    uint32_t a = bus->config_address;
    if (!(a & CONFIG_ADDRESS_ENABLE) || ((a >> 16) & 0xff) != 0 || offset >= 4 || size > 4 - offset)
        return false;
    *slot = (a >> 11) & 0x1f;
    *fn = (a >> 8) & 0x7;
    *reg = (a & 0xfc) + (uint32_t)offset;
    return true;
}

static uint64_t cfc_read(void *opaque, uint64_t offset, unsigned size)
{
    struct pci_bus *bus = opaque;
    unsigned slot, fn;
    uint32_t reg;
    uint32_t v = UINT32_MAX;
    pthread_mutex_lock(&bus->access_lock);
    if (cfc_target(bus, offset, size, &slot, &fn, &reg))
        v = bus_config_read(bus, slot, fn, reg, size);
    pthread_mutex_unlock(&bus->access_lock);
    return v;
}

static void cfc_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
    struct pci_bus *bus = opaque;
    unsigned slot, fn;
    uint32_t reg;
    pthread_mutex_lock(&bus->access_lock);
    if (cfc_target(bus, offset, size, &slot, &fn, &reg))
        bus_config_write(bus, slot, fn, reg, size, (uint32_t)value);
    pthread_mutex_unlock(&bus->access_lock);
}

static const struct bus_device_ops cf8_ops = {cf8_read, cf8_write};
static const struct bus_device_ops cfc_ops = {cfc_read, cfc_write};

/* --- ECAM ------------------------------------------------------------------------------ */

static uint32_t ecam_read32(struct pci_bus *bus, uint64_t offset, unsigned size)
{
    if (offset >= PCI_ECAM_SIZE)
        return UINT32_MAX;
    pthread_mutex_lock(&bus->access_lock);
    uint32_t v = bus_config_read(bus, (unsigned)(offset >> ECAM_DEVICE_SHIFT) & 0x1f,
                                 (unsigned)(offset >> ECAM_FUNCTION_SHIFT) & 0x7,
                                 (uint32_t)offset & ECAM_REG_MASK, size);
    pthread_mutex_unlock(&bus->access_lock);
    return v;
}

static void ecam_write32(struct pci_bus *bus, uint64_t offset, unsigned size, uint32_t value)
{
    if (offset >= PCI_ECAM_SIZE)
        return;
    pthread_mutex_lock(&bus->access_lock);
    bus_config_write(bus, (unsigned)(offset >> ECAM_DEVICE_SHIFT) & 0x1f,
                     (unsigned)(offset >> ECAM_FUNCTION_SHIFT) & 0x7,
                     (uint32_t)offset & ECAM_REG_MASK, size, value);
    pthread_mutex_unlock(&bus->access_lock);
}

/* An aligned 8-byte access is two dword accesses, low first; other sizes go through as they
 * are (access_ok refuses what config space cannot take). */
static uint64_t ecam_read(void *opaque, uint64_t offset, unsigned size)
{
    struct pci_bus *bus = opaque;
    if (size != 8)
        return ecam_read32(bus, offset, size);
    if (offset & 7)
        return UINT64_MAX;
    return ecam_read32(bus, offset, 4) | (uint64_t)ecam_read32(bus, offset + 4, 4) << 32;
}

static void ecam_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
    struct pci_bus *bus = opaque;
    if (size != 8) {
        ecam_write32(bus, offset, size, (uint32_t)value);
    } else if (!(offset & 7)) {
        ecam_write32(bus, offset, 4, (uint32_t)value);
        ecam_write32(bus, offset + 4, 4, (uint32_t)(value >> 32));
    }
}

static const struct bus_device_ops ecam_ops = {ecam_read, ecam_write};

/* --- the bus ---------------------------------------------------------------------------- */

static void device_destroy(struct pci_device *dev)
{
    pthread_mutex_lock(&dev->lock);
    dev->intx_level = false;
    intx_update(dev);
    pci_bars_release(dev);
    pci_msix_free(dev);
    pthread_mutex_unlock(&dev->lock);
    pthread_mutex_destroy(&dev->lock);
    free(dev);
}

static int register_ranges(struct pci_bus *bus, char *err, size_t errlen)
{
    const struct device_host *h = &bus->host;
    if (bus_register(h->pio, PORT_PCI_CONFIG_ADDRESS, 4, &cf8_ops, bus, "pci-config-address", err,
                     errlen) < 0)
        return -1;
    bus->cf8_registered = true;
    if (bus_register(h->pio, PORT_PCI_CONFIG_DATA, 4, &cfc_ops, bus, "pci-config-data", err,
                     errlen) < 0)
        return -1;
    bus->cfc_registered = true;
    if (bus_register(h->mmio, PHYS_PCI_ECAM, PCI_ECAM_SIZE, &ecam_ops, bus, "pci-ecam", err,
                     errlen) < 0)
        return -1;
    bus->ecam_registered = true;
    return 0;
}

struct pci_bus *pci_bus_new(const struct device_host *host, char *err, size_t errlen)
{
    if (!host || !host->pio || !host->mmio || !host->resources) {
        qk_fail(err, errlen, "PCI: the machine gives no buses or resource windows");
        return NULL;
    }
    struct pci_bus *bus = calloc(1, sizeof(*bus));
    if (!bus) {
        qk_fail(err, errlen, "PCI: out of memory");
        return NULL;
    }
    bus->host = *host;
    pthread_mutex_init(&bus->access_lock, NULL);
    pthread_mutex_init(&bus->irq_lock, NULL);
    struct vm_resources *r = host->resources;
    /* The INTx lines are ours: nobody else may hand them out as edge-triggered lines. */
    if (vm_resources_claim(r, &r->gsi, GSI_PCI_FIRST, PCI_INTX_LINES) < 0) {
        qk_fail(err, errlen, "PCI: interrupt lines GSI %u-%u are taken", GSI_PCI_FIRST,
                GSI_PCI_FIRST + PCI_INTX_LINES - 1);
        pci_bus_free(bus);
        return NULL;
    }
    bus->gsis_claimed = true;
    bus->devices[PCI_HOST_BRIDGE_SLOT] =
        device_alloc(bus, PCI_HOST_BRIDGE_SLOT, &host_bridge_info, NULL);
    if (!bus->devices[PCI_HOST_BRIDGE_SLOT]) {
        qk_fail(err, errlen, "PCI: out of memory");
        pci_bus_free(bus);
        return NULL;
    }
    if (register_ranges(bus, err, errlen) < 0) {
        pci_bus_free(bus);
        return NULL;
    }
    return bus;
}

/* Devices still on the bus are removed and freed with it. */
/* Snapshots: the CONFIG_ADDRESS latch and the host bridge's configuration space. Devices
 * with BARs snapshot themselves (none can yet: their models refuse). */
void pci_bus_save(struct pci_bus *bus, struct snap_writer *w)
{
    struct pci_device *bridge = bus->devices[PCI_HOST_BRIDGE_SLOT];
    pthread_mutex_lock(&bus->access_lock);
    snap_put_u32(w, bus->config_address);
    pthread_mutex_unlock(&bus->access_lock);
    pthread_mutex_lock(&bridge->lock);
    snap_put(w, bridge->config, PCI_CONFIG_SIZE);
    pthread_mutex_unlock(&bridge->lock);
}

int pci_bus_load(struct pci_bus *bus, struct snap_reader *r, char *err, size_t errlen)
{
    struct pci_device *bridge = bus->devices[PCI_HOST_BRIDGE_SLOT];
    uint32_t address = snap_get_u32(r);
    uint8_t *config = malloc(PCI_CONFIG_SIZE);
    if (!config)
        return qk_fail(err, errlen, "out of memory");
    snap_get(r, config, PCI_CONFIG_SIZE);
    if (!snap_done(r)) {
        free(config);
        return qk_fail(err, errlen, "PCI state is malformed");
    }
    pthread_mutex_lock(&bus->access_lock);
    bus->config_address = address;
    pthread_mutex_unlock(&bus->access_lock);
    pthread_mutex_lock(&bridge->lock);
    memcpy(bridge->config, config, PCI_CONFIG_SIZE);
    pthread_mutex_unlock(&bridge->lock);
    free(config);
    return 0;
}

/* A function's configuration space and MSI-X table/PBA; load moves its BARs to where the
 * configuration says and hands every unmasked vector to its route again. */
void pci_device_save(struct pci_device *dev, struct snap_writer *w)
{
    pthread_mutex_lock(&dev->lock);
    snap_put(w, dev->config, PCI_CONFIG_SIZE);
    pci_msix_save_locked(dev, w);
    pthread_mutex_unlock(&dev->lock);
}

int pci_device_load(struct pci_device *dev, struct snap_reader *r)
{
    uint8_t *config = malloc(PCI_CONFIG_SIZE);
    if (!config)
        return -1;
    snap_get(r, config, PCI_CONFIG_SIZE);
    struct pci_bar_event ev[PCI_NUM_BARS];
    unsigned n = 0;
    int rc = -1;
    pthread_mutex_lock(&dev->lock);
    if (!r->failed) {
        /* Read-only bits (IDs, BAR sizes, capabilities) stay this build's own. */
        for (unsigned i = 0; i < PCI_CONFIG_SIZE; i++)
            dev->config[i] =
                (uint8_t)((dev->config[i] & ~dev->wmask[i]) | (config[i] & dev->wmask[i]));
        rc = pci_msix_load_locked(dev, r);
        n = pci_bars_update(dev, ev);
    }
    pthread_mutex_unlock(&dev->lock);
    pci_bars_notify(dev, ev, n);
    pthread_mutex_lock(&dev->bus->access_lock);
    refresh_bars(dev->bus); /* the ranges it left may be what another BAR waits for */
    pthread_mutex_unlock(&dev->bus->access_lock);
    free(config);
    return rc;
}

void pci_bus_free(struct pci_bus *bus)
{
    if (!bus)
        return;
    for (unsigned s = 0; s < PCI_MAX_DEVICES; s++)
        if (bus->devices[s]) {
            device_destroy(bus->devices[s]);
            bus->devices[s] = NULL;
        }
    const struct device_host *h = &bus->host;
    if (bus->cf8_registered)
        bus_unregister(h->pio, PORT_PCI_CONFIG_ADDRESS, bus);
    if (bus->cfc_registered)
        bus_unregister(h->pio, PORT_PCI_CONFIG_DATA, bus);
    if (bus->ecam_registered)
        bus_unregister(h->mmio, PHYS_PCI_ECAM, bus);
    if (bus->gsis_claimed) {
        pthread_mutex_lock(&h->resources->lock);
        range_free(&h->resources->gsi, GSI_PCI_FIRST);
        pthread_mutex_unlock(&h->resources->lock);
    }
    pthread_mutex_destroy(&bus->access_lock);
    pthread_mutex_destroy(&bus->irq_lock);
    free(bus);
}

/* --- devices ---------------------------------------------------------------------------- */

struct pci_device *pci_device_new(struct pci_bus *bus, const struct pci_device_info *info,
                                  const struct pci_device_hooks *hooks, char *err, size_t errlen)
{
    if (!bus || !info) {
        qk_fail(err, errlen, "PCI: no bus for %s", info && info->name ? info->name : "device");
        return NULL;
    }
    pthread_mutex_lock(&bus->access_lock);
    unsigned slot = PCI_HOST_BRIDGE_SLOT + 1;
    while (slot < PCI_MAX_DEVICES && bus->devices[slot])
        slot++;
    struct pci_device *dev = NULL;
    if (slot < PCI_MAX_DEVICES) {
        dev = device_alloc(bus, slot, info, hooks);
        bus->devices[slot] = dev;
    }
    pthread_mutex_unlock(&bus->access_lock);
    if (slot == PCI_MAX_DEVICES)
        qk_fail(err, errlen, "PCI: no free slot for %s (%u at most)", info->name,
                PCI_MAX_DEVICES - 1);
    else if (!dev)
        qk_fail(err, errlen, "PCI: out of memory");
    return dev;
}

void pci_device_free(struct pci_device *dev)
{
    if (!dev)
        return;
    struct pci_bus *bus = dev->bus;
    pthread_mutex_lock(&bus->access_lock);
    if (bus->devices[dev->slot] == dev)
        bus->devices[dev->slot] = NULL;
    pthread_mutex_unlock(&bus->access_lock);
    device_destroy(dev);
    pthread_mutex_lock(&bus->access_lock);
    refresh_bars(bus); /* its ranges may be what another BAR waits for */
    pthread_mutex_unlock(&bus->access_lock);
}

void pci_device_on_bar_move(struct pci_device *dev,
                            void (*moved)(void *opaque, unsigned index, uint64_t address),
                            void *opaque)
{
    pthread_mutex_lock(&dev->lock);
    dev->moved = moved;
    dev->moved_opaque = opaque;
    pthread_mutex_unlock(&dev->lock);
}

bool pci_cap_fits(const struct pci_device *dev, size_t body_len)
{
    return body_len < PCI_CAP_SPACE_END && dev->cap_end + 2 + body_len <= PCI_CAP_SPACE_END;
}

uint8_t pci_device_add_capability(struct pci_device *dev, uint8_t cap_id, const void *body,
                                  size_t body_len)
{
    pthread_mutex_lock(&dev->lock);
    if (!pci_cap_fits(dev, body_len)) {
        pthread_mutex_unlock(&dev->lock);
        return 0;
    }
    uint8_t off = (uint8_t)dev->cap_end;
    dev->config[off] = cap_id;
    dev->config[off + 1] = 0; /* end of the list */
    if (body && body_len)
        memcpy(dev->config + off + 2, body, body_len);
    if (dev->last_cap)
        dev->config[dev->last_cap + 1] = off;
    else
        dev->config[PCI_CAPABILITY_LIST] = off;
    dev->config[PCI_STATUS] |= PCI_STATUS_CAP_LIST;
    dev->last_cap = off;
    dev->cap_end = (off + 2 + (unsigned)body_len + 3) & ~3u; /* dword-aligned, as required */
    pthread_mutex_unlock(&dev->lock);
    return off;
}

uint8_t *pci_device_config(struct pci_device *dev)
{
    return dev->config;
}

uint8_t *pci_device_config_wmask(struct pci_device *dev)
{
    return dev->wmask;
}
