/* Opcode attribute tables for the x86 decoder (internal to decode.c). */
#ifndef QUOKKA_ACCEL_TCG_X86_OPCODES_H
#define QUOKKA_ACCEL_TCG_X86_OPCODES_H

#include <stdint.h>

/* Operand specifications, named after the Intel SDM opcode-map notation. */
enum x86_opnd_spec {
    OS_NONE,
    OS_Eb,
    OS_Ew,
    OS_Ed,
    OS_Ev,
    OS_Ey, /* ModRM r/m: byte, word, dword, opsize, 32/64 by REX.W */
    OS_Gb,
    OS_Gw,
    OS_Gv,
    OS_Gy,  /* ModRM reg */
    OS_Mem, /* ModRM memory only, no data size (LEA, LGDT, ...) */
    OS_Mp,  /* far pointer in memory (LDS, far indirect JMP/CALL) */
    OS_Rn,  /* ModRM r/m register at native width (MOV CR/DR) */
    OS_Cd,
    OS_Dd,  /* control / debug register in ModRM reg */
    OS_Sw,  /* segment register in ModRM reg */
    OS_Ib,  /* imm8, zero-extended (ports, vectors, counts) */
    OS_sIb, /* imm8, sign-extended to operand size */
    OS_Iw,  /* imm16, zero-extended */
    OS_Iz,  /* imm16/32, sign-extended to operand size */
    OS_Iv,  /* imm16/32/64 (MOV r, imm) */
    OS_Jb,
    OS_Jz, /* relative branch offsets */
    OS_Ob,
    OS_Ov, /* moffs (address-size wide) */
    OS_Ap, /* ptr16:16/32 immediate far pointer */
    OS_AL,
    OS_rAX, /* rAX: AX/EAX/RAX at operand size */
    OS_CL,
    OS_DX,
    OS_ONE, /* DX: I/O port register; ONE: shift count 1 */
    OS_Zb,
    OS_Zv, /* register in opcode bits 0-2 (+REX.B) */
    OS_ES,
    OS_CS,
    OS_SS,
    OS_DS,
    OS_FS,
    OS_GS,
};

/* How the effective operand size is chosen. */
enum x86_opsize_rule {
    OSZ_INHERIT, /* group members: keep the opcode's rule */
    OSZ_V,       /* 16/32/64 from mode, 66 and REX.W */
    OSZ_B,       /* byte operation */
    OSZ_W,       /* always 16 */
    OSZ_D64,     /* long mode: 64 unless 66 (then 16); PUSH/POP and friends */
    OSZ_F64,     /* long mode: 64 (66 gives 16 as on AMD/capstone); near branches */
    OSZ_NATIVE,  /* 64 in long mode else 32, prefixes ignored (MOV CR/DR) */
    OSZ_Z,       /* 16/32 only, REX.W ignored (IN/OUT/INS/OUTS with eAX) */
    OSZ_NONE,    /* no integer operand size (SSE, x87, most system ops) */
};

enum x86_opcode_flags {
    XF_MODRM = 1u << 0,
    XF_INV64 = 1u << 1,   /* #UD in 64-bit mode */
    XF_ONLY64 = 1u << 2,  /* #UD outside 64-bit mode */
    XF_LOCK = 1u << 3,    /* LOCK allowed with a memory destination */
    XF_MEM = 1u << 4,     /* ModRM must name memory */
    XF_REG = 1u << 5,     /* ModRM must name a register */
    XF_GROUP = 1u << 6,   /* mnemonic comes from a group table indexed by ModRM.reg */
    XF_CC = 1u << 7,      /* condition code in opcode bits 0-3 */
    XF_SSE = 1u << 8,     /* SSE/MMX: validity from sse_forms, class SSE */
    XF_SPECIAL = 1u << 9, /* resolved by code in decode.c (prefix- or mode-dependent) */
    XF_X87 = 1u << 10,
    XF_IMM8 = 1u << 11,     /* SSE opcode takes an imm8 */
    XF_GRP_IMM = 1u << 12,  /* group member adds Ib/Iz (TEST in group 3) */
    XF_RM_IS_REG = 1u << 13 /* ModRM.mod is ignored: r/m always names a register (MOV CR/DR) */
};

/* sse_forms: 2 bits per mandatory prefix slot (none, 66, F3, F2). */
enum { SSE_NO = 0, SSE_ANY = 1, SSE_MEM = 2, SSE_REG = 3 };
#define SSE_FORMS(n, p66, f3, f2) ((n) | (p66) << 2 | (f3) << 4 | (f2) << 6)

struct x86_opcode_entry {
    uint8_t mnemonic; /* enum x86_mnemonic, or group id with XF_GROUP */
    uint8_t opsize;   /* enum x86_opsize_rule */
    uint16_t flags;
    uint8_t operand[3]; /* enum x86_opnd_spec */
    uint8_t sse_forms;
};

enum x86_group_id {
    GRP_1,
    GRP_1A,
    GRP_2,
    GRP_3,
    GRP_4,
    GRP_5,
    GRP_11,
    GRP_6,
    GRP_7_MEM,
    GRP_8,
    GRP_9_MEM,
    GRP_15_MEM,
    GRP_16,
    GRP_PREFETCH_0D,
    NR_GROUPS
};

/* Register forms of 0F 01 are identified by the whole ModRM byte. */
struct x86_modrm_form {
    uint8_t modrm;
    uint8_t mnemonic;
    uint16_t flags;
};

extern const struct x86_opcode_entry x86_one_byte_table[256];
extern const struct x86_opcode_entry x86_0f_table[256];
extern const struct x86_opcode_entry x86_0f38_table[256];
extern const struct x86_opcode_entry x86_0f3a_table[256];
extern const struct x86_opcode_entry x86_group_table[NR_GROUPS][8];
extern const struct x86_modrm_form x86_0f01_reg_forms[];
extern const uint32_t x86_nr_0f01_reg_forms;
extern const uint64_t x87_reg_form_valid[8];
extern const uint8_t x87_mem_form_valid[8];

#endif
