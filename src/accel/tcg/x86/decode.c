/* x86 instruction decoder: prefixes, opcode maps, ModRM/SIB, immediates, operand sizes.
 * Bytes come from guest memory and are untrusted: every read goes through fetch(), which never
 * reads past `avail` nor past the architectural 15-byte limit. */
#include "accel/tcg/x86/decode.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "accel/tcg/x86/opcodes.h"
#include "vm/cpu_state.h"

_Static_assert(X86_MN_COUNT <= 256, "opcode tables store mnemonics in a byte");

struct reader {
    const uint8_t *bytes;
    size_t avail;
    uint32_t pos;
    int status; /* 0 or the first X86_DECODE_* error */
};

static uint8_t fetch(struct reader *r)
{
    if (r->status)
        return 0;
    if (r->pos >= X86_MAX_INSN_LENGTH) {
        r->status = X86_DECODE_INVALID;
        return 0;
    }
    if (r->pos >= r->avail) {
        r->status = X86_DECODE_NEED_MORE;
        return 0;
    }
    return r->bytes[r->pos++];
}

/* Next byte without consuming it (VEX/LES disambiguation). */
static uint8_t peek(struct reader *r)
{
    uint8_t b = fetch(r);
    if (!r->status)
        r->pos--;
    return b;
}

static uint64_t fetch_le(struct reader *r, unsigned size)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < size; i++)
        v |= (uint64_t)fetch(r) << (8 * i);
    return v;
}

static uint64_t sign_extend(uint64_t v, unsigned bytes)
{
    if (bytes == 0 || bytes >= 8)
        return v;
    unsigned shift = 64 - 8 * bytes;
    return (uint64_t)((int64_t)(v << shift) >> shift);
}

static const struct {
    const char *name;
    uint8_t cls;
} mnemonic_info[X86_MN_COUNT] = {
#define X86_MN_INFO(name, text, cls) {text, X86_CLASS_##cls},
    X86_MNEMONICS(X86_MN_INFO)
#undef X86_MN_INFO
};

const char *x86_mnemonic_name(enum x86_mnemonic mnemonic)
{
    return (unsigned)mnemonic < X86_MN_COUNT ? mnemonic_info[mnemonic].name : "?";
}

enum x86_insn_class x86_mnemonic_class(enum x86_mnemonic mnemonic)
{
    return (unsigned)mnemonic < X86_MN_COUNT ? (enum x86_insn_class)mnemonic_info[mnemonic].cls
                                             : X86_CLASS_INT;
}

/* Decoder working state beyond what x86_insn exposes. */
struct decoder {
    struct reader r;
    struct x86_decoded_insn *insn;
    enum x86_cpu_mode mode;
    uint8_t last_rep; /* 0xF2 or 0xF3, whichever came last: it wins as mandatory prefix */
};

static unsigned address_size(enum x86_cpu_mode mode, bool prefix67)
{
    switch (mode) {
    case X86_MODE_64:
        return prefix67 ? 32 : 64;
    case X86_MODE_32:
        return prefix67 ? 16 : 32;
    default:
        return prefix67 ? 32 : 16;
    }
}

static unsigned operand_size(const struct decoder *d, enum x86_opsize_rule rule)
{
    const struct x86_prefixes *p = &d->insn->prefix;
    bool long_mode = d->mode == X86_MODE_64;
    unsigned v;
    if (long_mode)
        v = p->rex_w ? 64 : p->opsize ? 16 : 32;
    else if (d->mode == X86_MODE_32)
        v = p->opsize ? 16 : 32;
    else
        v = p->opsize ? 32 : 16;
    switch (rule) {
    case OSZ_B:
        return 8;
    case OSZ_W:
        return 16;
    case OSZ_D64:
    case OSZ_F64:
        /* AMD semantics (and capstone's): 66 selects 16 bits; Intel ignores 66 on branches. */
        return long_mode ? (p->opsize && !p->rex_w ? 16 : 64) : v;
    case OSZ_NATIVE:
        return long_mode ? 64 : 32;
    case OSZ_Z:
        return v == 64 ? 32 : v;
    case OSZ_NONE:
        return 0;
    default:
        return v;
    }
}

