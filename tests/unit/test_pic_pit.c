/* Unit tests: the user-space 8259A pair (i8259) and 8254 PIT (i8254), driven through the port
 * bus as a guest would, with a fake clock, fake timers and a recorded INTR pin. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "device_fakes.h"
#include "vm/platform.h"

#include <pthread.h>
#include <stdlib.h>

#define PIC1_CMD 0x20
#define PIC1_DATA 0x21
#define PIC2_CMD 0xa0
#define PIC2_DATA 0xa1
#define ELCR1 0x4d0
#define ELCR2 0x4d1
#define PIT_CH(n) (PORT_PIT_BASE + (n))
#define PIT_CMD (PORT_PIT_BASE + 3)
#define SYSB 0x61

#define OCW3_READ_IRR 0x0a
#define OCW3_READ_ISR 0x0b
#define OCW3_POLL 0x0c
#define OCW2_EOI 0x20
#define OCW2_SPECIFIC_EOI 0x60

#define HZ 1193182ULL
#define MS 1000000ULL

struct fixture {
    struct fake_machine fm;
    void *pic;
    void *pit;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    fake_machine_init(&f->fm);
    fake_machine_enable_irqchip(&f->fm);
    f->pic = fake_create(&f->fm, "i8259");
    f->pit = fake_create(&f->fm, "i8254");
    assert_non_null(f->pic);
    assert_non_null(f->pit);
    assert_non_null(f->fm.route);
    assert_non_null(f->fm.intack);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    fake_destroy("i8254", f->pit);
    fake_destroy("i8259", f->pic);
    assert_null(f->fm.route); /* the PIC unregisters itself */
    assert_null(f->fm.intack);
    fake_machine_destroy(&f->fm);
    free(f);
    return 0;
}

/* --- helpers ------------------------------------------------------------------------------ */

static int ack(struct fake_machine *fm)
{
    return fm->intack(fm->intack_opaque, 0);
}

static void line(struct fake_machine *fm, unsigned irq, int level)
{
    fake_set_irq(fm, irq, level);
}

static void pulse(struct fake_machine *fm, unsigned irq)
{
    line(fm, irq, 1);
    line(fm, irq, 0);
}

static uint8_t read_isr(struct fake_machine *fm, uint16_t cmd)
{
    outb(fm, cmd, OCW3_READ_ISR);
    uint8_t v = inb(fm, cmd);
    outb(fm, cmd, OCW3_READ_IRR);
    return v;
}

static uint8_t read_irr(struct fake_machine *fm, uint16_t cmd)
{
    outb(fm, cmd, OCW3_READ_IRR);
    return inb(fm, cmd);
}

/* Linux's init_8259A(): mask, ICW1 0x11, ICW2 0x20/0x28, ICW3 4/2, ICW4 1 (3 for auto-EOI on
 * the master), then the given masks. */
static void pic_init(struct fake_machine *fm, bool auto_eoi, uint8_t mask1, uint8_t mask2)
{
    outb(fm, PIC1_DATA, 0xff);
    outb(fm, PIC2_DATA, 0xff);
    outb(fm, PIC1_CMD, 0x11);
    outb(fm, PIC1_DATA, 0x20);
    outb(fm, PIC1_DATA, 1 << 2);
    outb(fm, PIC1_DATA, auto_eoi ? 0x03 : 0x01);
    outb(fm, PIC2_CMD, 0x11);
    outb(fm, PIC2_DATA, 0x28);
    outb(fm, PIC2_DATA, 2);
    outb(fm, PIC2_DATA, 0x01);
    outb(fm, PIC1_DATA, mask1);
    outb(fm, PIC2_DATA, mask2);
}

/* First ns at which the PIT has counted `ticks` input clocks since a load at time 0. */
static uint64_t ticks_ns(uint64_t ticks)
{
    return (ticks * 1000000000ULL + HZ - 1) / HZ;
}

static uint64_t ns_ticks(uint64_t ns)
{
    return ns * HZ / 1000000000ULL;
}

static void pit_program(struct fake_machine *fm, unsigned ch, unsigned mode, uint32_t count)
{
    outb(fm, PIT_CMD, (uint8_t)(ch << 6 | 0x30 | mode << 1));
    outb(fm, PIT_CH(ch), (uint8_t)count);
    outb(fm, PIT_CH(ch), (uint8_t)(count >> 8));
}

static uint16_t pit_latch_read(struct fake_machine *fm, unsigned ch)
{
    outb(fm, PIT_CMD, (uint8_t)(ch << 6));
    uint16_t lo = inb(fm, PIT_CH(ch));
    uint16_t hi = inb(fm, PIT_CH(ch));
    return (uint16_t)(lo | hi << 8);
}

static uint8_t pit_status(struct fake_machine *fm, unsigned ch)
{
    outb(fm, PIT_CMD, (uint8_t)(0xe0 | 2u << ch)); /* read-back: status only */
    return inb(fm, PIT_CH(ch));
}

