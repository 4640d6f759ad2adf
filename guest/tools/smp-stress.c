/* smp-stress: many threads hammering shared counters with the x86 atomic instructions, for
 * quokka's multi-vCPU translator (tests/e2e/test_smp_stress.py). Built static by build-guest.sh
 * into the initramfs as /usr/bin/smp-stress.
 *
 *   smp-stress [THREADS [ITERATIONS]]
 *       THREADS (default: the online CPUs, 1..256) threads each run ITERATIONS (default
 *       200000, 1..100000000) rounds of: LOCK ADD on one counter, a LOCK CMPXCHG retry loop on
 *       a second, LOCK XADD on a third, LOCK INC on a fourth that is misaligned within its
 *       cache line, an XCHG spinlock around a plain increment of a fifth, a pthread mutex
 *       around a plain increment of a sixth, and LOCK BTC of the thread's own bit of a shared
 *       word. Prints every total with the expected one, then "smp-stress: OK" when all match,
 *       else "smp-stress: FAIL <what>" (exit 1). A usage error prints one line, exit 2.
 *
 * A translator that turns these into plain loads and stores loses updates as soon as two vCPUs
 * run at once; the totals then come up short. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 256
#define MAX_ITERATIONS 100000000UL

/* Each group of counters on its own cache line, the way real code would have it. */
struct shared {
    _Alignas(64) uint64_t add;
    _Alignas(64) uint64_t cmpxchg;
    _Alignas(64) uint64_t xadd;
    _Alignas(64) unsigned char raw[64]; /* LOCK INC on the dword at raw + 0x21 */
    _Alignas(64) uint32_t spin;         /* 0 free, 1 held (XCHG) */
    uint64_t spun;                      /* incremented under spin */
    _Alignas(64) pthread_mutex_t mutex;
    uint64_t mutexed;           /* incremented under mutex */
    _Alignas(64) uint64_t bits; /* thread t flips bit t % 64 */
};

static struct shared sh = {.mutex = PTHREAD_MUTEX_INITIALIZER};
static unsigned long iterations;

static void lock_add(uint64_t *p)
{
    __asm__ volatile("lock addq $1, %0" : "+m"(*p) : : "cc");
}

static void cmpxchg_inc(uint64_t *p)
{
    uint64_t old = __atomic_load_n(p, __ATOMIC_RELAXED);
    for (;;) {
        uint64_t want = old + 1;
        unsigned char ok;
        __asm__ volatile("lock cmpxchgq %3, %1; sete %2"
                         : "+a"(old), "+m"(*p), "=q"(ok)
                         : "r"(want)
                         : "cc");
        if (ok)
            return;
        /* old now holds what was there */
    }
}

static void xadd_inc(uint64_t *p)
{
    uint64_t v = 1;
    __asm__ volatile("lock xaddq %0, %1" : "+r"(v), "+m"(*p) : : "cc");
}

static void lock_inc_misaligned(unsigned char *p)
{
    /* The address in a register: the dword is deliberately not 4-byte aligned. */
    __asm__ volatile("lock incl (%0)" : : "r"(p) : "memory", "cc");
}

static void spin_lock(uint32_t *lock)
{
    for (;;) {
        uint32_t v = 1;
        __asm__ volatile("xchgl %0, %1" : "+r"(v), "+m"(*lock) : : "memory");
        if (v == 0)
            return;
        while (__atomic_load_n(lock, __ATOMIC_RELAXED))
            __asm__ volatile("pause");
    }
}

static void spin_unlock(uint32_t *lock)
{
    __atomic_store_n(lock, 0, __ATOMIC_RELEASE); /* a plain MOV on x86 */
}

static void lock_btc(uint64_t *p, uint64_t bit)
{
    __asm__ volatile("lock btcq %1, %0" : "+m"(*p) : "r"(bit) : "cc");
}

