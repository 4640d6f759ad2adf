/* The translator as an accelerator: accel_ops over quokka's own dynamic binary translator.
 *
 * run() loops: take pending interrupts, find (or translate) the block at CS:RIP, run it on
 * a backend: native x86-64 code (chaining blocks to each other) where the host allows, else
 * the portable interpreter (QUOKKA_TCG_BACKEND=interp forces it). Guest exceptions and
 * exits from helpers come back here through longjmp to cpu->exit_jmp; neither backend holds
 * resources across helper calls. */
#include "accel/accel.h"

#include "accel/tcg/backend/interp.h"
#include "accel/tcg/backend/x86_64.h"
#include "accel/tcg/tcg_internal.h"
#include "accel/tcg/x86/fpu.h"
#include "accel/tcg/x86/helpers.h"
#include "accel/tcg/x86/seg.h"
#include "accel/tcg/x86/translate.h"
#include "util/log.h"
#include "vm/cpu_model.h"
#include "vm/cpuid.h"
#include "vm/memory.h"
#include "vm/timers.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const struct interp_mem_ops tcg_mem_ops = {mmu_load, mmu_store};

#define NATIVE_BUFFER_BYTES (512u << 20) /* reserved; pages are used as code fills it */
/* Chained jumps between visits to the run loop (which polls the LAPIC timer): tens of
 * microseconds of guest time at most. */
#define CHAIN_BUDGET 1024

static const void *native_next_block(void *env, struct native_site *site);

/* The native backend where the host can run it and it is not turned off; NULL means the
 * interpreter. */
static struct native_jit *create_native_backend(const struct accel_settings *settings,
                                                unsigned nr_vcpus)
{
#if !defined(__x86_64__)
    (void)settings, (void)nr_vcpus, (void)native_next_block;
    return NULL; /* the native backend emits x86-64 code: this host runs the interpreter */
#else
    if (settings && settings->tcg_backend == TCG_BACKEND_INTERP)
        return NULL;
    const struct native_config cfg = {
        .mem = {mmu_load, mmu_store},
        .tlb_offset = {offsetof(struct tcg_cpu, tlb[0]), offsetof(struct tcg_cpu, tlb[1])},
        .tlb_entry_size = sizeof(struct tlb_entry),
        .tlb_entries = TLB_SIZE,
        .tlb_read_tag = offsetof(struct tlb_entry, read_tag),
        .tlb_write_tag = offsetof(struct tlb_entry, write_tag),
        .tlb_addend = offsetof(struct tlb_entry, addend),
        .exit_request_offset = offsetof(struct tcg_cpu, interrupt_request),
        .chain_budget_offset = offsetof(struct tcg_cpu, chain_budget),
        .guard_offset = offsetof(struct tcg_cpu, hflags),
        .epoch_offset = offsetof(struct tcg_cpu, chain_epoch),
        .global_epoch_offset = offsetof(struct tcg_cpu, chain_epoch_global),
        .last_exit_offset = offsetof(struct tcg_cpu, last_exit),
        .insn_count_offset = offsetof(struct tcg_cpu, insn_count),
        .jumps_run_offset = offsetof(struct tcg_cpu, stats.jumps_run),
        .inline_mem_offset = offsetof(struct tcg_cpu, stats.inline_mem),
        .inline_mem_slow_offset = offsetof(struct tcg_cpu, stats.inline_mem_slow),
        .helper_calls_offset = offsetof(struct tcg_cpu, stats.helper_calls),
        .helper_calls_max = TCG_STATS_HELPERS,
        .count_insns = settings && settings->tcg_count_insns,
        .lookup_next = native_next_block,
        .pc_offset = offsetof(struct tcg_cpu, rip),
        .ras_offset = offsetof(struct tcg_cpu, ras),
        .ras_top_offset = offsetof(struct tcg_cpu, ras_top),
        .ras_entries = TCG_RAS_ENTRIES,
        .nr_threads = nr_vcpus,
        .sites_offset = offsetof(struct tcg_cpu, jit_sites),
        .fast_jump_offset = offsetof(struct tcg_cpu, fast_jump),
        .fast_jump_entries = TCG_FAST_JUMPS,
    };
    size_t bytes = NATIVE_BUFFER_BYTES;
    if (settings && settings->tcg_code_kb)
        bytes = (size_t)settings->tcg_code_kb * 1024;
    char why[160];
    struct native_jit *jit = native_jit_create(&cfg, bytes, why, sizeof(why));
    if (!jit)
        qk_warn("translator: native backend unavailable (%s); using the interpreter", why);
    return jit;
#endif
}

struct tcg_vcpu_extra {
    struct ir_block block; /* scratch IR block for translation (large: kept per vCPU) */
};

/* Nothing is held across a jump back to the run loop. */
static void release_locks(struct tcg_cpu *cpu)
{
    if (cpu->tb_lock_held)
        tcg_tb_unlock(cpu, cpu_vcpu(cpu)->vm);
}

noreturn void tcg_raise_exception(struct tcg_cpu *cpu, int vector, uint32_t error_code,
                                  bool has_error_code)
{
    release_locks(cpu);
    cpu->exception = vector;
    cpu->error_code = error_code;
    cpu->has_error_code = has_error_code;
    longjmp(cpu->exit_jmp, 1);
}

noreturn void tcg_exit_to_loop(struct tcg_cpu *cpu)
{
    release_locks(cpu);
    longjmp(cpu->exit_jmp, 2);
}

noreturn void tcg_exit_atomic(struct tcg_cpu *cpu)
{
    release_locks(cpu);
    cpu->step_atomic = true;
    longjmp(cpu->exit_jmp, 2);
}

/* --- VM -------------------------------------------------------------------------------------- */

static int tcg_probe(char *why, size_t len)
{
    (void)why, (void)len;
    return 0; /* runs anywhere */
}

/* perf's JIT convention: /tmp/perf-PID.map lists "START SIZE name" for generated code, so
 * `perf report`/`perf top` name guest blocks (by guest pc) instead of raw addresses. */
static void open_perf_map(struct accel_vm *vm)
{
    char path[64];
    snprintf(path, sizeof(path), "/tmp/perf-%d.map", (int)getpid());
    vm->perf_map = fopen(path, "w");
    if (!vm->perf_map)
        qk_warn("translator: cannot write %s (%s): no perf map", path, strerror(errno));
}

/* One line per native block placed in the code buffer (under the translation lock). */
static void note_perf_map(struct accel_vm *vm, const struct tb *tb)
{
    if (vm->perf_map && tb->native)
        fprintf(vm->perf_map, "%llx %x guest_%llx\n",
                (unsigned long long)(uintptr_t)tb->native->entry, tb->native->size,
                (unsigned long long)tb->pc);
}

