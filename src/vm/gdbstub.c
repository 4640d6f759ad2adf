/* The gdbstub's sockets and its thread, and the session's target: the machine (see
 * gdbstub.h; the protocol is gdb_proto.c). */
#include "vm/gdbstub.h"

#include "util/log.h"
#include "vm/gdb_proto.h"
#include "vm/machine_internal.h"
#include "vm/sandbox.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

struct gdbstub {
    struct machine *m;
    int listen_fd, conn_fd;
    int event_fd; /* a vCPU stopped for the debugger */
    int quit_fd;  /* the machine goes away */
    pthread_t thread;
    bool thread_started;
    char spec[128];
    char unix_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    struct gdb_session session;
    /* The first debug stop since the last resume, from a vCPU thread. */
    pthread_mutex_t lock;
    bool connected;
    bool pending;
    /* The thread's filter: installed (or failed, with filter_err) before gdbstub_start
     * returns. */
    pthread_cond_t filter_cond;
    bool filter_done;
    int filter_rc;
    char filter_err[200];
    struct gdb_stop pending_stop;
    int exit_status;
};

/* --- the target ----------------------------------------------------------------------------- */

static unsigned t_nr_threads(void *ctx)
{
    return ((struct gdbstub *)ctx)->m->nr_vcpus;
}

static int t_get_regs(void *ctx, unsigned vcpu, struct vcpu_state *st)
{
    struct machine *m = ((struct gdbstub *)ctx)->m;
    if (vcpu >= m->nr_vcpus)
        return -1;
    return m->accel->get_state(m->vcpus[vcpu].accel, st);
}

static int t_set_regs(void *ctx, unsigned vcpu, const struct vcpu_state *st)
{
    struct machine *m = ((struct gdbstub *)ctx)->m;
    if (vcpu >= m->nr_vcpus)
        return -1;
    return m->accel->set_state(m->vcpus[vcpu].accel, st);
}

/* x87/SSE: the session asks only while the machine is paused (every vCPU stopped between two
 * run() calls), as for the other registers. */
static int t_get_fpu(void *ctx, unsigned vcpu, struct vcpu_fpu *fpu)
{
    struct machine *m = ((struct gdbstub *)ctx)->m;
    if (vcpu >= m->nr_vcpus || !m->accel->get_fpu)
        return -1;
    return m->accel->get_fpu(m->vcpus[vcpu].accel, fpu);
}

static int t_set_fpu(void *ctx, unsigned vcpu, const struct vcpu_fpu *fpu)
{
    struct machine *m = ((struct gdbstub *)ctx)->m;
    if (vcpu >= m->nr_vcpus || !m->accel->set_fpu)
        return -1;
    return m->accel->set_fpu(m->vcpus[vcpu].accel, fpu);
}

/* Guest-virtual memory, page by page through the vCPU's tables; RAM only (a debugger's read
 * must not have device side effects). */
static size_t guest_virt_access(struct gdbstub *g, unsigned vcpu, uint64_t addr, uint8_t *buf,
                                size_t len, bool write)
{
    struct machine *m = g->m;
    size_t done = 0;
    if (vcpu >= m->nr_vcpus)
        return 0;
    while (done < len) {
        uint64_t va = addr + done, gpa;
        size_t chunk = 0x1000 - (size_t)(va & 0xfff);
        if (chunk > len - done)
            chunk = len - done;
        if (m->accel->translate_gva(m->vcpus[vcpu].accel, va, &gpa) < 0)
            break;
        uint8_t *host = gpa_to_host(&m->mem, gpa, chunk);
        if (!host)
            break;
        if (write) {
            memcpy(host, buf + done, chunk);
            if (m->accel->notify_ram_write) /* drop code translated from it */
                m->accel->notify_ram_write(m->accel_vm, gpa, chunk);
        } else {
            memcpy(buf + done, host, chunk);
        }
        done += chunk;
    }
    return done;
}

static size_t t_read_mem(void *ctx, unsigned vcpu, uint64_t addr, uint8_t *buf, size_t len)
{
    return guest_virt_access(ctx, vcpu, addr, buf, len, false);
}

static size_t t_write_mem(void *ctx, unsigned vcpu, uint64_t addr, const uint8_t *buf, size_t len)
{
    return guest_virt_access(ctx, vcpu, addr, (uint8_t *)buf, len, true);
}

