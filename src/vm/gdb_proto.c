/* The GDB remote serial protocol: see gdb_proto.h. */
#include "vm/gdb_proto.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* --- framing ----------------------------------------------------------------------------- */

enum { F_IDLE, F_DATA, F_ESCAPE, F_CSUM1, F_CSUM2 };

void gdb_framer_init(struct gdb_framer *f)
{
    memset(f, 0, sizeof(*f));
}

int gdb_hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static void framer_put(struct gdb_framer *f, uint8_t byte)
{
    if (f->len < GDB_MAX_PACKET)
        f->buf[f->len++] = (char)byte;
    else
        f->overflow = true;
}

/* Escapes ('}' then the byte XOR 0x20, binary 'X' data) are undone here; run-length encoding
 * is only sent by stubs, so a '*' is data. A '$' inside a packet starts a new one (gdb gave up
 * on the old one). */
enum gdb_frame_event gdb_framer_push(struct gdb_framer *f, uint8_t byte)
{
    switch (f->state) {
    case F_IDLE:
        if (byte == 0x03)
            return GDB_FRAME_INTERRUPT;
        if (byte == '$') {
            f->state = F_DATA;
            f->len = 0;
            f->sum = 0;
            f->overflow = false;
        }
        return GDB_FRAME_NONE; /* '+', '-' and noise between packets */
    case F_DATA:
        if (byte == '$') {
            f->len = 0;
            f->sum = 0;
            f->overflow = false;
            return GDB_FRAME_NONE;
        }
        if (byte == '#') {
            f->state = F_CSUM1;
            return GDB_FRAME_NONE;
        }
        f->sum = (uint8_t)(f->sum + byte);
        if (byte == '}')
            f->state = F_ESCAPE;
        else
            framer_put(f, byte);
        return GDB_FRAME_NONE;
    case F_ESCAPE:
        f->sum = (uint8_t)(f->sum + byte);
        framer_put(f, byte ^ 0x20);
        f->state = F_DATA;
        return GDB_FRAME_NONE;
    case F_CSUM1: {
        int d = gdb_hex_digit((char)byte);
        if (d < 0) {
            f->state = F_IDLE;
            return GDB_FRAME_BAD;
        }
        f->csum = (uint8_t)d;
        f->state = F_CSUM2;
        return GDB_FRAME_NONE;
    }
    default: { /* F_CSUM2 */
        int d = gdb_hex_digit((char)byte);
        f->state = F_IDLE;
        if (d < 0 || (uint8_t)(f->csum << 4 | d) != f->sum || f->overflow)
            return GDB_FRAME_BAD;
        f->buf[f->len] = '\0';
        return GDB_FRAME_PACKET;
    }
    }
}

size_t gdb_frame(char *out, size_t cap, const char *payload, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;
    uint8_t sum = 0;
    if (cap < 4)
        return 0;
    out[n++] = '$';
    for (size_t i = 0; i < len; i++) {
        uint8_t c = (uint8_t)payload[i];
        bool esc = c == '#' || c == '$' || c == '}' || c == '*';
        if (n + (esc ? 2 : 1) + 3 > cap)
            return 0;
        if (esc) {
            out[n++] = '}';
            sum = (uint8_t)(sum + '}');
            c ^= 0x20;
        }
        out[n++] = (char)c;
        sum = (uint8_t)(sum + c);
    }
    out[n++] = '#';
    out[n++] = hex[sum >> 4];
    out[n++] = hex[sum & 15];
    return n;
}

/* --- numbers ----------------------------------------------------------------------------- */

/* A hex number of 1..16 digits at *p (advanced past it); false when there is none or it is
 * longer. */
static bool parse_hex(const char **p, const char *end, uint64_t *out)
{
    uint64_t v = 0;
    unsigned digits = 0;
    while (*p < end && gdb_hex_digit(**p) >= 0) {
        if (++digits > 16)
            return false;
        v = v << 4 | (uint64_t)gdb_hex_digit(**p);
        (*p)++;
    }
    *out = v;
    return digits > 0;
}

static bool expect(const char **p, const char *end, char c)
{
    if (*p >= end || **p != c)
        return false;
    (*p)++;
    return true;
}

static void put_hex_bytes(char *out, const uint8_t *data, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[data[i] >> 4];
        out[2 * i + 1] = hex[data[i] & 15];
    }
}

