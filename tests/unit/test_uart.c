/* Unit tests: the 16550A UART model, driven through the port bus as a guest would. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "device_fakes.h"
#include "vm/platform.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>

#define RBR (PORT_COM1 + 0)
#define THR (PORT_COM1 + 0)
#define DLL (PORT_COM1 + 0)
#define IER (PORT_COM1 + 1)
#define DLM (PORT_COM1 + 1)
#define IIR (PORT_COM1 + 2)
#define FCR (PORT_COM1 + 2)
#define LCR (PORT_COM1 + 3)
#define MCR (PORT_COM1 + 4)
#define LSR (PORT_COM1 + 5)
#define MSR (PORT_COM1 + 6)
#define SCR (PORT_COM1 + 7)

#define MCR_DTR 0x01
#define MCR_RTS 0x02
#define MCR_OUT1 0x04
#define MCR_OUT2 0x08
#define MCR_LOOP 0x10

struct uart_fixture {
    struct fake_machine fm;
    void *uart;
};

static int setup(void **state)
{
    struct uart_fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    fake_machine_init(&f->fm);
    f->uart = fake_create(&f->fm, "uart16550");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct uart_fixture *f = *state;
    fake_destroy("uart16550", f->uart);
    assert_null(f->fm.input); /* destroy uninstalls the input handler */
    fake_machine_destroy(&f->fm);
    free(f);
    return 0;
}

static size_t feed(struct fake_machine *fm, const char *text, size_t len)
{
    assert_non_null(fm->input);
    return fm->input(fm->input_opaque, (const uint8_t *)text, len);
}

static void test_reset_state_and_output(void **state)
{
    struct uart_fixture *f = *state;
    struct fake_machine *fm = &f->fm;
    assert_int_equal(inb(fm, LSR), 0x60); /* THRE | TEMT, no data */
    assert_int_equal(inb(fm, IIR), 0x01); /* no interrupt, FIFO off */
    assert_int_equal(inb(fm, IER), 0);
    assert_int_equal(inb(fm, LCR), 0);
    assert_int_equal(inb(fm, MCR), 0);
    assert_int_equal(inb(fm, MSR) & 0xf0, 0xb0); /* DCD | DSR | CTS: a host is connected */
    outb(fm, THR, 'h');
    outb(fm, THR, 'i');
    assert_int_equal(fm->output_len, 2);
    assert_memory_equal(fm->output, "hi", 2);
    assert_int_equal(inb(fm, LSR), 0x60);
    assert_int_equal(fm->irq_calls[IRQ_COM1], 0); /* nothing enabled, nothing raised */
}

static void test_dlab_and_scratch(void **state)
{
    struct uart_fixture *f = *state;
    struct fake_machine *fm = &f->fm;
    outb(fm, IER, 0x05);
    outb(fm, LCR, 0x83); /* DLAB, 8N1 */
    outb(fm, DLL, 0x0c);
    outb(fm, DLM, 0x01);
    assert_int_equal(inb(fm, DLL), 0x0c);
    assert_int_equal(inb(fm, DLM), 0x01);
    assert_int_equal(fm->output_len, 0); /* divisor writes are not output */
    outb(fm, LCR, 0x03);
    assert_int_equal(inb(fm, LCR), 0x03);
    assert_int_equal(inb(fm, IER), 0x05); /* IER was not overwritten by DLM */
    outb(fm, THR, 'x');
    assert_int_equal(fm->output_len, 1);
    outb(fm, LCR, 0x80);
    assert_int_equal(inb(fm, DLL), 0x0c); /* THR write did not touch the divisor */
    outb(fm, LCR, 0x03);
    /* Upper IER bits read as zero (Linux's 16550A detection). */
    outb(fm, IER, 0xff);
    assert_int_equal(inb(fm, IER), 0x0f);
    outb(fm, IER, 0);
    outb(fm, SCR, 0xa5);
    assert_int_equal(inb(fm, SCR), 0xa5);
    outb(fm, SCR, 0x5a);
    assert_int_equal(inb(fm, SCR), 0x5a);
}

