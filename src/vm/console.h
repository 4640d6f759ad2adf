/* The host side of the guest's serial console: stdio (raw terminal when stdin is a tty),
 * an output file, or nothing. */
#ifndef QUOKKA_VM_CONSOLE_H
#define QUOKKA_VM_CONSOLE_H

#include "hw/device.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <termios.h>

enum console_kind { CONSOLE_STDIO, CONSOLE_FILE, CONSOLE_NONE };

struct console_spec {
    enum console_kind kind;
    const char *path; /* CONSOLE_FILE */
};

struct console {
    int out_fd;             /* -1: output discarded */
    int in_fd;              /* -1: no input */
    const char *out_name;   /* "stdout" or the file's path, for the message below */
    atomic_bool out_failed; /* a write failed: said once on stderr, output dropped since */
    bool owns_out_fd;
    bool restore_tty;
    struct termios saved_tty;
    const char *created_path; /* file we created, removed again if start-up fails */

    pthread_mutex_t lock;
    size_t (*input_handler)(void *opaque, const uint8_t *buf, size_t len);
    void *input_opaque;
    uint8_t pending[256]; /* host input the guest has not accepted yet */
    size_t pending_len;

    struct device_console device; /* what device models see */
};

/* Parse "stdio", "none" or "file:PATH". */
int console_parse(const char *text, struct console_spec *out);

int console_open(struct console *con, const struct console_spec *spec, char *err, size_t errlen);
/* Switch a tty stdin to raw mode (keeps Ctrl-C as SIGINT so it ends the VM). */
void console_enter_raw(struct console *con);
void console_close(struct console *con, bool remove_output);

/* Read available host input and offer it to the guest. Returns false at EOF. */
bool console_pump_input(struct console *con);
bool console_has_pending(struct console *con);
/* Offer buffered bytes again (the guest may have drained its FIFO). */
void console_retry_pending(struct console *con);

#endif
