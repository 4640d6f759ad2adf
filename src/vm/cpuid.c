#include "vm/cpuid.h"

#include <stddef.h>

#define CPUID_1_ECX_X2APIC (1u << 21)
#define CPUID_1_ECX_HYPERVISOR (1u << 31)
#define CPUID_1_EDX_HTT (1u << 28)

const struct cpuid_entry *cpuid_find(const struct cpuid_model *model, uint32_t function,
                                     uint32_t index)
{
    for (uint32_t i = 0; i < model->nr; i++) {
        const struct cpuid_entry *e = &model->entry[i];
        if (e->function == function && (!(e->flags & CPUID_FLAG_INDEXED) || e->index == index))
            return e;
    }
    return NULL;
}

void cpuid_shape_for_vcpu(const struct cpuid_model *supported, unsigned index, unsigned nr_vcpus,
                          struct cpuid_model *out)
{
    *out = *supported;
    for (uint32_t i = 0; i < out->nr; i++) {
        struct cpuid_entry *e = &out->entry[i];
        switch (e->function) {
        case 1:
            /* Initial APIC ID and logical processor count; tell the guest it is virtual. */
            e->ebx = (e->ebx & 0x0000ffffu) | ((nr_vcpus & 0xffu) << 16) | ((index & 0xffu) << 24);
            e->ecx |= CPUID_1_ECX_HYPERVISOR;
            if (nr_vcpus > 1)
                e->edx |= CPUID_1_EDX_HTT;
            break;
        case 4:
            /* One core per package per vCPU count: cores-per-package minus one in 31:26. */
            e->eax = (e->eax & 0x03ffffffu) | (((nr_vcpus - 1) & 0x3fu) << 26);
            break;
        case 0xb:
        case 0x1f:
            /* x2APIC topology: flat, every vCPU a core at level 1. */
            e->edx = index;
            if (e->index == 0) {
                e->eax = 0;
                e->ebx = 1;
                e->ecx = (1u << 8) | 0;
            } else if (e->index == 1) {
                unsigned shift = 0;
                while ((1u << shift) < nr_vcpus && shift < 31)
                    shift++;
                e->eax = shift;
                e->ebx = nr_vcpus;
                e->ecx = (2u << 8) | 1;
            } else {
                e->eax = e->ebx = 0;
                e->ecx = e->index;
            }
            break;
        default:
            break;
        }
    }
}
