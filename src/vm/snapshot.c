#include "vm/snapshot.h"

#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char magic[8] = {'Q', 'K', 'S', 'N', 'A', 'P', '0', '1'};
#define HEADER_LEN 12u
#define SECTION_HEADER_LEN (SNAPSHOT_NAME_MAX + 8u)
#define MAX_SECTIONS 4096u

static uint64_t fnv1a(const uint8_t *p, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

void snap_writer_init(struct snap_writer *w)
{
    memset(w, 0, sizeof(*w));
    snap_put(w, magic, sizeof(magic));
    snap_put_u32(w, SNAPSHOT_VERSION);
}

void snap_writer_free(struct snap_writer *w)
{
    free(w->buf);
    memset(w, 0, sizeof(*w));
}

void snap_put(struct snap_writer *w, const void *data, size_t len)
{
    if (w->failed)
        return;
    if (w->len + len > w->cap) {
        size_t cap = w->cap ? w->cap : 4096;
        while (cap < w->len + len)
            cap *= 2;
        uint8_t *nb = cap <= SNAPSHOT_MAX_FILE ? realloc(w->buf, cap) : NULL;
        if (!nb) {
            w->failed = true;
            return;
        }
        w->buf = nb;
        w->cap = cap;
    }
    memcpy(w->buf + w->len, data, len);
    w->len += len;
}

void snap_put_u32(struct snap_writer *w, uint32_t v)
{
    snap_put(w, &v, sizeof(v));
}

void snap_put_u64(struct snap_writer *w, uint64_t v)
{
    snap_put(w, &v, sizeof(v));
}

void snap_put_str(struct snap_writer *w, const char *s)
{
    size_t n = strlen(s);
    snap_put_u32(w, (uint32_t)n);
    snap_put(w, s, n);
}

/* A section's header is written with length 0, patched when it is closed. */
static void close_section(struct snap_writer *w)
{
    if (w->failed || !w->section)
        return;
    uint32_t len = (uint32_t)(w->len - w->section - SECTION_HEADER_LEN);
    memcpy(w->buf + w->section + SNAPSHOT_NAME_MAX + 4, &len, 4);
    w->section = 0;
}

void snap_begin(struct snap_writer *w, const char *name, uint32_t index)
{
    close_section(w);
    char n[SNAPSHOT_NAME_MAX] = {0};
    snprintf(n, sizeof(n), "%s", name);
    w->section = w->len;
    snap_put(w, n, sizeof(n));
    snap_put_u32(w, index);
    snap_put_u32(w, 0);
}

int snap_writer_save(struct snap_writer *w, const char *path, char *err, size_t errlen)
{
    close_section(w);
    uint64_t hash = fnv1a(w->buf, w->len);
    snap_begin(w, "end", 0);
    snap_put_u64(w, hash);
    close_section(w);
    if (w->failed)
        return qk_fail(err, errlen, "snapshot '%s': out of memory", path);
    char tmp[4200];
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
        return qk_fail(err, errlen, "snapshot '%s': path too long", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return qk_fail(err, errlen, "cannot write '%s': %s", path, strerror(errno));
    size_t done = 0;
    while (done < w->len) {
        ssize_t n = write(fd, w->buf + done, w->len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = n < 0 ? errno : EIO;
            close(fd);
            unlink(tmp);
            return qk_fail(err, errlen, "cannot write '%s': %s", path, strerror(e));
        }
        done += (size_t)n;
    }
    if (close(fd) < 0 || rename(tmp, path) < 0) {
        unlink(tmp);
        return qk_fail(err, errlen, "cannot write '%s': %s", path, strerror(errno));
    }
    return 0;
}

static int read_whole(const char *path, uint8_t **out, size_t *len, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return qk_fail(err, errlen, "cannot open snapshot '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size < (off_t)HEADER_LEN ||
        st.st_size > (off_t)SNAPSHOT_MAX_FILE) {
        close(fd);
        return qk_fail(err, errlen, "snapshot '%s' is not a quokka snapshot (size)", path);
    }
    uint8_t *buf = malloc((size_t)st.st_size);
    size_t done = 0;
    while (buf && done < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + done, (size_t)st.st_size - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        done += (size_t)n;
    }
    close(fd);
    if (!buf || done != (size_t)st.st_size) {
        free(buf);
        return qk_fail(err, errlen, "cannot read snapshot '%s'", path);
    }
    *out = buf;
    *len = done;
    return 0;
}

static int index_sections(struct snap_file *f, const char *path, char *err, size_t errlen)
{
    size_t pos = HEADER_LEN;
    f->sections = calloc(MAX_SECTIONS, sizeof(*f->sections));
    if (!f->sections)
        return qk_fail(err, errlen, "out of memory");
    for (;;) {
        if (pos + SECTION_HEADER_LEN > f->len || f->nr_sections == MAX_SECTIONS)
            return qk_fail(err, errlen, "snapshot '%s' is truncated or corrupt", path);
        struct snap_section *s = &f->sections[f->nr_sections];
        memcpy(s->name, f->buf + pos, SNAPSHOT_NAME_MAX);
        s->name[SNAPSHOT_NAME_MAX - 1] = '\0';
        memcpy(&s->index, f->buf + pos + SNAPSHOT_NAME_MAX, 4);
        memcpy(&s->length, f->buf + pos + SNAPSHOT_NAME_MAX + 4, 4);
        if (s->length > f->len - pos - SECTION_HEADER_LEN)
            return qk_fail(err, errlen, "snapshot '%s' is truncated or corrupt", path);
        s->data = f->buf + pos + SECTION_HEADER_LEN;
        if (!strcmp(s->name, "end")) {
            /* The hash covers what precedes this header: the header itself must be exact. */
            static const char end_name[SNAPSHOT_NAME_MAX] = "end";
            uint64_t want;
            if (memcmp(f->buf + pos, end_name, SNAPSHOT_NAME_MAX) != 0 || s->index != 0 ||
                s->length != 8 || pos + SECTION_HEADER_LEN + 8 != f->len)
                return qk_fail(err, errlen, "snapshot '%s' is truncated or corrupt", path);
            memcpy(&want, s->data, 8);
            if (fnv1a(f->buf, pos) != want)
                return qk_fail(err, errlen, "snapshot '%s' is corrupt (checksum mismatch)", path);
            return 0;
        }
        f->nr_sections++;
        pos += SECTION_HEADER_LEN + s->length;
    }
}

/* Takes buf (malloc'd, freed here on failure); name is for the messages. */
static int parse_owned(struct snap_file *f, uint8_t *buf, size_t len, const char *name, char *err,
                       size_t errlen)
{
    f->buf = buf;
    f->len = len;
    if (len < HEADER_LEN || memcmp(f->buf, magic, sizeof(magic)) != 0) {
        snap_file_free(f);
        return qk_fail(err, errlen, "'%s' is not a quokka snapshot (bad magic)", name);
    }
    uint32_t version;
    memcpy(&version, f->buf + sizeof(magic), 4);
    if (version != SNAPSHOT_VERSION) {
        snap_file_free(f);
        return qk_fail(err, errlen, "snapshot '%s' has format version %u; this quokka reads %u",
                       name, version, SNAPSHOT_VERSION);
    }
    if (index_sections(f, name, err, errlen) < 0) {
        snap_file_free(f);
        return -1;
    }
    return 0;
}

int snap_file_load(struct snap_file *f, const char *path, char *err, size_t errlen)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    memset(f, 0, sizeof(*f));
    if (read_whole(path, &buf, &len, err, errlen) < 0)
        return -1;
    return parse_owned(f, buf, len, path, err, errlen);
}

int snap_file_parse(struct snap_file *f, const void *data, size_t len, char *err, size_t errlen)
{
    memset(f, 0, sizeof(*f));
    if (len > SNAPSHOT_MAX_FILE)
        return qk_fail(err, errlen, "snapshot '(memory)' is not a quokka snapshot (size)");
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        return qk_fail(err, errlen, "out of memory");
    memcpy(buf, data, len);
    return parse_owned(f, buf, len, "(memory)", err, errlen);
}

void snap_file_free(struct snap_file *f)
{
    free(f->buf);
    free(f->sections);
    memset(f, 0, sizeof(*f));
}

const struct snap_section *snap_find(const struct snap_file *f, const char *name, uint32_t index)
{
    for (unsigned i = 0; i < f->nr_sections; i++)
        if (f->sections[i].index == index && !strcmp(f->sections[i].name, name))
            return &f->sections[i];
    return NULL;
}

bool snap_open(const struct snap_file *f, const char *name, uint32_t index, struct snap_reader *r)
{
    const struct snap_section *s = snap_find(f, name, index);
    *r = (struct snap_reader){s ? s->data : NULL, s ? s->length : 0, 0, !s};
    return s != NULL;
}

void snap_get(struct snap_reader *r, void *out, size_t len)
{
    if (r->failed || len > r->len - r->pos) {
        r->failed = true;
        memset(out, 0, len);
        return;
    }
    memcpy(out, r->data + r->pos, len);
    r->pos += len;
}

uint32_t snap_get_u32(struct snap_reader *r)
{
    uint32_t v;
    snap_get(r, &v, sizeof(v));
    return v;
}

uint64_t snap_get_u64(struct snap_reader *r)
{
    uint64_t v;
    snap_get(r, &v, sizeof(v));
    return v;
}

void snap_get_str(struct snap_reader *r, char *buf, size_t len)
{
    uint32_t n = snap_get_u32(r);
    if (r->failed || n >= len || n > r->len - r->pos) {
        r->failed = true;
        buf[0] = '\0';
        return;
    }
    memcpy(buf, r->data + r->pos, n);
    buf[n] = '\0';
    r->pos += n;
}

bool snap_done(const struct snap_reader *r)
{
    return !r->failed && r->pos == r->len;
}
