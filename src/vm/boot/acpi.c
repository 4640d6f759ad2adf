/* ACPI tables describing quokka's PC board: RSDP -> RSDT/XSDT -> FADT (-> FACS, DSDT) and
 * MADT. Layouts follow the ACPI 6.x specification; the FADT points at the PM1 and reset
 * ports in vm/platform.h and the DSDT carries only \_S5 so ACPI poweroff works. */
#include "vm/boot/boot.h"

#include "vm/boot/loader.h"
#include "vm/memory.h"
#include "vm/platform.h"

#include <string.h>

#define ACPI_OEM_ID "QUOKKA"
#define ACPI_OEM_TABLE_ID "QUOKKAPC"
#define ACPI_CREATOR_ID "QKKA"
#define ACPI_HDR_SIZE 36

/* Offsets of each table inside the BOOT_ACPI_BASE window. The MADT goes last: it grows with
 * the CPU count. */
#define OFF_RSDP 0x000
#define OFF_RSDT 0x040
#define OFF_XSDT 0x080
#define OFF_FACS 0x0c0 /* must be 64-byte aligned */
#define OFF_FADT 0x100
#define OFF_DSDT 0x240
#define OFF_MADT 0x300

#define RSDP_SIZE 36
#define RSDP_V1_SIZE 20
#define FACS_SIZE 64
#define FADT_SIZE 276
#define FADT_REVISION 6
#define MADT_REVISION 4
#define NR_SDT_ENTRIES 2 /* FADT, MADT */

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

/* AML: Name (_S5, Package () { SLP_TYP_a, SLP_TYP_b, 0, 0 }) */
// clang-format off
static const uint8_t dsdt_aml[] = {
    0x08, '_', 'S', '5', '_',   /* NameOp, NameString */
    0x12, 0x08, 0x04,           /* PackageOp, PkgLength (this byte + 7), NumElements */
    0x0a, ACPI_SLP_TYP_S5,      /* BytePrefix value: PM1a_CNT.SLP_TYP */
    0x0a, ACPI_SLP_TYP_S5,      /* PM1b (unused, same value) */
    0x00, 0x00,                 /* ZeroOp x2: reserved */
};
// clang-format on

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

static void build_sdt(uint8_t *t, const char *sig, unsigned entry_size, const uint64_t *entries)
{
    uint32_t len = ACPI_HDR_SIZE + NR_SDT_ENTRIES * entry_size;
    table_header(t, sig, len, 1);
    for (unsigned i = 0; i < NR_SDT_ENTRIES; i++) {
        if (entry_size == 8)
            put_le64(t + ACPI_HDR_SIZE + 8 * i, entries[i]);
        else
            put_le32(t + ACPI_HDR_SIZE + 4 * i, (uint32_t)entries[i]);
    }
    table_checksum(t, len);
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

_Static_assert(OFF_DSDT - OFF_FADT >= FADT_SIZE, "FADT overlaps DSDT");
_Static_assert(OFF_MADT - OFF_DSDT >= ACPI_HDR_SIZE + sizeof(dsdt_aml), "DSDT overlaps MADT");

uint64_t acpi_build_tables(struct guest_memory *mem, unsigned nr_cpus)
{
    if (nr_cpus == 0 || nr_cpus > ACPI_MAX_CPUS)
        return 0;
    if (OFF_MADT + madt_size(nr_cpus) > BOOT_ACPI_SIZE)
        return 0;
    uint8_t *base = gpa_to_host(mem, BOOT_ACPI_BASE, BOOT_ACPI_SIZE);
    if (!base)
        return 0;
    memset(base, 0, BOOT_ACPI_SIZE);
    const uint64_t at = BOOT_ACPI_BASE;

    uint8_t *facs = base + OFF_FACS;
    memcpy(facs, "FACS", 4);
    put_le32(facs + 4, FACS_SIZE);
    facs[32] = 2; /* version; the FACS has no checksum */

    uint32_t dsdt_len = ACPI_HDR_SIZE + sizeof(dsdt_aml);
    table_header(base + OFF_DSDT, "DSDT", dsdt_len, 2);
    memcpy(base + OFF_DSDT + ACPI_HDR_SIZE, dsdt_aml, sizeof(dsdt_aml));
    table_checksum(base + OFF_DSDT, dsdt_len);

    build_fadt(base + OFF_FADT, at + OFF_FACS, at + OFF_DSDT);
    build_madt(base + OFF_MADT, nr_cpus);
    const uint64_t entries[NR_SDT_ENTRIES] = {at + OFF_FADT, at + OFF_MADT};
    build_sdt(base + OFF_RSDT, "RSDT", 4, entries);
    build_sdt(base + OFF_XSDT, "XSDT", 8, entries);
    build_rsdp(base + OFF_RSDP, at + OFF_RSDT, at + OFF_XSDT);
    return at + OFF_RSDP;
}