/* Every vCPU gets the session's breakpoints; step_vcpu (if >= 0) also a single step. */
static int apply_debug(struct gdbstub *g, const struct accel_debug *dbg, int step_vcpu)
{
    struct machine *m = g->m;
    char err[160];
    for (unsigned i = 0; i < m->nr_vcpus; i++) {
        struct accel_debug d = *dbg;
        d.single_step = (int)i == step_vcpu;
        if (m->accel->set_debug(m->vcpus[i].accel, &d, err, sizeof(err)) < 0) {
            qk_warn("gdbstub: %s", err);
            return -1;
        }
    }
    return 0;
}

static int t_set_debug(void *ctx, const struct accel_debug *dbg)
{
    struct gdbstub *g = ctx;
    if (apply_debug(g, dbg, -1) < 0) {
        apply_debug(g, &g->session.dbg, -1); /* the previous set, which worked */
        return -1;
    }
    return 0;
}

static void t_resume(void *ctx, int step_vcpu)
{
    struct gdbstub *g = ctx;
    char err[160];
    apply_debug(g, &g->session.dbg, step_vcpu);
    /* Stops reported while paused are stale: the vCPU meets its breakpoint again. */
    pthread_mutex_lock(&g->lock);
    g->pending = false;
    pthread_mutex_unlock(&g->lock);
    if (machine_resume(g->m, err, sizeof(err)) < 0)
        qk_warn("gdbstub: %s", err);
}

static void t_interrupt(void *ctx)
{
    struct gdbstub *g = ctx;
    char err[160];
    if (machine_pause(g->m, err, sizeof(err)) < 0) {
        qk_warn("gdbstub: %s", err);
        return;
    }
    struct gdb_stop stop = {.vcpu = g->session.c_vcpu, .signal = 2};
    pthread_mutex_lock(&g->lock);
    if (g->pending) /* a vCPU stopped for the debugger meanwhile: that is the reason */
        stop = g->pending_stop;
    g->pending = false;
    pthread_mutex_unlock(&g->lock);
    gdb_session_stopped(&g->session, &stop);
}

static void t_kill(void *ctx)
{
    struct gdbstub *g = ctx;
    machine_stop(g->m, VM_STOP_SIGNAL, 9);
}

