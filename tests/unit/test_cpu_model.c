/* The CPU model (vm/cpu_model.c) and the table KVM gets from it: the model with a fake
 * KVM_GET_SUPPORTED_CPUID table gives exactly the expected KVM_SET_CPUID2 table. (No
 * /dev/kvm needed: cpu_model_for_kvm is a pure function.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "vm/cpu_model.h"
#include "vm/cpuid.h"

static void add(struct cpuid_model *m, uint32_t fn, uint32_t idx, uint32_t flags, uint32_t a,
                uint32_t b, uint32_t c, uint32_t d)
{
    m->entry[m->nr++] = (struct cpuid_entry){fn, idx, flags, a, b, c, d};
}

static const struct cpuid_entry *leaf(const struct cpuid_model *m, uint32_t fn, uint32_t idx)
{
    const struct cpuid_entry *e = cpuid_find(m, fn, idx);
    assert_non_null(e);
    return e;
}

/* A host KVM on an AMD CPU: other vendor and family, AVX and more that the model lacks, no
 * x2APIC, POPCNT or 1 GiB pages, 39 physical address bits, its own hypervisor leaves. */
static void fake_kvm(struct cpuid_model *s)
{
    s->nr = 0;
    add(s, 0, 0, 0, 0x10, 0x68747541, 0x444d4163, 0x69746e65); /* "AuthenticAMD" */
    add(s, 1, 0, 0, 0x00a20f10, 0x00010800, 0xf6d83203u & ~((1u << 21) | (1u << 23)), 0x178bfbff);
    add(s, 7, 0, CPUID_FLAG_INDEXED, 0, 0x219c91a9, 0x0040069c, 0);
    add(s, 0xd, 0, CPUID_FLAG_INDEXED, 7, 0x340, 0x340, 0);
    add(s, 0x15, 0, 0, 2, 84, 24000000, 0);
    add(s, 0x40000000, 0, 0, 0x40000001, 0x4b4d564b, 0x564b4d56, 0x4d); /* KVMKVMKVM */
    add(s, 0x40000001, 0, 0, 0x01007afb, 0, 0, 0);
    add(s, 0x80000000, 0, 0, 0x80000021, 0, 0, 0);
    add(s, 0x80000001, 0, 0, 0, 0, 0x75c237ff, 0x2fd3fbff & ~(1u << 26));
    add(s, 0x80000008, 0, 0, 0x00003027, 0, 0, 0);
}

static void test_model_is_the_translators(void **state)
{
    (void)state;
    struct cpuid_model m;
    cpu_model_cpuid(&m, 1000000000ULL, 1000000000ULL);
    const struct cpuid_entry *v = leaf(&m, 0, 0);
    assert_memory_equal(&v->ebx, "Genu", 4);
    assert_int_equal(leaf(&m, 1, 0)->eax, 0x000606a6);
    assert_int_equal(leaf(&m, 0x15, 0)->ecx, 1000000000u);
    assert_int_equal(leaf(&m, 0x40000010, 0)->eax, 1000000u);
    /* Without the rates (KVM), no timing leaves. */
    cpu_model_cpuid(&m, 0, 0);
    assert_null(cpuid_find(&m, 0x15, 0));
    assert_null(cpuid_find(&m, 0x40000000, 0));
    assert_non_null(cpuid_find(&m, 0xb, 1));
}

