#include "vm/machine.h"
#include "vm/machine_internal.h"
#include "vm/gdbstub.h"

#include "hw/device.h"
#include "hw/pci/pci.h"
#include "util/log.h"
#include "util/opts.h"
#include "vm/boot/boot.h"
#include "vm/bus.h"
#include "vm/cpuid.h"
#include "vm/devices.h"
#include "vm/dma.h"
#include "vm/event_loop.h"
#include "vm/platform.h"
#include "vm/resources.h"
#include "vm/sandbox.h"
#include "vm/e820.h"
#include "vm/memory.h"
#include "vm/guest_clock.h"
#include "vm/timers.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* --- files --------------------------------------------------------------------------------- */

int load_file(const char *what, const char *path, uint64_t max_size, uint8_t **data, size_t *size,
              char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return qk_fail(err, errlen, "cannot read %s '%s': %s", what, path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return qk_fail(err, errlen, "%s '%s' is not a regular file", what, path);
    }
    if (st.st_size == 0 || (uint64_t)st.st_size > max_size) {
        close(fd);
        return qk_fail(err, errlen, "%s '%s' has size %lld bytes (must be 1..%llu)", what, path,
                       (long long)st.st_size, (unsigned long long)max_size);
    }
    uint8_t *buf = malloc((size_t)st.st_size);
    if (!buf) {
        close(fd);
        return qk_fail(err, errlen, "out of memory reading %s '%s'", what, path);
    }
    size_t done = 0;
    while (done < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + done, (size_t)st.st_size - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = n < 0 ? errno : EIO;
            free(buf);
            close(fd);
            return qk_fail(err, errlen, "cannot read %s '%s': %s", what, path, strerror(e));
        }
        done += (size_t)n;
    }
    close(fd);
    *data = buf;
    *size = done;
    return 0;
}

/* --- stop requests and services given to devices ------------------------------------------- */

static int exit_status_for(enum vm_stop_kind kind, uint32_t value)
{
    switch (kind) {
    case VM_STOP_POWEROFF:
    case VM_STOP_REBOOT:
        return EXIT_GUEST_OK;
    case VM_STOP_DEBUG_EXIT:
        return (int)(((value << 1) | 1) & 0xff);
    case VM_STOP_ERROR:
        return EXIT_GUEST_CRASH;
    case VM_STOP_SIGNAL:
        return 128 + (int)value;
    }
    return EXIT_GUEST_CRASH;
}

static void machine_request_stop(void *ctx, enum vm_stop_kind kind, uint32_t value)
{
    struct machine *m = ctx;
    bool expected = false;
    if (!atomic_compare_exchange_strong(&m->stop_requested, &expected, true))
        return; /* first request decides the exit status */
    m->exit_status = exit_status_for(kind, value);
    atomic_thread_fence(memory_order_seq_cst);
    uint64_t one = 1;
    if (write(m->stop_event_fd, &one, sizeof(one)) < 0) {
        /* the eventfd cannot overflow with one write; nothing useful to do on failure */
    }
    for (unsigned i = 0; i < m->nr_vcpus; i++)
        if (m->vcpus[i].accel)
            m->accel->kick(m->vcpus[i].accel);
    pthread_mutex_lock(&m->park_lock);
    pthread_cond_broadcast(&m->park_cond);
    pthread_mutex_unlock(&m->park_lock);
}

void machine_stop(struct machine *m, enum vm_stop_kind kind, uint32_t value)
{
    machine_request_stop(m, kind, value);
}

static void machine_set_irq(void *ctx, uint32_t gsi, int level)
{
    struct machine *m = ctx;
    if (m->accel->in_kernel_irqchip)
        m->accel->set_irq(m->accel_vm, gsi, level);
    else
        for (unsigned i = 0; i < m->nr_routers; i++)
            m->routers[i].route(m->routers[i].opaque, gsi, level);
}

/* Adds a router, or with route NULL removes the one registered with opaque. */
static void machine_register_irq_router(void *ctx, void (*route)(void *, uint32_t, int),
                                        void *opaque)
{
    struct machine *m = ctx;
    for (unsigned i = 0; i < m->nr_routers; i++)
        if (m->routers[i].opaque == opaque) {
            m->routers[i] = m->routers[--m->nr_routers];
            break;
        }
    if (route && m->nr_routers < MACHINE_MAX_IRQ_ROUTERS)
        m->routers[m->nr_routers++] = (struct irq_router){route, opaque};
    else if (route)
        qk_error("too many interrupt routers: one is left unconnected");
}

static void machine_send_apic_msg(void *ctx, const struct apic_msg *msg)
{
    struct machine *m = ctx;
    if (m->accel_vm && m->accel->apic_msg)
        m->accel->apic_msg(m->accel_vm, msg);
}

static void machine_register_eoi(void *ctx, void (*eoi)(void *, uint8_t), void *opaque)
{
    struct machine *m = ctx;
    m->eoi = eoi;
    m->eoi_opaque = opaque;
}

/* Called by the accelerator when a local APIC retires a level-triggered vector. */
static void machine_eoi(void *ctx, uint8_t vector)
{
    struct machine *m = ctx;
    if (m->eoi)
        m->eoi(m->eoi_opaque, vector);
}