static void t_send(void *ctx, const char *data, size_t len)
{
    struct gdbstub *g = ctx;
    while (len && g->conn_fd >= 0) {
        ssize_t n = send(g->conn_fd, data, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return; /* the connection is gone: the read side sees it */
        data += n;
        len -= (size_t)n;
    }
}

static const struct gdb_target_ops target_ops = {
    .nr_threads = t_nr_threads,
    .get_regs = t_get_regs,
    .set_regs = t_set_regs,
    .read_mem = t_read_mem,
    .write_mem = t_write_mem,
    .set_debug = t_set_debug,
    .resume = t_resume,
    .interrupt = t_interrupt,
    .kill = t_kill,
    .send = t_send,
    .get_fpu = t_get_fpu,
    .set_fpu = t_set_fpu,
};

/* --- vCPU side ----------------------------------------------------------------------------- */

void gdbstub_vcpu_stopped(struct gdbstub *g, unsigned vcpu, const struct accel_exit *ex)
{
    struct machine *m = g->m;
    pthread_mutex_lock(&g->lock);
    bool report = g->connected && !g->pending;
    if (report) {
        g->pending = true;
        g->pending_stop = (struct gdb_stop){
            .vcpu = vcpu,
            .signal = 5,
            .watch = ex->debug.kind == ACCEL_DEBUG_WATCHPOINT,
            .kind = (enum accel_watch_kind)ex->debug.watch_kind,
            .addr = ex->debug.addr,
        };
    }
    pthread_mutex_unlock(&g->lock);
    if (!report)
        return;
    /* All-stop: everybody parks now (this vCPU on its way back to its loop); the stub's
     * thread completes the pause (machine_pause) and answers the debugger. */
    atomic_store(&m->pause_requested, true);
    for (unsigned i = 0; i < m->nr_vcpus; i++)
        if (i != vcpu)
            m->accel->kick(m->vcpus[i].accel);
    uint64_t one = 1;
    if (write(g->event_fd, &one, sizeof(one)) < 0) {
        /* saturated: the thread wakes anyway */
    }
}

/* --- the thread ------------------------------------------------------------------------------ */

static void on_debug_event(struct gdbstub *g)
{
    uint64_t count;
    if (read(g->event_fd, &count, sizeof(count)) < 0) {
        /* drained already */
    }
    pthread_mutex_lock(&g->lock);
    bool pending = g->pending;
    pthread_mutex_unlock(&g->lock);
    if (!pending || !g->session.running)
        return;
    t_interrupt(g); /* pauses and reports the pending stop */
}

static void disconnect(struct gdbstub *g)
{
    pthread_mutex_lock(&g->lock);
    g->connected = false;
    g->pending = false;
    pthread_mutex_unlock(&g->lock);
    /* The guest runs on without breakpoints. */
    struct accel_debug none;
    memset(&none, 0, sizeof(none));
    if (machine_get_state(g->m) == MACHINE_PAUSED) {
        apply_debug(g, &none, -1);
        char err[160];
        machine_resume(g->m, err, sizeof(err));
    } else if (machine_get_state(g->m) == MACHINE_RUNNING) {
        /* Breakpoints change only while stopped. */
        char err[160];
        if (machine_pause(g->m, err, sizeof(err)) == 0) {
            apply_debug(g, &none, -1);
            machine_resume(g->m, err, sizeof(err));
        }
    }
    close(g->conn_fd);
    g->conn_fd = -1;
}

static bool wait_connection(struct gdbstub *g)
{
    struct pollfd p[2] = {{g->listen_fd, POLLIN, 0}, {g->quit_fd, POLLIN, 0}};
    for (;;) {
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return false;
        }
        if (p[1].revents)
            return false;
        int fd = accept4(g->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* fails on Unix sockets */
        g->conn_fd = fd;
        gdb_session_init(&g->session, &target_ops, g);
        /* The debugger finds the machine stopped (it starts paused; a later one pauses it). */
        char err[160];
        if (machine_get_state(g->m) == MACHINE_RUNNING)
            machine_pause(g->m, err, sizeof(err));
        pthread_mutex_lock(&g->lock);
        g->connected = true;
        g->pending = false;
        pthread_mutex_unlock(&g->lock);
        return true;
    }
}

/* The thread's own filter, first: nothing the debugger sends is handled without it. */
static bool enter_sandbox(struct gdbstub *g)
{
    char err[sizeof(g->filter_err)];
    int rc = sandbox_enter(SANDBOX_GDB, err, sizeof(err));
    pthread_mutex_lock(&g->lock);
    g->filter_rc = rc;
    if (rc < 0)
        memcpy(g->filter_err, err, sizeof(err));
    g->filter_done = true;
    pthread_cond_signal(&g->filter_cond);
    pthread_mutex_unlock(&g->lock);
    return rc == 0;
}

static void *gdb_thread(void *arg)
{
    struct gdbstub *g = arg;
    pthread_setname_np(pthread_self(), "gdbstub"); /* prctl: not in its list */
    if (!enter_sandbox(g))
        return NULL;
    while (wait_connection(g)) {
        struct pollfd p[3] = {
            {g->conn_fd, POLLIN, 0}, {g->event_fd, POLLIN, 0}, {g->quit_fd, POLLIN, 0}};
        for (;;) {
            if (poll(p, 3, -1) < 0 && errno != EINTR)
                break;
            if (p[2].revents) {
                char w[8];
                snprintf(w, sizeof(w), "W%02x", g->exit_status & 0xff);
                char frame[16];
                size_t n = gdb_frame(frame, sizeof(frame), w, strlen(w));
                t_send(g, frame, n);
                close(g->conn_fd);
                g->conn_fd = -1;
                return NULL;
            }
            if (p[1].revents)
                on_debug_event(g);
            if (p[0].revents) {
                uint8_t buf[4096];
                ssize_t n = recv(g->conn_fd, buf, sizeof(buf), 0);
                if (n < 0 && errno == EINTR)
                    continue;
                if (n <= 0)
                    break;
                gdb_session_input(&g->session, buf, (size_t)n);
                if (g->session.detached)
                    break;
            }
        }
        disconnect(g);
    }
    return NULL;
}

/* --- set-up -------------------------------------------------------------------------------- */

static int listen_tcp(struct gdbstub *g, const char *hostport, char *err, size_t errlen)
{
    const char *colon = strrchr(hostport, ':');
    char host[64];
    if (!colon || (size_t)(colon - hostport) >= sizeof(host))
        return qk_fail(err, errlen, "--gdb tcp:HOST:PORT expected, not '%s'", g->spec);
    memcpy(host, hostport, (size_t)(colon - hostport));
    host[colon - hostport] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (*end || end == colon + 1 || port < 1 || port > 65535 ||
        inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return qk_fail(err, errlen, "--gdb '%s': HOST must be an IPv4 address and PORT 1-65535",
                       g->spec);
    g->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (g->listen_fd >= 0)
        setsockopt(g->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (g->listen_fd < 0 || bind(g->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        listen(g->listen_fd, 1) < 0)
        return qk_fail(err, errlen, "--gdb '%s': %s", g->spec, strerror(errno));
    return 0;
}

static int listen_unix(struct gdbstub *g, const char *path, char *err, size_t errlen)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (!*path || strlen(path) >= sizeof(sa.sun_path))
        return qk_fail(err, errlen, "--gdb '%s': the socket path is empty or too long", g->spec);
    strcpy(sa.sun_path, path);
    g->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (g->listen_fd < 0 || bind(g->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        listen(g->listen_fd, 1) < 0)
        return qk_fail(err, errlen, "--gdb '%s': %s", g->spec, strerror(errno));
    strcpy(g->unix_path, path);
    return 0;
}

int gdbstub_create(struct machine *m, const char *spec, struct gdbstub **out, char *err,
                   size_t errlen)
{
    if (!m->accel->set_debug || !m->accel->translate_gva)
        return qk_fail(err, errlen, "--gdb: the %s accelerator cannot be debugged", m->accel->name);
    struct gdbstub *g = calloc(1, sizeof(*g));
    if (!g)
        return qk_fail(err, errlen, "out of memory");
    g->m = m;
    g->listen_fd = g->conn_fd = -1;
    snprintf(g->spec, sizeof(g->spec), "%s", spec);
    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->filter_cond, NULL);
    g->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    g->quit_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    int rc;
    if (g->event_fd < 0 || g->quit_fd < 0)
        rc = qk_fail(err, errlen, "eventfd: %s", strerror(errno));
    else if (!strncmp(spec, "tcp:", 4))
        rc = listen_tcp(g, spec + 4, err, errlen);
    else if (!strncmp(spec, "unix:", 5))
        rc = listen_unix(g, spec + 5, err, errlen);
    else
        rc = qk_fail(err, errlen, "--gdb '%s' must be tcp:HOST:PORT or unix:PATH", spec);
    if (rc < 0) {
        gdbstub_destroy(g, 0);
        return -1;
    }
    *out = g;
    return 0;
}

int gdbstub_start(struct gdbstub *g, char *err, size_t errlen)
{
    if (pthread_create(&g->thread, NULL, gdb_thread, g) != 0)
        return qk_fail(err, errlen, "cannot start the gdbstub thread");
    g->thread_started = true;
    pthread_mutex_lock(&g->lock);
    while (!g->filter_done)
        pthread_cond_wait(&g->filter_cond, &g->lock);
    int rc = g->filter_rc;
    pthread_mutex_unlock(&g->lock);
    if (rc < 0) {
        pthread_join(g->thread, NULL); /* it ended without a filter */
        g->thread_started = false;
        return qk_fail(err, errlen, "%s", g->filter_err);
    }
    fprintf(stderr, "quokka: gdbstub: waiting for gdb on %s (the guest starts when it continues)\n",
            g->spec);
    return 0;
}

void gdbstub_destroy(struct gdbstub *g, int exit_status)
{
    if (!g)
        return;
    if (g->thread_started) {
        g->exit_status = exit_status;
        uint64_t one = 1;
        if (write(g->quit_fd, &one, sizeof(one)) < 0) {
            /* cannot fail on a fresh eventfd */
        }
        pthread_join(g->thread, NULL);
    }
    if (g->conn_fd >= 0)
        close(g->conn_fd);
    if (g->listen_fd >= 0)
        close(g->listen_fd);
    if (g->unix_path[0])
        unlink(g->unix_path);
    if (g->event_fd >= 0)
        close(g->event_fd);
    if (g->quit_fd >= 0)
        close(g->quit_fd);
    pthread_cond_destroy(&g->filter_cond);
    pthread_mutex_destroy(&g->lock);
    free(g);
}
