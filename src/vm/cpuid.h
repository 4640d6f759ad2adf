/* quokka's CPUID model: what the accelerator supports, shaped per vCPU (APIC IDs, topology,
 * hypervisor bit). */
#ifndef QUOKKA_VM_CPUID_H
#define QUOKKA_VM_CPUID_H

#include "vm/cpu_state.h"

void cpuid_shape_for_vcpu(const struct cpuid_model *supported, unsigned index, unsigned nr_vcpus,
                          struct cpuid_model *out);
const struct cpuid_entry *cpuid_find(const struct cpuid_model *model, uint32_t function,
                                     uint32_t index);

#endif
