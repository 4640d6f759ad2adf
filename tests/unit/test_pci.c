/* Unit tests for the PCI layer: the host bridge through mechanism #1 and ECAM, absent
 * functions, BAR sizing/relocation/decoding, read-only fields, capabilities, MSI-X, INTx, a
 * hostile hammer of config space; and the ACPI description (checksums, MCFG, the DSDT checked
 * by iasl when it is installed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "pci_fakes.h"
#include "vm/boot/aml.h"
#include "vm/boot/boot.h"
#include "vm/e820.h"
#include "vm/memory.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BAR_MEM32_SIZE 0x1000
#define BAR_MEM64_SIZE 0x4000
#define BAR_IO_SIZE 0x20
#define NO_ADDRESS UINT64_MAX

struct test_dev {
    struct pci_device *pci;
    unsigned reads, writes;
    uint64_t last_offset, last_value;
    unsigned moves, move_index;
    uint64_t move_address;
    unsigned hook_writes;
};

struct fixture {
    struct pci_fake_machine *pf;
    struct pci_bus *bus;
    struct test_dev dev[3];
};

static uint64_t td_read(void *opaque, uint64_t offset, unsigned size)
{
    struct test_dev *td = opaque;
    td->reads++;
    td->last_offset = offset;
    return 0xab00 + offset;
}

static void td_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
    struct test_dev *td = opaque;
    td->writes++;
    td->last_offset = offset;
    td->last_value = value;
}

static const struct bus_device_ops td_ops = {td_read, td_write};

static void td_moved(void *opaque, unsigned index, uint64_t address)
{
    struct test_dev *td = opaque;
    td->moves++;
    td->move_index = index;
    td->move_address = address;
}

static void td_config_write(void *opaque, uint32_t offset, unsigned size, uint32_t value)
{
    struct test_dev *td = opaque;
    td->hook_writes++;
}

/* A function with BAR0 MEM32 4K, BAR2-3 MEM64 16K prefetchable, BAR4 I/O 32 bytes. */
static void add_test_device(struct fixture *f, struct test_dev *td, uint16_t device_id)
{
    char err[256] = "";
    const struct pci_device_info info = {.name = "test-dev",
                                         .vendor_id = 0x1af4,
                                         .device_id = device_id,
                                         .subsystem_vendor_id = 0x1af4,
                                         .subsystem_id = 0x0042,
                                         .revision = 1,
                                         .class_code = 0x0780a0};
    const struct pci_device_hooks hooks = {.config_write = td_config_write, .opaque = td};
    td->pci = pci_device_new(f->bus, &info, &hooks, err, sizeof(err));
    if (!td->pci)
        fail_msg("pci_device_new: %s", err);
    assert_int_equal(pci_device_add_bar(td->pci, 0, PCI_BAR_MEM32, BAR_MEM32_SIZE, false, &td_ops,
                                        td, err, sizeof(err)),
                     0);
    assert_int_equal(pci_device_add_bar(td->pci, 2, PCI_BAR_MEM64, BAR_MEM64_SIZE, true, &td_ops,
                                        td, err, sizeof(err)),
                     0);
    assert_int_equal(pci_device_add_bar(td->pci, 4, PCI_BAR_IO, BAR_IO_SIZE, false, &td_ops, td,
                                        err, sizeof(err)),
                     0);
    pci_device_on_bar_move(td->pci, td_moved, td);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->pf = pci_fake_machine_new();
    char err[256] = "";
    f->bus = pci_bus_new(&f->pf->fm.host, err, sizeof(err));
    if (!f->bus)
        fail_msg("pci_bus_new: %s", err);
    f->pf->fm.host.pci = f->bus;
    add_test_device(f, &f->dev[0], 0x1100); /* slot 1 */
    add_test_device(f, &f->dev[1], 0x1101); /* slot 2 */
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    for (unsigned i = 0; i < 3; i++)
        pci_device_free(f->dev[i].pci);
    pci_bus_free(f->bus);
    /* Everything the bus registered is gone again. */
    assert_int_equal(f->pf->fm.pio.nr, 0);
    assert_int_equal(f->pf->fm.mmio.nr, 0);
    pci_fake_machine_free(f->pf);
    free(f);
    return 0;
}

/* ---- the host bridge, mechanism #1 and ECAM ---- */

static void test_host_bridge(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(pci_cf8_read(f->pf, 0, PCI_VENDOR_ID, 4), pci_ecam_read(f->pf, 0, 0, 4));
    uint32_t class_rev = pci_ecam_read(f->pf, 0, PCI_CLASS_REVISION, 4);
    assert_int_equal(class_rev >> 8, 0x060000);
    assert_int_equal(pci_ecam_read(f->pf, 0, PCI_HEADER_TYPE, 1), 0);
    assert_int_equal(pci_ecam_read(f->pf, 0, PCI_INTERRUPT_PIN, 1), 0);
}

static void test_cf8_and_ecam_agree(void **state)
{
    struct fixture *f = *state;
    static const unsigned sizes[] = {1, 2, 4};
    for (unsigned slot = 0; slot < 4; slot++)
        for (unsigned reg = 0; reg < 0x100; reg++)
            for (unsigned s = 0; s < 3; s++) {
                if ((reg & 3) + sizes[s] > 4)
                    continue;
                uint32_t a = pci_cf8_read(f->pf, slot, reg, sizes[s]);
                uint32_t b = pci_ecam_read(f->pf, slot, reg, sizes[s]);
                if (a != b)
                    fail_msg("slot %u reg 0x%x size %u: cf8 0x%x ecam 0x%x", slot, reg, sizes[s], a,
                             b);
            }
    /* The device as created: IDs, class, pin A on the swizzled line, BAR flags. */
    assert_int_equal(pci_cf8_read(f->pf, 1, PCI_VENDOR_ID, 2), 0x1af4);
    assert_int_equal(pci_cf8_read(f->pf, 1, PCI_DEVICE_ID, 2), 0x1100);
    assert_int_equal(pci_cf8_read(f->pf, 2, PCI_DEVICE_ID, 2), 0x1101);
    assert_int_equal(pci_ecam_read(f->pf, 1, PCI_CLASS_REVISION, 4), 0x0780a001);
    assert_int_equal(pci_ecam_read(f->pf, 1, PCI_SUBSYSTEM_ID, 2), 0x0042);
    assert_int_equal(pci_ecam_read(f->pf, 1, PCI_INTERRUPT_PIN, 1), 1);
    assert_int_equal(pci_ecam_read(f->pf, 1, PCI_INTERRUPT_LINE, 1), GSI_PCI_FIRST + 1);
    uint16_t cmd = (uint16_t)pci_ecam_read(f->pf, 1, PCI_COMMAND, 2);
    assert_true(cmd & PCI_COMMAND_MEMORY);
    assert_true(cmd & PCI_COMMAND_IO);
    /* A write through one mechanism is read back through the other. */
    pci_cf8_write(f->pf, 1, PCI_INTERRUPT_LINE, 1, 0x5a);
    assert_int_equal(pci_ecam_read(f->pf, 1, PCI_INTERRUPT_LINE, 1), 0x5a);
    pci_ecam_write(f->pf, 2, 0x0c, 2, 0x4010); /* cache line size, latency timer */
    assert_int_equal(pci_cf8_read(f->pf, 2, 0x0c, 2), 0x4010);
    assert_int_equal(pci_cf8_read(f->pf, 2, 0x0d, 1), 0x40);
    /* An aligned 8-byte ECAM read is two dwords. */
    uint64_t both = pci_mmio_read(f->pf, pci_ecam_addr(1, 0, 0), 8);
    assert_int_equal(both,
                     (uint64_t)pci_ecam_read(f->pf, 1, 4, 4) << 32 | pci_ecam_read(f->pf, 1, 0, 4));
}

