/* Linux bzImage through the 64-bit boot protocol (Documentation/arch/x86/boot.rst): the
 * protected-mode kernel is loaded as is, a zero page (struct boot_params) is built at
 * BOOT_ZERO_PAGE and the kernel is entered in long mode at load address + 0x200. */
#include "vm/boot/boot.h"

#include "util/log.h"
#include "vm/boot/loader.h"
#include "vm/memory.h"

#include <string.h>

/* struct setup_header fields, as offsets into the image and into boot_params. */
#define HDR_START 0x1f1
#define HDR_SETUP_SECTS 0x1f1
#define HDR_SYSSIZE 0x1f4
#define HDR_BOOT_FLAG 0x1fe
#define HDR_JUMP 0x200
#define HDR_MAGIC 0x202
#define HDR_VERSION 0x206
#define HDR_TYPE_OF_LOADER 0x210
#define HDR_LOADFLAGS 0x211
#define HDR_RAMDISK_IMAGE 0x218
#define HDR_RAMDISK_SIZE 0x21c
#define HDR_HEAP_END_PTR 0x224
#define HDR_CMD_LINE_PTR 0x228
#define HDR_INITRD_ADDR_MAX 0x22c
#define HDR_KERNEL_ALIGNMENT 0x230
#define HDR_RELOCATABLE 0x234
#define HDR_XLOADFLAGS 0x236
#define HDR_CMDLINE_SIZE 0x238
#define HDR_SETUP_DATA 0x250
#define HDR_PREF_ADDRESS 0x258
#define HDR_INIT_SIZE 0x260
#define HDR_END_MAX 0x290 /* where boot_params stops reserving room for the header */

/* Other boot_params fields. */
#define BP_ACPI_RSDP_ADDR 0x070
#define BP_E820_ENTRIES 0x1e8
#define BP_E820_TABLE 0x2d0
#define BP_E820_MAX 128
#define BP_E820_ENTRY_SIZE 20
#define BP_SIZE 0x1000

#define BOOT_FLAG_MAGIC 0xaa55
#define LOADFLAG_CAN_USE_HEAP 0x80
#define XLF_KERNEL_64 0x1
#define LOADER_TYPE_UNDEFINED 0xff
#define HEAP_END_PTR 0xde00 /* heap end 0xe000 - 0x200; unused by the 64-bit entry */
#define ENTRY64_OFFSET 0x200
#define DEFAULT_SETUP_SECTS 4
#define DEFAULT_INITRD_ADDR_MAX 0x37ffffffULL /* boot.rst: assume this before 2.03 */
#define MIN_VERSION 0x0206

struct bz_header {
    uint16_t version;
    uint64_t setup_size; /* bytes before the protected-mode kernel */
    uint64_t header_end; /* end of the setup header to copy */
    uint64_t kernel_size;
    uint64_t load_addr;
    uint64_t run_start, run_size; /* where the kernel decompresses and runs */
    uint64_t initrd_addr_max;
    uint32_t cmdline_size;
};

