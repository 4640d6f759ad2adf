/* 16550A UART on COM1: the guest's serial console.
 *
 * Transmission is instantaneous (THR writes go straight to the host console), so THR is always
 * empty and the transmit FIFO is never modelled. The receive side has a real 16-byte FIFO fed
 * by the host console's I/O thread, which is flow-controlled: input that does not fit is left
 * with the console and offered again later, so host input never overruns.
 *
 * Locking: one mutex per UART, taken by vCPU threads (bus accesses) and by the console I/O
 * thread (input handler, called with the console's own lock held, hence the order console ->
 * uart). While holding it we call console->write (which takes no console lock) and set_irq
 * (which never calls back into a device), so neither can deadlock. */
#include "hw/device.h"
#include "vm/boot/aml.h"
#include "util/log.h"
#include "vm/platform.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#define UART_NR_PORTS 8
#define UART_FIFO_SIZE 16

/* Register offsets (DLAB selects the divisor latch at 0 and 1). */
enum {
    REG_RBR_THR_DLL = 0,
    REG_IER_DLM = 1,
    REG_IIR_FCR = 2,
    REG_LCR = 3,
    REG_MCR = 4,
    REG_LSR = 5,
    REG_MSR = 6,
    REG_SCR = 7,
};

#define IER_ERBFI 0x01 /* received data available */
#define IER_ETBEI 0x02 /* transmitter holding register empty */
#define IER_ELSI 0x04  /* receiver line status */
#define IER_EDSSI 0x08 /* modem status */
#define IER_MASK 0x0f  /* upper bits read as 0: Linux's probe uses that to tell a 16550A */

#define IIR_NO_INT 0x01
#define IIR_MODEM_STATUS 0x00
#define IIR_THR_EMPTY 0x02
#define IIR_RX_DATA 0x04
#define IIR_LINE_STATUS 0x06
#define IIR_CHAR_TIMEOUT 0x0c
#define IIR_FIFO_ENABLED 0xc0

#define FCR_ENABLE 0x01
#define FCR_CLEAR_RX 0x02
#define FCR_TRIGGER_SHIFT 6

#define LCR_BREAK 0x40
#define LCR_DLAB 0x80

#define MCR_DTR 0x01
#define MCR_RTS 0x02
#define MCR_OUT1 0x04
#define MCR_OUT2 0x08 /* gates the interrupt line on PCs */
#define MCR_LOOP 0x10
#define MCR_MASK 0x1f

#define LSR_DR 0x01
#define LSR_OE 0x02
#define LSR_PE 0x04
#define LSR_FE 0x08
#define LSR_BI 0x10
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
#define LSR_ERRORS (LSR_OE | LSR_PE | LSR_FE | LSR_BI)

#define MSR_DCTS 0x01
#define MSR_DDSR 0x02
#define MSR_TERI 0x04
#define MSR_DDCD 0x08
#define MSR_DELTAS 0x0f
#define MSR_CTS 0x10
#define MSR_DSR 0x20
#define MSR_RI 0x40
#define MSR_DCD 0x80

struct uart {
    pthread_mutex_t lock;
    struct device_host host;
    const struct device_console *console; /* NULL: output dropped */
    uint32_t irq;
    uint16_t port;
    unsigned instance;

    uint8_t rx_fifo[UART_FIFO_SIZE];
    unsigned rx_head;  /* index of the oldest byte, < UART_FIFO_SIZE */
    unsigned rx_count; /* <= rx_capacity() */
    uint8_t last_rx;   /* what RBR reads when the FIFO is empty */

    uint8_t ier, lcr, mcr, lsr, msr, scr, dll, dlm;
    bool fifo_enabled;
    uint8_t rx_trigger; /* FIFO level raising "data available" rather than "timeout" */
    bool thr_ipending;  /* THR-empty interrupt latched (cleared by IIR read or THR write) */
    bool irq_level;     /* what we last told set_irq */
};

static unsigned rx_capacity(const struct uart *u)
{
    return u->fifo_enabled ? UART_FIFO_SIZE : 1;
}

static void rx_clear(struct uart *u)
{
    u->rx_head = 0;
    u->rx_count = 0;
    u->lsr &= (uint8_t)~LSR_DR;
}

