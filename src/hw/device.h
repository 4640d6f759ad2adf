/* What a device model may use of the machine, and how it registers itself.
 *
 * Devices never reach into the VMM (Firecracker's rule): they get a `struct device_host`
 * with the buses, interrupt lines and MSIs, guest memory (DMA), the event loop, timers, the
 * console, resource allocators and a stop request, nothing more. Each device file declares a
 * DEVICE_MODEL(); the machine's device manager creates instances of them: every model marked
 * `default_instance` once (the PC's fixed devices), others once per command-line request
 * (`--disk ...` twice gives two virtio-blk instances), in the order of their levels
 * (kvmtool's init lists): interrupt controllers, platform devices, the PCI bus, PCI devices.
 * All devices exist before the firmware tables are written, and describe themselves to the
 * ACPI builder. */
#ifndef QUOKKA_HW_DEVICE_H
#define QUOKKA_HW_DEVICE_H

#include "vm/apic.h"
#include "vm/bus.h"
#include "vm/dma.h"
#include "vm/event_loop.h"
#include "vm/resources.h"

#include <stddef.h>
#include <stdint.h>
#include <time.h>

enum vm_stop_kind {
    VM_STOP_POWEROFF,   /* guest asked to power off: exit 0 */
    VM_STOP_REBOOT,     /* guest asked to reset: quokka has no warm reset, exit 0 */
    VM_STOP_DEBUG_EXIT, /* isa-debug-exit: status (V << 1) | 1 */
    VM_STOP_ERROR,      /* triple fault, accelerator error: exit 3 */
    VM_STOP_SIGNAL,     /* host SIGINT/SIGTERM */
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

struct opts;
struct pci_bus;

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
    /* Optional: the keyboard controller offers a Ctrl+Alt+Del key press (the API's
     * SendCtrlAltDel); `press` returns 0, or -1 when the guest cannot take it now. */
    void (*register_ctrl_alt_del)(void *ctx, int (*press)(void *opaque), void *opaque);
    void *irqchip_ctx;

    /* Guest memory for DMA (never NULL in a machine; unit tests may give a fake RAM). */
    const struct dma_space *dma;
    /* The I/O thread's event loop: devices watch their host fds here (eventfds of io_uring
     * completions, tap, sockets). */
    struct event_loop *loop;
    /* Where BARs and interrupt lines come from. */
    struct vm_resources *resources;
    /* The PCI bus, for devices at DEVICE_LEVEL_PCI (set once the host bridge exists). */
    struct pci_bus *pci;

    /* Message-signalled interrupts. A device allocates one route per vector it may raise
     * (-1: none left), programs it with the address/data the guest wrote (msi_set; data with
     * the mask bit of the MSI-X table is handled by the PCI layer, not here) and raises it
     * from any thread with msi_fire. With KVM a route is a GSI routed to the MSI and bound to
     * an irqfd, so firing costs one eventfd write and no trip through a vCPU thread; on the
     * translator it is a message to the user-space local APICs. */
    int (*msi_alloc)(void *ctx);
    void (*msi_set)(void *ctx, int route, uint64_t address, uint32_t data);
    void (*msi_fire)(void *ctx, int route);
    void *msi_ctx;
    /* Ask the accelerator to turn guest writes of `len` bytes at addr (MMIO when mmio, else a
     * port) into signals of eventfd fd without a vCPU exit (KVM ioeventfd); assign false
     * undoes it. Returns -1 when the accelerator cannot: the write then reaches the bus as
     * usual, so a device must handle both. NULL: never possible. */
    int (*ioeventfd)(void *ctx, bool mmio, uint64_t addr, unsigned len, int fd, bool assign);
    void *ioeventfd_ctx;
    /* Device work (virtqueues) only on the I/O loop, never on the vCPU thread that wrote a
     * doorbell: the machine sets it, so a vCPU thread's sandbox needs none of the back ends'
     * calls. Unit tests leave it off and see doorbells handled synchronously. */
    bool doorbells_on_loop;
    /* Number of vCPUs (e.g. one virtio-blk queue per vCPU). */
    unsigned nr_vcpus;
};

struct device_timer;
struct aml_buf;
struct snap_writer;
struct snap_reader;

/* Creation order: every device of a lower level exists before any of the next. */
enum device_level {
    DEVICE_LEVEL_IRQCHIP,  /* PIC, IOAPIC: routers the others' lines go to */
    DEVICE_LEVEL_PLATFORM, /* legacy ISA devices */
    DEVICE_LEVEL_PCI,      /* devices on the PCI bus (virtio) */
};

/* Per-instance configuration. */
struct device_args {
    unsigned instance;       /* 0 for the first instance of its model, then 1, 2... */
    const struct opts *opts; /* the command line's key=value options (never NULL) */
    /* The host console this instance talks to (the first UART, or virtio-console with
     * `--console virtio`), or NULL: output dropped, no input. */
    const struct device_console *console;
};

struct device_model {
    const char *name;
    enum device_level level;
    bool default_instance; /* created once without being asked for (the PC's fixed devices) */
    /* Option keys this model accepts on the command line (NULL-terminated), for messages. */
    const char *const *option_keys;
    /* Keys that may be given more than once (NULL-terminated, or NULL). */
    const char *const *repeatable_keys;
    /* The key a bare first word stands for (`--disk IMG` is `--disk path=IMG`), or NULL. */
    const char *implied_key;
    /* Register ranges and allocate state; on error fill err and return -1 (the message names
     * what is wrong, e.g. "disk 'x.img': no such file"). */
    int (*create)(const struct device_host *host, const struct device_args *args, void **state,
                  char *err, size_t errlen);
    void (*destroy)(void *state);
    /* Optional: AML for the DSDT's \_SB scope (e.g. the PCI root bridge, COM ports). */
    void (*describe_acpi)(void *state, struct aml_buf *aml);
    /* Snapshots (vm/snapshot.h), called while every vCPU is parked: save writes the
     * guest-visible state; load puts it into a freshly created instance (re-arming timers,
     * re-driving lines) and returns -1 with a message when the data is malformed (it is
     * bounded like guest input). A model with neither, unless `stateless`, cannot be
     * snapshotted yet. */
    void (*save)(void *state, struct snap_writer *w);
    /* Optional, before save: finish the I/O in flight (-1 with a message when it does not
     * finish in time). */
    int (*quiesce)(void *state, char *err, size_t errlen);
    /* Optional, after the snapshot was written (or a later device's quiesce failed): resume
     * what quiesce held back (backends delivering into guest memory). */
    void (*thaw)(void *state);
    int (*load)(void *state, struct snap_reader *r, char *err, size_t errlen);
    bool stateless;
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
