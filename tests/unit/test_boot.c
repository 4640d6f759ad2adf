/* Unit tests for the kernel loaders: synthetic bzImage, Multiboot (ELF and a.out kludge), PVH
 * and ELF64 images; entry CPU state and boot structures; and malformed inputs (every prefix
 * of each image, corrupted bytes, absurd sizes) which must fail cleanly, never crash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "vm/boot/boot.h"
#include "vm/e820.h"
#include "vm/memory.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RAM_SIZE (64ULL << 20)
#define MB_MAGIC 0x1BADB002u

/* ---- little-endian helpers for building images and reading guest memory ---- */

static void w16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void w32(uint8_t *p, uint32_t v)
{
    w16(p, (uint16_t)v);
    w16(p + 2, (uint16_t)(v >> 16));
}

static void w64(uint8_t *p, uint64_t v)
{
    w32(p, (uint32_t)v);
    w32(p + 4, (uint32_t)(v >> 32));
}

static uint16_t r16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t r32(const uint8_t *p)
{
    return (uint32_t)r16(p) | (uint32_t)r16(p + 2) << 16;
}

static uint64_t r64(const uint8_t *p)
{
    return (uint64_t)r32(p) | (uint64_t)r32(p + 4) << 32;
}

/* ---- fixture: 64 MiB guest and a request ---- */

struct fixture {
    struct guest_memory mem;
    struct e820_map e820;
    struct boot_request req;
    struct boot_result res;
    char err[512];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (!f || guest_memory_init(&f->mem, RAM_SIZE, f->err, sizeof(f->err)) < 0)
        return -1;
    e820_build(&f->mem, &f->e820);
    f->req = (struct boot_request){
        .mem = &f->mem, .cmdline = "", .e820 = &f->e820, .rsdp_addr = 0xE0000};
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    guest_memory_destroy(&f->mem);
    free(f);
    return 0;
}

static int load(struct fixture *f, const uint8_t *img, size_t len)
{
    f->req.kernel = img;
    f->req.kernel_size = len;
    f->err[0] = '\0';
    return boot_load(&f->req, &f->res, f->err, sizeof(f->err));
}

static void expect_error(struct fixture *f, const uint8_t *img, size_t len, const char *needle)
{
    int rc = load(f, img, len);
    if (rc != -1 || !strstr(f->err, needle))
        fail_msg("expected an error containing \"%s\", got rc=%d err=\"%s\"", needle, rc, f->err);
}

static const uint8_t *guest(struct fixture *f, uint64_t gpa, uint64_t len)
{
    const uint8_t *p = gpa_to_host(&f->mem, gpa, len);
    assert_non_null(p);
    return p;
}

/* ---- image builders ---- */

#define BZ_SETUP_SECTS 4
#define BZ_SETUP_SIZE ((BZ_SETUP_SECTS + 1) * 512)
#define BZ_PAYLOAD 4096
#define BZ_LEN (BZ_SETUP_SIZE + BZ_PAYLOAD)
#define BZ_PREF 0x1000000ULL
#define BZ_INIT_SIZE 0x200000u

static uint8_t *make_bzimage(size_t *len)
{
    uint8_t *k = calloc(1, BZ_LEN);
    k[0x1f1] = BZ_SETUP_SECTS;
    w32(k + 0x1f4, BZ_PAYLOAD / 16); /* syssize */
    w16(k + 0x1fe, 0xaa55);
    k[0x200] = 0xeb;
    k[0x201] = 0x6a; /* header ends at 0x26c */
    memcpy(k + 0x202, "HdrS", 4);
    w16(k + 0x206, 0x020f);
    k[0x211] = 0x01; /* LOADED_HIGH */
    w32(k + 0x22c, 0x7fffffff);
    w32(k + 0x230, 0x200000);
    k[0x234] = 1;
    w16(k + 0x236, 0x1); /* XLF_KERNEL_64 */
    w32(k + 0x238, 2047);
    w64(k + 0x250, 0xdeadbeef); /* setup_data must not reach the guest */
    w64(k + 0x258, BZ_PREF);
    w32(k + 0x260, BZ_INIT_SIZE);
    for (size_t i = 0; i < BZ_PAYLOAD; i++)
        k[BZ_SETUP_SIZE + i] = (uint8_t)(i * 7 + 1);
    *len = BZ_LEN;
    return k;
}

struct seg_spec {
    uint32_t type;
    uint64_t paddr, vaddr;
    const uint8_t *data;
    uint64_t filesz, memsz;
};

/* ELF32/ELF64 with program headers right after the ELF header and segment data after them. */
static uint8_t *make_elf(bool is64, uint64_t entry, const struct seg_spec *segs, unsigned n,
                         size_t *len)
{
    size_t ehsize = is64 ? 64 : 52, phsize = is64 ? 56 : 32;
    size_t off = (ehsize + n * phsize + 15) & ~(size_t)15;
    size_t total = off;
    for (unsigned i = 0; i < n; i++)
        total += (segs[i].filesz + 15) & ~(uint64_t)15;
    uint8_t *e = calloc(1, total);
    memcpy(e,
           "\x7f"
           "ELF",
           4);
    e[4] = is64 ? 2 : 1;
    e[5] = 1;
    e[6] = 1;
    w16(e + 16, 2); /* ET_EXEC */
    w16(e + 18, is64 ? 62 : 3);
    w32(e + 20, 1);
    if (is64) {
        w64(e + 24, entry);
        w64(e + 32, 64);
        w16(e + 52, 64);
        w16(e + 54, 56);
        w16(e + 56, (uint16_t)n);
    } else {
        w32(e + 24, (uint32_t)entry);
        w32(e + 28, 52);
        w16(e + 40, 52);
        w16(e + 42, 32);
        w16(e + 44, (uint16_t)n);
    }
    for (unsigned i = 0; i < n; i++) {
        uint8_t *ph = e + ehsize + i * phsize;
        const struct seg_spec *s = &segs[i];
        if (is64) {
            w32(ph, s->type);
            w32(ph + 4, 7);
            w64(ph + 8, off);
            w64(ph + 16, s->vaddr);
            w64(ph + 24, s->paddr);
            w64(ph + 32, s->filesz);
            w64(ph + 40, s->memsz);
            w64(ph + 48, s->type == 4 ? 4 : 0x1000);
        } else {
            w32(ph, s->type);
            w32(ph + 4, (uint32_t)off);
            w32(ph + 8, (uint32_t)s->vaddr);
            w32(ph + 12, (uint32_t)s->paddr);
            w32(ph + 16, (uint32_t)s->filesz);
            w32(ph + 20, (uint32_t)s->memsz);
            w32(ph + 24, 7);
            w32(ph + 28, s->type == 4 ? 4 : 0x1000);
        }
        if (s->data)
            memcpy(e + off, s->data, s->filesz);
        off += (s->filesz + 15) & ~(uint64_t)15;
    }
    *len = total;
    return e;
}

