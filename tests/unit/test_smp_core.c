/* Unit tests: the translator's multi-vCPU core without guest code. Exclusive sections really
 * stop every other running vCPU (none makes progress inside one, sleepers are not waited
 * for), and the shared block cache's lock-free lookups stay correct while another thread
 * inserts, invalidates and (in exclusive sections) reaps and grows the table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "accel/tcg/tcg_internal.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#define NR_THREADS 3
#define SECTIONS_PER_THREAD 200

struct fixture {
    struct accel_vm vm;
    struct accel_vcpu *vcpus[NR_THREADS];
    atomic_ulong progress[NR_THREADS]; /* loop turns outside sections */
    atomic_int in_section;             /* threads inside a section (must stay <= 1) */
    atomic_int violations;
    atomic_bool stop;
};

struct thread_arg {
    struct fixture *f;
    unsigned index;
};

static void setup_vm(struct fixture *f, unsigned nr)
{
    memset(f, 0, sizeof(*f));
    f->vm.nr_vcpus = nr;
    tcg_exclusive_init(&f->vm.excl);
    pthread_mutex_init(&f->vm.tb_lock, NULL);
    for (unsigned i = 0; i < nr; i++) {
        f->vcpus[i] = calloc(1, sizeof(struct accel_vcpu));
        assert_non_null(f->vcpus[i]);
        f->vcpus[i]->vm = &f->vm;
        f->vcpus[i]->index = i;
        atomic_store(&f->vm.vcpus[i], f->vcpus[i]);
    }
}

static void teardown_vm(struct fixture *f, unsigned nr)
{
    for (unsigned i = 0; i < nr; i++)
        free(f->vcpus[i]);
    tcg_exclusive_destroy(&f->vm.excl);
    pthread_mutex_destroy(&f->vm.tb_lock);
}

/* A vCPU's run loop in miniature: safe points between "blocks"; now and then a section in
 * which no other thread may make progress. */
static void *vcpu_loop(void *p)
{
    struct thread_arg *a = p;
    struct fixture *f = a->f;
    struct accel_vcpu *v = f->vcpus[a->index];
    tcg_exec_start(v);
    unsigned sections = 0;
    for (unsigned long turn = 0; sections < SECTIONS_PER_THREAD; turn++) {
        tcg_safe_point(v);
        /* A "block": some work, with progress visible to a section owner. */
        for (unsigned step = 0; step < 8; step++) {
            if (atomic_load(&f->in_section))
                atomic_fetch_add(&f->violations, 1); /* ran while another owned a section */
            atomic_fetch_add(&f->progress[a->index], 1);
            for (volatile int spin = 0; spin < 200; spin++)
                ;
        }
        if (turn % 64 == 0) {
            tcg_exclusive_begin(v);
            if (atomic_fetch_add(&f->in_section, 1) != 0)
                atomic_fetch_add(&f->violations, 1);
            unsigned long before[NR_THREADS];
            for (unsigned i = 0; i < NR_THREADS; i++)
                before[i] = atomic_load(&f->progress[i]);
            for (volatile int spin = 0; spin < 50000; spin++)
                ;
            for (unsigned i = 0; i < NR_THREADS; i++)
                if (i != a->index && atomic_load(&f->progress[i]) != before[i])
                    atomic_fetch_add(&f->violations, 1);
            atomic_fetch_sub(&f->in_section, 1);
            tcg_exclusive_end(v);
            sections++;
        }
    }
    tcg_exec_end(v);
    return NULL;
}

