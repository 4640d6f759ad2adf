/* Unit tests for the e820 map (64M, 3G, 5G guests, the reserved ECAM window) and the ACPI
 * tables: checksums, the RSDP -> XSDT -> FADT/MADT(/MCFG) chain, FADT ports and flags, _S5 and
 * the machine's devices in the DSDT, MADT entries, MCFG, tables that do not fit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "vm/boot/aml.h"
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
    assert_int_equal(m.nr, 5);
    check_low_entries(&m);
    expect_entry(&m, 3, 0x100000, (64ULL << 20) - 0x100000, E820_RAM);
    expect_entry(&m, 4, PHYS_PCI_ECAM, PCI_ECAM_SIZE, E820_RESERVED);
}

static void test_e820_3g(void **state)
{
    (void)state;
    struct e820_map m;
    build_map(3ULL << 30, &m);
    assert_int_equal(m.nr, 5);
    check_low_entries(&m);
    expect_entry(&m, 3, 0x100000, (3ULL << 30) - 0x100000, E820_RAM);
    expect_entry(&m, 4, PHYS_PCI_ECAM, PCI_ECAM_SIZE, E820_RESERVED);
}

static void test_e820_5g(void **state)
{
    (void)state;
    struct e820_map m;
    build_map(5ULL << 30, &m);
    assert_int_equal(m.nr, 6);
    check_low_entries(&m);
    expect_entry(&m, 3, 0x100000, GUEST_LOW_RAM_END - 0x100000, E820_RAM);
    expect_entry(&m, 4, PHYS_PCI_ECAM, PCI_ECAM_SIZE, E820_RESERVED);
    expect_entry(&m, 5, 1ULL << 32, 2ULL << 30, E820_RAM);
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

/* The chain from the RSDP; returns the DSDT (and the MCFG in *mcfg_out when there is one). */
static const uint8_t *check_tables(struct guest_memory *mem, uint64_t rsdp_addr, unsigned nr_cpus,
                                   unsigned nr_entries, const uint8_t **mcfg_out)
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
    assert_int_equal(r32(xsdt + 4), 36 + nr_entries * 8);
    const uint8_t *rsdt = table_at(mem, r32(rsdp + 16), "RSDT");
    assert_int_equal(r32(rsdt + 4), 36 + nr_entries * 4);
    uint64_t fadt_addr = 0, madt_addr = 0, mcfg_addr = 0;
    for (unsigned i = 0; i < nr_entries; i++) {
        uint64_t a = r64(xsdt + 36 + 8 * i);
        assert_int_equal(a, r32(rsdt + 36 + 4 * i));
        assert_int_equal(a % 8, 0);
        const uint8_t *h = gpa_to_host(mem, a, 4);
        assert_non_null(h);
        if (memcmp(h, "FACP", 4) == 0)
            fadt_addr = a;
        else if (memcmp(h, "APIC", 4) == 0)
            madt_addr = a;
        else if (memcmp(h, "MCFG", 4) == 0)
            mcfg_addr = a;
    }
    if (mcfg_out)
        *mcfg_out = mcfg_addr ? table_at(mem, mcfg_addr, "MCFG") : NULL;
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
    return dsdt;
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
        const uint8_t *mcfg = NULL;
        check_tables(&mem, rsdp, counts[i], 2, &mcfg);
        assert_null(mcfg);
    }
    /* CPU counts the MADT cannot describe with 8-bit APIC ids. */
    assert_int_equal(acpi_build_tables(&mem, 0), 0);
    assert_int_equal(acpi_build_tables(&mem, 255), 0);
    assert_int_equal(acpi_build_tables(&mem, 100000), 0);
    guest_memory_destroy(&mem);
}

/* A device description as a device model writes it. */
static void describe_uart(void *ctx, struct aml_buf *aml)
{
    unsigned *calls = ctx;
    (*calls)++;
    aml_device(aml, "COM1");
    aml_name_eisaid(aml, "_HID", "PNP0501");
    aml_name_integer(aml, "_UID", 1);
    aml_name(aml, "_CRS");
    aml_resource_template(aml);
    aml_io(aml, PORT_COM1, PORT_COM1, 1, 8);
    aml_irq_no_flags(aml, IRQ_COM1);
    aml_end(aml);
    aml_end(aml);
}

