/* Unit tests: INIT and SIPI on the translator's vCPUs (accel/tcg/smp.c) through tcg_accel_ops
 * with two vCPUs: the application processor waits for its SIPI without running and still
 * stops when kicked, INIT + SIPI start it in real mode at VV00:0000, a SIPI outside
 * wait-for-SIPI is ignored, INIT to a running AP or to the BSP, and the wait-for-SIPI state
 * in vCPU snapshots (also from files written before it existed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "accel/accel.h"
#include "accel/tcg/tcg_internal.h"
#include "vm/bus.h"
#include "vm/memory.h"
#include "vm/snapshot.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RAM_SIZE (16ULL << 20)
#define PORT_REPORT 0xe0
#define ICR 0x300
#define ICR_HI 0x310
#define INIT_ASSERT ((5u << 8) | (1u << 14))
#define STARTUP(vv) ((6u << 8) | (vv))

struct fx {
    struct guest_memory mem;
    struct bus pio, mmio;
    struct accel_vm *vm;
    struct accel_vcpu *vcpu[2];
    _Atomic uint32_t report; /* last word the AP wrote to PORT_REPORT */
    atomic_bool returned;
    struct accel_exit exit;
};

static uint64_t port_read(void *opaque, uint64_t offset, unsigned size)
{
    (void)opaque, (void)offset, (void)size;
    return 0;
}

static void port_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
    (void)offset, (void)size;
    struct fx *f = opaque;
    atomic_store(&f->report, (uint32_t)value);
    tcg_accel_ops.kick(f->vcpu[1]); /* the code halts next: run() returns STOPPED */
}

static const struct bus_device_ops port_ops = {port_read, port_write};

/* Real-mode code at vv << 12: "mov ax, cs; add ax, tag; out PORT_REPORT, ax; hlt". */
static void put_code(struct fx *f, uint8_t vv, uint8_t tag)
{
    const uint8_t code[] = {0x8c, 0xc8, 0x05, tag, 0x00, 0xe7, PORT_REPORT, 0xf4};
    assert_int_equal(guest_write(&f->mem, (uint64_t)vv << 12, code, sizeof(code)), 0);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    char err[200];
    assert_non_null(f);
    assert_int_equal(guest_memory_init(&f->mem, RAM_SIZE, err, sizeof(err)), 0);
    bus_init(&f->pio, "pio", 0x10000);
    bus_init(&f->mmio, "mmio", 0);
    assert_int_equal(bus_register(&f->pio, PORT_REPORT, 2, &port_ops, f, "test", err, sizeof(err)),
                     0);
    struct accel_vm_config cfg = {.mem = &f->mem, .pio = &f->pio, .mmio = &f->mmio, .nr_vcpus = 2};
    assert_int_equal(tcg_accel_ops.vm_create(&cfg, &f->vm, err, sizeof(err)), 0);
    for (unsigned i = 0; i < 2; i++) {
        assert_int_equal(tcg_accel_ops.vcpu_create(f->vm, i, &f->vcpu[i], err, sizeof(err)), 0);
        assert_int_equal(tcg_accel_ops.vcpu_thread_init(f->vcpu[i]), 0);
    }
    put_code(f, 0x09, 1);
    put_code(f, 0x0a, 2);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    for (unsigned i = 0; i < 2; i++)
        tcg_accel_ops.vcpu_destroy(f->vcpu[i]);
    tcg_accel_ops.vm_destroy(f->vm);
    bus_destroy(&f->pio);
    bus_destroy(&f->mmio);
    guest_memory_destroy(&f->mem);
    free(f);
    return 0;
}

/* The BSP's ICR (as if vCPU 0 ran the write): destination APIC ID, then the low half. */
static void bsp_ipi(struct fx *f, uint8_t dest, uint32_t lo)
{
    lapic_mmio_write(&f->vcpu[0]->lapic, ICR_HI, 4, (uint32_t)dest << 24);
    lapic_mmio_write(&f->vcpu[0]->lapic, ICR, 4, lo);
}

static void *run_ap(void *arg)
{
    struct fx *f = arg;
    assert_int_equal(tcg_accel_ops.run(f->vcpu[1], &f->exit), 0);
    atomic_store(&f->returned, true);
    return NULL;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {0, (long)ms * 1000000L};
    nanosleep(&ts, NULL);
}

/* Run the AP on a thread for `ms` milliseconds, kick it, and check run() returns STOPPED
 * promptly (bounded wait, no spinning on the kick). Returns whether it returned early. */
