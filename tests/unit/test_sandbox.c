/* Unit tests: the seccomp sandbox (the filter quokka installs before the guest runs). Each
 * case forks: the child installs the filter and makes calls; the parent checks how the
 * child ended. Calls quokka needs keep working; forbidden ones kill (SANDBOX_KILL) or are
 * named on stderr before the process dies (SANDBOX_TRAP). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "vm/sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

/* Run fn in a child whose calling thread has kind's filter; returns its wait status. Its
 * stderr goes to err_out (up to len bytes, NUL-terminated) when given. */
static int run_sandboxed(enum sandbox_thread kind, void (*fn)(void), enum sandbox_action action,
                         char *err_out, size_t len)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], STDERR_FILENO);
        close(fds[0]);
        char err[256];
        if (sandbox_configure(true, action, err, sizeof(err)) < 0 ||
            sandbox_enter(kind, err, sizeof(err)) < 0) {
            dprintf(STDERR_FILENO, "%s\n", err);
            _exit(100);
        }
        fn();
        _exit(0);
    }
    close(fds[1]);
    size_t got = 0;
    ssize_t n;
    char sink[256];
    while ((n = read(fds[0], err_out ? err_out + got : sink,
                     err_out ? len - 1 - got : sizeof(sink))) > 0)
        if (err_out)
            got += (size_t)n;
    if (err_out)
        err_out[got] = '\0';
    close(fds[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return status;
}

/* What the I/O thread does while the guest runs: all allowed there. */
static void io_allowed_calls(void)
{
    int efd = eventfd(0, EFD_CLOEXEC);
    uint64_t one = 1;
    if (efd < 0 || write(efd, &one, sizeof(one)) != sizeof(one))
        _exit(1);
    if (read(efd, &one, sizeof(one)) != sizeof(one))
        _exit(2);
    void *m = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED || mprotect(m, 4096, PROT_READ) < 0 || munmap(m, 1 << 20) < 0)
        _exit(3);
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    if (s < 0)
        _exit(6);
    close(s);
    void *heap = malloc(8 << 20);
    if (!heap)
        _exit(7);
    free(heap);
}

static void call_execve(void)
{
    char *argv[] = {"/bin/true", NULL};
    execve("/bin/true", argv, NULL);
}

__attribute__((unused)) static void call_fork(void)
{
    syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0); /* a process, not a thread */
}

static void call_open_for_writing(void)
{
    open("/tmp/quokka-sandbox-test", O_WRONLY | O_CREAT, 0600);
}

static void call_mmap_exec(void)
{
    mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
}

static void call_packet_socket(void)
{
    socket(AF_PACKET, SOCK_RAW, 0);
}

__attribute__((unused)) static void call_ptrace(void)
{
    syscall(SYS_ptrace, 0, 0, 0, 0);
}

static void call_kvm_create_vm_ioctl(void)
{
    ioctl(0, 0xae01 /* KVM_CREATE_VM */, 0);
}

/* The network thread's: host sockets of every family slirp uses, /etc/resolv.conf. */
static void net_allowed_calls(void)
{
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    int s6 = socket(AF_INET6, SOCK_DGRAM, 0);
    if (s < 0 || s6 < 0)
        _exit(1);
    close(s);
    close(s6);
    int fd = open("/etc/hostname", O_RDONLY);
    if (fd < 0 && errno != ENOENT)
        _exit(2);
    if (fd >= 0)
        close(fd);
}

/* The block thread's: positioned reads and writes, flushes of an open image. */
static void block_allowed_calls(void)
{
    char buf[16];
    if (pread(STDIN_FILENO, buf, 0, 0) < 0 && errno != ESPIPE)
        _exit(1);
    if (fdatasync(STDERR_FILENO) < 0 && errno != EINVAL)
        _exit(2);
}

