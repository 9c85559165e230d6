/*
 * guest_mem_place with guest_mem_fill_lazily: the bytes read back exactly as a copy leaves
 * them, whether the filler thread copied them ahead or a reader faulted on them first (the
 * sweep held: every touch is served on demand), holes read as zero, a page written before
 * the filler reached it keeps what was written, several threads may fault at once, and a
 * range the filler cannot take is copied up front. Tearing down mid-fill does not hang.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "vmm/guest_fill.h"
#include "vmm/guest_mem.h"

#define RAM (32U << 20)
#define FILE_LEN (12U << 20)
#define HOLE_AT (3U << 20) /* [HOLE_AT, HOLE_AT + HOLE_LEN) of the file is a hole */
#define HOLE_LEN (2U << 20)
#define GPA 0x200000ULL
#define PG 4096U

static struct guest_mem gm;
static struct kerr err;
static uint8_t *want; /* the file's bytes, holes as zeros */
static char path[] = "/tmp/kestrel-fill-XXXXXX";
static int fd;

static void setup(void)
{
	struct guest_mem_region r = {.gpa = 0, .size = RAM};

	cr_assert_eq(guest_mem_map(&gm, &r, 1, &err), 0, "%s", err.msg);
	cr_assert_eq(guest_mem_fill_lazily(&gm, &err), 0, "%s", err.msg);
	want = calloc(1, FILE_LEN);
	cr_assert_not_null(want);
	for (size_t i = 0; i < FILE_LEN; i++)
		if (i < HOLE_AT || i >= HOLE_AT + HOLE_LEN)
			want[i] = (uint8_t)(i * 7 + i / PG + 1);
	fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, FILE_LEN), 0);
	cr_assert_eq(pwrite(fd, want, HOLE_AT, 0), (ssize_t)HOLE_AT);
	cr_assert_eq(pwrite(fd, want + HOLE_AT + HOLE_LEN, FILE_LEN - HOLE_AT - HOLE_LEN,
			    HOLE_AT + HOLE_LEN),
		     (ssize_t)(FILE_LEN - HOLE_AT - HOLE_LEN));
}

static void teardown(void)
{
	guest_mem_unmap(&gm);
	close(fd);
	unlink(path);
	free(want);
}

TestSuite(guest_fill, .init = setup, .fini = teardown, .timeout = 60);

/* Waits (bounded) for the thread to end; returns its note. */
static const char *wait_done(void)
{
	static char note[256];

	for (int i = 0; i < 20000; i++) {
		guest_fill_note(gm.fill, note, sizeof(note));
		if (strstr(note, "beside the guest"))
			return note;
		usleep(1000);
	}
	cr_assert_fail("the fill did not end: %s", note);
	return note;
}

static unsigned long long count(const char *note, const char *after)
{
	const char *p = strstr(note, after);

	cr_assert_not_null(p, "no '%s' in '%s'", after, note);
	return strtoull(p + strlen(after), NULL, 10);
}

/* Placing [skip, FILE_LEN - skip) of the file: unaligned both ends. */
static void place(uint64_t skip)
{
	cr_assert_eq(
	    guest_mem_place(&gm, GPA + skip, want + skip, FILE_LEN - 2 * skip, fd, skip, &err), 0,
	    "%s", err.msg);
}

static void expect_ram(uint64_t skip)
{
	const uint8_t *ram = guest_mem_ptr(&gm, GPA, FILE_LEN);

	for (size_t i = skip; i < FILE_LEN - skip; i++)
		if (ram[i] != want[i])
			cr_assert_fail("byte 0x%zx: 0x%02x, want 0x%02x", i, ram[i], want[i]);
}

Test(guest_fill, background_copy_reads_back_exactly)
{
	place(0x123);
	guest_fill_sandbox(gm.fill); /* seals: no seccomp set up here, so only that */
	expect_ram(0x123);
	wait_done();
	expect_ram(0x123);
}

Test(guest_fill, every_touch_is_served_when_the_sweep_holds)
{
	const uint8_t *ram = guest_mem_ptr(&gm, GPA, FILE_LEN);
	const char *note;

	guest_fill_hold(gm.fill, true);
	place(0);
	/* One byte per 64 KiB chunk, back to front: each read is a fault served on demand. */
	for (size_t i = FILE_LEN; i >= 64 << 10; i -= 64 << 10)
		cr_assert_eq(ram[i - 1], want[i - 1], "byte 0x%zx", i - 1);
	guest_fill_sandbox(gm.fill);
	guest_fill_hold(gm.fill, false);
	note = wait_done();
	expect_ram(0);
	/* 160 data chunks served on demand; the hole is not registered: no fault there. */
	cr_assert_eq(count(note, "; "), (FILE_LEN - HOLE_LEN) / (64 << 10), "%s", note);
	cr_assert_eq(count(note, "first ("), 0, "%s", note);
}

Test(guest_fill, a_page_written_first_keeps_what_was_written)
{
	uint8_t *ram = guest_mem_ptr(&gm, GPA, FILE_LEN);

	guest_fill_hold(gm.fill, true);
	place(0);
	ram[HOLE_AT + 5] = 0xab;  /* a hole page: zero page, then copy on write */
	ram[PG * 100 + 7] = 0xcd; /* a data page: served, then written */
	want[HOLE_AT + 5] = 0xab;
	want[PG * 100 + 7] = 0xcd;
	guest_fill_sandbox(gm.fill);
	guest_fill_hold(gm.fill, false);
	wait_done();
	expect_ram(0);
}

struct reader {
	unsigned int seed;
	int bad;
};

static void *read_random(void *opaque)
{
	struct reader *r = opaque;
	const uint8_t *ram = guest_mem_ptr(&gm, GPA, FILE_LEN);

	for (int i = 0; i < 2000; i++) {
		size_t at = (size_t)rand_r(&r->seed) % FILE_LEN;

		if (ram[at] != want[at])
			r->bad++;
	}
	return NULL;
}

Test(guest_fill, several_threads_fault_at_once)
{
	struct reader rd[4] = {{1, 0}, {2, 0}, {3, 0}, {4, 0}};
	pthread_t t[4];

	place(0);
	for (int i = 0; i < 4; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, read_random, &rd[i]), 0);
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		cr_expect_eq(rd[i].bad, 0, "reader %d saw %d wrong bytes", i, rd[i].bad);
	}
	guest_fill_sandbox(gm.fill);
	wait_done();
	expect_ram(0);
}

Test(guest_fill, an_incongruent_offset_is_copied_up_front)
{
	char note[256];

	/* Destination 0x10 into a page, file offset 0x20 into one: no page maps to a page. */
	cr_assert_eq(guest_mem_place(&gm, GPA + 0x10, want + 0x20, 1 << 20, fd, 0x20, &err), 0);
	guest_fill_note(gm.fill, note, sizeof(note));
	cr_assert(strstr(note, "copied up front (file offset and address differ"), "%s", note);
	cr_assert_eq(memcmp(guest_mem_ptr(&gm, GPA + 0x10, 1 << 20), want + 0x20, 1 << 20), 0);
}

Test(guest_fill, tearing_down_mid_fill_does_not_hang)
{
	guest_fill_hold(gm.fill, true);
	place(0);
	guest_mem_unmap(&gm); /* teardown unmaps again: a no-op on the zeroed struct */
}
