#include "vm/console.h"

#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

int console_parse(const char *text, struct console_spec *out)
{
    if (strcmp(text, "stdio") == 0) {
        *out = (struct console_spec){CONSOLE_STDIO, NULL};
        return 0;
    }
    if (strcmp(text, "none") == 0) {
        *out = (struct console_spec){CONSOLE_NONE, NULL};
        return 0;
    }
    if (strncmp(text, "file:", 5) == 0 && text[5]) {
        *out = (struct console_spec){CONSOLE_FILE, text + 5};
        return 0;
    }
    return -1;
}

static void console_write(void *ctx, const uint8_t *buf, size_t len)
{
    struct console *con = ctx;
    if (con->out_fd < 0 || atomic_load(&con->out_failed))
        return;
    while (len) {
        ssize_t n = write(con->out_fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            /* Host console gone or full: the guest's output is dropped, like a cut cable,
             * and the user told so once (not once per byte). */
            int why = n < 0 ? errno : ENOSPC;
            if (why == EAGAIN || why == EWOULDBLOCK)
                return; /* a non-blocking stdout that is full for now: drop this much */
            if (!atomic_exchange(&con->out_failed, true))
                qk_warn("console output to %s failed (%s): guest output is dropped from now on",
                        con->out_name, strerror(why));
            return;
        }
        buf += n;
        len -= (size_t)n;
    }
}

static void console_set_input(void *ctx,
                              size_t (*handler)(void *opaque, const uint8_t *buf, size_t len),
                              void *opaque)
{
    struct console *con = ctx;
    pthread_mutex_lock(&con->lock);
    con->input_handler = handler;
    con->input_opaque = opaque;
    pthread_mutex_unlock(&con->lock);
}

int console_open(struct console *con, const struct console_spec *spec, char *err, size_t errlen)
{
    memset(con, 0, sizeof(*con));
    pthread_mutex_init(&con->lock, NULL);
    con->out_fd = -1;
    con->in_fd = -1;
    con->device = (struct device_console){console_write, console_set_input, con};
    switch (spec->kind) {
    case CONSOLE_STDIO:
        con->out_name = "stdout";
        con->out_fd = STDOUT_FILENO;
        con->in_fd = STDIN_FILENO;
        break;
    case CONSOLE_FILE: {
        int existed = access(spec->path, F_OK) == 0;
        con->out_fd = open(spec->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (con->out_fd < 0)
            return qk_fail(err, errlen, "cannot open console file '%s': %s", spec->path,
                           strerror(errno));
        con->owns_out_fd = true;
        con->out_name = spec->path;
        con->created_path = existed ? NULL : spec->path;
        break;
    }
    case CONSOLE_NONE:
        break;
    }
    return 0;
}

void console_enter_raw(struct console *con)
{
    if (con->in_fd < 0 || !isatty(con->in_fd) || tcgetattr(con->in_fd, &con->saved_tty) < 0)
        return;
    struct termios raw = con->saved_tty;
    cfmakeraw(&raw);
    /* Keep output post-processing off (the guest sends CRLF) but let Ctrl-C raise SIGINT so
     * the user can always end the VM; Ctrl-Z and Ctrl-\ would leave a raw terminal behind. */
    raw.c_lflag |= ISIG;
    raw.c_cc[VSUSP] = _POSIX_VDISABLE;
    raw.c_cc[VQUIT] = _POSIX_VDISABLE;
    if (tcsetattr(con->in_fd, TCSANOW, &raw) == 0)
        con->restore_tty = true;
}

void console_close(struct console *con, bool remove_output)
{
    if (con->restore_tty) {
        tcsetattr(con->in_fd, TCSANOW, &con->saved_tty);
        con->restore_tty = false;
    }
    if (con->owns_out_fd && con->out_fd >= 0)
        close(con->out_fd);
    if (remove_output && con->created_path)
        unlink(con->created_path);
    con->out_fd = -1;
    pthread_mutex_destroy(&con->lock);
}

static void offer_pending_locked(struct console *con)
{
    if (!con->input_handler || !con->pending_len)
        return;
    size_t taken = con->input_handler(con->input_opaque, con->pending, con->pending_len);
    if (taken > con->pending_len)
        taken = con->pending_len;
    memmove(con->pending, con->pending + taken, con->pending_len - taken);
    con->pending_len -= taken;
}

bool console_pump_input(struct console *con)
{
    pthread_mutex_lock(&con->lock);
    size_t room = sizeof(con->pending) - con->pending_len;
    bool alive = true;
    if (room) {
        ssize_t n = read(con->in_fd, con->pending + con->pending_len, room);
        if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
            alive = false;
        else if (n > 0)
            con->pending_len += (size_t)n;
    }
    offer_pending_locked(con);
    pthread_mutex_unlock(&con->lock);
    return alive;
}

bool console_has_pending(struct console *con)
{
    pthread_mutex_lock(&con->lock);
    bool pending = con->pending_len != 0;
    pthread_mutex_unlock(&con->lock);
    return pending;
}

void console_retry_pending(struct console *con)
{
    pthread_mutex_lock(&con->lock);
    offer_pending_locked(con);
    pthread_mutex_unlock(&con->lock);
}
