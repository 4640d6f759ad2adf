/* Unit tests: x87, SSE/SSE2, FXSAVE/FXRSTOR and LDMXCSR in the translator, differentially
 * against the host CPU. Each instruction body runs twice with the same inputs: natively (a
 * code page in this process) and as a 64-bit guest through tcg_accel_ops; registers, memory,
 * flags and MXCSR must match bit for bit (bodies and bytes: gen_fpu_sse_cases.py). Then the
 * #UD/#NM/#GP/#XM/#MF conditions, which the guest reports through an IDT of port-writing
 * stubs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "accel/accel.h"
#include "accel/tcg/tcg_internal.h"
#include "vm/boot/boot.h"
#include "vm/bus.h"
#include "vm/memory.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define RAM_SIZE (32ULL << 20)
#define IDT_ADDR 0x70000ULL
#define STUB_ADDR 0x71000ULL
#define DATA_ADDR 0x80000ULL
#define STACK_TOP 0x9f000ULL
#define CODE_ADDR 0x100000ULL
#define DATA_SIZE 0x300 /* registers 0x00-0x5f, memory operands from 0x80 (rsi) */
#define PORT_EXC 0xf0
#define PORT_DONE 0xf1

struct body {
    const char *text;
    unsigned len;
    const char *bytes;
};

/* Loads xmm0-3, rax, rcx and MXCSR from [rdi], points rsi at the memory operands, makes the
 * flags deterministic. */
static const uint8_t prologue[] = "\x0f\xae\x57\x50\xf3\x0f\x6f\x07\xf3\x0f\x6f\x4f\x10\xf3\x0f\x6f"
                                  "\x57\x20\xf3\x0f\x6f\x5f\x30\x48\x8b\x47\x40\x48\x8b\x4f\x48\x48"
                                  "\x8d\xb7\x80\x00\x00\x00\x31\xd2";
/* Stores them back, and the arithmetic flags at 0x58. */
static const uint8_t epilogue[] = "\xf3\x0f\x7f\x07\xf3\x0f\x7f\x4f\x10\xf3\x0f\x7f\x57\x20\xf3\x0f"
                                  "\x7f\x5f\x30\x48\x89\x47\x40\x48\x89\x4f\x48\x9c\x5a\x81\xe2\xd5"
                                  "\x08\x00\x00\x48\x89\x57\x58\x0f\xae\x5f\x50";
/* mov al, 0; out PORT_DONE, al; hlt */
static const uint8_t guest_done[] = {0xb0, 0x00, 0xe6, PORT_DONE, 0xf4};

