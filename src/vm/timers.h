/* Device timers: one-shot deadlines on CLOCK_MONOTONIC, fired on the machine's I/O thread. */
#ifndef QUOKKA_VM_TIMERS_H
#define QUOKKA_VM_TIMERS_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

struct device_timer {
    void (*callback)(void *opaque);
    void *opaque;
    uint64_t deadline_ns; /* 0 = disarmed */
    struct device_timer *next;
};

struct timer_list {
    pthread_mutex_t lock;
    struct device_timer *head;
    int wake_fd; /* eventfd the I/O loop polls: written when a deadline moves earlier */
};

uint64_t clock_monotonic_ns(void);

void timers_init(struct timer_list *list, int wake_fd);
void timers_destroy(struct timer_list *list);
struct device_timer *timers_new(struct timer_list *list, void (*callback)(void *opaque),
                                void *opaque);
void timers_arm(struct timer_list *list, struct device_timer *timer, uint64_t deadline_ns);
/* Time until the earliest armed deadline, or NULL (wait forever) when none is armed. */
const struct timespec *timers_wait_time(struct timer_list *list, uint64_t now,
                                        struct timespec *storage);
/* Fire every timer whose deadline has passed (each callback runs without the lock held). */
void timers_run_expired(struct timer_list *list, uint64_t now);

#endif
