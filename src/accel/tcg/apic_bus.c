/* The APIC bus (see apic_bus.h). */
#include "accel/tcg/apic_bus.h"

/* Which APICs a message reaches, before lowest-priority arbitration. */
static uint64_t destinations(struct lapic *const *apics, unsigned n, int sender,
                             const struct apic_msg *msg, enum lapic_shorthand shorthand)
{
    uint64_t set = 0;
    for (unsigned i = 0; i < n; i++) {
        if (!apics[i])
            continue;
        bool self = sender >= 0 && i == (unsigned)sender, hit;
        switch (shorthand) {
        case LAPIC_SH_SELF:
            hit = self;
            break;
        case LAPIC_SH_ALL:
            hit = true;
            break;
        case LAPIC_SH_OTHERS:
            hit = !self;
            break;
        default:
            hit = lapic_match_dest(apics[i], msg->dest, msg->dest_logical);
            break;
        }
        if (hit)
            set |= 1ULL << i;
    }
    return set;
}

int apic_bus_lowest(struct lapic *const *apics, unsigned n, uint64_t candidates, uint8_t vector)
{
    uint32_t best_class = UINT32_MAX;
    uint64_t ties = 0;
    for (unsigned i = 0; i < n && i < APIC_BUS_MAX; i++) {
        uint32_t prio;
        if (!(candidates >> i & 1) || !apics[i] || !lapic_arbitration_priority(apics[i], &prio))
            continue;
        uint32_t cls = prio >> 4;
        if (cls < best_class) {
            best_class = cls;
            ties = 0;
        }
        if (cls == best_class)
            ties |= 1ULL << i;
    }
    if (!ties)
        return -1;
    unsigned pick = vector % (unsigned)__builtin_popcountll(ties);
    while (pick--)
        ties &= ties - 1; /* drop the lowest set bit */
    return __builtin_ctzll(ties);
}

void apic_bus_route(struct lapic *const *apics, unsigned n, int sender, const struct apic_msg *msg,
                    enum lapic_shorthand shorthand)
{
    if (n > APIC_BUS_MAX)
        n = APIC_BUS_MAX;
    uint64_t set = destinations(apics, n, sender, msg, shorthand);
    if (msg->delivery_mode == APIC_DM_LOWEST && set) {
        int one = apic_bus_lowest(apics, n, set, msg->vector);
        set = one < 0 ? 0 : 1ULL << one;
    }
    for (unsigned i = 0; i < n; i++)
        if (set >> i & 1)
            lapic_receive(apics[i], msg);
}