/* Decodes the ModRM byte and any SIB/displacement that follows it. */
static void decode_modrm(struct decoder *d, bool register_only)
{
    struct x86_decoded_insn *insn = d->insn;
    const struct x86_prefixes *p = &insn->prefix;
    uint8_t m = fetch(&d->r);
    insn->has_modrm = true;
    insn->modrm = m;
    insn->mod = m >> 6;
    insn->reg = (uint8_t)(((m >> 3) & 7) | (p->rex_r ? 8 : 0));
    insn->rm = (uint8_t)((m & 7) | (p->rex_b ? 8 : 0));
    if (insn->mod == 3 || register_only)
        return;

    struct x86_mem *mem = &insn->mem;
    insn->has_mem = true;
    mem->addr_size = insn->addr_size;
    mem->base = X86_NO_REG;
    mem->index = X86_NO_REG;
    mem->scale = 1;
    unsigned disp_size = insn->mod == 1 ? 1 : 0;
    uint8_t rm = m & 7;

    if (insn->addr_size == 16) {
        static const uint8_t base16[8] = {GPR_RBX, GPR_RBX, GPR_RBP, GPR_RBP,
                                          GPR_RSI, GPR_RDI, GPR_RBP, GPR_RBX};
        static const uint8_t index16[8] = {GPR_RSI,    GPR_RDI,    GPR_RSI,    GPR_RDI,
                                           X86_NO_REG, X86_NO_REG, X86_NO_REG, X86_NO_REG};
        if (insn->mod == 2)
            disp_size = 2;
        if (insn->mod == 0 && rm == 6) {
            disp_size = 2;
        } else {
            mem->base = base16[rm];
            mem->index = index16[rm];
        }
    } else {
        if (insn->mod == 2)
            disp_size = 4;
        if (rm == 4) {
            uint8_t sib = fetch(&d->r);
            insn->has_sib = true;
            insn->sib = sib;
            insn->sib_scale = sib >> 6;
            insn->sib_index = (sib >> 3) & 7;
            insn->sib_base = sib & 7;
            uint8_t index = (uint8_t)(insn->sib_index | (p->rex_x ? 8 : 0));
            if (index != GPR_RSP) /* index 100b means none; R12 (REX.X) is a real index */
                mem->index = index;
            mem->scale = (uint8_t)(1u << insn->sib_scale);
            if (insn->sib_base == 5 && insn->mod == 0)
                disp_size = 4;
            else
                mem->base = (uint8_t)(insn->sib_base | (p->rex_b ? 8 : 0));
        } else if (rm == 5 && insn->mod == 0) {
            disp_size = 4;
            if (d->mode == X86_MODE_64)
                mem->base = X86_RIP_BASE;
        } else {
            mem->base = insn->rm;
        }
    }
    mem->disp_size = (uint8_t)disp_size;
    mem->disp = (int64_t)sign_extend(fetch_le(&d->r, disp_size), disp_size);
    bool stack_based = mem->base == GPR_RSP || mem->base == GPR_RBP;
    mem->seg = p->seg != X86_SEG_NONE ? p->seg : stack_based ? SEG_SS : SEG_DS;
}

static void set_reg(struct x86_operand *o, uint8_t cls, uint8_t reg, unsigned size)
{
    o->kind = X86_OPND_REG;
    o->reg_class = cls;
    o->reg = reg;
    o->size = (uint8_t)size;
}

/* Byte registers 4-7 are AH..BH without REX, SPL..DIL with any REX. */
static void set_byte_reg(const struct x86_decoded_insn *insn, struct x86_operand *o, uint8_t reg)
{
    if (!insn->prefix.rex && reg >= 4 && reg < 8)
        set_reg(o, X86_RC_GPR8_HIGH, (uint8_t)(reg - 4), 8);
    else
        set_reg(o, X86_RC_GPR, reg, 8);
}

static void set_rm(const struct x86_decoded_insn *insn, struct x86_operand *o, unsigned size)
{
    if (insn->mod == 3) {
        if (size == 8)
            set_byte_reg(insn, o, insn->rm);
        else
            set_reg(o, X86_RC_GPR, insn->rm, size);
    } else {
        o->kind = X86_OPND_MEM;
        o->size = (uint8_t)size;
    }
}

/* Reads an immediate into the first free immediate slot. */
static void take_imm(struct decoder *d, struct x86_operand *o, unsigned bytes, bool is_signed)
{
    struct x86_decoded_insn *insn = d->insn;
    uint64_t v = fetch_le(&d->r, bytes);
    if (is_signed)
        v = sign_extend(v, bytes);
    if (insn->imm_size == 0) {
        insn->imm = v;
        insn->imm_size = (uint8_t)bytes;
        o->which_imm = 0;
    } else {
        insn->imm2 = v;
        insn->imm2_size = (uint8_t)bytes;
        o->which_imm = 1;
    }
}

