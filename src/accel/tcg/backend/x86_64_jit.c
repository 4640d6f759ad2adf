/* Native backend: the code buffer (two views of one memory object, populated ahead of use),
 * the entry/exit trampolines, and the data slots chained jumps and inline caches jump
 * through (set, re-aimed, reset when their target dies). The compiler is x86_64.c. */
#include "accel/tcg/backend/x86_64.h"
#include "accel/tcg/backend/x86_64_emit.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* The code buffer is shared anonymous memory, which gets no transparent huge pages: writing
 * each new 4 KiB page of code took a page fault, a third of translation time during a boot on
 * a virtualised host. Populate it a MiB at a time, ahead of the blocks being written. */
#define POPULATE_CHUNK (1u << 20)
#define POPULATE_MARGIN (256u << 10) /* more than any one block's code */
void jit_populate_ahead(struct native_jit *jit)
{
#ifdef MADV_POPULATE_WRITE
    while (!jit->populate_failed && jit->populated < jit->size &&
           jit->used + POPULATE_MARGIN > jit->populated) {
        size_t len = jit->size - jit->populated;
        if (len > POPULATE_CHUNK)
            len = POPULATE_CHUNK;
        if (madvise(jit->rw + jit->populated, len, MADV_POPULATE_WRITE) < 0)
            jit->populate_failed = true; /* an older kernel: pages fault in as written */
        jit->populated += len;
    }
#else
    (void)jit;
#endif
}

uint32_t native_exec(const struct native_jit *jit, const struct native_code *code, void *env)
{
    return jit->enter(env, code->entry + code->body);
}

void *native_jit_sites(struct native_jit *jit, unsigned thread)
{
    return thread < jit->nr_threads ? thread_site(jit, thread, 0) : NULL;
}

/* Which site (index) a thread's copy is. */
static uint32_t site_index(const struct native_jit *jit, const struct native_site *site)
{
    return (uint32_t)((size_t)(site - jit->sites) % jit->nr_sites);
}

static void set_site(const struct native_jit *jit, struct native_site *site, uint32_t epoch,
                     bool global, struct native_code *to)
{
    /* Remember the site in `to` (once), so `to` dying resets it in every thread. */
    uint32_t index = site_index(jit, site);
    uint32_t i = 0;
    while (i < to->nr_incoming && to->incoming[i] != index)
        i++;
    if (i == to->nr_incoming) {
        if (to->nr_incoming == to->cap_incoming) {
            uint32_t cap = to->cap_incoming ? 2 * to->cap_incoming : 4;
            uint32_t *v = realloc(to->incoming, cap * sizeof(*v));
            if (!v)
                return; /* not chained: correct, only slower */
            to->incoming = v;
            to->cap_incoming = cap;
        }
        to->incoming[to->nr_incoming++] = index;
    }
    site->epoch = epoch;
    site->epoch_disp =
        (int32_t)(global ? jit->cfg.global_epoch_offset : jit->cfg.epoch_offset) - ENV_BIAS;
    __atomic_store_n(&site->target, (const void *)to->entry, __ATOMIC_RELEASE);
}

void native_chain(struct native_jit *jit, unsigned thread, struct native_code *from, unsigned slot,
                  struct native_code *to, uint32_t epoch, bool global)
{
    if (slot >= IR_MAX_GOTO_SLOTS || from->chain[slot] == NO_SITE || thread >= jit->nr_threads ||
        from->dead || to->dead)
        return;
    set_site(jit, thread_site(jit, thread, from->chain[slot]), epoch, global, to);
}

bool native_site_open(struct native_site *site, uint64_t pc)
{
    /* A megamorphic site (a switch's jump table, a shared return) would be re-aimed at almost
     * every miss, each time recording itself in the target: past a few, leave it alone and
     * let its misses go to the lookup, which costs less than re-aiming. */
    if (site->target != site->fallback && site->pc != pc && ++site->retargets > SITE_MAX_RETARGETS)
        return false;
    return true;
}

void native_cache_target(struct native_jit *jit, struct native_site *site, uint64_t pc,
                         uint32_t guard, uint32_t epoch, bool global, struct native_code *to)
{
    if (!site || to->dead)
        return;
    site->pc = pc;
    site->guard = guard;
    set_site(jit, site, epoch, global, to);
}

void native_invalidate(struct native_jit *jit, struct native_code *code)
{
    if (code->dead)
        return;
    code->dead = true;
    /* The entry's first 8 bytes (blocks start 16-byte aligned; the exit-request check is 7
     * bytes) become a jump to "leave" in one aligned store: a thread entering meanwhile
     * runs either the old check or the jump. */
    size_t at = (size_t)(code->entry - jit->rx);
    uint8_t word[8];
    memcpy(word, jit->rw + at, sizeof(word));
    word[0] = 0xe9;
    uint32_t rel = (uint32_t)(jit_rx(jit, jit->leave_off) - ((uintptr_t)code->entry + 5));
    memcpy(word + 1, &rel, 4);
    uint64_t value;
    memcpy(&value, word, sizeof(value));
    __atomic_store_n((uint64_t *)(void *)(jit->rw + at), value, __ATOMIC_SEQ_CST);
    for (uint32_t i = 0; i < code->nr_incoming; i++) {
        for (unsigned t = 0; t < jit->nr_threads; t++) {
            struct native_site *site = thread_site(jit, t, code->incoming[i]);
            const void *expected = code->entry;
            /* still pointed here (not re-targeted since) */
            __atomic_compare_exchange_n(&site->target, &expected, site->fallback, false,
                                        __ATOMIC_SEQ_CST, __ATOMIC_RELAXED);
        }
    }
    free(code->incoming);
    code->incoming = NULL;
    code->nr_incoming = code->cap_incoming = 0;
}

