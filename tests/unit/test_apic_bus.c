/* Unit tests: the APIC bus (accel/tcg/apic_bus.c) between four local APICs (lapic.c) with a
 * fake clock: IPIs through the ICR (xAPIC MMIO and x2APIC MSR) to physical, logical flat,
 * logical cluster and x2APIC cluster destinations, broadcasts, the three shorthands,
 * lowest-priority arbitration, NMI/INIT/SIPI, IOAPIC messages, disabled APICs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "accel/tcg/apic_bus.h"

#include <stdlib.h>

#define N 4
/* APIC IDs: two in x2APIC cluster 0, two in cluster 1 (x2APIC cluster = ID >> 4). */
static const uint32_t ids[N] = {0, 1, 16, 17};

#define ICR 0x300
#define ICR_HI 0x310
#define TPR 0x80
#define LDR 0xd0
#define DFR 0xe0
#define SVR 0xf0
#define IRR 0x200
#define X2_ICR 0x830
#define X2_SVR 0x80f
#define X2_TPR 0x808
#define X2APIC_ON (0xfee00000ULL | (1u << 11) | (1u << 10))

#define DM(mode) ((uint32_t)(mode) << 8)
#define LOGICAL (1u << 11)
#define ASSERT (1u << 14)
#define LEVEL (1u << 15)
#define SH(s) ((uint32_t)(s) << 18)

struct bus_fixture;

struct node {
    struct lapic l;
    struct bus_fixture *bus;
    unsigned index, kicks;
};

struct bus_fixture {
    struct node node[N];
    struct lapic *apics[N];
};

static uint64_t fx_clock(void *ctx)
{
    (void)ctx;
    return 1000;
}

static void fx_kick(void *ctx)
{
    ((struct node *)ctx)->kicks++;
}

static void fx_send(void *ctx, const struct apic_msg *msg, enum lapic_shorthand sh)
{
    struct node *n = ctx;
    apic_bus_route(n->bus->apics, N, (int)n->index, msg, sh);
}