static int resolve_operand(struct decoder *d, enum x86_opnd_spec spec, struct x86_operand *o)
{
    struct x86_decoded_insn *insn = d->insn;
    unsigned osz = insn->opsize;
    uint8_t low3 = (uint8_t)((insn->opcode & 7) | (insn->prefix.rex_b ? 8 : 0));
    unsigned size_y = d->mode == X86_MODE_64 && insn->prefix.rex_w ? 64 : 32;
    memset(o, 0, sizeof(*o));
    switch (spec) {
    case OS_NONE:
        return 0;
    case OS_Eb:
        set_rm(insn, o, 8);
        break;
    case OS_Ew:
        set_rm(insn, o, 16);
        break;
    case OS_Ed:
        set_rm(insn, o, 32);
        break;
    case OS_Ev:
        set_rm(insn, o, osz);
        break;
    case OS_Ey:
        set_rm(insn, o, size_y);
        break;
    case OS_Gb:
        set_byte_reg(insn, o, insn->reg);
        break;
    case OS_Gw:
        set_reg(o, X86_RC_GPR, insn->reg, 16);
        break;
    case OS_Gv:
        set_reg(o, X86_RC_GPR, insn->reg, osz);
        break;
    case OS_Gy:
        set_reg(o, X86_RC_GPR, insn->reg, size_y);
        break;
    case OS_Mem:
        o->kind = X86_OPND_MEM;
        break;
    case OS_Mp:
        o->kind = X86_OPND_MEM;
        o->size = (uint8_t)(16 + osz);
        break;
    case OS_Rn:
        set_reg(o, X86_RC_GPR, insn->rm, osz);
        break;
    case OS_Cd:
        /* CR0, CR2-CR4 and CR8 (TPR) exist; the rest are reserved and #UD. */
        if (insn->reg != 0 && insn->reg != 2 && insn->reg != 3 && insn->reg != 4 && insn->reg != 8)
            return X86_DECODE_INVALID;
        set_reg(o, X86_RC_CR, insn->reg, osz);
        break;
    case OS_Dd:
        if (insn->reg > 7)
            return X86_DECODE_INVALID;
        set_reg(o, X86_RC_DR, insn->reg, osz);
        break;
    case OS_Sw: {
        uint8_t seg = (insn->modrm >> 3) & 7; /* REX.R does not extend segment registers */
        if (seg > SEG_GS || (insn->opcode == 0x8e && seg == SEG_CS))
            return X86_DECODE_INVALID;
        set_reg(o, X86_RC_SEG, seg, 16);
        break;
    }
    case OS_Ib:
    case OS_sIb:
        o->kind = X86_OPND_IMM;
        o->size = (uint8_t)(spec == OS_sIb && osz ? osz : 8);
        take_imm(d, o, 1, spec == OS_sIb);
        break;
    case OS_Iw:
        o->kind = X86_OPND_IMM;
        o->size = 16;
        take_imm(d, o, 2, false);
        break;
    case OS_Iz:
        o->kind = X86_OPND_IMM;
        o->size = (uint8_t)osz;
        take_imm(d, o, osz == 16 ? 2 : 4, true);
        break;
    case OS_Iv:
        o->kind = X86_OPND_IMM;
        o->size = (uint8_t)osz;
        take_imm(d, o, osz / 8, true);
        break;
    case OS_Jb:
    case OS_Jz:
        o->kind = X86_OPND_REL;
        o->size = (uint8_t)osz;
        take_imm(d, o, spec == OS_Jb ? 1 : osz == 16 ? 2 : 4, true);
        break;
    case OS_Ob:
    case OS_Ov: {
        struct x86_mem *mem = &insn->mem;
        unsigned bytes = insn->addr_size / 8;
        insn->has_mem = true;
        mem->base = X86_NO_REG;
        mem->index = X86_NO_REG;
        mem->scale = 1;
        mem->addr_size = insn->addr_size;
        mem->disp_size = (uint8_t)bytes;
        mem->disp = (int64_t)fetch_le(&d->r, bytes);
        mem->seg = insn->prefix.seg != X86_SEG_NONE ? insn->prefix.seg : SEG_DS;
        o->kind = X86_OPND_MEM;
        o->size = (uint8_t)(spec == OS_Ob ? 8 : osz);
        break;
    }
    case OS_Ap:
        o->kind = X86_OPND_FAR;
        o->size = (uint8_t)osz;
        insn->imm_size = osz == 16 ? 2 : 4;
        insn->imm = fetch_le(&d->r, insn->imm_size);
        insn->imm2_size = 2;
        insn->far_selector = (uint16_t)fetch_le(&d->r, 2);
        insn->imm2 = insn->far_selector;
        break;
    case OS_AL:
        set_reg(o, X86_RC_GPR, GPR_RAX, 8);
        break;
    case OS_rAX:
        set_reg(o, X86_RC_GPR, GPR_RAX, osz);
        break;
    case OS_CL:
        set_reg(o, X86_RC_GPR, GPR_RCX, 8);
        break;
    case OS_DX:
        set_reg(o, X86_RC_GPR, GPR_RDX, 16);
        break;
    case OS_ONE:
        o->kind = X86_OPND_CONST;
        o->size = 8;
        break;
    case OS_Zb:
        set_byte_reg(insn, o, low3);
        break;
    case OS_Zv:
        set_reg(o, X86_RC_GPR, low3, osz);
        break;
    case OS_ES:
    case OS_CS:
    case OS_SS:
    case OS_DS:
    case OS_FS:
    case OS_GS:
        set_reg(o, X86_RC_SEG, (uint8_t)(SEG_ES + (spec - OS_ES)), 16);
        break;
    }
    return 0;
}

