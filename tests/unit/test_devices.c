/* Unit tests: CMOS RTC, i8042, debug-exit, POST port and ACPI PM models, through the port bus. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "device_fakes.h"
#include "vm/platform.h"

#include <stdlib.h>
#include <time.h>

#define CMOS_INDEX PORT_CMOS_BASE
#define CMOS_DATA (PORT_CMOS_BASE + 1)

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

struct fixture {
    struct fake_machine fm;
    const char *name;
    void *dev;
};

static int setup_named(void **state, const char *name)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    fake_machine_init(&f->fm);
    f->name = name;
    f->dev = fake_create(&f->fm, name);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    fake_destroy(f->name, f->dev);
    fake_machine_destroy(&f->fm);
    free(f);
    return 0;
}

static int setup_cmos(void **state)
{
    return setup_named(state, "cmos_rtc");
}

static int setup_i8042(void **state)
{
    return setup_named(state, "i8042");
}

static int setup_debug_exit(void **state)
{
    return setup_named(state, "debug_exit");
}

static int setup_port80(void **state)
{
    return setup_named(state, "port80");
}

static int setup_acpi_pm(void **state)
{
    return setup_named(state, "acpi_pm");
}

/* --- CMOS RTC --------------------------------------------------------------------------------- */

static uint8_t cmos_get(struct fake_machine *fm, uint8_t reg)
{
    outb(fm, CMOS_INDEX, reg);
    return inb(fm, CMOS_DATA);
}

static void cmos_set(struct fake_machine *fm, uint8_t reg, uint8_t value)
{
    outb(fm, CMOS_INDEX, reg);
    outb(fm, CMOS_DATA, value);
}

/* The fake clock says 2024-02-29 13:45:10 UTC; a few seconds may pass while the test runs. */
static void test_rtc_bcd_time(void **state)
{
    struct fixture *f = *state;
    struct fake_machine *fm = &f->fm;
    assert_int_equal(cmos_get(fm, 0x0b), 0x02); /* 24h, BCD */
    uint8_t sec = cmos_get(fm, 0x00);
    assert_true(sec >= 0x10 && sec <= 0x15);
    assert_int_equal(cmos_get(fm, 0x02), 0x45);
    assert_int_equal(cmos_get(fm, 0x04), 0x13);
    assert_int_equal(cmos_get(fm, 0x06), 5); /* Thursday, 1 = Sunday */
    assert_int_equal(cmos_get(fm, 0x07), 0x29);
    assert_int_equal(cmos_get(fm, 0x08), 0x02);
    assert_int_equal(cmos_get(fm, 0x09), 0x24);
    assert_int_equal(cmos_get(fm, 0x32), 0x20);
    assert_int_equal(cmos_get(fm, 0x0a) & 0x80, 0); /* never "update in progress" */
    assert_int_equal(cmos_get(fm, 0x0d), 0x80);     /* valid RAM and time */

    /* 12-hour mode: 13h is 1 PM. */
    cmos_set(fm, 0x0b, 0x00);
    assert_int_equal(cmos_get(fm, 0x04), 0x81);
}

static void test_rtc_binary_time(void **state)
{
    struct fixture *f = *state;
    struct fake_machine *fm = &f->fm;
    cmos_set(fm, 0x0b, 0x06); /* binary, 24h */
    uint8_t sec = cmos_get(fm, 0x00);
    assert_true(sec >= 10 && sec <= 15);
    assert_int_equal(cmos_get(fm, 0x02), 45);
    assert_int_equal(cmos_get(fm, 0x04), 13);
    assert_int_equal(cmos_get(fm, 0x07), 29);
    assert_int_equal(cmos_get(fm, 0x08), 2);
    assert_int_equal(cmos_get(fm, 0x09), 24);
    assert_int_equal(cmos_get(fm, 0x32), 20);
    cmos_set(fm, 0x0b, 0x04); /* binary, 12h */
    assert_int_equal(cmos_get(fm, 0x04), 0x81);
}

