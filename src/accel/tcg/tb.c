#include "accel/tcg/tb.h"

#include "accel/tcg/backend/interp.h"
#include "accel/tcg/backend/x86_64.h"

#include <stdlib.h>
#include <string.h>

#define TB_HASH_SIZE (1u << 15)           /* buckets to start with */
#define TB_HASH_MAX_SIZE (1u << 22)       /* buckets at most (32 MiB of table) */
#define TB_DEFAULT_MAX_BYTES (768u << 20) /* above the native buffer: that one fills first */

/* The virtual pc is part of the key, as in QEMU: the same physical code mapped at many
 * addresses (a shared library in every process, ASLR) must not pile up in one bucket. */
static size_t tb_hash(uint64_t pc, uint64_t phys_pc, uint32_t hflags, size_t size)
{
    uint64_t h = phys_pc * 0x9e3779b97f4a7c15ULL ^ pc * 0xc2b2ae3d27d4eb4fULL ^
                 (uint64_t)hflags * 0xff51afd7ed558ccdULL;
    return (size_t)(h >> 40) & (size - 1);
}

static size_t jmp_hash(uint64_t pc)
{
    return (size_t)((pc >> 2) ^ (pc >> 14)) & (TB_JMP_CACHE_SIZE - 1);
}

int tb_cache_init(struct tb_cache *cache, size_t nr_ram_pages)
{
    memset(cache, 0, sizeof(*cache));
    cache->hash_size = TB_HASH_SIZE;
    cache->hash = calloc(cache->hash_size, sizeof(*cache->hash));
    cache->nr_pages = nr_ram_pages;
    cache->pages = calloc(nr_ram_pages ? nr_ram_pages : 1, sizeof(*cache->pages));
    cache->max_code_bytes = TB_DEFAULT_MAX_BYTES;
    if (!cache->hash || !cache->pages) {
        tb_cache_destroy(cache);
        return -1;
    }
    return 0;
}

int tb_register_jmp_cache(struct tb_cache *cache, struct tb **jmp_cache)
{
    if (cache->nr_jmp_caches >= TB_MAX_JMP_CACHES)
        return -1;
    memset(jmp_cache, 0, TB_JMP_CACHE_SIZE * sizeof(*jmp_cache));
    cache->jmp_caches[cache->nr_jmp_caches++] = jmp_cache;
    return 0;
}

void tb_unregister_jmp_cache(struct tb_cache *cache, struct tb **jmp_cache)
{
    for (unsigned i = 0; i < cache->nr_jmp_caches; i++)
        if (cache->jmp_caches[i] == jmp_cache) {
            cache->jmp_caches[i] = cache->jmp_caches[--cache->nr_jmp_caches];
            return;
        }
}

void tb_clear_jmp_caches(struct tb_cache *cache)
{
    for (unsigned i = 0; i < cache->nr_jmp_caches; i++)
        memset(cache->jmp_caches[i], 0, TB_JMP_CACHE_SIZE * sizeof(struct tb *));
}

static bool tb_is_valid(const struct tb *tb)
{
    return __atomic_load_n(&tb->valid, __ATOMIC_ACQUIRE);
}

void tb_discard(struct tb *tb)
{
    interp_free(tb->code);
    native_code_free(tb->native);
    free(tb);
}

static size_t tb_bytes(const struct tb *tb)
{
    return interp_code_size(tb->code) + native_code_size(tb->native) + sizeof(*tb);
}

/* Chained jumps into a dropped block must not reach its code any more. */
static void tb_kill(struct tb_cache *cache, struct tb *tb)
{
    __atomic_store_n(&tb->valid, false, __ATOMIC_SEQ_CST);
    if (tb->native)
        native_invalidate(cache->jit, tb->native);
}

void tb_cache_destroy(struct tb_cache *cache)
{
    if (cache->hash)
        tb_flush(cache);
    tb_reap(cache);
    for (size_t i = 0; i < cache->nr_used_pages; i++)
        free(cache->pages[cache->used_pages[i]].tbs);
    free(cache->used_pages);
    free(cache->pages);
    free(cache->hash);
    memset(cache, 0, sizeof(*cache));
}

