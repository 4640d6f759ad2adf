#include "vm/cpu_model.h"

#include "vm/cpuid.h"

#include <stdbool.h>
#include <string.h>

#define MSR_IA32_BIOS_SIGN_ID 0x8b
#define MSR_IA32_MCG_CAP 0x179
#define MSR_IA32_MCG_STATUS 0x17a
#define MSR_IA32_MISC_ENABLE 0x1a0

/* What the translator's MSR file starts with (tcg_msr_read / tcg_reset_cpu). */
const struct cpu_model_msr cpu_model_msrs[] = {
    {MSR_IA32_MCG_CAP, 0},      /* MCA without banks (CPUID.1:EDX MCE, MCA) */
    {MSR_IA32_MCG_STATUS, 0},   /* no machine check in progress */
    {MSR_IA32_MISC_ENABLE, 0},  /* nothing enabled (no fast strings, no MONITOR) */
    {MSR_IA32_BIOS_SIGN_ID, 0}, /* microcode revision 0 */
};
const unsigned cpu_model_nr_msrs = sizeof(cpu_model_msrs) / sizeof(cpu_model_msrs[0]);

static void add_leaf(struct cpuid_model *m, uint32_t fn, uint32_t idx, uint32_t flags, uint32_t a,
                     uint32_t b, uint32_t c, uint32_t d)
{
    if (m->nr < CPUID_MAX_ENTRIES)
        m->entry[m->nr++] = (struct cpuid_entry){fn, idx, flags, a, b, c, d};
}

static void add_string(struct cpuid_model *m, uint32_t fn, const char *s, size_t words)
{
    char text[48] = {0};
    uint32_t w[12];
    memcpy(text, s, strlen(s) < sizeof(text) ? strlen(s) : sizeof(text));
    memcpy(w, text, sizeof(w));
    for (size_t i = 0; i < words / 4; i++)
        add_leaf(m, fn + (uint32_t)i, 0, 0, w[i * 4], w[i * 4 + 1], w[i * 4 + 2], w[i * 4 + 3]);
}

/* Exactly what the translator implements: integer ISA, long mode, NX, PAE/PSE paging (1 GiB
 * pages too), machine-check architecture without banks, CMPXCHG8B/16B, CMOV, TSC/RDTSCP,
 * MSRs, SYSCALL, POPCNT, LZCNT, x87, FXSR, MMX, SSE, SSE2, the local APIC with x2APIC and
 * the TSC-deadline timer. */
