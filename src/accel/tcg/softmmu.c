/* Software MMU: guest virtual -> physical through the guest's page tables (4-level, PAE,
 * 2-level, or none), cached in a per-privilege software TLB that maps straight to host
 * pointers for RAM. Accesses that are not RAM go to the MMIO bus (reads of nothing give
 * all-ones, writes are dropped); no guest address ever reaches host memory unchecked. */
#include "accel/tcg/tcg_internal.h"
#include "accel/tcg/x86/translate.h"

#include "vm/bus.h"
#include "vm/memory.h"

#include <string.h>

#define PTE_P (1ULL << 0)
#define PTE_W (1ULL << 1)
#define PTE_U (1ULL << 2)
#define PTE_A (1ULL << 5)
#define PTE_D (1ULL << 6)
#define PTE_PS (1ULL << 7)
#define PTE_G (1ULL << 8)
#define PTE_NX (1ULL << 63)
#define PTE_ADDR 0x000ffffffffff000ULL

#define PF_PRESENT 1u
#define PF_WRITE 2u
#define PF_USER 4u
#define PF_RSVD 8u
#define PF_FETCH 16u

#define CR4_PSE (1ULL << 4)

struct walk {
    uint64_t paddr;
    bool writable, user, exec, dirty;
    bool large;         /* from a 2 MiB / 4 MiB / 1 GiB page */
    uint8_t page_shift; /* log2 of the page size */
    bool global;        /* G in the leaf entry with CR4.PGE: survives CR3 writes */
};

static inline bool cpu_user_mode(const struct tcg_cpu *cpu)
{
    return (cpu->hflags & HF_CPL_MASK) == 3;
}

/* Read a page-table entry; tables outside RAM read as not-present. */
static bool read_pte(struct tcg_cpu *cpu, uint64_t paddr, unsigned size, uint64_t *pte, void **host)
{
    struct guest_memory *mem = cpu_vcpu(cpu)->vm->mem;
    void *p = gpa_to_host(mem, paddr, size);
    if (!p)
        return false;
    *pte = 0;
    memcpy(pte, p, size);
    *host = p;
    return true;
}

/* Set A/D bits in the entry read as `pte`, atomically as the hardware does (another vCPU may
 * be changing it: a plain write could undo its change). False when the entry is no longer
 * `pte` (the walk starts over); `force` ORs the bits in regardless. Entries are naturally
 * aligned (table base + index * size). */
static bool set_pte_bits(void *host, unsigned size, uint64_t pte, uint64_t bits, bool force)
{
    if ((pte & bits) == bits)
        return true;
    if (size == 8) {
        uint64_t *p = host;
        if (force)
            return __atomic_fetch_or(p, bits, __ATOMIC_SEQ_CST), true;
        return __atomic_compare_exchange_n(p, &pte, pte | bits, false, __ATOMIC_SEQ_CST,
                                           __ATOMIC_RELAXED);
    }
    uint32_t *p = host, old = (uint32_t)pte;
    if (force)
        return __atomic_fetch_or(p, (uint32_t)bits, __ATOMIC_SEQ_CST), true;
    return __atomic_compare_exchange_n(p, &old, old | (uint32_t)bits, false, __ATOMIC_SEQ_CST,
                                       __ATOMIC_RELAXED);
}

#define WALK_RETRY 0x200u /* page_walk: an entry changed under the walk; walk again */
/* Walks that keep losing A/D races (another vCPU rewriting the entry each time) then OR the
 * bits in: bounded work whatever a guest does. */
#define WALK_MAX_RETRIES 64

/* Reserved bits of a present 8-byte (PAE / 4-level) entry at `level` of a 4-level walk
 * (levels == 4) or a PAE page directory / table (levels == 2): physical-address bits from
 * MAXPHYADDR up, NX without EFER.NXE, PS in a PML4E, PS in a PDPTE without 1 GiB pages, and
 * the low address bits of 1 GiB (29:13) and 2 MiB (20:13) pages. */
