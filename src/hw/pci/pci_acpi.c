/* The DSDT's description of the PCI host bridge: \_SB.PCI0 (a PCI Express root bridge,
 * compatible with plain PCI) with its windows in _CRS and INTx routing in _PRT, and a
 * motherboard-resources device reserving the ECAM window, which Linux wants to see before it
 * trusts the MCFG table. */
#include "hw/pci/pci_internal.h"

#include "vm/boot/aml.h"
#include "vm/platform.h"

#define PRT_PINS 4 /* INTA-INTD */

/* Bus 0 only; the config ports; every other port (split around them) and both memory
 * windows are forwarded to the bus. */
static void describe_crs(const struct pci_bus *bus, struct aml_buf *aml)
{
    const struct range_alloc *mmio64 = &bus->host.resources->mmio64;
    aml_name(aml, "_CRS");
    aml_resource_template(aml);
    aml_word_bus_number(aml, 0, 0);
    aml_io(aml, PORT_PCI_CONFIG_ADDRESS, PORT_PCI_CONFIG_ADDRESS, 1, 8);
    aml_word_io(aml, 0x0000, PORT_PCI_CONFIG_ADDRESS - 1);
    aml_word_io(aml, PORT_PCI_CONFIG_DATA + 4, 0xffff);
    aml_dword_memory(aml, (uint32_t)PHYS_PCI_MMIO32,
                     (uint32_t)(PHYS_PCI_MMIO32 + PCI_MMIO32_SIZE - 1), false);
    if (mmio64->size)
        aml_qword_memory(aml, mmio64->base, mmio64->base + mmio64->size - 1, false);
    aml_end(aml);
}

/* Package { 0xSSSSFFFF (slot, any function), pin, Zero (no link device), GSI } for every
 * slot and pin: the interrupts are then level-triggered, active-low and shareable. */
static void describe_prt(struct aml_buf *aml)
{
    aml_name(aml, "_PRT");
    aml_package(aml, (PCI_MAX_DEVICES - 1) * PRT_PINS);
    for (unsigned slot = 1; slot < PCI_MAX_DEVICES; slot++)
        for (unsigned pin = 0; pin < PRT_PINS; pin++) {
            aml_package(aml, 4);
            aml_integer(aml, (uint64_t)slot << 16 | 0xffff);
            aml_integer(aml, pin);
            aml_integer(aml, 0);
            aml_integer(aml, pci_intx_gsi(slot, pin));
            aml_end(aml);
        }
    aml_end(aml);
}

void pci_bus_describe_acpi(struct pci_bus *bus, struct aml_buf *aml)
{
    if (!bus || !aml)
        return;
    aml_device(aml, "PCI0");
    aml_name_eisaid(aml, "_HID", "PNP0A08");
    aml_name_eisaid(aml, "_CID", "PNP0A03");
    aml_name_integer(aml, "_SEG", 0);
    aml_name_integer(aml, "_BBN", 0);
    aml_name_integer(aml, "_UID", 0);
    describe_crs(bus, aml);
    describe_prt(aml);
    aml_end(aml);

    aml_device(aml, "MRES");
    aml_name_eisaid(aml, "_HID", "PNP0C02");
    aml_name_integer(aml, "_UID", 0);
    aml_name(aml, "_CRS");
    aml_resource_template(aml);
    aml_memory32_fixed(aml, (uint32_t)PHYS_PCI_ECAM, (uint32_t)PCI_ECAM_SIZE);
    aml_end(aml);
    aml_end(aml);
}
