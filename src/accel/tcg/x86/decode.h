/* x86 instruction decoder for the translator front end: bytes -> struct x86_decoded_insn.
 *
 * The decoder only parses: it never touches vCPU state, so the translator decides what a
 * decoded instruction means at the current CPL/CR0/CPUID (e.g. SYSCALL outside long mode). */
#ifndef QUOKKA_ACCEL_TCG_X86_DECODE_H
#define QUOKKA_ACCEL_TCG_X86_DECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define X86_MAX_INSN_LENGTH 15

enum x86_cpu_mode { X86_MODE_16, X86_MODE_32, X86_MODE_64 }; /* 64 = long mode with CS.L */

enum x86_decode_status {
    X86_DECODE_NEED_MORE = -1, /* ran out of bytes before 15: fetch more and retry */
    X86_DECODE_INVALID = -2,   /* undefined in this mode or longer than 15 bytes: #UD */
};

/* Mnemonics. X(enum suffix, text, class). Generic entries (SSE, X87, VEX) cover whole families
 * that later work dispatches on opcode + mandatory prefix. */
/* clang-format off */
#define X86_MNEMONICS(X) \
    X(INVALID, "(bad)", INT) X(ADD, "add", INT) X(OR, "or", INT) X(ADC, "adc", INT) \
    X(SBB, "sbb", INT) X(AND, "and", INT) X(SUB, "sub", INT) X(XOR, "xor", INT) \
    X(CMP, "cmp", INT) X(TEST, "test", INT) X(INC, "inc", INT) X(DEC, "dec", INT) \
    X(NEG, "neg", INT) X(NOT, "not", INT) X(MUL, "mul", INT) X(IMUL, "imul", INT) \
    X(DIV, "div", INT) X(IDIV, "idiv", INT) X(ROL, "rol", INT) X(ROR, "ror", INT) \
    X(RCL, "rcl", INT) X(RCR, "rcr", INT) X(SHL, "shl", INT) X(SHR, "shr", INT) \
    X(SAR, "sar", INT) X(SHLD, "shld", INT) X(SHRD, "shrd", INT) X(BT, "bt", INT) \
    X(BTS, "bts", INT) X(BTR, "btr", INT) X(BTC, "btc", INT) X(BSF, "bsf", INT) \
    X(BSR, "bsr", INT) X(TZCNT, "tzcnt", INT) X(LZCNT, "lzcnt", INT) X(POPCNT, "popcnt", INT) \
    X(MOV, "mov", INT) X(MOVSX, "movsx", INT) X(MOVZX, "movzx", INT) X(MOVSXD, "movsxd", INT) \
    X(CBW, "cbw", INT) /* CBW/CWDE/CDQE by opsize */ \
    X(CWD, "cwd", INT) /* CWD/CDQ/CQO by opsize */ \
    X(LEA, "lea", INT) X(XCHG, "xchg", INT) X(XADD, "xadd", INT) X(CMPXCHG, "cmpxchg", INT) \
    X(CMPXCHG8B, "cmpxchg8b", INT) X(CMPXCHG16B, "cmpxchg16b", INT) X(BSWAP, "bswap", INT) \
    X(MOVBE, "movbe", INT) X(CRC32, "crc32", INT) X(ADCX, "adcx", INT) X(ADOX, "adox", INT) \
    X(PUSH, "push", INT) X(POP, "pop", INT) X(PUSHF, "pushf", INT) X(POPF, "popf", INT) \
    X(PUSHA, "pusha", INT) X(POPA, "popa", INT) X(CALL, "call", INT) X(CALLF, "lcall", INT) \
    X(RET, "ret", INT) X(RETF, "retf", INT) X(ENTER, "enter", INT) X(LEAVE, "leave", INT) \
    X(JCC, "j", INT) /* cc in insn->cc */ \
    X(JMP, "jmp", INT) X(JMPF, "ljmp", INT) X(JRCXZ, "jrcxz", INT) X(LOOP, "loop", INT) \
    X(LOOPE, "loope", INT) X(LOOPNE, "loopne", INT) \
    X(SETCC, "set", INT) /* cc in insn->cc */ \
    X(CMOVCC, "cmov", INT) /* cc in insn->cc */ \
    X(LAHF, "lahf", INT) X(SAHF, "sahf", INT) X(CLC, "clc", INT) X(STC, "stc", INT) \
    X(CMC, "cmc", INT) X(CLD, "cld", INT) X(STD, "std", INT) X(MOVS, "movs", INT) \
    X(CMPS, "cmps", INT) X(STOS, "stos", INT) X(LODS, "lods", INT) X(SCAS, "scas", INT) \
    X(INS, "ins", INT) X(OUTS, "outs", INT) X(XLAT, "xlat", INT) X(NOP, "nop", INT) \
    X(PAUSE, "pause", INT) X(UD0, "ud0", INT) X(UD1, "ud1", INT) X(UD2, "ud2", INT) \
    X(DAA, "daa", INT) X(DAS, "das", INT) X(AAA, "aaa", INT) X(AAS, "aas", INT) \
    X(AAM, "aam", INT) X(AAD, "aad", INT) X(SALC, "salc", INT) X(BOUND, "bound", INT) \
    X(ARPL, "arpl", SYSTEM) X(LDS, "lds", INT) X(LES, "les", INT) X(LFS, "lfs", INT) \
    X(LGS, "lgs", INT) X(LSS, "lss", INT) X(CPUID, "cpuid", SYSTEM) X(RDTSC, "rdtsc", SYSTEM) \
    X(RDTSCP, "rdtscp", SYSTEM) X(RDPID, "rdpid", SYSTEM) X(RDPMC, "rdpmc", SYSTEM) \
    X(RDMSR, "rdmsr", SYSTEM) X(WRMSR, "wrmsr", SYSTEM) X(IN, "in", SYSTEM) \
    X(OUT, "out", SYSTEM) X(HLT, "hlt", SYSTEM) X(INT, "int", SYSTEM) X(INT1, "int1", SYSTEM) \
    X(INT3, "int3", SYSTEM) X(INTO, "into", SYSTEM) X(IRET, "iret", SYSTEM) \
    X(CLI, "cli", SYSTEM) X(STI, "sti", SYSTEM) X(SYSCALL, "syscall", SYSTEM) \
    X(SYSRET, "sysret", SYSTEM) X(SYSENTER, "sysenter", SYSTEM) X(SYSEXIT, "sysexit", SYSTEM) \
    X(SWAPGS, "swapgs", SYSTEM) X(LGDT, "lgdt", SYSTEM) X(LIDT, "lidt", SYSTEM) \
    X(SGDT, "sgdt", SYSTEM) X(SIDT, "sidt", SYSTEM) X(LLDT, "lldt", SYSTEM) \
    X(SLDT, "sldt", SYSTEM) X(LTR, "ltr", SYSTEM) X(STR, "str", SYSTEM) X(VERR, "verr", SYSTEM) \
    X(VERW, "verw", SYSTEM) X(LAR, "lar", SYSTEM) X(LSL, "lsl", SYSTEM) X(LMSW, "lmsw", SYSTEM) \
    X(SMSW, "smsw", SYSTEM) X(CLTS, "clts", SYSTEM) X(INVLPG, "invlpg", SYSTEM) \
    X(INVPCID, "invpcid", SYSTEM) \
    X(MOV_CR, "mov", SYSTEM) /* MOV to/from CR */ \
    X(MOV_DR, "mov", SYSTEM) /* MOV to/from DR */ \
    X(MOV_SREG, "mov", SYSTEM) /* MOV to/from segment register */ \
    X(CLFLUSH, "clflush", SYSTEM) X(CLFLUSHOPT, "clflushopt", SYSTEM) X(CLWB, "clwb", SYSTEM) \
    X(LFENCE, "lfence", SYSTEM) X(MFENCE, "mfence", SYSTEM) X(SFENCE, "sfence", SYSTEM) \
    X(PREFETCH, "prefetch", SYSTEM) X(PREFETCHW, "prefetchw", SYSTEM) \
    X(PREFETCHNTA, "prefetchnta", SYSTEM) X(PREFETCHT0, "prefetcht0", SYSTEM) \
    X(PREFETCHT1, "prefetcht1", SYSTEM) X(PREFETCHT2, "prefetcht2", SYSTEM) \
    X(RDRAND, "rdrand", SYSTEM) X(RDSEED, "rdseed", SYSTEM) X(XGETBV, "xgetbv", SYSTEM) \
    X(XSETBV, "xsetbv", SYSTEM) X(FXSAVE, "fxsave", SYSTEM) X(FXRSTOR, "fxrstor", SYSTEM) \
    X(LDMXCSR, "ldmxcsr", SYSTEM) X(STMXCSR, "stmxcsr", SYSTEM) X(XSAVE, "xsave", SYSTEM) \
    X(XRSTOR, "xrstor", SYSTEM) X(XSAVEOPT, "xsaveopt", SYSTEM) X(XSAVEC, "xsavec", SYSTEM) \
    X(XSAVES, "xsaves", SYSTEM) X(XRSTORS, "xrstors", SYSTEM) X(RDFSBASE, "rdfsbase", SYSTEM) \
    X(RDGSBASE, "rdgsbase", SYSTEM) X(WRFSBASE, "wrfsbase", SYSTEM) \
    X(WRGSBASE, "wrgsbase", SYSTEM) X(WBINVD, "wbinvd", SYSTEM) X(INVD, "invd", SYSTEM) \
    X(RSM, "rsm", SYSTEM) X(MONITOR, "monitor", SYSTEM) X(MWAIT, "mwait", SYSTEM) \
    X(CLAC, "clac", SYSTEM) X(STAC, "stac", SYSTEM) X(VMCALL, "vmcall", SYSTEM) \
    X(VMMCALL, "vmmcall", SYSTEM) X(WAIT, "wait", X87) X(SSE, "sse", SSE) X(X87, "x87", X87) \
    X(VEX, "vex", VEX)
