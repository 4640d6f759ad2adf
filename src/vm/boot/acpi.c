/* ACPI tables describing quokka's PC board: RSDP -> RSDT/XSDT -> FADT (-> FACS, DSDT), MADT
 * and, with PCI, MCFG. Layouts follow the ACPI 6.x specification (MCFG: PCI Firmware 3.x);
 * the FADT points at the PM1 and reset ports in vm/platform.h. The DSDT carries \_S5 (so
 * ACPI poweroff works) and whatever the machine's describe callback writes into \_SB (the
 * PCI root bridge, devices). Tables are laid out one after another from BOOT_ACPI_BASE, the
 * RSDP first; the DSDT goes last and takes what room is left. */
#include "vm/boot/boot.h"

#include "vm/boot/aml.h"
#include "vm/boot/loader.h"
#include "vm/memory.h"
#include "vm/platform.h"

#include "util/log.h"

#include <string.h>

#define ACPI_OEM_ID "QUOKKA"
#define ACPI_OEM_TABLE_ID "QUOKKAPC"
#define ACPI_CREATOR_ID "QKKA"
#define ACPI_HDR_SIZE 36

#define ACPI_TABLE_ALIGN 16
#define FACS_ALIGN 64 /* the FACS must be 64-byte aligned */

#define RSDP_SIZE 36
#define RSDP_V1_SIZE 20
#define FACS_SIZE 64
#define FADT_SIZE 276
#define FADT_REVISION 6
#define MADT_REVISION 4
#define DSDT_REVISION 2   /* 64-bit integers */
#define MAX_SDT_ENTRIES 3 /* FADT, MADT, MCFG */

/* MCFG: header, 8 reserved bytes, one allocation per segment/bus range */
#define MCFG_REVISION 1
#define MCFG_ALLOC_OFFSET 44
#define MCFG_ALLOC_SIZE 16
#define MCFG_SIZE (MCFG_ALLOC_OFFSET + MCFG_ALLOC_SIZE)

/* FADT fields */
#define FADT_FIRMWARE_CTRL 36
#define FADT_DSDT 40
#define FADT_SCI_INT 46
#define FADT_SMI_CMD 48
#define FADT_PM1A_EVT_BLK 56
#define FADT_PM1A_CNT_BLK 64
#define FADT_PM_TMR_BLK 76
#define FADT_PM1_EVT_LEN 88
#define FADT_PM1_CNT_LEN 89
#define FADT_PM_TMR_LEN 91
#define FADT_IAPC_BOOT_ARCH 109
#define FADT_FLAGS 112
#define FADT_RESET_REG 116
#define FADT_RESET_VALUE 128
#define FADT_MINOR_VERSION 131
#define FADT_X_DSDT 140
#define FADT_X_PM1A_EVT_BLK 148
#define FADT_X_PM1A_CNT_BLK 172
#define FADT_X_PM_TMR_BLK 208

#define FADT_F_WBINVD (1u << 0)
#define FADT_F_PROC_C1 (1u << 2)
#define FADT_F_SLP_BUTTON (1u << 5) /* no fixed-feature sleep button */
#define FADT_F_RESET_REG_SUP (1u << 10)
#define IAPC_8042 (1u << 1)
#define IAPC_NO_VGA (1u << 2)
#define ACPI_RESET_VALUE 0x0e

#define PM1_EVT_LEN 4
#define PM1_CNT_LEN 2
#define PM_TMR_LEN 4

/* Generic Address Structure */
#define GAS_SYSTEM_IO 1
#define GAS_ACCESS_BYTE 1
#define GAS_ACCESS_WORD 2
#define GAS_ACCESS_DWORD 3

/* MADT */
#define MADT_PCAT_COMPAT 1u
#define MADT_LOCAL_APIC 0
#define MADT_IO_APIC 1
#define MADT_INT_OVERRIDE 2
#define MADT_LOCAL_APIC_NMI 4
#define MADT_LAPIC_ENABLED 1u
#define MPS_INTI_ACTIVE_HIGH 0x1
#define MPS_INTI_LEVEL 0xc
#define ACPI_MAX_CPUS 254 /* APIC ids 0..n-1 plus the IOAPIC id n must fit in 8 bits */

static uint8_t checksum(const uint8_t *p, size_t len)
{
    uint8_t sum = 0;
    for (size_t i = 0; i < len; i++)
        sum = (uint8_t)(sum + p[i]);
    return (uint8_t)(0 - sum);
}

