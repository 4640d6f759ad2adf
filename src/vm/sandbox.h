/* The seccomp sandbox (libseccomp), one filter per thread as Firecracker does: once its
 * set-up is done and before it handles anything the guest or an API client controls, each
 * quokka thread installs a filter that allows only the system calls (and ioctls, by request
 * number) that kind of thread needs. Filters are per-thread (installed without TSYNC), so a
 * guest that takes over a vCPU thread's device model still cannot open files, create
 * sockets, execute programs or map new executable memory, even though the I/O thread may
 * connect vsock sockets and the API thread may write snapshot files. */
#ifndef QUOKKA_VM_SANDBOX_H
#define QUOKKA_VM_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>

/* What a forbidden call does. */
enum sandbox_action {
    SANDBOX_TRAP, /* SIGSYS: one line on stderr naming the call, then the process dies by it */
    SANDBOX_KILL, /* the kernel kills the process (no message) */
};

/* The kinds of quokka threads, each with its own allow-list. */
enum sandbox_thread {
    SANDBOX_VCPU,  /* runs the guest: KVM_RUN or translated code, port/MMIO device registers */
    SANDBOX_IO,    /* the main thread's event loop: virtqueues, timers, console, vsock, tap */
    SANDBOX_BLOCK, /* a block thread-pool worker: reads and writes the disk image */
    SANDBOX_NET,   /* the user-network (libslirp) thread: host sockets */
    SANDBOX_API,   /* the control API's HTTP thread: snapshot, logger and metrics files */
    SANDBOX_GDB,   /* the gdbstub's thread: its socket, pausing and resuming the vCPUs */
    SANDBOX_NR_THREADS,
};

/* Process-wide settings, once, on the main thread before any filtered thread starts: on or
 * off (--seccomp) and the action. Also installs the SIGSYS handler for SANDBOX_TRAP and reads
 * the test-only probe (QUOKKA_SANDBOX_PROBE, see sandbox.c). Off until called. */
int sandbox_configure(bool enabled, enum sandbox_action action, char *err, size_t errlen);

/* Whether the vCPUs run on KVM (the translator's vCPU and I/O threads need no KVM ioctls):
 * before the vCPU and I/O threads install their filters. */
void sandbox_set_kvm(bool kvm);

/* Install the calling thread's filter (kind's allow-list). Nothing when the sandbox is off;
 * a second call on a thread that already has one does nothing. */
int sandbox_enter(enum sandbox_thread kind, char *err, size_t errlen);

/* The same, for threads that cannot report an error: a failure stops the process (a
 * thread left unfiltered by accident must not go on). */
void sandbox_enter_or_die(enum sandbox_thread kind);

/* For tests and the report: the number of distinct system calls kind's list allows. */
size_t sandbox_syscall_count(enum sandbox_thread kind);

const char *sandbox_thread_name(enum sandbox_thread kind);

#endif