static void machine_set_cpu_intr(void *ctx, unsigned vcpu, int level)
{
    struct machine *m = ctx;
    if (vcpu < m->nr_vcpus && m->vcpus[vcpu].accel && m->accel->set_intr)
        m->accel->set_intr(m->vcpus[vcpu].accel, level);
}

static void machine_register_intack(void *ctx, int (*intack)(void *, unsigned), void *opaque)
{
    struct machine *m = ctx;
    m->intack = intack;
    m->intack_opaque = opaque;
}

/* Called by the accelerator when the vCPU accepts an external interrupt. */
static int machine_intack(void *ctx, unsigned vcpu)
{
    struct machine *m = ctx;
    return m->intack ? m->intack(m->intack_opaque, vcpu) : -1;
}

static uint64_t machine_clock_ns(void *ctx)
{
    struct machine *m = ctx;
    return guest_clock_now(&m->clock);
}

static void machine_register_ctrl_alt_del(void *ctx, int (*press)(void *), void *opaque)
{
    struct machine *m = ctx;
    m->ctrl_alt_del = press;
    m->ctrl_alt_del_opaque = opaque;
}

static struct device_timer *machine_timer_new(void *ctx, void (*callback)(void *), void *opaque)
{
    struct machine *m = ctx;
    return timers_new(&m->timers, callback, opaque);
}

static void machine_timer_arm(void *ctx, struct device_timer *timer, uint64_t deadline_ns)
{
    struct machine *m = ctx;
    timers_arm(&m->timers, timer, deadline_ns);
}

static void machine_notify_ram_write(void *ctx, uint64_t gpa, uint64_t len)
{
    struct machine *m = ctx;
    m->accel->notify_ram_write(m->accel_vm, gpa, len);
}

static int machine_msi_alloc(void *ctx)
{
    struct machine *m = ctx;
    pthread_mutex_lock(&m->msi_lock);
    int route = m->nr_msi_routes < ACCEL_MAX_MSI_ROUTES ? (int)m->nr_msi_routes++ : -1;
    pthread_mutex_unlock(&m->msi_lock);
    return route;
}

static void machine_msi_set(void *ctx, int route, uint64_t address, uint32_t data)
{
    struct machine *m = ctx;
    if (route < 0 || (unsigned)route >= ACCEL_MAX_MSI_ROUTES)
        return;
    struct machine_msi *r = &m->msi[route];
    atomic_store(&r->address, address);
    atomic_store(&r->data, data);
    int fd = -1;
    if (m->accel->msi_route &&
        m->accel->msi_route(m->accel_vm, (unsigned)route, address, data, &fd) == 0)
        atomic_store(&r->irqfd, fd);
}

/* An MSI as the x86 interrupt message it is (Intel SDM 3, 11.11): destination ID in address
 * bits 19:12, logical destination mode in bit 2; vector and delivery mode in the data. */
static struct apic_msg msi_to_apic_msg(uint64_t address, uint32_t data)
{
    return (struct apic_msg){
        .dest = (uint32_t)((address >> 12) & 0xff),
        .vector = (uint8_t)data,
        .delivery_mode = (uint8_t)((data >> 8) & 7),
        .dest_logical = (address >> 2) & 1,
        .level = false, /* MSIs are edge-triggered */
    };
}

static void machine_msi_fire(void *ctx, int route)
{
    struct machine *m = ctx;
    if (route < 0 || (unsigned)route >= ACCEL_MAX_MSI_ROUTES)
        return;
    struct machine_msi *r = &m->msi[route];
    int fd = atomic_load(&r->irqfd);
    if (fd >= 0) {
        uint64_t one = 1;
        if (write(fd, &one, sizeof(one)) < 0) {
            /* the counter is saturated: the interrupt is pending anyway */
        }
        return;
    }
    uint64_t address = atomic_load(&r->address);
    if ((address >> 20) != 0xfee)
        return; /* not an interrupt message: dropped, as a write nobody claims */
    struct apic_msg msg = msi_to_apic_msg(address, atomic_load(&r->data));
    machine_send_apic_msg(m, &msg);
}

static int machine_ioeventfd(void *ctx, bool mmio, uint64_t addr, unsigned len, int fd, bool assign)
{
    struct machine *m = ctx;
    if (!m->accel->ioeventfd)
        return -1;
    return m->accel->ioeventfd(m->accel_vm, mmio, addr, len, fd, assign);
}

static time_t host_wall_clock(void)
{
    return time(NULL);
}

/* --- vCPU threads ---------------------------------------------------------------------------- */

