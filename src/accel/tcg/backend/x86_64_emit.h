/* The native backend's emitter: x86-64 instruction encoding and the per-block state shared by
 * the code generator (x86_64.c) and the register allocator (x86_64_regs.c). Internal to the
 * backend. */
#ifndef QUOKKA_ACCEL_TCG_BACKEND_X86_64_EMIT_H
#define QUOKKA_ACCEL_TCG_BACKEND_X86_64_EMIT_H

#include "accel/tcg/backend/x86_64.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

enum reg { RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8, R9, R10, R11, R12, R13, R14, R15 };
#define NO_REG 0xffu

/* Registers the allocator hands out: callee-saved ones first (they survive helper calls),
 * then R8-R11. RAX, RCX, RDX, RSI and RDI stay scratch for fixed sequences (TLB lookup,
 * shifts, multiplies, call arguments); RBX and RBP are pinned (env, frame). */
#define NR_ALLOC_REGS 8
#define CALLER_SAVED(r) ((r) < R12 && (r) != RBX && (r) != RBP)

#define ENV_BIAS 128
#define FRAME_BIAS 128
#define FRAME_BYTES (8u * (IR_MAX_TEMPS + 1))
/* Keeps RSP 16-byte aligned at helper calls: on entry the return address and six saved
 * registers (RBP, RBX, R12-R15) are on the stack (56 bytes). */
#define STACK_ALLOC (((FRAME_BYTES + 15u) & ~15u) + 8u)

#define NO_POS UINT32_MAX
#define NO_USE 0xffffu

/* --- the code buffer and its jump slots (x86_64_jit.c) --- */

struct native_site {
    uint64_t pc;          /* inline caches: the guest pc of the target */
    uint32_t guard;       /* inline caches: its mode word */
    uint32_t epoch;       /* the epoch the target was set in */
    const void *target;   /* where to jump (executable address) */
    int32_t epoch_disp;   /* which epoch word (RBX-relative): every flush's, or global ones' */
    uint32_t retargets;   /* inline caches: times re-aimed at a different pc (not read by code) */
    const void *fallback; /* the unchained path: the target again when the block dies */
};
_Static_assert(sizeof(struct native_site) == 40, "site layout used by generated code");
#define SITE_PC_OFF 0
#define SITE_GUARD_OFF 8
#define SITE_EPOCH_OFF 12
#define SITE_TARGET_OFF 16
#define SITE_EPOCH_DISP_OFF 24
#define SITE_MAX_RETARGETS 16

#define NO_SITE UINT32_MAX

struct native_jit {
    /* Data slots for the code's indirect jumps: nr_threads copies of nr_sites each, thread
     * t's at sites + t * nr_sites. */
    struct native_site *sites;
    size_t nr_sites, sites_used;
    unsigned nr_threads;
    uint8_t *rw; /* writable view */
    uint8_t *rx; /* executable view of the same pages */
    size_t size;
    size_t used;
    size_t code_start; /* first byte after the trampolines */
    /* Bytes of the buffer populated ahead of use (see populate_ahead); 0 once that failed. */
    size_t populated;
    bool populate_failed;
    struct native_config cfg;
    uint32_t (*enter)(void *env, const void *code); /* entry trampoline */
    uint32_t exit_off;                              /* exit trampoline: return EAX */
    uint32_t leave_off; /* invalidated entries jump here: EAX = IR_EXIT_NEXT, exit */
    /* The compiler's working state (~90 KB), kept from block to block: allocating it per block
     * made the heap grow and shrink each time (page faults, arena trims). Compiles are
     * serialised by the caller (they share the buffer). */
    struct emitter *scratch;
};

static inline size_t jit_sites_bytes(const struct native_jit *jit)
{
    return (size_t)jit->nr_threads * jit->nr_sites * sizeof(struct native_site);
}

static inline uintptr_t jit_rx(const struct native_jit *jit, uint32_t off)
{
    return (uintptr_t)jit->rx + off;
}

static inline struct native_site *thread_site(const struct native_jit *jit, unsigned thread,
                                              uint32_t index)
{
    return &jit->sites[(size_t)thread * jit->nr_sites + index];
}

