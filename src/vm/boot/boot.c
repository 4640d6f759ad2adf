/* Format detection, entry CPU states and the helpers every loader shares. */
#include "vm/boot/boot.h"

#include "util/log.h"
#include "vm/boot/elf.h"
#include "vm/boot/loader.h"
#include "vm/memory.h"

#include <string.h>

#define PVH_NOTE_NAME "Xen"
#define PVH_NOTE_PHYS32_ENTRY 18

/* Boot GDT. 0x10/0x18 are Linux's __BOOT_CS/__BOOT_DS. In 32-bit mode 0x10 is a 32-bit code
 * segment (Multiboot, PVH and Linux's 32-bit protocol); in long mode it is a 64-bit one, as
 * the 64-bit Linux protocol requires, and 0x08 is 64-bit in both. The TSS slot is 16 bytes so
 * it is a valid descriptor in either mode. */
#define GDT_CODE64 0x00af9b000000ffffULL /* L=1, present, execute/read, accessed */
#define GDT_CODE32 0x00cf9b000000ffffULL /* D=1, G=1, 4 GiB, execute/read, accessed */
#define GDT_DATA 0x00cf93000000ffffULL   /* B=1, G=1, 4 GiB, read/write, accessed */
#define GDT_TSS 0x00008b0000000067ULL    /* busy TSS, base 0, limit 0x67 */
#define GDT_BYTES 0x30

#define PTE_PRESENT 0x1ULL
#define PTE_WRITE 0x2ULL
#define PTE_LARGE 0x80ULL
#define BOOT_PD_PAGES 4 /* 4 x 1 GiB: identity map of the low 4 GiB with 2 MiB pages */

const char *boot_format_name(enum boot_format f)
{
    switch (f) {
    case BOOT_FMT_BZIMAGE:
        return "bzImage";
    case BOOT_FMT_PVH:
        return "PVH";
    case BOOT_FMT_MULTIBOOT:
        return "Multiboot";
    case BOOT_FMT_ELF64:
        return "ELF64";
    }
    return "unknown";
}

static void write_gdt(struct guest_memory *mem, bool long_mode, uint64_t at)
{
    uint8_t gdt[GDT_BYTES] = {0};
    put_le64(gdt + BOOT_SEL_CODE64, GDT_CODE64);
    put_le64(gdt + BOOT_SEL_CODE, long_mode ? GDT_CODE64 : GDT_CODE32);
    put_le64(gdt + BOOT_SEL_DATA, GDT_DATA);
    put_le64(gdt + BOOT_SEL_TSS, GDT_TSS); /* upper half (base 63:32) stays zero */
    /* The layout put it in RAM (the default one: guest memory is at least 2 MiB). */
    (void)guest_write(mem, at, gdt, sizeof(gdt));
}

static struct vcpu_segment flat_segment(uint16_t selector, uint8_t type, bool code64)
{
    return (struct vcpu_segment){
        .base = 0,
        .limit = 0xffffffff,
        .selector = selector,
        .type = type,
        .s = 1,
        .present = 1,
        .l = code64,
        .db = !code64, /* D must be 0 when L=1 */
        .g = 1,
    };
}

/* Registers common to both entry modes: everything zero but the fixed rflags bit, data
 * segments, a busy TSS (VMX refuses an unusable TR) and an unusable LDTR. */
static void base_state(struct vcpu_state *cpu, uint64_t gdt)
{
    memset(cpu, 0, sizeof(*cpu));
    cpu->rflags = X86_RFLAGS_FIXED;
    static const enum seg_index data_segs[] = {SEG_DS, SEG_ES, SEG_FS, SEG_GS, SEG_SS};
    for (size_t i = 0; i < sizeof(data_segs) / sizeof(data_segs[0]); i++)
        cpu->seg[data_segs[i]] = flat_segment(BOOT_SEL_DATA, 0x3, false);
    cpu->seg[SEG_TR] =
        (struct vcpu_segment){.selector = BOOT_SEL_TSS, .limit = 0x67, .type = 0xb, .present = 1};
    cpu->seg[SEG_LDTR] = (struct vcpu_segment){.type = 0x2, .unusable = 1};
    cpu->gdt = (struct vcpu_dtable){.base = gdt, .limit = GDT_BYTES - 1};
    cpu->idt = (struct vcpu_dtable){.base = 0, .limit = 0};
}

