#include "vmm/guest_mem.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

int guest_mem_map(struct guest_mem *gm, const struct guest_mem_region *layout, int nr,
		  struct kerr *err)
{
	memset(gm, 0, sizeof(*gm));
	if (nr <= 0 || nr > GUEST_MEM_MAX_REGIONS)
		return kerr_set(err, "bad guest memory layout (%d regions)", nr);
	for (int i = 0; i < nr; i++) {
		void *p = mmap(NULL, layout[i].size, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (p == MAP_FAILED) {
			int e = errno;
			guest_mem_unmap(gm);
			return kerr_set(err, "cannot allocate %llu MiB of guest memory: %s",
					(unsigned long long)(layout[i].size >> 20), strerror(e));
		}
		/* Guest RAM is the bulk of the process: let the kernel back it with huge pages. */
		madvise(p, layout[i].size, MADV_HUGEPAGE);
		gm->regions[i] = layout[i];
		gm->regions[i].host = p;
		gm->nr_regions = i + 1;
		/* A child kestrel forks (x86's kernel decompressor) gets no view of the guest. */
		if (madvise(p, layout[i].size, MADV_DONTFORK) < 0) {
			int e = errno;
			guest_mem_unmap(gm);
			return kerr_set(err, "madvise(MADV_DONTFORK) on guest memory: %s",
					strerror(e));
		}
		gm->ram_size += layout[i].size;
	}
	return 0;
}

void guest_mem_unmap(struct guest_mem *gm)
{
	for (int i = 0; i < gm->nr_regions; i++)
		if (gm->regions[i].host)
			munmap(gm->regions[i].host, gm->regions[i].size);
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