static uint64_t reserved_bits(const struct tcg_cpu *cpu, uint64_t pte, unsigned level,
                              unsigned levels, bool nxe)
{
    uint64_t rsvd = 0;
    if (cpu->phys_bits)
        rsvd |= PTE_ADDR & ~((1ULL << cpu->phys_bits) - 1);
    if (!nxe)
        rsvd |= PTE_NX;
    bool top = levels == 4 && level == 0, pdpte = levels == 4 && level == 1;
    bool leaf_table = level == levels - 1;
    if (top)
        rsvd |= PTE_PS;
    else if (pdpte && (pte & PTE_PS))
        rsvd |= cpu->page_1g ? 0x3fffe000ULL : PTE_PS;
    else if (!leaf_table && (pte & PTE_PS))
        rsvd |= 0x1fe000ULL;
    return pte & rsvd;
}

/* Walk the page tables. Returns 0 or the #PF error code bits (PF_PRESENT etc.) | 0x100 to
 * say "fault". A/D bits are set only when set_bits (real accesses, not probes). */
static unsigned page_walk(struct tcg_cpu *cpu, uint64_t vaddr, enum mmu_access access, bool user,
                          bool set_bits, bool force_bits, struct walk *w)
{
    w->writable = w->user = w->exec = w->dirty = true;
    w->large = w->global = false;
    w->page_shift = 12;
    if (!(cpu->cr0 & X86_CR0_PG)) {
        w->paddr = (cpu->hflags & HF_LMA) ? vaddr : (vaddr & 0xffffffffULL);
        return 0;
    }
    bool nxe = (cpu->efer & X86_EFER_NXE) != 0;
    unsigned err = (access == MMU_WRITE ? PF_WRITE : 0) | (user ? PF_USER : 0) |
                   (access == MMU_EXEC && nxe ? PF_FETCH : 0);
    uint64_t table, pte = 0;
    unsigned levels, entry_size, shift;
    void *host = NULL;
    void *hosts[5];
    uint64_t ptes[5];
    unsigned depth = 0;
    if (cpu->cr4 & X86_CR4_PAE) {
        entry_size = 8;
        if (cpu->hflags & HF_LMA) {
            levels = 4;
            shift = 39;
            table = cpu->cr3 & PTE_ADDR;
        } else {
            /* PAE: the 4 PDPTEs at CR3[31:5]. */
            uint64_t pdpte;
            if (!read_pte(cpu, (cpu->cr3 & 0xffffffe0ULL) + ((vaddr >> 30) & 3) * 8, 8, &pdpte,
                          &host) ||
                !(pdpte & PTE_P))
                return err | 0x100;
            levels = 2;
            shift = 21;
            table = pdpte & PTE_ADDR;
        }
    } else {
        entry_size = 4;
        levels = 2;
        shift = 22;
        table = cpu->cr3 & 0xfffff000ULL;
        vaddr &= 0xffffffffULL;
    }
    uint64_t page_mask = 0xfff;
    for (unsigned level = 0; level < levels; level++, shift -= (entry_size == 8 ? 9 : 10)) {
        unsigned index_bits = entry_size == 8 ? 9 : 10;
        uint64_t index = (vaddr >> shift) & ((1u << index_bits) - 1);
        if (!read_pte(cpu, table + index * entry_size, entry_size, &pte, &host) || !(pte & PTE_P))
            return err | 0x100;
        if (entry_size == 8 && reserved_bits(cpu, pte, level, levels, nxe))
            return err | PF_PRESENT | PF_RSVD | 0x100;
        hosts[depth] = host;
        ptes[depth++] = pte;
        w->writable &= (pte & PTE_W) != 0;
        w->user &= (pte & PTE_U) != 0;
        if (nxe && entry_size == 8 && (pte & PTE_NX))
            w->exec = false;
        bool last = level == levels - 1;
        /* PS marks a large page: 1 GiB (PDPT) or 2 MiB (PD) with 8-byte entries, 4 MiB in
         * 2-level paging with CR4.PSE. In the PML4 it is reserved (treated as a table). */
        bool large = !last && (pte & PTE_PS) &&
                     (entry_size == 8 ? (levels == 2 || level >= 1) : (cpu->cr4 & CR4_PSE) != 0);
        if (large) {
            w->large = true;
            page_mask = (1ULL << shift) - 1;
            w->page_shift = (uint8_t)shift;
            if (entry_size == 4) /* PSE-36 high bits are not modelled: 4 MiB pages < 4 GiB */
                table = pte & 0xffc00000ULL;
            else
                table = pte & PTE_ADDR & ~page_mask;
            break;
        }
        table = entry_size == 8 ? (pte & PTE_ADDR) : (pte & 0xfffff000ULL);
        if (last)
            break;
    }
    w->dirty = (pte & PTE_D) != 0;
    w->global = (pte & PTE_G) && (cpu->cr4 & X86_CR4_PGE);
    /* Permission checks: supervisor writes to read-only pages fault only with CR0.WP. */
    bool denied = (user && !w->user) ||
                  (access == MMU_WRITE && !w->writable && (user || (cpu->cr0 & X86_CR0_WP))) ||
                  (access == MMU_EXEC && !w->exec);
    if (denied)
        return err | PF_PRESENT | 0x100;
    if (set_bits) {
        for (unsigned i = 0; i < depth; i++) {
            uint64_t bits = PTE_A | (access == MMU_WRITE && i == depth - 1 ? PTE_D : 0);
            if (!set_pte_bits(hosts[i], entry_size, ptes[i], bits, force_bits))
                return WALK_RETRY;
        }
        if (access == MMU_WRITE)
            w->dirty = true;
    }
    w->paddr = table + (vaddr & page_mask);
    return 0;
}