static const struct body bodies[] = {
    {"movaps xmm0, xmm1", 3, "\x0f\x28\xc1"},
    {"movups xmm0, [rsi+1]", 4, "\x0f\x10\x46\x01"},
    {"movss xmm0, xmm1", 4, "\xf3\x0f\x10\xc1"},
    {"movss xmm0, [rsi]", 4, "\xf3\x0f\x10\x06"},
    {"movsd xmm0, xmm2", 4, "\xf2\x0f\x10\xc2"},
    {"movsd xmm0, [rsi+8]", 5, "\xf2\x0f\x10\x46\x08"},
    {"movss [rsi+4], xmm1", 5, "\xf3\x0f\x11\x4e\x04"},
    {"movsd [rsi+8], xmm1", 5, "\xf2\x0f\x11\x4e\x08"},
    {"movlps xmm0, [rsi]", 3, "\x0f\x12\x06"},
    {"movhps xmm0, [rsi]", 3, "\x0f\x16\x06"},
    {"movlpd xmm0, [rsi]", 4, "\x66\x0f\x12\x06"},
    {"movhpd xmm0, [rsi+8]", 5, "\x66\x0f\x16\x46\x08"},
    {"movhlps xmm0, xmm1", 3, "\x0f\x12\xc1"},
    {"movlhps xmm0, xmm1", 3, "\x0f\x16\xc1"},
    {"movlps [rsi], xmm1", 3, "\x0f\x13\x0e"},
    {"movhps [rsi], xmm1", 3, "\x0f\x17\x0e"},
    {"movd xmm0, eax", 4, "\x66\x0f\x6e\xc0"},
    {"movq xmm0, rax", 5, "\x66\x48\x0f\x6e\xc0"},
    {"movd ecx, xmm1", 4, "\x66\x0f\x7e\xc9"},
    {"movq rcx, xmm1", 5, "\x66\x48\x0f\x7e\xc9"},
    {"movd xmm0, [rsi]", 4, "\x66\x0f\x6e\x06"},
    {"movq xmm0, xmm1", 4, "\xf3\x0f\x7e\xc1"},
    {"movq xmm0, [rsi]", 4, "\xf3\x0f\x7e\x06"},
    {"movq [rsi], xmm1", 4, "\x66\x0f\xd6\x0e"},
    {"movdqa xmm0, [rsi]", 4, "\x66\x0f\x6f\x06"},
    {"movdqu xmm0, [rsi+3]", 5, "\xf3\x0f\x6f\x46\x03"},
    {"movntdq [rsi+16], xmm1", 5, "\x66\x0f\xe7\x4e\x10"},
    {"movnti [rsi], rax", 4, "\x48\x0f\xc3\x06"},
    {"movntps [rsi], xmm2", 3, "\x0f\x2b\x16"},
    {"movmskps eax, xmm0", 3, "\x0f\x50\xc0"},
    {"movmskpd eax, xmm1", 4, "\x66\x0f\x50\xc1"},
    {"pmovmskb eax, xmm2", 4, "\x66\x0f\xd7\xc2"},
    {"unpcklps xmm0, xmm1", 3, "\x0f\x14\xc1"},
    {"unpckhps xmm0, xmm1", 3, "\x0f\x15\xc1"},
    {"unpcklpd xmm0, xmm1", 4, "\x66\x0f\x14\xc1"},
    {"unpckhpd xmm0, [rsi]", 4, "\x66\x0f\x15\x06"},
    {"shufps xmm0, xmm1, 0x1b", 4, "\x0f\xc6\xc1\x1b"},
    {"shufpd xmm0, xmm1, 2", 5, "\x66\x0f\xc6\xc1\x02"},
    {"pshufd xmm0, xmm1, 0x4e", 5, "\x66\x0f\x70\xc1\x4e"},
    {"pshufhw xmm0, xmm1, 0x1b", 5, "\xf3\x0f\x70\xc1\x1b"},
    {"pshuflw xmm0, xmm1, 0xb1", 5, "\xf2\x0f\x70\xc1\xb1"},
    {"andps xmm0, xmm1", 3, "\x0f\x54\xc1"},
    {"andnps xmm0, xmm1", 3, "\x0f\x55\xc1"},
    {"orpd xmm0, xmm1", 4, "\x66\x0f\x56\xc1"},
    {"xorps xmm0, [rsi]", 3, "\x0f\x57\x06"},
    {"pand xmm0, xmm1", 4, "\x66\x0f\xdb\xc1"},
    {"pandn xmm0, xmm1", 4, "\x66\x0f\xdf\xc1"},
    {"por xmm0, xmm1", 4, "\x66\x0f\xeb\xc1"},
    {"pxor xmm0, xmm1", 4, "\x66\x0f\xef\xc1"},
    {"addps xmm0, xmm1", 3, "\x0f\x58\xc1"},
    {"addss xmm0, xmm1", 4, "\xf3\x0f\x58\xc1"},
    {"addpd xmm0, xmm1", 4, "\x66\x0f\x58\xc1"},
    {"addsd xmm0, xmm2", 4, "\xf2\x0f\x58\xc2"},
    {"subps xmm0, xmm1", 3, "\x0f\x5c\xc1"},
    {"subss xmm0, xmm3", 4, "\xf3\x0f\x5c\xc3"},
    {"subpd xmm0, xmm1", 4, "\x66\x0f\x5c\xc1"},
    {"subsd xmm0, xmm1", 4, "\xf2\x0f\x5c\xc1"},
    {"mulps xmm0, xmm1", 3, "\x0f\x59\xc1"},
    {"mulss xmm0, xmm2", 4, "\xf3\x0f\x59\xc2"},
    {"mulpd xmm0, xmm1", 4, "\x66\x0f\x59\xc1"},
    {"mulsd xmm0, xmm3", 4, "\xf2\x0f\x59\xc3"},
    {"divps xmm0, xmm1", 3, "\x0f\x5e\xc1"},
    {"divss xmm0, xmm3", 4, "\xf3\x0f\x5e\xc3"},
    {"divpd xmm0, xmm1", 4, "\x66\x0f\x5e\xc1"},
    {"divsd xmm0, xmm2", 4, "\xf2\x0f\x5e\xc2"},
    {"minps xmm0, xmm1", 3, "\x0f\x5d\xc1"},
    {"minss xmm0, xmm2", 4, "\xf3\x0f\x5d\xc2"},
    {"minpd xmm0, xmm1", 4, "\x66\x0f\x5d\xc1"},
    {"minsd xmm0, xmm1", 4, "\xf2\x0f\x5d\xc1"},
    {"maxps xmm0, xmm1", 3, "\x0f\x5f\xc1"},
    {"maxss xmm0, xmm3", 4, "\xf3\x0f\x5f\xc3"},
    {"maxpd xmm0, xmm1", 4, "\x66\x0f\x5f\xc1"},
    {"maxsd xmm0, xmm3", 4, "\xf2\x0f\x5f\xc3"},
    {"sqrtps xmm0, xmm1", 3, "\x0f\x51\xc1"},
    {"sqrtss xmm0, xmm1", 4, "\xf3\x0f\x51\xc1"},
    {"sqrtpd xmm0, xmm1", 4, "\x66\x0f\x51\xc1"},
    {"sqrtsd xmm0, xmm2", 4, "\xf2\x0f\x51\xc2"},
    {"addps xmm0, [rsi]", 3, "\x0f\x58\x06"},
    {"mulsd xmm0, [rsi+8]", 5, "\xf2\x0f\x59\x46\x08"},
    {"cmpps xmm0, xmm1, 0", 4, "\x0f\xc2\xc1\x00"},
    {"cmpps xmm0, xmm1, 1", 4, "\x0f\xc2\xc1\x01"},
    {"cmpps xmm0, xmm1, 2", 4, "\x0f\xc2\xc1\x02"},
    {"cmpps xmm0, xmm1, 3", 4, "\x0f\xc2\xc1\x03"},
    {"cmpps xmm0, xmm1, 4", 4, "\x0f\xc2\xc1\x04"},
    {"cmpps xmm0, xmm1, 5", 4, "\x0f\xc2\xc1\x05"},
    {"cmpps xmm0, xmm1, 6", 4, "\x0f\xc2\xc1\x06"},
    {"cmpps xmm0, xmm1, 7", 4, "\x0f\xc2\xc1\x07"},
    {"cmpss xmm0, xmm1, 1", 5, "\xf3\x0f\xc2\xc1\x01"},
    {"cmppd xmm0, xmm1, 2", 5, "\x66\x0f\xc2\xc1\x02"},
    {"cmpsd xmm0, xmm1, 6", 5, "\xf2\x0f\xc2\xc1\x06"},
    {"cmppd xmm0, xmm3, 3", 5, "\x66\x0f\xc2\xc3\x03"},
    {"comiss xmm0, xmm1", 3, "\x0f\x2f\xc1"},
    {"ucomiss xmm0, xmm1", 3, "\x0f\x2e\xc1"},
    {"comisd xmm0, xmm1", 4, "\x66\x0f\x2f\xc1"},
    {"ucomisd xmm2, xmm3", 4, "\x66\x0f\x2e\xd3"},
    {"ucomiss xmm1, xmm1", 3, "\x0f\x2e\xc9"},
    {"comisd xmm3, xmm0", 4, "\x66\x0f\x2f\xd8"},
    {"cvtsi2ss xmm0, eax", 4, "\xf3\x0f\x2a\xc0"},
    {"cvtsi2ss xmm0, rax", 5, "\xf3\x48\x0f\x2a\xc0"},
    {"cvtsi2sd xmm0, ecx", 4, "\xf2\x0f\x2a\xc1"},
    {"cvtsi2sd xmm0, rcx", 5, "\xf2\x48\x0f\x2a\xc1"},
    {"cvtsi2ss xmm0, rcx", 5, "\xf3\x48\x0f\x2a\xc1"},
    {"cvtsi2sd xmm1, dword ptr [rsi]", 4, "\xf2\x0f\x2a\x0e"},
    {"cvtss2si eax, xmm0", 4, "\xf3\x0f\x2d\xc0"},
    {"cvtss2si rax, xmm1", 5, "\xf3\x48\x0f\x2d\xc1"},
    {"cvttss2si eax, xmm1", 4, "\xf3\x0f\x2c\xc1"},
    {"cvttss2si rax, xmm2", 5, "\xf3\x48\x0f\x2c\xc2"},
    {"cvtsd2si eax, xmm0", 4, "\xf2\x0f\x2d\xc0"},
    {"cvtsd2si rax, xmm1", 5, "\xf2\x48\x0f\x2d\xc1"},
    {"cvttsd2si eax, xmm2", 4, "\xf2\x0f\x2c\xc2"},
    {"cvttsd2si rcx, xmm3", 5, "\xf2\x48\x0f\x2c\xcb"},
    {"cvtss2si ecx, xmm3", 4, "\xf3\x0f\x2d\xcb"},
    {"cvttsd2si eax, xmm1", 4, "\xf2\x0f\x2c\xc1"},
    {"cvtps2pd xmm0, xmm1", 3, "\x0f\x5a\xc1"},
    {"cvtpd2ps xmm0, xmm1", 4, "\x66\x0f\x5a\xc1"},
    {"cvtss2sd xmm0, xmm1", 4, "\xf3\x0f\x5a\xc1"},
    {"cvtsd2ss xmm0, xmm1", 4, "\xf2\x0f\x5a\xc1"},
    {"cvtps2pd xmm0, xmm2", 3, "\x0f\x5a\xc2"},
    {"cvtpd2ps xmm0, xmm3", 4, "\x66\x0f\x5a\xc3"},
    {"cvtsd2ss xmm0, xmm2", 4, "\xf2\x0f\x5a\xc2"},
    {"cvtdq2ps xmm0, xmm1", 3, "\x0f\x5b\xc1"},
    {"cvtps2dq xmm0, xmm1", 4, "\x66\x0f\x5b\xc1"},
    {"cvttps2dq xmm0, xmm1", 4, "\xf3\x0f\x5b\xc1"},
    {"cvtps2dq xmm0, xmm2", 4, "\x66\x0f\x5b\xc2"},
    {"cvtdq2pd xmm0, xmm1", 4, "\xf3\x0f\xe6\xc1"},
    {"cvtpd2dq xmm0, xmm1", 4, "\xf2\x0f\xe6\xc1"},
    {"cvttpd2dq xmm0, xmm1", 4, "\x66\x0f\xe6\xc1"},
    {"cvtpd2dq xmm0, xmm3", 4, "\xf2\x0f\xe6\xc3"},
    {"punpcklbw xmm0, xmm1", 4, "\x66\x0f\x60\xc1"},
    {"punpcklwd xmm0, xmm1", 4, "\x66\x0f\x61\xc1"},
    {"punpckldq xmm0, xmm1", 4, "\x66\x0f\x62\xc1"},
    {"punpcklqdq xmm0, xmm1", 4, "\x66\x0f\x6c\xc1"},
    {"punpckhbw xmm0, xmm1", 4, "\x66\x0f\x68\xc1"},
    {"punpckhwd xmm0, xmm1", 4, "\x66\x0f\x69\xc1"},
    {"punpckhdq xmm0, xmm1", 4, "\x66\x0f\x6a\xc1"},
    {"punpckhqdq xmm0, xmm1", 4, "\x66\x0f\x6d\xc1"},
    {"packsswb xmm0, xmm1", 4, "\x66\x0f\x63\xc1"},
    {"packssdw xmm0, xmm1", 4, "\x66\x0f\x6b\xc1"},
    {"packuswb xmm0, xmm1", 4, "\x66\x0f\x67\xc1"},
    {"paddb xmm0, xmm1", 4, "\x66\x0f\xfc\xc1"},
    {"paddw xmm0, xmm1", 4, "\x66\x0f\xfd\xc1"},
    {"paddd xmm0, xmm1", 4, "\x66\x0f\xfe\xc1"},
    {"paddq xmm0, xmm1", 4, "\x66\x0f\xd4\xc1"},
    {"psubb xmm0, xmm1", 4, "\x66\x0f\xf8\xc1"},
    {"psubw xmm0, xmm1", 4, "\x66\x0f\xf9\xc1"},
    {"psubd xmm0, xmm1", 4, "\x66\x0f\xfa\xc1"},
    {"psubq xmm0, xmm1", 4, "\x66\x0f\xfb\xc1"},
    {"paddsb xmm0, xmm1", 4, "\x66\x0f\xec\xc1"},
    {"paddsw xmm0, xmm1", 4, "\x66\x0f\xed\xc1"},
    {"paddusb xmm0, xmm1", 4, "\x66\x0f\xdc\xc1"},
    {"paddusw xmm0, xmm1", 4, "\x66\x0f\xdd\xc1"},
    {"psubsb xmm0, xmm1", 4, "\x66\x0f\xe8\xc1"},
    {"psubsw xmm0, xmm1", 4, "\x66\x0f\xe9\xc1"},
    {"psubusb xmm0, xmm1", 4, "\x66\x0f\xd8\xc1"},
    {"psubusw xmm0, xmm1", 4, "\x66\x0f\xd9\xc1"},
    {"pmullw xmm0, xmm1", 4, "\x66\x0f\xd5\xc1"},
    {"pmulhw xmm0, xmm1", 4, "\x66\x0f\xe5\xc1"},
    {"pmulhuw xmm0, xmm1", 4, "\x66\x0f\xe4\xc1"},
    {"pmuludq xmm0, xmm1", 4, "\x66\x0f\xf4\xc1"},
    {"pmaddwd xmm0, xmm1", 4, "\x66\x0f\xf5\xc1"},
    {"pcmpeqb xmm0, xmm1", 4, "\x66\x0f\x74\xc1"},
    {"pcmpeqb xmm0, xmm0", 4, "\x66\x0f\x74\xc0"},
    {"movdqa xmm1, xmm0; psrlw xmm1, 8; psllw xmm1, 8; pcmpeqb xmm1, xmm0; pmovmskb ecx, xmm1", 22,
     "\x66\x0f\x6f\xc8\x66\x0f\x71\xd1\x08\x66\x0f\x71\xf1\x08\x66\x0f\x74\xc8\x66\x0f\xd7\xc9"},
    {"pcmpeqb xmm0, [rsi]", 4, "\x66\x0f\x74\x06"},
    {"pminub xmm0, [rsi]", 4, "\x66\x0f\xda\x06"},
    {"pshufd xmm0, [rsi], 0x1b", 5, "\x66\x0f\x70\x06\x1b"},
    {"cvtps2pd xmm0, [rsi]", 3, "\x0f\x5a\x06"},
    {"cvtdq2pd xmm0, [rsi+8]", 5, "\xf3\x0f\xe6\x46\x08"},
    {"psadbw xmm1, [rsi]", 4, "\x66\x0f\xf6\x0e"},
    {"cmppd xmm2, [rsi], 5", 5, "\x66\x0f\xc2\x16\x05"},
    {"packuswb xmm3, [rsi+16]", 5, "\x66\x0f\x67\x5e\x10"},
    {"pcmpeqw xmm0, xmm0", 4, "\x66\x0f\x75\xc0"},
    {"pcmpeqd xmm0, xmm1", 4, "\x66\x0f\x76\xc1"},
    {"pcmpgtb xmm0, xmm1", 4, "\x66\x0f\x64\xc1"},
    {"pcmpgtw xmm0, xmm1", 4, "\x66\x0f\x65\xc1"},
    {"pcmpgtd xmm0, xmm1", 4, "\x66\x0f\x66\xc1"},
    {"pminub xmm0, xmm1", 4, "\x66\x0f\xda\xc1"},
    {"pmaxub xmm0, xmm1", 4, "\x66\x0f\xde\xc1"},
    {"pminsw xmm0, xmm1", 4, "\x66\x0f\xea\xc1"},
    {"pmaxsw xmm0, xmm1", 4, "\x66\x0f\xee\xc1"},
    {"pavgb xmm0, xmm1", 4, "\x66\x0f\xe0\xc1"},
    {"pavgw xmm0, xmm1", 4, "\x66\x0f\xe3\xc1"},
    {"psadbw xmm0, xmm1", 4, "\x66\x0f\xf6\xc1"},
    {"psllw xmm0, xmm2", 4, "\x66\x0f\xf1\xc2"},
    {"pslld xmm0, xmm2", 4, "\x66\x0f\xf2\xc2"},
    {"psllq xmm0, xmm2", 4, "\x66\x0f\xf3\xc2"},
    {"psrlw xmm0, xmm2", 4, "\x66\x0f\xd1\xc2"},
    {"psrld xmm0, xmm2", 4, "\x66\x0f\xd2\xc2"},
    {"psrlq xmm0, xmm2", 4, "\x66\x0f\xd3\xc2"},
    {"psraw xmm0, xmm2", 4, "\x66\x0f\xe1\xc2"},
    {"psrad xmm0, xmm2", 4, "\x66\x0f\xe2\xc2"},
    {"psllw xmm0, 3", 5, "\x66\x0f\x71\xf0\x03"},
    {"pslld xmm0, 31", 5, "\x66\x0f\x72\xf0\x1f"},
    {"psllq xmm0, 17", 5, "\x66\x0f\x73\xf0\x11"},
    {"psrlw xmm0, 16", 5, "\x66\x0f\x71\xd0\x10"},
    {"psrld xmm0, 5", 5, "\x66\x0f\x72\xd0\x05"},
    {"psrlq xmm0, 63", 5, "\x66\x0f\x73\xd0\x3f"},
    {"psraw xmm0, 15", 5, "\x66\x0f\x71\xe0\x0f"},
    {"psrad xmm0, 40", 5, "\x66\x0f\x72\xe0\x28"},
    {"pslldq xmm0, 5", 5, "\x66\x0f\x73\xf8\x05"},
    {"psrldq xmm0, 11", 5, "\x66\x0f\x73\xd8\x0b"},
    {"pslldq xmm0, 8", 5, "\x66\x0f\x73\xf8\x08"},
    {"pslldq xmm1, 13", 5, "\x66\x0f\x73\xf9\x0d"},
    {"psrldq xmm0, 3", 5, "\x66\x0f\x73\xd8\x03"},
    {"psrldq xmm0, 8", 5, "\x66\x0f\x73\xd8\x08"},
    {"psrldq xmm0, 20", 5, "\x66\x0f\x73\xd8\x14"},
    {"psrlw xmm1, 3", 5, "\x66\x0f\x71\xd1\x03"},
    {"psllq xmm0, 64", 5, "\x66\x0f\x73\xf0\x40"},
    {"pslld xmm0, 0", 5, "\x66\x0f\x72\xf0\x00"},
    {"pextrw eax, xmm1, 5", 5, "\x66\x0f\xc5\xc1\x05"},
    {"pinsrw xmm0, ecx, 3", 5, "\x66\x0f\xc4\xc1\x03"},
    {"pinsrw xmm0, [rsi], 6", 5, "\x66\x0f\xc4\x06\x06"},
    {"paddd xmm0, [rsi]", 4, "\x66\x0f\xfe\x06"},
    {"maskmovdqu xmm1, xmm2", 4, "\x66\x0f\xf7\xca"},
    {"fld qword ptr [rsi]; fadd qword ptr [rsi+8]; fstp qword ptr [rsi+64]", 8,
     "\xdd\x06\xdc\x46\x08\xdd\x5e\x40"},
    {"fld qword ptr [rsi]; fld dword ptr [rsi+16]; fsubp st(1), st; fstp tbyte ptr [rsi+64]", 10,
     "\xdd\x06\xd9\x46\x10\xde\xe9\xdb\x7e\x40"},
    {"fld qword ptr [rsi]; fld qword ptr [rsi+8]; fsubrp st(1), st; fstp qword ptr [rsi+64]", 10,
     "\xdd\x06\xdd\x46\x08\xde\xe1\xdd\x5e\x40"},
    {"fld qword ptr [rsi]; fmul qword ptr [rsi+8]; fstp tbyte ptr [rsi+64]", 8,
     "\xdd\x06\xdc\x4e\x08\xdb\x7e\x40"},
    {"fld qword ptr [rsi]; fdiv qword ptr [rsi+8]; fstp tbyte ptr [rsi+64]", 8,
     "\xdd\x06\xdc\x76\x08\xdb\x7e\x40"},
    {"fld qword ptr [rsi]; fdivr dword ptr [rsi+16]; fstp tbyte ptr [rsi+64]", 8,
     "\xdd\x06\xd8\x7e\x10\xdb\x7e\x40"},
    {"fld qword ptr [rsi+8]; fld qword ptr [rsi]; fdivp st(1), st; fstp tbyte ptr [rsi+64]", 10,
     "\xdd\x46\x08\xdd\x06\xde\xf9\xdb\x7e\x40"},
    {"fld qword ptr [rsi+8]; fld qword ptr [rsi]; fdivrp st(1), st; fstp tbyte ptr [rsi+64]", 10,
     "\xdd\x46\x08\xdd\x06\xde\xf1\xdb\x7e\x40"},
    {"fild dword ptr [rsi+20]; fiadd word ptr [rsi+24]; fimul dword ptr [rsi+20]; fistp qword ptr "
     "[rsi+64]",
     12, "\xdb\x46\x14\xde\x46\x18\xda\x4e\x14\xdf\x7e\x40"},
    {"fild qword ptr [rsi+32]; fstp tbyte ptr [rsi+64]; fild word ptr [rsi+24]; fstp dword ptr "
     "[rsi+80]",
     12, "\xdf\x6e\x20\xdb\x7e\x40\xdf\x46\x18\xd9\x5e\x50"},
    {"fld qword ptr [rsi]; fistp dword ptr [rsi+64]; fld qword ptr [rsi+8]; fistp word ptr "
     "[rsi+68]",
     11, "\xdd\x06\xdb\x5e\x40\xdd\x46\x08\xdf\x5e\x44"},
    {"fld qword ptr [rsi]; fisttp dword ptr [rsi+64]; fld qword ptr [rsi+8]; fisttp qword ptr "
     "[rsi+72]",
     11, "\xdd\x06\xdb\x4e\x40\xdd\x46\x08\xdd\x4e\x48"},
    {"fld qword ptr [rsi]; fist dword ptr [rsi+64]; fstp st(0)", 7, "\xdd\x06\xdb\x56\x40\xdd\xd8"},
    {"fld1; fldz; fldpi; fldl2e; fldl2t; fldlg2; fldln2; fstp tbyte ptr [rsi+64]; fstp tbyte ptr "
     "[rsi+80]; fstp tbyte ptr [rsi+96]; fstp tbyte ptr [rsi+112]; fcompp; fstp st(0); fnstsw ax",
     32,
     "\xd9\xe8\xd9\xee\xd9\xeb\xd9\xea\xd9\xe9\xd9\xec\xd9\xed\xdb\x7e\x40\xdb\x7e\x50\xdb\x7e\x60"
     "\xdb\x7e\x70\xde\xd9\xdd\xd8\xdf\xe0"},
    {"fld tbyte ptr [rsi+48]; fchs; fabs; fsqrt; fstp tbyte ptr [rsi+64]", 12,
     "\xdb\x6e\x30\xd9\xe0\xd9\xe1\xd9\xfa\xdb\x7e\x40"},
    {"fld qword ptr [rsi]; frndint; fstp qword ptr [rsi+64]", 7, "\xdd\x06\xd9\xfc\xdd\x5e\x40"},
    {"fld qword ptr [rsi+8]; fld qword ptr [rsi]; fscale; fstp tbyte ptr [rsi+64]; fstp st(0)", 12,
     "\xdd\x46\x08\xdd\x06\xd9\xfd\xdb\x7e\x40\xdd\xd8"},
    {"fld qword ptr [rsi]; fxtract; fstp tbyte ptr [rsi+64]; fstp tbyte ptr [rsi+80]", 10,
     "\xdd\x06\xd9\xf4\xdb\x7e\x40\xdb\x7e\x50"},
    {"fld qword ptr [rsi+8]; fld qword ptr [rsi]; fprem; fnstsw ax; fstp tbyte ptr [rsi+64]; fstp "
     "st(0)",
     14, "\xdd\x46\x08\xdd\x06\xd9\xf8\xdf\xe0\xdb\x7e\x40\xdd\xd8"},
    {"fld qword ptr [rsi+8]; fld qword ptr [rsi]; fprem1; fnstsw ax; fstp tbyte ptr [rsi+64]; fstp "
     "st(0)",
     14, "\xdd\x46\x08\xdd\x06\xd9\xf5\xdf\xe0\xdb\x7e\x40\xdd\xd8"},
    {"fld qword ptr [rsi]; fcom qword ptr [rsi+8]; fnstsw ax; fstp st(0)", 9,
     "\xdd\x06\xdc\x56\x08\xdf\xe0\xdd\xd8"},
    {"fld qword ptr [rsi]; fld qword ptr [rsi+8]; fcomp st(1); fnstsw ax; fstp st(0)", 11,
     "\xdd\x06\xdd\x46\x08\xd8\xd9\xdf\xe0\xdd\xd8"},
    {"fld qword ptr [rsi]; fld qword ptr [rsi+8]; fucompp; fnstsw ax", 9,
     "\xdd\x06\xdd\x46\x08\xda\xe9\xdf\xe0"},
    {"fld qword ptr [rsi]; fld qword ptr [rsi+8]; fcomi st, st(1); fstp st(0); fstp st(0)", 11,
     "\xdd\x06\xdd\x46\x08\xdb\xf1\xdd\xd8\xdd\xd8"},
    {"fld qword ptr [rsi]; fld qword ptr [rsi+8]; fucomip st, st(1); fstp st(0)", 9,
     "\xdd\x06\xdd\x46\x08\xdf\xe9\xdd\xd8"},
    {"fld qword ptr [rsi]; fld qword ptr [rsi+8]; fcomip st, st(1); fstp st(0)", 9,
     "\xdd\x06\xdd\x46\x08\xdf\xf1\xdd\xd8"},
    {"fld qword ptr [rsi]; ftst; fnstsw ax; fstp st(0)", 8, "\xdd\x06\xd9\xe4\xdf\xe0\xdd\xd8"},
    {"fld qword ptr [rsi]; fxam; fnstsw ax; fstp st(0)", 8, "\xdd\x06\xd9\xe5\xdf\xe0\xdd\xd8"},
    {"fxam; fnstsw ax", 4, "\xd9\xe5\xdf\xe0"},
    {"fld qword ptr [rsi]; fld qword ptr [rsi+8]; fxch st(1); fstp qword ptr [rsi+64]; fstp qword "
     "ptr [rsi+72]",
     13, "\xdd\x06\xdd\x46\x08\xd9\xc9\xdd\x5e\x40\xdd\x5e\x48"},
    {"fld qword ptr [rsi]; fld qword ptr [rsi+8]; cmp eax, ecx; fcmovb st, st(1); fcmovnbe st, "
     "st(1); fstp qword ptr [rsi+64]; fstp st(0)",
     16, "\xdd\x06\xdd\x46\x08\x39\xc8\xda\xc1\xdb\xd1\xdd\x5e\x40\xdd\xd8"},
    {"fld qword ptr [rsi]; fld qword ptr [rsi+8]; cmp eax, ecx; fcmove st, st(1); fcmovnu st, "
     "st(1); fstp qword ptr [rsi+64]; fstp st(0)",
     16, "\xdd\x06\xdd\x46\x08\x39\xc8\xda\xc9\xdb\xd9\xdd\x5e\x40\xdd\xd8"},
    {"fnstcw [rsi+64]; mov word ptr [rsi+66], 0x0f7f; fldcw [rsi+66]; fld qword ptr [rsi]; fistp "
     "qword ptr [rsi+72]; fld qword ptr [rsi]; fadd qword ptr [rsi+8]; fstp dword ptr [rsi+80]; "
     "fldcw [rsi+64]",
     28,
     "\xd9\x7e\x40\x66\xc7\x46\x42\x7f\x0f\xd9\x6e\x42\xdd\x06\xdf\x7e\x48\xdd\x06\xdc\x46\x08\xd9"
     "\x5e\x50\xd9\x6e\x40"},
    {"fnstcw [rsi+64]; mov word ptr [rsi+66], 0x077f; fldcw [rsi+66]; fld qword ptr [rsi]; fistp "
     "dword ptr [rsi+72]; fld qword ptr [rsi]; fdiv qword ptr [rsi+8]; fstp qword ptr [rsi+80]; "
     "fldcw [rsi+64]",
     28,
     "\xd9\x7e\x40\x66\xc7\x46\x42\x7f\x07\xd9\x6e\x42\xdd\x06\xdb\x5e\x48\xdd\x06\xdc\x76\x08\xdd"
     "\x5e\x50\xd9\x6e\x40"},
    {"fld1; fld qword ptr [rsi]; fincstp; fdecstp; fstp qword ptr [rsi+64]; ffree st(0); fincstp; "
     "fnstsw ax; fnclex",
     19, "\xd9\xe8\xdd\x06\xd9\xf7\xd9\xf6\xdd\x5e\x40\xdd\xc0\xd9\xf7\xdf\xe0\xdb\xe2"},
    {"fld qword ptr [rsi]; fld qword ptr [rsi+8]; fnstenv [rsi+64]; fldenv [rsi+64]; fstp st(0); "
     "fstp st(0); fnstsw ax",
     17, "\xdd\x06\xdd\x46\x08\xd9\x76\x40\xd9\x66\x40\xdd\xd8\xdd\xd8\xdf\xe0"},
    {"fld1; fld qword ptr [rsi]; fnsave [rsi+16]; fld qword ptr [rsi+8]; frstor [rsi+16]; fstp "
     "tbyte ptr [rsi+128]; fstp st(0); fnstsw ax",
     23,
     "\xd9\xe8\xdd\x06\xdd\x76\x10\xdd\x46\x08\xdd\x66\x10\xdb\xbe\x80\x00\x00\x00\xdd\xd8\xdf"
     "\xe0"},
    {"fld qword ptr [rsi]; fst st(3); fstp st(0); fincstp; fincstp; fstp qword ptr [rsi+64]; "
     "fdecstp; fdecstp; fdecstp; fnstsw ax; fninit",
     23,
     "\xdd\x06\xdd\xd3\xdd\xd8\xd9\xf7\xd9\xf7\xdd\x5e\x40\xd9\xf6\xd9\xf6\xd9\xf6\xdf\xe0\xdb"
     "\xe3"},
    {"fld qword ptr [rsi]; fsin; fstp qword ptr [rsi+64]; fld qword ptr [rsi]; fcos; fstp qword "
     "ptr [rsi+72]",
     14, "\xdd\x06\xd9\xfe\xdd\x5e\x40\xdd\x06\xd9\xff\xdd\x5e\x48"},
    {"fld qword ptr [rsi]; fsincos; fstp qword ptr [rsi+64]; fstp qword ptr [rsi+72]; fld qword "
     "ptr [rsi]; fptan; fstp st(0); fstp qword ptr [rsi+80]",
     19, "\xdd\x06\xd9\xfb\xdd\x5e\x40\xdd\x5e\x48\xdd\x06\xd9\xf2\xdd\xd8\xdd\x5e\x50"},
    {"fld qword ptr [rsi+8]; fld qword ptr [rsi]; fpatan; fstp qword ptr [rsi+64]; fld1; fld qword "
     "ptr [rsi]; fyl2x; fstp qword ptr [rsi+72]",
     19, "\xdd\x46\x08\xdd\x06\xd9\xf3\xdd\x5e\x40\xd9\xe8\xdd\x06\xd9\xf1\xdd\x5e\x48"},
    {"fld tbyte ptr [rsi+48]; fbstp tbyte ptr [rsi+64]; fbld tbyte ptr [rsi+64]; fistp qword ptr "
     "[rsi+80]",
     12, "\xdb\x6e\x30\xdf\x76\x40\xdf\x66\x40\xdf\x7e\x50"},
    {"fld qword ptr [rsi]; fld st(0); fmul st, st(1); fadd st(1), st; fsubr st(1), st; fdivr "
     "st(1), st; fstp tbyte ptr [rsi+64]; fstp tbyte ptr [rsi+80]",
     18, "\xdd\x06\xd9\xc0\xd8\xc9\xdc\xc1\xdc\xe1\xdc\xf1\xdb\x7e\x40\xdb\x7e\x50"},
    {"fld qword ptr [rsi]; fst dword ptr [rsi+64]; fst qword ptr [rsi+72]; fstp qword ptr [rsi+80]",
     11, "\xdd\x06\xd9\x56\x40\xdd\x56\x48\xdd\x5e\x50"},
    {"fxsave64 [rsi+128]; fxrstor64 [rsi+128]", 16,
     "\x48\x0f\xae\x86\x80\x00\x00\x00\x48\x0f\xae\x8e\x80\x00\x00\x00"},
    {"stmxcsr [rsi+64]; mov dword ptr [rsi+68], 0x9fc0; ldmxcsr [rsi+68]; addps xmm0, xmm1; "
     "cvtps2dq xmm2, xmm1; stmxcsr [rsi+72]; ldmxcsr [rsi+64]",
     30,
     "\x0f\xae\x5e\x40\xc7\x46\x44\xc0\x9f\x00\x00\x0f\xae\x56\x44\x0f\x58\xc1\x66\x0f\x5b\xd1\x0f"
     "\xae\x5e\x48\x0f\xae\x56\x40"},
    {"stmxcsr [rsi+64]; mov dword ptr [rsi+68], 0x3f80; ldmxcsr [rsi+68]; addpd xmm0, xmm1; "
     "cvtsd2si rax, xmm1; cvtpd2ps xmm2, xmm3; ldmxcsr [rsi+64]",
     32,
     "\x0f\xae\x5e\x40\xc7\x46\x44\x80\x3f\x00\x00\x0f\xae\x56\x44\x66\x0f\x58\xc1\xf2\x48\x0f\x2d"
     "\xc1\x66\x0f\x5a\xd3\x0f\xae\x56\x40"},
    {"fld qword ptr [rsi]; fld1; fxsave64 [rsi+128]; fstp st(0); fstp st(0)", 16,
     "\xdd\x06\xd9\xe8\x48\x0f\xae\x86\x80\x00\x00\x00\xdd\xd8\xdd\xd8"},
    {"fwait", 1, "\x9b"},
    {"movq mm0, [rsi+0x100]; movq mm1, [rsi+0x108]; paddb mm0, mm1; movq [rsi+64], mm0", 21,
     "\x0f\x6f\x86\x00\x01\x00\x00\x0f\x6f\x8e\x08\x01\x00\x00\x0f\xfc\xc1\x0f\x7f\x46\x40"},
    {"movq mm0, [rsi+0x100]; movq mm1, [rsi+0x108]; paddw mm0, mm1; movq [rsi+64], mm0", 21,
     "\x0f\x6f\x86\x00\x01\x00\x00\x0f\x6f\x8e\x08\x01\x00\x00\x0f\xfd\xc1\x0f\x7f\x46\x40"},
    {"movq mm0, [rsi+0x100]; movq mm1, [rsi+0x108]; paddd mm0, mm1; movq [rsi+64], mm0", 21,
     "\x0f\x6f\x86\x00\x01\x00\x00\x0f\x6f\x8e\x08\x01\x00\x00\x0f\xfe\xc1\x0f\x7f\x46\x40"},
    {"movq mm0, [rsi+0x100]; movq mm1, [rsi+0x108]; paddq mm0, mm1; movq [rsi+64], mm0", 21,
     "\x0f\x6f\x86\x00\x01\x00\x00\x0f\x6f\x8e\x08\x01\x00\x00\x0f\xd4\xc1\x0f\x7f\x46\x40"},
    {"movq mm0, [rsi+0x100]; movq mm1, [rsi+0x108]; paddsb mm0, mm1; movq [rsi+64], mm0", 21,
     "\x0f\x6f\x86\x00\x01\x00\x00\x0f\x6f\x8e\x08\x01\x00\x00\x0f\xec\xc1\x0f\x7f\x46\x40"},
    {"movq mm0, [rsi+0x100]; movq mm1, [rsi+0x108]; paddsw mm0, mm1; movq [rsi+64], mm0", 21,
     "\x0f\x6f\x86\x00\x01\x00\x00\x0f\x6f\x8e\x08\x01\x00\x00\x0f\xed\xc1\x0f\x7f\x46\x40"},
    {"movq mm0, [rsi+0x100]; movq mm1, [rsi+0x108]; paddusb mm0, mm1; movq [rsi+64], mm0", 21,
     "\x0f\x6f\x86\x00\x01\x00\x00\x0f\x6f\x8e\x08\x01\x00\x00\x0f\xdc\xc1\x0f\x7f\x46\x40"},
    {"movq mm0, [rsi+0x100]; movq mm1, [rsi+0x108]; paddusw mm0, mm1; movq [rsi+64], mm0", 21,
     "\x0f\x6f\x86\x00\x01\x00\x00\x0f\x6f\x8e\x08\x01\x00\x00\x0f\xdd\xc1\x0f\x7f\x46\x40"},
    {"movq mm0, [rsi+0x100]; movq mm1, [rsi+0x108]; psubb mm0, mm1; movq [rsi+64], mm0", 21,
     "\x0f\x6f\x86\x00\x01\x00\x00\x0f\x6f\x8e\x08\x01\x00\x00\x0f\xf8\xc1\x0f\x7f\x46\x40"},
    {"movq mm0, [rsi+0x100]; movq mm1, [rsi+0x108]; psubw mm0, mm1; movq [rsi+64], mm0", 21,
     "\x0f\x6f\x86\x00\x01\x00\x00\x0f\x6f\x8e\x08\x01\x00\x00\x0f\xf9\xc1\x0f\x7f\x46\x40"},
    {"movq mm0, [rsi+0x100]; movq mm1, [rsi+0x108]; psubd mm0, mm1; movq [rsi+64], mm0", 21,
     "\x0f\x6f\x86\x00\x01\x00\x00\x0f\x6f\x8e\x08\x01\x00\x00\x0f\xfa\xc1\x0f\x7f\x46\x40"},
    {"movq mm0, [rsi+0x100]; movq mm1, [rsi+0x108]; psubq mm0, mm1; movq [rsi+64], mm0", 21,
     "\x0f\x6f\x86\x00\x01\x00\x00\x0f\x6f\x8e\x08\x01\x00\x00\x0f\xfb\xc1\x0f\x7f\x46\x40"},
    {"movq mm0, [rsi+0x100]; movq mm1, [rsi+0x108]; psubsb mm0, mm1; movq [rsi+64], mm0", 21,
     "\x0f\x6f\x86\x00\x01\x00\x00\x0f\x6f\x8e\x08\x01\x00\x00\x0f\xe8\xc1\x0f\x7f\x46\x40"},
    {"movq mm0, [rsi+0x100]; movq mm1, [rsi+0x108]; psubsw mm0, mm1; movq [rsi+64], mm0", 21,
     "\x0f\x6f\x86\x00\x01\x00\x00\x0f\x6f\x8e\x08\x01\x00\x00\x0f\xe9\xc1\x0f\x7f\x46\x40"},
    {"movq mm0, [rsi+0x100]; movq mm1, [rsi+0x108]; psubusb mm0, mm1; movq [rsi+64], mm0", 21,
     "\x0f\x6f\x86\x00\x01\x00\x00\x0f\x6f\x8e\x08\x01\x00\x00\x0f\xd8\xc1\x0f\x7f\x46\x40"},
    {"movq mm0, [rsi+0x100]; movq mm1, [rsi+0x108]; psubusw mm0, mm1; movq [rsi+64], mm0", 21,
     "\x0f\x6f\x86\x00\x01\x00\x00\x0f\x6f\x8e\x08\x01\x00\x00\x0f\xd9\xc1\x0f\x7f\x46\x40"},
    {"movq mm0, [rsi+0x100]; movq mm1, [rsi+0x108]; pmullw mm0, mm1; movq [rsi+64], mm0", 21,
     "\x0f\x6f\x86\x00\x01\x00\x00\x0f\x6f\x8e\x08\x01\x00\x00\x0f\xd5\xc1\x0f\x7f\x46\x40"},
    {"movq mm0, [rsi+0x100]; movq mm1, [rsi+0x108]; pmulhw mm0, mm1; movq [rsi+64], mm0", 21,
     "\x0f\x6f\x86\x00\x01\x00\x00\x0f\x6f\x8e\x08\x01\x00\x00\x0f\xe5\xc1\x0f\x7f\x46\x40"},
    {"movq mm0, [rsi+0x100]; movq mm1, [rsi+0x108]; pmulhuw mm0, mm1; movq [rsi+64], mm0", 21,
     "\x0f\x6f\x86\x00\x01\x00\x00\x0f\x6f\x8e\x08\x01\x00\x00\x0f\xe4\xc1\x0f\x7f\x46\x40"},
    {"movq mm0, [rsi+0x100]; movq mm1, [rsi+0x108]; pmuludq mm0, mm1; movq [rsi+64], mm0", 21,
     "\x0f\x6f\x86\x00\x01\x00\x00\x0f\x6f\x8e\x08\x01\x00\x00\x0f\xf4\xc1\x0f\x7f\x46\x40"},
    {"movq mm0, [rsi+0x100]; movq mm1, [rsi+0x108]; pmaddwd mm0, mm1; movq [rsi+64], mm0", 21,
     "\x0f\x6f\x86\x00\x01\x00\x00\x0f\x6f\x8e\x08\x01\x00\x00\x0f\xf5\xc1\x0f\x7f\x46\x40"},
    {"movq mm0, [rsi+0x100]; movq mm1, [rsi+0x108]; pcmpeqb mm0, mm1; movq [rsi+64], mm0", 21,
     "\x0f\x6f\x86\x00\x01\x00\x00\x0f\x6f\x8e\x08\x01\x00\x00\x0f\x74\xc1\x0f\x7f\x46\x40"},
    {"movq mm0, [rsi+0x100]; movq mm1, [rsi+0x108]; pcmpeqw mm0, mm1; movq [rsi+64], mm0", 21,
     "\x0f\x6f\x86\x00\x01\x00\x00\x0f\x6f\x8e\x08\x01\x00\x00\x0f\x75\xc1\x0f\x7f\x46\x40"},
    {"movq mm0, [rsi+0x100]; movq mm1, [rsi+0x108]; pcmpeqd mm0, mm1; movq [rsi+64], mm0", 21,
     "\x0f\x6f\x86\x00\x01\x00\x00\x0f\x6f\x8e\x08\x01\x00\x00\x0f\x76\xc1\x0f\x7f\x46\x40"},
    {"movq mm0, [rsi+0x100]; movq mm1, [rsi+0x108]; pcmpgtb mm0, mm1; movq [rsi+64], mm0", 21,
     "\x0f\x6f\x86\x00\x01\x00\x00\x0f\x6f\x8e\x08\x01\x00\x00\x0f\x64\xc1\x0f\x7f\x46\x40"},
    {"movq mm0, [rsi+0x100]; movq mm1, [rsi+0x108]; pcmpgtw mm0, mm1; movq [rsi+64], mm0", 21,
     "\x0f\x6f\x86\x00\x01\x00\x00\x0f\x6f\x8e\x08\x01\x00\x00\x0f\x65\xc1\x0f\x7f\x46\x40"},
    {"movq mm0, [rsi+0x100]; movq mm1, [rsi+0x108]; pcmpgtd mm0, mm1; movq [rsi+64], mm0", 21,
     "\x0f\x6f\x86\x00\x01\x00\x00\x0f\x6f\x8e\x08\x01\x00\x00\x0f\x66\xc1\x0f\x7f\x46\x40"},
    {"movq mm0, [rsi+0x100]; movq mm1, [rsi+0x108]; pand mm0, mm1; movq [rsi+64], mm0", 21,
     "\x0f\x6f\x86\x00\x01\x00\x00\x0f\x6f\x8e\x08\x01\x00\x00\x0f\xdb\xc1\x0f\x7f\x46\x40"},
    {"movq mm0, [rsi+0x100]; movq mm1, [rsi+0x108]; pandn mm0, mm1; movq [rsi+64], mm0", 21,
     "\x0f\x6f\x86\x00\x01\x00\x00\x0f\x6f\x8e\x08\x01\x00\x00\x0f\xdf\xc1\x0f\x7f\x46\x40"},
    {"movq mm0, [rsi+0x100]; movq mm1, [rsi+0x108]; por mm0, mm1; movq [rsi+64], mm0", 21,
     "\x0f\x6f\x86\x00\x01\x00\x00\x0f\x6f\x8e\x08\x01\x00\x00\x0f\xeb\xc1\x0f\x7f\x46\x40"},
    {"movq mm0, [rsi+0x100]; movq mm1, [rsi+0x108]; pxor mm0, mm1; movq [rsi+64], mm0", 21,
     "\x0f\x6f\x86\x00\x01\x00\x00\x0f\x6f\x8e\x08\x01\x00\x00\x0f\xef\xc1\x0f\x7f\x46\x40"},
    {"movq mm0, [rsi+0x100]; movq mm1, [rsi+0x108]; packsswb mm0, mm1; movq [rsi+64], mm0", 21,
     "\x0f\x6f\x86\x00\x01\x00\x00\x0f\x6f\x8e\x08\x01\x00\x00\x0f\x63\xc1\x0f\x7f\x46\x40"},
    {"movq mm0, [rsi+0x100]; movq mm1, [rsi+0x108]; packssdw mm0, mm1; movq [rsi+64], mm0", 21,
     "\x0f\x6f\x86\x00\x01\x00\x00\x0f\x6f\x8e\x08\x01\x00\x00\x0f\x6b\xc1\x0f\x7f\x46\x40"},
    {"movq mm0, [rsi+0x100]; movq mm1, [rsi+0x108]; packuswb mm0, mm1; movq [rsi+64], mm0", 21,
     "\x0f\x6f\x86\x00\x01\x00\x00\x0f\x6f\x8e\x08\x01\x00\x00\x0f\x67\xc1\x0f\x7f\x46\x40"},
    {"movq mm0, [rsi+0x100]; movq mm1, [rsi+0x108]; punpcklbw mm0, mm1; movq [rsi+64], mm0", 21,
     "\x0f\x6f\x86\x00\x01\x00\x00\x0f\x6f\x8e\x08\x01\x00\x00\x0f\x60\xc1\x0f\x7f\x46\x40"},
    {"movq mm0, [rsi+0x100]; movq mm1, [rsi+0x108]; punpcklwd mm0, mm1; movq [rsi+64], mm0", 21,
     "\x0f\x6f\x86\x00\x01\x00\x00\x0f\x6f\x8e\x08\x01\x00\x00\x0f\x61\xc1\x0f\x7f\x46\x40"},
    {"movq mm0, [rsi+0x100]; movq mm1, [rsi+0x108]; punpckldq mm0, mm1; movq [rsi+64], mm0", 21,
     "\x0f\x6f\x86\x00\x01\x00\x00\x0f\x6f\x8e\x08\x01\x00\x00\x0f\x62\xc1\x0f\x7f\x46\x40"},
    {"movq mm0, [rsi+0x100]; movq mm1, [rsi+0x108]; punpckhbw mm0, mm1; movq [rsi+64], mm0", 21,
     "\x0f\x6f\x86\x00\x01\x00\x00\x0f\x6f\x8e\x08\x01\x00\x00\x0f\x68\xc1\x0f\x7f\x46\x40"},
    {"movq mm0, [rsi+0x100]; movq mm1, [rsi+0x108]; punpckhwd mm0, mm1; movq [rsi+64], mm0", 21,
     "\x0f\x6f\x86\x00\x01\x00\x00\x0f\x6f\x8e\x08\x01\x00\x00\x0f\x69\xc1\x0f\x7f\x46\x40"},
    {"movq mm0, [rsi+0x100]; movq mm1, [rsi+0x108]; punpckhdq mm0, mm1; movq [rsi+64], mm0", 21,
     "\x0f\x6f\x86\x00\x01\x00\x00\x0f\x6f\x8e\x08\x01\x00\x00\x0f\x6a\xc1\x0f\x7f\x46\x40"},
    {"movq mm0, [rsi+0x100]; movq mm1, [rsi+0x108]; pavgb mm0, mm1; movq [rsi+64], mm0", 21,
     "\x0f\x6f\x86\x00\x01\x00\x00\x0f\x6f\x8e\x08\x01\x00\x00\x0f\xe0\xc1\x0f\x7f\x46\x40"},
    {"movq mm0, [rsi+0x100]; movq mm1, [rsi+0x108]; pavgw mm0, mm1; movq [rsi+64], mm0", 21,
     "\x0f\x6f\x86\x00\x01\x00\x00\x0f\x6f\x8e\x08\x01\x00\x00\x0f\xe3\xc1\x0f\x7f\x46\x40"},
    {"movq mm0, [rsi+0x100]; movq mm1, [rsi+0x108]; pmaxub mm0, mm1; movq [rsi+64], mm0", 21,
     "\x0f\x6f\x86\x00\x01\x00\x00\x0f\x6f\x8e\x08\x01\x00\x00\x0f\xde\xc1\x0f\x7f\x46\x40"},
    {"movq mm0, [rsi+0x100]; movq mm1, [rsi+0x108]; pminub mm0, mm1; movq [rsi+64], mm0", 21,
     "\x0f\x6f\x86\x00\x01\x00\x00\x0f\x6f\x8e\x08\x01\x00\x00\x0f\xda\xc1\x0f\x7f\x46\x40"},
    {"movq mm0, [rsi+0x100]; movq mm1, [rsi+0x108]; pmaxsw mm0, mm1; movq [rsi+64], mm0", 21,
     "\x0f\x6f\x86\x00\x01\x00\x00\x0f\x6f\x8e\x08\x01\x00\x00\x0f\xee\xc1\x0f\x7f\x46\x40"},
    {"movq mm0, [rsi+0x100]; movq mm1, [rsi+0x108]; pminsw mm0, mm1; movq [rsi+64], mm0", 21,
     "\x0f\x6f\x86\x00\x01\x00\x00\x0f\x6f\x8e\x08\x01\x00\x00\x0f\xea\xc1\x0f\x7f\x46\x40"},
    {"movq mm0, [rsi+0x100]; movq mm1, [rsi+0x108]; psadbw mm0, mm1; movq [rsi+64], mm0", 21,
     "\x0f\x6f\x86\x00\x01\x00\x00\x0f\x6f\x8e\x08\x01\x00\x00\x0f\xf6\xc1\x0f\x7f\x46\x40"},
    {"movq mm0, [rsi+0x100]; movq mm1, [rsi+0x118]; psllw mm0, mm1; movq [rsi+64], mm0", 21,
     "\x0f\x6f\x86\x00\x01\x00\x00\x0f\x6f\x8e\x18\x01\x00\x00\x0f\xf1\xc1\x0f\x7f\x46\x40"},
    {"movq mm0, [rsi+0x100]; movq mm1, [rsi+0x118]; pslld mm0, mm1; movq [rsi+64], mm0", 21,
     "\x0f\x6f\x86\x00\x01\x00\x00\x0f\x6f\x8e\x18\x01\x00\x00\x0f\xf2\xc1\x0f\x7f\x46\x40"},
    {"movq mm0, [rsi+0x100]; movq mm1, [rsi+0x118]; psllq mm0, mm1; movq [rsi+64], mm0", 21,
     "\x0f\x6f\x86\x00\x01\x00\x00\x0f\x6f\x8e\x18\x01\x00\x00\x0f\xf3\xc1\x0f\x7f\x46\x40"},
    {"movq mm0, [rsi+0x100]; movq mm1, [rsi+0x118]; psrlw mm0, mm1; movq [rsi+64], mm0", 21,
     "\x0f\x6f\x86\x00\x01\x00\x00\x0f\x6f\x8e\x18\x01\x00\x00\x0f\xd1\xc1\x0f\x7f\x46\x40"},
    {"movq mm0, [rsi+0x100]; movq mm1, [rsi+0x118]; psrld mm0, mm1; movq [rsi+64], mm0", 21,
     "\x0f\x6f\x86\x00\x01\x00\x00\x0f\x6f\x8e\x18\x01\x00\x00\x0f\xd2\xc1\x0f\x7f\x46\x40"},
    {"movq mm0, [rsi+0x100]; movq mm1, [rsi+0x118]; psrlq mm0, mm1; movq [rsi+64], mm0", 21,
     "\x0f\x6f\x86\x00\x01\x00\x00\x0f\x6f\x8e\x18\x01\x00\x00\x0f\xd3\xc1\x0f\x7f\x46\x40"},
    {"movq mm0, [rsi+0x100]; movq mm1, [rsi+0x118]; psraw mm0, mm1; movq [rsi+64], mm0", 21,
     "\x0f\x6f\x86\x00\x01\x00\x00\x0f\x6f\x8e\x18\x01\x00\x00\x0f\xe1\xc1\x0f\x7f\x46\x40"},
    {"movq mm0, [rsi+0x100]; movq mm1, [rsi+0x118]; psrad mm0, mm1; movq [rsi+64], mm0", 21,
     "\x0f\x6f\x86\x00\x01\x00\x00\x0f\x6f\x8e\x18\x01\x00\x00\x0f\xe2\xc1\x0f\x7f\x46\x40"},
    {"movq mm3, [rsi+0x100]; psllw mm3, 3; movq [rsi+64], mm3", 15,
     "\x0f\x6f\x9e\x00\x01\x00\x00\x0f\x71\xf3\x03\x0f\x7f\x5e\x40"},
    {"movq mm3, [rsi+0x100]; psllw mm3, 16; movq [rsi+64], mm3", 15,
     "\x0f\x6f\x9e\x00\x01\x00\x00\x0f\x71\xf3\x10\x0f\x7f\x5e\x40"},
    {"movq mm3, [rsi+0x100]; pslld mm3, 31; movq [rsi+64], mm3", 15,
     "\x0f\x6f\x9e\x00\x01\x00\x00\x0f\x72\xf3\x1f\x0f\x7f\x5e\x40"},
    {"movq mm3, [rsi+0x100]; psllq mm3, 64; movq [rsi+64], mm3", 15,
     "\x0f\x6f\x9e\x00\x01\x00\x00\x0f\x73\xf3\x40\x0f\x7f\x5e\x40"},
    {"movq mm3, [rsi+0x100]; psrlw mm3, 15; movq [rsi+64], mm3", 15,
     "\x0f\x6f\x9e\x00\x01\x00\x00\x0f\x71\xd3\x0f\x0f\x7f\x5e\x40"},
    {"movq mm3, [rsi+0x100]; psrld mm3, 40; movq [rsi+64], mm3", 15,
     "\x0f\x6f\x9e\x00\x01\x00\x00\x0f\x72\xd3\x28\x0f\x7f\x5e\x40"},
    {"movq mm3, [rsi+0x100]; psrlq mm3, 63; movq [rsi+64], mm3", 15,
     "\x0f\x6f\x9e\x00\x01\x00\x00\x0f\x73\xd3\x3f\x0f\x7f\x5e\x40"},
    {"movq mm3, [rsi+0x100]; psraw mm3, 200; movq [rsi+64], mm3", 15,
     "\x0f\x6f\x9e\x00\x01\x00\x00\x0f\x71\xe3\xc8\x0f\x7f\x5e\x40"},
    {"movq mm3, [rsi+0x100]; psrad mm3, 31; movq [rsi+64], mm3", 15,
     "\x0f\x6f\x9e\x00\x01\x00\x00\x0f\x72\xe3\x1f\x0f\x7f\x5e\x40"},
    {"movq mm3, [rsi+0x100]; psrad mm3, 32; movq [rsi+64], mm3", 15,
     "\x0f\x6f\x9e\x00\x01\x00\x00\x0f\x72\xe3\x20\x0f\x7f\x5e\x40"},
    {"movq mm3, [rsi+0x100]; psrlq mm3, [rsi+0x118]; movq [rsi+64], mm3", 18,
     "\x0f\x6f\x9e\x00\x01\x00\x00\x0f\xd3\x9e\x18\x01\x00\x00\x0f\x7f\x5e\x40"},
    {"movq mm3, [rsi+0x100]; psraw mm3, [rsi+0x118]; movq [rsi+64], mm3", 18,
     "\x0f\x6f\x9e\x00\x01\x00\x00\x0f\xe1\x9e\x18\x01\x00\x00\x0f\x7f\x5e\x40"},
    {"movq mm0, [rsi+0x100]; paddsw mm0, [rsi+0x108]; psubusb mm0, [rsi+0x110]; movq rax, mm0", 25,
     "\x0f\x6f\x86\x00\x01\x00\x00\x0f\xed\x86\x08\x01\x00\x00\x0f\xd8\x86\x10\x01\x00\x00\x48\x0f"
     "\x7e\xc0"},
    {"movq mm0, [rsi+0x100]; punpcklbw mm0, dword ptr [rsi+0x108]; movq [rsi+64], mm0", 18,
     "\x0f\x6f\x86\x00\x01\x00\x00\x0f\x60\x86\x08\x01\x00\x00\x0f\x7f\x46\x40"},
    {"movq mm0, [rsi+0x100]; punpckhdq mm0, [rsi+0x108]; movq [rsi+64], mm0", 18,
     "\x0f\x6f\x86\x00\x01\x00\x00\x0f\x6a\x86\x08\x01\x00\x00\x0f\x7f\x46\x40"},
    {"movq mm0, [rsi+0x100]; packssdw mm0, mm0; movq [rsi+64], mm0", 14,
     "\x0f\x6f\x86\x00\x01\x00\x00\x0f\x6b\xc0\x0f\x7f\x46\x40"},
    {"movd mm0, eax; movq [rsi+64], mm0; movq mm1, rcx; movq [rsi+72], mm1", 15,
     "\x0f\x6e\xc0\x0f\x7f\x46\x40\x48\x0f\x6e\xc9\x0f\x7f\x4e\x48"},
    {"movd mm1, [rsi+0x100]; movq rax, mm1; movd ecx, mm1", 14,
     "\x0f\x6e\x8e\x00\x01\x00\x00\x48\x0f\x7e\xc8\x0f\x7e\xc9"},
    {"movq mm2, [rsi+0x100]; movd [rsi+64], mm2; rex64 movd [rsi+72], mm2", 16,
     "\x0f\x6f\x96\x00\x01\x00\x00\x0f\x7e\x56\x40\x48\x0f\x7e\x56\x48"},
    {"movq mm3, [rsi+0x100]; movq mm4, mm3; {store} movq mm6, mm3; movq rax, mm4; movq rcx, mm6",
     21, "\x0f\x6f\x9e\x00\x01\x00\x00\x0f\x6f\xe3\x0f\x7f\xde\x48\x0f\x7e\xe0\x48\x0f\x7e\xf1"},
    {"movq mm5, [rsi+0x100]; movntq [rsi+64], mm5; {store} movq [rsi+72], mm5", 15,
     "\x0f\x6f\xae\x00\x01\x00\x00\x0f\xe7\x6e\x40\x0f\x7f\x6e\x48"},
    {"movq mm1, [rsi+0x100]; pshufw mm0, mm1, 0x1b; pshufw mm2, [rsi+0x108], 0xb1; movq rax, mm0; "
     "movq rcx, mm2",
     27,
     "\x0f\x6f\x8e\x00\x01\x00\x00\x0f\x70\xc1\x1b\x0f\x70\x96\x08\x01\x00\x00\xb1\x48\x0f\x7e\xc0"
     "\x48\x0f\x7e\xd1"},
    {"movq mm0, [rsi+0x100]; pinsrw mm0, ecx, 2; pinsrw mm0, [rsi+0x110], 3; movq rax, mm0", 23,
     "\x0f\x6f\x86\x00\x01\x00\x00\x0f\xc4\xc1\x02\x0f\xc4\x86\x10\x01\x00\x00\x03\x48\x0f\x7e"
     "\xc0"},
    {"movq mm1, [rsi+0x108]; pextrw eax, mm1, 3; pextrw ecx, mm1, 4", 15,
     "\x0f\x6f\x8e\x08\x01\x00\x00\x0f\xc5\xc1\x03\x0f\xc5\xc9\x04"},
    {"movq mm0, [rsi+0x100]; pmovmskb eax, mm0; pmovmskb rcx, mm0", 13,
     "\x0f\x6f\x86\x00\x01\x00\x00\x0f\xd7\xc0\x0f\xd7\xc8"},
    {"push rdi; lea rdi, [rsi+64]; movq mm0, [rsi+0x100]; movq mm1, [rsi+0x108]; maskmovq mm0, "
     "mm1; pop rdi",
     23,
     "\x57\x48\x8d\x7e\x40\x0f\x6f\x86\x00\x01\x00\x00\x0f\x6f\x8e\x08\x01\x00\x00\x0f\xf7\xc1"
     "\x5f"},
    {"movq mm0, [rsi+0x100]; cvtpi2ps xmm0, mm0; cvtpi2ps xmm1, [rsi+0x108]", 17,
     "\x0f\x6f\x86\x00\x01\x00\x00\x0f\x2a\xc0\x0f\x2a\x8e\x08\x01\x00\x00"},
    {"movq mm0, [rsi+0x100]; cvtpi2pd xmm0, mm0; cvtpi2pd xmm1, [rsi+0x108]", 19,
     "\x0f\x6f\x86\x00\x01\x00\x00\x66\x0f\x2a\xc0\x66\x0f\x2a\x8e\x08\x01\x00\x00"},
    {"cvtps2pi mm0, xmm0; cvttps2pi mm1, xmm1; cvtps2pi mm2, [rsi+8]; movq rax, mm0; movq rcx, "
     "mm1; movq [rsi+64], mm2",
     22,
     "\x0f\x2d\xc0\x0f\x2c\xc9\x0f\x2d\x56\x08\x48\x0f\x7e\xc0\x48\x0f\x7e\xc9\x0f\x7f\x56\x40"},
    {"cvtpd2pi mm0, xmm1; cvttpd2pi mm1, xmm2; cvttpd2pi mm2, [rsi+16]; movq rax, mm0; movq rcx, "
     "mm1; movq [rsi+64], mm2",
     25,
     "\x66\x0f\x2d\xc1\x66\x0f\x2c\xca\x66\x0f\x2c\x56\x10\x48\x0f\x7e\xc0\x48\x0f\x7e\xc9\x0f\x7f"
     "\x56\x40"},
    {"movq mm0, [rsi+0x100]; movq2dq xmm3, mm0; movdq2q mm1, xmm1; movq rax, mm1", 19,
     "\x0f\x6f\x86\x00\x01\x00\x00\xf3\x0f\xd6\xd8\xf2\x0f\xd6\xc9\x48\x0f\x7e\xc8"},
    {"movq mm0, [rsi+0x100]; movq mm1, [rsi+0x108]; movq mm2, [rsi+0x110]; movq mm3, [rsi+0x118]; "
     "movq mm4, [rsi+0x120]; movq mm5, [rsi+0x128]; movq mm6, [rsi+0x130]; movq mm7, [rsi+0x138]; "
     "paddb mm0, mm1; fxsave64 [rsi+128]",
     67,
     "\x0f\x6f\x86\x00\x01\x00\x00\x0f\x6f\x8e\x08\x01\x00\x00\x0f\x6f\x96\x10\x01\x00\x00\x0f\x6f"
     "\x9e\x18\x01\x00\x00\x0f\x6f\xa6\x20\x01\x00\x00\x0f\x6f\xae\x28\x01\x00\x00\x0f\x6f\xb6\x30"
     "\x01\x00\x00\x0f\x6f\xbe\x38\x01\x00\x00\x0f\xfc\xc1\x48\x0f\xae\x86\x80\x00\x00\x00"},
    {"fld1; fldpi; movq mm0, [rsi+0x100]; movq mm1, [rsi+0x108]; movq mm2, [rsi+0x110]; movq mm3, "
     "[rsi+0x118]; movq mm4, [rsi+0x120]; movq mm5, [rsi+0x128]; fxsave64 [rsi+128]",
     54,
     "\xd9\xe8\xd9\xeb\x0f\x6f\x86\x00\x01\x00\x00\x0f\x6f\x8e\x08\x01\x00\x00\x0f\x6f\x96\x10\x01"
     "\x00\x00\x0f\x6f\x9e\x18\x01\x00\x00\x0f\x6f\xa6\x20\x01\x00\x00\x0f\x6f\xae\x28\x01\x00\x00"
     "\x48\x0f\xae\x86\x80\x00\x00\x00"},
    {"movq mm0, [rsi+0x100]; movq mm1, [rsi+0x108]; movq mm2, [rsi+0x110]; movq mm3, [rsi+0x118]; "
     "movq mm4, [rsi+0x120]; movq mm5, [rsi+0x128]; movq mm6, [rsi+0x130]; movq mm7, [rsi+0x138]; "
     "emms; fxsave64 [rsi+128]",
     66,
     "\x0f\x6f\x86\x00\x01\x00\x00\x0f\x6f\x8e\x08\x01\x00\x00\x0f\x6f\x96\x10\x01\x00\x00\x0f\x6f"
     "\x9e\x18\x01\x00\x00\x0f\x6f\xa6\x20\x01\x00\x00\x0f\x6f\xae\x28\x01\x00\x00\x0f\x6f\xb6\x30"
     "\x01\x00\x00\x0f\x6f\xbe\x38\x01\x00\x00\x0f\x77\x48\x0f\xae\x86\x80\x00\x00\x00"},
    {"movq mm0, [rsi+0x100]; movq mm1, [rsi+0x108]; movq mm2, [rsi+0x110]; movq mm3, [rsi+0x118]; "
     "movq mm4, [rsi+0x120]; movq mm5, [rsi+0x128]; movq mm6, [rsi+0x130]; movq mm7, [rsi+0x138]; "
     "fxsave64 [rsi+128]; fninit; fxrstor64 [rsi+128]; movq rax, mm3; movq rcx, mm7; fnstsw ax",
     84,
     "\x0f\x6f\x86\x00\x01\x00\x00\x0f\x6f\x8e\x08\x01\x00\x00\x0f\x6f\x96\x10\x01\x00\x00\x0f\x6f"
     "\x9e\x18\x01\x00\x00\x0f\x6f\xa6\x20\x01\x00\x00\x0f\x6f\xae\x28\x01\x00\x00\x0f\x6f\xb6\x30"
     "\x01\x00\x00\x0f\x6f\xbe\x38\x01\x00\x00\x48\x0f\xae\x86\x80\x00\x00\x00\xdb\xe3\x48\x0f\xae"
     "\x8e\x80\x00\x00\x00\x48\x0f\x7e\xd8\x48\x0f\x7e\xf9\xdf\xe0"},
    {"movq mm0, [rsi+0x100]; movq mm1, [rsi+0x108]; movq mm2, [rsi+0x110]; movq mm3, [rsi+0x118]; "
     "movq mm4, [rsi+0x120]; movq mm5, [rsi+0x128]; movq mm6, [rsi+0x130]; movq mm7, [rsi+0x138]; "
     "fnsave [rsi+16]; frstor [rsi+16]; movq rax, mm5; fnstsw ax",
     68,
     "\x0f\x6f\x86\x00\x01\x00\x00\x0f\x6f\x8e\x08\x01\x00\x00\x0f\x6f\x96\x10\x01\x00\x00\x0f\x6f"
     "\x9e\x18\x01\x00\x00\x0f\x6f\xa6\x20\x01\x00\x00\x0f\x6f\xae\x28\x01\x00\x00\x0f\x6f\xb6\x30"
     "\x01\x00\x00\x0f\x6f\xbe\x38\x01\x00\x00\xdd\x76\x10\xdd\x66\x10\x48\x0f\x7e\xe8\xdf\xe0"},
    {"movq mm0, [rsi+0x100]; emms; fld qword ptr [rsi]; fstp qword ptr [rsi+64]; fnstsw ax", 16,
     "\x0f\x6f\x86\x00\x01\x00\x00\x0f\x77\xdd\x06\xdd\x5e\x40\xdf\xe0"},
    {"movq mm0, [rsi+0x100]; fld qword ptr [rsi]; fnstsw ax; fstp qword ptr [rsi+64]", 14,
     "\x0f\x6f\x86\x00\x01\x00\x00\xdd\x06\xdf\xe0\xdd\x5e\x40"},
    {"movq mm0, [rsi+0x100]; fstp tbyte ptr [rsi+64]; fnstsw ax", 12,
     "\x0f\x6f\x86\x00\x01\x00\x00\xdb\x7e\x40\xdf\xe0"},
    {"movq mm0, [rsi+0x100]; fst qword ptr [rsi+64]; fnstsw ax; fninit", 14,
     "\x0f\x6f\x86\x00\x01\x00\x00\xdd\x56\x40\xdf\xe0\xdb\xe3"},
    {"fninit; fld qword ptr [rsi]; fldpi; movq rax, mm7; movq rcx, mm6; fninit", 16,
     "\xdb\xe3\xdd\x06\xd9\xeb\x48\x0f\x7e\xf8\x48\x0f\x7e\xf1\xdb\xe3"},
    {"fld1; cvtpi2ps xmm0, [rsi+0x100]; fnstsw ax; fninit", 13,
     "\xd9\xe8\x0f\x2a\x86\x00\x01\x00\x00\xdf\xe0\xdb\xe3"},
    {"fld1; cvtpi2pd xmm0, [rsi+0x100]; fnstsw ax; fninit", 14,
     "\xd9\xe8\x66\x0f\x2a\x86\x00\x01\x00\x00\xdf\xe0\xdb\xe3"},
    {"fld1; fld1; cvtpi2pd xmm0, mm7; fnstsw ax; fninit", 12,
     "\xd9\xe8\xd9\xe8\x66\x0f\x2a\xc7\xdf\xe0\xdb\xe3"},
    {"mov eax, 7; cvtsi2sd xmm0, eax", 9, "\xb8\x07\x00\x00\x00\xf2\x0f\x2a\xc0"},
    {"mov rcx, -3; cvtsi2ss xmm1, rcx", 12, "\x48\xc7\xc1\xfd\xff\xff\xff\xf3\x48\x0f\x2a\xc9"},
    {"mov rax, 0x400c000000000000; movq xmm1, rax; cvttsd2si ecx, xmm1; cvtsd2si rdx, xmm1", 24,
     "\x48\xb8\x00\x00\x00\x00\x00\x00\x0c\x40\x66\x48\x0f\x6e\xc8\xf2\x0f\x2c\xc9\xf2\x48\x0f\x2d"
     "\xd1"},
    {"mov rax, 0x3ff8000000000000; movq xmm1, rax; addsd xmm0, xmm1; ucomisd xmm0, xmm1; setb al; "
     "seta cl",
     29,
     "\x48\xb8\x00\x00\x00\x00\x00\x00\xf8\x3f\x66\x48\x0f\x6e\xc8\xf2\x0f\x58\xc1\x66\x0f\x2e\xc1"
     "\x0f\x92\xc0\x0f\x97\xc1"},
    {"mov eax, 0x40400000; movd xmm2, eax; mulss xmm0, xmm2; comiss xmm2, xmm0; sbb eax, eax", 18,
     "\xb8\x00\x00\x40\x40\x66\x0f\x6e\xd0\xf3\x0f\x59\xc2\x0f\x2f\xd0\x19\xc0"},
    {"mov rax, 0x41e65a0bc0000000; movq xmm1, rax; cvttsd2si ecx, xmm1; cvtsd2si edx, xmm1", 23,
     "\x48\xb8\x00\x00\x00\xc0\x0b\x5a\xe6\x41\x66\x48\x0f\x6e\xc8\xf2\x0f\x2c\xc9\xf2\x0f\x2d"
     "\xd1"},
    {"mov eax, 0x4f32d05e; movd xmm2, eax; cvttss2si ecx, xmm2; cvtss2si edx, xmm2", 17,
     "\xb8\x5e\xd0\x32\x4f\x66\x0f\x6e\xd0\xf3\x0f\x2c\xca\xf3\x0f\x2d\xd2"},
};
#define NR_BODIES (sizeof(bodies) / sizeof(bodies[0]))

