/*
 * Guest RAM's host mapping: 2 MiB-aligned between guard pages. guest_mem_place: bytes put
 * into guest RAM read back exactly as a copy would leave them, the file's holes are skipped
 * (the pages under them are never touched), and a file that cannot tell its holes is copied
 * whole.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <sys/mman.h>
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
	/* 4 KiB pages, so that residency tells which pages were written. */
	cr_assert_eq(madvise(guest_mem_ptr(&gm, 0, RAM), RAM, MADV_NOHUGEPAGE), 0);
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

/* Has any page of [gpa, gpa+len) been touched (mincore: resident)? */
static bool touched(uint64_t gpa, uint64_t len)
{
	unsigned char vec[64];
	uint8_t *p = guest_mem_ptr(&gm, gpa, len);

	cr_assert(len / 4096 <= sizeof(vec) && gpa % 4096 == 0);
	cr_assert_eq(mincore(p, len, vec), 0);
	for (uint64_t i = 0; i < (len + 4095) / 4096; i++)
		if (vec[i] & 1)
			return true;
	return false;
}

static bool zero(uint64_t gpa, uint64_t len)
{
	const uint8_t *p = guest_mem_ptr(&gm, gpa, len);

	for (uint64_t i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

static void place_only(uint64_t gpa, uint64_t off, uint64_t len, int from)
{
	cr_assert_eq(guest_mem_place(&gm, gpa, src + off, len, from, off, &err), 0, "%s", err.msg);
}

/* Placed, then checked (reading maps the zero page: check touched() before). */
static void check(uint64_t gpa, uint64_t off, uint64_t len)
{
	cr_assert_eq(memcmp(guest_mem_ptr(&gm, gpa, len), src + off, len), 0);
	/* Only the range was written. */
	cr_assert(zero(gpa - 4096, 4096) && zero(gpa + len, 4096));
}

static void place(uint64_t gpa, uint64_t off, uint64_t len, int from)
{
	place_only(gpa, off, len, from);
	check(gpa, off, len);
}

Test(guest_mem_place, from_the_file_aligned_or_not)
{
	place(0x10000, 0x2000, 3 * 4096 + 100, fd);
	place(0x20100, 0x3100, 5 * 4096, fd);
	place(0x30000, 0x1001, 4 * 4096, fd);
}

Test(guest_mem_place, without_a_file_is_a_copy)
{
	place(0x40000, 0x4000, 4 * 4096, -1);
}

/* A pipe has no SEEK_DATA (ESPIPE): nothing is skipped, all of it is copied. */
Test(guest_mem_place, a_file_without_holes_info_is_copied_whole)
{
	int p[2];

	cr_assert_eq(pipe(p), 0);
	memset(src + 0x9000, 0, 0x2000);
	place_only(0x50000, 0x8000, 8 * 4096, p[0]);
	for (uint64_t pg = 0; pg < 8; pg++)
		cr_assert(touched(0x50000 + pg * 4096, 4096), "page %llu (zeros too) is written",
			  (unsigned long long)pg);
	check(0x50000, 0x8000, 8 * 4096);
	close(p[0]);
	close(p[1]);
}

Test(guest_mem_place, outside_ram_is_an_error)
{
	cr_assert_eq(guest_mem_place(&gm, RAM - 4096, src, 8192, fd, 0, &err), -1);
	cr_assert_neq(err.msg[0], '\0');
}

/* The file's holes are zeros it does not store: skipped, their pages never touched. */
Test(guest_mem_place, holes_are_skipped)
{
	memset(src + 0x10000, 0, 0x10000);
	cr_assert_eq(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0x10000, 0x10000),
		     0);
	cr_assert_eq(lseek(fd, 0x10000, SEEK_HOLE), 0x10000, "no holes on this file system");
	place_only(0x100000, 0x8000, 0x20000, fd); /* data, hole, data */
	cr_assert(touched(0x100000, 0x8000));
	cr_assert_not(touched(0x108000, 0x10000), "a hole's pages were written");
	cr_assert(touched(0x118000, 0x8000));
	check(0x100000, 0x8000, 0x20000);
}

/* A file that ends in a hole (ENXIO from SEEK_DATA): the rest is zeros. */
Test(guest_mem_place, a_trailing_hole_is_skipped)
{
	memset(src + 0x30000, 0, FILE_LEN - 0x30000);
	cr_assert_eq(
	    fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0x30000, FILE_LEN - 0x30000),
	    0);
	place_only(0x200000, 0x28000, FILE_LEN - 0x28000, fd);
	cr_assert(touched(0x200000, 0x8000));
	cr_assert_not(touched(0x208000, 0x30000));
	check(0x200000, 0x28000, FILE_LEN - 0x28000);
}

Test(guest_mem_place, regions_are_2mib_aligned)
{
	cr_assert_eq((uintptr_t)guest_mem_ptr(&gm, 0, 1) % (2U << 20), 0);
}

/*
 * The permissions of the mapping holding host address a, as /proc/self/maps gives them.
 * (Read there rather than by touching the page: the sanitizers catch the fault.)
 */
static void perms_at(uintptr_t a, char perms[5])
{
	char line[512];
	FILE *m = fopen("/proc/self/maps", "r");

	cr_assert_not_null(m);
	strcpy(perms, "none");
	while (fgets(line, sizeof(line), m)) {
		unsigned long lo, hi;
		char p[5];

		if (sscanf(line, "%lx-%lx %4s", &lo, &hi, p) == 3 && a >= lo && a < hi) {
			strcpy(perms, p);
			break;
		}
	}
	fclose(m);
}

Test(guest_mem_place, ram_lies_between_guard_pages)
{
	uintptr_t lo = (uintptr_t)guest_mem_ptr(&gm, 0, 1), hi = lo + RAM;
	char p[5];

	perms_at(lo, p);
	cr_assert_str_eq(p, "rw-p");
	perms_at(hi - 1, p);
	cr_assert_str_eq(p, "rw-p");
	perms_at(lo - 1, p);
	cr_assert_str_eq(p, "---p", "below guest RAM: %s", p);
	perms_at(hi, p);
	cr_assert_str_eq(p, "---p", "above guest RAM: %s", p);
}