static bool ram_page_index(const struct accel_vm *vm, uint64_t paddr, size_t *index)
{
    const uint8_t *host = gpa_to_host(vm->mem, paddr & ~0xfffULL, 0x1000);
    if (!host)
        return false;
    *index = (size_t)(host - vm->mem->mapping) >> 12;
    return true;
}

static bool canonical(uint64_t vaddr)
{
    return (uint64_t)((int64_t)(vaddr << 16) >> 16) == vaddr;
}

static void fill_tlb(struct tcg_cpu *cpu, uint64_t vaddr, const struct walk *w, bool user)
{
    struct accel_vm *vm = cpu_vcpu(cpu)->vm;
    uint64_t ppage = w->paddr & ~0xfffULL;
    uint8_t *host = gpa_to_host(vm->mem, ppage, 0x1000);
    if (!host || lapic_mmio_hit(&cpu_vcpu(cpu)->lapic, ppage))
        return; /* MMIO or nothing: every access takes the slow path */
    struct tlb_entry *e = &cpu->tlb[user][(vaddr >> 12) & (TLB_SIZE - 1)];
    uint64_t vpage = vaddr & ~0xfffULL;
    size_t index = SIZE_MAX;
    e->read_tag = vpage;
    bool code = ram_page_index(vm, ppage, &index) && tb_page_has_code(&vm->tbs, index);
    e->write_tag = (w->writable || (!user && !(cpu->cr0 & X86_CR0_WP))) && w->dirty && !code
                       ? vpage
                       : TLB_INVALID;
    e->exec_tag = w->exec ? vpage : TLB_INVALID;
    e->addend = (uintptr_t)host - (uintptr_t)vpage;
    e->paddr = ppage;
    e->global = w->global;
    e->page_shift = w->page_shift;
    if (cpu_vcpu(cpu)->dbg.watch && tcg_debug_page_watched(cpu, vpage))
        e->read_tag = e->write_tag = TLB_INVALID; /* watched: the slow path looks */
    if (e->write_tag != TLB_INVALID && vm->nr_vcpus > 1) {
        /* Another vCPU may have started translating from the page since `code` was read,
         * and scanned this TLB before the entry was written: look again (it marks the page
         * before scanning, see tcg_protect_code_page). */
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        if (tb_page_has_code(&vm->tbs, index))
            e->write_tag = TLB_INVALID;
    }
    if (!w->global) {
        if (cpu->tlb_nonglobal_count < TLB_NONGLOBAL_LOG)
            cpu->tlb_nonglobal[cpu->tlb_nonglobal_count] =
                (uint16_t)((user ? 0x8000u : 0u) | ((vaddr >> 12) & (TLB_SIZE - 1)));
        if (cpu->tlb_nonglobal_count <= TLB_NONGLOBAL_LOG)
            cpu->tlb_nonglobal_count++;
    }
    if (w->large)
        cpu->tlb_has_large_pages = true;
}

