/* Unit tests: the user-space IOAPIC (hw/ioapic.c) through its MMIO window on a fake machine,
 * and the translator's local APIC model (accel/tcg/lapic.c) alone with a fake clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "accel/tcg/lapic.h"
#include "device_fakes.h"
#include "vm/platform.h"

#include <stdlib.h>

/* --- IOAPIC ------------------------------------------------------------------------------- */

#define RTE(pin) (0x10u + 2u * (pin))
#define RTE_MASKED (1u << 16)
#define RTE_LEVEL (1u << 15)
#define RTE_REMOTE_IRR (1u << 14)
#define RTE_LOGICAL (1u << 11)

struct io_fixture {
    struct fake_machine fm;
    void *ioapic;
};

static int io_setup(void **state)
{
    struct io_fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    fake_machine_init(&f->fm);
    fake_machine_enable_irqchip(&f->fm);
    f->ioapic = fake_create(&f->fm, "ioapic");
    assert_non_null(f->ioapic);
    assert_int_equal(f->fm.nr_routers, 1);
    assert_non_null(f->fm.eoi);
    *state = f;
    return 0;
}

static int io_teardown(void **state)
{
    struct io_fixture *f = *state;
    fake_destroy("ioapic", f->ioapic);
    assert_int_equal(f->fm.nr_routers, 0); /* unregisters itself */
    assert_null(f->fm.eoi);
    fake_machine_destroy(&f->fm);
    free(f);
    return 0;
}

static uint32_t io_read(struct fake_machine *fm, uint32_t index)
{
    uint64_t v = 0;
    assert_true(bus_write(&fm->mmio, PHYS_IOAPIC, 4, index));
    assert_true(bus_read(&fm->mmio, PHYS_IOAPIC + 0x10, 4, &v));
    return (uint32_t)v;
}

static void io_write(struct fake_machine *fm, uint32_t index, uint32_t value)
{
    assert_true(bus_write(&fm->mmio, PHYS_IOAPIC, 4, index));
    assert_true(bus_write(&fm->mmio, PHYS_IOAPIC + 0x10, 4, value));
}

static void program(struct fake_machine *fm, unsigned pin, uint32_t low, uint8_t dest)
{
    io_write(fm, RTE(pin) + 1, (uint32_t)dest << 24);
    io_write(fm, RTE(pin), low);
}

static void test_ioapic_registers(void **state)
{
    struct io_fixture *f = *state;
    struct fake_machine *fm = &f->fm;
    assert_int_equal(io_read(fm, 1), 0x00170011); /* version 0x11, 24 entries */
    assert_int_equal(io_read(fm, 0), 0);
    io_write(fm, 0, 0xffffffffu);
    assert_int_equal(io_read(fm, 0), 0x0f000000); /* 4-bit ID */
    assert_int_equal(io_read(fm, 2), 0x0f000000); /* arbitration ID follows it */
    io_write(fm, 1, 0);
    assert_int_equal(io_read(fm, 1), 0x00170011); /* read-only */
    for (unsigned pin = 0; pin < 24; pin++) {
        assert_int_equal(io_read(fm, RTE(pin)), RTE_MASKED); /* reset: masked */
        assert_int_equal(io_read(fm, RTE(pin) + 1), 0);
    }
    assert_int_equal(io_read(fm, RTE(24)), 0xffffffffu); /* past the table */
    assert_int_equal(io_read(fm, 0xff), 0xffffffffu);
    /* Delivery status and remote IRR are read-only; reserved bits stay zero. */
    io_write(fm, RTE(5), 0xffffffffu);
    assert_int_equal(io_read(fm, RTE(5)), 0x0001afffu);
    io_write(fm, RTE(5) + 1, 0xffffffffu);
    assert_int_equal(io_read(fm, RTE(5) + 1), 0xff000000u);
    /* IOREGSEL is an 8-bit index. */
    assert_true(bus_write(&fm->mmio, PHYS_IOAPIC, 4, 0x1234501));
    uint64_t v = 0;
    bus_read(&fm->mmio, PHYS_IOAPIC, 4, &v);
    assert_int_equal(v, 0x01);
    bus_read(&fm->mmio, PHYS_IOAPIC + 0x10, 4, &v);
    assert_int_equal(v, 0x00170011);
    bus_read(&fm->mmio, PHYS_IOAPIC + 0x12, 1, &v); /* a byte of the window */
    assert_int_equal(v, 0x17);
    assert_int_equal(fm->nr_msgs, 0);
}

static void test_ioapic_edge(void **state)
{
    struct io_fixture *f = *state;
    struct fake_machine *fm = &f->fm;
    program(fm, 4, 0x34, 0);
    fake_set_irq(fm, 4, 1);
    assert_int_equal(fm->nr_msgs, 1);
    assert_int_equal(fm->msgs[0].vector, 0x34);
    assert_int_equal(fm->msgs[0].delivery_mode, APIC_DM_FIXED);
    assert_int_equal(fm->msgs[0].dest, 0);
    assert_false(fm->msgs[0].dest_logical);
    assert_false(fm->msgs[0].level);
    fake_set_irq(fm, 4, 1); /* no new edge */
    assert_int_equal(fm->nr_msgs, 1);
    fake_set_irq(fm, 4, 0);
    fake_set_irq(fm, 4, 1);
    assert_int_equal(fm->nr_msgs, 2);
    assert_int_equal(io_read(fm, RTE(4)) & RTE_REMOTE_IRR, 0); /* edge: never remote IRR */
    /* Logical destination, lowest priority. */
    program(fm, 3, 0x45 | (1u << 8) | RTE_LOGICAL, 0x03);
    fake_set_irq(fm, 3, 1);
    assert_int_equal(fm->nr_msgs, 3);
    assert_int_equal(fm->msgs[2].vector, 0x45);
    assert_int_equal(fm->msgs[2].delivery_mode, APIC_DM_LOWEST);
    assert_true(fm->msgs[2].dest_logical);
    assert_int_equal(fm->msgs[2].dest, 3);
}