static void test_rtc_guest_sets_time(void **state)
{
    struct fixture *f = *state;
    struct fake_machine *fm = &f->fm;
    cmos_set(fm, 0x0b, 0x82); /* SET: clock frozen while the guest writes it */
    cmos_set(fm, 0x00, 0x30);
    cmos_set(fm, 0x02, 0x59);
    cmos_set(fm, 0x04, 0x23);
    cmos_set(fm, 0x07, 0x31);
    cmos_set(fm, 0x08, 0x12);
    cmos_set(fm, 0x09, 0x99);
    cmos_set(fm, 0x32, 0x19);
    assert_int_equal(cmos_get(fm, 0x00), 0x30);
    assert_int_equal(cmos_get(fm, 0x09), 0x99);
    assert_int_equal(cmos_get(fm, 0x06), 6); /* 1999-12-31 was a Friday */
    cmos_set(fm, 0x0b, 0x02);                /* run again from the guest's time */
    assert_int_equal(cmos_get(fm, 0x09), 0x99);
    assert_int_equal(cmos_get(fm, 0x32), 0x19);
    assert_int_equal(cmos_get(fm, 0x04), 0x23);
    uint8_t sec = cmos_get(fm, 0x00);
    assert_true(sec >= 0x30 && sec <= 0x35);

    /* Writing one field of the running clock keeps the others. */
    cmos_set(fm, 0x09, 0x05);
    assert_int_equal(cmos_get(fm, 0x09), 0x05);
    assert_int_equal(cmos_get(fm, 0x32), 0x19);
    /* Garbage (invalid BCD, out of range) is clamped, never trusted. */
    cmos_set(fm, 0x08, 0xff);
    assert_int_equal(cmos_get(fm, 0x08), 0x12);
    cmos_set(fm, 0x0b, 0x80);
    cmos_set(fm, 0x04, 0xff);
    cmos_set(fm, 0x0b, 0x00);
    uint8_t hour = cmos_get(fm, 0x04);
    assert_true((hour & 0x7f) >= 1 && (hour & 0x7f) <= 0x12);
}

static void test_rtc_register_c_and_nmi_mask(void **state)
{
    struct fixture *f = *state;
    struct fake_machine *fm = &f->fm;
    /* Bit 7 of the index is the NMI mask, not part of the register number. */
    outb(fm, CMOS_INDEX, 0x80 | 0x0b);
    assert_int_equal(inb(fm, CMOS_DATA), 0x02);
    outb(fm, CMOS_INDEX, 0x80 | 0x40);
    outb(fm, CMOS_DATA, 0x77);
    assert_int_equal(cmos_get(fm, 0x40), 0x77);
    outb(fm, CMOS_INDEX, 0xff);
    outb(fm, CMOS_DATA, 0x66);
    assert_int_equal(cmos_get(fm, 0x7f), 0x66);

    /* Periodic flag after a period, with IRQF when enabled; the read clears it. */
    cmos_set(fm, 0x0a, 0x26); /* 1024 Hz */
    cmos_set(fm, 0x0b, 0x42); /* PIE */
    cmos_get(fm, 0x0c);
    sleep_ms(5);
    uint8_t c = cmos_get(fm, 0x0c);
    assert_int_equal(c & 0xc0, 0xc0);
    cmos_set(fm, 0x0a, 0x20); /* periodic off */
    c = cmos_get(fm, 0x0c);
    assert_int_equal(c & (uint8_t)~0x10, 0); /* only an update could have happened */
    /* Register C and D are read-only. */
    cmos_set(fm, 0x0c, 0xff);
    cmos_set(fm, 0x0d, 0x00);
    assert_int_equal(cmos_get(fm, 0x0d), 0x80);
    /* The UIP bit cannot be written. */
    cmos_set(fm, 0x0a, 0xa6);
    assert_int_equal(cmos_get(fm, 0x0a), 0x26);
}