static int tcg_vm_create(const struct accel_vm_config *cfg, struct accel_vm **out, char *err,
                         size_t errlen)
{
    if (cfg->nr_vcpus < 1 || cfg->nr_vcpus > TCG_MAX_VCPUS)
        return qk_fail(err, errlen, "the translator runs 1 to %u vCPUs (%u requested)",
                       TCG_MAX_VCPUS, cfg->nr_vcpus);
    struct accel_vm *vm = calloc(1, sizeof(*vm));
    if (!vm)
        return qk_fail(err, errlen, "out of memory");
    vm->mem = cfg->mem;
    vm->pio = cfg->pio;
    vm->mmio = cfg->mmio;
    vm->nr_vcpus = cfg->nr_vcpus;
    vm->intack = cfg->intack;
    vm->intack_ctx = cfg->intack_ctx;
    vm->eoi = cfg->eoi;
    pthread_mutex_init(&vm->dma_lock, NULL);
    pthread_mutex_init(&vm->tb_lock, NULL);
    tcg_exclusive_init(&vm->excl);
    if (tb_cache_init(&vm->tbs, (size_t)(cfg->mem->ram_size >> 12)) < 0) {
        pthread_mutex_destroy(&vm->tb_lock);
        tcg_exclusive_destroy(&vm->excl);
        pthread_mutex_destroy(&vm->dma_lock);
        free(vm);
        return qk_fail(err, errlen, "out of memory for the translation cache");
    }
    vm->clock = cfg->clock;
    vm->settings = cfg->settings;
    vm->tbs.jit = create_native_backend(cfg->settings, cfg->nr_vcpus);
    if (vm->tbs.jit && cfg->settings && cfg->settings->tcg_perf_map)
        open_perf_map(vm);
    *out = vm;
    return 0;
}

static void tcg_vm_destroy(struct accel_vm *vm)
{
    if (!vm)
        return;
    if (vm->perf_map)
        fclose(vm->perf_map);
    struct native_jit *jit = vm->tbs.jit;
    tb_cache_destroy(&vm->tbs);
    native_jit_destroy(jit);
    pthread_mutex_destroy(&vm->dma_lock);
    pthread_mutex_destroy(&vm->tb_lock);
    tcg_exclusive_destroy(&vm->excl);
    free(vm);
}

/* The CPU model (vm/cpu_model.c), with the translator's TSC and LAPIC timer rates: both count
 * at 1 GHz from the host's monotonic clock, which leaves 0x15/0x16/0x40000010 tell the guest
 * instead of letting it calibrate against the PIT. The model's MSR values are the ones
 * tcg_msr_read starts with. */
static int tcg_supported_cpuid(struct accel_vm *vm, struct cpuid_model *out, char *err,
                               size_t errlen)
{
    (void)vm, (void)err, (void)errlen;
    _Static_assert(TCG_TSC_HZ == LAPIC_TIMER_HZ, "leaf 0x15 describes both clocks");
    cpu_model_cpuid(out, TCG_TSC_HZ, LAPIC_TIMER_HZ);
    return 0;
}

static int tcg_set_irq(struct accel_vm *vm, uint32_t gsi, int level)
{
    (void)vm, (void)gsi, (void)level;
    return 0; /* interrupts arrive through set_intr from the user-space controller */
}

/* --- vCPU ------------------------------------------------------------------------------------- */

void tcg_reset_cpu(struct tcg_cpu *cpu)
{
    /* interrupt_request is not state: other threads set bits in it at any time (an INIT
     * resets a running CPU). */
    const size_t req = offsetof(struct tcg_cpu, interrupt_request);
    const size_t after = req + sizeof(cpu->interrupt_request);
    tcg_fp_release(cpu);
    memset(cpu, 0, req);
    memset((char *)cpu + after, 0, offsetof(struct tcg_cpu, exit_jmp) - after);
    cpu->eflags = 2;
    cpu->cc_op = CC_OP_EFLAGS;
    cpu->cr0 = X86_CR0_ET;
    tcg_fpu_reset(&cpu->fpu);
    cpu->exception = -1;
    cpu->pat = 0x0007040600070406ULL;
    cpu->dr[6] = 0xffff0ff0ULL;
    cpu->dr[7] = 0x400;
    for (unsigned i = 0; i < NR_SEGS; i++)
        cpu->seg[i] = (struct tcg_segment){0, 0xffff, 0, 0x3 | SEG_ATTR_S | SEG_ATTR_P};
    cpu->seg[SEG_CS] =
        (struct tcg_segment){0xffff0000ULL, 0xffff, 0xf000, 0xb | SEG_ATTR_S | SEG_ATTR_P};
    for (unsigned i = 0; i < NR_SEGS; i++)
        cpu->seg_base[i] = cpu->seg[i].base;
    cpu->rip = 0xfff0;
    cpu->idt.limit = 0xffff;
    cpu->gdt.limit = 0xffff;
    tlb_flush(cpu);
    tcg_update_hflags(cpu);
    tcg_debug_reset(cpu);
}

static uint64_t lapic_clock(void *ctx)
{
    const struct accel_vcpu *v = ctx;
    return tcg_clock_ns(v->vm);
}

static void lapic_eoi(void *ctx, uint8_t vector)
{
    struct accel_vcpu *v = ctx;
    if (v->vm->eoi)
        v->vm->eoi(v->vm->intack_ctx, vector);
}

/* Wake the vCPU thread if it sleeps in HLT: an interrupt became deliverable. */
static void wake_vcpu(struct accel_vcpu *v)
{
    atomic_fetch_or(&v->cpu.interrupt_request, TCG_REQ_INTERRUPT);
    pthread_mutex_lock(&v->lock);
    pthread_cond_broadcast(&v->wake);
    pthread_mutex_unlock(&v->lock);
}

static void lapic_kick(void *ctx)
{
    wake_vcpu(ctx);
}

