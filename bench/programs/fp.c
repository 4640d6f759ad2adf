/* Scalar double arithmetic: + - * / sqrt in a dependent recurrence (an n-body-like
 * step and a Newton iteration), the kind of code gcc -O2 compiles to scalar SSE2. */
#include <math.h>
#include "common.h"

#define N 64

int main(int argc, char **argv)
{
    long reps = scale_arg(argc, argv, 4);
    double x[N], y[N], vx[N], vy[N];
    for (int i = 0; i < N; i++) {
        x[i] = (double)(rng() % 1000) / 10.0;
        y[i] = (double)(rng() % 1000) / 10.0;
        vx[i] = vy[i] = 0.0;
    }
    double t0 = now();
    double acc = 0.0;
    for (long r = 0; r < reps * 100; r++) {
        for (int i = 0; i < N; i++) {
            double fx = 0.0, fy = 0.0;
            for (int j = 0; j < N; j++) {
                double dx = x[j] - x[i], dy = y[j] - y[i];
                double d2 = dx * dx + dy * dy + 0.01;
                double inv = 1.0 / (d2 * sqrt(d2));
                fx += dx * inv;
                fy += dy * inv;
            }
            vx[i] += fx * 1e-3;
            vy[i] += fy * 1e-3;
        }
        for (int i = 0; i < N; i++) {
            x[i] += vx[i] * 1e-2;
            y[i] += vy[i] * 1e-2;
        }
        acc += x[r % N] / (1.0 + fabs(y[r % N]));
    }
    union { double d; uint64_t u; } u = {acc};
    report("fp", t0, u.u);
    return 0;
}
