/* Plain ELF64 payloads: loaded at their physical addresses and entered in long mode on the
 * 4 GiB identity map with RSP = the boot stack (BOOT_STACK_TOP unless a segment is there), RDI =
 * command line, RSI/RDX = initrd address/size (0 when none), so small payloads need no boot
 * protocol of their own. */
#include "vm/boot/boot.h"

#include "util/log.h"
#include "vm/boot/elf.h"
#include "vm/boot/loader.h"
#include "vm/memory.h"

#include <string.h>

#define IDENTITY_MAP_END (1ULL << 32)

int boot_load_elf64(const struct boot_request *req, struct boot_result *out, char *err,
                    size_t errlen)
{
    memset(out, 0, sizeof(*out));
    struct elf_file elf;
    if (elf_open(&elf, req->kernel, req->kernel_size, err, errlen) < 0)
        return -1;
    if (!elf.is64)
        return qk_fail(err, errlen, "ELF32 file cannot be entered in 64-bit mode");
    uint64_t entry = 0, lo = 0, hi = 0;
    if (elf_check_segments(&elf, req->mem, &lo, &hi, err, errlen) < 0)
        return -1;
    if (!elf_vaddr_to_paddr(&elf, elf.entry, &entry))
        return qk_fail(err, errlen, "ELF64 entry point 0x%llx is outside every loaded segment",
                       (unsigned long long)elf.entry);
    /* The entry runs on the identity map, so its (virtual) address must be mapped there. */
    if (elf.entry >= IDENTITY_MAP_END || entry != elf.entry)
        return qk_fail(err, errlen,
                       "ELF64 entry point 0x%llx is not identity mapped (loaded at 0x%llx; "
                       "only the first 4 GiB are mapped 1:1)",
                       (unsigned long long)elf.entry, (unsigned long long)entry);
    long cmdline_len = boot_cmdline_len(req, BOOT_CMDLINE_MAX - 1, err, errlen);
    struct boot_ranges kr = {0};
    struct boot_layout l;
    boot_ranges_from_elf(&elf, &kr);
    if (cmdline_len < 0 ||
        boot_plan_layout(req->mem, &kr, (uint64_t)cmdline_len, &l, err, errlen) < 0 ||
        boot_write_cmdline(req, &l, err, errlen) < 0 ||
        elf_load_segments(&elf, req->mem, &lo, &hi, err, errlen) < 0)
        return -1;
    uint64_t initrd_addr = 0;
    if (req->initrd && boot_place_initrd(req, IDENTITY_MAP_END, hi > l.high_end ? hi : l.high_end,
                                         &initrd_addr, err, errlen) < 0)
        return -1;
    if (boot_cpu_long64_at(&out->cpu, req->mem, &l) < 0)
        return qk_fail(err, errlen, "cannot build the boot page tables");
    out->cpu.rip = entry;
    out->cpu.gpr[GPR_RSP] = l.stack_top;
    out->cpu.gpr[GPR_RDI] = l.cmdline;
    out->cpu.gpr[GPR_RSI] = initrd_addr;
    out->cpu.gpr[GPR_RDX] = req->initrd ? req->initrd_size : 0;
    out->format = BOOT_FMT_ELF64;
    out->kernel_end = hi;
    return 0;
}