/* n bytes from 2n hex digits; false on a non-digit. */
static bool get_hex_bytes(const char *in, uint8_t *data, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int hi = gdb_hex_digit(in[2 * i]), lo = gdb_hex_digit(in[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        data[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

/* --- registers --------------------------------------------------------------------------- */

/* The target description: gdb's amd64 features (gdb's features/i386/64bit-core.xml,
 * 64bit-sse.xml, 64bit-segments.xml and a 64bit-sys-like set), registers numbered in that
 * order. The x87 and SSE registers come from the target's get_fpu (unavailable without). */
static const char target_xml[] =
    "<?xml version=\"1.0\"?><!DOCTYPE target SYSTEM \"gdb-target.dtd\">"
    "<target><architecture>i386:x86-64</architecture>"
    "<feature name=\"org.gnu.gdb.i386.core\">"
    "<flags id=\"i386_eflags\" size=\"4\">"
    "<field name=\"CF\" start=\"0\" end=\"0\"/><field name=\"\" start=\"1\" end=\"1\"/>"
    "<field name=\"PF\" start=\"2\" end=\"2\"/><field name=\"AF\" start=\"4\" end=\"4\"/>"
    "<field name=\"ZF\" start=\"6\" end=\"6\"/><field name=\"SF\" start=\"7\" end=\"7\"/>"
    "<field name=\"TF\" start=\"8\" end=\"8\"/><field name=\"IF\" start=\"9\" end=\"9\"/>"
    "<field name=\"DF\" start=\"10\" end=\"10\"/><field name=\"OF\" start=\"11\" end=\"11\"/>"
    "<field name=\"NT\" start=\"14\" end=\"14\"/><field name=\"RF\" start=\"16\" end=\"16\"/>"
    "<field name=\"VM\" start=\"17\" end=\"17\"/><field name=\"AC\" start=\"18\" end=\"18\"/>"
    "<field name=\"VIF\" start=\"19\" end=\"19\"/><field name=\"VIP\" start=\"20\" end=\"20\"/>"
    "<field name=\"ID\" start=\"21\" end=\"21\"/></flags>"
    "<reg name=\"rax\" bitsize=\"64\" type=\"int64\"/><reg name=\"rbx\" bitsize=\"64\" "
    "type=\"int64\"/>"
    "<reg name=\"rcx\" bitsize=\"64\" type=\"int64\"/><reg name=\"rdx\" bitsize=\"64\" "
    "type=\"int64\"/>"
    "<reg name=\"rsi\" bitsize=\"64\" type=\"int64\"/><reg name=\"rdi\" bitsize=\"64\" "
    "type=\"int64\"/>"
    "<reg name=\"rbp\" bitsize=\"64\" type=\"data_ptr\"/><reg name=\"rsp\" bitsize=\"64\" "
    "type=\"data_ptr\"/>"
    "<reg name=\"r8\" bitsize=\"64\" type=\"int64\"/><reg name=\"r9\" bitsize=\"64\" "
    "type=\"int64\"/>"
    "<reg name=\"r10\" bitsize=\"64\" type=\"int64\"/><reg name=\"r11\" bitsize=\"64\" "
    "type=\"int64\"/>"
    "<reg name=\"r12\" bitsize=\"64\" type=\"int64\"/><reg name=\"r13\" bitsize=\"64\" "
    "type=\"int64\"/>"
    "<reg name=\"r14\" bitsize=\"64\" type=\"int64\"/><reg name=\"r15\" bitsize=\"64\" "
    "type=\"int64\"/>"
    "<reg name=\"rip\" bitsize=\"64\" type=\"code_ptr\"/>"
    "<reg name=\"eflags\" bitsize=\"32\" type=\"i386_eflags\"/>"
    "<reg name=\"cs\" bitsize=\"32\" type=\"int32\"/><reg name=\"ss\" bitsize=\"32\" "
    "type=\"int32\"/>"
    "<reg name=\"ds\" bitsize=\"32\" type=\"int32\"/><reg name=\"es\" bitsize=\"32\" "
    "type=\"int32\"/>"
    "<reg name=\"fs\" bitsize=\"32\" type=\"int32\"/><reg name=\"gs\" bitsize=\"32\" "
    "type=\"int32\"/>"
    "<reg name=\"st0\" bitsize=\"80\" type=\"i387_ext\"/><reg name=\"st1\" bitsize=\"80\" "
    "type=\"i387_ext\"/>"
    "<reg name=\"st2\" bitsize=\"80\" type=\"i387_ext\"/><reg name=\"st3\" bitsize=\"80\" "
    "type=\"i387_ext\"/>"
    "<reg name=\"st4\" bitsize=\"80\" type=\"i387_ext\"/><reg name=\"st5\" bitsize=\"80\" "
    "type=\"i387_ext\"/>"
    "<reg name=\"st6\" bitsize=\"80\" type=\"i387_ext\"/><reg name=\"st7\" bitsize=\"80\" "
    "type=\"i387_ext\"/>"
    "<reg name=\"fctrl\" bitsize=\"32\" type=\"int\" group=\"float\"/>"
    "<reg name=\"fstat\" bitsize=\"32\" type=\"int\" group=\"float\"/>"
    "<reg name=\"ftag\" bitsize=\"32\" type=\"int\" group=\"float\"/>"
    "<reg name=\"fiseg\" bitsize=\"32\" type=\"int\" group=\"float\"/>"
    "<reg name=\"fioff\" bitsize=\"32\" type=\"int\" group=\"float\"/>"
    "<reg name=\"foseg\" bitsize=\"32\" type=\"int\" group=\"float\"/>"
    "<reg name=\"fooff\" bitsize=\"32\" type=\"int\" group=\"float\"/>"
    "<reg name=\"fop\" bitsize=\"32\" type=\"int\" group=\"float\"/>"
    "</feature><feature name=\"org.gnu.gdb.i386.sse\">"
    "<vector id=\"v4f\" type=\"ieee_single\" count=\"4\"/>"
    "<vector id=\"v2d\" type=\"ieee_double\" count=\"2\"/>"
    "<vector id=\"v16i8\" type=\"int8\" count=\"16\"/>"
    "<vector id=\"v8i16\" type=\"int16\" count=\"8\"/>"
    "<vector id=\"v4i32\" type=\"int32\" count=\"4\"/>"
    "<vector id=\"v2i64\" type=\"int64\" count=\"2\"/>"
    "<union id=\"vec128\"><field name=\"v4_float\" type=\"v4f\"/>"
    "<field name=\"v2_double\" type=\"v2d\"/><field name=\"v16_int8\" type=\"v16i8\"/>"
    "<field name=\"v8_int16\" type=\"v8i16\"/><field name=\"v4_int32\" type=\"v4i32\"/>"
    "<field name=\"v2_int64\" type=\"v2i64\"/><field name=\"uint128\" type=\"uint128\"/></union>"
    "<flags id=\"i386_mxcsr\" size=\"4\">"
    "<field name=\"IE\" start=\"0\" end=\"0\"/><field name=\"DE\" start=\"1\" end=\"1\"/>"
    "<field name=\"ZE\" start=\"2\" end=\"2\"/><field name=\"OE\" start=\"3\" end=\"3\"/>"
    "<field name=\"UE\" start=\"4\" end=\"4\"/><field name=\"PE\" start=\"5\" end=\"5\"/>"
    "<field name=\"DAZ\" start=\"6\" end=\"6\"/><field name=\"IM\" start=\"7\" end=\"7\"/>"
    "<field name=\"DM\" start=\"8\" end=\"8\"/><field name=\"ZM\" start=\"9\" end=\"9\"/>"
    "<field name=\"OM\" start=\"10\" end=\"10\"/><field name=\"UM\" start=\"11\" end=\"11\"/>"
    "<field name=\"PM\" start=\"12\" end=\"12\"/><field name=\"FZ\" start=\"15\" end=\"15\"/>"
    "</flags>"
    "<reg name=\"xmm0\" bitsize=\"128\" type=\"vec128\"/><reg name=\"xmm1\" bitsize=\"128\" "
    "type=\"vec128\"/>"
    "<reg name=\"xmm2\" bitsize=\"128\" type=\"vec128\"/><reg name=\"xmm3\" bitsize=\"128\" "
    "type=\"vec128\"/>"
    "<reg name=\"xmm4\" bitsize=\"128\" type=\"vec128\"/><reg name=\"xmm5\" bitsize=\"128\" "
    "type=\"vec128\"/>"
    "<reg name=\"xmm6\" bitsize=\"128\" type=\"vec128\"/><reg name=\"xmm7\" bitsize=\"128\" "
    "type=\"vec128\"/>"
    "<reg name=\"xmm8\" bitsize=\"128\" type=\"vec128\"/><reg name=\"xmm9\" bitsize=\"128\" "
    "type=\"vec128\"/>"
    "<reg name=\"xmm10\" bitsize=\"128\" type=\"vec128\"/><reg name=\"xmm11\" bitsize=\"128\" "
    "type=\"vec128\"/>"
    "<reg name=\"xmm12\" bitsize=\"128\" type=\"vec128\"/><reg name=\"xmm13\" bitsize=\"128\" "
    "type=\"vec128\"/>"
    "<reg name=\"xmm14\" bitsize=\"128\" type=\"vec128\"/><reg name=\"xmm15\" bitsize=\"128\" "
    "type=\"vec128\"/>"
    "<reg name=\"mxcsr\" bitsize=\"32\" type=\"i386_mxcsr\" group=\"vector\"/>"
    "</feature><feature name=\"org.gnu.gdb.i386.segments\">"
    "<reg name=\"fs_base\" bitsize=\"64\" type=\"int\"/>"
    "<reg name=\"gs_base\" bitsize=\"64\" type=\"int\"/>"
    "</feature><feature name=\"org.gnu.gdb.i386.sys\">"
    "<reg name=\"cr0\" bitsize=\"64\" type=\"int\"/><reg name=\"cr2\" bitsize=\"64\" type=\"int\"/>"
    "<reg name=\"cr3\" bitsize=\"64\" type=\"int\"/><reg name=\"cr4\" bitsize=\"64\" type=\"int\"/>"
    "<reg name=\"cr8\" bitsize=\"64\" type=\"int\"/><reg name=\"efer\" bitsize=\"64\" "
    "type=\"int\"/>"
    "</feature></target>";

/* Register numbers and sizes, in the description's order. */
enum {
    R_RIP = 16,
    R_EFLAGS,
    R_CS,
    R_GS = 23,
    R_ST0,
    R_FOP = 39,
    R_XMM0,
    R_MXCSR = 56,
    R_FS_BASE,
    R_GS_BASE,
    R_CR0,
    R_EFER = 64,
    NR_REGS
};

static unsigned reg_size(unsigned r)
{
    if (r < R_EFLAGS)
        return 8;
    if (r <= R_GS)
        return 4;
    if (r < R_ST0 + 8)
        return 10;
    if (r <= R_FOP)
        return 4;
    if (r < R_MXCSR)
        return 16;
    return r == R_MXCSR ? 4 : 8;
}

static bool reg_is_fpu(unsigned r)
{
    return r >= R_ST0 && r <= R_MXCSR;
}

/* gdb's order of the general registers, as quokka's (encoding-order) indexes. */
static const uint8_t gpr_of[16] = {GPR_RAX, GPR_RBX, GPR_RCX, GPR_RDX, GPR_RSI, GPR_RDI,
                                   GPR_RBP, GPR_RSP, GPR_R8,  GPR_R9,  GPR_R10, GPR_R11,
                                   GPR_R12, GPR_R13, GPR_R14, GPR_R15};
static const uint8_t seg_of[6] = {SEG_CS, SEG_SS, SEG_DS, SEG_ES, SEG_FS, SEG_GS};

static uint64_t *sys_reg(struct vcpu_state *st, unsigned r)
{
    switch (r) {
    case R_FS_BASE:
        return &st->seg[SEG_FS].base;
    case R_GS_BASE:
        return &st->seg[SEG_GS].base;
    case R_CR0:
        return &st->cr0;
    case R_CR0 + 1:
        return &st->cr2;
    case R_CR0 + 2:
        return &st->cr3;
    case R_CR0 + 3:
        return &st->cr4;
    case R_CR0 + 4:
        return &st->cr8;
    default:
        return &st->efer;
    }
}

/* gdb's i387_tag: the full tag of one 80-bit value (0 valid, 1 zero, 2 special). */
static unsigned x87_tag(const uint8_t *raw)
{
    uint64_t mant;
    memcpy(&mant, raw, 8);
    unsigned exp = (unsigned)(raw[9] & 0x7f) << 8 | raw[8];
    bool integer = mant >> 63;
    if (exp == 0x7fff)
        return 2;
    if (exp == 0)
        return mant == 0 ? 1 : 2;
    return integer ? 0 : 2;
}

/* The i387 tag word gdb shows (2 bits per physical register, 3 empty) from FXSAVE's abridged
 * one and the register contents, as gdb's i387_supply_fxsave rebuilds it. */
static uint16_t full_tag(const struct vcpu_fpu *f)
{
    unsigned top = (f->fsw >> 11) & 7, tag = 0;
    for (unsigned phys = 0; phys < 8; phys++) {
        unsigned t = (f->ftw >> phys) & 1 ? x87_tag(f->st[(phys + 8 - top) % 8]) : 3;
        tag |= t << (2 * phys);
    }
    return (uint16_t)tag;
}

/* And back (gdb's i387_collect_fxsave): a register is in use unless its tag is 3. */
static uint8_t abridged_tag(uint16_t full)
{
    uint8_t ftw = 0;
    for (unsigned phys = 0; phys < 8; phys++)
        if (((full >> (2 * phys)) & 3) != 3)
            ftw |= (uint8_t)(1u << phys);
    return ftw;
}

/* The 32-bit x87 control registers in gdb's order, fctrl..fop. */
static uint32_t fpu_word(const struct vcpu_fpu *f, unsigned i)
{
    const uint32_t v[8] = {f->fcw,           f->fsw, full_tag(f),      f->fcs,
                           (uint32_t)f->fip, f->fds, (uint32_t)f->fdp, f->fop};
    return v[i];
}

static void set_fpu_word(struct vcpu_fpu *f, unsigned i, uint32_t v)
{
    switch (i) {
    case 0:
        f->fcw = (uint16_t)v;
        break;
    case 1:
        f->fsw = (uint16_t)v;
        break;
    case 2:
        f->ftw = abridged_tag((uint16_t)v);
        break;
    case 3:
        f->fcs = (uint16_t)v;
        break;
    case 4:
        f->fip = v;
        break;
    case 5:
        f->fds = (uint16_t)v;
        break;
    case 6:
        f->fdp = v;
        break;
    default:
        f->fop = (uint16_t)(v & 0x7ff);
    }
}

static void put_le(uint8_t *out, uint64_t v, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        out[i] = (uint8_t)(v >> (8 * i));
}

/* Register r's value (little-endian, reg_size bytes); false when unavailable. */
static bool reg_get(const struct gdb_regs *g, unsigned r, uint8_t *out)
{
    struct vcpu_state *st = (struct vcpu_state *)&g->st; /* sys_reg only reads here */
    const struct vcpu_fpu *f = &g->fpu;
    if (reg_is_fpu(r) && !g->has_fpu)
        return false;
    if (r >= R_ST0 && r < R_ST0 + 8)
        memcpy(out, f->st[r - R_ST0], 10);
    else if (r >= R_XMM0 && r < R_MXCSR)
        memcpy(out, f->xmm[r - R_XMM0], 16);
    else if (r == R_MXCSR)
        put_le(out, f->mxcsr, 4);
    else if (reg_is_fpu(r))
        put_le(out, fpu_word(f, r - R_ST0 - 8), 4);
    else if (r < 16)
        put_le(out, st->gpr[gpr_of[r]], 8);
    else if (r == R_RIP)
        put_le(out, st->rip, 8);
    else if (r == R_EFLAGS)
        put_le(out, st->rflags, 4);
    else if (r <= R_GS)
        put_le(out, st->seg[seg_of[r - R_CS]].selector, 4);
    else
        put_le(out, *sys_reg(st, r), 8);
    return true;
}

/* Register r from `in`; false when unavailable (nothing changed). */
static bool reg_set(struct gdb_regs *g, unsigned r, const uint8_t *in)
{
    struct vcpu_state *st = &g->st;
    struct vcpu_fpu *f = &g->fpu;
    uint64_t v = 0;
    for (unsigned i = 0; i < reg_size(r) && i < 8; i++)
        v |= (uint64_t)in[i] << (8 * i);
    if (reg_is_fpu(r) && !g->has_fpu)
        return false;
    if (r >= R_ST0 && r < R_ST0 + 8)
        memcpy(f->st[r - R_ST0], in, 10);
    else if (r >= R_XMM0 && r < R_MXCSR)
        memcpy(f->xmm[r - R_XMM0], in, 16);
    else if (r == R_MXCSR)
        f->mxcsr = (uint32_t)v;
    else if (reg_is_fpu(r))
        set_fpu_word(f, r - R_ST0 - 8, (uint32_t)v);
    else if (r < 16)
        st->gpr[gpr_of[r]] = v;
    else if (r == R_RIP)
        st->rip = v;
    else if (r == R_EFLAGS)
        st->rflags = v;
    else if (r <= R_GS)
        st->seg[seg_of[r - R_CS]].selector = (uint16_t)v; /* the selector only */
    else
        *sys_reg(st, r) = v;
    return true;
}

/* Register r in hex at out ('x' for unavailable ones); the number of characters. */
static size_t reg_hex(const struct gdb_regs *g, unsigned r, char *out)
{
    size_t n = 2 * reg_size(r);
    uint8_t bytes[16];
    if (!reg_get(g, r, bytes))
        memset(out, 'x', n);
    else
        put_hex_bytes(out, bytes, reg_size(r));
    return n;
}

size_t gdb_encode_regs(const struct gdb_regs *g, char *hex, size_t cap)
{
    if (cap < 2 * GDB_REGS_BYTES)
        return 0;
    size_t n = 0;
    for (unsigned r = 0; r < NR_REGS; r++)
        n += reg_hex(g, r, hex + n);
    return n;
}

int gdb_decode_regs(const char *hex, size_t len, struct gdb_regs *g)
{
    if (len != 2 * GDB_REGS_BYTES)
        return -1;
    for (unsigned r = 0; r < NR_REGS; r++) {
        size_t n = reg_size(r);
        uint8_t bytes[16];
        /* 'x' (unavailable, as gdb sends back what it could not read) leaves a register */
        if (hex[0] != 'x') {
            if (!get_hex_bytes(hex, bytes, n))
                return -1;
            reg_set(g, r, bytes);
        }
        hex += 2 * n;
    }
    return 0;
}

/* --- the session ------------------------------------------------------------------------- */

void gdb_session_init(struct gdb_session *s, const struct gdb_target_ops *ops, void *ctx)
{
    memset(s, 0, sizeof(*s));
    s->ops = ops;
    s->ctx = ctx;
    gdb_framer_init(&s->framer);
    s->last_stop.signal = 5;
}

static void reply_n(struct gdb_session *s, const char *payload, size_t len)
{
    char frame[2 * GDB_MAX_PACKET + 8];
    size_t n = gdb_frame(frame, sizeof(frame), payload, len);
    if (n)
        s->ops->send(s->ctx, frame, n);
}

static void reply(struct gdb_session *s, const char *payload)
{
    reply_n(s, payload, strlen(payload));
}

static unsigned nr_threads(struct gdb_session *s)
{
    return s->ops->nr_threads(s->ctx);
}

/* A thread id: -1 (all), 0 (any) or 1..nr_threads; *vcpu gets the vCPU (any and all: the
 * first). False when malformed or unknown. */
static bool parse_thread(struct gdb_session *s, const char *p, const char *end, unsigned *vcpu,
                         bool *all)
{
    *all = false;
    if (end - p == 2 && p[0] == '-' && p[1] == '1') {
        *all = true;
        *vcpu = 0;
        return true;
    }
    uint64_t id;
    if (!parse_hex(&p, end, &id) || p != end || id > nr_threads(s))
        return false;
    *vcpu = id ? (unsigned)id - 1 : 0;
    return true;
}

static void stop_reply(struct gdb_session *s, const struct gdb_stop *stop)
{
    char buf[96];
    int n = snprintf(buf, sizeof(buf), "T%02x", stop->signal & 0xff);
    if (stop->watch) {
        const char *what = stop->kind == ACCEL_WATCH_WRITE  ? "watch"
                           : stop->kind == ACCEL_WATCH_READ ? "rwatch"
                                                            : "awatch";
        n += snprintf(buf + n, sizeof(buf) - (size_t)n, "%s:%" PRIx64 ";", what, stop->addr);
    }
    snprintf(buf + n, sizeof(buf) - (size_t)n, "thread:%x;", stop->vcpu + 1);
    reply(s, buf);
}

void gdb_session_stopped(struct gdb_session *s, const struct gdb_stop *stop)
{
    s->running = false;
    s->last_stop = *stop;
    s->g_vcpu = s->c_vcpu = stop->vcpu;
    stop_reply(s, stop);
}

static void cmd_qxfer(struct gdb_session *s, const char *p, const char *end)
{
    static const char annex[] = "target.xml:";
    uint64_t off, len;
    if ((size_t)(end - p) < sizeof(annex) - 1 || memcmp(p, annex, sizeof(annex) - 1)) {
        reply(s, "E00");
        return;
    }
    p += sizeof(annex) - 1;
    if (!parse_hex(&p, end, &off) || !expect(&p, end, ',') || !parse_hex(&p, end, &len) ||
        p != end) {
        reply(s, "E01");
        return;
    }
    size_t total = sizeof(target_xml) - 1;
    if (off >= total) {
        reply(s, "l");
        return;
    }
    if (len > GDB_MAX_PACKET - 1)
        len = GDB_MAX_PACKET - 1;
    size_t n = total - (size_t)off < len ? total - (size_t)off : (size_t)len;
    char buf[GDB_MAX_PACKET];
    buf[0] = (size_t)off + n < total ? 'm' : 'l';
    memcpy(buf + 1, target_xml + off, n);
    reply_n(s, buf, n + 1);
}

static void cmd_query(struct gdb_session *s, const char *p, const char *end)
{
    size_t len = (size_t)(end - p);
    char buf[GDB_MAX_PACKET];
    if (len >= 11 && !memcmp(p, "qSupported", 10)) {
        reply(s, "PacketSize=1000;qXfer:features:read+;QStartNoAckMode+;vContSupported+");
    } else if (len > 31 && !memcmp(p, "qXfer:features:read:", 20)) {
        cmd_qxfer(s, p + 20, end);
    } else if (len == 12 && !memcmp(p, "qfThreadInfo", 12)) {
        size_t n = 0;
        buf[n++] = 'm';
        for (unsigned i = 0; i < nr_threads(s) && n + 12 < sizeof(buf); i++)
            n += (size_t)snprintf(buf + n, sizeof(buf) - n, i ? ",%x" : "%x", i + 1);
        reply_n(s, buf, n);
    } else if (len == 12 && !memcmp(p, "qsThreadInfo", 12)) {
        reply(s, "l");
    } else if (len == 2 && !memcmp(p, "qC", 2)) {
        snprintf(buf, sizeof(buf), "QC%x", s->g_vcpu + 1);
        reply(s, buf);
    } else if (len >= 9 && !memcmp(p, "qAttached", 9)) {
        reply(s, "1");
    } else if (len == 15 && !memcmp(p, "QStartNoAckMode", 15)) {
        reply(s, "OK");
        s->no_ack = true;
    } else {
        reply(s, "");
    }
}

/* m/M/X: "addr,len" then (for writes) ':' and the data. */
static bool parse_addr_len(const char **p, const char *end, uint64_t *addr, uint64_t *len)
{
    return parse_hex(p, end, addr) && expect(p, end, ',') && parse_hex(p, end, len);
}

#define MAX_MEM_READ ((GDB_MAX_PACKET - 1) / 2)

static void cmd_read_mem(struct gdb_session *s, const char *p, const char *end)
{
    uint64_t addr, len;
    if (!parse_addr_len(&p, end, &addr, &len) || p != end) {
        reply(s, "E01");
        return;
    }
    if (len > MAX_MEM_READ)
        len = MAX_MEM_READ; /* gdb asks again for the rest */
    uint8_t data[MAX_MEM_READ];
    size_t got = len ? s->ops->read_mem(s->ctx, s->g_vcpu, addr, data, (size_t)len) : 0;
    if (len && !got) {
        reply(s, "E14"); /* EFAULT: not mapped */
        return;
    }
    char hex[2 * MAX_MEM_READ];
    put_hex_bytes(hex, data, got);
    reply_n(s, hex, 2 * got);
}

static void cmd_write_mem(struct gdb_session *s, const char *p, const char *end, bool binary)
{
    uint64_t addr, len;
    if (!parse_addr_len(&p, end, &addr, &len) || !expect(&p, end, ':') || len > GDB_MAX_PACKET ||
        (size_t)(end - p) != (binary ? len : 2 * len)) {
        reply(s, "E01");
        return;
    }
    uint8_t data[GDB_MAX_PACKET];
    if (binary)
        memcpy(data, p, (size_t)len);
    else if (!get_hex_bytes(p, data, (size_t)len)) {
        reply(s, "E01");
        return;
    }
    bool ok = !len || s->ops->write_mem(s->ctx, s->g_vcpu, addr, data, (size_t)len) == len;
    reply(s, ok ? "OK" : "E14");
}

/* vcpu's registers: the general state, and x87/SSE where the target has them. */
static int get_all(struct gdb_session *s, unsigned vcpu, struct gdb_regs *g)
{
    memset(g, 0, sizeof(*g));
    if (s->ops->get_regs(s->ctx, vcpu, &g->st) < 0)
        return -1;
    g->has_fpu = s->ops->get_fpu && s->ops->get_fpu(s->ctx, vcpu, &g->fpu) == 0;
    return 0;
}

/* Both parts back (the FPU one first: a refused MXCSR then changes nothing). */
static int set_all(struct gdb_session *s, unsigned vcpu, const struct gdb_regs *g)
{
    if (g->has_fpu && (!s->ops->set_fpu || s->ops->set_fpu(s->ctx, vcpu, &g->fpu) < 0))
        return -1;
    return s->ops->set_regs(s->ctx, vcpu, &g->st);
}

static void cmd_read_regs(struct gdb_session *s)
{
    struct gdb_regs g;
    char hex[2 * GDB_REGS_BYTES];
    if (get_all(s, s->g_vcpu, &g) < 0) {
        reply(s, "E01");
        return;
    }
    reply_n(s, hex, gdb_encode_regs(&g, hex, sizeof(hex)));
}

static void cmd_write_regs(struct gdb_session *s, const char *p, const char *end)
{
    struct gdb_regs g;
    if (get_all(s, s->g_vcpu, &g) < 0 || gdb_decode_regs(p, (size_t)(end - p), &g) < 0 ||
        set_all(s, s->g_vcpu, &g) < 0) {
        reply(s, "E01");
        return;
    }
    reply(s, "OK");
}

static void cmd_one_reg(struct gdb_session *s, const char *p, const char *end, bool write)
{
    uint64_t r;
    struct gdb_regs g;
    if (!parse_hex(&p, end, &r) || r >= NR_REGS || (write && !expect(&p, end, '=')) ||
        (!write && p != end) || get_all(s, s->g_vcpu, &g) < 0) {
        reply(s, "E01");
        return;
    }
    if (!write) {
        char hex[32];
        reply_n(s, hex, reg_hex(&g, (unsigned)r, hex));
        return;
    }
    uint8_t bytes[16];
    size_t n = reg_size((unsigned)r);
    if ((size_t)(end - p) != 2 * n || !get_hex_bytes(p, bytes, n) ||
        !reg_set(&g, (unsigned)r, bytes)) {
        reply(s, "E01");
        return;
    }
    /* only the part that changed goes back (a general-register write reloads the CPU mode) */
    int rc = !reg_is_fpu((unsigned)r) ? s->ops->set_regs(s->ctx, s->g_vcpu, &g.st)
             : s->ops->set_fpu        ? s->ops->set_fpu(s->ctx, s->g_vcpu, &g.fpu)
                                      : -1;
    reply(s, rc < 0 ? "E01" : "OK");
}

static void cmd_thread(struct gdb_session *s, const char *p, const char *end)
{
    unsigned vcpu;
    bool all;
    if (p < end && (*p == 'g' || *p == 'c') && parse_thread(s, p + 1, end, &vcpu, &all)) {
        if (*p == 'g')
            s->g_vcpu = vcpu;
        else
            s->c_vcpu = vcpu;
        reply(s, "OK");
        return;
    }
    reply(s, "E22");
}

/* Z/z: "type,addr,kind". */
static void cmd_breakpoint(struct gdb_session *s, const char *p, const char *end, bool insert)
{
    uint64_t type, addr, kind;
    if (!parse_hex(&p, end, &type) || !expect(&p, end, ',') || !parse_hex(&p, end, &addr) ||
        !expect(&p, end, ',') || !parse_hex(&p, end, &kind)) {
        reply(s, "E01");
        return;
    }
    if (type > 4) {
        reply(s, ""); /* not supported */
        return;
    }
    struct accel_debug next = s->dbg;
    if (type <= 1) { /* software and hardware breakpoints alike: the accelerator's */
        unsigned i = 0;
        while (i < next.nr_breakpoints && next.breakpoint[i] != addr)
            i++;
        if (insert && i == next.nr_breakpoints) {
            if (i == ACCEL_MAX_BREAKPOINTS) {
                reply(s, "E28"); /* ENOSPC */
                return;
            }
            next.breakpoint[next.nr_breakpoints++] = addr;
        } else if (!insert && i < next.nr_breakpoints) {
            next.breakpoint[i] = next.breakpoint[--next.nr_breakpoints];
        }
    } else {
        static const uint8_t kinds[5] = {0, 0, ACCEL_WATCH_WRITE, ACCEL_WATCH_READ,
                                         ACCEL_WATCH_ACCESS};
        if (kind < 1 || kind > 8) {
            reply(s, "E22");
            return;
        }
        struct accel_watchpoint w = {addr, (uint8_t)kind, kinds[type]};
        unsigned i = 0;
        while (i < next.nr_watchpoints && memcmp(&next.watchpoint[i], &w, sizeof(w)))
            i++;
        if (insert && i == next.nr_watchpoints) {
            if (i == ACCEL_MAX_WATCHPOINTS) {
                reply(s, "E28");
                return;
            }
            next.watchpoint[next.nr_watchpoints++] = w;
        } else if (!insert && i < next.nr_watchpoints) {
            next.watchpoint[i] = next.watchpoint[--next.nr_watchpoints];
        }
    }
    if (s->ops->set_debug(s->ctx, &next) < 0) {
        reply(s, "E28");
        return;
    }
    s->dbg = next;
    reply(s, "OK");
}

static void resume(struct gdb_session *s, int step_vcpu)
{
    s->running = true;
    s->ops->resume(s->ctx, step_vcpu);
}

/* c/s with an optional address to resume at. */
static void cmd_continue(struct gdb_session *s, const char *p, const char *end, bool step)
{
    if (p < end) {
        uint64_t addr;
        struct vcpu_state st;
        if (!parse_hex(&p, end, &addr) || p != end ||
            s->ops->get_regs(s->ctx, s->c_vcpu, &st) < 0) {
            reply(s, "E01");
            return;
        }
        st.rip = addr;
        if (s->ops->set_regs(s->ctx, s->c_vcpu, &st) < 0) {
            reply(s, "E01");
            return;
        }
    }
    resume(s, step ? (int)s->c_vcpu : -1);
}

/* vCont;action[:thread](;action[:thread])*: a step for one thread (or all: the current one)
 * steps it; everything else continues. Signals are not passed to the guest. */
static void cmd_vcont(struct gdb_session *s, const char *p, const char *end)
{
    int step = -1;
    while (p < end) {
        if (!expect(&p, end, ';') || p >= end) {
            reply(s, "E01");
            return;
        }
        char action = *p++;
        if (action == 'C' || action == 'S') {
            uint64_t sig;
            if (!parse_hex(&p, end, &sig)) {
                reply(s, "E01");
                return;
            }
        } else if (action != 'c' && action != 's') {
            reply(s, "E01");
            return;
        }
        const char *t = p;
        while (p < end && *p != ';')
            p++;
        unsigned vcpu = s->c_vcpu;
        bool all = true;
        if (t < p && (*t != ':' || !parse_thread(s, t + 1, p, &vcpu, &all))) {
            reply(s, "E22");
            return;
        }
        if ((action == 's' || action == 'S') && step < 0)
            step = all ? (int)s->c_vcpu : (int)vcpu;
    }
    resume(s, step);
}

static void cmd_v(struct gdb_session *s, const char *p, const char *end)
{
    size_t len = (size_t)(end - p);
    if (len == 6 && !memcmp(p, "vCont?", 6))
        reply(s, "vCont;c;C;s;S");
    else if (len >= 5 && !memcmp(p, "vCont", 5) && (len == 5 || p[5] == ';'))
        cmd_vcont(s, p + 5, end);
    else
        reply(s, "");
}

static void detach(struct gdb_session *s)
{
    struct accel_debug none;
    memset(&none, 0, sizeof(none));
    s->ops->set_debug(s->ctx, &none);
    s->dbg = none;
    s->detached = true;
}

void gdb_session_packet(struct gdb_session *s, const char *pkt, size_t len)
{
    const char *end = pkt + len;
    if (!len) {
        reply(s, "");
        return;
    }
    if (s->running) {
        reply(s, "E16"); /* EBUSY: all-stop; the debugger waits for the stop reply */
        return;
    }
    switch (pkt[0]) {
    case '?':
        stop_reply(s, &s->last_stop);
        break;
    case 'q':
    case 'Q':
        cmd_query(s, pkt, end);
        break;
    case 'g':
        if (len == 1)
            cmd_read_regs(s);
        else
            reply(s, "E01");
        break;
    case 'G':
        cmd_write_regs(s, pkt + 1, end);
        break;
    case 'p':
    case 'P':
        cmd_one_reg(s, pkt + 1, end, pkt[0] == 'P');
        break;
    case 'm':
        cmd_read_mem(s, pkt + 1, end);
        break;
    case 'M':
    case 'X':
        cmd_write_mem(s, pkt + 1, end, pkt[0] == 'X');
        break;
    case 'H':
        cmd_thread(s, pkt + 1, end);
        break;
    case 'T': {
        unsigned vcpu;
        bool all;
        reply(s, parse_thread(s, pkt + 1, end, &vcpu, &all) ? "OK" : "E22");
        break;
    }
    case 'Z':
    case 'z':
        cmd_breakpoint(s, pkt + 1, end, pkt[0] == 'Z');
        break;
    case 'c':
    case 's':
        cmd_continue(s, pkt + 1, end, pkt[0] == 's');
        break;
    case 'v':
        cmd_v(s, pkt, end);
        break;
    case 'D':
        detach(s);
        reply(s, "OK");
        s->ops->resume(s->ctx, -1);
        break;
    case 'k':
        detach(s);
        s->ops->kill(s->ctx);
        break;
    default:
        reply(s, "");
        break;
    }
}

void gdb_session_input(struct gdb_session *s, const uint8_t *data, size_t len)
{
    for (size_t i = 0; i < len && !s->detached; i++) {
        switch (gdb_framer_push(&s->framer, data[i])) {
        case GDB_FRAME_PACKET:
            if (!s->no_ack)
                s->ops->send(s->ctx, "+", 1);
            gdb_session_packet(s, s->framer.buf, s->framer.len);
            break;
        case GDB_FRAME_BAD:
            if (!s->no_ack)
                s->ops->send(s->ctx, "-", 1);
            break;
        case GDB_FRAME_INTERRUPT:
            if (s->running)
                s->ops->interrupt(s->ctx);
            break;
        case GDB_FRAME_NONE:
            break;
        }
    }
}
