/* The GDB remote protocol (vm/gdb_proto.c) against a fake target: framing and checksums,
 * escapes, bounds, the commands gdb sends, and malformed input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "gdb_fake_target.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct fake_target *t;
static struct gdb_session s;

static int setup(void **state)
{
    (void)state;
    t = calloc(1, sizeof(*t));
    gdb_session_init(&s, &fake_target_ops, t);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    free(t);
    return 0;
}

/* Send one framed packet; returns the reply's payload (after "+$", without "#cs"). */
static const char *ask(const char *payload)
{
    char frame[2 * GDB_MAX_PACKET + 8];
    size_t n = gdb_frame(frame, sizeof(frame), payload, strlen(payload));
    assert_true(n > 0);
    t->out_len = 0;
    t->out[0] = '\0';
    gdb_session_input(&s, (const uint8_t *)frame, n);
    static char reply[2 * GDB_MAX_PACKET];
    const char *dollar = strchr(t->out, '$'), *hash = strrchr(t->out, '#');
    if (!dollar || !hash || hash < dollar)
        return NULL;
    /* The reply's checksum is right. */
    unsigned sum = 0;
    for (const char *p = dollar + 1; p < hash; p++)
        sum += (uint8_t)*p;
    char cs[3];
    snprintf(cs, sizeof(cs), "%02x", sum & 0xff);
    assert_memory_equal(hash + 1, cs, 2);
    memcpy(reply, dollar + 1, (size_t)(hash - dollar - 1));
    reply[hash - dollar - 1] = '\0';
    return reply;
}

static void test_framing_checksums(void **state)
{
    (void)state;
    char frame[64];
    assert_int_equal(gdb_frame(frame, sizeof(frame), "OK", 2), 6);
    assert_memory_equal(frame, "$OK#9a", 6);
    /* '#', '$', '}' and '*' are escaped. */
    size_t n = gdb_frame(frame, sizeof(frame), "a#b", 3);
    assert_int_equal(n, 8);
    assert_memory_equal(frame,
                        "$a}\x03"
                        "b#",
                        6);
    assert_int_equal(gdb_frame(frame, 5, "OK", 2), 0); /* does not fit */

    struct gdb_framer f;
    gdb_framer_init(&f);
    const char *good = "$m1000,4#5c"; /* sum of "m1000,4" */
    unsigned sum = 0;
    for (const char *p = "m1000,4"; *p; p++)
        sum += (uint8_t)*p;
    char pkt[32];
    snprintf(pkt, sizeof(pkt), "$m1000,4#%02x", sum & 0xff);
    (void)good;
    enum gdb_frame_event ev = GDB_FRAME_NONE;
    for (const char *p = pkt; *p; p++)
        ev = gdb_framer_push(&f, (uint8_t)*p);
    assert_int_equal(ev, GDB_FRAME_PACKET);
    assert_string_equal(f.buf, "m1000,4");
    /* A wrong checksum, a non-hex checksum. */
    pkt[strlen(pkt) - 1] ^= 1;
    for (const char *p = pkt; *p; p++)
        ev = gdb_framer_push(&f, (uint8_t)*p);
    assert_int_equal(ev, GDB_FRAME_BAD);
    bool bad = false;
    for (const char *p = "$g#zz"; *p; p++)
        bad |= gdb_framer_push(&f, (uint8_t)*p) == GDB_FRAME_BAD;
    assert_true(bad);
    /* 0x03 between packets is an interrupt; inside one it is data. */
    assert_int_equal(gdb_framer_push(&f, 0x03), GDB_FRAME_INTERRUPT);
    /* An escaped byte inside a packet. */
    unsigned esum = '}' + ('#' ^ 0x20) + 'x';
    snprintf(pkt, sizeof(pkt), "$}%cx#%02x", '#' ^ 0x20, esum & 0xff);
    for (const char *p = pkt; *p; p++)
        ev = gdb_framer_push(&f, (uint8_t)*p);
    assert_int_equal(ev, GDB_FRAME_PACKET);
    assert_int_equal(f.len, 2);
    assert_memory_equal(f.buf, "#x", 2);
}

