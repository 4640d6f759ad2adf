#include "vm/sandbox.h"

#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/kvm.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

/* Open flags that can create or change a file. O_TMPFILE includes O_DIRECTORY, which a
 * read-only directory open (LeakSanitizer's /proc/self/task) has: only its own bit counts. */
#define OPEN_WRITING_FLAGS                                                                         \
    (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC | O_APPEND | (O_TMPFILE & ~O_DIRECTORY))

/* Enough for every x86-64 and aarch64 system call number. */
#define SYSCALL_NAMES 512

/* The allow-lists were found with strace over the payload, Linux, disk, network, vsock,
 * console, API and snapshot tests (threads named, one list per name), then read against
 * the code. They are built from groups; each thread kind takes the groups it needs. */

/* Every thread: memory for the heap, waiting and waking (futexes, eventfds it was handed),
 * time, signals (vCPU kicks, SIGSYS's own handler), leaving. */
static const int group_base[] = {
    SCMP_SYS(brk),           SCMP_SYS(munmap),
    SCMP_SYS(mremap),        SCMP_SYS(madvise),
    SCMP_SYS(read),          SCMP_SYS(write),
    SCMP_SYS(close),         SCMP_SYS(futex),
    SCMP_SYS(clock_gettime), SCMP_SYS(gettimeofday),
    SCMP_SYS(nanosleep),     SCMP_SYS(clock_nanosleep),
    SCMP_SYS(sched_yield),   SCMP_SYS(restart_syscall),
    SCMP_SYS(rt_sigaction),  SCMP_SYS(rt_sigprocmask),
    SCMP_SYS(rt_sigreturn),  SCMP_SYS(sigaltstack),
    SCMP_SYS(tgkill),        SCMP_SYS(gettid),
    SCMP_SYS(getpid),        SCMP_SYS(exit),
    SCMP_SYS(exit_group),    SCMP_SYS(getrandom),
    SCMP_SYS(fstat),         SCMP_SYS(newfstatat),
};

/* vCPU threads: a device activated by the guest (DRIVER_OK, a register write on a vCPU
 * thread) subscribes its descriptors to the I/O loop. */
static const int group_vcpu[] = {SCMP_SYS(epoll_ctl)};

/* Reading and writing files already open (disk images, the memory file, the console). */
static const int group_file_io[] = {
    SCMP_SYS(readv),  SCMP_SYS(writev),  SCMP_SYS(pread64),   SCMP_SYS(pwrite64),
    SCMP_SYS(preadv), SCMP_SYS(pwritev), SCMP_SYS(preadv2),   SCMP_SYS(pwritev2),
    SCMP_SYS(lseek),  SCMP_SYS(fsync),   SCMP_SYS(fdatasync), SCMP_SYS(fallocate),
};

/* Event loops: epoll, poll, eventfds and timerfds, descriptor flags. */
static const int group_poll[] = {
    SCMP_SYS(epoll_wait),
    SCMP_SYS(epoll_pwait),
    SCMP_SYS(epoll_ctl),
    SCMP_SYS(poll),
    SCMP_SYS(ppoll),
    SCMP_SYS(eventfd2),
    SCMP_SYS(timerfd_create),
    SCMP_SYS(timerfd_settime),
    SCMP_SYS(timerfd_gettime),
    SCMP_SYS(fcntl),
    SCMP_SYS(dup),
};

/* Sockets already made or accepted (socket() itself is filtered by family, per kind). */
static const int group_sockets[] = {
    SCMP_SYS(connect),    SCMP_SYS(accept),      SCMP_SYS(accept4),     SCMP_SYS(bind),
    SCMP_SYS(listen),     SCMP_SYS(sendto),      SCMP_SYS(recvfrom),    SCMP_SYS(sendmsg),
    SCMP_SYS(recvmsg),    SCMP_SYS(sendmmsg),    SCMP_SYS(recvmmsg),    SCMP_SYS(getsockopt),
    SCMP_SYS(setsockopt), SCMP_SYS(getsockname), SCMP_SYS(getpeername), SCMP_SYS(shutdown),
};