/* Returns false (and flags an overrun, losing the byte as the hardware does) when full. */
static bool rx_push(struct uart *u, uint8_t byte)
{
    if (u->rx_count >= rx_capacity(u)) {
        u->lsr |= LSR_OE;
        return false;
    }
    u->rx_fifo[(u->rx_head + u->rx_count) % UART_FIFO_SIZE] = byte;
    u->rx_count++;
    u->lsr |= LSR_DR;
    return true;
}

static uint8_t rx_pop(struct uart *u)
{
    if (u->rx_count) {
        u->last_rx = u->rx_fifo[u->rx_head];
        u->rx_head = (u->rx_head + 1) % UART_FIFO_SIZE;
        u->rx_count--;
    }
    if (!u->rx_count)
        u->lsr &= (uint8_t)~LSR_DR;
    return u->last_rx;
}

/* Modem input lines: wired to our own outputs in loopback, else a permanently connected
 * host (carrier, data set ready, clear to send). */
static uint8_t modem_lines(const struct uart *u)
{
    if (!(u->mcr & MCR_LOOP))
        return MSR_DCD | MSR_DSR | MSR_CTS;
    uint8_t lines = 0;
    if (u->mcr & MCR_RTS)
        lines |= MSR_CTS;
    if (u->mcr & MCR_DTR)
        lines |= MSR_DSR;
    if (u->mcr & MCR_OUT1)
        lines |= MSR_RI;
    if (u->mcr & MCR_OUT2)
        lines |= MSR_DCD;
    return lines;
}

static void update_msr(struct uart *u)
{
    uint8_t now = modem_lines(u);
    uint8_t changed = (uint8_t)((u->msr ^ now) & 0xf0);
    uint8_t deltas = u->msr & MSR_DELTAS;
    if (changed & MSR_CTS)
        deltas |= MSR_DCTS;
    if (changed & MSR_DSR)
        deltas |= MSR_DDSR;
    if (changed & MSR_DCD)
        deltas |= MSR_DDCD;
    if ((changed & MSR_RI) && !(now & MSR_RI)) /* trailing edge only */
        deltas |= MSR_TERI;
    u->msr = now | deltas;
}

/* Highest-priority enabled interrupt: line status > rx data > THR empty > modem status. */
static uint8_t pending_interrupt(const struct uart *u)
{
    if ((u->ier & IER_ELSI) && (u->lsr & LSR_ERRORS))
        return IIR_LINE_STATUS;
    if ((u->ier & IER_ERBFI) && u->rx_count) {
        /* Below the trigger level real hardware waits 4 character times and then reports a
         * timeout; we have no timer, so report the timeout at once. */
        if (u->fifo_enabled && u->rx_count < u->rx_trigger)
            return IIR_CHAR_TIMEOUT;
        return IIR_RX_DATA;
    }
    if ((u->ier & IER_ETBEI) && u->thr_ipending)
        return IIR_THR_EMPTY;
    if ((u->ier & IER_EDSSI) && (u->msr & MSR_DELTAS))
        return IIR_MODEM_STATUS;
    return IIR_NO_INT;
}

/* OUT2 gates the line to the interrupt controller; loopback forces OUT2 inactive. */
static void update_irq(struct uart *u)
{
    bool level = pending_interrupt(u) != IIR_NO_INT && (u->mcr & MCR_OUT2) && !(u->mcr & MCR_LOOP);
    if (level == u->irq_level)
        return;
    u->irq_level = level;
    if (u->host.set_irq)
        u->host.set_irq(u->host.irq_ctx, u->irq, level ? 1 : 0);
}

static void transmit(struct uart *u, uint8_t byte)
{
    if (u->mcr & MCR_LOOP)
        rx_push(u, byte);
    else if (u->console && u->console->write)
        u->console->write(u->console->ctx, &byte, 1);
    /* Sent instantly: THR is empty again, which re-arms the THR-empty interrupt. */
    u->thr_ipending = true;
}