static void dump_vcpu(struct machine *m, struct vcpu_slot *slot)
{
    struct vcpu_state st;
    if (m->accel->get_state(slot->accel, &st) < 0) {
        qk_error("cannot read vCPU %u registers", slot->index);
        return;
    }
    static const char *const gpr_names[NR_GPRS] = {"rax", "rcx", "rdx", "rbx", "rsp", "rbp",
                                                   "rsi", "rdi", "r8",  "r9",  "r10", "r11",
                                                   "r12", "r13", "r14", "r15"};
    static const char *const seg_names[NR_SEGS] = {"es", "cs", "ss", "ds", "fs", "gs", "ldt", "tr"};
    fprintf(stderr, "vCPU %u registers:\n", slot->index);
    for (unsigned i = 0; i < NR_GPRS; i++)
        fprintf(stderr, "  %-3s=%016" PRIx64 "%s", gpr_names[i], st.gpr[i], i % 4 == 3 ? "\n" : "");
    fprintf(stderr, "  rip=%016" PRIx64 "  rflags=%016" PRIx64 "\n", st.rip, st.rflags);
    fprintf(stderr,
            "  cr0=%016" PRIx64 "  cr2=%016" PRIx64 "  cr3=%016" PRIx64 "  cr4=%016" PRIx64
            "\n  cr8=%016" PRIx64 "  efer=%016" PRIx64 "\n",
            st.cr0, st.cr2, st.cr3, st.cr4, st.cr8, st.efer);
    for (unsigned i = 0; i < NR_SEGS; i++) {
        const struct vcpu_segment *s = &st.seg[i];
        fprintf(stderr,
                "  %-3s sel=%04x base=%016" PRIx64 " limit=%08x type=%x s=%u dpl=%u p=%u l=%u "
                "db=%u g=%u\n",
                seg_names[i], s->selector, s->base, s->limit, s->type, s->s, s->dpl, s->present,
                s->l, s->db, s->g);
    }
    fprintf(stderr, "  gdt=%016" PRIx64 "/%04x idt=%016" PRIx64 "/%04x\n", st.gdt.base,
            st.gdt.limit, st.idt.base, st.idt.limit);
}

static void handle_io(struct machine *m, struct accel_exit *ex)
{
    uint8_t *p = ex->io.data;
    for (uint32_t i = 0; i < ex->io.count; i++, p += ex->io.size) {
        uint64_t value = 0;
        if (ex->io.is_write) {
            memcpy(&value, p, ex->io.size);
            bus_write(&m->pio, ex->io.port, ex->io.size, value);
        } else {
            bus_read(&m->pio, ex->io.port, ex->io.size, &value);
            memcpy(p, &value, ex->io.size);
        }
    }
}

static void handle_mmio(struct machine *m, struct accel_exit *ex)
{
    uint64_t value = 0;
    if (ex->mmio.is_write) {
        memcpy(&value, ex->mmio.data, ex->mmio.size);
        bus_write(&m->mmio, ex->mmio.gpa, ex->mmio.size, value);
    } else {
        bus_read(&m->mmio, ex->mmio.gpa, ex->mmio.size, &value);
        memcpy(ex->mmio.data, &value, ex->mmio.size);
    }
}

/* The rendezvous: between two run() calls (an instruction boundary, with any I/O exit
 * completed) the vCPU waits while a pause is requested; its registers are readable then. */
static void vcpu_park(struct machine *m)
{
    pthread_mutex_lock(&m->park_lock);
    m->parked++;
    pthread_cond_broadcast(&m->park_cond);
    while (atomic_load(&m->pause_requested) && !atomic_load(&m->stop_requested))
        pthread_cond_wait(&m->park_cond, &m->park_lock);
    m->parked--;
    pthread_cond_broadcast(&m->park_cond);
    pthread_mutex_unlock(&m->park_lock);
}

static void *vcpu_thread(void *arg)
{
    struct vcpu_slot *slot = arg;
    struct machine *m = slot->machine;
    char name[16], err[200];
    snprintf(name, sizeof(name), "vcpu%u", slot->index);
    pthread_setname_np(pthread_self(), name);
    if (m->accel->vcpu_thread_init(slot->accel) < 0) {
        qk_error("cannot set up the thread of vCPU %u", slot->index);
        machine_request_stop(m, VM_STOP_ERROR, 0);
        return NULL;
    }
    /* Set up: from here on the guest drives this thread, within the vCPU allow-list. */
    if (sandbox_enter(SANDBOX_VCPU, err, sizeof(err)) < 0) {
        qk_error("vCPU %u: %s", slot->index, err);
        machine_request_stop(m, VM_STOP_ERROR, 0);
        return NULL;
    }
    struct accel_exit ex;
    while (!atomic_load(&m->stop_requested)) {
        if (atomic_load(&m->pause_requested)) {
            vcpu_park(m);
            continue;
        }
        if (m->accel->run(slot->accel, &ex) < 0) {
            qk_error("vCPU %u: run failed", slot->index);
            machine_request_stop(m, VM_STOP_ERROR, 0);
            break;
        }
        switch (ex.reason) {
        case ACCEL_EXIT_IO:
            handle_io(m, &ex);
            break;
        case ACCEL_EXIT_MMIO:
            handle_mmio(m, &ex);
            break;
        case ACCEL_EXIT_HALT: {
            /* Only reachable with a user-space irqchip: nap briefly, interrupts re-check. */
            struct timespec nap = {0, 1000000};
            nanosleep(&nap, NULL);
            break;
        }
        case ACCEL_EXIT_STOPPED:
            break;
        case ACCEL_EXIT_DEBUG:
            if (m->gdb)
                gdbstub_vcpu_stopped(m->gdb, slot->index, &ex);
            break;
        case ACCEL_EXIT_SHUTDOWN:
            if (!atomic_load(&m->stop_requested)) {
                qk_error("guest triple fault on vCPU %u", slot->index);
                dump_vcpu(m, slot);
            }
            machine_request_stop(m, VM_STOP_ERROR, 0);
            break;
        case ACCEL_EXIT_ERROR:
            if (!atomic_load(&m->stop_requested)) {
                qk_error("vCPU %u: %s", slot->index, ex.error.msg);
                dump_vcpu(m, slot);
            }
            machine_request_stop(m, VM_STOP_ERROR, 0);
            break;
        }
    }
    return NULL;
}

