/* The translator's vCPUs on the APIC bus: IPIs between their local APICs, IOAPIC/MSI messages,
 * and INIT / STARTUP as the processor acts on them (SDM vol. 3 9.4 and 11.6):
 *
 * - application processors (every vCPU but 0) begin in wait-for-SIPI, sleeping on their
 *   condition variable until an INIT, a SIPI or a stop request;
 * - INIT puts the CPU back into its power-up state (the TSC, the CPU model's limits and the
 *   local APIC's ID and base stay) and an AP into wait-for-SIPI; the BSP runs from the reset
 *   vector again (QEMU and KVM do the same);
 * - a SIPI with vector VV in wait-for-SIPI starts the CPU in real mode at VV00:0000 (CS base
 *   VV << 12); outside wait-for-SIPI it is ignored.
 * The run loop calls tcg_startup() at block boundaries, so INIT lands between instructions. */
#include "accel/tcg/apic_bus.h"
#include "accel/tcg/tcg_internal.h"
#include "accel/tcg/x86/seg.h"

static void route(struct accel_vm *vm, int sender, const struct apic_msg *msg,
                  enum lapic_shorthand shorthand)
{
    struct lapic *apics[TCG_MAX_VCPUS] = {0};
    unsigned n = vm->nr_vcpus < TCG_MAX_VCPUS ? vm->nr_vcpus : TCG_MAX_VCPUS;
    for (unsigned i = 0; i < n; i++) {
        struct accel_vcpu *v = atomic_load(&vm->vcpus[i]);
        apics[i] = v ? &v->lapic : NULL;
    }
    apic_bus_route(apics, n, sender, msg, shorthand);
}

_Static_assert(TCG_MAX_VCPUS <= APIC_BUS_MAX, "every vCPU's APIC fits on the bus");

void tcg_apic_send(void *ctx, const struct apic_msg *msg, enum lapic_shorthand shorthand)
{
    struct accel_vcpu *v = ctx;
    route(v->vm, (int)v->index, msg, shorthand);
}

void tcg_apic_msg(struct accel_vm *vm, const struct apic_msg *msg)
{
    route(vm, -1, msg, LAPIC_SH_NONE);
}

/* INIT: the power-up state, keeping what INIT leaves alone or what is not architectural. */
static void init_cpu(struct accel_vcpu *v)
{
    struct tcg_cpu *cpu = &v->cpu;
    uint8_t phys_bits = cpu->phys_bits;
    bool page_1g = cpu->page_1g;          /* parallel, oversubscribed: not reset (cpu.h) */
    int64_t tsc_offset = cpu->tsc_offset; /* INIT does not reset the TSC (SDM table 10-1) */
    uint32_t epoch = cpu->chain_epoch, epoch_global = cpu->chain_epoch_global;
    uint64_t insn_count = cpu->insn_count;
    tcg_reset_cpu(cpu);
    cpu->phys_bits = phys_bits;
    cpu->page_1g = page_1g;
    cpu->tsc_offset = tsc_offset;
    /* Chains made before must stay void: the epochs move on from where they were. */
    cpu->chain_epoch = epoch;
    cpu->chain_epoch_global = epoch_global;
    cpu->insn_count = insn_count;
    tlb_flush(cpu);
    lapic_init_reset(&v->lapic);
    v->wait_for_sipi = !(lapic_get_base(&v->lapic) & LAPIC_BASE_BSP);
}

/* SIPI in wait-for-SIPI: real mode at vector << 8 : 0. */
static void start_cpu(struct accel_vcpu *v, uint8_t vector)
{
    struct tcg_cpu *cpu = &v->cpu;
    cpu->seg[SEG_CS].selector = (uint16_t)(vector << 8);
    cpu->seg[SEG_CS].base = (uint64_t)vector << 12;
    cpu->seg_base[SEG_CS] = cpu->seg[SEG_CS].base;
    cpu->rip = 0;
    cpu->halted = false;
    tcg_update_hflags(cpu);
    v->wait_for_sipi = false;
}

bool tcg_startup(struct accel_vcpu *v)
{
    struct tcg_cpu *cpu = &v->cpu;
    for (;;) {
        uint32_t events = lapic_take_startup(&v->lapic);
        if (events & LAPIC_STARTUP_INIT)
            init_cpu(v);
        if ((events & LAPIC_STARTUP_SIPI) && v->wait_for_sipi)
            start_cpu(v, (uint8_t)(events & LAPIC_STARTUP_VECTOR));
        if (!v->wait_for_sipi)
            return true;
        /* Wakers record the message (or the stop request) before taking v->lock. Asleep,
         * the vCPU holds no block: exclusive sections need not wait for it. */
        tcg_exec_end(v);
        pthread_mutex_lock(&v->lock);
        while (!(atomic_load(&cpu->interrupt_request) & TCG_REQ_STOP) &&
               !lapic_startup_pending(&v->lapic))
            pthread_cond_wait(&v->wake, &v->lock);
        pthread_mutex_unlock(&v->lock);
        tcg_exec_start(v);
        if (atomic_load(&cpu->interrupt_request) & TCG_REQ_STOP)
            return false;
    }
}
