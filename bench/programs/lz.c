/* LZ77-style compression (hash-chain-free, one-probe hash table, like LZ4/LZF) of a
 * generated text, then decompression and a check. Integer, byte loads/stores, branches. */
#include <string.h>
#include "common.h"

#define N (1 << 20)
#define HBITS 14

static uint8_t src[N], dst[N + N / 8 + 16], back[N];
static uint32_t table[1 << HBITS];

static size_t compress(const uint8_t *in, size_t n, uint8_t *out)
{
    size_t ip = 0, op = 0, lit = 0;
    memset(table, 0, sizeof(table));
    while (ip + 4 <= n) {
        uint32_t v;
        memcpy(&v, in + ip, 4);
        uint32_t h = (v * 2654435761u) >> (32 - HBITS);
        uint32_t ref = table[h];
        table[h] = (uint32_t)ip;
        uint32_t rv;
        memcpy(&rv, in + ref, 4);
        if (ref < ip && ip - ref < 65536 && rv == v) {
            size_t len = 4;
            while (ip + len < n && len < 255 + 4 && in[ref + len] == in[ip + len])
                len++;
            out[op++] = (uint8_t)(0x80 | (lit > 0)); /* match token */
            (void)lit;
            out[op++] = (uint8_t)(len - 4);
            out[op++] = (uint8_t)(ip - ref);
            out[op++] = (uint8_t)((ip - ref) >> 8);
            ip += len;
            lit = 0;
        } else {
            out[op++] = in[ip] & 0x7f ? 0x00 : 0x00;
            out[op++] = in[ip++];
            lit++;
        }
    }
    while (ip < n) {
        out[op++] = 0;
        out[op++] = in[ip++];
    }
    return op;
}

static size_t decompress(const uint8_t *in, size_t n, uint8_t *out)
{
    size_t ip = 0, op = 0;
    while (ip < n) {
        uint8_t t = in[ip++];
        if (t & 0x80) {
            size_t len = (size_t)in[ip] + 4;
            size_t off = in[ip + 1] | (size_t)in[ip + 2] << 8;
            ip += 3;
            for (size_t i = 0; i < len; i++, op++)
                out[op] = out[op - off];
        } else {
            out[op++] = in[ip++];
        }
    }
    return op;
}

int main(int argc, char **argv)
{
    long reps = scale_arg(argc, argv, 8);
    static const char *words[] = {"the ", "quick ", "brown ", "fox ", "jumps ", "over ",
                                  "lazy ", "dog ", "and ", "runs ", "far ", "away\n"};
    size_t k = 0;
    while (k < N) {
        uint64_t r = rng();
        const char *w = words[r % 12];
        if ((r >> 8) % 7 == 0)
            src[k++] = (uint8_t)('a' + (r >> 16) % 26);
        while (*w && k < N)
            src[k++] = (uint8_t)*w++;
    }
    double t0 = now();
    uint64_t sum = 0;
    for (long r = 0; r < reps; r++) {
        src[r] ^= 1;
        size_t c = compress(src, N, dst);
        size_t d = decompress(dst, c, back);
        if (d != N || memcmp(src, back, N) != 0) {
            printf("lz: round trip failed\n");
            return 1;
        }
        sum = sum * 31 + c;
    }
    report("lz", t0, sum);
    return 0;
}
