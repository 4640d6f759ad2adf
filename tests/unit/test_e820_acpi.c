/* Unit tests for the e820 map (64M, 3G, 5G guests) and the ACPI tables: checksums, the
 * RSDP -> XSDT -> FADT/MADT chain, FADT ports and flags, _S5 in the DSDT, MADT entries. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "vm/boot/boot.h"
#include "vm/e820.h"
#include "vm/memory.h"
#include "vm/platform.h"

#include <stdio.h>
#include <string.h>

static uint16_t r16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t r32(const uint8_t *p)
{
    return (uint32_t)r16(p) | (uint32_t)r16(p + 2) << 16;
}

static uint64_t r64(const uint8_t *p)
{
    return (uint64_t)r32(p) | (uint64_t)r32(p + 4) << 32;
}

static void expect_entry(const struct e820_map *m, uint32_t i, uint64_t addr, uint64_t size,
                         uint32_t type)
{
    assert_true(i < m->nr);
    assert_int_equal(m->entry[i].addr, addr);
    assert_int_equal(m->entry[i].size, size);
    assert_int_equal(m->entry[i].type, type);
}

static void build_map(uint64_t ram, struct e820_map *map)
{
    struct guest_memory mem;
    char err[256];
    assert_int_equal(guest_memory_init(&mem, ram, err, sizeof(err)), 0);
    e820_build(&mem, map);
    guest_memory_destroy(&mem);
}

static void check_low_entries(const struct e820_map *m)
{
    expect_entry(m, 0, 0, 0x9fc00, E820_RAM);
    expect_entry(m, 1, 0x9fc00, 0x400, E820_RESERVED);
    expect_entry(m, 2, 0xe0000, 0x20000, E820_RESERVED);
    /* The ACPI tables lie inside a non-RAM entry. */
    assert_true(BOOT_ACPI_BASE >= m->entry[2].addr &&
                BOOT_ACPI_BASE + BOOT_ACPI_SIZE <= m->entry[2].addr + m->entry[2].size);
}

static void test_e820_64m(void **state)
{
    (void)state;
    struct e820_map m;
    build_map(64ULL << 20, &m);
    assert_int_equal(m.nr, 4);
    check_low_entries(&m);
    expect_entry(&m, 3, 0x100000, (64ULL << 20) - 0x100000, E820_RAM);
}

static void test_e820_3g(void **state)
{
    (void)state;
    struct e820_map m;
    build_map(3ULL << 30, &m);
    assert_int_equal(m.nr, 4);
    check_low_entries(&m);
    expect_entry(&m, 3, 0x100000, (3ULL << 30) - 0x100000, E820_RAM);
}

static void test_e820_5g(void **state)
{
    (void)state;
    struct e820_map m;
    build_map(5ULL << 30, &m);
    assert_int_equal(m.nr, 5);
    check_low_entries(&m);
    expect_entry(&m, 3, 0x100000, GUEST_LOW_RAM_END - 0x100000, E820_RAM);
    expect_entry(&m, 4, 1ULL << 32, 2ULL << 30, E820_RAM);
    /* Sorted and non-overlapping. */
    for (uint32_t i = 1; i < m.nr; i++)
        assert_true(m.entry[i - 1].addr + m.entry[i - 1].size <= m.entry[i].addr);
}

/* ---- ACPI ---- */

struct acpi_fixture {
    struct guest_memory mem;
};

static const uint8_t *table_at(struct guest_memory *mem, uint64_t gpa, const char *sig)
{
    const uint8_t *hdr = gpa_to_host(mem, gpa, 36);
    assert_non_null(hdr);
    assert_memory_equal(hdr, sig, 4);
    uint32_t len = r32(hdr + 4);
    assert_true(len >= 36);
    const uint8_t *t = gpa_to_host(mem, gpa, len);
    assert_non_null(t);
    /* Inside the ACPI window, and checksum sums to zero. */
    assert_true(gpa >= BOOT_ACPI_BASE && gpa + len <= BOOT_ACPI_BASE + BOOT_ACPI_SIZE);
    uint8_t sum = 0;
    for (uint32_t i = 0; i < len; i++)
        sum = (uint8_t)(sum + t[i]);
    if (sum != 0)
        fail_msg("%s checksum is off by %u", sig, sum);
    assert_memory_equal(t + 10, "QUOKKA", 6);
    return t;
}