static void advance(struct fake_machine *fm, uint64_t ns)
{
    fm->now_ns += ns;
}

/* --- PIC ---------------------------------------------------------------------------------- */

static void test_pic_init_and_eoi(void **state)
{
    struct fake_machine *fm = &((struct fixture *)*state)->fm;
    pic_init(fm, false, 0x00, 0x00);
    assert_int_equal(inb(fm, PIC1_DATA), 0x00);
    outb(fm, PIC1_DATA, 0xa5);
    assert_int_equal(inb(fm, PIC1_DATA), 0xa5);
    outb(fm, PIC1_DATA, 0x00);
    assert_int_equal(fm->intr_level, 0);

    pulse(fm, 1);
    assert_int_equal(fm->intr_level, 1);
    assert_int_equal(read_irr(fm, PIC1_CMD), 0x02);
    assert_int_equal(ack(fm), 0x21);
    assert_int_equal(fm->intr_level, 0);
    assert_int_equal(read_irr(fm, PIC1_CMD), 0x00);
    assert_int_equal(read_isr(fm, PIC1_CMD), 0x02);
    outb(fm, PIC1_CMD, OCW2_EOI);
    assert_int_equal(read_isr(fm, PIC1_CMD), 0x00);

    /* Specific EOI clears exactly the named level. */
    pulse(fm, 4);
    assert_int_equal(ack(fm), 0x24);
    outb(fm, PIC1_CMD, OCW2_SPECIFIC_EOI | 3);
    assert_int_equal(read_isr(fm, PIC1_CMD), 0x10);
    outb(fm, PIC1_CMD, OCW2_SPECIFIC_EOI | 4);
    assert_int_equal(read_isr(fm, PIC1_CMD), 0x00);

    /* Without ICW4 (ICW1 bit 0 clear) the next data write is OCW1 again after ICW3. */
    outb(fm, PIC1_CMD, 0x10);
    outb(fm, PIC1_DATA, 0x40);
    outb(fm, PIC1_DATA, 0x04);
    outb(fm, PIC1_DATA, 0xfe);
    assert_int_equal(inb(fm, PIC1_DATA), 0xfe);
    pulse(fm, 0);
    assert_int_equal(ack(fm), 0x40);
}

static void test_pic_masking(void **state)
{
    struct fake_machine *fm = &((struct fixture *)*state)->fm;
    pic_init(fm, false, 0xff, 0xff);
    pulse(fm, 3);
    assert_int_equal(fm->intr_level, 0);
    assert_int_equal(read_irr(fm, PIC1_CMD), 0x08); /* latched while masked */
    outb(fm, PIC1_DATA, (uint8_t)~0x08);
    assert_int_equal(fm->intr_level, 1);
    outb(fm, PIC1_DATA, 0xff);
    assert_int_equal(fm->intr_level, 0);
    outb(fm, PIC1_DATA, 0x00);
    assert_int_equal(ack(fm), 0x23);
    outb(fm, PIC1_CMD, OCW2_EOI);
    assert_int_equal(fm->intr_level, 0);
}

static void test_pic_priority(void **state)
{
    struct fake_machine *fm = &((struct fixture *)*state)->fm;
    pic_init(fm, false, 0x00, 0x00);
    pulse(fm, 5);
    pulse(fm, 3);
    assert_int_equal(ack(fm), 0x23);     /* IR0 highest: 3 before 5 */
    assert_int_equal(fm->intr_level, 0); /* 5 waits for 3's EOI */
    pulse(fm, 1);
    assert_int_equal(fm->intr_level, 1); /* but 1 preempts 3 */
    assert_int_equal(ack(fm), 0x21);
    assert_int_equal(read_isr(fm, PIC1_CMD), 0x0a);
    outb(fm, PIC1_CMD, OCW2_EOI); /* non-specific: the highest in service, 1 */
    assert_int_equal(read_isr(fm, PIC1_CMD), 0x08);
    assert_int_equal(fm->intr_level, 0);
    outb(fm, PIC1_CMD, OCW2_EOI);
    assert_int_equal(fm->intr_level, 1);
    assert_int_equal(ack(fm), 0x25);
    outb(fm, PIC1_CMD, OCW2_EOI);

    /* OCW2 set priority: IR4 lowest makes IR5 highest. */
    outb(fm, PIC1_CMD, 0xc4);
    pulse(fm, 3);
    pulse(fm, 6);
    assert_int_equal(ack(fm), 0x26);
    outb(fm, PIC1_CMD, OCW2_EOI);
    assert_int_equal(ack(fm), 0x23);
    outb(fm, PIC1_CMD, OCW2_EOI);
    outb(fm, PIC1_CMD, 0xc7); /* back to fixed priority */

    /* Rotate on non-specific EOI: the serviced level becomes the lowest. */
    pulse(fm, 3);
    assert_int_equal(ack(fm), 0x23);
    outb(fm, PIC1_CMD, 0xa0);
    pulse(fm, 3);
    pulse(fm, 4);
    assert_int_equal(ack(fm), 0x24);
    outb(fm, PIC1_CMD, OCW2_EOI);
    assert_int_equal(ack(fm), 0x23);
    outb(fm, PIC1_CMD, OCW2_EOI);
}