/* --- the guest ------------------------------------------------------------------------------- */

struct fx {
    struct guest_memory mem;
    struct bus pio, mmio;
    struct accel_vm *vm;
    struct accel_vcpu *vcpu;
    int vector;      /* exception the guest reported, -1 none */
    uint8_t *native; /* RWX page for native runs */
};

static uint64_t port_read(void *opaque, uint64_t offset, unsigned size)
{
    (void)opaque, (void)offset, (void)size;
    return 0;
}

static void port_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
    (void)size;
    struct fx *f = opaque;
    if (offset == 0)
        f->vector = (int)(value & 0xff);
    tcg_accel_ops.kick(f->vcpu); /* the stub halts next: run() returns STOPPED */
}

static const struct bus_device_ops port_ops = {port_read, port_write};

static int setup_backend(void **state, enum tcg_backend_choice backend)
{
    struct fx *f = calloc(1, sizeof(*f));
    const struct accel_settings settings = {.tcg_backend = backend};
    char err[200];
    assert_non_null(f);
    assert_int_equal(guest_memory_init(&f->mem, RAM_SIZE, err, sizeof(err)), 0);
    bus_init(&f->pio, "pio", 0x10000);
    bus_init(&f->mmio, "mmio", 0);
    assert_int_equal(bus_register(&f->pio, PORT_EXC, 2, &port_ops, f, "test", err, sizeof(err)), 0);
    struct accel_vm_config cfg = {
        .mem = &f->mem, .pio = &f->pio, .mmio = &f->mmio, .nr_vcpus = 1, .settings = &settings};
    assert_int_equal(tcg_accel_ops.vm_create(&cfg, &f->vm, err, sizeof(err)), 0);
    assert_int_equal(tcg_accel_ops.vcpu_create(f->vm, 0, &f->vcpu, err, sizeof(err)), 0);
    assert_int_equal(tcg_accel_ops.vcpu_thread_init(f->vcpu), 0);
    /* IDT: vector v -> stub "mov al, v; out PORT_EXC, al; hlt" */
    for (unsigned v = 0; v < 32; v++) {
        uint8_t stub[5] = {0xb0, (uint8_t)v, 0xe6, PORT_EXC, 0xf4};
        uint64_t h = STUB_ADDR + v * 16;
        uint8_t gate[16] = {(uint8_t)h, (uint8_t)(h >> 8),  BOOT_SEL_CODE64,   0, 0,
                            0x8e,       (uint8_t)(h >> 16), (uint8_t)(h >> 24)};
        assert_int_equal(guest_write(&f->mem, h, stub, sizeof(stub)), 0);
        assert_int_equal(guest_write(&f->mem, IDT_ADDR + v * 16, gate, sizeof(gate)), 0);
    }
    f->native =
        mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(f->native != MAP_FAILED);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    tcg_accel_ops.vcpu_destroy(f->vcpu);
    tcg_accel_ops.vm_destroy(f->vm);
    bus_destroy(&f->pio);
    bus_destroy(&f->mmio);
    guest_memory_destroy(&f->mem);
    munmap(f->native, 4096);
    free(f);
    return 0;
}