/* The PIT's IRQ 0 is on pin 2 (the MADT override); line 2 (PIC cascade) drives nothing. */
static void test_ioapic_irq0_override(void **state)
{
    struct io_fixture *f = *state;
    struct fake_machine *fm = &f->fm;
    program(fm, 0, 0x20, 0);
    program(fm, 2, 0x30, 0);
    fake_set_irq(fm, IRQ_PIT, 1);
    fake_set_irq(fm, IRQ_PIT, 0);
    assert_int_equal(fm->nr_msgs, 1);
    assert_int_equal(fm->msgs[0].vector, 0x30);
    fake_set_irq(fm, 2, 1);
    fake_set_irq(fm, 2, 0);
    assert_int_equal(fm->nr_msgs, 1);
    /* Lines beyond the pins are ignored. */
    fm->route(fm->route_opaque, 24, 1);
    fm->route(fm->route_opaque, 0xffffffffu, 1);
    assert_int_equal(fm->nr_msgs, 1);
}

static void test_ioapic_masking(void **state)
{
    struct io_fixture *f = *state;
    struct fake_machine *fm = &f->fm;
    /* A masked edge is dropped, not held. */
    program(fm, 1, 0x31 | RTE_MASKED, 0);
    fake_set_irq(fm, 1, 1);
    fake_set_irq(fm, 1, 0);
    program(fm, 1, 0x31, 0);
    assert_int_equal(fm->nr_msgs, 0);
    /* A masked level line is sampled again on unmask. */
    program(fm, 9, 0x39 | RTE_LEVEL | RTE_MASKED, 0);
    fake_set_irq(fm, 9, 1);
    assert_int_equal(fm->nr_msgs, 0);
    program(fm, 9, 0x39 | RTE_LEVEL, 0);
    assert_int_equal(fm->nr_msgs, 1);
    assert_true(fm->msgs[0].level);
    assert_int_equal(fm->msgs[0].vector, 0x39);
}

static void test_ioapic_level_eoi(void **state)
{
    struct io_fixture *f = *state;
    struct fake_machine *fm = &f->fm;
    program(fm, 9, 0x39 | RTE_LEVEL, 0);
    fake_set_irq(fm, 9, 1);
    assert_int_equal(fm->nr_msgs, 1);
    assert_true(io_read(fm, RTE(9)) & RTE_REMOTE_IRR);
    fake_set_irq(fm, 9, 1); /* still awaiting its EOI */
    assert_int_equal(fm->nr_msgs, 1);
    fm->eoi(fm->eoi_opaque, 0x40); /* another vector: nothing */
    assert_int_equal(fm->nr_msgs, 1);
    assert_true(io_read(fm, RTE(9)) & RTE_REMOTE_IRR);
    fm->eoi(fm->eoi_opaque, 0x39); /* line still asserted: delivered again */
    assert_int_equal(fm->nr_msgs, 2);
    assert_true(io_read(fm, RTE(9)) & RTE_REMOTE_IRR);
    fake_set_irq(fm, 9, 0);
    fm->eoi(fm->eoi_opaque, 0x39);
    assert_int_equal(fm->nr_msgs, 2);
    assert_int_equal(io_read(fm, RTE(9)) & RTE_REMOTE_IRR, 0);
    /* The guest cannot set remote IRR itself. */
    io_write(fm, RTE(9), 0x39 | RTE_LEVEL | RTE_REMOTE_IRR);
    assert_int_equal(io_read(fm, RTE(9)) & RTE_REMOTE_IRR, 0);
    /* Switching an entry awaiting EOI to edge drops its remote IRR. */
    fake_set_irq(fm, 9, 1);
    assert_int_equal(fm->nr_msgs, 3);
    io_write(fm, RTE(9), 0x39);
    assert_int_equal(io_read(fm, RTE(9)) & RTE_REMOTE_IRR, 0);
}

static void test_ioapic_hostile_mmio(void **state)
{
    struct io_fixture *f = *state;
    struct fake_machine *fm = &f->fm;
    struct bus_hit hit;
    const struct bus_hit *r = &hit;
    assert_true(bus_find(&fm->mmio, PHYS_IOAPIC, 4, &hit));
    assert_int_equal(r->len, 0x1000);
    static const uint64_t junk[] = {0, ~0ULL, 0xa5a5a5a5a5a5a5a5ULL, 0x10, 0x3f};
    for (uint64_t off = 0; off < r->len + 16; off++)
        for (unsigned size = 0; size <= 9; size++)
            for (size_t j = 0; j < sizeof(junk) / sizeof(junk[0]); j++) {
                r->ops->read(r->opaque, off, size);
                r->ops->write(r->opaque, off, size, junk[j]);
            }
    /* Every index through the window, including the redirection table, with junk. */
    for (uint32_t index = 0; index < 0x100; index++) {
        io_write(fm, index, 0xffffffffu);
        io_read(fm, index);
    }
    /* Whatever happened, the table is still well-formed. */
    for (unsigned pin = 0; pin < 24; pin++)
        assert_int_equal(io_read(fm, RTE(pin)) & ~0x0001ffffu, 0);
}