static void test_pic_cascade(void **state)
{
    struct fake_machine *fm = &((struct fixture *)*state)->fm;
    pic_init(fm, false, 0x00, 0x00);
    pulse(fm, 10);
    assert_int_equal(fm->intr_level, 1);
    assert_int_equal(read_irr(fm, PIC1_CMD), 0x04); /* via master IR2 */
    assert_int_equal(read_irr(fm, PIC2_CMD), 0x04);
    assert_int_equal(ack(fm), 0x2a);
    assert_int_equal(fm->intr_level, 0);
    assert_int_equal(read_isr(fm, PIC1_CMD), 0x04);
    assert_int_equal(read_isr(fm, PIC2_CMD), 0x04);
    /* IRQ 12 has lower priority than 10 on the slave: waits. IRQ 1 beats IR2 on the master. */
    pulse(fm, 12);
    assert_int_equal(fm->intr_level, 0);
    pulse(fm, 1);
    assert_int_equal(ack(fm), 0x21);
    outb(fm, PIC1_CMD, OCW2_EOI);
    /* Linux's EOI for a slave IRQ: specific EOI on the slave, then on the master's IR2. */
    outb(fm, PIC2_CMD, OCW2_SPECIFIC_EOI | 2);
    outb(fm, PIC1_CMD, OCW2_SPECIFIC_EOI | 2);
    assert_int_equal(fm->intr_level, 1);
    assert_int_equal(ack(fm), 0x2c);
    outb(fm, PIC2_CMD, OCW2_EOI);
    outb(fm, PIC1_CMD, OCW2_EOI);
    assert_int_equal(read_isr(fm, PIC1_CMD), 0);
    assert_int_equal(read_isr(fm, PIC2_CMD), 0);

    /* Masking IR2 on the master hides the whole slave. */
    outb(fm, PIC1_DATA, 0x04);
    pulse(fm, 9);
    assert_int_equal(fm->intr_level, 0);
    outb(fm, PIC1_DATA, 0x00);
    assert_int_equal(ack(fm), 0x29);

    /* GSI 2 (the cascade) and GSIs above 15 are not PIC inputs. */
    outb(fm, PIC2_CMD, OCW2_EOI);
    outb(fm, PIC1_CMD, OCW2_EOI);
    fm->route(fm->route_opaque, 2, 1);
    fm->route(fm->route_opaque, 16, 1);
    fm->route(fm->route_opaque, 0xffffffffu, 1);
    assert_int_equal(fm->intr_level, 0);
    assert_int_equal(read_irr(fm, PIC1_CMD), 0);
}

static void test_pic_edge_vs_level(void **state)
{
    struct fake_machine *fm = &((struct fixture *)*state)->fm;
    pic_init(fm, false, 0x00, 0x00);

    /* ELCR: IRQ 0, 1, 2, 8, 13 are edge-only. */
    outb(fm, ELCR1, 0xff);
    outb(fm, ELCR2, 0xff);
    assert_int_equal(inb(fm, ELCR1), 0xf8);
    assert_int_equal(inb(fm, ELCR2), 0xde);
    outb(fm, ELCR1, 0x00);
    outb(fm, ELCR2, 0x00);

    /* Edge: a line held high requests once. */
    line(fm, 3, 1);
    assert_int_equal(ack(fm), 0x23);
    outb(fm, PIC1_CMD, OCW2_EOI);
    assert_int_equal(fm->intr_level, 0);
    line(fm, 3, 1); /* no transition */
    assert_int_equal(fm->intr_level, 0);
    line(fm, 3, 0);
    line(fm, 3, 1);
    assert_int_equal(fm->intr_level, 1);
    assert_int_equal(ack(fm), 0x23);
    outb(fm, PIC1_CMD, OCW2_EOI);
    line(fm, 3, 0);

    /* Level (ELCR bit): requests again after EOI while the line stays high. */
    outb(fm, ELCR1, 0x08);
    line(fm, 3, 1);
    assert_int_equal(ack(fm), 0x23);
    assert_int_equal(fm->intr_level, 0);
    outb(fm, PIC1_CMD, OCW2_EOI);
    assert_int_equal(fm->intr_level, 1);
    assert_int_equal(ack(fm), 0x23);
    line(fm, 3, 0); /* the handler quiets the device */
    outb(fm, PIC1_CMD, OCW2_EOI);
    assert_int_equal(fm->intr_level, 0);
    assert_int_equal(read_irr(fm, PIC1_CMD), 0);

    /* Level on the slave (IRQ 11, PCI style) through the cascade. */
    outb(fm, ELCR2, 0x08);
    line(fm, 11, 1);
    assert_int_equal(ack(fm), 0x2b);
    outb(fm, PIC2_CMD, OCW2_EOI);
    outb(fm, PIC1_CMD, OCW2_EOI);
    assert_int_equal(fm->intr_level, 1);
    line(fm, 11, 0);
    assert_int_equal(fm->intr_level, 0);
}

