/* KVM accelerator: guest code runs in the host kernel; port/MMIO exits come back to quokka's
 * buses. The in-kernel irqchip (PIC, IOAPIC, LAPIC) and PIT are used, so HLT never exits. */
#include "accel/accel.h"

#include "util/log.h"
#include "vm/cpu_model.h"
#include "vm/memory.h"
#include "vm/platform.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

/* KVM runs x86 guests only on x86 hosts: elsewhere the accelerator reports itself unusable and
 * --accel auto picks the translator. */
#if defined(__x86_64__)

/* A signal with an empty handler interrupts KVM_RUN (EINTR); SIGUSR1 is reserved for that. */
#define KVM_KICK_SIGNAL SIGUSR1

struct accel_vm {
    int kvm_fd;
    int vm_fd;
    int vcpu_mmap_size;
    /* MSI routes: GSI KVM_MSI_GSI_BASE + route, each bound to an irqfd. KVM_SET_GSI_ROUTING
     * replaces the whole table, so it is rebuilt from these (plus the PIC/IOAPIC defaults). */
    pthread_mutex_t msi_lock;
    struct kvm_msi_slot {
        bool used;
        uint64_t address;
        uint32_t data;
        int irqfd;
    } * msi;
};

#define KVM_MSI_GSI_BASE 24 /* after the IOAPIC's inputs */

struct accel_vcpu {
    struct accel_vm *vm;
    int fd;
    unsigned index;
    struct kvm_run *run;
    pthread_t thread;
    atomic_bool thread_known;
    struct accel_debug dbg; /* the debugger's settings (kvm_set_debug): to name a stop */
};

static void kick_handler(int sig)
{
    (void)sig;
}

static int install_kick_handler(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = kick_handler;
    sigemptyset(&sa.sa_mask);
    return sigaction(KVM_KICK_SIGNAL, &sa, NULL);
}

static const struct {
    int cap;
    const char *name;
} required_caps[] = {
    {KVM_CAP_IRQCHIP, "in-kernel irqchip"},     {KVM_CAP_USER_MEMORY, "user memory slots"},
    {KVM_CAP_SET_TSS_ADDR, "TSS address"},      {KVM_CAP_EXT_CPUID, "extended CPUID"},
    {KVM_CAP_IMMEDIATE_EXIT, "immediate exit"}, {KVM_CAP_PIT2, "in-kernel PIT"},
};

static int kvm_open(char *why, size_t len)
{
    int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return qk_fail(why, len, "cannot open /dev/kvm: %s", strerror(errno));
    int version = ioctl(fd, KVM_GET_API_VERSION, 0);
    if (version != KVM_API_VERSION) {
        close(fd);
        return qk_fail(why, len, "/dev/kvm has API version %d, quokka needs %d", version,
                       KVM_API_VERSION);
    }
    for (size_t i = 0; i < sizeof(required_caps) / sizeof(required_caps[0]); i++) {
        if (ioctl(fd, KVM_CHECK_EXTENSION, required_caps[i].cap) <= 0) {
            close(fd);
            return qk_fail(why, len, "KVM lacks the %s capability", required_caps[i].name);
        }
    }
    return fd;
}

static void vm_destroy(struct accel_vm *vm)
{
    if (!vm)
        return;
    for (unsigned i = 0; vm->msi && i < ACCEL_MAX_MSI_ROUTES; i++)
        if (vm->msi[i].irqfd >= 0)
            close(vm->msi[i].irqfd);
    free(vm->msi);
    pthread_mutex_destroy(&vm->msi_lock);
    if (vm->vm_fd >= 0)
        close(vm->vm_fd);
    if (vm->kvm_fd >= 0)
        close(vm->kvm_fd);
    free(vm);
}

static int vm_create_bare(struct accel_vm **out, char *err, size_t errlen)
{
    struct accel_vm *vm = calloc(1, sizeof(*vm));
    if (!vm)
        return qk_fail(err, errlen, "out of memory");
    vm->vm_fd = -1;
    pthread_mutex_init(&vm->msi_lock, NULL);
    vm->msi = calloc(ACCEL_MAX_MSI_ROUTES, sizeof(*vm->msi));
    if (!vm->msi) {
        vm->kvm_fd = -1;
        qk_fail(err, errlen, "out of memory");
        goto fail;
    }
    for (unsigned i = 0; i < ACCEL_MAX_MSI_ROUTES; i++)
        vm->msi[i].irqfd = -1;
    vm->kvm_fd = kvm_open(err, errlen);
    if (vm->kvm_fd < 0)
        goto fail;
    vm->vcpu_mmap_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (vm->vcpu_mmap_size < (int)sizeof(struct kvm_run)) {
        qk_fail(err, errlen, "KVM_GET_VCPU_MMAP_SIZE failed: %s", strerror(errno));
        goto fail;
    }
    vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
    if (vm->vm_fd < 0) {
        qk_fail(err, errlen, "KVM_CREATE_VM failed: %s", strerror(errno));
        goto fail;
    }
    /* Real-mode emulation on Intel needs these pages; they sit in the MMIO hole, not RAM. */
    if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)PHYS_KVM_TSS) < 0) {
        qk_fail(err, errlen, "KVM_SET_TSS_ADDR failed: %s", strerror(errno));
        goto fail;
    }
    if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_SET_IDENTITY_MAP_ADDR) > 0) {
        uint64_t addr = PHYS_KVM_IDENTITY_MAP;
        if (ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &addr) < 0) {
            qk_fail(err, errlen, "KVM_SET_IDENTITY_MAP_ADDR failed: %s", strerror(errno));
            goto fail;
        }
    }
    *out = vm;
    return 0;
