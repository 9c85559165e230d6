/*
 * A bzImage whose payload is xz, decompressed by kestrel rather than by the guest. The payload
 * is the kernel's vmlinux.bin (a stripped ELF, perhaps followed by its relocations, which a
 * kernel run where it was linked does not need), so the guest is entered at the kernel proper
 * the way an ELF vmlinux is (boot_elf.c) and skips its own decompressor, which runs with the
 * caches cold and, nested, much slower than native code.
 *
 * liblzma needs a 32 MiB dictionary for a kernel and the ELF is 60+ MB; neither may count
 * against kestrel's own memory. A forked child decodes, from an arena it maps up front and in
 * SECCOMP_MODE_STRICT (read, write and exit only: a decoder bug the image finds stays there),
 * and writes the ELF to a pipe. kestrel reads the headers, then each PT_LOAD's bytes straight
 * into guest RAM at its physical address, and discards the rest; the child's exit status says
 * whether the whole stream, its CRC included, was sound. The child keeps no descriptor but
 * the pipe's, and no view of guest RAM (MADV_DONTFORK). kestrel is single-threaded here
 * (vm_load_kernel runs before vm_start creates any thread), and the child only computes,
 * writes to the pipe and exits.
 *
 * With a cache of unpacked kernels (cfg->cache, kept by vmm/kernel_cache.c), an exact hit is
 * streamed from its file the same way, with no decoder; on a miss the child also writes the
 * stream to a descriptor the cache gave, which the cache keeps once the kernel has loaded.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/seccomp.h>
#include <lzma.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "arch/x86/boot.h"
#include "arch/x86/boot_priv.h"
#include "vmm/fd_io.h"

#define XZ_MAGIC "\xfd\x37\x7a\x58\x5a\x00"
#define XZ_MAGIC_LEN 6
#define UNPACK_MEMLIMIT (64ULL << 20) /* the decoder's own limit: a kernel's needs 33 MiB */
#define UNPACK_ARENA (UNPACK_MEMLIMIT + (4ULL << 20))
#define UNPACK_CHUNK (1U << 20)	      /* the child's writes: few system calls (strace -f) */
#define UNPACK_PIPE_SIZE (1U << 20)   /* fewer wake-ups than the default 64 KiB */
#define UNPACK_HDR_MAX 4096	      /* the ELF and program headers must be in here */
#define UNPACK_NOTES_MAX (64U << 10)  /* all PT_NOTEs together */
#define UNPACK_OUT_MAX (512ULL << 20) /* no kernel is bigger; a bomb is cut off here */
#define UNPACK_SCRATCH (16U << 10)    /* for the bytes kestrel discards */

/* The child's exit statuses. */
enum {
	CHILD_OK = 0,
	CHILD_CORRUPT = 10, /* liblzma: the data are corrupt (the CRC too) */
	CHILD_TRUNCATED,    /* the payload ends inside the stream */
	CHILD_NO_MEMORY,
	CHILD_UNSUPPORTED, /* options (a filter, a check) this liblzma lacks */
	CHILD_WRITE,	   /* kestrel stopped reading */
	CHILD_SETUP,
};

struct arena {
	uint8_t *base;
	size_t size, used;
};

static void *arena_alloc(void *opaque, size_t nmemb, size_t size)
{
	struct arena *a = opaque;
	size_t n;
	void *p;

	if (size && nmemb > (SIZE_MAX - 63) / size)
		return NULL;
	n = (nmemb * size + 63) & ~(size_t)63;
	if (n > a->size - a->used)
		return NULL;
	p = a->base + a->used;
	a->used += n;
	return p;
}

/* Nothing is given back: the child exits when it is done. */
static void arena_free(void *opaque, void *ptr)
{
	(void)opaque;
	(void)ptr;
}

/* exit(2) itself: strict mode allows it and not exit_group, and this process has one thread. */
static _Noreturn void child_exit(int status)
{
	syscall(SYS_exit, status);
	__builtin_unreachable();
}