static void test_pic_spurious(void **state)
{
    struct fake_machine *fm = &((struct fixture *)*state)->fm;
    pic_init(fm, false, 0x00, 0x00);
    outb(fm, ELCR1, 0x08);
    line(fm, 3, 1);
    assert_int_equal(fm->intr_level, 1);
    line(fm, 3, 0); /* request vanished before the CPU acknowledged */
    assert_int_equal(fm->intr_level, 0);
    assert_int_equal(ack(fm), 0x27);
    assert_int_equal(read_isr(fm, PIC1_CMD), 0); /* spurious: IR7 not in service */

    /* Masked between INTR and the acknowledge: same. */
    pulse(fm, 4);
    outb(fm, PIC1_DATA, 0x10);
    assert_int_equal(ack(fm), 0x27);
    assert_int_equal(read_isr(fm, PIC1_CMD), 0);

    /* Only vCPU 0 is wired to the PIC. */
    outb(fm, PIC1_DATA, 0x00);
    assert_int_equal(fm->intack(fm->intack_opaque, 1), -1);
    assert_int_equal(ack(fm), 0x24);
}

static void test_pic_auto_eoi(void **state)
{
    struct fake_machine *fm = &((struct fixture *)*state)->fm;
    pic_init(fm, true, 0x00, 0x00);
    pulse(fm, 1);
    assert_int_equal(ack(fm), 0x21);
    assert_int_equal(read_isr(fm, PIC1_CMD), 0);
    assert_int_equal(fm->intr_level, 0);
    pulse(fm, 1); /* no EOI needed before the next one */
    assert_int_equal(fm->intr_level, 1);
    assert_int_equal(ack(fm), 0x21);
    /* A lower priority request is not blocked either. */
    pulse(fm, 6);
    assert_int_equal(ack(fm), 0x26);
    assert_int_equal(fm->intr_level, 0);
}

static void test_pic_ocw3(void **state)
{
    struct fake_machine *fm = &((struct fixture *)*state)->fm;
    pic_init(fm, false, 0x00, 0x00);
    pulse(fm, 5);
    pulse(fm, 6);
    assert_int_equal(read_irr(fm, PIC1_CMD), 0x60);
    assert_int_equal(ack(fm), 0x25);
    outb(fm, PIC1_CMD, OCW3_READ_ISR);
    assert_int_equal(inb(fm, PIC1_CMD), 0x20);
    assert_int_equal(inb(fm, PIC1_CMD), 0x20); /* the selection sticks */
    outb(fm, PIC1_CMD, 0x08);                  /* OCW3 without RR: selection unchanged */
    assert_int_equal(inb(fm, PIC1_CMD), 0x20);
    outb(fm, PIC1_CMD, OCW3_READ_IRR);
    assert_int_equal(inb(fm, PIC1_CMD), 0x40);
    outb(fm, PIC1_CMD, OCW2_EOI);

    /* Poll: the next read returns 0x80 | IR and acknowledges it. */
    outb(fm, PIC1_CMD, OCW3_POLL);
    assert_int_equal(inb(fm, PIC1_CMD), 0x86);
    assert_int_equal(read_isr(fm, PIC1_CMD), 0x40);
    outb(fm, PIC1_CMD, OCW2_EOI);
    outb(fm, PIC1_CMD, OCW3_POLL);
    assert_int_equal(inb(fm, PIC1_DATA), 0x00); /* nothing pending; either port */
    assert_int_equal(inb(fm, PIC1_DATA), 0x00); /* IMR again */

    /* Special mask mode: a masked in-service level no longer blocks lower ones. */
    pulse(fm, 3);
    assert_int_equal(ack(fm), 0x23);
    pulse(fm, 5);
    assert_int_equal(fm->intr_level, 0);
    outb(fm, PIC1_DATA, 0x08);
    outb(fm, PIC1_CMD, 0x68); /* ESMM | SMM */
    assert_int_equal(fm->intr_level, 1);
    assert_int_equal(ack(fm), 0x25);
    outb(fm, PIC1_CMD, 0x48); /* ESMM, reset SMM */
    outb(fm, PIC1_CMD, OCW2_SPECIFIC_EOI | 5);
    outb(fm, PIC1_CMD, OCW2_SPECIFIC_EOI | 3);
    assert_int_equal(read_isr(fm, PIC1_CMD), 0);
}

