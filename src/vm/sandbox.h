/* The seccomp sandbox (libseccomp): once the VM is set up and before the first guest
 * instruction, quokka allows itself only the system calls (and ioctls) it needs to run a
 * guest, as Firecracker and Cloud Hypervisor do. A guest that takes over a device model then
 * cannot open files, execute programs, map new executable memory or reach the network
 * beyond what its devices already do. */
#ifndef QUOKKA_VM_SANDBOX_H
#define QUOKKA_VM_SANDBOX_H

#include <stddef.h>

/* What a forbidden call does. */
enum sandbox_action {
    SANDBOX_TRAP, /* SIGSYS: one line on stderr naming the call, then the process dies by it */
    SANDBOX_KILL, /* the kernel kills the process (no message) */
};

/* Install the process-wide filter on every thread (TSYNC): the allow-list of the I/O, device
 * and vCPU threads together (one list: device models run on vCPU threads too, a doorbell
 * write on the translator runs the device's queue there). Threads created later inherit
 * it. */
int sandbox_install(enum sandbox_action action, char *err, size_t errlen);

#endif
