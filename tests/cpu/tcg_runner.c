/* Translator runner: one VM (1 GiB RAM, identity-mapped long mode from boot_cpu_long64) reused
 * for every case. The sequence ends with OUT 0xE0, AL; a one-port device records it and kicks
 * the vCPU so run() returns. Between cases the translation cache is flushed (the code page is
 * rewritten from the host, which the cache cannot see) and set_state flushes the TLB. No IDT:
 * an exception triple-faults to ACCEL_EXIT_SHUTDOWN with the state of the faulting
 * instruction, which is what the native runner's signal handler records. */
#include "fuzz.h"

#include "accel/accel.h"
#include "accel/tcg/tcg_internal.h"
#include "vm/boot/boot.h"
#include "vm/bus.h"
#include "vm/memory.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DONE_PORT 0xe0

struct tcg_runner {
    struct guest_memory mem;
    struct bus pio, mmio;
    struct accel_vm *vm;
    struct accel_vcpu *vcpu;
    struct vcpu_state base;
    bool done;
    /* Watchdog: a translator bug must not hang CI. */
    pthread_t watchdog;
    atomic_uint_fast64_t running; /* case serial number + 1 while running, 0 when idle */
    atomic_bool quit;
    atomic_bool timed_out;
    uint64_t serial;
};

static uint64_t done_read(void *opaque, uint64_t offset, unsigned size)
{
    (void)opaque, (void)offset, (void)size;
    return 0;
}

static void done_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
    (void)offset, (void)size, (void)value;
    struct tcg_runner *tr = opaque;
    tr->done = true;
    tcg_accel_ops.kick(tr->vcpu);
}

static const struct bus_device_ops done_ops = {done_read, done_write};

static void *watchdog_main(void *arg)
{
    struct tcg_runner *tr = arg;
    uint64_t last = 0;
    unsigned same = 0;
    while (!atomic_load(&tr->quit)) {
        struct timespec ts = {0, 200 * 1000 * 1000};
        nanosleep(&ts, NULL);
        uint64_t now = atomic_load(&tr->running);
        if (now && now == last) {
            if (++same >= 10) { /* 2 s on one short sequence: it is looping */
                atomic_store(&tr->timed_out, true);
                tcg_accel_ops.kick(tr->vcpu);
                same = 0;
            }
        } else {
            same = 0;
        }
        last = now;
    }
    return NULL;
}

struct tcg_runner *tcg_runner_new(bool parallel)
{
    struct tcg_runner *tr = calloc(1, sizeof(*tr));
    char err[256];
    if (!tr)
        return NULL;
    if (guest_memory_init(&tr->mem, 1ULL << 30, err, sizeof(err)) < 0) {
        fprintf(stderr, "fuzz-cpu: %s\n", err);
        free(tr);
        return NULL;
    }
    bus_init(&tr->pio, "pio", 0x10000);
    bus_init(&tr->mmio, "mmio", 0);
    if (bus_register(&tr->pio, DONE_PORT, 1, &done_ops, tr, "fuzz-done", err, sizeof(err)) < 0)
        goto fail;
    struct accel_vm_config cfg = {
        .mem = &tr->mem, .pio = &tr->pio, .mmio = &tr->mmio, .nr_vcpus = parallel ? 2 : 1};
    /* parallel: a VM of two vCPUs of which only the first runs, so the translator makes LOCK'd
     * instructions host atomics (cpu->parallel) and they are compared with the host too. */
    if (tcg_accel_ops.vm_create(&cfg, &tr->vm, err, sizeof(err)) < 0 ||
        tcg_accel_ops.vcpu_create(tr->vm, 0, &tr->vcpu, err, sizeof(err)) < 0)
        goto fail;
    struct cpuid_model *model = malloc(sizeof(*model)); /* large for the stack */
    if (model && tcg_accel_ops.supported_cpuid(tr->vm, model, err, sizeof(err)) == 0)
        tcg_accel_ops.set_cpuid(tr->vcpu, model);
    free(model);
    if (boot_cpu_long64(&tr->base, &tr->mem) < 0) {
        snprintf(err, sizeof(err), "boot_cpu_long64 failed");
        goto fail;
    }
    if (pthread_create(&tr->watchdog, NULL, watchdog_main, tr) != 0) {
        snprintf(err, sizeof(err), "cannot start the watchdog");
        goto fail;
    }
    return tr;
fail:
    fprintf(stderr, "fuzz-cpu: translator setup: %s\n", err);
    if (tr->vcpu)
        tcg_accel_ops.vcpu_destroy(tr->vcpu);
    if (tr->vm)
        tcg_accel_ops.vm_destroy(tr->vm);
    guest_memory_destroy(&tr->mem);
    free(tr);
    return NULL;
}