/* VEX (C4/C5) and EVEX (62): only the length matters, AVX is not advertised. */
static int decode_vex(struct decoder *d, uint8_t first)
{
    struct x86_decoded_insn *insn = d->insn;
    struct x86_prefixes *p = &insn->prefix;
    /* 66/F2/F3/LOCK/REX before VEX are #UD. */
    if (p->opsize || p->rep || p->repne || p->lock || p->rex)
        return X86_DECODE_INVALID;
    uint8_t map, pp, r_inv;
    bool w = false, needs_modrm = true;
    if (first == 0xc5) {
        uint8_t b1 = fetch(&d->r);
        r_inv = b1 >> 7;
        pp = b1 & 3;
        map = X86_MAP_0F;
        insn->vex_size = 2;
    } else if (first == 0xc4) {
        uint8_t b1 = fetch(&d->r);
        uint8_t b2 = fetch(&d->r);
        r_inv = b1 >> 7;
        p->rex_x = d->mode == X86_MODE_64 && !(b1 & 0x40);
        p->rex_b = d->mode == X86_MODE_64 && !(b1 & 0x20);
        if ((b1 & 0x1f) < 1 || (b1 & 0x1f) > 3)
            return d->r.status ? d->r.status : X86_DECODE_INVALID;
        map = (uint8_t)(b1 & 0x1f);
        w = b2 >> 7;
        pp = b2 & 3;
        insn->vex_size = 3;
    } else {
        uint8_t p0 = fetch(&d->r);
        uint8_t p1 = fetch(&d->r);
        (void)fetch(&d->r);
        if (d->r.status)
            return d->r.status;
        /* EVEX.mm selects 0F/0F38/0F3A; P0 bits 2-3 are zero and P1 bit 2 is one. */
        if ((p0 & 3) == 0 || (p0 & 0x0c) || !(p1 & 4))
            return X86_DECODE_INVALID;
        r_inv = p0 >> 7;
        p->rex_x = d->mode == X86_MODE_64 && !(p0 & 0x40);
        p->rex_b = d->mode == X86_MODE_64 && !(p0 & 0x20);
        map = p0 & 3;
        w = p1 >> 7;
        pp = p1 & 3;
        insn->vex_size = 4;
    }
    p->rex_r = d->mode == X86_MODE_64 && !r_inv;
    p->rex_w = w;
    static const uint8_t pp_to_mp[4] = {X86_MP_NONE, X86_MP_66, X86_MP_F3, X86_MP_F2};
    p->mandatory = pp_to_mp[pp];
    insn->map = map;
    insn->opcode = fetch(&d->r);
    insn->mnemonic = X86_MN_VEX;
    insn->cls = X86_CLASS_VEX;
    if (first != 0x62 && map == X86_MAP_0F && insn->opcode == 0x77)
        needs_modrm = false; /* VZEROUPPER / VZEROALL */
    if (needs_modrm)
        decode_modrm(d, false);
    uint8_t op = insn->opcode;
    bool imm8 = map == X86_MAP_0F3A ||
                (map == X86_MAP_0F &&
                 ((op >= 0x70 && op <= 0x73) || op == 0xc2 || (op >= 0xc4 && op <= 0xc6)));
    if (imm8) {
        insn->imm = fetch(&d->r);
        insn->imm_size = 1;
    }
    return d->r.status;
}

/* Picks the SSE form named by the mandatory prefix, falling back the way CPUs and capstone do:
 * an F2/F3 with no form of its own is ignored (then 66 if present, then no prefix). */
static int select_sse_form(struct decoder *d, uint8_t forms)
{
    struct x86_decoded_insn *insn = d->insn;
    uint8_t candidates[3];
    unsigned n = 0;
    if (d->last_rep)
        candidates[n++] = d->last_rep == 0xf3 ? X86_MP_F3 : X86_MP_F2;
    if (insn->prefix.opsize)
        candidates[n++] = X86_MP_66;
    candidates[n++] = X86_MP_NONE;
    for (unsigned i = 0; i < n; i++) {
        uint8_t form = (forms >> (2 * candidates[i])) & 3;
        bool is_reg = insn->mod == 3;
        if (form == SSE_ANY || (form == SSE_MEM && !is_reg) || (form == SSE_REG && is_reg) ||
            (form != SSE_NO && !insn->has_modrm)) {
            insn->prefix.mandatory = candidates[i];
            return 0;
        }
    }
    return X86_DECODE_INVALID;
}

/* MMX/SSE shift-by-immediate groups 0F 71-73: reg-only; valid /r per prefix (none or 66). */
static uint8_t sse_shift_group_forms(uint8_t opcode, uint8_t reg)
{
    reg &= 7;
    if (opcode == 0x73 && (reg == 3 || reg == 7)) /* PSRLDQ / PSLLDQ: XMM only */
        return SSE_FORMS(SSE_NO, SSE_REG, SSE_NO, SSE_NO);
    bool ok = reg == 2 || reg == 6 || (reg == 4 && opcode != 0x73);
    return ok ? SSE_FORMS(SSE_REG, SSE_REG, SSE_NO, SSE_NO) : 0;
}