#define CR0_MP (1ULL << 1)
#define CR0_EM (1ULL << 2)
#define CR0_TS (1ULL << 3)
#define CR4_OSFXSR (1ULL << 9)
#define CR4_OSXMMEXCPT (1ULL << 10)

struct cr_mods {
    uint64_t cr0_set, cr0_clear, cr4_set, cr4_clear;
};

/* Run code at `at` with rdi = DATA_ADDR holding data; returns the exception vector or -1. */
static int run_guest(struct fx *f, const uint8_t *code, size_t len, uint64_t at, uint8_t *data,
                     const struct cr_mods *m)
{
    struct vcpu_state st;
    assert_int_equal(guest_write(&f->mem, at, code, len), 0);
    assert_int_equal(guest_write(&f->mem, DATA_ADDR, data, DATA_SIZE), 0);
    assert_int_equal(boot_cpu_long64(&st, &f->mem), 0);
    st.rip = at;
    st.rflags = X86_RFLAGS_FIXED;
    st.gpr[GPR_RSP] = STACK_TOP;
    st.gpr[GPR_RDI] = DATA_ADDR;
    st.idt = (struct vcpu_dtable){IDT_ADDR, 32 * 16 - 1};
    st.cr0 = (st.cr0 | CR0_MP | X86_CR0_NE | m->cr0_set) & ~m->cr0_clear;
    st.cr4 = (st.cr4 | CR4_OSFXSR | CR4_OSXMMEXCPT | m->cr4_set) & ~m->cr4_clear;
    assert_int_equal(tcg_accel_ops.set_state(f->vcpu, &st), 0);
    /* The native side starts from FNINIT + the default MXCSR too (set_state has no FPU). */
    tcg_fpu_reset(&f->vcpu->cpu.fpu);
    f->vector = -1;
    struct accel_exit ex;
    do {
        assert_int_equal(tcg_accel_ops.run(f->vcpu, &ex), 0);
        assert_int_not_equal(ex.reason, ACCEL_EXIT_SHUTDOWN);
        assert_int_not_equal(ex.reason, ACCEL_EXIT_ERROR);
    } while (ex.reason != ACCEL_EXIT_STOPPED);
    assert_int_equal(guest_read(&f->mem, DATA_ADDR, data, DATA_SIZE), 0);
    return f->vector;
}