/* The API thread's: a snapshot file written next to its final name, then renamed. */
static void api_allowed_calls(void)
{
    int fd = open("/tmp/quokka-sandbox-api.tmp", O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write(fd, "x", 1) != 1 || ftruncate(fd, 4096) < 0 || close(fd) < 0)
        _exit(1);
    if (rename("/tmp/quokka-sandbox-api.tmp", "/tmp/quokka-sandbox-api") < 0 ||
        unlink("/tmp/quokka-sandbox-api") < 0)
        _exit(2);
}

/* The vCPU thread's: eventfds it was handed (doorbells, interrupts), memory, time. */
static void vcpu_allowed_calls(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) < 0)
        _exit(1);
    void *heap = malloc(8 << 20);
    if (!heap)
        _exit(2);
    free(heap);
    if (write(STDERR_FILENO, "", 0) < 0)
        _exit(3);
}

/* The gdbstub thread's: its sockets and eventfds were made before its filter (here: by the
 * test, inherited through fork). */
static int gdb_socks[2] = {-1, -1};
static int gdb_event_fd = -1;

static void gdb_allowed_calls(void)
{
    struct pollfd p[2] = {{gdb_socks[1], POLLIN, 0}, {gdb_event_fd, POLLIN, 0}};
    if (send(gdb_socks[0], "$?#3f", 5, MSG_NOSIGNAL) != 5 || poll(p, 2, 1000) != 1)
        _exit(1);
    char buf[16];
    if (recv(gdb_socks[1], buf, sizeof(buf), 0) != 5)
        _exit(2);
    int one = 1;
    if (setsockopt(gdb_socks[1], SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one)) < 0)
        _exit(3);
    if (accept4(gdb_socks[1], NULL, NULL, SOCK_CLOEXEC) >= 0 || errno != EINVAL)
        _exit(4); /* allowed, just not a listening socket */
    uint64_t v = 1;
    if (write(gdb_event_fd, &v, sizeof(v)) != sizeof(v) || read(gdb_event_fd, &v, 8) != 8)
        _exit(5);
    void *heap = malloc(8 << 20);
    if (!heap)
        _exit(6);
    free(heap);
    close(gdb_socks[0]);
}

static void call_pread(void)
{
    char buf[1];
    if (pread(STDIN_FILENO, buf, 0, 0) < 0) {
        /* the call was made: that is all */
    }
}

static void call_eventfd(void)
{
    eventfd(0, EFD_CLOEXEC);
}

static void call_socket_unix(void)
{
    socket(AF_UNIX, SOCK_STREAM, 0);
}

static void call_tcgets(void)
{
    struct termios t;
    ioctl(STDIN_FILENO, TCGETS, &t);
}

static void call_uring_enter(void)
{
    syscall(SYS_io_uring_enter, -1, 0, 0, 0, NULL, 0);
}

static void call_epoll(void)
{
    epoll_create1(0);
}

static void test_allowed_calls_work(void **state)
{
    (void)state;
    static const struct {
        enum sandbox_thread kind;
        void (*fn)(void);
    } cases[] = {
        {SANDBOX_IO, io_allowed_calls},       {SANDBOX_NET, net_allowed_calls},
        {SANDBOX_BLOCK, block_allowed_calls}, {SANDBOX_API, api_allowed_calls},
        {SANDBOX_VCPU, vcpu_allowed_calls},   {SANDBOX_GDB, gdb_allowed_calls},
    };
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, gdb_socks), 0);
    gdb_event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    assert_true(gdb_event_fd >= 0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char err[512];
        int status = run_sandboxed(cases[i].kind, cases[i].fn, SANDBOX_TRAP, err, sizeof(err));
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            fail_msg("%s thread: child status 0x%x, stderr: %s", sandbox_thread_name(cases[i].kind),
                     status, err);
    }
}

/* Sanitizer builds let LeakSanitizer's exit check fork a tracer and ptrace (sandbox.c). */
#if defined(__SANITIZE_ADDRESS__)
#define SANITIZER_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZER_BUILD 1
#endif
#endif