static void test_kvm_table(void **state)
{
    (void)state;
    struct cpuid_model model, kvm, out;
    cpu_model_cpuid(&model, 0, 0);
    fake_kvm(&kvm);
    cpu_model_for_kvm(&model, &kvm, 1u << 24, &out);

    /* Identification: the model's vendor and family, not the host's. */
    const struct cpuid_entry *l0 = leaf(&out, 0, 0);
    assert_int_equal(l0->eax, 0x16);
    assert_int_equal(l0->ebx, 0x756e6547);
    assert_int_equal(l0->edx, 0x49656e69);
    assert_int_equal(l0->ecx, 0x6c65746e);
    const struct cpuid_entry *l1 = leaf(&out, 1, 0), *m1 = leaf(&model, 1, 0);
    assert_int_equal(l1->eax, 0x000606a6);
    /* Features: the model's that KVM has; x2APIC and POPCNT gone, TSC-deadline (a KVM
     * capability, not in its table) kept, nothing of the host's AVX. */
    assert_int_equal(l1->ecx, (1u << 13) | (1u << 24));
    assert_int_equal(l1->edx, m1->edx & 0x178bfbff);
    assert_int_equal(l1->edx, m1->edx); /* the host has every model EDX bit */
    const struct cpuid_entry *e1 = leaf(&out, 0x80000001, 0);
    assert_int_equal(e1->edx, (1u << 11) | (1u << 20) | (1u << 27) | (1u << 29)); /* no 1G */
    assert_int_equal(e1->ecx, (1u << 0) | (1u << 5));
    assert_int_equal(leaf(&out, 7, 0)->ebx, 0);
    /* The smaller physical address width. */
    assert_int_equal(leaf(&out, 0x80000008, 0)->eax, 0x00003027);
    /* Caches, topology and brand: the model's. */
    assert_memory_equal(leaf(&out, 4, 2), leaf(&model, 4, 2), sizeof(struct cpuid_entry));
    assert_memory_equal(leaf(&out, 0xb, 1), leaf(&model, 0xb, 1), sizeof(struct cpuid_entry));
    assert_memory_equal(leaf(&out, 0x80000002, 0), leaf(&model, 0x80000002, 0),
                        sizeof(struct cpuid_entry));
    /* Timing and hypervisor leaves: KVM's. */
    assert_memory_equal(leaf(&out, 0x15, 0), leaf(&kvm, 0x15, 0), sizeof(struct cpuid_entry));
    assert_memory_equal(leaf(&out, 0x40000000, 0), leaf(&kvm, 0x40000000, 0),
                        sizeof(struct cpuid_entry));
    assert_non_null(cpuid_find(&out, 0x40000001, 0));
    /* Leaves neither has stay out (0xd: KVM's, the model has no XSAVE). */
    assert_null(cpuid_find(&out, 0xd, 0));
    /* Exactly the model's leaves plus KVM's three. */
    assert_int_equal(out.nr, model.nr + 3);
    /* Per-vCPU shaping works on the result as on the translator's. */
    struct cpuid_model shaped;
    cpuid_shape_for_vcpu(&out, 1, 2, &shaped);
    assert_int_equal(leaf(&shaped, 1, 0)->ebx >> 24, 1);
    assert_int_equal(leaf(&shaped, 0xb, 0)->edx, 1);
}

/* Whatever KVM supports, no feature bit beyond it (but the capability bit) is advertised. */
static void test_nothing_unsupported(void **state)
{
    (void)state;
    struct cpuid_model model, kvm, out;
    cpu_model_cpuid(&model, 0, 0);
    uint32_t x = 0x12345678;
    for (int round = 0; round < 200; round++) {
        fake_kvm(&kvm);
        for (uint32_t i = 0; i < kvm.nr; i++) {
            x ^= x << 13, x ^= x >> 17, x ^= x << 5;
            kvm.entry[i].ecx &= x;
            x ^= x << 13, x ^= x >> 17, x ^= x << 5;
            kvm.entry[i].edx &= x;
        }
        cpu_model_for_kvm(&model, &kvm, 0, &out);
        static const uint32_t fns[] = {1, 7, 0x80000001};
        for (unsigned f = 0; f < 3; f++) {
            const struct cpuid_entry *o = leaf(&out, fns[f], 0);
            const struct cpuid_entry *s = cpuid_find(&kvm, fns[f], 0);
            assert_int_equal(o->ecx & ~s->ecx, 0);
            assert_int_equal(o->edx & ~s->edx, 0);
        }
    }
    /* A KVM listing nothing: no features at all, identification still the model's. */
    kvm.nr = 0;
    cpu_model_for_kvm(&model, &kvm, 0, &out);
    assert_int_equal(leaf(&out, 1, 0)->edx, 0);
    assert_int_equal(leaf(&out, 0, 0)->ebx, 0x756e6547);
}

static void test_model_msrs(void **state)
{
    (void)state;
    bool mcg = false;
    for (unsigned i = 0; i < cpu_model_nr_msrs; i++)
        if (cpu_model_msrs[i].index == 0x179) {
            mcg = true;
            assert_int_equal(cpu_model_msrs[i].value, 0); /* MCA without banks */
        }
    assert_true(mcg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model_is_the_translators),
        cmocka_unit_test(test_kvm_table),
        cmocka_unit_test(test_nothing_unsupported),
        cmocka_unit_test(test_model_msrs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
