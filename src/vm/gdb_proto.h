/* The GDB remote serial protocol, independent of sockets and of the machine: framing
 * (gdb_framer) and the commands a debugging session answers (gdb_session), over a small target
 * interface. Everything read from the debugger is untrusted: packets are bounded
 * (GDB_MAX_PACKET), every number and length is checked, and a malformed command gets an error
 * reply, never more than that. The socket side is gdbstub.c; unit tests and the fuzzer drive
 * this file with a fake target. */
#ifndef QUOKKA_VM_GDB_PROTO_H
#define QUOKKA_VM_GDB_PROTO_H

#include "accel/accel.h"
#include "vm/cpu_state.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GDB_MAX_PACKET 4096 /* payload bytes of one packet, both ways (PacketSize) */

/* --- framing ----------------------------------------------------------------------------- */

enum gdb_frame_event {
    GDB_FRAME_NONE,      /* keep feeding */
    GDB_FRAME_PACKET,    /* a packet with a good checksum: f->buf, f->len (NUL-terminated) */
    GDB_FRAME_BAD,       /* a bad checksum or an over-long packet: answer '-' */
    GDB_FRAME_INTERRUPT, /* 0x03 outside a packet */
};

struct gdb_framer {
    int state;
    uint8_t sum;
    uint8_t csum; /* the received checksum's first digit */
    bool overflow;
    size_t len;
    char buf[GDB_MAX_PACKET + 1];
};

void gdb_framer_init(struct gdb_framer *f);
enum gdb_frame_event gdb_framer_push(struct gdb_framer *f, uint8_t byte);
/* "$payload#cs" into out (escaping '#', '$', '}' and '*'); the frame's length, or 0 when it
 * does not fit in cap. */
size_t gdb_frame(char *out, size_t cap, const char *payload, size_t len);
/* Hex digit value, or -1. */
int gdb_hex_digit(char c);

/* --- the session ------------------------------------------------------------------------- */

/* Threads are vCPUs: thread id = vCPU index + 1. */
struct gdb_target_ops {
    unsigned (*nr_threads)(void *ctx);
    int (*get_regs)(void *ctx, unsigned vcpu, struct vcpu_state *st);
    int (*set_regs)(void *ctx, unsigned vcpu, const struct vcpu_state *st);
    /* Guest-virtual memory through vcpu's page tables: bytes done (less where unmapped). */
    size_t (*read_mem)(void *ctx, unsigned vcpu, uint64_t addr, uint8_t *buf, size_t len);
    size_t (*write_mem)(void *ctx, unsigned vcpu, uint64_t addr, const uint8_t *buf, size_t len);
    /* The breakpoints and watchpoints changed (the target is stopped): 0, or -1 when it
     * cannot have them (the session then takes the change back). */
    int (*set_debug)(void *ctx, const struct accel_debug *dbg);
    /* Run on; step_vcpu >= 0: that vCPU stops after one instruction. The target calls
     * gdb_session_stopped when it stops again. */
    void (*resume)(void *ctx, int step_vcpu);
    void (*interrupt)(void *ctx); /* 0x03 while running: stop and call gdb_session_stopped */
    void (*kill)(void *ctx);
    void (*send)(void *ctx, const char *data, size_t len); /* bytes to the debugger */
    /* Optional: x87/SSE state (NULL, or -1: gdb sees those registers as unavailable). */
    int (*get_fpu)(void *ctx, unsigned vcpu, struct vcpu_fpu *fpu);
    int (*set_fpu)(void *ctx, unsigned vcpu, const struct vcpu_fpu *fpu);
};

struct gdb_stop {
    unsigned vcpu;
    int signal; /* 5 (SIGTRAP) for debug stops, 2 (SIGINT) for 0x03 */
    bool watch; /* a watchpoint: kind and address below */
    enum accel_watch_kind kind;
    uint64_t addr;
};

struct gdb_session {
    const struct gdb_target_ops *ops;
    void *ctx;
    struct gdb_framer framer;
    bool no_ack;   /* QStartNoAckMode */
    bool running;  /* resumed: only 0x03 is acted on until the target stops */
    bool detached; /* 'D' or 'k': the connection is to be closed */
    unsigned g_vcpu, c_vcpu;
    struct gdb_stop last_stop;
    struct accel_debug dbg; /* breakpoints (Z0 and Z1) and watchpoints (Z2-Z4) */
};

void gdb_session_init(struct gdb_session *s, const struct gdb_target_ops *ops, void *ctx);
/* Bytes from the debugger. */
void gdb_session_input(struct gdb_session *s, const uint8_t *data, size_t len);
/* The target stopped (after resume or interrupt): the stop reply goes out. */
void gdb_session_stopped(struct gdb_session *s, const struct gdb_stop *stop);
/* One packet's payload, answered through ops->send (exposed for tests). */
void gdb_session_packet(struct gdb_session *s, const char *pkt, size_t len);

/* What 'g'/'G' carry: the general state and, when has_fpu, x87/SSE. */
struct gdb_regs {
    struct vcpu_state st;
    struct vcpu_fpu fpu;
    bool has_fpu;
};

/* The 'g' packet's register block (the target description's order and sizes). */
#define GDB_REGS_BYTES 600
size_t gdb_encode_regs(const struct gdb_regs *g, char *hex, size_t cap);
/* Registers from a 'G' payload into g (the FPU part only when has_fpu; registers sent as
 * 'x', unavailable, are left); -1 when malformed. */
int gdb_decode_regs(const char *hex, size_t len, struct gdb_regs *g);

#endif