static void test_absent_functions(void **state)
{
    struct fixture *f = *state;
    struct bus *pio = &f->pf->fm.pio;
    assert_int_equal(pci_cf8_read(f->pf, 7, 0, 4), 0xffffffff);
    assert_int_equal(pci_ecam_read(f->pf, 31, 0, 2), 0xffff);
    assert_int_equal(pci_ecam_read(f->pf, 31, 0x3c, 1), 0xff);
    /* Function 1 of a present device, and bus 1 through mechanism #1. */
    uint64_t v = 0;
    bus_read(&f->pf->fm.mmio, pci_ecam_addr(1, 1, 0), 4, &v);
    assert_int_equal(v, 0xffffffff);
    bus_write(pio, PORT_PCI_CONFIG_ADDRESS, 4, pci_cf8_address(1, 1, 0, 0));
    bus_read(pio, PORT_PCI_CONFIG_DATA, 4, &v);
    assert_int_equal(v, 0xffffffff);
    /* Enable bit clear: nothing is selected. */
    bus_write(pio, PORT_PCI_CONFIG_ADDRESS, 4, 1u << 11);
    bus_read(pio, PORT_PCI_CONFIG_DATA, 4, &v);
    assert_int_equal(v, 0xffffffff);
    /* Writes to nothing are ignored (and do not reach slot 1's function 0). */
    bus_write(&f->pf->fm.mmio, pci_ecam_addr(1, 1, PCI_INTERRUPT_LINE), 1, 0x77);
    assert_int_equal(pci_ecam_read(f->pf, 1, PCI_INTERRUPT_LINE, 1), GSI_PCI_FIRST + 1);
    /* The address register: reserved and low bits read as zero; byte accesses miss it. */
    bus_write(pio, PORT_PCI_CONFIG_ADDRESS, 4, 0xffffffff);
    bus_read(pio, PORT_PCI_CONFIG_ADDRESS, 4, &v);
    assert_int_equal(v, 0x80fffffc);
    bus_write(pio, PORT_PCI_CONFIG_ADDRESS + 3, 1, 0);
    bus_read(pio, PORT_PCI_CONFIG_ADDRESS, 4, &v);
    assert_int_equal(v, 0x80fffffc);
    bus_read(pio, PORT_PCI_CONFIG_ADDRESS, 1, &v);
    assert_int_equal(v, 0xff);
    /* Config accesses that cross a dword are refused. */
    assert_int_equal(pci_ecam_read(f->pf, 1, 3, 2), 0xffff);
    assert_int_equal(pci_ecam_read(f->pf, 1, 2, 4), 0xffffffff);
}

/* ---- BARs ---- */

static uint32_t size_bar(struct fixture *f, unsigned slot, unsigned reg)
{
    uint32_t old = pci_ecam_read(f->pf, slot, reg, 4);
    pci_ecam_write(f->pf, slot, reg, 4, 0xffffffff);
    uint32_t sized = pci_ecam_read(f->pf, slot, reg, 4);
    pci_ecam_write(f->pf, slot, reg, 4, old);
    assert_int_equal(pci_ecam_read(f->pf, slot, reg, 4), old);
    return sized;
}

static void test_bar_sizing(void **state)
{
    struct fixture *f = *state;
    /* Decoding off while sizing, as an OS does. */
    pci_ecam_write(f->pf, 1, PCI_COMMAND, 2, 0);
    assert_int_equal(size_bar(f, 1, PCI_BAR0), ~(BAR_MEM32_SIZE - 1u));
    assert_int_equal(size_bar(f, 1, PCI_BAR0 + 8), ~(BAR_MEM64_SIZE - 1u) | 0xc);
    assert_int_equal(size_bar(f, 1, PCI_BAR0 + 12), 0xffffffff); /* upper half of a <4G BAR */
    assert_int_equal(size_bar(f, 1, PCI_BAR0 + 16), ~(BAR_IO_SIZE - 1u) | 1);
    /* Unused BARs and the expansion ROM are hardwired to zero. */
    assert_int_equal(size_bar(f, 1, PCI_BAR0 + 4), 0);
    assert_int_equal(size_bar(f, 1, PCI_BAR0 + 20), 0);
    assert_int_equal(size_bar(f, 1, 0x30), 0);
    /* Addresses: aligned to their size, in the board's windows. */
    uint64_t mem = pci_device_bar_address(f->dev[0].pci, 0);
    uint64_t mem64 = pci_device_bar_address(f->dev[0].pci, 2);
    uint64_t io = pci_device_bar_address(f->dev[0].pci, 4);
    assert_true(mem >= PHYS_PCI_MMIO32 && mem < PHYS_PCI_MMIO32 + PCI_MMIO32_SIZE);
    assert_true(mem64 >= PHYS_PCI_MMIO32 && mem64 < PHYS_PCI_MMIO32 + PCI_MMIO32_SIZE);
    assert_true(io >= PORT_PCI_IO_BASE && io < PORT_PCI_IO_BASE + PCI_IO_SIZE);
    assert_int_equal(mem % BAR_MEM32_SIZE, 0);
    assert_int_equal(mem64 % BAR_MEM64_SIZE, 0);
    assert_int_equal(io % BAR_IO_SIZE, 0);
    assert_int_equal(pci_device_bar_address(f->dev[0].pci, 1), NO_ADDRESS);
    assert_int_equal(pci_device_bar_address(f->dev[0].pci, 3), NO_ADDRESS);
    assert_int_equal(pci_device_bar_address(f->dev[0].pci, 6), NO_ADDRESS);
    assert_int_equal(pci_device_bar_address(f->dev[0].pci, 1000), NO_ADDRESS);
}

