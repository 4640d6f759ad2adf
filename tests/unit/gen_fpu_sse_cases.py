#!/usr/bin/python3
"""Regenerates the instruction bodies of test_fpu_sse.c: assembles each line with GNU as
(Intel syntax) and prints C initialisers. Run: tests/unit/gen_fpu_sse_cases.py > /tmp/cases.h"""
import subprocess, sys, tempfile, os

BODIES = [
    # SSE moves / shuffles / logic
    "movaps xmm0, xmm1", "movups xmm0, [rsi+1]", "movss xmm0, xmm1", "movss xmm0, [rsi]",
    "movsd xmm0, xmm2", "movsd xmm0, [rsi+8]", "movss [rsi+4], xmm1", "movsd [rsi+8], xmm1",
    "movlps xmm0, [rsi]", "movhps xmm0, [rsi]", "movlpd xmm0, [rsi]", "movhpd xmm0, [rsi+8]",
    "movhlps xmm0, xmm1", "movlhps xmm0, xmm1", "movlps [rsi], xmm1", "movhps [rsi], xmm1",
    "movd xmm0, eax", "movq xmm0, rax", "movd ecx, xmm1", "movq rcx, xmm1", "movd xmm0, [rsi]",
    "movq xmm0, xmm1", "movq xmm0, [rsi]", "movq [rsi], xmm1", "movdqa xmm0, [rsi]",
    "movdqu xmm0, [rsi+3]", "movntdq [rsi+16], xmm1", "movnti [rsi], rax", "movntps [rsi], xmm2",
    "movmskps eax, xmm0", "movmskpd eax, xmm1", "pmovmskb eax, xmm2",
    "unpcklps xmm0, xmm1", "unpckhps xmm0, xmm1", "unpcklpd xmm0, xmm1", "unpckhpd xmm0, [rsi]",
    "shufps xmm0, xmm1, 0x1b", "shufpd xmm0, xmm1, 2", "pshufd xmm0, xmm1, 0x4e",
    "pshufhw xmm0, xmm1, 0x1b", "pshuflw xmm0, xmm1, 0xb1",
    "andps xmm0, xmm1", "andnps xmm0, xmm1", "orpd xmm0, xmm1", "xorps xmm0, [rsi]",
    "pand xmm0, xmm1", "pandn xmm0, xmm1", "por xmm0, xmm1", "pxor xmm0, xmm1",
    # SSE FP arithmetic
    "addps xmm0, xmm1", "addss xmm0, xmm1", "addpd xmm0, xmm1", "addsd xmm0, xmm2",
    "subps xmm0, xmm1", "subss xmm0, xmm3", "subpd xmm0, xmm1", "subsd xmm0, xmm1",
    "mulps xmm0, xmm1", "mulss xmm0, xmm2", "mulpd xmm0, xmm1", "mulsd xmm0, xmm3",
    "divps xmm0, xmm1", "divss xmm0, xmm3", "divpd xmm0, xmm1", "divsd xmm0, xmm2",
    "minps xmm0, xmm1", "minss xmm0, xmm2", "minpd xmm0, xmm1", "minsd xmm0, xmm1",
    "maxps xmm0, xmm1", "maxss xmm0, xmm3", "maxpd xmm0, xmm1", "maxsd xmm0, xmm3",
    "sqrtps xmm0, xmm1", "sqrtss xmm0, xmm1", "sqrtpd xmm0, xmm1", "sqrtsd xmm0, xmm2",
    "addps xmm0, [rsi]", "mulsd xmm0, [rsi+8]",
    "cmpps xmm0, xmm1, 0", "cmpps xmm0, xmm1, 1", "cmpps xmm0, xmm1, 2", "cmpps xmm0, xmm1, 3",
    "cmpps xmm0, xmm1, 4", "cmpps xmm0, xmm1, 5", "cmpps xmm0, xmm1, 6", "cmpps xmm0, xmm1, 7",
    "cmpss xmm0, xmm1, 1", "cmppd xmm0, xmm1, 2", "cmpsd xmm0, xmm1, 6", "cmppd xmm0, xmm3, 3",
    "comiss xmm0, xmm1", "ucomiss xmm0, xmm1", "comisd xmm0, xmm1", "ucomisd xmm2, xmm3",
    "ucomiss xmm1, xmm1", "comisd xmm3, xmm0",
    # conversions
    "cvtsi2ss xmm0, eax", "cvtsi2ss xmm0, rax", "cvtsi2sd xmm0, ecx", "cvtsi2sd xmm0, rcx",
    "cvtsi2ss xmm0, rcx", "cvtsi2sd xmm1, dword ptr [rsi]",
    "cvtss2si eax, xmm0", "cvtss2si rax, xmm1", "cvttss2si eax, xmm1", "cvttss2si rax, xmm2",
    "cvtsd2si eax, xmm0", "cvtsd2si rax, xmm1", "cvttsd2si eax, xmm2", "cvttsd2si rcx, xmm3",
    "cvtss2si ecx, xmm3", "cvttsd2si eax, xmm1",
    # operands the translator knows as constants (the inline forms load them into registers)
    "mov eax, 7; cvtsi2sd xmm0, eax", "mov rcx, -3; cvtsi2ss xmm1, rcx",
    "mov rax, 0x400c000000000000; movq xmm1, rax; cvttsd2si ecx, xmm1; cvtsd2si rdx, xmm1",
    "mov rax, 0x3ff8000000000000; movq xmm1, rax; addsd xmm0, xmm1; ucomisd xmm0, xmm1; setb al; seta cl",
    "mov eax, 0x40400000; movd xmm2, eax; mulss xmm0, xmm2; comiss xmm2, xmm0; sbb eax, eax",
    # 3e9: beyond 32 bits (the 32-bit conversions give the indefinite integer and IE)
    "mov rax, 0x41e65a0bc0000000; movq xmm1, rax; cvttsd2si ecx, xmm1; cvtsd2si edx, xmm1",
    "mov eax, 0x4f32d05e; movd xmm2, eax; cvttss2si ecx, xmm2; cvtss2si edx, xmm2",
    "cvtps2pd xmm0, xmm1", "cvtpd2ps xmm0, xmm1", "cvtss2sd xmm0, xmm1", "cvtsd2ss xmm0, xmm1",
    "cvtps2pd xmm0, xmm2", "cvtpd2ps xmm0, xmm3", "cvtsd2ss xmm0, xmm2",
    "cvtdq2ps xmm0, xmm1", "cvtps2dq xmm0, xmm1", "cvttps2dq xmm0, xmm1", "cvtps2dq xmm0, xmm2",
    "cvtdq2pd xmm0, xmm1", "cvtpd2dq xmm0, xmm1", "cvttpd2dq xmm0, xmm1", "cvtpd2dq xmm0, xmm3",
    # integer SIMD
    "punpcklbw xmm0, xmm1", "punpcklwd xmm0, xmm1", "punpckldq xmm0, xmm1",
    "punpcklqdq xmm0, xmm1", "punpckhbw xmm0, xmm1", "punpckhwd xmm0, xmm1",
    "punpckhdq xmm0, xmm1", "punpckhqdq xmm0, xmm1", "packsswb xmm0, xmm1",
    "packssdw xmm0, xmm1", "packuswb xmm0, xmm1",
    "paddb xmm0, xmm1", "paddw xmm0, xmm1", "paddd xmm0, xmm1", "paddq xmm0, xmm1",
    "psubb xmm0, xmm1", "psubw xmm0, xmm1", "psubd xmm0, xmm1", "psubq xmm0, xmm1",
    "paddsb xmm0, xmm1", "paddsw xmm0, xmm1", "paddusb xmm0, xmm1", "paddusw xmm0, xmm1",
    "psubsb xmm0, xmm1", "psubsw xmm0, xmm1", "psubusb xmm0, xmm1", "psubusw xmm0, xmm1",
    "pmullw xmm0, xmm1", "pmulhw xmm0, xmm1", "pmulhuw xmm0, xmm1", "pmuludq xmm0, xmm1",
    "pmaddwd xmm0, xmm1", "pcmpeqb xmm0, xmm1", "pcmpeqw xmm0, xmm0", "pcmpeqd xmm0, xmm1",
    "pcmpgtb xmm0, xmm1", "pcmpgtw xmm0, xmm1", "pcmpgtd xmm0, xmm1",
    "pminub xmm0, xmm1", "pmaxub xmm0, xmm1", "pminsw xmm0, xmm1", "pmaxsw xmm0, xmm1",
    "pavgb xmm0, xmm1", "pavgw xmm0, xmm1", "psadbw xmm0, xmm1",
    "psllw xmm0, xmm2", "pslld xmm0, xmm2", "psllq xmm0, xmm2", "psrlw xmm0, xmm2",
    "psrld xmm0, xmm2", "psrlq xmm0, xmm2", "psraw xmm0, xmm2", "psrad xmm0, xmm2",
    "psllw xmm0, 3", "pslld xmm0, 31", "psllq xmm0, 17", "psrlw xmm0, 16", "psrld xmm0, 5",
    "psrlq xmm0, 63", "psraw xmm0, 15", "psrad xmm0, 40", "pslldq xmm0, 5", "psrldq xmm0, 11",
    "pextrw eax, xmm1, 5", "pinsrw xmm0, ecx, 3", "pinsrw xmm0, [rsi], 6", "paddd xmm0, [rsi]",
    "maskmovdqu xmm1, xmm2",
    # x87 (operands from memory at rsi: f64 at +0/+8, f32 at +16, i32 +20, i16 +24, i64 +32,
    # f80 +48; results stored at +64..)
    "fld qword ptr [rsi]; fadd qword ptr [rsi+8]; fstp qword ptr [rsi+64]",
    "fld qword ptr [rsi]; fld dword ptr [rsi+16]; fsubp st(1), st; fstp tbyte ptr [rsi+64]",
    "fld qword ptr [rsi]; fld qword ptr [rsi+8]; fsubrp st(1), st; fstp qword ptr [rsi+64]",
    "fld qword ptr [rsi]; fmul qword ptr [rsi+8]; fstp tbyte ptr [rsi+64]",
    "fld qword ptr [rsi]; fdiv qword ptr [rsi+8]; fstp tbyte ptr [rsi+64]",
    "fld qword ptr [rsi]; fdivr dword ptr [rsi+16]; fstp tbyte ptr [rsi+64]",
    "fld qword ptr [rsi+8]; fld qword ptr [rsi]; fdivp st(1), st; fstp tbyte ptr [rsi+64]",
    "fld qword ptr [rsi+8]; fld qword ptr [rsi]; fdivrp st(1), st; fstp tbyte ptr [rsi+64]",
    "fild dword ptr [rsi+20]; fiadd word ptr [rsi+24]; fimul dword ptr [rsi+20]; fistp qword ptr [rsi+64]",
    "fild qword ptr [rsi+32]; fstp tbyte ptr [rsi+64]; fild word ptr [rsi+24]; fstp dword ptr [rsi+80]",
    "fld qword ptr [rsi]; fistp dword ptr [rsi+64]; fld qword ptr [rsi+8]; fistp word ptr [rsi+68]",
    "fld qword ptr [rsi]; fisttp dword ptr [rsi+64]; fld qword ptr [rsi+8]; fisttp qword ptr [rsi+72]",
    "fld qword ptr [rsi]; fist dword ptr [rsi+64]; fstp st(0)",
    "fld1; fldz; fldpi; fldl2e; fldl2t; fldlg2; fldln2; fstp tbyte ptr [rsi+64]; fstp tbyte ptr [rsi+80]; fstp tbyte ptr [rsi+96]; fstp tbyte ptr [rsi+112]; fcompp; fstp st(0); fnstsw ax",
    "fld tbyte ptr [rsi+48]; fchs; fabs; fsqrt; fstp tbyte ptr [rsi+64]",
    "fld qword ptr [rsi]; frndint; fstp qword ptr [rsi+64]",
    "fld qword ptr [rsi+8]; fld qword ptr [rsi]; fscale; fstp tbyte ptr [rsi+64]; fstp st(0)",
    "fld qword ptr [rsi]; fxtract; fstp tbyte ptr [rsi+64]; fstp tbyte ptr [rsi+80]",
    "fld qword ptr [rsi+8]; fld qword ptr [rsi]; fprem; fnstsw ax; fstp tbyte ptr [rsi+64]; fstp st(0)",
    "fld qword ptr [rsi+8]; fld qword ptr [rsi]; fprem1; fnstsw ax; fstp tbyte ptr [rsi+64]; fstp st(0)",
    "fld qword ptr [rsi]; fcom qword ptr [rsi+8]; fnstsw ax; fstp st(0)",
    "fld qword ptr [rsi]; fld qword ptr [rsi+8]; fcomp st(1); fnstsw ax; fstp st(0)",
    "fld qword ptr [rsi]; fld qword ptr [rsi+8]; fucompp; fnstsw ax",
    "fld qword ptr [rsi]; fld qword ptr [rsi+8]; fcomi st, st(1); fstp st(0); fstp st(0)",
    "fld qword ptr [rsi]; fld qword ptr [rsi+8]; fucomip st, st(1); fstp st(0)",
    "fld qword ptr [rsi]; fld qword ptr [rsi+8]; fcomip st, st(1); fstp st(0)",
    "fld qword ptr [rsi]; ftst; fnstsw ax; fstp st(0)",
    "fld qword ptr [rsi]; fxam; fnstsw ax; fstp st(0)",
    "fxam; fnstsw ax",
    "fld qword ptr [rsi]; fld qword ptr [rsi+8]; fxch st(1); fstp qword ptr [rsi+64]; fstp qword ptr [rsi+72]",
    "fld qword ptr [rsi]; fld qword ptr [rsi+8]; cmp eax, ecx; fcmovb st, st(1); fcmovnbe st, st(1); fstp qword ptr [rsi+64]; fstp st(0)",
    "fld qword ptr [rsi]; fld qword ptr [rsi+8]; cmp eax, ecx; fcmove st, st(1); fcmovnu st, st(1); fstp qword ptr [rsi+64]; fstp st(0)",
    "fnstcw [rsi+64]; mov word ptr [rsi+66], 0x0f7f; fldcw [rsi+66]; fld qword ptr [rsi]; fistp qword ptr [rsi+72]; fld qword ptr [rsi]; fadd qword ptr [rsi+8]; fstp dword ptr [rsi+80]; fldcw [rsi+64]",
    "fnstcw [rsi+64]; mov word ptr [rsi+66], 0x077f; fldcw [rsi+66]; fld qword ptr [rsi]; fistp dword ptr [rsi+72]; fld qword ptr [rsi]; fdiv qword ptr [rsi+8]; fstp qword ptr [rsi+80]; fldcw [rsi+64]",
    "fld1; fld qword ptr [rsi]; fincstp; fdecstp; fstp qword ptr [rsi+64]; ffree st(0); fincstp; fnstsw ax; fnclex",
    "fld qword ptr [rsi]; fld qword ptr [rsi+8]; fnstenv [rsi+64]; fldenv [rsi+64]; fstp st(0); fstp st(0); fnstsw ax",
    "fld1; fld qword ptr [rsi]; fnsave [rsi+16]; fld qword ptr [rsi+8]; frstor [rsi+16]; fstp tbyte ptr [rsi+128]; fstp st(0); fnstsw ax",
    "fld qword ptr [rsi]; fst st(3); fstp st(0); fincstp; fincstp; fstp qword ptr [rsi+64]; fdecstp; fdecstp; fdecstp; fnstsw ax; fninit",
    "fld qword ptr [rsi]; fsin; fstp qword ptr [rsi+64]; fld qword ptr [rsi]; fcos; fstp qword ptr [rsi+72]",
    "fld qword ptr [rsi]; fsincos; fstp qword ptr [rsi+64]; fstp qword ptr [rsi+72]; fld qword ptr [rsi]; fptan; fstp st(0); fstp qword ptr [rsi+80]",
    "fld qword ptr [rsi+8]; fld qword ptr [rsi]; fpatan; fstp qword ptr [rsi+64]; fld1; fld qword ptr [rsi]; fyl2x; fstp qword ptr [rsi+72]",
    "fld tbyte ptr [rsi+48]; fbstp tbyte ptr [rsi+64]; fbld tbyte ptr [rsi+64]; fistp qword ptr [rsi+80]",
    "fld qword ptr [rsi]; fld st(0); fmul st, st(1); fadd st(1), st; fsubr st(1), st; fdivr st(1), st; fstp tbyte ptr [rsi+64]; fstp tbyte ptr [rsi+80]",
    "fld qword ptr [rsi]; fst dword ptr [rsi+64]; fst qword ptr [rsi+72]; fstp qword ptr [rsi+80]",
    "fxsave64 [rsi+128]; fxrstor64 [rsi+128]",
    "stmxcsr [rsi+64]; mov dword ptr [rsi+68], 0x9fc0; ldmxcsr [rsi+68]; addps xmm0, xmm1; cvtps2dq xmm2, xmm1; stmxcsr [rsi+72]; ldmxcsr [rsi+64]",
    "stmxcsr [rsi+64]; mov dword ptr [rsi+68], 0x3f80; ldmxcsr [rsi+68]; addpd xmm0, xmm1; cvtsd2si rax, xmm1; cvtpd2ps xmm2, xmm3; ldmxcsr [rsi+64]",
    "fld qword ptr [rsi]; fld1; fxsave64 [rsi+128]; fstp st(0); fstp st(0)",
    "fwait",
]

