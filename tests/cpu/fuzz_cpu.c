/* Differential fuzzing driver: generate batches, run each batch natively (in a sandboxed
 * child, concurrently) and in the translator, compare, minimise divergences.
 *
 *   fuzz_cpu --ci [--count N] [--seed S]      fixed-seed batch plus every saved reproducer
 *   fuzz_cpu --fuzz [--seconds T]             time-seeded batches until T (0: forever);
 *                                             minimal divergences go to --repro-dir
 *   fuzz_cpu FILE...                          replay reproducers verbosely
 * --parallel: the translator's VM has two vCPUs (one runs), so LOCK'd instructions are host
 * atomics (atomic.c) rather than loads and stores. */
#include "fuzz.h"

#include <capstone/capstone.h>
#include <dirent.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BATCH 512

struct driver {
    struct native_runner *nr;
    struct tcg_runner *tr;
    unsigned max_items;
    const char *repro_dir; /* save minimised cases here, or NULL */
    unsigned reported;     /* detailed reports printed so far */
    unsigned max_reports;
    uint64_t failed;
    uint64_t faults;   /* cases where both raised #DE (the fault path is exercised) */
    char seen[64][96]; /* signatures of saved reproducers: one file per distinct bug shape */
    unsigned nr_seen;
};

static const char *const reg_names[16] = {"rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
                                          "r8",  "r9",  "r10", "r11", "r12", "r13", "r14", "r15"};

static double now_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Equal under the case's flag mask? why (optional) gets a one-line reason. */
static bool same(const struct fuzz_case *c, const struct fuzz_result *n,
                 const struct fuzz_result *t, char *why, size_t len)
{
    if (n->error || t->error) {
        snprintf(why, len, "runner error (native %d, translator %d)", n->error, t->error);
        return false;
    }
    if (n->fault && n->fault != SIGFPE) {
        snprintf(why, len, "native signal %d at 0x%" PRIx64 " (generator bug?)", n->fault,
                 n->fault_rip);
        return false;
    }
    if (!!n->fault != !!t->fault) {
        snprintf(why, len, "fault: native %s, translator %s", n->fault ? "#DE" : "none",
                 t->fault ? "exception" : "none");
        return false;
    }
    if (n->fault && n->fault_rip != t->fault_rip) {
        snprintf(why, len, "fault rip: native 0x%" PRIx64 " translator 0x%" PRIx64, n->fault_rip,
                 t->fault_rip);
        return false;
    }
    for (unsigned i = 0; i < 16; i++)
        if (n->regs.gpr[i] != t->regs.gpr[i]) {
            snprintf(why, len, "%s", reg_names[i]);
            return false;
        }
    uint32_t mask;
    fuzz_flag_mask(c, n->fault ? n->fault_rip : 0, &mask);
    if ((n->regs.rflags ^ t->regs.rflags) & mask) {
        snprintf(why, len, "rflags bits 0x%" PRIx64, (n->regs.rflags ^ t->regs.rflags) & mask);
        return false;
    }
    if (memcmp(n->scratch, t->scratch, FUZZ_SCRATCH_SIZE) != 0) {
        snprintf(why, len, "scratch memory");
        return false;
    }
    return true;
}

static void disassemble(const struct fuzz_case *c, FILE *out)
{
    csh h;
    if (cs_open(CS_ARCH_X86, CS_MODE_64, &h) != CS_ERR_OK)
        return;
    for (unsigned i = 0; i < c->nr_items; i++) {
        const uint8_t *p = c->code + c->item_start[i];
        size_t size = (size_t)(c->item_start[i + 1] - c->item_start[i]);
        uint64_t addr = FUZZ_CODE_BASE + c->item_start[i];
        fprintf(out, "  ; group %u: %s (def %03x undef %03x reads %03x)\n", i, c->item[i].what,
                c->item[i].def, c->item[i].undef, c->item[i].reads);
        cs_insn *insn;
        size_t n = cs_disasm(h, p, size, addr, 0, &insn);
        size_t covered = 0;
        for (size_t k = 0; k < n; k++) {
            fprintf(out, "  %08" PRIx64 ":  ", insn[k].address);
            for (unsigned b = 0; b < 10; b++)
                fprintf(out, b < insn[k].size ? "%02x" : "  ", insn[k].bytes[b]);
            fprintf(out, " %s %s\n", insn[k].mnemonic, insn[k].op_str);
            covered += insn[k].size;
        }
        if (n)
            cs_free(insn, n);
        if (covered < size)
            fprintf(out, "  (%zu undecodable bytes)\n", size - covered);
    }
    cs_close(&h);
}