static uint8_t text[256]; /* payload bytes for segments (filled in main) */

/* Multiboot ELF32: header first in .text at 1 MiB, entry just after it, 0x2000 of bss. */
#define MB_ELF_ENTRY 0x10000cULL
static uint8_t *make_multiboot_elf(size_t *len, uint32_t mb_flags)
{
    uint8_t seg[64];
    memcpy(seg, text, sizeof(seg));
    w32(seg, MB_MAGIC);
    w32(seg + 4, mb_flags);
    w32(seg + 8, (uint32_t)(0u - MB_MAGIC - mb_flags));
    struct seg_spec s = {1, 0x100000, 0x100000, seg, sizeof(seg), sizeof(seg) + 0x2000};
    return make_elf(false, MB_ELF_ENTRY, &s, 1, len);
}

/* a.out kludge: header at file offset 16, image loaded at 2 MiB from file offset 0. */
#define AOUT_LOAD 0x200000u
#define AOUT_HDR_OFF 16u
#define AOUT_LEN 256u
#define AOUT_BSS 0x3000u
static uint8_t *make_multiboot_aout(size_t *len)
{
    uint8_t *k = malloc(AOUT_LEN);
    memcpy(k, text, AOUT_LEN);
    uint8_t *h = k + AOUT_HDR_OFF;
    uint32_t flags = (1u << 16) | 0x3;
    w32(h, MB_MAGIC);
    w32(h + 4, flags);
    w32(h + 8, (uint32_t)(0u - MB_MAGIC - flags));
    w32(h + 12, AOUT_LOAD + AOUT_HDR_OFF);        /* header_addr */
    w32(h + 16, AOUT_LOAD);                       /* load_addr */
    w32(h + 20, 0);                               /* load_end: whole file */
    w32(h + 24, AOUT_LOAD + AOUT_LEN + AOUT_BSS); /* bss_end */
    w32(h + 28, AOUT_LOAD + 64);                  /* entry */
    *len = AOUT_LEN;
    return k;
}

static void aout_fix_checksum(uint8_t *k)
{
    uint8_t *h = k + AOUT_HDR_OFF;
    w32(h + 8, (uint32_t)(0u - MB_MAGIC - r32(h + 4)));
}

/* PVH: one PT_LOAD at 16 MiB plus a PT_NOTE whose Xen/18 note holds the entry. */
#define PVH_LOAD 0x1000000ULL
#define PVH_ENTRY (PVH_LOAD + 0x40)
static uint8_t *make_pvh(bool is64, unsigned desc_size, size_t *len)
{
    uint8_t note[64] = {0};
    size_t n = 0;
    /* An unrelated note first, so the search has to walk past it. */
    w32(note + n, 4);
    w32(note + n + 4, 4);
    w32(note + n + 8, 1);
    memcpy(note + n + 12, "GNU", 4);
    n += 20;
    w32(note + n, 4);
    w32(note + n + 4, desc_size);
    w32(note + n + 8, 18);
    memcpy(note + n + 12, "Xen", 4);
    if (desc_size == 8)
        w64(note + n + 16, PVH_ENTRY);
    else
        w32(note + n + 16, (uint32_t)PVH_ENTRY);
    n += 16 + desc_size;
    struct seg_spec s[2] = {
        {1, PVH_LOAD, 0xffffffff81000000ULL, text, sizeof(text), sizeof(text) + 0x1000},
        {4, 0, 0, note, n, n},
    };
    if (!is64)
        s[0].vaddr = 0xc1000000;
    return make_elf(is64, 0, s, 2, len);
}

#define ELF64_LOAD 0x100000ULL
#define ELF64_ENTRY 0x100010ULL
static uint8_t *make_elf64(size_t *len)
{
    struct seg_spec s = {1, ELF64_LOAD, ELF64_LOAD, text, sizeof(text), sizeof(text) + 0x1000};
    return make_elf(true, ELF64_ENTRY, &s, 1, len);
}

/* ---- CPU state checks ---- */

static void check_flat32(const struct vcpu_state *c)
{
    assert_int_equal(c->cr0, X86_CR0_PE | X86_CR0_ET);
    assert_int_equal(c->efer, 0);
    assert_int_equal(c->rflags, 2);
    assert_int_equal(c->seg[SEG_CS].selector, 0x10);
    assert_int_equal(c->seg[SEG_CS].type, 0xb);
    assert_int_equal(c->seg[SEG_CS].db, 1);
    assert_int_equal(c->seg[SEG_CS].l, 0);
    assert_int_equal(c->seg[SEG_CS].g, 1);
    assert_int_equal(c->seg[SEG_CS].limit, 0xffffffff);
    for (int s = SEG_ES; s <= SEG_GS; s++) {
        if (s == SEG_CS)
            continue;
        assert_int_equal(c->seg[s].selector, 0x18);
        assert_int_equal(c->seg[s].type, 3);
        assert_int_equal(c->seg[s].present, 1);
    }
    assert_int_equal(c->seg[SEG_TR].type, 11);
    assert_int_equal(c->seg[SEG_TR].present, 1);
    assert_int_equal(c->seg[SEG_TR].limit, 0x67);
    assert_int_equal(c->seg[SEG_TR].unusable, 0);
    assert_int_equal(c->seg[SEG_LDTR].unusable, 1);
    assert_int_equal(c->gdt.base, BOOT_GDT_ADDR);
}

