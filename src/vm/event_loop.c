#include "vm/event_loop.h"

#include "util/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define EVENT_BATCH 32

struct subscriber {
    int fd;
    event_callback cb;
    void *opaque;
    bool removed;
    struct subscriber *next; /* registered list, or the graveyard once removed */
};

struct event_loop {
    int epoll_fd;
    int wake_fd;
    pthread_mutex_t lock; /* guards the lists; never held while a callback runs */
    struct subscriber *subs;
    struct subscriber *graveyard; /* removed; freed after the batch that may still see them */
};

struct event_loop *event_loop_new(char *err, size_t errlen)
{
    struct event_loop *loop = calloc(1, sizeof(*loop));
    if (!loop) {
        qk_fail(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&loop->lock, NULL);
    loop->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    loop->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (loop->epoll_fd < 0 || loop->wake_fd < 0 ||
        epoll_ctl(loop->epoll_fd, EPOLL_CTL_ADD, loop->wake_fd, &ev) < 0) {
        qk_fail(err, errlen, "cannot create the event loop: %s", strerror(errno));
        event_loop_free(loop);
        return NULL;
    }
    return loop;
}

static void free_list(struct subscriber *s)
{
    while (s) {
        struct subscriber *next = s->next;
        free(s);
        s = next;
    }
}

void event_loop_free(struct event_loop *loop)
{
    if (!loop)
        return;
    if (loop->epoll_fd >= 0)
        close(loop->epoll_fd);
    if (loop->wake_fd >= 0)
        close(loop->wake_fd);
    free_list(loop->subs);
    free_list(loop->graveyard);
    pthread_mutex_destroy(&loop->lock);
    free(loop);
}

int event_loop_add(struct event_loop *loop, int fd, uint32_t events, event_callback cb,
                   void *opaque, char *err, size_t errlen)
{
    struct subscriber *s = calloc(1, sizeof(*s));
    if (!s)
        return qk_fail(err, errlen, "out of memory");
    *s = (struct subscriber){.fd = fd, .cb = cb, .opaque = opaque};
    pthread_mutex_lock(&loop->lock);
    struct epoll_event ev = {.events = events, .data.ptr = s};
    if (epoll_ctl(loop->epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        int e = errno;
        pthread_mutex_unlock(&loop->lock);
        free(s);
        return qk_fail(err, errlen, "cannot watch fd %d: %s", fd, strerror(e));
    }
    s->next = loop->subs;
    loop->subs = s;
    pthread_mutex_unlock(&loop->lock);
    return 0;
}

static struct subscriber *find_locked(struct event_loop *loop, int fd)
{
    for (struct subscriber *s = loop->subs; s; s = s->next)
        if (s->fd == fd)
            return s;
    return NULL;
}

int event_loop_modify(struct event_loop *loop, int fd, uint32_t events)
{
    pthread_mutex_lock(&loop->lock);
    struct subscriber *s = find_locked(loop, fd);
    int rc = -1;
    if (s) {
        struct epoll_event ev = {.events = events, .data.ptr = s};
        rc = epoll_ctl(loop->epoll_fd, EPOLL_CTL_MOD, fd, &ev);
    }
    pthread_mutex_unlock(&loop->lock);
    return rc;
}

void event_loop_remove(struct event_loop *loop, int fd)
{
    pthread_mutex_lock(&loop->lock);
    for (struct subscriber **p = &loop->subs; *p; p = &(*p)->next) {
        struct subscriber *s = *p;
        if (s->fd != fd)
            continue;
        epoll_ctl(loop->epoll_fd, EPOLL_CTL_DEL, fd, NULL);
        *p = s->next;
        s->removed = true;
        s->next = loop->graveyard;
        loop->graveyard = s;
        break;
    }
    pthread_mutex_unlock(&loop->lock);
}

void event_loop_wake(struct event_loop *loop)
{
    uint64_t one = 1;
    if (write(loop->wake_fd, &one, sizeof(one)) < 0) {
        /* the counter is saturated: a wake-up is pending anyway */
    }
}

static int timeout_ms(int64_t timeout_ns)
{
    if (timeout_ns < 0)
        return -1;
    /* Round up so a timer is never woken for before its deadline. */
    int64_t ms = (timeout_ns + 999999) / 1000000;
    return ms > 1000000 ? 1000000 : (int)ms;
}

int event_loop_run_once(struct event_loop *loop, int64_t timeout_ns)
{
    struct epoll_event evs[EVENT_BATCH];
    int n = epoll_wait(loop->epoll_fd, evs, EVENT_BATCH, timeout_ms(timeout_ns));
    if (n < 0)
        return errno == EINTR ? 0 : -1;
    int ran = 0;
    for (int i = 0; i < n; i++) {
        struct subscriber *s = evs[i].data.ptr;
        if (!s) {
            uint64_t count;
            if (read(loop->wake_fd, &count, sizeof(count)) < 0) {
                /* already drained */
            }
            continue;
        }
        /* A callback earlier in this batch may have removed s (it is in the graveyard,
         * still allocated): its events are stale. */
        pthread_mutex_lock(&loop->lock);
        bool removed = s->removed;
        pthread_mutex_unlock(&loop->lock);
        if (removed)
            continue;
        s->cb(s->opaque, evs[i].events);
        ran++;
    }
    pthread_mutex_lock(&loop->lock);
    struct subscriber *dead = loop->graveyard;
    loop->graveyard = NULL;
    pthread_mutex_unlock(&loop->lock);
    free_list(dead);
    return ran;
}
