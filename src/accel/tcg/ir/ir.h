/* quokka's translator IR: typed (i32/i64), linear three-address micro-ops over temporaries.
 *
 * One translation block (TB) = one `struct ir_block`: a list of ops, produced by the x86
 * front end through the builder API, cleaned by the optimiser, and executed by a backend
 * (the portable interpreter now, an x86-64 emitter later). Nothing here is x86-guest or
 * host specific: guest state is reached through "globals", temps bound to fixed offsets of
 * the CPU state structure (`env`), and everything complex goes through C helper calls.
 *
 * Value semantics: every temp holds 64 bits. An i32 op computes on the low 32 bits and
 * writes its result zero-extended to 64 bits, so an i32 result can be used as an i64 input.
 * Shift/rotate counts are taken modulo the type width (the front end masks x86 counts).
 */
#ifndef QUOKKA_ACCEL_TCG_IR_IR_H
#define QUOKKA_ACCEL_TCG_IR_IR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum ir_type { IR_I32, IR_I64 };

typedef uint16_t ir_temp; /* index into the block's temp table */
typedef uint16_t ir_label;
#define IR_NO_LABEL ((ir_label)0xffff)
#define IR_NO_TEMP 0xffff

enum ir_cond { /* comparisons for setcond/brcond/movcond, on the op's type width */
               IR_COND_EQ,
               IR_COND_NE,
               IR_COND_LT, /* signed */
               IR_COND_GE,
               IR_COND_LE,
               IR_COND_GT,
               IR_COND_LTU, /* unsigned */
               IR_COND_GEU,
               IR_COND_LEU,
               IR_COND_GTU,
               IR_COND_TSTEQ, /* (a & b) == 0 */
               IR_COND_TSTNE, /* (a & b) != 0 */
               IR_COND_ALWAYS,
               IR_COND_NEVER,
};

/* Memory access descriptor for IR_QLD/IR_QST: size in bytes (1,2,4,8) | IR_MEM_SIGN. */
#define IR_MEM_SIZE_MASK 0x0f
#define IR_MEM_SIGN 0x10 /* loads: sign-extend to the op type */