/* Refused on every kind of thread. */
static void test_forbidden_everywhere(void **state)
{
    (void)state;
    static void (*const forbidden[])(void) = {
        call_execve, call_mmap_exec, call_packet_socket, call_kvm_create_vm_ioctl,
#ifndef SANITIZER_BUILD
        call_fork,   call_ptrace,
#endif
    };
    for (int k = 0; k < SANDBOX_NR_THREADS; k++)
        for (size_t i = 0; i < sizeof(forbidden) / sizeof(forbidden[0]); i++) {
            int status = run_sandboxed((enum sandbox_thread)k, forbidden[i], SANDBOX_KILL, NULL, 0);
            if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGSYS)
                fail_msg("%s thread, forbidden call %zu: child status 0x%x, not killed by SIGSYS",
                         sandbox_thread_name((enum sandbox_thread)k), i, status);
        }
}

/* Refused on some kinds, allowed on others (the *_allowed_calls above). */
static void test_forbidden_per_kind(void **state)
{
    (void)state;
    static const struct {
        enum sandbox_thread kind;
        void (*fn)(void);
    } cases[] = {
        {SANDBOX_VCPU, call_socket_unix},
        {SANDBOX_VCPU, call_tcgets},
        {SANDBOX_VCPU, call_uring_enter},
        {SANDBOX_VCPU, call_epoll},
        {SANDBOX_BLOCK, call_socket_unix},
#ifdef SANITIZER_BUILD /* read-only opens allowed (LeakSanitizer reads /proc), others trap */
        {SANDBOX_VCPU, call_open_for_writing},
        {SANDBOX_IO, call_open_for_writing},
#endif
        {SANDBOX_NET, call_open_for_writing},
        {SANDBOX_NET, call_tcgets},
        {SANDBOX_API, call_socket_unix},
        {SANDBOX_API, call_uring_enter},
        /* the gdbstub: its sockets exist already; no files, epoll, new eventfds, ttys */
        {SANDBOX_GDB, call_socket_unix},
        {SANDBOX_GDB, call_epoll},
        {SANDBOX_GDB, call_eventfd},
        {SANDBOX_GDB, call_pread},
        {SANDBOX_GDB, call_tcgets},
        {SANDBOX_GDB, call_uring_enter},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int status = run_sandboxed(cases[i].kind, cases[i].fn, SANDBOX_KILL, NULL, 0);
        if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGSYS)
            fail_msg("%s thread, case %zu: child status 0x%x, not killed by SIGSYS",
                     sandbox_thread_name(cases[i].kind), i, status);
    }
    unlink("/tmp/quokka-sandbox-test");
}

/* Kinds that open nothing refuse openat with EACCES instead of trapping: glibc's free()
 * opens /proc/sys/vm/overcommit_memory on whichever thread first trims an arena, and copes
 * with the failure (a trap there deadlocked: the handler ran inside malloc). */
static void open_refused_exits_42(void)
{
    int fd = open("/tmp/quokka-sandbox-test", O_WRONLY | O_CREAT, 0600);
    if (fd < 0 && errno == EACCES)
        _exit(42);
#ifndef SANITIZER_BUILD
    fd = open("/etc/hostname", O_RDONLY);
    if (fd < 0 && errno == EACCES)
        _exit(42);
#endif
}

static void test_open_refused_not_trapped(void **state)
{
    (void)state;
#ifdef SANITIZER_BUILD
    skip(); /* opens for writing trap there (read-only ones are allowed): test_forbidden_per_kind */
#endif
    static const enum sandbox_thread kinds[] = {SANDBOX_VCPU, SANDBOX_BLOCK, SANDBOX_IO,
                                                SANDBOX_GDB};
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        int status = run_sandboxed(kinds[i], open_refused_exits_42, SANDBOX_KILL, NULL, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 42)
            fail_msg("%s thread: child status 0x%x, open not refused with EACCES",
                     sandbox_thread_name(kinds[i]), status);
    }
    unlink("/tmp/quokka-sandbox-test");
}