static void test_bar_add_errors(void **state)
{
    struct fixture *f = *state;
    char err[256];
    struct pci_device *d = f->dev[1].pci;
    void *o = &f->dev[1];
    assert_int_equal(
        pci_device_add_bar(d, 0, PCI_BAR_MEM32, 0x1000, false, &td_ops, o, err, sizeof(err)),
        -1); /* in use */
    assert_int_equal(
        pci_device_add_bar(d, 5, PCI_BAR_MEM64, 0x1000, false, &td_ops, o, err, sizeof(err)),
        -1); /* no BAR 6 */
    assert_int_equal(
        pci_device_add_bar(d, 1, PCI_BAR_MEM64, 0x1000, false, &td_ops, o, err, sizeof(err)),
        -1); /* BAR 2 taken */
    assert_int_equal(
        pci_device_add_bar(d, 1, PCI_BAR_MEM32, 0x1800, false, &td_ops, o, err, sizeof(err)),
        -1); /* not a power of two */
    assert_int_equal(
        pci_device_add_bar(d, 1, PCI_BAR_MEM32, 8, false, &td_ops, o, err, sizeof(err)), -1);
    assert_int_equal(
        pci_device_add_bar(d, 1, PCI_BAR_IO, 0x10000, false, &td_ops, o, err, sizeof(err)), -1);
    assert_int_equal(
        pci_device_add_bar(d, 7, PCI_BAR_MEM32, 0x1000, false, &td_ops, o, err, sizeof(err)), -1);
    assert_int_equal(
        pci_device_add_bar(d, 1, (enum pci_bar_kind)9, 0x1000, false, &td_ops, o, err, sizeof(err)),
        -1);
    /* Larger than the 32-bit window: a 32-bit BAR has no room, a 64-bit one goes above 4G. */
    assert_int_equal(
        pci_device_add_bar(d, 1, PCI_BAR_MEM32, 1ULL << 30, false, &td_ops, o, err, sizeof(err)),
        -1);
    assert_non_null(strstr(err, "no room"));
    f->dev[2].pci =
        pci_device_new(f->bus, &(struct pci_device_info){.name = "big"}, NULL, err, sizeof(err));
    assert_non_null(f->dev[2].pci);
    assert_int_equal(pci_device_add_bar(f->dev[2].pci, 0, PCI_BAR_MEM64, 1ULL << 30, true, &td_ops,
                                        &f->dev[2], err, sizeof(err)),
                     0);
    uint64_t a = pci_device_bar_address(f->dev[2].pci, 0);
    assert_true(a >= PCI_FAKE_MMIO64_BASE);
    assert_int_equal(a % (1ULL << 30), 0);
    assert_int_equal(pci_ecam_read(f->pf, 3, PCI_BAR0 + 4, 4), a >> 32);
    assert_true(pci_mmio_read(f->pf, a + 8, 4) == 0xab08);
}

static void test_bar_relocation(void **state)
{
    struct fixture *f = *state;
    struct test_dev *td = &f->dev[0];
    uint64_t old = pci_device_bar_address(td->pci, 0);
    uint64_t v;
    assert_true(bus_read(&f->pf->fm.mmio, old + 4, 4, &v));
    assert_int_equal(v, 0xab04);
    uint64_t to = PHYS_PCI_MMIO32 + 0x100000;
    pci_ecam_write(f->pf, 1, PCI_BAR0, 4, (uint32_t)to);
    assert_int_equal(pci_device_bar_address(td->pci, 0), to);
    assert_int_equal(td->moves, 1);
    assert_int_equal(td->move_index, 0);
    assert_int_equal(td->move_address, to);
    assert_false(bus_read(&f->pf->fm.mmio, old + 4, 4, &v));
    assert_true(bus_read(&f->pf->fm.mmio, to + 8, 4, &v));
    assert_int_equal(v, 0xab08);
    assert_true(td->hook_writes > 0);
    /* A 64-bit BAR moves with both halves: above 4G, then back. */
    uint64_t high = 0x123400000ULL;
    pci_ecam_write(f->pf, 1, PCI_BAR0 + 8, 4, (uint32_t)high);
    pci_ecam_write(f->pf, 1, PCI_BAR0 + 12, 4, (uint32_t)(high >> 32));
    assert_int_equal(td->move_index, 2);
    assert_int_equal(td->move_address, high);
    assert_true(bus_read(&f->pf->fm.mmio, high, 4, &v));
    pci_ecam_write(f->pf, 1, PCI_BAR0 + 12, 4, 0);
    assert_int_equal(td->move_address, (uint32_t)high);
    assert_false(bus_read(&f->pf->fm.mmio, high, 4, &v));
    /* An I/O BAR moves on the port bus; it cannot leave the 64K port space. */
    pci_ecam_write(f->pf, 1, PCI_BAR0 + 16, 4, 0xd000);
    assert_int_equal(td->move_address, 0xd000);
    assert_true(bus_read(&f->pf->fm.pio, 0xd004, 2, &v));
    pci_ecam_write(f->pf, 1, PCI_BAR0 + 16, 4, 0x10000);
    assert_int_equal(td->move_address, NO_ADDRESS);
    assert_false(bus_read(&f->pf->fm.pio, 0xd004, 2, &v));
    pci_ecam_write(f->pf, 1, PCI_BAR0 + 16, 4, 0xffe0);
    assert_int_equal(td->move_address, 0xffe0);
}

static void test_decode_disable(void **state)
{
    struct fixture *f = *state;
    struct test_dev *td = &f->dev[0];
    uint64_t mem = pci_device_bar_address(td->pci, 0);
    uint64_t io = pci_device_bar_address(td->pci, 4);
    uint64_t v;
    uint16_t cmd = (uint16_t)pci_ecam_read(f->pf, 1, PCI_COMMAND, 2);
    pci_ecam_write(f->pf, 1, PCI_COMMAND, 2, cmd & ~PCI_COMMAND_MEMORY);
    assert_false(bus_read(&f->pf->fm.mmio, mem, 4, &v));
    assert_true(bus_read(&f->pf->fm.pio, io, 4, &v));
    assert_int_equal(td->moves, 2); /* both memory BARs */
    assert_int_equal(td->move_address, NO_ADDRESS);
    /* The guest-visible address stays; decoding comes back with the bit. */
    assert_int_equal(pci_device_bar_address(td->pci, 0), mem);
    pci_ecam_write(f->pf, 1, PCI_COMMAND, 2, cmd);
    assert_true(bus_read(&f->pf->fm.mmio, mem, 4, &v));
    assert_int_equal(td->moves, 4);
    pci_ecam_write(f->pf, 1, PCI_COMMAND, 2, cmd & ~PCI_COMMAND_IO);
    assert_false(bus_read(&f->pf->fm.pio, io, 4, &v));
    assert_int_equal(td->move_index, 4);
    /* Address zero never decodes. */
    pci_ecam_write(f->pf, 1, PCI_BAR0, 4, 0);
    assert_false(bus_read(&f->pf->fm.mmio, 0, 4, &v));
}

static void test_bar_overlap(void **state)
{
    struct fixture *f = *state;
    struct test_dev *a = &f->dev[0], *b = &f->dev[1];
    uint64_t b_addr = pci_device_bar_address(b->pci, 0);
    pci_ecam_write(f->pf, 1, PCI_BAR0, 4, (uint32_t)b_addr);
    assert_int_equal(a->move_address, NO_ADDRESS);
    unsigned a_reads = a->reads, b_reads = b->reads;
    assert_int_equal(pci_mmio_read(f->pf, b_addr, 4), 0xab00);
    assert_int_equal(b->reads, b_reads + 1);
    assert_int_equal(a->reads, a_reads);
    /* Over the ECAM window: not decoded either, and ECAM still works. */
    pci_ecam_write(f->pf, 1, PCI_BAR0, 4, (uint32_t)PHYS_PCI_ECAM);
    assert_int_equal(a->move_address, NO_ADDRESS);
    assert_int_equal(pci_ecam_read(f->pf, 1, PCI_VENDOR_ID, 2), 0x1af4);
    /* Moved somewhere free, it decodes again. */
    uint64_t to = PHYS_PCI_MMIO32 + 0x200000;
    pci_ecam_write(f->pf, 1, PCI_BAR0, 4, (uint32_t)to);
    assert_int_equal(a->move_address, to);
    assert_int_equal(pci_mmio_read(f->pf, to + 0x10, 4), 0xab10);
    assert_int_equal(a->reads, a_reads + 1);
}