fail:
    vm_destroy(vm);
    return -1;
}

static int map_region(struct accel_vm *vm, unsigned slot, uint64_t gpa, uint64_t size, void *host,
                      char *err, size_t errlen)
{
    struct kvm_userspace_memory_region region = {
        .slot = slot,
        .guest_phys_addr = gpa,
        .memory_size = size,
        .userspace_addr = (uint64_t)(uintptr_t)host,
    };
    if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0)
        return qk_fail(err, errlen, "KVM_SET_USER_MEMORY_REGION(0x%llx+0x%llx) failed: %s",
                       (unsigned long long)gpa, (unsigned long long)size, strerror(errno));
    return 0;
}

static int kvm_vm_create(const struct accel_vm_config *cfg, struct accel_vm **out, char *err,
                         size_t errlen)
{
    struct accel_vm *vm;
    if (vm_create_bare(&vm, err, errlen) < 0)
        return -1;
    int max_vcpus = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
    if (max_vcpus <= 0)
        max_vcpus = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
    if (max_vcpus > 0 && cfg->nr_vcpus > (unsigned)max_vcpus) {
        qk_fail(err, errlen, "KVM supports at most %d vCPUs, %u requested", max_vcpus,
                cfg->nr_vcpus);
        goto fail;
    }
    if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0) {
        qk_fail(err, errlen, "KVM_CREATE_IRQCHIP failed: %s", strerror(errno));
        goto fail;
    }
    struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};
    if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0) {
        qk_fail(err, errlen, "KVM_CREATE_PIT2 failed: %s", strerror(errno));
        goto fail;
    }
    for (unsigned i = 0; i < cfg->mem->nr_regions; i++) {
        const struct guest_ram_region *r = &cfg->mem->region[i];
        if (map_region(vm, i, r->gpa, r->size, r->host, err, errlen) < 0)
            goto fail;
    }
    *out = vm;
    return 0;
fail:
    vm_destroy(vm);
    return -1;
}

static int kvm_supported_cpuid(struct accel_vm *vm, struct cpuid_model *out, char *err,
                               size_t errlen)
{
    size_t bytes = sizeof(struct kvm_cpuid2) + CPUID_MAX_ENTRIES * sizeof(struct kvm_cpuid_entry2);
    struct kvm_cpuid2 *cpuid = calloc(1, bytes);
    if (!cpuid)
        return qk_fail(err, errlen, "out of memory");
    cpuid->nent = CPUID_MAX_ENTRIES;
    if (ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, cpuid) < 0) {
        free(cpuid);
        return qk_fail(err, errlen, "KVM_GET_SUPPORTED_CPUID failed: %s", strerror(errno));
    }
    struct cpuid_model *kvm = calloc(1, sizeof(*kvm)), *model = calloc(1, sizeof(*model));
    if (!kvm || !model) {
        free(kvm);
        free(model);
        free(cpuid);
        return qk_fail(err, errlen, "out of memory");
    }
    for (uint32_t i = 0; i < cpuid->nent && i < CPUID_MAX_ENTRIES; i++) {
        const struct kvm_cpuid_entry2 *e = &cpuid->entries[i];
        kvm->entry[kvm->nr++] = (struct cpuid_entry){
            .function = e->function,
            .index = e->index,
            .flags = (e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) ? CPUID_FLAG_INDEXED : 0,
            .eax = e->eax,
            .ebx = e->ebx,
            .ecx = e->ecx,
            .edx = e->edx,
        };
    }
    free(cpuid);
    /* The translator's model, cut down to what this KVM supports: guests see one CPU on
     * both accelerators. The TSC-deadline timer is a capability, not a table bit. */
    uint32_t extra =
        ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_TSC_DEADLINE_TIMER) > 0 ? (1u << 24) : 0;
    cpu_model_cpuid(model, 0, 0); /* timing leaves: KVM's own (its TSC runs at the host's rate) */
    cpu_model_for_kvm(model, kvm, extra, out);
    free(kvm);
    free(model);
    return 0;
}

static struct kvm_msrs *msr_buffer(unsigned n);

/* The MSR values the CPU model defines, one at a time: a KVM that refuses one (older kernels
 * take IA32_MCG_CAP only through KVM_X86_SETUP_MCE) keeps its own value, said once. */