static int setup(void **state)
{
    struct bus_fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    for (unsigned i = 0; i < N; i++) {
        struct node *n = &f->node[i];
        n->bus = f;
        n->index = i;
        const struct lapic_ops ops = {fx_clock, NULL, fx_kick, fx_send, n};
        assert_int_equal(lapic_init(&n->l, ids[i], i == 0, &ops), 0);
        f->apics[i] = &n->l;
        lapic_mmio_write(&n->l, SVR, 4, 0x1ff); /* software-enabled */
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct bus_fixture *f = *state;
    for (unsigned i = 0; i < N; i++)
        lapic_destroy(&f->node[i].l);
    free(f);
    return 0;
}

static struct lapic *apic(struct bus_fixture *f, unsigned i)
{
    return &f->node[i].l;
}

static void wr(struct lapic *l, unsigned off, uint32_t v)
{
    lapic_mmio_write(l, off, 4, v);
}

/* xAPIC ICR write: destination (8 bits) then the low half, which sends. */
static void ipi(struct lapic *from, uint8_t dest, uint32_t lo)
{
    wr(from, ICR_HI, (uint32_t)dest << 24);
    wr(from, ICR, lo);
}

static bool irr_has(struct lapic *l, unsigned v)
{
    return (lapic_mmio_read(l, IRR + (v / 32) * 16, 4) >> (v % 32)) & 1u;
}

static bool x2_irr_has(struct lapic *l, unsigned v)
{
    uint64_t r = 0;
    assert_true(lapic_msr_read(l, 0x820 + v / 32, &r));
    return (r >> (v % 32)) & 1u;
}

/* Bit i set: APIC i has vector v pending; then the vector is acknowledged and retired so the
 * next check starts clean. */
static unsigned who_got(struct bus_fixture *f, unsigned v)
{
    unsigned mask = 0;
    for (unsigned i = 0; i < N; i++) {
        struct lapic *l = apic(f, i);
        bool x2 = (lapic_get_base(l) & (1u << 10)) != 0;
        if (x2 ? x2_irr_has(l, v) : irr_has(l, v)) {
            mask |= 1u << i;
            assert_int_equal(lapic_ack(l), (int)v);
            if (x2)
                assert_true(lapic_msr_write(l, 0x80b, 0));
            else
                wr(l, 0xb0, 0);
        }
    }
    return mask;
}

static unsigned who_got_nmi(struct bus_fixture *f)
{
    unsigned mask = 0;
    for (unsigned i = 0; i < N; i++)
        if (lapic_take_nmi(apic(f, i)))
            mask |= 1u << i;
    return mask;
}

static void test_bus_physical(void **state)
{
    struct bus_fixture *f = *state;
    ipi(apic(f, 0), 16, 0x40); /* fixed, physical: the APIC with ID 16 */
    assert_int_equal(who_got(f, 0x40), 1u << 2);
    assert_int_equal(f->node[2].kicks, 1);
    assert_int_equal(f->node[0].kicks, 0);
    ipi(apic(f, 3), 0, 0x41); /* an AP to the BSP */
    assert_int_equal(who_got(f, 0x41), 1u << 0);
    ipi(apic(f, 1), 0xff, 0x42); /* broadcast: everyone, the sender too */
    assert_int_equal(who_got(f, 0x42), 0xf);
    ipi(apic(f, 1), 5, 0x43); /* nobody has ID 5 */
    assert_int_equal(who_got(f, 0x43), 0);
    /* The delivery status bit reads idle: delivery is instantaneous. */
    assert_int_equal(lapic_mmio_read(apic(f, 1), ICR, 4) & (1u << 12), 0);
    /* A changed xAPIC ID is what physical destinations compare with. */
    wr(apic(f, 3), 0x20, 0x22u << 24);
    ipi(apic(f, 0), 0x22, 0x44);
    assert_int_equal(who_got(f, 0x44), 1u << 3);
    ipi(apic(f, 0), 17, 0x44);
    assert_int_equal(who_got(f, 0x44), 0);
}

static void test_bus_logical_flat_and_cluster(void **state)
{
    struct bus_fixture *f = *state;
    /* Flat: one LDR bit per APIC. */
    for (unsigned i = 0; i < N; i++)
        wr(apic(f, i), LDR, (1u << i) << 24);
    ipi(apic(f, 0), 0x06, LOGICAL | 0x50);
    assert_int_equal(who_got(f, 0x50), 0x6);
    ipi(apic(f, 0), 0x09, LOGICAL | 0x51);
    assert_int_equal(who_got(f, 0x51), 0x9);
    ipi(apic(f, 0), 0xf0, LOGICAL | 0x52);
    assert_int_equal(who_got(f, 0x52), 0);
    ipi(apic(f, 2), 0xff, LOGICAL | 0x53); /* logical broadcast */
    assert_int_equal(who_got(f, 0x53), 0xf);
    /* Cluster: cluster 1 = APICs 0, 1 (members 1, 2); cluster 2 = APICs 2, 3 (1, 2). */
    static const uint32_t cluster_ldr[N] = {0x11, 0x12, 0x21, 0x22};
    for (unsigned i = 0; i < N; i++) {
        wr(apic(f, i), DFR, 0x0fffffff);
        wr(apic(f, i), LDR, cluster_ldr[i] << 24);
    }
    ipi(apic(f, 0), 0x23, LOGICAL | 0x54);
    assert_int_equal(who_got(f, 0x54), 0xc);
    ipi(apic(f, 0), 0x12, LOGICAL | 0x55);
    assert_int_equal(who_got(f, 0x55), 0x2);
    ipi(apic(f, 0), 0xf1, LOGICAL | 0x56); /* member 1 of every cluster */
    assert_int_equal(who_got(f, 0x56), 0x5);
    ipi(apic(f, 0), 0x34, LOGICAL | 0x57); /* no such cluster */
    assert_int_equal(who_got(f, 0x57), 0);
}

static void test_bus_x2apic(void **state)
{
    struct bus_fixture *f = *state;
    for (unsigned i = 0; i < N; i++) {
        assert_true(lapic_set_base(apic(f, i), X2APIC_ON));
        assert_true(lapic_msr_write(apic(f, i), X2_SVR, 0x1ff));
    }
    /* Physical: 32-bit destinations in ICR[63:32]. */
    assert_true(lapic_msr_write(apic(f, 0), X2_ICR, (17ULL << 32) | 0x60));
    assert_int_equal(who_got(f, 0x60), 1u << 3);
    assert_true(lapic_msr_write(apic(f, 0), X2_ICR, (0xffULL << 32) | 0x61));
    assert_int_equal(who_got(f, 0x61), 0); /* 0xff is an ID in x2APIC mode */
    assert_true(lapic_msr_write(apic(f, 3), X2_ICR, (0xffffffffULL << 32) | 0x62));
    assert_int_equal(who_got(f, 0x62), 0xf);
    /* Cluster: cluster in bits 31:16, member bitmap in 15:0 (LDR from the ID). */
    assert_true(lapic_msr_write(apic(f, 0), X2_ICR, (0x10003ULL << 32) | LOGICAL | 0x63));
    assert_int_equal(who_got(f, 0x63), 0xc);
    assert_true(lapic_msr_write(apic(f, 0), X2_ICR, (0x00002ULL << 32) | LOGICAL | 0x64));
    assert_int_equal(who_got(f, 0x64), 0x2);
    assert_true(lapic_msr_write(apic(f, 0), X2_ICR, (0x20003ULL << 32) | LOGICAL | 0x65));
    assert_int_equal(who_got(f, 0x65), 0);
    /* An xAPIC sender reaches x2APIC APICs by their IDs too (mixed modes). */
    assert_true(lapic_set_base(apic(f, 1), 0xfee00000ULL));
    assert_true(lapic_set_base(apic(f, 1), 0xfee00000ULL | (1u << 11)));
    wr(apic(f, 1), SVR, 0x1ff);
    ipi(apic(f, 1), 16, 0x66);
    assert_int_equal(who_got(f, 0x66), 1u << 2);
}

static void test_bus_shorthands(void **state)
{
    struct bus_fixture *f = *state;
    ipi(apic(f, 2), 0, SH(LAPIC_SH_SELF) | 0x70);
    assert_int_equal(who_got(f, 0x70), 1u << 2);
    ipi(apic(f, 2), 0, SH(LAPIC_SH_ALL) | 0x71);
    assert_int_equal(who_got(f, 0x71), 0xf);
    ipi(apic(f, 2), 0, SH(LAPIC_SH_OTHERS) | 0x72);
    assert_int_equal(who_got(f, 0x72), 0xb);
    /* Shorthands ignore the destination field. */
    ipi(apic(f, 1), 0, SH(LAPIC_SH_OTHERS) | LOGICAL | 0x73);
    assert_int_equal(who_got(f, 0x73), 0xd);
    /* x2APIC sender, all excluding self. */
    assert_true(lapic_set_base(apic(f, 3), X2APIC_ON));
    assert_true(lapic_msr_write(apic(f, 3), X2_SVR, 0x1ff));
    assert_true(lapic_msr_write(apic(f, 3), X2_ICR, SH(LAPIC_SH_OTHERS) | 0x74));
    assert_int_equal(who_got(f, 0x74), 0x7);
    /* Illegal vectors are not sent (send-illegal-vector error). */
    ipi(apic(f, 0), 0, SH(LAPIC_SH_OTHERS) | 0x0f);
    for (unsigned i = 0; i < N; i++)
        assert_false(lapic_has_interrupt(apic(f, i)));
    wr(apic(f, 0), 0x280, 0);
    assert_int_equal(lapic_mmio_read(apic(f, 0), 0x280, 4), 0x20);
}

static void test_bus_lowest_priority(void **state)
{
    struct bus_fixture *f = *state;
    static const uint32_t tpr[N] = {0x20, 0x10, 0x30, 0x1f};
    for (unsigned i = 0; i < N; i++)
        wr(apic(f, i), TPR, tpr[i]);
    /* APICs 1 and 3 tie in class 1: vector mod 2 picks among them, in index order. */
    ipi(apic(f, 0), 0xff, DM(APIC_DM_LOWEST) | 0x80);
    assert_int_equal(who_got(f, 0x80), 1u << 1);
    ipi(apic(f, 0), 0xff, DM(APIC_DM_LOWEST) | 0x81);
    assert_int_equal(who_got(f, 0x81), 1u << 3);
    /* Only among the destinations: APICs 0 and 2 -> 0 (class 2 < 3). */
    for (unsigned i = 0; i < N; i++)
        wr(apic(f, i), LDR, (1u << i) << 24);
    ipi(apic(f, 1), 0x05, LOGICAL | DM(APIC_DM_LOWEST) | 0x82);
    assert_int_equal(who_got(f, 0x82), 1u << 0);
    /* An interrupt in service raises the priority (PPR): APIC 1 now class 9. */
    ipi(apic(f, 0), 1, 0x90);
    assert_int_equal(lapic_ack(apic(f, 1)), 0x90);
    ipi(apic(f, 0), 0xff, DM(APIC_DM_LOWEST) | 0x83); /* only APIC 3 in class 1 now */
    assert_int_equal(who_got(f, 0x83), 1u << 3);
    wr(apic(f, 1), 0xb0, 0);
    /* A software-disabled APIC does not take part, whatever its priority. */
    wr(apic(f, 3), TPR, 0);
    wr(apic(f, 3), SVR, 0xff);
    ipi(apic(f, 0), 0xff, DM(APIC_DM_LOWEST) | 0x84);
    assert_int_equal(who_got(f, 0x84), 1u << 1);
    /* Shorthand all-excluding-self with lowest priority: one of the others. */
    ipi(apic(f, 1), 0, SH(LAPIC_SH_OTHERS) | DM(APIC_DM_LOWEST) | 0x85);
    assert_int_equal(who_got(f, 0x85), 1u << 0);
    /* IOAPIC messages (no sender) are arbitrated the same way. */
    struct apic_msg m = {.dest = 0xff, .vector = 0x86, .delivery_mode = APIC_DM_LOWEST};
    apic_bus_route(f->apics, N, -1, &m, LAPIC_SH_NONE);
    assert_int_equal(who_got(f, 0x86), 1u << 1);
    m = (struct apic_msg){
        .dest = 0x0c, .vector = 0x87, .delivery_mode = APIC_DM_LOWEST, .dest_logical = true};
    apic_bus_route(f->apics, N, -1, &m, LAPIC_SH_NONE);
    assert_int_equal(who_got(f, 0x87), 1u << 2); /* APIC 3 is disabled */
    /* Nobody enabled among the destinations: dropped. */
    m.dest = 0x08;
    apic_bus_route(f->apics, N, -1, &m, LAPIC_SH_NONE);
    assert_int_equal(who_got(f, 0x87), 0);
    assert_int_equal(apic_bus_lowest(f->apics, N, 0, 0x40), -1);
    assert_int_equal(apic_bus_lowest(f->apics, N, 1u << 3, 0x40), -1);
}

static void test_bus_nmi_init_sipi(void **state)
{
    struct bus_fixture *f = *state;
    ipi(apic(f, 0), 16, DM(APIC_DM_NMI));
    assert_int_equal(who_got_nmi(f), 1u << 2);
    ipi(apic(f, 3), 0, SH(LAPIC_SH_OTHERS) | DM(APIC_DM_NMI));
    assert_int_equal(who_got_nmi(f), 0x7);
    /* Software-disabled APICs take NMI, INIT and SIPI (SDM 11.4.7.2). */
    wr(apic(f, 1), SVR, 0xff);
    /* INIT / SIPI / SIPI to all but self, the usual AP start-up. */
    ipi(apic(f, 0), 0, SH(LAPIC_SH_OTHERS) | DM(APIC_DM_INIT) | LEVEL | ASSERT);
    ipi(apic(f, 0), 0, SH(LAPIC_SH_OTHERS) | DM(APIC_DM_INIT) | LEVEL); /* de-assert */
    for (unsigned i = 1; i < N; i++)
        assert_int_equal(atomic_load(&apic(f, i)->startup), LAPIC_STARTUP_INIT);
    assert_false(lapic_startup_pending(apic(f, 0)));
    ipi(apic(f, 0), 0, SH(LAPIC_SH_OTHERS) | DM(APIC_DM_STARTUP) | 0x12);
    ipi(apic(f, 0), 0, SH(LAPIC_SH_OTHERS) | DM(APIC_DM_STARTUP) | 0x13);
    /* Only the first SIPI counts (the second finds the CPU started). */
    assert_int_equal(lapic_take_startup(apic(f, 1)),
                     LAPIC_STARTUP_INIT | LAPIC_STARTUP_SIPI | 0x12);
    assert_false(lapic_startup_pending(apic(f, 1)));
    /* An INIT drops the SIPIs before it. */
    ipi(apic(f, 0), 16, DM(APIC_DM_INIT) | ASSERT);
    assert_int_equal(lapic_take_startup(apic(f, 2)), LAPIC_STARTUP_INIT);
    /* Per ID: only APIC 3. */
    assert_int_equal(lapic_take_startup(apic(f, 3)),
                     LAPIC_STARTUP_INIT | LAPIC_STARTUP_SIPI | 0x12);
    ipi(apic(f, 0), 17, DM(APIC_DM_STARTUP) | 0x9a);
    assert_int_equal(lapic_take_startup(apic(f, 3)), LAPIC_STARTUP_SIPI | 0x9a);
    for (unsigned i = 0; i < N; i++)
        assert_false(lapic_startup_pending(apic(f, i)));
    /* SMI is not modelled; start-up messages never touch IRR. */
    ipi(apic(f, 0), 0xff, DM(APIC_DM_SMI) | 0x40);
    for (unsigned i = 0; i < N; i++) {
        assert_false(lapic_startup_pending(apic(f, i)));
        assert_false(lapic_nmi_pending(apic(f, i)));
        assert_false(lapic_has_interrupt(apic(f, i)));
    }
    /* x2APIC: INIT through the 64-bit ICR to one ID. */
    assert_true(lapic_set_base(apic(f, 0), X2APIC_ON));
    assert_true(lapic_msr_write(apic(f, 0), X2_ICR, (1ULL << 32) | DM(APIC_DM_INIT) | ASSERT));
    assert_int_equal(lapic_take_startup(apic(f, 1)), LAPIC_STARTUP_INIT);
}

static void test_bus_init_reset_and_disabled(void **state)
{
    struct bus_fixture *f = *state;
    /* INIT reset: registers back to power-up, ID and base (x2APIC mode) kept. */
    struct lapic *l = apic(f, 2);
    assert_true(lapic_set_base(l, X2APIC_ON));
    assert_true(lapic_msr_write(l, X2_TPR, 0x40));
    ipi(apic(f, 0), 16, DM(APIC_DM_NMI));
    assert_true(lapic_nmi_pending(l));
    lapic_init_reset(l);
    uint64_t v = 0;
    assert_int_equal(lapic_get_base(l), X2APIC_ON);
    assert_true(lapic_msr_read(l, 0x802, &v));
    assert_int_equal(v, 16);
    assert_true(lapic_msr_read(l, 0x80d, &v));
    assert_int_equal(v, 0x10001); /* x2APIC LDR: cluster 1, member 0 */
    assert_true(lapic_msr_read(l, X2_TPR, &v));
    assert_int_equal(v, 0);
    assert_true(lapic_msr_read(l, X2_SVR, &v));
    assert_int_equal(v, 0xff); /* software-disabled */
    assert_false(lapic_nmi_pending(l));
    /* The BSP keeps LINT0 in ExtINT mode (virtual wire) across INIT. */
    wr(apic(f, 0), 0x350, 1u << 16);
    lapic_init_reset(apic(f, 0));
    assert_int_equal(lapic_mmio_read(apic(f, 0), 0x350, 4), 0x700);
    assert_int_equal(lapic_mmio_read(apic(f, 1), 0x350, 4), 1u << 16);
    /* A globally disabled APIC is off the bus: no fixed, NMI, INIT or SIPI. */
    assert_true(lapic_set_base(apic(f, 3), 0xfee00000ULL));
    ipi(apic(f, 0), 0xff, 0x40);
    ipi(apic(f, 0), 0xff, DM(APIC_DM_NMI));
    ipi(apic(f, 0), 0, SH(LAPIC_SH_OTHERS) | DM(APIC_DM_INIT) | ASSERT);
    ipi(apic(f, 0), 0, SH(LAPIC_SH_ALL) | 0x41);
    assert_false(lapic_nmi_pending(apic(f, 3)));
    assert_false(lapic_startup_pending(apic(f, 3)));
    assert_false(lapic_has_interrupt(apic(f, 3)));
    assert_true(lapic_nmi_pending(apic(f, 1)));
    assert_true(lapic_startup_pending(apic(f, 1)));
}

/* Absent CPUs (NULL) and more APICs than the bus holds are skipped, not dereferenced. */
static void test_bus_absent(void **state)
{
    struct bus_fixture *f = *state;
    struct lapic *sparse[APIC_BUS_MAX + 8] = {0};
    sparse[1] = apic(f, 1);
    sparse[APIC_BUS_MAX + 2] = apic(f, 2);
    struct apic_msg m = {.dest = 0xff, .vector = 0x40};
    apic_bus_route(sparse, APIC_BUS_MAX + 8, -1, &m, LAPIC_SH_NONE);
    assert_int_equal(who_got(f, 0x40), 1u << 1);
    m.delivery_mode = APIC_DM_LOWEST, m.vector = 0x41;
    apic_bus_route(sparse, APIC_BUS_MAX + 8, 0, &m, LAPIC_SH_OTHERS);
    assert_int_equal(who_got(f, 0x41), 1u << 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_bus_physical, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bus_logical_flat_and_cluster, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bus_x2apic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bus_shorthands, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bus_lowest_priority, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bus_nmi_init_sipi, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bus_init_reset_and_disabled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bus_absent, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
