/* Multiboot v1 (spec 0.6.96): a header in the first 8 KiB selects either the a.out kludge
 * (explicit load addresses, flag bit 16) or ELF loading; the kernel is entered in flat 32-bit
 * protected mode with EAX = 0x2BADB002 and EBX = the multiboot information structure. */
#include "vm/boot/boot.h"

#include "util/log.h"
#include "vm/boot/elf.h"
#include "vm/boot/loader.h"
#include "vm/memory.h"

#include <string.h>

#define MB_HEADER_MAGIC 0x1BADB002u
#define MB_BOOT_MAGIC 0x2BADB002u
#define MB_SEARCH_LIMIT 8192
#define MB_HEADER_MIN 12  /* magic, flags, checksum */
#define MB_HEADER_AOUT 32 /* ... plus header/load/load_end/bss_end/entry addresses */

/* Header flags: bits 0-15 are requirements the loader must honour or refuse. */
#define MB_FLAG_PAGE_ALIGN (1u << 0)  /* modules page aligned: always done */
#define MB_FLAG_MEMORY_INFO (1u << 1) /* mem_* and mmap: always provided */
#define MB_FLAG_VIDEO_MODE (1u << 2)
#define MB_FLAG_AOUT_KLUDGE (1u << 16)
#define MB_REQUIRED_MASK 0xffffu
#define MB_SUPPORTED_REQUIRED (MB_FLAG_PAGE_ALIGN | MB_FLAG_MEMORY_INFO)

/* Information structure flags and offsets. */
#define MBI_FLAG_MEMORY (1u << 0)
#define MBI_FLAG_CMDLINE (1u << 2)
#define MBI_FLAG_MODS (1u << 3)
#define MBI_FLAG_MMAP (1u << 6)
#define MBI_FLAG_LOADER_NAME (1u << 9)
#define MBI_FLAGS 0
#define MBI_MEM_LOWER 4
#define MBI_MEM_UPPER 8
#define MBI_CMDLINE 16
#define MBI_MODS_COUNT 20
#define MBI_MODS_ADDR 24
#define MBI_MMAP_LENGTH 44
#define MBI_MMAP_ADDR 48
#define MBI_LOADER_NAME 64
#define MBI_SIZE 88

#define MB_MMAP_ENTRY_SIZE 24 /* size field (20) + base, length, type */
#define MB_MODULE_SIZE 16     /* mod_start, mod_end, string, reserved */

/* Offsets in the info page (the layout's `info`): the info, memory map, module list,
 * strings. */
#define MB_MMAP_OFF (BOOT_INFO_EXTRA - BOOT_INFO_ADDR)
#define MB_MODS_OFF (MB_MMAP_OFF + E820_MAX_ENTRIES * MB_MMAP_ENTRY_SIZE)
#define MB_MOD_STRING_OFF (MB_MODS_OFF + MB_MODULE_SIZE)
#define MB_LOADER_NAME_OFF (MB_MOD_STRING_OFF + 16)
#define MB_INFO_SIZE (MB_LOADER_NAME_OFF + 16)

static const char mb_module_string[] = "initrd";
static const char mb_loader_name[] = "quokka";

_Static_assert(BOOT_INFO_ADDR + MBI_SIZE <= BOOT_INFO_EXTRA, "info overlaps its extra area");
_Static_assert(MB_INFO_SIZE <= BOOT_PAGE_SIZE, "multiboot info overruns its page");
_Static_assert(sizeof(mb_module_string) <= 16 && sizeof(mb_loader_name) <= 16, "strings");

long multiboot_find_header(const uint8_t *data, size_t size)
{
    size_t limit = size < MB_SEARCH_LIMIT ? size : MB_SEARCH_LIMIT;
    for (size_t off = 0; off + MB_HEADER_MIN <= limit; off += 4) {
        uint32_t magic = get_le32(data + off);
        uint32_t flags = get_le32(data + off + 4);
        uint32_t checksum = get_le32(data + off + 8);
        if (magic == MB_HEADER_MAGIC && (uint32_t)(magic + flags + checksum) == 0)
            return (long)off;
    }
    return -1;
}

