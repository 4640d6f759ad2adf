/* The BIOS e820 memory map quokka reports to every boot protocol. */
#ifndef QUOKKA_VM_E820_H
#define QUOKKA_VM_E820_H

#include <stdint.h>

struct guest_memory;

#define E820_RAM 1
#define E820_RESERVED 2
#define E820_ACPI 3
#define E820_MAX_ENTRIES 16

struct e820_entry {
    uint64_t addr;
    uint64_t size;
    uint32_t type;
};

struct e820_map {
    uint32_t nr;
    struct e820_entry entry[E820_MAX_ENTRIES];
};

/* Low 640K (minus EBDA), reserved BIOS area holding the ACPI tables, RAM from 1M to the 3G hole,
 * the reserved PCI ECAM window, RAM above 4G (sorted by address). */
void e820_build(const struct guest_memory *mem, struct e820_map *map);

#endif