/* --- build-up and tear-down -------------------------------------------------------------- */

/* Devices level by level; the PCI host bridge comes between the platform's and PCI devices. */
static int create_devices(struct machine *m, char *err, size_t errlen)
{
    if (devices_create_level(&m->devices, &m->host, DEVICE_LEVEL_IRQCHIP, err, errlen) < 0 ||
        devices_create_level(&m->devices, &m->host, DEVICE_LEVEL_PLATFORM, err, errlen) < 0)
        return -1;
    m->pci = pci_bus_new(&m->host, err, errlen);
    if (!m->pci)
        return -1;
    m->host.pci = m->pci;
    return devices_create_level(&m->devices, &m->host, DEVICE_LEVEL_PCI, err, errlen);
}

static void destroy_devices(struct machine *m)
{
    devices_destroy(&m->devices);
    if (m->pci)
        pci_bus_free(m->pci);
    m->pci = NULL;
}

static int create_vcpus(struct machine *m, const struct vcpu_state *boot_cpu, char *err,
                        size_t errlen)
{
    struct cpuid_model *supported = malloc(sizeof(*supported));
    struct cpuid_model *shaped = malloc(sizeof(*shaped));
    int rc = -1;
    if (!supported || !shaped) {
        qk_fail(err, errlen, "out of memory");
        goto out;
    }
    if (m->accel->supported_cpuid(m->accel_vm, supported, err, errlen) < 0)
        goto out;
    for (unsigned i = 0; i < m->cfg->nr_vcpus; i++) {
        struct vcpu_slot *slot = &m->vcpus[i];
        slot->machine = m;
        slot->index = i;
        if (m->accel->vcpu_create(m->accel_vm, i, &slot->accel, err, errlen) < 0)
            goto out;
        m->nr_vcpus = i + 1;
        cpuid_shape_for_vcpu(supported, i, m->cfg->nr_vcpus, shaped);
        if (m->accel->set_cpuid(slot->accel, shaped) < 0) {
            qk_fail(err, errlen, "cannot set CPUID of vCPU %u", i);
            goto out;
        }
    }
    /* The bootstrap processor starts at the kernel entry; application processors stay in
     * wait-for-SIPI until the guest starts them. */
    if (boot_cpu && m->accel->set_state(m->vcpus[0].accel, boot_cpu) < 0) {
        qk_fail(err, errlen, "cannot set the boot vCPU registers");
        goto out;
    }
    rc = 0;
out:
    free(supported);
    free(shaped);
    return rc;
}

static int start_vcpu_threads(struct machine *m, char *err, size_t errlen)
{
    for (unsigned i = 0; i < m->nr_vcpus; i++) {
        if (pthread_create(&m->vcpus[i].thread, NULL, vcpu_thread, &m->vcpus[i]) != 0)
            return qk_fail(err, errlen, "cannot start the thread of vCPU %u", i);
        m->vcpus[i].thread_started = true;
    }
    return 0;
}

/* The I/O loop on the main thread: an epoll set (vm/event_loop.c) with the stop event,
 * signals, host console input, the timer wake-up and whatever devices subscribed. */
struct io_context {
    struct machine *m;
    int signal_fd;
    bool input_alive;
    bool input_paused; /* the guest's receive buffer is full: input waits, polled again soon */
};

/* A nonblocking eventfd that woke the loop: reset it (already drained is fine). */
static void drain_eventfd(int fd)
{
    uint64_t count;
    if (read(fd, &count, sizeof(count)) < 0) {
        /* EAGAIN: an earlier wake-up drained it */
    }
}

static void on_stop_event(void *opaque, uint32_t revents)
{
    (void)revents;
    drain_eventfd(((struct io_context *)opaque)->m->stop_event_fd);
}

