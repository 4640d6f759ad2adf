/* The guest clock: nanoseconds every timer device counts in (PIT, RTC, ACPI PM timer, the
 * translator's TSC and local APIC timer, device timers). It runs with CLOCK_MONOTONIC while
 * the VM runs and stands still while it is paused, so a paused guest sees no time pass; a
 * snapshot saves its value and a restore continues from it. */
#ifndef QUOKKA_VM_GUEST_CLOCK_H
#define QUOKKA_VM_GUEST_CLOCK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct guest_clock {
    _Atomic int64_t offset;  /* host monotonic ns - guest ns, while running */
    _Atomic uint64_t frozen; /* the guest time while paused; 0 while running */
};

/* Starts running at host monotonic time (offset 0), so guest and host deadlines agree. */
void guest_clock_init(struct guest_clock *c);
uint64_t guest_clock_now(struct guest_clock *c);
/* Stop / restart the clock (the caller serialises the two). */
void guest_clock_freeze(struct guest_clock *c);
void guest_clock_thaw(struct guest_clock *c);
bool guest_clock_frozen(struct guest_clock *c);
/* A snapshot's guest time: the clock continues from `now` (frozen if it is frozen). */
void guest_clock_set(struct guest_clock *c, uint64_t now);
/* Host monotonic ns at which the guest clock reaches `guest_ns` if it keeps running. */
uint64_t guest_clock_to_host(struct guest_clock *c, uint64_t guest_ns);
/* The callback shape devices and accelerators take (ctx is the struct guest_clock). */
uint64_t guest_clock_read(void *ctx);

#endif