static void check_long64(struct fixture *f, const struct vcpu_state *c)
{
    assert_int_equal(c->cr0, X86_CR0_PE | X86_CR0_ET | X86_CR0_PG);
    assert_int_equal(c->cr3, BOOT_PML4);
    assert_int_equal(c->cr4 & X86_CR4_PAE, X86_CR4_PAE);
    assert_int_equal(c->efer, X86_EFER_LME | X86_EFER_LMA);
    assert_int_equal(c->seg[SEG_CS].l, 1);
    assert_int_equal(c->seg[SEG_CS].db, 0);
    assert_int_equal(c->seg[SEG_DS].selector, 0x18);
    assert_int_equal(c->seg[SEG_TR].type, 11);
    assert_int_equal(c->seg[SEG_LDTR].unusable, 1);
    /* The descriptor behind CS in the GDT must be a 64-bit code segment too. */
    uint64_t desc = r64(guest(f, BOOT_GDT_ADDR + c->seg[SEG_CS].selector, 8));
    assert_int_equal((desc >> 53) & 1, 1); /* L */
    assert_int_equal((desc >> 47) & 1, 1); /* P */
    /* Identity map: PML4 -> PDPT -> 4 PDs of 2 MiB pages covering 4 GiB. */
    assert_int_equal(r64(guest(f, BOOT_PML4, 8)) & ~0xfffULL, BOOT_PDPT);
    for (int i = 0; i < 4; i++)
        assert_int_equal(r64(guest(f, BOOT_PDPT + 8 * i, 8)) & ~0xfffULL, BOOT_PD + i * 0x1000);
    assert_int_equal(r64(guest(f, BOOT_PD + 8, 8)), 0x200000 | 0x83);
    assert_int_equal(r64(guest(f, BOOT_PD + 8 * 2047, 8)), (2047ULL << 21) | 0x83);
}

/* ---- bzImage ---- */

static void test_bzimage(void **state)
{
    struct fixture *f = *state;
    size_t len;
    uint8_t *k = make_bzimage(&len);
    size_t initrd_size = 1000000;
    uint8_t *initrd = malloc(initrd_size);
    for (size_t i = 0; i < initrd_size; i++)
        initrd[i] = (uint8_t)(i ^ (i >> 8));
    f->req.initrd = initrd;
    f->req.initrd_size = initrd_size;
    f->req.cmdline = "console=ttyS0 quiet";
    assert_int_equal(load(f, k, len), 0);
    assert_int_equal(f->res.format, BOOT_FMT_BZIMAGE);
    assert_string_equal(boot_format_name(f->res.format), "bzImage");
    check_long64(f, &f->res.cpu);
    assert_int_equal(f->res.cpu.seg[SEG_CS].selector, 0x10);
    assert_int_equal(f->res.cpu.rip, BZ_PREF + 0x200);
    assert_int_equal(f->res.cpu.gpr[GPR_RSI], BOOT_ZERO_PAGE);
    assert_memory_equal(guest(f, BZ_PREF, BZ_PAYLOAD), k + BZ_SETUP_SIZE, BZ_PAYLOAD);
    assert_int_equal(f->res.kernel_end, BZ_PREF + BZ_INIT_SIZE);

    const uint8_t *bp = guest(f, BOOT_ZERO_PAGE, 4096);
    assert_memory_equal(bp + 0x202, "HdrS", 4);
    assert_int_equal(r16(bp + 0x206), 0x020f);
    assert_int_equal(bp[0x210], 0xff);
    assert_int_equal(bp[0x211], 0x81);
    assert_int_equal(r32(bp + 0x228), BOOT_CMDLINE);
    assert_string_equal((const char *)guest(f, BOOT_CMDLINE, 20), "console=ttyS0 quiet");
    assert_int_equal(r64(bp + 0x250), 0);
    assert_int_equal(r64(bp + 0x070), 0xE0000);
    uint32_t rd = r32(bp + 0x218);
    assert_int_equal(r32(bp + 0x21c), initrd_size);
    assert_int_equal(rd % 4096, 0);
    assert_true(rd >= BZ_PREF + BZ_INIT_SIZE);
    assert_true(rd + initrd_size <= RAM_SIZE);
    assert_true(rd + initrd_size > RAM_SIZE - 4096); /* as high as possible */
    assert_memory_equal(guest(f, rd, initrd_size), initrd, initrd_size);
    assert_int_equal(bp[0x1e8], f->e820.nr);
    for (uint32_t i = 0; i < f->e820.nr; i++) {
        const uint8_t *e = bp + 0x2d0 + 20 * i;
        assert_int_equal(r64(e), f->e820.entry[i].addr);
        assert_int_equal(r64(e + 8), f->e820.entry[i].size);
        assert_int_equal(r32(e + 16), f->e820.entry[i].type);
    }
    free(initrd);
    free(k);
}

static void test_bzimage_variants(void **state)
{
    struct fixture *f = *state;
    size_t len;
    uint8_t *k = make_bzimage(&len);

    /* Not relocatable: loaded at 1 MiB, still runs at pref_address. */
    k[0x234] = 0;
    assert_int_equal(load(f, k, len), 0);
    assert_int_equal(f->res.cpu.rip, 0x100000 + 0x200);
    assert_int_equal(r32(guest(f, BOOT_ZERO_PAGE + 0x218, 4)), 0); /* no initrd */
    assert_int_equal(r32(guest(f, BOOT_ZERO_PAGE + 0x21c, 4)), 0);
    k[0x234] = 1;

    /* Protocol 2.13 has no acpi_rsdp_addr. */
    w16(k + 0x206, 0x020d);
    assert_int_equal(load(f, k, len), 0);
    assert_int_equal(r64(guest(f, BOOT_ZERO_PAGE + 0x070, 8)), 0);
    w16(k + 0x206, 0x020f);

    /* Command line exactly cmdline_size long is allowed; one more byte is not. */
    w32(k + 0x238, 8);
    f->req.cmdline = "12345678";
    assert_int_equal(load(f, k, len), 0);
    f->req.cmdline = "123456789";
    expect_error(f, k, len, "command line");
    f->req.cmdline = "";
    w32(k + 0x238, 2047);

    /* setup_sects 0 means 4. */
    k[0x1f1] = 0;
    assert_int_equal(load(f, k, len), 0);
    k[0x1f1] = BZ_SETUP_SECTS;
    free(k);
}