static void test_pic_intr_transitions(void **state)
{
    struct fake_machine *fm = &((struct fixture *)*state)->fm;
    pic_init(fm, false, 0x00, 0x00);
    unsigned calls = fm->intr_calls;
    pulse(fm, 3);
    assert_int_equal(fm->intr_calls, calls + 1);
    pulse(fm, 4); /* already asserted: no new call */
    pulse(fm, 3);
    assert_int_equal(fm->intr_calls, calls + 1);
    assert_int_equal(ack(fm), 0x23);
    assert_int_equal(fm->intr_calls, calls + 2);
    assert_int_equal(fm->intr_level, 0);
    outb(fm, PIC1_CMD, OCW2_EOI);
    assert_int_equal(fm->intr_calls, calls + 3);
    assert_int_equal(fm->intr_level, 1);
    assert_int_equal(ack(fm), 0x24);
    outb(fm, PIC1_CMD, OCW2_EOI);
    assert_int_equal(fm->intr_level, 0);
    assert_int_equal(fm->intr_calls, calls + 4);
}

/* set_irq from another thread while the "vCPU" acknowledges: no lost lock, no crash. */
struct storm {
    struct fake_machine *fm;
    unsigned rounds;
};

static void *irq_storm(void *opaque)
{
    struct storm *s = opaque;
    for (unsigned i = 0; i < s->rounds; i++) {
        s->fm->route(s->fm->route_opaque, 3 + (i & 1) * 8, 1);
        s->fm->route(s->fm->route_opaque, 3 + (i & 1) * 8, 0);
    }
    return NULL;
}

static void test_pic_threads(void **state)
{
    struct fake_machine *fm = &((struct fixture *)*state)->fm;
    pic_init(fm, false, 0x00, 0x00);
    struct storm s = {fm, 20000};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, irq_storm, &s), 0);
    for (unsigned i = 0; i < 20000; i++) {
        int v = ack(fm);
        assert_true(v == 0x23 || v == 0x2b || v == 0x27 || v == 0x22 || v == 0x2f);
        outb(fm, PIC2_CMD, OCW2_EOI);
        outb(fm, PIC1_CMD, OCW2_EOI);
    }
    pthread_join(t, NULL);
}

/* --- PIT ---------------------------------------------------------------------------------- */

static void test_pit_mode2_periodic(void **state)
{
    struct fake_machine *fm = &((struct fixture *)*state)->fm;
    pic_init(fm, false, 0xfe, 0xff);
    assert_int_equal(fake_next_deadline(fm), 0); /* idle until programmed */
    uint64_t start = fm->now_ns;
    pit_program(fm, 0, 2, 1193); /* ~1 kHz, as Linux's periodic PIT at HZ=1000 */
    uint64_t prev = start;
    for (unsigned k = 1; k <= 20; k++) {
        uint64_t deadline = fake_next_deadline(fm);
        assert_int_equal(deadline, start + ticks_ns(k * 1193ULL));
        assert_true(deadline - prev >= 999000 && deadline - prev <= 1000000); /* 1 ms steps */
        prev = deadline;
        fm->now_ns = deadline - 1;
        assert_int_equal(fake_run_timers(fm), 0);
        assert_int_equal(fm->intr_level, 0);
        fm->now_ns = deadline;
        assert_int_equal(fake_run_timers(fm), 1);
        assert_int_equal(fm->irq_calls[IRQ_PIT], 2 * k); /* one 1-then-0 pulse */
        assert_int_equal(fm->irq_level[IRQ_PIT], 0);
        assert_int_equal(fm->intr_level, 1);
        assert_int_equal(ack(fm), 0x20);
        outb(fm, PIC1_CMD, OCW2_EOI);
    }
    /* A control word stops the counter until the next count. */
    outb(fm, PIT_CMD, 0x34);
    assert_int_equal(fake_next_deadline(fm), 0);
}

static void test_pit_mode0_oneshot(void **state)
{
    struct fake_machine *fm = &((struct fixture *)*state)->fm;
    pic_init(fm, false, 0xfe, 0xff);
    uint64_t start = fm->now_ns;
    outb(fm, PIT_CMD, 0x30);
    assert_int_equal(pit_status(fm, 0), 0x70); /* OUT low, null count, lohi, mode 0 */
    outb(fm, PIT_CH(0), 1000 & 0xff);
    outb(fm, PIT_CH(0), 1000 >> 8);
    assert_int_equal(pit_status(fm, 0), 0x30);
    assert_int_equal(fake_next_deadline(fm), start + ticks_ns(1000));
    fm->now_ns = start + ticks_ns(500);
    assert_int_equal(pit_latch_read(fm, 0), 500);
    fm->now_ns = start + ticks_ns(1000);
    assert_int_equal(fake_run_timers(fm), 1);
    assert_int_equal(fm->irq_calls[IRQ_PIT], 2);
    assert_int_equal(ack(fm), 0x20);
    outb(fm, PIC1_CMD, OCW2_EOI);
    assert_int_equal(fake_next_deadline(fm), 0); /* one shot */
    assert_int_equal(pit_status(fm, 0), 0xb0);   /* OUT high */
    assert_int_equal(pit_latch_read(fm, 0), 0);
    fm->now_ns = start + ticks_ns(1001);
    assert_int_equal(pit_latch_read(fm, 0), 0xffff); /* keeps counting, wrapped */
    advance(fm, 10 * MS);
    assert_int_equal(fake_run_timers(fm), 0);
    assert_int_equal(fm->irq_calls[IRQ_PIT], 2);
}

