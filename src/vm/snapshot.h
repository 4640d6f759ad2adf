/* Snapshot state files: a versioned stream of named sections (the VM's configuration, the
 * guest clock, each vCPU, each device), checked by a trailing FNV-1a hash, so a truncated,
 * corrupt or foreign file is refused with a clear message and never half-loaded. Guest memory
 * goes to its own file (mem_file_path), which a restore maps MAP_PRIVATE: pages fault in as
 * the guest touches them, so restore time does not grow with guest RAM.
 *
 * Layout: "QKSNAP01" magic, u32 format version, then sections {char name[24]; u32 index;
 * u32 length; length bytes}, then an "end" section whose 8 bytes are the hash of everything
 * before it. Integers are little-endian (the host's: x86-64 only). */
#ifndef QUOKKA_VM_SNAPSHOT_H
#define QUOKKA_VM_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SNAPSHOT_VERSION 1u
#define SNAPSHOT_NAME_MAX 24
#define SNAPSHOT_MAX_FILE (64u << 20)

/* A growing buffer the state is written into, then saved in one go. */
struct snap_writer {
    uint8_t *buf;
    size_t len, cap;
    size_t section; /* offset of the open section's header, 0: none */
    bool failed;    /* out of memory: save reports it */
};

/* A parsed state file: sections are looked up by name and index. */
struct snap_section {
    char name[SNAPSHOT_NAME_MAX];
    uint32_t index;
    uint32_t length;
    const uint8_t *data;
};

struct snap_file {
    uint8_t *buf;
    size_t len;
    struct snap_section *sections;
    unsigned nr_sections;
};

/* A cursor over one section's bytes. */
struct snap_reader {
    const uint8_t *data;
    size_t len, pos;
    bool failed; /* read past the end: the section is too short */
};

void snap_writer_init(struct snap_writer *w);
void snap_writer_free(struct snap_writer *w);
/* Start a section; its length is filled in by the next begin or by save. */
void snap_begin(struct snap_writer *w, const char *name, uint32_t index);
void snap_put(struct snap_writer *w, const void *data, size_t len);
void snap_put_u32(struct snap_writer *w, uint32_t v);
void snap_put_u64(struct snap_writer *w, uint64_t v);
void snap_put_str(struct snap_writer *w, const char *s);
/* Write the stream (plus the end section) to path, replacing it atomically. */
int snap_writer_save(struct snap_writer *w, const char *path, char *err, size_t errlen);

int snap_file_load(struct snap_file *f, const char *path, char *err, size_t errlen);
/* The same from a copy of len bytes in memory (fuzz/fuzz_snapshot.c, tests). */
int snap_file_parse(struct snap_file *f, const void *data, size_t len, char *err, size_t errlen);
void snap_file_free(struct snap_file *f);
/* The section or NULL. */
const struct snap_section *snap_find(const struct snap_file *f, const char *name, uint32_t index);
/* A reader over section (name, index); false when it is missing. */
bool snap_open(const struct snap_file *f, const char *name, uint32_t index, struct snap_reader *r);

void snap_get(struct snap_reader *r, void *out, size_t len);
uint32_t snap_get_u32(struct snap_reader *r);
uint64_t snap_get_u64(struct snap_reader *r);
/* A string into buf (len bytes with the NUL); a longer one fails the reader. */
void snap_get_str(struct snap_reader *r, char *buf, size_t len);
/* True when the section was read exactly to its end without running short. */
bool snap_done(const struct snap_reader *r);

#endif
