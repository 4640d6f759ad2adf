/* Unit tests of the split-virtqueue walker against a real small guest RAM: chains, indirect
 * tables, the used ring and what is reported written, notification suppression both ways,
 * several threads on one queue, every hostile ring shape we know of, and a randomized hostile
 * ring loop that must never crash, hang or read outside RAM. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "hw/virtio/virtqueue.h"
#include "vm/dma.h"
#include "vm/memory.h"

#include <endian.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define RAM_SIZE (16ULL << 20)
#define DESC_GPA 0x10000ULL
#define AVAIL_GPA 0x20000ULL
#define USED_GPA 0x30000ULL
#define IND_GPA 0x40000ULL /* indirect tables, 0x8000 apart */
#define DATA_GPA 0x100000ULL
#define OUTSIDE_GPA (RAM_SIZE + 0x1000)
#define MAX_WRITES 64

struct fixture {
    struct guest_memory mem;
    struct dma_space dma;
    struct virtqueue vq;
    struct vq_elem elem;
    uint16_t size, avail_idx;
    unsigned interrupts, malformed;
    unsigned nr_writes;
    struct {
        uint64_t gpa, len;
    } writes[MAX_WRITES];
};

static void note_write(void *ctx, uint64_t gpa, uint64_t len)
{
    struct fixture *f = ctx;
    unsigned i = __atomic_fetch_add(&f->nr_writes, 1, __ATOMIC_RELAXED); /* threads test */
    if (i < MAX_WRITES) {
        f->writes[i].gpa = gpa;
        f->writes[i].len = len;
    }
}

static void on_interrupt(void *opaque, unsigned index)
{
    struct fixture *f = opaque;
    assert_int_equal(index, 3);
    __atomic_fetch_add(&f->interrupts, 1, __ATOMIC_RELAXED);
}

static void on_malformed(void *opaque, unsigned index)
{
    struct fixture *f = opaque;
    assert_int_equal(index, 3);
    f->malformed++;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    char err[200];
    if (!f || guest_memory_init(&f->mem, RAM_SIZE, err, sizeof(err)) < 0)
        return -1;
    f->dma = (struct dma_space){.mem = &f->mem, .notify_write = note_write, .ctx = f};
    struct vq_hooks hooks = {on_interrupt, on_malformed, f};
    vq_init(&f->vq, &f->dma, 3, &hooks);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    vq_destroy(&f->vq);
    guest_memory_destroy(&f->mem);
    free(f);
    return 0;
}

/* --- the driver's side, written the way a guest would ---------------------------------------- */

static void *host(struct fixture *f, uint64_t gpa, uint64_t len)
{
    void *p = gpa_to_host(&f->mem, gpa, len);
    assert_non_null(p);
    return p;
}

static void put16(struct fixture *f, uint64_t gpa, uint16_t v)
{
    v = htole16(v);
    memcpy(host(f, gpa, 2), &v, 2);
}

static uint16_t get16(struct fixture *f, uint64_t gpa)
{
    uint16_t v;
    memcpy(&v, host(f, gpa, 2), 2);
    return le16toh(v);
}

static uint32_t get32(struct fixture *f, uint64_t gpa)
{
    uint32_t v;
    memcpy(&v, host(f, gpa, 4), 4);
    return le32toh(v);
}

static void set_desc(struct fixture *f, uint64_t table, unsigned i, uint64_t addr, uint32_t len,
                     uint16_t flags, uint16_t next)
{
    uint8_t raw[16];
    uint64_t a = htole64(addr);
    uint32_t l = htole32(len);
    uint16_t fl = htole16(flags), n = htole16(next);
    memcpy(raw, &a, 8);
    memcpy(raw + 8, &l, 4);
    memcpy(raw + 12, &fl, 2);
    memcpy(raw + 14, &n, 2);
    memcpy(host(f, table + 16ULL * i, 16), raw, 16);
}

static void start(struct fixture *f, uint16_t size, bool event_idx, bool indirect)
{
    memset(host(f, DESC_GPA, 0x40000), 0, 0x40000);
    f->size = size;
    f->avail_idx = 0;
    struct vq_layout l = {size, DESC_GPA, AVAIL_GPA, USED_GPA, event_idx, indirect};
    assert_int_equal(vq_start(&f->vq, &l), 0);
}

