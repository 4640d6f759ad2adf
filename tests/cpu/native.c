/* Native runner: a forked child maps the code page and the scratch area at the fixed guest
 * addresses, drops to seccomp strict mode (read/write/exit/sigreturn only) and runs a whole
 * batch, writing results into memory shared with the parent. An asm trampoline loads all
 * GPRs and RFLAGS, jumps to the code, and the code's final absolute jump comes back to a
 * trampoline that saves them. Faults (#DE from raw DIV) arrive as signals on an alternate
 * stack; the handler records the faulting state and resumes the trampoline's exit path. */
#include "fuzz.h"

#include <errno.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdnoreturn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

/* The trampoline's context. Genuinely per-process: only the sandboxed child touches it,
 * from asm that needs fixed symbols. */
struct native_regs {
    uint64_t gpr[16];
    uint64_t rflags;
};
struct native_regs fuzz_native_in, fuzz_native_out;
uint64_t fuzz_native_host_rsp;
volatile uint64_t fuzz_native_fault_rip;
volatile int fuzz_native_fault_sig;

void fuzz_native_enter(void);
void fuzz_native_exit(void);
void fuzz_native_resume(void);

__asm__(".text\n"
        ".globl fuzz_native_enter\n"
        ".type fuzz_native_enter,@function\n"
        "fuzz_native_enter:\n"
        "  push %rbx\n push %rbp\n push %r12\n push %r13\n push %r14\n push %r15\n"
        "  mov %rsp, fuzz_native_host_rsp(%rip)\n"
        "  lea fuzz_native_in(%rip), %rax\n"
        "  pushq 128(%rax)\n"
        "  popfq\n"
        "  mov 8(%rax), %rcx\n mov 16(%rax), %rdx\n mov 24(%rax), %rbx\n"
        "  mov 32(%rax), %rsp\n mov 40(%rax), %rbp\n mov 48(%rax), %rsi\n"
        "  mov 56(%rax), %rdi\n mov 64(%rax), %r8\n mov 72(%rax), %r9\n"
        "  mov 80(%rax), %r10\n mov 88(%rax), %r11\n mov 96(%rax), %r12\n"
        "  mov 104(%rax), %r13\n mov 112(%rax), %r14\n mov 120(%rax), %r15\n"
        "  mov (%rax), %rax\n"
        "  jmp *1f(%rip)\n"
        "1: .quad 0x10000000\n"
        ".globl fuzz_native_exit\n"
        "fuzz_native_exit:\n"
        "  mov %rax, fuzz_native_out+0(%rip)\n  mov %rcx, fuzz_native_out+8(%rip)\n"
        "  mov %rdx, fuzz_native_out+16(%rip)\n mov %rbx, fuzz_native_out+24(%rip)\n"
        "  mov %rsp, fuzz_native_out+32(%rip)\n mov %rbp, fuzz_native_out+40(%rip)\n"
        "  mov %rsi, fuzz_native_out+48(%rip)\n mov %rdi, fuzz_native_out+56(%rip)\n"
        "  mov %r8, fuzz_native_out+64(%rip)\n  mov %r9, fuzz_native_out+72(%rip)\n"
        "  mov %r10, fuzz_native_out+80(%rip)\n mov %r11, fuzz_native_out+88(%rip)\n"
        "  mov %r12, fuzz_native_out+96(%rip)\n mov %r13, fuzz_native_out+104(%rip)\n"
        "  mov %r14, fuzz_native_out+112(%rip)\n mov %r15, fuzz_native_out+120(%rip)\n"
        /* Back on the host stack before PUSHFQ: the guest stack is in the scratch area. */
        "  mov fuzz_native_host_rsp(%rip), %rsp\n"
        "  pushfq\n"
        "  popq fuzz_native_out+128(%rip)\n"
        ".globl fuzz_native_resume\n"
        "fuzz_native_resume:\n"
        "  cld\n"
        "  pop %r15\n pop %r14\n pop %r13\n pop %r12\n pop %rbp\n pop %rbx\n"
        "  ret\n"
        ".size fuzz_native_enter, .-fuzz_native_enter\n");

static const int gregs_order[16] = {REG_RAX, REG_RCX, REG_RDX, REG_RBX, REG_RSP, REG_RBP,
                                    REG_RSI, REG_RDI, REG_R8,  REG_R9,  REG_R10, REG_R11,
                                    REG_R12, REG_R13, REG_R14, REG_R15};

static void on_fault(int sig, siginfo_t *si, void *ctx)
{
    (void)si;
    ucontext_t *uc = ctx;
    greg_t *g = uc->uc_mcontext.gregs;
    uint64_t rip = (uint64_t)g[REG_RIP];
    if (rip < FUZZ_CODE_BASE || rip >= FUZZ_CODE_BASE + FUZZ_CODE_SIZE) {
        /* Not the test code: a bug in the runner itself. Die loudly (the parent reports). */
        syscall(SYS_exit, 100 + sig);
    }
    for (unsigned i = 0; i < 16; i++)
        fuzz_native_out.gpr[i] = (uint64_t)g[gregs_order[i]];
    fuzz_native_out.rflags = (uint64_t)g[REG_EFL];
    fuzz_native_fault_rip = rip;
    fuzz_native_fault_sig = sig;
    g[REG_RIP] = (greg_t)(uintptr_t)fuzz_native_resume;
    g[REG_RSP] = (greg_t)fuzz_native_host_rsp;
    g[REG_EFL] &= ~(greg_t)(F_DF | 0x100 | 0x40000); /* DF TF AC */
}

struct native_runner {
    unsigned max_batch;
    struct fuzz_result *shared; /* MAP_SHARED: written by the child */
    volatile unsigned *progress;
    const struct fuzz_case *cases; /* the running batch */
    unsigned n;
    pid_t pid;
};

