/* libFuzzer target: virtio-vsock's host side (net/vsock_mux.c) on the packets a guest puts
 * on its transmit queue. The input is a sequence of packets, each a 44-byte header and as
 * much payload as its len field says (a len beyond what is left, or beyond VSOCK_MAX_PKT, is
 * sent as the device sends a malformed chain); after each, everything the mux queues for the
 * guest is received, as the device's receive queue would. The mux connects guest requests
 * to SOCK_<port> Unix sockets in a private directory (none listen, so they are refused);
 * connections, credit and queues must stay within their bounds. Between inputs the mux is
 * stopped and started (a device reset). */
#include "net/vsock_mux.h"
#include "vm/event_loop.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* device_fakes.h is written for cmocka tests: its checks abort here. */
#define assert_true(x) ((x) ? (void)0 : abort())
#define assert_non_null(x) assert_true((x) != NULL)
#define assert_int_equal(a, b) assert_true((a) == (b))
#define fail_msg(...) abort()
#include "device_fakes.h"

#define GUEST_CID 3

static struct fake_machine fm;
static struct vsock_mux *mux;
static char dir[64];

static void on_rx_ready(void *opaque)
{
    (void)opaque;
}

static void cleanup(void)
{
    if (mux)
        vsock_mux_free(mux);
    rmdir(dir);
}

static void setup(void)
{
    char err[256], path[128];
    fake_machine_init(&fm);
    fake_machine_enable_timers(&fm);
    fm.host.loop = event_loop_new(err, sizeof(err));
    snprintf(dir, sizeof(dir), "/tmp/qk-fuzz-vsock-XXXXXX");
    if (!fm.host.loop || !mkdtemp(dir))
        abort();
    snprintf(path, sizeof(path), "%s/v.sock", dir);
    mux = vsock_mux_new(&fm.host, GUEST_CID, path, on_rx_ready, NULL, err, sizeof(err));
    if (!mux) {
        fprintf(stderr, "fuzz_vsock: %s\n", err);
        abort();
    }
    atexit(cleanup);
}

static void drain(void)
{
    static uint8_t buf[VSOCK_MAX_PKT];
    const struct iovec iov = {buf, sizeof(buf)};
    for (int n = 0; n < 4 * VSOCK_RSTQ_SIZE && vsock_mux_has_rx(mux); n++) {
        struct vsock_hdr h;
        uint32_t len = vsock_mux_recv(mux, &h, &iov, 1, sizeof(buf));
        if (len > sizeof(buf))
            abort(); /* more payload than the buffer the guest gave */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!mux)
        setup();
    vsock_mux_lock(mux);
    vsock_mux_start(mux);
    while (size >= VSOCK_HDR_SIZE) {
        struct vsock_hdr h;
        vsock_hdr_decode(data, &h);
        data += VSOCK_HDR_SIZE;
        size -= VSOCK_HDR_SIZE;
        /* Mostly packets from the guest's own CID, as the device would pass them. */
        if (!(h.flags & 0x80000000u))
            h.src_cid = GUEST_CID;
        if (h.len > size || h.len > VSOCK_MAX_PKT) {
            vsock_mux_send_malformed(mux, &h);
        } else {
            const struct iovec iov = {(void *)data, h.len};
            vsock_mux_send(mux, &h, &iov, h.len ? 1 : 0);
            data += h.len;
            size -= h.len;
        }
        drain();
        if (vsock_mux_nr_conns(mux) > VSOCK_MAX_CONNS)
            abort();
    }
    vsock_mux_unlock(mux);
    fm.now_ns += VSOCK_TIMEOUT_NS + 1; /* timeouts fire (their callbacks take the lock) */
    fake_run_timers(&fm);
    vsock_mux_lock(mux);
    drain();
    vsock_mux_stop(mux);
    vsock_mux_unlock(mux);
    return 0;
}
