/* Translation-block cache: guest code blocks translated once, found again by (physical pc,
 * code segment base, CPU mode), and thrown away when the guest writes to their page.
 *
 * Shared by every vCPU thread (as QEMU's MTTCG does it):
 *   - lookups take no lock: bucket chains are published with release stores, and a block
 *     unlinked from its chain stays readable until tb_reap;
 *   - everything that changes the cache (insert, invalidate, the page lists) holds the VM's
 *     translation lock, which the caller owns;
 *   - tb_reap, tb_flush and growing the hash table run only where no vCPU can hold a block
 *     pointer: with one vCPU between blocks, else in an exclusive section (every other vCPU
 *     stopped at its run loop's safe point, see exclusive.c).
 * Each vCPU has its own jump cache (QEMU's tb_jmp_cache): hints by linear pc, verified on
 * use; retiring a block clears it from every registered jump cache. */
#ifndef QUOKKA_ACCEL_TCG_TB_H
#define QUOKKA_ACCEL_TCG_TB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct interp_code;
struct native_code;
struct native_jit;

struct tb {
    /* What a lookup touches, together in the first cache line. */
    uint64_t pc;      /* linear address of the first instruction */
    uint64_t phys_pc; /* its physical address (the cache key) */
    uint64_t cs_base;
    uint32_t hflags;
    bool valid;         /* in the cache and not invalidated (read by other vCPUs: atomic) */
    bool in_cache;      /* was inserted (never changes after): the cache owns and frees it */
    int8_t entry_cc_op; /* only for this lazy-flags op at entry (it checks); -1: any */
    const uint8_t *native_entry; /* native->entry, where chained and looked-up jumps enter */
    struct tb *hash_next;
    struct native_code *native; /* the native backend's code, or */
    struct interp_code *code;   /* the interpreter's form */
    /* The rest. */
    uint32_t size; /* guest code bytes covered */
    uint32_t nr_guest_insns;
    size_t page_index[2]; /* RAM pages holding its code; [1] = SIZE_MAX when on one page */
    struct tb *zombie_next;
};

struct tb_page_list {
    struct tb **tbs;
    uint32_t nr, cap;
    /* A translation from this page is under way (set before its bytes are read): stores to
     * the page take the slow path from then on. Cleared when the page's blocks go. */
    bool translating;
};

#define TB_JMP_CACHE_SIZE 16384
#define TB_MAX_JMP_CACHES 64

struct tb_cache {
    struct tb **hash;
    size_t hash_size;           /* power of two */
    struct tb_page_list *pages; /* indexed by RAM page number (see tb_page_index) */
    size_t nr_pages;
    /* Pages whose list was ever allocated, so that flushing and teardown cost what the guest
     * used, not the RAM size (pages[] of a 1 TiB guest is 4 GiB, untouched where unused). */
    size_t *used_pages;
    size_t nr_used_pages, cap_used_pages;
    struct tb *zombies; /* invalidated, freed when no block is executing */
    size_t nr_tbs;
    size_t code_bytes;
    size_t max_code_bytes;  /* flush everything beyond this */
    struct native_jit *jit; /* the native backend's code buffer (NULL: interpreter) */
    /* The vCPUs' jump caches (TB_JMP_CACHE_SIZE entries each), cleared of retired blocks. */
    struct tb **jmp_caches[TB_MAX_JMP_CACHES];
    unsigned nr_jmp_caches;
    /* Work for the next point where no vCPU runs a block (tb_maintain). */
    bool flush_wanted; /* over max_code_bytes */
    bool grow_wanted;  /* chains are getting long */
    size_t zombie_bytes;
    uint64_t stats_translated, stats_invalidated, stats_flushes;
};

int tb_cache_init(struct tb_cache *cache, size_t nr_ram_pages);
void tb_cache_destroy(struct tb_cache *cache);
/* A vCPU's jump cache (before it runs). Returns -1 past TB_MAX_JMP_CACHES. */
int tb_register_jmp_cache(struct tb_cache *cache, struct tb **jmp_cache);
void tb_unregister_jmp_cache(struct tb_cache *cache, struct tb **jmp_cache);

/* Any thread, no lock. jmp_cache: the calling vCPU's (or NULL). Only valid blocks are found,
 * and only those right for the vCPU's lazy-flags op cc_op (tb.entry_cc_op). */
struct tb *tb_lookup(struct tb_cache *cache, struct tb **jmp_cache, uint64_t pc, uint64_t phys_pc,
                     uint64_t cs_base, uint32_t hflags, uint64_t cc_op);
/* Insert a new block (takes ownership). page_index[1] may be SIZE_MAX. Returns -1 when the
 * page list could not grow (the block is then freed). */
int tb_insert(struct tb_cache *cache, struct tb *tb, size_t page_index0, size_t page_index1);
/* The guest wrote to RAM page `page_index`: invalidate every block with code there. Returns
 * how many were invalidated. */
size_t tb_invalidate_page(struct tb_cache *cache, size_t page_index);
/* Any thread, no lock: blocks (or a translation under way) hold code of this page. */
bool tb_page_has_code(const struct tb_cache *cache, size_t page_index);
/* Translation lock held: a block is about to be translated from this page. */
void tb_page_mark_translating(struct tb_cache *cache, size_t page_index);
/* A block of RAM page page_index holds the instruction at physical address insn and the
 * bytes [addr, addr + len): a store there rewrites code of a block that may be running. */
bool tb_page_code_overlaps(const struct tb_cache *cache, size_t page_index, uint64_t insn,
                           uint64_t addr, unsigned len);
/* Drop every block (cache full, or a global change such as CR0.PG flipping). */
void tb_flush(struct tb_cache *cache);
/* Free a block that was never inserted (code outside RAM runs once, uncached). */
void tb_discard(struct tb *tb);
/* Free invalidated blocks; call only when no block is executing and no vCPU holds a block
 * pointer. */
void tb_reap(struct tb_cache *cache);
/* Empty every jump cache (with other vCPUs stopped: a hint that raced with retiring its
 * block must not outlive the block's memory). */
void tb_clear_jmp_caches(struct tb_cache *cache);
/* Whether tb_maintain has work (cheap, any thread). */
bool tb_maintenance_due(const struct tb_cache *cache, size_t zombie_limit);
/* With no block running anywhere: flush if over budget, grow the hash table, reap. Returns
 * true when it flushed (the caller resets the native code buffer). */
bool tb_maintain(struct tb_cache *cache);

#endif
