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
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* Run fn in a child with the sandbox on; returns its wait status. Its stderr goes to
 * err_out (up to len bytes, NUL-terminated) when given. */
static int run_sandboxed(void (*fn)(void), enum sandbox_action action, char *err_out, size_t len)
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
        if (sandbox_install(action, err, sizeof(err)) < 0) {
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

static void *thread_fn(void *arg)
{
    return arg;
}

/* What quokka does while the guest runs: all allowed. */
static void allowed_calls(void)
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
    pthread_t t;
    if (pthread_create(&t, NULL, thread_fn, NULL) != 0 || pthread_join(t, NULL) != 0)
        _exit(4); /* glibc's clone3 gets ENOSYS and falls back to clone(CLONE_THREAD) */
    int fd = open("/proc/self/status", O_RDONLY);
    if (fd < 0)
        _exit(5);
    close(fd);
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

static void test_allowed_calls_work(void **state)
{
    (void)state;
    char err[512];
    int status = run_sandboxed(allowed_calls, SANDBOX_TRAP, err, sizeof(err));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("child status 0x%x, stderr: %s", status, err);
}

/* Sanitizer builds let LeakSanitizer's exit check fork a tracer and ptrace (sandbox.c). */
#if defined(__SANITIZE_ADDRESS__)
#define SANITIZER_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZER_BUILD 1
#endif
#endif

static void test_forbidden_calls_kill(void **state)
{
    (void)state;
    static void (*const forbidden[])(void) = {
        call_execve,
        call_open_for_writing,
        call_mmap_exec,
        call_packet_socket,
        call_kvm_create_vm_ioctl,
#ifndef SANITIZER_BUILD
        call_fork,
        call_ptrace,
#endif
    };
    for (size_t i = 0; i < sizeof(forbidden) / sizeof(forbidden[0]); i++) {
        int status = run_sandboxed(forbidden[i], SANDBOX_KILL, NULL, 0);
        if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGSYS)
            fail_msg("forbidden call %zu: child status 0x%x, not killed by SIGSYS", i, status);
    }
    unlink("/tmp/quokka-sandbox-test");
}

static void test_trap_names_the_call(void **state)
{
    (void)state;
    char err[512];
    int status = run_sandboxed(call_execve, SANDBOX_TRAP, err, sizeof(err));
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS);
    if (!strstr(err, "sandbox: system call 59 (execve) is not allowed"))
        fail_msg("stderr: %s", err);
    assert_non_null(strstr(err, "--seccomp off"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_allowed_calls_work),
        cmocka_unit_test(test_forbidden_calls_kill),
        cmocka_unit_test(test_trap_names_the_call),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