static void set_model_msrs(struct accel_vcpu *vcpu)
{
    static atomic_bool warned;
    struct kvm_msrs *one = msr_buffer(1);
    if (!one)
        return;
    for (unsigned i = 0; i < cpu_model_nr_msrs; i++) {
        one->nmsrs = 1;
        one->entries[0] = (struct kvm_msr_entry){.index = cpu_model_msrs[i].index,
                                                 .data = cpu_model_msrs[i].value};
        if (ioctl(vcpu->fd, KVM_SET_MSRS, one) != 1 && !atomic_exchange(&warned, true))
            qk_warn("kvm: MSR 0x%x cannot be set to the CPU model's 0x%llx; the guest sees KVM's",
                    cpu_model_msrs[i].index, (unsigned long long)cpu_model_msrs[i].value);
    }
    free(one);
}

static int kvm_set_irq(struct accel_vm *vm, uint32_t gsi, int level)
{
    struct kvm_irq_level irq = {.irq = gsi, .level = level ? 1 : 0};
    return ioctl(vm->vm_fd, KVM_IRQ_LINE, &irq) < 0 ? -1 : 0;
}

/* The routes KVM_CREATE_IRQCHIP installs (GSI 0-15 to the PICs, 0-23 to the IOAPIC, GSI 0
 * on IOAPIC pin 2), then every MSI route in use. Called with msi_lock held. */
static int set_gsi_routing(struct accel_vm *vm)
{
    unsigned max = 16 + 24 + ACCEL_MAX_MSI_ROUTES;
    struct kvm_irq_routing *table =
        calloc(1, sizeof(*table) + max * sizeof(struct kvm_irq_routing_entry));
    if (!table)
        return -1;
    unsigned n = 0;
    for (unsigned gsi = 0; gsi < 16; gsi++, n++) {
        table->entries[n].gsi = gsi;
        table->entries[n].type = KVM_IRQ_ROUTING_IRQCHIP;
        table->entries[n].u.irqchip.irqchip =
            gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE;
        table->entries[n].u.irqchip.pin = gsi % 8;
    }
    for (unsigned gsi = 0; gsi < 24; gsi++, n++) {
        table->entries[n].gsi = gsi;
        table->entries[n].type = KVM_IRQ_ROUTING_IRQCHIP;
        table->entries[n].u.irqchip.irqchip = KVM_IRQCHIP_IOAPIC;
        table->entries[n].u.irqchip.pin = gsi == 0 ? 2 : gsi;
    }
    for (unsigned r = 0; r < ACCEL_MAX_MSI_ROUTES; r++) {
        if (!vm->msi[r].used)
            continue;
        table->entries[n].gsi = KVM_MSI_GSI_BASE + r;
        table->entries[n].type = KVM_IRQ_ROUTING_MSI;
        table->entries[n].u.msi.address_lo = (uint32_t)vm->msi[r].address;
        table->entries[n].u.msi.address_hi = (uint32_t)(vm->msi[r].address >> 32);
        table->entries[n].u.msi.data = vm->msi[r].data;
        n++;
    }
    table->nr = n;
    int rc = ioctl(vm->vm_fd, KVM_SET_GSI_ROUTING, table);
    free(table);
    return rc < 0 ? -1 : 0;
}

static int kvm_msi_route(struct accel_vm *vm, unsigned route, uint64_t address, uint32_t data,
                         int *fd)
{
    if (route >= ACCEL_MAX_MSI_ROUTES)
        return -1;
    pthread_mutex_lock(&vm->msi_lock);
    struct kvm_msi_slot *slot = &vm->msi[route];
    int rc = 0;
    if (!slot->used || slot->address != address || slot->data != data) {
        slot->used = true;
        slot->address = address;
        slot->data = data;
        rc = set_gsi_routing(vm);
    }
    if (rc == 0 && slot->irqfd < 0) {
        int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        struct kvm_irqfd irqfd = {.fd = (uint32_t)efd, .gsi = KVM_MSI_GSI_BASE + route};
        if (efd < 0 || ioctl(vm->vm_fd, KVM_IRQFD, &irqfd) < 0) {
            if (efd >= 0)
                close(efd);
            rc = -1;
        } else {
            slot->irqfd = efd;
        }
    }
    *fd = slot->irqfd;
    pthread_mutex_unlock(&vm->msi_lock);
    return rc;
}

static int kvm_ioeventfd(struct accel_vm *vm, bool mmio, uint64_t addr, unsigned len, int fd,
                         bool assign)
{
    struct kvm_ioeventfd io = {
        .addr = addr,
        .len = len,
        .fd = fd,
        .flags = (mmio ? 0 : KVM_IOEVENTFD_FLAG_PIO) | (assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN),
    };
    return ioctl(vm->vm_fd, KVM_IOEVENTFD, &io) < 0 ? -1 : 0;
}

static void kvm_vcpu_destroy(struct accel_vcpu *vcpu)
{
    if (!vcpu)
        return;
    if (vcpu->run)
        munmap(vcpu->run, (size_t)vcpu->vm->vcpu_mmap_size);
    if (vcpu->fd >= 0)
        close(vcpu->fd);
    free(vcpu);
}