static void test_pit_mode4_oneshot(void **state)
{
    struct fake_machine *fm = &((struct fixture *)*state)->fm;
    uint64_t start = fm->now_ns;
    outb(fm, PIT_CMD, 0x38); /* Linux's one-shot clockevent */
    outb(fm, PIT_CH(0), 11932 & 0xff);
    outb(fm, PIT_CH(0), 11932 >> 8);
    uint64_t deadline = fake_next_deadline(fm);
    assert_int_equal(deadline, start + ticks_ns(11933)); /* OUT rises one clock after TC */
    fm->now_ns = start + ticks_ns(11932);
    assert_int_equal(pit_status(fm, 0) & 0x80, 0); /* the strobe */
    fm->now_ns = deadline;
    assert_int_equal(fake_run_timers(fm), 1);
    assert_int_equal(fm->irq_calls[IRQ_PIT], 2);
    assert_int_equal(pit_status(fm, 0) & 0x80, 0x80);
    assert_int_equal(fake_next_deadline(fm), 0);
}

static void test_pit_counter_reads(void **state)
{
    struct fake_machine *fm = &((struct fixture *)*state)->fm;
    uint64_t start = fm->now_ns;
    pit_program(fm, 0, 2, 0); /* 0 = 65536 */
    assert_int_equal(fake_next_deadline(fm), start + ticks_ns(65536));
    uint16_t last = 0;
    for (unsigned i = 0; i <= 50; i++) {
        fm->now_ns = start + i * MS;
        uint16_t v = pit_latch_read(fm, 0);
        assert_int_equal(v, (uint16_t)(65536 - ns_ticks(i * MS)));
        if (i >= 2) /* (at i = 0 the full 65536 reads as 0) */
            assert_true(v < last);
        last = v;
    }
    /* After the first period the rate generator reloads. */
    fm->now_ns = start + ticks_ns(65536 + 100);
    assert_int_equal(pit_latch_read(fm, 0), 65536 - 100);

    /* Unlatched LSB/MSB reads through the flip-flop (Linux's quick PIT calibration). */
    fm->now_ns = start + ticks_ns(65536 + 0x1234);
    assert_int_equal(inb(fm, PIT_CH(0)), (65536 - 0x1234) & 0xff);
    assert_int_equal(inb(fm, PIT_CH(0)), (65536 - 0x1234) >> 8);

    /* LSB-only access mode. */
    outb(fm, PIT_CMD, 0x14);
    start = fm->now_ns;
    outb(fm, PIT_CH(0), 100);
    fm->now_ns = start + ticks_ns(30);
    assert_int_equal(inb(fm, PIT_CH(0)), 70);
    assert_int_equal(inb(fm, PIT_CH(0)), 70);
    /* MSB-only. */
    outb(fm, PIT_CMD, 0x24);
    start = fm->now_ns;
    outb(fm, PIT_CH(0), 0x10);
    assert_int_equal(fake_next_deadline(fm), start + ticks_ns(0x1000));
    assert_int_equal(inb(fm, PIT_CH(0)), 0x10);
}

static void test_pit_latch(void **state)
{
    struct fake_machine *fm = &((struct fixture *)*state)->fm;
    uint64_t start = fm->now_ns;
    pit_program(fm, 0, 2, 50000);
    fm->now_ns = start + ticks_ns(1000);
    outb(fm, PIT_CMD, 0x00); /* counter latch */
    fm->now_ns = start + ticks_ns(3000);
    outb(fm, PIT_CMD, 0x00); /* ignored: the first latch has not been read */
    assert_int_equal(inb(fm, PIT_CH(0)), 49000 & 0xff);
    advance(fm, 1 * MS);
    assert_int_equal(inb(fm, PIT_CH(0)), 49000 >> 8);
    assert_int_equal(pit_latch_read(fm, 0), 50000 - ns_ticks(fm->now_ns - start));

    /* Read-back: count and status of channel 0; status comes first. */
    fm->now_ns = start + ticks_ns(7000);
    outb(fm, PIT_CMD, 0xc2);
    advance(fm, 5 * MS);
    assert_int_equal(inb(fm, PIT_CH(0)), 0xb4); /* OUT high, lohi, mode 2 */
    assert_int_equal(inb(fm, PIT_CH(0)), 43000 & 0xff);
    assert_int_equal(inb(fm, PIT_CH(0)), 43000 >> 8);
    /* Read-back of count only for channels 0 and 2 at once. */
    pit_program(fm, 2, 0, 0x4321);
    outb(fm, PIT_CMD, 0xda);
    assert_int_equal(inb(fm, PIT_CH(2)), 0x21);
    assert_int_equal(inb(fm, PIT_CH(2)), 0x43); /* gate 2 low: not counting */
    assert_int_equal(inb(fm, PIT_CH(0)), (uint8_t)(50000 - ns_ticks(fm->now_ns - start)));
}

