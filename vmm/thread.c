#include "vmm/thread.h"

#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

int kthread_start(struct kthread *t, void *(*fn)(void *), void *arg)
{
	size_t guard = (size_t)sysconf(_SC_PAGESIZE), len = KTHREAD_STACK_SIZE + guard;
	pthread_attr_t attr;
	uint8_t *map;
	int rc;

	map =
	    mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (map == MAP_FAILED)
		return errno;
	/* MAP_STACK implies NOHUGEPAGE only on newer kernels (not 6.1). NOHUGEPAGE also keeps
	 * the kernel from merging the stack with a neighbour that may have huge pages. The
	 * guard page is the lowest: stacks grow down. */
	if (madvise(map, len, MADV_NOHUGEPAGE) < 0 || mprotect(map, guard, PROT_NONE) < 0) {
		rc = errno;
		goto unmap;
	}
	rc = pthread_attr_init(&attr);
	if (rc)
		goto unmap;
	rc = pthread_attr_setstack(&attr, map + guard, KTHREAD_STACK_SIZE);
	if (!rc)
		rc = pthread_create(&t->id, &attr, fn, arg);
	pthread_attr_destroy(&attr);
	if (rc)
		goto unmap;
	t->map = map;
	t->map_len = len;
	return 0;
unmap:
	munmap(map, len);
	return rc;
}

void kthread_join(struct kthread *t)
{
	if (!t->map)
		return;
	pthread_join(t->id, NULL);
	munmap(t->map, t->map_len);
	t->map = NULL;
}