static void test_rtc_memory_sizes(void **state)
{
    struct fixture *f = *state;
    struct fake_machine *fm = &f->fm; /* 256 MiB below 4G, 2 GiB above */
    assert_int_equal(cmos_get(fm, 0x15) | cmos_get(fm, 0x16) << 8, 640);
    assert_int_equal(cmos_get(fm, 0x17) | cmos_get(fm, 0x18) << 8, 0xffff); /* capped */
    assert_int_equal(cmos_get(fm, 0x30) | cmos_get(fm, 0x31) << 8, 0xffff);
    assert_int_equal(cmos_get(fm, 0x34) | cmos_get(fm, 0x35) << 8, (256 - 16) * 16);
    assert_int_equal(cmos_get(fm, 0x5b) | cmos_get(fm, 0x5c) << 8 | cmos_get(fm, 0x5d) << 16,
                     (2ULL << 30) / 65536);

    /* A small machine: 8 MiB. */
    struct fake_machine small;
    fake_machine_init(&small);
    small.host.ram_below_4g = 8ULL << 20;
    small.host.ram_above_4g = 0;
    void *dev = fake_create(&small, "cmos_rtc");
    assert_int_equal(cmos_get(&small, 0x17) | cmos_get(&small, 0x18) << 8, 7 * 1024);
    assert_int_equal(cmos_get(&small, 0x34) | cmos_get(&small, 0x35) << 8, 0);
    assert_int_equal(cmos_get(&small, 0x5b) | cmos_get(&small, 0x5c) | cmos_get(&small, 0x5d), 0);
    fake_destroy("cmos_rtc", dev);
    fake_machine_destroy(&small);
}

static void test_rtc_wide_access_and_hostile(void **state)
{
    struct fixture *f = *state;
    struct fake_machine *fm = &f->fm;
    /* out 0x70, ax: index in AL, data in AH. */
    bus_write(&fm->pio, CMOS_INDEX, 2, 0x5540);
    assert_int_equal(cmos_get(fm, 0x40), 0x55);
    fake_hammer_ports(fm);
    assert_int_equal(fm->stops, 0);
}

/* --- i8042 ------------------------------------------------------------------------------------ */

static uint8_t kbc_command(struct fake_machine *fm, uint8_t cmd)
{
    outb(fm, PORT_I8042_CMD, cmd);
    assert_int_equal(inb(fm, PORT_I8042_CMD) & 0x01, 0x01);
    return inb(fm, PORT_I8042_DATA);
}

static void test_i8042_probe_sequence(void **state)
{
    struct fixture *f = *state;
    struct fake_machine *fm = &f->fm;
    assert_int_equal(inb(fm, PORT_I8042_CMD) & 0x03, 0);    /* nothing pending, input empty */
    assert_int_equal(inb(fm, PORT_I8042_CMD) & 0x04, 0x04); /* system flag */
    assert_int_equal(kbc_command(fm, 0xaa), 0x55);
    assert_int_equal(kbc_command(fm, 0xab), 0x00);
    assert_int_equal(kbc_command(fm, 0xa9), 0x00);
    assert_int_equal(inb(fm, PORT_I8042_CMD) & 0x01, 0);

    /* Command byte round trip; interrupts off while we poke. */
    outb(fm, PORT_I8042_CMD, 0x60);
    outb(fm, PORT_I8042_DATA, 0x44);
    assert_int_equal(kbc_command(fm, 0x20), 0x44);
    outb(fm, PORT_I8042_CMD, 0xa7);
    assert_int_equal(kbc_command(fm, 0x20), 0x64);
    outb(fm, PORT_I8042_CMD, 0xa8);
    assert_int_equal(kbc_command(fm, 0x20), 0x44);
    outb(fm, PORT_I8042_CMD, 0xad);
    assert_int_equal(kbc_command(fm, 0x20), 0x54);
    outb(fm, PORT_I8042_CMD, 0xae);
    assert_int_equal(kbc_command(fm, 0x20), 0x44);

    /* Aux loopback echoes with the aux flag. */
    outb(fm, PORT_I8042_CMD, 0xd3);
    outb(fm, PORT_I8042_DATA, 0x5a);
    assert_int_equal(inb(fm, PORT_I8042_CMD) & 0x21, 0x21);
    assert_int_equal(inb(fm, PORT_I8042_DATA), 0x5a);

    /* Bytes for the absent keyboard and mouse come back as NAK with the timeout bit. */
    outb(fm, PORT_I8042_DATA, 0xf2);
    assert_int_equal(inb(fm, PORT_I8042_CMD) & 0x41, 0x41);
    assert_int_equal(inb(fm, PORT_I8042_DATA), 0xfe);
    outb(fm, PORT_I8042_CMD, 0xd4);
    outb(fm, PORT_I8042_DATA, 0xff);
    assert_int_equal(inb(fm, PORT_I8042_CMD) & 0x61, 0x61);
    assert_int_equal(inb(fm, PORT_I8042_DATA), 0xfe);
    assert_int_equal(inb(fm, PORT_I8042_CMD) & 0x01, 0);
    assert_int_equal(fm->irq_level[IRQ_KEYBOARD] | fm->irq_level[IRQ_MOUSE], 0);
    assert_int_equal(fm->stops, 0);
}

