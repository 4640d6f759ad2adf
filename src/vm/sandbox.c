#include "vm/sandbox.h"

#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <linux/if_tun.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

/* System calls any quokka thread may make once the guest runs (found with strace over the
 * payload, Linux, disk, network, vsock and console tests, then read against the code):
 * memory for the heap and thread stacks, files already open (images, tap, console), the
 * event loop and eventfds, io_uring and the block thread pool, signals for kicks and
 * Ctrl-C, threads (the block pool starts workers on demand), sockets for user networking
 * (libslirp) and vsock (Unix sockets: connect to SOCK_P, accept on SOCK). Opening files for
 * writing, executing programs, ptrace, mount, and the like are not here. */
static const int allowed[] = {
    /* memory (mmap/mprotect only without PROT_EXEC: see below) */
    SCMP_SYS(brk),
    SCMP_SYS(munmap),
    SCMP_SYS(mremap),
    SCMP_SYS(madvise),
    /* files and fds already open */
    SCMP_SYS(read),
    SCMP_SYS(write),
    SCMP_SYS(readv),
    SCMP_SYS(writev),
    SCMP_SYS(pread64),
    SCMP_SYS(pwrite64),
    SCMP_SYS(preadv),
    SCMP_SYS(pwritev),
    SCMP_SYS(preadv2),
    SCMP_SYS(pwritev2),
    SCMP_SYS(lseek),
    SCMP_SYS(close),
    SCMP_SYS(fstat),
    SCMP_SYS(newfstatat),
    SCMP_SYS(statx),
    SCMP_SYS(fsync),
    SCMP_SYS(fdatasync),
    SCMP_SYS(fallocate),
    SCMP_SYS(fcntl),
    SCMP_SYS(dup),
    SCMP_SYS(flock),
    SCMP_SYS(ftruncate),
    SCMP_SYS(unlink),
    SCMP_SYS(unlinkat),
    /* waiting and waking */
    SCMP_SYS(futex),
    SCMP_SYS(epoll_wait),
    SCMP_SYS(epoll_pwait),
    SCMP_SYS(epoll_ctl),
    SCMP_SYS(poll),
    SCMP_SYS(ppoll),
    SCMP_SYS(eventfd2),
    SCMP_SYS(nanosleep),
    SCMP_SYS(clock_nanosleep),
    SCMP_SYS(clock_gettime),
    SCMP_SYS(gettimeofday),
    SCMP_SYS(sched_yield),
    SCMP_SYS(restart_syscall),
    SCMP_SYS(timerfd_create),
    SCMP_SYS(timerfd_settime),
    SCMP_SYS(timerfd_gettime),
    /* io_uring (virtio-blk) */
    SCMP_SYS(io_uring_enter),
    SCMP_SYS(io_uring_register),
    /* signals (vCPU kicks, Ctrl-C through the signalfd, the tty restored on the way out) */
    SCMP_SYS(rt_sigaction),
    SCMP_SYS(rt_sigprocmask),
    SCMP_SYS(rt_sigreturn),
    SCMP_SYS(sigaltstack),
    SCMP_SYS(tgkill),
    SCMP_SYS(gettid),
    SCMP_SYS(getpid),
    /* threads */
    SCMP_SYS(set_robust_list),
    SCMP_SYS(rseq),
    SCMP_SYS(exit),
    SCMP_SYS(exit_group),
    SCMP_SYS(sched_getaffinity),
    SCMP_SYS(getrandom),
    SCMP_SYS(membarrier),
    /* sockets: slirp's host side, vsock's Unix sockets */
    SCMP_SYS(connect),
    SCMP_SYS(accept),
    SCMP_SYS(accept4),
    SCMP_SYS(bind),
    SCMP_SYS(listen),
    SCMP_SYS(sendto),
    SCMP_SYS(recvfrom),
    SCMP_SYS(sendmsg),
    SCMP_SYS(recvmsg),
    SCMP_SYS(sendmmsg),
    SCMP_SYS(recvmmsg),
    SCMP_SYS(getsockopt),
    SCMP_SYS(setsockopt),
    SCMP_SYS(getsockname),
    SCMP_SYS(getpeername),
    SCMP_SYS(shutdown),
};

