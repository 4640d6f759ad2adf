/* Internal helpers shared by the boot loaders and the ACPI builder (not part of the public boot
 * API): little-endian field access, guest range checks, command line and initrd placement. */
#ifndef QUOKKA_VM_BOOT_LOADER_H
#define QUOKKA_VM_BOOT_LOADER_H

#include "vm/boot/boot.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Where modules and initrds go at the lowest, and where bzImages load. */
#define BOOT_KERNEL_MIN_ADDR 0x100000ULL
#define BOOT_PAGE_SIZE 0x1000ULL

/* File and guest structures are little-endian byte arrays; these never assume alignment. */
static inline uint16_t get_le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (uint16_t)p[1] << 8);
}

static inline uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t get_le64(const uint8_t *p)
{
    return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

static inline void put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static inline void put_le32(uint8_t *p, uint32_t v)
{
    put_le16(p, (uint16_t)v);
    put_le16(p + 2, (uint16_t)(v >> 16));
}

static inline void put_le64(uint8_t *p, uint64_t v)
{
    put_le32(p, (uint32_t)v);
    put_le32(p + 4, (uint32_t)(v >> 32));
}

static inline uint64_t align_up_u64(uint64_t v, uint64_t align) /* align: power of two */
{
    return (v + align - 1) & ~(align - 1);
}

/* Where one load puts the loader's own data (layout.c): the addresses of boot.h unless the
 * kernel's segments are there. The page tables are 6 pages (PML4, PDPT, 4 PDs); info is one
 * page (Multiboot info or hvm_start_info, with the memory map and module list after it). */
struct boot_layout {
    uint64_t gdt, info, zero_page, stack_top, page_tables, cmdline;
    uint64_t high_end; /* end of the pieces that had to go above 1 MiB, 0: none */
};
extern const struct boot_layout boot_default_layout;

/* Guest-physical ranges the kernel occupies. */
#define BOOT_MAX_RANGES 32
struct boot_ranges {
    unsigned nr;
    uint64_t start[BOOT_MAX_RANGES], end[BOOT_MAX_RANGES];
};
struct elf_file;
void boot_ranges_add(struct boot_ranges *r, uint64_t start, uint64_t end);
void boot_ranges_from_elf(const struct elf_file *elf, struct boot_ranges *r);

/* Place the loader's data clear of the kernel's ranges and the ACPI tables; -1 with a
 * message when nothing fits in low RAM. */
int boot_plan_layout(const struct guest_memory *mem, const struct boot_ranges *kernel,
                     uint64_t cmdline_len, struct boot_layout *l, char *err, size_t errlen);

/* Entry CPU states with the layout's GDT (and page tables for long mode). */
void boot_cpu_flat32_at(struct vcpu_state *cpu, struct guest_memory *mem,
                        const struct boot_layout *l);
int boot_cpu_long64_at(struct vcpu_state *cpu, struct guest_memory *mem,
                       const struct boot_layout *l);

/* Check that [gpa, gpa+len) is guest RAM clear of the ACPI tables (the loader's own data
 * moves out of a kernel's way: boot_plan_layout); `what` names the piece for the message. */
int boot_check_kernel_range(const struct guest_memory *mem, uint64_t gpa, uint64_t len,
                            const char *what, char *err, size_t errlen);

/* Check req->cmdline's length (without the NUL at most max_len, and room for the NUL in
 * BOOT_CMDLINE_MAX); returns it, or -1 with a message. */
long boot_cmdline_len(const struct boot_request *req, uint64_t max_len, char *err, size_t errlen);
/* Copy req->cmdline (NUL-terminated) to l->cmdline. */
int boot_write_cmdline(const struct boot_request *req, const struct boot_layout *l, char *err,
                       size_t errlen);

/* Place the initrd page-aligned as high as possible below min(top, end of low RAM) and above
 * floor (the end of the kernel), copy it, and return its address. Call only with an initrd. */
int boot_place_initrd(const struct boot_request *req, uint64_t top, uint64_t floor, uint64_t *addr,
                      char *err, size_t errlen);

/* The map to report: req->e820, or one built from guest memory when the caller gave none. */
const struct e820_map *boot_e820(const struct boot_request *req, struct e820_map *scratch);

/* Multiboot header search (used by dispatch and the loader): offset of a valid header in the
 * first 8 KiB, or -1. */
long multiboot_find_header(const uint8_t *data, size_t size);

#endif
