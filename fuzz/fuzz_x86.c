/* libFuzzer target: the x86 decoder and translator on random bytes as guest code. The
 * input's first byte picks the CPU mode (32-bit flat or 64-bit long mode, as the loaders
 * boot them) and the backend (native code or interpreter); the rest is copied to 1 MiB and
 * run from there. No IDT: the first exception triple-faults, which ends the run; so do
 * HLT, OUT to port 0xe0 (a done marker), and a budget of 3 ms per input (a watchdog kicks
 * the vCPU, so loops end). Translation must never crash, hang or touch host memory outside
 * guest RAM, whatever the bytes. */
#include "accel/accel.h"
#include "accel/tcg/tcg_internal.h"
#include "vm/boot/boot.h"
#include "vm/bus.h"
#include "vm/memory.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RAM_SIZE (16ULL << 20)
#define CODE_GPA 0x100000ULL
#define MAX_CODE 4096
#define DONE_PORT 0xe0
#define BUDGET_NS (3 * 1000 * 1000)

struct runner {
    struct guest_memory mem;
    struct bus pio, mmio;
    struct accel_vm *vm[2]; /* [0] native backend, [1] interpreter */
    struct accel_vcpu *vcpu[2];
    struct accel_vcpu *_Atomic running;
    _Atomic uint64_t deadline;
    atomic_bool done;
};

static struct runner R;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static uint64_t done_read(void *opaque, uint64_t offset, unsigned size)
{
    (void)opaque, (void)offset, (void)size;
    return 0;
}

static void done_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
    (void)opaque, (void)offset, (void)size, (void)value;
    atomic_store(&R.done, true);
    struct accel_vcpu *v = atomic_load(&R.running);
    if (v)
        tcg_accel_ops.kick(v);
}

static const struct bus_device_ops done_ops = {done_read, done_write};

static void *watchdog(void *arg)
{
    (void)arg;
    for (;;) {
        struct timespec ts = {0, 1000 * 1000};
        nanosleep(&ts, NULL);
        struct accel_vcpu *v = atomic_load(&R.running);
        uint64_t d = atomic_load(&R.deadline);
        if (v && d && now_ns() > d)
            tcg_accel_ops.kick(v);
    }
    return NULL;
}

static void setup(void)
{
    char err[256];
    if (guest_memory_init(&R.mem, RAM_SIZE, err, sizeof(err)) < 0)
        abort();
    bus_init(&R.pio, "pio", 0x10000);
    bus_init(&R.mmio, "mmio", 0);
    if (bus_register(&R.pio, DONE_PORT, 1, &done_ops, NULL, "done", err, sizeof(err)) < 0)
        abort();
    for (int i = 0; i < 2; i++) {
        /* The backend is chosen when the VM is created (QUOKKA_TCG_BACKEND). */
        setenv("QUOKKA_TCG_BACKEND", i ? "interp" : "native", 1);
        struct accel_vm_config cfg = {.mem = &R.mem, .pio = &R.pio, .mmio = &R.mmio, .nr_vcpus = 1};
        if (tcg_accel_ops.vm_create(&cfg, &R.vm[i], err, sizeof(err)) < 0 ||
            tcg_accel_ops.vcpu_create(R.vm[i], 0, &R.vcpu[i], err, sizeof(err)) < 0) {
            fprintf(stderr, "fuzz_x86: %s\n", err);
            abort();
        }
        struct cpuid_model *model = malloc(sizeof(*model));
        if (model && tcg_accel_ops.supported_cpuid(R.vm[i], model, err, sizeof(err)) == 0)
            tcg_accel_ops.set_cpuid(R.vcpu[i], model);
        free(model);
    }
    unsetenv("QUOKKA_TCG_BACKEND");
    pthread_t t;
    if (pthread_create(&t, NULL, watchdog, NULL) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        setup();
        ready = 1;
    }
    if (size < 1)
        return 0;
    bool long_mode = data[0] & 1;
    int backend = (data[0] >> 1) & 1;
    data++, size--;
    if (size > MAX_CODE)
        size = MAX_CODE;
    struct accel_vm *vm = R.vm[backend];
    struct accel_vcpu *vcpu = R.vcpu[backend];
    /* Host writes are invisible to the block cache: start from an empty one. */
    tb_flush(&vm->tbs);
    tb_reap(&vm->tbs);
    memset(gpa_to_host(&R.mem, 0, 2 << 20), 0, 2 << 20); /* the last input's writes */
    struct vcpu_state st;
    memset(&st, 0, sizeof(st));
    if (long_mode) {
        if (boot_cpu_long64(&st, &R.mem) < 0)
            abort();
    } else {
        boot_cpu_flat32(&st, &R.mem);
    }
    uint8_t code[MAX_CODE + 2];
    memcpy(code, data, size);
    code[size] = 0xe6; /* out DONE_PORT, al */
    code[size + 1] = DONE_PORT;
    if (guest_write(&R.mem, CODE_GPA, code, size + 2) < 0)
        abort();
    st.rip = CODE_GPA;
    st.gpr[4] = 0x80000; /* rsp: below the code, in RAM */
    tcg_accel_ops.set_state(vcpu, &st);
    atomic_store(&R.deadline, now_ns() + BUDGET_NS);
    atomic_store(&R.running, vcpu);
    atomic_store(&R.done, false);
    for (int i = 0; i < 64; i++) {
        struct accel_exit ex;
        if (tcg_accel_ops.run(vcpu, &ex) < 0)
            break;
        /* A stop that is neither the marker nor the budget is a stale kick: go on. */
        if (ex.reason == ACCEL_EXIT_STOPPED && !atomic_load(&R.done) &&
            now_ns() < atomic_load(&R.deadline))
            continue;
        break; /* done marker, budget, triple fault, HLT or a translator error */
    }
    atomic_store(&R.running, NULL);
    atomic_store(&R.deadline, 0);
    return 0;
}
