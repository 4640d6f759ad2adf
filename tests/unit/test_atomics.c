/* Unit tests: the translator's LOCK'd instructions as host atomics (src/accel/tcg/x86/atomic.c).
 *
 * 1. Every locked read-modify-write (and XCHG, CMPXCHG8B/16B) runs four ways with the same
 *    inputs: natively on this host, in a one-vCPU VM (plain loads and stores) and in two-vCPU
 *    VMs on both backends (cpu->parallel: host atomics, or tcg_exit_atomic for split
 *    operands); registers, flags and memory must agree.
 * 2. Two host threads call the atomic helpers on shared guest words through two vCPUs of one VM,
 *    then two vCPUs run a guest loop of LOCK ADD / XADD / CMPXCHG / INC / BTC at the same time:
 *    the totals must be exact (a load-op-store would lose updates).
 * 3. Operands crossing a cache line or a page, or outside RAM, leave through tcg_exit_atomic. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "accel/accel.h"
#include "accel/tcg/tcg_internal.h"
#include "accel/tcg/x86/atomic.h"
#include "vm/boot/boot.h"
#include "vm/bus.h"
#include "vm/memory.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define RAM_SIZE (16ULL << 20)
#define DATA_ADDR 0x80000ULL /* registers at +0, the memory operands from +0x100 (rsi) */
#define REGION 0x2000u       /* what is compared: two pages, so operands can cross */
#define STACK_TOP 0x9f000ULL
#define CODE_ADDR 0x100000ULL
#define LOOP_ADDR 0x200000ULL
#define SHARED_ADDR 0x300000ULL
#define PORT_DONE 0xf1 /* + vCPU index */
#if defined(__x86_64__) && !defined(QUOKKA_PORTABLE_ATOMICS)
#define HOST_MISALIGNED 1 /* host atomics on operands misaligned within their line */
#else
#define HOST_MISALIGNED 0 /* those are run alone: the helper-level tests keep alignment */
#endif

/* rsi = rdi + 0x100; rax, rcx, rdx, rbx, RFLAGS from [rdi] */
static const char prologue[] = "\x48\x8d\xb7\x00\x01\x00\x00\x48\x8b\x07\x48\x8b\x4f\x08\x48\x8b"
                               "\x57\x10\x48\x8b\x5f\x18\xff\x77\x20\x9d";
/* and back to [rdi] */
static const char epilogue[] = "\x9c\x8f\x47\x20\x48\x89\x07\x48\x89\x4f\x08\x48\x89\x57\x10\x48"
                               "\x89\x5f\x18";
static const uint8_t guest_done[] = {0xb0, 0x00, 0xe6, PORT_DONE, 0xf4}; /* out; hlt */

enum kind {
    K_A, /* all arithmetic flags compared with the host */
    K_B, /* bit tests: OF SF AF PF are undefined, CF and ZF compared with the host */
    K_8, /* CMPXCHG8B: EDX:EAX is the expected value */
    K_S, /* crosses a cache line or a page: not run natively (a split lock on the host) */
    K_T, /* K_S and K_B */
};

struct insn_case {
    const char *text;
    const char *bytes;
    unsigned len;
    unsigned off; /* of the memory operand from rsi */
    enum kind kind;
};