/* Opcodes whose meaning depends on prefixes or mode but not on ModRM. */
static int resolve_prefix_special(struct decoder *d, struct x86_opcode_entry *e)
{
    struct x86_decoded_insn *insn = d->insn;
    const struct x86_prefixes *p = &insn->prefix;
    bool f3 = d->last_rep == 0xf3, f2 = d->last_rep == 0xf2;
    switch (insn->map << 8 | insn->opcode) {
    case X86_MAP_ONE_BYTE << 8 | 0x90:
        if (p->rex_b)
            *e = (struct x86_opcode_entry){X86_MN_XCHG, OSZ_V, 0, {OS_Zv, OS_rAX, OS_NONE}, 0};
        else if (f3) {
            e->mnemonic = X86_MN_PAUSE;
            insn->prefix.mandatory = X86_MP_F3;
        }
        break;
    case X86_MAP_ONE_BYTE << 8 | 0x63:
        if (d->mode == X86_MODE_64)
            *e = (struct x86_opcode_entry){X86_MN_MOVSXD, OSZ_V, XF_MODRM, {OS_Gv, OS_Ed}, 0};
        break;
    case X86_MAP_0F << 8 | 0xb8:
        if (!f3)
            return X86_DECODE_INVALID;
        insn->prefix.mandatory = X86_MP_F3;
        break;
    case X86_MAP_0F << 8 | 0xbc:
    case X86_MAP_0F << 8 | 0xbd:
        if (f3) {
            e->mnemonic = insn->opcode == 0xbc ? X86_MN_TZCNT : X86_MN_LZCNT;
            insn->prefix.mandatory = X86_MP_F3;
        }
        break;
    case X86_MAP_0F38 << 8 | 0xf0:
    case X86_MAP_0F38 << 8 | 0xf1:
        if (f2) {
            e->mnemonic = X86_MN_CRC32;
            e->operand[0] = OS_Gy;
            e->operand[1] = insn->opcode == 0xf0 ? OS_Eb : OS_Ev;
            e->opsize = insn->opcode == 0xf0 ? OSZ_B : OSZ_V;
            insn->prefix.mandatory = X86_MP_F2;
        } else if (f3) {
            return X86_DECODE_INVALID;
        } else {
            e->flags |= XF_MEM;
        }
        break;
    case X86_MAP_0F38 << 8 | 0xf6:
        if (f3)
            e->mnemonic = X86_MN_ADOX;
        else if (!f2 && p->opsize)
            e->mnemonic = X86_MN_ADCX;
        else
            return X86_DECODE_INVALID;
        insn->prefix.mandatory = f3 ? X86_MP_F3 : X86_MP_66;
        break;
    case X86_MAP_0F38 << 8 | 0x82:
        if (d->last_rep || !p->opsize)
            return X86_DECODE_INVALID;
        insn->prefix.mandatory = X86_MP_66;
        break;
    default:
        break;
    }
    return 0;
}

/* Group 7 (0F 01), 9 (0F C7) and 15 (0F AE), whose register forms differ from memory forms. */
static int resolve_modrm_special(struct decoder *d, struct x86_opcode_entry *e)
{
    struct x86_decoded_insn *insn = d->insn;
    uint8_t reg = (insn->modrm >> 3) & 7;
    bool is_reg = insn->mod == 3;
    const struct x86_opcode_entry *g = NULL;
    struct x86_opcode_entry out = {X86_MN_INVALID, OSZ_NONE, 0, {OS_NONE, OS_NONE, OS_NONE}, 0};
    switch (insn->opcode) {
    case 0x01:
        if (!is_reg) {
            g = &x86_group_table[GRP_7_MEM][reg];
        } else if (reg == 4) {
            out = (struct x86_opcode_entry){X86_MN_SMSW, OSZ_V, 0, {OS_Ev}, 0};
        } else if (reg == 6) {
            out = (struct x86_opcode_entry){X86_MN_LMSW, OSZ_W, 0, {OS_Ew}, 0};
        } else {
            for (uint32_t i = 0; i < x86_nr_0f01_reg_forms; i++) {
                if (x86_0f01_reg_forms[i].modrm == insn->modrm) {
                    out.mnemonic = x86_0f01_reg_forms[i].mnemonic;
                    out.flags = x86_0f01_reg_forms[i].flags;
                }
            }
        }
        break;
    case 0xae:
        if (!is_reg) {
            g = &x86_group_table[GRP_15_MEM][reg];
            if (insn->prefix.opsize && !d->last_rep && reg >= 6) {
                out = *g;
                out.mnemonic = reg == 6 ? X86_MN_CLWB : X86_MN_CLFLUSHOPT;
                insn->prefix.mandatory = X86_MP_66;
                g = NULL;
            }
        } else if (d->last_rep == 0xf3 && reg <= 3) {
            static const uint8_t fsgsbase[4] = {X86_MN_RDFSBASE, X86_MN_RDGSBASE, X86_MN_WRFSBASE,
                                                X86_MN_WRGSBASE};
            out = (struct x86_opcode_entry){fsgsbase[reg], OSZ_NONE, XF_ONLY64, {OS_Ey}, 0};
            insn->prefix.mandatory = X86_MP_F3;
        } else if (!insn->prefix.opsize && reg >= 5) {
            static const uint8_t fences[3] = {X86_MN_LFENCE, X86_MN_MFENCE, X86_MN_SFENCE};
            out.mnemonic = fences[reg - 5];
        }
        break;
    case 0xc7:
        if (!is_reg) {
            g = &x86_group_table[GRP_9_MEM][reg];
            if (reg == 1 && insn->prefix.rex_w) {
                out = *g;
                out.mnemonic = X86_MN_CMPXCHG16B;
                g = NULL;
            }
        } else if (reg == 6) {
            out = (struct x86_opcode_entry){X86_MN_RDRAND, OSZ_V, 0, {OS_Ev}, 0};
        } else if (reg == 7 && d->last_rep == 0xf3) {
            out = (struct x86_opcode_entry){X86_MN_RDPID, OSZ_NATIVE, 0, {OS_Rn}, 0};
            insn->prefix.mandatory = X86_MP_F3;
        } else if (reg == 7) {
            out = (struct x86_opcode_entry){X86_MN_RDSEED, OSZ_V, 0, {OS_Ev}, 0};
        }
        break;
    default:
        return X86_DECODE_INVALID;
    }
    if (g)
        out = *g;
    if (out.mnemonic == X86_MN_INVALID)
        return X86_DECODE_INVALID;
    out.flags |= XF_MODRM;
    *e = out;
    return 0;
}