/* The PIC and the IOAPIC both see each line: two routers. */
static void test_ioapic_with_pic(void **state)
{
    (void)state;
    struct fake_machine fm;
    fake_machine_init(&fm);
    fake_machine_enable_irqchip(&fm);
    void *pic = fake_create(&fm, "i8259");
    void *io = fake_create(&fm, "ioapic");
    assert_int_equal(fm.nr_routers, 2);
    program(&fm, 4, 0x34, 0);
    /* PIC: ICW1-4, vectors 0x20/0x28, all unmasked. */
    outb(&fm, 0x20, 0x11);
    outb(&fm, 0x21, 0x20);
    outb(&fm, 0x21, 0x04);
    outb(&fm, 0x21, 0x01);
    outb(&fm, 0x21, 0x00);
    fake_set_irq(&fm, 4, 1);
    assert_int_equal(fm.nr_msgs, 1);
    assert_int_equal(fm.intr_level, 1);
    assert_int_equal(fm.intack(fm.intack_opaque, 0), 0x24);
    fake_destroy("ioapic", io);
    assert_int_equal(fm.nr_routers, 1);
    assert_ptr_equal(fm.route_opaque, pic);
    fake_destroy("i8259", pic);
    assert_int_equal(fm.nr_routers, 0);
    fake_machine_destroy(&fm);
}

static void test_ioapic_kvm_registers_nothing(void **state)
{
    (void)state;
    struct fake_machine fm;
    fake_machine_init(&fm);
    fake_machine_enable_irqchip(&fm);
    fm.host.user_irqchip = false;
    void *io = fake_create(&fm, "ioapic");
    assert_null(io);
    assert_int_equal(fm.mmio.nr, 0);
    assert_int_equal(fm.nr_routers, 0);
    fake_destroy("ioapic", io);
    fake_machine_destroy(&fm);
}

/* --- local APIC ----------------------------------------------------------------------------- */

#define XAPIC_ID 0x20
#define XAPIC_VER 0x30
#define XAPIC_TPR 0x80
#define XAPIC_PPR 0xa0
#define XAPIC_EOI 0xb0
#define XAPIC_LDR 0xd0
#define XAPIC_DFR 0xe0
#define XAPIC_SVR 0xf0
#define XAPIC_ISR 0x100
#define XAPIC_TMR 0x180
#define XAPIC_IRR 0x200
#define XAPIC_ESR 0x280
#define XAPIC_ICR 0x300
#define XAPIC_ICR_HI 0x310
#define XAPIC_LVT_TIMER 0x320
#define XAPIC_LVT_LINT0 0x350
#define XAPIC_LVT_ERROR 0x370
#define XAPIC_TIMER_INIT 0x380
#define XAPIC_TIMER_CUR 0x390
#define XAPIC_TIMER_DCR 0x3e0
#define PERIODIC (1u << 17)
#define TSC_DEADLINE (2u << 17)
#define MASKED (1u << 16)
#define T0 5000000000ULL

struct lapic_fixture {
    struct lapic l;
    uint64_t now;
    uint8_t eois[16];
    unsigned nr_eois;
    unsigned kicks;
};

static uint64_t fx_clock(void *ctx)
{
    return ((struct lapic_fixture *)ctx)->now;
}

static void fx_eoi(void *ctx, uint8_t vector)
{
    struct lapic_fixture *f = ctx;
    assert_true(f->nr_eois < 16);
    f->eois[f->nr_eois++] = vector;
}

static void fx_kick(void *ctx)
{
    ((struct lapic_fixture *)ctx)->kicks++;
}

static int lapic_setup(void **state)
{
    struct lapic_fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->now = T0;
    const struct lapic_ops ops = {fx_clock, fx_eoi, fx_kick, NULL, f};
    assert_int_equal(lapic_init(&f->l, 0, true, &ops), 0);
    *state = f;
    return 0;
}

static int lapic_teardown(void **state)
{
    struct lapic_fixture *f = *state;
    lapic_destroy(&f->l);
    free(f);
    return 0;
}

static uint32_t rd(struct lapic *l, unsigned off)
{
    return (uint32_t)lapic_mmio_read(l, off, 4);
}

static void wr(struct lapic *l, unsigned off, uint32_t v)
{
    lapic_mmio_write(l, off, 4, v);
}

static bool irr_has(struct lapic *l, unsigned v)
{
    return (rd(l, XAPIC_IRR + (v / 32) * 16) >> (v % 32)) & 1u;
}

static bool isr_has(struct lapic *l, unsigned v)
{
    return (rd(l, XAPIC_ISR + (v / 32) * 16) >> (v % 32)) & 1u;
}

static void fixed(struct lapic *l, uint8_t vector, bool level)
{
    struct apic_msg m = {
        .dest = 0, .vector = vector, .delivery_mode = APIC_DM_FIXED, .level = level};
    lapic_deliver(l, &m);
}