uint64_t mmu_translate(struct tcg_cpu *cpu, uint64_t vaddr, enum mmu_access access, bool user)
{
    if ((cpu->hflags & HF_LMA) && !canonical(vaddr)) {
        /* Stack-segment references fault with #SS(0), the others with #GP(0) (SDM 3.3.7.1):
         * decided from the instruction, on this slow path only. */
        bool stack = access != MMU_EXEC && x86_noncanonical_is_stack(cpu, vaddr);
        tcg_raise_exception(cpu, stack ? X86_EXC_SS : X86_EXC_GP, 0, true);
    }
    struct walk w;
    unsigned fault, tries = 0;
    do
        fault = page_walk(cpu, vaddr, access, user, true, tries >= WALK_MAX_RETRIES, &w);
    while (fault == WALK_RETRY && ++tries <= WALK_MAX_RETRIES);
    if (fault) {
        cpu->cr2 = vaddr;
        tcg_raise_exception(cpu, X86_EXC_PF, fault & 0xff, true);
    }
    fill_tlb(cpu, vaddr, &w, user);
    cpu->stats.tlb_fills++;
    return w.paddr;
}

bool mmu_probe(struct tcg_cpu *cpu, uint64_t vaddr, enum mmu_access access, uint64_t *paddr)
{
    if ((cpu->hflags & HF_LMA) && !canonical(vaddr))
        return false;
    struct walk w;
    if (page_walk(cpu, vaddr, access, cpu_user_mode(cpu), false, false, &w))
        return false;
    *paddr = w.paddr;
    return true;
}

bool mmu_debug_translate(struct tcg_cpu *cpu, uint64_t vaddr, uint64_t *paddr)
{
    if ((cpu->hflags & HF_LMA) && !canonical(vaddr))
        return false;
    struct walk w;
    if (page_walk(cpu, vaddr, MMU_READ, false, false, false, &w))
        return false;
    *paddr = w.paddr;
    return true;
}

/* Mappings changed: chained jumps set before now are void (those into global pages only
 * when `global_too`: CR3 writes keep global pages). The epochs are 32 bits; when one wraps,
 * old chains could look current again, so every block goes (safe while one runs: dropped
 * blocks are freed later). */
static void bump_chain_epoch(struct tcg_cpu *cpu, bool global_too)
{
    bool wrapped = ++cpu->chain_epoch == 0;
    if (global_too)
        wrapped |= ++cpu->chain_epoch_global == 0;
    if (wrapped) {
        /* Flushed before the next block runs (tb_maintain at the run loop's top). */
        __atomic_store_n(&cpu_vcpu(cpu)->vm->tbs.flush_wanted, true, __ATOMIC_RELAXED);
        tcg_recheck_interrupts(cpu);
    }
}

static const struct tlb_entry tlb_empty = {
    .read_tag = TLB_INVALID, .write_tag = TLB_INVALID, .exec_tag = TLB_INVALID, .page_shift = 12};

/* Pages (hashed) that chained jumps or caches lead into: INVLPG elsewhere leaves chains be. */
#define CHAIN_PAGE_BIT(vaddr) (((vaddr) >> 12) & (64 * TLB_CHAIN_PAGE_WORDS - 1))

void tlb_note_chain_target(struct tcg_cpu *cpu, uint64_t vaddr)
{
    uint64_t bit = CHAIN_PAGE_BIT(vaddr);
    cpu->chain_pages[bit / 64] |= 1ULL << (bit % 64);
}

static bool chain_target_page(const struct tcg_cpu *cpu, uint64_t vaddr)
{
    uint64_t bit = CHAIN_PAGE_BIT(vaddr);
    return (cpu->chain_pages[bit / 64] >> (bit % 64)) & 1;
}