static bool x87_form_valid(const struct x86_decoded_insn *insn)
{
    unsigned idx = insn->opcode - 0xd8u;
    if (insn->mod == 3)
        return (x87_reg_form_valid[idx] >> (insn->modrm & 0x3f)) & 1;
    return (x87_mem_form_valid[idx] >> ((insn->modrm >> 3) & 7)) & 1;
}

static const struct x86_opcode_entry *table_for_map(uint8_t map)
{
    switch (map) {
    case X86_MAP_0F:
        return x86_0f_table;
    case X86_MAP_0F38:
        return x86_0f38_table;
    case X86_MAP_0F3A:
        return x86_0f3a_table;
    default:
        return x86_one_byte_table;
    }
}

static int decode_prefixes(struct decoder *d, uint8_t *opcode_out)
{
    struct x86_prefixes *p = &d->insn->prefix;
    for (;;) {
        uint8_t b = fetch(&d->r);
        if (d->r.status)
            return d->r.status;
        switch (b) {
        case 0xf0:
            p->lock = true;
            break;
        case 0xf2:
            p->repne = true;
            d->last_rep = b;
            break;
        case 0xf3:
            p->rep = true;
            d->last_rep = b;
            break;
        case 0x26:
            p->seg = SEG_ES;
            break;
        case 0x2e:
            p->seg = SEG_CS;
            break;
        case 0x36:
            p->seg = SEG_SS;
            break;
        case 0x3e:
            p->seg = SEG_DS;
            break;
        case 0x64:
            p->seg = SEG_FS;
            break;
        case 0x65:
            p->seg = SEG_GS;
            break;
        case 0x66:
            p->opsize = true;
            break;
        case 0x67:
            p->addrsize = true;
            break;
        default:
            if (d->mode == X86_MODE_64 && (b & 0xf0) == 0x40) {
                p->rex = b; /* only effective if it is the last prefix */
                p->count++;
                continue;
            }
            *opcode_out = b;
            return 0;
        }
        p->rex = 0; /* a legacy prefix after REX makes the REX ignored */
        p->count++;
    }
}

int x86_decode(const uint8_t *bytes, size_t avail, enum x86_cpu_mode mode,
               struct x86_decoded_insn *out)
{
    memset(out, 0, sizeof(*out));
    struct decoder dec = {.r = {bytes, bytes ? avail : 0, 0, 0}, .insn = out, .mode = mode};
    struct decoder *d = &dec;
    struct x86_decoded_insn *insn = out;
    struct x86_prefixes *p = &insn->prefix;
    p->seg = X86_SEG_NONE;
    insn->mem.base = X86_NO_REG;
    insn->mem.index = X86_NO_REG;
    insn->mode = (uint8_t)mode;

    uint8_t b;
    int rc = decode_prefixes(d, &b);
    if (rc)
        return rc;
    p->rex_w = p->rex & 8;
    p->rex_r = p->rex & 4;
    p->rex_x = p->rex & 2;
    p->rex_b = p->rex & 1;
    insn->addr_size = (uint8_t)address_size(mode, p->addrsize);

    /* Opcode map escapes; C4/C5/62 are VEX/EVEX when they cannot be LES/LDS/BOUND. */
    insn->map = X86_MAP_ONE_BYTE;
    if (b == 0x0f) {
        b = fetch(&d->r);
        insn->map = X86_MAP_0F;
        if (b == 0x38 || b == 0x3a) {
            insn->map = b == 0x38 ? X86_MAP_0F38 : X86_MAP_0F3A;
            b = fetch(&d->r);
        }
    } else if (b == 0xc4 || b == 0xc5 || b == 0x62) {
        bool vex = mode == X86_MODE_64 || (peek(&d->r) & 0xc0) == 0xc0;
        if (d->r.status)
            return d->r.status;
        if (vex) {
            rc = decode_vex(d, b);
            if (rc)
                return rc;
            insn->length = (uint8_t)d->r.pos;
            return 0;
        }
    }
    if (d->r.status)
        return d->r.status;
    insn->opcode = b;

    struct x86_opcode_entry e = table_for_map(insn->map)[b];
    if (e.flags & XF_SPECIAL) {
        rc = resolve_prefix_special(d, &e);
        if (rc)
            return rc;
    }
    if (e.mnemonic == X86_MN_INVALID && !(e.flags & (XF_GROUP | XF_SPECIAL)))
        return X86_DECODE_INVALID;
    if ((e.flags & XF_INV64) && mode == X86_MODE_64)
        return X86_DECODE_INVALID;

