/* Minimal validating ELF reader for kernel images: ELF32 (i386) and ELF64 (x86-64),
 * little-endian, EXEC or DYN. Every offset and size is checked against the file before use. */
#ifndef QUOKKA_VM_BOOT_ELF_H
#define QUOKKA_VM_BOOT_ELF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct guest_memory;

#define ELF_PT_LOAD 1
#define ELF_PT_NOTE 4
#define ELF_EM_386 3
#define ELF_EM_X86_64 62

struct elf_file {
    const uint8_t *data;
    size_t size;
    bool is64;
    uint16_t type;
    uint16_t machine;
    uint64_t entry;
    uint64_t phoff;
    uint16_t phnum;
    uint16_t phentsize;
};

struct elf_segment {
    uint32_t type;
    uint64_t offset, vaddr, paddr, filesz, memsz, align;
};

/* The four ELF magic bytes are present. */
bool elf_has_magic(const uint8_t *data, size_t size);

/* Validate the ELF header and the program header table bounds. */
int elf_open(struct elf_file *elf, const uint8_t *data, size_t size, char *err, size_t errlen);

/* Program header i (i < phnum; elf_open checked the table lies inside the file). */
void elf_segment_at(const struct elf_file *elf, unsigned i, struct elf_segment *seg);

/* Search every PT_NOTE segment for a note with this name and type. Returns 1 and sets desc and
 * descsz (desc lies inside the file) when found, 0 when not. Malformed notes end the search of
 * their segment. */
int elf_find_note(const struct elf_file *elf, const char *name, uint32_t type, const uint8_t **desc,
                  uint32_t *descsz);

/* Validate every PT_LOAD segment: file range, memsz >= filesz, destination RAM at or above
 * 1 MiB, at least one segment. On success [lo, hi) bounds all of them. */
int elf_check_segments(const struct elf_file *elf, const struct guest_memory *mem, uint64_t *lo,
                       uint64_t *hi, char *err, size_t errlen);

/* elf_check_segments, then copy each PT_LOAD segment to its p_paddr, zeroing the part beyond
 * filesz. */
int elf_load_segments(const struct elf_file *elf, struct guest_memory *mem, uint64_t *lo,
                      uint64_t *hi, char *err, size_t errlen);

/* Translate a virtual address (e.g. e_entry) to the physical address it was loaded at, using
 * the PT_LOAD segment containing it; addresses in no segment are returned unchanged.
 * Returns whether the result lies inside a loaded segment. */
bool elf_vaddr_to_paddr(const struct elf_file *elf, uint64_t vaddr, uint64_t *paddr);

/* paddr lies inside the memory image of some PT_LOAD segment. */
bool elf_paddr_in_segment(const struct elf_file *elf, uint64_t paddr);

#endif