static void report(const struct fuzz_case *c, const struct fuzz_result *n,
                   const struct fuzz_result *t, const char *why, FILE *out)
{
    fprintf(out, "--- divergence: case %016" PRIx64 " (%s)\n", c->id, why);
    disassemble(c, out);
    uint32_t mask;
    fuzz_flag_mask(c, n->fault ? n->fault_rip : 0, &mask);
    fprintf(out, "  %-6s %-18s %-18s %-18s\n", "", "initial", "native", "translator");
    for (unsigned i = 0; i < 16; i++)
        fprintf(out, "  %-6s %016" PRIx64 "   %016" PRIx64 "   %016" PRIx64 "%s\n", reg_names[i],
                c->init.gpr[i], n->regs.gpr[i], t->regs.gpr[i],
                n->regs.gpr[i] != t->regs.gpr[i] ? "   <--" : "");
    fprintf(out, "  %-6s %016" PRIx64 "   %016" PRIx64 "   %016" PRIx64 "   (compared 0x%03x)%s\n",
            "rflags", c->init.rflags, n->regs.rflags, t->regs.rflags, mask,
            (n->regs.rflags ^ t->regs.rflags) & mask ? "   <--" : "");
    fprintf(out, "  fault  native %d at 0x%" PRIx64 ", translator %d at 0x%" PRIx64 "\n", n->fault,
            n->fault_rip, t->fault, t->fault_rip);
    unsigned shown = 0;
    for (unsigned i = 0; i < FUZZ_SCRATCH_SIZE && shown < 8; i++)
        if (n->scratch[i] != t->scratch[i]) {
            fprintf(out, "  scratch+0x%04x: native %02x translator %02x\n", i, n->scratch[i],
                    t->scratch[i]);
            shown++;
        }
}

/* Both runs of one case; true when they agree. */
static bool run_one(struct driver *d, const struct fuzz_case *c, struct fuzz_result *n,
                    struct fuzz_result *t, char *why, size_t len)
{
    if (native_run_batch(d->nr, c, 1, n) < 0) {
        snprintf(why, len, "cannot run natively");
        n->error = 1;
    }
    tcg_run_case(d->tr, c, t);
    return same(c, n, t, why, len);
}

/* Drop groups one at a time while the case still diverges. */
static void minimise(struct driver *d, struct fuzz_case *c, struct fuzz_result *n,
                     struct fuzz_result *t)
{
    struct fuzz_case *trial = malloc(sizeof(*trial));
    char why[160];
    bool progress = true;
    while (progress && trial) {
        progress = false;
        for (int i = (int)c->nr_items - 1; i >= 0; i--) {
            *trial = *c;
            memmove(&trial->item[i], &trial->item[i + 1],
                    sizeof(trial->item[0]) * (trial->nr_items - (unsigned)i - 1));
            trial->nr_items--;
            for (unsigned k = 0; k < trial->nr_items; k++)
                if (trial->item[k].jcc_target > i)
                    trial->item[k].jcc_target--;
            uint32_t mask;
            if (fuzz_assemble(trial) < 0 || !fuzz_flag_mask(trial, 0, &mask))
                continue;
            if (!run_one(d, trial, n, t, why, sizeof(why))) {
                *c = *trial;
                progress = true;
            }
        }
    }
    free(trial);
    run_one(d, c, n, t, why, sizeof(why)); /* leave n and t describing the final case */
}

static void divergence(struct driver *d, struct fuzz_case *c, struct fuzz_result *n,
                       struct fuzz_result *t, const char *why)
{
    d->failed++;
    if (d->reported >= d->max_reports)
        return;
    d->reported++;
    report(c, n, t, why, stdout);
    char why2[160];
    minimise(d, c, n, t);
    if (same(c, n, t, why2, sizeof(why2))) {
        printf("  (does not reproduce on its own)\n");
        return;
    }
    printf("  minimised:\n");
    report(c, n, t, why2, stdout);
    char sig[96] = "";
    for (unsigned i = 0; i < c->nr_items; i++)
        snprintf(sig + strlen(sig), sizeof(sig) - strlen(sig), "%s ", c->item[i].what);
    snprintf(sig + strlen(sig), sizeof(sig) - strlen(sig), "(%.20s)", why2);
    for (unsigned i = 0; i < d->nr_seen; i++)
        if (!strcmp(d->seen[i], sig)) {
            printf("  same shape as an earlier divergence: not saved again\n");
            return;
        }
    if (d->nr_seen < 64)
        snprintf(d->seen[d->nr_seen++], sizeof(d->seen[0]), "%s", sig);
    if (d->repro_dir) {
        char path[512];
        if (repro_save(c, d->repro_dir, path, sizeof(path)) == 0)
            printf("  saved %s\n", path);
        else
            printf("  cannot save a reproducer in %s\n", d->repro_dir);
    }
    fflush(stdout);
}