/* clang-format on */

enum x86_mnemonic {
#define X86_MN_ENUM(name, text, cls) X86_MN_##name,
    X86_MNEMONICS(X86_MN_ENUM)
#undef X86_MN_ENUM
        X86_MN_COUNT
};

enum x86_insn_class {
    X86_CLASS_INT,    /* general-purpose integer instructions */
    X86_CLASS_SYSTEM, /* privileged, I/O, cache/TLB, state save: translator usually helpers */
    X86_CLASS_SSE,    /* MMX/SSE1-4.2/AES/PCLMUL/SHA: dispatch on map + opcode + mandatory prefix */
    X86_CLASS_X87,    /* D8-DF (dispatch on opcode + ModRM) and WAIT */
    X86_CLASS_VEX,    /* VEX/EVEX encoded: length only, AVX is not advertised so #UD */
};

enum x86_opcode_map { X86_MAP_ONE_BYTE, X86_MAP_0F, X86_MAP_0F38, X86_MAP_0F3A };

/* Which of 66/F3/F2 acted as the mandatory prefix of an SSE-style opcode (F2/F3 beat 66). */
enum x86_mandatory_prefix { X86_MP_NONE, X86_MP_66, X86_MP_F3, X86_MP_F2 };

#define X86_SEG_NONE 0xff /* no segment override; otherwise enum seg_index (SEG_ES..SEG_GS) */
#define X86_NO_REG 0xff   /* no base / no index */
#define X86_RIP_BASE 0xfe /* RIP-relative base (EIP-relative when addr_size is 32) */

