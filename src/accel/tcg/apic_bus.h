/* The APIC bus between the translator's local APICs (SDM vol. 3 11.6): IPIs from an ICR and
 * IOAPIC/MSI messages go to every APIC the destination (or the sender's shorthand) names;
 * lowest-priority messages to one of them. Works on a plain array of APICs so it can be
 * tested without vCPUs; the translator's side (smp.c) passes its vCPUs' APICs. */
#ifndef QUOKKA_ACCEL_TCG_APIC_BUS_H
#define QUOKKA_ACCEL_TCG_APIC_BUS_H

#include "accel/tcg/lapic.h"

#define APIC_BUS_MAX 64u

/* Deliver msg among apics[0..n) (n <= APIC_BUS_MAX; NULL entries are absent CPUs). sender is
 * the index of the APIC whose ICR sent it (for the shorthands), or -1 for an IOAPIC/MSI
 * message (shorthand LAPIC_SH_NONE). Any thread; takes each APIC's lock in turn, never two. */
void apic_bus_route(struct lapic *const *apics, unsigned n, int sender, const struct apic_msg *msg,
                    enum lapic_shorthand shorthand);

/* Lowest-priority arbitration among the APICs in `candidates` (bit i: apics[i]): the one with
 * the lowest processor priority class (PPR[7:4]) among those enabled; ties go to the
 * (vector mod ties)-th of them in index order (KVM's vector hashing: stateless, and
 * different vectors spread over the CPUs). -1 when no candidate is enabled. */
int apic_bus_lowest(struct lapic *const *apics, unsigned n, uint64_t candidates, uint8_t vector);

#endif
