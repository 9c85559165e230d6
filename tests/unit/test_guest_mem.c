/*
 * Guest RAM's host mapping: 2 MiB-aligned between guard pages. guest_mem_place: bytes put
 * into guest RAM read back exactly as a copy would leave them; whole pages aligned in both
 * are mapped from the file (and a guest write never reaches the file), the rest is copied,
 * and a mapping that cannot be made falls back to a copy.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vmm/guest_mem.h"

#define RAM (4U << 20)
#define FILE_LEN (256U << 10)

static struct guest_mem gm;
static struct kerr err;
static uint8_t *src; /* the file's bytes */
static char path[] = "/tmp/kestrel-place-XXXXXX";
static int fd;

static void setup(void)
{
	struct guest_mem_region r = {.gpa = 0, .size = RAM};

	cr_assert_eq(guest_mem_map(&gm, &r, 1, &err), 0, "%s", err.msg);
	src = malloc(FILE_LEN);
	cr_assert_not_null(src);
	for (size_t i = 0; i < FILE_LEN; i++)
		src[i] = (uint8_t)(i * 13 + i / 4096 + 1);
	fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, src, FILE_LEN), (ssize_t)FILE_LEN);
}

static void teardown(void)
{
	guest_mem_unmap(&gm);
	close(fd);
	unlink(path);
	free(src);
}

TestSuite(guest_mem_place, .init = setup, .fini = teardown);

/* Is the host page of gpa mapped from a file (smaps: an inode), as /proc/self/maps says? */
static bool file_backed(uint64_t gpa)
{
	uintptr_t a = (uintptr_t)guest_mem_ptr(&gm, gpa, 1);
	char line[512];
	bool found = false, file = false;
	FILE *m = fopen("/proc/self/maps", "r");

	cr_assert_not_null(m);
	while (!found && fgets(line, sizeof(line), m)) {
		unsigned long lo, hi, ino;

		if (sscanf(line, "%lx-%lx %*s %*s %*s %lu", &lo, &hi, &ino) == 3 && a >= lo &&
		    a < hi) {
			found = true;
			file = ino != 0;
		}
	}
	fclose(m);
	cr_assert(found, "gpa 0x%llx is not mapped", (unsigned long long)gpa);
	return file;
}

static bool zero(uint64_t gpa, uint64_t len)
{
	const uint8_t *p = guest_mem_ptr(&gm, gpa, len);

	for (uint64_t i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

static void place(uint64_t gpa, uint64_t off, uint64_t len, int from)
{
	cr_assert_eq(guest_mem_place(&gm, gpa, src + off, len, from, off, &err), 0, "%s", err.msg);
	cr_assert_eq(memcmp(guest_mem_ptr(&gm, gpa, len), src + off, len), 0);
	/* Only the range was written. */
	cr_assert(zero(gpa - 4096, 4096) && zero(gpa + len, 4096));
}

Test(guest_mem_place, aligned_pages_are_mapped_and_writes_stay_private)
{
	uint8_t back[4096];

	place(0x10000, 0x2000, 3 * 4096 + 100, fd);
	cr_assert(file_backed(0x10000) && file_backed(0x12000));
	/* The last, partial page is a copy: its rest must stay zero, not the file's bytes. */
	cr_assert_not(file_backed(0x13000));
	memset(guest_mem_ptr(&gm, 0x10000, 4096), 0xee, 4096);
	cr_assert_eq(pread(fd, back, sizeof(back), 0x2000), (ssize_t)sizeof(back));
	cr_assert_eq(memcmp(back, src + 0x2000, sizeof(back)), 0, "a guest write reached the file");
	cr_assert_eq(*(uint8_t *)guest_mem_ptr(&gm, 0x10000, 1), 0xee);
}

Test(guest_mem_place, partial_head_and_tail_are_copied)
{
	/* Misaligned alike in RAM and file: the pages between are mapped. */
	place(0x20100, 0x3100, 5 * 4096, fd);
	cr_assert_not(file_backed(0x20000));
	cr_assert(file_backed(0x21000) && file_backed(0x24000));
	cr_assert_not(file_backed(0x25000));
}

Test(guest_mem_place, misaligned_or_no_file_is_copied)
{
	place(0x30000, 0x1001, 4 * 4096, fd);
	cr_assert_not(file_backed(0x30000) || file_backed(0x32000));
	place(0x40000, 0x4000, 4 * 4096, -1);
	cr_assert_not(file_backed(0x41000));
}

Test(guest_mem_place, a_mapping_refused_falls_back_to_a_copy)
{
	int wo = open(path, O_WRONLY); /* mmap needs read access: EACCES */

	cr_assert_geq(wo, 0);
	place(0x50000, 0x8000, 8 * 4096, wo);
	close(wo);
	cr_assert_not(file_backed(0x52000));
	/* Still ordinary guest RAM: writable, and zero around. */
	memset(guest_mem_ptr(&gm, 0x50000, 8 * 4096), 0x5a, 8 * 4096);
	cr_assert(zero(0x58000, 0x8000));
}

Test(guest_mem_place, outside_ram_is_an_error)
{
	cr_assert_eq(guest_mem_place(&gm, RAM - 4096, src, 8192, fd, 0, &err), -1);
	cr_assert_neq(err.msg[0], '\0');
}

Test(guest_mem_place, regions_are_2mib_aligned)
{
	cr_assert_eq((uintptr_t)guest_mem_ptr(&gm, 0, 1) % (2U << 20), 0);
}

Test(guest_mem_place, the_page_below_ram_is_a_guard, .signal = SIGSEGV)
{
	volatile uint8_t *p = guest_mem_ptr(&gm, 0, 1);

	p[-1] = 1;
}

Test(guest_mem_place, the_page_above_ram_is_a_guard, .signal = SIGSEGV)
{
	volatile uint8_t *p = guest_mem_ptr(&gm, RAM - 1, 1);

	p[1] = 1;
}
