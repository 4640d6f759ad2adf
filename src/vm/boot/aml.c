#include "vm/boot/aml.h"

#include <stdlib.h>
#include <string.h>

/* AML opcodes and prefixes (ACPI 6.x, 20.2) */
#define AML_ZERO 0x00
#define AML_ONE 0x01
#define AML_NAME_OP 0x08
#define AML_BYTE_PREFIX 0x0a
#define AML_WORD_PREFIX 0x0b
#define AML_DWORD_PREFIX 0x0c
#define AML_STRING_PREFIX 0x0d
#define AML_QWORD_PREFIX 0x0e
#define AML_SCOPE_OP 0x10
#define AML_BUFFER_OP 0x11
#define AML_PACKAGE_OP 0x12
#define AML_METHOD_OP 0x14
#define AML_DUAL_NAME_PREFIX 0x2e
#define AML_MULTI_NAME_PREFIX 0x2f
#define AML_EXT_OP_PREFIX 0x5b
#define AML_DEVICE_OP 0x82 /* after AML_EXT_OP_PREFIX */
#define AML_ROOT_CHAR '\\'
#define AML_PARENT_PREFIX '^'
#define AML_RETURN_OP 0xa4
#define AML_NAME_SEG_LEN 4
#define AML_MAX_SEGMENTS 255
#define AML_MAX_PKGLEN 0x0fffffffu /* 28 bits: the largest 4-byte PkgLength */

/* Resource descriptor tags (ACPI 6.x, 6.4) */
#define RES_IRQ_NO_FLAGS 0x22 /* small: IRQ, 2 bytes */
#define RES_IO 0x47           /* small: I/O port, 7 bytes */
#define RES_END_TAG 0x79      /* small: end tag, 1 byte */
#define RES_MEMORY32_FIXED 0x86
#define RES_DWORD_ADDRESS 0x87
#define RES_WORD_ADDRESS 0x88
#define RES_EXT_INTERRUPT 0x89
#define RES_QWORD_ADDRESS 0x8a
#define RES_IO_DECODE16 0x01
#define RES_TYPE_MEMORY 0
#define RES_TYPE_IO 1
#define RES_TYPE_BUS 2
/* General flags: producer, positive decode, minimum and maximum fixed */
#define RES_GEN_PRODUCER_FIXED 0x0c
#define RES_IO_ENTIRE_RANGE 0x03
#define RES_MEM_READ_WRITE 0x01
#define RES_MEM_PREFETCHABLE 0x06 /* _MEM = 3 */
#define RES_INT_CONSUMER 0x01
#define RES_INT_EDGE 0x02
#define RES_INT_ACTIVE_LOW 0x04
#define RES_INT_SHARED 0x08

/* How a block closes. */
enum { BLOCK_PLAIN, BLOCK_BUFFER, BLOCK_RESOURCES };

void aml_init(struct aml_buf *a, size_t limit)
{
    memset(a, 0, sizeof(*a));
    a->limit = limit;
}

void aml_free(struct aml_buf *a)
{
    free(a->data);
    a->data = NULL;
    a->len = a->alloc = 0;
}

bool aml_ok(const struct aml_buf *a)
{
    return !a->failed && a->depth == 0;
}

/* Make room for n more bytes, growing geometrically up to the limit. */
static bool reserve(struct aml_buf *a, size_t n)
{
    if (a->failed)
        return false;
    if (n > a->limit || a->len > a->limit - n) {
        a->failed = true;
        return false;
    }
    if (a->len + n <= a->alloc)
        return true;
    size_t want = a->alloc ? a->alloc : 256;
    while (want < a->len + n)
        want *= 2;
    if (want > a->limit)
        want = a->limit;
    uint8_t *p = realloc(a->data, want);
    if (!p) {
        a->failed = true;
        return false;
    }
    a->data = p;
    a->alloc = want;
    return true;
}

void aml_bytes(struct aml_buf *a, const void *p, size_t n)
{
    if (n == 0)
        return; /* data may still be NULL: memcpy must not see it */
    if (!reserve(a, n))
        return;
    memcpy(a->data + a->len, p, n);
    a->len += n;
}

void aml_byte(struct aml_buf *a, uint8_t b)
{
    aml_bytes(a, &b, 1);
}