/* The gdbstub's thread (checked with strace -f over a gdb session): waits on its sockets
 * and eventfds (poll; ppoll is glibc's poll on aarch64), takes one debugger connection
 * (accept4, TCP_NODELAY), talks over it (recv/send are recvfrom/sendto). The rest (guest
 * registers and memory, breakpoints, pausing and resuming the vCPUs: futexes, tgkill,
 * eventfd writes; close) is in group_base. No socket(), opens or epoll: its sockets were
 * made before its filter. */
static const int group_gdb[] = {
    SCMP_SYS(poll),     SCMP_SYS(ppoll),  SCMP_SYS(accept4),
    SCMP_SYS(recvfrom), SCMP_SYS(sendto), SCMP_SYS(setsockopt),
};

/* io_uring (virtio-blk's requests are submitted where the queue is processed). */
static const int group_uring[] = {SCMP_SYS(io_uring_enter), SCMP_SYS(io_uring_register)};

/* The I/O thread's teardown: image locks released, vsock and API socket files removed. */
static const int group_teardown[] = {SCMP_SYS(flock), SCMP_SYS(unlink), SCMP_SYS(unlinkat)};

/* The API thread's files: snapshot state (written to NAME.tmp, then renamed), memory file,
 * logger and metrics targets. Opening them is the openat rule below. */
static const int group_api_files[] = {
    SCMP_SYS(ftruncate), SCMP_SYS(rename), SCMP_SYS(renameat),
    SCMP_SYS(renameat2), SCMP_SYS(unlink), SCMP_SYS(unlinkat),
};

/* Sanitizer builds only: LeakSanitizer's check at exit stops the world with a tracer task
 * (clone without CLONE_THREAD, ptrace, prctl) and reads /proc/self/task and maps (open,
 * getdents); ASan's reports read /proc too. Never in a normal build. */
#if defined(__SANITIZE_ADDRESS__)
#define SANDBOX_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANDBOX_SANITIZER 1
#endif
#endif
#ifdef SANDBOX_SANITIZER
static const int group_sanitizer[] = {
    SCMP_SYS(prctl),      SCMP_SYS(ptrace),     SCMP_SYS(clone),     SCMP_SYS(wait4),
    SCMP_SYS(waitid),     SCMP_SYS(getppid),    SCMP_SYS(kill),      SCMP_SYS(readlink),
    SCMP_SYS(readlinkat), SCMP_SYS(getdents64), SCMP_SYS(getdents),  SCMP_SYS(pipe2),
    SCMP_SYS(setrlimit),  SCMP_SYS(getrlimit),  SCMP_SYS(prlimit64), SCMP_SYS(sched_getaffinity),
};
#endif

struct group {
    const int *nrs;
    size_t n;
};
#define GROUP(a)                                                                                   \
    {                                                                                              \
        a, sizeof(a) / sizeof(a[0])                                                                \
    }

enum {
    G_BASE = 1u << 0,
    G_FILE_IO = 1u << 1,
    G_POLL = 1u << 2,
    G_SOCKETS = 1u << 3,
    G_URING = 1u << 4,
    G_TEARDOWN = 1u << 5,
    G_API_FILES = 1u << 6,
    G_VCPU = 1u << 7,
    G_GDB = 1u << 8,
    G_COUNT = 9,
};

static const struct group groups[G_COUNT] = {
    GROUP(group_base),      GROUP(group_file_io), GROUP(group_poll),
    GROUP(group_sockets),   GROUP(group_uring),   GROUP(group_teardown),
    GROUP(group_api_files), GROUP(group_vcpu),    GROUP(group_gdb),
};

