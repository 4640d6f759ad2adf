/* The accelerator interface: everything above this line is independent of how guest code runs
 * (KVM or quokka's translator). Nothing outside src/accel/ includes <linux/kvm.h>. */
#ifndef QUOKKA_ACCEL_ACCEL_H
#define QUOKKA_ACCEL_ACCEL_H

#include "vm/apic.h"
#include "vm/cpu_state.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct guest_memory;
struct bus;
struct snap_writer;
struct snap_reader;

enum accel_kind { ACCEL_AUTO, ACCEL_KVM, ACCEL_TCG };

/* Accelerator settings, part of the machine's configuration (CLI, config file and API fill
 * it; QUOKKA_TCG_BACKEND and QUOKKA_TCG_CODE_KB override it, see accel_settings_from_env). */
enum tcg_backend_choice { TCG_BACKEND_NATIVE, TCG_BACKEND_INTERP };
struct accel_settings {
    enum tcg_backend_choice tcg_backend; /* native falls back to interp where unavailable */
    unsigned tcg_code_kb;                /* native code buffer in KiB; 0: the default */
    bool tcg_stats;                      /* print the translator's counters at exit (stats.h) */
    bool tcg_perf_map;    /* write /tmp/perf-PID.map naming generated blocks for perf */
    bool tcg_count_insns; /* count guest instructions in generated code (QUOKKA_STATS) */
};

#define TCG_CODE_KB_MIN 64u
#define TCG_CODE_KB_MAX (128u << 10)

/* Environment overrides of *s; a bad value is named on stderr and ignored. */
void accel_settings_from_env(struct accel_settings *s);
int accel_parse_tcg_backend(const char *text, enum tcg_backend_choice *out);

enum accel_exit_reason {
    ACCEL_EXIT_IO,       /* port access; reads are completed by filling io.data before run() */
    ACCEL_EXIT_MMIO,     /* access outside RAM; same completion rule */
    ACCEL_EXIT_HALT,     /* HLT with interrupts unable to wake it (user-space irqchip only) */
    ACCEL_EXIT_SHUTDOWN, /* triple fault */
    ACCEL_EXIT_STOPPED,  /* accel_vcpu_kick() from another thread */
    ACCEL_EXIT_ERROR,    /* the accelerator cannot continue; error.msg says why */
    ACCEL_EXIT_DEBUG,    /* a debugger's breakpoint, watchpoint or single step (set_debug) */
};

/* Guest debugging (the gdbstub, src/vm/gdbstub.c): what a vCPU stops for. Breakpoints are at
 * linear addresses and stop before the instruction there runs; watchpoints stop after the
 * instruction that accessed [addr, addr+len). Guest-visible state is not changed (no 0xCC is
 * written into guest memory, the guest's own DR0-DR7 keep working on the translator). */
#define ACCEL_MAX_BREAKPOINTS 64
#define ACCEL_MAX_WATCHPOINTS 4
enum accel_watch_kind { ACCEL_WATCH_WRITE = 1, ACCEL_WATCH_READ = 2, ACCEL_WATCH_ACCESS = 3 };
struct accel_watchpoint {
    uint64_t addr;
    uint8_t len;  /* 1..8 */
    uint8_t kind; /* enum accel_watch_kind */
};
struct accel_debug {
    bool single_step; /* stop after one instruction; no interrupt is taken before it */
    unsigned nr_breakpoints;
    uint64_t breakpoint[ACCEL_MAX_BREAKPOINTS];
    unsigned nr_watchpoints;
    struct accel_watchpoint watchpoint[ACCEL_MAX_WATCHPOINTS];
};
enum accel_debug_kind { ACCEL_DEBUG_STEP, ACCEL_DEBUG_BREAKPOINT, ACCEL_DEBUG_WATCHPOINT };

struct accel_exit {
    enum accel_exit_reason reason;
    union {
        struct {
            uint16_t port;
            uint8_t size; /* 1, 2 or 4 */
            bool is_write;
            uint32_t count; /* >1 for string I/O: count items of size bytes in data */
            uint8_t *data;
        } io;
        struct {
            uint64_t gpa;
            uint8_t size; /* 1..8 */
            bool is_write;
            uint8_t *data;
        } mmio;
        struct {
            char msg[160];
        } error;
        struct {
            enum accel_debug_kind kind;
            uint64_t addr;      /* the breakpoint's or the watched access's address */
            uint8_t watch_kind; /* enum accel_watch_kind, for watchpoints */
        } debug;
    };
};

struct accel_vm_config {
    struct guest_memory *mem;
    struct bus *pio; /* the translator dispatches accesses itself; KVM returns exits */
    struct bus *mmio;
    unsigned nr_vcpus;
    /* Accelerators without an in-kernel irqchip ask the machine's interrupt controller model
     * for the vector when they accept an interrupt (-1: spurious, nothing pending). */
    int (*intack)(void *ctx, unsigned vcpu);
    void *intack_ctx;
    /* Same accelerators: a local APIC retired a level-triggered vector (EOI broadcast to the
     * IOAPIC). Called on the vCPU thread; may send APIC messages back. NULL: nobody listens. */
    void (*eoi)(void *ctx, uint8_t vector);
    /* The guest clock timers count in (NULL: the host's monotonic clock). */
    struct guest_clock *clock;
    const struct accel_settings *settings; /* NULL: defaults */
};

struct accel_vm;
struct accel_vcpu;

#define ACCEL_MAX_MSI_ROUTES 1024