static int kvm_vcpu_create(struct accel_vm *vm, unsigned index, struct accel_vcpu **out, char *err,
                           size_t errlen)
{
    struct accel_vcpu *vcpu = calloc(1, sizeof(*vcpu));
    if (!vcpu)
        return qk_fail(err, errlen, "out of memory");
    vcpu->vm = vm;
    vcpu->index = index;
    vcpu->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)index);
    if (vcpu->fd < 0) {
        qk_fail(err, errlen, "KVM_CREATE_VCPU %u failed: %s", index, strerror(errno));
        kvm_vcpu_destroy(vcpu);
        return -1;
    }
    void *run =
        mmap(NULL, (size_t)vm->vcpu_mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu->fd, 0);
    if (run == MAP_FAILED) {
        qk_fail(err, errlen, "mmap of vCPU %u run area failed: %s", index, strerror(errno));
        kvm_vcpu_destroy(vcpu);
        return -1;
    }
    vcpu->run = run;
    *out = vcpu;
    return 0;
}

static int kvm_set_cpuid(struct accel_vcpu *vcpu, const struct cpuid_model *model)
{
    size_t bytes = sizeof(struct kvm_cpuid2) + model->nr * sizeof(struct kvm_cpuid_entry2);
    struct kvm_cpuid2 *cpuid = calloc(1, bytes);
    if (!cpuid)
        return -1;
    cpuid->nent = model->nr;
    for (uint32_t i = 0; i < model->nr; i++) {
        const struct cpuid_entry *e = &model->entry[i];
        cpuid->entries[i] = (struct kvm_cpuid_entry2){
            .function = e->function,
            .index = e->index,
            .flags = (e->flags & CPUID_FLAG_INDEXED) ? KVM_CPUID_FLAG_SIGNIFCANT_INDEX : 0,
            .eax = e->eax,
            .ebx = e->ebx,
            .ecx = e->ecx,
            .edx = e->edx,
        };
    }
    int rc = ioctl(vcpu->fd, KVM_SET_CPUID2, cpuid);
    free(cpuid);
    if (rc < 0)
        return -1;
    set_model_msrs(vcpu); /* after CPUID: KVM checks MSRs against it */
    return 0;
}

static void seg_from_kvm(struct vcpu_segment *s, const struct kvm_segment *k)
{
    *s = (struct vcpu_segment){
        .base = k->base,
        .limit = k->limit,
        .selector = k->selector,
        .type = k->type,
        .s = k->s,
        .dpl = k->dpl,
        .present = k->present,
        .avl = k->avl,
        .l = k->l,
        .db = k->db,
        .g = k->g,
        .unusable = k->unusable,
    };
}

static void seg_to_kvm(struct kvm_segment *k, const struct vcpu_segment *s)
{
    *k = (struct kvm_segment){
        .base = s->base,
        .limit = s->limit,
        .selector = s->selector,
        .type = s->type,
        .s = s->s,
        .dpl = s->dpl,
        .present = s->present,
        .avl = s->avl,
        .l = s->l,
        .db = s->db,
        .g = s->g,
        .unusable = s->unusable,
    };
}

/* quokka's segment order (ES CS SS DS FS GS LDTR TR) mapped onto struct kvm_sregs. */
static struct kvm_segment *kvm_seg(struct kvm_sregs *sr, unsigned i)
{
    struct kvm_segment *map[NR_SEGS] = {&sr->es, &sr->cs, &sr->ss,  &sr->ds,
                                        &sr->fs, &sr->gs, &sr->ldt, &sr->tr};
    return map[i];
}

static int kvm_get_state(struct accel_vcpu *vcpu, struct vcpu_state *st)
{
    struct kvm_regs r;
    struct kvm_sregs sr;
    if (ioctl(vcpu->fd, KVM_GET_REGS, &r) < 0 || ioctl(vcpu->fd, KVM_GET_SREGS, &sr) < 0)
        return -1;
    const uint64_t gprs[NR_GPRS] = {r.rax, r.rcx, r.rdx, r.rbx, r.rsp, r.rbp, r.rsi, r.rdi,
                                    r.r8,  r.r9,  r.r10, r.r11, r.r12, r.r13, r.r14, r.r15};
    memcpy(st->gpr, gprs, sizeof(gprs));
    st->rip = r.rip;
    st->rflags = r.rflags;
    for (unsigned i = 0; i < NR_SEGS; i++)
        seg_from_kvm(&st->seg[i], kvm_seg(&sr, i));
    st->gdt = (struct vcpu_dtable){sr.gdt.base, sr.gdt.limit};
    st->idt = (struct vcpu_dtable){sr.idt.base, sr.idt.limit};
    st->cr0 = sr.cr0;
    st->cr2 = sr.cr2;
    st->cr3 = sr.cr3;
    st->cr4 = sr.cr4;
    st->cr8 = sr.cr8;
    st->efer = sr.efer;
    st->apic_base = sr.apic_base;
    return 0;
}

/* x87/SSE through KVM_GET_FPU / KVM_SET_FPU (struct kvm_fpu is the FXSAVE64 layout). */
static int kvm_get_fpu(struct accel_vcpu *vcpu, struct vcpu_fpu *fpu)
{
    struct kvm_fpu k;
    if (ioctl(vcpu->fd, KVM_GET_FPU, &k) < 0)
        return -1;
    memset(fpu, 0, sizeof(*fpu));
    for (unsigned i = 0; i < 8; i++)
        memcpy(fpu->st[i], k.fpr[i], 10);
    fpu->fcw = k.fcw;
    fpu->fsw = k.fsw;
    fpu->ftw = k.ftwx;
    fpu->fop = k.last_opcode;
    fpu->fip = k.last_ip;
    fpu->fdp = k.last_dp;
    memcpy(fpu->xmm, k.xmm, sizeof(fpu->xmm));
    fpu->mxcsr = k.mxcsr;
    return 0;
}