static bool run_ap_then_kick(struct fx *f, unsigned ms)
{
    pthread_t t;
    atomic_store(&f->returned, false);
    assert_int_equal(pthread_create(&t, NULL, run_ap, f), 0);
    sleep_ms(ms);
    bool early = atomic_load(&f->returned);
    tcg_accel_ops.kick(f->vcpu[1]);
    for (unsigned i = 0; i < 2000 && !atomic_load(&f->returned); i++)
        sleep_ms(1);
    assert_true(atomic_load(&f->returned)); /* else the join below hangs the test */
    pthread_join(t, NULL);
    assert_int_equal(f->exit.reason, ACCEL_EXIT_STOPPED);
    return early;
}

/* Run the AP until it reports through the port (and is kicked by it). */
static void run_ap_until_report(struct fx *f)
{
    struct accel_exit ex;
    do {
        assert_int_equal(tcg_accel_ops.run(f->vcpu[1], &ex), 0);
        assert_int_not_equal(ex.reason, ACCEL_EXIT_SHUTDOWN);
        assert_int_not_equal(ex.reason, ACCEL_EXIT_ERROR);
    } while (ex.reason != ACCEL_EXIT_STOPPED);
}

static void test_ap_waits_for_sipi(void **state)
{
    struct fx *f = *state;
    struct vcpu_state st;
    assert_true(f->vcpu[1]->wait_for_sipi);
    assert_false(f->vcpu[0]->wait_for_sipi);
    /* No guest code runs, the thread sleeps (a kick ends it), twice in a row. */
    assert_false(run_ap_then_kick(f, 30));
    assert_false(run_ap_then_kick(f, 5));
    assert_int_equal(tcg_accel_ops.get_state(f->vcpu[1], &st), 0);
    assert_int_equal(st.rip, 0xfff0);
    assert_int_equal(st.seg[SEG_CS].selector, 0xf000);
    assert_int_equal(st.apic_base, 0xfee00000ULL | (1u << 11)); /* no BSP flag */
    assert_int_equal(atomic_load(&f->report), 0);
    /* Fixed interrupts do not wake it (its APIC is software-disabled after reset). */
    bsp_ipi(f, 1, 0x40);
    assert_false(run_ap_then_kick(f, 5));
    assert_true(f->vcpu[1]->wait_for_sipi);
}

static void test_init_sipi_starts_ap(void **state)
{
    struct fx *f = *state;
    struct vcpu_state st;
    /* The usual sequence: INIT, SIPI, SIPI (the second is ignored: the AP runs by then). */
    bsp_ipi(f, 1, INIT_ASSERT);
    bsp_ipi(f, 1, (5u << 8) | (1u << 15)); /* INIT level de-assert: no effect */
    bsp_ipi(f, 1, STARTUP(0x09));
    bsp_ipi(f, 1, STARTUP(0x0a));
    run_ap_until_report(f);
    assert_int_equal(atomic_load(&f->report), 0x0901); /* CS = VV << 8, from vector 9 */
    assert_false(f->vcpu[1]->wait_for_sipi);
    assert_int_equal(tcg_accel_ops.get_state(f->vcpu[1], &st), 0);
    assert_int_equal(st.seg[SEG_CS].selector, 0x0900);
    assert_int_equal(st.seg[SEG_CS].base, 0x9000);
    assert_int_equal(st.cr0 & 1, 0);         /* real mode */
    assert_true(st.rip >= 7 && st.rip <= 8); /* at or past the HLT */
    /* Running now: a SIPI is ignored; it halts on. */
    bsp_ipi(f, 1, STARTUP(0x0a));
    assert_false(run_ap_then_kick(f, 20));
    assert_int_equal(atomic_load(&f->report), 0x0901);
    /* INIT stops the running AP: back into wait-for-SIPI; the next SIPI starts it anew. */
    bsp_ipi(f, 1, INIT_ASSERT);
    assert_false(run_ap_then_kick(f, 20));
    assert_true(f->vcpu[1]->wait_for_sipi);
    assert_int_equal(tcg_accel_ops.get_state(f->vcpu[1], &st), 0);
    assert_int_equal(st.rip, 0xfff0);
    assert_int_equal(st.apic_base, 0xfee00000ULL | (1u << 11));
    bsp_ipi(f, 0xff, STARTUP(0x0a)); /* broadcast: the BSP is not waiting, ignores it */
    run_ap_until_report(f);
    assert_int_equal(atomic_load(&f->report), 0x0a02);
    /* The broadcast reached the BSP too, which ignores it (not in wait-for-SIPI). */
    assert_int_equal(tcg_accel_ops.get_state(f->vcpu[0], &st), 0);
    uint64_t bsp_rip = st.rip;
    assert_true(tcg_startup_pending(f->vcpu[0]));
    assert_true(tcg_startup(f->vcpu[0]));
    assert_false(tcg_startup_pending(f->vcpu[0]));
    assert_int_equal(tcg_accel_ops.get_state(f->vcpu[0], &st), 0);
    assert_int_equal(st.rip, bsp_rip);
    assert_int_equal(st.seg[SEG_CS].selector, 0xf000);
}

