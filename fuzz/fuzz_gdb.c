/* libFuzzer target: the gdbstub's protocol (vm/gdb_proto.c) on bytes from the debugger's
 * socket: framing, escapes, checksums, every command, against a fake target (two vCPUs, 64
 * KiB of memory). The input is fed as-is, and a second time with every packet's checksum
 * fixed up so that the commands themselves are reached. Whatever the bytes, the session
 * must stay within its bounds and send only well-formed frames. */
#include "vm/gdb_proto.h"

#include <stdlib.h>
#include <string.h>

#include "gdb_fake_target.h"

static struct fake_target target;

/* Every '#' followed by two characters gets the right checksum of what came since '$'. */
static void fix_checksums(uint8_t *data, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t start = 0;
    bool in = false;
    uint8_t sum = 0;
    for (size_t i = 0; i < len; i++) {
        if (data[i] == '$') {
            in = true;
            start = i;
            sum = 0;
        } else if (in && data[i] == '#' && i + 2 < len) {
            data[i + 1] = (uint8_t)hex[sum >> 4];
            data[i + 2] = (uint8_t)hex[sum & 15];
            in = false;
            i += 2;
        } else if (in) {
            sum = (uint8_t)(sum + data[i]);
        }
    }
    (void)start;
}

/* Stops now and then, as a running target would. */
static void run(const uint8_t *data, size_t len)
{
    struct gdb_session s;
    memset(&target, 0, sizeof(target));
    gdb_session_init(&s, &fake_target_ops, &target);
    for (size_t i = 0; i < len; i += 64) {
        size_t n = len - i < 64 ? len - i : 64;
        gdb_session_input(&s, data + i, n);
        if (s.running) {
            struct gdb_stop stop = {.vcpu = data[i] & 1,
                                    .signal = 5,
                                    .watch = data[i] & 2,
                                    .kind = ACCEL_WATCH_ACCESS,
                                    .addr = i};
            gdb_session_stopped(&s, &stop);
        }
        if (s.detached)
            break;
    }
    /* Everything sent is "+", "-" or whole "$...#xx" frames. */
    if (target.out_len >= sizeof(target.out))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    if (len > 1 << 16)
        return 0;
    run(data, len);
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy)
        return 0;
    memcpy(copy, data, len);
    fix_checksums(copy, len);
    run(copy, len);
    free(copy);
    return 0;
}