/* ioctls, by request number (the request is an unsigned int to the kernel). */
static const unsigned long ioctls_kvm_vcpu[] = {
    /* the vCPU's own: run, registers (crash dump, INIT/SIPI), MSRs */
    KVM_RUN,
    KVM_GET_REGS,
    KVM_SET_REGS,
    KVM_GET_SREGS,
    KVM_SET_SREGS,
#if defined(__x86_64__) /* the x86 KVM ABI (MSRs): no such calls elsewhere */
    KVM_GET_MSRS,
    KVM_SET_MSRS,
#endif
    KVM_SET_GUEST_DEBUG,
    KVM_TRANSLATE, /* the gdbstub */
};
static const unsigned long ioctls_kvm_vm[] = {
    /* interrupt lines, MSI routes and the eventfds a guest's virtio/MSI-X set-up adds */
    KVM_IRQ_LINE,
    KVM_IRQFD,
    KVM_IOEVENTFD,
    KVM_SET_GSI_ROUTING,
};
static const unsigned long ioctls_kvm_state[] = {
    /* a paused vCPU's state read for a snapshot (the API thread may start before the
     * accelerator is chosen: always listed; the translator's vCPUs have no descriptors) */
    KVM_GET_REGS,
    KVM_GET_SREGS,
#if defined(__x86_64__)
    KVM_GET_MSRS,
#endif
};
static const unsigned long ioctls_kvm_debug[] = {
    /* the gdbstub on a paused vCPU: registers (MSRs: FS/GS base), breakpoints and single
     * steps, guest-virtual to physical addresses; never KVM_RUN */
    KVM_GET_REGS,        KVM_SET_REGS,  KVM_GET_SREGS, KVM_SET_SREGS,
#if defined(__x86_64__) /* and the x87/SSE registers */
    KVM_GET_MSRS,        KVM_SET_MSRS,  KVM_GET_FPU,   KVM_SET_FPU,
#endif
    KVM_SET_GUEST_DEBUG, KVM_TRANSLATE,
};
static const unsigned long ioctls_tap[] = {
    /* offloads the guest negotiates (DRIVER_OK), queues it enables (control queue) */
    TUNSETOFFLOAD,
    TUNSETVNETHDRSZ,
    TUNSETQUEUE,
};
static const unsigned long ioctls_tty[] = {
    /* the terminal restored at exit, pending input */
    TCGETS, TCSETS, TCSETSW, TCSETSF, FIONREAD, FIONBIO,
};
static const unsigned long ioctls_sock[] = {FIONREAD, FIONBIO};

struct ioctl_list {
    const unsigned long *reqs;
    size_t n;
    bool kvm_only; /* only when the vCPUs run on KVM */
};
#define IOCTLS(a, k)                                                                               \
    {                                                                                              \
        a, sizeof(a) / sizeof(a[0]), k                                                             \
    }

/* openat: none, for reading only (libslirp's /etc/resolv.conf), or any (the API's files). */
enum open_rule { OPEN_NONE, OPEN_READ, OPEN_ANY };

struct kind_spec {
    const char *name;
    unsigned groups;
    struct ioctl_list ioctls[4];
    int families[3]; /* socket() families, 0-terminated */
    enum open_rule open;
};

static const struct kind_spec kinds[SANDBOX_NR_THREADS] = {
    [SANDBOX_VCPU] = {"vCPU",
                      G_BASE | G_VCPU,
                      {IOCTLS(ioctls_kvm_vcpu, true), IOCTLS(ioctls_kvm_vm, true),
                       IOCTLS(ioctls_tap, false)},
                      {0},
                      OPEN_NONE},
    [SANDBOX_IO] = {"I/O",
                    G_BASE | G_FILE_IO | G_POLL | G_SOCKETS | G_URING | G_TEARDOWN,
                    {IOCTLS(ioctls_kvm_vm, true), IOCTLS(ioctls_tap, false),
                     IOCTLS(ioctls_tty, false)},
                    {AF_UNIX, 0},
                    OPEN_NONE},
    [SANDBOX_BLOCK] = {"block", G_BASE | G_FILE_IO, {{0}}, {0}, OPEN_NONE},
    [SANDBOX_NET] = {"network",
                     G_BASE | G_POLL | G_SOCKETS,
                     {IOCTLS(ioctls_sock, false)},
                     {AF_UNIX, AF_INET, AF_INET6},
                     OPEN_READ},
    [SANDBOX_API] = {"API",
                     G_BASE | G_FILE_IO | G_POLL | G_SOCKETS | G_API_FILES,
                     {IOCTLS(ioctls_kvm_state, false), IOCTLS(ioctls_sock, false)},
                     {0},
                     OPEN_ANY},
    [SANDBOX_GDB] = {"gdbstub", G_BASE | G_GDB, {IOCTLS(ioctls_kvm_debug, true)}, {0}, OPEN_NONE},
};