static void make_avail(struct fixture *f, uint16_t head)
{
    put16(f, AVAIL_GPA + 4 + 2ULL * (f->avail_idx % f->size), head);
    f->avail_idx++;
    put16(f, AVAIL_GPA + 2, f->avail_idx);
}

static uint16_t used_idx(struct fixture *f)
{
    return get16(f, USED_GPA + 2);
}

static void expect_broken(struct fixture *f)
{
    assert_int_equal(vq_pop(&f->vq, &f->elem), -1);
    assert_int_equal(f->malformed, 1);
    /* The queue stays broken, and says so only once. */
    assert_int_equal(vq_pop(&f->vq, &f->elem), -1);
    assert_int_equal(f->malformed, 1);
}

/* --- normal operation ------------------------------------------------------------------------- */

static void test_chain_out_then_in(void **state)
{
    struct fixture *f = *state;
    start(f, 8, false, false);
    set_desc(f, DESC_GPA, 5, DATA_GPA, 3, VRING_DESC_F_NEXT, 2);
    set_desc(f, DESC_GPA, 2, DATA_GPA + 0x100, 4, VRING_DESC_F_NEXT, 7);
    set_desc(f, DESC_GPA, 7, DATA_GPA + 0x200, 0, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 0);
    set_desc(f, DESC_GPA, 0, DATA_GPA + 0x300, 2, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 1);
    set_desc(f, DESC_GPA, 1, DATA_GPA + 0x400, 6, VRING_DESC_F_WRITE, 0);
    memcpy(host(f, DATA_GPA, 3), "abc", 3);
    memcpy(host(f, DATA_GPA + 0x100, 4), "defg", 4);
    make_avail(f, 5);

    assert_int_equal(vq_pop(&f->vq, &f->elem), 1);
    struct vq_elem *e = &f->elem;
    assert_int_equal(e->head, 5);
    assert_int_equal(e->nr_out, 2);
    assert_int_equal(e->nr_in, 2); /* the zero-length buffer is skipped */
    assert_int_equal(e->out_len, 7);
    assert_int_equal(e->in_len, 8);
    assert_int_equal(e->buf[0].gpa, DATA_GPA);
    assert_ptr_equal(e->buf[0].host, host(f, DATA_GPA, 3));
    assert_int_equal(e->buf[3].gpa, DATA_GPA + 0x400);
    assert_int_equal(e->buf[3].len, 6);

    char got[8] = "";
    assert_int_equal(vq_elem_read(e, 0, got, sizeof(got)), 7);
    assert_memory_equal(got, "abcdefg", 7);
    assert_int_equal(vq_elem_read(e, 2, got, 3), 3);
    assert_memory_equal(got, "cde", 3);
    assert_int_equal(vq_elem_read(e, 9, got, 3), 0);
    assert_int_equal(vq_elem_write(e, 1, "WXYZ", 4), 4);
    assert_memory_equal(host(f, DATA_GPA + 0x301, 1), "W", 1);
    assert_memory_equal(host(f, DATA_GPA + 0x400, 3), "XYZ", 3);
    assert_int_equal(vq_elem_write(e, 6, "12345", 5), 2); /* only 8 writable bytes */

    assert_int_equal(vq_pop(&f->vq, &f->elem), 0);
    assert_int_equal(f->malformed, 0);
}

