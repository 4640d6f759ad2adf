/* Where the loaders put their own data (GDT, boot information, zero page, stack, page tables,
 * command line). Each piece has a preferred address (boot.h), used when the kernel leaves it
 * free; a kernel segment there (test kernels link at 32 KiB) moves the piece instead, to the
 * lowest free gap below 1 MiB, else the lowest one above 1 MiB in low RAM. Only when nothing
 * fits is the kernel refused. */
#include "util/log.h"
#include "vm/boot/elf.h"
#include "vm/boot/loader.h"
#include "vm/memory.h"

#define LOW_FIRST 0x1000ULL /* above the real-mode IVT and BIOS data area */
#define LOW_END 0x9f000ULL  /* below the EBDA and the legacy hole */
#define GDT_SLOT 0x40ULL    /* the 0x30-byte boot GDT */
#define PAGE_TABLES_PAGES 6 /* PML4, PDPT, 4 page directories */
#define STACK_TOP_OFFSET 0xff0ULL

void boot_ranges_add(struct boot_ranges *r, uint64_t start, uint64_t end)
{
    if (end <= start)
        return;
    if (r->nr < BOOT_MAX_RANGES) {
        r->start[r->nr] = start;
        r->end[r->nr++] = end;
        return;
    }
    /* Full: the last range grows to cover this one too (only ever more cautious). */
    unsigned l = BOOT_MAX_RANGES - 1;
    r->start[l] = start < r->start[l] ? start : r->start[l];
    r->end[l] = end > r->end[l] ? end : r->end[l];
}

void boot_ranges_from_elf(const struct elf_file *elf, struct boot_ranges *r)
{
    for (unsigned i = 0; i < elf->phnum; i++) {
        struct elf_segment seg;
        elf_segment_at(elf, i, &seg);
        if (seg.type == ELF_PT_LOAD && seg.memsz) /* elf_check_segments: no wrap */
            boot_ranges_add(r, seg.paddr, seg.paddr + seg.memsz);
    }
}

/* The end of a busy range that [at, at + size) touches (kernel, pieces already placed, the
 * ACPI tables), or 0 when it is free. */
static uint64_t collides(const struct boot_ranges *busy, uint64_t at, uint64_t size)
{
    if (at < BOOT_ACPI_BASE + BOOT_ACPI_SIZE && at + size > BOOT_ACPI_BASE)
        return BOOT_ACPI_BASE + BOOT_ACPI_SIZE;
    for (unsigned i = 0; i < busy->nr; i++)
        if (at < busy->end[i] && at + size > busy->start[i])
            return busy->end[i];
    return 0;
}

/* The lowest free, RAM-backed, aligned address in [from, limit), or UINT64_MAX. */
static uint64_t first_fit(const struct guest_memory *mem, const struct boot_ranges *busy,
                          uint64_t size, uint64_t align, uint64_t from, uint64_t limit)
{
    for (uint64_t at = align_up_u64(from, align); at < limit && size <= limit - at;) {
        uint64_t end = collides(busy, at, size);
        if (!end)
            return gpa_to_host(mem, at, size) ? at : UINT64_MAX;
        at = align_up_u64(end, align);
    }
    return UINT64_MAX;
}

static int place(const struct guest_memory *mem, struct boot_ranges *busy, uint64_t pref,
                 uint64_t size, uint64_t align, const char *what, uint64_t *out,
                 struct boot_layout *l, char *err, size_t errlen)
{
    uint64_t at = pref;
    if (collides(busy, at, size) || !gpa_to_host(mem, at, size))
        at = first_fit(mem, busy, size, align, LOW_FIRST, LOW_END);
    if (at == UINT64_MAX) {
        at = first_fit(mem, busy, size, align, BOOT_KERNEL_MIN_ADDR, guest_low_ram(mem));
        if (at != UINT64_MAX && at + size > l->high_end)
            l->high_end = at + size;
    }
    if (at == UINT64_MAX)
        return qk_fail(err, errlen,
                       "the kernel's segments leave no room in low RAM for %s (%llu bytes)", what,
                       (unsigned long long)size);
    /* The pieces must not overlap each other either: each joins the busy ranges (a full
     * table only grows its last range, which stays correct). */
    boot_ranges_add(busy, at, at + size);
    *out = at;
    return 0;
}

int boot_plan_layout(const struct guest_memory *mem, const struct boot_ranges *kernel,
                     uint64_t cmdline_len, struct boot_layout *l, char *err, size_t errlen)
{
    struct boot_ranges busy = *kernel;
    uint64_t stack = 0;
    *l = (struct boot_layout){0};
    if (place(mem, &busy, BOOT_PML4, PAGE_TABLES_PAGES * BOOT_PAGE_SIZE, BOOT_PAGE_SIZE,
              "the boot page tables", &l->page_tables, l, err, errlen) < 0 ||
        place(mem, &busy, BOOT_INFO_ADDR, BOOT_PAGE_SIZE, BOOT_PAGE_SIZE, "the boot information",
              &l->info, l, err, errlen) < 0 ||
        place(mem, &busy, BOOT_ZERO_PAGE, BOOT_PAGE_SIZE, BOOT_PAGE_SIZE, "the zero page",
              &l->zero_page, l, err, errlen) < 0 ||
        place(mem, &busy, BOOT_STACK_TOP & ~(BOOT_PAGE_SIZE - 1), BOOT_PAGE_SIZE, BOOT_PAGE_SIZE,
              "the boot stack", &stack, l, err, errlen) < 0 ||
        place(mem, &busy, BOOT_GDT_ADDR, GDT_SLOT, 16, "the boot GDT", &l->gdt, l, err, errlen) <
            0 ||
        place(mem, &busy, BOOT_CMDLINE, cmdline_len + 1, 16, "the command line", &l->cmdline, l,
              err, errlen) < 0)
        return -1;
    l->stack_top = stack + STACK_TOP_OFFSET;
    return 0;
}

const struct boot_layout boot_default_layout = {
    .gdt = BOOT_GDT_ADDR,
    .info = BOOT_INFO_ADDR,
    .zero_page = BOOT_ZERO_PAGE,
    .stack_top = BOOT_STACK_TOP,
    .page_tables = BOOT_PML4,
    .cmdline = BOOT_CMDLINE,
};
