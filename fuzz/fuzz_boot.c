/* libFuzzer target: the boot loaders (bzImage, Multiboot, PVH, ELF64) on untrusted kernel
 * files. The first input byte picks the loader (0: detection as `quokka run` does, 1-4: one
 * loader directly, so each parser sees inputs the others would claim), the second how much
 * initrd follows the kernel, the rest is the file. Loading must never read outside the
 * file, write outside guest RAM, or crash; refusing is fine. */
#include "vm/boot/boot.h"
#include "vm/e820.h"
#include "vm/memory.h"

#include <stdint.h>
#include <stdlib.h>

#define RAM_SIZE (64ULL << 20)

static struct guest_memory mem;
static struct e820_map e820;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    char err[512];
    if (!ready) {
        if (guest_memory_init(&mem, RAM_SIZE, err, sizeof(err)) < 0)
            abort();
        e820_build(&mem, &e820);
        ready = 1;
    }
    if (size < 2)
        return 0;
    unsigned which = data[0] % 5;
    size_t initrd_size = (size_t)data[1] * 64;
    data += 2;
    size -= 2;
    if (initrd_size > size)
        initrd_size = size;
    struct boot_request req = {
        .mem = &mem,
        .kernel = data,
        .kernel_size = size - initrd_size,
        .initrd = initrd_size ? data + size - initrd_size : NULL,
        .initrd_size = initrd_size,
        .cmdline = "console=ttyS0",
        .e820 = &e820,
        .rsdp_addr = 0xE0000,
    };
    struct boot_result res;
    switch (which) {
    case 0:
        boot_load(&req, &res, err, sizeof(err));
        break;
    case 1:
        boot_load_bzimage(&req, &res, err, sizeof(err));
        break;
    case 2:
        boot_load_multiboot(&req, &res, err, sizeof(err));
        break;
    case 3:
        boot_load_pvh(&req, &res, err, sizeof(err));
        break;
    default:
        boot_load_elf64(&req, &res, err, sizeof(err));
        break;
    }
    return 0;
}