static void test_indirect_tables(void **state)
{
    struct fixture *f = *state;
    start(f, 4, false, true);
    /* Head 1 is an indirect table of three: one readable, two writable (WRITE on the
     * descriptor pointing to the table is ignored, spec 2.7.5.3.2). */
    set_desc(f, DESC_GPA, 1, IND_GPA, 48, VRING_DESC_F_INDIRECT | VRING_DESC_F_WRITE, 0);
    set_desc(f, IND_GPA, 0, DATA_GPA, 16, VRING_DESC_F_NEXT, 2);
    set_desc(f, IND_GPA, 2, DATA_GPA + 0x1000, 32, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 1);
    set_desc(f, IND_GPA, 1, DATA_GPA + 0x2000, 64, VRING_DESC_F_WRITE, 0);
    make_avail(f, 1);
    /* Head 3: a direct readable descriptor followed by an indirect one (also valid). */
    set_desc(f, DESC_GPA, 3, DATA_GPA + 0x3000, 8, VRING_DESC_F_NEXT, 0);
    set_desc(f, DESC_GPA, 0, IND_GPA + 0x8000, 16, VRING_DESC_F_INDIRECT, 0);
    set_desc(f, IND_GPA + 0x8000, 0, DATA_GPA + 0x4000, 100, VRING_DESC_F_WRITE, 0);
    make_avail(f, 3);

    assert_int_equal(vq_pop(&f->vq, &f->elem), 1);
    assert_int_equal(f->elem.head, 1);
    assert_int_equal(f->elem.nr_out, 1);
    assert_int_equal(f->elem.nr_in, 2);
    assert_int_equal(f->elem.in_len, 96);
    assert_int_equal(f->elem.buf[1].gpa, DATA_GPA + 0x1000);
    assert_int_equal(f->elem.buf[2].gpa, DATA_GPA + 0x2000);

    assert_int_equal(vq_pop(&f->vq, &f->elem), 1);
    assert_int_equal(f->elem.head, 3);
    assert_int_equal(f->elem.nr_out, 1);
    assert_int_equal(f->elem.nr_in, 1);
    assert_int_equal(f->elem.out_len, 8);
    assert_int_equal(f->elem.in_len, 100);
    assert_int_equal(vq_pop(&f->vq, &f->elem), 0);
}

static void test_push_used_ring_and_written_ranges(void **state)
{
    struct fixture *f = *state;
    start(f, 4, false, false);
    set_desc(f, DESC_GPA, 2, DATA_GPA, 10, VRING_DESC_F_NEXT, 3);
    set_desc(f, DESC_GPA, 3, DATA_GPA + 0x1000, 100, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 0);
    set_desc(f, DESC_GPA, 0, DATA_GPA + 0x2000, 100, VRING_DESC_F_WRITE, 0);
    make_avail(f, 2);
    assert_int_equal(vq_pop(&f->vq, &f->elem), 1);
    f->nr_writes = 0;
    vq_push(&f->vq, &f->elem, 150);
    /* Exactly the written bytes: all of the first writable buffer, half of the second. */
    assert_int_equal(f->nr_writes, 2);
    assert_int_equal(f->writes[0].gpa, DATA_GPA + 0x1000);
    assert_int_equal(f->writes[0].len, 100);
    assert_int_equal(f->writes[1].gpa, DATA_GPA + 0x2000);
    assert_int_equal(f->writes[1].len, 50);
    assert_int_equal(used_idx(f), 1);
    assert_int_equal(get32(f, USED_GPA + 4), 2);
    assert_int_equal(get32(f, USED_GPA + 8), 150);

    /* More than the buffers hold is clamped; nothing written reports nothing. */
    make_avail(f, 2);
    assert_int_equal(vq_pop(&f->vq, &f->elem), 1);
    f->nr_writes = 0;
    vq_push(&f->vq, &f->elem, 1000);
    assert_int_equal(get32(f, USED_GPA + 16), 200);
    assert_int_equal(f->nr_writes, 2);
    make_avail(f, 2);
    assert_int_equal(vq_pop(&f->vq, &f->elem), 1);
    f->nr_writes = 0;
    vq_push(&f->vq, &f->elem, 0);
    assert_int_equal(f->nr_writes, 0);
    assert_int_equal(used_idx(f), 3);
    /* The used ring wraps at the queue size. */
    for (int i = 0; i < 3; i++) {
        make_avail(f, 2);
        assert_int_equal(vq_pop(&f->vq, &f->elem), 1);
        vq_push(&f->vq, &f->elem, 7);
    }
    assert_int_equal(used_idx(f), 6);
    assert_int_equal(get32(f, USED_GPA + 4 + 8 * 1 + 4), 7); /* entry 5 went to slot 1 */
}

static void test_need_event_edges(void **state)
{
    (void)state;
    /* Fire when the moved-over range [old, new) contains event. */
    assert_true(vring_need_event(0, 1, 0));
    assert_false(vring_need_event(1, 1, 0));
    assert_true(vring_need_event(1, 2, 0));
    assert_false(vring_need_event(5, 5, 5));
    assert_true(vring_need_event(4, 5, 4));
    assert_false(vring_need_event(3, 5, 4)); /* already passed */
    /* Across the 16-bit wrap. */
    assert_true(vring_need_event(0xffff, 0, 0xffff));
    assert_true(vring_need_event(0xfffe, 2, 0xfff0));
    assert_true(vring_need_event(1, 2, 0xfff0));
    assert_false(vring_need_event(2, 2, 0xfff0));
    assert_false(vring_need_event(0xffef, 2, 0xfff0));
}