static void test_i8042_interrupts(void **state)
{
    struct fixture *f = *state;
    struct fake_machine *fm = &f->fm;
    outb(fm, PORT_I8042_CMD, 0x60);
    outb(fm, PORT_I8042_DATA, 0x47); /* both interrupts on */
    outb(fm, PORT_I8042_DATA, 0xee); /* keyboard byte: NAK on IRQ 1 */
    assert_int_equal(fm->irq_level[IRQ_KEYBOARD], 1);
    assert_int_equal(fm->irq_level[IRQ_MOUSE], 0);
    outb(fm, PORT_I8042_CMD, 0xd3);
    outb(fm, PORT_I8042_DATA, 0x11);
    inb(fm, PORT_I8042_DATA);
    /* The next byte is the aux one: a fresh edge on IRQ 12. */
    assert_int_equal(fm->irq_level[IRQ_KEYBOARD], 0);
    assert_int_equal(fm->irq_level[IRQ_MOUSE], 1);
    assert_int_equal(inb(fm, PORT_I8042_DATA), 0x11);
    assert_int_equal(fm->irq_level[IRQ_MOUSE], 0);
}

static void test_i8042_reset(void **state)
{
    struct fixture *f = *state;
    struct fake_machine *fm = &f->fm;
    /* Output port with the reset line released: nothing happens. */
    outb(fm, PORT_I8042_CMD, 0xd1);
    outb(fm, PORT_I8042_DATA, 0x03);
    assert_int_equal(fm->stops, 0);
    assert_int_equal(kbc_command(fm, 0xd0), 0x03);
    outb(fm, PORT_I8042_CMD, 0xff); /* pulse nothing */
    assert_int_equal(fm->stops, 0);
    outb(fm, PORT_I8042_CMD, 0xfe);
    assert_int_equal(fm->stops, 1);
    assert_int_equal(fm->stop_kind, VM_STOP_REBOOT);
    outb(fm, PORT_I8042_CMD, 0xd1);
    outb(fm, PORT_I8042_DATA, 0x02);
    assert_int_equal(fm->stops, 2);
    assert_int_equal(fm->stop_kind, VM_STOP_REBOOT);
}

static void test_i8042_hostile(void **state)
{
    struct fixture *f = *state;
    struct fake_machine *fm = &f->fm;
    /* Every command, each followed by a parameter byte, with reads: never wedges. */
    for (unsigned cmd = 0; cmd < 256; cmd++) {
        outb(fm, PORT_I8042_CMD, (uint8_t)cmd);
        outb(fm, PORT_I8042_DATA, (uint8_t)(cmd ^ 0x5a));
        inb(fm, PORT_I8042_CMD);
    }
    /* The output queue is bounded and drains. */
    for (int i = 0; i < 100; i++)
        outb(fm, PORT_I8042_DATA, 0xf4);
    unsigned drained = 0;
    while ((inb(fm, PORT_I8042_CMD) & 0x01) && drained < 1000) {
        inb(fm, PORT_I8042_DATA);
        drained++;
    }
    assert_true(drained > 0 && drained < 1000);
    fake_hammer_ports(fm);
    /* Wide accesses to a byte port are ignored, not misread. */
    assert_false(bus_write(&fm->pio, PORT_I8042_CMD, 2, 0xfe));
}

/* --- debug-exit and POST port ----------------------------------------------------------------- */

