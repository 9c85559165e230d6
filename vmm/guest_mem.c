#include "vmm/guest_mem.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/*
 * Each region is 2 MiB-aligned in kestrel's address space, as in the guest's: only then can
 * KVM map it with huge pages (host and guest address agree modulo 2 MiB), and between a
 * PROT_NONE guard page on each side, so that a device bug running past guest RAM faults
 * instead of reaching kestrel's own memory.
 */
#define GUEST_MEM_ALIGN (2ULL << 20)

int guest_mem_map(struct guest_mem *gm, const struct guest_mem_region *layout, int nr,
		  struct kerr *err)
{
	const uint64_t pg = (uint64_t)sysconf(_SC_PAGESIZE);

	memset(gm, 0, sizeof(*gm));
	if (nr <= 0 || nr > GUEST_MEM_MAX_REGIONS)
		return kerr_set(err, "bad guest memory layout (%d regions)", nr);
	for (int i = 0; i < nr; i++) {
		uint64_t size = layout[i].size, span = size + GUEST_MEM_ALIGN + 2 * pg;
		uint8_t *p, *host, *end;

		if (size == 0 || size % pg || size > UINT64_MAX / 2)
			return kerr_set(err, "bad guest memory region size 0x%llx",
					(unsigned long long)size);
		p = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (p == MAP_FAILED) {
			int e = errno;
			guest_mem_unmap(gm);
			return kerr_set(err, "cannot allocate %llu MiB of guest memory: %s",
					(unsigned long long)(size >> 20), strerror(e));
		}
		host = (uint8_t *)(((uintptr_t)p + pg + GUEST_MEM_ALIGN - 1) &
				   ~(uintptr_t)(GUEST_MEM_ALIGN - 1));
		end = host + size;
		/* Keep one guard page each side; give the slack back. */
		if (host - pg > p)
			munmap(p, (size_t)(host - pg - p));
		if (end + pg < p + span)
			munmap(end + pg, (size_t)(p + span - end - pg));
		gm->regions[i] = layout[i];
		gm->regions[i].host = host;
		gm->nr_regions = i + 1;
		if (mprotect(host, size, PROT_READ | PROT_WRITE) < 0) {
			int e = errno;
			guest_mem_unmap(gm);
			return kerr_set(err, "cannot allocate %llu MiB of guest memory: %s",
					(unsigned long long)(size >> 20), strerror(e));
		}
		/* Guest RAM is the bulk of the process: let the kernel back it with huge pages. */
		madvise(host, size, MADV_HUGEPAGE);
		/* A child kestrel forks (x86's kernel decompressor) gets no view of the guest. */
		if (madvise(host, size, MADV_DONTFORK) < 0) {
			int e = errno;
			guest_mem_unmap(gm);
			return kerr_set(err, "madvise(MADV_DONTFORK) on guest memory: %s",
					strerror(e));
		}
		gm->ram_size += size;
	}
	return 0;
}

void guest_mem_unmap(struct guest_mem *gm)
{
	const uint64_t pg = (uint64_t)sysconf(_SC_PAGESIZE);

	for (int i = 0; i < gm->nr_regions; i++)
		if (gm->regions[i].host)
			munmap(gm->regions[i].host - pg, gm->regions[i].size + 2 * pg);
	memset(gm, 0, sizeof(*gm));
}

void *guest_mem_ptr(const struct guest_mem *gm, uint64_t gpa, uint64_t len)
{
	for (int i = 0; i < gm->nr_regions; i++) {
		const struct guest_mem_region *r = &gm->regions[i];
		if (gpa < r->gpa || gpa - r->gpa >= r->size)
			continue;
		/* Subtraction form so gpa + len can never overflow. */
		if (len > r->size - (gpa - r->gpa))
			return NULL;
		return r->host + (gpa - r->gpa);
	}
	return NULL;
}

bool guest_mem_write(const struct guest_mem *gm, uint64_t gpa, const void *src, uint64_t len)
{
	void *dst = guest_mem_ptr(gm, gpa, len);

	if (!dst)
		return false;
	memcpy(dst, src, len);
	return true;
}

int guest_mem_place(const struct guest_mem *gm, uint64_t gpa, const void *src, uint64_t len, int fd,
		    uint64_t off, struct kerr *err)
{
	uint8_t *dst = guest_mem_ptr(gm, gpa, len);
	const uint8_t *from = src;
	const uint64_t pg = (uint64_t)sysconf(_SC_PAGESIZE);
	uint64_t at = 0;

	if (!dst)
		return kerr_set(err, "placing 0x%llx bytes at 0x%llx: not guest RAM",
				(unsigned long long)len, (unsigned long long)gpa);
	if (fd < 0) {
		memcpy(dst, src, len);
		return 0;
	}
	/* The data runs only: a hole reads as zeros, which guest RAM here still is. */
	while (at < len) {
		off_t d = lseek(fd, (off_t)(off + at), SEEK_DATA), h;
		uint64_t data = at, end = len;

		if (d < 0 && errno == ENXIO)
			return 0; /* holes to the end */
		if (d >= 0) {
			data = (uint64_t)d - off < len ? (uint64_t)d - off : len;
			h = lseek(fd, d, SEEK_HOLE);
			if (h > d && (uint64_t)h - off < len)
				end = (uint64_t)h - off;
		}
		/*
		 * Copied from src with memcpy, not pread() into guest RAM: in the emulated test
		 * host the kernel's copy_to_user (`rep movsb`) cost about 5x the vector copy
		 * (docs/performance.md). The run is prefaulted in one call rather than page
		 * by page. The caller unmaps src right after, so its page cache pages do not
		 * stay in kestrel's RSS.
		 */
		if (data < end) {
			uintptr_t lo = (uintptr_t)(from + data) & ~(uintptr_t)(pg - 1);

			(void)madvise((void *)lo, (uintptr_t)(from + end) - lo, MADV_POPULATE_READ);
			memcpy(dst + data, from + data, end - data);
		}
		at = end;
	}
	return 0;
}
