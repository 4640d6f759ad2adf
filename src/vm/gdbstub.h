/* The gdbstub: a GDB remote-protocol server for the machine (--gdb tcp:HOST:PORT or
 * unix:PATH). The machine starts paused and waits for the debugger; one thread serves the
 * connection (gdb_proto.c does the protocol). Stops are all-stop: when one vCPU stops for a
 * breakpoint, watchpoint or step, every vCPU is paused through the machine's rendezvous. */
#ifndef QUOKKA_VM_GDBSTUB_H
#define QUOKKA_VM_GDBSTUB_H

#include "accel/accel.h"

#include <stddef.h>

struct machine;
struct gdbstub;

/* Check spec and open the listening socket (before the sandbox); -1 with a reason. */
int gdbstub_create(struct machine *m, const char *spec, struct gdbstub **out, char *err,
                   size_t errlen);
/* Serve debuggers on a thread of its own (the machine is paused until one resumes it). */
int gdbstub_start(struct gdbstub *g, char *err, size_t errlen);
/* On a vCPU thread: run() returned ACCEL_EXIT_DEBUG. */
void gdbstub_vcpu_stopped(struct gdbstub *g, unsigned vcpu, const struct accel_exit *ex);
/* Tell the debugger the guest is gone (if connected), stop the thread, close the sockets. */
void gdbstub_destroy(struct gdbstub *g, int exit_status);

#endif
