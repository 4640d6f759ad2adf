/* Unit tests: virtio-blk, virtio-rng and virtio-console.
 *
 * First the request checker (blk_parse_request) on handcrafted chains: every request type,
 * any framing (header, data and status sharing buffers), every malformed or out-of-bounds
 * request we can think of, each with the status the device must answer. Then the devices
 * themselves through the real virtio-pci transport and virtqueues, driven as a guest driver
 * would (rings in a fake guest RAM, doorbells through the MMIO bus) with the machine's event
 * loop delivering block completions: config space and features, every request type against a
 * real image on both I/O backends, 40 requests in flight, reset with I/O in flight, a hostile
 * ring, creation errors; random bytes; console output, flow-controlled input, emergency
 * write. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "hw/virtio/virtio_blk.h"
#include "pci_fakes.h"
#include "util/opts.h"
#include "vm/event_loop.h"
#include "vm/memory.h"

#include <endian.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CAPACITY 2048 /* sectors: a 1 MiB disk */

struct chain {
    struct vq_elem elem;
    uint8_t arena[256 * 1024];
    size_t used;
    struct iovec iov[BLK_SEG_MAX];
    struct blk_request req;
};

static int setup(void **state)
{
    struct chain *c = calloc(1, sizeof(*c));
    assert_non_null(c);
    *state = c;
    return 0;
}

static int teardown(void **state)
{
    free(*state);
    return 0;
}

static void reset_chain(struct chain *c)
{
    memset(&c->elem, 0, sizeof(c->elem));
    memset(c->arena, 0xee, sizeof(c->arena));
    c->used = 0;
}

/* Append a buffer of len bytes (readable ones must come first, as vq_pop gives them). */
static uint8_t *add(struct chain *c, uint32_t len, bool writable)
{
    struct vq_elem *e = &c->elem;
    assert_true(c->used + len <= sizeof(c->arena));
    assert_true(writable || e->nr_in == 0);
    uint8_t *p = c->arena + c->used;
    e->buf[e->nr_out + e->nr_in] = (struct vq_buf){p, len, 0x100000 + c->used};
    c->used += len;
    if (writable) {
        e->nr_in++;
        e->in_len += len;
    } else {
        e->nr_out++;
        e->out_len += len;
    }
    return p;
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)v);
    put32(p + 4, (uint32_t)(v >> 32));
}

static uint8_t *add_header(struct chain *c, uint32_t type, uint64_t sector, uint32_t extra)
{
    uint8_t *h = add(c, VIRTIO_BLK_HDR_SIZE + extra, false);
    put32(h, type);
    put32(h + 4, 0);
    put64(h + 8, sector);
    return h;
}

static void add_segment(struct chain *c, uint64_t sector, uint32_t num, uint32_t flags)
{
    uint8_t *s = add(c, VIRTIO_BLK_DWZ_SEG_SIZE, false);
    put64(s, sector);
    put32(s + 8, num);
    put32(s + 12, flags);
}

static int parse(struct chain *c, bool readonly)
{
    struct blk_limits lim = {CAPACITY, readonly};
    return blk_parse_request(&c->elem, &lim, &c->req, c->iov);
}

static void test_read(void **state)
{
    struct chain *c = *state;
    reset_chain(c);
    add_header(c, VIRTIO_BLK_T_IN, 2, 0);
    uint8_t *data = add(c, 4096, true);
    uint8_t *status = add(c, 1, true);
    assert_int_equal(parse(c, false), VIRTIO_BLK_S_OK);
    assert_int_equal(c->req.type, VIRTIO_BLK_T_IN);
    assert_int_equal(c->req.offset, 1024);
    assert_int_equal(c->req.len, 4096);
    assert_int_equal(c->req.niov, 1);
    assert_ptr_equal(c->iov[0].iov_base, data);
    assert_int_equal(c->iov[0].iov_len, 4096);
    assert_ptr_equal(c->req.status, status);
    assert_int_equal(c->req.written, 4097);
    /* Reads are fine on a read-only disk, up to the last sector. */
    reset_chain(c);
    add_header(c, VIRTIO_BLK_T_IN, CAPACITY - 1, 0);
    add(c, 512, true);
    add(c, 1, true);
    assert_int_equal(parse(c, true), VIRTIO_BLK_S_OK);
}

/* virtio 1.x has no framing rules: the data and the status byte may share one buffer, the
 * header may carry the data after it, data may be split anywhere. */
static void test_any_layout(void **state)
{
    struct chain *c = *state;
    reset_chain(c);
    add_header(c, VIRTIO_BLK_T_IN, 0, 0);
    uint8_t *both = add(c, 1024 + 1, true);
    assert_int_equal(parse(c, false), VIRTIO_BLK_S_OK);
    assert_int_equal(c->req.niov, 1);
    assert_ptr_equal(c->iov[0].iov_base, both);
    assert_int_equal(c->iov[0].iov_len, 1024);
    assert_ptr_equal(c->req.status, both + 1024);

    reset_chain(c);
    uint8_t *h = add_header(c, VIRTIO_BLK_T_OUT, 4, 100); /* header + 100 data bytes */
    uint8_t *rest = add(c, 412, false);
    uint8_t *more = add(c, 512, false);
    add(c, 1, true);
    add(c, 0, true); /* an empty writable buffer after the status changes nothing */
    assert_int_equal(parse(c, false), VIRTIO_BLK_S_OK);
    assert_int_equal(c->req.len, 1024);
    assert_int_equal(c->req.offset, 2048);
    assert_int_equal(c->req.niov, 3);
    assert_ptr_equal(c->iov[0].iov_base, h + VIRTIO_BLK_HDR_SIZE);
    assert_int_equal(c->iov[0].iov_len, 100);
    assert_ptr_equal(c->iov[1].iov_base, rest);
    assert_ptr_equal(c->iov[2].iov_base, more);
    assert_int_equal(c->req.written, 1);

    /* The header itself split over two buffers. */
    reset_chain(c);
    uint8_t *h1 = add(c, 6, false), *h2 = add(c, 10, false);
    uint8_t full[16];
    put32(full, VIRTIO_BLK_T_IN);
    put32(full + 4, 0);
    put64(full + 8, 7);
    memcpy(h1, full, 6);
    memcpy(h2, full + 6, 10);
    add(c, 513, true);
    assert_int_equal(parse(c, false), VIRTIO_BLK_S_OK);
    assert_int_equal(c->req.sector, 7);
    assert_int_equal(c->req.offset, 7 * 512);
}

static void test_write(void **state)
{
    struct chain *c = *state;
    reset_chain(c);
    add_header(c, VIRTIO_BLK_T_OUT, 10, 0);
    uint8_t *a = add(c, 512, false), *b = add(c, 1536, false);
    uint8_t *status = add(c, 1, true);
    assert_int_equal(parse(c, false), VIRTIO_BLK_S_OK);
    assert_int_equal(c->req.offset, 5120);
    assert_int_equal(c->req.len, 2048);
    assert_int_equal(c->req.niov, 2);
    assert_ptr_equal(c->iov[0].iov_base, a);
    assert_ptr_equal(c->iov[1].iov_base, b);
    assert_int_equal(c->iov[1].iov_len, 1536);
    assert_ptr_equal(c->req.status, status);
    assert_int_equal(c->req.written, 1);
    /* Refused on a read-only disk, with a status the guest can see. */
    assert_int_equal(parse(c, true), VIRTIO_BLK_S_IOERR);
    assert_ptr_equal(c->req.status, status);
}