static void test_overlong_packet_is_refused(void **state)
{
    (void)state;
    struct gdb_framer f;
    gdb_framer_init(&f);
    enum gdb_frame_event ev = gdb_framer_push(&f, '$');
    unsigned sum = 0;
    for (unsigned i = 0; i < GDB_MAX_PACKET + 100; i++) {
        ev = gdb_framer_push(&f, 'a');
        sum += 'a';
        assert_true(f.len <= GDB_MAX_PACKET);
    }
    char cs[3];
    snprintf(cs, sizeof(cs), "%02x", sum & 0xff);
    gdb_framer_push(&f, '#');
    gdb_framer_push(&f, (uint8_t)cs[0]);
    ev = gdb_framer_push(&f, (uint8_t)cs[1]);
    assert_int_equal(ev, GDB_FRAME_BAD);
}

static void test_queries_and_threads(void **state)
{
    (void)state;
    assert_non_null(strstr(ask("qSupported:multiprocess+"), "PacketSize=1000"));
    assert_string_equal(ask("?"), "T05thread:1;");
    assert_string_equal(ask("qfThreadInfo"), "m1,2");
    assert_string_equal(ask("qsThreadInfo"), "l");
    assert_string_equal(ask("Hg2"), "OK");
    assert_string_equal(ask("qC"), "QC2");
    assert_string_equal(ask("Hg3"), "E22");
    assert_string_equal(ask("Hc-1"), "OK");
    assert_string_equal(ask("Hgzz"), "E22");
    assert_string_equal(ask("T1"), "OK");
    assert_string_equal(ask("T9"), "E22");
    assert_string_equal(ask("vMustReplyEmpty"), "");
    assert_string_equal(ask("vCont?"), "vCont;c;C;s;S");
    const char *x = ask("qXfer:features:read:target.xml:0,20");
    assert_true(x[0] == 'm' && strlen(x) == 0x21);
    assert_string_equal(ask("qXfer:features:read:other.xml:0,20"), "E00");
    assert_string_equal(ask("qXfer:features:read:target.xml:100000,20"), "l");
    assert_string_equal(ask("qXfer:features:read:target.xml:0"), "E01");
}

static void test_registers(void **state)
{
    (void)state;
    t->regs[0].gpr[GPR_RBX] = 0x1122334455667788ULL;
    t->regs[0].rip = 0xffffffff81000000ULL;
    t->regs[0].seg[SEG_CS].selector = 0x10;
    t->regs[0].cr3 = 0x1234000;
    const char *g = ask("g");
    assert_int_equal(strlen(g), 2 * GDB_REGS_BYTES);
    assert_memory_equal(g + 16, "8877665544332211", 16); /* rbx is gdb's second */
    assert_memory_equal(g + 256, "00000081ffffffff", 16);
    assert_memory_equal(g + 280, "10000000", 8);              /* cs, after eflags */
    assert_memory_equal(g + 328, "00000000000000000000", 20); /* st0 */
    assert_string_equal(ask("p10"), "00000081ffffffff");
    assert_string_equal(ask("p3d"), "0040230100000000"); /* cr3 */
    assert_string_equal(ask("p18"), "00000000000000000000");
    assert_string_equal(ask("p41"), "E01");
    assert_string_equal(ask("P10=0010000000000000"), "OK");
    assert_int_equal(t->regs[0].rip, 0x1000);
    assert_string_equal(ask("P10=00"), "E01");
    assert_string_equal(ask("P0=zz00000000000000"), "E01");
    /* G round trip; a short one is refused. */
    char G[2 * GDB_REGS_BYTES + 2];
    G[0] = 'G';
    memcpy(G + 1, ask("g"), 2 * GDB_REGS_BYTES + 1);
    memcpy(G + 1, "0100000000000000", 16); /* rax */
    assert_string_equal(ask(G), "OK");
    assert_int_equal(t->regs[0].gpr[GPR_RAX], 1);
    assert_int_equal(t->regs[0].rip, 0x1000);
    G[100] = '\0';
    assert_string_equal(ask(G), "E01");
}