static struct {
    bool enabled;
    enum sandbox_action action;
    bool kvm;
    /* QUOKKA_SANDBOX_PROBE=KIND:CALL (tests only): right after the thread of kind KIND
     * installs its filter, it makes CALL once, so a test can show the call refused on one
     * kind and allowed on another. Read from the environment at start-up; a guest cannot
     * reach it. */
    int probe_kind; /* -1: none */
    char probe_call[16];
    /* System call names for the SIGSYS message, resolved at configure time: libseccomp's
     * resolver allocates, and the handler may run inside malloc (glibc's free() opens
     * /proc when it trims an arena), so it must not call it. */
    char *call_names[SYSCALL_NAMES];
} settings = {.probe_kind = -1};

static _Thread_local int thread_kind = -1; /* this thread's filter, -1: none yet */

const char *sandbox_thread_name(enum sandbox_thread kind)
{
    return (unsigned)kind < SANDBOX_NR_THREADS ? kinds[kind].name : "?";
}

/* SIGSYS from SCMP_ACT_TRAP: name the call and the thread kind (async-signal-safe writes
 * only; the name table is static data), then die by the signal so the exit status says
 * what happened. */
static void on_sigsys(int sig, siginfo_t *si, void *uctx)
{
    (void)uctx;
    char msg[200];
    int nr = si->si_syscall;
    const char *name = nr >= 0 && nr < SYSCALL_NAMES ? settings.call_names[nr] : NULL;
    int n = snprintf(msg, sizeof(msg),
                     "quokka: sandbox: system call %d (%s) is not allowed on the %s thread: "
                     "stopping (--seccomp off disables the sandbox, for debugging)\n",
                     si->si_syscall, name ? name : "?",
                     thread_kind >= 0 ? kinds[thread_kind].name : "?");
    if (n > 0 && write(STDERR_FILENO, msg, (size_t)n) < 0) {
        /* nothing more to say */
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

static void read_probe(void)
{
    const char *p = getenv("QUOKKA_SANDBOX_PROBE");
    const char *colon = p ? strchr(p, ':') : NULL;
    if (!colon || strlen(colon + 1) >= sizeof(settings.probe_call))
        return;
    static const char *const names[SANDBOX_NR_THREADS] = {"vcpu", "io",  "block",
                                                          "net",  "api", "gdb"};
    for (int k = 0; k < SANDBOX_NR_THREADS; k++)
        if (strlen(names[k]) == (size_t)(colon - p) && !strncmp(p, names[k], (size_t)(colon - p)))
            settings.probe_kind = k;
    snprintf(settings.probe_call, sizeof(settings.probe_call), "%s", colon + 1);
}

void sandbox_set_kvm(bool kvm)
{
    settings.kvm = kvm;
}

int sandbox_configure(bool enabled, enum sandbox_action action, char *err, size_t errlen)
{
    settings.enabled = enabled;
    settings.action = action;
    read_probe();
    if (!enabled || action != SANDBOX_TRAP)
        return 0;
    for (int nr = 0; nr < SYSCALL_NAMES; nr++)
        if (!settings.call_names[nr])
            settings.call_names[nr] = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_sigsys;
    sa.sa_flags = SA_SIGINFO;
    if (sigaction(SIGSYS, &sa, NULL) < 0)
        return qk_fail(err, errlen, "sandbox: sigaction(SIGSYS): %s", strerror(errno));
    return 0;
}

/* One argument comparison (libseccomp's SCMP_An macros leave fields to the initializer,
 * which clang's -Wmissing-field-initializers rejects). For CMP_EQ, mask is unused. */
static struct scmp_arg_cmp arg_cmp(unsigned arg, enum scmp_compare op, scmp_datum_t a,
                                   scmp_datum_t b)
{
    return (struct scmp_arg_cmp){.arg = arg, .op = op, .datum_a = a, .datum_b = b};
}

static int add_groups(scmp_filter_ctx ctx, unsigned mask)
{
    for (unsigned g = 0; g < G_COUNT; g++) {
        if (!(mask & (1u << g)))
            continue;
        for (size_t i = 0; i < groups[g].n; i++) {
            int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, groups[g].nrs[i], 0);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

/* mmap and mprotect without PROT_EXEC: the translator's code buffer is mapped before any
 * filter; nothing maps new executable memory after. clone3 (glibc tries it first for a new
 * thread) fails with ENOSYS rather than killing: no filtered thread starts threads. */
static int add_memory_rules(scmp_filter_ctx ctx)
{
    int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1,
                              arg_cmp(2, SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
    if (rc == 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1,
                              arg_cmp(2, SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
    if (rc == 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
    return rc;
}

static int add_ioctl_rules(scmp_filter_ctx ctx, const struct kind_spec *k)
{
    for (size_t l = 0; l < sizeof(k->ioctls) / sizeof(k->ioctls[0]); l++) {
        const struct ioctl_list *list = &k->ioctls[l];
        if (list->kvm_only && !settings.kvm)
            continue;
        for (size_t i = 0; i < list->n; i++) {
            /* libseccomp refuses a second identical rule: lists may overlap (FIONREAD). */
            int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
                                      arg_cmp(1, SCMP_CMP_MASKED_EQ, 0xffffffffu, list->reqs[i]));
            if (rc < 0 && rc != -EEXIST)
                return rc;
        }
    }
    return 0;
}

static int add_socket_rules(scmp_filter_ctx ctx, const struct kind_spec *k)
{
    for (size_t i = 0; i < sizeof(k->families) / sizeof(k->families[0]) && k->families[i]; i++) {
        int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
                                  arg_cmp(0, SCMP_CMP_EQ, (scmp_datum_t)k->families[i], 0));
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int add_open_rules(scmp_filter_ctx ctx, enum open_rule rule)
{
    const scmp_datum_t writing = OPEN_WRITING_FLAGS;
    if (rule == OPEN_ANY)
        return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(openat), 0);
    if (rule == OPEN_READ)
        return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(openat), 1,
                                arg_cmp(2, SCMP_CMP_MASKED_EQ, writing, 0));
    /* None: the call fails with EACCES rather than trapping, because glibc's free() opens
     * /proc/sys/vm/overcommit_memory once per process when it first trims a thread's arena,
     * on whichever thread that happens, and copes with the failure. */
    return seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES), SCMP_SYS(openat), 0);
}

static scmp_filter_ctx build(enum sandbox_thread kind, uint32_t deflt)
{
    const struct kind_spec *k = &kinds[kind];
    scmp_filter_ctx ctx = seccomp_init(deflt);
    if (!ctx)
        return NULL;
    int rc = add_groups(ctx, k->groups);
    if (rc == 0)
        rc = add_memory_rules(ctx);
    if (rc == 0)
        rc = add_ioctl_rules(ctx, k);
    if (rc == 0)
        rc = add_socket_rules(ctx, k);
    enum open_rule opens = k->open;
#ifdef SANDBOX_SANITIZER
    opens = opens == OPEN_NONE ? OPEN_READ : opens; /* LeakSanitizer reads /proc, below */
#endif
    if (rc == 0)
        rc = add_open_rules(ctx, opens);
#ifdef SANDBOX_SANITIZER
    for (size_t i = 0; rc == 0 && i < sizeof(group_sanitizer) / sizeof(group_sanitizer[0]); i++) {
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, group_sanitizer[i], 0);
        if (rc == -EEXIST)
            rc = 0;
    }
    /* ... and reads /proc: open and openat for reading, on every kind. */
    const scmp_datum_t writing = OPEN_WRITING_FLAGS;
    if (rc == 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(open), 1,
                              arg_cmp(1, SCMP_CMP_MASKED_EQ, writing, 0));
#endif
    if (rc < 0) {
        seccomp_release(ctx);
        errno = -rc;
        return NULL;
    }
    return ctx;
}

/* The test-only probe: one call that some kinds allow and others do not. */
static void run_probe(enum sandbox_thread kind)
{
    if (settings.probe_kind != (int)kind)
        return;
    settings.probe_kind = -1; /* once, on the first thread of the kind */
    long rc = -1;
    if (!strcmp(settings.probe_call, "socket")) {
        rc = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    } else if (!strcmp(settings.probe_call, "openat")) {
        rc = open("/dev/null", O_RDONLY | O_CLOEXEC);
    } else if (!strcmp(settings.probe_call, "tcgets")) {
        struct termios t;
        rc = ioctl(STDIN_FILENO, TCGETS, &t);
        rc = rc < 0 && errno == ENOTTY ? 0 : rc; /* allowed, just not a terminal */
    }
    if (rc >= 0 && strcmp(settings.probe_call, "tcgets") != 0)
        close((int)rc);
    qk_error("sandbox probe: %s on the %s thread %s", settings.probe_call, kinds[kind].name,
             rc >= 0 ? "was allowed" : "failed");
}

int sandbox_enter(enum sandbox_thread kind, char *err, size_t errlen)
{
    if (!settings.enabled || thread_kind >= 0)
        return 0;
    if ((unsigned)kind >= SANDBOX_NR_THREADS)
        return qk_fail(err, errlen, "sandbox: no such thread kind %d", (int)kind);
    uint32_t deflt = settings.action == SANDBOX_KILL ? SCMP_ACT_KILL_PROCESS : SCMP_ACT_TRAP;
    scmp_filter_ctx ctx = build(kind, deflt);
    if (!ctx)
        return qk_fail(err, errlen, "sandbox: cannot build the %s thread's filter: %s",
                       kinds[kind].name, strerror(errno));
    /* No TSYNC: this thread only. */
    int rc = seccomp_load(ctx);
    seccomp_release(ctx);
    if (rc < 0)
        return qk_fail(err, errlen, "sandbox: cannot install the %s thread's filter: %s",
                       kinds[kind].name, strerror(-rc));
    thread_kind = (int)kind;
    run_probe(kind);
    return 0;
}

void sandbox_enter_or_die(enum sandbox_thread kind)
{
    char err[200];
    if (sandbox_enter(kind, err, sizeof(err)) < 0) {
        qk_error("%s", err);
        abort();
    }
}

/* Counted from a built filter's rules is not possible through libseccomp's API; the
 * groups and the argument-filtered calls are counted instead (each system call once). */
size_t sandbox_syscall_count(enum sandbox_thread kind)
{
    if ((unsigned)kind >= SANDBOX_NR_THREADS)
        return 0;
    const struct kind_spec *k = &kinds[kind];
    int seen[512];
    size_t n = 0;
    int extra[] = {SCMP_SYS(mmap), SCMP_SYS(mprotect), -1, -1, -1};
    size_t next = 2;
    for (size_t l = 0; l < sizeof(k->ioctls) / sizeof(k->ioctls[0]); l++)
        if (k->ioctls[l].n && (!k->ioctls[l].kvm_only || settings.kvm))
            extra[next] = SCMP_SYS(ioctl);
    next = 3;
    if (k->families[0])
        extra[next] = SCMP_SYS(socket);
    if (k->open != OPEN_NONE)
        extra[4] = SCMP_SYS(openat);
    for (unsigned g = 0; g <= G_COUNT; g++) {
        const int *nrs = g < G_COUNT ? groups[g].nrs : extra;
        size_t cnt = g < G_COUNT ? groups[g].n : sizeof(extra) / sizeof(extra[0]);
        if (g < G_COUNT && !(k->groups & (1u << g)))
            continue;
        for (size_t i = 0; i < cnt; i++) {
            bool dup = nrs[i] < 0;
            for (size_t j = 0; j < n && !dup; j++)
                dup = seen[j] == nrs[i];
            if (!dup && n < sizeof(seen) / sizeof(seen[0]))
                seen[n++] = nrs[i];
        }
    }
    return n;
}
