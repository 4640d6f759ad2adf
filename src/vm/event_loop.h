/* The machine's event loop: one epoll set that any device (and the console, signals, the
 * stop request, timers) subscribes file descriptors to. Callbacks run on the I/O thread that
 * calls event_loop_run_once(). Subscribing and unsubscribing are safe from any thread, and
 * from inside a callback (a removed subscriber's pending events in the same batch are
 * dropped, its memory freed after the batch). */
#ifndef QUOKKA_VM_EVENT_LOOP_H
#define QUOKKA_VM_EVENT_LOOP_H

#include <stddef.h>
#include <stdint.h>

struct event_loop;

/* events/revents are EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP (see <sys/epoll.h>). */
typedef void (*event_callback)(void *opaque, uint32_t revents);

struct event_loop *event_loop_new(char *err, size_t errlen);
void event_loop_free(struct event_loop *loop);

/* Watch fd (level-triggered). -1 with a message on failure (fd already watched, epoll error). */
int event_loop_add(struct event_loop *loop, int fd, uint32_t events, event_callback cb,
                   void *opaque, char *err, size_t errlen);
/* Change what fd is watched for (0: nothing, keeps the subscription). */
int event_loop_modify(struct event_loop *loop, int fd, uint32_t events);
/* Stop watching fd. From the loop's thread (a callback) or while the loop is not running, the
 * callback is never called again; devices remove their fds at destroy, after the loop ends. */
void event_loop_remove(struct event_loop *loop, int fd);

/* Wait up to timeout_ns (-1: forever) and dispatch what is ready. Returns the number of
 * callbacks run, or -1 on an epoll error other than EINTR. */
int event_loop_run_once(struct event_loop *loop, int64_t timeout_ns);

/* Make a run_once() in progress (or the next one) return promptly. Any thread. */
void event_loop_wake(struct event_loop *loop);

#endif
