/*
 * The cache of host-unpacked kernels (vmm/kernel_cache.c): a second boot of the same payload
 * streams the ELF from the entry, exactly; a damaged entry is a miss; the cache never fails
 * a boot and keeps its bound.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <elf.h>
#include <fcntl.h>
#include <lzma.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "arch/x86/boot.h"
#include "arch/x86/layout.h"
#include "arch/x86/pvh.h"
#include "fixture_kernel_images.h"
#include "fixture_loaders.h"
#include "fixture_unpack.h"
#include "vmm/kernel_cache.h"

TestSuite(kernel_cache, .init = map_ram, .fini = unmap_ram);

static char cache_dir[64];

static void fresh_cache(struct kernel_cache *kc)
{
	strcpy(cache_dir, "/tmp/kestrel-kcache-XXXXXX");
	cr_assert_not_null(mkdtemp(cache_dir));
	cr_assert_eq(setenv("KESTREL_CACHE_DIR", cache_dir, 1), 0);
	kernel_cache_init(kc);
}

static void remove_cache(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", cache_dir);
	cr_assert_eq(system(cmd), 0);
}

/* The single entry's path (asserting there is exactly one), and the count. */
static int entries(char *path, size_t cap)
{
	DIR *d = opendir(cache_dir);
	struct dirent *de;
	int n = 0;

	cr_assert_not_null(d);
	while ((de = readdir(d)))
		if (strstr(de->d_name, ".kernel")) {
			n++;
			if (path)
				snprintf(path, cap, "%s/%s", cache_dir, de->d_name);
		}
	closedir(d);
	return n;
}

static void clear_ram(void)
{
	memset(gp(0, RAM_SIZE), 0, RAM_SIZE);
}

Test(kernel_cache, miss_then_hit_loads_identical_memory)
{
	struct kernel_cache kc;
	struct kernel k;
	struct x86_boot out, out2;
	uint8_t *snap = malloc(RAM_SIZE);

	cr_assert_not_null(snap);
	fresh_cache(&kc);
	make_kernel(&k, default_segs, 2, true);
	cr_assert_eq(load_cached(&k, "console=ttyS0", false, &kc, &out), 0, "%s", err.msg);
	cr_assert_not_null(strstr(out.note, "unpacked on the host ("), "note: %s", out.note);
	cr_assert_not_null(strstr(out.note, "; cache miss)"), "note: %s", out.note);
	cr_assert_not_null(strstr(kc.note, "kernel cache: stored"), "cache: %s", kc.note);
	cr_assert_eq(entries(NULL, 0), 1);
	memcpy(snap, gp(0, RAM_SIZE), RAM_SIZE);
	clear_ram();
	kernel_cache_init(&kc);
	cr_assert_eq(load_cached(&k, "console=ttyS0", false, &kc, &out2), 0, "%s", err.msg);
	cr_assert_not_null(strstr(out2.note, "xz payload from the cache ("), "note: %s", out2.note);
	cr_assert_eq(out2.mode, out.mode);
	cr_assert_eq(out2.entry, out.entry);
	cr_assert_eq(out2.info_gpa, out.info_gpa);
	cr_assert_eq(memcmp(snap, gp(0, RAM_SIZE), RAM_SIZE), 0, "guest RAM differs on a hit");
	/* A guest's writes after a hit never reach the entry: a third boot loads the same. */
	memset(gp(0, RAM_SIZE), 0xa5, RAM_SIZE);
	clear_ram();
	kernel_cache_init(&kc);
	cr_assert_eq(load_cached(&k, "console=ttyS0", false, &kc, &out2), 0, "%s", err.msg);
	cr_assert_not_null(strstr(out2.note, "from the cache ("), "note: %s", out2.note);
	cr_assert_eq(memcmp(snap, gp(0, RAM_SIZE), RAM_SIZE), 0, "a guest write reached the entry");
	free(snap);
	free_kernel(&k);
	remove_cache();
}

enum damage { FLIP_PAYLOAD, TRUNCATE, BAD_MAGIC, FLIP_CRC };

/* A damaged entry is a miss: the decoder runs, the right bytes boot, the entry is replaced. */
static void damaged_entry_is_a_miss(enum damage how)
{
	struct kernel_cache kc;
	struct kernel k;
	struct x86_boot out;
	char path[512];
	struct stat st;
	int fd;

	fresh_cache(&kc);
	make_kernel(&k, default_segs, 2, true);
	cr_assert_eq(load_cached(&k, NULL, false, &kc, &out), 0, "%s", err.msg);
	cr_assert_eq(entries(path, sizeof(path)), 1);
	fd = open(path, O_RDWR);
	cr_assert_geq(fd, 0);
	cr_assert_eq(fstat(fd, &st), 0);
	if (how == TRUNCATE) {
		cr_assert_eq(ftruncate(fd, st.st_size - 1), 0);
	} else {
		/* The header is 40 bytes: the payload copy starts there; its CRC is at 32. */
		off_t at = how == FLIP_PAYLOAD ? 40 + (off_t)k.xz_len / 2
			   : how == FLIP_CRC   ? 32
					       : 0;
		uint8_t b;

		cr_assert_eq(pread(fd, &b, 1, at), 1);
		b ^= 0x40;
		cr_assert_eq(pwrite(fd, &b, 1, at), 1);
	}
	close(fd);
	clear_ram();
	kernel_cache_init(&kc);
	cr_assert_eq(load_cached(&k, NULL, false, &kc, &out), 0, "%s", err.msg);
	cr_assert_not_null(strstr(out.note, "; cache miss)"), "note: %s", out.note);
	check_segments(&k, default_segs, 2);
	cr_assert_eq(out.entry, PVH_ENTRY);
	/* Replaced by a sound one: the next boot is a hit. */
	cr_assert_eq(entries(NULL, 0), 1);
	clear_ram();
	kernel_cache_init(&kc);
	cr_assert_eq(load_cached(&k, NULL, false, &kc, &out), 0, "%s", err.msg);
	cr_assert_not_null(strstr(out.note, "from the cache"), "note: %s", out.note);
	check_segments(&k, default_segs, 2);
	free_kernel(&k);
	remove_cache();
}