static void table_header(uint8_t *t, const char *sig, uint32_t len, uint8_t revision)
{
    memcpy(t, sig, 4);
    put_le32(t + 4, len);
    t[8] = revision;
    memcpy(t + 10, ACPI_OEM_ID, 6);
    memcpy(t + 16, ACPI_OEM_TABLE_ID, 8);
    put_le32(t + 24, 1); /* OEM revision */
    memcpy(t + 28, ACPI_CREATOR_ID, 4);
    put_le32(t + 32, 1); /* creator revision */
}

static void table_checksum(uint8_t *t, uint32_t len)
{
    t[9] = 0;
    t[9] = checksum(t, len);
}

static void put_gas(uint8_t *p, uint8_t width_bytes, uint8_t access, uint64_t port)
{
    p[0] = GAS_SYSTEM_IO;
    p[1] = (uint8_t)(width_bytes * 8);
    p[2] = 0; /* bit offset */
    p[3] = access;
    put_le64(p + 4, port);
}

static void build_fadt(uint8_t *t, uint64_t facs, uint64_t dsdt)
{
    table_header(t, "FACP", FADT_SIZE, FADT_REVISION);
    put_le32(t + FADT_FIRMWARE_CTRL, (uint32_t)facs);
    put_le32(t + FADT_DSDT, (uint32_t)dsdt);
    put_le16(t + FADT_SCI_INT, IRQ_ACPI_SCI);
    put_le32(t + FADT_SMI_CMD, 0); /* no SMI command port: the board is always in ACPI mode */
    put_le32(t + FADT_PM1A_EVT_BLK, PORT_ACPI_PM1A_EVT);
    put_le32(t + FADT_PM1A_CNT_BLK, PORT_ACPI_PM1A_CNT);
    put_le32(t + FADT_PM_TMR_BLK, PORT_ACPI_PM_TMR);
    t[FADT_PM1_EVT_LEN] = PM1_EVT_LEN;
    t[FADT_PM1_CNT_LEN] = PM1_CNT_LEN;
    t[FADT_PM_TMR_LEN] = PM_TMR_LEN;
    put_le16(t + FADT_IAPC_BOOT_ARCH, IAPC_8042 | IAPC_NO_VGA);
    /* The PM timer is 24 bits wide, so TMR_VAL_EXT stays clear. */
    put_le32(t + FADT_FLAGS,
             FADT_F_WBINVD | FADT_F_PROC_C1 | FADT_F_SLP_BUTTON | FADT_F_RESET_REG_SUP);
    put_gas(t + FADT_RESET_REG, 1, GAS_ACCESS_BYTE, PORT_ACPI_RESET);
    t[FADT_RESET_VALUE] = ACPI_RESET_VALUE;
    t[FADT_MINOR_VERSION] = 0;
    put_le64(t + FADT_X_DSDT, dsdt);
    put_gas(t + FADT_X_PM1A_EVT_BLK, PM1_EVT_LEN, GAS_ACCESS_WORD, PORT_ACPI_PM1A_EVT);
    put_gas(t + FADT_X_PM1A_CNT_BLK, PM1_CNT_LEN, GAS_ACCESS_WORD, PORT_ACPI_PM1A_CNT);
    put_gas(t + FADT_X_PM_TMR_BLK, PM_TMR_LEN, GAS_ACCESS_DWORD, PORT_ACPI_PM_TMR);
    table_checksum(t, FADT_SIZE);
}

static uint32_t madt_size(unsigned nr_cpus)
{
    return ACPI_HDR_SIZE + 8 + nr_cpus * 8 + 12 + 2 * 10 + 6;
}

static void put_override(uint8_t *p, uint8_t isa_irq, uint32_t gsi, uint16_t flags)
{
    p[0] = MADT_INT_OVERRIDE;
    p[1] = 10;
    p[2] = 0; /* bus: ISA */
    p[3] = isa_irq;
    put_le32(p + 4, gsi);
    put_le16(p + 8, flags);
}