/* The BAR that lost an overlap decodes again once the winner leaves, without being
 * reprogrammed: whether the winner moves, stops decoding (command register) or is a BAR of
 * the same function. */
static void test_bar_overlap_loser_returns(void **state)
{
    struct fixture *f = *state;
    struct test_dev *a = &f->dev[0], *b = &f->dev[1];
    uint64_t b_addr = pci_device_bar_address(b->pci, 0);
    pci_ecam_write(f->pf, 1, PCI_BAR0, 4, (uint32_t)b_addr);
    assert_int_equal(a->move_address, NO_ADDRESS);
    uint64_t away = PHYS_PCI_MMIO32 + 0x300000;
    pci_ecam_write(f->pf, 2, PCI_BAR0, 4, (uint32_t)away);
    assert_int_equal(b->move_address, away);
    assert_int_equal(a->move_address, b_addr);
    unsigned a_reads = a->reads;
    assert_int_equal(pci_mmio_read(f->pf, b_addr + 0x20, 4), 0xab20);
    assert_int_equal(a->reads, a_reads + 1);
    /* B back over A: A keeps the range. B's memory decoding off: B's range is free (A
     * already has it); on again, B stays dark until A moves. */
    pci_ecam_write(f->pf, 2, PCI_BAR0, 4, (uint32_t)b_addr);
    assert_int_equal(b->move_address, NO_ADDRESS);
    uint16_t cmd = (uint16_t)pci_ecam_read(f->pf, 1, PCI_COMMAND, 2);
    pci_ecam_write(f->pf, 1, PCI_COMMAND, 2, cmd & ~PCI_COMMAND_MEMORY);
    assert_int_equal(b->move_address, b_addr);
    unsigned b_reads = b->reads;
    assert_int_equal(pci_mmio_read(f->pf, b_addr + 0x30, 4), 0xab30);
    assert_int_equal(b->reads, b_reads + 1);
    /* A's memory decoding on again: BAR0 loses to B, its 64-bit BAR decodes. */
    pci_ecam_write(f->pf, 1, PCI_COMMAND, 2, cmd);
    assert_int_equal(a->move_index, 2);
    /* Within one function: BAR0 onto the 64-bit BAR, then the 64-bit BAR away. */
    uint64_t a64 = pci_device_bar_address(a->pci, 2);
    unsigned a_moves = a->moves;
    pci_ecam_write(f->pf, 1, PCI_BAR0, 4, (uint32_t)a64);
    assert_int_equal(a->moves, a_moves); /* dark before, dark after */
    uint64_t away64 = PHYS_PCI_MMIO32 + 0x400000;
    pci_ecam_write(f->pf, 1, PCI_BAR0 + 8, 4, (uint32_t)away64);
    assert_int_equal(a->moves, a_moves + 2);
    uint64_t v;
    assert_true(bus_read(&f->pf->fm.mmio, a64 + 4, 4, &v));
    assert_false(bus_read(&f->pf->fm.mmio, a64 + BAR_MEM32_SIZE, 4, &v)); /* BAR0 is there */
    assert_true(bus_read(&f->pf->fm.mmio, away64 + BAR_MEM32_SIZE, 4, &v));
    assert_int_equal(pci_device_bar_address(a->pci, 0), a64);
    /* A device going away frees its ranges for the BARs that wanted them. */
    pci_ecam_write(f->pf, 2, PCI_BAR0, 4, (uint32_t)a64);
    assert_int_equal(b->move_address, NO_ADDRESS);
    pci_device_free(a->pci);
    a->pci = NULL;
    assert_int_equal(b->move_address, a64);
    b_reads = b->reads;
    assert_int_equal(pci_mmio_read(f->pf, a64 + 8, 4), 0xab08);
    assert_int_equal(b->reads, b_reads + 1);
}

/* ---- read-only fields, capabilities ---- */

static void test_read_only(void **state)
{
    struct fixture *f = *state;
    uint32_t before[16];
    for (unsigned i = 0; i < 16; i++)
        before[i] = pci_ecam_read(f->pf, 1, 4 * i, 4);
    pci_ecam_write(f->pf, 1, PCI_VENDOR_ID, 4, 0x12345678);
    pci_ecam_write(f->pf, 1, PCI_CLASS_REVISION, 4, 0xffffffff);
    pci_ecam_write(f->pf, 1, PCI_HEADER_TYPE, 1, 0x80);
    pci_ecam_write(f->pf, 1, PCI_SUBSYSTEM_VENDOR_ID, 4, 0);
    pci_ecam_write(f->pf, 1, PCI_INTERRUPT_PIN, 1, 3);
    pci_ecam_write(f->pf, 1, PCI_CAPABILITY_LIST, 1, 0x80);
    pci_cf8_write(f->pf, 1, PCI_STATUS, 2, 0xffff);
    for (unsigned i = 0; i < 16; i++)
        if (i != 1 && i != 3) /* command/status, cache line/latency */
            assert_int_equal(pci_ecam_read(f->pf, 1, 4 * i, 4), before[i]);
    /* BAR type bits stay whatever the guest writes. */
    pci_ecam_write(f->pf, 1, PCI_BAR0 + 8, 4, 0xc0000000);
    assert_int_equal(pci_ecam_read(f->pf, 1, PCI_BAR0 + 8, 4) & 0xf, 0xc);
    pci_ecam_write(f->pf, 1, PCI_BAR0 + 16, 4, 0xc000);
    assert_int_equal(pci_ecam_read(f->pf, 1, PCI_BAR0 + 16, 4) & 0x3, 1);
    /* Status: error bits are write-1-to-clear, the rest read-only. */
    uint8_t *cfg = pci_device_config(f->dev[0].pci);
    cfg[PCI_STATUS + 1] |= 0x20; /* received master abort */
    pci_ecam_write(f->pf, 1, PCI_STATUS, 2, 0);
    assert_int_equal(pci_ecam_read(f->pf, 1, PCI_STATUS, 2) & 0x2000, 0x2000);
    pci_ecam_write(f->pf, 1, PCI_STATUS, 2, 0x2000);
    assert_int_equal(pci_ecam_read(f->pf, 1, PCI_STATUS, 2) & 0x2000, 0);
    /* Command: only the defined bits stick. */
    pci_ecam_write(f->pf, 1, PCI_COMMAND, 2, 0xffff);
    assert_int_equal(pci_ecam_read(f->pf, 1, PCI_COMMAND, 2), 0x0547);
    /* Extended config space exists and reads zero. */
    assert_int_equal(pci_ecam_read(f->pf, 1, 0x100, 4), 0);
    pci_ecam_write(f->pf, 1, 0xffc, 4, 0xffffffff);
    assert_int_equal(pci_ecam_read(f->pf, 1, 0xffc, 4), 0);
}