static void test_acpi_devices_and_mcfg(void **state)
{
    (void)state;
    struct guest_memory mem;
    char err[256];
    assert_int_equal(guest_memory_init(&mem, 64ULL << 20, err, sizeof(err)), 0);
    unsigned calls = 0;
    struct acpi_config cfg = {.nr_cpus = 254,
                              .describe = describe_uart,
                              .ctx = &calls,
                              .mcfg = true,
                              .ecam_base = PHYS_PCI_ECAM,
                              .ecam_end_bus = 0};
    uint64_t rsdp = acpi_build(&mem, &cfg, err, sizeof(err));
    assert_int_equal(calls, 1);
    const uint8_t *mcfg = NULL;
    const uint8_t *dsdt = check_tables(&mem, rsdp, 254, 3, &mcfg);
    assert_non_null(mcfg);
    assert_int_equal(r32(mcfg + 4), 60);
    assert_int_equal(mcfg[8], 1);
    assert_int_equal(r64(mcfg + 44), PHYS_PCI_ECAM);
    assert_int_equal(r16(mcfg + 52), 0); /* segment */
    assert_int_equal(mcfg[54], 0);       /* buses 0-0 */
    assert_int_equal(mcfg[55], 0);
    /* Scope (\_SB) { Device (COM1) {...} } follows _S5 */
    uint32_t len = r32(dsdt + 4);
    const uint8_t scope[] = {0x10, 0x33, '\\', '_', 'S', 'B', '_',
                             0x5b, 0x82, 0x2b, 'C', 'O', 'M', '1'};
    assert_non_null(memmem(dsdt + 36, len - 36, scope, sizeof(scope)));
    const uint8_t crs_io[] = {0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01,
                              0x08, 0x22, 0x10, 0x00, 0x79, 0x00};
    assert_non_null(memmem(dsdt + 36, len - 36, crs_io, sizeof(crs_io)));
    guest_memory_destroy(&mem);
}

/* A description that cannot fit the tables' window, or is malformed: a clean error. */
static void describe_too_much(void *ctx, struct aml_buf *aml)
{
    for (unsigned i = 0; i < 70000; i++)
        aml_byte(aml, 0xa3); /* Noop */
}

static void describe_unbalanced(void *ctx, struct aml_buf *aml)
{
    aml_device(aml, "OPEN");
}

static void test_acpi_too_large(void **state)
{
    (void)state;
    struct guest_memory mem;
    char err[256] = "";
    assert_int_equal(guest_memory_init(&mem, 64ULL << 20, err, sizeof(err)), 0);
    struct acpi_config cfg = {.nr_cpus = 1, .describe = describe_too_much};
    assert_int_equal(acpi_build(&mem, &cfg, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "DSDT"));
    cfg.describe = describe_unbalanced;
    assert_int_equal(acpi_build(&mem, &cfg, err, sizeof(err)), 0);
    cfg.nr_cpus = 255;
    assert_int_equal(acpi_build(&mem, &cfg, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "CPUs"));
    guest_memory_destroy(&mem);
}

/* ---- AML builder ---- */

static void expect_aml(void (*emit)(struct aml_buf *), const uint8_t *want, size_t n)
{
    struct aml_buf a;
    aml_init(&a, 4096);
    emit(&a);
    assert_true(aml_ok(&a));
    assert_int_equal(a.len, n);
    assert_memory_equal(a.data, want, n);
    aml_free(&a);
}

static void emit_ints(struct aml_buf *a)
{
    const uint64_t v[] = {0, 1, 2, 0xff, 0x100, 0xffff, 0x10000, 0xffffffff, 1ULL << 32, ~0ULL};
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
        aml_integer(a, v[i]);
}

static void emit_names(struct aml_buf *a)
{
    aml_name_string(a, "_HID");
    aml_name_string(a, "\\_SB.PCI0");
    aml_name_string(a, "^A");
    aml_name_string(a, "A.B.C");
    aml_name_string(a, "\\");
    aml_eisaid(a, "PNP0A03");
    aml_string(a, "Hi");
}

/* PkgLength from its encoding: value and how many bytes it took. */
static size_t decode_pkglen(const uint8_t *p, size_t *nbytes)
{
    size_t follow = p[0] >> 6;
    *nbytes = follow + 1;
    if (follow == 0)
        return p[0] & 0x3f;
    size_t v = p[0] & 0x0f;
    for (size_t i = 0; i < follow; i++)
        v |= (size_t)p[1 + i] << (4 + 8 * i);
    return v;
}