/* gdb's amd64 numbering: st0-st7 24-31 (10 bytes), fctrl..fop 32-39, xmm0-15 40-55, mxcsr 56;
 * in the 'g' block st0 starts at byte 164, fctrl at 244, xmm0 at 276, mxcsr at 532. */
static void test_fpu_registers(void **state)
{
    (void)state;
    struct vcpu_fpu *f = &t->fpu[0];
    /* ST(0) = 1.0 (exponent 0x3fff, integer bit), ST(1) = 0; TOP = 6: ST(0) is physical 6,
     * ST(1) physical 7, both in use; the rest empty. */
    const uint8_t one[10] = {0, 0, 0, 0, 0, 0, 0, 0x80, 0xff, 0x3f};
    memcpy(f->st[0], one, 10);
    f->fcw = 0x037f;
    f->fsw = 6 << 11;
    f->ftw = 0xc0;
    f->fop = 0x123;
    f->fip = 0x1122334455667788ULL;
    f->mxcsr = 0x1fa0; /* PE set, all masked */
    for (unsigned i = 0; i < 16; i++)
        f->xmm[1][i] = (uint8_t)(0xa0 + i);
    const char *g = ask("g");
    assert_memory_equal(g + 2 * 164, "0000000000000080ff3f", 20);
    assert_memory_equal(g + 2 * 174, "00000000000000000000", 20);
    assert_memory_equal(g + 2 * 244, "7f030000", 8); /* fctrl */
    assert_memory_equal(g + 2 * 248, "00300000", 8); /* fstat: TOP 6 */
    /* ftag: physical 6 valid (00), physical 7 zero (01), the others empty (11): 0x4fff */
    assert_memory_equal(g + 2 * 252, "ff4f0000", 8);
    assert_memory_equal(g + 2 * 260, "88776655", 8); /* fioff: FIP's low half */
    assert_memory_equal(g + 2 * 272, "23010000", 8); /* fop */
    assert_memory_equal(g + 2 * 292, "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf", 32); /* xmm1 */
    assert_memory_equal(g + 2 * 532, "a01f0000", 8);                          /* mxcsr */
    assert_string_equal(ask("p18"), "0000000000000080ff3f");
    assert_string_equal(ask("p22"), "ff4f0000");
    assert_string_equal(ask("p29"), "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf");
    assert_string_equal(ask("p38"), "a01f0000");
    /* Writes: st1 = 2.0, xmm2, mxcsr; a tag word marking only physical 6 in use. */
    assert_string_equal(ask("P19=00000000000000800040"), "OK");
    assert_int_equal(f->st[1][9], 0x40);
    assert_string_equal(ask("P2a=0102030405060708090a0b0c0d0e0f10"), "OK");
    assert_int_equal(f->xmm[2][0], 1);
    assert_int_equal(f->xmm[2][15], 0x10);
    assert_string_equal(ask("P38=807f0000"), "OK");
    assert_int_equal(f->mxcsr, 0x7f80);
    assert_string_equal(ask("P22=ffcf0000"), "OK");
    assert_int_equal(f->ftw, 0x40);
    assert_string_equal(ask("P38=00000100"), "E01"); /* reserved MXCSR bits: refused */
    assert_int_equal(f->mxcsr, 0x7f80);
    /* G: the FPU part goes back too; 'x' (unavailable) leaves a register alone. */
    char G[2 * GDB_REGS_BYTES + 2];
    G[0] = 'G';
    memcpy(G + 1, ask("g"), 2 * GDB_REGS_BYTES + 1);
    memcpy(G + 1 + 2 * 532, "801f0000", 8);
    memset(G + 1 + 2 * 276, 'x', 32); /* xmm0 */
    t->fpu[0].xmm[0][0] = 0x55;
    assert_string_equal(ask(G), "OK");
    assert_int_equal(f->mxcsr, 0x1f80);
    assert_int_equal(f->xmm[0][0], 0x55);
    /* A target without FPU state: unavailable ('x'), not writable. */
    t->no_fpu = true;
    assert_string_equal(ask("p18"), "xxxxxxxxxxxxxxxxxxxx");
    assert_string_equal(ask("p38"), "xxxxxxxx");
    assert_string_equal(ask("P38=801f0000"), "E01");
    assert_string_equal(ask("p10"), "0000000000000000"); /* the rest still answers */
}