static void build_madt(uint8_t *t, unsigned nr_cpus)
{
    uint32_t len = madt_size(nr_cpus);
    table_header(t, "APIC", len, MADT_REVISION);
    put_le32(t + 36, (uint32_t)PHYS_LAPIC);
    put_le32(t + 40, MADT_PCAT_COMPAT);
    uint8_t *p = t + 44;
    for (unsigned i = 0; i < nr_cpus; i++, p += 8) {
        p[0] = MADT_LOCAL_APIC;
        p[1] = 8;
        p[2] = (uint8_t)i; /* ACPI processor UID */
        p[3] = (uint8_t)i; /* APIC id */
        put_le32(p + 4, MADT_LAPIC_ENABLED);
    }
    p[0] = MADT_IO_APIC;
    p[1] = 12;
    p[2] = (uint8_t)nr_cpus; /* IOAPIC id follows the CPUs' */
    p[3] = 0;
    put_le32(p + 4, (uint32_t)PHYS_IOAPIC);
    put_le32(p + 8, 0); /* GSI base */
    p += 12;
    /* The PIT is wired to IOAPIC pin 2 on PCs; the SCI is level-triggered, active high. */
    put_override(p, IRQ_PIT, 2, 0);
    p += 10;
    put_override(p, IRQ_ACPI_SCI, IRQ_ACPI_SCI, MPS_INTI_ACTIVE_HIGH | MPS_INTI_LEVEL);
    p += 10;
    /* LINT1 of every local APIC is the NMI input, as on PC firmware. */
    p[0] = MADT_LOCAL_APIC_NMI;
    p[1] = 6;
    p[2] = 0xff; /* all processors */
    put_le16(p + 3, 0);
    p[5] = 1; /* LINT1 */
    table_checksum(t, len);
}

static void build_sdt(uint8_t *t, const char *sig, unsigned entry_size, const uint64_t *entries,
                      unsigned nr)
{
    uint32_t len = ACPI_HDR_SIZE + nr * entry_size;
    table_header(t, sig, len, 1);
    for (unsigned i = 0; i < nr; i++) {
        if (entry_size == 8)
            put_le64(t + ACPI_HDR_SIZE + 8 * i, entries[i]);
        else
            put_le32(t + ACPI_HDR_SIZE + 4 * i, (uint32_t)entries[i]);
    }
    table_checksum(t, len);
}

/* One allocation: the ECAM window of segment 0, buses 0..end_bus. */
static void build_mcfg(uint8_t *t, uint64_t ecam_base, uint8_t end_bus)
{
    table_header(t, "MCFG", MCFG_SIZE, MCFG_REVISION);
    uint8_t *e = t + MCFG_ALLOC_OFFSET;
    put_le64(e, ecam_base);
    put_le16(e + 8, 0); /* PCI segment group */
    e[10] = 0;          /* start bus */
    e[11] = end_bus;
    table_checksum(t, MCFG_SIZE);
}

static void build_rsdp(uint8_t *r, uint64_t rsdt, uint64_t xsdt)
{
    memcpy(r, "RSD PTR ", 8);
    memcpy(r + 9, ACPI_OEM_ID, 6);
    r[15] = 2; /* revision: ACPI 2.0+ layout with XSDT */
    put_le32(r + 16, (uint32_t)rsdt);
    put_le32(r + 20, RSDP_SIZE);
    put_le64(r + 24, xsdt);
    r[8] = checksum(r, RSDP_V1_SIZE);
    r[32] = checksum(r, RSDP_SIZE);
}

/* Where each table goes, relative to BOOT_ACPI_BASE. */
struct acpi_layout {
    uint32_t rsdt, xsdt, facs, fadt, mcfg, madt, dsdt;
    unsigned nr_entries;
};

static uint32_t align32(uint32_t v, uint32_t a)
{
    return (v + a - 1) & ~(a - 1);
}

/* Fixed-size tables first, the MADT (grows with the CPUs), the DSDT (grows with the devices)
 * last. Returns the room left for the DSDT's body, 0 when there is none. */
static uint32_t layout_tables(const struct acpi_config *cfg, struct acpi_layout *l)
{
    l->nr_entries = cfg->mcfg ? 3 : 2;
    l->rsdt = align32(RSDP_SIZE, ACPI_TABLE_ALIGN);
    l->xsdt = align32(l->rsdt + ACPI_HDR_SIZE + 4 * l->nr_entries, ACPI_TABLE_ALIGN);
    l->facs = align32(l->xsdt + ACPI_HDR_SIZE + 8 * l->nr_entries, FACS_ALIGN);
    l->fadt = align32(l->facs + FACS_SIZE, ACPI_TABLE_ALIGN);
    l->mcfg = align32(l->fadt + FADT_SIZE, ACPI_TABLE_ALIGN);
    l->madt = align32(l->mcfg + (cfg->mcfg ? MCFG_SIZE : 0), ACPI_TABLE_ALIGN);
    l->dsdt = align32(l->madt + madt_size(cfg->nr_cpus), ACPI_TABLE_ALIGN);
    if (l->dsdt + ACPI_HDR_SIZE >= BOOT_ACPI_SIZE)
        return 0;
    return (uint32_t)BOOT_ACPI_SIZE - l->dsdt - ACPI_HDR_SIZE;
}