static void push_one(struct fixture *f)
{
    set_desc(f, DESC_GPA, 0, DATA_GPA, 4, VRING_DESC_F_WRITE, 0);
    make_avail(f, 0);
    assert_int_equal(vq_pop(&f->vq, &f->elem), 1);
    vq_push(&f->vq, &f->elem, 4);
}

static void test_event_idx_interrupts(void **state)
{
    struct fixture *f = *state;
    start(f, 8, true, false);
    uint64_t used_event = AVAIL_GPA + 4 + 2 * 8;
    put16(f, used_event, 0);
    push_one(f); /* used idx 0 -> 1 passes used_event 0 */
    vq_notify(&f->vq);
    assert_int_equal(f->interrupts, 1);
    vq_notify(&f->vq); /* nothing new */
    assert_int_equal(f->interrupts, 1);
    push_one(f); /* 1 -> 2: used_event 0 already passed */
    vq_notify(&f->vq);
    assert_int_equal(f->interrupts, 1);
    put16(f, used_event, 3);
    push_one(f); /* 2 -> 3 */
    vq_notify(&f->vq);
    assert_int_equal(f->interrupts, 1);
    push_one(f);
    push_one(f); /* 3 -> 5 passes 3 in one batch */
    vq_notify(&f->vq);
    assert_int_equal(f->interrupts, 2);
    /* The flag is ignored with EVENT_IDX. */
    put16(f, AVAIL_GPA, VRING_AVAIL_F_NO_INTERRUPT);
    put16(f, used_event, 5);
    push_one(f);
    vq_notify(&f->vq);
    assert_int_equal(f->interrupts, 3);
}

static void test_no_interrupt_flag(void **state)
{
    struct fixture *f = *state;
    start(f, 8, false, false);
    vq_notify(&f->vq); /* nothing pushed */
    assert_int_equal(f->interrupts, 0);
    push_one(f);
    vq_notify(&f->vq);
    assert_int_equal(f->interrupts, 1);
    put16(f, AVAIL_GPA, VRING_AVAIL_F_NO_INTERRUPT);
    push_one(f);
    vq_notify(&f->vq);
    assert_int_equal(f->interrupts, 1);
    put16(f, AVAIL_GPA, 0);
    push_one(f);
    vq_notify(&f->vq);
    assert_int_equal(f->interrupts, 2);
}

static void test_kick_suppression(void **state)
{
    struct fixture *f = *state;
    uint64_t avail_event = USED_GPA + 4 + 8 * 8;
    /* Without EVENT_IDX: the used ring's NO_NOTIFY flag. */
    start(f, 8, false, false);
    assert_false(vq_set_notification(&f->vq, false));
    assert_int_equal(get16(f, USED_GPA), VRING_USED_F_NO_NOTIFY);
    set_desc(f, DESC_GPA, 0, DATA_GPA, 4, 0, 0);
    make_avail(f, 0);
    assert_true(vq_set_notification(&f->vq, true)); /* arrived meanwhile: pop again */
    assert_int_equal(get16(f, USED_GPA), 0);
    assert_int_equal(vq_pop(&f->vq, &f->elem), 1);
    assert_false(vq_set_notification(&f->vq, true));

    /* With EVENT_IDX: avail_event follows the device, and stays behind while disabled. */
    start(f, 8, true, false);
    set_desc(f, DESC_GPA, 0, DATA_GPA, 4, 0, 0);
    make_avail(f, 0);
    make_avail(f, 0);
    assert_int_equal(vq_pop(&f->vq, &f->elem), 1);
    assert_int_equal(get16(f, avail_event), 1);
    vq_set_notification(&f->vq, false);
    assert_int_equal(get16(f, avail_event), 0); /* already passed: no kicks */
    assert_int_equal(vq_pop(&f->vq, &f->elem), 1);
    assert_int_equal(get16(f, avail_event), 0);
    assert_int_equal(vq_pop(&f->vq, &f->elem), 0);
    assert_false(vq_set_notification(&f->vq, true));
    assert_int_equal(get16(f, avail_event), 2);
    assert_int_equal(get16(f, USED_GPA), 0); /* flags stay 0 with EVENT_IDX */
    /* An empty pop publishes where to kick from. */
    put16(f, avail_event, 0x1234);
    assert_int_equal(vq_pop(&f->vq, &f->elem), 0);
    assert_int_equal(get16(f, avail_event), 2);
}