/* Closes every descriptor but a and b (b may be -1). */
static int keep_only(int a, int b)
{
	unsigned int lo = (unsigned int)(b >= 0 && b < a ? b : a),
		     hi = (unsigned int)(b > a ? b : a);

	return (lo > 0 && close_range(0, lo - 1, 0) < 0) ||
	       (hi > lo + 1 && close_range(lo + 1, hi - 1, 0) < 0) ||
	       close_range(hi + 1, ~0U, 0) < 0;
}

static _Noreturn void child_decode(const uint8_t *in, size_t len, int fd, int cfd)
{
	struct arena a = {.size = UNPACK_ARENA};
	lzma_allocator al = {arena_alloc, arena_free, &a};
	lzma_stream s = LZMA_STREAM_INIT;
	uint8_t *out;
	lzma_ret r;

	a.base = mmap(NULL, UNPACK_ARENA, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (a.base == MAP_FAILED)
		child_exit(CHILD_SETUP);
	out = arena_alloc(&a, 1, UNPACK_CHUNK);
	s.allocator = &al;
	/* Not LZMA_CONCATENATED: the bzImage's 4-byte output size follows the stream. */
	if (lzma_stream_decoder(&s, UNPACK_MEMLIMIT, 0) != LZMA_OK)
		child_exit(CHILD_SETUP);
	/* For ps and top; a failure changes nothing else. */
	(void)prctl(PR_SET_NAME, "kestrel-unxz", 0, 0, 0);
	/* Strict mode still allows write(2) on any descriptor: keep only the pipe's (and the
	 * cache file's). */
	if (keep_only(fd, cfd))
		child_exit(CHILD_SETUP);
#ifndef KESTREL_SANITIZE /* the sanitizers' runtimes make calls of their own */
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT, 0, 0, 0) < 0)
		child_exit(CHILD_SETUP);
#endif
	s.next_in = in;
	s.avail_in = len;
	do {
		s.next_out = out;
		s.avail_out = UNPACK_CHUNK;
		r = lzma_code(&s, LZMA_FINISH);
		if (fd_write_full(fd, out, UNPACK_CHUNK - s.avail_out))
			child_exit(CHILD_WRITE);
		/* A full disk only costs the entry (the cache checks the file's size). */
		if (cfd >= 0 && fd_write_full(cfd, out, UNPACK_CHUNK - s.avail_out))
			cfd = -1;
	} while (r == LZMA_OK);
	switch (r) {
	case LZMA_STREAM_END:
		child_exit(CHILD_OK);
	case LZMA_DATA_ERROR:
	case LZMA_FORMAT_ERROR:
		child_exit(CHILD_CORRUPT);
	case LZMA_BUF_ERROR:
		child_exit(CHILD_TRUNCATED);
	case LZMA_MEM_ERROR:
	case LZMA_MEMLIMIT_ERROR:
		child_exit(CHILD_NO_MEMORY);
	case LZMA_OPTIONS_ERROR:
		child_exit(CHILD_UNSUPPORTED);
	default:
		child_exit(CHILD_SETUP);
	}
}

/* kestrel's side: the ELF arriving on fd. */
struct unpack {
	const struct guest_mem *gm;
	int fd;
	uint64_t off; /* bytes read so far */
	struct x86_elf e;
	uint8_t hdr[UNPACK_HDR_MAX];
	uint8_t *notes; /* every PT_NOTE's bytes, back to back */
	int last_seg;	/* the last PT_LOAD written to (-1: none) and how far */
	uint64_t last_done;
	const char *miss; /* for the note: "; cache miss" when there is a cache */
};

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* Keeps the PT_NOTE bytes among the n read at file offset off. */
static void keep_notes(struct unpack *u, const uint8_t *p, uint64_t off, uint64_t n)
{
	uint64_t slot = 0;

	if (!u->notes)
		return;
	for (int i = 0; i < u->e.eh.e_phnum; i++) {
		Elf64_Phdr ph;
		uint64_t lo, hi;

		x86_elf_read_phdr(&u->e, i, &ph);
		if (ph.p_type != PT_NOTE)
			continue;
		/* Checked: p_offset + p_filesz does not wrap. */
		lo = off > ph.p_offset ? off : ph.p_offset;
		hi = min_u64(off + n, ph.p_offset + ph.p_filesz);
		if (lo < hi)
			memcpy(u->notes + slot + (lo - ph.p_offset), p + (lo - off), hi - lo);
		slot += ph.p_filesz;
	}
}