/* Sanitizer builds only: LeakSanitizer's check at exit stops the world with a tracer task
 * (clone without CLONE_THREAD, ptrace, prctl) and reads /proc/self/task and maps (open,
 * getdents). Never in a normal build. */
#if defined(__SANITIZE_ADDRESS__)
#define SANDBOX_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANDBOX_SANITIZER 1
#endif
#endif
#ifdef SANDBOX_SANITIZER
static const int sanitizer_allowed[] = {
    SCMP_SYS(prctl),
    SCMP_SYS(ptrace),
    SCMP_SYS(clone),
    SCMP_SYS(wait4),
    SCMP_SYS(waitid),
    SCMP_SYS(getppid),
    SCMP_SYS(kill),
    SCMP_SYS(readlink),
    SCMP_SYS(readlinkat),
    SCMP_SYS(getdents64),
    SCMP_SYS(getdents),
    SCMP_SYS(pipe2),
    SCMP_SYS(sched_getaffinity),
    SCMP_SYS(setrlimit),
    SCMP_SYS(getrlimit),
    SCMP_SYS(prlimit64),
};
#endif

/* Socket families: Unix (vsock), IPv4/IPv6 (slirp's host sockets). No netlink, no packet. */
static const int socket_families[] = {AF_UNIX, AF_INET, AF_INET6};

/* ioctls while the guest runs: the vCPU's KVM calls (registers for a crash dump, MSRs),
 * the VM's interrupt lines, MSI routes and eventfds that the guest's virtio set-up adds,
 * tap offloads the guest negotiates, tap queues it enables or disables (multiqueue), and
 * the terminal restored at exit. */
static const unsigned long allowed_ioctls[] = {
    KVM_RUN,       KVM_GET_REGS,    KVM_SET_REGS,  KVM_GET_SREGS,
    KVM_SET_SREGS,
#if defined(__x86_64__) /* the x86 KVM ABI (MSRs): no such calls elsewhere */
    KVM_GET_MSRS,  KVM_SET_MSRS,
#endif
    KVM_IRQ_LINE,  KVM_IRQFD,       KVM_IOEVENTFD, KVM_SET_GSI_ROUTING,
    TUNSETOFFLOAD, TUNSETVNETHDRSZ, TUNSETQUEUE,   TCGETS,
    TCSETS,        TCSETSW,         TCSETSF,       FIONREAD,
    FIONBIO,
};

/* SIGSYS from SCMP_ACT_TRAP: name the call (async-signal-safe writes only), then die by
 * the signal so the exit status says what happened. */