static void test_lapic_reset_state(void **state)
{
    struct lapic_fixture *f = *state;
    struct lapic *l = &f->l;
    assert_int_equal(lapic_get_base(l), 0xfee00000ULL | (1u << 11) | (1u << 8));
    assert_true(lapic_mmio_hit(l, 0xfee00020));
    assert_true(lapic_mmio_hit(l, 0xfee00fff));
    assert_false(lapic_mmio_hit(l, 0xfee01000));
    assert_int_equal(rd(l, XAPIC_ID), 0);
    assert_int_equal(rd(l, XAPIC_VER), 0x00050014);
    assert_int_equal(rd(l, XAPIC_SVR), 0xff);
    assert_int_equal(rd(l, XAPIC_DFR), 0xffffffffu);
    assert_int_equal(rd(l, XAPIC_LVT_TIMER), MASKED);
    assert_int_equal(rd(l, XAPIC_LVT_LINT0), 0x700); /* BSP: virtual wire to the PIC */
    assert_true(lapic_accepts_pic(l));
    assert_false(lapic_has_interrupt(l));
    assert_int_equal(lapic_ack(l), -1);
    /* Software-disabled: fixed interrupts are dropped, LVT masks cannot be cleared. */
    fixed(l, 0x41, false);
    assert_false(irr_has(l, 0x41));
    wr(l, XAPIC_LVT_TIMER, 0x30);
    assert_int_equal(rd(l, XAPIC_LVT_TIMER), MASKED | 0x30);
    /* LINT0 masked: the PIC no longer reaches the CPU; globally disabled: it always does. */
    wr(l, XAPIC_SVR, 0x1ff);
    wr(l, XAPIC_LVT_LINT0, 0x700 | MASKED);
    assert_false(lapic_accepts_pic(l));
    assert_true(lapic_set_base(l, 0xfee00000ULL));
    assert_true(lapic_accepts_pic(l));
    assert_false(lapic_mmio_hit(l, 0xfee00020));
    /* Re-enabled: registers are back to their reset values. */
    assert_true(lapic_set_base(l, 0xfee00000ULL | (1u << 11)));
    assert_int_equal(rd(l, XAPIC_SVR), 0xff);
    assert_int_equal(lapic_get_base(l), 0xfee00000ULL | (1u << 11) | (1u << 8)); /* BSP kept */
    /* Relocation. */
    assert_true(lapic_set_base(l, 0xfed00000ULL | (1u << 11)));
    assert_true(lapic_mmio_hit(l, 0xfed00080));
    assert_false(lapic_mmio_hit(l, 0xfee00080));
    /* Reserved bits and x2APIC without enable are refused. */
    assert_false(lapic_set_base(l, 0xfee00000ULL | (1u << 11) | 1u));
    assert_false(lapic_set_base(l, 0xfee00000ULL | (1ULL << 40) | (1u << 11)));
    assert_false(lapic_set_base(l, 0xfee00000ULL | (1u << 10)));
}

static void test_lapic_priority_and_eoi(void **state)
{
    struct lapic_fixture *f = *state;
    struct lapic *l = &f->l;
    wr(l, XAPIC_SVR, 0x1ff);
    fixed(l, 0x41, false);
    assert_true(irr_has(l, 0x41));
    assert_true(lapic_has_interrupt(l));
    assert_int_equal(f->kicks, 1);
    wr(l, XAPIC_TPR, 0x50); /* blocks class 4 */
    assert_int_equal(rd(l, XAPIC_PPR), 0x50);
    assert_false(lapic_has_interrupt(l));
    assert_int_equal(lapic_ack(l), -1);
    lapic_set_cr8(l, 3); /* CR8 is TPR[7:4] */
    assert_int_equal(rd(l, XAPIC_TPR), 0x30);
    assert_int_equal(lapic_get_cr8(l), 3);
    assert_true(lapic_has_interrupt(l));
    assert_int_equal(lapic_ack(l), 0x41);
    assert_true(isr_has(l, 0x41));
    assert_false(irr_has(l, 0x41));
    assert_int_equal(rd(l, XAPIC_PPR), 0x40);
    fixed(l, 0x45, false); /* same class as in service: waits */
    assert_false(lapic_has_interrupt(l));
    fixed(l, 0x51, false); /* higher class: nests */
    assert_true(lapic_has_interrupt(l));
    assert_int_equal(lapic_ack(l), 0x51);
    assert_int_equal(rd(l, XAPIC_PPR), 0x50);
    wr(l, XAPIC_EOI, 0); /* retires 0x51, the highest in service */
    assert_false(isr_has(l, 0x51));
    assert_true(isr_has(l, 0x41));
    assert_false(lapic_has_interrupt(l)); /* 0x45 still below 0x41's class */
    wr(l, XAPIC_EOI, 0);
    assert_true(lapic_has_interrupt(l));
    assert_int_equal(lapic_ack(l), 0x45);
    wr(l, XAPIC_EOI, 0);
    wr(l, XAPIC_EOI, 0);             /* nothing in service: harmless */
    assert_int_equal(f->nr_eois, 0); /* all edge-triggered */
    lapic_set_cr8(l, 0);
    assert_int_equal(rd(l, XAPIC_PPR), 0);
}

