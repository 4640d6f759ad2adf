/* libFuzzer target: snapshot state files (vm/snapshot.c) as PUT /snapshot/load reads them.
 * The bytes are parsed as a state file (magic, version, section index, trailing hash), once
 * as given and once with the trailing "end" section rewritten to the right hash so that the
 * mutations reach the sections. A parsed file then goes through the loaders a restore runs
 * before it has a machine: the configuration (snapshot_config_read, then the lookups and
 * edits the load overrides make), the guest clock, and every "vcpu" section into a
 * translator vCPU (tcg_load_vcpu: registers, flags, FPU, the local APIC, the startup word).
 * Device sections (pci, virtio) need a built machine and are only walked as raw sections.
 *
 * Seeds: with QUOKKA_FUZZ_WRITE_SEEDS=dir the target writes state files made by the
 * project's writer (snap_writer_*, tcg_save_vcpu) into dir and exits (fuzz/make_seeds.py). */
#include "accel/tcg/tcg_internal.h"
#include "vm/machine.h"
#include "vm/snapshot.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct accel_vcpu *vcpu;
static bool verbose; /* QUOKKA_FUZZ_VERBOSE: print what each loader says (checking seeds) */

static void say(const char *what, int rc, const char *err)
{
    if (verbose)
        fprintf(stderr, "%s: %s\n", what, rc < 0 ? err : "ok");
}

static uint64_t fake_clock(void *ctx)
{
    (void)ctx;
    return 1000000;
}

static const struct lapic_ops lapic_ops = {.clock_ns = fake_clock};

/* A translator vCPU with just what tcg_load_vcpu/tcg_save_vcpu touch: no VM, no thread. */
static void reset_vcpu(void)
{
    memset(&vcpu->cpu, 0, sizeof(vcpu->cpu));
    vcpu->cpu.vcpu = (struct tcg_vcpu *)vcpu; /* what cpu_vcpu() casts back */
    vcpu->wait_for_sipi = false;
    lapic_reset(&vcpu->lapic);
}

static void run_loaders(const struct snap_file *f)
{
    char err[400];
    struct machine_config base;
    memset(&base, 0, sizeof(base));
    struct snapshot_config sc;
    int rc = snapshot_config_read(f, &base, &sc, err, sizeof(err));
    say("config", rc, err);
    if (rc == 0) {
        /* what api_apply_overrides does with a network/vsock override */
        static const char *const drop[] = {"tap", "hostfwd", NULL};
        int i = snapshot_config_find(&sc, "virtio-net", "eth0");
        if (i < 0)
            i = snapshot_config_find(&sc, "virtio-net", NULL);
        if (i >= 0 && snapshot_config_has(&sc, (unsigned)i, "user"))
            snapshot_config_edit(&sc, (unsigned)i, drop, "hostfwd=tcp::8080-:80");
        i = snapshot_config_find(&sc, "virtio-vsock", NULL);
        if (i >= 0)
            snapshot_config_edit(&sc, (unsigned)i, (const char *const[]){"uds", NULL},
                                 "uds=/nonexistent/v.sock");
        snapshot_config_free(&sc);
    }
    struct snap_reader r;
    if (snap_open(f, "clock", 0, &r)) {
        (void)snap_get_u64(&r);
        (void)snap_done(&r);
    }
    for (unsigned n = 0; n < f->nr_sections; n++) {
        const struct snap_section *s = &f->sections[n];
        if (strcmp(s->name, "vcpu") != 0) {
            /* device sections: at least every byte is readable */
            struct snap_reader d = {s->data, s->length, 0, false};
            uint8_t sink[64];
            while (!d.failed && d.pos < d.len)
                snap_get(&d, sink, d.len - d.pos < sizeof(sink) ? d.len - d.pos : sizeof(sink));
            continue;
        }
        reset_vcpu();
        vcpu->index = s->index;
        r = (struct snap_reader){s->data, s->length, 0, false};
        say("vcpu", tcg_load_vcpu(vcpu, &r, err, sizeof(err)), err);
    }
}

