/*
 * The cache of unpacked kernels (kernel_cache.h). Where: $KESTREL_CACHE_DIR, else
 * $XDG_CACHE_HOME/kestrel, else $HOME/.cache/kestrel, made 0700. An entry is named by the
 * payload's length and a sampled CRC-32 (payload_key: for lookup only) and holds a header, a
 * copy of the compressed payload and, from the next ENTRY_ALIGN boundary, the stream it
 * decompresses to, its zero runs punched out as holes (the loader skips them:
 * guest_mem_place). Entries are never written once linked in, only replaced (rename) or
 * removed. A hit must be exact: header, file size and the payload compared byte for byte;
 * anything else is a miss and the entry goes. An entry is written to an O_TMPFILE in the
 * directory and linked into place (rename: atomic) only once the decoder exited OK and the
 * kernel loaded, and after fdatasync, so neither a concurrent kestrel nor one after a crash
 * sees half of one. At most KERNEL_CACHE_MAX_ENTRIES are kept. Nothing here fails a boot: a
 * cache that cannot be used is said once with -v.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "vmm/kernel_cache.h"

#include "vmm/fd_io.h"

#define ENTRY_MAGIC "KESTRELK"
#define ENTRY_VERSION 3
/* The stream starts on this boundary (every page and file system block size's), so that its
 * zero pages are whole blocks that can be holes. */
#define ENTRY_ALIGN (64U << 10)
#define ENTRY_SUFFIX ".kernel"
#define ENTRY_OUT_MAX (1ULL << 30) /* no stream is bigger (the loader stops at 512 MiB) */

struct entry_hdr {
	char magic[8];
	uint32_t version, hdr_len;
	uint64_t payload_len, out_len; /* out_len 0 until the stream is complete */
	uint32_t crc, pad;
};

/* Where the stream starts: after header and payload, aligned (zeros in between). */
static uint64_t stream_off(uint64_t payload_len)
{
	return (sizeof(struct entry_hdr) + payload_len + ENTRY_ALIGN - 1) / ENTRY_ALIGN *
	       ENTRY_ALIGN;
}

/* The directory, made if missing (each component, 0700); -1 with the reason in the note. */
static int cache_dir(struct kernel_cache *kc, bool make)
{
	const char *d = getenv("KESTREL_CACHE_DIR"), *base = "", *sub = "";
	struct stat st;

	if (!kc->dir[0]) {
		if (!d || !*d) {
			d = getenv("XDG_CACHE_HOME");
			sub = "/kestrel";
			if (!d || !*d) {
				base = "/.cache";
				d = getenv("HOME");
			}
		}
		if (!d || *d != '/') {
			snprintf(kc->note, sizeof(kc->note),
				 "kernel cache: not used (no absolute KESTREL_CACHE_DIR, "
				 "XDG_CACHE_HOME or HOME)");
			return -1;
		}
		if ((size_t)snprintf(kc->dir, sizeof(kc->dir), "%s%s%s", d, base, sub) >=
		    sizeof(kc->dir) - sizeof(kc->name) - 1) {
			kc->dir[0] = '\0';
			snprintf(kc->note, sizeof(kc->note),
				 "kernel cache: not used (path too long)");
			return -1;
		}
	}
	for (char *p = kc->dir + 1; make; p++) {
		char c = *p;

		if (c != '/' && c != '\0')
			continue;
		*p = '\0';
		int r = mkdir(kc->dir, 0700);
		*p = c;
		if (r < 0 && errno != EEXIST) {
			snprintf(kc->note, sizeof(kc->note), "kernel cache: not used (%.150s: %s)",
				 kc->dir, strerror(errno));
			return -1;
		}
		if (!c)
			break;
	}
	/* Its entries are booted: only a directory of this user's that no one else can write. */
	if (stat(kc->dir, &st) < 0)
		return -1; /* none yet: a miss */
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 022)) {
		snprintf(kc->note, sizeof(kc->note),
			 "kernel cache: not used (%.100s: not a directory of this user's that only "
			 "it can write)",
			 kc->dir);
		return -1;
	}
	return 0;
}

/*
 * The lookup key: a CRC-32 of KEY_SAMPLES evenly spread 4 KiB samples of the payload (all of
 * it when that is smaller), not of all of it: under emulation a CRC of 8 MB took a good part
 * of a hit's time, and only the byte-for-byte comparison decides a hit anyway. Payloads that
 * differ only between the samples share an entry name and take turns being misses.
 */
