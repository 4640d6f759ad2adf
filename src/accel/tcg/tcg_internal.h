/* Shared between the translator's parts: the VM and vCPU objects behind accel_ops, the
 * software MMU, the translation-block cache and exception raising. */
#ifndef QUOKKA_ACCEL_TCG_TCG_INTERNAL_H
#define QUOKKA_ACCEL_TCG_TCG_INTERNAL_H

#include "accel/accel.h"
#include "accel/tcg/cpu.h"
#include "accel/tcg/debug.h"
#include "accel/tcg/lapic.h"
#include "accel/tcg/tb.h"
#include "vm/guest_clock.h"
#include "vm/timers.h"

#include <pthread.h>
#include <stdnoreturn.h>

#define TCG_MAX_VCPUS 64u

/* Stopping every other vCPU at a block boundary (exclusive.c). */
struct tcg_exclusive {
    pthread_mutex_t lock;
    pthread_cond_t stopped; /* the requester: every counted vCPU reached its safe point */
    pthread_cond_t resume;  /* the others: the section is over */
    /* 0: none; else 1 + running vCPUs yet to stop (the section runs when it is 1). */
    atomic_uint pending;
};

struct accel_vm {
    struct guest_memory *mem;
    struct bus *pio, *mmio;
    unsigned nr_vcpus;
    int (*intack)(void *ctx, unsigned vcpu);
    void *intack_ctx;
    void (*eoi)(void *ctx, uint8_t vector); /* the machine's EOI broadcast (IOAPIC) */
    struct tb_cache tbs;
    /* The translation lock: held to change the block cache (translate and insert, invalidate,
     * chain) and for stores into pages holding code; never across a wait for other vCPUs. */
    pthread_mutex_t tb_lock;
    struct tcg_exclusive excl;
    /* Every vCPU by index, set once it exists (NULL before and after): read from device
     * threads and other vCPUs (APIC messages, code-page protection, exclusive sections). */
    _Atomic(struct accel_vcpu *) vcpus[TCG_MAX_VCPUS];
    /* The machine's guest clock (stands still while paused): the TSC and the LAPIC timer
     * count in it. NULL (unit tests): the host's monotonic clock. */
    struct guest_clock *clock;
    const struct accel_settings *settings; /* backend choice, code buffer size */
    FILE *perf_map;                        /* --tcg perf-map: /tmp/perf-PID.map, or NULL */
    /* Code pages devices wrote (DMA), dropped by the vCPU before its next block: the block
     * cache belongs to the vCPU thread. Overflow drops every block. */
    pthread_mutex_t dma_lock;
    size_t dma_pages[64];
    unsigned nr_dma_pages;
    bool dma_overflow;
    struct tcg_vm_debug dbg; /* execution breakpoints of every vCPU (debug.h) */
};

/* Guest nanoseconds: the guest clock, or the host's monotonic clock without one. */
static inline uint64_t tcg_clock_ns(const struct accel_vm *vm)
{
    return vm->clock ? guest_clock_now(vm->clock) : clock_monotonic_ns();
}

struct accel_vcpu {
    struct accel_vm *vm;
    unsigned index;
    struct tcg_cpu cpu;
    pthread_mutex_t lock; /* guards the wake-up condition for HLT */
    pthread_cond_t wake;
    atomic_int intr_level; /* the INTR pin, driven by the interrupt controller model */
    struct lapic lapic;    /* this CPU's local APIC */
    unsigned timer_poll;   /* blocks run since the LAPIC timer deadline was last compared */
    struct cpuid_model cpuid;
    uint64_t guest_insns; /* instructions of blocks run to their end (benchmarks) */
    bool wait_for_sipi;   /* an AP before its SIPI, or any CPU after INIT but the BSP (smp.c) */
    /* Exclusive sections (exclusive.c). */
    atomic_bool running;                     /* inside tcg_run, may hold blocks */
    bool excl_waited_for;                    /* counted by a requester (under vm->excl.lock) */
    bool in_exclusive;                       /* this vCPU owns the running section */
    struct tb *jmp_cache[TB_JMP_CACHE_SIZE]; /* this vCPU's hints by linear pc (tb.h) */
    struct tcg_vcpu_debug dbg;               /* debugger and DR breakpoints (debug.h) */
};