static void test_debug_exit(void **state)
{
    struct fixture *f = *state;
    struct fake_machine *fm = &f->fm;
    outb(fm, PORT_DEBUG_EXIT, 0x10);
    assert_int_equal(fm->stops, 1);
    assert_int_equal(fm->stop_kind, VM_STOP_DEBUG_EXIT);
    assert_int_equal(fm->stop_value, 0x10);
    bus_write(&fm->pio, PORT_DEBUG_EXIT, 4, 0x12345678);
    assert_int_equal(fm->stops, 2);
    assert_int_equal(fm->stop_value, 0x12345678);
    bus_write(&fm->pio, PORT_DEBUG_EXIT, 2, 0x0102);
    assert_int_equal(fm->stop_value, 0x0102);
    outb(fm, PORT_DEBUG_EXIT + 1, 7); /* only the port itself */
    assert_int_equal(fm->stops, 3);
    assert_int_equal(inb(fm, PORT_DEBUG_EXIT), 0xff);
    fake_hammer_ports(fm);
}

static void test_port80(void **state)
{
    struct fixture *f = *state;
    struct fake_machine *fm = &f->fm;
    outb(fm, PORT_POST, 0x42);
    assert_int_equal(inb(fm, PORT_POST), 0x42);
    outb(fm, PORT_POST, 0x00);
    assert_int_equal(inb(fm, PORT_POST), 0x00);
    fake_hammer_ports(fm);
    assert_int_equal(fm->stops, 0);
}

/* --- ACPI PM ---------------------------------------------------------------------------------- */

static void test_acpi_poweroff(void **state)
{
    struct fixture *f = *state;
    struct fake_machine *fm = &f->fm;
    uint64_t cnt = pio_in(fm, PORT_ACPI_PM1A_CNT, 2);
    assert_int_equal(cnt & 1, 1); /* SCI_EN: always in ACPI mode */
    /* S1 (or any type but S5) is ignored. */
    bus_write(&fm->pio, PORT_ACPI_PM1A_CNT, 2, (1u << 10) | (1u << 13) | 1);
    assert_int_equal(fm->stops, 0);
    cnt = pio_in(fm, PORT_ACPI_PM1A_CNT, 2);
    assert_int_equal(cnt & (1u << 13), 0); /* SLP_EN reads as 0 */
    assert_int_equal((cnt >> 10) & 7, 1);
    /* SLP_TYP alone does nothing until SLP_EN. */
    bus_write(&fm->pio, PORT_ACPI_PM1A_CNT, 2, (ACPI_SLP_TYP_S5 << 10) | 1);
    assert_int_equal(fm->stops, 0);
    bus_write(&fm->pio, PORT_ACPI_PM1A_CNT, 2, (ACPI_SLP_TYP_S5 << 10) | (1u << 13) | 1);
    assert_int_equal(fm->stops, 1);
    assert_int_equal(fm->stop_kind, VM_STOP_POWEROFF);
    assert_int_equal(fm->stop_value, 0);
    /* A byte write to the high half does the same. */
    outb(fm, PORT_ACPI_PM1A_CNT + 1, (ACPI_SLP_TYP_S5 << 2) | 0x20);
    assert_int_equal(fm->stops, 2);
    assert_int_equal(fm->stop_kind, VM_STOP_POWEROFF);
}

static void test_acpi_event_block(void **state)
{
    struct fixture *f = *state;
    struct fake_machine *fm = &f->fm;
    assert_int_equal(pio_in(fm, PORT_ACPI_PM1A_EVT, 2), 0);
    bus_write(&fm->pio, PORT_ACPI_PM1A_EVT + 2, 2, 0x0121);
    assert_int_equal(pio_in(fm, PORT_ACPI_PM1A_EVT + 2, 2), 0x0121);
    assert_int_equal(pio_in(fm, PORT_ACPI_PM1A_EVT, 4), 0x01210000);
    outb(fm, PORT_ACPI_PM1A_EVT + 3, 0x00);
    assert_int_equal(pio_in(fm, PORT_ACPI_PM1A_EVT + 2, 2), 0x0021);
    bus_write(&fm->pio, PORT_ACPI_PM1A_EVT, 2, 0xffff); /* write-1-to-clear of nothing */
    assert_int_equal(pio_in(fm, PORT_ACPI_PM1A_EVT, 2), 0);
    assert_int_equal(fm->irq_calls[IRQ_ACPI_SCI], 0);
}