    if (e.flags & XF_MODRM) {
        decode_modrm(d, (e.flags & XF_RM_IS_REG) != 0);
        if (d->r.status)
            return d->r.status;
    }
    if (e.flags & XF_GROUP) {
        const struct x86_opcode_entry *g = &x86_group_table[e.mnemonic][(insn->modrm >> 3) & 7];
        if (g->mnemonic == X86_MN_INVALID)
            return X86_DECODE_INVALID;
        e.mnemonic = g->mnemonic;
        e.flags = (uint16_t)((e.flags & ~XF_GROUP) | g->flags);
        if (g->opsize != OSZ_INHERIT)
            e.opsize = g->opsize;
        if (g->operand[0] != OS_NONE)
            memcpy(e.operand, g->operand, sizeof(e.operand));
        if (g->flags & XF_GRP_IMM)
            e.operand[1] = e.opsize == OSZ_B ? OS_sIb : OS_Iz;
    } else if ((e.flags & XF_SPECIAL) && insn->map == X86_MAP_0F &&
               (b == 0x01 || b == 0xae || b == 0xc7)) {
        rc = resolve_modrm_special(d, &e);
        if (rc)
            return rc;
    }
    if ((e.flags & XF_INV64) && mode == X86_MODE_64)
        return X86_DECODE_INVALID;
    if ((e.flags & XF_ONLY64) && mode != X86_MODE_64)
        return X86_DECODE_INVALID;
    if (insn->has_modrm && (e.flags & XF_MEM) && insn->mod == 3)
        return X86_DECODE_INVALID;
    if (insn->has_modrm && (e.flags & XF_REG) && insn->mod != 3)
        return X86_DECODE_INVALID;

    insn->mnemonic = e.mnemonic;
    insn->cls = (uint8_t)x86_mnemonic_class(e.mnemonic);
    insn->cc = b & 0x0f;
    if (e.flags & XF_SSE) {
        uint8_t forms = e.sse_forms;
        if (e.flags & XF_SPECIAL)
            forms = sse_shift_group_forms(b, insn->reg);
        if (select_sse_form(d, forms))
            return X86_DECODE_INVALID;
    } else if ((e.flags & XF_X87) && !x87_form_valid(insn)) {
        return X86_DECODE_INVALID;
    }

    insn->opsize = (uint8_t)operand_size(d, (enum x86_opsize_rule)e.opsize);
    for (unsigned i = 0; i < 3 && e.operand[i] != OS_NONE; i++) {
        rc = resolve_operand(d, (enum x86_opnd_spec)e.operand[i], &insn->operand[i]);
        if (rc)
            return rc;
        insn->nr_operands = (uint8_t)(i + 1);
    }
    if ((e.flags & XF_SSE) && (e.flags & XF_IMM8)) {
        insn->imm = fetch(&d->r);
        insn->imm_size = 1;
    }
    if (d->r.status)
        return d->r.status;
    /* LOCK is #UD unless the instruction is lockable and its destination is memory. */
    if (p->lock && (!(e.flags & XF_LOCK) || !insn->has_mem || insn->mod == 3))
        return X86_DECODE_INVALID;
    insn->length = (uint8_t)d->r.pos;
    return 0;
}

/* ---- Formatting for debug logs ---- */

struct text {
    char *buf;
    size_t len;
    size_t used; /* characters that would have been written */
};

static void put(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct text *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t room = t->used < t->len ? t->len - t->used : 0;
    int n = vsnprintf(room ? t->buf + t->used : NULL, room, fmt, ap);
    va_end(ap);
    if (n > 0)
        t->used += (size_t)n;
}

static const char *gpr_name(uint8_t reg, unsigned size)
{
    static const char *const names64[16] = {"rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
                                            "r8",  "r9",  "r10", "r11", "r12", "r13", "r14", "r15"};
    static const char *const names32[16] = {"eax",  "ecx",  "edx",  "ebx", "esp",  "ebp",
                                            "esi",  "edi",  "r8d",  "r9d", "r10d", "r11d",
                                            "r12d", "r13d", "r14d", "r15d"};
    static const char *const names16[16] = {"ax",   "cx",   "dx",   "bx",  "sp",   "bp",
                                            "si",   "di",   "r8w",  "r9w", "r10w", "r11w",
                                            "r12w", "r13w", "r14w", "r15w"};
    static const char *const names8[16] = {"al",   "cl",   "dl",   "bl",  "spl",  "bpl",
                                           "sil",  "dil",  "r8b",  "r9b", "r10b", "r11b",
                                           "r12b", "r13b", "r14b", "r15b"};
    reg &= 15;
    switch (size) {
    case 8:
        return names8[reg];
    case 16:
        return names16[reg];
    case 32:
        return names32[reg];
    default:
        return names64[reg];
    }
}

static const char *const seg_names[6] = {"es", "cs", "ss", "ds", "fs", "gs"};

static void put_mem(struct text *t, const struct x86_decoded_insn *insn, unsigned size)
{
    const struct x86_mem *m = &insn->mem;
    switch (size) {
    case 8:
        put(t, "byte ");
        break;
    case 16:
        put(t, "word ");
        break;
    case 32:
        put(t, "dword ");
        break;
    case 64:
        put(t, "qword ");
        break;
    default:
        break;
    }
    if (insn->prefix.seg != X86_SEG_NONE && insn->prefix.seg < 6)
        put(t, "%s:", seg_names[insn->prefix.seg]);
    put(t, "[");
    bool any = false;
    if (m->base == X86_RIP_BASE) {
        put(t, "%s", m->addr_size == 32 ? "eip" : "rip");
        any = true;
    } else if (m->base != X86_NO_REG) {
        put(t, "%s", gpr_name(m->base, m->addr_size));
        any = true;
    }
    if (m->index != X86_NO_REG) {
        put(t, "%s%s", any ? "+" : "", gpr_name(m->index, m->addr_size));
        if (m->scale > 1)
            put(t, "*%u", m->scale);
        any = true;
    }
    if (m->disp || !any) {
        if (!any)
            put(t, "0x%" PRIx64, (uint64_t)m->disp);
        else if (m->disp < 0)
            put(t, "-0x%" PRIx64, -(uint64_t)m->disp);
        else
            put(t, "+0x%" PRIx64, (uint64_t)m->disp);
    }
    put(t, "]");
}