# MMX: operands at [rsi+0x100] and [rsi+0x108] (saturation edges per input set), a shift
# count at [rsi+0x118]; results to [rsi+64] (and rax/rcx), the x87 view through FXSAVE/FNSAVE.
MM_LOAD = "movq mm0, [rsi+0x100]; movq mm1, [rsi+0x108]; "
MM_ALL = "; ".join("movq mm%d, [rsi+0x%x]" % (i, 0x100 + 8 * i) for i in range(8)) + "; "
BODIES += [MM_LOAD + op + " mm0, mm1; movq [rsi+64], mm0" for op in [
    "paddb", "paddw", "paddd", "paddq", "paddsb", "paddsw", "paddusb", "paddusw",
    "psubb", "psubw", "psubd", "psubq", "psubsb", "psubsw", "psubusb", "psubusw",
    "pmullw", "pmulhw", "pmulhuw", "pmuludq", "pmaddwd",
    "pcmpeqb", "pcmpeqw", "pcmpeqd", "pcmpgtb", "pcmpgtw", "pcmpgtd",
    "pand", "pandn", "por", "pxor", "packsswb", "packssdw", "packuswb",
    "punpcklbw", "punpcklwd", "punpckldq", "punpckhbw", "punpckhwd", "punpckhdq",
    "pavgb", "pavgw", "pmaxub", "pminub", "pmaxsw", "pminsw", "psadbw"]]