/* A hint stored after its block was retired would outlive the retirement's sweep of the
 * jump caches: look again after storing (the sweep runs after `valid` is cleared). */
static void jmp_cache_store(const struct tb_cache *cache, struct tb **slot, struct tb *tb)
{
    if (cache->nr_jmp_caches <= 1) { /* one vCPU: it also runs every sweep, never meanwhile */
        __atomic_store_n(slot, tb, __ATOMIC_RELAXED);
        return;
    }
    __atomic_store_n(slot, tb, __ATOMIC_SEQ_CST);
    if (!tb_is_valid(tb)) {
        struct tb *expected = tb;
        __atomic_compare_exchange_n(slot, &expected, NULL, false, __ATOMIC_SEQ_CST,
                                    __ATOMIC_RELAXED);
    }
}

static bool tb_fits_cc_op(const struct tb *tb, uint64_t cc_op)
{
    return tb->entry_cc_op < 0 || (uint64_t)tb->entry_cc_op == cc_op;
}

struct tb *tb_lookup(struct tb_cache *cache, struct tb **jmp_cache, uint64_t pc, uint64_t phys_pc,
                     uint64_t cs_base, uint32_t hflags, uint64_t cc_op)
{
    struct tb **slot = jmp_cache ? &jmp_cache[jmp_hash(pc)] : NULL;
    struct tb *hint = slot ? __atomic_load_n(slot, __ATOMIC_ACQUIRE) : NULL;
    if (hint && hint->pc == pc && hint->phys_pc == phys_pc && hint->cs_base == cs_base &&
        hint->hflags == hflags && tb_fits_cc_op(hint, cc_op) && tb_is_valid(hint))
        return hint;
    struct tb **bucket = &cache->hash[tb_hash(pc, phys_pc, hflags, cache->hash_size)];
    for (struct tb *tb = __atomic_load_n(bucket, __ATOMIC_ACQUIRE); tb;
         tb = __atomic_load_n(&tb->hash_next, __ATOMIC_ACQUIRE)) {
        if (tb->phys_pc == phys_pc && tb->pc == pc && tb->cs_base == cs_base &&
            tb->hflags == hflags && tb_fits_cc_op(tb, cc_op) && tb_is_valid(tb)) {
            if (slot)
                jmp_cache_store(cache, slot, tb);
            return tb;
        }
    }
    return NULL;
}

/* Remember that page `index` has a list (see used_pages). */
static int note_used_page(struct tb_cache *cache, size_t index)
{
    if (cache->nr_used_pages == cache->cap_used_pages) {
        size_t cap = cache->cap_used_pages ? cache->cap_used_pages * 2 : 64;
        size_t *v = realloc(cache->used_pages, cap * sizeof(*v));
        if (!v)
            return -1;
        cache->used_pages = v;
        cache->cap_used_pages = cap;
    }
    cache->used_pages[cache->nr_used_pages++] = index;
    return 0;
}

static int page_list_add(struct tb_cache *cache, size_t index, struct tb *tb)
{
    struct tb_page_list *list = &cache->pages[index];
    if (!list->cap && note_used_page(cache, index) < 0)
        return -1;
    if (list->nr == list->cap) {
        uint32_t cap = list->cap ? list->cap * 2 : 4;
        struct tb **v = realloc(list->tbs, cap * sizeof(*v));
        if (!v) {
            if (!list->cap) /* keep used_pages exact: this page has no list after all */
                cache->nr_used_pages--;
            return -1;
        }
        list->tbs = v;
        list->cap = cap;
    }
    list->tbs[list->nr++] = tb;
    return 0;
}

static void page_list_remove(struct tb_page_list *list, const struct tb *tb)
{
    for (uint32_t i = 0; i < list->nr; i++) {
        if (list->tbs[i] == tb) {
            list->tbs[i] = list->tbs[--list->nr];
            return;
        }
    }
}