static void *worker(void *arg)
{
    uint64_t bit = (uint64_t)(uintptr_t)arg % 64;
    for (unsigned long i = 0; i < iterations; i++) {
        lock_add(&sh.add);
        cmpxchg_inc(&sh.cmpxchg);
        xadd_inc(&sh.xadd);
        lock_inc_misaligned(sh.raw + 0x21);
        spin_lock(&sh.spin);
        sh.spun++;
        spin_unlock(&sh.spin);
        pthread_mutex_lock(&sh.mutex);
        sh.mutexed++;
        pthread_mutex_unlock(&sh.mutex);
        lock_btc(&sh.bits, bit);
    }
    return NULL;
}

static int usage(const char *why)
{
    fprintf(stderr, "smp-stress: %s (usage: smp-stress [THREADS 1-%d [ITERATIONS 1-%lu]])\n", why,
            MAX_THREADS, MAX_ITERATIONS);
    return 2;
}

static int parse(const char *text, unsigned long max, unsigned long *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(text, &end, 10);
    if (errno || end == text || *end || v < 1 || v > max || text[0] == '-')
        return -1;
    *out = v;
    return 0;
}

static int check(const char *name, uint64_t got, uint64_t want, char *bad, size_t len)
{
    printf("smp-stress: %s=%" PRIu64 " expected=%" PRIu64 "\n", name, got, want);
    if (got == want)
        return 0;
    size_t used = strlen(bad);
    snprintf(bad + used, len - used, " %s", name);
    return 1;
}

/* What the flipped bits must be: bit b flipped once per iteration by each thread t, t % 64 == b. */
static uint64_t expected_bits(unsigned long threads)
{
    uint64_t want = 0;
    for (unsigned long t = 0; t < threads; t++)
        if (iterations & 1)
            want ^= 1ULL << (t % 64);
    return want;
}

int main(int argc, char **argv)
{
    unsigned long threads, iters = 200000;
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    threads = online > 0 ? (unsigned long)online : 1;
    if (threads > MAX_THREADS)
        threads = MAX_THREADS;
    if (argc > 3)
        return usage("too many arguments");
    if (argc > 1 && parse(argv[1], MAX_THREADS, &threads) < 0)
        return usage("bad THREADS");
    if (argc > 2 && parse(argv[2], MAX_ITERATIONS, &iters) < 0)
        return usage("bad ITERATIONS");
    iterations = iters;
    printf("smp-stress: threads=%lu iterations=%lu cpus=%ld\n", threads, iters, online);
    fflush(stdout);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pthread_t tid[MAX_THREADS];
    for (unsigned long t = 0; t < threads; t++) {
        int rc = pthread_create(&tid[t], NULL, worker, (void *)(uintptr_t)t);
        if (rc) {
            printf("smp-stress: FAIL pthread_create: %s\n", strerror(rc));
            return 1;
        }
    }
    for (unsigned long t = 0; t < threads; t++)
        pthread_join(tid[t], NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    uint64_t total = (uint64_t)threads * iters;
    uint32_t inc;
    memcpy(&inc, sh.raw + 0x21, sizeof(inc));
    char bad[256] = "";
    int fails = 0;
    fails += check("lock-add", sh.add, total, bad, sizeof(bad));
    fails += check("cmpxchg-loop", sh.cmpxchg, total, bad, sizeof(bad));
    fails += check("xadd", sh.xadd, total, bad, sizeof(bad));
    fails += check("lock-inc-misaligned", inc, (uint32_t)total, bad, sizeof(bad));
    fails += check("xchg-spinlock", sh.spun, total, bad, sizeof(bad));
    fails += check("mutex", sh.mutexed, total, bad, sizeof(bad));
    fails += check("lock-btc-bits", sh.bits, expected_bits(threads), bad, sizeof(bad));
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("smp-stress: %.2f s\n", secs);
    if (fails) {
        printf("smp-stress: FAIL%s\n", bad);
        return 1;
    }
    printf("smp-stress: OK\n");
    return 0;
}
