/* Unit tests: the block layer. The asynchronous I/O engine on both backends (io_uring and
 * worker threads) against temporary files: transfers at offsets through several iovecs,
 * fdatasync, hole punching that frees blocks, zeroing (also on tmpfs, which makes write-zeroes
 * fall back to writing), many requests at once, completion through the eventfd, draining.
 * Raw images: missing, directory, not a file, no permission, lock conflicts (also from another
 * process), sizes that are not whole sectors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "block/aio.h"
#include "block/image.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#define MIB (1u << 20)
#define TMPFS_MAGIC 0x01021994

struct done_log {
    unsigned calls;
    int last;
    int results[512];
};

struct tagged_req {
    struct aio_req req;
    struct done_log *log;
    unsigned index;
};

static void on_done(struct aio_req *req, int result)
{
    struct tagged_req *t = (struct tagged_req *)req;
    t->log->last = result;
    if (t->index < 512)
        t->log->results[t->index] = result;
    t->log->calls++;
}

static char *temp_path(const char *dir, const char *name)
{
    static char buf[4][256];
    static unsigned next;
    char *p = buf[next++ % 4];
    snprintf(p, 256, "%s/quokka-test-%d-%s", dir, (int)getpid(), name);
    return p;
}

static const char *tmp_dir(void)
{
    const char *d = getenv("TMPDIR");
    return d && *d ? d : "/tmp";
}

static int make_file(const char *path, size_t size, bool random_fill)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    uint8_t *buf = malloc(size ? size : 1);
    assert_non_null(buf);
    for (size_t i = 0; i < size; i++)
        buf[i] = random_fill ? (uint8_t)(rand() | 1) : 0;
    if (random_fill)
        assert_int_equal(pwrite(fd, buf, size, 0), (ssize_t)size);
    else
        assert_int_equal(ftruncate(fd, (off_t)size), 0);
    assert_int_equal(fsync(fd), 0);
    free(buf);
    return fd;
}

static struct aio_engine *engine_for(void **state)
{
    enum aio_backend b = *(enum aio_backend *)*state;
    char err[256] = "";
    struct aio_engine *e = aio_new(b, 1024, err, sizeof(err));
    if (!e && b == AIO_BACKEND_IO_URING) {
        print_message("io_uring unavailable here (%s): skipped\n", err);
        skip();
    }
    assert_non_null(e);
    assert_int_equal(aio_backend(e), b);
    return e;
}

/* Wait on the eventfd and poll until `want` callbacks ran (a bounded wait). */
static void wait_calls(struct aio_engine *e, struct done_log *log, unsigned want)
{
    aio_kick(e);
    for (int rounds = 0; log->calls < want && rounds < 5000; rounds++) {
        struct pollfd pfd = {.fd = aio_event_fd(e), .events = POLLIN};
        poll(&pfd, 1, 10);
        aio_poll(e);
    }
    assert_int_equal(log->calls, want);
}

static void run_one(struct aio_engine *e, struct tagged_req *t, struct done_log *log)
{
    unsigned before = log->calls;
    t->log = log;
    t->req.complete = on_done;
    aio_submit(e, &t->req);
    wait_calls(e, log, before + 1);
}

static void test_aio_read_write_offsets(void **state)
{
    struct aio_engine *e = engine_for(state);
    char *path = temp_path(tmp_dir(), "rw.img");
    int fd = make_file(path, 4 * MIB, false);
    uint8_t a[3000], b[1096], c[4096], back[8192];
    memset(a, 0xa1, sizeof(a));
    memset(b, 0xb2, sizeof(b));
    struct iovec iov[2] = {{a, sizeof(a)}, {b, sizeof(b)}};
    struct done_log log = {0};
    struct tagged_req t = {
        .req = {.op = AIO_WRITE, .fd = fd, .iov = iov, .iovcnt = 2, .offset = 3 * MIB + 512}};
    run_one(e, &t, &log);
    assert_int_equal(log.last, 0);
    assert_int_equal(pread(fd, back, 4096, 3 * MIB + 512), 4096);
    assert_memory_equal(back, a, sizeof(a));
    assert_memory_equal(back + sizeof(a), b, sizeof(b));

    /* Read it back through differently split buffers. */
    memset(c, 0, sizeof(c));
    uint8_t d[100];
    struct iovec riov[2] = {{d, sizeof(d)}, {c, sizeof(c) - sizeof(d)}};
    t.req = (struct aio_req){
        .op = AIO_READ, .fd = fd, .iov = riov, .iovcnt = 2, .offset = 3 * MIB + 512};
    run_one(e, &t, &log);
    assert_int_equal(log.last, 0);
    assert_memory_equal(d, a, sizeof(d));
    assert_memory_equal(c, back + sizeof(d), sizeof(c) - sizeof(d));

    /* Reading past the end of the file is an error, not a hang or silent zeros. */
    struct iovec eof = {back, sizeof(back)};
    t.req = (struct aio_req){
        .op = AIO_READ, .fd = fd, .iov = &eof, .iovcnt = 1, .offset = 4 * MIB - 4096};
    run_one(e, &t, &log);
    assert_int_equal(log.last, -EIO);

    /* Nothing to do completes at once; a bad request fails cleanly. */
    t.req = (struct aio_req){.op = AIO_READ, .fd = fd, .iov = NULL, .iovcnt = 0};
    run_one(e, &t, &log);
    assert_int_equal(log.last, 0);
    t.req = (struct aio_req){.op = (enum aio_op)99, .fd = fd};
    run_one(e, &t, &log);
    assert_int_equal(log.last, -EINVAL);
    struct iovec bad = {back, 512};
    t.req = (struct aio_req){.op = AIO_READ, .fd = -1, .iov = &bad, .iovcnt = 1};
    run_one(e, &t, &log);
    assert_int_equal(log.last, -EBADF);
    assert_int_equal(aio_inflight(e), 0);
    close(fd);
    unlink(path);
    aio_free(e);
}

