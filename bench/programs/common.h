/* Shared by the bench/programs: a deterministic generator, a clock and the result line.
 * Each program takes a scale (work units) as argv[1] and prints
 * "RESULT <name> <seconds> <checksum>", timed inside the guest. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static inline uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static long scale_arg(int argc, char **argv, long dflt)
{
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : dflt;
    return n > 0 && n < 1000000 ? n : dflt;
}

static void report(const char *name, double start, uint64_t checksum)
{
    printf("RESULT %s %.6f %016llx\n", name, now() - start, (unsigned long long)checksum);
}