static void test_stopped_queue(void **state)
{
    struct fixture *f = *state;
    assert_false(vq_ready(&f->vq));
    assert_int_equal(vq_pop(&f->vq, &f->elem), 0);
    start(f, 8, false, false);
    assert_true(vq_ready(&f->vq));
    assert_int_equal(vq_size(&f->vq), 8);
    assert_int_equal(vq_index(&f->vq), 3);
    push_one(f);
    vq_stop(&f->vq);
    uint16_t before = used_idx(f);
    vq_push(&f->vq, &f->elem, 4);
    vq_notify(&f->vq);
    assert_int_equal(used_idx(f), before);
    assert_int_equal(vq_pop(&f->vq, &f->elem), 0);
    assert_false(vq_set_notification(&f->vq, true));
}

/* --- several threads on one queue ---------------------------------------------------------- */

#define MT_REQUESTS 256

/* No cmocka asserts off the main thread: the result goes back through the return value. */
static void *mt_worker(void *arg)
{
    struct fixture *f = arg;
    struct vq_elem *elem = malloc(sizeof(*elem));
    if (!elem)
        return (void *)1;
    int rc;
    while ((rc = vq_pop(&f->vq, elem)) == 1) {
        vq_push(&f->vq, elem, (uint32_t)elem->in_len);
        vq_notify(&f->vq);
    }
    free(elem);
    return rc == 0 ? NULL : (void *)1;
}

static void test_threads_share_a_queue(void **state)
{
    struct fixture *f = *state;
    start(f, MT_REQUESTS, false, false);
    for (unsigned i = 0; i < MT_REQUESTS; i++) {
        set_desc(f, DESC_GPA, i, DATA_GPA + 64 * i, 1 + i, VRING_DESC_F_WRITE, 0);
        make_avail(f, (uint16_t)i);
    }
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, mt_worker, f), 0);
    for (int i = 0; i < 4; i++) {
        void *failed;
        pthread_join(t[i], &failed);
        assert_null(failed);
    }
    assert_int_equal(used_idx(f), MT_REQUESTS);
    bool seen[MT_REQUESTS] = {false};
    for (unsigned i = 0; i < MT_REQUESTS; i++) {
        uint32_t id = get32(f, USED_GPA + 4 + 8 * i), len = get32(f, USED_GPA + 8 + 8 * i);
        assert_true(id < MT_REQUESTS);
        assert_false(seen[id]);
        seen[id] = true;
        assert_int_equal(len, 1 + id);
    }
    assert_true(f->interrupts >= 1);
}

/* --- hostile rings ---------------------------------------------------------------------------- */

static void test_hostile_loop(void **state)
{
    struct fixture *f = *state;
    start(f, 8, false, false);
    set_desc(f, DESC_GPA, 0, DATA_GPA, 4, VRING_DESC_F_NEXT, 1);
    set_desc(f, DESC_GPA, 1, DATA_GPA, 4, VRING_DESC_F_NEXT, 0);
    make_avail(f, 0);
    expect_broken(f);
}

static void test_hostile_self_loop_longer_than_queue(void **state)
{
    struct fixture *f = *state;
    start(f, 1, false, false);
    set_desc(f, DESC_GPA, 0, DATA_GPA, 0, VRING_DESC_F_NEXT, 0); /* zero-length, forever */
    make_avail(f, 0);
    expect_broken(f);
}

static void test_hostile_outside_ram(void **state)
{
    struct fixture *f = *state;
    start(f, 8, false, false);
    set_desc(f, DESC_GPA, 0, RAM_SIZE - 8, 16, 0, 0); /* straddles the end */
    make_avail(f, 0);
    expect_broken(f);
    f->malformed = 0;
    start(f, 8, false, false);
    set_desc(f, DESC_GPA, 0, OUTSIDE_GPA, 1, 0, 0);
    make_avail(f, 0);
    expect_broken(f);
}