static const struct insn_case cases[] = {
    {"lock add dword ptr [rsi], ecx", "\xf0\x01\x0e", 3, 0, K_A},
    {"lock add byte ptr [rsi+1], cl", "\xf0\x00\x4e\x01", 4, 1, K_A},
    {"lock add word ptr [rsi+2], cx", "\x66\xf0\x01\x4e\x02", 5, 2, K_A},
    {"lock add qword ptr [rsi+8], rcx", "\xf0\x48\x01\x4e\x08", 5, 8, K_A},
    {"lock add dword ptr [rsi+0x21], 0x7f", "\xf0\x83\x46\x21\x7f", 5, 0x21, K_A},
    {"lock adc qword ptr [rsi], rcx", "\xf0\x48\x11\x0e", 4, 0, K_A},
    {"lock adc byte ptr [rsi+3], 0x80", "\xf0\x80\x56\x03\x80", 5, 3, K_A},
    {"lock sub dword ptr [rsi+4], ecx", "\xf0\x29\x4e\x04", 4, 4, K_A},
    {"lock sbb word ptr [rsi+6], cx", "\x66\xf0\x19\x4e\x06", 5, 6, K_A},
    {"lock sbb qword ptr [rsi+0x23], rcx", "\xf0\x48\x19\x4e\x23", 5, 0x23, K_A},
    {"lock and qword ptr [rsi], rcx", "\xf0\x48\x21\x0e", 4, 0, K_A},
    {"lock or dword ptr [rsi+0x21], ecx", "\xf0\x09\x4e\x21", 4, 0x21, K_A},
    {"lock xor byte ptr [rsi+5], cl", "\xf0\x30\x4e\x05", 4, 5, K_A},
    {"lock xor word ptr [rsi+0x11], 0x1234", "\x66\xf0\x81\x76\x11\x34\x12", 7, 0x11, K_A},
    {"lock inc dword ptr [rsi]", "\xf0\xff\x06", 3, 0, K_A},
    {"lock dec qword ptr [rsi+8]", "\xf0\x48\xff\x4e\x08", 5, 8, K_A},
    {"lock inc byte ptr [rsi+7]", "\xf0\xfe\x46\x07", 4, 7, K_A},
    {"lock dec word ptr [rsi+0x1f]", "\x66\xf0\xff\x4e\x1f", 5, 0x1f, K_A},
    {"lock not dword ptr [rsi]", "\xf0\xf7\x16", 3, 0, K_A},
    {"lock neg qword ptr [rsi+8]", "\xf0\x48\xf7\x5e\x08", 5, 8, K_A},
    {"lock neg byte ptr [rsi+2]", "\xf0\xf6\x5e\x02", 4, 2, K_A},
    {"lock neg word ptr [rsi+0x25]", "\x66\xf0\xf7\x5e\x25", 5, 0x25, K_A},
    {"lock bts qword ptr [rsi+0x10], rcx", "\xf0\x48\x0f\xab\x4e\x10", 6, 0x10, K_B},
    {"lock btr dword ptr [rsi+0x20], ecx", "\xf0\x0f\xb3\x4e\x20", 5, 0x20, K_B},
    {"lock btc word ptr [rsi+0x10], cx", "\x66\xf0\x0f\xbb\x4e\x10", 6, 0x10, K_B},
    {"lock bts dword ptr [rsi+4], 5", "\xf0\x0f\xba\x6e\x04\x05", 6, 4, K_B},
    {"lock btr qword ptr [rsi+8], 63", "\xf0\x48\x0f\xba\x76\x08\x3f", 7, 8, K_B},
    {"lock btc word ptr [rsi+2], 17", "\x66\xf0\x0f\xba\x7e\x02\x11", 7, 2, K_B},
    {"lock xadd dword ptr [rsi], ecx", "\xf0\x0f\xc1\x0e", 4, 0, K_A},
    {"lock xadd byte ptr [rsi+1], cl", "\xf0\x0f\xc0\x4e\x01", 5, 1, K_A},
    {"lock xadd qword ptr [rsi+8], rcx", "\xf0\x48\x0f\xc1\x4e\x08", 6, 8, K_A},
    {"lock xadd word ptr [rsi+0x29], cx", "\x66\xf0\x0f\xc1\x4e\x29", 6, 0x29, K_A},
    {"lock cmpxchg dword ptr [rsi], ecx", "\xf0\x0f\xb1\x0e", 4, 0, K_A},
    {"lock cmpxchg byte ptr [rsi+1], cl", "\xf0\x0f\xb0\x4e\x01", 5, 1, K_A},
    {"lock cmpxchg qword ptr [rsi+8], rcx", "\xf0\x48\x0f\xb1\x4e\x08", 6, 8, K_A},
    {"lock cmpxchg word ptr [rsi+0x21], cx", "\x66\xf0\x0f\xb1\x4e\x21", 6, 0x21, K_A},
    {"xchg dword ptr [rsi], ecx", "\x87\x0e", 2, 0, K_A},
    {"xchg byte ptr [rsi+1], cl", "\x86\x4e\x01", 3, 1, K_A},
    {"xchg qword ptr [rsi+0x22], rcx", "\x48\x87\x4e\x22", 4, 0x22, K_A},
    {"lock cmpxchg8b qword ptr [rsi+8]", "\xf0\x0f\xc7\x4e\x08", 5, 8, K_8},
    {"lock cmpxchg8b qword ptr [rsi+0x24]", "\xf0\x0f\xc7\x4e\x24", 5, 0x24, K_8},
    {"lock cmpxchg16b xmmword ptr [rsi+0x40]", "\xf0\x48\x0f\xc7\x4e\x40", 6, 0x40, K_A},
    {"lock add dword ptr [rsi+0x3e], ecx", "\xf0\x01\x4e\x3e", 4, 0x3e, K_S},
    {"lock bts dword ptr [rsi+0x3d], 7", "\xf0\x0f\xba\x6e\x3d\x07", 6, 0x3d, K_T},
    {"lock xadd qword ptr [rsi+0xefc], rcx", "\xf0\x48\x0f\xc1\x8e\xfc\x0e\x00\x00", 9, 0xefc, K_S},
    {"lock cmpxchg dword ptr [rsi+0xefe], ecx", "\xf0\x0f\xb1\x8e\xfe\x0e\x00\x00", 8, 0xefe, K_S},
    {"xchg word ptr [rsi+0xeff], cx", "\x66\x87\x8e\xff\x0e\x00\x00", 7, 0xeff, K_S},
    {"lock cmpxchg16b xmmword ptr [rsi+0xef0]", "\xf0\x48\x0f\xc7\x8e\xf0\x0e\x00\x00", 9, 0xef0,
     K_A},
};

