/* The translator's vCPU in snapshots: the architectural state of struct tcg_cpu (registers,
 * lazy flags, segments, control registers, MSRs, x87/SSE), the local APIC, then (added with
 * SMP, optional when loading: files from before have none and mean a running CPU with
 * nothing pending) the startup word: wait-for-SIPI and the INIT/SIPI messages not yet taken.
 * Translation caches, the TLB and block chains are not state: a restored vCPU starts with
 * them empty. */
#include "accel/tcg/tcg_internal.h"
#include "accel/tcg/x86/flags.h"
#include "accel/tcg/x86/seg.h"
#include "util/log.h"
#include "vm/snapshot.h"

#include <stddef.h>
#include <string.h>

/* gpr .. fpu: the IR globals and the system state, laid out together in struct tcg_cpu. */
#define CPU_STATE_OFFSET offsetof(struct tcg_cpu, gpr)
#define CPU_STATE_SIZE (offsetof(struct tcg_cpu, exception) - CPU_STATE_OFFSET)
/* The startup word: LAPIC_STARTUP_* bits and this one. */
#define SNAP_WAIT_FOR_SIPI (1u << 16)

void tcg_save_vcpu(struct accel_vcpu *v, struct snap_writer *w)
{
    struct tcg_cpu *cpu = &v->cpu;
    snap_put_u32(w, (uint32_t)CPU_STATE_SIZE);
    snap_put(w, (uint8_t *)cpu + CPU_STATE_OFFSET, CPU_STATE_SIZE);
    uint8_t flags = (uint8_t)(cpu->halted | cpu->inhibit_irq << 1);
    snap_put(w, &flags, 1);
    lapic_save(&v->lapic, w);
    /* The vCPU is parked: messages that came after its last look at them wait here. */
    uint32_t startup = atomic_load(&v->lapic.startup) & LAPIC_STARTUP_MASK;
    snap_put_u32(w, startup | (v->wait_for_sipi ? SNAP_WAIT_FOR_SIPI : 0));
}

int tcg_load_vcpu(struct accel_vcpu *v, struct snap_reader *r, char *err, size_t errlen)
{
    struct tcg_cpu *cpu = &v->cpu, saved;
    uint32_t size = snap_get_u32(r);
    if (size != CPU_STATE_SIZE)
        return qk_fail(err, errlen, "vCPU %u state has %u bytes, this build has %zu", v->index,
                       size, CPU_STATE_SIZE);
    snap_get(r, (uint8_t *)&saved + CPU_STATE_OFFSET, CPU_STATE_SIZE);
    uint8_t flags = 0;
    snap_get(r, &flags, 1);
    if (r->failed || !x86_cc_op_valid(saved.cc_op) || saved.fpu.top > 7 ||
        lapic_load(&v->lapic, r) < 0)
        return qk_fail(err, errlen, "vCPU %u state is malformed", v->index);
    uint32_t startup = r->pos < r->len ? snap_get_u32(r) : 0;
    if (!snap_done(r) || (startup & ~(LAPIC_STARTUP_MASK | SNAP_WAIT_FOR_SIPI)))
        return qk_fail(err, errlen, "vCPU %u state is malformed", v->index);
    lapic_set_startup(&v->lapic, startup);
    v->wait_for_sipi = (startup & SNAP_WAIT_FOR_SIPI) != 0;
    memcpy((uint8_t *)cpu + CPU_STATE_OFFSET, (uint8_t *)&saved + CPU_STATE_OFFSET, CPU_STATE_SIZE);
    cpu->halted = flags & 1;
    cpu->inhibit_irq = (flags >> 1) & 1;
    cpu->exception = -1;
    for (unsigned i = 0; i < NR_SEGS; i++)
        cpu->seg_base[i] = cpu->seg[i].base;
    tcg_update_hflags(cpu);
    tlb_flush(cpu);
    return 0;
}
