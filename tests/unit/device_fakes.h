/* A fake machine for device-model unit tests: real port bus, recorded interrupt levels, stop
 * requests and console output, a captured console input handler and a fixed wall clock.
 * Include after <cmocka.h>. */
#ifndef QUOKKA_TESTS_DEVICE_FAKES_H
#define QUOKKA_TESTS_DEVICE_FAKES_H

#include "hw/device.h"
#include "util/opts.h"
#include "vm/bus.h"
#include "vm/timers.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FAKE_NR_IRQS 24
#define FAKE_WALL_CLOCK 1709214310 /* 2024-02-29 13:45:10 UTC, a Thursday */
#define FAKE_NR_TIMERS 8
#define FAKE_NR_ARMS 256
#define FAKE_CLOCK_START 1000000000ULL
#define FAKE_NR_ROUTERS 4
#define FAKE_NR_MSGS 64 /* fake monotonic clock after enable_timers: 1 s */

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

    /* fake_machine_enable_timers(): a clock the test moves by hand and timers it fires with
     * fake_run_timers(); every arm with a non-zero deadline is logged in order. */
    uint64_t now_ns;
    struct device_timer timers[FAKE_NR_TIMERS];
    unsigned nr_timers;
    uint64_t arms[FAKE_NR_ARMS];
    unsigned nr_arms; /* may exceed FAKE_NR_ARMS; only the first ones are kept */

    /* fake_machine_enable_irqchip(): the captured routers (route/route_opaque: the first
     * one, usually the PIC) and acknowledge, the INTR pin, APIC messages and EOI listener. */
    void (*route)(void *opaque, uint32_t gsi, int level);
    void *route_opaque;
    struct {
        void (*route)(void *opaque, uint32_t gsi, int level);
        void *opaque;
    } routers[FAKE_NR_ROUTERS];
    unsigned nr_routers;
    struct apic_msg msgs[FAKE_NR_MSGS];
    unsigned nr_msgs; /* may exceed FAKE_NR_MSGS; only the first ones are kept */
    void (*eoi)(void *opaque, uint8_t vector);
    void *eoi_opaque;
    int (*intack)(void *opaque, unsigned vcpu);
    void *intack_opaque;
    int intr_level;
    unsigned intr_calls;
};

