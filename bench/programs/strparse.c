/* String parsing: build CSV-like lines of names and numbers with snprintf, then split
 * them (strchr, strtol, strcmp, strlen, memcpy): libc string code and byte loops. */
#include <string.h>
#include "common.h"

#define LINES 20000

static char text[LINES * 48];

int main(int argc, char **argv)
{
    long reps = scale_arg(argc, argv, 4);
    static const char *names[] = {"alpha", "beta", "gamma", "delta", "epsilon", "zeta"};
    size_t len = 0;
    for (int i = 0; i < LINES; i++)
        len += (size_t)snprintf(text + len, sizeof(text) - len, "%s,%u,%d;%s\n",
                                names[rng() % 6], (unsigned)(rng() % 100000),
                                (int)(rng() % 2001) - 1000, names[rng() % 6]);
    double t0 = now();
    uint64_t sum = 0;
    for (long r = 0; r < reps * 4; r++) {
        const char *p = text;
        char field[32];
        while (*p) {
            const char *nl = strchr(p, '\n');
            const char *comma = strchr(p, ',');
            size_t n = (size_t)(comma - p) < sizeof(field) - 1 ? (size_t)(comma - p) : 0;
            memcpy(field, p, n);
            field[n] = 0;
            char *end;
            long a = strtol(comma + 1, &end, 10);
            long b = strtol(end + 1, &end, 10);
            const char *last = end + 1;
            sum += (uint64_t)(a * 3 + b) + strlen(field);
            if (strncmp(field, last, (size_t)(nl - last)) == 0)
                sum += 7;
            for (const char *q = p; q < nl; q++)
                sum += (*q >= '0' && *q <= '9');
            p = nl + 1;
        }
    }
    report("strparse", t0, sum);
    return 0;
}
