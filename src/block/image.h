/* Raw disk images: open, check and lock the file or block device a virtual disk is backed by.
 *
 * An image is a regular file or a block device, read-write or read-only. Its size must be a
 * whole number of 512-byte sectors: the guest sees capacity in sectors, and the two ways out
 * of a partial last sector both surprise silently (QEMU rounds up: reads past the end return
 * zeros and a write there grows the file; Firecracker rounds down: the tail is invisible), so
 * quokka refuses the image and says how big it is.
 *
 * Locking: a writable image takes an exclusive open-file-description lock (F_OFD_SETLK write
 * lock over the whole file), a read-only one a shared lock, so a second VM cannot write an
 * image another is using (nor read one another is writing) — QEMU does the same with its own
 * byte ranges, which these whole-file locks also conflict with. OFD locks belong to the open
 * file, not the process, so a second open in the same process conflicts too, and closing any
 * other descriptor of the file does not drop them. */
#ifndef QUOKKA_BLOCK_IMAGE_H
#define QUOKKA_BLOCK_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BLOCK_SECTOR_SIZE 512

struct block_image {
    int fd; /* -1 when closed */
    bool readonly;
    bool is_blockdev;
    uint64_t size; /* bytes, a multiple of BLOCK_SECTOR_SIZE */
};

/* Open and lock path. On error fill err with one line naming the image and the reason (e.g.
 * "disk 'x.img': No such file or directory") and return -1. */
int block_image_open(struct block_image *img, const char *path, bool readonly, char *err,
                     size_t errlen);
/* Close (which releases the lock). Safe on a closed image. */
void block_image_close(struct block_image *img);

#endif
