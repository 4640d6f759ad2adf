/* vsock-test: the guest end of quokka's vsock tests (tests/e2e/test_vsock.py). Built static
 * by build-guest.sh into the initramfs as /usr/bin/vsock-test.
 *
 *   vsock-test listen PORT COUNT REPLY_BYTES
 *       Listen on vsock port PORT, print "vsock-test: listening PORT", accept COUNT
 *       connections (each in its own process, so they run at once). Each reads until EOF,
 *       prints "vsock-test: recv port=PORT bytes=N fnv=HEX" (FNV-1a 64 of what came), then
 *       sends REPLY_BYTES of pattern(seed = the low 32 bits of that FNV), prints
 *       "vsock-test: replied bytes=N" and closes.
 *   vsock-test connect CID PORT BYTES SEED
 *       Connect to CID:PORT, send BYTES of pattern(SEED), shut down writing, read until EOF and
 *       print "vsock-test: conn seed=SEED sent=BYTES recv bytes=N fnv=HEX". A refused
 *       connection prints "vsock-test: connect CID:PORT: <error>" and exits 1.
 *
 * pattern(seed): xorshift32 words (x ^= x << 13; x ^= x >> 17; x ^= x << 5) from seed (0 -> 1),
 * each stored little-endian. The host side computes the same in Python. */
#include <errno.h>
#include <linux/vm_sockets.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHUNK 65536

/* One line in one write(), so lines of processes running at once do not interleave. */
static void say(const char *fmt, ...)
{
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if (n > (int)sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    if (write(1, line, (size_t)n) < 0)
        _exit(3);
}

static uint64_t fnv1a(uint64_t h, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

struct pattern {
    uint32_t x;
    uint8_t word[4];
    unsigned used; /* bytes of word already given */
};

static void pattern_init(struct pattern *p, uint32_t seed)
{
    p->x = seed ? seed : 1;
    p->used = 4;
}

static void pattern_fill(struct pattern *p, uint8_t *buf, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p->used == 4) {
            p->x ^= p->x << 13;
            p->x ^= p->x >> 17;
            p->x ^= p->x << 5;
            for (int b = 0; b < 4; b++)
                p->word[b] = (uint8_t)(p->x >> (8 * b));
            p->used = 0;
        }
        buf[i] = p->word[p->used++];
    }
}

/* Send `bytes` of pattern(seed); -1 on error. */
static int send_pattern(int fd, uint64_t bytes, uint32_t seed)
{
    static uint8_t buf[CHUNK];
    struct pattern pat;
    pattern_init(&pat, seed);
    while (bytes) {
        size_t n = bytes < sizeof(buf) ? (size_t)bytes : sizeof(buf);
        pattern_fill(&pat, buf, n);
        for (size_t off = 0; off < n;) {
            ssize_t w = write(fd, buf + off, n - off);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                return -1;
            off += (size_t)w;
        }
        bytes -= n;
    }
    return 0;
}

/* Read until EOF; the byte count and FNV-1a 64 of it. -1 on error. */
static int recv_all(int fd, uint64_t *bytes, uint64_t *fnv)
{
    static uint8_t buf[CHUNK];
    *bytes = 0;
    *fnv = 0xcbf29ce484222325ULL;
    for (;;) {
        ssize_t r = read(fd, buf, sizeof(buf));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            return 0;
        *fnv = fnv1a(*fnv, buf, (size_t)r);
        *bytes += (uint64_t)r;
    }
}

static uint64_t number(const char *s)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (!*s || *end || errno) {
        say("vsock-test: bad number '%s'", s);
        exit(2);
    }
    return v;
}

static int serve(int fd, unsigned port, uint64_t reply)
{
    uint64_t bytes, fnv;
    if (recv_all(fd, &bytes, &fnv) < 0) {
        say("vsock-test: recv port=%u: %s", port, strerror(errno));
        return 1;
    }
    say("vsock-test: recv port=%u bytes=%llu fnv=%016llx", port, (unsigned long long)bytes,
        (unsigned long long)fnv);
    if (send_pattern(fd, reply, (uint32_t)fnv) < 0) {
        say("vsock-test: reply port=%u: %s", port, strerror(errno));
        return 1;
    }
    say("vsock-test: replied bytes=%llu", (unsigned long long)reply);
    close(fd);
    return 0;
}

static int do_listen(unsigned port, unsigned count, uint64_t reply)
{
    int s = socket(AF_VSOCK, SOCK_STREAM, 0);
    struct sockaddr_vm sa = {.svm_family = AF_VSOCK, .svm_port = port, .svm_cid = VMADDR_CID_ANY};
    if (s < 0 || bind(s, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(s, 16) < 0) {
        say("vsock-test: listen %u: %s", port, strerror(errno));
        return 1;
    }
    say("vsock-test: listening %u", port);
    for (unsigned i = 0; i < count; i++) {
        int fd = accept(s, NULL, NULL);
        if (fd < 0) {
            say("vsock-test: accept: %s", strerror(errno));
            return 1;
        }
        pid_t pid = fork();
        if (pid == 0) {
            close(s);
            _exit(serve(fd, port, reply));
        }
        close(fd);
    }
    int failed = 0, status;
    while (wait(&status) > 0)
        failed |= !WIFEXITED(status) || WEXITSTATUS(status) != 0;
    return failed;
}

static int do_connect(unsigned cid, unsigned port, uint64_t bytes, uint32_t seed)
{
    int s = socket(AF_VSOCK, SOCK_STREAM, 0);
    struct sockaddr_vm sa = {.svm_family = AF_VSOCK, .svm_port = port, .svm_cid = cid};
    if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        say("vsock-test: connect %u:%u: %s", cid, port, strerror(errno));
        return 1;
    }
    if (send_pattern(s, bytes, seed) < 0 || shutdown(s, SHUT_WR) < 0) {
        say("vsock-test: send %u:%u: %s", cid, port, strerror(errno));
        return 1;
    }
    uint64_t got, fnv;
    if (recv_all(s, &got, &fnv) < 0) {
        say("vsock-test: recv %u:%u: %s", cid, port, strerror(errno));
        return 1;
    }
    say("vsock-test: conn seed=%u sent=%llu recv bytes=%llu fnv=%016llx", seed,
        (unsigned long long)bytes, (unsigned long long)got, (unsigned long long)fnv);
    close(s);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 5 && !strcmp(argv[1], "listen"))
        return do_listen((unsigned)number(argv[2]), (unsigned)number(argv[3]), number(argv[4]));
    if (argc == 6 && !strcmp(argv[1], "connect"))
        return do_connect((unsigned)number(argv[2]), (unsigned)number(argv[3]), number(argv[4]),
                          (uint32_t)number(argv[5]));
    say("usage: vsock-test listen PORT COUNT REPLY_BYTES | connect CID PORT BYTES SEED");
    return 2;
}