static void on_sigsys(int sig, siginfo_t *si, void *uctx)
{
    (void)uctx;
    char msg[160];
    const char *name = NULL;
    name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, si->si_syscall);
    int n = snprintf(msg, sizeof(msg),
                     "quokka: sandbox: system call %d (%s) is not allowed: stopping (--seccomp "
                     "off disables the sandbox, for debugging)\n",
                     si->si_syscall, name ? name : "?");
    if (n > 0 && write(STDERR_FILENO, msg, (size_t)n) < 0) {
        /* nothing more to say */
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

/* One argument comparison (libseccomp's SCMP_An macros leave fields to the initializer,
 * which clang's -Wmissing-field-initializers rejects). For CMP_EQ, mask is unused. */
static struct scmp_arg_cmp arg_cmp(unsigned arg, enum scmp_compare op, scmp_datum_t a,
                                   scmp_datum_t b)
{
    return (struct scmp_arg_cmp){.arg = arg, .op = op, .datum_a = a, .datum_b = b};
}

static uint32_t scmp_action(enum sandbox_action action)
{
    return action == SANDBOX_KILL ? SCMP_ACT_KILL_PROCESS : SCMP_ACT_TRAP;
}

static int set_trap_handler(enum sandbox_action action, char *err, size_t errlen)
{
    if (action != SANDBOX_TRAP)
        return 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_sigsys;
    sa.sa_flags = SA_SIGINFO;
    if (sigaction(SIGSYS, &sa, NULL) < 0)
        return qk_fail(err, errlen, "sandbox: sigaction(SIGSYS): %s", strerror(errno));
    return 0;
}

static int add_rules(scmp_filter_ctx ctx, const int *nrs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (nrs[i] < 0)
            continue; /* libseccomp's pseudo number: no such call on this arch (aarch64: poll) */
        int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nrs[i], 0);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* mmap and mprotect without PROT_EXEC: the translator's code buffer is mapped before the
 * filter; nothing maps new executable memory after. */
static int add_memory_rules(scmp_filter_ctx ctx)
{
    int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1,
                              arg_cmp(2, SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
    if (rc == 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1,
                              arg_cmp(2, SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
    return rc;
}

/* New threads only (CLONE_THREAD), never processes; clone3's flags are in memory the filter
 * cannot read, so it fails with ENOSYS and glibc falls back to clone. */
static int add_thread_rules(scmp_filter_ctx ctx)
{
    int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
                              arg_cmp(0, SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
    if (rc == 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
    return rc;
}

static int add_ioctl_rules(scmp_filter_ctx ctx, const unsigned long *reqs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        /* The request is an unsigned int to the kernel: compare the low 32 bits. */
        int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
                                  arg_cmp(1, SCMP_CMP_MASKED_EQ, 0xffffffffu, reqs[i]));
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* openat for reading only: libslirp reads /etc/resolv.conf when the guest first asks its
 * DNS address (10.0.2.3). Nothing may be created, written or truncated. */
static int add_open_rules(scmp_filter_ctx ctx)
{
    const scmp_datum_t writing = O_WRONLY | O_RDWR | O_CREAT | O_TRUNC | O_APPEND | O_TMPFILE;
    return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(openat), 1,
                            arg_cmp(2, SCMP_CMP_MASKED_EQ, writing, 0));
}

static int add_socket_rules(scmp_filter_ctx ctx)
{
    for (size_t i = 0; i < sizeof(socket_families) / sizeof(socket_families[0]); i++) {
        int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
                                  arg_cmp(0, SCMP_CMP_EQ, (scmp_datum_t)socket_families[i], 0));
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int load(scmp_filter_ctx ctx, char *err, size_t errlen)
{
    /* TSYNC: every thread that exists now (the block pool's, slirp's) gets it too. */
    int rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
    if (rc == 0)
        rc = seccomp_load(ctx);
    seccomp_release(ctx);
    if (rc < 0)
        return qk_fail(err, errlen, "sandbox: cannot install the seccomp filter: %s",
                       strerror(-rc));
    return 0;
}

int sandbox_install(enum sandbox_action action, char *err, size_t errlen)
{
    if (set_trap_handler(action, err, errlen) < 0)
        return -1;
    scmp_filter_ctx ctx = seccomp_init(scmp_action(action));
    if (!ctx)
        return qk_fail(err, errlen, "sandbox: seccomp_init failed");
    int rc = add_rules(ctx, allowed, sizeof(allowed) / sizeof(allowed[0]));
    if (rc == 0)
        rc = add_memory_rules(ctx);
    if (rc == 0)
        rc = add_thread_rules(ctx);
    if (rc == 0)
        rc = add_ioctl_rules(ctx, allowed_ioctls,
                             sizeof(allowed_ioctls) / sizeof(allowed_ioctls[0]));
    if (rc == 0)
        rc = add_socket_rules(ctx);
    if (rc == 0)
        rc = add_open_rules(ctx);
#ifdef SANDBOX_SANITIZER
    if (rc == 0)
        rc = seccomp_rule_add(
            ctx, SCMP_ACT_ALLOW, SCMP_SYS(open), 1,
            arg_cmp(1, SCMP_CMP_MASKED_EQ, O_WRONLY | O_RDWR | O_CREAT | O_TRUNC | O_APPEND, 0));
    if (rc == 0)
        rc = add_rules(ctx, sanitizer_allowed,
                       sizeof(sanitizer_allowed) / sizeof(sanitizer_allowed[0]));
#endif
    if (rc < 0) {
        seccomp_release(ctx);
        return qk_fail(err, errlen, "sandbox: cannot build the seccomp filter: %s", strerror(-rc));
    }
    return load(ctx, err, errlen);
}