static void test_pit_channel2_gate(void **state)
{
    struct fake_machine *fm = &((struct fixture *)*state)->fm;
    assert_int_equal(inb(fm, SYSB) & 0x2f, 0x00);
    /* Linux's pit_calibrate_tsc(): gate high, speaker off, mode 0, 50 ms. */
    outb(fm, SYSB, (uint8_t)((inb(fm, SYSB) & ~0x02) | 0x01));
    assert_int_equal(inb(fm, SYSB) & 0x0f, 0x01);
    uint32_t latch = (uint32_t)(HZ / 20);
    uint64_t start = fm->now_ns;
    pit_program(fm, 2, 0, latch);
    fm->now_ns = start + 49 * MS;
    assert_int_equal(inb(fm, SYSB) & 0x20, 0);
    fm->now_ns = start + ticks_ns(latch);
    assert_int_equal(inb(fm, SYSB) & 0x20, 0x20);
    assert_int_equal(fm->irq_calls[IRQ_PIT], 0); /* channel 2 has no interrupt */

    /* Gate low pauses mode 0. */
    start = fm->now_ns;
    pit_program(fm, 2, 0, 10000);
    fm->now_ns = start + ticks_ns(4000);
    outb(fm, SYSB, 0x00);
    advance(fm, 1000 * MS);
    assert_int_equal(pit_latch_read(fm, 2), 6000);
    assert_int_equal(inb(fm, SYSB) & 0x20, 0);
    uint64_t resume = fm->now_ns;
    outb(fm, SYSB, 0x01);
    fm->now_ns = resume + ticks_ns(5999);
    assert_int_equal(inb(fm, SYSB) & 0x20, 0);
    fm->now_ns = resume + ticks_ns(6000);
    assert_int_equal(inb(fm, SYSB) & 0x20, 0x20);

    /* Mode 3 square wave: OUT high for the first half, count steps by two. */
    start = fm->now_ns;
    pit_program(fm, 2, 3, 1000);
    fm->now_ns = start + ticks_ns(100);
    assert_int_equal(pit_latch_read(fm, 2), 800);
    assert_int_equal(inb(fm, SYSB) & 0x20, 0x20);
    fm->now_ns = start + ticks_ns(600);
    assert_int_equal(inb(fm, SYSB) & 0x20, 0);
    fm->now_ns = start + ticks_ns(1100);
    assert_int_equal(inb(fm, SYSB) & 0x20, 0x20);
    /* Gate low in mode 3 forces OUT high; the rising edge restarts the count. */
    fm->now_ns = start + ticks_ns(1600);
    assert_int_equal(inb(fm, SYSB) & 0x20, 0);
    outb(fm, SYSB, 0x00);
    assert_int_equal(inb(fm, SYSB) & 0x20, 0x20);
    advance(fm, 3 * MS);
    outb(fm, SYSB, 0x01);
    assert_int_equal(pit_latch_read(fm, 2), 1000);

    /* Status of channel 2 shows the gate-forced OUT. */
    outb(fm, SYSB, 0x00);
    assert_int_equal(pit_status(fm, 2), 0xb6);
}

static void test_pit_coalesces(void **state)
{
    struct fake_machine *fm = &((struct fixture *)*state)->fm;
    pic_init(fm, false, 0xfe, 0xff);
    pit_program(fm, 0, 2, 1193);
    advance(fm, 10000 * MS); /* the host stalled for 10 s: 10000 periods missed */
    assert_int_equal(fake_run_timers(fm), 1);
    assert_int_equal(fm->irq_calls[IRQ_PIT], 2); /* one interrupt, not a storm */
    uint64_t next = fake_next_deadline(fm);
    assert_true(next > fm->now_ns && next <= fm->now_ns + MS);
    assert_int_equal(fake_run_timers(fm), 0);
    assert_int_equal(ack(fm), 0x20);
    outb(fm, PIC1_CMD, OCW2_EOI);
    fm->now_ns = next;
    assert_int_equal(fake_run_timers(fm), 1);
    assert_int_equal(fm->irq_calls[IRQ_PIT], 4);
}

static void test_pit_rate_floor(void **state)
{
    struct fake_machine *fm = &((struct fixture *)*state)->fm;
    pit_program(fm, 0, 2, 2); /* 596 kHz requested */
    for (unsigned i = 0; i < 10000; i++) {
        advance(fm, 1000);
        fake_run_timers(fm);
        uint64_t next = fake_next_deadline(fm);
        assert_true(next > fm->now_ns);
    }
    /* 10 ms at >= 100 us spacing. */
    unsigned pulses = fm->irq_calls[IRQ_PIT] / 2;
    assert_true(pulses >= 50 && pulses <= 101);
    /* The counter itself still runs at the programmed rate. */
    uint16_t v = pit_latch_read(fm, 0);
    assert_true(v == 1 || v == 2);
}