void boot_cpu_flat32(struct vcpu_state *cpu, struct guest_memory *mem)
{
    boot_cpu_flat32_at(cpu, mem, &boot_default_layout);
}

int boot_cpu_long64(struct vcpu_state *cpu, struct guest_memory *mem)
{
    return boot_cpu_long64_at(cpu, mem, &boot_default_layout);
}

void boot_cpu_flat32_at(struct vcpu_state *cpu, struct guest_memory *mem,
                        const struct boot_layout *l)
{
    write_gdt(mem, false, l->gdt);
    base_state(cpu, l->gdt);
    cpu->seg[SEG_CS] = flat_segment(BOOT_SEL_CODE, 0xb, false);
    cpu->cr0 = X86_CR0_PE | X86_CR0_ET;
}

int boot_cpu_long64_at(struct vcpu_state *cpu, struct guest_memory *mem,
                       const struct boot_layout *l)
{
    uint64_t pml4_at = l->page_tables, pdpt_at = pml4_at + BOOT_PAGE_SIZE;
    uint64_t pd_at = pdpt_at + BOOT_PAGE_SIZE;
    uint8_t *pml4 = gpa_to_host(mem, pml4_at, BOOT_PAGE_SIZE);
    uint8_t *pdpt = gpa_to_host(mem, pdpt_at, BOOT_PAGE_SIZE);
    uint8_t *pd = gpa_to_host(mem, pd_at, BOOT_PD_PAGES * BOOT_PAGE_SIZE);
    if (!pml4 || !pdpt || !pd)
        return -1;
    memset(pml4, 0, BOOT_PAGE_SIZE);
    memset(pdpt, 0, BOOT_PAGE_SIZE);
    put_le64(pml4, pdpt_at | PTE_PRESENT | PTE_WRITE);
    for (unsigned i = 0; i < BOOT_PD_PAGES; i++)
        put_le64(pdpt + 8 * i, (pd_at + i * BOOT_PAGE_SIZE) | PTE_PRESENT | PTE_WRITE);
    for (uint64_t i = 0; i < BOOT_PD_PAGES * 512ULL; i++)
        put_le64(pd + 8 * i, (i << 21) | PTE_PRESENT | PTE_WRITE | PTE_LARGE);

    write_gdt(mem, true, l->gdt);
    base_state(cpu, l->gdt);
    cpu->seg[SEG_CS] = flat_segment(BOOT_SEL_CODE64, 0xb, true);
    cpu->cr0 = X86_CR0_PE | X86_CR0_ET | X86_CR0_PG;
    cpu->cr3 = pml4_at;
    cpu->cr4 = X86_CR4_PAE;
    cpu->efer = X86_EFER_LME | X86_EFER_LMA;
    return 0;
}

/* What the board places before any loader runs. Kernel segments may use the rest of RAM, as
 * under QEMU: binutils puts the ELF headers of a kernel linked at 1 MiB in a segment at
 * 0xff000, and test kernels link low; the loader's own data moves out of their way. */
static const struct {
    uint64_t start, end;
    const char *what;
} boot_reserved[] = {
    {BOOT_ACPI_BASE, BOOT_ACPI_BASE + BOOT_ACPI_SIZE, "the ACPI tables"},
};

int boot_check_kernel_range(const struct guest_memory *mem, uint64_t gpa, uint64_t len,
                            const char *what, char *err, size_t errlen)
{
    if (len > UINT64_MAX - gpa)
        return qk_fail(err, errlen, "%s at 0x%llx with size 0x%llx wraps around the address space",
                       what, (unsigned long long)gpa, (unsigned long long)len);
    for (size_t i = 0; i < sizeof(boot_reserved) / sizeof(boot_reserved[0]); i++)
        if (len && gpa < boot_reserved[i].end && gpa + len > boot_reserved[i].start)
            return qk_fail(err, errlen,
                           "%s [0x%llx, 0x%llx) overlaps the boot area below 1 MiB (%s at "
                           "[0x%llx, 0x%llx))",
                           what, (unsigned long long)gpa, (unsigned long long)(gpa + len),
                           boot_reserved[i].what, (unsigned long long)boot_reserved[i].start,
                           (unsigned long long)boot_reserved[i].end);
    if (!gpa_to_host(mem, gpa, len))
        return qk_fail(err, errlen,
                       "%s [0x%llx, 0x%llx) is outside guest RAM (%llu MiB below 4 GiB)", what,
                       (unsigned long long)gpa, (unsigned long long)(gpa + len),
                       (unsigned long long)(guest_low_ram(mem) >> 20));
    return 0;
}