#define KEY_SAMPLES 16U
#define KEY_SAMPLE (4U << 10)
static uint32_t payload_key(const uint8_t *p, size_t len)
{
	uLong c = crc32(0, Z_NULL, 0);

	if (len <= (size_t)KEY_SAMPLES * KEY_SAMPLE)
		return (uint32_t)crc32(c, p, (uInt)len);
	for (size_t i = 0; i < KEY_SAMPLES; i++)
		c = crc32(c, p + (len - KEY_SAMPLE) / (KEY_SAMPLES - 1) * i, KEY_SAMPLE);
	return (uint32_t)c;
}

/* Is fd (at its start) a complete entry for exactly this payload? */
static bool entry_matches(int fd, const uint8_t *payload, size_t len, uint32_t crc, uint64_t *out)
{
	struct entry_hdr h;
	struct stat st;
	uint8_t *map;
	bool same;

	if (fd_read_full(fd, &h, sizeof(h)) < 0 || memcmp(h.magic, ENTRY_MAGIC, 8) ||
	    h.version != ENTRY_VERSION || h.hdr_len != sizeof(h) || h.payload_len != len ||
	    h.crc != crc || h.out_len == 0 || h.out_len > ENTRY_OUT_MAX || fstat(fd, &st) < 0 ||
	    !S_ISREG(st.st_mode) || (uint64_t)st.st_size != stream_off(len) + h.out_len)
		return false;
	/* Compared in place: mapped, the copy costs no read() calls and no buffer. */
	map = mmap(NULL, sizeof(h) + len, PROT_READ, MAP_PRIVATE, fd, 0);
	if (map == MAP_FAILED)
		return false;
	same = !memcmp(map + sizeof(h), payload, len);
	munmap(map, sizeof(h) + len);
	*out = h.out_len;
	return same;
}

