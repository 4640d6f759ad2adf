/* Unit tests of the device layer's machinery: buses whose ranges move while other threads
 * look them up, the epoll event loop, option strings, resource allocators, the device
 * manager's levels and instance numbering, and DMA bounds with write notification. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "hw/device.h"
#include "util/opts.h"
#include "vm/bus.h"
#include "vm/devices.h"
#include "vm/dma.h"
#include "vm/event_loop.h"
#include "vm/memory.h"
#include "vm/resources.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* --- bus ------------------------------------------------------------------------------- */

struct tagged {
    uint64_t tag;
};

static uint64_t tagged_read(void *opaque, uint64_t offset, unsigned size)
{
    (void)size;
    return ((struct tagged *)opaque)->tag + offset;
}

static const struct bus_device_ops tagged_ops = {.read = tagged_read};

static void test_bus_unregister_and_remap(void **state)
{
    (void)state;
    struct bus bus;
    char err[200];
    assert_int_equal(bus_init(&bus, "mmio", 0), 0);
    struct tagged a = {0x100}, b = {0x200};
    assert_int_equal(bus_register(&bus, 0x1000, 0x100, &tagged_ops, &a, "a", err, sizeof(err)), 0);
    assert_int_equal(bus_register(&bus, 0x2000, 0x100, &tagged_ops, &b, "b", err, sizeof(err)), 0);
    uint64_t v;
    assert_true(bus_read(&bus, 0x1004, 4, &v));
    assert_int_equal(v, 0x104);
    /* Move a to 0x3000: the old place no longer decodes. */
    assert_int_equal(bus_remap(&bus, &a, 0x1000, 0x3000, 0x100, &tagged_ops, "a"), 0);
    assert_false(bus_read(&bus, 0x1004, 4, &v));
    assert_int_equal(v, 0xffffffff);
    assert_true(bus_read(&bus, 0x3008, 4, &v));
    assert_int_equal(v, 0x108);
    /* Onto b: refused, and a is left unmapped (a BAR over another range does not decode). */
    assert_int_equal(bus_remap(&bus, &a, 0x3000, 0x2080, 0x100, &tagged_ops, "a"), -1);
    assert_false(bus_find(&bus, 0x3000, 1, NULL));
    assert_true(bus_read(&bus, 0x2080, 4, &v));
    assert_int_equal(v, 0x200 + 0x80);
    /* Back from nowhere (UINT64_MAX), then removed. */
    assert_int_equal(bus_remap(&bus, &a, UINT64_MAX, 0x5000, 0x100, &tagged_ops, "a"), 0);
    assert_true(bus_find(&bus, 0x50ff, 1, NULL));
    assert_int_equal(bus_unregister(&bus, 0x5000, &a), 0);
    assert_false(bus_find(&bus, 0x5000, 1, NULL));
    assert_int_equal(bus_unregister(&bus, 0x5000, &a), -1);
    /* Only the owner can remove a range. */
    assert_int_equal(bus_unregister(&bus, 0x2000, &a), -1);
    assert_true(bus_find(&bus, 0x2000, 1, NULL));
    bus_destroy(&bus);
}

static void test_bus_table_full(void **state)
{
    (void)state;
    struct bus bus;
    char err[200];
    assert_int_equal(bus_init(&bus, "pio", 0x10000), 0);
    struct tagged t = {0};
    for (unsigned i = 0; i < BUS_MAX_RANGES; i++)
        assert_int_equal(bus_register(&bus, i * 16, 16, &tagged_ops, &t, "t", err, sizeof(err)), 0);
    assert_int_equal(bus_register(&bus, 0xf000, 16, &tagged_ops, &t, "t", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "too many"));
    bus_destroy(&bus);
}

struct mover {
    struct bus *bus;
    struct tagged *dev;
    atomic_bool stop;
    unsigned moves;
};

static void *move_around(void *arg)
{
    struct mover *mv = arg;
    uint64_t at = 0x10000;
    while (!atomic_load(&mv->stop) && mv->moves < 200000) {
        uint64_t next = at == 0x10000 ? 0x20000 : 0x10000;
        bus_remap(mv->bus, mv->dev, at, next, 0x1000, &tagged_ops, "mover");
        at = next;
        mv->moves++;
    }
    return NULL;
}

/* A reader never sees a half-moved table: every hit is a consistent copy of one range, and
 * the fixed ranges around the moving one are always found. */