static void test_bzimage_errors(void **state)
{
    struct fixture *f = *state;
    size_t len;
    uint8_t *k = make_bzimage(&len);

    w16(k + 0x236, 0);
    expect_error(f, k, len, "kernel has no 64-bit entry point");
    w16(k + 0x236, 1);

    w16(k + 0x1fe, 0x1234);
    expect_error(f, k, len, "boot flag");
    w16(k + 0x1fe, 0xaa55);

    w16(k + 0x206, 0x0205);
    expect_error(f, k, len, "older than 2.06");
    w16(k + 0x206, 0x020f);

    k[0x1f1] = 0xff; /* setup would end at 128 KiB, past the file */
    expect_error(f, k, len, "setup_sects");
    k[0x1f1] = BZ_SETUP_SECTS;

    expect_error(f, k, len - 1, "truncated"); /* one byte short of syssize */

    k[0x201] = 0x10; /* header too short to hold the fields we need */
    expect_error(f, k, len, "setup header");
    k[0x201] = 0x6a;

    /* Kernel's run region (pref_address + init_size) beyond RAM. */
    w32(k + 0x260, 0x7f000000);
    expect_error(f, k, len, "outside guest RAM");
    w32(k + 0x260, BZ_INIT_SIZE);

    w32(k + 0x230, 0x3000); /* kernel_alignment not a power of two */
    expect_error(f, k, len, "kernel_alignment");
    w32(k + 0x230, 0x200000);

    f->req.cmdline = "this command line is too long";
    w32(k + 0x238, 10);
    expect_error(f, k, len, "command line");
    w32(k + 0x238, 2047);
    char *huge = malloc(BOOT_CMDLINE_MAX + 10);
    memset(huge, 'x', BOOT_CMDLINE_MAX + 9);
    huge[BOOT_CMDLINE_MAX + 9] = '\0';
    w32(k + 0x238, 0xffffffff);
    f->req.cmdline = huge;
    expect_error(f, k, len, "command line");
    f->req.cmdline = "";
    w32(k + 0x238, 2047);
    free(huge);

    /* initrd larger than RAM: calloc'd so untouched pages cost nothing. */
    size_t big = 70u << 20;
    uint8_t *initrd = calloc(1, big);
    f->req.initrd = initrd;
    f->req.initrd_size = big;
    expect_error(f, k, len, "initrd of 73400320 bytes does not fit");
    /* An initrd that fits RAM but not below initrd_addr_max. */
    f->req.initrd_size = 1 << 20;
    w32(k + 0x22c, 0x1100000);
    expect_error(f, k, len, "initrd");
    w32(k + 0x22c, 0x7fffffff);
    assert_int_equal(load(f, k, len), 0);
    f->req.initrd = NULL;
    f->req.initrd_size = 0;
    free(initrd);
    free(k);
}

/* ---- Multiboot ---- */

static void check_multiboot_info(struct fixture *f, bool with_module, uint64_t kernel_end)
{
    const uint8_t *mbi = guest(f, BOOT_INFO_ADDR, 88);
    uint32_t flags = r32(mbi);
    assert_true(flags & (1u << 0));
    assert_true(flags & (1u << 2));
    assert_true(flags & (1u << 6));
    assert_int_equal(r32(mbi + 4), 639);
    assert_int_equal(r32(mbi + 8), (RAM_SIZE - 0x100000) / 1024);
    assert_string_equal((const char *)guest(f, r32(mbi + 16), 1), f->req.cmdline);
    uint32_t mmap_len = r32(mbi + 44), mmap = r32(mbi + 48);
    assert_int_equal(mmap_len, f->e820.nr * 24);
    for (uint32_t i = 0; i < f->e820.nr; i++) {
        const uint8_t *e = guest(f, mmap + 24 * i, 24);
        assert_int_equal(r32(e), 20);
        assert_int_equal(r64(e + 4), f->e820.entry[i].addr);
        assert_int_equal(r64(e + 12), f->e820.entry[i].size);
        assert_int_equal(r32(e + 20), f->e820.entry[i].type);
    }
    if (with_module) {
        assert_true(flags & (1u << 3));
        assert_int_equal(r32(mbi + 20), 1);
        const uint8_t *mod = guest(f, r32(mbi + 24), 16);
        uint32_t start = r32(mod), end = r32(mod + 4);
        assert_int_equal(start % 4096, 0);
        assert_true(start >= kernel_end);
        assert_true(start - kernel_end < 4096); /* right after the kernel */
        assert_int_equal(end - start, f->req.initrd_size);
        assert_memory_equal(guest(f, start, f->req.initrd_size), f->req.initrd, f->req.initrd_size);
        assert_string_equal((const char *)guest(f, r32(mod + 8), 7), "initrd");
    } else {
        assert_int_equal(r32(mbi + 20), 0);
    }
}