void cpu_model_cpuid(struct cpuid_model *out, uint64_t tsc_hz, uint64_t apic_hz)
{
    out->nr = 0;
    /* One fixed model whatever the host: an Intel family-6 CPU, so the MSRs a guest may
     * expect are Intel's; an AMD host's vendor here would promise AMD's. */
    add_leaf(out, 0, 0, 0, 0x16, 0x756e6547, 0x6c65746e, 0x49656e69); /* "GenuineIntel" */
    const uint32_t edx1 = (1u << 3) | (1u << 4) | (1u << 5) | (1u << 6) | (1u << 8) | (1u << 13) |
                          (1u << 15) | (1u << 19) | /* PSE TSC MSR PAE CX8 PGE CMOV CLFSH */
                          (1u << 7) | (1u << 14) |  /* MCE MCA: MCG_CAP with no banks */
                          (1u << 0) | (1u << 24) | (1u << 25) | (1u << 26) | /* FPU FXSR SSE SSE2 */
                          (1u << 23) | (1u << 9);                            /* MMX APIC */
    const uint32_t ecx1 = (1u << 13) | (1u << 23) |                          /* CX16 POPCNT */
                          (1u << 21) | (1u << 24);              /* x2APIC TSC-deadline */
    add_leaf(out, 1, 0, 0, 0x000606a6, 0x00000800, ecx1, edx1); /* family 6; CLFLUSH 64 B */
    /* Deterministic cache parameters (leaf 4): 32 KiB 8-way L1 data and instruction caches
     * and a 1 MiB 16-way L2 per core, 64-byte lines; cpuid_shape_for_vcpu fills in the core
     * count. Then the end of the list (type 0). */
    add_leaf(out, 4, 0, CPUID_FLAG_INDEXED, 0x121, 7u << 22 | 63, 63, 0);
    add_leaf(out, 4, 1, CPUID_FLAG_INDEXED, 0x122, 7u << 22 | 63, 63, 0);
    add_leaf(out, 4, 2, CPUID_FLAG_INDEXED, 0x143, 15u << 22 | 63, 1023, 0);
    add_leaf(out, 4, 3, CPUID_FLAG_INDEXED, 0, 0, 0, 0);
    /* EDX: IBRS/IBPB (26), STIBP (27) and SSBD (31) as IA32_SPEC_CTRL / IA32_PRED_CMD bits,
     * IA32_ARCH_CAPABILITIES (29; CPU_MODEL_ARCH_CAPABILITIES on the translator). With them
     * and IBRS_ALL a guest kernel uses enhanced IBRS instead of retpolines, whose
     * return-address rewrites defeat a translator's return prediction. */
    add_leaf(out, 7, 0, CPUID_FLAG_INDEXED, 0, 0, 0,
             (1u << 26) | (1u << 27) | (1u << 29) | (1u << 31));
    /* Extended topology (leaf 0xB): the per-vCPU values come from cpuid_shape_for_vcpu. */
    for (uint32_t sub = 0; sub < 3; sub++)
        add_leaf(out, 0xb, sub, CPUID_FLAG_INDEXED, 0, 0, sub, 0);
    if (tsc_hz && apic_hz) {
        /* Leaf 0x15 (TSC = crystal * EBX / EAX; Linux also takes the crystal as the LAPIC
         * timer rate, so only equal rates can be told this way) and 0x16 (MHz) are what
         * Linux reads on Intel-vendor CPUs; 0x40000010 is the VMware/KVM timing leaf (TSC and
         * APIC bus kHz) other guests read behind a hypervisor signature. */
        if (tsc_hz == apic_hz)
            add_leaf(out, 0x15, 0, 0, 1, 1, (uint32_t)tsc_hz, 0);
        const uint32_t mhz = (uint32_t)(tsc_hz / 1000000ULL);
        add_leaf(out, 0x16, 0, 0, mhz, mhz, (uint32_t)(apic_hz / 1000000ULL), 0);
        static const char signature[12] = "quokka-tcg";
        uint32_t sig[3];
        memcpy(sig, signature, sizeof(sig));
        add_leaf(out, 0x40000000, 0, 0, 0x40000010, sig[0], sig[1], sig[2]);
        add_leaf(out, 0x40000010, 0, 0, (uint32_t)(tsc_hz / 1000ULL), (uint32_t)(apic_hz / 1000ULL),
                 0, 0);
    }
    add_leaf(out, 0x80000000, 0, 0, 0x80000008, 0, 0, 0);
    add_leaf(out, 0x80000001, 0, 0, 0, 0, (1u << 0) | (1u << 5), /* LAHF_LM ABM(LZCNT) */
             (1u << 11) | (1u << 20) | (1u << 26) | (1u << 27) |
                 (1u << 29)); /* SYSCALL NX Page1GB RDTSCP LM */
    add_string(out, 0x80000002, "quokka translator CPU", 12);
    add_leaf(out, 0x80000008, 0, 0, 0x00003028, 0, 0, 0); /* 40-bit physical, 48-bit virtual */
}

static bool accel_owned(uint32_t fn)
{
    return fn == 0x15 || fn == 0x16 || (fn >= 0x40000000 && fn <= 0x400000ff);
}

void cpu_model_for_kvm(const struct cpuid_model *model, const struct cpuid_model *supported,
                       uint32_t leaf1_ecx_extra, struct cpuid_model *out)
{
    static const struct cpuid_entry none = {0};
    out->nr = 0;
    for (uint32_t i = 0; i < model->nr; i++) {
        struct cpuid_entry e = model->entry[i];
        if (accel_owned(e.function))
            continue;
        const struct cpuid_entry *s = cpuid_find(supported, e.function, e.index);
        if (!s)
            s = &none; /* KVM does not know the leaf: none of its features */
        switch (e.function) {
        case 1:
            e.ecx &= s->ecx | leaf1_ecx_extra;
            e.edx &= s->edx;
            break;
        case 7:
            e.ebx &= s->ebx;
            e.ecx &= s->ecx;
            e.edx &= s->edx;
            break;
        case 0x80000001:
            e.ecx &= s->ecx;
            e.edx &= s->edx;
            break;
        case 0x80000008:
            if (s != &none && (s->eax & 0xff) < (e.eax & 0xff))
                e.eax = (e.eax & ~0xffu) | (s->eax & 0xff);
            break;
        default:
            break; /* identification, caches, topology, brand: the model's */
        }
        if (out->nr < CPUID_MAX_ENTRIES)
            out->entry[out->nr++] = e;
    }
    for (uint32_t i = 0; i < supported->nr; i++)
        if (accel_owned(supported->entry[i].function) && out->nr < CPUID_MAX_ENTRIES)
            out->entry[out->nr++] = supported->entry[i];
}