static void put_operand(struct text *t, const struct x86_decoded_insn *insn,
                        const struct x86_operand *o)
{
    uint64_t imm = o->which_imm ? insn->imm2 : insn->imm;
    switch (o->kind) {
    case X86_OPND_REG:
        switch (o->reg_class) {
        case X86_RC_GPR8_HIGH: {
            static const char *const high[4] = {"ah", "ch", "dh", "bh"};
            put(t, "%s", high[o->reg & 3]);
            break;
        }
        case X86_RC_SEG:
            put(t, "%s", seg_names[o->reg % 6]);
            break;
        case X86_RC_CR:
            put(t, "cr%u", o->reg);
            break;
        case X86_RC_DR:
            put(t, "dr%u", o->reg);
            break;
        default:
            put(t, "%s", gpr_name(o->reg, o->size));
            break;
        }
        break;
    case X86_OPND_MEM:
        put_mem(t, insn, o->size);
        break;
    case X86_OPND_IMM:
        if (o->size && o->size < 64)
            imm &= (1ULL << o->size) - 1;
        put(t, "0x%" PRIx64, imm);
        break;
    case X86_OPND_REL:
        put(t, "$%+" PRId64, (int64_t)imm + insn->length);
        break;
    case X86_OPND_FAR:
        put(t, "0x%x:0x%" PRIx64, insn->far_selector, insn->imm);
        break;
    case X86_OPND_CONST:
        put(t, "1");
        break;
    default:
        break;
    }
}

static char size_suffix(unsigned opsize)
{
    return opsize == 8 ? 'b' : opsize == 16 ? 'w' : opsize == 32 ? 'd' : 'q';
}

int x86_format(const struct x86_decoded_insn *insn, char *buf, size_t len)
{
    static const char *const cc_names[16] = {"o", "no", "b", "ae", "e", "ne", "be", "a",
                                             "s", "ns", "p", "np", "l", "ge", "le", "g"};
    static const char *const map_names[4] = {"", "0f ", "0f38 ", "0f3a "};
    static const char *const mp_names[4] = {"", "66 ", "f3 ", "f2 "};
    struct text t = {buf, len, 0};
    if (len)
        buf[0] = '\0';
    enum x86_mnemonic mn = (enum x86_mnemonic)insn->mnemonic;
    const struct x86_prefixes *p = &insn->prefix;
    if (p->lock)
        put(&t, "lock ");
    bool string_op = mn == X86_MN_MOVS || mn == X86_MN_STOS || mn == X86_MN_LODS ||
                     mn == X86_MN_INS || mn == X86_MN_OUTS;
    bool compare_string = mn == X86_MN_CMPS || mn == X86_MN_SCAS;
    if ((string_op && (p->rep || p->repne)) || (compare_string && p->rep && !p->repne))
        put(&t, string_op ? "rep " : "repe ");
    else if (compare_string && p->repne)
        put(&t, "repne ");

    switch (mn) {
    case X86_MN_JCC:
    case X86_MN_SETCC:
    case X86_MN_CMOVCC:
        put(&t, "%s%s", x86_mnemonic_name(mn), cc_names[insn->cc & 15]);
        break;
    case X86_MN_CBW: {
        static const char *const n[3] = {"cbw", "cwde", "cdqe"};
        put(&t, "%s", n[insn->opsize == 16 ? 0 : insn->opsize == 32 ? 1 : 2]);
        break;
    }
    case X86_MN_CWD: {
        static const char *const n[3] = {"cwd", "cdq", "cqo"};
        put(&t, "%s", n[insn->opsize == 16 ? 0 : insn->opsize == 32 ? 1 : 2]);
        break;
    }
    case X86_MN_JRCXZ:
        put(&t, "%s", insn->addr_size == 16 ? "jcxz" : insn->addr_size == 32 ? "jecxz" : "jrcxz");
        break;
    case X86_MN_SSE:
    case X86_MN_VEX:
        put(&t, "%s %s%s%02x", x86_mnemonic_name(mn), mp_names[p->mandatory & 3],
            map_names[insn->map & 3], insn->opcode);
        if (insn->has_modrm)
            put(&t, " /%02x", insn->modrm);
        return (int)t.used;
    case X86_MN_X87:
        put(&t, "x87 %02x %02x", insn->opcode, insn->modrm);
        if (insn->has_mem) {
            put(&t, " ");
            put_mem(&t, insn, 0);
        }
        return (int)t.used;
    default:
        put(&t, "%s", x86_mnemonic_name(mn));
        if (string_op || compare_string || mn == X86_MN_IRET)
            put(&t, "%c", size_suffix(insn->opsize));
        break;
    }
    for (unsigned i = 0; i < insn->nr_operands; i++) {
        put(&t, i ? ", " : " ");
        put_operand(&t, insn, &insn->operand[i]);
    }
    return (int)t.used;
}
