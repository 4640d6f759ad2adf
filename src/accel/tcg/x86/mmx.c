/* MMX for the translator (Intel SDM vol. 1 ch. 9, vol. 3A 13): MM0-7 are the 64-bit
 * mantissas of the physical x87 registers R0-R7, so the MMX state is the x87 state and
 * FXSAVE/FSAVE/FRSTOR need nothing of their own. Every MMX instruction except EMMS (fpu.c)
 * first delivers a pending unmasked x87 exception (#MF, under CR0.NE as for x87 instructions),
 * and once it can no longer fault leaves TOP = 0 and every tag valid; writing MMi also sets
 * bits 79:64 of R(i) to all ones (an x87 NaN), as hardware does.
 *
 * CR0.EM makes them #UD and CR0.TS #NM; they do not depend on CR4.OSFXSR, nor do the 64-bit
 * integer forms SSE/SSE2 added (PAVGB, PSHUFW, MASKMOVQ, PADDQ...: SDM vol. 3A, interrupt 6).
 * The forms that also use an XMM register (CVTPI2PS..., MOVQ2DQ, MOVDQ2Q) do, and run in sse.c
 * with the register file below. The lane arithmetic is sse.c's, on 64-bit operands. */
#include "accel/tcg/fpu_state.h"
#include "accel/tcg/tcg_internal.h"
#include "accel/tcg/x86/fpu.h"
#include "accel/tcg/x86/helpers.h"

#include <string.h>

#define FSW_ES 0x0080u
#define CR0_EM (1ULL << 2)
#define CR0_TS (1ULL << 3)

struct mmx {
    struct tcg_cpu *cpu;
    uint64_t addr;
    unsigned reg, rm; /* ModRM fields with REX.R/B: GPR numbers; MM numbers are & 7 */
    unsigned imm;
    bool mem, w64;
};

/* --- the register file ------------------------------------------------------------------------ */

uint64_t mmx_get(const struct tcg_cpu *cpu, unsigned i)
{
    uint64_t v;
    memcpy(&v, &cpu->fpu.st[i & 7], 8);
    return v;
}

/* Bytes, not long double arithmetic: the value is an x87 NaN the host FPU must not touch. */
void mmx_set(struct tcg_cpu *cpu, unsigned i, uint64_t v)
{
    static const uint16_t ones = 0xffff;
    uint8_t *r = (uint8_t *)&cpu->fpu.st[i & 7];
    memcpy(r, &v, 8);
    memcpy(r + 8, &ones, 2);
}

void mmx_check_pending(struct tcg_cpu *cpu)
{
    if ((cpu->fpu.fsw & FSW_ES) && (cpu->cr0 & X86_CR0_NE))
        tcg_raise_exception(cpu, X86_EXC_MF, 0, false);
}

void mmx_enter(struct tcg_cpu *cpu)
{
    cpu->fpu.top = 0;
    cpu->fpu.ftw = 0xff; /* abridged tag: all valid (FSAVE derives the full tags from it) */
}

/* NP 0F 60-7F (but EMMS, which fpu.c does), C4, C5, D1-FF: the forms decoded without a
 * mandatory prefix there are MMX forms (the decoder rejects the rest). */
bool x86_mmx_form(uint64_t desc)
{
    unsigned opc = FD_OPCODE(desc);
    if (FD_KIND(desc) != FK_SSE || FD_MAP(desc) != X86_MAP_0F || FD_MP(desc) != X86_MP_NONE)
        return false;
    return (opc >= 0x60 && opc <= 0x7f && opc != 0x77) || opc == 0xc4 || opc == 0xc5 || opc >= 0xd0;
}

/* --- operands --------------------------------------------------------------------------------- */

static noreturn void mmx_ud(struct mmx *m)
{
    tcg_raise_exception(m->cpu, X86_EXC_UD, 0, false);
}

/* The mm/m64 (or m32, m16) source. */
static uint64_t load_src(struct mmx *m, unsigned bytes)
{
    if (!m->mem)
        return mmx_get(m->cpu, m->rm);
    uint64_t v = 0;
    fpu_load_bytes(m->cpu, m->addr, &v, bytes);
    return v;
}

/* The r/m32 (r/m64 with REX.W) source of MOVD/MOVQ, PINSRW (bytes 2). */
static uint64_t load_gpr_src(struct mmx *m, unsigned bytes)
{
    uint64_t v = m->mem ? mmu_load(m->cpu, m->addr, bytes) : m->cpu->gpr[m->rm];
    return bytes == 8 ? v : v & ((1ULL << (bytes * 8)) - 1);
}

static void store(struct mmx *m, uint64_t v, unsigned bytes)
{
    fpu_store_bytes(m->cpu, m->addr, &v, bytes);
}

/* --- instructions ----------------------------------------------------------------------------- */

static uint64_t pshufw(uint64_t v, unsigned imm)
{
    uint64_t r = 0;
    for (unsigned i = 0; i < 4; i++)
        r |= (v >> (16 * ((imm >> (2 * i)) & 3)) & 0xffff) << (16 * i);
    return r;
}

static uint64_t pmovmskb(uint64_t v)
{
    uint64_t r = 0;
    for (unsigned i = 0; i < 8; i++)
        r |= (v >> (8 * i + 7) & 1) << i;
    return r;
}