static void test_hostile_length_overflow(void **state)
{
    struct fixture *f = *state;
    start(f, 8, false, false);
    set_desc(f, DESC_GPA, 0, 0xfffffffffffff000ULL, 0x2000, 0, 0);
    make_avail(f, 0);
    expect_broken(f);
}

static void test_hostile_total_over_4g(void **state)
{
    struct fixture *f = *state;
    start(f, 2, false, true);
    /* 300 overlapping 15 MiB writable buffers: each is RAM, the sum is over 4 GiB. */
    set_desc(f, DESC_GPA, 0, IND_GPA, 300 * 16, VRING_DESC_F_INDIRECT, 0);
    for (unsigned i = 0; i < 300; i++)
        set_desc(f, IND_GPA, i, 0, 15U << 20, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, i + 1);
    set_desc(f, IND_GPA, 299, 0, 15U << 20, VRING_DESC_F_WRITE, 0);
    make_avail(f, 0);
    expect_broken(f);
}

static void test_hostile_too_many_segments(void **state)
{
    struct fixture *f = *state;
    start(f, 2, false, true);
    /* One direct buffer, then a full indirect table: VQ_MAX_SEGS + 1 buffers. */
    set_desc(f, DESC_GPA, 0, DATA_GPA, 1, VRING_DESC_F_NEXT, 1);
    set_desc(f, DESC_GPA, 1, IND_GPA, VQ_MAX_SEGS * 16, VRING_DESC_F_INDIRECT, 0);
    for (unsigned i = 0; i < VQ_MAX_SEGS; i++)
        set_desc(f, IND_GPA, i, DATA_GPA, 1, i + 1 < VQ_MAX_SEGS ? VRING_DESC_F_NEXT : 0, i + 1);
    make_avail(f, 0);
    expect_broken(f);
    /* Exactly VQ_MAX_SEGS is fine. */
    f->malformed = 0;
    start(f, 2, false, true);
    set_desc(f, DESC_GPA, 1, IND_GPA, VQ_MAX_SEGS * 16, VRING_DESC_F_INDIRECT, 0);
    for (unsigned i = 0; i < VQ_MAX_SEGS; i++)
        set_desc(f, IND_GPA, i, DATA_GPA, 1, i + 1 < VQ_MAX_SEGS ? VRING_DESC_F_NEXT : 0, i + 1);
    make_avail(f, 1);
    assert_int_equal(vq_pop(&f->vq, &f->elem), 1);
    assert_int_equal(f->elem.nr_out, VQ_MAX_SEGS);
}

static void test_hostile_nested_indirect(void **state)
{
    struct fixture *f = *state;
    start(f, 4, false, true);
    set_desc(f, DESC_GPA, 0, IND_GPA, 32, VRING_DESC_F_INDIRECT, 0);
    set_desc(f, IND_GPA, 0, DATA_GPA, 4, VRING_DESC_F_NEXT, 1);
    set_desc(f, IND_GPA, 1, IND_GPA, 32, VRING_DESC_F_INDIRECT, 0);
    make_avail(f, 0);
    expect_broken(f);
}

static void indirect_len_case(struct fixture *f, uint32_t len)
{
    f->malformed = 0;
    start(f, 4, false, true);
    set_desc(f, DESC_GPA, 0, IND_GPA, len, VRING_DESC_F_INDIRECT, 0);
    make_avail(f, 0);
    expect_broken(f);
}

static void test_hostile_indirect_lengths(void **state)
{
    struct fixture *f = *state;
    indirect_len_case(f, 0);
    indirect_len_case(f, 15);
    indirect_len_case(f, 17);
    indirect_len_case(f, (VQ_MAX_SEGS + 1) * 16);
    indirect_len_case(f, 0xfffffff0);
    /* A table whose chain points past its end. */
    f->malformed = 0;
    start(f, 4, false, true);
    set_desc(f, DESC_GPA, 0, IND_GPA, 32, VRING_DESC_F_INDIRECT, 0);
    set_desc(f, IND_GPA, 0, DATA_GPA, 4, VRING_DESC_F_NEXT, 2);
    make_avail(f, 0);
    expect_broken(f);
    /* A table outside RAM. */
    f->malformed = 0;
    start(f, 4, false, true);
    set_desc(f, DESC_GPA, 0, OUTSIDE_GPA, 32, VRING_DESC_F_INDIRECT, 0);
    make_avail(f, 0);
    expect_broken(f);
}