static void run_native(struct fx *f, const struct body *b, uint8_t *data)
{
    size_t n = 0;
    memcpy(f->native, prologue, sizeof(prologue) - 1), n += sizeof(prologue) - 1;
    memcpy(f->native + n, b->bytes, b->len), n += b->len;
    memcpy(f->native + n, epilogue, sizeof(epilogue) - 1), n += sizeof(epilogue) - 1;
    f->native[n] = 0xc3; /* ret */
    void (*fn)(void *);
    void *p = f->native;
    memcpy(&fn, &p, sizeof(fn));
    fn(data);
    /* Leave the host FPU as the ABI wants it whatever the body did. */
    uint32_t mx = 0x1f80;
    __asm__ volatile("fninit; ldmxcsr %0" : : "m"(mx));
}

static void run_guest_body(struct fx *f, unsigned idx, uint8_t *data)
{
    uint8_t code[512];
    size_t n = 0;
    const struct body *b = &bodies[idx];
    memcpy(code, prologue, sizeof(prologue) - 1), n += sizeof(prologue) - 1;
    memcpy(code + n, b->bytes, b->len), n += b->len;
    memcpy(code + n, epilogue, sizeof(epilogue) - 1), n += sizeof(epilogue) - 1;
    memcpy(code + n, guest_done, sizeof(guest_done)), n += sizeof(guest_done);
    assert_true(n <= sizeof(code));
    /* Each body at its own address: the bytes stay put, so cached blocks stay valid. */
    struct cr_mods none = {0};
    int v = run_guest(f, code, n, CODE_ADDR + idx * 512ULL, data, &none);
    if (v != -1)
        fail_msg("%s: guest raised vector %d", b->text, v);
}