static void write_fcr(struct uart *u, uint8_t value)
{
    bool enable = value & FCR_ENABLE;
    if (enable != u->fifo_enabled) {
        rx_clear(u); /* changing the FIFO mode empties the FIFOs */
        u->fifo_enabled = enable;
    }
    if (!enable)
        return; /* the other bits are only written while the FIFO is enabled */
    if (value & FCR_CLEAR_RX)
        rx_clear(u);
    static const uint8_t trigger_levels[4] = {1, 4, 8, 14};
    u->rx_trigger = trigger_levels[(value >> FCR_TRIGGER_SHIFT) & 3];
}

static void write_ier(struct uart *u, uint8_t value)
{
    uint8_t changed = (uint8_t)((u->ier ^ value) & IER_MASK);
    u->ier = value & IER_MASK;
    /* Setting ETBEI while THR is empty raises the interrupt even if an IIR read had cleared it
     * (Linux's THRE test and Windows rely on this); clearing ETBEI forgets it. */
    if (changed & IER_ETBEI)
        u->thr_ipending = (u->ier & IER_ETBEI) && (u->lsr & LSR_THRE);
}

static void write_lcr(struct uart *u, uint8_t value)
{
    bool break_started = (value & LCR_BREAK) && !(u->lcr & LCR_BREAK);
    u->lcr = value;
    /* In loopback the receiver sees our own break: a zero character flagged BI. */
    if (break_started && (u->mcr & MCR_LOOP)) {
        rx_push(u, 0);
        u->lsr |= LSR_BI;
    }
}

static void write_reg(struct uart *u, unsigned reg, uint8_t value)
{
    bool dlab = u->lcr & LCR_DLAB;
    switch (reg) {
    case REG_RBR_THR_DLL:
        if (dlab)
            u->dll = value;
        else
            transmit(u, value);
        break;
    case REG_IER_DLM:
        if (dlab)
            u->dlm = value;
        else
            write_ier(u, value);
        break;
    case REG_IIR_FCR:
        write_fcr(u, value);
        break;
    case REG_LCR:
        write_lcr(u, value);
        break;
    case REG_MCR:
        u->mcr = value & MCR_MASK;
        update_msr(u);
        break;
    case REG_SCR:
        u->scr = value;
        break;
    default: /* LSR and MSR are read-only (writes are factory test modes) */
        break;
    }
    update_irq(u);
}

static uint8_t read_reg(struct uart *u, unsigned reg)
{
    bool dlab = u->lcr & LCR_DLAB;
    uint8_t value = 0xff;
    switch (reg) {
    case REG_RBR_THR_DLL:
        value = dlab ? u->dll : rx_pop(u);
        break;
    case REG_IER_DLM:
        value = dlab ? u->dlm : u->ier;
        break;
    case REG_IIR_FCR: {
        uint8_t id = pending_interrupt(u);
        if (id == IIR_THR_EMPTY)
            u->thr_ipending = false; /* reading IIR acknowledges THR empty */
        value = id | (u->fifo_enabled ? IIR_FIFO_ENABLED : 0);
        break;
    }
    case REG_LCR:
        value = u->lcr;
        break;
    case REG_MCR:
        value = u->mcr;
        break;
    case REG_LSR:
        value = u->lsr;
        u->lsr &= (uint8_t)~LSR_ERRORS;
        break;
    case REG_MSR:
        value = u->msr;
        u->msr &= (uint8_t)~MSR_DELTAS;
        break;
    case REG_SCR:
        value = u->scr;
        break;
    default:
        break;
    }
    update_irq(u);
    return value;
}

/* The UART is an 8-bit device: wider accesses reach consecutive registers, as the ISA bus
 * splits them. The bus keeps offset + size within our 8 ports; check anyway. */
static uint64_t uart_bus_read(void *opaque, uint64_t offset, unsigned size)
{
    struct uart *u = opaque;
    uint64_t value = 0;
    pthread_mutex_lock(&u->lock);
    for (unsigned i = 0; i < size && i < 8; i++) {
        uint64_t reg = offset + i;
        uint8_t byte = reg < UART_NR_PORTS ? read_reg(u, (unsigned)reg) : 0xff;
        value |= (uint64_t)byte << (8 * i);
    }
    pthread_mutex_unlock(&u->lock);
    return value;
}