static void test_fifo_and_partial_input(void **state)
{
    struct uart_fixture *f = *state;
    struct fake_machine *fm = &f->fm;
    /* Without the FIFO, one byte of holding register. */
    assert_int_equal(feed(fm, "ab", 2), 1);
    assert_int_equal(feed(fm, "b", 1), 0);
    assert_int_equal(inb(fm, LSR) & 0x01, 0x01);
    assert_int_equal(inb(fm, RBR), 'a');
    assert_int_equal(inb(fm, LSR) & 0x01, 0);

    outb(fm, FCR, 0x07); /* enable, clear both FIFOs */
    assert_int_equal(inb(fm, IIR) & 0xc0, 0xc0);
    const char *text = "0123456789abcdefXYZ";
    assert_int_equal(feed(fm, text, 19), 16); /* the rest stays with the console */
    assert_int_equal(feed(fm, "Q", 1), 0);
    assert_int_equal(inb(fm, LSR) & 0x03, 0x01); /* data ready, no overrun */
    for (int i = 0; i < 16; i++) {
        assert_int_equal(inb(fm, LSR) & 0x01, 0x01);
        assert_int_equal(inb(fm, RBR), (uint8_t)text[i]);
    }
    assert_int_equal(inb(fm, LSR) & 0x01, 0);
    assert_int_equal(feed(fm, text + 16, 3), 3);

    /* FCR clear-RX empties the FIFO; turning the FIFO off does too. */
    outb(fm, FCR, 0x03);
    assert_int_equal(inb(fm, LSR) & 0x01, 0);
    assert_int_equal(feed(fm, "zz", 2), 2);
    outb(fm, FCR, 0x00);
    assert_int_equal(inb(fm, LSR) & 0x01, 0);
    assert_int_equal(inb(fm, IIR) & 0xc0, 0);
}

static void test_loopback(void **state)
{
    struct uart_fixture *f = *state;
    struct fake_machine *fm = &f->fm;
    inb(fm, MSR); /* clear any deltas */
    /* Linux's 8250 probe: loopback with RTS and OUT2 must show CTS and DCD. */
    outb(fm, MCR, MCR_LOOP | MCR_OUT2 | MCR_RTS);
    assert_int_equal(inb(fm, MSR) & 0xf0, 0x90);
    outb(fm, MCR, MCR_LOOP | MCR_OUT2 | MCR_OUT1 | MCR_RTS | MCR_DTR);
    uint8_t msr = inb(fm, MSR);
    assert_int_equal(msr & 0xf0, 0xf0);
    assert_int_equal(msr & 0x0f, 0x02);       /* DSR changed */
    assert_int_equal(inb(fm, MSR) & 0x0f, 0); /* reading MSR clears the deltas */
    outb(fm, MCR, MCR_LOOP);
    msr = inb(fm, MSR);
    assert_int_equal(msr & 0xf0, 0);
    assert_int_equal(msr & 0x0f, 0x0f); /* DCTS, DDSR, TERI (RI fell), DDCD */

    outb(fm, THR, 0x55);
    assert_int_equal(fm->output_len, 0); /* nothing reaches the host in loopback */
    assert_int_equal(inb(fm, LSR) & 0x61, 0x61);
    assert_int_equal(inb(fm, RBR), 0x55);
    /* Host input is not connected to the receiver in loopback: none is taken. */
    assert_int_equal(feed(fm, "k", 1), 0);

    /* Overrun: 16 bytes fill the FIFO, the 17th is lost and flags OE until LSR is read. */
    outb(fm, FCR, 0x01);
    for (int i = 0; i < 17; i++)
        outb(fm, THR, (uint8_t)i);
    uint8_t lsr = inb(fm, LSR);
    assert_int_equal(lsr & 0x03, 0x03);
    assert_int_equal(inb(fm, LSR) & 0x02, 0);
    for (int i = 0; i < 16; i++)
        assert_int_equal(inb(fm, RBR), i);
    assert_int_equal(inb(fm, LSR) & 0x01, 0);

    /* Break in loopback: a zero byte with BI. */
    outb(fm, LCR, 0x43);
    lsr = inb(fm, LSR);
    assert_int_equal(lsr & 0x11, 0x11);
    assert_int_equal(inb(fm, RBR), 0);
    outb(fm, LCR, 0x03);

    outb(fm, MCR, MCR_OUT2);
    assert_int_equal(inb(fm, MSR) & 0xf0, 0xb0);
    outb(fm, THR, 'o');
    assert_int_equal(fm->output_len, 1);
    assert_int_equal(fm->irq_level[IRQ_COM1], 0);
}