/* Reads up to len bytes to dst: their count, 0 at the end of the stream, -1 on an error. */
static ssize_t pipe_read(struct unpack *u, uint8_t *dst, size_t len, struct kerr *err)
{
	ssize_t n;

	do
		n = read(u->fd, dst, len);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return kerr_set(err, "reading the decompressed kernel: %s", strerror(errno));
	keep_notes(u, dst, u->off, (uint64_t)n);
	u->off += (uint64_t)n;
	return n;
}

/* Discards bytes up to file offset to (UINT64_MAX: to the end, at most UNPACK_OUT_MAX). */
static int skip_to(struct unpack *u, uint64_t to, struct kerr *err)
{
	uint8_t scratch[UNPACK_SCRATCH];

	while (u->off < to) {
		ssize_t n = pipe_read(u, scratch, min_u64(to - u->off, sizeof(scratch)), err);

		if (n < 0)
			return -1;
		if (n == 0 && to == UINT64_MAX)
			return 0;
		if (n == 0)
			return kerr_set(err, "the ELF ends at byte %llu, before its segments do",
					(unsigned long long)u->off);
		if (u->off > UNPACK_OUT_MAX)
			return kerr_set(err, "the payload decompresses to more than %llu MiB",
					UNPACK_OUT_MAX >> 20);
	}
	return 0;
}

/* The ELF and program headers, from the first bytes; every check boot_elf.c makes. */
static int read_headers(struct unpack *u, const struct x86_boot_config *cfg,
			const struct setup_header *hdr, struct kerr *err)
{
	struct x86_boot_extras ex;
	uint64_t notes_len = 0, prev_end = 0;

	while (u->off < sizeof(u->hdr)) {
		ssize_t n = pipe_read(u, u->hdr + u->off, sizeof(u->hdr) - u->off, err);

		if (n < 0)
			return -1;
		if (n == 0)
			break;
	}
	u->e = (struct x86_elf){.img = u->hdr, .len = u->off, .file_len = UINT64_MAX, .fd = -1};
	if (x86_elf_check_ehdr(&u->e, err) < 0 || x86_elf_check_phdrs(u->gm, &u->e, err) < 0)
		return -1;
	/* Fail before decompressing 60 MB when command line or initrd cannot fit anyway. */
	if (x86_elf_plan_extras(u->gm, cfg, &u->e, hdr, &ex, err) < 0)
		return -1;
	for (int i = 0; i < u->e.eh.e_phnum; i++) {
		Elf64_Phdr ph;

		x86_elf_read_phdr(&u->e, i, &ph);
		if (ph.p_type == PT_NOTE)
			notes_len += ph.p_filesz; /* checked at each step: cannot wrap */
		if (notes_len > UNPACK_NOTES_MAX)
			return kerr_set(err, "the ELF's notes take more than %u KiB",
					UNPACK_NOTES_MAX >> 10);
		/* The bytes arrive once, in order: so must the segments (vmlinux's do). */
		if (ph.p_type != PT_LOAD || ph.p_memsz == 0)
			continue;
		if (ph.p_offset < prev_end)
			return kerr_set(err, "ELF segment %d is not in file order", i);
		prev_end = ph.p_offset + ph.p_filesz; /* checked: cannot wrap */
	}
	u->notes = calloc(1, notes_len ? notes_len : 1);
	if (!u->notes)
		return kerr_set(err, "out of memory");
	keep_notes(u, u->hdr, 0, u->off);
	return 0;
}