struct x86_prefixes {
    bool opsize;   /* 0x66 seen */
    bool addrsize; /* 0x67 seen */
    bool lock;     /* 0xF0 */
    bool rep;      /* 0xF3 (REP/REPE) */
    bool repne;    /* 0xF2 */
    uint8_t seg;   /* last segment override or X86_SEG_NONE */
    uint8_t rex;   /* the REX byte actually applied (0 if none) */
    bool rex_w, rex_r, rex_x, rex_b;
    uint8_t mandatory; /* enum x86_mandatory_prefix, meaningful for SSE and F3/F2-selected ops */
    uint8_t count;     /* legacy + REX prefix bytes before the opcode (VEX/EVEX not included) */
};

enum x86_reg_class {
    X86_RC_GPR,       /* reg 0..15 at the operand's size */
    X86_RC_GPR8_HIGH, /* AH, CH, DH, BH: reg 0..3 names bits 8..15 of RAX..RBX */
    X86_RC_SEG,       /* enum seg_index */
    X86_RC_CR,
    X86_RC_DR,
};

enum x86_operand_kind {
    X86_OPND_NONE,
    X86_OPND_REG,   /* reg_class + reg, size bits */
    X86_OPND_MEM,   /* insn->mem, size bits (0 = not data-sized, e.g. LEA, LGDT) */
    X86_OPND_IMM,   /* insn->imm (second immediate of ENTER: insn->imm2) */
    X86_OPND_REL,   /* branch target = next RIP + insn->imm */
    X86_OPND_FAR,   /* ptr16:16/32: insn->far_selector : insn->imm */
    X86_OPND_CONST, /* the implicit constant 1 of D0-D3 shifts/rotates */
};

