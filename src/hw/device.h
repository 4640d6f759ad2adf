/* What a device model may use of the machine, and how it registers itself.
 *
 * Devices never reach into the VMM (Firecracker's rule): they get a `struct device_host`
 * with the buses, an interrupt line setter, the console and a stop request, nothing more.
 * Each device file declares a DEVICE_MODEL(); the machine instantiates every model found in
 * the `quokka_devices` section (kvmtool-style self registration, without mutable globals). */
#ifndef QUOKKA_HW_DEVICE_H
#define QUOKKA_HW_DEVICE_H

#include "vm/apic.h"
#include "vm/bus.h"

#include <stddef.h>
#include <stdint.h>
#include <time.h>

enum vm_stop_kind {
    VM_STOP_POWEROFF, /* guest asked to power off: exit 0 */
    VM_STOP_REBOOT,   /* guest asked to reset: quokka has no warm reset, exit 0 */
    VM_STOP_DEBUG_EXIT, /* isa-debug-exit: status (V << 1) | 1 */
    VM_STOP_ERROR,    /* triple fault, accelerator error: exit 3 */
    VM_STOP_SIGNAL,   /* host SIGINT/SIGTERM */
};

/* Console the guest's serial port talks to. Output is written synchronously; input is pushed
 * by the machine's I/O thread through the handler the device installs. */
struct device_console {
    void (*write)(void *ctx, const uint8_t *buf, size_t len);
    /* Install the receiver of host input. handler returns how many bytes it accepted; the rest
     * is offered again later (flow control, the guest drains its FIFO). */
    void (*set_input)(void *ctx, size_t (*handler)(void *opaque, const uint8_t *buf, size_t len),
                      void *opaque);
    void *ctx;
};

struct device_host {
    struct bus *pio;
    struct bus *mmio;
    /* Drive interrupt line `gsi` (ISA IRQ numbers equal GSIs 0-15); level 1 asserted. Edge
     * devices pulse 1 then 0. Safe to call from any thread. */
    void (*set_irq)(void *ctx, uint32_t gsi, int level);
    void *irq_ctx;
    /* Ask the machine to stop all vCPUs and exit. Safe from any thread; first request wins. */
    void (*request_stop)(void *ctx, enum vm_stop_kind kind, uint32_t value);
    void *stop_ctx;
    const struct device_console *console;
    uint64_t ram_below_4g; /* for CMOS memory-size registers */
    uint64_t ram_above_4g;
    /* Host wall clock the RTC starts from (injectable for tests). */
    time_t (*wall_clock)(void);

    /* Monotonic clock in nanoseconds the guest's timers count in, and one-shot timers whose
     * callbacks run on the machine's I/O thread (never on a vCPU thread). timer_arm with
     * deadline 0 disarms; re-arming replaces the deadline. Safe from any thread. */
    uint64_t (*clock_ns)(void *ctx);
    struct device_timer *(*timer_new)(void *ctx, void (*callback)(void *opaque), void *opaque);
    void (*timer_arm)(void *ctx, struct device_timer *timer, uint64_t deadline_ns);
    void *timer_ctx;

    /* True when the accelerator has no in-kernel interrupt controller and timer (the
     * translator). Only then do the PIC/PIT (and later IOAPIC/LAPIC) models instantiate;
     * with KVM they leave *state NULL and register nothing. */
    bool user_irqchip;
    /* user_irqchip only: interrupt controllers become receivers of set_irq() lines (every
     * registered router sees every line: the PIC and the IOAPIC are wired in parallel, as on a
     * PC; route NULL unregisters the router registered with `opaque`). The PIC drives the
     * vCPU's INTR pin and answers the vCPU's interrupt acknowledge with a vector (or -1 when
     * nothing is pending any more: a spurious interrupt). */
    void (*register_irq_router)(void *ctx, void (*route)(void *opaque, uint32_t gsi, int level),
                                void *opaque);
    void (*set_cpu_intr)(void *ctx, unsigned vcpu, int level);
    void (*register_intack)(void *ctx, int (*intack)(void *opaque, unsigned vcpu), void *opaque);
    /* user_irqchip only: the IOAPIC sends messages to the local APICs, and hears their EOIs
     * for level-triggered vectors (eoi NULL unregisters). Safe from any thread; the EOI
     * callback runs on a vCPU thread with no APIC lock held. */
    void (*send_apic_msg)(void *ctx, const struct apic_msg *msg);
    void (*register_eoi)(void *ctx, void (*eoi)(void *opaque, uint8_t vector), void *opaque);
    void *irqchip_ctx;
};

struct device_timer;

struct device_model {
    const char *name;
    /* Register ranges and allocate state; on error fill err and return -1. */
    int (*create)(const struct device_host *host, void **state, char *err, size_t errlen);
    void (*destroy)(void *state);
};

#define DEVICE_MODEL(ident)                                                                        \
    static const struct device_model ident;                                                        \
    static const struct device_model *const ident##_entry                                          \
        __attribute__((used, section("quokka_devices"))) = &ident;                                 \
    static const struct device_model ident

/* Walk the registered models. */
extern const struct device_model *const __start_quokka_devices[];
extern const struct device_model *const __stop_quokka_devices[];

/* The registered model called `name`, or NULL (tests create devices one by one with it). */
const struct device_model *device_model_find(const char *name);

#endif