static void check_gas(const uint8_t *g, uint8_t width_bits, uint64_t port)
{
    assert_int_equal(g[0], 1); /* system I/O */
    assert_int_equal(g[1], width_bits);
    assert_int_equal(r64(g + 4), port);
}

static void check_tables(struct guest_memory *mem, uint64_t rsdp_addr, unsigned nr_cpus)
{
    assert_int_equal(rsdp_addr, BOOT_ACPI_BASE);
    assert_int_equal(rsdp_addr % 16, 0);
    const uint8_t *rsdp = gpa_to_host(mem, rsdp_addr, 36);
    assert_memory_equal(rsdp, "RSD PTR ", 8);
    assert_memory_equal(rsdp + 9, "QUOKKA", 6);
    assert_int_equal(rsdp[15], 2);
    assert_int_equal(r32(rsdp + 20), 36);
    uint8_t sum = 0;
    for (int i = 0; i < 20; i++)
        sum = (uint8_t)(sum + rsdp[i]);
    assert_int_equal(sum, 0);
    sum = 0;
    for (int i = 0; i < 36; i++)
        sum = (uint8_t)(sum + rsdp[i]);
    assert_int_equal(sum, 0);

    const uint8_t *xsdt = table_at(mem, r64(rsdp + 24), "XSDT");
    assert_int_equal(r32(xsdt + 4), 36 + 2 * 8);
    const uint8_t *rsdt = table_at(mem, r32(rsdp + 16), "RSDT");
    assert_int_equal(r32(rsdt + 4), 36 + 2 * 4);
    uint64_t fadt_addr = 0, madt_addr = 0;
    for (int i = 0; i < 2; i++) {
        uint64_t a = r64(xsdt + 36 + 8 * i);
        assert_int_equal(a, r32(rsdt + 36 + 4 * i));
        const uint8_t *h = gpa_to_host(mem, a, 4);
        assert_non_null(h);
        if (memcmp(h, "FACP", 4) == 0)
            fadt_addr = a;
        else if (memcmp(h, "APIC", 4) == 0)
            madt_addr = a;
    }
    assert_true(fadt_addr && madt_addr);

    const uint8_t *fadt = table_at(mem, fadt_addr, "FACP");
    assert_int_equal(r32(fadt + 4), 276);
    assert_true(fadt[8] >= 5);
    assert_int_equal(r16(fadt + 46), IRQ_ACPI_SCI);
    assert_int_equal(r32(fadt + 48), 0);
    assert_int_equal(r32(fadt + 56), PORT_ACPI_PM1A_EVT);
    assert_int_equal(r32(fadt + 64), PORT_ACPI_PM1A_CNT);
    assert_int_equal(r32(fadt + 76), PORT_ACPI_PM_TMR);
    assert_int_equal(fadt[88], 4);
    assert_int_equal(fadt[89], 2);
    assert_int_equal(fadt[91], 4);
    assert_int_equal(r16(fadt + 109), 0x6); /* 8042, no VGA */
    uint32_t flags = r32(fadt + 112);
    assert_true(flags & (1u << 0));   /* WBINVD */
    assert_true(flags & (1u << 2));   /* PROC_C1 */
    assert_true(flags & (1u << 5));   /* SLP_BUTTON */
    assert_true(flags & (1u << 10));  /* RESET_REG_SUP */
    assert_false(flags & (1u << 8));  /* 24-bit timer */
    assert_false(flags & (1u << 20)); /* not hardware-reduced */
    check_gas(fadt + 116, 8, PORT_ACPI_RESET);
    assert_int_equal(fadt[128], 0x0e);
    check_gas(fadt + 148, 32, PORT_ACPI_PM1A_EVT);
    check_gas(fadt + 172, 16, PORT_ACPI_PM1A_CNT);
    check_gas(fadt + 208, 32, PORT_ACPI_PM_TMR);
    uint32_t facs = r32(fadt + 36);
    assert_int_equal(facs % 64, 0);
    const uint8_t *facs_p = gpa_to_host(mem, facs, 64);
    assert_memory_equal(facs_p, "FACS", 4);
    assert_int_equal(r32(facs_p + 4), 64);

    uint32_t dsdt_addr = r32(fadt + 40);
    assert_int_equal(r64(fadt + 140), dsdt_addr);
    const uint8_t *dsdt = table_at(mem, dsdt_addr, "DSDT");
    const uint8_t s5[] = {
        0x08, '_', 'S', '5', '_', 0x12, 0x08, 0x04, 0x0a, ACPI_SLP_TYP_S5, 0x0a, ACPI_SLP_TYP_S5,
        0x00, 0x00};
    assert_non_null(memmem(dsdt + 36, r32(dsdt + 4) - 36, s5, sizeof(s5)));

    const uint8_t *madt = table_at(mem, madt_addr, "APIC");
    uint32_t madt_len = r32(madt + 4);
    assert_int_equal(r32(madt + 36), PHYS_LAPIC);
    assert_int_equal(r32(madt + 40), 1);
    unsigned lapics = 0, ioapics = 0, overrides = 0;
    bool irq0 = false, irq9 = false;
    for (uint32_t off = 44; off < madt_len;) {
        const uint8_t *e = madt + off;
        assert_true(e[1] >= 2 && off + e[1] <= madt_len);
        switch (e[0]) {
        case 0:
            assert_int_equal(e[1], 8);
            assert_int_equal(e[3], lapics); /* APIC id = index */
            assert_int_equal(r32(e + 4) & 1, 1);
            lapics++;
            break;
        case 1:
            assert_int_equal(e[1], 12);
            assert_int_equal(e[2], nr_cpus);
            assert_int_equal(r32(e + 4), PHYS_IOAPIC);
            assert_int_equal(r32(e + 8), 0);
            ioapics++;
            break;
        case 2:
            assert_int_equal(e[1], 10);
            if (e[3] == 0) {
                assert_int_equal(r32(e + 4), 2);
                assert_int_equal(r16(e + 8), 0);
                irq0 = true;
            } else if (e[3] == 9) {
                assert_int_equal(r32(e + 4), 9);
                assert_int_equal(r16(e + 8), 0x000d);
                irq9 = true;
            }
            overrides++;
            break;
        default:
            break;
        }
        off += e[1];
    }
    assert_int_equal(lapics, nr_cpus);
    assert_int_equal(ioapics, 1);
    assert_int_equal(overrides, 2);
    assert_true(irq0 && irq9);
}

static void test_acpi_tables(void **state)
{
    (void)state;
    struct guest_memory mem;
    char err[256];
    assert_int_equal(guest_memory_init(&mem, 64ULL << 20, err, sizeof(err)), 0);
    const unsigned counts[] = {1, 4, 64, 254};
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
        memset(gpa_to_host(&mem, BOOT_ACPI_BASE, BOOT_ACPI_SIZE), 0xee, BOOT_ACPI_SIZE);
        uint64_t rsdp = acpi_build_tables(&mem, counts[i]);
        check_tables(&mem, rsdp, counts[i]);
    }
    /* CPU counts the MADT cannot describe with 8-bit APIC ids. */
    assert_int_equal(acpi_build_tables(&mem, 0), 0);
    assert_int_equal(acpi_build_tables(&mem, 255), 0);
    assert_int_equal(acpi_build_tables(&mem, 100000), 0);
    guest_memory_destroy(&mem);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_e820_64m),
        cmocka_unit_test(test_e820_3g),
        cmocka_unit_test(test_e820_5g),
        cmocka_unit_test(test_acpi_tables),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