struct x86_operand {
    uint8_t kind;      /* enum x86_operand_kind */
    uint8_t reg_class; /* enum x86_reg_class when kind == REG */
    uint8_t reg;
    uint8_t size;      /* bits */
    uint8_t which_imm; /* IMM/REL: 0 = insn->imm, 1 = insn->imm2 (ENTER's nesting level) */
};

struct x86_mem {
    uint8_t base;      /* GPR 0..15, X86_RIP_BASE or X86_NO_REG (16-bit: BX/BP/SI/DI numbers) */
    uint8_t index;     /* GPR 0..15 or X86_NO_REG */
    uint8_t scale;     /* 1, 2, 4, 8 */
    uint8_t seg;       /* effective segment: override, else SS for RSP/RBP bases, else DS */
    uint8_t addr_size; /* 16, 32, 64: effective address is truncated to this width */
    uint8_t disp_size; /* bytes of displacement/moffs in the encoding */
    int64_t disp;      /* sign-extended (moffs: zero-extended) */
};

struct x86_decoded_insn {
    uint8_t length;
    uint8_t mode;      /* enum x86_cpu_mode decoded for */
    uint16_t mnemonic; /* enum x86_mnemonic */
    uint8_t cls;       /* enum x86_insn_class */
    uint8_t map;       /* enum x86_opcode_map */
    uint8_t opcode;    /* opcode byte within map */
    uint8_t cc;        /* condition code 0-15 for Jcc/SETcc/CMOVcc (also low nibble otherwise) */
    uint8_t opsize;    /* effective operand size in bits: 8/16/32/64 (0: none, e.g. SSE/x87) */
    uint8_t addr_size; /* effective address size in bits */
    struct x86_prefixes prefix;

    bool has_modrm;
    uint8_t modrm, mod, reg, rm; /* reg and rm with REX.R / REX.B applied */
    bool has_sib;
    uint8_t sib, sib_scale, sib_index, sib_base; /* raw SIB fields (no REX applied) */

    bool has_mem; /* ModRM memory form or moffs */
    struct x86_mem mem;

    uint8_t imm_size;  /* bytes of the first immediate (also rel/far offset) in the encoding */
    uint8_t imm2_size; /* ENTER's second immediate (1) or far pointer selector (2) */
    /* imm: sign-extended to 64 bits for arithmetic/MOV/PUSH immediates and rel offsets,
     * zero-extended for ports, vectors, counts, RET/ENTER sizes, SSE imm8 and far offsets. */
    uint64_t imm;
    uint64_t imm2;
    uint16_t far_selector;

    uint8_t nr_operands;
    struct x86_operand operand[3]; /* destination first (Intel order) */

    uint8_t vex_size; /* VEX/EVEX prefix bytes (2, 3 or 4) when cls == X86_CLASS_VEX */
};

int x86_decode(const uint8_t *bytes, size_t avail, enum x86_cpu_mode mode,
               struct x86_decoded_insn *out);
int x86_format(const struct x86_decoded_insn *insn, char *buf, size_t len);
const char *x86_mnemonic_name(enum x86_mnemonic mnemonic);
enum x86_insn_class x86_mnemonic_class(enum x86_mnemonic mnemonic);

#endif