/* X(name, outputs, inputs, has_imm) — args[] holds outputs first, then inputs. */
#define IR_OPCODES(X)                                                                              \
    X(NOP, 0, 0, 0)                                                                                \
    X(MOV, 1, 1, 0)  /* d = a */                                                                   \
    X(MOVI, 1, 0, 1) /* d = imm */                                                                 \
    X(ADD, 1, 2, 0)                                                                                \
    X(SUB, 1, 2, 0)                                                                                \
    X(MUL, 1, 2, 0) /* low half */                                                                 \
    X(AND, 1, 2, 0)                                                                                \
    X(OR, 1, 2, 0)                                                                                 \
    X(XOR, 1, 2, 0)                                                                                \
    X(ANDC, 1, 2, 0) /* d = a & ~b */                                                              \
    X(SHL, 1, 2, 0)  /* count mod width */                                                         \
    X(SHR, 1, 2, 0)                                                                                \
    X(SAR, 1, 2, 0)                                                                                \
    X(ROTL, 1, 2, 0)                                                                               \
    X(ROTR, 1, 2, 0)                                                                               \
    X(NEG, 1, 1, 0)                                                                                \
    X(NOT, 1, 1, 0)                                                                                \
    X(EXT8S, 1, 1, 0) /* sign/zero-extend the low 8/16/32 bits to the op type */                   \
    X(EXT8U, 1, 1, 0)                                                                              \
    X(EXT16S, 1, 1, 0)                                                                             \
    X(EXT16U, 1, 1, 0)                                                                             \
    X(EXT32S, 1, 1, 0)  /* i64 only */                                                             \
    X(EXT32U, 1, 1, 0)  /* i64 only */                                                             \
    X(DEPOSIT, 1, 2, 1) /* d = a with bits [pos, pos+len) replaced by b's low bits;                \
                           imm = pos | len << 8 */                                                 \
    X(EXTRACT, 1, 1, 1) /* d = (a >> pos) & mask(len), imm = pos | len << 8 */                     \
    X(SETCOND, 1, 2, 0) /* d = a cond b ? 1 : 0; cond in op->cond */                               \
    X(MOVCOND, 1, 4, 0) /* d = (a cond b) ? c : e  (args: d, a, b, c, e) */                        \
    X(MULU2, 2, 2, 0)   /* (lo, hi) = a * b unsigned, full width */                                \
    X(MULS2, 2, 2, 0)   /* signed */                                                               \
    X(CLZ, 1, 2, 0)     /* d = a ? clz(a) : b */                                                   \
    X(CTZ, 1, 2, 0)     /* d = a ? ctz(a) : b */                                                   \
    X(CTPOP, 1, 1, 0)                                                                              \
    X(BSWAP, 1, 1, 0)      /* whole type width */                                                  \
    X(QLD, 1, 1, 1)        /* d = guest memory[a] through the software MMU; imm = IR_MEM_* */      \
    X(QST, 0, 2, 1)        /* guest memory[b] = a; imm = IR_MEM_* (args: value, address) */        \
    X(LDENV, 1, 0, 1)      /* d = *(u64 *)(env + imm): state not modelled as a global */           \
    X(STENV, 0, 1, 1)      /* *(u64 *)(env + imm) = a */                                           \
    X(CALL, 1, 4, 1)       /* d = helpers[imm](env, a, b, c, e); unused args are IR_NO_TEMP,       \
                              d may be IR_NO_TEMP */                                               \
    X(FPENV, 0, 0, 1)      /* the host's FP unit takes the guest's controls for FPOP (fpenv.h):    \
                              imm = env offset of the guest MXCSR | of struct ir_fp_live << 32 */  \
    X(FPOP, 1, 2, 1)       /* d = a with its low lane replaced by the x86 scalar SSE instruction   \
                              imm (fpenv.h) of lanes a, b, under FPENV; x86-64 hosts only */       \
    X(VOP, 1, 4, 1)        /* d = one 64-bit half of the x86 128-bit SSE instruction imm (vecop.h) \
                              of a = {a, b} and {c, e}; FP forms under FPENV; x86-64 hosts only */ \
    X(LABEL, 0, 0, 1)      /* imm = label id */                                                    \
    X(BR, 0, 0, 1)         /* goto label imm */                                                    \
    X(BRCOND, 0, 2, 1)     /* if (a cond b) goto label imm */                                      \
    X(INSN_START, 0, 0, 1) /* marker: a guest instruction begins at guest pc imm (debug logs;      \
                              backends ignore it. Precise guest state at faults comes from         \
                              the front end writing globals, kept by the dead-store rule) */       \
    X(GOTO_TB, 0, 0, 1)    /* leave the block to a chained successor, slot imm                     \
                              (< IR_MAX_GOTO_SLOTS) */                                             \
    X(LOOP_TB, 0, 0, 1)    /* the block jumps to its own start: continue at label                  \
                              IR_LOOP_LABEL(imm) (at the start, after any entry check) while no    \
                              interrupt or timer is due, else as GOTO_TB IR_LOOP_SLOT(imm). Only   \
                              globals are live there (no local lives across it) */                 \
    X(EXIT_TB, 0, 0, 1)    /* leave the block; imm = enum ir_exit_reason */

enum ir_opcode {
#define IR_OPC_ENUM(name, nout, nin, imm) IR_##name,
    IR_OPCODES(IR_OPC_ENUM)
#undef IR_OPC_ENUM
        IR_NR_OPCODES
};

/* GOTO_TB slots a block may use: two for its last jump, more for the side exits of a block
 * that goes on past conditional branches. */
#define IR_MAX_GOTO_SLOTS 6

#define IR_LOOP_IMM(label, slot) ((uint64_t)(label) | (uint64_t)(slot) << 16)
#define IR_LOOP_LABEL(imm) ((uint32_t)((imm)&0xffff))
#define IR_LOOP_SLOT(imm) ((unsigned)((imm) >> 16))

enum ir_exit_reason {
    IR_EXIT_NEXT,      /* look up the next block at env's guest pc */
    IR_EXIT_INTERRUPT, /* an interrupt/stop request was seen at block entry */
    IR_EXIT_HELPER,    /* a helper asked to leave (exception raised, I/O, halt): see env */
};