/* MASKMOVQ: the bytes of mm1 whose byte in mm2 has its top bit set, to DS:rDI. */
static void maskmovq(struct mmx *m)
{
    uint64_t v = mmx_get(m->cpu, m->reg), mask = mmx_get(m->cpu, m->rm);
    for (unsigned i = 0; i < 8; i++)
        if (mask >> (8 * i + 7) & 1) {
            uint8_t b = (uint8_t)(v >> (8 * i));
            fpu_store_bytes(m->cpu, m->addr + i, &b, 1);
        }
}

/* 0F 71-73 /2 /4 /6 ib: the shifts by an immediate are the shifts by a register of D1-F3. */
static void shift_imm(struct mmx *m, unsigned opc, unsigned modrm)
{
    static const uint8_t base[8] = {0, 0, 0xd0, 0, 0xe0, 0, 0xf0, 0};
    uint64_t v = mmx_get(m->cpu, m->rm);
    unsigned op = base[(modrm >> 3) & 7] + (opc - 0x70);
    if (!base[(modrm >> 3) & 7] || !sse_int_op64(op, &v, m->imm))
        mmx_ud(m);
    mmx_set(m->cpu, m->rm, v);
}

/* Moves between MM registers, general registers and memory. */
static bool moves(struct mmx *m, unsigned opc)
{
    struct tcg_cpu *cpu = m->cpu;
    unsigned bytes = m->w64 ? 8 : 4;
    switch (opc) {
    case 0x6e:
        mmx_set(cpu, m->reg, load_gpr_src(m, bytes));
        return true; /* MOVD/MOVQ mm, r/m */
    case 0x7e: {     /* MOVD/MOVQ r/m, mm: a 32-bit GPR destination is zero-extended */
        uint64_t v = mmx_get(cpu, m->reg) & (m->w64 ? ~0ULL : 0xffffffffULL);
        if (m->mem)
            store(m, v, bytes);
        else
            cpu->gpr[m->rm] = v;
        return true;
    }
    case 0x6f:
        mmx_set(cpu, m->reg, load_src(m, 8));
        return true; /* MOVQ mm, mm/m64 */
    case 0x7f:       /* MOVQ mm/m64, mm */
    case 0xe7:       /* MOVNTQ m64, mm */
        if (m->mem)
            store(m, mmx_get(cpu, m->reg), 8);
        else
            mmx_set(cpu, m->rm, mmx_get(cpu, m->reg));
        return true;
    }
    return false;
}

/* The SSE additions that are not lane arithmetic: PSHUFW PINSRW PEXTRW PMOVMSKB MASKMOVQ. */
static bool sse_forms(struct mmx *m, unsigned opc)
{
    struct tcg_cpu *cpu = m->cpu;
    switch (opc) {
    case 0x70:
        mmx_set(cpu, m->reg, pshufw(load_src(m, 8), m->imm));
        return true;
    case 0xc4: { /* PINSRW mm, r32/m16, imm8 */
        unsigned sh = 16 * (m->imm & 3);
        uint64_t v = mmx_get(cpu, m->reg) & ~(0xffffULL << sh);
        mmx_set(cpu, m->reg, v | load_gpr_src(m, 2) << sh);
        return true;
    }
    case 0xc5:
        cpu->gpr[m->reg] = mmx_get(cpu, m->rm) >> (16 * (m->imm & 3)) & 0xffff;
        return true;
    case 0xd7:
        cpu->gpr[m->reg] = pmovmskb(mmx_get(cpu, m->rm));
        return true;
    case 0xf7:
        maskmovq(m);
        return true;
    }
    return false;
}

static void mmx_exec(struct mmx *m, unsigned opc, unsigned modrm)
{
    if (opc >= 0x71 && opc <= 0x73) {
        shift_imm(m, opc, modrm);
        return;
    }
    if (moves(m, opc) || sse_forms(m, opc))
        return;
    /* PUNPCKL* read only 32 bits of memory. */
    uint64_t v = mmx_get(m->cpu, m->reg), b = load_src(m, opc <= 0x62 ? 4 : 8);
    if (!sse_int_op64(opc, &v, b))
        mmx_ud(m);
    mmx_set(m->cpu, m->reg, v);
}

uint64_t h_mmx(void *env, uint64_t desc, uint64_t addr, uint64_t c, uint64_t d)
{
    (void)c, (void)d;
    struct tcg_cpu *cpu = env;
    tcg_fp_release(cpu); /* CVTPI2PS and friends use the host's FP unit */
    struct mmx m = {.cpu = cpu,
                    .addr = addr,
                    .reg = FD_REG(desc),
                    .rm = FD_RM(desc),
                    .imm = FD_IMM8(desc),
                    .mem = FD_HAS_MEM(desc),
                    .w64 = FD_REX_W(desc)};
    if (cpu->cr0 & CR0_EM)
        mmx_ud(&m);
    if (cpu->cr0 & CR0_TS)
        tcg_raise_exception(cpu, X86_EXC_NM, 0, false);
    mmx_check_pending(cpu);
    mmx_exec(&m, FD_OPCODE(desc), FD_MODRM(desc));
    mmx_enter(cpu);
    return 0;
}