static uint64_t case_seed(uint64_t base, uint64_t i)
{
    struct rng r = {base ^ (i * 0xd1342543de82ef95ULL)};
    return rng_next(&r);
}

/* Run count cases from seed base; returns cases run. */
static uint64_t run_batches(struct driver *d, uint64_t base, uint64_t count, double deadline)
{
    struct fuzz_case *cases = calloc(BATCH, sizeof(*cases));
    struct fuzz_result *nat = calloc(BATCH, sizeof(*nat));
    uint64_t done = 0;
    if (!cases || !nat) {
        fprintf(stderr, "fuzz-cpu: out of memory\n");
        d->failed++;
        goto out;
    }
    while (done < count && (deadline == 0 || now_sec() < deadline)) {
        unsigned n = count - done < BATCH ? (unsigned)(count - done) : BATCH;
        for (unsigned i = 0; i < n; i++)
            fuzz_generate(&cases[i], case_seed(base, done + i), d->max_items);
        /* The child runs the batch natively while this process runs the translator. */
        if (native_batch_start(d->nr, cases, n) < 0) {
            fprintf(stderr, "fuzz-cpu: cannot fork the native runner\n");
            d->failed++;
            goto out;
        }
        struct fuzz_result *tres = malloc(sizeof(*tres) * (size_t)n);
        if (!tres) {
            native_batch_finish(d->nr, nat);
            d->failed++;
            goto out;
        }
        for (unsigned i = 0; i < n; i++)
            tcg_run_case(d->tr, &cases[i], &tres[i]);
        native_batch_finish(d->nr, nat);
        for (unsigned i = 0; i < n; i++) {
            char why[160];
            if (!same(&cases[i], &nat[i], &tres[i], why, sizeof(why)))
                divergence(d, &cases[i], &nat[i], &tres[i], why);
            else if (nat[i].fault)
                d->faults++;
        }
        free(tres);
        done += n;
    }
out:
    free(cases);
    free(nat);
    return done;
}

static unsigned replay_dir(struct driver *d, const char *dir)
{
    DIR *dp = opendir(dir);
    unsigned count = 0;
    if (!dp)
        return 0;
    struct dirent *e;
    struct fuzz_case *c = malloc(sizeof(*c));
    struct fuzz_result *n = malloc(sizeof(*n)), *t = malloc(sizeof(*t));
    while (c && n && t && (e = readdir(dp))) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".txt"))
            continue;
        char path[1024], why[160];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        count++;
        if (repro_load(path, c) < 0) {
            printf("fuzz-cpu: cannot parse %s\n", path);
            d->failed++;
            continue;
        }
        if (!run_one(d, c, n, t, why, sizeof(why))) {
            printf("fuzz-cpu: reproducer %s still diverges\n", path);
            report(c, n, t, why, stdout);
            d->failed++;
        }
    }
    free(c), free(n), free(t);
    closedir(dp);
    return count;
}

#ifndef QUOKKA_SOURCE_DIR
#define QUOKKA_SOURCE_DIR "."
#endif