static void test_bus_lookups_during_moves(void **state)
{
    (void)state;
    struct bus bus;
    char err[200];
    assert_int_equal(bus_init(&bus, "mmio", 0), 0);
    struct tagged fixed[8], moving = {0x7000};
    for (unsigned i = 0; i < 8; i++) {
        fixed[i].tag = i * 0x10;
        assert_int_equal(bus_register(&bus, 0x100000 + i * 0x4000, 0x1000, &tagged_ops, &fixed[i],
                                      "fixed", err, sizeof(err)),
                         0);
    }
    assert_int_equal(
        bus_register(&bus, 0x10000, 0x1000, &tagged_ops, &moving, "mover", err, sizeof(err)), 0);
    struct mover mv = {.bus = &bus, .dev = &moving};
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, move_around, &mv), 0);
    for (unsigned round = 0; round < 200000; round++) {
        unsigned i = round % 8;
        struct bus_hit hit;
        assert_true(bus_find(&bus, 0x100000 + i * 0x4000 + 8, 4, &hit));
        assert_ptr_equal(hit.opaque, &fixed[i]);
        assert_int_equal(hit.base, 0x100000 + i * 0x4000);
        if (bus_find(&bus, 0x10010, 4, &hit) || bus_find(&bus, 0x20010, 4, &hit)) {
            assert_ptr_equal(hit.opaque, &moving);
            assert_true(hit.base == 0x10000 || hit.base == 0x20000);
        }
    }
    atomic_store(&mv.stop, true);
    pthread_join(thread, NULL);
    bus_destroy(&bus);
}

/* --- event loop ------------------------------------------------------------------------ */

struct counter {
    int fd;
    unsigned calls;
    struct event_loop *loop;
    int remove_fd; /* removed from inside the callback, when >= 0 */
};

static void count_event(void *opaque, uint32_t revents)
{
    struct counter *c = opaque;
    assert_true(revents & EPOLLIN);
    uint64_t v;
    assert_int_equal(read(c->fd, &v, sizeof(v)), (ssize_t)sizeof(v));
    c->calls++;
    if (c->remove_fd >= 0)
        event_loop_remove(c->loop, c->remove_fd);
}

static void test_event_loop_dispatch(void **state)
{
    (void)state;
    char err[200];
    struct event_loop *loop = event_loop_new(err, sizeof(err));
    assert_non_null(loop);
    struct counter a = {eventfd(0, EFD_NONBLOCK), 0, loop, -1};
    struct counter b = {eventfd(0, EFD_NONBLOCK), 0, loop, -1};
    assert_int_equal(event_loop_add(loop, a.fd, EPOLLIN, count_event, &a, err, sizeof(err)), 0);
    assert_int_equal(event_loop_add(loop, b.fd, EPOLLIN, count_event, &b, err, sizeof(err)), 0);
    /* The same fd twice is refused. */
    assert_int_equal(event_loop_add(loop, a.fd, EPOLLIN, count_event, &a, err, sizeof(err)), -1);
    /* Nothing ready: the timeout passes and nothing runs. */
    assert_int_equal(event_loop_run_once(loop, 1000000), 0);
    uint64_t one = 1;
    assert_int_equal(write(a.fd, &one, sizeof(one)), (ssize_t)sizeof(one));
    assert_int_equal(event_loop_run_once(loop, -1), 1);
    assert_int_equal(a.calls, 1);
    assert_int_equal(b.calls, 0);
    /* Paused (no events): not dispatched even when ready. */
    assert_int_equal(event_loop_modify(loop, b.fd, 0), 0);
    assert_int_equal(write(b.fd, &one, sizeof(one)), (ssize_t)sizeof(one));
    assert_int_equal(event_loop_run_once(loop, 1000000), 0);
    assert_int_equal(event_loop_modify(loop, b.fd, EPOLLIN), 0);
    assert_int_equal(event_loop_run_once(loop, -1), 1);
    assert_int_equal(b.calls, 1);
    /* a's callback removes b while both are ready in one batch: b's stale event is dropped. */
    a.remove_fd = b.fd;
    assert_int_equal(write(a.fd, &one, sizeof(one)), (ssize_t)sizeof(one));
    assert_int_equal(write(b.fd, &one, sizeof(one)), (ssize_t)sizeof(one));
    int ran = event_loop_run_once(loop, -1);
    assert_true(ran == 1 || ran == 2); /* b may have come first in the batch */
    unsigned b_calls = b.calls;
    assert_int_equal(write(b.fd, &one, sizeof(one)), (ssize_t)sizeof(one));
    assert_int_equal(event_loop_run_once(loop, 1000000), 0);
    assert_int_equal(b.calls, b_calls);
    /* A wake-up from another thread ends a wait with nothing dispatched. */
    event_loop_wake(loop);
    assert_int_equal(event_loop_run_once(loop, -1), 0);
    event_loop_free(loop);
    close(a.fd);
    close(b.fd);
}

