/* The machine's insides, shared by machine.c and machine_snapshot.c only. */
#ifndef QUOKKA_VM_MACHINE_INTERNAL_H
#define QUOKKA_VM_MACHINE_INTERNAL_H

#include "hw/device.h"
#include "vm/boot/boot.h"
#include "vm/bus.h"
#include "vm/console.h"
#include "vm/devices.h"
#include "vm/dma.h"
#include "vm/guest_clock.h"
#include "vm/machine.h"
#include "vm/memory.h"
#include "vm/resources.h"
#include "vm/timers.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>

#define MACHINE_MAX_IRQ_ROUTERS 4

struct machine;

struct vcpu_slot {
    struct machine *machine;
    struct accel_vcpu *accel;
    unsigned index;
    pthread_t thread;
    bool thread_started;
};

struct machine {
    const struct machine_config *cfg;
    struct guest_memory mem;
    struct bus pio, mmio;
    const struct accel_ops *accel;
    struct accel_vm *accel_vm;
    struct vcpu_slot vcpus[MACHINE_MAX_VCPUS];
    unsigned nr_vcpus;
    struct device_manager devices;
    struct pci_bus *pci;
    struct vm_resources resources;
    bool resources_ready;
    struct dma_space dma;
    struct event_loop *loop;
    struct device_host host;
    struct console console;
    bool console_open;

    struct boot_result boot;

    atomic_bool stop_requested;
    int exit_status;
    int stop_event_fd; /* wakes the I/O loop when a stop is requested */
    int timer_wake_fd; /* wakes the I/O loop when a timer deadline moves earlier */
    struct timer_list timers;
    bool timers_ready;
    struct guest_clock clock; /* what every timer device counts in; stops while paused */

    /* Lifecycle (machine.h). `state` changes under state_lock, taken by the controlling
     * threads (main, API), never by a vCPU. */
    pthread_mutex_t state_lock;
    _Atomic int state;
    /* The vCPU rendezvous: a pause request makes every vCPU leave run() at an instruction
     * boundary and park here, counted in `parked`, until resumed or stopped. */
    pthread_mutex_t park_lock;
    pthread_cond_t park_cond; /* parked changed, or the pause ended */
    unsigned parked;
    atomic_bool pause_requested;
    int signal_fd;
    sigset_t old_sigmask;
    bool sigmask_saved;
    struct gdbstub *gdb; /* --gdb */
    int (*ctrl_alt_del)(void *opaque);
    void *ctrl_alt_del_opaque;

    /* User-space interrupt controllers (accelerators without an in-kernel irqchip): every
     * router sees every line (PIC and IOAPIC in parallel). Registered while devices are
     * created, before any thread runs, so the lists are read without a lock. */
    struct irq_router {
        void (*route)(void *opaque, uint32_t gsi, int level);
        void *opaque;
    } routers[MACHINE_MAX_IRQ_ROUTERS];
    unsigned nr_routers;
    int (*intack)(void *opaque, unsigned vcpu);
    void *intack_opaque;
    void (*eoi)(void *opaque, uint8_t vector);
    void *eoi_opaque;

    /* MSI routes handed to devices (msi_alloc); with KVM each is an irqfd. */
    pthread_mutex_t msi_lock;
    unsigned nr_msi_routes;
    struct machine_msi {
        _Atomic uint64_t address;
        _Atomic uint32_t data;
        _Atomic int irqfd; /* KVM: write to raise; -1: deliver through apic_msg */
    } msi[ACCEL_MAX_MSI_ROUTES];
};

/* machine_snapshot.c: put a snapshot's clock, vCPUs and devices into a created machine. */
int machine_restore_state(struct machine *m, char *err, size_t errlen);

#endif