int main(int argc, char **argv)
{
    bool ci = false, fuzz = false, parallel = false;
    uint64_t count = 100000, seed = 0x71756f6b6b61ULL; /* "quokka" */
    double seconds = 0;
    bool seed_given = false;
    struct driver d = {.max_items = 8, .max_reports = 5};
    /* The source tree's reproducers, not a path relative to wherever this runs. */
    const char *replay = QUOKKA_SOURCE_DIR "/tests/cpu/repro";
    int nfiles = 0;
    char **files = calloc((size_t)argc, sizeof(char *));
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--ci"))
            ci = true;
        else if (!strcmp(a, "--fuzz"))
            fuzz = true;
        else if (!strcmp(a, "--parallel"))
            parallel = true;
        else if (!strcmp(a, "--count") && i + 1 < argc)
            count = strtoull(argv[++i], NULL, 0);
        else if (!strcmp(a, "--seed") && i + 1 < argc)
            seed = strtoull(argv[++i], NULL, 0), seed_given = true;
        else if (!strcmp(a, "--seconds") && i + 1 < argc)
            seconds = strtod(argv[++i], NULL);
        else if (!strcmp(a, "--max-items") && i + 1 < argc)
            d.max_items = (unsigned)strtoul(argv[++i], NULL, 0);
        else if (!strcmp(a, "--repro-dir") && i + 1 < argc)
            d.repro_dir = argv[++i], replay = d.repro_dir;
        else if (!strcmp(a, "--max-reports") && i + 1 < argc)
            d.max_reports = (unsigned)strtoul(argv[++i], NULL, 0);
        else if (!strcmp(a, "--dump") && i + 1 < argc) {
            /* Show what the generator makes (for eyeballing coverage). */
            unsigned k = (unsigned)strtoul(argv[++i], NULL, 0);
            struct fuzz_case *c = malloc(sizeof(*c));
            for (unsigned j = 0; c && j < k; j++) {
                fuzz_generate(c, case_seed(seed, j), d.max_items);
                printf("case %u\n", j);
                disassemble(c, stdout);
            }
            free(c);
            free(files);
            return 0;
        } else if (a[0] != '-' && files)
            files[nfiles++] = argv[i];
        else {
            fprintf(stderr,
                    "usage: %s [--parallel] --ci [--count N] [--seed S] | --fuzz [--seconds T] "
                    "[--repro-dir DIR] | FILE...\n",
                    argv[0]);
            return 2;
        }
    }
    d.nr = native_runner_new(BATCH);
    d.tr = tcg_runner_new(parallel);
    if (!d.nr || !d.tr) {
        fprintf(stderr, "fuzz-cpu: cannot set up the runners\n");
        return 1;
    }
    double t0 = now_sec();
    uint64_t ran = 0;
    if (nfiles) {
        d.max_reports = 1000;
        for (int i = 0; i < nfiles; i++) {
            struct fuzz_case *c = malloc(sizeof(*c));
            struct fuzz_result *n = malloc(sizeof(*n)), *t = malloc(sizeof(*t));
            char why[160];
            if (!c || !n || !t || repro_load(files[i], c) < 0) {
                printf("fuzz-cpu: cannot load %s\n", files[i]);
                d.failed++;
            } else if (!run_one(&d, c, n, t, why, sizeof(why))) {
                report(c, n, t, why, stdout);
                d.failed++;
            } else {
                printf("%s: native and translator agree\n", files[i]);
                disassemble(c, stdout);
            }
            free(c), free(n), free(t);
        }
        ran = (uint64_t)nfiles;
    } else if (fuzz) {
        if (!seed_given)
            seed = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ULL ^ (uint64_t)getpid();
        d.max_reports = 100;
        printf("fuzz-cpu: fuzzing with seed 0x%" PRIx64 " (%s)\n", seed,
               seconds > 0 ? "time-limited" : "until interrupted");
        fflush(stdout);
        double deadline = seconds > 0 ? t0 + seconds : 0;
        for (uint64_t round = 0; deadline == 0 || now_sec() < deadline; round++) {
            ran += run_batches(&d, seed + round, 1u << 16, deadline);
            double el = now_sec() - t0;
            printf("fuzz-cpu: %" PRIu64 " sequences, %.0f/s, %" PRIu64 " divergent\n", ran,
                   (double)ran / el, d.failed);
            fflush(stdout);
        }
    } else {
        (void)ci;
        unsigned replayed = replay_dir(&d, replay);
        ran = run_batches(&d, seed, count, 0);
        printf("fuzz-cpu: replayed %u reproducers from %s\n", replayed, replay);
        if (!replayed) {
            /* A missing or empty directory would otherwise pass silently. */
            printf("fuzz-cpu: no reproducers found in %s\n", replay);
            d.failed++;
        }
    }
    double el = now_sec() - t0;
    printf("fuzz-cpu: %" PRIu64 " sequences in %.1f s (%.0f/s, %" PRIu64 " ending in #DE on both), "
           "seed 0x%" PRIx64 "\n",
           ran, el, el > 0 ? (double)ran / el : 0.0, d.faults, seed);
    printf("[==========] %" PRIu64 " passed, %" PRIu64 " failed\n",
           ran >= d.failed ? ran - d.failed : 0, d.failed);
    tcg_runner_free(d.tr);
    native_runner_free(d.nr);
    free(files);
    return d.failed ? 1 : 0;
}