void tlb_flush(struct tcg_cpu *cpu)
{
    bump_chain_epoch(cpu, true); /* every chain is void: forget where they led */
    memset(cpu->chain_pages, 0, sizeof(cpu->chain_pages));
    cpu->tlb_has_large_pages = false;
    cpu->tlb_nonglobal_count = 0;
    for (unsigned u = 0; u < 2; u++)
        for (unsigned i = 0; i < TLB_SIZE; i++)
            cpu->tlb[u][i] = tlb_empty;
}

void tlb_flush_nonglobal(struct tcg_cpu *cpu)
{
    bump_chain_epoch(cpu, false);
    if (cpu->tlb_nonglobal_count <= TLB_NONGLOBAL_LOG) {
        for (uint32_t k = 0; k < cpu->tlb_nonglobal_count; k++) {
            uint16_t where = cpu->tlb_nonglobal[k];
            struct tlb_entry *e = &cpu->tlb[where >> 15][where & (TLB_SIZE - 1)];
            if (!e->global)
                *e = tlb_empty;
        }
    } else {
        for (unsigned u = 0; u < 2; u++)
            for (unsigned i = 0; i < TLB_SIZE; i++)
                if (!cpu->tlb[u][i].global)
                    cpu->tlb[u][i] = tlb_empty;
    }
    cpu->tlb_nonglobal_count = 0;
}

void tlb_flush_page(struct tcg_cpu *cpu, uint64_t vaddr)
{
    bool large = false;
    if (cpu->tlb_has_large_pages) {
        /* The TLB caches large pages as 4 KiB slices at many indexes: INVLPG anywhere in a
         * large page drops all of them, so look at every entry. */
        for (unsigned u = 0; u < 2; u++)
            for (unsigned i = 0; i < TLB_SIZE; i++) {
                struct tlb_entry *e = &cpu->tlb[u][i];
                if (e->read_tag != TLB_INVALID && !((e->read_tag ^ vaddr) >> e->page_shift)) {
                    large |= e->page_shift > 12;
                    *e = tlb_empty;
                }
            }
    } else {
        for (unsigned u = 0; u < 2; u++) {
            struct tlb_entry *e = &cpu->tlb[u][(vaddr >> 12) & (TLB_SIZE - 1)];
            if (e->read_tag == (vaddr & ~0xfffULL))
                *e = tlb_empty;
        }
    }
    /* A chained jump may lead to code on this page (or, not tracked, in this large page). */
    if (large || chain_target_page(cpu, vaddr))
        bump_chain_epoch(cpu, true);
}

void tcg_protect_code_page(struct accel_vm *vm, uint64_t ppage)
{
    for (unsigned v = 0; v < vm->nr_vcpus; v++) {
        struct accel_vcpu *vcpu = atomic_load(&vm->vcpus[v]);
        if (!vcpu)
            continue;
        for (unsigned u = 0; u < 2; u++)
            for (unsigned i = 0; i < TLB_SIZE; i++) {
                struct tlb_entry *e = &vcpu->cpu.tlb[u][i];
                if (__atomic_load_n(&e->paddr, __ATOMIC_RELAXED) == ppage)
                    __atomic_store_n(&e->write_tag, TLB_INVALID, __ATOMIC_RELAXED);
            }
    }
}

/* A store to code page `index` (RAM) is about to happen. If it rewrites a block holding the
 * storing instruction (the one running, or one like it), the running block must not go on
 * with a stale translation: nothing is written, and the instruction runs again on its own
 * (TCG_SMC_ONE_INSN, see tcg_run); its store then lands and the next block is new code.
 * The front end keeps guest state untouched before an instruction's last possible fault,
 * so running it again is exact. Otherwise the page's blocks are dropped as usual. */