#define NR_CASES (sizeof(cases) / sizeof(cases[0]))

/* --- two VMs: one vCPU (plain path) and two vCPUs (parallel) ---------------------------------
 */

struct vmfx;
struct port_ctx {
    struct vmfx *vm;
    unsigned index;
};

struct vmfx {
    struct guest_memory mem;
    struct bus pio, mmio;
    struct accel_vm *vm;
    struct accel_vcpu *vcpu[2];
    struct port_ctx ports[2];
    unsigned nr;
    atomic_bool done[2];
};

struct fx {
    struct vmfx one, two, two_interp;
    uint8_t *native_code;
    uint8_t *native_data; /* REGION bytes, page-aligned like DATA_ADDR */
};

static uint64_t port_read(void *opaque, uint64_t offset, unsigned size)
{
    (void)opaque, (void)offset, (void)size;
    return 0;
}

static void port_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
    (void)offset, (void)size, (void)value;
    struct port_ctx *p = opaque;
    atomic_store(&p->vm->done[p->index], true);
    tcg_accel_ops.kick(p->vm->vcpu[p->index]); /* it halts next: run() returns STOPPED */
}

static const struct bus_device_ops port_ops = {port_read, port_write};

static const struct accel_settings interp_settings = {.tcg_backend = TCG_BACKEND_INTERP};

static void vm_setup(struct vmfx *f, unsigned nr, const struct accel_settings *settings)
{
    char err[200];
    f->nr = nr;
    assert_int_equal(guest_memory_init(&f->mem, RAM_SIZE, err, sizeof(err)), 0);
    bus_init(&f->pio, "pio", 0x10000);
    bus_init(&f->mmio, "mmio", 0);
    struct accel_vm_config cfg = {
        .mem = &f->mem, .pio = &f->pio, .mmio = &f->mmio, .nr_vcpus = nr, .settings = settings};
    assert_int_equal(tcg_accel_ops.vm_create(&cfg, &f->vm, err, sizeof(err)), 0);
    for (unsigned i = 0; i < nr; i++) {
        f->ports[i] = (struct port_ctx){f, i};
        assert_int_equal(bus_register(&f->pio, PORT_DONE + i, 1, &port_ops, &f->ports[i], "test",
                                      err, sizeof(err)),
                         0);
        assert_int_equal(tcg_accel_ops.vcpu_create(f->vm, i, &f->vcpu[i], err, sizeof(err)), 0);
        assert_int_equal(tcg_accel_ops.vcpu_thread_init(f->vcpu[i]), 0);
        /* The property under test: more than one vCPU makes the translator use atomics. */
        assert_int_equal(f->vcpu[i]->cpu.parallel, nr > 1);
    }
}

