/* Reproducer files: a minimised diverging case as text (initial state and the instruction
 * groups with their flag annotations), saved by `make fuzz-cpu` under tests/cpu/repro/ and
 * replayed by every CI run so fixed bugs stay fixed. */
#include "fuzz.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

int repro_save(const struct fuzz_case *c, const char *dir, char *path, size_t pathlen)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    h = fnv1a(h, c->code, c->code_len);
    h = fnv1a(h, &c->init, sizeof(c->init));
    h = fnv1a(h, &c->scratch_seed, sizeof(c->scratch_seed));
    snprintf(path, pathlen, "%s/%016" PRIx64 ".txt", dir, h);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fprintf(f, "# quokka fuzz-cpu reproducer: replayed by `make test` (tests/cpu/fuzz_cpu.c)\n");
    fprintf(f, "id %" PRIx64 "\nscratch_seed %" PRIx64 "\nrflags %" PRIx64 "\ngpr", c->id,
            c->scratch_seed, c->init.rflags);
    for (unsigned i = 0; i < 16; i++)
        fprintf(f, " %" PRIx64, c->init.gpr[i]);
    fprintf(f, "\n");
    if (c->loop_passes > 1)
        fprintf(f, "loop %u\n", c->loop_passes);
    for (unsigned i = 0; i < c->nr_items; i++) {
        const struct fuzz_item *it = &c->item[i];
        fprintf(f, "item %s def=%x undef=%x reads=%x jcc=%d cc=%u near=%u rip=%u",
                it->what[0] ? it->what : "-", it->def, it->undef, it->reads, it->jcc_target,
                it->jcc_cc, it->jcc_near, it->nr_rip);
        for (unsigned k = 0; k < it->nr_rip && k < 4; k++)
            fprintf(f, ":%u,%u,%u", it->rip_disp[k], it->rip_end[k], it->rip_target[k]);
        fprintf(f, " bytes=");
        for (unsigned j = 0; j < it->len; j++)
            fprintf(f, "%02x", it->bytes[j]);
        fprintf(f, "\n");
    }
    return fclose(f) == 0 ? 0 : -1;
}

int repro_load(const char *path, struct fuzz_case *c)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    memset(c, 0, sizeof(*c));
    char line[1024];
    int rc = 0;
    while (fgets(line, sizeof(line), f)) {
        if (line[0] == '#' || line[0] == '\n')
            continue;
        if (sscanf(line, "id %" SCNx64, &c->id) == 1 ||
            sscanf(line, "scratch_seed %" SCNx64, &c->scratch_seed) == 1 ||
            sscanf(line, "rflags %" SCNx64, &c->init.rflags) == 1 ||
            sscanf(line, "loop %u", &c->loop_passes) == 1)
            continue;
        if (!strncmp(line, "gpr", 3)) {
            char *p = line + 3;
            for (unsigned i = 0; i < 16; i++)
                c->init.gpr[i] = strtoull(p, &p, 16);
            continue;
        }
        if (!strncmp(line, "item ", 5) && c->nr_items < FUZZ_MAX_ITEMS) {
            struct fuzz_item *it = &c->item[c->nr_items];
            unsigned def, undef, reads, cc, nearj, nrip;
            int jcc, off = 0, used = 0;
            if (sscanf(line, "item %23s def=%x undef=%x reads=%x jcc=%d cc=%u near=%u rip=%u%n",
                       it->what, &def, &undef, &reads, &jcc, &cc, &nearj, &nrip, &used) < 8 ||
                !used || nrip > 4) {
                rc = -1;
                break;
            }
            it->def = (uint16_t)def, it->undef = (uint16_t)undef, it->reads = (uint16_t)reads;
            it->jcc_target = (int16_t)jcc, it->jcc_cc = (uint8_t)cc, it->jcc_near = (uint8_t)nearj;
            it->nr_rip = (uint8_t)nrip;
            for (unsigned k = 0; k < nrip; k++) {
                unsigned dsp, end, target;
                int n = 0;
                if (sscanf(line + used, ":%u,%u,%u%n", &dsp, &end, &target, &n) < 3 || !n) {
                    rc = -1;
                    break;
                }
                it->rip_disp[k] = (uint8_t)dsp, it->rip_end[k] = (uint8_t)end;
                it->rip_target[k] = target;
                used += n;
            }
            if (rc < 0 || sscanf(line + used, " bytes=%n", &off) < 0 || !off) {
                rc = -1;
                break;
            }
            off += used;
            const char *p = line + off;
            unsigned byte;
            while (it->len < FUZZ_ITEM_BYTES && sscanf(p, "%2x", &byte) == 1) {
                it->bytes[it->len++] = (uint8_t)byte;
                p += 2;
            }
            c->nr_items++;
            continue;
        }
        rc = -1;
        break;
    }
    fclose(f);
    if (c->loop_passes > 16) /* a few passes are the point; more only drift pointers */
        rc = -1;
    if (rc == 0 && fuzz_assemble(c) < 0)
        rc = -1;
    return rc;
}