/* --- option strings -------------------------------------------------------------------- */

static void test_opts(void **state)
{
    (void)state;
    static const char *const keys[] = {"path", "readonly", "serial", "queues", NULL};
    struct opts o;
    char err[200];
    assert_int_equal(opts_parse(&o, "disk.img,readonly=on,serial=a,,b", "--disk", keys, "path", err,
                                sizeof(err)),
                     0);
    assert_string_equal(opts_get(&o, "path"), "disk.img");
    assert_string_equal(opts_get(&o, "serial"), "a,b");
    bool ro;
    assert_int_equal(opts_get_bool(&o, "readonly", false, &ro, "--disk", err, sizeof(err)), 0);
    assert_true(ro);
    uint64_t q;
    assert_int_equal(opts_get_u64(&o, "queues", 4, 1, 16, &q, "--disk", err, sizeof(err)), 0);
    assert_int_equal(q, 4);
    assert_null(opts_get(&o, "nope"));
    opts_free(&o);

    assert_int_equal(opts_parse(&o, "path=x,colour=red", "--disk", keys, "path", err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "unknown option 'colour'"));
    assert_int_equal(opts_parse(&o, "path=x,path=y", "--disk", keys, "path", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "twice"));
    assert_int_equal(opts_parse(&o, "x", "--device", keys, NULL, err, sizeof(err)), -1);
    assert_int_equal(
        opts_parse(&o, "queues=99,readonly=maybe", "--disk", keys, NULL, err, sizeof(err)), 0);
    assert_int_equal(opts_get_u64(&o, "queues", 1, 1, 16, &q, "--disk", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "queues='99'"));
    assert_int_equal(opts_get_bool(&o, "readonly", false, &ro, "--disk", err, sizeof(err)), -1);
    opts_free(&o);
    assert_int_equal(opts_parse(&o, "", "--rng", keys, NULL, err, sizeof(err)), 0);
    assert_int_equal(o.nr, 0);
    opts_free(&o);
}

/* --- resources ------------------------------------------------------------------------- */

static void test_range_alloc(void **state)
{
    (void)state;
    struct range_alloc a;
    range_alloc_init(&a, 0x1000, 0x10000);
    uint64_t x, y, z;
    assert_int_equal(range_alloc(&a, 0x1000, 0x1000, &x), 0);
    assert_int_equal(x, 0x1000);
    assert_int_equal(range_alloc(&a, 0x4000, 0x4000, &y), 0);
    assert_int_equal(y, 0x4000); /* aligned past the first block */
    assert_int_equal(range_alloc(&a, 0x1000, 0x1000, &z), 0);
    assert_int_equal(z, 0x2000); /* first fit fills the gap */
    assert_int_equal(range_alloc_fixed(&a, 0x3000, 0x1000), 0);
    assert_int_equal(range_alloc_fixed(&a, 0x3800, 0x100), -1);   /* taken */
    assert_int_equal(range_alloc_fixed(&a, 0x10800, 0x1000), -1); /* past the end */
    assert_int_equal(range_alloc(&a, 0x20000, 0x1000, &z), -1);   /* too big */
    assert_int_equal(range_alloc(&a, 0x1000, 3, &z), -1);         /* bad alignment */
    range_free(&a, 0x4000);
    assert_int_equal(range_alloc(&a, 0x2000, 0x2000, &z), 0);
    assert_int_equal(z, 0x4000);
    /* Exhaustion of entries is a failure, not an overflow. */
    struct range_alloc big;
    range_alloc_init(&big, 0, 1ULL << 40);
    unsigned ok = 0;
    for (unsigned i = 0; i < RANGE_ALLOC_MAX + 10; i++)
        ok += range_alloc(&big, 16, 16, &z) == 0;
    assert_int_equal(ok, RANGE_ALLOC_MAX);
}