/* Every thread's copy of a new site starts unchained: target = fallback = the code at
 * `fallback`, the every-flush epoch word. */
static inline void init_site(const struct native_jit *jit, uint32_t index, const void *fallback)
{
    for (unsigned t = 0; t < jit->nr_threads; t++) {
        struct native_site *site = thread_site(jit, t, index);
        memset(site, 0, sizeof(*site));
        site->epoch_disp = (int32_t)jit->cfg.epoch_offset - ENV_BIAS;
        site->target = site->fallback = fallback;
    }
}

/* Make sure the next block's bytes are backed before they are written. */
void jit_populate_ahead(struct native_jit *jit);

struct fixup {
    uint32_t at;    /* offset of a rel32 */
    uint32_t label; /* its target */
};

/* Which temp each host register held, and whether it was dirty, at one point of the code. */
/* Globals given a constant (MOVI) whose home is not written yet, at most this many. */
#define RA_MAX_PENDING 8

struct ra_state {
    ir_temp owner[16];
    bool dirty[16];
    uint32_t nr_pending;
    ir_temp pending[RA_MAX_PENDING];
    uint64_t pending_value[RA_MAX_PENDING];
};

/* A memory access's slow path (TLB miss), emitted after the block's code: where its jump
 * from the fast path is, where it returns to, and the register state there. */
struct slow_path {
    uint32_t jump_at; /* the rel32 of the fast path's jne */
    uint32_t resume;  /* where the fast path continues */
    uint8_t memop;
    uint8_t dest; /* loads: the register the fast path loads into */
    bool store, sign, is64;
    struct ra_state regs;
};

/* A conditional branch's taken edge: the values the label needs at home are stored there,
 * out of line, so the path that falls through keeps them in registers. */
struct branch_stub {
    uint32_t jump_at; /* the rel32 of the jcc */
    uint32_t label;
    uint16_t store; /* registers whose value goes home on this edge */
    struct ra_state regs;
};

/* Guest registers kept in host registers for a whole self-loop (IR_LOOP_TB), at most. */
#define RA_MAX_PINNED 4

struct emitter {
    uint8_t *buf; /* writable bytes of this block */
    size_t cap, len;
    bool overflow;
    uintptr_t rx_base; /* executable address of buf[0] */
    const struct native_jit *jit;
    const struct ir_block *b;
    const struct native_block_info *info;
    int32_t disp[IR_MAX_TEMPS]; /* locals: frame displacement from RBP */
    uint32_t label_pos[IR_MAX_LABELS];
    struct fixup fixups[IR_MAX_OPS];
    uint32_t nr_fixups;
    struct native_code *code;
    uint32_t op_index;
    /* 1 + the index of the IR_VOP whose whole 128-bit result XMM0 holds (0: none), for the
     * other half of the pair (emit_vop). */
    uint32_t vop_in_xmm0;
    bool unreachable; /* the previous op jumped away: nothing falls into a label here */
    /* single_use[i]: op i's result is a local read once, by op i + 1 (compare fusion). */
    bool single_use[IR_MAX_OPS];
    uint32_t use_reads[IR_MAX_TEMPS], use_next[IR_MAX_TEMPS]; /* find_single_use's */