static void test_multiboot_elf(void **state)
{
    struct fixture *f = *state;
    size_t len;
    uint8_t *k = make_multiboot_elf(&len, 0x3);
    /* Dirty the bss area first to check it is zeroed. */
    memset(gpa_to_host(&f->mem, 0x100000, 0x3000), 0xcc, 0x3000);
    uint8_t initrd[5000];
    for (size_t i = 0; i < sizeof(initrd); i++)
        initrd[i] = (uint8_t)(i * 13);
    f->req.initrd = initrd;
    f->req.initrd_size = sizeof(initrd);
    f->req.cmdline = "mb args";
    assert_int_equal(load(f, k, len), 0);
    assert_int_equal(f->res.format, BOOT_FMT_MULTIBOOT);
    check_flat32(&f->res.cpu);
    assert_int_equal(f->res.cpu.rip, MB_ELF_ENTRY);
    assert_int_equal(f->res.cpu.gpr[GPR_RAX], 0x2BADB002);
    assert_int_equal(f->res.cpu.gpr[GPR_RBX], BOOT_INFO_ADDR);
    assert_int_equal(f->res.kernel_end, 0x100000 + 64 + 0x2000);
    assert_int_equal(r32(guest(f, 0x100000, 4)), MB_MAGIC);
    assert_memory_equal(guest(f, 0x100000 + 12, 52), text + 12, 52);
    const uint8_t *bss = guest(f, 0x100000 + 64, 0x2000);
    for (size_t i = 0; i < 0x2000; i++)
        assert_int_equal(bss[i], 0);
    assert_int_equal(bss[0x2000], 0xcc); /* nothing written beyond memsz */
    check_multiboot_info(f, true, f->res.kernel_end);
    /* The GDT selectors the state claims exist in guest memory. */
    uint64_t cs = r64(guest(f, BOOT_GDT_ADDR + 0x10, 8));
    assert_int_equal((cs >> 54) & 1, 1); /* D */
    assert_int_equal((cs >> 53) & 1, 0); /* L */

    f->req.initrd = NULL;
    f->req.initrd_size = 0;
    f->req.cmdline = "";
    assert_int_equal(load(f, k, len), 0);
    check_multiboot_info(f, false, 0);
    free(k);
}

static void test_multiboot_aout(void **state)
{
    struct fixture *f = *state;
    size_t len;
    uint8_t *k = make_multiboot_aout(&len);
    memset(gpa_to_host(&f->mem, AOUT_LOAD, 0x4000), 0xcc, 0x4000);
    f->req.cmdline = "aout";
    assert_int_equal(load(f, k, len), 0);
    assert_int_equal(f->res.format, BOOT_FMT_MULTIBOOT);
    check_flat32(&f->res.cpu);
    assert_int_equal(f->res.cpu.rip, AOUT_LOAD + 64);
    assert_int_equal(f->res.cpu.gpr[GPR_RAX], 0x2BADB002);
    assert_memory_equal(guest(f, AOUT_LOAD, AOUT_LEN), k, AOUT_LEN);
    const uint8_t *bss = guest(f, AOUT_LOAD + AOUT_LEN, AOUT_BSS + 1);
    for (size_t i = 0; i < AOUT_BSS; i++)
        assert_int_equal(bss[i], 0);
    assert_int_equal(bss[AOUT_BSS], 0xcc);
    assert_int_equal(f->res.kernel_end, AOUT_LOAD + AOUT_LEN + AOUT_BSS);
    check_multiboot_info(f, false, 0);

    /* Explicit load_end: only part of the file is loaded; no bss. */
    uint8_t *h = k + AOUT_HDR_OFF;
    w32(h + 20, AOUT_LOAD + 128);
    w32(h + 24, 0);
    memset(gpa_to_host(&f->mem, AOUT_LOAD, 0x4000), 0xcc, 0x4000);
    assert_int_equal(load(f, k, len), 0);
    assert_memory_equal(guest(f, AOUT_LOAD, 128), k, 128);
    assert_int_equal(*guest(f, AOUT_LOAD + 128, 1), 0xcc);
    free(k);
}

static void test_multiboot_errors(void **state)
{
    struct fixture *f = *state;
    size_t len;
    uint8_t *k = make_multiboot_elf(&len, 0x7); /* video mode required */
    expect_error(f, k, len, "video mode");
    free(k);
    k = make_multiboot_elf(&len, 0x23); /* bit 5: unknown requirement */
    expect_error(f, k, len, "unsupported");
    free(k);
    k = make_multiboot_elf(&len, 0x10003); /* optional bits are fine, here a.out kludge... */
    /* ...but the address fields hold code bytes: whatever they say must be rejected or valid. */
    int rc = load(f, k, len);
    assert_true(rc == 0 || rc == -1);
    free(k);

    k = make_multiboot_aout(&len);
    uint8_t *h = k + AOUT_HDR_OFF;
    w32(h + 12, AOUT_LOAD - 4); /* header_addr below load_addr */
    expect_error(f, k, len, "header_addr");
    w32(h + 12, AOUT_LOAD + AOUT_HDR_OFF);
    w32(h + 20, AOUT_LOAD + AOUT_LEN + 1); /* load_end past the file */
    expect_error(f, k, len, "load range");
    w32(h + 20, 0);
    w32(h + 24, AOUT_LOAD + 8); /* bss_end below load_end */
    expect_error(f, k, len, "bss_end");
    w32(h + 24, 0xfffffff0); /* bss far beyond RAM */
    expect_error(f, k, len, "outside guest RAM");
    w32(h + 24, 0);
    w32(h + 28, AOUT_LOAD + AOUT_LEN); /* entry after the image */
    expect_error(f, k, len, "entry_addr");
    w32(h + 28, AOUT_LOAD + 64);
    /* Loaded over the default zero page: the loader's data moves instead (QEMU loads it). */
    w32(h + 12, 0x7000 + AOUT_HDR_OFF);
    w32(h + 16, 0x7000);
    w32(h + 28, 0x7000 + 64);
    assert_int_equal(load(f, k, len), 0);
    assert_int_equal(f->res.cpu.rip, 0x7000 + 64);
    w32(h + 12, AOUT_LOAD + AOUT_HDR_OFF);
    w32(h + 16, AOUT_LOAD);
    w32(h + 28, AOUT_LOAD + 64);
    /* Bad checksum: no header, nothing else matches. */
    w32(h + 8, 0);
    expect_error(f, k, len, "not a bzImage, Multiboot, PVH or ELF64 kernel");
    aout_fix_checksum(k);
    assert_int_equal(load(f, k, len), 0);
    /* No address fields and not ELF. */
    w32(h + 4, 0x3);
    aout_fix_checksum(k);
    expect_error(f, k, len, "must be ELF");
    /* Module that does not fit after the kernel. */
    w32(h + 4, (1u << 16) | 0x3);
    aout_fix_checksum(k);
    size_t big = 63u << 20;
    uint8_t *initrd = calloc(1, big);
    f->req.initrd = initrd;
    f->req.initrd_size = big;
    expect_error(f, k, len, "initrd");
    f->req.initrd = NULL;
    f->req.initrd_size = 0;
    free(initrd);
    free(k);

    /* Header beyond the first 8 KiB is not found. */
    uint8_t *far = calloc(1, 8192 + 64);
    uint32_t flags = (1u << 16) | 0x3;
    w32(far + 8192, MB_MAGIC);
    w32(far + 8196, flags);
    w32(far + 8200, 0u - MB_MAGIC - flags);
    expect_error(f, far, 8192 + 64, "not a bzImage");
    free(far);
}