struct accel_ops {
    const char *name;
    /* PIC, IOAPIC, LAPIC and PIT live in the accelerator (KVM's kernel); otherwise the
     * machine instantiates user-space models and drives the vCPU's INTR pin via set_intr. */
    bool in_kernel_irqchip;
    /* 0 if this accelerator can run guests here; else -1 and why. */
    int (*probe)(char *why, size_t len);
    /* Optional, stricter: 0 if it can also run an operating system (interrupt delivery).
     * --accel auto requires it; an explicit --accel only needs probe(). */
    int (*probe_guest_os)(char *why, size_t len);
    int (*vm_create)(const struct accel_vm_config *cfg, struct accel_vm **out, char *err,
                     size_t errlen);
    void (*vm_destroy)(struct accel_vm *vm);
    /* CPUID leaves this accelerator can run; the machine filters them into its model. */
    int (*supported_cpuid)(struct accel_vm *vm, struct cpuid_model *out, char *err, size_t errlen);
    int (*set_irq)(struct accel_vm *vm, uint32_t gsi, int level); /* in-kernel irqchip */
    void (*set_intr)(struct accel_vcpu *vcpu, int level);         /* user irqchip: the INTR pin */
    /* User irqchip with local APICs in the accelerator: deliver an IOAPIC message. Any thread;
     * NULL when the accelerator has no local APIC. */
    void (*apic_msg)(struct accel_vm *vm, const struct apic_msg *msg);
    /* Optional (accelerators that cache translated guest code): host code wrote guest RAM
     * [gpa, gpa+len). Any thread; the translation is dropped before the vCPU runs on. */
    void (*notify_ram_write)(struct accel_vm *vm, uint64_t gpa, uint64_t len);
    /* Optional (KVM): route MSI number `route` (0..ACCEL_MAX_MSI_ROUTES-1) to address/data
     * and return in *fd an eventfd that raises it when written (irqfd), created on first
     * use. -1 when routing failed (the caller then delivers through apic_msg or drops). */
    int (*msi_route)(struct accel_vm *vm, unsigned route, uint64_t address, uint32_t data, int *fd);
    /* Optional (KVM): writes of len bytes at addr signal fd without an exit (ioeventfd). */
    int (*ioeventfd)(struct accel_vm *vm, bool mmio, uint64_t addr, unsigned len, int fd,
                     bool assign);

    int (*vcpu_create)(struct accel_vm *vm, unsigned index, struct accel_vcpu **out, char *err,
                       size_t errlen);
    void (*vcpu_destroy)(struct accel_vcpu *vcpu);
    int (*set_cpuid)(struct accel_vcpu *vcpu, const struct cpuid_model *model);
    int (*get_state)(struct accel_vcpu *vcpu, struct vcpu_state *state);
    int (*set_state)(struct accel_vcpu *vcpu, const struct vcpu_state *state);
    /* Optional (debugging): x87/SSE state, called while the vCPU is stopped between two
     * run() calls. set returns -1 for a value the CPU would refuse (reserved MXCSR bits). */
    int (*get_fpu)(struct accel_vcpu *vcpu, struct vcpu_fpu *fpu);
    int (*set_fpu)(struct accel_vcpu *vcpu, const struct vcpu_fpu *fpu);
    int (*get_msrs)(struct accel_vcpu *vcpu, struct vcpu_msr *msrs, unsigned n);
    int (*set_msrs)(struct accel_vcpu *vcpu, const struct vcpu_msr *msrs, unsigned n);
    /* Run until an exit the caller must handle. Called on the vCPU's own thread. */
    int (*run)(struct accel_vcpu *vcpu, struct accel_exit *exit);
    /* Make a running (or about to run) run() return ACCEL_EXIT_STOPPED. Any thread. */
    void (*kick)(struct accel_vcpu *vcpu);
    /* Prepare the calling thread to be this vCPU's thread (signal setup etc.). */
    int (*vcpu_thread_init)(struct accel_vcpu *vcpu);
    /* Optional (snapshots): the vCPU's whole state (registers, FPU/SSE, MSRs, local APIC),
     * called while it is stopped between two run() calls. load returns -1 with a message on
     * malformed data. NULL: this accelerator cannot snapshot yet. */
    void (*save_vcpu)(struct accel_vcpu *vcpu, struct snap_writer *w);
    int (*load_vcpu)(struct accel_vcpu *vcpu, struct snap_reader *r, char *err, size_t errlen);
    /* Optional (debugging): what the vCPU stops for from its next run() on; called while it
     * is stopped between two run() calls (the machine is paused). -1 with a reason when the
     * accelerator cannot do it (e.g. more hardware breakpoints than it has). */
    int (*set_debug)(struct accel_vcpu *vcpu, const struct accel_debug *dbg, char *err,
                     size_t errlen);
    /* Optional (debugging): the guest-physical address of linear address gva through the
     * vCPU's current page tables, as a supervisor read would see it; -1 where unmapped. */
    int (*translate_gva)(struct accel_vcpu *vcpu, uint64_t gva, uint64_t *gpa);
    /* Optional: guest instructions executed so far (for benchmarks); NULL when unknown. */
    uint64_t (*guest_insns)(struct accel_vcpu *vcpu);
};

extern const struct accel_ops kvm_accel_ops;
extern const struct accel_ops tcg_accel_ops;

/* Resolve --accel: auto picks KVM when probe() succeeds, else the translator. Returns NULL and
 * a one-line reason when nothing usable is available. */
const struct accel_ops *accel_select(enum accel_kind kind, char *why, size_t len);
int accel_parse_kind(const char *text, enum accel_kind *out);

#endif