static void test_init_to_bsp(void **state)
{
    struct fx *f = *state;
    struct vcpu_state st;
    assert_int_equal(tcg_accel_ops.get_state(f->vcpu[0], &st), 0);
    st.rip = 0x1234;
    st.gpr[GPR_RAX] = 77;
    assert_int_equal(tcg_accel_ops.set_state(f->vcpu[0], &st), 0);
    /* The AP sends INIT to the BSP (APIC ID 0). */
    lapic_mmio_write(&f->vcpu[1]->lapic, ICR_HI, 4, 0);
    lapic_mmio_write(&f->vcpu[1]->lapic, ICR, 4, INIT_ASSERT);
    assert_true(tcg_startup_pending(f->vcpu[0]));
    assert_true(tcg_startup(f->vcpu[0])); /* the BSP does not wait for a SIPI */
    assert_false(f->vcpu[0]->wait_for_sipi);
    assert_int_equal(tcg_accel_ops.get_state(f->vcpu[0], &st), 0);
    assert_int_equal(st.rip, 0xfff0);
    assert_int_equal(st.seg[SEG_CS].base, 0xffff0000ULL);
    assert_int_equal(st.gpr[GPR_RAX], 0);
    assert_int_equal(st.apic_base, 0xfee00000ULL | (1u << 11) | (1u << 8));
}

/* The vCPU's bytes start at *start in the writer's buffer (after the file header). */
static void save(struct fx *f, struct snap_writer *w, size_t *start)
{
    snap_writer_init(w);
    *start = w->len;
    tcg_accel_ops.save_vcpu(f->vcpu[1], w);
    assert_false(w->failed);
}

static int load(struct fx *f, const struct snap_writer *w, size_t start, size_t end)
{
    struct snap_reader r = {.data = w->buf + start, .len = end - start};
    char err[160] = "";
    int rc = tcg_accel_ops.load_vcpu(f->vcpu[1], &r, err, sizeof(err));
    if (rc < 0)
        print_message("load: %s\n", err);
    return rc;
}

static void test_snapshot_wait_for_sipi(void **state)
{
    struct fx *f = *state;
    struct snap_writer w;
    size_t start;
    /* Waiting, with a SIPI not yet taken: both come back. */
    bsp_ipi(f, 1, STARTUP(0x09));
    save(f, &w, &start);
    f->vcpu[1]->wait_for_sipi = false;
    lapic_take_startup(&f->vcpu[1]->lapic);
    assert_int_equal(load(f, &w, start, w.len), 0);
    assert_true(f->vcpu[1]->wait_for_sipi);
    assert_true(lapic_startup_pending(&f->vcpu[1]->lapic));
    run_ap_until_report(f);
    assert_int_equal(atomic_load(&f->report), 0x0901);
    /* Files from before SMP have no startup word: a running CPU, nothing pending. */
    f->vcpu[1]->wait_for_sipi = true;
    bsp_ipi(f, 1, INIT_ASSERT);
    assert_int_equal(load(f, &w, start, w.len - 4), 0);
    assert_false(f->vcpu[1]->wait_for_sipi);
    assert_false(lapic_startup_pending(&f->vcpu[1]->lapic));
    /* Unknown bits in the word, or a short word, are refused. */
    w.buf[w.len - 1] = 0x80;
    assert_int_equal(load(f, &w, start, w.len), -1);
    assert_int_equal(load(f, &w, start, w.len - 2), -1);
    snap_writer_free(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ap_waits_for_sipi, setup, teardown),
        cmocka_unit_test_setup_teardown(test_init_sipi_starts_ap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_init_to_bsp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_wait_for_sipi, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