/* ---- PVH ---- */

static void test_pvh(void **state)
{
    struct fixture *f = *state;
    for (int variant = 0; variant < 2; variant++) {
        size_t len;
        bool is64 = variant == 0;
        uint8_t *k = make_pvh(is64, is64 ? 8 : 4, &len);
        uint8_t initrd[3000];
        memset(initrd, 0x5a, sizeof(initrd));
        f->req.initrd = initrd;
        f->req.initrd_size = sizeof(initrd);
        f->req.cmdline = "pvh cmdline";
        assert_int_equal(load(f, k, len), 0);
        assert_int_equal(f->res.format, BOOT_FMT_PVH);
        check_flat32(&f->res.cpu);
        assert_int_equal(f->res.cpu.rip, PVH_ENTRY);
        assert_int_equal(f->res.cpu.gpr[GPR_RBX], BOOT_INFO_ADDR);
        assert_memory_equal(guest(f, PVH_LOAD, sizeof(text)), text, sizeof(text));
        assert_int_equal(f->res.kernel_end, PVH_LOAD + sizeof(text) + 0x1000);

        const uint8_t *si = guest(f, BOOT_INFO_ADDR, 56);
        assert_int_equal(r32(si), 0x336ec578);
        assert_int_equal(r32(si + 4), 1);
        assert_int_equal(r32(si + 8), 0);
        assert_int_equal(r32(si + 12), 1);
        assert_string_equal((const char *)guest(f, r64(si + 24), 12), "pvh cmdline");
        assert_int_equal(r64(si + 32), 0xE0000);
        assert_int_equal(r32(si + 48), f->e820.nr);
        for (uint32_t i = 0; i < f->e820.nr; i++) {
            const uint8_t *e = guest(f, r64(si + 40) + 24 * i, 24);
            assert_int_equal(r64(e), f->e820.entry[i].addr);
            assert_int_equal(r64(e + 8), f->e820.entry[i].size);
            assert_int_equal(r32(e + 16), f->e820.entry[i].type);
        }
        const uint8_t *mod = guest(f, r64(si + 16), 32);
        uint64_t at = r64(mod);
        assert_int_equal(at % 4096, 0);
        assert_int_equal(r64(mod + 8), sizeof(initrd));
        assert_true(at >= f->res.kernel_end);
        assert_true(at + sizeof(initrd) <= RAM_SIZE);
        assert_memory_equal(guest(f, at, sizeof(initrd)), initrd, sizeof(initrd));
        f->req.initrd = NULL;
        f->req.initrd_size = 0;
        f->req.cmdline = "";
        assert_int_equal(load(f, k, len), 0);
        assert_int_equal(r32(guest(f, BOOT_INFO_ADDR + 12, 4)), 0);
        free(k);
    }
}

static void test_pvh_errors(void **state)
{
    struct fixture *f = *state;
    size_t len;
    uint8_t *k = make_pvh(true, 2, &len); /* 2-byte entry value */
    expect_error(f, k, len, "PVH entry note");
    free(k);
    k = make_pvh(true, 8, &len);
    /* Entry outside the loaded segment: patch the note's descriptor. */
    uint8_t *desc = memmem(k, len, "Xen\0", 4);
    assert_non_null(desc);
    w64(desc + 4, 0x5000000);
    expect_error(f, k, len, "outside every loaded segment");
    w64(desc + 4, 1ULL << 33);
    expect_error(f, k, len, "above 4 GiB");
    free(k);
}

/* ---- ELF64 ---- */

static void test_elf64(void **state)
{
    struct fixture *f = *state;
    size_t len;
    uint8_t *k = make_elf64(&len);
    uint8_t initrd[100];
    memset(initrd, 0x77, sizeof(initrd));
    f->req.initrd = initrd;
    f->req.initrd_size = sizeof(initrd);
    f->req.cmdline = "elf64 args";
    memset(gpa_to_host(&f->mem, ELF64_LOAD, 0x2000), 0xcc, 0x2000);
    assert_int_equal(load(f, k, len), 0);
    assert_int_equal(f->res.format, BOOT_FMT_ELF64);
    check_long64(f, &f->res.cpu);
    assert_int_equal(f->res.cpu.seg[SEG_CS].selector, 0x08);
    assert_int_equal(f->res.cpu.rip, ELF64_ENTRY);
    assert_int_equal(f->res.cpu.gpr[GPR_RSP], BOOT_STACK_TOP);
    assert_int_equal(f->res.cpu.gpr[GPR_RDI], BOOT_CMDLINE);
    assert_string_equal((const char *)guest(f, BOOT_CMDLINE, 11), "elf64 args");
    uint64_t at = f->res.cpu.gpr[GPR_RSI];
    assert_int_equal(f->res.cpu.gpr[GPR_RDX], sizeof(initrd));
    assert_int_equal(at % 4096, 0);
    assert_true(at >= f->res.kernel_end);
    assert_memory_equal(guest(f, at, sizeof(initrd)), initrd, sizeof(initrd));
    assert_memory_equal(guest(f, ELF64_LOAD, sizeof(text)), text, sizeof(text));
    const uint8_t *bss = guest(f, ELF64_LOAD + sizeof(text), 0x1000);
    for (size_t i = 0; i < 0x1000; i++)
        assert_int_equal(bss[i], 0);
    f->req.initrd = NULL;
    f->req.initrd_size = 0;
    assert_int_equal(load(f, k, len), 0);
    assert_int_equal(f->res.cpu.gpr[GPR_RSI], 0);
    assert_int_equal(f->res.cpu.gpr[GPR_RDX], 0);
    f->req.cmdline = "";
    free(k);
}