long boot_cmdline_len(const struct boot_request *req, uint64_t max_len, char *err, size_t errlen)
{
    size_t len = strlen(req->cmdline ? req->cmdline : "");
    if (max_len > BOOT_CMDLINE_MAX - 1)
        max_len = BOOT_CMDLINE_MAX - 1;
    if (len > max_len)
        return qk_fail(err, errlen, "command line of %zu bytes exceeds the %llu-byte limit", len,
                       (unsigned long long)max_len);
    return (long)len;
}

int boot_write_cmdline(const struct boot_request *req, const struct boot_layout *l, char *err,
                       size_t errlen)
{
    const char *cmdline = req->cmdline ? req->cmdline : "";
    if (guest_write(req->mem, l->cmdline, cmdline, strlen(cmdline) + 1) < 0)
        return qk_fail(err, errlen, "cannot write the command line to guest memory");
    return 0;
}

int boot_place_initrd(const struct boot_request *req, uint64_t top, uint64_t floor, uint64_t *addr,
                      char *err, size_t errlen)
{
    uint64_t ram_top = guest_low_ram(req->mem);
    if (top > ram_top)
        top = ram_top;
    if (floor < BOOT_KERNEL_MIN_ADDR)
        floor = BOOT_KERNEL_MIN_ADDR;
    floor = align_up_u64(floor, BOOT_PAGE_SIZE);
    uint64_t size = req->initrd_size;
    if (top < floor || size > top - floor)
        return qk_fail(err, errlen,
                       "initrd of %llu bytes does not fit in the %llu bytes of low RAM between "
                       "the kernel end 0x%llx and 0x%llx",
                       (unsigned long long)size,
                       (unsigned long long)(top > floor ? top - floor : 0),
                       (unsigned long long)floor, (unsigned long long)top);
    uint64_t at = (top - size) & ~(BOOT_PAGE_SIZE - 1);
    if (guest_write(req->mem, at, req->initrd, size) < 0)
        return qk_fail(err, errlen, "cannot copy the initrd to 0x%llx", (unsigned long long)at);
    *addr = at;
    return 0;
}

const struct e820_map *boot_e820(const struct boot_request *req, struct e820_map *scratch)
{
    if (req->e820)
        return req->e820;
    e820_build(req->mem, scratch);
    return scratch;
}

static bool has_pvh_note(const uint8_t *data, size_t size)
{
    struct elf_file elf;
    const uint8_t *desc;
    uint32_t descsz;
    if (elf_open(&elf, data, size, NULL, 0) < 0)
        return false;
    return elf_find_note(&elf, PVH_NOTE_NAME, PVH_NOTE_PHYS32_ENTRY, &desc, &descsz) == 1;
}

int boot_load(const struct boot_request *req, struct boot_result *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    const uint8_t *k = req->kernel;
    size_t size = req->kernel_size;
    if (!k || size == 0)
        return qk_fail(err, errlen, "kernel file is empty");
    if (size > BOOT_KERNEL_MAX_FILE)
        return qk_fail(err, errlen, "kernel file of %zu bytes exceeds the %llu MiB limit", size,
                       BOOT_KERNEL_MAX_FILE >> 20);
    if (size >= 0x206 && memcmp(k + 0x202, "HdrS", 4) == 0)
        return boot_load_bzimage(req, out, err, errlen);
    if (multiboot_find_header(k, size) >= 0)
        return boot_load_multiboot(req, out, err, errlen);
    if (elf_has_magic(k, size)) {
        if (has_pvh_note(k, size))
            return boot_load_pvh(req, out, err, errlen);
        struct elf_file elf;
        if (elf_open(&elf, k, size, err, errlen) < 0)
            return -1;
        if (!elf.is64)
            return qk_fail(err, errlen,
                           "ELF32 kernel has neither a PVH note nor a Multiboot header");
        return boot_load_elf64(req, out, err, errlen);
    }
    return qk_fail(err, errlen, "not a bzImage, Multiboot, PVH or ELF64 kernel");
}