/* --- DMA ------------------------------------------------------------------------------- */

struct notes {
    unsigned calls;
    uint64_t gpa, len;
};

static void note_write(void *ctx, uint64_t gpa, uint64_t len)
{
    struct notes *n = ctx;
    n->calls++;
    n->gpa = gpa;
    n->len = len;
}

static void test_dma_bounds_and_notify(void **state)
{
    (void)state;
    struct guest_memory mem;
    char err[200];
    assert_int_equal(guest_memory_init(&mem, 16ULL << 20, err, sizeof(err)), 0);
    struct notes n = {0};
    struct dma_space dma = {.mem = &mem, .notify_write = note_write, .ctx = &n};
    uint8_t buf[64];
    memset(buf, 0xab, sizeof(buf));
    assert_int_equal(dma_write(&dma, 0x1000, buf, sizeof(buf)), 0);
    assert_int_equal(n.calls, 1);
    assert_int_equal(n.gpa, 0x1000);
    assert_int_equal(n.len, sizeof(buf));
    uint8_t back[64];
    assert_int_equal(dma_read(&dma, 0x1000, back, sizeof(back)), 0);
    assert_memory_equal(back, buf, sizeof(buf));
    /* Past the end of RAM, wrapping, and into the hole: refused, nothing written or noted. */
    assert_int_equal(dma_write(&dma, (16ULL << 20) - 8, buf, 16), -1);
    assert_int_equal(dma_write(&dma, UINT64_MAX - 4, buf, 16), -1);
    assert_int_equal(dma_read(&dma, 0xC0000000ULL, back, 4), -1);
    assert_null(dma_map(&dma, (16ULL << 20) - 8, 16));
    assert_null(dma_map(&dma, 0, 0));
    assert_int_equal(n.calls, 1);
    /* A mapping is written through, then reported. */
    uint8_t *p = dma_map(&dma, 0x2000, 0x3000);
    assert_non_null(p);
    memset(p, 1, 0x3000);
    dma_mark_written(&dma, 0x2000, 0x3000);
    assert_int_equal(n.calls, 2);
    assert_int_equal(n.len, 0x3000);
    /* Zero-length copies succeed without a note. */
    assert_int_equal(dma_write(&dma, 0x1000, buf, 0), 0);
    assert_int_equal(n.calls, 2);
    /* Without a listener (KVM) writes still land. */
    struct dma_space quiet = {.mem = &mem};
    assert_int_equal(dma_write(&quiet, 0x1000, "x", 1), 0);
    guest_memory_destroy(&mem);
}

/* --- device manager -------------------------------------------------------------------- */

static void test_device_requests(void **state)
{
    (void)state;
    struct device_manager dm = {0};
    char err[300];
    /* Unknown model and unknown option are user errors naming the flag. */
    struct device_request bad[] = {{"no-such-model", "", "--device"}};
    assert_int_equal(devices_prepare(&dm, bad, 1, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "unknown device 'no-such-model'"));
    devices_destroy(&dm);
    struct device_request twice[] = {{"uart16550", "", "--device"}, {"uart16550", "", "--device"}};
    assert_int_equal(devices_prepare(&dm, twice, 2, err, sizeof(err)), 0);
    /* The default COM1 is instance 0; the requested ones are COM2 and COM3. */
    unsigned seen = 0;
    for (size_t i = 0; i < dm.nr; i++)
        if (!strcmp(dm.list[i].model->name, "uart16550"))
            assert_int_equal(dm.list[i].instance, seen++);
    assert_int_equal(seen, 3);
    devices_destroy(&dm);
    struct device_request opt[] = {{"uart16550", "speed=9600", "--device"}};
    assert_int_equal(devices_prepare(&dm, opt, 1, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "--device: unknown option 'speed'"));
    devices_destroy(&dm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bus_unregister_and_remap),
        cmocka_unit_test(test_bus_table_full),
        cmocka_unit_test(test_bus_lookups_during_moves),
        cmocka_unit_test(test_event_loop_dispatch),
        cmocka_unit_test(test_opts),
        cmocka_unit_test(test_range_alloc),
        cmocka_unit_test(test_dma_bounds_and_notify),
        cmocka_unit_test(test_device_requests),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
