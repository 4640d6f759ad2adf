/* A fake debugging target for gdb_proto.c (unit tests and fuzz/fuzz_gdb.c): two vCPUs with
 * registers, 64 KiB of "guest virtual" memory at 0x1000 (elsewhere unmapped), and a record
 * of what the session asked for. */
#ifndef QUOKKA_TESTS_GDB_FAKE_TARGET_H
#define QUOKKA_TESTS_GDB_FAKE_TARGET_H

#include "vm/gdb_proto.h"

#include <string.h>

#define FAKE_MEM_BASE 0x1000u
#define FAKE_MEM_SIZE 0x10000u

struct fake_target {
    struct vcpu_state regs[2];
    struct vcpu_fpu fpu[2];
    bool no_fpu; /* as an accelerator without get_fpu */
    uint8_t mem[FAKE_MEM_SIZE];
    struct accel_debug dbg;
    int set_debug_calls, resumes, last_step, interrupts, kills;
    char out[1 << 16]; /* what the session sent, as a string (oldest dropped when full) */
    size_t out_len;
};

static unsigned fake_nr_threads(void *ctx)
{
    (void)ctx;
    return 2;
}

static int fake_get_regs(void *ctx, unsigned vcpu, struct vcpu_state *st)
{
    struct fake_target *t = ctx;
    if (vcpu >= 2)
        return -1;
    *st = t->regs[vcpu];
    return 0;
}

static int fake_set_regs(void *ctx, unsigned vcpu, const struct vcpu_state *st)
{
    struct fake_target *t = ctx;
    if (vcpu >= 2)
        return -1;
    t->regs[vcpu] = *st;
    return 0;
}

static int fake_get_fpu(void *ctx, unsigned vcpu, struct vcpu_fpu *fpu)
{
    struct fake_target *t = ctx;
    if (vcpu >= 2 || t->no_fpu)
        return -1;
    *fpu = t->fpu[vcpu];
    return 0;
}

static int fake_set_fpu(void *ctx, unsigned vcpu, const struct vcpu_fpu *fpu)
{
    struct fake_target *t = ctx;
    if (vcpu >= 2 || t->no_fpu || (fpu->mxcsr & ~0xffffu))
        return -1; /* reserved MXCSR bits, as the translator refuses them */
    t->fpu[vcpu] = *fpu;
    return 0;
}

static size_t fake_mem(struct fake_target *t, uint64_t addr, uint8_t *buf, size_t len, bool w)
{
    if (addr < FAKE_MEM_BASE || addr >= FAKE_MEM_BASE + FAKE_MEM_SIZE)
        return 0;
    size_t n =
        FAKE_MEM_BASE + FAKE_MEM_SIZE - addr < len ? FAKE_MEM_BASE + FAKE_MEM_SIZE - addr : len;
    if (w)
        memcpy(t->mem + (addr - FAKE_MEM_BASE), buf, n);
    else
        memcpy(buf, t->mem + (addr - FAKE_MEM_BASE), n);
    return n;
}

static size_t fake_read_mem(void *ctx, unsigned vcpu, uint64_t addr, uint8_t *buf, size_t len)
{
    (void)vcpu;
    return fake_mem(ctx, addr, buf, len, false);
}

static size_t fake_write_mem(void *ctx, unsigned vcpu, uint64_t addr, const uint8_t *buf,
                             size_t len)
{
    (void)vcpu;
    return fake_mem(ctx, addr, (uint8_t *)buf, len, true);
}

static int fake_set_debug(void *ctx, const struct accel_debug *dbg)
{
    struct fake_target *t = ctx;
    t->set_debug_calls++;
    if (dbg->nr_breakpoints > 8)
        return -1; /* a small accelerator */
    t->dbg = *dbg;
    return 0;
}

static void fake_resume(void *ctx, int step)
{
    struct fake_target *t = ctx;
    t->resumes++;
    t->last_step = step;
}

static void fake_interrupt(void *ctx)
{
    ((struct fake_target *)ctx)->interrupts++;
}

static void fake_kill(void *ctx)
{
    ((struct fake_target *)ctx)->kills++;
}

static void fake_send(void *ctx, const char *data, size_t len)
{
    struct fake_target *t = ctx;
    if (len >= sizeof(t->out))
        return;
    if (t->out_len + len >= sizeof(t->out))
        t->out_len = 0;
    memcpy(t->out + t->out_len, data, len);
    t->out_len += len;
    t->out[t->out_len] = '\0';
}

static const struct gdb_target_ops fake_target_ops = {
    fake_nr_threads, fake_get_regs,  fake_set_regs, fake_read_mem, fake_write_mem, fake_set_debug,
    fake_resume,     fake_interrupt, fake_kill,     fake_send,     fake_get_fpu,   fake_set_fpu,
};

#endif