#define IR_MAX_ARGS 5

struct ir_op {
    uint8_t opc;  /* enum ir_opcode */
    uint8_t type; /* enum ir_type */
    uint8_t cond; /* enum ir_cond for SETCOND/MOVCOND/BRCOND */
    uint8_t pad;
    ir_temp args[IR_MAX_ARGS]; /* outputs first, then inputs */
    uint64_t imm;
};

enum ir_temp_kind {
    IR_TEMP_LOCAL,  /* dies at the end of the block (its value is undefined at block entry) */
    IR_TEMP_GLOBAL, /* lives in env at `env_offset`; read/written in place */
    IR_TEMP_CONST,  /* immutable constant (value), created by ir_const() */
};

struct ir_temp_info {
    uint8_t kind; /* enum ir_temp_kind */
    uint8_t type;
    uint16_t pad;
    uint32_t env_offset; /* globals */
    uint64_t value;      /* constants */
    const char *name;    /* globals, for the printer */
};

/* A C helper callable from IR. Helpers receive env first; the flags let the optimiser
 * reason about them. */
typedef uint64_t (*ir_helper_fn)(void *env, uint64_t a, uint64_t b, uint64_t c, uint64_t d);

#define IR_HELPER_NO_SIDE_EFFECTS 1u /* pure function of its arguments: may be removed if dead */
#define IR_HELPER_READS_GLOBALS 2u   /* reads guest state in env: globals must be up to date */
#define IR_HELPER_WRITES_GLOBALS 4u  /* writes guest state: cached values are stale after */
#define IR_HELPER_MAY_EXIT 8u        /* may raise a guest exception (leaves the block) */

struct ir_helper {
    ir_helper_fn fn;
    const char *name;
    uint32_t flags;
};

#define IR_MAX_OPS 4096
#define IR_MAX_TEMPS 1024
#define IR_MAX_LABELS 256

struct ir_block {
    struct ir_op ops[IR_MAX_OPS];
    uint32_t nr_ops;
    struct ir_temp_info temps[IR_MAX_TEMPS];
    uint32_t nr_temps;
    uint32_t nr_globals; /* globals occupy temps [0, nr_globals) */
    uint32_t nr_labels;
    const struct ir_helper *helpers; /* table indexed by CALL's imm */
    uint32_t nr_helpers;
    bool overflow; /* ran out of ops/temps/labels: the front end ends the block earlier */
};

/* --- builder ---------------------------------------------------------------------------- */

/* Start an empty block with the given globals (env offsets + names) and helper table. */
void ir_block_init(struct ir_block *b, const struct ir_temp_info *globals, uint32_t nr_globals,
                   const struct ir_helper *helpers, uint32_t nr_helpers);
ir_temp ir_new_temp(struct ir_block *b, enum ir_type type);
ir_temp ir_const(struct ir_block *b, enum ir_type type, uint64_t value);
ir_label ir_new_label(struct ir_block *b);

/* Append an op (the generic form; typed wrappers below). Returns its index or -1 on
 * overflow (sets b->overflow). */
int ir_emit(struct ir_block *b, enum ir_opcode opc, enum ir_type type, enum ir_cond cond,
            const ir_temp *args, unsigned nargs, uint64_t imm);

void ir_mov(struct ir_block *b, enum ir_type t, ir_temp d, ir_temp a);
void ir_movi(struct ir_block *b, enum ir_type t, ir_temp d, uint64_t imm);
void ir_binop(struct ir_block *b, enum ir_opcode opc, enum ir_type t, ir_temp d, ir_temp a,
              ir_temp c);
void ir_unop(struct ir_block *b, enum ir_opcode opc, enum ir_type t, ir_temp d, ir_temp a);
void ir_setcond(struct ir_block *b, enum ir_type t, enum ir_cond cond, ir_temp d, ir_temp a,
                ir_temp c);
void ir_movcond(struct ir_block *b, enum ir_type t, enum ir_cond cond, ir_temp d, ir_temp a,
                ir_temp c, ir_temp vtrue, ir_temp vfalse);