static void test_exclusive_sections_stop_everyone(void **state)
{
    (void)state;
    static struct fixture f;
    setup_vm(&f, NR_THREADS);
    pthread_t t[NR_THREADS];
    struct thread_arg args[NR_THREADS];
    for (unsigned i = 0; i < NR_THREADS; i++) {
        args[i] = (struct thread_arg){&f, i};
        assert_int_equal(pthread_create(&t[i], NULL, vcpu_loop, &args[i]), 0);
    }
    for (unsigned i = 0; i < NR_THREADS; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(atomic_load(&f.violations), 0);
    for (unsigned i = 0; i < NR_THREADS; i++)
        assert_true(atomic_load(&f.progress[i]) >= SECTIONS_PER_THREAD);
    teardown_vm(&f, NR_THREADS);
}

/* A vCPU that is not running (asleep in HLT, or out doing I/O) is not waited for. */
static void test_exclusive_skips_sleepers(void **state)
{
    (void)state;
    static struct fixture f;
    setup_vm(&f, 2);
    tcg_exec_start(f.vcpus[0]);
    /* vCPU 1 never starts running: the section must not wait for it. */
    tcg_exclusive_begin(f.vcpus[0]);
    assert_true(f.vcpus[0]->in_exclusive);
    tcg_exclusive_end(f.vcpus[0]);
    assert_false(f.vcpus[0]->in_exclusive);
    tcg_exec_end(f.vcpus[0]);
    teardown_vm(&f, 2);
}

/* --- the shared block cache under concurrent lookups --------------------------------------- */

#define PAGES 64
#define BLOCKS_PER_PAGE 8

struct cache_fixture {
    struct fixture f;
    atomic_bool stop, reader_running;
    atomic_ulong found, bad;
};

static struct tb *make_tb(uint64_t pc)
{
    struct tb *tb = calloc(1, sizeof(*tb));
    assert_non_null(tb);
    tb->pc = tb->phys_pc = pc;
    tb->size = 16;
    return tb;
}

/* The writer: insert blocks, invalidate pages, and every so often reap and grow the table in
 * an exclusive section, like the run loop's maintenance. */
static void *cache_writer(void *p)
{
    struct cache_fixture *c = p;
    struct accel_vcpu *v = c->f.vcpus[0];
    struct accel_vm *vm = &c->f.vm;
    while (!atomic_load(&c->reader_running))
        sched_yield();
    tcg_exec_start(v);
    for (unsigned round = 0; round < 300; round++) {
        pthread_mutex_lock(&vm->tb_lock);
        for (unsigned pg = 0; pg < PAGES; pg++)
            for (unsigned k = 0; k < BLOCKS_PER_PAGE; k++) {
                uint64_t pc = (uint64_t)pg << 12 | k << 4;
                if (!tb_lookup(&vm->tbs, NULL, pc, pc, 0, 0, 0))
                    tb_insert(&vm->tbs, make_tb(pc), pg, SIZE_MAX);
            }
        tb_invalidate_page(&vm->tbs, round % PAGES);
        pthread_mutex_unlock(&vm->tb_lock);
        tcg_safe_point(v);
        if (round % 10 == 0) {
            tcg_exclusive_begin(v);
            vm->tbs.grow_wanted = true;
            tb_maintain(&vm->tbs);
            tcg_exclusive_end(v);
        }
    }
    atomic_store(&c->stop, true);
    tcg_exec_end(v);
    return NULL;
}

static void *cache_reader(void *p)
{
    struct cache_fixture *c = p;
    struct accel_vcpu *v = c->f.vcpus[1];
    struct accel_vm *vm = &c->f.vm;
    tcg_exec_start(v);
    atomic_store(&c->reader_running, true);
    for (uint64_t i = 0; !atomic_load(&c->stop); i++) {
        tcg_safe_point(v);
        uint64_t pc = (i % PAGES) << 12 | (i % BLOCKS_PER_PAGE) << 4;
        struct tb *tb = tb_lookup(&vm->tbs, v->jmp_cache, pc, pc, 0, 0, 0);
        if (tb) {
            atomic_fetch_add(&c->found, 1);
            if (tb->pc != pc || !tb->in_cache)
                atomic_fetch_add(&c->bad, 1);
        }
    }
    tcg_exec_end(v);
    return NULL;
}

static void test_lookups_while_the_cache_changes(void **state)
{
    (void)state;
    static struct cache_fixture c;
    memset(&c, 0, sizeof(c));
    setup_vm(&c.f, 2);
    assert_int_equal(tb_cache_init(&c.f.vm.tbs, PAGES), 0);
    for (unsigned i = 0; i < 2; i++)
        assert_int_equal(tb_register_jmp_cache(&c.f.vm.tbs, c.f.vcpus[i]->jmp_cache), 0);
    pthread_t w, r;
    assert_int_equal(pthread_create(&r, NULL, cache_reader, &c), 0);
    assert_int_equal(pthread_create(&w, NULL, cache_writer, &c), 0);
    pthread_join(w, NULL);
    pthread_join(r, NULL);
    assert_true(atomic_load(&c.found) > 0);
    assert_int_equal(atomic_load(&c.bad), 0);
    for (unsigned i = 0; i < 2; i++)
        tb_unregister_jmp_cache(&c.f.vm.tbs, c.f.vcpus[i]->jmp_cache);
    tb_cache_destroy(&c.f.vm.tbs);
    teardown_vm(&c.f, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exclusive_sections_stop_everyone),
        cmocka_unit_test(test_exclusive_skips_sleepers),
        cmocka_unit_test(test_lookups_while_the_cache_changes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