static void test_aio_flush(void **state)
{
    struct aio_engine *e = engine_for(state);
    char *path = temp_path(tmp_dir(), "flush.img");
    int fd = make_file(path, MIB, false);
    uint8_t buf[512];
    memset(buf, 0x5a, sizeof(buf));
    struct iovec iov = {buf, sizeof(buf)};
    struct done_log log = {0};
    struct tagged_req t = {.req = {.op = AIO_WRITE, .fd = fd, .iov = &iov, .iovcnt = 1}};
    run_one(e, &t, &log);
    t.req = (struct aio_req){.op = AIO_FLUSH, .fd = fd};
    run_one(e, &t, &log);
    assert_int_equal(log.last, 0);
    t.req = (struct aio_req){.op = AIO_FLUSH, .fd = -1};
    run_one(e, &t, &log);
    assert_int_equal(log.last, -EBADF);
    close(fd);
    unlink(path);
    aio_free(e);
}

static bool all_zero(int fd, uint64_t offset, size_t len)
{
    uint8_t *buf = malloc(len);
    assert_non_null(buf);
    assert_int_equal(pread(fd, buf, len, (off_t)offset), (ssize_t)len);
    bool zero = true;
    for (size_t i = 0; i < len && zero; i++)
        zero = buf[i] == 0;
    free(buf);
    return zero;
}

static blkcnt_t blocks_of(int fd)
{
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    return st.st_blocks;
}

static void test_aio_discard_frees_blocks(void **state)
{
    struct aio_engine *e = engine_for(state);
    char *path = temp_path(tmp_dir(), "discard.img");
    int fd = make_file(path, 4 * MIB, true);
    blkcnt_t before = blocks_of(fd);
    struct done_log log = {0};
    struct tagged_req t = {.req = {.op = AIO_DISCARD, .fd = fd, .offset = MIB, .len = 2 * MIB}};
    run_one(e, &t, &log);
    assert_int_equal(log.last, 0);
    assert_true(before - blocks_of(fd) >= (2 * MIB) / 512 - 16); /* st_blocks: 512-byte units */
    assert_true(all_zero(fd, MIB, 2 * MIB));
    assert_false(all_zero(fd, 0, 4096));
    assert_false(all_zero(fd, 3 * MIB, 4096));
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal(st.st_size, 4 * MIB); /* the size is kept */
    close(fd);
    unlink(path);
    aio_free(e);
}

static void write_zeroes_case(struct aio_engine *e, const char *dir, bool unmap)
{
    char *path = temp_path(dir, unmap ? "wz-unmap.img" : "wz.img");
    int fd = make_file(path, 4 * MIB, true);
    blkcnt_t before = blocks_of(fd);
    struct done_log log = {0};
    struct tagged_req t = {
        .req = {
            .op = AIO_WRITE_ZEROES, .fd = fd, .offset = 512, .len = 3 * MIB + 512, .unmap = unmap}};
    run_one(e, &t, &log);
    assert_int_equal(log.last, 0);
    assert_true(all_zero(fd, 512, 3 * MIB + 512));
    assert_false(all_zero(fd, 0, 512));
    assert_false(all_zero(fd, 3 * MIB + 1024, 4096));
    if (unmap)
        assert_true(before - blocks_of(fd) >= (3 * MIB) / 512 - 32);
    close(fd);
    unlink(path);
}