static void on_signal(void *opaque, uint32_t revents)
{
    (void)revents;
    struct io_context *io = opaque;
    struct signalfd_siginfo si;
    if (read(io->signal_fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
        machine_request_stop(io->m, VM_STOP_SIGNAL, si.ssi_signo);
}

static void on_timer_wake(void *opaque, uint32_t revents)
{
    (void)revents;
    drain_eventfd(((struct io_context *)opaque)->m->timer_wake_fd);
}

static void on_console_input(void *opaque, uint32_t revents)
{
    (void)revents;
    struct io_context *io = opaque;
    struct machine *m = io->m;
    io->input_alive = console_pump_input(&m->console);
    if (!io->input_alive || console_has_pending(&m->console)) {
        /* EOF, or the guest is full: stop reading until it drains (looked at every 5 ms). */
        event_loop_modify(m->loop, m->console.in_fd, 0);
        io->input_paused = io->input_alive;
    }
}

#define CONSOLE_RETRY_NS 5000000

static void io_loop(struct machine *m, int signal_fd)
{
    struct io_context io = {m, signal_fd, m->console.in_fd >= 0, false};
    char err[200];
    if (event_loop_add(m->loop, m->stop_event_fd, EPOLLIN, on_stop_event, &io, err, sizeof(err)) <
            0 ||
        event_loop_add(m->loop, signal_fd, EPOLLIN, on_signal, &io, err, sizeof(err)) < 0 ||
        event_loop_add(m->loop, m->timer_wake_fd, EPOLLIN, on_timer_wake, &io, err, sizeof(err)) <
            0) {
        qk_error("%s", err);
        machine_request_stop(m, VM_STOP_ERROR, 0);
    }
    /* epoll refuses regular files: console input from a file is read once, up front. */
    if (io.input_alive && event_loop_add(m->loop, m->console.in_fd, EPOLLIN, on_console_input, &io,
                                         err, sizeof(err)) < 0) {
        on_console_input(&io, EPOLLIN);
        m->console.in_fd = io.input_paused ? m->console.in_fd : -1;
    }
    while (!atomic_load(&m->stop_requested)) {
        struct timespec storage;
        const struct timespec *wait =
            timers_wait_time(&m->timers, guest_clock_now(&m->clock), &storage);
        int64_t timeout = wait ? (int64_t)wait->tv_sec * 1000000000 + wait->tv_nsec : -1;
        if (io.input_paused && (timeout < 0 || timeout > CONSOLE_RETRY_NS))
            timeout = CONSOLE_RETRY_NS;
        if (event_loop_run_once(m->loop, timeout) < 0)
            break;
        timers_run_expired(&m->timers, guest_clock_now(&m->clock));
        if (io.input_paused) {
            console_retry_pending(&m->console);
            if (!console_has_pending(&m->console)) {
                io.input_paused = false;
                event_loop_modify(m->loop, m->console.in_fd, EPOLLIN);
            }
        }
    }
    event_loop_remove(m->loop, m->stop_event_fd);
    event_loop_remove(m->loop, signal_fd);
    event_loop_remove(m->loop, m->timer_wake_fd);
    if (m->console.in_fd >= 0)
        event_loop_remove(m->loop, m->console.in_fd);
}

/* Peak resident set of this process image (VmHWM); unlike getrusage's ru_maxrss it does not
 * include the memory of the process quokka was exec'd from. */
static long peak_rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

/* QUOKKA_STATS=1: one line of resource figures for the benchmarks. Guest pages the guest
 * touched are counted with mincore() so quokka's own overhead can be told apart from them. */
static void report_stats(const struct machine *m)
{
    if (!getenv("QUOKKA_STATS") || !m->mem.mapping)
        return;
    long page = sysconf(_SC_PAGESIZE);
    size_t pages = (size_t)(m->mem.ram_size / (uint64_t)page);
    unsigned char *vec = malloc(pages);
    uint64_t touched = 0;
    if (vec && mincore(m->mem.mapping, m->mem.ram_size, vec) == 0)
        for (size_t i = 0; i < pages; i++)
            touched += vec[i] & 1;
    free(vec);
    uint64_t insns = 0;
    bool counted = m->accel && m->accel->guest_insns;
    for (unsigned i = 0; counted && i < m->nr_vcpus; i++)
        insns += m->accel->guest_insns(m->vcpus[i].accel);
    fprintf(stderr, "quokka-stats: peak_rss_kb=%ld guest_touched_kb=%llu", peak_rss_kb(),
            (unsigned long long)(touched * (uint64_t)page / 1024));
    if (counted)
        fprintf(stderr, " guest_insns=%llu", (unsigned long long)insns);
    fputc('\n', stderr);
}

static void teardown(struct machine *m, bool failed)
{
    if (!atomic_load(&m->stop_requested))
        machine_request_stop(m, VM_STOP_ERROR, 0);
    gdbstub_destroy(m->gdb, m->exit_status); /* before the vCPUs it looks at go */
    m->gdb = NULL;
    for (unsigned i = 0; i < m->nr_vcpus; i++)
        if (m->vcpus[i].thread_started)
            pthread_join(m->vcpus[i].thread, NULL);
    if (!failed)
        report_stats(m);
    destroy_devices(m);
    for (unsigned i = 0; i < m->nr_vcpus; i++)
        m->accel->vcpu_destroy(m->vcpus[i].accel);
    if (m->accel_vm)
        m->accel->vm_destroy(m->accel_vm);
    if (m->console_open)
        console_close(&m->console, failed);
    event_loop_free(m->loop);
    if (m->resources_ready)
        vm_resources_destroy(&m->resources);
    bus_destroy(&m->pio);
    bus_destroy(&m->mmio);
    guest_memory_destroy(&m->mem);
    if (m->stop_event_fd >= 0)
        close(m->stop_event_fd);
    if (m->timers_ready)
        timers_destroy(&m->timers);
    if (m->timer_wake_fd >= 0)
        close(m->timer_wake_fd);
    if (m->signal_fd >= 0)
        close(m->signal_fd);
    if (m->sigmask_saved)
        pthread_sigmask(SIG_SETMASK, &m->old_sigmask, NULL);
    pthread_mutex_destroy(&m->msi_lock);
    pthread_mutex_destroy(&m->state_lock);
    pthread_mutex_destroy(&m->park_lock);
    pthread_cond_destroy(&m->park_cond);
}

static struct machine *machine_alloc(const struct machine_config *cfg)
{
    struct machine *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->cfg = cfg;
    m->stop_event_fd = -1;
    m->timer_wake_fd = -1;
    m->signal_fd = -1;
    guest_clock_init(&m->clock);
    atomic_init(&m->state, MACHINE_CREATED);
    pthread_mutex_init(&m->msi_lock, NULL);
    pthread_mutex_init(&m->state_lock, NULL);
    pthread_mutex_init(&m->park_lock, NULL);
    pthread_cond_init(&m->park_cond, NULL);
    for (unsigned i = 0; i < ACCEL_MAX_MSI_ROUTES; i++)
        atomic_init(&m->msi[i].irqfd, -1);
    if (bus_init(&m->pio, "port bus", 0x10000) < 0 || bus_init(&m->mmio, "MMIO bus", 0) < 0) {
        bus_destroy(&m->pio);
        pthread_mutex_destroy(&m->msi_lock);
        pthread_mutex_destroy(&m->state_lock);
        pthread_mutex_destroy(&m->park_lock);
        pthread_cond_destroy(&m->park_cond);
        free(m);
        return NULL;
    }
    return m;
}

/* The RSDP heads the tables (acpi_build), so the boot protocol can point at it before they
 * are written. */
static uint64_t acpi_rsdp_address(void)
{
    return BOOT_ACPI_BASE;
}

/* The kernel and initrd go into guest memory; the ACPI tables come later, once devices exist
 * (the RSDP's address is fixed, so the boot protocol can point at it already). */
static int load_guest(struct machine *m, char *err, size_t errlen)
{
    const struct machine_config *cfg = m->cfg;
    uint8_t *kernel = NULL, *initrd = NULL;
    size_t kernel_size = 0, initrd_size = 0;
    int rc = -1;
    if (load_file("kernel", cfg->kernel_path, BOOT_KERNEL_MAX_FILE, &kernel, &kernel_size, err,
                  errlen) < 0)
        goto out;
    if (cfg->initrd_path && load_file("initrd", cfg->initrd_path, cfg->mem_size, &initrd,
                                      &initrd_size, err, errlen) < 0)
        goto out;
    struct e820_map e820;
    e820_build(&m->mem, &e820);
    struct boot_request req = {
        .mem = &m->mem,
        .kernel = kernel,
        .kernel_size = kernel_size,
        .initrd = initrd,
        .initrd_size = initrd_size,
        .cmdline = cfg->cmdline ? cfg->cmdline : "",
        .e820 = &e820,
        .rsdp_addr = acpi_rsdp_address(),
    };
    char why[400] = "";
    if (boot_load(&req, &m->boot, why, sizeof(why)) < 0) {
        qk_fail(err, errlen, "cannot boot '%s': %s", cfg->kernel_path, why);
        goto out;
    }
    rc = 0;
out:
    free(kernel);
    free(initrd);
    return rc;
}

/* The services devices get: event loop, timers, DMA, MSI, resources. */
static int setup_host(struct machine *m, char *err, size_t errlen)
{
    m->stop_event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    m->timer_wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (m->stop_event_fd < 0 || m->timer_wake_fd < 0)
        return qk_fail(err, errlen, "eventfd: %s", strerror(errno));
    timers_init(&m->timers, m->timer_wake_fd);
    m->timers_ready = true;
    m->loop = event_loop_new(err, errlen);
    if (!m->loop)
        return -1;
    uint64_t top = GUEST_HIGH_RAM_BASE + guest_high_ram(&m->mem);
    vm_resources_init(&m->resources, (top + PCI_MMIO64_ALIGN - 1) & ~(PCI_MMIO64_ALIGN - 1),
                      PCI_MMIO64_SIZE);
    m->resources_ready = true;
    m->dma = (struct dma_space){
        .mem = &m->mem,
        .notify_write = m->accel->notify_ram_write ? machine_notify_ram_write : NULL,
        .ctx = m,
    };
    m->host = (struct device_host){
        .pio = &m->pio,
        .mmio = &m->mmio,
        .set_irq = machine_set_irq,
        .irq_ctx = m,
        .request_stop = machine_request_stop,
        .stop_ctx = m,
        .console = &m->console.device,
        .ram_below_4g = guest_low_ram(&m->mem),
        .ram_above_4g = guest_high_ram(&m->mem),
        .wall_clock = host_wall_clock,
        .clock_ns = machine_clock_ns,
        .timer_new = machine_timer_new,
        .timer_arm = machine_timer_arm,
        .timer_ctx = m,
        .user_irqchip = !m->accel->in_kernel_irqchip,
        .register_irq_router = machine_register_irq_router,
        .set_cpu_intr = machine_set_cpu_intr,
        .register_intack = machine_register_intack,
        .send_apic_msg = machine_send_apic_msg,
        .register_eoi = machine_register_eoi,
        .register_ctrl_alt_del = machine_register_ctrl_alt_del,
        .irqchip_ctx = m,
        .dma = &m->dma,
        .loop = m->loop,
        .resources = &m->resources,
        .msi_alloc = machine_msi_alloc,
        .msi_set = machine_msi_set,
        .msi_fire = machine_msi_fire,
        .msi_ctx = m,
        .ioeventfd = machine_ioeventfd,
        .ioeventfd_ctx = m,
        .doorbells_on_loop = true,
        .nr_vcpus = m->cfg->nr_vcpus,
    };
    return 0;
}

static void describe_devices(void *ctx, struct aml_buf *aml)
{
    struct machine *m = ctx;
    if (m->pci)
        pci_bus_describe_acpi(m->pci, aml);
    devices_describe_acpi(&m->devices, aml);
}

static int build_firmware(struct machine *m, char *err, size_t errlen)
{
    const struct acpi_config acpi = {
        .nr_cpus = m->cfg->nr_vcpus,
        .describe = describe_devices,
        .ctx = m,
        .mcfg = true,
        .ecam_base = PHYS_PCI_ECAM,
        .ecam_end_bus = 0,
    };
    char why[300];
    if (acpi_build(&m->mem, &acpi, why, sizeof(why)) != acpi_rsdp_address())
        return qk_fail(err, errlen, "cannot build the ACPI tables: %s", why);
    return 0;
}

/* --- lifecycle ----------------------------------------------------------------------------- */

/* SIGINT/SIGTERM/SIGHUP arrive through a signalfd on the I/O loop; every thread created from
 * here on inherits the blocked mask (teardown restores it). */
int machine_start(struct machine *m, bool paused, char *err, size_t errlen)
{
    pthread_mutex_lock(&m->state_lock);
    int rc = -1;
    if (atomic_load(&m->state) != MACHINE_CREATED) {
        qk_fail(err, errlen, "the machine was already started");
        goto out;
    }
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, &m->old_sigmask);
    m->sigmask_saved = true;
    m->signal_fd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
    if (m->signal_fd < 0) {
        qk_fail(err, errlen, "signalfd: %s", strerror(errno));
        goto out;
    }
    console_enter_raw(&m->console);
    paused |= m->gdb != NULL; /* the debugger lets it run */
    if (paused) {
        guest_clock_freeze(&m->clock);
        atomic_store(&m->pause_requested, true);
    }
    /* Set-up is done (devices, memory, the translator's code buffer, the terminal). Each
     * vCPU thread installs its own filter before its first guest instruction, the gdbstub's
     * before gdbstub_start returns; this (the I/O) thread installs its own after starting
     * them, which then do not inherit it (and could not start threads under it: no clone).
     * The gdbstub's thread takes the state lock (held here) to pause or resume. */
    sandbox_set_kvm(!strcmp(m->accel->name, "kvm"));
    if (start_vcpu_threads(m, err, errlen) < 0 ||
        (m->gdb && gdbstub_start(m->gdb, err, errlen) < 0) ||
        sandbox_enter(SANDBOX_IO, err, errlen) < 0)
        goto out;
    atomic_store(&m->state, paused ? MACHINE_PAUSED : MACHINE_RUNNING);
    rc = 0;
out:
    pthread_mutex_unlock(&m->state_lock);
    return rc;
}

int machine_wait(struct machine *m)
{
    io_loop(m, m->signal_fd);
    pthread_mutex_lock(&m->state_lock);
    atomic_store(&m->state, MACHINE_STOPPED);
    pthread_mutex_unlock(&m->state_lock);
    int status = m->exit_status;
    if (status >= 128)
        qk_error("terminated by signal %d", status - 128);
    return status;
}

enum machine_state machine_get_state(struct machine *m)
{
    return (enum machine_state)atomic_load(&m->state);
}

const char *machine_accel_name(const struct machine *m)
{
    return m && m->accel ? m->accel->name : "none";
}

/* Waits (bounded) for every vCPU to park. */
#define PAUSE_TIMEOUT_NS 5000000000ULL
int machine_pause(struct machine *m, char *err, size_t errlen)
{
    pthread_mutex_lock(&m->state_lock);
    int rc = 0;
    if (atomic_load(&m->state) == MACHINE_PAUSED)
        goto out;
    if (atomic_load(&m->state) != MACHINE_RUNNING) {
        rc = qk_fail(err, errlen, "the machine is not running");
        goto out;
    }
    atomic_store(&m->pause_requested, true);
    for (unsigned i = 0; i < m->nr_vcpus; i++)
        m->accel->kick(m->vcpus[i].accel);
    struct timespec limit;
    clock_gettime(CLOCK_REALTIME, &limit);
    limit.tv_sec += (time_t)(PAUSE_TIMEOUT_NS / 1000000000ULL);
    pthread_mutex_lock(&m->park_lock);
    while (m->parked < m->nr_vcpus && !atomic_load(&m->stop_requested))
        if (pthread_cond_timedwait(&m->park_cond, &m->park_lock, &limit) != 0)
            break;
    bool all = m->parked == m->nr_vcpus;
    pthread_mutex_unlock(&m->park_lock);
    if (!all) {
        atomic_store(&m->pause_requested, false);
        pthread_mutex_lock(&m->park_lock);
        pthread_cond_broadcast(&m->park_cond);
        pthread_mutex_unlock(&m->park_lock);
        rc = qk_fail(err, errlen, "the vCPUs did not stop");
        goto out;
    }
    guest_clock_freeze(&m->clock);
    atomic_store(&m->state, MACHINE_PAUSED);
out:
    pthread_mutex_unlock(&m->state_lock);
    return rc;
}

int machine_resume(struct machine *m, char *err, size_t errlen)
{
    pthread_mutex_lock(&m->state_lock);
    int rc = 0;
    if (atomic_load(&m->state) == MACHINE_RUNNING)
        goto out;
    if (atomic_load(&m->state) != MACHINE_PAUSED) {
        rc = qk_fail(err, errlen, "the machine is not paused");
        goto out;
    }
    guest_clock_thaw(&m->clock);
    pthread_mutex_lock(&m->park_lock);
    atomic_store(&m->pause_requested, false);
    pthread_cond_broadcast(&m->park_cond);
    pthread_mutex_unlock(&m->park_lock);
    atomic_store(&m->state, MACHINE_RUNNING);
    /* Timer deadlines are guest time: the I/O loop recomputes its wait. */
    uint64_t one = 1;
    if (write(m->timer_wake_fd, &one, sizeof(one)) < 0) {
        /* saturated: the loop wakes anyway */
    }
out:
    pthread_mutex_unlock(&m->state_lock);
    return rc;
}

int machine_vcpu_state(struct machine *m, unsigned index, struct vcpu_state *out)
{
    if (machine_get_state(m) != MACHINE_PAUSED || index >= m->nr_vcpus)
        return -1;
    return m->accel->get_state(m->vcpus[index].accel, out);
}

uint64_t machine_guest_ns(struct machine *m)
{
    return guest_clock_now(&m->clock);
}

int machine_send_ctrl_alt_del(struct machine *m, char *err, size_t errlen)
{
    if (machine_get_state(m) != MACHINE_RUNNING)
        return qk_fail(err, errlen, "the machine is not running");
    if (!m->ctrl_alt_del)
        return qk_fail(err, errlen, "the machine has no i8042 keyboard controller");
    if (m->ctrl_alt_del(m->ctrl_alt_del_opaque) < 0)
        return qk_fail(err, errlen, "the i8042 keyboard buffer is full or disabled");
    return 0;
}

/* Everything up to the vCPUs ready to run: user errors come back as EXIT_USAGE in *status. */
struct machine *machine_create(const struct machine_config *cfg, int *status, char *err,
                               size_t errlen)
{
    *status = EXIT_HOST_FAILURE;
    struct machine *m = machine_alloc(cfg);
    if (!m) {
        qk_fail(err, errlen, "out of memory");
        return NULL;
    }
    *status = EXIT_USAGE;
    m->devices.console_model = cfg->virtio_console ? "virtio-console" : "uart16550";
    m->devices.console = &m->console.device;

    if (cfg->nr_vcpus < 1 || cfg->nr_vcpus > MACHINE_MAX_VCPUS) {
        qk_fail(err, errlen, "--cpus %u is out of range (1..%d)", cfg->nr_vcpus, MACHINE_MAX_VCPUS);
        goto fail;
    }
    /* User errors first: devices and their options, memory size, kernel, initrd, console. */
    if (devices_prepare(&m->devices, cfg->devices, cfg->nr_devices, err, errlen) < 0 ||
        guest_memory_init(&m->mem, cfg->mem_size, err, errlen) < 0)
        goto fail;
    if (cfg->restore ? guest_memory_map_file(&m->mem, cfg->restore_mem_path, err, errlen) < 0
                     : load_guest(m, err, errlen) < 0)
        goto fail;
    if (console_open(&m->console, &cfg->console, err, errlen) < 0)
        goto fail;
    m->console_open = true;

    /* Host failures from here on. */
    *status = EXIT_HOST_FAILURE;
    m->accel = accel_select(cfg->accel, err, errlen);
    if (!m->accel)
        goto fail;
    struct accel_vm_config vm_cfg = {
        .mem = &m->mem,
        .pio = &m->pio,
        .mmio = &m->mmio,
        .nr_vcpus = cfg->nr_vcpus,
        .intack = machine_intack,
        .intack_ctx = m,
        .eoi = machine_eoi,
        .clock = &m->clock,
        .settings = &cfg->accel_settings,
    };
    if (m->accel->vm_create(&vm_cfg, &m->accel_vm, err, errlen) < 0 ||
        setup_host(m, err, errlen) < 0)
        goto fail;
    if (cfg->gdb && gdbstub_create(m, cfg->gdb, &m->gdb, err, errlen) < 0) {
        *status = EXIT_USAGE;
        goto fail;
    }
    /* A device that cannot be created is the user's disk, image or option. */
    *status = EXIT_USAGE;
    if (create_devices(m, err, errlen) < 0)
        goto fail;
    *status = EXIT_HOST_FAILURE;
    /* A snapshot's memory has the firmware tables; its vCPUs and devices their state. */
    if ((!cfg->restore && build_firmware(m, err, errlen) < 0) ||
        create_vcpus(m, cfg->restore ? NULL : &m->boot.cpu, err, errlen) < 0 ||
        (cfg->restore && machine_restore_state(m, err, errlen) < 0))
        goto fail;
    *status = 0;
    return m;

fail:
    teardown(m, true);
    free(m);
    return NULL;
}

void machine_destroy(struct machine *m, bool failed)
{
    if (!m)
        return;
    teardown(m, failed);
    free(m);
}

int machine_run(const struct machine_config *cfg)
{
    char err[512] = "";
    int status;
    struct machine *m = machine_create(cfg, &status, err, sizeof(err));
    if (!m) {
        qk_error("%s", err);
        return status;
    }
    if (machine_start(m, false, err, sizeof(err)) < 0) {
        qk_error("%s", err);
        machine_destroy(m, true);
        return EXIT_HOST_FAILURE;
    }
    status = machine_wait(m);
    machine_destroy(m, false);
    return status;
}