Test(kernel_cache, entry_with_a_flipped_payload_byte_is_a_miss)
{
	damaged_entry_is_a_miss(FLIP_PAYLOAD);
}

Test(kernel_cache, entry_truncated_is_a_miss)
{
	damaged_entry_is_a_miss(TRUNCATE);
}

Test(kernel_cache, entry_with_a_bad_header_is_a_miss)
{
	damaged_entry_is_a_miss(BAD_MAGIC);
	damaged_entry_is_a_miss(FLIP_CRC);
}

Test(kernel_cache, unusable_dir_still_boots)
{
	struct kernel_cache kc;
	struct kernel k;
	struct x86_boot out;

	cr_assert_eq(setenv("KESTREL_CACHE_DIR", "/dev/null/kestrel", 1), 0);
	kernel_cache_init(&kc);
	make_kernel(&k, default_segs, 2, true);
	cr_assert_eq(load_cached(&k, NULL, false, &kc, &out), 0, "%s", err.msg);
	cr_assert_not_null(strstr(out.note, "unpacked on the host"), "note: %s", out.note);
	cr_assert_not_null(strstr(kc.note, "kernel cache: not used"), "cache: %s", kc.note);
	check_segments(&k, default_segs, 2);
	/* A directory others can write is not used: its entries would be booted. */
	fresh_cache(&kc);
	cr_assert_eq(chmod(cache_dir, 0777), 0);
	clear_ram();
	cr_assert_eq(load_cached(&k, NULL, false, &kc, &out), 0, "%s", err.msg);
	cr_assert_not_null(strstr(kc.note, "only it can write"), "cache: %s", kc.note);
	check_segments(&k, default_segs, 2);
	cr_assert_eq(entries(NULL, 0), 0);
	free_kernel(&k);
	remove_cache();
}

Test(kernel_cache, keeps_at_most_its_bound)
{
	struct kernel_cache kc;
	struct kernel k[KERNEL_CACHE_MAX_ENTRIES + 2];
	struct x86_boot out;

	fresh_cache(&kc);
	for (int i = 0; i < KERNEL_CACHE_MAX_ENTRIES + 2; i++) {
		struct seg segs[2] = {default_segs[0], default_segs[1]};

		segs[1].filesz -= 0x100 * (uint64_t)i; /* a different kernel each time */
		make_kernel(&k[i], segs, 2, true);
		kernel_cache_init(&kc);
		cr_assert_eq(load_cached(&k[i], NULL, false, &kc, &out), 0, "%s", err.msg);
		cr_assert_not_null(strstr(out.note, "cache miss"), "note: %s", out.note);
		cr_assert_leq(entries(NULL, 0), KERNEL_CACHE_MAX_ENTRIES);
		usleep(20000); /* distinct mtimes */
	}
	/* The newest are kept, the oldest went. */
	kernel_cache_init(&kc);
	cr_assert_eq(load_cached(&k[KERNEL_CACHE_MAX_ENTRIES + 1], NULL, false, &kc, &out), 0);
	cr_assert_not_null(strstr(out.note, "from the cache"), "note: %s", out.note);
	kernel_cache_init(&kc);
	cr_assert_eq(load_cached(&k[0], NULL, false, &kc, &out), 0);
	cr_assert_not_null(strstr(out.note, "cache miss"), "note: %s", out.note);
	for (int i = 0; i < KERNEL_CACHE_MAX_ENTRIES + 2; i++)
		free_kernel(&k[i]);
	remove_cache();
}

/* --kernel-cache off (no cache given) and --kernel-unpack guest never touch the directory. */
Test(kernel_cache, off_never_touches_the_dir)
{
	struct kernel_cache kc;
	struct kernel k;
	struct x86_boot out;
	struct stat st;

	cr_assert_eq(setenv("KESTREL_CACHE_DIR", "/tmp/kestrel-kcache-never/sub", 1), 0);
	kernel_cache_init(&kc);
	make_kernel(&k, default_segs, 2, true);
	cr_assert_eq(load_cached(&k, NULL, false, NULL, &out), 0, "%s", err.msg);
	cr_assert_not_null(strstr(out.note, "unpacked on the host"), "note: %s", out.note);
	cr_assert_null(strstr(out.note, "cache"), "note: %s", out.note);
	clear_ram();
	cr_assert_eq(load_cached(&k, NULL, true, &kc, &out), 0, "%s", err.msg);
	cr_assert_lt(stat("/tmp/kestrel-kcache-never", &st), 0, "the cache dir was made");
	free_kernel(&k);
}
