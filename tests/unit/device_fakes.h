/* A fake machine for device-model unit tests: real port bus, recorded interrupt levels, stop
 * requests and console output, a captured console input handler and a fixed wall clock.
 * Include after <cmocka.h>. */
#ifndef QUOKKA_TESTS_DEVICE_FAKES_H
#define QUOKKA_TESTS_DEVICE_FAKES_H

#include "hw/device.h"
#include "vm/bus.h"

#include <string.h>
#include <time.h>

#define FAKE_NR_IRQS 24
#define FAKE_WALL_CLOCK 1709214310 /* 2024-02-29 13:45:10 UTC, a Thursday */

struct fake_machine {
    struct bus pio, mmio;
    struct device_console console;
    struct device_host host;

    int irq_level[FAKE_NR_IRQS];
    unsigned irq_calls[FAKE_NR_IRQS];

    unsigned stops;
    enum vm_stop_kind stop_kind;
    uint32_t stop_value;

    uint8_t output[4096];
    size_t output_len;

    size_t (*input)(void *opaque, const uint8_t *buf, size_t len);
    void *input_opaque;
};

static inline void fake_set_irq(void *ctx, uint32_t gsi, int level)
{
    struct fake_machine *fm = ctx;
    assert_true(gsi < FAKE_NR_IRQS);
    assert_true(level == 0 || level == 1);
    fm->irq_level[gsi] = level;
    fm->irq_calls[gsi]++;
}

static inline void fake_request_stop(void *ctx, enum vm_stop_kind kind, uint32_t value)
{
    struct fake_machine *fm = ctx;
    fm->stops++;
    fm->stop_kind = kind;
    fm->stop_value = value;
}

static inline void fake_console_write(void *ctx, const uint8_t *buf, size_t len)
{
    struct fake_machine *fm = ctx;
    for (size_t i = 0; i < len && fm->output_len < sizeof(fm->output); i++)
        fm->output[fm->output_len++] = buf[i];
}

static inline void
fake_console_set_input(void *ctx, size_t (*handler)(void *, const uint8_t *, size_t), void *opaque)
{
    struct fake_machine *fm = ctx;
    fm->input = handler;
    fm->input_opaque = opaque;
}

static inline time_t fake_wall_clock(void)
{
    return FAKE_WALL_CLOCK;
}

static inline void fake_machine_init(struct fake_machine *fm)
{
    memset(fm, 0, sizeof(*fm));
    bus_init(&fm->pio, "pio", 0x10000);
    bus_init(&fm->mmio, "mmio", 0);
    fm->console = (struct device_console){fake_console_write, fake_console_set_input, fm};
    fm->host = (struct device_host){
        .pio = &fm->pio,
        .mmio = &fm->mmio,
        .set_irq = fake_set_irq,
        .irq_ctx = fm,
        .request_stop = fake_request_stop,
        .stop_ctx = fm,
        .console = &fm->console,
        .ram_below_4g = 256ULL << 20,
        .ram_above_4g = 2ULL << 30,
        .wall_clock = fake_wall_clock,
    };
}

static inline void fake_machine_destroy(struct fake_machine *fm)
{
    bus_destroy(&fm->pio);
    bus_destroy(&fm->mmio);
}

/* Instantiate the registered model `name` on fm; fails the test if it cannot. */
static inline void *fake_create(struct fake_machine *fm, const char *name)
{
    const struct device_model *model = device_model_find(name);
    assert_non_null(model);
    void *state = NULL;
    char err[256] = "";
    int rc = model->create(&fm->host, &state, err, sizeof(err));
    if (rc != 0)
        fail_msg("creating %s: %s", name, err);
    return state;
}

static inline void fake_destroy(const char *name, void *state)
{
    const struct device_model *model = device_model_find(name);
    assert_non_null(model);
    if (model->destroy)
        model->destroy(state);
}

static inline uint64_t pio_in(struct fake_machine *fm, uint16_t port, unsigned size)
{
    uint64_t v = 0;
    bus_read(&fm->pio, port, size, &v);
    return v;
}

static inline uint8_t inb(struct fake_machine *fm, uint16_t port)
{
    return (uint8_t)pio_in(fm, port, 1);
}

static inline void outb(struct fake_machine *fm, uint16_t port, uint8_t value)
{
    bus_write(&fm->pio, port, 1, value);
}

/* Every offset of every registered port range, every access size, reads and writes of junk:
 * nothing may crash, hang or trip the sanitizers. */
static inline void fake_hammer_ports(struct fake_machine *fm)
{
    static const unsigned sizes[] = {1, 2, 4, 8};
    static const uint64_t junk[] = {0, 0xff, 0xa5a5a5a5a5a5a5a5ULL, ~0ULL, 0x80, 0x7f};
    for (size_t r = 0; r < fm->pio.nr; r++) {
        uint64_t base = fm->pio.ranges[r].base, len = fm->pio.ranges[r].len;
        for (uint64_t off = 0; off <= len; off++)
            for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++)
                for (size_t j = 0; j < sizeof(junk) / sizeof(junk[0]); j++) {
                    uint64_t v;
                    bus_read(&fm->pio, base + off, sizes[s], &v);
                    bus_write(&fm->pio, base + off, sizes[s], junk[j]);
                    bus_read(&fm->pio, base + off, sizes[s], &v);
                }
        /* Callers other than the bus (a translator fast path) must not break bounds either. */
        const struct bus_range *range = &fm->pio.ranges[r];
        for (uint64_t off = 0; off < len + 16; off++)
            for (unsigned size = 0; size <= 9; size++) {
                if (range->ops->read)
                    range->ops->read(range->opaque, off, size);
                if (range->ops->write)
                    range->ops->write(range->opaque, off, size, 0x5a5a5a5a5a5a5a5aULL);
            }
    }
}

#endif