static void test_lapic_level_eoi_broadcast(void **state)
{
    struct lapic_fixture *f = *state;
    struct lapic *l = &f->l;
    wr(l, XAPIC_SVR, 0x1ff);
    fixed(l, 0x61, true);
    assert_true((rd(l, XAPIC_TMR + 0x30) >> 1) & 1u); /* TMR bit 0x61 */
    assert_int_equal(lapic_ack(l), 0x61);
    wr(l, XAPIC_EOI, 0);
    assert_int_equal(f->nr_eois, 1);
    assert_int_equal(f->eois[0], 0x61);
    fixed(l, 0x61, false); /* the same vector edge-triggered: no broadcast */
    assert_int_equal(lapic_ack(l), 0x61);
    wr(l, XAPIC_EOI, 0);
    assert_int_equal(f->nr_eois, 1);
}

static void test_lapic_errors_and_destinations(void **state)
{
    struct lapic_fixture *f = *state;
    struct lapic *l = &f->l;
    wr(l, XAPIC_SVR, 0x1ff);
    fixed(l, 0x05, false); /* vectors 0-15 are illegal */
    assert_false(lapic_has_interrupt(l));
    assert_int_equal(rd(l, XAPIC_ESR), 0); /* errors show after the next ESR write */
    wr(l, XAPIC_ESR, 0);
    assert_int_equal(rd(l, XAPIC_ESR), 0x40);
    wr(l, XAPIC_ESR, 0);
    assert_int_equal(rd(l, XAPIC_ESR), 0);
    /* Physical destinations: ours, broadcast, another APIC. */
    struct apic_msg m = {.dest = 1, .vector = 0x70, .delivery_mode = APIC_DM_FIXED};
    lapic_deliver(l, &m);
    assert_false(irr_has(l, 0x70));
    m.dest = 0xff;
    lapic_deliver(l, &m);
    assert_true(irr_has(l, 0x70));
    /* Logical flat: LDR bit 0; cluster model: cluster 0, member bit 0. */
    wr(l, XAPIC_LDR, 0x01000000);
    m = (struct apic_msg){.dest = 0x02, .vector = 0x71, .dest_logical = true};
    lapic_deliver(l, &m);
    assert_false(irr_has(l, 0x71));
    m.dest = 0x03;
    lapic_deliver(l, &m);
    assert_true(irr_has(l, 0x71));
    wr(l, XAPIC_DFR, 0x0fffffff);
    assert_int_equal(rd(l, XAPIC_DFR), 0x0fffffff);
    m.dest = 0x11, m.vector = 0x72; /* cluster 1 */
    lapic_deliver(l, &m);
    assert_false(irr_has(l, 0x72));
    m.dest = 0x01;
    lapic_deliver(l, &m);
    assert_true(irr_has(l, 0x72));
    /* NMI, INIT, SIPI are recorded for the CPU, not put into IRR; SMI and ExtINT dropped. */
    m = (struct apic_msg){.dest = 0, .vector = 0x73, .delivery_mode = APIC_DM_NMI};
    lapic_deliver(l, &m);
    assert_false(irr_has(l, 0x73));
    assert_true(lapic_take_nmi(l));
    m.delivery_mode = APIC_DM_STARTUP;
    lapic_deliver(l, &m);
    assert_int_equal(lapic_take_startup(l), LAPIC_STARTUP_SIPI | 0x73);
    m.delivery_mode = APIC_DM_SMI;
    lapic_deliver(l, &m);
    m.delivery_mode = APIC_DM_EXTINT;
    lapic_deliver(l, &m);
    assert_false(irr_has(l, 0x73));
    assert_false(lapic_nmi_pending(l));
    assert_false(lapic_startup_pending(l));
}

static void test_lapic_icr_self_ipi(void **state)
{
    struct lapic_fixture *f = *state;
    struct lapic *l = &f->l;
    wr(l, XAPIC_SVR, 0x1ff);
    wr(l, XAPIC_ICR_HI, 0x00ffffff); /* only bits 31:24 are kept */
    assert_int_equal(rd(l, XAPIC_ICR_HI), 0);
    wr(l, XAPIC_ICR, 0x40 | (1u << 12)); /* fixed to APIC 0; delivery status is read-only */
    assert_true(irr_has(l, 0x40));
    assert_int_equal(rd(l, XAPIC_ICR), 0x40);
    wr(l, XAPIC_ICR, 0x41 | (1u << 18)); /* shorthand self */
    assert_true(irr_has(l, 0x41));
    wr(l, XAPIC_ICR, 0x42 | (3u << 18)); /* all excluding self */
    assert_false(irr_has(l, 0x42));
    wr(l, XAPIC_ICR, 0x43 | (2u << 18)); /* all including self */
    assert_true(irr_has(l, 0x43));
    wr(l, XAPIC_ICR_HI, 0x01000000);
    wr(l, XAPIC_ICR, 0x44); /* APIC 1: nobody */
    assert_false(irr_has(l, 0x44));
    /* Without a bus an APIC still hears its own INIT (de-assert: nothing) and NMI. */
    wr(l, XAPIC_ICR, 0x45 | (5u << 8) | (1u << 15) | (1u << 18)); /* INIT level de-assert */
    assert_false(lapic_startup_pending(l));
    wr(l, XAPIC_ICR, 0x45 | (5u << 8) | (1u << 14) | (1u << 18)); /* INIT assert */
    assert_false(irr_has(l, 0x45));
    assert_int_equal(lapic_take_startup(l), LAPIC_STARTUP_INIT);
    wr(l, XAPIC_ICR, 0x45 | (4u << 8) | (3u << 18)); /* NMI to the others: nobody */
    assert_false(lapic_nmi_pending(l));
    wr(l, XAPIC_ICR, 0x45 | (2u << 8) | (2u << 18)); /* SMI: not modelled */
    assert_false(irr_has(l, 0x45));
    wr(l, XAPIC_ICR, 0x02 | (1u << 18)); /* illegal vector */
    wr(l, XAPIC_ESR, 0);
    assert_int_equal(rd(l, XAPIC_ESR), 0x20);
}

