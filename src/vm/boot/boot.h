/* Kernel loaders. Every loader validates each header field it uses against the file size and
 * guest memory: a truncated or corrupt file is an error message, never a crash. */
#ifndef QUOKKA_VM_BOOT_BOOT_H
#define QUOKKA_VM_BOOT_BOOT_H

#include "vm/cpu_state.h"
#include "vm/e820.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct guest_memory;

/* Fixed low-memory layout used while booting (all below 1M, outside the e820 holes). */
#define BOOT_GDT_ADDR 0x500ULL
#define BOOT_INFO_ADDR 0x6000ULL  /* hvm_start_info / multiboot info */
#define BOOT_INFO_EXTRA 0x6100ULL /* memory map / module list following it */
#define BOOT_ZERO_PAGE 0x7000ULL  /* Linux boot_params */
#define BOOT_STACK_TOP 0x8ff0ULL  /* initial stack for ELF64 payloads */
#define BOOT_PML4 0x9000ULL       /* identity page tables: PML4, PDPT, 4 PDs (4 GiB) */
#define BOOT_PDPT 0xA000ULL
#define BOOT_PD 0xB000ULL
#define BOOT_CMDLINE 0x20000ULL
#define BOOT_CMDLINE_MAX 0x10000ULL
#define BOOT_ACPI_BASE 0xE0000ULL /* RSDP and tables, in the legacy BIOS search area */
#define BOOT_ACPI_SIZE 0x10000ULL
#define BOOT_KERNEL_MAX_FILE (512ULL << 20)

/* Selectors of the boot GDT at BOOT_GDT_ADDR. BOOT_SEL_CODE is the entry CS in 32-bit mode
 * (a 32-bit segment there); boot_cpu_long64 rewrites it as a 64-bit segment, as Linux's
 * 64-bit protocol wants __BOOT_CS (0x10) and __BOOT_DS (0x18). */
#define BOOT_SEL_CODE64 0x08
#define BOOT_SEL_CODE 0x10
#define BOOT_SEL_DATA 0x18
#define BOOT_SEL_TSS 0x20

enum boot_format { BOOT_FMT_BZIMAGE, BOOT_FMT_PVH, BOOT_FMT_MULTIBOOT, BOOT_FMT_ELF64 };

struct boot_request {
    struct guest_memory *mem;
    const uint8_t *kernel;
    size_t kernel_size;
    const uint8_t *initrd; /* NULL when none */
    size_t initrd_size;
    const char *cmdline; /* never NULL ("" when none) */
    const struct e820_map *e820;
    uint64_t rsdp_addr; /* 0 when no ACPI tables */
};

struct boot_result {
    enum boot_format format;
    struct vcpu_state cpu; /* BSP state at the entry point */
    uint64_t kernel_end;   /* first byte after what was loaded (for messages/tests) */
};

/* Detect the format and load it. Order: bzImage, Multiboot header, ELF with PVH note, ELF64. */
int boot_load(const struct boot_request *req, struct boot_result *out, char *err, size_t errlen);

int boot_load_bzimage(const struct boot_request *req, struct boot_result *out, char *err,
                      size_t errlen);
int boot_load_multiboot(const struct boot_request *req, struct boot_result *out, char *err,
                        size_t errlen);
int boot_load_pvh(const struct boot_request *req, struct boot_result *out, char *err,
                  size_t errlen);
int boot_load_elf64(const struct boot_request *req, struct boot_result *out, char *err,
                    size_t errlen);

/* Shared helpers for loaders: CPU states for each entry mode, identity page tables. */
void boot_cpu_flat32(struct vcpu_state *cpu, struct guest_memory *mem); /* PE, paging off */
int boot_cpu_long64(struct vcpu_state *cpu, struct guest_memory *mem);  /* LMA, 4G identity */

const char *boot_format_name(enum boot_format f);

struct aml_buf;

/* What the ACPI tables describe besides the fixed board (FADT, MADT, _S5). */
struct acpi_config {
    unsigned nr_cpus; /* 1..254 */
    /* Appends the devices' AML inside the DSDT's Scope (\_SB) (e.g. the machine calls the PCI
     * bus's and every device's describe_acpi). NULL: none. */
    void (*describe)(void *ctx, struct aml_buf *aml);
    void *ctx;
    /* An MCFG table for a PCI ECAM window of buses 0..ecam_end_bus at ecam_base. */
    bool mcfg;
    uint64_t ecam_base;
    uint8_t ecam_end_bus;
};

/* ACPI tables (RSDP, RSDT/XSDT, FADT with PM1 ports, FACS, DSDT with _S5 and the devices,
 * MADT, MCFG) laid out from BOOT_ACPI_BASE, RSDP first. Returns the RSDP address, or 0 with a
 * message when the configuration is invalid or the tables do not fit BOOT_ACPI_SIZE. */
uint64_t acpi_build(struct guest_memory *mem, const struct acpi_config *cfg, char *err,
                    size_t errlen);
/* acpi_build with nr_cpus and nothing else (no devices, no MCFG). */
uint64_t acpi_build_tables(struct guest_memory *mem, unsigned nr_cpus);

#endif