static void test_aml_encodings(void **state)
{
    (void)state;
    const uint8_t ints[] = {0x00, 0x01, 0x0a, 0x02, 0x0a, 0xff, 0x0b, 0x00, 0x01, 0x0b,
                            0xff, 0xff, 0x0c, 0x00, 0x00, 0x01, 0x00, 0x0c, 0xff, 0xff,
                            0xff, 0xff, 0x0e, 0,    0,    0,    0,    1,    0,    0,
                            0,    0x0e, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    expect_aml(emit_ints, ints, sizeof(ints));
    const uint8_t names[] = {'_',  'H',  'I',  'D',  '\\', 0x2e, '_',  'S',  'B',  '_',  'P',
                             'C',  'I',  '0',  '^',  'A',  '_',  '_',  '_',  0x2f, 0x03, 'A',
                             '_',  '_',  '_',  'B',  '_',  '_',  '_',  'C',  '_',  '_',  '_',
                             '\\', 0x00, 0x0c, 0x41, 0xd0, 0x0a, 0x03, 0x0d, 'H',  'i',  0x00};
    expect_aml(emit_names, names, sizeof(names));
    /* Buffers whose PkgLength needs 1, 2, 3 and 4 bytes: the value counts itself, the size
     * term and the bytes, and the body follows intact. */
    const size_t sizes[] = {10, 59, 60, 100, 4000, 5000, 0xffff0, 0x100000};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        struct aml_buf a;
        aml_init(&a, 2u << 20);
        aml_buffer(&a);
        for (size_t j = 0; j < sizes[i]; j++)
            aml_byte(&a, (uint8_t)j);
        aml_end(&a);
        assert_true(aml_ok(&a));
        assert_int_equal(a.data[0], 0x11);
        size_t nb;
        size_t v = decode_pkglen(a.data + 1, &nb);
        assert_int_equal(v, a.len - 1);
        size_t expect_nb = v <= 0x3f ? 1 : v <= 0xfff ? 2 : v <= 0xfffff ? 3 : 4;
        assert_int_equal(nb, expect_nb);
        const uint8_t *body = a.data + a.len - sizes[i];
        for (size_t j = 0; j < sizes[i]; j++)
            assert_int_equal(body[j], (uint8_t)j);
        aml_free(&a);
    }
}

static void test_aml_errors(void **state)
{
    (void)state;
    static const char *const bad_names[] = {"",   "a", "ABCDE", "1ABC", "A..B", "A.",
                                            ".A", "^", "\\A\\", "\\\\", "A-B"};
    for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
        struct aml_buf a;
        aml_init(&a, 4096);
        aml_name_string(&a, bad_names[i]);
        if (aml_ok(&a))
            fail_msg("name '%s' accepted", bad_names[i]);
        aml_free(&a);
    }
    struct aml_buf a;
    aml_init(&a, 16); /* the cap */
    for (int i = 0; i < 17; i++)
        aml_byte(&a, 0);
    assert_false(aml_ok(&a));
    assert_true(a.len <= 16);
    aml_free(&a);
    aml_init(&a, 4096); /* unbalanced */
    aml_end(&a);
    assert_false(aml_ok(&a));
    aml_free(&a);
    aml_init(&a, 4096);
    aml_package(&a, 1);
    assert_false(aml_ok(&a)); /* still open */
    aml_integer(&a, 1);
    aml_end(&a);
    assert_true(aml_ok(&a));
    aml_free(&a);
    aml_init(&a, 4096); /* too deep */
    for (int i = 0; i <= AML_MAX_DEPTH; i++)
        aml_package(&a, 1);
    assert_false(aml_ok(&a));
    aml_free(&a);
    aml_init(&a, 4096);
    aml_package(&a, 256);
    aml_eisaid(&a, "pnp0a03");
    aml_method(&a, "M", 8, false);
    aml_irq_no_flags(&a, 16);
    assert_false(aml_ok(&a));
    aml_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_e820_64m),
        cmocka_unit_test(test_e820_3g),
        cmocka_unit_test(test_e820_5g),
        cmocka_unit_test(test_acpi_tables),
        cmocka_unit_test(test_acpi_devices_and_mcfg),
        cmocka_unit_test(test_acpi_too_large),
        cmocka_unit_test(test_aml_encodings),
        cmocka_unit_test(test_aml_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