/* True when [a, a + n) and [lo, hi) share a byte. */
static bool overlaps(uint64_t a, uint64_t n, uint64_t lo, uint64_t hi)
{
    return a < hi && a + n > lo;
}

/* Issue 12: a payload linked into 0x6000-0xF000, where the loader's data usually goes, is
 * loaded as it is; the page tables, GDT, stack and command line move elsewhere. */
static void test_elf64_low_segment(void **state)
{
    struct fixture *f = *state;
    const uint64_t lo = 0x6000, hi = 0xf000;
    struct seg_spec s = {1, lo, lo, text, sizeof(text), hi - lo};
    size_t len;
    uint8_t *k = make_elf(true, lo + 0x10, &s, 1, &len);
    f->req.cmdline = "low args";
    assert_int_equal(load(f, k, len), 0);
    const struct vcpu_state *c = &f->res.cpu;
    assert_int_equal(c->rip, lo + 0x10);
    assert_memory_equal(guest(f, lo, sizeof(text)), text, sizeof(text));
    const uint8_t *bss = guest(f, lo + sizeof(text), hi - lo - sizeof(text));
    for (size_t i = 0; i < hi - lo - sizeof(text); i++)
        assert_int_equal(bss[i], 0);
    assert_false(overlaps(c->cr3, 6 * 4096, lo, hi));
    assert_false(overlaps(c->gdt.base, 0x30, lo, hi));
    assert_false(overlaps(c->gpr[GPR_RSP] - 16, 16, lo, hi));
    assert_false(overlaps(c->gpr[GPR_RDI], 9, lo, hi));
    assert_true(c->cr3 < 0x100000 && c->gdt.base < 0x100000); /* room below 1 MiB */
    assert_string_equal((const char *)guest(f, c->gpr[GPR_RDI], 9), "low args");
    /* The moved page tables map what they should. */
    assert_int_equal(r64(guest(f, c->cr3, 8)) & ~0xfffULL, c->cr3 + 0x1000);
    assert_int_equal(r64(guest(f, c->cr3 + 0x1000, 8)) & ~0xfffULL, c->cr3 + 0x2000);
    assert_int_equal(r64(guest(f, c->cr3 + 0x2000 + 8, 8)), 0x200000 | 0x83);
    assert_int_equal(r64(guest(f, c->gdt.base + 0x08, 8)), 0x00af9b000000ffffULL);
    free(k);

    /* Low RAM full below 1 MiB: the data goes above the kernel. */
    s = (struct seg_spec){1, 0x1000, 0x1000, text, sizeof(text), 0x9e000};
    k = make_elf(true, 0x1010, &s, 1, &len);
    assert_int_equal(load(f, k, len), 0);
    assert_true(f->res.cpu.cr3 >= 0x100000);
    free(k);

    /* Every byte of RAM but the ACPI tables taken: nothing fits, and the message says so. */
    struct seg_spec two[2] = {{1, 0, 0, text, sizeof(text), 0xe0000},
                              {1, 0xf0000, 0xf0000, text, sizeof(text), RAM_SIZE - 0xf0000}};
    k = make_elf(true, 0x10, two, 2, &len);
    expect_error(f, k, len, "no room in low RAM");
    free(k);
    f->req.cmdline = "";
}

/* Patch program header 0 of an image from make_elf64 / make_multiboot_elf. */
static void set_ph64(uint8_t *k, size_t field_off, uint64_t v)
{
    w64(k + 64 + field_off, v);
}