static void vm_teardown(struct vmfx *f)
{
    for (unsigned i = 0; i < f->nr; i++)
        tcg_accel_ops.vcpu_destroy(f->vcpu[i]);
    tcg_accel_ops.vm_destroy(f->vm);
    bus_destroy(&f->pio);
    bus_destroy(&f->mmio);
    guest_memory_destroy(&f->mem);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    vm_setup(&f->one, 1, NULL);
    vm_setup(&f->two, 2, NULL);
    vm_setup(&f->two_interp, 2, &interp_settings);
    f->native_code =
        mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(f->native_code != MAP_FAILED);
    f->native_data = mmap(NULL, REGION, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(f->native_data != MAP_FAILED);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    vm_teardown(&f->one);
    vm_teardown(&f->two);
    vm_teardown(&f->two_interp);
    munmap(f->native_code, 4096);
    munmap(f->native_data, REGION);
    free(f);
    return 0;
}

/* vCPU `index` from `rip` with the given registers until it writes its done port. */
static void run_vcpu(struct vmfx *f, unsigned index, uint64_t rip, uint64_t rdi, uint64_t rcx,
                     uint64_t rsi)
{
    struct vcpu_state st;
    assert_int_equal(boot_cpu_long64(&st, &f->mem), 0);
    st.rip = rip;
    st.rflags = X86_RFLAGS_FIXED;
    st.gpr[GPR_RSP] = STACK_TOP - index * 0x1000;
    st.gpr[GPR_RDI] = rdi;
    st.gpr[GPR_RCX] = rcx;
    st.gpr[GPR_RSI] = rsi;
    st.gpr[GPR_RBX] = PORT_DONE + index;
    assert_int_equal(tcg_accel_ops.set_state(f->vcpu[index], &st), 0);
    atomic_store(&f->done[index], false);
    struct accel_exit ex;
    do {
        assert_int_equal(tcg_accel_ops.run(f->vcpu[index], &ex), 0);
        assert_int_not_equal(ex.reason, ACCEL_EXIT_SHUTDOWN);
        assert_int_not_equal(ex.reason, ACCEL_EXIT_ERROR);
    } while (!(ex.reason == ACCEL_EXIT_STOPPED && atomic_load(&f->done[index])));
}

/* --- 1. the same results three ways ----------------------------------------------------------
 */

static size_t assemble(uint8_t *out, const struct insn_case *c, bool native)
{
    size_t n = 0;
    if (native)
        out[n++] = 0x53; /* push rbx: callee-saved on the host */
    memcpy(out + n, prologue, sizeof(prologue) - 1), n += sizeof(prologue) - 1;
    memcpy(out + n, c->bytes, c->len), n += c->len;
    memcpy(out + n, epilogue, sizeof(epilogue) - 1), n += sizeof(epilogue) - 1;
    if (native)
        out[n++] = 0x5b, out[n++] = 0xc3; /* pop rbx; ret */
    else
        memcpy(out + n, guest_done, sizeof(guest_done)), n += sizeof(guest_done);
    return n;
}

static void run_in_vm(struct vmfx *f, unsigned idx, uint8_t *data)
{
    uint8_t code[128];
    size_t n = assemble(code, &cases[idx], false);
    uint64_t at = CODE_ADDR + idx * 128ULL; /* each at its own address: cached blocks stay valid */
    assert_int_equal(guest_write(&f->mem, at, code, n), 0);
    assert_int_equal(guest_write(&f->mem, DATA_ADDR, data, REGION), 0);
    run_vcpu(f, 0, at, DATA_ADDR, 0, 0);
    assert_int_equal(guest_read(&f->mem, DATA_ADDR, data, REGION), 0);
}

static void run_native(struct fx *f, unsigned idx, uint8_t *data)
{
    assemble(f->native_code, &cases[idx], true);
    memcpy(f->native_data, data, REGION);
    void (*fn)(void *);
    void *p = f->native_code;
    memcpy(&fn, &p, sizeof(fn));
    fn(f->native_data);
    memcpy(data, f->native_data, REGION);
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static void put64(uint8_t *p, uint64_t v)
{
    memcpy(p, &v, 8);
}

/* Input set `set` for case c: a memory pattern, registers, flags. Set 2 makes the compare of
 * CMPXCHG* succeed (the accumulator holds the operand). */
static void make_input(const struct insn_case *c, unsigned set, uint8_t *d)
{
    static const uint64_t rcx[3] = {0x25, 0xfffffffffffffff3ULL,
                                    0x1ff}; /* bit offsets: in REGION */
    static const uint64_t flags[3] = {0x002, 0x8d7, 0x003};
    uint64_t x = 0x9e3779b97f4a7c15ULL * (set + 1);
    for (unsigned i = 0; i < REGION; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        d[i] = (uint8_t)(x >> 56);
    }
    const uint8_t *m = d + 0x100 + c->off;
    put64(d + 0, set == 2 ? get64(m) : get64(d + 0x40));
    put64(d + 8, rcx[set]);
    put64(d + 16, set == 2 ? (c->kind == K_8 ? get64(m) >> 32 : get64(m + 8)) : get64(d + 0x48));
    put64(d + 24, get64(d + 0x50));
    put64(d + 32, flags[set]);
}

static void compare(const char *what, const struct insn_case *c, unsigned set, const uint8_t *a,
                    const uint8_t *b, uint64_t flag_mask)
{
    static const char *const names[4] = {"rax", "rcx", "rdx", "rbx"};
    for (unsigned r = 0; r < 4; r++)
        if (get64(a + r * 8) != get64(b + r * 8))
            fail_msg("%s, set %u: %s %s 0x%llx vs 0x%llx", c->text, set, what, names[r],
                     (unsigned long long)get64(a + r * 8), (unsigned long long)get64(b + r * 8));
    if ((get64(a + 32) ^ get64(b + 32)) & flag_mask)
        fail_msg("%s, set %u: %s flags 0x%llx vs 0x%llx", c->text, set, what,
                 (unsigned long long)(get64(a + 32) & flag_mask),
                 (unsigned long long)(get64(b + 32) & flag_mask));
    for (unsigned i = 40; i < REGION; i++)
        if (a[i] != b[i])
            fail_msg("%s, set %u: %s memory +0x%x: 0x%02x vs 0x%02x", c->text, set, what, i - 0x100,
                     a[i], b[i]);
}

static void test_same_results(void **state)
{
    struct fx *f = *state;
    static uint8_t in[REGION], plain[REGION], atomic[REGION], interp[REGION], host[REGION];
    const uint64_t arith = X86_ARITH_FLAGS, bits = X86_CF | X86_ZF;
    for (unsigned i = 0; i < NR_CASES; i++) {
        const struct insn_case *c = &cases[i];
        for (unsigned set = 0; set < 3; set++) {
            make_input(c, set, in);
            memcpy(plain, in, REGION), memcpy(atomic, in, REGION), memcpy(host, in, REGION);
            memcpy(interp, in, REGION);
            run_in_vm(&f->one, i, plain);
            run_in_vm(&f->two, i, atomic);
            run_in_vm(&f->two_interp, i, interp);
            compare("one vCPU / two vCPUs", c, set, plain, atomic, arith);
            compare("two vCPUs native / interpreter backend", c, set, atomic, interp, arith);
            if (c->kind == K_S || c->kind == K_T)
                continue;
            run_native(f, i, host);
            compare("host / two vCPUs", c, set, host, atomic, c->kind == K_B ? bits : arith);
        }
    }
}

/* --- 2. two threads, one word ---------------------------------------------------------------
 */

#define HELPER_ITERS 200000u

struct worker {
    struct tcg_cpu *cpu;
    unsigned id;
    bool exited; /* a helper left through the exit path (must not happen here) */
};

/* Guest words at SHARED_ADDR: +0 qword ADD 1, +0x11 dword SUB 3 (misaligned in its line), +0x20
 * dword CMPXCHG increment loop, +0x28 byte XADD 1, +0x30 qword XOR of a per-thread mask, +0x38
 * word NEG (an even number of them). */
static void *helper_worker(void *arg)
{
    struct worker *w = arg;
    struct tcg_cpu *cpu = w->cpu;
    if (setjmp(cpu->exit_jmp) != 0) {
        w->exited = true;
        return NULL;
    }
    uint64_t mask = w->id ? 0xf0f0f0f00000ffffULL : 0x0ff00ff0ffff0000ULL;
    for (unsigned i = 0; i < HELPER_ITERS; i++) {
        h_atomic_rmw(cpu, SHARED_ADDR, 1, ATOMIC_ADD | 8u << 8, 0);
        h_atomic_rmw(cpu, SHARED_ADDR + (HOST_MISALIGNED ? 0x11 : 0x10), 3, ATOMIC_SUB | 4u << 8,
                     0);
        uint64_t old = h_atomic_rmw(cpu, SHARED_ADDR + 0x20, 0, ATOMIC_OR | 4u << 8, 0);
        for (unsigned tries = 0; tries < 1000000; tries++) {
            uint64_t seen = h_atomic_cmpxchg(cpu, SHARED_ADDR + 0x20, old, old + 1, 4);
            if (seen == old)
                break;
            old = seen;
        }
        h_atomic_rmw(cpu, SHARED_ADDR + 0x28, 1, ATOMIC_ADD | 1u << 8, 0);
        h_atomic_rmw(cpu, SHARED_ADDR + 0x30, mask, ATOMIC_XOR | 8u << 8, 0);
        h_atomic_rmw(cpu, SHARED_ADDR + 0x38, 0, ATOMIC_NEG | 2u << 8, 0);
    }
    return NULL;
}

static void prepare_vcpu(struct vmfx *f, unsigned index)
{
    struct vcpu_state st;
    assert_int_equal(boot_cpu_long64(&st, &f->mem), 0);
    assert_int_equal(tcg_accel_ops.set_state(f->vcpu[index], &st), 0);
}

static void test_helpers_two_threads(void **state)
{
    struct fx *f = *state;
    uint8_t init[0x40] = {0};
    init[0x38] = 0x34, init[0x39] = 0x12;
    assert_int_equal(guest_write(&f->two.mem, SHARED_ADDR, init, sizeof(init)), 0);
    struct worker w[2];
    pthread_t t[2];
    for (unsigned i = 0; i < 2; i++) {
        prepare_vcpu(&f->two, i);
        w[i] = (struct worker){&f->two.vcpu[i]->cpu, i, false};
        assert_int_equal(pthread_create(&t[i], NULL, helper_worker, &w[i]), 0);
    }
    for (unsigned i = 0; i < 2; i++) {
        pthread_join(t[i], NULL);
        assert_false(w[i].exited);
    }
    uint8_t out[0x40];
    assert_int_equal(guest_read(&f->two.mem, SHARED_ADDR, out, sizeof(out)), 0);
    uint32_t d32;
    uint16_t d16;
    assert_int_equal(get64(out), 2ULL * HELPER_ITERS);
    memcpy(&d32, out + (HOST_MISALIGNED ? 0x11 : 0x10), 4);
    assert_int_equal(d32, (uint32_t)(0u - 2u * 3u * HELPER_ITERS));
    memcpy(&d32, out + 0x20, 4);
    assert_int_equal(d32, 2u * HELPER_ITERS);
    assert_int_equal(out[0x28], (uint8_t)(2u * HELPER_ITERS));
    assert_int_equal(get64(out + 0x30), 0); /* each mask an even number of times */
    memcpy(&d16, out + 0x38, 2);
    assert_int_equal(d16, 0x1234);
}

/* --- 2b. two vCPUs running guest code at the same time --------------------------------------
 */

/* 1: lock add qword [rdi], 1; mov eax, 1; lock xadd [rdi+8], rax; mov rax, [rdi+16];
 * 2: lea rdx, [rax+1]; lock cmpxchg [rdi+16], rdx; jne 2b; lock inc dword [rdi+0x25];
 *    lock btc qword [rdi+0x30], rsi; dec rcx; jnz 1b; mov edx, ebx; out dx, al; hlt */
static const char guest_loop[] = "\xf0\x48\x83\x07\x01\xb8\x01\x00\x00\x00\xf0\x48\x0f\xc1\x47\x08"
                                 "\x48\x8b\x47\x10\x48\x8d\x50\x01\xf0\x48\x0f\xb1\x57\x10\x75\xf4"
                                 "\xf0\xff\x47\x25\xf0\x48\x0f\xbb\x77\x30\x48\xff\xc9\x75\xd1\x89"
                                 "\xda\xee\xf4";

#define GUEST_ITERS 300000u

struct runner {
    struct vmfx *f;
    unsigned index;
    uint64_t iters;
};

static void *vcpu_main(void *arg)
{
    struct runner *r = arg;
    run_vcpu(r->f, r->index, LOOP_ADDR, SHARED_ADDR, r->iters, 3 + r->index * 7);
    return NULL;
}

static void run_loop_pair(struct vmfx *f, uint64_t iters)
{
    uint8_t zero[0x40] = {0};
    assert_int_equal(guest_write(&f->mem, SHARED_ADDR, zero, sizeof(zero)), 0);
    struct runner r[2] = {{f, 0, iters}, {f, 1, iters}};
    pthread_t t[2];
    for (unsigned i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, vcpu_main, &r[i]), 0);
    for (unsigned i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
}

static void guest_two_vcpus(struct vmfx *v, uint64_t iters)
{
    assert_int_equal(guest_write(&v->mem, LOOP_ADDR, guest_loop, sizeof(guest_loop) - 1), 0);
    /* Translate the loop first, one vCPU after the other. */
    for (unsigned i = 0; i < 2; i++) {
        struct runner r = {v, i, 2};
        vcpu_main(&r);
    }
    run_loop_pair(v, iters);
    uint8_t out[0x40];
    assert_int_equal(guest_read(&v->mem, SHARED_ADDR, out, sizeof(out)), 0);
    uint32_t d32;
    assert_int_equal(get64(out), 2 * iters);      /* LOCK ADD */
    assert_int_equal(get64(out + 8), 2 * iters);  /* LOCK XADD */
    assert_int_equal(get64(out + 16), 2 * iters); /* LOCK CMPXCHG loop */
    memcpy(&d32, out + 0x25, 4);
    assert_int_equal(d32, (uint32_t)(2 * iters)); /* LOCK INC, misaligned */
    assert_int_equal(get64(out + 0x30), 0);       /* LOCK BTC of bits 3, 10: even */
}

static void test_guest_two_vcpus(void **state)
{
    struct fx *f = *state;
    guest_two_vcpus(&f->two, GUEST_ITERS);
    guest_two_vcpus(&f->two_interp, GUEST_ITERS / 4); /* ~10x slower */
}

/* --- 3. what the host cannot do atomically ---------------------------------------------------
 */

/* Calls h_atomic_rmw; true when it left through tcg_exit_atomic (step_atomic set). */
static bool exits_atomic(struct tcg_cpu *cpu, uint64_t addr, unsigned bytes)
{
    cpu->step_atomic = false;
    cpu->exception = -1;
    if (setjmp(cpu->exit_jmp) != 0) {
        assert_int_equal(cpu->exception, -1); /* not a fault */
        bool step = cpu->step_atomic;
        cpu->step_atomic = false;
        return step;
    }
    h_atomic_rmw(cpu, addr, 1, ATOMIC_ADD | bytes << 8, 0);
    return false;
}

static void test_exit_atomic(void **state)
{
    struct fx *f = *state;
    prepare_vcpu(&f->two, 0);
    struct tcg_cpu *cpu = &f->two.vcpu[0]->cpu;
    assert_false(exits_atomic(cpu, SHARED_ADDR + 0x3c, 4)); /* the last bytes of a line */
    /* Misaligned within the line: a host atomic on x86-64, else run alone. */
    assert_true(exits_atomic(cpu, SHARED_ADDR + 0x39, 4) == !HOST_MISALIGNED);
    assert_true(exits_atomic(cpu, SHARED_ADDR + 0x3e, 4));  /* crosses a line */
    assert_true(exits_atomic(cpu, SHARED_ADDR + 0xffc, 8)); /* crosses a page */
    assert_true(exits_atomic(cpu, 0xfee00000ULL, 4));       /* the local APIC: not RAM */
    assert_true(exits_atomic(cpu, RAM_SIZE + 0x1000, 4));   /* beyond RAM */
    /* CMPXCHG8B split across a line: run alone as well. */
    uint64_t expected[2] = {0, 0}, repl[2] = {1, 0};
    cpu->step_atomic = false;
    if (setjmp(cpu->exit_jmp) == 0) {
        x86_atomic_cmpxchg_wide(cpu, SHARED_ADDR + 0x3c, 8, expected, repl);
        fail_msg("a line-crossing CMPXCHG8B was done as one host atomic");
    }
    assert_true(cpu->step_atomic);
    cpu->step_atomic = false;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_results),
        cmocka_unit_test(test_helpers_two_threads),
        cmocka_unit_test(test_guest_two_vcpus),
        cmocka_unit_test(test_exit_atomic),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