/* --- input sets ---------------------------------------------------------------------------------
 */

static void put32f(uint8_t *p, float v)
{
    memcpy(p, &v, 4);
}

static void put64d(uint8_t *p, double v)
{
    memcpy(p, &v, 8);
}

static void put32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, 4);
}

static void put64(uint8_t *p, uint64_t v)
{
    memcpy(p, &v, 8);
}

static void x87_operands(uint8_t *d, double a, double b, long double e)
{
    uint8_t *m = d + 0x80;
    put64d(m, a);
    put64d(m + 8, b);
    put32f(m + 16, 3.3f);
    put32(m + 20, (uint32_t)-123456);
    m[24] = 0xd2, m[25] = 0x04; /* 1234 */
    put64(m + 32, 0x0123456789abcdefULL);
    memcpy(m + 48, &e, 10);
}

/* MMX operands: [rsi+0x100] and [rsi+0x108] with saturation edges (words, bytes, dwords,
 * PMADDWD's 0x8000 * 0x8000 pairs; random in the last set), a shift count at [rsi+0x118]
 * (the last two: >= 2^32 with small low bits, and 64). */
static void mmx_operands(unsigned set, uint8_t *m)
{
    static const uint64_t a[4] = {0x0001ffff80007fffULL, 0x7e81fe0100ff807fULL,
                                  0x800000007fffffffULL, 0x7fff7fff80008000ULL};
    static const uint64_t b[4] = {0x7fff8000ffff0001ULL, 0x7fff027fff018001ULL,
                                  0xffff7fff00008000ULL, 0x8000800080008000ULL};
    static const uint64_t count[5] = {7, 16, 31, 0x100000003ULL, 64};
    if (set < 4) {
        put64(m + 0x100, a[set]);
        put64(m + 0x108, b[set]);
    }
    put64(m + 0x118, count[set]);
}