/* The target description has gdb's i386 core and SSE features in gdb's numbering. */
static void test_target_xml(void **state)
{
    (void)state;
    static char xml[16384];
    size_t len = 0;
    for (;;) {
        char q[64];
        snprintf(q, sizeof(q), "qXfer:features:read:target.xml:%zx,400", len);
        const char *r = ask(q);
        assert_true(r[0] == 'm' || r[0] == 'l');
        size_t n = strlen(r + 1);
        assert_true(len + n < sizeof(xml));
        memcpy(xml + len, r + 1, n);
        len += n;
        if (r[0] == 'l')
            break;
    }
    xml[len] = '\0';
    /* Registers in order: the n-th <reg is gdb's register n. */
    static const char *const names[] = {"rax", "rip",  "eflags", "gs",    "st0",     "st7", "fctrl",
                                        "fop", "xmm0", "xmm15",  "mxcsr", "fs_base", "efer"};
    static const unsigned numbers[] = {0, 16, 17, 23, 24, 31, 32, 39, 40, 55, 56, 57, 64};
    for (unsigned i = 0; i < sizeof(numbers) / sizeof(numbers[0]); i++) {
        char want[32];
        snprintf(want, sizeof(want), "<reg name=\"%s\"", names[i]);
        const char *at = strstr(xml, want);
        assert_non_null(at);
        unsigned n = 0;
        for (const char *p = xml; (p = strstr(p, "<reg ")) && p < at; p++)
            n++;
        assert_int_equal(n, numbers[i]);
    }
    assert_non_null(strstr(xml, "<feature name=\"org.gnu.gdb.i386.core\">"));
    assert_non_null(strstr(xml, "<feature name=\"org.gnu.gdb.i386.sse\">"));
    assert_non_null(strstr(xml, "<reg name=\"st0\" bitsize=\"80\" type=\"i387_ext\"/>"));
    assert_non_null(strstr(xml, "<reg name=\"ftag\" bitsize=\"32\" type=\"int\" "
                                "group=\"float\"/>"));
    assert_non_null(strstr(xml, "<reg name=\"xmm1\" bitsize=\"128\" type=\"vec128\"/>"));
    assert_non_null(strstr(xml, "<reg name=\"mxcsr\" bitsize=\"32\" type=\"i386_mxcsr\" "
                                "group=\"vector\"/>"));
}

static void test_memory(void **state)
{
    (void)state;
    t->mem[0] = 0xde;
    t->mem[1] = 0xad;
    assert_string_equal(ask("m1000,2"), "dead");
    assert_string_equal(ask("m0,4"), "E14"); /* unmapped */
    assert_string_equal(ask("mffffffffffffffff,4"), "E14");
    assert_string_equal(ask("m10ffe,4"), "0000"); /* partial: up to the end */
    assert_string_equal(ask("m1000"), "E01");
    assert_string_equal(ask("m1000,"), "E01");
    assert_string_equal(ask("m11112222333344445,1"), "E01"); /* over 16 digits */
    assert_int_equal(strlen(ask("m1000,ffffffff")), 2 * ((GDB_MAX_PACKET - 1) / 2));
    assert_string_equal(ask("M1004,2:beef"), "OK");
    assert_int_equal(t->mem[4], 0xbe);
    assert_string_equal(ask("M1004,2:be"), "E01");
    assert_string_equal(ask("M1004,2:beeg"), "E01");
    assert_string_equal(ask("M0,1:00"), "E14");
    assert_string_equal(ask("X1008,2:\x01\x02"), "OK");
    assert_int_equal(t->mem[9], 2);
    assert_string_equal(ask("X1008,3:\x01\x02"), "E01");
}