static inline struct accel_vcpu *cpu_vcpu(struct tcg_cpu *cpu)
{
    return (struct accel_vcpu *)cpu->vcpu;
}

/* Leave generated code and deliver exception `vector` at the instruction whose address the
 * front end stored in cpu->rip. */
noreturn void tcg_raise_exception(struct tcg_cpu *cpu, int vector, uint32_t error_code,
                                  bool has_error_code);
/* The linear address of CS:RIP (and CS's base, part of a block's key). */
static inline uint64_t tcg_current_pc(const struct tcg_cpu *cpu, uint64_t *cs_base)
{
    *cs_base = (cpu->hflags & HF_CS64) ? 0 : cpu->seg[SEG_CS].base;
    uint64_t pc = *cs_base + cpu->rip;
    return (cpu->hflags & HF_CS64) ? pc : (pc & 0xffffffffULL);
}

/* Something may have made a pending interrupt deliverable (IF set, EOI, a lower TPR): have
 * generated code come back to the run loop at the next block entry to look. */
static inline void tcg_recheck_interrupts(struct tcg_cpu *cpu)
{
    atomic_fetch_or(&cpu->interrupt_request, TCG_REQ_INTERRUPT);
}

/* --- the APIC bus, INIT and SIPI (smp.c) --- */
/* lapic_ops.send of every vCPU's APIC (ctx: the vCPU). */
void tcg_apic_send(void *ctx, const struct apic_msg *msg, enum lapic_shorthand shorthand);
/* accel_ops.apic_msg: an IOAPIC/MSI message from any thread. */
void tcg_apic_msg(struct accel_vm *vm, const struct apic_msg *msg);
/* The run loop has INIT/SIPI to act on, or the CPU waits for a SIPI. */
static inline bool tcg_startup_pending(struct accel_vcpu *v)
{
    return v->wait_for_sipi || lapic_startup_pending(&v->lapic);
}
/* On the vCPU thread between blocks: act on INIT/SIPI, and in wait-for-SIPI sleep until one
 * comes. False when a stop request (kick) ended the wait: the run loop returns to the
 * machine and calls again later. */
bool tcg_startup(struct accel_vcpu *v);
/* The power-up state of the CPU (not of its local APIC), interrupt_request aside. */
void tcg_reset_cpu(struct tcg_cpu *cpu);

/* Leave generated code to the run loop (cpu->rip already points where to resume). */
noreturn void tcg_exit_to_loop(struct tcg_cpu *cpu);
/* A locked instruction at cpu->rip cannot be made atomic on the host (page- or cache-line
 * crossing, not RAM): leave, and have the run loop execute it again alone, translated with
 * cpu->parallel false, while every other vCPU is stopped (QEMU's cpu_exec_step_atomic). */
noreturn void tcg_exit_atomic(struct tcg_cpu *cpu);

/* Exclusive sections (exclusive.c). run() brackets its work with exec_start/exec_end (and
 * ends around sleeps); the run loop calls tcg_safe_point between blocks. begin/end are
 * called by a running vCPU holding no lock; in between it alone runs. */
void tcg_exclusive_init(struct tcg_exclusive *x);
void tcg_exclusive_destroy(struct tcg_exclusive *x);
void tcg_exec_start(struct accel_vcpu *v);
void tcg_exec_end(struct accel_vcpu *v);
void tcg_exclusive_begin(struct accel_vcpu *self);
void tcg_exclusive_end(struct accel_vcpu *self);
/* Returns true when another vCPU's section may have run (blocks may have been freed). */
bool tcg_safe_point(struct accel_vcpu *v);

/* The translation lock; a guest exception or exit raised while it is held releases it. */
static inline void tcg_tb_lock(struct tcg_cpu *cpu, struct accel_vm *vm)
{
    pthread_mutex_lock(&vm->tb_lock);
    cpu->tb_lock_held = true;
}

static inline void tcg_tb_unlock(struct tcg_cpu *cpu, struct accel_vm *vm)
{
    cpu->tb_lock_held = false;
    pthread_mutex_unlock(&vm->tb_lock);
}