static void before_code_write(struct tcg_cpu *cpu, size_t index, uint64_t paddr, unsigned len)
{
    struct accel_vm *vm = cpu_vcpu(cpu)->vm;
    /* Translation lock held (by the caller). */
    if (cpu->in_block && cpu->smc == 0) {
        uint64_t cs_base, insn;
        bool known = mmu_code_phys(cpu, tcg_current_pc(cpu, &cs_base), false, &insn);
        /* Only the part of a block on its first page is looked at (so: the same page). */
        if (known && !((insn ^ paddr) >> 12) &&
            tb_page_code_overlaps(&vm->tbs, index, insn, paddr, len)) {
            cpu->smc = TCG_SMC_ONE_INSN;
            tcg_exit_to_loop(cpu);
        }
    }
    cpu->stats.code_writes++;
    tb_invalidate_page(&vm->tbs, index);
    /* A block looping on itself (IR_LOOP_TB) goes back to its head without passing its
     * (now patched) entry: every vCPU looks at the run loop before its next pass. */
    for (unsigned i = 0; i < vm->nr_vcpus; i++) {
        struct accel_vcpu *v = atomic_load(&vm->vcpus[i]);
        if (v)
            tcg_recheck_interrupts(&v->cpu);
    }
}

void tcg_notify_ram_write(struct accel_vm *vm, uint64_t gpa, uint64_t len)
{
    if (!len || gpa + len - 1 < gpa)
        return;
    bool queued = false;
    for (uint64_t page = gpa >> 12; page <= (gpa + len - 1) >> 12; page++) {
        size_t index;
        /* A look without the lock is enough: a translation that starts after it reads the new
         * bytes (the caller wrote them before calling), one under way has marked the page. */
        if (!ram_page_index(vm, page << 12, &index) || !tb_page_has_code(&vm->tbs, index))
            continue;
        pthread_mutex_lock(&vm->dma_lock);
        if (vm->nr_dma_pages < sizeof(vm->dma_pages) / sizeof(vm->dma_pages[0]))
            vm->dma_pages[vm->nr_dma_pages++] = index;
        else
            vm->dma_overflow = true;
        pthread_mutex_unlock(&vm->dma_lock);
        queued = true;
    }
    /* Before the device publishes its completion (the caller's next step), every vCPU is
     * told: chained code checks the request word at each block entry, so no block runs
     * between the guest seeing the completion and the stale blocks going. */
    for (unsigned i = 0; queued && i < vm->nr_vcpus; i++) {
        struct accel_vcpu *v = atomic_load(&vm->vcpus[i]);
        if (v)
            atomic_fetch_or(&v->cpu.interrupt_request, TCG_REQ_INVALIDATE);
    }
}

void tcg_drop_dma_pages(struct accel_vcpu *v)
{
    struct accel_vm *vm = v->vm;
    struct tcg_cpu *cpu = &v->cpu;
    atomic_fetch_and(&v->cpu.interrupt_request, ~TCG_REQ_INVALIDATE);
    pthread_mutex_lock(&vm->dma_lock);
    bool overflow = vm->dma_overflow;
    unsigned n = vm->nr_dma_pages;
    size_t pages[sizeof(vm->dma_pages) / sizeof(vm->dma_pages[0])];
    memcpy(pages, vm->dma_pages, n * sizeof(pages[0]));
    vm->nr_dma_pages = 0;
    vm->dma_overflow = false;
    pthread_mutex_unlock(&vm->dma_lock);
    tcg_tb_lock(cpu, vm);
    if (overflow) {
        for (size_t i = 0; i < vm->tbs.nr_used_pages; i++)
            tb_invalidate_page(&vm->tbs, vm->tbs.used_pages[i]);
    } else {
        for (unsigned i = 0; i < n; i++)
            tb_invalidate_page(&vm->tbs, pages[i]);
    }
    tcg_tb_unlock(cpu, vm);
}

/* The xAPIC register page is per CPU, so it is not on the shared MMIO bus: accesses to it
 * are taken here, before RAM and the bus (a page the guest moved the APIC onto is never put
 * in the TLB, see fill_tlb). */
static uint64_t phys_read(struct tcg_cpu *cpu, uint64_t paddr, unsigned size)
{
    struct accel_vm *vm = cpu_vcpu(cpu)->vm;
    struct lapic *lapic = &cpu_vcpu(cpu)->lapic;
    if (lapic_mmio_hit(lapic, paddr))
        return lapic_mmio_read(lapic, paddr & 0xfff, size);
    const void *host = gpa_to_host(vm->mem, paddr, size);
    uint64_t value = 0;
    if (host)
        memcpy(&value, host, size);
    else
        bus_read(vm->mmio, paddr, size, &value);
    return value;
}