static void test_lapic_timer_oneshot(void **state)
{
    struct lapic_fixture *f = *state;
    struct lapic *l = &f->l;
    wr(l, XAPIC_SVR, 0x1ff);
    wr(l, XAPIC_TIMER_DCR, 0xb); /* divide by 1 */
    wr(l, XAPIC_LVT_TIMER, 0xec);
    wr(l, XAPIC_TIMER_INIT, 1000);
    assert_int_equal(rd(l, XAPIC_TIMER_INIT), 1000);
    assert_int_equal(lapic_timer_deadline(l), T0 + 1000);
    f->now = T0 + 400;
    assert_int_equal(rd(l, XAPIC_TIMER_CUR), 600);
    lapic_poll_timer(l, T0 + 999);
    assert_false(irr_has(l, 0xec));
    f->now = T0 + 1000;
    lapic_poll_timer(l, f->now);
    assert_true(irr_has(l, 0xec));
    assert_int_equal(lapic_timer_deadline(l), 0);
    assert_int_equal(rd(l, XAPIC_TIMER_CUR), 0);
    assert_int_equal(lapic_ack(l), 0xec);
    wr(l, XAPIC_EOI, 0);
    /* Divide by 16: 100 counts are 1600 ns. */
    wr(l, XAPIC_TIMER_DCR, 0x3);
    wr(l, XAPIC_TIMER_INIT, 100);
    assert_int_equal(lapic_timer_deadline(l), f->now + 1600);
    f->now += 800;
    assert_int_equal(rd(l, XAPIC_TIMER_CUR), 50);
    /* Writing 0 stops it. */
    wr(l, XAPIC_TIMER_INIT, 0);
    assert_int_equal(lapic_timer_deadline(l), 0);
    /* Masked: counts and expires, but raises nothing. */
    wr(l, XAPIC_LVT_TIMER, 0xec | MASKED);
    wr(l, XAPIC_TIMER_INIT, 10);
    f->now += 1000;
    lapic_poll_timer(l, f->now);
    assert_false(irr_has(l, 0xec));
    assert_int_equal(lapic_timer_deadline(l), 0);
    /* The largest count with the largest divider does not overflow. */
    wr(l, XAPIC_TIMER_DCR, 0xa); /* divide by 128 */
    wr(l, XAPIC_TIMER_INIT, 0xffffffffu);
    assert_int_equal(lapic_timer_deadline(l), f->now + 0xffffffffULL * 128);
    assert_int_equal(rd(l, XAPIC_TIMER_CUR), 0xffffffffu);
}

static void test_lapic_timer_periodic(void **state)
{
    struct lapic_fixture *f = *state;
    struct lapic *l = &f->l;
    wr(l, XAPIC_SVR, 0x1ff);
    wr(l, XAPIC_TIMER_DCR, 0xb);
    wr(l, XAPIC_LVT_TIMER, 0xef | PERIODIC);
    wr(l, XAPIC_TIMER_INIT, 1000000); /* 1 ms */
    assert_int_equal(lapic_timer_deadline(l), T0 + 1000000);
    lapic_poll_timer(l, T0 + 1000000);
    assert_int_equal(lapic_ack(l), 0xef);
    wr(l, XAPIC_EOI, 0);
    assert_int_equal(lapic_timer_deadline(l), T0 + 2000000); /* no drift */
    /* Ten missed periods are coalesced into one interrupt. */
    lapic_poll_timer(l, T0 + 12500000);
    assert_int_equal(lapic_ack(l), 0xef);
    assert_int_equal(lapic_ack(l), -1);
    wr(l, XAPIC_EOI, 0);
    assert_int_equal(lapic_timer_deadline(l), T0 + 13500000);
    /* A tiny count is raised to the minimum period: the host is not spun. */
    f->now = T0 + 20000000;
    wr(l, XAPIC_TIMER_INIT, 1);
    assert_int_equal(lapic_timer_deadline(l), f->now + LAPIC_MIN_PERIOD_NS);
    assert_int_equal(rd(l, XAPIC_TIMER_CUR), 1); /* never above the initial count */
    unsigned fired = 0;
    for (uint64_t t = f->now; t <= f->now + 1000000; t += 1000) {
        lapic_poll_timer(l, t);
        if (lapic_ack(l) == 0xef) {
            fired++;
            wr(l, XAPIC_EOI, 0);
        }
    }
    assert_int_equal(fired, 1000000 / LAPIC_MIN_PERIOD_NS);
    /* A mode change stops the timer. */
    wr(l, XAPIC_LVT_TIMER, 0xef);
    assert_int_equal(lapic_timer_deadline(l), 0);
    assert_int_equal(rd(l, XAPIC_TIMER_INIT), 0);
}

