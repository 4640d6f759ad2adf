#include "vm/boot/elf.h"

#include "util/log.h"
#include "vm/boot/loader.h"
#include "vm/memory.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ELF_ET_EXEC 2
#define ELF_ET_DYN 3
#define ELF32_EHDR_SIZE 52
#define ELF64_EHDR_SIZE 64
#define ELF32_PHDR_SIZE 32
#define ELF64_PHDR_SIZE 56
#define ELF_PN_XNUM 0xffff
#define ELF_NOTE_HDR_SIZE 12

bool elf_has_magic(const uint8_t *data, size_t size)
{
    return size >= 4 && memcmp(data,
                               "\x7f"
                               "ELF",
                               4) == 0;
}

int elf_open(struct elf_file *elf, const uint8_t *data, size_t size, char *err, size_t errlen)
{
    memset(elf, 0, sizeof(*elf));
    if (!elf_has_magic(data, size))
        return qk_fail(err, errlen, "not an ELF file (bad magic)");
    if (size < 16)
        return qk_fail(err, errlen, "ELF identification truncated (%zu bytes)", size);
    uint8_t cls = data[4], endian = data[5], version = data[6];
    if (cls != 1 && cls != 2)
        return qk_fail(err, errlen, "ELF class %u is neither ELF32 nor ELF64", cls);
    if (endian != 1)
        return qk_fail(err, errlen, "ELF data encoding %u is not little-endian", endian);
    if (version != 1)
        return qk_fail(err, errlen, "ELF identification version %u is not 1", version);
    elf->is64 = cls == 2;
    size_t ehdr_size = elf->is64 ? ELF64_EHDR_SIZE : ELF32_EHDR_SIZE;
    if (size < ehdr_size)
        return qk_fail(err, errlen, "ELF header truncated: file has %zu of %zu bytes", size,
                       ehdr_size);
    elf->data = data;
    elf->size = size;
    elf->type = get_le16(data + 16);
    elf->machine = get_le16(data + 18);
    if (elf->is64) {
        elf->entry = get_le64(data + 24);
        elf->phoff = get_le64(data + 32);
        elf->phentsize = get_le16(data + 54);
        elf->phnum = get_le16(data + 56);
    } else {
        elf->entry = get_le32(data + 24);
        elf->phoff = get_le32(data + 28);
        elf->phentsize = get_le16(data + 42);
        elf->phnum = get_le16(data + 44);
    }
    uint16_t want_machine = elf->is64 ? ELF_EM_X86_64 : ELF_EM_386;
    if (elf->machine != want_machine)
        return qk_fail(err, errlen, "ELF%d machine %u is not %s", elf->is64 ? 64 : 32, elf->machine,
                       elf->is64 ? "x86-64 (62)" : "i386 (3)");
    if (elf->type != ELF_ET_EXEC && elf->type != ELF_ET_DYN)
        return qk_fail(err, errlen, "ELF type %u is not an executable (EXEC or DYN)", elf->type);
    if (elf->phnum == 0)
        return qk_fail(err, errlen, "ELF file has no program headers");
    if (elf->phnum == ELF_PN_XNUM)
        return qk_fail(err, errlen, "ELF extended program header count is not supported");
    uint16_t want_phentsize = elf->is64 ? ELF64_PHDR_SIZE : ELF32_PHDR_SIZE;
    if (elf->phentsize != want_phentsize)
        return qk_fail(err, errlen, "ELF program header size %u is not %u", elf->phentsize,
                       want_phentsize);
    /* phnum * phentsize is at most 0xfffe * 56, so only the offset can overflow. */
    uint64_t table = (uint64_t)elf->phnum * elf->phentsize;
    if (elf->phoff > size || table > size - elf->phoff)
        return qk_fail(err, errlen,
                       "ELF program header table (%u entries at offset 0x%llx) extends past "
                       "the end of the %zu-byte file",
                       elf->phnum, (unsigned long long)elf->phoff, size);
    return 0;
}