    /* --- register allocation (x86_64_regs.c) --- */
    uint8_t reg_of[IR_MAX_TEMPS]; /* host register holding the temp, or NO_REG */
    bool dirty[IR_MAX_TEMPS];     /* that register is newer than the temp's home */
    ir_temp owner[16];            /* temp in each host register, or IR_NO_TEMP */
    uint16_t locked;              /* registers the current op reads: not to be evicted */
    /* next_read[i][k]: the next op after i that reads args[k] of op i (NO_USE: none). */
    uint16_t next_read[IR_MAX_OPS][IR_MAX_ARGS];
    uint16_t cur_next[IR_MAX_TEMPS]; /* each temp's next read from the current op on */
    /* Globals holding a constant their home does not have yet (RIP before an access that may
     * fault, a lazy-flags op...): written where the CPU state must be in memory (exits,
     * calls, slow paths, branches), or never when overwritten first. */
    bool is_pending[IR_MAX_TEMPS];
    uint32_t nr_pending;
    ir_temp pending[RA_MAX_PENDING];
    uint64_t pending_value[RA_MAX_PENDING];
    bool has_labels;        /* defs do not end a local's life: another path may read */
    bool loops;             /* a backward branch: every local lives to the end */
    struct slow_path *slow; /* out-of-line slow paths, emitted at the end */
    uint32_t nr_slow, cap_slow;
    struct branch_stub *stubs; /* out-of-line taken edges, emitted at the end */
    uint32_t nr_stubs, cap_stubs;
    /* A self-loop: the head label's op and the IR_LOOP_TB's (loop_op 0: none). Between them
     * the pinned globals stay in their registers (R15 down), loaded before the head. */
    uint32_t loop_head_op, loop_op;
    uint32_t nr_pinned;
    ir_temp pinned[RA_MAX_PINNED];
    uint16_t pinned_mask;
    bool pin_active;
};

static inline void byte(struct emitter *e, uint8_t v)
{
    if (e->len >= e->cap) {
        e->overflow = true;
        return;
    }
    e->buf[e->len++] = v;
}

static inline void imm32(struct emitter *e, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        byte(e, (uint8_t)(v >> (8 * i)));
}

static inline void imm64(struct emitter *e, uint64_t v)
{
    imm32(e, (uint32_t)v);
    imm32(e, (uint32_t)(v >> 32));
}

static inline void patch32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, 4);
}

static inline bool fits_i8(int64_t v)
{
    return v >= -128 && v <= 127;
}

static inline bool fits_i32(int64_t v)
{
    return v >= INT32_MIN && v <= INT32_MAX;
}

/* REX prefix: emitted when any bit is set (or forced, for byte registers SPL..DIL). */
static inline void rex(struct emitter *e, bool w, unsigned reg, unsigned index, unsigned rm)
{
    uint8_t r = (uint8_t)(0x40 | (w ? 8 : 0) | ((reg & 8) ? 4 : 0) | ((index & 8) ? 2 : 0) |
                          ((rm & 8) ? 1 : 0));
    if (r != 0x40)
        byte(e, r);
}

static inline void opcode(struct emitter *e, uint32_t opc)
{
    if (opc > 0xffff)
        byte(e, (uint8_t)(opc >> 16));
    if (opc > 0xff)
        byte(e, (uint8_t)(opc >> 8));
    byte(e, (uint8_t)opc);
}

/* ModRM (+SIB, +displacement) for [base + disp]. */
static inline void modrm_mem(struct emitter *e, unsigned reg, unsigned base, int32_t disp)
{
    unsigned mod = (disp == 0 && (base & 7) != RBP) ? 0 : fits_i8(disp) ? 1 : 2;
    byte(e, (uint8_t)(mod << 6 | (reg & 7) << 3 | (base & 7)));
    if ((base & 7) == RSP)
        byte(e, 0x24);
    if (mod == 1)
        byte(e, (uint8_t)disp);
    else if (mod == 2)
        imm32(e, (uint32_t)disp);
}

/* op reg, [base + disp] (or the reverse direction, by opcode). */
static inline void op_mem(struct emitter *e, uint32_t opc, bool w, unsigned reg, unsigned base,
                          int32_t disp)
{
    rex(e, w, reg, 0, base);
    opcode(e, opc);
    modrm_mem(e, reg, base, disp);
}

/* op reg, [base + index*scale + disp32] */
static inline void op_mem_index(struct emitter *e, uint32_t opc, bool w, unsigned reg,
                                unsigned base, unsigned index, int32_t disp)
{
    rex(e, w, reg, index, base);
    opcode(e, opc);
    byte(e, (uint8_t)(2 << 6 | (reg & 7) << 3 | 4));
    byte(e, (uint8_t)((index & 7) << 3 | (base & 7)));
    imm32(e, (uint32_t)disp);
}

/* op reg, rm (register direct). */
static inline void op_reg(struct emitter *e, uint32_t opc, bool w, unsigned reg, unsigned rm)
{
    rex(e, w, reg, 0, rm);
    opcode(e, opc);
    byte(e, (uint8_t)(0xc0 | (reg & 7) << 3 | (rm & 7)));
}