static void test_aio_write_zeroes(void **state)
{
    struct aio_engine *e = engine_for(state);
    write_zeroes_case(e, tmp_dir(), false);
    write_zeroes_case(e, tmp_dir(), true);
    /* tmpfs cannot FALLOC_FL_ZERO_RANGE (EOPNOTSUPP): the engine writes zeros instead. */
    struct statfs sfs;
    if (statfs("/dev/shm", &sfs) == 0 && sfs.f_type == TMPFS_MAGIC)
        write_zeroes_case(e, "/dev/shm", false);
    else
        print_message("no tmpfs at /dev/shm: the write-zeros fallback is not exercised\n");
    aio_free(e);
}

/* 256 requests in flight at once, half writes half reads of other sectors, completed
 * through the eventfd only. */
static void test_aio_many_concurrent(void **state)
{
    struct aio_engine *e = engine_for(state);
    enum { N = 256, SZ = 4096 };
    char *path = temp_path(tmp_dir(), "many.img");
    int fd = make_file(path, 2 * N * SZ, true);
    uint8_t *expect = malloc(N * SZ);
    assert_non_null(expect);
    assert_int_equal(pread(fd, expect, N * SZ, N * SZ), N * SZ); /* what the reads will see */
    uint8_t *wbuf = malloc(N * SZ), *rbuf = calloc(N, SZ);
    struct tagged_req *t = calloc(N, sizeof(*t));
    struct iovec *iov = calloc(N, sizeof(*iov));
    assert_true(wbuf && rbuf && t && iov);
    struct done_log log = {0};
    for (unsigned i = 0; i < N; i++) {
        bool write = i % 2 == 0;
        uint8_t *buf = write ? wbuf + i * SZ : rbuf + i * SZ;
        if (write)
            memset(buf, (int)(i + 1), SZ);
        iov[i] = (struct iovec){buf, SZ};
        t[i] = (struct tagged_req){
            .req = {.op = write ? AIO_WRITE : AIO_READ,
                    .fd = fd,
                    .iov = &iov[i],
                    .iovcnt = 1,
                    .offset = write ? (uint64_t)i * SZ : (uint64_t)(N + i) * SZ,
                    .complete = on_done},
            .log = &log,
            .index = i,
        };
        aio_submit(e, &t[i].req);
    }
    aio_kick(e);
    assert_true(aio_inflight(e) <= N);
    wait_calls(e, &log, N);
    for (unsigned i = 0; i < N; i++) {
        assert_int_equal(log.results[i], 0);
        if (i % 2)
            assert_memory_equal(rbuf + i * SZ, expect + i * SZ, SZ);
    }
    uint8_t back[SZ];
    for (unsigned i = 0; i < N; i += 2) {
        assert_int_equal(pread(fd, back, SZ, (off_t)i * SZ), SZ);
        assert_memory_equal(back, wbuf + i * SZ, SZ);
    }
    assert_int_equal(aio_inflight(e), 0);
    free(expect), free(wbuf), free(rbuf), free(t), free(iov);
    close(fd);
    unlink(path);
    aio_free(e);
}

/* The eventfd becomes readable once work completes; aio_drain finishes everything without
 * anyone else polling; aio_free right after submitting still runs every callback. */
static void test_aio_eventfd_and_drain(void **state)
{
    struct aio_engine *e = engine_for(state);
    char *path = temp_path(tmp_dir(), "drain.img");
    int fd = make_file(path, MIB, false);
    struct done_log log = {0};
    struct tagged_req t[8];
    for (unsigned i = 0; i < 8; i++) {
        t[i] = (struct tagged_req){
            .req = {.op = AIO_FLUSH, .fd = fd, .complete = on_done}, .log = &log, .index = i};
        aio_submit(e, &t[i].req);
    }
    aio_kick(e);
    struct pollfd pfd = {.fd = aio_event_fd(e), .events = POLLIN};
    assert_int_equal(poll(&pfd, 1, 5000), 1);
    assert_true(aio_drain(e, 5 * 1000000000LL));
    assert_int_equal(log.calls, 8);
    assert_int_equal(aio_inflight(e), 0);
    for (unsigned i = 0; i < 8; i++)
        aio_submit(e, &t[i].req);
    aio_free(e);
    assert_int_equal(log.calls, 16);
    close(fd);
    unlink(path);
}

static void test_aio_auto_backend(void **state)
{
    (void)state;
    char err[256];
    setenv("QUOKKA_BLOCK_AIO", "threads", 1);
    struct aio_engine *e = aio_new(AIO_BACKEND_AUTO, 16, err, sizeof(err));
    assert_non_null(e);
    assert_int_equal(aio_backend(e), AIO_BACKEND_THREADS);
    assert_string_equal(aio_backend_name(aio_backend(e)), "threads");
    aio_free(e);
    unsetenv("QUOKKA_BLOCK_AIO");
    e = aio_new(AIO_BACKEND_AUTO, 16, err, sizeof(err));
    assert_non_null(e);
    print_message("default backend here: %s\n", aio_backend_name(aio_backend(e)));
    aio_free(e);
}