static int tcg_vcpu_create(struct accel_vm *vm, unsigned index, struct accel_vcpu **out, char *err,
                           size_t errlen)
{
    struct accel_vcpu *v = calloc(1, sizeof(*v) + sizeof(struct tcg_vcpu_extra));
    if (!v)
        return qk_fail(err, errlen, "out of memory");
    v->vm = vm;
    v->index = index;
    /* HLT sleeps until the LAPIC timer's deadline, converted to CLOCK_MONOTONIC. */
    pthread_condattr_t attr;
    const struct lapic_ops lops = {lapic_clock, lapic_eoi, lapic_kick, tcg_apic_send, v};
    if (pthread_condattr_init(&attr) != 0) {
        free(v);
        return qk_fail(err, errlen, "cannot create the vCPU wait condition");
    }
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(&v->wake, &attr);
    pthread_condattr_destroy(&attr);
    if (rc != 0) {
        free(v);
        return qk_fail(err, errlen, "cannot create the vCPU wait condition");
    }
    if (lapic_init(&v->lapic, index, index == 0, &lops) < 0) {
        pthread_cond_destroy(&v->wake);
        free(v);
        return qk_fail(err, errlen, "cannot create the local APIC");
    }
    pthread_mutex_lock(&vm->tb_lock);
    rc = tb_register_jmp_cache(&vm->tbs, v->jmp_cache);
    pthread_mutex_unlock(&vm->tb_lock);
    if (rc < 0) {
        lapic_destroy(&v->lapic);
        pthread_cond_destroy(&v->wake);
        free(v);
        return qk_fail(err, errlen, "too many vCPUs for the translation cache");
    }
    pthread_mutex_init(&v->lock, NULL);
    v->cpu.vcpu = (struct tcg_vcpu *)v;
    v->cpu.jit_sites = vm->tbs.jit ? native_jit_sites(vm->tbs.jit, index) : NULL;
    v->cpu.host_fp = IR_HOST_FP; /* before the reset computes hflags */
    tcg_reset_cpu(&v->cpu);
    v->cpu.parallel = vm->nr_vcpus > 1;
    long host_cpus = sysconf(_SC_NPROCESSORS_ONLN);
    v->cpu.oversubscribed = host_cpus > 0 && vm->nr_vcpus > (unsigned long)host_cpus;
    v->wait_for_sipi = index != 0; /* application processors wait for their SIPI (smp.c) */
    if (index < TCG_MAX_VCPUS)
        atomic_store(&vm->vcpus[index], v);
    *out = v;
    return 0;
}

static void tcg_vcpu_destroy(struct accel_vcpu *v)
{
    if (!v)
        return;
    struct accel_vcpu *self = v;
    if (v->vm->settings && v->vm->settings->tcg_stats)
        tcg_stats_print(&v->cpu.stats, v->index, x86_helper_table, X86_NR_HELPERS, stderr);
    if (v->index < TCG_MAX_VCPUS)
        atomic_compare_exchange_strong(&v->vm->vcpus[v->index], &self, NULL);
    pthread_mutex_lock(&v->vm->tb_lock);
    tb_unregister_jmp_cache(&v->vm->tbs, v->jmp_cache);
    pthread_mutex_unlock(&v->vm->tb_lock);
    lapic_destroy(&v->lapic);
    pthread_mutex_destroy(&v->lock);
    pthread_cond_destroy(&v->wake);
    free(v);
}

static struct ir_block *vcpu_block(struct accel_vcpu *v)
{
    return &((struct tcg_vcpu_extra *)(v + 1))->block;
}

static int tcg_set_cpuid(struct accel_vcpu *v, const struct cpuid_model *model)
{
    v->cpuid = *model;
    const struct cpuid_entry *ext = cpuid_find(model, 0x80000001, 0);
    const struct cpuid_entry *size = cpuid_find(model, 0x80000008, 0);
    unsigned bits = size ? size->eax & 0xff : 36;
    v->cpu.phys_bits = (uint8_t)(bits < 32 ? 32 : bits > 52 ? 52 : bits);
    v->cpu.page_1g = ext && (ext->edx & (1u << 26));
    return 0;
}

static uint16_t attr_pack(const struct vcpu_segment *s)
{
    if (s->unusable)
        return 0;
    return (uint16_t)((s->type & 0xf) | (s->s & 1) << 4 | (s->dpl & 3) << 5 |
                      (s->present & 1) << 7 | (s->avl & 1) << 12 | (s->l & 1) << 13 |
                      (s->db & 1) << 14 | (s->g & 1) << 15);
}

static void attr_unpack(struct vcpu_segment *s, uint16_t a)
{
    s->type = a & 0xf;
    s->s = (a >> 4) & 1;
    s->dpl = (a >> 5) & 3;
    s->present = (a >> 7) & 1;
    s->avl = (a >> 12) & 1;
    s->l = (a >> 13) & 1;
    s->db = (a >> 14) & 1;
    s->g = (a >> 15) & 1;
    s->unusable = !s->present;
}

static int tcg_get_state(struct accel_vcpu *v, struct vcpu_state *st)
{
    const struct tcg_cpu *cpu = &v->cpu;
    memcpy(st->gpr, cpu->gpr, sizeof(st->gpr));
    st->rip = cpu->rip;
    st->rflags = tcg_read_eflags(cpu);
    for (unsigned i = 0; i < NR_SEGS; i++) {
        const struct tcg_segment *s = &cpu->seg[i];
        st->seg[i] =
            (struct vcpu_segment){.base = s->base, .limit = s->limit, .selector = s->selector};
        attr_unpack(&st->seg[i], s->attr);
    }
    st->gdt = cpu->gdt;
    st->idt = cpu->idt;
    st->cr0 = cpu->cr0;
    st->cr2 = cpu->cr2;
    st->cr3 = cpu->cr3;
    st->cr4 = cpu->cr4;
    st->cr8 = lapic_get_cr8(&v->lapic);
    st->efer = cpu->efer;
    st->apic_base = lapic_get_base(&v->lapic);
    return 0;
}

static int tcg_set_state(struct accel_vcpu *v, const struct vcpu_state *st)
{
    struct tcg_cpu *cpu = &v->cpu;
    memcpy(cpu->gpr, st->gpr, sizeof(cpu->gpr));
    cpu->rip = st->rip;
    for (unsigned i = 0; i < NR_SEGS; i++) {
        const struct vcpu_segment *s = &st->seg[i];
        cpu->seg[i] = (struct tcg_segment){s->base, s->limit, s->selector, attr_pack(s)};
        cpu->seg_base[i] = s->base;
    }
    cpu->gdt = st->gdt;
    cpu->idt = st->idt;
    cpu->cr0 = st->cr0 | X86_CR0_ET;
    cpu->cr2 = st->cr2;
    cpu->cr3 = st->cr3;
    cpu->cr4 = st->cr4;
    lapic_set_cr8(&v->lapic, st->cr8);
    cpu->efer = st->efer;
    if (st->apic_base && !lapic_set_base(&v->lapic, st->apic_base))
        return -1;
    cpu->eflags = 2;
    tcg_write_eflags(cpu, st->rflags, ~0ULL);
    /* CPL: the RPL of CS in protected mode (boot states run at 0). */
    cpu->hflags = (st->cr0 & X86_CR0_PE) ? (st->seg[SEG_CS].selector & 3u) : 0;
    tcg_update_hflags(cpu);
    tlb_flush(cpu);
    cpu->halted = false;
    v->wait_for_sipi = false; /* given registers to run, an AP runs them (as the BSP would) */
    return 0;
}