/*
 * Each PT_LOAD's file bytes into guest RAM as they arrive, then its bss zeroed (read_headers
 * checked that they come in file order).
 */
static int load_segments(struct unpack *u, struct kerr *err)
{
	for (int i = 0; i < u->e.eh.e_phnum; i++) {
		Elf64_Phdr ph;
		uint64_t done = 0;
		uint8_t *dst;

		x86_elf_read_phdr(&u->e, i, &ph);
		if (ph.p_type != PT_LOAD || ph.p_memsz == 0)
			continue;
		dst = guest_mem_ptr(u->gm, ph.p_paddr, ph.p_memsz); /* checked by check_phdrs */
		u->last_seg = i;
		u->last_done = 0;
		/* Past the header, off is the previous segment's end (file order): only the
		 * header's bytes can be behind it. */
		if (ph.p_offset < u->off) {
			done = min_u64(u->off - ph.p_offset, ph.p_filesz);
			memcpy(dst, u->hdr + ph.p_offset, done);
		} else if (skip_to(u, ph.p_offset, err) < 0) {
			return -1;
		}
		while (done < ph.p_filesz) {
			ssize_t n =
			    pipe_read(u, dst + done, min_u64(ph.p_filesz - done, SSIZE_MAX), err);

			if (n < 0)
				return -1;
			if (n == 0)
				return kerr_set(err, "the ELF ends inside segment %d", i);
			done += (uint64_t)n;
			u->last_done = done;
		}
		memset(dst + ph.p_filesz, 0, ph.p_memsz - ph.p_filesz);
		u->last_done = ph.p_memsz;
	}
	return 0;
}

/* A failed load leaves guest RAM as it found it (zero: nothing else is above 1 MiB yet). */
static void undo_segments(struct unpack *u)
{
	for (int i = 0; i <= u->last_seg; i++) {
		Elf64_Phdr ph;

		x86_elf_read_phdr(&u->e, i, &ph);
		if (ph.p_type != PT_LOAD || ph.p_memsz == 0)
			continue;
		memset(guest_mem_ptr(u->gm, ph.p_paddr, ph.p_memsz), 0,
		       i == u->last_seg ? u->last_done : ph.p_memsz);
	}
	u->last_seg = -1;
}

/* The notes (now all read) for the PVH entry. */
static int read_notes(struct unpack *u, struct kerr *err)
{
	uint64_t slot = 0;

	for (int i = 0; i < u->e.eh.e_phnum; i++) {
		Elf64_Phdr ph;

		x86_elf_read_phdr(&u->e, i, &ph);
		if (ph.p_type != PT_NOTE)
			continue;
		if (ph.p_offset + ph.p_filesz > u->off)
			return kerr_set(err, "the ELF ends inside note segment %d", i);
		if (x86_elf_find_pvh_note(&u->e, i, u->notes + slot, ph.p_filesz, err) < 0)
			return -1;
		slot += ph.p_filesz;
	}
	return 0;
}

static const char *payload_kind(const uint8_t *p, size_t len)
{
	static const struct {
		const char *magic, *name;
	} kinds[] = {
	    {"\x1f\x8b", "gzip"},	 {"BZh", "bzip2"},
	    {"\x5d\x00\x00", "lzma"},	 {"\x89LZO", "lzo"},
	    {"\x02\x21\x4c\x18", "lz4"}, {"\x28\xb5\x2f\xfd", "zstd"},
	    {"\177ELF", "uncompressed"},
	};

	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		size_t n = strlen(kinds[i].magic);

		/* lzma's magic has NULs: its first byte and length 3 identify it well enough. */
		if (kinds[i].magic[1] == '\0')
			n = 3;
		if (len >= n && memcmp(p, kinds[i].magic, n) == 0)
			return kinds[i].name;
	}
	return "not a known format";
}