/* --- images ------------------------------------------------------------------------------ */

static void expect_open_error(const char *path, bool readonly, const char *needle)
{
    struct block_image img;
    char err[512] = "";
    assert_int_equal(block_image_open(&img, path, readonly, err, sizeof(err)), -1);
    assert_int_equal(img.fd, -1);
    if (!strstr(err, needle))
        fail_msg("opening '%s': got \"%s\", wanted \"%s\"", path, err, needle);
    assert_non_null(strstr(err, path));
    assert_null(strchr(err, '\n'));
}

static void test_image_errors(void **state)
{
    (void)state;
    char *missing = temp_path(tmp_dir(), "missing.img");
    char msg[512];
    snprintf(msg, sizeof(msg), "disk '%s': No such file or directory", missing);
    expect_open_error(missing, false, msg);
    expect_open_error(missing, true, msg);

    char *dir = temp_path(tmp_dir(), "dir");
    assert_int_equal(mkdir(dir, 0755), 0);
    snprintf(msg, sizeof(msg), "disk '%s' is a directory", dir);
    expect_open_error(dir, false, msg);
    expect_open_error(dir, true, msg);
    rmdir(dir);

    expect_open_error("/dev/null", false, "is not a regular file or a block device");

    char *odd = temp_path(tmp_dir(), "odd.img");
    close(make_file(odd, 1000, false));
    expect_open_error(odd, false, "size 1000 is not a multiple of 512");
    expect_open_error(odd, true, "size 1000 is not a multiple of 512");
    unlink(odd);
}

static void test_image_permission(void **state)
{
    (void)state;
    char *path = temp_path(tmp_dir(), "ro-file.img");
    close(make_file(path, 4096, false));
    assert_int_equal(chmod(path, 0444), 0);
    struct block_image img;
    char err[512] = "";
    if (geteuid() == 0) {
        print_message("running as root, which bypasses file permissions: the refusal of a "
                      "read-only file opened writable is not checked\n");
    } else {
        expect_open_error(path, false, "Permission denied (readonly=on opens it read-only)");
    }
    assert_int_equal(block_image_open(&img, path, true, err, sizeof(err)), 0);
    assert_true(img.readonly);
    assert_int_equal(img.size, 4096);
    block_image_close(&img);
    unlink(path);
}

static void test_image_open_and_locks(void **state)
{
    (void)state;
    char *path = temp_path(tmp_dir(), "locked.img");
    close(make_file(path, 64 * 1024, false));
    struct block_image a, b, c;
    char err[512] = "";
    assert_int_equal(block_image_open(&a, path, false, err, sizeof(err)), 0);
    assert_int_equal(a.size, 64 * 1024);
    assert_false(a.readonly);
    assert_false(a.is_blockdev);
    /* A second writer, and a reader, are refused while a writer has it. */
    expect_open_error(path, false, "is locked by another process (is another VM using it?)");
    expect_open_error(path, true, "is locked for writing by another process");
    /* Another process too (the lock is what a second quokka would meet). */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct block_image x;
        _exit(block_image_open(&x, path, false, err, sizeof(err)) == -1 && strstr(err, "is locked")
                  ? 0
                  : 1);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    block_image_close(&a);
    block_image_close(&a); /* closing twice is harmless */

    /* Readers share; a writer is refused while any reader has it. */
    assert_int_equal(block_image_open(&b, path, true, err, sizeof(err)), 0);
    assert_int_equal(block_image_open(&c, path, true, err, sizeof(err)), 0);
    expect_open_error(path, false, "is locked by another process");
    block_image_close(&b);
    expect_open_error(path, false, "is locked by another process");
    block_image_close(&c);
    assert_int_equal(block_image_open(&a, path, false, err, sizeof(err)), 0);
    block_image_close(&a);
    unlink(path);
}

static enum aio_backend uring = AIO_BACKEND_IO_URING, threads = AIO_BACKEND_THREADS;

/* Each engine test once per backend, named after it. */
#define ON(fn, backend)                                                                            \
    {                                                                                              \
        .name = #fn " (" #backend ")", .test_func = fn, .initial_state = &backend                  \
    }
#define BOTH(fn) ON(fn, uring), ON(fn, threads)

int main(void)
{
    srand(12345);
    const struct CMUnitTest tests[] = {
        BOTH(test_aio_read_write_offsets),       BOTH(test_aio_flush),
        BOTH(test_aio_discard_frees_blocks),     BOTH(test_aio_write_zeroes),
        BOTH(test_aio_many_concurrent),          BOTH(test_aio_eventfd_and_drain),
        cmocka_unit_test(test_aio_auto_backend), cmocka_unit_test(test_image_errors),
        cmocka_unit_test(test_image_permission), cmocka_unit_test(test_image_open_and_locks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
