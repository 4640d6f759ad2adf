/* Exclusive sections: work that needs every other vCPU stopped at a block boundary (flushing
 * the code buffer, freeing retired blocks, growing the block hash, an atomic the host cannot
 * do), as QEMU's start_exclusive()/cpu_exec_start() do it.
 *
 * A vCPU is "running" while it is inside tcg_run and may hold pointers to blocks or execute
 * generated code; it stops running around sleeps (HLT, wait-for-SIPI) and whenever it leaves
 * tcg_run (I/O exits, pauses). A requester counts the running vCPUs, kicks them out of
 * generated code (a request bit the block entries test), and waits until each has passed its
 * run loop's safe point; new entries wait until the section ends. */
#include "accel/tcg/tcg_internal.h"

void tcg_exclusive_init(struct tcg_exclusive *x)
{
    pthread_mutex_init(&x->lock, NULL);
    pthread_cond_init(&x->stopped, NULL);
    pthread_cond_init(&x->resume, NULL);
    x->pending = 0;
}

void tcg_exclusive_destroy(struct tcg_exclusive *x)
{
    pthread_mutex_destroy(&x->lock);
    pthread_cond_destroy(&x->stopped);
    pthread_cond_destroy(&x->resume);
}

/* With x->lock: wait until no exclusive section is asked for or running. */
static void wait_idle(struct tcg_exclusive *x)
{
    while (atomic_load(&x->pending))
        pthread_cond_wait(&x->resume, &x->lock);
}

void tcg_exec_start(struct accel_vcpu *v)
{
    struct tcg_exclusive *x = &v->vm->excl;
    atomic_store(&v->running, true); /* seq_cst: ordered before the read of pending */
    if (!atomic_load(&x->pending))
        return;
    pthread_mutex_lock(&x->lock);
    if (!v->excl_waited_for) {
        /* Not counted by the requester: let its section run first. */
        atomic_store(&v->running, false);
        wait_idle(x);
        atomic_store(&v->running, true);
    }
    /* else counted: tcg_exec_end releases the requester. */
    pthread_mutex_unlock(&x->lock);
}

void tcg_exec_end(struct accel_vcpu *v)
{
    struct tcg_exclusive *x = &v->vm->excl;
    atomic_store(&v->running, false);
    if (!atomic_load(&x->pending))
        return;
    pthread_mutex_lock(&x->lock);
    if (v->excl_waited_for) {
        v->excl_waited_for = false;
        if (atomic_fetch_sub(&x->pending, 1) == 2)
            pthread_cond_signal(&x->stopped);
    }
    pthread_mutex_unlock(&x->lock);
}

void tcg_exclusive_begin(struct accel_vcpu *self)
{
    struct accel_vm *vm = self->vm;
    struct tcg_exclusive *x = &vm->excl;
    tcg_exec_end(self);
    pthread_mutex_lock(&x->lock);
    wait_idle(x);
    atomic_store(&x->pending, 1); /* seq_cst: before the reads of `running` */
    unsigned others = 0;
    for (unsigned i = 0; i < vm->nr_vcpus; i++) {
        struct accel_vcpu *v = atomic_load(&vm->vcpus[i]);
        if (!v || v == self || !atomic_load(&v->running))
            continue;
        v->excl_waited_for = true;
        others++;
        atomic_fetch_or(&v->cpu.interrupt_request, TCG_REQ_EXCLUSIVE);
    }
    atomic_store(&x->pending, others + 1);
    while (atomic_load(&x->pending) > 1)
        pthread_cond_wait(&x->stopped, &x->lock);
    pthread_mutex_unlock(&x->lock);
    self->in_exclusive = true;
}

void tcg_exclusive_end(struct accel_vcpu *self)
{
    struct tcg_exclusive *x = &self->vm->excl;
    self->in_exclusive = false;
    pthread_mutex_lock(&x->lock);
    atomic_store(&x->pending, 0);
    pthread_cond_broadcast(&x->resume);
    pthread_mutex_unlock(&x->lock);
    tcg_exec_start(self);
}

bool tcg_safe_point(struct accel_vcpu *v)
{
    /* Called between every two blocks: no locked RMW unless the bit is set. The requester
     * sets `pending` before the bit, so a bit set after this look is seen below. */
    if (atomic_load(&v->cpu.interrupt_request) & TCG_REQ_EXCLUSIVE)
        atomic_fetch_and(&v->cpu.interrupt_request, ~TCG_REQ_EXCLUSIVE);
    if (!atomic_load(&v->vm->excl.pending))
        return false;
    tcg_exec_end(v);
    tcg_exec_start(v);
    return true;
}