static void test_flush_and_get_id(void **state)
{
    struct chain *c = *state;
    reset_chain(c);
    add_header(c, VIRTIO_BLK_T_FLUSH, 0, 0);
    add(c, 1, true);
    assert_int_equal(parse(c, false), VIRTIO_BLK_S_OK);
    assert_int_equal(c->req.type, VIRTIO_BLK_T_FLUSH);
    assert_int_equal(parse(c, true), VIRTIO_BLK_S_OK); /* flushing a read-only disk is fine */

    reset_chain(c);
    add_header(c, VIRTIO_BLK_T_GET_ID, 0, 0);
    add(c, VIRTIO_BLK_ID_BYTES, true);
    add(c, 1, true);
    assert_int_equal(parse(c, false), VIRTIO_BLK_S_OK);
    assert_int_equal(c->req.id_len, VIRTIO_BLK_ID_BYTES);
    assert_int_equal(c->req.written, VIRTIO_BLK_ID_BYTES + 1);
    /* A short ID buffer gets what fits; a long one no more than the ID. */
    reset_chain(c);
    add_header(c, VIRTIO_BLK_T_GET_ID, 0, 0);
    add(c, 8 + 1, true);
    assert_int_equal(parse(c, false), VIRTIO_BLK_S_OK);
    assert_int_equal(c->req.id_len, 8);
    reset_chain(c);
    add_header(c, VIRTIO_BLK_T_GET_ID, 0, 0);
    add(c, 512 + 1, true);
    assert_int_equal(parse(c, false), VIRTIO_BLK_S_OK);
    assert_int_equal(c->req.id_len, VIRTIO_BLK_ID_BYTES);
}

static void test_discard_and_write_zeroes(void **state)
{
    struct chain *c = *state;
    reset_chain(c);
    add_header(c, VIRTIO_BLK_T_DISCARD, 0, 0);
    add_segment(c, 8, 16, 0);
    add(c, 1, true);
    assert_int_equal(parse(c, false), VIRTIO_BLK_S_OK);
    assert_int_equal(c->req.offset, 4096);
    assert_int_equal(c->req.len, 8192);
    assert_false(c->req.unmap);
    assert_int_equal(parse(c, true), VIRTIO_BLK_S_IOERR); /* read-only */

    reset_chain(c);
    add_header(c, VIRTIO_BLK_T_WRITE_ZEROES, 0, 0);
    add_segment(c, CAPACITY - 4, 4, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP);
    add(c, 1, true);
    assert_int_equal(parse(c, false), VIRTIO_BLK_S_OK);
    assert_true(c->req.unmap);
    assert_int_equal(c->req.offset, (CAPACITY - 4) * 512);
    assert_int_equal(c->req.len, 2048);

    /* The segment may follow the header in the same buffer. */
    reset_chain(c);
    uint8_t *h = add_header(c, VIRTIO_BLK_T_WRITE_ZEROES, 0, VIRTIO_BLK_DWZ_SEG_SIZE);
    put64(h + 16, 1);
    put32(h + 24, 2);
    put32(h + 28, 0);
    add(c, 1, true);
    assert_int_equal(parse(c, false), VIRTIO_BLK_S_OK);
    assert_int_equal(c->req.offset, 512);
    assert_int_equal(c->req.len, 1024);
    assert_false(c->req.unmap);
}

static void test_discard_write_zeroes_invalid(void **state)
{
    struct chain *c = *state;
    static const struct {
        uint32_t type;
        uint64_t sector;
        uint32_t num, flags;
        unsigned segments;
        int status;
    } cases[] = {
        {VIRTIO_BLK_T_DISCARD, 0, 8, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP, 1, VIRTIO_BLK_S_UNSUPP},
        {VIRTIO_BLK_T_WRITE_ZEROES, 0, 8, 2, 1, VIRTIO_BLK_S_UNSUPP}, /* unknown flag */
        {VIRTIO_BLK_T_DISCARD, 0, 8, 0, 2, VIRTIO_BLK_S_UNSUPP},      /* more than max_seg */
        {VIRTIO_BLK_T_WRITE_ZEROES, 0, 8, 0, 3, VIRTIO_BLK_S_UNSUPP},
        {VIRTIO_BLK_T_DISCARD, 0, 8, 0, 0, VIRTIO_BLK_S_IOERR}, /* no segment */
        {VIRTIO_BLK_T_DISCARD, CAPACITY - 1, 2, 0, 1, VIRTIO_BLK_S_IOERR},
        {VIRTIO_BLK_T_WRITE_ZEROES, CAPACITY + 1, 0, 0, 1, VIRTIO_BLK_S_IOERR},
        {VIRTIO_BLK_T_DISCARD, UINT64_MAX, 1, 0, 1, VIRTIO_BLK_S_IOERR},
        {VIRTIO_BLK_T_WRITE_ZEROES, 0, BLK_MAX_DWZ_SECTORS + 1, 0, 1, VIRTIO_BLK_S_IOERR},
        {VIRTIO_BLK_T_DISCARD, 0, UINT32_MAX, 0, 1, VIRTIO_BLK_S_IOERR},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        reset_chain(c);
        add_header(c, cases[i].type, 0, 0);
        for (unsigned s = 0; s < cases[i].segments; s++)
            add_segment(c, cases[i].sector, cases[i].num, cases[i].flags);
        uint8_t *status = add(c, 1, true);
        int rc = parse(c, false);
        if (rc != cases[i].status)
            fail_msg("case %zu: status %d, expected %d", i, rc, cases[i].status);
        assert_ptr_equal(c->req.status, status);
    }
    /* A segment cut short. */
    reset_chain(c);
    add_header(c, VIRTIO_BLK_T_DISCARD, 0, 0);
    add(c, VIRTIO_BLK_DWZ_SEG_SIZE - 4, false);
    add(c, 1, true);
    assert_int_equal(parse(c, false), VIRTIO_BLK_S_IOERR);
}

static void test_unsupported_types(void **state)
{
    struct chain *c = *state;
    static const uint32_t types[] = {2, 3, 10, 14, 99, 0x80000000u, 0x80000001u};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        reset_chain(c);
        add_header(c, types[i], 0, 0);
        add(c, 512, true);
        uint8_t *status = add(c, 1, true);
        assert_int_equal(parse(c, false), VIRTIO_BLK_S_UNSUPP);
        assert_ptr_equal(c->req.status, status);
        assert_int_equal(c->req.written, 513);
    }
}

static void test_out_of_range(void **state)
{
    struct chain *c = *state;
    static const struct {
        uint32_t type;
        uint64_t sector;
        uint32_t len;
    } cases[] = {
        {VIRTIO_BLK_T_IN, CAPACITY, 512},      /* the first sector past the end */
        {VIRTIO_BLK_T_IN, CAPACITY - 1, 1024}, /* straddles the end */
        {VIRTIO_BLK_T_OUT, CAPACITY + 5, 512},
        {VIRTIO_BLK_T_IN, UINT64_MAX, 512}, /* sector * 512 would overflow */
        {VIRTIO_BLK_T_OUT, UINT64_MAX - 1, 1024},
        {VIRTIO_BLK_T_IN, 1ULL << 55, 512},
        {VIRTIO_BLK_T_IN, CAPACITY + 1, 0}, /* even with no data, past the end is wrong */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        reset_chain(c);
        bool out = cases[i].type == VIRTIO_BLK_T_OUT;
        add_header(c, cases[i].type, cases[i].sector, 0);
        if (cases[i].len)
            add(c, cases[i].len, !out);
        add(c, 1, true);
        int rc = parse(c, false);
        if (rc != VIRTIO_BLK_S_IOERR)
            fail_msg("case %zu: status %d, expected IOERR", i, rc);
    }
    /* Zero bytes at the very end are in range. */
    reset_chain(c);
    add_header(c, VIRTIO_BLK_T_IN, CAPACITY, 0);
    add(c, 1, true);
    assert_int_equal(parse(c, false), VIRTIO_BLK_S_OK);
    assert_int_equal(c->req.len, 0);
}

