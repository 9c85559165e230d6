/* virtio-blk's image: open, lock and probe the file or block device behind a disk. */
#include <errno.h>
#include <linux/fs.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "virtio/blk_priv.h"

static unsigned int ilog2_u32(uint32_t v)
{
	unsigned int r = 0;

	while (v >>= 1)
		r++;
	return r;
}

static bool is_pow2(uint32_t v)
{
	return v && !(v & (v - 1));
}

/* Size and block sizes of the open image; fills b->capacity and b->cfg's geometry fields. */
static int blk_probe(struct blk_dev *b, int fd, const struct blk_options *o, struct kerr *err)
{
	uint32_t logical = SECTOR_SIZE, physical = SECTOR_SIZE;
	struct stat st;
	uint64_t size;

	if (fstat(fd, &st) < 0)
		return kerr_set(err, "cannot stat disk '%s': %s", o->path, strerror(errno));
	if (S_ISREG(st.st_mode)) {
		size = st.st_size;
		/* The file system's block: guests then align their I/O to the page cache's. */
		if (st.st_blksize >= (blksize_t)SECTOR_SIZE && st.st_blksize <= 4096 &&
		    is_pow2(st.st_blksize))
			physical = st.st_blksize;
#ifdef STATX_DIOALIGN
		if (o->direct) {
			struct statx stx;

			/* O_DIRECT I/O must be aligned as the file system says. */
			if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 &&
			    (stx.stx_mask & STATX_DIOALIGN) &&
			    stx.stx_dio_offset_align > SECTOR_SIZE &&
			    stx.stx_dio_offset_align <= 4096 && is_pow2(stx.stx_dio_offset_align))
				logical = stx.stx_dio_offset_align;
		}
#endif
	} else if (S_ISBLK(st.st_mode)) {
		int lbs = 0;
		unsigned int pbs = 0;

		if (ioctl(fd, BLKGETSIZE64, &size) < 0)
			return kerr_set(err, "cannot get the size of disk '%s': %s", o->path,
					strerror(errno));
		if (ioctl(fd, BLKSSZGET, &lbs) == 0 && lbs >= (int)SECTOR_SIZE && lbs <= 65536 &&
		    is_pow2(lbs))
			logical = lbs;
		if (ioctl(fd, BLKPBSZGET, &pbs) == 0 && pbs >= logical && pbs <= 65536 &&
		    is_pow2(pbs))
			physical = pbs;
	} else {
		return kerr_set(err, "disk '%s' is not a regular file or block device", o->path);
	}
	if (physical < logical)
		physical = logical;
	if (size == 0)
		return kerr_set(err, "disk '%s' is empty", o->path);
	if (size % SECTOR_SIZE)
		return kerr_set(err,
				"disk '%s' size %llu is not a multiple of 512 bytes (resize it, "
				"e.g. truncate -s %lluK)",
				o->path, (unsigned long long)size,
				(unsigned long long)((size + 1023) / 1024));

	b->capacity = size / SECTOR_SIZE;
	b->cfg.capacity = htole64(b->capacity);
	b->cfg.blk_size = htole32(logical);
	b->cfg.physical_block_exp = ilog2_u32(physical / logical);
	b->cfg.alignment_offset = 0;
	b->cfg.min_io_size = htole16(1);
	b->cfg.opt_io_size = htole32(0);
	b->cfg.discard_sector_alignment = htole32(physical / SECTOR_SIZE);
	return 0;
}

int blk_open(struct blk_dev *b, const struct blk_options *o, struct kerr *err)
{
	int flags = (o->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NONBLOCK;
	int fd, fl;

	if (o->direct)
		flags |= O_DIRECT;
	/* O_NONBLOCK: a FIFO given by mistake must not hang the open; cleared below. */
	fd = open(o->path, flags);
	if (fd < 0) {
		int e = errno;

		if (e == EINVAL && o->direct)
			return kerr_set(err,
					"disk '%s': direct=on is not supported by its file system "
					"(drop direct=on)",
					o->path);
		if (e == EISDIR)
			return kerr_set(err, "disk '%s' is not a regular file or block device",
					o->path);
		if (!o->readonly && (e == EROFS || e == EACCES))
			return kerr_set(err,
					"cannot open disk '%s' for writing: %s (add readonly=on)",
					o->path, strerror(e));
		return kerr_set(err, "cannot open disk '%s': %s", o->path, strerror(e));
	}
	if (blk_probe(b, fd, o, err) < 0)
		goto fail;
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
		kerr_set(err, "disk '%s': fcntl: %s", o->path, strerror(errno));
		goto fail;
	}
	/* Two VMMs writing one image corrupt it; readers may share. */
	if (flock(fd, (o->readonly ? LOCK_SH : LOCK_EX) | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK)
			kerr_set(err, "disk '%s' is in use by another process (locked)", o->path);
		else
			kerr_set(err, "cannot lock disk '%s': %s", o->path, strerror(errno));
		goto fail;
	}
	b->be.fd = fd;
	return 0;
fail:
	close(fd);
	return -1;
}