void ir_deposit(struct ir_block *b, enum ir_type t, ir_temp d, ir_temp a, ir_temp v, unsigned pos,
                unsigned len);
void ir_extract(struct ir_block *b, enum ir_type t, ir_temp d, ir_temp a, unsigned pos,
                unsigned len);
void ir_mul2(struct ir_block *b, bool is_signed, enum ir_type t, ir_temp lo, ir_temp hi, ir_temp a,
             ir_temp c);
void ir_qld(struct ir_block *b, enum ir_type t, ir_temp d, ir_temp addr, unsigned memop);
void ir_qst(struct ir_block *b, enum ir_type t, ir_temp value, ir_temp addr, unsigned memop);
void ir_ldenv(struct ir_block *b, ir_temp d, uint32_t offset);
void ir_fpenv(struct ir_block *b, uint32_t mxcsr_offset, uint32_t live_offset);
void ir_fpop(struct ir_block *b, ir_temp d, ir_temp a, ir_temp c, uint32_t insn);
void ir_vop(struct ir_block *b, ir_temp d, ir_temp a_lo, ir_temp a_hi, ir_temp b_lo, ir_temp b_hi,
            uint32_t insn);
void ir_stenv(struct ir_block *b, ir_temp a, uint32_t offset);
/* d = helper(env, args...); pass IR_NO_TEMP for unused args / no result. */
void ir_call(struct ir_block *b, unsigned helper, ir_temp d, ir_temp a0, ir_temp a1, ir_temp a2,
             ir_temp a3);
void ir_label_here(struct ir_block *b, ir_label l);
void ir_br(struct ir_block *b, ir_label l);
void ir_brcond(struct ir_block *b, enum ir_type t, enum ir_cond cond, ir_temp a, ir_temp c,
               ir_label l);
void ir_insn_start(struct ir_block *b, uint64_t guest_pc);
void ir_goto_tb(struct ir_block *b, unsigned slot);
void ir_loop_tb(struct ir_block *b, ir_label head, unsigned slot);
void ir_exit_tb(struct ir_block *b, enum ir_exit_reason reason);

/* --- introspection ---------------------------------------------------------------------- */

struct ir_opcode_info {
    const char *name;
    uint8_t nr_out, nr_in;
    bool has_imm;
};
const struct ir_opcode_info *ir_opcode_info(enum ir_opcode opc);
const char *ir_cond_name(enum ir_cond cond);
/* Evaluate cond on two values of the given type (shared by folding and backends). */
bool ir_cond_eval(enum ir_cond cond, enum ir_type t, uint64_t a, uint64_t b);

/* Print the block, one op per line ("-d ir" debug logs). Returns bytes written (like
 * snprintf, truncating safely). */
size_t ir_print(const struct ir_block *b, char *buf, size_t len);

/* --- analysis for backends -------------------------------------------------------------- */

enum ir_temp_use {
    IR_USE_NONE,           /* never referenced: needs no storage */
    IR_USE_DEFINED,        /* referenced; a local among these is written before any read */
    IR_USE_READ_UNDEFINED, /* a local some path may read before writing: start it as 0 */
};
/* Fills use[0 .. nr_temps) with enum ir_temp_use; *call_needs_zero says a CALL leaves an
 * argument out (backends pass 0 for it). Returns false when an op is unknown, references a
 * temp the block does not have, or writes a constant. */
bool ir_temp_uses(const struct ir_block *b, uint8_t *use, bool *call_needs_zero);
/* DEPOSIT/EXTRACT's imm names a field inside the op's width. */
bool ir_field_valid(const struct ir_op *op);
/* A QLD/QST memop: size 1, 2, 4 or 8, optionally IR_MEM_SIGN. */
bool ir_memop_valid(uint64_t memop);

/* --- optimiser -------------------------------------------------------------------------- */

/* Constant folding, copy propagation and dead code elimination (incl. dead stores to
 * globals that are overwritten later in the block with no read, no helper that reads
 * globals and no op that may leave the block in between). */
void ir_optimize(struct ir_block *b);
/* Part of ir_optimize: a local copied into a global is computed into the global (coalesce.c). */
void ir_coalesce_copies(struct ir_block *b);

#endif