static int parse_header(const struct boot_request *req, struct bz_header *h, char *err,
                        size_t errlen)
{
    const uint8_t *k = req->kernel;
    size_t size = req->kernel_size;
    memset(h, 0, sizeof(*h));
    if (size < HDR_VERSION + 2 || memcmp(k + HDR_MAGIC, "HdrS", 4) != 0)
        return qk_fail(err, errlen, "not a bzImage (no \"HdrS\" at offset 0x202)");
    if (get_le16(k + HDR_BOOT_FLAG) != BOOT_FLAG_MAGIC)
        return qk_fail(err, errlen, "bzImage boot flag is 0x%04x, expected 0xaa55",
                       get_le16(k + HDR_BOOT_FLAG));
    h->version = get_le16(k + HDR_VERSION);
    if (h->version < MIN_VERSION)
        return qk_fail(err, errlen, "bzImage boot protocol %u.%02u is older than 2.06",
                       h->version >> 8, h->version & 0xff);
    unsigned setup_sects = k[HDR_SETUP_SECTS] ? k[HDR_SETUP_SECTS] : DEFAULT_SETUP_SECTS;
    h->setup_size = (uint64_t)(setup_sects + 1) * 512;
    if (h->setup_size >= size)
        return qk_fail(err, errlen,
                       "bzImage setup_sects %u puts the kernel at offset 0x%llx, beyond the "
                       "end of the %zu-byte file",
                       setup_sects, (unsigned long long)h->setup_size, size);
    h->kernel_size = size - h->setup_size;
    /* syssize (16-byte units) is the protected-mode size the image was built with; less in
     * the file means it was cut short. More is fine: signed kernels append a signature. */
    uint64_t syssize = (uint64_t)get_le32(k + HDR_SYSSIZE) * 16;
    if (syssize > h->kernel_size)
        return qk_fail(err, errlen,
                       "bzImage is truncated: its header says %llu bytes of kernel follow the "
                       "setup code, the file holds %llu",
                       (unsigned long long)syssize, (unsigned long long)h->kernel_size);
    /* The header ends where the jump at 0x200 lands. Everything we read lies before that. */
    h->header_end = HDR_MAGIC + (uint64_t)k[HDR_JUMP + 1];
    if (h->header_end > HDR_END_MAX)
        h->header_end = HDR_END_MAX;
    if (h->header_end > h->setup_size)
        return qk_fail(err, errlen,
                       "bzImage setup header (ends at 0x%llx) is longer than the "
                       "setup code (0x%llx bytes)",
                       (unsigned long long)h->header_end, (unsigned long long)h->setup_size);
    if (h->header_end < HDR_INIT_SIZE + 4 && h->version >= 0x020a)
        return qk_fail(err, errlen,
                       "bzImage setup header (ends at 0x%llx) is too short for "
                       "protocol %u.%02u",
                       (unsigned long long)h->header_end, h->version >> 8, h->version & 0xff);
    if (h->header_end < HDR_CMDLINE_SIZE + 4)
        return qk_fail(err, errlen, "bzImage setup header (ends at 0x%llx) is too short",
                       (unsigned long long)h->header_end);
    uint16_t xloadflags = h->version >= 0x020c ? get_le16(k + HDR_XLOADFLAGS) : 0;
    if (!(xloadflags & XLF_KERNEL_64))
        return qk_fail(err, errlen, "kernel has no 64-bit entry point (XLF_KERNEL_64 not set)");

    h->cmdline_size = get_le32(k + HDR_CMDLINE_SIZE);
    h->initrd_addr_max = get_le32(k + HDR_INITRD_ADDR_MAX);
    if (h->initrd_addr_max == 0)
        h->initrd_addr_max = DEFAULT_INITRD_ADDR_MAX;
    bool relocatable = k[HDR_RELOCATABLE] != 0;
    uint64_t alignment = get_le32(k + HDR_KERNEL_ALIGNMENT);
    uint64_t pref = h->version >= 0x020a ? get_le64(k + HDR_PREF_ADDRESS) : 0;
    uint64_t init_size = h->version >= 0x020a ? get_le32(k + HDR_INIT_SIZE) : 0;
    if (init_size < h->kernel_size)
        init_size = h->kernel_size;
    if (pref < BOOT_KERNEL_MIN_ADDR)
        pref = BOOT_KERNEL_MIN_ADDR;

    /* Load at pref_address when the kernel may move and it fits, else at 1 MiB. */
    h->load_addr = BOOT_KERNEL_MIN_ADDR;
    if (relocatable && gpa_to_host(req->mem, pref, init_size))
        h->load_addr = pref;
    /* The 64-bit entry runs (and decompresses) at the load address rounded up to
     * kernel_alignment, never below pref_address (LOAD_PHYSICAL_ADDR); a non-relocatable
     * kernel runs at pref_address. That whole init_size region must be RAM. */
    h->run_start = pref;
    if (relocatable) {
        if (alignment == 0 || (alignment & (alignment - 1)) || alignment > (1ULL << 30))
            return qk_fail(err, errlen,
                           "bzImage kernel_alignment 0x%llx is not a power of two "
                           "up to 1 GiB",
                           (unsigned long long)alignment);
        uint64_t aligned = align_up_u64(h->load_addr, alignment);
        if (aligned > h->run_start)
            h->run_start = aligned;
    }
    h->run_size = init_size;
    if (boot_check_kernel_range(req->mem, h->load_addr, h->kernel_size, "bzImage kernel", err,
                                errlen) < 0)
        return -1;
    return boot_check_kernel_range(req->mem, h->run_start, h->run_size,
                                   "bzImage kernel's init_size region", err, errlen);
}