static int tcg_get_fpu(struct accel_vcpu *v, struct vcpu_fpu *fpu)
{
    return tcg_fpu_get(&v->cpu, fpu);
}

static int tcg_set_fpu(struct accel_vcpu *v, const struct vcpu_fpu *fpu)
{
    return tcg_fpu_set(&v->cpu, fpu);
}

static int tcg_get_msrs(struct accel_vcpu *v, struct vcpu_msr *msrs, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        if (!tcg_msr_read(&v->cpu, msrs[i].index, &msrs[i].value))
            return -1;
    return 0;
}

static int tcg_set_msrs(struct accel_vcpu *v, const struct vcpu_msr *msrs, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        if (!tcg_msr_write(&v->cpu, msrs[i].index, msrs[i].value))
            return -1;
    return 0;
}

static void tcg_kick(struct accel_vcpu *v)
{
    atomic_fetch_or(&v->cpu.interrupt_request, TCG_REQ_STOP);
    pthread_mutex_lock(&v->lock);
    pthread_cond_broadcast(&v->wake);
    pthread_mutex_unlock(&v->lock);
}

static void tcg_set_intr(struct accel_vcpu *v, int level)
{
    atomic_store(&v->intr_level, level ? 1 : 0);
    if (level)
        wake_vcpu(v);
}

static int tcg_vcpu_thread_init(struct accel_vcpu *v)
{
    (void)v;
    return 0;
}

static uint64_t tcg_guest_insns(struct accel_vcpu *v)
{
    return v->guest_insns + v->cpu.insn_count;
}

/* --- the run loop ------------------------------------------------------------------------------
 */

static bool is_contributory(int vector)
{
    return vector == X86_EXC_DE || (vector >= X86_EXC_TS && vector <= X86_EXC_GP);
}

/* Deliver cpu->exception, escalating faults during delivery to #DF and a fault while
 * delivering #DF to a triple fault. Returns false on triple fault. */
static bool deliver_exception(struct tcg_cpu *cpu)
{
    int first = -1;
    cpu->stats.exceptions++;
    for (unsigned attempts = 0; attempts < 4; attempts++) {
        int vector = cpu->exception;
        bool soft = cpu->exception_soft;
        enum tcg_event kind = soft                 ? TCG_EVENT_SOFTWARE
                              : cpu->exception_ext ? TCG_EVENT_EXTERNAL
                                                   : TCG_EVENT_EXCEPTION;
        uint64_t next = soft ? cpu->exception_next_rip : cpu->rip;
        bool has_err = cpu->has_error_code;
        uint32_t err = cpu->error_code;
        cpu->exception = -1;
        cpu->exception_soft = false;
        cpu->exception_ext = false;
        if (setjmp(cpu->exit_jmp) == 0) {
            tcg_deliver_interrupt(cpu, vector, kind, has_err, err, next);
            return true;
        }
        /* A fault while delivering `vector`. */
        if (cpu->exception < 0)
            return true; /* not a fault (cannot happen: delivery does not exit otherwise) */
        if (vector == X86_EXC_DF)
            break;
        int second = cpu->exception;
        bool df = (is_contributory(vector) && is_contributory(second)) ||
                  (vector == X86_EXC_PF && (is_contributory(second) || second == X86_EXC_PF));
        if (df) {
            cpu->exception = X86_EXC_DF;
            cpu->error_code = 0;
            cpu->has_error_code = true;
        }
        first = vector;
    }
    (void)first;
    /* Triple fault: the shutdown consumes the fault, which a later exit back to the loop (a
     * locked instruction run alone, SMC) must not find pending and deliver. */
    cpu->exception = -1;
    return false;
}

/* The single-step trap after an instruction that began with TF set: DR6.BS and #DB, unless
 * the instruction was MOV SS / POP SS (the trap comes after the next one). Returns false on
 * triple fault. */
static bool deliver_single_step(struct tcg_cpu *cpu)
{
    if (cpu->inhibit_db) {
        cpu->inhibit_db = false;
        return true;
    }
    cpu->dr[6] |= X86_DR6_BS;
    cpu->exception = X86_EXC_DB;
    cpu->has_error_code = false;
    cpu->exception_soft = false;
    cpu->exception_ext = false;
    return deliver_exception(cpu);
}

static void log_ir(const struct ir_block *block, const char *what, uint64_t pc, unsigned insns)
{
    size_t len = 1 << 20; /* debug output only */
    char *text = malloc(len);
    if (!text)
        return;
    ir_print(block, text, len);
    fprintf(stderr, "%s pc=0x%llx (%u insns)\n%s\n", what, (unsigned long long)pc, insns, text);
    free(text);
}

/* RAM page number of physical page address ppage, or SIZE_MAX outside RAM. */
/* QUOKKA_TCG_LOG_IR=1 logs every block; =ADDR (hex) only the block at that guest pc, and its
 * host code too (dump_host_code). */
static bool want_log(uint64_t pc)
{
    const char *which = getenv("QUOKKA_TCG_LOG_IR");
    if (!which)
        return false;
    if (!strcmp(which, "1"))
        return true;
    return strtoull(which, NULL, 16) == pc;
}

/* The block's host code to /tmp/quokka-block-PC.bin, for
 * `objdump -D -b binary -m i386:x86-64 FILE`. */
static void dump_host_code(const struct tb *tb)
{
    if (!tb->native)
        return;
    char path[64];
    snprintf(path, sizeof(path), "/tmp/quokka-block-%llx.bin", (unsigned long long)tb->pc);
    FILE *f = fopen(path, "wb");
    if (!f)
        return;
    fwrite(tb->native->entry, 1, tb->native->size, f);
    fclose(f);
    fprintf(stderr, "quokka: host code of block 0x%llx in %s\n", (unsigned long long)tb->pc, path);
}

static size_t ram_page(const struct accel_vm *vm, uint64_t ppage)
{
    const uint8_t *host = gpa_to_host(vm->mem, ppage, 0x1000);
    return host ? (size_t)(host - vm->mem->mapping) >> 12 : SIZE_MAX;
}

/* From now on stores to RAM page `page` (physical ppage) by any vCPU take the slow path, which
 * drops its blocks: set before its bytes are read, so a store after the read is not missed.
 * Translation lock held. */
static void protect_code_page(struct accel_vm *vm, size_t page, uint64_t ppage)
{
    if (tb_page_has_code(&vm->tbs, page))
        return; /* protected already: TLB fills check for code */
    tb_page_mark_translating(&vm->tbs, page);
    tcg_protect_code_page(vm, ppage);
}