static void phys_write(struct tcg_cpu *cpu, uint64_t paddr, uint64_t value, unsigned size)
{
    struct accel_vm *vm = cpu_vcpu(cpu)->vm;
    struct lapic *lapic = &cpu_vcpu(cpu)->lapic;
    if (lapic_mmio_hit(lapic, paddr)) {
        lapic_mmio_write(lapic, paddr & 0xfff, size, value);
        tcg_recheck_interrupts(cpu); /* EOI, TPR */
        return;
    }
    void *host = gpa_to_host(vm->mem, paddr, size);
    if (!host) {
        bus_write(vm->mmio, paddr, size, value);
        return;
    }
    size_t index;
    if (!ram_page_index(vm, paddr, &index) || !tb_page_has_code(&vm->tbs, index)) {
        memcpy(host, &value, size);
        return;
    }
    /* Into code: drop the page's blocks and write while holding the translation lock, so no
     * vCPU translates the page between the two and keeps the old bytes. */
    tcg_tb_lock(cpu, vm);
    before_code_write(cpu, index, paddr, size);
    memcpy(host, &value, size);
    tcg_tb_unlock(cpu, vm);
}

bool mmu_code_phys(struct tcg_cpu *cpu, uint64_t pc, bool may_fault, uint64_t *paddr)
{
    bool user = cpu_user_mode(cpu);
    const struct tlb_entry *e = &cpu->tlb[user][(pc >> 12) & (TLB_SIZE - 1)];
    if (e->exec_tag == (pc & ~0xfffULL)) {
        *paddr = e->paddr | (pc & 0xfff);
        return true;
    }
    if (!may_fault)
        return mmu_probe(cpu, pc, MMU_EXEC, paddr);
    *paddr = mmu_translate(cpu, pc, MMU_EXEC, user);
    return true;
}

void *mmu_ram_ptr(struct tcg_cpu *cpu, uint64_t vaddr, size_t len, bool write)
{
    if (len == 0 || (vaddr & 0xfff) + len > 0x1000)
        return NULL;
    if (cpu_vcpu(cpu)->dbg.watch && tcg_debug_page_watched(cpu, vaddr & ~0xfffULL))
        return NULL; /* a watched page: through mmu_load/mmu_store */
    uint64_t paddr = mmu_translate(cpu, vaddr, write ? MMU_WRITE : MMU_READ, cpu_user_mode(cpu));
    struct accel_vm *vm = cpu_vcpu(cpu)->vm;
    if (lapic_mmio_hit(&cpu_vcpu(cpu)->lapic, paddr))
        return NULL;
    void *host = gpa_to_host(vm->mem, paddr, len);
    size_t index;
    if (host && write && ram_page_index(vm, paddr, &index) && tb_page_has_code(&vm->tbs, index)) {
        tcg_tb_lock(cpu, vm);
        before_code_write(cpu, index, paddr, (unsigned)len);
        tcg_tb_unlock(cpu, vm);
        /* With other vCPUs translating, the caller's later write could land after one of
         * them read the page: such writes go through mmu_store (under the lock). */
        if (vm->nr_vcpus > 1)
            return NULL;
    }
    return host;
}

static uint64_t load_slow(struct tcg_cpu *cpu, uint64_t vaddr, unsigned size, bool user)
{
    cpu->stats.slow_loads++;
    if (cpu_vcpu(cpu)->dbg.watch)
        tcg_debug_watch_access(cpu, vaddr, size, false);
    if (((vaddr & 0xfff) + size) > 0x1000) {
        /* Crosses a page: byte by byte, each byte translated (and faulting) on its own. */
        uint64_t value = 0;
        for (unsigned i = 0; i < size; i++)
            value |= load_slow(cpu, vaddr + i, 1, user) << (8 * i);
        return value;
    }
    uint64_t paddr = mmu_translate(cpu, vaddr, MMU_READ, user);
    return phys_read(cpu, paddr, size);
}