static void test_elf_errors(void **state)
{
    struct fixture *f = *state;
    size_t len;
    uint8_t *k = make_elf64(&len);

    set_ph64(k, 8, len - 16); /* p_offset + p_filesz past EOF */
    expect_error(f, k, len, "past the end");
    set_ph64(k, 8, 0xffffffffffffff00ULL); /* offset that would wrap */
    expect_error(f, k, len, "past the end");
    set_ph64(k, 8, 128);

    set_ph64(k, 40, 16); /* memsz < filesz */
    expect_error(f, k, len, "larger than its memory size");
    set_ph64(k, 40, sizeof(text) + 0x1000);

    set_ph64(k, 40, 1ULL << 40); /* memsz beyond RAM */
    expect_error(f, k, len, "outside guest RAM");
    set_ph64(k, 40, sizeof(text) + 0x1000);

    set_ph64(k, 24, 0xfffffffffffff000ULL); /* paddr + memsz wraps */
    expect_error(f, k, len, "wraps");
    set_ph64(k, 24, 0x7000); /* over the default zero page: the loader's data moves */
    set_ph64(k, 16, 0x7000);
    w64(k + 24, 0x7010); /* e_entry */
    assert_int_equal(load(f, k, len), 0);
    set_ph64(k, 16, ELF64_LOAD);
    w64(k + 24, ELF64_ENTRY);
    set_ph64(k, 24, 0xdf000); /* over the ACPI tables */
    expect_error(f, k, len, "ACPI");
    set_ph64(k, 24, ELF64_LOAD);

    w16(k + 56, 0xfffe); /* phnum huge */
    expect_error(f, k, len, "program header table");
    w16(k + 56, 0xffff);
    expect_error(f, k, len, "extended");
    w16(k + 56, 0);
    expect_error(f, k, len, "no program headers");
    w16(k + 56, 1);

    w64(k + 32, len); /* phoff at EOF */
    expect_error(f, k, len, "program header table");
    w64(k + 32, 64);

    w16(k + 54, 32); /* wrong phentsize */
    expect_error(f, k, len, "program header size");
    w16(k + 54, 56);

    w16(k + 18, 40); /* ARM */
    expect_error(f, k, len, "machine");
    w16(k + 18, 62);

    w16(k + 16, 1); /* ET_REL */
    expect_error(f, k, len, "type");
    w16(k + 16, 2);

    k[5] = 2; /* big-endian */
    expect_error(f, k, len, "little-endian");
    k[5] = 1;
    k[4] = 3;
    expect_error(f, k, len, "class");
    k[4] = 2;

    w64(k + 24, 0x500000); /* entry outside the segment */
    expect_error(f, k, len, "entry point");
    w64(k + 24, ELF64_ENTRY);

    w32(k + 64, 6); /* PT_PHDR: nothing loadable */
    expect_error(f, k, len, "no loadable segments");
    w32(k + 64, 1);

    assert_int_equal(load(f, k, len), 0);
    /* Below 1 MiB but clear of the loader's own data: loaded, as QEMU does. */
    set_ph64(k, 16, 0x40000); /* p_vaddr */
    set_ph64(k, 24, 0x40000); /* p_paddr */
    w64(k + 24, 0x40010);
    assert_int_equal(load(f, k, len), 0);
    assert_memory_equal(guest(f, 0x40000, sizeof(text)), text, sizeof(text));
    set_ph64(k, 16, ELF64_LOAD);
    set_ph64(k, 24, ELF64_LOAD);
    w64(k + 24, ELF64_ENTRY);
    expect_error(f, k, 40, "ELF header truncated");
    free(k);

    /* Higher-half ELF64 without PVH note cannot run on the identity map. */
    struct seg_spec s = {1, 0x1000000, 0xffffffff81000000ULL, text, sizeof(text), sizeof(text)};
    k = make_elf(true, 0xffffffff81000010ULL, &s, 1, &len);
    expect_error(f, k, len, "identity mapped");
    free(k);

    /* ELF32 without PVH note or Multiboot header. */
    s.vaddr = 0x1000000;
    k = make_elf(false, 0x1000010, &s, 1, &len);
    expect_error(f, k, len, "neither a PVH note nor a Multiboot header");
    free(k);
}

/* ---- dispatch and robustness ---- */

static void test_dispatch_errors(void **state)
{
    struct fixture *f = *state;
    uint8_t junk[1024];
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (uint8_t)(i * 31 + 7);
    expect_error(f, junk, 0, "empty");
    expect_error(f, junk, sizeof(junk), "not a bzImage, Multiboot, PVH or ELF64 kernel");
    /* The size check comes before any byte is read. */
    expect_error(f, junk, BOOT_KERNEL_MAX_FILE + 1, "exceeds");
}

typedef uint8_t *(*image_maker)(size_t *len);

static uint8_t *make_pvh64(size_t *len)
{
    return make_pvh(true, 8, len);
}

static uint8_t *make_pvh32(size_t *len)
{
    return make_pvh(false, 4, len);
}

static uint8_t *make_mb_elf(size_t *len)
{
    return make_multiboot_elf(len, 0x3);
}

static const image_maker makers[] = {make_bzimage, make_mb_elf, make_multiboot_aout,
                                     make_pvh64,   make_pvh32,  make_elf64};

/* Every prefix of every valid image: error or success, never a crash. Each prefix is copied
 * into an exact-size allocation so the sanitizer sees any over-read. */
static void test_truncated_images(void **state)
{
    struct fixture *f = *state;
    uint8_t initrd[64] = {1, 2, 3};
    f->req.initrd = initrd;
    f->req.initrd_size = sizeof(initrd);
    for (size_t m = 0; m < sizeof(makers) / sizeof(makers[0]); m++) {
        size_t len;
        uint8_t *img = makers[m](&len);
        for (size_t n = 0; n <= len; n++) {
            uint8_t *copy = malloc(n ? n : 1);
            memcpy(copy, img, n);
            int rc = load(f, copy, n);
            assert_true(rc == 0 || rc == -1);
            if (rc < 0)
                assert_true(f->err[0] != '\0');
            if (n == len)
                assert_int_equal(rc, 0);
            free(copy);
        }
        free(img);
    }
    f->req.initrd = NULL;
    f->req.initrd_size = 0;
}

/* Deterministic random corruption of header bytes. */
static void test_corrupted_images(void **state)
{
    struct fixture *f = *state;
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    for (size_t m = 0; m < sizeof(makers) / sizeof(makers[0]); m++) {
        size_t len;
        uint8_t *img = makers[m](&len);
        uint8_t *copy = malloc(len);
        for (int iter = 0; iter < 3000; iter++) {
            memcpy(copy, img, len);
            for (int j = 0; j < 4; j++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                /* Mostly hit the first 0x300 bytes, where the headers are. */
                size_t limit = (x >> 60) ? (len < 0x300 ? len : 0x300) : len;
                size_t pos = (size_t)((x >> 8) % limit);
                copy[pos] = (x & 0x100) ? (uint8_t)(x >> 32) : (uint8_t)((x >> 40) & 1 ? 0xff : 0);
            }
            int rc = load(f, copy, len);
            assert_true(rc == 0 || rc == -1);
        }
        free(copy);
        free(img);
    }
}

int main(void)
{
    for (size_t i = 0; i < sizeof(text); i++)
        text[i] = (uint8_t)(0x90 ^ (i * 3));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_bzimage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bzimage_variants, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bzimage_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_multiboot_elf, setup, teardown),
        cmocka_unit_test_setup_teardown(test_multiboot_aout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_multiboot_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pvh, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pvh_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_elf64, setup, teardown),
        cmocka_unit_test_setup_teardown(test_elf64_low_segment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_elf_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dispatch_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated_images, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupted_images, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