/* IR -> host code (or the interpreter's form) for a new block; NULL when out of memory or,
 * with *full set, when the native code buffer is full. */
static struct tb *compile_block(struct accel_vcpu *v, const struct x86_translate_info *info,
                                bool native, bool *full)
{
    struct tcg_cpu *cpu = &v->cpu;
    struct accel_vm *vm = v->vm;
    struct ir_block *block = vcpu_block(v);
    *full = false;
    struct tb *tb = calloc(1, sizeof(*tb));
    if (!tb)
        return NULL;
    if (native) {
        struct native_block_info ni = {
            .mmu_index = (cpu->hflags & HF_CPL_MASK) == 3,
            .guard = cpu->hflags,
            .nr_guest_insns = info->nr_insns,
            .inline_cache = (cpu->hflags & HF_CS64) != 0,
            .ras_push = info->ends_with_call,
            .ras_pop = info->ends_with_ret,
            .ras_return = info->call_return,
        };
        memcpy(ni.chain_same_page, info->chain_same_page, sizeof(ni.chain_same_page));
        tb->native = native_compile(vm->tbs.jit, block, &ni, full);
        if (tb->native)
            tb->native_entry = tb->native->entry;
    } else {
        tb->code = interp_compile(block, &tcg_mem_ops);
    }
    if (!tb->code && !tb->native) {
        free(tb);
        return NULL;
    }
    tb->hflags = cpu->hflags;
    tb->size = info->guest_size;
    tb->nr_guest_insns = info->nr_insns;
    return tb;
}

/* Translate the block at pc and, for code in RAM, insert it into the shared cache. `alone`:
 * just the one instruction, for the interpreter, not cached (after a store rewrote the
 * running block, see before_code_write, or an atomic step). NULL: out of memory or IR
 * overflow, or (*full) the code buffer must be flushed first. */
static struct tb *translate_block(struct accel_vcpu *v, uint64_t pc, uint64_t phys_pc,
                                  uint64_t cs_base, bool alone, bool *full)
{
    struct tcg_cpu *cpu = &v->cpu;
    struct accel_vm *vm = v->vm;
    struct ir_block *block = vcpu_block(v);
    /* Code outside RAM is never cached: interpret it, so that running it again and again
     * does not fill the native code buffer (where only a flush reclaims space). */
    size_t page0 = ram_page(vm, phys_pc & ~0xfffULL);
    bool cached = !alone && page0 != SIZE_MAX;
    *full = false;
    if (cached) {
        tcg_tb_lock(cpu, vm);
        /* Another vCPU may have translated it while this one waited for the lock. */
        struct tb *tb =
            tb_lookup(&vm->tbs, v->jmp_cache, pc, phys_pc, cs_base, cpu->hflags, cpu->cc_op);
        if (tb) {
            tcg_tb_unlock(cpu, vm);
            return tb;
        }
        protect_code_page(vm, page0, phys_pc & ~0xfffULL);
    }
    struct x86_translate_info info;
    uint64_t started = clock_monotonic_ns();
    /* May raise #PF for the first byte (tables changed meanwhile): that releases the lock. */
    struct tb *tb = NULL;
    if (x86_translate_block(cpu, block, cs_base, cpu->rip, cpu->hflags, alone ? 1 : 0, &info) < 0)
        goto out;
    bool log = want_log(pc);
    if (log)
        log_ir(block, "IN ", pc, info.nr_insns);
    ir_optimize(block);
    if (log)
        log_ir(block, "OUT", pc, info.nr_insns);
    tb = compile_block(v, &info, vm->tbs.jit && cached, full);
    cpu->stats.blocks_translated++;
    cpu->stats.insns_translated += info.nr_insns;
    cpu->stats.translate_ns += clock_monotonic_ns() - started;
    if (!tb)
        goto out;
    tb->pc = pc;
    tb->phys_pc = phys_pc;
    tb->cs_base = cs_base;
    tb->entry_cc_op = (int8_t)info.entry_cc_op;
    if (log)
        dump_host_code(tb);
    if (!cached)
        goto out; /* code outside RAM cannot be written by the guest; a lone insn runs once */
    /* The block's last byte may be on a second page: protect that one too. */
    size_t page1 = SIZE_MAX;
    uint64_t phys_last;
    if ((info.last_byte & ~0xfffULL) != (pc & ~0xfffULL) &&
        mmu_probe(cpu, info.last_byte, MMU_EXEC, &phys_last)) {
        page1 = ram_page(vm, phys_last & ~0xfffULL);
        if (page1 != SIZE_MAX)
            protect_code_page(vm, page1, phys_last & ~0xfffULL);
    }
    if (tb_insert(&vm->tbs, tb, page0, page1) < 0)
        tb = NULL;
    else
        note_perf_map(vm, tb);
out:
    if (cached)
        tcg_tb_unlock(cpu, vm);
    return tb;
}

/* Physical address of the code at pc (raises #PF where it is not mapped). */
static uint64_t code_phys(struct tcg_cpu *cpu, uint64_t pc)
{
    uint64_t paddr;
    mmu_code_phys(cpu, pc, true, &paddr);
    return paddr;
}

/* An interrupt the CPU would take now if IF allowed it: the PIC's INTR through LINT0, or a
 * local APIC vector above the processor priority. */
static bool interrupt_pending(struct accel_vcpu *v)
{
    return (atomic_load(&v->intr_level) && lapic_accepts_pic(&v->lapic)) ||
           lapic_has_interrupt(&v->lapic);
}

/* An NMI the CPU would take now (IF does not matter; a running NMI handler does). */
static bool nmi_pending(struct accel_vcpu *v)
{
    return !v->cpu.nmi_blocked && lapic_nmi_pending(&v->lapic);
}

/* Wait while halted, at most until the LAPIC timer's deadline (the run loop fires it);
 * returns false when asked to stop. Wakers change the state before taking v->lock, so
 * testing it under the lock loses no wake-up. */
static bool wait_for_interrupt(struct accel_vcpu *v)
{
    struct tcg_cpu *cpu = &v->cpu;
    tcg_exec_end(v); /* asleep: exclusive sections need not wait for this vCPU */
    pthread_mutex_lock(&v->lock);
    while (!(atomic_load(&cpu->interrupt_request) & TCG_REQ_STOP) &&
           !((cpu->eflags & X86_IF) && interrupt_pending(v)) && !nmi_pending(v) &&
           !lapic_startup_pending(&v->lapic)) {
        uint64_t deadline = lapic_timer_deadline(&v->lapic);
        if (!deadline) {
            pthread_cond_wait(&v->wake, &v->lock);
            continue;
        }
        if (tcg_clock_ns(v->vm) >= deadline)
            break;
        /* The deadline is guest time; the wait is on the host's monotonic clock. */
        uint64_t host = v->vm->clock ? guest_clock_to_host(v->vm->clock, deadline) : deadline;
        struct timespec ts = {(time_t)(host / 1000000000ULL), (long)(host % 1000000000ULL)};
        pthread_cond_timedwait(&v->wake, &v->lock, &ts);
    }
    pthread_mutex_unlock(&v->lock);
    tcg_exec_start(v);
    return !(atomic_load(&cpu->interrupt_request) & TCG_REQ_STOP);
}