static inline void fake_set_irq(void *ctx, uint32_t gsi, int level)
{
    struct fake_machine *fm = ctx;
    assert_true(gsi < FAKE_NR_IRQS);
    assert_true(level == 0 || level == 1);
    fm->irq_level[gsi] = level;
    fm->irq_calls[gsi]++;
    /* With a user-space irqchip the machine hands lines to every registered router. */
    for (unsigned i = 0; i < fm->nr_routers; i++)
        fm->routers[i].route(fm->routers[i].opaque, gsi, level);
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

static inline uint64_t fake_clock_ns(void *ctx)
{
    struct fake_machine *fm = ctx;
    return fm->now_ns;
}

static inline struct device_timer *fake_timer_new(void *ctx, void (*callback)(void *), void *opaque)
{
    struct fake_machine *fm = ctx;
    assert_true(fm->nr_timers < FAKE_NR_TIMERS);
    struct device_timer *t = &fm->timers[fm->nr_timers++];
    *t = (struct device_timer){.callback = callback, .opaque = opaque};
    return t;
}

static inline void fake_timer_arm(void *ctx, struct device_timer *timer, uint64_t deadline_ns)
{
    struct fake_machine *fm = ctx;
    assert_true(timer >= fm->timers && timer < fm->timers + fm->nr_timers);
    timer->deadline_ns = deadline_ns;
    if (deadline_ns) {
        if (fm->nr_arms < FAKE_NR_ARMS)
            fm->arms[fm->nr_arms] = deadline_ns;
        fm->nr_arms++;
    }
}

/* Fire each timer due at now_ns once, as the machine's I/O loop does (a timer re-armed into
 * the past waits for the next call). Returns how many fired. */
static inline unsigned fake_run_timers(struct fake_machine *fm)
{
    unsigned fired = 0;
    for (unsigned i = 0; i < fm->nr_timers; i++) {
        struct device_timer *t = &fm->timers[i];
        if (t->deadline_ns && t->deadline_ns <= fm->now_ns) {
            t->deadline_ns = 0;
            t->callback(t->opaque);
            fired++;
        }
    }
    return fired;
}

/* Earliest armed deadline, or 0 when none is armed. */
static inline uint64_t fake_next_deadline(const struct fake_machine *fm)
{
    uint64_t earliest = 0;
    for (unsigned i = 0; i < fm->nr_timers; i++)
        if (fm->timers[i].deadline_ns && (!earliest || fm->timers[i].deadline_ns < earliest))
            earliest = fm->timers[i].deadline_ns;
    return earliest;
}

static inline void fake_set_cpu_intr(void *ctx, unsigned vcpu, int level)
{
    struct fake_machine *fm = ctx;
    assert_int_equal(vcpu, 0);
    assert_true(level == 0 || level == 1);
    fm->intr_level = level;
    fm->intr_calls++;
}

static inline void fake_register_irq_router(void *ctx, void (*route)(void *, uint32_t, int),
                                            void *opaque)
{
    struct fake_machine *fm = ctx;
    /* As the machine: add, or with route NULL remove the router registered with opaque. */
    for (unsigned i = 0; i < fm->nr_routers; i++)
        if (fm->routers[i].opaque == opaque) {
            memmove(&fm->routers[i], &fm->routers[i + 1],
                    (fm->nr_routers - i - 1) * sizeof(fm->routers[0]));
            fm->nr_routers--;
            break;
        }
    if (route) {
        assert_true(fm->nr_routers < FAKE_NR_ROUTERS);
        fm->routers[fm->nr_routers].route = route;
        fm->routers[fm->nr_routers++].opaque = opaque;
    }
    fm->route = fm->nr_routers ? fm->routers[0].route : NULL;
    fm->route_opaque = fm->nr_routers ? fm->routers[0].opaque : NULL;
}

static inline void fake_send_apic_msg(void *ctx, const struct apic_msg *msg)
{
    struct fake_machine *fm = ctx;
    if (fm->nr_msgs < FAKE_NR_MSGS)
        fm->msgs[fm->nr_msgs] = *msg;
    fm->nr_msgs++;
}

static inline void fake_register_eoi(void *ctx, void (*eoi)(void *, uint8_t), void *opaque)
{
    struct fake_machine *fm = ctx;
    fm->eoi = eoi;
    fm->eoi_opaque = opaque;
}

static inline void fake_register_intack(void *ctx, int (*intack)(void *, unsigned), void *opaque)
{
    struct fake_machine *fm = ctx;
    fm->intack = intack;
    fm->intack_opaque = opaque;
}

static inline void fake_machine_enable_timers(struct fake_machine *fm)
{
    fm->now_ns = FAKE_CLOCK_START;
    fm->host.clock_ns = fake_clock_ns;
    fm->host.timer_new = fake_timer_new;
    fm->host.timer_arm = fake_timer_arm;
    fm->host.timer_ctx = fm;
}

/* The translator's configuration: user-space PIC/PIT/IOAPIC (and timers they need). */
static inline void fake_machine_enable_irqchip(struct fake_machine *fm)
{
    fake_machine_enable_timers(fm);
    fm->host.user_irqchip = true;
    fm->host.register_irq_router = fake_register_irq_router;
    fm->host.set_cpu_intr = fake_set_cpu_intr;
    fm->host.register_intack = fake_register_intack;
    fm->host.send_apic_msg = fake_send_apic_msg;
    fm->host.register_eoi = fake_register_eoi;
    fm->host.irqchip_ctx = fm;
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
    struct opts no_opts = {0};
    struct device_args args = {.instance = 0, .opts = &no_opts, .console = &fm->console};
    int rc = model->create(&fm->host, &args, &state, err, sizeof(err));
    if (rc != 0)
        fail_msg("creating %s: %s", name, err);
    return state;
}

/* Every default model (the PC's fixed devices), level by level as the machine creates them;
 * states[i] belongs to __start_quokka_devices[i] (NULL for models not created). */
static inline void **fake_create_default_models(struct fake_machine *fm)
{
    size_t n = (size_t)(__stop_quokka_devices - __start_quokka_devices);
    void **states = calloc(n ? n : 1, sizeof(*states));
    assert_non_null(states);
    struct opts no_opts = {0};
    for (int level = DEVICE_LEVEL_IRQCHIP; level <= DEVICE_LEVEL_PCI; level++)
        for (size_t i = 0; i < n; i++) {
            const struct device_model *m = __start_quokka_devices[i];
            if (!m->default_instance || (int)m->level != level)
                continue;
            char err[256] = "";
            struct device_args args = {.instance = 0, .opts = &no_opts, .console = &fm->console};
            if (m->create(&fm->host, &args, &states[i], err, sizeof(err)) != 0)
                fail_msg("creating %s: %s", m->name, err);
        }
    return states;
}

static inline void fake_destroy_models(void **states)
{
    size_t n = (size_t)(__stop_quokka_devices - __start_quokka_devices);
    for (size_t i = n; i-- > 0;)
        if (states[i] && __start_quokka_devices[i]->destroy)
            __start_quokka_devices[i]->destroy(states[i]);
    free(states);
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
        struct bus_hit range;
        assert_true(bus_find(&fm->pio, fm->pio.ranges[r].base, 1, &range));
        uint64_t base = range.base, len = range.len;
        for (uint64_t off = 0; off <= len; off++)
            for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++)
                for (size_t j = 0; j < sizeof(junk) / sizeof(junk[0]); j++) {
                    uint64_t v;
                    bus_read(&fm->pio, base + off, sizes[s], &v);
                    bus_write(&fm->pio, base + off, sizes[s], junk[j]);
                    bus_read(&fm->pio, base + off, sizes[s], &v);
                }
        /* Callers other than the bus (a translator fast path) must not break bounds either. */
        for (uint64_t off = 0; off < len + 16; off++)
            for (unsigned size = 0; size <= 9; size++) {
                if (range.ops->read)
                    range.ops->read(range.opaque, off, size);
                if (range.ops->write)
                    range.ops->write(range.opaque, off, size, 0x5a5a5a5a5a5a5a5aULL);
            }
    }
}

#endif
