/* quokka's one CPU model (issue 12): the same vendor, family, feature bits, cache and
 * topology leaves and model-defined MSR values on the translator and on KVM, so a guest (and
 * a snapshot) sees one CPU whatever runs it. */
#ifndef QUOKKA_VM_CPU_MODEL_H
#define QUOKKA_VM_CPU_MODEL_H

#include "vm/cpu_state.h"

#include <stdint.h>

/* The model's CPUID leaves: a "GenuineIntel" family-6 CPU with what the translator
 * implements. tsc_hz / apic_hz: the rates the accelerator's TSC and LAPIC timer count at, told
 * in leaves 0x15, 0x16 and the 0x40000000 timing leaves; 0: not known here, those leaves left
 * out (the accelerator gives its own). */
void cpu_model_cpuid(struct cpuid_model *out, uint64_t tsc_hz, uint64_t apic_hz);

/* IA32_ARCH_CAPABILITIES (0x10A) as the translator reports it: not affected by Meltdown
 * (RDCL_NO), speculative store bypass, MDS, machine checks on page-size changes, TAA, the
 * MMIO stale-data family (SBDR_SSDP_NO, FBSDP_NO, PSDP_NO), branch history injection,
 * post-barrier RSB predictions, GDS, RFDS or ITS (and IBRS_ALL: enhanced IBRS, IA32_SPEC_CTRL.IBRS
 * set once): a software CPU does not speculate, and its MMU
 * checks every access before making it. So a guest kernel needs no page-table isolation
 * (no CR3 switch on every kernel entry) and no buffer clearing (VERW) on every return. On
 * KVM the kernel's own value (the host's, filtered) is what the guest reads. */
#define CPU_MODEL_ARCH_CAPABILITIES                                                                \
    ((1ull << 0) | (1ull << 1) | (1ull << 62) | (1ull << 4) | (1ull << 5) | (1ull << 6) |          \
     (1ull << 8) | (1ull << 13) | (1ull << 14) | (1ull << 15) | (1ull << 20) | (1ull << 24) |      \
     (1ull << 26) | (1ull << 27))

/* MSRs whose values the model defines (IA32_MCG_CAP: MCA without banks, MISC_ENABLE, ...):
 * each vCPU starts with them. */
struct cpu_model_msr {
    uint32_t index;
    uint64_t value;
};
extern const struct cpu_model_msr cpu_model_msrs[];
extern const unsigned cpu_model_nr_msrs;

/* The model as KVM can run it, from KVM_GET_SUPPORTED_CPUID's table (`supported`):
 * - feature bits (leaves 1, 7.0, 0x80000001) are the model's ANDed with KVM's, so nothing
 *   KVM cannot do is advertised; leaf1_ecx_extra are leaf-1 ECX bits KVM supports without
 *   listing them (the TSC-deadline timer: KVM_CAP_TSC_DEADLINE_TIMER);
 * - identification, cache and topology leaves (vendor, family/model, brand, 4, 0xB) are the
 *   model's; the physical address width is the smaller of the two;
 * - timing leaves (0x15, 0x16) and the hypervisor range (0x40000000-0x400000FF) are KVM's:
 *   they describe its TSC and paravirtual interface, not the translator's.
 * A pure function (unit-tested without /dev/kvm). */
void cpu_model_for_kvm(const struct cpuid_model *model, const struct cpuid_model *supported,
                       uint32_t leaf1_ecx_extra, struct cpuid_model *out);

#endif