void tcg_runner_free(struct tcg_runner *tr)
{
    if (!tr)
        return;
    atomic_store(&tr->quit, true);
    pthread_join(tr->watchdog, NULL);
    tcg_accel_ops.vcpu_destroy(tr->vcpu);
    tcg_accel_ops.vm_destroy(tr->vm);
    bus_destroy(&tr->pio);
    bus_destroy(&tr->mmio);
    guest_memory_destroy(&tr->mem);
    free(tr);
}

void tcg_run_case(struct tcg_runner *tr, const struct fuzz_case *c, struct fuzz_result *out)
{
    memset(&out->regs, 0, sizeof(out->regs));
    out->fault = 0;
    out->fault_rip = 0;
    out->error = 0;
    /* Host-side writes to code are invisible to the cache: drop every translated block. */
    tb_flush(&tr->vm->tbs);
    tb_reap(&tr->vm->tbs);
    uint8_t code[FUZZ_MAX_CODE + 2];
    memcpy(code, c->code, c->code_len);
    code[c->code_len] = 0xe6; /* out DONE_PORT, al */
    code[c->code_len + 1] = DONE_PORT;
    uint8_t *scratch =
        gpa_to_host(&tr->mem, FUZZ_SCRATCH_BASE, FUZZ_SCRATCH_SIZE + FUZZ_COUNTER_PAGE);
    if (guest_write(&tr->mem, FUZZ_CODE_BASE, code, c->code_len + 2) < 0 || !scratch) {
        out->error = 1;
        return;
    }
    fuzz_prepare_memory(scratch, c);
    struct vcpu_state st = tr->base;
    memcpy(st.gpr, c->init.gpr, sizeof(st.gpr));
    st.rip = FUZZ_CODE_BASE;
    st.rflags = c->init.rflags; /* IF set like the native user-mode run: nothing interrupts */
    tcg_accel_ops.set_state(tr->vcpu, &st);
    tr->done = false;
    atomic_store(&tr->timed_out, false);
    atomic_store(&tr->running, ++tr->serial);
    for (;;) {
        struct accel_exit ex;
        if (tcg_accel_ops.run(tr->vcpu, &ex) < 0) {
            out->error = 2;
            break;
        }
        if (ex.reason == ACCEL_EXIT_STOPPED && tr->done)
            break;
        if (ex.reason == ACCEL_EXIT_STOPPED && atomic_load(&tr->timed_out)) {
            out->error = 3;
            break;
        }
        if (ex.reason == ACCEL_EXIT_SHUTDOWN) {
            out->fault = 1;
            break;
        }
        if (ex.reason == ACCEL_EXIT_ERROR) {
            fprintf(stderr, "fuzz-cpu: translator error: %s\n", ex.error.msg);
            out->error = 4;
            break;
        }
        if (ex.reason == ACCEL_EXIT_STOPPED)
            continue;   /* a stale kick */
        out->error = 5; /* HALT, IO, MMIO: the sequence went somewhere it should not */
        break;
    }
    atomic_store(&tr->running, 0);
    struct vcpu_state fin;
    tcg_accel_ops.get_state(tr->vcpu, &fin);
    memcpy(out->regs.gpr, fin.gpr, sizeof(out->regs.gpr));
    out->regs.rflags = fin.rflags;
    if (out->fault)
        out->fault_rip = fin.rip;
    memcpy(out->scratch, scratch, FUZZ_SCRATCH_SIZE);
}