static void uart_bus_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
    struct uart *u = opaque;
    pthread_mutex_lock(&u->lock);
    for (unsigned i = 0; i < size && i < 8; i++) {
        uint64_t reg = offset + i;
        if (reg < UART_NR_PORTS)
            write_reg(u, (unsigned)reg, (uint8_t)(value >> (8 * i)));
    }
    pthread_mutex_unlock(&u->lock);
}

/* Host input from the console I/O thread: take what fits in the receive FIFO. While the guest
 * has the port in loopback the receiver is disconnected; take nothing so no input is lost. */
static size_t uart_input(void *opaque, const uint8_t *buf, size_t len)
{
    struct uart *u = opaque;
    size_t taken = 0;
    pthread_mutex_lock(&u->lock);
    if (!(u->mcr & MCR_LOOP)) {
        while (taken < len && u->rx_count < rx_capacity(u))
            rx_push(u, buf[taken++]);
        update_irq(u);
    }
    pthread_mutex_unlock(&u->lock);
    return taken;
}

static const struct bus_device_ops uart_ops = {
    .read = uart_bus_read,
    .write = uart_bus_write,
};

static int uart_create(const struct device_host *host, const struct device_args *args, void **state,
                       char *err, size_t errlen)
{
    /* The PC's COM1..COM4 resources, by instance. */
    static const struct {
        uint16_t port;
        uint8_t irq;
        const char *name;
    } com[] = {{PORT_COM1, IRQ_COM1, "com1"},
               {PORT_COM2, IRQ_COM2, "com2"},
               {0x3e8, IRQ_COM1, "com3"},
               {0x2e8, IRQ_COM2, "com4"}};
    if (args->instance >= sizeof(com) / sizeof(com[0]))
        return qk_fail(err, errlen, "at most %zu serial ports", sizeof(com) / sizeof(com[0]));
    struct uart *u = calloc(1, sizeof(*u));
    if (!u)
        return qk_fail(err, errlen, "out of memory");
    u->host = *host;
    u->console = args->console;
    u->irq = com[args->instance].irq;
    u->port = com[args->instance].port;
    u->instance = args->instance;
    u->lsr = LSR_THRE | LSR_TEMT;
    u->msr = modem_lines(u);
    u->rx_trigger = 1;
    if (pthread_mutex_init(&u->lock, NULL) != 0) {
        free(u);
        return qk_fail(err, errlen, "cannot create the UART lock");
    }
    if (bus_register(host->pio, com[args->instance].port, UART_NR_PORTS, &uart_ops, u,
                     com[args->instance].name, err, errlen) < 0) {
        pthread_mutex_destroy(&u->lock);
        free(u);
        return -1;
    }
    if (u->console && u->console->set_input)
        u->console->set_input(u->console->ctx, uart_input, u);
    *state = u;
    return 0;
}

static void uart_destroy(void *state)
{
    struct uart *u = state;
    if (!u)
        return;
    if (u->console && u->console->set_input)
        u->console->set_input(u->console->ctx, NULL, NULL);
    pthread_mutex_destroy(&u->lock);
    free(u);
}

/* \_SB.COMn: a PNP0501 with its ports and ISA IRQ, so ACPI-aware guests enumerate it. */
static void uart_describe_acpi(void *state, struct aml_buf *aml)
{
    struct uart *u = state;
    char name[5];
    snprintf(name, sizeof(name), "COM%u", u->instance + 1);
    aml_device(aml, name);
    aml_name_eisaid(aml, "_HID", "PNP0501");
    aml_name_integer(aml, "_UID", u->instance + 1);
    aml_name(aml, "_CRS");
    aml_resource_template(aml);
    aml_io(aml, u->port, u->port, 1, UART_NR_PORTS);
    aml_irq_no_flags(aml, (uint8_t)u->irq);
    aml_end(aml);
    aml_end(aml);
}

DEVICE_MODEL(uart16550_model) = {
    .name = "uart16550",
    .level = DEVICE_LEVEL_PLATFORM,
    .default_instance = true,
    .create = uart_create,
    .destroy = uart_destroy,
    .describe_acpi = uart_describe_acpi,
};