struct native_runner *native_runner_new(unsigned max_batch)
{
    struct native_runner *nr = calloc(1, sizeof(*nr));
    if (!nr)
        return NULL;
    nr->max_batch = max_batch;
    size_t bytes = sizeof(struct fuzz_result) * max_batch + 4096;
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        free(nr);
        return NULL;
    }
    nr->progress = p;
    nr->shared = (struct fuzz_result *)((uint8_t *)p + 4096);
    return nr;
}

void native_runner_free(struct native_runner *nr)
{
    if (!nr)
        return;
    munmap((void *)nr->progress, sizeof(struct fuzz_result) * nr->max_batch + 4096);
    free(nr);
}

/* The end of every natively run sequence: jmp *0(%rip); .quad fuzz_native_exit */
static unsigned put_exit_jump(uint8_t *p)
{
    static const uint8_t jmp[6] = {0xff, 0x25, 0, 0, 0, 0};
    uint64_t target = (uint64_t)(uintptr_t)fuzz_native_exit;
    memcpy(p, jmp, 6);
    memcpy(p + 6, &target, 8);
    return 14;
}

static noreturn void child_main(struct native_runner *nr, const struct fuzz_case *cases,
                                unsigned first, unsigned n)
{
    uint8_t *code = mmap((void *)FUZZ_CODE_BASE, FUZZ_CODE_SIZE, PROT_READ | PROT_WRITE | PROT_EXEC,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    uint8_t *scratch =
        mmap((void *)FUZZ_SCRATCH_BASE, FUZZ_SCRATCH_SIZE + FUZZ_COUNTER_PAGE,
             PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (code != (void *)FUZZ_CODE_BASE || scratch != (void *)FUZZ_SCRATCH_BASE)
        _exit(90);
    static uint8_t altstack[65536]; /* the child's own copy; signals must not use the guest stack */
    stack_t ss = {.ss_sp = altstack, .ss_size = sizeof(altstack)};
    if (sigaltstack(&ss, NULL) < 0)
        _exit(91);
    struct sigaction sa = {.sa_sigaction = on_fault, .sa_flags = SA_SIGINFO | SA_ONSTACK};
    sigemptyset(&sa.sa_mask);
    const int sigs[] = {SIGFPE, SIGSEGV, SIGBUS, SIGILL, SIGTRAP};
    for (unsigned i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        if (sigaction(sigs[i], &sa, NULL) < 0)
            _exit(92);
    struct rlimit cpu = {.rlim_cur = 60, .rlim_max = 60};
    setrlimit(RLIMIT_CPU, &cpu);
    struct rlimit nofile = {.rlim_cur = 0, .rlim_max = 0};
    setrlimit(RLIMIT_NPROC, &nofile);
    alarm(60); /* a runaway sequence cannot outlive the batch */
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT) != 0)
        _exit(93);
    /* From here on only read, write, exit and sigreturn exist. */
    for (unsigned i = first; i < n; i++) {
        const struct fuzz_case *c = &cases[i];
        struct fuzz_result *r = &nr->shared[i];
        memcpy(code, c->code, c->code_len);
        put_exit_jump(code + c->code_len);
        fuzz_prepare_memory(scratch, c);
        memcpy(fuzz_native_in.gpr, c->init.gpr, sizeof(fuzz_native_in.gpr));
        fuzz_native_in.rflags = c->init.rflags;
        fuzz_native_fault_sig = 0;
        fuzz_native_fault_rip = 0;
        *nr->progress = i;
        fuzz_native_enter();
        memcpy(r->regs.gpr, fuzz_native_out.gpr, sizeof(r->regs.gpr));
        r->regs.rflags = fuzz_native_out.rflags;
        r->fault = fuzz_native_fault_sig;
        r->fault_rip = fuzz_native_fault_rip;
        r->error = 0;
        memcpy(r->scratch, scratch, FUZZ_SCRATCH_SIZE);
    }
    *nr->progress = n;
    syscall(SYS_exit, 0); /* exit_group is not allowed in strict mode */
    for (;;)
        ;
}

static pid_t spawn(struct native_runner *nr, const struct fuzz_case *cases, unsigned first,
                   unsigned n)
{
    *nr->progress = first;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0)
        child_main(nr, cases, first, n);
    return pid;
}

int native_batch_start(struct native_runner *nr, const struct fuzz_case *cases, unsigned n)
{
    if (n > nr->max_batch)
        return -1;
    nr->cases = cases;
    nr->n = n;
    nr->pid = spawn(nr, cases, 0, n);
    return nr->pid < 0 ? -1 : 0;
}

int native_batch_finish(struct native_runner *nr, struct fuzz_result *results)
{
    unsigned n = nr->n;
    for (;;) {
        int status;
        while (waitpid(nr->pid, &status, 0) < 0 && errno == EINTR)
            ;
        unsigned done = *nr->progress;
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && done == n)
            break;
        /* The child died in case `done`: mark it and carry on after it. */
        if (done >= n)
            done = n - 1;
        fprintf(stderr, "fuzz-cpu: native child died at case %u (%s %d)\n", done,
                WIFEXITED(status) ? "exit" : "signal",
                WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
        nr->shared[done].error = 1;
        if (done + 1 >= n)
            break;
        nr->pid = spawn(nr, nr->cases, done + 1, n);
        if (nr->pid < 0)
            return -1;
    }
    memcpy(results, nr->shared, sizeof(*results) * n);
    return 0;
}

int native_run_batch(struct native_runner *nr, const struct fuzz_case *cases, unsigned n,
                     struct fuzz_result *results)
{
    if (native_batch_start(nr, cases, n) < 0)
        return -1;
    return native_batch_finish(nr, results);
}
