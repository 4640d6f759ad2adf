#include "vm/e820.h"

#include "vm/memory.h"
#include "vm/platform.h"

#include <string.h>

#define E820_EBDA_START 0x9fc00ULL /* last KiB of conventional memory: extended BIOS data */
#define E820_LOW_END 0xa0000ULL    /* VGA window and option ROMs follow, not listed */
#define E820_BIOS_START 0xe0000ULL /* BIOS area; the ACPI tables live here */
#define E820_HIGH_START 0x100000ULL

static void add(struct e820_map *map, uint64_t addr, uint64_t size, uint32_t type)
{
    if (size == 0 || map->nr >= E820_MAX_ENTRIES)
        return;
    map->entry[map->nr++] = (struct e820_entry){.addr = addr, .size = size, .type = type};
}

void e820_build(const struct guest_memory *mem, struct e820_map *map)
{
    memset(map, 0, sizeof(*map));
    uint64_t low = guest_low_ram(mem);
    uint64_t high = guest_high_ram(mem);
    /* guest_memory_init guarantees at least 2 MiB, but stay correct for smaller maps. */
    add(map, 0, low < E820_EBDA_START ? low : E820_EBDA_START, E820_RAM);
    add(map, E820_EBDA_START, E820_LOW_END - E820_EBDA_START, E820_RESERVED);
    add(map, E820_BIOS_START, E820_HIGH_START - E820_BIOS_START, E820_RESERVED);
    if (low > E820_HIGH_START)
        add(map, E820_HIGH_START, low - E820_HIGH_START, E820_RAM);
    /* Linux trusts the MCFG table's ECAM window only when the firmware reserves it (here or
     * in the ACPI motherboard resources; quokka does both). */
    add(map, PHYS_PCI_ECAM, PCI_ECAM_SIZE, E820_RESERVED);
    if (high)
        add(map, GUEST_HIGH_RAM_BASE, high, E820_RAM);
}