static int cache_lookup(void *opaque, const uint8_t *payload, size_t len, uint64_t *out_off,
			uint64_t *out_len)
{
	struct kernel_cache *kc = opaque;
	uint32_t crc = payload_key(payload, len);
	int fd;

	kc->crc = crc; /* for begin(), on a miss */
	kc->crc_len = len;
	snprintf(kc->name, sizeof(kc->name), "%zu-%08x" ENTRY_SUFFIX, len, crc);
	if (cache_dir(kc, false) < 0)
		return -1;
	snprintf(kc->hit, sizeof(kc->hit), "%s/%s", kc->dir, kc->name);
	fd = open(kc->hit, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -1;
	if (!entry_matches(fd, payload, len, crc, out_len)) {
		close(fd);
		(void)unlink(kc->hit); /* replaced when this boot stores its own */
		return -1;
	}
	/* Used now: the eviction keeps recently used entries (a failure costs only that). */
	(void)futimens(fd, NULL);
	*out_off = stream_off(len);
	return fd;
}

static void cache_reject(void *opaque)
{
	struct kernel_cache *kc = opaque;

	(void)unlink(kc->hit);
}

static int cache_begin(void *opaque, const uint8_t *payload, size_t len)
{
	struct kernel_cache *kc = opaque;
	struct entry_hdr h = {.magic = ENTRY_MAGIC,
			      .version = ENTRY_VERSION,
			      .hdr_len = sizeof(h),
			      .payload_len = len,
			      .crc = kc->crc_len == len && kc->name[0] ? kc->crc
								       : payload_key(payload, len)};
	int fd;

	if (cache_dir(kc, true) < 0)
		return -1;
	fd = open(kc->dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(kc->note, sizeof(kc->note), "kernel cache: not used (%.150s: %s)", kc->dir,
			 strerror(errno));
		return -1;
	}
	/* The decoder appends the stream at the aligned offset this leaves. */
	if (fd_write_full(fd, &h, sizeof(h)) < 0 || fd_write_full(fd, payload, len) < 0 ||
	    ftruncate(fd, (off_t)stream_off(len)) < 0 ||
	    lseek(fd, (off_t)stream_off(len), SEEK_SET) < 0) {
		snprintf(kc->note, sizeof(kc->note), "kernel cache: not stored (writing: %s)",
			 strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* Keeps at most KERNEL_CACHE_MAX_ENTRIES: removes the oldest by mtime, but never keep. */
static void evict(struct kernel_cache *kc, const char *keep)
{
	for (;;) {
		DIR *d = opendir(kc->dir);
		struct dirent *de;
		struct timespec oldest = {0};
		char victim[sizeof(kc->name)] = "";
		unsigned int n = 0;
		size_t sl = strlen(ENTRY_SUFFIX);

		if (!d)
			return;
		while ((de = readdir(d))) {
			size_t l = strlen(de->d_name);
			struct stat st;

			if (l <= sl || l >= sizeof(victim) ||
			    strcmp(de->d_name + l - sl, ENTRY_SUFFIX))
				continue;
			if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
				continue;
			n++;
			if (!strcmp(de->d_name, keep))
				continue;
			if (!victim[0] || st.st_mtim.tv_sec < oldest.tv_sec ||
			    (st.st_mtim.tv_sec == oldest.tv_sec &&
			     st.st_mtim.tv_nsec < oldest.tv_nsec)) {
				oldest = st.st_mtim;
				strcpy(victim, de->d_name);
			}
		}
		bool gone =
		    n > KERNEL_CACHE_MAX_ENTRIES && victim[0] && unlinkat(dirfd(d), victim, 0) == 0;
		closedir(d);
		if (!gone)
			return;
	}
}

/*
 * Gives back the disk blocks of the stream's zero runs of at least HOLE_MIN (a kernel's bss
 * and brk, init scratch: about half of it): on a hit the loader skips holes (guest RAM is
 * zero already) instead of copying or mapping zeros. Best effort: a file system without
 * holes keeps the zeros.
 */
#define HOLE_MIN (64U << 10)
static uint64_t punch(int fd, uint64_t at, uint64_t len)
{
	return len >= HOLE_MIN && fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					    (off_t)at, (off_t)len) == 0
		   ? len
		   : 0;
}

/* The bytes it turned into holes. */
static uint64_t punch_zeros(int fd, uint64_t from, uint64_t to)
{
	static const uint8_t zero[4096];
	uint8_t buf[HOLE_MIN];
	uint64_t run = from, holes = 0; /* run: where the current zero run began */

	for (uint64_t at = from; at < to;) {
		size_t n = to - at < sizeof(buf) ? (size_t)(to - at) : sizeof(buf);

		if (pread(fd, buf, n, (off_t)at) != (ssize_t)n)
			return holes;
		for (size_t i = 0; i < n; i += sizeof(zero)) {
			size_t m = n - i < sizeof(zero) ? n - i : sizeof(zero);
			bool z = m == sizeof(zero) && !memcmp(buf + i, zero, m);

			if (!z) {
				holes += punch(fd, run, at + i - run);
				run = at + i + m;
			}
		}
		at += n;
	}
	return holes + punch(fd, run, to - run);
}

static void cache_end(void *opaque, int fd, bool ok, uint64_t out_len)
{
	struct kernel_cache *kc = opaque;
	char proc[64], tmp[PATH_MAX + 32];
	uint64_t holes;
	struct entry_hdr h;
	struct stat st;

	if (!ok) {
		close(fd);
		return;
	}
	/* The decoder stops writing here when the disk is full: the size tells. */
	if (pread(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h) || fstat(fd, &st) < 0 ||
	    h.payload_len > ENTRY_OUT_MAX ||
	    (uint64_t)st.st_size != stream_off(h.payload_len) + out_len || out_len == 0 ||
	    out_len > ENTRY_OUT_MAX) {
		snprintf(kc->note, sizeof(kc->note),
			 "kernel cache: not stored (the entry is incomplete: disk full?)");
		close(fd);
		return;
	}
	h.out_len = out_len;
	holes = punch_zeros(fd, stream_off(h.payload_len), stream_off(h.payload_len) + out_len);
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	snprintf(tmp, sizeof(tmp), "%s/.tmp-%d" ENTRY_SUFFIX "-new", kc->dir, (int)getpid());
	(void)unlink(tmp); /* a kestrel of this pid that died here */
	/* Durable before it has a name: a crash must not leave a linked entry whose header says
	 * complete over blocks that never reached the disk (a hit is not checksummed). */
	if (pwrite(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h) || fdatasync(fd) < 0 ||
	    linkat(AT_FDCWD, proc, AT_FDCWD, tmp, AT_SYMLINK_FOLLOW) < 0) {
		snprintf(kc->note, sizeof(kc->note), "kernel cache: not stored (%s)",
			 strerror(errno));
		close(fd);
		return;
	}
	close(fd);
	snprintf(kc->hit, sizeof(kc->hit), "%s/%s", kc->dir, kc->name);
	if (rename(tmp, kc->hit) < 0) {
		snprintf(kc->note, sizeof(kc->note), "kernel cache: not stored (rename: %s)",
			 strerror(errno));
		(void)unlink(tmp);
		return;
	}
	evict(kc, kc->name);
	snprintf(kc->note, sizeof(kc->note),
		 "kernel cache: stored %.120s (%.1f MB of zeros as holes)", kc->hit, holes / 1e6);
}

void kernel_cache_init(struct kernel_cache *kc)
{
	memset(kc, 0, sizeof(*kc));
	kc->ops = (struct arch_unpack_cache){.opaque = kc,
					     .lookup = cache_lookup,
					     .reject = cache_reject,
					     .begin = cache_begin,
					     .end = cache_end};
}