/* Fire the LAPIC timer when due. Comparing costs a clock read, so while the guest runs it is
 * done every few blocks (microseconds of latency); a halted CPU sleeps exactly until it. */
#define TIMER_POLL_BLOCKS 8
static void poll_lapic_timer(struct accel_vcpu *v, bool now)
{
    if (!lapic_timer_deadline(&v->lapic))
        return;
    if (!now && ++v->timer_poll < TIMER_POLL_BLOCKS)
        return;
    v->timer_poll = 0;
    lapic_poll_timer(&v->lapic, tcg_clock_ns(v->vm));
}

/* Before a chained jump or cache leads to `tb`: remember its pages for INVLPG. */
static void note_chain_target(struct tcg_cpu *cpu, const struct tb *tb)
{
    tlb_note_chain_target(cpu, tb->pc);
    tlb_note_chain_target(cpu, tb->pc + (tb->size ? tb->size - 1 : 0));
}

/* The block's code is on one page that the TLB holds as global (so CR3 writes do not
 * change where its address leads). */
static bool code_on_global_page(const struct tcg_cpu *cpu, const struct tb *tb)
{
    bool user = (tb->hflags & HF_CPL_MASK) == 3;
    const struct tlb_entry *e = &cpu->tlb[user][(tb->pc >> 12) & (TLB_SIZE - 1)];
    return tb->page_index[1] == SIZE_MAX && e->exec_tag == (tb->pc & ~0xfffULL) && e->global;
}

/* The native code's table of indirect-jump targets (cpu.h), for 64-bit code (no CS base):
 * valid while the chain epoch holds, which INVLPG of its pages bumps too. */
static void remember_fast_jump(struct tcg_cpu *cpu, const struct tb *tb)
{
    struct tcg_fast_jump *f = &cpu->fast_jump[(tb->pc ^ tb->pc >> 10) & (TCG_FAST_JUMPS - 1)];
    note_chain_target(cpu, tb);
    f->pc = tb->pc;
    f->guard = cpu->hflags;
    f->epoch = cpu->chain_epoch;
    f->entry = tb->native_entry;
}

/* Native code ending with IR_EXIT_NEXT (indirect jump, return, mode change) asks here for
 * the block to continue with: a cached one for the current pc (its code address is
 * translated, raising #PF as the run loop would), with nothing for the run loop to do first
 * (an STI shadow to end); else NULL and the run loop takes over. */
static const void *native_next_block(void *env, struct native_site *site)
{
    struct tcg_cpu *cpu = env;
    if (cpu->inhibit_irq || cpu->single_step || (cpu->eflags & X86_TF))
        return NULL;
    uint64_t cs_base, pc = tcg_current_pc(cpu, &cs_base);
    struct accel_vcpu *v = cpu_vcpu(cpu);
    struct accel_vm *vm = v->vm;
    uint64_t phys = code_phys(cpu, pc);
    if (!tcg_debug_may_chain(vm, pc))
        return NULL; /* the run loop looks at a breakpoint address first */
    struct tb *tb = tb_lookup(&vm->tbs, v->jmp_cache, pc, phys, cs_base, cpu->hflags, cpu->cc_op);
    cpu->stats.next_lookups++;
    if (!tb) {
        cpu->stats.next_misses++;
        return NULL;
    }
    if (cpu->hflags & HF_CS64)
        remember_fast_jump(cpu, tb);
    /* The exit's inline cache compares RIP alone: only for 64-bit code (no CS base). */
    if (site && (cpu->hflags & HF_CS64) && native_site_open(site, cpu->rip)) {
        cpu->stats.cache_sets++; /* (its pages noted as chain targets just above) */
        bool global = code_on_global_page(cpu, tb);
        tcg_tb_lock(cpu, vm); /* the target's list of sites leading to it is shared */
        native_cache_target(vm->tbs.jit, site, cpu->rip, cpu->hflags,
                            global ? cpu->chain_epoch_global : cpu->chain_epoch, global,
                            tb->native);
        tcg_tb_unlock(cpu, vm);
    }
    return tb->native_entry;
}

/* Make the GOTO_TB that left `from` jump straight to `to` next time. Only between cached
 * native blocks; the generated code re-checks the CPU mode and the TLB epoch. */
static void chain_blocks(struct accel_vm *vm, struct tcg_cpu *cpu, struct native_code *from,
                         unsigned slot, const struct tb *to)
{
    if (!to->native || to->hflags != cpu->hflags || !tcg_debug_may_chain(vm, to->pc))
        return;
    note_chain_target(cpu, to);
    cpu->stats.chains++;
    bool global = code_on_global_page(cpu, to);
    tcg_tb_lock(cpu, vm); /* `from` and `to` stay alive and their site lists consistent */
    if (!from->dead && __atomic_load_n(&to->valid, __ATOMIC_ACQUIRE))
        native_chain(vm->tbs.jit, cpu_vcpu(cpu)->index, from, slot, to->native,
                     global ? cpu->chain_epoch_global : cpu->chain_epoch, global);
    tcg_tb_unlock(cpu, vm);
}

/* Retired blocks beyond this (bytes) are freed in an exclusive section; with one vCPU they
 * are freed at every run-loop turn. */
#define ZOMBIE_LIMIT (8u << 20)

/* The code buffer starts over: its jump slots will be handed out again, so the return-address
 * stacks' slots (hints into them) must go, or a RET could aim a slot that now belongs to
 * another block's chained jump. Every vCPU is stopped here or is the caller. */
static void forget_return_stacks(struct accel_vm *vm)
{
    for (unsigned i = 0; i < TCG_MAX_VCPUS; i++) {
        struct accel_vcpu *other = atomic_load(&vm->vcpus[i]);
        if (other) {
            memset(other->cpu.ras, 0, sizeof(other->cpu.ras));
            other->cpu.ras_top = 0;
            memset(other->cpu.fast_jump, 0, sizeof(other->cpu.fast_jump)); /* old code */
        }
    }
}