static void test_lapic_tsc_deadline(void **state)
{
    struct lapic_fixture *f = *state;
    struct lapic *l = &f->l;
    wr(l, XAPIC_SVR, 0x1ff);
    /* Ignored outside TSC-deadline mode. */
    lapic_set_tsc_deadline(l, 12345, T0 + 100);
    assert_int_equal(lapic_get_tsc_deadline(l), 0);
    assert_int_equal(lapic_timer_deadline(l), 0);
    wr(l, XAPIC_LVT_TIMER, 0xe0 | TSC_DEADLINE);
    assert_int_equal(rd(l, XAPIC_LVT_TIMER), 0xe0 | TSC_DEADLINE);
    wr(l, XAPIC_TIMER_INIT, 50); /* ignored in this mode */
    assert_int_equal(rd(l, XAPIC_TIMER_INIT), 0);
    assert_int_equal(lapic_timer_deadline(l), 0);
    lapic_set_tsc_deadline(l, 12345, T0 + 100);
    assert_int_equal(lapic_get_tsc_deadline(l), 12345);
    assert_int_equal(lapic_timer_deadline(l), T0 + 100);
    assert_int_equal(rd(l, XAPIC_TIMER_CUR), 0);
    lapic_poll_timer(l, T0 + 100);
    assert_int_equal(lapic_get_tsc_deadline(l), 0); /* cleared when it fires */
    assert_int_equal(lapic_ack(l), 0xe0);
    wr(l, XAPIC_EOI, 0);
    lapic_set_tsc_deadline(l, 999, T0 + 500);
    lapic_set_tsc_deadline(l, 0, 0); /* writing 0 disarms */
    assert_int_equal(lapic_timer_deadline(l), 0);
    lapic_set_tsc_deadline(l, 999, T0 + 500);
    wr(l, XAPIC_LVT_TIMER, 0xe0); /* leaving the mode disarms */
    assert_int_equal(lapic_timer_deadline(l), 0);
    assert_int_equal(lapic_get_tsc_deadline(l), 0);
    /* Mode 3 is reserved: treated as one-shot. */
    wr(l, XAPIC_LVT_TIMER, 0xe0 | (3u << 17));
    assert_int_equal(rd(l, XAPIC_LVT_TIMER), 0xe0);
}

static void test_lapic_x2apic(void **state)
{
    struct lapic_fixture *f = *state;
    struct lapic *l = &f->l;
    uint64_t v = 0;
    assert_false(lapic_msr_read(l, 0x802, &v)); /* xAPIC mode: the MSRs #GP */
    assert_false(lapic_msr_write(l, 0x808, 0));
    const uint64_t x2 = 0xfee00000ULL | (1u << 11) | (1u << 10);
    assert_true(lapic_set_base(l, x2));
    assert_false(lapic_mmio_hit(l, 0xfee00020)); /* no MMIO in x2APIC mode */
    assert_true(lapic_msr_read(l, 0x802, &v));
    assert_int_equal(v, 0);
    assert_true(lapic_msr_read(l, 0x803, &v));
    assert_int_equal(v, 0x00050014);
    assert_true(lapic_msr_read(l, 0x80d, &v));
    assert_int_equal(v, 1);                     /* LDR: cluster 0, bit 0 */
    assert_false(lapic_msr_read(l, 0x80e, &v)); /* no DFR */
    assert_false(lapic_msr_read(l, 0x80b, &v)); /* EOI is write-only */
    assert_false(lapic_msr_read(l, 0x83f, &v)); /* SELF IPI too */
    assert_false(lapic_msr_read(l, 0x801, &v)); /* hole */
    assert_false(lapic_msr_write(l, 0x802, 5)); /* ID read-only */
    assert_false(lapic_msr_write(l, 0x80d, 5)); /* LDR read-only */
    assert_false(lapic_msr_write(l, 0x803, 0));
    assert_true(lapic_msr_write(l, 0x80f, 0x1ff));
    assert_false(lapic_msr_write(l, 0x808, 1ULL << 32)); /* reserved high half */
    assert_true(lapic_msr_write(l, 0x808, 0x20));
    assert_true(lapic_msr_read(l, 0x80a, &v));
    assert_int_equal(v, 0x20);
    assert_true(lapic_msr_write(l, 0x83f, 0x55)); /* SELF IPI */
    assert_true(lapic_msr_read(l, 0x822, &v));
    assert_int_equal(v, 1u << (0x55 - 0x40));
    assert_int_equal(lapic_ack(l), 0x55);
    assert_false(lapic_msr_write(l, 0x80b, 1)); /* EOI must write 0 */
    assert_true(lapic_msr_write(l, 0x80b, 0));
    /* 64-bit ICR: physical destination 0 in the high half, and broadcast. */
    assert_true(lapic_msr_write(l, 0x830, 0x56));
    assert_true(lapic_msr_write(l, 0x830, (0xffffffffULL << 32) | 0x57));
    assert_true(lapic_msr_write(l, 0x830, (1ULL << 32) | 0x58)); /* APIC 1 */
    assert_true(lapic_msr_read(l, 0x830, &v));
    assert_int_equal(v, (1ULL << 32) | 0x58);
    assert_true(lapic_msr_read(l, 0x822, &v));
    assert_int_equal(v, (1u << (0x56 - 0x40)) | (1u << (0x57 - 0x40)));
    /* Timer through MSRs. */
    assert_true(lapic_msr_write(l, 0x83e, 0xb));
    assert_true(lapic_msr_write(l, 0x832, 0xec));
    assert_true(lapic_msr_write(l, 0x838, 300));
    f->now += 100;
    assert_true(lapic_msr_read(l, 0x839, &v));
    assert_int_equal(v, 200);
    assert_false(lapic_msr_write(l, 0x839, 1)); /* current count is read-only */
    /* Leaving x2APIC needs the disabled state first. */
    assert_false(lapic_set_base(l, 0xfee00000ULL | (1u << 11)));
    assert_true(lapic_set_base(l, 0xfee00000ULL));
    assert_true(lapic_set_base(l, 0xfee00000ULL | (1u << 11)));
    assert_false(lapic_msr_read(l, 0x802, &v));
    /* Out of the x2APIC range. */
    assert_true(lapic_set_base(l, x2));
    assert_false(lapic_msr_read(l, 0x7ff, &v));
    assert_false(lapic_msr_read(l, 0x900, &v));
}