/* Image loaded by the a.out kludge: header_addr tells where the header itself lands, which
 * fixes the file offset that corresponds to load_addr. */
static int load_aout(const struct boot_request *req, size_t hdr, uint64_t cmdline_len,
                     struct boot_layout *l, uint64_t *entry, uint64_t *end, char *err,
                     size_t errlen)
{
    const uint8_t *k = req->kernel;
    size_t size = req->kernel_size;
    if (size - hdr < MB_HEADER_AOUT)
        return qk_fail(err, errlen,
                       "Multiboot header at offset 0x%zx is truncated: the address "
                       "fields need %d bytes",
                       hdr, MB_HEADER_AOUT);
    uint64_t header_addr = get_le32(k + hdr + 12);
    uint64_t load_addr = get_le32(k + hdr + 16);
    uint64_t load_end = get_le32(k + hdr + 20);
    uint64_t bss_end = get_le32(k + hdr + 24);
    uint64_t entry_addr = get_le32(k + hdr + 28);
    if (header_addr < load_addr || header_addr - load_addr > hdr)
        return qk_fail(err, errlen,
                       "Multiboot header_addr 0x%llx and load_addr 0x%llx do not match the "
                       "header's file offset 0x%zx",
                       (unsigned long long)header_addr, (unsigned long long)load_addr, hdr);
    uint64_t file_off = hdr - (header_addr - load_addr);
    uint64_t avail = size - file_off;
    if (load_end == 0)
        load_end = load_addr + avail; /* the rest of the file */
    if (load_end <= load_addr || load_end - load_addr > avail)
        return qk_fail(err, errlen,
                       "Multiboot load range [0x%llx, 0x%llx) does not fit the %llu bytes of "
                       "file after offset 0x%llx",
                       (unsigned long long)load_addr, (unsigned long long)load_end,
                       (unsigned long long)avail, (unsigned long long)file_off);
    if (bss_end == 0)
        bss_end = load_end;
    if (bss_end < load_end)
        return qk_fail(err, errlen, "Multiboot bss_end_addr 0x%llx is below load_end_addr 0x%llx",
                       (unsigned long long)bss_end, (unsigned long long)load_end);
    if (entry_addr < load_addr || entry_addr >= load_end)
        return qk_fail(err, errlen,
                       "Multiboot entry_addr 0x%llx is outside the loaded image [0x%llx, 0x%llx)",
                       (unsigned long long)entry_addr, (unsigned long long)load_addr,
                       (unsigned long long)load_end);
    if (boot_check_kernel_range(req->mem, load_addr, bss_end - load_addr, "Multiboot image", err,
                                errlen) < 0)
        return -1;
    struct boot_ranges kr = {0};
    boot_ranges_add(&kr, load_addr, bss_end);
    if (boot_plan_layout(req->mem, &kr, cmdline_len, l, err, errlen) < 0)
        return -1;
    uint8_t *dst = gpa_to_host(req->mem, load_addr, bss_end - load_addr);
    memcpy(dst, k + file_off, load_end - load_addr);
    memset(dst + (load_end - load_addr), 0, bss_end - load_end);
    *entry = entry_addr;
    *end = bss_end;
    return 0;
}