static void test_acpi_pm_timer(void **state)
{
    struct fixture *f = *state;
    struct fake_machine *fm = &f->fm;
    uint32_t t0 = (uint32_t)pio_in(fm, PORT_ACPI_PM_TMR, 4);
    assert_int_equal(t0 & 0xff000000u, 0);
    sleep_ms(10);
    uint32_t t1 = (uint32_t)pio_in(fm, PORT_ACPI_PM_TMR, 4);
    uint32_t ticks = (t1 - t0) & 0xffffff;
    /* 10 ms is 35795 ticks; allow for a slow, loaded test host. */
    assert_true(ticks >= 35000 && ticks < 3579545);
    /* Read-only. */
    bus_write(&fm->pio, PORT_ACPI_PM_TMR, 4, 0);
    uint32_t t2 = (uint32_t)pio_in(fm, PORT_ACPI_PM_TMR, 4);
    assert_true(((t2 - t0) & 0xffffff) >= ticks);
    /* Byte access works. */
    assert_int_equal(pio_in(fm, PORT_ACPI_PM_TMR + 3, 1), 0);
}

static void test_acpi_reset_register(void **state)
{
    struct fixture *f = *state;
    struct fake_machine *fm = &f->fm;
    outb(fm, PORT_ACPI_RESET, 0x01);
    assert_int_equal(fm->stops, 0);
    outb(fm, PORT_ACPI_RESET, 0x0e);
    assert_int_equal(fm->stops, 1);
    assert_int_equal(fm->stop_kind, VM_STOP_REBOOT);
    outb(fm, PORT_ACPI_RESET, 0x06);
    assert_int_equal(fm->stops, 2);
    fake_hammer_ports(fm);
}

/* All models together on one bus: no range clashes, and the whole port space survives junk. */
static void test_all_models_coexist(void **state)
{
    (void)state;
    struct fake_machine fm;
    fake_machine_init(&fm);
    void **states = fake_create_default_models(&fm);
    fake_hammer_ports(&fm);
    fake_destroy_models(states);
    fake_machine_destroy(&fm);
    assert_null(device_model_find("no-such-device"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rtc_bcd_time, setup_cmos, teardown),
        cmocka_unit_test_setup_teardown(test_rtc_binary_time, setup_cmos, teardown),
        cmocka_unit_test_setup_teardown(test_rtc_guest_sets_time, setup_cmos, teardown),
        cmocka_unit_test_setup_teardown(test_rtc_register_c_and_nmi_mask, setup_cmos, teardown),
        cmocka_unit_test_setup_teardown(test_rtc_memory_sizes, setup_cmos, teardown),
        cmocka_unit_test_setup_teardown(test_rtc_wide_access_and_hostile, setup_cmos, teardown),
        cmocka_unit_test_setup_teardown(test_i8042_probe_sequence, setup_i8042, teardown),
        cmocka_unit_test_setup_teardown(test_i8042_interrupts, setup_i8042, teardown),
        cmocka_unit_test_setup_teardown(test_i8042_reset, setup_i8042, teardown),
        cmocka_unit_test_setup_teardown(test_i8042_hostile, setup_i8042, teardown),
        cmocka_unit_test_setup_teardown(test_debug_exit, setup_debug_exit, teardown),
        cmocka_unit_test_setup_teardown(test_port80, setup_port80, teardown),
        cmocka_unit_test_setup_teardown(test_acpi_poweroff, setup_acpi_pm, teardown),
        cmocka_unit_test_setup_teardown(test_acpi_event_block, setup_acpi_pm, teardown),
        cmocka_unit_test_setup_teardown(test_acpi_pm_timer, setup_acpi_pm, teardown),
        cmocka_unit_test_setup_teardown(test_acpi_reset_register, setup_acpi_pm, teardown),
        cmocka_unit_test(test_all_models_coexist),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
