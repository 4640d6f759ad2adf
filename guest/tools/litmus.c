/* Memory-model litmus tests for x86 (TSO), run by two threads pinned to two different CPUs:
 * the outcomes x86 forbids must never appear, however many times each test runs.
 *
 *   SB+mfence  x=1; mfence; r0=y  ||  y=1; mfence; r1=x      forbidden: r0=0 && r1=0
 *   SB+xchg    xchg x,1; r0=y     ||  xchg y,1; r1=x         forbidden: r0=0 && r1=0
 *   MP         data=1; flag=1     ||  r0=flag; r1=data       forbidden: r0=1 && r1=0
 *   LB         r0=x; y=1          ||  r1=y; x=1              forbidden: r0=1 && r1=1
 *   CX16       both threads add 1 to both halves of a 16-byte pair with LOCK CMPXCHG16B:
 *              the halves always agree and end at exactly 2 x iterations
 *   SB         plain store buffering: r0=0 && r1=0 is allowed on x86 (counted; seeing it
 *              shows that the two CPUs really run at the same time)
 *
 * Usage: litmus [iterations] [cpu0 cpu1]. Prints one line per test and "litmus: OK" only
 * when no forbidden outcome appeared (else "litmus: FAIL"). */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

enum test { SB_MFENCE, SB_XCHG, MP, LB, SB, NR_TESTS };
static const char *const names[NR_TESTS] = {"SB+mfence", "SB+xchg", "MP", "LB", "SB"};

struct shared {
    volatile uint64_t x __attribute__((aligned(64)));
    volatile uint64_t y __attribute__((aligned(64)));
    uint64_t r[2] __attribute__((aligned(64)));
    unsigned arrived __attribute__((aligned(64)));
    unsigned sense;
    enum test test;
    long iterations;
    int cpu[2];
    __int128 pair __attribute__((aligned(16)));
};

/* Sense-reversing spin barrier for the two threads. */
static void barrier(struct shared *s, unsigned *local_sense)
{
    *local_sense = !*local_sense;
    if (__atomic_add_fetch(&s->arrived, 1, __ATOMIC_ACQ_REL) == 2) {
        __atomic_store_n(&s->arrived, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&s->sense, *local_sense, __ATOMIC_RELEASE);
    } else {
        while (__atomic_load_n(&s->sense, __ATOMIC_ACQUIRE) != *local_sense)
            __asm__ volatile("pause");
    }
}

static uint64_t xchg(volatile uint64_t *p, uint64_t v)
{
    __asm__ volatile("xchg %0, %1" : "+r"(v), "+m"(*p)::"memory");
    return v;
}

/* One side of the current test; plain accesses are volatile, fences are the instructions. */
static void side(struct shared *s, int me)
{
    volatile uint64_t *mine = me ? &s->y : &s->x, *other = me ? &s->x : &s->y;
    switch (s->test) {
    case SB_MFENCE:
        *mine = 1;
        __asm__ volatile("mfence" ::: "memory");
        s->r[me] = *other;
        break;
    case SB_XCHG:
        xchg(mine, 1);
        s->r[me] = *other;
        break;
    case SB:
        *mine = 1;
        __asm__ volatile("" ::: "memory");
        s->r[me] = *other;
        break;
    case MP:
        if (me == 0) {
            s->x = 1; /* data */
            __asm__ volatile("" ::: "memory");
            s->y = 1; /* flag */
        } else {
            s->r[0] = s->y;
            __asm__ volatile("" ::: "memory");
            s->r[1] = s->x;
        }
        break;
    case LB:
        s->r[me] = *other;
        __asm__ volatile("" ::: "memory");
        *mine = 1;
        break;
    case NR_TESTS:
        break;
    }
}

static int forbidden(const struct shared *s)
{
    switch (s->test) {
    case SB_MFENCE:
    case SB_XCHG:
        return s->r[0] == 0 && s->r[1] == 0;
    case MP:
        return s->r[0] == 1 && s->r[1] == 0;
    case LB:
        return s->r[0] == 1 && s->r[1] == 1;
    default:
        return 0;
    }
}

static void pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof(set), &set) != 0)
        perror("litmus: sched_setaffinity");
}