static void test_malformed(void **state)
{
    struct chain *c = *state;
    /* Header shorter than 16 bytes: IOERR in the status byte. */
    reset_chain(c);
    add(c, 8, false);
    uint8_t *status = add(c, 1, true);
    assert_int_equal(parse(c, false), VIRTIO_BLK_S_IOERR);
    assert_ptr_equal(c->req.status, status);
    /* No header at all. */
    reset_chain(c);
    add(c, 513, true);
    assert_int_equal(parse(c, false), VIRTIO_BLK_S_IOERR);
    /* No writable byte: nothing to report the status in. */
    reset_chain(c);
    add_header(c, VIRTIO_BLK_T_OUT, 0, 512);
    assert_int_equal(parse(c, false), BLK_PARSE_NO_STATUS);
    reset_chain(c);
    add_header(c, VIRTIO_BLK_T_IN, 0, 0);
    add(c, 0, true);
    assert_int_equal(parse(c, false), BLK_PARSE_NO_STATUS);
    /* Data that is not whole sectors. */
    reset_chain(c);
    add_header(c, VIRTIO_BLK_T_IN, 0, 0);
    add(c, 1000 + 1, true);
    assert_int_equal(parse(c, false), VIRTIO_BLK_S_IOERR);
    reset_chain(c);
    add_header(c, VIRTIO_BLK_T_OUT, 0, 100);
    add(c, 1, true);
    assert_int_equal(parse(c, false), VIRTIO_BLK_S_IOERR);
}

/* More buffers than seg_max + 2, or a used length that does not fit 32 bits: refused. */
static void test_too_many_buffers(void **state)
{
    struct chain *c = *state;
    reset_chain(c);
    add_header(c, VIRTIO_BLK_T_IN, 0, 0);
    for (unsigned i = 0; i < BLK_SEG_MAX + 1; i++)
        add(c, 512, true);
    uint8_t *status = add(c, 1, true);
    assert_int_equal(c->elem.nr_out + c->elem.nr_in, BLK_MAX_BUFS + 1);
    assert_int_equal(parse(c, false), VIRTIO_BLK_S_IOERR);
    assert_ptr_equal(c->req.status, status);

    /* Exactly seg_max data buffers is fine. */
    reset_chain(c);
    add_header(c, VIRTIO_BLK_T_OUT, 0, 0);
    for (unsigned i = 0; i < BLK_SEG_MAX; i++)
        add(c, 512, false);
    add(c, 1, true);
    assert_int_equal(parse(c, false), VIRTIO_BLK_S_OK);
    assert_int_equal(c->req.niov, BLK_SEG_MAX);
    assert_int_equal(c->req.len, BLK_SEG_MAX * 512);

    /* A writable part longer than 4 GiB cannot be reported: treated as having no status
     * (the lengths are the driver's claim; nothing here reads that far). */
    reset_chain(c);
    add_header(c, VIRTIO_BLK_T_IN, 0, 0);
    add(c, 513, true);
    c->elem.in_len = 1ULL << 33;
    assert_int_equal(parse(c, false), BLK_PARSE_NO_STATUS);
}

/* --- the devices through the real virtio-pci transport ----------------------------------- */

/* A small virtio 1.x driver: finds the capabilities, negotiates, sets up rings in a fake
 * guest RAM, posts chains, rings doorbells and runs the event loop until the used ring
 * moves, as a guest and the machine's I/O thread would. */

#define RAM_SIZE (32ULL << 20)
#define RING_GPA(q) (0x10000ULL + 0x10000ULL * (q))
#define DATA_GPA 0x200000ULL
#define QSIZE 128
#define VIRTIO_PCI_CAP_COMMON 1
#define VIRTIO_PCI_CAP_NOTIFY 2
#define VIRTIO_PCI_CAP_ISR 3
#define VIRTIO_PCI_CAP_DEVICE 4
#define CC_DF_SELECT 0x00
#define CC_DF 0x04
#define CC_GF_SELECT 0x08
#define CC_GF 0x0c
#define CC_STATUS 0x14
#define CC_Q_SELECT 0x16
#define CC_Q_SIZE 0x18
#define CC_Q_ENABLE 0x1c
#define CC_Q_DESC 0x20
#define CC_Q_DRIVER 0x28
#define CC_Q_DEVICE 0x30
#define STATUS_ACK 1
#define STATUS_DRIVER 2
#define STATUS_DRIVER_OK 4
#define STATUS_FEATURES_OK 8
#define STATUS_NEEDS_RESET 0x40
#define DESC_F_NEXT 1
#define DESC_F_WRITE 2

struct drv_queue {
    uint16_t size; /* min(QSIZE, what the device offers) */
    uint16_t avail_idx, next_desc;
};

struct dev_fixture {
    const char *backend; /* QUOKKA_BLOCK_AIO for the device, NULL: the default */
    struct pci_fake_machine pf;
    struct guest_memory mem;
    struct dma_space dma;
    struct event_loop *loop;
    struct pci_bus *pci;
    const struct device_model *model;
    struct opts opts;
    void *state;
    unsigned slot;
    uint64_t common, isr, devcfg, notify;
    uint32_t notify_mult;
    uint64_t data_next;
    struct drv_queue q[4];
    char path[256];
};

static int dev_setup(void **state)
{
    struct dev_fixture *f = calloc(1, sizeof(*f));
    char err[256];
    assert_non_null(f);
    f->backend = *state; /* the prestate */
    pci_fake_machine_init(&f->pf);
    assert_int_equal(guest_memory_init(&f->mem, RAM_SIZE, err, sizeof(err)), 0);
    f->dma = (struct dma_space){.mem = &f->mem};
    f->loop = event_loop_new(err, sizeof(err));
    assert_non_null(f->loop);
    struct device_host *host = &f->pf.fm.host;
    host->dma = &f->dma;
    host->loop = f->loop;
    f->pci = pci_bus_new(host, err, sizeof(err));
    assert_non_null(f->pci);
    host->pci = f->pci;
    snprintf(f->path, sizeof(f->path), "/tmp/quokka-vblk-%d.img", (int)getpid());
    f->data_next = DATA_GPA;
    if (f->backend)
        setenv("QUOKKA_BLOCK_AIO", f->backend, 1);
    else
        unsetenv("QUOKKA_BLOCK_AIO");
    *state = f;
    return 0;
}

static int dev_teardown(void **state)
{
    struct dev_fixture *f = *state;
    if (f->state)
        f->model->destroy(f->state);
    opts_free(&f->opts);
    pci_bus_free(f->pci);
    event_loop_free(f->loop);
    guest_memory_destroy(&f->mem);
    pci_fake_machine_destroy(&f->pf);
    unlink(f->path);
    unsetenv("QUOKKA_BLOCK_AIO");
    free(f);
    return 0;
}