static uint64_t fnv1a(const uint8_t *p, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

static void parse_and_load(const uint8_t *data, size_t len)
{
    struct snap_file f;
    char err[400];
    int rc = snap_file_parse(&f, data, len, err, sizeof(err));
    say("file", rc, err);
    if (rc < 0)
        return;
    run_loaders(&f);
    snap_file_free(&f);
}

/* --- seeds ---------------------------------------------------------------------------------- */

static void put_config(struct snap_writer *w, unsigned nr_vcpus, const char *const *devs)
{
    snap_begin(w, "config", 0);
    snap_put_u64(w, 64u << 20);
    snap_put_u32(w, nr_vcpus);
    snap_put_u32(w, 1);
    snap_put_str(w, "tcg");
    unsigned n = 0;
    while (devs[2 * n])
        n++;
    snap_put_u32(w, n);
    for (unsigned i = 0; i < n; i++) {
        snap_put_str(w, devs[2 * i]);
        snap_put_str(w, devs[2 * i + 1]);
    }
}

static void write_seed(const char *dir, const char *name, unsigned nr_vcpus,
                       const char *const *devs)
{
    struct snap_writer w;
    char path[4096], err[400];
    snap_writer_init(&w);
    put_config(&w, nr_vcpus, devs);
    snap_begin(&w, "clock", 0);
    snap_put_u64(&w, 123456789);
    for (unsigned i = 0; i < nr_vcpus; i++) {
        reset_vcpu();
        vcpu->index = i;
        vcpu->cpu.rip = 0xfff0 + i;
        vcpu->cpu.cr0 = 0x60000010;
        vcpu->wait_for_sipi = i != 0;
        snap_begin(&w, "vcpu", i);
        tcg_save_vcpu(vcpu, &w);
    }
    snap_begin(&w, "pci", 0);
    snap_put_u32(&w, 0);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (snap_writer_save(&w, path, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    snap_writer_free(&w);
}

static void write_seeds(const char *dir)
{
    static const char *const none[] = {NULL};
    static const char *const devs[] = {"virtio-blk",
                                       "path=/rootfs.ext4,id=rootfs",
                                       "virtio-net",
                                       "user,id=eth0,hostfwd=tcp::2222-:22",
                                       "virtio-vsock",
                                       "cid=3,uds=/tmp/v.sock",
                                       NULL};
    write_seed(dir, "one-vcpu", 1, none);
    write_seed(dir, "two-vcpus-devices", 2, devs);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    vcpu = calloc(1, sizeof(*vcpu));
    if (!vcpu || lapic_init(&vcpu->lapic, 0, true, &lapic_ops) < 0)
        abort();
    verbose = getenv("QUOKKA_FUZZ_VERBOSE") != NULL;
    const char *dir = getenv("QUOKKA_FUZZ_WRITE_SEEDS");
    if (dir) {
        write_seeds(dir);
        exit(0);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    if (len > 1 << 20)
        return 0;
    parse_and_load(data, len);
    /* the same with the end section's hash made right */
    enum { END = SNAPSHOT_NAME_MAX + 8 + 8 };
    if (len < 12 + END)
        return 0;
    uint8_t *copy = malloc(len);
    if (!copy)
        return 0;
    memcpy(copy, data, len);
    uint8_t *end = copy + len - END;
    memset(end, 0, SNAPSHOT_NAME_MAX + 8);
    memcpy(end, "end", 3);
    uint32_t eight = 8;
    memcpy(end + SNAPSHOT_NAME_MAX + 4, &eight, 4);
    uint64_t h = fnv1a(copy, len - END);
    memcpy(end + SNAPSHOT_NAME_MAX + 8, &h, 8);
    parse_and_load(copy, len);
    free(copy);
    return 0;
}
