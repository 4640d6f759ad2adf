#include "vm/timers.h"

#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

uint64_t clock_monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

void timers_init(struct timer_list *list, int wake_fd)
{
    pthread_mutex_init(&list->lock, NULL);
    list->head = NULL;
    list->wake_fd = wake_fd;
}

void timers_destroy(struct timer_list *list)
{
    struct device_timer *t = list->head;
    while (t) {
        struct device_timer *next = t->next;
        free(t);
        t = next;
    }
    list->head = NULL;
    pthread_mutex_destroy(&list->lock);
}

struct device_timer *timers_new(struct timer_list *list, void (*callback)(void *opaque),
                                void *opaque)
{
    struct device_timer *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->callback = callback;
    t->opaque = opaque;
    pthread_mutex_lock(&list->lock);
    t->next = list->head;
    list->head = t;
    pthread_mutex_unlock(&list->lock);
    return t;
}

void timers_arm(struct timer_list *list, struct device_timer *timer, uint64_t deadline_ns)
{
    pthread_mutex_lock(&list->lock);
    bool earlier = deadline_ns && (!timer->deadline_ns || deadline_ns < timer->deadline_ns);
    timer->deadline_ns = deadline_ns;
    pthread_mutex_unlock(&list->lock);
    if (earlier && list->wake_fd >= 0) {
        uint64_t one = 1;
        if (write(list->wake_fd, &one, sizeof(one)) < 0) {
            /* eventfd counter saturated: the loop is awake anyway */
        }
    }
}

const struct timespec *timers_wait_time(struct timer_list *list, uint64_t now,
                                        struct timespec *storage)
{
    uint64_t earliest = 0;
    pthread_mutex_lock(&list->lock);
    for (struct device_timer *t = list->head; t; t = t->next)
        if (t->deadline_ns && (!earliest || t->deadline_ns < earliest))
            earliest = t->deadline_ns;
    pthread_mutex_unlock(&list->lock);
    if (!earliest)
        return NULL;
    uint64_t wait = earliest > now ? earliest - now : 0;
    storage->tv_sec = (time_t)(wait / 1000000000ULL);
    storage->tv_nsec = (long)(wait % 1000000000ULL);
    return storage;
}

void timers_run_expired(struct timer_list *list, uint64_t now)
{
    /* Bounded: each pass fires at most one timer per list entry, and a timer that re-arms
     * itself into the past waits for the next loop iteration. */
    size_t budget = 0;
    pthread_mutex_lock(&list->lock);
    for (struct device_timer *t = list->head; t; t = t->next)
        budget++;
    while (budget--) {
        struct device_timer *due = NULL;
        for (struct device_timer *t = list->head; t; t = t->next)
            if (t->deadline_ns && t->deadline_ns <= now) {
                due = t;
                break;
            }
        if (!due)
            break;
        due->deadline_ns = 0;
        pthread_mutex_unlock(&list->lock);
        due->callback(due->opaque);
        pthread_mutex_lock(&list->lock);
    }
    pthread_mutex_unlock(&list->lock);
}