/* Keep chains short as blocks accumulate (a guest running many processes has the same code
 * at many addresses: ASLR): double the table when it holds two blocks per bucket. Without
 * memory for a bigger table the old one stays. Lock-free readers may be walking the chains:
 * only where no block runs (tb_maintain). */
static bool tb_hash_wants_growth(const struct tb_cache *cache)
{
    return cache->nr_tbs >= 2 * cache->hash_size && cache->hash_size < TB_HASH_MAX_SIZE;
}

static void tb_hash_grow(struct tb_cache *cache)
{
    if (!tb_hash_wants_growth(cache))
        return;
    size_t size = cache->hash_size * 2;
    struct tb **hash = calloc(size, sizeof(*hash));
    if (!hash)
        return;
    for (size_t i = 0; i < cache->hash_size; i++) {
        for (struct tb *tb = cache->hash[i], *next; tb; tb = next) {
            next = tb->hash_next;
            size_t h = tb_hash(tb->pc, tb->phys_pc, tb->hflags, size);
            tb->hash_next = hash[h];
            hash[h] = tb;
        }
    }
    free(cache->hash);
    cache->hash = hash;
    cache->hash_size = size;
}

int tb_insert(struct tb_cache *cache, struct tb *tb, size_t page_index0, size_t page_index1)
{
    size_t bytes = tb_bytes(tb);
    if (cache->code_bytes + bytes > cache->max_code_bytes)
        cache->flush_wanted = true; /* at the next point where no block runs */
    if (page_index0 >= cache->nr_pages || page_list_add(cache, page_index0, tb) < 0) {
        tb_discard(tb);
        return -1;
    }
    if (page_index1 != SIZE_MAX) {
        if (page_index1 >= cache->nr_pages || page_list_add(cache, page_index1, tb) < 0) {
            page_list_remove(&cache->pages[page_index0], tb);
            tb_discard(tb);
            return -1;
        }
    }
    tb->page_index[0] = page_index0;
    tb->page_index[1] = page_index1;
    tb->in_cache = true;
    tb->valid = true;
    size_t h = tb_hash(tb->pc, tb->phys_pc, tb->hflags, cache->hash_size);
    tb->hash_next = cache->hash[h];
    __atomic_store_n(&cache->hash[h], tb, __ATOMIC_RELEASE); /* published whole */
    cache->nr_tbs++;
    cache->grow_wanted |= tb_hash_wants_growth(cache);
    cache->code_bytes += bytes;
    cache->stats_translated++;
    return 0;
}

/* Unlink from the hash chain and jump cache, and park on the zombie list: the block may be
 * the one executing right now (a store into its own page). */
static void tb_retire(struct tb_cache *cache, struct tb *tb)
{
    struct tb **link = &cache->hash[tb_hash(tb->pc, tb->phys_pc, tb->hflags, cache->hash_size)];
    while (*link && *link != tb)
        link = &(*link)->hash_next;
    if (*link) /* readers standing on tb go on through its hash_next: it stays until reaped */
        __atomic_store_n(link, tb->hash_next, __ATOMIC_RELEASE);
    tb_kill(cache, tb); /* before the sweep (see jmp_cache_store) */
    size_t j = jmp_hash(tb->pc);
    for (unsigned i = 0; i < cache->nr_jmp_caches; i++) {
        struct tb *expected = tb;
        __atomic_compare_exchange_n(&cache->jmp_caches[i][j], &expected, NULL, false,
                                    __ATOMIC_SEQ_CST, __ATOMIC_RELAXED);
    }
    tb->zombie_next = cache->zombies;
    cache->zombies = tb;
    cache->nr_tbs--;
    size_t bytes = tb_bytes(tb);
    cache->zombie_bytes += bytes;
    cache->code_bytes = cache->code_bytes > bytes ? cache->code_bytes - bytes : 0;
}