static uint8_t *gmem(struct dev_fixture *f, uint64_t gpa, uint64_t len)
{
    void *p = gpa_to_host(&f->mem, gpa, len);
    assert_non_null(p);
    return p;
}

static uint64_t galloc(struct dev_fixture *f, uint64_t len)
{
    uint64_t gpa = f->data_next;
    f->data_next = (f->data_next + len + 15) & ~15ULL;
    assert_true(f->data_next <= RAM_SIZE);
    return gpa;
}

static void make_image(struct dev_fixture *f, size_t size, uint8_t fill)
{
    int fd = open(f->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    uint8_t *buf = malloc(size);
    assert_non_null(buf);
    memset(buf, fill, size);
    assert_int_equal(pwrite(fd, buf, size, 0), (ssize_t)size);
    free(buf);
    close(fd);
}

static int try_create(struct dev_fixture *f, const char *model, const char *text, void **state,
                      char *err, size_t errlen)
{
    f->model = device_model_find(model);
    assert_non_null(f->model);
    struct opts o;
    if (opts_parse(&o, text, "--device", f->model->option_keys, f->model->implied_key, err,
                   errlen) < 0)
        return -1;
    struct device_args args = {.instance = 0, .opts = &o, .console = &f->pf.fm.console};
    int rc = f->model->create(&f->pf.fm.host, &args, state, err, errlen);
    opts_free(&o);
    return rc;
}

static uint32_t cfg_read(struct dev_fixture *f, unsigned reg, unsigned size)
{
    return pci_ecam_read(&f->pf, f->slot, reg, size);
}

static uint64_t bar_address(struct dev_fixture *f, unsigned bar)
{
    uint32_t lo = cfg_read(f, PCI_BAR0 + 4 * bar, 4);
    uint64_t addr = lo & ~0xfULL;
    if ((lo & 6) == 4) /* 64-bit memory BAR */
        addr |= (uint64_t)cfg_read(f, PCI_BAR0 + 4 * bar + 4, 4) << 32;
    return addr;
}

/* Create the device and find its regions through its vendor capabilities. */
static void create_dev(struct dev_fixture *f, const char *model, const char *text)
{
    char err[512] = "";
    if (try_create(f, model, text, &f->state, err, sizeof(err)) < 0)
        fail_msg("creating %s (%s): %s", model, text, err);
    for (f->slot = 1; f->slot < PCI_MAX_DEVICES; f->slot++)
        if (cfg_read(f, PCI_VENDOR_ID, 2) == 0x1af4)
            break;
    assert_true(f->slot < PCI_MAX_DEVICES);
    pci_ecam_write(&f->pf, f->slot, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    for (unsigned cap = cfg_read(f, PCI_CAPABILITY_LIST, 1); cap; cap = cfg_read(f, cap + 1, 1)) {
        if (cfg_read(f, cap, 1) != PCI_CAP_ID_VNDR)
            continue;
        unsigned type = cfg_read(f, cap + 3, 1);
        uint64_t at = bar_address(f, cfg_read(f, cap + 4, 1)) + cfg_read(f, cap + 8, 4);
        if (type == VIRTIO_PCI_CAP_COMMON)
            f->common = at;
        else if (type == VIRTIO_PCI_CAP_NOTIFY) {
            f->notify = at;
            f->notify_mult = cfg_read(f, cap + 16, 4);
        } else if (type == VIRTIO_PCI_CAP_ISR)
            f->isr = at;
        else if (type == VIRTIO_PCI_CAP_DEVICE)
            f->devcfg = at;
    }
    assert_true(f->common && f->notify && f->isr);
}

static void cc_write(struct dev_fixture *f, unsigned off, unsigned size, uint64_t v)
{
    pci_mmio_write(&f->pf, f->common + off, size, v);
}

static uint64_t cc_read(struct dev_fixture *f, unsigned off, unsigned size)
{
    return pci_mmio_read(&f->pf, f->common + off, size);
}

static uint64_t device_features(struct dev_fixture *f)
{
    cc_write(f, CC_DF_SELECT, 4, 0);
    uint64_t lo = cc_read(f, CC_DF, 4);
    cc_write(f, CC_DF_SELECT, 4, 1);
    return lo | cc_read(f, CC_DF, 4) << 32;
}

/* Reset, negotiate (VERSION_1 plus `wanted` of what is offered), start nq queues. */
static uint64_t driver_init(struct dev_fixture *f, uint64_t wanted, unsigned nq)
{
    cc_write(f, CC_STATUS, 1, 0);
    cc_write(f, CC_STATUS, 1, STATUS_ACK | STATUS_DRIVER);
    uint64_t accept = device_features(f) & (wanted | 1ULL << VIRTIO_F_VERSION_1);
    cc_write(f, CC_GF_SELECT, 4, 0);
    cc_write(f, CC_GF, 4, (uint32_t)accept);
    cc_write(f, CC_GF_SELECT, 4, 1);
    cc_write(f, CC_GF, 4, (uint32_t)(accept >> 32));
    cc_write(f, CC_STATUS, 1, STATUS_ACK | STATUS_DRIVER | STATUS_FEATURES_OK);
    assert_true(cc_read(f, CC_STATUS, 1) & STATUS_FEATURES_OK);
    for (unsigned q = 0; q < nq; q++) {
        memset(gmem(f, RING_GPA(q), 0x10000), 0, 0x10000);
        cc_write(f, CC_Q_SELECT, 2, q);
        uint16_t max = (uint16_t)cc_read(f, CC_Q_SIZE, 2);
        f->q[q] = (struct drv_queue){.size = max < QSIZE ? max : QSIZE};
        cc_write(f, CC_Q_SIZE, 2, f->q[q].size);
        cc_write(f, CC_Q_DESC, 8, RING_GPA(q));
        cc_write(f, CC_Q_DRIVER, 8, RING_GPA(q) + 0x4000);
        cc_write(f, CC_Q_DEVICE, 8, RING_GPA(q) + 0x8000);
        cc_write(f, CC_Q_ENABLE, 2, 1);
    }
    cc_write(f, CC_STATUS, 1, STATUS_ACK | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK);
    assert_int_equal(cc_read(f, CC_STATUS, 1) & STATUS_NEEDS_RESET, 0);
    return accept;
}

struct seg {
    uint64_t gpa;
    uint32_t len;
    bool writable;
};

static void put_le(uint8_t *p, uint64_t v, unsigned bytes)
{
    for (unsigned i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, unsigned bytes)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < bytes; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* Make a chain available on queue qi (not kicked). */
static void post(struct dev_fixture *f, unsigned qi, const struct seg *segs, unsigned n)
{
    struct drv_queue *q = &f->q[qi];
    uint16_t head = q->next_desc;
    for (unsigned i = 0; i < n; i++) {
        uint16_t d = (uint16_t)((head + i) % q->size);
        uint8_t *desc = gmem(f, RING_GPA(qi) + 16ULL * d, 16);
        uint16_t flags =
            (uint16_t)((segs[i].writable ? DESC_F_WRITE : 0) | (i + 1 < n ? DESC_F_NEXT : 0));
        put_le(desc, segs[i].gpa, 8);
        put_le(desc + 8, segs[i].len, 4);
        put_le(desc + 12, flags, 2);
        put_le(desc + 14, (head + i + 1) % q->size, 2);
    }
    q->next_desc = (uint16_t)((head + n) % q->size);
    uint64_t avail = RING_GPA(qi) + 0x4000;
    put_le(gmem(f, avail + 4 + 2ULL * (q->avail_idx % q->size), 2), head, 2);
    q->avail_idx++;
    put_le(gmem(f, avail + 2, 2), q->avail_idx, 2);
}

static void kick(struct dev_fixture *f, unsigned qi)
{
    pci_mmio_write(&f->pf, f->notify + qi * f->notify_mult, 2, qi);
}

static uint16_t used_idx(struct dev_fixture *f, unsigned qi)
{
    return (uint16_t)get_le(gmem(f, RING_GPA(qi) + 0x8000 + 2, 2), 2);
}

static uint32_t used_len(struct dev_fixture *f, unsigned qi, uint16_t i)
{
    return (uint32_t)get_le(gmem(f, RING_GPA(qi) + 0x8000 + 4 + 8ULL * (i % f->q[qi].size) + 4, 4),
                            4);
}

/* Run the I/O loop until queue qi's used index reaches `want` (bounded: 10 s). */
static void wait_used(struct dev_fixture *f, unsigned qi, uint16_t want)
{
    for (int i = 0; i < 1000 && (uint16_t)(used_idx(f, qi) - want) > 0x8000; i++)
        event_loop_run_once(f->loop, 10 * 1000000LL);
    assert_int_equal(used_idx(f, qi), want);
}

/* One virtio-blk request, waited for; returns the status byte. */
static uint8_t blk_req(struct dev_fixture *f, uint32_t type, uint64_t sector, uint64_t data,
                       uint32_t len, uint32_t *written)
{
    uint64_t hdr = galloc(f, 16), status = galloc(f, 1);
    put_le(gmem(f, hdr, 16), type, 4);
    put_le(gmem(f, hdr, 16) + 4, 0, 4);
    put_le(gmem(f, hdr, 16) + 8, sector, 8);
    *(uint8_t *)gmem(f, status, 1) = 0xff;
    bool in = type == VIRTIO_BLK_T_IN || type == VIRTIO_BLK_T_GET_ID;
    struct seg segs[3] = {{hdr, 16, false}};
    unsigned n = 1;
    if (len)
        segs[n++] = (struct seg){data, len, in};
    segs[n++] = (struct seg){status, 1, true};
    uint16_t before = used_idx(f, 0);
    post(f, 0, segs, n);
    kick(f, 0);
    wait_used(f, 0, (uint16_t)(before + 1));
    if (written)
        *written = used_len(f, 0, before);
    return *(uint8_t *)gmem(f, status, 1);
}

static uint64_t dwz_segment(struct dev_fixture *f, uint64_t sector, uint32_t num, uint32_t flags)
{
    uint64_t gpa = galloc(f, 16);
    uint8_t *p = gmem(f, gpa, 16);
    put_le(p, sector, 8);
    put_le(p + 8, num, 4);
    put_le(p + 12, flags, 4);
    return gpa;
}

static uint64_t devcfg_read(struct dev_fixture *f, unsigned off, unsigned size)
{
    return pci_mmio_read(&f->pf, f->devcfg + off, size);
}

static void file_read(struct dev_fixture *f, uint64_t off, void *buf, size_t len)
{
    int fd = open(f->path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, buf, len, (off_t)off), (ssize_t)len);
    close(fd);
}

#define F(bit) (1ULL << (bit))

/* Create a virtio-blk on the fixture's image with extra options. */
static void create_blk(struct dev_fixture *f, const char *extra)
{
    char text[512];
    snprintf(text, sizeof(text), "path=%s%s%s", f->path, *extra ? "," : "", extra);
    create_dev(f, "virtio-blk", text);
}

static void test_blk_config_and_features(void **state)
{
    struct dev_fixture *f = *state;
    make_image(f, 1 << 20, 0);
    create_blk(f, "queues=2,serial=disk-one");
    uint64_t feat = device_features(f);
    uint64_t want = F(VIRTIO_BLK_F_SIZE_MAX) | F(VIRTIO_BLK_F_SEG_MAX) | F(VIRTIO_BLK_F_BLK_SIZE) |
                    F(VIRTIO_BLK_F_FLUSH) | F(VIRTIO_BLK_F_MQ) | F(VIRTIO_BLK_F_DISCARD) |
                    F(VIRTIO_BLK_F_WRITE_ZEROES) | F(VIRTIO_F_VERSION_1);
    assert_int_equal(feat & want, want);
    assert_int_equal(feat & F(VIRTIO_BLK_F_RO), 0);
    assert_int_equal(devcfg_read(f, BLK_CFG_CAPACITY, 8), 2048);
    assert_int_equal(devcfg_read(f, BLK_CFG_SIZE_MAX, 4), BLK_SIZE_MAX);
    assert_int_equal(devcfg_read(f, BLK_CFG_SEG_MAX, 4), BLK_SEG_MAX);
    assert_int_equal(devcfg_read(f, BLK_CFG_BLK_SIZE, 4), 512);
    assert_int_equal(devcfg_read(f, BLK_CFG_NUM_QUEUES, 2), 2);
    assert_int_equal(devcfg_read(f, BLK_CFG_MAX_DISCARD_SECTORS, 4), BLK_MAX_DWZ_SECTORS);
    assert_int_equal(devcfg_read(f, BLK_CFG_MAX_DISCARD_SEG, 4), 1);
    assert_int_equal(devcfg_read(f, BLK_CFG_DISCARD_ALIGN, 4), BLK_DISCARD_ALIGN);
    assert_int_equal(devcfg_read(f, BLK_CFG_MAX_WZ_SECTORS, 4), BLK_MAX_DWZ_SECTORS);
    assert_int_equal(devcfg_read(f, BLK_CFG_MAX_WZ_SEG, 4), 1);
    assert_int_equal(devcfg_read(f, BLK_CFG_WZ_MAY_UNMAP, 1), 1);
    assert_int_equal(devcfg_read(f, BLK_CFG_WZ_MAY_UNMAP + 1, 2), 0); /* unused1 */
    assert_int_equal(cc_read(f, 0x12, 2), 2);                         /* num_queues */

    /* Both queues serve requests. */
    driver_init(f, ~0ULL, 2);
    uint64_t id = galloc(f, 20), status = galloc(f, 1), hdr = galloc(f, 16);
    put_le(gmem(f, hdr, 16), VIRTIO_BLK_T_GET_ID, 4);
    struct seg segs[3] = {{hdr, 16, false}, {id, 20, true}, {status, 1, true}};
    post(f, 1, segs, 3);
    kick(f, 1);
    wait_used(f, 1, 1);
    assert_int_equal(used_len(f, 1, 0), 21);
    assert_int_equal(*(uint8_t *)gmem(f, status, 1), VIRTIO_BLK_S_OK);
    assert_memory_equal(gmem(f, id, 20), "disk-one\0\0\0\0\0\0\0\0\0\0\0\0", 20);
}

static void test_blk_requests(void **state)
{
    struct dev_fixture *f = *state;
    make_image(f, 1 << 20, 0x11);
    create_blk(f, "serial=0123456789abcdefghij");
    driver_init(f, ~0ULL, 1);
    uint32_t written;

    /* Write 8 KiB at sector 8; it is in the image. */
    uint64_t data = galloc(f, 8192);
    for (unsigned i = 0; i < 8192; i++)
        ((uint8_t *)gmem(f, data, 8192))[i] = (uint8_t)(i * 7 + 3);
    assert_int_equal(blk_req(f, VIRTIO_BLK_T_OUT, 8, data, 8192, &written), VIRTIO_BLK_S_OK);
    assert_int_equal(written, 1);
    uint8_t back[8192];
    file_read(f, 4096, back, sizeof(back));
    assert_memory_equal(back, gmem(f, data, 8192), 8192);

    /* Read it back elsewhere; the used length counts data and status. */
    uint64_t rd = galloc(f, 8192);
    assert_int_equal(blk_req(f, VIRTIO_BLK_T_IN, 8, rd, 8192, &written), VIRTIO_BLK_S_OK);
    assert_int_equal(written, 8193);
    assert_memory_equal(gmem(f, rd, 8192), gmem(f, data, 8192), 8192);
    assert_int_equal(blk_req(f, VIRTIO_BLK_T_IN, 0, rd, 512, NULL), VIRTIO_BLK_S_OK);
    assert_int_equal(*(uint8_t *)gmem(f, rd, 1), 0x11);

    assert_int_equal(blk_req(f, VIRTIO_BLK_T_FLUSH, 0, 0, 0, NULL), VIRTIO_BLK_S_OK);
    uint64_t id = galloc(f, 20);
    assert_int_equal(blk_req(f, VIRTIO_BLK_T_GET_ID, 0, id, 20, &written), VIRTIO_BLK_S_OK);
    assert_int_equal(written, 21);
    assert_memory_equal(gmem(f, id, 20), "0123456789abcdefghij", 20);

    /* The first sector past the end, a type nobody knows, data not whole sectors. */
    assert_int_equal(blk_req(f, VIRTIO_BLK_T_IN, 2048, rd, 512, NULL), VIRTIO_BLK_S_IOERR);
    assert_int_equal(blk_req(f, VIRTIO_BLK_T_IN, 2047, rd, 512, NULL), VIRTIO_BLK_S_OK);
    assert_int_equal(blk_req(f, 99, 0, rd, 512, NULL), VIRTIO_BLK_S_UNSUPP);
    assert_int_equal(blk_req(f, VIRTIO_BLK_T_OUT, 0, rd, 100, NULL), VIRTIO_BLK_S_IOERR);
    file_read(f, 0, back, 512);
    assert_int_equal(back[0], 0x11);
}

static void test_blk_discard_write_zeroes(void **state)
{
    struct dev_fixture *f = *state;
    make_image(f, 4 << 20, 0x5a);
    int fd = open(f->path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(fsync(fd), 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    blkcnt_t before = st.st_blocks;
    create_blk(f, "");
    driver_init(f, ~0ULL, 1);
    /* Discard 1 MiB at 1 MiB: the host file loses those blocks, which read as zeros. */
    uint64_t seg = dwz_segment(f, 2048, 2048, 0);
    assert_int_equal(blk_req(f, VIRTIO_BLK_T_DISCARD, 0, seg, 16, NULL), VIRTIO_BLK_S_OK);
    assert_int_equal(fstat(fd, &st), 0);
    assert_true(before - st.st_blocks >= 2048 - 16);
    uint8_t buf[4096];
    file_read(f, 1 << 20, buf, sizeof(buf));
    for (size_t i = 0; i < sizeof(buf); i++)
        assert_int_equal(buf[i], 0);
    /* Write zeroes, allocated and unmapped. */
    seg = dwz_segment(f, 8, 8, 0);
    assert_int_equal(blk_req(f, VIRTIO_BLK_T_WRITE_ZEROES, 0, seg, 16, NULL), VIRTIO_BLK_S_OK);
    seg = dwz_segment(f, 6144, 16, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP);
    assert_int_equal(blk_req(f, VIRTIO_BLK_T_WRITE_ZEROES, 0, seg, 16, NULL), VIRTIO_BLK_S_OK);
    file_read(f, 4096, buf, 4096);
    for (size_t i = 0; i < 4096; i++)
        assert_int_equal(buf[i], 0);
    file_read(f, 3 << 20, buf, 4096);
    for (size_t i = 0; i < 4096; i++)
        assert_int_equal(buf[i], 0);
    file_read(f, 0, buf, 4096);
    assert_int_equal(buf[0], 0x5a);
    assert_int_equal(buf[4095], 0x5a);
    /* Out of range and unknown flags. */
    seg = dwz_segment(f, 8190, 4, 0);
    assert_int_equal(blk_req(f, VIRTIO_BLK_T_DISCARD, 0, seg, 16, NULL), VIRTIO_BLK_S_IOERR);
    seg = dwz_segment(f, 0, 4, 0x10);
    assert_int_equal(blk_req(f, VIRTIO_BLK_T_WRITE_ZEROES, 0, seg, 16, NULL), VIRTIO_BLK_S_UNSUPP);
    close(fd);
}

static void test_blk_readonly(void **state)
{
    struct dev_fixture *f = *state;
    make_image(f, 1 << 20, 0x77);
    create_blk(f, "readonly=on");
    uint64_t feat = device_features(f);
    assert_true(feat & F(VIRTIO_BLK_F_RO));
    assert_false(feat & (F(VIRTIO_BLK_F_DISCARD) | F(VIRTIO_BLK_F_WRITE_ZEROES)));
    assert_false(feat & F(VIRTIO_BLK_F_MQ));
    driver_init(f, ~0ULL, 1);
    uint64_t data = galloc(f, 4096);
    memset(gmem(f, data, 4096), 0, 4096);
    assert_int_equal(blk_req(f, VIRTIO_BLK_T_OUT, 0, data, 4096, NULL), VIRTIO_BLK_S_IOERR);
    uint64_t seg = dwz_segment(f, 0, 8, 0);
    assert_int_equal(blk_req(f, VIRTIO_BLK_T_DISCARD, 0, seg, 16, NULL), VIRTIO_BLK_S_IOERR);
    assert_int_equal(blk_req(f, VIRTIO_BLK_T_IN, 0, data, 4096, NULL), VIRTIO_BLK_S_OK);
    assert_int_equal(*(uint8_t *)gmem(f, data, 1), 0x77);
    uint8_t buf[4096];
    file_read(f, 0, buf, sizeof(buf));
    assert_int_equal(buf[0], 0x77);
}

/* 40 writes in flight at once from one doorbell, then 40 reads of them. */
static void test_blk_many_in_flight(void **state)
{
    struct dev_fixture *f = *state;
    enum { N = 40, SZ = 4096 };
    make_image(f, 1 << 20, 0);
    create_blk(f, "");
    driver_init(f, ~0ULL, 1);
    uint64_t data = galloc(f, N * SZ), rd = galloc(f, N * SZ), status = galloc(f, 2 * N);
    for (unsigned pass = 0; pass < 2; pass++) {
        for (unsigned i = 0; i < N; i++) {
            uint64_t hdr = galloc(f, 16);
            put_le(gmem(f, hdr, 16), pass ? VIRTIO_BLK_T_IN : VIRTIO_BLK_T_OUT, 4);
            put_le(gmem(f, hdr, 16) + 8, (uint64_t)(N - 1 - i) * (SZ / 512), 8);
            if (!pass)
                memset(gmem(f, data + i * SZ, SZ), (int)(i + 1), SZ);
            struct seg segs[3] = {{hdr, 16, false},
                                  {(pass ? rd : data) + i * SZ, SZ, pass == 1},
                                  {status + pass * N + i, 1, true}};
            post(f, 0, segs, 3);
        }
        kick(f, 0);
        wait_used(f, 0, (uint16_t)(N * (pass + 1)));
    }
    for (unsigned i = 0; i < 2 * N; i++)
        assert_int_equal(((uint8_t *)gmem(f, status, 2 * N))[i], VIRTIO_BLK_S_OK);
    assert_memory_equal(gmem(f, rd, N * SZ), gmem(f, data, N * SZ), N * SZ);
    uint8_t buf[SZ];
    file_read(f, 0, buf, SZ); /* the last write went to sector 0 */
    assert_int_equal(buf[0], N);
}

/* A reset with writes in flight returns only once they are done (they are in the image);
 * the device then starts again normally. */
static void test_blk_reset_with_io_in_flight(void **state)
{
    struct dev_fixture *f = *state;
    enum { N = 32, SZ = 64 * 1024 };
    make_image(f, 4 << 20, 0);
    create_blk(f, "");
    driver_init(f, ~0ULL, 1);
    uint64_t data = galloc(f, N * SZ), status = galloc(f, N);
    memset(gmem(f, data, N * SZ), 0xc3, N * SZ);
    for (unsigned i = 0; i < N; i++) {
        uint64_t hdr = galloc(f, 16);
        put_le(gmem(f, hdr, 16), VIRTIO_BLK_T_OUT, 4);
        put_le(gmem(f, hdr, 16) + 8, (uint64_t)i * (SZ / 512), 8);
        struct seg segs[3] = {{hdr, 16, false}, {data + i * SZ, SZ, false}, {status + i, 1, true}};
        post(f, 0, segs, 3);
    }
    kick(f, 0);
    cc_write(f, CC_STATUS, 1, 0); /* reset, no I/O loop running */
    assert_int_equal(cc_read(f, CC_STATUS, 1), 0);
    uint8_t *buf = malloc(N * SZ);
    assert_non_null(buf);
    file_read(f, 0, buf, N * SZ);
    assert_memory_equal(buf, gmem(f, data, N * SZ), N * SZ);
    free(buf);
    /* Nothing is left over: the loop has no completions for the old rings. */
    event_loop_run_once(f->loop, 10 * 1000000LL);
    driver_init(f, ~0ULL, 1);
    uint64_t rd = galloc(f, 512);
    assert_int_equal(blk_req(f, VIRTIO_BLK_T_IN, 0, rd, 512, NULL), VIRTIO_BLK_S_OK);
    assert_int_equal(*(uint8_t *)gmem(f, rd, 1), 0xc3);
}

/* The machine's shape: the I/O loop on its own thread completes requests while this thread
 * (a vCPU) kicks two queues, then resets the device with requests in flight. */
struct io_thread {
    struct event_loop *loop;
    atomic_bool stop;
};

static void *io_thread_main(void *opaque)
{
    struct io_thread *t = opaque;
    while (!atomic_load(&t->stop))
        event_loop_run_once(t->loop, 5 * 1000000LL);
    return NULL;
}

static uint16_t used_idx_atomic(struct dev_fixture *f, unsigned qi)
{
    uint16_t *p = (uint16_t *)gmem(f, RING_GPA(qi) + 0x8000 + 2, 2);
    return le16toh(__atomic_load_n(p, __ATOMIC_ACQUIRE));
}

static void post_rw(struct dev_fixture *f, unsigned qi, uint32_t type, uint64_t sector,
                    uint64_t data, uint32_t len, uint64_t status)
{
    uint64_t hdr = galloc(f, 16);
    put_le(gmem(f, hdr, 16), type, 4);
    put_le(gmem(f, hdr, 16) + 8, sector, 8);
    struct seg segs[3] = {
        {hdr, 16, false}, {data, len, type == VIRTIO_BLK_T_IN}, {status, 1, true}};
    post(f, qi, segs, 3);
}

static void test_blk_io_thread(void **state)
{
    struct dev_fixture *f = *state;
    enum { N = 40, SZ = 16 * 1024 };
    make_image(f, 4 << 20, 0x3c);
    create_blk(f, "queues=2");
    driver_init(f, ~0ULL, 2);
    struct io_thread t = {.loop = f->loop};
    pthread_t tid;
    assert_int_equal(pthread_create(&tid, NULL, io_thread_main, &t), 0);
    uint64_t wr = galloc(f, N * SZ), rd = galloc(f, N * SZ), status = galloc(f, 2 * N);
    memset(gmem(f, wr, N * SZ), 0x96, N * SZ);
    for (unsigned i = 0; i < N; i++) {
        post_rw(f, 0, VIRTIO_BLK_T_OUT, i * (SZ / 512), wr + i * SZ, SZ, status + i);
        post_rw(f, 1, VIRTIO_BLK_T_IN, (N + i) * (SZ / 512), rd + i * SZ, SZ, status + N + i);
        if (i % 8 == 7) {
            kick(f, 0);
            kick(f, 1);
        }
    }
    for (int i = 0; i < 2000 && (used_idx_atomic(f, 0) != N || used_idx_atomic(f, 1) != N); i++)
        usleep(5000);
    assert_int_equal(used_idx_atomic(f, 0), N);
    assert_int_equal(used_idx_atomic(f, 1), N);
    for (unsigned i = 0; i < 2 * N; i++)
        assert_int_equal(gmem(f, status, 2 * N)[i], VIRTIO_BLK_S_OK);
    for (unsigned i = 0; i < N * SZ; i++)
        assert_int_equal(gmem(f, rd, N * SZ)[i], 0x3c);
    /* More writes, and a reset while they run (completions race the reset's own drain). */
    for (unsigned i = 0; i < N; i++)
        post_rw(f, i % 2, VIRTIO_BLK_T_OUT, (N + i) * (SZ / 512), wr + i * SZ, SZ, status + i);
    kick(f, 0);
    kick(f, 1);
    cc_write(f, CC_STATUS, 1, 0);
    atomic_store(&t.stop, true);
    pthread_join(tid, NULL);
    uint8_t *buf = malloc(N * SZ);
    assert_non_null(buf);
    file_read(f, (uint64_t)N * SZ, buf, N * SZ); /* every write finished before the reset did */
    for (unsigned i = 0; i < N * SZ; i++)
        assert_int_equal(buf[i], 0x96);
    free(buf);
}

/* A chain pointing outside guest RAM: the device stops using the queue (NEEDS_RESET), and a
 * reset brings it back. */
static void test_blk_malformed_ring(void **state)
{
    struct dev_fixture *f = *state;
    make_image(f, 1 << 20, 0);
    create_blk(f, "");
    driver_init(f, ~0ULL, 1);
    uint64_t hdr = galloc(f, 16);
    struct seg segs[2] = {{hdr, 16, false}, {RAM_SIZE + 0x1000, 1, true}};
    post(f, 0, segs, 2);
    kick(f, 0);
    event_loop_run_once(f->loop, 10 * 1000000LL);
    assert_int_equal(used_idx(f, 0), 0);
    assert_true(cc_read(f, CC_STATUS, 1) & STATUS_NEEDS_RESET);
    driver_init(f, ~0ULL, 1);
    uint64_t rd = galloc(f, 512);
    assert_int_equal(blk_req(f, VIRTIO_BLK_T_IN, 0, rd, 512, NULL), VIRTIO_BLK_S_OK);
}

static void expect_create_error(struct dev_fixture *f, const char *text, const char *needle)
{
    char err[512] = "";
    void *state = NULL;
    assert_int_equal(try_create(f, "virtio-blk", text, &state, err, sizeof(err)), -1);
    assert_null(state);
    if (!strstr(err, needle))
        fail_msg("'%s': got \"%s\", wanted \"%s\"", text, err, needle);
}

static void test_blk_create_errors(void **state)
{
    struct dev_fixture *f = *state;
    char text[512], msg[512];
    expect_create_error(f, "readonly=on", "path=IMG is required");
    snprintf(text, sizeof(text), "path=%s", f->path);
    snprintf(msg, sizeof(msg), "disk '%s': No such file or directory", f->path);
    expect_create_error(f, text, msg);
    expect_create_error(f, "path=/tmp", "disk '/tmp' is a directory");
    make_image(f, 1 << 20, 0);
    snprintf(text, sizeof(text), "path=%s,queues=0", f->path);
    expect_create_error(f, text, "queues='0' must be a number from 1 to 16");
    snprintf(text, sizeof(text), "path=%s,queues=17", f->path);
    expect_create_error(f, text, "queues='17' must be a number from 1 to 16");
    snprintf(text, sizeof(text), "path=%s,serial=123456789012345678901", f->path);
    expect_create_error(f, text, "is longer than 20 bytes");
    snprintf(text, sizeof(text), "path=%s,readonly=maybe", f->path);
    expect_create_error(f, text, "readonly='maybe' must be on or off");
    /* A second disk on the same image: the lock refuses it, and the first keeps working. */
    create_blk(f, "");
    snprintf(text, sizeof(text), "%s", f->path); /* the implied key */
    snprintf(msg, sizeof(msg), "disk '%s' is locked by another process", f->path);
    expect_create_error(f, text, msg);
    driver_init(f, ~0ULL, 1);
    uint64_t rd = galloc(f, 512);
    assert_int_equal(blk_req(f, VIRTIO_BLK_T_IN, 0, rd, 512, NULL), VIRTIO_BLK_S_OK);
}

/* --- virtio-rng ---------------------------------------------------------------------------- */

static void test_rng(void **state)
{
    struct dev_fixture *f = *state;
    create_dev(f, "virtio-rng", "");
    assert_int_equal(cfg_read(f, PCI_DEVICE_ID, 2), 0x1040 + VIRTIO_ID_RNG);
    driver_init(f, 0, 1);
    uint64_t a = galloc(f, 4096);
    memset(gmem(f, a, 4096), 0, 4096);
    struct seg one = {a, 4096, true};
    post(f, 0, &one, 1);
    kick(f, 0);
    wait_used(f, 0, 1);
    assert_int_equal(used_len(f, 0, 0), 4096);
    unsigned nonzero = 0;
    for (unsigned i = 0; i < 4096; i++)
        nonzero += ((uint8_t *)gmem(f, a, 4096))[i] != 0;
    assert_true(nonzero > 3500);
    /* Several buffers fill in order; readable ones are ignored; a huge one gets 64 KiB. */
    uint64_t b = galloc(f, 600), big = galloc(f, 1 << 20);
    struct seg three[3] = {{b, 16, false}, {b, 100, true}, {b + 100, 500, true}};
    post(f, 0, three, 3);
    struct seg huge = {big, 1 << 20, true};
    post(f, 0, &huge, 1);
    kick(f, 0);
    wait_used(f, 0, 3);
    assert_int_equal(used_len(f, 0, 1), 600);
    assert_int_equal(used_len(f, 0, 2), 64 * 1024);
}

/* --- virtio-console ------------------------------------------------------------------------ */

static size_t feed(struct dev_fixture *f, const char *text)
{
    assert_non_null(f->pf.fm.input);
    return f->pf.fm.input(f->pf.fm.input_opaque, (const uint8_t *)text, strlen(text));
}

static void test_console(void **state)
{
    struct dev_fixture *f = *state;
    create_dev(f, "virtio-console", "");
    assert_int_equal(cfg_read(f, PCI_DEVICE_ID, 2), 0x1040 + VIRTIO_ID_CONSOLE);
    assert_true(device_features(f) & F(2)); /* VIRTIO_CONSOLE_F_EMERG_WRITE */
    assert_int_equal(feed(f, "early"), 0);  /* before DRIVER_OK nothing is taken */
    driver_init(f, F(2), 2);
    /* Emergency write: one character through the config space. */
    pci_mmio_write(&f->pf, f->devcfg + 8, 4, '!');
    /* Output: every readable byte of a transmit chain, in order. */
    uint64_t out = galloc(f, 16);
    memcpy(gmem(f, out, 11), "hello world", 11);
    struct seg tx[2] = {{out, 6, false}, {out + 6, 5, false}};
    post(f, 1, tx, 2);
    kick(f, 1);
    wait_used(f, 1, 1);
    assert_int_equal(used_len(f, 1, 0), 0);
    assert_int_equal(f->pf.fm.output_len, 12);
    assert_memory_equal(f->pf.fm.output, "!hello world", 12);
    /* Input: nothing without receive buffers; then as much as the buffers hold. */
    assert_int_equal(feed(f, "abcdefghij"), 0);
    uint64_t in = galloc(f, 8);
    struct seg rx1 = {in, 4, true}, rx2 = {in + 4, 4, true};
    post(f, 0, &rx1, 1);
    post(f, 0, &rx2, 1);
    kick(f, 0);
    assert_int_equal(feed(f, "abcdefghij"), 8);
    assert_int_equal(used_idx(f, 0), 2);
    assert_int_equal(used_len(f, 0, 0), 4);
    assert_int_equal(used_len(f, 0, 1), 4);
    assert_memory_equal(gmem(f, in, 8), "abcdefgh", 8);
    assert_int_equal(feed(f, "ij"), 0);
    /* After a reset input is refused again. */
    cc_write(f, CC_STATUS, 1, 0);
    assert_int_equal(feed(f, "ij"), 0);
    f->model->destroy(f->state);
    f->state = NULL;
    assert_null(f->pf.fm.input); /* destroy uninstalls the input handler */
}

static const char *threads_backend = "threads";

#define DEV_TEST(fn) cmocka_unit_test_prestate_setup_teardown(fn, dev_setup, dev_teardown, NULL)
#define DEV_TEST_THREADS(fn)                                                                       \
    cmocka_unit_test_prestate_setup_teardown(fn, dev_setup, dev_teardown, (void *)threads_backend)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_any_layout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flush_and_get_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_discard_and_write_zeroes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_discard_write_zeroes_invalid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unsupported_types, setup, teardown),
        cmocka_unit_test_setup_teardown(test_out_of_range, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_many_buffers, setup, teardown),
        DEV_TEST(test_blk_config_and_features),
        DEV_TEST(test_blk_requests),
        DEV_TEST_THREADS(test_blk_requests),
        DEV_TEST(test_blk_discard_write_zeroes),
        DEV_TEST_THREADS(test_blk_discard_write_zeroes),
        DEV_TEST(test_blk_readonly),
        DEV_TEST(test_blk_many_in_flight),
        DEV_TEST_THREADS(test_blk_many_in_flight),
        DEV_TEST(test_blk_reset_with_io_in_flight),
        DEV_TEST_THREADS(test_blk_reset_with_io_in_flight),
        DEV_TEST(test_blk_io_thread),
        DEV_TEST_THREADS(test_blk_io_thread),
        DEV_TEST(test_blk_malformed_ring),
        DEV_TEST(test_blk_create_errors),
        DEV_TEST(test_rng),
        DEV_TEST(test_console),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