static void test_rx_interrupt_gated_by_out2(void **state)
{
    struct uart_fixture *f = *state;
    struct fake_machine *fm = &f->fm;
    outb(fm, IER, 0x01);
    assert_int_equal(feed(fm, "a", 1), 1);
    assert_int_equal(inb(fm, IIR), 0x04);
    assert_int_equal(fm->irq_level[IRQ_COM1], 0); /* OUT2 clear: line stays low */
    outb(fm, MCR, MCR_OUT2 | MCR_DTR | MCR_RTS);
    assert_int_equal(fm->irq_level[IRQ_COM1], 1);
    assert_int_equal(inb(fm, RBR), 'a');
    assert_int_equal(fm->irq_level[IRQ_COM1], 0);
    assert_int_equal(inb(fm, IIR), 0x01);

    /* With the FIFO: below the trigger level the interrupt is a character timeout; at the
     * trigger level it is data available. */
    outb(fm, FCR, 0x41); /* enable, trigger 4 */
    assert_int_equal(feed(fm, "abc", 3), 3);
    assert_int_equal(fm->irq_level[IRQ_COM1], 1);
    assert_int_equal(inb(fm, IIR), 0xcc);
    assert_int_equal(feed(fm, "d", 1), 1);
    assert_int_equal(inb(fm, IIR), 0xc4);
    unsigned calls = fm->irq_calls[IRQ_COM1];
    feed(fm, "e", 1);
    assert_int_equal(fm->irq_calls[IRQ_COM1], calls); /* changes only */
    while (inb(fm, LSR) & 0x01)
        inb(fm, RBR);
    assert_int_equal(fm->irq_level[IRQ_COM1], 0);

    /* Dropping OUT2 lowers the line while the interrupt stays pending. */
    feed(fm, "f", 1);
    assert_int_equal(fm->irq_level[IRQ_COM1], 1);
    outb(fm, MCR, 0);
    assert_int_equal(fm->irq_level[IRQ_COM1], 0);
    assert_int_equal(inb(fm, IIR) & 0x0f, 0x0c);
    outb(fm, IER, 0);
    assert_int_equal(inb(fm, IIR) & 0x0f, 0x01);
}

static void test_thre_interrupt(void **state)
{
    struct uart_fixture *f = *state;
    struct fake_machine *fm = &f->fm;
    outb(fm, MCR, MCR_OUT2);
    assert_int_equal(fm->irq_level[IRQ_COM1], 0);
    /* Enabling ETBEI with THR empty raises the interrupt. */
    outb(fm, IER, 0x02);
    assert_int_equal(fm->irq_level[IRQ_COM1], 1);
    assert_int_equal(inb(fm, IIR), 0x02);
    /* Reading IIR acknowledged it. */
    assert_int_equal(fm->irq_level[IRQ_COM1], 0);
    assert_int_equal(inb(fm, IIR), 0x01);
    /* Linux's THRE test: toggling ETBEI re-raises it. */
    outb(fm, IER, 0x00);
    outb(fm, IER, 0x02);
    assert_int_equal(fm->irq_level[IRQ_COM1], 1);
    assert_int_equal(inb(fm, IIR), 0x02);
    /* Rewriting IER without changing ETBEI does not. */
    outb(fm, IER, 0x02);
    assert_int_equal(inb(fm, IIR), 0x01);
    /* Transmitting empties THR again: interrupt. */
    outb(fm, THR, 'z');
    assert_int_equal(fm->irq_level[IRQ_COM1], 1);
    /* Received data outranks THR empty. */
    outb(fm, IER, 0x03);
    feed(fm, "r", 1);
    assert_int_equal(inb(fm, IIR), 0x04);
    inb(fm, RBR);
    assert_int_equal(inb(fm, IIR), 0x02);
    assert_int_equal(inb(fm, IIR), 0x01);
    assert_int_equal(fm->irq_level[IRQ_COM1], 0);
}

static void test_line_and_modem_status_interrupts(void **state)
{
    struct uart_fixture *f = *state;
    struct fake_machine *fm = &f->fm;
    inb(fm, MSR);
    outb(fm, IER, 0x0f);
    inb(fm, IIR); /* consume THR empty */
    assert_int_equal(inb(fm, IIR), 0x01);
    /* Overrun in loopback: line status has top priority over data available. */
    outb(fm, MCR, MCR_LOOP);
    outb(fm, THR, 1);
    outb(fm, THR, 2); /* no FIFO: overrun */
    inb(fm, MSR);     /* entering loopback changed the modem lines */
    assert_int_equal(inb(fm, IIR), 0x06);
    inb(fm, LSR);
    assert_int_equal(inb(fm, IIR), 0x04);
    assert_int_equal(inb(fm, RBR), 1);
    inb(fm, IIR); /* THR empty from the writes */
    assert_int_equal(inb(fm, IIR), 0x01);
    /* Modem status interrupt from a loopback line change; the IRQ pin stays low in loopback. */
    outb(fm, MCR, MCR_LOOP | MCR_RTS | MCR_OUT2);
    assert_int_equal(inb(fm, IIR), 0x00);
    assert_int_equal(fm->irq_level[IRQ_COM1], 0);
    inb(fm, MSR);
    assert_int_equal(inb(fm, IIR), 0x01);
}