/* At the run loop's top, holding no block: drop code devices wrote, cache maintenance (in
 * an exclusive section when other vCPUs run), and other vCPUs' sections. Returns true when
 * blocks may have been freed meanwhile. */
static bool between_blocks(struct accel_vcpu *v)
{
    struct accel_vm *vm = v->vm;
    struct tcg_cpu *cpu = &v->cpu;
    bool smp = vm->nr_vcpus > 1, freed = false;
    if (atomic_load(&cpu->interrupt_request) & TCG_REQ_INVALIDATE)
        tcg_drop_dma_pages(v);
    if (tb_maintenance_due(&vm->tbs, smp ? ZOMBIE_LIMIT : 0)) {
        if (smp)
            tcg_exclusive_begin(v);
        tcg_tb_lock(cpu, vm);
        if (tb_maintain(&vm->tbs) && vm->tbs.jit) {
            native_reset(vm->tbs.jit);
            forget_return_stacks(vm);
        }
        tcg_tb_unlock(cpu, vm);
        if (smp)
            tcg_exclusive_end(v);
        freed = true;
    }
    if (smp)
        freed |= tcg_safe_point(v);
    return freed;
}

/* The translator could not place a block: the code buffer is full. Have it flushed at the
 * loop top; false when it was flushed just before (a block that cannot fit at all). */
static bool want_flush(struct accel_vcpu *v, volatile unsigned *full_in_a_row)
{
    if (++*full_in_a_row > 2)
        return false;
    tcg_tb_lock(&v->cpu, v->vm);
    v->vm->tbs.flush_wanted = true;
    tcg_tb_unlock(&v->cpu, v->vm);
    return true;
}