static void test_breakpoints_and_running(void **state)
{
    (void)state;
    assert_string_equal(ask("Z0,ffffffff81000000,1"), "OK");
    assert_string_equal(ask("Z1,ffffffff81000010,1"), "OK");
    assert_string_equal(ask("Z0,ffffffff81000000,1"), "OK"); /* twice: kept once */
    assert_int_equal(t->dbg.nr_breakpoints, 2);
    assert_string_equal(ask("z0,ffffffff81000000,1"), "OK");
    assert_int_equal(t->dbg.nr_breakpoints, 1);
    assert_string_equal(ask("Z2,2000,4"), "OK");
    assert_string_equal(ask("Z3,2000,4"), "OK");
    assert_int_equal(t->dbg.nr_watchpoints, 2);
    assert_int_equal(t->dbg.watchpoint[1].kind, ACCEL_WATCH_READ);
    assert_string_equal(ask("Z4,2000,9"), "E22");
    assert_string_equal(ask("Z4,2000,8"), "OK");
    assert_string_equal(ask("Z4,2008,8"), "OK");
    assert_string_equal(ask("Z4,2010,8"), "E28"); /* a fifth */
    assert_string_equal(ask("Z5,0,1"), "");
    assert_string_equal(ask("Z0,1"), "E01");
    /* The target refuses a ninth breakpoint: the session keeps the old set. */
    char cmd[40];
    for (unsigned i = 0; i < 7; i++) {
        snprintf(cmd, sizeof(cmd), "Z0,%x,1", 0x100 + i);
        assert_string_equal(ask(cmd), "OK");
    }
    assert_string_equal(ask("Z0,200,1"), "E28");
    assert_int_equal(s.dbg.nr_breakpoints, 8);
    /* Step thread 2, continue, the stop, 0x03. */
    ask("vCont;s:2;c");
    assert_int_equal(t->last_step, 1);
    assert_true(s.running);
    assert_string_equal(ask("g"), "E16"); /* not while running */
    uint8_t ctrl_c = 0x03;
    gdb_session_input(&s, &ctrl_c, 1);
    assert_int_equal(t->interrupts, 1);
    struct gdb_stop stop = {
        .vcpu = 1, .signal = 5, .watch = true, .kind = ACCEL_WATCH_WRITE, .addr = 0x2000};
    t->out_len = 0;
    gdb_session_stopped(&s, &stop);
    assert_non_null(strstr(t->out, "$T05watch:2000;thread:2;#"));
    assert_false(s.running);
    ask("c");
    assert_int_equal(t->last_step, -1);
    gdb_session_stopped(&s, &(struct gdb_stop){.vcpu = 0, .signal = 2});
    assert_string_equal(ask("vCont;x"), "E01");
    assert_string_equal(ask("vCont;s:5"), "E22");
    ask("s1000");
    assert_int_equal(t->regs[0].rip, 0x1000);
    assert_int_equal(t->last_step, 0);
    gdb_session_stopped(&s, &(struct gdb_stop){.vcpu = 0, .signal = 5});
    /* Detach: no breakpoints left, the target runs on. */
    assert_string_equal(ask("D"), "OK");
    assert_int_equal(t->dbg.nr_breakpoints, 0);
    assert_int_equal(t->dbg.nr_watchpoints, 0);
    assert_true(s.detached);
}

static void test_no_ack_mode(void **state)
{
    (void)state;
    ask("QStartNoAckMode");
    assert_true(s.no_ack);
    ask("?");
    assert_int_equal(t->out[0], '$'); /* no '+' first */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_framing_checksums),
        cmocka_unit_test(test_overlong_packet_is_refused),
        cmocka_unit_test_setup_teardown(test_queries_and_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fpu_registers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_target_xml, setup, teardown),
        cmocka_unit_test_setup_teardown(test_memory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_breakpoints_and_running, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_ack_mode, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