static void store_slow(struct tcg_cpu *cpu, uint64_t vaddr, uint64_t value, unsigned size,
                       bool user)
{
    cpu->stats.slow_stores++;
    if (cpu_vcpu(cpu)->dbg.watch)
        tcg_debug_watch_access(cpu, vaddr, size, true);
    if (((vaddr & 0xfff) + size) > 0x1000) {
        /* Check both pages before writing anything, so a fault leaves memory unchanged. */
        mmu_translate(cpu, vaddr, MMU_WRITE, user);
        mmu_translate(cpu, (vaddr | 0xfff) + 1, MMU_WRITE, user);
        for (unsigned i = 0; i < size; i++)
            store_slow(cpu, vaddr + i, (value >> (8 * i)) & 0xff, 1, user);
        return;
    }
    uint64_t paddr = mmu_translate(cpu, vaddr, MMU_WRITE, user);
    phys_write(cpu, paddr, value, size);
}

static inline uint64_t load_access(struct tcg_cpu *cpu, uint64_t vaddr, unsigned size, bool user)
{
    const struct tlb_entry *e = &cpu->tlb[user][(vaddr >> 12) & (TLB_SIZE - 1)];
    if (e->read_tag == (vaddr & ~0xfffULL) && (vaddr & 0xfff) + size <= 0x1000) {
        uint64_t value = 0;
        memcpy(&value, (const void *)(uintptr_t)(vaddr + e->addend), size);
        return value;
    }
    return load_slow(cpu, vaddr, size, user);
}

static inline void store_access(struct tcg_cpu *cpu, uint64_t vaddr, uint64_t value, unsigned size,
                                bool user)
{
    const struct tlb_entry *e = &cpu->tlb[user][(vaddr >> 12) & (TLB_SIZE - 1)];
    if (e->write_tag == (vaddr & ~0xfffULL) && (vaddr & 0xfff) + size <= 0x1000) {
        memcpy((void *)(uintptr_t)(vaddr + e->addend), &value, size);
        return;
    }
    store_slow(cpu, vaddr, value, size, user);
}

static unsigned memop_size(unsigned memop)
{
    unsigned size = memop & 0xf;
    return (size == 1 || size == 2 || size == 4 || size == 8) ? size : 8;
}

uint64_t mmu_load(void *env, uint64_t vaddr, unsigned memop)
{
    struct tcg_cpu *cpu = env;
    return load_access(cpu, vaddr, memop_size(memop), cpu_user_mode(cpu));
}

void mmu_store(void *env, uint64_t vaddr, uint64_t value, unsigned memop)
{
    struct tcg_cpu *cpu = env;
    store_access(cpu, vaddr, value, memop_size(memop), cpu_user_mode(cpu));
}

uint64_t mmu_load_kernel(struct tcg_cpu *cpu, uint64_t vaddr, unsigned size)
{
    return load_access(cpu, vaddr, memop_size(size), false);
}

void mmu_store_kernel(struct tcg_cpu *cpu, uint64_t vaddr, uint64_t value, unsigned size)
{
    store_access(cpu, vaddr, value, memop_size(size), false);
}

size_t mmu_fetch_code(struct tcg_cpu *cpu, uint64_t vaddr, uint8_t *buf, size_t len)
{
    struct accel_vm *vm = cpu_vcpu(cpu)->vm;
    bool user = cpu_user_mode(cpu);
    size_t done = 0;
    while (done < len) {
        uint64_t va = vaddr + done;
        uint64_t paddr;
        if (done == 0) {
            paddr = mmu_translate(cpu, va, MMU_EXEC, user); /* faults for the first byte */
        } else if (!mmu_probe(cpu, va, MMU_EXEC, &paddr)) {
            break; /* the next page would fault: let the decoder ask for it */
        }
        size_t chunk = 0x1000 - (size_t)(va & 0xfff);
        if (chunk > len - done)
            chunk = len - done;
        const void *host = gpa_to_host(vm->mem, paddr, chunk);
        if (host)
            memcpy(buf + done, host, chunk);
        else
            memset(buf + done, 0xff, chunk); /* code outside RAM reads as all-ones */
        done += chunk;
    }
    return done;
}
