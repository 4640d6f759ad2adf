#include "block/image.h"

#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

static int open_error(const char *path, int error, bool readonly, char *err, size_t errlen)
{
    if (error == EISDIR)
        return qk_fail(err, errlen, "disk '%s' is a directory", path);
    /* Writable opens of a file we may only read: say how to use it anyway. */
    if (!readonly && (error == EACCES || error == EPERM || error == EROFS))
        return qk_fail(err, errlen, "disk '%s': %s (readonly=on opens it read-only)", path,
                       strerror(error));
    return qk_fail(err, errlen, "disk '%s': %s", path, strerror(error));
}

/* Whole-file OFD lock: exclusive for writers, shared for readers. Filesystems without lock
 * support (ENOLCK, e.g. some network mounts) get a warning rather than a refusal, as QEMU's
 * locking=auto does. */
static int lock_image(int fd, const char *path, bool readonly, char *err, size_t errlen)
{
    struct flock fl = {.l_type = readonly ? F_RDLCK : F_WRLCK, .l_whence = SEEK_SET};
    if (fcntl(fd, F_OFD_SETLK, &fl) == 0)
        return 0;
    if (errno == EAGAIN || errno == EACCES) {
        if (readonly)
            return qk_fail(err, errlen,
                           "disk '%s' is locked for writing by another process (is another VM "
                           "using it?)",
                           path);
        return qk_fail(err, errlen,
                       "disk '%s' is locked by another process (is another VM using it?)", path);
    }
    if (errno == ENOLCK || errno == EINVAL || errno == EOPNOTSUPP) {
        qk_warn("disk '%s': cannot lock it (%s); nothing stops another VM from using it", path,
                strerror(errno));
        return 0;
    }
    return qk_fail(err, errlen, "disk '%s': cannot lock it: %s", path, strerror(errno));
}

static int image_size(int fd, const struct stat *st, const char *path, uint64_t *size, char *err,
                      size_t errlen)
{
    if (S_ISREG(st->st_mode)) {
        *size = (uint64_t)st->st_size;
    } else if (ioctl(fd, BLKGETSIZE64, size) < 0) {
        return qk_fail(err, errlen, "disk '%s': cannot get the device size: %s", path,
                       strerror(errno));
    }
    if (*size % BLOCK_SECTOR_SIZE)
        return qk_fail(err, errlen,
                       "disk '%s': size %" PRIu64 " is not a multiple of %d (resize it, e.g. "
                       "truncate -s %" PRIu64 ")",
                       path, *size, BLOCK_SECTOR_SIZE,
                       (*size / BLOCK_SECTOR_SIZE + 1) * BLOCK_SECTOR_SIZE);
    return 0;
}

int block_image_open(struct block_image *img, const char *path, bool readonly, char *err,
                     size_t errlen)
{
    *img = (struct block_image){.fd = -1, .readonly = readonly};
    int fd = open(path, (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
    if (fd < 0)
        return open_error(path, errno, readonly, err, errlen);
    struct stat st;
    if (fstat(fd, &st) < 0) {
        open_error(path, errno, readonly, err, errlen);
        goto fail;
    }
    if (S_ISDIR(st.st_mode)) {
        open_error(path, EISDIR, readonly, err, errlen);
        goto fail;
    }
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
        qk_fail(err, errlen, "disk '%s' is not a regular file or a block device", path);
        goto fail;
    }
    if (lock_image(fd, path, readonly, err, errlen) < 0 ||
        image_size(fd, &st, path, &img->size, err, errlen) < 0)
        goto fail;
    img->fd = fd;
    img->is_blockdev = S_ISBLK(st.st_mode);
    return 0;
fail:
    close(fd);
    img->size = 0;
    return -1;
}

void block_image_close(struct block_image *img)
{
    if (img->fd >= 0)
        close(img->fd);
    img->fd = -1;
}