static void test_hostile_indirect_not_negotiated(void **state)
{
    struct fixture *f = *state;
    start(f, 4, false, false);
    set_desc(f, DESC_GPA, 0, IND_GPA, 16, VRING_DESC_F_INDIRECT, 0);
    set_desc(f, IND_GPA, 0, DATA_GPA, 4, 0, 0);
    make_avail(f, 0);
    expect_broken(f);
}

static void test_hostile_indirect_with_next(void **state)
{
    struct fixture *f = *state;
    start(f, 4, false, true);
    set_desc(f, DESC_GPA, 0, IND_GPA, 16, VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, 1);
    set_desc(f, IND_GPA, 0, DATA_GPA, 4, 0, 0);
    set_desc(f, DESC_GPA, 1, DATA_GPA, 4, 0, 0);
    make_avail(f, 0);
    expect_broken(f);
}

static void test_hostile_readable_after_writable(void **state)
{
    struct fixture *f = *state;
    start(f, 4, false, false);
    set_desc(f, DESC_GPA, 0, DATA_GPA, 4, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
    set_desc(f, DESC_GPA, 1, DATA_GPA, 4, 0, 0);
    make_avail(f, 0);
    expect_broken(f);
}

static void test_hostile_avail_index_jump(void **state)
{
    struct fixture *f = *state;
    start(f, 4, false, false);
    set_desc(f, DESC_GPA, 0, DATA_GPA, 4, 0, 0);
    put16(f, AVAIL_GPA + 2, 5); /* five outstanding on a queue of four */
    expect_broken(f);
}

static void test_hostile_head_and_next_out_of_range(void **state)
{
    struct fixture *f = *state;
    start(f, 4, false, false);
    make_avail(f, 4);
    expect_broken(f);
    f->malformed = 0;
    start(f, 4, false, false);
    set_desc(f, DESC_GPA, 0, DATA_GPA, 4, VRING_DESC_F_NEXT, 4);
    make_avail(f, 0);
    expect_broken(f);
}

static void test_hostile_ring_addresses(void **state)
{
    struct fixture *f = *state;
    struct vq_layout good = {8, DESC_GPA, AVAIL_GPA, USED_GPA, false, false};
    struct vq_layout l = good;
    l.desc = OUTSIDE_GPA;
    assert_int_equal(vq_start(&f->vq, &l), -1);
    l = good;
    l.avail = RAM_SIZE - 10; /* the ring's end is outside */
    assert_int_equal(vq_start(&f->vq, &l), -1);
    l = good;
    l.used = 0xfffffffffffffff0ULL;
    assert_int_equal(vq_start(&f->vq, &l), -1);
    l = good;
    l.used = USED_GPA + 2; /* misaligned */
    assert_int_equal(vq_start(&f->vq, &l), -1);
    l = good;
    l.desc = DESC_GPA + 8;
    assert_int_equal(vq_start(&f->vq, &l), -1);
    l = good;
    l.avail = AVAIL_GPA + 1;
    assert_int_equal(vq_start(&f->vq, &l), -1);
    static const uint16_t bad_sizes[] = {0, 3, 6, 2 * VQ_MAX_SIZE, 0xffff};
    for (size_t i = 0; i < sizeof(bad_sizes) / sizeof(bad_sizes[0]); i++) {
        l = good;
        l.size = bad_sizes[i];
        assert_int_equal(vq_start(&f->vq, &l), -1);
    }
    assert_false(vq_ready(&f->vq));
    l = good;
    l.size = VQ_MAX_SIZE;
    assert_int_equal(vq_start(&f->vq, &l), 0);
}

/* --- randomized hostile rings ----------------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* How often a field is garbage: one in `evil` (varied per ring, so some rings are thoroughly
 * hostile and some are mostly valid, and the walker gets deep into both). */
static unsigned evil = 2;

static bool garbage(void)
{
    return rnd() % evil == 0;
}

static uint64_t fuzz_addr(void)
{
    if (!garbage())
        return DATA_GPA + rnd() % (RAM_SIZE - DATA_GPA - 0x10000);
    switch (rnd() % 3) {
    case 0:
        return rnd();
    case 1:
        return RAM_SIZE - (rnd() % 64);
    default:
        return IND_GPA + 16 * (rnd() % 4); /* indirect tables, or a buffer over one */
    }
}

static uint32_t fuzz_len(void)
{
    if (!garbage())
        return (uint32_t)(rnd() % 8192);
    switch (rnd() % 3) {
    case 0:
        return (uint32_t)rnd();
    case 1:
        return 0;
    default:
        return 16 * (uint32_t)(rnd() % 8); /* indirect-looking */
    }
}

static uint16_t fuzz_flags(void)
{
    return (uint16_t)(garbage() ? rnd() : rnd() % 4);
}

static void fuzz_table(struct fixture *f, uint64_t table, unsigned entries, unsigned next_range)
{
    for (unsigned i = 0; i < entries; i++)
        set_desc(f, table, i, fuzz_addr(), fuzz_len(), fuzz_flags(),
                 (uint16_t)(garbage() ? rnd() : rnd() % next_range));
}

/* Every buffer of a request the walker accepted is RAM and adds up. */
static void check_elem(struct fixture *f)
{
    const struct vq_elem *e = &f->elem;
    assert_true(e->nr_out + e->nr_in <= VQ_MAX_SEGS);
    assert_true(e->head < f->size);
    uint64_t out = 0, in = 0;
    for (unsigned i = 0; i < e->nr_out + e->nr_in; i++) {
        assert_true(e->buf[i].len > 0);
        assert_ptr_equal(e->buf[i].host, gpa_to_host(&f->mem, e->buf[i].gpa, e->buf[i].len));
        *(i < e->nr_out ? &out : &in) += e->buf[i].len;
    }
    assert_int_equal(out, e->out_len);
    assert_int_equal(in, e->in_len);
    assert_true(in <= UINT32_MAX && out <= UINT32_MAX);
}

static void fuzz_once(struct fixture *f)
{
    uint16_t size = (uint16_t)(1u << (rnd() % 9));
    evil = 1 + (unsigned)(rnd() % 32);
    f->malformed = 0;
    start(f, size, rnd() & 1, rnd() & 1);
    fuzz_table(f, DESC_GPA, size, size);
    for (unsigned t = 0; t < 4; t++)
        fuzz_table(f, IND_GPA + 16ULL * t, 8, 8);
    for (unsigned i = 0; i < size; i++)
        put16(f, AVAIL_GPA + 4 + 2ULL * i, (uint16_t)(garbage() ? rnd() : rnd() % size));
    put16(f, AVAIL_GPA, (uint16_t)rnd());
    put16(f, AVAIL_GPA + 2, (uint16_t)(garbage() ? rnd() : 1 + rnd() % size));
    put16(f, AVAIL_GPA + 4 + 2ULL * size, (uint16_t)rnd());
    /* Each pop consumes an entry or breaks the queue, so this always ends. */
    for (unsigned n = 0; n < size + 2u; n++) {
        int rc = vq_pop(&f->vq, &f->elem);
        if (rc <= 0) {
            assert_true(rc == 0 || f->malformed == 1);
            break;
        }
        check_elem(f);
        vq_push(&f->vq, &f->elem, (uint32_t)rnd());
        vq_notify(&f->vq);
        if (rnd() % 4 == 0)
            vq_set_notification(&f->vq, rnd() & 1);
    }
}

static void test_fuzz_hostile_rings(void **state)
{
    struct fixture *f = *state;
    for (unsigned i = 0; i < 20000; i++)
        fuzz_once(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_chain_out_then_in, setup, teardown),
        cmocka_unit_test_setup_teardown(test_indirect_tables, setup, teardown),
        cmocka_unit_test_setup_teardown(test_push_used_ring_and_written_ranges, setup, teardown),
        cmocka_unit_test(test_need_event_edges),
        cmocka_unit_test_setup_teardown(test_event_idx_interrupts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_interrupt_flag, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kick_suppression, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stopped_queue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads_share_a_queue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_loop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_self_loop_longer_than_queue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_outside_ram, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_length_overflow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_total_over_4g, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_too_many_segments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_nested_indirect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_indirect_lengths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_indirect_not_negotiated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_indirect_with_next, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_readable_after_writable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_avail_index_jump, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_head_and_next_out_of_range, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_ring_addresses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fuzz_hostile_rings, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
