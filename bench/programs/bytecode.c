/* A switch-dispatch bytecode interpreter (a stack machine) running a loop that sums
 * a small arithmetic series: indirect jumps through the switch table, loads, stores. */
#include "common.h"

enum { PUSH, LOAD, STORE, ADD, SUB, MUL, AND, XOR, SHR, LT, JNZ, JMP, DUP, POP, HALT };

static int64_t run(const int32_t *code, int64_t *vars)
{
    int64_t stack[64];
    int sp = 0, pc = 0;
    for (;;) {
        int32_t op = code[pc++];
        switch (op) {
        case PUSH: stack[sp++] = code[pc++]; break;
        case LOAD: stack[sp++] = vars[code[pc++] & 7]; break;
        case STORE: vars[code[pc++] & 7] = stack[--sp]; break;
        case ADD: sp--, stack[sp - 1] += stack[sp]; break;
        case SUB: sp--, stack[sp - 1] -= stack[sp]; break;
        case MUL: sp--, stack[sp - 1] *= stack[sp]; break;
        case AND: sp--, stack[sp - 1] &= stack[sp]; break;
        case XOR: sp--, stack[sp - 1] ^= stack[sp]; break;
        case SHR: sp--, stack[sp - 1] = (int64_t)((uint64_t)stack[sp - 1] >> (stack[sp] & 63)); break;
        case LT: sp--, stack[sp - 1] = stack[sp - 1] < stack[sp]; break;
        case JNZ: { int32_t t = code[pc++]; if (stack[--sp]) pc = t; break; }
        case JMP: pc = code[pc]; break;
        case DUP: stack[sp] = stack[sp - 1], sp++; break;
        case POP: sp--; break;
        case HALT: return stack[sp - 1];
        default: return -1;
        }
    }
}

int main(int argc, char **argv)
{
    long reps = scale_arg(argc, argv, 4);
    /* i = 0; acc = 0; while (i < n) { acc = (acc ^ (i * 7 + (acc >> 3))) & 0xffffff; i++; } */
    const int32_t code[] = {
        PUSH, 0, STORE, 0, PUSH, 0, STORE, 1,
        /* 8: loop */
        LOAD, 0, LOAD, 2, LT, JNZ, 19, LOAD, 1, HALT, HALT,
    };
    int32_t prog[64] = {0};
    int n = 0;
    for (size_t i = 0; i < 19; i++)
        prog[n++] = code[i];
    /* 19: body */
    const int32_t body[] = {LOAD, 1, LOAD, 0, PUSH, 7, MUL, LOAD, 1, PUSH, 3, SHR, ADD, XOR,
                            PUSH, 0xffffff, AND, STORE, 1, LOAD, 0, PUSH, 1, ADD, STORE, 0,
                            JMP, 8};
    for (size_t i = 0; i < sizeof(body) / sizeof(body[0]); i++)
        prog[n++] = body[i];
    double t0 = now();
    uint64_t sum = 0;
    for (long r = 0; r < reps; r++) {
        int64_t vars[8] = {0, 0, 1000000 + r, 0, 0, 0, 0, 0};
        sum = sum * 31 + (uint64_t)run(prog, vars);
    }
    report("bytecode", t0, sum);
    return 0;
}