static int kvm_set_fpu(struct accel_vcpu *vcpu, const struct vcpu_fpu *fpu)
{
    struct kvm_fpu k;
    if ((fpu->mxcsr & 0xffff0000u) || ioctl(vcpu->fd, KVM_GET_FPU, &k) < 0)
        return -1; /* reserved MXCSR bits: the next FXRSTOR would fault */
    for (unsigned i = 0; i < 8; i++)
        memcpy(k.fpr[i], fpu->st[i], 10);
    k.fcw = fpu->fcw;
    k.fsw = fpu->fsw;
    k.ftwx = fpu->ftw;
    k.last_opcode = fpu->fop;
    k.last_ip = fpu->fip;
    k.last_dp = fpu->fdp;
    memcpy(k.xmm, fpu->xmm, sizeof(k.xmm));
    k.mxcsr = fpu->mxcsr;
    return ioctl(vcpu->fd, KVM_SET_FPU, &k) < 0 ? -1 : 0;
}

static int kvm_set_state(struct accel_vcpu *vcpu, const struct vcpu_state *st)
{
    struct kvm_sregs sr;
    /* Start from the current sregs so fields quokka does not model (interrupt bitmap) stay. */
    if (ioctl(vcpu->fd, KVM_GET_SREGS, &sr) < 0)
        return -1;
    struct kvm_regs r = {
        .rax = st->gpr[GPR_RAX],
        .rcx = st->gpr[GPR_RCX],
        .rdx = st->gpr[GPR_RDX],
        .rbx = st->gpr[GPR_RBX],
        .rsp = st->gpr[GPR_RSP],
        .rbp = st->gpr[GPR_RBP],
        .rsi = st->gpr[GPR_RSI],
        .rdi = st->gpr[GPR_RDI],
        .r8 = st->gpr[GPR_R8],
        .r9 = st->gpr[GPR_R9],
        .r10 = st->gpr[GPR_R10],
        .r11 = st->gpr[GPR_R11],
        .r12 = st->gpr[GPR_R12],
        .r13 = st->gpr[GPR_R13],
        .r14 = st->gpr[GPR_R14],
        .r15 = st->gpr[GPR_R15],
        .rip = st->rip,
        .rflags = st->rflags,
    };
    for (unsigned i = 0; i < NR_SEGS; i++)
        seg_to_kvm(kvm_seg(&sr, i), &st->seg[i]);
    sr.gdt.base = st->gdt.base;
    sr.gdt.limit = st->gdt.limit;
    sr.idt.base = st->idt.base;
    sr.idt.limit = st->idt.limit;
    sr.cr0 = st->cr0;
    sr.cr2 = st->cr2;
    sr.cr3 = st->cr3;
    sr.cr4 = st->cr4;
    sr.cr8 = st->cr8;
    sr.efer = st->efer;
    if (st->apic_base)
        sr.apic_base = st->apic_base;
    if (ioctl(vcpu->fd, KVM_SET_SREGS, &sr) < 0 || ioctl(vcpu->fd, KVM_SET_REGS, &r) < 0)
        return -1;
    return 0;
}

static struct kvm_msrs *msr_buffer(unsigned n)
{
    return calloc(1, sizeof(struct kvm_msrs) + n * sizeof(struct kvm_msr_entry));
}

static int kvm_get_msrs(struct accel_vcpu *vcpu, struct vcpu_msr *msrs, unsigned n)
{
    struct kvm_msrs *buf = msr_buffer(n);
    if (!buf)
        return -1;
    buf->nmsrs = n;
    for (unsigned i = 0; i < n; i++)
        buf->entries[i].index = msrs[i].index;
    int got = ioctl(vcpu->fd, KVM_GET_MSRS, buf);
    for (int i = 0; i < got && i < (int)n; i++)
        msrs[i].value = buf->entries[i].data;
    free(buf);
    return got == (int)n ? 0 : -1;
}

static int kvm_set_msrs(struct accel_vcpu *vcpu, const struct vcpu_msr *msrs, unsigned n)
{
    struct kvm_msrs *buf = msr_buffer(n);
    if (!buf)
        return -1;
    buf->nmsrs = n;
    for (unsigned i = 0; i < n; i++) {
        buf->entries[i].index = msrs[i].index;
        buf->entries[i].data = msrs[i].value;
    }
    int set = ioctl(vcpu->fd, KVM_SET_MSRS, buf);
    free(buf);
    return set == (int)n ? 0 : -1;
}

static int kvm_vcpu_thread_init(struct accel_vcpu *vcpu)
{
    vcpu->thread = pthread_self();
    atomic_store(&vcpu->thread_known, true);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, KVM_KICK_SIGNAL);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    return install_kick_handler();
}