static inline void mov_imm(struct emitter *e, unsigned reg, uint64_t v)
{
    if (v == 0) {
        op_reg(e, 0x31, false, reg, reg); /* xor r32, r32 */
    } else if (v <= UINT32_MAX) {
        rex(e, false, 0, 0, reg);
        byte(e, (uint8_t)(0xb8 + (reg & 7))); /* mov r32, imm32 (zero-extends) */
        imm32(e, (uint32_t)v);
    } else if (fits_i32((int64_t)v)) {
        op_reg(e, 0xc7, true, 0, reg); /* mov r64, simm32 */
        imm32(e, (uint32_t)v);
    } else {
        rex(e, true, 0, 0, reg);
        byte(e, (uint8_t)(0xb8 + (reg & 7))); /* movabs */
        imm64(e, v);
    }
}

static inline void mov_rr(struct emitter *e, bool w, unsigned dst, unsigned src)
{
    op_reg(e, 0x8b, w, dst, src);
}

/* --- register allocator (x86_64_regs.c) --- */

/* Next-read tables and empty register state for the block (after the frame is assigned). */
void ra_init(struct emitter *e);
/* Before op i is emitted / after it: unlock, drop dead locals, advance next reads. */
void ra_begin_op(struct emitter *e, uint32_t i);
void ra_end_op(struct emitter *e, uint32_t i);
/* Base register and displacement of a global's or local's memory home. */
void ra_home(const struct emitter *e, ir_temp t, unsigned *base, int32_t *disp);
/* A register holding t's value (loaded now if needed), locked for the current op. */
unsigned ra_use(struct emitter *e, ir_temp t);
/* A register to put t's new value in (marked dirty), locked. Pass `reuse` to allow taking
 * over the register of an input that dies at this op (IR_NO_TEMP: none). */
unsigned ra_def(struct emitter *e, ir_temp t, ir_temp reuse);
/* Write every dirty global back to env (registers keep them, now clean). */
void ra_sync_globals(struct emitter *e);
/* End of a basic block (branch, or falling into a label): globals written back, live locals
 * written to the frame. ra_forget_all drops every association (at a label). */
void ra_end_bb(struct emitter *e);
void ra_forget_all(struct emitter *e);
/* Global t = v (a sign-extended 32-bit value), its home written later (or never). */
void ra_set_const(struct emitter *e, ir_temp t, uint64_t v);
/* t holds a constant not yet in its home: true and *v. */
bool ra_pending_value(const struct emitter *e, ir_temp t, uint64_t *v);
/* Around a C call: `flags` are the helper's IR_HELPER_* (pure calls sync nothing). Before:
 * what the call may read or clobber goes home. After: caller-saved registers are forgotten,
 * and every global too when the helper writes globals. */
void ra_before_call(struct emitter *e, uint32_t flags);
void ra_after_call(struct emitter *e, uint32_t flags);
/* Slow paths of memory accesses, emitted out of line for a register state taken with
 * ra_snapshot (the allocator's own state does not change): globals home (the call may
 * fault), caller-saved registers saved, and restored after. */
void ra_snapshot(const struct emitter *e, struct ra_state *st);
void ra_slow_save(struct emitter *e, const struct ra_state *st);
void ra_slow_restore(struct emitter *e, const struct ra_state *st);
/* Env [offset, offset+8) is read or written directly: globals overlapping it go home, and
 * are forgotten when it is written. */
void ra_env_access(struct emitter *e, uint64_t offset, bool write);
/* Self-loops: choose the globals to pin (ra_init); at the head label, load them (before the
 * label's position); the registers a branch's taken edge must store (see branch_stub). */
void ra_enter_loop(struct emitter *e);
void ra_leave_loop(struct emitter *e);
void ra_loop_back(struct emitter *e); /* at the jump back: what the head expects */
uint16_t ra_edge_stores(const struct emitter *e);
void ra_edge_save(struct emitter *e, const struct ra_state *st, uint16_t store);

#endif