void elf_segment_at(const struct elf_file *elf, unsigned i, struct elf_segment *seg)
{
    const uint8_t *p = elf->data + elf->phoff + (uint64_t)i * elf->phentsize;
    if (elf->is64) {
        seg->type = get_le32(p);
        seg->offset = get_le64(p + 8);
        seg->vaddr = get_le64(p + 16);
        seg->paddr = get_le64(p + 24);
        seg->filesz = get_le64(p + 32);
        seg->memsz = get_le64(p + 40);
        seg->align = get_le64(p + 48);
    } else {
        seg->type = get_le32(p);
        seg->offset = get_le32(p + 4);
        seg->vaddr = get_le32(p + 8);
        seg->paddr = get_le32(p + 12);
        seg->filesz = get_le32(p + 16);
        seg->memsz = get_le32(p + 20);
        seg->align = get_le32(p + 28);
    }
}

static bool file_range_ok(const struct elf_file *elf, uint64_t offset, uint64_t len)
{
    return offset <= elf->size && len <= elf->size - offset;
}

/* Scan one note segment. All arithmetic is in 64 bits on values below 2^32 plus offsets below
 * the segment size, so it cannot overflow; every iteration advances by at least the 12-byte
 * header, so the loop is bounded by the segment size. */
static int find_note_in(const uint8_t *notes, uint64_t len, uint64_t align, const char *name,
                        uint32_t type, const uint8_t **desc, uint32_t *descsz)
{
    uint64_t name_len = strlen(name) + 1;
    uint64_t off = 0;
    while (len - off >= ELF_NOTE_HDR_SIZE) {
        uint64_t namesz = get_le32(notes + off);
        uint64_t dsz = get_le32(notes + off + 4);
        uint32_t ntype = get_le32(notes + off + 8);
        uint64_t name_off = off + ELF_NOTE_HDR_SIZE;
        uint64_t desc_off = name_off + align_up_u64(namesz, align);
        if (desc_off > len || dsz > len - desc_off)
            return 0; /* malformed: the note claims more than its segment holds */
        if (ntype == type && namesz == name_len && memcmp(notes + name_off, name, name_len) == 0) {
            *desc = notes + desc_off;
            *descsz = (uint32_t)dsz;
            return 1;
        }
        uint64_t next = desc_off + align_up_u64(dsz, align);
        if (next > len)
            return 0;
        off = next;
    }
    return 0;
}

int elf_find_note(const struct elf_file *elf, const char *name, uint32_t type, const uint8_t **desc,
                  uint32_t *descsz)
{
    for (unsigned i = 0; i < elf->phnum; i++) {
        struct elf_segment seg;
        elf_segment_at(elf, i, &seg);
        if (seg.type != ELF_PT_NOTE || !file_range_ok(elf, seg.offset, seg.filesz))
            continue;
        /* Notes are 4-byte aligned in practice; honour an explicit 8-byte alignment. */
        uint64_t align = seg.align == 8 ? 8 : 4;
        if (find_note_in(elf->data + seg.offset, seg.filesz, align, name, type, desc, descsz))
            return 1;
    }
    return 0;
}

static int check_segment(const struct elf_file *elf, const struct guest_memory *mem, unsigned i,
                         const struct elf_segment *seg, char *err, size_t errlen)
{
    if (seg->filesz > seg->memsz)
        return qk_fail(err, errlen,
                       "ELF segment %u has a file size (0x%llx) larger than its memory size "
                       "(0x%llx)",
                       i, (unsigned long long)seg->filesz, (unsigned long long)seg->memsz);
    if (!file_range_ok(elf, seg->offset, seg->filesz))
        return qk_fail(err, errlen,
                       "ELF segment %u (0x%llx bytes at file offset 0x%llx) extends past the "
                       "end of the %zu-byte file",
                       i, (unsigned long long)seg->filesz, (unsigned long long)seg->offset,
                       elf->size);
    char what[32];
    snprintf(what, sizeof(what), "ELF segment %u", i);
    return boot_check_kernel_range(mem, seg->paddr, seg->memsz, what, err, errlen);
}

struct load_range {
    uint64_t start, end; /* [start, end) in guest-physical memory */
    unsigned index;
};