static void test_wide_and_hostile_accesses(void **state)
{
    struct uart_fixture *f = *state;
    struct fake_machine *fm = &f->fm;
    /* A word write to LCR/MCR reaches both registers, as the ISA bus splits it. */
    bus_write(&fm->pio, LCR, 2, 0x0803);
    assert_int_equal(inb(fm, LCR), 0x03);
    assert_int_equal(inb(fm, MCR), 0x08);
    /* Past the end of the range: not claimed. */
    assert_false(bus_write(&fm->pio, PORT_COM1 + 7, 2, 0));
    fake_hammer_ports(fm);
    /* Whatever the junk did, the input handler stays bounded. */
    uint8_t big[100];
    memset(big, 'x', sizeof(big));
    outb(fm, MCR, 0);
    outb(fm, FCR, 0x01);
    while (inb(fm, LSR) & 0x01)
        inb(fm, RBR);
    assert_int_equal(fm->input(fm->input_opaque, big, sizeof(big)), 16);
}

struct producer {
    struct fake_machine *fm;
    unsigned total;
};

static void *produce(void *arg)
{
    struct producer *p = arg;
    unsigned sent = 0;
    while (sent < p->total) {
        uint8_t chunk[7];
        size_t n = 0;
        while (n < sizeof(chunk) && sent + n < p->total) {
            chunk[n] = (uint8_t)(sent + n);
            n++;
        }
        size_t taken = p->fm->input(p->fm->input_opaque, chunk, n);
        assert_true(taken <= n);
        sent += (unsigned)taken;
        if (!taken)
            sched_yield();
    }
    return NULL;
}

/* Console input from another thread while the "vCPU" drains the FIFO: nothing lost or
 * reordered (and ThreadSanitizer-clean when built with it). */
static void test_concurrent_input(void **state)
{
    struct uart_fixture *f = *state;
    struct fake_machine *fm = &f->fm;
    outb(fm, FCR, 0x81);
    outb(fm, IER, 0x01);
    outb(fm, MCR, MCR_OUT2);
    struct producer p = {fm, 20000};
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, produce, &p), 0);
    unsigned received = 0;
    while (received < p.total) {
        if (inb(fm, LSR) & 0x01) {
            assert_int_equal(inb(fm, RBR), (uint8_t)received);
            received++;
        } else {
            sched_yield();
        }
    }
    pthread_join(thread, NULL);
    assert_int_equal(inb(fm, LSR) & 0x03, 0);
}

/* A second instance is COM2 (0x2f8, IRQ 3) with its own registers; a second instance with the
 * same number as an existing one clashes on the bus and fails cleanly; a fifth has no PC
 * resources. */
static void test_instances(void **state)
{
    struct uart_fixture *f = *state;
    struct fake_machine *fm = &f->fm;
    const struct device_model *model = device_model_find("uart16550");
    struct opts no_opts = {0};
    char err[256] = "";
    void *com2 = NULL, *clash = NULL, *fifth = NULL;
    struct device_args a1 = {.instance = 1, .opts = &no_opts, .console = NULL};
    assert_int_equal(model->create(&fm->host, &a1, &com2, err, sizeof(err)), 0);
    outb(fm, 0x2f8 + 7, 0x5a); /* scratch register */
    assert_int_equal(inb(fm, 0x2f8 + 7), 0x5a);
    assert_int_not_equal(inb(fm, 0x3f8 + 7), 0x5a);
    assert_int_equal(model->create(&fm->host, &a1, &clash, err, sizeof(err)), -1);
    assert_null(clash);
    assert_true(strlen(err) > 0);
    struct device_args a4 = {.instance = 4, .opts = &no_opts};
    assert_int_equal(model->create(&fm->host, &a4, &fifth, err, sizeof(err)), -1);
    assert_null(fifth);
    model->destroy(com2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reset_state_and_output, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dlab_and_scratch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fifo_and_partial_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loopback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rx_interrupt_gated_by_out2, setup, teardown),
        cmocka_unit_test_setup_teardown(test_thre_interrupt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_line_and_modem_status_interrupts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wide_and_hostile_accesses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_instances, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