static void make_input(unsigned set, uint8_t *d)
{
    uint64_t r = 0x9e3779b97f4a7c15ULL * (set + 1);
    for (unsigned i = 0; i < DATA_SIZE; i++) {
        r = r * 6364136223846793005ULL + 1442695040888963407ULL;
        d[i] = (uint8_t)(r >> 56);
    }
    put64(d + 0x50, 0x1f80); /* MXCSR (and the flag slot after it) */
    put64(d + 0x58, 0);
    switch (set) {
    case 0: /* single precision specials */
        put32f(d, 1.5f), put32f(d + 4, -0.0f), put32f(d + 8, INFINITY), put32(d + 12, 0x7fc00001);
        put32f(d + 16, 2.25f), put32f(d + 20, 3e9f), put32f(d + 24, -INFINITY),
            put32f(d + 28, 1e-40f);
        put32(d + 32, 0x7f800001), put32f(d + 36, -2.5f), put32f(d + 40, 8.0f),
            put32f(d + 44, 1e38f);
        put32f(d + 48, -3.75f), put32f(d + 52, 0.1f), put32f(d + 56, 2147483520.0f),
            put32(d + 60, 0x80000001);
        put64(d + 0x40, 0x7fffffffffffffffULL), put64(d + 0x48, (uint64_t)-3);
        put32f(d + 0x80 + 40, 1e-40f);
        x87_operands(d, 2.5, -1.75, 12345.678L);
        break;
    case 1: /* double precision specials */
        put64d(d, 1.0 / 3), put64d(d + 8, -0.0);
        put64(d + 16, 0x7ff8000000000123ULL), put64d(d + 24, 4.9e-324);
        put64d(d + 32, 1e300), put64d(d + 40, -3.0e9);
        put64d(d + 48, -1e19), put64(d + 56, 0x7ff0000000000001ULL);
        put64(d + 0x40, ~0ULL), put64(d + 0x48, 0x80000000ULL);
        x87_operands(d, 7.0, 0.0, -INFINITY);
        put32(d + 0x80 + 20, 0x80000000u);
        break;
    case 2: /* rounding down */
        put32f(d, 1.1f), put32f(d + 4, -1.1f), put32f(d + 8, 2.5f), put32f(d + 12, -2.5f);
        put32f(d + 16, 3.0f), put32f(d + 20, 7.0f), put32f(d + 24, -0.1f), put32f(d + 28, 1e-20f);
        put64d(d + 32, 2.5), put64d(d + 40, -3.5), put64d(d + 48, 1e10), put64d(d + 56, -0.5);
        put64(d + 0x40, 12345), put64(d + 0x48, (uint64_t)-7);
        put64(d + 0x50, 0x3f80);
        x87_operands(d, -7.5, 2.0, 1e4000L);
        break;
    case 3: /* rounding up with DAZ and FTZ */
        put32f(d, 1e-39f), put32f(d + 4, 1e-38f), put32f(d + 8, -1e-40f), put32f(d + 12, 1.0f);
        put32f(d + 16, 1e-38f), put32f(d + 20, 0.5f), put32f(d + 24, 3.0f), put32f(d + 28, 1e-39f);
        put64d(d + 32, 2.2250738585072014e-308), put64d(d + 40, 1e-310);
        put64d(d + 48, -1e-310), put64d(d + 56, 0.3);
        put64(d + 0x50, 0xdfc0);
        x87_operands(d, 123456789.987, 3.0, 0.5L);
        break;
    default: /* random integers, round toward zero, small shift counts */
        put64(d + 0x50, 0x7f80);
        put64(d + 0x20, 5);
        x87_operands(d, 1e18, -3.0, 999999999999999999.0L);
        break;
    }
    mmx_operands(set, d + 0x80);
}
#define NR_SETS 5

/* Bytes whose value legitimately differs: instruction/data pointers, reserved fields, host
 * registers XMM8-15. Offsets are into the data block. */
static void mask_volatile(const struct body *b, uint8_t *d)
{
    /* MMX bodies write every MM register they save: all eight x87 registers are live. */
    bool mmx = strstr(b->text, " mm") != NULL;
    if (strstr(b->text, "fxsave64")) {
        uint8_t *x = d + 0x80 + 128;
        memset(x + 6, 0, 18);                             /* FOP FIP FDP */
        memset(x + 160 + 64, 0, DATA_SIZE - 0x100 - 224); /* XMM4-13: host registers */
        for (unsigned i = 0; i < 8; i++)
            memset(x + 32 + 16 * i + 10, 0, 6);
        memset(x + 28, 0, 4); /* MXCSR_MASK: the host may support more (AMD's MM bit) */
        /* Empty registers keep stale host values: only ST0-1 of the second body are live. */
        if (!mmx)
            memset(x + 32 + (strstr(b->text, "fld") ? 32 : 0), 0,
                   strstr(b->text, "fld") ? 96 : 128);
    }
    if (strstr(b->text, "fnstenv"))
        memset(d + 0x80 + 64 + 12, 0, 16);
    if (strstr(b->text, "fnsave")) {
        memset(d + 0x80 + 16 + 12, 0, 16);
        if (!mmx)
            memset(d + 0x80 + 16 + 28 + 20, 0, 60); /* empty registers keep stale values */
    }
}

static bool approximate(const struct body *b)
{
    return strstr(b->text, "fsin") || strstr(b->text, "fptan") || strstr(b->text, "fpatan");
}

static void test_differential(void **state)
{
    struct fx *f = *state;
    unsigned failures = 0;
    for (unsigned i = 0; i < NR_BODIES; i++) {
        for (unsigned set = 0; set < NR_SETS; set++) {
            _Alignas(64) uint8_t in[DATA_SIZE], host[DATA_SIZE], guest[DATA_SIZE];
            make_input(set, in);
            memcpy(host, in, sizeof(in));
            memcpy(guest, in, sizeof(in));
            run_native(f, &bodies[i], host);
            run_guest_body(f, i, guest);
            mask_volatile(&bodies[i], host);
            mask_volatile(&bodies[i], guest);
            if (approximate(&bodies[i])) {
                for (unsigned o = 0x80 + 64; o < 0x80 + 88; o += 8) {
                    double h, g;
                    memcpy(&h, host + o, 8), memcpy(&g, guest + o, 8);
                    /* Set 4 holds 1e18: the x87's 66-bit pi reduction is far off there. */
                    if (set != 4 && !(fabs(h - g) <= 1e-9 * fabs(h)) && !(isnan(h) && isnan(g)))
                        fail_msg("%s (set %u): %.17g vs %.17g", bodies[i].text, set, h, g);
                    memcpy(guest + o, host + o, 8);
                }
            }
            if (memcmp(host, guest, DATA_SIZE) == 0)
                continue;
            failures++;
            printf("MISMATCH %s (input set %u)\n", bodies[i].text, set);
            for (unsigned o = 0; o < DATA_SIZE; o += 8) {
                uint64_t h, g;
                memcpy(&h, host + o, 8), memcpy(&g, guest + o, 8);
                if (h != g)
                    printf("  +0x%03x host %016llx guest %016llx\n", o, (unsigned long long)h,
                           (unsigned long long)g);
            }
        }
    }
    printf("%u bodies x %u input sets compared\n", (unsigned)NR_BODIES, NR_SETS);
    assert_int_equal(failures, 0);
}

/* --- faults -------------------------------------------------------------------------------------
 */

struct fault_case {
    const char *what;
    const char *code;
    unsigned len;
    struct cr_mods mods;
    uint32_t data_at_0; /* written at rdi+0 and rdi+24 (MXCSR slot of an FXSAVE image) */
    int vector;
};

/* fldcw [rdi] (ZM unmasked), fldz, fld1, fdivrp: a pending unmasked x87 exception */
#define X87_ZE "\xd9\x2f\xd9\xee\xd9\xe8\xde\xf1"