static void put_le(struct aml_buf *a, uint64_t v, unsigned bytes)
{
    uint8_t b[8];
    for (unsigned i = 0; i < bytes; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    aml_bytes(a, b, bytes);
}

/* --- names ------------------------------------------------------------------------------ */

static bool seg_char_ok(char c, bool first)
{
    return (c >= 'A' && c <= 'Z') || c == '_' || (!first && c >= '0' && c <= '9');
}

/* One NameSeg from path[0..n): checked, padded with '_'. */
static bool put_seg(uint8_t *out, const char *s, size_t n)
{
    if (n == 0 || n > AML_NAME_SEG_LEN)
        return false;
    for (size_t i = 0; i < AML_NAME_SEG_LEN; i++) {
        char c = i < n ? s[i] : '_';
        if (!seg_char_ok(c, i == 0))
            return false;
        out[i] = (uint8_t)c;
    }
    return true;
}

/* Encode the segments of `path` (after its prefixes) into out; returns how many, -1 when
 * malformed. */
static int encode_segments(const char *path, uint8_t *out, size_t out_segs)
{
    int nr = 0;
    while (*path) {
        const char *dot = strchr(path, '.');
        size_t n = dot ? (size_t)(dot - path) : strlen(path);
        if ((size_t)nr == out_segs || !put_seg(out + AML_NAME_SEG_LEN * nr, path, n))
            return -1;
        nr++;
        path += n;
        if (dot && !*++path)
            return -1; /* trailing dot */
    }
    return nr;
}

void aml_name_string(struct aml_buf *a, const char *path)
{
    uint8_t prefix[AML_MAX_SEGMENTS];
    size_t nr_prefix = 0;
    if (*path == AML_ROOT_CHAR)
        prefix[nr_prefix++] = (uint8_t)*path++;
    else
        while (*path == AML_PARENT_PREFIX && nr_prefix < sizeof(prefix))
            prefix[nr_prefix++] = (uint8_t)*path++;
    uint8_t segs[AML_NAME_SEG_LEN * 8]; /* our paths are short; deeper ones are refused */
    int nr = encode_segments(path, segs, sizeof(segs) / AML_NAME_SEG_LEN);
    if (nr < 0 || (nr == 0 && !(nr_prefix == 1 && prefix[0] == AML_ROOT_CHAR))) {
        a->failed = true;
        return;
    }
    aml_bytes(a, prefix, nr_prefix);
    if (nr == 0)
        aml_byte(a, 0x00); /* NullName: "\" alone */
    else if (nr == 2)
        aml_byte(a, AML_DUAL_NAME_PREFIX);
    else if (nr > 2) {
        aml_byte(a, AML_MULTI_NAME_PREFIX);
        aml_byte(a, (uint8_t)nr);
    }
    aml_bytes(a, segs, (size_t)nr * AML_NAME_SEG_LEN);
}

/* --- data objects ----------------------------------------------------------------------- */

void aml_integer(struct aml_buf *a, uint64_t v)
{
    if (v == 0) {
        aml_byte(a, AML_ZERO);
    } else if (v == 1) {
        aml_byte(a, AML_ONE);
    } else if (v <= UINT8_MAX) {
        aml_byte(a, AML_BYTE_PREFIX);
        put_le(a, v, 1);
    } else if (v <= UINT16_MAX) {
        aml_byte(a, AML_WORD_PREFIX);
        put_le(a, v, 2);
    } else if (v <= UINT32_MAX) {
        aml_byte(a, AML_DWORD_PREFIX);
        put_le(a, v, 4);
    } else {
        aml_byte(a, AML_QWORD_PREFIX);
        put_le(a, v, 8);
    }
}

void aml_string(struct aml_buf *a, const char *s)
{
    for (const char *c = s; *c; c++)
        if ((unsigned char)*c > 0x7f) {
            a->failed = true; /* AML strings are ASCII */
            return;
        }
    aml_byte(a, AML_STRING_PREFIX);
    aml_bytes(a, s, strlen(s) + 1);
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The compressed id is stored big-endian in a little-endian DWord, hence the byte swap. */
void aml_eisaid(struct aml_buf *a, const char *id)
{
    if (strlen(id) != 7) {
        a->failed = true;
        return;
    }
    uint32_t v = 0;
    for (int i = 0; i < 3; i++) {
        if (id[i] < 'A' || id[i] > 'Z') {
            a->failed = true;
            return;
        }
        v = v << 5 | (uint32_t)(id[i] - 0x40);
    }
    for (int i = 3; i < 7; i++) {
        int d = hex_digit(id[i]);
        if (d < 0) {
            a->failed = true;
            return;
        }
        v = v << 4 | (uint32_t)d;
    }
    aml_byte(a, AML_DWORD_PREFIX);
    put_le(a, __builtin_bswap32(v), 4);
}

void aml_name(struct aml_buf *a, const char *name)
{
    aml_byte(a, AML_NAME_OP);
    aml_name_string(a, name);
}

void aml_name_integer(struct aml_buf *a, const char *name, uint64_t v)
{
    aml_name(a, name);
    aml_integer(a, v);
}

void aml_name_string_value(struct aml_buf *a, const char *name, const char *s)
{
    aml_name(a, name);
    aml_string(a, s);
}

void aml_name_eisaid(struct aml_buf *a, const char *name, const char *id)
{
    aml_name(a, name);
    aml_eisaid(a, id);
}

void aml_return(struct aml_buf *a)
{
    aml_byte(a, AML_RETURN_OP);
}

/* --- blocks ----------------------------------------------------------------------------- */

/* Remember where the block's PkgLength goes; it is inserted there on close. */
static void open_block(struct aml_buf *a, uint8_t kind)
{
    if (a->failed)
        return;
    if (a->depth == AML_MAX_DEPTH) {
        a->failed = true;
        return;
    }
    a->open[a->depth].start = a->len;
    a->open[a->depth].kind = kind;
    a->depth++;
}

void aml_scope(struct aml_buf *a, const char *path)
{
    aml_byte(a, AML_SCOPE_OP);
    open_block(a, BLOCK_PLAIN);
    aml_name_string(a, path);
}

void aml_device(struct aml_buf *a, const char *path)
{
    aml_byte(a, AML_EXT_OP_PREFIX);
    aml_byte(a, AML_DEVICE_OP);
    open_block(a, BLOCK_PLAIN);
    aml_name_string(a, path);
}

void aml_method(struct aml_buf *a, const char *path, unsigned nargs, bool serialized)
{
    if (nargs > 7) {
        a->failed = true;
        return;
    }
    aml_byte(a, AML_METHOD_OP);
    open_block(a, BLOCK_PLAIN);
    aml_name_string(a, path);
    aml_byte(a, (uint8_t)(nargs | (serialized ? 0x08 : 0)));
}

void aml_package(struct aml_buf *a, unsigned nr_elements)
{
    if (nr_elements > UINT8_MAX) {
        a->failed = true; /* VarPackage would be needed */
        return;
    }
    aml_byte(a, AML_PACKAGE_OP);
    open_block(a, BLOCK_PLAIN);
    aml_byte(a, (uint8_t)nr_elements);
}

void aml_buffer(struct aml_buf *a)
{
    aml_byte(a, AML_BUFFER_OP);
    open_block(a, BLOCK_BUFFER);
}

void aml_resource_template(struct aml_buf *a)
{
    aml_byte(a, AML_BUFFER_OP);
    open_block(a, BLOCK_RESOURCES);
}

/* Bytes a PkgLength needs in front of `body` bytes (it counts itself); 0 when too long. */
static size_t pkglen_size(size_t body)
{
    if (body + 1 <= 0x3f)
        return 1;
    if (body + 2 <= 0xfff)
        return 2;
    if (body + 3 <= 0xfffff)
        return 3;
    if (body + 4 <= AML_MAX_PKGLEN)
        return 4;
    return 0;
}

/* A 1-byte PkgLength holds 6 bits; longer ones put 4 bits in the lead byte (with the count of
 * following bytes in bits 7:6) and 8 in each following byte. */
static void encode_pkglen(uint8_t *p, size_t n, size_t value)
{
    if (n == 1) {
        p[0] = (uint8_t)value;
        return;
    }
    p[0] = (uint8_t)((n - 1) << 6 | (value & 0x0f));
    value >>= 4;
    for (size_t i = 1; i < n; i++, value >>= 8)
        p[i] = (uint8_t)value;
}

/* Insert prefix (PkgLength, and a buffer's size) in front of the block body at start. */
static void insert_prefix(struct aml_buf *a, size_t start, const uint8_t *prefix, size_t n)
{
    if (!reserve(a, n))
        return;
    memmove(a->data + start + n, a->data + start, a->len - start);
    memcpy(a->data + start, prefix, n);
    a->len += n;
}

void aml_end(struct aml_buf *a)
{
    if (a->failed)
        return;
    if (a->depth == 0) {
        a->failed = true;
        return;
    }
    uint8_t kind = a->open[a->depth - 1].kind;
    if (kind == BLOCK_RESOURCES) {
        aml_byte(a, RES_END_TAG);
        aml_byte(a, 0); /* checksum 0: "treat as if the checksum were correct" */
    }
    size_t start = a->open[--a->depth].start;
    if (a->failed)
        return;
    uint8_t prefix[4 + 9];
    size_t size_len = 0;
    if (kind != BLOCK_PLAIN) {
        /* BufferSize is an integer term after the PkgLength. */
        struct aml_buf tmp;
        aml_init(&tmp, 9);
        aml_integer(&tmp, a->len - start);
        if (!aml_ok(&tmp)) {
            aml_free(&tmp);
            a->failed = true;
            return;
        }
        size_len = tmp.len;
        memcpy(prefix + 4, tmp.data, size_len);
        aml_free(&tmp);
    }
    size_t body = size_len + (a->len - start);
    size_t n = pkglen_size(body);
    if (n == 0) {
        a->failed = true;
        return;
    }
    encode_pkglen(prefix + 4 - n, n, n + body);
    insert_prefix(a, start, prefix + 4 - n, n + size_len);
}

/* --- resource descriptors --------------------------------------------------------------- */

static void large_header(struct aml_buf *a, uint8_t tag, uint16_t len)
{
    aml_byte(a, tag);
    put_le(a, len, 2);
}

/* Word/DWord/QWord address space descriptors share one layout with fields of `width` bytes:
 * type, general flags, type-specific flags, granularity, min, max, translation, length. */
static void address_space(struct aml_buf *a, uint8_t tag, unsigned width, uint8_t type,
                          uint8_t type_flags, uint64_t min, uint64_t max)
{
    if (max < min) {
        a->failed = true;
        return;
    }
    large_header(a, tag, (uint16_t)(3 + 5 * width));
    aml_byte(a, type);
    aml_byte(a, RES_GEN_PRODUCER_FIXED);
    aml_byte(a, type_flags);
    put_le(a, 0, width); /* granularity */
    put_le(a, min, width);
    put_le(a, max, width);
    put_le(a, 0, width); /* translation offset */
    put_le(a, max - min + 1, width);
}

void aml_word_bus_number(struct aml_buf *a, uint16_t min, uint16_t max)
{
    address_space(a, RES_WORD_ADDRESS, 2, RES_TYPE_BUS, 0, min, max);
}

void aml_io(struct aml_buf *a, uint16_t min, uint16_t max, uint8_t align, uint8_t len)
{
    aml_byte(a, RES_IO);
    aml_byte(a, RES_IO_DECODE16);
    put_le(a, min, 2);
    put_le(a, max, 2);
    aml_byte(a, align);
    aml_byte(a, len);
}

void aml_word_io(struct aml_buf *a, uint16_t min, uint16_t max)
{
    address_space(a, RES_WORD_ADDRESS, 2, RES_TYPE_IO, RES_IO_ENTIRE_RANGE, min, max);
}

static uint8_t mem_flags(bool prefetchable)
{
    return RES_MEM_READ_WRITE | (prefetchable ? RES_MEM_PREFETCHABLE : 0);
}

void aml_dword_memory(struct aml_buf *a, uint32_t min, uint32_t max, bool prefetchable)
{
    address_space(a, RES_DWORD_ADDRESS, 4, RES_TYPE_MEMORY, mem_flags(prefetchable), min, max);
}

void aml_qword_memory(struct aml_buf *a, uint64_t min, uint64_t max, bool prefetchable)
{
    /* max - min + 1 must not wrap to 0 */
    if (min == 0 && max == UINT64_MAX) {
        a->failed = true;
        return;
    }
    address_space(a, RES_QWORD_ADDRESS, 8, RES_TYPE_MEMORY, mem_flags(prefetchable), min, max);
}

void aml_memory32_fixed(struct aml_buf *a, uint32_t base, uint32_t len)
{
    large_header(a, RES_MEMORY32_FIXED, 9);
    aml_byte(a, RES_MEM_READ_WRITE);
    put_le(a, base, 4);
    put_le(a, len, 4);
}

void aml_irq_no_flags(struct aml_buf *a, uint8_t irq)
{
    if (irq >= 16) {
        a->failed = true;
        return;
    }
    aml_byte(a, RES_IRQ_NO_FLAGS);
    put_le(a, 1u << irq, 2);
}

void aml_interrupt(struct aml_buf *a, uint32_t gsi, bool level, bool active_low, bool shared)
{
    large_header(a, RES_EXT_INTERRUPT, 6);
    aml_byte(a, (uint8_t)(RES_INT_CONSUMER | (level ? 0 : RES_INT_EDGE) |
                          (active_low ? RES_INT_ACTIVE_LOW : 0) | (shared ? RES_INT_SHARED : 0)));
    aml_byte(a, 1); /* one interrupt in the table */
    put_le(a, gsi, 4);
}