static double now_ms(void)
{
	struct timespec ts;

	/* CLOCK_MONOTONIC cannot fail with a valid pointer. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Reaps the child; its exit status, or -1 if a signal ended it. */
static int reap(pid_t pid, struct rusage *ru)
{
	int st;

	while (wait4(pid, &st, 0, ru) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static const char *child_reason(int status)
{
	switch (status) {
	case CHILD_NO_MEMORY:
		return "liblzma ran out of memory";
	case CHILD_UNSUPPORTED:
		return "liblzma does not support the stream's options";
	case CHILD_WRITE:
		return "the decoder stopped";
	case CHILD_SETUP:
		return "the decoder could not start";
	default:
		return "the decoder was killed";
	}
}

/* The whole stream is in: its notes, then the boot as for an ELF vmlinux. */
static int enter(struct unpack *u, const struct x86_boot_config *cfg,
		 const struct setup_header *hdr, struct x86_boot *out, struct kerr *why)
{
	struct x86_elf_plan *plan = malloc(sizeof(*plan));
	int ret = -1;

	u->e.file_len = u->off;
	if (!plan)
		kerr_set(why, "out of memory");
	else if (read_notes(u, why) == 0 && x86_elf_plan(u->gm, cfg, &u->e, hdr, plan, why) == 0)
		ret = 0;
	if (ret == 0)
		x86_elf_commit(u->gm, &u->e, plan, out);
	free(plan);
	return ret;
}

/*
 * A hit: the ELF in the cache's file is loaded as a whole (mapped read-only for its headers
 * and notes; the segments are read into guest RAM, their holes skipped: guest_mem_place).
 * 0 loaded; 1 not (nothing written, the entry dropped: the decoder then gives the verdict).
 */
static int from_cache(const struct guest_mem *gm, int fd, uint64_t off, uint64_t len, double t0,
		      const struct x86_boot_config *cfg, const struct setup_header *hdr,
		      struct x86_boot *out)
{
	struct kerr why = {{0}};
	uint8_t *map = MAP_FAILED;
	int ret = 1;

	if (len <= UNPACK_OUT_MAX && off + len <= SIZE_MAX)
		map = mmap(NULL, off + len, PROT_READ, MAP_PRIVATE, fd, 0);
	if (map != MAP_FAILED) {
		struct x86_elf e = {
		    .img = map + off, .len = len, .file_len = len, .fd = fd, .fd_off = off};

		ret = x86_elf_load(gm, cfg, &e, hdr, out, &why);
		munmap(map, off + len);
	}
	close(fd);
	if (ret == 0) {
		snprintf(out->note, sizeof(out->note),
			 "kernel: xz payload from the cache (%.1f MB in %.0f ms)", len / 1e6,
			 now_ms() - t0);
		return 0;
	}
	cfg->cache->reject(cfg->cache->opaque);
	return 1;
}

/* Streams, with the child decoding; 0 loaded, 1 not (why in err), -1 error. */
static int unpack(struct unpack *u, pid_t pid, double t0, const struct x86_boot_config *cfg,
		  const struct setup_header *hdr, struct x86_boot *out, struct kerr *err)
{
	struct kerr why = {{0}}, drain;
	struct rusage ru;
	int st, ret = 1;
	bool streamed, killed = false;

	/*
	 * Headers kestrel cannot load: stop the decoder now and let the guest decompress (it
	 * did so before, corrupt streams included). A stream that ends too early may be a
	 * corrupt one: read on for the child's verdict, so it can be reported as such.
	 */
	streamed = read_headers(u, cfg, hdr, &why) == 0;
	if (!streamed)
		killed = kill(pid, SIGKILL) == 0; /* our own child, not yet reaped */
	else if (load_segments(u, &why) < 0)
		streamed = false;
	if (!killed && skip_to(u, UINT64_MAX, streamed ? &why : &drain) < 0) {
		streamed = false;
		killed = kill(pid, SIGKILL) == 0;
	}
	if (close(u->fd) < 0 && streamed) {
		kerr_set(&why, "closing the pipe: %s", strerror(errno));
		streamed = false;
	}
	u->fd = -1;
	st = reap(pid, &ru);
	if (st == CHILD_CORRUPT || st == CHILD_TRUNCATED) {
		ret = kerr_set(err,
			       "kernel image is corrupt: its xz payload %s (the kernel's own "
			       "decompressor would fail too)",
			       st == CHILD_CORRUPT ? "does not decompress" : "is cut off");
		goto undo;
	}
	if (st != CHILD_OK) {
		if (!killed) /* else why says why kestrel stopped it */
			kerr_set(&why, "%s", child_reason(st));
		goto fallback;
	}
	if (!streamed || enter(u, cfg, hdr, out, &why) < 0)
		goto fallback;
	snprintf(out->note, sizeof(out->note),
		 "kernel: xz payload unpacked on the host (%.1f MB in %.0f ms; the decoder "
		 "process: %.0f ms CPU, peak RSS %ld MiB%s)",
		 u->off / 1e6, now_ms() - t0,
		 (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
		     (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3,
		 ru.ru_maxrss >> 10, u->miss);
	return 0;
fallback:
	snprintf(out->note, sizeof(out->note),
		 "kernel: not unpacked on the host (%.96s): decompressed by the guest", why.msg);
undo:
	undo_segments(u);
	return ret;
}

int x86_unpack_bzimage(const struct guest_mem *gm, const struct x86_boot_config *cfg,
		       const struct setup_header *hdr, const uint8_t *payload, size_t len,
		       struct x86_boot *out, struct kerr *err)
{
	const struct arch_unpack_cache *c = cfg->cache;
	struct unpack u = {.gm = gm, .fd = -1, .last_seg = -1};
	double t0 = now_ms();
	int fds[2], ret, cfd = -1;
	uint64_t hit_off, hit_len;
	pid_t pid;

	if (len < XZ_MAGIC_LEN || memcmp(payload, XZ_MAGIC, XZ_MAGIC_LEN) != 0) {
		snprintf(out->note, sizeof(out->note),
			 "kernel: the payload is %s, not xz: decompressed by the guest",
			 payload_kind(payload, len));
		return 1;
	}
	if (c && (ret = c->lookup(c->opaque, payload, len, &hit_off, &hit_len)) >= 0 &&
	    from_cache(gm, ret, hit_off, hit_len, t0, cfg, hdr, out) == 0)
		return 0;
	u.miss = c ? "; cache miss" : "";
	if (pipe2(fds, O_CLOEXEC) < 0) {
		snprintf(out->note, sizeof(out->note),
			 "kernel: not unpacked on the host (pipe: %s): decompressed by the guest",
			 strerror(errno));
		return 1;
	}
	/* Only an optimisation: a smaller pipe works too. */
	if (fcntl(fds[1], F_SETPIPE_SZ, UNPACK_PIPE_SIZE) < 0)
		errno = 0;
	if (c)
		cfd = c->begin(c->opaque, payload, len);
	pid = fork();
	if (pid == 0)
		child_decode(payload, len, fds[1], cfd); /* it closes every other descriptor */
	close(fds[1]);
	if (pid < 0) {
		close(fds[0]);
		snprintf(out->note, sizeof(out->note),
			 "kernel: not unpacked on the host (fork: %s): decompressed by the guest",
			 strerror(errno));
		if (cfd >= 0)
			c->end(c->opaque, cfd, false, 0);
		return 1;
	}
	u.fd = fds[0];
	ret = unpack(&u, pid, t0, cfg, hdr, out, err);
	if (cfd >= 0)
		c->end(c->opaque, cfd, ret == 0, u.off);
	free(u.notes);
	return ret;
}
