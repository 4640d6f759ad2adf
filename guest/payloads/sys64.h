/* Selectors and gate attributes of sys64.S (the 64-bit conformance payloads' kernel). */
#ifndef QUOKKA_SYS64_H
#define QUOKKA_SYS64_H
#define SYS_KCODE    0x08
#define SYS_KDATA    0x10
#define SYS_UCODE32  0x1b
#define SYS_UDATA    0x23
#define SYS_UCODE64  0x2b
#define SYS_TSS      0x30
#define GATE_INT     0x8e00          /* P, DPL 0, 64-bit interrupt gate */
#define GATE_TRAP    0x8f00          /* P, DPL 0, 64-bit trap gate */
#define GATE_DPL3    0x6000
#define GATE_NP      0x8000          /* xor to clear P */
#define SYS_VEC_BACK 0x81            /* sys64_back's vector */
#endif
