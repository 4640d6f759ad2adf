/* A small builder of ACPI Machine Language (AML) byte code for the DSDT: name strings,
 * integers, strings, EISA ids, Name/Scope/Device/Method/Package/Buffer and the resource
 * descriptors a PC's _CRS needs. Encodings follow the ACPI 6.x specification, chapters 19
 * (ASL) and 20 (AML), and 6.4 (resource data types).
 *
 * Blocks (Scope, Device, Method, Package, Buffer, ResourceTemplate) are opened with their
 * aml_*() call and closed with aml_end(); the PkgLength in front of each is back-patched on
 * close with the fewest bytes that hold it. The buffer grows up to a hard limit. Errors
 * (over the limit, out of memory, a malformed name, unbalanced blocks) are sticky: every later
 * call does nothing, and aml_ok() says false. Callers write a whole description and check
 * once at the end. */
#ifndef QUOKKA_VM_BOOT_AML_H
#define QUOKKA_VM_BOOT_AML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AML_MAX_DEPTH 16

struct aml_buf {
    uint8_t *data;
    size_t len;
    size_t alloc; /* bytes allocated for data */
    size_t limit; /* hard cap on len */
    bool failed;
    unsigned depth;
    struct {
        size_t start; /* where the block's PkgLength goes */
        uint8_t kind; /* how to close it (see aml.c) */
    } open[AML_MAX_DEPTH];
};

/* An empty buffer that will hold at most `limit` bytes. */
void aml_init(struct aml_buf *a, size_t limit);
void aml_free(struct aml_buf *a);
/* True when everything written so far fits and is well-formed, and no block is left open. */
bool aml_ok(const struct aml_buf *a);

/* Raw bytes and little-endian fields (for callers writing their own encodings). */
void aml_byte(struct aml_buf *a, uint8_t b);
void aml_bytes(struct aml_buf *a, const void *p, size_t n);

/* --- data objects ------------------------------------------------------------------- */

/* A name path: "\\" root prefix, "^" parent prefixes, then 1-4 character segments joined by
 * dots ("\\_SB.PCI0", "_HID", "^^FOO"); short segments are padded with '_'. */
void aml_name_string(struct aml_buf *a, const char *path);
/* Zero/One or the smallest of Byte/Word/DWord/QWord constants. */
void aml_integer(struct aml_buf *a, uint64_t v);
/* A NUL-terminated ASCII string constant. */
void aml_string(struct aml_buf *a, const char *s);
/* EISAID("PNP0A03"): three letters and four hex digits compressed to a DWord. */
void aml_eisaid(struct aml_buf *a, const char *id);

/* Name(name, <object>): follow with exactly one data object (integer, string, package...). */
void aml_name(struct aml_buf *a, const char *name);
void aml_name_integer(struct aml_buf *a, const char *name, uint64_t v);
void aml_name_string_value(struct aml_buf *a, const char *name, const char *s);
void aml_name_eisaid(struct aml_buf *a, const char *name, const char *id);

/* Return(<term>): follow with exactly one term. */
void aml_return(struct aml_buf *a);

/* --- blocks, each closed by aml_end() --------------------------------------------------- */

void aml_scope(struct aml_buf *a, const char *path);
void aml_device(struct aml_buf *a, const char *path);
/* Method(path, nargs (0-7), Serialized/NotSerialized) { ... } */
void aml_method(struct aml_buf *a, const char *path, unsigned nargs, bool serialized);
/* Package(n) { ... }: the caller writes exactly n elements (n <= 255). */
void aml_package(struct aml_buf *a, unsigned nr_elements);
/* Buffer() { bytes }: the size is computed on close. */
void aml_buffer(struct aml_buf *a);
/* ResourceTemplate() { descriptors }: a Buffer whose end tag is added on close. */
void aml_resource_template(struct aml_buf *a);
void aml_end(struct aml_buf *a);

/* --- resource descriptors, inside aml_resource_template() ------------------------------ */

/* WordBusNumber(ResourceProducer, MinFixed, MaxFixed, PosDecode, 0, min, max, 0, len) */
void aml_word_bus_number(struct aml_buf *a, uint16_t min, uint16_t max);
/* IO(Decode16, min, max, align, len): ports a device itself decodes. */
void aml_io(struct aml_buf *a, uint16_t min, uint16_t max, uint8_t align, uint8_t len);
/* WordIO(ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange, 0, min, max, 0, len):
 * a port window a bridge forwards. */
void aml_word_io(struct aml_buf *a, uint16_t min, uint16_t max);
/* DWordMemory/QWordMemory(ResourceProducer, PosDecode, MinFixed, MaxFixed, NonCacheable or
 * Prefetchable, ReadWrite, 0, min, max, 0, len): a memory window a bridge forwards. */
void aml_dword_memory(struct aml_buf *a, uint32_t min, uint32_t max, bool prefetchable);
void aml_qword_memory(struct aml_buf *a, uint64_t min, uint64_t max, bool prefetchable);
/* Memory32Fixed(ReadWrite, base, len): memory a device itself decodes or reserves. */
void aml_memory32_fixed(struct aml_buf *a, uint32_t base, uint32_t len);
/* IRQNoFlags() { irq } (ISA: edge, active high), irq < 16. */
void aml_irq_no_flags(struct aml_buf *a, uint8_t irq);
/* Interrupt(ResourceConsumer, Level/Edge, ActiveHigh/ActiveLow, Exclusive/Shared) { gsi } */
void aml_interrupt(struct aml_buf *a, uint32_t gsi, bool level, bool active_low, bool shared);

#endif