static void kvm_kick(struct accel_vcpu *vcpu)
{
    /* immediate_exit covers a kick that lands before the thread enters KVM_RUN; the signal
     * covers one already inside it. */
    __atomic_store_n(&vcpu->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
    if (atomic_load(&vcpu->thread_known))
        pthread_kill(vcpu->thread, KVM_KICK_SIGNAL);
}

/* --- debugging (untested here: no /dev/kvm on the development machine) --------------------
 * Everything is a hardware breakpoint (KVM_GUESTDBG_USE_HW_BP): no 0xCC is written into guest
 * memory. DR0-DR3 hold the breakpoints first, then the watchpoints; KVM has no read-only
 * watchpoint, so a read watchpoint also stops on writes (as QEMU's gdbstub on KVM). */

static int dr7_len_bits(unsigned len)
{
    switch (len) {
    case 1:
        return 0;
    case 2:
        return 1;
    case 4:
        return 3;
    case 8:
        return 2;
    default:
        return -1;
    }
}

static int kvm_set_debug(struct accel_vcpu *vcpu, const struct accel_debug *dbg, char *err,
                         size_t errlen)
{
    struct kvm_guest_debug gd;
    memset(&gd, 0, sizeof(gd));
    if (dbg->nr_breakpoints + dbg->nr_watchpoints > 4)
        return qk_fail(err, errlen, "KVM: 4 hardware breakpoints and watchpoints at most");
    uint64_t dr7 = 0;
    unsigned slot = 0;
    for (unsigned i = 0; i < dbg->nr_breakpoints; i++, slot++) {
        gd.arch.debugreg[slot] = dbg->breakpoint[i];
        dr7 |= 2ULL << (2 * slot); /* G: R/W=00 (execute), LEN=00 */
    }
    for (unsigned i = 0; i < dbg->nr_watchpoints; i++, slot++) {
        const struct accel_watchpoint *w = &dbg->watchpoint[i];
        int len = dr7_len_bits(w->len);
        if (len < 0 || (w->addr & (w->len - 1)))
            return qk_fail(err, errlen, "KVM: a watchpoint must be 1, 2, 4 or 8 aligned bytes");
        uint64_t rw = w->kind == ACCEL_WATCH_WRITE ? 1 : 3;
        gd.arch.debugreg[slot] = w->addr;
        dr7 |= 2ULL << (2 * slot) | rw << (16 + 4 * slot) | (uint64_t)len << (18 + 4 * slot);
    }
    if (slot) {
        gd.control |= KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_HW_BP;
        gd.arch.debugreg[7] = dr7 | 0x400;
    }
    if (dbg->single_step) {
        gd.control |= KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_SINGLESTEP;
#ifdef KVM_GUESTDBG_BLOCKIRQ
        gd.control |= KVM_GUESTDBG_BLOCKIRQ; /* no interrupt taken by the step */
#endif
    }
    if (ioctl(vcpu->fd, KVM_SET_GUEST_DEBUG, &gd) < 0)
        return qk_fail(err, errlen, "KVM_SET_GUEST_DEBUG: %s", strerror(errno));
    vcpu->dbg = *dbg;
    return 0;
}

/* KVM_EXIT_DEBUG: DR6 says which breakpoint (Bn) or the single step (BS). */
static void kvm_debug_exit(struct accel_vcpu *vcpu, struct accel_exit *exit)
{
    const struct kvm_debug_exit_arch *d = &vcpu->run->debug.arch;
    exit->reason = ACCEL_EXIT_DEBUG;
    exit->debug.kind = ACCEL_DEBUG_STEP;
    exit->debug.addr = d->pc;
    unsigned nr_bps = vcpu->dbg.nr_breakpoints;
    for (unsigned n = 0; n < 4; n++) {
        if (!(d->dr6 & (1u << n)))
            continue;
        if (n < nr_bps) {
            exit->debug.kind = ACCEL_DEBUG_BREAKPOINT;
            exit->debug.addr = vcpu->dbg.breakpoint[n];
        } else if (n - nr_bps < vcpu->dbg.nr_watchpoints) {
            const struct accel_watchpoint *w = &vcpu->dbg.watchpoint[n - nr_bps];
            exit->debug.kind = ACCEL_DEBUG_WATCHPOINT;
            exit->debug.addr = w->addr;
            exit->debug.watch_kind = w->kind;
        }
        return;
    }
}

static int kvm_translate_gva(struct accel_vcpu *vcpu, uint64_t gva, uint64_t *gpa)
{
    struct kvm_translation tr;
    memset(&tr, 0, sizeof(tr));
    tr.linear_address = gva;
    if (ioctl(vcpu->fd, KVM_TRANSLATE, &tr) < 0 || !tr.valid)
        return -1;
    *gpa = tr.physical_address;
    return 0;
}

static int kvm_run(struct accel_vcpu *vcpu, struct accel_exit *exit)
{
    struct kvm_run *run = vcpu->run;
    memset(exit, 0, sizeof(*exit));
    for (;;) {
        int rc = ioctl(vcpu->fd, KVM_RUN, 0);
        if (rc < 0) {
            if (errno == EINTR || errno == EAGAIN) {
                __atomic_store_n(&run->immediate_exit, 0, __ATOMIC_SEQ_CST);
                exit->reason = ACCEL_EXIT_STOPPED;
                return 0;
            }
            exit->reason = ACCEL_EXIT_ERROR;
            snprintf(exit->error.msg, sizeof(exit->error.msg), "KVM_RUN failed: %s",
                     strerror(errno));
            return 0;
        }
        switch (run->exit_reason) {
        case KVM_EXIT_IO:
            if ((run->io.size != 1 && run->io.size != 2 && run->io.size != 4) ||
                (uint64_t)run->io.data_offset + (uint64_t)run->io.count * run->io.size >
                    (uint64_t)vcpu->vm->vcpu_mmap_size)
                break;
            exit->reason = ACCEL_EXIT_IO;
            exit->io.port = run->io.port;
            exit->io.size = run->io.size;
            exit->io.is_write = run->io.direction == KVM_EXIT_IO_OUT;
            exit->io.count = run->io.count;
            exit->io.data = (uint8_t *)run + run->io.data_offset;
            return 0;
        case KVM_EXIT_MMIO:
            if (run->mmio.len == 0 || run->mmio.len > 8)
                break;
            exit->reason = ACCEL_EXIT_MMIO;
            exit->mmio.gpa = run->mmio.phys_addr;
            exit->mmio.size = (uint8_t)run->mmio.len;
            exit->mmio.is_write = run->mmio.is_write;
            exit->mmio.data = run->mmio.data;
            return 0;
        case KVM_EXIT_HLT:
            exit->reason = ACCEL_EXIT_HALT;
            return 0;
        case KVM_EXIT_DEBUG:
            kvm_debug_exit(vcpu, exit);
            return 0;
        case KVM_EXIT_SHUTDOWN:
            exit->reason = ACCEL_EXIT_SHUTDOWN;
            return 0;
        case KVM_EXIT_INTR:
            exit->reason = ACCEL_EXIT_STOPPED;
            return 0;
        case KVM_EXIT_SYSTEM_EVENT:
            exit->reason = ACCEL_EXIT_SHUTDOWN;
            return 0;
        case KVM_EXIT_FAIL_ENTRY:
            exit->reason = ACCEL_EXIT_ERROR;
            snprintf(exit->error.msg, sizeof(exit->error.msg),
                     "KVM entry failed, hardware reason 0x%llx",
                     (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
            return 0;
        case KVM_EXIT_INTERNAL_ERROR:
            exit->reason = ACCEL_EXIT_ERROR;
            snprintf(exit->error.msg, sizeof(exit->error.msg), "KVM internal error, suberror %u",
                     run->internal.suberror);
            return 0;
        default:
            break;
        }
        exit->reason = ACCEL_EXIT_ERROR;
        snprintf(exit->error.msg, sizeof(exit->error.msg), "unexpected KVM exit reason %u",
                 run->exit_reason);
        return 0;
    }
}

/* --- usability probe -------------------------------------------------------------------- */

struct probe_timer {
    struct accel_vcpu *vcpu;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
};

static void *probe_watchdog(void *arg)
{
    struct probe_timer *t = arg;
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 3;
    pthread_mutex_lock(&t->lock);
    while (!t->done) {
        if (pthread_cond_timedwait(&t->cond, &t->lock, &deadline) == ETIMEDOUT) {
            kvm_kick(t->vcpu);
            break;
        }
    }
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

/* The probe guests. Basic: 16-bit real mode "mov al, 0x5a; out 0xf4, al" — proves memory
 * slots, vCPU setup and I/O exits work. With interrupts: 32-bit protected mode taking a
 * software interrupt through an IDT gate whose handler sets AL and IRETs — what any operating
 * system needs, and what software-assisted KVMs such as kvm_pvm cannot do for non-PV guests. */
static void probe_image(uint8_t *mem, bool with_interrupts)
{
    static const uint8_t basic[] = {0xb0, 0x5a, 0xe6, 0xf4, 0xf4};
    static const uint8_t caller[] = {0xcd, 0x20, 0xe6, 0xf4, 0xf4}; /* int 0x20; out; hlt */
    static const uint8_t handler[] = {0xb0, 0x5a, 0xcf};            /* mov al, 0x5a; iret */
    if (!with_interrupts) {
        memcpy(mem + 0x1000, basic, sizeof(basic));
        return;
    }
    static const uint64_t gdt[] = {0, 0x00cf9a000000ffffULL, 0x00cf92000000ffffULL};
    memcpy(mem, gdt, sizeof(gdt));
    uint64_t gate = 0x2000 | (0x08ULL << 16) | (0x8e00ULL << 32); /* 32-bit interrupt gate */
    memcpy(mem + 0x100 + 0x20 * 8, &gate, sizeof(gate));
    memcpy(mem + 0x1000, caller, sizeof(caller));
    memcpy(mem + 0x2000, handler, sizeof(handler));
}

static void probe_segments(struct kvm_sregs *sr, struct kvm_regs *r, bool with_interrupts)
{
    r->rip = 0x1000;
    r->rflags = 2;
    sr->cs.base = 0;
    sr->cs.selector = 0;
    if (!with_interrupts)
        return;
    struct kvm_segment code = {.base = 0,
                               .limit = 0xffffffff,
                               .selector = 0x08,
                               .type = 11,
                               .present = 1,
                               .s = 1,
                               .db = 1,
                               .g = 1};
    struct kvm_segment data = code;
    data.selector = 0x10;
    data.type = 3;
    sr->cs = code;
    sr->ds = sr->es = sr->fs = sr->gs = sr->ss = data;
    sr->gdt.base = 0;
    sr->gdt.limit = 23;
    sr->idt.base = 0x100;
    sr->idt.limit = 0x21 * 8 - 1;
    sr->cr0 |= 1; /* PE */
    r->rsp = 0x8000;
}

static int run_probe_guest(bool with_interrupts, char *why, size_t len)
{
    struct accel_vm *vm;
    if (vm_create_bare(&vm, why, len) < 0)
        return -1;
    int result = -1;
    struct accel_vcpu *vcpu = NULL;
    void *page = mmap(NULL, 0x10000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) {
        qk_fail(why, len, "out of memory");
        goto out;
    }
    probe_image(page, with_interrupts);
    if (map_region(vm, 0, 0, 0x10000, page, why, len) < 0 ||
        kvm_vcpu_create(vm, 0, &vcpu, why, len) < 0)
        goto out;
    struct kvm_sregs sr;
    struct kvm_regs r = {0};
    if (ioctl(vcpu->fd, KVM_GET_SREGS, &sr) < 0) {
        qk_fail(why, len, "KVM_GET_SREGS failed: %s", strerror(errno));
        goto out;
    }
    probe_segments(&sr, &r, with_interrupts);
    if (ioctl(vcpu->fd, KVM_SET_SREGS, &sr) < 0 || ioctl(vcpu->fd, KVM_SET_REGS, &r) < 0) {
        qk_fail(why, len, "cannot set vCPU registers: %s", strerror(errno));
        goto out;
    }
    kvm_vcpu_thread_init(vcpu);
    struct probe_timer timer = {
        .vcpu = vcpu, .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
    pthread_t watchdog;
    if (pthread_create(&watchdog, NULL, probe_watchdog, &timer) != 0) {
        qk_fail(why, len, "cannot start probe watchdog");
        goto out;
    }
    struct accel_exit ex;
    kvm_run(vcpu, &ex);
    pthread_mutex_lock(&timer.lock);
    timer.done = true;
    pthread_cond_signal(&timer.cond);
    pthread_mutex_unlock(&timer.lock);
    pthread_join(watchdog, NULL);
    if (ex.reason == ACCEL_EXIT_IO && ex.io.port == PORT_DEBUG_EXIT && ex.io.is_write &&
        ex.io.data[0] == 0x5a)
        result = 0;
    else if (ex.reason == ACCEL_EXIT_STOPPED)
        qk_fail(why, len, "KVM test guest did not finish within 3 seconds");
    else if (with_interrupts)
        qk_fail(why, len,
                "KVM cannot deliver a protected-mode interrupt to a test guest (a "
                "software-assisted KVM such as kvm_pvm?)");
    else
        qk_fail(why, len, "KVM test guest misbehaved (exit %d)", (int)ex.reason);
out:
    kvm_vcpu_destroy(vcpu);
    vm_destroy(vm);
    if (page != MAP_FAILED)
        munmap(page, 0x10000);
    return result;
}

static int kvm_probe(char *why, size_t len)
{
    return run_probe_guest(false, why, len);
}

static int kvm_probe_guest_os(char *why, size_t len)
{
    return run_probe_guest(true, why, len);
}

const struct accel_ops kvm_accel_ops = {
    .name = "kvm",
    .in_kernel_irqchip = true,
    .probe = kvm_probe,
    .probe_guest_os = kvm_probe_guest_os,
    .vm_create = kvm_vm_create,
    .vm_destroy = vm_destroy,
    .supported_cpuid = kvm_supported_cpuid,
    .set_irq = kvm_set_irq,
    .msi_route = kvm_msi_route,
    .ioeventfd = kvm_ioeventfd,
    .vcpu_create = kvm_vcpu_create,
    .vcpu_destroy = kvm_vcpu_destroy,
    .set_cpuid = kvm_set_cpuid,
    .get_state = kvm_get_state,
    .set_state = kvm_set_state,
    .get_fpu = kvm_get_fpu,
    .set_fpu = kvm_set_fpu,
    .get_msrs = kvm_get_msrs,
    .set_msrs = kvm_set_msrs,
    .run = kvm_run,
    .kick = kvm_kick,
    .vcpu_thread_init = kvm_vcpu_thread_init,
    .set_debug = kvm_set_debug,
    .translate_gva = kvm_translate_gva,
};

#else

static int kvm_unavailable(char *why, size_t len)
{
    return qk_fail(why, len, "KVM runs x86 guests only on an x86-64 host");
}

const struct accel_ops kvm_accel_ops = {
    .name = "kvm",
    .probe = kvm_unavailable,
    .probe_guest_os = kvm_unavailable,
};

#endif
