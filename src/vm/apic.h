/* Interrupt messages between the user-space IOAPIC model (src/hw/ioapic.c) and the local
 * APICs the translator keeps per vCPU (src/accel/tcg/lapic.c): what the IOAPIC puts on the
 * APIC bus for a redirection entry, in the entry's own field layout (82093AA datasheet 3.2.4). */
#ifndef QUOKKA_VM_APIC_H
#define QUOKKA_VM_APIC_H

#include <stdbool.h>
#include <stdint.h>

enum apic_delivery_mode {
    APIC_DM_FIXED = 0,
    APIC_DM_LOWEST = 1,
    APIC_DM_SMI = 2,
    APIC_DM_NMI = 4,
    APIC_DM_INIT = 5,
    APIC_DM_STARTUP = 6,
    APIC_DM_EXTINT = 7,
};

struct apic_msg {
    uint32_t dest; /* physical APIC ID or logical destination (0xff: broadcast) */
    uint8_t vector;
    uint8_t delivery_mode; /* enum apic_delivery_mode */
    bool dest_logical;
    bool level; /* level-triggered: the target sets TMR and broadcasts its EOI */
};

#endif