bool tb_page_has_code(const struct tb_cache *cache, size_t page_index)
{
    if (page_index >= cache->nr_pages)
        return false;
    const struct tb_page_list *list = &cache->pages[page_index];
    return __atomic_load_n(&list->nr, __ATOMIC_SEQ_CST) != 0 ||
           __atomic_load_n(&list->translating, __ATOMIC_SEQ_CST);
}

void tb_page_mark_translating(struct tb_cache *cache, size_t page_index)
{
    if (page_index < cache->nr_pages)
        __atomic_store_n(&cache->pages[page_index].translating, true, __ATOMIC_SEQ_CST);
}

bool tb_page_code_overlaps(const struct tb_cache *cache, size_t page_index, uint64_t insn,
                           uint64_t addr, unsigned len)
{
    if (page_index >= cache->nr_pages)
        return false;
    const struct tb_page_list *list = &cache->pages[page_index];
    for (uint32_t i = 0; i < list->nr; i++) {
        const struct tb *tb = list->tbs[i];
        uint64_t start = tb->phys_pc, end = tb->phys_pc + tb->size; /* first page's part */
        if (insn >= start && insn < end && addr < end && addr + len > start)
            return true;
    }
    return false;
}

size_t tb_invalidate_page(struct tb_cache *cache, size_t page_index)
{
    if (page_index >= cache->nr_pages)
        return 0;
    struct tb_page_list *list = &cache->pages[page_index];
    size_t count = 0;
    __atomic_store_n(&list->translating, false, __ATOMIC_RELAXED);
    while (list->nr) {
        struct tb *tb = list->tbs[list->nr - 1];
        __atomic_store_n(&list->nr, list->nr - 1, __ATOMIC_RELAXED);
        /* A block spanning two pages is on the other page's list too. */
        for (int i = 0; i < 2; i++) {
            size_t other = tb->page_index[i];
            if (other != page_index && other < cache->nr_pages)
                page_list_remove(&cache->pages[other], tb);
        }
        tb_retire(cache, tb);
        count++;
    }
    cache->stats_invalidated += count;
    return count;
}

void tb_flush(struct tb_cache *cache)
{
    for (size_t i = 0; i < cache->hash_size; i++) {
        struct tb *tb = cache->hash[i];
        while (tb) {
            struct tb *next = tb->hash_next;
            tb_kill(cache, tb);
            tb->zombie_next = cache->zombies;
            cache->zombies = tb;
            tb = next;
        }
        cache->hash[i] = NULL;
    }
    for (size_t i = 0; i < cache->nr_used_pages; i++) {
        cache->pages[cache->used_pages[i]].nr = 0;
        cache->pages[cache->used_pages[i]].translating = false;
    }
    tb_clear_jmp_caches(cache);
    cache->nr_tbs = 0;
    cache->code_bytes = 0;
    cache->flush_wanted = false;
    cache->stats_flushes++;
}

void tb_reap(struct tb_cache *cache)
{
    struct tb *tb = cache->zombies;
    while (tb) {
        struct tb *next = tb->zombie_next;
        tb_discard(tb);
        tb = next;
    }
    cache->zombies = NULL;
    cache->zombie_bytes = 0;
}

bool tb_maintenance_due(const struct tb_cache *cache, size_t zombie_limit)
{
    return __atomic_load_n(&cache->flush_wanted, __ATOMIC_RELAXED) ||
           __atomic_load_n(&cache->grow_wanted, __ATOMIC_RELAXED) ||
           __atomic_load_n(&cache->zombie_bytes, __ATOMIC_RELAXED) > zombie_limit;
}

bool tb_maintain(struct tb_cache *cache)
{
    bool flushed = cache->flush_wanted;
    if (flushed)
        tb_flush(cache);
    if (cache->grow_wanted) {
        cache->grow_wanted = false;
        tb_hash_grow(cache);
    }
    /* A hint that raced with its block's retirement would dangle after the reap. */
    if (cache->zombies && cache->nr_jmp_caches > 1)
        tb_clear_jmp_caches(cache);
    tb_reap(cache);
    return flushed;
}