void native_code_free(struct native_code *code)
{
    if (code)
        free(code->incoming);
    free(code);
}

void native_reset(struct native_jit *jit)
{
    jit->used = jit->code_start;
    jit->sites_used = 0;
}

size_t native_code_size(const struct native_code *code)
{
    return code ? code->size : 0;
}

size_t native_jit_used(const struct native_jit *jit)
{
    return jit->used;
}

/* --- buffer and trampolines ----------------------------------------------------------------------
 */

#if defined(__x86_64__)
static void build_trampolines(struct native_jit *jit)
{
    struct emitter *e = calloc(1, sizeof(*e));
    if (!e)
        return;
    e->buf = jit->rw;
    e->cap = jit->size;
    e->rx_base = (uintptr_t)jit->rx;
    e->jit = jit;
    /* enter(env = RDI, code = RSI) */
    byte(e, 0x55);                          /* push rbp */
    byte(e, 0x53);                          /* push rbx */
    for (unsigned r = R12; r <= R15; r++) { /* push r12..r15 */
        byte(e, 0x41);
        byte(e, (uint8_t)(0x50 + (r & 7)));
    }
    op_reg(e, 0x81, true, 5, RSP); /* sub rsp, STACK_ALLOC */
    imm32(e, STACK_ALLOC);
    op_mem(e, 0x8d, true, RBP, RSP, FRAME_BIAS); /* lea rbp, [rsp + bias] */
    op_mem(e, 0x8d, true, RBX, RDI, ENV_BIAS);   /* lea rbx, [rdi + bias] */
    op_reg(e, 0xff, false, 4, RSI);              /* jmp rsi */
    jit->leave_off = (uint32_t)e->len;
    mov_imm(e, RAX, IR_EXIT_NEXT);
    jit->exit_off = (uint32_t)e->len;
    op_reg(e, 0x81, true, 0, RSP); /* add rsp, STACK_ALLOC */
    imm32(e, STACK_ALLOC);
    for (unsigned r = R15; r >= R12; r--) { /* pop r15..r12 */
        byte(e, 0x41);
        byte(e, (uint8_t)(0x58 + (r & 7)));
    }
    byte(e, 0x5b); /* pop rbx */
    byte(e, 0x5d); /* pop rbp */
    byte(e, 0xc3); /* ret */
    jit->code_start = (e->len + 63) & ~(size_t)63;
    jit->used = jit->code_start;
    jit->enter = (uint32_t(*)(void *, const void *))(void *)jit->rx;
    free(e);
}
#endif

struct native_jit *native_jit_create(const struct native_config *cfg, size_t buffer_bytes,
                                     char *err, size_t errlen)
{
#if !defined(__x86_64__)
    (void)cfg, (void)buffer_bytes;
    snprintf(err, errlen, "the native backend needs an x86-64 host");
    return NULL;
#else
    struct native_jit *jit = calloc(1, sizeof(*jit));
    if (!jit) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    jit->cfg = *cfg;
    jit->size = (buffer_bytes + 0xfff) & ~(size_t)0xfff;
    /* One memory object, two views: code is written through one and run from the other, so
     * no page is ever writable and executable at once. Shared anonymous memory (rather than
     * a memfd) so that perf treats the code as anonymous and reads --tcg perf-map's names. */
    jit->rw = mmap(NULL, jit->size, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (jit->rw == MAP_FAILED) {
        snprintf(err, errlen, "mapping the code buffer: %s", strerror(errno));
        free(jit);
        return NULL;
    }
    jit->rx = mremap(jit->rw, 0, jit->size, MREMAP_MAYMOVE); /* a second view of its pages */
    if (jit->rx == MAP_FAILED || mprotect(jit->rx, jit->size, PROT_READ | PROT_EXEC) < 0) {
        snprintf(err, errlen, "mapping the code buffer twice: %s", strerror(errno));
        goto fail;
    }
    /* Blocks average hundreds of bytes with up to two sites each. Every thread's copy is
     * reserved; only the pages a thread touches cost memory. */
    jit->nr_threads = cfg->nr_threads ? cfg->nr_threads : 1;
    jit->nr_sites = jit->size / 128;
    jit->sites = mmap(NULL, jit_sites_bytes(jit), PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (jit->sites == MAP_FAILED) {
        jit->sites = NULL;
        snprintf(err, errlen, "jump slots: %s", strerror(errno));
        native_jit_destroy(jit);
        return NULL;
    }
    /* Slots are written a few at a time over the whole range: 2 MiB pages, not a fault per
     * 4 KiB (advice only; without transparent huge pages nothing changes). */
    madvise(jit->sites, jit_sites_bytes(jit), MADV_HUGEPAGE);
    build_trampolines(jit);
    if (!jit->enter) {
        snprintf(err, errlen, "out of memory");
        native_jit_destroy(jit);
        return NULL;
    }
    return jit;
fail:
    munmap(jit->rw, jit->size);
    if (jit->rx != MAP_FAILED)
        munmap(jit->rx, jit->size);
    free(jit);
    return NULL;
#endif
}

void native_jit_destroy(struct native_jit *jit)
{
    if (!jit)
        return;
    munmap(jit->rw, jit->size);
    munmap(jit->rx, jit->size);
    if (jit->sites)
        munmap(jit->sites, jit_sites_bytes(jit));
    if (jit->scratch) {
        free(jit->scratch->slow);
        free(jit->scratch->stubs);
    }
    free(jit->scratch);
    free(jit);
}