static void fill_e820(uint8_t *bp, const struct e820_map *map)
{
    uint32_t n = map->nr < BP_E820_MAX ? map->nr : BP_E820_MAX;
    if (n > E820_MAX_ENTRIES)
        n = E820_MAX_ENTRIES;
    for (uint32_t i = 0; i < n; i++) {
        uint8_t *e = bp + BP_E820_TABLE + i * BP_E820_ENTRY_SIZE;
        put_le64(e, map->entry[i].addr);
        put_le64(e + 8, map->entry[i].size);
        put_le32(e + 16, map->entry[i].type);
    }
    bp[BP_E820_ENTRIES] = (uint8_t)n;
}

int boot_load_bzimage(const struct boot_request *req, struct boot_result *out, char *err,
                      size_t errlen)
{
    memset(out, 0, sizeof(*out));
    struct bz_header h;
    if (parse_header(req, &h, err, errlen) < 0)
        return -1;
    /* The kernel loads at 1 MiB or above: the default layout is always free. */
    const struct boot_layout *l = &boot_default_layout;
    if (boot_cmdline_len(req, h.cmdline_size, err, errlen) < 0 ||
        boot_write_cmdline(req, l, err, errlen) < 0)
        return -1;

    uint64_t kernel_end = h.load_addr + h.kernel_size;
    if (h.run_start + h.run_size > kernel_end)
        kernel_end = h.run_start + h.run_size;
    uint64_t initrd_addr = 0;
    if (req->initrd) {
        /* initrd_addr_max is the highest address the initrd's last byte may use. */
        if (boot_place_initrd(req, h.initrd_addr_max + 1, kernel_end, &initrd_addr, err, errlen) <
            0)
            return -1;
    }

    uint8_t *bp = gpa_to_host(req->mem, BOOT_ZERO_PAGE, BP_SIZE);
    if (!bp)
        return qk_fail(err, errlen, "cannot reach the zero page at 0x%llx", BOOT_ZERO_PAGE);
    memset(bp, 0, BP_SIZE);
    memcpy(bp + HDR_START, req->kernel + HDR_START, h.header_end - HDR_START);
    bp[HDR_TYPE_OF_LOADER] = LOADER_TYPE_UNDEFINED;
    bp[HDR_LOADFLAGS] |= LOADFLAG_CAN_USE_HEAP;
    put_le16(bp + HDR_HEAP_END_PTR, HEAP_END_PTR);
    put_le32(bp + HDR_CMD_LINE_PTR, (uint32_t)BOOT_CMDLINE);
    put_le32(bp + HDR_RAMDISK_IMAGE, (uint32_t)initrd_addr);
    put_le32(bp + HDR_RAMDISK_SIZE, req->initrd ? (uint32_t)req->initrd_size : 0);
    if (h.header_end >= HDR_SETUP_DATA + 8)
        put_le64(bp + HDR_SETUP_DATA, 0); /* never follow a pointer copied from the file */
    if (h.version >= 0x020e)
        put_le64(bp + BP_ACPI_RSDP_ADDR, req->rsdp_addr);
    struct e820_map scratch;
    fill_e820(bp, boot_e820(req, &scratch));

    memcpy(gpa_to_host(req->mem, h.load_addr, h.kernel_size), req->kernel + h.setup_size,
           h.kernel_size);

    if (boot_cpu_long64(&out->cpu, req->mem) < 0)
        return qk_fail(err, errlen, "cannot build the boot page tables");
    /* Both 0x08 and 0x10 are 64-bit code here; Linux asks for CS = __BOOT_CS. */
    out->cpu.seg[SEG_CS].selector = BOOT_SEL_CODE;
    out->cpu.rip = h.load_addr + ENTRY64_OFFSET;
    out->cpu.gpr[GPR_RSI] = BOOT_ZERO_PAGE;
    out->format = BOOT_FMT_BZIMAGE;
    out->kernel_end = kernel_end;
    return 0;
}