struct worker {
    struct shared *s;
    int me;
    long seen; /* thread 0: forbidden (or, for SB, relaxed) outcomes */
};

static void *run_test(void *arg)
{
    struct worker *w = arg;
    struct shared *s = w->s;
    unsigned sense = 0;
    pin(s->cpu[w->me]);
    for (long i = 0; i < s->iterations; i++) {
        barrier(s, &sense);
        side(s, w->me);
        barrier(s, &sense);
        if (w->me == 0) {
            if (s->test == SB ? (s->r[0] == 0 && s->r[1] == 0) : forbidden(s))
                w->seen++;
            s->x = s->y = 0;
            s->r[0] = s->r[1] = 2;
        }
    }
    return NULL;
}

static int cmpxchg16b(__int128 *p, __int128 *expected, __int128 desired)
{
    uint64_t lo = (uint64_t)*expected, hi = (uint64_t)(*expected >> 64);
    uint8_t ok;
    __asm__ volatile("lock cmpxchg16b %1; sete %0"
                     : "=q"(ok), "+m"(*p), "+a"(lo), "+d"(hi)
                     : "b"((uint64_t)desired), "c"((uint64_t)(desired >> 64))
                     : "memory", "cc");
    *expected = (__int128)((unsigned __int128)hi << 64 | lo);
    return ok;
}

static void *run_cx16(void *arg)
{
    struct worker *w = arg;
    struct shared *s = w->s;
    pin(s->cpu[w->me]);
    __int128 seen = 0;
    for (long i = 0; i < s->iterations; i++) {
        for (;;) {
            uint64_t lo = (uint64_t)seen, hi = (uint64_t)(seen >> 64);
            if (lo != hi)
                w->seen++; /* torn: the two halves came from different writes */
            __int128 next = (__int128)((unsigned __int128)(hi + 1) << 64 | (lo + 1));
            if (cmpxchg16b(&s->pair, &seen, next))
                break;
        }
    }
    return NULL;
}

static long run_pair(struct shared *s, void *(*fn)(void *))
{
    struct worker w[2] = {{s, 0, 0}, {s, 1, 0}};
    pthread_t t;
    if (pthread_create(&t, NULL, fn, &w[1]) != 0) {
        perror("litmus: pthread_create");
        exit(2);
    }
    fn(&w[0]);
    pthread_join(t, NULL);
    return w[0].seen + w[1].seen;
}

int main(int argc, char **argv)
{
    static struct shared s;
    s.iterations = argc > 1 ? atol(argv[1]) : 20000;
    s.cpu[0] = argc > 3 ? atoi(argv[2]) : 0;
    s.cpu[1] = argc > 3 ? atoi(argv[3]) : 1;
    if (s.iterations <= 0) {
        fprintf(stderr, "litmus: iterations must be positive\n");
        return 2;
    }
    int failed = 0;
    for (int t = 0; t < NR_TESTS; t++) {
        s.test = (enum test)t;
        s.x = s.y = 0;
        s.r[0] = s.r[1] = 2;
        long seen = run_pair(&s, run_test);
        if (t == SB) {
            printf("litmus: %-9s %ld runs, relaxed outcome (allowed) seen %ld times\n", names[t],
                   s.iterations, seen);
        } else {
            printf("litmus: %-9s %ld runs, forbidden outcome seen %ld times%s\n", names[t],
                   s.iterations, seen, seen ? "  <-- WRONG" : "");
            failed |= seen != 0;
        }
    }
    s.pair = 0;
    long torn = run_pair(&s, run_cx16);
    uint64_t lo = (uint64_t)s.pair, hi = (uint64_t)(s.pair >> 64);
    int cx_ok = !torn && lo == hi && lo == (uint64_t)(2 * s.iterations);
    printf(
        "litmus: CX16      %ld runs per CPU, torn reads %ld, halves %llu/%llu (expected %ld)%s\n",
        s.iterations, torn, (unsigned long long)lo, (unsigned long long)hi, 2 * s.iterations,
        cx_ok ? "" : "  <-- WRONG");
    failed |= !cx_ok;
    printf("litmus: %s\n", failed ? "FAIL" : "OK");
    return failed;
}