/* A filter binds only the thread that installed it: another thread of the same process,
 * unfiltered, still makes the call the filtered one dies of. */
static void *vcpu_then_socket(void *arg)
{
    char err[200];
    if (sandbox_enter(SANDBOX_VCPU, err, sizeof(err)) < 0)
        _exit(100);
    *(volatile int *)arg = 1;
    for (;;) {
        struct timespec nap = {0, 1000000};
        nanosleep(&nap, NULL);
        if (*(volatile int *)arg == 2)
            call_socket_unix(); /* dies here */
    }
    return NULL;
}

static void per_thread_child(void)
{
    static volatile int step;
    pthread_t t;
    if (pthread_create(&t, NULL, vcpu_then_socket, (void *)&step) != 0)
        _exit(1);
    while (step != 1)
        sched_yield();
    int s = socket(AF_UNIX, SOCK_STREAM, 0); /* this thread has no filter */
    if (s < 0)
        _exit(2);
    close(s);
    dprintf(STDERR_FILENO, "unfiltered thread made its socket\n");
    step = 2;
    pthread_join(t, NULL);
    _exit(3);
}

static void test_filters_are_per_thread(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], STDERR_FILENO);
        char err[200];
        if (sandbox_configure(true, SANDBOX_TRAP, err, sizeof(err)) < 0)
            _exit(100);
        per_thread_child();
    }
    close(fds[1]);
    char out[1024];
    size_t got = 0;
    ssize_t n;
    while (got < sizeof(out) - 1 && (n = read(fds[0], out + got, sizeof(out) - 1 - got)) > 0)
        got += (size_t)n;
    out[got] = '\0';
    close(fds[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGSYS)
        fail_msg("child status 0x%x, stderr: %s", status, out);
    assert_non_null(strstr(out, "unfiltered thread made its socket"));
    if (!strstr(out, "system call 41 (socket) is not allowed on the vCPU thread"))
        fail_msg("stderr: %s", out);
}

static void test_trap_names_the_call(void **state)
{
    (void)state;
    char err[512];
    int status = run_sandboxed(SANDBOX_IO, call_execve, SANDBOX_TRAP, err, sizeof(err));
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS);
    if (!strstr(err, "sandbox: system call 59 (execve) is not allowed on the I/O thread"))
        fail_msg("stderr: %s", err);
    assert_non_null(strstr(err, "--seccomp off"));
}

/* The sizes of the lists, for the record (and a check that each kind got its own). */
static void test_list_sizes(void **state)
{
    (void)state;
    sandbox_set_kvm(true);
    for (int k = 0; k < SANDBOX_NR_THREADS; k++)
        printf("sandbox: the %s thread allows %zu system calls (KVM)\n",
               sandbox_thread_name((enum sandbox_thread)k),
               sandbox_syscall_count((enum sandbox_thread)k));
    assert_true(sandbox_syscall_count(SANDBOX_VCPU) < sandbox_syscall_count(SANDBOX_IO));
    assert_true(sandbox_syscall_count(SANDBOX_BLOCK) < sandbox_syscall_count(SANDBOX_IO));
    assert_true(sandbox_syscall_count(SANDBOX_GDB) < sandbox_syscall_count(SANDBOX_IO));
    sandbox_set_kvm(false);
    printf("sandbox: the vCPU thread allows %zu system calls (translator)\n",
           sandbox_syscall_count(SANDBOX_VCPU));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_allowed_calls_work),
        cmocka_unit_test(test_forbidden_everywhere),
        cmocka_unit_test(test_forbidden_per_kind),
        cmocka_unit_test(test_open_refused_not_trapped),
        cmocka_unit_test(test_filters_are_per_thread),
        cmocka_unit_test(test_trap_names_the_call),
        cmocka_unit_test(test_list_sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