static int load_elf(const struct boot_request *req, uint64_t cmdline_len, struct boot_layout *l,
                    uint64_t *entry, uint64_t *end, char *err, size_t errlen)
{
    struct elf_file elf;
    uint64_t lo = 0;
    char why[256];
    if (elf_open(&elf, req->kernel, req->kernel_size, why, sizeof(why)) < 0)
        return qk_fail(err, errlen, "Multiboot kernel without address fields must be ELF: %s", why);
    if (elf_check_segments(&elf, req->mem, &lo, end, err, errlen) < 0)
        return -1;
    if (!elf_vaddr_to_paddr(&elf, elf.entry, entry))
        return qk_fail(err, errlen,
                       "Multiboot ELF entry point 0x%llx is outside every loaded "
                       "segment",
                       (unsigned long long)elf.entry);
    if (*entry > UINT32_MAX)
        return qk_fail(err, errlen, "Multiboot ELF entry point 0x%llx is above 4 GiB",
                       (unsigned long long)*entry);
    struct boot_ranges kr = {0};
    boot_ranges_from_elf(&elf, &kr);
    if (boot_plan_layout(req->mem, &kr, cmdline_len, l, err, errlen) < 0)
        return -1;
    return elf_load_segments(&elf, req->mem, &lo, end, err, errlen);
}

/* mem_lower: KiB of conventional memory at 0; mem_upper: KiB of RAM contiguous from 1 MiB. */
static void memory_sizes(const struct e820_map *map, uint32_t *lower, uint32_t *upper)
{
    *lower = *upper = 0;
    uint32_t n = map->nr < E820_MAX_ENTRIES ? map->nr : E820_MAX_ENTRIES;
    for (uint32_t i = 0; i < n; i++) {
        const struct e820_entry *e = &map->entry[i];
        if (e->type != E820_RAM)
            continue;
        if (e->addr == 0)
            *lower = (uint32_t)((e->size < 0xa0000 ? e->size : 0xa0000) >> 10);
        if (e->addr == BOOT_KERNEL_MIN_ADDR) {
            uint64_t kib = e->size >> 10;
            *upper = kib > UINT32_MAX ? UINT32_MAX : (uint32_t)kib;
        }
    }
}

static uint32_t write_mmap(uint8_t *p, const struct e820_map *map)
{
    uint32_t n = map->nr < E820_MAX_ENTRIES ? map->nr : E820_MAX_ENTRIES;
    for (uint32_t i = 0; i < n; i++, p += MB_MMAP_ENTRY_SIZE) {
        put_le32(p, MB_MMAP_ENTRY_SIZE - 4); /* size excludes the size field itself */
        put_le64(p + 4, map->entry[i].addr);
        put_le64(p + 12, map->entry[i].size);
        put_le32(p + 20, map->entry[i].type);
    }
    return n * MB_MMAP_ENTRY_SIZE;
}

/* Modules go page aligned right after the kernel image. */
static int load_module(const struct boot_request *req, uint64_t kernel_end, uint64_t *start,
                       char *err, size_t errlen)
{
    uint64_t at = align_up_u64(kernel_end, BOOT_PAGE_SIZE);
    if (at < BOOT_KERNEL_MIN_ADDR)
        at = BOOT_KERNEL_MIN_ADDR; /* a kernel below 1 MiB: not over the boot area */
    uint64_t size = req->initrd_size;
    if (at > UINT32_MAX || size > UINT32_MAX - at || !gpa_to_host(req->mem, at, size))
        return qk_fail(err, errlen,
                       "initrd of %llu bytes does not fit in guest RAM after the kernel end "
                       "0x%llx (%llu MiB of RAM below 4 GiB)",
                       (unsigned long long)size, (unsigned long long)kernel_end,
                       (unsigned long long)(guest_low_ram(req->mem) >> 20));
    if (guest_write(req->mem, at, req->initrd, size) < 0)
        return qk_fail(err, errlen, "cannot copy the initrd to 0x%llx", (unsigned long long)at);
    *start = at;
    return 0;
}

