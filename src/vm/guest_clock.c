#include "vm/guest_clock.h"

#include "vm/timers.h"

void guest_clock_init(struct guest_clock *c)
{
    atomic_init(&c->offset, 0);
    atomic_init(&c->frozen, 0);
}

uint64_t guest_clock_now(struct guest_clock *c)
{
    uint64_t frozen = atomic_load(&c->frozen);
    if (frozen)
        return frozen;
    return clock_monotonic_ns() - (uint64_t)atomic_load(&c->offset);
}

uint64_t guest_clock_read(void *ctx)
{
    return guest_clock_now(ctx);
}

void guest_clock_freeze(struct guest_clock *c)
{
    if (atomic_load(&c->frozen))
        return;
    uint64_t now = guest_clock_now(c);
    atomic_store(&c->frozen, now ? now : 1);
}

void guest_clock_thaw(struct guest_clock *c)
{
    uint64_t frozen = atomic_load(&c->frozen);
    if (!frozen)
        return;
    /* The offset first: a reader that still sees `frozen` gets the frozen value, one that
     * sees 0 already finds the new offset. */
    atomic_store(&c->offset, (int64_t)(clock_monotonic_ns() - frozen));
    atomic_store(&c->frozen, 0);
}

bool guest_clock_frozen(struct guest_clock *c)
{
    return atomic_load(&c->frozen) != 0;
}

void guest_clock_set(struct guest_clock *c, uint64_t now)
{
    if (atomic_load(&c->frozen)) {
        atomic_store(&c->frozen, now ? now : 1);
        return;
    }
    atomic_store(&c->offset, (int64_t)(clock_monotonic_ns() - now));
}

uint64_t guest_clock_to_host(struct guest_clock *c, uint64_t guest_ns)
{
    uint64_t host = clock_monotonic_ns(), now = guest_clock_now(c);
    if (guest_ns <= now)
        return host;
    uint64_t delta = guest_ns - now;
    return delta > UINT64_MAX - host ? UINT64_MAX : host + delta;
}