static void test_pit_reload_zero(void **state)
{
    struct fake_machine *fm = &((struct fixture *)*state)->fm;
    uint64_t start = fm->now_ns;
    pit_program(fm, 0, 3, 0);
    assert_int_equal(fake_next_deadline(fm), start + ticks_ns(65536));
    assert_int_equal(pit_latch_read(fm, 0), 0); /* 65536 reads as 0 */
    fm->now_ns = start + ticks_ns(1);
    assert_int_equal(pit_latch_read(fm, 0), 65534);
    fm->now_ns = start + ticks_ns(65536);
    assert_int_equal(fake_run_timers(fm), 1);
    assert_int_equal(fake_next_deadline(fm), start + ticks_ns(2 * 65536));
}

/* Every port, every size, junk values, with time moving and timers firing. */
static void test_hostile_accesses(void **state)
{
    struct fake_machine *fm = &((struct fixture *)*state)->fm;
    fake_hammer_ports(fm);
    static const uint16_t ports[] = {PIC1_CMD,  PIC1_DATA, PIC2_CMD,  PIC2_DATA, ELCR1, ELCR2,
                                     PIT_CH(0), PIT_CH(1), PIT_CH(2), PIT_CMD,   SYSB};
    static const unsigned sizes[] = {1, 2, 4};
    uint64_t rng = 0x9e3779b97f4a7c15ULL;
    for (unsigned i = 0; i < 200000; i++) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        uint16_t port = ports[rng % (sizeof(ports) / sizeof(ports[0]))];
        unsigned size = sizes[(rng >> 8) % 3];
        uint64_t v = rng >> 16;
        switch ((rng >> 40) % 8) {
        case 0:
            pio_in(fm, port, size);
            break;
        case 1:
            fm->route(fm->route_opaque, (uint32_t)(rng >> 20) % 24, (int)(rng >> 50) & 1);
            break;
        case 2: {
            int vec = ack(fm);
            assert_true(vec >= 0 && vec <= 0xff);
            break;
        }
        case 3:
            advance(fm, (rng >> 24) & ((1ULL << ((rng >> 56) % 36)) - 1));
            fake_run_timers(fm);
            assert_true(fake_next_deadline(fm) == 0 || fake_next_deadline(fm) > fm->now_ns);
            break;
        default:
            bus_write(&fm->pio, port, size, v);
            break;
        }
    }
    /* A guest that programmed nonsense can still be reinitialised and work. */
    pic_init(fm, false, 0x00, 0x00);
    outb(fm, ELCR1, 0);
    outb(fm, ELCR2, 0);
    for (unsigned i = 0; i < 32; i++) {
        ack(fm);
        outb(fm, PIC2_CMD, OCW2_EOI);
        outb(fm, PIC1_CMD, OCW2_EOI);
    }
    for (unsigned irq = 0; irq < 16; irq++)
        line(fm, irq, 0);
    pic_init(fm, false, 0xfe, 0xff);
    unsigned before = fm->irq_calls[IRQ_PIT];
    pit_program(fm, 0, 2, 1193);
    fm->now_ns = fake_next_deadline(fm);
    assert_int_equal(fake_run_timers(fm), 1);
    assert_int_equal(fm->irq_calls[IRQ_PIT], before + 2);
    assert_int_equal(ack(fm), 0x20);
}

/* With KVM (in-kernel irqchip) neither model exists. */
static void test_kvm_registers_nothing(void **state)
{
    (void)state;
    struct fake_machine fm;
    fake_machine_init(&fm);
    fake_machine_enable_irqchip(&fm);
    fm.host.user_irqchip = false;
    void *pic = fake_create(&fm, "i8259");
    void *pit = fake_create(&fm, "i8254");
    assert_null(pic);
    assert_null(pit);
    assert_int_equal(fm.pio.nr, 0);
    assert_null(fm.route);
    assert_null(fm.intack);
    assert_int_equal(fm.nr_timers, 0);
    fake_destroy("i8254", pit);
    fake_destroy("i8259", pic);
    fake_machine_destroy(&fm);
}

/* Every registered model together in the translator configuration: no port conflicts (0x61
 * included), and the hammer does not break any of them. */
static void test_all_models_user_irqchip(void **state)
{
    (void)state;
    struct fake_machine fm;
    fake_machine_init(&fm);
    fake_machine_enable_irqchip(&fm);
    void **states = fake_create_default_models(&fm);
    assert_true(bus_find(&fm.pio, SYSB, 1, NULL));
    fake_hammer_ports(&fm);
    fake_destroy_models(states);
    fake_machine_destroy(&fm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pic_init_and_eoi, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pic_masking, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pic_priority, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pic_cascade, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pic_edge_vs_level, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pic_spurious, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pic_auto_eoi, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pic_ocw3, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pic_intr_transitions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pic_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pit_mode2_periodic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pit_mode0_oneshot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pit_mode4_oneshot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pit_counter_reads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pit_latch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pit_channel2_gate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pit_coalesces, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pit_rate_floor, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pit_reload_zero, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_accesses, setup, teardown),
        cmocka_unit_test(test_kvm_registers_nothing),
        cmocka_unit_test(test_all_models_user_irqchip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
