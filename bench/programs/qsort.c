/* libc qsort of pseudo-random 64-bit keys with a comparison callback: calls, returns,
 * indirect calls, unpredictable branches. */
#include "common.h"

#define N 200000

static uint64_t a[N];

static int cmp(const void *x, const void *y)
{
    uint64_t p = *(const uint64_t *)x, q = *(const uint64_t *)y;
    return (p > q) - (p < q);
}

int main(int argc, char **argv)
{
    long reps = scale_arg(argc, argv, 4);
    double t0 = now();
    uint64_t sum = 0;
    for (long r = 0; r < reps; r++) {
        for (int i = 0; i < N; i++)
            a[i] = rng() >> (r & 7);
        qsort(a, N, sizeof(a[0]), cmp);
        for (int i = 1; i < N; i++)
            if (a[i - 1] > a[i]) {
                printf("qsort: not sorted\n");
                return 1;
            }
        sum = sum * 31 + a[N / 2];
    }
    report("qsort", t0, sum);
    return 0;
}