/* --- TSC, MSRs, CR0 (helpers.c), shared with the accelerator's get/set_msrs --- */
#define TCG_TSC_HZ 1000000000ULL /* 1 GHz nominal, from CLOCK_MONOTONIC */
uint64_t tcg_read_tsc(const struct tcg_cpu *cpu);
/* Snapshots (tcg_snapshot.c). */
void tcg_save_vcpu(struct accel_vcpu *v, struct snap_writer *w);
int tcg_load_vcpu(struct accel_vcpu *v, struct snap_reader *r, char *err, size_t errlen);
bool tcg_msr_read(struct tcg_cpu *cpu, uint32_t index, uint64_t *value);
bool tcg_msr_write(struct tcg_cpu *cpu, uint32_t index, uint64_t value);
void tcg_write_cr0(struct tcg_cpu *cpu, uint64_t value);

/* --- software MMU (softmmu.c) --- */
enum mmu_access { MMU_READ, MMU_WRITE, MMU_EXEC };
/* Virtual -> physical for the current mode; on a fault raises #PF (never returns). */
uint64_t mmu_translate(struct tcg_cpu *cpu, uint64_t vaddr, enum mmu_access access, bool user);
/* The same without side effects on the guest: returns false where the access would fault. */
bool mmu_probe(struct tcg_cpu *cpu, uint64_t vaddr, enum mmu_access access, uint64_t *paddr);
/* The debugger's view: a supervisor read of vaddr, no side effects; false where unmapped. */
bool mmu_debug_translate(struct tcg_cpu *cpu, uint64_t vaddr, uint64_t *paddr);
uint64_t mmu_load(void *env, uint64_t vaddr, unsigned memop);
void mmu_store(void *env, uint64_t vaddr, uint64_t value, unsigned memop);
/* Host memory for len bytes at vaddr (one page) when they are plain RAM, after what an
 * access there does (translation and its faults, A/D bits, dropping translated code it
 * overwrites); NULL where the access must go through mmu_load/mmu_store (MMIO, the APIC). */
void *mmu_ram_ptr(struct tcg_cpu *cpu, uint64_t vaddr, size_t len, bool write);
/* Supervisor-privilege accesses for descriptor tables, stacks of interrupt delivery. */
uint64_t mmu_load_kernel(struct tcg_cpu *cpu, uint64_t vaddr, unsigned size);
void mmu_store_kernel(struct tcg_cpu *cpu, uint64_t vaddr, uint64_t value, unsigned size);
/* Physical address of the code at linear pc, from the TLB when it has the page: walking
 * the page tables (and raising #PF) when may_fault, else only probing (false: unmapped). */
bool mmu_code_phys(struct tcg_cpu *cpu, uint64_t pc, bool may_fault, uint64_t *paddr);
/* Read up to len code bytes at vaddr for the decoder; stops at a page that would fault
 * (returns how many bytes were read; 0 raises the fault for the first byte). */
size_t mmu_fetch_code(struct tcg_cpu *cpu, uint64_t vaddr, uint8_t *buf, size_t len);
void tlb_flush(struct tcg_cpu *cpu);
/* A device wrote guest RAM [gpa, gpa+len) (any thread): pages with translated code are
 * queued and the vCPU drops them before it runs another block (tcg_drop_dma_pages). */
void tcg_notify_ram_write(struct accel_vm *vm, uint64_t gpa, uint64_t len);
/* On the vCPU thread, between blocks. */
void tcg_drop_dma_pages(struct accel_vcpu *v);
/* A chained jump or inline cache now leads to code at vaddr: INVLPG of its page must void
 * chains (INVLPG of other pages need not). */
void tlb_note_chain_target(struct tcg_cpu *cpu, uint64_t vaddr);
/* A CR3 write: drop every entry but those of global pages. */
void tlb_flush_nonglobal(struct tcg_cpu *cpu);
void tlb_flush_page(struct tcg_cpu *cpu, uint64_t vaddr);
/* Make every vCPU's writes to physical page ppage take the slow path (it now holds translated
 * code); the page is marked in the block cache first (fill_tlb looks again after filling). */
void tcg_protect_code_page(struct accel_vm *vm, uint64_t ppage);

#endif
