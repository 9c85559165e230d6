/*
 * kestrel's threads: each runs on a 1 MiB stack of its own, with a guard page below it,
 * marked never to be backed by transparent huge pages, and freed when the thread is joined.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vmm/thread.h"

struct vma {
	uintptr_t lo, hi;
	char perms[5];
	char flags[512]; /* smaps' VmFlags line */
	int thp_eligible;
};

/* The mapping of /proc/self/smaps that holds addr; false if none does. */
static bool find_vma(uintptr_t addr, struct vma *v)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	bool in = false, found = false;

	cr_assert_not_null(f);
	memset(v, 0, sizeof(*v));
	v->thp_eligible = -1;
	while (fgets(line, sizeof(line), f)) {
		uintptr_t lo, hi;
		char perms[5];

		if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " %4s", &lo, &hi, perms) == 3) {
			if (found)
				break;
			in = addr >= lo && addr < hi;
			if (in) {
				found = true;
				v->lo = lo;
				v->hi = hi;
				memcpy(v->perms, perms, sizeof(perms));
			}
		} else if (in && !strncmp(line, "VmFlags:", 8)) {
			snprintf(v->flags, sizeof(v->flags), "%s", line + 8);
		} else if (in && !strncmp(line, "THPeligible:", 12)) {
			v->thp_eligible = atoi(line + 12);
		}
	}
	fclose(f);
	return found;
}

struct seen {
	uintptr_t local;
	struct vma stack, below;
	bool stack_found, below_found;
};

static void *look(void *arg)
{
	struct seen *s = arg;
	volatile char here = 0;

	s->local = (uintptr_t)&here;
	s->stack_found = find_vma(s->local, &s->stack);
	if (s->stack_found)
		s->below_found = find_vma(s->stack.lo - 1, &s->below);
	return NULL;
}

Test(thread, runs_on_a_small_stack_that_never_gets_huge_pages)
{
	struct kthread t = {0};
	struct seen s = {0};

	cr_assert_eq(kthread_start(&t, look, &s), 0);
	kthread_join(&t);
	cr_assert(s.stack_found, "no mapping holds the thread's stack");
	cr_assert_eq(s.stack.hi - s.stack.lo, KTHREAD_STACK_SIZE, "stack mapping of %zu bytes",
		     (size_t)(s.stack.hi - s.stack.lo));
	cr_assert_str_eq(s.stack.perms, "rw-p");
	cr_assert_not_null(strstr(s.stack.flags, " nh"), "no nohugepage flag: %s", s.stack.flags);
	cr_assert_neq(s.stack.thp_eligible, 1, "the stack may get huge pages");
	cr_assert(s.below_found, "nothing below the stack");
	cr_assert_str_eq(s.below.perms, "---p", "below the stack: %s, not a guard page",
			 s.below.perms);
}

Test(thread, stack_is_freed_on_join)
{
	struct kthread t = {0};
	struct seen s = {0};
	long page = sysconf(_SC_PAGESIZE);

	cr_assert_eq(kthread_start(&t, look, &s), 0);
	cr_assert_not_null(t.map);
	kthread_join(&t);
	cr_assert_null(t.map);
	errno = 0;
	cr_assert_eq(msync((void *)(s.local & ~(uintptr_t)(page - 1)), (size_t)page, MS_ASYNC), -1,
		     "the stack is still mapped after the join");
	cr_assert_eq(errno, ENOMEM);
	kthread_join(&t); /* a second join does nothing */
}

static void *count(void *arg)
{
	__atomic_add_fetch((int *)arg, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

Test(thread, many_threads_start_and_join)
{
	struct kthread t[16] = {{0}};
	int n = 0;

	for (int i = 0; i < 16; i++)
		cr_assert_eq(kthread_start(&t[i], count, &n), 0);
	for (int i = 0; i < 16; i++)
		kthread_join(&t[i]);
	cr_assert_eq(n, 16);
}
