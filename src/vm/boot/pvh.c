/* PVH direct boot (Xen's HVM start info ABI, also used by Linux's vmlinux with CONFIG_PVH):
 * an ELF with a XEN_ELFNOTE_PHYS32_ENTRY note is loaded at its physical addresses and entered
 * in flat 32-bit protected mode with EBX pointing at struct hvm_start_info. */
#include "vm/boot/boot.h"

#include "util/log.h"
#include "vm/boot/elf.h"
#include "vm/boot/loader.h"
#include "vm/memory.h"

#include <string.h>

#define PVH_NOTE_NAME "Xen"
#define PVH_NOTE_PHYS32_ENTRY 18

/* struct hvm_start_info (version 1) */
#define HVM_START_MAGIC 0x336ec578
#define HVM_START_VERSION 1
#define HSI_MAGIC 0
#define HSI_VERSION 4
#define HSI_FLAGS 8
#define HSI_NR_MODULES 12
#define HSI_MODLIST_PADDR 16
#define HSI_CMDLINE_PADDR 24
#define HSI_RSDP_PADDR 32
#define HSI_MEMMAP_PADDR 40
#define HSI_MEMMAP_ENTRIES 48
#define HSI_SIZE 56

#define MEMMAP_ENTRY_SIZE 24  /* addr, size, type, reserved */
#define MODLIST_ENTRY_SIZE 32 /* paddr, size, cmdline_paddr, reserved */

/* Offsets in the info page (the layout's `info`): start info, memory map, module list. */
#define PVH_MEMMAP_OFF (BOOT_INFO_EXTRA - BOOT_INFO_ADDR)
#define PVH_MODLIST_OFF (PVH_MEMMAP_OFF + E820_MAX_ENTRIES * MEMMAP_ENTRY_SIZE)
#define PVH_INFO_SIZE (PVH_MODLIST_OFF + MODLIST_ENTRY_SIZE)

_Static_assert(BOOT_INFO_ADDR + HSI_SIZE <= BOOT_INFO_EXTRA, "start info overlaps its extra area");
_Static_assert(PVH_INFO_SIZE <= BOOT_PAGE_SIZE, "PVH info overruns its page");

static int read_entry(const struct elf_file *elf, uint64_t *entry, char *err, size_t errlen)
{
    const uint8_t *desc;
    uint32_t descsz;
    if (elf_find_note(elf, PVH_NOTE_NAME, PVH_NOTE_PHYS32_ENTRY, &desc, &descsz) != 1)
        return qk_fail(err, errlen, "ELF file has no PVH entry note (Xen, type 18)");
    /* The ABI says 32 bits; Linux emits a 64-bit value on x86-64. */
    if (descsz == 4)
        *entry = get_le32(desc);
    else if (descsz == 8)
        *entry = get_le64(desc);
    else
        return qk_fail(err, errlen, "PVH entry note has a %u-byte value, expected 4 or 8", descsz);
    if (*entry > UINT32_MAX)
        return qk_fail(err, errlen, "PVH entry point 0x%llx is above 4 GiB",
                       (unsigned long long)*entry);
    return 0;
}

static void write_memmap(uint8_t *p, const struct e820_map *map, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++, p += MEMMAP_ENTRY_SIZE) {
        put_le64(p, map->entry[i].addr);
        put_le64(p + 8, map->entry[i].size);
        put_le32(p + 16, map->entry[i].type);
        put_le32(p + 20, 0);
    }
}

int boot_load_pvh(const struct boot_request *req, struct boot_result *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    struct elf_file elf;
    uint64_t entry = 0, lo = 0, hi = 0;
    if (elf_open(&elf, req->kernel, req->kernel_size, err, errlen) < 0 ||
        elf_check_segments(&elf, req->mem, &lo, &hi, err, errlen) < 0 ||
        read_entry(&elf, &entry, err, errlen) < 0)
        return -1;
    if (!elf_paddr_in_segment(&elf, entry))
        return qk_fail(err, errlen, "PVH entry point 0x%llx is outside every loaded segment",
                       (unsigned long long)entry);
    long cmdline_len = boot_cmdline_len(req, BOOT_CMDLINE_MAX - 1, err, errlen);
    struct boot_ranges kr = {0};
    struct boot_layout l;
    boot_ranges_from_elf(&elf, &kr);
    if (cmdline_len < 0 ||
        boot_plan_layout(req->mem, &kr, (uint64_t)cmdline_len, &l, err, errlen) < 0 ||
        boot_write_cmdline(req, &l, err, errlen) < 0 ||
        elf_load_segments(&elf, req->mem, &lo, &hi, err, errlen) < 0)
        return -1;

    uint8_t *info = gpa_to_host(req->mem, l.info, PVH_INFO_SIZE);
    if (!info)
        return qk_fail(err, errlen, "cannot reach the PVH start info area");
    memset(info, 0, PVH_INFO_SIZE);
    uint32_t nr_modules = 0;
    if (req->initrd) {
        uint64_t initrd_addr = 0;
        if (boot_place_initrd(req, UINT32_MAX, hi > l.high_end ? hi : l.high_end, &initrd_addr, err,
                              errlen) < 0)
            return -1;
        uint8_t *mod = info + PVH_MODLIST_OFF;
        put_le64(mod, initrd_addr);
        put_le64(mod + 8, req->initrd_size);
        nr_modules = 1;
    }
    struct e820_map scratch;
    const struct e820_map *map = boot_e820(req, &scratch);
    uint32_t nr_map = map->nr < E820_MAX_ENTRIES ? map->nr : E820_MAX_ENTRIES;
    write_memmap(info + PVH_MEMMAP_OFF, map, nr_map);

    put_le32(info + HSI_MAGIC, HVM_START_MAGIC);
    put_le32(info + HSI_VERSION, HVM_START_VERSION);
    put_le32(info + HSI_FLAGS, 0);
    put_le32(info + HSI_NR_MODULES, nr_modules);
    put_le64(info + HSI_MODLIST_PADDR, nr_modules ? l.info + PVH_MODLIST_OFF : 0);
    put_le64(info + HSI_CMDLINE_PADDR, l.cmdline);
    put_le64(info + HSI_RSDP_PADDR, req->rsdp_addr);
    put_le64(info + HSI_MEMMAP_PADDR, l.info + PVH_MEMMAP_OFF);
    put_le32(info + HSI_MEMMAP_ENTRIES, nr_map);

    boot_cpu_flat32_at(&out->cpu, req->mem, &l);
    out->cpu.rip = entry;
    out->cpu.gpr[GPR_RBX] = l.info;
    out->format = BOOT_FMT_PVH;
    out->kernel_end = hi;
    return 0;
}