static void test_capabilities(void **state)
{
    struct fixture *f = *state;
    struct pci_device *d = f->dev[1].pci;
    assert_int_equal(pci_ecam_read(f->pf, 2, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST, 0);
    const uint8_t vendor[] = {8, 0xaa, 0xbb, 0xcc, 0xdd, 0xee}; /* length, body */
    uint8_t c1 = pci_device_add_capability(d, PCI_CAP_ID_VNDR, vendor, sizeof(vendor));
    char err[256];
    assert_int_equal(pci_device_init_msix(d, 3, 1, err, sizeof(err)), 0);
    uint8_t c3 = pci_device_add_capability(d, PCI_CAP_ID_VNDR, vendor, 1);
    assert_int_equal(c1, 0x40);
    assert_int_equal(c3 % 4, 0);
    assert_true(pci_ecam_read(f->pf, 2, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
    /* Walk the list as a driver does. */
    uint8_t ids[8];
    unsigned n = 0;
    for (uint8_t p = (uint8_t)pci_cf8_read(f->pf, 2, PCI_CAPABILITY_LIST, 1); p && n < 8;
         p = (uint8_t)pci_cf8_read(f->pf, 2, p + 1, 1)) {
        assert_true(p >= 0x40 && p % 4 == 0);
        ids[n++] = (uint8_t)pci_cf8_read(f->pf, 2, p, 1);
    }
    assert_int_equal(n, 3);
    assert_int_equal(ids[0], PCI_CAP_ID_VNDR);
    assert_int_equal(ids[1], PCI_CAP_ID_MSIX);
    assert_int_equal(ids[2], PCI_CAP_ID_VNDR);
    assert_int_equal(pci_ecam_read(f->pf, 2, c1, 4), 0xaa080000u | 0x48u << 8 | PCI_CAP_ID_VNDR);
    assert_int_equal(pci_ecam_read(f->pf, 2, c1 + 4, 4), 0xeeddccbb);
    /* Capability bodies are read-only unless the device says otherwise. */
    pci_ecam_write(f->pf, 2, c1 + 4, 1, 0x11);
    assert_int_equal(pci_ecam_read(f->pf, 2, c1 + 4, 1), 0xbb);
    pci_device_config_wmask(d)[c1 + 4] = 0xff;
    pci_ecam_write(f->pf, 2, c1 + 4, 1, 0x11);
    assert_int_equal(pci_ecam_read(f->pf, 2, c1 + 4, 1), 0x11);
    /* Fill the 256-byte space: eventually 0, never past 0xff. */
    uint8_t last = c3;
    for (int i = 0; i < 100; i++) {
        uint8_t c = pci_device_add_capability(d, PCI_CAP_ID_VNDR, vendor, sizeof(vendor));
        if (!c)
            break;
        assert_true(c > last && c + 2 + sizeof(vendor) <= 0x100);
        last = c;
    }
    assert_int_equal(pci_device_add_capability(d, PCI_CAP_ID_VNDR, NULL, 0x100), 0);
}

/* ---- MSI-X ---- */

#define MSIX_VECTORS 4

struct msix_view {
    struct pci_fake_machine *pf;
    uint64_t bar;
    uint8_t cap;
    unsigned slot;
};

static uint8_t find_cap(struct pci_fake_machine *pf, unsigned slot, uint8_t id)
{
    for (uint8_t p = (uint8_t)pci_ecam_read(pf, slot, PCI_CAPABILITY_LIST, 1); p;
         p = (uint8_t)pci_ecam_read(pf, slot, p + 1, 1))
        if (pci_ecam_read(pf, slot, p, 1) == id)
            return p;
    return 0;
}

static struct msix_view msix_setup(struct fixture *f)
{
    char err[256];
    assert_int_equal(pci_device_init_msix(f->dev[0].pci, MSIX_VECTORS, 1, err, sizeof(err)), 0);
    struct msix_view m = {f->pf, pci_device_bar_address(f->dev[0].pci, 1), 0, 1};
    m.cap = find_cap(f->pf, 1, PCI_CAP_ID_MSIX);
    assert_true(m.cap != 0);
    return m;
}

static void msix_control(struct msix_view *m, uint16_t v)
{
    pci_ecam_write(m->pf, m->slot, m->cap + 2, 2, v);
}

static void msix_entry(struct msix_view *m, unsigned v, uint64_t addr, uint32_t data, bool mask)
{
    uint64_t e = m->bar + 16 * v;
    pci_mmio_write(m->pf, e, 4, (uint32_t)addr);
    pci_mmio_write(m->pf, e + 4, 4, addr >> 32);
    pci_mmio_write(m->pf, e + 8, 4, data);
    pci_mmio_write(m->pf, e + 12, 4, mask);
}

static uint64_t msix_pba(struct msix_view *m)
{
    return pci_mmio_read(m->pf, m->bar + 16 * MSIX_VECTORS, 8);
}

static void test_msix_layout(void **state)
{
    struct fixture *f = *state;
    struct msix_view m = msix_setup(f);
    assert_int_equal(pci_ecam_read(f->pf, 1, m.cap + 2, 2), MSIX_VECTORS - 1);
    assert_int_equal(pci_ecam_read(f->pf, 1, m.cap + 4, 4), 1); /* table: BAR 1 offset 0 */
    assert_int_equal(pci_ecam_read(f->pf, 1, m.cap + 8, 4), 16 * MSIX_VECTORS | 1);
    assert_int_equal(size_bar(f, 1, PCI_BAR0 + 4), 0xfffff000); /* 4 KiB */
    /* Table size is read-only; every vector starts masked, nothing pending. */
    msix_control(&m, 0x07ff);
    assert_int_equal(pci_ecam_read(f->pf, 1, m.cap + 2, 2), MSIX_VECTORS - 1);
    for (unsigned v = 0; v < MSIX_VECTORS; v++)
        assert_int_equal(pci_mmio_read(f->pf, m.bar + 16 * v + 12, 4), 1);
    assert_int_equal(msix_pba(&m), 0);
    assert_false(pci_msix_enabled(f->dev[0].pci));
    /* Set up twice, or without MSIs: refused. */
    char err[256];
    assert_int_equal(pci_device_init_msix(f->dev[0].pci, 2, 5, err, sizeof(err)), -1);
    assert_int_equal(pci_device_init_msix(f->dev[1].pci, 0, 1, err, sizeof(err)), -1);
    assert_int_equal(pci_device_init_msix(f->dev[1].pci, 2049, 1, err, sizeof(err)), -1);
}

static void test_msix_delivery(void **state)
{
    struct fixture *f = *state;
    struct msix_view m = msix_setup(f);
    struct pci_device *d = f->dev[0].pci;
    struct pci_fake_machine *pf = f->pf;
    /* Disabled: the notification is only pending. */
    pci_msix_notify(d, 0);
    assert_int_equal(pf->total_fires, 0);
    assert_int_equal(msix_pba(&m), 1);
    /* Unmasking the vector programs its route, but MSI-X is still off. */
    msix_entry(&m, 0, 0xfee00000, 0x4041, false);
    assert_true(pf->routes[0].set);
    assert_int_equal(pf->routes[0].address, 0xfee00000);
    assert_int_equal(pf->routes[0].data, 0x4041);
    assert_int_equal(pf->total_fires, 0);
    /* Enabling delivers the pending vector. */
    msix_control(&m, 0x8000);
    assert_true(pci_msix_enabled(d));
    assert_int_equal(pci_fake_fires(pf, 0), 1);
    assert_int_equal(msix_pba(&m), 0);
    pci_msix_notify(d, 0);
    assert_int_equal(pci_fake_fires(pf, 0), 2);
    /* Function mask: pending, then delivered on unmask. */
    msix_control(&m, 0xc000);
    pci_msix_notify(d, 0);
    assert_int_equal(pci_fake_fires(pf, 0), 2);
    assert_int_equal(msix_pba(&m), 1);
    msix_control(&m, 0x8000);
    assert_int_equal(pci_fake_fires(pf, 0), 3);
    assert_int_equal(msix_pba(&m), 0);
    /* Vector mask: the same. */
    pci_mmio_write(pf, m.bar + 12, 4, 1);
    pci_msix_notify(d, 0);
    pci_msix_notify(d, 0);
    assert_int_equal(pci_fake_fires(pf, 0), 3);
    assert_int_equal(msix_pba(&m), 1);
    pci_mmio_write(pf, m.bar + 12, 4, 0);
    assert_int_equal(pci_fake_fires(pf, 0), 4);
    assert_int_equal(msix_pba(&m), 0);
    /* A masked vector never fired stays masked: no route programming for vector 1 yet. */
    pci_msix_notify(d, 1);
    assert_false(pf->routes[1].set);
    assert_int_equal(msix_pba(&m), 2);
    /* 8-byte writes program address and data+control at once; unmask delivers. */
    pci_mmio_write(pf, m.bar + 16, 8, 0x00000000fee01000ULL);
    pci_mmio_write(pf, m.bar + 24, 8, 0x0000000000004052ULL);
    assert_true(pf->routes[1].set);
    assert_int_equal(pf->routes[1].address, 0xfee01000);
    assert_int_equal(pf->routes[1].data, 0x4052);
    assert_int_equal(pci_fake_fires(pf, 1), 1);
    assert_int_equal(pci_mmio_read(pf, m.bar + 16, 8), 0xfee01000);
    /* Changing an unmasked vector reprograms its route; an identical write does not. */
    unsigned sets = pf->routes[1].sets;
    pci_mmio_write(pf, m.bar + 24, 4, 0x4053);
    assert_int_equal(pf->routes[1].data, 0x4053);
    assert_int_equal(pf->routes[1].sets, sets + 1);
    pci_mmio_write(pf, m.bar + 24, 4, 0x4053);
    assert_int_equal(pf->routes[1].sets, sets + 1);
    /* Vectors out of range (and NO_VECTOR) do nothing. */
    unsigned total = pf->total_fires;
    pci_msix_notify(d, MSIX_VECTORS);
    pci_msix_notify(d, 0xffff);
    pci_msix_notify(d, UINT32_MAX);
    pci_msix_notify(f->dev[1].pci, 0); /* no MSI-X at all */
    assert_int_equal(pf->total_fires, total);
    /* Disabling MSI-X: notifications pend again. */
    msix_control(&m, 0);
    pci_msix_notify(d, 0);
    assert_int_equal(pf->total_fires, total);
}

static void test_msix_odd_accesses(void **state)
{
    struct fixture *f = *state;
    struct msix_view m = msix_setup(f);
    struct pci_fake_machine *pf = f->pf;
    msix_entry(&m, 2, 0xfee00000, 0x1234, true);
    uint64_t e = m.bar + 32;
    /* 1- and 2-byte, and misaligned accesses: ignored, read zero. */
    pci_mmio_write(pf, e, 1, 0xff);
    pci_mmio_write(pf, e, 2, 0xffff);
    pci_mmio_write(pf, e + 2, 4, 0xffffffff);
    pci_mmio_write(pf, e + 4, 8, ~0ULL);
    assert_int_equal(pci_mmio_read(pf, e, 4), 0xfee00000);
    assert_int_equal(pci_mmio_read(pf, e, 1), 0);
    assert_int_equal(pci_mmio_read(pf, e + 2, 4), 0);
    assert_int_equal(pci_mmio_read(pf, e + 4, 8), 0);
    /* Reserved vector-control bits read zero. */
    pci_mmio_write(pf, e + 12, 4, 0xfffffffe);
    assert_int_equal(pci_mmio_read(pf, e + 12, 4), 0);
    /* The PBA is read-only; past it the BAR reads zero and ignores writes. */
    pci_mmio_write(pf, m.bar + 64, 8, ~0ULL);
    assert_int_equal(msix_pba(&m), 0);
    pci_mmio_write(pf, m.bar + 0x800, 4, 0x1234);
    assert_int_equal(pci_mmio_read(pf, m.bar + 0x800, 4), 0);
    assert_int_equal(pci_mmio_read(pf, m.bar + 0xff8, 8), 0);
}

static void test_msix_route_exhaustion(void **state)
{
    struct fixture *f = *state;
    char err[256] = "";
    f->pf->route_limit = 2;
    assert_int_equal(pci_device_init_msix(f->dev[1].pci, 4, 1, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "MSI"));
    assert_int_equal(pci_device_bar_address(f->dev[1].pci, 1), NO_ADDRESS);
    assert_int_equal(find_cap(f->pf, 2, PCI_CAP_ID_MSIX), 0);
}

struct notifier {
    struct pci_device *dev;
    atomic_bool stop;
    atomic_uint count;
};

static void *notify_thread(void *arg)
{
    struct notifier *n = arg;
    for (unsigned i = 0; !n->stop; i++) {
        pci_msix_notify(n->dev, i % (MSIX_VECTORS + 1));
        n->count = i + 1;
    }
    return NULL;
}

/* A device thread signals while a vCPU reprograms and masks: every notification either
 * fires or stays pending, and nothing is left pending once everything is unmasked. */
static void test_msix_concurrent(void **state)
{
    struct fixture *f = *state;
    struct msix_view m = msix_setup(f);
    for (unsigned v = 0; v < MSIX_VECTORS; v++)
        msix_entry(&m, v, 0xfee00000, 0x40 + v, false);
    msix_control(&m, 0x8000);
    struct notifier n = {.dev = f->dev[0].pci};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, notify_thread, &n), 0);
    /* Until both sides have done plenty (the thread may start late). */
    for (unsigned i = 0; i < 20000 || n.count < 20000; i++) {
        unsigned v = i % MSIX_VECTORS;
        pci_mmio_write(f->pf, m.bar + 16 * v + 12, 4, i & 1);
        if (i % 97 == 0)
            msix_control(&m, (i & 2) ? 0xc000 : 0x8000);
        pci_mmio_write(f->pf, m.bar + 16 * v + 8, 4, 0x40 + (i & 0xff));
    }
    n.stop = true;
    pthread_join(t, NULL);
    msix_control(&m, 0x8000);
    for (unsigned v = 0; v < MSIX_VECTORS; v++)
        pci_mmio_write(f->pf, m.bar + 16 * v + 12, 4, 0);
    assert_int_equal(msix_pba(&m), 0);
    assert_true(f->pf->total_fires > 0);
}

/* ---- INTx ---- */

static void test_intx(void **state)
{
    struct fixture *f = *state;
    struct fake_machine *fm = &f->pf->fm;
    struct pci_device *d = f->dev[0].pci; /* slot 1: GSI 17 */
    const unsigned gsi = GSI_PCI_FIRST + 1;
    pci_set_intx(d, 1);
    assert_int_equal(fm->irq_level[gsi], 1);
    assert_true(pci_ecam_read(f->pf, 1, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
    uint16_t cmd = (uint16_t)pci_ecam_read(f->pf, 1, PCI_COMMAND, 2);
    pci_ecam_write(f->pf, 1, PCI_COMMAND, 2, cmd | PCI_COMMAND_INTX_DISABLE);
    assert_int_equal(fm->irq_level[gsi], 0);
    assert_true(pci_ecam_read(f->pf, 1, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
    pci_ecam_write(f->pf, 1, PCI_COMMAND, 2, cmd);
    assert_int_equal(fm->irq_level[gsi], 1);
    unsigned calls = fm->irq_calls[gsi];
    pci_set_intx(d, 1); /* no change, no call */
    assert_int_equal(fm->irq_calls[gsi], calls);
    pci_set_intx(d, 0);
    assert_int_equal(fm->irq_level[gsi], 0);
    assert_false(pci_ecam_read(f->pf, 1, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
    /* Slot 2 is on the next line. */
    pci_set_intx(f->dev[1].pci, 1);
    assert_int_equal(fm->irq_level[GSI_PCI_FIRST + 2], 1);
    assert_int_equal(fm->irq_level[gsi], 0);
    pci_set_intx(f->dev[1].pci, 0);
    pci_set_intx(NULL, 1);
}

static void test_intx_shared_line(void **state)
{
    struct fixture *f = *state;
    struct fake_machine *fm = &f->pf->fm;
    char err[256];
    struct pci_device *extra[3];
    const struct pci_device_info info = {.name = "filler", .vendor_id = 0x1234};
    for (unsigned i = 0; i < 3; i++) { /* slots 3, 4, 5 */
        extra[i] = pci_device_new(f->bus, &info, NULL, err, sizeof(err));
        assert_non_null(extra[i]);
    }
    struct pci_device *a = f->dev[0].pci, *b = extra[2]; /* slots 1 and 5 share GSI 17 */
    const unsigned gsi = GSI_PCI_FIRST + 1;
    assert_int_equal(pci_ecam_read(f->pf, 5, PCI_INTERRUPT_LINE, 1), gsi);
    pci_set_intx(a, 1);
    pci_set_intx(b, 1);
    pci_set_intx(a, 0);
    assert_int_equal(fm->irq_level[gsi], 1);
    pci_set_intx(b, 0);
    assert_int_equal(fm->irq_level[gsi], 0);
    /* A device removed while asserting lets go of the line. */
    pci_set_intx(b, 1);
    pci_device_free(b);
    assert_int_equal(fm->irq_level[gsi], 0);
    /* With MSI-X enabled INTx stays quiet. */
    struct msix_view m = msix_setup(f);
    msix_control(&m, 0x8000);
    pci_set_intx(a, 1);
    assert_int_equal(fm->irq_level[gsi], 0);
    msix_control(&m, 0);
    assert_int_equal(fm->irq_level[gsi], 1);
    pci_set_intx(a, 0);
    pci_device_free(extra[0]);
    pci_device_free(extra[1]);
    /* Slots run out at 31. */
    struct pci_device *all[32];
    unsigned n = 0;
    while (n < 32 && (all[n] = pci_device_new(f->bus, &info, NULL, err, sizeof(err))))
        n++;
    assert_int_equal(n, 31 - 2);
    assert_non_null(strstr(err, "slot"));
    for (unsigned i = 0; i < n; i++)
        pci_device_free(all[i]);
}

/* ---- hostile guest ---- */

static void test_hammer(void **state)
{
    struct fixture *f = *state;
    static const uint64_t junk[] = {0, ~0ULL, 0xa5a5a5a5a5a5a5a5ULL, 0x8000, 0xc000, 0x5a};
    static const unsigned sizes[] = {1, 2, 4, 8, 3};
    struct msix_view m = msix_setup(f);
    pci_device_init_msix(f->dev[1].pci, 64, 1, (char[64]){0}, 64);
    /* The MSI-X BAR first, while it is where we know. */
    for (uint64_t off = 0; off < 0x1010; off++)
        for (unsigned s = 0; s < 5; s++) {
            pci_mmio_write(f->pf, m.bar + off, sizes[s], junk[off % 6]);
            pci_mmio_read(f->pf, m.bar + off, sizes[s]);
        }
    for (unsigned slot = 0; slot < 4; slot++)
        for (unsigned fn = 0; fn < 2; fn++)
            for (uint64_t reg = 0; reg < 0x1000; reg++)
                for (unsigned s = 0; s < 5; s++) {
                    uint64_t a = pci_ecam_addr(slot, fn, (unsigned)reg), v;
                    bus_read(&f->pf->fm.mmio, a, sizes[s], &v);
                    bus_write(&f->pf->fm.mmio, a, sizes[s], junk[(reg + s) % 6]);
                }
    for (unsigned slot = 0; slot < 4; slot++)
        for (unsigned reg = 0; reg < 0x100; reg++)
            for (unsigned s = 0; s < 3; s++) {
                pci_cf8_write(f->pf, slot, reg, sizes[s], (uint32_t)junk[reg % 6]);
                pci_cf8_read(f->pf, slot, reg, sizes[s]);
            }
    fake_hammer_ports(&f->pf->fm);
    for (int i = 0; i < 100; i++) {
        pci_msix_notify(f->dev[0].pci, (unsigned)i);
        pci_msix_notify(f->dev[1].pci, (unsigned)i);
        pci_set_intx(f->dev[0].pci, i & 1);
    }
    /* Identity registers survived. */
    assert_int_equal(pci_cf8_read(f->pf, 1, PCI_VENDOR_ID, 2), 0x1af4);
    assert_int_equal(pci_cf8_read(f->pf, 0, PCI_CLASS_REVISION, 4) >> 8, 0x060000);
}

/* ---- ACPI ---- */

static void describe(void *ctx, struct aml_buf *aml)
{
    pci_bus_describe_acpi(ctx, aml);
}

static const uint8_t *table(struct guest_memory *mem, uint64_t gpa, const char *sig)
{
    const uint8_t *h = gpa_to_host(mem, gpa, 36);
    assert_non_null(h);
    assert_memory_equal(h, sig, 4);
    uint32_t len = (uint32_t)h[4] | h[5] << 8 | h[6] << 16 | (uint32_t)h[7] << 24;
    assert_true(gpa >= BOOT_ACPI_BASE && gpa + len <= BOOT_ACPI_BASE + BOOT_ACPI_SIZE);
    uint8_t sum = 0;
    for (uint32_t i = 0; i < len; i++)
        sum = (uint8_t)(sum + h[i]);
    if (sum)
        fail_msg("%s checksum off by %u", sig, sum);
    return h;
}

static uint64_t le(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static void write_file(const char *path, const uint8_t *p, size_t n)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(p, 1, n, fp), n);
    fclose(fp);
}

static bool file_contains(const char *path, const char *needle)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return false;
    static char text[1 << 20];
    size_t n = fread(text, 1, sizeof(text) - 1, fp);
    fclose(fp);
    text[n] = 0;
    return strstr(text, needle) != NULL;
}

/* Disassemble with ACPICA's iasl when installed: the AML must parse and name what we wrote. */
static void check_with_iasl(const uint8_t *dsdt, uint32_t dsdt_len, const uint8_t *mcfg)
{
    if (system("command -v iasl >/dev/null 2>&1") != 0) {
        printf("iasl not installed (Debian: acpica-tools): DSDT not disassembled\n");
        return;
    }
    char dir[] = "/tmp/quokka-acpi-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256], cmd[600];
    snprintf(path, sizeof(path), "%s/dsdt.dat", dir);
    write_file(path, dsdt, dsdt_len);
    snprintf(path, sizeof(path), "%s/mcfg.dat", dir);
    write_file(path, mcfg, 60);
    snprintf(cmd, sizeof(cmd),
             "cd %s && iasl -d dsdt.dat >iasl.log 2>&1 && iasl -d mcfg.dat >>iasl.log 2>&1", dir);
    int rc = system(cmd);
    snprintf(path, sizeof(path), "%s/dsdt.dsl", dir);
    if (rc != 0 || !file_contains(path, "Device (PCI0)"))
        fail_msg("iasl could not disassemble the DSDT: see %s/iasl.log", dir);
    static const char *const needles[] = {"_PRT",    "_CRS",          "PNP0A08",     "PNP0A03",
                                          "PNP0C02", "WordBusNumber", "DWordMemory", "QWordMemory",
                                          "0x0CF7",  "Memory32Fixed", "_S5_",        "0x0013"};
    for (size_t i = 0; i < sizeof(needles) / sizeof(needles[0]); i++)
        if (!file_contains(path, needles[i]))
            fail_msg("iasl's disassembly lacks %s: see %s", needles[i], path);
    snprintf(path, sizeof(path), "%s/mcfg.dsl", dir);
    if (!file_contains(path, "00000000E0000000"))
        fail_msg("iasl's MCFG disassembly lacks the ECAM base: see %s", path);
    if (getenv("QUOKKA_KEEP_ACPI")) {
        printf("kept %s\n", dir);
        return;
    }
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_acpi_description(void **state)
{
    struct fixture *f = *state;
    struct guest_memory mem;
    char err[256];
    assert_int_equal(guest_memory_init(&mem, 64ULL << 20, err, sizeof(err)), 0);
    const struct acpi_config cfg = {.nr_cpus = 4,
                                    .describe = describe,
                                    .ctx = f->bus,
                                    .mcfg = true,
                                    .ecam_base = PHYS_PCI_ECAM,
                                    .ecam_end_bus = 0};
    uint64_t rsdp_addr = acpi_build(&mem, &cfg, err, sizeof(err));
    if (!rsdp_addr)
        fail_msg("acpi_build: %s", err);
    const uint8_t *rsdp = gpa_to_host(&mem, rsdp_addr, 36);
    const uint8_t *xsdt = table(&mem, le(rsdp + 24, 8), "XSDT");
    const uint8_t *rsdt = table(&mem, le(rsdp + 16, 4), "RSDT");
    assert_int_equal(le(xsdt + 4, 4), 36 + 3 * 8);
    const uint8_t *mcfg = NULL, *fadt = NULL;
    for (unsigned i = 0; i < 3; i++) {
        uint64_t a = le(xsdt + 36 + 8 * i, 8);
        assert_int_equal(a, le(rsdt + 36 + 4 * i, 4));
        assert_int_equal(a % 8, 0);
        const uint8_t *h = gpa_to_host(&mem, a, 4);
        if (!memcmp(h, "MCFG", 4))
            mcfg = table(&mem, a, "MCFG");
        else if (!memcmp(h, "FACP", 4))
            fadt = table(&mem, a, "FACP");
        else
            table(&mem, a, "APIC");
    }
    assert_non_null(mcfg);
    assert_non_null(fadt);
    assert_int_equal(le(mcfg + 4, 4), 60);
    assert_int_equal(mcfg[8], 1);
    assert_int_equal(le(mcfg + 44, 8), PHYS_PCI_ECAM);
    assert_int_equal(le(mcfg + 52, 2), 0);
    assert_int_equal(mcfg[54], 0);
    assert_int_equal(mcfg[55], 0);
    const uint8_t *dsdt = table(&mem, le(fadt + 140, 8), "DSDT");
    uint32_t dsdt_len = (uint32_t)le(dsdt + 4, 4);
    assert_int_equal(dsdt[8], 2);
    assert_non_null(memmem(dsdt, dsdt_len, "PCI0", 4));
    assert_non_null(memmem(dsdt, dsdt_len, "_PRT", 4));
    assert_non_null(memmem(dsdt, dsdt_len, "_CRS", 4));
    check_with_iasl(dsdt, dsdt_len, mcfg);
    guest_memory_destroy(&mem);
}

static void test_e820_reserves_ecam(void **state)
{
    (void)state;
    struct guest_memory mem;
    char err[256];
    assert_int_equal(guest_memory_init(&mem, 5ULL << 30, err, sizeof(err)), 0);
    struct e820_map map;
    e820_build(&mem, &map);
    bool found = false;
    for (uint32_t i = 0; i < map.nr; i++)
        if (map.entry[i].addr <= PHYS_PCI_ECAM &&
            map.entry[i].addr + map.entry[i].size >= PHYS_PCI_ECAM + PCI_ECAM_SIZE)
            found = map.entry[i].type == E820_RESERVED;
    assert_true(found);
    guest_memory_destroy(&mem);
}

static void test_bus_errors(void **state)
{
    (void)state;
    char err[256] = "";
    assert_null(pci_bus_new(NULL, err, sizeof(err)));
    struct pci_fake_machine *pf = pci_fake_machine_new();
    struct device_host h = pf->fm.host;
    h.resources = NULL;
    assert_null(pci_bus_new(&h, err, sizeof(err)));
    /* The config ports are taken: a clean error, nothing left behind. */
    static const struct bus_device_ops none = {NULL, NULL};
    assert_int_equal(
        bus_register(&pf->fm.pio, PORT_PCI_CONFIG_DATA, 1, &none, pf, "squatter", err, sizeof(err)),
        0);
    assert_null(pci_bus_new(&pf->fm.host, err, sizeof(err)));
    assert_non_null(strstr(err, "overlaps"));
    assert_int_equal(pf->fm.pio.nr, 1);
    assert_int_equal(pf->fm.mmio.nr, 0);
    bus_unregister(&pf->fm.pio, PORT_PCI_CONFIG_DATA, pf);
    struct pci_bus *bus = pci_bus_new(&pf->fm.host, err, sizeof(err));
    assert_non_null(bus);
    /* Its GSIs are claimed: a second bus cannot have them. */
    assert_null(pci_bus_new(&pf->fm.host, err, sizeof(err)));
    assert_null(
        pci_device_new(NULL, &(struct pci_device_info){.name = "x"}, NULL, err, sizeof(err)));
    /* Devices left on the bus are freed with it. */
    assert_non_null(
        pci_device_new(bus, &(struct pci_device_info){.name = "left"}, NULL, err, sizeof(err)));
    pci_bus_free(bus);
    pci_bus_free(NULL);
    pci_device_free(NULL);
    assert_int_equal(pf->fm.pio.nr, 0);
    pci_fake_machine_free(pf);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_host_bridge),
        T(test_cf8_and_ecam_agree),
        T(test_absent_functions),
        T(test_bar_sizing),
        T(test_bar_add_errors),
        T(test_bar_relocation),
        T(test_decode_disable),
        T(test_bar_overlap),
        T(test_bar_overlap_loser_returns),
        T(test_read_only),
        T(test_capabilities),
        T(test_msix_layout),
        T(test_msix_delivery),
        T(test_msix_odd_accesses),
        T(test_msix_route_exhaustion),
        T(test_msix_concurrent),
        T(test_intx),
        T(test_intx_shared_line),
        T(test_hammer),
        T(test_acpi_description),
        cmocka_unit_test(test_e820_reserves_ecam),
        cmocka_unit_test(test_bus_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