/* cpu and vm are set once before the setjmp and never changed, so a longjmp cannot leave them
 * stale; gcc's aarch64 register allocation still warns about cpu (a false positive). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wclobbered"
#endif
static int run_loop(struct accel_vcpu *v, struct accel_exit *exit)
{
    struct tcg_cpu *cpu = &v->cpu;
    struct accel_vm *vm = v->vm;
    /* The native block that left via GOTO_TB, and which slot (volatile: setjmp below). */
    struct native_code *volatile chain_from = NULL;
    volatile unsigned chain_slot = 0;
    /* An uncached block (code outside RAM, a lone instruction) while it runs: freed after
     * it, also when it leaves by an exception (else each such run leaks it). */
    struct tb *volatile uncached = NULL;
    volatile unsigned full_in_a_row = 0;
    memset(exit, 0, sizeof(*exit));
    for (;;) {
        if (between_blocks(v))
            chain_from = NULL;
        atomic_fetch_and(&cpu->interrupt_request, ~TCG_REQ_INTERRUPT); /* looked at below */
        if (atomic_load(&cpu->interrupt_request) & TCG_REQ_STOP) {
            atomic_fetch_and(&cpu->interrupt_request, ~TCG_REQ_STOP);
            exit->reason = ACCEL_EXIT_STOPPED;
            return 0;
        }
        if (tcg_startup_pending(v)) {
            chain_from = NULL; /* INIT/SIPI move the CPU: no chaining into where it goes */
            if (!tcg_startup(v))
                continue; /* stopped in wait-for-SIPI: returns above */
        }
        if (setjmp(cpu->exit_jmp) != 0) {
            /* Back from generated code: an exception to deliver, or a helper's exit. */
            chain_from = NULL;
            cpu->stats.helper_exits++;
            cpu->in_block = false;
            tcg_fp_release(cpu);
            cpu->single_step = false; /* a fault (no trap after it) or an exit */
            tcg_debug_after_fault(v);
            if (uncached) {
                tb_discard(uncached);
                uncached = NULL;
            }
            if (cpu->smc == TCG_SMC_RUNNING)
                cpu->smc = 0;
            cpu->parallel = vm->nr_vcpus > 1;
            if (v->in_exclusive)
                tcg_exclusive_end(v); /* the atomic step faulted */
            if (cpu->exception >= 0 && !deliver_exception(cpu)) {
                exit->reason = ACCEL_EXIT_SHUTDOWN;
                return 0;
            }
            /* The debugger's step ends where the exception took the CPU. */
            if (v->dbg.gdb.single_step && !v->dbg.restart && !cpu->step_atomic &&
                cpu->smc != TCG_SMC_ONE_INSN &&
                tcg_debug_after_block(v, true, exit) == TCG_DEBUG_STOP)
                return 0;
            continue;
        }
        poll_lapic_timer(v, cpu->halted);
        /* The debugger's single step takes no interrupt (as QEMU's gdbstub by default). */
        const bool gdb_step = v->dbg.gdb.single_step;
        bool inhibit = cpu->inhibit_irq || gdb_step;
        cpu->inhibit_irq = false;
        if (!inhibit && nmi_pending(v) && lapic_take_nmi(&v->lapic)) {
            chain_from = NULL;
            cpu->halted = false;
            cpu->nmi_blocked = true;
            cpu->exception = X86_EXC_NMI;
            cpu->has_error_code = false;
            cpu->exception_soft = false;
            cpu->exception_ext = true;
            if (!deliver_exception(cpu)) {
                exit->reason = ACCEL_EXIT_SHUTDOWN;
                return 0;
            }
            continue;
        }
        /* In an STI / MOV SS shadow with an interrupt waiting: run just the one instruction,
         * then take it (a whole block would run past a CLI right after the STI). */
        bool one_insn =
            inhibit && (((cpu->eflags & X86_IF) && interrupt_pending(v)) || nmi_pending(v));
        /* TF: one instruction, then the single-step #DB (before any interrupt). */
        bool step = (cpu->eflags & X86_TF) != 0;
        one_insn |= step || gdb_step;
        if (!inhibit && (cpu->eflags & X86_IF)) {
            int vector = -1;
            /* ExtINT (the PIC through LINT0) first, as KVM does; it answers its own
             * acknowledge cycle. */
            if (atomic_load(&v->intr_level) && lapic_accepts_pic(&v->lapic))
                vector = vm->intack ? vm->intack(vm->intack_ctx, v->index) : -1;
            else if (lapic_has_interrupt(&v->lapic))
                vector = lapic_ack(&v->lapic);
            if (vector >= 0) {
                chain_from = NULL;
                cpu->halted = false;
                cpu->exception = vector;
                cpu->has_error_code = false;
                cpu->exception_soft = false;
                cpu->exception_ext = true;
                if (!deliver_exception(cpu)) {
                    exit->reason = ACCEL_EXIT_SHUTDOWN;
                    return 0;
                }
                continue;
            }
        } else if (inhibit && !gdb_step && (cpu->eflags & X86_IF) && interrupt_pending(v)) {
            /* The STI / MOV SS shadow ends with the next instruction (run alone, one_insn):
             * look again after it. (With IF clear, setting IF asks for that look itself.) */
            tcg_recheck_interrupts(cpu);
        }
        if (cpu->halted) {
            chain_from = NULL;
            if (!wait_for_interrupt(v))
                continue; /* stop request: handled at the loop top */
            continue;
        }
        uint64_t cs_base, pc = tcg_current_pc(cpu, &cs_base);
        /* Instruction breakpoints come before code fetch faults; RF (set by IRET) is
         * cleared here, after the instruction it was for (debug.c). */
        if (v->dbg.exec || (cpu->eflags & X86_RF)) {
            enum tcg_debug_action act = tcg_debug_before_insn(v, pc, exit);
            if (act == TCG_DEBUG_STOP)
                return 0;
            if (act == TCG_DEBUG_RAISE) {
                chain_from = NULL;
                if (!deliver_exception(cpu)) {
                    exit->reason = ACCEL_EXIT_SHUTDOWN;
                    return 0;
                }
                continue;
            }
        }
        uint64_t phys = code_phys(cpu, pc);
        cpu->single_step = step;
        cpu->inhibit_db = false;
        bool alone = cpu->smc == TCG_SMC_ONE_INSN;
        if (v->dbg.restart) /* after a watched access: record this one */
            alone |= tcg_debug_take_restart(v, pc);
        /* A locked instruction the host cannot do atomically: alone, non-atomic, with every
         * other vCPU stopped (exclusive). */
        bool atomic_step = cpu->step_atomic;
        alone |= atomic_step;
        if (atomic_step) {
            cpu->step_atomic = false;
            cpu->parallel = false; /* restored after it, or on the way out of a fault */
            if (vm->nr_vcpus > 1) {
                tcg_exclusive_begin(v);
                chain_from = NULL;
            }
        }
        struct tb *tb = alone || one_insn ? NULL
                                          : tb_lookup(&vm->tbs, v->jmp_cache, pc, phys, cs_base,
                                                      cpu->hflags, cpu->cc_op);
        cpu->stats.loop_lookups++;
        if (!tb) {
            cpu->stats.loop_misses++;
            bool full;
            tb = translate_block(v, pc, phys, cs_base, alone || one_insn, &full);
            if (!tb && full && want_flush(v, &full_in_a_row)) {
                chain_from = NULL;
                continue;
            }
            if (!tb) {
                exit->reason = ACCEL_EXIT_ERROR;
                snprintf(exit->error.msg, sizeof(exit->error.msg),
                         "translator failed at 0x%llx (out of memory or IR overflow)",
                         (unsigned long long)pc);
                return 0;
            }
        }
        full_in_a_row = 0;
        if (chain_from)
            chain_blocks(vm, cpu, chain_from, chain_slot, tb);
        chain_from = NULL;
        bool cached = tb->in_cache;
        if (!cached)
            uncached = tb;
        uint32_t why;
        if (alone) /* also the atomic step: a store into its own block must land this time */
            cpu->smc = TCG_SMC_RUNNING;
        cpu->in_block = true;
        if (tb->native) {
            cpu->chain_budget = CHAIN_BUDGET;
            why = native_exec(vm->tbs.jit, tb->native, cpu);
            /* Blocks run through chained jumps count towards the next timer poll. */
            v->timer_poll +=
                (unsigned)(CHAIN_BUDGET - (cpu->chain_budget < 0 ? 0 : cpu->chain_budget));
            if (why & INTERP_GOTO_TB(0)) {
                cpu->stats.jumps_unchained++;
                struct native_code *from = cpu->last_exit;
                chain_slot = why & 0xff; /* < IR_MAX_GOTO_SLOTS: the code's own GOTO_TBs */
                /* Invalidated while it ran: it is reaped at the next loop top. */
                chain_from = from->dead ? NULL : from;
            }
        } else {
            why = interp_exec(tb->code, cpu);
            v->guest_insns += tb->nr_guest_insns;
        }
        cpu->in_block = false;
        tcg_fp_release(cpu);
        if (alone)
            cpu->smc = 0;
        if (atomic_step) {
            cpu->parallel = vm->nr_vcpus > 1;
            if (v->in_exclusive)
                tcg_exclusive_end(v);
        }
        cpu->single_step = false;
        if (step && !deliver_single_step(cpu)) {
            exit->reason = ACCEL_EXIT_SHUTDOWN;
            if (!cached)
                tb_discard(tb);
            return 0;
        }
        if (alone || gdb_step) {
            enum tcg_debug_action act = tcg_debug_after_block(v, gdb_step, exit);
            if (act == TCG_DEBUG_STOP || (act == TCG_DEBUG_RAISE && !deliver_exception(cpu))) {
                if (act == TCG_DEBUG_RAISE)
                    exit->reason = ACCEL_EXIT_SHUTDOWN;
                if (!cached)
                    tb_discard(tb);
                return 0;
            }
        }
        (void)why;
        if (!cached) {
            /* Blocks from outside RAM are not cached: drop after one run. */
            if (chain_from == tb->native)
                chain_from = NULL;
            uncached = NULL;
            tb_discard(tb);
        }
    }
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

static int tcg_run(struct accel_vcpu *v, struct accel_exit *exit)
{
    tcg_exec_start(v);
    int rc = run_loop(v, exit);
    tcg_exec_end(v);
    return rc;
}

const struct accel_ops tcg_accel_ops = {
    .name = "tcg",
    .in_kernel_irqchip = false,
    .probe = tcg_probe,
    .vm_create = tcg_vm_create,
    .vm_destroy = tcg_vm_destroy,
    .supported_cpuid = tcg_supported_cpuid,
    .set_irq = tcg_set_irq,
    .set_intr = tcg_set_intr,
    .apic_msg = tcg_apic_msg,
    .notify_ram_write = tcg_notify_ram_write,
    .vcpu_create = tcg_vcpu_create,
    .vcpu_destroy = tcg_vcpu_destroy,
    .set_cpuid = tcg_set_cpuid,
    .get_state = tcg_get_state,
    .get_fpu = tcg_get_fpu,
    .set_fpu = tcg_set_fpu,
    .set_state = tcg_set_state,
    .get_msrs = tcg_get_msrs,
    .set_msrs = tcg_set_msrs,
    .run = tcg_run,
    .kick = tcg_kick,
    .vcpu_thread_init = tcg_vcpu_thread_init,
    .guest_insns = tcg_guest_insns,
    .set_debug = tcg_set_debug,
    .translate_gva = tcg_translate_gva,
    .save_vcpu = tcg_save_vcpu,
    .load_vcpu = tcg_load_vcpu,
};