static int cmp_load_range(const void *a, const void *b)
{
    const struct load_range *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

/* Two PT_LOAD segments sharing memory: one would overwrite the other and the guest then runs
 * whatever won (a triple fault at best). Sorted, so a 65535-entry table costs n log n. */
static int check_overlaps(const struct elf_file *elf, char *err, size_t errlen)
{
    struct load_range *r = malloc((size_t)elf->phnum * sizeof(*r));
    if (!r)
        return qk_fail(err, errlen, "out of memory checking %u ELF program headers", elf->phnum);
    size_t n = 0;
    for (unsigned i = 0; i < elf->phnum; i++) {
        struct elf_segment seg;
        elf_segment_at(elf, i, &seg);
        if (seg.type == ELF_PT_LOAD && seg.memsz != 0) /* checked: no wrap-around */
            r[n++] = (struct load_range){seg.paddr, seg.paddr + seg.memsz, i};
    }
    qsort(r, n, sizeof(*r), cmp_load_range);
    for (size_t k = 1; k < n; k++) {
        if (r[k].start < r[k - 1].end) {
            unsigned a = r[k - 1].index < r[k].index ? r[k - 1].index : r[k].index;
            unsigned b = r[k - 1].index < r[k].index ? r[k].index : r[k - 1].index;
            qk_fail(err, errlen,
                    "ELF segments %u and %u overlap in memory (at 0x%llx): refusing a file "
                    "whose segments would overwrite each other",
                    a, b, (unsigned long long)r[k].start);
            free(r);
            return -1;
        }
    }
    free(r);
    return 0;
}

int elf_check_segments(const struct elf_file *elf, const struct guest_memory *mem, uint64_t *lo,
                       uint64_t *hi, char *err, size_t errlen)
{
    uint64_t low = UINT64_MAX, high = 0;
    unsigned loaded = 0;
    for (unsigned i = 0; i < elf->phnum; i++) {
        struct elf_segment seg;
        elf_segment_at(elf, i, &seg);
        if (seg.type != ELF_PT_LOAD || seg.memsz == 0)
            continue;
        if (check_segment(elf, mem, i, &seg, err, errlen) < 0)
            return -1;
        if (seg.paddr < low)
            low = seg.paddr;
        if (seg.paddr + seg.memsz > high)
            high = seg.paddr + seg.memsz;
        loaded++;
    }
    if (loaded == 0)
        return qk_fail(err, errlen, "ELF file has no loadable segments");
    if (loaded > 1 && check_overlaps(elf, err, errlen) < 0)
        return -1;
    *lo = low;
    *hi = high;
    return 0;
}

int elf_load_segments(const struct elf_file *elf, struct guest_memory *mem, uint64_t *lo,
                      uint64_t *hi, char *err, size_t errlen)
{
    /* Validate everything first, so a bad segment leaves guest memory untouched. */
    if (elf_check_segments(elf, mem, lo, hi, err, errlen) < 0)
        return -1;
    for (unsigned i = 0; i < elf->phnum; i++) {
        struct elf_segment seg;
        elf_segment_at(elf, i, &seg);
        if (seg.type != ELF_PT_LOAD || seg.memsz == 0)
            continue;
        uint8_t *dst = gpa_to_host(mem, seg.paddr, seg.memsz); /* checked above */
        memcpy(dst, elf->data + seg.offset, seg.filesz);
        memset(dst + seg.filesz, 0, seg.memsz - seg.filesz);
    }
    return 0;
}

bool elf_vaddr_to_paddr(const struct elf_file *elf, uint64_t vaddr, uint64_t *paddr)
{
    *paddr = vaddr;
    for (unsigned i = 0; i < elf->phnum; i++) {
        struct elf_segment seg;
        elf_segment_at(elf, i, &seg);
        if (seg.type != ELF_PT_LOAD || seg.memsz == 0)
            continue;
        if (vaddr >= seg.vaddr && vaddr - seg.vaddr < seg.memsz) {
            *paddr = seg.paddr + (vaddr - seg.vaddr);
            return true;
        }
    }
    return false;
}

bool elf_paddr_in_segment(const struct elf_file *elf, uint64_t paddr)
{
    for (unsigned i = 0; i < elf->phnum; i++) {
        struct elf_segment seg;
        elf_segment_at(elf, i, &seg);
        if (seg.type == ELF_PT_LOAD && paddr >= seg.paddr && paddr - seg.paddr < seg.memsz)
            return true;
    }
    return false;
}