BODIES += ["movq mm0, [rsi+0x100]; movq mm1, [rsi+0x118]; " + op + " mm0, mm1; movq [rsi+64], mm0"
           for op in ["psllw", "pslld", "psllq", "psrlw", "psrld", "psrlq", "psraw", "psrad"]]
BODIES += ["movq mm3, [rsi+0x100]; " + op + "; movq [rsi+64], mm3" for op in [
    "psllw mm3, 3", "psllw mm3, 16", "pslld mm3, 31", "psllq mm3, 64", "psrlw mm3, 15",
    "psrld mm3, 40", "psrlq mm3, 63", "psraw mm3, 200", "psrad mm3, 31", "psrad mm3, 32",
    "psrlq mm3, [rsi+0x118]", "psraw mm3, [rsi+0x118]"]]
BODIES += [
    "movq mm0, [rsi+0x100]; paddsw mm0, [rsi+0x108]; psubusb mm0, [rsi+0x110]; movq rax, mm0",
    "movq mm0, [rsi+0x100]; punpcklbw mm0, dword ptr [rsi+0x108]; movq [rsi+64], mm0",
    "movq mm0, [rsi+0x100]; punpckhdq mm0, [rsi+0x108]; movq [rsi+64], mm0",
    "movq mm0, [rsi+0x100]; packssdw mm0, mm0; movq [rsi+64], mm0",
    "movd mm0, eax; movq [rsi+64], mm0; movq mm1, rcx; movq [rsi+72], mm1",
    "movd mm1, [rsi+0x100]; movq rax, mm1; movd ecx, mm1",
    "movq mm2, [rsi+0x100]; movd [rsi+64], mm2; rex64 movd [rsi+72], mm2",
    "movq mm3, [rsi+0x100]; movq mm4, mm3; {store} movq mm6, mm3; movq rax, mm4; movq rcx, mm6",
    "movq mm5, [rsi+0x100]; movntq [rsi+64], mm5; {store} movq [rsi+72], mm5",
    "movq mm1, [rsi+0x100]; pshufw mm0, mm1, 0x1b; pshufw mm2, [rsi+0x108], 0xb1; movq rax, mm0; movq rcx, mm2",
    "movq mm0, [rsi+0x100]; pinsrw mm0, ecx, 2; pinsrw mm0, [rsi+0x110], 3; movq rax, mm0",
    "movq mm1, [rsi+0x108]; pextrw eax, mm1, 3; pextrw ecx, mm1, 4",
    "movq mm0, [rsi+0x100]; pmovmskb eax, mm0; pmovmskb rcx, mm0",
    "push rdi; lea rdi, [rsi+64]; " + MM_LOAD + "maskmovq mm0, mm1; pop rdi",
    "movq mm0, [rsi+0x100]; cvtpi2ps xmm0, mm0; cvtpi2ps xmm1, [rsi+0x108]",
    "movq mm0, [rsi+0x100]; cvtpi2pd xmm0, mm0; cvtpi2pd xmm1, [rsi+0x108]",
    "cvtps2pi mm0, xmm0; cvttps2pi mm1, xmm1; cvtps2pi mm2, [rsi+8]; movq rax, mm0; movq rcx, mm1; movq [rsi+64], mm2",
    "cvtpd2pi mm0, xmm1; cvttpd2pi mm1, xmm2; cvttpd2pi mm2, [rsi+16]; movq rax, mm0; movq rcx, mm1; movq [rsi+64], mm2",
    "movq mm0, [rsi+0x100]; movq2dq xmm3, mm0; movdq2q mm1, xmm1; movq rax, mm1",
    # the x87 view of MMX state
    MM_ALL + "paddb mm0, mm1; fxsave64 [rsi+128]",
    "fld1; fldpi; " + "; ".join("movq mm%d, [rsi+0x%x]" % (i, 0x100 + 8 * i) for i in range(6)) + "; fxsave64 [rsi+128]",
    MM_ALL + "emms; fxsave64 [rsi+128]",
    MM_ALL + "fxsave64 [rsi+128]; fninit; fxrstor64 [rsi+128]; movq rax, mm3; movq rcx, mm7; fnstsw ax",
    MM_ALL + "fnsave [rsi+16]; frstor [rsi+16]; movq rax, mm5; fnstsw ax",
    "movq mm0, [rsi+0x100]; emms; fld qword ptr [rsi]; fstp qword ptr [rsi+64]; fnstsw ax",
    "movq mm0, [rsi+0x100]; fld qword ptr [rsi]; fnstsw ax; fstp qword ptr [rsi+64]",
    "movq mm0, [rsi+0x100]; fstp tbyte ptr [rsi+64]; fnstsw ax",
    "movq mm0, [rsi+0x100]; fst qword ptr [rsi+64]; fnstsw ax; fninit",
    "fninit; fld qword ptr [rsi]; fldpi; movq rax, mm7; movq rcx, mm6; fninit",
    "fld1; cvtpi2ps xmm0, [rsi+0x100]; fnstsw ax; fninit",
    "fld1; cvtpi2pd xmm0, [rsi+0x100]; fnstsw ax; fninit",
    "fld1; fld1; cvtpi2pd xmm0, mm7; fnstsw ax; fninit",
]

def assemble(text):
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "a.s")
        with open(src, "w") as f:
            f.write(".intel_syntax noprefix\n.text\n" + text.replace("; ", "\n") + "\n")
        subprocess.run(["as", "--64", "-o", os.path.join(d, "a.o"), src], check=True)
        subprocess.run(["objcopy", "-O", "binary", "-j", ".text", os.path.join(d, "a.o"),
                        os.path.join(d, "a.bin")], check=True)
        return open(os.path.join(d, "a.bin"), "rb").read()

for body in BODIES:
    b = assemble(body)
    print('    {"%s", %d, "%s"},' % (body, len(b), "".join("\\x%02x" % c for c in b)))