int boot_load_multiboot(const struct boot_request *req, struct boot_result *out, char *err,
                        size_t errlen)
{
    memset(out, 0, sizeof(*out));
    long hdr = multiboot_find_header(req->kernel, req->kernel_size);
    if (hdr < 0)
        return qk_fail(err, errlen, "no Multiboot header in the first 8 KiB");
    uint32_t flags = get_le32(req->kernel + hdr + 4);
    uint32_t required = flags & MB_REQUIRED_MASK;
    if (required & MB_FLAG_VIDEO_MODE)
        return qk_fail(err, errlen,
                       "Multiboot kernel requires a video mode (header flag 2), "
                       "which quokka does not provide");
    if (required & ~MB_SUPPORTED_REQUIRED)
        return qk_fail(err, errlen,
                       "Multiboot kernel requires unsupported features (header "
                       "flags 0x%04x)",
                       required & ~MB_SUPPORTED_REQUIRED);
    long cmdline_len = boot_cmdline_len(req, BOOT_CMDLINE_MAX - 1, err, errlen);
    if (cmdline_len < 0)
        return -1;

    uint64_t entry = 0, end = 0;
    struct boot_layout l;
    int rc = (flags & MB_FLAG_AOUT_KLUDGE)
                 ? load_aout(req, (size_t)hdr, (uint64_t)cmdline_len, &l, &entry, &end, err, errlen)
                 : load_elf(req, (uint64_t)cmdline_len, &l, &entry, &end, err, errlen);
    if (rc < 0 || boot_write_cmdline(req, &l, err, errlen) < 0)
        return -1;

    uint8_t *info = gpa_to_host(req->mem, l.info, MB_INFO_SIZE);
    if (!info)
        return qk_fail(err, errlen, "cannot reach the Multiboot information area");
    memset(info, 0, MB_INFO_SIZE);
    uint32_t nr_mods = 0;
    if (req->initrd) {
        uint64_t mod_start = 0;
        if (load_module(req, end > l.high_end ? end : l.high_end, &mod_start, err, errlen) < 0)
            return -1;
        uint8_t *mod = info + MB_MODS_OFF;
        put_le32(mod, (uint32_t)mod_start);
        put_le32(mod + 4, (uint32_t)(mod_start + req->initrd_size));
        put_le32(mod + 8, (uint32_t)(l.info + MB_MOD_STRING_OFF));
        nr_mods = 1;
    }
    memcpy(info + MB_MOD_STRING_OFF, mb_module_string, sizeof(mb_module_string));
    memcpy(info + MB_LOADER_NAME_OFF, mb_loader_name, sizeof(mb_loader_name));

    struct e820_map scratch;
    const struct e820_map *map = boot_e820(req, &scratch);
    uint32_t lower, upper;
    memory_sizes(map, &lower, &upper);
    uint32_t mmap_len = write_mmap(info + MB_MMAP_OFF, map);
    put_le32(info + MBI_FLAGS, MBI_FLAG_MEMORY | MBI_FLAG_CMDLINE | MBI_FLAG_MODS | MBI_FLAG_MMAP |
                                   MBI_FLAG_LOADER_NAME);
    put_le32(info + MBI_MEM_LOWER, lower);
    put_le32(info + MBI_MEM_UPPER, upper);
    put_le32(info + MBI_CMDLINE, (uint32_t)l.cmdline); /* the layout is in low RAM */
    put_le32(info + MBI_MODS_COUNT, nr_mods);
    put_le32(info + MBI_MODS_ADDR, (uint32_t)(l.info + MB_MODS_OFF));
    put_le32(info + MBI_MMAP_LENGTH, mmap_len);
    put_le32(info + MBI_MMAP_ADDR, (uint32_t)(l.info + MB_MMAP_OFF));
    put_le32(info + MBI_LOADER_NAME, (uint32_t)(l.info + MB_LOADER_NAME_OFF));

    boot_cpu_flat32_at(&out->cpu, req->mem, &l);
    out->cpu.rip = entry;
    out->cpu.gpr[GPR_RAX] = MB_BOOT_MAGIC;
    out->cpu.gpr[GPR_RBX] = l.info;
    out->cpu.gpr[GPR_RSP] = l.stack_top; /* the spec leaves ESP undefined; be kind */
    out->format = BOOT_FMT_MULTIBOOT;
    out->kernel_end = end;
    return 0;
}