/* Every offset and size of the register page and every x2APIC MSR with junk: nothing may
 * crash or trip the sanitizers, and the priority state stays consistent. */
static void test_lapic_hostile(void **state)
{
    struct lapic_fixture *f = *state;
    struct lapic *l = &f->l;
    static const uint64_t junk[] = {0, ~0ULL, 0xa5a5a5a5a5a5a5a5ULL, 0x1ff, 0x10000};
    for (int pass = 0; pass < 2; pass++) {
        for (uint64_t off = 0; off < 0x1010; off++)
            for (unsigned size = 0; size <= 9; size++)
                for (size_t j = 0; j < sizeof(junk) / sizeof(junk[0]); j++) {
                    lapic_mmio_read(l, off, size);
                    lapic_mmio_write(l, off, size, junk[j]);
                    f->now += 7;
                    lapic_poll_timer(l, f->now);
                    while (lapic_ack(l) >= 0)
                        ;
                }
        assert_true(lapic_set_base(l, 0xfee00000ULL | (1u << 11) | (1u << 10)));
        for (uint32_t msr = 0x7f0; msr < 0x910; msr++)
            for (size_t j = 0; j < sizeof(junk) / sizeof(junk[0]); j++) {
                uint64_t v;
                lapic_msr_read(l, msr, &v);
                lapic_msr_write(l, msr, junk[j]);
                f->now += 7;
                lapic_poll_timer(l, f->now);
                while (lapic_ack(l) >= 0)
                    ;
            }
        assert_true(lapic_set_base(l, 0xfee00000ULL));
        assert_true(lapic_set_base(l, 0xfee00000ULL | (1u << 11)));
    }
    /* The timer never runs with a period shorter than the floor in periodic mode. */
    wr(l, XAPIC_SVR, 0x1ff);
    wr(l, XAPIC_LVT_TIMER, 0x40 | PERIODIC);
    wr(l, XAPIC_TIMER_INIT, 1);
    assert_true(lapic_timer_deadline(l) >= f->now + LAPIC_MIN_PERIOD_NS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ioapic_registers, io_setup, io_teardown),
        cmocka_unit_test_setup_teardown(test_ioapic_edge, io_setup, io_teardown),
        cmocka_unit_test_setup_teardown(test_ioapic_irq0_override, io_setup, io_teardown),
        cmocka_unit_test_setup_teardown(test_ioapic_masking, io_setup, io_teardown),
        cmocka_unit_test_setup_teardown(test_ioapic_level_eoi, io_setup, io_teardown),
        cmocka_unit_test_setup_teardown(test_ioapic_hostile_mmio, io_setup, io_teardown),
        cmocka_unit_test(test_ioapic_with_pic),
        cmocka_unit_test(test_ioapic_kvm_registers_nothing),
        cmocka_unit_test_setup_teardown(test_lapic_reset_state, lapic_setup, lapic_teardown),
        cmocka_unit_test_setup_teardown(test_lapic_priority_and_eoi, lapic_setup, lapic_teardown),
        cmocka_unit_test_setup_teardown(test_lapic_level_eoi_broadcast, lapic_setup,
                                        lapic_teardown),
        cmocka_unit_test_setup_teardown(test_lapic_errors_and_destinations, lapic_setup,
                                        lapic_teardown),
        cmocka_unit_test_setup_teardown(test_lapic_icr_self_ipi, lapic_setup, lapic_teardown),
        cmocka_unit_test_setup_teardown(test_lapic_timer_oneshot, lapic_setup, lapic_teardown),
        cmocka_unit_test_setup_teardown(test_lapic_timer_periodic, lapic_setup, lapic_teardown),
        cmocka_unit_test_setup_teardown(test_lapic_tsc_deadline, lapic_setup, lapic_teardown),
        cmocka_unit_test_setup_teardown(test_lapic_x2apic, lapic_setup, lapic_teardown),
        cmocka_unit_test_setup_teardown(test_lapic_hostile, lapic_setup, lapic_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