static void test_faults(void **state)
{
    struct fx *f = *state;
    static const struct fault_case cases[] = {
        {"addps, CR4.OSFXSR clear", "\x0f\x58\xc1", 3, {0, 0, 0, CR4_OSFXSR}, 0, X86_EXC_UD},
        {"addps, CR0.EM", "\x0f\x58\xc1", 3, {CR0_EM, 0, 0, 0}, 0, X86_EXC_UD},
        {"addps, CR0.TS", "\x0f\x58\xc1", 3, {CR0_TS, 0, 0, 0}, 0, X86_EXC_NM},
        {"ldmxcsr, CR0.TS", "\x0f\xae\x17", 3, {CR0_TS, 0, 0, 0}, 0x1f80, X86_EXC_NM},
        {"fld1, CR0.TS", "\xd9\xe8", 2, {CR0_TS, 0, 0, 0}, 0, X86_EXC_NM},
        {"fld1, CR0.EM", "\xd9\xe8", 2, {CR0_EM, 0, 0, 0}, 0, X86_EXC_NM},
        {"fwait, CR0.TS+MP", "\x9b", 1, {CR0_TS, 0, 0, 0}, 0, X86_EXC_NM},
        {"fwait, CR0.TS without MP", "\x9b", 1, {CR0_TS, CR0_MP, 0, 0}, 0, -1},
        {"fxsave64, CR0.TS", "\x48\x0f\xae\x07", 4, {CR0_TS, 0, 0, 0}, 0, X86_EXC_NM},
        {"movaps misaligned", "\x0f\x28\x47\x08", 4, {0}, 0, X86_EXC_GP},
        {"movups misaligned", "\x0f\x10\x47\x08", 4, {0}, 0, -1},
        /* The moves and bitwise ops translated inline (HF_SSE): the same checks */
        {"movaps reg, CR0.TS", "\x0f\x28\xc1", 3, {CR0_TS, 0, 0, 0}, 0, X86_EXC_NM},
        {"pxor reg, CR0.EM", "\x66\x0f\xef\xc1", 4, {CR0_EM, 0, 0, 0}, 0, X86_EXC_UD},
        {"movq xmm, rax, CR4.OSFXSR clear",
         "\x66\x48\x0f\x6e\xc0",
         5,
         {0, 0, 0, CR4_OSFXSR},
         0,
         X86_EXC_UD},
        {"movdqa store misaligned", "\x66\x0f\x7f\x47\x08", 5, {0}, 0, X86_EXC_GP},
        {"pand m128 misaligned", "\x66\x0f\xdb\x47\x04", 5, {0}, 0, X86_EXC_GP},
        {"movdqu store misaligned", "\xf3\x0f\x7f\x47\x09", 5, {0}, 0, -1},
        {"movsd store misaligned", "\xf2\x0f\x11\x47\x03", 5, {0}, 0, -1},
        {"addps m128 misaligned", "\x0f\x58\x47\x04", 4, {0}, 0, X86_EXC_GP},
        {"pminub m128 misaligned", "\x66\x0f\xda\x47\x08", 5, {0}, 0, X86_EXC_GP},
        {"cvtps2pd m64 misaligned", "\x0f\x5a\x47\x04", 4, {0}, 0, -1},
        {"addss m32 misaligned", "\xf3\x0f\x58\x47\x01", 5, {0}, 0, -1},
        {"fxsave64 misaligned", "\x48\x0f\xae\x47\x08", 5, {0}, 0, X86_EXC_GP},
        {"fxrstor64 reserved MXCSR", "\x48\x0f\xae\x0f", 4, {0}, 0x10000, X86_EXC_GP},
        {"ldmxcsr reserved", "\x0f\xae\x17", 3, {0}, 0x10000, X86_EXC_GP},
        /* ldmxcsr [rdi] with ZM unmasked, then divss xmm0, xmm1 with xmm1 = 0 */
        {"divss unmasked ZE, OSXMMEXCPT",
         "\x0f\xae\x17\x0f\x57\xc9\xf3\x0f\x10\x47\x08\xf3\x0f\x5e\xc1",
         15,
         {0},
         0x1d80,
         X86_EXC_XM},
        {"divss unmasked ZE, no OSXMMEXCPT",
         "\x0f\xae\x17\x0f\x57\xc9\xf3\x0f\x10\x47\x08\xf3\x0f\x5e\xc1",
         15,
         {0, 0, 0, CR4_OSXMMEXCPT},
         0x1d80,
         X86_EXC_UD},
        {"divss masked ZE",
         "\x0f\xae\x17\x0f\x57\xc9\xf3\x0f\x10\x47\x08\xf3\x0f\x5e\xc1",
         15,
         {0},
         0x1f80,
         -1},
        {"pshufb (SSSE3)", "\x66\x0f\x38\x00\xc1", 5, {0}, 0, X86_EXC_UD},
        {"paddb mm", "\x0f\xfc\xc1", 3, {0}, 0, -1},
        {"paddb mm, CR0.EM", "\x0f\xfc\xc1", 3, {CR0_EM, 0, 0, 0}, 0, X86_EXC_UD},
        {"paddb mm, CR0.TS", "\x0f\xfc\xc1", 3, {CR0_TS, 0, 0, 0}, 0, X86_EXC_NM},
        {"emms, CR0.EM", "\x0f\x77", 2, {CR0_EM, 0, 0, 0}, 0, X86_EXC_UD},
        /* MMX and SSE's 64-bit integer forms need no CR4.OSFXSR; the XMM ones do */
        {"paddb mm, no OSFXSR", "\x0f\xfc\xc1", 3, {0, 0, 0, CR4_OSFXSR}, 0, -1},
        {"pavgb mm, no OSFXSR", "\x0f\xe0\xc1", 3, {0, 0, 0, CR4_OSFXSR}, 0, -1},
        {"pshufw, no OSFXSR", "\x0f\x70\xc1\x1b", 4, {0, 0, 0, CR4_OSFXSR}, 0, -1},
        {"paddq mm, no OSFXSR", "\x0f\xd4\xc1", 3, {0, 0, 0, CR4_OSFXSR}, 0, -1},
        {"pmuludq mm, no OSFXSR", "\x0f\xf4\xc1", 3, {0, 0, 0, CR4_OSFXSR}, 0, -1},
        {"maskmovq, no OSFXSR", "\x0f\xf7\xc1", 3, {0, 0, 0, CR4_OSFXSR}, 0, -1},
        {"cvtpi2ps xmm, mm, no OSFXSR", "\x0f\x2a\xc1", 3, {0, 0, 0, CR4_OSFXSR}, 0, X86_EXC_UD},
        {"movq2dq, no OSFXSR", "\xf3\x0f\xd6\xc1", 4, {0, 0, 0, CR4_OSFXSR}, 0, X86_EXC_UD},
        {"cvtpi2ps xmm, mm, CR0.TS", "\x0f\x2a\xc1", 3, {CR0_TS, 0, 0, 0}, 0, X86_EXC_NM},
        {"cvtpd2pi m128 misaligned", "\x66\x0f\x2d\x47\x08", 5, {0}, 0, X86_EXC_GP},
        {"cvtps2pi m64 misaligned", "\x0f\x2d\x47\x04", 4, {0}, 0, -1},
        {"pmovmskb with REX.W (rax)", "\x48\x0f\xd7\xc1", 4, {0}, 0, -1},
        {"haddps (SSE3)", "\xf2\x0f\x7c\xc1", 4, {0}, 0, X86_EXC_UD},
        /* fldcw [rdi] (ZM unmasked), fldz, fld1, fdivrp (1/0), fwait -> #MF */
        {"x87 unmasked ZE then fwait",
         "\xd9\x2f\xd9\xee\xd9\xe8\xde\xf1\x9b",
         9,
         {0},
         0x37b,
         X86_EXC_MF},
        {"x87 unmasked ZE then fnstsw",
         "\xd9\x2f\xd9\xee\xd9\xe8\xde\xf1\xdf\xe0",
         10,
         {0},
         0x37b,
         -1},
        /* ... then an MMX instruction: #MF first, unless it touches no MMX register (the
         * memory forms of CVTPI2PS/PD), as the host CPU does */
        {"x87 unmasked ZE then paddb mm", X87_ZE "\x0f\xfc\xc1", 11, {0}, 0x37b, X86_EXC_MF},
        {"x87 unmasked ZE then emms", X87_ZE "\x0f\x77", 10, {0}, 0x37b, X86_EXC_MF},
        {"x87 unmasked ZE then movd eax, mm0", X87_ZE "\x0f\x7e\xc0", 11, {0}, 0x37b, X86_EXC_MF},
        {"x87 unmasked ZE then cvtpi2pd xmm, mm",
         X87_ZE "\x66\x0f\x2a\xc1",
         12,
         {0},
         0x37b,
         X86_EXC_MF},
        {"x87 unmasked ZE then cvtps2pi mm, m64",
         X87_ZE "\x0f\x2d\x47\x08",
         12,
         {0},
         0x37b,
         X86_EXC_MF},
        {"x87 unmasked ZE then cvtpi2pd xmm, m64",
         X87_ZE "\x66\x0f\x2a\x47\x08",
         13,
         {0},
         0x37b,
         -1},
        {"x87 unmasked ZE then cvtpi2ps xmm, m64", X87_ZE "\x0f\x2a\x47\x08", 12, {0}, 0x37b, -1},
        {"x87 unmasked ZE then movq mm0, [rdi], CR0.NE clear",
         X87_ZE "\x0f\x6f\x07",
         11,
         {0, X86_CR0_NE, 0, 0},
         0x37b,
         -1},
    };
    for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct fault_case *c = &cases[i];
        uint8_t code[64], data[DATA_SIZE];
        memset(data, 0, sizeof(data));
        put32(data, c->data_at_0);
        put32(data + 24, c->data_at_0);
        put32f(data + 8, 1.0f);
        memcpy(code, c->code, c->len);
        memcpy(code + c->len, guest_done, sizeof(guest_done));
        int v = run_guest(f, code, c->len + sizeof(guest_done), CODE_ADDR + 0x80000 + i * 64ULL,
                          data, &c->mods);
        if (v != c->vector)
            fail_msg("%s: vector %d, expected %d", c->what, v, c->vector);
    }
}

/* What a faulting MMX instruction leaves of the x87 state (the host CPU does the same): a
 * memory fault comes before the switch to MMX state, an unmasked SIMD exception after it. */
static void test_mmx_fault_state(void **state)
{
    struct fx *f = *state;
    /* fld1; cvtpd2pi mm0, [rdi+8] (a misaligned m128) */
    static const uint8_t gp[] = {0xd9, 0xe8, 0x66, 0x0f, 0x2d, 0x47, 0x08};
    /* ldmxcsr [rdi] (IM unmasked); fld1; cvtps2pi mm0, [rdi+16] (a NaN) */
    static const uint8_t xm[] = {0x0f, 0xae, 0x17, 0xd9, 0xe8, 0x0f, 0x2d, 0x47, 0x10};
    uint8_t code[64], data[DATA_SIZE];
    const struct tcg_fpu *fpu = &f->vcpu->cpu.fpu;
    memset(data, 0, sizeof(data));
    memcpy(code, gp, sizeof(gp));
    memcpy(code + sizeof(gp), guest_done, sizeof(guest_done));
    assert_int_equal(run_guest(f, code, sizeof(gp) + sizeof(guest_done), CODE_ADDR + 0xb0000, data,
                               &(struct cr_mods){0}),
                     X86_EXC_GP);
    assert_int_equal(fpu->top, 7);
    assert_int_equal(fpu->ftw, 0x80);
    put32(data, 0x1f00);
    put32(data + 16, 0x7fc00000);
    memcpy(code, xm, sizeof(xm));
    memcpy(code + sizeof(xm), guest_done, sizeof(guest_done));
    assert_int_equal(run_guest(f, code, sizeof(xm) + sizeof(guest_done), CODE_ADDR + 0xb0100, data,
                               &(struct cr_mods){0}),
                     X86_EXC_XM);
    assert_int_equal(fpu->top, 0);
    assert_int_equal(fpu->ftw, 0xff);
    assert_int_equal(fpu->mxcsr & 1, 1); /* IE recorded */
}

/* FXSAVE image layout and FXRSTOR round trip, checked field by field. */
static void test_fxsave_layout(void **state)
{
    struct fx *f = *state;
    /* fld1; fldpi; ldmxcsr [rdi+0x200]; fxsave64 [rdi]; fninit; fxrstor64 [rdi];
     * fxsave64 [rdi+0x100]... (second image must equal the first) */
    static const uint8_t code[] = {0xd9, 0xe8, 0xd9, 0xeb, 0x0f, 0xae, 0x97, 0x00, 0x02, 0x00,
                                   0x00, 0x48, 0x0f, 0xae, 0x07, 0xdb, 0xe3, 0x48, 0x0f, 0xae,
                                   0x0f, 0x48, 0x0f, 0xae, 0x87, 0x00, 0x01, 0x00, 0x00};
    uint8_t buf[DATA_SIZE];
    struct tcg_cpu *cpu = &f->vcpu->cpu;
    tcg_fpu_reset(&cpu->fpu);
    uint8_t prog[64];
    memcpy(prog, code, sizeof(code));
    memcpy(prog + sizeof(code), guest_done, sizeof(guest_done));
    memset(buf, 0, sizeof(buf));
    /* MXCSR to load lives at +0x200, inside the block */
    put32(buf + 0x200, 0x3fa5);
    assert_int_equal(run_guest(f, prog, sizeof(code) + sizeof(guest_done), CODE_ADDR + 0xa0000, buf,
                               &(struct cr_mods){0}),
                     -1);
    uint16_t fcw, fsw;
    uint32_t mxcsr, mask;
    memcpy(&fcw, buf, 2), memcpy(&fsw, buf + 2, 2);
    memcpy(&mxcsr, buf + 24, 4), memcpy(&mask, buf + 28, 4);
    assert_int_equal(fcw, 0x37f);
    assert_int_equal((fsw >> 11) & 7, 6); /* two pushes */
    assert_int_equal(buf[4], 0xc0);       /* abridged tag: R6 and R7 */
    assert_int_equal(mxcsr, 0x3fa5);
    assert_int_equal(mask, 0xffff);
    long double st0 = 0, st1 = 0;
    memcpy(&st0, buf + 32, 10), memcpy(&st1, buf + 48, 10);
    assert_true(st0 == 3.14159265358979323846264338327950288L);
    assert_true(st1 == 1.0L);
    /* After FNINIT + FXRSTOR the state saves to the same image (bytes 0..0x100 vs the second). */
    assert_memory_equal(buf, buf + 0x100, 160);
    assert_int_equal(cpu->fpu.mxcsr, 0x3fa5);
    assert_int_equal(cpu->fpu.top, 6);
}

/* The same tests on each backend: both run the inline SSE forms (IR_FPOP) their own way. */
static int setup_native(void **state)
{
    return setup_backend(state, TCG_BACKEND_NATIVE);
}

static int setup_interp(void **state)
{
    return setup_backend(state, TCG_BACKEND_INTERP);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_differential),
        cmocka_unit_test(test_faults),
        cmocka_unit_test(test_mmx_fault_state),
        cmocka_unit_test(test_fxsave_layout),
    };
    /* Each group in a fresh process: FXAM of an empty register reads what earlier runs left
     * in it, on the host as in the guest, so both must start from the same history. */
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0)
        _exit(cmocka_run_group_tests_name("interpreter", tests, setup_interp, teardown));
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status))
        return 1;
    return cmocka_run_group_tests_name("native backend", tests, setup_native, teardown);
}