/* The DSDT's body: \_S5 for poweroff, then the machine's devices inside \_SB. */
static void build_dsdt_body(const struct acpi_config *cfg, struct aml_buf *aml)
{
    aml_name(aml, "_S5");
    aml_package(aml, 4);
    aml_integer(aml, ACPI_SLP_TYP_S5); /* PM1a_CNT.SLP_TYP */
    aml_integer(aml, ACPI_SLP_TYP_S5); /* PM1b (unused, same value) */
    aml_integer(aml, 0);               /* reserved */
    aml_integer(aml, 0);
    aml_end(aml);
    if (cfg->describe) {
        aml_scope(aml, "\\_SB");
        cfg->describe(cfg->ctx, aml);
        aml_end(aml);
    }
}

static void build_facs(uint8_t *facs)
{
    memcpy(facs, "FACS", 4);
    put_le32(facs + 4, FACS_SIZE);
    facs[32] = 2; /* version; the FACS has no checksum */
}

static void write_tables(uint8_t *base, const struct acpi_config *cfg, const struct acpi_layout *l,
                         const struct aml_buf *dsdt)
{
    const uint64_t at = BOOT_ACPI_BASE;
    build_facs(base + l->facs);
    uint32_t dsdt_len = ACPI_HDR_SIZE + (uint32_t)dsdt->len;
    table_header(base + l->dsdt, "DSDT", dsdt_len, DSDT_REVISION);
    memcpy(base + l->dsdt + ACPI_HDR_SIZE, dsdt->data, dsdt->len);
    table_checksum(base + l->dsdt, dsdt_len);
    build_fadt(base + l->fadt, at + l->facs, at + l->dsdt);
    build_madt(base + l->madt, cfg->nr_cpus);
    uint64_t entries[MAX_SDT_ENTRIES] = {at + l->fadt, at + l->madt, at + l->mcfg};
    if (cfg->mcfg)
        build_mcfg(base + l->mcfg, cfg->ecam_base, cfg->ecam_end_bus);
    build_sdt(base + l->rsdt, "RSDT", 4, entries, l->nr_entries);
    build_sdt(base + l->xsdt, "XSDT", 8, entries, l->nr_entries);
    build_rsdp(base, at + l->rsdt, at + l->xsdt);
}

uint64_t acpi_build(struct guest_memory *mem, const struct acpi_config *cfg, char *err,
                    size_t errlen)
{
    if (cfg->nr_cpus == 0 || cfg->nr_cpus > ACPI_MAX_CPUS) {
        qk_fail(err, errlen, "ACPI: %u CPUs (the MADT describes 1-%u)", cfg->nr_cpus,
                ACPI_MAX_CPUS);
        return 0;
    }
    struct acpi_layout l;
    uint32_t room = layout_tables(cfg, &l);
    uint8_t *base = gpa_to_host(mem, BOOT_ACPI_BASE, BOOT_ACPI_SIZE);
    if (!base || room == 0) {
        qk_fail(err, errlen, "ACPI: the tables do not fit at 0x%llx", BOOT_ACPI_BASE);
        return 0;
    }
    struct aml_buf dsdt;
    aml_init(&dsdt, room);
    build_dsdt_body(cfg, &dsdt);
    if (!aml_ok(&dsdt)) {
        qk_fail(err, errlen, "ACPI: the DSDT is malformed or larger than the %u bytes left", room);
        aml_free(&dsdt);
        return 0;
    }
    memset(base, 0, BOOT_ACPI_SIZE);
    write_tables(base, cfg, &l, &dsdt);
    aml_free(&dsdt);
    return BOOT_ACPI_BASE;
}

uint64_t acpi_build_tables(struct guest_memory *mem, unsigned nr_cpus)
{
    char err[160];
    const struct acpi_config cfg = {.nr_cpus = nr_cpus};
    return acpi_build(mem, &cfg, err, sizeof(err));
}
